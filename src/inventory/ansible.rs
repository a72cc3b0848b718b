//! Ansible's YAML inventory: a top-level `all:` group whose `hosts`, `vars`
//! and nested `children` describe the fleet.
//!
//! Ansible's own connection variables (`ansible_host`, `ansible_port`,
//! `ansible_user`, `ansible_ssh_private_key_file`, `ansible_become` and the
//! older `ansible_ssh_*` spellings) and swpush's native host keys are read;
//! every other variable belongs to playbooks and is ignored. Group variables
//! apply by depth, as in Ansible: `all` first, then deeper groups (ties by
//! name), then the host's own.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_saphyr::Spanned;

use super::native::check_name;
use super::vars::{MAX_VALUE_BYTES, Source, Vars, check_endpoint, check_length, check_values};
use super::{InventoryError, RawHost, RawInventory};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AnsibleGroup {
    #[serde(default)]
    hosts: Option<IndexMap<Spanned<String>, Option<AnsibleVars>>>,
    #[serde(default)]
    vars: Option<AnsibleVars>,
    #[serde(default)]
    children: Option<IndexMap<Spanned<String>, Option<AnsibleGroup>>>,
}

type AnsibleVars = IndexMap<String, Spanned<Scalar>>;

/// A variable's value; lists and maps are playbook data swpush does not read.
#[derive(Debug)]
enum Scalar {
    Bool(bool),
    Int(i128),
    Text(String),
    Null,
    Other,
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl<'de> serde::de::Visitor<'de> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Int(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar::Int(v.into()))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Scalar, E> {
                Ok(Scalar::Other)
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Text(v.to_owned()))
            }
            fn visit_unit<E>(self) -> Result<Scalar, E> {
                Ok(Scalar::Null)
            }
            fn visit_none<E>(self) -> Result<Scalar, E> {
                Ok(Scalar::Null)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Scalar, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Scalar, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

/// Ansible inventories are told apart by their top-level `all:` group.
pub(super) fn looks_like_ansible(source: &Source) -> Result<bool, InventoryError> {
    if source.text.trim().is_empty() {
        return Ok(false);
    }
    let top: IndexMap<String, IgnoredAny> = source.parse()?;
    Ok(top.contains_key("all"))
}

/// Groups deeper than this are surely a cycle written with anchors.
const MAX_DEPTH: usize = 32;

#[derive(Default)]
struct Walk {
    /// Group name → (deepest depth seen, merged vars).
    groups: IndexMap<String, (usize, Vars)>,
    /// Host name → (its own vars, the groups it is in directly or through children).
    hosts: IndexMap<String, (Vars, Vec<String>)>,
}

pub(super) fn parse(source: &Source) -> Result<RawInventory, InventoryError> {
    let top: IndexMap<Spanned<String>, Option<AnsibleGroup>> = source.parse()?;
    let mut walk = Walk::default();
    for (name, group) in top {
        // Top-level groups other than `all` are its children, as in Ansible.
        let depth = usize::from(name.value != "all");
        walk.group(source, &name, group.unwrap_or_default(), depth, &[])?;
    }

    let raw_hosts = walk
        .hosts
        .iter()
        .map(|(name, (own, groups))| {
            let mut ordered: Vec<(usize, &str, &Vars)> = groups
                .iter()
                .filter_map(|g| walk.groups.get(g).map(|(d, v)| (*d, g.as_str(), v)))
                .collect();
            ordered.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
            let mut merged = Vars::default();
            for (_, _, vars) in ordered {
                merged.overlay(vars);
            }
            merged.overlay(own);
            RawHost {
                name: name.clone(),
                vars: merged,
                groups: groups
                    .iter()
                    .filter(|g| !matches!(g.as_str(), "all" | "ungrouped"))
                    .cloned()
                    .collect(),
            }
        })
        .collect();
    Ok(RawInventory {
        hosts: raw_hosts,
        groups: walk
            .groups
            .keys()
            .filter(|g| !matches!(g.as_str(), "all" | "ungrouped"))
            .cloned()
            .collect(),
    })
}

impl Walk {
    fn group(
        &mut self,
        source: &Source,
        name: &Spanned<String>,
        group: AnsibleGroup,
        depth: usize,
        ancestors: &[String],
    ) -> Result<(), InventoryError> {
        if !matches!(name.value.as_str(), "all" | "ungrouped") {
            check_name(source, name, "group")?;
        }
        if ancestors.contains(&name.value) || depth > MAX_DEPTH {
            return Err(source.error_at(
                &name.referenced,
                &format!("group `{}` contains itself", name.value),
            ));
        }
        let vars = convert_vars(source, group.vars)?;
        let entry = self
            .groups
            .entry(name.value.clone())
            .or_insert_with(|| (depth, Vars::default()));
        entry.0 = entry.0.max(depth);
        entry.1.overlay(&vars);

        let mut lineage = ancestors.to_vec();
        lineage.push(name.value.clone());
        for (host, vars) in group.hosts.unwrap_or_default() {
            check_name(source, &host, "host")?;
            let vars = convert_vars(source, vars)?;
            let (own, groups) = self.hosts.entry(host.value.clone()).or_default();
            own.overlay(&vars);
            for group in &lineage {
                if !groups.contains(group) {
                    groups.push(group.clone());
                }
            }
        }
        for (child, group) in group.children.unwrap_or_default() {
            self.group(
                source,
                &child,
                group.unwrap_or_default(),
                depth + 1,
                &lineage,
            )?;
        }
        if self.hosts.contains_key(&name.value) {
            return Err(source.error_at(
                &name.referenced,
                &format!(
                    "group `{}` has the name of a host; give it another name",
                    name.value
                ),
            ));
        }
        Ok(())
    }
}

/// Reads the variables swpush understands; the rest are ignored.
fn convert_vars(source: &Source, vars: Option<AnsibleVars>) -> Result<Vars, InventoryError> {
    let mut out = Vars::default();
    let vars = vars.unwrap_or_default();
    let mut keep = None;
    let mut endpoint: [Option<Spanned<String>>; 2] = [None, None];
    let mut port = None;
    let mut paths: BTreeMap<&str, Spanned<String>> = BTreeMap::new();
    for (key, value) in &vars {
        let at = |expected: &str| {
            source.error_at(&value.referenced, &format!("`{key}`: expected {expected}"))
        };
        let text = || {
            let text = text_of(&value.value).ok_or_else(|| at("text"))?;
            let spanned = Spanned::new(text, value.referenced, value.defined);
            check_length(source, &format!("`{key}`"), &spanned, MAX_VALUE_BYTES)?;
            Ok::<_, InventoryError>(spanned.value)
        };
        let number = || int_of(&value.value).ok_or_else(|| at("a whole number"));
        match key.as_str() {
            "ansible_host" | "ansible_ssh_host" => {
                endpoint[0] = Some(Spanned::new(text()?, value.referenced, value.defined));
            }
            "ansible_port" | "ansible_ssh_port" => {
                let n =
                    u16::try_from(number()?).map_err(|_| at("a whole number from 0 to 65535"))?;
                port = Some(Spanned::new(n, value.referenced, value.defined));
            }
            "ansible_user" | "ansible_ssh_user" => {
                endpoint[1] = Some(Spanned::new(text()?, value.referenced, value.defined));
            }
            "ansible_ssh_private_key_file" | "identity_file" => out.identity_file = Some(text()?),
            "ansible_become" | "become" => {
                out.become_root = Some(bool_of(&value.value).ok_or_else(|| at("true or false"))?)
            }
            "proxy_jump" => out.proxy_jump = Some(text()?),
            "busy_check" => out.busy_check = Some(text()?),
            "busy_wait" => {
                out.busy_wait = Some(u64::try_from(number()?).map_err(|_| at("a whole number"))?)
            }
            "busy_retries" => {
                out.busy_retries = Some(u32::try_from(number()?).map_err(|_| at("a whole number"))?)
            }
            "keep_releases" => {
                let n = u32::try_from(number()?).map_err(|_| at("a whole number"))?;
                keep = Some(Spanned::new(n, value.referenced, value.defined));
            }
            "known_servers" | "prefix" | "state_dir" | "cache_dir" => {
                paths.insert(key, Spanned::new(text()?, value.referenced, value.defined));
            }
            _ => {}
        }
    }
    check_endpoint(
        source,
        endpoint[0].as_ref(),
        endpoint[1].as_ref(),
        port.as_ref(),
    )?;
    let [address, user] = endpoint;
    out.address = address.map(|s| s.value);
    out.user = user.map(|s| s.value);
    out.port = port.map(|s| s.value);
    check_values(
        source,
        keep.as_ref(),
        [
            ("known_servers", paths.get("known_servers")),
            ("prefix", paths.get("prefix")),
            ("state_dir", paths.get("state_dir")),
            ("cache_dir", paths.get("cache_dir")),
        ],
    )?;
    out.keep_releases = keep.map(|k| k.value);
    out.known_servers = paths.remove("known_servers").map(|s| s.value);
    out.prefix = paths.remove("prefix").map(|s| s.value);
    out.state_dir = paths.remove("state_dir").map(|s| s.value);
    out.cache_dir = paths.remove("cache_dir").map(|s| s.value);
    Ok(out)
}

fn text_of(value: &Scalar) -> Option<String> {
    match value {
        Scalar::Text(s) => Some(s.clone()),
        Scalar::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

fn int_of(value: &Scalar) -> Option<i128> {
    match value {
        Scalar::Int(n) => Some(*n),
        Scalar::Text(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Ansible's booleans: YAML's, plus the strings Ansible accepts.
fn bool_of(value: &Scalar) -> Option<bool> {
    match value {
        Scalar::Bool(b) => Some(*b),
        Scalar::Int(1) => Some(true),
        Scalar::Int(0) => Some(false),
        Scalar::Text(s) => match s.to_ascii_lowercase().as_str() {
            "yes" | "y" | "true" | "on" | "1" => Some(true),
            "no" | "n" | "false" | "off" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}
