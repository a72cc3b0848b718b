//! Packages the controller refuses before connecting, bombs it reads in
//! bounded memory, and `pack` never leaving a broken package at OUT.

use super::*;
use swpush::testing::{BLOCK, GNU_LONGNAME, PAX, pax_sparse};

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
    let run = install_run(world, &inventory, &package, &["--format", "json"]);
    let (output, peak_mib, took) = measured(run);
    assert_eq!(
        output.status.code(),
        Some(2),
        "accepted, then unreachable: {}",
        text(&output.stderr)
    );
    let report = Report::parse(&output.stdout);
    assert_eq!(report.hosts[0].status, "unreachable");
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
    let (output, peak_mib, took) = measured(install_run(world, &inventory, &package, &[]));
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
    let archive = [
        tar_body(&[file("swpush.yaml", MANIFEST)]),
        pax_sparse("../../../../tmp/x", b"pwned\n"),
        vec![0; 1024],
    ]
    .concat();
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
