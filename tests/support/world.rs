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

use crate::support::{Fleet, SSH_PORT};

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

    /// Like [`World::start`], with every host trusting the key for every package.
    pub fn start_trusted(hosts: &[&str]) -> World {
        let world = World::start(hosts);
        for host in hosts {
            world.trust_all(host);
        }
        world
    }

    /// An inventory of fleet hosts `hosts` at `ADDRESS` (by name), plus
    /// `extra` YAML after the host entries; the file is named after `tag`.
    pub fn inventory(&self, tag: &str, hosts: &[(&str, String)], extra: &str) -> PathBuf {
        let mut yaml = format!(
            "defaults:\n  user: root\n  port: {SSH_PORT}\n  identity_file: \"{}\"\nhosts:\n",
            self.fleet.login_key().display()
        );
        for (name, address) in hosts {
            yaml += &format!("  {name}: {{address: {address}}}\n");
        }
        yaml += extra;
        let path = self.fleet.dir().join(format!("inventory-{tag}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        path
    }

    /// An inventory of fleet hosts by name (at their fleet addresses).
    pub fn fleet_inventory(&self, tag: &str, hosts: &[&str], extra: &str) -> PathBuf {
        let hosts: Vec<(&str, String)> = hosts
            .iter()
            .map(|name| (*name, self.fleet.host(name).addr.to_string()))
            .collect();
        self.inventory(tag, &hosts, extra)
    }

    /// The command the controller would run on `host` to install hello.
    pub fn step_command(&self, host: &str) -> String {
        let inventory = swpush::inventory::load(
            &self.fleet_inventory(&format!("step-{host}"), &[host], ""),
            &swpush::inventory::LoadContext {
                home: Some(self.fleet.home().to_owned()),
                local_user: "root".into(),
            },
        )
        .unwrap();
        let request = swpush::step::StepRequest {
            op: swpush::order::Op::Install,
            package: swpush::package::read(&self.hello).unwrap(),
            force: false,
            allow_downgrade: false,
            install_missing: false,
            key: swpush::key::load(&self.key).unwrap(),
            busy_wait: 1,
            busy_retries: 0,
        };
        swpush::step::remote_command(&inventory.hosts[0], &request)
    }

    /// `swpush OP --inventory INV --key KEY --format json MORE PACKAGE`, with
    /// `--connect-timeout 5` unless `more` sets it; ready to run or spawn.
    pub fn push_command(
        &self,
        op: &str,
        inventory: &Path,
        package: &Path,
        more: &[&str],
    ) -> Command {
        let mut args = vec![
            op,
            "--inventory",
            inventory.to_str().unwrap(),
            "--key",
            self.key.to_str().unwrap(),
            "--format",
            "json",
        ];
        if !more.contains(&"--connect-timeout") {
            args.extend_from_slice(&["--connect-timeout", "5"]);
        }
        args.extend_from_slice(more);
        args.push(package.to_str().unwrap());
        swpush_command(&self.fleet, &args)
    }

    /// Runs [`World::push_command`]; returns the exit code and the JSON report.
    pub fn push(&self, op: &str, inventory: &Path, package: &Path, more: &[&str]) -> (i32, Value) {
        let output = self
            .push_command(op, inventory, package, more)
            .output()
            .expect("run swpush");
        parse_report(&output)
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

/// The exit code and JSON report of a finished run.
pub fn parse_report(output: &Output) -> (i32, Value) {
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}): {}\n{}",
            text(&output.stdout),
            text(&output.stderr)
        )
    });
    (output.status.code().unwrap_or(-1), report)
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
