//! The rest of the lifecycle on real hosts: `rollback` (to the previous or
//! a given kept release, hooks run with `SWPUSH_OP=rollback`), `remove`,
//! `status`, the package cache (a re-run after an interrupted run uploads
//! nothing; entries no kept release needs are pruned), `--dry-run` (the
//! client's files compared byte for byte), and the controller's run lock.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use crate::support::wait_until;
use crate::support::world::*;

const HOSTS: &[&str] = &[
    "roll", "rollfail", "rollkill", "rm", "rmfail", "rmkill", "aside", "stat1", "stat2", "dry",
    "fresh", "cache", "prune", "cron", "none1", "none2",
];

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let world = World::start_trusted(HOSTS);
        // `fresh` trusts nobody: a dry run must still be refused there.
        std::fs::remove_file(world.fleet.host("fresh").path("/etc/swpush/known_servers")).unwrap();
        world
    })
}

/// `swpush OP [MORE] SUBJECT` on `host` alone (keep_releases 3 unless the
/// extra inventory text says otherwise); the exit code and JSON report.
fn run(op: &str, host: &str, subject: &Path, more: &[&str]) -> (i32, Report) {
    let world = world();
    let inventory = world.fleet_inventory(host, &[host], "");
    world.push(op, &inventory, subject, more)
}

/// `swpush enroll [MORE]` on `host` alone; the exit code and JSON report.
fn enroll(host: &str, more: &[&str]) -> (i32, Report) {
    let world = world();
    let inventory = world.fleet_inventory(host, &[host], "");
    world
        .swpush("enroll")
        .arg("-i")
        .arg(&inventory)
        .key(&world.key)
        .json()
        .args(more)
        .run()
        .code_and_report()
}

fn hello() -> &'static Path {
    Path::new("hello")
}

fn current(host: &str) -> String {
    read_link(world(), host, "/opt/swpush/hello/current")
}

fn hooks_log(host: &str) -> String {
    std::fs::read_to_string(world().fleet.host(host).path("/opt/swpush/hello/hooks.log"))
        .unwrap_or_default()
}

/// Installs 1.0.0 and upgrades through `versions` on `host`.
fn install_then_upgrade(host: &str, versions: &[&str]) {
    let world = world();
    let (code, report) = run("install", host, &world.hello_at("1.0.0"), &[]);
    assert_eq!(code, 0, "{report:#}");
    for version in versions {
        let (code, report) = run("upgrade", host, &world.hello_at(version), &[]);
        assert_eq!(
            (code, outcome(&report, host).0.as_str()),
            (0, "upgraded"),
            "{report:#}"
        );
    }
}

#[test]
fn rollback_steps_back_through_kept_releases_and_runs_their_hooks() {
    install_then_upgrade("roll", &["1.1.0", "1.2.0"]);

    let (code, report) = run("rollback", "roll", hello(), &[]);
    assert_eq!(code, 0, "{report:#}");
    let (status, previous, version, _) = outcome(&report, "roll");
    assert_eq!(
        (status.as_str(), previous, version),
        ("rolled-back", "1.2.0".into(), "1.1.0".into())
    );
    assert_eq!(current("roll"), "releases/1.1.0");
    let hooks = hooks_log("roll");
    for hook in ["pre_install", "post_install"] {
        let line = format!("{hook} op=rollback package=hello version=1.1.0 previous=1.2.0");
        assert!(hooks.contains(&line), "{line} in {hooks}");
    }
    assert_eq!(report.host("roll").bytes_sent, 0);

    // Again: one release further back, then nothing older is kept.
    let (_, report) = run("rollback", "roll", hello(), &[]);
    assert_eq!(
        outcome(&report, "roll").2,
        Value::from("1.0.0"),
        "{report:#}"
    );
    // Skipped on the only host selected: nothing was done, exit 2.
    let (code, report) = run("rollback", "roll", hello(), &[]);
    let (status, _, version, message) = outcome(&report, "roll");
    assert_eq!(
        (code, status.as_str(), version),
        (2, "skipped", "1.0.0".into())
    );
    assert!(message.contains("nothing to roll back to"), "{message}");

    // --to any kept release, forward too; the current one is unchanged;
    // one not kept is skipped, naming those that are.
    let (code, report) = run("rollback", "roll", hello(), &["--to", "1.2.0"]);
    let (status, previous, version, _) = outcome(&report, "roll");
    assert_eq!(
        (code, status.as_str(), previous, version),
        (0, "rolled-back", "1.0.0".into(), "1.2.0".into())
    );
    assert_eq!(current("roll"), "releases/1.2.0");
    let (_, report) = run("rollback", "roll", hello(), &["--to", "1.2.0"]);
    assert_eq!(outcome(&report, "roll").0, "unchanged", "{report:#}");
    let (code, report) = run("rollback", "roll", hello(), &["--to", "0.9"]);
    let (status, _, _, message) = outcome(&report, "roll");
    assert_eq!((code, status.as_str()), (2, "skipped"));
    assert!(
        message.contains("hello 0.9 is not kept here (kept: 1.0.0 1.1.0 1.2.0)"),
        "{message}"
    );

    let (code, report) = run("rollback", "roll", Path::new("nosuch"), &[]);
    let (status, _, _, message) = outcome(&report, "roll");
    assert_eq!((code, status.as_str()), (2, "skipped"));
    assert!(
        message.contains("nosuch is not installed here"),
        "{message}"
    );
}

/// `swpush OP [MORE] SUBJECT` on none1 and none2, as an operator reads it:
/// the exit code, the JSON report, and the lines on stderr.
fn on_none_hosts(op: &str, subject: &Path, more: &[&str]) -> (i32, Report, Vec<String>) {
    let world = world();
    let inventory = world.fleet_inventory("none", &["none1", "none2"], "");
    let ran = world.push_run(op, &inventory, subject, more).run();
    let said = ran.stderr().lines().map(String::from).collect();
    (ran.code(), ran.report(), said)
}

/// Commands that did nothing because what they were asked for is on no
/// selected host (a name installed nowhere, a typo; a version kept nowhere;
/// an install where every host has another version) exit 2 and say so on
/// one line after the report. The hosts' statuses and the JSON report are
/// as before; a run in which some host did it keeps exit status 0.
#[test]
fn a_run_that_found_what_it_was_asked_for_on_no_host_exits_2_and_says_so() {
    let world = world();
    // Both hosts skipped, as before; exit 2 and the one line on stderr.
    let nothing_done = |op: &str, subject: &Path, more: &[&str], line: &str| {
        let (code, report, said) = on_none_hosts(op, subject, more);
        for host in ["none1", "none2"] {
            assert_eq!(report.host(host).status, "skipped", "{report:#}");
        }
        assert_eq!(report["summary"], serde_json::json!({"skipped": 2}));
        assert_eq!(
            (code, said),
            (2, vec![format!("swpush: {line}")]),
            "{op} {more:?}"
        );
    };
    let nosuch = Path::new("nosuch");
    nothing_done(
        "rollback",
        nosuch,
        &[],
        "nosuch is installed on none of the 2 hosts selected",
    );
    nothing_done(
        "remove",
        hello(),
        &[],
        "hello is installed on none of the 2 hosts selected",
    );

    // none1 has hello 1.0.0, none2 nothing: no host keeps 0.9, nor a
    // release before the current one.
    let (code, report) = run("install", "none1", &world.hello_at("1.0.0"), &[]);
    assert_eq!(code, 0, "{report:#}");
    let kept_nowhere = "hello 0.9 is kept on none of the 2 hosts selected";
    nothing_done("rollback", hello(), &["--to", "0.9"], kept_nowhere);
    let older_nowhere =
        "a release of hello to roll back to is kept on none of the 2 hosts selected";
    nothing_done("rollback", hello(), &[], older_nowhere);

    // Some host did it: exit 0, nothing more said.
    let (code, report, said) = on_none_hosts("install", &world.hello_at("1.1.0"), &[]);
    let statuses = ["none1", "none2"].map(|host| report.host(host).status.clone());
    assert_eq!(statuses, ["skipped", "installed"], "{report:#}");
    assert_eq!((code, said), (0, Vec::<String>::new()), "{report:#}");

    // Every host has another version: nothing to install anywhere.
    nothing_done(
        "install",
        &world.hello_at("1.2.0"),
        &[],
        "hello 1.2.0 is installed on none of the 2 hosts selected \
         (another version is current: swpush upgrade changes it)",
    );

    // In text too, the line comes after the whole report.
    let inventory = world.fleet_inventory("none", &["none1", "none2"], "");
    let ran = world
        .swpush("rollback")
        .inventory(&inventory)
        .key(&world.key)
        .args(["--connect-timeout", "5", "nosuch"])
        .run();
    assert_eq!(ran.code(), 2, "{}", ran.stderr());
    assert!(
        ran.stdout().contains("2 hosts: 2 skipped"),
        "{}",
        ran.stdout()
    );
    assert_eq!(
        ran.stderr(),
        "swpush: nosuch is installed on none of the 2 hosts selected\n"
    );
}

#[test]
fn a_rollback_whose_post_install_fails_switches_back() {
    let world = world();
    // 1.0.5 refuses to come back by rollback.
    let picky = world.variant("hello-1.0.5-picky.tar.gz", |dir| {
        set_version(dir, "1.0.5");
        append(
            dir,
            "hooks/post.sh",
            "if [ \"$SWPUSH_OP\" = rollback ]; then echo 'will not run old code' >&2; exit 3; fi\n",
        );
    });
    let (code, report) = run("install", "rollfail", &picky, &[]);
    assert_eq!(code, 0, "{report:#}");
    let (code, report) = run("upgrade", "rollfail", &world.hello_at("1.1.0"), &[]);
    assert_eq!(code, 0, "{report:#}");

    let (code, report) = run("rollback", "rollfail", hello(), &[]);
    assert_eq!(code, 2, "{report:#}");
    let (status, previous, version, message) = outcome(&report, "rollfail");
    assert_eq!(
        (status.as_str(), previous, version),
        ("failed", "1.1.0".into(), "1.1.0".into())
    );
    assert!(
        message.contains("post_install of 1.0.5 failed, 1.1.0 is current again")
            && message.contains("will not run old code"),
        "{message}"
    );
    assert_eq!(current("rollfail"), "releases/1.1.0");
    // 1.1.0's post_install ran again (as a rollback) to restore its service.
    let hooks = hooks_log("rollfail");
    assert!(
        hooks
            .lines()
            .last()
            .unwrap()
            .starts_with("post_install op=rollback package=hello version=1.1.0 previous=1.0.5"),
        "{hooks}"
    );
    let record = std::fs::read_to_string(
        world
            .fleet
            .host("rollfail")
            .path("/var/lib/swpush/packages/hello"),
    )
    .unwrap();
    assert!(record.starts_with("version 1.1.0\n"), "{record}");
}

#[test]
fn a_rollback_killed_midway_is_undone_by_the_next_run() {
    let world = world();
    // 1.0.6's post_install kills the step (SIGKILL: no trap runs) when it
    // comes back by rollback, after `current` was switched.
    let deadly = world.variant("hello-1.0.6-deadly.tar.gz", |dir| {
        set_version(dir, "1.0.6");
        append(
            dir,
            "hooks/post.sh",
            "if [ \"$SWPUSH_OP\" = rollback ]; then kill -KILL $PPID; sleep 5; fi\n",
        );
    });
    let (code, _) = run("install", "rollkill", &deadly, &[]);
    assert_eq!(code, 0);
    let (code, _) = run("upgrade", "rollkill", &world.hello_at("1.1.0"), &[]);
    assert_eq!(code, 0);
    let (code, report) = run("rollback", "rollkill", hello(), &[]);
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(
        current("rollkill"),
        "releases/1.0.6",
        "killed after the switch"
    );

    // The record still says 1.1.0: the next run switches back first, and
    // keeps 1.0.6, a kept release.
    let (code, report) = run("upgrade", "rollkill", &world.hello_at("1.1.0"), &[]);
    assert_eq!(
        (code, outcome(&report, "rollkill").0.as_str()),
        (0, "unchanged"),
        "{report:#}"
    );
    assert_eq!(
        outcome(&report, "rollkill").3,
        "repaired an interrupted rollback: 1.1.0 is current again; already current"
    );
    assert_eq!(current("rollkill"), "releases/1.1.0");
    assert!(
        world
            .fleet
            .host("rollkill")
            .path("/opt/swpush/hello/releases/1.0.6")
            .is_dir()
    );
}

#[test]
fn a_remove_killed_after_its_commit_point_is_finished_by_the_next_run() {
    let world = world();
    let h = world.fleet.host("rmkill");
    install_then_upgrade("rmkill", &["1.1.0"]);
    // What a remove killed right after deleting the state record leaves.
    std::fs::remove_file(h.path("/var/lib/swpush/packages/hello")).unwrap();

    let (code, report) = run("install", "rmkill", &world.hello_at("1.2.0"), &[]);
    assert_eq!(
        (code, outcome(&report, "rmkill").0.as_str()),
        (0, "installed"),
        "{report:#}"
    );
    assert_eq!(
        outcome(&report, "rmkill").3,
        "repaired what an interrupted run left: hello is not installed"
    );
    let releases: Vec<String> = std::fs::read_dir(h.path("/opt/swpush/hello/releases"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        releases,
        ["1.2.0"],
        "the removed package's releases are gone"
    );
    let history = std::fs::read_to_string(h.path("/var/lib/swpush/history/hello")).unwrap();
    assert_eq!(history, "1.2.0\n");
}

/// A copy of hello whose pre_remove logs to /opt/removed.log (outside what
/// remove deletes), and fails when /opt/keep-me exists.
fn removable(world: &World) -> PathBuf {
    world.variant("hello-removable.tar.gz", |dir| {
        append(
            dir,
            "hooks/remove.sh",
            "echo \"pre_remove version=$SWPUSH_VERSION op=$SWPUSH_OP\" >>/opt/removed.log\n\
             if [ -e /opt/keep-me ]; then echo 'still in use' >&2; exit 1; fi\n",
        );
    })
}

#[test]
fn remove_runs_pre_remove_and_leaves_nothing_behind() {
    let world = world();
    let h = world.fleet.host("rm");
    let (code, report) = run("install", "rm", &removable(world), &[]);
    assert_eq!(code, 0, "{report:#}");
    let (code, _) = run("upgrade", "rm", &world.hello_at("1.1.0"), &[]);
    assert_eq!(code, 0);
    // The upgrade went to plain hello 1.1.0: pre_remove is the current
    // release's. Back to the removable one, and remove it.
    let (code, _) = run("rollback", "rm", hello(), &[]);
    assert_eq!(code, 0);

    let (code, report) = run("remove", "rm", hello(), &[]);
    assert_eq!(code, 0, "{report:#}");
    let (status, previous, version, _) = outcome(&report, "rm");
    assert_eq!(
        (status.as_str(), previous, version),
        ("removed", "1.0.0".into(), Value::Null)
    );
    let log = std::fs::read_to_string(h.path("/opt/removed.log")).unwrap();
    assert_eq!(log, "pre_remove version=1.0.0 op=remove\n");
    for gone in [
        "/opt/swpush/hello",
        "/var/lib/swpush/packages/hello",
        "/var/lib/swpush/releases/hello",
        "/var/lib/swpush/history/hello",
        "/var/cache/swpush/hello",
        "/var/lib/swpush/lock",
    ] {
        assert!(!h.path(gone).exists(), "{gone} is left");
    }

    // Removed already: installed on no host selected, exit 2.
    let (code, report) = run("remove", "rm", hello(), &[]);
    let (status, _, _, message) = outcome(&report, "rm");
    assert_eq!((code, status.as_str()), (2, "skipped"));
    assert!(message.contains("hello is not installed here"), "{message}");
    // And it can come back.
    let (code, report) = run("install", "rm", &world.hello, &[]);
    assert_eq!((code, outcome(&report, "rm").0.as_str()), (0, "installed"));
}

#[test]
fn a_failing_pre_remove_removes_nothing() {
    let world = world();
    let h = world.fleet.host("rmfail");
    let (code, _) = run("install", "rmfail", &removable(world), &[]);
    assert_eq!(code, 0);
    std::fs::write(h.path("/opt/keep-me"), "").unwrap();
    // What the hooks log, and the state dir's time (the run took its lock),
    // may change; nothing else.
    let skip = [
        "/opt/",
        "/opt/removed.log",
        "/opt/swpush/hello/hooks.log",
        "/var/lib/swpush/",
    ];
    let before = snapshot_without(world, "rmfail", &skip);

    let (code, report) = run("remove", "rmfail", hello(), &[]);
    assert_eq!(code, 2, "{report:#}");
    let (status, _, version, message) = outcome(&report, "rmfail");
    assert_eq!((status.as_str(), version), ("failed", "1.0.0".into()));
    assert!(
        message.contains("pre_remove failed, nothing removed") && message.contains("still in use"),
        "{message}"
    );
    assert_same(&snapshot_without(world, "rmfail", &skip), &before);
}

fn snapshot_without(world: &World, host: &str, skip: &[&str]) -> Snapshot {
    let mut files = snapshot(world, host);
    for path in skip {
        files.remove(*path);
    }
    files
}

#[test]
fn status_shows_current_and_kept_releases_and_changes_nothing() {
    let world = world();
    install_then_upgrade("stat1", &["1.1.0"]);
    let inventory = world.inventory(
        "status",
        &[
            ("stat1", world.fleet.host("stat1").addr.to_string()),
            ("stat2", world.fleet.host("stat2").addr.to_string()),
            ("gone", world.fleet.dead_address().to_string()),
        ],
        "",
    );
    let before = (snapshot(world, "stat1"), snapshot(world, "stat2"));

    let (code, report) = world.push("status", &inventory, Path::new("hello"), &[]);
    assert_eq!(code, 2, "the dead host did not answer: {report:#}");
    assert_eq!(report["op"], "status");
    let stat1 = report.host("stat1");
    assert_eq!(stat1.status, "unchanged", "{stat1}");
    let packages = stat1["packages"].as_array().unwrap();
    assert_eq!(packages.len(), 1, "{stat1}");
    assert_eq!(
        (&packages[0]["name"], &packages[0]["version"]),
        (&"hello".into(), &"1.1.0".into())
    );
    assert!(packages[0]["since"].as_str().unwrap().ends_with('Z'));
    let kept: Vec<&str> = packages[0]["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["version"].as_str().unwrap())
        .collect();
    assert_eq!(kept, ["1.0.0", "1.1.0"]);
    assert_eq!(
        packages[0]["releases"][1]["sha256"], packages[0]["sha256"],
        "{stat1}"
    );
    assert_eq!(report.host("stat2")["packages"], Value::Array(vec![]));
    assert_eq!(report.host("gone").status, "unreachable");
    assert_same(&snapshot(world, "stat1"), &before.0);
    assert_same(&snapshot(world, "stat2"), &before.1);

    let (_, report) = world.push("status", &inventory, Path::new("other"), &[]);
    assert_eq!(report.host("stat1")["packages"], Value::Array(vec![]));

    // The table an operator reads.
    let out = world
        .swpush("status")
        .arg("-i")
        .arg(&inventory)
        .args(["--connect-timeout", "3"])
        .run();
    let table = text(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{table}");
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("HOST ") && lines[0].contains("PACKAGE") && lines[0].contains("KEPT"),
        "{table}"
    );
    let row = lines.iter().find(|l| l.starts_with("stat1")).unwrap();
    assert!(
        row.contains(" hello ") && row.contains(" 1.1.0 ") && row.ends_with("1.0.0 1.1.0"),
        "{table}"
    );
    assert!(table.contains("2 of 3 hosts answered"), "{table}");
    assert!(
        table.contains("gone") && table.contains("unreachable"),
        "{table}"
    );
}

#[test]
fn a_dry_run_verifies_and_decides_but_changes_nothing() {
    let world = world();
    install_then_upgrade("dry", &["1.1.0"]);
    // Enrolled as `swpush enroll` does it: the key and the host's name.
    std::fs::write(
        world.fleet.host("dry").path("/etc/swpush/host_name"),
        "dry\n",
    )
    .unwrap();
    let v2 = world.hello_at("1.2.0");
    let before = snapshot(world, "dry");

    let (code, report) = run("upgrade", "dry", &v2, &["--dry-run"]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["dry_run"], true);
    let (status, previous, version, message) = outcome(&report, "dry");
    assert_eq!(
        (status.as_str(), previous, version),
        ("upgraded", "1.1.0".into(), "1.2.0".into())
    );
    assert!(
        message.starts_with("would upgrade 1.1.0 → 1.2.0 (would receive "),
        "{message}"
    );
    assert_eq!(report.host("dry").bytes_sent, 0);

    // The exit status is the run's would-be one: an install where the only
    // host has another version would do nothing (2); a downgrade refused
    // by policy is not a failure (0).
    type Case<'a> = (&'a str, &'a Path, &'a [&'a str], (i32, &'a str), &'a str);
    let cases: [Case; 6] = [
        (
            "install",
            &v2,
            &[],
            (2, "skipped"),
            "hello 1.1.0 is installed",
        ),
        (
            "upgrade",
            &world.hello,
            &[],
            (0, "skipped"),
            "newer than 1.0.0",
        ),
        (
            "upgrade",
            &world.hello,
            &["--allow-downgrade"],
            (0, "upgraded"),
            "would downgrade 1.1.0 → 1.0.0 (the package is cached here)",
        ),
        (
            "rollback",
            hello(),
            &[],
            (0, "rolled-back"),
            "would roll back 1.1.0 → 1.0.0",
        ),
        (
            "remove",
            hello(),
            &[],
            (0, "removed"),
            "would remove hello 1.1.0 and its kept releases (1.0.0 1.1.0)",
        ),
        (
            "enroll",
            Path::new(""),
            &[],
            (0, "unchanged"),
            "already trusted",
        ),
    ];
    for (op, subject, more, (want_code, want_status), want_message) in cases {
        let mut args = more.to_vec();
        args.push("--dry-run");
        let (code, report) = if op == "enroll" {
            enroll("dry", &["--dry-run"])
        } else {
            run(op, "dry", subject, &args)
        };
        let (status, _, _, message) = outcome(&report, "dry");
        assert_eq!(
            (code, status.as_str()),
            (want_code, want_status),
            "{op}: {report:#}"
        );
        assert!(message.contains(want_message), "{op}: {message}");
    }

    // The text report says what would happen.
    let inventory = world.fleet_inventory("dry", &["dry"], "");
    let out = world
        .swpush("upgrade")
        .arg("-i")
        .arg(&inventory)
        .key(&world.key)
        .arg("--dry-run")
        .arg(&v2)
        .run();
    let report = text(&out.stdout);
    assert!(
        report.contains("would upgrade")
            && report.contains("1 host: 1 would upgrade (dry run: nothing changed)"),
        "{report}"
    );

    // enroll leaves an existing line alone and says so.
    let (code, report) = enroll("dry", &["--packages", "hello"]);
    let (status, message) = status_of(&report, "dry");
    assert_eq!((code, status.as_str()), (0, "unchanged"));
    assert!(
        message.contains("for packages *, not changed to hello"),
        "{message}"
    );

    assert_same(&snapshot(world, "dry"), &before);

    // A dry run still needs the right to distribute.
    let before = snapshot(world, "fresh");
    let (code, report) = run("install", "fresh", &world.hello, &["--dry-run"]);
    let (status, _, _, message) = outcome(&report, "fresh");
    assert_eq!((code, status.as_str()), (2, "rejected"), "{report:#}");
    assert!(message.contains("trusts no controller"), "{message}");
    assert_same(&snapshot(world, "fresh"), &before);
}

#[test]
fn a_rerun_after_an_interrupted_run_uploads_nothing() {
    let world = world();
    let h = world.fleet.host("cache");
    // pre_install hangs while /run/swpush/hang exists.
    let hanging = world.variant("hello-hanging.tar.gz", |dir| {
        append(
            dir,
            "hooks/pre.sh",
            "while [ -e /run/swpush/hang ]; do sleep 0.2; done\n",
        );
    });
    let size = std::fs::metadata(&hanging).unwrap().len();
    std::fs::write(h.path("/run/swpush/hang"), "").unwrap();
    let (code, report) = run("install", "cache", &hanging, &["--timeout", "4"]);
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(outcome(&report, "cache").0, "timeout", "{report:#}");
    assert_eq!(
        report.host("cache").bytes_sent,
        size,
        "a timeout still says what was sent"
    );
    std::fs::remove_file(h.path("/run/swpush/hang")).unwrap();
    // The client undid the install when the controller left...
    wait_until(
        Duration::from_secs(10),
        "the client let go of its lock",
        || !h.path("/var/lib/swpush/lock").exists(),
    );
    assert!(!h.path("/opt/swpush/hello/current").exists());
    assert!(!h.path("/var/lib/swpush/packages/hello").exists());

    // ...but kept the package it had received and checked.
    let (code, report) = run("install", "cache", &hanging, &[]);
    assert_eq!(code, 0, "{report:#}");
    let entry = report.host("cache");
    assert_eq!(
        (entry.status.as_str(), entry.bytes_sent),
        ("installed", 0),
        "{entry} (the package is {size} bytes)"
    );
}

#[test]
fn the_cache_keeps_only_what_kept_releases_came_from() {
    let world = world();
    let inventory = world.fleet_inventory(
        "prune",
        &["prune"],
        "groups:\n  pruned: {hosts: [prune], keep_releases: 2}\n",
    );
    let mut shas = Vec::new();
    for (op, version) in [
        ("install", "1.0.0"),
        ("upgrade", "1.1.0"),
        ("upgrade", "1.2.0"),
    ] {
        let package = world.hello_at(version);
        let (code, report) = world.push(op, &inventory, &package, &[]);
        assert_eq!(code, 0, "{report:#}");
        let sent = report.host("prune").bytes_sent;
        assert_eq!(sent, std::fs::metadata(&package).unwrap().len());
        shas.push(swpush::package::read(&package).unwrap().sha256);
    }
    let mut cached: Vec<String> =
        std::fs::read_dir(world.fleet.host("prune").path("/var/cache/swpush/hello"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
    cached.sort();
    let mut kept = vec![shas[1].clone(), shas[2].clone()];
    kept.sort();
    assert_eq!(cached, kept, "1.0.0 was pruned with its release");
    let top: Vec<String> = std::fs::read_dir(world.fleet.host("prune").path("/var/cache/swpush"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(top, ["hello"], "nothing half-received is left");
}

#[test]
fn overlapping_runs_on_one_inventory_are_refused_but_status_may_watch() {
    let world = world();
    let h = world.fleet.host("cron");
    let hanging = world.variant("hello-hanging-cron.tar.gz", |dir| {
        append(
            dir,
            "hooks/pre.sh",
            "while [ -e /run/swpush/hang ]; do sleep 0.2; done\n",
        );
    });
    std::fs::write(h.path("/run/swpush/hang"), "").unwrap();
    let inventory = world.fleet_inventory("cron", &["cron"], "");
    let first = world.push_run("install", &inventory, &hanging, &[]).spawn();
    wait_until(
        Duration::from_secs(20),
        "the first run's hook started",
        || h.path("/opt/swpush/hello/hooks.log").exists(),
    );

    let second = world
        .push_command("upgrade", &inventory, &world.hello_at("1.1.0"), &[])
        .output()
        .unwrap();
    let said = text(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{said}");
    assert!(
        said.starts_with("error: another swpush run (pid ")
            && said.contains("swpush install")
            && said.lines().count() == 1,
        "{said}"
    );
    assert!(second.stdout.is_empty(), "nothing was attempted");

    let (code, report) = world.push("status", &inventory, hello(), &[]);
    assert_eq!(code, 0, "{report:#}");

    std::fs::remove_file(h.path("/run/swpush/hang")).unwrap();
    let (code, report) = parse_report(&first.wait_with_output().unwrap());
    assert_eq!(
        (code, outcome(&report, "cron").0.as_str()),
        (0, "installed")
    );
    // The lock went with the run.
    let (code, report) = world.push("upgrade", &inventory, &world.hello_at("1.1.0"), &[]);
    assert_eq!((code, outcome(&report, "cron").0.as_str()), (0, "upgraded"));
}

#[test]
fn unattended_runs_print_the_report_only_and_a_terminal_gets_the_live_display() {
    let world = world();
    let inventory = world.fleet_inventory("tty", &["cron"], "");
    let args = |op: &str| {
        format!(
            "{} {op} -i {} --key {} {}",
            env!("CARGO_BIN_EXE_swpush"),
            inventory.display(),
            world.key.display(),
            world.hello.display()
        )
    };
    // No terminal (cron, a pipe): the report and nothing else, no escapes.
    let out = world
        .swpush("status")
        .arg("-i")
        .arg(&inventory)
        .args(["--connect-timeout", "5"])
        .run();
    let said = text(&out.stdout);
    assert!(said.starts_with("HOST "), "{said}");
    assert!(!said.contains('\u{1b}') && !said.contains('\r'), "{said:?}");
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));

    // On a terminal (script(1) gives it one) the live display draws too.
    let on_tty = std::process::Command::new("script")
        .args(["-qec", &args("install --dry-run"), "/dev/null"])
        .env("HOME", world.fleet.home())
        .env_remove("SSH_AUTH_SOCK")
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let drawn = text(&on_tty.stdout);
    // Another test may have left `cron` another version: that install
    // would do nothing anywhere, exit 2.
    let skipped = drawn.contains("skipped");
    assert_eq!(
        on_tty.status.code(),
        Some(if skipped { 2 } else { 0 }),
        "{drawn}"
    );
    assert!(
        drawn.contains('\u{1b}'),
        "no live display on a terminal: {drawn:?}"
    );
    assert!(
        drawn.contains("would install") || drawn.contains("unchanged") || drawn.contains("skipped"),
        "{drawn:?}"
    );
}

#[test]
fn a_committed_reinstall_is_kept_even_if_the_step_died_before_tidying_up() {
    let world = world();
    let h = world.fleet.host("aside");
    let (code, _) = run("install", "aside", &world.hello, &[]);
    assert_eq!(code, 0);
    let repaired = world.variant("hello-repaired.tar.gz", |dir| {
        std::fs::write(dir.join("bin/hello"), "#!/bin/sh\necho repaired\n").unwrap();
    });
    let (code, report) = run("install", "aside", &repaired, &["--force"]);
    assert_eq!(
        (code, outcome(&report, "aside").0.as_str()),
        (0, "installed"),
        "{report:#}"
    );

    // What a step killed right after committing the reinstall leaves: the
    // old release still put aside, and the record naming it.
    let aside = ".1.0.0.old.999.0123456789abcdef0123456789abcdef";
    let old = h.path(&format!("/opt/swpush/hello/releases/{aside}"));
    std::fs::create_dir_all(old.join("bin")).unwrap();
    std::fs::write(old.join("bin/hello"), "#!/bin/sh\necho old\n").unwrap();
    let record = h.path("/var/lib/swpush/packages/hello");
    let text = std::fs::read_to_string(&record).unwrap();
    assert!(
        text.contains("\nreplaced .1.0.0.old."),
        "the reinstall recorded its aside: {text}"
    );
    let text: String = text
        .lines()
        .map(|l| match l.starts_with("replaced ") {
            true => format!("replaced {aside}\n"),
            false => format!("{l}\n"),
        })
        .collect();
    std::fs::write(&record, text).unwrap();

    let (code, report) = run("install", "aside", &repaired, &[]);
    assert_eq!(
        (code, outcome(&report, "aside").0.as_str()),
        (0, "unchanged"),
        "{report:#}"
    );
    assert_eq!(
        outcome(&report, "aside").3,
        "repaired what an interrupted run left: 1.0.0 is current; already current"
    );
    assert!(!old.exists(), "the committed run's leftover is gone");
    let program = h.path("/opt/swpush/hello/releases/1.0.0/bin/hello");
    assert!(
        std::fs::read_to_string(&program)
            .unwrap()
            .contains("repaired"),
        "the committed content stays"
    );

    // --force also reinstalls the very same content: it repairs a release
    // damaged in place, from the cache.
    std::fs::write(&program, "damaged").unwrap();
    let (code, report) = run("install", "aside", &repaired, &["--force"]);
    assert_eq!(code, 0, "{report:#}");
    let entry = report.host("aside");
    assert_eq!(
        (
            entry.status.as_str(),
            entry.message.as_str(),
            entry.bytes_sent
        ),
        ("installed", "reinstalled 1.0.0 (--force)", 0),
        "{entry}"
    );
    assert!(
        std::fs::read_to_string(&program)
            .unwrap()
            .contains("repaired")
    );
}
