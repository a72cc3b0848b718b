//! Jump hosts and ProxyCommand end to end: targets in a network namespace
//! of their own (a "site", see `tests/testsuite/support/site.rs`) that this machine
//! cannot connect to, reached only through bastions, real sshd all the way;
//! ProxyCommand through OpenSSH's own `ssh -W`, as operators write it.
//!
//! One site serves every test in this file; each test owns its targets.
//! `bastion` and `outer` are the only hosts reachable from here; `outer`
//! may forward only to `inner` (sshd's PermitOpen), so the hosts behind it
//! need the chain `outer,inner`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use crate::support::world::*;
use crate::support::{SSH_PORT, holds_within};

const HOSTS: &[&str] = &[
    "bastion", "outer", "inner", "t1", "t2", "t3", "deep", "cfg", "newkey", "piped", "pipefail",
    "direct", "stuck",
];
const REACHABLE: &[&str] = &["bastion", "outer"];

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let world = World::start_site(HOSTS, REACHABLE, &[("outer", "PermitOpen {inner}:10022")]);
        for host in HOSTS {
            world.trust_all(host);
        }
        world
    })
}

/// `root@ADDR:10022` of a fleet host, as a hop of a chain.
fn hop(world: &World, host: &str) -> String {
    format!("root@{}:{SSH_PORT}", world.fleet.host(host).addr)
}

/// An inventory of `hosts` at their addresses, each with `settings` (YAML
/// flow-map entries, may be empty).
fn inventory(world: &World, tag: &str, hosts: &[&str], settings: &str) -> PathBuf {
    let entries: Vec<(&str, String)> = hosts
        .iter()
        .map(|name| {
            let addr = world.fleet.host(name).addr.to_string();
            let more = if settings.is_empty() {
                String::new()
            } else {
                format!(", {settings}")
            };
            (*name, format!("{addr}{more}"))
        })
        .collect();
    world.inventory(tag, &entries, "")
}

/// An Ansible YAML inventory of `host` with `ansible_ssh_common_args: ARGS`.
fn ansible_inventory(world: &World, host: &str, args: &str) -> PathBuf {
    let yaml = format!(
        "all:\n  hosts:\n    {host}:\n      ansible_host: {}\n      ansible_port: {SSH_PORT}\n      \
         ansible_user: root\n      ansible_ssh_private_key_file: \"{}\"\n      \
         ansible_ssh_common_args: \"{}\"\n",
        world.fleet.host(host).addr,
        world.fleet.login_key().display(),
        args.replace('\\', "\\\\").replace('"', "\\\"")
    );
    let path = world.fleet.dir().join(format!("ansible-{host}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    path
}

fn install(world: &World, inventory: &Path, more: &[&str]) -> (i32, Report) {
    world.push("install", inventory, &world.hello, more)
}

fn installed(world: &World, host: &str) -> bool {
    read_link(world, host, "/opt/swpush/hello/current") == "releases/1.0.0"
}

/// Writes the controller's ~/.ssh/config (mode 0600, as ssh demands).
fn write_ssh_config(world: &World, text: &str) {
    let path = world.fleet.home().join(".ssh/config");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn the_site_hides_its_hosts_from_this_machine() {
    let world = world();
    assert!(world.fleet.reachable_from_here("bastion"));
    assert!(world.fleet.reachable_from_here("outer"));
    for host in ["inner", "t1", "direct"] {
        assert!(
            !world.fleet.reachable_from_here(host),
            "{host} is reachable without a jump host: the test proves nothing"
        );
    }
    // And swpush, asked to connect directly, cannot.
    let inv = inventory(world, "direct", &["direct"], "");
    let (code, report) = install(world, &inv, &[]);
    assert_eq!(code, 2, "{report:#}");
    let (status, message) = status_of(&report, "direct");
    assert_eq!(status, "unreachable");
    assert!(message.contains("connection refused"), "{message}");
    assert!(report.host("direct").via.is_none());
}

/// The full install on several targets only reachable through the bastion,
/// each naming its jump in the report (JSON and text).
#[test]
fn several_targets_install_through_one_bastion_and_the_report_names_it() {
    let world = world();
    let jump = hop(world, "bastion");
    let targets = ["t1", "t2", "t3"];
    let inv = inventory(
        world,
        "bastion",
        &targets,
        &format!("proxy_jump: \"{jump}\""),
    );
    let (code, report) = install(world, &inv, &[]);
    assert_eq!(code, 0, "{report:#}");
    for host in targets {
        let entry = report.host(host);
        assert_eq!(entry.status, "installed", "{entry:#}");
        assert_eq!(entry["via"], jump.as_str(), "{entry:#}");
        assert!(installed(world, host), "{host}");
    }
    // The text report says it too; a second run changes nothing.
    let out = world
        .swpush("install")
        .inventory(&inv)
        .key(&world.key)
        .args(["--connect-timeout", "5"])
        .arg(&world.hello)
        .run();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    for host in targets {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(&format!("{host} via {jump}")) && l.contains("unchanged")),
            "{stdout}"
        );
    }
}

#[test]
fn a_chain_of_two_jump_hosts_reaches_what_the_first_cannot() {
    let world = world();
    // outer alone may not forward to deep (PermitOpen): the chain is needed.
    let alone = inventory(
        world,
        "outer-alone",
        &["deep"],
        &format!("proxy_jump: \"{}\"", hop(world, "outer")),
    );
    let (code, report) = install(world, &alone, &[]);
    assert_eq!(code, 2, "{report:#}");
    let (status, message) = status_of(&report, "deep");
    assert_eq!(status, "unreachable");
    assert!(
        message.contains("jump host") && message.contains("could not open a connection"),
        "{message}"
    );
    assert!(!installed(world, "deep"));

    let chain = format!("{},{}", hop(world, "outer"), hop(world, "inner"));
    let inv = inventory(
        world,
        "chain",
        &["deep"],
        &format!("proxy_jump: \"{chain}\""),
    );
    let (code, report) = install(world, &inv, &[]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report.host("deep")["via"], chain.as_str());
    assert!(installed(world, "deep"));
}

/// `proxy_jump: gateway`, with `gateway` a Host block of ~/.ssh/config
/// giving its HostName, User and Port, as `ssh -J gateway` reads it.
#[test]
fn a_jump_host_is_resolved_through_ssh_config() {
    let world = world();
    // Other tests write this file too; only this one reads it for a hop.
    static CONFIG: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _config = CONFIG.lock().unwrap_or_else(|e| e.into_inner());
    write_ssh_config(
        world,
        &format!(
            "Host gateway\n  HostName {}\n  User root\n  Port {SSH_PORT}\n",
            world.fleet.host("bastion").addr
        ),
    );
    let inv = inventory(world, "gateway", &["cfg"], "proxy_jump: gateway");
    // `swpush hosts` shows the hop as resolved, without connecting.
    let listed = world.swpush("hosts").arg("-i").arg(&inv).json().run();
    let hosts: Value = serde_json::from_slice(&listed.stdout).expect("hosts JSON");
    let hop = &hosts[0]["proxy"]["jump"][0];
    assert_eq!(
        (&hop["host"], &hop["address"], &hop["port"], &hop["user"]),
        (
            &Value::from("gateway"),
            &Value::from(world.fleet.host("bastion").addr.to_string()),
            &Value::from(SSH_PORT),
            &Value::from("root")
        ),
        "{hosts:#}"
    );
    let table = world.swpush("hosts").args(["-i"]).arg(&inv).run();
    assert!(
        String::from_utf8_lossy(&table.stdout).contains("cfg via gateway "),
        "{}",
        String::from_utf8_lossy(&table.stdout)
    );
    let (code, report) = install(world, &inv, &[]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report.host("cfg")["via"], "gateway");
    assert!(installed(world, "cfg"));

    // The hop logs in with its own IdentityFile, alone (a key no host
    // accepts here), not with the target's.
    let stranger = world.fleet.dir().join("stranger_login_key");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .status()
        .unwrap();
    assert!(made.success());
    write_ssh_config(
        world,
        &format!(
            "Host gateway\n  HostName {}\n  User root\n  Port {SSH_PORT}\n  IdentityFile {}\n",
            world.fleet.host("bastion").addr,
            stranger.display()
        ),
    );
    let (code, report) = install(world, &inv, &[]);
    write_ssh_config(world, "");
    assert_eq!(code, 2, "{report:#}");
    let (status, message) = status_of(&report, "cfg");
    assert_eq!(status, "unreachable");
    assert!(
        message.contains("(jump host 1 \"gateway\" of")
            && message.contains(&format!("tried {}", stranger.display())),
        "{message}"
    );
}

/// A hop's host key is checked like a target's: unknown is refused naming
/// the hop; --accept-new-host-keys records it (in the same file).
#[test]
fn a_jump_host_with_an_unknown_host_key_is_refused_naming_it() {
    let world = world();
    let bastion = world.fleet.host("bastion").addr.to_string();
    let known = world.fleet.dir().join("known_hosts-without-bastion");
    let all = std::fs::read_to_string(world.fleet.known_hosts()).unwrap();
    let without: String = all
        .lines()
        .filter(|l| !l.starts_with(&format!("[{bastion}]")))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(all, without);
    std::fs::write(&known, &without).unwrap();
    let known_arg = known.to_str().unwrap();
    let inv = inventory(
        world,
        "newkey",
        &["newkey"],
        &format!("proxy_jump: \"{}\"", hop(world, "bastion")),
    );
    let (code, report) = install(world, &inv, &["--known-hosts", known_arg]);
    assert_eq!(code, 2, "{report:#}");
    let (status, message) = status_of(&report, "newkey");
    assert_eq!(status, "unreachable");
    assert!(
        message.contains(&format!("host key of {bastion}:{SSH_PORT} (jump host 1 of"))
            && message.contains("is not known"),
        "{message}"
    );
    assert!(!installed(world, "newkey"));

    let (code, report) = install(
        world,
        &inv,
        &["--known-hosts", known_arg, "--accept-new-host-keys"],
    );
    assert_eq!(code, 0, "{report:#}");
    assert!(installed(world, "newkey"));
    let recorded = std::fs::read_to_string(&known).unwrap();
    assert!(recorded.lines().any(|l| l.contains(&bastion)), "{recorded}");
}

/// `ProxyCommand ssh -W %h:%p bastion`, as operators write it, from
/// ~/.ssh/config and from `ansible_ssh_common_args`.
#[test]
fn a_proxy_command_reaches_a_hidden_target() {
    let world = world();
    let fleet = &world.fleet;
    let command = format!(
        "ssh -F /dev/null -o BatchMode=yes -o UserKnownHostsFile={} \
         -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -i {} -p {SSH_PORT} \
         -W %h:%p root@{}",
        fleet.known_hosts().display(),
        fleet.login_key().display(),
        fleet.host("bastion").addr
    );
    let inv = ansible_inventory(world, "piped", &format!("-o 'ProxyCommand={command}'"));
    let (code, report) = install(world, &inv, &[]);
    assert_eq!(code, 0, "{report:#}");
    let expanded = command.replace("%h:%p", &format!("{}:{SSH_PORT}", fleet.host("piped").addr));
    assert_eq!(
        report.host("piped")["via"],
        format!("ProxyCommand {expanded}").as_str()
    );
    assert!(installed(world, "piped"));
}

/// A ProxyCommand that fails: one line naming the command, its exit and
/// the first line it wrote on stderr (escapes made harmless); nothing else.
#[test]
fn a_failing_proxy_command_says_why_in_one_line() {
    let world = world();
    let script = world.fleet.dir().join("proxy-fails.sh");
    std::fs::write(
        &script,
        "printf 'no route to %s\\033[2J\\nsecond line\\n' \"$1\" >&2\nexit 3\n",
    )
    .unwrap();
    let inv = ansible_inventory(
        world,
        "pipefail",
        &format!("-o 'ProxyCommand=sh {} %h'", script.display()),
    );
    let (code, report) = install(world, &inv, &[]);
    assert_eq!(code, 2, "{report:#}");
    let (status, message) = status_of(&report, "pipefail");
    assert_eq!(status, "unreachable");
    let addr = world.fleet.host("pipefail").addr;
    assert!(
        message.contains("ProxyCommand `sh ")
            && message.contains("exited with status 3")
            && message.contains(&format!("it said: no route to {addr}")),
        "{message}"
    );
    assert!(
        !message.contains('\n') && !message.contains('\u{1b}') && !message.contains("second line"),
        "{message:?}"
    );
}

/// A ProxyCommand that never lets SSH through: the connect timeout ends it,
/// and the command is killed, not left running.
#[test]
fn a_proxy_command_that_hangs_times_out_and_is_killed() {
    let world = world();
    let pid_file = world.fleet.dir().join("stuck-proxy.pid");
    let script = world.fleet.dir().join("proxy-hangs.sh");
    std::fs::write(
        &script,
        format!("echo $$ >{}\nexec sleep 600\n", pid_file.display()),
    )
    .unwrap();
    let inv = ansible_inventory(
        world,
        "stuck",
        &format!("-o 'ProxyCommand=sh {}'", script.display()),
    );
    let started = std::time::Instant::now();
    let (code, report) = install(world, &inv, &["--connect-timeout", "2"]);
    assert_eq!(code, 2, "{report:#}");
    assert!(started.elapsed().as_secs() < 30, "{:?}", started.elapsed());
    let (status, message) = status_of(&report, "stuck");
    assert_eq!(status, "unreachable", "{message}");
    assert!(message.contains("timed out after 2s"), "{message}");
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let pid = pid.trim();
    // Killed (SIGKILL, as the connection attempt is dropped) is gone a
    // moment later, not at once: on a loaded machine the process may not
    // have been scheduled to die when swpush exits.
    let alive = || {
        Path::new("/proc").join(pid).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z ")
    };
    let gone = holds_within(Duration::from_secs(5), || !alive());
    assert!(gone, "the ProxyCommand (pid {pid}) still runs");
}
