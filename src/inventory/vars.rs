//! Host settings as the inventory states them, before defaults, and the
//! plumbing both YAML dialects share: parse options that bound hostile
//! input, and turning parser errors into one `FILE:LINE:COL: ...` line.

use std::path::Path;

use serde_saphyr::{Location, Spanned};

use super::InventoryError;
use crate::untrusted::{bound, is_unsafe, terminal_safe};

/// Longest host or group name, address or user: a DNS name has at most
/// 253 characters, a login name far fewer.
pub const MAX_NAME_BYTES: usize = 255;

/// Longest other text value (a path, a command, a jump host): PATH_MAX.
pub const MAX_VALUE_BYTES: usize = 4096;

/// How an error line quotes a value from the file: the start of it, with
/// nothing a terminal acts on.
pub fn quoted(text: &str) -> String {
    terminal_safe(&bound(text, 64)).into_owned()
}

/// Refuses a text value longer than `max` bytes, at its location.
pub fn check_length(
    source: &Source,
    key: &str,
    value: &Spanned<String>,
    max: usize,
) -> Result<(), InventoryError> {
    let length = value.value.len();
    if length > max {
        return Err(source.error_at(
            &value.referenced,
            &format!(
                "{key} `{}` is longer than {max} bytes ({length})",
                quoted(&value.value)
            ),
        ));
    }
    Ok(())
}

/// Settings an inventory may give a host, each unset until some layer sets it.
/// Layers apply in order with [`Vars::overlay`]; the last one to set a field wins.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Vars {
    pub address: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub identity_file: Option<String>,
    pub become_root: Option<bool>,
    pub proxy_jump: Option<String>,
    pub busy_check: Option<String>,
    pub busy_wait: Option<u64>,
    pub busy_retries: Option<u32>,
    /// `health_check` (`""`: none, over the package's), `health_interval`,
    /// `health_timeout`, `confirm_timeout` (src/health.rs).
    pub health_check: Option<String>,
    pub health_interval: Option<u64>,
    pub health_timeout: Option<u64>,
    pub confirm_timeout: Option<u64>,
    pub keep_releases: Option<u32>,
    /// `mirror`: the base URL this host fetches packages from (src/mirror.rs).
    pub mirror: Option<crate::mirror::Mirror>,
    pub known_servers: Option<String>,
    pub prefix: Option<String>,
    pub state_dir: Option<String>,
    pub cache_dir: Option<String>,
    /// `ansible_ssh_args`, `ansible_ssh_common_args`, `ansible_ssh_extra_args`:
    /// ssh command-line options, read by `ssh_config::command_line_settings`.
    pub ssh_args: Option<String>,
    pub ssh_common_args: Option<String>,
    pub ssh_extra_args: Option<String>,
    /// `ansible_connection`: how Ansible would reach the host.
    pub connection: Option<String>,
    /// `ansible_become_user`: whom sudo runs the step as (root when unset).
    pub become_user: Option<String>,
    /// `ansible_become_method`: only `sudo` is done; others refuse the host.
    pub become_method: Option<String>,
    /// The name of a become-password variable the inventory sets (never its
    /// value): such a host is refused.
    pub become_password: Option<String>,
}

macro_rules! overlay_fields {
    ($into:ident, $from:ident, $($field:ident),*) => {
        $( if $from.$field.is_some() { $into.$field = $from.$field.clone(); } )*
    };
}

impl Vars {
    /// Sets every field that `upper` sets.
    pub fn overlay(&mut self, upper: &Vars) {
        overlay_fields!(
            self,
            upper,
            address,
            port,
            user,
            identity_file,
            become_root,
            proxy_jump,
            busy_check,
            busy_wait,
            busy_retries,
            health_check,
            health_interval,
            health_timeout,
            confirm_timeout,
            keep_releases,
            mirror,
            known_servers,
            prefix,
            state_dir,
            cache_dir,
            ssh_args,
            ssh_common_args,
            ssh_extra_args,
            connection,
            become_user,
            become_method,
            become_password
        );
    }
}

/// Checks what names the connection: an address or user that an SSH
/// command line or a report could misread (spaces, control characters, a
/// leading `-`), and port 0.
pub fn check_endpoint(
    source: &Source,
    address: Option<&Spanned<String>>,
    user: Option<&Spanned<String>>,
    port: Option<&Spanned<u16>>,
) -> Result<(), InventoryError> {
    for (key, value) in [("address", address), ("user", user)] {
        if let Some(value) = value {
            check_length(source, &format!("`{key}`"), value, MAX_NAME_BYTES)?;
            let text = &value.value;
            let bad = text.is_empty()
                || text.starts_with('-')
                || text.chars().any(|c| c.is_whitespace() || is_unsafe(c));
            if bad {
                return Err(source.error_at(
                    &value.referenced,
                    &format!(
                        "`{key}` must be non-empty, without spaces, control or invisible characters, and not start with `-`, got `{}`",
                        quoted(text)
                    ),
                ));
            }
        }
    }
    if let Some(port) = port
        && port.value == 0
    {
        return Err(source.error_at(&port.referenced, "`port` must be from 1 to 65535"));
    }
    Ok(())
}

/// Checks a `become_user`: a login name sudo's `-u` and a report cannot
/// misread, as `user` is checked.
pub fn check_become_user(
    source: &Source,
    key: &str,
    value: &Spanned<String>,
) -> Result<(), InventoryError> {
    check_length(source, &format!("`{key}`"), value, MAX_NAME_BYTES)?;
    let text = &value.value;
    if text.is_empty()
        || text.starts_with('-')
        || text.chars().any(|c| c.is_whitespace() || is_unsafe(c))
    {
        return Err(source.error_at(
            &value.referenced,
            &format!(
                "`{key}` must be non-empty, without spaces, control or invisible characters, and not start with `-`, got `{}`",
                quoted(text)
            ),
        ));
    }
    Ok(())
}

/// Checks a `health_check` command (one line: it travels in the order).
pub fn check_health_command(
    source: &Source,
    value: &Spanned<String>,
) -> Result<(), InventoryError> {
    crate::health::check_command(&value.value)
        .map_err(|why| source.error_at(&value.referenced, &format!("`health_check` {why}")))
}

/// A `mirror` URL (src/mirror.rs), or the error at its location.
pub fn check_mirror(
    source: &Source,
    value: &Spanned<String>,
) -> Result<crate::mirror::Mirror, InventoryError> {
    crate::mirror::Mirror::parse(&value.value).map_err(|why| {
        source.error_at(
            &value.referenced,
            &format!("`mirror` `{}`: {why}", quoted(&value.value)),
        )
    })
}

/// Checks `health_interval`, `health_timeout` or `confirm_timeout`.
pub fn check_seconds(
    source: &Source,
    key: &str,
    value: &Spanned<u64>,
) -> Result<(), InventoryError> {
    crate::health::check_seconds(key, value.value)
        .map_err(|why| source.error_at(&value.referenced, &why))
}

/// Checks the values whose type alone does not make them valid.
pub fn check_values(
    source: &Source,
    keep_releases: Option<&Spanned<u32>>,
    client_paths: [(&str, Option<&Spanned<String>>); 4],
) -> Result<(), InventoryError> {
    if let Some(keep) = keep_releases
        && keep.value == 0
    {
        return Err(source.error_at(
            &keep.referenced,
            "`keep_releases` must be at least 1 (the current release)",
        ));
    }
    for (key, value) in client_paths {
        if let Some(value) = value {
            check_length(source, &format!("`{key}`"), value, MAX_VALUE_BYTES)?;
            let path = &value.value;
            let clean = path.starts_with('/')
                && !path.chars().any(|c| c.is_control())
                && !path.split('/').any(|part| part == "..");
            if !clean {
                return Err(source.error_at(
                    &value.referenced,
                    &format!(
                        "`{key}` must be an absolute path without `..`, got `{}`",
                        quoted(path)
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The inventory text and its file name, for parsing and for error lines.
pub struct Source<'a> {
    pub text: &'a str,
    pub path: &'a Path,
}

impl Source<'_> {
    /// Parses YAML into `T` (see [`crate::yaml`]).
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, InventoryError> {
        crate::yaml::from_str(self.text, super::MAX_INVENTORY_BYTES).map_err(|e| match e.at {
            Some((line, column)) => InventoryError {
                location: format!("{}:{line}:{column}", self.path.display()),
                message: e.message,
            },
            None => self.error_at_file(&e.message),
        })
    }

    pub fn error_at(&self, location: &Location, message: &str) -> InventoryError {
        InventoryError {
            location: format!(
                "{}:{}:{}",
                self.path.display(),
                location.line(),
                location.column()
            ),
            message: message.to_owned(),
        }
    }

    pub fn error_at_file(&self, message: &str) -> InventoryError {
        InventoryError {
            location: self.path.display().to_string(),
            message: message.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_layer_wins_only_where_it_says_something() {
        let mut merged = Vars {
            port: Some(22),
            user: Some("root".into()),
            ..Vars::default()
        };
        merged.overlay(&Vars {
            port: Some(2222),
            ..Vars::default()
        });
        assert_eq!(merged.port, Some(2222));
        assert_eq!(merged.user.as_deref(), Some("root"));
    }
}
