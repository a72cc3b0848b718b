//! The command line as an operator meets it, before any host is contacted:
//! `hosts`, `pack`, `keygen`, exit statuses, and one-line errors for bad
//! input. Runs the real binary; needs no sshd.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::swpush::{Ran, Swpush};

/// `swpush ARGS` as user `tester` with HOME `home`, no `SWPUSH_*` defaults.
fn swpush(home: &Path, args: &[&str]) -> Ran {
    tester(home, args[0]).args(&args[1..]).run()
}

fn tester(home: &Path, op: &str) -> Swpush {
    Swpush::new(op)
        .env("HOME", home)
        .env("USER", "tester")
        .env_remove("SWPUSH_INVENTORY")
        .env_remove("SWPUSH_KEY")
}

fn scratch(test: &str) -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn repo(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(path)
        .display()
        .to_string()
}

#[test]
fn hosts_lists_the_selection_as_table_and_json() {
    let home = scratch("hosts");
    let inventory = repo("inventory.example.yaml");
    let all = swpush(&home, &["hosts", "--inventory", &inventory]);
    assert!(all.status.success(), "{}", stderr(&all));
    let text = stdout(&all);
    assert!(text.starts_with("HOST"), "{text}");
    assert!(
        text.contains("web3    192.0.2.13:2222  deploy (sudo)  web"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 7, "header and six hosts:\n{text}");

    let json = swpush(
        &home,
        &[
            "hosts",
            "-i",
            &inventory,
            "--limit",
            "web,!canary",
            "--format",
            "json",
        ],
    );
    assert!(json.status.success(), "{}", stderr(&json));
    let hosts: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let names: Vec<&str> = hosts
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["host"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web2", "web3"]);
    assert_eq!(hosts[1]["port"], 2222);
    assert_eq!(hosts[1]["become"], true);
}

#[test]
fn hosts_says_which_hosts_will_not_be_connected_to_and_why() {
    let home = scratch("hosts-refused");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(
        home.join(".ssh/config"),
        "Host db*\n  BindAddress 127.0.0.9\n",
    )
    .unwrap();
    let listed = swpush(&home, &["hosts", "-i", "web1,db1,"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let text = stdout(&listed);
    let notes: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("not connected"))
        .collect();
    assert_eq!(notes.len(), 1, "{text}");
    assert!(
        notes[0].starts_with("db1: not connected to: `BindAddress 127.0.0.9`")
            && notes[0].contains(".ssh/config:2"),
        "{text}"
    );
}

#[test]
fn the_inventory_can_come_from_the_environment() {
    let home = scratch("env");
    let output = Swpush::new("hosts")
        .args(["--limit", "db"])
        .env("HOME", &home)
        .env("SWPUSH_INVENTORY", repo("inventory.example.yaml"))
        .run();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output).lines().count(), 3);
}

#[test]
fn mistakes_are_one_line_and_exit_1() {
    let home = scratch("mistakes");
    let bad = home.join("bad.yaml");
    std::fs::write(&bad, "hosts:\n  web1: {adress: 192.0.2.1}\n").unwrap();
    let inventory = repo("inventory.example.yaml");
    let bad_text = bad.display().to_string();
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["hosts", "-i", "/nonexistent.yaml"],
            "error: /nonexistent.yaml: no such file (for a list of hosts, end it with a comma: `-i 'HOST,'`)".into(),
        ),
        (
            vec!["hosts", "-i", &bad_text],
            format!("error: {bad_text}:2:10: unknown field `adress`"),
        ),
        (
            vec!["hosts", "-i", &inventory, "--limit", "wbe"],
            "error: --limit: `wbe` matches no host or group".into(),
        ),
        (
            vec!["install", "-i", &inventory, "/nonexistent.tar"],
            "error: /nonexistent.tar: no such file".into(),
        ),
        (
            vec!["install", "-i", &inventory, &inventory],
            format!("error: {inventory}: is not a tar archive"),
        ),
        (
            vec!["pack", "/nonexistent"],
            "error: /nonexistent: is not a folder".into(),
        ),
    ];
    for (args, expected) in cases {
        let output = swpush(&home, &args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let err = stderr(&output);
        assert!(
            err.starts_with(&expected),
            "{args:?}\n got: {err}\nwant: {expected}"
        );
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(stdout(&output).is_empty());
    }
}

#[test]
fn bad_arguments_exit_1_and_help_exits_0() {
    let home = scratch("args");
    for args in [
        &["frobnicate"][..],
        &["hosts"],
        &["install", "-i", "x.yaml", "p.tar", "--forks", "0"],
        &["install", "-i", "x", "p", "--serial", "1"],
    ] {
        let output = swpush(&home, args);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    for args in [&["--help"][..], &["--version"], &["install", "--help"]] {
        let output = swpush(&home, args);
        assert_eq!(output.status.code(), Some(0), "{args:?}");
        assert!(!stdout(&output).is_empty());
    }
}

/// A number that cannot work (`--timeout 0` would time every host out at
/// once, `--forks 0` would start none) is refused before anything is read
/// or connected: one line naming the option and the range it takes.
#[test]
fn numbers_that_cannot_work_are_refused_naming_the_range() {
    let home = scratch("ranges");
    // Nothing listens on port 1: a value let through would be tried on it.
    let cases: [(&str, &[&str], &str); 7] = [
        ("--timeout", &["0", "604801", "-5"], "1 to 604800 seconds"),
        ("--connect-timeout", &["0", "3601"], "1 to 3600 seconds"),
        ("--connect-retries", &["11", "-1"], "0 to 10"),
        ("--forks", &["0"], "1 or more"),
        ("-f", &["0"], "1 or more"),
        ("--busy-wait", &["0", "ten"], "1 to 3600 seconds"),
        ("--busy-retries", &["-1"], "0 or more"),
    ];
    for (option, value, range) in cases
        .iter()
        .flat_map(|(option, values, range)| values.iter().map(move |v| (*option, *v, *range)))
    {
        let args = ["rollback", "hello", "-i", "127.0.0.1:1,", option, value];
        let output = swpush(&home, &args);
        let said = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {said}");
        let shown = if option == "-f" { "--forks" } else { option };
        assert!(
            said.starts_with(&format!("error: invalid value '{value}' for '{shown} "))
                && said.contains(&format!("must be {range}")),
            "{args:?}: {said}"
        );
        assert_eq!(said.lines().count(), 1, "one line: {said}");
        assert!(stdout(&output).is_empty(), "{args:?}");
    }
}

/// `remove`/`rollback` take a package NAME: a package file in its place
/// (`remove hello-1.0.0.tar.gz`) is refused before anything is connected
/// to, naming the NAME when the file says it. A file that is not a
/// package does not stand in the way of a name.
#[test]
fn remove_and_rollback_refuse_a_package_file_naming_the_name() {
    let home = scratch("package-file");
    let packed = Swpush::new("pack")
        .arg(repo("packages/hello"))
        .current_dir(&home)
        .run();
    assert!(packed.status.success(), "{}", stderr(&packed));
    let package = home.join("hello-1.0.0.tar.gz");
    std::fs::write(home.join("notes"), "not a package\n").unwrap();
    let in_home = |args: &[&str]| {
        tester(&home, args[0])
            .args(&args[1..])
            .args(["-i", "127.0.0.1:1,"])
            .current_dir(&home)
            .run()
    };
    let cases: [(&[&str], &str); 5] = [
        (
            &["remove", "hello-1.0.0.tar.gz"],
            "remove takes a package NAME, not a package file: `hello-1.0.0.tar.gz` is hello 1.0.0 (swpush remove hello)",
        ),
        (
            &["rollback", package.to_str().unwrap()],
            "rollback takes a package NAME, not a package file: ",
        ),
        (
            &["rollback", "hello-2.0.tgz", "--to", "1.0"],
            "rollback takes a package NAME, not a package file: `hello-2.0.tgz` (the `name` in its swpush.yaml; `swpush status` lists what is installed)",
        ),
        (
            &["remove", "web.tar.zst"],
            "remove takes a package NAME, not a package file: `web.tar.zst`",
        ),
        (
            &["remove", "web.tar"],
            "remove takes a package NAME, not a package file: `web.tar`",
        ),
    ];
    for (args, expected) in cases {
        let output = in_home(args);
        let said = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {said}");
        assert!(
            said.starts_with(&format!("error: {expected}")) && said.lines().count() == 1,
            "{args:?}\n got: {said}\nwant: error: {expected}"
        );
    }
    // `notes` is a file here, and a package name: the name goes on (to
    // the key, which this home has none of).
    let output = in_home(&["remove", "notes"]);
    let said = stderr(&output);
    assert!(said.starts_with("error: no distribution key"), "{said}");
}

#[test]
fn bad_names_and_versions_are_refused_before_connecting() {
    let home = scratch("names");
    // The example inventory's hosts are documentation addresses: nothing
    // may be reached, and nothing is tried.
    let inventory = repo("inventory.example.yaml");
    let unwritable = home.join("no-such-dir/report.json");
    let cases: [(&[&str], &str); 6] = [
        (&["rollback", "Hello"], "`Hello` is not a package name"),
        (&["remove", "../etc"], "`../etc` is not a package name"),
        (&["status", "a b"], "`a b` is not a package name"),
        (
            &["rollback", "hello", "--to", "../1"],
            "--to: version `../1`",
        ),
        (&["rollback", "hello", "--to", ""], "--to: version is empty"),
        (
            &["status", "--report", unwritable.to_str().unwrap()],
            "cannot write the report to",
        ),
    ];
    for (args, expected) in cases {
        let mut all = args.to_vec();
        all.extend(["-i", &inventory, "--connect-timeout", "1"]);
        let output = swpush(&home, &all);
        let said = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {said}");
        assert!(
            said.starts_with(&format!("error: {expected}")) && said.lines().count() == 1,
            "{args:?}: {said}"
        );
    }
}

#[test]
fn pack_prints_the_package_and_is_byte_identical_when_repeated() {
    let home = scratch("pack");
    let source = home.join("hello");
    let copied = Command::new("cp")
        .arg("-a")
        .arg(repo("packages/hello"))
        .arg(&source)
        .status()
        .unwrap();
    assert!(copied.success());
    let first = home.join("one.tar.zst");
    let output = swpush(
        &home,
        &[
            "pack",
            source.to_str().unwrap(),
            "-o",
            first.to_str().unwrap(),
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    for expected in [
        first.display().to_string(),
        "name     hello".into(),
        "version  1.0.0".into(),
        "sha256   ".into(),
        "size     ".into(),
    ] {
        assert!(text.contains(&expected), "{expected} in\n{text}");
    }
    let touched = Command::new("touch")
        .arg("-d")
        .arg("2020-02-02")
        .arg(source.join("bin/hello"))
        .status()
        .unwrap();
    assert!(touched.success());
    let second = home.join("two.tar.zst");
    assert!(
        swpush(
            &home,
            &[
                "pack",
                source.to_str().unwrap(),
                "-o",
                second.to_str().unwrap()
            ]
        )
        .status
        .success()
    );
    assert_eq!(
        std::fs::read(&first).unwrap(),
        std::fs::read(&second).unwrap()
    );

    // Without -o: NAME-VERSION.tar.gz in the current folder, readable by GNU tar.
    let output = Swpush::new("pack").arg(&source).current_dir(&home).run();
    assert!(output.status.success(), "{}", stderr(&output));
    let listing = Command::new("tar")
        .arg("-tzf")
        .arg(home.join("hello-1.0.0.tar.gz"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&listing.stdout).contains("hooks/post.sh"));
}

#[test]
fn keygen_creates_a_private_key_and_never_overwrites_it() {
    use std::os::unix::fs::PermissionsExt;
    let home = scratch("keygen");
    let output = swpush(&home, &["keygen"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let key = home.join(".config/swpush/distribution_key");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(key.parent().unwrap()), 0o700);
    let public = std::fs::read_to_string(home.join(".config/swpush/distribution_key.pub")).unwrap();
    let text = stdout(&output);
    let line = text.lines().last().unwrap();
    assert!(
        line.starts_with("* namespaces=\"swpush\" ssh-ed25519 AAAA"),
        "{text}"
    );
    assert!(line.contains(public.split_whitespace().nth(1).unwrap()));

    // OpenSSH reads the key and agrees on its public half.
    let derived = Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(&key)
        .output()
        .unwrap();
    assert!(derived.status.success());
    assert_eq!(
        String::from_utf8_lossy(&derived.stdout)
            .split_whitespace()
            .nth(1),
        public.split_whitespace().nth(1)
    );

    let before = std::fs::read(&key).unwrap();
    let again = swpush(&home, &["keygen"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("already exists; swpush never overwrites"),
        "{}",
        stderr(&again)
    );
    assert_eq!(std::fs::read(&key).unwrap(), before);

    let custom = home.join("keys/ci");
    assert!(
        swpush(&home, &["keygen", "-o", custom.to_str().unwrap()])
            .status
            .success()
    );
    assert!(custom.exists() && home.join("keys/ci.pub").exists());
}

#[test]
fn a_reader_that_goes_away_is_not_a_panic() {
    // `swpush hosts | head -1`: the pipe's reader is gone before swpush
    // writes. Rust's default would be a panic on the broken pipe.
    let home = scratch("pipe");
    let inventory = repo("inventory.example.yaml");
    let mut child = Swpush::new("hosts")
        .json()
        .args(["-i", &inventory])
        .env("HOME", &home)
        .env_remove("SWPUSH_INVENTORY")
        .command()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run swpush");
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("wait for swpush");
    let err = stderr(&output);
    assert!(!err.contains("panicked"), "{err}");
    assert!(output.status.success(), "{err}");
}

/// `ConnectTimeout` from `~/.ssh/config` bounds a host end to end (a socket
/// that accepts and never speaks); `--connect-timeout` on the command line
/// beats it, as `ssh -o ConnectTimeout=` beats the file.
#[test]
fn connect_timeout_from_ssh_config_bounds_the_host_unless_the_command_line_says() {
    let home = scratch("connect-timeout");
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(
        home.join(".ssh/config"),
        format!("Host silent\n  HostName 127.0.0.1\n  Port {port}\n  ConnectTimeout 1\n"),
    )
    .unwrap();
    for (more, said) in [
        (&[][..], "timed out after 1s"),
        (&["--connect-timeout", "2"][..], "timed out after 2s"),
    ] {
        let mut args = vec!["status", "-i", "silent,"];
        args.extend_from_slice(more);
        let output = swpush(&home, &args);
        let text = stdout(&output);
        assert_eq!(output.status.code(), Some(2), "{text}{}", stderr(&output));
        assert!(text.contains(said), "{more:?}: {text}");
    }
    drop(silent);
}

/// The connect timeout covers the whole way to a host: a jump host that
/// accepts and never speaks ends the host `unreachable` within it.
#[test]
fn a_silent_jump_host_is_bounded_by_the_connect_timeout() {
    let home = scratch("silent-jump");
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(
        home.join(".ssh/config"),
        format!("Host behind\n  ProxyJump root@127.0.0.1:{port}\n"),
    )
    .unwrap();
    let output = swpush(
        &home,
        &["status", "-i", "behind,", "--connect-timeout", "1"],
    );
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(2), "{text}{}", stderr(&output));
    assert!(
        text.contains("unreachable") && text.contains("timed out after 1s"),
        "{text}"
    );
    drop(silent);
}

/// A run refused before any host is tried (here: its inventory is
/// missing, its package broken) still rewrites `--report FILE`, saying
/// why, so that monitoring never reads the previous run as current.
#[test]
fn a_refused_run_rewrites_its_report_file_saying_why() {
    let home = scratch("refused-report");
    let report = home.join("upgrade.json");
    let missing = home.join("missing.yaml");
    let not_a_package = home.join("notes.tar.gz");
    std::fs::write(&not_a_package, "not a package\n").unwrap();
    let inventory = home.join("hosts.yaml");
    std::fs::write(
        &inventory,
        "hosts:\n  web1: {address: 127.0.0.1, port: 1}\n",
    )
    .unwrap();
    let cases = [
        (
            missing.display().to_string(),
            repo("packages/hello"),
            "missing.yaml",
        ),
        (
            inventory.display().to_string(),
            not_a_package.display().to_string(),
            "notes.tar.gz",
        ),
        // Refused by the argument parser itself: an option out of range.
        (
            inventory.display().to_string(),
            repo("packages/hello"),
            "--forks",
        ),
    ];
    for (inventory, package, named) in cases {
        std::fs::write(&report, "{\"op\": \"upgrade\", \"previous\": \"run\"}\n").unwrap();
        let forks = if named == "--forks" { "0" } else { "5" };
        let report_arg = format!("--report={}", report.display());
        let args = [
            "upgrade",
            "-i",
            &inventory,
            "--forks",
            forks,
            &report_arg,
            &package,
        ];
        let output = swpush(&home, &args);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{args:?}: {}",
            stderr(&output)
        );
        let written: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&report).unwrap()).expect("JSON");
        assert_eq!(written["op"], "upgrade", "{written:#}");
        assert_eq!(written["hosts"], serde_json::json!([]), "{written:#}");
        assert_eq!(written["summary"], serde_json::json!({}), "{written:#}");
        assert!(written.get("previous").is_none(), "{written:#}");
        let refused = written["refused"].as_str().unwrap_or_default();
        assert!(refused.contains(named), "{written:#}");
        assert!(
            stderr(&output).contains(refused),
            "the same words as stderr: {refused}"
        );
    }
}

/// `swpush status` on 50 loopback addresses where nothing listens, its
/// open-file limits set to `soft`:`hard` before it starts.
fn status_with_file_limits(home: &Path, soft: u64, hard: u64) -> Output {
    let hosts: Vec<String> = (1..=50).map(|i| format!("root@127.0.9.{i}:9")).collect();
    let mut command = tester(home, "status")
        .args(["--forks", "50", "-i", &format!("{},", hosts.join(","))])
        .command();
    let limit = libc::rlimit {
        rlim_cur: soft as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    // SAFETY: setrlimit is async-signal-safe; it only lowers this child's limits.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, move || {
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    command.output().unwrap()
}

#[test]
fn too_few_open_files_for_the_forks_is_refused_before_any_host_and_a_low_soft_limit_is_raised() {
    let home = scratch("open-files");
    let refused = status_with_file_limits(&home, 100, 100);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        stderr(&refused),
        "error: 50 hosts in flight (--forks) need about 364 open files, but this process may \
         open at most 100 (its hard limit, `ulimit -Hn`): raise that limit or pass --forks 6 or fewer\n"
    );
    assert!(stdout(&refused).is_empty());

    // The hard limit allows it: the soft one is raised and every host is tried.
    let raised = status_with_file_limits(&home, 100, 4096);
    assert!(
        !stderr(&raised).contains("open files"),
        "{}",
        stderr(&raised)
    );
    let out = stdout(&raised);
    assert!(out.contains("127.0.9.50"), "{out}");
}
