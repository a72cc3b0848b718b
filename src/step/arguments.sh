# shellcheck shell=sh
# The step's arguments (the header of step.sh): parsed, then checked before
# any path is made of them.
#
# Reads: the command line (parse_arguments); op, name, prefix, state_dir,
#   cache_dir (check_arguments).
# Sets: op name known_servers prefix state_dir cache_dir keep_releases
#   busy_wait busy_retries busy_check deadline (parse_arguments); where
#   NAME's files are (package_files, state.sh) and package_cache
#   (check_arguments).
# shellcheck disable=SC2034 # the arguments are read by the other libraries

# parse_arguments KEY=VALUE...: sets each of the step's arguments (see the
# header), every one of them exactly once; an unknown, repeated or missing
# one is a controller that does not speak this step, and ends it.
parse_arguments() {
    given=' '
    for arg in "$@"; do
        key=${arg%%=*} value=${arg#*=}
        case " $given " in
        *" $key "*)
            echo "swpush step: argument $key given twice" >&2
            exit 2
            ;;
        esac
        case $arg in
        op=*) op=$value ;;
        name=*) name=$value ;;
        known_servers=*) known_servers=$value ;;
        prefix=*) prefix=$value ;;
        state_dir=*) state_dir=$value ;;
        cache_dir=*) cache_dir=$value ;;
        keep_releases=*) keep_releases=$value ;;
        busy_wait=*) busy_wait=$value ;;
        busy_retries=*) busy_retries=$value ;;
        busy_check=*) busy_check=$value ;;
        deadline=*) deadline=$value ;;
        *)
            echo "swpush step: unknown argument: $(printf '%s' "$key" | cut -c 1-40)" >&2
            exit 2
            ;;
        esac
        given="$given$key "
    done
    for key in op name known_servers prefix state_dir cache_dir keep_releases \
        busy_wait busy_retries busy_check deadline; do
        case $given in
        *" $key "*) ;;
        *)
            echo "swpush step: argument $key missing" >&2
            exit 2
            ;;
        esac
    done
}

# Before any path is made of them: the arguments are the controller's, but
# the name is also checked against the order only later. Then sets where
# NAME's files are.
check_arguments() {
    case $op in
        install | upgrade | rollback | remove) ;;
        *) finish rejected "this step cannot do $op" ;;
    esac
    is_package_name "$name" || finish rejected "the step's package name \`$name\` is not a package name"
    package_files "$name"
    package_cache=$cache_dir/$name
}
