//! `swpush enroll`: the one deliberate act that grants this controller's
//! distribution key the right to distribute on a client, by appending its
//! `known_servers` line (SPEC §5), and recording the client's inventory
//! name beside it (`host_name`), which the step then requires of every
//! order's signed `host`. Idempotent: a key already present is left alone,
//! whatever patterns its line has, and so is a recorded name.

use crate::fleet::{Job, OnHost};
use crate::order::Op;
use crate::outcome::Outcome;
use crate::progress::Phase;
use crate::protocol::run_to_its_end;

/// The script: where the host's name is recorded and how it is read
/// (`trust.sh`, shared with the step), then `enroll.sh`, whose header says
/// what it does and prints.
const SCRIPT: &str = concat!(
    include_str!("step/trust.sh"),
    include_str!("step/enroll.sh")
);

pub struct Enroll {
    /// The whole known_servers line: `PATTERNS namespaces="swpush" KEY COMMENT`.
    pub line: String,
    /// `ssh-ed25519 AAAA...`: how an existing entry for the key is recognised.
    pub key: String,
    /// `--dry-run`: say whether the key would be added; change nothing.
    pub dry_run: bool,
}

impl Job for Enroll {
    async fn run(&self, on: OnHost<'_>) -> Outcome {
        on.progress.phase(Phase::Installing);
        let host = on.host;
        let args = [
            host.paths.known_servers.clone(),
            self.line.clone(),
            self.key.clone(),
            self.dry_run.to_string(),
            host.name.clone(),
        ];
        run_to_its_end(on, SCRIPT, &args)
            .await
            .map_or_else(|failed| failed, |(_, outcome)| outcome)
    }
}

impl crate::run::Command for Enroll {
    fn op(&self) -> Op {
        Op::Enroll
    }

    fn dry_run(&self) -> bool {
        self.dry_run
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_script_runs_nothing_before_main() {
        assert_eq!(
            crate::step::shells::runs_before_main(super::SCRIPT),
            Vec::<String>::new()
        );
    }
}
