//! Fan-out over hosts: one tokio task per host, at most `--forks` in flight
//! (a semaphore), each host's whole run inside one `--timeout` deadline.
//! Every host ends in exactly one [`HostReport`]; a host's failure never
//! slows or stops the others. What runs on a host is a [`Job`]: the push
//! step, or a small command such as enroll's.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::inventory::Host;
use crate::outcome::{BytesSent, Outcome, Status};
use crate::progress::{HostProgress, Phase, Progress};
use crate::report::HostReport;
use crate::ssh::{ConnectOptions, Connection};
use crate::untrusted::{MAX_FIELD, MAX_MESSAGE, bound_owned};

/// Limits shared by every host of one run.
#[derive(Debug, Clone)]
pub struct RunLimits {
    pub forks: usize,
    /// Whole run of one host, connection included.
    pub timeout: Duration,
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
    pub progress: &'a HostProgress,
    /// Package bytes the job sends are added here: the fan-out puts them in
    /// the host's outcome however the run ends (a job's own outcome leaves
    /// `bytes_sent` to it).
    pub sent: &'a BytesSent,
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
    let stopping = Arc::new(AtomicBool::new(false));
    let (stop_now, stopped) = tokio::sync::watch::channel(false);
    let signals = tokio::spawn(watch_interrupts(stopping.clone(), stop_now));
    let mut tasks = Vec::with_capacity(hosts.len());
    for host in hosts {
        let (name, address) = (host.name.clone(), host.address.clone());
        // Hosts start in inventory order: the permit is taken here, one host
        // after the other, not inside the tasks, which would race for it
        // (with --forks 1 the third host could go first).
        let permit = forks.clone().acquire_owned().await;
        let (job, connect, progress, stopping, mut stopped) = (
            job.clone(),
            connect.clone(),
            progress.clone(),
            stopping.clone(),
            stopped.clone(),
        );
        let timeout = limits.timeout;
        let task = tokio::spawn(async move {
            let _permit = permit;
            if stopping.load(Ordering::SeqCst) {
                let outcome = Outcome {
                    attempts: 0,
                    ..Outcome::status(Status::NotAttempted, "not started: interrupted")
                };
                return report(&host, outcome, Duration::ZERO);
            }
            let started = Instant::now();
            let host_progress = progress.host(&host.name);
            let sent = BytesSent::default();
            let run = tokio::time::timeout(
                timeout,
                run_one(&*job, &host, &connect, &host_progress, &sent),
            );
            let ran = tokio::select! {
                ran = run => ran,
                // Dropping the run closes its connection: the client's
                // watchdog undoes what the step started.
                _ = stopped.wait_for(|now| *now) => {
                    let outcome = Outcome {
                        bytes_sent: sent.get(),
                        ..Outcome::status(
                            Status::Failed,
                            "interrupted again: stopped at once (the client undoes what it started)",
                        )
                    };
                    host_progress.done(outcome.status);
                    return report(&host, outcome, started.elapsed());
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
                    ..Outcome::status(
                        Status::Timeout,
                        format!(
                            "no completion line within {} s (--timeout)",
                            timeout.as_secs()
                        ),
                    )
                },
            };
            host_progress.done(outcome.status);
            report(&host, outcome, started.elapsed())
        });
        tasks.push((name, address, task));
    }
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
    signals.abort();
    reports
}

/// First Ctrl-C (or SIGTERM): start no new host and let the ones in flight
/// finish. Second: stop the hosts in flight at once (their connections
/// close; clients whose controller vanished undo what they started, see the
/// watchdog in `src/step/watch.sh`); the run still reports and records them.
async fn watch_interrupts(stopping: Arc<AtomicBool>, stop_now: tokio::sync::watch::Sender<bool>) {
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
        if stopping.swap(true, Ordering::SeqCst) {
            eprintln!("swpush: interrupted again: stopping now");
            let _ = stop_now.send(true);
            return;
        }
        eprintln!(
            "swpush: interrupted: starting no new host, waiting for those in flight (interrupt again to stop at once)"
        );
    }
}

async fn run_one<J: Job>(
    job: &J,
    host: &Host,
    connect: &ConnectOptions,
    progress: &HostProgress,
    sent: &BytesSent,
) -> Outcome {
    // A host behind a jump host fails in Connection::connect, never connecting directly.
    progress.phase(Phase::Connecting);
    let connection = match Connection::connect(host, connect).await {
        Ok(connection) => connection,
        Err(error) => return Outcome::status(Status::Unreachable, error.to_string()),
    };
    let on = OnHost {
        connection: &connection,
        host,
        progress,
        sent,
    };
    let mut outcome = job.run(on).await;
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
fn report(host: &Host, outcome: Outcome, elapsed: Duration) -> HostReport {
    let field = |v: Option<String>| v.map(|v| bound_owned(v, MAX_FIELD));
    HostReport {
        host: host.name.clone(),
        address: host.address.clone(),
        seconds: (elapsed.as_secs_f64() * 10.0).round() / 10.0,
        outcome: Outcome {
            previous_version: field(outcome.previous_version),
            version: field(outcome.version),
            message: bound_owned(outcome.message, MAX_MESSAGE),
            ..outcome
        },
        via: host.via().map(|v| bound_owned(v, MAX_MESSAGE)),
    }
}
