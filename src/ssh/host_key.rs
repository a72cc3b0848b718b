//! Host keys: the check of the key a host offers against `known_hosts`, as
//! OpenSSH's `StrictHostKeyChecking=yes` (or `accept-new`) does it (the
//! file itself is read by `known_hosts.rs`, as OpenSSH reads it), the
//! recording of a new key, and the key types to ask for in the handshake.
//! russh's connection callbacks live here because checking the key is
//! their main job; why a connection ended is worded in the parent module.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use russh::client::{self, DisconnectReason};
use russh::keys::ssh_key::certificate::CertType;
use russh::keys::{Algorithm, Certificate, HashAlg, PublicKey, PublicKeyOrCertificate};

use super::known_hosts::{self, KnownHosts, Verdict};
use super::{ConnectOptions, Shared, SshError, one_line};
use crate::inventory::Host;

/// Serialises reading and appending `known_hosts` in this process, so that
/// parallel connections with `accept_new_host_keys` neither interleave
/// writes nor record the same host twice.
static KNOWN_HOSTS_LOCK: Mutex<()> = Mutex::new(());

/// russh's callbacks for one connection: checks the host key and records why
/// it refused one (russh itself only reports "unknown key").
pub(super) struct ClientHandler {
    address: String,
    port: u16,
    known_hosts: PathBuf,
    accept_new: bool,
    shared: Arc<Shared>,
    host_key_verdict: Arc<Mutex<Option<SshError>>>,
}

impl ClientHandler {
    /// The handler for a connection to `host`; a refused host key's error
    /// is left in `host_key_verdict`.
    pub(super) fn new(
        host: &Host,
        options: &ConnectOptions,
        shared: Arc<Shared>,
        host_key_verdict: Arc<Mutex<Option<SshError>>>,
    ) -> Self {
        ClientHandler {
            address: host.address.clone(),
            port: host.port,
            known_hosts: options.known_hosts.clone(),
            accept_new: options.accept_new_host_keys,
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
        let check = HostKeyCheck {
            address: self.address.clone(),
            port: self.port,
            known_hosts: self.known_hosts.clone(),
            accept_new: self.accept_new,
            target: self.shared.target.clone(),
        };
        let key = match server_public_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            PublicKeyOrCertificate::Certificate(cert) => {
                let cert = cert.clone();
                let verdict = tokio::task::spawn_blocking(move || check.certificate(&cert))
                    .await
                    .unwrap_or_else(|e| {
                        Err(SshError::KnownHosts {
                            target: self.shared.target.clone(),
                            path: self.known_hosts.clone(),
                            reason: format!("checking the host certificate failed: {e}"),
                        })
                    });
                return match verdict {
                    Ok(()) => Ok(true),
                    Err(error) => {
                        self.reject(error);
                        Ok(false)
                    }
                };
            }
        };
        let learned = format!("{} {}", key.algorithm(), key.fingerprint(HashAlg::Sha256));
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
            Ok(recorded) => {
                if recorded {
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

/// One host-key check against `known_hosts`; blocking file I/O.
struct HostKeyCheck {
    address: String,
    port: u16,
    known_hosts: PathBuf,
    accept_new: bool,
    target: String,
}

impl HostKeyCheck {
    /// Checks `key`; `Ok(true)` when it was unknown and has just been
    /// recorded (`accept_new`).
    fn run(&self, key: &PublicKey) -> Result<bool, SshError> {
        let _guard = KNOWN_HOSTS_LOCK
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let path = &self.known_hosts;
        // OpenSSH also reads the machine's files: their @revoked lines and
        // keys count as much as the user's.
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
                known_hosts: path.clone(),
            }),
            Verdict::Unknown => {
                record_host_key(path, &self.address, self.port, key)
                    .map_err(|e| self.file_error(format!("cannot record the key: {e}")))?;
                Ok(true)
            }
        }
    }

    /// Every `known_hosts` file OpenSSH reads: the user's, then the machine's.
    fn read_all(&self) -> Result<KnownHosts, SshError> {
        let mut known = known_hosts::read(&self.known_hosts)
            .map_err(|e| self.file_error(format!("cannot read it: {}", one_line(e))))?;
        for global in known_hosts::GLOBAL_FILES {
            let global = Path::new(global);
            let more = known_hosts::read(global).map_err(|e| SshError::KnownHosts {
                target: self.target.clone(),
                path: global.to_owned(),
                reason: format!("cannot read it: {}", one_line(e)),
            })?;
            known.extend(more);
        }
        Ok(known)
    }

    /// Checks a host certificate as OpenSSH's `check_host_cert` does: a
    /// host (not user) certificate, signed by an authority a
    /// `@cert-authority` line lists for this host, neither the authority
    /// nor the certified key `@revoked`, within its validity window, for
    /// this host name (an empty principal list is valid for any host, as
    /// OpenSSH has it), and with no critical options.
    fn certificate(&self, cert: &Certificate) -> Result<(), SshError> {
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
                    "no @cert-authority line for {} in {} or the machine's files",
                    known_hosts::host_port(&self.address, self.port),
                    self.known_hosts.display()
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

    fn file_error(&self, reason: String) -> SshError {
        SshError::KnownHosts {
            target: self.target.clone(),
            path: self.known_hosts.clone(),
            reason,
        }
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

/// The types of the keys `known_hosts` records for `host`, to ask for first.
pub(super) async fn recorded_key_types(host: &Host, known_hosts: &Path) -> Vec<Algorithm> {
    let (address, port, path) = (host.address.clone(), host.port, known_hosts.to_owned());
    // Errors here resurface, with their context, in the host-key check.
    tokio::task::spawn_blocking(move || {
        let mut known = known_hosts::read(&path).unwrap_or_default();
        for global in known_hosts::GLOBAL_FILES {
            known.extend(known_hosts::read(Path::new(global)).unwrap_or_default());
        }
        known.key_types(&address, port)
    })
    .await
    .unwrap_or_default()
}

/// Whether a `@cert-authority` line applies to `host`: then the handshake
/// asks for host certificates first, as OpenSSH does.
pub(super) async fn cert_authority_applies(host: &Host, known_hosts: &Path) -> bool {
    let (address, port, path) = (host.address.clone(), host.port, known_hosts.to_owned());
    // Errors here resurface, with their context, in the host-key check.
    tokio::task::spawn_blocking(move || {
        let mut known = known_hosts::read(&path).unwrap_or_default();
        for global in known_hosts::GLOBAL_FILES {
            known.extend(known_hosts::read(Path::new(global)).unwrap_or_default());
        }
        !known.cert_authorities(&address, port).is_empty()
    })
    .await
    .unwrap_or(false)
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
