#!/usr/bin/env bash
# A local fleet to follow docs/guide.md on: builds swpush, starts N (default
# 3) real sshd hosts on this machine (examples/fleet.rs: each on its own
# 127.x.y.z address, with private /opt, /etc/swpush, /var/lib/swpush, ...),
# and opens a shell set up as the fleet's controller:
#
#   HOME              the controller's home: ~/.ssh/id_ed25519 logs in as
#                     root on every host, ~/.ssh/known_hosts knows them all
#   SWPUSH_INVENTORY  an inventory naming the hosts host1..hostN
#   PATH              target/release first, so `swpush` is this build
#
# Leave the shell (exit, Ctrl-D) and the fleet stops, leaving nothing behind.
# With a command after `--`, runs it in that environment instead of a shell:
#
#   bash scripts/try-fleet.sh [--hosts N] [-- COMMAND...]
#
# Needs root (mount namespaces, sshd); installs openssh-server when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

hosts=3
while [ $# -gt 0 ]; do
    case $1 in
        --hosts) hosts=${2:?--hosts needs a number}; shift 2 ;;
        --) shift; break ;;
        -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "try-fleet: unknown argument $1 (see --help)" >&2; exit 1 ;;
    esac
done

cargo build --release --locked --quiet --bin swpush --example fleet
# One folder per run: several fleets may be up at once.
mkdir -p target/try-fleet
work=$(mktemp -d "$repo/target/try-fleet/run.XXXXXX")
# shellcheck source=scripts/fleet-lib.sh
. scripts/fleet-lib.sh
fleet_start "$hosts" "$work"
trap 'fleet_stop; rm -rf "$work"' EXIT

export HOME=$fleet_home SWPUSH_INVENTORY=$fleet_inventory PATH=$repo/target/release:$PATH
unset SSH_AUTH_SOCK SWPUSH_KEY
if [ $# -gt 0 ]; then
    # Not exec: the EXIT trap must stop the fleet afterwards.
    "$@"
    exit
fi
cat <<MSG
A fleet of $hosts local hosts is up (host1..host$hosts). In this shell:
  HOME=$HOME
  SWPUSH_INVENTORY=$SWPUSH_INVENTORY
  swpush = $repo/target/release/swpush
Follow docs/guide.md from section 3, "Write an inventory".
Leave the shell to stop the fleet.
MSG
PS1='(swpush fleet) \w\$ ' bash --norc -i || true
