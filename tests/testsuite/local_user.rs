//! An unprivileged local user on a client, attacking installs as they run.
//!
//! The attacker is `nobody` (uid 65534, the machine's own user: the test
//! hosts share /etc/passwd with it; no user is added), started on the
//! client while the installs run. It walks everything under the client
//! paths swpush uses, over and over: it opens every file it can for
//! writing (writing its payload at once and keeping the descriptor, to
//! write again once the installs are done), plants a file in every folder
//! it can write to and renames its payload over every file in such a
//! folder. The packages are the ones that used to give it a way in: one
//! whose entries carry uid 65534 (what a CI user's plain `tar czf` makes)
//! and one with 0777/0666 modes, each with a post_install hook that root
//! runs. Nothing the attacker wrote may ever run, nor land in a release:
//! the hook's effect is exactly the package's.
//!
//! Under dash with GNU tar (the real controller pushing) and under busybox
//! ash with busybox's tools (the step driven by hand, as in hostile.rs).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use swpush::order::Change;
use swpush::testing::{RawEntry, dir, file};

use crate::support::world::*;
use crate::support::{step, wait_until};

const HOSTS: &[&str] = &["lu-gnu", "lu-bb"];

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| World::start_trusted(HOSTS))
}

/// The attacker, run as nobody on the client. Prints `ready`, then attacks
/// until /tmp/attack-stop exists, then writes through every descriptor it
/// still holds and prints what it got.
const ATTACKER: &str = r##"
use strict;
use warnings;
use Fcntl qw(O_WRONLY O_CREAT O_EXCL SEEK_SET);
my @roots = qw(/opt /var/cache/swpush /var/lib/swpush /run/swpush /tmp);
my $payload = "#!/bin/sh\necho attacker >>/tmp/attacker-ran\nexit 0\n";
my (%held, %seen);
my ($walks, $writes, $planted, $replaced) = (0, 0, 0, 0);
sub mine { return $_[0] =~ m{^/tmp/(attack|hook-effect)} }
sub visit {
    my ($path) = @_;
    return if mine($path);
    lstat($path) or return;
    return if -l _;
    if (-f _) {
        $seen{$path} = 1;
        return if $held{$path};
        if (sysopen(my $fh, $path, O_WRONLY)) {
            $held{$path} = $fh;
            sysseek($fh, 0, SEEK_SET);
            $writes++ if syswrite($fh, $payload);
        }
        return;
    }
    return unless -d _;
    opendir(my $dh, $path) or return;
    my @names = grep { $_ ne '.' && $_ ne '..' } readdir($dh);
    closedir($dh);
    if ($path =~ m{^/(opt|var|run)/} && -w $path) {
        for my $name (@names) {
            next if $name =~ /^\.attack/;
            my $victim = "$path/$name";
            next if -l $victim || !-f _;
            my $tmp = "$path/.attack.$$";
            next unless sysopen(my $fh, $tmp, O_WRONLY | O_CREAT | O_EXCL, 0755);
            syswrite($fh, $payload);
            close($fh);
            if (rename($tmp, $victim)) { $replaced++ } else { unlink($tmp) }
        }
        if (sysopen(my $fh, "$path/.attacker", O_WRONLY | O_CREAT | O_EXCL, 0777)) {
            syswrite($fh, $payload);
            close($fh);
            $planted++;
        }
    }
    visit("$path/$_") for @names;
}
$| = 1;
print "ready\n";
until (-e '/tmp/attack-stop') {
    $walks++;
    visit($_) for @roots;
    select(undef, undef, undef, 0.002);
}
for my $fh (values %held) {
    sysseek($fh, 0, SEEK_SET);
    $writes++ if syswrite($fh, $payload);
}
my $swpush = grep { m{^/opt/swpush/} } keys %seen;
print "walks $walks seen $swpush held ", scalar(keys %held),
    " writes $writes planted $planted replaced $replaced\n";
print "held $_\n" for sort keys %held;
"##;

/// The attacker, running on `host` as nobody.
struct Attacker {
    child: Child,
    host: &'static str,
}

impl Attacker {
    fn start(world: &World, host: &'static str) -> Attacker {
        let h = world.fleet.host(host);
        std::fs::write(h.path("/tmp/attacker.pl"), ATTACKER).unwrap();
        let _ = std::fs::remove_file(h.path("/tmp/attack-stop"));
        let mut child = world
            .fleet
            .ssh_command(
                host,
                "exec setpriv --reuid=65534 --regid=65534 --clear-groups perl /tmp/attacker.pl",
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut ready = String::new();
        let stdout = child.stdout.as_mut().unwrap();
        let mut byte = [0u8; 1];
        while !ready.ends_with('\n') {
            assert_eq!(
                stdout.read(&mut byte).unwrap(),
                1,
                "{host}: the attacker died"
            );
            ready.push(byte[0] as char);
        }
        assert_eq!(ready, "ready\n", "{host}");
        Attacker { child, host }
    }

    /// Lets the attacker take a few more passes over the finished installs,
    /// then stops it; returns its summary line and the paths it held open.
    fn stop(mut self, world: &World) -> (String, Vec<String>) {
        std::thread::sleep(Duration::from_millis(500));
        let h = world.fleet.host(self.host);
        std::fs::write(h.path("/tmp/attack-stop"), "").unwrap();
        wait_until(
            Duration::from_secs(30),
            &format!("{}: the attacker stopped", self.host),
            || self.child.try_wait().unwrap().is_some(),
        );
        let mut lines = BufReader::new(self.child.stdout.take().unwrap()).lines();
        let summary = lines.next().and_then(Result::ok).unwrap_or_default();
        let held = lines
            .map_while(Result::ok)
            .filter_map(|l| l.strip_prefix("held ").map(str::to_owned))
            .collect();
        (summary, held)
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// --- the packages -------------------------------------------------------------

/// One entry of a hand-made package: name, content (None for a folder),
/// mode and owner.
struct Item {
    name: String,
    content: Option<Vec<u8>>,
    mode: u32,
    owner: u64,
}

const POST: &[u8] = b"#!/bin/sh\nprintf 'post %s\\n' \"$SWPUSH_VERSION\" >>/tmp/hook-effect\n";

/// hello VERSION: a manifest with a post_install hook written early, then
/// enough files (and one big one) that extracting takes a while, every
/// entry with `file_mode`/`dir_mode` and `owner`.
fn package(version: &str, file_mode: u32, dir_mode: u32, owner: u64) -> Vec<Item> {
    let manifest =
        format!("name: hello\nversion: {version}\nhooks:\n  post_install: hooks/post.sh\n");
    let mut items = vec![
        dir_item("./", dir_mode, owner),
        file_item("swpush.yaml", manifest.as_bytes(), file_mode, owner),
        dir_item("hooks/", dir_mode, owner),
        file_item("hooks/post.sh", POST, file_mode, owner),
        dir_item("bin/", dir_mode, owner),
        file_item(
            "bin/hello",
            b"#!/bin/sh\necho hello\n",
            file_mode | 0o111,
            owner,
        ),
        dir_item("data/", dir_mode, owner),
    ];
    for i in 0..400 {
        let text = format!("file {i} of hello {version}\n").repeat(40);
        items.push(file_item(
            &format!("data/f{i:03}"),
            text.as_bytes(),
            file_mode,
            owner,
        ));
    }
    items.push(file_item(
        "data/blob",
        &vec![b'x'; 8 << 20],
        file_mode,
        owner,
    ));
    items
}

fn dir_item(name: &str, mode: u32, owner: u64) -> Item {
    Item {
        name: name.into(),
        content: None,
        mode,
        owner,
    }
}

fn file_item(name: &str, content: &[u8], mode: u32, owner: u64) -> Item {
    Item {
        name: name.into(),
        content: Some(content.to_vec()),
        mode,
        owner,
    }
}

/// The tar stream of `items`, headers exactly as given.
fn tar_of(items: &[Item]) -> Vec<u8> {
    let entries: Vec<RawEntry> = items
        .iter()
        .map(|item| {
            let entry = match &item.content {
                Some(content) => file(&item.name, content),
                None => dir(&item.name),
            };
            entry.mode(item.mode).owner(item.owner)
        })
        .collect();
    swpush::testing::tar_of(&entries)
}

/// What a release of `items` must hold, path → content (None: a folder).
fn expected_tree(items: &[Item]) -> BTreeMap<String, Option<Vec<u8>>> {
    items
        .iter()
        .map(|i| (i.name.trim_end_matches('/').to_owned(), i.content.clone()))
        .map(|(n, c)| (if n == "." { String::new() } else { n }, c))
        .collect()
}

/// What the release folder `root` holds, path → content, and every entry
/// that a user other than root could change (owner, group/other write,
/// setuid/setgid).
fn release_tree(root: &Path) -> (BTreeMap<String, Option<Vec<u8>>>, Vec<String>) {
    fn walk(
        root: &Path,
        at: &Path,
        tree: &mut BTreeMap<String, Option<Vec<u8>>>,
        unsafe_: &mut Vec<String>,
    ) {
        let meta = std::fs::symlink_metadata(at).unwrap();
        let name = at.strip_prefix(root).unwrap().display().to_string();
        if meta.uid() != 0 || meta.gid() != 0 || meta.mode() & 0o6022 != 0 {
            unsafe_.push(format!(
                "{name} ({:o} {}:{})",
                meta.mode(),
                meta.uid(),
                meta.gid()
            ));
        }
        if meta.is_dir() {
            tree.insert(name, None);
            for child in std::fs::read_dir(at).unwrap() {
                walk(root, &child.unwrap().path(), tree, unsafe_);
            }
        } else {
            tree.insert(name, Some(std::fs::read(at).unwrap()));
        }
    }
    let (mut tree, mut unsafe_) = (BTreeMap::new(), Vec::new());
    walk(root, root, &mut tree, &mut unsafe_);
    (tree, unsafe_)
}

fn assert_release_is_the_package(world: &World, host: &str, version: &str, items: &[Item]) {
    let root = world
        .fleet
        .host(host)
        .path(&format!("/opt/swpush/hello/releases/{version}"));
    let (tree, unsafe_) = release_tree(&root);
    assert!(
        unsafe_.is_empty(),
        "{host} {version}: others could change {unsafe_:?}"
    );
    let expected = expected_tree(items);
    let differs: Vec<&String> = expected
        .keys()
        .chain(tree.keys())
        .filter(|k| expected.get(*k) != tree.get(*k))
        .collect();
    assert!(
        differs.is_empty(),
        "{host} {version}: the release is not the package's: {differs:?}"
    );
}

// --- pushing ------------------------------------------------------------------

/// The step command for `op` on `host`, under busybox ash with busybox's
/// tools first on PATH when `busybox` (as hostile.rs does).
fn step_command(world: &World, host: &str, op: Change, busybox: bool) -> String {
    let command = step::with_args(&world.step_command(host), op.as_str(), "hello");
    match busybox {
        true => step::under_busybox(&command, ""),
        false => command,
    }
}

/// Drives the step for `op` of `archive` (hello `version`, post_install
/// hooks/post.sh) on `host` by hand; returns the completion line.
fn drive_step(world: &World, host: &str, op: Change, archive: &[u8], version: &str) -> String {
    let command = step_command(world, host, op, true);
    let mut answer = |challenge: &str| {
        world.framed_order(op, Ordered::Archive(archive), host, challenge, |order| {
            order.version = version.into();
            order.hooks.post_install = Some("hooks/post.sh".into());
            order.issued = "2026-12-02T00:00:00Z".into();
        })
    };
    let (done, _) = step::drive(
        world,
        host,
        &command,
        &mut answer,
        step::bytes(archive.to_vec()),
    );
    done
}

fn local_user_cannot_take_over_installs(host: &'static str, busybox: bool) {
    let world = world();
    let h = world.fleet.host(host);
    // A CI user's `tar czf`: its own uid on every entry, ordinary modes.
    let owned = package("1.0.0", 0o644, 0o755, 65534);
    // Everything writable by everyone, the release root too.
    let open = package("2.0.0", 0o666, 0o777, 0);
    let attacker = Attacker::start(world, host);
    for (op, version, items, status) in [
        (Change::Install, "1.0.0", &owned, "installed"),
        (Change::Upgrade, "2.0.0", &open, "upgraded"),
    ] {
        let archive = tar_of(items);
        if busybox {
            let done = drive_step(world, host, op, &archive, version);
            assert!(
                done.starts_with(&format!("{status} ")),
                "{host} {version}: {done}"
            );
        } else {
            let package = world.fleet.dir().join(format!("local-user-{version}.tar"));
            std::fs::write(&package, &archive).unwrap();
            let inventory = world.fleet_inventory(host, &[host], "");
            let (code, report) = world.push(op.as_str(), &inventory, &package, &[]);
            assert_eq!(
                outcome(&report, host).0,
                status,
                "{host} {version}: {report:#}"
            );
            assert_eq!(code, 0, "{report:#}");
        }
    }
    let (summary, held) = attacker.stop(world);
    eprintln!("{host}: attacker: {summary}");
    // The attacker was there and looking: it walked many times and saw the
    // releases (so a pass of this test is not an attacker that never ran).
    let count = |word: &str| -> u64 {
        summary
            .split(' ')
            .skip_while(|w| *w != word)
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    assert!(count("walks") > 20, "{host}: {summary}");
    assert!(count("seen") > 400, "{host}: {summary}");

    assert!(
        !h.path("/tmp/attacker-ran").exists(),
        "{host}: root ran the attacker's code; it held {} files, first {:?}",
        held.len(),
        &held[..held.len().min(5)]
    );
    assert_eq!(
        std::fs::read_to_string(h.path("/tmp/hook-effect")).unwrap_or_default(),
        "post 1.0.0\npost 2.0.0\n",
        "{host}: the hooks did exactly what the packages say"
    );
    assert_release_is_the_package(world, host, "1.0.0", &owned);
    assert_release_is_the_package(world, host, "2.0.0", &open);
    let swpush_files: Vec<&String> = held.iter().filter(|p| !p.starts_with("/tmp/")).collect();
    assert!(
        swpush_files.is_empty(),
        "{host}: the attacker could write to {} files, first {:?}",
        swpush_files.len(),
        &swpush_files[..swpush_files.len().min(5)]
    );
}

#[test]
fn a_local_user_cannot_take_over_installs_with_gnu_tar() {
    local_user_cannot_take_over_installs("lu-gnu", false);
}

#[test]
fn a_local_user_cannot_take_over_installs_with_busybox() {
    local_user_cannot_take_over_installs("lu-bb", true);
}
