//! `--limit`: which hosts of the inventory a command acts on.
//!
//! The grammar is Ansible's `--limit` (ansible-core
//! `lib/ansible/inventory/manager.py`: `split_host_pattern`, `subset`,
//! `order_patterns`, `_evaluate_patterns`, `_match_one_pattern`):
//!
//! - patterns are separated by `,`; without a comma, by `:` unless the whole
//!   text is one address (`::1`, `[::1]:22`, `host:22`, `web[01:20]`);
//! - a pattern is a host name, a group name, a glob (`web*`, matched against
//!   group names and host names), a regex (`~web\d+`, anchored at the start
//!   as Python's `re.match`), optionally with a subscript (`web[0]`,
//!   `web[1:3]`, `web[2:]`) picking hosts of what it matched;
//! - `@FILE` stands for the patterns in FILE, one per line (an Ansible
//!   `.retry` file works);
//! - `@failed` stands for the hosts that did not succeed in the newest run
//!   of the same command and package ([`Rerun`]), each by its exact name;
//!   a file named `failed` is `@./failed`;
//! - `&P` intersects, `!P` excludes; positives are applied first, then
//!   intersections, then exclusions, whatever their order in the text; with
//!   no positive pattern, `all` is assumed.
//!
//! The selection keeps inventory order. Where Ansible only warns ("Could not
//! match supplied host pattern, ignoring"), swpush refuses: a pattern that
//! names no host and no group is an error, so a typo in `!db1` can never
//! widen a rollout (SPEC §2).

use std::path::Path;

use globset::{Glob, GlobMatcher};
use regex_automata::{Anchored, Input, meta::Regex};

use super::{Host, Inventory};
use crate::order::Op;
use crate::report::record;
use crate::untrusted::one_line;

/// `--limit @failed`: the keyword, not the file `./failed`.
pub const FAILED: &str = "@failed";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectError {
    #[error("--limit: `{0}` matches no host or group in the inventory")]
    NoMatch(String),
    #[error("--limit: `{pattern}` selects no host")]
    Empty { pattern: String },
    #[error("--limit: `{0}` is not a valid pattern: {1}")]
    BadPattern(String, String),
    #[error("--limit: `{0}`: {1}")]
    File(String, String),
    #[error("--limit: `{0}`: the subscript is beyond the {1} host(s) the pattern matches")]
    Subscript(String, usize),
    #[error("--limit: `@failed`: {0}")]
    Failed(String),
}

/// What `@failed` re-runs: the command (`upgrade`) and the package name it
/// is about (`None` for `enroll`), and where the run records are kept.
#[derive(Debug, Clone, Copy)]
pub struct Rerun<'a> {
    pub op: Op,
    pub name: Option<&'a str>,
    /// `None` when neither `XDG_STATE_HOME` nor `HOME` is set.
    pub state_home: Option<&'a Path>,
}

impl Rerun<'_> {
    /// `upgrade hello`, as the errors name the run looked for.
    fn what(&self) -> String {
        match self.name {
            Some(name) => format!("{} {name}", self.op.as_str()),
            None => self.op.as_str().to_owned(),
        }
    }

    /// The hosts that did not succeed (status not [ok for
    /// exit](crate::outcome::Status::ok_for_exit): not-attempted ones
    /// included) in the newest run record of this command and package,
    /// and that run, named for errors: `upgrade hello at 2026-…`.
    fn failed_hosts(&self) -> Result<(Vec<String>, String), SelectError> {
        let what = self.what();
        let state_home = self.state_home.ok_or_else(|| {
            SelectError::Failed(
                "neither XDG_STATE_HOME nor HOME is set: no run records to read".into(),
            )
        })?;
        let found = record::last_run(state_home, self.op, self.name)
            .map_err(|e| SelectError::Failed(e.to_string()))?;
        let Some((report, _)) = found else {
            let file = if Path::new("failed").exists() {
                " (for the file `failed`, write `@./failed`)"
            } else {
                ""
            };
            return Err(SelectError::Failed(format!(
                "no run of `{what}` is recorded under {}{file}",
                crate::state_home::runs_dir(state_home).display()
            )));
        };
        let run = format!("`{what}` of {}", report.started);
        let names: Vec<String> = report
            .hosts
            .into_iter()
            .filter(|h| !h.outcome.status.ok_for_exit())
            .map(|h| h.host)
            .collect();
        if names.is_empty() {
            return Err(SelectError::Failed(format!(
                "every host succeeded in the last {run}: nothing to re-run"
            )));
        }
        Ok((names, run))
    }
}

/// Whether `limit` uses `@failed`: the command must know what it re-runs
/// (its package's name) before it selects hosts.
pub fn uses_failed(limit: Option<&str>) -> bool {
    limit.is_some_and(|limit| split_host_pattern(limit).iter().any(|p| p == FAILED))
}

/// The hosts `limit` selects (every host when `None`), for a command that
/// keeps no run records: `@failed` is refused.
pub fn select_hosts<'a>(
    inventory: &'a Inventory,
    limit: Option<&str>,
) -> Result<Vec<&'a Host>, SelectError> {
    select_hosts_rerunning(inventory, limit, None)
}

/// The hosts `limit` selects (every host when `None`); `@failed` takes the
/// hosts that did not succeed in the run `rerun` says, which must all be
/// in `inventory` (none is dropped without a word).
pub fn select_hosts_rerunning<'a>(
    inventory: &'a Inventory,
    limit: Option<&str>,
    rerun: Option<&Rerun<'_>>,
) -> Result<Vec<&'a Host>, SelectError> {
    let Some(limit) = limit.filter(|l| !l.trim().is_empty()) else {
        return Ok(inventory.hosts.iter().collect());
    };
    let mut split = split_host_pattern(limit);
    let mut failed = Vec::new();
    if split.iter().any(|p| p == FAILED) {
        split.retain(|p| p != FAILED);
        let rerun = rerun.ok_or_else(|| {
            SelectError::Failed(
                "only install, upgrade, rollback, remove and enroll keep run records to re-run"
                    .into(),
            )
        })?;
        let (names, run) = rerun.failed_hosts()?;
        for name in names {
            let at = inventory
                .hosts
                .iter()
                .position(|h| h.name == name)
                .ok_or_else(|| {
                    SelectError::Failed(format!(
                        "{name} did not succeed in the last {run}, and is not in the inventory"
                    ))
                })?;
            failed.push(at);
        }
    }
    let patterns = expand_files(split)?;
    let mut positives = Vec::new();
    let mut intersections = Vec::new();
    let mut exclusions = Vec::new();
    for raw in &patterns {
        match raw.chars().next() {
            Some('!') => exclusions.push(raw.as_str()),
            Some('&') => intersections.push(raw.as_str()),
            _ => positives.push(raw.as_str()),
        }
    }
    let count = inventory.hosts.len();
    let mut selected = if positives.is_empty() && failed.is_empty() {
        vec![true; count]
    } else {
        vec![false; count]
    };
    for at in failed {
        selected[at] = true;
    }
    for raw in positives {
        // Ansible's `_evaluate_patterns`: a plain host name is that host,
        // even when a group has the same name.
        let hit = match inventory.hosts.iter().position(|h| h.name == raw) {
            Some(at) => (0..count).map(|i| i == at).collect(),
            None => match_one(inventory, raw, raw)?,
        };
        for (slot, hit) in selected.iter_mut().zip(hit) {
            *slot |= hit;
        }
    }
    for raw in intersections {
        let hit = match_one(inventory, raw, &raw[1..])?;
        for (slot, hit) in selected.iter_mut().zip(hit) {
            *slot &= hit;
        }
    }
    for raw in exclusions {
        let hit = match_one(inventory, raw, &raw[1..])?;
        for (slot, hit) in selected.iter_mut().zip(hit) {
            *slot &= !hit;
        }
    }
    let selected: Vec<&Host> = inventory
        .hosts
        .iter()
        .zip(selected)
        .filter(|(_, keep)| *keep)
        .map(|(host, _)| host)
        .collect();
    if selected.is_empty() {
        return Err(SelectError::Empty {
            pattern: limit.to_owned(),
        });
    }
    Ok(selected)
}

/// Ansible's `split_host_pattern`: `,` separates; without a comma, `:`
/// does, unless the whole text parses as one address (IPv6, `host:port`,
/// `[v6]:port`, a host range).
pub fn split_host_pattern(text: &str) -> Vec<String> {
    let parts: Vec<String> = if text.contains(',') {
        text.split(',').map(str::to_owned).collect()
    } else if is_one_address(text.trim()) {
        vec![text.to_owned()]
    } else {
        colon_split(text)
    };
    parts
        .into_iter()
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

/// `re.findall(r'(?:[^\s:\[\]]|\[[^\]]*\])+', text)` from `split_host_pattern`.
fn colon_split(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '[' {
            // A complete bracketed expression stays whole; a lone `[` ends the word.
            let rest: String = chars.clone().collect();
            if let Some(end) = rest.find(']') {
                current.push('[');
                current.push_str(&rest[..=end]);
                for _ in 0..rest[..=end].chars().count() {
                    chars.next();
                }
                continue;
            }
        }
        if c.is_whitespace() || matches!(c, ':' | '[' | ']') {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
        } else {
            current.push(c);
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Whether Ansible's `parse_address(text, allow_ranges=True)` accepts `text`.
fn is_one_address(text: &str) -> bool {
    let is_port = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if let Some(rest) = text.strip_prefix('[')
        && let Some((inside, after)) = rest.split_once(']')
    {
        // `[v6]:port` or `[host]:port`; a bare `[v6]` too.
        let port_ok = after.is_empty() || after.strip_prefix(':').is_some_and(is_port);
        return port_ok && (is_ipv6(inside) || is_host_name(inside));
    }
    if (text.matches(':').count() >= 2 || (text.contains(':') && text.contains('[')))
        && is_ipv6(text)
    {
        return true;
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') || host.contains('[') => {
            (is_port(port) && is_host_name(host)) || is_host_name(text)
        }
        Some(_) => false,
        None => is_host_name(text),
    }
}

/// An IPv6 address, allowing `[x:y]` hex ranges in place of a group.
fn is_ipv6(text: &str) -> bool {
    let mut plain = String::new();
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        plain.push_str(&rest[..open]);
        let Some(close) = rest[open..].find(']') else {
            return false;
        };
        let inner = &rest[open + 1..open + close];
        let Some((from, _)) = inner.split_once(':') else {
            return false;
        };
        if from.is_empty() || !from.bytes().all(|b| b.is_ascii_hexdigit()) {
            return false;
        }
        plain.push_str(from);
        rest = &rest[open + close + 1..];
    }
    plain.push_str(rest);
    plain.parse::<std::net::Ipv6Addr>().is_ok()
}

/// A host name or IPv4 address, with Ansible ranges (`web[01:20]`, `db-[a:c]`).
fn is_host_name(text: &str) -> bool {
    if text.is_empty() {
        return false;
    }
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(inner) = rest.strip_prefix('[') {
            let Some(close) = inner.find(']') else {
                return false;
            };
            let range = &inner[..close];
            let ok = range.split(':').count() >= 2
                && range.split(':').count() <= 3
                && range.split(':').take(2).all(|part| {
                    !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric())
                });
            if !ok {
                return false;
            }
            rest = &inner[close + 1..];
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            if !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
                return false;
            }
            rest = &rest[c.len_utf8()..];
        }
    }
    true
}

/// Replaces each `@FILE` by the lines of FILE (as Ansible's `subset`).
fn expand_files(patterns: Vec<String>) -> Result<Vec<String>, SelectError> {
    let mut out = Vec::new();
    for pattern in patterns {
        let Some(file) = pattern.strip_prefix('@') else {
            out.push(pattern);
            continue;
        };
        let path = Path::new(file);
        if file.is_empty() || path.is_dir() {
            return Err(SelectError::File(
                pattern.clone(),
                "`@` must be followed by a file of host names, one per line".into(),
            ));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| SelectError::File(pattern.clone(), super::io_message(&e)))?;
        out.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned),
        );
    }
    Ok(out)
}

/// For each host, whether `pattern` (without its `!` or `&`) selects it.
/// A pattern naming no host and no group (not even an empty one) is an error.
fn match_one(inventory: &Inventory, raw: &str, pattern: &str) -> Result<Vec<bool>, SelectError> {
    if pattern.is_empty() || pattern.starts_with(['!', '&']) {
        return Err(SelectError::BadPattern(
            raw.to_owned(),
            "expected a name, glob or `~regex` after `!` or `&`".into(),
        ));
    }
    let (pattern, subscript) = split_subscript(raw, pattern)?;
    let name_matches = matcher(raw, pattern)?;
    let count = inventory.hosts.len();
    if pattern == "all" {
        return apply_subscript(raw, vec![true; count], subscript);
    }
    // `all` and `ungrouped` always exist in Ansible, even when empty.
    let groups_hit = inventory.groups.iter().any(|g| name_matches(g))
        || name_matches("all")
        || name_matches("ungrouped");
    let host_in_group = |host: &Host| {
        name_matches("all")
            || host.groups.iter().any(|g| name_matches(g))
            || (host.groups.is_empty() && name_matches("ungrouped"))
    };
    // Ansible looks at host names only when no group matched, or for globs and regexes.
    let special = pattern.starts_with('~') || pattern.contains(['.', '?', '*', '[']);
    let hits: Vec<bool> = inventory
        .hosts
        .iter()
        .map(|host| host_in_group(host) || ((!groups_hit || special) && name_matches(&host.name)))
        .collect();
    if !groups_hit && !hits.iter().any(|h| *h) {
        return Err(SelectError::NoMatch(raw.to_owned()));
    }
    apply_subscript(raw, hits, subscript)
}

/// A name test: a `~regex` (anchored at the start), a glob, or equality.
/// Whether a host or group name matches a pattern.
type NameTest = Box<dyn Fn(&str) -> bool>;

fn matcher(raw: &str, pattern: &str) -> Result<NameTest, SelectError> {
    if let Some(expression) = pattern.strip_prefix('~') {
        let regex = Regex::new(expression)
            .map_err(|e| SelectError::BadPattern(raw.to_owned(), one_line(e)))?;
        return Ok(Box::new(move |name| {
            regex.is_match(Input::new(name).anchored(Anchored::Yes))
        }));
    }
    if pattern.contains(['*', '?', '[']) {
        let glob: GlobMatcher = Glob::new(pattern)
            .map_err(|e| SelectError::BadPattern(raw.to_owned(), e.kind().to_string()))?
            .compile_matcher();
        return Ok(Box::new(move |name| glob.is_match(name)));
    }
    let pattern = pattern.to_owned();
    Ok(Box::new(move |name| name == pattern))
}

/// Start and inclusive end (`None`: one host; `Some(None)`: to the last).
type Subscript = (i64, Option<Option<usize>>);

/// Ansible's `_split_subscript`: `PATTERN[N]`, `PATTERN[A:B]`, `PATTERN[A:]`.
fn split_subscript<'p>(
    raw: &str,
    pattern: &'p str,
) -> Result<(&'p str, Option<Subscript>), SelectError> {
    if pattern.starts_with('~') || !pattern.ends_with(']') {
        return Ok((pattern, None));
    }
    let Some(open) = pattern.rfind('[') else {
        return Ok((pattern, None));
    };
    let (base, inner) = (&pattern[..open], &pattern[open + 1..pattern.len() - 1]);
    if base.is_empty() {
        return Ok((pattern, None));
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let number = |s: &str| {
        s.parse::<i64>()
            .map_err(|_| SelectError::BadPattern(raw.to_owned(), "subscript too large".into()))
    };
    if digits(inner.strip_prefix('-').unwrap_or(inner)) {
        return Ok((base, Some((number(inner)?, None))));
    }
    if let Some((start, end)) = inner.split_once([':', '-'])
        && digits(start)
        && (end.is_empty() || digits(end))
    {
        if inner.contains('-') {
            return Err(SelectError::BadPattern(
                raw.to_owned(),
                "use an inclusive `[x:y]` subscript, not `[x-y]`".into(),
            ));
        }
        let start = number(start)?;
        // Ansible's `if end:` makes `[A:0]` the single host A.
        return Ok(match end {
            "" => (base, Some((start, Some(None)))),
            _ if number(end)? == 0 => (base, Some((start, None))),
            _ => (base, Some((start, Some(Some(number(end)? as usize))))),
        });
    }
    Ok((pattern, None))
}

/// Ansible's `_apply_subscript`, over the matched hosts in inventory order.
fn apply_subscript(
    raw: &str,
    hits: Vec<bool>,
    subscript: Option<Subscript>,
) -> Result<Vec<bool>, SelectError> {
    let Some((start, end)) = subscript else {
        return Ok(hits);
    };
    let matched: Vec<usize> = (0..hits.len()).filter(|&i| hits[i]).collect();
    let out_of_range = || SelectError::Subscript(raw.to_owned(), matched.len());
    let picked: Vec<usize> = match end {
        None => {
            let at = if start < 0 {
                matched.len().checked_sub(start.unsigned_abs() as usize)
            } else {
                Some(start as usize)
            };
            let at = at
                .filter(|&at| at < matched.len())
                .ok_or_else(out_of_range)?;
            vec![matched[at]]
        }
        Some(end) => {
            let last = match end {
                None => matched.len().saturating_sub(1),
                Some(end) => end.min(matched.len().saturating_sub(1)),
            };
            let first = start as usize;
            if first > last || first >= matched.len() {
                Vec::new()
            } else {
                matched[first..=last].to_vec()
            }
        }
    };
    let mut out = vec![false; hits.len()];
    for i in picked {
        out[i] = true;
    }
    Ok(out)
}
