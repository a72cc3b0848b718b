//! `ProxyCommand`: the host's command (tokens already expanded by the
//! inventory) run as OpenSSH runs it, `$SHELL -c 'exec COMMAND'` (else
//! `/bin/sh`), with SSH
//! spoken over its stdin and stdout. Its stderr never reaches the terminal:
//! the first line is kept, made safe, for the error when the connection
//! fails. The command is killed when the connection ends, fails or times out.

use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStderr, Command};

use super::{ConnectOptions, Connection, SshError, handshake_and_login, one_line};
use crate::inventory::Host;
use crate::untrusted::{MAX_ERROR_LINE, bound_owned, terminal_safe};

/// How long a failed connection waits for the command to exit and say why.
const EXIT_GRACE: Duration = Duration::from_secs(1);

/// Most of the command's stderr read (then thrown away) while it runs.
const MAX_STDERR: u64 = 1 << 20;

/// A running ProxyCommand, owned by the connection that runs over it.
#[derive(Debug)]
pub(super) struct ProxyProcess {
    child: Child,
    /// The first line the command wrote on stderr, made safe.
    first_line: Arc<Mutex<Option<String>>>,
}

impl ProxyProcess {
    /// Kills the command (if it has not ended) and reaps it.
    pub(super) async fn end(mut self) {
        // Gone already, or going: either way it ends here.
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// Why the command failed, in words: its exit and first stderr line.
    async fn failure(&mut self) -> String {
        let exit = match tokio::time::timeout(EXIT_GRACE, self.child.wait()).await {
            Ok(Ok(status)) => match status.code() {
                Some(code) => format!("it exited with status {code}"),
                None => format!("it was killed ({status})"),
            },
            Ok(Err(e)) => format!("cannot wait for it: {}", one_line(e)),
            Err(_) => "it is still running but SSH did not get through it".to_owned(),
        };
        // The stderr reader may still hold the last bytes for a moment.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let said = self
            .first_line
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match said {
            Some(line) => format!("{exit}; it said: {line}"),
            None => format!("{exit}, saying nothing on stderr"),
        }
    }
}

/// Runs `command` and connects to `host` over it.
pub(super) async fn connect_through(
    host: &Host,
    options: &ConnectOptions,
    target: &str,
    command: &str,
) -> Result<Connection, SshError> {
    let failed = |reason: String| SshError::ProxyCommand {
        target: target.to_owned(),
        command: terminal_safe(command).into_owned(),
        reason,
    };
    // As ssh: the user's shell, else /bin/sh.
    let shell = std::env::var_os("SHELL")
        .filter(|shell| !shell.is_empty())
        .unwrap_or_else(|| "/bin/sh".into());
    let mut child = Command::new(&shell)
        .arg("-c")
        .arg(format!("exec {command}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            failed(format!(
                "cannot start {}: {}",
                terminal_safe(&shell.to_string_lossy()),
                one_line(e)
            ))
        })?;
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(failed("its standard streams were not set up".into()));
    };
    let first_line = Arc::new(Mutex::new(None));
    tokio::spawn(keep_first_line(stderr, Arc::clone(&first_line)));
    let mut process = ProxyProcess { child, first_line };
    let stream = tokio::io::join(stdout, stdin);
    match handshake_and_login(host, options, target, stream).await {
        Ok(mut connection) => {
            connection.proxy = Some(process);
            Ok(connection)
        }
        // The host answered through the command: its verdict stands.
        Err(error) if error.reached_host() => {
            process.end().await;
            Err(error)
        }
        Err(_) => {
            let reason = process.failure().await;
            process.end().await;
            Err(failed(reason))
        }
    }
}

/// Reads the command's stderr to its end (so it never blocks on a full
/// pipe), keeping only its first non-empty line.
async fn keep_first_line(stderr: ChildStderr, first_line: Arc<Mutex<Option<String>>>) {
    let mut reader = BufReader::new(stderr.take(MAX_STDERR));
    let mut bytes = Vec::new();
    loop {
        bytes.clear();
        match reader.read_until(b'\n', &mut bytes).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&bytes);
        let line = terminal_safe(line.trim()).into_owned();
        if line.is_empty() {
            continue;
        }
        let mut kept = first_line.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.is_none() {
            *kept = Some(bound_owned(line, MAX_ERROR_LINE));
        }
    }
    // Past the limit, read on without keeping anything.
    let _ = tokio::io::copy(
        &mut reader.into_inner().into_inner(),
        &mut tokio::io::sink(),
    )
    .await;
}
