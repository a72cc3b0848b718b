//! `swpush enroll`: the one deliberate act that grants this controller's
//! distribution key the right to distribute on a client, by appending its
//! `known_servers` line (SPEC §5), and recording the client's inventory
//! name beside it (`host_name`), which the step then requires of every
//! order's signed `host`. Idempotent: a key already present is left alone,
//! whatever patterns its line has, and so is a recorded name.

use crate::fleet::{Job, JobOutcome};
use crate::inventory::Host;
use crate::progress::{HostProgress, Phase};
use crate::ssh::Connection;
use crate::step::{run_script, shell_command};

/// Appends LINE to KNOWN_SERVERS unless KEY (type and base64) is already
/// there, and with it records HOST (the inventory name) in `host_name`
/// beside it, unless a name is recorded already: one that differs is
/// reported, never overwritten. With DRY_RUN `true`, only says what it
/// would do. A key already trusted leaves both files as they are.
const SCRIPT: &str = r#"set -eu
# printf, never echo: dash's echo would read backslashes in the file's text.
ks=$1 line=$2 key=$3 dry_run=$4 host=$5
hn=$(dirname "$ks")/host_name
recorded=
if [ -f "$hn" ]; then
    IFS= read -r recorded <"$hn" || true
fi
name_note=
if [ -f "$hn" ] && [ "$recorded" != "$host" ]; then
    name_note="; $hn names this host $recorded, not $host (not changed: edit that file if the host was renamed)"
elif [ ! -f "$hn" ]; then
    name_note="; no host name is recorded in $hn, so orders for any host name are accepted (write $host there to bind it)"
fi
if [ -f "$ks" ] && grep -qF -- "$key" "$ks"; then
    have=$(grep -F -- "$key" "$ks" | head -n 1 | cut -d ' ' -f 1)
    if [ "$have" = "${line%% *}" ]; then
        printf 'swpush done unchanged - - already trusted in %s%s\n' "$ks" "$name_note"
    else
        printf 'swpush done unchanged - - already trusted in %s for packages %s, not changed to %s (edit that line to change them)%s\n' \
            "$ks" "$have" "${line%% *}" "$name_note"
    fi
    exit 0
fi
if [ -f "$hn" ]; then
    [ "$recorded" = "$host" ] && name_note=
    record=
else
    record="; recorded host name $host in $hn"
    name_note=
fi
if [ "$dry_run" = true ]; then
    printf 'swpush done installed - - would add the key to %s%s%s\n' "$ks" "${record:+ and record host name $host in $hn}" "$name_note"
    exit 0
fi
mkdir -p "$(dirname "$ks")"
if [ -s "$ks" ] && [ -n "$(tail -c 1 "$ks")" ]; then echo >>"$ks"; fi
printf '%s\n' "$line" >>"$ks"
chmod 644 "$ks"
if [ -n "$record" ]; then
    printf '%s\n' "$host" >"$hn.$$"
    chmod 644 "$hn.$$"
    mv "$hn.$$" "$hn"
fi
printf 'swpush done installed - - key added to %s%s%s\n' "$ks" "$record" "$name_note"
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
            host.name.clone(),
        ];
        run_script(connection, &shell_command(host, SCRIPT, &args)).await
    }
}
