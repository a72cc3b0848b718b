//! One SSH connection to one host: TCP connect, handshake, host-key check
//! against `known_hosts`, public-key login, then one exec channel per run
//! whose stdin can be streamed while its output is read.
//!
//! Built on `russh`, using what `ssh -G` resolves for the host
//! (`Host.ssh`): host keys are checked against its `UserKnownHostsFile`s
//! (or `--known-hosts`) and `GlobalKnownHostsFile`s under its name or
//! `HostKeyAlias`, an unknown key recorded or refused as its
//! `StrictHostKeyChecking` (or `--accept-new-host-keys`) says, a changed or
//! revoked key always refused. Logins offer identities in ssh's order:
//! `CertificateFile`s, the agent `IdentityAgent` names (only copies of
//! configured identities with `IdentitiesOnly`), then the identity files or
//! the default `~/.ssh/id_*`. `ConnectTimeout` bounds the connection unless
//! `--connect-timeout` was given. This module knows nothing of packages or
//! the client step: it moves bytes and reports exit statuses. Jump hosts
//! (one session per hop, the next over a direct-tcpip channel of the
//! previous) are connected here, their chain parsed in `jump.rs`; a
//! ProxyCommand is `proxy.rs`. Passwords and passphrase prompts are not
//! supported.
//!
//! This file holds the connection itself: options, errors, connect, exec
//! and close. `host_key.rs` checks and records host keys, `login.rs` offers
//! identities, `process.rs` streams a running command's input and output,
//! and `script.rs` runs swpush's remote scripts (through sudo for `become`).

mod host_key;
pub(crate) mod jump;
mod known_hosts;
mod login;
mod pace;
mod process;
mod proxy;
pub mod script;

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use russh::client::{self, DisconnectReason, Handle};
use russh::keys::Algorithm;
use russh::{ChannelMsg, Disconnect, cipher};

use crate::inventory::{Host, Proxy};
use crate::untrusted::one_line;
use host_key::{ClientHandler, HostKeyPolicy, handshake_preferences, host_key_preference};
use login::Login;

pub use process::{Event, RemoteProcess, Stdin};
pub use script::{ScriptError, ScriptOutput};

/// OpenSSH's `*`/`?` pattern match, shared with `~/.ssh/config` reading.
pub(crate) use known_hosts::wildcard_match;

/// How [`Connection::connect`] checks hosts and logs in.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// `--known-hosts FILE`: replaces every host's `UserKnownHostsFile`s,
    /// as `ssh -o UserKnownHostsFile=FILE` does; `None` reads the host's.
    pub known_hosts: Option<PathBuf>,
    /// Trust on first use: record the key of a host `known_hosts` does not
    /// list, whatever the host's `StrictHostKeyChecking` says (as `ssh -o`
    /// beats the file). A changed or revoked key is refused regardless.
    pub accept_new_host_keys: bool,
    /// Limit for TCP connect, SSH handshake and login together; a host's
    /// `ConnectTimeout` beats it unless [`ConnectOptions::connect_timeout_given`].
    pub connect_timeout: Duration,
    /// The controller user's home, for the default `~/.ssh/id_*` identities.
    pub home: Option<PathBuf>,
    /// `connect_timeout` was given on the command line: it then beats
    /// every host's `ConnectTimeout`, as `ssh -o ConnectTimeout=` does.
    pub connect_timeout_given: bool,
}

/// Why a connection could not be made or was lost. Each message is one line
/// naming the host as `address:port` and what the operator can do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SshError {
    /// TCP connect failed (refused, no route, name not resolved) or the
    /// server closed the connection before the handshake finished.
    #[error("cannot connect to {target}: {reason}")]
    Connect {
        target: String,
        reason: String,
        /// Each address the name resolved to and the system's error for
        /// it (`127.0.0.5:22: Connection refused (os error 111)`), for
        /// [`SshError::detail`]; empty when TCP got through.
        tried: Vec<String>,
    },
    /// The host's name does not resolve (a typo, more often than a DNS
    /// outage): as ssh, not tried again.
    #[error("cannot connect to {target}: {reason}")]
    Resolve { target: String, reason: String },
    /// The host closed the connection before its SSH banner, every time it
    /// was tried: what sshd does to connections past `MaxStartups`.
    #[error("{}", dropped_message(.target, *.tries, *.said_max_startups))]
    Dropped {
        target: String,
        tries: u32,
        /// Whether it said sshd's `Exceeded MaxStartups` first.
        said_max_startups: bool,
    },
    /// The connect timeout elapsed before the login finished.
    #[error(
        "connecting to {target} timed out after {}s (TCP connect, SSH handshake and login)",
        .timeout.as_secs_f64()
    )]
    Timeout { target: String, timeout: Duration },
    /// The host offered a key that no `known_hosts` file lists for it, and
    /// `StrictHostKeyChecking` (or the lack of `--accept-new-host-keys`)
    /// says not to record it.
    #[error(
        "host key of {target} is not known: {key_type} {fingerprint} is not in {} nor any other \
         known_hosts file read, and {setting} refuses unknown keys; check the fingerprint, then \
         add the key to that file or use --accept-new-host-keys",
        .known_hosts.display()
    )]
    HostKeyUnknown {
        target: String,
        key_type: String,
        fingerprint: String,
        /// Where a new key would be recorded (the first `UserKnownHostsFile`).
        known_hosts: PathBuf,
        /// What refused it: `StrictHostKeyChecking yes`, ...
        setting: String,
    },
    /// The host offered a key other than the one `known_hosts` records.
    #[error(
        "HOST KEY OF {target} HAS CHANGED: it offers {key_type} {fingerprint}, but {}:{line} \
         records another key; this may be an attack (man in the middle). If the change is \
         expected, remove that line and connect again (refused whatever StrictHostKeyChecking \
         or --accept-new-host-keys say, even where ssh with StrictHostKeyChecking no would go on)",
        .known_hosts.display()
    )]
    HostKeyChanged {
        target: String,
        key_type: String,
        fingerprint: String,
        known_hosts: PathBuf,
        line: usize,
    },
    /// A `@revoked` line matching the host lists the key it offered.
    #[error(
        "host key of {target} IS REVOKED: {key_type} {fingerprint} is marked @revoked at {}:{line}; \
         not connecting whatever StrictHostKeyChecking or --accept-new-host-keys say",
        .known_hosts.display()
    )]
    HostKeyRevoked {
        target: String,
        key_type: String,
        fingerprint: String,
        known_hosts: PathBuf,
        line: usize,
    },
    /// Only a `@cert-authority` line vouches for the host, and the host
    /// offered a plain key, no certificate.
    #[error(
        "host key of {target} is vouched for only by the @cert-authority line {}:{line}, and the \
         host presented no certificate; not trusting (nor recording) its plain key {key_type} \
         {fingerprint}: give the host a HostCertificate, or add that key as a plain line after \
         checking it",
        .known_hosts.display()
    )]
    HostKeyCertAuthority {
        target: String,
        key_type: String,
        fingerprint: String,
        known_hosts: PathBuf,
        line: usize,
    },
    /// `known_hosts` could not be read, parsed or written.
    #[error("cannot use {} for {target}: {reason}", .path.display())]
    KnownHosts {
        target: String,
        path: PathBuf,
        reason: String,
    },
    /// The host accepted none of the identities offered.
    #[error(
        "no identity accepted for {user}@{target} (tried {}){}",
        tried_list(.tried),
        note_suffix(.note)
    )]
    Auth {
        user: String,
        target: String,
        /// What was offered, in order: key files, `ssh-agent (N keys)`.
        tried: Vec<String>,
        /// Extra context, such as the server closing the connection.
        note: String,
    },
    /// The host's `identity_file` cannot be used (unreadable, not a key,
    /// passphrase-protected and not in the agent).
    #[error("cannot log in to {target} with {}: {reason}", .path.display())]
    Identity {
        target: String,
        path: PathBuf,
        reason: String,
    },
    /// A setting would make OpenSSH connect another way (ProxyCommand,
    /// ControlPath, ...) and swpush does not implement it.
    #[error(
        "{target}: {setting} changes how OpenSSH would connect, and swpush does not implement it; not connecting another way than ssh would"
    )]
    Unsupported { target: String, setting: String },
    /// The SSH handshake failed (no common algorithm, bad signature, ...).
    #[error("SSH handshake with {target} failed: {reason}")]
    Protocol { target: String, reason: String },
    /// The host refused to open a session or to run the command.
    #[error("{target} refused to run the command: {reason}")]
    Channel { target: String, reason: String },
    /// The connection was lost while a command ran or was being started.
    #[error("connection to {target} lost: {reason}")]
    Io { target: String, reason: String },
    /// A local file to send could not be read.
    #[error("cannot send {} to {target}: {reason}", .path.display())]
    LocalFile {
        target: String,
        path: PathBuf,
        reason: String,
    },
    /// The host presented a host certificate that no `@cert-authority`
    /// line makes trustworthy (expired, wrong principal, unknown or
    /// revoked authority, bad signature).
    #[error("refusing the host certificate of {target} ({key_type} {fingerprint}): {reason}")]
    HostCertificate {
        target: String,
        key_type: String,
        fingerprint: String,
        reason: String,
    },
    /// The host's jump host chain cannot be used as written.
    #[error("{target}: {reason}")]
    Jump { target: String, reason: String },
    /// The host's ProxyCommand could not be started, or ended (or broke)
    /// before SSH got through it.
    #[error("{target}: ProxyCommand `{command}` failed: {reason}")]
    ProxyCommand {
        target: String,
        command: String,
        reason: String,
    },
}

impl SshError {
    /// Whether trying again later might help: the host was unreachable or
    /// the connection broke. Host-key, login and configuration problems are
    /// not transient, nor is a name that does not resolve.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SshError::Connect { .. }
                | SshError::Dropped { .. }
                | SshError::Timeout { .. }
                | SshError::Io { .. }
        )
    }

    /// The SSH layer's view of this error, for `-v` and the JSON `detail`:
    /// which kind of failure it is with every field it carries (the
    /// identities tried, the known_hosts file and line, the setting that
    /// refused, the disconnect reason ...), whether it is retried and
    /// whether the host itself answered. Not terminal-safe: the report
    /// makes it so.
    pub fn detail(&self) -> String {
        let retried = if self.is_transient() {
            "transient (retried as --connect-retries allows)"
        } else {
            "not retried"
        };
        let reached = if self.reached_host() {
            "the host answered"
        } else {
            "the host did not answer"
        };
        one_line(format!("ssh: {self:?}; {retried}; {reached}"))
    }

    /// Whether the host itself answered with this: its key or a login was
    /// refused, or the files to check it against could not be used (not a
    /// transport that failed on the way to it).
    pub fn reached_host(&self) -> bool {
        matches!(
            self,
            SshError::HostKeyUnknown { .. }
                | SshError::HostKeyChanged { .. }
                | SshError::HostKeyRevoked { .. }
                | SshError::HostKeyCertAuthority { .. }
                | SshError::HostCertificate { .. }
                | SshError::KnownHosts { .. }
                | SshError::Auth { .. }
                | SshError::Identity { .. }
        )
    }
}

fn dropped_message(target: &str, tries: u32, said_max_startups: bool) -> String {
    let why = if said_max_startups {
        "its sshd said \"Exceeded MaxStartups\": too many logins were in progress at once"
    } else {
        "the way sshd drops logins past its MaxStartups (too many in progress at once), \
         or a firewall limiting connections"
    };
    format!(
        "{target} closed the connection before its SSH banner, {tries} times: {why}; swpush \
         starts at most {} logins at a time per address, fewer when dropped: raise MaxStartups \
         in the host's sshd_config, or lower --forks",
        pace::MAX_STARTING
    )
}

fn tried_list(tried: &[String]) -> String {
    if tried.is_empty() {
        "nothing: no identity_file, no ssh-agent (SSH_AUTH_SOCK unset or IdentityAgent none), \
         no ~/.ssh/id_ed25519, id_ecdsa or id_rsa"
            .to_owned()
    } else {
        tried.join(", ")
    }
}

fn note_suffix(note: &str) -> String {
    if note.is_empty() {
        String::new()
    } else {
        format!("; {note}")
    }
}

/// Our receive window: what the host may send before we acknowledge. Large,
/// so that output never stalls behind a round trip.
const WINDOW_SIZE: u32 = 16 * 1024 * 1024;

/// Largest packet we accept; russh warns above 65535 (one TCP segment).
const MAX_PACKET: u32 = 65535;

/// With no traffic for this long, ask the host whether it is alive ...
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// ... and give the connection up after this many unanswered asks.
const KEEPALIVE_MAX: usize = 3;

/// `address:port`, bracketing IPv6 addresses.
fn target_of(host: &Host) -> String {
    if host.address.contains(':') {
        format!("[{}]:{}", host.address, host.port)
    } else {
        format!("{}:{}", host.address, host.port)
    }
}

/// State shared by a connection, its handler task and its channels.
#[derive(Debug)]
struct Shared {
    target: String,
    /// Why the session ended, once it has.
    lost: Mutex<Option<String>>,
    /// The host key recorded in known_hosts by this connection
    /// (`--accept-new-host-keys`), as `TYPE SHA256:...`.
    learned_host_key: Mutex<Option<String>>,
}

impl Shared {
    fn lost_error(&self) -> SshError {
        let reason = self
            .lost
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or_else(|| "the connection closed".to_owned());
        SshError::Io {
            target: self.target.clone(),
            reason,
        }
    }

    /// Remembers, in words, why the session ended, for the errors of the
    /// channels and calls that follow.
    fn record_disconnect(&self, reason: &DisconnectReason<russh::Error>) {
        let text = match reason {
            DisconnectReason::ReceivedDisconnect(info) if info.message.is_empty() => {
                format!("the host disconnected ({:?})", info.reason_code)
            }
            DisconnectReason::ReceivedDisconnect(info) => {
                format!("the host disconnected: {}", one_line(&info.message))
            }
            DisconnectReason::Error(russh::Error::KeepaliveTimeout) => format!(
                "no answer to {KEEPALIVE_MAX} keepalives sent {}s apart",
                KEEPALIVE_INTERVAL.as_secs()
            ),
            DisconnectReason::Error(russh::Error::IO(e)) => describe_io(e),
            DisconnectReason::Error(e) => one_line(e),
        };
        *self.lost.lock().unwrap_or_else(PoisonError::into_inner) = Some(text);
    }
}

/// A broken socket in words: russh reports a closed one as "early eof".
fn describe_io(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => "the host closed the connection".to_owned(),
        io::ErrorKind::ConnectionReset => "the host reset the connection".to_owned(),
        _ => one_line(e),
    }
}

fn client_config(recorded: &[Algorithm], certificates: bool) -> client::Config {
    // AES-GCM first: with AES-NI it costs both ends less CPU per byte than
    // chacha20-poly1305 (OpenSSH's first choice); uploads measured 1.5-2x
    // faster. The host's sshd, not this side, is the bottleneck.
    let ciphers = [
        cipher::AES_128_GCM,
        cipher::AES_256_GCM,
        cipher::CHACHA20_POLY1305,
        cipher::AES_256_CTR,
        cipher::AES_192_CTR,
        cipher::AES_128_CTR,
    ];
    client::Config {
        inactivity_timeout: None,
        keepalive_interval: Some(KEEPALIVE_INTERVAL),
        keepalive_max: KEEPALIVE_MAX,
        window_size: WINDOW_SIZE,
        maximum_packet_size: MAX_PACKET,
        nodelay: true,
        preferred: russh::Preferred {
            key: host_key_preference(recorded).into(),
            host_key_certificates: if certificates {
                host_key_preference(recorded).into()
            } else {
                Vec::new().into()
            },
            cipher: ciphers.to_vec().into(),
            ..russh::Preferred::DEFAULT
        },
        ..client::Config::default()
    }
}

/// An authenticated SSH connection to one host.
pub struct Connection {
    handle: Handle<ClientHandler>,
    shared: Arc<Shared>,
    /// The jump hosts' sessions this one runs over, first hop first.
    jumps: Vec<Connection>,
    /// The ProxyCommand this one runs over, killed when it goes.
    proxy: Option<proxy::ProxyProcess>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("target", &self.shared.target)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// TCP connect, SSH handshake, host-key check and public-key login (its
    /// jump hosts' included), all within the connect timeout. Logins to one
    /// `address:port` are paced (`pace.rs`): the time spent waiting for a
    /// turn is not part of the connect timeout (it is of `--timeout`).
    pub async fn connect(host: &Host, options: &ConnectOptions) -> Result<Connection, SshError> {
        let target = target_of(host);
        if let Some(setting) = &host.refused {
            return Err(SshError::Unsupported {
                target,
                setting: setting.clone(),
            });
        }
        let limit = connect_timeout(host, options);
        let clock = pace::Clock::new();
        let attempt = connect_via(host, options, &target, &clock);
        tokio::pin!(attempt);
        loop {
            // Woken now and then while the attempt waits for its turn, which
            // does not count.
            let left = limit.saturating_sub(clock.connecting());
            let check = left.max(Duration::from_millis(20));
            if let Ok(result) = tokio::time::timeout(check, &mut attempt).await {
                return result;
            }
            if clock.connecting() >= limit {
                return Err(SshError::Timeout {
                    target: target.clone(),
                    timeout: limit,
                });
            }
        }
    }

    /// `address:port` of the host, as error messages name it.
    pub fn target(&self) -> &str {
        &self.shared.target
    }

    /// Opens a session channel and runs `command` with the remote user's
    /// login shell (as `shell -c command`), without a terminal. Several
    /// commands may run on one connection, each on its own channel.
    pub async fn exec(&self, command: &str) -> Result<RemoteProcess, SshError> {
        let channel = self
            .handle
            .channel_open_session()
            .await
            .map_err(|e| match e {
                russh::Error::ChannelOpenFailure(reason) => SshError::Channel {
                    target: self.shared.target.clone(),
                    reason: format!("cannot open a session: {reason:?}"),
                },
                _ if self.handle.is_closed() => self.shared.lost_error(),
                e => SshError::Channel {
                    target: self.shared.target.clone(),
                    reason: format!("cannot open a session: {}", one_line(e)),
                },
            })?;
        let (mut read, write) = channel.split();
        write
            .exec(true, command)
            .await
            .map_err(|_| self.shared.lost_error())?;
        // Hold back whatever arrives before the answer to the exec request.
        let mut pending = VecDeque::new();
        loop {
            match read.wait().await {
                Some(ChannelMsg::Success) => break,
                Some(ChannelMsg::Failure) => {
                    return Err(SshError::Channel {
                        target: self.shared.target.clone(),
                        reason: "the exec request was refused".into(),
                    });
                }
                Some(msg) => pending.push_back(msg),
                None => return Err(self.shared.lost_error()),
            }
        }
        Ok(RemoteProcess::new(
            read,
            pending,
            write,
            Arc::clone(&self.shared),
        ))
    }

    /// The host key this connection trusted on first use and recorded
    /// (`TYPE SHA256:...`), if it did.
    pub fn learned_host_key(&self) -> Option<String> {
        self.shared
            .learned_host_key
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Says goodbye to the host and ends the connection.
    pub async fn close(self) {
        // The connection is going away either way; a failed goodbye changes nothing.
        let _ = self
            .handle
            .disconnect(Disconnect::ByApplication, "", "en")
            .await;
        for jump in self.jumps.into_iter().rev() {
            Box::pin(jump.close()).await;
        }
        if let Some(proxy) = self.proxy {
            proxy.end().await;
        }
    }
}

/// Connects to the host as its `proxy` says: directly, through a
/// ProxyCommand, or through its jump hosts (one session per hop, each next
/// one over a direct-tcpip channel of the previous one).
async fn connect_via(
    host: &Host,
    options: &ConnectOptions,
    target: &str,
    clock: &pace::Clock,
) -> Result<Connection, SshError> {
    let hops = match &host.proxy {
        Proxy::Direct => return connect_and_login(host, options, target, clock).await,
        Proxy::Command(command) => {
            // Not paced: where the command connects is its own business.
            return proxy::connect_through(host, options, target, command).await;
        }
        Proxy::Jump(hops) => hops,
    };
    let mut jumps: Vec<Connection> = Vec::new();
    for (index, hop) in hops.iter().enumerate() {
        let named = if hop.name == hop.address {
            String::new()
        } else {
            format!(" {:?}", hop.name)
        };
        let hop_target = format!(
            "{} (jump host {}{named} of {target})",
            target_of(hop),
            index + 1
        );
        if let Some(setting) = &hop.refused {
            return Err(SshError::Unsupported {
                target: hop_target,
                setting: setting.clone(),
            });
        }
        let connection = match jumps.last() {
            // The first hop is reached as its own settings say.
            None => Box::pin(connect_via(hop, options, &hop_target, clock)).await?,
            Some(previous) => hop_over(previous, hop, options, &hop_target, clock).await?,
        };
        jumps.push(connection);
    }
    let mut connection = match jumps.last() {
        Some(last) => hop_over(last, host, options, target, clock).await?,
        None => connect_and_login(host, options, target, clock).await?,
    };
    connection.jumps = jumps;
    Ok(connection)
}

/// Connects to `host` through a direct-tcpip channel of the `previous`
/// hop's session.
async fn hop_over(
    previous: &Connection,
    host: &Host,
    options: &ConnectOptions,
    target: &str,
    clock: &pace::Clock,
) -> Result<Connection, SshError> {
    paced(host, target, clock, || async {
        let channel = previous
            .handle
            .channel_open_direct_tcpip(host.address.as_str(), u32::from(host.port), "127.0.0.1", 0)
            .await
            .map_err(|e| SshError::Connect {
                target: target.to_owned(),
                tried: Vec::new(),
                reason: format!(
                    "jump host {} could not open a connection to it: {}",
                    previous.shared.target,
                    match e {
                        russh::Error::ChannelOpenFailure(reason) => format!("{reason:?}"),
                        e => one_line(e),
                    }
                ),
            })?;
        handshake_and_login(host, options, target, channel.into_stream()).await
    })
    .await
}

/// Logs in to `host` with `attempt` (TCP connect or jump channel,
/// handshake and login) once the host's endpoint has room for another
/// login (`pace.rs`); a login the host dropped before its banner is tried
/// again after a short wait, up to [`pace::DROP_RETRIES`] times. The waits
/// are kept off `clock`.
async fn paced<F, Fut>(
    host: &Host,
    target: &str,
    clock: &pace::Clock,
    mut attempt: F,
) -> Result<Connection, SshError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Connection, SshError>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        let start = clock.waiting(pace::start(&target_of(host))).await;
        match attempt().await {
            Err(SshError::Dropped { .. }) if tries <= pace::DROP_RETRIES => {
                start.dropped();
                drop(start);
                clock
                    .waiting(tokio::time::sleep(pace::drop_backoff(tries)))
                    .await;
            }
            Err(SshError::Dropped {
                said_max_startups, ..
            }) => {
                start.dropped();
                return Err(SshError::Dropped {
                    target: target.to_owned(),
                    tries,
                    said_max_startups,
                });
            }
            tried => {
                if tried.is_ok() {
                    start.succeeded();
                }
                return tried;
            }
        }
    }
}

/// The limit for connecting to `host`, as ssh decides it: the command
/// line's `--connect-timeout` when given, else the host's `ConnectTimeout`
/// (never "none": the inventory reads `0`/`none` as unset), else swpush's
/// default.
pub fn connect_timeout(host: &Host, options: &ConnectOptions) -> Duration {
    match host.ssh.connect_timeout {
        Some(seconds) if !options.connect_timeout_given => Duration::from_secs(seconds),
        _ => options.connect_timeout,
    }
}

async fn connect_and_login(
    host: &Host,
    options: &ConnectOptions,
    target: &str,
    clock: &pace::Clock,
) -> Result<Connection, SshError> {
    let addresses: Vec<_> = tokio::net::lookup_host((host.address.as_str(), host.port))
        .await
        .map_err(|e| SshError::Resolve {
            target: target.to_owned(),
            reason: format!("cannot resolve {:?}: {}", host.address, one_line(e)),
        })?
        .collect();
    paced(host, target, clock, || async {
        let socket = open_tcp(host, addresses.clone())
            .await
            .map_err(|(reason, tried)| SshError::Connect {
                target: target.to_owned(),
                reason,
                tried,
            })?;
        handshake_and_login(host, options, target, socket).await
    })
    .await
}

/// SSH handshake, host-key check and login over an open byte stream.
pub(super) async fn handshake_and_login<S>(
    host: &Host,
    options: &ConnectOptions,
    target: &str,
    socket: S,
) -> Result<Connection, SshError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let connect_error = |reason: String| SshError::Connect {
        target: target.to_owned(),
        reason,
        tried: Vec::new(),
    };
    let policy = Arc::new(HostKeyPolicy::new(host, options, target));
    let (recorded, certificates) = handshake_preferences(&policy).await;

    let shared = Arc::new(Shared {
        target: target.to_owned(),
        lost: Mutex::new(None),
        learned_host_key: Mutex::new(None),
    });
    let verdict = Arc::new(Mutex::new(None));
    let handler = ClientHandler::new(policy, Arc::clone(&shared), Arc::clone(&verdict));
    let config = Arc::new(client_config(&recorded, certificates));
    let (socket, heard) = pace::Listened::new(socket);
    let handshake = client::connect_stream(config, socket, handler).await;
    let mut handle = match handshake {
        Ok(handle) => handle,
        Err(e) => {
            if let Some(error) = verdict
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
            {
                return Err(error);
            }
            let closed = matches!(e, russh::Error::IO(_) | russh::Error::Disconnect);
            let before = heard.before();
            if closed && before != pace::Before::Banner {
                return Err(SshError::Dropped {
                    target: target.to_owned(),
                    tries: 1,
                    said_max_startups: before == pace::Before::ExceededMaxStartups,
                });
            }
            return Err(match e {
                russh::Error::IO(io) => {
                    connect_error(format!("{} during the SSH handshake", describe_io(&io)))
                }
                russh::Error::Disconnect => {
                    connect_error("the host closed the connection during the SSH handshake".into())
                }
                e => SshError::Protocol {
                    target: target.to_owned(),
                    reason: one_line(e),
                },
            });
        }
    };
    Login::new(&mut handle, host, target).run(options).await?;
    Ok(Connection {
        handle,
        shared,
        jumps: Vec::new(),
        proxy: None,
    })
}

/// Connects to the first of the host's addresses that answers; else the
/// last error in words, and each address tried with the system's error.
async fn open_tcp(
    host: &Host,
    addresses: Vec<std::net::SocketAddr>,
) -> Result<tokio::net::TcpStream, (String, Vec<String>)> {
    let mut last_error = format!("{:?} resolves to no address", host.address);
    let mut tried = Vec::new();
    for address in addresses {
        match tokio::net::TcpStream::connect(address).await {
            Ok(socket) => {
                // Nagle would hold back small protocol messages.
                let _ = socket.set_nodelay(true);
                return Ok(socket);
            }
            Err(e) => {
                tried.push(format!("{address}: {}", one_line(&e)));
                last_error = match e.kind() {
                    io::ErrorKind::ConnectionRefused => {
                        format!(
                            "connection refused (is sshd listening on port {}?)",
                            host.port
                        )
                    }
                    io::ErrorKind::HostUnreachable => "no route to host".to_owned(),
                    io::ErrorKind::NetworkUnreachable => "network unreachable".to_owned(),
                    _ => one_line(e),
                };
            }
        }
    }
    Err((last_error, tried))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_auth_error_says_what_was_tried() {
        let error = |tried: &[&str], note: &str| SshError::Auth {
            user: "root".into(),
            target: "192.0.2.1:22".into(),
            tried: tried.iter().map(|t| t.to_string()).collect(),
            note: note.into(),
        };
        assert_eq!(
            error(&["ssh-agent (2 keys)", "/root/.ssh/id_ed25519"], "").to_string(),
            "no identity accepted for root@192.0.2.1:22 (tried ssh-agent (2 keys), \
             /root/.ssh/id_ed25519)"
        );
        assert!(
            error(&[], "")
                .to_string()
                .contains("tried nothing: no identity_file")
        );
        assert!(
            error(&["k"], "the host closed")
                .to_string()
                .ends_with("(tried k); the host closed")
        );
    }

    /// `-v`'s view names the kind of failure and every field, says whether
    /// it is retried and whether the host answered, on one line.
    #[test]
    fn the_detail_has_the_kind_every_field_and_the_class() {
        let unknown = SshError::HostKeyUnknown {
            target: "192.0.2.1:22".into(),
            key_type: "ssh-ed25519".into(),
            fingerprint: "SHA256:abc".into(),
            known_hosts: "/home/ops/.ssh/known_hosts".into(),
            setting: "StrictHostKeyChecking yes".into(),
        };
        assert_eq!(
            unknown.detail(),
            "ssh: HostKeyUnknown { target: \"192.0.2.1:22\", key_type: \"ssh-ed25519\", \
             fingerprint: \"SHA256:abc\", known_hosts: \"/home/ops/.ssh/known_hosts\", \
             setting: \"StrictHostKeyChecking yes\" }; not retried; the host answered"
        );
        let refused = SshError::Connect {
            target: "192.0.2.1:22".into(),
            tried: vec!["192.0.2.1:22: Connection refused (os error 111)".into()],
            reason: "refused\nby\tpolicy".into(),
        };
        let detail = refused.detail();
        assert!(
            detail.starts_with("ssh: Connect { target: \"192.0.2.1:22\", reason: "),
            "{detail}"
        );
        assert!(
            detail.ends_with(
                "; transient (retried as --connect-retries allows); the host did not answer"
            ),
            "{detail}"
        );
        assert!(!detail.contains(['\n', '\t']), "{detail}");
        assert!(
            detail.contains(r#"tried: ["192.0.2.1:22: Connection refused (os error 111)"]"#),
            "{detail}"
        );
    }

    /// A listener on loopback that closes every connection it accepts,
    /// first writing `say` (sshd past MaxStartups says `Exceeded
    /// MaxStartups`); the connections it took are counted.
    async fn dropping_listener(say: &'static [u8]) -> (u16, Arc<std::sync::atomic::AtomicU32>) {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let taken = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counted = Arc::clone(&taken);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let _ = socket.write_all(say).await;
            }
        });
        (port, taken)
    }

    fn options() -> ConnectOptions {
        ConnectOptions {
            known_hosts: None,
            accept_new_host_keys: false,
            connect_timeout: Duration::from_secs(10),
            home: None,
            connect_timeout_given: false,
        }
    }

    #[tokio::test]
    async fn a_login_dropped_before_the_banner_is_tried_again_then_named() {
        for (say, said_max_startups) in
            [(&b""[..], false), (&b"Exceeded MaxStartups\r\n"[..], true)]
        {
            let (port, taken) = dropping_listener(say).await;
            let host = Host::plain("web1", "127.0.0.1", port, "root");
            let error = Connection::connect(&host, &options()).await.unwrap_err();
            let tries = pace::DROP_RETRIES + 1;
            assert_eq!(
                error,
                SshError::Dropped {
                    target: format!("127.0.0.1:{port}"),
                    tries,
                    said_max_startups,
                }
            );
            assert_eq!(taken.load(std::sync::atomic::Ordering::Relaxed), tries);
            assert!(error.is_transient() && !error.reached_host());
            let message = error.to_string();
            assert!(
                message.contains(&format!("before its SSH banner, {tries} times"))
                    && message.contains("raise MaxStartups"),
                "{message}"
            );
            assert_eq!(
                message.contains("said \"Exceeded MaxStartups\""),
                said_max_startups
            );
        }
    }

    #[tokio::test]
    async fn a_host_that_answers_with_its_banner_is_not_taken_for_dropped() {
        let (port, taken) = dropping_listener(b"SSH-2.0-OpenSSH_9.2\r\n").await;
        let host = Host::plain("web1", "127.0.0.1", port, "root");
        let error = Connection::connect(&host, &options()).await.unwrap_err();
        assert!(
            matches!(error, SshError::Connect { .. } | SshError::Protocol { .. }),
            "{error:?}"
        );
        assert_eq!(taken.load(std::sync::atomic::Ordering::Relaxed), 1);
    }
}
