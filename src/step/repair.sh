# shellcheck shell=sh
# The journal a run writes before it changes anything, and the repair of
# what a run that was killed left: undone, or finished when it had
# committed (docs/failure-modes.md, "Crash repair").
#
# Reads: op, name, version, sha256, challenge, holder, previous; where
#   NAME's files are (package_files, state.sh), cache_dir, work.
# Sets: journal (write_journal); repaired, the repair's part of the
#   message (repair); link (current_disagrees); the state read again
#   (read_state, state.sh).
# shellcheck disable=SC2034,SC2154 # see Reads and Sets

# Whether `current` points elsewhere than the state record says; sets
# `link` to where it points (empty when there is no `current`).
current_disagrees() {
    link=
    if [ -L "$pkgdir/current" ]; then link=$(readlink "$pkgdir/current" 2>/dev/null || true); fi
    want=-
    [ "$current_version" = - ] || want=releases/$current_version
    [ "$link" != "$want" ] && { [ -n "$link" ] || [ "$want" != - ]; }
}

# Whether a killed run left a state the repair below must undo first (a
# release put aside or staged, a `current` the record does not name, a
# remove that did not finish): the first decision would judge that
# half-done state, and an `unchanged` or `skipped` would end the run
# before the repair. Also a journal its run left (killed, it could not
# remove it), and a committed release whose record or history entry is
# missing (killed after the commit point, before the rest).
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
        if [ -f "$records/$current_version" ] && in_history "$current_version"; then
            return 1
        fi
    fi
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
        if ! in_history "$current_version"; then
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

# What this run is about to do, for the next run should this one be killed
# (removed when it ends, also in failure).
write_journal() {
    [ -d "$state_dir/journal" ] || mkdir -p "$state_dir/journal"
    printf 'op %s\nprevious %s\nversion %s\nsha256 %s\nrun %s\nholder %s\n' \
        "$op" "$previous" "$version" "${sha256:--}" "$challenge" "$holder" >"$journal_file.$$"
    mv "$journal_file.$$" "$journal_file"
    journal=$journal_file
}

# Removes NAME's journal, and the journal folder once it holds no other
# (a run that changed nothing leaves nothing).
forget_journal() {
    if [ -e "$journal_file" ] || [ -L "$journal_file" ]; then rm -f "$journal_file"; fi
    if [ -d "$state_dir/journal" ]; then rmdir "$state_dir/journal" 2>/dev/null || true; fi
}
