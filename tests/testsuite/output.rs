//! What reaches the operator's terminal and files when a client, or a
//! file, sends hostile text (docs/security.md, "What a malicious client
//! can put on your screen"): nothing an answer holds panics the controller
//! or loses the fleet's report, and no control, bidi, zero-width or line
//! separator character from a client or a file reaches the terminal raw,
//! on push, status, enroll, hosts and the inventory's error lines.
//!
//! The compromised clients are logins on one real sshd host whose shell is
//! a script: whatever it prints is what the controller meets there.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use serde_json::Value;

use crate::support::world::*;

const HOSTS: &[&str] = &["hostile", "honest"];

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| World::start_trusted(HOSTS))
}

/// What every hostile answer below holds, as `printf` writes it: a window
/// title (ESC ] 0 ; ... BEL), a carriage return, an RTL override, a
/// zero-width space, a line separator, a byte-order mark and an LRI.
const HOSTILE_PRINTF: &str =
    r"t\033]0;pwned\007u\rv\342\200\256w\342\200\213x\342\200\250y\357\273\277z\342\201\246!";

/// [`HOSTILE_PRINTF`] as the characters it prints.
const HOSTILE: &str = "t\x1b]0;pwned\x07u\rv\u{202e}w\u{200b}x\u{2028}y\u{feff}z\u{2066}!";

/// Characters none of which may reach a terminal raw.
const UNSAFE: &[char] = &[
    '\x1b', '\x07', '\r', '\u{202e}', '\u{200b}', '\u{2028}', '\u{feff}', '\u{2066}',
];

/// 70 000 characters: past Rust's format width limit (65 535).
const HUGE: usize = 70_000;

/// A login on the hostile host whose shell is `script`.
fn hostile_login(user: &str, script: &str) {
    world().hostile_login("hostile", user, script);
}

/// An inventory of logins `users` on the hostile host (host name = user).
/// They are one machine to the controller's run lock: the tests' runs on
/// it take turns (`--wait`, see [`operator_args`]).
fn inventory_of(tag: &str, users: &[&str]) -> PathBuf {
    let world = world();
    let address = world.fleet.host("hostile").addr;
    let extra: String = users
        .iter()
        .map(|user| format!("  {user}: {{address: {address}, user: {user}}}\n"))
        .collect();
    world.inventory(tag, &[], &extra)
}

/// A shell line that prints `count` x's without a newline.
fn xs(count: usize) -> String {
    format!("head -c {count} /dev/zero | tr '\\0' x")
}

/// Answers the step's protocol as far as the order, then prints `done`.
fn answering(done: &str) -> String {
    format!(
        "#!/bin/sh\necho 'swpush hello 1 0123456789abcdef0123456789abcdef - -'\n\
         sed -n '/END SSH SIGNATURE/q'\n{done}\n"
    )
}

/// `swpush ARGS` as the operator runs it, with a text report.
fn run(args: &[&str]) -> Ran {
    world().swpush(args[0]).args(&args[1..]).run()
}

/// `OP -i INVENTORY --key KEY --wait=120 --connect-timeout 5 MORE...`, as the
/// operator types it (without `--key` for status, which signs nothing).
fn operator_args<'a>(op: &'a str, inventory: &'a Path, more: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![op, "-i", inventory.to_str().unwrap()];
    if op != "status" {
        args.extend(["--key", world().key.to_str().unwrap(), "--wait=120"]);
    }
    args.extend(["--connect-timeout", "5"]);
    args.extend_from_slice(more);
    args
}

/// The run records of `op` that name host `host`.
fn run_records(op: &str, host: &str) -> Vec<Report> {
    let dir = world().fleet.home().join(".local/state/swpush/runs");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
        .filter_map(|text| serde_json::from_str::<Value>(&text).ok())
        .map(Report::from_json)
        .filter(|record| {
            record["op"] == op && record.hosts.first().is_some_and(|entry| entry.host == host)
        })
        .collect()
}

/// Panics naming any character of [`UNSAFE`] that `what` holds raw.
fn assert_terminal_safe(what: &str, text: &str) {
    let raw: Vec<char> = UNSAFE
        .iter()
        .copied()
        .filter(|c| text.contains(*c))
        .collect();
    assert!(raw.is_empty(), "{what} holds {raw:?} raw:\n{text:?}");
}

/// Every line of `stdout` is at most `max` characters.
fn assert_lines_bounded(stdout: &str, max: usize) {
    let longest = stdout.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    assert!(
        longest <= max,
        "a line of {longest} characters:\n{stdout:.2000}"
    );
}

fn report_file(tag: &str) -> PathBuf {
    let path = world().fleet.dir().join(format!("report-{tag}.json"));
    let _ = std::fs::remove_file(&path);
    path
}

fn read_json(path: &Path) -> Report {
    let text = std::fs::read_to_string(path).unwrap();
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{}: {e}: {text:.500}", path.display()));
    Report::from_json(json)
}

#[test]
fn a_huge_answer_from_a_client_loses_no_report() {
    let world = world();
    // A huge completion line and a huge last line of stderr.
    hostile_login(
        "hugepush",
        &answering(&format!(
            "printf 'swpush done failed - - '; {x}; echo\n{x} >&2; echo >&2\nexit 1",
            x = xs(HUGE)
        )),
    );
    let inventory = inventory_of("hugepush", &["hugepush"]);
    let report = report_file("hugepush");
    let output = run(&operator_args(
        "install",
        &inventory,
        &[
            "--report",
            report.to_str().unwrap(),
            world.hello.to_str().unwrap(),
        ],
    ));
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(2),
        "{:.2000}",
        text(&output.stderr)
    );
    assert!(stdout.contains("1 host: 1 failed"), "{stdout:.2000}");
    assert_lines_bounded(&stdout, 2000);
    let json = read_json(&report);
    let (status, message) = status_of(&json, "hugepush");
    assert_eq!(status, "failed");
    assert!(
        message.len() <= 1100 && message.ends_with('…'),
        "{} bytes: {message:.200}",
        message.len()
    );
    let records = run_records("install", "hugepush");
    assert_eq!(records.len(), 1, "one run record of the run");
    assert_eq!(records[0].hosts[0].status, "failed");

    // status: a huge field of one package, and a huge package name.
    hostile_login(
        "hugestatus",
        &format!(
            "#!/bin/sh\nprintf 'swpush package hello '; {x}; echo ' abc -'\n\
             printf 'swpush package '; {x}; echo ' 1.0 abc -'\n\
             echo 'swpush done unchanged - - '\n",
            x = xs(HUGE)
        ),
    );
    let inventory = inventory_of("hugestatus", &["hugestatus"]);
    let report = report_file("hugestatus");
    let output = run(&operator_args(
        "status",
        &inventory,
        &["--report", report.to_str().unwrap()],
    ));
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{:.2000}",
        text(&output.stderr)
    );
    assert!(stdout.contains("1 of 1 host answered"), "{stdout:.2000}");
    assert_lines_bounded(&stdout, 2000);
    let json = read_json(&report);
    let packages = json.host("hugestatus")["packages"].as_array().unwrap();
    assert_eq!(packages.len(), 2, "{packages:?}");
    let version = packages[0]["version"].as_str().unwrap();
    assert!(
        version.len() <= 300 && version.ends_with('…'),
        "{version:.100}"
    );
    let name = packages[1]["name"].as_str().unwrap();
    assert!(name.len() <= 300 && name.ends_with('…'), "{name:.100}");

    // enroll: a huge completion message.
    hostile_login(
        "hugeenroll",
        &format!(
            "#!/bin/sh\nprintf 'swpush done installed - - '; {x}; echo\n",
            x = xs(HUGE)
        ),
    );
    let inventory = inventory_of("hugeenroll", &["hugeenroll"]);
    let report = report_file("hugeenroll");
    let output = run(&operator_args(
        "enroll",
        &inventory,
        &["--report", report.to_str().unwrap()],
    ));
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{:.2000}",
        text(&output.stderr)
    );
    assert_lines_bounded(&stdout, 2000);
    let (status, message) = status_of(&read_json(&report), "hugeenroll");
    assert_eq!(status, "installed");
    assert!(
        message.len() <= 1100 && message.ends_with('…'),
        "{message:.100}"
    );
    assert_eq!(run_records("enroll", "hugeenroll").len(), 1);
}

#[test]
fn a_compromised_client_cannot_write_to_the_terminal() {
    let world = world();
    hostile_login(
        "evilpush",
        &answering(&format!(
            "printf 'swpush done failed 1.0{h} 2.0{h} said {h}\\n'\nprintf '{h}\\n' >&2",
            h = HOSTILE_PRINTF
        )),
    );
    let inventory = inventory_of("evilpush", &["evilpush"]);
    let report = report_file("evilpush");
    let output = run(&operator_args(
        "install",
        &inventory,
        &[
            "--report",
            report.to_str().unwrap(),
            world.hello.to_str().unwrap(),
        ],
    ));
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert_terminal_safe("install's report", &stdout);
    assert_terminal_safe("install's stderr", &text(&output.stderr));
    // Shown, escaped where an operator can see what was sent.
    assert!(
        stdout.contains(
            r"said t\u{1b}]0;pwned\u{7}u\u{d}v\u{202e}w\u{200b}x\u{2028}y\u{feff}z\u{2066}!"
        ),
        "{stdout}"
    );
    // The JSON keeps what the client said, escaped as JSON.
    let raw = std::fs::read_to_string(&report).unwrap();
    assert_terminal_safe("the JSON report", &raw);
    let (status, _, version, message) = outcome(&Report::parse(raw.as_bytes()), "evilpush");
    assert_eq!(status, "failed");
    assert_eq!(version, format!("2.0{HOSTILE}"));
    assert_eq!(message, format!("said {HOSTILE}"));

    // status: a package name, version, date and kept release of hostile text.
    hostile_login(
        "evilstatus",
        &format!(
            "#!/bin/sh\nprintf 'swpush package he{h}llo 1.0{h} abc 2026{h}\\n'\n\
             printf 'swpush release he{h}llo 0.9{h} abc -\\n'\n\
             echo 'swpush done unchanged - - '\n",
            h = HOSTILE_PRINTF
        ),
    );
    let inventory = inventory_of("evilstatus", &["evilstatus"]);
    let output = run(&operator_args("status", &inventory, &[]));
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_terminal_safe("status's table", &stdout);
    assert!(stdout.contains(r"1.0t\u{1b}]0;pwned\u{7}u"), "{stdout}");
    assert!(stdout.contains(r"0.9t\u{1b}"), "{stdout}");
    assert_eq!(
        stdout.lines().count(),
        4,
        "one row, no line broken:\n{stdout}"
    );
    let output = run(&operator_args("status", &inventory, &["--format", "json"]));
    assert_terminal_safe("status's JSON", &text(&output.stdout));
    let (_, json) = parse_report(&output);
    let packages = &json.host("evilstatus")["packages"];
    assert_eq!(packages[0]["version"], format!("1.0{HOSTILE}"));

    // enroll: a hostile completion message.
    hostile_login(
        "evilenroll",
        &format!(
            "#!/bin/sh\nprintf 'swpush done installed - - key added {h}\\n'\n",
            h = HOSTILE_PRINTF
        ),
    );
    let inventory = inventory_of("evilenroll", &["evilenroll"]);
    let output = run(&operator_args("enroll", &inventory, &[]));
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_terminal_safe("enroll's report", &stdout);
    assert!(stdout.contains(r"key added t\u{1b}]0;pwned"), "{stdout}");
}

#[test]
fn a_hook_printing_escapes_and_a_huge_line_is_shown_escaped() {
    // Not a compromised client: the real step, whose post_install prints
    // what many service scripts do (colours, a title), some bidi and
    // zero-width text, and then a line far past the format width limit.
    let world = world();
    let package = world.variant("hello-noisy.tar.gz", |dir| {
        append(
            dir,
            "hooks/post.sh",
            &format!(
                "printf '\\033[31mstarting\\033[0m {HOSTILE_PRINTF}\\n'\n{x}\necho\nexit 1\n",
                x = xs(HUGE)
            ),
        )
    });
    let inventory = world.fleet_inventory("honest", &["honest"], "");
    let report = report_file("honest");
    let output = run(&operator_args(
        "install",
        &inventory,
        &[
            "--report",
            report.to_str().unwrap(),
            package.to_str().unwrap(),
        ],
    ));
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert_terminal_safe("install's report", &stdout);
    assert!(
        stdout.contains(
            r"post_install failed, removed again: \u{1b}[31mstarting\u{1b}[0m t\u{1b}]0;pwned"
        ),
        "{stdout}"
    );
    assert!(stdout.contains(r"v\u{202e}w\u{200b}x\u{2028}y"), "{stdout}");
    assert_lines_bounded(&stdout, 2000);
    let raw = std::fs::read_to_string(&report).unwrap();
    assert_terminal_safe("the JSON report", &raw);
    let (status, _, _, message) = outcome(&Report::parse(raw.as_bytes()), "honest");
    assert_eq!(status, "failed");
    assert!(message.contains("\x1b[31mstarting"), "{message}");
}

#[test]
fn a_client_flooding_while_the_package_is_sent_is_cut_off() {
    // The client asks for the package, then never reads it and prints
    // without end: the upload waits for window space while the output
    // piles up, unless the controller bounds what it keeps unread.
    let world = world();
    let package = world.variant("hello-big.tar", |dir| {
        let noise: Vec<u8> = (0..6u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        std::fs::write(dir.join("bin/noise"), noise).unwrap();
    });
    let size = std::fs::metadata(&package).unwrap().len();
    hostile_login(
        "floodupload",
        &answering(&format!("echo 'swpush need {size}'\nexec yes swpush-flood")),
    );
    let inventory = inventory_of("floodupload", &["floodupload"]);
    let more = [
        "--timeout",
        "8",
        "--format",
        "json",
        package.to_str().unwrap(),
    ];
    let args = operator_args("install", &inventory, &more);
    let (output, peak_mib, _) = measured(world.swpush("install").args(&args[1..]));
    let (code, report) = parse_report(&output);
    eprintln!("a client flooding during the upload: controller peak {peak_mib} MiB");
    let (status, message) = status_of(&report, "floodupload");
    assert_eq!((code, status.as_str()), (2, "failed"), "{message}");
    assert!(message.contains("printed more than"), "{message}");
    assert!(
        peak_mib < 64,
        "the controller kept the flood: {peak_mib} MiB"
    );
}

#[test]
fn the_end_of_an_overlong_line_is_not_read_as_a_line() {
    // 5 000 bytes of noise, then, in a later packet, what would be a
    // completion line if it started a line: it ends the noise instead.
    hostile_login(
        "longline",
        &answering(&format!(
            "{x}\nsleep 1\necho 'swpush done installed - 9.9 forged'\nexit 1",
            x = xs(5000)
        )),
    );
    let inventory = inventory_of("longline", &["longline"]);
    let world = world();
    let (code, report) = world.push("install", &inventory, &world.hello, &["--wait=120"]);
    let entry = report.host("longline");
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(
        (entry.status.as_str(), entry.version.as_deref()),
        ("failed", Some("unknown")),
        "{report:#}"
    );
}

/// `swpush hosts -i FILE` on an inventory of `yaml` (no fleet needed).
fn hosts_of(tag: &str, yaml: &str) -> (Ran, PathBuf) {
    let path = world().fleet.dir().join(format!("inventory-{tag}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    (run(&["hosts", "-i", path.to_str().unwrap()]), path)
}

/// The one error line of a run refused before any connection.
fn error_line(output: &Output) -> String {
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr:.2000}");
    assert!(output.stdout.is_empty(), "{:.500}", text(&output.stdout));
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr:.2000}");
    stderr
}

#[test]
fn an_inventory_field_too_long_is_a_located_error() {
    let long = "a".repeat(HUGE);
    let cases = [
        // YAML allows 1024 characters in an implicit key: a longer one is
        // written as an explicit key (`? KEY`).
        (
            "name",
            format!("hosts:\n  web1: {{}}\n  ? {long}\n  : {{}}\n"),
            ":3:5: ",
        ),
        (
            "address",
            format!("hosts:\n  web1: {{address: {long}}}\n"),
            ":2:19: ",
        ),
        (
            "user",
            format!("hosts:\n  web1:\n    user: {long}\n"),
            ":3:11: ",
        ),
        (
            "ansible",
            format!("all:\n  hosts:\n    ? {long}\n    : {{ansible_host: 192.0.2.1}}\n"),
            ":3:7: ",
        ),
        (
            "ansible-user",
            format!("all:\n  hosts:\n    web1:\n      ansible_user: {long}\n"),
            ":4:21: ",
        ),
    ];
    for (tag, yaml, at) in cases {
        let (output, path) = hosts_of(&format!("long-{tag}"), &yaml);
        let line = error_line(&output);
        assert!(
            line.starts_with(&format!("error: {}{at}", path.display())),
            "{tag}: {line:.300}"
        );
        assert!(line.contains("longer than"), "{tag}: {line:.300}");
        assert!(line.len() < 600, "{tag}: {} bytes: {line:.300}", line.len());
    }
}

#[test]
fn a_hostile_host_name_in_an_inventory_is_shown_safely() {
    // YAML's double-quoted escapes: ESC, BEL, CR, RLO, ZWSP, LS.
    let names = [
        r#""web\e]0;pwned\a""#,
        r#""web\r1""#,
        r#""web\u202e1""#,
        r#""web\u200b1""#,
        r#""web\u20281""#,
    ];
    for (i, name) in names.iter().enumerate() {
        let (output, _) = hosts_of(
            &format!("evil-name-{i}"),
            &format!("hosts:\n  {name}: {{}}\n"),
        );
        let line = error_line(&output);
        assert_terminal_safe("the error line", &line);
        assert!(line.contains(r"web\u{"), "{name}: {line}");
        let ansible = format!("all:\n  hosts:\n    {name}:\n");
        let (output, _) = hosts_of(&format!("evil-ansible-{i}"), &ansible);
        let line = error_line(&output);
        assert_terminal_safe("the error line", &line);
        assert!(line.contains(r"web\u{"), "{name}: {line}");
    }
}

/// The text report's row of `host`, its cells split on runs of spaces.
fn row_of(stdout: &str, host: &str) -> Vec<String> {
    let line = stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(host))
        .unwrap_or_else(|| panic!("no row for {host}:\n{stdout}"));
    line.split_whitespace().map(String::from).collect()
}

/// A host never reached has versions nobody found out (`?`, `"unknown"`);
/// a host that answered it has none has none (`-`, `null`).
#[test]
fn a_version_never_found_out_is_not_none() {
    let world = world();
    let inventory = world.inventory(
        "unknown-versions",
        &[
            ("honest", world.fleet.host("honest").addr.to_string()),
            ("dead", world.fleet.dead_address().to_string()),
        ],
        "",
    );
    let args = operator_args("remove", &inventory, &["nothere"]);
    let output = run(&args);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert_eq!(
        row_of(&stdout, "honest")[1..3],
        ["skipped", "-"],
        "{stdout}"
    );
    assert_eq!(
        row_of(&stdout, "dead")[1..3],
        ["unreachable", "?"],
        "{stdout}"
    );

    let output = run(&[&args[..], &["--format", "json"]].concat());
    let (code, report) = parse_report(&output);
    assert_eq!(code, 2, "{report:#}");
    let answered = report.host("honest");
    assert_eq!(
        (&answered["previous_version"], &answered["version"]),
        (&Value::Null, &Value::Null),
        "{answered}"
    );
    assert!(answered.versions_known());
    let dead = report.host("dead");
    assert_eq!(
        (dead.previous_version.as_deref(), dead.version.as_deref()),
        (Some("unknown"), Some("unknown")),
        "{dead}"
    );
    assert!(!dead.versions_known());
}

/// The same run in a locale that is not UTF-8 and in one that is: the
/// report's marks and a client's are ASCII in the first, as they were
/// sent in the second; the JSON is the same in both.
#[test]
fn the_text_report_is_ascii_unless_the_locale_is_utf_8() {
    let world = world();
    hostile_login(
        "arrows",
        &answering("echo 'swpush done upgraded 1.0 1.1 would upgrade 1.0 → 1.1 …'"),
    );
    let address = world.fleet.host("hostile").addr;
    let inventory = world.inventory(
        "arrows",
        &[("dead", world.fleet.dead_address().to_string())],
        &format!("  arrows: {{address: {address}, user: arrows}}\n"),
    );
    let args = operator_args("install", &inventory, &[world.hello.to_str().unwrap()]);
    let run_in = |locale: &str| {
        world
            .swpush(args[0])
            .args(&args[1..])
            .env("LC_ALL", locale)
            .run()
    };
    let ascii = run_in("C");
    let stdout = ascii.stdout();
    assert_eq!(ascii.code(), 2, "{}", ascii.stderr());
    assert!(stdout.is_ascii(), "{stdout}");
    assert!(
        stdout.contains("1.0 -> 1.1  ") && stdout.contains("would upgrade 1.0 -> 1.1 ..."),
        "{stdout}"
    );
    assert!(stdout.contains("\nNot done - hello "), "{stdout}");
    let utf8 = run_in("C.UTF-8");
    let stdout = utf8.stdout();
    assert!(
        stdout.contains("1.0 → 1.1  ") && stdout.contains("would upgrade 1.0 → 1.1 …"),
        "{stdout}"
    );
    assert!(stdout.contains("\nNot done — hello "), "{stdout}");
    // LANG says only when LC_ALL and LC_CTYPE do not.
    let lang = world
        .swpush(args[0])
        .args(&args[1..])
        .env_remove("LC_ALL")
        .env("LC_CTYPE", "POSIX")
        .env("LANG", "C.UTF-8")
        .run();
    assert!(lang.stdout().is_ascii(), "{}", lang.stdout());
    let json = world
        .swpush(args[0])
        .args(&args[1..])
        .args(["--format", "json"])
        .env("LC_ALL", "C")
        .run();
    let (_, report) = parse_report(&json);
    assert_eq!(report.host("arrows").message, "would upgrade 1.0 → 1.1 …");
}

/// `swpush ARGS` on a terminal (a pty of `script`), as the operator runs
/// it, with `env` set too; what the terminal was sent.
fn on_a_terminal(args: &[&str], env: &[(&str, &str)]) -> String {
    let quoted: Vec<String> = std::iter::once(env!("CARGO_BIN_EXE_swpush"))
        .chain(args.iter().copied())
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect();
    let mut command = std::process::Command::new("script");
    command
        .args(["-qefc", &quoted.join(" "), "/dev/null"])
        .env("HOME", world().fleet.home())
        .env("LC_ALL", "C.UTF-8")
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("SWPUSH_INVENTORY")
        .env_remove("SWPUSH_KEY")
        .env_remove("NO_COLOR");
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().expect("run script (util-linux)");
    text(&output.stdout)
}

/// On a terminal the status words are in colour, and `NO_COLOR` takes it
/// away; what is not a terminal never gets it.
#[test]
fn colour_on_a_terminal_unless_no_color() {
    let world = world();
    let inventory = world.inventory(
        "colour",
        &[
            ("honest", world.fleet.host("honest").addr.to_string()),
            ("dead", world.fleet.dead_address().to_string()),
        ],
        "",
    );
    let args = operator_args("remove", &inventory, &["nothere"]);
    let red = "\x1b[31munreachable\x1b[0m";
    let screen = on_a_terminal(&args, &[]);
    assert!(
        screen.contains(&format!("\ndead    {red}  ?")),
        "{screen:?}"
    );
    assert!(
        screen.contains(&format!("\n  dead  {red}  cannot connect")),
        "{screen:?}"
    );
    assert!(screen.contains("\nhonest  skipped "), "{screen:?}");
    for no_color in ["1", "yes"] {
        let screen = on_a_terminal(&args, &[("NO_COLOR", no_color)]);
        assert!(screen.contains("\ndead    unreachable  ?"), "{screen:?}");
        assert!(!screen.contains("\x1b[31m"), "{screen:?}");
    }
    let screen = on_a_terminal(&args, &[("NO_COLOR", "")]);
    assert!(
        screen.contains(red),
        "an empty NO_COLOR is unset: {screen:?}"
    );
    let piped = run(&args);
    assert!(!piped.stdout().contains('\x1b'), "{}", piped.stdout());
}

/// A host that does not make it is a line on stderr as soon as it ends,
/// while the others go on: cron mails it, a JSON stdout stays JSON.
#[test]
fn a_host_not_done_is_a_line_on_stderr_as_it_ends() {
    use std::io::BufRead;
    let world = world();
    hostile_login(
        "slowpoke",
        &answering("sleep 8\necho 'swpush done installed - 1.0.0 at last'"),
    );
    let address = world.fleet.host("hostile").addr;
    let inventory = world.inventory(
        "as-it-ends",
        &[("dead", world.fleet.dead_address().to_string())],
        &format!("  slowpoke: {{address: {address}, user: slowpoke}}\n"),
    );
    let args = operator_args(
        "install",
        &inventory,
        &[
            "--connect-retries",
            "0",
            "--format",
            "json",
            world.hello.to_str().unwrap(),
        ],
    );
    let mut child = world.swpush(args[0]).args(&args[1..]).spawn();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    assert!(
        first.starts_with("swpush: dead unreachable: cannot connect to "),
        "{first:?}"
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "said only at the end of the run"
    );
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(rest.is_empty(), "one line, for the one host: {rest}");
    let (code, report) = parse_report(&output);
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(report.host("slowpoke").status, "installed", "{report:#}");
}
