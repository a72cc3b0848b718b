//! Raw tar archives for tests, written byte by byte exactly as given (no
//! path checks on the way), so that hostile ones are as an attacker would
//! write them: the package reader's unit tests and the end-to-end tests
//! build their archives here. Not part of swpush's interface (hidden from
//! its documentation); nothing in the binary uses it.

use std::io::Write;

/// Type flags of tar headers.
pub const FILE: u8 = b'0';
pub const HARD: u8 = b'1';
pub const SYMLINK: u8 = b'2';
pub const CHAR: u8 = b'3';
pub const BLOCK: u8 = b'4';
pub const DIR: u8 = b'5';
pub const FIFO: u8 = b'6';
pub const GNU_SPARSE: u8 = b'S';
pub const GNU_LONGNAME: u8 = b'L';
pub const PAX: u8 = b'x';

/// One raw tar entry in a GNU header: a directory is 0755 and anything
/// else 0644, owned by root, mtime 0, unless changed.
#[derive(Clone, Debug)]
pub struct RawEntry {
    pub name: Vec<u8>,
    pub kind: u8,
    pub link: Vec<u8>,
    pub data: Vec<u8>,
    /// The size the header claims; `None` is the data's length.
    pub claimed_size: Option<u64>,
    pub mode: u32,
    pub owner: u64,
}

/// An entry of any `kind`, with a link target and content.
pub fn entry(name: &[u8], kind: u8, link: &[u8], data: &[u8]) -> RawEntry {
    RawEntry {
        name: name.to_vec(),
        kind,
        link: link.to_vec(),
        data: data.to_vec(),
        claimed_size: None,
        mode: if kind == DIR { 0o755 } else { 0o644 },
        owner: 0,
    }
}

pub fn file(name: &str, data: &[u8]) -> RawEntry {
    entry(name.as_bytes(), FILE, b"", data)
}

pub fn dir(name: &str) -> RawEntry {
    entry(name.as_bytes(), DIR, b"", b"")
}

pub fn symlink(name: &str, target: &str) -> RawEntry {
    entry(name.as_bytes(), SYMLINK, target.as_bytes(), b"")
}

pub fn hard_link(name: &str, target: &str) -> RawEntry {
    entry(name.as_bytes(), HARD, target.as_bytes(), b"")
}

/// A device (`CHAR`, `BLOCK`: 1,3) or a `FIFO`.
pub fn special(name: &str, kind: u8) -> RawEntry {
    entry(name.as_bytes(), kind, b"", b"")
}

impl RawEntry {
    pub fn mode(mut self, mode: u32) -> RawEntry {
        self.mode = mode;
        self
    }

    /// Uid and gid.
    pub fn owner(mut self, id: u64) -> RawEntry {
        self.owner = id;
        self
    }

    /// The header block alone.
    pub fn header(&self) -> Vec<u8> {
        let mut header = tar::Header::new_gnu();
        if let Some(gnu) = header.as_gnu_mut() {
            gnu.name[..self.name.len()].copy_from_slice(&self.name);
            gnu.linkname[..self.link.len()].copy_from_slice(&self.link);
        }
        header.set_entry_type(tar::EntryType::new(self.kind));
        header.set_size(self.claimed_size.unwrap_or(self.data.len() as u64));
        header.set_mode(self.mode);
        header.set_uid(self.owner);
        header.set_gid(self.owner);
        header.set_mtime(0);
        if self.kind == GNU_SPARSE
            && let Some(gnu) = header.as_gnu_mut()
        {
            // One data region covering the whole file: a well-formed sparse entry.
            gnu.set_real_size(self.data.len() as u64);
            gnu.sparse[0].set_offset(0);
            gnu.sparse[0].set_length(self.data.len() as u64);
        }
        if self.kind == CHAR || self.kind == BLOCK {
            // Small numbers always fit the field.
            let _ = header.set_device_major(1);
            let _ = header.set_device_minor(3);
        }
        header.set_cksum();
        header.as_bytes().to_vec()
    }
}

/// Header and padded data of each entry, without the end-of-archive marker.
pub fn tar_body(entries: &[RawEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        out.extend_from_slice(&e.header());
        out.extend_from_slice(&e.data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out
}

/// A complete tar stream with exactly these entries.
pub fn tar_of(entries: &[RawEntry]) -> Vec<u8> {
    let mut out = tar_body(entries);
    out.extend_from_slice(&[0; 1024]);
    out
}

/// One pax record, `LEN key=value\n`, where LEN counts itself.
pub fn pax_record(key: &str, value: &str) -> Vec<u8> {
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    while format!("{len}{body}").len() != len {
        len += 1;
    }
    format!("{len}{body}").into_bytes()
}

/// `bytes` gzipped (fast).
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}

/// A GNU sparse entry `name` (type `S`) whose `data` is followed by a hole
/// of `hole` bytes: its header and padded data block(s).
pub fn gnu_sparse_with_hole(name: &str, data: &[u8], hole: u64) -> Vec<u8> {
    let mut header = tar::Header::new_gnu();
    header
        .set_path(name)
        .expect("a test's sparse entry name fits a header");
    header.set_entry_type(tar::EntryType::GNUSparse);
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    if let Some(gnu) = header.as_gnu_mut() {
        gnu.set_real_size(data.len() as u64 + hole);
        gnu.sparse[0].set_offset(0);
        gnu.sparse[0].set_length(data.len() as u64);
    }
    header.set_cksum();
    padded(header.as_bytes(), data)
}

/// A pax 1.0 sparse file `name` without holes, as GNU tar writes one, in
/// ustar headers (GNU tar reads pax headers only in that format): a pax
/// header naming `name`, then a regular member `GNUSparseFile.0/BASE`
/// holding the sparse map and `content`. GNU tar extracts `name`; busybox
/// and the tar crate see `GNUSparseFile.0/BASE`, map and data as one file.
pub fn pax_sparse(name: &str, content: &[u8]) -> Vec<u8> {
    let base = name.rsplit('/').next().unwrap_or(name);
    let records = [
        pax_record("GNU.sparse.major", "1"),
        pax_record("GNU.sparse.minor", "0"),
        pax_record("GNU.sparse.name", name),
        pax_record("GNU.sparse.realsize", &content.len().to_string()),
    ]
    .concat();
    let mut map = format!("1\n0\n{}\n", content.len()).into_bytes();
    map.resize(512, 0);
    let data = [&map[..], content].concat();
    let mut out = Vec::new();
    for (path, kind, data) in [
        (
            format!("PaxHeaders/{base}"),
            tar::EntryType::XHeader,
            &records[..],
        ),
        (
            format!("GNUSparseFile.0/{base}"),
            tar::EntryType::Regular,
            &data[..],
        ),
    ] {
        let mut header = tar::Header::new_ustar();
        header
            .set_path(&path)
            .expect("a test's sparse entry name fits a header");
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        out.extend(padded(header.as_bytes(), data));
    }
    out
}

/// `header` then `data`, padded to whole 512-byte blocks.
fn padded(header: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = [header, data].concat();
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}
