//! Run records (SPEC §7): each run's JSON report, kept as a file of its own
//! under `STATE_HOME/swpush/runs/` ([`runs_dir`]), private to the user,
//! never overwritten, the oldest deleted once there are
//! [`KEEP_RUN_RECORDS`]. `status` keeps none (the command decides).

use std::fs::{DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::RunReport;
use crate::file_error::FileError;
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
}
