# shellcheck shell=sh
# The commit: the state record names the release now current (the commit
# point of every run), then its own record, the history and the log; and
# which releases are kept after an install or upgrade.
#
# Reads: op, name, version, previous, result, sha256, challenge,
#   keep_releases, pre_install, post_install, pre_remove, aside, work;
#   where NAME's files are (package_files, state.sh).
# Sets: undo, committed (run.sh's: the run is finished from here on, not
#   undone); stamped (stamp).
# shellcheck disable=SC2034,SC2154 # see Reads and Sets

# Records VERSION as current: the state record (the commit point), the
# release's record and the log.
commit() { # RECORD_FILE
    if [ ! -d "$state_dir/packages" ] || [ ! -d "$records" ]; then mkdir -p "$state_dir/packages" "$records"; fi
    stamp
    {
        print_lines "$1"
        echo "previous $previous"
        echo "since $stamped"
        # Which run committed it: a journal of that run then knows it did.
        echo "run $challenge"
        # The release this run put aside, deleted right after the commit.
        if [ -n "${aside:-}" ] && [ -e "$aside" ]; then echo "replaced ${aside##*/}"; fi
    } >"$state_dir/packages/.$name.$$"
    mv "$state_dir/packages/.$name.$$" "$state_file"
    undo=
    committed=1
    if [ "$1" != "$records/$version" ]; then
        print_lines "$1" >"$records/.$version.$$"
        mv "$records/.$version.$$" "$records/$version"
    fi
    echo "$stamped $op $name $previous $version $result" >>"$state_dir/log"
}

# Sets `stamped`, when this run commits (UTC), once: the release record and
# the state record say the same time.
stamp() {
    [ -n "${stamped:-}" ] || stamped=$(date -u +%Y-%m-%dT%H:%M:%SZ)
}

# print_lines FILE: prints FILE's lines as cat would (a record is a few
# short lines: no process is started for them).
print_lines() {
    while IFS= read -r pl_line || [ -n "$pl_line" ]; do printf '%s\n' "$pl_line"; done <"$1"
}

# The release record of an install or upgrade, committed; the release it
# replaced (a reinstall), put aside until now, goes.
commit_release() {
    stamp
    printf 'version %s\nsha256 %s\ninstalled %s\npre_install %s\npost_install %s\npre_remove %s\n' \
        "$version" "$sha256" "$stamped" "$pre_install" "$post_install" \
        "$pre_remove" >"$work/record"
    commit "$work/record"
    # Committed: from here an interruption leaves the new release in place.
    if [ -e "$aside" ] || [ -L "$aside" ]; then rm -rf "$aside"; fi
}

# Keep the newest keep_releases releases (by install order, in the history),
# and always the current and the previous one. The history is VERSION
# appended to the others; the oldest past keep_releases are dropped from it
# and deleted, but for the previous release, which stays listed (first:
# every line before it is dropped). Written once; builtins but rm and mv.
prune_releases() {
    [ -d "$state_dir/history" ] || mkdir -p "$state_dir/history"
    total=1
    if [ -f "$history" ]; then
        while IFS= read -r old || [ -n "$old" ]; do
            [ "$old" = "$version" ] || total=$((total + 1))
        done <"$history"
    fi
    drop=$((total - keep_releases)) i=0
    {
        if [ -f "$history" ]; then
            while IFS= read -r old || [ -n "$old" ]; do
                [ "$old" != "$version" ] || continue
                i=$((i + 1))
                if [ "$i" -gt "$drop" ] || { [ "$old" = "$previous" ] && [ "$previous" != - ]; }; then
                    printf '%s\n' "$old"
                    continue
                fi
                case $old in '' | .* | */*) continue ;; esac
                rm -rf "${pkgdir:?}/releases/$old" "${records:?}/$old"
            done <"$history"
        fi
        echo "$version"
    } >"$state_dir/history/.$name.$$"
    mv "$state_dir/history/.$name.$$" "$history"
}
