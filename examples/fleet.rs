//! A local fleet of real OpenSSH `sshd` hosts to try swpush on, outside the
//! test suite: the quick start and `bench/run.sh` drive it. It reuses the test
//! fleet of `tests/testsuite/support` (one sshd per loopback address, each in its own
//! mount namespace with private `/opt`, `/etc/swpush`, `/var/lib/swpush`,
//! `/var/cache/swpush`, `/run/swpush` and `/tmp`), so nothing a host writes
//! reaches this machine's real directories.
//!
//! ```text
//! cargo run --release --example fleet -- --hosts N [--package-dirs]
//! ```
//!
//! Prints machine-readable lines on stdout, then waits:
//!
//! ```text
//! inventory PATH          a native swpush inventory naming every host
//! home PATH               a controller HOME: .ssh/id_ed25519 logs in as root
//!                         everywhere, .ssh/known_hosts holds every host key
//! dir PATH                the fleet root (removed at teardown)
//! host NAME ADDR HOSTDIR  one per host; sshd listens on ADDR:10022
//! path NAME CLIENT LOCAL  with --package-dirs: where the client directory
//!                         CLIENT of host NAME is seen from outside, for
//!                         /etc/swpush /var/lib/swpush /var/cache/swpush
//!                         /run/swpush /opt/swpush /tmp
//! ready                   every sshd accepts connections
//! ```
//!
//! The fleet runs until stdin reaches end-of-file; then every host process
//! is killed and the fleet directory removed. Teardown also happens when this
//! program dies in any other way (the fleet's reaper watches a pipe only this
//! process holds). Needs root (mount namespaces, sshd) and openssh-server:
//! `bash scripts/install-test-deps.sh`.

// The test fleet itself, shared with the test suite; this program uses only
// `Fleet` and `TestHost`, not every helper the tests call.
#[path = "../tests/testsuite/support/mod.rs"]
#[allow(dead_code)]
mod support;

use std::io::{self, Read};
use std::process::ExitCode;

use support::{Fleet, SSH_PORT};

const USAGE: &str = "usage: fleet --hosts N [--package-dirs]\n\
    Starts N (1..=1000) local sshd hosts, prints `inventory`, `home`, `dir`,\n\
    `host NAME ADDR HOSTDIR` (and with --package-dirs `path NAME CLIENT LOCAL`)\n\
    lines, then `ready`, and runs until stdin reaches end-of-file.";

/// Client directories listed by `--package-dirs`.
const CLIENT_DIRS: [&str; 6] = [
    "/etc/swpush",
    "/var/lib/swpush",
    "/var/cache/swpush",
    "/run/swpush",
    "/opt/swpush",
    "/tmp",
];

struct Args {
    hosts: usize,
    package_dirs: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut hosts = None;
    let mut package_dirs = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--hosts" => hosts = Some(host_count(&args.next().unwrap_or_default())?),
            "--package-dirs" => package_dirs = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => match other.strip_prefix("--hosts=") {
                Some(value) => hosts = Some(host_count(value)?),
                None => return Err(format!("unknown argument {other:?}")),
            },
        }
    }
    Ok(Args {
        hosts: hosts.ok_or("--hosts N is required")?,
        package_dirs,
    })
}

fn host_count(value: &str) -> Result<usize, String> {
    match value.parse() {
        Ok(n) if (1..=1000).contains(&n) => Ok(n),
        _ => Err(format!("--hosts {value:?}: give a number from 1 to 1000")),
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("Uid:"))
        .any(|uids| uids.split_whitespace().nth(1) == Some("0"))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(why) => {
            eprintln!("fleet: {why}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if !is_root() {
        eprintln!(
            "fleet: needs root: each host is an sshd in its own mount namespace \
             (run as root, e.g. with sudo; `bash scripts/install-test-deps.sh` \
             installs openssh-server)"
        );
        return ExitCode::FAILURE;
    }

    let fleet = Fleet::start(args.hosts);
    let inventory = fleet.write_inventory();
    println!("inventory {}", inventory.display());
    println!("home {}", fleet.home().display());
    println!("dir {}", fleet.dir().display());
    for host in fleet.hosts() {
        println!("host {} {} {}", host.name, host.addr, host.dir.display());
        if args.package_dirs {
            for client in CLIENT_DIRS {
                // `path("/tmp")` ends in '/'; print plain directory names.
                let local = host.path(client).display().to_string();
                let local = local.trim_end_matches('/');
                println!("path {} {client} {local}", host.name);
            }
        }
    }
    println!("ready");
    let noun = if args.hosts == 1 { "host" } else { "hosts" };
    eprintln!(
        "fleet: {} {noun} on port {SSH_PORT} up; close stdin (Ctrl-D) to stop",
        args.hosts
    );

    // Whatever arrives on stdin is ignored; end-of-file (or a read error,
    // such as a closed terminal) is the signal to stop.
    let mut sink = [0u8; 4096];
    let mut stdin = io::stdin().lock();
    while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
    drop(fleet);
    ExitCode::SUCCESS
}
