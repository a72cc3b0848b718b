//! `~/.ssh/config`, read as OpenSSH's `ssh -G` reads it, for what the
//! inventory leaves unset: `HostName`, `User`, `Port`, `IdentityFile`,
//! `ProxyJump` — and, as important, for every setting that would make
//! OpenSSH connect another way than swpush does (`ProxyCommand`,
//! `ControlPath`, `BindAddress`, ...): a host such a setting applies to is
//! refused, naming it, so swpush never goes around a bastion or a
//! restriction the operator configured. The list of keywords and what swpush
//! does with each is in docs/inventory.md.
//!
//! OpenSSH's rules, kept here: the first value obtained for a keyword wins
//! (`IdentityFile` accumulates); `Host` patterns (with `*`, `?`, `!`) match
//! the name given to ssh; `Match` criteria `all`, `host`, `originalhost`,
//! `user` and `localuser` are evaluated, while a `Match` with `exec`,
//! `canonical`, `final`, `localnetwork` or `tagged` cannot be: a block that
//! swpush cannot evaluate and that sets anything but a harmless keyword
//! refuses the host. `/etc/ssh/ssh_config` is read after the user's file,
//! as ssh reads it. `Include` reads files (globs, relative to `~/.ssh`),
//! inside a block only when the block applies. An unknown keyword is an
//! error for the whole file, as for `ssh`, unless `IgnoreUnknown` lists it.
//!
//! The files are read whole before anything is resolved, bounded: regular
//! files only, opened without blocking (a fifo or `/dev/zero` is an error,
//! never a hang), [`MAX_TOTAL_BYTES`] in all, [`MAX_DEPTH`] levels of
//! Include, owned by the user or root and not writable by others (as
//! `ssh` demands). Settings from `ansible_ssh_common_args` and
//! `ansible_ssh_extra_args` are read like `ssh -o` options: before the
//! files, so they win.

use std::fmt;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::InventoryError;

/// All of `~/.ssh/config` and its Includes together: far beyond any real
/// configuration, small enough that a mistaken Include costs nothing.
pub const MAX_TOTAL_BYTES: usize = 1024 * 1024;

/// Include nesting OpenSSH allows (`READCONF_MAX_DEPTH`).
pub const MAX_DEPTH: usize = 16;

/// The machine's file, read after the user's, as ssh does without `-F`.
const SYSTEM_CONFIG: &str = "/etc/ssh/ssh_config";

/// Files one Include glob may bring in.
const MAX_GLOB_FILES: usize = 256;

/// What `~/.ssh/config` (and the host's ssh options) say about one host.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SshSettings {
    pub host_name: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub identity_file: Option<PathBuf>,
    pub proxy_jump: Option<String>,
    /// `IdentitiesOnly yes`: only configured identities may be offered.
    pub identities_only: bool,
    /// A setting OpenSSH would apply and swpush does not implement, with
    /// where it comes from; the host must not be connected to.
    pub refused: Option<String>,
}

/// Where a line comes from, for messages.
#[derive(Debug, Clone)]
struct At {
    file: Arc<str>,
    line: usize,
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.file)
        } else {
            write!(f, "{}:{}", self.file, self.line)
        }
    }
}

#[derive(Debug)]
enum Item {
    Host(Vec<String>),
    Match(Vec<Criterion>, At),
    Set(Setting),
    Include(Vec<Item>),
}

#[derive(Debug, Clone)]
pub struct Setting {
    /// The keyword as ssh_config(5) spells it.
    keyword: &'static str,
    args: Vec<String>,
    at: At,
}

#[derive(Debug)]
struct Criterion {
    negated: bool,
    kind: CriterionKind,
}

#[derive(Debug)]
enum CriterionKind {
    All,
    Host(String),
    OriginalHost(String),
    User(String),
    LocalUser(String),
    /// `exec`, `canonical`, `final`, `localnetwork`, `tagged`.
    Unknowable(&'static str),
}

/// What swpush does with a keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Read and used (Host, Match, Include, HostName, User, Port, ...).
    Implemented,
    /// Does not change where or how swpush connects, nor whom it trusts.
    Harmless,
    /// Changes how OpenSSH connects: the host is refused unless the value
    /// is one of these (lower-case) no-op values.
    Refused(&'static [&'static str]),
    /// An algorithm list: refused unless it only adds (`+`) or reorders (`^`).
    Algorithms,
}

/// Every keyword of ssh_config(5) (OpenSSH 9.x, plus Debian's GSSAPI ones
/// and the deprecated ones ssh still accepts), and what swpush does with it.
const KEYWORDS: &[(&str, Class)] = &[
    ("Host", Class::Implemented),
    ("Match", Class::Implemented),
    ("Include", Class::Implemented),
    ("HostName", Class::Implemented),
    ("User", Class::Implemented),
    ("Port", Class::Implemented),
    ("IdentityFile", Class::Implemented),
    ("ProxyJump", Class::Implemented),
    ("ProxyCommand", Class::Refused(&["none"])),
    ("IdentitiesOnly", Class::Implemented),
    ("IgnoreUnknown", Class::Implemented),
    ("AddressFamily", Class::Refused(&["any"])),
    ("BindAddress", Class::Refused(&[])),
    ("BindInterface", Class::Refused(&[])),
    ("CanonicalizeHostname", Class::Refused(&["no", "false"])),
    ("CheckHostIP", Class::Refused(&["no", "false"])),
    ("ControlPath", Class::Refused(&["none"])),
    ("HostKeyAlias", Class::Refused(&[])),
    ("IdentityAgent", Class::Refused(&["ssh_auth_sock"])),
    ("KnownHostsCommand", Class::Refused(&["none"])),
    ("PermitLocalCommand", Class::Refused(&["no", "false"])),
    ("RemoteCommand", Class::Refused(&["none"])),
    ("RequiredRSASize", Class::Refused(&[])),
    ("RevokedHostKeys", Class::Refused(&["none"])),
    ("Tunnel", Class::Refused(&["no", "false"])),
    ("UserKnownHostsFile", Class::Implemented),
    ("Ciphers", Class::Algorithms),
    ("HostKeyAlgorithms", Class::Algorithms),
    ("KexAlgorithms", Class::Algorithms),
    ("MACs", Class::Algorithms),
    ("AddKeysToAgent", Class::Harmless),
    ("BatchMode", Class::Harmless),
    ("CanonicalDomains", Class::Harmless),
    ("CanonicalizeFallbackLocal", Class::Harmless),
    ("CanonicalizeMaxDots", Class::Harmless),
    ("CanonicalizePermittedCNAMEs", Class::Harmless),
    ("CASignatureAlgorithms", Class::Harmless),
    ("CertificateFile", Class::Harmless),
    ("ChallengeResponseAuthentication", Class::Harmless),
    ("ChannelTimeout", Class::Harmless),
    ("ClearAllForwardings", Class::Harmless),
    ("Compression", Class::Harmless),
    ("ConnectionAttempts", Class::Harmless),
    ("ConnectTimeout", Class::Harmless),
    ("ControlMaster", Class::Harmless),
    ("ControlPersist", Class::Harmless),
    ("DynamicForward", Class::Harmless),
    ("EnableEscapeCommandline", Class::Harmless),
    ("EnableSSHKeysign", Class::Harmless),
    ("EscapeChar", Class::Harmless),
    ("ExitOnForwardFailure", Class::Harmless),
    ("FingerprintHash", Class::Harmless),
    ("ForkAfterAuthentication", Class::Harmless),
    ("ForwardAgent", Class::Harmless),
    ("ForwardX11", Class::Harmless),
    ("ForwardX11Timeout", Class::Harmless),
    ("ForwardX11Trusted", Class::Harmless),
    ("GatewayPorts", Class::Harmless),
    ("GlobalKnownHostsFile", Class::Harmless),
    ("GSSAPIAuthentication", Class::Harmless),
    ("GSSAPIClientIdentity", Class::Harmless),
    ("GSSAPIDelegateCredentials", Class::Harmless),
    ("GSSAPIKexAlgorithms", Class::Harmless),
    ("GSSAPIKeyExchange", Class::Harmless),
    ("GSSAPIRenewalForcesRekey", Class::Harmless),
    ("GSSAPIServerIdentity", Class::Harmless),
    ("GSSAPITrustDns", Class::Harmless),
    ("HashKnownHosts", Class::Harmless),
    ("HostbasedAcceptedAlgorithms", Class::Harmless),
    ("HostbasedAuthentication", Class::Harmless),
    ("HostbasedKeyTypes", Class::Harmless),
    ("IPQoS", Class::Harmless),
    ("KbdInteractiveAuthentication", Class::Harmless),
    ("KbdInteractiveDevices", Class::Harmless),
    ("KeepAlive", Class::Harmless),
    ("LocalCommand", Class::Harmless),
    ("LocalForward", Class::Harmless),
    ("LogLevel", Class::Harmless),
    ("LogVerbose", Class::Harmless),
    ("NoHostAuthenticationForLocalhost", Class::Harmless),
    ("NumberOfPasswordPrompts", Class::Harmless),
    ("ObscureKeystrokeTiming", Class::Harmless),
    ("PasswordAuthentication", Class::Harmless),
    ("PermitRemoteOpen", Class::Harmless),
    ("PKCS11Provider", Class::Harmless),
    ("PreferredAuthentications", Class::Harmless),
    ("ProxyUseFdpass", Class::Harmless),
    ("PubkeyAcceptedAlgorithms", Class::Harmless),
    ("PubkeyAcceptedKeyTypes", Class::Harmless),
    ("PubkeyAuthentication", Class::Harmless),
    ("RekeyLimit", Class::Harmless),
    ("RemoteForward", Class::Harmless),
    ("RequestTTY", Class::Harmless),
    ("SecurityKeyProvider", Class::Harmless),
    ("SendEnv", Class::Harmless),
    ("ServerAliveCountMax", Class::Harmless),
    ("ServerAliveInterval", Class::Harmless),
    ("SessionType", Class::Harmless),
    ("SetEnv", Class::Harmless),
    ("SmartcardDevice", Class::Harmless),
    ("StdinNull", Class::Harmless),
    ("StreamLocalBindMask", Class::Harmless),
    ("StreamLocalBindUnlink", Class::Harmless),
    ("StrictHostKeyChecking", Class::Harmless),
    ("SyslogFacility", Class::Harmless),
    ("Tag", Class::Harmless),
    ("TCPKeepAlive", Class::Harmless),
    ("TunnelDevice", Class::Harmless),
    ("UpdateHostKeys", Class::Harmless),
    ("VerifyHostKeyDNS", Class::Harmless),
    ("VisualHostKey", Class::Harmless),
    ("XAuthLocation", Class::Harmless),
    // Deprecated or removed; ssh accepts them and ignores them.
    ("Cipher", Class::Harmless),
    ("CompressionLevel", Class::Harmless),
    ("FallBackToRsh", Class::Harmless),
    ("Protocol", Class::Harmless),
    ("RhostsRSAAuthentication", Class::Harmless),
    ("RSAAuthentication", Class::Harmless),
    ("UsePrivilegedPort", Class::Harmless),
    ("UseRoaming", Class::Harmless),
    ("UseRsh", Class::Harmless),
];

fn keyword(word: &str) -> Option<(&'static str, Class)> {
    KEYWORDS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(word))
        .copied()
}

fn class_of(keyword: &str) -> Class {
    self::keyword(keyword).map_or(Class::Harmless, |(_, class)| class)
}

/// The parsed `~/.ssh/config` with its Includes, and what resolving needs.
pub struct SshConfig {
    /// One list per top-level file; each starts outside any block.
    files: Vec<Vec<Item>>,
    home: Option<PathBuf>,
    local_user: String,
}

/// Reading state shared by a file and its Includes.
struct Reader<'a> {
    home: Option<&'a Path>,
    /// Where a relative Include points: `~/.ssh`, or `/etc/ssh` for the
    /// machine's file.
    relative_to: PathBuf,
    /// Owner and permission checks, as ssh makes them on the user's files.
    check_perms: bool,
    budget: usize,
    /// `IgnoreUnknown` patterns seen so far, in reading order.
    ignore_unknown: Vec<String>,
    uid: u32,
}

fn located(at: impl fmt::Display, message: impl fmt::Display) -> InventoryError {
    InventoryError {
        location: at.to_string(),
        message: message.to_string(),
    }
}

impl SshConfig {
    /// Reads `HOME/.ssh/config` and its Includes; a missing file is an
    /// empty config.
    pub fn load(home: Option<&Path>, local_user: &str) -> Result<SshConfig, InventoryError> {
        Self::load_files(home, local_user, Path::new(SYSTEM_CONFIG))
    }

    /// `HOME/.ssh/config`, then `system` (OpenSSH's order: the first value
    /// wins, so the user's file overrides the machine's).
    fn load_files(
        home: Option<&Path>,
        local_user: &str,
        system: &Path,
    ) -> Result<SshConfig, InventoryError> {
        let mut config = SshConfig {
            files: Vec::new(),
            home: home.map(Path::to_owned),
            local_user: local_user.to_owned(),
        };
        // SAFETY: getuid has no preconditions and cannot fail.
        let uid = unsafe { libc::getuid() };
        let mut reader = Reader {
            home,
            relative_to: PathBuf::new(),
            check_perms: true,
            budget: MAX_TOTAL_BYTES,
            ignore_unknown: Vec::new(),
            uid,
        };
        // As for ssh, no file (or a dangling link) is no configuration.
        let exists = |path: &Path| {
            !std::fs::metadata(path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
        };
        if let Some(home) = home {
            let path = home.join(".ssh/config");
            if exists(&path) {
                reader.relative_to = home.join(".ssh");
                config.files.push(reader.file(&path, 0)?);
            }
        }
        if exists(system) {
            // ssh checks the permissions of the user's files only.
            reader.check_perms = false;
            reader.relative_to = system.parent().unwrap_or(Path::new("/")).to_owned();
            config.files.push(reader.file(system, 0)?);
        }
        Ok(config)
    }

    /// Parses config text as `~/.ssh/config` (Includes relative to
    /// `home/.ssh`); for tests.
    #[cfg(test)]
    pub fn parse(text: &str, home: &Path) -> Result<SshConfig, InventoryError> {
        let mut reader = Reader {
            home: Some(home),
            relative_to: home.join(".ssh"),
            check_perms: true,
            budget: MAX_TOTAL_BYTES,
            ignore_unknown: Vec::new(),
            // SAFETY: getuid has no preconditions and cannot fail.
            uid: unsafe { libc::getuid() },
        };
        Ok(SshConfig {
            files: vec![reader.text(text, "config".into(), 0)?],
            home: Some(home.to_owned()),
            local_user: "op".into(),
        })
    }

    /// Settings for the inventory name, then for the address where the
    /// name said nothing; `options` (from the inventory's ssh arguments)
    /// come first and win, as `ssh -o` does.
    pub fn lookup(&self, name: &str, address: Option<&str>, options: &[Setting]) -> SshSettings {
        let mut settings = self.settings_for(name, options);
        if let Some(address) = address.filter(|a| *a != name) {
            let more = self.settings_for(address, options);
            settings.port = settings.port.or(more.port);
            settings.user = settings.user.or(more.user);
            settings.identity_file = settings.identity_file.or(more.identity_file);
            settings.proxy_jump = settings.proxy_jump.or(more.proxy_jump);
            settings.identities_only |= more.identities_only;
            settings.refused = settings.refused.or(more.refused);
        }
        settings
    }

    fn settings_for(&self, host: &str, options: &[Setting]) -> SshSettings {
        let mut resolve = Resolve {
            original: host.to_ascii_lowercase(),
            local_user: &self.local_user,
            home: self.home.as_deref(),
            seen: Vec::new(),
            host_name: None,
            user: None,
            port: None,
            identity_files: Vec::new(),
            proxy: None,
            identities_only: false,
            refused: None,
        };
        for option in options {
            resolve.apply(option, &State::Yes);
        }
        for items in &self.files {
            resolve.items(items, &State::Yes);
        }
        resolve.finish()
    }
}

impl Reader<'_> {
    /// Reads one file: regular, not writable by others, within the budget.
    fn file(&mut self, path: &Path, depth: usize) -> Result<Vec<Item>, InventoryError> {
        let name = path.display().to_string();
        let fail = |message: String| located(&name, message);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
            .map_err(|e| fail(super::io_message(&e)))?;
        let meta = file.metadata().map_err(|e| fail(super::io_message(&e)))?;
        if !meta.is_file() {
            return Err(fail(
                "is not a regular file; ssh config files and their Includes must be".into(),
            ));
        }
        if self.check_perms
            && ((meta.uid() != self.uid && meta.uid() != 0) || meta.mode() & 0o022 != 0)
        {
            return Err(fail(
                "has bad owner or permissions (others can write it); ssh refuses it too".into(),
            ));
        }
        let mut bytes = Vec::new();
        file.take(self.budget as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| fail(super::io_message(&e)))?;
        if bytes.len() > self.budget {
            return Err(fail(format!(
                "~/.ssh/config and its Includes are larger than {} MiB together; not reading on",
                MAX_TOTAL_BYTES >> 20
            )));
        }
        self.budget -= bytes.len();
        let text = String::from_utf8(bytes).map_err(|_| fail("is not UTF-8 text".into()))?;
        self.text(&text, name.into(), depth)
    }

    fn text(
        &mut self,
        text: &str,
        file: Arc<str>,
        depth: usize,
    ) -> Result<Vec<Item>, InventoryError> {
        let mut items = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let at = At {
                file: file.clone(),
                line: index + 1,
            };
            let Some((word, args)) = split_line(line).map_err(|e| located(&at, e))? else {
                continue;
            };
            let Some((keyword, _)) = keyword(&word) else {
                if self
                    .ignore_unknown
                    .iter()
                    .any(|p| pattern_list_matches(p, &word.to_ascii_lowercase()))
                {
                    continue;
                }
                return Err(located(
                    &at,
                    format!(
                        "unknown keyword `{word}` (ssh refuses this file too; list it in IgnoreUnknown if it is meant for another client)"
                    ),
                ));
            };
            let missing = || located(&at, format!("`{keyword}` needs a value"));
            match keyword {
                "Host" => {
                    if args.is_empty() {
                        return Err(missing());
                    }
                    items.push(Item::Host(args));
                }
                "Match" => items.push(Item::Match(
                    parse_match(&args).map_err(|e| located(&at, e))?,
                    at,
                )),
                "Include" => {
                    if args.is_empty() {
                        return Err(missing());
                    }
                    if depth >= MAX_DEPTH {
                        return Err(located(
                            &at,
                            format!("Include nested more than {MAX_DEPTH} deep"),
                        ));
                    }
                    let mut included = Vec::new();
                    for pattern in &args {
                        for path in self.expand_include(pattern).map_err(|e| located(&at, e))? {
                            included.extend(self.file(&path, depth + 1)?);
                        }
                    }
                    items.push(Item::Include(included));
                }
                _ => {
                    if args.is_empty() {
                        return Err(missing());
                    }
                    if keyword == "Port" && parse_port(&args[0]).is_none() {
                        return Err(located(
                            &at,
                            format!("`Port`: `{}` is not a port number", args[0]),
                        ));
                    }
                    if keyword == "IgnoreUnknown" {
                        self.ignore_unknown.push(args[0].to_ascii_lowercase());
                    }
                    items.push(Item::Set(Setting { keyword, args, at }));
                }
            }
        }
        Ok(items)
    }

    /// The files an Include names: `~/` is the home, a relative path is
    /// relative to `~/.ssh` (`/etc/ssh` in the machine's file), `*` and `?`
    /// glob within one directory level each.
    fn expand_include(&self, pattern: &str) -> Result<Vec<PathBuf>, String> {
        let path = if let Some(rest) = pattern.strip_prefix("~/") {
            match self.home {
                Some(home) => home.join(rest),
                None => return Err(format!("Include `{pattern}`: HOME is not set")),
            }
        } else if pattern.starts_with('~') {
            return Err(format!("Include `{pattern}`: only `~/` is supported"));
        } else if pattern.starts_with('/') {
            PathBuf::from(pattern)
        } else {
            self.relative_to.join(pattern)
        };
        if pattern.contains(['[', ']', '{', '}']) {
            return Err(format!(
                "Include `{pattern}`: only `*` and `?` globs are supported"
            ));
        }
        let (root, skip) = if path.is_absolute() {
            (PathBuf::from("/"), 1)
        } else {
            (PathBuf::new(), 0)
        };
        let mut found = vec![root];
        for part in path.components().skip(skip) {
            let part = part.as_os_str().to_string_lossy();
            if !part.contains(['*', '?']) {
                found.iter_mut().for_each(|p| p.push(&*part));
                continue;
            }
            let mut next = Vec::new();
            for dir in &found {
                let listed = if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                };
                let Ok(entries) = std::fs::read_dir(listed) else {
                    continue;
                };
                let mut names: Vec<String> = entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('.') || part.starts_with('.'))
                    .filter(|n| crate::ssh::wildcard_match(&part, n))
                    .collect();
                names.sort();
                next.extend(names.into_iter().map(|n| dir.join(n)));
                if next.len() > MAX_GLOB_FILES {
                    return Err(format!(
                        "Include `{pattern}` matches more than {MAX_GLOB_FILES} files"
                    ));
                }
            }
            found = next;
        }
        // As glob(3): a name without wildcards is kept only if it exists.
        Ok(found
            .into_iter()
            .filter(|p| std::fs::symlink_metadata(p).is_ok())
            .collect())
    }
}

fn parse_port(text: &str) -> Option<u16> {
    text.parse::<u16>().ok().filter(|p| *p != 0)
}

/// `Keyword args...` or `Keyword=args...`; `None` for blank and comment lines.
fn split_line(line: &str) -> Result<Option<(String, Vec<String>)>, String> {
    let line = line
        .trim_start_matches([' ', '\t'])
        .trim_end_matches(['\r', ' ', '\t']);
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let end = line.find([' ', '\t', '=']).unwrap_or(line.len());
    let (word, rest) = line.split_at(end);
    let rest = rest.trim_start_matches([' ', '\t']);
    let rest = rest.strip_prefix('=').unwrap_or(rest);
    Ok(Some((word.to_owned(), split_args(rest)?)))
}

/// Arguments as OpenSSH's `argv_split`: whitespace separates, `"` and `'`
/// quote, `\` escapes, and an unquoted `#` starting a word ends the line.
fn split_args(text: &str) -> Result<Vec<String>, String> {
    let mut args = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
        let Some(&first) = chars.peek() else {
            return Ok(args);
        };
        if first == '#' {
            return Ok(args);
        }
        let mut arg = String::new();
        let mut quote: Option<char> = None;
        while let Some(c) = chars.next() {
            match (c, quote) {
                ('\\', _) => match chars.next() {
                    Some(next) => arg.push(next),
                    None => arg.push('\\'),
                },
                (q, None) if q == '"' || q == '\'' => quote = Some(q),
                (q, Some(open)) if q == open => quote = None,
                (' ' | '\t', None) => break,
                (c, _) => arg.push(c),
            }
        }
        if quote.is_some() {
            return Err("unterminated quote".into());
        }
        args.push(arg);
    }
}

fn parse_match(args: &[String]) -> Result<Vec<Criterion>, String> {
    let mut criteria = Vec::new();
    let mut words = args.iter();
    while let Some(word) = words.next() {
        let (negated, name) = match word.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, word.as_str()),
        };
        let name = name.to_ascii_lowercase();
        let mut value = || {
            words
                .next()
                .cloned()
                .ok_or_else(|| format!("`Match {name}` needs an argument"))
        };
        let kind = match name.as_str() {
            "all" => CriterionKind::All,
            "host" => CriterionKind::Host(value()?),
            "originalhost" => CriterionKind::OriginalHost(value()?),
            "user" => CriterionKind::User(value()?),
            "localuser" => CriterionKind::LocalUser(value()?),
            "exec" | "localnetwork" | "tagged" => {
                value()?;
                CriterionKind::Unknowable(match name.as_str() {
                    "exec" => "exec",
                    "localnetwork" => "localnetwork",
                    _ => "tagged",
                })
            }
            "canonical" => CriterionKind::Unknowable("canonical"),
            "final" => CriterionKind::Unknowable("final"),
            _ => return Err(format!("unknown `Match` criterion `{name}`")),
        };
        criteria.push(Criterion { negated, kind });
    }
    if criteria.is_empty() {
        return Err("`Match` needs a criterion".into());
    }
    Ok(criteria)
}

/// OpenSSH's `match_pattern_list`: comma-separated patterns, `!` negates;
/// some pattern matches and no negated one does.
fn pattern_list_matches(list: &str, text: &str) -> bool {
    let mut positive = false;
    for pattern in list.split(',') {
        match pattern.strip_prefix('!') {
            Some(negated) if crate::ssh::wildcard_match(negated, text) => return false,
            Some(_) => {}
            None => positive |= crate::ssh::wildcard_match(pattern, text),
        }
    }
    positive
}

/// Whether the lines under a `Host`/`Match` apply to the host being resolved.
#[derive(Debug, Clone)]
enum State {
    Yes,
    No,
    /// Only a `Match` swpush cannot evaluate (at that line) decides.
    Maybe(String),
}

impl State {
    /// The state of a block inside an Include made in state `self`.
    fn within(&self, inner: State) -> State {
        match (self, inner) {
            (State::No, _) | (_, State::No) => State::No,
            (State::Maybe(why), _) => State::Maybe(why.clone()),
            (State::Yes, inner) => inner,
        }
    }
}

enum Proxy {
    Direct,
    Jump(String),
    Command(String),
}

/// Resolving one host: the first value for each keyword wins.
struct Resolve<'a> {
    original: String,
    local_user: &'a str,
    home: Option<&'a Path>,
    /// Keywords that already have their value.
    seen: Vec<&'static str>,
    host_name: Option<String>,
    user: Option<String>,
    port: Option<u16>,
    identity_files: Vec<(String, At)>,
    proxy: Option<Proxy>,
    identities_only: bool,
    refused: Option<String>,
}

impl Resolve<'_> {
    fn items(&mut self, items: &[Item], ceiling: &State) {
        let mut state = ceiling.clone();
        for item in items {
            match item {
                Item::Host(patterns) => state = ceiling.within(self.host_matches(patterns)),
                Item::Match(criteria, at) => state = ceiling.within(self.match_state(criteria, at)),
                Item::Include(included) => self.items(included, &state),
                Item::Set(setting) => self.apply(setting, &state),
            }
        }
    }

    /// A `Host` line: some pattern matches the name and no negated one.
    fn host_matches(&self, patterns: &[String]) -> State {
        let mut positive = false;
        for pattern in patterns {
            match pattern.strip_prefix('!') {
                Some(negated) if crate::ssh::wildcard_match(negated, &self.original) => {
                    return State::No;
                }
                Some(_) => {}
                None => positive |= crate::ssh::wildcard_match(pattern, &self.original),
            }
        }
        if positive { State::Yes } else { State::No }
    }

    fn match_state(&self, criteria: &[Criterion], at: &At) -> State {
        let mut unknowable = None;
        for criterion in criteria {
            let hit = match &criterion.kind {
                CriterionKind::All => true,
                CriterionKind::Host(list) => {
                    pattern_list_matches(&list.to_ascii_lowercase(), &self.current_host())
                }
                CriterionKind::OriginalHost(list) => {
                    pattern_list_matches(&list.to_ascii_lowercase(), &self.original)
                }
                CriterionKind::User(list) => pattern_list_matches(list, self.remote_user()),
                CriterionKind::LocalUser(list) => pattern_list_matches(list, self.local_user),
                CriterionKind::Unknowable(what) => {
                    unknowable.get_or_insert(format!("`Match {what}` at {at}"));
                    continue;
                }
            };
            if hit == criterion.negated {
                return State::No;
            }
        }
        match unknowable {
            Some(why) => State::Maybe(why),
            None => State::Yes,
        }
    }

    fn current_host(&self) -> String {
        match &self.host_name {
            Some(name) => expand_host_name(name, &self.original).unwrap_or_else(|| name.clone()),
            None => self.original.clone(),
        }
    }

    fn remote_user(&self) -> &str {
        self.user.as_deref().unwrap_or(self.local_user)
    }

    fn refuse(&mut self, why: String) {
        self.refused.get_or_insert(why);
    }

    fn apply(&mut self, setting: &Setting, state: &State) {
        let keyword = setting.keyword;
        let class = class_of(keyword);
        match state {
            State::No => return,
            State::Maybe(why) => {
                if class != Class::Harmless && keyword != "IgnoreUnknown" {
                    self.refuse(format!(
                        "{why}, which swpush cannot evaluate, would set `{keyword}` ({})",
                        setting.at
                    ));
                }
                return;
            }
            State::Yes => {}
        }
        if keyword == "IdentityFile" {
            if let Some(file) = setting.args.first() {
                self.identity_files.push((file.clone(), setting.at.clone()));
            }
            return;
        }
        // ProxyJump and ProxyCommand share one slot: the first one wins.
        let slot = if keyword == "ProxyCommand" {
            "ProxyJump"
        } else {
            keyword
        };
        if self.seen.contains(&slot) {
            return;
        }
        self.seen.push(slot);
        let value = setting.args.first().cloned().unwrap_or_default();
        let lower = value.to_ascii_lowercase();
        let named = || format!("`{keyword} {}` ({})", setting.args.join(" "), setting.at);
        match keyword {
            "HostName" => self.host_name = Some(value),
            "User" => self.user = Some(value),
            "Port" => self.port = parse_port(&value),
            "ProxyJump" if lower == "none" => self.proxy = Some(Proxy::Direct),
            "ProxyJump" => self.proxy = Some(Proxy::Jump(value)),
            "ProxyCommand" if lower == "none" => self.proxy = Some(Proxy::Direct),
            "ProxyCommand" => self.proxy = Some(Proxy::Command(named())),
            "IdentitiesOnly" => self.identities_only = matches!(lower.as_str(), "yes" | "true"),
            "UserKnownHostsFile" => {
                // OpenSSH's default: swpush reads the same file.
                let default = ["~/.ssh/known_hosts", "~/.ssh/known_hosts2"];
                if !setting.args.iter().all(|a| default.contains(&a.as_str())) {
                    self.refuse(named());
                }
            }
            _ => match class {
                Class::Refused(unless) if !unless.contains(&lower.as_str()) => self.refuse(named()),
                Class::Algorithms if !value.starts_with(['+', '^']) => self.refuse(named()),
                _ => {}
            },
        }
    }

    fn finish(mut self) -> SshSettings {
        let host_name = self.host_name.take().map(|name| {
            expand_host_name(&name, &self.original).unwrap_or_else(|| {
                self.refuse(format!(
                    "`HostName {name}` uses a %-token swpush does not expand"
                ));
                name
            })
        });
        let mut proxy_jump = None;
        match self.proxy.take() {
            Some(Proxy::Command(named)) => self.refuse(named),
            Some(Proxy::Jump(jump)) => proxy_jump = Some(jump),
            Some(Proxy::Direct) | None => {}
        }
        let identity_file = match self.identity_files.first() {
            Some((file, at)) => match self.expand_identity(file, host_name.as_deref()) {
                Some(path) => Some(path),
                None => {
                    self.refuse(format!(
                        "`IdentityFile {file}` ({at}) uses a %-token swpush does not expand"
                    ));
                    None
                }
            },
            None => None,
        };
        SshSettings {
            host_name,
            port: self.port,
            user: self.user,
            identity_file,
            proxy_jump,
            identities_only: self.identities_only,
            refused: self.refused,
        }
    }

    /// `~/`, `%d`, `%u`, `%h`, `%r`, `%n`, `%p`, `%%`, as ssh expands them;
    /// `None` for any other token.
    fn expand_identity(&self, file: &str, host_name: Option<&str>) -> Option<PathBuf> {
        let home = self.home.map(|h| h.display().to_string());
        let mut out = String::new();
        let mut rest = file;
        if let (Some(tail), Some(home)) = (file.strip_prefix("~/"), &home) {
            out.push_str(home);
            out.push('/');
            rest = tail;
        }
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            match chars.next()? {
                '%' => out.push('%'),
                'd' => out.push_str(home.as_deref()?),
                'u' => out.push_str(self.local_user),
                'h' => out.push_str(host_name.unwrap_or(&self.original)),
                'n' => out.push_str(&self.original),
                'r' => out.push_str(self.remote_user()),
                'p' => out.push_str(&self.port.unwrap_or(22).to_string()),
                _ => return None,
            }
        }
        Some(PathBuf::from(out))
    }
}

/// `HostName` with `%h` (the name given) and `%%`; `None` for other tokens.
fn expand_host_name(name: &str, original: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = name.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            '%' => out.push('%'),
            'h' => out.push_str(original),
            _ => return None,
        }
    }
    Some(out)
}

/// Reads `ansible_ssh_common_args` / `ansible_ssh_extra_args` (named by
/// `var`) as ssh's command line: `-o Keyword=value`, `-J`, `-p`, `-l`, `-i`
/// and a few flags without effect on the connection. Anything else is an
/// error naming it: swpush will not guess what ssh would do with it.
pub fn command_line_settings(var: &str, text: &str) -> Result<Vec<Setting>, String> {
    let words = split_args(text).map_err(|e| format!("`{var}`: {e}"))?;
    let at = At {
        file: Arc::from(var),
        line: 0,
    };
    let mut settings = Vec::new();
    let mut words = words.iter();
    while let Some(word) = words.next() {
        let Some(flag) = word.strip_prefix('-').and_then(|f| f.chars().next()) else {
            return Err(format!(
                "`{var}`: `{word}` is not an ssh option swpush can apply"
            ));
        };
        let attached = &word[1 + flag.len_utf8()..];
        let mut value = || -> Result<String, String> {
            if attached.is_empty() {
                words
                    .next()
                    .cloned()
                    .ok_or_else(|| format!("`{var}`: `-{flag}` needs a value"))
            } else {
                Ok(attached.to_owned())
            }
        };
        let (word, args) = match flag {
            'o' => {
                let option = value()?;
                split_line(&option)
                    .map_err(|e| format!("`{var}`: {e}"))?
                    .ok_or_else(|| format!("`{var}`: empty `-o`"))?
            }
            'J' => ("ProxyJump".to_owned(), vec![value()?]),
            'p' => ("Port".to_owned(), vec![value()?]),
            'l' => ("User".to_owned(), vec![value()?]),
            'i' => ("IdentityFile".to_owned(), vec![value()?]),
            'b' => ("BindAddress".to_owned(), vec![value()?]),
            'B' => ("BindInterface".to_owned(), vec![value()?]),
            'c' => ("Ciphers".to_owned(), vec![value()?]),
            'm' => ("MACs".to_owned(), vec![value()?]),
            '4' | '6' if attached.is_empty() => (
                "AddressFamily".to_owned(),
                vec![if flag == '4' { "inet" } else { "inet6" }.to_owned()],
            ),
            // Verbosity, compression, agent/X11 forwarding, tty requests:
            // nothing about where or how the connection goes.
            'q' | 'v' | 'C' | 'A' | 'a' | 'x' | 'X' | 'Y' | 'T' | 't' | 'K' | 'k' | 'g' | 'n'
                if attached.chars().all(|c| c == flag) =>
            {
                continue;
            }
            _ => {
                return Err(format!(
                    "`{var}`: `{word}` is an ssh option swpush does not implement; not connecting another way than ssh would"
                ));
            }
        };
        let Some((keyword, _)) = keyword(&word) else {
            return Err(format!("`{var}`: unknown ssh option `{word}`"));
        };
        if matches!(keyword, "Host" | "Match" | "Include") {
            return Err(format!("`{var}`: `-o {keyword}` is not an option"));
        }
        if keyword == "Port" && args.first().and_then(|p| parse_port(p)).is_none() {
            return Err(format!("`{var}`: `Port` needs a port number"));
        }
        if args.is_empty() {
            return Err(format!("`{var}`: `{keyword}` needs a value"));
        }
        settings.push(Setting {
            keyword,
            args,
            at: at.clone(),
        });
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> SshConfig {
        SshConfig::parse(text, Path::new("/home/op")).expect("config")
    }

    #[test]
    fn applies_host_alias_entries() {
        let c = config(
            "Host web1\n  HostName 192.0.2.11\n  User deploy\n  Port 2222\n  IdentityFile ~/.ssh/web\n  ProxyJump bastion\n\nHost *\n  User fallback\n",
        );
        assert_eq!(
            c.lookup("web1", None, &[]),
            SshSettings {
                host_name: Some("192.0.2.11".into()),
                port: Some(2222),
                user: Some("deploy".into()),
                identity_file: Some(PathBuf::from("/home/op/.ssh/web")),
                proxy_jump: Some("bastion".into()),
                ..SshSettings::default()
            }
        );
        assert_eq!(c.lookup("db1", None, &[]).user.as_deref(), Some("fallback"));
        assert_eq!(c.lookup("db1", None, &[]).host_name, None);
    }

    #[test]
    fn address_patterns_fill_what_the_name_left_unset() {
        let c = config("Host 10.1.*\n  Port 2200\n  User ops\n");
        let s = c.lookup("app1", Some("10.1.0.7"), &[]);
        assert_eq!((s.port, s.user.as_deref()), (Some(2200), Some("ops")));
    }

    #[test]
    fn lines_split_as_openssh_splits_them() {
        for (line, expected) in [
            ("  Host=web1", Some(("Host", vec!["web1"]))),
            ("HostName = x # comment", Some(("HostName", vec!["x"]))),
            (
                "ProxyCommand \"a b\" 'c d' e\\ f",
                Some(("ProxyCommand", vec!["a b", "c d", "e f"])),
            ),
            ("\t# only a comment", None),
            ("", None),
        ] {
            let got = split_line(line).expect("split");
            let want =
                expected.map(|(k, v)| (k.to_owned(), v.into_iter().map(String::from).collect()));
            assert_eq!(got, want, "{line:?}");
        }
        assert!(split_line("User \"open").is_err());
    }

    #[test]
    fn command_line_options_win_and_proxies_are_refused() {
        let c = config("Host *\n  User fromfile\n  Port 2000\n");
        let options = command_line_settings("args", "-o User=fromargs -p2001 -C -q").expect("args");
        let s = c.lookup("h", None, &options);
        assert_eq!(
            (s.user.as_deref(), s.port, s.refused),
            (Some("fromargs"), Some(2001), None)
        );
        for (text, named) in [
            ("-o ProxyCommand='nc %h %p'", "ProxyCommand"),
            ("-oProxyCommand=nc", "ProxyCommand"),
            ("-o 'ProxyCommand nc %h %p'", "ProxyCommand"),
            ("-b 127.0.0.1", "BindAddress"),
            ("-4", "AddressFamily"),
        ] {
            let options = command_line_settings("args", text).expect(text);
            let refused = c.lookup("h", None, &options).refused.unwrap_or_default();
            assert!(refused.contains(named), "{text}: {refused}");
        }
        let jump = command_line_settings("args", "-J bastion").expect("-J");
        assert_eq!(
            c.lookup("h", None, &jump).proxy_jump.as_deref(),
            Some("bastion")
        );
        for bad in [
            "-F /etc/other",
            "-S /tmp/ctl",
            "-o Frob=1",
            "host",
            "-o 'User \"x'",
        ] {
            assert!(command_line_settings("args", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_no_op_value_first_keeps_a_later_setting_from_applying() {
        let c = config(
            "Host web1\n  ControlPath none\n  ProxyCommand none\nHost *\n  ControlPath ~/.ssh/cm-%C\n  ProxyCommand nc %h %p\n",
        );
        assert_eq!(c.lookup("web1", None, &[]).refused, None);
        let refused = c.lookup("db1", None, &[]).refused.unwrap_or_default();
        assert!(
            refused.contains("ControlPath") && refused.contains("config:5"),
            "{refused}"
        );
    }

    #[test]
    fn relative_includes_are_read_from_dot_ssh_and_only_where_their_block_applies() {
        let home = std::env::temp_dir().join(format!("swpush-sshcfg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&home);
        std::fs::create_dir_all(home.join(".ssh/config.d")).expect("mkdir");
        std::fs::write(
            home.join(".ssh/config.d/a.conf"),
            "Host web*\n  Port 2201\n",
        )
        .expect("a");
        std::fs::write(
            home.join(".ssh/config.d/b.conf"),
            "Host web1\n  Port 2299\n  User b\n",
        )
        .expect("b");
        std::fs::write(home.join(".ssh/inner.conf"), "ProxyCommand nc %h %p\n").expect("inner");
        std::fs::write(
            home.join(".ssh/config"),
            "Include config.d/*.conf missing.conf\nHost db1\n  Include inner.conf\nHost *\n  User outer\n",
        )
        .expect("config");
        let c = SshConfig::load(Some(&home), "op").expect("load");
        let web1 = c.lookup("web1", None, &[]);
        assert_eq!((web1.port, web1.user.as_deref()), (Some(2201), Some("b")));
        assert_eq!(web1.refused, None, "inner.conf applies only to db1");
        let db1 = c.lookup("db1", None, &[]).refused.unwrap_or_default();
        assert!(
            db1.contains("ProxyCommand") && db1.contains("inner.conf:1"),
            "{db1}"
        );
        let _ = std::fs::remove_dir_all(&home);
    }

    #[test]
    fn an_unevaluable_match_refuses_only_what_it_could_change() {
        let c = config(
            "Match exec \"test -e /x\"\n  ServerAliveInterval 5\n  LogLevel ERROR\nMatch host web* exec true\n  User other\nHost *\n  IdentitiesOnly yes\n",
        );
        let db1 = c.lookup("db1", None, &[]);
        assert_eq!(db1.refused, None);
        assert!(db1.identities_only);
        let web1 = c.lookup("web1", None, &[]).refused.unwrap_or_default();
        assert!(
            web1.contains("`Match exec` at config:4") && web1.contains("User"),
            "{web1}"
        );
    }

    #[test]
    fn the_machine_config_comes_after_the_users() {
        let dir = std::env::temp_dir().join(format!("swpush-sshsys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("home/.ssh")).expect("mkdir");
        std::fs::create_dir_all(dir.join("etc/ssh_config.d")).expect("mkdir");
        std::fs::write(dir.join("home/.ssh/config"), "Host web1\n  User mine\n").expect("user");
        std::fs::write(
            dir.join("etc/ssh_config"),
            "Include ssh_config.d/*.conf\nHost *\n  User machine\n  Port 2022\n",
        )
        .expect("system");
        std::fs::write(
            dir.join("etc/ssh_config.d/bastion.conf"),
            "Host db*\n  ProxyCommand ssh -W %h:%p bastion\n",
        )
        .expect("d");
        let c = SshConfig::load_files(Some(&dir.join("home")), "op", &dir.join("etc/ssh_config"))
            .expect("load");
        let web1 = c.lookup("web1", None, &[]);
        assert_eq!(
            (web1.user.as_deref(), web1.port),
            (Some("mine"), Some(2022))
        );
        let db1 = c.lookup("db1", None, &[]).refused.unwrap_or_default();
        assert!(
            db1.contains("ProxyCommand") && db1.contains("bastion.conf:2"),
            "{db1}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
