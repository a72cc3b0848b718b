//! `swpush install` end to end: the real binary against real sshd hosts,
//! the real client step under the hosts' /bin/sh (dash) and under busybox,
//! with OpenSSH's own ssh-keygen deciding the distribution right.
//!
//! One fleet serves every test in this file; each test owns its hosts.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use swpush::order::Change;

use crate::support::SSH_PORT;
use crate::support::world::*;
use crate::support::{step, wait_until};

const HOSTS: &[&str] = &[
    "ok1",
    "ok2",
    "ok3",
    "nofile",
    "otherkey",
    "narrow",
    "revoked",
    "unknownkey",
    "changedkey",
    "hookfail",
    "hookfresh",
    "fresh",
    "replay1",
    "replay2",
    "bb",
    "sudoer",
    "nosudo",
    "prefail",
];

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| World::start(HOSTS))
}

/// An inventory of some fleet hosts (by name), plus extra YAML host entries.
fn inventory(world: &World, hosts: &[&str], extra: &str) -> PathBuf {
    world.fleet_inventory(&hosts.join("-"), hosts, extra)
}

fn trust(world: &World, host: &str, line: &str) {
    let path = world.fleet.host(host).path("/etc/swpush/known_servers");
    std::fs::write(path, format!("{line}\n")).unwrap();
}

/// Runs `swpush install` with the JSON report; returns (exit code, report).
fn install(world: &World, inventory: &Path, package: &Path, more: &[&str]) -> (i32, Report) {
    world.push("install", inventory, package, more)
}

#[test]
fn installs_where_trusted_and_refuses_everyone_else() {
    let world = world();
    let fleet = &world.fleet;
    for host in ["ok1", "ok2", "ok3", "unknownkey", "changedkey"] {
        trust(world, host, &world.trust_line);
    }
    // Another controller's key, a key limited to other packages, a revoked key.
    let stranger = fleet.dir().join("stranger_key");
    assert!(
        fleet
            .swpush("keygen")
            .arg("-o")
            .arg(&stranger)
            .run()
            .status
            .success()
    );
    let stranger_pub = std::fs::read_to_string(fleet.dir().join("stranger_key.pub")).unwrap();
    trust(
        world,
        "otherkey",
        &format!("* namespaces=\"swpush\" {}", stranger_pub.trim()),
    );
    trust(
        world,
        "narrow",
        &world.trust_line.replacen('*', "web-*,db", 1),
    );
    trust(world, "revoked", &world.trust_line);
    let public = std::fs::read_to_string(world.key.with_extension("pub")).unwrap_or_else(|_| {
        std::fs::read_to_string(format!("{}.pub", world.key.display())).unwrap()
    });
    std::fs::write(
        fleet.host("revoked").path("/etc/swpush/revoked_servers"),
        &public,
    )
    .unwrap();

    // Host keys: one unknown to the controller, one changed since it was recorded.
    let known_hosts = fleet.dir().join("known_hosts-main");
    let other_host_key = fleet.dir().join("other_host_key");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other_host_key)
        .status()
        .unwrap();
    assert!(made.success());
    let other = std::fs::read_to_string(other_host_key.with_extension("pub")).unwrap();
    let mut lines = String::new();
    for line in std::fs::read_to_string(fleet.known_hosts())
        .unwrap()
        .lines()
    {
        let unknown = format!("[{}]:{SSH_PORT} ", fleet.host("unknownkey").addr);
        let changed = format!("[{}]:{SSH_PORT} ", fleet.host("changedkey").addr);
        if line.starts_with(&unknown) {
            continue;
        } else if line.starts_with(&changed) {
            lines += &format!(
                "{changed}{}\n",
                other
                    .split_whitespace()
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        } else {
            lines += &format!("{line}\n");
        }
    }
    std::fs::write(&known_hosts, lines).unwrap();

    let dead = format!("  dead: {{address: {}}}\n", fleet.dead_address());
    // ok1 ... changedkey: the first nine hosts of the fleet.
    let hosts = &HOSTS[..9];
    let inv = inventory(world, hosts, &dead);
    let (code, report) = install(
        world,
        &inv,
        &world.hello,
        &["--known-hosts", known_hosts.to_str().unwrap()],
    );
    assert_eq!(code, 2, "some hosts did not succeed: {report:#}");

    // The report follows SPEC §7.
    assert_eq!(report["op"], "install");
    assert_eq!(report["package"]["name"], "hello");
    assert_eq!(report["package"]["version"], "1.0.0");
    assert_eq!(report["package"]["sha256"].as_str().unwrap().len(), 64);
    assert!(report["started"].as_str().unwrap().ends_with('Z'));
    assert!(report["finished"].as_str().unwrap().ends_with('Z'));
    assert_eq!(report.hosts.len(), 10);
    assert_eq!(report["summary"]["installed"], 3);
    assert_eq!(report["summary"]["rejected"], 4);
    assert_eq!(report["summary"]["unreachable"], 3);

    let size = std::fs::metadata(&world.hello).unwrap().len();
    for host in ["ok1", "ok2", "ok3"] {
        let entry = report.host(host);
        assert_eq!(entry.status, "installed", "{entry}");
        assert_eq!(entry.previous_version, None);
        assert_eq!(entry.version.as_deref(), Some("1.0.0"));
        assert_eq!(entry.bytes_sent, size);
        assert_eq!(entry.attempts, 1);
        assert_eq!(entry.address, fleet.host(host).addr.to_string());
        assert_eq!(
            read_link(world, host, "/opt/swpush/hello/current"),
            "releases/1.0.0"
        );
        let h = fleet.host(host);
        assert!(
            h.path("/opt/swpush/hello/releases/1.0.0/bin/hello")
                .is_file()
        );
        let ran = fleet.ssh_ok(host, "/opt/swpush/hello/current/bin/hello");
        assert_eq!(ran, "hello from swpush example package 1.0.0\n");
        let hooks = std::fs::read_to_string(h.path("/opt/swpush/hello/hooks.log")).unwrap();
        assert_eq!(
            hooks,
            "pre_install op=install package=hello version=1.0.0 previous= dir=/opt/swpush/hello/releases/1.0.0\n\
             post_install op=install package=hello version=1.0.0 previous= dir=/opt/swpush/hello/releases/1.0.0\n"
        );
        assert!(
            is_empty_dir(&h.path("/tmp")),
            "{host}: the step left files in /tmp"
        );
        assert!(h.path("/var/lib/swpush/packages/hello").is_file());
    }

    let expectations = [
        ("nofile", "rejected", "trusts no controller"),
        ("otherkey", "rejected", "not signed by a key"),
        ("narrow", "rejected", "not signed by a key"),
        ("revoked", "rejected", "revoked"),
        ("dead", "unreachable", ""),
        ("unknownkey", "unreachable", "SHA256:"),
        ("changedkey", "unreachable", "SHA256:"),
    ];
    for (host, status, says) in expectations {
        let (got, message) = status_of(&report, host);
        assert_eq!(got, status, "{host}: {message}");
        assert!(
            message.contains(says),
            "{host}: `{message}` should say `{says}`"
        );
        assert_eq!(report.host(host).bytes_sent, 0, "{host}");
        if host != "dead" {
            let h = fleet.host(host);
            assert!(
                is_empty_dir(&h.path("/var/cache/swpush")),
                "{host}: cache not empty"
            );
            assert!(is_empty_dir(&h.path("/tmp")), "{host}: tmp not empty");
            assert!(
                !h.path("/opt/swpush/hello").exists(),
                "{host}: something was installed"
            );
        }
    }
    assert!(
        !std::fs::read_to_string(&known_hosts)
            .unwrap()
            .contains(&fleet.host("unknownkey").addr.to_string()),
        "an unknown host key is not recorded without --accept-new-host-keys"
    );

    // The steps are gone: no session or process is left on any host.
    for &host in hosts {
        let h = fleet.host(host);
        let what = format!("{host}: every session gone");
        wait_until(Duration::from_secs(5), &what, || {
            h.session_pids().is_empty()
        });
    }

    // A second run changes nothing and uploads nothing.
    let inv = inventory(world, &["ok1", "ok2", "ok3"], "");
    let (code, again) = install(world, &inv, &world.hello, &[]);
    assert_eq!(code, 0, "{again:#}");
    for host in ["ok1", "ok2", "ok3"] {
        let entry = again.host(host);
        assert_eq!(entry.status, "unchanged");
        assert_eq!(entry.bytes_sent, 0);
        assert_eq!(entry.previous_version.as_deref(), Some("1.0.0"));
    }

    // Every run is kept as the controller's record.
    let runs = fleet.home().join(".local/state/swpush/runs");
    assert!(std::fs::read_dir(&runs).unwrap().count() >= 2);
}

/// A copy of packages/hello whose post_install fails, same name and version.
fn broken_hello(world: &World) -> PathBuf {
    world.variant("broken-hello.tar.gz", |dir| {
        std::fs::write(
            dir.join("hooks/post.sh"),
            "#!/bin/sh\necho starting the service\necho boom: port in use >&2\nexit 3\n",
        )
        .unwrap();
        std::fs::write(dir.join("bin/hello"), "#!/bin/sh\necho broken\n").unwrap();
    })
}

#[test]
fn a_failing_post_install_leaves_the_previous_release_current() {
    let world = world();
    let fleet = &world.fleet;
    trust(world, "hookfail", &world.trust_line);
    trust(world, "hookfresh", &world.trust_line);
    let inv = inventory(world, &["hookfail"], "");
    let (code, _) = install(world, &inv, &world.hello, &[]);
    assert_eq!(code, 0);
    let broken = broken_hello(world);

    // Same version, other content: refused without --force ...
    let (code, report) = install(world, &inv, &broken, &[]);
    assert_eq!(code, 0, "skipped is not a failure");
    let (status, message) = status_of(&report, "hookfail");
    assert_eq!(status, "skipped");
    assert!(message.contains("bump the version"), "{message}");

    // ... and with --force its failing post_install switches back.
    let (code, report) = install(world, &inv, &broken, &["--force"]);
    assert_eq!(code, 2);
    let (status, message) = status_of(&report, "hookfail");
    assert_eq!(status, "failed");
    assert!(
        message.contains("post_install failed, 1.0.0 is current again"),
        "{message}"
    );
    let hooks = std::fs::read_to_string(fleet.host("hookfail").path("/opt/swpush/hello/hooks.log"))
        .unwrap();
    assert!(
        hooks
            .lines()
            .last()
            .unwrap()
            .starts_with("post_install op=rollback package=hello version=1.0.0"),
        "the previous release's post_install ran again to restore the environment:\n{hooks}"
    );
    assert!(
        message.contains("boom: port in use"),
        "hook output in the message: {message}"
    );
    assert_hello_runs(world, "hookfail", "1.0.0");
    let releases: Vec<_> =
        std::fs::read_dir(fleet.host("hookfail").path("/opt/swpush/hello/releases"))
            .unwrap()
            .collect();
    assert_eq!(releases.len(), 1, "no half-installed release left");

    // On a fresh host the failed install is removed again. This run reads
    // the text report, as an operator would, and keeps the JSON in a file.
    let inv = inventory(world, &["hookfresh"], "");
    let saved = fleet.dir().join("hookfresh-report.json");
    let output = world
        .swpush("install")
        .inventory(&inv)
        .key(&world.key)
        .arg("--report")
        .arg(&saved)
        .arg(&broken)
        .run();
    assert_eq!(output.status.code(), Some(2));
    let shown = text(&output.stdout);
    let lines: Vec<&str> = shown.lines().collect();
    assert!(
        lines[0].starts_with("HOST") && lines[0].contains("STATUS"),
        "{shown}"
    );
    assert!(
        lines[1].starts_with("hookfresh") && lines[1].contains("failed"),
        "{shown}"
    );
    assert!(
        lines.contains(&"install hello 1.0.0: 1 host: 1 failed"),
        "{shown}"
    );
    let not_done = lines
        .iter()
        .position(|l| l.starts_with("Not done"))
        .expect(&shown);
    assert!(lines[not_done].contains("hello 1.0.0"), "{shown}");
    assert!(
        lines[not_done + 1].trim_start().starts_with("hookfresh"),
        "{shown}"
    );
    let report = Report::parse(&std::fs::read(&saved).unwrap());
    let (status, message) = status_of(&report, "hookfresh");
    assert_eq!(
        (status.as_str(), message.contains("removed again")),
        ("failed", true),
        "{message}"
    );
    let h = fleet.host("hookfresh");
    assert!(!h.path("/opt/swpush/hello/current").exists());
    assert!(is_empty_dir(&h.path("/opt/swpush/hello/releases")));
    assert!(!h.path("/var/lib/swpush/packages/hello").exists());
}

#[test]
fn enroll_grants_the_right_once_and_then_install_works() {
    let world = world();
    let fleet = &world.fleet;
    let inv = inventory(world, &["fresh"], "");
    let (_, report) = install(world, &inv, &world.hello, &[]);
    assert_eq!(status_of(&report, "fresh").0, "rejected");

    let enroll = |expected: &str| {
        let output = world
            .swpush("enroll")
            .inventory(&inv)
            .key(&world.key)
            .json()
            .run();
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        let report = output.report();
        assert_eq!(status_of(&report, "fresh").0, expected, "{report:#}");
    };
    enroll("installed");
    enroll("unchanged");
    let known =
        std::fs::read_to_string(fleet.host("fresh").path("/etc/swpush/known_servers")).unwrap();
    assert_eq!(
        known,
        format!("{}\n", world.trust_line),
        "one line, the one keygen printed"
    );

    let (code, report) = install(world, &inv, &world.hello, &[]);
    assert_eq!(
        (code, status_of(&report, "fresh").0.as_str()),
        (0, "installed"),
        "{report:#}"
    );
}

/// Drives the step by hand over `ssh` ([`step::drive`]), sending the
/// example package when asked; returns the completion line.
fn drive(
    world: &World,
    host: &str,
    command: &str,
    answer: &mut dyn FnMut(&str) -> String,
) -> String {
    let package = step::bytes(std::fs::read(&world.hello).unwrap());
    step::drive(world, host, command, answer, package).0
}

/// A signed order and its signature for `challenge`, framed for the step.
fn framed_order(world: &World, host: &str, challenge: &str) -> String {
    world.framed_order(
        Change::Install,
        Ordered::Package(&world.hello),
        host,
        challenge,
        |_| {},
    )
}

#[test]
fn a_captured_order_cannot_be_replayed() {
    let world = world();
    trust(world, "replay1", &world.trust_line);
    trust(world, "replay2", &world.trust_line);

    let mut captured = String::new();
    let done = drive(
        world,
        "replay1",
        &world.step_command("replay1"),
        &mut |challenge| {
            captured = framed_order(world, "replay1", challenge);
            captured.clone()
        },
    );
    assert!(done.starts_with("installed - 1.0.0"), "{done}");
    std::fs::remove_dir_all(world.fleet.host("replay1").path("/opt/swpush/hello")).unwrap();
    std::fs::remove_file(
        world
            .fleet
            .host("replay1")
            .path("/var/lib/swpush/packages/hello"),
    )
    .unwrap();

    for host in ["replay1", "replay2"] {
        let done = drive(world, host, &world.step_command(host), &mut |_| {
            captured.clone()
        });
        assert!(done.starts_with("rejected"), "{host}: {done}");
        assert!(done.contains("replayed"), "{host}: {done}");
        assert!(
            !world.fleet.host(host).path("/opt/swpush/hello").exists(),
            "{host}"
        );
    }
}

#[test]
fn the_step_runs_under_busybox_ash_with_busybox_tools() {
    let world = world();
    trust(world, "bb", &world.trust_line);
    let tools = "tar gzip sha256sum head od tr cut sed awk mktemp mv ln rm mkdir cat date wc tail grep dirname sleep chmod";
    // Busybox's tools first in PATH; then only busybox's tools without
    // gzip (a minimal system: tar's own -z reads the .tar.gz) and ssh-keygen.
    let no_gzip = "readlink chown cp find sort uniq df tar sha256sum head od tr cut sed awk mktemp mv ln rm mkdir cat date wc tail grep dirname sleep chmod setsid";
    let paths = [
        format!(
            "mkdir -p /opt/bb && for t in {tools}; do ln -sf /bin/busybox /opt/bb/$t; done; PATH=/opt/bb:$PATH busybox sh -c "
        ),
        format!(
            "mkdir -p /opt/bbmin && for t in {no_gzip}; do ln -sf /bin/busybox /opt/bbmin/$t; done; \
             ln -sf \"$(command -v ssh-keygen)\" /opt/bbmin/ssh-keygen; PATH=/opt/bbmin /bin/busybox sh -c "
        ),
    ];
    for path in paths {
        let command = world.step_command("bb").replacen("/bin/sh -c ", &path, 1);
        let done = drive(world, "bb", &command, &mut |challenge| {
            framed_order(world, "bb", challenge)
        });
        assert!(done.starts_with("installed - 1.0.0"), "{path}: {done}");
        assert_hello_runs(world, "bb", "1.0.0");
        world.fleet.ssh_ok(
            "bb",
            "rm -rf /opt/swpush /var/lib/swpush/* /var/cache/swpush/*",
        );
    }
}

#[test]
fn become_runs_the_step_through_sudo_and_fails_clearly_without_it() {
    let world = world();
    let fleet = &world.fleet;
    // A login user on each host (in the host's private /etc; home in its /opt);
    // only `sudoer` may sudo without a password.
    for host in ["sudoer", "nosudo"] {
        fleet.ssh_ok(
            host,
            "useradd -M -d /opt/deployer -s /bin/sh -p '*' deployer",
        );
        trust(world, host, &world.trust_line);
    }
    fleet.ssh_ok(
        "sudoer",
        "mkdir -p /etc/sudoers.d && echo 'deployer ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/deployer && chmod 440 /etc/sudoers.d/deployer",
    );
    let extra = format!(
        "  sudoer: {{address: {}, user: deployer, become: true}}\n  nosudo: {{address: {}, user: deployer, become: true}}\n",
        fleet.host("sudoer").addr,
        fleet.host("nosudo").addr
    );
    let inv = world.fleet_inventory("become", &[], &extra);
    let (code, report) = install(world, &inv, &world.hello, &[]);
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(status_of(&report, "sudoer").0, "installed", "{report:#}");
    let installed = fleet
        .host("sudoer")
        .path("/opt/swpush/hello/releases/1.0.0/bin/hello");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(installed).unwrap().uid(),
        0,
        "installed as root through sudo"
    );
    let (status, message) = status_of(&report, "nosudo");
    assert_eq!(status, "failed");
    assert!(message.contains("password is required"), "{message}");
    assert!(!fleet.host("nosudo").path("/opt/swpush/hello").exists());
}

#[test]
fn a_host_behind_a_jump_host_is_never_reached_directly() {
    let world = world();
    let fleet = &world.fleet;
    let extra = format!(
        "  jumped: {{address: {}, proxy_jump: bastion.example}}\n",
        fleet.host("ok3").addr
    );
    let inv = world.fleet_inventory("jumped", &[], &extra);
    let (code, report) = install(world, &inv, &world.hello, &[]);
    assert_eq!(code, 2);
    let (status, message) = status_of(&report, "jumped");
    assert_eq!(status, "unreachable");
    assert!(
        message.contains("bastion.example:22 (jump host 1 of"),
        "{message}"
    );
}

#[test]
fn a_failing_pre_install_changes_nothing() {
    let world = world();
    let fleet = &world.fleet;
    trust(world, "prefail", &world.trust_line);
    let inv = inventory(world, &["prefail"], "");
    let (code, _) = install(world, &inv, &world.hello, &[]);
    assert_eq!(code, 0);
    let before =
        std::fs::read_to_string(fleet.host("prefail").path("/var/lib/swpush/packages/hello"))
            .unwrap();

    let package = world.variant("prefail.tar.gz", |dir| {
        std::fs::write(
            dir.join("hooks/pre.sh"),
            "#!/bin/sh\necho cannot stop the service >&2\nexit 1\n",
        )
        .unwrap();
        std::fs::write(dir.join("bin/hello"), "#!/bin/sh\necho other\n").unwrap();
    });

    let (code, report) = install(world, &inv, &package, &["--force"]);
    assert_eq!(code, 2);
    let (status, message) = status_of(&report, "prefail");
    assert_eq!(status, "failed");
    assert!(
        message.contains("pre_install failed, nothing changed")
            && message.contains("cannot stop the service"),
        "{message}"
    );
    assert_hello_runs(world, "prefail", "1.0.0");
    let after =
        std::fs::read_to_string(fleet.host("prefail").path("/var/lib/swpush/packages/hello"))
            .unwrap();
    assert_eq!(before, after, "the state record is untouched");
    assert!(is_empty_dir(&fleet.host("prefail").path("/tmp")));
}
