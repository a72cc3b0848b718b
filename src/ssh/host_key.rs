//! Host keys: the check of the key a host offers against the `known_hosts`
//! files OpenSSH would read for it (`UserKnownHostsFile`, or
//! `--known-hosts`, then `GlobalKnownHostsFile`; each file read by
//! `known_hosts.rs`), under the name OpenSSH looks up (`[address]:port`,
//! or `HostKeyAlias`), the recording of a new key as `StrictHostKeyChecking`
//! (or `--accept-new-host-keys`) allows, and the key types to ask for in
//! the handshake. A changed or revoked key is refused whatever the setting
//! says: swpush fails closed where `ssh` with `StrictHostKeyChecking no`
//! would go on. russh's connection callbacks live here because checking
//! the key is their main job; why a connection ended is worded in the
//! parent module.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use russh::client::{self, DisconnectReason};
use russh::keys::ssh_key::certificate::CertType;
use russh::keys::{Algorithm, Certificate, HashAlg, PublicKey, PublicKeyOrCertificate};

use super::known_hosts::{self, KnownHosts, Verdict};
use super::{ConnectOptions, Shared, SshError, one_line};
use crate::inventory::{Host, StrictHostKeyChecking};

/// Serialises reading and appending `known_hosts` in this process, so that
/// parallel connections that record new keys neither interleave writes nor
/// record the same host twice.
static KNOWN_HOSTS_LOCK: Mutex<()> = Mutex::new(());

/// How one host's key is checked: resolved once per connection from the
/// host's ssh settings and the command line.
#[derive(Debug, Clone)]
pub(super) struct HostKeyPolicy {
    /// The name `known_hosts` is searched and written for: the address on
    /// its port, or the `HostKeyAlias` alone (as port 22, which
    /// `known_hosts` writes without a port, as ssh looks an alias up).
    address: String,
    port: u16,
    /// `UserKnownHostsFile`s (or `--known-hosts`): read; the first is
    /// where a new key is recorded.
    user_files: Vec<PathBuf>,
    /// `GlobalKnownHostsFile`s: read, never written.
    global_files: Vec<PathBuf>,
    /// Record and trust a key no file lists.
    accept_new: bool,
    /// What decided `accept_new`, as messages name it.
    setting: String,
    target: String,
}

impl HostKeyPolicy {
    pub(super) fn new(host: &Host, options: &ConnectOptions, target: &str) -> HostKeyPolicy {
        let ssh = &host.ssh;
        let (address, port) = match &ssh.host_key_alias {
            Some(alias) => (alias.clone(), 22),
            None => (host.address.clone(), host.port),
        };
        let user_files = match &options.known_hosts {
            Some(path) => vec![path.clone()],
            None => ssh.user_known_hosts.clone(),
        };
        let mode = ssh.strict_host_key_checking;
        let (accept_new, setting) = if options.accept_new_host_keys {
            (true, "--accept-new-host-keys".to_owned())
        } else {
            let accept = matches!(
                mode,
                StrictHostKeyChecking::AcceptNew | StrictHostKeyChecking::No
            );
            let setting = match mode {
                StrictHostKeyChecking::Ask => "StrictHostKeyChecking ask, and swpush asks no one",
                StrictHostKeyChecking::Yes => "StrictHostKeyChecking yes",
                StrictHostKeyChecking::AcceptNew => "StrictHostKeyChecking accept-new",
                StrictHostKeyChecking::No => "StrictHostKeyChecking no",
            };
            (accept, setting.to_owned())
        };
        HostKeyPolicy {
            address,
            port,
            user_files,
            global_files: ssh.global_known_hosts.clone(),
            accept_new,
            setting,
            target: target.to_owned(),
        }
    }

    /// The file named first in messages: where a new key would be recorded.
    fn main_file(&self) -> PathBuf {
        self.user_files
            .first()
            .or(self.global_files.first())
            .cloned()
            .unwrap_or_else(|| PathBuf::from("known_hosts"))
    }

    /// The files read, as messages list them.
    fn files_read(&self) -> String {
        let files: Vec<String> = self
            .user_files
            .iter()
            .chain(&self.global_files)
            .map(|p| p.display().to_string())
            .collect();
        if files.is_empty() {
            "no known_hosts file (none configured)".to_owned()
        } else {
            files.join(", ")
        }
    }

    /// Every file, user's first; a file that cannot be read is an error
    /// naming it (a missing one is empty, as for OpenSSH).
    fn read_all(&self) -> Result<KnownHosts, SshError> {
        let mut known = KnownHosts::default();
        for path in self.user_files.iter().chain(&self.global_files) {
            let more = known_hosts::read(path).map_err(|e| SshError::KnownHosts {
                target: self.target.clone(),
                path: path.clone(),
                reason: format!("cannot read it: {}", one_line(e)),
            })?;
            known.extend(more);
        }
        Ok(known)
    }
}

/// Runs a blocking check of `policy` off the async threads; a check that
/// panicked is an error naming the files.
async fn blocking<T: Send + 'static>(
    policy: &Arc<HostKeyPolicy>,
    what: &'static str,
    check: impl FnOnce(&HostKeyPolicy) -> Result<T, SshError> + Send + 'static,
) -> Result<T, SshError> {
    let moved = Arc::clone(policy);
    tokio::task::spawn_blocking(move || check(&moved))
        .await
        .unwrap_or_else(|e| {
            Err(SshError::KnownHosts {
                target: policy.target.clone(),
                path: policy.main_file(),
                reason: format!("{what} failed: {e}"),
            })
        })
}

/// russh's callbacks for one connection: checks the host key and records why
/// it refused one (russh itself only reports "unknown key").
pub(super) struct ClientHandler {
    policy: Arc<HostKeyPolicy>,
    shared: Arc<Shared>,
    host_key_verdict: Arc<Mutex<Option<SshError>>>,
}

impl ClientHandler {
    /// The handler for a connection checking host keys by `policy`; a
    /// refused host key's error is left in `host_key_verdict`.
    pub(super) fn new(
        policy: Arc<HostKeyPolicy>,
        shared: Arc<Shared>,
        host_key_verdict: Arc<Mutex<Option<SshError>>>,
    ) -> Self {
        ClientHandler {
            policy,
            shared,
            host_key_verdict,
        }
    }

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
        let verdict = match server_public_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => {
                let key = key.clone();
                let learned = format!("{} {}", key.algorithm(), key.fingerprint(HashAlg::Sha256));
                blocking(&self.policy, "checking the host key", move |policy| {
                    policy.check_key(&key)
                })
                .await
                .map(|recorded| recorded.then_some(learned))
            }
            PublicKeyOrCertificate::Certificate(cert) => {
                let cert = cert.clone();
                blocking(&self.policy, "checking the host certificate", move |p| {
                    p.check_certificate(&cert)
                })
                .await
                .map(|()| None)
            }
        };
        match verdict {
            Ok(learned) => {
                if let Some(learned) = learned {
                    *self
                        .shared
                        .learned_host_key
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = Some(learned);
                }
                Ok(true)
            }
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
        self.shared.record_disconnect(&reason);
        match reason {
            DisconnectReason::ReceivedDisconnect(_) => Ok(()),
            DisconnectReason::Error(e) => Err(e),
        }
    }
}

impl HostKeyPolicy {
    /// Checks `key`; `Ok(true)` when it was unknown and has just been
    /// recorded. Blocking file I/O.
    fn check_key(&self, key: &PublicKey) -> Result<bool, SshError> {
        let _guard = KNOWN_HOSTS_LOCK
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // The machine's files count as much as the user's: their @revoked
        // lines and keys too.
        let known = self.read_all()?;
        let key_type = key.algorithm().to_string();
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        match known.check(&self.address, self.port, key) {
            Verdict::Known => Ok(false),
            Verdict::Revoked(at) => Err(SshError::HostKeyRevoked {
                target: self.target.clone(),
                key_type,
                fingerprint,
                known_hosts: at.file,
                line: at.line,
            }),
            // Other key types recorded count as changed too: we prefer
            // those in the handshake, so a host that no longer offers them
            // has changed its keys. Refuse rather than learn.
            Verdict::Changed(at) => Err(SshError::HostKeyChanged {
                target: self.target.clone(),
                key_type,
                fingerprint,
                known_hosts: at.file,
                line: at.line,
            }),
            // We asked for a certificate signed by that authority and the
            // host offered a plain key: learning it would bypass the
            // authority the operator set up.
            Verdict::CertAuthorityOnly(at) => Err(SshError::HostKeyCertAuthority {
                target: self.target.clone(),
                key_type,
                fingerprint,
                known_hosts: at.file,
                line: at.line,
            }),
            Verdict::Unknown if !self.accept_new => Err(SshError::HostKeyUnknown {
                target: self.target.clone(),
                key_type,
                fingerprint,
                known_hosts: self.main_file(),
                setting: self.setting.clone(),
            }),
            Verdict::Unknown => {
                let Some(path) = self.user_files.first() else {
                    return Err(SshError::KnownHosts {
                        target: self.target.clone(),
                        path: self.main_file(),
                        reason: format!(
                            "{} would record the new key {key_type} {fingerprint}, but \
                             UserKnownHostsFile names no file to record it in",
                            self.setting
                        ),
                    });
                };
                record_host_key(path, &self.address, self.port, key).map_err(|e| {
                    SshError::KnownHosts {
                        target: self.target.clone(),
                        path: path.clone(),
                        reason: format!("cannot record the key: {e}"),
                    }
                })?;
                Ok(true)
            }
        }
    }

    /// Checks a host certificate as OpenSSH's `check_host_cert` does: a
    /// host (not user) certificate, signed by an authority a
    /// `@cert-authority` line lists for this host, neither the authority
    /// nor the certified key `@revoked`, within its validity window, for
    /// this host name (the `HostKeyAlias` when there is one; an empty
    /// principal list is valid for any host, as OpenSSH has it), and with
    /// no critical options.
    fn check_certificate(&self, cert: &Certificate) -> Result<(), SshError> {
        let _guard = KNOWN_HOSTS_LOCK
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let known = self.read_all()?;
        let key = PublicKey::new(cert.public_key().clone(), "");
        let refuse = |reason: String| SshError::HostCertificate {
            target: self.target.clone(),
            key_type: key.algorithm().to_string(),
            fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
            reason,
        };
        let place = |at: &known_hosts::LineRef| format!("{}:{}", at.file.display(), at.line);
        if cert.cert_type() != CertType::Host {
            return Err(refuse(
                "it is a user certificate, not a host certificate".into(),
            ));
        }
        let ca = PublicKey::new(cert.signature_key().clone(), "");
        let ca_shown = format!("{} {}", ca.algorithm(), ca.fingerprint(HashAlg::Sha256));
        if let Some(at) = known.revoked(&self.address, self.port, &key) {
            return Err(refuse(format!("its key is @revoked at {}", place(&at))));
        }
        if let Some(at) = known.revoked(&self.address, self.port, &ca) {
            return Err(refuse(format!(
                "its authority {ca_shown} is @revoked at {}",
                place(&at)
            )));
        }
        let authorities = known.cert_authorities(&self.address, self.port);
        if !authorities
            .iter()
            .any(|(k, _)| k.key_data() == ca.key_data())
        {
            let listed = match authorities.first() {
                Some((_, at)) => format!("the @cert-authority line {} names another", place(at)),
                None => format!(
                    "no @cert-authority line for {} in {}",
                    known_hosts::host_port(&self.address, self.port),
                    self.files_read()
                ),
            };
            return Err(refuse(format!("it is signed by {ca_shown}, and {listed}")));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if now < cert.valid_after() {
            return Err(refuse(format!(
                "it is not valid before {} (now {now}, seconds since 1970)",
                cert.valid_after()
            )));
        }
        if now >= cert.valid_before() {
            return Err(refuse(format!(
                "it expired at {} (now {now}, seconds since 1970)",
                cert.valid_before()
            )));
        }
        let principals = cert.valid_principals();
        if !principals.is_empty() && !principals.contains(&self.address) {
            return Err(refuse(format!(
                "it is for {}, not for {}",
                principals.join(", "),
                self.address
            )));
        }
        if !cert.critical_options().is_empty() {
            return Err(refuse(
                "it has critical options, which host certificates do not define".into(),
            ));
        }
        let fingerprint = ca.fingerprint(HashAlg::Sha256);
        cert.validate_at(now, [&fingerprint])
            .map_err(|e| refuse(format!("its signature does not verify: {}", one_line(e))))
    }
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
    line += &format!(
        "{} {key}\n",
        known_hosts::host_port(&address.to_ascii_lowercase(), port)
    );
    file.write_all(line.as_bytes())
}

/// The types of the keys `known_hosts` records for the host, to ask for
/// first, and whether a `@cert-authority` line applies to it (then the
/// handshake asks for host certificates first, as OpenSSH does).
pub(super) async fn handshake_preferences(policy: &Arc<HostKeyPolicy>) -> (Vec<Algorithm>, bool) {
    // Errors here resurface, with their context, in the host-key check.
    blocking(policy, "reading known_hosts", |policy| {
        // For choices made before the check, which reports a file that
        // cannot be read.
        let known = policy.read_all().unwrap_or_default();
        Ok((
            known.key_types(&policy.address, policy.port),
            !known
                .cert_authorities(&policy.address, policy.port)
                .is_empty(),
        ))
    })
    .await
    .unwrap_or_default()
}

/// The host-key algorithms to ask for: those `known_hosts` already records
/// for this host first (as OpenSSH does), so a host with several keys
/// presents one we can check.
pub(super) fn host_key_preference(recorded: &[Algorithm]) -> Vec<Algorithm> {
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
        let known = known_hosts::read(&path).expect("read back");
        for (host, port) in [("web1", 22), ("192.0.2.7", 2222)] {
            assert_eq!(
                known.check(host, port, &key),
                Verdict::Known,
                "{host}:{port}"
            );
        }
        assert_eq!(known.check("192.0.2.7", 22, &key), Verdict::Unknown);
        if let Some(dir) = path.parent().and_then(Path::parent) {
            let _ = std::fs::remove_dir_all(dir);
        }
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
}
