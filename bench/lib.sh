# shellcheck shell=bash disable=SC2034,SC2153,SC2154 # variables set or used by the sourcing script
# What bench/run.sh and bench/profile.sh share: a local fleet started with
# examples/fleet.rs, a package of random bytes, swpush as the fleet's
# controller, a reset of the hosts between rounds, and the floor (one plain
# `ssh HOST 'tar -x' < pkg.tar` per host). Sourced, from the repository root,
# after HOSTS, MB and work are set; needs root.

NAME=benchpkg
# SWPUSH_BIN: measure this swpush build instead of the tree's own (which
# is built and used otherwise; others may be editing src/ meanwhile).
swpush=${SWPUSH_BIN:-$PWD/target/release/swpush}

die() {
    echo "bench: error: $*" >&2
    exit 1
}

# Checks the arguments and the machine, builds swpush and the fleet example.
bench_setup() {
    case $HOSTS:$MB in *[!0-9:]* | :* | *:) usage ;; esac
    if [ "$HOSTS" -lt 1 ] || [ "$HOSTS" -gt 1000 ] || [ "$MB" -lt 1 ]; then usage; fi
    [ "$(id -u)" = 0 ] || die "the local fleet needs root (sshd hosts in mount namespaces)"
    bash scripts/install-test-deps.sh
    cargo build --release --locked --quiet --example fleet
    if [ -z "${SWPUSH_BIN:-}" ]; then cargo build --release --locked --quiet --bin swpush; fi
    [ -x "$swpush" ] || die "no swpush binary at $swpush"
    swpush=$(realpath "$swpush")
    rm -rf "$work"
    mkdir -p "$work"
}

# $pkg: MB MB of random bytes (incompressible) and a swpush.yaml, packed
# uncompressed, so swpush and the floor move the same bytes.
make_package() {
    mkdir -p "$work/src/data"
    printf 'name: %s\nversion: 1.0.0\ndescription: %s MB of random bytes for bench/\n' \
        "$NAME" "$MB" >"$work/src/swpush.yaml"
    head -c "$((MB * 1024 * 1024))" /dev/urandom >"$work/src/data/blob"
    pkg=$work/$NAME.tar
    "$swpush" pack "$work/src" -o "$pkg" >/dev/null
    size=$(stat -c %s "$pkg")
}

# Starts HOSTS hosts (scripts/fleet-lib.sh); sets inventory, home, fleet_pid.
# The fleet stops when the script ends, however it ends.
start_fleet() {
    # shellcheck source=../scripts/fleet-lib.sh
    . scripts/fleet-lib.sh
    fleet_start "$HOSTS" "$work" --package-dirs
    inventory=$fleet_inventory
    home=$fleet_home
    awk '$1 == "host" { print $3 }' "$work/fleet.out" >"$work/addresses"
    write_floor_script
    set_commands
}

# Where the client directory $1 of every host is seen from outside.
local_dirs() {
    awk -v c="$1" '$1 == "path" && $3 == c { print $4 }' "$work/fleet.out"
}

# swpush as the fleet's controller: its HOME, nothing from this environment.
run_swpush() {
    env -u SSH_AUTH_SOCK -u SWPUSH_INVENTORY -u SWPUSH_KEY HOME="$home" "$swpush" "$@"
}

# A distribution key, trusted by every host.
enroll_fleet() {
    run_swpush keygen >/dev/null
    run_swpush enroll --inventory "$inventory" -q >"$work/enroll.txt" ||
        die "enroll failed: $(cat "$work/enroll.txt")"
}

# Forgets the package on every host (release, state record, cache) and
# removes the floor's copy, so that the next round uploads everything again.
reset_hosts() {
    local d
    for d in $(local_dirs /opt/swpush); do rm -rf "${d:?}/$NAME"; done
    for d in $(local_dirs /var/lib/swpush); do rm -f "${d:?}/packages/$NAME"; done
    for d in $(local_dirs /var/cache/swpush); do find "${d:?}" -mindepth 1 -delete; done
    for d in $(local_dirs /tmp); do rm -rf "${d:?}/floor"; done
}

# $work/floor-one.sh ADDR: the floor for one host, as xargs runs it.
write_floor_script() {
    cat >"$work/floor-one.sh" <<EOF
#!/bin/sh
exec ssh -F /dev/null -o BatchMode=yes -i '$home/.ssh/id_ed25519' \\
    -o 'UserKnownHostsFile=$home/.ssh/known_hosts' -o GlobalKnownHostsFile=/dev/null \\
    -o StrictHostKeyChecking=yes -p 10022 "root@\$1" \\
    'mkdir -p /tmp/floor && tar -x -C /tmp/floor' <'$pkg'
EOF
    chmod +x "$work/floor-one.sh"
}

# The commands one round measures (set by start_fleet): swpush_cmd, to which
# a round appends `--report FILE`, and floor_cmd, every host at once.
set_commands() {
    swpush_cmd=(env -u SSH_AUTH_SOCK -u SWPUSH_INVENTORY -u SWPUSH_KEY "HOME=$home"
        "$swpush" install --inventory "$inventory" -q "$pkg")
    floor_cmd=(xargs -P "$HOSTS" -n 1 -a "$work/addresses" "$work/floor-one.sh")
}

# Fails unless the round's swpush output $2 and report $1 show every host
# STATUS ($3, default installed) with BYTES ($4, default the whole package
# to every host) sent.
check_swpush_round() {
    local status=${3:-installed} expect=${4:-$((size * HOSTS))} sent
    # (`install NAME VERSION: ` before the counts since issue 12; older
    # builds, which bench/compare.sh may measure, print the counts alone)
    grep -q "^\(install [^ ]* [^ ]*: \)\?$HOSTS hosts: $HOSTS $status\$" "$2" ||
        die "not every host $status: $(cat "$2")"
    # The hosts' lines only (the report's own total is indented less).
    sent=$(grep -o '^      "bytes_sent": *[0-9]*' "$1" | awk -F: '{ s += $2 } END { printf "%.0f", s }')
    [ "$sent" = "$expect" ] || die "swpush sent $sent bytes, expected $expect"
}

# Non-idle CPU ticks of the whole machine so far.
machine_ticks() {
    awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat
}

# The median of the numbers on stdin, printed with printf FORMAT $1.
median() {
    sort -n | awk -v f="$1" '{ v[NR] = $1 } END { printf f, v[int((NR + 1) / 2)] }'
}

check_floor_round() {
    local d
    for d in $(local_dirs /tmp); do
        cmp -s "$d/floor/data/blob" "$work/src/data/blob" || die "the floor did not extract on $d"
    done
}
