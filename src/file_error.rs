//! The wording of an I/O error on a file the controller writes (its run
//! lock, a run record, the `--report` file), in one place: `cannot DO
//! PATH: CAUSE`, e.g. `cannot take the run lock /…/hosts.yaml-….lock: Not
//! a directory (os error 20)`.

use std::io;
use std::path::{Path, PathBuf};

/// What was being done to which file, and the OS's reason it failed.
///
/// The cause is part of the message and deliberately not a
/// [`source`](std::error::Error::source): `anyhow`'s `{:#}` (how `main`
/// prints errors) would print it twice.
#[derive(Debug, thiserror::Error)]
#[error("cannot {doing} {}: {error}", path.display())]
pub struct FileError {
    /// A verb phrase that reads before the path: `take the run lock`,
    /// `write the report to`.
    pub doing: &'static str,
    pub path: PathBuf,
    pub error: io::Error,
}

impl FileError {
    /// For `map_err`: the error of `doing` on `path`.
    pub fn doing<'a>(
        doing: &'static str,
        path: &'a Path,
    ) -> impl FnOnce(io::Error) -> FileError + 'a {
        move |error| FileError {
            doing,
            path: path.to_owned(),
            error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_what_where_and_why_once() {
        let error = FileError::doing("take the run lock", Path::new("/s/x.lock"))(io::Error::from(
            io::ErrorKind::NotADirectory,
        ));
        assert_eq!(
            error.to_string(),
            "cannot take the run lock /s/x.lock: not a directory"
        );
        assert_eq!(
            format!("{:#}", anyhow::Error::from(error)),
            "cannot take the run lock /s/x.lock: not a directory"
        );
    }
}
