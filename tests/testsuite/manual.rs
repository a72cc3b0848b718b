//! `swpush --version`, `swpush completions SHELL` and `swpush man`, run as
//! an operator would: the version names the git revision the binary was
//! built from, the completion scripts parse in their shells, and the man
//! page renders and documents every subcommand.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::support::swpush::{Ran, Swpush};

fn swpush(args: &[&str]) -> Ran {
    Swpush::new(args[0]).args(&args[1..]).run()
}

fn stdout_of(args: &[&str]) -> String {
    let out = swpush(args);
    assert!(
        out.status.success(),
        "swpush {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.0.stdout).expect("UTF-8 output")
}

/// Feeds `script` to `shell ARGS` on stdin; its output.
fn run_shell(shell: &str, args: &[&str], script: &str) -> Output {
    let mut child = Command::new(shell)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {shell}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn installed(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

const SUBCOMMANDS: &[&str] = &[
    "install",
    "upgrade",
    "rollback",
    "remove",
    "status",
    "pack",
    "keygen",
    "enroll",
    "hosts",
    "completions",
    "man",
];

#[test]
fn version_names_the_git_revision_it_was_built_from() {
    let version = stdout_of(&["--version"]);
    let repo = env!("CARGO_MANIFEST_DIR");
    let git = Command::new("git")
        .args(["-C", repo, "rev-parse", "--short", "HEAD"])
        .output();
    let expected = match git {
        Ok(out) if out.status.success() => String::from_utf8(out.stdout).unwrap(),
        _ => "unknown".to_owned(),
    };
    let expected = expected.trim();
    assert!(
        version.starts_with(&format!("swpush {} ({expected}", env!("CARGO_PKG_VERSION"))),
        "--version printed {version:?}, git says {expected}"
    );
}

#[test]
fn bash_completion_parses_and_completes_subcommands() {
    let script = stdout_of(&["completions", "bash"]);
    let checked = run_shell("bash", &["-n"], &script);
    assert!(
        checked.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&checked.stderr)
    );
    // Load it and ask bash what `swpush ins<TAB>` and `swpush install --for<TAB>` complete to.
    let probe = format!(
        "{script}\n\
         COMP_WORDS=(swpush ins); COMP_CWORD=1; _swpush swpush ins swpush; echo \"${{COMPREPLY[*]}}\"\n\
         COMP_WORDS=(swpush install --for); COMP_CWORD=2; _swpush swpush --for install; echo \"${{COMPREPLY[*]}}\"\n"
    );
    let out = run_shell("bash", &[], &probe);
    let said = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = said.lines().collect();
    assert_eq!(lines.first().copied(), Some("install"), "{said}");
    assert!(
        lines.get(1).is_some_and(|l| l.contains("--forks")),
        "{said}"
    );
}

#[test]
fn zsh_and_fish_completions_parse_where_those_shells_are_installed() {
    for (shell, check) in [("zsh", vec!["-n"]), ("fish", vec!["--no-execute"])] {
        let script = stdout_of(&["completions", shell]);
        assert!(script.contains("swpush"), "{shell}: {script}");
        if !installed(shell) {
            eprintln!("{shell} not installed: only generated");
            continue;
        }
        let out = run_shell(shell, &check, &script);
        assert!(
            out.status.success(),
            "{shell} {check:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn an_unknown_shell_is_refused() {
    let out = swpush(&["completions", "powershell"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("powershell"));
}

#[test]
fn the_man_page_renders_and_documents_every_subcommand() {
    let roff = stdout_of(&["man"]);
    assert!(
        roff.starts_with(".ie") || roff.contains(".TH swpush 1"),
        "{roff}"
    );
    for name in SUBCOMMANDS {
        assert!(
            roff.contains(&format!(".SH \"SWPUSH {}\"", name.to_uppercase())),
            "no section for {name}"
        );
    }
    assert!(roff.contains("\\-\\-ask\\-become\\-pass") || roff.contains("\\-\\-become"));
    if !installed("man") {
        eprintln!("man not installed: roff checked only");
        return;
    }
    let out = Command::new("man")
        .args(["-l", "-"])
        .env("MANWIDTH", "100")
        .env("MAN_KEEP_FORMATTING", "")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().unwrap().write_all(roff.as_bytes())?;
            child.wait_with_output()
        })
        .expect("run man -l");
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in SUBCOMMANDS {
        assert!(
            page.contains(&format!("SWPUSH {}", name.to_uppercase())),
            "rendered page lacks {name}:\n{page}"
        );
    }
    assert!(page.contains("--private-key"), "{page}");
}

/// build.rs, compiled on its own and run as cargo runs it: in this
/// checkout it names HEAD; in a folder that is no repository of its own
/// (a tarball unpacked anywhere, even inside another checkout) it says
/// `unknown` rather than another repository's revision.
#[test]
fn the_build_script_says_unknown_outside_its_own_repository() {
    let repo = env!("CARGO_MANIFEST_DIR");
    let dir = std::env::temp_dir().join(format!("swpush-buildrs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("build-script");
    let compiled = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .args(["--edition", "2024", "-o"])
        .arg(&script)
        .arg(format!("{repo}/build.rs"))
        .output()
        .expect("run rustc");
    assert!(
        compiled.status.success(),
        "{}",
        String::from_utf8_lossy(&compiled.stderr)
    );
    let revision_in = |manifest_dir: &std::path::Path| {
        let out = Command::new(&script)
            .env("CARGO_MANIFEST_DIR", manifest_dir)
            .output()
            .expect("run the build script");
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("cargo:rustc-env=SWPUSH_GIT_REVISION="))
            .map(str::to_owned)
            .expect("no SWPUSH_GIT_REVISION line")
    };
    let unpacked = dir.join("swpush-0.1.0");
    std::fs::create_dir_all(&unpacked).unwrap();
    assert_eq!(revision_in(&unpacked), "unknown");
    // Inside this checkout's own tree, but not its top: still not ours.
    let nested = std::path::Path::new(repo).join("target/buildrs-probe");
    std::fs::create_dir_all(&nested).unwrap();
    let nested_revision = revision_in(&nested);
    let _ = std::fs::remove_dir(&nested);
    assert_eq!(nested_revision, "unknown");
    let head = Command::new("git")
        .args(["-C", repo, "rev-parse", "--short", "HEAD"])
        .output();
    if let Ok(head) = head
        && head.status.success()
    {
        let head = String::from_utf8_lossy(&head.stdout).trim().to_owned();
        let here = revision_in(std::path::Path::new(repo));
        assert!(
            here == head || here == format!("{head}-dirty"),
            "{here} vs {head}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
