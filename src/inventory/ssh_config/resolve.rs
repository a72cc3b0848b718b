//! Resolving one host against the parsed files: `Host` and `Match`
//! blocks, the first value for each keyword, `%`-tokens, and the refusal of
//! settings swpush does not implement.

use std::path::{Path, PathBuf};

use super::keywords::Class;
use super::{
    At, Criterion, CriterionKind, Item, Setting, SshSettings, parse_port, pattern_list_matches,
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

impl<'a> Resolve<'a> {
    pub(super) fn new(original: &str, local_user: &'a str, home: Option<&'a Path>) -> Self {
        Resolve {
            original: original.to_ascii_lowercase(),
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
            "ProxyCommand" => self.proxy = Some(Proxy::Command(value)),
            "IdentitiesOnly" => self.identities_only = matches!(lower.as_str(), "yes" | "true"),
            "UserKnownHostsFile" => {
                // OpenSSH's default: swpush reads the same file.
                let default = ["~/.ssh/known_hosts", "~/.ssh/known_hosts2"];
                if !setting.args.iter().all(|a| default.contains(&a.as_str())) {
                    self.refuse(named());
                }
            }
            "GlobalKnownHostsFile" => {
                // OpenSSH's default: swpush reads the same files.
                let default = ["/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"];
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
            proxy_command,
        }
    }

    /// `~/`, `%d`, `%u`, `%h`, `%r`, `%n`, `%p`, `%%`, as ssh expands them;
    /// `None` for any other token.
    fn expand_identity(&self, file: &str, host_name: Option<&str>) -> Option<PathBuf> {
        let home = self.home.map(|h| h.display().to_string());
        let (start, rest) = match (file.strip_prefix("~/"), &home) {
            (Some(tail), Some(home)) => (format!("{home}/"), tail),
            _ => (String::new(), file),
        };
        let expanded = expand_tokens(rest, |token| {
            Some(match token {
                'd' => home.clone()?,
                'u' => self.local_user.to_string(),
                'h' => host_name.unwrap_or(&self.original).to_string(),
                'n' => self.original.clone(),
                'r' => self.remote_user().to_string(),
                'p' => self.port.unwrap_or(22).to_string(),
                _ => return None,
            })
        })?;
        Some(PathBuf::from(start + &expanded))
    }
}

/// `HostName` with `%h` (the name given) and `%%`; `None` for other tokens.
fn expand_host_name(name: &str, original: &str) -> Option<String> {
    expand_tokens(name, |token| (token == 'h').then(|| original.to_string()))
}

/// `text` with each `%%` made `%` and each other `%X` made `token(X)`;
/// `None` for a token `token` does not know, or a `%` at the end.
fn expand_tokens(text: &str, token: impl Fn(char) -> Option<String>) -> Option<String> {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            '%' => out.push('%'),
            other => out.push_str(&token(other)?),
        }
    }
    Some(out)
}
