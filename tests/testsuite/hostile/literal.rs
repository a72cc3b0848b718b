//! What the client must take literally: a hook's or a record's backslashes
//! in the completion line and in `status`, names beyond ASCII on GNU and
//! busybox clients, and tar options in the login environment.

use super::*;

// --- hook output in the completion line ---------------------------------------

/// What failing post_install hooks print, each a package of its own: dash's
/// `echo` turned `\c` into "stop here" and `\n` into a new line, so the
/// message was lost and a hook could print a second completion line.
const HOOK_OUTPUTS: [(&str, &str); 2] = [
    ("backslash", r"C:\config\new"),
    ("forged", r"x\nswpush done installed - 9.9 forged"),
];

fn failing_hook_package(world: &World, case: &str, says: &str) -> PathBuf {
    world.variant(&format!("echo-{case}.tar.gz"), |dir| {
        append(
            dir,
            "hooks/post.sh",
            &format!("printf '%s\\n' '{says}'\nexit 1\n"),
        )
    })
}

/// Under dash (the real controller pushing): the report says `failed`,
/// with the hook's words, backslashes and all.
#[test]
fn hook_output_reaches_the_report_literally_under_dash() {
    let world = world();
    let host = "echo-gnu";
    let inventory = one_host_inventory(world, host, &world.fleet.host(host).addr.to_string());
    for (case, says) in HOOK_OUTPUTS {
        let package = failing_hook_package(world, case, says);
        let (code, report) = world.push("install", &inventory, &package, &[]);
        let (status, message) = status_of(&report, host);
        assert_eq!(code, 2, "{case}: {report:#}");
        assert_eq!(status, "failed", "{case}: {report:#}");
        assert!(
            message.ends_with(&format!("post_install failed, removed again: {says}")),
            "{case}: {message:?}"
        );
    }
}

/// Installs the package at `path` (its manifest's hooks signed in the
/// order) on `host` under busybox ash with busybox's tools, driving the
/// step by hand; returns the completion line (after `swpush done `).
fn install_under_busybox(world: &World, host: &str, path: &Path) -> String {
    install_by_hand(world, host, path, &step_command(world, host, true))
}

/// Installs the package at `path` on `host` with the step `command`,
/// driving it by hand; returns the completion line.
fn install_by_hand(world: &World, host: &str, path: &Path, command: &str) -> String {
    let mut answer = |challenge: &str| {
        world.framed_order(
            Change::Install,
            Ordered::Package(path),
            host,
            challenge,
            |order| {
                order.issued = "2026-12-02T00:00:00Z".into();
            },
        )
    };
    let bytes = std::fs::read(path).unwrap();
    let (done, _) = step::drive(world, host, command, &mut answer, step::bytes(bytes));
    done
}

/// Under busybox ash with busybox's tools (the step driven by hand): one
/// completion line, `failed`, with the hook's words as they were.
#[test]
fn hook_output_reaches_the_completion_line_literally_under_busybox() {
    let world = world();
    for (case, says) in HOOK_OUTPUTS {
        let path = failing_hook_package(world, case, says);
        let done = install_under_busybox(world, "echo-bb", &path);
        assert_eq!(
            done.trim_end(),
            format!("failed - - post_install failed, removed again: {says}"),
            "{case}"
        );
    }
}

// --- names beyond ASCII --------------------------------------------------------

/// hello with UTF-8 names: a folder, a file in it and a symlink to it.
fn utf8_package(world: &World) -> PathBuf {
    world.variant("hello-utf8.tar.gz", |dir| {
        std::fs::create_dir(dir.join("données")).unwrap();
        std::fs::write(dir.join("données/café.txt"), "crème\n").unwrap();
        std::os::unix::fs::symlink("données/café.txt", dir.join("lien→café")).unwrap();
    })
}

fn assert_utf8_release(world: &World, host: &str) {
    let release = world
        .fleet
        .host(host)
        .path("/opt/swpush/hello/releases/1.0.0");
    assert_eq!(
        std::fs::read_to_string(release.join("données/café.txt")).unwrap(),
        "crème\n",
        "{host}"
    );
    assert_eq!(
        std::fs::read_link(release.join("lien→café")).unwrap(),
        Path::new("données/café.txt"),
        "{host}"
    );
    assert_hello_runs(world, host, "1.0.0");
}

/// GNU tar lists UTF-8 names with octal escapes under LC_ALL=C, which the
/// client's check used to refuse as backslashes: `pack` and the controller
/// accepted a package every GNU-tar client then refused.
#[test]
fn utf8_names_install_with_gnu_tar() {
    let world = world();
    let host = "utf8-gnu";
    let package = utf8_package(world);
    let inventory = one_host_inventory(world, host, &world.fleet.host(host).addr.to_string());
    let (code, report) = world.push("install", &inventory, &package, &[]);
    assert_eq!(status_of(&report, host).0, "installed", "{report:#}");
    assert_eq!(code, 0);
    assert_utf8_release(world, host);
}

#[test]
fn utf8_names_install_with_busybox() {
    let world = world();
    let host = "utf8-bb";
    let done = install_under_busybox(world, host, &utf8_package(world));
    assert!(done.starts_with("installed - 1.0.0"), "{done}");
    assert_utf8_release(world, host);
}

/// `swpush status` reads the client's records with a small script of its
/// own: a record with backslashes in it (a hostile or damaged client) comes
/// back as written, not cut short by dash's `echo` at its `\c`.
#[test]
fn status_reads_records_with_backslashes_literally() {
    let world = world();
    let host = "echo-status";
    let h = world.fleet.host(host);
    let since = r"2026-12-02\cT00:00:00Z\n";
    std::fs::create_dir_all(h.path("/var/lib/swpush/packages")).unwrap();
    std::fs::write(
        h.path("/var/lib/swpush/packages/hello"),
        format!("version 1.0.0\nsha256 {}\nsince {since}\n", "a".repeat(64)),
    )
    .unwrap();
    let inventory = one_host_inventory(world, host, &h.addr.to_string());
    let (code, report) = world.push("status", &inventory, Path::new("hello"), &[]);
    assert_eq!(code, 0, "{report:#}");
    let packages = &report.host(host)["packages"];
    assert_eq!(packages[0]["version"], "1.0.0", "{report:#}");
    assert_eq!(packages[0]["since"], since, "{report:#}");
}

/// GNU tar reads options from TAR_OPTIONS: a login environment with, say,
/// a `--transform` would make it write other names than it listed for the
/// check. The step clears it.
#[test]
fn tar_options_in_the_login_environment_change_nothing() {
    let world = world();
    let host = "taropts";
    let command = format!(
        "TAR_OPTIONS=--transform=s,bin/hello,bin/renamed, {}",
        world.step_command(host)
    );
    let done = install_by_hand(world, host, &world.hello, &command);
    assert!(done.starts_with("installed - 1.0.0"), "{done}");
    let release = world
        .fleet
        .host(host)
        .path("/opt/swpush/hello/releases/1.0.0");
    assert!(!release.join("bin/renamed").exists());
    assert_hello_runs(world, host, "1.0.0");
}
