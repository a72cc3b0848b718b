#!/usr/bin/env bash
# swpush install against the floor: how long one `swpush install` of an
# M MB package to N local sshd hosts takes, next to the least any SSH push
# can do (one plain `ssh HOST 'tar -x' < pkg.tar` per host, all at once).
#
#   bench/run.sh [HOSTS [MB]]      defaults: 20 hosts, 10 MB; ROUNDS=3
#   SWPUSH_BIN=path bench/run.sh   measure that build, not this tree's
#
# Starts a local fleet with examples/fleet.rs (root needed), builds a package
# of MB MB of incompressible random data packed uncompressed (`swpush pack
# -o X.tar`, so both sides move the same bytes), enrolls the fleet, then for
# ROUNDS rounds measures with `/usr/bin/time -f '%e %M'` (wall seconds, peak
# RSS in KiB):
#   swpush  `swpush install --inventory INV X.tar` to every host; before each
#           round the hosts are reset from outside (their /opt/swpush/NAME,
#           /var/lib/swpush/packages/NAME and /var/cache/swpush/*), so every
#           round really uploads, checks and extracts the package;
#   floor   `xargs -P HOSTS` running `ssh ... HOST 'mkdir -p /tmp/floor &&
#           tar -x -C /tmp/floor' < X.tar` per host with the same login key
#           and known_hosts (`-F /dev/null -o BatchMode=yes`); /tmp/floor is
#           removed between rounds. Its peak RSS is that of the largest single
#           process (one ssh client); HOSTS of them run at once.
# Both ends share this machine's cores: every host's work (sshd, tar, the
# client step) counts against the same CPUs as the controller's.
# Prints every round and the medians, and refreshes this configuration's row
# of the table in docs/benchmarks.md (between the bench:table markers).
# Everything of a run is kept in target/bench/HOSTSxMBMB/.
set -euo pipefail
cd "$(dirname "$0")/.."

HOSTS=${1:-20}
MB=${2:-10}
ROUNDS=${ROUNDS:-3}
work=$PWD/target/bench/${HOSTS}x${MB}MB
table=docs/benchmarks.md
usage() {
    echo "usage: bench/run.sh [HOSTS (1..1000, default 20) [MB (>= 1, default 10)]]" >&2
    exit 2
}
# shellcheck source=lib.sh
. bench/lib.sh

bench_setup
if [ ! -x /usr/bin/time ]; then
    echo "installing: time"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends time >/dev/null
fi
make_package
start_fleet
enroll_fleet

built=" (this tree: $(git describe --always --dirty 2>/dev/null || echo '?'))"
[ -z "${SWPUSH_BIN:-}" ] || built=
echo "bench: $swpush$built, $HOSTS hosts x $MB MB ($size bytes, uncompressed tar)," \
    "$ROUNDS rounds, $(nproc) cores, load average $(cut -d ' ' -f 1-3 /proc/loadavg)"
: >"$work/rounds"
for round in $(seq 1 "$ROUNDS"); do
    reset_hosts
    /usr/bin/time -f '%e %M' -o "$work/time-swpush-$round" \
        "${swpush_cmd[@]}" --report "$work/report-$round.json" >"$work/swpush-$round.txt" 2>&1 ||
        die "round $round: swpush install failed: $(cat "$work/swpush-$round.txt")"
    check_swpush_round "$work/report-$round.json" "$work/swpush-$round.txt"

    /usr/bin/time -f '%e %M' -o "$work/time-floor-$round" "${floor_cmd[@]}" >"$work/floor-$round.txt" 2>&1 ||
        die "round $round: the floor failed: $(cat "$work/floor-$round.txt")"
    check_floor_round

    read -r s_wall s_rss <"$work/time-swpush-$round"
    read -r f_wall f_rss <"$work/time-floor-$round"
    echo "$s_wall $s_rss $f_wall $f_rss" >>"$work/rounds"
    awk -v r="$round" -v sw="$s_wall" -v sr="$s_rss" -v fw="$f_wall" -v fr="$f_rss" 'BEGIN {
        printf "round %d: swpush %6.2f s %6.1f MB RSS | floor %6.2f s %5.1f MB RSS (one ssh)\n",
            r, sw, sr / 1024, fw, fr / 1024
    }'
done

# Median of column $1 of the rounds.
column_median() {
    awk -v c="$1" '{ print $c }' "$work/rounds" | median '%s'
}
row=$(awk -v h="$HOSTS" -v m="$MB" -v sw="$(column_median 1)" -v sr="$(column_median 2)" \
    -v fw="$(column_median 3)" -v fr="$(column_median 4)" 'BEGIN {
    printf "| %d × %d MB | %.2f s | %.0f MB | %.2f s | %.1f MB | %.2f× |", h, m, sw, sr / 1024, fw, fr / 1024, sw / fw
}')
echo
echo "median of $ROUNDS rounds:"
echo "| hosts × package | swpush wall | swpush peak RSS | floor wall | floor peak RSS (one ssh) | swpush / floor |"
echo "$row"

# Refreshes this configuration's row between the markers; rows stay sorted.
if [ -f "$table" ] && grep -q '<!-- bench:table:begin -->' "$table"; then
    awk -v row="$row" -v key="| $HOSTS × $MB MB |" '
        # "| 20 × 100 MB | ..." sorts as 20 hosts, then 100 MB.
        function key_of(r,    f, mb) {
            split(r, f, "|"); mb = f[2]; sub(/^[^×]*× */, "", mb)
            return sprintf("%06d %09d", f[2] + 0, mb + 0)
        }
        /<!-- bench:table:begin -->/ { print; intable = 1; next }
        intable && /<!-- bench:table:end -->/ {
            rows[++n] = row
            for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
                if (key_of(rows[i]) > key_of(rows[j])) { t = rows[i]; rows[i] = rows[j]; rows[j] = t }
            for (i = 1; i <= h; i++) print head[i]
            for (i = 1; i <= n; i++) print rows[i]
            print; intable = 0; next
        }
        intable && /^\| *[0-9]/ { if (index($0, key) != 1) rows[++n] = $0; next }
        intable { head[++h] = $0; next }
        { print }
    ' "$table" >"$table.new" && mv "$table.new" "$table"
    echo "(row refreshed in $table)"
fi
