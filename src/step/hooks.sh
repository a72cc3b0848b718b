# shellcheck shell=sh
# Running a package's hooks: each in a process group of its own, recorded
# in the lock before the hook runs, so that a run that dies cannot leave
# one running unseen.
#
# Reads: name, lock, work; previous, current_post_install, pkgdir
#   (restore_previous).
# Sets: hook_groups (run.sh's: cleanup stops them); hook_pid, hook_status.
# shellcheck disable=SC2154 # see Reads

# announce KIND VERSION: tells the controller that KIND (pre_install,
# post_install, pre_remove, health_check) of release VERSION runs now: what
# a host that times out was stopped in. Never from restore_previous, whose
# output is captured.
announce() {
    printf 'swpush phase hook %s %s\n' "$1" "$2"
}

# run_hook OP DIR VERSION PREVIOUS HOOK: runs HOOK in release DIR, output
# to $work/hook.out: start_hook, then wait_hook.
run_hook() {
    start_hook "$@" && wait_hook
}

# start_hook OP DIR VERSION PREVIOUS HOOK [command]: starts HOOK, a script
# in release DIR (or, with `command`, a command line: the health check), in
# the background, so that a signal (the watchdog's) interrupts the wait
# instead of waiting for the hook; hook_pid is its process group.
# In a process group of its own (setsid), recorded in the lock as `PGID
# START` by the hook's own process before the hook runs: when only the
# step is killed (the OOM killer), the hook runs on, and the next run stops
# that group before it touches anything. A hook that did not record itself
# under the pid waited for (setsid missing, or forked) is a failed hook.
start_hook() {
    (
        cd "$2" || exit
        SWPUSH_OP=$1 SWPUSH_PACKAGE=$name SWPUSH_VERSION=$3 \
            SWPUSH_PREVIOUS_VERSION=$(if [ "$4" = - ]; then echo; else echo "$4"; fi) \
            SWPUSH_RELEASE_DIR=$2
        export SWPUSH_OP SWPUSH_PACKAGE SWPUSH_VERSION SWPUSH_PREVIOUS_VERSION SWPUSH_RELEASE_DIR
        # The hook's own process records its group (pid = pgid after
        # setsid) and start time, as start_of prints it, then becomes the
        # hook.
        # shellcheck disable=SC2016 # expanded by that process
        hook_launcher='st=$(cat "/proc/$$/stat" 2>/dev/null) || st=
st=${st##*) }
record=$1 hook=$2 kind=$3
set -- $st
if [ "$#" -ge 20 ]; then st=proc:${20}; else st=-; fi
printf "%s %s\n" "$$" "$st" >>"$record" || exit 125
if [ "$kind" = command ]; then exec /bin/sh -c "$hook"; fi
exec /bin/sh "$hook"'
        exec setsid /bin/sh -c "$hook_launcher" swpush-hook "$lock/hooks" "$5" "${6:-script}" \
            </dev/null >"$work/hook.out" 2>&1 3<&-
    ) &
    hook_pid=$!
    hook_groups="$hook_groups $hook_pid"
}

# Waits for the hook start_hook started; its exit status, or 1 when it did
# not run in a process group of its own.
wait_hook() {
    hook_status=0
    wait "$hook_pid" || hook_status=$?
    if ! grep -q "^$hook_pid " "$lock/hooks" 2>/dev/null; then
        echo "swpush: the hook could not start in a process group of its own (setsid)" >>"$work/hook.out"
        return 1
    fi
    return "$hook_status"
}

# After a failed post_install: the previous release's post_install, run as
# a rollback, restores what pre_install stopped. Prints what went wrong.
restore_previous() { # FAILED_VERSION
    if [ "$current_post_install" != - ] && [ -f "$pkgdir/releases/$previous/$current_post_install" ] &&
        ! run_hook rollback "$pkgdir/releases/$previous" "$previous" "$1" "$current_post_install"; then
        printf ' (its post_install failed too: %s)\n' "$(tail_of "$work/hook.out")"
    fi
}
