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
        c.lookup("web1", None, &[]),
        SshSettings {
            host_name: Some("192.0.2.11".into()),
            port: Some(2222),
            user: Some("deploy".into()),
            identity_file: Some(PathBuf::from("/home/op/.ssh/web")),
            proxy_jump: Some("bastion".into()),
            ..SshSettings::default()
        }
    );
    assert_eq!(c.lookup("db1", None, &[]).user.as_deref(), Some("fallback"));
    assert_eq!(c.lookup("db1", None, &[]).host_name, None);
}

#[test]
fn address_patterns_fill_what_the_name_left_unset() {
    let c = config("Host 10.1.*\n  Port 2200\n  User ops\n");
    let s = c.lookup("app1", Some("10.1.0.7"), &[]);
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
    let s = c.lookup("h", None, &options);
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
        let s = c.lookup("h", None, &options);
        assert_eq!(
            (s.proxy_command.as_deref(), s.refused),
            (Some(command), None),
            "{text}"
        );
    }
    for (text, named) in [("-b 127.0.0.1", "BindAddress"), ("-4", "AddressFamily")] {
        let options = command_line_settings("args", text).expect(text);
        let refused = c.lookup("h", None, &options).refused.unwrap_or_default();
        assert!(refused.contains(named), "{text}: {refused}");
    }
    let jump = command_line_settings("args", "-J bastion").expect("-J");
    assert_eq!(
        c.lookup("h", None, &jump).proxy_jump.as_deref(),
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
    assert_eq!(c.lookup("web1", None, &[]).refused, None);
    let refused = c.lookup("db1", None, &[]).refused.unwrap_or_default();
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
    let web1 = c.lookup("web1", None, &[]);
    assert_eq!((web1.port, web1.user.as_deref()), (Some(2201), Some("b")));
    assert_eq!(web1.refused, None, "inner.conf applies only to db1");
    assert_eq!(web1.proxy_command, None);
    let db1 = c.lookup("db1", None, &[]);
    assert_eq!(db1.proxy_command.as_deref(), Some("nc %h %p"));
    assert_eq!(db1.refused, None);
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn an_unevaluable_match_refuses_only_what_it_could_change() {
    let c = config(
        "Match exec \"test -e /x\"\n  ServerAliveInterval 5\n  LogLevel ERROR\nMatch host web* exec true\n  User other\nHost *\n  IdentitiesOnly yes\n",
    );
    let db1 = c.lookup("db1", None, &[]);
    assert_eq!(db1.refused, None);
    assert!(db1.identities_only);
    let web1 = c.lookup("web1", None, &[]).refused.unwrap_or_default();
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
    let web1 = c.lookup("web1", None, &[]);
    assert_eq!(
        (web1.user.as_deref(), web1.port),
        (Some("mine"), Some(2022))
    );
    let db1 = c.lookup("db1", None, &[]);
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
            .lookup("web1", None, &[])
            .host_name,
        Some(at_bound)
    );
}

#[test]
fn certificate_files_and_other_global_known_hosts_files_are_refused() {
    let c = config(
        "Host cert\n  CertificateFile ~/.ssh/id_ed25519-cert.pub\nHost global\n  GlobalKnownHostsFile /tmp/other_known_hosts\nHost default\n  GlobalKnownHostsFile /etc/ssh/ssh_known_hosts /etc/ssh/ssh_known_hosts2\n",
    );
    let cert = c.lookup("cert", None, &[]).refused.unwrap_or_default();
    assert!(
        cert.contains("CertificateFile") && cert.contains("config:2"),
        "{cert}"
    );
    let global = c.lookup("global", None, &[]).refused.unwrap_or_default();
    assert!(
        global.contains("GlobalKnownHostsFile") && global.contains("config:4"),
        "{global}"
    );
    assert_eq!(c.lookup("default", None, &[]).refused, None);
}
