# shellcheck shell=sh
# A remove: the current release's pre_remove, then everything of NAME, the
# state record first (the remove's commit point).
#
# Reads: name, previous, current_version, current_pre_remove (read_state,
#   state.sh); where NAME's files are (package_files), package_cache, work.
# Sets: committed (run.sh's: from the commit point on, the next run
#   finishes what an interruption left).
# shellcheck disable=SC2034,SC2154 # see Reads and Sets

# The current release's pre_remove; its failure ends the step (failed)
# with nothing removed.
run_pre_remove() {
    dir=$pkgdir/releases/$current_version
    if [ "$current_pre_remove" != - ]; then
        [ -f "$dir/$current_pre_remove" ] ||
            finish failed "pre_remove $current_pre_remove is missing from release $current_version: nothing removed"
        announce pre_remove "$current_version"
        run_hook remove "$dir" "$current_version" "$current_version" "$current_pre_remove" ||
            finish failed "pre_remove failed, nothing removed: $(tail_of "$work/hook.out")"
    fi
}

# Removes the state record (committed), then the rest, and logs it.
remove_package() {
    rm -f "$state_file"
    committed=1
    # Committed: an interruption from here is finished by the next run.
    forget_package
    echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) remove $name $previous - removed" >>"$state_dir/log"
}

# Everything of NAME but its state record, which goes first (a remove's
# commit point).
forget_package() {
    rm -rf "$pkgdir" "$records" "$package_cache"
    rm -f "$history"
}
