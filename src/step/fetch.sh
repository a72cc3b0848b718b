# shellcheck shell=sh
# Mirror mode (docs/scaling.md): the package fetched from the URL of the
# signed order with what this host has (curl, else GNU wget, else
# busybox wget), never more than the signed size + 1 bytes, resumed where
# an attempt broke off (curl), at most 3 attempts, then
# checked against the signed size and sha256 and cached, as a package the
# controller sent would be. The mirror is not trusted: wrong, short or
# endless bytes, an HTTP error, a redirect loop or a server that stalls
# for url_timeout seconds end the fetch, and nothing of it is kept.
#
# Reads: url, url_fallback, url_timeout, size, sha256, cache_dir,
#   package_cache, cached, work.
# Sets: incoming (run.sh's, for cleanup); fetch_tool.
# shellcheck disable=SC2034,SC2154 # see Reads and Sets

# The tool this host fetches with: curl, wget (GNU) or busybox-wget.
choose_fetch_tool() {
    fetch_tool=
    if command -v curl >/dev/null 2>&1; then
        fetch_tool=curl
    elif command -v wget >/dev/null 2>&1; then
        case $(wget --version 2>&1 | head -n 1) in
            *"GNU Wget"*) fetch_tool=wget ;;
            *) fetch_tool=busybox-wget ;;
        esac
    fi
}

# One attempt: appends what the mirror sends, at most LIMIT bytes, to
# $incoming, asking curl for the bytes from OFFSET on. The tool's exit
# status is left in $work/fetch.rc (a pipeline's own is head's), its
# errors in $work/fetch.err. curl and GNU wget read no configuration file
# of the login's (-q; WGETRC, an empty one): none may turn the checks of
# TLS off.
fetch_once() { # OFFSET LIMIT
    {
        case $fetch_tool in
            curl)
                set -- "$1" "$2" --fail --silent --show-error --globoff --location --max-redirs 5 \
                    --proto =http,https --proto-redir =http,https --connect-timeout "$url_timeout" \
                    --speed-limit 1 --speed-time "$url_timeout"
                if [ "$1" != 0 ]; then set -- "$@" --continue-at "$1"; fi
                shift 2
                curl -q "$@" "$url"
                ;;
            wget)
                : >"$work/wgetrc"
                WGETRC=$work/wgetrc wget -q -O - --tries=1 --timeout="$url_timeout" --max-redirect=5 "$url"
                ;;
            *)
                # busybox 1.35's wget crashes with -T (Debian 12): the
                # stall is watched here instead.
                rm -f "$work/fetch.stalled"
                wget -q -O - "$url" &
                fetcher=$!
                watch_stall "$fetcher" </dev/null >/dev/null &
                watcher=$!
                wait "$fetcher"
                ;;
        esac 2>"$work/fetch.err" && echo 0 >"$work/fetch.rc" || echo "$?" >"$work/fetch.rc"
        if [ -n "${watcher:-}" ]; then
            kill "$watcher" 2>/dev/null || :
            if [ -e "$work/fetch.stalled" ]; then echo stalled >"$work/fetch.rc"; fi
        fi
    } | head -c "$2" >>"$incoming"
}

# Ends process PID once $incoming has not grown for url_timeout seconds.
watch_stall() { # PID
    last=$(size_of "$incoming")
    quiet=0
    while sleep 1; do
        now=$(size_of "$incoming")
        if [ "$now" != "$last" ]; then
            last=$now
            quiet=0
            continue
        fi
        quiet=$((quiet + 1))
        if [ "$quiet" -ge "$url_timeout" ]; then
            : >"$work/fetch.stalled"
            kill "$1" 2>/dev/null || :
            return 0
        fi
    done
}

# Fetches the package into $cached; returns 1 when it failed and the
# order lets the controller send it instead (after `swpush fetch-failed`),
# else ends the step (failed).
fetch_package() {
    choose_fetch_tool
    if [ -z "$fetch_tool" ]; then
        fetch_failed "no curl or wget on this host to fetch the package from the mirror"
        return 1
    fi
    printf 'swpush fetch %s\n' "$fetch_tool"
    incoming=$cache_dir/.incoming.$$
    : >"$incoming"
    attempt=1
    attempts=3
    rc=0
    while :; do
        have=$(size_of "$incoming")
        # Only curl resumes, and not from a server without ranges (exit 33).
        case $fetch_tool:$rc in
            curl:33 | wget:* | busybox-wget:*)
                [ "$have" = 0 ] || : >"$incoming"
                have=0
                ;;
        esac
        fetch_once "$have" $((size + 1 - have))
        rc=
        { read -r rc <"$work/fetch.rc"; } 2>/dev/null || :
        got=$(size_of "$incoming")
        if [ "$got" -gt "$size" ]; then
            fetch_failed "the mirror sent more than the signed $size bytes"
            return 1
        fi
        [ "$rc:$got" != "0:$size" ] || break
        said=$(tail_of "$work/fetch.err")
        [ -n "$said" ] || said="$fetch_tool failed (exit $rc)"
        case $fetch_tool:$rc in
            *:0) why="the mirror sent $got of the signed $size bytes" ;;
            curl:28 | wget:4) why="the mirror sent nothing for $url_timeout s ($said)" ;;
            *:stalled) why="the mirror sent nothing for $url_timeout s" ;;
            *) why=$said ;;
        esac
        # Cut short before, and now it will not resume.
        if [ "$have" != 0 ] && [ "$rc" != 0 ]; then
            why="the mirror sent $have of the signed $size bytes, then: $why"
        fi
        # An HTTP error (curl 22, GNU wget 8) or a redirect loop (curl 47)
        # will not mend itself.
        case $fetch_tool:$rc in
            curl:22 | curl:47 | wget:8) attempt=$attempts ;;
        esac
        if [ "$attempt" -ge "$attempts" ]; then
            fetch_failed "$why"
            return 1
        fi
        attempt=$((attempt + 1))
        sleep 1
    done
    if [ "$(sha256_of "$incoming")" != "$sha256" ]; then
        fetch_failed "the package from the mirror does not have the signed sha256"
        return 1
    fi
    # (set -e does not hold here: this runs as a condition.)
    if ! { [ -d "$package_cache" ] || mkdir -p "$package_cache"; } || ! mv "$incoming" "$cached"; then
        finish failed "cannot keep the fetched package in $package_cache"
    fi
    incoming=
}

# The fetch failed WHY: nothing of it is kept; with url_fallback the
# controller is told and sends the package, else the host fails.
fetch_failed() { # WHY
    rm -f "$incoming"
    incoming=
    [ "$url_fallback" = true ] || finish failed "cannot fetch the package from the mirror: $1"
    printf 'swpush fetch-failed %s\n' "$1"
}
