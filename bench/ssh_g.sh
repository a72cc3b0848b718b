#!/usr/bin/env bash
# What resolving ~/.ssh/config costs, swpush's parser against asking
# OpenSSH: HOSTS (default 1000) runs of `ssh -G -F CONFIG HOST`, one per host
# as a tool using ssh as its resolver would run them, against one
# `swpush hosts --format json` on a HOSTS-host inventory with the same
# configuration. The configuration is a realistic one: a few dozen Host
# blocks with patterns and negations, Match blocks, an Include of a
# directory, tokens, several IdentityFiles. Everything lives in a private
# scratch HOME; nothing connects anywhere. Usage: bench/ssh_g.sh [HOSTS]
# (SWPUSH_BIN: the swpush binary to measure; default: a release build of
# the tree). Prints one line per measurement.

set -euo pipefail

usage() {
    echo "usage: bench/ssh_g.sh [HOSTS]   (1..100000, default 1000)" >&2
    exit 2
}

die() {
    echo "bench: error: $*" >&2
    exit 1
}

# Writes $work/.ssh/config (and its Include) and $work/hosts.ini.
make_inputs() {
    mkdir -p "$work/.ssh/conf.d"
    {
        echo "Include $work/.ssh/conf.d/*.conf"
        for site in ams fra lon par nyc sfo tok syd; do
            printf 'Host *.%s !bastion.%s\n  ProxyJump none\n  User ops-%s\n' "$site" "$site" "$site"
            printf '  IdentityFile ~/.ssh/id_%s\n  UserKnownHostsFile ~/.ssh/known_%s\n' "$site" "$site"
        done
        for n in $(seq 1 24); do
            printf 'Host db%02d* cache%02d*\n  Port 22%02d\n  IdentityFile ~/.ssh/%%h_%%r\n' "$n" "$n" "$n"
            printf '  ServerAliveInterval 30\n  StrictHostKeyChecking accept-new\n'
        done
        printf 'Match originalhost web* user ops-*\n  ConnectTimeout 10s\n'
        printf 'Match host 10.*\n  CertificateFile ~/.ssh/id_ed25519-cert.pub\n'
        printf 'Match localuser root\n  IdentitiesOnly no\n'
        printf 'Host *\n  User deploy\n  IdentityFile ~/.ssh/id_ed25519\n  IdentityFile ~/.ssh/id_rsa\n'
        printf '  ServerAliveCountMax 3\n  HashKnownHosts yes\n  SendEnv LANG LC_*\n'
    } >"$work/.ssh/config"
    for part in a b c; do
        printf 'Host *-%s\n  HostName %%h.internal\n  ConnectTimeout 5\n' "$part" \
            >"$work/.ssh/conf.d/$part.conf"
    done
    chmod -R go-w "$work/.ssh"
    local sites=(ams fra lon par nyc sfo tok syd) i
    {
        echo "[web]"
        for i in $(seq 1 "$HOSTS"); do
            case $((i % 4)) in
                0) echo "web$i.${sites[i % 8]}" ;;
                1) echo "db$((i % 24 + 1))-$i ansible_host=10.$((i / 250)).$((i % 250)).1" ;;
                2) echo "cache$((i % 24 + 1))-b$i" ;;
                *) echo "app$i-c ansible_user=ops-lon" ;;
            esac
        done
    } >"$work/hosts.ini"
}

# Seconds (3 decimals) `"$@"` takes.
seconds() {
    local start end
    start=$(date +%s%N)
    "$@"
    end=$(date +%s%N)
    printf '%d.%03d' $(((end - start) / 1000000000)) $((((end - start) / 1000000) % 1000))
}

# One `ssh -G` per inventory host, for the name Ansible gives ssh.
ssh_g_all() {
    local name rest address
    while read -r name rest; do
        case $name in '['*) continue ;; esac
        address=$name
        case $rest in ansible_host=*) address=${rest#ansible_host=} ;; esac
        ssh -G -F "$work/.ssh/config" "$address" </dev/null >/dev/null 2>&1
    done <"$work/hosts.ini"
}

swpush_hosts() {
    HOME=$work USER=root "$swpush" hosts --format json -i "$work/hosts.ini" >"$work/hosts.json"
}

main() {
    HOSTS=${1:-1000}
    case $HOSTS in '' | *[!0-9]*) usage ;; esac
    if [ "$HOSTS" -lt 1 ] || [ "$HOSTS" -gt 100000 ]; then usage; fi
    command -v ssh >/dev/null || die "ssh (openssh-client) is not installed"
    swpush=${SWPUSH_BIN:-}
    if [ -z "$swpush" ]; then
        cargo build --release --locked --quiet --bin swpush
        swpush=$PWD/target/release/swpush
    fi
    [ -x "$swpush" ] || die "no swpush binary at $swpush"
    work=$(mktemp -d "${TMPDIR:-/tmp}/swpush-ssh-g.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    make_inputs
    ssh -G -F "$work/.ssh/config" web4.ams </dev/null >/dev/null ||
        die "ssh -G rejects the generated configuration"
    echo "hosts: $HOSTS; ssh_config: $(wc -l <"$work/.ssh/config") lines + Include; $(ssh -V 2>&1)"
    echo "ssh -G, once per host: $(seconds ssh_g_all) s"
    swpush_hosts # warm the page cache once, as ssh -G's binary is after its first run
    echo "swpush hosts (all hosts, one run): $(seconds swpush_hosts) s"
    local refused
    refused=$(grep -c '"refused"' "$work/hosts.json" || true)
    echo "swpush listed: $(grep -c '"host":' "$work/hosts.json") host(s), refused: $refused"
}

main "$@"
