//! The controller's distribution key: the ed25519 key whose signature on an
//! order proves the right to distribute (SPEC §6). Separate from any SSH
//! login key. This module creates it (`swpush keygen`) and formats the
//! `known_servers` line that grants it trust on a client.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use russh::keys::ssh_key::LineEnding;
use russh::keys::{Algorithm, HashAlg, PrivateKey, PublicKey};

/// The SSHSIG namespace of every swpush signature.
pub const NAMESPACE: &str = "swpush";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "{0} already exists; swpush never overwrites a distribution key (choose another path with -o)"
    )]
    Exists(PathBuf),
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("cannot create an ed25519 key: {0}")]
    Generate(String),
    #[error("no distribution key at {0}: create one with `swpush keygen` (or pass --key)")]
    Missing(PathBuf),
    #[error("{0}: {1}")]
    Unusable(PathBuf, String),
}

/// Reads the distribution key, refusing one others can read (as ssh does).
pub fn load(path: &Path) -> Result<PrivateKey, KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let metadata = match fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(KeyError::Missing(path.to_owned()));
        }
        Err(e) => {
            return Err(KeyError::Io {
                path: path.to_owned(),
                message: crate::inventory::io_message(&e),
            });
        }
    };
    let unusable = |why: &str| KeyError::Unusable(path.to_owned(), why.to_owned());
    if metadata.permissions().mode() & 0o077 != 0 {
        return Err(unusable(
            "others can read this distribution key; `chmod 600` it (whoever reads it can install anything where it is trusted)",
        ));
    }
    let text = fs::read_to_string(path).map_err(|_| unusable("is not an OpenSSH private key"))?;
    let key = PrivateKey::from_openssh(text.as_bytes())
        .map_err(|_| unusable("is not an OpenSSH private key"))?;
    if key.is_encrypted() {
        return Err(unusable(
            "is passphrase-protected; swpush needs an unencrypted key (kept 0600)",
        ));
    }
    Ok(key)
}

/// `~/.config/swpush/distribution_key`.
pub fn default_path(home: &Path) -> PathBuf {
    home.join(".config/swpush/distribution_key")
}

/// The public half's file: `PATH.pub`.
pub fn public_path(private: &Path) -> PathBuf {
    let mut name = private.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// A new key written to `path` (0600, OpenSSH format) and `path.pub`.
pub fn generate(path: &Path, comment: &str) -> Result<PublicKey, KeyError> {
    let public = public_path(path);
    for existing in [path, public.as_path()] {
        if fs::symlink_metadata(existing).is_ok() {
            return Err(KeyError::Exists(existing.to_owned()));
        }
    }
    let io = |path: &Path| {
        let path = path.to_owned();
        move |e: std::io::Error| KeyError::Io {
            message: crate::inventory::io_message(&e),
            path,
        }
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.exists()
    {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(io(parent))?;
    }
    let mut key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519)
        .map_err(|e| KeyError::Generate(e.to_string()))?;
    key.set_comment(comment);
    let private_text = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| KeyError::Generate(e.to_string()))?;
    let public_text = key
        .public_key()
        .to_openssh()
        .map_err(|e| KeyError::Generate(e.to_string()))?;
    write_new(path, private_text.as_bytes(), 0o600).map_err(io(path))?;
    write_new(&public, format!("{public_text}\n").as_bytes(), 0o644).map_err(io(&public))?;
    Ok(key.public_key().clone())
}

/// Creates `path` (never replacing an existing file) with `mode`.
fn write_new(path: &Path, content: &[u8], mode: u32) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    file.write_all(content)?;
    file.sync_all()
}

/// The package-name patterns a key is trusted for on a client (`enroll
/// --packages`): comma-separated, each of package-name characters and the
/// pattern characters `*?!`, as allowed_signers principals are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patterns(String);

#[derive(Debug, thiserror::Error)]
#[error(
    "--packages `{0}`: expected comma-separated package-name patterns such as `*` or `hello,web-*`"
)]
pub struct BadPatterns(String);

impl Patterns {
    /// `text` without surrounding blanks, if every pattern in it is good.
    pub fn parse(text: &str) -> Result<Patterns, BadPatterns> {
        let patterns = text.trim();
        let valid = !patterns.is_empty()
            && patterns.split(',').all(|p| {
                !p.is_empty()
                    && p.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._+-*?!".contains(c))
            });
        if valid {
            Ok(Patterns(patterns.to_owned()))
        } else {
            Err(BadPatterns(patterns.to_owned()))
        }
    }

    /// `*`: every package.
    pub fn every_package() -> Patterns {
        Patterns("*".into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The allowed_signers line a client's known_servers needs to trust `key`
/// for the package names matching `patterns`.
pub fn known_servers_line(key: &PublicKey, patterns: &Patterns) -> String {
    let encoded = key.to_openssh().unwrap_or_default();
    format!("{} namespaces=\"{NAMESPACE}\" {encoded}", patterns.as_str())
}

/// `SHA256:...`, as `ssh-keygen -l` prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// `swpush:USER@HOST`, the comment that tells keys apart in known_servers.
pub fn default_comment(user: &str) -> String {
    let host = fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    if host.is_empty() {
        format!("swpush:{user}")
    } else {
        format!("swpush:{user}@{host}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enroll_patterns() {
        for good in ["*", " hello,web-* ", "a?c,!beta", "hello+x.y_z"] {
            let patterns = Patterns::parse(good).unwrap();
            assert_eq!(patterns.as_str(), good.trim());
        }
        for bad in [
            "",
            " ",
            "hello,",
            ",x",
            "a b",
            "x\"y",
            "x namespaces=\"file\"",
        ] {
            assert!(Patterns::parse(bad).is_err(), "{bad:?}");
        }
    }
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn creates_private_key_0600_in_0700_dir_and_never_overwrites() {
        let root = std::env::temp_dir().join(format!("swpush-key-test-{}", std::process::id()));
        let path = root.join("sub/distribution_key");
        let key = generate(&path, "test@host").unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&root.join("sub")), 0o700);
        let reread = PrivateKey::read_openssh_file(&path).unwrap();
        assert_eq!(reread.public_key().key_data(), key.key_data());
        let line = known_servers_line(&key, &Patterns::every_package());
        assert!(
            line.starts_with("* namespaces=\"swpush\" ssh-ed25519 AAAA"),
            "{line}"
        );
        assert!(line.ends_with(" test@host"), "{line}");
        let before = fs::read(&path).unwrap();
        assert!(matches!(generate(&path, "x"), Err(KeyError::Exists(_))));
        assert_eq!(fs::read(&path).unwrap(), before);
        fs::remove_dir_all(root).unwrap();
    }
}
