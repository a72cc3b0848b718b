//! How a job ended on one host: its [`Status`] and what the client or the
//! controller said about it ([`Outcome`]), as the fleet collects it and the
//! report shows it. The host's name, address, time and route are not
//! here: the [report](crate::report) adds them.
//!
//! The status words are the client step's, the JSON report's and the text
//! report's: [`Status`]'s `Display` is their one spelling.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

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

/// How a job ended on one host: every host ends in exactly one.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Outcome {
    pub status: Status,
    /// The version current before the run, when the client had one.
    pub previous_version: Option<String>,
    /// The version current after the run (`None` after a remove).
    pub version: Option<String>,
    /// Why, in the client's or the controller's words; empty when nothing to say.
    pub message: String,
    /// Package bytes uploaded (0 when the client had it cached or declined).
    pub bytes_sent: u64,
    /// Busy checks made, the first included.
    pub attempts: u32,
    /// `status` only: what the host has installed.
    #[serde(default)]
    pub packages: Option<Vec<InstalledPackage>>,
}

impl Outcome {
    /// `status` after one attempt, with `message` and nothing else to say.
    pub fn status(status: Status, message: impl Into<String>) -> Self {
        Outcome {
            status,
            previous_version: None,
            version: None,
            message: message.into(),
            bytes_sent: 0,
            attempts: 1,
            packages: None,
        }
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
}
