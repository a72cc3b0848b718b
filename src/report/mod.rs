//! The result of a run (SPEC §7): what was asked, when, and each host's
//! [`Outcome`] with its name, address and time ([`HostReport`]), and the
//! JSON report scripts read. The text an operator reads is [`text`]; the
//! run record kept under `~/.local/state/swpush/runs/` is [`record`]; a
//! run that found what it was asked for on no host is [`nowhere`].
//!
//! This module only presents results; it does not decide them (the fleet
//! does) and it does not print (the command does, after the live
//! [`progress`](crate::progress) display has been cleared).

pub mod nowhere;
pub mod record;
pub mod text;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize, Serializer};

use crate::order::Op;
use crate::outcome::{HostVersion, InstalledPackage, Outcome, Status};
use crate::progress::PhaseTime;
use crate::untrusted::json_safe;

/// One host's line of the report: which host, how long it took, and how
/// its job ended.
///
/// Serializes as SPEC §7's host object: the outcome's fields among the
/// host's, in SPEC order, `packages` and `via` only when there are some.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct HostReport {
    /// The inventory name.
    pub host: String,
    pub address: String,
    /// Wall-clock time spent on this host.
    pub seconds: f64,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// The jump chain (`bastion` or `a,b`) or `ProxyCommand ...` the host
    /// is reached through; absent for a direct connection.
    #[serde(default)]
    pub via: Option<String>,
    /// Time spent in each phase, in the order the host went through them
    /// (none for a host never started).
    #[serde(default)]
    pub phases: Vec<PhaseTime>,
}

impl HostReport {
    /// The report of a host that took no time and is reached directly.
    pub fn new(
        host: impl Into<String>,
        address: impl Into<String>,
        outcome: Outcome,
    ) -> HostReport {
        HostReport {
            host: host.into(),
            address: address.into(),
            seconds: 0.0,
            outcome,
            via: None,
            phases: Vec::new(),
        }
    }
}

/// The JSON shape of a [`HostReport`], in SPEC §7's field order.
#[derive(Serialize)]
struct HostReportJson<'a> {
    host: &'a str,
    address: &'a str,
    status: Status,
    previous_version: &'a HostVersion,
    version: &'a HostVersion,
    #[serde(serialize_with = "millis")]
    seconds: f64,
    attempts: u32,
    bytes_sent: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<crate::mirror::Source>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fetch_tool: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fetch_failed: Option<&'a str>,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    packages: Option<&'a [InstalledPackage]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    via: Option<&'a str>,
    phases: &'a [PhaseTime],
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
}

impl Serialize for HostReport {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let outcome = &self.outcome;
        HostReportJson {
            host: &self.host,
            address: &self.address,
            status: outcome.status,
            previous_version: &outcome.previous_version,
            version: &outcome.version,
            seconds: self.seconds,
            attempts: outcome.attempts,
            bytes_sent: outcome.bytes_sent,
            source: outcome.source,
            url: outcome.fetch.as_ref().map(|f| f.url.as_str()),
            fetch_tool: outcome.fetch.as_ref().and_then(|f| f.tool.as_deref()),
            fetch_failed: outcome.fetch.as_ref().and_then(|f| f.failed.as_deref()),
            message: &outcome.message,
            packages: outcome.packages.as_deref(),
            via: self.via.as_deref(),
            phases: &self.phases,
            detail: outcome.detail(),
        }
        .serialize(serializer)
    }
}

/// Seconds to the millisecond: enough for a report, no float noise.
pub(crate) fn millis<S: Serializer>(seconds: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64((seconds * 1000.0).round() / 1000.0)
}

/// The package a run was about. `remove`, `rollback` and `status` know only
/// the name; version and sha256 are then left out of the JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageInfo {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// A whole run: what was asked, when, and how each host ended.
///
/// Serializes as SPEC §7's JSON report (with the derived `summary`);
/// deserializing a run record ignores the summary.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct RunReport {
    /// The command: `install`, `upgrade`, `rollback`, `remove`, `status`, `enroll`.
    pub op: Op,
    /// `None` for commands that are not about one package (`status` with no name).
    pub package: Option<PackageInfo>,
    /// RFC 3339, e.g. from [`crate::time::rfc3339`].
    pub started: String,
    pub finished: String,
    /// `--dry-run`: statuses say what would have happened; nothing changed.
    #[serde(default)]
    pub dry_run: bool,
    pub hosts: Vec<HostReport>,
}

/// The JSON shape of a [`RunReport`]: its fields plus the summary.
#[derive(Serialize)]
struct RunReportJson<'a> {
    op: Op,
    package: &'a Option<PackageInfo>,
    started: &'a str,
    finished: &'a str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    dry_run: bool,
    hosts: &'a [HostReport],
    summary: IndexMap<Status, usize>,
    /// Package bytes the controller sent, all hosts together.
    bytes_sent: u64,
}

impl Serialize for RunReport {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        RunReportJson {
            op: self.op,
            package: &self.package,
            started: &self.started,
            finished: &self.finished,
            dry_run: self.dry_run,
            hosts: &self.hosts,
            summary: self.summary(),
            bytes_sent: self.bytes_sent(),
        }
        .serialize(serializer)
    }
}

impl RunReport {
    /// Hosts per status, in [`Status::ALL`] order, statuses with no host left out.
    pub fn summary(&self) -> IndexMap<Status, usize> {
        Status::ALL
            .into_iter()
            .map(|status| {
                let count = self
                    .hosts
                    .iter()
                    .filter(|h| h.outcome.status == status)
                    .count();
                (status, count)
            })
            .filter(|&(_, count)| count > 0)
            .collect()
    }

    /// Package bytes the controller sent, all hosts together.
    pub fn bytes_sent(&self) -> u64 {
        // Saturating: a run record read back may hold any count.
        self.hosts
            .iter()
            .fold(0u64, |sum, h| sum.saturating_add(h.outcome.bytes_sent))
    }

    /// Some host's order named a mirror (src/mirror.rs).
    pub fn used_mirrors(&self) -> bool {
        self.hosts.iter().any(|h| h.outcome.fetch.is_some())
    }

    /// Every host succeeded or was skipped: exit status 0.
    pub fn all_ok(&self) -> bool {
        self.hosts.iter().all(|h| h.outcome.status.ok_for_exit())
    }

    /// The JSON report of SPEC §7, pretty-printed, without a final newline.
    /// Client text is kept as the client sent it (bounded when it was
    /// received), with what a terminal would act on written as JSON
    /// escapes ([`json_safe`]).
    pub fn to_json(&self) -> String {
        // Only string-keyed maps and plain values: serializing cannot fail.
        json_safe(
            serde_json::to_string_pretty(self).expect("a RunReport always serializes to JSON"),
        )
    }
}

/// The JSON report of a run refused before any host was tried (the run
/// lock, a bad inventory or package): SPEC §7's fields with no hosts and
/// `refused` saying why, so that a `--report FILE` that monitoring reads
/// never goes on showing the previous run as the current one.
pub fn refused_json(op: Op, at: &str, why: &str) -> String {
    let report = serde_json::json!({
        "op": op,
        "started": at,
        "finished": at,
        "refused": crate::untrusted::bound(why, crate::untrusted::MAX_MESSAGE),
        "hosts": [],
        "summary": {},
    });
    json_safe(serde_json::to_string_pretty(&report).expect("plain values always serialize"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::KeptRelease;

    pub(super) fn host(
        name: &str,
        status: Status,
        previous: Option<&str>,
        version: Option<&str>,
        seconds: f64,
        message: &str,
    ) -> HostReport {
        let outcome = Outcome {
            previous_version: HostVersion::said(previous.map(String::from)),
            version: HostVersion::said(version.map(String::from)),
            ..Outcome::status(status, message)
        };
        HostReport {
            seconds,
            ..HostReport::new(name, format!("192.0.2.{}", name.len()), outcome)
        }
    }

    /// 5 hosts of an install of hello 1.2.0, two of which did not make it.
    pub(super) fn mixed() -> RunReport {
        RunReport {
            op: Op::Install,
            package: Some(PackageInfo {
                name: "hello".to_owned(),
                version: Some("1.2.0".to_owned()),
                sha256: Some("ab".repeat(32)),
            }),
            started: "2026-11-24T10:00:00Z".to_owned(),
            finished: "2026-11-24T10:01:02Z".to_owned(),
            dry_run: false,
            hosts: vec![
                host("web1", Status::Installed, None, Some("1.2.0"), 1.84, ""),
                host(
                    "web2",
                    Status::Busy,
                    None,
                    None,
                    60.2,
                    "still busy after 6 checks",
                ),
                host("web10", Status::Installed, None, Some("1.2.0"), 2.0, ""),
                host(
                    "db1",
                    Status::Failed,
                    Some("1.0.0"),
                    Some("1.0.0"),
                    3.26,
                    "post_install exited 1\n1.0.0 stays current",
                ),
                host(
                    "app1",
                    Status::Unchanged,
                    Some("1.2.0"),
                    Some("1.2.0"),
                    0.4,
                    "",
                ),
            ],
        }
    }

    #[test]
    fn summary_counts_in_status_order_without_zeros() {
        let summary: Vec<_> = mixed().summary().into_iter().collect();
        assert_eq!(
            summary,
            [
                (Status::Installed, 2),
                (Status::Unchanged, 1),
                (Status::Busy, 1),
                (Status::Failed, 1)
            ]
        );
    }

    #[test]
    fn all_ok_means_succeeded_or_skipped() {
        let mut report = mixed();
        assert!(!report.all_ok());
        report.hosts.retain(|h| h.outcome.status.succeeded());
        report.hosts.push(host(
            "web3",
            Status::Skipped,
            Some("1.1"),
            Some("1.1"),
            0.3,
            "",
        ));
        assert!(report.all_ok());
        report.hosts.clear();
        assert!(report.all_ok());
    }

    #[test]
    fn json_report_has_the_spec_shape() {
        let text = mixed().to_json();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json.as_object().unwrap().len(), 7, "{text}");
        let at = |key: &str| text.find(&format!("\n  \"{key}\": ")).unwrap();
        let keys = [
            "op",
            "package",
            "started",
            "finished",
            "hosts",
            "summary",
            "bytes_sent",
        ];
        assert!(keys.map(at).is_sorted(), "keys in SPEC order: {text}");
        assert_eq!(json["op"], "install");
        assert_eq!(
            json["package"],
            serde_json::json!({"name": "hello", "version": "1.2.0", "sha256": "ab".repeat(32)})
        );
        assert_eq!(json["started"], "2026-11-24T10:00:00Z");
        assert_eq!(json["finished"], "2026-11-24T10:01:02Z");
        assert_eq!(
            json["hosts"][0],
            serde_json::json!({
                "host": "web1", "address": "192.0.2.4", "status": "installed",
                "previous_version": null, "version": "1.2.0", "seconds": 1.84,
                "attempts": 1, "bytes_sent": 0, "message": "", "phases": []
            })
        );
        assert_eq!(json["hosts"][3]["previous_version"], "1.0.0");
        assert_eq!(json["hosts"][1]["version"], serde_json::Value::Null);
        let compact = serde_json::to_string(&mixed()).unwrap();
        assert!(
            compact.ends_with(
                r#","summary":{"installed":2,"unchanged":1,"busy":1,"failed":1},"bytes_sent":0}"#
            ),
            "{compact}"
        );
    }

    #[test]
    fn json_package_with_only_a_name_and_no_package() {
        let mut report = mixed();
        report.package = Some(PackageInfo {
            name: "hello".to_owned(),
            version: None,
            sha256: None,
        });
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["package"], serde_json::json!({"name": "hello"}));
        report.package = None;
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["package"], serde_json::Value::Null);
    }

    /// Every field set, `via` and `packages` included: the exact bytes of
    /// the JSON report (SPEC §7) and of a run record.
    #[test]
    fn json_report_bytes_with_every_field_set() {
        let mut report = mixed();
        report.dry_run = true;
        report.hosts.truncate(2);
        report.hosts[0].outcome.bytes_sent = 10_485_760;
        report.hosts[0].outcome.attempts = 3;
        report.hosts[1].via = Some("ops@bastion,inner".into());
        report.hosts[1].outcome.packages = Some(
            vec![InstalledPackage {
                name: "hello".into(),
                version: "1.2.0".into(),
                sha256: "cd".repeat(4),
                since: Some("2026-11-25T10:00:00Z".into()),
                releases: vec![
                    KeptRelease {
                        version: "1.1.0".into(),
                        sha256: "ef".repeat(4),
                        installed: None,
                    },
                    KeptRelease {
                        version: "1.2.0".into(),
                        sha256: "cd".repeat(4),
                        installed: Some("2026-11-25T10:00:00Z".into()),
                    },
                ],
            }]
            .into(),
        );
        report.hosts[1].outcome.message = "line1\nline2\x1b[2J".into();
        report.hosts[0].phases = vec![
            PhaseTime {
                phase: crate::progress::Phase::Connecting,
                seconds: 0.125,
            },
            PhaseTime {
                phase: crate::progress::Phase::Checking,
                seconds: 1.5,
            },
        ];
        report.hosts[1].outcome.detail = Some(Box::new("ssh: Io { reason: \"x\" }".into()));
        let expected = r#"{
  "op": "install",
  "package": {
    "name": "hello",
    "version": "1.2.0",
    "sha256": "abababababababababababababababababababababababababababababababab"
  },
  "started": "2026-11-24T10:00:00Z",
  "finished": "2026-11-24T10:01:02Z",
  "dry_run": true,
  "hosts": [
    {
      "host": "web1",
      "address": "192.0.2.4",
      "status": "installed",
      "previous_version": null,
      "version": "1.2.0",
      "seconds": 1.84,
      "attempts": 3,
      "bytes_sent": 10485760,
      "message": "",
      "phases": [
        {
          "phase": "connecting",
          "seconds": 0.125
        },
        {
          "phase": "checking health",
          "seconds": 1.5
        }
      ]
    },
    {
      "host": "web2",
      "address": "192.0.2.4",
      "status": "busy",
      "previous_version": null,
      "version": null,
      "seconds": 60.2,
      "attempts": 1,
      "bytes_sent": 0,
      "message": "line1\nline2\u001b[2J",
      "packages": [
        {
          "name": "hello",
          "version": "1.2.0",
          "sha256": "cdcdcdcd",
          "since": "2026-11-25T10:00:00Z",
          "releases": [
            {
              "version": "1.1.0",
              "sha256": "efefefef",
              "installed": null
            },
            {
              "version": "1.2.0",
              "sha256": "cdcdcdcd",
              "installed": "2026-11-25T10:00:00Z"
            }
          ]
        }
      ],
      "via": "ops@bastion,inner",
      "phases": [],
      "detail": "ssh: Io { reason: \"x\" }"
    }
  ],
  "summary": {
    "installed": 1,
    "busy": 1
  },
  "bytes_sent": 10485760
}"#;
        assert_eq!(report.to_json(), expected);
        // A run record reads back as it was written, phases and detail too.
        let back: RunReport = serde_json::from_str(expected).unwrap();
        assert_eq!(back.hosts, report.hosts);
    }

    #[test]
    fn seconds_are_kept_to_the_millisecond() {
        let mut report = mixed();
        report.hosts[0].seconds = 1.234_567_8;
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["hosts"][0]["seconds"], 1.235);
    }
}
