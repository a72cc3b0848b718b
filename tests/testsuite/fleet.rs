//! The test fleet itself: real sshd hosts, each with a private filesystem,
//! reachable with the controller's key, and gone without a trace afterwards.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use crate::support::swpush::Swpush;
use crate::support::wait_until;
use crate::support::{Fleet, SSH_PORT};

#[test]
fn each_host_sees_only_its_own_files() {
    assert!(
        !Path::new("/etc/swpush").exists(),
        "this machine must not have /etc/swpush"
    );
    let fleet = Fleet::start(2);
    for host in fleet.hosts() {
        let marker = host.path("/opt/marker");
        std::fs::write(&marker, format!("I am {}\n", host.name))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", marker.display()));
    }

    assert_eq!(fleet.ssh_ok("host1", "cat /opt/marker"), "I am host1\n");
    assert_eq!(fleet.ssh_ok("host2", "cat /opt/marker"), "I am host2\n");

    fleet.ssh_ok("host1", "echo written-inside > /etc/swpush/x");
    let seen = std::fs::read_to_string(fleet.host("host1").path("/etc/swpush/x"))
        .expect("host1's /etc/swpush/x should be visible from outside");
    assert_eq!(seen, "written-inside\n");
    assert!(!fleet.host("host2").path("/etc/swpush/x").exists());
    assert!(
        !Path::new("/etc/swpush").exists(),
        "a host wrote to the machine's /etc"
    );
    let on_host2 = fleet.ssh("host2", "test -e /etc/swpush/x");
    assert_eq!(
        on_host2.status.code(),
        Some(1),
        "host2 sees host1's /etc/swpush/x"
    );
}

#[test]
fn dropping_a_fleet_kills_its_sessions_and_removes_its_dir() {
    let fleet = Fleet::start(1);
    let host = fleet.host("host1");
    let listener = host.sshd_pid();
    let inventory = fleet.write_inventory();
    assert!(inventory.starts_with(fleet.dir()));

    // A login that would outlive the test if teardown only stopped the listener.
    let mut client = fleet
        .ssh_command("host1", "sleep 600")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start ssh");
    let mut session = 0;
    wait_until(
        Duration::from_secs(10),
        "a session on host1",
        || match host.session_pids().first() {
            Some(&pid) if descendants(pid).iter().any(|&p| comm(p) == "sleep") => {
                session = pid;
                true
            }
            _ => false,
        },
    );
    let mut doomed = descendants(session);
    doomed.extend([listener, session]);
    let dir = fleet.dir().to_path_buf();

    drop(fleet);

    for pid in doomed {
        assert!(!alive(pid), "pid {pid} ({}) survived the fleet", comm(pid));
    }
    assert!(!dir.exists(), "{} survived the fleet", dir.display());
    let status = client.wait().expect("cannot wait for ssh");
    assert!(
        !status.success(),
        "the ssh client should have lost its connection"
    );
}

#[test]
fn dead_address_refuses_connections() {
    let fleet = Fleet::start(1);
    let dead = SocketAddr::from((fleet.dead_address(), SSH_PORT));
    let live = SocketAddr::from((fleet.host("host1").addr, SSH_PORT));
    assert!(TcpStream::connect_timeout(&live, Duration::from_secs(2)).is_ok());
    let err = TcpStream::connect_timeout(&dead, Duration::from_secs(2))
        .expect_err("something listens on the dead address");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
}

/// A fleet shared by tests and never dropped: its reaper cleans up when the
/// test process exits.
#[test]
fn a_fleet_in_a_static_works() {
    static SHARED: OnceLock<Fleet> = OnceLock::new();
    let fleet = SHARED.get_or_init(|| Fleet::start_named(&["web1", "db1"]));
    // Logins must not run this machine's own ~/.bashrc (slow, and not a server's).
    let rc = fleet.ssh_ok("db1", "test ! -s ~/.bashrc && echo clean");
    assert_eq!(rc, "clean\n");
    assert!(fleet.inventory_yaml().contains("  web1: {address: 127."));
}

fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, after) = stat.rsplit_once(')')?;
    Some(after.split_whitespace().map(String::from).collect())
}

/// Alive and not a zombie.
fn alive(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|f| f[0] != "Z")
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn descendants(root: u32) -> Vec<u32> {
    let all: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .expect("cannot list /proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, stat_fields(pid)?.get(1)?.parse().ok()?)))
        .collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(all.iter().filter(|&&(_, pp)| pp == parent).map(|&(p, _)| p));
        i += 1;
    }
    found.remove(0);
    found
}

/// The inventory a fleet writes is one swpush reads: later tests build on it.
#[test]
fn swpush_reads_the_fleet_inventory() {
    let fleet = Fleet::start(3);
    let output = Swpush::new("hosts")
        .json()
        .args(["--limit", "host1,host3"])
        .inventory(fleet.write_inventory())
        .env("HOME", fleet.home())
        .run();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let hosts: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let listed: Vec<(String, u64)> = hosts
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["address"].as_str().unwrap().to_owned(),
                h["port"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(String, u64)> = ["host1", "host3"]
        .iter()
        .map(|name| (fleet.host(name).addr.to_string(), u64::from(SSH_PORT)))
        .collect();
    assert_eq!(listed, expected);
}
