//! The defences of docs/security.md that no other test file shows: what a
//! key's known_servers line allows (package-name principals, validity
//! period), that rollback, remove and downgrade need the same right as an
//! install, revocation and key rotation, that an order cannot serve another
//! package, operation or payload, and that neither side can be flooded:
//! the client reads only the signed size, the controller bounds what a
//! hostile client sends. A client trusts only what it checked: every field
//! of the order and its own arguments, the host name enroll recorded, and
//! the signed unpacked size against its free space and its own listing; a
//! client that asks for the package before its order or in a dry run gets
//! nothing.
//!
//! One fleet serves every test in this file; each test owns its hosts.

use std::io::Write;
use std::path::Path;
use std::process::Output;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use swpush::order::{Change, Order};

use crate::support::step::{self, Sender, bytes};
use crate::support::world;
use crate::support::world::*;

const HOSTS: &[&str] = &[
    "narrow", "expiry", "guarded", "rotated", "mix", "endless", "hostile", "pathname", "fields",
    "relay", "eager", "small", "liar",
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
fn run(key: &Path, op: &str, host: &str, subject: &Path, more: &[&str]) -> (i32, Report) {
    let world = world();
    let inventory = world.fleet_inventory(host, &[host], "");
    world
        .swpush(op)
        .inventory(&inventory)
        .key(key)
        .json()
        .args(["--connect-timeout", "5"])
        .args(more)
        .arg(subject)
        .run()
        .code_and_report()
}

/// Like [`run`], with the world's distribution key.
fn push(op: &str, host: &str, subject: &Path, more: &[&str]) -> (i32, Report) {
    run(&world().key, op, host, subject, more)
}

/// Checks that `host` was `rejected` saying `says`, and sent nothing.
fn assert_rejected(report: &Report, host: &str, says: &str, case: &str) {
    let entry = report.host(host);
    assert_eq!(entry.status, "rejected", "{case}: {report:#}");
    let message = entry.message.as_str();
    assert!(
        message.contains(says),
        "{case}: `{message}` should say `{says}`"
    );
    assert_eq!(entry.bytes_sent, 0, "{case}");
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
    let made = fleet.swpush("keygen").arg("-o").arg(&new_key).run();
    let new_line = made.success().lines().last().unwrap().to_owned();
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
    let output = world
        .swpush("install")
        .inventory(&inventory)
        .key(&shared)
        .arg(&world.hello)
        .run();
    let said = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "nothing attempted: {said}");
    assert!(
        said.contains("others can read this distribution key"),
        "{said}"
    );
    assert!(output.stdout.is_empty(), "no report: nothing was attempted");
}

// --- the step driven by hand -------------------------------------------------

/// [`step::drive`] on this file's world.
fn drive(host: &str, command: &str, answer: Answer, send: Sender) -> (String, Option<u64>) {
    step::drive(world(), host, command, &mut |c| answer(c), send)
}

/// The step for hello on `host`, as the controller starts it for `op`.
fn step_command(host: &str, op: &str, name: &str) -> String {
    step::with_args(&world().step_command(host), op, name)
}

/// The order the controller would sign as `op` for the package file
/// `package` and `challenge`: its text and signature.
fn signed_order(op: Change, package: &Path, challenge: &str) -> (String, String) {
    signed_order_with(op, package, challenge, |_| {})
}

/// Like [`signed_order`], with the order changed by `edit` before signing.
fn signed_order_with(
    op: Change,
    package: &Path,
    challenge: &str,
    edit: impl FnOnce(&mut Order),
) -> (String, String) {
    world().signed_order(op, Ordered::Package(package), "security", challenge, edit)
}

/// How a driven step is answered: the framed order for its challenge.
type Answer<'a> = &'a dyn Fn(&str) -> String;

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
    let upgrade_to_old = |challenge: &str| signed_order(Change::Upgrade, &old, challenge);
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
                framed(signed_order_with(Change::Upgrade, &newer, c, |order| {
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
        &|c| framed(signed_order(Change::Upgrade, &newer, c)),
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
        &|c| framed(signed_order(Change::Upgrade, &newer, c)),
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
        &|c| framed(signed_order(Change::Install, &world.hello, c)),
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

/// [`world::measured`] of `swpush ARGS` on this file's world, without the time.
fn measured(args: &[&str]) -> (Output, u64) {
    let run = world().swpush(args[0]).args(&args[1..]);
    let (output, peak_mib, _) = world::measured(run);
    (output, peak_mib)
}

/// A login on the hostile host whose shell is `script`.
fn hostile_login(user: &str, script: &str) {
    world().hostile_login("hostile", user, script);
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
    assert_eq!(report.host("greedy").bytes_sent, 0);
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

// --- the client trusts only what it checked -----------------------------------

/// `command` as it is, or under busybox ash with busybox's tools first on
/// PATH (as tests/testsuite/hostile runs it), `df` included.
fn under(busybox: bool, command: String) -> String {
    match busybox {
        true => step::under_busybox(&command, "readlink rmdir df gzip cp"),
        false => command,
    }
}

/// Signs `text` as the controller signs an order, whatever it says.
fn sign_text(text: &str) -> String {
    use russh::keys::{HashAlg, ssh_key::LineEnding};
    swpush::key::load(&world().key)
        .unwrap()
        .sign("swpush", HashAlg::Sha512, text.as_bytes())
        .unwrap()
        .to_pem(LineEnding::LF)
        .unwrap()
}

/// The order for `package` as `op` and `challenge`, its text changed by
/// `edit` and then signed: a validly signed order saying anything.
fn signed_text(
    op: Change,
    package: &Path,
    challenge: &str,
    edit: &dyn Fn(String) -> String,
) -> String {
    let (text, _) = signed_order(op, package, challenge);
    let text = edit(text);
    framed((text.clone(), sign_text(&text)))
}

/// A change to an order's text, made before it is signed.
type Edit = Box<dyn Fn(String) -> String>;

/// `KEY VALUE` set to `value` in an order's text (the line must be there).
fn set(key: &'static str, value: &'static str) -> Edit {
    Box::new(move |text: String| {
        let mut found = false;
        let lines: Vec<String> = text
            .lines()
            .map(|line| match line.split_once(' ') {
                Some((k, _)) if k == key => {
                    found = true;
                    format!("{key} {value}")
                }
                _ => line.to_owned(),
            })
            .collect();
        assert!(found, "no {key} in {text}");
        lines.join("\n") + "\n"
    })
}

#[test]
fn a_name_that_is_no_package_name_is_refused_before_any_path_is_made_of_it() {
    let world = world();
    let host = "pathname";
    let (code, report) = push("install", host, &world.hello, &[]);
    assert_eq!(code, 0, "{report:#}");
    // A key trusted for web-* only: `-I web-/../hello` matches its pattern.
    trust(host, &[&line_for("web-*", "")]);
    let newer = world.hello_at("1.1.0");
    let evil = "web-/../hello";
    for busybox in [false, true] {
        for op in [Change::Install, Change::Remove] {
            let case = format!("{} {evil} (busybox {busybox})", op.as_str());
            let before = snapshot(world, host);
            let command = under(busybox, step_command(host, op.as_str(), evil));
            let (done, asked) = drive(
                host,
                &command,
                &|c| {
                    framed(signed_order_with(op, &newer, c, |order| {
                        order.package = evil.into();
                        if op == Change::Remove {
                            order.version = "-".into();
                            order.sha256 = "-".into();
                            order.size = 0;
                            order.hooks = Default::default();
                        }
                    }))
                },
                bytes(std::fs::read(&newer).unwrap()),
            );
            let want =
                format!("rejected - - the step's package name `{evil}` is not a package name");
            assert!(
                done.starts_with(&want),
                "{case}:\n got: {done}\nwant: {want}"
            );
            assert_eq!(asked, None, "{case}");
            assert_same(&snapshot(world, host), &before);
        }
    }
    assert_hello_runs(world, host, "1.0.0");
}

#[test]
fn every_field_of_the_order_is_checked_before_it_is_used() {
    let world = world();
    let host = "fields";
    let (code, report) = push("install", host, &world.hello, &[]);
    assert_eq!(code, 0, "{report:#}");
    let newer = world.hello_at("1.1.0");
    let add = |line: &'static str| -> Edit { Box::new(move |text: String| text + line + "\n") };
    let drop = |key: &'static str| -> Edit {
        Box::new(move |text: String| {
            let kept: Vec<&str> = text
                .lines()
                .filter(|l| l.split(' ').next() != Some(key))
                .collect();
            assert_ne!(kept.len(), text.lines().count(), "no {key}");
            kept.join("\n") + "\n"
        })
    };
    let long_version: &'static str = "1".repeat(65).leak();
    // Each an otherwise good, signed upgrade of hello 1.0.0 to 1.1.0.
    let cases: Vec<(Edit, String)> = vec![
        (
            set("format", "1"),
            "unknown order format 1 (this client reads format 4)".into(),
        ),
        (
            set("version", "../1.1.0"),
            "the order's version `../1.1.0` is not a version".into(),
        ),
        (
            set("version", ".1"),
            "the order's version `.1` is not a version".into(),
        ),
        (
            set("version", "1.1/0"),
            "the order's version `1.1/0` is not a version".into(),
        ),
        (
            set("version", "-"),
            "the order's version `-` is not a version".into(),
        ),
        (
            set("version", long_version),
            format!("the order's version `{long_version}` is not a version"),
        ),
        (
            set("sha256", &*"AB".repeat(32).leak()),
            "the order's sha256 is not 64 lowercase hex digits".into(),
        ),
        (
            set("sha256", &*"ab".repeat(31).leak()),
            "the order's sha256 is not 64 lowercase hex digits".into(),
        ),
        (
            set("sha256", "-"),
            "the order's sha256 is not 64 lowercase hex digits".into(),
        ),
        (
            set("size", "12k"),
            "the order's size `12k` is not a number".into(),
        ),
        (
            set("size", "-1"),
            "the order's size `-1` is not a number".into(),
        ),
        (
            set("size", "0"),
            "the order's size `0` is not a package size".into(),
        ),
        (
            set("size", "0100"),
            "the order's size `0100` is not a number".into(),
        ),
        (
            set("size", "99999999999999999999"),
            "the order's size `99999999999999999999` is not a number".into(),
        ),
        (
            set("unpacked_size", "many"),
            "the order's unpacked_size `many` is not a number".into(),
        ),
        (
            set("force", "yes"),
            "the order's force `yes` is not true or false".into(),
        ),
        (
            set("dry_run", "1"),
            "the order's dry_run `1` is not true or false".into(),
        ),
        (
            set("allow_downgrade", "TRUE"),
            "the order's allow_downgrade `TRUE` is not true or false".into(),
        ),
        (
            set("install_missing", ""),
            "the order's install_missing `` is not true or false".into(),
        ),
        (set("host", ""), "the order names no host".into()),
        (
            set("issued", "yesterday"),
            "the order's issued time `yesterday` is malformed".into(),
        ),
        (
            drop("unpacked_size"),
            "the order has no unpacked_size".into(),
        ),
        (drop("host"), "the order has no host".into()),
        (drop("dry_run"), "the order has no dry_run".into()),
        (
            add("colour blue"),
            "the order has an unknown field colour".into(),
        ),
    ];
    let never = || -> Sender { Box::new(|_, size| panic!("the step asked for {size} bytes")) };
    for busybox in [false, true] {
        let before = snapshot(world, host);
        let command = under(busybox, step_command(host, "upgrade", "hello"));
        for (edit, want) in &cases {
            let (done, asked) = drive(
                host,
                &command,
                &|c| signed_text(Change::Upgrade, &newer, c, edit),
                never(),
            );
            let want = format!("rejected 1.0.0 1.0.0 {want}");
            assert!(
                done.starts_with(&want),
                "busybox {busybox}:\n got: {done}\nwant: {want}"
            );
            assert_eq!(asked, None, "{want}");
        }
        // The step's own arguments, before it reads anything.
        let bad_names: [&str; 6] = ["Hello", ".hello", "a/b", "-x", "", &"a".repeat(65)];
        for name in bad_names {
            let command = under(busybox, step_command(host, "upgrade", name));
            let (done, asked) = drive(host, &command, &|_| unreachable!(), never());
            let want =
                format!("rejected - - the step's package name `{name}` is not a package name");
            assert!(done.starts_with(&want), "got: {done}\nwant: {want}");
            assert_eq!(asked, None);
        }
        let command = under(busybox, step_command(host, "frobnicate", "hello"));
        let (done, _) = drive(host, &command, &|_| unreachable!(), never());
        assert!(
            done.starts_with("rejected - - this step cannot do frobnicate"),
            "{done}"
        );
        assert_same(&snapshot(world, host), &before);
    }
    // The driver is sound: the same order unaltered upgrades.
    let (done, _) = drive(
        host,
        &step_command(host, "upgrade", "hello"),
        &|c| signed_text(Change::Upgrade, &newer, c, &|t| t),
        bytes(std::fs::read(&newer).unwrap()),
    );
    assert!(done.starts_with("upgraded 1.0.0 1.1.0"), "{done}");
}

#[test]
fn enroll_binds_a_client_to_its_name_and_an_order_for_another_host_is_refused() {
    let world = world();
    let fleet = &world.fleet;
    let host = "relay";
    let address = fleet.host(host).addr.to_string();
    let known = fleet.host(host).path("/etc/swpush/known_servers");
    let recorded = fleet.host(host).path("/etc/swpush/host_name");
    let enroll = |name: &str| {
        let inventory = world.inventory(&format!("enroll-{name}"), &[(name, address.clone())], "");
        let output = world
            .swpush("enroll")
            .arg("-i")
            .arg(&inventory)
            .key(&world.key)
            .json()
            .run();
        let (code, report) = output.code_and_report();
        assert_eq!(code, 0, "{report:#}");
        status_of(&report, name)
    };
    // A host whose key was trusted before enroll recorded names (as this
    // fleet's are) is bound by enrolling again, its key left as it is.
    let trusted = std::fs::read_to_string(&known).unwrap();
    assert!(!recorded.exists());
    let (status, message) = enroll(host);
    assert_eq!(status, "installed", "{message}");
    assert!(
        message.contains(
            "recorded host name relay in /etc/swpush/host_name; the key was already trusted"
        ),
        "{message}"
    );
    assert_eq!(std::fs::read_to_string(&recorded).unwrap(), "relay\n");
    assert_eq!(std::fs::read_to_string(&known).unwrap(), trusted);
    assert_eq!(enroll(host).0, "unchanged");

    std::fs::remove_file(&known).unwrap();
    std::fs::remove_file(&recorded).unwrap();
    let (status, message) = enroll(host);
    assert_eq!(status, "installed", "{message}");
    assert!(
        message.contains("recorded host name relay in /etc/swpush/host_name"),
        "{message}"
    );
    assert_eq!(std::fs::read_to_string(&recorded).unwrap(), "relay\n");
    // Enrolled again under another name: said, not overwritten.
    let (status, message) = enroll("impostor");
    assert_eq!(status, "unchanged", "{message}");
    assert!(
        message.contains("/etc/swpush/host_name names this host relay, not impostor"),
        "{message}"
    );
    assert_eq!(std::fs::read_to_string(&recorded).unwrap(), "relay\n");

    // A relay: the controller believes it talks to `impostor` and signs
    // for it; the session lands on relay.
    let before = snapshot(world, host);
    let relayed = world.inventory("relayed", &[("impostor", address.clone())], "");
    let (code, report) = world.push("install", &relayed, &world.hello, &[]);
    assert_eq!(code, 2, "{report:#}");
    assert_rejected(
        &report,
        "impostor",
        "the order is for host impostor, but this host is relay (/etc/swpush/host_name)",
        "relayed",
    );
    assert_same(&snapshot(world, host), &before);
    // The same under busybox, the step driven by hand.
    let (done, asked) = drive(
        host,
        &under(true, step_command(host, "install", "hello")),
        &|c| {
            framed(signed_order_with(
                Change::Install,
                &world.hello,
                c,
                |order| {
                    order.host = "impostor".into();
                },
            ))
        },
        bytes(std::fs::read(&world.hello).unwrap()),
    );
    assert!(
        done.starts_with("rejected - - the order is for host impostor, but this host is relay"),
        "{done}"
    );
    assert_eq!(asked, None);
    assert_same(&snapshot(world, host), &before);

    // Under its own name it installs.
    let own = world.inventory("own", &[(host, address)], "");
    let (code, report) = world.push("install", &own, &world.hello, &[]);
    assert_eq!(
        (code, status_of(&report, host).0.as_str()),
        (0, "installed"),
        "{report:#}"
    );
}

#[test]
fn a_client_gets_no_package_byte_before_its_order_or_in_a_dry_run() {
    let world = world();
    let size = std::fs::metadata(&world.hello).unwrap().len();
    let login = |user: &str, script: &str| world.hostile_login("eager", user, script);
    let hello = "echo 'swpush hello 1 0123456789abcdef0123456789abcdef - -'";
    // Asks for the package first, then for its order.
    login(
        "early",
        &format!(
            "#!/bin/sh\necho 'swpush need {size}'\n{hello}\nhead -c {size} >/dev/null\nsleep 2\n"
        ),
    );
    // Reads its order, then asks for the package: right in a real run,
    // never in a dry run.
    login(
        "dryneed",
        &format!(
            "#!/bin/sh\n{hello}\nsed -n '/END SSH SIGNATURE/q'\necho 'swpush need {size}'\nhead -c {size} >/dev/null\nsleep 2\n"
        ),
    );
    let address = world.fleet.host("eager").addr;
    let inventory = world.inventory(
        "eager",
        &[],
        &format!(
            "  early: {{address: {address}, user: early}}\n  dryneed: {{address: {address}, user: dryneed}}\n"
        ),
    );
    for (user, more, says) in [
        (
            "early",
            &[][..],
            "the client asked for the package before it was sent its order",
        ),
        (
            "dryneed",
            &["--dry-run"][..],
            "the client asked for the package in a dry run",
        ),
    ] {
        let mut args = vec!["--limit", user, "--timeout", "20"];
        args.extend_from_slice(more);
        let (code, report) = world.push("install", &inventory, &world.hello, &args);
        assert_eq!(code, 2, "{report:#}");
        let (status, message) = status_of(&report, user);
        assert_eq!(
            (status.as_str(), message.as_str()),
            ("failed", says),
            "{report:#}"
        );
        assert_eq!(report.host(user).bytes_sent, 0, "{user}");
    }
}

/// hello 1.1.0 with 16 MiB of zeros: a package of a few dozen KiB.
fn fat_package() -> std::path::PathBuf {
    world().variant("fat-1.1.0.tar.gz", |dir| {
        set_version(dir, "1.1.0");
        std::fs::write(dir.join("zeros"), vec![0u8; 16 << 20]).unwrap();
    })
}

#[test]
fn a_package_that_would_not_fit_is_refused_before_it_is_extracted() {
    let world = world();
    let host = "small";
    let fat = fat_package();
    assert!(std::fs::metadata(&fat).unwrap().len() < 1 << 20);
    world.in_host(
        host,
        &["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", "/opt"],
    );
    struct Unmount;
    impl Drop for Unmount {
        fn drop(&mut self) {
            let pid = crate::security::world()
                .fleet
                .host("small")
                .sshd_pid()
                .to_string();
            let _ = std::process::Command::new("nsenter")
                .args(["-t", &pid, "-m", "--", "umount", "-l", "/opt"])
                .status();
        }
    }
    let _unmount = Unmount;
    let (code, report) = push("install", host, &world.hello, &[]);
    assert_eq!(code, 0, "{report:#}");
    let releases = || world.in_host(host, &["ls", "-A", "/opt/swpush/hello/releases"]);
    let want = "the package unpacks to 16";
    let (code, report) = push("upgrade", host, &fat, &[]);
    assert_eq!(code, 2, "{report:#}");
    let (status, message) = status_of(&report, host);
    assert_eq!(status, "failed", "{message}");
    assert!(
        message.contains("no space left on /opt") && message.contains(want),
        "{message}"
    );
    assert_eq!(releases().trim(), "1.0.0");
    assert_eq!(
        world
            .in_host(host, &["readlink", "/opt/swpush/hello/current"])
            .trim(),
        "releases/1.0.0"
    );
    // A dry run says so too.
    let (code, report) = push("upgrade", host, &fat, &["--dry-run"]);
    let (status, message) = status_of(&report, host);
    assert_eq!((code, status.as_str()), (2, "failed"), "{message}");
    assert!(
        message.contains("would upgrade 1.0.0 → 1.1.0")
            && message.contains("would fail: no space left on /opt")
            && message.contains(want),
        "{message}"
    );
    // busybox's df and tools, the step driven by hand.
    let (done, _) = drive(
        host,
        &under(true, step_command(host, "upgrade", "hello")),
        &|c| framed(signed_order(Change::Upgrade, &fat, c)),
        bytes(std::fs::read(&fat).unwrap()),
    );
    assert!(
        done.starts_with("failed 1.0.0 1.0.0 no space left on /opt"),
        "{done}"
    );
    assert!(done.contains(want), "{done}");
    assert_eq!(releases().trim(), "1.0.0");
    assert_eq!(
        world
            .in_host(host, &["readlink", "/opt/swpush/hello/current"])
            .trim(),
        "releases/1.0.0"
    );
}

#[test]
fn a_package_that_unpacks_to_more_than_its_signed_size_is_refused() {
    let world = world();
    let host = "liar";
    let (code, report) = push("install", host, &world.hello, &[]);
    assert_eq!(code, 0, "{report:#}");
    let fat = fat_package();
    for busybox in [false, true] {
        let before = snapshot(world, host);
        let (done, asked) = drive(
            host,
            &under(busybox, step_command(host, "upgrade", "hello")),
            &|c| signed_text(Change::Upgrade, &fat, c, &set("unpacked_size", "1048576")),
            bytes(std::fs::read(&fat).unwrap()),
        );
        assert!(
            done.starts_with("rejected 1.0.0 1.0.0 package refused: it unpacks to more than the signed unpacked_size 1048576"),
            "busybox {busybox}: {done}"
        );
        assert!(asked.is_some());
        // Nothing kept of it: only the lock and the incoming file came
        // and went, which touched their folders' times.
        let without = |mut files: Snapshot| {
            for time in [
                "/var/lib/swpush/",
                "/var/cache/swpush/",
                "/var/cache/swpush/hello",
            ] {
                files.remove(time);
            }
            files
        };
        assert_same(&without(snapshot(world, host)), &without(before));
    }
    // Without df the free space cannot be checked: refused before a
    // package byte is asked for.
    let no_df = "readlink chown cp find tar sha256sum head od tr cut sed awk mktemp mv ln rm mkdir \
                 cat date wc tail grep dirname sleep chmod gzip";
    let command = step_command(host, "upgrade", "hello").replacen(
        "/bin/sh -c ",
        &format!(
            "mkdir -p /var/lib/nodf && for t in {no_df}; do ln -sf /bin/busybox /var/lib/nodf/$t; done; \
             ln -sf \"$(command -v ssh-keygen)\" /var/lib/nodf/ssh-keygen; PATH=/var/lib/nodf /bin/busybox sh -c "
        ),
        1,
    );
    let before = snapshot(world, host);
    let (done, asked) = drive(
        host,
        &command,
        &|c| framed(signed_order(Change::Upgrade, &fat, c)),
        bytes(std::fs::read(&fat).unwrap()),
    );
    assert!(
        done.starts_with("failed 1.0.0 1.0.0 df is missing on this host"),
        "{done}"
    );
    assert_eq!(asked, None);
    assert_same(&snapshot(world, host), &before);
    assert_hello_runs(world, host, "1.0.0");
}
