//! `-v`: after the text report, the time each host spent in each phase and,
//! under a host whose SSH connection failed, what the SSH layer knew of it;
//! the JSON report always has the phases, and the SSH detail when there
//! is one; without `-v` the text report has neither.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::support::world::*;

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| World::start_trusted(&["v1"]))
}

/// v1 of the fleet, and `dead`, an address nothing listens on.
fn inventory(world: &World) -> PathBuf {
    world.inventory(
        "verbose",
        &[
            ("v1", world.fleet.host("v1").addr.to_string()),
            ("dead", world.fleet.dead_address().to_string()),
        ],
        "",
    )
}

/// `swpush install` of hello on `inventory`, tried once per host, with `more`.
fn install(world: &World, inventory: &Path, more: &[&str]) -> Swpush {
    world
        .swpush("install")
        .inventory(inventory)
        .key(&world.key)
        .args(["--connect-timeout", "5", "--connect-retries", "0"])
        .args(more)
        .arg(&world.hello)
}

/// The lines of `stdout` after `Phases (-v):`.
fn verbose_lines(stdout: &str) -> Vec<&str> {
    let (_, block) = stdout
        .split_once("\nPhases (-v):\n")
        .unwrap_or_else(|| panic!("no -v block: {stdout}"));
    block.lines().collect()
}

#[test]
fn verbose_shows_phase_timings_and_the_ssh_view_of_a_failure() {
    let world = world();
    let inventory = inventory(world);
    let ran = install(world, &inventory, &["-v"]).run();
    let stdout = ran.stdout();
    assert_eq!(ran.code(), 2, "{stdout}");
    let lines = verbose_lines(&stdout);
    // v1 went through every phase of a fresh install, in order.
    let v1 = lines.iter().find(|l| l.starts_with("  v1: ")).unwrap();
    let phases: Vec<&str> = v1["  v1: ".len()..]
        .split(", ")
        .map(|p| {
            let (phase, time) = p.rsplit_once(' ').unwrap().0.rsplit_once(' ').unwrap();
            assert!(time.parse::<f64>().is_ok(), "{v1}");
            phase
        })
        .collect();
    assert_eq!(
        phases,
        [
            "connecting",
            "verifying",
            "uploading",
            "installing",
            "confirming"
        ],
        "{stdout}"
    );
    let at = lines
        .iter()
        .position(|l| l.starts_with("  dead: "))
        .unwrap();
    assert!(lines[at].starts_with("  dead: connecting "), "{stdout}");
    let target = format!("{}:", world.fleet.dead_address());
    assert!(
        lines[at + 1].starts_with(&format!("    ssh: Connect {{ target: \"{target}")),
        "{stdout}"
    );
    assert!(
        lines[at + 1].ends_with("the host did not answer"),
        "{stdout}"
    );
    // The address connected to and the system's own words for what failed.
    assert!(
        lines[at + 1].contains(&format!("tried: [\"{target}")),
        "{stdout}"
    );
    assert!(lines[at + 1].contains("(os error "), "{stdout}");

    // The JSON always has the phases, and the detail where there is one.
    let (code, report) = install(world, &inventory, &[])
        .json()
        .run()
        .code_and_report();
    assert_eq!(code, 2, "{report:#}");
    let v1 = report.host("v1");
    assert_eq!(v1.status, "unchanged", "{v1}");
    assert_eq!(v1.phases[0].0, "connecting", "{v1}");
    assert!(v1.phases.iter().all(|(_, s)| *s >= 0.0), "{v1}");
    assert_eq!(v1.detail, None, "{v1}");
    let dead = report.host("dead");
    assert_eq!(dead.phases.len(), 1, "{dead}");
    let detail = dead.detail.as_deref().unwrap_or_default();
    assert!(detail.starts_with("ssh: Connect {"), "{dead}");

    // Without -v, the text report has neither.
    let ran = install(world, &inventory, &[]).run();
    let stdout = ran.stdout();
    assert!(!stdout.contains("Phases"), "{stdout}");
    assert!(!stdout.contains("ssh: "), "{stdout}");
    assert!(!stdout.contains("connecting "), "{stdout}");
}
