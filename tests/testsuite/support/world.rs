//! A controller around a fleet, as the test modules share it: its
//! distribution key and the example package packed, inventories, signed
//! orders and the step's command line as the controller would make them,
//! `swpush` run as this controller's operator ([`World::swpush`],
//! [`World::push`]), and checks of what a host was left with.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use swpush::order::{Challenge, Change, Order, SignedOrder};

pub use crate::support::report::Report;
pub use crate::support::swpush::{Ran, Swpush};
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
        World::around(Fleet::start_named(hosts))
    }

    /// Like [`World::start`], with the hosts in a site only `reachable`
    /// ones can be reached from here (see [`Fleet::start_site`]).
    pub fn start_site(hosts: &[&str], reachable: &[&str], extra: &[(&str, &str)]) -> World {
        World::around(Fleet::start_site(hosts, reachable, extra))
    }

    /// Like [`World::start_trusted`], with `extra` sshd_config lines for
    /// the named hosts (see [`Fleet::start_configured`]).
    pub fn start_configured(hosts: &[&str], extra: &[(&str, &str)]) -> World {
        let world = World::around(Fleet::start_configured(hosts, extra));
        for host in hosts {
            world.trust_all(host);
        }
        world
    }

    /// The distribution key and the packed example package, for `fleet`.
    fn around(fleet: Fleet) -> World {
        let key = fleet.dir().join("distribution_key");
        let made = fleet.swpush("keygen").arg("-o").arg(&key).run();
        let trust_line = made.success().lines().last().unwrap().to_owned();
        let hello = fleet.dir().join("hello-1.0.0.tar.gz");
        fleet
            .swpush("pack")
            .arg(repo("packages/hello"))
            .arg("-o")
            .arg(&hello)
            .run()
            .success();
        World {
            fleet,
            key,
            trust_line,
            hello,
        }
    }

    /// `swpush OP` as this world's operator runs it (see [`Swpush::operator`]).
    pub fn swpush(&self, op: &str) -> Swpush {
        self.fleet.swpush(op)
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
            op: swpush::order::Change::Install,
            subject: swpush::step::Subject::Package(swpush::package::read(&self.hello).unwrap()),
            policy: Default::default(),
            dry_run: false,
            key: swpush::key::load(&self.key).unwrap(),
            busy_wait: 1,
            busy_retries: 0,
            mirror: Default::default(),
            timeout: std::time::Duration::from_secs(600),
        };
        swpush::step::remote_command(&inventory.hosts[0], &request)
    }

    /// `swpush OP --inventory INV --format json [--key KEY] MORE PACKAGE`,
    /// with `--connect-timeout 5` unless `more` sets it.
    pub fn push_run(&self, op: &str, inventory: &Path, package: &Path, more: &[&str]) -> Swpush {
        let mut run = self.swpush(op).inventory(inventory).json();
        // status reads and signs nothing: it takes no key.
        if op != "status" {
            run = run.key(&self.key);
        }
        if !more.contains(&"--connect-timeout") {
            run = run.args(["--connect-timeout", "5"]);
        }
        run.args(more).arg(package)
    }

    /// [`World::push_run`] as a command, to spawn.
    pub fn push_command(
        &self,
        op: &str,
        inventory: &Path,
        package: &Path,
        more: &[&str],
    ) -> Command {
        self.push_run(op, inventory, package, more).command()
    }

    /// Runs [`World::push_run`]; returns the exit code and the JSON report.
    pub fn push(&self, op: &str, inventory: &Path, package: &Path, more: &[&str]) -> (i32, Report) {
        self.push_run(op, inventory, package, more)
            .run()
            .code_and_report()
    }

    /// A copy of packages/hello, changed by `edit`, packed as `FILE` in the
    /// fleet dir (`.tar` for an uncompressed package).
    pub fn variant(&self, file: &str, edit: impl FnOnce(&Path)) -> PathBuf {
        // Parallel tests may ask for the same package at once.
        static PACKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one_at_a_time = PACKING.lock().unwrap_or_else(|e| e.into_inner());
        let dir = self.fleet.dir().join(format!("src-{file}"));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            Command::new("cp")
                .arg("-a")
                .arg(repo("packages/hello"))
                .arg(&dir)
                .status()
                .unwrap()
                .success()
        );
        edit(&dir);
        let out = self.fleet.dir().join(file);
        self.swpush("pack")
            .arg(&dir)
            .arg("-o")
            .arg(&out)
            .run()
            .success();
        out
    }

    /// packages/hello at `version` (`hello-VERSION.tar.gz`), packed once.
    pub fn hello_at(&self, version: &str) -> PathBuf {
        static PACKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one_at_a_time = PACKING.lock().unwrap_or_else(|e| e.into_inner());
        let file = format!("hello-{version}.tar.gz");
        let out = self.fleet.dir().join(&file);
        if !out.exists() {
            self.variant(&file, |dir| set_version(dir, version));
        }
        out
    }

    /// A login `user` on `host` whose shell is `script` (written to
    /// `/opt/hostile/USER.sh`): what the controller meets there is whatever
    /// that script does, not the step. The user is created once; a later
    /// call only replaces the script.
    pub fn hostile_login(&self, host: &str, user: &str, script: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = self
            .fleet
            .host(host)
            .path(&format!("/opt/hostile/{user}.sh"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        self.fleet.ssh_ok(
            host,
            &format!(
                "id {user} >/dev/null 2>&1 || \
                 useradd -M -d /opt/hostile -s /opt/hostile/{user}.sh -p '*' {user}"
            ),
        );
    }

    /// The order the controller would sign for `op` of `what` on `host`
    /// and `challenge` (no flags set), changed by `edit`, signed with this
    /// world's key: its text and signature.
    pub fn signed_order(
        &self,
        op: Change,
        what: Ordered,
        host: &str,
        challenge: &str,
        edit: impl FnOnce(&mut Order),
    ) -> (String, String) {
        let (package, version, sha256, size, unpacked_size, hooks) = match what {
            Ordered::Package(path) => {
                let package = swpush::package::read(path).unwrap();
                (
                    package.manifest.name.clone(),
                    package.manifest.version.to_string(),
                    package.sha256,
                    package.size,
                    package.unpacked_size,
                    package.manifest.hooks,
                )
            }
            Ordered::Archive(archive) => {
                use sha2::Digest;
                (
                    "hello".into(),
                    "1.0.0".into(),
                    hex::encode(sha2::Sha256::digest(archive)),
                    archive.len() as u64,
                    unpacked_bound(archive),
                    Default::default(),
                )
            }
        };
        let mut order = Order {
            op,
            package,
            version,
            sha256,
            size,
            unpacked_size,
            url: None,
            url_fallback: false,
            url_timeout: 30,
            policy: Default::default(),
            dry_run: false,
            host: host.into(),
            challenge: Challenge::parse(challenge).unwrap(),
            hooks,
            health: None,
            // Driven by hand: nobody confirms.
            confirm_timeout: 0,
            issued: "2026-11-25T00:00:00Z".into(),
        };
        edit(&mut order);
        let signed = order.sign(&swpush::key::load(&self.key).unwrap()).unwrap();
        (signed.text, signed.signature)
    }

    /// [`World::signed_order`], framed as the step reads it.
    pub fn framed_order(
        &self,
        op: Change,
        what: Ordered,
        host: &str,
        challenge: &str,
        edit: impl FnOnce(&mut Order),
    ) -> String {
        framed(self.signed_order(op, what, host, challenge, edit))
    }

    /// Makes `host` trust this controller's key for every package.
    /// Runs `ARGS...` inside `host`'s mount namespace; its stdout.
    pub fn in_host(&self, host: &str, args: &[&str]) -> String {
        let pid = self.fleet.host(host).sshd_pid().to_string();
        let out = Command::new("nsenter")
            .args(["-t", &pid, "-m", "--"])
            .args(args)
            .output()
            .expect("run nsenter");
        assert!(
            out.status.success(),
            "{host}: {args:?}: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    pub fn trust_all(&self, host: &str) {
        let path = self.fleet.host(host).path("/etc/swpush/known_servers");
        std::fs::write(path, format!("{}\n", self.trust_line)).unwrap();
    }
}

/// What an order is for: a package file, read as the controller reads it
/// (its name, version and hooks), or archive bytes that may never pass that
/// reader (hello 1.0.0, no hooks, at least [`unpacked_bound`] unpacked).
#[derive(Clone, Copy)]
pub enum Ordered<'a> {
    Package(&'a Path),
    Archive(&'a [u8]),
}

/// An order's text and signature as the step reads them.
pub fn framed((text, signature): (String, String)) -> String {
    SignedOrder { text, signature }.framed()
}

/// Sets the version in the manifest of the package source in `dir`.
pub fn set_version(dir: &Path, version: &str) {
    let manifest = std::fs::read_to_string(dir.join("swpush.yaml")).unwrap();
    std::fs::write(
        dir.join("swpush.yaml"),
        manifest.replace("version: 1.0.0", &format!("version: {version}")),
    )
    .unwrap();
}

/// Appends shell lines to a hook of the package source in `dir`.
pub fn append(dir: &Path, hook: &str, lines: &str) {
    let path = dir.join(hook);
    let mut script = std::fs::read_to_string(&path).unwrap();
    script += lines;
    std::fs::write(path, script).unwrap();
}

/// Path → kind, mode, owner, times and content; see [`snapshot`].
pub type Snapshot = std::collections::BTreeMap<String, Vec<u8>>;

/// Panics naming every path that differs between two snapshots.
pub fn assert_same(after: &Snapshot, before: &Snapshot) {
    let changed: Vec<&String> = before
        .keys()
        .chain(after.keys())
        .filter(|path| before.get(*path) != after.get(*path))
        .collect();
    assert!(changed.is_empty(), "changed on the client: {changed:?}");
}

/// Every file, folder and link under the client paths swpush uses on
/// `host` (`/etc/swpush`, `/opt`, `/var/lib/swpush`, `/var/cache/swpush`,
/// `/run/swpush`), with kind, mode, times and whole content: two equal
/// snapshots mean nothing there changed, byte for byte.
pub fn snapshot(world: &World, host: &str) -> Snapshot {
    use std::os::unix::fs::MetadataExt;
    fn walk(root: &Path, at: &Path, out: &mut std::collections::BTreeMap<String, Vec<u8>>) {
        let meta = std::fs::symlink_metadata(at).unwrap();
        let mut entry = format!(
            "mode {:o} uid {} mtime {}.{} ",
            meta.mode(),
            meta.uid(),
            meta.mtime(),
            meta.mtime_nsec()
        )
        .into_bytes();
        if meta.file_type().is_symlink() {
            entry.extend(
                std::fs::read_link(at)
                    .unwrap()
                    .as_os_str()
                    .as_encoded_bytes(),
            );
        } else if meta.is_file() {
            entry.extend(std::fs::read(at).unwrap());
        }
        let name = at.strip_prefix(root).unwrap().display().to_string();
        out.insert(name, entry);
        if meta.is_dir() {
            for child in std::fs::read_dir(at).unwrap() {
                walk(root, &child.unwrap().path(), out);
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    for inside in [
        "/etc/swpush",
        "/opt",
        "/var/lib/swpush",
        "/var/cache/swpush",
        "/run/swpush",
    ] {
        let root = world.fleet.host(host).path(inside);
        let mut part = std::collections::BTreeMap::new();
        walk(&root, &root, &mut part);
        out.extend(part.into_iter().map(|(k, v)| (format!("{inside}/{k}"), v)));
    }
    out
}

/// Runs `run` and samples its peak resident memory (VmHWM) while it runs;
/// returns the output, the peak in MiB and the time it took.
pub fn measured(run: Swpush) -> (Output, u64, Duration) {
    let start = Instant::now();
    let mut child = run
        .command()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run swpush");
    let mut peak_kib = 0u64;
    loop {
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id()));
        if let Some(kib) = status.ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        }) {
            peak_kib = peak_kib.max(kib);
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let output = child.wait_with_output().unwrap();
    (output, peak_kib / 1024, start.elapsed())
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

impl Fleet {
    /// `swpush OP` as the operator of this fleet's controller HOME runs it.
    pub fn swpush(&self, op: &str) -> Swpush {
        Swpush::operator(self.home(), op)
    }
}

/// The names in the folder `path`, sorted; none if it cannot be read.
pub fn names_in(path: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(path)
        .map(|d| {
            d.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
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

/// hello VERSION is current on `host` and runs there.
pub fn assert_hello_runs(world: &World, host: &str, version: &str) {
    assert_eq!(
        read_link(world, host, "/opt/swpush/hello/current"),
        format!("releases/{version}"),
        "{host}"
    );
    assert_eq!(
        world
            .fleet
            .ssh_ok(host, "/opt/swpush/hello/current/bin/hello"),
        format!("hello from swpush example package {version}\n"),
        "{host}"
    );
}

/// The exit code and JSON report of a finished run.
pub fn parse_report(output: &Output) -> (i32, Report) {
    let report = Report::try_parse(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}\n{}", text(&output.stderr)));
    (output.status.code().unwrap_or(-1), report)
}

/// (status, previous_version, version, message) of `host` in the report,
/// the versions as JSON (`null`: none).
pub fn outcome(report: &Report, host: &str) -> (String, Value, Value, String) {
    let entry = report.host(host);
    (
        entry.status.clone(),
        entry["previous_version"].clone(),
        entry["version"].clone(),
        entry.message.clone(),
    )
}

/// (status, message) of `host` in the report.
pub fn status_of(report: &Report, host: &str) -> (String, String) {
    report.status_of(host)
}

/// At least the unpacked size the controller would sign for `archive`, for
/// tests that sign orders for archives that never pass its reader: every
/// entry takes at least one 512-byte block of the (decompressed) tar stream.
pub fn unpacked_bound(archive: &[u8]) -> u64 {
    use std::io::Read;
    let mut plain = Vec::new();
    if archive.starts_with(&[0x1f, 0x8b]) {
        let _ = flate2::read::MultiGzDecoder::new(archive).read_to_end(&mut plain);
    } else {
        plain = archive.to_vec();
    }
    let len = plain.len() as u64;
    len + swpush::package::ENTRY_ALLOWANCE * (len / 512 + 1)
}

pub fn assert_no_temp_left(world: &World, host: &str) {
    let tmp = world.fleet.host(host).path("/tmp");
    assert!(
        is_empty_dir(&tmp),
        "{host}: the step left {:?} in /tmp",
        names_in(&tmp)
    );
}

/// The host is consistent and clean: `current` is `releases/VERSION` (or
/// absent for `None`) and agrees with the state record, nothing half-done
/// is left in the releases dir, the lock is free, no process and no temp
/// file is left.
pub fn assert_settled(world: &World, host: &str, current: Option<&str>) {
    // A step whose controller is gone cleans up on its own time: first let
    // it end.
    world.fleet.host(host).assert_no_process_left();
    let h = world.fleet.host(host);
    let link = read_link(world, host, "/opt/swpush/hello/current");
    let record = std::fs::read_to_string(h.path("/var/lib/swpush/packages/hello")).ok();
    match current {
        Some(version) => {
            assert_eq!(link, format!("releases/{version}"), "{host}: current");
            let record = record.unwrap_or_else(|| panic!("{host}: no state record"));
            assert!(
                record.starts_with(&format!("version {version}\n")),
                "{host}: the state record disagrees with current: {record}"
            );
        }
        None => {
            assert_eq!(link, "", "{host}: something is current");
            assert_eq!(record, None, "{host}: a state record");
        }
    }
    let releases = names_in(&h.path("/opt/swpush/hello/releases"));
    assert!(
        releases.iter().all(|r| !r.starts_with('.')),
        "{host}: half-done releases left: {releases:?}"
    );
    let expected: Vec<String> = current.iter().map(|v| v.to_string()).collect();
    assert_eq!(releases, expected, "{host}: releases");
    assert!(
        !h.path("/var/lib/swpush/lock").exists(),
        "{host}: the lock is still held"
    );
    assert_no_temp_left(world, host);
}
