//! `-i 'web3,db1:2222,'`: an inline host list, as Ansible's `host_list`
//! inventory plugin (a value that is not an existing path and contains a
//! comma). Entries are `name`, `user@host`, `host:port`, `user@host:port`,
//! `[v6]:port` or a bare IPv6 address; each host is in no group and is
//! resolved through `~/.ssh/config` like any other.

use super::vars::{MAX_NAME_BYTES, Vars, quoted};
use super::{InventoryError, RawHost, RawInventory};
use crate::untrusted::is_unsafe;

/// Whether `-i VALUE` is an inline list rather than a file name.
pub fn is_inline(value: &str) -> bool {
    value.contains(',') && !std::path::Path::new(value).exists()
}

/// Parses an inline list; errors name the entry.
pub fn parse(list: &str) -> Result<RawInventory, InventoryError> {
    let mut hosts: Vec<RawHost> = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let error = |why: &str| InventoryError {
            location: "-i".into(),
            message: format!("host list entry `{}`: {why}", quoted(entry)),
        };
        if entry.len() > MAX_NAME_BYTES {
            return Err(error(&format!("is longer than {MAX_NAME_BYTES} bytes")));
        }
        if entry.chars().any(|c| c.is_whitespace() || is_unsafe(c)) {
            return Err(error("contains a space or control character"));
        }
        let (user, rest) = match entry.split_once('@') {
            Some((user, rest)) => (Some(user), rest),
            None => (None, entry),
        };
        if user.is_some_and(|u| u.is_empty() || u.starts_with('-')) {
            return Err(error("the user before `@` is empty or starts with `-`"));
        }
        let (name, port) = split_port(rest).map_err(&error)?;
        if name.is_empty() || name.starts_with('-') || name.contains(['@', '[', ']', '/']) {
            return Err(error("expected NAME, USER@HOST, HOST:PORT or [IPV6]:PORT"));
        }
        let port = match port {
            Some(text) => Some(
                text.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| error("the port is not a number from 1 to 65535"))?,
            ),
            None => None,
        };
        if hosts.iter().any(|h| h.name == name) {
            return Err(error("lists the host twice"));
        }
        hosts.push(RawHost {
            name: name.to_owned(),
            vars: Vars {
                port,
                user: user.map(str::to_owned),
                ..Vars::default()
            },
            groups: Vec::new(),
        });
    }
    Ok(RawInventory {
        hosts,
        groups: Vec::new(),
    })
}

/// `host:port`, `[v6]:port`, `[v6]`, a bare IPv6 address, or a name.
fn split_port(text: &str) -> Result<(&str, Option<&str>), &'static str> {
    if let Some(inner) = text.strip_prefix('[') {
        let (address, after) = inner.split_once(']').ok_or("a `[` without its `]`")?;
        return match after {
            "" => Ok((address, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((address, Some(port))),
                None => Err("expected `:PORT` after `]`"),
            },
        };
    }
    match text.matches(':').count() {
        0 => Ok((text, None)),
        1 => Ok(text
            .split_once(':')
            .map_or((text, None), |(h, p)| (h, Some(p)))),
        _ if text.parse::<std::net::Ipv6Addr>().is_ok() => Ok((text, None)),
        _ => Err("an IPv6 address with a port must be written `[ADDRESS]:PORT`"),
    }
}
