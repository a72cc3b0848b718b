//! How text output is drawn for where it goes (SPEC §7): ASCII when the
//! locale is not UTF-8 (`->` for `→`, `-` for `—`), UTF-8 otherwise; status
//! words in colour on a terminal unless `NO_COLOR` is set (failed, rejected,
//! unreachable red; busy, timeout yellow; success green). Decided once from the
//! environment ([`crate::run::Env`]); the text report and the live display
//! draw with the [`Look`] they are given. JSON is data, not drawing: it
//! is never changed here.

use std::borrow::Cow;
use std::fmt::Write as _;

use crate::outcome::Status;

/// How text output looks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Look {
    /// Only ASCII characters: the locale is not UTF-8.
    pub ascii: bool,
    /// Status words in colour: stdout is a terminal and `NO_COLOR` is not set.
    pub colour: bool,
}

impl Look {
    /// UTF-8 without colour, as a test or a file gets it.
    pub const PLAIN: Look = Look {
        ascii: false,
        colour: false,
    };

    /// Colour for output to a terminal, unless `NO_COLOR` has a value
    /// (no-color.org: set and not empty).
    pub fn with_colour(self, terminal: bool, no_color: Option<&str>) -> Look {
        Look {
            colour: terminal && no_color.is_none_or(str::is_empty),
            ..self
        }
    }

    /// `word` (a status as the report shows it: `failed`, `would install`)
    /// in `status`'s colour, when this look has colour. The escapes go
    /// around the word only, after it was made terminal-safe and measured.
    pub fn paint(self, status: Status, word: &str) -> Cow<'_, str> {
        match colour_of(status).filter(|_| self.colour) {
            Some(sgr) => Cow::Owned(format!("\x1b[{sgr}m{word}\x1b[0m")),
            None => Cow::Borrowed(word),
        }
    }

    /// The look for the locale `LC_ALL`, `LC_CTYPE` and `LANG` say, as
    /// the C library reads them: the first one set and not empty wins.
    pub fn for_locale(lc_all: Option<&str>, lc_ctype: Option<&str>, lang: Option<&str>) -> Look {
        let locale = [lc_all, lc_ctype, lang]
            .into_iter()
            .flatten()
            .find(|v| !v.is_empty());
        Look {
            ascii: !locale.is_some_and(is_utf8_locale),
            colour: false,
        }
    }

    /// `text` as this look draws it: unchanged in UTF-8; in ASCII with
    /// the report's own marks spelled in ASCII and any other character
    /// past ASCII (a client's or a file's) as an escape, `\u{e9}`, in the
    /// form [`terminal_safe`](crate::untrusted::terminal_safe) uses.
    /// Called on text already terminal-safe, before it is laid out in
    /// columns (the columns count what is drawn).
    pub fn text<'a>(self, text: impl Into<Cow<'a, str>>) -> Cow<'a, str> {
        let text = text.into();
        if !self.ascii || text.is_ascii() {
            return text;
        }
        let mut out = String::with_capacity(text.len() + 8);
        for c in text.chars() {
            match c {
                c if c.is_ascii() => out.push(c),
                '→' => out.push_str("->"),
                '—' | '–' => out.push('-'),
                '…' => out.push_str("..."),
                c => {
                    let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
                }
            }
        }
        Cow::Owned(out)
    }
}

/// The SGR colour of `status`: red for what failed, yellow for what may
/// pass on a later run, green for done; none for skipped and not-attempted.
/// Plain SGR codes, not a crate: three colours and a reset are all it takes.
fn colour_of(status: Status) -> Option<&'static str> {
    match status {
        Status::Failed | Status::Rejected | Status::Unreachable => Some("31"),
        Status::Busy | Status::Timeout => Some("33"),
        status if status.succeeded() => Some("32"),
        _ => None,
    }
}

/// `C.UTF-8`, `en_US.utf8`, `de_DE.UTF-8@euro`: the names of UTF-8 locales.
fn is_utf8_locale(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.contains("utf-8") || name.contains("utf8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_locale_says_utf_8_or_not() {
        let ascii = |all, ctype, lang| Look::for_locale(all, ctype, lang).ascii;
        assert!(!ascii(Some("C.UTF-8"), None, None));
        assert!(!ascii(None, Some("en_US.utf8"), None));
        assert!(!ascii(None, None, Some("de_DE.Utf-8@euro")));
        assert!(ascii(None, None, None));
        assert!(ascii(Some("C"), None, None));
        assert!(ascii(Some("POSIX"), None, Some("C.UTF-8")), "LC_ALL wins");
        assert!(!ascii(None, Some("C.UTF-8"), Some("C")), "then LC_CTYPE");
        assert!(ascii(None, Some("en_US.ISO-8859-1"), Some("C.UTF-8")));
        assert!(
            !ascii(Some(""), Some(""), Some("C.UTF-8")),
            "empty is unset"
        );
    }

    #[test]
    fn ascii_spells_the_marks_and_escapes_the_rest() {
        let ascii = Look {
            ascii: true,
            ..Look::PLAIN
        };
        assert_eq!(ascii.text("1.0 → 1.2"), "1.0 -> 1.2");
        assert_eq!(ascii.text("Not done — hello"), "Not done - hello");
        assert_eq!(ascii.text("cut…"), "cut...");
        assert_eq!(ascii.text("café 日"), r"caf\u{e9} \u{65e5}");
        assert!(matches!(ascii.text("plain"), Cow::Borrowed("plain")));
        assert_eq!(Look::PLAIN.text("1.0 → 1.2 café"), "1.0 → 1.2 café");
    }

    #[test]
    fn colour_on_a_terminal_unless_no_color() {
        let on = Look::PLAIN.with_colour(true, None);
        assert!(on.colour);
        assert!(
            Look::PLAIN.with_colour(true, Some("")).colour,
            "empty is unset"
        );
        assert!(!Look::PLAIN.with_colour(true, Some("1")).colour);
        assert!(!Look::PLAIN.with_colour(false, None).colour);
        for (status, word, painted) in [
            (Status::Failed, "failed", "\x1b[31mfailed\x1b[0m"),
            (
                Status::Unreachable,
                "unreachable",
                "\x1b[31munreachable\x1b[0m",
            ),
            (Status::Rejected, "rejected", "\x1b[31mrejected\x1b[0m"),
            (Status::Busy, "busy", "\x1b[33mbusy\x1b[0m"),
            (Status::Timeout, "timeout", "\x1b[33mtimeout\x1b[0m"),
            (
                Status::Installed,
                "would install",
                "\x1b[32mwould install\x1b[0m",
            ),
            (Status::Skipped, "skipped", "skipped"),
            (Status::NotAttempted, "not-attempted", "not-attempted"),
        ] {
            assert_eq!(on.paint(status, word), painted, "{status}");
        }
        assert_eq!(Look::PLAIN.paint(Status::Failed, "failed"), "failed");
    }
}
