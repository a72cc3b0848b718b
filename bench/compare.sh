#!/usr/bin/env bash
# A/B of swpush builds on one fleet: is a change to swpush (say, to the
# client step) faster? Each round runs `swpush install` with every given
# binary in turn (the hosts reset before each, as in bench/run.sh), then the
# floor, so all of them see the same machine load; prints each round and
# the medians. The table in docs/benchmarks.md is left alone.
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
        /usr/bin/time -f '%e %M' -o "$out.time" \
            env -u SSH_AUTH_SOCK -u SWPUSH_INVENTORY -u SWPUSH_KEY "HOME=$home" \
            "${bins[$i]}" install --inventory "$inventory" -q --report "$out.json" "$pkg" \
            >"$out.txt" 2>&1 || die "${bins[$i]} failed: $(cat "$out.txt")"
        check_swpush_round "$out.json" "$out.txt"
        read -r wall rss <"$out.time"
        echo "$i $wall $rss" >>"$work/rounds"
        line="$line  [$i] $wall s"
    done
    reset_hosts
    /usr/bin/time -f '%e %M' -o "$work/floor-$round.time" "${floor_cmd[@]}" \
        >"$work/floor-$round.txt" 2>&1 || die "the floor failed: $(cat "$work/floor-$round.txt")"
    check_floor_round
    read -r wall rss <"$work/floor-$round.time"
    echo "floor $wall $rss" >>"$work/rounds"
    echo "$line  floor $wall s"
done

echo
echo "median of $ROUNDS rounds:"
for key in "${!bins[@]}" floor; do
    label=floor
    [ "$key" = floor ] || label="[$key] ${bins[$key]}"
    awk -v k="$key" '$1 == k { print $2, $3 }' "$work/rounds" | sort -n |
        awk -v l="$label" '{ w[NR] = $1; r[NR] = $2 }
            END { m = int((NR + 1) / 2); printf "  %7.2f s  %6.1f MB peak RSS  %s\n", w[m], r[m] / 1024, l }'
done
