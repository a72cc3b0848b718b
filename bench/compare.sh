#!/usr/bin/env bash
# A/B of swpush builds on one fleet: is a change to swpush (say, to the
# client step) faster? Each round runs `swpush install` with every given
# binary in turn (the hosts reset before each, as in bench/run.sh), then the
# floor, so all of them see the same machine load; prints each round and
# the medians of wall time, peak RSS and machine CPU (the non-idle ticks of
# /proc/stat during the run: both ends share the machine, and on a busy one
# CPU tells builds apart better than wall time). The table in docs/benchmarks.md is left alone.
#
#   bench/compare.sh HOSTS MB SWPUSH_BINARY...      ROUNDS=3 by default
#
# e.g. after `cp target/release/swpush /var/tmp/swpush-a`, a change and a
# rebuild: bench/compare.sh 20 100 /var/tmp/swpush-a target/release/swpush
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    echo "usage: bench/compare.sh HOSTS MB SWPUSH_BINARY..." >&2
    exit 2
}
[ "$#" -ge 3 ] || usage
HOSTS=$1
MB=$2
shift 2
ROUNDS=${ROUNDS:-3}
work=$PWD/target/bench/compare-${HOSTS}x${MB}MB
bins=()
for b in "$@"; do
    [ -x "$b" ] || { echo "bench: $b is not an executable" >&2 && exit 2; }
    bins+=("$(realpath "$b")")
done
# shellcheck source=lib.sh
. bench/lib.sh

bench_setup
make_package
start_fleet
enroll_fleet

echo "compare: $HOSTS hosts x $MB MB, $ROUNDS rounds, $(nproc) cores, load average $(cut -d ' ' -f 1-3 /proc/loadavg)"
: >"$work/rounds"
for round in $(seq 1 "$ROUNDS"); do
    line="round $round:"
    for i in "${!bins[@]}"; do
        reset_hosts
        out=$work/swpush-$round-$i
        t0=$(machine_ticks)
        /usr/bin/time -f '%e %M' -o "$out.time" \
            env -u SSH_AUTH_SOCK -u SWPUSH_INVENTORY -u SWPUSH_KEY "HOME=$home" \
            "${bins[$i]}" install --inventory "$inventory" -q --report "$out.json" "$pkg" \
            >"$out.txt" 2>&1 || die "${bins[$i]} failed: $(cat "$out.txt")"
        t1=$(machine_ticks)
        check_swpush_round "$out.json" "$out.txt"
        read -r wall rss <"$out.time"
        cpu=$(awk -v t="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }')
        echo "$i $wall $rss $cpu" >>"$work/rounds"
        line="$line  [$i] $wall s ($cpu CPU s)"
    done
    reset_hosts
    t0=$(machine_ticks)
    /usr/bin/time -f '%e %M' -o "$work/floor-$round.time" "${floor_cmd[@]}" \
        >"$work/floor-$round.txt" 2>&1 || die "the floor failed: $(cat "$work/floor-$round.txt")"
    t1=$(machine_ticks)
    check_floor_round
    read -r wall rss <"$work/floor-$round.time"
    cpu=$(awk -v t="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }')
    echo "floor $wall $rss $cpu" >>"$work/rounds"
    echo "$line  floor $wall s ($cpu CPU s)"
done

echo
echo "median of $ROUNDS rounds:"
for key in "${!bins[@]}" floor; do
    label=floor
    [ "$key" = floor ] || label="[$key] ${bins[$key]}"
    wall=$(awk -v k="$key" '$1 == k { print $2 }' "$work/rounds" | median '%.2f')
    rss=$(awk -v k="$key" '$1 == k { print $3 / 1024 }' "$work/rounds" | median '%.1f')
    cpu=$(awk -v k="$key" '$1 == k { print $4 }' "$work/rounds" | median '%.2f')
    printf '  %7s s  %6s MB peak RSS  %7s machine CPU s  %s\n' "$wall" "$rss" "$cpu" "$label"
done
