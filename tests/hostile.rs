//! Hostile and broken input, end to end: packages and inventories that the
//! controller must refuse before it connects anywhere, and hostile archives
//! that reach the client step anyway (the controller's check bypassed with a
//! validly signed order) and that the client must refuse on its own, under
//! dash with GNU tar and under busybox ash with busybox tar.
//!
//! "Before connecting" is proven with a tripwire: every inventory also names
//! a TCP listener of this test, which must never see a connection, and a
//! trusted fleet host whose client paths must stay empty.
//!
//! Some cases were found by writing this file: a 64 MiB GNU long name, entries
//! hidden after a lone zero block, a pax sparse file, unusable host fields,
//! and foreign owners and modes; each now has its test here.
//!
//! Also here: what the client must take literally (a hook's or a record's
//! backslashes in the completion line and in `status`), names beyond ASCII
//! on GNU and busybox clients, and `pack` never leaving a broken package
//! at OUT.
//!
//! One fleet serves every test in this file; each test owns its hosts.

mod support;
#[path = "support/world.rs"]
mod world;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::SSH_PORT;
use swpush::order::Change;
use world::*;

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
fn install(world: &World, inventory: &Path, package: &Path, more: &[&str]) -> Output {
    swpush(&world.fleet, &install_args(world, inventory, package, more))
}

fn install_args<'a>(
    world: &'a World,
    inventory: &'a Path,
    package: &'a Path,
    more: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        "install",
        "--inventory",
        inventory.to_str().unwrap(),
        "--key",
        world.key.to_str().unwrap(),
        "--connect-timeout",
        "5",
    ];
    args.extend_from_slice(more);
    args.push(package.to_str().unwrap());
    args
}

/// An inventory of one host `name` at `address`, logging in as root.
fn one_host_inventory(world: &World, name: &str, address: &str) -> PathBuf {
    world.inventory(name, &[(name, address.to_owned())], "")
}

fn listing(path: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(path)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

// --- archives, byte by byte -------------------------------------------------

const FILE: u8 = b'0';
const HARD: u8 = b'1';
const SYMLINK: u8 = b'2';
const CHAR: u8 = b'3';
const BLOCK: u8 = b'4';
const DIR: u8 = b'5';
const FIFO: u8 = b'6';
const GNU_SPARSE: u8 = b'S';
const GNU_LONGNAME: u8 = b'L';
const PAX: u8 = b'x';

/// One raw tar entry, written exactly as given (no path checks on the way).
#[derive(Clone)]
struct Entry {
    name: Vec<u8>,
    kind: u8,
    link: Vec<u8>,
    data: Vec<u8>,
    /// The size the header claims; `None` is the data's length.
    claimed_size: Option<u64>,
    mode: u32,
    owner: u64,
}

fn entry(name: &[u8], kind: u8, link: &[u8], data: &[u8]) -> Entry {
    Entry {
        name: name.to_vec(),
        kind,
        link: link.to_vec(),
        data: data.to_vec(),
        claimed_size: None,
        mode: if kind == DIR { 0o755 } else { 0o644 },
        owner: 0,
    }
}

fn file(name: &str, data: &[u8]) -> Entry {
    entry(name.as_bytes(), FILE, b"", data)
}

fn dir(name: &str) -> Entry {
    entry(name.as_bytes(), DIR, b"", b"")
}

fn symlink(name: &str, target: &str) -> Entry {
    entry(name.as_bytes(), SYMLINK, target.as_bytes(), b"")
}

fn hard_link(name: &str, target: &str) -> Entry {
    entry(name.as_bytes(), HARD, target.as_bytes(), b"")
}

fn special(name: &str, kind: u8) -> Entry {
    entry(name.as_bytes(), kind, b"", b"")
}

impl Entry {
    fn mode(mut self, mode: u32) -> Entry {
        self.mode = mode;
        self
    }

    fn owner(mut self, id: u64) -> Entry {
        self.owner = id;
        self
    }

    /// The header block alone.
    fn header(&self) -> Vec<u8> {
        let mut header = tar::Header::new_gnu();
        let gnu = header.as_gnu_mut().unwrap();
        gnu.name[..self.name.len()].copy_from_slice(&self.name);
        gnu.linkname[..self.link.len()].copy_from_slice(&self.link);
        header.set_entry_type(tar::EntryType::new(self.kind));
        header.set_size(self.claimed_size.unwrap_or(self.data.len() as u64));
        header.set_mode(self.mode);
        header.set_uid(self.owner);
        header.set_gid(self.owner);
        header.set_mtime(0);
        if self.kind == GNU_SPARSE {
            // One data region covering the whole file: a well-formed sparse entry.
            let gnu = header.as_gnu_mut().unwrap();
            gnu.set_real_size(self.data.len() as u64);
            gnu.sparse[0].set_offset(0);
            gnu.sparse[0].set_length(self.data.len() as u64);
        }
        if self.kind == CHAR || self.kind == BLOCK {
            header.set_device_major(1).unwrap();
            header.set_device_minor(3).unwrap();
        }
        header.set_cksum();
        header.as_bytes().to_vec()
    }
}

/// Header and padded data of each entry, without the end-of-archive marker.
fn tar_body(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        out.extend_from_slice(&e.header());
        out.extend_from_slice(&e.data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out
}

/// A complete tar stream with exactly these entries.
fn tar_of(entries: &[Entry]) -> Vec<u8> {
    let mut out = tar_body(entries);
    out.extend_from_slice(&[0; 1024]);
    out
}

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

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
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

/// One pax record, `LEN key=value\n`, where LEN counts itself.
fn pax_record(key: &str, value: &str) -> Vec<u8> {
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    while format!("{len}{body}").len() != len {
        len += 1;
    }
    format!("{len}{body}").into_bytes()
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
            listing(&h.path(dir))
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

// --- 1. packages the controller refuses before connecting -------------------

/// (file name, bytes, what the refusal must say).
fn hostile_packages() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let hooked = |manifest: &'static [u8], extra: Vec<Entry>| {
        let mut entries = vec![file("swpush.yaml", manifest)];
        entries.extend(extra);
        tar_of(&entries)
    };
    let good = package_with(vec![]);
    let mut lying_bomb = gzip(&tar_body(&[file("swpush.yaml", MANIFEST), {
        let mut big = file("big", b"");
        big.claimed_size = Some(8 << 30);
        big
    }]));
    lying_bomb.extend(gzip_mebibytes(0, 16));
    let mut bad_crc = gzip(&good);
    let at = bad_crc.len() - 6;
    bad_crc[at] ^= 0xff;
    vec![
        (
            "absolute.tar",
            package_with(vec![file("/opt/escape", b"x")]),
            "entry `/opt/escape` is an absolute path",
        ),
        (
            "dotdot.tar.gz",
            gzip(&package_with(vec![file("../../../../../../tmp/x", b"x")])),
            "entry `../../../../../../tmp/x` has a `..` component",
        ),
        (
            "dotdot-inside.tar",
            package_with(vec![file("bin/../../tmp/x", b"x")]),
            "entry `bin/../../tmp/x` has a `..` component",
        ),
        (
            "symlink-absolute.tar",
            package_with(vec![symlink("esc", "/etc/swpush/pwned")]),
            "entry `esc` is a symlink to the absolute path `/etc/swpush/pwned`",
        ),
        (
            "symlink-climbs.tar",
            package_with(vec![symlink("bin/up", "../../../../../tmp/x")]),
            "entry `bin/up` is a symlink to `../../../../../tmp/x`, outside the package",
        ),
        (
            "symlink-zigzag.tar",
            package_with(vec![symlink("z", "bin/../../tmp")]),
            "entry `z` is a symlink to `bin/../../tmp`: `..` may only stand at the start",
        ),
        (
            "write-through-symlink.tar",
            package_with(vec![symlink("lnk", "bin"), file("lnk/pwned", b"x")]),
            "entry `lnk/pwned` lies below the symlink `lnk`",
        ),
        (
            "hard-link-out.tar",
            package_with(vec![hard_link("h", "/etc/swpush/known_servers")]),
            "entry `h` is a hard link",
        ),
        (
            "hard-link-in.tar",
            package_with(vec![hard_link("h", "bin/hello")]),
            "entry `h` is a hard link",
        ),
        (
            "char-device.tar",
            package_with(vec![special("null", CHAR)]),
            "entry `null` is a device file",
        ),
        (
            "block-device.tar",
            package_with(vec![special("disk", BLOCK)]),
            "entry `disk` is a device file",
        ),
        (
            "fifo.tar",
            package_with(vec![special("fifo", FIFO)]),
            "entry `fifo` is a fifo",
        ),
        (
            "sparse.tar",
            package_with(vec![entry(b"holes", GNU_SPARSE, b"", b"data")]),
            "entry `holes` has an unsupported type",
        ),
        (
            "setuid.tar",
            package_with(vec![file("bin/su", b"x").mode(0o4755)]),
            "entry `bin/su` has a setuid or setgid bit",
        ),
        (
            "setgid-dir.tar",
            package_with(vec![dir("shared/").mode(0o2775)]),
            "entry `shared/` has a setuid or setgid bit",
        ),
        (
            "pax-path-climbs.tar",
            package_with(vec![
                entry(
                    b"PaxHeaders/ok",
                    PAX,
                    b"",
                    &pax_record("path", "../../tmp/x"),
                ),
                file("ok", b"x"),
            ]),
            "entry `../../tmp/x` has a `..` component",
        ),
        (
            "pax-linkpath-absolute.tar",
            package_with(vec![
                entry(b"PaxHeaders/ok", PAX, b"", &pax_record("linkpath", "/etc")),
                symlink("ok", "bin"),
            ]),
            "entry `ok` is a symlink to the absolute path `/etc`",
        ),
        (
            "gnu-long-name-absolute.tar",
            package_with(vec![
                entry(b"././@LongLink", GNU_LONGNAME, b"", b"/opt/escape\0"),
                file("ok", b"x"),
            ]),
            "entry `/opt/escape` is an absolute path",
        ),
        (
            "newline.tar",
            package_with(vec![file("a\nb", b"x")]),
            "entry `a\\nb` contains a control character",
        ),
        (
            "duplicate.tar",
            package_with(vec![file("./bin/hello", b"other")]),
            "entry `./bin/hello` appears twice in the archive",
        ),
        (
            "huge-manifest.tar",
            tar_of(&[file(
                "swpush.yaml",
                &[MANIFEST, b"description: ", &b"x".repeat(70_000), b"\n"].concat(),
            )]),
            "swpush.yaml is larger than 64 KiB",
        ),
        (
            "bad-name.tar",
            hooked(b"name: Hello\nversion: 1\n", vec![]),
            "swpush.yaml:1:7: name `Hello` must match [a-z0-9][a-z0-9._+-]{0,63}",
        ),
        (
            "unknown-manifest-key.tar",
            hooked(b"name: hello\nversion: 1\nowner: me\n", vec![]),
            "swpush.yaml:3:1: unknown field `owner`",
        ),
        (
            "no-manifest.tar",
            tar_of(&[file("bin/hello", b"x")]),
            "has no swpush.yaml at its root",
        ),
        (
            "hook-missing.tar",
            hooked(
                b"name: hello\nversion: 1\nhooks:\n  post_install: hooks/post.sh\n",
                vec![],
            ),
            "swpush.yaml: hook `post_install` names `hooks/post.sh`, which is not a regular file in the package",
        ),
        (
            "hook-outside.tar",
            hooked(
                b"name: hello\nversion: 1\nhooks:\n  pre_install: ../x\n",
                vec![file("x", b"x")],
            ),
            "swpush.yaml:4:16: hook `pre_install` path has a `..` component",
        ),
        (
            "hook-absolute.tar",
            hooked(
                b"name: hello\nversion: 1\nhooks:\n  pre_install: /bin/sh\n",
                vec![],
            ),
            "swpush.yaml:4:16: hook `pre_install` path is an absolute path",
        ),
        (
            "hook-symlink.tar",
            hooked(
                b"name: hello\nversion: 1\nhooks:\n  pre_install: run\n",
                vec![symlink("run", "bin/hello"), file("bin/hello", b"x")],
            ),
            "hook `pre_install` names `run`, which is not a regular file in the package",
        ),
        (
            "cut-mid-entry.tar",
            good[..1100].to_vec(),
            "is truncated or corrupt",
        ),
        (
            "cut-at-boundary.tar",
            good[..good.len() - 1024].to_vec(),
            "is truncated: the archive has no end-of-archive marker",
        ),
        (
            "cut.tar.gz",
            {
                // Cut inside a big entry, well after the manifest.
                let g = gzip(&package_with(vec![file("noise", &noise(200_000))]));
                g[..g.len() / 2].to_vec()
            },
            "is truncated or corrupt",
        ),
        ("bad-crc.tar.gz", bad_crc, "corrupt"),
        (
            "cut.tar.zst",
            {
                let z = zstd::encode_all(&good[..], 3).unwrap();
                z[..z.len() - 8].to_vec()
            },
            "",
        ),
        (
            "really-xz.tar.gz",
            [&b"\xfd7zXZ\0\0\x04\xe6\xd6\xb4\x46"[..], &[0; 200]].concat(),
            "is compressed with xz or bzip2",
        ),
        (
            "really-bzip2.tar",
            [&b"BZh91AY&SY"[..], &[7; 200]].concat(),
            "is compressed with xz or bzip2",
        ),
        (
            "plain-text.tar.gz",
            b"This is a text file that someone named .tar.gz by mistake.\n".repeat(20),
            "is not a tar archive (nor a gzip or zstd compressed one)",
        ),
        (
            "gzipped-text.tar.gz",
            gzip(&b"gzip of a text file, not of a tar archive\n".repeat(40)),
            "is not a tar archive",
        ),
        (
            "lying-bomb.tar.gz",
            lying_bomb,
            "is truncated or corrupt: the archive ends in the middle of an entry",
        ),
        ("empty.tar.gz", Vec::new(), "is empty, not a package"),
    ]
}

#[test]
fn hostile_packages_are_refused_before_connecting() {
    let world = world();
    let tripwire = Tripwire::new();
    let inventory = world.fleet.dir().join("inventory-pkgguard.yaml");
    std::fs::write(&inventory, guarded_yaml(world, "pkgguard", &tripwire)).unwrap();
    let dir = world.fleet.dir().join("hostile-packages");
    std::fs::create_dir_all(&dir).unwrap();

    let mut cases: Vec<(String, PathBuf, &str)> = Vec::new();
    let table = hostile_packages();
    assert!(table.len() >= 15);
    for (name, bytes, says) in &table {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        cases.push((name.to_string(), path, says));
    }
    // A directory given as the package, and a package that is not there.
    let folder = dir.join("a-folder.tar.gz");
    std::fs::create_dir_all(&folder).unwrap();
    cases.push((
        "directory".into(),
        folder,
        "is a directory; build a package from it with `swpush pack`",
    ));
    cases.push(("missing".into(), dir.join("missing.tar.gz"), "no such file"));

    for (case, path, says) in &cases {
        let output = install(world, &inventory, path, &[]);
        let prefix = format!("error: {}: ", path.display());
        assert_refused(&output, case, &prefix, says);
        tripwire.assert_untouched(case);
    }
    assert_guard_untouched(world, "pkgguard", "hostile packages");
}

// --- 2. inventories the controller refuses before connecting ----------------

/// 1-based line and column of the last occurrence of `needle` in `text`.
fn position_of_last(text: &str, needle: &str) -> (usize, usize) {
    let at = text
        .rfind(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in {text}"));
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    (text[..at].matches('\n').count() + 1, at - line_start + 1)
}

#[test]
fn broken_inventories_are_refused_before_connecting() {
    let world = world();
    let tripwire = Tripwire::new();
    let good = guarded_yaml(world, "invguard", &tripwire);
    let port = tripwire.port();
    let guard = world.fleet.host("invguard").addr;
    let key = world.fleet.login_key().display().to_string();
    let laughs = {
        let mut yaml = String::from(
            "lol0: &l0 [\"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\"]\n",
        );
        for i in 1..9 {
            let p = i - 1;
            yaml += &format!(
                "lol{i}: &l{i} [*l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}]\n"
            );
        }
        yaml + &good
    };
    // (case, inventory text, extra options, where: the error points at the
    // last occurrence of this text, what it says)
    type Case<'a> = (&'a str, String, Vec<&'a str>, Option<&'a str>, &'a str);
    let table: Vec<Case> = vec![
        (
            "broken-yaml",
            format!("{good}  web3: {{address: 127.0.0.1\n"),
            vec![],
            Some("{address: 127.0.0.1\n"),
            "unclosed bracket",
        ),
        (
            "unknown-key",
            format!("{good}  web3: {{adress: 127.0.0.1}}\n"),
            vec![],
            Some("adress"),
            "unknown field `adress`, expected one of address, port",
        ),
        (
            "unknown-top-level-key",
            format!("{good}host:\n  web3: {{}}\n"),
            vec![],
            Some("host:\n"),
            "unknown field `host`",
        ),
        (
            "port-not-a-number",
            format!("{good}  web3: {{address: 127.0.0.1, port: many}}\n"),
            vec![],
            Some("many"),
            "`port`: expected a whole number from 0 to 65535",
        ),
        (
            "become-not-a-bool",
            format!("{good}  web3: {{address: 127.0.0.1, become: maybe}}\n"),
            vec![],
            Some("maybe"),
            "`become`: expected true or false",
        ),
        (
            "duplicate-host",
            format!("{good}  tripwire: {{address: 127.0.0.2}}\n"),
            vec![],
            Some("tripwire: {address: 127.0.0.2"),
            "`tripwire` appears twice",
        ),
        (
            "group-names-unknown-host",
            format!("{good}groups:\n  web: [tripwire, web9]\n"),
            vec![],
            Some("web9"),
            "group `web` names unknown host `web9`",
        ),
        (
            "group-named-like-a-host",
            format!("{good}groups:\n  tripwire: [invguard]\n"),
            vec![],
            Some("tripwire: ["),
            "group `tripwire` has the name of a host",
        ),
        (
            "bad-host-name",
            format!("{good}  \"web 3\": {{address: 127.0.0.1}}\n"),
            vec![],
            Some("\"web 3\""),
            "host name `web 3` may not be empty, start with `!&~@`, or contain spaces",
        ),
        (
            "host-name-with-a-glob",
            format!("{good}  \"web*\": {{address: 127.0.0.1}}\n"),
            vec![],
            Some("\"web*\""),
            "host name `web*` may not",
        ),
        (
            "relative-prefix",
            format!("{good}  web3: {{address: 127.0.0.1, prefix: opt/x}}\n"),
            vec![],
            Some("opt/x"),
            "`prefix` must be an absolute path without `..`, got `opt/x`",
        ),
        (
            "known-servers-with-dotdot",
            format!("{good}  web3: {{address: 127.0.0.1, known_servers: /etc/../tmp/ks}}\n"),
            vec![],
            Some("/etc/../tmp/ks"),
            "`known_servers` must be an absolute path without `..`",
        ),
        (
            "keep-no-release",
            format!("{good}  web3: {{address: 127.0.0.1, keep_releases: 0}}\n"),
            vec![],
            Some("0}\n"),
            "`keep_releases` must be at least 1",
        ),
        (
            "empty",
            String::new(),
            vec![],
            None,
            "the inventory is empty",
        ),
        (
            "no-hosts",
            "defaults:\n  user: root\nhosts: {}\n".into(),
            vec![],
            None,
            "the inventory lists no hosts",
        ),
        (
            "ansible-bad-port",
            format!(
                "all:\n  vars:\n    ansible_user: root\n    ansible_ssh_private_key_file: \"{key}\"\n  hosts:\n    \
                 tripwire: {{ansible_host: 127.0.0.1, ansible_port: {port}}}\n    \
                 invguard: {{ansible_host: {guard}, ansible_port: 70000}}\n"
            ),
            vec![],
            Some("70000"),
            "`ansible_port`: expected a whole number from 0 to 65535",
        ),
        (
            "ansible-port-text",
            format!(
                "all:\n  hosts:\n    tripwire: {{ansible_host: 127.0.0.1, ansible_port: {port}}}\n  \
                 children:\n    web:\n      vars: {{ansible_port: twenty-two}}\n      hosts:\n        invguard:\n"
            ),
            vec![],
            Some("twenty-two"),
            "`ansible_port`: expected a whole number",
        ),
        (
            "alias-bomb",
            laughs,
            vec![],
            Some("*l4, *l4, *l4, *l4, *l4, *l4, *l4, *l4, *l4, *l4]"),
            "budget",
        ),
        (
            "limit-matches-nothing",
            good.clone(),
            vec!["--limit", "web9"],
            None,
            "`web9` matches no host or group in the inventory",
        ),
        (
            "limit-exclusion-typo",
            good.clone(),
            vec!["--limit", "!tripwyre"],
            None,
            "`!tripwyre` matches no host or group",
        ),
    ];
    assert!(table.len() >= 10);
    let dir = world.fleet.dir().join("broken-inventories");
    std::fs::create_dir_all(&dir).unwrap();
    for (case, yaml, more, at, says) in &table {
        let path = dir.join(format!("{case}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        let output = install(world, &path, &world.hello, more);
        let prefix = match (at, case.starts_with("limit-")) {
            (_, true) => "error: --limit: ".to_owned(),
            (Some(needle), _) => {
                let (line, column) = position_of_last(yaml, needle);
                format!("error: {}:{line}:{column}: ", path.display())
            }
            (None, _) => format!("error: {}: ", path.display()),
        };
        assert_refused(&output, case, &prefix, says);
        tripwire.assert_untouched(case);
    }

    // Not valid UTF-8, a missing file and a folder, named as such.
    let odd: [(&str, PathBuf, &str); 3] = [
        ("not-utf8", dir.join("latin1.yaml"), "is not UTF-8 text"),
        ("missing", dir.join("missing.yaml"), "no such file"),
        (
            "folder",
            dir.clone(),
            "is a directory, not an inventory file",
        ),
    ];
    std::fs::write(&odd[0].1, [good.as_bytes(), b"  caf\xe9: {}\n"].concat()).unwrap();
    for (case, path, says) in &odd {
        let output = install(world, path, &world.hello, &[]);
        assert_refused(&output, case, &format!("error: {}: ", path.display()), says);
        tripwire.assert_untouched(case);
    }

    // The same inventory without its mistake does reach the hosts: the
    // tripwire is live, so the checks above prove something.
    let path = dir.join("good.yaml");
    std::fs::write(&path, &good).unwrap();
    let mut run = swpush_command(
        &world.fleet,
        &install_args(world, &path, &world.hello, &["--limit", "tripwire"]),
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let connected = loop {
        match tripwire.0.accept() {
            // Hanging up at once makes the host `unreachable` without a wait.
            Ok((stream, _)) => {
                drop(stream);
                break true;
            }
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => break false,
        }
    };
    let status = run.wait().unwrap();
    assert!(connected, "a good inventory connects to the tripwire");
    assert_eq!(status.code(), Some(2), "the tripwire host is unreachable");
    assert_guard_untouched(world, "invguard", "broken inventories");
}

// --- 3. the client's own refusal, the controller's checks bypassed -----------

/// A hostile archive fed straight to the client step, and the refusal that
/// each client's tar leads to. Where the step can only say what tar said (a
/// stripped `/` or `..`), the entry's name is not in the message.
struct ClientCase {
    name: &'static str,
    archive: Vec<u8>,
    gnu: &'static str,
    busybox: &'static str,
}

fn client_cases() -> Vec<ClientCase> {
    let case = |name, archive, gnu, busybox| ClientCase {
        name,
        archive,
        gnu,
        busybox,
    };
    vec![
        case(
            "absolute",
            package_with(vec![file("/opt/escape", b"pwned\n")]),
            "entry `/opt/escape` is an absolute path",
            "tar warns about the package: tar: removing leading '/' from member names",
        ),
        case(
            "dotdot",
            gzip(&package_with(vec![file(
                "../../../../../../../../tmp/x",
                b"pwned\n",
            )])),
            "entry `../../../../../../../../tmp/x` has a `..` component",
            "removing leading '../../../../../../../../' from member names",
        ),
        case(
            "symlink-absolute",
            package_with(vec![symlink("esc", "/etc/swpush/pwned")]),
            "entry `esc` is a symlink to an absolute path",
            "entry `esc` is a symlink to an absolute path",
        ),
        case(
            "symlink-climbs",
            package_with(vec![symlink("bin/up", "../../../../../../tmp/x")]),
            "entry `bin/up` is a symlink outside the package",
            "entry `bin/up` is a symlink outside the package",
        ),
        case(
            "write-through-absolute-symlink",
            gzip(&package_with(vec![
                symlink("lnk", "/etc/swpush"),
                file("lnk/pwned", b"pwned\n"),
            ])),
            "entry `lnk` is a symlink to an absolute path",
            "entry `lnk` is a symlink to an absolute path",
        ),
        case(
            "write-through-climbing-symlink",
            package_with(vec![
                symlink("up", "../../../../../../../opt"),
                file("up/escape", b"pwned\n"),
            ]),
            "entry `up` is a symlink outside the package",
            "entry `up` is a symlink outside the package",
        ),
        case(
            "write-through-inside-symlink",
            package_with(vec![symlink("lnk", "bin"), file("lnk/pwned", b"pwned\n")]),
            "entry `lnk/pwned` lies below the symlink or file `lnk`",
            "entry `lnk/pwned` lies below the symlink or file `lnk`",
        ),
        case(
            "hard-link-out",
            package_with(vec![
                hard_link("h", "/etc/swpush/known_servers").mode(0o666),
            ]),
            "entry `h` is a hard link",
            "entry `h` is a hard link or breaks the listing",
        ),
        case(
            "hard-link-in",
            gzip(&package_with(vec![hard_link("h", "bin/hello")])),
            "entry `h` is a hard link",
            "entry `h` is a hard link or breaks the listing",
        ),
        case(
            "device",
            package_with(vec![special("null", CHAR)]),
            "entry `null` is not a regular file, directory or symlink",
            "entry `null` is not a regular file, directory or symlink",
        ),
        case(
            "fifo",
            package_with(vec![special("fifo", FIFO)]),
            "entry `fifo` is not a regular file, directory or symlink",
            "entry `fifo` is not a regular file, directory or symlink",
        ),
        case(
            "duplicate",
            package_with(vec![file("./bin/hello", b"#!/bin/sh\necho other\n")]),
            "entry `./bin/hello` appears twice in the archive",
            "entry `./bin/hello` appears twice in the archive",
        ),
        case(
            "setuid",
            gzip(&package_with(vec![file("bin/su", b"x").mode(0o4755)])),
            "entry `bin/su` has a setuid or setgid bit",
            "entry `bin/su` has a setuid or setgid bit",
        ),
        case(
            "not-utf8",
            package_with(vec![entry(b"lat\xe9", FILE, b"", b"x")]),
            "entry `lat\\351` is not UTF-8",
            "entry `lat\\351` is not UTF-8",
        ),
        case(
            "c1-control",
            package_with(vec![entry(b"c1\xc2\x85x", FILE, b"", b"x")]),
            "entry `c1\\302\\205x` contains a control character",
            "entry `c1\\302\\205x` contains a control character",
        ),
        case(
            "gnu-sparse",
            with_sparse_member(gnu_sparse_member()),
            "entry `bin/sparse` is a sparse file",
            "the package has a sparse file (GNU format)",
        ),
        case(
            "gnu-sparse-without-holes",
            package_with(vec![entry(b"bin/dense", GNU_SPARSE, b"", b"pwned\n")]),
            "the package has a sparse file (GNU format)",
            "the package has a sparse file (GNU format)",
        ),
        case(
            "pax-sparse",
            with_sparse_member(pax_sparse_member()),
            "the package has a sparse file (pax format)",
            "the package has a sparse file (pax format)",
        ),
        case(
            "hidden-after-a-lone-zero-block",
            hidden_after_lone_zero_block(&[
                symlink("lnk", "/etc/swpush"),
                file("lnk/pwned", b"pwned\n"),
            ]),
            "tar warns about the package: tar: A lone zero block at",
            "entry `lnk` is a symlink to an absolute path",
        ),
    ]
}

/// A plausible package with `member` (whole header and data blocks) after it.
fn with_sparse_member(member: Vec<u8>) -> Vec<u8> {
    let mut out = tar_body(&[
        file("swpush.yaml", MANIFEST),
        dir("bin/"),
        file("bin/hello", b"#!/bin/sh\necho hello\n").mode(0o755),
    ]);
    out.extend(member);
    out.extend_from_slice(&[0; 1024]);
    out
}

/// A GNU sparse member `bin/sparse` (type `S`): 6 bytes, then a 4 KiB hole.
fn gnu_sparse_member() -> Vec<u8> {
    let mut header = tar::Header::new_gnu();
    header.set_path("bin/sparse").unwrap();
    header.set_entry_type(tar::EntryType::GNUSparse);
    header.set_size(6);
    header.set_mode(0o644);
    let gnu = header.as_gnu_mut().unwrap();
    gnu.set_real_size(6 + 4096);
    gnu.sparse[0].set_offset(0);
    gnu.sparse[0].set_length(6);
    header.set_cksum();
    let mut out = header.as_bytes().to_vec();
    out.extend_from_slice(b"pwned\n");
    out.resize(1024, 0);
    out
}

/// A pax 1.0 sparse member without holes, in ustar headers (GNU tar reads
/// pax headers only in that format): GNU tar extracts `bin/sparse`,
/// busybox `GNUSparseFile.0/sparse`, its map and data as one file.
fn pax_sparse_member() -> Vec<u8> {
    let content = b"pwned\n";
    let records = [
        pax_record("GNU.sparse.major", "1"),
        pax_record("GNU.sparse.minor", "0"),
        pax_record("GNU.sparse.name", "bin/sparse"),
        pax_record("GNU.sparse.realsize", &content.len().to_string()),
    ]
    .concat();
    let mut map = format!("1\n0\n{}\n", content.len()).into_bytes();
    map.resize(512, 0);
    let data = [&map[..], content].concat();
    let mut out = Vec::new();
    for (name, kind, data) in [
        ("PaxHeaders/sparse", tar::EntryType::XHeader, &records[..]),
        ("GNUSparseFile.0/sparse", tar::EntryType::Regular, &data[..]),
    ] {
        let mut header = tar::Header::new_ustar();
        header.set_path(name).unwrap();
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out
}

/// The step for `host`, as the controller would start it; under busybox
/// ash with busybox's tools first on PATH when `busybox`.
fn step_command(world: &World, host: &str, busybox: bool) -> String {
    let command = world.step_command(host);
    if !busybox {
        return command;
    }
    // The tools live in the host's private /var/lib, outside every path
    // this test checks for leftovers.
    let tools = "tar sha256sum head od tr cut sed awk mktemp mv ln rm mkdir cat date wc tail grep \
                 dirname sleep chmod chown find";
    command.replacen(
        "/bin/sh -c ",
        &format!(
            "mkdir -p /var/lib/bbtools && for t in {tools}; do ln -sf /bin/busybox /var/lib/bbtools/$t; done; \
             PATH=/var/lib/bbtools:$PATH busybox sh -c "
        ),
        1,
    )
}

/// A valid order for `archive` (name hello, no hooks), signed for `challenge`.
fn framed_order(
    world: &World,
    archive: &[u8],
    version: &str,
    force: bool,
    challenge: &str,
) -> String {
    world.framed_order(
        Change::Install,
        Ordered::Archive(archive),
        "hostile",
        challenge,
        |order| {
            order.version = version.into();
            order.policy.force = force;
        },
    )
}

/// One SSH connection to a fleet host shared by many runs of the step
/// (OpenSSH connection multiplexing): a case costs a session, not a
/// handshake. The master ends when this is dropped, or when the fleet's
/// sshd goes away.
struct Mux {
    master: std::process::Child,
    socket: PathBuf,
    destination: String,
}

impl Mux {
    fn open(world: &World, host: &str) -> Mux {
        let socket = world.fleet.dir().join(format!("mux-{host}"));
        let destination = format!("root@{}", world.fleet.host(host).addr);
        let mut master = ssh_via(world, &socket)
            .args(["-M", "-N", &destination])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        while !socket.exists() {
            assert!(
                Instant::now() < deadline && master.try_wait().unwrap().is_none(),
                "{host}: the ssh master did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Mux {
            master,
            socket,
            destination,
        }
    }

    /// `ssh` running `command` on the host over the shared connection.
    fn run(&self, command: &str) -> Command {
        let mut ssh = ssh_via(world(), &self.socket);
        ssh.args(["-o", "ControlMaster=no", &self.destination, command]);
        ssh
    }
}

impl Drop for Mux {
    fn drop(&mut self) {
        let _ = self.master.kill();
        let _ = self.master.wait();
    }
}

/// `ssh` with the fleet's login key and host keys, and the control `socket`.
fn ssh_via(world: &World, socket: &Path) -> Command {
    let fleet = &world.fleet;
    let mut ssh = Command::new("ssh");
    ssh.args(["-F", "/dev/null", "-o", "BatchMode=yes", "-o"])
        .arg(format!(
            "UserKnownHostsFile={}",
            fleet.known_hosts().display()
        ))
        .args([
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "StrictHostKeyChecking=yes",
        ])
        .args(["-o", "ConnectTimeout=10", "-o", "ControlPersist=no", "-S"])
        .arg(socket)
        .arg("-i")
        .arg(fleet.login_key())
        .args(["-p", &SSH_PORT.to_string()]);
    ssh
}

/// Drives the step by hand (`ssh`, running the step's command) as a
/// controller would, but sends `archive` when the step asks for the
/// package. Returns the completion line (after `swpush done `) and whether
/// the step asked for the package.
fn drive(
    world: &World,
    mut ssh: Command,
    archive: &[u8],
    version: &str,
    force: bool,
) -> (String, bool) {
    let mut child = ssh
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut done = String::new();
    let mut asked = false;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("swpush hello 1 ") {
            let challenge = rest.split(' ').next().unwrap();
            let order = framed_order(world, archive, version, force, challenge);
            stdin.write_all(order.as_bytes()).unwrap();
        } else if let Some(size) = line.strip_prefix("swpush need ") {
            assert_eq!(size, archive.len().to_string());
            asked = true;
            stdin.write_all(archive).unwrap();
        } else if let Some(rest) = line.strip_prefix("swpush done ") {
            done = rest.to_owned();
            break;
        }
    }
    drop(stdin);
    let _ = child.wait();
    (done, asked)
}

/// Nothing of a refused archive is left on `host`: no sentinel, no file in
/// /tmp, nothing new in the cache, and known_servers as it was.
fn assert_nothing_escaped(world: &World, host: &str, case: &str, cache_before: &[String]) {
    let h = world.fleet.host(host);
    for sentinel in SENTINELS {
        assert!(
            std::fs::symlink_metadata(h.path(sentinel)).is_err(),
            "{host} {case}: {sentinel} exists"
        );
    }
    assert!(
        is_empty_dir(&h.path("/tmp")),
        "{host} {case}: leftovers in /tmp: {:?}",
        listing(&h.path("/tmp"))
    );
    assert_eq!(
        listing(&h.path("/var/cache/swpush")),
        cache_before,
        "{host} {case}: the cache changed"
    );
    let known = h.path("/etc/swpush/known_servers");
    assert_eq!(
        std::fs::read_to_string(&known).unwrap(),
        format!("{}\n", world.trust_line),
        "{host} {case}"
    );
    let meta = std::fs::metadata(&known).unwrap();
    assert_eq!(
        (meta.nlink(), meta.mode() & 0o7777),
        (1, 0o644),
        "{host} {case}: known_servers was linked to or its mode changed"
    );
    assert_eq!(
        listing(&h.path("/etc/swpush")),
        ["known_servers"],
        "{host} {case}"
    );
}

fn client_refuses_on_a_fresh_host(host: &str, busybox: bool) {
    let world = world();
    let h = world.fleet.host(host);
    let command = step_command(world, host, busybox);
    let mux = Mux::open(world, host);
    let cases = client_cases();
    assert!(cases.len() >= 8);
    for case in &cases {
        let (done, asked) = drive(world, mux.run(&command), &case.archive, "6.6.6", false);
        let says = if busybox { case.busybox } else { case.gnu };
        assert!(
            asked,
            "{host} {}: the step never asked for the package: {done}",
            case.name
        );
        assert!(
            done.starts_with("rejected - - package refused: "),
            "{host} {}: {done}",
            case.name
        );
        assert!(
            done.contains(says),
            "{host} {}:\n got: {done}\nwant: ...{says}...",
            case.name
        );
        assert_nothing_escaped(world, host, case.name, &[]);
        assert!(
            is_empty_dir(&h.path("/opt")),
            "{host} {}: /opt holds {:?}",
            case.name,
            listing(&h.path("/opt"))
        );
        assert!(
            !h.path("/var/lib/swpush/packages/hello").exists(),
            "{host} {}: a state record was written",
            case.name
        );
    }
}

#[test]
fn the_client_refuses_hostile_archives_itself_with_gnu_tar() {
    client_refuses_on_a_fresh_host("gnu", false);
}

#[test]
fn the_client_refuses_hostile_archives_itself_with_busybox() {
    client_refuses_on_a_fresh_host("bb", true);
}

fn client_refusal_keeps_the_installed_release(host: &str, busybox: bool) {
    let world = world();
    let fleet = &world.fleet;
    let h = fleet.host(host);
    let inventory = one_host_inventory(world, host, &h.addr.to_string());
    let output = install(world, &inventory, &world.hello, &["--format", "json"]);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(0), "{report:#}");
    assert_eq!(report["hosts"][0]["status"], "installed", "{report:#}");

    let state = h.path("/var/lib/swpush/packages/hello");
    let state_before = std::fs::read_to_string(&state).unwrap();
    let cache_before = listing(&h.path("/var/cache/swpush"));
    assert_eq!(cache_before.len(), 1, "hello is cached");
    let command = step_command(world, host, busybox);
    let mux = Mux::open(world, host);
    // Same version, other content, --force: the step goes as far as it can.
    let cases: Vec<ClientCase> = client_cases()
        .into_iter()
        .filter(|c| {
            [
                "dotdot",
                "write-through-absolute-symlink",
                "hard-link-out",
                "duplicate",
            ]
            .contains(&c.name)
        })
        .collect();
    for case in &cases {
        let (done, asked) = drive(world, mux.run(&command), &case.archive, "1.0.0", true);
        let says = if busybox { case.busybox } else { case.gnu };
        assert!(asked, "{host} {}: {done}", case.name);
        assert!(
            done.starts_with("rejected 1.0.0 1.0.0 package refused: "),
            "{host} {}: {done}",
            case.name
        );
        assert!(done.contains(says), "{host} {}: {done}", case.name);
        assert_nothing_escaped(world, host, case.name, &cache_before);
        assert_eq!(
            read_link(world, host, "/opt/swpush/hello/current"),
            "releases/1.0.0",
            "{host} {}",
            case.name
        );
        assert_eq!(
            listing(&h.path("/opt/swpush/hello/releases")),
            ["1.0.0"],
            "{host} {}: no other release, no staging dir",
            case.name
        );
        assert_eq!(
            std::fs::read_to_string(&state).unwrap(),
            state_before,
            "{host} {}",
            case.name
        );
    }
    assert_hello_runs(world, host, "1.0.0");
}

#[test]
fn a_refused_archive_leaves_the_installed_release_current_with_gnu_tar() {
    client_refusal_keeps_the_installed_release("kept-gnu", false);
}

#[test]
fn a_refused_archive_leaves_the_installed_release_current_with_busybox() {
    client_refusal_keeps_the_installed_release("kept-bb", true);
}

// --- modes and owners --------------------------------------------------------

/// `swpush pack` never writes special modes or foreign owners.
#[test]
fn pack_normalises_modes_and_owners() {
    let world = world();
    let src = world.fleet.dir().join("modes-src");
    std::fs::create_dir_all(src.join("shared")).unwrap();
    std::fs::write(src.join("swpush.yaml"), "name: modes\nversion: 1\n").unwrap();
    std::fs::write(src.join("su"), "x").unwrap();
    std::fs::write(src.join("open"), "x").unwrap();
    use std::os::unix::fs::PermissionsExt;
    let set = |name: &str, mode: u32| {
        std::fs::set_permissions(src.join(name), std::fs::Permissions::from_mode(mode)).unwrap()
    };
    set("su", 0o4755);
    set("open", 0o666);
    set("shared", 0o3777);
    std::os::unix::fs::chown(src.join("open"), Some(1000), Some(1000)).unwrap();
    let out = world.fleet.dir().join("modes.tar");
    let packed = swpush(
        &world.fleet,
        &["pack", src.to_str().unwrap(), "-o", out.to_str().unwrap()],
    );
    assert!(packed.status.success(), "{}", text(&packed.stderr));
    let mut archive = tar::Archive::new(std::fs::File::open(&out).unwrap());
    let mut seen = Vec::new();
    for e in archive.entries().unwrap() {
        let e = e.unwrap();
        let h = e.header();
        seen.push((
            e.path().unwrap().display().to_string(),
            h.mode().unwrap(),
            h.uid().unwrap(),
            h.gid().unwrap(),
        ));
    }
    assert_eq!(
        seen,
        [
            ("open".to_owned(), 0o644, 0, 0),
            ("shared/".to_owned(), 0o755, 0, 0),
            ("su".to_owned(), 0o755, 0, 0),
            ("swpush.yaml".to_owned(), 0o644, 0, 0),
        ]
    );
}

/// A foreign archive's owners and group/other write bits (setuid and setgid
/// are refused outright) would give any local user (or uid 1000) a release
/// dir, hook dir or hook that root later runs: the client makes everything
/// root's and removes group/other write after extracting.
#[test]
fn foreign_modes_and_owners_are_made_safe_on_the_client() {
    let world = world();
    let fleet = &world.fleet;
    let host = "modes";
    let h = fleet.host(host);
    let archive = tar_of(&[
        dir("./").mode(0o777),
        file(
            "swpush.yaml",
            b"name: modes\nversion: 1.0.0\nhooks:\n  pre_remove: hooks/remove.sh\n",
        ),
        dir("hooks/").mode(0o777).owner(1000),
        file("hooks/remove.sh", b"#!/bin/sh\necho removing\n")
            .mode(0o666)
            .owner(1000),
        dir("shared/").mode(0o1777),
        file("bin-tool", b"#!/bin/sh\n").mode(0o777).owner(1000),
    ]);
    let package = fleet.dir().join("modes-1.0.0.tar");
    std::fs::write(&package, &archive).unwrap();
    let inventory = one_host_inventory(world, host, &h.addr.to_string());
    let output = install(world, &inventory, &package, &["--format", "json"]);
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&output.stderr)));
    assert_eq!(report["hosts"][0]["status"], "installed", "{report:#}");
    let release = "/opt/swpush/modes/releases/1.0.0";
    let stat = |inside: &str| {
        let meta = std::fs::symlink_metadata(h.path(&format!("{release}{inside}"))).unwrap();
        (meta.mode() & 0o7777, meta.uid(), meta.gid())
    };
    assert_eq!(
        stat(""),
        (0o755, 0, 0),
        "the release dir is not world-writable"
    );
    assert_eq!(stat("/hooks"), (0o755, 0, 0));
    assert_eq!(stat("/hooks/remove.sh"), (0o644, 0, 0));
    assert_eq!(stat("/shared"), (0o1755, 0, 0));
    assert_eq!(stat("/bin-tool"), (0o755, 0, 0));
}

// --- bombs ------------------------------------------------------------------

/// A small gzip that expands to a big, valid package: it is read as a
/// stream, in bounded memory, and accepted (the push then goes on; here to
/// an address where nothing listens).
#[test]
fn an_honest_decompression_bomb_is_streamed_in_bounded_memory() {
    let world = world();
    let fleet = &world.fleet;
    const MIB: usize = 64;
    let mut bomb = gzip(&{
        let mut zeros = file("zeros", b"");
        zeros.claimed_size = Some((MIB << 20) as u64);
        tar_body(&[file("swpush.yaml", MANIFEST), zeros])
    });
    bomb.extend(gzip_mebibytes(0, MIB));
    bomb.extend(gzip(&[0; 1024]));
    assert!(bomb.len() < 200 << 10, "{} bytes", bomb.len());
    let package = fleet.dir().join("honest-bomb.tar.gz");
    std::fs::write(&package, &bomb).unwrap();
    let inventory = one_host_inventory(world, "dead", &fleet.dead_address().to_string());
    let args = install_args(world, &inventory, &package, &["--format", "json"]);
    let (output, peak_mib, took) = measured(world, &args);
    assert_eq!(
        output.status.code(),
        Some(2),
        "accepted, then unreachable: {}",
        text(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["hosts"][0]["status"], "unreachable");
    assert!(peak_mib < MIB as u64, "peak {peak_mib} MiB");
    assert!(took < Duration::from_secs(60), "{took:?}");
    eprintln!(
        "honest bomb: {MIB} MiB from {} bytes, peak {peak_mib} MiB, {took:?}",
        bomb.len()
    );
}

/// A header that claims 8 GiB over 16 MiB of zeros: refused as truncated,
/// without holding it in memory.
#[test]
fn a_lying_decompression_bomb_is_refused_in_bounded_memory() {
    let (_, bytes, says) = hostile_packages()
        .into_iter()
        .find(|(name, _, _)| *name == "lying-bomb.tar.gz")
        .unwrap();
    let (peak_mib, took) = refused_alone("lying-bomb-measured.tar.gz", &bytes, says);
    eprintln!(
        "lying bomb: {} bytes, peak {peak_mib} MiB, {took:?}",
        bytes.len()
    );
    assert!(peak_mib < 64, "peak {peak_mib} MiB");
    assert!(took < Duration::from_secs(30), "{took:?}");
}

/// Installs `bytes`, saved as `name`, with an inventory whose only host is
/// a tripwire; checks it is refused before connecting, saying `says`.
/// Returns the controller's peak memory in MiB and the time it took.
fn refused_alone(name: &str, bytes: &[u8], says: &str) -> (u64, Duration) {
    let world = world();
    let package = world.fleet.dir().join(name);
    std::fs::write(&package, bytes).unwrap();
    let tripwire = Tripwire::new();
    let inventory = world.fleet.dir().join(format!("inventory-{name}.yaml"));
    let yaml = format!(
        "hosts:\n  tripwire: {{address: 127.0.0.1, port: {}}}\n",
        tripwire.port()
    );
    std::fs::write(&inventory, yaml).unwrap();
    let args = install_args(world, &inventory, &package, &[]);
    let (output, peak_mib, took) = measured(world, &args);
    eprintln!(
        "{name}: {} bytes, controller peak {peak_mib} MiB, {took:?}",
        bytes.len()
    );
    let prefix = format!("error: {}: ", package.display());
    assert_refused(&output, name, &prefix, says);
    tripwire.assert_untouched(name);
    (peak_mib, took)
}

// --- what the controller accepts today but should not -----------------------

/// A GNU long-name entry is read whole into memory by the tar crate, and a
/// name of any length is accepted: 64 KiB of gzip becomes a 64 MiB name.
#[test]
fn a_long_name_bomb_is_refused_in_bounded_memory() {
    const MIB: usize = 64;
    let mut longname = entry(b"././@LongLink", GNU_LONGNAME, b"", b"");
    longname.claimed_size = Some((MIB << 20) as u64);
    let mut bomb = gzip(&tar_body(&[file("swpush.yaml", MANIFEST), longname]));
    bomb.extend(gzip_mebibytes(b'a', MIB));
    bomb.extend(gzip(&tar_of(&[file("x", b"")])));
    let (peak_mib, took) = refused_alone("long-name-bomb.tar.gz", &bomb, "");
    eprintln!(
        "long-name bomb: {} bytes, peak {peak_mib} MiB, {took:?}",
        bomb.len()
    );
    assert!(peak_mib < 256, "peak {peak_mib} MiB, {took:?}");
}

/// Entries after a lone zero block: the controller stops reading there and
/// never checks them; busybox tar on a client lists and extracts them.
#[test]
fn entries_hidden_after_a_lone_zero_block_are_refused() {
    let archive =
        hidden_after_lone_zero_block(&[symlink("lnk", "/etc"), file("lnk/cron.d/x", b"x")]);
    refused_alone("lone-zero.tar", &archive, "");
}

/// A PAX 1.0 sparse entry: the tar crate sees a regular file named
/// `GNUSparseFile.0/x`; GNU tar sees its `GNU.sparse.name`, `../../../../tmp/x`.
#[test]
fn pax_sparse_files_are_refused() {
    let content = b"pwned\n";
    let records = [
        pax_record("GNU.sparse.major", "1"),
        pax_record("GNU.sparse.minor", "0"),
        pax_record("GNU.sparse.name", "../../../../tmp/x"),
        pax_record("GNU.sparse.realsize", &content.len().to_string()),
    ]
    .concat();
    let mut map = format!("1\n0\n{}\n", content.len()).into_bytes();
    map.resize(512, 0);
    let archive = tar_of(&[
        file("swpush.yaml", MANIFEST),
        entry(b"PaxHeaders/x", PAX, b"", &records),
        file("GNUSparseFile.0/x", &[&map[..], content].concat()),
    ]);
    refused_alone("pax-sparse.tar", &archive, "");
}

/// A gzip package cut short inside its manifest is called "not UTF-8 text"
/// (a plain tar cut there is called truncated).
#[test]
fn a_package_cut_inside_its_manifest_is_called_truncated() {
    let whole = gzip(&package_with(vec![]));
    refused_alone(
        "cut-in-manifest.tar.gz",
        &whole[..whole.len() / 2],
        "is truncated",
    );
}

/// Host fields the inventory takes as they are: an address or user with a
/// newline (which `swpush hosts` prints raw, breaking its table), an address
/// that looks like an option, port 0. Each ends `unreachable` (exit 2) after
/// a connection attempt instead of being refused up front.
#[test]
fn unusable_host_fields_are_refused_before_connecting() {
    let world = world();
    let tripwire = Tripwire::new();
    let good = guarded_yaml(world, "invguard", &tripwire);
    let cases = [
        ("address-newline", "  web3: {address: \"127.0.0.1\\nx\"}\n"),
        (
            "address-option",
            "  web3: {address: \"-oProxyCommand=true\"}\n",
        ),
        (
            "user-newline",
            "  web3: {address: 127.0.0.1, user: \"root\\nx\"}\n",
        ),
        ("port-zero", "  web3: {address: 127.0.0.1, port: 0}\n"),
    ];
    let dir = world.fleet.dir().join("unusable-host-fields");
    std::fs::create_dir_all(&dir).unwrap();
    for (case, line) in cases {
        let path = dir.join(format!("{case}.yaml"));
        std::fs::write(&path, format!("{good}{line}")).unwrap();
        let output = install(world, &path, &world.hello, &["--limit", "web3"]);
        assert_refused(&output, case, &format!("error: {}:", path.display()), "");
        tripwire.assert_untouched(case);
    }
}

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
    let (done, _) = world::drive(world, host, command, &mut answer, world::bytes(bytes));
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

// --- pack never leaves a broken package at OUT ---------------------------------

/// `swpush pack SRC -o OUT` in a mount namespace of its own, after the
/// shell `setup` ran there; returns pack's exit code and stderr, then what
/// OUT's folder holds (`ls -A`) and OUT's content, as seen from inside.
fn pack_in_namespace(setup: &str, src: &Path, out: &Path) -> (i32, String, String, String) {
    let script = format!(
        "{setup}\n\"$1\" pack \"$2\" -o \"$3\" 2>\"$3.err\"; rc=$?\n\
         printf 'rc %s\\n' \"$rc\"; printf 'err %s\\n' \"$(cat \"$3.err\")\"; rm -f \"$3.err\"\n\
         printf 'ls %s\\n' \"$(ls -A \"$(dirname \"$3\")\" | tr '\\n' ' ')\"\n\
         printf 'out %s\\n' \"$(cat \"$3\" 2>/dev/null | head -c 100)\""
    );
    let output = std::process::Command::new("unshare")
        .args(["-m", "--propagation=private", "sh", "-c", &script, "sh"])
        .arg(env!("CARGO_BIN_EXE_swpush"))
        .arg(src)
        .arg(out)
        .env("HOME", world().fleet.home())
        .output()
        .unwrap();
    let said = text(&output.stdout);
    let field = |key: &str| {
        said.lines()
            .find_map(|l| l.strip_prefix(&format!("{key} ")))
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    let code = field("rc").parse().unwrap_or(-1);
    (code, field("err"), field("ls"), field("out"))
}

/// `pack` writes beside OUT and renames only after reading the result
/// back: a package whose check fails (here a source file that lies about
/// its size, as /proc files do, so the archive is misframed) or whose
/// write is cut short (a full disk) never replaces OUT, and no temporary
/// file is left.
#[test]
fn pack_never_leaves_a_broken_package_at_out() {
    let world = world();
    let root = world.fleet.dir().join("pack-out");
    let src = root.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("swpush.yaml"), "name: packed\nversion: 1.0.0\n").unwrap();

    // Read-back failure: OUT holds an earlier package, which must stay.
    std::fs::write(src.join("version"), "").unwrap();
    let out_dir = root.join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = out_dir.join("packed.tar");
    std::fs::write(&out, "the earlier package").unwrap();
    let setup = format!(
        "mount --bind /proc/version '{}'",
        src.join("version").display()
    );
    let (code, err, ls, content) = pack_in_namespace(&setup, &src, &out);
    assert_eq!(code, 1, "refused: {err}");
    assert!(err.starts_with("error: "), "{err}");
    assert_eq!(content, "the earlier package", "OUT unchanged");
    assert_eq!(ls, "packed.tar", "no temporary file left");
    std::fs::remove_file(src.join("version")).unwrap();

    // A full disk: a 64 KiB tmpfs for a package of 1 MiB of noise.
    std::fs::write(src.join("noise"), noise(1 << 20)).unwrap();
    let small = root.join("small");
    std::fs::create_dir_all(&small).unwrap();
    let out = small.join("packed.tar");
    let setup = format!(
        "mount -t tmpfs -o size=64k tmpfs '{0}' && printf 'the earlier package' >'{0}/packed.tar'",
        small.display()
    );
    let (code, err, ls, content) = pack_in_namespace(&setup, &src, &out);
    assert_eq!(code, 1, "refused: {err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert_eq!(content, "the earlier package", "OUT unchanged");
    assert_eq!(ls, "packed.tar", "no temporary file left");
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
    let packages = &host_entry(&report, host)["packages"];
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
