//! Ansible YAML inventories read by swpush exactly as Ansible builds them:
//! group membership merged across every mention of a group, `--limit`
//! selections, and the connection variables (`ansible_host`, `ansible_port`,
//! `ansible_user`) after Ansible's precedence. The oracle is the real
//! Ansible from Debian: one `ansible-inventory --list` per inventory (whose
//! JSON gives groups, children and resolved host vars) and one
//! `ansible --list-hosts` per inventory for its headline pattern. Needs no
//! sshd.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::swpush::Swpush;

/// One inventory and the `--limit` patterns to compare on it; the first
/// pattern is also checked with `ansible --list-hosts` itself.
struct Case {
    name: &'static str,
    yaml: &'static str,
    patterns: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        // Issue 9 item 4: `prod` names its children, defined after it.
        name: "children-by-name-defined-after",
        yaml: "all:
  children:
    prod:
      vars: {ansible_user: produser}
      children:
        web:
        db:
    web:
      hosts:
        web1: {ansible_host: 127.0.0.11}
        web2:
      vars: {ansible_port: 2201}
    db:
      hosts:
        db1:
    staging:
      hosts:
        stage1:
",
        patterns: &[
            "all,!prod",
            "prod",
            "web",
            "!prod",
            "prod,!web",
            "db,staging",
        ],
    },
    Case {
        // The same, children defined before the group that names them.
        name: "children-by-name-defined-before",
        yaml: "all:
  children:
    web:
      hosts: {web1: , web2: }
    db:
      hosts: {db1: }
      vars: {ansible_user: dba}
    prod:
      vars: {ansible_user: produser, ansible_port: 2300}
      children: {web: , db: }
    staging:
      hosts: {stage1: }
",
        patterns: &["all,!prod", "prod", "!db", "prod,!db1"],
    },
    Case {
        // One group mentioned three times, with hosts and vars each time,
        // under `all:` children, under another group and as a top-level key.
        name: "group-mentioned-several-times",
        yaml: "all:
  vars: {ansible_user: base, ansible_port: 2200}
  hosts:
    lone:
  children:
    prod:
      vars: {ansible_user: produser}
      children:
        web:
          vars: {ansible_port: 2201}
          hosts:
            web1:
    web:
      hosts:
        web2: {ansible_port: 2299}
      vars: {ansible_user: webuser}
    eu:
      children:
        web:
          hosts:
            web3: {ansible_host: 127.0.0.13}
      hosts:
        db1:
      vars: {ansible_user: euuser, ansible_port: 2400}
web:
  hosts:
    web4:
",
        patterns: &["all,!prod", "prod", "eu,!web", "!eu", "web*"],
    },
    Case {
        // A host under several groups: same-depth groups apply by name,
        // then by ansible_group_priority; the host's own mentions merge,
        // the later one winning per variable.
        name: "precedence-by-name-and-priority",
        yaml: "all:
  hosts:
    h1: {ansible_host: 127.0.0.21}
  children:
    beta:
      vars: {ansible_port: 2002, ansible_user: beta, ansible_group_priority: 0}
      hosts:
        h1: {ansible_user: own}
        h3:
    alpha:
      vars: {ansible_port: 2001, ansible_user: alpha}
      hosts: {h1: , h2: }
    gamma:
      vars: {ansible_port: 2003}
      hosts:
        h2:
        h1: {ansible_host: 127.0.0.22}
",
        patterns: &["alpha,!beta", "beta", "all,!gamma"],
    },
    Case {
        // A group made deeper after its own children were placed: the
        // children get deeper too, which changes which group's vars win.
        name: "depth-propagates-to-descendants",
        yaml: "all:
  children:
    a:
      vars: {ansible_port: 2101}
      children:
        b:
          vars: {ansible_user: buser}
          hosts: {y: , z: }
    f:
      children:
        g:
          children:
            h:
              vars: {ansible_user: huser, ansible_port: 2102}
              hosts: {y: }
    c:
      children:
        d:
          children:
            a:
",
        patterns: &["c", "all,!d", "f,!b", "b"],
    },
    Case {
        // A top-level group beside `all`, a group named in two parents,
        // and hosts only at the top.
        name: "top-level-groups-and-diamonds",
        yaml: "all:
  hosts:
    solo: {ansible_port: 2500}
  children:
    left:
      children: {shared: }
    right:
      children:
        shared:
          hosts:
            s1: {ansible_user: s1user}
      vars: {ansible_user: rightuser}
shared:
  hosts:
    s2:
  vars: {ansible_port: 2501}
left:
  vars: {ansible_port: 2502}
  hosts:
    l1:
",
        patterns: &["all,!left", "right", "shared,!s1", "left"],
    },
];

fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("ansible-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn ansible(program: &str, home: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env("HOME", home)
        .env("ANSIBLE_LOCALHOST_WARNING", "False")
        .env("ANSIBLE_INVENTORY_UNPARSED_WARNING", "False")
        .env("ANSIBLE_INVENTORY_ENABLED", "yaml")
        .env("ANSIBLE_NOCOLOR", "1")
        .env_remove("ANSIBLE_CONFIG")
        .current_dir(home)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"))
}

fn swpush_hosts(home: &Path, inventory: &Path, limit: Option<&str>) -> Output {
    let mut run = Swpush::new("hosts").arg("-i").arg(inventory).json();
    if let Some(limit) = limit {
        run = run.arg("--limit").arg(limit);
    }
    run.env("HOME", home)
        .env("USER", "tester")
        .env_remove("SWPUSH_INVENTORY")
        .run()
        .0
}

/// What Ansible built, from `ansible-inventory --list`.
struct Built {
    /// Group → direct hosts and child groups.
    groups: BTreeMap<String, (Vec<String>, Vec<String>)>,
    hostvars: BTreeMap<String, Value>,
}

impl Built {
    fn from_list(json: &Value) -> Built {
        let mut groups = BTreeMap::new();
        for (name, group) in json.as_object().expect("object") {
            if name == "_meta" {
                continue;
            }
            let list = |key: &str| -> Vec<String> {
                group[key]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|v| v.as_str().expect("name").to_owned())
                            .collect()
                    })
                    .unwrap_or_default()
            };
            groups.insert(name.clone(), (list("hosts"), list("children")));
        }
        let mut hostvars: BTreeMap<String, Value> = json["_meta"]["hostvars"]
            .as_object()
            .map(|m| m.clone().into_iter().collect())
            .unwrap_or_default();
        for host in Built::members_of(&groups, "all") {
            hostvars.entry(host).or_insert(Value::Null);
        }
        Built { groups, hostvars }
    }

    fn members_of(
        groups: &BTreeMap<String, (Vec<String>, Vec<String>)>,
        group: &str,
    ) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut todo = vec![group.to_owned()];
        let mut seen = BTreeSet::new();
        while let Some(g) = todo.pop() {
            if !seen.insert(g.clone()) {
                continue;
            }
            if let Some((hosts, children)) = groups.get(&g) {
                out.extend(hosts.iter().cloned());
                todo.extend(children.iter().cloned());
            }
        }
        out
    }

    fn hosts(&self) -> BTreeSet<String> {
        Built::members_of(&self.groups, "all")
    }

    /// The groups a host is in, directly or through children, without
    /// `all` and `ungrouped`.
    fn groups_of(&self, host: &str) -> BTreeSet<String> {
        self.groups
            .keys()
            .filter(|g| !matches!(g.as_str(), "all" | "ungrouped"))
            .filter(|g| Built::members_of(&self.groups, g).contains(host))
            .cloned()
            .collect()
    }

    /// Ansible's selection for names, groups, `*` globs and `!` exclusions.
    fn select(&self, limit: &str) -> BTreeSet<String> {
        let one = |pattern: &str| -> BTreeSet<String> {
            let glob = |name: &str| match pattern.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => name == pattern,
            };
            let mut out: BTreeSet<String> = self.hosts().into_iter().filter(|h| glob(h)).collect();
            for group in self.groups.keys().filter(|g| glob(g)) {
                out.extend(Built::members_of(&self.groups, group));
            }
            out
        };
        let parts: Vec<&str> = limit.split(',').collect();
        let mut selected: BTreeSet<String> = if parts.iter().all(|p| p.starts_with('!')) {
            self.hosts()
        } else {
            BTreeSet::new()
        };
        for part in parts.iter().filter(|p| !p.starts_with('!')) {
            selected.extend(one(part));
        }
        for part in parts.iter().filter_map(|p| p.strip_prefix('!')) {
            for host in one(part) {
                selected.remove(&host);
            }
        }
        selected
    }
}

fn names(report: &Value) -> BTreeSet<String> {
    report
        .as_array()
        .expect("array of hosts")
        .iter()
        .map(|h| h["host"].as_str().expect("host").to_owned())
        .collect()
}

/// Every inventory of [`CASES`]: swpush selects the hosts Ansible selects,
/// puts each host in the groups Ansible puts it in, and resolves address,
/// port and user as Ansible's precedence does.
#[test]
fn ansible_inventories_are_built_as_ansible_builds_them() {
    let home = scratch("table");
    let mut failures = Vec::new();
    let handles: Vec<_> = CASES
        .iter()
        .map(|case| {
            let dir = home.join(case.name);
            std::fs::create_dir_all(&dir).expect("case dir");
            let inventory = dir.join("inventory.yml");
            std::fs::write(&inventory, case.yaml).expect("write inventory");
            let first = case.patterns[0].to_owned();
            let (list_home, inv) = (dir.clone(), inventory.clone());
            let list = std::thread::spawn(move || {
                let inv = inv.display().to_string();
                let list = ansible("ansible-inventory", &list_home, &["-i", &inv, "--list"]);
                let listed = ansible(
                    "ansible",
                    &list_home,
                    &["-i", &inv, &first.replace(',', ":"), "--list-hosts"],
                );
                (list, listed)
            });
            (case, dir, inventory, list)
        })
        .collect();
    for (case, dir, inventory, oracle) in handles {
        let (list, listed) = oracle.join().expect("ansible thread");
        assert!(
            list.status.success(),
            "{}: ansible-inventory failed: {}",
            case.name,
            String::from_utf8_lossy(&list.stderr)
        );
        let built = Built::from_list(&serde_json::from_slice(&list.stdout).expect("JSON"));

        // The oracle's own selection agrees with `ansible --list-hosts`.
        let listed_hosts: BTreeSet<String> = String::from_utf8_lossy(&listed.stdout)
            .lines()
            .filter(|l| !l.trim_start().starts_with("hosts ("))
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(
            listed_hosts,
            built.select(case.patterns[0]),
            "{}: ansible --list-hosts {} vs the --list JSON",
            case.name,
            case.patterns[0]
        );

        let all = swpush_hosts(&dir, &inventory, None);
        if !all.status.success() {
            failures.push(format!(
                "{}: swpush hosts failed: {}",
                case.name,
                String::from_utf8_lossy(&all.stderr)
            ));
            continue;
        }
        let all: Value = serde_json::from_slice(&all.stdout).expect("swpush JSON");
        if names(&all) != built.hosts() {
            failures.push(format!(
                "{}: hosts: swpush {:?}, ansible {:?}",
                case.name,
                names(&all),
                built.hosts()
            ));
        }
        for host in all.as_array().expect("array") {
            let name = host["host"].as_str().expect("host");
            let vars = built.hostvars.get(name).cloned().unwrap_or(Value::Null);
            let expected = (
                vars["ansible_host"].as_str().unwrap_or(name).to_owned(),
                vars["ansible_port"].as_u64().unwrap_or(22),
                vars["ansible_user"].as_str().unwrap_or("tester").to_owned(),
            );
            let got = (
                host["address"].as_str().unwrap_or("").to_owned(),
                host["port"].as_u64().unwrap_or(0),
                host["user"].as_str().unwrap_or("").to_owned(),
            );
            if got != expected {
                failures.push(format!(
                    "{}: {name}: swpush (address, port, user) {got:?}, ansible {expected:?}",
                    case.name
                ));
            }
            let groups: BTreeSet<String> = host["groups"]
                .as_array()
                .expect("groups")
                .iter()
                .map(|g| g.as_str().expect("group").to_owned())
                .collect();
            if groups != built.groups_of(name) {
                failures.push(format!(
                    "{}: {name}: swpush groups {groups:?}, ansible {:?}",
                    case.name,
                    built.groups_of(name)
                ));
            }
        }
        for pattern in case.patterns {
            let expected = built.select(pattern);
            let output = swpush_hosts(&dir, &inventory, Some(pattern));
            let got = if output.status.success() {
                names(&serde_json::from_slice(&output.stdout).expect("swpush JSON"))
            } else {
                BTreeSet::new()
            };
            if got != expected {
                failures.push(format!(
                    "{}: --limit '{pattern}': swpush {got:?}, ansible {expected:?} ({})",
                    case.name,
                    String::from_utf8_lossy(&output.stderr).trim()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
