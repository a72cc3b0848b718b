//! Upgrades that roll themselves back: the package's health check, run on
//! the client once the new release is current (retried, set or overridden
//! by the inventory), and the controller's confirmation that it can still
//! log in. A failed check, a host whose sshd stops taking new logins, and a
//! controller lost before it confirmed each leave the previous release
//! current, its post_install run again, and the host `failed`: never a
//! success for a host that was rolled back.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use crate::support::wait_until;
use crate::support::world::*;

const CHECKED: &[&str] = &["hc1", "hc2", "hc3"];
const LOGINS: &[&str] = &["hs1", "hs2", "hs3"];

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| World::start_trusted(&[CHECKED, LOGINS].concat()))
}

/// hello at `version` whose post_install also sends `signal` to the host's
/// sshd listener (the pid in /opt/sshd.pid, where there is one).
fn signals_sshd(world: &World, version: &str, signal: &str) -> PathBuf {
    world.variant(&format!("hello-{version}-{signal}-sshd.tar.gz"), |dir| {
        set_version(dir, version);
        append(
            dir,
            "hooks/post.sh",
            &format!("if [ -e /opt/sshd.pid ]; then kill -{signal} \"$(cat /opt/sshd.pid)\"; fi\n"),
        );
    })
}

/// hello 1.0.0 that lets sshd take new logins again: its post_install runs
/// again when an upgrade from it is undone.
fn resumes_sshd(world: &World) -> PathBuf {
    signals_sshd(world, "1.0.0", "CONT")
}

/// hello 1.1.0 that stops sshd taking new logins (`kill -STOP` of its
/// listener): connections open already go on.
fn stops_sshd(world: &World) -> PathBuf {
    signals_sshd(world, "1.1.0", "STOP")
}

/// Appends `lines` to the manifest of the package source in `dir`.
fn add_to_manifest(dir: &std::path::Path, lines: &str) {
    let manifest = dir.join("swpush.yaml");
    let text = std::fs::read_to_string(&manifest).unwrap() + lines;
    std::fs::write(manifest, text).unwrap();
}

/// hello 1.1.0 that is healthy where /opt/healthy exists, tried every
/// second for 4 s.
fn checked(world: &World) -> PathBuf {
    world.variant("hello-checked.tar.gz", |dir| {
        set_version(dir, "1.1.0");
        add_to_manifest(
            dir,
            "health_check: test -e /opt/healthy\nhealth_interval: 1\nhealth_timeout: 4\n",
        );
    })
}

/// The hooks hello ran on `host`, one line each.
fn hooks_log(world: &World, host: &str) -> String {
    std::fs::read_to_string(world.fleet.host(host).path("/opt/swpush/hello/hooks.log"))
        .unwrap_or_default()
}

fn install_base(world: &World, hosts: &[&str], package: &std::path::Path) {
    let inv = world.fleet_inventory(&format!("base-{}", hosts[0]), hosts, "");
    let (code, report) = world.push("install", &inv, package, &[]);
    assert_eq!(code, 0, "{report:#}");
}

#[test]
fn a_failing_health_check_puts_the_previous_release_back() {
    let world = world();
    install_base(world, CHECKED, &world.hello);
    // hc2's check fails once, then passes (set by the inventory, over the
    // package's); hc3's inventory turns the check off.
    let hosts: Vec<(&str, String)> = CHECKED
        .iter()
        .map(|h| (*h, world.fleet.host(h).addr.to_string()))
        .collect();
    let mut yaml = std::fs::read_to_string(world.inventory("checked", &hosts, "")).unwrap();
    // Per-host settings: the hosts' own entries, written again with them.
    for (host, settings) in [
        (
            "hc2",
            "health_check: \"test -e /opt/tried || { touch /opt/tried; exit 1; }\"",
        ),
        ("hc3", "health_check: \"\""),
    ] {
        let address = world.fleet.host(host).addr;
        yaml = yaml.replace(
            &format!("  {host}: {{address: {address}}}"),
            &format!("  {host}: {{address: {address}, {settings}}}"),
        );
    }
    let inv = world.fleet.dir().join("inventory-checked.yaml");
    std::fs::write(&inv, yaml).unwrap();

    let (code, report) = world.push("upgrade", &inv, &checked(world), &[]);
    assert_eq!(code, 2, "a rolled-back host is no success: {report:#}");
    let failed = report.host("hc1");
    assert_eq!(failed.status, "failed", "{failed}");
    assert!(
        failed.message.starts_with("the health check failed ")
            && failed
                .message
                .contains(" in 4 s (last exit 1), 1.0.0 is current again"),
        "{failed}"
    );
    assert_eq!(failed.version.as_deref(), Some("1.0.0"), "{failed}");
    assert_settled(world, "hc1", Some("1.0.0"));
    // Put back as a post_install failure is: the previous release's
    // post_install runs again, as a rollback.
    assert!(
        hooks_log(world, "hc1").ends_with(&format!(
            "post_install op=rollback package=hello version=1.0.0 previous=1.1.0 dir={}\n",
            "/opt/swpush/hello/releases/1.0.0"
        )),
        "{}",
        hooks_log(world, "hc1")
    );

    let retried = report.host("hc2");
    assert_eq!(retried.status, "upgraded", "{retried}");
    assert!(world.fleet.host("hc2").path("/opt/tried").exists());
    let unchecked = report.host("hc3");
    assert_eq!(unchecked.status, "upgraded", "{unchecked}");
    for host in ["hc2", "hc3"] {
        let link = read_link(world, host, "/opt/swpush/hello/current");
        assert_eq!(link, "releases/1.1.0", "{host}");
    }
}

/// Lets `host`'s sshd take new logins again, whatever a test left it in.
fn resume(world: &World, host: &str) {
    let pid = world.fleet.host(host).sshd_pid().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status();
}

/// Whether `host`'s sshd listener is stopped (state `T`).
fn sshd_stopped(world: &World, host: &str) -> bool {
    let pid = world.fleet.host(host).sshd_pid();
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('T'))
        })
        .unwrap_or(false)
}

/// `host` with hello 1.0.0 that resumes sshd, and the pid of its sshd
/// where the hooks look for it.
fn ready_to_lose_logins(world: &World, host: &str) {
    install_base(world, &[host], &resumes_sshd(world));
    let h = world.fleet.host(host);
    std::fs::write(h.path("/opt/sshd.pid"), h.sshd_pid().to_string()).unwrap();
}

#[test]
fn an_upgrade_that_stops_new_logins_is_undone_by_the_host() {
    let world = world();
    ready_to_lose_logins(world, "hs1");
    let address = world.fleet.host("hs1").addr;
    let inv = world.inventory("hs1", &[("hs1", address.to_string())], "");
    let yaml = std::fs::read_to_string(&inv)
        .unwrap()
        .replace("{address: ", "{confirm_timeout: 5, address: ");
    std::fs::write(&inv, yaml).unwrap();
    let (code, report) = world.push("upgrade", &inv, &stops_sshd(world), &[]);
    resume(world, "hs1");
    assert_eq!(code, 2, "{report:#}");
    let entry = report.host("hs1");
    assert_eq!(entry.status, "failed", "{entry}");
    assert!(
        entry.message.starts_with(
            "the controller could not log in again after the switch, 1.0.0 is current again (a new login did not complete within 3 s)"
        ),
        "{entry}"
    );
    assert_settled(world, "hs1", Some("1.0.0"));
    // 1.0.0's post_install, run again, let sshd take logins: a new run
    // reaches the host (it was resumed above too, should it not have).
    let (code, report) = world.push("install", &inv, &resumes_sshd(world), &[]);
    assert_eq!(
        (code, report.host("hs1").status.as_str()),
        (0, "unchanged"),
        "{report:#}"
    );
}

#[test]
fn a_host_whose_controller_is_lost_before_it_confirmed_undoes_the_upgrade() {
    let world = world();
    ready_to_lose_logins(world, "hs2");
    let inv = world.fleet_inventory("hs2", &["hs2"], "");
    let run = world
        .push_run("upgrade", &inv, &stops_sshd(world), &[])
        .spawn();
    // The new release is current and sshd stopped: the controller is
    // trying to log in again, for up to 30 s, and the step waits for it, a
    // second at a time. The controller dies there.
    wait_until(
        Duration::from_secs(20),
        "hs2 waiting to be confirmed",
        || {
            sshd_stopped(world, "hs2")
                && world
                    .fleet
                    .host("hs2")
                    .processes()
                    .iter()
                    .any(|p| p.contains(" sleep 1"))
        },
    );
    let pid = run.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let _ = run.wait_with_output();
    // The host finds the controller gone and undoes the upgrade at once,
    // not when its confirm_timeout (30 s) runs out: 1.0.0 current again and
    // its post_install run again, which resumes sshd.
    let current = world.fleet.host("hs2").path("/opt/swpush/hello/current");
    wait_until(
        Duration::from_secs(15),
        "hs2 back on 1.0.0, sshd resumed",
        || {
            std::fs::read_link(&current).is_ok_and(|l| l == std::path::Path::new("releases/1.0.0"))
                && !sshd_stopped(world, "hs2")
        },
    );
    resume(world, "hs2");
    assert_settled(world, "hs2", Some("1.0.0"));
}

/// The controller lost while the health check runs (or post_install: the
/// same undo) is no commit either: the previous release is current again
/// and its post_install runs again, as after a failed one.
#[test]
fn a_host_whose_controller_is_lost_during_the_health_check_undoes_the_upgrade() {
    let world = world();
    install_base(world, &["hs3"], &world.hello);
    let slow = world.variant("hello-slow-check.tar.gz", |dir| {
        set_version(dir, "1.1.0");
        add_to_manifest(dir, "health_check: sleep 60\nhealth_timeout: 120\n");
    });
    let inv = world.fleet_inventory("hs3", &["hs3"], "");
    let run = world.push_run("upgrade", &inv, &slow, &[]).spawn();
    wait_until(Duration::from_secs(20), "hs3 checking health", || {
        world
            .fleet
            .host("hs3")
            .processes()
            .iter()
            .any(|p| p.contains("sleep 60"))
    });
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &run.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let _ = run.wait_with_output();
    let rerun = "post_install op=rollback package=hello version=1.0.0 previous=1.1.0";
    wait_until(Duration::from_secs(15), "hs3 back on 1.0.0", || {
        hooks_log(world, "hs3").contains(rerun)
    });
    assert_settled(world, "hs3", Some("1.0.0"));
}
