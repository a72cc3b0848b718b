//! `swpush pack DIR`: build a package whose bytes depend only on the
//! folder's content.
//!
//! Entries are sorted by name; owner, group and mtime are fixed (root, 0);
//! modes are normalised to 0755 (directories and files with any execute bit),
//! 0644 (other files) or 0777 (symlinks); gzip and zstd are written with fixed settings and no timestamp.
//! The same entry policy as for reading applies ([`super::entries`]), and
//! the result is read back with [`super::read`], so `pack` can never produce
//! a package the controller or a client would refuse.
//!
//! What is not part of the software is left out: version-control folders,
//! editor backups, the folder's earlier packages ([`SKIPPED`]), and what a
//! `.swpushignore` at the top of the folder names (gitignore syntax, read
//! by the `ignore` crate; its `!` lines can take back a default).

use std::fs;
use std::io::{BufWriter, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ignore::gitignore::{Gitignore, GitignoreBuilder};

use super::entries::{EntrySet, Kind, check_link_target, normalize_name};
use super::{Compression, MANIFEST, Package, PackageError, manifest};
use crate::untrusted::one_line;

/// zstd level: a good ratio at a speed that keeps `pack` interactive.
const ZSTD_LEVEL: i32 = 10;

/// The file of patterns, at the top of the folder, for what to leave out.
pub const IGNORE_FILE: &str = ".swpushignore";

/// Left out of every package (gitignore patterns), before the folder's
/// own [`IGNORE_FILE`]: version control, editor backups and swap files
/// (`\#` is a `#`, which would start a comment).
/// Earlier packages of the same NAME are added by [`skip_rules`].
pub const SKIPPED: &[&str] = &[
    ".git",
    ".hg",
    ".svn",
    "*~",
    ".*.sw[a-p]",
    r"\#*#",
    ".#*",
    ".DS_Store",
];

/// The endings `-o` may have: the formats `pack` writes.
const PACKAGE_ENDINGS: [&str; 5] = [".tar", ".tar.gz", ".tgz", ".tar.zst", ".tzst"];

/// One file-system entry to store, by its path inside the package.
struct Item {
    name: String,
    source: PathBuf,
    kind: Kind,
    executable: bool,
    link_target: Option<PathBuf>,
}

/// Packs `dir` into `out` (default `NAME-VERSION.tar.gz` in the current folder).
pub fn pack(dir: &Path, out: Option<&Path>) -> Result<Package, PackageError> {
    let fail = |message: String| PackageError::new(dir, message);
    if !dir.is_dir() {
        return Err(fail("is not a folder".into()));
    }
    let manifest_path = dir.join(MANIFEST);
    let text = fs::read_to_string(&manifest_path).map_err(|e| {
        fail(match e.kind() {
            std::io::ErrorKind::NotFound => {
                format!("has no {MANIFEST}; a package folder needs one")
            }
            _ => format!(
                "cannot read {MANIFEST}: {}",
                crate::inventory::io_message(&e)
            ),
        })
    })?;
    let manifest = manifest::parse(&text).map_err(fail)?;

    let out = match out {
        Some(out) => out.to_owned(),
        None => PathBuf::from(format!("{}-{}.tar.gz", manifest.name, manifest.version)),
    };
    let out_name = out.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    if !PACKAGE_ENDINGS
        .iter()
        .any(|ending| out_name.ends_with(ending))
    {
        return Err(PackageError::new(
            &out,
            format!(
                "cannot be written: a package file ends in {}",
                PACKAGE_ENDINGS.join(", ")
            ),
        ));
    }
    let skip = skip_rules(dir, &manifest.name).map_err(fail)?;
    let items = collect(dir, &out, &skip).map_err(fail)?;
    for (key, path) in manifest.hooks.iter() {
        if !items.iter().any(|i| i.name == path && i.kind == Kind::File) {
            return Err(fail(format!(
                "{MANIFEST}: hook `{key}` names `{path}`, which is not a regular file in the folder"
            )));
        }
    }

    let out_fail = |message: String| PackageError::new(&out, message);
    let file_name = out
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| out_fail("is not a file name".into()))?;
    let compression = Compression::from_file_name(file_name);
    // Written beside OUT, checked there, and only then renamed over it: a
    // full disk, a cut write or a package that fails its own check never
    // replaces (or creates) OUT, and a reader never sees half a package.
    let temp = out.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    let cannot_write = |e: std::io::Error| {
        out_fail(format!(
            "cannot write: {}",
            crate::inventory::io_message(&e)
        ))
    };
    let checked = write_archive(&items, &temp, compression)
        .map_err(cannot_write)
        .and_then(|()| {
            super::read(&temp).map_err(|e| {
                out_fail(format!(
                    "the package written does not pass its own check, so it was not kept: {}",
                    e.message
                ))
            })
        })
        .and_then(|package| {
            fs::rename(&temp, &out).map_err(cannot_write)?;
            Ok(Package {
                path: out.clone(),
                ..package
            })
        });
    if checked.is_err() {
        let _ = fs::remove_file(&temp);
    }
    checked
}

/// What to leave out of the package of `dir`: [`SKIPPED`], the folder's
/// earlier packages of `name` at its top, then its [`IGNORE_FILE`].
fn skip_rules(dir: &Path, name: &str) -> Result<Gitignore, String> {
    let mut rules = GitignoreBuilder::new(dir);
    let earlier = PACKAGE_ENDINGS.map(|ending| format!("/{name}-*{ending}"));
    for line in SKIPPED
        .iter()
        .copied()
        .chain(earlier.iter().map(String::as_str))
    {
        rules
            .add_line(None, line)
            .map_err(|e| format!("cannot use the skip pattern `{line}`: {e}"))?;
    }
    let file = dir.join(IGNORE_FILE);
    if fs::symlink_metadata(&file).is_ok()
        && let Some(e) = rules.add(&file)
    {
        return Err(format!("cannot use {IGNORE_FILE}: {}", one_line(&e)));
    }
    rules
        .build()
        .map_err(|e| format!("cannot use {IGNORE_FILE}: {}", one_line(&e)))
}

/// Every entry below `dir` that `skip` does not leave out (the manifest
/// never is), sorted by name, checked against the entry policy.
fn collect(dir: &Path, out: &Path, skip: &Gitignore) -> Result<Vec<Item>, String> {
    let output = fs::canonicalize(out).ok();
    let mut items = Vec::new();
    let mut set = EntrySet::default();
    let mut pending = vec![(dir.to_owned(), String::new())];
    while let Some((folder, prefix)) = pending.pop() {
        let listing = fs::read_dir(&folder).map_err(|e| {
            format!(
                "cannot list `{}`: {}",
                folder.display(),
                crate::inventory::io_message(&e)
            )
        })?;
        for dirent in listing {
            let dirent = dirent.map_err(|e| format!("cannot list `{}`: {e}", folder.display()))?;
            let source = dirent.path();
            if output.is_some() && fs::canonicalize(&source).ok() == output {
                continue; // the output itself, when written inside the folder
            }
            let is_dir = dirent.file_type().is_ok_and(|t| t.is_dir());
            if skip.matched(&source, is_dir).is_ignore() && source != dir.join(MANIFEST) {
                continue;
            }
            let raw = format!("{prefix}{}", dirent.file_name().to_string_lossy());
            let shown = raw.escape_debug().to_string();
            let refuse = |reason: String| format!("`{shown}` {reason}");
            let os_name = dirent.file_name();
            let name_bytes = [
                prefix.as_bytes(),
                std::os::unix::ffi::OsStrExt::as_bytes(os_name.as_os_str()),
            ]
            .concat();
            let name = normalize_name(&name_bytes)
                .map_err(refuse)?
                .ok_or_else(|| refuse("has no name".into()))?;
            let meta = fs::symlink_metadata(&source).map_err(|e| refuse(e.to_string()))?;
            let file_type = meta.file_type();
            let (kind, link_target) = if file_type.is_dir() {
                pending.push((source.clone(), format!("{name}/")));
                (Kind::Dir, None)
            } else if file_type.is_file() {
                (Kind::File, None)
            } else if file_type.is_symlink() {
                let target = fs::read_link(&source).map_err(|e| refuse(e.to_string()))?;
                check_link_target(
                    &name,
                    std::os::unix::ffi::OsStrExt::as_bytes(target.as_os_str()),
                )
                .map_err(refuse)?;
                (Kind::Symlink, Some(target))
            } else if file_type.is_block_device() || file_type.is_char_device() {
                return Err(refuse("is a device file".into()));
            } else if file_type.is_fifo() {
                return Err(refuse("is a fifo".into()));
            } else {
                return Err(refuse("is a socket or another special file".into()));
            };
            set.add(&name, kind.clone()).map_err(refuse)?;
            items.push(Item {
                executable: meta.permissions().mode() & 0o111 != 0,
                name,
                source,
                kind,
                link_target,
            });
        }
    }
    items.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(items)
}

/// Writes the package to `temp` and syncs it to disk, so that the rename
/// over OUT never publishes bytes a crash could still lose.
fn write_archive(items: &[Item], temp: &Path, compression: Compression) -> std::io::Result<()> {
    let file = BufWriter::new(fs::File::create(temp)?);
    let file = match compression {
        Compression::None => finish_tar(items, file)?,
        Compression::Gzip => {
            let encoder = flate2::GzBuilder::new()
                .mtime(0)
                .operating_system(255)
                .write(file, flate2::Compression::default());
            finish_tar(items, encoder)?.finish()?
        }
        Compression::Zstd => {
            let mut encoder = zstd::stream::write::Encoder::new(file, ZSTD_LEVEL)?;
            encoder.include_checksum(true)?;
            finish_tar(items, encoder)?.finish()?
        }
    };
    file.into_inner().map_err(|e| e.into_error())?.sync_all()
}

/// Writes the tar stream into `sink` and hands `sink` back for finishing.
fn finish_tar<W: Write>(items: &[Item], sink: W) -> std::io::Result<W> {
    let mut builder = tar::Builder::new(sink);
    for item in items {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        let mode = match item.kind {
            Kind::Symlink => 0o777,
            Kind::Dir => 0o755,
            Kind::File if item.executable => 0o755,
            Kind::File => 0o644,
        };
        header.set_mode(mode);
        match item.kind {
            Kind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                builder.append_data(&mut header, format!("{}/", item.name), std::io::empty())?;
            }
            Kind::File => {
                let file = fs::File::open(&item.source)?;
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(file.metadata()?.len());
                builder.append_data(&mut header, &item.name, file)?;
            }
            Kind::Symlink => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                let target = item.link_target.as_deref().unwrap_or(Path::new(""));
                builder.append_link(&mut header, &item.name, target)?;
            }
        }
    }
    builder.into_inner()
}
