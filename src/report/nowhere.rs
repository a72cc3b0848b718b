//! A run that did nothing because what it was asked for is on none of the
//! hosts selected (SPEC §7): `rollback` or `remove` of a name installed
//! nowhere (a typo), `rollback --to` a version kept nowhere, `rollback`
//! where no host keeps a release before its current one, an `install`
//! where every host has another version. Every host is then `skipped`,
//! which alone would exit 0 and read as success; such a run exits 2
//! instead and says so once, in [`Nowhere`]'s one line.
//!
//! Only the report decides it: the op, what was asked for, and each
//! skipped host's version before the run (the step's decision,
//! src/step/decide.sh, is the one place that skips these). A host that
//! did something (succeeded, or repaired what an interrupted run left)
//! and a host skipped by the policy's choice (an upgrade that would go
//! down or where the package is absent, the same version with other
//! content: their messages name the option) keep today's exit status.

use std::fmt;

use super::{HostReport, RunReport};
use crate::order::Op;
use crate::outcome::Status;

/// How the step's message starts when it first repaired what an
/// interrupted run left (src/step/repair.sh; a dry run's, decide.sh): that
/// host did something, whatever it skipped next.
const REPAIRED: [&str; 2] = ["repaired ", "would first repair "];

/// What a run was asked for, absent from every host selected: the line
/// said after its report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nowhere {
    absent: Absent,
    name: String,
    hosts: usize,
}

/// What one host lacked. A run's hosts lack the same thing but for
/// [`Absent::NotInstalled`], which also lacks every other: the run's is the
/// greatest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Absent {
    /// `remove`, `rollback`: the package is not installed.
    NotInstalled,
    /// `rollback`: no release before the current one is kept.
    NothingToRollBackTo,
    /// `rollback --to VERSION`: VERSION is not kept.
    NotKept(String),
    /// `install` of VERSION: another version is current.
    OtherVersion(String),
}

impl RunReport {
    /// `Some` when no host did what was asked because what it was asked
    /// for is absent from every host: the run exits 2 and says so.
    pub fn nowhere(&self) -> Option<Nowhere> {
        let package = self.package.as_ref()?;
        let asked = package.version.as_deref();
        let lacked: Option<Vec<Absent>> = self
            .hosts
            .iter()
            .map(|host| absent(self.op, asked, host))
            .collect();
        Some(Nowhere {
            absent: lacked?.into_iter().max()?,
            name: package.name.clone(),
            hosts: self.hosts.len(),
        })
    }
}

/// What `host` lacked of what `op` asked for (`asked`: the version), if
/// that is why it was skipped.
fn absent(op: Op, asked: Option<&str>, host: &HostReport) -> Option<Absent> {
    let outcome = &host.outcome;
    if outcome.status != Status::Skipped
        || REPAIRED
            .iter()
            .any(|start| outcome.message.starts_with(start))
    {
        return None;
    }
    let current = outcome.previous_version.as_deref();
    match (op, current, asked) {
        (Op::Remove | Op::Rollback, None, _) => Some(Absent::NotInstalled),
        (Op::Rollback, Some(_), None) => Some(Absent::NothingToRollBackTo),
        (Op::Rollback, Some(_), Some(asked)) => Some(Absent::NotKept(asked.to_owned())),
        (Op::Install, Some(current), Some(asked)) if current != asked => {
            Some(Absent::OtherVersion(asked.to_owned()))
        }
        _ => None,
    }
}

/// `hello is installed on none of the 3 hosts selected`, without the
/// `swpush: ` it is printed after.
impl fmt::Display for Nowhere {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = &self.name;
        let on_none = |what: &str| match self.hosts {
            1 => format!("is not {what} on the host selected"),
            n => format!("is {what} on none of the {n} hosts selected"),
        };
        match &self.absent {
            Absent::NotInstalled => write!(f, "{name} {}", on_none("installed")),
            Absent::NothingToRollBackTo => {
                write!(f, "a release of {name} to roll back to {}", on_none("kept"))
            }
            Absent::NotKept(version) => write!(f, "{name} {version} {}", on_none("kept")),
            Absent::OtherVersion(version) => write!(
                f,
                "{name} {version} {} (another version is current: swpush upgrade changes it)",
                on_none("installed")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::PackageInfo;
    use super::super::tests::host;
    use super::*;

    /// A run of `op` on `name` (at `version`) whose hosts ended as `hosts`
    /// say: (status, version before the run, message).
    fn run(
        op: Op,
        name: &str,
        version: Option<&str>,
        hosts: &[(Status, Option<&str>, &str)],
    ) -> RunReport {
        RunReport {
            op,
            package: Some(PackageInfo {
                name: name.to_owned(),
                version: version.map(String::from),
                sha256: None,
            }),
            started: String::new(),
            finished: String::new(),
            dry_run: false,
            hosts: hosts
                .iter()
                .enumerate()
                .map(|(i, &(status, before, message))| {
                    host(&format!("web{i}"), status, before, before, 0.1, message)
                })
                .collect(),
        }
    }

    const NOT_INSTALLED: (Status, Option<&str>, &str) =
        (Status::Skipped, None, "hello is not installed here");
    const OLDEST: (Status, Option<&str>, &str) = (
        Status::Skipped,
        Some("1.0"),
        "nothing to roll back to: hello 1.0 is the oldest release kept here",
    );

    #[test]
    fn what_no_host_has_is_said_once_for_the_run() {
        let said = |report: RunReport| report.nowhere().map(|n| n.to_string());
        let cases: [(RunReport, &str); 7] = [
            (
                run(Op::Rollback, "nosuch", None, &[NOT_INSTALLED; 3]),
                "nosuch is installed on none of the 3 hosts selected",
            ),
            (
                run(Op::Remove, "hello", None, &[NOT_INSTALLED]),
                "hello is not installed on the host selected",
            ),
            (
                run(Op::Rollback, "hello", None, &[OLDEST, NOT_INSTALLED]),
                "a release of hello to roll back to is kept on none of the 2 hosts selected",
            ),
            (
                run(
                    Op::Rollback,
                    "hello",
                    Some("0.9"),
                    &[
                        NOT_INSTALLED,
                        (Status::Skipped, Some("1.0"), "hello 0.9 is not kept here"),
                    ],
                ),
                "hello 0.9 is kept on none of the 2 hosts selected",
            ),
            (
                run(Op::Rollback, "hello", Some("0.9"), &[NOT_INSTALLED; 2]),
                "hello is installed on none of the 2 hosts selected",
            ),
            (
                run(
                    Op::Install,
                    "hello",
                    Some("1.2"),
                    &[
                        (Status::Skipped, Some("1.1"), "use swpush upgrade"),
                        (Status::Skipped, Some("1.3"), "use swpush upgrade"),
                    ],
                ),
                "hello 1.2 is installed on none of the 2 hosts selected (another version is current: swpush upgrade changes it)",
            ),
            (
                run(
                    Op::Install,
                    "hello",
                    Some("1.2"),
                    &[(Status::Skipped, Some("1.1"), "")],
                ),
                "hello 1.2 is not installed on the host selected (another version is current: swpush upgrade changes it)",
            ),
        ];
        for (report, line) in cases {
            assert_eq!(said(report), Some(line.to_owned()));
        }
    }

    #[test]
    fn a_host_that_did_something_or_was_skipped_by_policy_keeps_the_exit_status() {
        let skipped_by_policy = (
            Status::Skipped,
            Some("1.2"),
            "bump the version (or --force)",
        );
        let repaired = (
            Status::Skipped,
            None,
            "repaired an interrupted remove: hello is removed (it had committed); hello is not installed here",
        );
        let would_repair = (
            Status::Skipped,
            Some("1.0"),
            "would first repair what an interrupted run left; nothing to roll back to",
        );
        let cases = [
            // Some host did it.
            run(
                Op::Rollback,
                "hello",
                None,
                &[NOT_INSTALLED, (Status::RolledBack, Some("1.1"), "")],
            ),
            run(
                Op::Rollback,
                "hello",
                Some("1.0"),
                &[NOT_INSTALLED, (Status::Unchanged, Some("1.0"), "")],
            ),
            // A host failed: exit 2 already, and this is not why.
            run(
                Op::Remove,
                "hello",
                None,
                &[NOT_INSTALLED, (Status::Unreachable, None, "refused")],
            ),
            // The same version with other content; an upgrade where absent
            // or newer: the policy's choice, the message names the option.
            run(Op::Install, "hello", Some("1.2"), &[skipped_by_policy]),
            run(Op::Upgrade, "hello", Some("1.2"), &[NOT_INSTALLED]),
            run(
                Op::Upgrade,
                "hello",
                Some("1.2"),
                &[(Status::Skipped, Some("1.3"), "")],
            ),
            // Repaired what an interrupted run left, then found nothing.
            run(Op::Remove, "hello", None, &[repaired]),
            run(Op::Rollback, "hello", None, &[would_repair]),
            // No host at all, or nothing asked of a package.
            run(Op::Remove, "hello", None, &[]),
            RunReport {
                package: None,
                ..run(Op::Status, "hello", None, &[NOT_INSTALLED])
            },
        ];
        for report in cases {
            assert_eq!(report.nowhere(), None, "{report:?}");
        }
    }
}
