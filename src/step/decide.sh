# shellcheck shell=sh
# The decision: the signed policy applied to what is installed, and what a
# dry run reports of it. src/step.rs tests decide under dash and busybox
# with a table of cases.
#
# Reads: op, name, asked, sha256, force, allow_downgrade, install_missing
#   (check_order, order.sh); current_version, current_sha (read_state,
#   state.sh); the kept releases (state.sh); size, package_cache,
#   busy_file, state_dir (end_dry_run).
# Sets: version result done_message plan (decide); repaired, target
#   (end_dry_run).
# shellcheck disable=SC2034,SC2154 # see Reads and Sets

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

# A dry run ends here, with the status it would end in and what it would
# do: judged on the committed state, which a repair would go back to, with
# what would stop it now (no room, a busy host) said too.
end_dry_run() {
    if interrupted; then repaired="would first repair what an interrupted run left"; fi
    decide
    case $op in
        install | upgrade)
            if [ -f "$package_cache/$sha256" ] &&
                [ "$(size_of "$package_cache/$sha256")" = "$size" ]; then
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
}
