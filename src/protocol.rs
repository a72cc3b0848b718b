//! The lines swpush's client scripts print: the step's, parsed once into
//! [`StepLine`], and the `swpush done` completion line every script (the
//! step, `status`, `enroll`) ends with. The protocol itself is documented in
//! the header of `src/step/step.sh`; this module only reads it. A line that does not start with `swpush ` is noise
//! (a login banner, a shell's chatter) and is skipped; a `swpush` line with
//! a word this controller does not know is an error, never guessed at.
//! Everything a client says is kept [bounded](bound).

use crate::fleet::OnHost;
use crate::order::Challenge;
use crate::outcome::{HostVersion, Outcome, Status};
use crate::ssh::{ScriptError, ScriptOutput};
use crate::untrusted::{MAX_FIELD, MAX_MESSAGE, bound};

/// Most output a script run to its end (`status`, `enroll`) may print: a
/// client that floods is failed, not kept in memory (status of hundreds of
/// packages is a few hundred KiB).
pub const MAX_SCRIPT_OUTPUT: usize = 4 * 1024 * 1024;

/// A line that breaks the protocol: the client is not a swpush step (or not
/// this controller's), and the host has failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProtocolError(pub String);

/// One protocol line of the step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepLine {
    /// `swpush hello 1 CHALLENGE VERSION SHA256`: answer with the order.
    Hello {
        challenge: Challenge,
        /// What is current of the package there (`-`: nothing).
        current: HostVersion,
    },
    /// `swpush phase ...`: progress for the live display.
    Phase(StepPhase),
    /// `swpush need SIZE`: send the package, exactly SIZE bytes.
    Need(u64),
    /// `swpush fetch TOOL`: the client fetches the package from its
    /// order's mirror URL with TOOL (`curl`, `wget`, `busybox-wget`).
    Fetch(String),
    /// `swpush fetch-failed MESSAGE`: that fetch failed; a `need` follows
    /// when the order allows the controller to send the package instead.
    FetchFailed(String),
    /// `swpush switched SECONDS`: the new release is current; confirm
    /// (`swpush confirm`) or abort within SECONDS.
    Switched { within: u64 },
    /// `swpush done STATUS PREVIOUS VERSION MESSAGE...`: the end.
    Done(Completion),
}

/// What `swpush phase` says the step is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepPhase {
    Verifying,
    /// `waiting I N`: the host is busy; retry I of N comes next.
    Waiting {
        retry: u32,
        of: u32,
    },
    Installing,
    /// `hook KIND VERSION`: a hook of release VERSION runs, or its health
    /// check: what takes time while installing.
    Hook {
        kind: HookKind,
        version: String,
    },
}

/// What the step runs that can take long: a hook, or the health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    PreInstall,
    PostInstall,
    PreRemove,
    HealthCheck,
}

impl HookKind {
    pub fn as_str(self) -> &'static str {
        match self {
            HookKind::PreInstall => "pre_install",
            HookKind::PostInstall => "post_install",
            HookKind::PreRemove => "pre_remove",
            HookKind::HealthCheck => "health_check",
        }
    }

    fn parse(word: &str) -> Option<HookKind> {
        [
            HookKind::PreInstall,
            HookKind::PostInstall,
            HookKind::PreRemove,
            HookKind::HealthCheck,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == word)
    }

    /// `the post_install hook of hello 1.2.0`, `the health check of ...`.
    pub fn of(self, package: &str, version: &str) -> String {
        match self {
            HookKind::HealthCheck => format!("the health check of {package} {version}"),
            kind => format!("the {} hook of {package} {version}", kind.as_str()),
        }
    }
}

/// The completion line: what the step did, from and to which version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub status: Status,
    pub previous_version: Option<String>,
    pub version: Option<String>,
    pub message: String,
}

impl StepLine {
    /// The protocol line `line` (without its newline) is, `None` for noise.
    pub fn parse(line: &str) -> Result<Option<StepLine>, ProtocolError> {
        let Some(words) = line.strip_prefix("swpush ") else {
            return Ok(None);
        };
        let (word, rest) = words.split_once(' ').unwrap_or((words, ""));
        let line = match word {
            "hello" => parse_hello(rest)?,
            "phase" => StepLine::Phase(parse_phase(rest)?),
            "need" => StepLine::Need(parse_size(rest)?),
            "fetch" => StepLine::Fetch(parse_fetch_tool(rest)?),
            "fetch-failed" => StepLine::FetchFailed(bound(rest.trim(), MAX_MESSAGE).into_owned()),
            "switched" => StepLine::Switched {
                within: parse_seconds(rest)?,
            },
            "done" => StepLine::Done(Completion::parse(rest)?),
            _ => {
                return Err(protocol(format!(
                    "the client sent an unknown line `swpush {}`",
                    bound(word, MAX_FIELD)
                )));
            }
        };
        Ok(Some(line))
    }
}

impl Completion {
    /// The host's outcome: this line, after `attempts` tries (busy retries
    /// count). The fan-out adds the package bytes sent.
    pub fn into_outcome(self, attempts: u32) -> Outcome {
        Outcome {
            status: self.status,
            previous_version: HostVersion::said(self.previous_version),
            version: HostVersion::said(self.version),
            message: self.message,
            bytes_sent: 0,
            attempts,
            source: None,
            fetch: None,
            packages: None,
            detail: None,
        }
    }

    /// `STATUS PREVIOUS VERSION MESSAGE...`: a version is kept to
    /// [`MAX_FIELD`], the message to [`MAX_MESSAGE`] bytes.
    pub fn parse(rest: &str) -> Result<Completion, ProtocolError> {
        let mut parts = rest.splitn(4, ' ');
        let status = parts.next().unwrap_or("");
        let status: Status = status.parse().map_err(|_| {
            protocol(format!(
                "the client reported an unknown status `{}`",
                bound(status, MAX_FIELD)
            ))
        })?;
        let version = |v: Option<&str>| {
            v.filter(|v| *v != "-" && !v.is_empty())
                .map(|v| bound(v, MAX_FIELD).into_owned())
        };
        Ok(Completion {
            status,
            previous_version: version(parts.next()),
            version: version(parts.next()),
            message: bound(parts.next().unwrap_or("").trim(), MAX_MESSAGE).into_owned(),
        })
    }
}

/// The tools the step fetches with (src/step/fetch.sh).
fn parse_fetch_tool(rest: &str) -> Result<String, ProtocolError> {
    match rest {
        "curl" | "wget" | "busybox-wget" => Ok(rest.to_owned()),
        _ => Err(protocol(format!(
            "the client says it fetches with an unknown tool `{}`",
            bound(rest, MAX_FIELD)
        ))),
    }
}

/// Runs `script` with `args` on the host (through sudo for `become`) to its
/// end: see [`script_outcome`].
pub async fn run_to_its_end(
    on: OnHost<'_>,
    script: &str,
    args: &[String],
) -> Result<(String, Outcome), Outcome> {
    let command = crate::ssh::script::command(on.host, script, args);
    script_outcome(on.connection.run_script(&command, MAX_SCRIPT_OUTPUT).await)
}

/// How a script that needs no input and ends with one `swpush done` line
/// (`status`, `enroll`) ended: its stdout and the outcome its last
/// completion line gives, or the failed outcome saying why it has none.
pub fn script_outcome(
    output: Result<ScriptOutput, ScriptError>,
) -> Result<(String, Outcome), Outcome> {
    let output = output.map_err(|error| {
        Outcome::status(
            Status::Failed,
            match error {
                ScriptError::Ssh(error) => format!("connection lost: {error}"),
                flooded @ ScriptError::Flooded(_) => flooded.to_string(),
            },
        )
    })?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let Some(rest) = stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("swpush done "))
    else {
        let said = output.last_said();
        return Err(Outcome::status(
            Status::Failed,
            crate::sudo::explain(&said).unwrap_or_else(|| {
                format!("the remote command ended before it reported how it went: {said}")
            }),
        ));
    };
    let outcome = Completion::parse(rest).map_or_else(
        |e| Outcome::status(Status::Failed, e.to_string()),
        |completion| completion.into_outcome(1),
    );
    Ok((stdout, outcome))
}

fn parse_hello(rest: &str) -> Result<StepLine, ProtocolError> {
    let mut words = rest.split(' ');
    if words.next() != Some("1") {
        return Err(protocol(format!(
            "the client step speaks another protocol: {}",
            bound(rest, MAX_FIELD)
        )));
    }
    let challenge = words
        .next()
        .and_then(Challenge::parse)
        .ok_or_else(|| protocol("the client sent no usable challenge".into()))?;
    // Only for the report of a run that does not end on its own: a version
    // that is not one is not one it could have.
    let current = match words.next() {
        Some("-") => HostVersion::NotInstalled,
        Some(v) if crate::version::Version::parse(v).is_ok() => HostVersion::Is(v.to_owned()),
        _ => HostVersion::Unknown,
    };
    Ok(StepLine::Hello { challenge, current })
}

fn parse_phase(rest: &str) -> Result<StepPhase, ProtocolError> {
    let count = |word: Option<&str>| word.filter(|w| is_number(w)).and_then(|w| w.parse().ok());
    let mut words = rest.split(' ');
    let phase = match words.next() {
        Some("verifying") if rest == "verifying" => StepPhase::Verifying,
        Some("installing") if rest == "installing" => StepPhase::Installing,
        Some("hook") => match (
            words.next().and_then(HookKind::parse),
            words
                .next()
                .filter(|v| crate::version::Version::parse(v).is_ok()),
            words.next(),
        ) {
            (Some(kind), Some(version), None) => StepPhase::Hook {
                kind,
                version: version.to_owned(),
            },
            _ => return Err(unknown_phase(rest)),
        },
        Some("waiting") => match (count(words.next()), count(words.next()), words.next()) {
            (Some(retry), Some(of), None) => StepPhase::Waiting { retry, of },
            _ => return Err(unknown_phase(rest)),
        },
        _ => return Err(unknown_phase(rest)),
    };
    Ok(phase)
}

fn parse_seconds(rest: &str) -> Result<u64, ProtocolError> {
    parse_count(rest, |word| {
        format!("the client asked to be confirmed within `{word}` seconds: not a number")
    })
}

fn parse_size(rest: &str) -> Result<u64, ProtocolError> {
    parse_count(rest, |word| {
        format!("the client asked for `{word}` bytes: not a size")
    })
}

/// A count of decimal digits; otherwise the error `complaint` words (given
/// the word, bounded).
fn parse_count(rest: &str, complaint: impl Fn(&str) -> String) -> Result<u64, ProtocolError> {
    let word = rest.trim();
    match word.parse() {
        Ok(count) if is_number(word) => Ok(count),
        _ => Err(protocol(complaint(&bound(word, MAX_FIELD)))),
    }
}

fn is_number(word: &str) -> bool {
    !word.is_empty() && word.bytes().all(|b| b.is_ascii_digit())
}

fn unknown_phase(rest: &str) -> ProtocolError {
    protocol(format!(
        "the client sent an unknown phase `{}`",
        bound(rest, MAX_FIELD)
    ))
}

fn protocol(message: String) -> ProtocolError {
    ProtocolError(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHALLENGE: &str = "0123456789abcdef0123456789abcdef";

    fn parsed(line: &str) -> Result<Option<StepLine>, String> {
        StepLine::parse(line).map_err(|e| e.to_string())
    }

    #[test]
    fn protocol_lines() {
        let done = |status, previous: Option<&str>, version: Option<&str>, message: &str| {
            Ok(Some(StepLine::Done(Completion {
                status,
                previous_version: previous.map(Into::into),
                version: version.map(Into::into),
                message: message.into(),
            })))
        };
        let cases: &[(&str, Result<Option<StepLine>, String>)] = &[
            (
                &format!("swpush hello 1 {CHALLENGE} - -"),
                Ok(Some(StepLine::Hello {
                    challenge: Challenge::parse(CHALLENGE).unwrap(),
                    current: HostVersion::NotInstalled,
                })),
            ),
            (
                &format!("swpush hello 1 {CHALLENGE} 1.0.0 {}", "ab".repeat(32)),
                Ok(Some(StepLine::Hello {
                    challenge: Challenge::parse(CHALLENGE).unwrap(),
                    current: HostVersion::Is("1.0.0".into()),
                })),
            ),
            (
                &format!("swpush hello 2 {CHALLENGE} - -"),
                Err(format!(
                    "the client step speaks another protocol: 2 {CHALLENGE} - -"
                )),
            ),
            (
                "swpush hello 1 NOTHEX - -",
                Err("the client sent no usable challenge".into()),
            ),
            (
                "swpush phase verifying",
                Ok(Some(StepLine::Phase(StepPhase::Verifying))),
            ),
            (
                "swpush phase installing",
                Ok(Some(StepLine::Phase(StepPhase::Installing))),
            ),
            (
                "swpush phase waiting 2 5",
                Ok(Some(StepLine::Phase(StepPhase::Waiting {
                    retry: 2,
                    of: 5,
                }))),
            ),
            (
                "swpush phase waiting 2",
                Err("the client sent an unknown phase `waiting 2`".into()),
            ),
            (
                "swpush phase waiting two 5",
                Err("the client sent an unknown phase `waiting two 5`".into()),
            ),
            (
                "swpush phase",
                Err("the client sent an unknown phase ``".into()),
            ),
            (
                "swpush phase dancing",
                Err("the client sent an unknown phase `dancing`".into()),
            ),
            (
                "swpush phase installing now",
                Err("the client sent an unknown phase `installing now`".into()),
            ),
            (
                "swpush phase hook post_install 1.2.0",
                Ok(Some(StepLine::Phase(StepPhase::Hook {
                    kind: HookKind::PostInstall,
                    version: "1.2.0".into(),
                }))),
            ),
            (
                "swpush phase hook post_install ../x",
                Err("the client sent an unknown phase `hook post_install ../x`".into()),
            ),
            (
                "swpush phase hook rm_rf 1.0",
                Err("the client sent an unknown phase `hook rm_rf 1.0`".into()),
            ),
            (
                "swpush switched 30",
                Ok(Some(StepLine::Switched { within: 30 })),
            ),
            (
                "swpush switched soon",
                Err("the client asked to be confirmed within `soon` seconds: not a number".into()),
            ),
            ("swpush need 1048576", Ok(Some(StepLine::Need(1_048_576)))),
            (
                "swpush need +5",
                Err("the client asked for `+5` bytes: not a size".into()),
            ),
            (
                "swpush need",
                Err("the client asked for `` bytes: not a size".into()),
            ),
            (
                "swpush need 99999999999999999999999",
                Err("the client asked for `99999999999999999999999` bytes: not a size".into()),
            ),
            (
                "swpush fetch curl",
                Ok(Some(StepLine::Fetch("curl".into()))),
            ),
            (
                "swpush fetch busybox-wget",
                Ok(Some(StepLine::Fetch("busybox-wget".into()))),
            ),
            (
                "swpush fetch nc",
                Err("the client says it fetches with an unknown tool `nc`".into()),
            ),
            (
                "swpush fetch-failed the mirror sent 3 of the signed 9 bytes",
                Ok(Some(StepLine::FetchFailed(
                    "the mirror sent 3 of the signed 9 bytes".into(),
                ))),
            ),
            (
                "swpush done upgraded 1.0.0 1.1.0 upgraded, 1.0.0 kept",
                done(
                    Status::Upgraded,
                    Some("1.0.0"),
                    Some("1.1.0"),
                    "upgraded, 1.0.0 kept",
                ),
            ),
            (
                "swpush done removed 1.0.0 -",
                done(Status::Removed, Some("1.0.0"), None, ""),
            ),
            ("swpush done failed", done(Status::Failed, None, None, "")),
            (
                "swpush done bogus - - x",
                Err("the client reported an unknown status `bogus`".into()),
            ),
            (
                "swpush dance 1 2",
                Err("the client sent an unknown line `swpush dance`".into()),
            ),
            ("swpush", Ok(None)),
            ("Welcome to host1", Ok(None)),
            ("swpushdone installed - 1.0.0", Ok(None)),
            ("", Ok(None)),
        ];
        for (line, expected) in cases {
            assert_eq!(&parsed(line), expected, "{line:?}");
        }
    }

    #[test]
    fn reads_completion_lines() {
        let done = Completion::parse("installed - 1.2.0 ").unwrap();
        assert_eq!(done.status, Status::Installed);
        assert_eq!(
            (done.previous_version, done.version.as_deref()),
            (None, Some("1.2.0"))
        );
        let failed =
            Completion::parse("failed 1.0 1.2.0 post_install failed, 1.0 is current again: boom")
                .unwrap();
        assert_eq!(
            failed.message,
            "post_install failed, 1.0 is current again: boom"
        );
        assert!(Completion::parse("exploded - -").is_err());
    }

    #[test]
    fn a_scripts_outcome_is_its_last_completion_line() {
        let huge = "x".repeat(70_000);
        let output = ScriptOutput {
            stdout: format!("swpush done installed - - {huge}\n").into_bytes(),
            ..ScriptOutput::default()
        };
        let (_, outcome) = script_outcome(Ok(output)).unwrap();
        assert_eq!(outcome.message.len(), MAX_MESSAGE);
    }

    #[test]
    fn keeps_a_bounded_part_of_what_a_client_says() {
        let huge = "x".repeat(70_000);
        let done = Completion::parse(&format!("failed {huge} {huge} {huge}")).unwrap();
        let kept = [done.previous_version.unwrap(), done.version.unwrap()];
        for version in kept {
            assert_eq!(version.len(), MAX_FIELD);
            assert!(version.ends_with('…'));
        }
        assert_eq!(done.message.len(), MAX_MESSAGE);
        assert!(done.message.ends_with('…'));
        let error = Completion::parse(&huge).unwrap_err().to_string();
        assert!(error.len() < 400, "{error}");
        let error = parsed(&format!("swpush {huge}")).unwrap_err();
        assert!(error.len() < 400, "{error}");
    }
}
