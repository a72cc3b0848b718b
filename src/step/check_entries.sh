# shellcheck shell=sh
# The client's own check of a package's entries, before anything is
# extracted (docs/package.md, "What a package may contain"). The controller
# checks too, but a client never trusts that alone.
#
# check_entries TAR ARCHIVE [TAR_FLAGS]
#   Lists ARCHIVE twice with the client's own TAR (`tar -t` for exact names,
#   `tar -tv` for types and link targets) and pairs the lines. Prints one
#   line naming the first offending entry and returns 1 when an entry is not
#   a regular file, directory or relative symlink that stays inside, when a
#   name is absolute, has `..`, a control character, a backslash or ` -> `,
#   appears twice or lies below a symlink or file, has a setuid or setgid
#   bit, or when tar says anything
#   at all on stderr (busybox strips a leading `/` with only a warning).
#   Works with GNU tar and busybox tar, under dash and busybox ash.
check_entries() {
    ce_tar=$1 ce_archive=$2 ce_flags=${3:-}
    ce_dir=$(mktemp -d) || return 1
    # shellcheck disable=SC2086 # flags are one word or none
    if ! "$ce_tar" $ce_flags -tf "$ce_archive" >"$ce_dir/names" 2>"$ce_dir/err" ||
        ! "$ce_tar" $ce_flags -tvf "$ce_archive" >"$ce_dir/long" 2>>"$ce_dir/err"; then
        printf 'cannot list the package: %s\n' "$(head -n 1 "$ce_dir/err")"
        rm -rf "$ce_dir"
        return 1
    fi
    ce_status=0
    awk -v names="$ce_dir/names" '
        function refuse(why) { print "entry `" raw "` " why; failed = 1; exit 1 }
        {
            if ((getline raw < names) <= 0) { raw = "?"; refuse("breaks the listing") }
            if (raw ~ /[[:cntrl:]]/) refuse("contains a control character")
            if (index(raw, "\\")) refuse("contains a backslash (tar escapes unusual characters)")
            if (index(raw, " -> ")) refuse("contains ` -> `")
            if (substr(raw, 1, 1) == "/") refuse("is an absolute path")
            if (substr(raw, 1, 1) == " ") refuse("starts with a space")
            type = substr($0, 1, 1)
            if (substr($0, 4, 1) ~ /[sS]/ || substr($0, 7, 1) ~ /[sS]/) refuse("has a setuid or setgid bit")
            if ($0 !~ /^[-dl][-rwxsStT][-rwxsStT][-rwxsStT][-rwxsStT][-rwxsStT][-rwxsStT][-rwxsStT][-rwxsStT][-rwxsStT] /) {
                if (type == "h") refuse("is a hard link")
                refuse("is not a regular file, directory or symlink")
            }
            rest = $0
            sub(/^[^ ]+ +[^ ]+ +[^ ]+ +[^ ]+ +[^ ]+ /, "", rest)
            name = normalize(raw)
            if (name == "..") refuse("has a `..` component")
            if (name == "") { if (type == "d") next; refuse("has no name") }
            if (type == "l") {
                if (substr(rest, 1, length(raw) + 4) != raw " -> ") refuse("breaks the listing")
                check_target(name, substr(rest, length(raw) + 5))
            } else if (rest != raw) {
                refuse("is a hard link or breaks the listing")
            }
            if (name in kind) refuse("appears twice in the archive")
            kind[name] = type
            order[++count] = name
        }
        # Drops "." and empty parts; returns ".." if any part is "..".
        function normalize(path,    parts, n, i, out) {
            n = split(path, parts, "/")
            out = ""
            for (i = 1; i <= n; i++) {
                if (parts[i] == "" || parts[i] == ".") continue
                if (parts[i] == "..") return ".."
                out = out == "" ? parts[i] : out "/" parts[i]
            }
            return out
        }
        function check_target(name, target,    parts, n, i, climbs, descended, depth) {
            if (target == "") refuse("is a symlink with an empty target")
            if (target ~ /[[:cntrl:]]/ || index(target, "\\") || index(target, " -> "))
                refuse("is a symlink with an unusual target")
            if (substr(target, 1, 1) == "/") refuse("is a symlink to an absolute path")
            n = split(target, parts, "/")
            climbs = 0; descended = 0
            for (i = 1; i <= n; i++) {
                if (parts[i] == "" || parts[i] == ".") continue
                if (parts[i] == "..") {
                    if (descended) refuse("is a symlink with `..` after its start")
                    climbs++
                } else descended = 1
            }
            depth = gsub("/", "/", name)
            if (climbs > depth) refuse("is a symlink outside the package")
        }
        END {
            if (failed) exit 1
            if ((getline raw < names) > 0) refuse("breaks the listing")
            for (i = 1; i <= count; i++) {
                name = order[i]; prefix = ""
                n = split(name, parts, "/")
                for (j = 1; j < n; j++) {
                    prefix = prefix == "" ? parts[j] : prefix "/" parts[j]
                    if (kind[prefix] == "l" || kind[prefix] == "-") {
                        raw = name; refuse("lies below the symlink or file `" prefix "`")
                    }
                }
            }
        }
    ' "$ce_dir/long" || ce_status=1
    # Checked after the entries, so that a refusal names the entry where the
    # listing shows it; any warning at all is a refusal.
    if [ "$ce_status" = 0 ] && [ -s "$ce_dir/err" ]; then
        printf 'tar warns about the package: %s\n' "$(head -n 1 "$ce_dir/err")"
        ce_status=1
    fi
    rm -rf "$ce_dir"
    return "$ce_status"
}
