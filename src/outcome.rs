//! How a job ended on one host: its [`Status`] and what the client or the
//! controller said about it ([`Outcome`]), as the fleet collects it and the
//! report shows it. The host's name, address, time and route are not
//! here: the [report](crate::report) adds them.
//!
//! The status words are the client step's, the JSON report's and the text
//! report's: [`Status`]'s `Display` is their one spelling. A host's
//! versions are [`HostVersion`]s: "none installed" and "never found out"
//! are different answers, and an operator acts differently on each.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How one host ended. Every host ends in exactly one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    Installed,
    Upgraded,
    Unchanged,
    Removed,
    RolledBack,
    /// Policy said no (e.g. another version is installed); not an error.
    Skipped,
    /// The distribution right or the order check failed on the client.
    Rejected,
    /// Still busy after the retries.
    Busy,
    /// The operation failed; the previous release stays current.
    Failed,
    /// Connect, host key or login failed.
    Unreachable,
    /// No completion line within `--timeout`.
    Timeout,
    /// Never started (`--max-fail` or Ctrl-C).
    NotAttempted,
}

impl Status {
    /// Every status, in the order the summary lists them.
    pub const ALL: [Status; 12] = [
        Status::Installed,
        Status::Upgraded,
        Status::Unchanged,
        Status::Removed,
        Status::RolledBack,
        Status::Skipped,
        Status::Rejected,
        Status::Busy,
        Status::Failed,
        Status::Unreachable,
        Status::Timeout,
        Status::NotAttempted,
    ];

    /// The operation succeeded on this host.
    pub fn succeeded(self) -> bool {
        matches!(
            self,
            Status::Installed
                | Status::Upgraded
                | Status::Unchanged
                | Status::Removed
                | Status::RolledBack
        )
    }

    /// This host allows exit status 0: it succeeded or was skipped.
    pub fn ok_for_exit(self) -> bool {
        self.succeeded() || self == Status::Skipped
    }
}

/// The status word of the report, the JSON and the client step's lines.
impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Status::Installed => "installed",
            Status::Upgraded => "upgraded",
            Status::Unchanged => "unchanged",
            Status::Removed => "removed",
            Status::RolledBack => "rolled-back",
            Status::Skipped => "skipped",
            Status::Rejected => "rejected",
            Status::Busy => "busy",
            Status::Failed => "failed",
            Status::Unreachable => "unreachable",
            Status::Timeout => "timeout",
            Status::NotAttempted => "not-attempted",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown host status `{0}` (expected one of: {list})", list = status_list())]
pub struct UnknownStatus(pub String);

fn status_list() -> String {
    Status::ALL.map(|s| s.to_string()).join(", ")
}

impl FromStr for Status {
    type Err = UnknownStatus;

    fn from_str(word: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|status| status.to_string() == word)
            .ok_or_else(|| UnknownStatus(word.to_owned()))
    }
}

impl Serialize for Status {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Status {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let word = Cow::<str>::deserialize(deserializer)?;
        word.parse().map_err(serde::de::Error::custom)
    }
}

/// What a host has of the package, before or after a run, as far as the
/// controller found out.
///
/// In JSON: the version as a string, `null` for [`HostVersion::NotInstalled`]
/// and `"unknown"` for [`HostVersion::Unknown`] (SPEC §7); the text report
/// shows `-` and `?`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum HostVersion {
    /// Never found out: the host was not reached, timed out, was not
    /// attempted, or the step ended without a completion line.
    #[default]
    Unknown,
    /// The host said it has none (or none is left, after a remove).
    NotInstalled,
    /// The host said this version is current.
    Is(String),
}

/// The JSON word for [`HostVersion::Unknown`].
const UNKNOWN: &str = "unknown";

impl HostVersion {
    /// What a client said: a version, or none.
    pub fn said(version: Option<String>) -> HostVersion {
        version.map_or(HostVersion::NotInstalled, HostVersion::Is)
    }

    /// The version, if the host has one and said so.
    pub fn as_deref(&self) -> Option<&str> {
        match self {
            HostVersion::Is(v) => Some(v),
            HostVersion::Unknown | HostVersion::NotInstalled => None,
        }
    }

    /// Whether the host said (a version or none).
    pub fn is_known(&self) -> bool {
        *self != HostVersion::Unknown
    }

    /// The same answer with the version, if any, changed by `f`.
    pub fn map(self, f: impl FnOnce(String) -> String) -> HostVersion {
        match self {
            HostVersion::Is(v) => HostVersion::Is(f(v)),
            other => other,
        }
    }
}

impl Serialize for HostVersion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            HostVersion::Unknown => serializer.serialize_str(UNKNOWN),
            HostVersion::NotInstalled => serializer.serialize_none(),
            HostVersion::Is(v) => serializer.serialize_str(v),
        }
    }
}

/// A run record written before versions could be unknown has only `null`
/// and strings: `null` reads as none, as it meant then.
impl<'de> Deserialize<'de> for HostVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Option::<String>::deserialize(deserializer)? {
            None => HostVersion::NotInstalled,
            Some(v) if v == UNKNOWN => HostVersion::Unknown,
            Some(v) => HostVersion::Is(v),
        })
    }
}

/// How a job ended on one host: every host ends in exactly one.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Outcome {
    pub status: Status,
    /// The version current before the run.
    pub previous_version: HostVersion,
    /// The version current after the run ([`HostVersion::NotInstalled`]
    /// after a remove).
    pub version: HostVersion,
    /// Why, in the client's or the controller's words; empty when nothing to say.
    pub message: String,
    /// Package bytes uploaded (0 when the client had it cached or declined).
    pub bytes_sent: u64,
    /// Busy checks made, the first included.
    pub attempts: u32,
    /// Where the package's bytes came from (`None`: no package was needed,
    /// or none arrived).
    #[serde(default)]
    pub source: Option<crate::mirror::Source>,
    /// The mirror the order named, the tool the client fetched with and
    /// why the fetch failed; `None` without a mirror. Boxed as `detail` is;
    /// the report writes it as `url`, `fetch_tool` and `fetch_failed`, and
    /// a run record read back does not need it.
    #[serde(skip)]
    pub fetch: Option<Box<crate::mirror::Fetch>>,
    /// `status` only: what the host has installed.
    #[serde(default)]
    pub packages: Option<Box<[InstalledPackage]>>,
    /// What the SSH layer knew of a failure beyond `message` (see
    /// [`SshError::detail`](crate::ssh::SshError::detail)); `None` when
    /// nothing failed there. The text report shows it with `-v` only.
    /// Behind one pointer: an `Outcome` is the error of `Result`s, kept
    /// small (clippy's `result_large_err`), and it is rarely there.
    #[serde(default)]
    #[allow(clippy::box_collection)]
    pub detail: Option<Box<String>>,
}

impl Outcome {
    /// `status` after one attempt, with `message` and nothing else to say:
    /// no client said which versions it has (they are
    /// [unknown](HostVersion::Unknown)).
    pub fn status(status: Status, message: impl Into<String>) -> Self {
        Outcome {
            status,
            previous_version: HostVersion::Unknown,
            version: HostVersion::Unknown,
            message: message.into(),
            bytes_sent: 0,
            attempts: 1,
            source: None,
            fetch: None,
            packages: None,
            detail: None,
        }
    }

    /// The same outcome with the SSH layer's `detail` of its failure.
    pub fn with_detail(self, detail: String) -> Self {
        Outcome {
            detail: Some(Box::new(detail)),
            ..self
        }
    }

    /// [`Outcome::detail`], if any.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref().map(String::as_str)
    }
}

/// Package bytes sent to one host so far, counted as they go: the host's
/// [`Outcome::bytes_sent`] however its run ends (done, failed, a timeout,
/// a second Ctrl-C), not only when the client says it is done.
#[derive(Debug, Default)]
pub struct BytesSent(AtomicU64);

impl BytesSent {
    /// The counter to add each chunk to as it is sent.
    pub fn counter(&self) -> &AtomicU64 {
        &self.0
    }

    /// The bytes counted so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// What a host's job has heard from the step so far, kept where the
/// fan-out reads it when the job does not end on its own (`--timeout`):
/// the version current before the run (the step's hello), and what the
/// step was doing that takes long (a hook, the health check) with what the
/// host does once it is stopped there.
#[derive(Debug, Default)]
pub struct Heard {
    before: Mutex<HostVersion>,
    doing: Mutex<Option<(String, String)>>,
}

impl Heard {
    pub fn before(&self, version: HostVersion) {
        *self.before.lock().unwrap_or_else(PoisonError::into_inner) = version;
    }

    /// The step runs `what` (`the post_install hook of hello 1.2.0`);
    /// stopped there, `then` (`the host puts 1.1.0 back`).
    pub fn doing(&self, what: String, then: String) {
        *self.doing.lock().unwrap_or_else(PoisonError::into_inner) = Some((what, then));
    }

    pub fn version_before(&self) -> HostVersion {
        self.before
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn what_it_was_doing(&self) -> Option<(String, String)> {
        self.doing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// One package installed on a host, as `swpush status` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalledPackage {
    pub name: String,
    /// The current release.
    pub version: String,
    pub sha256: String,
    /// When the current release became current (RFC 3339), if recorded.
    pub since: Option<String>,
    /// Kept releases, oldest first, the current one included.
    pub releases: Vec<KeptRelease>,
}

/// A release kept on a host (a rollback can make it current again).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptRelease {
    pub version: String,
    pub sha256: String,
    /// When it was installed (RFC 3339).
    pub installed: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_words_round_trip() {
        let words = [
            (Status::Installed, "installed"),
            (Status::Upgraded, "upgraded"),
            (Status::Unchanged, "unchanged"),
            (Status::Removed, "removed"),
            (Status::RolledBack, "rolled-back"),
            (Status::Skipped, "skipped"),
            (Status::Rejected, "rejected"),
            (Status::Busy, "busy"),
            (Status::Failed, "failed"),
            (Status::Unreachable, "unreachable"),
            (Status::Timeout, "timeout"),
            (Status::NotAttempted, "not-attempted"),
        ];
        assert_eq!(words.map(|(s, _)| s), Status::ALL);
        for (status, word) in words {
            assert_eq!(status.to_string(), word);
            assert_eq!(word.parse::<Status>(), Ok(status));
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{word}\""));
            assert_eq!(serde_json::from_str::<Status>(&json).unwrap(), status);
        }
        for bad in ["", "Installed", "rolled_back", "ok"] {
            let err = bad.parse::<Status>().unwrap_err();
            assert!(err.to_string().contains("not-attempted"), "{err}");
        }
    }

    #[test]
    fn which_statuses_succeed_and_which_allow_exit_0() {
        let ok: Vec<_> = Status::ALL.into_iter().filter(|s| s.succeeded()).collect();
        assert_eq!(
            ok,
            [
                Status::Installed,
                Status::Upgraded,
                Status::Unchanged,
                Status::Removed,
                Status::RolledBack
            ]
        );
        let exit_0: Vec<_> = Status::ALL
            .into_iter()
            .filter(|s| s.ok_for_exit())
            .collect();
        assert_eq!(exit_0[..5], ok[..]);
        assert_eq!(exit_0[5..], [Status::Skipped]);
    }

    #[test]
    fn versions_in_json_are_a_string_null_or_unknown() {
        let cases = [
            (HostVersion::Is("1.2.0".into()), r#""1.2.0""#),
            (HostVersion::NotInstalled, "null"),
            (HostVersion::Unknown, r#""unknown""#),
        ];
        for (version, json) in cases {
            assert_eq!(serde_json::to_string(&version).unwrap(), json);
            assert_eq!(serde_json::from_str::<HostVersion>(json).unwrap(), version);
        }
        assert_eq!(HostVersion::said(None), HostVersion::NotInstalled);
        assert_eq!(HostVersion::Unknown.as_deref(), None);
        assert!(!HostVersion::Unknown.is_known() && HostVersion::NotInstalled.is_known());
    }
}
