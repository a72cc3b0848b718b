//! What a host's ssh settings (`Host.ssh`, what `ssh -G` resolves) change
//! in the connection, against real sshd hosts, with the real `ssh` client
//! as the oracle: the same host with the same settings, both connect or
//! neither does, and both record the same in `known_hosts`.
//!
//! Host keys: `UserKnownHostsFile`s (all read, the first written),
//! `GlobalKnownHostsFile`s (read, never written), `--known-hosts` replacing
//! the user's files, `HostKeyAlias`, each `StrictHostKeyChecking` mode and
//! `--accept-new-host-keys` beating it. `ConnectTimeout` against a socket
//! that never speaks.
//!
//! One fleet serves the file: `keys` is only ever handshaken with, `login`
//! is logged in to.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use swpush::inventory::{Host, IdentityAgent, StrictHostKeyChecking};
use swpush::ssh::{ConnectOptions, Connection, SshError};

use crate::support::keys::{Agent, certify_user, new_key, run};
use crate::support::wait_until;
use crate::support::{Fleet, SSH_PORT};

fn fleet() -> &'static Fleet {
    static FLEET: OnceLock<Fleet> = OnceLock::new();
    FLEET.get_or_init(|| Fleet::start_named(&["keys", "login"]))
}

/// A fresh directory for one test, removed with the fleet.
fn scratch(test: &str) -> PathBuf {
    let dir = fleet().dir().join("ssh-options").join(test);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    dir
}

/// `name` as root with the fleet's key, reading only the known_hosts files
/// given (never the machine's).
fn host(name: &str, user_files: &[PathBuf], global_files: &[PathBuf]) -> Host {
    let h = fleet().host(name);
    let mut host = Host::plain(name, &h.addr.to_string(), SSH_PORT, "root");
    host.identity_file = Some(fleet().login_key());
    host.ssh.user_known_hosts = user_files.to_vec();
    host.ssh.global_known_hosts = global_files.to_vec();
    // No agent unless a test gives one: the environment's is not ours.
    host.ssh.identity_agent = IdentityAgent::None;
    host
}

fn options() -> ConnectOptions {
    ConnectOptions {
        known_hosts: None,
        accept_new_host_keys: false,
        connect_timeout: Duration::from_secs(10),
        home: Some(fleet().home().to_owned()),
        connect_timeout_given: false,
    }
}

fn files_option(keyword: &str, files: &[PathBuf]) -> String {
    let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let files = if files.is_empty() {
        "none".to_owned()
    } else {
        files.join(" ")
    };
    format!("{keyword}={files}")
}

/// The real ssh client with the same settings as `host`: does it log in?
fn openssh_connects(host: &Host, extra: &[String]) -> (bool, String) {
    let mode = match host.ssh.strict_host_key_checking {
        StrictHostKeyChecking::Ask => "ask",
        StrictHostKeyChecking::Yes => "yes",
        StrictHostKeyChecking::AcceptNew => "accept-new",
        StrictHostKeyChecking::No => "no",
    };
    let mut ssh = Command::new("ssh");
    // The first value of an option wins: `extra` stands for the command
    // line, the host's settings for its ssh_config.
    ssh.args(["-F", "/dev/null"]);
    for option in extra {
        ssh.arg("-o").arg(option);
    }
    ssh.args(["-o", "BatchMode=yes", "-o"])
        .arg(files_option(
            "UserKnownHostsFile",
            &host.ssh.user_known_hosts,
        ))
        .arg("-o")
        .arg(files_option(
            "GlobalKnownHostsFile",
            &host.ssh.global_known_hosts,
        ))
        .arg("-o")
        .arg(format!("StrictHostKeyChecking={mode}"))
        .args(["-o", "ConnectTimeout=10", "-o"])
        .arg(format!(
            "IdentitiesOnly={}",
            if host.ssh.identities_only {
                "yes"
            } else {
                "no"
            }
        ))
        .arg("-o")
        .arg(match &host.ssh.identity_agent {
            IdentityAgent::None => "IdentityAgent=none".to_owned(),
            IdentityAgent::Environment => "IdentityAgent=SSH_AUTH_SOCK".to_owned(),
            IdentityAgent::Socket(path) => format!("IdentityAgent={}", path.display()),
        });
    if let Some(alias) = &host.ssh.host_key_alias {
        ssh.arg("-o").arg(format!("HostKeyAlias={alias}"));
    }
    for identity in host
        .identity_file
        .iter()
        .chain(&host.ssh.further_identity_files)
    {
        ssh.arg("-i").arg(identity);
    }
    for cert in &host.ssh.certificate_files {
        ssh.arg("-o")
            .arg(format!("CertificateFile={}", cert.display()));
    }
    let out = ssh
        .args(["-p", &host.port.to_string()])
        .arg(format!("{}@{}", host.user, host.address))
        .arg("true")
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::null())
        .output()
        .expect("run ssh");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    )
}

async fn swpush_connects(host: &Host, options: &ConnectOptions) -> Result<(), SshError> {
    let connection = Connection::connect(host, options).await?;
    let mut process = connection.exec("true").await?;
    while process.next_event().await.is_some() {}
    connection.close().await;
    Ok(())
}

fn read_or_empty(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// Each `StrictHostKeyChecking` mode with a host no file lists, then with
/// a host whose recorded key changed: swpush connects and records exactly
/// when `ssh -o BatchMode=yes -o StrictHostKeyChecking=MODE` does, except
/// that a changed key is refused in every mode (ssh with `no` goes on
/// without passwords; swpush fails closed and says so).
#[tokio::test]
async fn strict_host_key_checking_modes_decide_as_openssh() {
    let dir = scratch("strict");
    let addr = fleet().host("keys").addr;
    let changed = format!(
        "[{addr}]:{SSH_PORT} {}\n",
        fleet().host("login").public_key()
    );
    let modes = [
        StrictHostKeyChecking::Ask,
        StrictHostKeyChecking::Yes,
        StrictHostKeyChecking::AcceptNew,
        StrictHostKeyChecking::No,
    ];
    let mut failures = Vec::new();
    for mode in modes {
        for (case, start) in [("unknown", String::new()), ("changed", changed.clone())] {
            let theirs = dir.join(format!("{mode:?}-{case}-ssh"));
            let ours = dir.join(format!("{mode:?}-{case}-swpush"));
            fs::write(&theirs, &start).expect("write");
            fs::write(&ours, &start).expect("write");
            let mut oracle = host("keys", std::slice::from_ref(&theirs), &[]);
            oracle.ssh.strict_host_key_checking = mode;
            let (ssh_ok, ssh_says) = openssh_connects(&oracle, &[]);
            let mut ours_host = host("keys", std::slice::from_ref(&ours), &[]);
            ours_host.ssh.strict_host_key_checking = mode;
            let result = swpush_connects(&ours_host, &options()).await;
            let expected = if case == "changed" { false } else { ssh_ok };
            if result.is_ok() != expected {
                failures.push(format!(
                    "{mode:?} {case}: ssh connects {ssh_ok} ({ssh_says}), swpush {result:?}"
                ));
            }
            let recorded = (read_or_empty(&theirs), read_or_empty(&ours));
            if case == "unknown" && recorded.0 != recorded.1 {
                failures.push(format!(
                    "{mode:?} {case}: ssh recorded {:?}, swpush {:?}",
                    recorded.0, recorded.1
                ));
            }
            if case == "changed" {
                if recorded.1 != start {
                    failures.push(format!("{mode:?}: a changed key rewrote known_hosts"));
                }
                match &result {
                    Err(e @ SshError::HostKeyChanged { .. })
                        if e.to_string().contains("StrictHostKeyChecking") => {}
                    other => failures.push(format!(
                        "{mode:?} changed: want HostKeyChanged naming the setting, got {other:?}"
                    )),
                }
                if mode == StrictHostKeyChecking::No && !ssh_ok {
                    failures.push(format!(
                        "ssh with StrictHostKeyChecking=no was expected to go on ({ssh_says})"
                    ));
                }
            }
            if let Err(e @ SshError::HostKeyUnknown { setting, .. }) = &result
                && !e.to_string().contains(setting.as_str())
            {
                failures.push(format!(
                    "{mode:?}: the refusal does not name {setting}: {e}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `--accept-new-host-keys` beats `StrictHostKeyChecking yes`, as `ssh -o
/// StrictHostKeyChecking=accept-new` beats the file.
#[tokio::test]
async fn accept_new_host_keys_beats_the_files_strict_checking() {
    let dir = scratch("accept-beats");
    let theirs = dir.join("ssh");
    let ours = dir.join("swpush");
    let mut oracle = host("keys", std::slice::from_ref(&theirs), &[]);
    oracle.ssh.strict_host_key_checking = StrictHostKeyChecking::Yes;
    let (ssh_ok, ssh_says) =
        openssh_connects(&oracle, &["StrictHostKeyChecking=accept-new".to_owned()]);
    assert!(
        ssh_ok,
        "ssh -o StrictHostKeyChecking=accept-new: {ssh_says}"
    );
    let mut ours_host = host("keys", std::slice::from_ref(&ours), &[]);
    ours_host.ssh.strict_host_key_checking = StrictHostKeyChecking::Yes;
    let err = swpush_connects(&ours_host, &options())
        .await
        .expect_err("StrictHostKeyChecking yes refuses an unknown key");
    assert!(
        err.to_string().contains("StrictHostKeyChecking yes"),
        "{err}"
    );
    let mut accept = options();
    accept.accept_new_host_keys = true;
    swpush_connects(&ours_host, &accept)
        .await
        .unwrap_or_else(|e| panic!("--accept-new-host-keys: {e}"));
    assert_eq!(read_or_empty(&ours), read_or_empty(&theirs));
}

/// Every UserKnownHostsFile and GlobalKnownHostsFile is read; a new key is
/// recorded in the first user file only; `--known-hosts` replaces the
/// user's files (as `-o UserKnownHostsFile=`), not the machine's.
#[tokio::test]
async fn every_known_hosts_file_is_read_and_the_first_user_file_written() {
    let dir = scratch("files");
    let addr = fleet().host("keys").addr;
    let line = format!(
        "[{addr}]:{SSH_PORT} {}\n",
        fleet().host("keys").public_key()
    );
    let (first, second, global) = (dir.join("first"), dir.join("second"), dir.join("global"));
    let mut failures = Vec::new();
    // (case, lines in first, second, global) -> connects as ssh does.
    for (case, where_) in [
        ("second user file", [false, true, false]),
        ("global file", [false, false, true]),
        ("nowhere", [false, false, false]),
    ] {
        for (path, has) in [&first, &second, &global].into_iter().zip(where_) {
            fs::write(path, if has { line.as_str() } else { "" }).expect("write");
        }
        let host = host(
            "keys",
            &[first.clone(), second.clone()],
            std::slice::from_ref(&global),
        );
        let (ssh_ok, ssh_says) = openssh_connects(&host, &[]);
        let ours = swpush_connects(&host, &options()).await;
        if ours.is_ok() != ssh_ok {
            failures.push(format!(
                "{case}: ssh {ssh_ok} ({ssh_says}), swpush {ours:?}"
            ));
        }
        if case == "nowhere" {
            match &ours {
                Err(SshError::HostKeyUnknown { known_hosts, .. }) if *known_hosts == first => {}
                other => failures.push(format!(
                    "nowhere: want HostKeyUnknown naming {}, got {other:?}",
                    first.display()
                )),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Recording: into the first user file, whatever the others hold.
    fs::write(&first, "").expect("write");
    let mut host = host(
        "keys",
        &[first.clone(), second.clone()],
        std::slice::from_ref(&global),
    );
    host.ssh.strict_host_key_checking = StrictHostKeyChecking::AcceptNew;
    swpush_connects(&host, &options())
        .await
        .unwrap_or_else(|e| panic!("accept-new: {e}"));
    assert_eq!(read_or_empty(&first), line);
    assert_eq!(read_or_empty(&second), "");
    assert_eq!(read_or_empty(&global), "");

    // --known-hosts replaces the user's files: the key in `first` no longer counts.
    let elsewhere = dir.join("elsewhere");
    host.ssh.strict_host_key_checking = StrictHostKeyChecking::Yes;
    let mut given = options();
    given.known_hosts = Some(elsewhere.clone());
    let err = swpush_connects(&host, &given)
        .await
        .expect_err("--known-hosts replaces UserKnownHostsFile");
    let message = err.to_string();
    assert!(
        message.contains(&elsewhere.display().to_string()),
        "{message}"
    );
    // ... while the machine's files still count.
    fs::write(&global, &line).expect("write");
    swpush_connects(&host, &given)
        .await
        .unwrap_or_else(|e| panic!("global file with --known-hosts: {e}"));
    assert!(!elsewhere.exists(), "nothing recorded with yes");
}

/// `HostKeyAlias`: known_hosts is searched and written for the alias, not
/// `[address]:port`, as ssh does (both record the same line).
#[tokio::test]
async fn host_key_alias_is_the_name_looked_up_and_recorded() {
    let dir = scratch("alias");
    let addr = fleet().host("keys").addr;
    let key = fleet().host("keys").public_key();
    let mut failures = Vec::new();
    for (case, text) in [
        ("alias listed", format!("keys.example {key}\n")),
        ("alias by pattern", format!("*.example {key}\n")),
        ("only the address", format!("[{addr}]:{SSH_PORT} {key}\n")),
        (
            "alias with another key",
            format!("keys.example {}\n", fleet().host("login").public_key()),
        ),
    ] {
        let path = dir.join("known_hosts");
        fs::write(&path, &text).expect("write");
        let mut host = host("keys", std::slice::from_ref(&path), &[]);
        host.ssh.host_key_alias = Some("keys.example".into());
        let (ssh_ok, ssh_says) = openssh_connects(&host, &[]);
        let ours = swpush_connects(&host, &options()).await;
        if ours.is_ok() != ssh_ok {
            failures.push(format!(
                "{case}: ssh {ssh_ok} ({ssh_says}), swpush {ours:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    let (theirs, ours) = (dir.join("ssh"), dir.join("swpush"));
    for path in [&theirs, &ours] {
        let mut host = host("keys", std::slice::from_ref(path), &[]);
        host.ssh.host_key_alias = Some("keys.example".into());
        host.ssh.strict_host_key_checking = StrictHostKeyChecking::AcceptNew;
        if *path == theirs {
            let (ok, says) = openssh_connects(&host, &[]);
            assert!(ok, "ssh accept-new with HostKeyAlias: {says}");
        } else {
            swpush_connects(&host, &options())
                .await
                .unwrap_or_else(|e| panic!("accept-new with HostKeyAlias: {e}"));
        }
    }
    assert_eq!(read_or_empty(&ours), format!("keys.example {key}\n"));
    assert_eq!(read_or_empty(&ours), read_or_empty(&theirs));
}

/// A socket that accepts and never speaks: the host's `ConnectTimeout`
/// beats swpush's default, and `--connect-timeout` given on the command
/// line beats the host's, as `ssh -o ConnectTimeout=` beats the file.
#[tokio::test]
async fn connect_timeout_comes_from_the_host_unless_the_command_line_says() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let mut host = Host::plain("silent", "127.0.0.1", port, "root");
    host.ssh.user_known_hosts = vec![scratch("timeout").join("known_hosts")];
    host.ssh.global_known_hosts = Vec::new();
    host.ssh.connect_timeout = Some(1);
    let mut defaults = options();
    defaults.connect_timeout = Duration::from_secs(30);
    let started = Instant::now();
    let err = swpush_connects(&host, &defaults)
        .await
        .expect_err("silent host");
    let took = started.elapsed();
    assert!(
        matches!(&err, SshError::Timeout { timeout, .. } if *timeout == Duration::from_secs(1)),
        "{err:?}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");

    host.ssh.connect_timeout = Some(30);
    let mut given = options();
    given.connect_timeout = Duration::from_secs(2);
    given.connect_timeout_given = true;
    let started = Instant::now();
    let err = swpush_connects(&host, &given)
        .await
        .expect_err("silent host");
    let took = started.elapsed();
    assert!(
        matches!(&err, SshError::Timeout { timeout, .. } if *timeout == Duration::from_secs(2)),
        "{err:?}"
    );
    assert!(took < Duration::from_secs(6), "took {took:?}");
    drop(silent);
}

/// `ssh-keygen -s CA` of `key.pub` for root, written to `to`.
fn certify(ca: &Path, key: &Path, to: &Path) {
    let made = certify_user(ca, key, "root");
    if made != to {
        fs::rename(&made, to).expect("move the certificate");
    }
}

/// Identities as ssh offers them, with the real `ssh` as the oracle: the
/// `login` host trusts a user CA (`TrustedUserCAKeys`) and, in
/// authorized_keys, only the fleet's key. For each case both log in or
/// neither does: further IdentityFiles with their `-cert.pub`,
/// CertificateFile with its key in a file or only in the agent,
/// certificates held by the agent, IdentitiesOnly, IdentityAgent none or a
/// socket.
#[tokio::test]
async fn identities_are_offered_as_openssh_offers_them() {
    let dir = scratch("identities");
    let ca = dir.join("user_ca");
    new_key(&ca);
    let h = fleet().host("login");
    let mut config = fs::OpenOptions::new()
        .append(true)
        .open(h.dir.join("sshd_config"))
        .expect("sshd_config");
    use std::io::Write;
    writeln!(config, "TrustedUserCAKeys {}.pub", ca.display()).expect("append");
    run(Command::new("kill").args(["-HUP", &h.sshd_pid().to_string()]));
    std::thread::sleep(Duration::from_millis(200));
    wait_until(Duration::from_secs(20), "sshd back", || {
        std::net::TcpStream::connect((h.addr, SSH_PORT)).is_ok()
    });

    // k1: known to nobody. k2: certified, certificate beside it. k3:
    // certified, certificate kept elsewhere (for CertificateFile).
    let (k1, k2, k3) = (dir.join("k1"), dir.join("k2"), dir.join("k3"));
    for key in [&k1, &k2, &k3] {
        new_key(key);
    }
    certify(&ca, &k2, &dir.join("k2-cert.pub"));
    let k3_cert = dir.join("k3.cert");
    certify(&ca, &k3, &k3_cert);
    let login_key = fleet().login_key();
    let holds_login = Agent::holding(&dir.join("agent-login"), &[&login_key]);
    let holds_k3 = Agent::holding(&dir.join("agent-k3"), &[&k3]);
    let holds_k2_cert = Agent::holding(&dir.join("agent-k2"), &[&k2]);
    let missing_socket = dir.join("no-agent.sock");
    // Only the public half on disk, the key in the agent (as 1Password or a
    // YubiKey agent is set up): `IdentityFile login.pub`.
    let public_only = dir.join("login.pub");
    let mut login_public = login_key.as_os_str().to_owned();
    login_public.push(".pub");
    fs::copy(&login_public, &public_only).expect("copy the login key's .pub");

    struct Case<'a> {
        name: &'a str,
        identity: &'a Path,
        further: Vec<PathBuf>,
        certificates: Vec<PathBuf>,
        only: bool,
        agent: Option<&'a Path>,
        /// What both should do: a guard against a case that tests nothing.
        logs_in: bool,
    }
    let case = |name, identity, logs_in| Case {
        name,
        identity,
        further: Vec::new(),
        certificates: Vec::new(),
        only: false,
        agent: None,
        logs_in,
    };
    let cases = [
        case("an unknown key alone", &k1, false),
        case("the certificate beside the key", &k2, true),
        Case {
            further: vec![k2.clone()],
            ..case("a further IdentityFile with its certificate", &k1, true)
        },
        Case {
            certificates: vec![k3_cert.clone()],
            ..case("a CertificateFile for the identity file", &k3, true)
        },
        Case {
            certificates: vec![k3_cert.clone()],
            agent: Some(&holds_k3.socket),
            ..case(
                "a CertificateFile whose key only the agent holds",
                &k1,
                true,
            )
        },
        Case {
            agent: Some(&holds_login.socket),
            ..case("another key in the agent", &k1, true)
        },
        Case {
            agent: Some(&holds_login.socket),
            only: true,
            ..case("another key in the agent, IdentitiesOnly", &k1, false)
        },
        Case {
            agent: Some(&holds_k2_cert.socket),
            ..case("a certificate held by the agent", &k1, true)
        },
        Case {
            agent: Some(&holds_k2_cert.socket),
            only: true,
            ..case(
                "a certificate held by the agent, IdentitiesOnly",
                &k1,
                false,
            )
        },
        Case {
            agent: Some(&holds_k2_cert.socket),
            only: true,
            ..case(
                "the agent's copy of the identity file, IdentitiesOnly",
                &k2,
                true,
            )
        },
        Case {
            agent: Some(&holds_login.socket),
            only: true,
            ..case(
                "a public key file whose key the agent holds, IdentitiesOnly",
                &public_only,
                true,
            )
        },
        Case {
            agent: Some(&missing_socket),
            ..case("an IdentityAgent socket with no agent", &k1, false)
        },
    ];
    let known = fleet().known_hosts();
    let mut failures = Vec::new();
    for case in &cases {
        let mut host = host("login", std::slice::from_ref(&known), &[]);
        host.identity_file = Some(case.identity.to_owned());
        host.ssh.further_identity_files = case.further.clone();
        host.ssh.certificate_files = case.certificates.clone();
        host.ssh.identities_only = case.only;
        host.ssh.identity_agent = match case.agent {
            Some(socket) => IdentityAgent::Socket(socket.to_owned()),
            None => IdentityAgent::None,
        };
        let (ssh_ok, ssh_says) = openssh_connects(&host, &[]);
        let mut empty_home = options();
        empty_home.home = Some(dir.join("empty-home"));
        let ours = swpush_connects(&host, &empty_home).await;
        if ours.is_ok() != ssh_ok {
            failures.push(format!(
                "{}: ssh logs in {ssh_ok} ({ssh_says}), swpush {ours:?}",
                case.name
            ));
        } else if ssh_ok != case.logs_in {
            failures.push(format!(
                "{}: both log in {ssh_ok}, the case expects {}",
                case.name, case.logs_in
            ));
        }
    }
    drop((holds_login, holds_k3, holds_k2_cert));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
