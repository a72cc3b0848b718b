//! The result of a run (SPEC §7): the status each host ended in, the text
//! report an operator reads, the JSON report scripts read, and the run record
//! kept under `~/.local/state/swpush/runs/`.
//!
//! This module only presents results; it does not decide them (the fleet
//! does) and it does not print (the command does, after the live
//! [`progress`](crate::progress) display has been cleared).

use std::borrow::Cow;
use std::fs::{DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize, Serializer};

use crate::file_error::FileError;
use crate::outcome::{InstalledPackage, Outcome, Status};
use crate::state_home::runs_dir;
use crate::untrusted::{json_safe, terminal_safe};

/// One host's line of the report: which host, how long it took, and how
/// its job ended.
///
/// Serializes as SPEC §7's host object: the outcome's
/// fields among the host's, `packages` and `via` only when there are some.
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
        }
    }
}

/// The JSON shape of a [`HostReport`], in SPEC §7's field order.
#[derive(Serialize)]
struct HostReportJson<'a> {
    host: &'a str,
    address: &'a str,
    status: Status,
    previous_version: &'a Option<String>,
    version: &'a Option<String>,
    #[serde(serialize_with = "millis")]
    seconds: f64,
    attempts: u32,
    bytes_sent: u64,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    packages: Option<&'a [InstalledPackage]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    via: Option<&'a str>,
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
            message: &outcome.message,
            packages: outcome.packages.as_deref(),
            via: self.via.as_deref(),
        }
        .serialize(serializer)
    }
}

/// The status as the text report shows it: a dry run's successes say
/// what would have happened (`would install`).
fn shown_status(status: Status, dry_run: bool) -> String {
    let would = match status {
        Status::Installed => "would install",
        Status::Upgraded => "would upgrade",
        Status::Removed => "would remove",
        Status::RolledBack => "would roll back",
        _ => "",
    };
    if dry_run && !would.is_empty() {
        would.to_owned()
    } else {
        status.to_string()
    }
}

/// Seconds to the millisecond: enough for a report, no float noise.
fn millis<S: Serializer>(seconds: &f64, serializer: S) -> Result<S::Ok, S::Error> {
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
    pub op: String,
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
    op: &'a str,
    package: &'a Option<PackageInfo>,
    started: &'a str,
    finished: &'a str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    dry_run: bool,
    hosts: &'a [HostReport],
    summary: IndexMap<Status, usize>,
}

impl Serialize for RunReport {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        RunReportJson {
            op: &self.op,
            package: &self.package,
            started: &self.started,
            finished: &self.finished,
            dry_run: self.dry_run,
            hosts: &self.hosts,
            summary: self.summary(),
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

    /// The text report, ending in a newline: the table (unless `quiet`), the
    /// summary line, and the hosts that did not succeed, if any.
    pub fn render_text(&self, quiet: bool) -> String {
        let mut out = String::new();
        if !quiet && !self.hosts.is_empty() {
            out.push_str(&self.table());
            out.push('\n');
        }
        out.push_str(&self.summary_line());
        out.push('\n');
        out.push_str(&self.not_done_block());
        out
    }

    /// `12 hosts: 10 installed, 1 unchanged, 1 busy`; a dry run's says
    /// `would install` and ends `(dry run: nothing changed)`.
    pub fn summary_line(&self) -> String {
        let mut counts: IndexMap<String, usize> = IndexMap::new();
        for status in Status::ALL {
            for h in self.hosts.iter().filter(|h| h.outcome.status == status) {
                *counts
                    .entry(shown_status(h.outcome.status, self.dry_run))
                    .or_default() += 1;
            }
        }
        let counts: Vec<String> = counts
            .iter()
            .map(|(status, count)| format!("{count} {status}"))
            .collect();
        let hosts = plural(self.hosts.len(), "host");
        let line = if counts.is_empty() {
            hosts
        } else {
            format!("{hosts}: {}", counts.join(", "))
        };
        if self.dry_run {
            format!("{line} (dry run: nothing changed)")
        } else {
            line
        }
    }

    fn table(&self) -> String {
        let header = ["HOST", "STATUS", "VERSION", "SECONDS", "SENT", "MESSAGE"].map(String::from);
        let rows: Vec<[String; 6]> = self
            .hosts
            .iter()
            .map(|h| {
                [
                    match &h.via {
                        Some(via) => format!("{} via {via}", h.host),
                        None => h.host.clone(),
                    },
                    shown_status(h.outcome.status, self.dry_run),
                    version_change(&h.outcome),
                    seconds(h.seconds),
                    bytes(h.outcome.bytes_sent),
                    h.outcome.message.clone(),
                ]
            })
            .collect();
        let all: Vec<[String; 6]> = std::iter::once(header).chain(rows).collect();
        columns(&all, &[3, 4], "")
    }

    /// `Not done — hello 1.2.0 on 2 of 12 hosts:` and one line per such
    /// host; empty when every host succeeded or was skipped.
    pub(crate) fn not_done_block(&self) -> String {
        let not_done: Vec<&HostReport> = self
            .hosts
            .iter()
            .filter(|h| !h.outcome.status.ok_for_exit())
            .collect();
        if not_done.is_empty() {
            return String::new();
        }
        let what = match &self.package {
            Some(p) => {
                let name = terminal_safe(&p.name);
                match &p.version {
                    Some(v) => format!(" — {name} {}", terminal_safe(v)),
                    None => format!(" — {name}"),
                }
            }
            None => String::new(),
        };
        let mut out = format!(
            "\nNot done{what} on {} of {}:\n",
            not_done.len(),
            plural(self.hosts.len(), "host")
        );
        let rows: Vec<[String; 3]> = not_done
            .iter()
            .map(|h| {
                [
                    h.host.clone(),
                    h.outcome.status.to_string(),
                    h.outcome.message.clone(),
                ]
            })
            .collect();
        out.push_str(&columns(&rows, &[], "  "));
        out
    }
}

/// Widest a column is padded to: a longer cell (a long host name, a
/// client's message) is printed whole and only its own row is out of line.
pub(crate) const MAX_COLUMN_WIDTH: usize = 48;

/// Rows as lines of columns padded to their widest cell (at most
/// [`MAX_COLUMN_WIDTH`]), two spaces apart, after `indent`; the columns
/// numbered in `right` are aligned right. Every cell is made
/// [terminal-safe](terminal_safe), so no cell can break its line or send
/// the terminal a control sequence. No line ends in spaces.
pub(crate) fn columns<const N: usize>(
    rows: &[[String; N]],
    right: &[usize],
    indent: &str,
) -> String {
    let safe: Vec<[Cow<'_, str>; N]> = rows
        .iter()
        .map(|row| std::array::from_fn(|column| terminal_safe(&row[column])))
        .collect();
    let mut widths = [0; N];
    for row in &safe {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count()).min(MAX_COLUMN_WIDTH);
        }
    }
    let mut out = String::new();
    for row in &safe {
        let mut line = String::from(indent);
        for (column, (cell, width)) in row.iter().zip(widths).enumerate() {
            if column > 0 {
                line.push_str("  ");
            }
            // Padding by hand, not with `{:<width$}`: format widths panic
            // past 65 535.
            let pad = " ".repeat(width.saturating_sub(cell.chars().count()));
            if right.contains(&column) {
                line.push_str(&pad);
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&pad);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

pub(crate) fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `1.0.0 → 1.2.0`, `- → 1.2.0`, `1.2.0 → -`, or just `1.2.0` when it did not change.
fn version_change(outcome: &Outcome) -> String {
    fn show(v: Option<&str>) -> &str {
        v.unwrap_or("-")
    }
    let (before, after) = (
        outcome.previous_version.as_deref(),
        outcome.version.as_deref(),
    );
    if before == after {
        show(after).to_owned()
    } else {
        format!("{} → {}", show(before), show(after))
    }
}

/// Bytes sent, for people: `0`, `512 B`, `9.8 KiB`, `100.0 MiB`.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return if n == 0 { "0".into() } else { format!("{n} B") };
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn seconds(s: f64) -> String {
    if s.is_finite() && s >= 0.0 {
        format!("{s:.1}")
    } else {
        "-".to_owned()
    }
}

/// Keep `report` as a run record: `STATE_HOME/swpush/runs/STARTED-OP-NAME.json`
/// (colons in the time replaced by `-`; `-2`, `-3`, … appended when a record
/// of that name exists). Directories are created 0700, the file 0600; an
/// existing record is never overwritten. Returns the file written.
pub fn save_run_record(report: &RunReport, state_home: &Path) -> Result<PathBuf, FileError> {
    write_run_record(report, &runs_dir(state_home))
        .map_err(FileError::doing("keep the run record under", state_home))
}

fn write_run_record(report: &RunReport, dir: &Path) -> io::Result<PathBuf> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let mut stem = format!("{}-{}", file_part(&report.started), file_part(&report.op));
    if let Some(package) = &report.package {
        stem.push('-');
        stem.push_str(&file_part(&package.name));
    }
    let json = report.to_json() + "\n";
    for n in 1..=1000 {
        let path = if n == 1 {
            dir.join(format!("{stem}.json"))
        } else {
            dir.join(format!("{stem}-{n}.json"))
        };
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(mut file) => {
                file.write_all(json.as_bytes())?;
                prune_run_records(dir, KEEP_RUN_RECORDS)?;
                return Ok(path);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("{}: too many run records named {stem}", dir.display()),
    ))
}

/// Run records kept: the newest, a few years of a cron job every hour or
/// two; older ones are deleted as new ones are written.
pub const KEEP_RUN_RECORDS: usize = 10_000;

/// Deletes all but the newest `keep` run records in `dir` (their names
/// start with the run's start time, so name order is age order).
fn prune_run_records(dir: &Path, keep: usize) -> io::Result<()> {
    let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|e| e.file_name()))
        .filter(|name| name.to_string_lossy().ends_with(".json"))
        .collect();
    if names.len() <= keep {
        return Ok(());
    }
    names.sort();
    for name in &names[..names.len() - keep] {
        // Another run may have pruned it first.
        let _ = std::fs::remove_file(dir.join(name));
    }
    Ok(())
}

/// A piece of a file name: anything but `[A-Za-z0-9._+-]` (colons, slashes)
/// becomes `-`.
fn file_part(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::KeptRelease;

    fn host(
        name: &str,
        status: Status,
        previous: Option<&str>,
        version: Option<&str>,
        seconds: f64,
        message: &str,
    ) -> HostReport {
        let outcome = Outcome {
            previous_version: previous.map(String::from),
            version: version.map(String::from),
            ..Outcome::status(status, message)
        };
        HostReport {
            seconds,
            ..HostReport::new(name, format!("192.0.2.{}", name.len()), outcome)
        }
    }

    /// 5 hosts of an install of hello 1.2.0, two of which did not make it.
    fn mixed() -> RunReport {
        RunReport {
            op: "install".to_owned(),
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
    fn text_report_table_summary_and_hosts_to_act_on() {
        let mut report = mixed();
        report.hosts[0].outcome.bytes_sent = 10_485_760;
        report.hosts[2].outcome.bytes_sent = 700;
        let text = report.render_text(false);
        let expected = "\
HOST   STATUS     VERSION    SECONDS      SENT  MESSAGE
web1   installed  - → 1.2.0      1.8  10.0 MiB
web2   busy       -             60.2         0  still busy after 6 checks
web10  installed  - → 1.2.0      2.0     700 B
db1    failed     1.0.0          3.3         0  post_install exited 1 1.0.0 stays current
app1   unchanged  1.2.0          0.4         0

5 hosts: 2 installed, 1 unchanged, 1 busy, 1 failed

Not done — hello 1.2.0 on 2 of 5 hosts:
  web2  busy    still busy after 6 checks
  db1   failed  post_install exited 1 1.0.0 stays current
";
        assert_eq!(text, expected, "\n{text}");
    }

    /// `via` appears only for a host reached through a jump host or a
    /// ProxyCommand: after the last SPEC §7 field in JSON, after the name
    /// in the text table.
    #[test]
    fn the_jump_a_host_was_reached_through_is_named() {
        let mut report = mixed();
        report.hosts[1].via = Some("ops@bastion,inner".into());
        let text = report.render_text(false);
        assert!(
            text.contains("\nweb2 via ops@bastion,inner  busy "),
            "{text}"
        );
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["hosts"][1]["via"], "ops@bastion,inner");
        assert!(json["hosts"][0].get("via").is_none(), "{json:#}");
        let compact = serde_json::to_string(&report.hosts[1]).unwrap();
        assert!(
            compact
                .ends_with(r#","message":"still busy after 6 checks","via":"ops@bastion,inner"}"#),
            "{compact}"
        );
    }

    #[test]
    fn a_dry_run_says_what_would_happen() {
        let mut report = mixed();
        report.dry_run = true;
        let text = report.render_text(false);
        assert!(text.contains("web1   would install  - → 1.2.0"), "{text}");
        assert!(
            text.contains(
                "5 hosts: 2 would install, 1 unchanged, 1 busy, 1 failed (dry run: nothing changed)"
            ),
            "{text}"
        );
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(
            (&json["dry_run"], &json["hosts"][0]["status"]),
            (&true.into(), &"installed".into())
        );
        let plain: serde_json::Value = serde_json::from_str(&mixed().to_json()).unwrap();
        assert!(
            plain.get("dry_run").is_none(),
            "SPEC's shape unless a dry run"
        );
    }

    #[test]
    fn quiet_text_report_is_summary_and_hosts_to_act_on() {
        let text = mixed().render_text(true);
        assert!(!text.contains("HOST"), "{text}");
        assert!(
            text.starts_with("5 hosts: 2 installed, 1 unchanged, 1 busy, 1 failed\n"),
            "{text}"
        );
        assert!(
            text.contains("\nNot done — hello 1.2.0 on 2 of 5 hosts:\n  web2  busy "),
            "{text}"
        );
        let mut all_ok = mixed();
        all_ok.hosts.retain(|h| h.outcome.status.succeeded());
        assert_eq!(
            all_ok.render_text(true),
            "3 hosts: 2 installed, 1 unchanged\n"
        );
    }

    #[test]
    fn version_column() {
        let cases = [
            (None, Some("1.2.0"), "- → 1.2.0"),
            (Some("1.0.0"), Some("1.2.0"), "1.0.0 → 1.2.0"),
            (Some("1.2.0"), Some("1.2.0"), "1.2.0"),
            (Some("1.2.0"), None, "1.2.0 → -"),
            (None, None, "-"),
        ];
        for (before, after, shown) in cases {
            let h = host("h", Status::Upgraded, before, after, 0.0, "");
            assert_eq!(version_change(&h.outcome), shown, "{before:?} → {after:?}");
        }
    }

    #[test]
    fn client_text_cannot_break_lines_or_send_escapes() {
        let mut report = mixed();
        report.hosts[1].outcome.message = "line1\nline2\x1b[2J\r".to_owned();
        report.hosts[1].outcome.previous_version = Some("1.0\x1b]0;x\x07".to_owned());
        report.hosts[3].outcome.message =
            "ok\u{202e}deliaf\u{202c} \u{200b}\u{2028}row\u{2066}".to_owned();
        report.hosts[0].host = "web1\u{feff}".to_owned();
        let text = report.render_text(false);
        let raw = [
            '\x1b', '\r', '\x07', '\u{202e}', '\u{202c}', '\u{200b}', '\u{2028}',
        ];
        assert!(!text.contains(raw), "{text:?}");
        assert!(!text.contains(['\u{2066}', '\u{feff}']), "{text:?}");
        // Shown as escapes: the operator sees that something was sent.
        assert!(text.contains(r"line1 line2\u{1b}[2J"), "{text}");
        assert!(text.contains(r"1.0\u{1b}]0;x\u{7} → -"), "{text}");
        assert!(
            text.contains(r"ok\u{202e}deliaf\u{202c} \u{200b}\u{2028}row\u{2066}"),
            "{text}"
        );
        assert!(text.contains(r"web1\u{feff}  installed"), "{text}");
        assert_eq!(text.lines().count(), 12, "{text}");
        // The JSON keeps what the client said, escaped so that printing it
        // sends the terminal nothing either.
        let json_text = report.to_json();
        assert!(!json_text.contains(raw), "{json_text}");
        let json: serde_json::Value = serde_json::from_str(&json_text).unwrap();
        assert_eq!(json["hosts"][1]["message"], "line1\nline2\x1b[2J\r");
        assert_eq!(json["hosts"][3]["message"], report.hosts[3].outcome.message);
    }

    #[test]
    fn cells_of_any_length_render_without_panic() {
        // Rust's format width panics from 65 536 on.
        let huge = "x".repeat(70_000);
        let mut report = mixed();
        report.hosts[0].host = huge.clone();
        report.hosts[1].outcome.message = huge.clone();
        report.hosts[2].outcome.version = Some(huge.clone());
        report.package.as_mut().unwrap().version = Some(huge.clone());
        let text = report.render_text(false);
        assert!(text.contains(&huge));
        assert_eq!(text.lines().count(), 12, "{text:.300}");
        // Short cells stay aligned, padded to at most MAX_COLUMN_WIDTH.
        let app1 = text.lines().find(|l| l.starts_with("app1")).unwrap();
        assert!(app1.starts_with(&format!(
            "app1{}unchanged",
            " ".repeat(MAX_COLUMN_WIDTH - 2)
        )));
        let rows = [[huge.clone(), "a".into()], ["b".into(), "c".into()]];
        let shown = columns(&rows, &[0], "  ");
        assert!(shown.ends_with(&format!("\n  {}b  c\n", " ".repeat(MAX_COLUMN_WIDTH - 1))));
    }

    #[test]
    fn no_package_or_no_version_in_the_not_done_block() {
        let mut report = mixed();
        report.op = "remove".to_owned();
        report.package = Some(PackageInfo {
            name: "hello".to_owned(),
            version: None,
            sha256: None,
        });
        assert!(
            report
                .render_text(true)
                .contains("\nNot done — hello on 2 of 5 hosts:\n")
        );
        report.package = None;
        assert!(
            report
                .render_text(true)
                .contains("\nNot done on 2 of 5 hosts:\n")
        );
        report.hosts.truncate(1);
        report.hosts[0].outcome.status = Status::Unreachable;
        assert_eq!(
            report.render_text(true),
            "1 host: 1 unreachable\n\nNot done on 1 of 1 host:\n  web1  unreachable\n"
        );
    }

    #[test]
    fn json_report_has_the_spec_shape() {
        let text = mixed().to_json();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json.as_object().unwrap().len(), 6, "{text}");
        let at = |key: &str| text.find(&format!("\n  \"{key}\": ")).unwrap();
        let keys = ["op", "package", "started", "finished", "hosts", "summary"];
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
                "attempts": 1, "bytes_sent": 0, "message": ""
            })
        );
        assert_eq!(json["hosts"][3]["previous_version"], "1.0.0");
        assert_eq!(json["hosts"][1]["version"], serde_json::Value::Null);
        let compact = serde_json::to_string(&mixed()).unwrap();
        assert!(
            compact.ends_with(r#","summary":{"installed":2,"unchanged":1,"busy":1,"failed":1}}"#),
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
        report.hosts[1].outcome.packages = Some(vec![InstalledPackage {
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
        }]);
        report.hosts[1].outcome.message = "line1\nline2\x1b[2J".into();
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
      "message": ""
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
      "via": "ops@bastion,inner"
    }
  ],
  "summary": {
    "installed": 1,
    "busy": 1
  }
}"#;
        assert_eq!(report.to_json(), expected);
    }

    #[test]
    fn seconds_are_kept_to_the_millisecond() {
        let mut report = mixed();
        report.hosts[0].seconds = 1.234_567_8;
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["hosts"][0]["seconds"], 1.235);
    }

    #[test]
    fn run_records_are_json_under_state_home_and_never_collide() {
        use std::os::unix::fs::PermissionsExt;
        let root = std::env::temp_dir().join(format!("swpush-report-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let report = mixed();
        let first = save_run_record(&report, &root).unwrap();
        let second = save_run_record(&report, &root).unwrap();
        let dir = root.join("swpush/runs");
        assert_eq!(first, dir.join("2026-11-24T10-00-00Z-install-hello.json"));
        assert_ne!(first, second);
        assert_eq!(second.parent(), Some(dir.as_path()));
        for path in [&first, &second] {
            let text = std::fs::read_to_string(path).unwrap();
            let back: RunReport = serde_json::from_str(&text).unwrap();
            assert_eq!(back, report);
        }
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&root.join("swpush")), 0o700);
        assert_eq!(mode(&first), 0o600);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn only_the_newest_run_records_are_kept() {
        let dir = std::env::temp_dir().join(format!("swpush-prune-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in [
            "2026-11-24T10-00-00Z-install-hello.json",
            "2026-11-25T09-00-00Z-upgrade-hello.json",
            "2025-01-01T00-00-00Z-install-hello.json",
            "2026-11-25T09-00-00Z-upgrade-hello-2.json",
            "notes.txt",
        ] {
            std::fs::write(dir.join(name), "{}").unwrap();
        }
        prune_run_records(&dir, 2).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "2026-11-25T09-00-00Z-upgrade-hello-2.json",
                "2026-11-25T09-00-00Z-upgrade-hello.json",
                "notes.txt"
            ]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
