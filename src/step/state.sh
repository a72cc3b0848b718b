# shellcheck shell=sh
# What is installed here, read the one way that the step and `swpush
# status` share: where a package's files are (the header of step.sh,
# "Files"), the record layout (one `KEY VALUE` line a field) and the rule
# that says which releases are kept.
#
# Reads: prefix, state_dir (package_files); pkgdir, records, history
#   (kept, kept_list, before_current); state_file (read_state);
#   current_version (before_current).
# Sets: key, value (key_value); hex (hex_of); rec_KEY, one for each field of a record
#   (read_record); state_file records history journal_file pkgdir
#   (package_files); current_version current_sha current_post_install
#   current_pre_remove current_replaced current_run previous target
#   (read_state).
# shellcheck disable=SC2034,SC2154 # see Reads and Sets

# package_files NAME: sets where NAME's records and releases are.
package_files() {
    state_file=$state_dir/packages/$1
    records=$state_dir/releases/$1
    history=$state_dir/history/$1
    journal_file=$state_dir/journal/$1
    pkgdir=$prefix/$1
}

# key_value LINE: splits a `key value` line into `key` and `value`; false
# when the key is not of a-z, 0-9 and _. (Builtins only: the order and the
# records are read without starting a process per field.)
key_value() {
    key=${1%% *}
    value=${1#* }
    [ "$value" != "$1" ] || value=
    case $key in '' | *[!a-z0-9_]*) return 1 ;; esac
}

# hex_of COUNT FILE: sets `hex` to the first COUNT bytes of FILE as
# lowercase hex digits (one od, and no tr to join its words).
hex_of() {
    hex=
    # shellcheck disable=SC2046 # od's words, split on purpose
    for hex_byte in $(od -An -N"$1" -tx1 "$2"); do hex=$hex$hex_byte; done
}

# read_record FILE: sets rec_KEY to the value of each `KEY VALUE` line of a
# record this step wrote: the state record and a release record (version,
# sha256, installed, pre_install, post_install, pre_remove; the state
# record also previous, since, run, replaced), a journal (op, previous,
# version, sha256, run, holder).
read_record() {
    unset rec_version rec_sha256 rec_installed rec_pre_install rec_post_install rec_pre_remove \
        rec_previous rec_since rec_run rec_replaced rec_op rec_holder
    while IFS= read -r line; do
        if key_value "$line"; then eval "rec_$key=\$value"; fi
    done <"$1"
}

# Reads what is installed: the state record is the commit point of every run.
read_state() {
    current_version=-
    current_sha=-
    current_post_install=-
    current_pre_remove=-
    current_replaced=
    current_run=
    if [ -f "$state_file" ]; then
        read_record "$state_file"
        current_version=${rec_version:--}
        current_sha=${rec_sha256:--}
        current_post_install=${rec_post_install:--}
        current_pre_remove=${rec_pre_remove:--}
        current_replaced=${rec_replaced:-}
        current_run=${rec_run:-}
    fi
    previous=$current_version
    target=$current_version
}

# Whether VERSION is a line of the history (builtins only, as grep -qxF).
in_history() {
    [ -f "$history" ] || return 1
    while IFS= read -r h_line || [ -n "$h_line" ]; do
        [ "$h_line" != "$1" ] || return 0
    done <"$history"
    return 1
}

# Whether VERSION is a kept release here (its directory and its record).
kept() {
    [ -d "$pkgdir/releases/$1" ] && [ -f "$records/$1" ]
}

# The kept releases, oldest first, on one line.
kept_list() {
    list=
    [ -f "$history" ] || return 0
    while IFS= read -r v; do
        if kept "$v"; then list="$list $v"; fi
    done <"$history"
    printf '%s\n' "${list# }"
}

# The kept release installed just before the current one (empty if none).
before_current() {
    before=
    [ -f "$history" ] || return 0
    while IFS= read -r v; do
        [ "$v" != "$current_version" ] || break
        if kept "$v"; then before=$v; fi
    done <"$history"
    printf '%s\n' "$before"
}
