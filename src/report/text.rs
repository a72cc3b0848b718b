//! The text an operator reads: the report of a run (a table of the hosts,
//! the summary line, the hosts not done), `status`'s table of what each
//! host has installed, and `hosts`' table of the selected hosts. Every
//! cell is made terminal-safe as it is laid out, and drawn in the
//! [`Look`] of where it goes (ASCII, say) before columns are measured.
//!
//! Nothing here decides an outcome or prints: the command prints what
//! these functions return.

use std::borrow::Cow;

use indexmap::IndexMap;

use super::{HostReport, RunReport};
use crate::inventory::Host;
use crate::look::Look;
use crate::outcome::{HostVersion, Outcome, Status};
use crate::untrusted::{MAX_MESSAGE, bound, terminal_safe};

/// Host names a grouped line of the "Not done" block lists before
/// `and N more` (the JSON report has them all).
const MAX_NAMES_LISTED: usize = 10;

impl RunReport {
    /// The text report, ending in a newline: the table (unless `quiet`), the
    /// summary line, and the hosts that did not succeed, if any.
    pub fn render_text(&self, quiet: bool, look: Look) -> String {
        let mut out = String::new();
        if !quiet && !self.hosts.is_empty() {
            out.push_str(&self.table(look));
            out.push('\n');
        }
        out.push_str(&self.summary_line());
        out.push('\n');
        out.push_str(&self.not_done_block(look));
        // The table's cells are drawn already; this draws the other lines.
        look.text(out).into_owned()
    }

    /// `-v`'s block, after the report: per host, the time spent in each
    /// phase (`  web1: connecting 0.1 s, uploading 1.3 s, installing 0.4 s`)
    /// and, under a host whose SSH connection failed, what the SSH layer
    /// knew of it (`    ssh: ...`). Empty for a run of no host.
    pub fn verbose_block(&self, look: Look) -> String {
        if self.hosts.is_empty() {
            return String::new();
        }
        let mut out = String::from("\nPhases (-v):\n");
        for host in &self.hosts {
            let phases: Vec<String> = host
                .phases
                .iter()
                .map(|t| format!("{} {} s", t.phase, seconds(t.seconds)))
                .collect();
            let phases = if phases.is_empty() {
                "not started".to_owned()
            } else {
                phases.join(", ")
            };
            out.push_str(&format!("  {}: {phases}\n", terminal_safe(&host.host)));
            if let Some(detail) = host.outcome.detail() {
                let detail = bound(detail, MAX_MESSAGE);
                out.push_str(&format!("    {}\n", terminal_safe(&detail)));
            }
        }
        look.text(out).into_owned()
    }

    /// `upgrade hello 1.2.0: 12 hosts: 10 upgraded, 1 unchanged, 1 busy`:
    /// what was asked, then how the hosts ended (a cron mail of one line
    /// says what it is about); a dry run's says `would upgrade` and ends
    /// `(dry run: nothing changed)`.
    pub fn summary_line(&self) -> String {
        let asked = match &self.package {
            Some(p) => {
                let version = p
                    .version
                    .as_deref()
                    .map(|v| format!(" {}", terminal_safe(v)));
                format!(
                    "{} {}{}",
                    self.op.as_str(),
                    terminal_safe(&p.name),
                    version.unwrap_or_default()
                )
            }
            None => self.op.as_str().to_owned(),
        };
        let line = format!("{asked}: {}", self.host_counts());
        if !self.used_mirrors() {
            return line;
        }
        // Mirror mode: what one controller's uplink carried.
        match self.bytes_sent() {
            0 => format!("{line}; no package bytes from the controller"),
            n => format!("{line}; {} of package from the controller", bytes(n)),
        }
    }

    /// `12 hosts: 10 installed, 1 unchanged, 1 busy`.
    fn host_counts(&self) -> String {
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

    fn table(&self, look: Look) -> String {
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
                    sent(&h.outcome),
                    h.outcome.message.clone(),
                ]
            })
            .collect();
        let all: Vec<[String; 6]> = std::iter::once(header).chain(rows).collect();
        let statuses: Vec<Option<Status>> = std::iter::once(None)
            .chain(self.hosts.iter().map(|h| Some(h.outcome.status)))
            .collect();
        columns(&all, &[3, 4], "", look, Some((1, &statuses)))
    }

    /// `Not done — hello 1.2.0 on 2 of 12 hosts:` and one line per such
    /// host, except that hosts ending with the same status and message are
    /// one line, `rejected (5 hosts: web1 web2 ...): MESSAGE`, so that 200
    /// hosts refused alike are not 200 lines; empty when every host
    /// succeeded or was skipped.
    fn not_done_block(&self, look: Look) -> String {
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
        // Hosts by status and message, in the order they first appear.
        let mut alike: IndexMap<(Status, &str), Vec<&str>> = IndexMap::new();
        for h in &not_done {
            let key = (h.outcome.status, h.outcome.message.as_str());
            alike.entry(key).or_default().push(h.host.as_str());
        }
        let alone: Vec<_> = alike.iter().filter(|(_, hosts)| hosts.len() == 1).collect();
        let rows: Vec<[String; 3]> = alone
            .iter()
            .map(|((status, message), hosts)| {
                [
                    hosts[0].to_owned(),
                    status.to_string(),
                    (*message).to_owned(),
                ]
            })
            .collect();
        let statuses: Vec<Option<Status>> = alone.iter().map(|((s, _), _)| Some(*s)).collect();
        out.push_str(&columns(&rows, &[], "  ", look, Some((1, &statuses))));
        for ((status, message), hosts) in alike.iter().filter(|(_, hosts)| hosts.len() > 1) {
            let mut names: Vec<Cow<'_, str>> = hosts
                .iter()
                .take(MAX_NAMES_LISTED)
                .map(|h| terminal_safe(h))
                .collect();
            if hosts.len() > MAX_NAMES_LISTED {
                names.push(format!("and {} more", hosts.len() - MAX_NAMES_LISTED).into());
            }
            out.push_str(&format!(
                "  {} ({} hosts: {})",
                look.paint(*status, &status.to_string()),
                hosts.len(),
                names.join(" ")
            ));
            if !message.is_empty() {
                out.push_str(&format!(": {}", terminal_safe(message)));
            }
            out.push('\n');
        }
        out
    }

    /// The text report of `status`: one line per host and package (current
    /// version, since when, kept releases), a summary, and the hosts that did
    /// not answer.
    pub fn render_status_text(&self, quiet: bool, look: Look) -> String {
        let mut rows: Vec<[String; 5]> = Vec::new();
        for h in &self.hosts {
            let host = h.host.clone();
            match &h.outcome.packages {
                Some(packages) if !packages.is_empty() => {
                    for p in packages {
                        let kept: Vec<&str> =
                            p.releases.iter().map(|r| r.version.as_str()).collect();
                        rows.push([
                            host.clone(),
                            p.name.clone(),
                            p.version.clone(),
                            p.since.clone().unwrap_or_else(|| "-".into()),
                            kept.join(" "),
                        ]);
                    }
                }
                Some(_) => rows.push(match &self.package {
                    Some(only) => [
                        host,
                        only.name.clone(),
                        "(not installed)".into(),
                        String::new(),
                        String::new(),
                    ],
                    None => [
                        host,
                        "(nothing installed)".into(),
                        String::new(),
                        String::new(),
                        String::new(),
                    ],
                }),
                None => rows.push([
                    host,
                    h.outcome.status.to_string(),
                    String::new(),
                    String::new(),
                    String::new(),
                ]),
            }
        }
        let mut out = String::new();
        if !quiet && !rows.is_empty() {
            let header = ["HOST", "PACKAGE", "CURRENT", "SINCE", "KEPT"].map(String::from);
            rows.insert(0, header);
            out.push_str(&columns(&rows, &[], "", look, None));
            out.push('\n');
        }
        let answered = self
            .hosts
            .iter()
            .filter(|h| h.outcome.status == Status::Unchanged)
            .count();
        out.push_str(&format!(
            "{answered} of {} answered\n",
            plural(self.hosts.len(), "host")
        ));
        out.push_str(&self.not_done_block(look));
        look.text(out).into_owned()
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

/// Widest a column is padded to: a longer cell (a long host name, a
/// client's message) is printed whole and only its own row is out of line.
pub(crate) const MAX_COLUMN_WIDTH: usize = 48;

/// Rows as lines of columns padded to their widest cell (at most
/// [`MAX_COLUMN_WIDTH`]), two spaces apart, after `indent`; the columns
/// numbered in `right` are aligned right. Every cell is made
/// [terminal-safe](terminal_safe), so no cell can break its line or send
/// the terminal a control sequence, and drawn in `look`; with `paint`,
/// `(column, statuses)`, that column's cell of each row is in the colour of
/// the row's status (after padding is measured). No line ends in spaces.
fn columns<const N: usize>(
    rows: &[[String; N]],
    right: &[usize],
    indent: &str,
    look: Look,
    paint: Option<(usize, &[Option<Status>])>,
) -> String {
    let safe: Vec<[Cow<'_, str>; N]> = rows
        .iter()
        .map(|row| std::array::from_fn(|column| look.text(terminal_safe(&row[column]))))
        .collect();
    let mut widths = [0; N];
    for row in &safe {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count()).min(MAX_COLUMN_WIDTH);
        }
    }
    let mut out = String::new();
    for (index, row) in safe.iter().enumerate() {
        let mut line = String::from(indent);
        for (column, (cell, width)) in row.iter().zip(widths).enumerate() {
            if column > 0 {
                line.push_str("  ");
            }
            // Padding by hand, not with `{:<width$}`: format widths panic
            // past 65 535.
            let pad = " ".repeat(width.saturating_sub(cell.chars().count()));
            let status = paint
                .filter(|(painted, _)| *painted == column)
                .and_then(|(_, statuses)| statuses.get(index).copied().flatten());
            let cell = match status {
                Some(status) => look.paint(status, cell),
                None => Cow::Borrowed(&**cell),
            };
            if right.contains(&column) {
                line.push_str(&pad);
                line.push_str(&cell);
            } else {
                line.push_str(&cell);
                line.push_str(&pad);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `1.0.0 → 1.2.0`, `- → 1.2.0`, `1.2.0 → -`, or just `1.2.0` when it
/// did not change; `-` is none installed, `?` never found out.
fn version_change(outcome: &Outcome) -> String {
    fn show(v: &HostVersion) -> &str {
        match v {
            HostVersion::Is(v) => v,
            HostVersion::NotInstalled => "-",
            HostVersion::Unknown => "?",
        }
    }
    let (before, after) = (&outcome.previous_version, &outcome.version);
    if before == after {
        show(after).to_owned()
    } else {
        format!("{} → {}", show(before), show(after))
    }
}

/// The SENT column: package bytes the controller sent, or in mirror mode
/// `mirror` (fetched from it), `cache` (nothing moved) and `(fallback)`
/// after bytes sent to a host whose fetch failed.
fn sent(outcome: &crate::outcome::Outcome) -> String {
    use crate::mirror::Source;
    let Some(fetch) = &outcome.fetch else {
        return bytes(outcome.bytes_sent);
    };
    match outcome.source {
        Some(Source::Mirror) => "mirror".into(),
        Some(Source::Cache) => "cache".into(),
        Some(Source::Controller) if fetch.failed.is_some() => {
            format!("{} (fallback)", bytes(outcome.bytes_sent))
        }
        _ => bytes(outcome.bytes_sent),
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

/// `HOST  ADDRESS  USER  GROUPS`, columns padded to their widest cell;
/// then one line per host swpush will refuse to connect to, saying why.
pub fn hosts_table(hosts: &[Host], look: Look) -> String {
    let rows: Vec<[String; 4]> =
        std::iter::once(["HOST", "ADDRESS", "USER", "GROUPS"].map(String::from))
            .chain(hosts.iter().map(|h| {
                let mut user = h.user.clone();
                if h.become_root {
                    user.push_str(" (sudo)");
                }
                let name = match h.via() {
                    Some(via) => terminal_safe(&format!("{} via {via}", h.name)).into_owned(),
                    None => h.name.clone(),
                };
                [
                    name,
                    format!("{}:{}", h.address, h.port),
                    user,
                    h.groups.join(","),
                ]
            }))
            .collect();
    let mut table = columns(&rows, &[], "", look, None);
    for host in hosts {
        if let Some(why) = &host.refused {
            table.push_str(&look.text(terminal_safe(&format!(
                "{}: not connected to: {why}\n",
                host.name
            ))));
        }
    }
    table
}

impl RunReport {
    /// `Re-run them: COMMAND`, after the "Not done" block: the command line
    /// that re-runs this run on the hosts that did not succeed
    /// ([`crate::rerun::command_line`]); empty when every host succeeded or
    /// was skipped.
    pub fn rerun_block(&self, command_line: &str) -> String {
        if self.all_ok() {
            return String::new();
        }
        format!("\nRe-run them: {}\n", terminal_safe(command_line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::Op;
    use crate::report::PackageInfo;
    use crate::report::tests::{host, mixed};

    #[test]
    fn text_report_table_summary_and_hosts_to_act_on() {
        let mut report = mixed();
        report.hosts[0].outcome.bytes_sent = 10_485_760;
        report.hosts[2].outcome.bytes_sent = 700;
        let text = report.render_text(false, Look::PLAIN);
        let expected = "\
HOST   STATUS     VERSION    SECONDS      SENT  MESSAGE
web1   installed  - → 1.2.0      1.8  10.0 MiB
web2   busy       -             60.2         0  still busy after 6 checks
web10  installed  - → 1.2.0      2.0     700 B
db1    failed     1.0.0          3.3         0  post_install exited 1 1.0.0 stays current
app1   unchanged  1.2.0          0.4         0

install hello 1.2.0: 5 hosts: 2 installed, 1 unchanged, 1 busy, 1 failed

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
        let text = report.render_text(false, Look::PLAIN);
        assert!(
            text.contains("\nweb2 via ops@bastion,inner  busy "),
            "{text}"
        );
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["hosts"][1]["via"], "ops@bastion,inner");
        assert!(json["hosts"][0].get("via").is_none(), "{json:#}");
        let compact = serde_json::to_string(&report.hosts[1]).unwrap();
        assert!(
            compact.ends_with(
                r#","message":"still busy after 6 checks","via":"ops@bastion,inner","phases":[]}"#
            ),
            "{compact}"
        );
    }

    #[test]
    fn a_dry_run_says_what_would_happen() {
        let mut report = mixed();
        report.dry_run = true;
        let text = report.render_text(false, Look::PLAIN);
        assert!(text.contains("web1   would install  - → 1.2.0"), "{text}");
        assert!(
            text.contains(
                "install hello 1.2.0: 5 hosts: 2 would install, 1 unchanged, 1 busy, 1 failed (dry run: nothing changed)"
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
        let text = mixed().render_text(true, Look::PLAIN);
        assert!(!text.contains("HOST"), "{text}");
        assert!(
            text.starts_with(
                "install hello 1.2.0: 5 hosts: 2 installed, 1 unchanged, 1 busy, 1 failed\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("\nNot done — hello 1.2.0 on 2 of 5 hosts:\n  web2  busy "),
            "{text}"
        );
        let mut all_ok = mixed();
        all_ok.hosts.retain(|h| h.outcome.status.succeeded());
        assert_eq!(
            all_ok.render_text(true, Look::PLAIN),
            "install hello 1.2.0: 3 hosts: 2 installed, 1 unchanged\n"
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
        // Never found out is not none.
        let mut h = host("h", Status::Timeout, Some("1.0.0"), None, 0.0, "");
        h.outcome.version = HostVersion::Unknown;
        assert_eq!(version_change(&h.outcome), "1.0.0 → ?");
        let unreachable = Outcome::status(Status::Unreachable, "");
        assert_eq!(version_change(&unreachable), "?");
    }

    /// In ASCII, every line is ASCII and the columns still line up.
    #[test]
    fn ascii_when_the_locale_is_not_utf_8() {
        let mut report = mixed();
        report.hosts[3].outcome.message = "would upgrade 1.0 → 1.2 …".into();
        report.hosts[4].host = "café".into();
        let ascii = Look {
            ascii: true,
            ..Look::PLAIN
        };
        let text = report.render_text(false, ascii);
        assert!(text.is_ascii(), "{text}");
        let expected = "\
HOST       STATUS     VERSION     SECONDS  SENT  MESSAGE
web1       installed  - -> 1.2.0      1.8     0
web2       busy       -              60.2     0  still busy after 6 checks
web10      installed  - -> 1.2.0      2.0     0
db1        failed     1.0.0           3.3     0  would upgrade 1.0 -> 1.2 ...
caf\\u{e9}  unchanged  1.2.0           0.4     0

install hello 1.2.0: 5 hosts: 2 installed, 1 unchanged, 1 busy, 1 failed

Not done - hello 1.2.0 on 2 of 5 hosts:
  web2  busy    still busy after 6 checks
  db1   failed  would upgrade 1.0 -> 1.2 ...
";
        assert_eq!(text, expected, "\n{text}");
        let utf8 = report.render_text(false, Look::PLAIN);
        assert!(utf8.contains("- → 1.2.0  ") && utf8.contains("Not done — hello"));
        let status = report.render_status_text(false, ascii);
        assert!(status.is_ascii(), "{status}");
    }

    /// In colour, the status words of the table and of the Not done block
    /// are painted, and nothing else; the columns line up as without.
    #[test]
    fn status_words_in_colour_on_a_terminal() {
        let mut report = mixed();
        let mut rejected = report.hosts[1].clone();
        rejected.outcome.status = Status::Rejected;
        rejected.outcome.message = "not signed".into();
        for name in ["web7", "web8"] {
            report.hosts.push(HostReport {
                host: name.into(),
                ..rejected.clone()
            });
        }
        let colour = Look {
            colour: true,
            ..Look::PLAIN
        };
        let text = report.render_text(false, colour);
        let red = |w: &str| format!("\x1b[31m{w}\x1b[0m");
        let (green, yellow) = ("\x1b[32minstalled\x1b[0m", "\x1b[33mbusy\x1b[0m");
        assert!(
            text.contains(&format!("\nweb1   {green}  - → 1.2.0 ")),
            "{text:?}"
        );
        assert!(
            text.contains(&format!("\nweb2   {yellow}       -   ")),
            "{text:?}"
        );
        assert!(
            text.contains(&format!("\n  db1   {}  post", red("failed"))),
            "{text:?}"
        );
        assert!(
            text.contains(&format!(
                "\n  {} (2 hosts: web7 web8): not signed",
                red("rejected")
            )),
            "{text:?}"
        );
        assert!(
            text.starts_with("HOST   STATUS "),
            "the header is plain: {text:?}"
        );
        // Without the escapes it is the text without colour.
        let plain = report.render_text(false, Look::PLAIN);
        let stripped = text
            .replace("\x1b[0m", "")
            .replace("\x1b[31m", "")
            .replace("\x1b[32m", "")
            .replace("\x1b[33m", "");
        assert_eq!(stripped, plain);
        assert!(!plain.contains('\x1b'));
        let summary = text
            .lines()
            .find(|l| l.starts_with("install hello"))
            .unwrap();
        assert!(!summary.contains('\x1b'), "{summary:?}");
    }

    /// A host never reached shows `?`, one that has nothing `-`.
    #[test]
    fn an_unknown_version_is_not_none() {
        let mut report = mixed();
        report.hosts[1].outcome = Outcome::status(Status::Unreachable, "connection refused");
        let text = report.render_text(false, Look::PLAIN);
        assert!(text.contains("\nweb2   unreachable  ?   "), "{text}");
        assert!(text.contains("\nweb1   installed    - → 1.2.0"), "{text}");
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["hosts"][1]["previous_version"], "unknown");
        assert_eq!(json["hosts"][1]["version"], "unknown");
        assert_eq!(
            json["hosts"][0]["previous_version"],
            serde_json::Value::Null
        );
    }

    #[test]
    fn client_text_cannot_break_lines_or_send_escapes() {
        let mut report = mixed();
        report.hosts[1].outcome.message = "line1\nline2\x1b[2J\r".to_owned();
        report.hosts[1].outcome.previous_version = HostVersion::Is("1.0\x1b]0;x\x07".to_owned());
        report.hosts[3].outcome.message =
            "ok\u{202e}deliaf\u{202c} \u{200b}\u{2028}row\u{2066}".to_owned();
        report.hosts[0].host = "web1\u{feff}".to_owned();
        let text = report.render_text(false, Look::PLAIN);
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
        report.hosts[2].outcome.version = HostVersion::Is(huge.clone());
        report.package.as_mut().unwrap().version = Some(huge.clone());
        let text = report.render_text(false, Look::PLAIN);
        assert!(text.contains(&huge));
        assert_eq!(text.lines().count(), 12, "{text:.300}");
        // Short cells stay aligned, padded to at most MAX_COLUMN_WIDTH.
        let app1 = text.lines().find(|l| l.starts_with("app1")).unwrap();
        assert!(app1.starts_with(&format!(
            "app1{}unchanged",
            " ".repeat(MAX_COLUMN_WIDTH - 2)
        )));
        let rows = [[huge.clone(), "a".into()], ["b".into(), "c".into()]];
        let shown = columns(&rows, &[0], "  ", Look::PLAIN, None);
        assert!(shown.ends_with(&format!("\n  {}b  c\n", " ".repeat(MAX_COLUMN_WIDTH - 1))));
    }

    /// Hosts that ended alike are one line; a host alone keeps its own.
    #[test]
    fn hosts_that_did_not_make_it_alike_are_one_line() {
        let mut report = mixed();
        let rejected = report.hosts[1].clone();
        report.hosts.truncate(1);
        for n in 1..=12 {
            let mut host = rejected.clone();
            host.host = format!("web{n}");
            host.outcome.status = Status::Rejected;
            host.outcome.message = "not signed by a trusted key".into();
            report.hosts.push(host);
        }
        let mut odd = rejected.clone();
        odd.host = "db1".into();
        report.hosts.push(odd);
        let text = report.render_text(true, Look::PLAIN);
        let block = text.split_once("\nNot done").unwrap().1;
        assert_eq!(
            block,
            " — hello 1.2.0 on 13 of 14 hosts:\n  db1  busy  still busy after 6 checks\n  \
             rejected (12 hosts: web1 web2 web3 web4 web5 web6 web7 web8 web9 web10 and 2 more): \
             not signed by a trusted key\n"
        );
    }

    #[test]
    fn no_package_or_no_version_in_the_not_done_block() {
        let mut report = mixed();
        report.op = Op::Remove;
        report.package = Some(PackageInfo {
            name: "hello".to_owned(),
            version: None,
            sha256: None,
        });
        let text = report.render_text(true, Look::PLAIN);
        assert!(text.starts_with("remove hello: 5 hosts: "), "{text}");
        assert!(
            text.contains("\nNot done — hello on 2 of 5 hosts:\n"),
            "{text}"
        );
        report.package = None;
        assert!(
            report
                .render_text(true, Look::PLAIN)
                .contains("\nNot done on 2 of 5 hosts:\n")
        );
        report.hosts.truncate(1);
        report.hosts[0].outcome.status = Status::Unreachable;
        assert_eq!(
            report.render_text(true, Look::PLAIN),
            "remove: 1 host: 1 unreachable\n\nNot done on 1 of 1 host:\n  web1  unreachable\n"
        );
    }

    /// `-v`'s block: each host's phases, and the SSH layer's detail under
    /// a host that has one, terminal-safe; the report without `-v` has
    /// neither.
    #[test]
    fn verbose_block_has_phases_and_ssh_details() {
        use crate::progress::{Phase, PhaseTime};
        let mut report = mixed();
        report.hosts.truncate(3);
        let time = |phase, seconds| PhaseTime { phase, seconds };
        report.hosts[0].phases = vec![
            time(Phase::Connecting, 0.12),
            time(Phase::Verifying, 0.2),
            time(Phase::Uploading, 1.26),
            time(Phase::Installing, 0.4),
            time(Phase::Checking, 0.05),
        ];
        report.hosts[1].outcome = Outcome::status(Status::Unreachable, "cannot connect");
        report.hosts[1].outcome.detail = Some(Box::new(
            "ssh: Connect { reason: \"refused\" }\x1b[2J; not retried".into(),
        ));
        report.hosts[1].phases = vec![time(Phase::Connecting, 3.0)];
        let block = report.verbose_block(Look::PLAIN);
        assert_eq!(
            block,
            "\nPhases (-v):\n  \
             web1: connecting 0.1 s, verifying 0.2 s, uploading 1.3 s, installing 0.4 s, checking health 0.1 s\n  \
             web2: connecting 3.0 s\n    \
             ssh: Connect { reason: \"refused\" }\\u{1b}[2J; not retried\n  \
             web10: not started\n"
        );
        let plain = report.render_text(false, Look::PLAIN);
        assert!(
            !plain.contains("connecting") && !plain.contains("ssh:"),
            "{plain}"
        );
        report.hosts.clear();
        assert_eq!(report.verbose_block(Look::PLAIN), "");
    }

    #[test]
    fn the_rerun_line_is_only_for_runs_with_hosts_not_done() {
        let mut report = mixed();
        let line = "swpush install -i inv.yaml hello.tar --limit @failed";
        assert_eq!(report.rerun_block(line), format!("\nRe-run them: {line}\n"));
        report.hosts.retain(|h| h.outcome.status.ok_for_exit());
        assert_eq!(report.rerun_block(line), "");
    }
}
