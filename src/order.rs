//! The signed order (SPEC §6): what the controller asks one host to do,
//! bound to that host's fresh challenge, signed as an OpenSSH SSHSIG in the
//! `swpush` namespace with the distribution key.
//!
//! The client verifies it with its own `ssh-keygen -Y verify` against its
//! known_servers file, with the package name as the principal, and then
//! checks that the challenge is the one it just sent: an order is good for
//! one run on one host, and no clock needs to be trusted. The text form is
//! one `key value` per line, keys in a fixed order, so the client can read
//! it with `sed`. Besides SPEC §6's fields it carries the manifest's hook
//! paths (`-` for none; the client then never parses YAML), the upgrade
//! policy's `install_missing` and `dry_run`, and the package's unpacked
//! size (what its release takes on disk, which the client checks against
//! its free space and its own listing). Orders that name no package file
//! (`rollback`, `remove`) carry sha256 `-` and sizes 0; `version` is then
//! the release `rollback --to` asks for, or `-`. The client checks every
//! field against the same rules as the controller before it uses any, and
//! refuses an order that lacks one or has one it does not know.

use std::fmt::Write as _;

use russh::keys::{HashAlg, PrivateKey, ssh_key::LineEnding};

use crate::key::NAMESPACE;

/// Version of the order's text form; the client refuses others. 2 added
/// `unpacked_size`; 3 the health check and the confirmation
/// (`health_check`, `health_interval`, `health_timeout`,
/// `confirm_timeout`); 4 mirror mode (`url`, `url_fallback`,
/// `url_timeout`: src/mirror.rs).
pub const FORMAT: u32 = 4;

/// Every swpush command that runs on hosts, as the run report and the run
/// record name it (serde writes the same word as [`Op::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Install,
    Upgrade,
    Rollback,
    Remove,
    Status,
    Enroll,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Install => "install",
            Op::Upgrade => "upgrade",
            Op::Rollback => "rollback",
            Op::Remove => "remove",
            Op::Status => "status",
            Op::Enroll => "enroll",
        }
    }
}

/// What an order can ask of a host: the operations that change it. `status`
/// and `enroll` are no order's, so none can be built for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Install,
    Upgrade,
    Rollback,
    Remove,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        Op::from(self).as_str()
    }
}

impl From<Change> for Op {
    fn from(change: Change) -> Op {
        match change {
            Change::Install => Op::Install,
            Change::Upgrade => Op::Upgrade,
            Change::Rollback => Op::Rollback,
            Change::Remove => Op::Remove,
        }
    }
}

/// What the signed order allows beyond the operation itself; the client
/// enforces it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Replace the same version (also with the same content).
    pub force: bool,
    /// `upgrade`: also go down where a newer version is current.
    pub allow_downgrade: bool,
    /// `upgrade`: also install where the package is absent.
    pub install_missing: bool,
}

/// One host's order. Every field is already validated by its source (the
/// package manifest, the inventory, [`Challenge::parse`]), so none can hold
/// a newline that would forge another line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub op: Change,
    pub package: String,
    pub version: String,
    pub sha256: String,
    pub size: u64,
    /// What the package's release takes once extracted
    /// ([`crate::package::Package::unpacked_size`]); 0 without a package.
    pub unpacked_size: u64,
    /// Where the client fetches the package (src/mirror.rs); `None`: it
    /// asks the controller (`url -` in the text).
    pub url: Option<String>,
    /// A failed fetch may ask the controller instead (`--mirror-fallback`).
    pub url_fallback: bool,
    /// Seconds a mirror may send nothing before a fetch attempt is given up.
    pub url_timeout: u64,
    pub policy: Policy,
    /// `--dry-run`: verify and decide, report what would happen, change nothing.
    pub dry_run: bool,
    pub host: String,
    pub challenge: Challenge,
    /// Hook paths from the manifest, so the client runs exactly what was
    /// signed and never parses YAML itself.
    pub hooks: crate::package::manifest::Hooks,
    /// The check the client runs once the new release is current
    /// (src/health.rs); `health_check -` and 0 s in the text without one.
    pub health: Option<crate::health::HealthCheck>,
    /// Seconds the client waits, the new release current and healthy, for
    /// the controller to confirm that it can still log in; 0: it does not
    /// wait (and nothing is confirmed).
    pub confirm_timeout: u64,
    /// When the order was issued, for the record only (RFC 3339, UTC).
    pub issued: String,
}

/// The client's fresh random challenge: 32 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge(String);

impl Challenge {
    pub fn parse(text: &str) -> Option<Challenge> {
        let ok = text.len() == 32
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        ok.then(|| Challenge(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot sign the order: {0}")]
pub struct SignError(String);

impl Order {
    /// The exact bytes that are signed and sent.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        let hook = |path: &Option<String>| path.clone().unwrap_or_else(|| "-".into());
        let health = self.health.as_ref();
        let fields: [(&str, String); 24] = [
            ("format", FORMAT.to_string()),
            ("op", self.op.as_str().to_owned()),
            ("package", self.package.clone()),
            ("version", self.version.clone()),
            ("sha256", self.sha256.clone()),
            ("size", self.size.to_string()),
            ("unpacked_size", self.unpacked_size.to_string()),
            ("url", self.url.clone().unwrap_or_else(|| "-".into())),
            ("url_fallback", self.url_fallback.to_string()),
            ("url_timeout", self.url_timeout.to_string()),
            ("allow_downgrade", self.policy.allow_downgrade.to_string()),
            ("install_missing", self.policy.install_missing.to_string()),
            ("force", self.policy.force.to_string()),
            ("dry_run", self.dry_run.to_string()),
            ("host", self.host.clone()),
            ("challenge", self.challenge.as_str().to_owned()),
            ("pre_install", hook(&self.hooks.pre_install)),
            ("post_install", hook(&self.hooks.post_install)),
            ("pre_remove", hook(&self.hooks.pre_remove)),
            (
                "health_check",
                health.map_or_else(|| "-".into(), |h| h.command.clone()),
            ),
            (
                "health_interval",
                health.map_or(0, |h| h.interval).to_string(),
            ),
            (
                "health_timeout",
                health.map_or(0, |h| h.timeout).to_string(),
            ),
            ("confirm_timeout", self.confirm_timeout.to_string()),
            ("issued", self.issued.clone()),
        ];
        for (key, value) in fields {
            let _ = writeln!(text, "{key} {value}");
        }
        text
    }

    /// The order's text and its armored SSHSIG signature.
    pub fn sign(&self, key: &PrivateKey) -> Result<SignedOrder, SignError> {
        let text = self.to_text();
        let signature = key
            .sign(NAMESPACE, HashAlg::Sha512, text.as_bytes())
            .and_then(|sig| sig.to_pem(LineEnding::LF))
            .map_err(|e| SignError(e.to_string()))?;
        Ok(SignedOrder { text, signature })
    }
}

/// An order's text and its armored signature: what the step verifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedOrder {
    pub text: String,
    pub signature: String,
}

impl SignedOrder {
    /// The order as the step reads it on stdin (`src/step/step.sh`'s
    /// header): `swpush order N`, the N lines of the text, then the
    /// signature, ending in a newline.
    pub fn framed(&self) -> String {
        let mut framed = format!(
            "swpush order {}\n{}{}",
            self.text.lines().count(),
            self.text,
            self.signature
        );
        if !framed.ends_with('\n') {
            framed.push('\n');
        }
        framed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::{Command, Stdio};

    fn order() -> Order {
        Order {
            op: Change::Install,
            package: "hello".into(),
            version: "1.2.0".into(),
            sha256: "ab".repeat(32),
            size: 10_485_760,
            unpacked_size: 31_457_280,
            url: None,
            url_fallback: false,
            url_timeout: 30,
            policy: Policy::default(),
            dry_run: false,
            host: "web1".into(),
            challenge: Challenge::parse("0123456789abcdef0123456789abcdef").unwrap(),
            hooks: crate::package::manifest::Hooks {
                post_install: Some("hooks/post.sh".into()),
                ..Default::default()
            },
            health: None,
            confirm_timeout: 30,
            issued: "2026-11-24T10:00:00Z".into(),
        }
    }

    #[test]
    fn an_op_is_written_in_json_as_its_word() {
        let ops = [
            Op::Install,
            Op::Upgrade,
            Op::Rollback,
            Op::Remove,
            Op::Status,
            Op::Enroll,
        ];
        for op in ops {
            let json = format!("\"{}\"", op.as_str());
            assert_eq!(serde_json::to_string(&op).unwrap(), json);
            assert_eq!(serde_json::from_str::<Op>(&json).unwrap(), op);
        }
    }

    #[test]
    fn text_form_is_fixed() {
        assert_eq!(
            order().to_text(),
            "format 4\nop install\npackage hello\nversion 1.2.0\nsha256 abababababababababababababababababababababababababababababababab\n\
             size 10485760\nunpacked_size 31457280\nurl -\nurl_fallback false\nurl_timeout 30\nallow_downgrade false\ninstall_missing false\nforce false\ndry_run false\nhost web1\n\
             challenge 0123456789abcdef0123456789abcdef\npre_install -\npost_install hooks/post.sh\n\
             pre_remove -\nhealth_check -\nhealth_interval 0\nhealth_timeout 0\nconfirm_timeout 30\n\
             issued 2026-11-24T10:00:00Z\n"
        );
    }

    #[test]
    fn framed_as_the_step_reads_it() {
        let signed = |signature: &str| SignedOrder {
            text: "format 2\nop remove\n".into(),
            signature: signature.into(),
        };
        let end = "-----END SSH SIGNATURE-----";
        assert_eq!(
            signed(&format!("SIG\n{end}\n")).framed(),
            format!("swpush order 2\nformat 2\nop remove\nSIG\n{end}\n")
        );
        assert_eq!(
            signed(&format!("SIG\n{end}")).framed(),
            format!("swpush order 2\nformat 2\nop remove\nSIG\n{end}\n"),
            "the step reads lines: the last one ends too"
        );
    }

    #[test]
    fn challenges_are_32_lowercase_hex_digits() {
        assert!(Challenge::parse("0123456789abcdef0123456789abcdef").is_some());
        for bad in [
            "",
            "0123",
            "0123456789ABCDEF0123456789ABCDEF",
            "0123456789abcdef0123456789abcde\n",
            "g123456789abcdef0123456789abcdef",
        ] {
            assert!(Challenge::parse(bad).is_none(), "{bad:?}");
        }
    }

    /// `ssh-keygen -Y verify` with the client's exact arguments.
    fn openssh_verifies(
        dir: &Path,
        signers: &str,
        principal: &str,
        text: &[u8],
        signature: &str,
    ) -> bool {
        std::fs::write(dir.join("known_servers"), signers).unwrap();
        std::fs::write(dir.join("order.sig"), signature).unwrap();
        let mut child = Command::new("ssh-keygen")
            .args(["-Y", "verify", "-f"])
            .arg(dir.join("known_servers"))
            .args(["-I", principal, "-n", "swpush", "-s"])
            .arg(dir.join("order.sig"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ssh-keygen (openssh-client) is needed");
        use std::io::Write;
        child.stdin.take().unwrap().write_all(text).unwrap();
        child.wait().unwrap().success()
    }

    #[test]
    fn openssh_accepts_the_signature_and_nothing_altered() {
        let dir = std::env::temp_dir().join(format!("swpush-order-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = PrivateKey::random(&mut rand::rng(), russh::keys::Algorithm::Ed25519).unwrap();
        let public = key.public_key().to_openssh().unwrap();
        let trust_all = format!("* namespaces=\"swpush\" {public}\n");
        let SignedOrder { text, signature } = order().sign(&key).unwrap();

        assert!(openssh_verifies(
            &dir,
            &trust_all,
            "hello",
            text.as_bytes(),
            &signature
        ));
        let narrow = format!("hello,web-* namespaces=\"swpush\" {public}\n");
        assert!(openssh_verifies(
            &dir,
            &narrow,
            "hello",
            text.as_bytes(),
            &signature
        ));

        let mut altered = text.clone().into_bytes();
        let at = altered.iter().position(|b| *b == b'1').unwrap();
        altered[at] = b'2';
        assert!(
            !openssh_verifies(&dir, &trust_all, "hello", &altered, &signature),
            "one changed byte"
        );

        let other_namespace = key
            .sign("other", HashAlg::Sha512, text.as_bytes())
            .unwrap()
            .to_pem(LineEnding::LF)
            .unwrap();
        assert!(!openssh_verifies(
            &dir,
            &trust_all,
            "hello",
            text.as_bytes(),
            &other_namespace
        ));
        let file_namespace = format!("* namespaces=\"file\" {public}\n");
        assert!(!openssh_verifies(
            &dir,
            &file_namespace,
            "hello",
            text.as_bytes(),
            &signature
        ));

        let web_only = format!("web-* namespaces=\"swpush\" {public}\n");
        assert!(
            !openssh_verifies(&dir, &web_only, "hello", text.as_bytes(), &signature),
            "principal not covered"
        );

        let stranger =
            PrivateKey::random(&mut rand::rng(), russh::keys::Algorithm::Ed25519).unwrap();
        let strangers_signature = order().sign(&stranger).unwrap().signature;
        assert!(!openssh_verifies(
            &dir,
            &trust_all,
            "hello",
            text.as_bytes(),
            &strangers_signature
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
