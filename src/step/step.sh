#!/bin/sh
# swpush client step: runs on each client for one install, upgrade,
# rollback or remove, sent by the controller over SSH as
# `/bin/sh -c '<check_entries.sh + version.sh + this file>' swpush-step ARGS`.
# POSIX sh (dash, busybox ash); needs tar, sha256sum (or shasum -a 256),
# ssh-keygen >= 8.2 (OpenSSH), od, mktemp. Leaves nothing behind: every
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
#   swpush phase verifying|waiting I N|installing
#       progress, for the live display.
#   swpush need SIZE
#       the package is not cached here: send exactly SIZE bytes of it now.
#   swpush done STATUS PREVIOUS VERSION MESSAGE...
#       the one completion line; the step exits after it. STATUS is a
#       report status (installed, upgraded, rolled-back, removed,
#       unchanged, skipped, rejected, busy, failed); PREVIOUS and VERSION
#       are `-` when there is none. A dry run ends with the status it would
#       end in and a message saying what it would do.
# What the controller writes on stdin:
#   `swpush order N`, then the N lines of the order text (src/order.rs),
#   then the armored SSHSIG signature up to `-----END SSH SIGNATURE-----`;
#   then, only after `swpush need SIZE`, SIZE bytes of package.
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
set -eu
umask 022
LC_ALL=C
export LC_ALL

# --- functions: all defined before anything runs (the EXIT trap may need
# any of them at any point) -------------------------------------------------

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    trap '' HUP INT TERM PIPE
    # The hooks first: nothing of theirs may run on while it is undone.
    for group in $hook_groups; do kill -TERM "-$group" 2>/dev/null || true; done
    case $undo in
        switched) switch_to "$previous" && restore_release ;;
        staged) restore_release ;;
        flipped) switch_to "$previous" ;;
    esac
    # The watchdogs and whatever else this step started.
    kill -TERM 0 2>/dev/null
    rm -rf "$work" "$incoming" "$unpacked"
    # A run stopped between its commit and its end keeps its journal: the
    # next run finishes what it left and says so.
    if [ -n "$journal" ] && [ -z "$committed" ]; then forget_journal; fi
    if [ -n "$lock" ]; then rm -rf "$lock"; fi
}

# done STATUS MESSAGE: prints the completion line and ends the step.
finish() {
    message=$(printf '%s' "$2" | tr '\n\r\t' '   ')
    # Trailing blanks (a hook's last newline) say nothing.
    message=${message%"${message##*[! ]}"}
    if [ -n "$repaired" ]; then message="$repaired${message:+; $message}"; fi
    # Free the lock and the work dir before the completion line, not after
    # it in the EXIT trap: once the controller has the line, the next run
    # may start at once and must not find this one's lock still held.
    if [ -z "$undo" ]; then
        rm -rf "$work" "$incoming" "$unpacked"
        if [ -n "$journal" ]; then forget_journal && journal=; fi
        if [ -n "$lock" ]; then rm -rf "$lock" && lock=; fi
    fi
    # printf, never echo: dash's echo reads `\c`, `\n` and `\0NNN` in a
    # hook's words, losing the message or printing a second protocol line.
    printf 'swpush done %s %s %s %s\n' "$1" "$previous" "$target" "$message"
    exit 0
}

# Removes NAME's journal, and the journal folder once it holds no other
# (a run that changed nothing leaves nothing).
forget_journal() {
    rm -f "$journal_file"
    rmdir "$state_dir/journal" 2>/dev/null || true
}

# A hook's or tool's last output lines, as one line for a message.
tail_of() {
    tail -n 3 "$1" 2>/dev/null | tr '\n' ' ' | cut -c 1-300
}

# OpenSSL first: it uses the CPU's SHA instructions, coreutils does not
# (5x faster on 100 MB, which decides the push's wall time on busy hosts).
sha256_of() { # FILE
    if command -v openssl >/dev/null 2>&1; then
        openssl dgst -sha256 -r <"$1" | cut -d ' ' -f 1
    elif command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d ' ' -f 1
    else
        shasum -a 256 "$1" | cut -d ' ' -f 1
    fi
}

# key_value LINE: splits a `key value` line into `key` and `value`; false
# when the key is not of a-z, 0-9 and _. (Builtins only: the order and the
# records are read without starting a process per field.)
key_value() {
    key=${1%% *}
    value=${1#* }
    [ "$value" != "$1" ] || value=
    case $key in '' | *[!a-z0-9_]*) return 1 ;; esac
}

# read_record FILE: sets rec_KEY to the value of each `KEY VALUE` line of a
# record this step wrote (the state record, a release record).
read_record() {
    unset rec_version rec_sha256 rec_pre_install rec_post_install rec_pre_remove rec_replaced \
        rec_run rec_op rec_previous rec_holder
    while IFS= read -r line; do
        if key_value "$line"; then eval "rec_$key=\$value"; fi
    done <"$1"
}

# Reads what is installed: the state record is the commit point of every run.
read_state() {
    current_version=-
    current_sha=-
    current_post_install=-
    current_pre_remove=-
    current_replaced=
    current_run=
    if [ -f "$state_file" ]; then
        read_record "$state_file"
        current_version=${rec_version:--}
        current_sha=${rec_sha256:--}
        current_post_install=${rec_post_install:--}
        current_pre_remove=${rec_pre_remove:--}
        current_replaced=${rec_replaced:-}
        current_run=${rec_run:-}
    fi
    previous=$current_version
    target=$current_version
}

# Whether VERSION is a kept release here (its directory and its record).
kept() {
    [ -d "$pkgdir/releases/$1" ] && [ -f "$records/$1" ]
}

# The kept releases, oldest first, on one line.
kept_list() {
    list=
    [ -f "$history" ] || return 0
    while IFS= read -r v; do
        if kept "$v"; then list="$list $v"; fi
    done <"$history"
    printf '%s\n' "${list# }"
}

# The kept release installed just before the current one (empty if none).
before_current() {
    before=
    [ -f "$history" ] || return 0
    while IFS= read -r v; do
        [ "$v" != "$current_version" ] || break
        if kept "$v"; then before=$v; fi
    done <"$history"
    printf '%s\n' "$before"
}

# Applies the policy the signed order carries to what is installed. Sets
# `version` (the release that would be current after the run), `result`
# (the status a successful run reports) and `plan` (what the run would do,
# for a dry run); ends the step when there is nothing to do.
decide() {
    version=$asked
    result=installed
    done_message=
    case $op in
        install | upgrade) decide_package ;;
        rollback)
            [ "$current_version" != - ] || finish skipped "$name is not installed here"
            if [ "$asked" = - ]; then
                version=$(before_current)
                [ -n "$version" ] ||
                    finish skipped "nothing to roll back to: $name $current_version is the oldest release kept here"
            elif [ "$asked" = "$current_version" ]; then
                finish unchanged "$name $asked is already current"
            elif ! kept "$asked"; then
                finish skipped "$name $asked is not kept here (kept: $(kept_list))"
            fi
            result=rolled-back
            plan="would roll back $current_version → $version"
            ;;
        remove)
            [ "$current_version" != - ] || finish skipped "$name is not installed here"
            version=-
            result=removed
            plan="would remove $name $current_version and its kept releases ($(kept_list))"
            ;;
        *) finish rejected "this step cannot do $op" ;;
    esac
}

decide_package() {
    plan="would install $version"
    if [ "$current_version" = "$version" ]; then
        # --force reinstalls, also the same content (it repairs a release
        # damaged in place).
        if [ "$force" != true ]; then
            [ "$current_sha" != "$sha256" ] || finish unchanged "already current"
            finish skipped "$name $version is installed with other content: bump the version (or --force)"
        fi
        plan="would reinstall $version (--force)"
        done_message="reinstalled $version (--force)"
        [ "$op" = install ] || result=upgraded
        return 0
    fi
    case $op in
        install)
            if [ "$current_version" != - ]; then
                finish skipped "$name $current_version is installed: use swpush upgrade"
            fi
            ;;
        upgrade)
            if [ "$current_version" = - ]; then
                [ "$install_missing" = true ] ||
                    finish skipped "$name is not installed here (--install-missing installs it)"
            elif [ "$(version_cmp "$current_version" "$version")" = ">" ]; then
                # Enforced here, whatever the controller decided.
                [ "$allow_downgrade" = true ] ||
                    finish skipped "$name $current_version is newer than $version (--allow-downgrade goes back)"
                result=upgraded
                plan="would downgrade $current_version → $version"
            else
                result=upgraded
                plan="would upgrade $current_version → $version"
            fi
            ;;
    esac
}

# Whether a killed run left a state the repair below must undo first (a
# release put aside or staged, a `current` the record does not name, a
# remove that did not finish): the first decision would judge that
# half-done state, and an `unchanged` or `skipped` would end the run
# before the repair.
# Whether `current` points elsewhere than the state record says; sets
# `link` to where it points (empty when there is no `current`).
current_disagrees() {
    link=$(readlink "$pkgdir/current" 2>/dev/null || true)
    want=-
    [ "$current_version" = - ] || want=releases/$current_version
    [ "$link" != "$want" ] && { [ -n "$link" ] || [ "$want" != - ]; }
}

# Also a journal its run left (killed, it could not remove it), and a
# committed release whose record or history entry is missing (killed after
# the commit point, before the rest).
interrupted() {
    if current_disagrees; then return 0; fi
    for left in "$pkgdir"/releases/.*.old.* "$pkgdir"/releases/.*.new.*; do
        if [ -e "$left" ]; then return 0; fi
    done
    if [ -f "$journal_file" ]; then
        read_record "$journal_file"
        # shellcheck disable=SC2086 # PID BOOT START, split on purpose
        holder_alive ${rec_holder:-} || return 0
    fi
    if [ "$current_version" = - ]; then
        [ -e "$history" ]
    else
        if [ -f "$records/$current_version" ] && grep -qxF -- "$current_version" "$history" 2>/dev/null; then
            return 1
        fi
    fi
}

# start_of PID: when process PID started, as `proc:TICKS` (field 22 of
# /proc/PID/stat, since boot), or `-` where that cannot be read (no /proc).
# With the pid it tells a run apart from a later process given its pid.
start_of() {
    st=$(cat "/proc/$1/stat" 2>/dev/null) || st=
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

# repair: under the lock, undoes what an interrupted run of NAME left
# undone, or finishes what it committed, and says which in `repaired`
# (the host's message starts with it). The run's journal, when it left
# one, says what it was doing; without one, what is left says it.
repair() {
    fixed=
    j_op='' j_previous='' j_version='' j_run=''
    if [ -f "$journal_file" ]; then
        read_record "$journal_file"
        j_op=${rec_op:-} j_previous=${rec_previous:-} j_version=${rec_version:-}
        j_run=${rec_run:-}
        fixed=1
    fi
    # The record as it is now, under the lock (another run may have
    # committed since the first look).
    read_state
    if [ -d "$pkgdir/releases" ]; then
        # A release put aside for a reinstall of its version goes back, unless
        # the state record says that reinstall was committed.
        for left in "$pkgdir"/releases/.*.old.*; do
            [ -e "$left" ] || continue
            fixed=1
            if [ "${left##*/}" = "$current_replaced" ]; then
                rm -rf "$left"
                continue
            fi
            kept=${left##*/.}
            kept=${kept%.old.*}
            rm -rf "${pkgdir:?}/releases/$kept"
            mv "$left" "$pkgdir/releases/$kept"
        done
        for left in "$pkgdir"/releases/.*.new.*; do
            if [ -e "$left" ]; then fixed=1; fi
        done
        rm -rf "$pkgdir"/releases/.*.new.* "$pkgdir"/.current.*
    fi
    # Work dirs and half-received packages of steps that were killed outright
    # (their pid is gone).
    for left in "$cache_dir"/.incoming.* "$cache_dir"/.unpacked.*; do
        pid=${left##*.}
        case $pid in '' | *[!0-9]*) continue ;; esac
        if ! kill -0 "$pid" 2>/dev/null; then rm -f "$left"; fi
    done
    for left in "${TMPDIR:-/tmp}"/swpush.*.*; do
        pid=${left##*/swpush.}
        pid=${pid%%.*}
        case $pid in '' | *[!0-9]*) continue ;; esac
        if [ "$left" != "$work" ] && ! kill -0 "$pid" 2>/dev/null; then rm -rf "$left"; fi
    done
    if current_disagrees; then
        # A run was killed between switching and recording: undo its switch.
        # (A rollback's target is a kept release, with its record: it stays.)
        fixed=1
        switch_to "$current_version"
        case $link in
            releases/*/* | *..*) ;;
            releases/?*) if ! [ -f "$records/${link#releases/}" ]; then rm -rf "${pkgdir:?}/$link"; fi ;;
        esac
    fi
    if [ "$current_version" = - ]; then
        # A remove was killed after its commit point: finish it.
        if [ -e "$history" ]; then
            fixed=1
            forget_package
        fi
    else
        # Killed between recording and writing the release's own record, or
        # the history.
        if [ ! -f "$records/$current_version" ]; then
            fixed=1
            mkdir -p "$records"
            grep -v -e '^previous ' -e '^since ' -e '^replaced ' -e '^run ' "$state_file" >"$records/$current_version"
        fi
        if ! grep -qxF -- "$current_version" "$history" 2>/dev/null; then
            fixed=1
            mkdir -p "$state_dir/history"
            echo "$current_version" >>"$history"
        fi
    fi
    # The release an install or upgrade was staging when it was killed
    # (it has no record: it was never committed).
    case $j_op:$j_version in
        install:* | upgrade:*)
            case $j_version in
                '' | .* | */* | *..* | "$current_version") ;;
                *) if [ -d "$pkgdir/releases/$j_version" ] && [ ! -f "$records/$j_version" ]; then
                    rm -rf "${pkgdir:?}/releases/$j_version"
                fi ;;
            esac
            ;;
    esac
    forget_journal
    [ -n "$fixed" ] || return 0
    what=$j_op
    case $j_op in
        install | upgrade) [ "$j_previous" != "$j_version" ] || what=reinstall ;;
        rollback | remove) ;;
        *) what= ;;
    esac
    if [ -z "$what" ]; then
        outcome="$current_version is current"
        [ "$current_version" != - ] || outcome="$name is not installed"
        repaired="repaired what an interrupted run left: $outcome"
        return 0
    fi
    # Whether that run had committed: its id in the state record, or, for
    # a remove, no state record any more.
    if [ "$j_op" = remove ]; then
        if [ "$current_version" = - ]; then
            repaired="repaired an interrupted remove: $name is removed (it had committed)"
            return 0
        fi
    elif [ -n "$j_run" ] && [ "$current_run" = "$j_run" ]; then
        repaired="repaired an interrupted $what: $current_version is current (it had committed)"
        return 0
    fi
    if [ "$current_version" = - ]; then
        repaired="repaired an interrupted $what: $name is not installed, as before"
    else
        repaired="repaired an interrupted $what: $current_version is current again"
    fi
}

# Points `current` at releases/$1 (or removes it for `-`) in one rename.
switch_to() {
    if [ "$1" = - ]; then
        rm -f "$pkgdir/current"
    else
        ln -s "releases/$1" "$pkgdir/.current.$$"
        mv -T "$pkgdir/.current.$$" "$pkgdir/current"
    fi
}

# Everything of NAME but its state record, which goes first (a remove's
# commit point).
forget_package() {
    rm -rf "$pkgdir" "$records" "$package_cache"
    rm -f "$history"
}

# Starts the watchdog: from here on stdin carries nothing more, so its end
# means the controller is gone (timed out, interrupted, connection lost),
# and the step stops and undoes what it started.
watch_controller() {
    step_pid=$$
    (
        trap - EXIT HUP INT TERM PIPE
        cat <&3 >/dev/null 2>&1
        kill -TERM "$step_pid" 2>/dev/null
    ) </dev/null >/dev/null 2>&1 &
}

# run_hook OP DIR VERSION PREVIOUS HOOK: runs HOOK in release DIR, output
# to $work/hook.out. In the background, so that a signal (the watchdog's)
# interrupts the wait instead of waiting for the hook.
# In a process group of its own (setsid), recorded in the lock as `PGID
# START` by the hook's own process before the hook runs: when only the
# step is killed (the OOM killer), the hook runs on, and the next run stops
# that group before it touches anything. A hook that did not record itself
# under the pid waited for (setsid missing, or forked) is a failed hook.
run_hook() {
    (
        cd "$2"
        SWPUSH_OP=$1 SWPUSH_PACKAGE=$name SWPUSH_VERSION=$3 \
            SWPUSH_PREVIOUS_VERSION=$(if [ "$4" = - ]; then echo; else echo "$4"; fi) \
            SWPUSH_RELEASE_DIR=$2
        export SWPUSH_OP SWPUSH_PACKAGE SWPUSH_VERSION SWPUSH_PREVIOUS_VERSION SWPUSH_RELEASE_DIR
        exec setsid /bin/sh -c "$hook_launcher" swpush-hook "$lock/hooks" "$5" \
            </dev/null >"$work/hook.out" 2>&1 3<&-
    ) &
    hook_pid=$!
    hook_groups="$hook_groups $hook_pid"
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

# Records VERSION as current: the state record (the commit point), the
# release's record and the log.
commit() { # RECORD_FILE
    mkdir -p "$state_dir/packages" "$records"
    now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    {
        cat "$1"
        echo "previous $previous"
        echo "since $now"
        # Which run committed it: a journal of that run then knows it did.
        echo "run $challenge"
        # The release this run put aside, deleted right after the commit.
        if [ -n "${aside:-}" ] && [ -e "$aside" ]; then echo "replaced ${aside##*/}"; fi
    } >"$state_dir/packages/.$name.$$"
    mv "$state_dir/packages/.$name.$$" "$state_file"
    undo=
    committed=1
    if [ "$1" != "$records/$version" ]; then
        cp "$1" "$records/.$version.$$"
        mv "$records/.$version.$$" "$records/$version"
    fi
    echo "$now $op $name $previous $version $result" >>"$state_dir/log"
}

# Drops cached packages that no kept release came from.
prune_cache() {
    for cached_file in "$package_cache"/*; do
        [ -f "$cached_file" ] || continue
        if ! grep -qxF -- "sha256 ${cached_file##*/}" "$records"/* 2>/dev/null; then
            rm -f "$cached_file"
        fi
    done
}

# A compressed package is decompressed once, into a plain tar beside the
# cache (not in /tmp, which may be RAM): the entry check's two listings and
# the extraction then read that, instead of decompressing three times.
# unpack TOOL...: decompresses $package with TOOL (stdin to stdout).
unpack() {
    unpacked=$cache_dir/.unpacked.$$
    if ! "$@" <"$package" >"$unpacked" 2>"$work/unpack.err"; then
        finish failed "cannot decompress the package: $(tail_of "$work/unpack.err")"
    fi
    package=$unpacked
}

# The rules the controller applies, so that nothing here relies on it
# having applied them: a package name is [a-z0-9][a-z0-9._+-]{0,63}
# (src/package/manifest.rs), a version [A-Za-z0-9][A-Za-z0-9._+-]{0,63}
# (src/version.rs), a count decimal digits without a leading zero and at
# most 15 of them (shell arithmetic is 64-bit; 10^15 bytes is a petabyte).
# Each is checked before it is used in a path, a test or arithmetic.
is_package_name() {
    case $1 in '' | [!a-z0-9]* | *[!a-z0-9._+-]*) return 1 ;; esac
    [ "${#1}" -le 64 ]
}

is_version() {
    case $1 in '' | [!A-Za-z0-9]* | *[!A-Za-z0-9._+-]*) return 1 ;; esac
    [ "${#1}" -le 64 ]
}

is_count() {
    case $1 in 0) return 0 ;; '' | 0* | *[!0-9]*) return 1 ;; esac
    [ "${#1}" -le 15 ]
}

# Checks every field of the verified order against the controller's rules
# before any is used, and sets the run's settings from them; ends the step
# (rejected) at the first that is missing, unknown or malformed.
# shellcheck disable=SC2154 # order_KEY and flag are set through eval
check_order() {
    # The fields of an order (src/order.rs, format 2); any other is refused.
    order_fields="format op package version sha256 size unpacked_size allow_downgrade install_missing force dry_run host challenge pre_install post_install pre_remove issued"
    [ "${order_format:-}" = 2 ] ||
        finish rejected "unknown order format ${order_format:-} (this client reads format 2)"
    # shellcheck disable=SC2086 # keys are [a-z0-9_] only (key_value)
    for key in $seen; do
        case " $order_fields " in *" $key "*) ;; *) finish rejected "the order has an unknown field $key" ;; esac
    done
    for key in $order_fields; do
        case $seen in *" $key "*) ;; *) finish rejected "the order has no $key" ;; esac
    done
    [ "$order_challenge" = "$challenge" ] ||
        finish rejected "the order carries another challenge: a replayed or misdirected order"
    [ "$order_package" = "$name" ] || finish rejected "the order is for another package"
    [ "$order_op" = "$op" ] || finish rejected "the order is for another operation"
    [ -n "$order_host" ] || finish rejected "the order names no host"
    check_host_name
    # The version the order names: the package's, or the release
    # `rollback --to` asks for (`-`: the previous one); remove names none.
    asked=$order_version
    case $op:$asked in
        rollback:- | remove:-) ;;
        remove:*) finish rejected "the order's version \`$asked\` is not \`-\` (remove names no version)" ;;
        *) is_version "$asked" || finish rejected "the order's version \`$asked\` is not a version" ;;
    esac
    sha256=$order_sha256
    size=$order_size
    unpacked_size=$order_unpacked_size
    is_count "$size" || finish rejected "the order's size \`$size\` is not a number"
    is_count "$unpacked_size" || finish rejected "the order's unpacked_size \`$unpacked_size\` is not a number"
    case $op in
        install | upgrade)
            case $sha256 in
                *[!0-9a-f]*) finish rejected "the order's sha256 is not 64 lowercase hex digits" ;;
            esac
            [ "${#sha256}" -eq 64 ] || finish rejected "the order's sha256 is not 64 lowercase hex digits"
            [ "$size" != 0 ] || finish rejected "the order's size \`0\` is not a package size"
            ;;
        *)
            [ "$sha256" = - ] || finish rejected "the order's sha256 is not \`-\` ($op sends no package)"
            ;;
    esac
    for key in force allow_downgrade install_missing dry_run; do
        eval "flag=\$order_$key"
        case $flag in
            true | false) ;;
            *) finish rejected "the order's $key \`$flag\` is not true or false" ;;
        esac
    done
    force=$order_force
    allow_downgrade=$order_allow_downgrade
    install_missing=$order_install_missing
    dry_run=$order_dry_run
    case $order_issued in
        [0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]Z) ;;
        *) finish rejected "the order's issued time \`$order_issued\` is malformed" ;;
    esac
    pre_install=$order_pre_install
    post_install=$order_post_install
    pre_remove=$order_pre_remove
    # Hooks are paths inside the release, as the controller checked; a
    # signed order is not trusted to say otherwise.
    for hook in "$pre_install" "$post_install" "$pre_remove"; do
        case /$hook/ in
            //) finish rejected "the order names an empty hook path" ;;
            /-/) ;;
            //* | */../* | */./*) finish rejected "the order's hook path $hook is not inside the package" ;;
        esac
    done
}

# The host name `swpush enroll` recorded beside known_servers: an order
# signed for another host (a session relayed here by a host the
# controller meant) is refused. Without the file any name is accepted.
check_host_name() {
    host_name_file=$(dirname "$known_servers")/host_name
    [ -e "$host_name_file" ] || return 0
    bound=
    IFS= read -r bound <"$host_name_file" || [ -n "$bound" ] ||
        finish rejected "$host_name_file is empty or unreadable: it should hold this host's inventory name"
    [ "$order_host" = "$bound" ] ||
        finish rejected "the order is for host $order_host, but this host is $bound ($host_name_file)"
}

# Free KiB and mount point (`KIB MOUNT`) of the filesystem that holds $1,
# or its nearest existing parent. `df -P` is POSIX, busybox has it.
free_space() {
    fs_dir=$1
    while [ ! -d "$fs_dir" ]; do fs_dir=$(dirname "$fs_dir"); done
    df -Pk "$fs_dir" 2>/dev/null | awk 'NR == 2 { print $(NF - 2), $NF }'
}

# Whether the release fits: the signed unpacked size on the prefix's
# filesystem and, with COMPRESSED `yes`, as much again beside the cache for
# the package's plain copy (twice when both are one filesystem). Prints why
# not and returns 1 when it does not fit, or when df cannot tell.
room_shortage() { # COMPRESSED
    need_k=$(((unpacked_size + 1023) / 1024))
    room=$(free_space "$pkgdir" || true)
    room_k=${room%% *} room_at=${room#* }
    case $room_k in
        '' | *[!0-9]*) echo "cannot tell the free space for $pkgdir (df -Pk)" && return 1 ;;
    esac
    prefix_need_k=$need_k
    if [ "$1" = yes ]; then
        cache_room=$(free_space "$cache_dir" || true)
        cache_k=${cache_room%% *} cache_at=${cache_room#* }
        case $cache_k in
            '' | *[!0-9]*) echo "cannot tell the free space in $cache_dir (df -Pk)" && return 1 ;;
        esac
        if [ "$cache_at" = "$room_at" ]; then
            prefix_need_k=$((need_k * 2))
        elif [ "$cache_k" -lt "$need_k" ]; then
            echo "no space left on $cache_at to decompress $name $version: it unpacks to $unpacked_size bytes ($need_k KiB), $cache_at has $cache_k KiB free"
            return 1
        fi
    fi
    if [ "$room_k" -lt "$prefix_need_k" ]; then
        echo "no space left on $room_at for $name $version: the package unpacks to $unpacked_size bytes (needs $prefix_need_k KiB), $room_at has $room_k KiB free"
        return 1
    fi
}

# normalise_tree DIR: makes everything below DIR root's (when the step
# runs as root), without group or other write and without setuid/setgid
# bits, then checks that this holds for every entry; prints what does not
# and returns 1 otherwise. Symlinks are neither followed nor changed.
# Whether the step runs as root is read off DIR's parent, which this run
# made (`id` is not among the tools a minimal client has).
normalise_tree() {
    nt_root=
    if [ -n "$(find "${1%/*}" -prune -user 0 2>/dev/null)" ]; then nt_root=1; fi
    if [ -n "$nt_root" ] && ! nt_out=$(chown -hR 0:0 "$1" 2>&1); then
        printf '%s\n' "$nt_out" | head -n 1
        return 1
    fi
    if ! nt_out=$(chmod -R go-w,ug-s "$1" 2>&1); then
        printf '%s\n' "$nt_out" | head -n 1
        return 1
    fi
    nt_bad=$(find "$1" ! -type l \( -perm -0020 -o -perm -0002 -o -perm -4000 -o -perm -2000 \) -print 2>&1 | head -n 1)
    if [ -z "$nt_bad" ] && [ -n "$nt_root" ]; then
        nt_bad=$(find "$1" \( ! -user 0 -o ! -group 0 \) -print 2>&1 | head -n 1)
    fi
    if [ -n "$nt_bad" ]; then
        printf '%s\n' "${nt_bad#"$1"/} is still writable by others or not root's"
        return 1
    fi
}

# Before anything is decompressed or extracted: ends the step (failed,
# nothing installed) when the release would not fit (room_shortage).
check_room() {
    command -v df >/dev/null 2>&1 || finish failed "df is missing on this host: cannot check the free space for $name $version"
    compressed=no
    case $(od -An -N2 -tx1 "$package" | tr -d ' \n') in 1f8b | 28b5) compressed=yes ;; esac
    if ! why=$(room_shortage "$compressed"); then finish failed "$why: nothing installed"; fi
}

# Refuses (rejected) an archive whose own listing adds up to more than the
# signed unpacked size, counted as the controller counts it (regular files'
# bytes plus 4096 per entry, src/package/mod.rs): tar writes what it lists,
# so nothing past the size that check_room found room for is extracted.
# check_unpacked_size TAR_FLAGS
check_unpacked_size() {
    # shellcheck disable=SC2086 # one flag or none
    listed=$(tar $1 -tvf "$package" 2>/dev/null |
        awk '{ n += 4096; if (substr($0, 1, 1) == "-") n += $3 } END { printf "%.0f\n", n }')
    case $listed in '' | *[!0-9]*) listed=$((unpacked_size + 1)) ;; esac
    if [ "$listed" -gt "$unpacked_size" ]; then
        rm -f "$cached"
        rmdir "$package_cache" 2>/dev/null || true
        finish rejected "package refused: it unpacks to more than the signed unpacked_size $unpacked_size ($listed by its own listing)"
    fi
}

# Puts back what was there before this step touched the release directory.
restore_release() {
    rm -rf "$release"
    if [ -e "$aside" ]; then mv "$aside" "$release"; fi
}

# parse_arguments KEY=VALUE...: sets each of the step's arguments (see the
# header), every one of them exactly once; an unknown, repeated or missing
# one is a controller that does not speak this step, and ends it.
parse_arguments() {
    given=' '
    for arg in "$@"; do
        key=${arg%%=*} value=${arg#*=}
        case " $given " in
        *" $key "*)
            echo "swpush step: argument $key given twice" >&2
            exit 2
            ;;
        esac
        case $arg in
        op=*) op=$value ;;
        name=*) name=$value ;;
        known_servers=*) known_servers=$value ;;
        prefix=*) prefix=$value ;;
        state_dir=*) state_dir=$value ;;
        cache_dir=*) cache_dir=$value ;;
        keep_releases=*) keep_releases=$value ;;
        busy_wait=*) busy_wait=$value ;;
        busy_retries=*) busy_retries=$value ;;
        busy_check=*) busy_check=$value ;;
        deadline=*) deadline=$value ;;
        *)
            echo "swpush step: unknown argument: $(printf '%s' "$key" | cut -c 1-40)" >&2
            exit 2
            ;;
        esac
        given="$given$key "
    done
    for key in op name known_servers prefix state_dir cache_dir keep_releases \
        busy_wait busy_retries busy_check deadline; do
        case $given in
        *" $key "*) ;;
        *)
            echo "swpush step: argument $key missing" >&2
            exit 2
            ;;
        esac
    done
}

# --- the run -----------------------------------------------------------------

parse_arguments "$@"
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
boot=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || echo unknown)
holder="$$ $boot $(start_of "$$")"
# The hook's own process records its group (pid = pgid after setsid) and
# start time, as start_of prints it, then becomes the hook.
# shellcheck disable=SC2016 # expanded by that process
hook_launcher='st=$(cat "/proc/$$/stat" 2>/dev/null) || st=
st=${st##*) }
record=$1 hook=$2
set -- $st
if [ "$#" -ge 20 ]; then st=proc:${20}; else st=-; fi
printf "%s %s\n" "$$" "$st" >>"$record" || exit 125
exec /bin/sh "$hook"'
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 141' PIPE
trap 'exit 143' TERM
# The controller's end of stdin, kept for the watchdog (an asynchronous
# command would otherwise get /dev/null as its stdin).
exec 3<&0
# Past the deadline the whole process group is stopped: the step itself
# (its EXIT trap undoes what it started) and whatever it waits on, such
# as a `head` reading from a connection that went silent.
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

# The version current before and after this run, for the completion line.
previous=-
target=-

# Before any path is made of them: the arguments are the controller's, but
# the name is also checked against the order only later.
case $op in
    install | upgrade | rollback | remove) ;;
    *) finish rejected "this step cannot do $op" ;;
esac
is_package_name "$name" || finish rejected "the step's package name \`$name\` is not a package name"

state_file=$state_dir/packages/$name
records=$state_dir/releases/$name
history=$state_dir/history/$name
pkgdir=$prefix/$name
package_cache=$cache_dir/$name
journal_file=$state_dir/journal/$name
read_state

challenge=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
printf 'swpush hello 1 %s %s %s\n' "$challenge" "$current_version" "$current_sha"

# --- the order -------------------------------------------------------------
IFS= read -r header || finish failed "the controller sent no order"
case $header in
    "swpush order "*) lines=${header#swpush order } ;;
    *) finish rejected "the controller sent no order" ;;
esac
case $lines in
    '' | *[!0-9]*) finish rejected "malformed order header" ;;
esac
[ "$lines" -le 64 ] || finish rejected "order too long"
: >"$work/order"
# Each line is also kept as order_KEY, trusted only once the signature is.
i=0
seen=' '
while [ "$i" -lt "$lines" ]; do
    IFS= read -r line || finish rejected "the order was cut short"
    printf '%s\n' "$line" >>"$work/order"
    key_value "$line" || finish rejected "the order has a malformed line"
    case $seen in *" $key "*) finish rejected "the order names $key twice" ;; esac
    seen="$seen$key "
    eval "order_$key=\$value"
    i=$((i + 1))
done
: >"$work/order.sig"
i=0
while IFS= read -r line; do
    printf '%s\n' "$line" >>"$work/order.sig"
    [ "$line" = "-----END SSH SIGNATURE-----" ] && break
    i=$((i + 1))
    [ "$i" -lt 64 ] || finish rejected "the order's signature is malformed"
done

printf '%s\n' "swpush phase verifying"
if [ ! -e "$known_servers" ]; then
    finish rejected "no $known_servers here: this host trusts no controller (grant one with swpush enroll)"
fi
[ -r "$known_servers" ] || finish rejected "cannot read $known_servers"
command -v ssh-keygen >/dev/null 2>&1 ||
    finish rejected "ssh-keygen is missing: OpenSSH 8.2 or newer is needed to verify orders"
set -- -Y verify -f "$known_servers" -I "$name" -n swpush -s "$work/order.sig"
revoked=$(dirname "$known_servers")/revoked_servers
if [ -e "$revoked" ]; then set -- "$@" -r "$revoked"; fi
if ! ssh-keygen "$@" <"$work/order" >"$work/verify.out" 2>&1; then
    if grep -qi -e 'illegal option' -e 'unknown option' -e 'usage:' "$work/verify.out"; then
        finish rejected "ssh-keygen is too old to verify orders: OpenSSH 8.2 or newer is needed"
    fi
    # ssh-keygen does not say why; a signature good without -r was revoked.
    if [ -e "$revoked" ] && ssh-keygen -Y verify -f "$known_servers" -I "$name" -n swpush \
        -s "$work/order.sig" <"$work/order" >/dev/null 2>&1; then
        finish rejected "the controller's key is revoked here ($revoked)"
    fi
    finish rejected "the order is not signed by a key $known_servers trusts for package $name"
fi
check_order

# --- the decision ----------------------------------------------------------
if [ "$dry_run" = true ]; then
    # The committed state is what a repair would go back to: judge that.
    if interrupted; then repaired="would first repair what an interrupted run left"; fi
    decide
    case $op in
        install | upgrade)
            if [ -f "$package_cache/$sha256" ] &&
                [ "$(wc -c <"$package_cache/$sha256" | tr -d ' ')" = "$size" ]; then
                plan="$plan (the package is cached here)"
            else
                plan="$plan (would receive $size bytes)"
            fi
            # The prefix only: whether the package is compressed is not
            # known before it is here.
            if ! command -v df >/dev/null 2>&1; then
                plan="$plan; would fail: df is missing on this host"
                result=failed
            elif ! why=$(room_shortage no); then
                plan="$plan; would fail: $why"
                result=failed
            fi
            ;;
    esac
    if [ -e "$busy_file" ]; then
        plan="$plan; busy now: $busy_file exists"
    elif [ -d "$state_dir/lock" ] && lock_held; then
        plan="$plan; busy now: another swpush run holds $state_dir/lock"
    fi
    target=$version
    finish "$result" "$plan"
fi
interrupted || decide
case $op in
    install | upgrade)
        command -v tar >/dev/null 2>&1 || finish failed "tar is missing on this host"
        # Before any byte is asked for: check_room needs it.
        command -v df >/dev/null 2>&1 ||
            finish failed "df is missing on this host: cannot check the free space for $name $version"
        ;;
esac

# --- wait while busy -------------------------------------------------------
mkdir -p "$state_dir" "$cache_dir"
# Hooks run in a process group of their own (see run_hook): without setsid
# that cannot be done, and no hook runs.
command -v setsid >/dev/null 2>&1 ||
    finish failed "setsid is missing on this host (util-linux or busybox): hooks run in a process group of their own"
tries=0
while :; do
    reason=
    if [ -e "$busy_file" ]; then
        reason="$busy_file exists"
    elif [ -n "$busy_check" ] && sh -c "$busy_check" </dev/null >/dev/null 2>&1; then
        reason="busy_check says busy"
    elif ! mkdir "$state_dir/lock" 2>/dev/null; then
        # The holder's pid, boot and start time: a lock from before a
        # reboot, from a dead run, from a run whose pid another process has
        # now, or without a pid a minute after it was made, is stale.
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

# --- repair what an interrupted run left, then decide again ----------------
repair
decide
# What this run is about to do, for the next run should this one be killed
# (removed when it ends, also in failure).
mkdir -p "$state_dir/journal"
printf 'op %s\nprevious %s\nversion %s\nsha256 %s\nrun %s\nholder %s\n' \
    "$op" "$previous" "$version" "${sha256:--}" "$challenge" "$holder" >"$journal_file.$$"
mv "$journal_file.$$" "$journal_file"
journal=$journal_file

# --- rollback --------------------------------------------------------------
if [ "$op" = rollback ]; then
    watch_controller
    printf '%s\n' "swpush phase installing"
    dir=$pkgdir/releases/$version
    read_record "$records/$version"
    to_pre=${rec_pre_install:--}
    to_post=${rec_post_install:--}
    for hook in "$to_pre" "$to_post"; do
        if [ -n "$hook" ] && [ "$hook" != - ] && [ ! -f "$dir/$hook" ]; then
            finish failed "hook $hook is missing from release $version: nothing changed"
        fi
    done
    if [ -n "$to_pre" ] && [ "$to_pre" != - ] &&
        ! run_hook rollback "$dir" "$version" "$previous" "$to_pre"; then
        finish failed "pre_install of $version failed, nothing changed: $(tail_of "$work/hook.out")"
    fi
    switch_to "$version"
    undo=flipped
    if [ -n "$to_post" ] && [ "$to_post" != - ] &&
        ! run_hook rollback "$dir" "$version" "$previous" "$to_post"; then
        failure=$(tail_of "$work/hook.out")
        switch_to "$previous"
        undo=
        restored=$(restore_previous "$version")
        finish failed "post_install of $version failed, $previous is current again$restored: $failure"
    fi
    commit "$records/$version"
    prune_cache
    target=$version
    finish rolled-back ""
fi

# --- remove ----------------------------------------------------------------
if [ "$op" = remove ]; then
    watch_controller
    printf '%s\n' "swpush phase installing"
    dir=$pkgdir/releases/$current_version
    if [ "$current_pre_remove" != - ]; then
        [ -f "$dir/$current_pre_remove" ] ||
            finish failed "pre_remove $current_pre_remove is missing from release $current_version: nothing removed"
        run_hook remove "$dir" "$current_version" "$current_version" "$current_pre_remove" ||
            finish failed "pre_remove failed, nothing removed: $(tail_of "$work/hook.out")"
    fi
    rm -f "$state_file"
    committed=1
    # Committed: an interruption from here is finished by the next run.
    forget_package
    echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) remove $name $previous - removed" >>"$state_dir/log"
    target=-
    finish removed ""
fi

# --- the package -----------------------------------------------------------
cached=$package_cache/$sha256
if [ -f "$cached" ] && [ "$(wc -c <"$cached" | tr -d ' ')" = "$size" ] &&
    [ "$(sha256_of "$cached")" = "$sha256" ]; then
    :
else
    printf 'swpush need %s\n' "$size"
    # Hashed while it arrives: one pass over the bytes, not two.
    # Received beside the cache, not in /tmp: keeping it is then a rename,
    # not a second copy of every byte.
    incoming=$cache_dir/.incoming.$$
    head -c "$size" >"$incoming"
    got=$(wc -c <"$incoming" | tr -d ' ')
    [ "$got" = "$size" ] || finish rejected "received $got of $size bytes"
    [ "$(sha256_of "$incoming")" = "$sha256" ] ||
        finish rejected "the package received does not have the signed sha256"
    # Cached at once: a run interrupted from here on need not upload again.
    mkdir -p "$package_cache"
    mv "$incoming" "$cached"
    incoming=
fi
package=$cached

watch_controller
printf '%s\n' "swpush phase installing"
check_room
tar_flags=
case $(od -An -N4 -tx1 "$package" | tr -d ' \n') in
    1f8b*)
        # Without a gzip command (a minimal busybox), tar's own -z.
        if command -v gzip >/dev/null 2>&1; then unpack gzip -dc; else tar_flags=-z; fi
        ;;
    28b52ffd)
        command -v zstd >/dev/null 2>&1 ||
            finish failed "this host cannot read .tar.zst packages: install zstd or send .tar.gz"
        unpack zstd -dcq
        ;;
esac
# GNU tar as it comes: TAR_OPTIONS from the login's environment could make
# it list one thing and write another (--transform, --same-owner).
unset TAR_OPTIONS
if ! why=$(check_entries tar "$package" "$tar_flags"); then
    # Signed, but not something this client installs: not worth keeping.
    rm -f "$cached"
    rmdir "$package_cache" 2>/dev/null || true
    finish rejected "package refused: $why"
fi
check_unpacked_size "$tar_flags"

release=$pkgdir/releases/$version
# The release is built in a pen that only root can enter, made 0700 by the
# mkdir itself: tar writes the archive's modes as it goes (0666, 0777),
# and a local user who opened a file in that window would keep the
# descriptor through any later chmod. No other user can open anything in
# the pen, at any moment; the tree leaves it, in one rename on the same
# file system, only once it is root's and unwritable to others. The stage
# is a folder inside the pen, not the pen itself: an archive's `./` entry
# sets the mode of the folder it is extracted into.
pen=$pkgdir/releases/.$version.new.$$
stage=$pen/tree
# Named after this run's challenge too: the state record names it once
# the run is committed, and no other run can have the same name.
aside=$pkgdir/releases/.$version.old.$$.$challenge
mkdir -p "$pkgdir/releases"
rm -rf "$pen"
mkdir -m 700 "$pen"
mkdir "$stage"
# -o: the archive's owners are not restored (GNU: --no-same-owner).
# shellcheck disable=SC2086 # one flag or none
if ! tar $tar_flags -xof "$package" -C "$stage" >"$work/tar.out" 2>&1; then
    rm -rf "$pen"
    finish failed "extraction failed: $(tail_of "$work/tar.out")"
fi
if ! why=$(normalise_tree "$stage"); then
    rm -rf "$pen"
    finish failed "cannot make the release root's: $why"
fi
if [ -n "$unpacked" ]; then
    rm -f "$unpacked"
    unpacked=
fi
for hook in "$pre_install" "$post_install" "$pre_remove"; do
    if [ "$hook" != - ] && { [ ! -f "$stage/$hook" ] || [ -L "$stage/$hook" ]; }; then
        rm -rf "$pen"
        finish rejected "hook $hook is not a regular file in the package"
    fi
done
undo=staged
if [ -e "$release" ]; then mv "$release" "$aside"; fi
mv "$stage" "$release"
rm -rf "$pen"

if [ "$pre_install" != - ] && ! run_hook "$op" "$release" "$version" "$previous" "$pre_install"; then
    restore_release
    undo=
    finish failed "pre_install failed, nothing changed: $(tail_of "$work/hook.out")"
fi
switch_to "$version"
undo=switched
if [ "$post_install" != - ] && ! run_hook "$op" "$release" "$version" "$previous" "$post_install"; then
    failure=$(tail_of "$work/hook.out")
    switch_to "$previous"
    restore_release
    undo=
    if [ "$previous" = - ]; then
        finish failed "post_install failed, removed again: $failure"
    fi
    restored=$(restore_previous "$version")
    finish failed "post_install failed, $previous is current again$restored: $failure"
fi

# --- record ----------------------------------------------------------------
printf 'version %s\nsha256 %s\ninstalled %s\npre_install %s\npost_install %s\npre_remove %s\n' \
    "$version" "$sha256" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$pre_install" "$post_install" \
    "$pre_remove" >"$work/record"
commit "$work/record"
# Committed: from here an interruption leaves the new release in place.
rm -rf "$aside"

# Keep the newest keep_releases releases (by install order, in the history),
# and always the current and the previous one.
mkdir -p "$state_dir/history"
{
    grep -vxF -- "$version" "$history" 2>/dev/null || true
    echo "$version"
} >"$state_dir/history/.$name.$$"
mv "$state_dir/history/.$name.$$" "$history"
total=$(wc -l <"$history" | tr -d ' ')
if [ "$total" -gt "$keep_releases" ]; then
    head -n "$((total - keep_releases))" "$history" >"$work/prune"
    while IFS= read -r old; do
        case $old in '' | .* | */* | "$version" | "$previous") continue ;; esac
        rm -rf "${pkgdir:?}/releases/$old" "${records:?}/$old"
    done <"$work/prune"
    {
        # The previous release stays listed while it is kept.
        if [ "$previous" != - ] && grep -qxF -- "$previous" "$work/prune"; then echo "$previous"; fi
        grep -vxF -f "$work/prune" "$history" || true
    } >"$state_dir/history/.$name.$$"
    mv "$state_dir/history/.$name.$$" "$history"
fi
prune_cache
target=$version
finish "$result" "$done_message"
