//! Running one of swpush's remote scripts: the command line that hands a
//! script to the host's `/bin/sh` (through `sudo -n` for `become`), starting
//! it (feeding sudo the `-K` password first), and, for a script that needs
//! no input, its whole output, bounded. What the script's lines mean is the
//! caller's business (`crate::protocol`).

use super::{Connection, Event, RemoteProcess, SshError};
use crate::inventory::Host;

/// Most stderr kept of a script: its last line is what the report quotes.
const MAX_STDERR: usize = 64 * 1024;

/// `/bin/sh -c 'SCRIPT' swpush-step 'ARG'...`, single-quoted for the login
/// shell (POSIX quoting), through `sudo -n` (`-u USER` for `become_user`)
/// for `become`.
pub fn command(host: &Host, script: &str, args: &[String]) -> String {
    let mut command = String::new();
    if host.become_root {
        command.push_str("sudo -n ");
        if let Some(user) = &host.become_user {
            command.push_str("-u ");
            command.push_str(&quote(user));
            command.push(' ');
        }
    }
    command.push_str("/bin/sh -c ");
    command.push_str(&quote(script));
    command.push_str(" swpush-step");
    for arg in args {
        command.push(' ');
        command.push_str(&quote(arg));
    }
    if host.become_root {
        return crate::sudo::wrap(command);
    }
    command
}

/// `script` without the lines that hold only a comment (or nothing): what
/// the host's shell would skip anyway. None of swpush's scripts has a
/// here-document or a quoted string spanning such a line, where it would
/// be data; the end-to-end tests run the scripts as sent.
pub fn without_comments(script: &str) -> String {
    let mut kept = String::with_capacity(script.len());
    for line in script.lines() {
        let code = line.trim_start();
        if !code.is_empty() && !code.starts_with('#') {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    kept
}

fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// What a script that needs no input printed, and how it ended.
#[derive(Debug, Default)]
pub struct ScriptOutput {
    pub stdout: Vec<u8>,
    /// The first [`MAX_STDERR`] bytes of its stderr.
    pub stderr: Vec<u8>,
}

impl ScriptOutput {
    /// The last line of stderr, trimmed: what a failed script last said.
    pub fn last_said(&self) -> String {
        let said = String::from_utf8_lossy(&self.stderr);
        said.trim().lines().last().unwrap_or("").to_owned()
    }
}

/// Why a script's output could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error(transparent)]
    Ssh(#[from] SshError),
    /// It printed more than the limit: not a swpush answer.
    #[error("the client printed more than {} MiB: not a swpush answer", .0 >> 20)]
    Flooded(usize),
}

impl Connection {
    /// Runs the script `command` (one [`command`] made) and sends sudo the
    /// password first when the command reads it; the script's own stdin
    /// follows.
    pub async fn start_script(&self, command: &str) -> Result<RemoteProcess, SshError> {
        let process = self.exec(command).await?;
        if let Some(line) = crate::sudo::stdin_head(command) {
            process.stdin().send(&line).await?;
        }
        Ok(process)
    }

    /// Runs a script that needs no input to its end: its stdout, up to
    /// `limit` bytes (a client that floods is failed, not kept in memory),
    /// and the start of its stderr.
    pub async fn run_script(
        &self,
        command: &str,
        limit: usize,
    ) -> Result<ScriptOutput, ScriptError> {
        let mut process = self.start_script(command).await?;
        let _ = process.stdin().eof().await;
        let mut output = ScriptOutput::default();
        while let Some(event) = process.next_event().await {
            match event {
                Event::Stdout(data) => {
                    if output.stdout.len() + data.len() > limit {
                        return Err(ScriptError::Flooded(limit));
                    }
                    output.stdout.extend_from_slice(&data);
                }
                Event::Stderr(data) if output.stderr.len() < MAX_STDERR => {
                    output.stderr.extend_from_slice(&data)
                }
                Event::Lost(error) => return Err(error.into()),
                _ => {}
            }
        }
        Ok(output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(quote("it's"), r"'it'\''s'");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {}", quote("a 'b' $c \\d")))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "a 'b' $c \\d");
    }

    #[test]
    fn only_whole_comment_lines_and_empty_lines_go() {
        let script =
            "#!/bin/sh\n# a comment\n\n  # indented\nx=1 # kept: code before it\n\techo '#x'\n";
        assert_eq!(
            without_comments(script),
            "x=1 # kept: code before it\n\techo '#x'\n"
        );
    }
}
