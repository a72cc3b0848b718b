#!/bin/sh
# swpush client step: runs on each client for one install, upgrade,
# rollback or remove, sent by the controller over SSH as
# `/bin/sh -c '<the libraries beside it + this file>' swpush-step ARGS`
# (src/step.rs lists them, in order).
# POSIX sh (dash, busybox ash); needs tar, sha256sum (or shasum -a 256),
# ssh-keygen >= 8.2 (OpenSSH), od, mktemp; date +%s for a health check. Leaves nothing behind: every
# temporary file is under one mktemp -d removed on exit.
#
# Arguments, each as KEY=VALUE, in any order, every one given once:
#   op= name= known_servers= prefix= state_dir= cache_dir= keep_releases=
#   busy_wait= busy_retries= busy_check= deadline=
#   NAME is the package the controller means; it is checked as a package
#   name before any path is made of it, then against the signed order,
#   never trusted alone. BUSY_CHECK may be empty. DEADLINE
#   (seconds, may be empty) is when the controller will have given up:
#   the step then stops and undoes its work even if it never hears that
#   the controller left (a connection cut silently, mid-upload).
#
# Protocol. Lines this step prints on stdout, each starting with `swpush `
# (anything else on stdout is noise the controller ignores):
#   swpush hello 1 CHALLENGE CURRENT_VERSION CURRENT_SHA256
#       first, before reading anything: a fresh random challenge (32 hex
#       digits) and what is installed of NAME here (`-` when nothing).
#   swpush phase verifying|waiting I N|installing|hook KIND VERSION
#       progress, for the live display; `hook`: a hook of release VERSION
#       (KIND pre_install, post_install, pre_remove) or its health_check
#       runs now, which is what a host that times out was stopped in.
#   swpush need SIZE
#       the package is not cached here: send exactly SIZE bytes of it now.
#   swpush switched SECONDS
#       the new release is current (and healthy): answer within SECONDS
#       (the order's confirm_timeout) or it is undone.
#   swpush done STATUS PREVIOUS VERSION MESSAGE...
#       the one completion line; the step exits after it. STATUS is a
#       report status (installed, upgraded, rolled-back, removed,
#       unchanged, skipped, rejected, busy, failed); PREVIOUS and VERSION
#       are `-` when there is none. A dry run ends with the status it would
#       end in and a message saying what it would do.
# What the controller writes on stdin:
#   `swpush order N`, then the N lines of the order text (src/order.rs),
#   then the armored SSHSIG signature up to `-----END SSH SIGNATURE-----`;
#   then, only after `swpush need SIZE`, SIZE bytes of package; then, only
#   after `swpush switched`, `swpush confirm` (a new login worked: keep the
#   release) or `swpush abort` (it did not: undo it).
#
# The order is verified with `ssh-keygen -Y verify -f KNOWN_SERVERS -I NAME
# -n swpush` (plus `-r revoked_servers` beside it when that file exists),
# and must carry the challenge sent above: no captured order can be
# replayed, and no clock is trusted. Every field is then checked against
# the controller's rules before it is used (check_order; docs/push.md), and
# an order signed for another host than the one `swpush enroll` recorded in
# host_name beside KNOWN_SERVERS is refused. Nothing changes on this host
# before those checks pass, and no package byte is asked for before the
# decision. Before decompressing or extracting, the signed unpacked_size
# must fit the free space (check_room) and cover the archive's own listing
# (check_unpacked_size).
#
# Files (docs/push.md): $STATE_DIR/packages/NAME, the current release's
# record and the commit point of every run; $STATE_DIR/releases/NAME/VERSION,
# one record per kept release (sha256, hooks, install time);
# $STATE_DIR/history/NAME, kept releases in the order they were installed;
# $CACHE_DIR/NAME/SHA256, the packages kept releases came from;
# $STATE_DIR/lock, held while a run changes this host (`pid`: PID BOOT
# START; `hooks`: the process group of each hook it started);
# $STATE_DIR/journal/NAME, what a run is doing to NAME, written before it
# changes anything and removed when it ends: one left behind tells the
# next run what to repair (docs/failure-modes.md, "Crash repair").
#
# Structure: `main` below is the run, phase by phase; each phase is a
# function in one of the libraries beside this file, whose header says
# which variables it reads and which it sets (all are the run's globals).
# The script defines functions only, and `main "$@"`, its last line, runs
# them: nothing runs before the whole script is parsed, and the EXIT trap
# finds every function it may need.

# shellcheck disable=SC2034,SC2154 # the phases' globals (see their headers)
main() {
    set -eu
    umask 022
    LC_ALL=C
    export LC_ALL

    parse_arguments "$@"      # arguments.sh
    start_run                 # run.sh: work dir, traps; nothing done yet
    watch_deadline            # watch.sh
    check_arguments           # arguments.sh: op, name; where NAME's files are
    read_state                # state.sh: what is installed
    say_hello                 # order.sh: the challenge, what is installed
    read_order                # order.sh
    verify_order
    check_order
    if [ "$dry_run" = true ]; then
        end_dry_run           # decide.sh: what it would do, and ends
    fi
    # Decided now, before the wait for the lock, unless a killed run left
    # a half-done state: that is repaired first (under the lock), then
    # decided.
    interrupted || decide     # repair.sh, decide.sh
    need_tools                # package.sh: tar, df for a package
    wait_while_busy           # busy.sh: then holds the lock
    repair                    # repair.sh: what an interrupted run left
    decide                    # decide.sh: again, on the state repaired
    write_journal             # repair.sh: what this run is about to do

    case $op in
        install | upgrade)
            receive_package   # package.sh: from the cache, or `swpush need`
            start_installing  # watch.sh: the controller watched from here
            unpack_and_check  # package.sh: room, plain tar, its entries
            stage_release     # release.sh
            switch_with_hooks # release.sh: pre_install, current, post_install
            check_health      # health.sh: until it passes, else switch back
            await_confirmation # health.sh: the controller logs in again
            commit_release    # record.sh
            prune_releases    # record.sh: keep_releases
            prune_cache       # package.sh
            ;;
        rollback)
            start_installing
            roll_back         # rollback.sh: the target's hooks, current
            commit "$records/$version" # record.sh: its own record
            prune_cache
            ;;
        remove)
            start_installing
            run_pre_remove    # remove.sh
            remove_package    # remove.sh: the state record first
            ;;
    esac
    target=$version
    finish "$result" "$done_message"
}

main "$@"
