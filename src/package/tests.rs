//! Package reading and packing, on archives built byte by byte, so that the
//! hostile ones are exactly as an attacker would write them.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::*;
use crate::testing::{
    CHAR, DIR, FIFO, FILE, HARD, RawEntry, SYMLINK, entry, file, gnu_sparse_with_hole, gzip,
    pax_sparse, tar_body, tar_of,
};

const MANIFEST_TEXT: &[u8] =
    b"name: hello\nversion: 1.2.0\nhooks:\n  post_install: hooks/post.sh\n";

/// A good package's archive plus a regular file `name` of the given mode.
fn with_mode(name: &str, mode: u32) -> Vec<u8> {
    let mut entries = good_entries();
    entries.push(file(name, b"x\n").mode(mode));
    tar_of(&entries)
}

/// The entries of a good package, to which a test adds one hostile entry.
fn good_entries() -> Vec<RawEntry> {
    vec![
        entry(b"swpush.yaml", FILE, b"", MANIFEST_TEXT),
        entry(b"hooks/", DIR, b"", b""),
        entry(b"hooks/post.sh", FILE, b"", b"#!/bin/sh\necho post\n"),
        entry(b"bin/hello", FILE, b"", b"#!/bin/sh\necho hello\n"),
    ]
}

/// A good package plus a GNU sparse member `bin/sparse` (type `S`) whose
/// 6 bytes of data are followed by a 4 KiB hole.
fn with_gnu_sparse() -> Vec<u8> {
    with_member(gnu_sparse_with_hole("bin/sparse", b"pwned\n", 4096))
}

/// A good package plus a pax 1.0 sparse member: GNU tar extracts it as
/// `bin/sparse`, busybox and the tar crate see `GNUSparseFile.0/sparse`.
fn with_pax_sparse() -> Vec<u8> {
    with_member(pax_sparse("bin/sparse", b"pwned\n"))
}

/// A good package plus `member` (its headers and data blocks).
fn with_member(member: Vec<u8>) -> Vec<u8> {
    [tar_body(&good_entries()), member, vec![0; 1024]].concat()
}

/// A good package whose names and link target are UTF-8 beyond ASCII.
fn with_utf8_names() -> Vec<u8> {
    let mut entries = good_entries();
    entries.push(entry("données/".as_bytes(), DIR, b"", b""));
    entries.push(entry("données/café.txt".as_bytes(), FILE, b"", b"x"));
    entries.push(entry(
        "lien".as_bytes(),
        SYMLINK,
        "données/café.txt".as_bytes(),
        b"",
    ));
    entries.push(entry("日本/".as_bytes(), DIR, b"", b""));
    tar_of(&entries)
}

fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("swpush-pkg-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn read_bytes(dir: &Path, name: &str, bytes: &[u8]) -> Result<Package, PackageError> {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    read(&path)
}

#[test]
fn reads_good_packages_in_every_format() {
    let dir = scratch("good");
    let plain = tar_of(&good_entries());
    let zst = zstd::encode_all(&plain[..], 3).unwrap();
    for (name, bytes) in [
        ("p.tar", plain.clone()),
        ("p.tar.gz", gzip(&plain)),
        ("p.tar.zst", zst),
    ] {
        let package = read_bytes(&dir, name, &bytes).unwrap();
        assert_eq!(package.manifest.name, "hello", "{name}");
        assert_eq!(package.manifest.version.to_string(), "1.2.0");
        assert_eq!(package.size, bytes.len() as u64);
        use sha2::Digest;
        assert_eq!(package.sha256, hex::encode(sha2::Sha256::digest(&bytes)));
    }
    // `tar -C dir -cf pkg.tar .` writes `./` names and a root entry.
    let dotted = tar_of(&[
        entry(b"./", DIR, b"", b""),
        entry(b"./swpush.yaml", FILE, b"", b"name: hello\nversion: 1\n"),
        entry(b"./lib/", DIR, b"", b""),
        entry(b"./lib/libx.so", SYMLINK, b"libx.so.1", b""),
        entry(b"./lib/up", SYMLINK, b"../swpush.yaml", b""),
    ]);
    assert!(read_bytes(&dir, "dotted.tar", &dotted).is_ok());
    let utf8 = read_bytes(&dir, "utf8.tar", &with_utf8_names());
    assert!(utf8.is_ok(), "{utf8:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn counts_the_unpacked_size_the_order_signs() {
    let dir = scratch("unpacked");
    let plain = tar_of(&good_entries());
    let files: u64 = good_entries()
        .iter()
        .filter(|entry| entry.kind == FILE)
        .map(|entry| entry.data.len() as u64)
        .sum();
    let want = files + 4 * ENTRY_ALLOWANCE;
    // The same whatever the compression: it is the release's size.
    for (name, bytes) in [("u.tar", plain.clone()), ("u.tar.gz", gzip(&plain))] {
        assert_eq!(
            read_bytes(&dir, name, &bytes).unwrap().unpacked_size,
            want,
            "{name}"
        );
    }
    // A root entry and symlinks count their allowance, not their target.
    let dotted = tar_of(&[
        entry(b"./", DIR, b"", b""),
        entry(b"./swpush.yaml", FILE, b"", b"name: hello\nversion: 1\n"),
        entry(b"./up", SYMLINK, b"swpush.yaml", b""),
    ]);
    assert_eq!(
        read_bytes(&dir, "d.tar", &dotted).unwrap().unpacked_size,
        23 + 3 * ENTRY_ALLOWANCE
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// Hostile and broken archives: (name, bytes, what the refusal must say).
/// An empty expectation accepts any refusal (compression-level corruption).
fn hostile_archives() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let with = |extra: RawEntry| {
        let mut entries = good_entries();
        entries.push(extra);
        tar_of(&entries)
    };
    vec![
        (
            "dotdot",
            with(entry(b"../x", FILE, b"", b"x")),
            "entry `../x` has a `..` component",
        ),
        (
            "dotdot-deep",
            with(entry(b"a/../../x", FILE, b"", b"x")),
            "entry `a/../../x` has a `..` component",
        ),
        (
            "absolute",
            with(entry(b"/etc/cron.d/x", FILE, b"", b"x")),
            "entry `/etc/cron.d/x` is an absolute path",
        ),
        (
            "link-absolute",
            with(entry(b"lnk", SYMLINK, b"/etc", b"")),
            "entry `lnk` is a symlink to the absolute path `/etc`",
        ),
        (
            "link-climbs",
            with(entry(b"a/lnk", SYMLINK, b"../../etc", b"")),
            "entry `a/lnk` is a symlink to `../../etc`, outside the package",
        ),
        (
            "link-zigzag",
            with(entry(b"lnk", SYMLINK, b"bin/../../etc", b"")),
            "entry `lnk` is a symlink to `bin/../../etc`: `..` may only stand at the start of a target",
        ),
        (
            "through-link",
            {
                let mut e = good_entries();
                e.push(entry(b"lnk", SYMLINK, b"bin", b""));
                e.push(entry(b"lnk/pwned", FILE, b"", b"x"));
                tar_of(&e)
            },
            "entry `lnk/pwned` lies below the symlink `lnk`",
        ),
        (
            "hardlink-out",
            with(entry(b"h", HARD, b"/etc/hostname", b"")),
            "entry `h` is a hard link",
        ),
        (
            "hardlink-in",
            with(entry(b"h", HARD, b"bin/hello", b"")),
            "entry `h` is a hard link",
        ),
        (
            "device",
            with(entry(b"dev", CHAR, b"", b"")),
            "entry `dev` is a device file",
        ),
        (
            "fifo",
            with(entry(b"fifo", FIFO, b"", b"")),
            "entry `fifo` is a fifo",
        ),
        (
            "setuid",
            with_mode("bin/su", 0o4755),
            "entry `bin/su` has a setuid or setgid bit",
        ),
        (
            "setgid",
            with_mode("bin/sg", 0o2755),
            "entry `bin/sg` has a setuid or setgid bit",
        ),
        (
            "newline",
            with(entry(b"a\nb", FILE, b"", b"x")),
            "entry `a\\nb` contains a control character",
        ),
        (
            "arrow",
            with(entry(b"a -> b", FILE, b"", b"x")),
            "entry `a -> b` contains ` -> `",
        ),
        (
            "duplicate",
            with(entry(b"./bin/hello", FILE, b"", b"x")),
            "entry `./bin/hello` appears twice in the archive",
        ),
        (
            "under-file",
            with(entry(b"bin/hello/x", FILE, b"", b"x")),
            "entry `bin/hello/x` lies below the file `bin/hello`",
        ),
        (
            "not-utf8",
            with(entry(b"lat\xe9", FILE, b"", b"x")),
            "is not UTF-8",
        ),
        (
            "c1-control",
            with(entry(b"c1\xc2\x85x", FILE, b"", b"x")),
            "contains a control character",
        ),
        (
            "gnu-sparse",
            with_gnu_sparse(),
            "is not a valid tar archive",
        ),
        ("pax-sparse", with_pax_sparse(), "has a pax sparse file"),
        (
            "no-manifest",
            tar_of(&[entry(b"bin/hello", FILE, b"", b"x")]),
            "has no swpush.yaml at its root",
        ),
        (
            "bad-manifest",
            tar_of(&[entry(
                b"swpush.yaml",
                FILE,
                b"",
                b"name: Hello\nversion: 1\n",
            )]),
            "swpush.yaml:1:7: name `Hello` must match",
        ),
        (
            "manifest-link",
            tar_of(&[entry(b"swpush.yaml", SYMLINK, b"x", b"")]),
            "swpush.yaml must be a regular file",
        ),
        (
            "hook-missing",
            tar_of(&[entry(b"swpush.yaml", FILE, b"", MANIFEST_TEXT)]),
            "swpush.yaml: hook `post_install` names `hooks/post.sh`, which is not a regular file in the package",
        ),
        (
            "hook-dir",
            tar_of(&[
                entry(b"swpush.yaml", FILE, b"", MANIFEST_TEXT),
                entry(b"hooks/post.sh/", DIR, b"", b""),
            ]),
            "hook `post_install` names `hooks/post.sh`, which is not a regular file",
        ),
        (
            "cut-mid-entry",
            tar_of(&good_entries())[..1700].to_vec(),
            "is truncated or corrupt",
        ),
        (
            "cut-at-boundary",
            {
                let b = tar_of(&good_entries());
                b[..b.len() - 1024].to_vec()
            },
            "is truncated: the archive has no end-of-archive marker",
        ),
        (
            "corrupt-gzip",
            {
                let mut g = gzip(&tar_of(&good_entries()));
                let n = g.len();
                g[n / 2] ^= 0xff;
                g
            },
            "",
        ),
        (
            "cut-gzip",
            {
                let g = gzip(&tar_of(&good_entries()));
                g[..g.len() - 12].to_vec()
            },
            "",
        ),
        (
            "cut-zstd",
            {
                let z = zstd::encode_all(&tar_of(&good_entries())[..], 3).unwrap();
                z[..z.len() - 8].to_vec()
            },
            "",
        ),
        (
            "not-tar",
            b"hello, I am a text file, not a package at all\n".repeat(20),
            "is not a tar archive (nor a gzip or zstd compressed one)",
        ),
        (
            "xz",
            b"\xfd7zXZ\0rest".to_vec(),
            "is compressed with xz or bzip2",
        ),
        ("empty", Vec::new(), "is empty, not a package"),
    ]
}

#[test]
fn refuses_hostile_and_broken_archives() {
    let dir = scratch("hostile");
    let table = hostile_archives();
    assert!(table.len() >= 10);
    for (name, bytes, expected) in table {
        let error = read_bytes(&dir, name, &bytes).expect_err(name).to_string();
        let prefix = format!("{}: ", dir.join(name).display());
        assert!(error.starts_with(&prefix), "{name}: {error}");
        assert!(
            error.contains(expected),
            "{name}\n got: {error}\nwant: {expected}"
        );
        assert!(!error.contains('\n'), "one line: {error}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// A package source folder like `packages/hello`.
fn source_folder(root: &Path) -> PathBuf {
    let src = root.join("src");
    std::fs::create_dir_all(src.join("hooks")).unwrap();
    std::fs::create_dir_all(src.join("bin")).unwrap();
    std::fs::write(src.join("swpush.yaml"), MANIFEST_TEXT).unwrap();
    std::fs::write(src.join("hooks/post.sh"), "#!/bin/sh\necho post\n").unwrap();
    std::fs::write(src.join("bin/hello"), "#!/bin/sh\necho hello\n").unwrap();
    std::fs::set_permissions(
        src.join("bin/hello"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    std::os::unix::fs::symlink("hello", src.join("bin/hi")).unwrap();
    std::fs::hard_link(src.join("bin/hello"), src.join("bin/hello-again")).unwrap();
    src
}

#[test]
fn pack_is_deterministic_in_every_format() {
    let root = scratch("pack-det");
    let src = source_folder(&root);
    for name in ["p.tar", "p.tar.gz", "p.tar.zst"] {
        let first = pack::pack(&src, Some(&root.join(format!("1-{name}")))).unwrap();
        // Touch every file, change modes within the same class: nothing may change.
        std::process::Command::new("touch")
            .args(["-d", "2001-01-01"])
            .arg(src.join("bin/hello"))
            .arg(src.join("swpush.yaml"))
            .status()
            .unwrap();
        std::fs::set_permissions(
            src.join("bin/hello"),
            std::fs::Permissions::from_mode(0o751),
        )
        .unwrap();
        std::fs::set_permissions(
            src.join("hooks/post.sh"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let second = pack::pack(&src, Some(&root.join(format!("2-{name}")))).unwrap();
        assert_eq!(first.sha256, second.sha256, "{name}");
        assert_eq!(
            std::fs::read(&first.path).unwrap(),
            std::fs::read(&second.path).unwrap(),
            "{name}"
        );
    }
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn pack_normalises_entries() {
    let root = scratch("pack-norm");
    let src = source_folder(&root);
    let package = pack::pack(&src, Some(&root.join("p.tar"))).unwrap();
    let mut archive = tar::Archive::new(std::fs::File::open(&package.path).unwrap());
    let mut seen = Vec::new();
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let header = entry.header();
        assert_eq!(
            (
                header.mtime().unwrap(),
                header.uid().unwrap(),
                header.gid().unwrap()
            ),
            (0, 0, 0)
        );
        let kind = header.entry_type();
        assert_ne!(kind, tar::EntryType::Link, "hard links are stored as files");
        seen.push((
            entry.path().unwrap().display().to_string(),
            header.mode().unwrap(),
            kind.as_byte(),
        ));
    }
    let expected = [
        ("bin/", 0o755, DIR),
        ("bin/hello", 0o755, FILE),
        ("bin/hello-again", 0o755, FILE),
        ("bin/hi", 0o777, SYMLINK),
        ("hooks/", 0o755, DIR),
        ("hooks/post.sh", 0o644, FILE),
        ("swpush.yaml", 0o644, FILE),
    ];
    let seen: Vec<(&str, u32, u8)> = seen.iter().map(|(n, m, k)| (n.as_str(), *m, *k)).collect();
    assert_eq!(seen, expected);
    std::fs::remove_dir_all(root).unwrap();
}

/// Names of the entries of the package at `path` (a plain tar).
fn names_in_package(path: &Path) -> Vec<String> {
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
    let entries = archive.entries().unwrap();
    entries
        .map(|entry| entry.unwrap().path().unwrap().display().to_string())
        .collect()
}

#[test]
fn pack_leaves_out_what_is_not_the_software() {
    let root = scratch("pack-skip");
    let src = source_folder(&root);
    let write = |name: &str| {
        let path = src.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "x\n").unwrap();
    };
    for name in [
        ".git/config",
        ".git/objects/ab/cdef",
        "vendor/lib/.git",
        "bin/hello~",
        "bin/.hello.swp",
        "#notes#",
        ".#notes",
        "hello-1.1.0.tar.gz",
        "hello-1.0.0.tar",
        "data/hello-0.9.tar.gz",
        "other-1.0.tar.gz",
        "logs/today",
        "a.log",
        "keep.log",
        "etc/app.conf~",
    ] {
        write(name);
    }
    // The folder's own rules, gitignore syntax: `!` takes back a default.
    std::fs::write(
        src.join(".swpushignore"),
        "logs/\n*.log\n!keep.log\n!etc/app.conf~\nswpush.yaml\n",
    )
    .unwrap();
    let package = pack::pack(&src, Some(&root.join("p.tar"))).unwrap();
    let expected = [
        ".swpushignore",
        "bin/",
        "bin/hello",
        "bin/hello-again",
        "bin/hi",
        "data/",
        "data/hello-0.9.tar.gz",
        "etc/",
        "etc/app.conf~",
        "hooks/",
        "hooks/post.sh",
        "keep.log",
        "other-1.0.tar.gz",
        "swpush.yaml",
        "vendor/",
        "vendor/lib/",
    ];
    assert_eq!(names_in_package(&package.path), expected);

    // A pattern the ignore crate cannot read is named, not skipped over.
    std::fs::write(src.join(".swpushignore"), "bin/[z-a]\n").unwrap();
    let error = pack::pack(&src, Some(&root.join("q.tar")))
        .expect_err("bad glob")
        .to_string();
    assert!(error.contains("cannot use .swpushignore"), "{error}");
    assert!(!error.contains('\n'), "{error}");
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn pack_writes_only_package_file_names() {
    let root = scratch("pack-ending");
    let src = source_folder(&root);
    for name in ["p.zip", "p.tar.bz2", "p.gz", "p"] {
        let error = pack::pack(&src, Some(&root.join(name)))
            .expect_err(name)
            .to_string();
        assert!(
            error.ends_with(
                "cannot be written: a package file ends in .tar, .tar.gz, .tgz, .tar.zst, .tzst"
            ),
            "{name}: {error}"
        );
        assert!(!root.join(name).exists(), "{name}");
    }
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn pack_refuses_what_read_would_refuse() {
    let root = scratch("pack-refuse");
    type Spoil = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, Spoil, &str)> = vec![
        (
            "link-out",
            Box::new(|s: &Path| std::os::unix::fs::symlink("/etc/passwd", s.join("pw")).unwrap()),
            "`pw` is a symlink to the absolute path `/etc/passwd`",
        ),
        (
            "link-up",
            Box::new(|s: &Path| std::os::unix::fs::symlink("../../x", s.join("bin/up")).unwrap()),
            "`bin/up` is a symlink to `../../x`, outside the package",
        ),
        (
            "fifo",
            Box::new(|s: &Path| {
                std::process::Command::new("mkfifo")
                    .arg(s.join("f"))
                    .status()
                    .unwrap();
            }),
            "`f` is a fifo",
        ),
        (
            "newline",
            Box::new(|s: &Path| std::fs::write(s.join("a\nb"), "x").unwrap()),
            "`a\\nb` contains a control character",
        ),
        (
            "no-manifest",
            Box::new(|s: &Path| std::fs::remove_file(s.join("swpush.yaml")).unwrap()),
            "has no swpush.yaml",
        ),
        (
            "no-hook",
            Box::new(|s: &Path| std::fs::remove_file(s.join("hooks/post.sh")).unwrap()),
            "hook `post_install` names `hooks/post.sh`, which is not a regular file in the folder",
        ),
    ];
    for (name, spoil, expected) in cases {
        let case_root = root.join(name);
        let src = source_folder(&case_root);
        spoil(&src);
        let out = case_root.join("out.tar.gz");
        let error = pack::pack(&src, Some(&out)).expect_err(name).to_string();
        assert!(
            error.contains(expected),
            "{name}\n got: {error}\nwant: {expected}"
        );
        assert!(!out.exists(), "{name}: nothing written");
    }
    std::fs::remove_dir_all(root).unwrap();
}

/// Mangled archives in every format give errors, never panics.
#[test]
fn no_archive_panics() {
    let dir = scratch("mangled");
    let plain = tar_of(&good_entries());
    let seeds = [
        plain.clone(),
        gzip(&plain),
        zstd::encode_all(&plain[..], 3).unwrap(),
    ];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for (i, seed) in seeds.iter().enumerate() {
        for round in 0..150 {
            let mut bytes = seed.clone();
            for _ in 0..(next() % 4 + 1) {
                let at = (next() as usize) % bytes.len();
                match next() % 3 {
                    0 => bytes[at] = next() as u8,
                    1 => bytes.truncate(at.max(1)),
                    _ => bytes[at] ^= 1 << (next() % 8),
                }
            }
            let _ = read_bytes(&dir, &format!("m{i}-{round}"), &bytes);
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// The client's own check (`src/step/check_entries.sh`) agrees with the
/// controller's, under dash and busybox ash, with GNU and busybox tar; so
/// does the unpacked size it counts from its listing.
#[test]
fn client_check_agrees_with_the_controller() {
    let dir = scratch("client-check");
    // Entry-policy refusals the client must also make; the rest (manifest,
    // hooks, truncation) the client finds by other means.
    let entry_cases = [
        "dotdot",
        "dotdot-deep",
        "absolute",
        "link-absolute",
        "link-climbs",
        "link-zigzag",
        "through-link",
        "hardlink-out",
        "hardlink-in",
        "device",
        "fifo",
        "newline",
        "arrow",
        "duplicate",
        "under-file",
        "setuid",
        "setgid",
        "not-utf8",
        "c1-control",
        "gnu-sparse",
        "pax-sparse",
    ];
    let mut archives: Vec<(String, Vec<u8>, bool)> = hostile_archives()
        .into_iter()
        .filter(|(name, _, _)| entry_cases.contains(name))
        .map(|(name, bytes, _)| (name.to_owned(), bytes, false))
        .collect();
    assert_eq!(archives.len(), entry_cases.len());
    archives.push(("good".into(), tar_of(&good_entries()), true));
    archives.push((
        "good-dotted".into(),
        tar_of(&[
            entry(b"./", DIR, b"", b""),
            entry(b"./swpush.yaml", FILE, b"", b"name: hello\nversion: 1\n"),
            entry(b"./a b/", DIR, b"", b""),
            entry(b"./a b/c d", FILE, b"", b"x"),
            entry(b"./a b/lnk", SYMLINK, b"../swpush.yaml", b""),
        ]),
        true,
    ));
    archives.push(("good-utf8".into(), with_utf8_names(), true));
    for (name, bytes, good) in &archives {
        let path = dir.join(format!("{name}.tar"));
        std::fs::write(&path, bytes).unwrap();
        for shell in [&["dash"][..], &["busybox", "sh"]] {
            for tar in ["tar", "busybox tar"] {
                // busybox tar is called through a one-line wrapper: check_entries takes one word.
                let tar_cmd = if tar == "tar" {
                    "tar".to_owned()
                } else {
                    let wrapper = dir.join("busybox-tar");
                    std::fs::write(&wrapper, "#!/bin/sh\nexec busybox tar \"$@\"\n").unwrap();
                    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
                        .unwrap();
                    wrapper.display().to_string()
                };
                // busybox grep stops a line at a NUL byte, GNU grep does not:
                // the sparse check must see past one with either.
                for (grep, tools) in GREPS {
                    let work = dir.join("work");
                    let _ = std::fs::remove_dir_all(&work);
                    std::fs::create_dir(&work).unwrap();
                    let call = "check_entries \"$1\" \"$2\" '' \"$3\"";
                    let output = check_entries_sh(shell, tools, call)
                        .arg(&tar_cmd)
                        .arg(&path)
                        .arg(&work)
                        .output()
                        .unwrap();
                    let said = String::from_utf8_lossy(&output.stdout);
                    if *good {
                        let counted = std::fs::read_to_string(work.join("entries.size"));
                        let signed = crate::package::read(&path).unwrap().unpacked_size;
                        assert_eq!(
                            counted.ok().as_deref(),
                            Some(format!("{signed}\n").as_str()),
                            "{name} under {shell:?} with {tar} and {grep}: the unpacked size"
                        );
                    }
                    assert_eq!(
                        output.status.success(),
                        *good,
                        "{name} under {shell:?} with {tar} and {grep}: {said}"
                    );
                    if !good {
                        assert_eq!(
                            said.lines().count(),
                            1,
                            "{name} under {shell:?} with {tar} and {grep}: one line, got {said:?}"
                        );
                    }
                    // Where the rule is the controller's, so is the reason.
                    let reason = match name.as_str() {
                        "not-utf8" => "is not UTF-8",
                        "c1-control" => "contains a control character",
                        "gnu-sparse" | "pax-sparse" => "sparse file",
                        _ => "",
                    };
                    assert!(
                        said.contains(reason),
                        "{name} under {shell:?} with {tar} and {grep}: {said:?} does not say {reason:?}"
                    );
                }
            }
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// The greps a client may have, as `check_entries.sh` is run with them:
/// the system's (GNU), or busybox's defined as a function before it.
const GREPS: [(&str, &str); 2] = [
    ("grep", ""),
    ("busybox grep", "grep() { busybox grep \"$@\"; }; "),
];

/// `SHELL -c 'TOOLS . check_entries.sh; CALL' check`: arguments follow.
fn check_entries_sh(shell: &[&str], tools: &str, call: &str) -> std::process::Command {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/src/step/check_entries.sh");
    let mut command = std::process::Command::new(shell[0]);
    command
        .args(&shell[1..])
        .arg("-c")
        .arg(format!("{tools}. {script}; {call}"))
        .arg("check");
    command
}

/// The client's fast scan for `GNU.sparse.` keys sees them right after a
/// NUL byte (where busybox grep would stop reading the line) with GNU and
/// busybox grep alike, and finds nothing where they are not.
#[test]
fn the_clients_scan_for_sparse_keys_sees_past_nul_bytes() {
    let dir = scratch("sparse-scan");
    let cases: [(&[u8], bool); 4] = [
        (b"\0\0\0GNU.sparse.major=1\n", true),
        (b"ustar\0\x0100GNU.sparse.size=9", true),
        (b"\0GNU.sparsely\nGNU.spars.e\0", false),
        (b"", false),
    ];
    for (i, (bytes, holds)) in cases.iter().enumerate() {
        let path = dir.join(format!("{i}.bin"));
        std::fs::write(&path, bytes).unwrap();
        for shell in [&["dash"][..], &["busybox", "sh"]] {
            for (grep, tools) in GREPS {
                let status = check_entries_sh(shell, tools, "ce_holds GNU.sparse. \"$1\"")
                    .arg(&path)
                    .status()
                    .unwrap();
                assert_eq!(
                    status.success(),
                    *holds,
                    "{bytes:?} under {shell:?} with {grep}"
                );
            }
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}
