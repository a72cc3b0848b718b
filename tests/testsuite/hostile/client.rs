//! The client's own refusal of hostile archives, the controller's checks
//! bypassed with a validly signed order, and the modes and owners a
//! package leaves on the client.

use super::*;
use swpush::testing::{gnu_sparse_with_hole, pax_sparse};

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
    gnu_sparse_with_hole("bin/sparse", b"pwned\n", 4096)
}

/// A pax 1.0 sparse member without holes ([`pax_sparse`]): GNU tar
/// extracts `bin/sparse`, busybox `GNUSparseFile.0/sparse`, its map and
/// data as one file.
fn pax_sparse_member() -> Vec<u8> {
    pax_sparse("bin/sparse", b"pwned\n")
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
        wait_until(
            Duration::from_secs(15),
            &format!("{host}: the ssh master started"),
            || {
                assert!(
                    master.try_wait().unwrap().is_none(),
                    "{host}: the ssh master ended"
                );
                socket.exists()
            },
        );
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

/// Drives the step by hand over `ssh` ([`step::drive_over`]), but sends
/// `archive` when the step asks for the package. Returns the completion
/// line (after `swpush done `) and whether the step asked for the package.
fn drive(
    world: &World,
    ssh: Command,
    archive: &[u8],
    version: &str,
    force: bool,
) -> (String, bool) {
    let mut answer = |challenge: &str| framed_order(world, archive, version, force, challenge);
    let (done, written) = step::drive_over(ssh, &mut answer, step::exactly(archive.to_vec()));
    (done, written.is_some())
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
        names_in(&h.path("/tmp"))
    );
    assert_eq!(
        names_in(&h.path("/var/cache/swpush")),
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
        names_in(&h.path("/etc/swpush")),
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
            names_in(&h.path("/opt"))
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
    let report = output.report();
    assert_eq!(output.status.code(), Some(0), "{report:#}");
    assert_eq!(report.hosts[0].status, "installed", "{report:#}");

    let state = h.path("/var/lib/swpush/packages/hello");
    let state_before = std::fs::read_to_string(&state).unwrap();
    let cache_before = names_in(&h.path("/var/cache/swpush"));
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
            names_in(&h.path("/opt/swpush/hello/releases")),
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
    world
        .swpush("pack")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .run()
        .success();
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
    let report = output.report();
    assert_eq!(report.hosts[0].status, "installed", "{report:#}");
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
