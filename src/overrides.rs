//! Command-line settings that beat the inventory and `~/.ssh/config` for
//! every selected host, with Ansible's spellings: `-u/--user`,
//! `-b/--become`, `--private-key/--key-file`.
//!
//! Unlike Ansible, where a host's `ansible_user` wins over `-u`, these win
//! over everything the inventory says (docs/reference.md). `-u` and
//! `--private-key` also take part in reading `~/.ssh/config`, as ssh's
//! `-l` and `-i` do: `Match user deploy` applies under `-u deploy`, and
//! ssh_config's IdentityFiles follow `--private-key`.

use std::path::PathBuf;

use clap::Args;

use crate::inventory::Host;

#[derive(Args, Debug, Clone, Default)]
pub struct OverrideArgs {
    /// Log in as USER on every host (beats the inventory and ~/.ssh/config)
    #[arg(long, short = 'u', value_name = "USER", value_parser = login_name)]
    pub user: Option<String>,
    /// Run the client step through sudo on every host (as `become: true`)
    #[arg(long = "become", short = 'b')]
    pub become_root: bool,
    /// Log in with this private key on every host (beats the inventory and ~/.ssh/config)
    #[arg(long, visible_alias = "key-file", value_name = "FILE")]
    pub private_key: Option<PathBuf>,
    /// Ask once for the sudo password (no echo) and give it to sudo on every becoming host
    #[arg(long, short = 'K')]
    pub ask_become_pass: bool,
}

impl OverrideArgs {
    /// `-u` and `--private-key`, for resolving `~/.ssh/config` as ssh's
    /// `-l` and `-i` would be.
    pub fn login(&self) -> crate::inventory::Login {
        crate::inventory::Login {
            user: self.user.clone(),
            identity_file: self.private_key.clone(),
        }
    }

    /// `host` with `-b` in place of its own become setting (`-u` and
    /// `--private-key` already took part in resolving it: [`Self::login`]).
    pub fn apply(&self, mut host: Host) -> Host {
        if self.become_root {
            host.become_root = true;
            if let Some(why) = &host.become_refused {
                host.refused.get_or_insert(why.clone());
            }
        }
        host
    }
}

/// Longest user name, as the inventory allows.
const MAX_USER_BYTES: usize = 255;

/// A user name an SSH command line and a report cannot misread: not empty,
/// no spaces or control characters, no leading `-`.
fn login_name(text: &str) -> Result<String, String> {
    let bad = text.is_empty()
        || text.len() > MAX_USER_BYTES
        || text.starts_with('-')
        || text
            .chars()
            .any(|c| c.is_whitespace() || crate::untrusted::is_unsafe(c));
    if bad {
        return Err(
            "must be non-empty, without spaces or control characters, and not start with `-`"
                .into(),
        );
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_that_ssh_could_misread_is_refused() {
        assert!(login_name("deploy").is_ok());
        for bad in ["", "-oProxyCommand=x", "a b", "a\u{1b}[2J"] {
            assert!(login_name(bad).is_err(), "{bad:?}");
        }
    }
}
