# shellcheck shell=sh
# Waiting while the host is busy, then holding the lock: the lock names its
# holder (pid, boot, start time), so that the lock of a run that died is
# taken over, and the hooks it left running are stopped first.
#
# Reads: busy_file, busy_check, busy_retries, busy_wait, state_dir,
#   cache_dir (the arguments); boot, holder, work (start_run, run.sh).
# Sets: lock (wait_while_busy); reason (check_idle, wait_while_busy);
#   holder_pid holder_boot holder_start (lock_held).
# shellcheck disable=SC2154 # see Reads

# start_of PID: when process PID started, as `proc:TICKS` (field 22 of
# /proc/PID/stat, since boot), or `-` where that cannot be read (no /proc).
# With the pid it tells a run apart from a later process given its pid.
start_of() {
    # (read, not cat: no process; a last line without newline is read too)
    st=
    { IFS= read -r st <"/proc/$1/stat"; } 2>/dev/null || :
    # The command name (field 2) may hold spaces and parentheses: the
    # fields counted are those after its closing `) `.
    st=${st##*) }
    # shellcheck disable=SC2086 # the fields, split on purpose
    set -- $st
    if [ "$#" -ge 20 ]; then echo "proc:${20}"; else echo -; fi
}

# holder_alive PID [BOOT [START]]: whether the run a lock or journal names
# still runs: same boot, the pid exists, and it started when that run did.
# A start time that cannot be compared (an old lock without one, no /proc
# now) counts as the same: a lock is taken over only when it is surely
# stale (fail closed: a live run's lock is never broken).
holder_alive() {
    case ${1:-} in '' | *[!0-9]*) return 1 ;; esac
    if [ -n "${2:-}" ] && [ "$2" != "$boot" ]; then return 1; fi
    kill -0 "$1" 2>/dev/null || [ -d "/proc/$1" ] || return 1
    [ -n "${3:-}" ] && [ "$3" != - ] || return 0
    now=$(start_of "$1")
    [ "$now" = - ] || [ "$now" = "$3" ]
}

# stop_group PGID START: stops a hook's process group left by a run that
# died (its step killed alone, the hook ran on): TERM, up to 5 s to end,
# then KILL. Not when the group's leader pid now names a process started
# at another time (the group is long gone, the pid reused). False when a
# group of that id runs but nothing tells whether it is the hook's (no
# start time was recorded, no /proc): the host then stays busy while it
# runs, rather than have an unknown group killed or the hook run on.
stop_group() {
    case ${1:-} in '' | *[!0-9]*) return 0 ;; esac
    if [ "${2:--}" = - ]; then
        if kill -0 "-$1" 2>/dev/null; then return 1; fi
        return 0
    fi
    if kill -0 "$1" 2>/dev/null; then
        now=$(start_of "$1")
        if [ "$now" != - ] && [ "$now" != "$2" ]; then return 0; fi
    fi
    kill -TERM "-$1" 2>/dev/null || return 0
    waited=0
    while kill -0 "-$1" 2>/dev/null && [ "$waited" -lt 5 ]; do
        sleep 1
        waited=$((waited + 1))
    done
    kill -KILL "-$1" 2>/dev/null || true
}

# Whether the lock is held by a live run (not one that died: that lock is
# taken over). A lock without a pid yet counts as held.
lock_held() {
    holder_pid='' holder_boot='' holder_start=''
    if [ -f "$state_dir/lock/pid" ]; then
        read -r holder_pid holder_boot holder_start <"$state_dir/lock/pid" || true
    fi
    if [ -n "$holder_pid" ]; then
        holder_alive "$holder_pid" "$holder_boot" "$holder_start"
    else
        [ -z "$(find "$state_dir/lock" -maxdepth 0 -mmin +1 2>/dev/null)" ]
    fi
}

# take_over_lock: frees the lock of a run that died, stopping the hooks
# it recorded there first (when they are of this boot: after a reboot
# their ids mean nothing). False, keeping the lock, while one of them
# still runs and cannot be stopped safely (see stop_group).
take_over_lock() { # HOLDER_BOOT
    if [ -f "$state_dir/lock/hooks" ] && { [ -z "$1" ] || [ "$1" = "$boot" ]; }; then
        while read -r group started; do
            stop_group "$group" "$started" || return 1
        done <"$state_dir/lock/hooks"
    fi
    rm -rf "$state_dir/lock"
}

# check_idle: whether busy_check (when set) says the host is idle: exit 1.
# Exit 0 is busy; any other exit is a check that failed (a syntax error: 2,
# a command not found: 127), which says nothing about the host and counts
# as busy, with the check's last stderr lines in `reason`.
check_idle() {
    [ -n "$busy_check" ] || return 0
    checked=0
    sh -c "$busy_check" </dev/null >/dev/null 2>"$work/busy_check.err" || checked=$?
    case $checked in
        0) reason="busy_check says busy" ;;
        1) return 0 ;;
        *) reason="busy_check failed (exit $checked): $(tail_of "$work/busy_check.err")" ;;
    esac
    return 1
}

# Waits while the host is busy ($busy_file, busy_check, another run's
# lock), busy_retries times busy_wait seconds at most, then takes the lock;
# ends the step (busy) when it is still busy then.
wait_while_busy() {
    if [ ! -d "$state_dir" ] || [ ! -d "$cache_dir" ]; then mkdir -p "$state_dir" "$cache_dir"; fi
    # Hooks run in a process group of their own (see run_hook): without
    # setsid that cannot be done, and no hook runs.
    command -v setsid >/dev/null 2>&1 ||
        finish failed "setsid is missing on this host (util-linux or busybox): hooks run in a process group of their own"
    tries=0
    while :; do
        reason=
        if [ -e "$busy_file" ]; then
            reason="$busy_file exists"
        elif ! check_idle; then
            : # reason set by check_idle
        elif ! mkdir "$state_dir/lock" 2>/dev/null; then
            # The holder's pid, boot and start time: a lock from before a
            # reboot, from a dead run, from a run whose pid another process
            # has now, or without a pid a minute after it was made, is stale.
            if lock_held; then
                reason="another swpush run holds $state_dir/lock"
            elif take_over_lock "$holder_boot"; then
                continue # its run died
            else
                reason="the hooks of a run that died still run (see $state_dir/lock/hooks)"
            fi
        else
            lock=$state_dir/lock
            echo "$holder" >"$lock/pid"
            break
        fi
        [ "$tries" -lt "$busy_retries" ] || finish busy "still busy after $tries retries: $reason"
        tries=$((tries + 1))
        printf 'swpush phase waiting %s %s\n' "$tries" "$busy_retries"
        sleep "$busy_wait"
    done
}
