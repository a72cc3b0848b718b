//! Differential test against real Ansible (issue 10 item 3): for a table of
//! inventories × `--limit` patterns, `swpush hosts --format json -i INV
//! --limit PATTERN` selects exactly the hosts Ansible's own
//! `InventoryManager.subset(PATTERN)` selects (ansible-core's code, run by
//! `tests/testsuite/ansible_oracle/select.py`, one process per inventory for every
//! pattern), cross-checked on one pattern per inventory with `ansible -i
//! INV all --limit PATTERN --list-hosts`; and each host's address, port and
//! user are what `ansible-inventory -i INV --list` resolves (defaults when
//! absent). Where Ansible only warns about a pattern that matches nothing,
//! swpush refuses: a swpush error counts as agreement only when Ansible
//! selects no host. Every disagreement is printed, then the test fails.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::swpush::Swpush;

const INVENTORIES: &[(&str, &str)] = &[
    (
        "nested-children",
        "all:
  children:
    prod:
      children:
        web:
        db:
      vars: {ansible_user: produser}
    web:
      hosts:
        web1: {ansible_host: 127.0.0.11}
        web2:
        web10:
      vars: {ansible_port: 2201}
    db:
      hosts:
        db1:
        db2: {ansible_user: dbadmin}
    staging:
      hosts:
        stage1:
        web2:
  hosts:
    lonely:
",
    ),
    (
        "group-in-several-places",
        "all:
  children:
    east:
      children:
        web:
          hosts:
            web1:
    west:
      children:
        web:
          hosts:
            web2:
          vars: {ansible_port: 2300}
    db:
      hosts:
        db1: {ansible_port: 2400}
",
    ),
    (
        "ungrouped-only",
        "all:
  hosts:
    web1: {ansible_host: 192.0.2.1, ansible_user: u1}
    db1: {ansible_port: 2222}
    cache1:
",
    ),
    (
        "vars-at-every-level",
        "all:
  vars: {ansible_user: everyone, ansible_port: 2000}
  children:
    prod:
      vars: {ansible_user: produser}
      children:
        web:
          vars: {ansible_port: 2100}
          hosts:
            web1:
            web2: {ansible_user: me}
    db:
      hosts:
        db1: {ansible_host: 198.51.100.7}
",
    ),
    (
        "group-priority",
        "all:
  children:
    a_low:
      vars: {ansible_user: low, ansible_group_priority: 10, ansible_port: 2001}
      hosts:
        web1:
    z_high:
      vars: {ansible_user: high, ansible_group_priority: 1, ansible_port: 2002}
      hosts:
        web1:
        db1:
",
    ),
    (
        "same-depth-ties-by-name",
        "all:
  children:
    beta:
      vars: {ansible_port: 2102}
      hosts:
        web1:
        db1:
    alpha:
      vars: {ansible_port: 2101, ansible_user: alphauser}
      hosts:
        web1:
",
    ),
    (
        "deep-chain",
        "all:
  children:
    prod:
      children:
        web:
          children:
            web_east:
              hosts:
                web1:
                web2:
            web_west:
              hosts:
                web3: {ansible_host: 203.0.113.3}
        db:
          hosts:
            db1:
",
    ),
    (
        // swpush refuses a group named like a host (an inventory error);
        // here a host is named like a glob's prefix instead.
        "names-sharing-prefixes",
        "all:
  children:
    web:
      hosts:
        web1:
        webdb1:
    webdb:
      hosts:
        webdb2: {ansible_user: wd}
    db:
      hosts:
        db1:
        webdb1:
",
    ),
    (
        "children-defined-before",
        "all:
  children:
    web:
      hosts:
        web1:
    db:
      hosts:
        db1:
        db2:
    prod:
      children:
        web:
        db:
    staging:
      hosts:
        stage1: {ansible_port: 2022}
",
    ),
    (
        "many-hosts",
        "all:
  children:
    web:
      hosts:
        web1:
        web2:
        web3:
        web4:
        web5:
    db:
      hosts:
        db1:
        db2:
    prod:
      hosts:
        web1:
        web3:
        db1:
    staging:
      hosts:
        web2:
        db2:
",
    ),
    (
        "ini-sections-ranges-quotes",
        "# INI, with every kind of section
lonely ansible_host=192.0.2.9

[web]
web[01:03] ansible_port=2201
web10:2210 ansible_user=\"deploy\" # a comment

[db]
db-[a:c]
db[1:5:2] ansible_host='10.0.0.1'

[prod:children]
web
db

[prod:vars]
ansible_user=produser
ansible_port = 2300

[staging]
web02
stage1 ansible_user=st

[all:vars]
ansible_port=2000
",
    ),
    (
        "ini-children-before-definition",
        "[prod:children]
web

[web]
web1
web2 ansible_host=127.0.0.2

[web:vars]
ansible_user=webuser

[ungrouped]
cache1 ansible_port=2022
",
    ),
];

const PATTERNS: &[&str] = &[
    "all",
    "web",
    "web,db",
    "web:db",
    "prod:&web",
    "prod:!db",
    "!web",
    "&prod",
    "web*",
    "*1",
    "~web\\d",
    "~(web|db)1",
    "web[0]",
    "web[1:]",
    "web[-1]",
    "all:!ungrouped",
    "ungrouped",
    "db1,web2",
    "prod:&staging",
    "web:db:&prod:!web1",
    "*:!prod",
    "db[0:1]",
    "!db,&web",
];

fn scratch() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("ansible-oracle-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// An Ansible program with every file it writes inside `dir`.
fn ansible(program: &str, dir: &Path, args: &[&str]) -> Output {
    let config = dir.join("ansible.cfg");
    std::fs::write(&config, "[defaults]\n").expect("ansible.cfg");
    Command::new(program)
        .args(args)
        .env("HOME", dir)
        .env("ANSIBLE_HOME", dir.join(".ansible"))
        .env("ANSIBLE_LOCAL_TEMP", dir.join("tmp"))
        .env("ANSIBLE_CONFIG", &config)
        .env("ANSIBLE_LOCALHOST_WARNING", "False")
        .env("ANSIBLE_INVENTORY_ENABLED", "yaml,ini")
        .env("ANSIBLE_NOCOLOR", "1")
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"))
}

fn swpush_hosts(dir: &Path, inventory: &Path, limit: Option<&str>) -> Result<Value, String> {
    let mut run = Swpush::new("hosts").arg("-i").arg(inventory).json();
    if let Some(limit) = limit {
        run = run.arg("--limit").arg(limit);
    }
    let output = run
        .env("HOME", dir)
        .env("USER", "tester")
        .env_remove("SWPUSH_INVENTORY")
        .current_dir(dir)
        .run();
    if output.status.success() {
        serde_json::from_slice(&output.stdout).map_err(|e| format!("not JSON: {e}"))
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}

fn names(report: &Value) -> BTreeSet<String> {
    report
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h["host"].as_str().map(str::to_owned))
        .collect()
}

/// What Ansible says about one inventory.
struct Oracle {
    list: Value,
    selections: Value,
    /// `ansible --list-hosts` for the cross-checked pattern.
    listed: BTreeSet<String>,
}

fn ask_ansible(dir: &Path, inventory: &Path, cross_check: &str) -> Result<Oracle, String> {
    let inv = inventory.display().to_string();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/testsuite/ansible_oracle/select.py"
    );
    let patterns = serde_json::to_string(PATTERNS).expect("JSON");
    let run = |program: &str, args: &[&str]| -> Result<Value, String> {
        let output = ansible(program, dir, args);
        if !output.status.success() {
            return Err(format!(
                "{program} failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        serde_json::from_slice(&output.stdout).map_err(|e| format!("{program}: not JSON: {e}"))
    };
    let list = run("ansible-inventory", &["-i", &inv, "--list"])?;
    let python = ansible_python()?;
    let selections = run(&python, &[script, &inv, &patterns])?;
    let listed = ansible(
        "ansible",
        dir,
        &["-i", &inv, "all", "--limit", cross_check, "--list-hosts"],
    );
    let listed = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("hosts ("))
        .map(str::to_owned)
        .collect();
    Ok(Oracle {
        list,
        selections,
        listed,
    })
}

/// The interpreter Ansible runs under (the `#!` line of `ansible`), which
/// need not be the first `python3` in PATH.
fn ansible_python() -> Result<String, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let ansible = std::env::split_paths(&path)
        .map(|dir| dir.join("ansible"))
        .find(|p| p.is_file())
        .ok_or("ansible is not installed (scripts/install-test-deps.sh)")?;
    let text =
        std::fs::read_to_string(&ansible).map_err(|e| format!("{}: {e}", ansible.display()))?;
    let first = text.lines().next().unwrap_or("");
    first
        .strip_prefix("#!")
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .ok_or_else(|| format!("{}: no #! line", ansible.display()))
}

#[test]
fn swpush_selects_and_resolves_as_ansible_does() {
    let root = scratch();
    let handles: Vec<_> = INVENTORIES
        .iter()
        .enumerate()
        .map(|(i, (name, yaml))| {
            let dir = root.join(name);
            std::fs::create_dir_all(&dir).expect("case dir");
            let file = if yaml.starts_with("all:") {
                "inventory.yml"
            } else {
                "inventory.ini"
            };
            let inventory = dir.join(file);
            std::fs::write(&inventory, yaml).expect("inventory");
            let cross_check = PATTERNS[i % PATTERNS.len()];
            let (d, inv) = (dir.clone(), inventory.clone());
            let oracle = std::thread::spawn(move || ask_ansible(&d, &inv, cross_check));
            (*name, dir, inventory, cross_check, oracle)
        })
        .collect();
    let mut failures = Vec::new();
    let mut compared = 0;
    for (name, dir, inventory, cross_check, oracle) in handles {
        let oracle = match oracle.join().expect("ansible thread") {
            Ok(oracle) => oracle,
            Err(why) => {
                failures.push(format!("{name}: {why}"));
                continue;
            }
        };
        let selected = |pattern: &str| -> Result<BTreeSet<String>, String> {
            let answer = &oracle.selections[pattern];
            match &answer["hosts"] {
                Value::Array(hosts) => Ok(hosts
                    .iter()
                    .filter_map(|h| h.as_str().map(str::to_owned))
                    .collect()),
                _ => Err(answer["error"].as_str().unwrap_or("no answer").to_owned()),
            }
        };
        if Ok(&oracle.listed) != selected(cross_check).as_ref() {
            failures.push(format!(
                "{name}: oracle: `ansible --list-hosts --limit {cross_check}` {:?} vs InventoryManager {:?}",
                oracle.listed,
                selected(cross_check)
            ));
        }
        // The same inventory as `ansible-inventory --list` prints it (JSON),
        // and as an executable inventory printing that JSON.
        let listed_json = dir.join("list.json");
        std::fs::write(&listed_json, oracle.list.to_string()).expect("list.json");
        let script = dir.join("inventory.sh");
        std::fs::write(
            &script,
            format!("#!/bin/sh\nexec cat '{}'\n", listed_json.display()),
        )
        .expect("script");
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        for (label, inventory) in [
            ("", &inventory),
            (" (JSON)", &listed_json),
            (" (script)", &script),
        ] {
            // Address, port and user of every host.
            match swpush_hosts(&dir, inventory, None) {
                Err(why) => failures.push(format!("{name}{label}: swpush hosts failed: {why}")),
                Ok(all) => {
                    for host in all.as_array().into_iter().flatten() {
                        let host_name = host["host"].as_str().unwrap_or("");
                        let vars = &oracle.list["_meta"]["hostvars"][host_name];
                        let expected = (
                            vars["ansible_host"]
                                .as_str()
                                .unwrap_or(host_name)
                                .to_owned(),
                            vars["ansible_port"].as_u64().unwrap_or(22),
                            vars["ansible_user"].as_str().unwrap_or("tester").to_owned(),
                        );
                        let got = (
                            host["address"].as_str().unwrap_or("").to_owned(),
                            host["port"].as_u64().unwrap_or(0),
                            host["user"].as_str().unwrap_or("").to_owned(),
                        );
                        compared += 1;
                        if got != expected {
                            failures.push(format!(
                                "{name}{label}: {host_name}: swpush (address, port, user) {got:?}, ansible {expected:?}"
                            ));
                        }
                    }
                }
            }
            // Every pattern.
            for pattern in PATTERNS {
                // A subscript counts hosts in inventory order, and the
                // `--list` JSON is another inventory, in another order.
                if !label.is_empty() && pattern.ends_with(']') {
                    continue;
                }
                compared += 1;
                let swpush = swpush_hosts(&dir, inventory, Some(pattern)).map(|r| names(&r));
                let warned = oracle.selections[pattern]["unmatched"]
                    .as_array()
                    .is_some_and(|parts| !parts.is_empty());
                let agree = match (&swpush, selected(pattern)) {
                    (Ok(got), Ok(expected)) => *got == expected && !warned,
                    // swpush refuses where Ansible only warns that a part
                    // matches nothing, and where Ansible would select no host.
                    (Err(why), Ok(_)) if why.contains("matches no host or group") => warned,
                    (Err(_), Ok(expected)) => expected.is_empty(),
                    (Err(_), Err(_)) => true,
                    (Ok(_), Err(_)) => false,
                };
                if !agree {
                    failures.push(format!(
                        "{name}{label}: --limit '{pattern}': swpush {swpush:?}, ansible {}",
                        oracle.selections[pattern]
                    ));
                }
            }
        }
    }
    eprintln!("{compared} comparisons, {} disagreements", failures.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
