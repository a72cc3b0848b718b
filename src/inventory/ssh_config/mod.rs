//! `~/.ssh/config`, read as OpenSSH's `ssh -G` reads it, for what the
//! inventory leaves unset: `HostName`, `User`, `Port`, `IdentityFile`,
//! `ProxyJump`, and what decides how ssh logs in and whose host key it
//! trusts (`CertificateFile`, `IdentitiesOnly`, `IdentityAgent`,
//! `UserKnownHostsFile`, `GlobalKnownHostsFile`, `StrictHostKeyChecking`,
//! `HostKeyAlias`, `ConnectTimeout`; tokens in [`tokens`]) — and, as
//! important, for every setting that would make OpenSSH connect another way
//! than swpush does (`ProxyCommand`, `ControlPath`, `BindAddress`, ...): a
//! host such a setting applies to is refused, naming it, so swpush never
//! goes around a bastion or a restriction the operator configured. The list
//! of keywords and what swpush does with each is in docs/inventory.md.
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
//! files, so they win; so are swpush's `-u`/`--private-key` and the
//! inventory's user and port ([`option`]), so `Match user` sees them.

use std::fmt;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::vars::{MAX_NAME_BYTES, MAX_VALUE_BYTES, quoted};
use super::{IdentityAgent, InventoryError, StrictHostKeyChecking};

mod command_line;
mod keywords;
mod resolve;
mod tokens;

pub use command_line::{command_line_settings, option};
use keywords::keyword;
use resolve::{Resolve, State};
pub(super) use tokens::expand_percent;

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
    /// `IdentityFile`s after the first, in ssh's order.
    pub further_identity_files: Vec<PathBuf>,
    /// `CertificateFile`s, tokens expanded.
    pub certificate_files: Vec<PathBuf>,
    /// `IdentityAgent`, when set.
    pub identity_agent: Option<IdentityAgent>,
    /// `UserKnownHostsFile` (empty for `none`), when set.
    pub user_known_hosts: Option<Vec<PathBuf>>,
    /// `GlobalKnownHostsFile` (empty for `none`), when set.
    pub global_known_hosts: Option<Vec<PathBuf>>,
    pub strict_host_key_checking: Option<StrictHostKeyChecking>,
    pub host_key_alias: Option<String>,
    /// `ConnectTimeout` in seconds; `0` and `none` (no timeout) are `None`.
    pub connect_timeout: Option<u64>,
    /// `ConnectionAttempts`: tries to connect, 1 or more.
    pub connection_attempts: Option<u32>,
    /// `ProxyCommand` as written (tokens not yet expanded), when it, not
    /// a `ProxyJump`, took the proxy slot.
    pub proxy_command: Option<String>,
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
    /// What swpush does with it, looked up once when the line is read.
    class: keywords::Class,
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

    /// Settings for each of `names` in turn (the native inventory: its
    /// name, then its address), a later one filling only what the earlier
    /// ones left unset; `options` (the command line's and the inventory's
    /// ssh arguments) come first and win, as `ssh -o` does.
    pub fn lookup(&self, names: &[&str], options: &[Setting]) -> SshSettings {
        let mut settings = SshSettings::default();
        for (index, name) in names.iter().enumerate() {
            if names[..index].contains(name) {
                continue;
            }
            let more = self.settings_for(name, options);
            if index == 0 {
                settings = more;
                continue;
            }
            settings.port = settings.port.or(more.port);
            settings.user = settings.user.or(more.user);
            if settings.identity_file.is_none() {
                settings.identity_file = more.identity_file;
                settings.further_identity_files = more.further_identity_files;
            }
            if settings.certificate_files.is_empty() {
                settings.certificate_files = more.certificate_files;
            }
            // ProxyJump and ProxyCommand are one setting: the first one wins.
            if settings.proxy_jump.is_none() && settings.proxy_command.is_none() {
                settings.proxy_jump = more.proxy_jump;
                settings.proxy_command = more.proxy_command;
            }
            settings.identities_only |= more.identities_only;
            settings.refused = settings.refused.or(more.refused);
            settings.identity_agent = settings.identity_agent.or(more.identity_agent);
            settings.user_known_hosts = settings.user_known_hosts.or(more.user_known_hosts);
            settings.global_known_hosts = settings.global_known_hosts.or(more.global_known_hosts);
            settings.strict_host_key_checking = settings
                .strict_host_key_checking
                .or(more.strict_host_key_checking);
            settings.host_key_alias = settings.host_key_alias.or(more.host_key_alias);
            settings.connect_timeout = settings.connect_timeout.or(more.connect_timeout);
            settings.connection_attempts =
                settings.connection_attempts.or(more.connection_attempts);
        }
        settings
    }

    fn settings_for(&self, host: &str, options: &[Setting]) -> SshSettings {
        let mut resolve = Resolve::new(host, &self.local_user, self.home.as_deref());
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
            let Some((keyword, class)) = keyword(&word) else {
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
                    resolve::check_value(keyword, &args).map_err(|e| located(&at, e))?;
                    if keyword == "IgnoreUnknown" {
                        self.ignore_unknown.push(args[0].to_ascii_lowercase());
                    }
                    // As the inventory's own fields are bounded: a name or
                    // a path of megabytes is a broken file, not a host.
                    let max = match keyword {
                        "HostName" | "User" => MAX_NAME_BYTES,
                        _ => MAX_VALUE_BYTES,
                    };
                    if let Some(long) = args.iter().find(|a| a.len() > max) {
                        return Err(located(
                            &at,
                            format!(
                                "`{keyword}` `{}` is longer than {max} bytes ({})",
                                quoted(long),
                                long.len()
                            ),
                        ));
                    }
                    items.push(Item::Set(Setting {
                        keyword,
                        class,
                        args,
                        at,
                    }));
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
    // OpenSSH takes a ProxyCommand's value as the rest of the line, as
    // written: it is a shell command, quoted for the shell.
    if word.eq_ignore_ascii_case("ProxyCommand") {
        let rest = rest.trim_start_matches([' ', '\t', '=']);
        return Ok(Some((word.to_owned(), vec![rest.to_owned()])));
    }
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

#[cfg(test)]
mod tests;
