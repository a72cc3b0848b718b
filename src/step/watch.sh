# shellcheck shell=sh
# The step's two watchdogs: the deadline, past which it stops whatever it
# waits on, and the controller's end of stdin, which from the first change
# on means that the controller is gone.
#
# Reads: deadline; fd 3, the controller's stdin (start_run, run.sh).
# Sets: step_pid.
# shellcheck disable=SC2154 # see Reads

# Past the deadline the whole process group is stopped: the step itself
# (its EXIT trap undoes what it started) and whatever it waits on, such
# as a `head` reading from a connection that went silent.
watch_deadline() {
    case $deadline in
        '' | *[!0-9]*) ;;
        *)
            step_pid=$$
            (
                trap - EXIT HUP INT TERM PIPE
                # In steps, so that it ends with a step killed outright too.
                waited=0
                while [ "$waited" -lt "$deadline" ]; do
                    sleep 2
                    kill -0 "$step_pid" 2>/dev/null || exit 0
                    waited=$((waited + 2))
                done
                kill -TERM 0
            ) </dev/null >/dev/null 2>&1 3<&- &
            ;;
    esac
}

# Starts the watchdog: from here on stdin carries nothing but the
# controller's answer to `swpush switched` (await_confirmation, health.sh),
# passed on as a signal; its end means the controller is gone (timed out,
# interrupted, connection lost), and the step stops and undoes what it
# started.
watch_controller() {
    step_pid=$$
    (
        trap - EXIT HUP INT TERM PIPE USR1 USR2
        while IFS= read -r said <&3; do
            case $said in
                "swpush confirm") kill -USR1 "$step_pid" 2>/dev/null ;;
                "swpush abort") kill -USR2 "$step_pid" 2>/dev/null ;;
            esac
        done
        kill -TERM "$step_pid" 2>/dev/null
    ) </dev/null >/dev/null 2>&1 &
}

# The op starts changing this host: the controller is watched from here on
# (watch_controller), and the live display says so.
start_installing() {
    watch_controller
    printf '%s\n' "swpush phase installing"
}
