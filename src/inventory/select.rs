//! `--limit`: which hosts of the inventory a command acts on.
//!
//! Comma-separated patterns, as Ansible's `--limit`: a host name, a group
//! name, a glob (`web*`, matched against host and group names), `all`, and
//! exclusions (`!db1`, `!web*`). The selection is the union of the positive
//! patterns (every host when there are none) minus the exclusions, in
//! inventory order. A pattern that matches nothing is an error, so a typo in
//! `!db1` can never widen a rollout.

use globset::{Glob, GlobMatcher};

use super::{Host, Inventory};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectError {
    #[error("--limit: `{0}` matches no host or group in the inventory")]
    NoMatch(String),
    #[error("--limit: `{pattern}` selects no host")]
    Empty { pattern: String },
    #[error("--limit: `{0}` is not a valid pattern: {1}")]
    BadPattern(String, String),
    #[error(
        "--limit: `{0}` uses {1}, which this version of swpush does not support yet; use names, groups, globs and `!` exclusions"
    )]
    NotYet(String, &'static str),
}

/// The hosts `limit` selects (every host when `None`).
pub fn select_hosts<'a>(
    inventory: &'a Inventory,
    limit: Option<&str>,
) -> Result<Vec<&'a Host>, SelectError> {
    let Some(limit) = limit.filter(|l| !l.trim().is_empty()) else {
        return Ok(inventory.hosts.iter().collect());
    };
    let mut include: Option<Vec<bool>> = None;
    let mut exclude = vec![false; inventory.hosts.len()];
    for raw in limit.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (negated, pattern) = match raw.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, raw),
        };
        let Some(matched) = matches(inventory, raw, pattern)? else {
            return Err(SelectError::NoMatch(raw.to_owned()));
        };
        let target = if negated {
            &mut exclude
        } else {
            include.get_or_insert_with(|| vec![false; inventory.hosts.len()])
        };
        for (slot, hit) in target.iter_mut().zip(matched) {
            *slot |= hit;
        }
    }
    let include = include.unwrap_or_else(|| vec![true; inventory.hosts.len()]);
    let selected: Vec<&Host> = inventory
        .hosts
        .iter()
        .zip(include.iter().zip(&exclude))
        .filter(|(_, (inc, exc))| **inc && !**exc)
        .map(|(host, _)| host)
        .collect();
    if selected.is_empty() {
        return Err(SelectError::Empty {
            pattern: limit.to_owned(),
        });
    }
    Ok(selected)
}

/// For each host, whether `pattern` (without its `!`) selects it; `None`
/// when it names no host and no group, not even an empty one.
fn matches(
    inventory: &Inventory,
    raw: &str,
    pattern: &str,
) -> Result<Option<Vec<bool>>, SelectError> {
    let not_yet = |what| Err(SelectError::NotYet(raw.to_owned(), what));
    match pattern.chars().next() {
        Some('&') => return not_yet("an intersection (`&`)"),
        Some('~') => return not_yet("a regular expression (`~`)"),
        Some('@') => return not_yet("a host list (`@`)"),
        None | Some('!') => {
            return Err(SelectError::BadPattern(
                raw.to_owned(),
                "expected a name or glob after `!`".into(),
            ));
        }
        _ => {}
    }
    if pattern == "all" || pattern == "*" {
        return Ok(Some(vec![true; inventory.hosts.len()]));
    }
    let name_matches: Box<dyn Fn(&str) -> bool> = if pattern.contains(['*', '?', '[']) {
        let glob: GlobMatcher = Glob::new(pattern)
            .map_err(|e| SelectError::BadPattern(raw.to_owned(), e.kind().to_string()))?
            .compile_matcher();
        Box::new(move |name| glob.is_match(name))
    } else {
        Box::new(move |name| name == pattern)
    };
    let groups_hit = inventory.groups.iter().any(|g| name_matches(g));
    let hits: Vec<bool> = inventory
        .hosts
        .iter()
        .map(|host| name_matches(&host.name) || host.groups.iter().any(|g| name_matches(g)))
        .collect();
    Ok((groups_hit || hits.iter().any(|h| *h)).then_some(hits))
}
