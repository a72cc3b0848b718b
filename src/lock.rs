//! The controller's run lock: a run that changes clients stops at once,
//! with a clear message, when another run on this controller is working on
//! any of the same hosts, instead of racing the run in flight (a cron job
//! that outlasts its interval, an operator's run started over it). Runs on
//! other hosts of the same inventory go ahead side by side: each client
//! also serialises the runs on itself with its own lock, so the
//! controller's lock is only there to refuse a confusing overlap early, and
//! is about what the two runs share, the hosts. `--wait[=SECONDS]` queues
//! behind the other run instead of refusing.
//!
//! Two host entries are the same host when swpush would connect to the
//! same place: the address (after ssh_config's `HostName`, without case
//! or a trailing dot) and port. Names, users and inventories do not enter
//! into it, so two inventories naming one machine differently still
//! conflict. Names are not resolved (DNS would make starting a run slow
//! and flaky): `localhost` and `127.0.0.1` are two hosts here.
//!
//! The registry is a directory, `STATE_HOME/swpush/locks/runs/`, with one
//! file per run (`PID-RANDOM`) naming its command line and its hosts. The
//! run holds an OS file lock (`flock`) on its own file for its whole life,
//! so a file whose lock can be taken belongs to a run that is gone, however
//! it ended (`kill -9` included): it is stale, and removed. Looking for an
//! overlap and adding one's own file happen under `locks/registry.lock`, so
//! two runs starting together cannot both miss each other. A run keeps two
//! descriptors open, whatever the number of hosts.
//!
//! Runs that change nothing (`status`, `--dry-run`) take no lock.

use std::collections::HashSet;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::file_error::FileError;
use crate::inventory::Host;
use crate::untrusted::{bound, one_line, terminal_safe};

/// The most of another run's command line a message quotes: enough for
/// its options, and the hosts still fit on the line after it.
const MAX_COMMAND: usize = 512;

/// Hosts the refusal names before it counts the rest.
const NAMED_HOSTS: usize = 3;

/// How long the registry may stay held by another process (it is held
/// only while a run looks for an overlap) before a run gives up: a process
/// stopped while holding it (Ctrl-Z) must not hang a cron run for ever.
const REGISTRY_PATIENCE: Duration = Duration::from_secs(10);

/// How often a waiting run looks again: the longest it starts late.
const POLL: Duration = Duration::from_millis(250);

/// The most of another run's file that is read: far more than the
/// hosts of any fleet take.
const MAX_RUN_FILE: u64 = 64 << 20;

/// What to do when another run is working on some of the same hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Wait {
    /// Refuse at once (no `--wait`).
    #[default]
    No,
    /// `--wait`: wait as long as it takes.
    Forever,
    /// `--wait=SECONDS`: wait at most this long, then refuse.
    For(Duration),
}

impl Wait {
    /// `--wait[=SECONDS]` as clap gives it.
    pub fn from_arg(arg: Option<Option<u64>>) -> Wait {
        match arg {
            None | Some(Some(0)) => Wait::No,
            Some(None) => Wait::Forever,
            Some(Some(seconds)) => Wait::For(Duration::from_secs(seconds)),
        }
    }
}

/// Held for the whole run; released when dropped (or the process ends).
#[derive(Debug)]
pub struct RunLock {
    // Only closed after `drop` has removed the path: no other run can
    // take this file for stale while the run lives.
    _file: File,
    path: PathBuf,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Best effort: left behind, the file is stale and the next run
        // that looks removes it.
        let _ = std::fs::remove_file(&self.path);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "{overlap}; not starting, so the two cannot overlap (--wait queues behind it)",
        overlap = .0.describe("is working on")
    )]
    Held(Overlap),
    #[error(
        "{overlap} after waiting {waited} s; not starting, so the two cannot overlap",
        overlap = .overlap.describe("is still working on")
    )]
    GaveUp { overlap: Overlap, waited: u64 },
    #[error(
        "interrupted while waiting: {overlap}; nothing was started",
        overlap = .0.describe("is working on")
    )]
    Interrupted(Overlap),
    #[error(
        "another swpush run has held the run lock registry {} for {} s (stopped?); not starting",
        .0.display(),
        REGISTRY_PATIENCE.as_secs()
    )]
    RegistryStuck(PathBuf),
    #[error(transparent)]
    Io(#[from] FileError),
}

/// Other runs working on some of this run's hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlap {
    /// The earliest of them.
    pub holder: Holder,
    /// How many more runs overlap.
    pub more_runs: usize,
    /// This run's names of the hosts they work on, in selection order.
    pub hosts: Vec<String>,
}

/// Another run, as its file says (terminal-safe).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: String,
    pub started: String,
    pub command: String,
}

impl Overlap {
    /// `another swpush run (pid P, since T: CMD) VERB web1, web3 (and 2 more)`.
    fn describe(&self, verb: &str) -> String {
        let Holder {
            pid,
            started,
            command,
        } = &self.holder;
        let more_runs = match self.more_runs {
            0 => String::new(),
            1 => "; 1 more run too".to_owned(),
            n => format!("; {n} more runs too"),
        };
        let mut hosts = self
            .hosts
            .iter()
            .take(NAMED_HOSTS)
            .map(|name| terminal_safe(name).into_owned())
            .collect::<Vec<_>>()
            .join(", ");
        if self.hosts.len() > NAMED_HOSTS {
            hosts += &format!(" (and {} more)", self.hosts.len() - NAMED_HOSTS);
        }
        format!(
            "another swpush run (pid {pid}, since {started}: {command}{more_runs}) {verb} {hosts}"
        )
    }
}

/// What a run's file holds.
#[derive(Debug, Serialize, Deserialize)]
struct RunFile {
    pid: u32,
    started: String,
    /// When it started, in nanoseconds since the epoch: which run is the
    /// earliest (`started` is to the second).
    #[serde(default)]
    started_ns: u128,
    command: String,
    /// [`destination`] of each host, once.
    hosts: Vec<String>,
}

/// What makes two host entries the same host (see the module's doc).
pub fn destination(host: &Host) -> String {
    let address = host.address.trim_end_matches('.');
    let address = address
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(address);
    format!("{} {}", address.to_ascii_lowercase(), host.port)
}

/// `STATE_HOME/swpush/locks/runs`: one file per run in flight.
pub fn runs_dir(state_home: &Path) -> PathBuf {
    crate::state_home::locks_dir(state_home).join("runs")
}

/// Takes the lock for `hosts`, or says which other run holds some of
/// them; under `wait`, first waits for it (and the runs after it) to end.
/// `what` (the command line) is what another run's refusal names this one
/// by. `tell` says once what a wait is for (on a terminal).
pub fn acquire(
    state_home: &Path,
    hosts: &[Host],
    what: &str,
    wait: Wait,
    tell: bool,
) -> Result<RunLock, LockError> {
    let locks = crate::state_home::locks_dir(state_home);
    let runs = runs_dir(state_home);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&runs)
        .map_err(|e| io(&runs, e))?;
    let mine = Mine::new(hosts);
    let overlap = match attempt(&locks, &runs, &mine, what)? {
        Ok(lock) => return Ok(lock),
        Err(overlap) => overlap,
    };
    let deadline = match wait {
        Wait::No => return Err(LockError::Held(overlap)),
        Wait::Forever => None,
        Wait::For(limit) => Some((Instant::now() + limit, limit.as_secs())),
    };
    if tell {
        eprintln!(
            "swpush: waiting: {}",
            terminal_safe(&overlap.describe("is working on"))
        );
    }
    // Interrupts are caught only now: a run that is not waiting dies of
    // Ctrl-C as before, and the fan-out sets up its own handling later.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| io(&runs, e))?;
    runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut interrupt), Ok(mut terminate)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return waiting(&locks, &runs, &mine, what, overlap, deadline).await;
        };
        let last = overlap.clone();
        let interrupted = || {
            let now = still_overlapping(&locks, &runs, &mine).unwrap_or(last);
            Err(LockError::Interrupted(now))
        };
        tokio::select! {
            ended = waiting(&locks, &runs, &mine, what, overlap, deadline) => ended,
            _ = interrupt.recv() => interrupted(),
            _ = terminate.recv() => interrupted(),
        }
    })
}

/// Looks again every [`POLL`] until no run overlaps, or `deadline` passes.
async fn waiting(
    locks: &Path,
    runs: &Path,
    mine: &Mine<'_>,
    what: &str,
    mut overlap: Overlap,
    deadline: Option<(Instant, u64)>,
) -> Result<RunLock, LockError> {
    loop {
        let pause = match deadline {
            None => POLL,
            Some((at, waited)) => {
                let left = at.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(LockError::GaveUp { overlap, waited });
                }
                left.min(POLL)
            }
        };
        tokio::time::sleep(pause).await;
        overlap = match attempt(locks, runs, mine, what)? {
            Ok(lock) => return Ok(lock),
            Err(overlap) => overlap,
        };
    }
}

/// Who overlaps now, for the message of an interrupted wait.
fn still_overlapping(locks: &Path, runs: &Path, mine: &Mine<'_>) -> Option<Overlap> {
    let _registry = lock_registry(locks).ok()?;
    find_overlap(runs, mine).ok().flatten()
}

/// This run's hosts: their destinations, and the names they go by here.
struct Mine<'a> {
    /// In selection order, each destination once (with its first name).
    destinations: Vec<String>,
    /// Every name, with its destination, in selection order.
    names: Vec<(&'a str, String)>,
}

impl<'a> Mine<'a> {
    fn new(hosts: &'a [Host]) -> Mine<'a> {
        let names: Vec<(&str, String)> = hosts
            .iter()
            .map(|host| (host.name.as_str(), destination(host)))
            .collect();
        let mut seen = HashSet::new();
        let destinations = names
            .iter()
            .filter(|(_, d)| seen.insert(d.clone()))
            .map(|(_, d)| d.clone())
            .collect();
        Mine {
            destinations,
            names,
        }
    }
}

/// Under the registry lock: this run's file added, or who overlaps.
fn attempt(
    locks: &Path,
    runs: &Path,
    mine: &Mine<'_>,
    what: &str,
) -> Result<Result<RunLock, Overlap>, LockError> {
    let _registry = lock_registry(locks)?;
    if let Some(overlap) = find_overlap(runs, mine)? {
        return Ok(Err(overlap));
    }
    register(runs, mine, what).map(Ok)
}

/// `locks/registry.lock`, held: looking and adding are one step.
fn lock_registry(locks: &Path) -> Result<File, LockError> {
    let path = locks.join("registry.lock");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| io(&path, e))?;
    let since = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) if since.elapsed() < REGISTRY_PATIENCE => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(TryLockError::WouldBlock) => return Err(LockError::RegistryStuck(path)),
            Err(TryLockError::Error(error)) => return Err(io(&path, error)),
        }
    }
}

/// The live runs that work on some of `mine`; stale files are removed on
/// the way. Call with the registry held.
fn find_overlap(runs: &Path, mine: &Mine<'_>) -> Result<Option<Overlap>, LockError> {
    let entries = std::fs::read_dir(runs).map_err(|e| io(runs, e))?;
    // (when it started, who, the destinations it shares with this run)
    let mut overlapping: Vec<(u128, Holder, HashSet<String>)> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io(runs, e))?;
        let path = entry.path();
        let Some(other) = live_run(&path)? else {
            continue;
        };
        let shared: HashSet<String> = match &other {
            Ok(file) => {
                let theirs: HashSet<&str> = file.hosts.iter().map(String::as_str).collect();
                mine.destinations
                    .iter()
                    .filter(|d| theirs.contains(d.as_str()))
                    .cloned()
                    .collect()
            }
            // A live run whose file does not read (another version of
            // swpush, say) may be on any host: fail closed.
            Err(_) => mine.destinations.iter().cloned().collect(),
        };
        if shared.is_empty() {
            continue;
        }
        let started_ns = other.as_ref().map_or(0, |file| file.started_ns);
        let holder = match other {
            Ok(file) => Holder {
                pid: file.pid.to_string(),
                started: terminal_safe(&file.started).into_owned(),
                command: terminal_safe(&bound(&one_line(&file.command), MAX_COMMAND)).into_owned(),
            },
            Err(why) => Holder {
                pid: terminal_safe(&entry.file_name().to_string_lossy())
                    .split('-')
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
                started: "?".to_owned(),
                command: format!("its file {} {why}", path.display()),
            },
        };
        overlapping.push((started_ns, holder, shared));
    }
    overlapping.sort_by_key(|a| a.0);
    let mut runs = overlapping.into_iter();
    let Some((_, holder, mut shared)) = runs.next() else {
        return Ok(None);
    };
    let more_runs = runs.len();
    for (_, _, more) in runs {
        shared.extend(more);
    }
    let hosts = mine
        .names
        .iter()
        .filter(|(_, d)| shared.contains(d))
        .map(|(name, _)| (*name).to_owned())
        .collect();
    Ok(Some(Overlap {
        holder,
        more_runs,
        hosts,
    }))
}

/// The run file at `path` if its run is alive: its content, or why it
/// does not read. `None` (and the file removed) if the run is gone.
fn live_run(path: &Path) -> Result<Option<Result<RunFile, String>>, LockError> {
    let mut file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(file) => file,
        // Removed by its run as it ended.
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io(path, error)),
    };
    match file.try_lock() {
        Ok(()) => {
            // Nobody holds it: its run is gone.
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(io(path, error)),
            }
            Ok(None)
        }
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let read = (&mut file)
                .take(MAX_RUN_FILE)
                .read_to_string(&mut text)
                .map_err(|e| format!("does not read: {e}"));
            Ok(Some(read.and_then(|_| {
                serde_json::from_str(&text).map_err(|e| format!("does not parse: {e}"))
            })))
        }
        Err(TryLockError::Error(error)) => Err(io(path, error)),
    }
}

/// Adds this run's file, locked. Call with the registry held.
fn register(runs: &Path, mine: &Mine<'_>, what: &str) -> Result<RunLock, LockError> {
    let pid = std::process::id();
    let path = runs.join(format!("{pid}-{:016x}", rand::random::<u64>()));
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| io(&path, e))?;
    let lock = RunLock {
        _file: file.try_clone().map_err(|e| io(&path, e))?,
        path: path.clone(),
    };
    // A new file nobody else has open: this cannot block.
    file.try_lock().map_err(|e| io(&path, e.into()))?;
    let note = RunFile {
        pid,
        started: crate::time::now_rfc3339(),
        started_ns: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
        command: what.to_owned(),
        hosts: mine.destinations.clone(),
    };
    let json = serde_json::to_string(&note).map_err(|e| io(&path, e.into()))?;
    file.write_all(json.as_bytes()).map_err(|e| io(&path, e))?;
    Ok(lock)
}

fn io(path: &Path, error: std::io::Error) -> LockError {
    LockError::Io(FileError::doing("take the run lock", path)(error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The names of `hosts` that share a destination, grouped.
    fn same_hosts(hosts: &[Host]) -> Vec<Vec<String>> {
        let mut groups: HashMap<String, Vec<String>> = HashMap::new();
        let mut order = Vec::new();
        for host in hosts {
            let d = destination(host);
            if !groups.contains_key(&d) {
                order.push(d.clone());
            }
            groups.entry(d).or_default().push(host.name.clone());
        }
        order
            .into_iter()
            .filter_map(|d| groups.remove(&d))
            .collect()
    }

    fn host(name: &str, address: &str, port: u16) -> Host {
        Host::plain(name, address, port, "root")
    }

    fn state_home(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("swpush-lock-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn runs_on_the_same_host_are_refused_and_on_other_hosts_go_ahead() {
        let dir = state_home("overlap");
        let first = [host("web1", "192.0.2.1", 22), host("web2", "192.0.2.2", 22)];
        let held = acquire(&dir, &first, "swpush upgrade hello.tar.gz", Wait::No, false).unwrap();

        let other = [host("web3", "192.0.2.3", 22)];
        let _side_by_side =
            acquire(&dir, &other, "swpush install x", Wait::No, false).expect("no host in common");

        // Another inventory's names for the same machines.
        let again = [
            host("a", "192.0.2.9", 22),
            host("B", "WEB2.example.", 22),
            host("b2", "192.0.2.2", 22),
            host("b3", "192.0.2.2", 2222),
            host("c", "web2.example", 22),
        ];
        let _web2 = acquire(&dir, &again[1..2], "swpush upgrade y", Wait::No, false).unwrap();
        let refused = acquire(&dir, &again, "swpush install x", Wait::No, false).unwrap_err();
        let LockError::Held(overlap) = &refused else {
            panic!("{refused}")
        };
        assert_eq!(overlap.hosts, ["B", "b2", "c"], "{refused}");
        assert_eq!(overlap.more_runs, 1, "{refused}");
        let said = refused.to_string();
        assert!(
            said.starts_with(&format!(
                "another swpush run (pid {}, since ",
                std::process::id()
            )) && said.contains(": swpush upgrade hello.tar.gz; 1 more run too) is working on B, b2, c; not starting")
                && said.ends_with("(--wait queues behind it)"),
            "{said}"
        );

        drop(held);
        let refused = acquire(&dir, &again, "swpush install x", Wait::No, false)
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("swpush upgrade y) is working on B, c;"),
            "{refused}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_refusal_names_a_few_hosts_and_counts_the_rest() {
        let dir = state_home("many");
        let hosts: Vec<Host> = (1..=5)
            .map(|n| host(&format!("w{n}"), &format!("192.0.2.{n}"), 22))
            .collect();
        let _held = acquire(&dir, &hosts, "swpush install x", Wait::No, false).unwrap();
        let refused = acquire(&dir, &hosts, "swpush install x", Wait::No, false)
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains(" is working on w1, w2, w3 (and 2 more); "),
            "{refused}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_file_left_by_a_run_that_is_gone_is_removed_and_a_live_unreadable_one_blocks() {
        let dir = state_home("stale");
        let runs = runs_dir(&dir);
        std::fs::create_dir_all(&runs).unwrap();
        // As a killed run leaves it: nobody holds its lock.
        let stale = runs.join("999999-0");
        std::fs::write(
            &stale,
            r#"{"pid":999999,"started":"x","command":"c","hosts":["192.0.2.1 22"]}"#,
        )
        .unwrap();
        let hosts = [host("web1", "192.0.2.1", 22)];
        let lock = acquire(&dir, &hosts, "swpush install x", Wait::No, false).unwrap();
        assert!(!stale.exists());
        drop(lock);
        assert_eq!(
            std::fs::read_dir(&runs).unwrap().count(),
            0,
            "removed as it ended"
        );

        // Held, but not a run file swpush can read: it may be on any host.
        let odd = runs.join("4242-1");
        std::fs::write(&odd, "\u{1b}[2J not json").unwrap();
        let holder = File::open(&odd).unwrap();
        holder.try_lock().unwrap();
        let refused = acquire(&dir, &hosts, "swpush install x", Wait::No, false)
            .unwrap_err()
            .to_string();
        assert!(
            refused.starts_with("another swpush run (pid 4242, since ?: its file ")
                && refused.contains("does not parse")
                && refused.contains(" is working on web1;"),
            "{refused}"
        );
        assert!(!refused.contains('\u{1b}'), "{refused:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    // Waiting is tested end to end (tests/testsuite/lock.rs): it sets up
    // handlers for SIGINT and SIGTERM, which would outlive it here.

    #[test]
    fn the_same_host_is_the_same_address_and_port() {
        let hosts = [
            host("a", "Web1.Example.", 22),
            host("b", "web1.example", 22),
            host("c", "web1.example", 2222),
            host("d", "[2001:db8::1]", 22),
            host("e", "2001:DB8::1", 22),
        ];
        assert_eq!(
            same_hosts(&hosts),
            [vec!["a", "b"], vec!["c"], vec!["d", "e"]]
        );
    }
}
