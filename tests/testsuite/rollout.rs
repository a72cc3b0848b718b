//! Rollouts: `--serial` batches in inventory order, each only once the one
//! before it has finished, and `--max-fail` (or, without it, the first
//! host that does not succeed) stopping the rollout: hosts never started
//! end `not-attempted` and are left as they were.

use std::sync::OnceLock;
use std::time::SystemTime;

use crate::support::world::*;

const BATCHED: &[&str] = &["r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9", "r10"];
const CANARY: &[&str] = &["c1", "c2", "c3", "c4"];

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| World::start_trusted(&[BATCHED, CANARY].concat()))
}

/// hello whose post_install fails where /opt/fail exists.
fn failing(world: &World) -> std::path::PathBuf {
    world.variant("fail-post-rollout.tar.gz", |dir| {
        append(
            dir,
            "hooks/post.sh",
            "if [ -e /opt/fail ]; then exit 1; fi\n",
        );
    })
}

/// When `current` was made on `host`: when its install switched.
fn switched_at(world: &World, host: &str) -> SystemTime {
    let current = world.fleet.host(host).path("/opt/swpush/hello/current");
    std::fs::symlink_metadata(&current)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("{host}: {}: {e}", current.display()))
}

/// Left as it was: nothing installed, nothing received.
fn assert_untouched(world: &World, host: &str) {
    let h = world.fleet.host(host);
    assert!(!h.path("/opt/swpush/hello").exists(), "{host}: installed");
    assert!(
        names_in(&h.path("/var/cache/swpush")).is_empty(),
        "{host}: cached"
    );
}

#[test]
fn batches_run_in_order_and_the_rollout_stops_past_max_fail() {
    let world = world();
    let package = failing(world);
    std::fs::write(world.fleet.host("r3").path("/opt/fail"), "").unwrap();
    let inv = world.fleet_inventory("batched", BATCHED, "");
    let more = ["--serial", "2,50%,100%", "--max-fail", "0"];
    let (code, report) = world.push("install", &inv, &package, &more);
    assert_eq!(code, 2, "{report:#}");
    // Batches of 2, 5 and 3: r3, in the second, fails; the second
    // finishes, the third never starts.
    let (first, second, third) = (&BATCHED[..2], &BATCHED[2..7], &BATCHED[7..]);
    for host in first.iter().chain(&second[1..]) {
        assert_eq!(report.host(host).status, "installed", "{report:#}");
    }
    assert_eq!(report.host("r3").status, "failed", "{report:#}");
    for host in third {
        let entry = report.host(host);
        assert_eq!(entry.status, "not-attempted", "{entry}");
        assert!(entry.message.contains("more than --max-fail 0"), "{entry}");
        assert_eq!((entry.attempts, entry.bytes_sent), (0, 0), "{entry}");
        assert_untouched(world, host);
    }
    assert_eq!(report["summary"]["not-attempted"], 3, "{report:#}");
    let last_of_first = first.iter().map(|h| switched_at(world, h)).max().unwrap();
    let first_of_second = second[1..]
        .iter()
        .map(|h| switched_at(world, h))
        .min()
        .unwrap();
    assert!(
        last_of_first < first_of_second,
        "batch 2 began before batch 1 ended"
    );
}

#[test]
fn a_canary_that_fails_stops_the_rollout_without_max_fail() {
    let world = world();
    let package = failing(world);
    std::fs::write(world.fleet.host("c1").path("/opt/fail"), "").unwrap();
    let inv = world.fleet_inventory("canary", CANARY, "");
    let (code, report) = world.push("install", &inv, &package, &["--serial", "1,100%"]);
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(report.host("c1").status, "failed", "{report:#}");
    for host in &CANARY[1..] {
        let entry = report.host(host);
        assert_eq!(entry.status, "not-attempted", "{entry}");
        assert!(entry.message.contains("none may"), "{entry}");
        assert_untouched(world, host);
    }
}
