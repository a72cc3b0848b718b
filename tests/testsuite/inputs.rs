//! No input panics the controller (docs/security.md): property tests that
//! feed random and mutated input to everything that reads a file or a
//! client — the inventory readers (native and Ansible YAML), the package
//! manifest, the package reader, the step's completion-line parser — and
//! random results to the report renderers. Each property also checks that
//! what comes out is bounded by what went in (or by a fixed cap), so no
//! input makes the controller keep more than it was given.
//!
//! Case counts are small (the machine is shared): the point is a broad
//! sweep on every run, not an exhaustive search.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::sample::Index;
use swpush::inventory::{self, LoadContext};
use swpush::look::Look;
use swpush::outcome::{HostVersion, InstalledPackage, KeptRelease, Outcome, Status};
use swpush::protocol::script_outcome;
use swpush::report::{HostReport, PackageInfo, RunReport};
use swpush::ssh::ScriptOutput;
use swpush::untrusted::{MAX_FIELD, MAX_MESSAGE, is_unsafe};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

const NATIVE: &str = include_str!("../../inventory.example.yaml");

const ANSIBLE: &str = "\
all:
  vars: { ansible_user: admin, ansible_port: 22 }
  hosts:
    web1: { ansible_host: 192.0.2.11 }
    web2:
      ansible_host: 192.0.2.12
      ansible_become: yes
  children:
    db:
      vars: { busy_check: \"pgrep -x pg_dump\", keep_releases: 5 }
      hosts:
        db1: { ansible_host: 192.0.2.21, ansible_ssh_private_key_file: ~/.ssh/db }
    prod:
      children:
        db:
        edge: { hosts: { web2: } }
";

const MANIFEST: &str = include_str!("../../packages/hello/swpush.yaml");

/// One edit of a text: where, what kind, and the text it brings.
fn edits() -> impl Strategy<Value = Vec<(Index, u8, String)>> {
    let piece = prop_oneof![
        "[ :{}\\[\\],\\-?&*!|>'\"#%@`\\n]{0,6}",
        "\\PC{0,12}",
        prop::collection::vec(any::<char>(), 0..8).prop_map(String::from_iter),
        Just("&a [*a, *a, *a]".to_owned()),
        Just("\n  - ".to_owned()),
        // Names past the 255-byte bound, still short enough for a YAML key.
        "[a-z]{250,300}",
    ];
    prop::collection::vec((any::<Index>(), any::<u8>(), piece), 0..8)
}

/// `seed` with `edits` applied: inserts, deletions, duplications and
/// replacements, at character boundaries.
fn mutate(seed: &str, edits: &[(Index, u8, String)]) -> String {
    let mut text: Vec<char> = seed.chars().collect();
    for (at, kind, piece) in edits {
        let len = text.len();
        let i = if len == 0 { 0 } else { at.index(len + 1) };
        let span = usize::from(kind >> 2) % 16;
        let end = (i + span).min(len);
        match kind % 4 {
            0 => {
                text.splice(i..i, piece.chars());
            }
            1 => {
                text.drain(i..end);
            }
            2 => {
                let copy: Vec<char> = text[i..end].to_vec();
                text.splice(i..i, copy);
            }
            _ => {
                text.splice(i..end, piece.chars());
            }
        }
    }
    text.into_iter().collect()
}

/// Random text: anything, or a mutation of `seed`.
fn text_like(seed: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![
        1 => prop::collection::vec(any::<char>(), 0..400).prop_map(String::from_iter),
        4 => edits().prop_map(move |e| mutate(seed, &e)),
    ]
}

fn context() -> LoadContext {
    LoadContext {
        home: None,
        local_user: "root".into(),
    }
}

/// An error is one line, and bounded by the input it quotes.
fn check_error_line(error: &str, input: &str) {
    assert!(!error.contains('\n'), "{error:?}");
    assert!(error.len() <= input.len() + 1024, "{} bytes", error.len());
}

fn check_inventory(text: &str) {
    let path = Path::new("inventory.yaml");
    match inventory::parse(text, path, Path::new("."), &context()) {
        Ok(inventory) => {
            assert!(!inventory.hosts.is_empty());
            assert!(inventory.hosts.len() <= text.len());
            for host in &inventory.hosts {
                assert!(
                    host.name.len() <= 255 && host.address.len() <= 255,
                    "{host:?}"
                );
                assert!(!host.name.chars().any(is_unsafe), "{:?}", host.name);
            }
        }
        Err(error) => check_error_line(&error.message, text),
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn native_inventories_never_panic(text in text_like(NATIVE)) {
        check_inventory(&text);
    }

    #[test]
    fn ansible_inventories_never_panic(text in text_like(ANSIBLE)) {
        check_inventory(&text);
    }

    #[test]
    fn manifests_never_panic(text in text_like(MANIFEST)) {
        match swpush::package::manifest::parse(&text) {
            Ok(manifest) => {
                prop_assert!(swpush::package::manifest::valid_name(&manifest.name));
                prop_assert!(manifest.version.as_str().len() <= 64);
            }
            Err(error) => check_error_line(&error, &text),
        }
    }

    #[test]
    fn completion_lines_are_kept_bounded(
        status in prop_oneof![
            Just("failed".to_owned()),
            Just("installed".to_owned()),
            "\\PC{0,12}",
        ],
        previous in field(),
        version in field(),
        message in prop_oneof![field(), "\\PC{1,20}".prop_map(|s| s.repeat(5_000))],
        noise in text_like("swpush phase installing\nswpush done failed - -\n"),
    ) {
        let line = format!("swpush done {status} {previous} {version} {message}");
        for stdout in [format!("{noise}\n{line}\n"), format!("{line}\n{noise}"), noise.clone()] {
            let output = ScriptOutput { stdout: stdout.into_bytes(), ..ScriptOutput::default() };
            let (Ok((_, outcome)) | Err(outcome)) = script_outcome(Ok(output));
            prop_assert!(outcome.message.len() <= MAX_MESSAGE);
            for version in [&outcome.previous_version, &outcome.version].into_iter().filter_map(|v| v.as_deref()) {
                prop_assert!(version.len() <= MAX_FIELD);
            }
        }
    }
}

/// A field as a client may send it: short, hostile, or huge.
fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z0-9.\\-]{0,12}",
        3 => prop::collection::vec(any::<char>(), 0..40).prop_map(String::from_iter),
        1 => Just("\u{1b}]0;pwned\u{7}\r\u{202e}\u{200b}\u{2028}\u{feff}".to_owned()),
        1 => (0usize..3).prop_map(|n| ["x", "é", "\u{202e}"][n].repeat(70_000)),
    ]
}

fn host_report() -> impl Strategy<Value = HostReport> {
    let package = (
        field(),
        field(),
        field(),
        prop::option::of(field()),
        prop::collection::vec((field(), field()), 0..3),
    )
        .prop_map(|(name, version, sha256, since, kept)| InstalledPackage {
            name,
            version,
            sha256,
            since,
            releases: kept
                .into_iter()
                .map(|(version, sha256)| KeptRelease {
                    version,
                    sha256,
                    installed: None,
                })
                .collect(),
        });
    (
        field(),
        field(),
        prop::sample::select(Status::ALL.to_vec()),
        (prop::option::of(field()), prop::option::of(field())),
        any::<f64>(),
        any::<u64>(),
        field(),
        prop::option::of(prop::collection::vec(package, 0..3)),
    )
        .prop_map(
            |(host, address, status, (previous, version), seconds, sent, message, packages)| {
                let outcome = Outcome {
                    previous_version: HostVersion::said(previous),
                    version: HostVersion::said(version),
                    bytes_sent: sent,
                    message,
                    packages: packages.map(Vec::into_boxed_slice),
                    ..Outcome::status(status, "")
                };
                HostReport {
                    seconds,
                    ..HostReport::new(host, address, outcome)
                }
            },
        )
}

fn run_report() -> impl Strategy<Value = RunReport> {
    (
        prop::option::of((field(), prop::option::of(field()))),
        any::<bool>(),
        prop::collection::vec(host_report(), 0..5),
    )
        .prop_map(|(package, dry_run, hosts)| RunReport {
            op: swpush::order::Op::Install,
            package: package.map(|(name, version)| PackageInfo {
                name,
                version,
                sha256: None,
            }),
            started: "2026-12-02T07:00:00Z".into(),
            finished: "2026-12-02T07:00:01Z".into(),
            dry_run,
            hosts,
        })
}

/// What the report holds in text, for the bound on what is printed.
fn input_size(report: &RunReport) -> usize {
    let package = report.package.as_ref().map_or(0, |p| {
        p.name.len() + p.version.as_ref().map_or(0, String::len)
    });
    report
        .hosts
        .iter()
        .map(|h| {
            let kept: usize = h
                .outcome
                .packages
                .iter()
                .flatten()
                .map(|p| {
                    p.name.len()
                        + p.version.len()
                        + p.since.as_ref().map_or(0, String::len)
                        + p.releases
                            .iter()
                            .map(|r| r.version.len() + 1)
                            .sum::<usize>()
                })
                .sum();
            h.host.len() * (1 + h.outcome.packages.as_ref().map_or(1, |p| p.len()))
                + h.outcome.message.len()
                + h.outcome.previous_version.as_deref().map_or(0, str::len)
                + h.outcome.version.as_deref().map_or(0, str::len)
                + kept
        })
        .sum::<usize>()
        * 2
        + package
}

/// Printed text: nothing a terminal acts on but the line ends, and no
/// more than a few times what it shows.
fn check_printed(text: &str, report: &RunReport) {
    let raw: Vec<char> = text
        .chars()
        .filter(|c| is_unsafe(*c) && *c != '\n')
        .collect();
    assert!(raw.is_empty(), "{raw:?} printed raw");
    // An escape (`\u{7f}`) is at most 6 times the bytes it stands for;
    // padding and words add a bounded amount per row.
    let rows = 4
        + report.hosts.len() * 2
        + report
            .hosts
            .iter()
            .flat_map(|h| h.outcome.packages.iter().flatten())
            .count();
    let bound = 6 * input_size(report) + 400 * rows;
    assert!(
        text.len() <= bound,
        "{} bytes printed of {} shown",
        text.len(),
        input_size(report)
    );
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn reports_render_whatever_they_hold(
        report in run_report(),
        quiet in any::<bool>(),
        ascii in any::<bool>(),
    ) {
        let look = Look { ascii, ..Look::PLAIN };
        let text = report.render_text(quiet, look);
        check_printed(&text, &report);
        prop_assert!(!ascii || text.is_ascii(), "{}", text);
        // One row per host, a summary, and one row per status and message
        // of the hosts not done (hosts alike share a row): no cell breaks a
        // line.
        let alike: std::collections::HashSet<_> = report
            .hosts
            .iter()
            .filter(|h| !h.outcome.status.ok_for_exit())
            .map(|h| (h.outcome.status, h.outcome.message.as_str()))
            .collect();
        let table = if quiet || report.hosts.is_empty() { 0 } else { 2 + report.hosts.len() };
        let block = if alike.is_empty() { 0 } else { 2 + alike.len() };
        prop_assert_eq!(text.lines().count(), table + 1 + block, "{}", text);
        let status = report.render_status_text(quiet, look);
        check_printed(&status, &report);
        prop_assert!(!ascii || status.is_ascii(), "{}", status);
        let json = report.to_json();
        prop_assert!(!json.chars().any(|c| is_unsafe(c) && c != '\n'));
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back["hosts"].as_array().map(Vec::len), Some(report.hosts.len()));
    }
}

// --- the package reader ---------------------------------------------------------

/// packages/hello packed once as `.tar` and as `.tar.gz`, in a folder of
/// this test's own.
fn packed() -> &'static (PathBuf, Vec<u8>, Vec<u8>) {
    static PACKED: std::sync::OnceLock<(PathBuf, Vec<u8>, Vec<u8>)> = std::sync::OnceLock::new();
    PACKED.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("inputs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let hello = Path::new(env!("CARGO_MANIFEST_DIR")).join("packages/hello");
        let tar = swpush::package::pack::pack(&hello, Some(&dir.join("hello.tar"))).unwrap();
        let gz = swpush::package::pack::pack(&hello, Some(&dir.join("hello.tar.gz"))).unwrap();
        (
            dir,
            std::fs::read(tar.path).unwrap(),
            std::fs::read(gz.path).unwrap(),
        )
    })
}

/// `bytes` with `edits`: a byte set, a range cut out, the end cut off.
fn mutate_bytes(bytes: &[u8], edits: &[(Index, u8, u8)]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for (at, kind, value) in edits {
        if out.is_empty() {
            break;
        }
        let i = at.index(out.len());
        match kind % 4 {
            0 | 1 => out[i] = *value,
            2 => {
                out.drain(i..(i + usize::from(*value)).min(out.len()));
            }
            _ => out.truncate(i),
        }
    }
    out
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn packages_never_panic(
        gzip in any::<bool>(),
        edits in prop::collection::vec((any::<Index>(), any::<u8>(), any::<u8>()), 1..6),
        case in any::<u32>(),
    ) {
        let (dir, tar, gz) = packed();
        let (seed, name) = if gzip { (gz, "p.tar.gz") } else { (tar, "p.tar") };
        let bytes = mutate_bytes(seed, &edits);
        let path = dir.join(format!("{case}-{name}"));
        std::fs::write(&path, &bytes).unwrap();
        let read = swpush::package::read(&path);
        std::fs::remove_file(&path).unwrap();
        match read {
            Ok(package) => prop_assert_eq!(package.size, bytes.len() as u64),
            Err(error) => check_error_line(&error.to_string(), &String::from_utf8_lossy(&bytes)),
        }
    }
}
