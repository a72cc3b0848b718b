//! Ansible's INI inventory: `[group]` host lines (`web1 ansible_port=2222
//! user="a b"`), `[group:vars]` (`key=value`), `[group:children]` (group
//! names), host ranges (`web[01:20]`, `web[1:10:2]`, `db-[a:c]`); hosts
//! before any section are ungrouped.
//!
//! The file is checked here (one `FILE:LINE` error per mistake) and then
//! rewritten as the equivalent Ansible YAML inventory, so that group
//! semantics and variable precedence are exactly those of
//! [`super::ansible`]; an error found there is mapped back to the INI line.

use indexmap::IndexMap;

use super::vars::{Source, quoted};
use super::{InventoryError, RawInventory};

/// Most hosts one range may expand to.
const MAX_RANGE: usize = 100_000;

/// Whether `text` is an INI inventory: its first line that is not blank or
/// a comment is a `[section]` header or a host line without a YAML `key:`.
pub fn looks_like_ini(text: &str) -> bool {
    let Some(first) = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with(['#', ';']) && l != &"---")
    else {
        return false;
    };
    if first.starts_with('[') {
        return first.ends_with(']') && !first.contains(", ") && !first.contains('"');
    }
    let head = first.split_whitespace().next().unwrap_or("");
    !head.ends_with(':') && !first.contains(": ") && !first.starts_with(['-', '{'])
}

#[derive(Default)]
struct Group {
    /// Host → its `key=value` pairs, each with its line.
    hosts: IndexMap<String, Vec<(String, String, usize)>>,
    vars: Vec<(String, String, usize)>,
    children: Vec<(String, usize)>,
    line: usize,
}

enum Section {
    Hosts,
    Vars,
    Children,
}

pub fn parse(source: &Source) -> Result<RawInventory, InventoryError> {
    let error = |line: usize, message: String| InventoryError {
        location: format!("{}:{line}", source.path.display()),
        message,
    };
    let mut groups: IndexMap<String, Group> = IndexMap::new();
    groups.insert("all".into(), Group::default());
    // Hosts before any section, and `[ungrouped]`, are `all`'s own hosts.
    let (mut current, mut section) = ("all".to_owned(), Section::Hosts);
    for (index, raw) in source.text.lines().enumerate() {
        let n = index + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if let Some(header) = line.strip_prefix('[') {
            let header = header.strip_suffix(']').ok_or_else(|| {
                error(
                    n,
                    format!("`{}`: a section header ends with `]`", quoted(line)),
                )
            })?;
            let (name, kind) = match header.split_once(':') {
                Some((name, "vars")) => (name, Section::Vars),
                Some((name, "children")) => (name, Section::Children),
                Some((_, other)) => {
                    return Err(error(
                        n,
                        format!(
                            "unknown section type `:{}` (expected `:vars` or `:children`)",
                            quoted(other)
                        ),
                    ));
                }
                None => (header, Section::Hosts),
            };
            check_group_name(name).map_err(|why| error(n, why))?;
            let name = if name == "ungrouped" { "all" } else { name };
            groups.entry(name.to_owned()).or_default().line = n;
            (current, section) = (name.to_owned(), kind);
            continue;
        }
        let group = groups.entry(current.clone()).or_default();
        match section {
            Section::Vars => {
                let (key, value) = line.split_once('=').ok_or_else(|| {
                    error(
                        n,
                        format!(
                            "`{}`: expected `key=value` in a `:vars` section",
                            quoted(line)
                        ),
                    )
                })?;
                let value = unquote(value.trim()).map_err(|why| error(n, why))?;
                group.vars.push((key.trim().to_owned(), value, n));
            }
            Section::Children => {
                check_group_name(line).map_err(|why| error(n, why))?;
                group.children.push((line.to_owned(), n));
            }
            Section::Hosts => {
                let words = split_words(line).map_err(|why| error(n, why))?;
                let Some((pattern, rest)) = words.split_first() else {
                    continue;
                };
                let mut vars = Vec::new();
                for word in rest {
                    let (key, value) = word.split_once('=').ok_or_else(|| {
                        error(
                            n,
                            format!(
                                "`{}`: expected `key=value` after the host name",
                                quoted(word)
                            ),
                        )
                    })?;
                    vars.push((key.to_owned(), value.to_owned(), n));
                }
                let (pattern, port) = match pattern.rsplit_once(':') {
                    Some((host, port))
                        if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) =>
                    {
                        (host, Some(port))
                    }
                    _ => (pattern.as_str(), None),
                };
                if let Some(port) = port {
                    vars.push(("ansible_port".into(), port.to_owned(), n));
                }
                for host in expand_range(pattern).map_err(|why| error(n, why))? {
                    group
                        .hosts
                        .entry(host)
                        .or_default()
                        .extend(vars.iter().cloned());
                }
            }
        }
    }
    let (yaml, lines) = to_yaml(groups);
    let yaml_source = Source {
        text: &yaml,
        path: source.path,
    };
    super::ansible::parse(&yaml_source).map_err(|e| remap(e, source, &lines))
}

fn check_group_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "[]:,=".contains(c))
    {
        return Err(format!("`{}` is not a group name", quoted(name)));
    }
    Ok(())
}

/// Splits a host line into words as Python's `shlex` does for Ansible:
/// quotes group, `#` starts a comment.
fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some(q) if q == c => break,
                        Some('\\') if c == '"' => word.extend(chars.next()),
                        Some(other) => word.push(other),
                        None => return Err(format!("unclosed {c} quote")),
                    }
                }
            }
            '#' if !in_word => break,
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// A `:vars` value: surrounding quotes removed.
fn unquote(value: &str) -> Result<String, String> {
    for q in ['"', '\''] {
        if let Some(inner) = value.strip_prefix(q) {
            return inner
                .strip_suffix(q)
                .map(str::to_owned)
                .ok_or_else(|| format!("unclosed {q} quote"));
        }
    }
    Ok(value.to_owned())
}

/// Expands Ansible host ranges: `web[01:03]`, `web[1:10:2]`, `db-[a:c]`.
pub fn expand_range(pattern: &str) -> Result<Vec<String>, String> {
    let Some(open) = pattern.find('[') else {
        return Ok(vec![pattern.to_owned()]);
    };
    let close = pattern[open..]
        .find(']')
        .map(|c| open + c)
        .ok_or_else(|| format!("`{}`: a range `[` without `]`", quoted(pattern)))?;
    let (head, inner, tail) = (
        &pattern[..open],
        &pattern[open + 1..close],
        &pattern[close + 1..],
    );
    let bad = || {
        format!(
            "`{}`: a range is [START:END] or [START:END:STEP]",
            quoted(pattern)
        )
    };
    let parts: Vec<&str> = inner.split(':').collect();
    let (start, end, step) = match parts.as_slice() {
        [s, e] => (*s, *e, 1usize),
        [s, e, step] => (
            *s,
            *e,
            step.parse().ok().filter(|s| *s > 0).ok_or_else(bad)?,
        ),
        _ => return Err(bad()),
    };
    let mut items = Vec::new();
    if let (Ok(a), Ok(b)) = (start.parse::<u64>(), end.parse::<u64>()) {
        let width = if start.starts_with('0') {
            start.len()
        } else {
            0
        };
        if a > b || (b - a) as usize / step >= MAX_RANGE {
            return Err(bad());
        }
        let mut i = a;
        while i <= b {
            items.push(format!("{i:0width$}"));
            i += step as u64;
        }
    } else if let ([a], [b]) = (start.as_bytes(), end.as_bytes())
        && a.is_ascii_alphabetic()
        && b.is_ascii_alphabetic()
        && a <= b
    {
        items.extend((*a..=*b).step_by(step).map(|c| (c as char).to_string()));
    } else {
        return Err(bad());
    }
    let mut out = Vec::new();
    for item in items {
        for rest in expand_range(tail)? {
            out.push(format!("{head}{item}{rest}"));
        }
    }
    Ok(out)
}

/// The equivalent YAML, and for each YAML line (0-based) the INI line.
fn to_yaml(groups: IndexMap<String, Group>) -> (String, Vec<usize>) {
    let mut yaml = String::new();
    let mut lines = Vec::new();
    let mut push = |text: String, line: usize| {
        yaml.push_str(&text);
        yaml.push('\n');
        lines.push(line);
    };
    let json = |s: &str| serde_json::to_string(s).unwrap_or_default();
    for (name, group) in &groups {
        push(format!("{}:", json(name)), group.line);
        if !group.hosts.is_empty() {
            push("  hosts:".into(), group.line);
            for (host, vars) in &group.hosts {
                let line = vars.first().map_or(group.line, |v| v.2);
                let body: Vec<String> = vars
                    .iter()
                    .map(|(k, v, _)| format!("{}: {}", json(k), json(v)))
                    .collect();
                push(format!("    {}: {{{}}}", json(host), body.join(", ")), line);
            }
        }
        if !group.vars.is_empty() {
            push("  vars:".into(), group.line);
            for (k, v, line) in &group.vars {
                push(format!("    {}: {}", json(k), json(v)), *line);
            }
        }
        if !group.children.is_empty() {
            push("  children:".into(), group.line);
            for (child, line) in &group.children {
                push(format!("    {}:", json(child)), *line);
            }
        }
    }
    (yaml, lines)
}

/// An error located in the generated YAML, moved to the INI line.
fn remap(error: InventoryError, source: &Source, lines: &[usize]) -> InventoryError {
    let prefix = format!("{}:", source.path.display());
    let line = error
        .location
        .strip_prefix(&prefix)
        .and_then(|rest| rest.split(':').next())
        .and_then(|l| l.parse::<usize>().ok())
        .and_then(|l| lines.get(l.wrapping_sub(1)));
    InventoryError {
        location: match line {
            Some(line) if *line > 0 => format!("{prefix}{line}"),
            _ => source.path.display().to_string(),
        },
        message: error.message,
    }
}
