//! The JSON of `ansible-inventory --list` (and of an executable inventory
//! run with `--list`): groups with `hosts`, `children` and `vars`, and
//! `_meta.hostvars`. Rewritten as the equivalent Ansible YAML inventory, so
//! group semantics, precedence and refusals are [`super::ansible`]'s.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::vars::Source;
use super::{InventoryError, MAX_INVENTORY_BYTES, RawInventory};

/// How long an executable inventory may take to print its `--list`.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether `text` is inventory JSON: an object (YAML never starts a
/// document of groups with `{"`).
pub fn looks_like_json(text: &str) -> bool {
    let text = text.trim_start();
    text.starts_with('{') && serde_json::from_str::<Map<String, Value>>(text).is_ok()
}

pub fn parse(source: &Source) -> Result<RawInventory, InventoryError> {
    let whole = |message: String| InventoryError {
        location: source.path.display().to_string(),
        message,
    };
    let top: Map<String, Value> =
        serde_json::from_str(source.text).map_err(|e| whole(format!("not inventory JSON: {e}")))?;
    let mut yaml = String::new();
    let mut all_hosts = Map::new();
    if let Some(meta) = top.get("_meta") {
        let hostvars = meta.get("hostvars").and_then(Value::as_object);
        for (host, vars) in hostvars.into_iter().flatten() {
            if !vars.is_object() {
                return Err(whole(format!("_meta.hostvars.{host} is not an object")));
            }
            all_hosts.insert(host.clone(), vars.clone());
        }
    }
    let json = |v: &Value| serde_json::to_string(v).unwrap_or_default();
    let names = |group: &str, value: &Value, key: &str| -> Result<Vec<String>, InventoryError> {
        match value.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| {
                    i.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| whole(format!("{group}.{key}: expected names")))
                })
                .collect(),
            Some(_) => Err(whole(format!("{group}.{key}: expected a list of names"))),
        }
    };
    for (group, value) in &top {
        if group == "_meta" {
            continue;
        }
        // The old script form: a group may be just a list of hosts.
        let value = match value {
            Value::Array(_) => &serde_json::json!({ "hosts": value }),
            Value::Object(_) => value,
            _ => return Err(whole(format!("group `{group}` is not an object"))),
        };
        yaml.push_str(&format!("{}:\n", json(&Value::String(group.clone()))));
        let hosts = names(group, value, "hosts")?;
        let own = if group == "all" {
            Some(&all_hosts)
        } else {
            None
        };
        if !hosts.is_empty() || own.is_some_and(|h| !h.is_empty()) {
            yaml.push_str("  hosts:\n");
            for host in &hosts {
                let vars = all_hosts.get(host).filter(|_| group == "all");
                yaml.push_str(&format!(
                    "    {}: {}\n",
                    json(&Value::String(host.clone())),
                    vars.map_or("{}".into(), json)
                ));
            }
        }
        if let Some(vars) = value.get("vars").filter(|v| !v.is_null()) {
            yaml.push_str(&format!("  vars: {}\n", json(vars)));
        }
        let children = names(group, value, "children")?;
        if !children.is_empty() {
            yaml.push_str("  children:\n");
            for child in children {
                yaml.push_str(&format!("    {}:\n", json(&Value::String(child))));
            }
        }
    }
    // Host vars go on the host under `all`, the highest precedence, as the
    // resolved vars of `ansible-inventory --list` are.
    let listed_under_all: Vec<String> = top
        .get("all")
        .map(|a| names("all", a, "hosts"))
        .transpose()?
        .unwrap_or_default();
    let extra: Vec<_> = all_hosts
        .iter()
        .filter(|(h, _)| !listed_under_all.contains(h))
        .collect();
    if !extra.is_empty() {
        if top.contains_key("all") {
            return parse_with_all_hosts(source, &top, &all_hosts);
        }
        yaml.push_str("all:\n  hosts:\n");
        for (host, vars) in extra {
            yaml.push_str(&format!(
                "    {}: {}\n",
                json(&Value::String(host.clone())),
                json(vars)
            ));
        }
    }
    let yaml_source = Source {
        text: &yaml,
        path: source.path,
    };
    super::ansible::parse(&yaml_source).map_err(|e| whole(e.message))
}

/// `all` present as a group and host vars for hosts it does not list:
/// rewrite with those hosts added to `all`'s hosts.
fn parse_with_all_hosts(
    source: &Source,
    top: &Map<String, Value>,
    hostvars: &Map<String, Value>,
) -> Result<RawInventory, InventoryError> {
    let mut top = top.clone();
    let all = top
        .entry("all")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(all) = all.as_object_mut() {
        let hosts = all
            .entry("hosts")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Some(list) = hosts.as_array_mut() {
            for host in hostvars.keys() {
                if !list.iter().any(|h| h.as_str() == Some(host)) {
                    list.push(Value::String(host.clone()));
                }
            }
        }
    }
    let text = serde_json::to_string(&top).unwrap_or_default();
    parse(&Source {
        text: &text,
        path: source.path,
    })
}

/// Runs an executable inventory with `--list` and returns what it printed.
pub fn run_script(path: &Path) -> Result<String, InventoryError> {
    let fail = |message: String| InventoryError {
        location: path.display().to_string(),
        message,
    };
    let mut child = Command::new(path)
        .arg("--list")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            fail(format!(
                "executable inventory: cannot run it: {}",
                super::io_message(&e)
            ))
        })?;
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.take(MAX_INVENTORY_BYTES + 1).read_to_end(&mut buf);
        }
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.take(4096).read_to_end(&mut buf);
        }
        buf
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < SCRIPT_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(20))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!(
                    "executable inventory: `--list` did not finish within {} s",
                    SCRIPT_TIMEOUT.as_secs()
                )));
            }
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    if !status.success() {
        let said = String::from_utf8_lossy(&stderr);
        let said = said
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim();
        return Err(fail(format!(
            "executable inventory: `--list` failed ({status}){}",
            if said.is_empty() {
                String::new()
            } else {
                format!(": {}", super::vars::quoted(said))
            }
        )));
    }
    if stdout.len() as u64 > MAX_INVENTORY_BYTES {
        return Err(fail(
            "executable inventory: `--list` printed too much".into(),
        ));
    }
    let text = String::from_utf8(stdout)
        .map_err(|_| fail("executable inventory: `--list` printed non-UTF-8".into()))?;
    if !looks_like_json(&text) {
        return Err(fail(
            "executable inventory: `--list` did not print a JSON object".into(),
        ));
    }
    Ok(text)
}
