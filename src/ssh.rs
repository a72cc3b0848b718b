//! One SSH connection to one host: TCP connect, handshake, host-key check
//! against `known_hosts`, public-key login, then one exec channel per run
//! whose stdin can be streamed while its output is read.
//!
//! Built on `russh`. Host keys are checked the way OpenSSH's
//! `StrictHostKeyChecking=yes` (or `accept-new` with
//! [`ConnectOptions::accept_new_host_keys`]) does: an unknown key is refused
//! or recorded, a changed key is always refused. Logins try, in order, the
//! host's `identity_file` alone, or else the ssh-agent's keys and then
//! `~/.ssh/id_ed25519`, `id_ecdsa`, `id_rsa`. This module knows nothing of
//! packages or the client step: it moves bytes and reports exit statuses.
//! Jump hosts, host certificates, passwords and passphrase prompts are not
//! supported.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use russh::client::{self, DisconnectReason, Handle};
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::known_hosts::known_host_keys_path;
use russh::keys::{
    Algorithm, HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate,
};
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Disconnect, Sig, cipher};
use tokio::io::AsyncReadExt;

use crate::inventory::Host;

/// How [`Connection::connect`] checks hosts and logs in.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// The `known_hosts` file host keys are checked against (and recorded in).
    pub known_hosts: PathBuf,
    /// Trust on first use: record the key of a host `known_hosts` does not
    /// list. A key that differs from a recorded one is refused regardless.
    pub accept_new_host_keys: bool,
    /// Limit for TCP connect, SSH handshake and login together.
    pub connect_timeout: Duration,
    /// The controller user's home, for the default `~/.ssh/id_*` identities.
    pub home: Option<PathBuf>,
}

/// Why a connection could not be made or was lost. Each message is one line
/// naming the host as `address:port` and what the operator can do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SshError {
    /// TCP connect failed (refused, no route, name not resolved) or the
    /// server closed the connection before the handshake finished.
    #[error("cannot connect to {target}: {reason}")]
    Connect { target: String, reason: String },
    /// The connect timeout elapsed before the login finished.
    #[error(
        "connecting to {target} timed out after {}s (TCP connect, SSH handshake and login)",
        .timeout.as_secs_f64()
    )]
    Timeout { target: String, timeout: Duration },
    /// The host offered a key that `known_hosts` does not list for it.
    #[error(
        "host key of {target} is not known: {key_type} {fingerprint} is not in {}; \
         check the fingerprint, then add the key to that file or use --accept-new-host-keys",
        .known_hosts.display()
    )]
    HostKeyUnknown {
        target: String,
        key_type: String,
        fingerprint: String,
        known_hosts: PathBuf,
    },
    /// The host offered a key other than the one `known_hosts` records.
    #[error(
        "HOST KEY OF {target} HAS CHANGED: it offers {key_type} {fingerprint}, but {}:{line} \
         records another key; this may be an attack (man in the middle). If the change is \
         expected, remove that line and connect again",
        .known_hosts.display()
    )]
    HostKeyChanged {
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
    /// The host names a jump host; connecting directly instead is not an option.
    #[error("{target} is reached through proxy_jump {jump}, which swpush does not support yet")]
    ProxyJumpUnsupported { target: String, jump: String },
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
}

impl SshError {
    /// Whether trying again later might help: the host was unreachable or
    /// the connection broke. Host-key, login and configuration problems are
    /// not transient.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SshError::Connect { .. } | SshError::Timeout { .. } | SshError::Io { .. }
        )
    }
}

fn tried_list(tried: &[String]) -> String {
    if tried.is_empty() {
        "nothing: no identity_file, no ssh-agent (SSH_AUTH_SOCK unset), \
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

/// Error text on one line, whatever a library put in it.
fn one_line(text: impl fmt::Display) -> String {
    text.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Bytes per read of [`Stdin::send_file`]. russh cuts them into packets of
/// the server's maximum size without copying; larger reads gain nothing.
const FILE_CHUNK: usize = 256 * 1024;

/// Our receive window: what the host may send before we acknowledge. Large,
/// so that output never stalls behind a round trip.
const WINDOW_SIZE: u32 = 16 * 1024 * 1024;

/// Largest packet we accept; russh warns above 65535 (one TCP segment).
const MAX_PACKET: u32 = 65535;

/// With no traffic for this long, ask the host whether it is alive ...
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// ... and give the connection up after this many unanswered asks.
const KEEPALIVE_MAX: usize = 3;

/// Default identity files under `~/.ssh`, in OpenSSH's order.
const DEFAULT_IDENTITIES: [&str; 3] = ["id_ed25519", "id_ecdsa", "id_rsa"];

/// Serialises reading and appending `known_hosts` in this process, so that
/// parallel connections with `accept_new_host_keys` neither interleave
/// writes nor record the same host twice.
static KNOWN_HOSTS_LOCK: Mutex<()> = Mutex::new(());

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
}

/// russh's callbacks for one connection: checks the host key and records why
/// it refused one (russh itself only reports "unknown key").
struct ClientHandler {
    address: String,
    port: u16,
    known_hosts: PathBuf,
    accept_new: bool,
    shared: Arc<Shared>,
    host_key_verdict: Arc<Mutex<Option<SshError>>>,
}

impl ClientHandler {
    fn reject(&self, error: SshError) {
        *self
            .host_key_verdict
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(error);
    }
}

impl client::Handler for ClientHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = match server_public_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            PublicKeyOrCertificate::Certificate(_) => {
                self.reject(SshError::Protocol {
                    target: self.shared.target.clone(),
                    reason: "the host presented a host certificate, which is not supported".into(),
                });
                return Ok(false);
            }
        };
        let check = HostKeyCheck {
            address: self.address.clone(),
            port: self.port,
            known_hosts: self.known_hosts.clone(),
            accept_new: self.accept_new,
            target: self.shared.target.clone(),
        };
        let verdict = tokio::task::spawn_blocking(move || check.run(&key))
            .await
            .unwrap_or_else(|e| {
                Err(SshError::KnownHosts {
                    target: self.shared.target.clone(),
                    path: self.known_hosts.clone(),
                    reason: format!("checking the host key failed: {e}"),
                })
            });
        match verdict {
            Ok(()) => Ok(true),
            Err(error) => {
                self.reject(error);
                Ok(false)
            }
        }
    }

    async fn disconnected(
        &mut self,
        reason: DisconnectReason<Self::Error>,
    ) -> Result<(), Self::Error> {
        let text = match &reason {
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
        *self
            .shared
            .lost
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(text);
        match reason {
            DisconnectReason::ReceivedDisconnect(_) => Ok(()),
            DisconnectReason::Error(e) => Err(e),
        }
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

/// One host-key check against `known_hosts`; blocking file I/O.
struct HostKeyCheck {
    address: String,
    port: u16,
    known_hosts: PathBuf,
    accept_new: bool,
    target: String,
}

impl HostKeyCheck {
    fn run(&self, key: &PublicKey) -> Result<(), SshError> {
        let _guard = KNOWN_HOSTS_LOCK
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let path = &self.known_hosts;
        // russh treats an unreadable file as empty; only a missing one is.
        if let Err(e) = std::fs::File::open(path)
            && e.kind() != io::ErrorKind::NotFound
        {
            return Err(self.file_error(format!("cannot read it: {e}")));
        }
        let changed = |line: usize| SshError::HostKeyChanged {
            target: self.target.clone(),
            key_type: key.algorithm().to_string(),
            fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
            known_hosts: path.clone(),
            line: real_line_number(path, line),
        };
        match russh::keys::check_known_hosts_path(&self.address, self.port, key, path) {
            Ok(true) => Ok(()),
            Err(russh::keys::Error::KeyChanged { line }) => Err(changed(line)),
            Err(e) => Err(self.file_error(one_line(e))),
            Ok(false) => {
                // Only keys of other types are recorded. We prefer those in
                // the handshake, so a host that no longer offers them has
                // changed its keys: refuse rather than learn.
                let recorded = known_host_keys_path(&self.address, self.port, path)
                    .map_err(|e| self.file_error(one_line(e)))?;
                if let Some((line, _)) = recorded.first() {
                    return Err(changed(*line));
                }
                if !self.accept_new {
                    return Err(SshError::HostKeyUnknown {
                        target: self.target.clone(),
                        key_type: key.algorithm().to_string(),
                        fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
                        known_hosts: path.clone(),
                    });
                }
                record_host_key(path, &self.address, self.port, key)
                    .map_err(|e| self.file_error(format!("cannot record the key: {e}")))
            }
        }
    }

    fn file_error(&self, reason: String) -> SshError {
        SshError::KnownHosts {
            target: self.target.clone(),
            path: self.known_hosts.clone(),
            reason,
        }
    }
}

/// russh numbers `known_hosts` lines skipping comment lines; an operator
/// needs the line an editor shows.
fn real_line_number(path: &Path, russh_line: usize) -> usize {
    let Ok(text) = std::fs::read(path) else {
        return russh_line;
    };
    let mut counted = 0;
    for (index, line) in text.split(|&b| b == b'\n').enumerate() {
        if line.first() != Some(&b'#') {
            counted += 1;
            if counted == russh_line {
                return index + 1;
            }
        }
    }
    russh_line
}

/// Appends `host`'s key to `known_hosts` in OpenSSH's form, creating the
/// file (mode 0600) and missing parent directories (mode 0700) as OpenSSH
/// does. Not russh's `learn_known_hosts_path`: that creates the file with
/// the umask's mode and starts an empty file with a blank line.
fn record_host_key(path: &Path, address: &str, port: u16, key: &PublicKey) -> io::Result<()> {
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
        && !parent.exists()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    let key = key.to_openssh().map_err(io::Error::other)?;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    let mut line = String::new();
    let size = file.seek(SeekFrom::End(0))?;
    if size > 0 {
        let mut last = [0];
        file.seek(SeekFrom::End(-1))?;
        file.read_exact(&mut last)?;
        if last[0] != b'\n' {
            line.push('\n');
        }
    }
    if port == 22 {
        line += &format!("{address} {key}\n");
    } else {
        line += &format!("[{address}]:{port} {key}\n");
    }
    file.write_all(line.as_bytes())
}

/// The host-key algorithms to ask for: those `known_hosts` already records
/// for this host first (as OpenSSH does), so a host with several keys
/// presents one we can check.
fn host_key_preference(recorded: &[Algorithm]) -> Vec<Algorithm> {
    let same_family = |a: &Algorithm, b: &Algorithm| {
        a == b || (matches!(a, Algorithm::Rsa { .. }) && matches!(b, Algorithm::Rsa { .. }))
    };
    let defaults = russh::Preferred::DEFAULT.key;
    let (mut known, others): (Vec<Algorithm>, Vec<Algorithm>) = defaults
        .iter()
        .cloned()
        .partition(|a| recorded.iter().any(|r| same_family(a, r)));
    known.extend(others);
    known
}

fn client_config(recorded: &[Algorithm]) -> client::Config {
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
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("target", &self.shared.target)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// TCP connect, SSH handshake, host-key check and public-key login, all
    /// within `options.connect_timeout`.
    pub async fn connect(host: &Host, options: &ConnectOptions) -> Result<Connection, SshError> {
        let target = target_of(host);
        if let Some(jump) = &host.proxy_jump {
            return Err(SshError::ProxyJumpUnsupported {
                target,
                jump: jump.clone(),
            });
        }
        let attempt = connect_and_login(host, options, &target);
        match tokio::time::timeout(options.connect_timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(SshError::Timeout {
                target,
                timeout: options.connect_timeout,
            }),
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
        Ok(RemoteProcess {
            read,
            pending,
            stdin: Stdin {
                write: Arc::new(write),
                shared: Arc::clone(&self.shared),
                sent: Arc::new(AtomicU64::new(0)),
            },
            shared: Arc::clone(&self.shared),
            done: false,
        })
    }

    /// Says goodbye to the host and ends the connection.
    pub async fn close(self) {
        // The connection is going away either way; a failed goodbye changes nothing.
        let _ = self
            .handle
            .disconnect(Disconnect::ByApplication, "", "en")
            .await;
    }
}

async fn connect_and_login(
    host: &Host,
    options: &ConnectOptions,
    target: &str,
) -> Result<Connection, SshError> {
    let connect_error = |reason: String| SshError::Connect {
        target: target.to_owned(),
        reason,
    };
    let socket = open_tcp(host).await.map_err(connect_error)?;

    let recorded = {
        let (address, port, path) = (host.address.clone(), host.port, options.known_hosts.clone());
        // Errors here resurface, with their context, in the host-key check.
        tokio::task::spawn_blocking(move || known_host_keys_path(&address, port, &path))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default()
    };
    let recorded: Vec<Algorithm> = recorded.iter().map(|(_, k)| k.algorithm()).collect();

    let shared = Arc::new(Shared {
        target: target.to_owned(),
        lost: Mutex::new(None),
    });
    let verdict = Arc::new(Mutex::new(None));
    let handler = ClientHandler {
        address: host.address.clone(),
        port: host.port,
        known_hosts: options.known_hosts.clone(),
        accept_new: options.accept_new_host_keys,
        shared: Arc::clone(&shared),
        host_key_verdict: Arc::clone(&verdict),
    };
    let config = Arc::new(client_config(&recorded));
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
    Ok(Connection { handle, shared })
}

/// Resolves the host's address and connects to the first address that answers.
async fn open_tcp(host: &Host) -> Result<tokio::net::TcpStream, String> {
    let addresses: Vec<_> = tokio::net::lookup_host((host.address.as_str(), host.port))
        .await
        .map_err(|e| format!("cannot resolve {:?}: {}", host.address, one_line(e)))?
        .collect();
    let mut last_error = format!("{:?} resolves to no address", host.address);
    for address in addresses {
        match tokio::net::TcpStream::connect(address).await {
            Ok(socket) => {
                // Nagle would hold back small protocol messages.
                let _ = socket.set_nodelay(true);
                return Ok(socket);
            }
            Err(e) => {
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
    Err(last_error)
}

/// A private key read from disk, or why it cannot be used.
enum IdentityFile {
    Key(Box<PrivateKey>),
    /// Passphrase-protected; only the public half is readable.
    Encrypted(PublicKey),
    Unusable(String),
}

/// Longest private key file we read; real keys are a few KiB.
const MAX_KEY_FILE: u64 = 1024 * 1024;

async fn read_identity(path: &Path) -> IdentityFile {
    let text = match tokio::fs::metadata(path).await {
        Ok(m) if m.len() > MAX_KEY_FILE => {
            return IdentityFile::Unusable("too large to be a private key".into());
        }
        Ok(_) => tokio::fs::read_to_string(path).await,
        Err(e) => Err(e),
    };
    let text = match text {
        Ok(text) => text,
        Err(e) => return IdentityFile::Unusable(format!("cannot read it: {}", one_line(e))),
    };
    if let Ok(key) = PrivateKey::from_openssh(text.as_bytes())
        && key.is_encrypted()
    {
        return IdentityFile::Encrypted(key.public_key().clone());
    }
    match russh::keys::decode_secret_key(&text, None) {
        Ok(key) => IdentityFile::Key(Box::new(key)),
        Err(russh::keys::Error::KeyIsEncrypted) => IdentityFile::Unusable(
            "it is passphrase-protected; swpush cannot ask for passphrases: \
             add it to ssh-agent (ssh-add)"
                .into(),
        ),
        Err(e) => IdentityFile::Unusable(format!("not a usable private key: {}", one_line(e))),
    }
}

/// Connection to the ssh-agent named by `SSH_AUTH_SOCK`, if any.
type Agent = AgentClient<tokio::net::UnixStream>;

/// One login attempt: offers identities in order and remembers what it offered.
struct Login<'a> {
    handle: &'a mut Handle<ClientHandler>,
    user: String,
    target: String,
    identity_file: Option<PathBuf>,
    tried: Vec<String>,
    /// Keys already offered, so a default file the agent also holds is not offered twice.
    offered: Vec<PublicKey>,
    rsa_hash: Option<Option<HashAlg>>,
}

impl<'a> Login<'a> {
    fn new(handle: &'a mut Handle<ClientHandler>, host: &Host, target: &str) -> Self {
        Login {
            handle,
            user: host.user.clone(),
            target: target.to_owned(),
            identity_file: host.identity_file.clone(),
            tried: Vec::new(),
            offered: Vec::new(),
            rsa_hash: None,
        }
    }

    async fn run(mut self, options: &ConnectOptions) -> Result<(), SshError> {
        if let Some(path) = self.identity_file.clone() {
            return self.with_identity_file(&path).await;
        }
        if self.with_agent().await? {
            return Ok(());
        }
        let Some(home) = &options.home else {
            return Err(self.failed(String::new()));
        };
        for name in DEFAULT_IDENTITIES {
            let path = home.join(".ssh").join(name);
            if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
                continue;
            }
            let shown = path.display().to_string();
            match read_identity(&path).await {
                IdentityFile::Key(key) => {
                    if self.offered.contains(key.public_key()) {
                        continue;
                    }
                    self.tried.push(shown);
                    if self.offer_key(key).await? {
                        return Ok(());
                    }
                }
                IdentityFile::Encrypted(_) => {
                    self.tried
                        .push(format!("{shown} (passphrase-protected, skipped)"));
                }
                IdentityFile::Unusable(reason) => {
                    self.tried.push(format!("{shown} ({reason})"));
                }
            }
        }
        Err(self.failed(String::new()))
    }

    /// The host's own `identity_file`: that key and nothing else.
    async fn with_identity_file(mut self, path: &Path) -> Result<(), SshError> {
        let unusable = |reason: String| SshError::Identity {
            target: self.target.clone(),
            path: path.to_owned(),
            reason,
        };
        match read_identity(path).await {
            IdentityFile::Unusable(reason) => Err(unusable(reason)),
            IdentityFile::Encrypted(public) => {
                // Like OpenSSH, sign with the agent if it holds this key.
                let in_agent = match connect_agent(&*self.handle).await {
                    Some(Ok(mut agent)) => {
                        let ids = agent.request_identities().await.unwrap_or_default();
                        match ids.into_iter().find(|id| *id.public_key() == public) {
                            Some(AgentIdentity::PublicKey { key, .. }) => Some((agent, key)),
                            _ => None,
                        }
                    }
                    _ => None,
                };
                let Some((mut agent, key)) = in_agent else {
                    return Err(unusable(
                        "it is passphrase-protected and not in ssh-agent; swpush cannot ask \
                         for passphrases: add it to the agent (ssh-add)"
                            .into(),
                    ));
                };
                self.tried
                    .push(format!("{} (via ssh-agent)", path.display()));
                if self.offer_agent_key(&mut agent, key).await? {
                    return Ok(());
                }
                Err(self.failed(String::new()))
            }
            IdentityFile::Key(key) => {
                self.tried.push(path.display().to_string());
                if self.offer_key(key).await? {
                    return Ok(());
                }
                Err(self.failed(String::new()))
            }
        }
    }

    /// Every key the agent holds, if `SSH_AUTH_SOCK` names one.
    async fn with_agent(&mut self) -> Result<bool, SshError> {
        let mut agent = match connect_agent(&*self.handle).await {
            None => return Ok(false),
            Some(Err(reason)) => {
                self.tried.push(format!("ssh-agent ({reason})"));
                return Ok(false);
            }
            Some(Ok(agent)) => agent,
        };
        let identities = match agent.request_identities().await {
            Ok(ids) => ids,
            Err(e) => {
                self.tried.push(format!("ssh-agent ({})", one_line(e)));
                return Ok(false);
            }
        };
        let keys: Vec<PublicKey> = identities
            .into_iter()
            .filter_map(|id| match id {
                AgentIdentity::PublicKey { key, .. } => Some(key),
                AgentIdentity::Certificate { .. } => None,
            })
            .collect();
        self.tried.push(match keys.len() {
            1 => "ssh-agent (1 key)".to_owned(),
            n => format!("ssh-agent ({n} keys)"),
        });
        for key in keys {
            if self.offer_agent_key(&mut agent, key).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn offer_key(&mut self, key: Box<PrivateKey>) -> Result<bool, SshError> {
        self.offered.push(key.public_key().clone());
        let hash = self.rsa_hash(key.algorithm().is_rsa()).await;
        let key = PrivateKeyWithHashAlg::new(Arc::from(key), hash);
        match self
            .handle
            .authenticate_publickey(self.user.clone(), key)
            .await
        {
            Ok(result) => Ok(result.success()),
            Err(e) => Err(self.broken(one_line(e))),
        }
    }

    async fn offer_agent_key(
        &mut self,
        agent: &mut Agent,
        key: PublicKey,
    ) -> Result<bool, SshError> {
        self.offered.push(key.clone());
        let hash = self.rsa_hash(key.algorithm().is_rsa()).await;
        let result = self
            .handle
            .authenticate_publickey_with(self.user.clone(), key, hash, agent)
            .await;
        match result {
            Ok(result) => Ok(result.success()),
            // The agent would not sign (locked, key removed): the handle is
            // still usable, so go on with the next key.
            Err(_) if !self.handle.is_closed() => Ok(false),
            Err(e) => Err(self.broken(one_line(e))),
        }
    }

    /// The signature hash to use with an RSA key: the best the server takes.
    async fn rsa_hash(&mut self, is_rsa: bool) -> Option<HashAlg> {
        if !is_rsa {
            return None;
        }
        if self.rsa_hash.is_none() {
            let best = self.handle.best_supported_rsa_hash().await;
            self.rsa_hash = Some(best.ok().flatten().flatten());
        }
        self.rsa_hash.flatten()
    }

    /// A failure during login: the server closing the connection (OpenSSH
    /// does after `MaxAuthTries` keys) still reads as a login failure.
    fn broken(&mut self, reason: String) -> SshError {
        let note = if self.handle.is_closed() {
            "the host then closed the connection (too many keys offered? set identity_file)"
                .to_owned()
        } else {
            format!("login failed: {reason}")
        };
        self.failed(note)
    }

    fn failed(&mut self, note: String) -> SshError {
        SshError::Auth {
            user: self.user.clone(),
            target: self.target.clone(),
            tried: std::mem::take(&mut self.tried),
            note,
        }
    }
}

/// Connects to the agent in `SSH_AUTH_SOCK`: `None` when unset, the reason
/// when it cannot be reached.
async fn connect_agent(handle: &Handle<ClientHandler>) -> Option<Result<Agent, String>> {
    std::env::var_os("SSH_AUTH_SOCK").filter(|s| !s.is_empty())?;
    let mut agent = match AgentClient::connect_env().await {
        Ok(agent) => agent,
        Err(e) => return Some(Err(format!("unreachable: {}", one_line(e)))),
    };
    if let Some(binding) = handle.agent_session_binding() {
        // Agents before OpenSSH 8.9 do not know session binding; they then
        // sign without it, which is what they always did.
        let _ = agent.bind_session(binding, false).await;
    }
    Some(Ok(agent))
}

/// What a running remote command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Bytes the command wrote to stdout.
    Stdout(Vec<u8>),
    /// Bytes the command wrote to stderr.
    Stderr(Vec<u8>),
    /// The command exited with this status.
    Exit(u32),
    /// The command was killed by a signal (`TERM`, `KILL`, ...).
    Signal {
        name: String,
        core_dumped: bool,
        message: String,
    },
    /// The command closed its output; an exit status usually follows.
    Eof,
    /// The connection broke before the host closed the channel.
    Lost(SshError),
}

/// A command running on the host, with its stdin open.
pub struct RemoteProcess {
    read: ChannelReadHalf,
    /// Messages that arrived while [`Connection::exec`] waited for its answer.
    pending: VecDeque<ChannelMsg>,
    stdin: Stdin,
    shared: Arc<Shared>,
    done: bool,
}

impl fmt::Debug for RemoteProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteProcess")
            .field("target", &self.shared.target)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl RemoteProcess {
    /// The next thing the command did; `None` once the host closed the
    /// channel (after [`Event::Lost`] if the connection broke instead).
    pub async fn next_event(&mut self) -> Option<Event> {
        while !self.done {
            let msg = match self.pending.pop_front() {
                Some(msg) => Some(msg),
                None => self.read.wait().await,
            };
            let event = match msg {
                Some(ChannelMsg::Data { data }) => Event::Stdout(data.into()),
                Some(ChannelMsg::ExtendedData { data, ext: 1 }) => Event::Stderr(data.into()),
                Some(ChannelMsg::ExitStatus { exit_status }) => Event::Exit(exit_status),
                Some(ChannelMsg::ExitSignal {
                    signal_name,
                    core_dumped,
                    error_message,
                    ..
                }) => Event::Signal {
                    name: signal_name_of(&signal_name),
                    core_dumped,
                    message: error_message,
                },
                Some(ChannelMsg::Eof) => Event::Eof,
                Some(ChannelMsg::Close) => {
                    self.done = true;
                    return None;
                }
                Some(_) => continue,
                None => {
                    self.done = true;
                    Event::Lost(self.shared.lost_error())
                }
            };
            return Some(event);
        }
        None
    }

    /// The command's stdin; clone it to write from another task while this
    /// one reads events.
    pub fn stdin(&self) -> Stdin {
        self.stdin.clone()
    }
}

fn signal_name_of(sig: &Sig) -> String {
    let name = match sig {
        Sig::ABRT => "ABRT",
        Sig::ALRM => "ALRM",
        Sig::FPE => "FPE",
        Sig::HUP => "HUP",
        Sig::ILL => "ILL",
        Sig::INT => "INT",
        Sig::KILL => "KILL",
        Sig::PIPE => "PIPE",
        Sig::QUIT => "QUIT",
        Sig::SEGV => "SEGV",
        Sig::TERM => "TERM",
        Sig::USR1 => "USR1",
        Sig::Custom(name) => name,
    };
    name.to_owned()
}

/// The writing end of a [`RemoteProcess`]'s stdin. Clones share the channel
/// and the count of bytes sent.
#[derive(Clone)]
pub struct Stdin {
    write: Arc<ChannelWriteHalf<client::Msg>>,
    shared: Arc<Shared>,
    sent: Arc<AtomicU64>,
}

impl fmt::Debug for Stdin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stdin")
            .field("target", &self.shared.target)
            .field("sent", &self.bytes_sent())
            .finish_non_exhaustive()
    }
}

impl Stdin {
    /// Writes `data`; returns once the host's window took all of it.
    pub async fn send(&self, data: &[u8]) -> Result<(), SshError> {
        self.send_owned(data.to_vec()).await
    }

    async fn send_owned(&self, data: Vec<u8>) -> Result<(), SshError> {
        let len = data.len() as u64;
        self.write
            .data_bytes(data)
            .await
            .map_err(|_| self.shared.lost_error())?;
        self.sent.fetch_add(len, Ordering::Relaxed);
        Ok(())
    }

    /// Streams the first `len` bytes of the file at `path` in fixed-size
    /// chunks; a file shorter than `len` is an error (it changed since its
    /// size was taken). Returns the bytes sent.
    pub async fn send_file(&self, path: &Path, len: u64) -> Result<u64, SshError> {
        let local = |reason: String| SshError::LocalFile {
            target: self.shared.target.clone(),
            path: path.to_owned(),
            reason,
        };
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|e| local(one_line(e)))?;
        let mut remaining = len;
        while remaining > 0 {
            let size = remaining.min(FILE_CHUNK as u64) as usize;
            let mut chunk = vec![0; size];
            file.read_exact(&mut chunk).await.map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    local(format!(
                        "it is shorter than the {len} bytes expected (changed?)"
                    ))
                } else {
                    local(one_line(e))
                }
            })?;
            self.send_owned(chunk).await?;
            remaining -= size as u64;
        }
        Ok(len)
    }

    /// Closes stdin: the command reads end-of-file.
    pub async fn eof(&self) -> Result<(), SshError> {
        self.write.eof().await.map_err(|_| self.shared.lost_error())
    }

    /// Bytes written so far through this stdin and its clones.
    pub fn bytes_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";

    fn scratch_file(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("swpush-ssh-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("sub").join("known_hosts")
    }

    #[test]
    fn recorded_keys_use_openssh_host_forms_and_are_found_again() {
        let key = PublicKey::from_openssh(KEY).expect("test key");
        let path = scratch_file("record");
        record_host_key(&path, "web1", 22, &key).expect("record port 22");
        std::fs::write(
            &path,
            std::fs::read_to_string(&path).expect("read").trim_end(),
        )
        .expect("drop the final newline");
        record_host_key(&path, "192.0.2.7", 2222, &key).expect("record port 2222");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text, format!("web1 {KEY}\n[192.0.2.7]:2222 {KEY}\n"));
        for (host, port) in [("web1", 22), ("192.0.2.7", 2222)] {
            assert_eq!(
                russh::keys::check_known_hosts_path(host, port, &key, &path).ok(),
                Some(true),
                "{host}:{port}"
            );
        }
        let unknown = russh::keys::check_known_hosts_path("web1", 2222, &key, &path);
        assert_eq!(unknown.ok(), Some(false));
        if let Some(dir) = path.parent().and_then(Path::parent) {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    #[test]
    fn line_numbers_count_comment_lines() {
        let path = scratch_file("lines");
        let parent = path.parent().expect("parent");
        std::fs::create_dir_all(parent).expect("mkdir");
        std::fs::write(&path, "# one\na x y\n# three\n\nb x y\n").expect("write");
        // russh's numbering skips comments: its 1st line is a, its 3rd is b.
        assert_eq!(real_line_number(&path, 1), 2);
        assert_eq!(real_line_number(&path, 3), 5);
        assert_eq!(real_line_number(&path, 9), 9);
        let _ = std::fs::remove_dir_all(parent.parent().expect("dir"));
    }

    #[test]
    fn recorded_key_types_are_asked_for_first() {
        let rsa = Algorithm::Rsa { hash: None };
        let order = host_key_preference(std::slice::from_ref(&rsa));
        assert!(matches!(order[0], Algorithm::Rsa { .. }), "{order:?}");
        assert!(order.contains(&Algorithm::Ed25519));
        assert_eq!(
            host_key_preference(&[]),
            russh::Preferred::DEFAULT.key.to_vec()
        );
    }

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
}
