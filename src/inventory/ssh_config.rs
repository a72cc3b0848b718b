//! `~/.ssh/config`, read with the `ssh2-config` crate, for what the
//! inventory leaves unset: `HostName`, `User`, `Port`, `IdentityFile`,
//! `ProxyJump`. As with `ssh HOST`, `Host` patterns match the name the
//! operator uses, here the inventory name; the address is tried next, so
//! `Host 10.0.*` entries apply too. Other options are ignored.

use std::io::BufReader;
use std::path::{Path, PathBuf};

use ssh2_config::{ParseRule, SshConfig as Parsed};

use super::{InventoryError, io_message};

/// What `~/.ssh/config` says about one host.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SshSettings {
    pub host_name: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub identity_file: Option<PathBuf>,
    pub proxy_jump: Option<String>,
}

pub struct SshConfig(Option<Parsed>);

impl SshConfig {
    /// Reads `HOME/.ssh/config`; a missing file is an empty config.
    pub fn load(home: Option<&Path>) -> Result<SshConfig, InventoryError> {
        let Some(home) = home else {
            return Ok(SshConfig(None));
        };
        let path = home.join(".ssh/config");
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(SshConfig(None)),
            Err(e) => {
                return Err(InventoryError {
                    location: path.display().to_string(),
                    message: io_message(&e),
                });
            }
        };
        Self::parse(&mut BufReader::new(file), home).map_err(|message| InventoryError {
            location: path.display().to_string(),
            message,
        })
    }

    pub fn parse(reader: &mut impl std::io::BufRead, home: &Path) -> Result<SshConfig, String> {
        Parsed::default()
            .home_dir(home)
            .parse(
                reader,
                ParseRule::ALLOW_UNKNOWN_FIELDS | ParseRule::ALLOW_UNSUPPORTED_FIELDS,
            )
            .map(|parsed| SshConfig(Some(parsed)))
            .map_err(|e| format!("cannot read: {e}"))
    }

    /// Settings for the inventory name, then for the address where the name
    /// said nothing.
    pub fn lookup(&self, name: &str, address: Option<&str>) -> SshSettings {
        let Some(parsed) = &self.0 else {
            return SshSettings::default();
        };
        let mut settings = settings_for(parsed, name);
        if let Some(address) = address.filter(|a| *a != name) {
            let more = settings_for(parsed, address);
            settings.port = settings.port.or(more.port);
            settings.user = settings.user.or(more.user);
            settings.identity_file = settings.identity_file.or(more.identity_file);
            settings.proxy_jump = settings.proxy_jump.or(more.proxy_jump);
        }
        settings
    }
}

fn settings_for(parsed: &Parsed, host: &str) -> SshSettings {
    let params = parsed.query(host);
    SshSettings {
        host_name: params.host_name,
        port: params.port,
        user: params.user,
        identity_file: params
            .identity_file
            .and_then(|files| files.into_iter().next()),
        proxy_jump: params
            .proxy_jump
            .filter(|hops| !hops.is_empty() && !hops.iter().any(|h| h.eq_ignore_ascii_case("none")))
            .map(|hops| hops.join(",")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> SshConfig {
        SshConfig::parse(&mut text.as_bytes(), Path::new("/home/op")).unwrap()
    }

    #[test]
    fn applies_host_alias_entries() {
        let c = config(
            "Host web1\n  HostName 192.0.2.11\n  User deploy\n  Port 2222\n  IdentityFile ~/.ssh/web\n  ProxyJump bastion\n\nHost *\n  User fallback\n",
        );
        assert_eq!(
            c.lookup("web1", None),
            SshSettings {
                host_name: Some("192.0.2.11".into()),
                port: Some(2222),
                user: Some("deploy".into()),
                identity_file: Some(PathBuf::from("/home/op/.ssh/web")),
                proxy_jump: Some("bastion".into()),
            }
        );
        assert_eq!(c.lookup("db1", None).user.as_deref(), Some("fallback"));
        assert_eq!(c.lookup("db1", None).host_name, None);
    }

    #[test]
    fn address_patterns_fill_what_the_name_left_unset() {
        let c = config("Host 10.1.*\n  Port 2200\n  User ops\n");
        let s = c.lookup("app1", Some("10.1.0.7"));
        assert_eq!((s.port, s.user.as_deref()), (Some(2200), Some("ops")));
    }
}
