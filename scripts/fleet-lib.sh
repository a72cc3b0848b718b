# shellcheck shell=bash
# Starting a local example fleet (examples/fleet.rs) from a bash script,
# run from the repository root: sourced by scripts/quickstart.sh,
# scripts/try-fleet.sh and bench/lib.sh.
#
#   fleet_start N WORKDIR [ARGS]  checks for root, installs the test
#                           dependencies when missing, starts N sshd hosts
#                           with target/release/examples/fleet (built by the
#                           caller; ARGS are passed on), waits until they
#                           accept connections, and sets fleet_inventory,
#                           fleet_home, fleet_pid and fleet_out (the fleet's
#                           output lines, see examples/fleet.rs). The fleet
#                           stops when the calling script exits, however it
#                           exits.
#   fleet_field NAME        the first `NAME VALUE` line of the fleet's output.

fleet_die() {
    echo "${0##*/}: error: $*" >&2
    exit 1
}

fleet_start() {
    local hosts=$1 work=$2
    shift 2
    [ "$(id -u)" = 0 ] ||
        fleet_die "the local fleet needs root (each host is an sshd in its own mount namespace); run it with sudo"
    bash scripts/install-test-deps.sh
    # The fleet runs until its stdin reaches end-of-file. Its stdin is a
    # fifo whose only writer is this script (fd 9), so it stops when the
    # script exits, also on an error or a signal; the EXIT trap then waits
    # until it has removed its hosts.
    local fifo=$work/fleet.stdin
    fleet_out=$work/fleet.out
    rm -f "$fifo"
    mkfifo "$fifo"
    target/release/examples/fleet --hosts "$hosts" "$@" <"$fifo" >"$fleet_out" 2>"$work/fleet.err" &
    fleet_pid=$!
    exec 9>"$fifo"
    rm -f "$fifo"
    trap fleet_stop EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    local deadline=$((SECONDS + 60 + hosts / 2))
    until grep -qx ready "$fleet_out"; do
        if ! kill -0 "$fleet_pid" 2>/dev/null; then
            cat "$work/fleet.err" >&2
            fleet_die "the fleet did not start (output above, also in $work/fleet.err)"
        fi
        [ "$SECONDS" -lt "$deadline" ] || fleet_die "the fleet is not ready after $((60 + hosts / 2)) s (see $work/fleet.err)"
        sleep 0.1
    done
    # shellcheck disable=SC2034 # for the sourcing script
    fleet_inventory=$(fleet_field inventory)
    # shellcheck disable=SC2034
    fleet_home=$(fleet_field home)
}

fleet_stop() {
    exec 9>&-
    wait "$fleet_pid" 2>/dev/null || true
}

fleet_field() {
    sed -n "s/^$1 //p" "$fleet_out" | head -n 1
}
