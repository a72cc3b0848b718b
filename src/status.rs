//! `swpush status`: what each host has installed — current version, since
//! when, kept releases — read from the client's state records by a small
//! read-only script. It needs no distribution right (it changes nothing and
//! tells a login no more than the files it could read anyway), takes no
//! lock and never waits for a busy client.

use crate::fleet::{Job, OnHost};
use crate::look::Look;
use crate::order::Op;
use crate::outcome::{InstalledPackage, KeptRelease, Outcome};
use crate::package::manifest::PackageName;
use crate::progress::Phase;
use crate::protocol::run_to_its_end;
use crate::report::RunReport;
use crate::untrusted::{MAX_FIELD, bound};

/// The script: the step's own reading of its records (`state.sh`: where a
/// package's files are, the record layout, which releases are kept), then
/// `status.sh`, whose header says what it prints.
const SCRIPT: &str = concat!(
    include_str!("step/state.sh"),
    include_str!("step/status.sh")
);

/// Asks each host what it has installed (of `name` only, if given).
pub struct StatusQuery {
    pub name: Option<PackageName>,
}

impl Job for StatusQuery {
    async fn run(&self, on: OnHost<'_>) -> Outcome {
        on.progress.phase(Phase::Verifying);
        let host = on.host;
        let args = [
            self.name
                .as_ref()
                .map(|n| n.to_string())
                .unwrap_or_default(),
            host.paths.prefix.clone(),
            host.paths.state_dir.clone(),
        ];
        match run_to_its_end(on, SCRIPT, &args).await {
            Ok((stdout, outcome)) => Outcome {
                packages: Some(parse(&stdout).into()),
                ..outcome
            },
            Err(outcome) => outcome,
        }
    }
}

impl crate::run::Command for StatusQuery {
    fn op(&self) -> Op {
        Op::Status
    }

    /// A status query reads; it needs no lock and leaves no run record.
    fn changes_clients(&self) -> bool {
        false
    }

    fn dry_run(&self) -> bool {
        false
    }

    fn render_text(&self, report: &RunReport, quiet: bool, look: Look) -> String {
        report.render_status_text(quiet, look)
    }
}

/// Most packages kept of one host's answer, and most kept releases of one
/// package: far more than a real host has; a client claiming more is not
/// kept in the report whole.
const MAX_PACKAGES: usize = 10_000;
const MAX_RELEASES: usize = 1_000;

/// The packages the script's lines describe. Every field is the client's
/// word, so each is [bounded](bound) as it is kept.
fn parse(stdout: &str) -> Vec<InstalledPackage> {
    let field = |v: &str| bound(v, MAX_FIELD).into_owned();
    let known = |v: &str| (v != "-").then(|| field(v));
    let mut packages: Vec<InstalledPackage> = Vec::new();
    for line in stdout.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        match words.as_slice() {
            ["swpush", "package", name, version, sha256, since] => {
                if packages.len() >= MAX_PACKAGES {
                    continue;
                }
                packages.push(InstalledPackage {
                    name: field(name),
                    version: field(version),
                    sha256: field(sha256),
                    since: known(since),
                    releases: Vec::new(),
                });
            }
            ["swpush", "release", name, version, sha256, installed] => {
                if let Some(package) = packages
                    .last_mut()
                    .filter(|p| p.name == field(name) && p.releases.len() < MAX_RELEASES)
                {
                    package.releases.push(KeptRelease {
                        version: field(version),
                        sha256: field(sha256),
                        installed: known(installed),
                    });
                }
            }
            _ => {}
        }
    }
    packages
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

        /// Whatever a client answers, each field kept is bounded.
        #[test]
        fn answers_are_kept_bounded(
            lines in prop::collection::vec(
                (
                    prop::sample::select(vec!["swpush package", "swpush release", "swpush", "x"]),
                    prop::collection::vec(
                        prop_oneof![
                            3 => "\\PC{0,8}",
                            1 => "\\PC{1,4}".prop_map(|s| s.repeat(300)),
                        ],
                        0..6,
                    ),
                ),
                0..40,
            ),
        ) {
            let mut stdout = String::new();
            let mut name = String::from("hello");
            for (head, words) in &lines {
                if head == &"swpush package" && !words.is_empty() {
                    name = words[0].clone();
                }
                let words = if head == &"swpush release" && !words.is_empty() {
                    std::iter::once(name.clone()).chain(words[1..].iter().cloned()).collect()
                } else {
                    words.clone()
                };
                stdout += &format!("{head} {}\n", words.join(" "));
            }
            let packages = parse(&stdout);
            prop_assert!(packages.len() <= MAX_PACKAGES);
            for p in &packages {
                let fields = [&p.name, &p.version, &p.sha256].into_iter().chain(p.since.as_ref());
                for field in fields {
                    prop_assert!(field.len() <= MAX_FIELD);
                }
                prop_assert!(p.releases.len() <= MAX_RELEASES);
                for r in &p.releases {
                    prop_assert!(r.version.len() <= MAX_FIELD && r.sha256.len() <= MAX_FIELD);
                }
            }
        }
    }

    #[test]
    fn the_script_runs_nothing_before_main() {
        assert_eq!(
            crate::step::shells::runs_before_main(SCRIPT),
            Vec::<String>::new()
        );
    }

    /// The script reads records as the step writes them (state.sh), under
    /// dash and busybox ash: fields by key, `-` for a missing one, kept
    /// releases in install order, not one whose release dir is gone.
    #[test]
    fn the_script_reads_the_steps_records() {
        let root = std::env::temp_dir().join(format!("swpush-status-{}", std::process::id()));
        let (prefix, state) = (root.join("prefix"), root.join("state"));
        let files = [
            (
                "state/packages/hello",
                "version 1.2.0\nsha256 aa\nprevious 1.1.0\nsince 2026-11-25T10:00:00Z\nrun 0f\n",
            ),
            ("state/packages/other", "version 2\nsha256  x\\y\n"),
            (
                "state/releases/hello/1.0.0",
                "version 1.0.0\nsha256 cc\ninstalled 2026-11-01T10:00:00Z\n",
            ),
            ("state/releases/hello/1.1.0", "version 1.1.0\nsha256 bb\n"),
            (
                "state/releases/hello/1.2.0",
                "version 1.2.0\nsha256 aa\ninstalled 2026-11-25T10:00:00Z\n",
            ),
            ("state/history/hello", "1.0.0\n\n1.1.0\n0.9.0\n1.2.0\n"),
        ];
        for (path, text) in files {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        for release in ["1.1.0", "1.2.0"] {
            std::fs::create_dir_all(prefix.join("hello/releases").join(release)).unwrap();
        }
        let args = [prefix.to_str().unwrap(), state.to_str().unwrap()];
        for shell in &crate::step::shells::SHELLS {
            for (only, want) in [
                (
                    "",
                    "swpush package hello 1.2.0 aa 2026-11-25T10:00:00Z\n\
                     swpush release hello 1.1.0 bb -\n\
                     swpush release hello 1.2.0 aa 2026-11-25T10:00:00Z\n\
                     swpush package other 2  x\\y -\n\
                     swpush done unchanged - - \n",
                ),
                (
                    "other",
                    "swpush package other 2  x\\y -\nswpush done unchanged - - \n",
                ),
                ("none", "swpush done unchanged - - \n"),
            ] {
                let ran = shell.run(&[], SCRIPT, &[&[only][..], &args].concat(), "");
                assert_eq!(
                    (ran.stdout.as_str(), ran.code),
                    (want, Some(0)),
                    "{only:?} under {}: {}",
                    shell.name,
                    ran.stderr
                );
            }
        }
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn reads_packages_and_their_kept_releases() {
        let stdout = "noise\n\
            swpush package hello 1.2.0 aa 2026-11-25T10:00:00Z\n\
            swpush release hello 1.1.0 bb -\n\
            swpush release hello 1.2.0 aa 2026-11-25T10:00:00Z\n\
            swpush package other 2 cc -\n\
            swpush release hello 9 dd -\n\
            swpush done unchanged - - \n";
        let packages = parse(stdout);
        assert_eq!(packages.len(), 2);
        assert_eq!(packages[0].name, "hello");
        assert_eq!(packages[0].since.as_deref(), Some("2026-11-25T10:00:00Z"));
        let kept: Vec<&str> = packages[0]
            .releases
            .iter()
            .map(|r| r.version.as_str())
            .collect();
        assert_eq!(kept, ["1.1.0", "1.2.0"]);
        assert_eq!(packages[0].releases[0].installed, None);
        assert_eq!(
            (packages[1].since.as_ref(), packages[1].releases.len()),
            (None, 0),
            "a release line of another package is not this one's"
        );
    }

    #[test]
    fn a_huge_field_is_kept_cut() {
        let huge = "x".repeat(70_000);
        let stdout = format!(
            "swpush package {huge} {huge} {huge} {huge}\nswpush release {huge} {huge} {huge} {huge}\n"
        );
        let packages = parse(&stdout);
        let p = &packages[0];
        for field in [&p.name, &p.version, &p.sha256, p.since.as_ref().unwrap()] {
            assert_eq!(field.len(), MAX_FIELD);
            assert!(field.ends_with('…'));
        }
        assert_eq!(
            p.releases.len(),
            1,
            "the release of the cut name is still its own"
        );
    }
}
