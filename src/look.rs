//! How text output is drawn for where it goes (SPEC §7): ASCII when the
//! locale is not UTF-8 (`->` for `→`, `-` for `—`), UTF-8 otherwise; colour
//! on a terminal unless `NO_COLOR` is set. Decided once from the
//! environment ([`crate::run::Env`]); the text report and the live display
//! draw with the [`Look`] they are given. JSON is data, not drawing: it
//! is never changed here.

use std::borrow::Cow;
use std::fmt::Write as _;

/// How text output looks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Look {
    /// Only ASCII characters: the locale is not UTF-8.
    pub ascii: bool,
}

impl Look {
    /// UTF-8, as a test or a file gets it.
    pub const PLAIN: Look = Look { ascii: false };

    /// The look for the locale `LC_ALL`, `LC_CTYPE` and `LANG` say, as
    /// the C library reads them: the first one set and not empty wins.
    pub fn for_locale(lc_all: Option<&str>, lc_ctype: Option<&str>, lang: Option<&str>) -> Look {
        let locale = [lc_all, lc_ctype, lang]
            .into_iter()
            .flatten()
            .find(|v| !v.is_empty());
        Look {
            ascii: !locale.is_some_and(is_utf8_locale),
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
        let ascii = Look { ascii: true };
        assert_eq!(ascii.text("1.0 → 1.2"), "1.0 -> 1.2");
        assert_eq!(ascii.text("Not done — hello"), "Not done - hello");
        assert_eq!(ascii.text("cut…"), "cut...");
        assert_eq!(ascii.text("café 日"), r"caf\u{e9} \u{65e5}");
        assert!(matches!(ascii.text("plain"), Cow::Borrowed("plain")));
        assert_eq!(Look::PLAIN.text("1.0 → 1.2 café"), "1.0 → 1.2 café");
    }
}
