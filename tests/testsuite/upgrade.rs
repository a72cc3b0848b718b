//! `swpush upgrade`: version order (1.10 > 1.9), the policy the signed order
//! carries (`--install-missing`, `--allow-downgrade`, `--force`) enforced by
//! the client itself, and pruning to `keep_releases`. The controller never
//! compares versions: every refusal below is the client's own decision.

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::support::SSH_PORT;
use crate::support::world::*;

const HOSTS: &[&str] = &["up", "absent", "keep"];

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| World::start_trusted(HOSTS))
}

fn hello(world: &World, version: &str) -> PathBuf {
    world.hello_at(version)
}

fn run(world: &World, op: &str, host: &str, version: &str, more: &[&str]) -> (i32, Report) {
    let fleet = &world.fleet;
    let inventory = fleet.dir().join(format!("inventory-{host}.yaml"));
    std::fs::write(
        &inventory,
        format!(
            "defaults:\n  user: root\n  port: {SSH_PORT}\n  identity_file: \"{}\"\n  keep_releases: 2\nhosts:\n  {host}: {{address: {}}}\n",
            fleet.login_key().display(),
            fleet.host(host).addr
        ),
    )
    .unwrap();
    world.push(op, &inventory, &hello(world, version), more)
}

#[test]
fn upgrades_by_version_order_and_the_client_refuses_a_downgrade() {
    let world = world();
    let (code, _) = run(world, "install", "up", "1.9.0", &[]);
    assert_eq!(code, 0);

    let (code, report) = run(world, "upgrade", "up", "1.10.0", &[]);
    assert_eq!(code, 0, "{report:#}");
    let (status, previous, version, _) = outcome(&report, "up");
    assert_eq!(
        (status.as_str(), previous, version),
        ("upgraded", "1.9.0".into(), "1.10.0".into())
    );
    assert_eq!(
        read_link(world, "up", "/opt/swpush/hello/current"),
        "releases/1.10.0"
    );
    let hooks = std::fs::read_to_string(world.fleet.host("up").path("/opt/swpush/hello/hooks.log"))
        .unwrap();
    assert!(
        hooks.contains("pre_install op=upgrade package=hello version=1.10.0 previous=1.9.0"),
        "{hooks}"
    );

    let (code, report) = run(world, "upgrade", "up", "1.10.0", &[]);
    assert_eq!((code, outcome(&report, "up").0.as_str()), (0, "unchanged"));

    // 1.9.0 is older than 1.10.0: the client says no, and sends for nothing.
    let (code, report) = run(world, "upgrade", "up", "1.9.0", &[]);
    assert_eq!(code, 0, "skipped is not a failure");
    let (status, _, version, message) = outcome(&report, "up");
    assert_eq!((status.as_str(), version), ("skipped", "1.10.0".into()));
    assert!(message.contains("newer than 1.9.0"), "{message}");
    assert_eq!(report.host("up").bytes_sent, 0);
    assert_eq!(
        read_link(world, "up", "/opt/swpush/hello/current"),
        "releases/1.10.0"
    );

    let (code, report) = run(world, "upgrade", "up", "1.9.0", &["--allow-downgrade"]);
    assert_eq!(code, 0);
    let (status, previous, version, _) = outcome(&report, "up");
    assert_eq!(
        (status.as_str(), previous, version),
        ("upgraded", "1.10.0".into(), "1.9.0".into())
    );
    assert_eq!(
        read_link(world, "up", "/opt/swpush/hello/current"),
        "releases/1.9.0"
    );
}

#[test]
fn an_absent_package_is_installed_only_when_asked() {
    let world = world();
    let (code, report) = run(world, "upgrade", "absent", "1.0.0", &[]);
    assert_eq!(code, 0);
    let (status, _, _, message) = outcome(&report, "absent");
    assert_eq!(status, "skipped");
    assert!(message.contains("--install-missing"), "{message}");
    assert!(
        !world
            .fleet
            .host("absent")
            .path("/opt/swpush/hello")
            .exists()
    );

    let (code, report) = run(world, "upgrade", "absent", "1.0.0", &["--install-missing"]);
    assert_eq!(
        (code, outcome(&report, "absent").0.as_str()),
        (0, "installed")
    );
}

#[test]
fn old_releases_are_pruned_to_keep_releases_keeping_the_previous_one() {
    let world = world();
    run(world, "install", "keep", "1.0.0", &[]);
    for version in ["1.1.0", "1.2.0", "1.3.0"] {
        let (code, report) = run(world, "upgrade", "keep", version, &[]);
        assert_eq!(
            (code, outcome(&report, "keep").0.as_str()),
            (0, "upgraded"),
            "{report:#}"
        );
    }
    let mut kept: Vec<String> =
        std::fs::read_dir(world.fleet.host("keep").path("/opt/swpush/hello/releases"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
    kept.sort();
    assert_eq!(
        kept,
        ["1.2.0", "1.3.0"],
        "keep_releases: 2 keeps current and previous"
    );
    assert_eq!(
        read_link(world, "keep", "/opt/swpush/hello/current"),
        "releases/1.3.0"
    );
}
