//! Text that a client or a file sent, on its way to the operator: kept
//! bounded ([`bound`]) and shown safely ([`terminal_safe`] for a terminal,
//! [`json_safe`] for JSON). Every path from client or file text to a
//! terminal goes through [`terminal_safe`]; nothing else decides which
//! characters are safe to print.
//!
//! A compromised client may answer with anything: an escape sequence that
//! sets the window title or moves the cursor, a carriage return that
//! overwrites another host's row, a bidi override that makes `failed` read
//! as something else, zero-width characters that make two names look
//! alike, a line separator that starts a fake row. Such characters are
//! shown as Rust escapes (`\u{1b}`, `\u{202e}`, a carriage return
//! `\u{d}`), so an operator sees that something was sent and what; only
//! newlines and tabs become spaces, so a multi-line message stays on its
//! row and reads as it was written.

use std::borrow::Cow;

/// Most bytes kept of a message from a client (a hook's output, an
/// error): room for the step's longest message (two hook tails of 300
/// bytes and their words), not for a flood.
pub const MAX_MESSAGE: usize = 1024;

/// Most bytes kept of one field from a client: a version, a package
/// name, a checksum, a date.
pub const MAX_FIELD: usize = 256;

/// Most bytes of one error line: a located inventory or package error and
/// the value it quotes, cut where a file quoted too much of itself.
pub const MAX_ERROR_LINE: usize = 2048;

/// What ends text that [`bound`] cut.
pub const CUT: &str = "…";

/// Error text on one line, whatever a library put in it: every run of
/// whitespace (newlines included) becomes one space.
pub fn one_line(text: impl std::fmt::Display) -> String {
    text.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// `text` if it has at most `max` bytes; otherwise as much of it as fits
/// in `max` bytes with [`CUT`] at the end, cut at a character boundary.
pub fn bound(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let mut end = max.saturating_sub(CUT.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}{CUT}", &text[..end]))
}

/// [`bound`] for text already owned.
pub fn bound_owned(text: String, max: usize) -> String {
    match bound(&text, max) {
        Cow::Borrowed(_) => text,
        Cow::Owned(cut) => cut,
    }
}

/// Characters that must not reach a terminal as they are: controls (C0,
/// DEL, C1), line and paragraph separators, bidi embeddings, overrides
/// and isolates, and the invisible format characters (zero-width spaces
/// and joiners, word joiners, byte-order marks, invisible operators,
/// interlinear annotations, tags, Hangul fillers).
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00ad}'
                | '\u{034f}'
                | '\u{061c}'
                | '\u{115f}'
                | '\u{1160}'
                | '\u{17b4}'
                | '\u{17b5}'
                | '\u{180b}'..='\u{180f}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{206f}'
                | '\u{3164}'
                | '\u{fe00}'..='\u{fe0f}'
                | '\u{feff}'
                | '\u{ffa0}'
                | '\u{fff0}'..='\u{fffb}'
                | '\u{1bca0}'..='\u{1bca3}'
                | '\u{1d173}'..='\u{1d17a}'
                | '\u{e0000}'..='\u{e0fff}'
        )
}

/// Text from a client or a file as it may be printed on a terminal, on
/// one line: newlines and tabs become spaces (and the ends are trimmed),
/// every other [unsafe](is_unsafe) character is shown as its escape,
/// `\u{1b}`. Text with nothing to change is returned as it is.
pub fn terminal_safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\t' | '\n' => out.push(' '),
            c if is_unsafe(c) => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    Cow::Owned(out.trim().to_owned())
}

/// `json` with every [unsafe](is_unsafe) character serde_json leaves raw
/// (DEL, C1 and the format characters; it escapes C0 itself) written as a
/// JSON `\uXXXX` escape: the same JSON value for a program, nothing
/// a terminal acts on for someone who prints it. Such characters only occur
/// inside strings, where an escape means the same character.
pub fn json_safe(json: String) -> String {
    if !json.chars().any(|c| c >= '\u{7f}' && is_unsafe(c)) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 32);
    for c in json.chars() {
        if c >= '\u{7f}' && is_unsafe(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_cuts_at_a_character_boundary_and_says_so() {
        assert_eq!(bound("hello", 5), "hello");
        assert_eq!(bound("hello!", 5), "he…");
        assert_eq!(bound("ééé", 5), "é…");
        assert_eq!(bound("ééé", 4), "…", "é is 2 bytes: none fits beside …");
        assert_eq!(bound("abc", 0), "…");
        let huge = "x".repeat(70_000);
        let cut = bound(&huge, MAX_MESSAGE);
        assert_eq!(cut.len(), MAX_MESSAGE);
        assert!(cut.ends_with(CUT));
        assert_eq!(bound_owned("ok".into(), 2), "ok");
        assert_eq!(bound_owned("okay".into(), 3), "…");
    }

    #[test]
    fn terminal_safe_escapes_what_a_terminal_would_act_on() {
        let table = [
            ("plain text, é ü 日本", "plain text, é ü 日本"),
            ("a\nb\tc", "a b c"),
            ("row\rother row\x0b\x0c", r"row\u{d}other row\u{b}\u{c}"),
            ("\x1b]0;pwned\x07", r"\u{1b}]0;pwned\u{7}"),
            ("\x1b[2J\x7f\u{9b}", r"\u{1b}[2J\u{7f}\u{9b}"),
            (
                "ab\u{202e}cd\u{202a}\u{202c}",
                r"ab\u{202e}cd\u{202a}\u{202c}",
            ),
            ("\u{2066}x\u{2069}", r"\u{2066}x\u{2069}"),
            (
                "w\u{200b}e\u{200d}b\u{feff}\u{2060}",
                r"w\u{200b}e\u{200d}b\u{feff}\u{2060}",
            ),
            ("row\u{2028}fake\u{2029}", r"row\u{2028}fake\u{2029}"),
            ("tag\u{e0041}", r"tag\u{e0041}"),
            ("  \n", ""),
        ];
        for (raw, shown) in table {
            assert_eq!(terminal_safe(raw), shown, "{raw:?}");
            assert_eq!(
                terminal_safe(shown),
                shown,
                "applying it twice changes nothing"
            );
        }
        assert!(matches!(terminal_safe("web1"), Cow::Borrowed(_)));
    }

    #[test]
    fn json_safe_keeps_the_value_and_escapes_the_bytes() {
        let raw = "t\x1b]0;x\x07\r\u{7f}\u{85}\u{202e}\u{200b}\u{2028}\u{feff}\u{e0041}é";
        let json = json_safe(serde_json::to_string_pretty(&serde_json::json!({"m": raw})).unwrap());
        assert!(!json.chars().any(|c| is_unsafe(c) && c != '\n'), "{json}");
        assert!(
            json.contains(r"\u202e") && json.contains(r"\udb40\udc41"),
            "{json}"
        );
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["m"], raw);
    }
}
