//! Resolving one host against the parsed files: `Host` and `Match`
//! blocks, the first value for each keyword, `%`-tokens, and the refusal of
//! settings swpush does not implement.

use std::path::{Path, PathBuf};

use super::keywords::Class;
use super::tokens::{Tokens, expand_host_name, parse_time};
use super::{
    At, Criterion, CriterionKind, IdentityAgent, Item, Setting, SshSettings, StrictHostKeyChecking,
    parse_port, pattern_list_matches,
};

/// Whether the lines under a `Host`/`Match` apply to the host being resolved.
#[derive(Debug, Clone)]
pub(super) enum State {
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
pub(super) struct Resolve<'a> {
    original: String,
    /// The name as given, not lower-cased (`%n`, `%k`).
    given: String,
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
    certificate_files: Vec<(String, At)>,
    identity_agent: Option<(String, At)>,
    user_known_hosts: Option<(Vec<String>, At)>,
    global_known_hosts: Option<Vec<String>>,
    strict_host_key_checking: Option<StrictHostKeyChecking>,
    host_key_alias: Option<String>,
    connect_timeout: Option<u64>,
    connection_attempts: Option<u32>,
}

impl<'a> Resolve<'a> {
    pub(super) fn new(original: &str, local_user: &'a str, home: Option<&'a Path>) -> Self {
        Resolve {
            original: original.to_ascii_lowercase(),
            given: original.to_owned(),
            local_user,
            home,
            seen: Vec::new(),
            host_name: None,
            user: None,
            port: None,
            identity_files: Vec::new(),
            proxy: None,
            identities_only: false,
            refused: None,
            certificate_files: Vec::new(),
            identity_agent: None,
            user_known_hosts: None,
            global_known_hosts: None,
            strict_host_key_checking: None,
            host_key_alias: None,
            connect_timeout: None,
            connection_attempts: None,
        }
    }

    pub(super) fn items(&mut self, items: &[Item], ceiling: &State) {
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

    pub(super) fn apply(&mut self, setting: &Setting, state: &State) {
        let keyword = setting.keyword;
        let class = setting.class;
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
        // These accumulate; ssh skips a file already listed.
        if matches!(keyword, "IdentityFile" | "CertificateFile") {
            let files = if keyword == "IdentityFile" {
                &mut self.identity_files
            } else {
                &mut self.certificate_files
            };
            if let Some(file) = setting.args.first()
                && !files.iter().any(|(listed, _)| listed == file)
            {
                files.push((file.clone(), setting.at.clone()));
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
        // ssh stores `ConnectTimeout none` as "unset": a later value wins.
        if keyword == "ConnectTimeout"
            && setting
                .args
                .first()
                .is_some_and(|v| v.eq_ignore_ascii_case("none"))
        {
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
            // ssh compares ProxyCommand with "none" case-sensitively (and
            // runs a command `NONE`); ProxyJump's `none` takes any case.
            "ProxyCommand" if value == "none" => self.proxy = Some(Proxy::Direct),
            "ProxyCommand" => self.proxy = Some(Proxy::Command(value)),
            "IdentitiesOnly" => self.identities_only = matches!(lower.as_str(), "yes" | "true"),
            "UserKnownHostsFile" => {
                self.user_known_hosts = Some((setting.args.clone(), setting.at.clone()));
            }
            "GlobalKnownHostsFile" => self.global_known_hosts = Some(setting.args.clone()),
            "IdentityAgent" => self.identity_agent = Some((value, setting.at.clone())),
            "StrictHostKeyChecking" => self.strict_host_key_checking = parse_strict(&lower),
            "HostKeyAlias" => self.host_key_alias = Some(value),
            "ConnectTimeout" => {
                self.connect_timeout = parse_connect_timeout(&value).flatten().filter(|t| *t > 0)
            }
            "ConnectionAttempts" => self.connection_attempts = parse_attempts(&value),
            _ => match class {
                Class::Refused(unless) if !unless.contains(&lower.as_str()) => self.refuse(named()),
                Class::Algorithms if !value.starts_with(['+', '^']) => self.refuse(named()),
                _ => {}
            },
        }
    }

    pub(super) fn finish(mut self) -> SshSettings {
        // ssh lower-cases the name it connects to (and looks up in known_hosts).
        let host_name = self.host_name.take().map(|name| {
            expand_host_name(&name, &self.original)
                .unwrap_or_else(|| {
                    self.refuse(format!(
                        "`HostName {name}` uses a %-token swpush does not expand"
                    ));
                    name
                })
                .to_ascii_lowercase()
        });
        let (mut proxy_jump, mut proxy_command) = (None, None);
        match self.proxy.take() {
            Some(Proxy::Command(command)) => proxy_command = Some(command),
            Some(Proxy::Jump(jump)) => proxy_jump = Some(jump),
            Some(Proxy::Direct) | None => {}
        }
        let host = host_name.clone().unwrap_or_else(|| self.original.clone());
        let remote_user = self.remote_user().to_owned();
        let alias = self
            .host_key_alias
            .clone()
            .unwrap_or_else(|| self.given.clone());
        let tokens = Tokens {
            home: self.home,
            local_user: self.local_user,
            host: &host,
            original: &self.given,
            port: self.port.unwrap_or(22),
            remote_user: &remote_user,
            alias: &alias,
        };
        let mut refusals = Vec::new();
        let mut expand = |keyword: &str, text: &str, at: &At| match tokens.expand_path(text) {
            Ok(path) => Some(path),
            Err(why) => {
                refusals.push(format!("`{keyword} {text}` ({at}): {why}"));
                None
            }
        };
        let mut identity_files: Vec<PathBuf> = Vec::new();
        for (file, at) in &self.identity_files {
            identity_files.extend(expand("IdentityFile", file, at).map(PathBuf::from));
        }
        let mut certificate_files = Vec::new();
        for (file, at) in &self.certificate_files {
            certificate_files.extend(expand("CertificateFile", file, at).map(PathBuf::from));
        }
        let identity_agent = match &self.identity_agent {
            None => None,
            Some((agent, _)) if agent.eq_ignore_ascii_case("none") => Some(IdentityAgent::None),
            Some((agent, _)) if agent == "SSH_AUTH_SOCK" => Some(IdentityAgent::Environment),
            // `$NAME`: the socket named by that variable, read when ssh
            // connects; unset, ssh goes without an agent.
            Some((agent, _)) if agent.starts_with('$') && !agent.starts_with("${") => Some(
                match std::env::var_os(&agent[1..]).filter(|v| !v.is_empty()) {
                    Some(path) => IdentityAgent::Socket(PathBuf::from(path)),
                    None => IdentityAgent::None,
                },
            ),
            Some((agent, at)) => {
                expand("IdentityAgent", agent, at).map(|p| IdentityAgent::Socket(p.into()))
            }
        };
        let user_known_hosts = match &self.user_known_hosts {
            None => None,
            Some((files, _)) if files.len() == 1 && files[0].eq_ignore_ascii_case("none") => {
                Some(Vec::new())
            }
            Some((files, at)) => Some(
                files
                    .iter()
                    .filter_map(|f| expand("UserKnownHostsFile", f, at).map(PathBuf::from))
                    .collect(),
            ),
        };
        let global_known_hosts = self.global_known_hosts.take().map(|files| {
            if files.len() == 1 && files[0].eq_ignore_ascii_case("none") {
                Vec::new()
            } else {
                files.into_iter().map(PathBuf::from).collect()
            }
        });
        for why in refusals {
            self.refuse(why);
        }
        let mut identity_files = identity_files.into_iter();
        SshSettings {
            host_name,
            port: self.port,
            user: self.user,
            identity_file: identity_files.next(),
            proxy_jump,
            identities_only: self.identities_only,
            refused: self.refused,
            further_identity_files: identity_files.collect(),
            certificate_files,
            identity_agent,
            user_known_hosts,
            global_known_hosts,
            strict_host_key_checking: self.strict_host_key_checking,
            host_key_alias: self.host_key_alias,
            connect_timeout: self.connect_timeout,
            connection_attempts: self.connection_attempts,
            proxy_command,
        }
    }
}

/// `StrictHostKeyChecking` as ssh spells it (lower-case).
fn parse_strict(lower: &str) -> Option<StrictHostKeyChecking> {
    Some(match lower {
        "yes" | "true" => StrictHostKeyChecking::Yes,
        "no" | "false" | "off" => StrictHostKeyChecking::No,
        "ask" => StrictHostKeyChecking::Ask,
        "accept-new" => StrictHostKeyChecking::AcceptNew,
        _ => return None,
    })
}

/// `ConnectTimeout`: `none` is `Some(None)`, a time value `Some(Some(s))`.
fn parse_connect_timeout(text: &str) -> Option<Option<u64>> {
    if text.eq_ignore_ascii_case("none") {
        return Some(None);
    }
    parse_time(text).map(Some)
}

/// `ConnectionAttempts`: a count of tries, 1 or more.
fn parse_attempts(text: &str) -> Option<u32> {
    text.parse().ok().filter(|n| *n >= 1)
}

/// A value ssh rejects when it reads the line (the whole file fails, in
/// ssh too); `Err` says why.
pub(super) fn check_value(keyword: &str, args: &[String]) -> Result<(), String> {
    let Some(value) = args.first() else {
        return Ok(());
    };
    let lower = value.to_ascii_lowercase();
    let good = match keyword {
        "StrictHostKeyChecking" => parse_strict(&lower).is_some(),
        "IdentitiesOnly" => matches!(lower.as_str(), "yes" | "no" | "true" | "false"),
        "ConnectTimeout" => parse_connect_timeout(value).is_some(),
        "ConnectionAttempts" => parse_attempts(value).is_some(),
        _ => true,
    };
    if good {
        Ok(())
    } else {
        Err(format!("`{keyword}`: `{value}` is not a value ssh accepts"))
    }
}
