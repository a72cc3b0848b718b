//! swpush: push a package to many hosts over SSH, each client checking the
//! controller's signed right to distribute before accepting anything.
//!
//! `main` parses the command line, runs the command (see [`cli`]) and maps
//! the outcome to the exit status of SPEC §7: 0 every host succeeded or was
//! skipped, 1 nothing was attempted (bad arguments, inventory, package or
//! key), 2 at least one host did not succeed, or none did what was asked
//! because what it was asked for is on none of them.

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use swpush::cli;
use swpush::run::Ended;
use swpush::untrusted::{MAX_ERROR_LINE, bound, terminal_safe};

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // clap exits 2 on bad arguments; swpush keeps 2 for failed hosts.
            let text = error.to_string();
            if error.kind() == ErrorKind::ValueValidation {
                // A value out of range is one line, naming the option and
                // the range (cli.rs), as every other mistake is.
                eprintln!("{}", text.lines().next().unwrap_or_default());
            } else {
                let _ = error.print();
            }
            if error.use_stderr() {
                let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
                let why = text.lines().next().unwrap_or_default();
                cli::report_refused_arguments(&args, why.trim_start_matches("error: "));
            }
            return if error.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli::run(cli) {
        Ok(Ended::Success) => ExitCode::SUCCESS,
        Ok(Ended::HostsFailed | Ended::NothingDone) => ExitCode::from(2),
        Err(error) => {
            // An error may quote a file or a client (a host name, an entry
            // name): one line, bounded, nothing a terminal acts on.
            let line = format!("{error:#}");
            eprintln!("error: {}", terminal_safe(&bound(&line, MAX_ERROR_LINE)));
            ExitCode::from(1)
        }
    }
}
