//! Packages: reading and checking one (`.tar`, `.tar.gz`, `.tar.zst`), and
//! building one with `swpush pack` ([`pack`]).
//!
//! A package is checked in one streaming pass that also computes the sha256
//! and size the signed order carries, so memory does not grow with package
//! size. What may be inside is decided in [`entries`]; the manifest is
//! [`manifest`]. Nothing here connects to a host.

pub mod entries;
mod framing;
pub mod manifest;
pub mod pack;

use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use entries::{EntrySet, Kind, check_link_target, normalize_name};
pub use manifest::{MANIFEST, Manifest};

/// A package that passed every check, ready to be offered to hosts.
#[derive(Debug, Clone)]
pub struct Package {
    pub path: PathBuf,
    pub manifest: Manifest,
    /// Lowercase hex sha256 of the file as stored (compressed bytes).
    pub sha256: String,
    pub size: u64,
    /// What the release takes once extracted: the regular files' bytes plus
    /// [`ENTRY_ALLOWANCE`] per entry. Signed in the order; the client checks
    /// its free space and its own listing against it.
    pub unpacked_size: u64,
}

/// Bytes counted per entry on top of file contents in
/// [`Package::unpacked_size`]: a directory's block, an inode, a symlink. The
/// client's listing counts its entries the same way.
pub const ENTRY_ALLOWANCE: u64 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// Chosen from the output name of `pack`: `.tar.gz`/`.tgz`, `.tar.zst`, else none.
    pub fn from_file_name(name: &str) -> Compression {
        if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
            Compression::Gzip
        } else if name.ends_with(".tar.zst") || name.ends_with(".tzst") {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// Why a package is refused: `origin` is the package file or source folder.
#[derive(Debug, thiserror::Error)]
pub struct PackageError {
    pub origin: String,
    pub message: String,
}

impl fmt::Display for PackageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.origin, self.message)
    }
}

impl PackageError {
    pub fn new(origin: &Path, message: impl Into<String>) -> Self {
        PackageError {
            origin: origin.display().to_string(),
            message: message.into(),
        }
    }
}

/// Reads and checks the package at `path`.
pub fn read(path: &Path) -> Result<Package, PackageError> {
    let fail = |message: String| PackageError::new(path, message);
    let file = std::fs::File::open(path).map_err(|e| fail(crate::inventory::io_message(&e)))?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(fail(
            "is a directory; build a package from it with `swpush pack`".into(),
        ));
    }
    let mut raw = BufReader::new(Hashing::new(file));
    let compression = sniff(&mut raw).map_err(fail)?;
    let (manifest, unpacked_size) = match compression {
        Compression::None => check_archive(&mut raw),
        Compression::Gzip => check_archive(flate2::bufread::MultiGzDecoder::new(&mut raw)),
        Compression::Zstd => match zstd::stream::read::Decoder::with_buffer(&mut raw) {
            Ok(decoder) => check_archive(decoder),
            Err(e) => Err(format!("cannot read zstd stream: {e}")),
        },
    }
    .map_err(fail)?;
    // Bytes after the end of the archive (tar padding) still count in the hash.
    std::io::copy(&mut raw, &mut std::io::sink()).map_err(|e| fail(format!("cannot read: {e}")))?;
    let hashing = raw.into_inner();
    Ok(Package {
        path: path.to_owned(),
        manifest,
        sha256: hex::encode(hashing.hasher.finalize()),
        size: hashing.count,
        unpacked_size,
    })
}

/// Tells the format from the first bytes, whatever the file is called.
fn sniff(reader: &mut impl BufRead) -> Result<Compression, String> {
    let head = reader.fill_buf().map_err(|e| format!("cannot read: {e}"))?;
    Ok(match head {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
        [] => return Err("is empty, not a package".into()),
        [0xfd, b'7', b'z', b'X', b'Z', ..] | [b'B', b'Z', b'h', ..] => {
            return Err(
                "is compressed with xz or bzip2; swpush reads .tar, .tar.gz and .tar.zst".into(),
            );
        }
        _ => Compression::None,
    })
}

/// Walks every entry of a tar stream, checking it and reading the manifest;
/// also returns the unpacked size ([`Package::unpacked_size`]).
fn check_archive(mut reader: impl Read) -> Result<(Manifest, u64), String> {
    let mut first = [0u8; 512];
    reader.read_exact(&mut first).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => "is too short to be a tar archive".to_owned(),
        _ => corrupt(e),
    })?;
    // ustar, pax and GNU headers all carry "ustar" at offset 257.
    if &first[257..262] != b"ustar" {
        return Err("is not a tar archive (nor a gzip or zstd compressed one)".into());
    }
    let problem = std::rc::Rc::new(std::cell::RefCell::new(None));
    let mut counted = Counting {
        inner: framing::Framing::new(std::io::Cursor::new(first).chain(reader), problem.clone()),
        count: 0,
    };
    // Errors the framing check raised come back wrapped by the tar crate.
    let corrupt = |error: std::io::Error| match problem.borrow().clone() {
        Some(problem) => problem,
        None => corrupt(error),
    };
    let mut archive = tar::Archive::new(&mut counted);
    let mut set = EntrySet::default();
    let mut manifest_text = None;
    let mut end_of_last_entry = 0u64;
    let mut unpacked = 0u64;
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        // Every entry counts, also those skipped below: the client's listing
        // shows them too, and counting more only leaves it more room.
        unpacked = unpacked.saturating_add(ENTRY_ALLOWANCE);
        let raw_name = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_name)
            .escape_debug()
            .to_string();
        let refuse = |reason: String| format!("entry `{shown}` {reason}");
        let entry_type = entry.header().entry_type();
        let kind = match entry_type {
            tar::EntryType::Regular | tar::EntryType::Continuous => Kind::File,
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Symlink => Kind::Symlink,
            // A pax global header (as `git archive` writes) holds no file.
            tar::EntryType::XGlobalHeader => continue,
            tar::EntryType::Link => {
                return Err(refuse("is a hard link; packages hold regular files, directories and symlinks (`swpush pack` stores hard links as files)".into()));
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                return Err(refuse("is a device file".into()));
            }
            tar::EntryType::Fifo => return Err(refuse("is a fifo".into())),
            other => return Err(refuse(format!("has an unsupported type ({other:?})"))),
        };
        // Extracting as root keeps modes: a setuid bit would make a root
        // program out of any file. A package that needs one sets it in a hook.
        if entry.header().mode().map_err(corrupt)? & 0o6000 != 0 {
            return Err(refuse(
                "has a setuid or setgid bit; set such modes in a post_install hook if they are really needed"
                    .into(),
            ));
        }
        if kind == Kind::File {
            unpacked = unpacked.saturating_add(entry.header().size().map_err(corrupt)?);
        }
        let name = match normalize_name(&raw_name).map_err(refuse)? {
            Some(name) => name,
            None if kind == Kind::Dir => continue,
            None => return Err(refuse("has no name".into())),
        };
        if kind == Kind::Symlink {
            let target = entry.link_name_bytes().unwrap_or_default().into_owned();
            check_link_target(&name, &target).map_err(refuse)?;
        }
        set.add(&name, kind.clone()).map_err(refuse)?;
        if name == MANIFEST {
            if kind != Kind::File {
                return Err(format!("{MANIFEST} must be a regular file"));
            }
            let size = entry.header().size().map_err(corrupt)?;
            if size > manifest::MAX_MANIFEST_BYTES {
                return Err(format!("{MANIFEST} is larger than 64 KiB"));
            }
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).map_err(corrupt)?;
            let text =
                String::from_utf8(bytes).map_err(|_| format!("{MANIFEST} is not UTF-8 text"))?;
            manifest_text = Some(text);
        } else {
            // Reading every byte finds a truncated or corrupt stream here,
            // not later on a client.
            std::io::copy(&mut entry, &mut std::io::sink()).map_err(corrupt)?;
        }
        let size = entry.header().entry_size().map_err(corrupt)?;
        end_of_last_entry = entry.raw_file_position() + size.div_ceil(512) * 512;
    }
    // A tar stream ends with zero blocks; without them it was cut short at
    // an entry boundary, which tar itself would not notice.
    if counted.count <= end_of_last_entry {
        return Err("is truncated: the archive has no end-of-archive marker".into());
    }
    std::io::copy(&mut counted, &mut std::io::sink()).map_err(corrupt)?;
    set.check_parents()
        .map_err(|(name, reason)| format!("entry `{name}` {reason}"))?;
    let text = manifest_text.ok_or_else(|| format!("has no {MANIFEST} at its root"))?;
    let manifest = manifest::parse(&text)?;
    for (key, path) in manifest.hooks.iter() {
        if set.kind(path) != Some(&Kind::File) {
            return Err(format!(
                "{MANIFEST}: hook `{key}` names `{path}`, which is not a regular file in the package"
            ));
        }
    }
    Ok((manifest, unpacked))
}

fn corrupt(error: std::io::Error) -> String {
    let detail = error.to_string();
    let cut = [
        "unexpected EOF",
        "failed to read entire block",
        "unexpected end of file",
    ];
    if error.kind() == std::io::ErrorKind::UnexpectedEof || cut.iter().any(|c| detail.contains(c)) {
        "is truncated or corrupt: the archive ends in the middle of an entry".into()
    } else {
        let detail = detail.lines().next().unwrap_or_default();
        format!("is not a valid tar archive: {}", detail.escape_debug())
    }
}

/// Counts the bytes read through it.
struct Counting<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

/// Hashes and counts the raw file bytes as they are read.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R> Hashing<R> {
    fn new(inner: R) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
