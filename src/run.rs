//! One run of a command on hosts. The environment is read once, at the
//! start ([`Env`]); the settings of the run are resolved once from the
//! arguments and that environment ([`Settings`]); then a [`Command`] runs:
//! the run lock on the selected hosts, the fan-out over hosts ([`crate::fleet`]), the
//! report, its rendering, and the run record. What differs between
//! commands (whether it changes clients, whether it is a dry run, how its
//! text renders) is a property of the command, not of this runner.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::cli::{Format, HostArgs};
use crate::file_error::FileError;
use crate::fleet::{self, Job, RunLimits};
use crate::inventory::{Host, LoadContext};
use crate::look::Look;
use crate::order::Op;
use crate::progress::Progress;
use crate::report::{PackageInfo, RunReport};
use crate::ssh::ConnectOptions;
use crate::untrusted::terminal_safe;

/// Seconds to wait for a connection when neither `--connect-timeout` nor
/// the host's `ConnectTimeout` says.
const DEFAULT_CONNECT_TIMEOUT: u64 = 10;

/// What swpush takes from its environment, read once at the start.
#[derive(Debug, Clone)]
pub struct Env {
    /// `$HOME`: `~` in paths, `~/.ssh`, the default key.
    pub home: Option<PathBuf>,
    /// `$USER` (or `$LOGNAME`, else `root`): the login name nothing else gives.
    pub local_user: String,
    /// Where run locks and run records are kept (`$XDG_STATE_HOME/swpush`).
    pub state_home: Option<PathBuf>,
    /// Whether stdout is a terminal (the live display is shown there).
    pub stdout_is_terminal: bool,
    /// The command line, as the run lock names its holder.
    pub command_line: String,
    /// The arguments as given, program name first: what the re-run line
    /// ([`crate::rerun`]) is made from.
    pub argv: Vec<std::ffi::OsString>,
    /// How text output is drawn (`LC_ALL`, `LC_CTYPE`, `LANG`; colour on
    /// a terminal unless `NO_COLOR`).
    pub look: Look,
}

impl Env {
    pub fn read() -> Env {
        let var = |name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned());
        let stdout_is_terminal = std::io::stdout().is_terminal();
        let context = LoadContext::from_env();
        let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
        Env {
            home: context.home,
            local_user: context.local_user,
            state_home: crate::state_home::state_home(),
            stdout_is_terminal,
            // `args()` would panic on an argument that is not UTF-8.
            command_line: argv
                .iter()
                .map(|arg| arg.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" "),
            argv,
            look: Look::for_locale(
                var("LC_ALL").as_deref(),
                var("LC_CTYPE").as_deref(),
                var("LANG").as_deref(),
            )
            .with_colour(stdout_is_terminal, var("NO_COLOR").as_deref()),
        }
    }

    /// What the inventory is read against.
    pub fn load_context(&self) -> LoadContext {
        LoadContext {
            home: self.home.clone(),
            local_user: self.local_user.clone(),
        }
    }

    /// `$HOME`, or an error telling which option to pass instead.
    pub fn home(&self, instead: &str) -> Result<PathBuf> {
        self.home
            .clone()
            .with_context(|| format!("HOME is not set: pass {instead}"))
    }
}

/// A run's settings, resolved once.
#[derive(Debug, Clone)]
pub struct Settings {
    pub connect: ConnectOptions,
    pub limits: RunLimits,
    /// `--report FILE`.
    pub report: Option<PathBuf>,
    pub format: Format,
    pub quiet: bool,
    /// `-v`: the text report ends with [`RunReport::verbose_block`].
    pub verbose: bool,
    /// The live display: on a terminal, for text, unless `--quiet`.
    pub show_progress: bool,
    /// `--wait[=SECONDS]`: behind another run on the same hosts.
    pub wait: crate::lock::Wait,
}

impl Settings {
    pub fn resolve(args: &HostArgs, env: &Env) -> Settings {
        Settings {
            connect: connect_options(args, env.home.clone()),
            limits: RunLimits {
                forks: usize::try_from(args.forks).unwrap_or(usize::MAX),
                timeout: Duration::from_secs(args.timeout),
                connect_retries: args.connect_retries,
                serial: args.serial.clone(),
                max_fail: args.max_fail,
            },
            report: args.report.clone(),
            format: args.format,
            quiet: args.quiet,
            verbose: args.verbose,
            show_progress: env.stdout_is_terminal && args.format == Format::Text && !args.quiet,
            wait: crate::lock::Wait::from_arg(args.wait),
        }
    }
}

/// How hosts are connected to, from the command line. As `ssh -o`: what
/// the command line gives beats each host's ssh_config, and ssh_config
/// beats swpush's defaults (so a default must not pass for a given value).
fn connect_options(args: &HostArgs, home: Option<PathBuf>) -> ConnectOptions {
    ConnectOptions {
        known_hosts: args.known_hosts.clone(),
        accept_new_host_keys: args.accept_new_host_keys,
        connect_timeout: Duration::from_secs(
            args.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
        ),
        home,
        connect_timeout_given: args.connect_timeout.is_some(),
    }
}

/// A command that runs a [`Job`] on hosts.
pub trait Command: Job {
    /// What the report calls it.
    fn op(&self) -> Op;
    /// Whether it changes clients: such a run takes the run lock on its
    /// hosts (unless a dry run) and is kept as a run record.
    fn changes_clients(&self) -> bool {
        true
    }
    /// `--dry-run`: it decides and reports, and changes nothing.
    fn dry_run(&self) -> bool;
    /// The report as text.
    fn render_text(&self, report: &RunReport, quiet: bool, look: Look) -> String {
        report.render_text(quiet, look)
    }
}

/// How a command ended, for the exit status (`main`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Done; on hosts, every host succeeded or was skipped (not all of
    /// them for lack of what was asked: that is [`Ended::NothingDone`]).
    Success,
    /// At least one host did not succeed.
    HostsFailed,
    /// No host did what was asked, because what it was asked for is on
    /// none of them ([`crate::report::nowhere`]); said on stderr.
    NothingDone,
}

/// What a `--report` file is for, in its errors.
const WRITE_REPORT: &str = "write the report to";

/// Runs `command` on every host, prints and records the report.
pub fn run<C: Command>(
    command: C,
    package: Option<PackageInfo>,
    hosts: Vec<Host>,
    settings: &Settings,
    env: &Env,
) -> Result<Ended> {
    // A report that cannot be written is found out before any host is,
    // and before a --wait that may be long.
    if let Some(path) = &settings.report {
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .map_err(FileError::doing(WRITE_REPORT, path))?;
    }
    crate::open_files::ensure(settings.limits.forks.clamp(1, hosts.len().max(1)))?;
    // A status or a dry run may watch a run in flight.
    let _lock = if command.changes_clients() && !command.dry_run() {
        let state_home = env
            .state_home
            .as_deref()
            .context("neither XDG_STATE_HOME nor HOME is set: no place for the run lock")?;
        Some(crate::lock::acquire(
            state_home,
            &hosts,
            &env.command_line,
            settings.wait,
            std::io::stderr().is_terminal() && !settings.quiet,
        )?)
    } else {
        None
    };
    let progress = Progress::new(hosts.len(), settings.show_progress, env.look);
    progress.align_to(hosts.iter().map(|h| h.name.as_str()));
    let started = crate::time::now_rfc3339();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (op, dry_run, records) = (command.op(), command.dry_run(), command.changes_clients());
    let command = std::sync::Arc::new(command);
    let reports = runtime.block_on(fleet::run_all(
        hosts,
        command.clone(),
        std::sync::Arc::new(settings.connect.clone()),
        settings.limits.clone(),
        progress.clone(),
    ));
    progress.finish();
    let report = RunReport {
        op,
        package,
        started,
        finished: crate::time::now_rfc3339(),
        dry_run,
        hosts: reports,
    };
    // The JSON report and the run record are written before any text is
    // rendered: the hosts have been acted on, and nothing that goes wrong
    // in showing the result may lose the record of it.
    let json = report.to_json();
    if let Some(path) = &settings.report
        && let Err(error) =
            std::fs::write(path, format!("{json}\n")).map_err(FileError::doing(WRITE_REPORT, path))
    {
        // The hosts have been acted on: the exit status must still say how.
        warn(&error.to_string());
    }
    // The record is of what was done to the fleet; a status query did nothing.
    let mut recorded = false;
    if let Some(state_home) = env.state_home.as_deref().filter(|_| records) {
        match crate::report::record::save_run_record(&report, state_home) {
            Ok(_) => recorded = true,
            Err(error) => warn(&error.to_string()),
        }
    }
    // `--limit @failed` re-runs from this run's record, and never from a
    // dry run's (which changed nothing): without one, no line to offer.
    let rerun = if recorded && !dry_run {
        report.rerun_block(&crate::rerun::command_line(&env.argv))
    } else {
        String::new()
    };
    match settings.format {
        Format::Text => {
            let verbose = if settings.verbose {
                report.verbose_block(env.look)
            } else {
                String::new()
            };
            emit(command.render_text(&report, settings.quiet, env.look) + &verbose + &rerun)
        }
        Format::Json => emit(format!("{json}\n")),
    }
    if let Some(nowhere) = report.nowhere() {
        // After the report, whatever its format: JSON on stdout stays JSON.
        eprintln!(
            "swpush: {}",
            env.look.text(terminal_safe(&nowhere.to_string()))
        );
        return Ok(Ended::NothingDone);
    }
    Ok(if report.all_ok() {
        Ended::Success
    } else {
        Ended::HostsFailed
    })
}

/// Writes `text` to stdout. A reader that has gone (`swpush hosts | head`)
/// is not an error of the run: the report was also the exit status, and
/// the rest of the output has nobody to read it.
pub fn emit(text: impl AsRef<[u8]>) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = stdout
        .write_all(text.as_ref())
        .and_then(|()| stdout.flush())
        && error.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("warning: cannot write to stdout: {error}");
    }
}

/// A warning on stderr, on one terminal-safe line.
fn warn(text: &str) {
    eprintln!("warning: {}", terminal_safe(text));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command as Subcommand};
    use clap::Parser;

    fn options_of(extra: &[&str]) -> ConnectOptions {
        let mut argv = vec!["swpush", "status", "-i", "web1,"];
        argv.extend(extra);
        let cli = Cli::try_parse_from(argv).expect("parses");
        let Subcommand::Status(args) = cli.command else {
            panic!("not status");
        };
        connect_options(&args.hosts, None)
    }

    #[test]
    fn only_what_the_command_line_gives_beats_the_hosts_ssh_config() {
        let defaults = options_of(&[]);
        assert_eq!(defaults.connect_timeout, std::time::Duration::from_secs(10));
        assert!(!defaults.connect_timeout_given);
        assert_eq!(defaults.known_hosts, None);
        assert!(!defaults.accept_new_host_keys);

        let given = options_of(&[
            "--connect-timeout",
            "10",
            "--known-hosts",
            "/k",
            "--accept-new-host-keys",
        ]);
        // The default's value, given: it still beats ConnectTimeout.
        assert_eq!(given.connect_timeout, std::time::Duration::from_secs(10));
        assert!(given.connect_timeout_given);
        assert_eq!(given.known_hosts, Some(PathBuf::from("/k")));
        assert!(given.accept_new_host_keys);
    }
}
