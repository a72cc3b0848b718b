//! The inventory: which hosts exist, how to reach them, and their settings.
//!
//! Formats are told apart by content: Ansible's `--list` JSON (`json`, also
//! what an executable inventory prints), Ansible's INI (`ini`), Ansible's
//! YAML (a top-level `all:`) and the native YAML; a `-i` value with a comma
//! that is no file is an inline host list (`inline`). Then `~/.ssh/config` fills what the
//! inventory leaves unset (and refuses hosts that OpenSSH would reach
//! another way, see [`ssh_config`]), then built-in defaults. The result is a list of
//! [`Host`]s that are complete and checked: every later step can use them
//! without asking again. Choosing hosts with `--limit` lives in [`select`].
//! This module never connects anywhere.

mod ansible;
mod ini;
mod inline;
mod json;
mod native;
mod proxy;
pub mod select;
mod ssh_config;
mod vars;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use select::select_hosts;
use vars::Vars;

/// Where each client keeps swpush's files (SPEC §5); per host, from the inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientPaths {
    pub known_servers: String,
    pub prefix: String,
    pub state_dir: String,
    pub cache_dir: String,
}

impl Default for ClientPaths {
    fn default() -> Self {
        ClientPaths {
            known_servers: "/etc/swpush/known_servers".into(),
            prefix: "/opt/swpush".into(),
            state_dir: "/var/lib/swpush".into(),
            cache_dir: "/var/cache/swpush".into(),
        }
    }
}

/// One host, fully resolved: inventory, then `~/.ssh/config`, then defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Host {
    /// The inventory name: what reports and `--limit` use.
    #[serde(rename = "host")]
    pub name: String,
    pub address: String,
    pub port: u16,
    pub user: String,
    pub identity_file: Option<PathBuf>,
    /// Run the client step through `sudo -n`.
    #[serde(rename = "become")]
    pub become_root: bool,
    pub proxy_jump: Option<String>,
    /// A setting that would make OpenSSH connect another way than swpush
    /// does (`ProxyCommand`, `ControlPath`, ...), with where it comes from:
    /// such a host is `unreachable`, never connected to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// Shell command run on the client; exit 0 means busy.
    pub busy_check: Option<String>,
    /// Seconds between busy checks; `None` takes the command line's value.
    pub busy_wait: Option<u64>,
    /// Busy checks before giving up; `None` takes the command line's value.
    pub busy_retries: Option<u32>,
    /// The inventory's health check settings, over the package's.
    #[serde(skip_serializing_if = "crate::health::HealthSpec::is_unset")]
    pub health: crate::health::HealthSpec,
    /// Seconds the client waits for the controller's confirmation; `None`
    /// takes the default, 0 turns it off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirm_timeout: Option<u64>,
    pub keep_releases: u32,
    /// The inventory's `mirror`: where this host fetches packages from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror: Option<crate::mirror::Mirror>,
    pub paths: ClientPaths,
    /// Groups the host belongs to, in inventory order.
    pub groups: Vec<String>,
    /// Whom sudo runs the step as (`sudo -u`); root when `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub become_user: Option<String>,
    /// Why this host cannot become as the inventory says (a become method
    /// other than sudo): the host is refused when it becomes.
    #[serde(skip)]
    pub become_refused: Option<String>,
    /// How OpenSSH would authenticate and check the host beyond the fields
    /// above (ssh_config and the inventory's ssh arguments, as `ssh -G`).
    pub ssh: SshOptions,
    /// How the connection reaches the host: directly, through jump hosts
    /// (each resolved as `ssh HOP` would resolve it), or through a
    /// `ProxyCommand`. `proxy_jump` above keeps the chain as written.
    #[serde(skip_serializing_if = "Proxy::is_direct")]
    pub proxy: Proxy,
}

/// How a connection reaches a host (`ProxyJump` and `ProxyCommand` are one
/// setting in OpenSSH: the first one given wins).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Proxy {
    /// Straight to `address:port`.
    Direct,
    /// Through these jump hosts, first hop first. The first hop is reached
    /// as its own `proxy` says; each later one over the previous one, as
    /// `ssh -J a,b` does.
    Jump(Vec<Host>),
    /// Through this shell command (tokens expanded), run with `/bin/sh -c`:
    /// SSH speaks over its stdin and stdout.
    Command(String),
}

impl Proxy {
    fn is_direct(&self) -> bool {
        *self == Proxy::Direct
    }
}

impl Host {
    /// What the report says the host was reached through: the jump chain
    /// as written, or the proxy command; `None` for a direct connection.
    pub fn via(&self) -> Option<String> {
        match &self.proxy {
            Proxy::Direct => None,
            Proxy::Jump(_) => self.proxy_jump.clone(),
            Proxy::Command(command) => Some(format!("ProxyCommand {command}")),
        }
    }
}

/// What `ssh -G` resolves for a host that decides how swpush logs in and
/// whose host key it trusts, beyond address, port, user and identity_file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SshOptions {
    /// ssh_config's `IdentityFile`s after the first (which is
    /// `identity_file`), tried after it in order, as ssh does.
    pub further_identity_files: Vec<PathBuf>,
    /// `CertificateFile`s, offered with the identity they certify.
    pub certificate_files: Vec<PathBuf>,
    /// `IdentitiesOnly yes`: offer only the configured identities (and
    /// the agent's copies of them), never the agent's other keys.
    pub identities_only: bool,
    /// `IdentityAgent`: which ssh-agent to ask, if any.
    pub identity_agent: IdentityAgent,
    /// `UserKnownHostsFile`: checked, and where new keys are recorded
    /// (the first); `--known-hosts` replaces them.
    pub user_known_hosts: Vec<PathBuf>,
    /// `GlobalKnownHostsFile`: checked, never written.
    pub global_known_hosts: Vec<PathBuf>,
    /// `StrictHostKeyChecking`.
    pub strict_host_key_checking: StrictHostKeyChecking,
    /// `HostKeyAlias`: the name known_hosts is searched (and written) for
    /// instead of the address and port.
    pub host_key_alias: Option<String>,
    /// `ConnectTimeout` in seconds; `None` takes the command line's value.
    pub connect_timeout: Option<u64>,
    /// `ConnectionAttempts`: tries to connect (retries + 1); `None` takes
    /// the command line's `--connect-retries`.
    pub connection_attempts: Option<u32>,
}

/// Where the ssh-agent is (`IdentityAgent`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "path")]
pub enum IdentityAgent {
    /// `SSH_AUTH_SOCK` (ssh's default, and `IdentityAgent SSH_AUTH_SOCK`).
    Environment,
    /// `IdentityAgent none`: no agent.
    None,
    /// A socket path (`~` and tokens expanded, `$VAR` read).
    Socket(PathBuf),
}

/// `StrictHostKeyChecking`: what to do with a host key known_hosts does not list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StrictHostKeyChecking {
    /// ssh's default `ask`: with nobody to ask (swpush never prompts),
    /// refuse it unless `--accept-new-host-keys`.
    Ask,
    /// `yes`: refuse it (`--accept-new-host-keys` still wins, as an
    /// `ssh -o` option beats the file).
    Yes,
    /// `accept-new`: record it and connect.
    AcceptNew,
    /// `no`/`off`: record it and connect (a changed key is still refused).
    No,
}

/// The machine's known_hosts files OpenSSH reads by default.
pub const GLOBAL_KNOWN_HOSTS: [&str; 2] = ["/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"];

impl SshOptions {
    /// OpenSSH's defaults for a user whose home is `home`.
    pub fn defaults(home: Option<&Path>) -> SshOptions {
        SshOptions {
            further_identity_files: Vec::new(),
            certificate_files: Vec::new(),
            identities_only: false,
            identity_agent: IdentityAgent::Environment,
            user_known_hosts: home
                .map(|home| {
                    vec![
                        home.join(".ssh/known_hosts"),
                        home.join(".ssh/known_hosts2"),
                    ]
                })
                .unwrap_or_default(),
            global_known_hosts: GLOBAL_KNOWN_HOSTS.iter().map(PathBuf::from).collect(),
            strict_host_key_checking: StrictHostKeyChecking::Ask,
            host_key_alias: None,
            connect_timeout: None,
            connection_attempts: None,
        }
    }
}

/// Releases a client keeps when the inventory does not say.
const DEFAULT_KEEP_RELEASES: u32 = 3;

impl Host {
    /// A host that is only where and as whom to log in: no inventory
    /// settings, no ssh_config, default client paths.
    pub fn plain(name: &str, address: &str, port: u16, user: &str) -> Host {
        Host {
            name: name.into(),
            address: address.into(),
            port,
            user: user.into(),
            identity_file: None,
            become_root: false,
            proxy_jump: None,
            refused: None,
            busy_check: None,
            busy_wait: None,
            busy_retries: None,
            health: crate::health::HealthSpec::default(),
            confirm_timeout: None,
            keep_releases: DEFAULT_KEEP_RELEASES,
            mirror: None,
            paths: ClientPaths::default(),
            groups: Vec::new(),
            become_user: None,
            become_refused: None,
            ssh: SshOptions::defaults(None),
            proxy: Proxy::Direct,
        }
    }
}

/// A loaded inventory: hosts in the order the file lists them.
#[derive(Debug, Clone)]
pub struct Inventory {
    pub hosts: Vec<Host>,
    /// Every group name, so `--limit` can tell an empty group from a typo.
    pub groups: Vec<String>,
}

/// A mistake in the inventory, located as precisely as the input allows.
#[derive(Debug, thiserror::Error)]
pub struct InventoryError {
    /// `FILE`, or `FILE:LINE:COLUMN`.
    pub location: String,
    pub message: String,
}

impl fmt::Display for InventoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// Where the inventory is read from and what surrounds it.
#[derive(Debug, Clone)]
pub struct LoadContext {
    /// The user's home: `~` in paths and `~/.ssh/config`.
    pub home: Option<PathBuf>,
    /// The login name used when nothing else names a user.
    pub local_user: String,
}

impl LoadContext {
    /// HOME and USER from the environment, as OpenSSH-based tools do.
    pub fn from_env() -> Self {
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from);
        let local_user = ["USER", "LOGNAME"]
            .iter()
            .find_map(|var| std::env::var(var).ok().filter(|u| !u.is_empty()))
            .unwrap_or_else(|| "root".to_owned());
        LoadContext { home, local_user }
    }
}

/// What swpush's command line says about logging in (`-u`,
/// `--private-key`): it takes part in resolving `~/.ssh/config` as ssh's
/// `-l` and `-i` do (a `Match user` sees `-u`), and beats the inventory.
#[derive(Debug, Clone, Default)]
pub struct Login {
    pub user: Option<String>,
    pub identity_file: Option<PathBuf>,
}

/// Longest inventory file we read: far beyond any real fleet, small enough
/// that a runaway file cannot exhaust memory.
const MAX_INVENTORY_BYTES: u64 = 16 * 1024 * 1024;

/// Reads and checks an inventory file.
pub fn load(path: &Path, context: &LoadContext) -> Result<Inventory, InventoryError> {
    load_as(path, context, &Login::default())
}

/// Reads and checks an inventory file, resolving it with `login` from the
/// command line.
pub fn load_as(
    path: &Path,
    context: &LoadContext,
    login: &Login,
) -> Result<Inventory, InventoryError> {
    let file_error = |message: String| InventoryError {
        location: path.display().to_string(),
        message,
    };
    if let Some(list) = path.to_str().filter(|p| inline::is_inline(p)) {
        let raw = inline::parse(list)?;
        if raw.hosts.is_empty() {
            return Err(file_error("the host list names no host".into()));
        }
        return resolve_all(raw, Path::new("."), context, Dialect::Ansible, login);
    }
    let metadata = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => file_error(
            "no such file (for a list of hosts, end it with a comma: `-i 'HOST,'`)".into(),
        ),
        _ => file_error(io_message(&e)),
    })?;
    if metadata.is_dir() {
        return Err(file_error("is a directory, not an inventory file".into()));
    }
    if metadata.len() > MAX_INVENTORY_BYTES {
        return Err(file_error(format!(
            "is larger than {} MiB; is this an inventory?",
            MAX_INVENTORY_BYTES >> 20
        )));
    }
    // An executable inventory is a program, as in Ansible: its `--list`
    // output (JSON) is the inventory.
    if std::os::unix::fs::PermissionsExt::mode(&metadata.permissions()) & 0o111 != 0 {
        let text = json::run_script(path)?;
        let base_dir = path.parent().unwrap_or(Path::new("."));
        return parse_as(&text, path, base_dir, context, login);
    }
    let bytes = std::fs::read(path).map_err(|e| file_error(io_message(&e)))?;
    let text = String::from_utf8(bytes).map_err(|_| file_error("is not UTF-8 text".into()))?;
    let base_dir = path.parent().unwrap_or(Path::new("."));
    parse_as(&text, path, base_dir, context, login)
}

/// Parses inventory text; `path` names it in errors, `base_dir` anchors relative paths.
pub fn parse(
    text: &str,
    path: &Path,
    base_dir: &Path,
    context: &LoadContext,
) -> Result<Inventory, InventoryError> {
    parse_as(text, path, base_dir, context, &Login::default())
}

fn parse_as(
    text: &str,
    path: &Path,
    base_dir: &Path,
    context: &LoadContext,
    login: &Login,
) -> Result<Inventory, InventoryError> {
    let source = vars::Source { text, path };
    let (raw, dialect) = if json::looks_like_json(text) {
        (json::parse(&source)?, Dialect::Ansible)
    } else if ini::looks_like_ini(text) {
        (ini::parse(&source)?, Dialect::Ansible)
    } else if ansible::looks_like_ansible(&source)? {
        (ansible::parse(&source)?, Dialect::Ansible)
    } else {
        (native::parse(&source)?, Dialect::Native)
    };
    if raw.hosts.is_empty() {
        return Err(source.error_at_file("the inventory lists no hosts"));
    }
    resolve_all(raw, base_dir, context, dialect, login)
}

/// Which name `~/.ssh/config` is resolved for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    /// As Ansible runs ssh: `ansible_host`, else the inventory name.
    Ansible,
    /// swpush's own rule: the inventory name, then the address for what
    /// the name left unset.
    Native,
}

/// Resolves every host of a parsed inventory through `~/.ssh/config`.
fn resolve_all(
    raw: RawInventory,
    base_dir: &Path,
    context: &LoadContext,
    dialect: Dialect,
    login: &Login,
) -> Result<Inventory, InventoryError> {
    let ssh_config = ssh_config::SshConfig::load(context.home.as_deref(), &context.local_user)?;
    let hosts = raw
        .hosts
        .into_iter()
        .map(|entry| resolve_host(entry, &ssh_config, base_dir, context, dialect, login, 0))
        .collect();
    Ok(Inventory {
        hosts,
        groups: raw.groups,
    })
}

/// What a dialect parser hands over: hosts with their merged inventory vars.
struct RawInventory {
    hosts: Vec<RawHost>,
    groups: Vec<String>,
}

struct RawHost {
    name: String,
    vars: Vars,
    groups: Vec<String>,
}

/// Fills a host from its inventory vars, then `~/.ssh/config`, then
/// defaults; `depth` counts the jump hosts resolved on the way to it.
fn resolve_host(
    raw: RawHost,
    ssh_config: &ssh_config::SshConfig,
    base_dir: &Path,
    context: &LoadContext,
    dialect: Dialect,
    login: &Login,
    depth: usize,
) -> Host {
    let vars = raw.vars;
    let mut refused = None;
    // What ssh is told before it reads a file, as `-l`/`-o User=`/`-o
    // Port=`: `-u`, then the inventory's user and port (the first value wins).
    let port_text = vars.port.map(|p| p.to_string());
    let mut options: Vec<_> = [
        ("-u", "User", login.user.as_deref()),
        ("the inventory", "User", vars.user.as_deref()),
        ("the inventory", "Port", port_text.as_deref()),
    ]
    .into_iter()
    .filter_map(|(source, keyword, value)| ssh_config::option(source, keyword, value?))
    .collect();
    for (var, text) in [
        ("ansible_ssh_args", &vars.ssh_args),
        ("ansible_ssh_common_args", &vars.ssh_common_args),
        ("ansible_ssh_extra_args", &vars.ssh_extra_args),
    ] {
        if let Some(text) = text {
            match ssh_config::command_line_settings(var, text) {
                Ok(more) => options.extend(more),
                Err(why) => {
                    refused.get_or_insert(why);
                }
            }
        }
    }
    if let Some(connection) = &vars.connection
        && !matches!(connection.as_str(), "ssh" | "smart")
    {
        // paramiko is ssh in another client, with its own settings and
        // host-key handling: swpush cannot do what it would do.
        refused.get_or_insert(format!(
            "`ansible_connection: {connection}` (swpush connects only as Ansible's `ssh` plugin does)"
        ));
    }
    let names = match (dialect, vars.address.as_deref()) {
        (Dialect::Ansible, Some(address)) => vec![address],
        (Dialect::Ansible, None) => vec![raw.name.as_str()],
        (Dialect::Native, address) => [Some(raw.name.as_str()), address]
            .into_iter()
            .flatten()
            .collect(),
    };
    let from_ssh = ssh_config.lookup(&names, &options);
    // `%n` of a ProxyCommand: the name ssh was given.
    let given_name = names[0].to_owned();
    let defaults = ClientPaths::default();
    let expand = |p: &str| expand_path(p, base_dir, context.home.as_deref());
    // As `ssh -i KEY` (and Ansible's `-o IdentityFile=KEY`): the given
    // key first, ssh_config's after it.
    let given_identity = login
        .identity_file
        .clone()
        .or_else(|| vars.identity_file.as_deref().map(expand));
    let mut identity_files: Vec<PathBuf> = given_identity
        .into_iter()
        .chain(from_ssh.identity_file)
        .chain(from_ssh.further_identity_files)
        .collect();
    identity_files.dedup();
    let mut identity_files = identity_files.into_iter();
    let identity_file = identity_files.next();
    let mut ssh = SshOptions::defaults(context.home.as_deref());
    ssh.further_identity_files = identity_files.collect();
    ssh.certificate_files = from_ssh.certificate_files;
    ssh.identities_only = from_ssh.identities_only;
    if let Some(agent) = from_ssh.identity_agent {
        ssh.identity_agent = agent;
    }
    if let Some(files) = from_ssh.user_known_hosts {
        ssh.user_known_hosts = files;
    }
    if let Some(files) = from_ssh.global_known_hosts {
        ssh.global_known_hosts = files;
    }
    if let Some(strict) = from_ssh.strict_host_key_checking {
        ssh.strict_host_key_checking = strict;
    }
    ssh.host_key_alias = from_ssh.host_key_alias;
    ssh.connect_timeout = from_ssh.connect_timeout;
    ssh.connection_attempts = from_ssh.connection_attempts;
    if let Some(name) = &vars.become_password {
        refused.get_or_insert(format!(
            "`{name}` is set: swpush takes no password from an inventory file (pass -K/--ask-become-pass, or give the user NOPASSWD sudo)"
        ));
    }
    let become_refused = vars
        .become_method
        .as_deref()
        .filter(|method| *method != "sudo")
        .map(|method| {
            format!(
                "`ansible_become_method: {}` (swpush becomes only through sudo)",
                vars::quoted(method)
            )
        });
    let become_root = vars.become_root.unwrap_or(false);
    if become_root && let Some(why) = &become_refused {
        refused.get_or_insert(why.clone());
    }
    let mut refused = refused.or(from_ssh.refused);
    // An Ansible inventory's `ansible_host` is the name ssh is given, so
    // its `HostName` wins; a native inventory's `address` is the last word.
    let address = match dialect {
        Dialect::Ansible => from_ssh.host_name.or(vars.address),
        Dialect::Native => vars.address.or(from_ssh.host_name),
    }
    // As ssh, which lower-cases the name it is given.
    .unwrap_or_else(|| raw.name.to_ascii_lowercase());
    // `-u`, then the inventory's user and port, were given to the lookup
    // first (as `-l`, `-o User=`, `-o Port=`), so they are its answer.
    let port = from_ssh.port.unwrap_or(22);
    let user = from_ssh.user.unwrap_or_else(|| context.local_user.clone());
    // The inventory's `proxy_jump` is `ssh -J`: it beats a ProxyCommand
    // from the files, as the command line does.
    let (proxy_jump, proxy_command) = match vars.proxy_jump {
        // `-J none`, as `ssh -J a b` gives a later hop b.
        Some(jump) if jump.eq_ignore_ascii_case("none") => (None, None),
        Some(jump) => (Some(jump), None),
        None => (from_ssh.proxy_jump, from_ssh.proxy_command),
    };
    let proxy = match (&proxy_jump, proxy_command) {
        (Some(chain), _) => {
            // Each hop as `ssh HOP`: its name, the chain's user and port
            // as `-l`/`-p`; the command line's `-u`/`--private-key` are the
            // target's, not the hops'.
            match proxy::jump_hosts(chain, depth, |raw, depth| {
                let login = Login::default();
                resolve_host(
                    raw,
                    ssh_config,
                    base_dir,
                    context,
                    Dialect::Ansible,
                    &login,
                    depth,
                )
            }) {
                Ok(hops) => Proxy::Jump(hops),
                Err(why) => {
                    refused.get_or_insert(why);
                    Proxy::Direct
                }
            }
        }
        (None, Some(command)) => {
            let tokens = proxy::Tokens {
                host_name: &address,
                port,
                user: &user,
                name: &given_name,
            };
            match proxy::expand_command(&command, &tokens) {
                Ok(command) => Proxy::Command(command),
                Err(why) => {
                    refused.get_or_insert(why);
                    Proxy::Direct
                }
            }
        }
        (None, None) => Proxy::Direct,
    };
    Host {
        address,
        port,
        user,
        identity_file,
        become_root,
        proxy_jump,
        refused,
        busy_check: vars.busy_check,
        busy_wait: vars.busy_wait,
        busy_retries: vars.busy_retries,
        health: crate::health::HealthSpec {
            check: vars.health_check,
            interval: vars.health_interval,
            timeout: vars.health_timeout,
        },
        confirm_timeout: vars.confirm_timeout,
        keep_releases: vars.keep_releases.unwrap_or(DEFAULT_KEEP_RELEASES),
        mirror: vars.mirror,
        paths: ClientPaths {
            known_servers: vars.known_servers.unwrap_or(defaults.known_servers),
            prefix: vars.prefix.unwrap_or(defaults.prefix),
            state_dir: vars.state_dir.unwrap_or(defaults.state_dir),
            cache_dir: vars.cache_dir.unwrap_or(defaults.cache_dir),
        },
        groups: raw.groups,
        name: raw.name,
        become_user: vars.become_user,
        become_refused,
        ssh,
        proxy,
    }
}

/// `~/x` → `$HOME/x`; a relative path is relative to the inventory's folder.
fn expand_path(path: &str, base_dir: &Path, home: Option<&Path>) -> PathBuf {
    match (path.strip_prefix("~/"), home) {
        (Some(rest), Some(home)) => home.join(rest),
        _ if Path::new(path).is_absolute() => PathBuf::from(path),
        _ => base_dir.join(path),
    }
}

/// An I/O error as a short phrase ("no such file", not "No such file or directory (os error 2)").
pub(crate) fn io_message(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => {
            let text = error.to_string();
            match text.find(" (os error") {
                Some(end) => text[..end].to_owned(),
                None => text,
            }
        }
    }
}

#[cfg(test)]
mod tests;
