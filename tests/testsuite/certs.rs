//! Host certificates against real sshd hosts: each host presents a host
//! certificate made by `ssh-keygen -s` (`HostCertificate`), and a
//! `known_hosts` holding only a `@cert-authority` line decides. A
//! certificate from the listed authority for the host's name is trusted;
//! an expired one, one for another name, and one from another authority
//! are refused with a message saying which. The real OpenSSH client is
//! asked the same question and must agree.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use swpush::inventory::Host;
use swpush::ssh::{ConnectOptions, Connection, SshError};

use crate::support::keys::{certify_user, new_key, run};
use crate::support::wait_until;
use crate::support::{Fleet, SSH_PORT};

/// host name, principal to certify ("" = its address), validity, signing CA.
const CASES: &[(&str, &str, &str, &str)] = &[
    ("good", "", "-1h:+1h", "ca"),
    ("expired", "", "20200101:20200102", "ca"),
    ("elsewhere", "other.example", "-1h:+1h", "ca"),
    ("stranger", "", "-1h:+1h", "rogue"),
];

fn host(fleet: &Fleet, name: &str) -> Host {
    host_with(fleet, name, fleet.login_key())
}

fn host_with(fleet: &Fleet, name: &str, identity: PathBuf) -> Host {
    let h = fleet.host(name);
    Host {
        identity_file: Some(identity),
        ..Host::plain(name, &h.addr.to_string(), SSH_PORT, "root")
    }
}

/// Appends `line` to `name`'s sshd_config and makes sshd re-read it.
fn reconfigure(fleet: &Fleet, name: &str, line: &str) {
    let h = fleet.host(name);
    let mut config = fs::OpenOptions::new()
        .append(true)
        .open(h.dir.join("sshd_config"))
        .expect("sshd_config");
    writeln!(config, "{line}").expect("append");
    run(Command::new("kill").args(["-HUP", &h.sshd_pid().to_string()]));
}

/// Waits until `name`'s sshd (re-executing itself after SIGHUP) listens again.
fn wait_listening(fleet: &Fleet, name: &str) {
    let addr = (fleet.host(name).addr, SSH_PORT);
    std::thread::sleep(Duration::from_millis(200));
    wait_until(
        Duration::from_secs(20),
        &format!("{name}: sshd back"),
        || std::net::TcpStream::connect(addr).is_ok(),
    );
}

/// Certifies each host's key as its case says, makes its sshd present the
/// certificate (config line + SIGHUP) and waits until it listens again.
fn certify(fleet: &Fleet, dir: &Path) {
    for (name, principal, validity, ca) in CASES {
        let h = fleet.host(name);
        let principal = match *principal {
            "" => h.addr.to_string(),
            other => other.to_owned(),
        };
        let public = h.dir.join("ssh_host_ed25519_key.pub");
        run(Command::new("ssh-keygen")
            .args(["-q", "-s"])
            .arg(dir.join(ca))
            .args(["-h", "-I", name, "-n", &principal, "-V", validity])
            .arg(&public));
        let cert = h.dir.join("ssh_host_ed25519_key-cert.pub");
        assert!(cert.exists(), "ssh-keygen made no {}", cert.display());
        let mut config = fs::OpenOptions::new()
            .append(true)
            .open(h.dir.join("sshd_config"))
            .expect("sshd_config");
        writeln!(config, "HostCertificate {}", cert.display()).expect("append");
        run(Command::new("kill").args(["-HUP", &fleet.host(name).sshd_pid().to_string()]));
    }
    // sshd re-executes itself on SIGHUP: wait until each answers again.
    for (name, ..) in CASES {
        wait_listening(fleet, name);
    }
}

/// Does the real `ssh` log in to `name` with `known_hosts` alone?
fn openssh_accepts(fleet: &Fleet, name: &str, known_hosts: &Path) -> bool {
    openssh_logs_in(fleet, name, known_hosts, &fleet.login_key())
}

/// Does the real `ssh -i IDENTITY` (which offers `IDENTITY-cert.pub` too) log in?
fn openssh_logs_in(fleet: &Fleet, name: &str, known_hosts: &Path, identity: &Path) -> bool {
    openssh(fleet, name, known_hosts, identity, None)
}

/// Does the real `ssh -o HostKeyAlias=ALIAS` log in to `name` with `known_hosts` alone?
fn openssh_with_alias(fleet: &Fleet, name: &str, known_hosts: &Path, alias: Option<&str>) -> bool {
    openssh(fleet, name, known_hosts, &fleet.login_key(), alias)
}

/// The real `ssh` to `name` as root with `identity`, checking host keys
/// against `known_hosts` alone (and under `alias`, if any): does it log in?
fn openssh(
    fleet: &Fleet,
    name: &str,
    known_hosts: &Path,
    identity: &Path,
    alias: Option<&str>,
) -> bool {
    let h = fleet.host(name);
    let mut ssh = Command::new("ssh");
    ssh.args(["-F", "/dev/null", "-o", "BatchMode=yes"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args(["-o", "GlobalKnownHostsFile=/dev/null"])
        .args(["-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=10"]);
    if let Some(alias) = alias {
        ssh.arg("-o").arg(format!("HostKeyAlias={alias}"));
    }
    ssh.arg("-i")
        .arg(identity)
        .args(["-p", &SSH_PORT.to_string()])
        .arg(format!("root@{}", h.addr))
        .arg("true")
        .output()
        .expect("ssh (apt-get install openssh-client)")
        .status
        .success()
}

#[tokio::test]
async fn host_certificates_are_checked_against_cert_authority_lines() {
    let names: Vec<&str> = CASES.iter().map(|c| c.0).collect();
    let fleet = Fleet::start_named(&names);
    let dir: PathBuf = fleet.dir().join("certs");
    fs::create_dir_all(&dir).expect("certs dir");
    new_key(&dir.join("ca"));
    new_key(&dir.join("rogue"));
    certify(&fleet, &dir);

    let ca = fs::read_to_string(dir.join("ca.pub")).expect("ca.pub");
    let known_hosts = dir.join("known_hosts");
    fs::write(&known_hosts, format!("@cert-authority * {ca}")).expect("known_hosts");
    let options = ConnectOptions {
        known_hosts: Some(known_hosts.clone()),
        accept_new_host_keys: false,
        connect_timeout: Duration::from_secs(10),
        home: Some(fleet.home().to_owned()),
        connect_timeout_given: false,
    };

    let mut disagreements = Vec::new();
    for (name, ..) in CASES {
        let ours = Connection::connect(&host(&fleet, name), &options).await;
        let theirs = openssh_accepts(&fleet, name, &known_hosts);
        if ours.is_ok() != theirs {
            disagreements.push(format!(
                "{name}: ssh {} but swpush says {:?}",
                if theirs { "logs in" } else { "refuses" },
                ours.as_ref().err().map(ToString::to_string)
            ));
        }
        let want = match *name {
            "good" => None,
            "expired" => Some("it expired at"),
            "elsewhere" => Some("it is for other.example, not for"),
            _ => Some("and the @cert-authority line"),
        };
        match (ours, want) {
            (Ok(connection), None) => connection.close().await,
            (Err(e), Some(words)) => {
                assert!(
                    matches!(e, SshError::HostCertificate { .. }),
                    "{name}: {e:?}"
                );
                assert!(e.to_string().contains(words), "{name}: {e}");
            }
            (Ok(_), Some(words)) => panic!("{name}: connected; want a refusal with {words:?}"),
            (Err(e), None) => panic!("{name}: {e}"),
        }
    }
    assert!(disagreements.is_empty(), "{disagreements:#?}");

    // HostKeyAlias: @cert-authority lines and certificate principals are
    // matched against the alias, as ssh matches them.
    let mut disagreements = Vec::new();
    for (name, line, alias, connects) in [
        ("elsewhere", "other.example", Some("other.example"), true),
        ("elsewhere", "other.example", None, false),
        ("good", "*", Some("other.example"), false),
        ("elsewhere", "*.example", Some("other.example"), true),
    ] {
        fs::write(&known_hosts, format!("@cert-authority {line} {ca}")).expect("known_hosts");
        let mut target = host(&fleet, name);
        target.ssh.host_key_alias = alias.map(str::to_owned);
        let ours = Connection::connect(&target, &options).await;
        let theirs = openssh_with_alias(&fleet, name, &known_hosts, alias);
        if ours.is_ok() != theirs || theirs != connects {
            disagreements.push(format!(
                "{name} alias {alias:?} line {line}: ssh logs in {theirs} (expected {connects}), \
                 swpush says {:?}",
                ours.as_ref().err().map(ToString::to_string)
            ));
        }
        if let Ok(connection) = ours {
            connection.close().await;
        }
    }
    assert!(disagreements.is_empty(), "{disagreements:#?}");

    // The same certificate with its authority @revoked is refused.
    fs::write(
        &known_hosts,
        format!("@cert-authority * {ca}@revoked * {ca}"),
    )
    .expect("known_hosts");
    let refused = Connection::connect(&host(&fleet, "good"), &options).await;
    let Err(e) = refused else {
        panic!("good: connected although its authority is @revoked")
    };
    assert!(e.to_string().contains("is @revoked at"), "{e}");
    assert!(!openssh_accepts(&fleet, "good", &known_hosts));
}

#[tokio::test]
async fn a_user_certificate_beside_the_identity_file_logs_in() {
    let fleet = Fleet::start_named(&["users"]);
    let dir = fleet.dir().join("user-certs");
    fs::create_dir_all(&dir).expect("dir");
    // A key the host's authorized_keys does not hold: only its certificate
    // from the CA the host trusts can log in.
    let (ca, key) = (dir.join("user_ca"), dir.join("id_ed25519"));
    new_key(&ca);
    new_key(&key);
    reconfigure(
        &fleet,
        "users",
        &format!("TrustedUserCAKeys {}.pub", ca.display()),
    );
    wait_listening(&fleet, "users");
    let options = ConnectOptions {
        known_hosts: Some(fleet.known_hosts()),
        accept_new_host_keys: false,
        connect_timeout: Duration::from_secs(10),
        home: Some(fleet.home().to_owned()),
        connect_timeout_given: false,
    };
    let known = fleet.known_hosts();
    let target = host_with(&fleet, "users", key.clone());

    // Without a certificate the key alone is refused, by both.
    let plain = Connection::connect(&target, &options).await;
    assert!(
        matches!(plain, Err(SshError::Auth { .. })),
        "{:?}",
        plain.err()
    );
    assert!(!openssh_logs_in(&fleet, "users", &known, &key));

    certify_user(&ca, &key, "root");
    let connection = Connection::connect(&target, &options)
        .await
        .unwrap_or_else(|e| panic!("login with the certificate: {e}"));
    connection.close().await;
    assert!(openssh_logs_in(&fleet, "users", &known, &key));

    // A certificate for another user is refused, and the message says the
    // certificate was offered.
    certify_user(&ca, &key, "somebody-else");
    let wrong = Connection::connect(&target, &options).await;
    let Err(e) = wrong else {
        panic!("logged in as root with a certificate for somebody-else")
    };
    assert!(
        e.to_string()
            .contains("-cert.pub (the host refused the certificate"),
        "{e}"
    );
    assert!(!openssh_logs_in(&fleet, "users", &known, &key));
}
