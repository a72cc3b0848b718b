//! YAML reading shared by the inventory and the package manifest.
//!
//! Uses `serde-saphyr` (maintained, panic-free, reports line and column,
//! bounds alias expansion) instead of the deprecated `serde_yaml`. Duplicate
//! keys are errors and the input is bounded, so a hostile file cannot make
//! swpush loop or exhaust memory. Errors come back as one short line plus a
//! position, for the caller to prefix with its file name.

use serde_saphyr::Location;

/// A YAML mistake: a one-line message and, when known, `(line, column)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub at: Option<(u64, u64)>,
    pub message: String,
}

/// Parses `text` into `T`, refusing input over `max_bytes`.
pub fn from_str<T: serde::de::DeserializeOwned>(
    text: &str,
    max_bytes: u64,
) -> Result<T, YamlError> {
    let budget = serde_saphyr::budget! {
        max_reader_input_bytes: Some(usize::try_from(max_bytes).unwrap_or(usize::MAX)),
        max_aliases: 10_000,
        max_nodes: 200_000,
    };
    let options = serde_saphyr::options! {
        budget: budget,
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
    };
    serde_saphyr::from_str_with_options(text, options).map_err(|e| describe(text, &e))
}

/// The position of a parsed value, as `(line, column)`.
pub fn position(location: &Location) -> (u64, u64) {
    (location.line(), location.column())
}

/// Turns a parser error into one line naming the key where it can.
fn describe(text: &str, error: &serde_saphyr::Error) -> YamlError {
    let rendered = error.render_with_options(serde_saphyr::render_options! {
        snippets: serde_saphyr::SnippetMode::Off,
    });
    let mut message = rendered.lines().next().unwrap_or("invalid YAML").to_owned();
    let location = error.location().filter(|l| l.line() > 0);
    if let Some(location) = &location {
        let suffix = format!(" at line {}, column {}", location.line(), location.column());
        if let Some(stripped) = message.strip_suffix(&suffix) {
            message = stripped.to_owned();
        }
    }
    message = friendlier(&message);
    if let Some(location) = &location
        && message.starts_with("expected")
        && let Some(key) = key_before(text, location)
    {
        message = format!("`{key}`: {message}");
    }
    YamlError {
        at: location.as_ref().map(position),
        message,
    }
}

/// Rewrites the parser's terse type errors into what the operator must write.
fn friendlier(message: &str) -> String {
    let table = [
        ("invalid u16", "expected a whole number from 0 to 65535"),
        ("invalid u32", "expected a whole number"),
        ("invalid u64", "expected a whole number"),
        ("invalid boolean", "expected true or false"),
    ];
    if let Some((_, better)) = table.iter().find(|(terse, _)| message == *terse) {
        return (*better).to_owned();
    }
    if let Some(rest) = message.strip_prefix("duplicate mapping key: ") {
        let key = rest
            .split(", set DuplicateKeyPolicy")
            .next()
            .unwrap_or(rest);
        return format!("`{key}` appears twice");
    }
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        return format!("wrong type: {rest}");
    }
    message.to_owned()
}

/// The mapping key written just before `location` on its line (`port` in
/// `web2: {port: 70000}`), so a value error can name its key.
fn key_before(text: &str, location: &Location) -> Option<String> {
    let line_index = usize::try_from(location.line()).ok()?.checked_sub(1)?;
    let line = text.lines().nth(line_index)?;
    let column = usize::try_from(location.column()).ok()?.saturating_sub(1);
    let before = line.get(..column.min(line.len()))?.trim_end();
    let before = before.strip_suffix(':')?;
    let start = before
        .char_indices()
        .rev()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '_' || *c == '-'))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let key = &before[start..];
    (!key.is_empty()).then(|| key.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        port: Option<u16>,
        name: Option<String>,
    }

    #[test]
    fn errors_are_one_line_with_position_and_key() {
        let table = [
            (
                "port: 70000\n",
                (1, 7),
                "`port`: expected a whole number from 0 to 65535",
            ),
            ("name: a\nname: b\n", (2, 1), "`name` appears twice"),
            (
                "nmae: a\n",
                (1, 1),
                "unknown field `nmae`, expected one of port, name",
            ),
        ];
        for (text, at, message) in table {
            let error = from_str::<Doc>(text, 1024).unwrap_err();
            assert_eq!(error.at, Some(at), "{text:?}");
            assert_eq!(error.message, message, "{text:?}");
        }
    }

    #[test]
    fn alias_bombs_are_bounded() {
        let mut bomb = String::from("a: &a [x,x,x,x,x,x,x,x,x,x]\n");
        for (prev, next) in ["a", "b", "c", "d", "e", "f", "g", "h"]
            .windows(2)
            .map(|w| (w[0], w[1]))
        {
            bomb.push_str(&format!(
                "{next}: &{next} [{}]\n",
                vec![format!("*{prev}"); 10].join(",")
            ));
        }
        let error =
            from_str::<std::collections::BTreeMap<String, serde::de::IgnoredAny>>(&bomb, 1 << 20);
        assert!(error.is_err(), "a billion-laughs document must be refused");
    }
}
