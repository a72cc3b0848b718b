# shellcheck shell=sh
# What makes an install or upgrade stick (docs/rollout.md): the package's
# health check, run once the new release is current, until it passes or
# its time is up; then the controller's confirmation that it can still log
# in. Either failing puts the previous release back (switch_back,
# release.sh) before anything is committed: a host whose upgrade broke its
# service, its network or its sshd undoes the upgrade on its own.
#
# Reads: health_check, health_interval, health_timeout, confirm_timeout
#   (check_order, order.sh); op, release, version, previous, work.
# Sets: heard (also set by the signal traps of start_run, run.sh);
#   hook_pid, hook_status (start_hook, wait_hook: hooks.sh).
# shellcheck disable=SC2154 # see Reads

# Runs the health check in the release directory, in a process group of
# its own as a hook is, every health_interval seconds until it passes.
# Past health_timeout from the first try (a try still running then is
# stopped), the previous release is current again and the step ends
# failed, saying how the last try ended.
check_health() {
    [ "$health_check" != - ] || return 0
    announce health_check "$version"
    hc_start=$(date +%s)
    hc_tries=0
    while :; do
        hc_left=$((hc_start + health_timeout - $(date +%s)))
        [ "$hc_left" -ge 1 ] || hc_left=1
        hc_tries=$((hc_tries + 1))
        start_hook "$op" "$release" "$version" "$previous" "$health_check" command
        (
            trap - EXIT HUP INT TERM PIPE USR1 USR2
            sleep "$hc_left"
            : >"$work/health.late"
            kill -TERM "-$hook_pid" 2>/dev/null
        ) </dev/null >/dev/null 2>&1 3<&- &
        hc_timer=$!
        if wait_hook; then
            kill "$hc_timer" 2>/dev/null || true
            return 0
        fi
        kill "$hc_timer" 2>/dev/null || true
        [ ! -e "$work/health.late" ] || break
        [ $(($(date +%s) + health_interval - hc_start)) -lt "$health_timeout" ] || break
        sleep "$health_interval"
    done
    if [ -e "$work/health.late" ]; then
        switch_back "the health check was still running after $health_timeout s and was stopped" \
            "$(tail_of "$work/hook.out")"
    fi
    hc_times="$hc_tries times"
    [ "$hc_tries" != 1 ] || hc_times=once
    switch_back "the health check failed $hc_times in $health_timeout s (last exit $hook_status)" \
        "$(tail_of "$work/hook.out")"
}

# Says that the new release is current (and healthy), then waits up to
# confirm_timeout seconds for the controller's answer, which the watchdog
# (watch_controller, watch.sh) turns into a signal: USR1 for `swpush
# confirm` (it logged in again), USR2 for `swpush abort` (it could not).
# Without a confirmation in time, or with the controller gone meanwhile,
# the previous release is current again and the step ends failed.
await_confirmation() {
    [ "$confirm_timeout" != 0 ] || return 0
    heard=
    # The controller gone (the watchdog's TERM) or the deadline passed:
    # undone here, with the previous release's hooks, not by the EXIT trap.
    trap 'heard=gone' TERM
    printf 'swpush switched %s\n' "$confirm_timeout"
    waited=0
    while [ -z "$heard" ] && [ "$waited" -lt "$confirm_timeout" ]; do
        # A trapped signal ends the wait at once.
        sleep 1 &
        wait "$!" || true
        waited=$((waited + 1))
    done
    trap 'exit 143' TERM
    case $heard in
        confirm) return 0 ;;
        abort) switch_back "the controller could not log in again after the switch" ;;
        gone) switch_back "the connection to the controller was lost before it confirmed the switch" ;;
        *) switch_back "no confirmation from the controller within $confirm_timeout s" ;;
    esac
}
