//! The command line: clap definitions, dispatch, and one short function per
//! command, which checks its arguments, builds its job and hands it to
//! [`crate::run`].
//!
//! Every command returns how it [`Ended`] or an error; `main` turns those
//! into the exit status (SPEC §7). Commands that act on hosts share
//! [`FleetArgs`]; nothing here knows how SSH works.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::inventory::{self, Host};
use crate::order::{Change, Op, Policy};
use crate::package::manifest::PackageName;
use crate::report::PackageInfo;
use crate::rollout::{MaxFail, Serial};
use crate::run::{self, Ended, Env, Settings, emit};
use crate::step::{StepRequest, Subject};
use crate::untrusted::json_safe;
use crate::version::Version;
use crate::{enroll, key, package, status};

/// `--version`: the crate's version and the git revision it was built
/// from (`unknown` when built outside a git checkout; see build.rs).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("SWPUSH_GIT_REVISION"),
    ")"
);

#[derive(Parser, Debug)]
#[command(
    name = "swpush",
    version = VERSION,
    about = "Install and upgrade software on a fleet over plain SSH",
    long_about = "Install and upgrade software on a fleet over plain SSH.\n\n\
        Each client checks the controller's signed right to distribute before it \
        accepts a package, waits while it is busy, installs atomically and reports \
        back; swpush prints one report of which hosts did not make it and why.\n\n\
        Exit status: 0 every selected host succeeded or was skipped; 1 nothing was \
        attempted (bad arguments, inventory, package or key); 2 at least one host \
        did not succeed, or none did what was asked because what it was asked for \
        is on none of them (a name installed nowhere, a version kept nowhere, an \
        install where every host has another version)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Install PKG where it is absent
    Install(InstallArgs),
    /// Upgrade to PKG where an older version is current
    Upgrade(UpgradeArgs),
    /// Make the previous (or given) kept release current again
    Rollback(RollbackArgs),
    /// Uninstall a package: run its pre_remove hook, remove its releases and state
    Remove(NameArgs),
    /// Ask each host what is installed
    Status(StatusArgs),
    /// Build a package from a folder holding swpush.yaml
    Pack(PackArgs),
    /// Put a package where a mirror serves it, named by its sha256 (for --mirror)
    Publish(PublishArgs),
    /// Create the controller's distribution key (ed25519, OpenSSH format)
    Keygen(KeygenArgs),
    /// Grant this controller's key the right to distribute on each selected client
    Enroll(EnrollArgs),
    /// List the hosts a --limit selects, without connecting
    Hosts(HostsArgs),
    /// Print a shell completion script (bash, zsh or fish) to stdout
    Completions(CompletionsArgs),
    /// Print the man page (roff) to stdout
    Man,
}

/// Which inventory, and which hosts of it.
#[derive(Args, Debug)]
pub struct SelectArgs {
    /// Inventory file (native swpush YAML, Ansible YAML or INI), or a host list: `HOST,` or `a,user@b:2222`
    #[arg(long, short = 'i', env = "SWPUSH_INVENTORY", value_name = "FILE")]
    pub inventory: PathBuf,
    /// Hosts to act on, as Ansible's --limit: names, groups, globs (web*), ~regex,
    /// &intersections, !exclusions, @FILE; separated by `,` (or `:`). @failed:
    /// the hosts that did not succeed in the last run of this command and package
    // Given twice, the last one wins, as Ansible's `--limit` (argparse
    // `store`, cli/arguments/option_helpers.py).
    #[arg(long, short = 'l', value_name = "PATTERNS", overrides_with = "limit")]
    pub limit: Option<String>,
    #[command(flatten)]
    pub overrides: crate::overrides::OverrideArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Options of every command that connects to hosts.
#[derive(Args, Debug)]
pub struct HostArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    /// Hosts in flight at once (1 or more)
    #[arg(long, short = 'f', default_value_t = 100)]
    #[arg(allow_negative_numbers = true, value_parser = FORKS.parser::<u32>())]
    pub forks: u32,
    /// Seconds to wait for an SSH connection (1 to 3600) [default: the host's ConnectTimeout, else 10]
    #[arg(long, value_name = "S")]
    #[arg(allow_negative_numbers = true, value_parser = CONNECT_TIMEOUT.parser::<u64>())]
    pub connect_timeout: Option<u64>,
    /// Times connecting to a host is tried again (0 to 10) after a transient
    /// failure (refused, reset, timed out, handshake dropped), with backoff;
    /// never after a host key or login refused [default: the host's
    /// ConnectionAttempts - 1, else 2]
    #[arg(long, value_name = "N")]
    #[arg(allow_negative_numbers = true, value_parser = CONNECT_RETRIES.parser::<u32>())]
    pub connect_retries: Option<u32>,
    /// Run the hosts in batches, in inventory order, each only once the one
    /// before it has finished: N hosts, N% of them, or a list such as
    /// 1,10%,100% whose last size repeats. The first batch is the canary:
    /// without --max-fail, the rollout stops at the first host that does
    /// not succeed
    #[arg(long, value_name = "N|N%|LIST")]
    pub serial: Option<Serial>,
    /// Stop once more than N hosts (or N% of the hosts selected) did not
    /// succeed, counted over the whole run: no new host or batch starts,
    /// hosts not started end not-attempted, hosts in flight finish (exit 2)
    #[arg(long, value_name = "N|N%")]
    pub max_fail: Option<MaxFail>,
    /// Seconds a host may take in all (1 to 604800), after which it is `timeout`
    #[arg(long, default_value_t = 600, value_name = "S")]
    #[arg(allow_negative_numbers = true, value_parser = TIMEOUT.parser::<u64>())]
    pub timeout: u64,
    /// Report format on stdout
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Also write the JSON report to FILE
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// known_hosts file for host keys, instead of each host's UserKnownHostsFile [default: ~/.ssh/known_hosts]
    #[arg(long, value_name = "FILE")]
    pub known_hosts: Option<PathBuf>,
    /// Trust and record host keys seen for the first time (a changed key is always refused)
    #[arg(long)]
    pub accept_new_host_keys: bool,
    /// Print only the summary and the hosts that did not succeed
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// After the text report, the time each host spent in each phase and,
    /// for a host whose SSH connection failed, what the SSH layer knew of it
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// When another swpush run is working on some of the same hosts, wait
    /// for it to end (at most SECONDS, 0 to 604800) instead of refusing at once
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, require_equals = true)]
    #[arg(allow_negative_numbers = true, value_parser = WAIT.parser::<u64>())]
    pub wait: Option<Option<u64>>,
}

/// Options of the commands that change clients under a signed order.
#[derive(Args, Debug)]
pub struct ChangeArgs {
    /// Distribution key [default: ~/.config/swpush/distribution_key]
    #[arg(long, env = "SWPUSH_KEY", value_name = "PATH")]
    pub key: Option<PathBuf>,
    /// Connect, verify and decide, report what would happen; change nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// Waiting for busy clients.
#[derive(Args, Debug)]
pub struct BusyArgs {
    /// Seconds between checks while a client is busy (1 to 3600)
    #[arg(long, default_value_t = 10, value_name = "S")]
    #[arg(allow_negative_numbers = true, value_parser = BUSY_WAIT.parser::<u64>())]
    pub busy_wait: u64,
    /// Busy checks before a client is given up as `busy` (0 or more; 0: at once)
    #[arg(long, default_value_t = 6, value_name = "N")]
    #[arg(allow_negative_numbers = true, value_parser = BUSY_RETRIES.parser::<u32>())]
    pub busy_retries: u32,
}

/// Everything install, upgrade, rollback and remove share.
#[derive(Args, Debug)]
pub struct FleetArgs {
    #[command(flatten)]
    pub hosts: HostArgs,
    #[command(flatten)]
    pub change: ChangeArgs,
    #[command(flatten)]
    pub busy: BusyArgs,
}

/// Mirror mode (docs/scaling.md): where clients fetch the package.
#[derive(Args, Debug)]
pub struct MirrorArgs {
    /// Clients fetch the package from URL/sha256/HEX (`swpush publish`);
    /// the controller sends only the order. A host's inventory `mirror` wins
    #[arg(long, value_name = "URL", value_parser = mirror_url)]
    pub mirror: Option<crate::mirror::Mirror>,
    /// Send every host the package over SSH, whatever the inventory's `mirror`
    #[arg(long, conflicts_with_all = ["mirror", "mirror_fallback"])]
    pub no_mirror: bool,
    /// Send the package over SSH to a host whose fetch from its mirror failed
    #[arg(long)]
    pub mirror_fallback: bool,
    /// Seconds a mirror may send nothing before a fetch attempt is given up (1 to 3600)
    #[arg(long, default_value_t = crate::mirror::DEFAULT_TIMEOUT, value_name = "S")]
    #[arg(allow_negative_numbers = true, value_parser = MIRROR_TIMEOUT.parser::<u64>())]
    pub mirror_timeout: u64,
}

impl MirrorArgs {
    pub fn plan(&self) -> crate::mirror::MirrorPlan {
        crate::mirror::MirrorPlan {
            default: self.mirror.clone(),
            off: self.no_mirror,
            fallback: self.mirror_fallback,
            timeout: self.mirror_timeout,
        }
    }
}

fn mirror_url(text: &str) -> Result<crate::mirror::Mirror, String> {
    crate::mirror::Mirror::parse(text)
}

#[derive(Args, Debug)]
pub struct InstallArgs {
    /// Package file (.tar, .tar.gz, .tar.zst)
    #[arg(value_name = "PKG")]
    pub package: PathBuf,
    /// Replace a package of the same name and version whose content differs
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub mirror: MirrorArgs,
    #[command(flatten)]
    pub fleet: FleetArgs,
}

#[derive(Args, Debug)]
pub struct UpgradeArgs {
    /// Package file (.tar, .tar.gz, .tar.zst)
    #[arg(value_name = "PKG")]
    pub package: PathBuf,
    /// Also install where the package is absent
    #[arg(long)]
    pub install_missing: bool,
    /// Also go down where a newer version is current
    #[arg(long)]
    pub allow_downgrade: bool,
    /// Replace a package of the same name and version whose content differs
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub mirror: MirrorArgs,
    #[command(flatten)]
    pub fleet: FleetArgs,
}

#[derive(Args, Debug)]
pub struct RollbackArgs {
    /// Package name
    pub name: String,
    /// Kept release to make current [default: the previous one]
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,
    #[command(flatten)]
    pub fleet: FleetArgs,
}

#[derive(Args, Debug)]
pub struct NameArgs {
    /// Package name
    pub name: String,
    #[command(flatten)]
    pub fleet: FleetArgs,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Only this package [default: every package]
    pub name: Option<String>,
    #[command(flatten)]
    pub hosts: HostArgs,
}

#[derive(Args, Debug)]
pub struct PackArgs {
    /// Folder holding swpush.yaml and the files to install
    pub dir: PathBuf,
    /// Output file; .tar.gz, .tar.zst or .tar [default: NAME-VERSION.tar.gz]
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct PublishArgs {
    /// Package file (.tar, .tar.gz, .tar.zst)
    #[arg(value_name = "PKG")]
    pub package: PathBuf,
    /// Directory an HTTP server serves; the package goes to DEST/sha256/HEX
    #[arg(long, value_name = "DEST", value_parser = crate::publish::Destination::parse)]
    pub to: crate::publish::Destination,
}

#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Where to write the key (and PATH.pub) [default: ~/.config/swpush/distribution_key]
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct EnrollArgs {
    /// Package-name patterns the key may distribute on these clients
    #[arg(long, default_value = "*", value_name = "PATTERNS")]
    pub packages: String,
    #[command(flatten)]
    pub hosts: HostArgs,
    #[command(flatten)]
    pub change: ChangeArgs,
}

#[derive(Args, Debug)]
pub struct HostsArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// Shell to complete for
    #[arg(value_enum)]
    pub shell: crate::manual::Shell,
}

/// The whole numbers a numeric option takes: anything else is refused by
/// its value parser, before anything is read or connected, naming the
/// range (docs/reference.md lists them). A zero that cannot work (every
/// host timed out at once, no host in flight) is out of range; so is a
/// time long enough to be a typo, which would also overflow the client's
/// deadline arithmetic.
struct Accepted {
    min: u64,
    /// `None`: as large as the option's type holds.
    max: Option<u64>,
    /// What the number counts, after the range: ` seconds`.
    unit: &'static str,
    /// What else to say, after the range.
    hint: &'static str,
}

impl Accepted {
    /// 1 to `max` seconds.
    const fn seconds(max: u64, hint: &'static str) -> Accepted {
        Accepted {
            min: 1,
            max: Some(max),
            unit: " seconds",
            hint,
        }
    }

    /// `min` or more, up to what the option's type holds.
    const fn at_least(min: u64, hint: &'static str) -> Accepted {
        Accepted {
            min,
            max: None,
            unit: "",
            hint,
        }
    }

    /// The option's value parser.
    fn parser<T: TryFrom<u64>>(&'static self) -> impl Fn(&str) -> Result<T, String> + Clone {
        move |text| self.parse(text)
    }

    fn parse<T: TryFrom<u64>>(&self, text: &str) -> Result<T, String> {
        text.parse::<u64>()
            .ok()
            .filter(|&n| n >= self.min && self.max.is_none_or(|max| n <= max))
            .and_then(|n| T::try_from(n).ok())
            .ok_or_else(|| {
                let range = match self.max {
                    Some(max) => format!("{} to {max}", self.min),
                    None => format!("{} or more", self.min),
                };
                format!("must be {range}{}{}", self.unit, self.hint)
            })
    }
}

const FORKS: Accepted = Accepted::at_least(1, " (hosts in flight at once)");
const CONNECT_TIMEOUT: Accepted = Accepted::seconds(3600, "");
const CONNECT_RETRIES: Accepted = Accepted {
    min: 0,
    max: Some(10),
    unit: "",
    hint: " (tries after the first; 0: one try)",
};
const TIMEOUT: Accepted = Accepted::seconds(7 * 24 * 3600, " (7 days), for each host's whole run");
const BUSY_WAIT: Accepted = Accepted::seconds(3600, " (--busy-retries 0 does not wait at all)");
const WAIT: Accepted = Accepted {
    min: 0,
    max: Some(7 * 24 * 3600),
    unit: " seconds",
    hint: " (7 days; --wait alone waits as long as it takes)",
};
const MIRROR_TIMEOUT: Accepted = Accepted::seconds(3600, "");
const BUSY_RETRIES: Accepted = Accepted::at_least(0, " (0: a busy client is given up at once)");

/// Runs the command `cli` gives; the environment is read here, once.
pub fn run(cli: Cli) -> Result<Ended> {
    let env = Env::read();
    let report = cli.command.report_file();
    let started = crate::time::now_rfc3339();
    let ended = dispatch(cli.command, &env);
    // Refused before any host was tried: the report file says so, rather
    // than going on to show the previous run. Best effort: the refusal
    // itself is the error the operator reads (it may be this very file).
    if let (Err(error), Some((op, path))) = (&ended, report) {
        let json = crate::report::refused_json(op, &started, &format!("{error:#}"));
        let _ = std::fs::write(&path, format!("{json}\n"));
    }
    ended
}

/// A command line clap refused (an option out of range, one unknown): the
/// op and `--report FILE` it names, read off the words as given, so that
/// the report file says the run was refused (as [`run`] does for a run
/// refused later) instead of showing the previous run as current.
pub fn refused_report_file(args: &[std::ffi::OsString]) -> Option<(Op, PathBuf)> {
    let words: Vec<&std::ffi::OsStr> = args.iter().skip(1).map(|a| a.as_os_str()).collect();
    let op = words.iter().find_map(|word| match word.to_str()? {
        "install" => Some(Op::Install),
        "upgrade" => Some(Op::Upgrade),
        "rollback" => Some(Op::Rollback),
        "remove" => Some(Op::Remove),
        "status" => Some(Op::Status),
        "enroll" => Some(Op::Enroll),
        _ => None,
    })?;
    let mut path = None;
    for (i, word) in words.iter().enumerate() {
        if *word == "--" {
            break;
        }
        let bytes = word.as_encoded_bytes();
        if *word == "--report" {
            path = words.get(i + 1).map(PathBuf::from);
        } else if let Some(rest) = bytes.strip_prefix(b"--report=") {
            // A path that is not UTF-8 here is left alone (best effort).
            path = Some(PathBuf::from(std::ffi::OsStr::new(
                std::str::from_utf8(rest).ok()?,
            )));
        }
    }
    path.filter(|p| {
        !p.as_os_str().is_empty() && !p.as_os_str().as_encoded_bytes().starts_with(b"-")
    })
    .map(|p| (op, p))
}

/// Writes the refused report of a command line clap refused, best effort.
pub fn report_refused_arguments(args: &[std::ffi::OsString], why: &str) {
    if let Some((op, path)) = refused_report_file(args) {
        let json = crate::report::refused_json(op, &crate::time::now_rfc3339(), why);
        let _ = std::fs::write(&path, format!("{json}\n"));
    }
}

impl Command {
    /// The op and `--report FILE` of a command that acts on hosts.
    fn report_file(&self) -> Option<(Op, PathBuf)> {
        let (op, hosts) = match self {
            Command::Install(args) => (Op::Install, &args.fleet.hosts),
            Command::Upgrade(args) => (Op::Upgrade, &args.fleet.hosts),
            Command::Rollback(args) => (Op::Rollback, &args.fleet.hosts),
            Command::Remove(args) => (Op::Remove, &args.fleet.hosts),
            Command::Status(args) => (Op::Status, &args.hosts),
            Command::Enroll(args) => (Op::Enroll, &args.hosts),
            _ => return None,
        };
        hosts.report.clone().map(|path| (op, path))
    }
}

fn dispatch(command: Command, env: &Env) -> Result<Ended> {
    match command {
        Command::Install(args) => push(
            Change::Install,
            &args.package,
            Policy {
                force: args.force,
                ..Policy::default()
            },
            args.mirror.plan(),
            &args.fleet,
            env,
        ),
        Command::Upgrade(args) => push(
            Change::Upgrade,
            &args.package,
            Policy {
                force: args.force,
                allow_downgrade: args.allow_downgrade,
                install_missing: args.install_missing,
            },
            args.mirror.plan(),
            &args.fleet,
            env,
        ),
        Command::Rollback(args) => act_on_installed(
            Change::Rollback,
            &args.name,
            args.to.as_deref(),
            &args.fleet,
            env,
        ),
        Command::Remove(args) => {
            act_on_installed(Change::Remove, &args.name, None, &args.fleet, env)
        }
        Command::Status(args) => status(&args, env),
        Command::Enroll(args) => enroll(&args, env),
        Command::Pack(args) => pack(&args),
        Command::Publish(args) => publish(&args),
        Command::Keygen(args) => keygen(&args, env),
        Command::Hosts(args) => hosts(&args, env),
        Command::Completions(args) => crate::manual::completions(args.shell),
        Command::Man => crate::manual::man(),
    }
}

/// Loads the inventory and applies `--limit`; `@failed` re-runs the
/// command `rerun` says on the package it names (`None`: a command that
/// keeps no run records).
fn selected_hosts(
    select: &SelectArgs,
    env: &Env,
    rerun: Option<(Op, Option<&str>)>,
) -> Result<Vec<Host>> {
    let inventory = inventory::load_as(
        &select.inventory,
        &env.load_context(),
        &select.overrides.login(),
    )?;
    let rerun = rerun.map(|(op, name)| inventory::select::Rerun {
        op,
        name,
        state_home: env.state_home.as_deref(),
    });
    let hosts = inventory::select::select_hosts_rerunning(
        &inventory,
        select.limit.as_deref(),
        rerun.as_ref(),
    )?;
    if select.overrides.ask_become_pass {
        crate::sudo::set_password(crate::sudo::prompt()?);
    }
    Ok(hosts
        .into_iter()
        .map(|host| select.overrides.apply(host.clone()))
        .collect())
}

/// `install` and `upgrade`: push a package; each client decides under `policy`.
fn push(
    op: Change,
    package: &Path,
    policy: Policy,
    mirror: crate::mirror::MirrorPlan,
    fleet_args: &FleetArgs,
    env: &Env,
) -> Result<Ended> {
    let select = &fleet_args.hosts.select;
    // `@failed` needs the package's name to find the run it re-runs; else
    // the inventory is read first, as by every other command.
    let (hosts, package) = if inventory::select::uses_failed(select.limit.as_deref()) {
        let package = package::read(package)?;
        let name = package.manifest.name.clone();
        let hosts = selected_hosts(select, env, Some((op.into(), Some(name.as_str()))))?;
        (hosts, package)
    } else {
        let hosts = selected_hosts(select, env, None)?;
        (hosts, package::read(package)?)
    };
    let info = PackageInfo {
        name: package.manifest.name.clone(),
        version: Some(package.manifest.version.to_string()),
        sha256: Some(package.sha256.clone()),
    };
    let subject = Subject::Package(package);
    let job = (op, subject, policy, mirror);
    order_hosts(job, info, hosts, fleet_args, env)
}

/// `rollback` and `remove`: act on a package already on the clients, by
/// name; each client decides from its own records.
fn act_on_installed(
    op: Change,
    name: &str,
    version: Option<&str>,
    fleet_args: &FleetArgs,
    env: &Env,
) -> Result<Ended> {
    refuse_package_file(op, name)?;
    let name = PackageName::parse(name)?;
    let version = version.map(Version::parse).transpose().context("--to")?;
    let hosts = selected_hosts(
        &fleet_args.hosts.select,
        env,
        Some((op.into(), Some(name.as_str()))),
    )?;
    let info = PackageInfo {
        name: name.to_string(),
        version: version.as_ref().map(|v| v.as_str().to_owned()),
        sha256: None,
    };
    let subject = Subject::Installed { name, version };
    let job = (op, subject, Policy::default(), Default::default());
    order_hosts(job, info, hosts, fleet_args, env)
}

/// How a package file's name ends: what `swpush pack` writes, and the
/// other tarballs an operator may hold. No package name needs one.
const PACKAGE_FILE_ENDINGS: [&str; 10] = [
    ".tar", ".tar.gz", ".tgz", ".tar.zst", ".tzst", ".tar.xz", ".txz", ".tar.bz2", ".tbz2", ".tbz",
];

/// `rollback` and `remove` take a package's NAME: a package file in its
/// place (`remove hello-1.2.0.tar.gz`) is refused before anything is
/// connected to, naming the NAME when the file says it. An argument is a
/// package file when it is named as one, or is an existing file that
/// reads as a package; any other file (a script `./hello` beside the
/// operator) does not stand in the way of the name.
fn refuse_package_file(op: Change, argument: &str) -> Result<()> {
    let path = Path::new(argument);
    let named_as_one = PACKAGE_FILE_ENDINGS
        .iter()
        .any(|ending| argument.ends_with(ending));
    let package = path.is_file().then(|| package::read(path).ok()).flatten();
    let what = match (package, named_as_one) {
        (Some(package), _) => {
            let manifest = package.manifest;
            format!(
                "is {} {} (swpush {} {})",
                manifest.name,
                manifest.version,
                op.as_str(),
                manifest.name
            )
        }
        (None, true) => {
            "(the `name` in its swpush.yaml; `swpush status` lists what is installed)".to_owned()
        }
        (None, false) => return Ok(()),
    };
    anyhow::bail!(
        "{} takes a package NAME, not a package file: `{argument}` {what}",
        op.as_str()
    )
}

/// Runs the client step on `hosts`, each under an order signed with the
/// distribution key.
fn order_hosts(
    (op, subject, policy, mirror): (Change, Subject, Policy, crate::mirror::MirrorPlan),
    info: PackageInfo,
    hosts: Vec<Host>,
    fleet_args: &FleetArgs,
    env: &Env,
) -> Result<Ended> {
    let key = key::load(&key_path(&fleet_args.change, env)?)?;
    let job = StepRequest {
        op,
        subject,
        policy,
        dry_run: fleet_args.change.dry_run,
        key,
        busy_wait: fleet_args.busy.busy_wait,
        busy_retries: fleet_args.busy.busy_retries,
        mirror,
        timeout: std::time::Duration::from_secs(fleet_args.hosts.timeout),
    };
    let settings = Settings::resolve(&fleet_args.hosts, env);
    run::run(job, Some(info), hosts, &settings, env)
}

/// `status`: what each host has installed; changes nothing.
fn status(args: &StatusArgs, env: &Env) -> Result<Ended> {
    let name = args.name.as_deref().map(PackageName::parse).transpose()?;
    let hosts = selected_hosts(&args.hosts.select, env, None)?;
    let info = name.as_ref().map(|name| PackageInfo {
        name: name.to_string(),
        version: None,
        sha256: None,
    });
    let job = status::StatusQuery { name };
    run::run(job, info, hosts, &Settings::resolve(&args.hosts, env), env)
}

fn enroll(args: &EnrollArgs, env: &Env) -> Result<Ended> {
    let patterns = key::Patterns::parse(&args.packages)?;
    let hosts = selected_hosts(&args.hosts.select, env, Some((Op::Enroll, None)))?;
    let public = key::load(&key_path(&args.change, env)?)?
        .public_key()
        .clone();
    let job = enroll::Enroll {
        line: key::known_servers_line(&public, &patterns),
        key: public
            .to_openssh()
            .map(|k| k.split(' ').take(2).collect::<Vec<_>>().join(" "))?,
        dry_run: args.change.dry_run,
    };
    run::run(job, None, hosts, &Settings::resolve(&args.hosts, env), env)
}

fn key_path(args: &ChangeArgs, env: &Env) -> Result<PathBuf> {
    match &args.key {
        Some(path) => Ok(path.clone()),
        None => Ok(key::default_path(&env.home("--key PATH")?)),
    }
}

fn pack(args: &PackArgs) -> Result<Ended> {
    let package = package::pack::pack(&args.dir, args.output.as_deref())?;
    emit(format!(
        "{}\n  name     {}\n  version  {}\n  size     {} bytes\n  sha256   {}\n",
        package.path.display(),
        package.manifest.name,
        package.manifest.version,
        package.size,
        package.sha256
    ));
    Ok(Ended::Success)
}

/// `publish`: the package at its content address; says whether it was
/// written and what to give `--mirror`.
fn publish(args: &PublishArgs) -> Result<Ended> {
    let package = package::read(&args.package)?;
    let published = crate::publish::publish(&package, &args.to)?;
    let crate::publish::Destination::Dir(dir) = &args.to;
    let what = match (published.written, published.replaced) {
        (false, _) => "already published: nothing written",
        (true, false) => "published",
        (true, true) => "published again: the object there had other bytes",
    };
    emit(format!(
        "{}\n  {what}: {} {}, {} bytes\n  mirror   serve {} over HTTP and give its URL to --mirror \
         (URL/sha256/{} is this file)\n",
        published.path.display(),
        package.manifest.name,
        package.manifest.version,
        package.size,
        dir.display(),
        package.sha256
    ));
    Ok(Ended::Success)
}

fn keygen(args: &KeygenArgs, env: &Env) -> Result<Ended> {
    let path = match &args.output {
        Some(path) => path.clone(),
        None => key::default_path(&env.home("-o PATH")?),
    };
    let public = key::generate(&path, &key::default_comment(&env.local_user))?;
    emit(format!(
        "Created distribution key {} ({})\nPublic key: {}\n\
         Clients trust it through this line in /etc/swpush/known_servers (`swpush enroll` adds it):\n{}\n",
        path.display(),
        key::fingerprint(&public),
        key::public_path(&path).display(),
        key::known_servers_line(&public, &key::Patterns::every_package())
    ));
    Ok(Ended::Success)
}

fn hosts(args: &HostsArgs, env: &Env) -> Result<Ended> {
    let hosts = selected_hosts(&args.select, env, None)?;
    match args.format {
        Format::Json => emit(format!(
            "{}\n",
            json_safe(serde_json::to_string_pretty(&hosts)?)
        )),
        Format::Text => emit(crate::report::text::hosts_table(&hosts, env.look)),
    }
    Ok(Ended::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_line_clap_refused_still_names_its_report_file() {
        let args = |words: &[&str]| -> Vec<std::ffi::OsString> {
            std::iter::once("swpush")
                .chain(words.iter().copied())
                .map(Into::into)
                .collect()
        };
        let found = |words: &[&str]| refused_report_file(&args(words));
        assert_eq!(
            found(&[
                "-q", "upgrade", "--forks", "0", "--report", "/r.json", "p.tar"
            ]),
            Some((Op::Upgrade, PathBuf::from("/r.json")))
        );
        assert_eq!(
            found(&["remove", "--report=/r.json", "--bogus", "hello"]),
            Some((Op::Remove, PathBuf::from("/r.json")))
        );
        assert_eq!(found(&["upgrade", "--report", "--forks", "0"]), None);
        assert_eq!(found(&["upgrade", "--", "--report", "/r.json"]), None);
        assert_eq!(found(&["pack", "--report", "/r.json"]), None);
    }

    /// `rollback hello -i web1, ARGS`: its fleet options, or clap's error.
    fn fleet_of(args: &[&str]) -> Result<FleetArgs, clap::Error> {
        let mut argv = vec!["swpush", "rollback", "hello", "-i", "web1,"];
        argv.extend(args);
        match Cli::try_parse_from(argv)?.command {
            Command::Rollback(rollback) => Ok(rollback.fleet),
            other => panic!("not a rollback: {other:?}"),
        }
    }

    #[test]
    fn numeric_options_take_their_range_and_nothing_else() {
        let defaults = fleet_of(&[]).expect("the defaults are in range");
        assert_eq!(
            (defaults.hosts.forks, defaults.hosts.connect_timeout),
            (100, None)
        );
        assert_eq!(defaults.hosts.timeout, 600);
        assert_eq!(
            (defaults.busy.busy_wait, defaults.busy.busy_retries),
            (10, 6)
        );

        let ends = fleet_of(&[
            "--forks",
            "1",
            "--connect-timeout",
            "3600",
            "--timeout",
            "604800",
            "--busy-wait",
            "3600",
            "--busy-retries",
            "0",
        ])
        .expect("the ends of each range");
        assert_eq!(
            (ends.hosts.forks, ends.hosts.connect_timeout),
            (1, Some(3600))
        );
        assert_eq!(ends.hosts.timeout, 604_800);
        assert_eq!((ends.busy.busy_wait, ends.busy.busy_retries), (3600, 0));
        let most = fleet_of(&["-f", "4294967295", "--busy-retries", "4294967295"]).unwrap();
        assert_eq!(
            (most.hosts.forks, most.busy.busy_retries),
            (u32::MAX, u32::MAX)
        );

        for (option, value) in [
            ("--forks", "0"),
            ("--forks", "4294967296"),
            ("--connect-timeout", "0"),
            ("--connect-timeout", "3601"),
            ("--timeout", "0"),
            ("--timeout", "604801"),
            ("--timeout", "18446744073709551615"),
            ("--timeout", "1.5"),
            ("--busy-wait", "0"),
            ("--busy-wait", "3601"),
            ("--busy-retries", "-1"),
            ("--busy-retries", ""),
        ] {
            let error = fleet_of(&[option, value]).expect_err(option);
            assert_eq!(
                error.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{option} {value}"
            );
            let first = error.to_string();
            let first = first.lines().next().unwrap();
            assert!(
                first.contains(option) && first.contains(": must be "),
                "{option} {value}: {first}"
            );
        }
    }
}
