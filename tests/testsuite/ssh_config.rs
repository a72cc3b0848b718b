//! `~/.ssh/config` read as OpenSSH reads it, and never a way to connect
//! other than OpenSSH's (issue 9 items 5 and 11).
//!
//! The oracle is the real `ssh -G -F FILE HOST`: for a table of config
//! files, what `swpush hosts` resolves for each host (HostName, User, Port,
//! IdentityFile, ProxyJump) equals what OpenSSH resolves, or swpush refuses
//! the host naming the setting that OpenSSH applies and swpush does not
//! implement. Reading is bounded: an Include of a device, a fifo, a
//! directory or a huge file is one error line within a second. On the real
//! fleet, a host whose ProxyCommand (in ~/.ssh/config, or `-o ProxyCommand`
//! / `-J` in ansible_ssh_common_args/extra_args) fails ends `unreachable`
//! naming it, and nothing connects to its address.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::SSH_PORT;
use crate::support::world::*;

fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("ssh-config-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join(".ssh")).expect("scratch dir");
    dir
}

fn write_private(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(path, text).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// Runs `command`, killing it after `limit`: a hang is a failure, not a wait.
fn run_within(mut command: Command, limit: Duration) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("output");
    (output, started.elapsed())
}

/// `swpush hosts --format json` with `home` as HOME, for a native
/// inventory listing `hosts` with no settings.
fn swpush_hosts(home: &Path, hosts: &[&str]) -> Output {
    swpush_hosts_as(home, hosts, None, None)
}

/// [`swpush_hosts`] with `-u login_user`, and `user:` on every host.
fn swpush_hosts_as(
    home: &Path,
    hosts: &[&str],
    login_user: Option<&str>,
    inventory_user: Option<&str>,
) -> Output {
    let mut yaml = String::from("hosts:\n");
    for host in hosts {
        match inventory_user {
            Some(user) => yaml += &format!("  {host}: {{ user: {user} }}\n"),
            None => yaml += &format!("  {host}: {{}}\n"),
        }
    }
    let inventory = home.join("inventory.yaml");
    std::fs::write(&inventory, yaml).expect("inventory");
    let mut run = Swpush::new("hosts")
        .json()
        .arg("-i")
        .arg(&inventory)
        .env("HOME", home)
        .env("USER", "root")
        .env("SWPUSH_TEST_AGENT", TEST_AGENT)
        .env_remove("SWPUSH_TEST_UNSET")
        .env_remove("SWPUSH_INVENTORY");
    if let Some(user) = login_user {
        run = run.args(["-u", user]);
    }
    run_within(run.command(), Duration::from_secs(20)).0
}

/// `$SWPUSH_TEST_AGENT` for both swpush and ssh.
const TEST_AGENT: &str = "/run/test-agent.sock";

/// `ssh -G -F config host`, as `key → values` (lower-case keys).
fn ssh_g(config: &Path, host: &str) -> Option<BTreeMap<String, Vec<String>>> {
    ssh_g_with(config, host, &[])
}

/// [`ssh_g`] with more ssh options (`-l USER`, `-o User=USER`).
fn ssh_g_with(config: &Path, host: &str, args: &[String]) -> Option<BTreeMap<String, Vec<String>>> {
    let output = Command::new("ssh")
        .arg("-G")
        .arg("-F")
        .arg(config)
        .args(args)
        .arg(host)
        .env("SWPUSH_TEST_AGENT", TEST_AGENT)
        .env_remove("SWPUSH_TEST_UNSET")
        .output()
        .expect("ssh -G");
    if !output.status.success() {
        return None;
    }
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        if let Some((key, value)) = line.split_once(' ') {
            map.entry(key.to_owned())
                .or_default()
                .push(value.to_owned());
        }
    }
    Some(map)
}

struct Case {
    name: &'static str,
    /// `ABS` is replaced by the case's directory.
    config: &'static str,
    /// Other files, relative to the case's directory.
    files: &'static [(&'static str, &'static str)],
    /// Host, and the setting swpush must refuse it for (None: resolves).
    hosts: &'static [(&'static str, Option<&'static str>)],
    /// `-u USER` for swpush, `-l USER` for ssh.
    login_user: Option<&'static str>,
    /// A native-inventory `user:` for swpush, `-o User=` for ssh.
    inventory_user: Option<&'static str>,
}

/// What a case leaves as it is.
const PLAIN: Case = Case {
    name: "",
    config: "",
    files: &[],
    hosts: &[],
    login_user: None,
    inventory_user: None,
};

const CASES: &[Case] = &[
    Case {
        name: "first-value-wins",
        config: "Host web1
  HostName 127.0.0.1
  Port 2201
Host web1 web2
  Port 2299
  User deploy
Host *
  User fallback
  IdentityFile ~/.ssh/id_fleet
  IdentityFile ~/.ssh/id_second
",
        files: &[],
        hosts: &[("web1", None), ("web2", None), ("db1", None)],
        ..PLAIN
    },
    Case {
        name: "negation-and-tokens",
        config: "Host *.prod !bastion.prod
  ProxyCommand ssh -W %h:%p bastion.prod
Host *
  HostName %h.example.test
  User ops
",
        files: &[],
        hosts: &[
            // ProxyCommand is implemented (tests/testsuite/jump.rs).
            ("app.prod", None),
            ("bastion.prod", None),
            ("other", None),
        ],
        ..PLAIN
    },
    Case {
        name: "proxy-jump-and-none",
        config: "Host direct
  ProxyJump none
Host =equals
  ProxyJump=jump.example
Host * !jump.example !second.example
  ProxyJump jump.example,second.example
",
        files: &[],
        hosts: &[("direct", None), ("jumped", None), ("equals", None)],
        ..PLAIN
    },
    Case {
        name: "match-blocks",
        config: "Match originalhost m1
  User muser
Host m2
  HostName 127.0.0.5
Match host 127.0.0.5
  Port 2205
Host m3
  HostName 127.0.0.6
Match host 127.0.0.6 user root
  Port 2206
Match !host m4
  IdentityFile ~/.ssh/not_m4
Match all
  Port 2200
",
        files: &[],
        hosts: &[("m1", None), ("m2", None), ("m3", None), ("m4", None)],
        ..PLAIN
    },
    Case {
        name: "match-exec",
        config: "Match exec \"true\" host x1
  ProxyCommand nc %h %p
Match exec \"true\" host x2
  ServerAliveInterval 5
Match host x3 exec \"true\"
  Port 2303
",
        files: &[],
        hosts: &[
            ("x1", Some("Match exec")),
            ("x2", None),
            ("x3", Some("Match exec")),
            ("x4", None),
        ],
        ..PLAIN
    },
    Case {
        name: "includes",
        config: "Include ABS/d/*.conf
Host inc1
  Include ABS/extra.conf
  Include ABS/d/*.conf
Host *
  User outer
",
        files: &[
            ("extra.conf", "Port 2301\nHost other\n  User never\n"),
            ("d/a.conf", "Host g1\n  Port 2401\n"),
            (
                "d/b.conf",
                "Host g1\n  Port 2402\n  User g1user\nHost bad1\n  ProxyCommand nc %h %p\n",
            ),
            ("d/skip.txt", "Host g1\n  Port 2499\n"),
        ],
        hosts: &[
            ("inc1", None),
            ("other", None),
            ("g1", None),
            ("bad1", None),
        ],
        ..PLAIN
    },
    Case {
        name: "match-user-and-case",
        config: "Host upper
  HostName MixedCase.Example
Host u1
  User alice
Match user alice
  Port 2501
Match localuser root
  IdentityFile ~/.ssh/id_local
Host WEB9
  Port 2999
Host *
  HostName %h.lan
",
        files: &[],
        hosts: &[
            ("upper", None),
            ("u1", None),
            ("web9", None),
            ("plain", None),
        ],
        ..PLAIN
    },
    Case {
        name: "refused-keywords",
        config: "Host b1
  BindAddress 127.0.0.1
Host c1
  ControlMaster auto
  ControlPath ~/.ssh/cm-%r@%h:%p
Host k1
  HostKeyAlias other
Host u1
  UserKnownHostsFile /dev/null
Host r1
  RemoteCommand uptime
Host a1
  Ciphers aes128-ctr
Host a2
  Ciphers +aes128-cbc
Host l1
  PermitLocalCommand yes
  LocalCommand true
Host f1
  AddressFamily inet6
Host kc1
  KnownHostsCommand /bin/true
Host t1
  Tunnel yes
Host s1
  ServerAliveInterval 5
  ForwardAgent yes
  StrictHostKeyChecking accept-new
  SendEnv LANG
",
        files: &[],
        hosts: &[
            ("b1", Some("BindAddress")),
            ("c1", Some("ControlPath")),
            ("k1", None),
            ("u1", None),
            ("r1", Some("RemoteCommand")),
            ("a1", Some("Ciphers")),
            ("a2", None),
            ("l1", Some("PermitLocalCommand")),
            ("f1", Some("AddressFamily")),
            ("kc1", Some("KnownHostsCommand")),
            ("t1", Some("Tunnel")),
            ("s1", None),
        ],
        ..PLAIN
    },
    Case {
        name: "path-keywords-and-tokens",
        config: "Host multi
  HostName Multi.Example
  Port 2022
  IdentityFile ~/.ssh/a_%h
  IdentityFile ~/.ssh/b_%r_%n_%p
  IdentityFile ~/.ssh/a_%h
  CertificateFile ~/.ssh/c_%h-cert.pub
  CertificateFile /etc/certs/%u@%k
  UserKnownHostsFile ~/.ssh/k1 /x/k2_%h_%p %d/k3_%C
  GlobalKnownHostsFile /g1 /g2
  HostKeyAlias aliased
  IdentitiesOnly yes
Host agent-none
  IdentityAgent none
Host agent-env
  IdentityAgent SSH_AUTH_SOCK
Host agent-var
  IdentityAgent $SWPUSH_TEST_AGENT
Host agent-unset
  IdentityAgent $SWPUSH_TEST_UNSET
Host agent-braces
  IdentityAgent ${SWPUSH_TEST_AGENT}.d/%r_%l_%L_%i
Host agent-path
  IdentityAgent ~/agent/%h_%u_%k
Host known-none
  UserKnownHostsFile none
  GlobalKnownHostsFile none
Host env-path
  UserKnownHostsFile ${SWPUSH_TEST_AGENT}/known %d/%%lit
Host *
  IdentitiesOnly no
",
        hosts: &[
            ("multi", None),
            ("agent-none", None),
            ("agent-env", None),
            ("agent-var", None),
            ("agent-unset", None),
            ("agent-braces", None),
            ("agent-path", None),
            ("known-none", None),
            ("env-path", None),
            ("Mixed.Case", None),
        ],
        ..PLAIN
    },
    Case {
        name: "match-criteria-and-negation",
        config: "Host h-*
  HostName %h.corp.example
Match host *.corp.example !originalhost h-skip
  IdentityFile ~/.ssh/corp_%h
  StrictHostKeyChecking yes
Match originalhost h-skip,plain-* !user nobody
  HostKeyAlias skipped-%h
  ConnectTimeout 3m
Match !localuser root
  IdentityAgent none
Match localuser root !host *.corp.example
  IdentityAgent ~/agent-%n
Host *
  GlobalKnownHostsFile ~/global_known
",
        hosts: &[
            ("h-one", None),
            ("h-skip", None),
            ("plain-1", None),
            ("PLAIN-2", None),
            ("192.0.2.9", None),
        ],
        ..PLAIN
    },
    Case {
        name: "strict-and-timeouts",
        config: "Host s-yes
  StrictHostKeyChecking yes
Host s-true
  StrictHostKeyChecking True
Host s-no
  StrictHostKeyChecking no
Host s-off
  StrictHostKeyChecking off
Host s-false
  StrictHostKeyChecking false
Host s-ask
  StrictHostKeyChecking ask
Host s-new
  StrictHostKeyChecking accept-new
Host t-10
  ConnectTimeout 10
Host t-10s
  ConnectTimeout 10s
Host t-1m30s
  ConnectTimeout 1m30s
Host t-1h
  ConnectTimeout 1H
Host t-0
  ConnectTimeout 0
Host t-none
  ConnectTimeout none
Host a-1
  ConnectionAttempts 1
Host a-4 a-*
  ConnectionAttempts 4
Host a-*
  ConnectionAttempts 9
Host s-* t-*
  StrictHostKeyChecking accept-new
  ConnectTimeout 7
",
        hosts: &[
            ("s-yes", None),
            ("s-true", None),
            ("s-no", None),
            ("s-off", None),
            ("s-false", None),
            ("s-ask", None),
            ("s-new", None),
            ("t-10", None),
            ("t-10s", None),
            ("t-1m30s", None),
            ("t-1h", None),
            ("t-0", None),
            ("t-none", None),
            ("a-1", None),
            ("a-4", None),
            ("a-9", None),
            ("other", None),
        ],
        ..PLAIN
    },
    Case {
        name: "match-user-from-the-command-line",
        config: "Match user deploy
  Port 2601
  IdentityFile ~/.ssh/deploy_%r
Match originalhost o1 user deploy
  HostKeyAlias o1-deploy
Host o1
  HostName 127.0.0.61
Match host 127.0.0.61
  ConnectTimeout 61
Host *
  User nobody
  IdentityFile ~/.ssh/all
",
        hosts: &[("o1", None), ("o2", None)],
        login_user: Some("deploy"),
        ..PLAIN
    },
    Case {
        name: "match-user-from-the-inventory",
        config: "Match user deploy
  Port 2602
Host *
  User nobody
  UserKnownHostsFile ~/.ssh/known_%r
",
        hosts: &[("i1", None), ("i2.example", None)],
        inventory_user: Some("deploy"),
        ..PLAIN
    },
    Case {
        name: "match-user-without-one-given",
        config: "Match user deploy
  Port 2603
Host *
  User deploy
Match user deploy
  Port 2604
",
        hosts: &[("n1", None)],
        ..PLAIN
    },
    Case {
        name: "includes-with-path-keywords",
        config: "Host inc*
  Include ABS/parts/*.conf
Host *
  IdentityFile ~/.ssh/last
",
        files: &[
            (
                "parts/a.conf",
                "IdentityFile ~/.ssh/part_a\nCertificateFile ~/.ssh/part_a-cert.pub\nStrictHostKeyChecking yes\n",
            ),
            (
                "parts/b.conf",
                "IdentityFile ~/.ssh/part_b\nStrictHostKeyChecking no\nConnectTimeout 2m\nHostKeyAlias %h\n",
            ),
        ],
        hosts: &[("inc1", None), ("outside", None)],
        ..PLAIN
    },
];

/// The part of a path after the home directory, `~/` or `/root/`, so
/// swpush's `$HOME` and OpenSSH's passwd home compare equal.
fn after_home(path: &str, home: &Path) -> String {
    let home = format!("{}/", home.display());
    for prefix in [home.as_str(), "~/", "/root/"] {
        if let Some(rest) = path.strip_prefix(prefix) {
            return rest.to_owned();
        }
    }
    path.to_owned()
}

/// ssh's expansion of `~` and the tokens ssh -G leaves as written
/// (IdentityFile, CertificateFile), from the values ssh -G resolved.
fn expand_like_ssh(path: &str, openssh: &BTreeMap<String, Vec<String>>, name: &str) -> String {
    let get = |key: &str| {
        openssh
            .get(key)
            .and_then(|v| v.first())
            .cloned()
            .unwrap_or_default()
    };
    let alias = openssh
        .get("hostkeyalias")
        .and_then(|v| v.first())
        .cloned()
        .unwrap_or_else(|| name.to_owned());
    let path = match path.strip_prefix("~/") {
        Some(rest) => format!("/root/{rest}"),
        None => path.to_owned(),
    };
    let mut out = String::new();
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('h') => out += &get("hostname"),
            Some('r') => out += &get("user"),
            Some('p') => out += &get("port"),
            Some('n') => out += name,
            Some('k') => out += &alias,
            Some('u') => out += "root",
            Some('d') => out += "/root",
            other => panic!("the test does not expand %{other:?} in {path}"),
        }
    }
    out
}

/// Every keyword of issue 10 item 4 where swpush's `hosts --format json`
/// and `ssh -G` disagree: (keyword, swpush's, ssh's). `reference` is
/// `ssh -G` with no configuration (its defaults).
fn disagreements(
    openssh: &BTreeMap<String, Vec<String>>,
    reference: &BTreeMap<String, Vec<String>>,
    ours: &Value,
    home: &Path,
    name: &str,
) -> Vec<(&'static str, String, String)> {
    let all = |key: &str| openssh.get(key).cloned().unwrap_or_default();
    let first = |key: &str| openssh.get(key).and_then(|v| v.first()).cloned();
    let ours_path = |v: &Value| v.as_str().map(|p| after_home(p, home));
    let words = |key: &str| -> Vec<String> {
        first(key)
            .filter(|v| v != "none")
            .map(|v| v.split(' ').map(|p| after_home(p, home)).collect())
            .unwrap_or_default()
    };
    let list = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().filter_map(ours_path).collect())
            .unwrap_or_default()
    };
    let ssh = &ours["ssh"];
    // ssh lists its default identities only when nothing names one.
    let identity_files = if openssh.get("identityfile") == reference.get("identityfile") {
        Vec::new()
    } else {
        all("identityfile")
            .iter()
            .map(|p| after_home(&expand_like_ssh(p, openssh, name), home))
            .collect()
    };
    let ours_identities: Vec<String> = ours_path(&ours["identity_file"])
        .into_iter()
        .chain(list(&ssh["further_identity_files"]))
        .collect();
    let certificates: Vec<String> = all("certificatefile")
        .iter()
        .map(|p| after_home(&expand_like_ssh(p, openssh, name), home))
        .collect();
    let agent = match first("identityagent").as_deref() {
        None | Some("SSH_AUTH_SOCK") => "environment".to_owned(),
        Some("none") => "none".to_owned(),
        // ssh reads `$NAME` when it connects; both run with
        // SWPUSH_TEST_AGENT set and SWPUSH_TEST_UNSET unset.
        Some("$SWPUSH_TEST_AGENT") => format!("socket {TEST_AGENT}"),
        Some(var) if var.starts_with('$') => "none".to_owned(),
        Some(path) => format!("socket {}", after_home(path, home)),
    };
    let ours_agent = match ssh["identity_agent"]["kind"].as_str() {
        Some("socket") => format!(
            "socket {}",
            ours_path(&ssh["identity_agent"]["path"]).unwrap_or_default()
        ),
        other => other.unwrap_or("?").to_owned(),
    };
    let strict = match first("stricthostkeychecking").as_deref() {
        Some("true") => "yes".to_owned(),
        Some("false") => "no".to_owned(),
        other => other.unwrap_or("?").to_owned(),
    };
    let timeout = first("connecttimeout").filter(|t| t != "none" && t != "0");
    let compared: Vec<(&'static str, String, String)> = vec![
        (
            "hostname",
            format!("{:?}", ours["address"].as_str()),
            format!("{:?}", first("hostname").as_deref()),
        ),
        (
            "user",
            format!("{:?}", ours["user"].as_str()),
            format!("{:?}", first("user").as_deref()),
        ),
        (
            "port",
            format!("{:?}", ours["port"].as_u64().map(|p| p.to_string())),
            format!("{:?}", first("port")),
        ),
        (
            "identityfile",
            format!("{ours_identities:?}"),
            format!("{identity_files:?}"),
        ),
        (
            "certificatefile",
            format!("{:?}", list(&ssh["certificate_files"])),
            format!("{certificates:?}"),
        ),
        (
            "identitiesonly",
            format!("{}", ssh["identities_only"] == true),
            format!("{}", first("identitiesonly").as_deref() == Some("yes")),
        ),
        ("identityagent", ours_agent, agent),
        (
            "userknownhostsfile",
            format!("{:?}", list(&ssh["user_known_hosts"])),
            format!("{:?}", words("userknownhostsfile")),
        ),
        (
            "globalknownhostsfile",
            format!("{:?}", list(&ssh["global_known_hosts"])),
            format!("{:?}", words("globalknownhostsfile")),
        ),
        (
            "stricthostkeychecking",
            ssh["strict_host_key_checking"]
                .as_str()
                .unwrap_or("?")
                .to_owned(),
            strict,
        ),
        (
            "hostkeyalias",
            format!("{:?}", ssh["host_key_alias"].as_str()),
            format!("{:?}", first("hostkeyalias").as_deref()),
        ),
        (
            "connecttimeout",
            format!(
                "{:?}",
                ssh["connect_timeout"].as_u64().map(|t| t.to_string())
            ),
            format!("{timeout:?}"),
        ),
        (
            "connectionattempts",
            format!("{:?}", ssh["connection_attempts"].as_u64().unwrap_or(1)),
            format!(
                "{:?}",
                first("connectionattempts")
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0)
            ),
        ),
        (
            "proxyjump",
            format!("{:?}", ours["proxy_jump"].as_str()),
            format!("{:?}", first("proxyjump").filter(|j| j != "none")),
        ),
    ];
    compared.into_iter().filter(|(_, a, b)| a != b).collect()
}

#[test]
fn ssh_config_is_resolved_as_ssh_g_resolves_it() {
    let reference = ssh_g(Path::new("/dev/null"), "unconfigured").expect("ssh -G");
    let mut failures = Vec::new();
    for case in CASES {
        let home = scratch(case.name);
        let config = home.join(".ssh/config");
        write_private(
            &config,
            &case.config.replace("ABS", &home.display().to_string()),
        );
        for (file, text) in case.files {
            write_private(&home.join(file), text);
        }
        let names: Vec<&str> = case.hosts.iter().map(|(h, _)| *h).collect();
        let output = swpush_hosts_as(&home, &names, case.login_user, case.inventory_user);
        let mut ssh_args = Vec::new();
        if let Some(user) = case.login_user {
            ssh_args.extend(["-l".to_owned(), user.to_owned()]);
        }
        if let Some(user) = case.inventory_user {
            ssh_args.extend(["-o".to_owned(), format!("User={user}")]);
        }
        if !output.status.success() {
            failures.push(format!(
                "{}: swpush hosts failed: {}",
                case.name,
                String::from_utf8_lossy(&output.stderr)
            ));
            continue;
        }
        let hosts: Value = serde_json::from_slice(&output.stdout).expect("JSON");
        for (name, refused) in case.hosts {
            let Some(openssh) = ssh_g_with(&config, name, &ssh_args) else {
                failures.push(format!("{}: ssh -G {name} failed", case.name));
                continue;
            };
            let first = |key: &str| openssh.get(key).and_then(|v| v.first()).cloned();
            let Some(ours) = hosts
                .as_array()
                .and_then(|a| a.iter().find(|h| h["host"] == *name))
            else {
                failures.push(format!("{}: swpush lists no {name}", case.name));
                continue;
            };
            let ours_refused = ours["refused"].as_str();
            match refused {
                Some(setting) => {
                    // OpenSSH applies the setting to this host ...
                    let key = setting.to_ascii_lowercase();
                    let applied = match setting.split_once(' ') {
                        Some(_) => {
                            first("proxycommand").is_some()
                                || first("port").as_deref() == Some("2303")
                        }
                        None => openssh.get(&key) != reference.get(&key),
                    };
                    if !applied {
                        failures.push(format!(
                            "{}: {name}: ssh -G does not apply {setting}",
                            case.name
                        ));
                    }
                    // ... and swpush refuses the host, naming it.
                    if !ours_refused.is_some_and(|r| r.contains(setting)) {
                        failures.push(format!(
                            "{}: {name}: swpush should refuse naming {setting}, got {ours_refused:?}",
                            case.name
                        ));
                    }
                    continue;
                }
                None if ours_refused.is_some() => {
                    failures.push(format!(
                        "{}: {name}: swpush refuses ({ours_refused:?}) what ssh does",
                        case.name
                    ));
                    continue;
                }
                None => {}
            }
            for (key, ours, openssh) in disagreements(&openssh, &reference, ours, &home, name) {
                failures.push(format!(
                    "{}: {name}: {key}: swpush {ours}, ssh -G {openssh}",
                    case.name
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// An Ansible inventory is resolved as Ansible runs ssh: `ssh -o User=U
/// -o Port=P ADDRESS`, ADDRESS being `ansible_host` or else the name; and
/// `--private-key K` / `-u U` as ssh's `-i K` / `-l U`.
#[test]
fn ansible_inventories_and_command_line_logins_resolve_as_ssh_is_run() {
    let home = scratch("ansible-login");
    let config = home.join(".ssh/config");
    write_private(
        &config,
        "Host web1
  Port 9999
  IdentityFile ~/.ssh/by_name
Host 127.0.0.71
  IdentityFile ~/.ssh/by_address_%r
  CertificateFile ~/.ssh/by_address-cert.pub
Match user deploy
  ConnectTimeout 5
  StrictHostKeyChecking accept-new
Match user admin
  HostKeyAlias as-admin
  UserKnownHostsFile ~/.ssh/admin_known
Host only
  IdentitiesOnly yes
Host * !only
  User nobody
  IdentityFile ~/.ssh/last
",
    );
    let key = home.join("given_key");
    write_private(&key, "not a key; ssh -G only needs it to exist\n");
    let inventory = home.join("hosts.ini");
    std::fs::write(
        &inventory,
        "web1 ansible_host=127.0.0.71 ansible_user=deploy ansible_port=2200\nweb2\nonly\n",
    )
    .expect("inventory");
    let run = |extra: &[&str]| -> Value {
        let command = Swpush::new("hosts")
            .json()
            .arg("-i")
            .arg(&inventory)
            .args(extra)
            .env("HOME", &home)
            .env("USER", "root")
            .env_remove("SWPUSH_INVENTORY")
            .command();
        let output = run_within(command, Duration::from_secs(20)).0;
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("JSON")
    };
    let reference = ssh_g(Path::new("/dev/null"), "unconfigured").expect("ssh -G");
    let key_text = key.display().to_string();
    let mut failures = Vec::new();
    for (swpush_args, host, ssh_args, target) in [
        (
            &[][..],
            "web1",
            &["-o", "User=deploy", "-o", "Port=2200"][..],
            "127.0.0.71",
        ),
        (&[], "web2", &[], "web2"),
        (
            &["-u", "admin", "--private-key", key_text.as_str()],
            "web1",
            &[
                "-l",
                "admin",
                "-i",
                key_text.as_str(),
                "-o",
                "User=deploy",
                "-o",
                "Port=2200",
            ],
            "127.0.0.71",
        ),
        (
            &["-u", "admin", "--private-key", key_text.as_str()],
            "web2",
            &["-l", "admin", "-i", key_text.as_str()],
            "web2",
        ),
        (
            &["--private-key", key_text.as_str()],
            "only",
            &["-i", key_text.as_str()],
            "only",
        ),
        (&[], "only", &[], "only"),
    ] {
        let hosts = run(swpush_args);
        let Some(ours) = hosts
            .as_array()
            .and_then(|a| a.iter().find(|h| h["host"] == host))
        else {
            failures.push(format!("{swpush_args:?}: swpush lists no {host}"));
            continue;
        };
        if let Some(refused) = ours["refused"].as_str() {
            failures.push(format!("{swpush_args:?} {host}: refused: {refused}"));
            continue;
        }
        let args: Vec<String> = ssh_args.iter().map(|a| a.to_string()).collect();
        let openssh = ssh_g_with(&config, target, &args).expect("ssh -G");
        for (keyword, ours, theirs) in disagreements(&openssh, &reference, ours, &home, target) {
            failures.push(format!(
                "swpush {swpush_args:?} {host} / ssh -G {ssh_args:?} {target}: {keyword}: swpush {ours}, ssh -G {theirs}"
            ));
        }
    }
    // `IdentitiesOnly yes` with no IdentityFile anywhere is what ssh does
    // then: the default `~/.ssh/id_*`, never the agent's other keys.
    let hosts = run(&[]);
    let only = hosts
        .as_array()
        .and_then(|a| a.iter().find(|h| h["host"] == "only"))
        .expect("only");
    if !only["refused"].is_null() || only["ssh"]["identities_only"] != true {
        failures.push(format!(
            "only: should carry IdentitiesOnly, not be refused: {only}"
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A keyword OpenSSH does not know makes `ssh` refuse the whole file; so
/// does swpush, naming it, unless `IgnoreUnknown` lists it as for OpenSSH.
#[test]
fn an_unknown_keyword_is_an_error_unless_ignored() {
    let home = scratch("unknown-keyword");
    let config = home.join(".ssh/config");
    write_private(&config, "Host *\n  User ops\n  Frobnicate yes\n");
    assert!(ssh_g(&config, "web1").is_none(), "ssh -G accepts it");
    let output = swpush_hosts(&home, &["web1"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:3", config.display())) && stderr.contains("Frobnicate"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    write_private(
        &config,
        "IgnoreUnknown Frob*\nHost *\n  User ops\n  Frobnicate yes\n",
    );
    assert!(ssh_g(&config, "web1").is_some());
    let output = swpush_hosts(&home, &["web1"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `~/.ssh/config` and its Includes are read as regular files only, within
/// one total size bound, without blocking: each bad Include is one error
/// line naming the file, well within a second's work.
#[test]
fn includes_that_are_not_small_regular_files_are_refused_quickly() {
    let home = scratch("bounded");
    let fifo = home.join("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let huge = home.join("huge.conf");
    {
        let line = "# padding padding padding padding padding padding padding padding\n";
        write_private(&huge, &line.repeat((2 << 20) / line.len()));
    }
    std::fs::create_dir_all(home.join("adir")).expect("mkdir");
    let writable = home.join("writable.conf");
    write_private(&writable, "User ops\n");
    std::fs::set_permissions(&writable, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let table: [(&Path, &str); 5] = [
        (Path::new("/dev/zero"), "not a regular file"),
        (&fifo, "not a regular file"),
        (&huge, "MiB"),
        (&home.join("adir"), "not a regular file"),
        (&writable, "permissions"),
    ];
    for (target, expected) in table {
        let config = home.join(".ssh/config");
        write_private(
            &config,
            &format!("Host *\n  User ops\nInclude {}\n", target.display()),
        );
        let started = Instant::now();
        let output = swpush_hosts(&home, &["web1"]);
        let took = started.elapsed();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{}: {stderr}",
            target.display()
        );
        assert!(
            stderr.contains(&target.display().to_string()) && stderr.contains(expected),
            "{}: {stderr}",
            target.display()
        );
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(
            took < Duration::from_secs(5),
            "{}: took {took:?}",
            target.display()
        );
    }
    // The config file itself as a fifo: refused, not waited on.
    let config = home.join(".ssh/config");
    std::fs::remove_file(&config).expect("rm");
    let made = Command::new("mkfifo")
        .arg(&config)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let output = swpush_hosts(&home, &["web1"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not a regular file"), "{stderr}");
}

/// On the real fleet: hosts with a ProxyCommand (in ~/.ssh/config, or in
/// ansible_ssh_common_args) that fails, or `-J` / `-oProxyJump`
/// (ansible_ssh_extra_args) to a jump host that does not exist, end
/// `unreachable` naming the setting; the ProxyCommand runs, and nothing
/// connects to their address (a live sshd, and a bare listener): swpush
/// never falls back to a direct connection. A host without them installs.
/// (Proxies that work: tests/testsuite/jump.rs.)
#[test]
fn a_failing_proxy_never_falls_back_to_a_direct_connection() {
    let world = World::start_trusted(&["target", "guarded"]);
    let fleet = &world.fleet;
    // `direct` logs in to target; every refused host points at guarded,
    // a live sshd that must see no connection at all.
    let target = fleet.host("target").addr;
    let addr = fleet.host("guarded").addr;
    let watch = TcpListener::bind("127.0.0.1:0").expect("listener");
    watch.set_nonblocking(true).expect("nonblocking");
    let watched = watch.local_addr().expect("addr");
    let mark = fleet.dir().join("proxy-command-ran");
    let proxy = format!("sh -c 'touch {}; exit 1'", mark.display());
    write_private(
        &fleet.home().join(".ssh/config"),
        &format!(
            "Host viaconfig\n  HostName {addr}\n  ProxyCommand {proxy}\n\
             Host watchedconfig\n  HostName {}\n  Port {}\n  ProxyCommand {proxy}\n",
            watched.ip(),
            watched.port()
        ),
    );
    let key = fleet.login_key().display().to_string();
    let inventory = fleet.dir().join("proxies.yml");
    std::fs::write(
        &inventory,
        format!(
            "all:
  vars: {{ansible_user: root, ansible_port: {SSH_PORT}, ansible_ssh_private_key_file: \"{key}\"}}
  hosts:
    direct: {{ansible_host: {target}}}
    viaconfig:
    watchedconfig:
    viaargs:
      ansible_host: {addr}
      ansible_ssh_common_args: \"-o ProxyCommand='{}'\"
    viajump: {{ansible_host: {addr}, ansible_ssh_extra_args: \"-J bastion.example\"}}
    viaoption: {{ansible_host: {addr}, ansible_ssh_common_args: \"-oProxyJump=bastion.example\"}}
    watchedargs:
      ansible_host: {}
      ansible_port: {}
      ansible_ssh_common_args: \"-o ProxyCommand='{}'\"
",
            proxy.replace('\'', "\\\""),
            watched.ip(),
            watched.port(),
            proxy.replace('\'', "\\\"")
        ),
    )
    .expect("inventory");
    let (code, report) = world.push("install", &inventory, &world.hello, &[]);
    assert_eq!(code, 2, "{report}");
    assert_eq!(status_of(&report, "direct").0, "installed", "{report}");
    for (host, said) in [
        ("viaconfig", "ProxyCommand `sh -c"),
        ("watchedconfig", "ProxyCommand `sh -c"),
        ("viaargs", "ProxyCommand `sh -c"),
        ("viajump", "bastion.example:22 (jump host 1 of"),
        ("viaoption", "bastion.example:22 (jump host 1 of"),
        ("watchedargs", "ProxyCommand `sh -c"),
    ] {
        let (status, message) = status_of(&report, host);
        assert_eq!(status, "unreachable", "{host}: {message}");
        assert!(message.contains(said), "{host}: {message}");
    }
    assert!(mark.exists(), "no ProxyCommand ran");
    // A TCP connection to a fleet host leaves a socket (TIME_WAIT at least)
    // on this machine for a minute: guarded's must have none.
    let sockets = |host: std::net::Ipv4Addr| -> Vec<String> {
        let listing = Command::new("ss").arg("-Htan").output().expect("ss");
        String::from_utf8_lossy(&listing.stdout)
            .lines()
            .filter(|l| {
                let mut fields = l.split_whitespace();
                fields.next() != Some("LISTEN") && fields.any(|f| f == format!("{host}:{SSH_PORT}"))
            })
            .map(str::to_owned)
            .collect()
    };
    // A connection held open shows the check can see one (direct's own may
    // have left no TIME_WAIT behind, when either end closed with a reset).
    let _probe = std::net::TcpStream::connect((target, SSH_PORT)).expect("probe target");
    assert!(
        !sockets(target).is_empty(),
        "no trace of a connection to target"
    );
    assert_eq!(
        sockets(addr),
        Vec::<String>::new(),
        "something connected to guarded"
    );
    match watch.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Ok((mut stream, from)) => {
            let mut first = [0u8; 64];
            let n = stream.read(&mut first).unwrap_or(0);
            panic!(
                "something connected to a refused host's address from {from}: {:?}",
                String::from_utf8_lossy(&first[..n])
            );
        }
        Err(e) => panic!("accept: {e}"),
    }
}
