//! Hostile and broken input, end to end, one concern a module: packages
//! the controller must refuse before it connects anywhere and bombs it must
//! read in bounded memory ([`packages`]); inventories it must refuse before
//! connecting ([`inventories`]); hostile archives that reach the client step
//! anyway (the controller's check bypassed with a validly signed order) and
//! that the client must refuse on its own, under dash with GNU tar and under
//! busybox ash with busybox tar, and the modes and owners a client is left
//! with ([`client`]); what the client must take literally ([`literal`]).
//!
//! "Before connecting" is proven with a tripwire: every inventory also names
//! a TCP listener of this test, which must never see a connection, and a
//! trusted fleet host whose client paths must stay empty.
//!
//! Some cases were found by writing these tests: a 64 MiB GNU long name,
//! entries hidden after a lone zero block, a pax sparse file, unusable host
//! fields, and foreign owners and modes; each now has its test here.
//!
//! One fleet serves every test of these modules; each test owns its hosts.

mod client;
mod inventories;
mod literal;
mod packages;

use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use swpush::order::Change;
use swpush::testing::{
    CHAR, FIFO, FILE, GNU_SPARSE, RawEntry as Entry, dir, entry, file, gzip, hard_link, pax_record,
    special, symlink, tar_body, tar_of,
};

use crate::support::SSH_PORT;
use crate::support::world::*;
use crate::support::{step, wait_until};

const HOSTS: &[&str] = &[
    "pkgguard",
    "invguard",
    "gnu",
    "bb",
    "kept-gnu",
    "kept-bb",
    "modes",
    "echo-gnu",
    "echo-bb",
    "utf8-gnu",
    "utf8-bb",
    "echo-status",
    "taropts",
];

/// Where an escaping entry would land on a client; none may ever exist.
const SENTINELS: &[&str] = &["/opt/escape", "/tmp/x", "/etc/swpush/pwned"];

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| World::start_trusted(HOSTS))
}

/// `swpush install` of `package` with `inventory`, plus `more` options.
fn install(world: &World, inventory: &Path, package: &Path, more: &[&str]) -> Ran {
    install_run(world, inventory, package, more).run()
}

/// `swpush install --inventory INV --key KEY --connect-timeout 5 MORE PACKAGE`
/// with a text report.
fn install_run(world: &World, inventory: &Path, package: &Path, more: &[&str]) -> Swpush {
    world
        .swpush("install")
        .inventory(inventory)
        .key(&world.key)
        .args(["--connect-timeout", "5"])
        .args(more)
        .arg(package)
}

/// An inventory of one host `name` at `address`, logging in as root.
fn one_host_inventory(world: &World, name: &str, address: &str) -> PathBuf {
    world.inventory(name, &[(name, address.to_owned())], "")
}

// --- archives, byte by byte -------------------------------------------------

// The builder is the library's own (`swpush::testing`), shared with the
// package reader's unit tests.

const MANIFEST: &[u8] = b"name: hello\nversion: 6.6.6\n";

/// A plausible package (manifest and a program) plus `extra` entries.
fn package_with(extra: Vec<Entry>) -> Vec<u8> {
    let mut entries = vec![
        file("swpush.yaml", MANIFEST),
        dir("bin/"),
        file("bin/hello", b"#!/bin/sh\necho hello\n").mode(0o755),
    ];
    entries.extend(extra);
    tar_of(&entries)
}

/// `count` MiB of `byte`, as concatenated gzip members (a gzip stream may
/// hold many; every reader, flate2's MultiGzDecoder and gzip(1), joins them).
fn gzip_mebibytes(byte: u8, count: usize) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(&vec![byte; 1 << 20]).unwrap();
    let member = encoder.finish().unwrap();
    member.repeat(count)
}

/// `len` bytes that gzip cannot shrink (xorshift).
fn noise(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// A package whose end-of-archive marker is one lone zero block, with more
/// entries after it. The tar crate (and so the controller) stops at the lone
/// block; busybox tar skips it and goes on; GNU tar warns.
fn hidden_after_lone_zero_block(hidden: &[Entry]) -> Vec<u8> {
    let mut out = tar_body(&[
        file("swpush.yaml", MANIFEST),
        file("bin/hello", b"#!/bin/sh\necho hello\n").mode(0o755),
    ]);
    out.extend_from_slice(&[0; 512]);
    out.extend_from_slice(&tar_of(hidden));
    out
}

// --- the tripwire and the guarded inventory ---------------------------------

/// A TCP listener that no run of this file may ever connect to.
struct Tripwire(TcpListener);

impl Tripwire {
    fn new() -> Tripwire {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        Tripwire(listener)
    }

    fn port(&self) -> u16 {
        self.0.local_addr().unwrap().port()
    }

    /// Panics if anything connected since the last call.
    fn assert_untouched(&self, case: &str) {
        match self.0.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Ok((_, from)) => panic!("{case}: swpush connected to the tripwire (from {from})"),
            Err(e) => panic!("{case}: tripwire: {e}"),
        }
    }
}

/// The YAML of an inventory naming the tripwire and the fleet host `guard`.
fn guarded_yaml(world: &World, guard: &str, tripwire: &Tripwire) -> String {
    format!(
        "defaults:\n  user: root\n  port: {SSH_PORT}\n  identity_file: \"{}\"\nhosts:\n  \
         tripwire: {{address: 127.0.0.1, port: {}}}\n  {guard}: {{address: {}}}\n",
        world.fleet.login_key().display(),
        tripwire.port(),
        world.fleet.host(guard).addr
    )
}

/// The guard host got nothing: no package, no step, no release.
fn assert_guard_untouched(world: &World, guard: &str, case: &str) {
    let h = world.fleet.host(guard);
    for dir in ["/var/cache/swpush", "/tmp", "/opt", "/var/lib/swpush"] {
        assert!(
            is_empty_dir(&h.path(dir)),
            "{case}: {guard}:{dir} is not empty: {:?}",
            names_in(&h.path(dir))
        );
    }
}

/// Checks a refusal before connecting: exit 1, nothing on stdout, one line
/// on stderr starting with `prefix` and containing `says`.
fn assert_refused(output: &Output, case: &str, prefix: &str, says: &str) {
    let stderr = text(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{case}: exit status\nstdout: {}\nstderr: {stderr}",
        text(&output.stdout)
    );
    assert_eq!(text(&output.stdout), "", "{case}: stdout");
    assert_eq!(stderr.lines().count(), 1, "{case}: one line: {stderr:?}");
    assert!(
        stderr.starts_with(prefix),
        "{case}:\n got: {stderr}want: {prefix}..."
    );
    assert!(
        stderr.contains(says),
        "{case}:\n got: {stderr}want: ...{says}..."
    );
}

/// The step for `host`, as the controller would start it; under busybox
/// ash with busybox's tools first on PATH when `busybox`.
fn step_command(world: &World, host: &str, busybox: bool) -> String {
    let command = world.step_command(host);
    match busybox {
        true => step::under_busybox(&command, ""),
        false => command,
    }
}
