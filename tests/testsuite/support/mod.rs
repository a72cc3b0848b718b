//! A fleet of real OpenSSH `sshd` "hosts" on this machine, for end-to-end tests.
//!
//! Each host is one `/usr/sbin/sshd -D` listening on its own loopback address
//! `127.A.B.C:10022` (all of 127/8 reaches `lo`; port 10022 keeps clear of the
//! machine's own sshd). `A.B` is derived from the process id and a per-process
//! fleet counter, probed with `TcpListener::bind`, and reserved in-process, so
//! fleets of parallel tests and of parallel test processes do not collide.
//!
//! Each sshd runs in its own mount namespace (`unshare -m`), so every login it
//! forks sees a private filesystem while `/bin`, `/usr` and users are the
//! machine's. `host.sh` puts overlayfs on `/etc`, `/var/lib`, `/var/cache`,
//! `/var/log` and `/run` (lower = the real dir, upper under `H/ov/`), so
//! nothing a host writes there reaches the machine, then bind-mounts host-owned
//! directories over the client paths swpush uses: `H/etc-swpush` on
//! `/etc/swpush`, `H/var-lib-swpush`, `H/var-cache-swpush`, `H/run-swpush`,
//! `H/opt` on `/opt` and `H/tmp` on `/tmp`. Tests seed and inspect those from
//! outside via [`TestHost::path`]. The fleet lives under `CARGO_TARGET_TMPDIR`
//! (or `/var/tmp/swpush-test-fleets` when the checkout is under `/tmp`, or
//! under a directory other users cannot traverse such as `/root`, since
//! sshd reads `authorized_keys` as the user logging in; and for
//! `examples/fleet.rs`), never under `/tmp`, which is replaced inside hosts. `/root` is the
//! machine's, with its shell startup files hidden (see `host.sh` for why).
//!
//! Teardown does not rely on `Drop` alone (a fleet may sit in a `static`, or
//! the test may panic or be killed): each fleet starts `reaper.sh`, in its own
//! process group and the machine's mount namespace, blocked reading a pipe
//! whose write end only the `Fleet` holds. When the pipe closes, the reaper
//! kills every process in one of the hosts' mount namespaces (listeners, their
//! sessions and whatever those started) and removes the fleet directory. The
//! `Fleet` also keeps each namespace open, so a namespace id cannot be reused
//! by another fleet (and its processes killed) before this reaper ran.
//!
//! Needs root, `openssh-server`, `unshare`, and overlayfs whose upper dirs can
//! live in the target dir (not on an overlayfs itself, as in some containers),
//! outside the dirs the hosts replace. A failed start panics with the host's
//! `sshd.log` and the setup's stderr.
//!
//! Beside the fleet: [`keys`] (keys, certificates, agents) and
//! [`wait_until`]; and for the test modules only, [`world`] (a controller
//! around a fleet: its key, the example package, inventories, orders),
//! [`swpush`] (runs of the binary), [`report`] (its JSON report) and
//! [`step`] (the client step driven by hand).

pub mod http;
pub mod keys;
mod site;
// Only the test target has these: swpush.rs runs the test binary's swpush
// (`CARGO_BIN_EXE_swpush`), and examples/fleet.rs, which includes this
// module too, needs only the fleet.
#[cfg(test)]
pub mod report;
#[cfg(test)]
pub mod step;
#[cfg(test)]
pub mod swpush;
#[cfg(test)]
pub mod world;

pub use site::Site;

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{self, Child, ChildStdin, Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// Port every test host listens on.
pub const SSH_PORT: u16 = 10022;
const SSHD: &str = "/usr/sbin/sshd";
/// Largest fleet: benchmarks at fleet size (bench/) start 1,000 hosts.
const MAX_HOSTS: usize = 1000;
/// Hosts per `127.A.B.0/24` slot: a bigger fleet takes consecutive slots.
const HOSTS_PER_SLOT: usize = 250;
/// Last octet of [`Fleet::dead_address`]; hosts use 1..=250.
const DEAD_OCTET: u8 = 254;
/// Slots `127.A.B.*` with A in 10..=209, B in 0..=255.
const SLOTS: u32 = 200 * 256;
/// How long sshd may take to listen: 10 s, plus 50 ms per host for big fleets
/// starting on a busy machine.
fn ready_timeout(hosts: usize) -> Duration {
    Duration::from_secs(10) + Duration::from_millis(50) * hosts as u32
}

static FLEET_COUNTER: AtomicU32 = AtomicU32::new(0);
/// Slots held by live fleets of this process (the bind probe alone would race).
static RESERVED_SLOTS: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

/// Client paths that are private per host, and where they live under `H`.
const HOST_DIRS: [(&str, &str); 6] = [
    ("/etc/swpush", "etc-swpush"),
    ("/var/lib/swpush", "var-lib-swpush"),
    ("/var/cache/swpush", "var-cache-swpush"),
    ("/run/swpush", "run-swpush"),
    ("/opt", "opt"),
    ("/tmp", "tmp"),
];
const HOST_SH: &str = include_str!("host.sh");
const REAPER_SH: &str = include_str!("reaper.sh");

/// One sshd "host" of a [`Fleet`].
pub struct TestHost {
    pub name: String,
    pub addr: Ipv4Addr,
    pub port: u16,
    /// The host's directory `H` (config, keys, logs, and its private dirs).
    pub dir: PathBuf,
    sshd: Child,
    /// Keeps the mount namespace (and its id) alive until the reaper ran.
    mnt_ns: Option<File>,
}

/// N running sshd hosts plus a controller HOME that can log in to them as root.
pub struct Fleet {
    dir: PathBuf,
    home: PathBuf,
    /// The first of its slots; a fleet of more than [`HOSTS_PER_SLOT`]
    /// hosts holds the ones after it too.
    slot: u32,
    /// How many hosts it was started with (its slots, when it goes).
    size: usize,
    hosts: Vec<TestHost>,
    reaper: Child,
    reaper_pipe: Option<ChildStdin>,
    /// The network namespace the hosts run in, for [`Fleet::start_site`].
    site: Option<Site>,
}

impl Fleet {
    /// Starts hosts named `host1..hostN`.
    pub fn start(n: usize) -> Fleet {
        let names: Vec<String> = (1..=n).map(|i| format!("host{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        Fleet::start_named(&refs)
    }

    /// Starts one host per name; returns once every sshd accepts connections.
    pub fn start_named(names: &[&str]) -> Fleet {
        Fleet::start_with(names, None, &[])
    }

    /// Starts the hosts inside a network namespace of their own (a "site"
    /// behind a bastion): from this machine only the hosts in `reachable`
    /// can be connected to, at their usual address (a forwarder listens
    /// there and connects inside); the others are reachable only from
    /// within the site, e.g. through a reachable one as a jump host.
    /// `extra` adds sshd_config lines to the named hosts (replacing the
    /// fleet's own for the same keyword), `{NAME}` in them standing for
    /// host NAME's address.
    pub fn start_site(names: &[&str], reachable: &[&str], extra: &[(&str, &str)]) -> Fleet {
        for name in reachable.iter().chain(extra.iter().map(|(n, _)| n)) {
            assert!(names.contains(name), "{name} is not a host of this site");
        }
        Fleet::start_with(names, Some(reachable), extra)
    }

    /// Starts the hosts as [`Fleet::start_named`] does, with `extra`
    /// sshd_config lines as in [`Fleet::start_site`].
    pub fn start_configured(names: &[&str], extra: &[(&str, &str)]) -> Fleet {
        for (name, _) in extra {
            assert!(names.contains(name), "{name} is not a host of this fleet");
        }
        Fleet::start_with(names, None, extra)
    }

    fn start_with(names: &[&str], site: Option<&[&str]>, extra: &[(&str, &str)]) -> Fleet {
        check_prerequisites();
        check_names(names);
        let slot = reserve_slot(names.len());
        let dir = fresh_dir(slot);
        let home = dir.join("home");
        mkdirs(&home.join(".ssh"));
        let mut reaper = spawn(
            Command::new("sh")
                .args(["-c", REAPER_SH, "swpush-fleet-reaper"])
                .arg(&dir)
                .stdin(Stdio::piped())
                .process_group(0),
        );
        let reaper_pipe = reaper.stdin.take();
        let mut fleet = Fleet {
            dir,
            home,
            slot,
            size: names.len(),
            hosts: Vec::new(),
            reaper,
            reaper_pipe,
            site: None,
        };
        if site.is_some() {
            fleet.site = Some(Site::create(&fleet.dir, slot));
        }

        // Once a Fleet exists, any panic below leaves the cleanup to its Drop.
        let authorized = fleet.dir.join("authorized_keys");
        finish(
            spawn(&mut keygen(&fleet.login_key())),
            "ssh-keygen (login key)",
        );
        fs::copy(fleet.login_key().with_extension("pub"), &authorized)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", authorized.display()));
        let dirs: Vec<PathBuf> = names
            .iter()
            .map(|n| fleet.dir.join("hosts").join(n))
            .collect();
        let keygens: Vec<Child> = dirs
            .iter()
            .map(|h| {
                mkdirs(h);
                spawn(&mut keygen(&h.join("ssh_host_ed25519_key")))
            })
            .collect();
        keygens
            .into_iter()
            .for_each(|k| finish(k, "ssh-keygen (host key)"));

        let mut known_hosts = String::new();
        for (i, (name, h)) in names.iter().zip(dirs).enumerate() {
            let addr = host_address(slot, i);
            let key = public_key_in(&h.join("ssh_host_ed25519_key.pub"));
            known_hosts += &format!("[{addr}]:{SSH_PORT} {key}\n");
            let mut lines = String::new();
            for (_, line) in extra.iter().filter(|(n, _)| n == name) {
                // `{NAME}` in a line is that host's address.
                let mut line = line.to_string();
                for (j, other) in names.iter().enumerate() {
                    let other_addr = host_address(slot, j);
                    line = line.replace(&format!("{{{other}}}"), &other_addr.to_string());
                }
                lines += &format!("{line}\n");
            }
            let config = with_lines(&sshd_config(&h, addr, &authorized), &lines);
            write(&h.join("sshd_config"), &config);
            let mut start = match &fleet.site {
                Some(site) => site.enter_command(),
                None => Command::new("unshare"),
            };
            let sshd = spawn(
                start
                    .args(["-m", "--propagation=private", "sh", "-c", HOST_SH])
                    .args([Path::new("host.sh"), &h])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(create(&h.join("start.err"))),
            );
            let name = name.to_string();
            fleet.hosts.push(TestHost {
                name,
                addr,
                port: SSH_PORT,
                dir: h,
                sshd,
                mnt_ns: None,
            });
        }
        write(&fleet.known_hosts(), &known_hosts);
        match fleet.site.as_ref().map(Site::namespace) {
            Some(namespace) => site::within(&namespace, || fleet.wait_until_ready()),
            None => fleet.wait_until_ready(),
        }
        if let (Some(reachable), Some(site_ref)) = (site, &fleet.site) {
            let forwards: Vec<Ipv4Addr> = reachable.iter().map(|n| fleet.host(n).addr).collect();
            let mut started = Vec::new();
            for addr in forwards {
                started.push(site_ref.forward(SocketAddr::from((addr, SSH_PORT))));
            }
            if let Some(site) = &mut fleet.site {
                site.forwarders = started;
            }
        }
        fleet
    }

    /// Whether this machine (not the site) can open a TCP connection to
    /// `host`: false for a site's hosts that are not reachable.
    pub fn reachable_from_here(&self, host: &str) -> bool {
        let h = self.host(host);
        TcpStream::connect_timeout(&SocketAddr::from((h.addr, h.port)), Duration::from_secs(2))
            .is_ok()
    }

    fn wait_until_ready(&mut self) {
        let timeout = ready_timeout(self.hosts.len());
        let deadline = Instant::now() + timeout;
        let mut pending: Vec<usize> = (0..self.hosts.len()).collect();
        while !pending.is_empty() {
            pending.retain(|&i| {
                let host = &mut self.hosts[i];
                if let Ok(Some(status)) = host.sshd.try_wait() {
                    host.fail(&format!("exited ({status}) during startup"));
                }
                let sock = SocketAddr::from((host.addr, host.port));
                TcpStream::connect_timeout(&sock, Duration::from_millis(200)).is_err()
            });
            if !pending.is_empty() && Instant::now() > deadline {
                let host = &mut self.hosts[pending[0]];
                host.fail(&format!("not listening after {timeout:?}"));
            }
            sleep(Duration::from_millis(20));
        }
        for host in &mut self.hosts {
            host.hold_namespace();
        }
        // The probes above made sshd fork short-lived children; let them go so
        // that session_pids() starts out empty.
        let deadline = Instant::now() + Duration::from_secs(3);
        let listeners: BTreeSet<u32> = self.hosts.iter().map(TestHost::sshd_pid).collect();
        while live_processes()
            .iter()
            .any(|(_, ppid)| listeners.contains(ppid))
            && Instant::now() < deadline
        {
            sleep(Duration::from_millis(10));
        }
    }

    pub fn hosts(&self) -> &[TestHost] {
        &self.hosts
    }

    /// The host called `name`; panics if the fleet has none.
    pub fn host(&self, name: &str) -> &TestHost {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| {
                let names: Vec<&str> = self.hosts.iter().map(|h| h.name.as_str()).collect();
                panic!("no test host {name:?} in this fleet (hosts: {names:?})")
            })
    }

    /// The controller's private HOME.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The key that logs in as root on every host.
    pub fn login_key(&self) -> PathBuf {
        self.home.join(".ssh/id_ed25519")
    }

    /// `[ADDR]:10022 ssh-ed25519 ...` for every host.
    pub fn known_hosts(&self) -> PathBuf {
        self.home.join(".ssh/known_hosts")
    }

    /// The fleet root (removed at teardown).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// An address in this fleet's range where nothing listens.
    pub fn dead_address(&self) -> Ipv4Addr {
        dead_address(self.slot)
    }

    /// A native swpush inventory naming every host, logging in as root.
    pub fn inventory_yaml(&self) -> String {
        let key = self.login_key().display().to_string();
        let key = key.replace('\\', "\\\\").replace('"', "\\\"");
        let mut yaml = format!(
            "defaults:\n  user: root\n  port: {SSH_PORT}\n  identity_file: \"{key}\"\nhosts:\n"
        );
        for h in &self.hosts {
            yaml += &format!("  {}: {{address: {}}}\n", h.name, h.addr);
        }
        yaml
    }

    /// Writes [`Fleet::inventory_yaml`] to `inventory.yaml` in the fleet dir.
    pub fn write_inventory(&self) -> PathBuf {
        let path = self.dir.join("inventory.yaml");
        write(&path, &self.inventory_yaml());
        path
    }

    /// Runs `command` as root on `host` with the real OpenSSH client.
    pub fn ssh(&self, host: &str, command: &str) -> Output {
        self.ssh_command(host, command)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run ssh (apt-get install openssh-client): {e}"))
    }

    /// The `ssh` command line of [`Fleet::ssh`], to spawn or adjust.
    pub fn ssh_command(&self, host: &str, command: &str) -> Command {
        let h = self.host(host);
        let known = format!("UserKnownHostsFile={}", self.known_hosts().display());
        let (port, dest) = (h.port.to_string(), format!("root@{}", h.addr));
        let mut ssh = Command::new("ssh");
        ssh.args(["-F", "/dev/null", "-o", "BatchMode=yes", "-o", &known, "-o"])
            .args([
                "GlobalKnownHostsFile=/dev/null",
                "-o",
                "StrictHostKeyChecking=yes",
            ])
            .args(["-o", "ConnectTimeout=10", "-i"])
            .arg(self.login_key())
            .args(["-p", &port, &dest, command]);
        ssh
    }

    /// Like [`Fleet::ssh`], but panics unless it succeeds; returns stdout.
    pub fn ssh_ok(&self, host: &str, command: &str) -> String {
        let out = self.ssh(host, command);
        assert!(
            out.status.success(),
            "ssh {host} {command:?}: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for host in &mut self.hosts {
            let _ = host.sshd.kill();
            let _ = host.sshd.wait();
        }
        if let Some(site) = &mut self.site {
            site.stop_forwarding();
        }
        // Closing the pipe wakes the reaper: sessions die, the dir goes
        // (and the site's network namespace).
        drop(self.reaper_pipe.take());
        let _ = self.reaper.wait();
        if let Ok(mut slots) = RESERVED_SLOTS.lock() {
            for slot in slots_of(self.slot, self.size) {
                slots.remove(&slot);
            }
        }
        // Fields drop after this: the namespaces are released only now.
    }
}

/// Polls `condition` every 2 ms until it holds; panics naming `what` if it
/// still does not after `within`.
pub fn wait_until(within: Duration, what: &str, condition: impl FnMut() -> bool) {
    assert!(
        holds_within(within, condition),
        "{what}: not within {within:?}"
    );
}

/// Polls `condition` every 2 ms until it holds (true) or `within` has
/// passed (false), for a caller that says more than [`wait_until`] can.
pub fn holds_within(within: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while !condition() {
        if Instant::now() >= deadline {
            return false;
        }
        sleep(Duration::from_millis(2));
    }
    true
}

/// `TYPE BASE64` of the public key in `path` (no comment).
fn public_key_in(path: &Path) -> String {
    let text = read(path);
    let key: Vec<&str> = text.split_whitespace().take(2).collect();
    key.join(" ")
}

impl TestHost {
    /// `ssh-ed25519 AAAA...` of the host's key, as known_hosts lines hold it.
    pub fn public_key(&self) -> String {
        public_key_in(&self.dir.join("ssh_host_ed25519_key.pub"))
    }

    /// Where a client path such as `/opt/swpush/x` or `/etc/swpush/known_servers`
    /// is seen from outside. Panics for paths that are not private per host.
    pub fn path(&self, inside: &str) -> PathBuf {
        assert!(
            !inside.split('/').any(|c| c == ".."),
            "test host path {inside:?} has '..'"
        );
        for (client, local) in HOST_DIRS {
            if let Some(rest) = inside.strip_prefix(client)
                && (rest.is_empty() || rest.starts_with('/'))
            {
                return self.dir.join(local).join(rest.trim_start_matches('/'));
            }
        }
        let dirs: Vec<&str> = HOST_DIRS.iter().map(|(c, _)| *c).collect();
        panic!(
            "{inside:?} is not private to test host {}; use a path under {dirs:?}",
            self.name
        )
    }

    /// The listening sshd (also found in `H/sshd.pid`).
    pub fn sshd_pid(&self) -> u32 {
        self.sshd.id()
    }

    /// Every process in this host's mount namespace but its sshd
    /// listener, as `PID COMMAND LINE` (zombies have no namespace left and
    /// are not listed).
    pub fn processes(&self) -> Vec<String> {
        let listener = self.sshd_pid();
        let Some(ns) = mount_ns(listener) else {
            return Vec::new();
        };
        live_processes()
            .into_iter()
            .map(|(pid, _)| pid)
            .filter(|&pid| pid != listener && mount_ns(pid) == Some(ns))
            .map(|pid| {
                let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                format!("{pid} {}", cmdline.chars().take(120).collect::<String>())
            })
            .collect()
    }

    /// Panics unless every process on this host (see
    /// [`TestHost::processes`]) is gone within 5 s.
    pub fn assert_no_process_left(&self) {
        let mut left = Vec::new();
        let gone = holds_within(Duration::from_secs(5), || {
            left = self.processes();
            left.is_empty()
        });
        assert!(gone, "{}: processes left after 5 s: {left:#?}", self.name);
    }

    /// The listener's children: one per live connection.
    pub fn session_pids(&self) -> Vec<u32> {
        let parent = self.sshd_pid();
        let mut pids: Vec<u32> = live_processes()
            .into_iter()
            .filter(|&(_, ppid)| ppid == parent)
            .map(|(pid, _)| pid)
            .collect();
        pids.sort_unstable();
        pids
    }

    fn hold_namespace(&mut self) {
        let expected = read(&self.dir.join("mntns"));
        let path = format!("/proc/{}/ns/mnt", self.sshd_pid());
        let file = File::open(&path).unwrap_or_else(|e| panic!("cannot open {path}: {e}"));
        let ino = file
            .metadata()
            .map(|m| m.ino().to_string())
            .unwrap_or_default();
        assert_eq!(
            ino,
            expected.trim(),
            "{}: sshd is not in the namespace its setup made",
            self.name
        );
        self.mnt_ns = Some(file);
    }

    /// Stops this host's sshd and panics with everything it said.
    fn fail(&mut self, why: &str) -> ! {
        let _ = self.sshd.kill();
        let _ = self.sshd.wait();
        let log = fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default();
        let err = fs::read_to_string(self.dir.join("start.err")).unwrap_or_default();
        panic!(
            "test host {} (sshd on {}:{}) {why}\n--- {}/sshd.log ---\n{log}\n--- stderr ---\n{err}",
            self.name,
            self.addr,
            self.port,
            self.dir.display()
        )
    }
}

fn check_prerequisites() {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status.lines().any(|l| {
        l.strip_prefix("Uid:")
            .and_then(|u| u.split_whitespace().nth(1))
            == Some("0")
    });
    assert!(
        root && Path::new(SSHD).exists(),
        "the test fleet needs root and openssh-server (apt-get install openssh-server)"
    );
}

/// Picks free consecutive `127.A.B.0/24`s for `n` hosts (one per
/// [`HOSTS_PER_SLOT`]) and reserves them in this process; returns the first.
fn reserve_slot(n: usize) -> u32 {
    let counter = FLEET_COUNTER.fetch_add(1, Ordering::Relaxed);
    let wanted = slot_count(n);
    // Starts that leave room for every slot the fleet needs, without wrapping.
    let starts = SLOTS - wanted + 1;
    let first = (u64::from(process::id()) * 16 + u64::from(counter)) % u64::from(starts);
    let mut reserved = RESERVED_SLOTS.lock().unwrap_or_else(|e| e.into_inner());
    for step in 0..starts {
        let slot = (first as u32 + step) % starts;
        let slots: Vec<u32> = slots_of(slot, n).collect();
        let free = slots.iter().all(|s| !reserved.contains(s))
            && (0..n)
                .map(|i| host_address(slot, i))
                .chain([dead_address(slot)])
                .all(|addr| TcpListener::bind((addr, SSH_PORT)).is_ok());
        if free {
            reserved.extend(slots);
            return slot;
        }
    }
    panic!("no free 127.A.B.0/24 for a test fleet of {n} hosts on port {SSH_PORT}")
}

/// The slots a fleet of `n` hosts starting at `slot` holds.
fn slots_of(slot: u32, n: usize) -> impl Iterator<Item = u32> {
    slot..slot + slot_count(n)
}

/// How many slots a fleet of `n` hosts takes.
fn slot_count(n: usize) -> u32 {
    n.max(1).div_ceil(HOSTS_PER_SLOT) as u32
}

/// Host `i` (from 0) of the fleet whose first slot is `slot`.
fn host_address(slot: u32, i: usize) -> Ipv4Addr {
    let (a, b) = slot_octets(slot + (i / HOSTS_PER_SLOT) as u32);
    Ipv4Addr::new(127, a, b, (i % HOSTS_PER_SLOT) as u8 + 1)
}

/// Where nothing of the fleet whose first slot is `slot` listens.
fn dead_address(slot: u32) -> Ipv4Addr {
    let (a, b) = slot_octets(slot);
    Ipv4Addr::new(127, a, b, DEAD_OCTET)
}

/// The mount namespace of process `pid`, if it still has one.
fn mount_ns(pid: u32) -> Option<u64> {
    fs::metadata(format!("/proc/{pid}/ns/mnt"))
        .ok()
        .map(|m| m.ino())
}

/// `(pid, parent pid)` of every process that is not a zombie.
fn live_processes() -> Vec<(u32, u32)> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // "pid (comm) state ppid ...": comm may hold spaces and ')'.
            let (_, after) = stat.rsplit_once(')')?;
            let mut fields = after.split_whitespace();
            let state = fields.next()?;
            let ppid = fields.next()?.parse().ok()?;
            (state != "Z").then_some((pid, ppid))
        })
        .collect()
}

fn slot_octets(slot: u32) -> (u8, u8) {
    ((10 + slot / 256) as u8, (slot % 256) as u8)
}

fn fresh_dir(slot: u32) -> PathBuf {
    let hidden = [
        "/tmp",
        "/opt",
        "/etc",
        "/run",
        "/var/lib",
        "/var/cache",
        "/var/log",
    ];
    // sshd reads `authorized_keys` as the user logging in, so a non-root
    // login needs every directory above the fleet to be traversable by
    // others: a checkout under /root (0700) is not.
    let usable = |dir: &Path| {
        !hidden.iter().any(|d| dir.starts_with(d))
            && !dir.to_string_lossy().contains([',', ':'])
            && dir
                .ancestors()
                .all(|d| fs::metadata(d).map_or(true, |m| m.permissions().mode() & 0o001 != 0))
    };
    // The target dir when the hosts do not hide it (a checkout under /tmp
    // would be) and anyone may traverse it, else /var/tmp, which no host
    // replaces. Only integration tests get CARGO_TARGET_TMPDIR;
    // examples/fleet.rs uses the fallback.
    let fallback = Path::new("/var/tmp/swpush-test-fleets");
    let base = match option_env!("CARGO_TARGET_TMPDIR").map(Path::new) {
        Some(target) if usable(target) => target,
        _ => {
            mkdirs(fallback);
            fs::set_permissions(fallback, fs::Permissions::from_mode(0o755))
                .unwrap_or_else(|e| panic!("cannot open up {}: {e}", fallback.display()));
            fallback
        }
    };
    mkdirs(base);
    for attempt in 0..100 {
        let dir = base.join(format!("fleet-{}-{slot}-{attempt}", process::id()));
        if fs::create_dir(&dir).is_ok() {
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
                .unwrap_or_else(|e| panic!("cannot open up {}: {e}", dir.display()));
            return dir;
        }
    }
    panic!("cannot create a fresh fleet dir under {}", base.display())
}

fn sshd_config(h: &Path, addr: Ipv4Addr, authorized: &Path) -> String {
    let h = h.display();
    format!(
        "ListenAddress {addr}:{SSH_PORT}\nHostKey {h}/ssh_host_ed25519_key\n\
         PidFile {h}/sshd.pid\nAuthorizedKeysFile {}\n\
         PermitRootLogin prohibit-password\nPasswordAuthentication no\n\
         KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
         MaxStartups 4000\nMaxSessions 200\nPrintMotd no\nPrintLastLog no\n\
         LogLevel ERROR\n",
        authorized.display()
    )
}

/// `config` with `lines` at its end, and without its own lines for their
/// keywords: sshd takes the first value of most keywords but the last of
/// some (`MaxStartups`), so a keyword must be set once.
fn with_lines(config: &str, lines: &str) -> String {
    let keyword = |line: &str| {
        line.split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    let replaced: BTreeSet<String> = lines.lines().map(keyword).collect();
    let mut kept: String = config
        .lines()
        .filter(|line| !replaced.contains(&keyword(line)))
        .map(|line| format!("{line}\n"))
        .collect();
    kept.push_str(lines);
    kept
}

fn check_names(names: &[&str]) {
    let n = names.len();
    assert!(
        (1..=MAX_HOSTS).contains(&n),
        "a test fleet has 1..={MAX_HOSTS} hosts, not {n}"
    );
    for (i, name) in names.iter().enumerate() {
        let chars_ok = name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        assert!(
            chars_ok && !name.is_empty() && !name.starts_with(['-', '.']),
            "test host name {name:?}: use letters, digits, '.', '_', '-'"
        );
        assert!(
            !names[..i].contains(name),
            "test host name {name:?} given twice"
        );
    }
}

fn keygen(key: &Path) -> Command {
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-t", "ed25519", "-N", "", "-C", "swpush-test", "-f"])
        .arg(key);
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    cmd
}

fn spawn(cmd: &mut Command) -> Child {
    cmd.spawn()
        .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", cmd.get_program()))
}

fn finish(child: Child, what: &str) {
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(out.status.success(), "{what} failed: {}", out.status);
}

fn mkdirs(p: &Path) {
    fs::create_dir_all(p).unwrap_or_else(|e| panic!("cannot create {}: {e}", p.display()));
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

fn write(p: &Path, text: &str) {
    create(p)
        .write_all(text.as_bytes())
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", p.display()));
}

fn create(p: &Path) -> File {
    File::create(p).unwrap_or_else(|e| panic!("cannot create {}: {e}", p.display()))
}
