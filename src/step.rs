//! How the controller drives the client step on one host: build the remote
//! command, answer the step's challenge with a signed order, stream the
//! package if (and only if) the step asks for it, and read the completion
//! line. The step itself, and its line protocol, are documented in the
//! header of `src/step/step.sh`; this side only follows it.

use std::sync::LazyLock;
use std::time::Duration;

use russh::keys::PrivateKey;

use crate::fleet::{Job, OnHost};
use crate::inventory::Host;
use crate::mirror::{Fetch, MirrorPlan, Source};
use crate::order::{Challenge, Change, Op, Order, Policy};
use crate::outcome::{HostVersion, Outcome, Status};
use crate::package::Package;
use crate::package::manifest::PackageName;
use crate::progress::Phase;
use crate::protocol::{HookKind, ProtocolError, StepLine, StepPhase};
use crate::ssh::{Event, SshError};
use crate::version::Version;

/// The step: its libraries, each defining functions only (and saying in
/// its header which variables it reads and sets), then `step.sh`, whose
/// `main` runs them, phase by phase, from its last line.
const SCRIPT: &str = concat!(
    include_str!("step/check_entries.sh"),
    include_str!("step/version.sh"),
    include_str!("step/arguments.sh"),
    include_str!("step/run.sh"),
    include_str!("step/watch.sh"),
    include_str!("step/state.sh"),
    include_str!("step/trust.sh"),
    include_str!("step/order.sh"),
    include_str!("step/decide.sh"),
    include_str!("step/busy.sh"),
    include_str!("step/repair.sh"),
    include_str!("step/fetch.sh"),
    include_str!("step/package.sh"),
    include_str!("step/room.sh"),
    include_str!("step/release.sh"),
    include_str!("step/hooks.sh"),
    include_str!("step/health.sh"),
    include_str!("step/record.sh"),
    include_str!("step/rollback.sh"),
    include_str!("step/remove.sh"),
    include_str!("step/step.sh")
);

/// Lines from the step longer than this are noise, not protocol.
const MAX_LINE: usize = 4096;

/// Most stdout kept unread: while the package is sent, the step's lines
/// wait to be read, and a step prints nothing then. A client that prints
/// this much meanwhile is failed, not kept in memory.
const MAX_UNREAD: usize = 1024 * 1024;

/// What the step acts on.
// One per run, shared by every host: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Subject {
    /// `install`, `upgrade`: this package file.
    Package(Package),
    /// `rollback` (to `version`, or else the previous kept release) and
    /// `remove`: a package already on the client, by name.
    Installed {
        name: PackageName,
        version: Option<Version>,
    },
}

impl Subject {
    pub fn name(&self) -> &str {
        match self {
            Subject::Package(package) => &package.manifest.name,
            Subject::Installed { name, .. } => name.as_str(),
        }
    }
}

/// What one run of the step is asked to do; the same for every host.
pub struct StepRequest {
    pub op: Change,
    pub subject: Subject,
    pub policy: Policy,
    pub dry_run: bool,
    pub key: PrivateKey,
    /// Command-line defaults for hosts whose inventory does not set them.
    pub busy_wait: u64,
    pub busy_retries: u32,
    /// `--mirror` and friends: where clients fetch the package instead of
    /// being sent it (install and upgrade only).
    pub mirror: MirrorPlan,
    /// `--timeout`: the step gives up on its own shortly after, should it
    /// never hear that the controller left.
    pub timeout: std::time::Duration,
}

/// How long after `--timeout` the step stops on its own: the controller
/// has given up by then (its clock started first), so this only ends steps
/// whose connection went silent.
const STEP_GRACE_SECS: u64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error("{0}")]
    Protocol(String),
}

impl From<ProtocolError> for StepError {
    fn from(error: ProtocolError) -> Self {
        StepError::Protocol(error.0)
    }
}

impl Job for StepRequest {
    async fn run(&self, on: OnHost<'_>) -> Outcome {
        match run_step(on, self).await {
            Ok(outcome) => outcome,
            Err(StepError::Ssh(error)) => {
                Outcome::status(Status::Failed, format!("connection lost: {error}"))
                    .with_detail(error.detail())
            }
            Err(StepError::Protocol(message)) => Outcome::status(Status::Failed, message),
        }
    }
}

impl crate::run::Command for StepRequest {
    fn op(&self) -> Op {
        self.op.into()
    }

    fn dry_run(&self) -> bool {
        self.dry_run
    }
}

/// The remote command that runs the step for `request` on `host`. Its
/// arguments are named (`key=value`, see the header of `src/step/step.sh`):
/// the step refuses an unknown, repeated or missing one.
pub fn remote_command(host: &Host, request: &StepRequest) -> String {
    let args = [
        ("op", request.op.as_str().to_owned()),
        ("name", request.subject.name().to_owned()),
        ("known_servers", host.paths.known_servers.clone()),
        ("prefix", host.paths.prefix.clone()),
        ("state_dir", host.paths.state_dir.clone()),
        ("cache_dir", host.paths.cache_dir.clone()),
        ("keep_releases", host.keep_releases.to_string()),
        (
            "busy_wait",
            host.busy_wait.unwrap_or(request.busy_wait).to_string(),
        ),
        (
            "busy_retries",
            host.busy_retries
                .unwrap_or(request.busy_retries)
                .to_string(),
        ),
        ("busy_check", host.busy_check.clone().unwrap_or_default()),
        (
            "deadline",
            (request.timeout.as_secs() + STEP_GRACE_SECS).to_string(),
        ),
    ]
    .map(|(key, value)| format!("{key}={value}"));
    crate::ssh::script::command(host, &SENT, &args)
}

/// The step as it travels: [`SCRIPT`] without its comment lines, half the
/// bytes for every host's sshd to pass on and its shell to read.
static SENT: LazyLock<String> = LazyLock::new(|| crate::ssh::script::without_comments(SCRIPT));

/// Runs the step on an open connection and returns its completion line.
pub async fn run_step(on: OnHost<'_>, request: &StepRequest) -> Result<Outcome, StepError> {
    let OnHost {
        connection,
        host,
        progress,
        sent,
        heard,
        ..
    } = on;
    // The command (the whole step, ~100 KB) is dropped once sent.
    let mut process = connection
        .start_script(&remote_command(host, request))
        .await?;
    let stdin = process.stdin();
    let mut pending = Vec::new();
    let mut stderr = Vec::new();
    let mut attempts = 1u32;
    let mut exit = None;
    // One order, one upload and one confirmation per run: a client asking
    // again is not a swpush step.
    let (mut ordered, mut uploaded) = (false, false);
    // What the order asked: confirmed within so many seconds (0: not).
    let mut confirm_within = 0;
    // The order's mirror, what came of fetching from it, and where the
    // package's bytes came from.
    let mut fetch: Option<Fetch> = None;
    let mut fallback = false;
    let mut source = None;
    let mut confirmed: Option<Result<(), String>> = None;
    // The rest of a line cut off for its length is noise too, not a line.
    let mut rest_of_long_line = false;
    loop {
        let Some(event) = process.next_event().await else {
            break;
        };
        absorb(event, &mut pending, &mut stderr, &mut exit)?;
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line[..end]).into_owned();
            if std::mem::take(&mut rest_of_long_line) {
                continue;
            }
            let Some(step_line) = StepLine::parse(&line)? else {
                continue;
            };
            match step_line {
                StepLine::Hello { challenge, current } => {
                    if std::mem::replace(&mut ordered, true) {
                        return Err(StepError::Protocol(
                            "the client asked for a second order in one run".into(),
                        ));
                    }
                    heard.before(current);
                    let order = order_for(host, request, challenge);
                    confirm_within = order.confirm_timeout;
                    fallback = order.url_fallback;
                    fetch = order.url.clone().map(|url| Fetch {
                        url,
                        ..Fetch::default()
                    });
                    let signed = order
                        .sign(&request.key)
                        .map_err(|e| StepError::Protocol(e.to_string()))?;
                    stdin.send(signed.framed().as_bytes()).await?;
                }
                StepLine::Phase(StepPhase::Verifying) => progress.phase(Phase::Verifying),
                StepLine::Phase(StepPhase::Waiting { retry, of }) => {
                    attempts += 1;
                    progress.phase(Phase::Waiting);
                    progress.detail(&format!("busy, retry {retry}/{of}"));
                }
                StepLine::Phase(StepPhase::Installing) => progress.phase(Phase::Installing),
                StepLine::Phase(StepPhase::Hook { kind, version }) => {
                    if kind == HookKind::HealthCheck {
                        progress.phase(Phase::Checking);
                    } else {
                        progress.phase(Phase::Installing);
                        progress.detail(kind.as_str());
                    }
                    let what = kind.of(request.subject.name(), &version);
                    heard.doing(what, undone_then(request.op, &heard.version_before()));
                }
                StepLine::Switched { within } => {
                    if within == 0 || within != confirm_within || confirmed.is_some() {
                        return Err(StepError::Protocol(format!(
                            "the client asked to be confirmed within {within} s, but its order said {confirm_within} s"
                        )));
                    }
                    progress.phase(Phase::Confirming);
                    let answer = log_in_again(on, Duration::from_secs(within)).await;
                    let line: &[u8] = if answer.is_ok() {
                        b"swpush confirm\n"
                    } else {
                        b"swpush abort\n"
                    };
                    stdin.send(line).await?;
                    confirmed = Some(answer);
                }
                StepLine::Fetch(tool) => {
                    let Some(fetch) = fetch.as_mut().filter(|f| f.tool.is_none()) else {
                        return Err(StepError::Protocol(
                            "the client fetches from a mirror its order did not name".into(),
                        ));
                    };
                    fetch.tool = Some(tool);
                    source = Some(Source::Mirror);
                    progress.phase(Phase::Fetching);
                }
                StepLine::FetchFailed(why) => {
                    let Some(fetch) = fetch.as_mut().filter(|f| f.failed.is_none()) else {
                        return Err(StepError::Protocol(
                            "the client reports a fetch from a mirror its order did not name"
                                .into(),
                        ));
                    };
                    fetch.failed = Some(why);
                    source = None;
                }
                StepLine::Need(size) => {
                    // With a mirror, only a failed fetch under
                    // --mirror-fallback is sent the package.
                    if let Some(fetch) = &fetch
                        && !(fallback && fetch.failed.is_some())
                    {
                        return Err(StepError::Protocol(
                            "the client asked for the package, but its order names a mirror to fetch it from".into(),
                        ));
                    }
                    // Package bytes only ever answer a verified order's
                    // decision: a client asking before it had its order,
                    // or in a dry run, is not a swpush step, and gets none.
                    if !ordered {
                        return Err(StepError::Protocol(
                            "the client asked for the package before it was sent its order".into(),
                        ));
                    }
                    if request.dry_run {
                        return Err(StepError::Protocol(
                            "the client asked for the package in a dry run".into(),
                        ));
                    }
                    let Subject::Package(package) = &request.subject else {
                        return Err(StepError::Protocol(format!(
                            "the client asked for {size} bytes of a package, but {} sends none",
                            request.op.as_str()
                        )));
                    };
                    if std::mem::replace(&mut uploaded, true) {
                        return Err(StepError::Protocol(
                            "the client asked for the package a second time in one run".into(),
                        ));
                    }
                    if size != package.size {
                        return Err(StepError::Protocol(format!(
                            "the client asked for {size} bytes, the package has {}",
                            package.size
                        )));
                    }
                    progress.phase(Phase::Uploading);
                    source = Some(Source::Controller);
                    // stdin stays open: the step's watchdog takes its end
                    // as "the controller is gone".
                    let upload = stdin.send_file(&package.path, package.size, sent.counter());
                    tokio::pin!(upload);
                    // The channel is watched while sending: russh waits for
                    // window space forever when the connection dies (or the
                    // step ends) with the window used up, so a cut mid-upload
                    // would otherwise hang until --timeout.
                    loop {
                        tokio::select! {
                            sent = &mut upload => {
                                sent?;
                                break;
                            }
                            event = process.next_event() => match event {
                                Some(event) => absorb(event, &mut pending, &mut stderr, &mut exit)?,
                                // Closed: the loop above ends at its next event.
                                None => break,
                            },
                        }
                    }
                }
                StepLine::Done(completion) => {
                    let mut outcome = completion.into_outcome(attempts);
                    // A release made without `need` or `fetch` came from the cache.
                    let made = matches!(outcome.status, Status::Installed | Status::Upgraded);
                    if source.is_none() && made && !request.dry_run {
                        source = Some(Source::Cache);
                    }
                    outcome.source = source;
                    outcome.fetch = fetch.map(Box::new);
                    if let Some(Err(why)) = confirmed {
                        // Never a success for a host told to undo it.
                        if outcome.status.ok_for_exit() {
                            return Err(StepError::Protocol(format!(
                                "the client reported {} though the controller refused to confirm ({why})",
                                outcome.status
                            )));
                        }
                        outcome.message = format!("{} ({why})", outcome.message);
                    }
                    return Ok(outcome);
                }
            }
        }
        if pending.len() > MAX_LINE {
            pending.clear();
            rest_of_long_line = true;
        }
    }
    let said = String::from_utf8_lossy(&stderr);
    let said = said.trim().lines().last().unwrap_or("").to_owned();
    Err(StepError::Protocol(match exit {
        Some(_) if let Some(message) = crate::sudo::explain(&said) => message,
        Some(how) if !said.is_empty() => {
            format!(
                "the swpush step on the host ended ({how}) before it reported how it went: {said}"
            )
        }
        Some(how) => {
            format!("the swpush step on the host ended ({how}) before it reported how it went")
        }
        None => "the connection closed before the client step finished".to_owned(),
    }))
}

/// What a host stopped in the middle of `op` does, as its step undoes what
/// it started (docs/failure-modes.md), for the report of a timeout.
fn undone_then(op: Change, before: &HostVersion) -> String {
    match (op, before) {
        (Change::Remove, _) => "nothing is removed".to_owned(),
        (_, HostVersion::Is(version)) => format!("the host puts {version} back"),
        (_, HostVersion::NotInstalled) => "the host removes it again".to_owned(),
        (_, HostVersion::Unknown) => "the host undoes it".to_owned(),
    }
}

/// How long before the client gives up on its confirmation the controller
/// stops trying to log in again: the answer must still reach it.
const CONFIRM_MARGIN: Duration = Duration::from_secs(2);

/// Tries after a transient failure to log in again, as many as fit.
const CONFIRM_RETRIES: u32 = 5;

/// Whether the controller can still log in to the host whose new release
/// just became current: a new connection, made as the first one was (jump
/// hosts, host key, login), that runs `true`; a transient failure (sshd
/// restarting) is tried again while there is time. An upgrade that broke
/// sshd, the network or logins is found out here, while the host can still
/// undo it (docs/rollout.md). `Err` says why, in the report's words.
async fn log_in_again(on: OnHost<'_>, within: Duration) -> Result<(), String> {
    let limit = within
        .saturating_sub(CONFIRM_MARGIN)
        .max(Duration::from_secs(1));
    let deadline = std::time::Instant::now() + limit;
    let attempt = async {
        let (connected, _) = crate::fleet::connect_retrying(
            on.host,
            on.connect,
            (CONFIRM_RETRIES, deadline),
            on.progress,
        )
        .await;
        let connection = connected.map_err(|e| format!("a new login failed: {e}"))?;
        let ran = async {
            let mut process = connection.exec("true").await?;
            let mut exit = None;
            while let Some(event) = process.next_event().await {
                match event {
                    Event::Exit(code) => exit = Some(code),
                    Event::Lost(error) => return Err(error),
                    _ => {}
                }
            }
            Ok(exit)
        }
        .await;
        connection.close().await;
        match ran {
            Ok(Some(0)) => Ok(()),
            Ok(Some(code)) => Err(format!("a new login could not run a command (exit {code})")),
            Ok(None) => Err("a new login could not run a command".to_owned()),
            Err(error) => Err(format!("a new login failed: {error}")),
        }
    };
    match tokio::time::timeout(limit, attempt).await {
        Ok(answer) => answer,
        Err(_) => Err(format!(
            "a new login did not complete within {} s",
            limit.as_secs()
        )),
    }
}

/// Takes in one event of the step: output is kept (stdout for its lines),
/// the exit status noted; a lost connection is the error.
fn absorb(
    event: Event,
    pending: &mut Vec<u8>,
    stderr: &mut Vec<u8>,
    exit: &mut Option<String>,
) -> Result<(), StepError> {
    match event {
        Event::Stdout(data) => {
            if pending.len() + data.len() > MAX_UNREAD {
                return Err(StepError::Protocol(format!(
                    "the client printed more than {} MiB while the package was sent: not a swpush step",
                    MAX_UNREAD >> 20
                )));
            }
            pending.extend_from_slice(&data);
        }
        Event::Stderr(data) => {
            if stderr.len() < 64 * 1024 {
                stderr.extend_from_slice(&data);
            }
        }
        Event::Exit(code) => *exit = Some(code.to_string()),
        Event::Signal { name, .. } => *exit = Some(format!("killed by SIG{name}")),
        // The exit status, if any, follows.
        Event::Eof => {}
        Event::Lost(error) => return Err(StepError::Ssh(error)),
    }
    Ok(())
}

/// The signed order answering `swpush hello 1 CHALLENGE VERSION SHA256`.
fn order_for(host: &Host, request: &StepRequest, challenge: Challenge) -> Order {
    let url = match &request.subject {
        Subject::Package(package) => request
            .mirror
            .url_for(host.mirror.as_ref(), &package.sha256),
        Subject::Installed { .. } => None,
    };
    let (version, sha256, size, unpacked_size, hooks, health) = match &request.subject {
        Subject::Package(package) => (
            package.manifest.version.to_string(),
            package.sha256.clone(),
            package.size,
            package.unpacked_size,
            package.manifest.hooks.clone(),
            package
                .manifest
                .health
                .overridden_by(&host.health)
                .resolve(),
        ),
        Subject::Installed { version, .. } => (
            version
                .as_ref()
                .map_or_else(|| "-".into(), |v| v.as_str().to_owned()),
            "-".into(),
            0,
            0,
            Default::default(),
            None,
        ),
    };
    // Only a release newly made current is confirmed (docs/rollout.md).
    let confirm_timeout = match (&request.subject, request.dry_run) {
        (Subject::Package(_), false) => host
            .confirm_timeout
            .unwrap_or(crate::health::DEFAULT_CONFIRM_TIMEOUT),
        _ => 0,
    };
    Order {
        op: request.op,
        package: request.subject.name().to_owned(),
        version,
        sha256,
        size,
        unpacked_size,
        url_fallback: url.is_some() && request.mirror.fallback,
        url,
        url_timeout: request.mirror.timeout,
        policy: request.policy,
        dry_run: request.dry_run,
        host: host.name.clone(),
        challenge,
        hooks,
        health,
        confirm_timeout,
        issued: crate::time::now_rfc3339(),
    }
}

#[cfg(test)]
pub(crate) mod shells;

#[cfg(test)]
mod tests {
    use super::*;

    const ARGS: &str = "'op=remove' 'name=hello' 'known_servers=/etc/swpush/known_servers' \
        'prefix=/opt/swpush' 'state_dir=/var/lib/swpush' 'cache_dir=/var/cache/swpush' \
        'keep_releases=3' 'busy_wait=7' 'busy_retries=3' 'busy_check=test -e /run/x' \
        'deadline=605'";

    /// `remove hello` with busy_wait 7 and busy_retries 3, as [`ARGS`] says.
    fn remove_hello() -> StepRequest {
        StepRequest {
            op: Change::Remove,
            subject: Subject::Installed {
                name: PackageName::parse("hello").unwrap(),
                version: None,
            },
            policy: Policy::default(),
            dry_run: false,
            key: PrivateKey::random(&mut rand::rng(), russh::keys::Algorithm::Ed25519).unwrap(),
            busy_wait: 7,
            busy_retries: 3,
            mirror: MirrorPlan::default(),
            timeout: std::time::Duration::from_secs(600),
        }
    }

    /// The step travels as one argument of the remote shell (`sh -c
    /// COMMAND`), which Linux bounds at 128 KiB (MAX_ARG_STRLEN): past it
    /// no host could run it at all. Kept well below, so that growth shows
    /// here first.
    #[test]
    fn the_step_fits_one_argument_of_the_remote_shell() {
        let host = Host::plain("web1", "192.0.2.1", 22, "root");
        let length = remote_command(&host, &remove_hello()).len();
        assert!(length < 120 * 1024, "the step's command is {length} bytes");
        // Its comments stay home (they are half of it).
        assert!(
            SENT.len() < SCRIPT.len() * 2 / 3,
            "{} of {}",
            SENT.len(),
            SCRIPT.len()
        );
        assert!(!SENT.lines().any(|l| l.trim_start().starts_with('#')));
    }

    #[test]
    fn a_host_stopped_mid_run_undoes_it_in_the_reports_words() {
        let is = |v: &str| HostVersion::Is(v.into());
        assert_eq!(
            undone_then(Change::Upgrade, &is("1.1.0")),
            "the host puts 1.1.0 back"
        );
        assert_eq!(
            undone_then(Change::Install, &HostVersion::NotInstalled),
            "the host removes it again"
        );
        assert_eq!(
            undone_then(Change::Rollback, &is("2.0")),
            "the host puts 2.0 back"
        );
        assert_eq!(
            undone_then(Change::Remove, &is("2.0")),
            "nothing is removed"
        );
    }

    /// The step's command line, argument by argument: what the header of
    /// `src/step/step.sh` reads.
    #[test]
    fn the_step_is_given_named_arguments() {
        let context = crate::inventory::LoadContext {
            home: None,
            local_user: "operator".into(),
        };
        let path = std::path::Path::new("inv.yml");
        let yaml = "all:\n  hosts:\n    web1: {busy_check: \"test -e /run/x\"}\n";
        let host = crate::inventory::parse(yaml, path, path, &context)
            .unwrap()
            .hosts[0]
            .clone();
        let request = remove_hello();
        let command = remote_command(&host, &request);
        let script = format!("/bin/sh -c '{}' swpush-step ", SENT.replace('\'', r"'\''"));
        assert_eq!(
            command.strip_prefix(&script),
            Some(ARGS),
            "{}",
            &command[command.len().saturating_sub(400)..]
        );
    }

    /// A trap (or anything else) that ran before a function is defined
    /// would fail with `NAME: not found` in dash and busybox ash: the step
    /// defines functions only, and runs `main` from its last line.
    #[test]
    fn every_function_of_the_step_is_defined_before_anything_runs() {
        assert_eq!(shells::runs_before_main(SCRIPT), Vec::<String>::new());
    }

    /// Each library the step is made of says in its header which
    /// variables it reads and which it sets, before its first function.
    #[test]
    fn every_library_of_the_step_says_what_it_reads_and_sets() {
        let libraries: Vec<&str> = SCRIPT.split("# shellcheck shell=sh\n").skip(1).collect();
        assert_eq!(
            libraries.len(),
            20,
            "each library starts `# shellcheck shell=sh`, and SCRIPT has 20"
        );
        for library in libraries {
            let header = library.split("() {").next().unwrap_or_default();
            let first = library.lines().next().unwrap_or_default();
            assert!(
                header.contains("\n# Reads: ") && header.contains("\n# Sets: "),
                "the library that starts `{first}` does not say what it reads and sets"
            );
        }
    }

    /// A case of the decision: what is installed (`current`, with the
    /// content `CURRENT_SHA`, and the releases in the history, in install
    /// order, `V gone` for one no longer kept), what the order offers
    /// (`offered`, with `sha`) and its policy → the status and message the
    /// step ends with; for a decision that goes on, the status a
    /// successful run reports and what a dry run says it would do.
    struct Case {
        op: &'static str,
        current: &'static str,
        history: &'static [&'static str],
        offered: &'static str,
        sha: &'static str,
        policy: &'static [&'static str],
        expect: (&'static str, &'static str),
    }

    const CURRENT_SHA: &str = "c0ffee";

    #[rustfmt::skip]
    const DECISIONS: &[Case] = &[
        // install
        Case { op: "install", current: "-", history: &[], offered: "1.0.0", sha: CURRENT_SHA, policy: &[],
            expect: ("installed", "would install 1.0.0") },
        Case { op: "install", current: "1.0.0", history: &["1.0.0"], offered: "1.0.0", sha: CURRENT_SHA, policy: &[],
            expect: ("unchanged", "already current") },
        Case { op: "install", current: "1.0.0", history: &["1.0.0"], offered: "1.0.0", sha: "beef", policy: &[],
            expect: ("skipped", "hello 1.0.0 is installed with other content: bump the version (or --force)") },
        Case { op: "install", current: "1.0.0", history: &["1.0.0"], offered: "1.0.0", sha: "beef", policy: &["force"],
            expect: ("installed", "would reinstall 1.0.0 (--force)") },
        Case { op: "install", current: "1.0.0", history: &["1.0.0"], offered: "1.0.0", sha: CURRENT_SHA, policy: &["force"],
            expect: ("installed", "would reinstall 1.0.0 (--force)") },
        Case { op: "install", current: "1.0.0", history: &["1.0.0"], offered: "1.1.0", sha: CURRENT_SHA, policy: &["force"],
            expect: ("skipped", "hello 1.0.0 is installed: use swpush upgrade") },
        // upgrade
        Case { op: "upgrade", current: "1.0.0", history: &["1.0.0"], offered: "1.1.0", sha: "beef", policy: &[],
            expect: ("upgraded", "would upgrade 1.0.0 → 1.1.0") },
        Case { op: "upgrade", current: "1.9.0", history: &["1.9.0"], offered: "1.10.0", sha: "beef", policy: &[],
            expect: ("upgraded", "would upgrade 1.9.0 → 1.10.0") },
        Case { op: "upgrade", current: "1.2.0-rc1", history: &["1.2.0-rc1"], offered: "1.2.0", sha: "beef", policy: &[],
            expect: ("upgraded", "would upgrade 1.2.0-rc1 → 1.2.0") },
        Case { op: "upgrade", current: "1.10.0", history: &["1.10.0"], offered: "1.9.0", sha: "beef", policy: &[],
            expect: ("skipped", "hello 1.10.0 is newer than 1.9.0 (--allow-downgrade goes back)") },
        Case { op: "upgrade", current: "1.10.0", history: &["1.10.0"], offered: "1.9.0", sha: "beef", policy: &["allow_downgrade"],
            expect: ("upgraded", "would downgrade 1.10.0 → 1.9.0") },
        Case { op: "upgrade", current: "-", history: &[], offered: "1.0.0", sha: "beef", policy: &["allow_downgrade"],
            expect: ("skipped", "hello is not installed here (--install-missing installs it)") },
        Case { op: "upgrade", current: "-", history: &[], offered: "1.0.0", sha: "beef", policy: &["install_missing"],
            expect: ("installed", "would install 1.0.0") },
        Case { op: "upgrade", current: "1.0.0", history: &["1.0.0"], offered: "1.0.0", sha: CURRENT_SHA, policy: &["allow_downgrade"],
            expect: ("unchanged", "already current") },
        Case { op: "upgrade", current: "1.0.0", history: &["1.0.0"], offered: "1.0.0", sha: "beef", policy: &[],
            expect: ("skipped", "hello 1.0.0 is installed with other content: bump the version (or --force)") },
        Case { op: "upgrade", current: "1.0.0", history: &["1.0.0"], offered: "1.0.0", sha: "beef", policy: &["force"],
            expect: ("upgraded", "would reinstall 1.0.0 (--force)") },
        // rollback (`-`: to the kept release installed before the current one)
        Case { op: "rollback", current: "-", history: &[], offered: "-", sha: "-", policy: &[],
            expect: ("skipped", "hello is not installed here") },
        Case { op: "rollback", current: "1.1.0", history: &["1.0.0", "1.1.0"], offered: "-", sha: "-", policy: &[],
            expect: ("rolled-back", "would roll back 1.1.0 → 1.0.0") },
        Case { op: "rollback", current: "1.1.0", history: &["1.0.0", "0.9.0", "1.1.0"], offered: "-", sha: "-", policy: &[],
            expect: ("rolled-back", "would roll back 1.1.0 → 0.9.0") },
        Case { op: "rollback", current: "1.1.0", history: &["1.0.0", "1.0.5 gone", "1.1.0"], offered: "-", sha: "-", policy: &[],
            expect: ("rolled-back", "would roll back 1.1.0 → 1.0.0") },
        Case { op: "rollback", current: "1.0.0", history: &["1.0.0"], offered: "-", sha: "-", policy: &[],
            expect: ("skipped", "nothing to roll back to: hello 1.0.0 is the oldest release kept here") },
        Case { op: "rollback", current: "1.1.0", history: &["0.9.0 gone", "1.1.0"], offered: "-", sha: "-", policy: &[],
            expect: ("skipped", "nothing to roll back to: hello 1.1.0 is the oldest release kept here") },
        Case { op: "rollback", current: "1.2.0", history: &["1.0.0", "1.1.0", "1.2.0"], offered: "1.0.0", sha: "-", policy: &[],
            expect: ("rolled-back", "would roll back 1.2.0 → 1.0.0") },
        Case { op: "rollback", current: "1.1.0", history: &["1.0.0", "1.1.0"], offered: "1.1.0", sha: "-", policy: &[],
            expect: ("unchanged", "hello 1.1.0 is already current") },
        Case { op: "rollback", current: "1.1.0", history: &["0.9.0 gone", "1.0.0", "1.1.0"], offered: "0.9.0", sha: "-", policy: &[],
            expect: ("skipped", "hello 0.9.0 is not kept here (kept: 1.0.0 1.1.0)") },
        // remove
        Case { op: "remove", current: "-", history: &[], offered: "-", sha: "-", policy: &[],
            expect: ("skipped", "hello is not installed here") },
        Case { op: "remove", current: "1.1.0", history: &["1.0.0", "1.0.5 gone", "1.1.0"], offered: "-", sha: "-", policy: &[],
            expect: ("removed", "would remove hello 1.1.0 and its kept releases (1.0.0 1.1.0)") },
        // anything else
        Case { op: "frobnicate", current: "1.1.0", history: &["1.1.0"], offered: "-", sha: "-", policy: &[],
            expect: ("rejected", "this step cannot do frobnicate") },
    ];

    /// Runs `decide` (src/step/decide.sh) on a host laid out as the case
    /// says: `prefix` and `state_dir` under the first argument, what is
    /// installed read by `read_state`, the kept releases by `kept`. Prints
    /// `STATUS<TAB>MESSAGE`, `finish`'s or, when the decision goes on,
    /// the result and plan.
    const DECIDE: &str = concat!(
        include_str!("step/state.sh"),
        include_str!("step/version.sh"),
        include_str!("step/decide.sh"),
        r#"
finish() { printf '%s\t%s\n' "$1" "$2"; exit 0; }
set -eu
prefix=$1/prefix state_dir=$1/state name=hello
op=$2 asked=$3 sha256=$4 force=$5 allow_downgrade=$6 install_missing=$7
package_files "$name"
read_state
decide
printf '%s\t%s\n' "$result" "$plan"
"#
    );

    /// The client's decision, under dash and busybox ash, without sshd:
    /// every case of the table ends as it says.
    #[test]
    fn the_client_decides_by_the_signed_policy() {
        let root = std::env::temp_dir().join(format!("swpush-decide-{}", std::process::id()));
        for (n, case) in DECISIONS.iter().enumerate() {
            let host = root.join(n.to_string());
            let (state, releases) = (host.join("state"), host.join("prefix/hello/releases"));
            for dir in ["packages", "releases/hello", "history"] {
                std::fs::create_dir_all(state.join(dir)).unwrap();
            }
            std::fs::create_dir_all(&releases).unwrap();
            if case.current != "-" {
                let record = format!("version {}\nsha256 {CURRENT_SHA}\n", case.current);
                std::fs::write(state.join("packages/hello"), record).unwrap();
            }
            let mut history = String::new();
            for entry in case.history {
                let (version, gone) = match entry.split_once(' ') {
                    Some((version, "gone")) => (version, true),
                    _ => (*entry, false),
                };
                history += &format!("{version}\n");
                if !gone {
                    std::fs::create_dir(releases.join(version)).unwrap();
                    let record = format!("version {version}\nsha256 {CURRENT_SHA}\n");
                    std::fs::write(state.join("releases/hello").join(version), record).unwrap();
                }
            }
            if !case.history.is_empty() {
                std::fs::write(state.join("history/hello"), history).unwrap();
            }
            let flag = |name| case.policy.contains(&name).to_string();
            let (force, downgrade, missing) = (
                flag("force"),
                flag("allow_downgrade"),
                flag("install_missing"),
            );
            let args = [
                host.to_str().unwrap(),
                case.op,
                case.offered,
                case.sha,
                &force,
                &downgrade,
                &missing,
            ];
            for shell in &shells::SHELLS {
                let ran = shell.run(&[], DECIDE, &args, "");
                let got = ran.stdout.trim_end_matches('\n').split_once('\t');
                assert_eq!(
                    got,
                    Some(case.expect),
                    "case {n} ({} {} on {}) under {}: {}",
                    case.op,
                    case.offered,
                    case.current,
                    shell.name,
                    ran.stderr
                );
            }
        }
        std::fs::remove_dir_all(root).unwrap();
    }
}
