//! Jump hosts (`ProxyJump`, inventory `proxy_jump`, `ssh -J`): the chain
//! `[user@]host[:port],...` parsed into hops. The inventory resolves each
//! hop as `ssh HOP` would (its own `~/.ssh/config` block); connecting is in
//! `mod.rs`: each hop is an SSH session of its own, host key checked and
//! logged in to like a target, the next one over a direct-tcpip channel of
//! the previous one.

/// One jump host of a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Jump {
    pub(crate) user: Option<String>,
    pub(crate) address: String,
    /// `None`: what the hop's own configuration says, else 22.
    pub(crate) port: Option<u16>,
}

/// Parses `[user@]host[:port]` hops separated by commas (IPv6 as `[addr]:port`).
pub(crate) fn parse_chain(spec: &str) -> Result<Vec<Jump>, String> {
    spec.split(',').map(|hop| parse_hop(hop.trim())).collect()
}

fn parse_hop(hop: &str) -> Result<Jump, String> {
    let bad = |why: &str| format!("jump host {hop:?}: {why}");
    if hop.is_empty() {
        return Err(bad("empty hop"));
    }
    if hop.starts_with("ssh://") {
        return Err(bad("ssh:// URIs are not supported; use [user@]host[:port]"));
    }
    let (user, rest) = match hop.rsplit_once('@') {
        Some((user, rest)) if !user.is_empty() => (Some(user.to_owned()), rest),
        Some(_) => return Err(bad("empty user name before @")),
        None => (None, hop),
    };
    let (address, port) = if let Some(inner) = rest.strip_prefix('[') {
        let (address, after) = inner
            .split_once(']')
            .ok_or_else(|| bad("unclosed [ in the address"))?;
        match after.strip_prefix(':') {
            Some(port) => (address, Some(port)),
            None if after.is_empty() => (address, None),
            None => return Err(bad("unexpected text after ]")),
        }
    } else {
        match rest.split_once(':') {
            Some((address, port)) => (address, Some(port)),
            None => (rest, None),
        }
    };
    if address.is_empty() || address.starts_with('-') {
        return Err(bad("no usable host name"));
    }
    let port = match port {
        Some(port) => Some(
            port.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("port is not a number from 1 to 65535"))?,
        ),
        None => None,
    };
    Ok(Jump {
        user,
        address: address.to_ascii_lowercase(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hops_parse_as_ssh_reads_them() {
        let chain = parse_chain("a, ops@b:2222,[::1]:23").expect("chain");
        assert_eq!(
            chain,
            vec![
                Jump {
                    user: None,
                    address: "a".into(),
                    port: None
                },
                Jump {
                    user: Some("ops".into()),
                    address: "b".into(),
                    port: Some(2222)
                },
                Jump {
                    user: None,
                    address: "::1".into(),
                    port: Some(23)
                },
            ]
        );
        for bad in [
            "",
            "a,,b",
            "a:0",
            "a:x",
            "@a",
            "-oProxyCommand=x",
            "[::1",
            "ssh://a",
        ] {
            let error = parse_chain(bad).expect_err(bad);
            assert!(error.starts_with("jump host"), "{bad}: {error}");
        }
    }
}
