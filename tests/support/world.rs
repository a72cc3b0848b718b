//! What the end-to-end test files share on top of the fleet: a controller
//! with its distribution key and the example package, the `swpush` binary
//! run as an operator would (private HOME, no agent), and reading the JSON
//! report. Included by those files with
//! `#[path = "support/world.rs"] mod world;` (not from `support/mod.rs`,
//! which `examples/fleet.rs` also uses, where the test binary's path is
//! unknown).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::Fleet;

pub struct World {
    pub fleet: Fleet,
    pub key: PathBuf,
    /// `* namespaces="swpush" ssh-ed25519 ...` for the distribution key.
    pub trust_line: String,
    pub hello: PathBuf,
}

impl World {
    /// Starts the fleet, creates a distribution key and packs `packages/hello`.
    pub fn start(hosts: &[&str]) -> World {
        let fleet = Fleet::start_named(hosts);
        let key = fleet.dir().join("distribution_key");
        let made = swpush(&fleet, &["keygen", "-o", key.to_str().unwrap()]);
        assert!(made.status.success(), "{}", text(&made.stderr));
        let trust_line = text(&made.stdout).lines().last().unwrap().to_owned();
        let hello = fleet.dir().join("hello-1.0.0.tar.gz");
        let packed = swpush(
            &fleet,
            &[
                "pack",
                &repo("packages/hello"),
                "-o",
                hello.to_str().unwrap(),
            ],
        );
        assert!(packed.status.success(), "{}", text(&packed.stderr));
        World {
            fleet,
            key,
            trust_line,
            hello,
        }
    }

    /// Makes `host` trust this controller's key for every package.
    pub fn trust_all(&self, host: &str) {
        let path = self.fleet.host(host).path("/etc/swpush/known_servers");
        std::fs::write(path, format!("{}\n", self.trust_line)).unwrap();
    }
}

/// A path in this repository.
pub fn repo(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(path)
        .display()
        .to_string()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `swpush ARGS` with the fleet's controller HOME and nothing inherited.
pub fn swpush_command(fleet: &Fleet, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_swpush"));
    command
        .args(args)
        .env("HOME", fleet.home())
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("SWPUSH_INVENTORY")
        .env_remove("SWPUSH_KEY");
    command
}

pub fn swpush(fleet: &Fleet, args: &[&str]) -> Output {
    swpush_command(fleet, args).output().expect("run swpush")
}

pub fn is_empty_dir(path: &Path) -> bool {
    std::fs::read_dir(path).map_or(true, |mut d| d.next().is_none())
}

/// Where the symlink `inside` of `host` points, as the host sees it.
pub fn read_link(world: &World, host: &str, inside: &str) -> String {
    std::fs::read_link(world.fleet.host(host).path(inside))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// The report's entry for `host`.
pub fn host_entry<'a>(report: &'a Value, host: &str) -> &'a Value {
    report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == host)
        .unwrap_or_else(|| panic!("{host} not in {report:#}"))
}

/// (status, message) of `host` in the report.
pub fn status_of(report: &Value, host: &str) -> (String, String) {
    let entry = host_entry(report, host);
    (
        entry["status"].as_str().unwrap().to_owned(),
        entry["message"].as_str().unwrap().to_owned(),
    )
}
