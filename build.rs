//! Records the git revision swpush is built from, for `--version`:
//! `git rev-parse --short HEAD`, with `-dirty` when the work tree has
//! changes, or `unknown` where there is no git or no repository (a
//! tarball, a crate download).

use std::path::Path;
use std::process::Command;

fn main() {
    // Only this package's own repository counts: a tarball unpacked inside
    // some other checkout must not take that checkout's revision.
    let own = git(&["rev-parse", "--show-toplevel"])
        .and_then(|top| std::fs::canonicalize(top).ok())
        .is_some_and(|top| std::fs::canonicalize(manifest_dir()).is_ok_and(|dir| dir == top));
    if !own {
        println!("cargo:rustc-env=SWPUSH_GIT_REVISION=unknown");
        println!("cargo:rerun-if-changed=build.rs");
        return;
    }
    let revision = git(&["rev-parse", "--short", "HEAD"]).map(|rev| {
        let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
            .is_some_and(|status| !status.is_empty());
        if dirty { format!("{rev}-dirty") } else { rev }
    });
    println!(
        "cargo:rustc-env=SWPUSH_GIT_REVISION={}",
        revision.as_deref().unwrap_or("unknown")
    );
    // Rebuild when HEAD moves or the branch it names gets a new commit.
    // In a worktree `.git` is a file; ask git where the real files are.
    if let Some(head) = git(&["rev-parse", "--git-path", "HEAD"]) {
        println!("cargo:rerun-if-changed={head}");
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"])
        && let Some(reference) = git(&["rev-parse", "--git-path", &branch])
        && Path::new(&reference).exists()
    {
        println!("cargo:rerun-if-changed={reference}");
    }
    if let Some(index) = git(&["rev-parse", "--git-path", "index"])
        && Path::new(&index).exists()
    {
        println!("cargo:rerun-if-changed={index}");
    }
    if let Some(packed) = git(&["rev-parse", "--git-path", "packed-refs"])
        && Path::new(&packed).exists()
    {
        println!("cargo:rerun-if-changed={packed}");
    }
    // An edit makes the tree dirty without touching git's files.
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=build.rs");
}

fn manifest_dir() -> String {
    std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into())
}

/// `git ARGS` run in the package's folder: its trimmed stdout, or `None`
/// when git is missing or fails (no repository).
fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(manifest_dir())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    Some(text.trim().to_owned())
}
