# shellcheck shell=sh
# The run itself: what it holds while it works (start_run), how it ends
# (finish: the one completion line) and what is undone when it ends
# otherwise (cleanup, the EXIT trap).
#
# Reads: previous, target, repaired, undo, hook_groups, work, incoming,
#   unpacked, journal, committed, lock (set here, then by the phases);
#   version (decide.sh).
# Sets: busy_file work lock incoming unpacked undo hook_groups committed
#   journal repaired boot holder previous target heard (start_run); the
#   traps and fd 3, the controller's stdin kept for the watchdog.
# shellcheck disable=SC2034 # what start_run sets is read by the other libraries

# start_run: the run's work dir, its state (nothing done yet) and identity,
# and the traps that undo what it starts, however it ends.
start_run() {
    busy_file=/run/swpush/busy
    work=$(mktemp -d "${TMPDIR:-/tmp}/swpush.$$.XXXXXXXX")
    lock=
    # A package being received into the cache folder (so keeping it is a rename).
    incoming=
    # The package decompressed, beside the cache, while it is installed.
    unpacked=
    # What an interruption must undo: "" (nothing changed yet), staged (a
    # release dir was put in place), switched (`current` points at it too),
    # flipped (`current` points at another kept release: a rollback).
    undo=
    # The process groups of the hooks this run started (see run_hook).
    hook_groups=
    # Set once the state record names what this run installed (or, for a
    # remove, no longer names NAME): the run is then finished, not undone.
    committed=
    # This run's journal, once written; and what the repair of an earlier,
    # interrupted run did, for the message.
    journal=
    repaired=
    # This run, as a lock or journal names it: pid, boot, start time.
    boot=
    { read -r boot </proc/sys/kernel/random/boot_id; } 2>/dev/null || :
    boot=${boot:-unknown}
    holder="$$ $boot $(start_of "$$")"
    trap cleanup EXIT
    trap 'exit 129' HUP
    trap 'exit 130' INT
    trap 'exit 141' PIPE
    trap 'exit 143' TERM
    # The controller's answer to `swpush switched`, from the watchdog
    # (await_confirmation, health.sh); one sent before it is asked for is
    # forgotten there. A handler, not `trap ''`: hooks must not inherit
    # these signals ignored.
    heard=
    trap 'heard=confirm' USR1
    trap 'heard=abort' USR2
    # The controller's end of stdin, kept for the watchdog (an asynchronous
    # command would otherwise get /dev/null as its stdin).
    exec 3<&0
    # The version current before and after this run, for the completion line.
    previous=-
    target=-
}

cleanup() {
    trap '' HUP INT TERM PIPE USR1 USR2
    # The hooks first: nothing of theirs may run on while it is undone.
    for group in $hook_groups; do kill -TERM "-$group" 2>/dev/null || true; done
    case $undo in
        # As after a failed post_install (switch_back, release.sh): the
        # previous release's post_install restarts what pre_install stopped.
        switched)
            # shellcheck disable=SC2154 # version: see Reads
            switch_to "$previous" && restore_release &&
                if [ "$previous" != - ]; then restore_previous "$version" >/dev/null; fi
            ;;
        staged) restore_release ;;
        flipped) switch_to "$previous" ;;
    esac
    # The watchdogs and whatever else this step started.
    kill -TERM 0 2>/dev/null
    if [ -n "$work$incoming$unpacked" ]; then rm -rf "$work" "$incoming" "$unpacked"; fi
    # A run stopped between its commit and its end keeps its journal: the
    # next run finishes what it left and says so.
    if [ -n "$journal" ] && [ -z "$committed" ]; then forget_journal; fi
    if [ -n "$lock" ]; then rm -rf "$lock"; fi
}

# done STATUS MESSAGE: prints the completion line and ends the step.
finish() {
    message=$2
    # (a process only for a message that needs it: most do not)
    case $message in
        *[[:cntrl:]]*) message=$(printf '%s' "$2" | tr '\n\r\t' '   ') ;;
    esac
    # Trailing blanks (a hook's last newline) say nothing.
    message=${message%"${message##*[! ]}"}
    if [ -n "$repaired" ]; then message="$repaired${message:+; $message}"; fi
    # Free the lock and the work dir before the completion line, not after
    # it in the EXIT trap: once the controller has the line, the next run
    # may start at once and must not find this one's lock still held.
    # (One rm for the files, the journal's among them; the EXIT trap then
    # has nothing left to remove.)
    if [ -z "$undo" ]; then
        rm -rf "$work" "$incoming" "$unpacked" ${journal:+"$journal_file"}
        work='' incoming='' unpacked=''
        if [ -n "$journal" ]; then forget_journal && journal=; fi
        if [ -n "$lock" ]; then rm -rf "$lock" && lock=; fi
    fi
    # printf, never echo: dash's echo reads `\c`, `\n` and `\0NNN` in a
    # hook's words, losing the message or printing a second protocol line.
    printf 'swpush done %s %s %s %s\n' "$1" "$previous" "$target" "$message"
    exit 0
}

# A hook's or tool's last output lines, as one line for a message.
tail_of() {
    tail -n 3 "$1" 2>/dev/null | tr '\n' ' ' | cut -c 1-300
}
