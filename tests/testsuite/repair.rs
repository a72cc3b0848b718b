//! Crash repair, kill point by kill point: the client step of an install,
//! upgrade, reinstall, rollback or remove is killed (SIGKILL of its whole
//! process group, or of the step's own process alone, as the OOM killer
//! does; SIGTERM for the trap's part) at each phase, and the next run on
//! that host must repair first, say so in the host's message, and end as a
//! normal run would. Each test here is one row of the table in
//! docs/failure-modes.md ("Crash repair, kill point by kill point").
//!
//! The kills are real and the shipped step is unchanged: a hook of the
//! package kills its parent (the step) when `/opt/kill` on that host names
//! the hook and the op, and then keeps running for a while, as a hook whose
//! step died would; the point right after the commit is held by making the
//! host's run log (`/var/lib/swpush/log`, written just after the state
//! record) a FIFO, and the test kills the step blocked opening it. Under
//! dash with GNU tools, and under busybox ash with busybox tools (busybox
//! bound over `/bin/sh` and the tools inside that host's mount namespace).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::thread::sleep;
use std::time::Duration;

use crate::support::wait_until;
use crate::support::world::*;

const DASH_HOSTS: &[&str] = &[
    "inst-pre",
    "inst-post",
    "inst-commit",
    "inst-tar",
    "up-recv",
    "rm-del",
    "up-pre",
    "up-post",
    "up-commit",
    "re-post",
    "re-commit",
    "rb-pre",
    "rb-post",
    "rb-commit",
    "rm-pre",
    "rm-commit",
    "term-post",
    "term-pre",
    "term-rb",
    "term-rm",
    "dry-after-kill",
    "pid-reused",
    "hook-unknown",
    "nosetsid",
    "lock-race",
];
const BUSYBOX_HOSTS: &[&str] = &["bb-up-post", "bb-up-commit", "bb-pid-reused"];

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let hosts: Vec<&str> = DASH_HOSTS.iter().chain(BUSYBOX_HOSTS).copied().collect();
        let world = World::start_trusted(&hosts);
        for host in BUSYBOX_HOSTS {
            use_busybox(&world, host);
        }
        world
    })
}

/// Busybox's ash as the host's /bin/sh and busybox's tools in place of
/// GNU's, inside the host's mount namespace only.
fn use_busybox(world: &World, host: &str) {
    let tools = "tar sha256sum head od tr cut sed awk mktemp mv ln rm mkdir cat date wc tail \
                 grep dirname sleep chmod chown cp find readlink setsid ps sh";
    let script = format!(
        "for t in {tools}; do mount --bind /bin/busybox \"$(readlink -f /usr/bin/$t)\" || exit 1; done"
    );
    world.in_host(host, &["/bin/dash", "-c", &script]);
    let said = world
        .fleet
        .ssh_ok(host, "/bin/sh -c 'tar --help' 2>&1 | head -n 1");
    assert!(said.contains("BusyBox"), "{host}: {said}");
}

/// hello VERSION whose hooks kill their step when `/opt/kill` says
/// `HOOK:OP HOW` (HOW: `step`, the step's process alone; `group`, its whole
/// process group; `term`, SIGTERM to the step), and then keep running 20 s
/// and leave `/opt/survived`: a hook the next run must stop before it
/// touches anything. `other` gives the program other content (a reinstall).
fn deadly(version: &str, other: bool) -> PathBuf {
    let world = world();
    let file = format!(
        "deadly-{version}{}.tar.gz",
        if other { "-other" } else { "" }
    );
    let out = world.fleet.dir().join(&file);
    if out.exists() {
        return out;
    }
    world.variant(&file, |dir| {
        set_version(dir, version);
        for (hook, file) in [
            ("pre_install", "hooks/pre.sh"),
            ("post_install", "hooks/post.sh"),
            ("pre_remove", "hooks/remove.sh"),
        ] {
            append(dir, file, &kill_snippet(hook));
        }
        if other {
            std::fs::write(dir.join("bin/hello"), "#!/bin/sh\necho reinstalled\n").unwrap();
        }
    })
}

fn kill_snippet(hook: &str) -> String {
    format!(
        r#"if [ -f /opt/kill ] && read -r at how </opt/kill && [ "$at" = "{hook}:$SWPUSH_OP" ]; then
    rm -f /opt/kill
    case $how in
        step) kill -KILL "$PPID" ;;
        group) kill -KILL "-$(sed 's/.*) //' "/proc/$PPID/stat" | cut -d ' ' -f 3)" ;;
        term) kill -TERM "$PPID" ;;
    esac
    sleep 20
    echo "{hook} $how" >>/opt/survived
fi
"#
    )
}

/// hello VERSION with `files` more files of one byte each, or a blob of
/// `blob` random MiB (uncompressed): a package that takes a while to
/// extract or to delete, or to receive.
fn heavy(version: &str, files: usize, blob: u64) -> PathBuf {
    let world = world();
    let file = format!("heavy-{version}-{files}-{blob}.tar");
    let out = world.fleet.dir().join(&file);
    if out.exists() {
        return out;
    }
    world.variant(&file, |dir| {
        set_version(dir, version);
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        for n in 0..files {
            std::fs::write(data.join(format!("f{n:05}")), "x").unwrap();
        }
        if blob > 0 {
            let made = Command::new("head")
                .args(["-c", &(blob << 20).to_string(), "/dev/urandom"])
                .stdout(std::fs::File::create(data.join("blob")).unwrap())
                .status()
                .unwrap();
            assert!(made.success());
        }
    })
}

/// What a run acts on: a deadly package (`v:VERSION`, or `x:VERSION` with
/// other content), a heavy one (`m:VERSION`, many files; `b:VERSION`, a
/// big blob) or an installed package by name (`hello`).
fn subject(spec: &str) -> PathBuf {
    match spec.split_once(':') {
        Some(("v", version)) => deadly(version, false),
        Some(("x", version)) => deadly(version, true),
        Some(("m", version)) => heavy(version, 20_000, 0),
        Some(("b", version)) => heavy(version, 0, 40),
        _ => PathBuf::from(spec),
    }
}

fn run(host: &str, op: &str, spec: &str, more: &[&str]) -> (i32, Report) {
    let world = world();
    let inventory = world.fleet_inventory(host, &[host], "");
    let mut args = vec!["--busy-wait", "1"];
    if !more.contains(&"--busy-retries") {
        args.extend_from_slice(&["--busy-retries", "2"]);
    }
    args.extend_from_slice(more);
    world.push(op, &inventory, &subject(spec), &args)
}

#[derive(Clone, Copy)]
enum At {
    /// In this hook (`pre_install:upgrade`, `pre_remove:remove`, ...).
    Hook(&'static str),
    /// Right after the state record (the commit point), before the log,
    /// the history, the release record's tidy-up and the lock.
    Commit,
    /// While the package arrives (in the cache folder, as `.incoming.PID`).
    Receiving,
    /// While tar extracts the package.
    Extracting,
    /// A remove, after it dropped the state record, while it deletes the
    /// package's releases.
    Deleting,
}

#[derive(Clone, Copy, PartialEq)]
enum How {
    Step,
    Group,
    Term,
}

impl How {
    fn word(self) -> &'static str {
        match self {
            How::Step => "step",
            How::Group => "group",
            How::Term => "term",
        }
    }
}

/// One row of the table: a host set up by `setup`, `op` killed at `at` by
/// `how`, then `next`, which must end `status` with `message` (empty: an
/// empty message), leaving `current` current, `history` as the history and
/// `program` in the current release's program output.
struct Row {
    host: &'static str,
    setup: &'static [(&'static str, &'static str, &'static [&'static str])],
    op: (&'static str, &'static str, &'static [&'static str]),
    at: At,
    how: How,
    next: (&'static str, &'static str),
    status: &'static str,
    message: &'static str,
    current: Option<&'static str>,
    history: &'static str,
    program: &'static str,
}

fn row(row: Row) {
    let world = world();
    let h = world.fleet.host(row.host);
    for (op, spec, more) in row.setup {
        let (code, report) = run(row.host, op, spec, more);
        assert_eq!(code, 0, "{}: setup {op} {spec}: {report:#}", row.host);
    }
    let (op, spec, more) = row.op;
    let report = match row.at {
        At::Hook(hook) => {
            std::fs::write(h.path("/opt/kill"), format!("{hook} {}\n", row.how.word())).unwrap();
            let (_, report) = run(row.host, op, spec, more);
            assert!(
                !h.path("/opt/kill").exists(),
                "{}: the hook never ran",
                row.host
            );
            report
        }
        At::Commit => killed_at_commit(row.host, op, spec, more, row.how),
        At::Receiving => {
            let cache = h.path("/var/cache/swpush");
            killed_when(row.host, op, spec, more, row.how, &|| {
                names_in(&cache).iter().any(|name| {
                    name.starts_with(".incoming.")
                        && std::fs::metadata(cache.join(name)).is_ok_and(|m| m.len() > 0)
                })
            })
        }
        At::Extracting => killed_when(row.host, op, spec, more, row.how, &|| {
            world.fleet.host(row.host).processes().iter().any(|p| {
                p.split_once(' ')
                    .is_some_and(|(_, cmd)| cmd.starts_with("tar ") && cmd.contains("-x"))
            })
        }),
        At::Deleting => {
            let record = h.path("/var/lib/swpush/packages/hello");
            let report = killed_when(row.host, op, spec, more, row.how, &|| !record.exists());
            assert!(
                h.path("/var/lib/swpush/history/hello").exists(),
                "{}: the kill came after the deletion",
                row.host
            );
            report
        }
    };
    let (status, message) = status_of(&report, row.host);
    assert_eq!(status, "failed", "{}: {report:#}", row.host);
    assert!(
        message.contains("before it reported how it went"),
        "{}: {message}",
        row.host
    );

    let (next_op, next_spec) = row.next;
    let (code, report) = run(row.host, next_op, next_spec, &[]);
    let (status, message) = status_of(&report, row.host);
    assert_eq!(
        (code, status.as_str()),
        (0, row.status),
        "{}: {report:#}",
        row.host
    );
    if row.message.is_empty() {
        assert_eq!(message, "", "{}: nothing to repair", row.host);
    } else {
        assert!(message.contains(row.message), "{}: {message:?}", row.host);
    }
    assert_repaired(world, row.host, row.current, row.history);
    if let Some(version) = row.current {
        let said = world
            .fleet
            .ssh_ok(row.host, "/opt/swpush/hello/current/bin/hello");
        assert!(
            said.contains(row.program),
            "{}: {version}: {said}",
            row.host
        );
    }
}

/// Runs `op` with the host's run log made a FIFO, so that the step blocks
/// right after its commit point; kills it there by `how`; returns the
/// report of the killed run.
fn killed_at_commit(host: &str, op: &str, spec: &str, more: &[&str], how: How) -> Report {
    let world = world();
    let h = world.fleet.host(host);
    let log = h.path("/var/lib/swpush/log");
    let _ = std::fs::remove_file(&log);
    let made = Command::new("mkfifo").arg(&log).status().unwrap();
    assert!(made.success());
    let record = h.path("/var/lib/swpush/packages/hello");
    let before = std::fs::read_to_string(&record).ok();
    let report = killed_when(host, op, spec, more, how, &|| {
        // The release record follows the state record; then the step
        // blocks opening the log.
        let committed = std::fs::read_to_string(&record).ok() != before;
        if committed {
            sleep(Duration::from_millis(500));
        }
        committed
    });
    std::fs::remove_file(&log).unwrap();
    report
}

/// Runs `op` and kills its step by `how` (not `Term`) as soon as
/// `reached()` says it is at the kill point (polled every 2 ms); returns
/// the report of the killed run.
fn killed_when(
    host: &str,
    op: &str,
    spec: &str,
    more: &[&str],
    how: How,
    reached: &dyn Fn() -> bool,
) -> Report {
    let world = world();
    let h = world.fleet.host(host);
    let inventory = world.fleet_inventory(host, &[host], "");
    let run = world.push_run(op, &inventory, &subject(spec), more).spawn();
    wait_until(
        Duration::from_secs(60),
        &format!("{host}: the {op} got there"),
        reached,
    );
    let holder = std::fs::read_to_string(h.path("/var/lib/swpush/lock/pid")).unwrap();
    let pid: u32 = holder.split(' ').next().unwrap().trim().parse().unwrap();
    match how {
        How::Step => signal("KILL", &pid.to_string()),
        How::Group => signal("KILL", &format!("-{}", stat_field(pid, 5))),
        How::Term => unreachable!("SIGTERM is sent by a hook"),
    }
    let output = run.wait_with_output().unwrap();
    parse_report(&output).1
}

/// Field N (1-based, as proc(5) counts) of /proc/PID/stat.
fn stat_field(pid: u32, n: usize) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(") ").unwrap() + 2..];
    rest.split(' ').nth(n - 3).unwrap().to_owned()
}

fn signal(name: &str, target: &str) {
    let sent = Command::new("kill")
        .args([format!("-{name}"), "--".into(), target.into()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{name} {target}");
}

/// After the next run: no process left (the killed run's hook stopped
/// before it could finish), nothing half-done, no lock, no journal, no
/// temp file; `current` and the state record agree on `current`, and the
/// history lists `history`.
fn assert_repaired(world: &World, host: &str, current: Option<&str>, history: &str) {
    let h = world.fleet.host(host);
    world.fleet.host(host).assert_no_process_left();
    assert!(
        !h.path("/opt/survived").exists(),
        "{host}: the killed run's hook ran on after the repair: {}",
        std::fs::read_to_string(h.path("/opt/survived")).unwrap_or_default()
    );
    let link = read_link(world, host, "/opt/swpush/hello/current");
    let record = std::fs::read_to_string(h.path("/var/lib/swpush/packages/hello")).ok();
    match current {
        Some(version) => {
            assert_eq!(link, format!("releases/{version}"), "{host}: current");
            let record = record.unwrap_or_default();
            assert!(
                record.starts_with(&format!("version {version}\n")),
                "{host}: {record}"
            );
            assert!(
                h.path(&format!("/var/lib/swpush/releases/hello/{version}"))
                    .is_file(),
                "{host}: no release record for {version}"
            );
        }
        None => {
            assert_eq!((link.as_str(), record), ("", None), "{host}: installed");
            assert!(
                !h.path("/opt/swpush/hello").exists(),
                "{host}: releases left"
            );
        }
    }
    let releases = names_in(&h.path("/opt/swpush/hello/releases"));
    assert!(
        releases.iter().all(|r| !r.starts_with('.')),
        "{host}: half-done releases left: {releases:?}"
    );
    assert_eq!(
        std::fs::read_to_string(h.path("/var/lib/swpush/history/hello")).unwrap_or_default(),
        history,
        "{host}: history"
    );
    assert!(
        !h.path("/var/lib/swpush/lock").exists(),
        "{host}: the lock is held"
    );
    assert!(
        names_in(&h.path("/var/lib/swpush/journal")).is_empty(),
        "{host}: a journal is left"
    );
    assert!(
        is_empty_dir(&h.path("/tmp")),
        "{host}: /tmp: {:?}",
        names_in(&h.path("/tmp"))
    );
}

// --- install ----------------------------------------------------------------

#[test]
fn install_killed_in_pre_install_step_alone() {
    row(Row {
        host: "inst-pre",
        setup: &[],
        op: ("install", "v:1.0.0", &[]),
        at: At::Hook("pre_install:install"),
        how: How::Step,
        next: ("install", "v:1.0.0"),
        status: "installed",
        message: "repaired an interrupted install: hello is not installed, as before",
        current: Some("1.0.0"),
        history: "1.0.0\n",
        program: "1.0.0",
    });
}

#[test]
fn install_killed_in_post_install_whole_group() {
    row(Row {
        host: "inst-post",
        setup: &[],
        op: ("install", "v:1.0.0", &[]),
        at: At::Hook("post_install:install"),
        how: How::Group,
        next: ("install", "v:1.0.0"),
        status: "installed",
        message: "repaired an interrupted install: hello is not installed, as before",
        current: Some("1.0.0"),
        history: "1.0.0\n",
        program: "1.0.0",
    });
}

#[test]
fn install_killed_after_its_commit_point_step_alone() {
    row(Row {
        host: "inst-commit",
        setup: &[],
        op: ("install", "v:1.0.0", &[]),
        at: At::Commit,
        how: How::Step,
        next: ("install", "v:1.0.0"),
        status: "unchanged",
        message: "repaired an interrupted install: 1.0.0 is current (it had committed)",
        current: Some("1.0.0"),
        history: "1.0.0\n",
        program: "1.0.0",
    });
}

#[test]
fn install_killed_while_extracting_whole_group() {
    row(Row {
        host: "inst-tar",
        setup: &[],
        op: ("install", "m:1.0.0", &[]),
        at: At::Extracting,
        how: How::Group,
        next: ("install", "v:1.0.0"),
        status: "installed",
        message: "repaired an interrupted install: hello is not installed, as before",
        current: Some("1.0.0"),
        history: "1.0.0\n",
        program: "1.0.0",
    });
}

// --- upgrade ----------------------------------------------------------------

#[test]
fn upgrade_killed_while_receiving_the_package_step_alone() {
    row(Row {
        host: "up-recv",
        setup: &[("install", "v:1.0.0", &[])],
        op: ("upgrade", "b:1.1.0", &[]),
        at: At::Receiving,
        how: How::Step,
        next: ("upgrade", "v:1.1.0"),
        status: "upgraded",
        message: "repaired an interrupted upgrade: 1.0.0 is current again",
        current: Some("1.1.0"),
        history: "1.0.0\n1.1.0\n",
        program: "1.1.0",
    });
}

#[test]
fn upgrade_killed_in_pre_install_whole_group() {
    row(Row {
        host: "up-pre",
        setup: &[("install", "v:1.0.0", &[])],
        op: ("upgrade", "v:1.1.0", &[]),
        at: At::Hook("pre_install:upgrade"),
        how: How::Group,
        next: ("upgrade", "v:1.1.0"),
        status: "upgraded",
        message: "repaired an interrupted upgrade: 1.0.0 is current again",
        current: Some("1.1.0"),
        history: "1.0.0\n1.1.0\n",
        program: "1.1.0",
    });
}

const UPGRADE_KILLED_IN_POST_INSTALL: Row = Row {
    host: "up-post",
    setup: &[("install", "v:1.0.0", &[])],
    op: ("upgrade", "v:1.1.0", &[]),
    at: At::Hook("post_install:upgrade"),
    how: How::Step,
    next: ("upgrade", "v:1.1.0"),
    status: "upgraded",
    message: "repaired an interrupted upgrade: 1.0.0 is current again",
    current: Some("1.1.0"),
    history: "1.0.0\n1.1.0\n",
    program: "1.1.0",
};

#[test]
fn upgrade_killed_in_post_install_step_alone() {
    row(UPGRADE_KILLED_IN_POST_INSTALL);
}

#[test]
fn upgrade_killed_in_post_install_step_alone_with_busybox() {
    row(Row {
        host: "bb-up-post",
        ..UPGRADE_KILLED_IN_POST_INSTALL
    });
}

/// The next run is an `install`, which ends `skipped` (another version is
/// installed): it repairs first all the same.
const UPGRADE_KILLED_AFTER_COMMIT: Row = Row {
    host: "up-commit",
    setup: &[("install", "v:1.0.0", &[])],
    op: ("upgrade", "v:1.1.0", &[]),
    at: At::Commit,
    how: How::Group,
    next: ("install", "v:1.0.0"),
    status: "skipped",
    message: "repaired an interrupted upgrade: 1.1.0 is current (it had committed)",
    current: Some("1.1.0"),
    history: "1.0.0\n1.1.0\n",
    program: "1.1.0",
};

#[test]
fn upgrade_killed_after_its_commit_point_whole_group() {
    row(UPGRADE_KILLED_AFTER_COMMIT);
}

#[test]
fn upgrade_killed_after_its_commit_point_whole_group_with_busybox() {
    row(Row {
        host: "bb-up-commit",
        ..UPGRADE_KILLED_AFTER_COMMIT
    });
}

#[test]
fn upgrade_terminated_in_post_install_cleans_up_itself() {
    row(Row {
        host: "term-post",
        setup: &[("install", "v:1.0.0", &[])],
        op: ("upgrade", "v:1.1.0", &[]),
        at: At::Hook("post_install:upgrade"),
        how: How::Term,
        next: ("upgrade", "v:1.1.0"),
        status: "upgraded",
        message: "",
        current: Some("1.1.0"),
        history: "1.0.0\n1.1.0\n",
        program: "1.1.0",
    });
}

#[test]
fn install_terminated_in_pre_install_cleans_up_itself() {
    row(Row {
        host: "term-pre",
        setup: &[],
        op: ("install", "v:1.0.0", &[]),
        at: At::Hook("pre_install:install"),
        how: How::Term,
        next: ("install", "v:1.0.0"),
        status: "installed",
        message: "",
        current: Some("1.0.0"),
        history: "1.0.0\n",
        program: "1.0.0",
    });
}

#[test]
fn rollback_terminated_in_post_install_cleans_up_itself() {
    row(Row {
        host: "term-rb",
        setup: &[("install", "v:1.0.0", &[]), ("upgrade", "v:1.1.0", &[])],
        op: ("rollback", "hello", &[]),
        at: At::Hook("post_install:rollback"),
        how: How::Term,
        next: ("upgrade", "v:1.1.0"),
        status: "unchanged",
        message: "already current",
        current: Some("1.1.0"),
        history: "1.0.0\n1.1.0\n",
        program: "1.1.0",
    });
}

#[test]
fn remove_terminated_in_pre_remove_cleans_up_itself() {
    row(Row {
        host: "term-rm",
        setup: &[("install", "v:1.0.0", &[])],
        op: ("remove", "hello", &[]),
        at: At::Hook("pre_remove:remove"),
        how: How::Term,
        next: ("install", "v:1.0.0"),
        status: "unchanged",
        message: "already current",
        current: Some("1.0.0"),
        history: "1.0.0\n",
        program: "1.0.0",
    });
}

/// A dry run after a kill says that the real run would repair first, and
/// changes nothing: the real run then repairs as usual.
#[test]
fn a_dry_run_after_a_kill_says_a_repair_is_due() {
    let world = world();
    let host = "dry-after-kill";
    let h = world.fleet.host(host);
    let (code, report) = run(host, "install", "v:1.0.0", &[]);
    assert_eq!(code, 0, "{report:#}");
    std::fs::write(h.path("/opt/kill"), "post_install:upgrade group\n").unwrap();
    let (_, report) = run(host, "upgrade", "v:1.1.0", &[]);
    assert_eq!(status_of(&report, host).0, "failed", "{report:#}");
    let before = snapshot(world, host);
    let (code, report) = run(host, "upgrade", "v:1.1.0", &["--dry-run"]);
    let (status, message) = status_of(&report, host);
    assert_eq!((code, status.as_str()), (0, "upgraded"), "{report:#}");
    assert!(
        message.starts_with("would first repair what an interrupted run left; would upgrade"),
        "{message}"
    );
    assert!(!message.contains("busy"), "the lock is stale: {message}");
    assert_same(&snapshot(world, host), &before);
    let (code, report) = run(host, "upgrade", "v:1.1.0", &[]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(
        status_of(&report, host).1,
        "repaired an interrupted upgrade: 1.0.0 is current again"
    );
    assert_repaired(world, host, Some("1.1.0"), "1.0.0\n1.1.0\n");
}

// --- reinstall (--force, same version) ----------------------------------------

#[test]
fn reinstall_killed_in_post_install_step_alone() {
    row(Row {
        host: "re-post",
        setup: &[("install", "v:1.0.0", &[])],
        op: ("install", "x:1.0.0", &["--force"]),
        at: At::Hook("post_install:install"),
        how: How::Step,
        next: ("install", "v:1.0.0"),
        status: "unchanged",
        message: "repaired an interrupted reinstall: 1.0.0 is current again",
        current: Some("1.0.0"),
        history: "1.0.0\n",
        program: "hello from swpush example package 1.0.0",
    });
}

#[test]
fn reinstall_killed_after_its_commit_point_whole_group() {
    row(Row {
        host: "re-commit",
        setup: &[("install", "v:1.0.0", &[])],
        op: ("install", "x:1.0.0", &["--force"]),
        at: At::Commit,
        how: How::Group,
        next: ("install", "x:1.0.0"),
        status: "unchanged",
        message: "repaired an interrupted reinstall: 1.0.0 is current (it had committed)",
        current: Some("1.0.0"),
        history: "1.0.0\n",
        program: "reinstalled",
    });
}

// --- rollback -----------------------------------------------------------------

#[test]
fn rollback_killed_in_pre_install_step_alone() {
    row(Row {
        host: "rb-pre",
        setup: &[("install", "v:1.0.0", &[]), ("upgrade", "v:1.1.0", &[])],
        op: ("rollback", "hello", &[]),
        at: At::Hook("pre_install:rollback"),
        how: How::Step,
        next: ("upgrade", "v:1.1.0"),
        status: "unchanged",
        message: "repaired an interrupted rollback: 1.1.0 is current again",
        current: Some("1.1.0"),
        history: "1.0.0\n1.1.0\n",
        program: "1.1.0",
    });
}

#[test]
fn rollback_killed_in_post_install_whole_group() {
    row(Row {
        host: "rb-post",
        setup: &[("install", "v:1.0.0", &[]), ("upgrade", "v:1.1.0", &[])],
        op: ("rollback", "hello", &[]),
        at: At::Hook("post_install:rollback"),
        how: How::Group,
        next: ("rollback", "hello"),
        status: "rolled-back",
        message: "repaired an interrupted rollback: 1.1.0 is current again",
        current: Some("1.0.0"),
        history: "1.0.0\n1.1.0\n",
        program: "1.0.0",
    });
}

#[test]
fn rollback_killed_after_its_commit_point_step_alone() {
    row(Row {
        host: "rb-commit",
        setup: &[("install", "v:1.0.0", &[]), ("upgrade", "v:1.1.0", &[])],
        op: ("rollback", "hello", &[]),
        at: At::Commit,
        how: How::Step,
        next: ("rollback", "hello"),
        status: "skipped",
        message: "repaired an interrupted rollback: 1.0.0 is current (it had committed)",
        current: Some("1.0.0"),
        history: "1.0.0\n1.1.0\n",
        program: "1.0.0",
    });
}

// --- remove -------------------------------------------------------------------

#[test]
fn remove_killed_in_pre_remove_whole_group() {
    row(Row {
        host: "rm-pre",
        setup: &[("install", "v:1.0.0", &[])],
        op: ("remove", "hello", &[]),
        at: At::Hook("pre_remove:remove"),
        how: How::Group,
        next: ("remove", "hello"),
        status: "removed",
        message: "repaired an interrupted remove: 1.0.0 is current again",
        current: None,
        history: "",
        program: "",
    });
}

#[test]
fn remove_killed_after_its_commit_point_step_alone() {
    row(Row {
        host: "rm-commit",
        setup: &[("install", "v:1.0.0", &[])],
        op: ("remove", "hello", &[]),
        at: At::Commit,
        how: How::Step,
        next: ("remove", "hello"),
        status: "skipped",
        message: "repaired an interrupted remove: hello is removed (it had committed)",
        current: None,
        history: "",
        program: "",
    });
}

#[test]
fn remove_killed_while_deleting_the_releases_step_alone() {
    row(Row {
        host: "rm-del",
        setup: &[("install", "m:1.0.0", &[])],
        op: ("remove", "hello", &[]),
        at: At::Deleting,
        how: How::Step,
        next: ("install", "v:1.0.0"),
        status: "installed",
        message: "repaired an interrupted remove: hello is removed (it had committed)",
        current: Some("1.0.0"),
        history: "1.0.0\n",
        program: "1.0.0",
    });
}

// --- a stale lock whose pid was reused ------------------------------------------

/// A step killed in pre_install leaves its lock; its pid then names another
/// live process (what pid reuse does). The next run takes the lock over
/// at once; a lock whose holder is really alive still makes the host busy.
fn stale_lock_with_reused_pid(host: &str) {
    let world = world();
    let h = world.fleet.host(host);
    std::fs::write(h.path("/opt/kill"), "pre_install:install step\n").unwrap();
    let (_, report) = run(host, "install", "v:1.0.0", &[]);
    assert_eq!(status_of(&report, host).0, "failed", "{report:#}");
    let lock = h.path("/var/lib/swpush/lock/pid");
    let left = std::fs::read_to_string(&lock).unwrap();

    // Another process, alive, now has the dead step's pid.
    let mut other = Command::new("sleep").arg("120").spawn().unwrap();
    let rest = left.trim_end().split_once(' ').map_or("", |(_, rest)| rest);
    std::fs::write(&lock, format!("{} {rest}\n", other.id())).unwrap();
    let (code, report) = run(host, "install", "v:1.0.0", &["--busy-retries", "0"]);
    let entry = report.host(host);
    assert_eq!(
        (code, entry.status.as_str(), entry.attempts),
        (0, "installed", 1),
        "{host}: {entry}"
    );
    assert!(
        entry.message.contains("repaired an interrupted install"),
        "{entry}"
    );
    assert_repaired(world, host, Some("1.0.0"), "1.0.0\n");

    // The same lock naming that process as it really is: busy.
    std::fs::create_dir_all(h.path("/var/lib/swpush/lock")).unwrap();
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let start = stat_field(other.id(), 22);
    std::fs::write(
        &lock,
        format!("{} {} proc:{start}\n", other.id(), boot.trim()),
    )
    .unwrap();
    let (code, report) = run(host, "upgrade", "v:1.1.0", &["--busy-retries", "0"]);
    let _ = other.kill();
    let _ = other.wait();
    assert_eq!(
        (code, status_of(&report, host).0.as_str()),
        (2, "busy"),
        "{report:#}"
    );
    std::fs::remove_dir_all(h.path("/var/lib/swpush/lock")).unwrap();
}

#[test]
fn a_stale_lock_whose_pid_was_reused_is_taken_over() {
    stale_lock_with_reused_pid("pid-reused");
}

#[test]
fn a_stale_lock_whose_pid_was_reused_is_taken_over_with_busybox() {
    stale_lock_with_reused_pid("bb-pid-reused");
}

/// A dead run's lock names a hook group that still runs but was recorded
/// without a start time (a host without /proc): it cannot be told from a
/// later group given the same id, so it is neither killed nor ignored:
/// the host stays busy while it runs, and is taken over once it ended.
#[test]
fn a_dead_runs_hook_group_that_cannot_be_identified_keeps_the_host_busy() {
    let world = world();
    let host = "hook-unknown";
    let h = world.fleet.host(host);
    let mut group = Command::new("setsid")
        .args(["sleep", "120"])
        .spawn()
        .unwrap();
    let pgid = group.id();
    // Not forked by setsid: the pid is the group's id.
    sleep(Duration::from_millis(100));
    assert_eq!(stat_field(pgid, 5), pgid.to_string());
    assert!(!Path::new("/proc/999999").exists());
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    std::fs::create_dir_all(h.path("/var/lib/swpush/lock")).unwrap();
    std::fs::write(
        h.path("/var/lib/swpush/lock/pid"),
        format!("999999 {} proc:1\n", boot.trim()),
    )
    .unwrap();
    std::fs::write(h.path("/var/lib/swpush/lock/hooks"), format!("{pgid} -\n")).unwrap();

    let (code, report) = run(host, "install", "v:1.0.0", &["--busy-retries", "0"]);
    let (status, message) = status_of(&report, host);
    let still_runs = group.try_wait().unwrap().is_none();
    let _ = group.kill();
    let _ = group.wait();
    assert_eq!((code, status.as_str()), (2, "busy"), "{report:#}");
    assert!(
        message.contains("the hooks of a run that died still run"),
        "{message}"
    );
    assert!(
        still_runs,
        "a group that could not be identified was killed"
    );

    // Once that group is gone, the lock is taken over.
    let (code, report) = run(host, "install", "v:1.0.0", &["--busy-retries", "0"]);
    assert_eq!(
        (code, status_of(&report, host).0.as_str()),
        (0, "installed"),
        "{report:#}"
    );
    assert_repaired(world, host, Some("1.0.0"), "1.0.0\n");
}

/// Without setsid no hook could run in a group of its own: the run fails
/// before it changes anything or receives a byte.
#[test]
fn a_host_without_setsid_fails_before_anything_changes() {
    let world = world();
    let host = "nosetsid";
    let h = world.fleet.host(host);
    let setsid = std::fs::canonicalize("/usr/bin/setsid").unwrap();
    let setsid = setsid.to_str().unwrap();
    world.in_host(host, &["mount", "--bind", "/dev/null", setsid]);
    let (code, report) = run(host, "install", "v:1.0.0", &[]);
    world.in_host(host, &["umount", setsid]);
    let entry = report.host(host);
    assert_eq!(
        (code, entry.status.as_str(), entry.bytes_sent),
        (2, "failed", 0),
        "{entry}"
    );
    assert!(
        entry.message.contains("setsid is missing on this host"),
        "{entry}"
    );
    assert!(
        !h.path("/opt/swpush/hello").exists(),
        "something was installed"
    );
    assert!(
        is_empty_dir(&h.path("/var/cache/swpush")),
        "something was cached"
    );
    assert_repaired(world, host, None, "");

    let (code, report) = run(host, "install", "v:1.0.0", &[]);
    assert_eq!(code, 0, "{report:#}");
    assert_repaired(world, host, Some("1.0.0"), "1.0.0\n");
}

/// Many runs that find the same stale lock at once: exactly one takes it
/// over and installs; the others wait for it and find the package current.
/// No two hooks ever overlap.
#[test]
fn runs_racing_for_a_stale_lock_take_turns() {
    let world = world();
    let host = "lock-race";
    let h = world.fleet.host(host);
    let slow = world.variant("slow-lock-race.tar.gz", |dir| {
        append(
            dir,
            "hooks/pre.sh",
            "echo \"start $(date +%s%N)\" >>/opt/turns.log; sleep 1; echo \"end $(date +%s%N)\" >>/opt/turns.log\n",
        );
    });
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    std::fs::create_dir_all(h.path("/var/lib/swpush/lock")).unwrap();
    std::fs::write(
        h.path("/var/lib/swpush/lock/pid"),
        format!("999999 {} proc:1\n", boot.trim()),
    )
    .unwrap();
    // Eight controllers (each its own state: one controller refuses to
    // overlap itself, see tests/testsuite/lock.rs).
    let runs: Vec<_> = (0..8)
        .map(|n| {
            let inventory = world.fleet_inventory(&format!("{host}-{n}"), &[host], "");
            world
                .push_run(
                    "install",
                    &inventory,
                    &slow,
                    &["--busy-wait", "1", "--busy-retries", "30"],
                )
                .env(
                    "XDG_STATE_HOME",
                    world.fleet.dir().join(format!("controller-{n}")),
                )
                .spawn()
        })
        .collect();
    let mut statuses: Vec<String> = runs
        .into_iter()
        .map(|run| status_of(&parse_report(&run.wait_with_output().unwrap()).1, host).0)
        .collect();
    statuses.sort();
    let turns = std::fs::read_to_string(h.path("/opt/turns.log")).unwrap_or_default();
    assert_eq!(
        turns.lines().filter(|l| l.starts_with("start")).count(),
        1,
        "pre_install ran more than once: {turns}\n{statuses:?}"
    );
    let mut expected = vec!["unchanged".to_owned(); 7];
    expected.insert(0, "installed".into());
    assert_eq!(statuses, expected, "{turns}");
    assert_repaired(world, host, Some("1.0.0"), "1.0.0\n");
}
