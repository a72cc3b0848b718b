//! Non-root logins and sudo on real sshd hosts with a real `sudo`: the
//! command-line overrides (`-u`, `-b`, `--private-key`, `-f`) beating the
//! inventory, a sudo that wants a password failing at once without `-K`,
//! `-K` typed on a real terminal (swpush under `script`'s pty) feeding
//! sudo on the host, a wrong password failing clearly, and the become
//! variables swpush cannot honour refusing the host.

use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::world::*;

const HOSTS: &[&str] = &["ov", "pw", "pw2", "pwzero", "pwbad", "nopw", "asapp"];

/// The sudo password of `deployer` on the password hosts.
const PASSWORD: &str = "Tr0ub4dor-become";

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let world = World::start_trusted(HOSTS);
        // A login user on each host (in its private /etc; home in its /opt).
        for host in HOSTS {
            world.fleet.ssh_ok(
                host,
                &format!(
                    "useradd -M -d /opt/deployer -s /bin/sh deployer && \
                     echo 'deployer:{PASSWORD}' | chpasswd && mkdir -p /etc/sudoers.d"
                ),
            );
        }
        world.fleet.ssh_ok(
            "ov",
            "printf 'Defaults:deployer logfile=/var/log/sudo-deployer.log\\ndeployer ALL=(ALL) NOPASSWD: ALL\\n' > /etc/sudoers.d/deployer && chmod 440 /etc/sudoers.d/deployer",
        );
        world.fleet.ssh_ok(
            "asapp",
            "echo 'deployer ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/deployer && chmod 440 /etc/sudoers.d/deployer && \
             useradd -M -d /opt/app -s /bin/sh app && mkdir -p /opt/app && chown app: /opt/app",
        );
        // sudo that keeps no credentials: -K must feed every sudo itself.
        world.fleet.ssh_ok(
            "pwzero",
            "printf 'Defaults:deployer timestamp_timeout=0\\ndeployer ALL=(ALL) ALL\\n' > /etc/sudoers.d/deployer && chmod 440 /etc/sudoers.d/deployer",
        );
        for host in ["pw", "pw2", "pwbad", "nopw"] {
            world.fleet.ssh_ok(
                host,
                "echo 'deployer ALL=(ALL) ALL' > /etc/sudoers.d/deployer && chmod 440 /etc/sudoers.d/deployer",
            );
        }
        world
    })
}

/// An inventory of `host` as deployer with `become: true`.
fn deployer_inventory(world: &World, hosts: &[&str]) -> PathBuf {
    let mut extra = String::new();
    for host in hosts {
        extra += &format!(
            "  {host}: {{address: {}, user: deployer, become: true}}\n",
            world.fleet.host(host).addr
        );
    }
    world.inventory(&format!("deployer-{}", hosts.join("-")), &[], &extra)
}

fn installed_uid(world: &World, host: &str) -> Option<u32> {
    std::fs::metadata(
        world
            .fleet
            .host(host)
            .path("/opt/swpush/hello/releases/1.0.0/bin/hello"),
    )
    .ok()
    .map(|m| m.uid())
}

#[test]
fn command_line_overrides_beat_the_inventory() {
    let world = world();
    // The inventory says: root, with a key sshd does not accept.
    let extra = format!(
        "  ov: {{address: {}, user: root, identity_file: \"{}\"}}\n",
        world.fleet.host("ov").addr,
        world.key.display()
    );
    let inv = world.inventory("overrides", &[], &extra);
    let (code, report) = world.push("install", &inv, &world.hello, &[]);
    assert_eq!(code, 2, "{report:#}");
    assert_ne!(status_of(&report, "ov").0, "installed", "{report:#}");

    let key = world.fleet.login_key();
    let args = [
        "-u",
        "deployer",
        "-b",
        "--private-key",
        key.to_str().unwrap(),
        "-f",
        "1",
    ];
    // `hosts` connects to nothing: it takes the overrides, not -f.
    let listed = hosts_json(world, &inv, &args[..5]);
    assert_eq!(
        (
            &listed[0]["user"],
            &listed[0]["become"],
            &listed[0]["identity_file"]
        ),
        (
            &Value::from("deployer"),
            &Value::from(true),
            &Value::from(key.to_str().unwrap())
        ),
        "{listed:#}"
    );
    let (code, report) = world.push("install", &inv, &world.hello, &args);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(status_of(&report, "ov").0, "installed", "{report:#}");
    assert_eq!(
        installed_uid(world, "ov"),
        Some(0),
        "installed as root via sudo"
    );
    // The login really was deployer's, and it went through sudo: sudo logged it.
    let log = world.in_host("ov", &["cat", "/var/log/sudo-deployer.log"]);
    assert!(
        log.contains("deployer :") && log.contains("USER=root"),
        "{log}"
    );
}

#[test]
fn a_sudo_that_wants_a_password_fails_at_once_without_k() {
    let world = world();
    let inv = deployer_inventory(world, &["nopw"]);
    let started = Instant::now();
    let (code, report) = world.push("install", &inv, &world.hello, &[]);
    let took = started.elapsed();
    assert_eq!(code, 2, "{report:#}");
    let (status, message) = status_of(&report, "nopw");
    assert_eq!(status, "failed", "{report:#}");
    assert!(
        message.contains("-K/--ask-become-pass") && message.contains("NOPASSWD"),
        "{message}"
    );
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert_eq!(installed_uid(world, "nopw"), None);
}

/// Runs `swpush install ... -K --report FILE` on a real terminal (`script`
/// gives it a pty), types `typed` at the prompt; the JSON report, and all
/// the terminal showed.
fn install_on_a_terminal(world: &World, hosts: &[&str], typed: &str) -> (i32, Report, String) {
    let inv = deployer_inventory(world, hosts);
    let report = world
        .fleet
        .dir()
        .join(format!("report-{}.json", hosts.join("-")));
    let swpush = env!("CARGO_BIN_EXE_swpush");
    let command = format!(
        "'{swpush}' install -K -i '{}' --key '{}' --connect-timeout 5 --timeout 60 -q --report '{}' '{}'",
        inv.display(),
        world.key.display(),
        report.display(),
        world.hello.display()
    );
    let mut child = Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .env("HOME", world.fleet.home())
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run script");
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buffer) {
            if n == 0 || tx.send(buffer[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    // Type only once the prompt is up: turning echo off flushes earlier input.
    let mut screen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !String::from_utf8_lossy(&screen).contains("BECOME password:") {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no prompt: {}", String::from_utf8_lossy(&screen)));
        screen.extend(chunk);
    }
    std::thread::sleep(Duration::from_millis(200));
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(format!("{typed}\r").as_bytes()).unwrap();
    stdin.flush().unwrap();
    let status = child.wait().expect("wait for script");
    drop(stdin);
    while let Ok(chunk) = rx.recv_timeout(Duration::from_secs(2)) {
        screen.extend(chunk);
    }
    let screen = String::from_utf8_lossy(&screen).into_owned();
    let text = std::fs::read_to_string(&report)
        .unwrap_or_else(|e| panic!("no report ({e}); terminal: {screen}"));
    assert!(
        !text.contains(typed),
        "the password is in the report: {text}"
    );
    let report = Report::parse(text.as_bytes());
    (status.code().unwrap_or(-1), report, screen)
}

#[test]
fn k_prompts_on_the_terminal_and_feeds_sudo_without_echo() {
    let world = world();
    // Meanwhile, every process's command line and environment on this
    // machine (the controller's and the host's: the hosts share its pids)
    // is read over and over: the password must be in none of them.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut scans = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                scans += 1;
                for entry in std::fs::read_dir("/proc").unwrap().flatten() {
                    for file in ["cmdline", "environ"] {
                        let bytes = std::fs::read(entry.path().join(file)).unwrap_or_default();
                        if String::from_utf8_lossy(&bytes).contains(PASSWORD) {
                            seen.push(format!("{}/{file}", entry.path().display()));
                        }
                    }
                }
            }
            (scans, seen)
        })
    };
    let (code, report, screen) = install_on_a_terminal(world, &["pw", "pw2", "pwzero"], PASSWORD);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (scans, seen) = watcher.join().unwrap();
    assert!(scans > 1, "the process table was not watched");
    assert!(seen.is_empty(), "the password is visible in {seen:?}");
    assert_eq!(code, 0, "{report:#}\n{screen}");
    // One prompt, and the password reached sudo on every host.
    assert_eq!(screen.matches("BECOME password:").count(), 1, "{screen}");
    for host in ["pw", "pw2", "pwzero"] {
        assert_eq!(status_of(&report, host).0, "installed", "{report:#}");
        assert_eq!(
            installed_uid(world, host),
            Some(0),
            "{host}: installed as root"
        );
    }
    assert!(
        !screen.contains(PASSWORD),
        "the password was echoed: {screen}"
    );
    assert_same_password_nowhere(world, "pw");
    assert_same_password_nowhere(world, "pw2");
    assert_same_password_nowhere(world, "pwzero");
}

#[test]
fn a_wrong_k_password_fails_clearly_and_quickly() {
    let world = world();
    let started = Instant::now();
    let (code, report, screen) = install_on_a_terminal(world, &["pwbad"], "not-the-password");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(code, 2, "{report:#}\n{screen}");
    let (status, message) = status_of(&report, "pwbad");
    assert_eq!(status, "failed", "{report:#}");
    assert!(message.contains("refused the become password"), "{message}");
    assert_eq!(installed_uid(world, "pwbad"), None);
}

/// Nothing the host kept (its logs, its /tmp, swpush's state) holds the password.
fn assert_same_password_nowhere(world: &World, host: &str) {
    let dir = &world.fleet.host(host).dir;
    let found = Command::new("grep")
        .args(["-rlaF", PASSWORD])
        .arg(dir)
        .output()
        .unwrap();
    // grep exits 1 for "searched, no match" (2 would be an error).
    assert_eq!(found.status.code(), Some(1), "{}", text(&found.stderr));
    assert!(
        found.stdout.is_empty(),
        "the password is in {}",
        String::from_utf8_lossy(&found.stdout)
    );
}

fn ansible_inventory(world: &World, tag: &str, yaml: &str) -> PathBuf {
    let path = world.fleet.dir().join(format!("ansible-{tag}.yml"));
    std::fs::write(&path, yaml).unwrap();
    path
}

fn hosts_json(world: &World, inv: &Path, more: &[&str]) -> Value {
    let out = world
        .swpush("hosts")
        .arg("-i")
        .arg(inv)
        .json()
        .args(more)
        .run();
    serde_json::from_str(&out.success()).unwrap()
}

fn refusal(hosts: &Value, name: &str) -> Option<String> {
    let host = hosts
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == name)
        .unwrap_or_else(|| panic!("no {name} in {hosts:#}"));
    host["refused"].as_str().map(str::to_owned)
}

#[test]
fn become_settings_swpush_cannot_honour_refuse_the_host() {
    let world = world();
    let inv = ansible_inventory(
        world,
        "become",
        "all:\n  hosts:\n\
         \x20   su_become: {ansible_become: true, ansible_become_method: su}\n\
         \x20   su_idle: {ansible_become_method: doas}\n\
         \x20   sudo_ok: {ansible_become: true, ansible_become_method: sudo, ansible_become_user: app}\n\
         \x20   secret: {ansible_become: true, ansible_become_password: hunter2-in-a-file}\n\
         \x20   secret2: {ansible_become_pass: hunter2-in-a-file}\n",
    );
    let hosts = hosts_json(world, &inv, &[]);
    let text = hosts.to_string();
    assert!(!text.contains("hunter2"), "a password is shown: {text}");
    let su = refusal(&hosts, "su_become").unwrap_or_default();
    assert!(su.contains("ansible_become_method: su"), "{su}");
    // A method only matters to a host that becomes; -b makes it become.
    assert_eq!(refusal(&hosts, "su_idle"), None);
    let with_b = hosts_json(world, &inv, &["-b"]);
    let doas = refusal(&with_b, "su_idle").unwrap_or_default();
    assert!(doas.contains("ansible_become_method: doas"), "{doas}");
    assert_eq!(refusal(&hosts, "sudo_ok"), None);
    let sudo_ok = hosts
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == "sudo_ok")
        .unwrap();
    assert_eq!(sudo_ok["become_user"], "app");
    for (name, var) in [
        ("secret", "ansible_become_password"),
        ("secret2", "ansible_become_pass"),
    ] {
        let why = refusal(&hosts, name).unwrap_or_default();
        assert!(why.contains(var) && why.contains("-K"), "{name}: {why}");
    }
    // A refused host is never connected to: installing names the setting.
    let (code, report) = world.push("install", &inv, &world.hello, &["--limit", "su_become"]);
    assert_eq!(code, 2, "{report:#}");
    let (status, message) = status_of(&report, "su_become");
    assert_eq!(status, "unreachable", "{report:#}");
    assert!(message.contains("ansible_become_method: su"), "{message}");
}

#[test]
fn overrides_beat_ssh_config_too() {
    let world = world();
    // A Host block only this test's host matches: its ansible_host, the
    // name Ansible gives ssh.
    let ssh_dir = world.fleet.home().join(".ssh");
    std::fs::create_dir_all(&ssh_dir).unwrap();
    std::fs::write(
        ssh_dir.join("config"),
        "Host 192.0.2.7\n  User nobody\n  IdentityFile /nonexistent/cfg_key\n",
    )
    .unwrap();
    let inv = ansible_inventory(
        world,
        "cfg",
        "all:\n  hosts:\n    cfg-only-host: {ansible_host: 192.0.2.7}\n",
    );
    let plain = hosts_json(world, &inv, &[]);
    assert_eq!(
        (&plain[0]["user"], &plain[0]["identity_file"]),
        (&Value::from("nobody"), &Value::from("/nonexistent/cfg_key")),
        "~/.ssh/config is read: {plain:#}"
    );
    let key = world.fleet.login_key();
    let overridden = hosts_json(
        world,
        &inv,
        &["-u", "deployer", "--key-file", key.to_str().unwrap()],
    );
    assert_eq!(
        (&overridden[0]["user"], &overridden[0]["identity_file"]),
        (
            &Value::from("deployer"),
            &Value::from(key.to_str().unwrap())
        ),
        "{overridden:#}"
    );
    // A user ssh would read as an option is refused before anything runs.
    let bad = world
        .swpush("hosts")
        .arg("-i")
        .arg(inv)
        .arg("--user=-oProxyCommand=x")
        .run();
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stderr).contains("not start with `-`"),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn become_user_runs_the_step_as_that_user_with_its_own_paths() {
    let world = world();
    let fleet = &world.fleet;
    std::fs::write(
        fleet.host("asapp").path("/opt/app/known_servers"),
        format!("{}\n", world.trust_line),
    )
    .unwrap();
    world.in_host("asapp", &["chown", "app:", "/opt/app/known_servers"]);
    let extra = format!(
        "  asapp: {{address: {}, user: deployer, become: true, become_user: app, \
         known_servers: /opt/app/known_servers, prefix: /opt/app/pkgs, \
         state_dir: /opt/app/state, cache_dir: /opt/app/cache}}\n",
        fleet.host("asapp").addr
    );
    let inv = world.inventory("asapp", &[], &extra);
    let (code, report) = world.push("install", &inv, &world.hello, &[]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(status_of(&report, "asapp").0, "installed", "{report:#}");
    let app_uid: u32 = world
        .in_host("asapp", &["id", "-u", "app"])
        .trim()
        .parse()
        .unwrap();
    let hello = fleet
        .host("asapp")
        .path("/opt/app/pkgs/hello/releases/1.0.0/bin/hello");
    assert_eq!(
        std::fs::metadata(&hello).unwrap().uid(),
        app_uid,
        "installed as app"
    );
    assert!(!fleet.host("asapp").path("/opt/swpush/hello").exists());
}
