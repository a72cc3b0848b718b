//! ssh-agent end to end: `swpush install` with no identity file anywhere
//! (an inventory without `identity_file`, a HOME without `~/.ssh/id_*`)
//! logs in to every host through one real `ssh-agent`, in parallel; an
//! agent that will not sign (a key added with `ssh-add -c` and no askpass
//! to confirm it) or holds nothing (locked with `ssh-add -x`) fails the
//! hosts with a message naming the agent.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::support::SSH_PORT;
use crate::support::keys::Agent;
use crate::support::world::*;

const HOSTS: &[&str] = &[
    "ag1", "ag2", "ag3", "ag4", "ag5", "ag6", "ag7", "ag8", "ag9", "ag10",
];

/// What agent.rs asks of an agent beyond holding keys.
impl Agent {
    /// `ssh-add ARGS` against this agent, with no askpass and no terminal.
    fn ssh_add(&self, args: &[&str], key: Option<&Path>, stdin: &str) {
        let mut command = Command::new("ssh-add");
        command
            .args(args)
            .args(key)
            .env("SSH_AUTH_SOCK", &self.socket)
            .env_remove("SSH_ASKPASS")
            .env_remove("DISPLAY")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("ssh-add");
        if let Some(mut input) = child.stdin.take() {
            use std::io::Write;
            let _ = input.write_all(stdin.as_bytes());
        }
        let out = child.wait_with_output().expect("ssh-add");
        assert!(
            out.status.success(),
            "ssh-add {args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
}

/// An inventory of `hosts` logging in as root with no `identity_file`.
fn agent_inventory(world: &World, tag: &str, hosts: &[&str]) -> PathBuf {
    let mut yaml = format!("defaults:\n  user: root\n  port: {SSH_PORT}\nhosts:\n");
    for name in hosts {
        yaml += &format!("  {name}: {{address: {}}}\n", world.fleet.host(name).addr);
    }
    let path = world.fleet.dir().join(format!("agent-{tag}.yaml"));
    std::fs::write(&path, yaml).expect("write inventory");
    path
}

/// `swpush install` of hello on `hosts` with `HOME` empty of keys and
/// `SSH_AUTH_SOCK` set to `agent`; the exit code and JSON report.
fn install_through(world: &World, agent: &Agent, tag: &str, hosts: &[&str]) -> (i32, Report) {
    let inventory = agent_inventory(world, tag, hosts);
    let home = world.fleet.dir().join(format!("home-{tag}"));
    std::fs::create_dir_all(home.join(".ssh")).expect("empty HOME");
    let known = world.fleet.known_hosts();
    let more = ["--known-hosts", known.to_str().unwrap(), "--forks", "20"];
    world
        .push_run("install", &inventory, &world.hello, &more)
        .env("HOME", &home)
        .env("SSH_AUTH_SOCK", &agent.socket)
        .run()
        .code_and_report()
}

#[test]
fn install_logs_in_through_one_agent_to_many_hosts_in_parallel_and_explains_a_refusing_agent() {
    let world = World::start_trusted(HOSTS);
    let dir = world.fleet.dir().join("agents");

    let agent = Agent::start(&dir.join("good"));
    agent.ssh_add(&["-q"], Some(&world.fleet.login_key()), "");
    let (code, report) = install_through(&world, &agent, "good", HOSTS);
    for host in HOSTS {
        let (status, message) = status_of(&report, host);
        assert_eq!(status, "installed", "{host}: {message}\n{report:#}");
        assert_hello_runs(&world, host, "1.0.0");
    }
    assert_eq!(code, 0, "{report:#}");

    // A key that needs confirmation, and no askpass to confirm it with:
    // the agent refuses every signature.
    let confirm = Agent::start(&dir.join("confirm"));
    confirm.ssh_add(&["-q", "-c"], Some(&world.fleet.login_key()), "");
    let (code, report) = install_through(&world, &confirm, "confirm", &HOSTS[..2]);
    assert_ne!(code, 0, "{report:#}");
    for host in &HOSTS[..2] {
        let (status, message) = status_of(&report, host);
        assert_eq!(status, "unreachable", "{host}: {message}");
        assert!(
            message.contains("ssh-agent refused to sign"),
            "{host}: {message}"
        );
    }

    // A locked agent lists no keys.
    let locked = Agent::start(&dir.join("locked"));
    locked.ssh_add(&["-q"], Some(&world.fleet.login_key()), "");
    locked.ssh_add(&["-x"], None, "lockword\nlockword\n");
    let (code, report) = install_through(&world, &locked, "locked", &HOSTS[..1]);
    assert_ne!(code, 0, "{report:#}");
    let (status, message) = status_of(&report, HOSTS[0]);
    assert_eq!(status, "unreachable", "{message}");
    assert!(
        message.contains("ssh-agent (no keys; if it is locked, ssh-add -X unlocks it)"),
        "{message}"
    );
}

/// 100 hosts (or `SWPUSH_AGENT_HOSTS`) through one agent: every host must
/// install; prints the wall time of the install, of a re-run (login and
/// state check only) through the agent, and of the same re-run with the key
/// file instead. Run by `bench/agent.sh`; results in docs/benchmarks.md.
#[test]
#[ignore = "a measurement, run by bench/agent.sh"]
fn agent_throughput() {
    let count: usize = std::env::var("SWPUSH_AGENT_HOSTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100);
    let names: Vec<String> = (1..=count).map(|i| format!("b{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let world = World::start_trusted(&names);
    let agent = Agent::start(&world.fleet.dir().join("bench-agent"));
    agent.ssh_add(&["-q"], Some(&world.fleet.login_key()), "");
    let forks = count.to_string();
    let timed = |what: &str, run: Swpush| {
        let started = Instant::now();
        let (code, report) = run.run().code_and_report();
        let seconds = started.elapsed().as_secs_f64();
        for host in &names {
            let (status, message) = status_of(&report, host);
            assert!(
                status == "installed" || status == "unchanged",
                "{what}: {host}: {status}: {message}"
            );
        }
        assert_eq!(code, 0, "{what}: {report:#}");
        println!("{count} hosts, {what}: {seconds:.2} s");
    };
    let through_agent = |tag: &str| {
        let inventory = agent_inventory(&world, tag, &names);
        let home = world.fleet.dir().join(format!("home-{tag}"));
        std::fs::create_dir_all(home.join(".ssh")).expect("empty HOME");
        let known = world.fleet.known_hosts();
        let more = [
            "--known-hosts",
            known.to_str().unwrap(),
            "--forks",
            &forks,
            "--connect-timeout",
            "60",
        ];
        world
            .push_run("install", &inventory, &world.hello, &more)
            .env("HOME", &home)
            .env("SSH_AUTH_SOCK", &agent.socket)
    };
    timed("install through one ssh-agent", through_agent("bench1"));
    timed("re-run through one ssh-agent", through_agent("bench2"));
    let inventory = world.fleet_inventory("bench-key", &names, "");
    let more = ["--forks", forks.as_str(), "--connect-timeout", "60"];
    timed(
        "re-run with identity_file (no agent)",
        world.push_run("install", &inventory, &world.hello, &more),
    );
}
