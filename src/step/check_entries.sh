# shellcheck shell=sh
# The client's own check of a package's entries, before anything is
# extracted (docs/package.md, "What a package may contain"). The controller
# checks too, but a client never trusts that alone.
#
# check_entries TAR ARCHIVE TAR_FLAGS DIR
#   Lists ARCHIVE twice with the client's own TAR (`tar -t` for exact names,
#   `tar -tv` for types and link targets) and pairs the lines; the listings
#   are kept in DIR (an existing private directory) as entries.*, and
#   DIR/entries.size holds what the archive unpacks to by its own listing
#   (regular files' bytes plus 4096 per entry, as the controller counts:
#   src/package/mod.rs) when it returns 0. Prints one
#   line naming the first offending entry and returns 1 when an entry is not
#   a regular file, directory or relative symlink that stays inside, when a
#   name is absolute, has `..`, is not UTF-8, has a control character
#   (C0, DEL or C1), a backslash or ` -> `, appears twice or lies below a
#   symlink or file, has a setuid or setgid bit, is a sparse file (GNU or
#   pax, with or without holes), or when tar says anything at all on
#   stderr (busybox strips a leading `/` with only a warning).
#   GNU tar lists names escaped (`donn\303\251es`, `\\`, `\n`): its
#   listing is asked for in that style explicitly and decoded exactly, so
#   that the rules apply to the bytes tar will write, as busybox lists them.
#   Works with GNU tar and busybox tar, under dash and busybox ash.
#
# Reads: its arguments only.
# Sets: ce_*, its own; nothing another library reads.

check_entries() {
    ce_tar=$1 ce_archive=$2 ce_flags=$3 ce_dir=$4
    # GNU tar: names in its `escape` quoting, asked for by name (whatever
    # the defaults), and the block number of each header (-R), which shows
    # a sparse member: its data ends before the listed size does.
    ce_gnu=0 ce_blocks=
    set --
    ce_version=$("$ce_tar" --version 2>/dev/null) || :
    case ${ce_version%%"
"*} in
        *"GNU tar"*) ce_gnu=1 ce_blocks=-R && set -- --quoting-style=escape ;;
    esac
    # shellcheck disable=SC2086 # flags are one word or none
    if ! "$ce_tar" $ce_flags "$@" -tf "$ce_archive" >"$ce_dir/entries.names" 2>"$ce_dir/entries.err" ||
        ! "$ce_tar" $ce_flags "$@" ${ce_blocks:+"$ce_blocks"} -tvf "$ce_archive" >"$ce_dir/entries.long" 2>>"$ce_dir/entries.err"; then
        case $(head -n 1 "$ce_dir/entries.err") in
            # busybox tar cannot read a GNU sparse member at all.
            *"unknown typeflag: 0x53"*) printf '%s\n' "the package has a sparse file (GNU format); packages hold plain files" ;;
            *) printf 'cannot list the package: %s\n' "$(head -n 1 "$ce_dir/entries.err")" ;;
        esac
        return 1
    fi
    ce_status=0
    LC_ALL=C awk -v names="$ce_dir/entries.names" -v gnu="$ce_gnu" -v sized="$ce_dir/entries.size" '
        BEGIN { for (i = 128; i < 256; i++) ord[sprintf("%c", i)] = i }
        function refuse(why) { print "entry `" shown(raw) "` " why; failed = 1; exit 1 }
        # The name as a message may show it: control bytes (and, in a name
        # that is not UTF-8, every byte past ASCII) as octal escapes.
        function shown(s,    out, i, c, high) {
            if (s !~ /[^ -~]/) return s
            high = utf8_problem(s) != ""
            out = ""
            for (i = 1; i <= length(s); i++) {
                c = substr(s, i, 1)
                if (c ~ /[[:cntrl:]]/ || (high && (c in ord))) out = out sprintf("\\%03o", code(c))
                else out = out c
            }
            return out
        }
        function code(c,    i) {
            if (c in ord) return ord[c]
            for (i = 0; i < 128; i++) if (sprintf("%c", i) == c) return i
            return 0
        }
        # GNU tar escape quoting: \\, \a \b \f \n \r \t \v, \OOO. Anything
        # else after a backslash cannot come from tar: the listing is broken.
        function unescape(s,    out, i, c, d) {
            if (!gnu || !index(s, "\\")) return s
            out = ""
            for (i = 1; i <= length(s); i++) {
                c = substr(s, i, 1)
                if (c != "\\") { out = out c; continue }
                d = substr(s, i + 1, 1)
                if (d == "\\") { out = out "\\"; i++ }
                else if (d == "a") { out = out "\007"; i++ }
                else if (d == "b") { out = out "\010"; i++ }
                else if (d == "f") { out = out "\014"; i++ }
                else if (d == "n") { out = out "\n"; i++ }
                else if (d == "r") { out = out "\r"; i++ }
                else if (d == "t") { out = out "\t"; i++ }
                else if (d == "v") { out = out "\013"; i++ }
                else if (substr(s, i + 1, 3) ~ /^[0-3][0-7][0-7]$/) {
                    out = out sprintf("%c", substr(s, i + 1, 1) * 64 + substr(s, i + 2, 1) * 8 + substr(s, i + 3, 1))
                    i += 3
                } else { broken = 1; return s }
            }
            return out
        }
        # The controller refuses a name that is not UTF-8 (overlong forms,
        # surrogates and code points past U+10FFFF included) or holds a C1
        # control (U+0080 to U+009F): so does this.
        function utf8_problem(s,    i, n, k, c, b, need, cp, least) {
            n = length(s)
            for (i = 1; i <= n; i += need + 1) {
                need = 0
                c = substr(s, i, 1)
                if (!(c in ord)) continue
                b = ord[c]
                if (b >= 194 && b <= 223) { need = 1; cp = b - 192; least = 128 }
                else if (b >= 224 && b <= 239) { need = 2; cp = b - 224; least = 2048 }
                else if (b >= 240 && b <= 244) { need = 3; cp = b - 240; least = 65536 }
                else return "is not UTF-8"
                for (k = 1; k <= need; k++) {
                    c = substr(s, i + k, 1)
                    if (!(c in ord) || ord[c] > 191) return "is not UTF-8"
                    cp = cp * 64 + ord[c] - 128
                }
                if (cp < least || cp > 1114111 || (cp >= 55296 && cp <= 57343)) return "is not UTF-8"
                if (cp <= 159) return "contains a control character"
            }
            return ""
        }
        # Names as the listings spell them are paired; the rules apply to
        # the bytes (decoded from GNU tar escapes).
        function check_text(s, what,    problem) {
            if (broken) refuse("breaks the listing")
            if (s ~ /[[:cntrl:]]/) refuse(what "contains a control character")
            if (index(s, "\\")) refuse(what "contains a backslash")
            if (index(s, " -> ")) refuse(what "contains ` -> `")
            if (s ~ /[^ -~]/ && (problem = utf8_problem(s)) != "") refuse(what problem)
        }
        gnu && /^block [0-9]+: / {
            block = $2 + 0
            sub(/^block [0-9]+: /, "")
            # The data of the member before must end where this header is
            # (or before: extended headers may come first).
            if (block < data_end) { raw = last; refuse("is a sparse file; packages hold plain files") }
            if (substr($0, 1, 3) == "** ") next
        }
        {
            if ((getline listed < names) <= 0) { raw = "?"; refuse("breaks the listing") }
            raw = unescape(listed)
            unpacked += 4096
            if (substr($0, 1, 1) == "-") unpacked += $3
            check_text(raw, "")
            if (substr(raw, 1, 1) == "/") refuse("is an absolute path")
            if (substr(raw, 1, 1) == " ") refuse("starts with a space")
            type = substr($0, 1, 1)
            if (gnu) {
                size = $3
                if (size !~ /^[0-9]+$/) size = 0
                data_end = block + 1 + int((size + 511) / 512)
                last = raw
            }
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
                if (substr(rest, 1, length(listed) + 4) != listed " -> ") refuse("breaks the listing")
                check_target(name, unescape(substr(rest, length(listed) + 5)))
            } else if (rest != listed) {
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
            check_text(target, "is a symlink whose target ")
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
            printf "%.0f\n", unpacked > sized
        }
    ' "$ce_dir/entries.long" || ce_status=1
    # A pax sparse member is listed by busybox (and read by the controller)
    # under its stored name, by GNU tar under another: refused, wherever
    # its data ends. Its keys are text in a pax header, so an archive
    # without the text `GNU.sparse.` anywhere has none (one fast pass,
    # ce_holds); only one that has it somewhere gets its headers walked. A compressed
    # archive here (no decompressor on this host, tar's own -z) cannot be
    # scanned; busybox tar, the only one used so, ignores the keys anyway.
    if [ "$ce_status" = 0 ] && [ -z "$ce_flags" ] &&
        ce_holds 'GNU.sparse.' "$ce_archive" &&
        ce_sparse_header "$ce_archive"; then
        printf '%s\n' "the package has a sparse file (pax format); packages hold plain files"
        ce_status=1
    fi
    # A GNU sparse member without holes looks like a plain file in GNU
    # tar's listing, block numbers and all. Its header is a block with the
    # type `S` at byte 156 and `ustar` at 257: one pass over the archive in
    # blocks finds every candidate, and only then are the headers walked.
    # (busybox tar cannot list such a member: refused above.) Without
    # `fold` the headers are walked whatever: slower, never blind.
    if [ "$ce_status" = 0 ] && [ -z "$ce_flags" ] && [ "$ce_gnu" = 1 ] &&
        { ! command -v fold >/dev/null 2>&1 ||
            tr '\n\000' '..' <"$ce_archive" | fold -b -w 512 | grep -q '^.\{156\}S.\{100\}ustar'; } &&
        ce_sparse_header "$ce_archive"; then
        printf '%s\n' "the package has a sparse file (GNU format); packages hold plain files"
        ce_status=1
    fi
    # Checked after the entries, so that a refusal names the entry where the
    # listing shows it; any warning at all is a refusal.
    if [ "$ce_status" = 0 ] && [ -s "$ce_dir/entries.err" ]; then
        printf 'tar warns about the package: %s\n' "$(head -n 1 "$ce_dir/entries.err")"
        ce_status=1
    fi
    return "$ce_status"
}

# Whether the bytes of file $2 hold the text $1 (no NUL, no newline)
# anywhere. A grep that reads past NUL bytes (GNU grep) searches the file
# in one pass, 20 times cheaper than through a pipe; one that stops each
# line at a NUL (busybox grep) would miss what follows one, so it is given
# the bytes with NULs turned into line ends. The probe tells them apart by
# what they do, not by their names.
ce_holds() {
    if printf 'x\000%s\n' "$1" | grep -q -F -e "$1" 2>/dev/null; then
        grep -q -F -e "$1" <"$2"
    else
        tr '\000' '\n' <"$2" | grep -q -F -e "$1"
    fi
}

# ce_sparse_header ARCHIVE: true when a header of the (plain) tar ARCHIVE
# is a GNU sparse member or a pax header with a GNU.sparse key, or when the
# walk cannot follow the headers (a size it cannot read): fail closed.
ce_sparse_header() {
    cs_block=0
    while :; do
        cs_header=$(od -An -v -tx1 -j "$((cs_block * 512))" -N 512 "$1" | tr -d ' \n')
        [ "${#cs_header}" = 1024 ] || return 1
        case $cs_header in *[!0]*) ;; *) return 1 ;; esac
        # Bytes 124..135 (the size, octal text) and 156 (the type), in hex.
        cs_field=$(printf '%s' "$cs_header" | cut -c 249-272)
        cs_type=$(printf '%s' "$cs_header" | cut -c 313-314)
        cs_size=0 cs_digits=
        while [ -n "$cs_field" ]; do
            cs_pair=${cs_field%"${cs_field#??}"}
            cs_field=${cs_field#??}
            case $cs_pair in
                3[0-7]) cs_size=$((cs_size * 8 + ${cs_pair#3})) cs_digits=1 ;;
                20) [ -z "$cs_digits" ] || break ;;
                00) break ;;
                *) return 0 ;;
            esac
        done
        cs_data=$(((cs_size + 511) / 512))
        case $cs_type in
            53) return 0 ;;
            78 | 67)
                if tail -c "+$(((cs_block + 1) * 512 + 1))" "$1" | head -c "$((cs_data * 512))" |
                    tr -cs 'A-Za-z0-9._' '\n' | grep -q '^GNU\.sparse\.'; then
                    return 0
                fi
                ;;
        esac
        cs_block=$((cs_block + 1 + cs_data))
    done
}
