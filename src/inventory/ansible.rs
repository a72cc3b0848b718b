//! Ansible's YAML inventory: a top-level `all:` group whose `hosts`, `vars`
//! and nested `children` describe the fleet.
//!
//! Ansible's own connection variables (`ansible_host`, `ansible_port`,
//! `ansible_user`, `ansible_ssh_private_key_file`, `ansible_become` and the
//! older `ansible_ssh_*` spellings; `ansible_ssh_common_args`,
//! `ansible_ssh_extra_args`, `ansible_ssh_args` and `ansible_connection`,
//! so that a host Ansible reaches another way is refused, not reached
//! directly) and swpush's native host keys are read;
//! every other variable belongs to playbooks and is ignored. Group variables
//! apply by depth, as in Ansible: `all` first, then deeper groups (ties by
//! name, then `ansible_group_priority`), then the host's own.
//!
//! A group is one group wherever it is mentioned, as Ansible builds it:
//! `prod: {children: {web: }}` names the same `web` that another part of
//! the file fills with hosts, before or after. The file is first merged into
//! one graph of groups; membership and depths are computed on the whole
//! graph afterwards, never at the place a group happens to be mentioned.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_saphyr::{Location, Spanned};

use super::native::check_name;
use super::vars::{
    MAX_VALUE_BYTES, Source, Vars, check_become_user, check_endpoint, check_health_command,
    check_length, check_seconds, check_values,
};
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

/// YAML nested deeper than this is surely a cycle written with anchors.
const MAX_DEPTH: usize = 32;

/// Ansible's priority of a group that sets no `ansible_group_priority`.
const DEFAULT_PRIORITY: i128 = 1;

/// One group, merged over every place the file mentions it: Ansible keeps
/// one group per name, so hosts, vars and children add up across mentions.
struct GroupEntry {
    /// Where the group is first mentioned, for errors.
    at: Location,
    vars: Vars,
    /// `ansible_group_priority`: among groups of the same depth, a higher
    /// priority applies later and so wins.
    priority: i128,
    /// Hosts listed directly under the group, in file order.
    hosts: Vec<usize>,
    /// Child groups, in file order.
    children: Vec<usize>,
}

#[derive(Default)]
struct Walk {
    groups: IndexMap<String, GroupEntry>,
    /// Host name → its own vars, merged over its mentions (later wins).
    hosts: IndexMap<String, Vars>,
}

pub(super) fn parse(source: &Source) -> Result<RawInventory, InventoryError> {
    let top: IndexMap<Spanned<String>, Option<AnsibleGroup>> = source.parse()?;
    let mut walk = Walk::default();
    let all = walk.mention(&Spanned::new(
        "all".to_owned(),
        Location::UNKNOWN,
        Location::UNKNOWN,
    ));
    for (name, group) in top {
        let index = walk.group(source, &name, group.unwrap_or_default(), 0)?;
        // Top-level groups other than `all` are its children, as in Ansible.
        if index != all {
            walk.add_child(all, index);
        }
    }
    walk.finish(source, all)
}

impl Walk {
    /// The group called `name`, created at its first mention.
    fn mention(&mut self, name: &Spanned<String>) -> usize {
        let entry = self.groups.entry(name.value.clone());
        let index = entry.index();
        entry.or_insert_with(|| GroupEntry {
            at: name.referenced,
            vars: Vars::default(),
            priority: DEFAULT_PRIORITY,
            hosts: Vec::new(),
            children: Vec::new(),
        });
        index
    }

    fn add_child(&mut self, parent: usize, child: usize) {
        let children = &mut self.groups[parent].children;
        if !children.contains(&child) {
            children.push(child);
        }
    }

    /// Merges one mention of a group, and the groups nested in it.
    fn group(
        &mut self,
        source: &Source,
        name: &Spanned<String>,
        group: AnsibleGroup,
        nesting: usize,
    ) -> Result<usize, InventoryError> {
        if !matches!(name.value.as_str(), "all" | "ungrouped") {
            check_name(source, name, "group")?;
        }
        if nesting > MAX_DEPTH {
            return Err(source.error_at(
                &name.referenced,
                &format!(
                    "group `{}` is nested more than {MAX_DEPTH} deep",
                    name.value
                ),
            ));
        }
        if nesting > 0 && name.value == "all" {
            return Err(source.error_at(
                &name.referenced,
                "`all` holds every group; it cannot be the child of another",
            ));
        }
        let index = self.mention(name);
        let priority = group_priority(source, group.vars.as_ref())?;
        let vars = convert_vars(source, group.vars)?;
        let entry = &mut self.groups[index];
        entry.vars.overlay(&vars);
        if let Some(priority) = priority {
            entry.priority = priority;
        }
        for (host, vars) in group.hosts.unwrap_or_default() {
            check_name(source, &host, "host")?;
            let vars = convert_vars(source, vars)?;
            let host_entry = self.hosts.entry(host.value.clone());
            let host_index = host_entry.index();
            host_entry.or_default().overlay(&vars);
            let hosts = &mut self.groups[index].hosts;
            if !hosts.contains(&host_index) {
                hosts.push(host_index);
            }
        }
        for (child, body) in group.children.unwrap_or_default() {
            let child_index = self.group(source, &child, body.unwrap_or_default(), nesting + 1)?;
            self.add_child(index, child_index);
        }
        Ok(index)
    }

    /// Checks the whole graph of groups, then gives each host the groups it
    /// is in (directly or through children) and its vars after Ansible's
    /// precedence: groups by depth, then priority, then name; the host last.
    fn finish(self, source: &Source, all: usize) -> Result<RawInventory, InventoryError> {
        for (name, group) in &self.groups {
            if self.hosts.contains_key(name) {
                return Err(source.error_at(
                    &group.at,
                    &format!("group `{name}` has the name of a host; give it another name"),
                ));
            }
        }
        let depths = self.depths(source, all)?;
        let mut parents_of_group = vec![Vec::new(); self.groups.len()];
        let mut groups_of_host = vec![Vec::new(); self.hosts.len()];
        for (index, group) in self.groups.values().enumerate() {
            for &child in &group.children {
                parents_of_group[child].push(index);
            }
            for &host in &group.hosts {
                groups_of_host[host].push(index);
            }
        }

        let mut raw_hosts = Vec::with_capacity(self.hosts.len());
        for ((name, own), direct) in self.hosts.iter().zip(groups_of_host) {
            let mut member = vec![false; self.groups.len()];
            member[all] = true;
            let mut todo = direct;
            while let Some(group) = todo.pop() {
                if !std::mem::replace(&mut member[group], true) {
                    todo.extend(&parents_of_group[group]);
                }
            }
            let mut ordered: Vec<(usize, i128, &str, &Vars)> = self
                .groups
                .iter()
                .enumerate()
                .filter(|(index, _)| member[*index])
                .map(|(index, (name, g))| (depths[index], g.priority, name.as_str(), &g.vars))
                .collect();
            ordered.sort_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
            let mut merged = Vars::default();
            for (_, _, _, vars) in ordered {
                merged.overlay(vars);
            }
            merged.overlay(own);
            raw_hosts.push(RawHost {
                name: name.clone(),
                vars: merged,
                groups: self
                    .groups
                    .keys()
                    .enumerate()
                    .filter(|(index, g)| member[*index] && !is_implicit(g))
                    .map(|(_, g)| g.clone())
                    .collect(),
            });
        }
        Ok(RawInventory {
            hosts: raw_hosts,
            groups: self
                .groups
                .keys()
                .filter(|g| !is_implicit(g))
                .cloned()
                .collect(),
        })
    }

    /// Each group's depth as Ansible computes it: the longest chain of
    /// children from `all`, whatever order the file mentions them in.
    /// A cycle is an error naming the groups on it.
    fn depths(&self, source: &Source, all: usize) -> Result<Vec<usize>, InventoryError> {
        let count = self.groups.len();
        let mut pending_parents = vec![0usize; count];
        for group in self.groups.values() {
            for &child in &group.children {
                pending_parents[child] += 1;
            }
        }
        let mut depth = vec![0usize; count];
        let mut ready: Vec<usize> = (0..count).filter(|g| pending_parents[*g] == 0).collect();
        let mut placed = 0;
        while let Some(group) = ready.pop() {
            placed += 1;
            for &child in &self.groups[group].children {
                depth[child] = depth[child].max(depth[group] + 1);
                pending_parents[child] -= 1;
                if pending_parents[child] == 0 {
                    ready.push(child);
                }
            }
        }
        if placed == count {
            return Ok(depth);
        }
        // Every group left has a parent left: walk up parents until one
        // repeats, which is on the cycle.
        let mut parent_left = vec![None; count];
        for (index, group) in self.groups.values().enumerate() {
            for &child in &group.children {
                if pending_parents[child] > 0 && pending_parents[index] > 0 {
                    parent_left[child] = Some(index);
                }
            }
        }
        let mut seen = vec![false; count];
        let mut at = (0..count).find(|g| pending_parents[*g] > 0).unwrap_or(all);
        while !std::mem::replace(&mut seen[at], true) {
            match parent_left[at] {
                Some(parent) => at = parent,
                None => break,
            }
        }
        let (name, group) = self
            .groups
            .get_index(at)
            .map(|(n, g)| (n.as_str(), &g.at))
            .unwrap_or(("all", &Location::UNKNOWN));
        // The whole cycle, parent to child: `a → b → a`.
        let name_of = |g: usize| self.groups.get_index(g).map_or("?", |(n, _)| n.as_str());
        let mut cycle = vec![name_of(at)];
        let mut next = parent_left[at];
        while let Some(parent) = next.filter(|p| *p != at && cycle.len() <= count) {
            cycle.push(name_of(parent));
            next = parent_left[parent];
        }
        cycle.push(name_of(at));
        cycle.reverse();
        Err(source.error_at(
            group,
            &format!(
                "group `{name}` contains itself (through its children: {})",
                cycle.join(" → ")
            ),
        ))
    }
}

/// `all` and `ungrouped` exist in every inventory; they are not shown as
/// a host's groups.
fn is_implicit(group: &str) -> bool {
    matches!(group, "all" | "ungrouped")
}

/// A group's `ansible_group_priority`, if it sets one.
fn group_priority(
    source: &Source,
    vars: Option<&AnsibleVars>,
) -> Result<Option<i128>, InventoryError> {
    let Some(value) = vars.and_then(|v| v.get("ansible_group_priority")) else {
        return Ok(None);
    };
    int_of(&value.value).map(Some).ok_or_else(|| {
        source.error_at(
            &value.referenced,
            "`ansible_group_priority`: expected a whole number",
        )
    })
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
            "ansible_ssh_args" => out.ssh_args = Some(text()?),
            "ansible_ssh_common_args" => out.ssh_common_args = Some(text()?),
            "ansible_ssh_extra_args" => out.ssh_extra_args = Some(text()?),
            "ansible_connection" => out.connection = Some(text()?),
            "ansible_become_user" | "become_user" => {
                let user = Spanned::new(text()?, value.referenced, value.defined);
                check_become_user(source, key, &user)?;
                out.become_user = Some(user.value);
            }
            "ansible_become_method" | "become_method" => out.become_method = Some(text()?),
            "ansible_become_password"
            | "ansible_become_pass"
            | "ansible_sudo_pass"
            | "ansible_sudo_password" => out.become_password = Some(key.clone()),
            "busy_check" => out.busy_check = Some(text()?),
            "busy_wait" => {
                out.busy_wait = Some(u64::try_from(number()?).map_err(|_| at("a whole number"))?)
            }
            "busy_retries" => {
                out.busy_retries = Some(u32::try_from(number()?).map_err(|_| at("a whole number"))?)
            }
            "health_check" => {
                let check = Spanned::new(text()?, value.referenced, value.defined);
                check_health_command(source, &check)?;
                out.health_check = Some(check.value);
            }
            "health_interval" | "health_timeout" | "confirm_timeout" => {
                let n = u64::try_from(number()?).map_err(|_| at("a whole number"))?;
                let seconds = Spanned::new(n, value.referenced, value.defined);
                check_seconds(source, key, &seconds)?;
                match key.as_str() {
                    "health_interval" => out.health_interval = Some(n),
                    "health_timeout" => out.health_timeout = Some(n),
                    _ => out.confirm_timeout = Some(n),
                }
            }
            "mirror" => {
                let mirror = Spanned::new(text()?, value.referenced, value.defined);
                out.mirror = Some(super::vars::check_mirror(source, &mirror)?);
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
