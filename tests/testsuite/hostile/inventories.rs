//! Inventories the controller refuses before connecting, and host fields
//! it cannot use.

use super::*;

// --- 2. inventories the controller refuses before connecting ----------------

/// 1-based line and column of the last occurrence of `needle` in `text`.
fn position_of_last(text: &str, needle: &str) -> (usize, usize) {
    let at = text
        .rfind(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in {text}"));
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    (text[..at].matches('\n').count() + 1, at - line_start + 1)
}

#[test]
fn broken_inventories_are_refused_before_connecting() {
    let world = world();
    let tripwire = Tripwire::new();
    let good = guarded_yaml(world, "invguard", &tripwire);
    let port = tripwire.port();
    let guard = world.fleet.host("invguard").addr;
    let key = world.fleet.login_key().display().to_string();
    let laughs = {
        let mut yaml = String::from(
            "lol0: &l0 [\"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\"]\n",
        );
        for i in 1..9 {
            let p = i - 1;
            yaml += &format!(
                "lol{i}: &l{i} [*l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}]\n"
            );
        }
        yaml + &good
    };
    // (case, inventory text, extra options, where: the error points at the
    // last occurrence of this text, what it says)
    type Case<'a> = (&'a str, String, Vec<&'a str>, Option<&'a str>, &'a str);
    let table: Vec<Case> = vec![
        (
            "broken-yaml",
            format!("{good}  web3: {{address: 127.0.0.1\n"),
            vec![],
            Some("{address: 127.0.0.1\n"),
            "unclosed bracket",
        ),
        (
            "unknown-key",
            format!("{good}  web3: {{adress: 127.0.0.1}}\n"),
            vec![],
            Some("adress"),
            "unknown field `adress`, expected one of address, port",
        ),
        (
            "unknown-top-level-key",
            format!("{good}host:\n  web3: {{}}\n"),
            vec![],
            Some("host:\n"),
            "unknown field `host`",
        ),
        (
            "port-not-a-number",
            format!("{good}  web3: {{address: 127.0.0.1, port: many}}\n"),
            vec![],
            Some("many"),
            "`port`: expected a whole number from 0 to 65535",
        ),
        (
            "become-not-a-bool",
            format!("{good}  web3: {{address: 127.0.0.1, become: maybe}}\n"),
            vec![],
            Some("maybe"),
            "`become`: expected true or false",
        ),
        (
            "duplicate-host",
            format!("{good}  tripwire: {{address: 127.0.0.2}}\n"),
            vec![],
            Some("tripwire: {address: 127.0.0.2"),
            "`tripwire` appears twice",
        ),
        (
            "group-names-unknown-host",
            format!("{good}groups:\n  web: [tripwire, web9]\n"),
            vec![],
            Some("web9"),
            "group `web` names unknown host `web9`",
        ),
        (
            "group-named-like-a-host",
            format!("{good}groups:\n  tripwire: [invguard]\n"),
            vec![],
            Some("tripwire: ["),
            "group `tripwire` has the name of a host",
        ),
        (
            "bad-host-name",
            format!("{good}  \"web 3\": {{address: 127.0.0.1}}\n"),
            vec![],
            Some("\"web 3\""),
            "host name `web 3` may not be empty, start with `!&~@`, or contain spaces",
        ),
        (
            "host-name-with-a-glob",
            format!("{good}  \"web*\": {{address: 127.0.0.1}}\n"),
            vec![],
            Some("\"web*\""),
            "host name `web*` may not",
        ),
        (
            "relative-prefix",
            format!("{good}  web3: {{address: 127.0.0.1, prefix: opt/x}}\n"),
            vec![],
            Some("opt/x"),
            "`prefix` must be an absolute path without `..`, got `opt/x`",
        ),
        (
            "known-servers-with-dotdot",
            format!("{good}  web3: {{address: 127.0.0.1, known_servers: /etc/../tmp/ks}}\n"),
            vec![],
            Some("/etc/../tmp/ks"),
            "`known_servers` must be an absolute path without `..`",
        ),
        (
            "keep-no-release",
            format!("{good}  web3: {{address: 127.0.0.1, keep_releases: 0}}\n"),
            vec![],
            Some("0}\n"),
            "`keep_releases` must be at least 1",
        ),
        (
            "empty",
            String::new(),
            vec![],
            None,
            "the inventory is empty",
        ),
        (
            "no-hosts",
            "defaults:\n  user: root\nhosts: {}\n".into(),
            vec![],
            None,
            "the inventory lists no hosts",
        ),
        (
            "ansible-bad-port",
            format!(
                "all:\n  vars:\n    ansible_user: root\n    ansible_ssh_private_key_file: \"{key}\"\n  hosts:\n    \
                 tripwire: {{ansible_host: 127.0.0.1, ansible_port: {port}}}\n    \
                 invguard: {{ansible_host: {guard}, ansible_port: 70000}}\n"
            ),
            vec![],
            Some("70000"),
            "`ansible_port`: expected a whole number from 0 to 65535",
        ),
        (
            "ansible-port-text",
            format!(
                "all:\n  hosts:\n    tripwire: {{ansible_host: 127.0.0.1, ansible_port: {port}}}\n  \
                 children:\n    web:\n      vars: {{ansible_port: twenty-two}}\n      hosts:\n        invguard:\n"
            ),
            vec![],
            Some("twenty-two"),
            "`ansible_port`: expected a whole number",
        ),
        (
            "alias-bomb",
            laughs,
            vec![],
            Some("*l4, *l4, *l4, *l4, *l4, *l4, *l4, *l4, *l4, *l4]"),
            "budget",
        ),
        (
            "limit-matches-nothing",
            good.clone(),
            vec!["--limit", "web9"],
            None,
            "`web9` matches no host or group in the inventory",
        ),
        (
            "limit-exclusion-typo",
            good.clone(),
            vec!["--limit", "!tripwyre"],
            None,
            "`!tripwyre` matches no host or group",
        ),
    ];
    assert!(table.len() >= 10);
    let dir = world.fleet.dir().join("broken-inventories");
    std::fs::create_dir_all(&dir).unwrap();
    for (case, yaml, more, at, says) in &table {
        let path = dir.join(format!("{case}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        let output = install(world, &path, &world.hello, more);
        let prefix = match (at, case.starts_with("limit-")) {
            (_, true) => "error: --limit: ".to_owned(),
            (Some(needle), _) => {
                let (line, column) = position_of_last(yaml, needle);
                format!("error: {}:{line}:{column}: ", path.display())
            }
            (None, _) => format!("error: {}: ", path.display()),
        };
        assert_refused(&output, case, &prefix, says);
        tripwire.assert_untouched(case);
    }

    // Not valid UTF-8, a missing file and a folder, named as such.
    let odd: [(&str, PathBuf, &str); 3] = [
        ("not-utf8", dir.join("latin1.yaml"), "is not UTF-8 text"),
        ("missing", dir.join("missing.yaml"), "no such file"),
        (
            "folder",
            dir.clone(),
            "is a directory, not an inventory file",
        ),
    ];
    std::fs::write(&odd[0].1, [good.as_bytes(), b"  caf\xe9: {}\n"].concat()).unwrap();
    for (case, path, says) in &odd {
        let output = install(world, path, &world.hello, &[]);
        assert_refused(&output, case, &format!("error: {}: ", path.display()), says);
        tripwire.assert_untouched(case);
    }

    // The same inventory without its mistake does reach the hosts: the
    // tripwire is live, so the checks above prove something.
    let path = dir.join("good.yaml");
    std::fs::write(&path, &good).unwrap();
    let mut run = install_run(world, &path, &world.hello, &["--limit", "tripwire"]).spawn();
    // Hanging up at once makes the host `unreachable` without a wait.
    wait_until(
        Duration::from_secs(10),
        "a good inventory connects to the tripwire",
        || tripwire.0.accept().is_ok(),
    );
    let status = run.wait().unwrap();
    assert_eq!(status.code(), Some(2), "the tripwire host is unreachable");
    assert_guard_untouched(world, "invguard", "broken inventories");
}

/// Host fields the inventory takes as they are: an address or user with a
/// newline (which `swpush hosts` prints raw, breaking its table), an address
/// that looks like an option, port 0. Each ends `unreachable` (exit 2) after
/// a connection attempt instead of being refused up front.
#[test]
fn unusable_host_fields_are_refused_before_connecting() {
    let world = world();
    let tripwire = Tripwire::new();
    let good = guarded_yaml(world, "invguard", &tripwire);
    let cases = [
        ("address-newline", "  web3: {address: \"127.0.0.1\\nx\"}\n"),
        (
            "address-option",
            "  web3: {address: \"-oProxyCommand=true\"}\n",
        ),
        (
            "user-newline",
            "  web3: {address: 127.0.0.1, user: \"root\\nx\"}\n",
        ),
        ("port-zero", "  web3: {address: 127.0.0.1, port: 0}\n"),
    ];
    let dir = world.fleet.dir().join("unusable-host-fields");
    std::fs::create_dir_all(&dir).unwrap();
    for (case, line) in cases {
        let path = dir.join(format!("{case}.yaml"));
        std::fs::write(&path, format!("{good}{line}")).unwrap();
        let output = install(world, &path, &world.hello, &["--limit", "web3"]);
        assert_refused(&output, case, &format!("error: {}:", path.display()), "");
        tripwire.assert_untouched(case);
    }
}
