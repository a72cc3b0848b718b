# shellcheck shell=sh
# The host's name as `swpush enroll` records it, beside known_servers: the
# step refuses an order signed for another host, enroll records it once.
#
# Reads: host_name_file (read_host_name).
# Sets: beside (beside); host_name_file (host_name_beside); recorded
#   (read_host_name).

# beside FILE NAME: sets `beside` to the path of NAME in FILE's directory,
# as `$(dirname FILE)/NAME` would, without starting a process.
beside() {
    case $1 in
        */*) beside=${1%/*}/$2 ;;
        *) beside=$2 ;;
    esac
}

# host_name_beside KNOWN_SERVERS: sets host_name_file, the file beside
# KNOWN_SERVERS that holds this host's inventory name.
host_name_beside() {
    beside "$1" host_name
    host_name_file=$beside
}

# Sets `recorded` to the name host_name_file holds; false when it holds
# none (it is empty or unreadable).
read_host_name() {
    recorded=
    IFS= read -r recorded <"$host_name_file" || [ -n "$recorded" ]
}
