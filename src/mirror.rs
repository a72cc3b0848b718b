//! Mirror mode (docs/scaling.md): the client fetches the package's bytes
//! over HTTP from a mirror its signed order names, and the controller sends
//! only the order. The order pins the package's size and sha256, so the
//! mirror needs no trust: the client takes at most the signed number of
//! bytes, checks the sha256 and installs exactly what was signed, or
//! nothing.
//!
//! A mirror is a base URL; the package is at `BASE/sha256/HEX` (what
//! `swpush publish` writes), so objects are immutable and any cache in
//! front of the origin may keep them forever.

use serde::{Deserialize, Serialize};

/// Longest mirror base URL: the package URL adds 72 bytes, and the client
/// refuses a URL longer than [`MAX_URL_BYTES`].
pub const MAX_BASE_BYTES: usize = 1024;

/// Longest URL an order may carry (the client's limit too: `check_order`
/// in `src/step/order.sh`).
pub const MAX_URL_BYTES: usize = 4096;

/// Seconds a mirror may send nothing before the client gives that fetch
/// attempt up: `--mirror-timeout`'s default.
pub const DEFAULT_TIMEOUT: u64 = 30;

/// A mirror's base URL, as `--mirror` and the inventory's `mirror` give it:
/// `http://` or `https://`, a host, an optional path; no user or password
/// (every order would carry them), no query or fragment (the package's
/// name is appended), only the characters of RFC 3986 (so the client's
/// shell and `curl` read it as written). A trailing `/` is dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Mirror(String);

/// What RFC 3986 allows in a URL, without `'`, `(`, `)` and `*`, which no
/// mirror base needs (and the client refuses alike).
pub fn is_url_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&+,;=%".contains(&b)
}

impl Mirror {
    pub fn parse(text: &str) -> Result<Mirror, String> {
        let rest = if let Some(rest) = text.strip_prefix("http://") {
            rest
        } else if let Some(rest) = text.strip_prefix("https://") {
            rest
        } else if text.starts_with("s3://") {
            return Err(
                "s3:// mirrors are not supported yet: publish to a directory an \
                 HTTP server serves and give its http(s):// URL"
                    .into(),
            );
        } else {
            return Err("a mirror is an http:// or https:// URL".into());
        };
        if text.len() > MAX_BASE_BYTES {
            return Err(format!("a mirror URL has at most {MAX_BASE_BYTES} bytes"));
        }
        if let Some(b) = text.bytes().find(|b| !is_url_byte(*b)) {
            return Err(if b.is_ascii_graphic() {
                format!("a mirror URL cannot hold `{}`", b as char)
            } else {
                "a mirror URL cannot hold spaces, control or non-ASCII characters \
                 (percent-encode them)"
                    .into()
            });
        }
        if text.contains(['?', '#']) {
            return Err("a mirror URL is a base: no query (`?`) or fragment (`#`)".into());
        }
        let authority = rest.split('/').next().unwrap_or("");
        if authority.contains('@') {
            return Err("a mirror URL cannot carry a user or password: every order \
                 would show it (serve the mirror to the clients' network instead)"
                .into());
        }
        if authority.is_empty() || authority.starts_with(':') {
            return Err("a mirror URL names no host".into());
        }
        Ok(Mirror(text.trim_end_matches('/').to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Where the package with this sha256 is on the mirror.
    pub fn package_url(&self, sha256: &str) -> String {
        format!("{}/sha256/{sha256}", self.0)
    }
}

impl std::fmt::Display for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a run of `install` or `upgrade` uses mirrors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorPlan {
    /// `--mirror`: for hosts whose inventory names no mirror of their own.
    pub default: Option<Mirror>,
    /// `--no-mirror`: every host is sent the package over SSH.
    pub off: bool,
    /// `--mirror-fallback`: a host whose fetch failed asks the controller.
    pub fallback: bool,
    /// `--mirror-timeout`: seconds without a byte before an attempt is given up.
    pub timeout: u64,
}

impl Default for MirrorPlan {
    fn default() -> Self {
        MirrorPlan {
            default: None,
            off: false,
            fallback: false,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl MirrorPlan {
    /// The URL a host with `own` (its inventory's `mirror`) fetches the
    /// package `sha256` from; `None`: the controller sends it.
    pub fn url_for(&self, own: Option<&Mirror>, sha256: &str) -> Option<String> {
        if self.off {
            return None;
        }
        own.or(self.default.as_ref())
            .map(|mirror| mirror.package_url(sha256))
    }
}

/// Where a host's package bytes came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Sent by the controller over SSH (`bytes_sent` says how many).
    Controller,
    /// Fetched from the mirror URL of the order.
    Mirror,
    /// Already in the host's cache: nothing moved.
    Cache,
}

/// What a host's order said about a mirror and what came of it: the URL,
/// the tool the client fetched with, and why the fetch failed when it did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fetch {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mirror_is_an_http_base_url() {
        for (text, base) in [
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            (
                "https://cdn.example.com/swpush/",
                "https://cdn.example.com/swpush",
            ),
            ("http://[::1]:80/a/b", "http://[::1]:80/a/b"),
            (
                "http://cache.site-1.example/pkgs%20x",
                "http://cache.site-1.example/pkgs%20x",
            ),
        ] {
            assert_eq!(Mirror::parse(text).unwrap().as_str(), base, "{text}");
        }
        let mirror = Mirror::parse("http://m.example/p/").unwrap();
        assert_eq!(
            mirror.package_url(&"ab".repeat(32)),
            format!("http://m.example/p/sha256/{}", "ab".repeat(32))
        );
    }

    #[test]
    fn anything_else_is_refused_saying_why() {
        for (text, why) in [
            ("ftp://m.example/", "http:// or https://"),
            ("m.example", "http:// or https://"),
            ("HTTP://m.example", "http:// or https://"),
            ("s3://bucket/prefix", "not supported yet"),
            ("http://user:secret@m.example/", "user or password"),
            ("http://m.example/?x=1", "no query"),
            ("http://m.example/#top", "fragment"),
            ("http://m.example/a b", "spaces"),
            ("http://m.example/a\nb", "control"),
            ("http://m.example/'$(reboot)'", "cannot hold `'`"),
            ("http://m.example/\"", "cannot hold `\"`"),
            ("http:///path", "no host"),
            ("http://", "no host"),
            ("http://:80/", "no host"),
        ] {
            let error = Mirror::parse(text).unwrap_err();
            assert!(error.contains(why), "{text:?}: {error}");
        }
        assert!(Mirror::parse(&format!("http://m.example/{}", "a".repeat(1100))).is_err());
    }

    #[test]
    fn a_hosts_own_mirror_wins_and_no_mirror_turns_every_one_off() {
        let origin = Mirror::parse("http://origin.example").unwrap();
        let site = Mirror::parse("http://cache.site1.example").unwrap();
        let plan = MirrorPlan {
            default: Some(origin),
            ..MirrorPlan::default()
        };
        assert_eq!(
            plan.url_for(None, "00").as_deref(),
            Some("http://origin.example/sha256/00")
        );
        assert_eq!(
            plan.url_for(Some(&site), "00").as_deref(),
            Some("http://cache.site1.example/sha256/00")
        );
        let off = MirrorPlan { off: true, ..plan };
        assert_eq!(off.url_for(Some(&site), "00"), None);
        assert_eq!(MirrorPlan::default().url_for(None, "00"), None);
    }
}
