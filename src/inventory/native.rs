//! The native inventory dialect: `defaults`, `hosts` and `groups` (SPEC §3).
//!
//! Precedence is host > group (a later group wins) > defaults. Every key is
//! checked: an unknown or misplaced one is an error naming its line.

use indexmap::IndexMap;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::{Deserialize, Deserializer};
use serde_saphyr::Spanned;

use super::vars::{
    MAX_NAME_BYTES, MAX_VALUE_BYTES, Source, Vars, check_endpoint, check_length, check_values,
    quoted,
};
use super::{InventoryError, RawHost, RawInventory};
use crate::untrusted::is_unsafe;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NativeFile {
    #[serde(default)]
    defaults: Option<VarsYaml>,
    #[serde(default)]
    hosts: Option<IndexMap<Spanned<String>, Option<VarsYaml>>>,
    #[serde(default)]
    groups: Option<IndexMap<Spanned<String>, GroupYaml>>,
}

/// The keys of SPEC §3 as written in YAML; `hosts` only makes sense in a group
/// and `address` only on a host, which [`VarsYaml::into_vars`] checks.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct VarsYaml {
    address: Option<Spanned<String>>,
    port: Option<Spanned<u16>>,
    user: Option<Spanned<String>>,
    identity_file: Option<Spanned<String>>,
    #[serde(rename = "become")]
    become_root: Option<bool>,
    proxy_jump: Option<Spanned<String>>,
    busy_check: Option<Spanned<String>>,
    busy_wait: Option<u64>,
    busy_retries: Option<u32>,
    health_check: Option<Spanned<String>>,
    health_interval: Option<Spanned<u64>>,
    health_timeout: Option<Spanned<u64>>,
    confirm_timeout: Option<Spanned<u64>>,
    keep_releases: Option<Spanned<u32>>,
    mirror: Option<Spanned<String>>,
    known_servers: Option<Spanned<String>>,
    prefix: Option<Spanned<String>>,
    state_dir: Option<Spanned<String>>,
    cache_dir: Option<Spanned<String>>,
    hosts: Option<Spanned<Vec<Spanned<String>>>>,
    become_user: Option<Spanned<String>>,
}

/// Where a block of vars stands, which decides the keys it may hold.
#[derive(Clone, Copy, PartialEq)]
enum Place {
    Defaults,
    Host,
    Group,
}

impl VarsYaml {
    fn into_vars(self, source: &Source, place: Place) -> Result<Vars, InventoryError> {
        if let (Some(address), Place::Defaults | Place::Group) = (&self.address, place) {
            return Err(source.error_at(
                &address.referenced,
                "`address` belongs on a host, not in defaults or a group",
            ));
        }
        if let (Some(hosts), Place::Defaults | Place::Host) = (&self.hosts, place) {
            return Err(source.error_at(
                &hosts.referenced,
                "`hosts` belongs in a group; a host's settings cannot list hosts",
            ));
        }
        check_endpoint(
            source,
            self.address.as_ref(),
            self.user.as_ref(),
            self.port.as_ref(),
        )?;
        for (key, value) in [
            ("`identity_file`", &self.identity_file),
            ("`proxy_jump`", &self.proxy_jump),
            ("`busy_check`", &self.busy_check),
        ] {
            if let Some(value) = value {
                check_length(source, key, value, MAX_VALUE_BYTES)?;
            }
        }
        if let Some(check) = &self.health_check {
            super::vars::check_health_command(source, check)?;
        }
        for (key, value) in [
            ("health_interval", &self.health_interval),
            ("health_timeout", &self.health_timeout),
            ("confirm_timeout", &self.confirm_timeout),
        ] {
            if let Some(value) = value {
                super::vars::check_seconds(source, key, value)?;
            }
        }
        let mirror = self
            .mirror
            .as_ref()
            .map(|mirror| super::vars::check_mirror(source, mirror))
            .transpose()?;
        if let Some(user) = &self.become_user {
            super::vars::check_become_user(source, "become_user", user)?;
        }
        check_values(
            source,
            self.keep_releases.as_ref(),
            [
                ("known_servers", self.known_servers.as_ref()),
                ("prefix", self.prefix.as_ref()),
                ("state_dir", self.state_dir.as_ref()),
                ("cache_dir", self.cache_dir.as_ref()),
            ],
        )?;
        Ok(Vars {
            address: self.address.map(|s| s.value),
            port: self.port.map(|s| s.value),
            user: self.user.map(|s| s.value),
            identity_file: self.identity_file.map(|s| s.value),
            become_root: self.become_root,
            proxy_jump: self.proxy_jump.map(|s| s.value),
            busy_check: self.busy_check.map(|s| s.value),
            busy_wait: self.busy_wait,
            busy_retries: self.busy_retries,
            health_check: self.health_check.map(|s| s.value),
            health_interval: self.health_interval.map(|s| s.value),
            health_timeout: self.health_timeout.map(|s| s.value),
            confirm_timeout: self.confirm_timeout.map(|s| s.value),
            keep_releases: self.keep_releases.map(|s| s.value),
            mirror,
            known_servers: self.known_servers.map(|s| s.value),
            prefix: self.prefix.map(|s| s.value),
            state_dir: self.state_dir.map(|s| s.value),
            cache_dir: self.cache_dir.map(|s| s.value),
            become_user: self.become_user.map(|s| s.value),
            ..Vars::default()
        })
    }
}

/// A group is either a list of host names or a map with `hosts` and settings.
enum GroupYaml {
    List(Vec<Spanned<String>>),
    Full(Box<VarsYaml>),
}

impl<'de> Deserialize<'de> for GroupYaml {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct GroupVisitor;
        impl<'de> serde::de::Visitor<'de> for GroupVisitor {
            type Value = GroupYaml;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of host names or a map with `hosts` and settings")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<GroupYaml, A::Error> {
                Vec::deserialize(SeqAccessDeserializer::new(seq)).map(GroupYaml::List)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<GroupYaml, A::Error> {
                VarsYaml::deserialize(MapAccessDeserializer::new(map))
                    .map(|vars| GroupYaml::Full(Box::new(vars)))
            }
            fn visit_unit<E>(self) -> Result<GroupYaml, E> {
                Ok(GroupYaml::List(Vec::new()))
            }
            fn visit_none<E>(self) -> Result<GroupYaml, E> {
                Ok(GroupYaml::List(Vec::new()))
            }
        }
        deserializer.deserialize_any(GroupVisitor)
    }
}

pub(super) fn parse(source: &Source) -> Result<RawInventory, InventoryError> {
    if source.text.trim().is_empty() {
        return Err(source.error_at_file("the inventory is empty; it needs a `hosts:` map"));
    }
    let file: NativeFile = source.parse()?;
    let defaults = match file.defaults {
        Some(vars) => vars.into_vars(source, Place::Defaults)?,
        None => Vars::default(),
    };

    let mut hosts: Vec<(String, Vars)> = Vec::new();
    for (name, vars) in file.hosts.unwrap_or_default() {
        check_name(source, &name, "host")?;
        let vars = vars.unwrap_or_default().into_vars(source, Place::Host)?;
        hosts.push((name.value, vars));
    }

    let mut groups: Vec<(String, Vec<String>, Vars)> = Vec::new();
    for (name, group) in file.groups.unwrap_or_default() {
        check_name(source, &name, "group")?;
        if hosts.iter().any(|(host, _)| *host == name.value) {
            return Err(source.error_at(
                &name.referenced,
                &format!(
                    "group `{}` has the name of a host; give it another name",
                    name.value
                ),
            ));
        }
        let (members, vars) = match group {
            GroupYaml::List(members) => (members, Vars::default()),
            GroupYaml::Full(mut vars) => {
                let members = vars.hosts.take().map(|h| h.value).unwrap_or_default();
                (members, vars.into_vars(source, Place::Group)?)
            }
        };
        let mut names = Vec::new();
        for member in members {
            if !hosts.iter().any(|(host, _)| *host == member.value) {
                return Err(source.error_at(
                    &member.referenced,
                    &format!(
                        "group `{}` names unknown host `{}`",
                        name.value, member.value
                    ),
                ));
            }
            names.push(member.value);
        }
        groups.push((name.value, names, vars));
    }

    let raw_hosts = hosts
        .into_iter()
        .map(|(name, host_vars)| {
            let mut merged = defaults.clone();
            let mut member_of = Vec::new();
            for (group, members, group_vars) in &groups {
                if members.contains(&name) {
                    merged.overlay(group_vars);
                    member_of.push(group.clone());
                }
            }
            merged.overlay(&host_vars);
            RawHost {
                name,
                vars: merged,
                groups: member_of,
            }
        })
        .collect();
    Ok(RawInventory {
        hosts: raw_hosts,
        groups: groups.into_iter().map(|(name, _, _)| name).collect(),
    })
}

/// Host and group names are what `--limit` matches, so they may not contain
/// its pattern characters.
pub(super) fn check_name(
    source: &Source,
    name: &Spanned<String>,
    what: &str,
) -> Result<(), InventoryError> {
    check_length(source, &format!("{what} name"), name, MAX_NAME_BYTES)?;
    let text = &name.value;
    let bad = text.is_empty()
        || text.starts_with(['!', '&', '~', '@'])
        || text.chars().any(|c| {
            c.is_whitespace() || is_unsafe(c) || matches!(c, ',' | '*' | '?' | '[' | ']' | '/')
        });
    if bad {
        return Err(source.error_at(
            &name.referenced,
            &format!(
                "{what} name `{}` may not be empty, start with `!&~@`, or contain spaces, control or invisible characters or `,*?[]/`",
                quoted(text)
            ),
        ));
    }
    if matches!(text.as_str(), "all" | "ungrouped") {
        return Err(source.error_at(
            &name.referenced,
            &format!("`{text}` is reserved (it selects every host); choose another {what} name"),
        ));
    }
    Ok(())
}
