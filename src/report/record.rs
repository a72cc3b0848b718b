//! Run records (SPEC §7): each run's JSON report, kept as a file of its own
//! under `STATE_HOME/swpush/runs/` ([`runs_dir`]), private to the user,
//! never overwritten, the oldest deleted once there are
//! [`KEEP_RUN_RECORDS`]. `status` keeps none (the command decides).
//! [`last_run`] finds the newest record of a command and package: what
//! `--limit @failed` re-runs.

use std::fs::{DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::RunReport;
use crate::file_error::FileError;
use crate::order::Op;
use crate::state_home::runs_dir;

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
    let mut stem = format!(
        "{}-{}",
        file_part(&report.started),
        file_part(report.op.as_str())
    );
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

/// The newest run record of `op` on the package `name` (`None`: a run
/// about no package, `enroll`) under `state_home`, and the file it was read
/// from; `None` when there is none. Dry runs are passed over: they changed
/// nothing, so they leave nothing to re-run. A record that cannot be read
/// or parsed, where it may be the newest, is an error rather than passed
/// over: an older run's hosts are not what was asked for.
pub fn last_run(
    state_home: &Path,
    op: Op,
    name: Option<&str>,
) -> Result<Option<(RunReport, PathBuf)>, LastRunError> {
    let dir = runs_dir(state_home);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(LastRunError::Read(FileError::doing(
                "read the run records in",
                &dir,
            )(error)));
        }
    };
    let mut candidates: Vec<(String, u32, std::ffi::OsString)> = entries
        .filter_map(|entry| entry.ok().map(|e| e.file_name()))
        .filter_map(|file| {
            let (started, n) = record_of(file.to_str()?, op, name)?;
            Some((started.to_owned(), n, file))
        })
        .collect();
    // Newest first: by start time, then by the `-N` a same-second record got.
    candidates.sort_by(|a, b| (&b.0, b.1).cmp(&(&a.0, a.1)));
    for (_, _, file) in candidates {
        let path = dir.join(&file);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            // Pruned by another run since the directory was read.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => {
                return Err(LastRunError::Read(FileError::doing(
                    "read the run record",
                    &path,
                )(error)));
            }
        };
        let report: RunReport = serde_json::from_str(&text).map_err(|e| LastRunError::Parse {
            path: path.clone(),
            error: crate::untrusted::one_line(e),
        })?;
        // The file name only narrows the search (a package `hello-2` and a
        // second record of `hello` are named alike): what it holds decides.
        let same = report.op == op && report.package.as_ref().map(|p| p.name.as_str()) == name;
        if same && !report.dry_run {
            return Ok(Some((report, path)));
        }
    }
    Ok(None)
}

/// Why the run records could not be searched.
#[derive(Debug, thiserror::Error)]
pub enum LastRunError {
    #[error(transparent)]
    Read(FileError),
    #[error("the run record {} is not a run report: {error}", path.display())]
    Parse { path: PathBuf, error: String },
}

/// Whether `file` may be a record of `op` on `name`, as
/// [`write_run_record`] names it: its start time (as in the name) and its
/// number (1, then the `-N` of a record written in the same second).
fn record_of<'f>(file: &'f str, op: Op, name: Option<&str>) -> Option<(&'f str, u32)> {
    let stem = file.strip_suffix(".json")?;
    // `2026-11-24T10-00-00Z-`: the start time, to the second.
    const STARTED: usize = "2026-11-24T10-00-00Z".len();
    let started = stem.get(..STARTED)?;
    let mut rest = stem.get(STARTED..)?.strip_prefix('-')?;
    rest = rest.strip_prefix(op.as_str())?;
    if let Some(name) = name {
        rest = rest
            .strip_prefix('-')?
            .strip_prefix(file_part(name).as_str())?;
    }
    match rest {
        "" => Some((started, 1)),
        _ => {
            let n = rest.strip_prefix('-')?;
            let digits = !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit());
            Some((started, n.parse().ok().filter(|_| digits)?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::mixed;

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

    /// A record of `op` on `name` started at `started`, whose hosts
    /// ended as `hosts` say; written under `root`.
    fn keep(root: &Path, op: Op, name: Option<&str>, started: &str, hosts: &[(&str, Status)]) {
        let mut report = mixed();
        report.op = op;
        report.package = name.map(|name| crate::report::PackageInfo {
            name: name.into(),
            version: None,
            sha256: None,
        });
        report.started = started.into();
        report.hosts = hosts
            .iter()
            .map(|(host, status)| {
                crate::report::HostReport::new(*host, "192.0.2.1", Outcome::status(*status, ""))
            })
            .collect();
        save_run_record(&report, root).unwrap();
    }

    fn hosts_of(root: &Path, op: Op, name: Option<&str>) -> Option<Vec<String>> {
        let (report, _) = last_run(root, op, name).unwrap()?;
        Some(report.hosts.into_iter().map(|h| h.host).collect())
    }

    use crate::outcome::{Outcome, Status};

    #[test]
    fn the_last_run_is_the_newest_record_of_the_same_command_and_package() {
        let root = std::env::temp_dir().join(format!("swpush-last-run-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        // No record at all, not even the folder.
        assert_eq!(hosts_of(&root, Op::Upgrade, Some("hello")), None);
        let failed = Status::Failed;
        keep(
            &root,
            Op::Upgrade,
            Some("hello"),
            "2026-11-20T10:00:00Z",
            &[("old", failed)],
        );
        keep(
            &root,
            Op::Upgrade,
            Some("hello"),
            "2026-11-24T10:00:00Z",
            &[("one", failed)],
        );
        // The same second: the record written second is the newer.
        keep(
            &root,
            Op::Upgrade,
            Some("hello"),
            "2026-11-24T10:00:00Z",
            &[("two", failed)],
        );
        // Newer, but of another command, another package, a package whose
        // record is named like a second one of hello's, or a dry run.
        keep(
            &root,
            Op::Install,
            Some("hello"),
            "2026-11-25T10:00:00Z",
            &[("install", failed)],
        );
        keep(
            &root,
            Op::Upgrade,
            Some("other"),
            "2026-11-25T10:00:00Z",
            &[("other", failed)],
        );
        keep(
            &root,
            Op::Upgrade,
            Some("hello-3"),
            "2026-11-25T10:00:00Z",
            &[("h3", failed)],
        );
        keep(
            &root,
            Op::Upgrade,
            Some("hell"),
            "2026-11-25T10:00:00Z",
            &[("hell", failed)],
        );
        keep(
            &root,
            Op::Enroll,
            None,
            "2026-11-25T10:00:00Z",
            &[("enroll", failed)],
        );
        let mut dry = mixed();
        dry.op = Op::Upgrade;
        dry.dry_run = true;
        dry.started = "2026-11-26T10:00:00Z".into();
        dry.hosts.truncate(1);
        save_run_record(&dry, &root).unwrap();
        let names = |op, name| hosts_of(&root, op, name);
        assert_eq!(names(Op::Upgrade, Some("hello")), Some(vec!["two".into()]));
        assert_eq!(
            names(Op::Install, Some("hello")),
            Some(vec!["install".into()])
        );
        assert_eq!(names(Op::Upgrade, Some("hello-3")), Some(vec!["h3".into()]));
        assert_eq!(names(Op::Enroll, None), Some(vec!["enroll".into()]));
        assert_eq!(names(Op::Remove, Some("hello")), None);
        assert_eq!(names(Op::Upgrade, Some("hello-2")), None);
        assert_eq!(names(Op::Upgrade, None), None);
        // A newest record that cannot be read is an error, not passed over
        // for an older run's hosts.
        let dir = runs_dir(&root);
        std::fs::write(dir.join("2026-11-27T10-00-00Z-upgrade-hello.json"), "{").unwrap();
        let error = last_run(&root, Op::Upgrade, Some("hello")).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("2026-11-27T10-00-00Z-upgrade-hello.json is not a run report"),
            "{error}"
        );
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn record_names_are_read_back_as_written() {
        let of = |file| record_of(file, Op::Upgrade, Some("hello"));
        assert_eq!(
            of("2026-11-24T10-00-00Z-upgrade-hello.json"),
            Some(("2026-11-24T10-00-00Z", 1))
        );
        assert_eq!(
            of("2026-11-24T10-00-00Z-upgrade-hello-12.json"),
            Some(("2026-11-24T10-00-00Z", 12))
        );
        for other in [
            "2026-11-24T10-00-00Z-upgrade-hello-.json",
            "2026-11-24T10-00-00Z-upgrade-hello-x.json",
            "2026-11-24T10-00-00Z-upgrade-hellox.json",
            "2026-11-24T10-00-00Z-install-hello.json",
            "2026-11-24T10-00-00Z-upgrade-hello.json.tmp",
            "2026-11-24T10-00-00Z-upgrade.json",
            "upgrade-hello.json",
            "",
        ] {
            assert_eq!(of(other), None, "{other}");
        }
        assert_eq!(
            record_of("2026-11-24T10-00-00Z-enroll-2.json", Op::Enroll, None),
            Some(("2026-11-24T10-00-00Z", 2))
        );
    }
}
