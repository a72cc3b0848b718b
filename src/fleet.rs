//! Fan-out over hosts: one tokio task per host, at most `--forks` in flight
//! (a semaphore), each host's whole run inside one `--timeout` deadline.
//! Every host ends in exactly one [`HostReport`]; a host's failure never
//! slows or stops the others. What runs on a host is a [`Job`]: the push
//! step, or a small command such as enroll's.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, watch};

use crate::inventory::Host;
use crate::outcome::{BytesSent, Heard, HostVersion, Outcome, Status};
use crate::progress::{HostProgress, Phase, PhaseTime, Progress};
use crate::report::HostReport;
use crate::rollout::{MaxFail, Plan, Serial};
use crate::ssh::{self, ConnectOptions, Connection, SshError};
use crate::untrusted::{MAX_FIELD, MAX_MESSAGE, bound_owned};

/// Limits shared by every host of one run.
#[derive(Debug, Clone)]
pub struct RunLimits {
    pub forks: usize,
    /// Whole run of one host, connection included.
    pub timeout: Duration,
    /// `--connect-retries`: connecting is tried again this many times after
    /// a transient failure (see [`SshError::is_transient`]); `None`: as the
    /// host's `ConnectionAttempts` says, else [`DEFAULT_CONNECT_RETRIES`].
    pub connect_retries: Option<u32>,
    /// `--serial`: the batches, the first of which is the canary.
    pub serial: Option<Serial>,
    /// `--max-fail`: past it, no new host or batch starts.
    pub max_fail: Option<MaxFail>,
}

/// A run's progress against its [`Plan`]: hosts that did not succeed, and
/// why it stopped, once it has.
struct Rollout {
    plan: Plan,
    failed: AtomicUsize,
    stopped: Mutex<Option<String>>,
}

impl Rollout {
    fn stopped(&self) -> Option<String> {
        self.stopped
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Counts a host that ran; says so, once, when the plan stops here.
    fn ended(&self, status: Status, progress: &Progress) {
        if status.ok_for_exit() {
            return;
        }
        let failed = self.failed.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(reason) = self.plan.stop_reason(failed) {
            let mut stopped = self.stopped.lock().unwrap_or_else(PoisonError::into_inner);
            if stopped.is_none() {
                progress.stopping(&format!("swpush: {reason}: starting no new host"));
                *stopped = Some(reason);
            }
        }
    }
}

/// What to do on one host once connected.
pub trait Job: Send + Sync + 'static {
    fn run(&self, on: OnHost<'_>) -> impl Future<Output = Outcome> + Send;
}

/// The host a [`Job`] runs on, connected.
#[derive(Clone, Copy)]
pub struct OnHost<'a> {
    pub connection: &'a Connection,
    pub host: &'a Host,
    /// How `connection` was made: a job that must log in again (to confirm
    /// an upgrade, `src/step.rs`) connects the same way.
    pub connect: &'a ConnectOptions,
    pub progress: &'a HostProgress,
    /// Package bytes the job sends are added here: the fan-out puts them in
    /// the host's outcome however the run ends (a job's own outcome leaves
    /// `bytes_sent` to it).
    pub sent: &'a BytesSent,
    /// What the step said so far, for a host that times out.
    pub heard: &'a Heard,
}

/// Runs `job` on every host and returns one report per host, in host order.
pub async fn run_all<J: Job>(
    hosts: Vec<Host>,
    job: Arc<J>,
    connect: Arc<ConnectOptions>,
    limits: RunLimits,
    progress: Progress,
) -> Vec<HostReport> {
    let forks = Arc::new(Semaphore::new(limits.forks.max(1)));
    let (interrupt, interrupted) = watch::channel(Interrupted::No);
    let signals = tokio::spawn(watch_interrupts(interrupt, progress.clone()));
    let plan = Plan::new(hosts.len(), limits.serial.as_ref(), limits.max_fail);
    let batches = plan.batches.clone();
    let rollout = Arc::new(Rollout {
        plan,
        failed: AtomicUsize::new(0),
        stopped: Mutex::new(None),
    });
    let fan_out = FanOut {
        job,
        connect,
        limits,
        progress,
        forks,
        interrupted,
        rollout,
    };
    let mut hosts = hosts.into_iter();
    let mut reports = Vec::with_capacity(hosts.len());
    for (index, size) in batches.iter().enumerate() {
        if batches.len() > 1 {
            fan_out.progress.batch(index + 1, batches.len());
        }
        // A batch starts only once the previous one has finished.
        let batch: Vec<Host> = hosts.by_ref().take(*size).collect();
        let tasks = fan_out.start_batch(batch).await;
        reports.extend(finish_batch(tasks).await);
    }
    signals.abort();
    reports
}

type HostTask = (String, String, tokio::task::JoinHandle<HostReport>);

/// What the host tasks of one run share.
struct FanOut<J> {
    job: Arc<J>,
    connect: Arc<ConnectOptions>,
    limits: RunLimits,
    progress: Progress,
    forks: Arc<Semaphore>,
    interrupted: watch::Receiver<Interrupted>,
    rollout: Arc<Rollout>,
}

impl<J: Job> FanOut<J> {
    /// Starts every host of one batch, in order, as `--forks` lets them.
    async fn start_batch(&self, batch: Vec<Host>) -> Vec<HostTask> {
        let limits = &self.limits;
        let mut tasks = Vec::with_capacity(batch.len());
        for host in batch {
            let (name, address) = (host.name.clone(), host.address.clone());
            // Hosts start in inventory order: the permit is taken here, one host
            // after the other, not inside the tasks, which would race for it
            // (with --forks 1 the third host could go first).
            let permit = self.forks.clone().acquire_owned().await;
            let (job, connect, progress, mut interrupted, rollout) = (
                self.job.clone(),
                self.connect.clone(),
                self.progress.clone(),
                self.interrupted.clone(),
                self.rollout.clone(),
            );
            let (timeout, retries) = (limits.timeout, connect_retries(&host, limits));
            let task = tokio::spawn(async move {
                let _permit = permit;
                if *interrupted.borrow() != Interrupted::No {
                    let outcome = Outcome {
                        attempts: 0,
                        ..Outcome::status(Status::NotAttempted, "not started: interrupted")
                    };
                    return report(&host, outcome, Duration::ZERO, Vec::new());
                }
                if let Some(reason) = rollout.stopped() {
                    let outcome = Outcome {
                        attempts: 0,
                        ..Outcome::status(Status::NotAttempted, format!("not started: {reason}"))
                    };
                    return report(&host, outcome, Duration::ZERO, Vec::new());
                }
                let started = Instant::now();
                let host_progress = progress.host(&host.name);
                let sent = BytesSent::default();
                let heard = Heard::default();
                let run = tokio::time::timeout(
                    timeout,
                    run_one(
                        &*job,
                        &host,
                        &connect,
                        (retries, started + timeout),
                        &host_progress,
                        (&sent, &heard),
                    ),
                );
                // Stopped by an interrupt: at the first, unless it is installing
                // (it has changed nothing yet); at the second, whatever it does.
                let stop = |now: &Interrupted| match now {
                    Interrupted::No => false,
                    Interrupted::Once => !host_progress.installing(),
                    Interrupted::Twice => true,
                };
                let ran = tokio::select! {
                    ran = run => ran,
                    // Dropping the run closes its connection: the client's
                    // watchdog undoes what the step started, a step not yet
                    // installing ends at its next line.
                    now = stopped(&mut interrupted, stop) => {
                        let outcome = if now == Interrupted::Twice {
                            Outcome::status(
                                Status::Failed,
                                "interrupted again: stopped at once (the client undoes what it started)",
                            )
                        } else {
                            Outcome::status(
                                Status::NotAttempted,
                                "interrupted before it started installing: nothing was changed",
                            )
                        };
                        let outcome = Outcome {
                            bytes_sent: sent.get(),
                            ..outcome
                        };
                        let phases = host_progress.times();
                        host_progress.done(outcome.status, &outcome.message);
                        return report(&host, outcome, started.elapsed(), phases);
                    }
                };
                let outcome = match ran {
                    // A host that did not make it and ended only past the
                    // deadline (the controller was stalled, say, and then saw
                    // the step give up) is a timeout too.
                    Ok(outcome) if outcome.status.ok_for_exit() || started.elapsed() < timeout => {
                        Outcome {
                            bytes_sent: sent.get(),
                            ..outcome
                        }
                    }
                    _ => Outcome {
                        bytes_sent: sent.get(),
                        previous_version: heard.version_before(),
                        ..Outcome::status(Status::Timeout, timed_out(&heard, timeout))
                    },
                };
                rollout.ended(outcome.status, &progress);
                let phases = host_progress.times();
                host_progress.done(outcome.status, &outcome.message);
                report(&host, outcome, started.elapsed(), phases)
            });
            tasks.push((name, address, task));
        }
        tasks
    }
}

/// Every report of a batch, in host order, once all of it has ended.
async fn finish_batch(tasks: Vec<HostTask>) -> Vec<HostReport> {
    let mut reports = Vec::with_capacity(tasks.len());
    for (host, address, task) in tasks {
        match task.await {
            Ok(report) => reports.push(report),
            // A panicking host task is a bug; it must still leave a line in the report.
            Err(error) => reports.push(HostReport::new(
                host,
                address,
                Outcome::status(Status::Failed, format!("internal error: {error}")),
            )),
        }
    }
    reports
}

/// Connects, and after a transient failure (refused, reset, timed out, the
/// handshake dropped, as sshd's `MaxStartups` does to a burst) tries again
/// up to `retries` times, after 1 s, 2 s, 4 s ... (at most 30 s), each
/// ±50 % so that hosts dropped together do not come back together. A host
/// key or login refused is never retried, nor is a try made that could not
/// finish before `deadline` (the host's `--timeout`): the host then ends
/// `unreachable` with the last error, not `timeout`. Returns the tries made.
pub(crate) async fn connect_retrying(
    host: &Host,
    options: &ConnectOptions,
    (retries, deadline): (u32, Instant),
    progress: &HostProgress,
) -> (Result<Connection, SshError>, u32) {
    let mut tries = 1;
    loop {
        let connected = Connection::connect(host, options).await;
        let retry = match &connected {
            Err(error) if error.is_transient() && tries <= retries => Some(backoff(tries)),
            _ => None,
        };
        // A try is made only when it can end before the deadline.
        let fits = |wait| Instant::now() + wait + ssh::connect_timeout(host, options) <= deadline;
        match retry.filter(|&wait| fits(wait)) {
            Some(wait) => {
                progress.detail(&format!("try {} of {}", tries + 1, retries + 1));
                tokio::time::sleep(wait).await;
                tries += 1;
            }
            None => return (connected, tries),
        }
    }
}

/// Why a host timed out, in the operator's words: what the step was
/// stopped in and what the host does then, when it said.
fn timed_out(heard: &Heard, timeout: Duration) -> String {
    let seconds = timeout.as_secs();
    match heard.what_it_was_doing() {
        Some((what, then)) => {
            format!(
                "{what} was still running after {seconds} s (--timeout) and was stopped; {then}"
            )
        }
        None => format!("the host did not finish within {seconds} s (--timeout)"),
    }
}

/// Retries after a transient connection failure when neither
/// `--connect-retries` nor the host's `ConnectionAttempts` says.
pub const DEFAULT_CONNECT_RETRIES: u32 = 2;

/// Most retries, whatever `ConnectionAttempts` says (`--connect-retries`
/// takes no more either).
const MAX_CONNECT_RETRIES: u32 = 10;

/// How often connecting to `host` is tried again: as `ssh -o` beats
/// ssh_config, `--connect-retries` beats `ConnectionAttempts` (tries, so
/// one more than retries), which beats the default.
fn connect_retries(host: &Host, limits: &RunLimits) -> u32 {
    match (limits.connect_retries, host.ssh.connection_attempts) {
        (Some(given), _) => given,
        (None, Some(attempts)) => attempts.saturating_sub(1).min(MAX_CONNECT_RETRIES),
        (None, None) => DEFAULT_CONNECT_RETRIES,
    }
}

/// The wait before retry `n` (from 1): see [`connect_retrying`].
fn backoff(n: u32) -> Duration {
    use std::hash::BuildHasher;
    let base = Duration::from_secs(1 << (n - 1).min(5)).min(Duration::from_secs(30));
    // RandomState is seeded at random: jitter without a dependency.
    let jitter = std::collections::hash_map::RandomState::new().hash_one(n) % 1001;
    base.mul_f64(0.5 + jitter as f64 / 1000.0)
}

/// Waits until `stop` holds for the interrupts so far; never, if no
/// interrupt can come (the signal handlers could not be set up).
async fn stopped(
    interrupted: &mut watch::Receiver<Interrupted>,
    stop: impl FnMut(&Interrupted) -> bool,
) -> Interrupted {
    let now = interrupted.wait_for(stop).await.map(|now| *now);
    match now {
        Ok(now) => now,
        Err(_) => std::future::pending().await,
    }
}

/// How many times the run was interrupted (Ctrl-C or SIGTERM).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interrupted {
    No,
    Once,
    Twice,
}

/// First Ctrl-C (or SIGTERM): start no new host, stop those not yet
/// installing (waiting while busy, say: they end `not-attempted`) and let
/// the ones installing finish. Second: stop the hosts in flight at once
/// (their connections close; clients whose controller vanished undo what
/// they started, see the watchdog in `src/step/watch.sh`); the run still
/// reports and records them.
async fn watch_interrupts(state: watch::Sender<Interrupted>, progress: Progress) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    loop {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        if *state.borrow() == Interrupted::Once {
            progress.stopping("swpush: interrupted again: stopping now");
            state.send_replace(Interrupted::Twice);
            return;
        }
        progress.stopping(
            "swpush: interrupted: starting no new host, stopping those not yet installing, waiting for those installing (interrupt again to stop at once)",
        );
        state.send_replace(Interrupted::Once);
    }
}

async fn run_one<J: Job>(
    job: &J,
    host: &Host,
    connect: &ConnectOptions,
    retries: (u32, Instant),
    progress: &HostProgress,
    (sent, heard): (&BytesSent, &Heard),
) -> Outcome {
    // A host behind a jump host fails in Connection::connect, never connecting directly.
    progress.phase(Phase::Connecting);
    let (connected, tries) = connect_retrying(host, connect, retries, progress).await;
    let connection = match connected {
        Ok(connection) => connection,
        Err(error) => {
            let outcome = Outcome::status(Status::Unreachable, error.to_string());
            return Outcome {
                attempts: tries,
                ..outcome.with_detail(error.detail())
            };
        }
    };
    let on = OnHost {
        connection: &connection,
        host,
        connect,
        progress,
        sent,
        heard,
    };
    let mut outcome = job.run(on).await;
    // The connection's retries are tries too.
    outcome.attempts += tries - 1;
    if let Some(key) = connection.learned_host_key() {
        // What was trusted on first use must be auditable in the report.
        let note = format!("new host key {key} recorded in known_hosts");
        outcome.message = if outcome.message.is_empty() {
            note
        } else {
            format!("{note}; {}", outcome.message)
        };
    }
    connection.close().await;
    outcome
}

/// The report of one host. Versions and message may hold a client's words
/// (its answers, its stderr, its SSH disconnect text): whatever path they
/// came by, no more than a bounded part of them is kept.
fn report(host: &Host, outcome: Outcome, elapsed: Duration, phases: Vec<PhaseTime>) -> HostReport {
    let field = |v: HostVersion| v.map(|v| bound_owned(v, MAX_FIELD));
    HostReport {
        host: host.name.clone(),
        address: host.address.clone(),
        seconds: (elapsed.as_secs_f64() * 10.0).round() / 10.0,
        outcome: Outcome {
            previous_version: field(outcome.previous_version),
            version: field(outcome.version),
            message: bound_owned(outcome.message, MAX_MESSAGE),
            detail: (outcome.detail).map(|d| Box::new(bound_owned(*d, MAX_MESSAGE))),
            ..outcome
        },
        via: host.via().map(|v| bound_owned(v, MAX_MESSAGE)),
        phases,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_beats_connection_attempts_which_beats_the_default() {
        let limits = |given| RunLimits {
            forks: 1,
            timeout: Duration::from_secs(600),
            connect_retries: given,
            serial: None,
            max_fail: None,
        };
        let mut host = Host::plain("web1", "192.0.2.1", 22, "root");
        assert_eq!(
            connect_retries(&host, &limits(None)),
            DEFAULT_CONNECT_RETRIES
        );
        host.ssh.connection_attempts = Some(1);
        assert_eq!(connect_retries(&host, &limits(None)), 0);
        host.ssh.connection_attempts = Some(500);
        assert_eq!(connect_retries(&host, &limits(None)), MAX_CONNECT_RETRIES);
        assert_eq!(connect_retries(&host, &limits(Some(3))), 3);
    }

    /// 1 s, 2 s, 4 s ... at most 30 s, each within ±50 %, and not all alike.
    #[test]
    fn retries_back_off_with_jitter() {
        for (n, base) in [
            (1, 1.0),
            (2, 2.0),
            (3, 4.0),
            (5, 16.0),
            (6, 30.0),
            (10, 30.0),
        ] {
            let waits: Vec<f64> = (0..50).map(|_| backoff(n).as_secs_f64()).collect();
            for wait in &waits {
                assert!(
                    (base * 0.5..=base * 1.5).contains(wait),
                    "retry {n}: {wait}"
                );
            }
            assert!(waits.iter().any(|w| *w != waits[0]), "retry {n}: no jitter");
        }
    }
}
