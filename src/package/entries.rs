//! What a package may contain: the entry policy shared by `pack`, by the
//! controller's check before connecting, and (in shell) by the client step.
//!
//! A package holds only regular files, directories and relative symlinks
//! that stay inside the release. Names are UTF-8 without control characters
//! or ` -> ` (which would make `tar -tv` listings ambiguous), never absolute,
//! never with `..`. A symlink target may climb with `..` only at its start,
//! and not above the package root; no entry may sit below a symlink or a
//! file. Hard links, devices, fifos and sockets are refused. With these
//! rules a lexical check is exact: nothing extracted can land outside the
//! release directory, whatever links the archive holds. The client step
//! (`src/step/check_entries.sh`) applies the same name rules to the bytes
//! its own tar lists, GNU tar's octal escapes decoded, so a name is
//! accepted or refused alike by `pack`, the controller and every client.
//! See docs/package.md.

use std::collections::HashMap;

/// The kinds of entry a package may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
}

/// Collects entries one by one and checks the rules that span several.
#[derive(Debug, Default)]
pub struct EntrySet {
    kinds: HashMap<String, Kind>,
    order: Vec<String>,
}

/// Most entries a package may hold; the check keeps every name in memory.
pub const MAX_ENTRIES: usize = 200_000;

impl EntrySet {
    /// Records one entry under its normalised name; `Err` is the reason to refuse it.
    pub fn add(&mut self, name: &str, kind: Kind) -> Result<(), String> {
        if self.kinds.len() >= MAX_ENTRIES {
            return Err(format!("the package has more than {MAX_ENTRIES} entries"));
        }
        if self.kinds.insert(name.to_owned(), kind).is_some() {
            return Err("appears twice in the archive".into());
        }
        self.order.push(name.to_owned());
        Ok(())
    }

    pub fn kind(&self, name: &str) -> Option<&Kind> {
        self.kinds.get(name)
    }

    /// Checks that no entry lives below a symlink or a file; returns the
    /// offending entry and the reason.
    pub fn check_parents(&self) -> Result<(), (String, String)> {
        for name in &self.order {
            let mut end = 0;
            while let Some(slash) = name[end..].find('/') {
                let parent = &name[..end + slash];
                match self.kinds.get(parent) {
                    Some(Kind::Symlink) => {
                        return Err((name.clone(), format!("lies below the symlink `{parent}`")));
                    }
                    Some(Kind::File) => {
                        return Err((name.clone(), format!("lies below the file `{parent}`")));
                    }
                    _ => {}
                }
                end += slash + 1;
            }
        }
        Ok(())
    }
}

/// Normalises an entry name (`./a//b/` → `a/b`); `Ok(None)` for the root
/// itself (`./`). `Err` is the reason to refuse the name.
pub fn normalize_name(raw: &[u8]) -> Result<Option<String>, String> {
    let name = clean_text(raw)?;
    if name.starts_with('/') {
        return Err("is an absolute path".into());
    }
    if name.starts_with(' ') {
        // `tar -tv` listings pad with spaces: the client could not read it back.
        return Err("starts with a space".into());
    }
    let mut parts = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("has a `..` component".into()),
            _ => parts.push(part),
        }
    }
    Ok((!parts.is_empty()).then(|| parts.join("/")))
}

/// Checks a symlink at `name` (normalised) pointing to `target`.
pub fn check_link_target(name: &str, target: &[u8]) -> Result<(), String> {
    let target = clean_text(target).map_err(|e| format!("symlink target {e}"))?;
    if target.is_empty() {
        return Err("is a symlink with an empty target".into());
    }
    if target.starts_with('/') {
        return Err(format!("is a symlink to the absolute path `{target}`"));
    }
    let mut climbs = 0;
    let mut descended = false;
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." if descended => {
                return Err(format!(
                    "is a symlink to `{target}`: `..` may only stand at the start of a target"
                ));
            }
            ".." => climbs += 1,
            _ => descended = true,
        }
    }
    let depth = name.matches('/').count();
    if climbs > depth {
        return Err(format!("is a symlink to `{target}`, outside the package"));
    }
    Ok(())
}

/// Text that `tar -tv` lists unambiguously: UTF-8, no control characters, no ` -> `.
fn clean_text(raw: &[u8]) -> Result<&str, String> {
    let text = std::str::from_utf8(raw).map_err(|_| "is not UTF-8".to_owned())?;
    if text.chars().any(char::is_control) {
        return Err("contains a control character (newline, tab, escape, ...)".into());
    }
    if text.contains(" -> ") {
        return Err("contains ` -> `".into());
    }
    if text.contains('\\') {
        return Err("contains a backslash".into());
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_and_refuses_names() {
        type Expected<'a> = Result<Option<&'a str>, &'a str>;
        let table: [(&[u8], Expected); 10] = [
            (b"./a//b/", Ok(Some("a/b"))),
            (b"./", Ok(None)),
            (b"bin/hello", Ok(Some("bin/hello"))),
            (b"/etc/passwd", Err("is an absolute path")),
            (b"a/../../x", Err("has a `..` component")),
            (b"..", Err("has a `..` component")),
            (
                b"a\nb",
                Err("contains a control character (newline, tab, escape, ...)"),
            ),
            (b"a -> b", Err("contains ` -> `")),
            (b"\xff", Err("is not UTF-8")),
            (b"a\\b", Err("contains a backslash")),
        ];
        for (raw, expected) in table {
            let got = normalize_name(raw);
            assert_eq!(
                got.as_ref().map(|o| o.as_deref()).map_err(String::as_str),
                expected,
                "{raw:?}"
            );
        }
    }

    #[test]
    fn symlink_targets_stay_inside() {
        let ok = [
            ("a", "b"),
            ("lib/x.so", "x.so.1"),
            ("a/b/c", "../../d"),
            ("a/l", "./b/c"),
        ];
        for (name, target) in ok {
            assert_eq!(
                check_link_target(name, target.as_bytes()),
                Ok(()),
                "{name} -> {target}"
            );
        }
        let refused = [
            ("a", "../x"),
            ("a/b", "../../x"),
            ("a", "/etc"),
            ("a", ""),
            ("a", "b/../../x"),
            ("a/b", "c/.."),
            ("a", "x\ny"),
        ];
        for (name, target) in refused {
            assert!(
                check_link_target(name, target.as_bytes()).is_err(),
                "{name} -> {target}"
            );
        }
    }

    #[test]
    fn entries_below_links_and_files_are_refused() {
        let mut set = EntrySet::default();
        set.add("lnk", Kind::Symlink).unwrap();
        set.add("lnk/pwned", Kind::File).unwrap();
        assert_eq!(
            set.check_parents(),
            Err(("lnk/pwned".into(), "lies below the symlink `lnk`".into()))
        );
        let mut set = EntrySet::default();
        set.add("f", Kind::File).unwrap();
        assert_eq!(
            set.add("f", Kind::Dir),
            Err("appears twice in the archive".into())
        );
    }
}
