//! `swpush install` when things go wrong: busy hosts, the client lock,
//! deadlines, Ctrl-C, lost connections, a step killed mid-install, a full
//! disk and missing client tools. Real sshd hosts (tests/testsuite/support), real
//! processes, files and mounts; nothing is simulated.
//!
//! One fleet serves every test in this file; each test owns its hosts. Every
//! case ends the same way: the previous release is still current (or nothing
//! is installed on a fresh host), no process is left on the host, its /tmp is
//! empty, and a normal re-run of `swpush install` succeeds.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::support::wait_until;
use crate::support::world::*;

const HOSTS: &[&str] = &[
    "busyfile",
    "busycheck",
    "busybroken",
    "busyfree",
    "lockrace",
    "lockstale",
    "hang",
    "hangok",
    "frozen",
    "int1",
    "int2",
    "int3",
    "int4",
    "int5",
    "intbusy",
    "late",
    "int6",
    "cut",
    "silent",
    "killpre",
    "killpost",
    "killfresh",
    "full",
    "nokeygen",
    "notar",
];

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| World::start_trusted(HOSTS))
}

fn inventory(world: &World, tag: &str, hosts: &[&str], extra: &str) -> PathBuf {
    world.fleet_inventory(tag, hosts, extra)
}

fn install_run(world: &World, inventory: &Path, package: &Path, more: &[&str]) -> Swpush {
    world.push_run("install", inventory, package, more)
}

fn install(world: &World, inventory: &Path, package: &Path, more: &[&str]) -> (i32, Report) {
    world.push("install", inventory, package, more)
}

fn variant(world: &World, file: &str, edit: impl FnOnce(&Path)) -> PathBuf {
    world.variant(file, edit)
}

/// Writes `bytes` random bytes to `path`.
fn random_file(path: &Path, bytes: u64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let made = Command::new("head")
        .args(["-c", &bytes.to_string(), "/dev/urandom"])
        .stdout(std::fs::File::create(path).unwrap())
        .status()
        .unwrap();
    assert!(made.success());
}

fn sha256_of(report: &Report) -> String {
    report["package"]["sha256"].as_str().unwrap().to_owned()
}

// --- what a host has left ------------------------------------------------

/// A normal re-run of `swpush install PACKAGE` on `host` ends `expect`.
fn rerun(world: &World, host: &str, package: &Path, expect: &str) -> Report {
    let inv = inventory(world, &format!("rerun-{host}"), &[host], "");
    let (code, report) = install(world, &inv, package, &[]);
    assert_eq!(
        (code, status_of(&report, host).0.as_str()),
        (0, expect),
        "{host}: re-run: {report:#}"
    );
    // The step frees its lock and work dir before it reports: a run that
    // starts as soon as this one returned finds the host free.
    let h = world.fleet.host(host);
    assert!(!h.path("/var/lib/swpush/lock").exists(), "{host}: lock");
    assert_no_temp_left(world, host);
    assert_settled(world, host, Some("1.0.0"));
    report
}

/// Runs `ARGS...` inside `host`'s mount namespace.
fn in_host(world: &World, host: &str, args: &[&str]) -> Output {
    let pid = world.fleet.host(host).sshd_pid().to_string();
    Command::new("nsenter")
        .args(["-t", &pid, "-m", "--"])
        .args(args)
        .output()
        .expect("run nsenter")
}

fn in_host_ok(world: &World, host: &str, args: &[&str]) -> String {
    let out = in_host(world, host, args);
    assert!(
        out.status.success(),
        "{host}: {args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// A mount made inside a host's namespace; unmounted when dropped, also
/// when the test fails.
struct Mounted<'a> {
    world: &'a World,
    host: &'a str,
    target: String,
    mounted: bool,
}

impl<'a> Mounted<'a> {
    fn new(world: &'a World, host: &'a str, target: &str, mount_args: &[&str]) -> Self {
        let mut args = vec!["mount"];
        args.extend_from_slice(mount_args);
        args.push(target);
        in_host_ok(world, host, &args);
        Mounted {
            world,
            host,
            target: target.to_owned(),
            mounted: true,
        }
    }

    fn unmount(&mut self) {
        if std::mem::take(&mut self.mounted) {
            in_host_ok(self.world, self.host, &["umount", &self.target]);
        }
    }
}

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        if std::mem::take(&mut self.mounted) {
            let _ = in_host(self.world, self.host, &["umount", "-l", &self.target]);
        }
    }
}

// --- 1. busy ---------------------------------------------------------------

#[test]
fn a_busy_host_is_retried_then_given_up_or_served_once_free() {
    let world = world();
    let fleet = &world.fleet;
    std::thread::scope(|scope| {
        // /run/swpush/busy: two retries, then `busy`; nothing sent or cached.
        scope.spawn(|| {
            let h = fleet.host("busyfile");
            std::fs::write(h.path("/run/swpush/busy"), "backup running\n").unwrap();
            let inv = inventory(world, "busyfile", &["busyfile"], "");
            let message = install_while_busy(world, &inv, "busyfile", "2", 3);
            assert!(
                message.contains("/run/swpush/busy exists") && message.contains("2 retries"),
                "{message}"
            );
            std::fs::remove_file(h.path("/run/swpush/busy")).unwrap();
            rerun(world, "busyfile", &world.hello, "installed");
        });

        // The inventory's busy_check, and the group's busy_retries (1) over
        // the command line's (5).
        scope.spawn(|| {
            let h = fleet.host("busycheck");
            std::fs::write(h.path("/opt/busy-flag"), "").unwrap();
            let extra = format!(
                "  busycheck: {{address: {}, busy_check: \"test -e /opt/busy-flag\"}}\n\
                 groups:\n  careful: {{hosts: [busycheck], busy_retries: 1}}\n",
                h.addr
            );
            let inv = inventory(world, "busycheck", &[], &extra);
            // 2 checks: the group's 1 retry.
            let message = install_while_busy(world, &inv, "busycheck", "5", 2);
            assert!(message.contains("busy_check says busy"), "{message}");
            std::fs::remove_file(h.path("/opt/busy-flag")).unwrap();
            let (code, report) = install(world, &inv, &world.hello, &[]);
            assert_eq!(code, 0, "{report:#}");
            assert_eq!(status_of(&report, "busycheck").0, "installed");
            assert_settled(world, "busycheck", Some("1.0.0"));
        });

        // A busy_check that is itself broken (not found: 127; a syntax
        // error: 2) says nothing about the host: busy, never installed
        // during the job it guards, with what the check said.
        scope.spawn(|| {
            let h = fleet.host("busybroken");
            for (check, exit, said) in [
                ("pg_dumpp_is_running", 127, "not found"),
                ("if then fi", 2, "Syntax error"),
            ] {
                let extra = format!(
                    "  busybroken: {{address: {}, busy_check: \"{check}\"}}\n",
                    h.addr
                );
                let inv = inventory(world, "busybroken", &[], &extra);
                let message = install_while_busy(world, &inv, "busybroken", "1", 2);
                let failed = format!("busy_check failed (exit {exit}): ");
                assert!(
                    message.contains(&failed)
                        && message.contains(said)
                        && message.contains("1 retries"),
                    "{message}"
                );
            }
        });

        // Free again ~1.5 s after the step started: installed on a later
        // attempt.
        scope.spawn(|| {
            let h = fleet.host("busyfree");
            let busy = h.path("/run/swpush/busy");
            std::fs::write(&busy, "").unwrap();
            let inv = inventory(world, "busyfree", &["busyfree"], "");
            let tmp = h.path("/tmp");
            let remover = std::thread::spawn(move || {
                wait_until(Duration::from_secs(20), "the step in /tmp", || {
                    !is_empty_dir(&tmp)
                });
                sleep(Duration::from_millis(1500));
                std::fs::remove_file(busy).unwrap();
            });
            let (code, report) = install(
                world,
                &inv,
                &world.hello,
                &["--busy-wait", "1", "--busy-retries", "10"],
            );
            remover.join().unwrap();
            assert_eq!(code, 0, "{report:#}");
            let entry = report.host("busyfree");
            assert_eq!(entry.status, "installed", "{entry}");
            let attempts = entry.attempts;
            assert!(attempts >= 2, "{entry}");
            assert_settled(world, "busyfree", Some("1.0.0"));
            rerun(world, "busyfree", &world.hello, "unchanged");
        });
    });
}

/// Installs hello on the busy `host` alone with `--busy-wait 1
/// --busy-retries RETRIES`; asserts it ended `busy` after `checks` checks
/// with nothing sent, cached or changed, and returns the message.
fn install_while_busy(world: &World, inv: &Path, host: &str, retries: &str, checks: u64) -> String {
    let more = ["--busy-wait", "1", "--busy-retries", retries];
    let (code, report) = install(world, inv, &world.hello, &more);
    assert_eq!(code, 2, "{report:#}");
    let entry = report.host(host);
    assert_eq!(
        (entry.status.as_str(), entry.attempts, entry.bytes_sent),
        ("busy", checks, 0),
        "{entry}"
    );
    let h = world.fleet.host(host);
    assert!(is_empty_dir(&h.path("/var/cache/swpush")), "cache");
    assert_settled(world, host, None);
    entry.message.as_str().to_owned()
}

// --- 2. the client lock ------------------------------------------------------

#[test]
fn concurrent_runs_take_turns_and_a_dead_runs_lock_is_taken_over() {
    let world = world();
    let slow = variant(world, "slow-pre-lock.tar.gz", |dir| {
        append(dir, "hooks/pre.sh", "sleep 2\n");
    });

    // Two controllers at once (each its own state: one controller refuses
    // to overlap itself, see tests/testsuite/lock.rs): one installs, the
    // other waits for the client's lock and then finds the package current.
    let runs: Vec<_> = (0..2)
        .map(|n| {
            install_run(
                world,
                &inventory(world, &format!("lockrace{n}"), &["lockrace"], ""),
                &slow,
                &["--busy-wait", "1", "--busy-retries", "10"],
            )
            .env(
                "XDG_STATE_HOME",
                world.fleet.dir().join(format!("controller-{n}")),
            )
            .spawn()
        })
        .collect();
    let mut reports: Vec<(i32, Report)> = runs
        .into_iter()
        .map(|run| parse_report(&run.wait_with_output().unwrap()))
        .collect();
    reports.sort_by_key(|(_, r)| status_of(r, "lockrace").0);
    let (installed, unchanged) = (&reports[0], &reports[1]);
    assert_eq!(
        (
            installed.0,
            status_of(&installed.1, "lockrace").0.as_str(),
            unchanged.0,
            status_of(&unchanged.1, "lockrace").0.as_str(),
        ),
        (0, "installed", 0, "unchanged"),
        "{reports:#?}"
    );
    let waited = unchanged.1.host("lockrace");
    assert!(
        waited.attempts >= 2,
        "the second run waited for the lock: {waited}"
    );
    assert_eq!(
        waited.previous_version.as_deref(),
        Some("1.0.0"),
        "{waited}"
    );
    assert_eq!(waited.version.as_deref(), Some("1.0.0"), "{waited}");
    let h = world.fleet.host("lockrace");
    let hooks = std::fs::read_to_string(h.path("/opt/swpush/hello/hooks.log")).unwrap();
    assert_eq!(hooks.lines().count(), 2, "the hooks ran once: {hooks}");
    assert_settled(world, "lockrace", Some("1.0.0"));
    rerun(world, "lockrace", &slow, "unchanged");

    // The lock of a run that died (its pid is gone) is taken over.
    assert!(!Path::new("/proc/999999").exists());
    let h = world.fleet.host("lockstale");
    std::fs::create_dir_all(h.path("/var/lib/swpush/lock")).unwrap();
    std::fs::write(h.path("/var/lib/swpush/lock/pid"), "999999\n").unwrap();
    let inv = inventory(world, "lockstale", &["lockstale"], "");
    let (code, report) = install(
        world,
        &inv,
        &world.hello,
        &["--busy-wait", "1", "--busy-retries", "0"],
    );
    assert_eq!(code, 0, "{report:#}");
    let entry = report.host("lockstale");
    assert_eq!(
        (entry.status.as_str(), entry.attempts),
        ("installed", 1),
        "{entry}"
    );
    assert_settled(world, "lockstale", Some("1.0.0"));
    rerun(world, "lockstale", &world.hello, "unchanged");

    // A lock from before a reboot is stale even if its pid is alive again.
    std::fs::remove_dir_all(h.path("/opt/swpush/hello")).unwrap();
    std::fs::remove_file(h.path("/var/lib/swpush/packages/hello")).unwrap();
    std::fs::create_dir_all(h.path("/var/lib/swpush/lock")).unwrap();
    std::fs::write(h.path("/var/lib/swpush/lock/pid"), "1 another-boot\n").unwrap();
    let (code, report) = install(
        world,
        &inv,
        &world.hello,
        &["--busy-wait", "1", "--busy-retries", "0"],
    );
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report.host("lockstale").status, "installed");
    assert!(!h.path("/var/lib/swpush/lock").exists());
}

// --- 3. deadlines --------------------------------------------------------------

/// Sends SIGCONT to a stopped process when dropped.
struct Stopped(u32);

impl Stopped {
    fn stop(pid: u32) -> Stopped {
        signal("STOP", pid);
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        // No assert here: this also runs while a failed test unwinds.
        let _ = Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .status();
    }
}

/// Waits until `host`'s step is installing: its release is being staged.
fn wait_installing(world: &World, host: &str) {
    let releases = world.fleet.host(host).path("/opt/swpush/hello/releases");
    let what = format!("{host} installing");
    wait_until(Duration::from_secs(20), &what, || releases.exists());
}

fn signal(name: &str, pid: u32) {
    let sent = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{name} {pid}");
}

#[test]
fn a_hung_host_times_out_and_an_unresponsive_one_is_unreachable_while_others_finish() {
    let world = world();
    let fleet = &world.fleet;
    // post_install hangs where /opt/hang exists. A --timeout of 6 s leaves
    // the other hosts time to finish on a loaded machine. One connection
    // try: what retries add is a_host_that_listens_late_is_reached_...'s.
    let hanging = variant(world, "hang-post.tar.gz", |dir| {
        append(
            dir,
            "hooks/post.sh",
            "if [ -e /opt/hang ]; then sleep 1000; fi\n",
        );
    });
    std::fs::write(fleet.host("hang").path("/opt/hang"), "").unwrap();
    let inv = inventory(world, "deadlines", &["hang", "hangok", "frozen"], "");
    let frozen = Stopped::stop(fleet.host("frozen").sshd_pid());
    let started = Instant::now();
    let (code, report) = install(
        world,
        &inv,
        &hanging,
        &[
            "--timeout",
            "6",
            "--connect-timeout",
            "2",
            "--connect-retries",
            "0",
        ],
    );
    let took = started.elapsed();
    drop(frozen);
    assert_eq!(code, 2, "{report:#}");
    assert!(took < Duration::from_secs(12), "the run took {took:?}");

    let seconds = |host: &str| report.host(host).seconds;
    let (status, message) = status_of(&report, "hang");
    assert_eq!(status, "timeout", "{message}");
    // In the operator's words: what it was stopped in, and what follows.
    assert_eq!(
        message,
        "the post_install hook of hello 1.0.0 was still running after 6 s (--timeout) and was stopped; the host removes it again"
    );
    let hang = report.host("hang");
    assert_eq!(
        (hang.previous_version.as_deref(), hang.version.as_deref()),
        (None, Some("unknown")),
        "what was current before is known from the step's hello: {hang}"
    );
    assert!((5.9..9.0).contains(&seconds("hang")), "{report:#}");

    let (status, message) = status_of(&report, "frozen");
    assert_eq!(status, "unreachable", "{message}");
    assert!(message.contains("timed out"), "{message}");
    assert!(seconds("frozen") < 4.5, "{report:#}");
    assert_eq!(report.host("frozen").bytes_sent, 0);

    assert_eq!(status_of(&report, "hangok").0, "installed", "{report:#}");
    assert!(
        seconds("hangok") < 6.0,
        "done before the deadline: {report:#}"
    );

    // The watchdog killed the step and its hook, switched back, cleaned up.
    assert_settled(world, "hang", None);
    assert_settled(world, "frozen", None);
    let hooks =
        std::fs::read_to_string(fleet.host("hang").path("/opt/swpush/hello/hooks.log")).unwrap();
    assert!(
        hooks.contains("post_install"),
        "the hook had started: {hooks}"
    );
    assert_settled(world, "hangok", Some("1.0.0"));

    std::fs::remove_file(fleet.host("hang").path("/opt/hang")).unwrap();
    for host in ["hang", "frozen"] {
        rerun(world, host, &world.hello, "installed");
    }
    rerun(world, "hangok", &hanging, "unchanged");
}

// --- 4. Ctrl-C -------------------------------------------------------------------

#[test]
fn ctrl_c_finishes_the_host_in_flight_and_starts_no_other() {
    let world = world();
    let fleet = &world.fleet;
    let slow = variant(world, "slow-pre-int.tar.gz", |dir| {
        append(dir, "hooks/pre.sh", "sleep 2\n");
    });
    let hosts = ["int1", "int2", "int3", "int4"];
    let inv = inventory(world, "interrupt", &hosts, "");
    let run = install_run(world, &inv, &slow, &["--forks", "1"]).spawn();
    // Interrupt once the first host's step is installing (its release is
    // being staged, then its pre_install sleeps 2 s): that host is in
    // flight, the others wait for its fork.
    wait_installing(world, "int1");
    signal("INT", run.id());
    let output = run.wait_with_output().unwrap();
    let (code, report) = parse_report(&output);
    assert_eq!(code, 2, "{report:#}");
    assert!(
        text(&output.stderr).contains("interrupted"),
        "{}",
        text(&output.stderr)
    );
    let entry = report.host("int1");
    assert_eq!(entry.status, "installed", "{report:#}");
    assert_settled(world, "int1", Some("1.0.0"));
    for host in &hosts[1..] {
        let entry = report.host(host);
        assert_eq!(entry.status, "not-attempted", "{report:#}");
        assert_eq!(entry.attempts, 0, "{entry}");
        assert_eq!(entry.bytes_sent, 0, "{entry}");
        assert!(
            names_in(&fleet.host(host).path("/opt")).is_empty(),
            "{host}: something was installed"
        );
        assert!(is_empty_dir(&fleet.host(host).path("/var/cache/swpush")));
        assert_settled(world, host, None);
    }
    assert_eq!(report["summary"]["not-attempted"], 3, "{report:#}");

    let (code, report) = install(world, &inv, &slow, &[]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(status_of(&report, "int1").0, "unchanged");
    for host in &hosts[1..] {
        assert_eq!(status_of(&report, host).0, "installed", "{report:#}");
    }
    for host in hosts {
        assert_settled(world, host, Some("1.0.0"));
    }
}

/// A host only waiting while busy is not kept waiting out its retries by
/// an interrupt: it ends `not-attempted` at once, nothing changed, while
/// the host installing finishes.
#[test]
fn ctrl_c_stops_a_host_waiting_while_busy_and_finishes_the_one_installing() {
    let world = world();
    let fleet = &world.fleet;
    let slow = variant(world, "slow-pre-int-busy.tar.gz", |dir| {
        append(dir, "hooks/pre.sh", "sleep 3\n");
    });
    let busy = fleet.host("intbusy").path("/run/swpush/busy");
    std::fs::write(&busy, "backup running\n").unwrap();
    let inv = inventory(world, "interrupt-busy", &["intbusy", "int6"], "");
    let started = Instant::now();
    let more = ["--busy-wait", "1", "--busy-retries", "60"];
    let run = install_run(world, &inv, &slow, &more).spawn();
    wait_installing(world, "int6");
    signal("INT", run.id());
    let output = run.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the busy host waited out its retries: {:?}",
        started.elapsed()
    );
    let (code, report) = parse_report(&output);
    assert_eq!(code, 2, "{report:#}");
    let entry = report.host("intbusy");
    assert_eq!(entry.status, "not-attempted", "{report:#}");
    assert!(
        entry.message.contains("before it started installing"),
        "{entry}"
    );
    assert_eq!(entry.bytes_sent, 0, "{entry}");
    assert_eq!(report.host("int6").status, "installed", "{report:#}");
    assert_settled(world, "int6", Some("1.0.0"));
    // The busy host's step ends at its next line, undoing nothing.
    std::fs::remove_file(&busy).unwrap();
    assert_settled(world, "intbusy", None);
    assert!(is_empty_dir(
        &fleet.host("intbusy").path("/var/cache/swpush")
    ));
}

/// A second interrupt stops swpush at once; the host it left mid-install
/// undoes what was started (the step sees its controller vanish). The run
/// still prints its report, with that host `failed`, and keeps its record.
#[test]
fn a_second_ctrl_c_stops_at_once_and_the_client_undoes_its_work() {
    let world = world();
    let fleet = &world.fleet;
    let slow = variant(world, "slower-pre-int.tar.gz", |dir| {
        append(dir, "hooks/pre.sh", "sleep 30\n");
    });
    let inv = inventory(world, "interrupt-twice", &["int5"], "");
    let started = Instant::now();
    let run = install_run(world, &inv, &slow, &[]).spawn();
    // Installing: a host not yet installing would end at the first.
    wait_installing(world, "int5");
    signal("INT", run.id());
    sleep(Duration::from_millis(300));
    signal("INT", run.id());
    let output = run.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "stopped at once, not after the hook"
    );
    assert!(
        text(&output.stderr).contains("interrupted again"),
        "{}",
        text(&output.stderr)
    );
    let (_, report) = parse_report(&output);
    let (status, message) = status_of(&report, "int5");
    assert_eq!(status, "failed", "{report:#}");
    assert!(message.contains("interrupted again"), "{message}");
    let runs = fleet.home().join(".local/state/swpush/runs");
    let recorded = std::fs::read_dir(&runs)
        .unwrap()
        .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path()).ok())
        .any(|record| record.contains("\"int5\"") && record.contains("interrupted again"));
    assert!(
        recorded,
        "no run record of the interrupted run in {}",
        runs.display()
    );
    assert_settled(world, "int5", None);
}

// --- 5. faults -----------------------------------------------------------------

/// A host whose sshd listens only a moment after the run began (a reboot
/// finishing, say) is reached on a later try: the default
/// `--connect-retries 2`, with backoff; `attempts` counts the tries. With
/// `--connect-retries 0` it is unreachable after one.
#[test]
fn a_host_that_listens_late_is_reached_through_connect_retries() {
    let world = world();
    let h = world.fleet.host("late");
    // The host behind a port that refuses connections until the listener
    // below opens it, 1 s into the run, and then forwards to its sshd.
    let port = 10023;
    let known_hosts = world.fleet.dir().join("known_hosts-late");
    let line = format!("[{}]:{port} {}\n", h.addr, h.public_key());
    std::fs::write(&known_hosts, line).unwrap();
    let extra = format!("  late: {{address: {}, port: {port}}}\n", h.addr);
    let inv = inventory(world, "late", &[], &extra);
    let known = ["--known-hosts", known_hosts.to_str().unwrap()];

    let once = [&known[..], &["--connect-retries", "0"]].concat();
    let (code, report) = install(world, &inv, &world.hello, &once);
    assert_eq!(code, 2, "{report:#}");
    let entry = report.host("late");
    assert_eq!(
        (entry.status.as_str(), entry.attempts),
        ("unreachable", 1),
        "{entry}"
    );

    let (addr, sshd) = (
        h.addr,
        std::net::SocketAddr::from((h.addr, crate::support::SSH_PORT)),
    );
    // Every connection is forwarded: the run's, and the new login that
    // confirms the install.
    std::thread::spawn(move || {
        sleep(Duration::from_secs(1));
        let listener = std::net::TcpListener::bind((addr, port)).unwrap();
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let server = std::net::TcpStream::connect(sshd).unwrap();
            let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c2, &mut s2);
                let _ = s2.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let (mut client, mut server) = (client, server);
                let _ = std::io::copy(&mut server, &mut client);
                let _ = client.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    let (code, report) = install(world, &inv, &world.hello, &known);
    assert_eq!(code, 0, "{report:#}");
    let entry = report.host("late");
    assert_eq!(entry.status, "installed", "{entry}");
    assert!(entry.attempts >= 2, "{entry}");
    assert_settled(world, "late", Some("1.0.0"));
}

#[test]
fn a_connection_cut_mid_upload_fails_cleanly_and_a_rerun_succeeds() {
    let world = world();
    let fleet = &world.fleet;
    let big = variant(world, "big.tar", |dir| {
        random_file(&dir.join("data/blob"), 40 << 20);
    });
    let size = std::fs::metadata(&big).unwrap().len();
    let h = fleet.host("cut");
    let inv = inventory(world, "cut", &["cut"], "");
    // --timeout bounds a regression: the cut must end the host long before.
    let run = install_run(world, &inv, &big, &["--timeout", "60"]).spawn();
    // Wait until the step is receiving the package, then cut the connection.
    let mut receiving = 0;
    wait_until(Duration::from_secs(30), "the upload started", || {
        // The step receives into the cache folder as `.incoming.PID`.
        receiving = names_in(&h.path("/var/cache/swpush"))
            .iter()
            .filter(|name| name.starts_with(".incoming."))
            .filter_map(|name| std::fs::metadata(h.path(&format!("/var/cache/swpush/{name}"))).ok())
            .map(|m| m.len())
            .next()
            .unwrap_or(0);
        receiving > 0
    });
    let sessions = h.session_pids();
    assert!(!sessions.is_empty());
    for pid in sessions {
        signal("KILL", pid);
    }
    let (code, report) = parse_report(&run.wait_with_output().unwrap());
    assert_eq!(code, 2, "{report:#}");
    let entry = report.host("cut");
    let message = entry.message.as_str();
    assert_eq!(entry.status, "failed", "{entry}");
    assert!(
        message.contains("connection") && message.contains("lost"),
        "{message}"
    );
    let sent = entry.bytes_sent;
    assert!(
        receiving < size && 0 < sent && sent < size,
        "cut mid-upload: {receiving} of {size} bytes had arrived; {entry}"
    );
    assert_settled(world, "cut", None);
    // Checked once the step is gone: it removes its half-received package.
    assert!(is_empty_dir(&h.path("/var/cache/swpush")), "cache");

    let report = rerun(world, "cut", &big, "installed");
    assert_eq!(report.host("cut").bytes_sent, size);
}

#[test]
fn a_connection_gone_silent_mid_upload_does_not_hold_the_client() {
    let world = world();
    let big = variant(world, "big-silent.tar", |dir| {
        random_file(&dir.join("data/blob"), 40 << 20);
    });
    let h = world.fleet.host("silent");
    let inv = inventory(world, "silent", &["silent"], "");
    let run = install_run(world, &inv, &big, &["--timeout", "3"]).spawn();
    // The step creates its `.incoming.` file before the first byte comes:
    // wait for more than one of the controller's 256 KiB chunks to have
    // arrived, so the controller has counted at least one sent.
    let cache = h.path("/var/cache/swpush");
    let received = || -> u64 {
        names_in(&cache)
            .iter()
            .filter(|name| name.starts_with(".incoming."))
            .filter_map(|name| std::fs::metadata(cache.join(name)).ok())
            .map(|meta| meta.len())
            .sum()
    };
    wait_until(Duration::from_secs(30), "the upload started", || {
        received() > 256 << 10
    });
    // The controller freezes: the connection stays up, and nothing more
    // comes (as when a network drops packets without a word). The step
    // is blocked reading the package; it must not hold the host's lock
    // until TCP gives up, hours later.
    let frozen = Stopped::stop(run.id());
    wait_until(
        Duration::from_secs(30),
        "the step let go of the lock (30 s into a 3 s --timeout)",
        || !h.path("/var/lib/swpush/lock").exists(),
    );
    // Only the frozen controller's SSH session is left: the step, its
    // half-received package and its lock are gone.
    // (The lock goes first in the step's cleanup: let the cleanup end.)
    let steps_left = || -> Vec<String> {
        h.processes()
            .into_iter()
            .filter(|p| !p.contains("sshd: "))
            .collect()
    };
    wait_until(Duration::from_secs(5), "the step's processes gone", || {
        steps_left().is_empty()
    });
    assert!(is_empty_dir(&h.path("/var/cache/swpush")), "cache");
    assert!(!h.path("/var/lib/swpush/packages/hello").exists());
    drop(frozen);
    let (code, report) = parse_report(&run.wait_with_output().unwrap());
    let entry = report.host("silent");
    assert_eq!(
        (code, Some(entry.status.as_str())),
        (2, Some("timeout")),
        "{report:#}"
    );
    assert!(entry.bytes_sent > 0, "{entry}");
    assert_settled(world, "silent", None);
}

#[test]
fn a_step_killed_in_pre_install_is_cleaned_up_by_the_next_run() {
    let world = world();
    let h = world.fleet.host("killpre");
    let killer = variant(world, "kill-pre.tar.gz", |dir| {
        append(dir, "hooks/pre.sh", "kill -KILL $PPID\n");
        std::fs::write(dir.join("bin/hello"), "#!/bin/sh\necho killer\n").unwrap();
    });
    let inv = inventory(world, "killpre", &["killpre"], "");
    let (code, report) = install(world, &inv, &killer, &[]);
    assert_eq!(code, 2, "{report:#}");
    let (status, message) = status_of(&report, "killpre");
    assert_eq!(status, "failed", "{message}");
    assert!(
        message.contains("before it reported how it went"),
        "{message}"
    );
    assert!(message.contains("KILL"), "{message}");

    // What the killed step left: a release never made current, its lock
    // and its work dir.
    assert_eq!(names_in(&h.path("/opt/swpush/hello/releases")), ["1.0.0"]);
    assert_eq!(read_link(world, "killpre", "/opt/swpush/hello/current"), "");
    assert!(!h.path("/var/lib/swpush/packages/hello").exists());
    assert!(h.path("/var/lib/swpush/lock/pid").is_file(), "a stale lock");
    let temp = names_in(&h.path("/tmp"));
    assert!(
        temp.len() == 1 && temp[0].starts_with("swpush."),
        "a work dir: {temp:?}"
    );
    world.fleet.host("killpre").assert_no_process_left();

    // The next run takes the lock over, clears the leftovers and says so.
    let report = rerun(world, "killpre", &world.hello, "installed");
    assert_eq!(
        status_of(&report, "killpre").1,
        "repaired an interrupted install: hello is not installed, as before"
    );
    assert_eq!(
        std::fs::read_to_string(h.path("/opt/swpush/hello/releases/1.0.0/bin/hello")).unwrap(),
        std::fs::read_to_string(repo("packages/hello/bin/hello")).unwrap()
    );
}

#[test]
fn a_step_killed_after_switching_is_undone_by_the_next_run() {
    let world = world();
    let fleet = &world.fleet;
    let killer = variant(world, "kill-post.tar.gz", |dir| {
        append(dir, "hooks/post.sh", "kill -KILL $PPID\n");
        std::fs::write(dir.join("bin/hello"), "#!/bin/sh\necho killer\n").unwrap();
    });
    let original = std::fs::read_to_string(repo("packages/hello/bin/hello")).unwrap();

    // Over an installed 1.0.0 (same version, --force): the killed step left
    // its content in releases/1.0.0 and the original aside.
    let inv = inventory(world, "killpost", &["killpost"], "");
    let (code, first) = install(world, &inv, &world.hello, &[]);
    assert_eq!(code, 0, "{first:#}");
    let (code, report) = install(world, &inv, &killer, &["--force"]);
    assert_eq!(code, 2, "{report:#}");
    let (status, message) = status_of(&report, "killpost");
    assert_eq!(status, "failed", "{message}");
    assert!(
        message.contains("before it reported how it went"),
        "{message}"
    );
    let h = fleet.host("killpost");
    let bin = h.path("/opt/swpush/hello/releases/1.0.0/bin/hello");
    assert_eq!(
        std::fs::read_to_string(&bin).unwrap(),
        "#!/bin/sh\necho killer\n"
    );
    world.fleet.host("killpost").assert_no_process_left();
    // The re-run puts the recorded release back and finds it current.
    let report = rerun(world, "killpost", &world.hello, "unchanged");
    assert_eq!(
        status_of(&report, "killpost").1,
        "repaired an interrupted reinstall: 1.0.0 is current again; already current"
    );
    assert_eq!(std::fs::read_to_string(&bin).unwrap(), original);
    let record = std::fs::read_to_string(h.path("/var/lib/swpush/packages/hello")).unwrap();
    assert!(record.contains(&sha256_of(&first)), "{record}");
    assert_hello_runs(world, "killpost", "1.0.0");

    // On a fresh host `current` was switched but never recorded. A run that
    // then fails in pre_install must still leave the host as recorded:
    // nothing current.
    let inv = inventory(world, "killfresh", &["killfresh"], "");
    let (code, report) = install(world, &inv, &killer, &[]);
    assert_eq!(
        (code, status_of(&report, "killfresh").0.as_str()),
        (2, "failed")
    );
    assert_eq!(
        read_link(world, "killfresh", "/opt/swpush/hello/current"),
        "releases/1.0.0"
    );
    assert!(
        !fleet
            .host("killfresh")
            .path("/var/lib/swpush/packages/hello")
            .exists()
    );
    let refused = variant(world, "fail-pre.tar.gz", |dir| {
        append(dir, "hooks/pre.sh", "echo not today >&2; exit 1\n");
    });
    let (code, report) = install(world, &inv, &refused, &[]);
    let (status, message) = status_of(&report, "killfresh");
    assert_eq!((code, status.as_str()), (2, "failed"), "{message}");
    assert!(message.contains("pre_install failed"), "{message}");
    assert_settled(world, "killfresh", None);
    rerun(world, "killfresh", &world.hello, "installed");
}

#[test]
fn a_full_disk_fails_the_install_and_changes_nothing() {
    let world = world();
    let fleet = &world.fleet;
    let fat = variant(world, "fat.tar", |dir| {
        random_file(&dir.join("data/blob"), 3 << 20);
    });
    let mut tmpfs = Mounted::new(
        world,
        "full",
        "/opt",
        &["-t", "tmpfs", "-o", "size=1m", "tmpfs"],
    );
    let inv = inventory(world, "full", &["full"], "");
    let (code, report) = install(world, &inv, &fat, &[]);
    assert_eq!(code, 2, "{report:#}");
    let (status, message) = status_of(&report, "full");
    assert_eq!(status, "failed", "{message}");
    assert!(
        message.to_lowercase().contains("no space left"),
        "{message}"
    );
    // Inside the host (its /opt is the small tmpfs): nothing current, no
    // release, no staging dir; refused before extracting (the signed
    // unpacked size does not fit), not even a folder was made.
    let seen = in_host_ok(world, "full", &["find", "/opt", "-mindepth", "1"]);
    assert_eq!(seen.trim(), "", "{seen}");
    assert!(
        in_host(world, "full", &["test", "-L", "/opt/swpush/hello/current"])
            .status
            .code()
            == Some(1)
    );
    assert!(!fleet.host("full").path("/var/lib/swpush/packages").exists());
    world.fleet.host("full").assert_no_process_left();
    assert_no_temp_left(world, "full");
    tmpfs.unmount();
    assert_settled(world, "full", None);
    rerun(world, "full", &fat, "installed");
}

#[test]
fn missing_client_tools_refuse_the_install_before_any_byte_is_sent() {
    let world = world();
    let fleet = &world.fleet;
    for (host, tool, status) in [
        ("nokeygen", "ssh-keygen", "rejected"),
        ("notar", "tar", "failed"),
    ] {
        // /usr/bin/TOOL, and /bin/TOOL where /bin is not merged into /usr.
        let mut hidden = Vec::new();
        let mut seen = Vec::new();
        for path in [format!("/usr/bin/{tool}"), format!("/bin/{tool}")] {
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if !seen.contains(&(meta.dev(), meta.ino())) {
                seen.push((meta.dev(), meta.ino()));
                hidden.push(Mounted::new(world, host, &path, &["--bind", "/dev/null"]));
            }
        }
        assert!(!hidden.is_empty(), "no {tool} on this machine");
        let inv = inventory(world, host, &[host], "");
        let (code, report) = install(world, &inv, &world.hello, &[]);
        assert_eq!(code, 2, "{report:#}");
        let entry = report.host(host);
        let message = entry.message.as_str();
        assert_eq!(entry.status, status, "{entry}");
        assert!(message.contains(&format!("{tool} is missing")), "{message}");
        assert_eq!(entry.bytes_sent, 0, "{entry}");
        assert!(
            names_in(&fleet.host(host).path("/opt")).is_empty(),
            "{host}"
        );
        assert!(is_empty_dir(&fleet.host(host).path("/var/cache/swpush")));
        assert_settled(world, host, None);
        hidden.iter_mut().for_each(Mounted::unmount);
        rerun(world, host, &world.hello, "installed");
    }
}
