# shellcheck shell=sh
# The package of an install or upgrade: the tools it needs, its bytes
# (from the cache, or received and kept there), its plain tar and the
# client's own checks of what it holds before anything is extracted.
#
# Reads: op, name, version, sha256, size, unpacked_size, url (check_order,
#   order.sh); cache_dir, package_cache, records, work.
# Sets: cached, package (receive_package; unpack: the plain tar); incoming,
#   unpacked (run.sh's, for cleanup); magic, the package's first 4 bytes
#   in hex, and tar_flags (unpack_and_check).
# shellcheck disable=SC2034,SC2154 # see Reads and Sets

# Before any byte is asked for: check_room needs df.
need_tools() {
    case $op in
        install | upgrade)
            command -v tar >/dev/null 2>&1 || finish failed "tar is missing on this host"
            command -v df >/dev/null 2>&1 ||
                finish failed "df is missing on this host: cannot check the free space for $name $version"
            ;;
    esac
}

# OpenSSL first: it uses the CPU's SHA instructions, coreutils does not
# (5x faster on 100 MB, which decides the push's wall time on busy hosts).
# Prints the digest alone (the first word of the tool's line).
sha256_of() { # FILE
    if command -v openssl >/dev/null 2>&1; then
        digest=$(openssl dgst -sha256 -r <"$1")
    elif command -v sha256sum >/dev/null 2>&1; then
        digest=$(sha256sum "$1")
    else
        digest=$(shasum -a 256 "$1")
    fi
    printf '%s\n' "${digest%% *}"
}

# size_of FILE: prints its size in bytes (wc -c, without the padding some
# wc put before the number).
size_of() {
    bytes=$(wc -c <"$1")
    printf '%s\n' "${bytes##* }"
}

# The package from the cache, or else fetched from the order's mirror URL
# (fetch.sh), or else asked for (`swpush need SIZE`), received, checked
# against the signed size and sha256, and cached at once.
receive_package() {
    cached=$package_cache/$sha256
    if [ -f "$cached" ] && [ "$(size_of "$cached")" = "$size" ] &&
        [ "$(sha256_of "$cached")" = "$sha256" ]; then
        :
    elif [ "$url" != - ] && fetch_package; then # fetch.sh: into the cache, checked
        :
    else
        printf 'swpush need %s\n' "$size"
        # Hashed while it arrives: one pass over the bytes, not two.
        # Received beside the cache, not in /tmp: keeping it is then a rename,
        # not a second copy of every byte.
        incoming=$cache_dir/.incoming.$$
        head -c "$size" >"$incoming"
        got=$(size_of "$incoming")
        [ "$got" = "$size" ] || finish rejected "received $got of $size bytes"
        [ "$(sha256_of "$incoming")" = "$sha256" ] ||
            finish rejected "the package received does not have the signed sha256"
        # Cached at once: a run interrupted from here on need not upload again.
        [ -d "$package_cache" ] || mkdir -p "$package_cache"
        mv "$incoming" "$cached"
        incoming=
    fi
    package=$cached
}

# Before anything is extracted: room for it (check_room), the plain tar
# (unpack), and the client's own checks of its entries (check_entries) and
# of their size (check_unpacked_size).
unpack_and_check() {
    hex_of 4 "$package"
    magic=$hex
    check_room
    tar_flags=
    case $magic in
        1f8b*)
            # Without a gzip command (a minimal busybox), tar's own -z.
            if command -v gzip >/dev/null 2>&1; then unpack gzip -dc; else tar_flags=-z; fi
            ;;
        28b52ffd)
            command -v zstd >/dev/null 2>&1 ||
                finish failed "this host cannot read .tar.zst packages: install zstd or send .tar.gz"
            unpack zstd -dcq
            ;;
    esac
    # GNU tar as it comes: TAR_OPTIONS from the login's environment could make
    # it list one thing and write another (--transform, --same-owner).
    unset TAR_OPTIONS
    if ! why=$(check_entries tar "$package" "$tar_flags" "$work"); then
        # Signed, but not something this client installs: not worth keeping.
        rm -f "$cached"
        rmdir "$package_cache" 2>/dev/null || true
        finish rejected "package refused: $why"
    fi
    check_unpacked_size
}

# A compressed package is decompressed once, into a plain tar beside the
# cache (not in /tmp, which may be RAM): the entry check's two listings and
# the extraction then read that, instead of decompressing three times.
# unpack TOOL...: decompresses $package with TOOL (stdin to stdout).
unpack() {
    unpacked=$cache_dir/.unpacked.$$
    if ! "$@" <"$package" >"$unpacked" 2>"$work/unpack.err"; then
        finish failed "cannot decompress the package: $(tail_of "$work/unpack.err")"
    fi
    package=$unpacked
}

# Refuses (rejected) an archive whose own listing adds up to more than the
# signed unpacked size, counted as the controller counts it (regular files'
# bytes plus 4096 per entry, src/package/mod.rs): tar writes what it lists,
# so nothing past the size that check_room found room for is extracted.
# The sum is check_entries' (from the same listing), in $work/entries.size.
check_unpacked_size() {
    listed=
    { read -r listed <"$work/entries.size"; } 2>/dev/null || :
    case $listed in '' | *[!0-9]*) listed=$((unpacked_size + 1)) ;; esac
    if [ "$listed" -gt "$unpacked_size" ]; then
        rm -f "$cached"
        rmdir "$package_cache" 2>/dev/null || true
        finish rejected "package refused: it unpacks to more than the signed unpacked_size $unpacked_size ($listed by its own listing)"
    fi
}

# Drops cached packages that no kept release came from.
# (Records are a few short lines each: read here, not grepped.)
prune_cache() {
    for cached_file in "$package_cache"/*; do
        [ -f "$cached_file" ] || continue
        in_use=
        for record in "$records"/*; do
            [ -f "$record" ] || continue
            while IFS= read -r line; do
                if [ "$line" = "sha256 ${cached_file##*/}" ]; then in_use=1 && break; fi
            done <"$record"
            [ -z "$in_use" ] || break
        done
        [ -n "$in_use" ] || rm -f "$cached_file"
    done
}
