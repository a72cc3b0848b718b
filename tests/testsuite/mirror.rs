//! Mirror mode (docs/scaling.md): clients fetch the package over HTTP from
//! the mirror their signed order names, and the controller sends only the
//! order. The servers are real: the distribution's nginx as the origin
//! `swpush publish` fills and as a per-site `proxy_cache` in front of it,
//! and, for what no real server does on purpose, a hostile one that sends
//! bytes for ever or stalls. Every host fetches with the machine's curl.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::OnceLock;

use crate::support::http::{Hostile, Misbehaviour, Nginx};
use crate::support::world::*;

/// 20 for the fleet, the rest one test each.
const FLEET: [&str; 20] = [
    "f01", "f02", "f03", "f04", "f05", "f06", "f07", "f08", "f09", "f10", "f11", "f12", "f13",
    "f14", "f15", "f16", "f17", "f18", "f19", "f20",
];
const CACHED: [&str; 4] = ["c1", "c2", "c3", "c4"];
const HOSTILE: [&str; 7] = ["x1", "x2", "x3", "x4", "x5", "x6", "x7"];
const FALLBACK: &str = "fb1";
/// Hosts without curl: GNU wget (`wg`, `we`) or busybox's (`bg`, `bs`).
const WGET: [&str; 4] = ["wg", "we", "bg", "bs"];

struct Mirrors {
    world: World,
    /// The directory the origin serves; `publish --to` writes into `www/good`.
    www: PathBuf,
    origin: Nginx,
    cache: Nginx,
    endless: Hostile,
    stall: Hostile,
}

fn mirrors() -> &'static Mirrors {
    static MIRRORS: OnceLock<Mirrors> = OnceLock::new();
    MIRRORS.get_or_init(|| {
        let mut hosts: Vec<&str> = FLEET.to_vec();
        hosts.extend(CACHED);
        hosts.extend(HOSTILE);
        hosts.push(FALLBACK);
        hosts.extend(WGET);
        // Their sshd gives sessions a PATH of their own, made below.
        let path = WGET.map(|host| (host, "SetEnv PATH=/opt/tools/bin"));
        let world = World::start_configured(&hosts, &path);
        for host in WGET {
            tools_without_curl(&world, host, host.starts_with('b'));
        }
        // The servers listen on the fleet's own first address.
        let ip = world.fleet.hosts()[0].addr;
        let at = |port| SocketAddr::from((ip, port));
        let www = world.fleet.dir().join("www");
        for dir in [
            "good",
            "empty",
            "tampered/sha256",
            "truncated/sha256",
            "long/sha256",
        ] {
            std::fs::create_dir_all(www.join(dir)).unwrap();
        }
        // /loop/X redirects to /loop/loop/X, and so on for ever.
        let origin = Nginx::origin(
            &world.fleet,
            "origin",
            at(18080),
            &www,
            "location /loop/ { return 302 /loop$uri; }",
        );
        let cache = Nginx::cache(&world.fleet, "cache", at(18081), &origin.url());
        let size = std::fs::metadata(world.hello_at("1.1.0")).unwrap().len();
        let endless = Hostile::start(at(18082), Misbehaviour::Endless, size);
        let stall = Hostile::start(at(18083), Misbehaviour::Stall, size);
        Mirrors {
            world,
            www,
            origin,
            cache,
            endless,
            stall,
        }
    })
}

/// `/opt/tools/bin` on `host`: every command of this machine but curl, and
/// with `busybox` its wget instead of GNU wget.
fn tools_without_curl(world: &World, host: &str, busybox: bool) {
    let bin = world.fleet.host(host).path("/opt/tools/bin");
    std::fs::create_dir_all(&bin).unwrap();
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name();
            let link = bin.join(&name);
            if name == "curl" || (busybox && name == "wget") || link.symlink_metadata().is_ok() {
                continue;
            }
            std::os::unix::fs::symlink(std::path::Path::new(dir).join(&name), link).unwrap();
        }
    }
    if busybox {
        std::os::unix::fs::symlink("/bin/busybox", bin.join("wget")).unwrap();
    }
}

/// `swpush publish PKG --to DIR`: its stdout.
fn publish(world: &World, package: &std::path::Path, to: &std::path::Path) -> String {
    world
        .swpush("publish")
        .arg(package)
        .arg("--to")
        .arg(to)
        .run()
        .success()
}

fn sha256_of(package: &std::path::Path) -> String {
    swpush::package::read(package).unwrap().sha256
}

/// Twenty hosts install from the origin: every one `installed`, the bytes
/// from the mirror (`source`, `url`, `fetch_tool` in the report), none
/// from the controller; a re-run fetches nothing at all.
#[test]
fn a_fleet_of_twenty_installs_from_the_mirror_with_no_bytes_from_the_controller() {
    let m = mirrors();
    let world = &m.world;
    let published = publish(world, &world.hello, &m.www.join("good"));
    let sha = sha256_of(&world.hello);
    assert!(published.contains(&format!("sha256/{sha}")), "{published}");
    assert!(published.contains("published"), "{published}");
    let again = publish(world, &world.hello, &m.www.join("good"));
    assert!(
        again.contains("already published: nothing written"),
        "{again}"
    );

    let inventory = world.fleet_inventory("fleet20", &FLEET, "");
    let mirror = format!("{}/good", m.origin.url());
    let (code, report) = world.push("install", &inventory, &world.hello, &["--mirror", &mirror]);
    assert_eq!(code, 0, "{report:#}");
    let url = format!("{mirror}/sha256/{sha}");
    for host in FLEET {
        let entry = report.host(host);
        assert_eq!(entry.status, "installed", "{entry:#}");
        assert_eq!(entry.bytes_sent, 0, "{entry:#}");
        assert_eq!(entry["source"], "mirror", "{entry:#}");
        assert_eq!(entry["url"], url.as_str(), "{entry:#}");
        assert_eq!(entry["fetch_tool"], "curl", "{entry:#}");
        assert_hello_runs(world, host, "1.0.0");
    }
    assert_eq!(report["bytes_sent"], 0, "{report:#}");
    let path = format!("/good/sha256/{sha}");
    assert_eq!(m.origin.requests_for(&path), FLEET.len());

    let (code, rerun) = world.push("install", &inventory, &world.hello, &["--mirror", &mirror]);
    assert_eq!(code, 0, "{rerun:#}");
    for host in FLEET {
        assert_eq!(rerun.host(host).status, "unchanged");
    }
    assert_eq!(
        m.origin.requests_for(&path),
        FLEET.len(),
        "a re-run fetches nothing"
    );
}

/// A site's cache in front of the origin, named per group in the
/// inventory: the first run through it reaches the origin once for two
/// hosts, a second run (two other hosts) not at all.
#[test]
fn a_site_cache_reaches_the_origin_once_and_then_never() {
    let m = mirrors();
    let world = &m.world;
    let package = world.hello_at("3.0.0");
    publish(world, &package, &m.www.join("good"));
    let sha = sha256_of(&package);
    let path = format!("/good/sha256/{sha}");
    for (run, hosts) in [(1, ["c1", "c2"]), (2, ["c3", "c4"])] {
        let site = format!(
            "groups:\n  site1:\n    hosts: [{}]\n    mirror: \"{}/good\"\n",
            hosts.join(", "),
            m.cache.url()
        );
        let inventory = world.fleet_inventory(&format!("site-{run}"), &hosts, &site);
        let (code, report) = world.push("install", &inventory, &package, &[]);
        assert_eq!(code, 0, "{report:#}");
        for host in hosts {
            let entry = report.host(host);
            assert_eq!(entry.status, "installed", "{entry:#}");
            assert_eq!(entry["source"], "mirror", "{entry:#}");
            assert_eq!(entry.bytes_sent, 0);
        }
        assert_eq!(
            m.origin.requests_for(&path),
            1,
            "run {run}: {:?}",
            m.origin.requests()
        );
    }
    let hits = m
        .cache
        .requests()
        .iter()
        .filter(|line| line.contains(&path) && line.ends_with(" HIT"))
        .count();
    assert!(
        hits >= 2,
        "the second run is served by the cache: {:?}",
        m.cache.requests()
    );
}

/// Each host's mirror is wrong in its own way; every one ends `failed`
/// saying how, keeps 1.0.0 current and leaves nothing behind.
#[test]
fn a_wrong_short_long_missing_endless_stalled_or_looping_mirror_is_refused() {
    let m = mirrors();
    let world = &m.world;
    let old = world.fleet_inventory("hostile-old", &HOSTILE, "");
    let (code, report) = world.push("install", &old, &world.hello, &[]);
    assert_eq!(code, 0, "{report:#}");

    let package = world.hello_at("1.1.0");
    let bytes = std::fs::read(&package).unwrap();
    let sha = sha256_of(&package);
    let object = |dir: &str| m.www.join(dir).join("sha256").join(&sha);
    let mut tampered = bytes.clone();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 1;
    std::fs::write(object("tampered"), &tampered).unwrap();
    std::fs::write(object("truncated"), &bytes[..bytes.len() / 2]).unwrap();
    let mut long = bytes.clone();
    long.extend_from_slice(&[0; 4096]);
    std::fs::write(object("long"), &long).unwrap();

    let origin = m.origin.url();
    let cases = [
        (
            "x1",
            format!("{origin}/tampered"),
            "does not have the signed sha256",
        ),
        ("x2", format!("{origin}/truncated"), "of the signed"),
        ("x3", format!("{origin}/empty"), "404"),
        ("x4", m.endless.url(), "more than the signed"),
        ("x5", m.stall.url(), "the mirror sent nothing for 2 s"),
        ("x6", format!("{origin}/loop"), "redirect"),
        ("x7", format!("{origin}/long"), "more than the signed"),
    ];
    let hosts: Vec<(&str, String)> = cases
        .iter()
        .map(|(host, mirror, _)| {
            let addr = world.fleet.host(host).addr;
            (*host, format!("{addr}, mirror: \"{mirror}\""))
        })
        .collect();
    let inventory = world.inventory("hostile-mirrors", &hosts, "");
    let (code, report) = world.push("upgrade", &inventory, &package, &["--mirror-timeout", "2"]);
    assert_eq!(code, 2, "{report:#}");
    for (host, _, why) in cases {
        let entry = report.host(host);
        assert_eq!(entry.status, "failed", "{host}: {entry:#}");
        assert!(
            entry
                .message
                .contains("cannot fetch the package from the mirror")
                && entry.message.contains(why),
            "{host}: {entry:#}"
        );
        assert_eq!(entry.bytes_sent, 0, "{entry:#}");
        assert_eq!(entry["fetch_tool"], "curl", "{entry:#}");
        assert_hello_runs(world, host, "1.0.0");
        assert_no_temp_left(world, host);
        let cache = world.fleet.host(host).path("/var/cache/swpush/hello");
        assert!(
            !cache.join(&sha).exists(),
            "{host}: nothing of the fetch is kept"
        );
    }
}

/// With `--mirror-fallback` a host whose mirror has no such object is sent
/// the package by the controller, and the report says both.
#[test]
fn with_fallback_a_failed_fetch_is_sent_the_package_over_ssh() {
    let m = mirrors();
    let world = &m.world;
    let empty = format!("{}/empty", m.origin.url());
    let inventory = world.fleet_inventory("fallback", &[FALLBACK], "");
    let (code, report) = world.push(
        "install",
        &inventory,
        &world.hello,
        &["--mirror", &empty, "--mirror-fallback"],
    );
    assert_eq!(code, 0, "{report:#}");
    let entry = report.host(FALLBACK);
    assert_eq!(entry.status, "installed", "{entry:#}");
    assert_eq!(entry["source"], "controller", "{entry:#}");
    assert!(
        entry["fetch_failed"].as_str().unwrap().contains("404"),
        "{entry:#}"
    );
    let size = std::fs::metadata(&world.hello).unwrap().len();
    assert_eq!(entry.bytes_sent, size);
    assert_eq!(report["bytes_sent"], size);
    assert_hello_runs(world, FALLBACK, "1.0.0");
}

/// A mirror URL that cannot be one is refused before any host is
/// contacted, on the command line and in the inventory alike.
#[test]
fn a_bad_mirror_url_is_refused_before_anything_is_contacted() {
    let m = mirrors();
    let world = &m.world;
    let inventory = world.fleet_inventory("bad-mirror", &[FALLBACK], "");
    let run = world
        .push_run(
            "install",
            &inventory,
            &world.hello,
            &["--mirror", "http://u:pw@m.example"],
        )
        .run();
    assert_eq!(run.code(), 1, "{}", run.stderr());
    assert!(
        run.stderr().contains("user or password"),
        "{}",
        run.stderr()
    );

    let bad = world.inventory(
        "bad-mirror-field",
        &[(
            FALLBACK,
            format!(
                "{}, mirror: \"ftp://m.example\"",
                world.fleet.host(FALLBACK).addr
            ),
        )],
        "",
    );
    let run = world.push_run("install", &bad, &world.hello, &[]).run();
    assert_eq!(run.code(), 1);
    assert!(
        run.stderr()
            .contains("`mirror` `ftp://m.example`: a mirror is an http://"),
        "{}",
        run.stderr()
    );
}

/// Hosts without curl fetch with GNU wget or busybox's wget, the same
/// checks holding: a good mirror installs, an endless one is cut at the
/// signed size, a stalled one is given up after `--mirror-timeout`.
#[test]
fn without_curl_a_host_fetches_with_wget_or_busybox_wget() {
    let m = mirrors();
    let world = &m.world;
    publish(world, &world.hello, &m.www.join("good"));
    let good = format!("{}/good", m.origin.url());
    let cases = [
        ("wg", good.clone(), "wget", None),
        ("we", m.endless.url(), "wget", Some("more than the signed")),
        ("bg", good, "busybox-wget", None),
        (
            "bs",
            m.stall.url(),
            "busybox-wget",
            Some("cannot fetch the package from the mirror"),
        ),
    ];
    let hosts: Vec<(&str, String)> = cases
        .iter()
        .map(|(host, mirror, _, _)| {
            let addr = world.fleet.host(host).addr;
            (*host, format!("{addr}, mirror: \"{mirror}\""))
        })
        .collect();
    let inventory = world.inventory("wget", &hosts, "");
    let (code, report) = world.push(
        "install",
        &inventory,
        &world.hello,
        &["--mirror-timeout", "2"],
    );
    assert_eq!(code, 2, "{report:#}");
    for (host, _, tool, failure) in cases {
        let entry = report.host(host);
        assert_eq!(entry["fetch_tool"], tool, "{entry:#}");
        assert_eq!(entry.bytes_sent, 0, "{entry:#}");
        match failure {
            None => {
                assert_eq!(entry.status, "installed", "{entry:#}");
                assert_eq!(entry["source"], "mirror", "{entry:#}");
                assert_hello_runs(world, host, "1.0.0");
            }
            Some(why) => {
                assert_eq!(entry.status, "failed", "{entry:#}");
                assert!(entry.message.contains(why), "{entry:#}");
                assert_settled(world, host, None);
            }
        }
    }
}
