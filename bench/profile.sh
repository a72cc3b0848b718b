#!/usr/bin/env bash
# Where the time of a `swpush install` goes, next to the floor: one round of
# each, as bench/run.sh does them, recorded with `perf record -a -e cpu-clock`
# (all CPUs, both ends: the hosts are processes on this machine).
#
#   bench/profile.sh [HOSTS [MB]]      defaults: 20 hosts, 100 MB
#
# Prints, for each of the two:
#   - CPU seconds per command, counting only this run's processes (the
#     measured command and the fleet's sshd, and everything they started);
#     CPU used by anything else on the machine is shown as one line, "others",
#     so a busy machine is visible instead of silently inflating the times;
#   - for swpush, a timeline: CPU seconds per second of wall time by command,
#     which shows the phases (upload: swpush + sshd + head; then the client
#     step's passes: sha256sum, tar, awk, mv);
# and then the cost of each pass of the client step over this package on one
# host, measured locally (sha256sum vs openssl, tar listings, extraction,
# a copy across filesystems), to tell which pass to make cheaper.
# Needs root and perf (apt-get install linux-perf). Output is also kept in
# target/bench/profile-HOSTSxMBMB/.
set -euo pipefail
cd "$(dirname "$0")/.."

HOSTS=${1:-20}
MB=${2:-100}
FREQ=499
work=$PWD/target/bench/profile-${HOSTS}x${MB}MB
usage() {
    echo "usage: bench/profile.sh [HOSTS (1..1000, default 20) [MB (>= 1, default 100)]]" >&2
    exit 2
}
# shellcheck source=lib.sh
. bench/lib.sh

command -v perf >/dev/null 2>&1 || die "perf is missing (apt-get install linux-perf)"
bench_setup
make_package
start_fleet
enroll_fleet
reset_hosts

# record NAME CMD...: one perf recording of CMD; the first line of
# $work/NAME.root is the pid whose descendants are this run's processes.
record() {
    local name=$1
    shift
    sync
    sleep 1
    vmstat -n 1 >"$work/$name.vmstat" &
    vmstat_pid=$!
    # shellcheck disable=SC2016 # expanded by that sh
    perf record -q -e cpu-clock -F "$FREQ" -a -o "$work/$name.data" -- \
        sh -c 'echo $$ >"$1"; shift; exec /usr/bin/time -f "%e" -o "$0" "$@"' \
        "$work/$name.wall" "$work/$name.root" "$@" >"$work/$name.txt" 2>&1 ||
        die "$name failed: $(cat "$work/$name.txt")"
    kill "$vmstat_pid"
    wait "$vmstat_pid" 2>/dev/null || true
}

# analyse NAME: CPU seconds per command (this run's processes), and with
# `timeline` a per-second breakdown.
analyse() {
    local name=$1 timeline=${2:-}
    perf script -i "$work/$name.data" --show-task-events -F comm,pid,tid,time 2>/dev/null |
        awk -v roots="$(cat "$work/$name.root") $fleet_pid" -v freq="$FREQ" \
            -v timeline="$timeline" -v vmstat="$work/$name.vmstat" '
        BEGIN { n = split(roots, r, " "); for (i = 1; i <= n; i++) mine[r[i]] = 1 }
        /PERF_RECORD_FORK/ {
            s = $0; sub(/.*PERF_RECORD_FORK\(/, "", s); split(s, f, /[():]+/)
            if (f[1] != f[3]) parent[f[1]] = f[3]
            next
        }
        /PERF_RECORD/ { next }
        # "COMM PID/TID TIME:" where COMM may hold spaces.
        {
            t = $NF; sub(/:$/, "", t); pid = $(NF - 1); sub(/\/.*/, "", pid)
            comm = $1; for (i = 2; i < NF - 1; i++) comm = comm " " $i
            if (t0 == "") t0 = t
            if (!ours(pid)) { others++; next }
            if (comm ~ /^(tokio-rt-worker|swpush)$/) comm = "swpush (controller)"
            cpu[comm]++; total++
            if (timeline) {
                g = comm
                if (g !~ /^(swpush \(controller\)|ssh|sshd|head|sha256sum|tar|awk|mv)$/) g = "other"
                b = int(t - t0); bucket[b "," g]++; groups[g] = 1; if (b > last) last = b
            }
        }
        function ours(p,    q, k) {
            if (p in known) return known[p]
            for (q = p; k < 64 && q != "" && q > 1; k++) {
                if (q in mine) return known[p] = 1
                q = (q in parent) ? parent[q] : ""
            }
            return known[p] = 0
        }
        END {
            printf "  %8s  %s\n", "CPU s", "command"
            for (c in cpu) printf "  %8.2f  %s\n", cpu[c] / freq, c | "sort -rn"
            close("sort -rn")
            printf "  %8.2f  %s\n  %8.2f  %s\n", total / freq, "= this run (both ends)", others / freq, "(others on the machine meanwhile)"
            if (!timeline) exit
            # vmstat: line 1 is the header, 2 the average since boot; then
            # one line per second (b = blocked in I/O, bo = KiB written/s).
            for (i = 0; (getline line < vmstat) > 0; i++)
                if (i >= 2) { split(line, v, " "); blocked[i - 2] = v[2]; written[i - 2] = v[10] }
            print "\n  timeline: CPU seconds used in each second of wall time (2 cores: 2.00 at most),"
            print "  and from vmstat: processes blocked on I/O, MB/s written to disk"
            ng = split("swpush (controller)|ssh|sshd|head|sha256sum|tar|awk|mv|other", order, "|")
            printf "  %4s", "s"
            for (i = 1; i <= ng; i++) if (order[i] in groups) printf " %9s", substr(order[i], 1, 9)
            printf " %8s %8s\n", "blocked", "MB/s wr"
            for (b = 0; b <= last; b++) {
                printf "  %4d", b
                for (i = 1; i <= ng; i++) if (order[i] in groups) printf " %9.2f", bucket[b "," order[i]] / freq
                printf " %8s %8.0f\n", blocked[b], written[b] / 1024
            }
        }'
}

record swpush "${swpush_cmd[@]}" --report "$work/report.json"
check_swpush_round "$work/report.json" "$work/swpush.txt"
record floor "${floor_cmd[@]}"
check_floor_round

echo "== swpush install: $HOSTS hosts x $MB MB, $(cat "$work/swpush.wall") s wall"
analyse swpush timeline | tee "$work/swpush.profile"
echo
echo "== floor (ssh HOST 'tar -x' < pkg, all at once): $(cat "$work/floor.wall") s wall"
analyse floor timeline | tee "$work/floor.profile"

# --- the client step's passes, one host, locally --------------------------------
pass() { # pass LABEL CMD...: CPU and wall seconds of one run of CMD
    sync
    /usr/bin/time -f '%e %U %S' -o "$work/pass.time" "${@:2}" >/dev/null 2>&1 ||
        die "$1 failed"
    awk -v l="$1" '{ printf "  %-50s %5.2f s CPU %5.2f s wall\n", l, $2 + $3, $1 }' "$work/pass.time"
}
scratch=$work/pass
rm -rf "$scratch" && mkdir -p "$scratch/x"
echo
echo "== one host's passes over this $MB MB package (measured here, page cache warm)"
cat "$pkg" >/dev/null
pass "receive: head -c SIZE > file (from a pipe)" sh -c "cat '$pkg' | head -c $size >'$scratch/pkg'"
pass "sha256sum" sha256sum "$pkg"
if command -v openssl >/dev/null 2>&1; then pass "openssl dgst -sha256" openssl dgst -sha256 "$pkg"; fi
pass "tar -tf (entry check, names)" tar -tf "$pkg"
pass "tar -tvf (entry check, types)" tar -tvf "$pkg"
pass "tar -xf (extract)" tar -xf "$pkg" -C "$scratch/x"
pass "mv to another mount, i.e. a copy (/tmp to cache)" cp "$scratch/pkg" "$scratch/pkg.copy"
rm -rf "$scratch"
gzip -1 -c "$pkg" >"$work/pkg.tar.gz"
pass "tar -tzf (same package as .tar.gz: each listing)" tar -tzf "$work/pkg.tar.gz"
rm -f "$work/pkg.tar.gz"
