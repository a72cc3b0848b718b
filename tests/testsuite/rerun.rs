//! Re-running what did not make it: `--limit @failed` acts on exactly the
//! hosts that did not succeed (failed, or never attempted) in the newest
//! run of the same command and package, read from its run record; a text
//! report with such hosts ends with the command line that does it, which
//! runs as printed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::support::world::*;

/// Batches of 3 with `--max-fail 1`: f2 fails in the first, f4 in the
/// second, which stops the rollout before f7.
const FLEET: &[&str] = &["f1", "f2", "f3", "f4", "f5", "f6", "f7"];
const ROLLOUT: [&str; 4] = ["--serial", "3", "--max-fail", "1"];

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| World::start_trusted(FLEET))
}

/// hello whose post_install fails where /opt/fail exists.
fn failing(world: &World) -> PathBuf {
    world.variant("fail-post-rerun.tar.gz", |dir| {
        append(
            dir,
            "hooks/post.sh",
            "if [ -e /opt/fail ]; then exit 1; fi\n",
        );
    })
}

fn set_failing(host: &str, failing: bool) {
    let marker = world().fleet.host(host).path("/opt/fail");
    if failing {
        std::fs::write(marker, "").unwrap();
    } else {
        std::fs::remove_file(marker).unwrap();
    }
}

/// A controller state home of the test's own (where run records are
/// kept), so that tests sharing the fleet do not read each other's runs.
fn state_home(tag: &str) -> PathBuf {
    let dir = world().fleet.dir().join(format!("state-{tag}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `COMMAND_LINE`, as the operator pastes it into a shell.
fn in_shell(line: &str, state: &Path) -> Ran {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(line)
        .env("HOME", world().fleet.home())
        .env("XDG_STATE_HOME", state)
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("SWPUSH_INVENTORY")
        .env_remove("SWPUSH_KEY");
    Ran(command.output().expect("run sh"))
}

/// The text report's last line: the command line it offers, or panics.
fn rerun_line(ran: &Ran) -> String {
    let stdout = ran.stdout();
    let last = stdout.lines().last().unwrap_or_default();
    last.strip_prefix("Re-run them: ")
        .unwrap_or_else(|| panic!("no re-run line at the end:\n{stdout}"))
        .to_owned()
}

fn hosts_of(report: &Report) -> Vec<(&str, &str)> {
    report
        .hosts
        .iter()
        .map(|h| (h.host.as_str(), h.status.as_str()))
        .collect()
}

fn report_file(path: &Path) -> Report {
    let text = std::fs::read_to_string(path).unwrap();
    Report::from_json(serde_json::from_str(&text).unwrap())
}

#[test]
fn limit_failed_reruns_exactly_the_hosts_that_did_not_succeed() {
    let world = world();
    let package = failing(world);
    let state = state_home("exactly");
    let inv = world.fleet_inventory("rerun", FLEET, "");
    let report = world.fleet.dir().join("rerun-report.json");
    set_failing("f2", true);
    set_failing("f4", true);
    let args: Vec<String> = [
        "--inventory",
        inv.to_str().unwrap(),
        "--key",
        world.key.to_str().unwrap(),
        "--connect-timeout",
        "5",
    ]
    .into_iter()
    .chain(ROLLOUT)
    .chain(["-l", "f*", "--report", report.to_str().unwrap()])
    .chain([package.to_str().unwrap()])
    .map(String::from)
    .collect();
    let first = world
        .swpush("install")
        .env("XDG_STATE_HOME", &state)
        .args(&args)
        .run();
    assert_eq!(first.code(), 2, "{}{}", first.stdout(), first.stderr());
    let ran = report_file(&report);
    assert_eq!(
        hosts_of(&ran),
        [
            ("f1", "installed"),
            ("f2", "failed"),
            ("f3", "installed"),
            ("f4", "failed"),
            ("f5", "installed"),
            ("f6", "installed"),
            ("f7", "not-attempted"),
        ],
        "{ran:#}"
    );
    // The exact command, its `-l 'f*'` replaced where it was.
    let line = rerun_line(&first);
    let at = args.iter().position(|a| a == "-l").unwrap();
    let expected: Vec<String> = [env!("CARGO_BIN_EXE_swpush"), "install"]
        .into_iter()
        .chain(args[..at].iter().map(String::as_str))
        .chain(["--limit", "@failed"])
        .chain(args[at + 2..].iter().map(String::as_str))
        .map(String::from)
        .collect();
    assert_eq!(line, expected.join(" "));

    // f2 is mended, f4 is not: pasted as printed, the line acts on f2, f4
    // and f7 only, and offers itself again for f4.
    set_failing("f2", false);
    let second = in_shell(&line, &state);
    assert_eq!(second.code(), 2, "{}{}", second.stdout(), second.stderr());
    let ran = report_file(&report);
    assert_eq!(
        hosts_of(&ran),
        [("f2", "installed"), ("f4", "failed"), ("f7", "installed")],
        "{ran:#}"
    );
    assert_eq!(rerun_line(&second), line);

    // The newest run is this one: only f4 is left, and once it made it,
    // the report offers nothing to re-run.
    set_failing("f4", false);
    let third = in_shell(&line, &state);
    assert_eq!(third.code(), 0, "{}{}", third.stdout(), third.stderr());
    assert!(!third.stdout().contains("Re-run"), "{}", third.stdout());
    let ran = report_file(&report);
    assert_eq!(hosts_of(&ran), [("f4", "installed")], "{ran:#}");

    // Nothing is left to re-run: said on one line, before any connection.
    let fourth = in_shell(&line, &state);
    assert_eq!(fourth.code(), 1, "{}", fourth.stdout());
    assert_eq!(
        fourth.stderr(),
        format!(
            "error: --limit: `@failed`: every host succeeded in the last `install hello` of {}: nothing to re-run\n",
            ran["started"].as_str().unwrap()
        )
    );
}

/// With no run of the command and package to re-run, or a command that
/// keeps no run records, `@failed` is one error line naming what was
/// looked for, and nothing is connected to.
#[test]
fn limit_failed_without_a_run_to_rerun_is_refused() {
    let world = world();
    let state = state_home("none");
    let inv = world.fleet_inventory("rerun-none", FLEET, "");
    let runs = state.join("swpush/runs");
    let cases = [
        (
            vec!["upgrade", "--key", world.key.to_str().unwrap()],
            Some(world.hello.to_str().unwrap()),
            format!(
                "error: --limit: `@failed`: no run of `upgrade hello` is recorded under {}\n",
                runs.display()
            ),
        ),
        (
            vec!["remove", "--key", world.key.to_str().unwrap(), "hello"],
            None,
            format!(
                "error: --limit: `@failed`: no run of `remove hello` is recorded under {}\n",
                runs.display()
            ),
        ),
        (
            vec!["status"],
            None,
            "error: --limit: `@failed`: only install, upgrade, rollback, remove and enroll keep run records to re-run\n".to_owned(),
        ),
    ];
    for (args, package, expected) in cases {
        let ran = world
            .swpush(args[0])
            .env("XDG_STATE_HOME", &state)
            .inventory(&inv)
            .args(&args[1..])
            .args(["--limit", "@failed:&f1"])
            .args(package)
            .run();
        assert_eq!((ran.code(), ran.stderr()), (1, expected), "{args:?}");
        assert_eq!(ran.stdout(), "", "{args:?}");
    }
}
