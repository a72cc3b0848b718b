//! Runs of the `swpush` binary, built as a test says them:
//! `world.swpush("install").inventory(&inv).json().arg(&pkg).run()` gives
//! a [`Ran`]: the exit status, stdout and stderr, with readers for the
//! text and the JSON [`Report`]. [`Swpush::new`] changes nothing of the
//! test's environment; [`Swpush::operator`] (what `World::swpush` uses)
//! is an operator's: a private HOME, no agent, no `SWPUSH_*` defaults.

use std::ffi::OsStr;
use std::ops::Deref;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use crate::support::report::Report;

/// One `swpush` command line, to [`Swpush::run`] or turn into a
/// [`Command`] to spawn.
pub struct Swpush {
    command: Command,
}

impl Swpush {
    /// `swpush OP` with the test's own environment.
    pub fn new(op: &str) -> Swpush {
        let mut command = Command::new(env!("CARGO_BIN_EXE_swpush"));
        command.arg(op);
        Swpush { command }
    }

    /// `swpush OP` as an operator whose HOME is `home` runs it: no agent
    /// (`SSH_AUTH_SOCK`), no `SWPUSH_INVENTORY` or `SWPUSH_KEY`, a UTF-8
    /// locale (whatever the test runner's: the text report is drawn in
    /// ASCII otherwise) and no `NO_COLOR`.
    pub fn operator(home: &Path, op: &str) -> Swpush {
        Swpush::new(op)
            .env("HOME", home)
            .env("LC_ALL", "C.UTF-8")
            .env_remove("NO_COLOR")
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("SWPUSH_INVENTORY")
            .env_remove("SWPUSH_KEY")
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Swpush {
        self.command.arg(arg);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Swpush
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command.args(args);
        self
    }

    /// `--inventory PATH` (a file, or an inline list such as `web1,`).
    pub fn inventory(self, path: impl AsRef<OsStr>) -> Swpush {
        self.arg("--inventory").arg(path)
    }

    /// `--key PATH`: the distribution key that signs the orders.
    pub fn key(self, path: &Path) -> Swpush {
        self.arg("--key").arg(path)
    }

    /// `--format json`: the report on stdout.
    pub fn json(self) -> Swpush {
        self.args(["--format", "json"])
    }

    pub fn env(mut self, name: &str, value: impl AsRef<OsStr>) -> Swpush {
        self.command.env(name, value);
        self
    }

    pub fn env_remove(mut self, name: &str) -> Swpush {
        self.command.env_remove(name);
        self
    }

    pub fn current_dir(mut self, dir: &Path) -> Swpush {
        self.command.current_dir(dir);
        self
    }

    /// The command line, to spawn (or adjust) by hand.
    pub fn command(self) -> Command {
        self.command
    }

    /// Starts the run, stdin closed, stdout and stderr piped (for
    /// `wait_with_output`).
    pub fn spawn(self) -> Child {
        let mut command = self.command;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start swpush")
    }

    /// Runs to the end (stdin closed); what it said.
    pub fn run(mut self) -> Ran {
        Ran(self.command.output().expect("run swpush"))
    }
}

/// A finished run: derefs to its [`Output`].
pub struct Ran(pub Output);

impl Ran {
    /// The exit code (-1 if a signal ended it).
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }

    /// The JSON report on stdout; panics with stdout and stderr if none.
    pub fn report(&self) -> Report {
        Report::try_parse(&self.0.stdout).unwrap_or_else(|e| panic!("{e}\n{}", self.stderr()))
    }

    /// The exit code and the JSON report.
    pub fn code_and_report(&self) -> (i32, Report) {
        (self.code(), self.report())
    }

    /// Panics, showing stderr, unless the run exited 0; its stdout.
    pub fn success(&self) -> String {
        assert!(
            self.status.success(),
            "swpush: {}\n{}",
            self.status,
            self.stderr()
        );
        self.stdout()
    }
}

impl Deref for Ran {
    type Target = Output;

    fn deref(&self) -> &Output {
        &self.0
    }
}
