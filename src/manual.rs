//! `swpush completions SHELL` and `swpush man`: shell completion scripts
//! (clap_complete) and the man page (clap_mangen), generated from the same
//! clap definitions as the command line, written to stdout.

use std::io::Write;

use anyhow::Result;
use clap::{CommandFactory, ValueEnum};

use crate::cli::Cli;
use crate::run::Ended;

/// The shells `swpush completions` writes a script for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

pub fn completions(shell: Shell) -> Result<Ended> {
    let generator = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(generator, &mut Cli::command(), "swpush", &mut script);
    write_stdout(&script)
}

/// One man page: the top-level command, then a section per subcommand
/// with its options, so `man swpush` documents everything.
pub fn man() -> Result<Ended> {
    let command = Cli::command();
    let mut page = Vec::new();
    let top = clap_mangen::Man::new(command.clone());
    top.render_title(&mut page)?;
    top.render_name_section(&mut page)?;
    top.render_synopsis_section(&mut page)?;
    top.render_description_section(&mut page)?;
    top.render_subcommands_section(&mut page)?;
    for sub in command.get_subcommands() {
        let name = sub.get_name();
        writeln!(page, ".SH \"SWPUSH {}\"", name.to_uppercase())?;
        let sub_man = clap_mangen::Man::new(
            sub.clone()
                .display_name(format!("swpush-{name}"))
                .bin_name(format!("swpush {name}")),
        );
        let mut section = Vec::new();
        sub_man.render_synopsis_section(&mut section)?;
        sub_man.render_description_section(&mut section)?;
        sub_man.render_options_section(&mut section)?;
        page.extend_from_slice(&subsections(&section));
    }
    top.render_version_section(&mut page)?;
    write_stdout(&page)
}

/// A subcommand's sections as subsections of its `.SH`: `.SH X` becomes
/// `.SS X`, and the quote-string setup each section repeats is dropped
/// (the page's title set it once).
fn subsections(roff: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(roff);
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with(".ie \\n(.g .ds Aq") || line.starts_with(".el .ds Aq") {
            continue;
        }
        match line.strip_prefix(".SH ") {
            Some(title) => out.push_str(&format!(".SS {title}\n")),
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out.into_bytes()
}

fn write_stdout(bytes: &[u8]) -> Result<Ended> {
    crate::run::emit(bytes);
    Ok(Ended::Success)
}
