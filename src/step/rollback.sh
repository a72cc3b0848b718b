# shellcheck shell=sh
# A rollback: `current` flipped back to a kept release, between that
# release's own hooks as its record names them (main commits it after).
#
# Reads: version, previous (decide); records, pkgdir, work.
# Sets: undo (run.sh's: flipped while `current` names the target
#   uncommitted).
# shellcheck disable=SC2034,SC2154 # see Reads and Sets

# The target's pre_install, the switch to it, its post_install; a failed
# hook ends the step (failed), `current` unchanged or switched back.
roll_back() {
    dir=$pkgdir/releases/$version
    read_record "$records/$version"
    to_pre=${rec_pre_install:--}
    to_post=${rec_post_install:--}
    for hook in "$to_pre" "$to_post"; do
        if [ -n "$hook" ] && [ "$hook" != - ] && [ ! -f "$dir/$hook" ]; then
            finish failed "hook $hook is missing from release $version: nothing changed"
        fi
    done
    if [ -n "$to_pre" ] && [ "$to_pre" != - ] && announce pre_install "$version" &&
        ! run_hook rollback "$dir" "$version" "$previous" "$to_pre"; then
        finish failed "pre_install of $version failed, nothing changed: $(tail_of "$work/hook.out")"
    fi
    switch_to "$version"
    undo=flipped
    if [ -n "$to_post" ] && [ "$to_post" != - ] && announce post_install "$version" &&
        ! run_hook rollback "$dir" "$version" "$previous" "$to_post"; then
        failure=$(tail_of "$work/hook.out")
        switch_to "$previous"
        undo=
        restored=$(restore_previous "$version")
        finish failed "post_install of $version failed, $previous is current again$restored: $failure"
    fi
}
