//! The controller's run lock: one run at a time per inventory, so that a
//! cron job that outlasts its interval (or an operator's run started over
//! it) stops at once with a clear message instead of racing the run in
//! flight. The lock is an OS file lock (`flock`): it goes away with the
//! process however it ends, so it can never be left stale.
//!
//! Runs that change nothing (`status`, `--dry-run`) take no lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::file_error::FileError;

/// Held for the whole run; released when dropped (or the process ends).
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another swpush run is working on {inventory} ({holder}); not starting, so the two cannot overlap. Lock: {lock}"
    )]
    Held {
        inventory: String,
        holder: String,
        lock: String,
    },
    #[error(transparent)]
    Io(#[from] FileError),
}

/// `STATE_HOME/swpush/locks/FILE-HASH.lock` for `inventory`: one lock per
/// inventory file, wherever it is named from.
pub fn path_for(state_home: &Path, inventory: &Path) -> PathBuf {
    let canonical = std::fs::canonicalize(inventory).unwrap_or_else(|_| inventory.to_owned());
    let digest = hex::encode(Sha256::digest(canonical.as_os_str().as_encoded_bytes()));
    let stem: String = canonical
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    crate::state_home::locks_dir(state_home).join(format!("{stem}-{}.lock", &digest[..16]))
}

/// Takes the lock for `inventory`, or says who holds it. `what` (the
/// command line) is written into the lock for that message.
pub fn acquire(state_home: &Path, inventory: &Path, what: &str) -> Result<RunLock, LockError> {
    let path = path_for(state_home, inventory);
    let io = |error| LockError::Io(FileError::doing("take the run lock", &path)(error));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(LockError::Held {
                inventory: inventory.display().to_string(),
                holder: if holder.is_empty() {
                    "it is just starting".to_owned()
                } else {
                    crate::untrusted::terminal_safe(holder).into_owned()
                },
                lock: path.display().to_string(),
            });
        }
        Err(TryLockError::Error(error)) => return Err(io(error)),
    }
    let started = crate::time::now_rfc3339();
    let note = format!("pid {}, since {started}: {what}\n", std::process::id());
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(note.as_bytes()))
        .map_err(io)?;
    Ok(RunLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_run_on_the_same_inventory_is_refused_until_the_first_ends() {
        let dir = std::env::temp_dir().join(format!("swpush-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let inventory = dir.join("hosts.yaml");
        std::fs::write(&inventory, "hosts: {}\n").unwrap();
        let other = dir.join("other.yaml");
        std::fs::write(&other, "hosts: {}\n").unwrap();

        let first = acquire(&dir, &inventory, "swpush upgrade hello.tar.gz").unwrap();
        let refused = acquire(&dir, &dir.join(".").join("hosts.yaml"), "swpush install x")
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("another swpush run is working on"),
            "{refused}"
        );
        assert!(
            refused.contains(&format!("pid {}", std::process::id()))
                && refused.contains("swpush upgrade hello.tar.gz"),
            "names the holder: {refused}"
        );
        let _other = acquire(&dir, &other, "swpush install x").expect("another inventory");
        drop(first);
        acquire(&dir, &inventory, "swpush install x").expect("free again");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
