# shellcheck shell=sh
# Whether a release fits on this host, told before anything is
# decompressed or extracted (and, in a dry run, before anything is sent).
#
# Reads: name, version, unpacked_size, pkgdir, cache_dir; magic (check_room:
#   the package's first bytes, unpack_and_check, package.sh).
# Sets: nothing the other libraries read.
# shellcheck disable=SC2154 # see Reads

# Free KiB and mount point (`KIB MOUNT`) of the filesystem that holds $1,
# or its nearest existing parent. `df -P` is POSIX, busybox has it.
# (Builtins but df: a parent is the path to its last `/`, df's second line
# is split by the shell; this runs in a command substitution, so `set --`
# changes nothing outside.)
free_space() {
    fs_dir=$1
    while [ ! -d "$fs_dir" ]; do
        case $fs_dir in
            */*) fs_dir=${fs_dir%/*} && fs_dir=${fs_dir:-/} ;;
            *) fs_dir=. ;;
        esac
    done
    fs_out=$(df -Pk "$fs_dir" 2>/dev/null) || :
    fs_line=${fs_out#*"
"}
    [ "$fs_line" != "$fs_out" ] || return 0
    fs_line=${fs_line%%"
"*}
    set -f
    # shellcheck disable=SC2086 # df's fields, split on purpose
    set -- $fs_line
    [ "$#" -ge 3 ] || return 0
    eval "printf '%s %s\\n' \"\${$(($# - 2))}\" \"\${$#}\""
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

# Before anything is decompressed or extracted: ends the step (failed,
# nothing installed) when the release would not fit (room_shortage).
check_room() {
    command -v df >/dev/null 2>&1 || finish failed "df is missing on this host: cannot check the free space for $name $version"
    compressed=no
    case $magic in 1f8b* | 28b5*) compressed=yes ;; esac
    if ! why=$(room_shortage "$compressed"); then finish failed "$why: nothing installed"; fi
}
