# shellcheck shell=sh
# The commit: the state record names the release now current (the commit
# point of every run), then its own record, the history and the log; and
# which releases are kept after an install or upgrade.
#
# Reads: op, name, version, previous, result, sha256, challenge,
#   keep_releases, pre_install, post_install, pre_remove, aside, work;
#   where NAME's files are (package_files, state.sh).
# Sets: undo, committed (run.sh's: the run is finished from here on, not
#   undone).
# shellcheck disable=SC2034,SC2154 # see Reads and Sets

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

# The release record of an install or upgrade, committed; the release it
# replaced (a reinstall), put aside until now, goes.
commit_release() {
    printf 'version %s\nsha256 %s\ninstalled %s\npre_install %s\npost_install %s\npre_remove %s\n' \
        "$version" "$sha256" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$pre_install" "$post_install" \
        "$pre_remove" >"$work/record"
    commit "$work/record"
    # Committed: from here an interruption leaves the new release in place.
    rm -rf "$aside"
}

# Keep the newest keep_releases releases (by install order, in the history),
# and always the current and the previous one.
prune_releases() {
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
}
