//! `known_hosts` read as OpenSSH reads it (`sshd(8)`, "SSH_KNOWN_HOSTS FILE
//! FORMAT"): fields split on any run of spaces or tabs; an optional
//! `@revoked` or `@cert-authority` marker; host fields that are lists of
//! patterns with `*`, `?` and `!` negation, `[host]:port` for other ports,
//! or hashed (`|1|salt|hash`); comments and lines OpenSSH cannot parse are
//! skipped, as it skips them.
//!
//! What a host's key is worth follows OpenSSH's `check_host_key`: a key
//! revoked by a line matching the host is refused first; then a plain line
//! with the same key makes it known; a plain line with another key makes it
//! changed; and, for a port other than 22 with no line for `[host]:port`,
//! a plain line for the bare host with the same key makes it known. A host
//! matched by a `@cert-authority` line that offers a plain key, not a
//! certificate (checked in `host_key.rs`), and by no plain line with its
//! key fails closed instead of being treated as unknown (and perhaps
//! learned). This module only reads;
//! recording a key is `host_key.rs`'s job.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64ct::{Base64, Encoding};
use hmac::{KeyInit, Mac};
use russh::keys::{Algorithm, PublicKey};

/// Largest `known_hosts` read: far beyond any real file, small enough that a
/// mistaken path cannot exhaust memory.
const MAX_BYTES: u64 = 64 * 1024 * 1024;

/// What one line is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    Plain,
    Revoked,
    CertAuthority,
}

#[derive(Debug)]
enum Hosts {
    /// `pattern[,pattern...]`, each maybe negated with `!`.
    Patterns(Vec<String>),
    /// `|1|base64(salt)|base64(HMAC-SHA1(salt, name))`.
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
}

#[derive(Debug)]
struct Entry {
    file: Arc<Path>,
    /// 1-based, as an editor shows it.
    line: usize,
    marker: Marker,
    hosts: Hosts,
    key: PublicKey,
}

/// A parsed `known_hosts` file.
#[derive(Debug, Default)]
pub(super) struct KnownHosts {
    entries: Vec<Entry>,
}

/// A line of a `known_hosts` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LineRef {
    pub file: PathBuf,
    pub line: usize,
}

/// What `known_hosts` says about the key a host offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    /// A plain line for this host holds this key.
    Known,
    /// A `@revoked` line matching this host holds this key.
    Revoked(LineRef),
    /// Plain lines list this host, none with this key (first such line).
    Changed(LineRef),
    /// No plain line lists the host, but a `@cert-authority` line matches it.
    CertAuthorityOnly(LineRef),
    /// Nothing lists this host.
    Unknown,
}

/// Reads `path`; a missing file (or `/dev/null`, as ssh reads it) is an
/// empty one. Regular files only, opened without blocking (a fifo would
/// otherwise hang the connection) and read to at most [`MAX_BYTES`].
pub(super) fn read(path: &Path) -> io::Result<KnownHosts> {
    if path == Path::new("/dev/null") {
        return Ok(KnownHosts::default());
    }
    match read_regular(path, MAX_BYTES)? {
        Some(bytes) => Ok(parse(&String::from_utf8_lossy(&bytes), path)),
        None => Ok(KnownHosts::default()),
    }
}

/// The bytes of the regular file `path`, `None` when it does not exist:
/// opened without blocking (a fifo or a device is an error, never a hang)
/// and never more than `max` bytes read (a larger file is an error).
pub(super) fn read_regular(path: &Path, max: u64) -> io::Result<Option<Vec<u8>>> {
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if !file.metadata()?.is_file() {
        return Err(io::Error::other("it is not a regular file"));
    }
    let mut bytes = Vec::new();
    File::take(file, max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(io::Error::other(format!(
            "it is larger than {} KiB",
            max >> 10
        )));
    }
    Ok(Some(bytes))
}

/// Parses `known_hosts` text read from `file`; lines OpenSSH would skip
/// are skipped.
pub(super) fn parse(text: &str, file: &Path) -> KnownHosts {
    let file: Arc<Path> = Arc::from(file);
    let entries = text
        .split('\n')
        .enumerate()
        .filter_map(|(index, line)| parse_line(&file, index + 1, line))
        .collect();
    KnownHosts { entries }
}

fn parse_line(file: &Arc<Path>, line: usize, text: &str) -> Option<Entry> {
    let mut fields = text
        .split([' ', '\t', '\r'])
        .filter(|field| !field.is_empty());
    let mut first = fields.next()?;
    if first.starts_with('#') {
        return None;
    }
    let marker = match first {
        "@revoked" => Marker::Revoked,
        "@cert-authority" => Marker::CertAuthority,
        // OpenSSH skips a line with a marker it does not know.
        _ if first.starts_with('@') => return None,
        _ => Marker::Plain,
    };
    if marker != Marker::Plain {
        first = fields.next()?;
    }
    let hosts = parse_hosts(first)?;
    let (key_type, base64) = (fields.next()?, fields.next()?);
    let key = PublicKey::from_openssh(&format!("{key_type} {base64}")).ok()?;
    Some(Entry {
        file: file.clone(),
        line,
        marker,
        hosts,
        key,
    })
}

fn parse_hosts(field: &str) -> Option<Hosts> {
    match field.strip_prefix("|1|") {
        Some(hashed) => {
            let (salt, hash) = hashed.split_once('|')?;
            Some(Hosts::Hashed {
                salt: Base64::decode_vec(salt).ok()?,
                hash: Base64::decode_vec(hash).ok()?,
            })
        }
        // Other hash formats are unknown to OpenSSH too: the line never matches.
        None if field.starts_with('|') => None,
        None => Some(Hosts::Patterns(
            field.split(',').map(str::to_ascii_lowercase).collect(),
        )),
    }
}

/// The name `known_hosts` uses for a host: `host`, or `[host]:port`.
pub(super) fn host_port(address: &str, port: u16) -> String {
    if port == 22 {
        address.to_owned()
    } else {
        format!("[{address}]:{port}")
    }
}

impl Hosts {
    /// OpenSSH's `match_hostname`: some pattern matches and no negated one.
    fn matches(&self, name: &str) -> bool {
        match self {
            Hosts::Hashed { salt, hash } => {
                let Ok(mut mac) = hmac::Hmac::<sha1::Sha1>::new_from_slice(salt) else {
                    return false;
                };
                // ssh hashes the lower-cased name.
                mac.update(name.to_ascii_lowercase().as_bytes());
                mac.verify_slice(hash).is_ok()
            }
            Hosts::Patterns(patterns) => {
                let name = name.to_ascii_lowercase();
                let mut positive = false;
                for pattern in patterns {
                    match pattern.strip_prefix('!') {
                        Some(negated) if wildcard_match(negated, &name) => return false,
                        Some(_) => {}
                        None => positive |= wildcard_match(pattern, &name),
                    }
                }
                positive
            }
        }
    }
}

/// `*` (any run, also empty) and `?` (one byte), as OpenSSH's
/// `match_pattern`, which works on bytes; everything else is literal.
/// Allocation-free: it runs for every pattern of every line, per host.
pub(crate) fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was, and the text position it currently covers to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((star_p, star_t)) = star {
            pi = star_p + 1;
            ti = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
}

impl Entry {
    fn at(&self) -> LineRef {
        LineRef {
            file: self.file.to_path_buf(),
            line: self.line,
        }
    }
}

impl KnownHosts {
    /// Adds the lines of another file (the machine-wide ones), read after.
    pub(super) fn extend(&mut self, other: KnownHosts) {
        self.entries.extend(other.entries);
    }

    fn lines_for<'a>(
        &'a self,
        name: &'a str,
        marker: Marker,
    ) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries
            .iter()
            .filter(move |e| e.marker == marker && e.hosts.matches(name))
    }

    /// What the file says about `key`, offered by `address` on `port`.
    pub(super) fn check(&self, address: &str, port: u16, key: &PublicKey) -> Verdict {
        let name = host_port(address, port);
        let same = |e: &&Entry| e.key.key_data() == key.key_data();
        // A key revoked under either name OpenSSH looks up is never trusted.
        for lookup in [name.as_str(), address] {
            if let Some(entry) = self.lines_for(lookup, Marker::Revoked).find(same) {
                return Verdict::Revoked(entry.at());
            }
        }
        let mut plain = self.lines_for(&name, Marker::Plain).peekable();
        if let Some(first) = plain.peek().map(|e| e.at()) {
            return match plain.find(same) {
                Some(_) => Verdict::Known,
                None => Verdict::Changed(first),
            };
        }
        if port != 22 && self.lines_for(address, Marker::Plain).any(|e| same(&e)) {
            return Verdict::Known;
        }
        if let Some(entry) = self.lines_for(&name, Marker::CertAuthority).next() {
            return Verdict::CertAuthorityOnly(entry.at());
        }
        Verdict::Unknown
    }

    /// The `@cert-authority` lines matching `address` on `port`, in file order.
    pub(super) fn cert_authorities(&self, address: &str, port: u16) -> Vec<(PublicKey, LineRef)> {
        let name = host_port(address, port);
        self.lines_for(&name, Marker::CertAuthority)
            .map(|e| (e.key.clone(), e.at()))
            .collect()
    }

    /// The `@revoked` line for `address` on `port` that holds `key`, if any.
    pub(super) fn revoked(&self, address: &str, port: u16, key: &PublicKey) -> Option<LineRef> {
        let name = host_port(address, port);
        [name.as_str(), address].into_iter().find_map(|lookup| {
            self.lines_for(lookup, Marker::Revoked)
                .find(|e| e.key.key_data() == key.key_data())
                .map(Entry::at)
        })
    }

    /// The types of the plain keys recorded for the host, to ask for first.
    pub(super) fn key_types(&self, address: &str, port: u16) -> Vec<Algorithm> {
        let name = host_port(address, port);
        let mut types: Vec<Algorithm> = self
            .lines_for(&name, Marker::Plain)
            .map(|e| e.key.algorithm())
            .collect();
        if types.is_empty() && port != 22 {
            types = self
                .lines_for(address, Marker::Plain)
                .map(|e| e.key.algorithm())
                .collect();
        }
        types
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_null_is_empty_and_a_fifo_is_refused_without_blocking() {
        assert!(
            read(Path::new("/dev/null"))
                .expect("/dev/null")
                .entries
                .is_empty()
        );
        let dir = std::env::temp_dir().join(format!("swpush-kh-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let error = read_regular(&fifo, 1024).expect_err("a fifo");
        assert!(error.to_string().contains("not a regular file"), "{error}");
        assert_eq!(read_regular(&dir.join("missing"), 1024).unwrap(), None);
        std::fs::remove_dir_all(dir).unwrap();
    }

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
    const OTHER: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE3DNcUJLmUi1hvPyXWCZoxIgrhbrD9bszhrfAdmydIv";

    #[test]
    fn wildcards_match_as_openssh_does() {
        for (pattern, text, expected) in [
            ("*", "", true),
            ("*", "web1", true),
            ("web?", "web1", true),
            ("web?", "web12", false),
            ("*.example", "a.b.example", true),
            ("[10.0.*]:2222", "[10.0.0.7]:2222", true),
            ("[10.0.*]:2222", "[10.0.0.7]:22", false),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("**", "x", true),
        ] {
            assert_eq!(wildcard_match(pattern, text), expected, "{pattern} {text}");
        }
    }

    enum Want {
        Known,
        Unknown,
        Revoked(usize),
        Changed(usize),
        Ca(usize),
    }

    #[test]
    fn lines_are_read_with_markers_patterns_and_any_whitespace() {
        let key = PublicKey::from_openssh(KEY).expect("key");
        let table = [
            (format!("web1 {KEY}"), "web1", 22, Want::Known),
            (
                format!(" \tWEB1\t\t{KEY}  comment"),
                "web1",
                22,
                Want::Known,
            ),
            (format!("web* {KEY}"), "web1", 22, Want::Known),
            (format!("web*,!web1 {KEY}"), "web1", 22, Want::Unknown),
            (format!("!web1,* {KEY}"), "web1", 22, Want::Unknown),
            (format!("web1 {OTHER}"), "web1", 22, Want::Changed(1)),
            (
                format!("web1 {KEY}\n@revoked * {KEY}"),
                "web1",
                22,
                Want::Revoked(2),
            ),
            (
                format!("@revoked db1 {KEY}\nweb1 {KEY}"),
                "web1",
                22,
                Want::Known,
            ),
            (format!("@cert-authority * {KEY}"), "web1", 22, Want::Ca(1)),
            (
                format!("@cert-authority * {OTHER}\nweb1 {KEY}"),
                "web1",
                22,
                Want::Known,
            ),
            (format!("@trusted web1 {KEY}"), "web1", 22, Want::Unknown),
            (format!("web1 {KEY}"), "web1", 2222, Want::Known),
            (format!("web1 {OTHER}"), "web1", 2222, Want::Unknown),
            (
                format!("[web1]:2222 {OTHER}\nweb1 {KEY}"),
                "web1",
                2222,
                Want::Changed(1),
            ),
            (
                format!("# web1 {KEY}\n\n[web1]:2222 {KEY}"),
                "web1",
                2222,
                Want::Known,
            ),
            (
                format!("web1 ssh-ed25519 AAAAnotakey\nweb1 {KEY}"),
                "web1",
                22,
                Want::Known,
            ),
        ];
        let file = Path::new("kh");
        let at = |line| LineRef {
            file: file.to_owned(),
            line,
        };
        for (text, host, port, expected) in table {
            let expected = match expected {
                Want::Known => Verdict::Known,
                Want::Unknown => Verdict::Unknown,
                Want::Revoked(l) => Verdict::Revoked(at(l)),
                Want::Changed(l) => Verdict::Changed(at(l)),
                Want::Ca(l) => Verdict::CertAuthorityOnly(at(l)),
            };
            assert_eq!(
                parse(&text, file).check(host, port, &key),
                expected,
                "{text:?} {host}:{port}"
            );
        }
    }

    #[test]
    fn hashed_names_match_only_their_host() {
        // `ssh-keygen -H` of "[127.0.0.1]:2222 KEY" with a fixed salt.
        let salt = [7u8; 20];
        let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(&salt).expect("hmac");
        mac.update(b"[127.0.0.1]:2222");
        let hash = mac.finalize().into_bytes();
        let line = format!(
            "|1|{}|{} {KEY}",
            Base64::encode_string(&salt),
            Base64::encode_string(&hash)
        );
        let key = PublicKey::from_openssh(KEY).expect("key");
        let known = parse(&line, Path::new("kh"));
        assert_eq!(known.check("127.0.0.1", 2222, &key), Verdict::Known);
        assert_eq!(known.check("127.0.0.2", 2222, &key), Verdict::Unknown);
        assert_eq!(known.key_types("127.0.0.1", 2222), [Algorithm::Ed25519]);
    }

    #[test]
    fn only_regular_files_are_read_and_nothing_blocks() {
        let dir = std::env::temp_dir().join(format!("swpush-kh-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let fifo = dir.join("fifo");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: a valid NUL-terminated path; mkfifo only creates a file.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        for path in [&dir, &fifo, Path::new("/dev/zero")] {
            let error = read(path).expect_err("not a regular file");
            assert!(error.to_string().contains("not a regular file"), "{error}");
        }
        assert!(
            read(&dir.join("missing"))
                .expect("missing")
                .entries
                .is_empty()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_machine_wide_file_can_revoke_or_contradict_a_users_key() {
        let key = PublicKey::from_openssh(KEY).expect("key");
        let mut known = parse(&format!("web1 {KEY}\n"), Path::new("user"));
        known.extend(parse(&format!("@revoked * {KEY}\n"), Path::new("global")));
        let revoked = LineRef {
            file: "global".into(),
            line: 1,
        };
        assert_eq!(known.check("web1", 22, &key), Verdict::Revoked(revoked));
        let mut known = parse("", Path::new("user"));
        known.extend(parse(&format!("web1 {OTHER}\n"), Path::new("global")));
        assert!(matches!(known.check("web1", 22, &key), Verdict::Changed(_)));
    }
}
