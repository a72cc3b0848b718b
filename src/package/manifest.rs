//! `swpush.yaml`, the manifest at the root of every package (SPEC §4).

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use super::entries::normalize_name;
use crate::health::{self, HealthSpec};
use crate::version::Version;
use crate::yaml;

/// The manifest's file name at the package root.
pub const MANIFEST: &str = "swpush.yaml";

/// Largest manifest read; a real one is a few hundred bytes.
pub const MAX_MANIFEST_BYTES: u64 = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Manifest {
    pub name: String,
    pub version: Version,
    pub description: Option<String>,
    pub hooks: Hooks,
    /// `health_check`, `health_interval`, `health_timeout` (src/health.rs).
    pub health: HealthSpec,
}

/// Hook scripts, as normalised paths inside the package.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Hooks {
    pub pre_install: Option<String>,
    pub post_install: Option<String>,
    pub pre_remove: Option<String>,
}

impl Hooks {
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("pre_install", &self.pre_install),
            ("post_install", &self.post_install),
            ("pre_remove", &self.pre_remove),
        ]
        .into_iter()
        .filter_map(|(key, path)| path.as_deref().map(|p| (key, p)))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestYaml {
    name: Spanned<String>,
    version: Spanned<String>,
    description: Option<String>,
    #[serde(default)]
    hooks: Option<HooksYaml>,
    health_check: Option<Spanned<String>>,
    health_interval: Option<Spanned<u64>>,
    health_timeout: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HooksYaml {
    pre_install: Option<Spanned<String>>,
    post_install: Option<Spanned<String>>,
    pre_remove: Option<Spanned<String>>,
}

/// Parses and checks the manifest; `Err` is a one-line reason starting
/// with `swpush.yaml:LINE:COL:` where the position is known.
pub fn parse(text: &str) -> Result<Manifest, String> {
    let located = |(line, column): (u64, u64), message: &str| {
        format!("{MANIFEST}:{line}:{column}: {message}")
    };
    let raw: ManifestYaml = yaml::from_str(text, MAX_MANIFEST_BYTES).map_err(|e| match e.at {
        Some(at) => located(at, &e.message),
        None => format!("{MANIFEST}: {}", e.message),
    })?;
    if !valid_name(&raw.name.value) {
        return Err(located(
            yaml::position(&raw.name.referenced),
            &format!(
                "name `{}` must match [a-z0-9][a-z0-9._+-]{{0,63}}",
                raw.name.value
            ),
        ));
    }
    let version = Version::parse(&raw.version.value)
        .map_err(|e| located(yaml::position(&raw.version.referenced), &e.to_string()))?;
    let mut hooks = Hooks::default();
    if let Some(raw_hooks) = raw.hooks {
        for (slot, key, value) in [
            (&mut hooks.pre_install, "pre_install", raw_hooks.pre_install),
            (
                &mut hooks.post_install,
                "post_install",
                raw_hooks.post_install,
            ),
            (&mut hooks.pre_remove, "pre_remove", raw_hooks.pre_remove),
        ] {
            if let Some(value) = value {
                let at = yaml::position(&value.referenced);
                let path = match normalize_name(value.value.as_bytes()) {
                    Ok(Some(path)) => path,
                    Ok(None) => return Err(located(at, &format!("hook `{key}` names no file"))),
                    Err(reason) => {
                        return Err(located(at, &format!("hook `{key}` path {reason}")));
                    }
                };
                *slot = Some(path);
            }
        }
    }
    if let Some(check) = &raw.health_check {
        health::check_command(&check.value).map_err(|why| {
            located(
                yaml::position(&check.referenced),
                &format!("`health_check` {why}"),
            )
        })?;
        if check.value.trim().is_empty() {
            return Err(located(
                yaml::position(&check.referenced),
                "`health_check` is empty (leave it out for none)",
            ));
        }
    }
    for (key, value) in [
        ("health_interval", &raw.health_interval),
        ("health_timeout", &raw.health_timeout),
    ] {
        if let Some(value) = value {
            health::check_seconds(key, value.value)
                .map_err(|why| located(yaml::position(&value.referenced), &why))?;
        }
    }
    Ok(Manifest {
        name: raw.name.value,
        version,
        description: raw.description,
        hooks,
        health: HealthSpec {
            check: raw.health_check.map(|c| c.value),
            interval: raw.health_interval.map(|v| v.value),
            timeout: raw.health_timeout.map(|v| v.value),
        },
    })
}

/// A package name as the operator gives it (`rollback NAME`, `status
/// NAME`), checked once where it comes in: [`valid_name`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageName(String);

/// What is wrong with a package name given on the command line.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a package name: 1 to 64 of a-z 0-9 . _ + -, starting with a letter or digit")]
pub struct BadName(String);

impl PackageName {
    pub fn parse(name: &str) -> Result<PackageName, BadName> {
        if valid_name(name) {
            Ok(PackageName(name.to_owned()))
        } else {
            Err(BadName(name.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for PackageName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `[a-z0-9][a-z0-9._+-]{0,63}`
pub fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes[1..]
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b".-_+".contains(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_full_manifest() {
        let m = parse(
            "name: hello\nversion: 1.10\ndescription: greets\nhooks:\n  pre_install: hooks/pre.sh\n  post_install: ./hooks/post.sh\n",
        )
        .unwrap();
        assert_eq!(m.name, "hello");
        assert_eq!(
            m.version.as_str(),
            "1.10",
            "a YAML number keeps its spelling"
        );
        assert_eq!(m.hooks.post_install.as_deref(), Some("hooks/post.sh"));
        assert_eq!(m.hooks.iter().count(), 2);
    }

    #[test]
    fn refuses_bad_manifests() {
        let table = [
            ("version: 1\n", "swpush.yaml:1:1: missing field `name`"),
            ("name: hello\n", "swpush.yaml:1:1: missing field `version`"),
            (
                "name: Hello\nversion: 1\n",
                "swpush.yaml:1:7: name `Hello` must match [a-z0-9][a-z0-9._+-]{0,63}",
            ),
            (
                "name: hello\nversion: 1/2\n",
                "swpush.yaml:2:10: version `1/2` must start with a letter or digit and hold only letters, digits and `.` `_` `+` `-`",
            ),
            (
                "name: hello\nversion: 1\nhooks:\n  pre_install: ../x.sh\n",
                "swpush.yaml:4:16: hook `pre_install` path has a `..` component",
            ),
            (
                "name: hello\nversion: 1\nhooks:\n  pre_install: /x.sh\n",
                "swpush.yaml:4:16: hook `pre_install` path is an absolute path",
            ),
            (
                "name: hello\nversion: 1\nhooks:\n  preinstall: x.sh\n",
                "swpush.yaml:4:3: unknown field `preinstall`, expected one of pre_install, post_install, pre_remove",
            ),
            (
                "name: hello\nversion: 1\nowner: me\n",
                "swpush.yaml:3:1: unknown field `owner`, expected one of name, version, description, hooks, health_check, health_interval, health_timeout",
            ),
            (
                "name: [hello\n",
                "swpush.yaml:1:7: `name`: expected string scalar",
            ),
        ];
        for (text, expected) in table {
            assert_eq!(parse(text).unwrap_err(), expected, "{text:?}");
        }
    }

    #[test]
    fn reads_a_health_check() {
        let m = parse(
            "name: hello\nversion: 1\nhealth_check: ./bin/check --port 8080\nhealth_timeout: 60\n",
        )
        .unwrap();
        assert_eq!(m.health.check.as_deref(), Some("./bin/check --port 8080"));
        assert_eq!((m.health.interval, m.health.timeout), (None, Some(60)));
        for (text, expected) in [
            (
                "name: hello\nversion: 1\nhealth_check: \"a\\nb\"\n",
                "swpush.yaml:3:15: `health_check` must be one line, without control characters",
            ),
            (
                "name: hello\nversion: 1\nhealth_check: ''\n",
                "swpush.yaml:3:15: `health_check` is empty (leave it out for none)",
            ),
            (
                "name: hello\nversion: 1\nhealth_interval: 0\n",
                "swpush.yaml:3:18: `health_interval` must be from 1 to 3600 seconds, got 0",
            ),
        ] {
            assert_eq!(parse(text).unwrap_err(), expected, "{text:?}");
        }
    }

    #[test]
    fn names() {
        for good in ["hello", "0ad", "a.b-c_d+e", &"a".repeat(64)] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "Hello", "-x", ".x", "a/b", "a b", &"a".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
