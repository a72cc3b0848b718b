# shellcheck shell=sh
# A release of an install or upgrade: built in a pen only root can enter,
# made root's, put in place, and made current between its hooks; and how
# `current` is switched, and a release put back, when that is undone.
#
# Reads: op, version, previous, pre_install, post_install, pre_remove,
#   challenge, package, tar_flags, unpacked, pkgdir, work; hook_status
#   (run_hook, hooks.sh).
# Sets: release, aside (stage_release: the release dir, and where the one
#   it replaces is put aside); undo (run.sh's: what cleanup undoes);
#   unpacked (emptied once the plain tar is extracted).
# shellcheck disable=SC2034,SC2154 # see Reads and Sets

# Extracts the package into the release dir of VERSION, made root's and
# unwritable to others before it is put in place, the release it replaces
# (a reinstall) put aside; ends the step (failed, or rejected for a hook
# that is not a regular file) with nothing changed otherwise.
stage_release() {
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
    [ -d "$pkgdir/releases" ] || mkdir -p "$pkgdir/releases"
    if [ -e "$pen" ] || [ -L "$pen" ]; then rm -rf "$pen"; fi
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
}

# pre_install, the switch of `current` to the release, post_install; a
# failed hook ends the step (failed) with the previous release current
# again (switch_back).
switch_with_hooks() {
    if [ "$pre_install" != - ] && announce pre_install "$version" &&
        ! run_hook "$op" "$release" "$version" "$previous" "$pre_install"; then
        restore_release
        undo=
        finish failed "pre_install failed, nothing changed: $(tail_of "$work/hook.out")"
    fi
    switch_to "$version"
    undo=switched
    if [ "$post_install" != - ] && announce post_install "$version" &&
        ! run_hook "$op" "$release" "$version" "$previous" "$post_install"; then
        switch_back "post_install failed" "$(tail_of "$work/hook.out")"
    fi
}

# switch_back WHAT [DETAIL]: after WHAT went wrong with the release
# switched to, the previous one is current again (or, for an install, the
# package is gone again), its post_install run to restore what pre_install
# stopped; ends the step failed, saying so.
switch_back() {
    switch_to "$previous"
    restore_release
    undo=
    if [ "$previous" = - ]; then
        finish failed "$1, removed again${2:+: $2}"
    fi
    restored=$(restore_previous "$version")
    finish failed "$1, $previous is current again$restored${2:+: $2}"
}

# normalise_tree DIR: makes everything below DIR root's (when the step
# runs as root), without group or other write and without setuid/setgid
# bits, then checks that this holds for every entry; prints what does not
# and returns 1 otherwise. Symlinks are neither followed nor changed.
# Whether the step runs as root is read off DIR's parent, which this run
# made (`id` is not among the tools a minimal client has).
# Most trees need no change (tar -o as root writes root's files, and most
# packages' modes pass): one walk finds what to change, and only a tree
# that has some is changed and walked again.
normalise_tree() {
    nt_dir=$1 nt_root=
    if [ -n "$(find "${nt_dir%/*}" -prune -user 0 2>/dev/null)" ]; then nt_root=1; fi
    set -- ! -type l \( -perm -0020 -o -perm -0002 -o -perm -4000 -o -perm -2000 \)
    if [ -n "$nt_root" ]; then set -- \( \( "$@" \) -o ! -user 0 -o ! -group 0 \); fi
    nt_bad=$(find "$nt_dir" "$@" -print 2>&1) || :
    [ -n "$nt_bad" ] || return 0
    if [ -n "$nt_root" ] && ! nt_out=$(chown -hR 0:0 "$nt_dir" 2>&1); then
        printf '%s\n' "${nt_out%%"
"*}"
        return 1
    fi
    if ! nt_out=$(chmod -R go-w,ug-s "$nt_dir" 2>&1); then
        printf '%s\n' "${nt_out%%"
"*}"
        return 1
    fi
    nt_bad=$(find "$nt_dir" "$@" -print 2>&1) || :
    if [ -n "$nt_bad" ]; then
        nt_bad=${nt_bad%%"
"*}
        printf '%s\n' "${nt_bad#"$nt_dir"/} is still writable by others or not root's"
        return 1
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

# Puts back what was there before this step touched the release directory.
restore_release() {
    rm -rf "$release"
    if [ -e "$aside" ]; then mv "$aside" "$release"; fi
}
