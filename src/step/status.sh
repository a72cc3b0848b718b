# shellcheck shell=sh
# swpush status: what is installed here, read from the step's records with
# the step's own reading of them (state.sh), changing nothing. Sent as
# `/bin/sh -c '<state.sh + this file>' swpush-step ONLY PREFIX STATE_DIR`
# (src/status.rs).
#
# Prints `swpush package NAME VERSION SHA256 SINCE` for each installed
# package (or only ONLY, when not empty), each followed by `swpush release
# NAME VERSION SHA256 INSTALLED` for its kept releases, oldest first, then
# `swpush done unchanged - - `. `-` stands for a missing value.
#
# Reads: the command line; state_file, records, history (package_files,
#   state.sh).
# Sets: only, prefix, state_dir (prefix and state_dir read by state.sh).
# shellcheck disable=SC2034,SC2154 # see Reads and Sets

# A record that cannot be read reads as empty: its fields are `-`.
read_fields() { # RECORD
    read_record "$1" 2>/dev/null || :
}

# status_of NAME: NAME's package line, then a line for each kept release.
# printf, never echo: dash's echo would read backslashes in a record.
status_of() {
    package_files "$1"
    read_fields "$state_file"
    printf 'swpush package %s %s %s %s\n' "$1" "${rec_version:--}" "${rec_sha256:--}" "${rec_since:--}"
    [ -f "$history" ] || return 0
    while IFS= read -r v; do
        if [ -n "$v" ] && kept "$v"; then
            read_fields "$records/$v"
            printf 'swpush release %s %s %s %s\n' "$1" "$v" "${rec_sha256:--}" "${rec_installed:--}"
        fi
    done <"$history"
}

main() {
    set -eu
    only=$1 prefix=$2 state_dir=$3
    for record in "$state_dir"/packages/*; do
        [ -f "$record" ] || continue
        name=${record##*/}
        if [ -n "$only" ] && [ "$name" != "$only" ]; then continue; fi
        status_of "$name"
    done
    printf '%s\n' "swpush done unchanged - - "
}

main "$@"
