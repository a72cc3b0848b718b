//! How the client step runs as root through sudo, and what a failed sudo
//! said, as a message that tells the operator what to do (sudo's own words,
//! "a password is required", name neither `-K` nor the sudoers fix).
//!
//! Without `-K` the step runs under `sudo -n`: a sudo that wants a password
//! fails at once. With `-K` the password, read once from the terminal, is
//! sent as the first two lines on each host's stdin, before anything else.
//! The remote command reads the first with the shell's `read` (which reads
//! byte by byte, so nothing of the step's input is consumed), pipes it to
//! `sudo -S -p '' -v` (no prompt, nothing echoed; a wrong password meets
//! the pipe's end and fails at once instead of asking again) and forgets
//! it. Where that validation left sudo passwordless for a while (its
//! default), the second line is read and forgotten too and the step runs
//! under `sudo -n`. Where sudo keeps no credentials (`timestamp_timeout=0`),
//! the step runs under `sudo -k -S --prompt=`, which reads the second line
//! itself (sudo, too, reads a password byte by byte). The password is never
//! on a command line, in the environment, in a log, or in the step's
//! stream; the copy here is zeroized when the process ends its use of it.

use std::io::{BufRead, Write};
use std::sync::OnceLock;

use zeroize::Zeroizing;

/// The `-K` password, set once before any host is contacted.
static PASSWORD: OnceLock<Zeroizing<String>> = OnceLock::new();

/// What the remote command starts with when a password is fed: read one
/// line, validate sudo with it, forget it.
const ASK_HEAD: &str = "IFS= read -r swpush_pw && printf '%s\\n' \"$swpush_pw\" | sudo -S -p '' -v; swpush_ok=$?; unset swpush_pw; [ \"$swpush_ok\" = 0 ] && ";

/// Which sudo runs the command: `sudo -n` where the validation left sudo
/// passwordless for a while (then the second line is read and forgotten),
/// else (it keeps no credentials) one that reads the second line as the
/// password. The command itself is sent once: it is most of an argument
/// the kernel bounds.
const ASK_CHOOSE: &str = "if sudo -n true 2>/dev/null; then IFS= read -r swpush_pw; unset swpush_pw; swpush_sudo='sudo -n'; else swpush_sudo='sudo -k -S --prompt='; fi; $swpush_sudo";

/// `exit $?` at the end keeps the login shell from exec'ing the last sudo
/// (which would then have another parent than the one whose sudo timestamp
/// `-v` made).
const ASK_TAIL: &str = "; exit $?";

/// Keeps the `-K` password for every host of this run.
pub fn set_password(password: Zeroizing<String>) {
    let _ = PASSWORD.set(password);
}

/// `command` (starting with `sudo -n`) wrapped to feed sudo the password,
/// when `-K` gave one; else `command` as it is.
pub fn wrap(command: String) -> String {
    match (PASSWORD.get(), command.strip_prefix("sudo -n")) {
        (Some(_), Some(rest)) => format!("{ASK_HEAD}{{ {ASK_CHOOSE}{rest}; }}{ASK_TAIL}"),
        _ => command,
    }
}

/// The first lines to send on the channel's stdin for `command`: the
/// password twice, when `command` is one [`wrap`] made to read it.
pub fn stdin_head(command: &str) -> Option<Zeroizing<Vec<u8>>> {
    let password = PASSWORD.get()?;
    if !command.starts_with(ASK_HEAD) {
        return None;
    }
    let mut lines = Zeroizing::new(Vec::with_capacity(2 * (password.len() + 1)));
    for _ in 0..2 {
        lines.extend_from_slice(password.as_bytes());
        lines.push(b'\n');
    }
    Some(lines)
}

#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("reading the become password: {0}")]
    Io(#[from] std::io::Error),
    #[error("no become password given (-K)")]
    Empty,
    #[error("the become password has a newline or NUL byte")]
    Unsendable,
}

/// Asks for the become password once, as Ansible's `-K` does: on the
/// controlling terminal with echo off; where there is none, one line of
/// stdin (Python's getpass falls back the same way).
pub fn prompt() -> Result<Zeroizing<String>, PromptError> {
    let mut line = Zeroizing::new(String::new());
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
    {
        Ok(tty) => {
            let mut out = &tty;
            out.write_all(b"BECOME password: ")?;
            out.flush()?;
            let echo = EchoOff::new(&tty);
            let read = read_secret_line(&tty, &mut line);
            drop(echo);
            out.write_all(b"\n")?;
            read?;
        }
        Err(_) => {
            std::io::stdin().lock().read_line(&mut line)?;
        }
    }
    while line.ends_with('\n') || line.ends_with('\r') {
        line.pop();
    }
    if line.is_empty() {
        return Err(PromptError::Empty);
    }
    if line.contains(['\n', '\0']) {
        return Err(PromptError::Unsendable);
    }
    Ok(line)
}

/// One line from `tty`, a byte at a time (no buffer keeps a copy), into
/// `line`; non-UTF-8 bytes are refused.
fn read_secret_line(mut tty: &std::fs::File, line: &mut String) -> std::io::Result<()> {
    use std::io::Read;
    let mut bytes = Zeroizing::new(Vec::new());
    let mut byte = [0u8; 1];
    while tty.read(&mut byte)? == 1 && byte[0] != b'\n' {
        bytes.push(byte[0]);
    }
    zeroize::Zeroize::zeroize(&mut byte);
    match std::str::from_utf8(&bytes) {
        Ok(text) => line.push_str(text),
        Err(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "not UTF-8",
            ));
        }
    }
    Ok(())
}

/// Terminal echo off while alive; the terminal's settings back on drop.
struct EchoOff {
    fd: std::os::fd::RawFd,
    saved: Option<libc::termios>,
}

impl EchoOff {
    fn new(tty: &std::fs::File) -> EchoOff {
        use std::os::fd::AsRawFd;
        let fd = tty.as_raw_fd();
        // SAFETY: `fd` is an open terminal for the lifetime of `tty`, and
        // `termios` is plain data that tcgetattr fills in.
        let saved = unsafe {
            let mut termios: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(fd, &mut termios) != 0 {
                None
            } else {
                let mut quiet = termios;
                quiet.c_lflag &= !(libc::ECHO | libc::ECHONL);
                quiet.c_lflag |= libc::ICANON;
                libc::tcsetattr(fd, libc::TCSAFLUSH, &quiet);
                Some(termios)
            }
        };
        EchoOff { fd, saved }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            // SAFETY: restores the settings read from the same open terminal.
            unsafe {
                libc::tcsetattr(self.fd, libc::TCSAFLUSH, saved);
            }
        }
    }
}

/// The report message for a step whose last stderr line is `said`, when
/// that line is sudo refusing; `None` for anything else.
pub fn explain(said: &str) -> Option<String> {
    let said = said.trim();
    let rest = said.strip_prefix("sudo: ")?;
    let advice = if rest.contains("a password is required") {
        "sudo wants a password: pass -K/--ask-become-pass, or give the user NOPASSWD sudo"
    } else if rest.contains("incorrect password") || rest.contains("no password was provided") {
        "sudo refused the become password (-K)"
    } else if rest.contains("not in the sudoers file") || rest.contains("is not allowed to") {
        "the user may not sudo on this host"
    } else if rest.contains("a terminal is required") || rest.contains("must have a tty") {
        "sudo wants a terminal (`requiretty`): remove it for this user in sudoers"
    } else {
        return None;
    };
    Some(format!("{advice} ({said})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(yaml: &str) -> crate::inventory::Host {
        let context = crate::inventory::LoadContext {
            home: None,
            local_user: "operator".into(),
        };
        let path = std::path::Path::new("inv.yml");
        let inventory = crate::inventory::parse(yaml, path, path, &context).unwrap();
        inventory.hosts[0].clone()
    }

    #[test]
    fn become_user_runs_the_step_as_that_user_and_bad_names_are_refused() {
        let app = host("all:\n  hosts:\n    a: {ansible_become: true, ansible_become_user: app}\n");
        let command = crate::ssh::script::command(&app, "true", &[]);
        assert!(
            command.starts_with("sudo -n -u 'app' /bin/sh -c "),
            "{command}"
        );
        let root = host("all:\n  hosts:\n    a: {ansible_become: true}\n");
        let command = crate::ssh::script::command(&root, "true", &[]);
        assert!(command.starts_with("sudo -n /bin/sh -c "), "{command}");
        let context = crate::inventory::LoadContext {
            home: None,
            local_user: "operator".into(),
        };
        let path = std::path::Path::new("inv.yml");
        let error = crate::inventory::parse(
            "all:\n  hosts:\n    a: {ansible_become_user: -oops}\n",
            path,
            path,
            &context,
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.starts_with("inv.yml:3:") && error.contains("ansible_become_user"),
            "{error}"
        );
    }

    #[test]
    fn sudo_refusals_say_what_to_do() {
        let message = explain("sudo: a password is required").unwrap();
        assert!(message.contains("-K/--ask-become-pass") && message.contains("NOPASSWD"));
        assert!(explain("sudo: 1 incorrect password attempt").is_some());
        assert!(explain("tar: short read").is_none());
        assert!(explain("").is_none());
    }
}
