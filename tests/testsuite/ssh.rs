//! The SSH layer against real sshd hosts: running a command, streaming
//! stdin, host-key checking (unknown, accepted on first use, changed,
//! hashed), login with each kind of identity, and each way of not getting
//! in (dead address, silent host, wrong key).
//!
//! One 3-host fleet serves the whole file: host1 runs commands, host2 is
//! only ever handshaken with (host-key cases), host3 is frozen by the
//! timeout case and used by nothing else. Cases that need a different
//! `SSH_AUTH_SOCK` (or `IdentityAgent none` beside one) run in a child process of this test binary, as the
//! environment is shared by all threads.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use swpush::inventory::{Host, LoadContext};
use swpush::ssh::{ConnectOptions, Connection, Event, SshError};

use crate::support::keys::{Agent, run};
use crate::support::{Fleet, SSH_PORT};

struct Shared {
    fleet: Fleet,
    hosts: Vec<Host>,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let fleet = Fleet::start(3);
        let context = LoadContext {
            home: Some(fleet.home().into()),
            local_user: "root".into(),
        };
        let inventory = swpush::inventory::load(&fleet.write_inventory(), &context)
            .unwrap_or_else(|e| panic!("fleet inventory: {e}"));
        Shared {
            hosts: inventory.hosts,
            fleet,
        }
    })
}

fn fleet() -> &'static Fleet {
    &shared().fleet
}

/// The inventory's host `name` (logs in with the fleet's key as root).
fn host(name: &str) -> Host {
    shared()
        .hosts
        .iter()
        .find(|h| h.name == name)
        .cloned()
        .unwrap_or_else(|| panic!("no host {name} in the fleet inventory"))
}

fn options(known_hosts: &Path) -> ConnectOptions {
    ConnectOptions {
        known_hosts: Some(known_hosts.to_owned()),
        accept_new_host_keys: false,
        connect_timeout: Duration::from_secs(10),
        home: Some(fleet().home().to_owned()),
        connect_timeout_given: false,
    }
}

fn fleet_options() -> ConnectOptions {
    options(&fleet().known_hosts())
}

/// A fresh directory for one test, removed with the fleet.
fn scratch(test: &str) -> PathBuf {
    let dir = fleet().dir().join("ssh-tests").join(test);
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    dir
}

fn new_key(path: &Path, passphrase: &str) {
    run(Command::new("ssh-keygen")
        .args([
            "-q", "-t", "ed25519", "-C", "stranger", "-N", passphrase, "-f",
        ])
        .arg(path));
}

/// `SHA256:...` of a host's key, as `ssh-keygen -l` shows it.
fn host_fingerprint(name: &str) -> String {
    let public = fleet().host(name).dir.join("ssh_host_ed25519_key.pub");
    let listing = run(Command::new("ssh-keygen").arg("-lf").arg(public));
    listing
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("ssh-keygen -l printed {listing:?}"))
        .to_owned()
}

fn target(name: &str) -> String {
    format!("{}:{SSH_PORT}", fleet().host(name).addr)
}

async fn connect(host: &Host, options: &ConnectOptions) -> Connection {
    Connection::connect(host, options)
        .await
        .unwrap_or_else(|e| panic!("connect {}: {e}", host.name))
}

async fn connect_err(host: &Host, options: &ConnectOptions) -> SshError {
    match Connection::connect(host, options).await {
        Ok(_) => panic!("connecting to {} should have failed", host.name),
        Err(e) => e,
    }
}

/// What a command wrote and how it ended.
#[derive(Debug, Default)]
struct Outcome {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    exit: Option<u32>,
    lost: Option<SshError>,
}

async fn collect(process: &mut swpush::ssh::RemoteProcess) -> Outcome {
    let mut outcome = Outcome::default();
    while let Some(event) = process.next_event().await {
        match event {
            Event::Stdout(data) => outcome.stdout.extend(data),
            Event::Stderr(data) => outcome.stderr.extend(data),
            Event::Exit(status) => outcome.exit = Some(status),
            Event::Lost(e) => outcome.lost = Some(e),
            Event::Signal { .. } | Event::Eof => {}
        }
    }
    outcome
}

/// Runs `command` on host1 over one connection.
async fn run_on_host1(command: &str) -> Outcome {
    let connection = connect(&host("host1"), &fleet_options()).await;
    let mut process = connection
        .exec(command)
        .await
        .unwrap_or_else(|e| panic!("exec {command:?}: {e}"));
    let outcome = collect(&mut process).await;
    connection.close().await;
    outcome
}

#[tokio::test]
async fn exec_reports_stdout_stderr_and_exit_status() {
    let outcome = run_on_host1("echo hi; echo err >&2; exit 3").await;
    assert_eq!(String::from_utf8_lossy(&outcome.stdout), "hi\n");
    assert_eq!(String::from_utf8_lossy(&outcome.stderr), "err\n");
    assert_eq!(outcome.exit, Some(3));
    assert_eq!(outcome.lost, None);
}

#[tokio::test]
async fn one_connection_runs_several_commands() {
    let connection = connect(&host("host1"), &fleet_options()).await;
    for i in 0..3 {
        let mut process = connection
            .exec(&format!("echo run{i}"))
            .await
            .unwrap_or_else(|e| panic!("exec {i}: {e}"));
        let outcome = collect(&mut process).await;
        assert_eq!(
            String::from_utf8_lossy(&outcome.stdout),
            format!("run{i}\n")
        );
        assert_eq!(outcome.exit, Some(0));
    }
    connection.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_streamed_to_stdin_comes_back_unchanged() {
    const SIZE: usize = 5 * 1024 * 1024 + 12_345;
    let path = scratch("stdin").join("payload");
    // Pseudo-random bytes (xorshift), so a dropped or repeated chunk shows.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let payload: Vec<u8> = (0..SIZE)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    fs::write(&path, &payload).unwrap_or_else(|e| panic!("{}: {e}", path.display()));

    let connection = connect(&host("host1"), &fleet_options()).await;
    let mut process = connection.exec("cat").await.expect("exec cat");
    let stdin = process.stdin();
    // Written from another task while this one reads what cat echoes.
    let sender = tokio::spawn({
        let stdin = stdin.clone();
        let path = path.clone();
        async move {
            stdin.send(b"").await?;
            let counted = std::sync::atomic::AtomicU64::new(0);
            let sent = stdin.send_file(&path, SIZE as u64, &counted).await?;
            let counted = counted.into_inner();
            assert_eq!(counted, sent, "every chunk counted");
            stdin.eof().await?;
            Ok::<(u64, u64), SshError>((sent, counted))
        }
    });
    let outcome = collect(&mut process).await;
    let sent = sender.await.expect("sender task");
    connection.close().await;

    let (sent, counted) = sent.expect("send_file");
    assert_eq!(sent, SIZE as u64);
    assert_eq!(counted, SIZE as u64);
    assert_eq!(outcome.exit, Some(0), "stderr: {:?}", outcome.stderr);
    assert_eq!(outcome.stdout.len(), SIZE);
    assert_eq!(
        hex(&Sha256::digest(&outcome.stdout)),
        hex(&Sha256::digest(&payload)),
        "cat echoed other bytes than were sent"
    );
}

#[tokio::test]
async fn send_file_refuses_a_file_shorter_than_announced() {
    let path = scratch("short").join("payload");
    fs::write(&path, b"only this").expect("write payload");
    let connection = connect(&host("host1"), &fleet_options()).await;
    let process = connection.exec("cat >/dev/null").await.expect("exec");
    let err = process
        .stdin()
        .send_file(&path, 1000, &Default::default())
        .await
        .expect_err("a short file must be an error");
    assert!(
        matches!(err, SshError::LocalFile { .. }) && err.to_string().contains("shorter"),
        "{err}"
    );
    connection.close().await;
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_killed_connection_reports_lost_not_an_exit_status() {
    let connection = connect(&host("host1"), &fleet_options()).await;
    // $PPID is the sshd process serving this connection.
    let mut process = connection
        .exec("echo $PPID; exec sleep 60")
        .await
        .expect("exec");
    let pid = match process.next_event().await {
        Some(Event::Stdout(data)) => String::from_utf8_lossy(&data).trim().to_owned(),
        other => panic!("expected the session's pid, got {other:?}"),
    };
    run(Command::new("kill").args(["-KILL", &pid]));
    let started = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(20), collect(&mut process))
        .await
        .expect("the lost connection must end the event stream");
    assert_eq!(outcome.exit, None);
    let lost = outcome.lost.expect("an Event::Lost");
    assert!(matches!(lost, SshError::Io { .. }), "{lost}");
    let message = lost.to_string();
    let expected = format!(
        "connection to {} lost: the host closed the connection",
        target("host1")
    );
    assert_eq!(message, expected);
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn an_unknown_host_key_is_refused_with_its_fingerprint() {
    let dir = scratch("unknown");
    for known_hosts in [dir.join("empty"), dir.join("missing")] {
        if known_hosts.ends_with("empty") {
            fs::write(&known_hosts, "").expect("write empty known_hosts");
        }
        let err = connect_err(&host("host2"), &options(&known_hosts)).await;
        let SshError::HostKeyUnknown {
            fingerprint,
            known_hosts: file,
            ..
        } = &err
        else {
            panic!("expected HostKeyUnknown, got {err:?}");
        };
        assert_eq!(*fingerprint, host_fingerprint("host2"));
        assert_eq!(*file, known_hosts);
        let message = err.to_string();
        for part in [
            &target("host2"),
            fingerprint,
            &known_hosts.display().to_string(),
        ] {
            assert!(message.contains(part.as_str()), "{message:?} lacks {part}");
        }
        assert!(!message.contains('\n'));
    }
    assert!(
        !dir.join("missing").exists(),
        "a refused key must not create known_hosts"
    );
}

#[tokio::test]
async fn accept_new_records_the_key_and_later_connects_trust_it() {
    let dir = scratch("accept-new").join("ssh");
    let known_hosts = dir.join("known_hosts");
    let mut opts = options(&known_hosts);
    opts.accept_new_host_keys = true;
    // Parallel first connections record the key once.
    let host2 = host("host2");
    let (a, b, c) = tokio::join!(
        connect(&host2, &opts),
        connect(&host2, &opts),
        connect(&host2, &opts)
    );
    // Exactly one of them recorded it, and says which key it trusted.
    let learned: Vec<String> = [&a, &b, &c]
        .iter()
        .filter_map(|c| c.learned_host_key())
        .collect();
    for connection in [a, b, c] {
        connection.close().await;
    }
    assert_eq!(learned.len(), 1, "{learned:?}");
    assert!(learned[0].starts_with("ssh-ed25519 SHA256:"), "{learned:?}");

    let recorded = fs::read_to_string(&known_hosts).expect("known_hosts written");
    let addr = fleet().host("host2").addr;
    assert_eq!(
        recorded,
        format!(
            "[{addr}]:{SSH_PORT} {}\n",
            fleet().host("host2").public_key()
        )
    );
    let mode = |p: &Path| fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&known_hosts), 0o600);
    assert_eq!(mode(&dir), 0o700);

    opts.accept_new_host_keys = false;
    let connection = connect(&host("host2"), &opts).await;
    assert_eq!(connection.learned_host_key(), None);
    let mut process = connection.exec("echo known").await.expect("exec");
    assert_eq!(collect(&mut process).await.stdout, b"known\n");
    connection.close().await;
    assert_eq!(
        fs::read_to_string(&known_hosts).expect("known_hosts"),
        recorded,
        "a known key must not be recorded again"
    );
}

#[tokio::test]
async fn a_changed_host_key_is_refused_even_with_accept_new() {
    let known_hosts = scratch("changed").join("known_hosts");
    let addr = fleet().host("host2").addr;
    // host1's key recorded for host2: what a man in the middle looks like.
    let text = format!(
        "# a comment line, so the line number is checked too\n[{addr}]:{SSH_PORT} {}\n",
        fleet().host("host1").public_key()
    );
    fs::write(&known_hosts, &text).expect("write known_hosts");
    for accept_new in [false, true] {
        let mut opts = options(&known_hosts);
        opts.accept_new_host_keys = accept_new;
        let err = connect_err(&host("host2"), &opts).await;
        let SshError::HostKeyChanged {
            fingerprint, line, ..
        } = &err
        else {
            panic!("expected HostKeyChanged (accept_new {accept_new}), got {err:?}");
        };
        assert_eq!(*fingerprint, host_fingerprint("host2"));
        assert_eq!(*line, 2);
        let message = err.to_string();
        let file_line = format!("{}:2", known_hosts.display());
        assert!(message.contains(&file_line), "{message}");
        assert!(message.contains(&target("host2")), "{message}");
    }
    assert_eq!(fs::read_to_string(&known_hosts).expect("read"), text);
}

#[tokio::test]
async fn a_host_that_no_longer_offers_its_recorded_key_type_is_refused() {
    // Recorded: an ECDSA key. The host (now) only has an Ed25519 key. OpenSSH
    // would ask; unattended, that is a changed key.
    let dir = scratch("other-type");
    let ecdsa = Command::new("ssh-keygen")
        .args(["-q", "-t", "ecdsa", "-N", "", "-f"])
        .arg(dir.join("ecdsa-host"))
        .status()
        .expect("ssh-keygen");
    assert!(ecdsa.success());
    let public = fs::read_to_string(dir.join("ecdsa-host.pub")).expect("read ecdsa key");
    let known_hosts = dir.join("known_hosts");
    let addr = fleet().host("host2").addr;
    fs::write(&known_hosts, format!("[{addr}]:{SSH_PORT} {public}")).expect("write");
    let mut opts = options(&known_hosts);
    opts.accept_new_host_keys = true;
    let err = connect_err(&host("host2"), &opts).await;
    assert!(
        matches!(err, SshError::HostKeyChanged { line: 1, .. }),
        "{err:?}"
    );
    let text = fs::read_to_string(&known_hosts).expect("read");
    assert_eq!(text.lines().count(), 1, "nothing may be learned: {text}");
}

#[tokio::test]
async fn a_hashed_known_hosts_entry_is_accepted() {
    let known_hosts = scratch("hashed").join("known_hosts");
    fs::copy(fleet().known_hosts(), &known_hosts).expect("copy known_hosts");
    run(Command::new("ssh-keygen")
        .args(["-q", "-H", "-f"])
        .arg(&known_hosts));
    let hashed = fs::read_to_string(&known_hosts).expect("read");
    let addr = fleet().host("host2").addr.to_string();
    assert!(
        hashed.starts_with("|1|") && !hashed.contains(&addr),
        "not hashed: {hashed}"
    );
    connect(&host("host2"), &options(&known_hosts))
        .await
        .close()
        .await;
}

#[tokio::test]
async fn a_dead_address_is_a_quick_connect_error() {
    let mut dead = host("host1");
    dead.address = fleet().dead_address().to_string();
    let started = Instant::now();
    let err = connect_err(&dead, &fleet_options()).await;
    assert!(matches!(err, SshError::Connect { .. }), "{err:?}");
    assert!(err.is_transient());
    assert!(started.elapsed() < Duration::from_secs(2));
    let message = err.to_string();
    assert!(
        message.contains(&format!("{}:{SSH_PORT}", dead.address)),
        "{message}"
    );
    assert!(message.contains("refused"), "{message}");
}

/// Resumes a stopped sshd even when the test fails.
struct Resume(u32);

impl Drop for Resume {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .status();
    }
}

#[tokio::test]
async fn a_host_that_does_not_answer_times_out() {
    let pid = fleet().host("host3").sshd_pid();
    run(Command::new("kill").args(["-STOP", &pid.to_string()]));
    let _resume = Resume(pid);
    let mut opts = fleet_options();
    opts.connect_timeout = Duration::from_secs(1);
    let started = Instant::now();
    let err = connect_err(&host("host3"), &opts).await;
    let elapsed = started.elapsed();
    assert!(matches!(err, SshError::Timeout { .. }), "{err:?}");
    assert!(
        elapsed >= Duration::from_millis(950) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    assert!(err.to_string().contains(&target("host3")), "{err}");
}

#[tokio::test]
async fn an_identity_the_host_does_not_know_is_refused() {
    let key = scratch("wrong-identity").join("id_ed25519");
    new_key(&key, "");
    let mut stranger = host("host1");
    stranger.identity_file = Some(key.clone());
    let err = connect_err(&stranger, &fleet_options()).await;
    assert!(matches!(err, SshError::Auth { .. }), "{err:?}");
    let message = err.to_string();
    let expected = format!(
        "no identity accepted for root@{} (tried {})",
        target("host1"),
        key.display()
    );
    assert_eq!(message, expected);
    assert!(!err.is_transient());
}

#[tokio::test]
async fn a_passphrase_protected_identity_file_is_explained() {
    let key = scratch("encrypted-identity").join("id_ed25519");
    new_key(&key, "secret phrase");
    let mut locked = host("host1");
    locked.identity_file = Some(key.clone());
    let err = connect_err(&locked, &fleet_options()).await;
    assert!(matches!(err, SshError::Identity { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("passphrase"), "{message}");
    assert!(message.contains(&key.display().to_string()), "{message}");
}

#[tokio::test]
async fn a_missing_identity_file_is_an_error() {
    let mut host = host("host1");
    let missing = scratch("missing-identity").join("nope");
    host.identity_file = Some(missing.clone());
    let err = connect_err(&host, &fleet_options()).await;
    assert!(matches!(err, SshError::Identity { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );
}

/// Runs [`child_connects_with_environment_identities`] in a child process
/// with the given `SSH_AUTH_SOCK` (or none) and HOME for the default keys.
fn connect_in_child(agent: Option<&Path>, home: &Path) -> String {
    connect_in_child_with(agent, home, "")
}

/// [`connect_in_child`] with the host's `IdentityAgent` set to `none`
/// (`identity_agent` "none") or left to `SSH_AUTH_SOCK` ("").
fn connect_in_child_with(agent: Option<&Path>, home: &Path, identity_agent: &str) -> String {
    let exe = std::env::current_exe().expect("test binary path");
    let h = host("host1");
    let spec = [
        h.address.clone(),
        h.port.to_string(),
        fleet().known_hosts().display().to_string(),
        home.display().to_string(),
    ]
    .join("\n");
    let mut child = Command::new(exe);
    child
        .args(["ssh::child_connects_with_environment_identities", "--exact"])
        .args(["--ignored", "--nocapture", "--test-threads=1"])
        .env("SWPUSH_SSH_TEST_CHILD", spec)
        .env("SWPUSH_SSH_TEST_CHILD_AGENT", identity_agent)
        .env_remove("SSH_AUTH_SOCK");
    if let Some(socket) = agent {
        child.env("SSH_AUTH_SOCK", socket);
    }
    run(&mut child)
}

#[test]
fn the_default_identity_in_home_is_used_without_an_agent() {
    // The fleet's HOME holds the login key as ~/.ssh/id_ed25519.
    let out = connect_in_child(None, fleet().home());
    assert!(out.contains("child connected"), "{out}");
    // Without an identity_file, an agent or keys, the error says what was tried.
    let empty = scratch("empty-home");
    let out = connect_in_child(None, &empty);
    assert!(
        out.contains("child failed: no identity accepted for root@")
            && out.contains("tried nothing"),
        "{out}"
    );
}

#[test]
fn keys_in_ssh_agent_are_used() {
    let dir = scratch("agent");
    // A key the hosts do not know first, then the login key.
    let stranger = dir.join("stranger");
    new_key(&stranger, "");
    let agent = Agent::holding(&dir, &[&stranger, &fleet().login_key()]);
    let socket = &agent.socket;
    // An empty HOME: only the agent can log in.
    let out = connect_in_child(Some(socket), &scratch("agent-home"));
    assert!(out.contains("child connected"), "{out}");
    // IdentityAgent none: SSH_AUTH_SOCK is not asked.
    let out = connect_in_child_with(Some(socket), &scratch("agent-home"), "none");
    assert!(
        out.contains("child failed: no identity accepted") && out.contains("tried nothing"),
        "{out}"
    );

    // The agent's keys are listed when none is accepted.
    run(Command::new("ssh-add")
        .arg("-d")
        .arg(fleet().login_key())
        .env("SSH_AUTH_SOCK", socket));
    let out = connect_in_child(Some(socket), &scratch("agent-home"));
    assert!(out.contains("tried ssh-agent (1 key)"), "{out}");
}

/// Not a test of its own: the child half of the cases above, which need an
/// environment of their own. Connects to the host in `SWPUSH_SSH_TEST_CHILD`
/// and prints the outcome.
#[tokio::test]
#[ignore = "run by the tests that need their own SSH_AUTH_SOCK"]
async fn child_connects_with_environment_identities() {
    let Ok(spec) = std::env::var("SWPUSH_SSH_TEST_CHILD") else {
        eprintln!("SWPUSH_SSH_TEST_CHILD unset: nothing to do");
        return;
    };
    let fields: Vec<&str> = spec.lines().collect();
    let [address, port, known_hosts, home] = fields[..] else {
        panic!("bad SWPUSH_SSH_TEST_CHILD {spec:?}");
    };
    let mut host = Host::plain("child", address, port.parse().expect("port"), "root");
    if std::env::var("SWPUSH_SSH_TEST_CHILD_AGENT").as_deref() == Ok("none") {
        host.ssh.identity_agent = swpush::inventory::IdentityAgent::None;
    }
    let options = ConnectOptions {
        known_hosts: Some(known_hosts.into()),
        accept_new_host_keys: false,
        connect_timeout: Duration::from_secs(10),
        home: Some(home.into()),
        connect_timeout_given: false,
    };
    match Connection::connect(&host, &options).await {
        Ok(connection) => {
            let mut process = connection.exec("echo ok").await.expect("exec");
            let outcome = collect(&mut process).await;
            assert_eq!(outcome.stdout, b"ok\n");
            println!("child connected");
            connection.close().await;
        }
        Err(e) => println!("child failed: {e}"),
    }
}

/// Upload speed of `send_file` to one host, then to 20 at once, next to
/// OpenSSH's `ssh host 'cat > file' < file` (its default cipher, then the
/// one swpush prefers). Run with
/// `cargo test --release --test ssh -- --ignored --nocapture upload_throughput`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement, not a check"]
async fn upload_throughput() {
    const SIZE: u64 = 100 * 1024 * 1024;
    let fleet = Fleet::start(20);
    let context = LoadContext {
        home: Some(fleet.home().into()),
        local_user: "root".into(),
    };
    let hosts = swpush::inventory::load(&fleet.write_inventory(), &context)
        .expect("inventory")
        .hosts;
    let path = fleet.dir().join("payload");
    let payload: Vec<u8> = (0..SIZE)
        .map(|i| ((i * 2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(&path, &payload).expect("write payload");
    drop(payload);
    let opts = options(&fleet.known_hosts());

    for count in [1, 1, 20, 20] {
        let total = (count as u64 * SIZE) as f64 / 1e6;
        let (started, cpu0) = (Instant::now(), cpu_ticks());
        let uploads: Vec<_> = hosts[..count]
            .iter()
            .map(|host| tokio::spawn(upload(host.clone(), opts.clone(), path.clone(), SIZE)))
            .collect();
        for upload in uploads {
            upload.await.expect("upload task");
        }
        let seconds = started.elapsed().as_secs_f64();
        let cpu = (cpu_ticks() - cpu0) as f64 / 100.0;
        println!(
            "{count:2} host(s) swpush::ssh:                      {:4.0} MB/s \
             ({cpu:.2} s of this process's CPU)",
            total / seconds
        );
        for cipher in ["chacha20-poly1305@openssh.com", "aes128-gcm@openssh.com"] {
            let started = Instant::now();
            let uploads: Vec<_> = fleet.hosts()[..count]
                .iter()
                .map(|h| {
                    let file = fs::File::open(&path).expect("open payload");
                    let known = format!("UserKnownHostsFile={}", fleet.known_hosts().display());
                    Command::new("ssh")
                        .args(["-F", "/dev/null", "-o", "BatchMode=yes", "-o", &known])
                        .args(["-c", cipher, "-p", &h.port.to_string(), "-i"])
                        .arg(fleet.login_key())
                        .arg(format!("root@{}", h.addr))
                        .arg("cat > /tmp/upload-ssh")
                        .stdin(file)
                        .spawn()
                        .expect("ssh")
                })
                .collect();
            for mut upload in uploads {
                assert!(upload.wait().expect("wait for ssh").success());
            }
            let seconds = started.elapsed().as_secs_f64();
            println!(
                "{count:2} host(s) ssh -c {cipher:29} {:4.0} MB/s",
                total / seconds
            );
        }
    }
}

/// Streams `size` bytes of `path` into `cat` on `host` and checks they arrived.
async fn upload(host: Host, opts: ConnectOptions, path: PathBuf, size: u64) {
    let connection = connect(&host, &opts).await;
    let mut process = connection
        .exec("cat > /tmp/upload && wc -c < /tmp/upload")
        .await
        .expect("exec");
    let stdin = process.stdin();
    let send = async {
        stdin
            .send_file(&path, size, &Default::default())
            .await
            .expect("send_file");
        stdin.eof().await.expect("eof");
    };
    let (_, outcome) = tokio::join!(send, collect(&mut process));
    connection.close().await;
    let received = String::from_utf8_lossy(&outcome.stdout);
    assert_eq!(received.trim(), size.to_string());
}

/// User plus system CPU time of this process, in clock ticks (1/100 s on Linux).
fn cpu_ticks() -> u64 {
    let stat = fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let (_, after) = stat.rsplit_once(')').expect("stat format");
    // Fields after "(comm)": state is 0, utime 11, stime 12.
    after
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|t| t.parse::<u64>().expect("stat number"))
        .sum()
}

/// The real OpenSSH client's verdict on `known_hosts` for host2: does
/// `ssh -o StrictHostKeyChecking=MODE` log in?
fn openssh_accepts(known_hosts: &Path, mode: &str) -> bool {
    let h = fleet().host("host2");
    let status = Command::new("ssh")
        .args(["-F", "/dev/null", "-o", "BatchMode=yes"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args(["-o", "GlobalKnownHostsFile=/dev/null"])
        .arg("-o")
        .arg(format!("StrictHostKeyChecking={mode}"))
        .args(["-o", "ConnectTimeout=10", "-i"])
        .arg(fleet().login_key())
        .args([
            "-p",
            &h.port.to_string(),
            &format!("root@{}", h.addr),
            "true",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run ssh");
    status.status.success()
}

/// known_hosts read as OpenSSH reads it (issue 9 item 6): markers,
/// patterns with `*`/`?`/`!`, `[host]:port`, hashed names, any run of
/// spaces or tabs. For each file, swpush connects exactly when the real
/// `ssh -o StrictHostKeyChecking=yes` does, and a refusal that comes from a
/// marker names the file and line. `ssh-keygen -F` is checked to find the
/// host in the files that list it by pattern.
#[tokio::test]
async fn known_hosts_is_read_as_openssh_reads_it() {
    let dir = scratch("openssh-known-hosts");
    let addr = fleet().host("host2").addr.to_string();
    let ours = fleet().host("host2").public_key();
    let other = fleet().host("host1").public_key();
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "ca", "-f"])
        .arg(dir.join("ca")));
    let ca = fs::read_to_string(dir.join("ca.pub")).expect("ca.pub");
    let ca = ca.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    let port = SSH_PORT;
    let (prefix, _) = addr.rsplit_once('.').expect("dotted address");
    // (case, known_hosts text, the marker a refusal must name)
    let table: Vec<(&str, String, Option<&str>)> = vec![
        ("plain", format!("[{addr}]:{port} {ours}\n"), None),
        (
            "revoked-beside-plain",
            format!("[{addr}]:{port} {ours}\n@revoked * {ours}\n"),
            Some("@revoked"),
        ),
        (
            "revoked-for-this-host",
            format!("@revoked [{addr}]:{port} {ours}\n[{addr}]:{port} {ours}\n"),
            Some("@revoked"),
        ),
        (
            "revoked-other-host-only",
            format!("@revoked 192.0.2.1 {ours}\n[{addr}]:{port} {ours}\n"),
            None,
        ),
        (
            "its-own-key-as-a-ca",
            format!("@cert-authority [{addr}]:{port} {ours}\n"),
            Some("@cert-authority"),
        ),
        (
            "ca-and-plain",
            format!("@cert-authority * {ca}\n[{addr}]:{port} {ours}\n"),
            None,
        ),
        ("star", format!("* {ours}\n"), None),
        ("wildcards", format!("[{prefix}.*]:{port} {ours}\n"), None),
        (
            "question-marks",
            format!("[{}?]:{port} {ours}\n", &addr[..addr.len() - 1]),
            None,
        ),
        (
            "negated",
            format!("[127.*]:{port},![{addr}]:{port} {ours}\n"),
            None,
        ),
        (
            "negated-first",
            format!("![{addr}]:{port},* {ours}\n"),
            None,
        ),
        (
            "tabs-and-spaces",
            format!(
                "  \t[{addr}]:{port}\t\t{}   \n",
                ours.replacen(' ', " \t  ", 1)
            ),
            None,
        ),
        (
            "list",
            format!("web1,[{addr}]:{port},192.0.2.9 {ours}\n"),
            None,
        ),
        (
            "wildcard-other-key",
            format!("[{prefix}.*]:{port} {other}\n"),
            None,
        ),
        ("port-22-form", format!("{addr} {ours}\n"), None),
        (
            "unknown-marker",
            format!("@trusted [{addr}]:{port} {ours}\n"),
            None,
        ),
    ];
    let mut failures = Vec::new();
    for (case, text, marker) in &table {
        let known_hosts = dir.join(format!("{case}.known_hosts"));
        fs::write(&known_hosts, text).expect("write known_hosts");
        let openssh = openssh_accepts(&known_hosts, "yes");
        let swpush = Connection::connect(&host("host2"), &options(&known_hosts)).await;
        let verdict = match &swpush {
            Ok(_) => "connects".to_owned(),
            Err(e) => format!("refuses: {e}"),
        };
        if let Ok(connection) = swpush {
            connection.close().await;
        }
        if openssh != verdict.starts_with("connects") {
            failures.push(format!("{case}: ssh connects: {openssh}, swpush {verdict}"));
            continue;
        }
        if let Some(marker) = marker {
            let line = text
                .lines()
                .position(|l| l.trim_start().starts_with(marker))
                .map(|i| i + 1)
                .unwrap_or(0);
            let at = format!("{}:{line}", known_hosts.display());
            if !verdict.contains(marker) || !verdict.contains(&at) {
                failures.push(format!(
                    "{case}: refusal should name {marker} at {at}: {verdict}"
                ));
            }
        }
        // With trust on first use, a revoked or CA-only host is still refused
        // and nothing is recorded.
        if marker.is_some() {
            let mut accept = options(&known_hosts);
            accept.accept_new_host_keys = true;
            if let Ok(connection) = Connection::connect(&host("host2"), &accept).await {
                connection.close().await;
                failures.push(format!("{case}: --accept-new-host-keys connected"));
            }
            if fs::read_to_string(&known_hosts).expect("read") != *text {
                failures.push(format!(
                    "{case}: --accept-new-host-keys changed known_hosts"
                ));
            }
        }
    }
    // ssh-keygen -F finds the host in the files that list it by pattern or
    // hashed name: the same lines swpush reads.
    for case in ["star", "wildcards", "list", "tabs-and-spaces"] {
        let found = Command::new("ssh-keygen")
            .arg("-F")
            .arg(format!("[{addr}]:{port}"))
            .arg("-f")
            .arg(dir.join(format!("{case}.known_hosts")))
            .output()
            .expect("ssh-keygen -F");
        if !found.status.success() {
            failures.push(format!("{case}: ssh-keygen -F does not find the host"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A revoked key is never recorded by `--accept-new-host-keys`, even when
/// no plain line lists the host, and OpenSSH's own accept-new refuses too.
#[tokio::test]
async fn a_revoked_key_is_never_learned() {
    let known_hosts = scratch("revoked-learn").join("known_hosts");
    let text = format!(
        "# revoked after the leak\n@revoked * {}\n",
        fleet().host("host2").public_key()
    );
    fs::write(&known_hosts, &text).expect("write");
    assert!(!openssh_accepts(&known_hosts, "accept-new"));
    let mut opts = options(&known_hosts);
    opts.accept_new_host_keys = true;
    let err = connect_err(&host("host2"), &opts).await;
    let message = err.to_string();
    assert!(
        message.contains("revoked") && message.contains(&format!("{}:2", known_hosts.display())),
        "{message}"
    );
    assert_eq!(fs::read_to_string(&known_hosts).expect("read"), text);
}
