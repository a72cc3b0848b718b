# shellcheck shell=sh
# swpush enroll: grants the controller's key the right to distribute here,
# by appending LINE to KNOWN_SERVERS unless KEY (type and base64) is
# already there, and records HOST (the inventory name) in host_name beside
# it (trust.sh) unless a name is recorded already (also beside a key
# trusted before enroll recorded names: enrolling again binds such a
# host). A recorded name that differs is reported, never overwritten. With
# DRY_RUN `true`, only says what it would do. Sent as `/bin/sh -c
# '<trust.sh + this file>' swpush-step KNOWN_SERVERS LINE KEY DRY_RUN HOST`
# (src/enroll.rs); prints one `swpush done` line.
#
# Reads: the command line; host_name_file, recorded (trust.sh).
# Sets: nothing another file reads.
# shellcheck disable=SC2154 # see Reads

main() {
    set -eu
    # printf, never echo: dash's echo would read backslashes in the file's text.
    ks=$1 line=$2 key=$3 dry_run=$4 host=$5
    host_name_beside "$ks"
    hn=$host_name_file
    recorded=
    if [ -f "$hn" ]; then
        read_host_name || true
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
}

main "$@"
