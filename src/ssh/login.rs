//! Public-key login, offering identities as ssh's `pubkey_prepare` does:
//! the `CertificateFile`s (signed by the identity file or agent key they
//! certify), then the ssh-agent's keys and certificates (those that are
//! copies of configured identities signed by the agent; the others only
//! without `IdentitiesOnly`), then the remaining identity files
//! (`IdentityFile`s, else the default `~/.ssh/id_*`), each with its
//! `-cert.pub` first. The agent is the one `IdentityAgent` names. Remembers
//! what it offered, so a refusal can say so. Passwords and passphrase
//! prompts are not supported.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::client::Handle;
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::{Certificate, HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey};

use super::host_key::ClientHandler;
use super::known_hosts::read_regular;
use super::{ConnectOptions, SshError, one_line};
use crate::inventory::{Host, IdentityAgent};

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
    let text = match read_small(path).await {
        Ok(Some(text)) => text,
        Ok(None) => return IdentityFile::Unusable("cannot read it: no such file".into()),
        Err(e) => return IdentityFile::Unusable(format!("cannot read it: {e}")),
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

/// Reads an OpenSSH certificate file; `Ok(None)` when it does not exist.
async fn read_certificate(path: &Path) -> Result<Option<Certificate>, String> {
    let Some(text) = read_small(path)
        .await
        .map_err(|e| format!("cannot read it: {e}"))?
    else {
        return Ok(None);
    };
    Certificate::from_openssh(text.trim())
        .map(Some)
        .map_err(|e| format!("not an OpenSSH certificate: {}", one_line(e)))
}

/// The public key in `path`, or else in `PATH.pub`, as ssh's
/// `sshkey_load_public` looks for it.
async fn read_public(path: &Path) -> Option<PublicKey> {
    let mut beside = path.as_os_str().to_owned();
    beside.push(".pub");
    for candidate in [path.to_owned(), PathBuf::from(beside)] {
        if let Ok(Some(text)) = read_small(&candidate).await
            && let Ok(key) = PublicKey::from_openssh(text.trim())
        {
            return Some(key);
        }
    }
    None
}

/// A key or certificate file as text, `None` when it does not exist: a
/// regular file of at most [`MAX_KEY_FILE`] bytes (a fifo or `/dev/zero`
/// named by a `CertificateFile` is an error, never a hang).
async fn read_small(path: &Path) -> Result<Option<String>, String> {
    let path = path.to_owned();
    let read = tokio::task::spawn_blocking(move || read_regular(&path, MAX_KEY_FILE)).await;
    match read {
        Ok(Ok(Some(bytes))) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| "it is not text".to_owned()),
        Ok(Ok(None)) => Ok(None),
        Ok(Err(e)) => Err(one_line(e)),
        Err(e) => Err(one_line(e)),
    }
}

/// Connection to the ssh-agent `IdentityAgent` names.
type Agent = AgentClient<tokio::net::UnixStream>;

/// A configured identity file, read.
struct Configured {
    path: PathBuf,
    /// The public half, when readable (also of a passphrase-protected key).
    public: Option<PublicKey>,
    /// The private key, when readable without a passphrase.
    private: Option<Box<PrivateKey>>,
    /// `PATH-cert.pub`, when there is one for this key.
    cert: Option<Certificate>,
    /// Why it cannot be used, when it cannot.
    problem: Option<String>,
    /// The agent offered its key already.
    offered_by_agent: bool,
}

/// Signs with one plain key held by the agent, whatever russh asks for:
/// a `CertificateFile` whose key only the agent holds is signed so, as ssh
/// does (the agent knows the key, not the certificate).
struct AgentKeySigner<'a> {
    agent: &'a mut Agent,
    key: PublicKey,
}

impl russh::Signer for AgentKeySigner<'_> {
    type Error = russh::AgentAuthError;

    async fn auth_sign(
        &mut self,
        _key: &AgentIdentity,
        hash_alg: Option<HashAlg>,
        to_sign: Vec<u8>,
    ) -> Result<Vec<u8>, Self::Error> {
        let identity = AgentIdentity::from(self.key.clone());
        self.agent
            .sign_request(&identity, hash_alg, to_sign)
            .await
            .map_err(Into::into)
    }
}

/// One login attempt: offers identities in order and remembers what it offered.
pub(super) struct Login<'a> {
    handle: &'a mut Handle<ClientHandler>,
    user: String,
    target: String,
    host: Host,
    tried: Vec<String>,
    /// Keys and certificates already offered, so none is offered twice.
    offered: Vec<Vec<u8>>,
    rsa_hash: Option<Option<HashAlg>>,
}

/// What a key or certificate is, to tell offers apart.
fn blob_of_key(key: &PublicKey) -> Vec<u8> {
    key.to_bytes().unwrap_or_default()
}

fn blob_of_cert(cert: &Certificate) -> Vec<u8> {
    cert.to_bytes().unwrap_or_default()
}

/// A certificate in the list of what was tried: one the host refused.
fn refused_certificate(shown: &str) -> String {
    format!("{shown} (the host refused the certificate: its principals or authority?)")
}

fn certifies(cert: &Certificate, key: &PublicKey) -> bool {
    cert.public_key() == key.key_data()
}

impl<'a> Login<'a> {
    pub(super) fn new(handle: &'a mut Handle<ClientHandler>, host: &Host, target: &str) -> Self {
        Login {
            handle,
            user: host.user.clone(),
            target: target.to_owned(),
            host: host.clone(),
            tried: Vec::new(),
            offered: Vec::new(),
            rsa_hash: None,
        }
    }

    pub(super) async fn run(mut self, options: &ConnectOptions) -> Result<(), SshError> {
        let mut files = self.configured_files(options).await?;
        let mut agent = self.agent().await;
        let agent_ids = match &mut agent {
            Some(agent) => self.agent_identities(agent).await,
            None => Vec::new(),
        };

        // CertificateFiles first, each signed by the key it certifies.
        for path in self.host.ssh.certificate_files.clone() {
            let unusable = |reason: String| SshError::Identity {
                target: self.target.clone(),
                path: path.clone(),
                reason,
            };
            let Some(cert) = read_certificate(&path).await.map_err(unusable)? else {
                self.tried
                    .push(format!("{} (no such file)", path.display()));
                continue;
            };
            let shown = path.display().to_string();
            let from_file = files.iter().find_map(|f| {
                f.private
                    .as_ref()
                    .filter(|k| certifies(&cert, k.public_key()))
                    .cloned()
            });
            if let Some(key) = from_file {
                if self.offer_certificate(shown, key, cert).await? {
                    return Ok(());
                }
                continue;
            }
            let held = agent_ids.iter().find(|id| {
                matches!(id, AgentIdentity::Certificate { certificate, .. } if *certificate == cert)
            });
            if let (Some(id), Some(agent)) = (held, &mut agent) {
                let shown = Some(format!("{shown} (held by ssh-agent)"));
                if self.offer_agent_identity(shown, agent, id.clone()).await? {
                    return Ok(());
                }
                continue;
            }
            let in_agent = agent_ids.iter().find_map(|id| match id {
                AgentIdentity::PublicKey { key, .. } if certifies(&cert, key) => Some(key.clone()),
                _ => None,
            });
            match (in_agent, &mut agent) {
                (Some(key), Some(agent)) => {
                    if self
                        .offer_agent_signed_cert(shown, agent, key, cert)
                        .await?
                    {
                        return Ok(());
                    }
                }
                _ => self.tried.push(format!(
                    "{shown} (no private key for it: not in the identity files nor in ssh-agent)"
                )),
            }
        }

        // The agent's keys: copies of configured identities, then (without
        // IdentitiesOnly) the others.
        if let Some(agent) = &mut agent {
            for id in agent_ids {
                let configured = files.iter_mut().find(|f| match &id {
                    // The key, whatever comment each copy carries.
                    AgentIdentity::PublicKey { key, .. } => f
                        .public
                        .as_ref()
                        .is_some_and(|public| public.key_data() == key.key_data()),
                    AgentIdentity::Certificate { certificate, .. } => {
                        f.cert.as_ref() == Some(certificate)
                    }
                });
                let shown = match (&configured, &id) {
                    (Some(f), AgentIdentity::PublicKey { .. }) => {
                        Some(format!("{} (via ssh-agent)", f.path.display()))
                    }
                    (Some(f), AgentIdentity::Certificate { .. }) => {
                        Some(format!("{}-cert.pub (via ssh-agent)", f.path.display()))
                    }
                    (None, _) if self.host.ssh.identities_only => continue,
                    (None, _) => None,
                };
                if let (Some(f), AgentIdentity::PublicKey { .. }) = (configured, &id) {
                    f.offered_by_agent = true;
                }
                if self.offer_agent_identity(shown, agent, id).await? {
                    return Ok(());
                }
            }
        }

        // The identity files left, each with its certificate first.
        let mut first_problem = None;
        for file in &mut files {
            let shown = file.path.display().to_string();
            if let Some(problem) = file.problem.take() {
                first_problem.get_or_insert((file.path.clone(), problem.clone()));
                self.tried.push(format!("{shown} ({problem})"));
                continue;
            }
            let Some(key) = file.private.take() else {
                if !file.offered_by_agent {
                    let problem = "it is passphrase-protected and not in ssh-agent; swpush \
                                   cannot ask for passphrases: add it to the agent (ssh-add)";
                    first_problem.get_or_insert((file.path.clone(), problem.to_owned()));
                    self.tried
                        .push(format!("{shown} (passphrase-protected, skipped)"));
                }
                continue;
            };
            if let Some(cert) = file.cert.take()
                && self
                    .offer_certificate(format!("{shown}-cert.pub"), key.clone(), cert)
                    .await?
            {
                return Ok(());
            }
            if file.offered_by_agent {
                continue;
            }
            if self.offer_key(shown, key).await? {
                return Ok(());
            }
        }
        // A configured identity that could not be used says why, as before
        // anything else was tried.
        match first_problem {
            Some((path, reason)) if !self.host_has_defaults_only() => Err(SshError::Identity {
                target: self.target.clone(),
                path,
                reason,
            }),
            _ => Err(self.failed(String::new())),
        }
    }

    fn host_has_defaults_only(&self) -> bool {
        self.host.identity_file.is_none() && self.host.ssh.further_identity_files.is_empty()
    }

    /// The configured identity files (`identity_file`, then the further
    /// `IdentityFile`s), or else the default `~/.ssh/id_*` that exist.
    async fn configured_files(
        &self,
        options: &ConnectOptions,
    ) -> Result<Vec<Configured>, SshError> {
        let mut paths: Vec<PathBuf> = self.host.identity_file.iter().cloned().collect();
        paths.extend(self.host.ssh.further_identity_files.iter().cloned());
        if paths.is_empty()
            && let Some(home) = &options.home
        {
            for name in DEFAULT_IDENTITIES {
                let path = home.join(".ssh").join(name);
                if tokio::fs::try_exists(&path).await.unwrap_or(false) {
                    paths.push(path);
                }
            }
        }
        let mut files = Vec::new();
        for path in paths {
            let mut file = Configured {
                path: path.clone(),
                public: None,
                private: None,
                cert: None,
                problem: None,
                offered_by_agent: false,
            };
            match read_identity(&path).await {
                IdentityFile::Key(key) => {
                    file.public = Some(key.public_key().clone());
                    file.private = Some(key);
                }
                IdentityFile::Encrypted(public) => file.public = Some(public),
                IdentityFile::Unusable(reason) => {
                    // As ssh: the public half from the file itself or
                    // `PATH.pub`, so the agent's copy can sign for it (an
                    // `IdentityFile host.pub` with the key in the agent).
                    file.public = read_public(&path).await;
                    file.problem = Some(reason);
                }
            }
            if let Some(public) = &file.public {
                file.cert = self.certificate_beside(&path, public).await?;
            }
            files.push(file);
        }
        Ok(files)
    }

    /// The agent `IdentityAgent` names, if any and reachable.
    async fn agent(&mut self) -> Option<Agent> {
        match connect_agent(&*self.handle, &self.host.ssh.identity_agent).await {
            None => None,
            Some(Err(reason)) => {
                self.tried.push(format!("ssh-agent ({reason})"));
                None
            }
            Some(Ok(agent)) => Some(agent),
        }
    }

    /// Every key and certificate the agent holds, in its order.
    async fn agent_identities(&mut self, agent: &mut Agent) -> Vec<AgentIdentity> {
        let identities = match agent.request_identities().await {
            Ok(ids) => ids,
            Err(e) => {
                self.tried.push(format!("ssh-agent ({})", one_line(e)));
                return Vec::new();
            }
        };
        self.tried.push(match identities.len() {
            // A locked agent answers like an empty one.
            0 => "ssh-agent (no keys; if it is locked, ssh-add -X unlocks it)".to_owned(),
            1 => "ssh-agent (1 key)".to_owned(),
            n => format!("ssh-agent ({n} keys)"),
        });
        identities
    }

    /// `PATH-cert.pub`, OpenSSH's default certificate for the identity
    /// `PATH`, when it exists; an unreadable one, or one for another key,
    /// is an error naming it.
    async fn certificate_beside(
        &self,
        path: &Path,
        key: &PublicKey,
    ) -> Result<Option<Certificate>, SshError> {
        let mut name = path.as_os_str().to_owned();
        name.push("-cert.pub");
        let cert_path = PathBuf::from(name);
        let unusable = |reason: String| SshError::Identity {
            target: self.target.clone(),
            path: cert_path.clone(),
            reason,
        };
        let Some(cert) = read_certificate(&cert_path).await.map_err(unusable)? else {
            return Ok(None);
        };
        if !certifies(&cert, key) {
            return Err(unusable(format!(
                "it certifies another key than {}",
                path.display()
            )));
        }
        Ok(Some(cert))
    }

    /// Whether `blob` was offered already; remembers it.
    fn already_offered(&mut self, blob: Vec<u8>) -> bool {
        if self.offered.contains(&blob) {
            return true;
        }
        self.offered.push(blob);
        false
    }

    async fn offer_certificate(
        &mut self,
        shown: String,
        key: Box<PrivateKey>,
        cert: Certificate,
    ) -> Result<bool, SshError> {
        if self.already_offered(blob_of_cert(&cert)) {
            return Ok(false);
        }
        match self
            .handle
            .authenticate_openssh_cert(self.user.clone(), Arc::from(key), cert)
            .await
        {
            Ok(result) if result.success() => Ok(true),
            Ok(_) => {
                self.tried.push(refused_certificate(&shown));
                Ok(false)
            }
            Err(e) => {
                self.tried.push(shown);
                Err(self.broken(one_line(e)))
            }
        }
    }

    async fn offer_key(&mut self, shown: String, key: Box<PrivateKey>) -> Result<bool, SshError> {
        if self.already_offered(blob_of_key(key.public_key())) {
            return Ok(false);
        }
        self.tried.push(shown);
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

    /// A `CertificateFile` whose key only the agent holds.
    async fn offer_agent_signed_cert(
        &mut self,
        shown: String,
        agent: &mut Agent,
        key: PublicKey,
        cert: Certificate,
    ) -> Result<bool, SshError> {
        if self.already_offered(blob_of_cert(&cert)) {
            return Ok(false);
        }
        self.tried.push(refused_certificate(&format!(
            "{shown} (signed by ssh-agent)"
        )));
        let hash = self.rsa_hash(key.algorithm().is_rsa()).await;
        let signed = format!("{} {}", key.algorithm(), key.fingerprint(HashAlg::Sha256));
        let mut signer = AgentKeySigner { agent, key };
        let result = self
            .handle
            .authenticate_certificate_with(self.user.clone(), cert, hash, &mut signer)
            .await
            .map_err(one_line);
        self.agent_result(result, &signed)
    }

    /// A key or certificate the agent holds; `shown` when it is a copy of
    /// a configured identity (the others are summed up as `ssh-agent (N keys)`).
    async fn offer_agent_identity(
        &mut self,
        shown: Option<String>,
        agent: &mut Agent,
        id: AgentIdentity,
    ) -> Result<bool, SshError> {
        let (blob, key) = match &id {
            AgentIdentity::PublicKey { key, .. } => (blob_of_key(key), key.clone()),
            AgentIdentity::Certificate { certificate, .. } => (
                blob_of_cert(certificate),
                PublicKey::new(certificate.public_key().clone(), ""),
            ),
        };
        if self.already_offered(blob) {
            return Ok(false);
        }
        self.tried.extend(shown);
        let hash = self.rsa_hash(key.algorithm().is_rsa()).await;
        let signed = format!("{} {}", key.algorithm(), key.fingerprint(HashAlg::Sha256));
        let result = match id {
            AgentIdentity::PublicKey { key, .. } => self
                .handle
                .authenticate_publickey_with(self.user.clone(), key, hash, agent)
                .await
                .map_err(one_line),
            AgentIdentity::Certificate { certificate, .. } => self
                .handle
                .authenticate_certificate_with(self.user.clone(), certificate, hash, agent)
                .await
                .map_err(one_line),
        };
        self.agent_result(result, &signed)
    }

    fn agent_result(
        &mut self,
        result: Result<russh::client::AuthResult, String>,
        signed: &str,
    ) -> Result<bool, SshError> {
        match result {
            Ok(result) => Ok(result.success()),
            // The agent would not sign (locked, key removed, a confirmation
            // no one gave): the handle is still usable, so say so and go on
            // with the next key.
            Err(e) if !self.handle.is_closed() => {
                self.tried.push(format!(
                    "ssh-agent refused to sign with {signed} ({e}; a key added with \
                     ssh-add -c needs a confirmation through SSH_ASKPASS)"
                ));
                Ok(false)
            }
            Err(e) => Err(self.broken(e)),
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

/// Connects to the agent `which` names (`SSH_AUTH_SOCK` for
/// `Environment`): `None` when there is none, the reason when it cannot be
/// reached.
async fn connect_agent(
    handle: &Handle<ClientHandler>,
    which: &IdentityAgent,
) -> Option<Result<Agent, String>> {
    let socket = match which {
        IdentityAgent::None => return None,
        IdentityAgent::Environment => {
            PathBuf::from(std::env::var_os("SSH_AUTH_SOCK").filter(|s| !s.is_empty())?)
        }
        IdentityAgent::Socket(path) => path.clone(),
    };
    let mut agent = match AgentClient::connect_uds(&socket).await {
        Ok(agent) => agent,
        Err(e) => {
            return Some(Err(format!(
                "unreachable at {}: {}",
                socket.display(),
                one_line(e)
            )));
        }
    };
    if let Some(binding) = handle.agent_session_binding() {
        // Agents before OpenSSH 8.9 do not know session binding; they then
        // sign without it, which is what they always did.
        let _ = agent.bind_session(binding, false).await;
    }
    Some(Ok(agent))
}
