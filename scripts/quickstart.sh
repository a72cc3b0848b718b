#!/usr/bin/env bash
# The README's first command: build swpush and run it on the built-in
# example. It lists the example inventory's hosts (no connection is made),
# packs the example package twice to show the output is byte-identical, and
# then does a real install on a local fleet of 3 OpenSSH sshd hosts started
# by examples/fleet.rs: keygen, enroll, install (the report), install again
# (`unchanged`), and runs the installed program on one host.
#
# Touches nothing outside target/quickstart/ and the fleet's own directory:
# each host is an sshd in a private mount namespace whose /opt, /etc/swpush,
# /var/lib/swpush, /var/cache/swpush and /tmp are directories of the fleet,
# and swpush runs with HOME set to the fleet's controller HOME. The fleet
# stops when this script ends, however it ends. Needs root for the fleet (and
# to install openssh-server with apt when it is missing). Exits 0 only when
# every step did what it shows.
set -euo pipefail
cd "$(dirname "$0")/.."

HOSTS=3
swpush=$PWD/target/release/swpush
work=target/quickstart

die() {
    echo "quickstart: error: $*" >&2
    exit 1
}

# A first build compiles ~200 crates (minutes on 2 cores): say so, and let
# cargo show its progress rather than staying silent.
echo "== building swpush and the example fleet (cargo build --release; the first build takes a few minutes)"
cargo build --release --locked --bin swpush --example fleet
echo
rm -rf "$work"
mkdir -p "$work"

echo "== swpush hosts --inventory inventory.example.yaml"
"$swpush" hosts --inventory inventory.example.yaml
echo
echo "== swpush hosts --inventory inventory.example.yaml --limit 'web,!canary'"
"$swpush" hosts --inventory inventory.example.yaml --limit 'web,!canary'
echo
echo "== swpush pack packages/hello -o $work/hello.tar.gz"
"$swpush" pack packages/hello -o "$work/hello.tar.gz"
"$swpush" pack packages/hello -o "$work/hello-again.tar.gz" >/dev/null
cmp "$work/hello.tar.gz" "$work/hello-again.tar.gz"
echo "(packed twice: byte-identical)"
echo

# --- a local fleet ----------------------------------------------------------
# shellcheck source=scripts/fleet-lib.sh
. scripts/fleet-lib.sh
echo "== starting $HOSTS local sshd hosts (target/release/examples/fleet --hosts $HOSTS)"
fleet_start "$HOSTS" "$work"
inventory=$fleet_inventory
home=$fleet_home
field() { fleet_field "$1"; }
read -r host_name host_addr host_dir <<<"$(field host)"
cat "$inventory"
echo

# swpush as the fleet's controller: its own HOME (distribution key, known
# hosts, login key), nothing from this shell's environment.
run_swpush() {
    env -u SSH_AUTH_SOCK -u SWPUSH_INVENTORY -u SWPUSH_KEY HOME="$home" "$swpush" "$@"
}

echo "== swpush keygen"
run_swpush keygen
echo
echo "== swpush enroll --inventory INVENTORY"
run_swpush enroll --inventory "$inventory"
echo
echo "== swpush install --inventory INVENTORY $work/hello.tar.gz"
run_swpush install --inventory "$inventory" "$work/hello.tar.gz" | tee "$work/install-1.txt"
grep -q "$HOSTS hosts: $HOSTS installed" "$work/install-1.txt" ||
    die "expected every host to report installed"
echo
echo "== again: nothing to do, nothing uploaded"
run_swpush install --inventory "$inventory" --report "$work/install-2.json" "$work/hello.tar.gz" |
    tee "$work/install-2.txt"
grep -q "$HOSTS hosts: $HOSTS unchanged" "$work/install-2.txt" ||
    die "expected every host to report unchanged"
sent=$(grep -o '"bytes_sent": *[0-9]*' "$work/install-2.json" | awk -F: '{ s += $2 } END { print s + 0 }')
[ "$sent" = 0 ] || die "the second install uploaded $sent bytes, expected none"
echo
echo "== on $host_name: /opt/swpush/hello/current -> $(readlink "$host_dir/opt/swpush/hello/current")"
echo "\$ ssh root@$host_addr /opt/swpush/hello/current/bin/hello"
said=$(ssh -F /dev/null -o BatchMode=yes -i "$home/.ssh/id_ed25519" \
    -o UserKnownHostsFile="$home/.ssh/known_hosts" -o GlobalKnownHostsFile=/dev/null \
    -o StrictHostKeyChecking=yes -p 10022 "root@$host_addr" /opt/swpush/hello/current/bin/hello)
echo "$said"
[ "$said" = "hello from swpush example package 1.0.0" ] || die "unexpected output from hello"
echo
echo "quick start done: the fleet stops now and leaves nothing behind."
