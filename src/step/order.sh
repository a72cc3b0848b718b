# shellcheck shell=sh
# The hello and the order that answers it: read, verified with the host's
# own OpenSSH, and every field checked against the controller's rules
# before any is used (the header of step.sh; docs/push.md).
#
# Reads: op, name, known_servers, work, current_version, current_sha.
# Sets: challenge (say_hello); order_KEY for each line of the order, and
#   seen, the keys in it (read_order); asked sha256 size unpacked_size
#   force allow_downgrade install_missing dry_run pre_install post_install
#   pre_remove health_check health_interval health_timeout confirm_timeout
#   url url_fallback url_timeout, the run's settings (check_order).
# shellcheck disable=SC2034,SC2154 # see Reads and Sets

# The first line, before anything is read: a fresh random challenge, which
# the order must carry, and what is installed of NAME here.
say_hello() {
    hex_of 16 /dev/urandom
    challenge=$hex
    [ "${#challenge}" = 32 ] || finish failed "cannot read 16 random bytes from /dev/urandom"
    printf 'swpush hello 1 %s %s %s\n' "$challenge" "$current_version" "$current_sha"
}

# Reads `swpush order N`, the N lines of the order and its signature into
# $work/order and $work/order.sig. Each line is also kept as order_KEY,
# trusted only once the signature is.
read_order() {
    IFS= read -r header || finish failed "the controller sent no order"
    case $header in
        "swpush order "*) lines=${header#swpush order } ;;
        *) finish rejected "the controller sent no order" ;;
    esac
    case $lines in
        '' | *[!0-9]*) finish rejected "malformed order header" ;;
    esac
    [ "$lines" -le 64 ] || finish rejected "order too long"
    : >"$work/order"
    i=0
    seen=' '
    while [ "$i" -lt "$lines" ]; do
        IFS= read -r line || finish rejected "the order was cut short"
        printf '%s\n' "$line" >>"$work/order"
        key_value "$line" || finish rejected "the order has a malformed line"
        case $seen in *" $key "*) finish rejected "the order names $key twice" ;; esac
        seen="$seen$key "
        eval "order_$key=\$value"
        i=$((i + 1))
    done
    : >"$work/order.sig"
    i=0
    while IFS= read -r line; do
        printf '%s\n' "$line" >>"$work/order.sig"
        [ "$line" = "-----END SSH SIGNATURE-----" ] && break
        i=$((i + 1))
        [ "$i" -lt 64 ] || finish rejected "the order's signature is malformed"
    done
}

# Verifies the order's signature against known_servers (and
# revoked_servers beside it), for package NAME; ends the step (rejected)
# when it is not good, saying why where that can be told.
verify_order() {
    printf '%s\n' "swpush phase verifying"
    if [ ! -e "$known_servers" ]; then
        finish rejected "no $known_servers here: this host trusts no controller (grant one with swpush enroll)"
    fi
    [ -r "$known_servers" ] || finish rejected "cannot read $known_servers"
    command -v ssh-keygen >/dev/null 2>&1 ||
        finish rejected "ssh-keygen is missing: OpenSSH 8.2 or newer is needed to verify orders"
    set -- -Y verify -f "$known_servers" -I "$name" -n swpush -s "$work/order.sig"
    beside "$known_servers" revoked_servers
    revoked=$beside
    if [ -e "$revoked" ]; then set -- "$@" -r "$revoked"; fi
    if ! ssh-keygen "$@" <"$work/order" >"$work/verify.out" 2>&1; then
        if grep -qi -e 'illegal option' -e 'unknown option' -e 'usage:' "$work/verify.out"; then
            finish rejected "ssh-keygen is too old to verify orders: OpenSSH 8.2 or newer is needed"
        fi
        # ssh-keygen does not say why; a signature good without -r was revoked.
        if [ -e "$revoked" ] && ssh-keygen -Y verify -f "$known_servers" -I "$name" -n swpush \
            -s "$work/order.sig" <"$work/order" >/dev/null 2>&1; then
            finish rejected "the controller's key is revoked here ($revoked)"
        fi
        finish rejected "the order is not signed by a key $known_servers trusts for package $name"
    fi
}

# The rules the controller applies, so that nothing here relies on it
# having applied them: a package name is [a-z0-9][a-z0-9._+-]{0,63}
# (src/package/manifest.rs), a version [A-Za-z0-9][A-Za-z0-9._+-]{0,63}
# (src/version.rs), a count decimal digits without a leading zero and at
# most 15 of them (shell arithmetic is 64-bit; 10^15 bytes is a petabyte).
# Each is checked before it is used in a path, a test or arithmetic.
is_package_name() {
    case $1 in '' | [!a-z0-9]* | *[!a-z0-9._+-]*) return 1 ;; esac
    [ "${#1}" -le 64 ]
}

is_version() {
    case $1 in '' | [!A-Za-z0-9]* | *[!A-Za-z0-9._+-]*) return 1 ;; esac
    [ "${#1}" -le 64 ]
}

is_count() {
    case $1 in 0) return 0 ;; '' | 0* | *[!0-9]*) return 1 ;; esac
    [ "${#1}" -le 15 ]
}

# Checks every field of the verified order against the controller's rules
# before any is used, and sets the run's settings from them; ends the step
# (rejected) at the first that is missing, unknown or malformed.
# shellcheck disable=SC2154 # order_KEY and flag are set through eval
check_order() {
    # The fields of an order (src/order.rs, format 4); any other is refused.
    order_fields="format op package version sha256 size unpacked_size url url_fallback url_timeout allow_downgrade install_missing force dry_run host challenge pre_install post_install pre_remove health_check health_interval health_timeout confirm_timeout issued"
    [ "${order_format:-}" = 4 ] ||
        finish rejected "unknown order format ${order_format:-} (this client reads format 4)"
    # shellcheck disable=SC2086 # keys are [a-z0-9_] only (key_value)
    for key in $seen; do
        case " $order_fields " in *" $key "*) ;; *) finish rejected "the order has an unknown field $key" ;; esac
    done
    for key in $order_fields; do
        case $seen in *" $key "*) ;; *) finish rejected "the order has no $key" ;; esac
    done
    [ "$order_challenge" = "$challenge" ] ||
        finish rejected "the order carries another challenge: a replayed or misdirected order"
    [ "$order_package" = "$name" ] || finish rejected "the order is for another package"
    [ "$order_op" = "$op" ] || finish rejected "the order is for another operation"
    [ -n "$order_host" ] || finish rejected "the order names no host"
    check_host_name
    # The version the order names: the package's, or the release
    # `rollback --to` asks for (`-`: the previous one); remove names none.
    asked=$order_version
    case $op:$asked in
        rollback:- | remove:-) ;;
        remove:*) finish rejected "the order's version \`$asked\` is not \`-\` (remove names no version)" ;;
        *) is_version "$asked" || finish rejected "the order's version \`$asked\` is not a version" ;;
    esac
    sha256=$order_sha256
    size=$order_size
    unpacked_size=$order_unpacked_size
    is_count "$size" || finish rejected "the order's size \`$size\` is not a number"
    is_count "$unpacked_size" || finish rejected "the order's unpacked_size \`$unpacked_size\` is not a number"
    case $op in
        install | upgrade)
            case $sha256 in
                *[!0-9a-f]*) finish rejected "the order's sha256 is not 64 lowercase hex digits" ;;
            esac
            [ "${#sha256}" -eq 64 ] || finish rejected "the order's sha256 is not 64 lowercase hex digits"
            [ "$size" != 0 ] || finish rejected "the order's size \`0\` is not a package size"
            ;;
        *)
            [ "$sha256" = - ] || finish rejected "the order's sha256 is not \`-\` ($op sends no package)"
            ;;
    esac
    check_url
    for key in force allow_downgrade install_missing dry_run; do
        eval "flag=\$order_$key"
        case $flag in
            true | false) ;;
            *) finish rejected "the order's $key \`$flag\` is not true or false" ;;
        esac
    done
    force=$order_force
    allow_downgrade=$order_allow_downgrade
    install_missing=$order_install_missing
    dry_run=$order_dry_run
    case $order_issued in
        [0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]Z) ;;
        *) finish rejected "the order's issued time \`$order_issued\` is malformed" ;;
    esac
    pre_install=$order_pre_install
    post_install=$order_post_install
    pre_remove=$order_pre_remove
    # Hooks are paths inside the release, as the controller checked; a
    # signed order is not trusted to say otherwise.
    for hook in "$pre_install" "$post_install" "$pre_remove"; do
        case /$hook/ in
            //) finish rejected "the order names an empty hook path" ;;
            /-/) ;;
            //* | */../* | */./*) finish rejected "the order's hook path $hook is not inside the package" ;;
        esac
    done
    health_check=$order_health_check
    [ -n "$health_check" ] || finish rejected "the order names an empty health check"
    health_interval=$order_health_interval
    health_timeout=$order_health_timeout
    confirm_timeout=$order_confirm_timeout
    for key in health_interval health_timeout confirm_timeout; do
        eval "seconds=\$$key"
        is_count "$seconds" || finish rejected "the order's $key \`$seconds\` is not a number"
    done
    if [ "$health_check" != - ] && { [ "$health_interval" = 0 ] || [ "$health_timeout" = 0 ]; }; then
        finish rejected "the order's health check has no interval or no timeout"
    fi
}

# The mirror the package is fetched from (fetch.sh): `-` (none), or an
# http(s) URL of the characters src/mirror.rs allows, for a package only.
check_url() {
    url=$order_url
    url_fallback=$order_url_fallback
    url_timeout=$order_url_timeout
    case $url_fallback in
        true | false) ;;
        *) finish rejected "the order's url_fallback \`$url_fallback\` is not true or false" ;;
    esac
    is_count "$url_timeout" || finish rejected "the order's url_timeout \`$url_timeout\` is not a number"
    [ "$url" != - ] || return 0
    case $op in
        install | upgrade) ;;
        *) finish rejected "the order's url is not \`-\` ($op fetches no package)" ;;
    esac
    case $url in
        http://?* | https://?*) ;;
        *) finish rejected "the order's url is not an http:// or https:// URL" ;;
    esac
    case $url in
        *[!]A-Za-z0-9._~:/?#@!\$\&+,\;=%[-]*) finish rejected "the order's url holds a character no URL needs" ;;
    esac
    [ "${#url}" -le 4096 ] || finish rejected "the order's url is longer than 4096 bytes"
    [ "$url_timeout" != 0 ] || finish rejected "the order's url_timeout is 0"
}

# The host name `swpush enroll` recorded beside known_servers: an order
# signed for another host (a session relayed here by a host the
# controller meant) is refused. Without the file any name is accepted.
check_host_name() {
    host_name_beside "$known_servers"
    [ -e "$host_name_file" ] || return 0
    read_host_name ||
        finish rejected "$host_name_file is empty or unreadable: it should hold this host's inventory name"
    [ "$order_host" = "$recorded" ] ||
        finish rejected "the order is for host $order_host, but this host is $recorded ($host_name_file)"
}
