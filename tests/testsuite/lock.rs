//! The controller's run lock is on the hosts a run selects: runs on other
//! hosts (of the same inventory or not) go ahead side by side; a run on a
//! host another run is working on (by whatever name) is refused naming
//! those hosts, or with `--wait[=SECONDS]` queues behind it; a run killed
//! outright leaves nothing in the way; Ctrl-C during a wait starts nothing.
//!
//! The run holding the lock is connecting to a "stuck" host: a TCP
//! listener that accepts and never says a word, so the run stays in
//! flight, holding its lock, until the test closes that connection.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::support::world::*;
use crate::support::{holds_within, wait_until};

const HOSTS: &[&str] = &["lk1", "lk2", "lk3", "lk4", "lk5"];

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| World::start_trusted(HOSTS))
}

/// Where this module's runs keep their locks, whatever the test's
/// environment says of XDG_STATE_HOME.
fn state_home(world: &World) -> PathBuf {
    world.fleet.dir().join("lock-state")
}

/// A host that accepts a connection and never answers.
struct Stuck {
    listener: TcpListener,
    port: u16,
}

impl Stuck {
    fn new() -> Stuck {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        Stuck { listener, port }
    }

    /// Waits for a run to connect: from then on it holds its run lock.
    /// Dropping what this returns lets that run go on (and fail the host).
    fn accept(&self) -> TcpStream {
        let mut accepted = None;
        wait_until(Duration::from_secs(20), "a run connected", || {
            accepted = self.listener.accept().ok().map(|(stream, _)| stream);
            accepted.is_some()
        });
        accepted.unwrap()
    }
}

/// An inventory of `(name, address, port)` entries, logging in as the fleet does.
fn inventory(world: &World, tag: &str, hosts: &[(&str, String, u16)]) -> PathBuf {
    let mut yaml = format!(
        "defaults:\n  user: root\n  identity_file: \"{}\"\nhosts:\n",
        world.fleet.login_key().display()
    );
    for (name, address, port) in hosts {
        yaml += &format!("  {name}: {{address: \"{address}\", port: {port}}}\n");
    }
    let path = world.fleet.dir().join(format!("inventory-lock-{tag}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    path
}

/// Fleet host `name` as an inventory entry called `alias`.
fn fleet_host(world: &World, alias: &'static str, name: &str) -> (&'static str, String, u16) {
    (alias, world.fleet.host(name).addr.to_string(), 10022)
}

/// `swpush OP` on `inventory` as this module runs it.
fn run(world: &World, op: &str, inventory: &Path, package: &Path, more: &[&str]) -> Swpush {
    world
        .push_run(
            op,
            inventory,
            package,
            &[&["--connect-retries", "0"], more].concat(),
        )
        .env("XDG_STATE_HOME", state_home(world))
}

/// `swpush install` on `inventory`, spawned, holding its lock on the
/// hosts it selects until the returned connection to `stuck` is dropped.
fn holder(world: &World, inventory: &Path, stuck: &Stuck, more: &[&str]) -> (Child, TcpStream) {
    let child = run(
        world,
        "install",
        inventory,
        &world.hello,
        &[&["--connect-timeout", "60"], more].concat(),
    )
    .spawn();
    let connection = stuck.accept();
    (child, connection)
}

/// Lets the holder go on (its stuck host fails) and waits for it to end.
fn release(holder: Child, connection: TcpStream) {
    drop(connection);
    let out = holder.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

/// The run files in the registry left by the run whose pid is `pid`.
fn run_files_of(world: &World, pid: u32) -> Vec<String> {
    names_in(&state_home(world).join("swpush/locks/runs"))
        .into_iter()
        .filter(|name| name.starts_with(&format!("{pid}-")))
        .collect()
}

fn untouched(world: &World, host: &str) -> bool {
    !world.fleet.host(host).path("/opt/swpush/hello").exists()
}

/// The one `error:` line of a refused run, after checking it touched nothing.
fn refusal(ran: &Ran) -> String {
    let said = ran.stderr();
    assert_eq!(ran.code(), 1, "{said}");
    assert!(
        ran.stdout.is_empty(),
        "nothing was attempted: {}",
        ran.stdout()
    );
    assert_eq!(said.lines().count(), 1, "{said}");
    said
}

#[test]
fn runs_on_other_hosts_go_ahead_and_one_on_the_same_host_by_any_name_is_refused_naming_it() {
    let world = world();
    let stuck = Stuck::new();
    let at_stuck = |name| (name, "127.0.0.1".to_owned(), stuck.port);
    let fleet = inventory(
        world,
        "fleet",
        &[at_stuck("stuck"), fleet_host(world, "lk1", "lk1")],
    );
    let (held, connection) = holder(world, &fleet, &stuck, &["--limit", "stuck"]);
    let pid = held.id();

    // The same inventory, another host: the two go ahead side by side.
    let (code, report) = run(world, "install", &fleet, &world.hello, &["--limit", "lk1"])
        .run()
        .code_and_report();
    assert_eq!((code, outcome(&report, "lk1").0.as_str()), (0, "installed"));

    // Another inventory's names for the stuck host: refused, naming them
    // (a few, then how many more) and the run that holds them.
    let other = inventory(
        world,
        "aliases",
        &[
            fleet_host(world, "lk2", "lk2"),
            at_stuck("alias1"),
            at_stuck("alias2"),
            at_stuck("alias3"),
            at_stuck("alias4"),
        ],
    );
    let report_file = world.fleet.dir().join("lock-refused.json");
    std::fs::write(&report_file, "{\"previous\": true}\n").unwrap();
    let refused = run(world, "install", &other, &world.hello, &[])
        .arg("--report")
        .arg(&report_file)
        .run();
    let said = refusal(&refused);
    let expected = format!("error: another swpush run (pid {pid}, since ");
    assert!(
        said.starts_with(&expected)
            && said.contains(" --limit stuck ")
            && said.trim_end().ends_with(
                ") is working on alias1, alias2, alias3 (and 1 more); not starting, so the two cannot overlap (--wait queues behind it)"
            ),
        "{said}"
    );
    assert!(
        untouched(world, "lk2"),
        "no host of the refused run was started"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report_file).unwrap()).unwrap();
    assert!(
        json["refused"]
            .as_str()
            .is_some_and(|why| why.contains("is working on alias1")),
        "{json:#}"
    );

    release(held, connection);
    assert!(run_files_of(world, pid).is_empty(), "gone with its run");
}

#[test]
fn a_wait_with_seconds_gives_up_and_a_wait_goes_once_the_other_run_ends() {
    let world = world();
    let stuck = Stuck::new();
    let fleet = inventory(
        world,
        "wait",
        &[
            fleet_host(world, "lk3", "lk3"),
            ("stuck", "127.0.0.1".to_owned(), stuck.port),
        ],
    );
    // The holder installs lk3 and stays, connecting to the stuck host.
    let (held, connection) = holder(world, &fleet, &stuck, &[]);
    let upgrade = world.hello_at("1.1.0");

    let started = Instant::now();
    let gave_up = run(
        world,
        "upgrade",
        &fleet,
        &upgrade,
        &["--limit", "lk3", "--wait=1"],
    )
    .run();
    let said = refusal(&gave_up);
    assert!(started.elapsed() >= Duration::from_secs(1), "waited");
    assert!(
        said.contains(") is still working on lk3 after waiting 1 s; not starting"),
        "{said}"
    );

    let waiting = run(
        world,
        "upgrade",
        &fleet,
        &upgrade,
        &["--limit", "lk3", "--wait"],
    )
    .spawn();
    let mut waiting = Some(waiting);
    assert!(
        !holds_within(Duration::from_millis(1500), || {
            waiting.as_mut().unwrap().try_wait().unwrap().is_some()
        }),
        "--wait waits while the other run is on lk3"
    );
    release(held, connection);
    let (code, report) = parse_report(&waiting.take().unwrap().wait_with_output().unwrap());
    // It started only after the holder's install of 1.0.0 had finished.
    assert_eq!(
        (code, outcome(&report, "lk3").0.as_str()),
        (0, "upgraded"),
        "{report:#}"
    );
}

#[test]
fn a_run_killed_outright_leaves_no_lock_behind() {
    let world = world();
    let stuck = Stuck::new();
    let fleet = inventory(
        world,
        "killed",
        &[
            fleet_host(world, "lk4", "lk4"),
            ("stuck", "127.0.0.1".to_owned(), stuck.port),
        ],
    );
    let (mut held, connection) = holder(world, &fleet, &stuck, &["--limit", "stuck"]);
    let pid = held.id();
    held.kill().unwrap();
    held.wait().unwrap();
    assert_eq!(
        run_files_of(world, pid).len(),
        1,
        "left behind as it was killed"
    );
    drop((connection, stuck));

    // The same hosts again: the stale file does not stand in the way.
    let ran = run(world, "install", &fleet, &world.hello, &[]).run();
    let (code, report) = ran.code_and_report();
    assert_eq!(code, 2, "the stuck host is gone: {}", ran.stderr());
    assert_eq!(outcome(&report, "lk4").0, "installed", "{report:#}");
    assert_eq!(outcome(&report, "stuck").0, "unreachable", "{report:#}");
    assert!(
        run_files_of(world, pid).is_empty(),
        "the stale file was removed"
    );
}

/// Whether process `pid` catches SIGINT (its handler is set up).
fn catches_sigint(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (libc::SIGINT - 1)) != 0)
}

#[test]
fn ctrl_c_during_a_wait_starts_nothing_and_a_terminal_is_told_what_the_wait_is_for() {
    let world = world();
    let stuck = Stuck::new();
    let fleet = inventory(
        world,
        "interrupted",
        &[
            fleet_host(world, "lk5", "lk5"),
            ("stuck", "127.0.0.1".to_owned(), stuck.port),
        ],
    );
    let (held, connection) = holder(world, &fleet, &stuck, &["--limit", "stuck"]);

    let report_file = world.fleet.dir().join("lock-interrupted.json");
    let mut waiting = run(world, "install", &fleet, &world.hello, &["--wait"])
        .arg("--report")
        .arg(&report_file)
        .spawn();
    let pid = waiting.id();
    wait_until(Duration::from_secs(20), "the wait catches Ctrl-C", || {
        catches_sigint(pid)
    });
    // SAFETY: kill(2) on our own child, which has not been waited for.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGINT) }, 0);
    let started = Instant::now();
    let status = waiting.wait().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopped at once"
    );
    let mut stderr = String::new();
    let mut stdout = String::new();
    use std::io::Read;
    waiting
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    waiting
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("error: interrupted while waiting: another swpush run (pid ")
            && stderr
                .trim_end()
                .ends_with(") is working on stuck; nothing was started"),
        "{stderr}"
    );
    assert!(stdout.is_empty(), "{stdout}");
    assert!(untouched(world, "lk5"));
    assert!(run_files_of(world, pid).is_empty());
    let report = std::fs::read_to_string(&report_file).unwrap();
    assert!(report.contains("interrupted while waiting"), "{report}");

    // On a terminal (script(1) gives it one), a wait says once what it is for.
    let line = format!(
        "{} install -i {} --key {} --connect-retries 0 --wait=1 {}",
        env!("CARGO_BIN_EXE_swpush"),
        fleet.display(),
        world.key.display(),
        world.hello.display()
    );
    let on_tty = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("HOME", world.fleet.home())
        .env("XDG_STATE_HOME", state_home(world))
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let said = text(&on_tty.stdout);
    assert_eq!(
        said.matches("swpush: waiting: another swpush run (")
            .count(),
        1,
        "{said}"
    );
    assert!(
        said.contains(") is working on stuck\r\n")
            && said.contains("is still working on stuck after waiting 1 s"),
        "{said:?}"
    );
    assert!(untouched(world, "lk5"));

    release(held, connection);
}
