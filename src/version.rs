//! Package versions and their order.
//!
//! A version is compared segment by segment (segments split on `.`), numbers
//! as numbers, so `1.10 > 1.9`. A pre-release, the part after the first `-`,
//! sorts before the release it precedes: `1.9-rc1 < 1.9`. The full rule, with
//! examples, is in `docs/versions.md`. The client step applies the same rule
//! (`src/step/version.sh`, cross-checked below) to enforce the signed
//! upgrade policy itself.

use std::cmp::Ordering;
use std::fmt;

/// Most characters a version may have: it becomes a directory name on clients.
const MAX_LEN: usize = 64;

/// A validated package version, e.g. `1.2.0` or `2.0-rc1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Version(String);

/// Why a string is not a version.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VersionError {
    #[error("version is empty")]
    Empty,
    #[error("version `{0}` is longer than {MAX_LEN} characters")]
    TooLong(String),
    #[error(
        "version `{0}` must start with a letter or digit and hold only letters, digits and `.` `_` `+` `-`"
    )]
    BadCharacters(String),
}

impl Version {
    pub fn parse(text: &str) -> Result<Self, VersionError> {
        if text.is_empty() {
            return Err(VersionError::Empty);
        }
        if text.len() > MAX_LEN {
            return Err(VersionError::TooLong(text.to_owned()));
        }
        let mut chars = text.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
        let rest_ok =
            chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-'));
        if !first_ok || !rest_ok {
            return Err(VersionError::BadCharacters(text.to_owned()));
        }
        Ok(Version(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The release part and the optional pre-release part (`1.9-rc1` → `1.9`, `rc1`).
    fn split(&self) -> (&str, Option<&str>) {
        match self.0.split_once('-') {
            Some((release, pre)) => (release, Some(pre)),
            None => (&self.0, None),
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let (release_a, pre_a) = self.split();
        let (release_b, pre_b) = other.split();
        compare_dotted(release_a, release_b)
            .then_with(|| match (pre_a, pre_b) {
                (None, None) => Ordering::Equal,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(a), Some(b)) => compare_dotted(a, b),
            })
            // Equal by the rule but spelled differently (`1.01` and `1.1`):
            // order by spelling so that the order agrees with equality.
            .then_with(|| self.0.cmp(&other.0))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Compares `.`-separated segments; a missing segment counts as `0`.
fn compare_dotted(a: &str, b: &str) -> Ordering {
    let mut left = a.split('.');
    let mut right = b.split('.');
    loop {
        match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (l, r) => {
                let order = compare_segment(l.unwrap_or("0"), r.unwrap_or("0"));
                if order != Ordering::Equal {
                    return order;
                }
            }
        }
    }
}

/// Compares one segment as alternating runs of digits and non-digits:
/// digit runs as numbers, other runs as text; a number sorts after text.
fn compare_segment(a: &str, b: &str) -> Ordering {
    let mut left = runs(a);
    let mut right = runs(b);
    loop {
        let order = match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(l), Some(r)) => compare_run(l, r),
        };
        if order != Ordering::Equal {
            return order;
        }
    }
}

fn compare_run(a: &str, b: &str) -> Ordering {
    let numeric = |s: &str| s.starts_with(|c: char| c.is_ascii_digit());
    match (numeric(a), numeric(b)) {
        (true, true) => {
            // Compare digit strings as numbers of any length, without overflow.
            let a = a.trim_start_matches('0');
            let b = b.trim_start_matches('0');
            a.len().cmp(&b.len()).then_with(|| a.cmp(b))
        }
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => a.cmp(b),
    }
}

/// Splits `rc10b` into `rc`, `10`, `b`.
fn runs(segment: &str) -> impl Iterator<Item = &str> {
    let mut rest = segment;
    std::iter::from_fn(move || {
        let first = rest.chars().next()?;
        let digit = first.is_ascii_digit();
        let end = rest
            .find(|c: char| c.is_ascii_digit() != digit)
            .unwrap_or(rest.len());
        let (run, tail) = rest.split_at(end);
        rest = tail;
        Some(run)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    #[test]
    fn orders_versions() {
        // Each pair: left < right.
        let table = [
            ("1.9", "1.10"),
            ("1.9-rc1", "1.9"),
            ("1.9-rc1", "1.9-rc2"),
            ("1.9-rc9", "1.9-rc10"),
            ("1.9-alpha", "1.9-beta"),
            ("1.9-beta", "1.9-rc1"),
            ("1.2", "1.2.1"),
            ("1.2.9", "1.3"),
            ("0.9", "1.0"),
            ("2", "10"),
            ("1.0", "1.0.0"),
            ("1.01", "1.1"),
            ("1.a", "1.0"),
            ("1.9a", "1.10"),
            ("1.2.0-rc1", "1.2.0"),
            ("99999999999999999999998", "99999999999999999999999"),
            ("2024.01.15", "2024.1.16"),
        ];
        for (low, high) in table {
            assert!(v(low) < v(high), "{low} < {high}");
            assert!(v(high) > v(low), "{high} > {low}");
        }
    }

    #[test]
    fn equal_only_when_spelled_the_same() {
        assert_eq!(v("1.2.0").cmp(&v("1.2.0")), Ordering::Equal);
        assert_ne!(v("1.0").cmp(&v("1.0.0")), Ordering::Equal);
    }

    /// The client's `version_cmp` (src/step/version.sh) orders every pair as
    /// this module does, under dash and busybox ash (mawk and busybox awk).
    #[test]
    fn the_client_orders_versions_the_same_way() {
        let versions = [
            "1",
            "1.0",
            "1.0.0",
            "1.01",
            "1.1",
            "1.2",
            "1.2.1",
            "1.9",
            "1.9-rc1",
            "1.9-rc2",
            "1.9-rc10",
            "1.9-alpha",
            "1.9a",
            "1.10",
            "1.a",
            "2",
            "10",
            "2024.01.15",
            "2024.1.16",
            "1.0-",
            "1.2.0+build.5",
            "99999999999999999999998",
            "99999999999999999999999",
            "0.9",
        ];
        let mut pairs = String::new();
        let mut expected = String::new();
        for a in versions {
            for b in versions {
                pairs.push_str(&format!("{a} {b}\n"));
                expected.push(match v(a).cmp(&v(b)) {
                    Ordering::Less => '<',
                    Ordering::Equal => '=',
                    Ordering::Greater => '>',
                });
                expected.push('\n');
            }
        }
        let script = concat!(
            include_str!("step/version.sh"),
            "while read -r a b; do version_cmp \"$a\" \"$b\"; done\n"
        );
        for shell in &crate::step::shells::SHELLS {
            let got = shell.run(&[], script, &[], &pairs).stdout;
            for ((pair, want), got) in pairs.lines().zip(expected.lines()).zip(got.lines()) {
                assert_eq!(got, want, "{pair} under {}", shell.name);
            }
            assert_eq!(
                got.lines().count(),
                versions.len() * versions.len(),
                "{}",
                shell.name
            );
        }
    }

    #[test]
    fn refuses_bad_versions() {
        let table = [
            ("", VersionError::Empty),
            ("..", VersionError::BadCharacters("..".into())),
            (".1", VersionError::BadCharacters(".1".into())),
            ("1/2", VersionError::BadCharacters("1/2".into())),
            ("1 2", VersionError::BadCharacters("1 2".into())),
            ("-1", VersionError::BadCharacters("-1".into())),
            ("1\n", VersionError::BadCharacters("1\n".into())),
        ];
        for (text, error) in table {
            assert_eq!(Version::parse(text), Err(error), "{text:?}");
        }
        assert!(matches!(
            Version::parse(&"1".repeat(65)),
            Err(VersionError::TooLong(_))
        ));
        assert!(Version::parse("1.2.0+build.5_x").is_ok());
    }
}
