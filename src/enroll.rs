//! `swpush enroll`: the one deliberate act that grants this controller's
//! distribution key the right to distribute on a client, by appending its
//! `known_servers` line (SPEC §5). Idempotent: a key already present is
//! left alone, whatever patterns its line has.

use crate::fleet::{Job, JobOutcome};
use crate::inventory::Host;
use crate::progress::{HostProgress, Phase};
use crate::ssh::Connection;
use crate::step::{run_script, shell_command};

/// Appends LINE to KNOWN_SERVERS unless KEY (type and base64) is already
/// there; with DRY_RUN `true`, only says whether it would.
const SCRIPT: &str = r#"set -eu
# printf, never echo: dash's echo would read backslashes in the file's text.
ks=$1 line=$2 key=$3 dry_run=$4
if [ -f "$ks" ] && grep -qF -- "$key" "$ks"; then
    have=$(grep -F -- "$key" "$ks" | head -n 1 | cut -d ' ' -f 1)
    if [ "$have" = "${line%% *}" ]; then
        printf 'swpush done unchanged - - already trusted in %s\n' "$ks"
    else
        printf 'swpush done unchanged - - already trusted in %s for packages %s, not changed to %s (edit that line to change them)\n' \
            "$ks" "$have" "${line%% *}"
    fi
    exit 0
fi
if [ "$dry_run" = true ]; then
    printf 'swpush done installed - - would add the key to %s\n' "$ks"
    exit 0
fi
mkdir -p "$(dirname "$ks")"
if [ -s "$ks" ] && [ -n "$(tail -c 1 "$ks")" ]; then echo >>"$ks"; fi
printf '%s\n' "$line" >>"$ks"
chmod 644 "$ks"
printf 'swpush done installed - - key added to %s\n' "$ks"
"#;

pub struct Enroll {
    /// The whole known_servers line: `PATTERNS namespaces="swpush" KEY COMMENT`.
    pub line: String,
    /// `ssh-ed25519 AAAA...`: how an existing entry for the key is recognised.
    pub key: String,
    /// `--dry-run`: say whether the key would be added; change nothing.
    pub dry_run: bool,
}

impl Job for Enroll {
    async fn run(
        &self,
        connection: &Connection,
        host: &Host,
        progress: &HostProgress,
    ) -> JobOutcome {
        progress.phase(Phase::Installing);
        let args = [
            host.paths.known_servers.clone(),
            self.line.clone(),
            self.key.clone(),
            self.dry_run.to_string(),
        ];
        run_script(connection, &shell_command(host, SCRIPT, &args)).await
    }
}
