//! The tar stream's framing, checked as bytes pass to the `tar` crate.
//!
//! The crate is trusting where swpush may not be: it reads a GNU long-name
//! or pax header whole into memory (a 67 KB gzip can hold a 64 MiB name),
//! stops at the first zero block (entries after a lone zero block are never
//! seen, though busybox tar would extract them), and does not know pax
//! sparse files (which GNU tar would extract under another name). This
//! reader sits between the decompressor and the crate, follows the header
//! boundaries, and fails the read on any of these, so a package is judged
//! on exactly the entries every tar implementation will see.

use std::cell::RefCell;
use std::io::{self, Read};
use std::rc::Rc;

const BLOCK: u64 = 512;

/// Largest long-name (`L`, `K`) or pax (`x`, `g`) header data accepted.
pub const MAX_META: u64 = 64 * 1024;

pub struct Framing<R> {
    inner: R,
    /// Bytes left before the next header block starts.
    data_left: u64,
    /// The header block being collected, and how much of it has passed.
    header: [u8; 512],
    header_len: usize,
    /// Pax data being collected, to look for keys swpush refuses.
    pax: Option<Vec<u8>>,
    /// A zero block was seen: everything after it must be zero too.
    ended: bool,
    /// The first problem found; every later read fails with it. Shared, so
    /// the caller can tell it apart from the errors the tar crate wraps it in.
    problem: Rc<RefCell<Option<String>>>,
}

impl<R: Read> Framing<R> {
    pub fn new(inner: R, problem: Rc<RefCell<Option<String>>>) -> Self {
        Framing {
            inner,
            data_left: 0,
            header: [0; 512],
            header_len: 0,
            pax: None,
            ended: false,
            problem,
        }
    }

    fn fail(&mut self, problem: String) -> io::Error {
        *self.problem.borrow_mut() = Some(problem.clone());
        io::Error::new(io::ErrorKind::InvalidData, problem)
    }

    /// Follows the bytes just read; `Err` is the reason to refuse.
    fn observe(&mut self, mut bytes: &[u8]) -> Result<(), String> {
        while !bytes.is_empty() {
            if self.ended {
                if bytes.iter().any(|b| *b != 0) {
                    return Err(
                        "has data after an empty block: entries hidden from some tar programs"
                            .into(),
                    );
                }
                return Ok(());
            }
            if self.data_left > 0 {
                let take = usize::try_from(self.data_left)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                if let Some(pax) = &mut self.pax {
                    pax.extend_from_slice(&bytes[..take]);
                }
                self.data_left -= take as u64;
                bytes = &bytes[take..];
                if self.data_left == 0
                    && let Some(pax) = self.pax.take()
                {
                    check_pax(&pax)?;
                }
                continue;
            }
            let take = (512 - self.header_len).min(bytes.len());
            self.header[self.header_len..self.header_len + take].copy_from_slice(&bytes[..take]);
            self.header_len += take;
            bytes = &bytes[take..];
            if self.header_len == 512 {
                self.header_len = 0;
                self.start_entry()?;
            }
        }
        Ok(())
    }

    /// A whole header block has passed: learn how much data follows it.
    fn start_entry(&mut self) -> Result<(), String> {
        let header = self.header;
        if header.iter().all(|b| *b == 0) {
            self.ended = true;
            return Ok(());
        }
        let size = parse_size(&header[124..136]).ok_or("has a header with an unreadable size")?;
        let padded = size.div_ceil(BLOCK) * BLOCK;
        match header[156] {
            b'L' | b'K' | b'x' | b'g' if size > MAX_META => {
                return Err(format!(
                    "has a long-name or pax header of {size} bytes (at most {MAX_META})"
                ));
            }
            b'x' | b'g' => self.pax = Some(Vec::with_capacity(usize::try_from(size).unwrap_or(0))),
            _ => {}
        }
        self.data_left = padded;
        if self.pax.is_some() && padded == 0 {
            self.pax = None;
        }
        Ok(())
    }
}

impl<R: Read> Read for Framing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(problem) = self.problem.borrow().clone() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, problem));
        }
        let n = self.inner.read(buf)?;
        match self.observe(&buf[..n]) {
            Ok(()) => Ok(n),
            Err(problem) => Err(self.fail(problem)),
        }
    }
}

/// Pax keys that change what an entry is in ways swpush does not follow.
fn check_pax(records: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(records);
    for record in text.split('\n') {
        // `LENGTH KEY=VALUE`
        let key = record
            .split_once(' ')
            .and_then(|(_, kv)| kv.split_once('='))
            .map(|(k, _)| k);
        match key {
            Some(k) if k.starts_with("GNU.sparse") => {
                return Err("has a pax sparse file; packages hold plain files".into());
            }
            Some("size") => {
                return Err(
                    "has a pax size override (entries over 8 GiB are not supported)".into(),
                );
            }
            _ => {}
        }
    }
    Ok(())
}

/// A tar size field: octal text, or GNU base-256 when the high bit is set.
fn parse_size(field: &[u8]) -> Option<u64> {
    if field[0] & 0x80 != 0 {
        let mut value: u64 = u64::from(field[0] & 0x7f);
        for byte in &field[1..] {
            value = value.checked_mul(256)?.checked_add(u64::from(*byte))?;
        }
        return Some(value);
    }
    let text = std::str::from_utf8(field).ok()?;
    let text = text.trim_matches(|c: char| c == '\0' || c == ' ');
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size(b"00000001750\0"), Some(1000));
        assert_eq!(parse_size(b"           \0"), Some(0));
        let mut big = [0u8; 12];
        big[0] = 0x80;
        big[11] = 5;
        assert_eq!(parse_size(&big), Some(5));
        assert_eq!(parse_size(b"12x45678901\0"), None);
    }

    #[test]
    fn pax_keys() {
        assert!(check_pax(b"30 path=bin/hello\n").is_ok());
        assert!(check_pax(b"27 GNU.sparse.major=1\n").is_err());
        assert!(check_pax(b"16 size=123456\n").is_err());
    }
}
