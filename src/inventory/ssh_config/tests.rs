//! Unit tests of `~/.ssh/config` reading and resolving.

use super::command_line::command_line_settings;
use super::*;

fn config(text: &str) -> SshConfig {
    SshConfig::parse(text, Path::new("/home/op")).expect("config")
}

#[test]
fn applies_host_alias_entries() {
    let c = config(
        "Host web1\n  HostName 192.0.2.11\n  User deploy\n  Port 2222\n  IdentityFile ~/.ssh/web\n  ProxyJump bastion\n\nHost *\n  User fallback\n",
    );
    assert_eq!(
        c.lookup(&["web1"], &[]),
        SshSettings {
            host_name: Some("192.0.2.11".into()),
            port: Some(2222),
            user: Some("deploy".into()),
            identity_file: Some(PathBuf::from("/home/op/.ssh/web")),
            proxy_jump: Some("bastion".into()),
            ..SshSettings::default()
        }
    );
    assert_eq!(c.lookup(&["db1"], &[]).user.as_deref(), Some("fallback"));
    assert_eq!(c.lookup(&["db1"], &[]).host_name, None);
}

#[test]
fn address_patterns_fill_what_the_name_left_unset() {
    let c = config("Host 10.1.*\n  Port 2200\n  User ops\n");
    let s = c.lookup(&["app1", "10.1.0.7"], &[]);
    assert_eq!((s.port, s.user.as_deref()), (Some(2200), Some("ops")));
}

#[test]
fn lines_split_as_openssh_splits_them() {
    for (line, expected) in [
        ("  Host=web1", Some(("Host", vec!["web1"]))),
        ("HostName = x # comment", Some(("HostName", vec!["x"]))),
        (
            "SendEnv \"a b\" 'c d' e\\ f",
            Some(("SendEnv", vec!["a b", "c d", "e f"])),
        ),
        (
            "ProxyCommand = sh -c 'nc %h %p' # as written",
            Some(("ProxyCommand", vec!["sh -c 'nc %h %p' # as written"])),
        ),
        ("\t# only a comment", None),
        ("", None),
    ] {
        let got = split_line(line).expect("split");
        let want = expected.map(|(k, v)| (k.to_owned(), v.into_iter().map(String::from).collect()));
        assert_eq!(got, want, "{line:?}");
    }
    assert!(split_line("User \"open").is_err());
}

#[test]
fn command_line_options_win_and_proxy_commands_are_read_whole() {
    let c = config("Host *\n  User fromfile\n  Port 2000\n");
    let options = command_line_settings("args", "-o User=fromargs -p2001 -C -q").expect("args");
    let s = c.lookup(&["h"], &options);
    assert_eq!(
        (s.user.as_deref(), s.port, s.refused),
        (Some("fromargs"), Some(2001), None)
    );
    // ssh -o takes a ProxyCommand's value as the shell command it is.
    for (text, command) in [
        ("-o ProxyCommand='nc %h %p'", "nc %h %p"),
        ("-oProxyCommand=nc", "nc"),
        ("-o 'ProxyCommand nc %h %p'", "nc %h %p"),
        ("-o 'ProxyCommand=sh -c \"nc %h %p\"'", "sh -c \"nc %h %p\""),
    ] {
        let options = command_line_settings("args", text).expect(text);
        let s = c.lookup(&["h"], &options);
        assert_eq!(
            (s.proxy_command.as_deref(), s.refused),
            (Some(command), None),
            "{text}"
        );
    }
    for (text, named) in [("-b 127.0.0.1", "BindAddress"), ("-4", "AddressFamily")] {
        let options = command_line_settings("args", text).expect(text);
        let refused = c.lookup(&["h"], &options).refused.unwrap_or_default();
        assert!(refused.contains(named), "{text}: {refused}");
    }
    let jump = command_line_settings("args", "-J bastion").expect("-J");
    assert_eq!(
        c.lookup(&["h"], &jump).proxy_jump.as_deref(),
        Some("bastion")
    );
    for bad in [
        "-F /etc/other",
        "-S /tmp/ctl",
        "-o Frob=1",
        "host",
        "-o 'User \"x'",
    ] {
        assert!(command_line_settings("args", bad).is_err(), "{bad}");
    }
}

#[test]
fn a_no_op_value_first_keeps_a_later_setting_from_applying() {
    let c = config(
        "Host web1\n  ControlPath none\n  ProxyCommand none\nHost *\n  ControlPath ~/.ssh/cm-%C\n  ProxyCommand nc %h %p\n",
    );
    assert_eq!(c.lookup(&["web1"], &[]).refused, None);
    let refused = c.lookup(&["db1"], &[]).refused.unwrap_or_default();
    assert!(
        refused.contains("ControlPath") && refused.contains("config:5"),
        "{refused}"
    );
}

#[test]
fn relative_includes_are_read_from_dot_ssh_and_only_where_their_block_applies() {
    let home = std::env::temp_dir().join(format!("swpush-sshcfg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(home.join(".ssh/config.d")).expect("mkdir");
    std::fs::write(
        home.join(".ssh/config.d/a.conf"),
        "Host web*\n  Port 2201\n",
    )
    .expect("a");
    std::fs::write(
        home.join(".ssh/config.d/b.conf"),
        "Host web1\n  Port 2299\n  User b\n",
    )
    .expect("b");
    std::fs::write(home.join(".ssh/inner.conf"), "ProxyCommand nc %h %p\n").expect("inner");
    std::fs::write(
        home.join(".ssh/config"),
        "Include config.d/*.conf missing.conf\nHost db1\n  Include inner.conf\nHost *\n  User outer\n",
    )
    .expect("config");
    let c = SshConfig::load(Some(&home), "op").expect("load");
    let web1 = c.lookup(&["web1"], &[]);
    assert_eq!((web1.port, web1.user.as_deref()), (Some(2201), Some("b")));
    assert_eq!(web1.refused, None, "inner.conf applies only to db1");
    assert_eq!(web1.proxy_command, None);
    let db1 = c.lookup(&["db1"], &[]);
    assert_eq!(db1.proxy_command.as_deref(), Some("nc %h %p"));
    assert_eq!(db1.refused, None);
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn an_unevaluable_match_refuses_only_what_it_could_change() {
    let c = config(
        "Match exec \"test -e /x\"\n  ServerAliveInterval 5\n  LogLevel ERROR\nMatch host web* exec true\n  User other\nHost *\n  IdentitiesOnly yes\n",
    );
    let db1 = c.lookup(&["db1"], &[]);
    assert_eq!(db1.refused, None);
    assert!(db1.identities_only);
    let web1 = c.lookup(&["web1"], &[]).refused.unwrap_or_default();
    assert!(
        web1.contains("`Match exec` at config:4") && web1.contains("User"),
        "{web1}"
    );
}

#[test]
fn the_machine_config_comes_after_the_users() {
    let dir = std::env::temp_dir().join(format!("swpush-sshsys-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("home/.ssh")).expect("mkdir");
    std::fs::create_dir_all(dir.join("etc/ssh_config.d")).expect("mkdir");
    std::fs::write(dir.join("home/.ssh/config"), "Host web1\n  User mine\n").expect("user");
    std::fs::write(
        dir.join("etc/ssh_config"),
        "Include ssh_config.d/*.conf\nHost *\n  User machine\n  Port 2022\n",
    )
    .expect("system");
    std::fs::write(
        dir.join("etc/ssh_config.d/bastion.conf"),
        "Host db*\n  ProxyCommand ssh -W %h:%p bastion\n",
    )
    .expect("d");
    let c = SshConfig::load_files(Some(&dir.join("home")), "op", &dir.join("etc/ssh_config"))
        .expect("load");
    let web1 = c.lookup(&["web1"], &[]);
    assert_eq!(
        (web1.user.as_deref(), web1.port),
        (Some("mine"), Some(2022))
    );
    let db1 = c.lookup(&["db1"], &[]);
    assert_eq!(db1.proxy_command.as_deref(), Some("ssh -W %h:%p bastion"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn values_longer_than_the_inventory_allows_are_located_errors() {
    let long = "h".repeat(70_000);
    for (text, want) in [
        (
            format!("Host web1\n  HostName {long}\n"),
            "config:2: `HostName` `hhhh",
        ),
        (
            format!("Host *\n  User {}\n", "u".repeat(256)),
            "config:2: `User`",
        ),
        (
            format!("IdentityFile /{}\n", "k".repeat(5000)),
            "config:1: `IdentityFile`",
        ),
    ] {
        let Err(error) = SshConfig::parse(&text, Path::new("/home/op")) else {
            panic!("accepted: {want}");
        };
        let error = error.to_string();
        assert!(error.contains(want), "{error}");
        assert!(error.contains("bytes"), "{error}");
        assert!(error.len() < 300, "{error}");
    }
    // At the bound it is a value like any other.
    let at_bound = "h".repeat(255);
    assert_eq!(
        config(&format!("Host web1\n  HostName {at_bound}\n"))
            .lookup(&["web1"], &[])
            .host_name,
        Some(at_bound)
    );
}

#[test]
fn path_keywords_accumulate_and_expand_tokens_as_ssh() {
    let c = config(
        "Host cert\n  HostName Target.Example\n  User deploy\n  Port 2200\n  CertificateFile ~/.ssh/%h-cert.pub\n  CertificateFile /c/%r@%n:%p\n  IdentityFile ~/.ssh/a\n  IdentityFile ~/.ssh/b_%u\n  IdentityFile ~/.ssh/a\n  UserKnownHostsFile ~/.ssh/k1 %d/k2_%k\n  GlobalKnownHostsFile /g1 /g2\n  HostKeyAlias alias1\n  StrictHostKeyChecking off\n  ConnectTimeout 1m30s\n  IdentityAgent none\nHost bad\n  IdentityFile ~/.ssh/%f\nHost none\n  UserKnownHostsFile none\n  IdentityAgent SSH_AUTH_SOCK\n  ConnectTimeout 0\n",
    );
    let s = c.lookup(&["cert"], &[]);
    assert_eq!(s.refused, None);
    assert_eq!(s.identity_file, Some(PathBuf::from("/home/op/.ssh/a")));
    assert_eq!(
        s.further_identity_files,
        vec![PathBuf::from("/home/op/.ssh/b_op")]
    );
    assert_eq!(
        s.certificate_files,
        vec![
            PathBuf::from("/home/op/.ssh/target.example-cert.pub"),
            PathBuf::from("/c/deploy@cert:2200")
        ]
    );
    assert_eq!(
        s.user_known_hosts,
        Some(vec![
            PathBuf::from("/home/op/.ssh/k1"),
            PathBuf::from("/home/op/k2_alias1")
        ])
    );
    assert_eq!(
        s.global_known_hosts,
        Some(vec![PathBuf::from("/g1"), PathBuf::from("/g2")])
    );
    assert_eq!(s.host_key_alias.as_deref(), Some("alias1"));
    assert_eq!(s.strict_host_key_checking, Some(StrictHostKeyChecking::No));
    assert_eq!(s.connect_timeout, Some(90));
    assert_eq!(s.identity_agent, Some(IdentityAgent::None));
    let bad = c.lookup(&["bad"], &[]).refused.unwrap_or_default();
    assert!(bad.contains("%f") && bad.contains("config:17"), "{bad}");
    let none = c.lookup(&["none"], &[]);
    assert_eq!(none.user_known_hosts, Some(Vec::new()));
    assert_eq!(none.identity_agent, Some(IdentityAgent::Environment));
    assert_eq!(none.connect_timeout, None);
}

#[test]
fn values_ssh_rejects_are_located_errors() {
    for (text, want) in [
        (
            "StrictHostKeyChecking on\n",
            "config:1: `StrictHostKeyChecking`",
        ),
        (
            "Host x\n  ConnectTimeout 1.5\n",
            "config:2: `ConnectTimeout`",
        ),
        ("ConnectTimeout -1\n", "config:1: `ConnectTimeout`"),
        ("IdentitiesOnly maybe\n", "config:1: `IdentitiesOnly`"),
        ("ConnectionAttempts 0\n", "config:1: `ConnectionAttempts`"),
        ("ConnectionAttempts two\n", "config:1: `ConnectionAttempts`"),
    ] {
        let Err(error) = SshConfig::parse(text, Path::new("/home/op")) else {
            panic!("accepted: {text}");
        };
        assert!(error.to_string().contains(want), "{error}");
    }
}

#[test]
fn time_values_are_read_as_ssh_convtime() {
    use super::tokens::parse_time;
    for (text, want) in [
        ("10", Some(10)),
        ("10s", Some(10)),
        ("1m30s", Some(90)),
        ("1h", Some(3600)),
        ("1w", Some(604_800)),
        ("2147483647", Some(2_147_483_647)),
        ("99999999999", None),
        ("1.5", None),
        ("", None),
        ("m", None),
    ] {
        assert_eq!(parse_time(text), want, "{text:?}");
    }
}

#[test]
fn a_command_line_user_is_seen_by_match_user() {
    let c = config("Match user deploy\n  Port 2222\nHost *\n  User other\n");
    let user = option("-u", "User", "deploy").expect("User");
    let s = c.lookup(&["h"], &[user]);
    assert_eq!((s.user.as_deref(), s.port), (Some("deploy"), Some(2222)));
    assert_eq!(c.lookup(&["h"], &[]).port, None);
}

/// Every keyword this machine's OpenSSH knows is in the table, so none is
/// mistaken for an unknown one nor slips past as implicitly harmless: the
/// keys `ssh -G` prints, and the keywords `man ssh_config` lists (when the
/// manual is installed).
#[test]
fn every_keyword_openssh_knows_is_classified() {
    let output = std::process::Command::new("ssh")
        .args(["-G", "-F", "/dev/null", "keyword-table"])
        .output()
        .expect("ssh -G");
    assert!(output.status.success(), "ssh -G failed");
    let mut known: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split(' ').next().map(str::to_owned))
        .collect();
    assert!(known.len() > 50, "ssh -G printed {} keys", known.len());
    let manual = std::process::Command::new("sh")
        .args(["-c", "MANWIDTH=200 man ssh_config 2>/dev/null | col -b"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    // The manual's keyword entries: a capitalised word alone at the
    // definition indent, after the DESCRIPTION's keyword list starts.
    for line in manual.lines() {
        let word = line.trim_start();
        let indent = line.len() - word.len();
        if indent == 5
            && word.chars().next().is_some_and(|c| c.is_ascii_uppercase())
            && word.chars().all(|c| c.is_ascii_alphanumeric())
            && word.chars().any(|c| c.is_ascii_lowercase())
        {
            known.push(word.to_owned());
        }
    }
    // `ssh -G` keys that are not keywords of their own.
    let not_keywords = ["host"];
    let missing: Vec<&String> = known
        .iter()
        .filter(|k| !not_keywords.contains(&k.as_str()) && keyword(k).is_none())
        .collect();
    assert!(missing.is_empty(), "not in keywords.rs: {missing:?}");
}
