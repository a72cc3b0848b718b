//! Public-key login: the host's `identity_file` alone (its `-cert.pub`
//! certificate first when there is one; signed by ssh-agent
//! when it is passphrase-protected), or else every key the ssh-agent holds
//! and then the default `~/.ssh/id_*` files. Remembers what it offered, so
//! a refusal can say so. Passwords and passphrase prompts are not supported.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::client::Handle;
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::{Certificate, HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey};

use super::host_key::ClientHandler;
use super::{ConnectOptions, SshError, one_line};
use crate::inventory::Host;

/// Default identity files under `~/.ssh`, in OpenSSH's order.
const DEFAULT_IDENTITIES: [&str; 3] = ["id_ed25519", "id_ecdsa", "id_rsa"];

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
pub(super) struct Login<'a> {
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
    pub(super) fn new(handle: &'a mut Handle<ClientHandler>, host: &Host, target: &str) -> Self {
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

    pub(super) async fn run(mut self, options: &ConnectOptions) -> Result<(), SshError> {
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
                // Like OpenSSH, the certificate beside the key first.
                if let Some(cert) = self.certificate_beside(path, &key).await? {
                    let shown = format!("{}-cert.pub", path.display());
                    match self.offer_certificate(key.clone(), cert).await {
                        Ok(true) => return Ok(()),
                        Ok(false) => self.tried.push(format!(
                            "{shown} (the host refused the certificate: its principals or \
                             authority?)"
                        )),
                        Err(e) => return Err(e),
                    }
                }
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
            // A locked agent answers like an empty one.
            0 => "ssh-agent (no keys; if it is locked, ssh-add -X unlocks it)".to_owned(),
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

    /// `PATH-cert.pub`, OpenSSH's default certificate for the identity
    /// `PATH`, when it exists; an unreadable one, or one for another key,
    /// is an error naming it.
    async fn certificate_beside(
        &self,
        path: &Path,
        key: &PrivateKey,
    ) -> Result<Option<Certificate>, SshError> {
        let mut name = path.as_os_str().to_owned();
        name.push("-cert.pub");
        let cert_path = PathBuf::from(name);
        if !tokio::fs::try_exists(&cert_path).await.unwrap_or(false) {
            return Ok(None);
        }
        let unusable = |reason: String| SshError::Identity {
            target: self.target.clone(),
            path: cert_path.clone(),
            reason,
        };
        let text = match tokio::fs::metadata(&cert_path).await {
            Ok(m) if m.len() > MAX_KEY_FILE => {
                return Err(unusable("too large to be a certificate".into()));
            }
            Ok(_) => tokio::fs::read_to_string(&cert_path).await,
            Err(e) => Err(e),
        }
        .map_err(|e| unusable(format!("cannot read it: {}", one_line(e))))?;
        let cert = Certificate::from_openssh(text.trim())
            .map_err(|e| unusable(format!("not an OpenSSH certificate: {}", one_line(e))))?;
        if cert.public_key() != key.public_key().key_data() {
            return Err(unusable(format!(
                "it certifies another key than {}",
                path.display()
            )));
        }
        Ok(Some(cert))
    }

    async fn offer_certificate(
        &mut self,
        key: Box<PrivateKey>,
        cert: Certificate,
    ) -> Result<bool, SshError> {
        match self
            .handle
            .authenticate_openssh_cert(self.user.clone(), Arc::from(key), cert)
            .await
        {
            Ok(result) => Ok(result.success()),
            Err(e) => Err(self.broken(one_line(e))),
        }
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
        let shown = format!("{} {}", key.algorithm(), key.fingerprint(HashAlg::Sha256));
        let result = self
            .handle
            .authenticate_publickey_with(self.user.clone(), key, hash, agent)
            .await;
        match result {
            Ok(result) => Ok(result.success()),
            // The agent would not sign (locked, key removed, a confirmation
            // no one gave): the handle is still usable, so say so and go on
            // with the next key.
            Err(e) if !self.handle.is_closed() => {
                self.tried.push(format!(
                    "ssh-agent refused to sign with {shown} ({}; a key added with \
                     ssh-add -c needs a confirmation through SSH_ASKPASS)",
                    one_line(e)
                ));
                Ok(false)
            }
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
