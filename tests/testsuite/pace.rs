//! Paced logins (`src/ssh/pace.rs`) against sshd's `MaxStartups`, which
//! closes new connections while too many are still logging in. Hosts
//! behind one bastion all log in to its sshd: `gate` lets only 2 do so at
//! once (`MaxStartups 2:100:2`, a third dropped at once), far below
//! OpenSSH's default of 10, so even swpush's paced starts are dropped and
//! must adapt. `full` lets one at a time, and the test holds that one.
//! The targets are in a site only the two can be reached from.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::time::Duration;

use crate::support::SSH_PORT;
use crate::support::world::*;

const TARGETS: [&str; 12] = [
    "p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8", "p9", "p10", "p11", "p12",
];

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let mut hosts = vec!["gate", "full"];
        hosts.extend(TARGETS);
        let world = World::start_site(
            &hosts,
            &["gate", "full"],
            &[
                ("gate", "MaxStartups 2:100:2"),
                // Drops are logged at INFO: the proof that they happened.
                ("gate", "LogLevel INFO"),
                ("full", "MaxStartups 1:100:1"),
            ],
        );
        for host in &hosts {
            world.trust_all(host);
        }
        world
    })
}

fn drops_logged(world: &World, host: &str) -> usize {
    let log = world.fleet.host(host).dir.join("sshd.log");
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains("past MaxStartups"))
        .count()
}

/// Twelve hosts behind a bastion that takes two logins at a time, all at
/// once (`--forks 12`) and with no connection retries: every one installs,
/// though the bastion dropped some of the logins (its log says so).
#[test]
fn hosts_behind_a_bastion_that_drops_bursts_all_install() {
    let world = world();
    let gate = world.fleet.host("gate");
    let jump = format!("root@{}:{SSH_PORT}", gate.addr);
    let entries: Vec<(&str, String)> = TARGETS
        .iter()
        .map(|name| {
            let addr = world.fleet.host(name).addr;
            (*name, format!("{addr}, proxy_jump: \"{jump}\""))
        })
        .collect();
    let inventory = world.inventory("behind-gate", &entries, "");
    let (code, report) = world.push(
        "install",
        &inventory,
        &world.hello,
        &["--forks", "12", "--connect-retries", "0"],
    );
    assert_eq!(code, 0, "{report:#}");
    for host in TARGETS {
        let entry = report.host(host);
        assert_eq!(entry.status, "installed", "{entry:#}");
        assert_eq!(
            read_link(world, host, "/opt/swpush/hello/current"),
            "releases/1.0.0"
        );
    }
    assert!(
        drops_logged(world, "gate") > 0,
        "the bastion dropped no login: the test proves nothing"
    );
}

/// A host whose sshd drops every new login (its one startup slot is held)
/// ends `unreachable` after a few quick tries, naming MaxStartups.
#[test]
fn a_host_that_drops_every_login_is_unreachable_naming_max_startups() {
    let world = world();
    let full = world.fleet.host("full");
    // The one connection `full` lets log in at a time, held unauthenticated;
    // its banner read proves sshd counts it.
    let mut held = TcpStream::connect_timeout(
        &SocketAddr::from((full.addr, full.port)),
        Duration::from_secs(5),
    )
    .unwrap();
    held.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut banner = [0; 4];
    held.read_exact(&mut banner).unwrap();
    assert_eq!(&banner, b"SSH-");

    let inventory = world.fleet_inventory("full", &["full"], "");
    let (code, report) = world.push(
        "install",
        &inventory,
        &world.hello,
        &["--connect-retries", "0"],
    );
    drop(held);
    assert_eq!(code, 2, "{report:#}");
    let (status, message) = status_of(&report, "full");
    assert_eq!(status, "unreachable", "{message}");
    assert!(
        message.contains("closed the connection before its SSH banner, 9 times"),
        "{message}"
    );
    assert!(
        message.contains("said \"Exceeded MaxStartups\""),
        "{message}"
    );
    assert_eq!(report.host("full")["attempts"], 1, "{report:#}");
}
