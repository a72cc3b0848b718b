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

/// Appends LINE to KNOWN_SERVERS unless KEY (type and base64) is already
/// there, and records HOST (the inventory name) in `host_name` beside it
/// unless a name is recorded already (also beside a key trusted before
/// enroll recorded names: enrolling again binds such a host). A recorded
/// name that differs is reported, never overwritten. With DRY_RUN `true`,
/// only says what it would do.
const SCRIPT: &str = r#"set -eu
# printf, never echo: dash's echo would read backslashes in the file's text.
ks=$1 line=$2 key=$3 dry_run=$4 host=$5
hn=$(dirname "$ks")/host_name
recorded=
if [ -f "$hn" ]; then
    IFS= read -r recorded <"$hn" || true
fi
record=""
name_note=""
if [ ! -f "$hn" ]; then
    record=$host
elif [ "$recorded" != "$host" ]; then
    name_note="; $hn names this host $recorded, not $host (not changed: edit that file if the host was renamed)"
fi
trusted=
if [ -f "$ks" ] && grep -qF -- "$key" "$ks"; then
    trusted=$(grep -F -- "$key" "$ks" | head -n 1 | cut -d ' ' -f 1)
    if [ "$trusted" = "${line%% *}" ]; then
        trusted_note="already trusted in $ks"
    else
        trusted_note="already trusted in $ks for packages $trusted, not changed to ${line%% *} (edit that line to change them)"
    fi
    if [ -z "$record" ]; then
        printf 'swpush done unchanged - - %s%s\n' "$trusted_note" "$name_note"
        exit 0
    fi
fi
if [ "$dry_run" = true ]; then
    if [ -n "$trusted" ]; then
        printf 'swpush done installed - - would record host name %s in %s; the key is %s\n' "$host" "$hn" "$trusted_note"
    else
        printf 'swpush done installed - - would add the key to %s%s%s\n' "$ks" "${record:+ and record host name $host in $hn}" "$name_note"
    fi
    exit 0
fi
mkdir -p "$(dirname "$ks")"
if [ -z "$trusted" ]; then
    if [ -s "$ks" ] && [ -n "$(tail -c 1 "$ks")" ]; then echo >>"$ks"; fi
    printf '%s\n' "$line" >>"$ks"
    chmod 644 "$ks"
fi
if [ -n "$record" ]; then
    printf '%s\n' "$host" >"$hn.$$"
    chmod 644 "$hn.$$"
    mv "$hn.$$" "$hn"
fi
if [ -n "$trusted" ]; then
    printf 'swpush done installed - - recorded host name %s in %s; the key was %s\n' "$host" "$hn" "$trusted_note"
else
    printf 'swpush done installed - - key added to %s%s%s\n' "$ks" "${record:+; recorded host name $host in $hn}" "$name_note"
fi
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
