//! The defences of docs/security.md that no other test file shows: what a
//! key's known_servers line allows (package-name principals, validity
//! period), that rollback, remove and downgrade need the same right as an
//! install, revocation and key rotation, that an order cannot serve another
//! package, operation or payload, and that neither side can be flooded:
//! the client reads only the signed size, the controller bounds what a
//! hostile client sends.
//!
//! One fleet serves every test in this file; each test owns its hosts.

mod support;
#[path = "support/world.rs"]
mod world;

use std::io::Write;
use std::path::Path;
use std::process::Output;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use swpush::order::{Challenge, Op, Order};
use world::*;

const HOSTS: &[&str] = &[
    "narrow", "expiry", "guarded", "rotated", "mix", "endless", "hostile",
];

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| World::start_trusted(HOSTS))
}

/// Replaces `host`'s known_servers with `lines`.
fn trust(host: &str, lines: &[&str]) {
    let path = world().fleet.host(host).path("/etc/swpush/known_servers");
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

/// The world's known_servers line with other principals and extra options.
fn line_for(principals: &str, options: &str) -> String {
    world().trust_line.replacen('*', principals, 1).replacen(
        "namespaces=\"swpush\"",
        &format!("namespaces=\"swpush\"{options}"),
        1,
    )
}

/// `swpush OP` on `host` alone, signed with `key`; the exit code and report.
fn run(key: &Path, op: &str, host: &str, subject: &Path, more: &[&str]) -> (i32, Value) {
    let world = world();
    let inventory = world.fleet_inventory(host, &[host], "");
    let mut args = vec![
        op,
        "--inventory",
        inventory.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--format",
        "json",
        "--connect-timeout",
        "5",
    ];
    args.extend_from_slice(more);
    args.push(subject.to_str().unwrap());
    parse_report(&swpush(&world.fleet, &args))
}

/// Like [`run`], with the world's distribution key.
fn push(op: &str, host: &str, subject: &Path, more: &[&str]) -> (i32, Value) {
    run(&world().key, op, host, subject, more)
}

/// Checks that `host` was `rejected` saying `says`, and sent nothing.
fn assert_rejected(report: &Value, host: &str, says: &str, case: &str) {
    let entry = host_entry(report, host);
    assert_eq!(entry["status"], "rejected", "{case}: {report:#}");
    let message = entry["message"].as_str().unwrap();
    assert!(
        message.contains(says),
        "{case}: `{message}` should say `{says}`"
    );
    assert_eq!(entry["bytes_sent"], 0, "{case}");
}

fn current(host: &str) -> String {
    read_link(world(), host, "/opt/swpush/hello/current")
}

// --- what a known_servers line allows ----------------------------------------

#[test]
fn a_key_distributes_only_the_packages_its_principals_name() {
    let world = world();
    trust("narrow", &[&line_for("web-*,hello", "")]);
    let other = world.variant("other-1.0.0.tar.gz", |dir| {
        let manifest = std::fs::read_to_string(dir.join("swpush.yaml")).unwrap();
        std::fs::write(
            dir.join("swpush.yaml"),
            manifest.replace("name: hello", "name: other"),
        )
        .unwrap();
    });
    let before = snapshot(world, "narrow");
    let (code, report) = push("install", "narrow", &other, &[]);
    assert_eq!(code, 2, "{report:#}");
    assert_rejected(
        &report,
        "narrow",
        "not signed by a key /etc/swpush/known_servers trusts for package other",
        "other",
    );
    assert_same(&snapshot(world, "narrow"), &before);

    // The same key, for a package its principals name.
    let (code, report) = push("install", "narrow", &world.hello, &[]);
    assert_eq!(
        (code, outcome(&report, "narrow").0.as_str()),
        (0, "installed"),
        "{report:#}"
    );
    assert_eq!(current("narrow"), "releases/1.0.0");
}

#[test]
fn a_key_outside_its_validity_period_is_refused() {
    let world = world();
    for window in [",valid-before=\"20200101\"", ",valid-after=\"29990101\""] {
        trust("expiry", &[&line_for("*", window)]);
        let before = snapshot(world, "expiry");
        let (code, report) = push("install", "expiry", &world.hello, &[]);
        assert_eq!(code, 2, "{window}: {report:#}");
        assert_rejected(&report, "expiry", "not signed by a key", window);
        assert_same(&snapshot(world, "expiry"), &before);
    }
    // Inside its period the same key is good.
    trust("expiry", &[&line_for("*", ",valid-before=\"29990101\"")]);
    let (code, report) = push("install", "expiry", &world.hello, &[]);
    assert_eq!(
        (code, outcome(&report, "expiry").0.as_str()),
        (0, "installed"),
        "{report:#}"
    );
}

/// Installs hello 1.0.0, then upgrades `host` to 1.1.0.
fn install_two_releases(host: &str) {
    let world = world();
    for (op, version) in [("install", "1.0.0"), ("upgrade", "1.1.0")] {
        let (code, report) = push(op, host, &world.hello_at(version), &[]);
        assert_eq!(code, 0, "{report:#}");
    }
    assert_eq!(current(host), "releases/1.1.0");
}

#[test]
fn rollback_remove_and_downgrade_need_the_right_for_that_package() {
    let world = world();
    install_two_releases("guarded");
    // The same key, now trusted for other packages only.
    trust("guarded", &[&line_for("web-*", "")]);
    let before = snapshot(world, "guarded");
    let name = Path::new("hello");
    let old = world.hello_at("1.0.0");
    let cases: [(&str, &Path, &[&str]); 5] = [
        ("rollback", name, &[]),
        ("rollback", name, &["--to", "1.0.0"]),
        ("remove", name, &[]),
        ("upgrade", &old, &["--allow-downgrade"]),
        ("install", &old, &["--force"]),
    ];
    for (op, subject, more) in cases {
        let case = format!("{op} {more:?}");
        let (code, report) = push(op, "guarded", subject, more);
        assert_eq!(code, 2, "{case}: {report:#}");
        assert_rejected(&report, "guarded", "trusts for package hello", &case);
        assert_same(&snapshot(world, "guarded"), &before);
    }
    assert_eq!(current("guarded"), "releases/1.1.0");
}

#[test]
fn a_revoked_key_changes_nothing_and_a_new_key_takes_over() {
    let world = world();
    let fleet = &world.fleet;
    install_two_releases("rotated");
    // The old key is compromised: a new one is trusted beside it, and the
    // old one revoked.
    let new_key = fleet.dir().join("rotated_key");
    let made = swpush(fleet, &["keygen", "-o", new_key.to_str().unwrap()]);
    assert!(made.status.success(), "{}", text(&made.stderr));
    let new_line = text(&made.stdout).lines().last().unwrap().to_owned();
    trust("rotated", &[&world.trust_line, &new_line]);
    let old_public = std::fs::read(world.key.with_extension("pub")).unwrap();
    let h = fleet.host("rotated");
    std::fs::write(h.path("/etc/swpush/revoked_servers"), old_public).unwrap();
    let before = snapshot(world, "rotated");

    let name = Path::new("hello");
    let newer = world.hello_at("1.2.0");
    let cases: [(&str, &Path); 3] = [("rollback", name), ("remove", name), ("upgrade", &newer)];
    for (op, subject) in cases {
        let (code, report) = push(op, "rotated", subject, &[]);
        assert_eq!(code, 2, "{op}: {report:#}");
        assert_rejected(
            &report,
            "rotated",
            "the controller's key is revoked here (/etc/swpush/revoked_servers)",
            op,
        );
        assert_same(&snapshot(world, "rotated"), &before);
    }

    let (code, report) = run(&new_key, "rollback", "rotated", name, &[]);
    let (status, previous, version, _) = outcome(&report, "rotated");
    assert_eq!(
        (code, status.as_str(), previous, version),
        (0, "rolled-back", "1.1.0".into(), "1.0.0".into()),
        "{report:#}"
    );
    assert_eq!(current("rotated"), "releases/1.0.0");
}

#[test]
fn a_distribution_key_others_can_read_is_refused_before_connecting() {
    use std::os::unix::fs::PermissionsExt;
    let world = world();
    let shared = world.fleet.dir().join("shared_key");
    std::fs::copy(&world.key, &shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o644)).unwrap();
    let dead = world.fleet.dead_address().to_string();
    let inventory = world.inventory("shared-key", &[("dead", dead)], "");
    let output = swpush(
        &world.fleet,
        &[
            "install",
            "--inventory",
            inventory.to_str().unwrap(),
            "--key",
            shared.to_str().unwrap(),
            world.hello.to_str().unwrap(),
        ],
    );
    let said = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "nothing attempted: {said}");
    assert!(
        said.contains("others can read this distribution key"),
        "{said}"
    );
    assert!(output.stdout.is_empty(), "no report: nothing was attempted");
}

// --- the step driven by hand -------------------------------------------------

/// [`world::drive`] on this file's world.
fn drive(host: &str, command: &str, answer: Answer, send: Sender) -> (String, Option<u64>) {
    world::drive(world(), host, command, &mut |c| answer(c), send)
}

/// The step for hello on `host`, as the controller starts it for `op`.
fn step_command(host: &str, op: &str, name: &str) -> String {
    let command = world().step_command(host);
    let args = " swpush-step 'install' 'hello' ";
    assert!(command.contains(args), "the step's arguments moved");
    command.replacen(args, &format!(" swpush-step '{op}' '{name}' "), 1)
}

/// The order the controller would sign as `op` for the package file
/// `package` and `challenge`: its text and signature.
fn signed_order(op: Op, package: &Path, challenge: &str) -> (String, String) {
    signed_order_with(op, package, challenge, |_| {})
}

/// Like [`signed_order`], with the order changed by `edit` before signing.
fn signed_order_with(
    op: Op,
    package: &Path,
    challenge: &str,
    edit: impl FnOnce(&mut Order),
) -> (String, String) {
    let package = swpush::package::read(package).unwrap();
    let mut order = Order {
        op,
        package: package.manifest.name.clone(),
        version: package.manifest.version.to_string(),
        sha256: package.sha256.clone(),
        size: package.size,
        allow_downgrade: false,
        install_missing: false,
        force: false,
        dry_run: false,
        host: "security".into(),
        challenge: Challenge::parse(challenge).unwrap(),
        hooks: package.manifest.hooks.clone(),
        issued: "2026-11-25T00:00:00Z".into(),
    };
    edit(&mut order);
    order
        .sign(&swpush::key::load(&world().key).unwrap())
        .unwrap()
}

/// How a driven step is answered: the framed order for its challenge.
type Answer<'a> = &'a dyn Fn(&str) -> String;

/// An order's text and signature as the step reads them.
fn framed((text, signature): (String, String)) -> String {
    format!("swpush order {}\n{text}{signature}", text.lines().count())
}

#[test]
fn an_order_serves_only_its_package_operation_and_bytes() {
    let world = world();
    let host = "mix";
    let (code, report) = push("install", host, &world.hello_at("1.1.0"), &[]);
    assert_eq!(code, 0, "{report:#}");
    let (old, newer) = (world.hello_at("1.0.0"), world.hello_at("1.2.0"));
    let never = || -> Sender { Box::new(|_, size| panic!("the step asked for {size} bytes")) };
    let before = snapshot(world, host);

    // Refused before a package byte is asked for: nothing at all changes.
    let upgrade_to_old = |challenge: &str| signed_order(Op::Upgrade, &old, challenge);
    let cases: [(&str, String, Answer, &str); 6] = [
        (
            "an order for hello, to a step for another package",
            step_command(host, "upgrade", "other"),
            &|c| framed(upgrade_to_old(c)),
            "rejected - - the order is for another package",
        ),
        (
            "an upgrade order, to a step that removes",
            step_command(host, "remove", "hello"),
            &|c| framed(upgrade_to_old(c)),
            "rejected 1.1.0 1.1.0 the order is for another operation",
        ),
        (
            "the signed policy altered: allow_downgrade true",
            step_command(host, "upgrade", "hello"),
            &|c| {
                let (text, signature) = upgrade_to_old(c);
                let altered = text.replace("allow_downgrade false", "allow_downgrade true");
                assert_ne!(altered, text);
                framed((altered, signature))
            },
            "rejected 1.1.0 1.1.0 the order is not signed by a key",
        ),
        (
            "a field given twice (which one would count?)",
            step_command(host, "upgrade", "hello"),
            &|c| {
                let (text, signature) = upgrade_to_old(c);
                let twice = text.replace(
                    "allow_downgrade false\n",
                    "allow_downgrade false\nallow_downgrade true\n",
                );
                framed((twice, signature))
            },
            "rejected 1.1.0 1.1.0 the order names allow_downgrade twice",
        ),
        (
            "the same order unaltered: the client's own policy says no",
            step_command(host, "upgrade", "hello"),
            &|c| framed(upgrade_to_old(c)),
            "skipped 1.1.0 1.1.0 hello 1.1.0 is newer than 1.0.0",
        ),
        (
            "a signed order whose hook leaves the package",
            step_command(host, "upgrade", "hello"),
            &|c| {
                framed(signed_order_with(Op::Upgrade, &newer, c, |order| {
                    order.hooks.post_install = Some("../../../../bin/true".into());
                }))
            },
            "rejected 1.1.0 1.1.0 the order's hook path ../../../../bin/true is not inside the package",
        ),
    ];
    for (case, command, answer, want) in cases {
        let (done, asked) = drive(host, &command, answer, never());
        assert!(
            done.starts_with(want),
            "{case}:\n got: {done}\nwant: {want}"
        );
        assert_eq!(asked, None, "{case}");
        assert_same(&snapshot(world, host), &before);
    }

    // An order for 1.2.0 with another package's bytes, cut or padded to the
    // signed size: refused after receiving. Only the lock and the incoming file
    // came and went, which touched their folders' times.
    let mut swapped = std::fs::read(&old).unwrap();
    let size = std::fs::metadata(&newer).unwrap().len() as usize;
    swapped.resize(size, 0);
    let (done, asked) = drive(
        host,
        &step_command(host, "upgrade", "hello"),
        &|c| framed(signed_order(Op::Upgrade, &newer, c)),
        bytes(swapped),
    );
    assert!(
        done.starts_with(
            "rejected 1.1.0 1.1.0 the package received does not have the signed sha256"
        ),
        "{done}"
    );
    assert_eq!(asked, Some(size as u64));
    let times = ["/var/lib/swpush/", "/var/cache/swpush/"];
    let without = |mut files: Snapshot| {
        for time in times {
            files.remove(time);
        }
        files
    };
    assert_same(&without(snapshot(world, host)), &without(before));

    // The right bytes for the same kind of order: the driver is sound.
    let (done, _) = drive(
        host,
        &step_command(host, "upgrade", "hello"),
        &|c| framed(signed_order(Op::Upgrade, &newer, c)),
        bytes(std::fs::read(&newer).unwrap()),
    );
    assert!(done.starts_with("upgraded 1.1.0 1.2.0"), "{done}");
    assert_eq!(current(host), "releases/1.2.0");
}

#[test]
fn the_client_reads_only_the_signed_size_of_an_endless_stream() {
    let world = world();
    let host = "endless";
    let package = std::fs::read(&world.hello).unwrap();
    let size = package.len() as u64;
    let started = Instant::now();
    // The package, then junk until the step is gone (or 30 s have passed).
    let endless: Sender = Box::new(move |mut pipe, asked| {
        assert_eq!(asked, size);
        let junk = vec![b'Z'; 64 << 10];
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut written = 0;
        if pipe.write_all(&package).is_ok() {
            written += size;
            while Instant::now() < deadline && pipe.write_all(&junk).is_ok() {
                written += junk.len() as u64;
            }
        }
        // Closed: a step still reading now sees the end, and the test ends.
        (None, written)
    });
    let (done, written) = drive(
        host,
        &world.step_command(host),
        &|c| framed(signed_order(Op::Install, &world.hello, c)),
        endless,
    );
    assert!(done.starts_with("installed - 1.0.0"), "{done}");
    let written = written.expect("the step asked for the package");
    assert!(written > size, "only {written} bytes were sent");
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "the step waited for the stream to end"
    );
    let sha256 = swpush::package::read(&world.hello).unwrap().sha256;
    let cached = world
        .fleet
        .host(host)
        .path(&format!("/var/cache/swpush/hello/{sha256}"));
    assert_eq!(std::fs::metadata(cached).unwrap().len(), size);
    assert_hello_runs(world, host, "1.0.0");
}

// --- a hostile client ---------------------------------------------------------

/// [`world::measured`] on this file's world, without the time.
fn measured(args: &[&str]) -> (Output, u64) {
    let (output, peak_mib, _) = world::measured(world(), args);
    (output, peak_mib)
}

/// A login whose shell is `script`: what the controller meets there is
/// whatever that script does, not the step.
fn hostile_login(user: &str, script: &str) {
    let fleet = &world().fleet;
    let path = fleet
        .host("hostile")
        .path(&format!("/opt/hostile/{user}.sh"));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    fleet.ssh_ok(
        "hostile",
        &format!("useradd -M -d /opt/hostile -s /opt/hostile/{user}.sh -p '*' {user}"),
    );
}

#[test]
fn a_hostile_client_cannot_flood_the_controller_or_make_it_send_more() {
    let world = world();
    // One endless line on stdout and endless noise on stderr.
    hostile_login(
        "flood",
        "#!/bin/sh\nyes swpush >&2 &\nyes 'swpush hello 1 ' | tr -d '\\n'\n",
    );
    // Asks for a terabyte of a package of a few kilobytes.
    hostile_login(
        "greedy",
        "#!/bin/sh\necho 'swpush hello 1 0123456789abcdef0123456789abcdef - -'\n\
         IFS= read -r header\necho 'swpush need 1099511627776'\nexec cat >/dev/null\n",
    );
    // Asks for a second signed order, then the package twice.
    hostile_login(
        "twice",
        "#!/bin/sh\nfor i in 1 2; do\n  echo 'swpush hello 1 0123456789abcdef0123456789abcdef - -'\n\
         sed -n '/END SSH SIGNATURE/q'\ndone\nsleep 5\n",
    );
    let address = world.fleet.host("hostile").addr;
    let inventory = world.inventory(
        "hostile",
        &[],
        &format!(
            "  flood: {{address: {address}, user: flood}}\n  greedy: {{address: {address}, user: greedy}}\n  twice: {{address: {address}, user: twice}}\n"
        ),
    );
    let (output, peak_mib) = measured(&[
        "install",
        "--inventory",
        inventory.to_str().unwrap(),
        "--key",
        world.key.to_str().unwrap(),
        "--format",
        "json",
        "--timeout",
        "5",
        world.hello.to_str().unwrap(),
    ]);
    let (code, report) = parse_report(&output);
    eprintln!("hostile clients: controller peak {peak_mib} MiB");
    assert_eq!(code, 2, "{report:#}");
    let (status, message) = status_of(&report, "flood");
    assert_eq!(status, "timeout", "{message}");
    // About 25 MiB without the flood; each second of it adds 10 MiB or more.
    assert!(
        peak_mib < 48,
        "the controller kept the flood: {peak_mib} MiB"
    );
    let (status, message) = status_of(&report, "greedy");
    let size = std::fs::metadata(&world.hello).unwrap().len();
    assert_eq!(status, "failed", "{message}");
    assert_eq!(
        message,
        format!("the client asked for 1099511627776 bytes, the package has {size}")
    );
    assert_eq!(host_entry(&report, "greedy")["bytes_sent"], 0);
    let (status, message) = status_of(&report, "twice");
    assert_eq!(
        (status.as_str(), message.as_str()),
        ("failed", "the client asked for a second order in one run")
    );

    // status keeps a client's answer, but not a flood of one.
    let (output, peak_mib) = measured(&[
        "status",
        "--inventory",
        inventory.to_str().unwrap(),
        "--limit",
        "flood",
        "--format",
        "json",
        "--timeout",
        "20",
    ]);
    let (code, report) = parse_report(&output);
    eprintln!("status of a flooding client: controller peak {peak_mib} MiB");
    let (status, message) = status_of(&report, "flood");
    assert_eq!((code, status.as_str()), (2, "failed"), "{report:#}");
    assert!(message.contains("printed more than 4 MiB"), "{message}");
    assert!(
        peak_mib < 48,
        "the controller kept the flood: {peak_mib} MiB"
    );
}
