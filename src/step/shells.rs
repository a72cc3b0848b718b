//! The shells a client runs the remote scripts with, for the unit tests
//! that run the scripts' functions without sshd: dash with the system's
//! awk, and busybox ash with busybox's own awk (the two awks differ the
//! most). Also the check that a script runs nothing before its last line.

use std::io::Write;
use std::process::{Command, Stdio};

/// One client shell.
pub struct Shell {
    /// For messages.
    pub name: &'static str,
    argv: &'static [&'static str],
    /// Defined before the script: what makes the shell's own tools the ones
    /// used (a function is found before anything on PATH).
    prelude: &'static str,
}

pub const SHELLS: [Shell; 2] = [
    Shell {
        name: "dash",
        argv: &["dash"],
        prelude: "",
    },
    Shell {
        name: "busybox sh",
        argv: &["busybox", "sh"],
        prelude: "awk() { busybox awk \"$@\"; }\n",
    },
];

/// How a script run ended.
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Shell {
    /// Runs `SHELL FLAGS -c SCRIPT swpush-test ARGS` with `stdin`.
    pub fn run(&self, flags: &[&str], script: &str, args: &[&str], stdin: &str) -> Ran {
        let mut child = Command::new(self.argv[0])
            .args(&self.argv[1..])
            .args(flags)
            .arg("-c")
            .arg(format!("{}{script}", self.prelude))
            .arg("swpush-test")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.name));
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.as_bytes()).unwrap();
        drop(input);
        let output = child.wait_with_output().unwrap();
        Ran {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// What is wrong with `script` as a remote script: its last line must be
/// `main "$@"`, and everything before it may define functions (`main`
/// among them) and nothing else. That is checked by running it without
/// its last line under each shell with `-x`, which traces every command
/// run, an assignment or what a command substitution runs too, but no
/// function definition: the trace must be empty.
pub fn runs_before_main(script: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let body = script.trim_end_matches('\n');
    let (body, last) = body.rsplit_once('\n').unwrap_or(("", body));
    if last != "main \"$@\"" {
        problems.push(format!("the last line is `{last}`, not `main \"$@\"`"));
    }
    if !body.lines().any(|line| line.starts_with("main() {")) {
        problems.push("no main() is defined".into());
    }
    for shell in &SHELLS {
        let ran = shell.run(&["-x"], body, &[], "");
        if ran.code != Some(0) || !ran.stdout.is_empty() || !ran.stderr.is_empty() {
            let said: Vec<&str> = ran.stderr.lines().chain(ran.stdout.lines()).collect();
            problems.push(format!(
                "under {}, before main (exit {:?}): {}",
                shell.name,
                ran.code,
                said.join(" | ")
            ));
        }
    }
    problems
}

#[test]
fn the_check_of_what_runs_before_main_can_fail() {
    let script = "f() {\n    :\n}\nx=$(echo y)\ntrap f EXIT\nf\n";
    let problems = runs_before_main(script);
    assert_eq!(problems.len(), 4, "{problems:#?}");
    assert_eq!(problems[0], "the last line is `f`, not `main \"$@\"`");
    assert_eq!(problems[1], "no main() is defined");
    for (problem, shell) in problems[2..].iter().zip(["dash", "busybox sh"]) {
        assert!(
            problem.starts_with(&format!("under {shell}, before main"))
                && problem.contains("echo y")
                && problem.contains("x=y")
                && problem.contains("trap f EXIT"),
            "{problem}"
        );
    }
    assert_eq!(
        runs_before_main("f() {\n    :\n}\nmain() {\n    f\n}\nmain \"$@\"\n"),
        Vec::<String>::new()
    );
}
