//! `swpush publish PKG --to DEST` (docs/scaling.md): puts a package where a
//! mirror serves it, named by its sha256 (`DEST/sha256/HEX`), so objects
//! are immutable and any cache may keep them for ever. Publishing again
//! writes nothing. A directory is the destination an nginx (or any static
//! server) serves; HTTP PUT and S3 buckets are not done yet and are
//! refused, naming what is.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::file_error::FileError;
use crate::package::Package;

/// Where `--to` puts the package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A directory a static HTTP server serves.
    Dir(PathBuf),
}

impl Destination {
    /// `--to`'s value: a directory path; `http(s)://` and `s3://` are
    /// refused until they are done.
    pub fn parse(text: &str) -> Result<Destination, String> {
        if text.is_empty() {
            return Err("names no directory".into());
        }
        for scheme in ["http://", "https://", "s3://"] {
            if text.starts_with(scheme) {
                return Err(format!(
                    "{scheme} destinations are not supported yet: publish to a directory \
                     an HTTP server serves"
                ));
            }
        }
        Ok(Destination::Dir(PathBuf::from(text)))
    }
}

/// What a publish did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The object: `DIR/sha256/HEX`.
    pub path: PathBuf,
    /// `false`: an object with the package's size and sha256 was there.
    pub written: bool,
    /// `true`: an object of that name with other bytes was there, and is
    /// replaced (its name promised the package's sha256).
    pub replaced: bool,
}

/// Puts `package` at `to`'s content address.
pub fn publish(package: &Package, to: &Destination) -> Result<Published, FileError> {
    let Destination::Dir(dir) = to;
    let objects = dir.join("sha256");
    let path = objects.join(&package.sha256);
    let present = match File::open(&path) {
        Ok(file) => Some(
            sha256_of(file).map_err(FileError::doing("read the published package", &path))?
                == (package.size, package.sha256.clone()),
        ),
        Err(error) if error.kind() == io::ErrorKind::NotFound => None,
        Err(error) => {
            return Err(FileError::doing("read the published package", &path)(error));
        }
    };
    if present == Some(true) {
        return Ok(Published {
            path,
            written: false,
            replaced: false,
        });
    }
    fs::create_dir_all(&objects).map_err(FileError::doing("create", &objects))?;
    // Beside the object, then renamed: a server never serves half of it.
    let partial = objects.join(format!(
        ".{}.{}.partial",
        package.sha256,
        std::process::id()
    ));
    let written = copy_synced(&package.path, &partial)
        .and_then(|()| fs::rename(&partial, &path))
        .and_then(|()| File::open(&objects)?.sync_all());
    if let Err(error) = written {
        let _ = fs::remove_file(&partial);
        return Err(FileError::doing("write the package to", &path)(error));
    }
    Ok(Published {
        path,
        written: true,
        replaced: present == Some(false),
    })
}

/// Copies `from` to a new `to` (mode 0644: the server reads it), on disk
/// before it returns.
fn copy_synced(from: &Path, to: &Path) -> io::Result<()> {
    let mut source = File::open(from)?;
    let mut target = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(to)?;
    io::copy(&mut source, &mut target)?;
    target.flush()?;
    target.sync_all()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(to, fs::Permissions::from_mode(0o644))?;
    }
    Ok(())
}

/// Size and lowercase hex sha256 of what `reader` holds.
fn sha256_of(mut reader: impl Read) -> io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 64 * 1024];
    let mut size = 0;
    loop {
        let n = reader.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        size += n as u64;
    }
    Ok((size, hex::encode(hasher.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package_in(dir: &Path, bytes: &[u8]) -> Package {
        let path = dir.join("pkg.tar");
        fs::write(&path, bytes).unwrap();
        let (size, sha256) = sha256_of(bytes).unwrap();
        Package {
            path,
            manifest: crate::package::manifest::parse("name: hello\nversion: 1.0.0\n").unwrap(),
            sha256,
            size,
            unpacked_size: 0,
        }
    }

    #[test]
    fn published_by_sha256_once_and_a_wrong_object_is_replaced() {
        let root = std::env::temp_dir().join(format!("swpush-publish-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        let dir = &root;
        let package = package_in(dir, b"the package's bytes");
        let to = Destination::Dir(dir.join("www"));
        let first = publish(&package, &to).unwrap();
        let object = dir.join("www/sha256").join(&package.sha256);
        assert_eq!(first.path, object);
        assert!(first.written && !first.replaced);
        assert_eq!(fs::read(&object).unwrap(), b"the package's bytes");

        let again = publish(&package, &to).unwrap();
        assert!(!again.written, "publishing again writes nothing");

        fs::write(&object, b"tampered").unwrap();
        let mended = publish(&package, &to).unwrap();
        assert!(mended.written && mended.replaced);
        assert_eq!(fs::read(&object).unwrap(), b"the package's bytes");
        let left: Vec<_> = fs::read_dir(dir.join("www/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 1, "no partial file left: {left:?}");
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn destinations_not_done_are_refused() {
        for text in [
            "http://m.example/dav",
            "https://m.example",
            "s3://bucket/p",
            "",
        ] {
            assert!(Destination::parse(text).is_err(), "{text}");
        }
        assert_eq!(
            Destination::parse("/srv/www").unwrap(),
            Destination::Dir("/srv/www".into())
        );
    }
}
