#!/usr/bin/env bash
# Push against mirror mode (docs/scaling.md) on ONE local fleet: each round
# resets the hosts and runs `swpush install` twice, once sending the
# package over SSH (push) and once with `--mirror` pointing at a real
# nginx on this machine that serves what `swpush publish` wrote (mirror),
# so both see the same machine load. Prints each round and the medians of
# wall time, controller CPU (user+sys of swpush), the package bytes the
# controller sent (the report's bytes_sent) and machine CPU (both ends and
# nginx share this machine: say so when quoting it).
#
#   bench/mirror.sh HOSTS MB        ROUNDS=3 by default; needs root and nginx
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    echo "usage: [ROUNDS=3] bench/mirror.sh HOSTS MB" >&2
    exit 2
}
[ "$#" = 2 ] || usage
HOSTS=$1
MB=$2
ROUNDS=${ROUNDS:-3}
case $ROUNDS in '' | *[!0-9]*) usage ;; esac
work=$PWD/target/bench/mirror-${HOSTS}x${MB}MB
# shellcheck source=lib.sh
. bench/lib.sh

bench_setup
command -v nginx >/dev/null || {
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx) >&2
}
make_package
start_fleet
enroll_fleet

# The origin: nginx on the fleet's first address, serving $work/www.
run_swpush publish "$pkg" --to "$work/www" >"$work/publish.txt"
addr=$(head -n 1 "$work/addresses")
mkdir -p "$work/nginx/tmp"
n=$work/nginx
cat >"$n/nginx.conf" <<EOF
user root;
worker_processes 1;
daemon off;
pid $n/nginx.pid;
error_log $n/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    client_body_temp_path $n/tmp/body;
    proxy_temp_path $n/tmp/proxy;
    fastcgi_temp_path $n/tmp/fastcgi;
    uwsgi_temp_path $n/tmp/uwsgi;
    scgi_temp_path $n/tmp/scgi;
    default_type application/octet-stream;
    server { listen $addr:18080; root $work/www; }
}
EOF
nginx -p "$n" -e "$n/error.log" -c "$n/nginx.conf" &
nginx_pid=$!
trap 'kill "$nginx_pid" 2>/dev/null || :' EXIT
for _ in $(seq 1 50); do
    if (exec 3<>"/dev/tcp/$addr/18080") 2>/dev/null; then break; fi
    sleep 0.1
done
mirror=http://$addr:18080

echo "mirror: $HOSTS hosts x $MB MB, $ROUNDS rounds, $(nproc) cores, load average $(cut -d ' ' -f 1-3 /proc/loadavg)"
: >"$work/rounds"
for round in $(seq 1 "$ROUNDS"); do
    line="round $round:"
    for mode in push mirror; do
        reset_hosts
        out=$work/$mode-$round
        extra=()
        [ "$mode" = push ] || extra=(--mirror "$mirror")
        t0=$(machine_ticks)
        /usr/bin/time -f '%e %U %S' -o "$out.time" \
            env -u SSH_AUTH_SOCK -u SWPUSH_INVENTORY -u SWPUSH_KEY "HOME=$home" \
            "$swpush" install --inventory "$inventory" -q --report "$out.json" "${extra[@]}" "$pkg" \
            >"$out.txt" 2>&1 || die "$mode failed: $(cat "$out.txt")"
        t1=$(machine_ticks)
        if [ "$mode" = push ]; then
            check_swpush_round "$out.json" "$out.txt"
        else
            check_swpush_round "$out.json" "$out.txt" installed 0
        fi
        read -r wall user sys <"$out.time"
        sent=$(grep -o '^  "bytes_sent": *[0-9]*' "$out.json" | grep -o '[0-9]*$')
        cpu=$(awk -v t="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }')
        echo "$mode $wall $(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }') $sent $cpu" >>"$work/rounds"
        line="$line  $mode $wall s"
    done
    echo "$line"
done

echo
echo "$HOSTS hosts x $MB MB, median of $ROUNDS rounds:"
printf '  %-7s %8s %10s %16s %13s\n' mode wall_s ctl_cpu_s controller_bytes machine_cpu_s
for mode in push mirror; do
    col() { awk -v m="$mode" -v c="$1" '$1 == m { print $c }' "$work/rounds" | median "$2"; }
    printf '  %-7s %8s %10s %16s %13s\n' "$mode" "$(col 2 %.2f)" "$(col 3 %.2f)" "$(col 4 %.0f)" "$(col 5 %.2f)"
done
