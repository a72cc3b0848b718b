#!/usr/bin/env bash
# swpush against its peers, side by side on ONE local fleet (bench/lib.sh):
# each tool delivers the same package and makes it current at
# /opt/swpush/benchpkg/current (a symlink to releases/1.0.0, holding the
# extracted package, as swpush lays it out), interleaved round by round.
#
#   bench/peers.sh        options in the environment:
#     HOSTS=20            hosts in the fleet (a list such as "10 20" runs
#                         this script once per count, appending to one CSV)
#     MB="1 10"           package sizes, one after the other on the same fleet
#     ROUNDS=3            rounds per configuration; the table shows medians
#     TOOLS="..."         a subset of: swpush ssh-default ssh-fast pssh ansible
#                         pyinfra ssh-true ssh-true-fast (default: all)
#     NO_INSTALL=1        install no peer (pssh, ansible, pyinfra): run only
#                         the tools already there
#     LIMIT=600           a tool whose cold run and re-run take longer than
#                         this many seconds in a round is run once ("once")
#     CSV=target/bench/peers.csv   rows are appended here
#
# Every tool runs with parallelism P = min(HOSTS, 100) (swpush's default
# --forks is 100). Each round, per tool: the hosts are reset, a COLD run,
# then a RE-RUN with the package already current. ssh-true and
# ssh-true-fast (`ssh HOST true` per host) only re-run: the floor a re-run
# is compared with. Every run is checked (every host's current points to
# releases/1.0.0 whose blob is the package's; swpush: every host installed,
# or unchanged with 0 bytes sent) and the script dies if one is not.
#
# Per run: wall seconds, controller CPU seconds (user+sys of the tool's
# whole process tree as /usr/bin/time counts it: waited-for children only),
# controller peak RSS (of the largest single process) and machine CPU
# seconds (non-idle /proc/stat ticks: the hosts share this machine).
# CSV columns: tool,hosts,mb,run,round,wall_s,controller_cpu_s,
# controller_rss_mb,machine_cpu_s,note. Needs root. See docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    echo "usage: [HOSTS=N] [MB=\"1 10\"] [ROUNDS=3] [TOOLS=...] [NO_INSTALL=1] bench/peers.sh" >&2
    exit 2
}
[ "$#" = 0 ] || usage
HOSTS=${HOSTS:-20}
MB_LIST=${MB:-1 10}
ROUNDS=${ROUNDS:-3}
LIMIT=${LIMIT:-600}
CSV=${CSV:-$PWD/target/bench/peers.csv}
ALL_TOOLS="swpush ssh-default ssh-fast pssh ansible pyinfra ssh-true ssh-true-fast"
TOOLS=${TOOLS:-$ALL_TOOLS}
case $ROUNDS:$LIMIT in *[!0-9:]* | :* | *:) usage ;; esac
for t in $TOOLS; do
    case " $ALL_TOOLS " in *" $t "*) ;; *) echo "bench: unknown tool $t (known: $ALL_TOOLS)" >&2 && exit 2 ;; esac
done
for m in $MB_LIST; do case $m in '' | *[!0-9]*) usage ;; esac done

# A list of host counts: one fleet after the other, one run of this script each.
if [ "$(echo "$HOSTS" | wc -w)" -gt 1 ]; then
    for h in $HOSTS; do HOSTS=$h bash "$0"; done
    exit 0
fi

MB=${MB_LIST%% *}
work=$PWD/target/bench/peers-$HOSTS
VERSION=1.0.0
P=$((HOSTS < 100 ? HOSTS : 100))
venv=$PWD/target/bench/venv
# shellcheck source=lib.sh
. bench/lib.sh

# Installs the peers that TOOLS names and are missing (unless NO_INSTALL),
# then drops from TOOLS those still missing.
install_peers() {
    local want=() t
    if [ -z "${NO_INSTALL:-}" ]; then
        case " $TOOLS " in *" pssh "*) command -v parallel-ssh >/dev/null || want+=(pssh) ;; esac
        case " $TOOLS " in *" ansible "*) command -v ansible-playbook >/dev/null || want+=(ansible) ;; esac
        if [ "${#want[@]}" -gt 0 ]; then
            echo "peers: apt-get install ${want[*]}" >&2
            (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${want[@]}") >&2
        fi
        case " $TOOLS " in
            *" pyinfra "*)
                if [ ! -x "$venv/bin/pyinfra" ]; then
                    echo "peers: pyinfra from PyPI into $venv" >&2
                    /usr/bin/python3 -m venv "$venv" 2>/dev/null || {
                        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv) >&2
                        rm -rf "$venv"
                        /usr/bin/python3 -m venv "$venv"
                    }
                    "$venv/bin/pip" install -q "pyinfra==3.10.0" >&2
                fi
                ;;
        esac
    fi
    local kept=""
    for t in $TOOLS; do
        case $t in
            pssh) command -v parallel-ssh >/dev/null || { echo "peers: no pssh, skipped" >&2 && continue; } ;;
            ansible) command -v ansible-playbook >/dev/null || { echo "peers: no ansible, skipped" >&2 && continue; } ;;
            pyinfra) [ -x "$venv/bin/pyinfra" ] || { echo "peers: no pyinfra in $venv, skipped" >&2 && continue; } ;;
        esac
        kept="$kept $t"
    done
    TOOLS=${kept# }
}

# The options every OpenSSH-based peer logs in with: the fleet's key and
# known_hosts, nothing from this machine's configuration.
ssh_opts() {
    echo "-F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes -i $home/.ssh/id_ed25519" \
        "-o UserKnownHostsFile=$home/.ssh/known_hosts -o GlobalKnownHostsFile=/dev/null" \
        "-o StrictHostKeyChecking=yes"
}
FAST="-o KexAlgorithms=curve25519-sha256 -c aes128-gcm@openssh.com"
R=/opt/swpush/$NAME
REL=releases/$VERSION
EXTRACT="mkdir -p $R/$REL && tar -x -C $R/$REL"
LINK="ln -sfn $REL $R/current"

# $work/run-TOOL.sh [REPORT]: one run of TOOL on every host, as timed.
write_tool_scripts() {
    local opts
    opts=$(ssh_opts)
    mkdir -p "$work/peer-home" "$work/ansible/cp" "$work/ansible/tmp" "$work/pyinfra"
    awk '$1 == "host" { print $2, $3 }' "$work/fleet.out" >"$work/names"
    sed 's/^/root@/; s/$/:10022/' "$work/addresses" >"$work/pssh-hosts"

    cat >"$work/run-swpush.sh" <<EOF
#!/bin/sh
exec env -u SSH_AUTH_SOCK -u SWPUSH_INVENTORY -u SWPUSH_KEY HOME='$home' \\
    '$swpush' install --inventory '$inventory' --forks $P -q --report "\$1" '$pkg'
EOF
    # One ssh per host; ssh-*-one.sh ADDR as xargs runs it.
    local mode extra
    for mode in default fast; do
        extra=""
        [ "$mode" = default ] || extra=$FAST
        cat >"$work/ssh-$mode-one.sh" <<EOF
#!/bin/sh
exec ssh $opts $extra -p 10022 "root@\$1" '$EXTRACT && $LINK' <'$pkg'
EOF
        cat >"$work/ssh-true-$mode-one.sh" <<EOF
#!/bin/sh
exec ssh $opts $extra -p 10022 "root@\$1" true
EOF
        # run-ssh-default.sh and run-ssh-true.sh; run-ssh-fast.sh and run-ssh-true-fast.sh
        local tool one
        for one in "ssh-$mode" "ssh-true-$mode"; do
            tool=${one/true-default/true}
            cat >"$work/run-$tool.sh" <<EOF
#!/bin/sh
exec env -u SSH_AUTH_SOCK xargs -P $P -n 1 -a '$work/addresses' sh '$work/$one-one.sh'
EOF
        done
    done

    # pssh: OpenSSH defaults, the same options (-O) and config file (-x).
    # The fleet's sshd has no sftp subsystem: every file copy below uses the
    # scp protocol (scp -O; pyinfra's scp), not OpenSSH 9's sftp-based scp.
    local popts="-h $work/pssh-hosts -p $P -t 0 -x '-F /dev/null'"
    popts="$popts -O BatchMode=yes -O IdentitiesOnly=yes -O IdentityFile=$home/.ssh/id_ed25519"
    popts="$popts -O UserKnownHostsFile=$home/.ssh/known_hosts -O GlobalKnownHostsFile=/dev/null"
    popts="$popts -O StrictHostKeyChecking=yes"
    cat >"$work/run-pssh.sh" <<EOF
#!/bin/sh
set -e
unset SSH_AUTH_SOCK
export HOME='$work/peer-home'
parallel-scp $popts -x -O '$pkg' /tmp/$NAME.tar
exec parallel-ssh $popts '$EXTRACT -f /tmp/$NAME.tar && rm -f /tmp/$NAME.tar && $LINK'
EOF

    # Ansible: pipelining and ControlPersist, no fact gathering, forks=P;
    # ssh_args without Ansible's default -C (the package is incompressible).
    {
        echo "[fleet]"
        awk '{ print $1, "ansible_host=" $2 }' "$work/names"
        echo
        echo "[fleet:vars]"
        echo "ansible_port=10022"
        echo "ansible_user=root"
        echo "ansible_ssh_private_key_file=$home/.ssh/id_ed25519"
        echo "ansible_ssh_common_args='$opts'"
        echo "ansible_python_interpreter=/usr/bin/python3"
    } >"$work/ansible/hosts.ini"
    cat >"$work/ansible/ansible.cfg" <<EOF
[defaults]
inventory = $work/ansible/hosts.ini
forks = $P
gathering = explicit
host_key_checking = True
retry_files_enabled = False
local_tmp = $work/ansible/tmp
nocows = True

[ssh_connection]
pipelining = True
ssh_args = -o ControlMaster=auto -o ControlPersist=60s
transfer_method = scp
scp_extra_args = -O
control_path_dir = $work/ansible/cp
EOF
    cat >"$work/ansible/deliver.yml" <<EOF
- hosts: fleet
  gather_facts: false
  tasks:
    - name: release directory
      ansible.builtin.file: { path: "$R/$REL", state: directory }
    - name: extract the package
      ansible.builtin.unarchive: { src: "$pkg", dest: "$R/$REL", creates: "$R/$REL/swpush.yaml" }
    - name: make it current
      ansible.builtin.file: { path: "$R/current", src: "$REL", state: link }
EOF
    cat >"$work/run-ansible.sh" <<EOF
#!/bin/sh
unset SSH_AUTH_SOCK
export HOME='$work/peer-home' ANSIBLE_CONFIG='$work/ansible/ansible.cfg'
exec ansible-playbook '$work/ansible/deliver.yml'
EOF

    # pyinfra (paramiko): the tar once (a fact says whether the release is
    # there), then extract and link.
    {
        echo "hosts = ["
        awk -v key="$home/.ssh/id_ed25519" -v kh="$home/.ssh/known_hosts" '{
            printf "    (\"%s\", {\"ssh_hostname\": \"%s\", \"ssh_port\": 10022, \"ssh_user\": \"root\", \"ssh_key\": \"%s\", \"ssh_known_hosts_file\": \"%s\", \"ssh_strict_host_key_checking\": \"yes\", \"ssh_file_transfer_protocol\": \"scp\", \"ssh_allow_agent\": False, \"ssh_look_for_keys\": False}),\n", $1, $2, key, kh
        }' "$work/names"
        echo "]"
    } >"$work/pyinfra/inventory.py"
    cat >"$work/pyinfra/deploy.py" <<EOF
from pyinfra import host
from pyinfra.facts.files import Directory
from pyinfra.operations import files, server

if not host.get_fact(Directory, path="$R/$REL"):
    files.put(name="upload the package", src="$pkg", dest="/tmp/$NAME.tar")
    server.shell(name="extract it", commands=["$EXTRACT -f /tmp/$NAME.tar && rm -f /tmp/$NAME.tar"])
files.link(name="make it current", path="$R/current", target="$REL")
EOF
    cat >"$work/run-pyinfra.sh" <<EOF
#!/bin/sh
unset SSH_AUTH_SOCK
export HOME='$work/peer-home'
cd '$work/pyinfra'
exec '$venv/bin/pyinfra' -y --parallel $P inventory.py deploy.py
EOF
}

# Ansible's ControlPersist masters outlive a run (detached, so not in its
# CPU figure): stopped after each run so that the next one starts afresh.
stop_ansible_masters() {
    local s
    for s in "$work"/ansible/cp/*; do
        [ -S "$s" ] || continue
        ssh -F /dev/null -o ControlPath="$s" -O exit x >/dev/null 2>&1 || rm -f "$s"
    done
}

# Fails unless every host's current is releases/VERSION with the package's blob.
check_hosts() {
    local d n=0
    for d in $(local_dirs /opt/swpush); do
        if [ ! -L "$d/$NAME/current" ] || [ "$(readlink "$d/$NAME/current")" != "$REL" ]; then
            die "$1: $d/$NAME/current is not a link to $REL"
        fi
        cmp -s "$d/$NAME/$REL/data/blob" "$work/src/data/blob" ||
            die "$1: $d/$NAME/$REL/data/blob is not the package's"
        n=$((n + 1))
    done
    [ "$n" = "$HOSTS" ] || die "$1: $n host directories, expected $HOSTS"
}

# swpush's own check of a run: RUN OUT REPORT.
check_swpush() {
    case $1 in
        cold) check_swpush_round "$3" "$2" ;;
        *) check_swpush_round "$3" "$2" unchanged 0 ;;
    esac
}

# One timed run: TOOL RUN ROUND; appends a line to $work/rows-$MB.
run_one() {
    local tool=$1 run=$2 round=$3 out=$work/out/$1-$2-$3-${MB}MB t0 t1 wall user sys rss
    mkdir -p "$work/out"
    t0=$(machine_ticks)
    if ! /usr/bin/time -f '%e %U %S %M' -o "$out.time" sh "$work/run-$tool.sh" "$out.json" >"$out.txt" 2>&1; then
        die "$tool $run (round $round) failed: $(tail -n 20 "$out.txt")"
    fi
    t1=$(machine_ticks)
    [ "$tool" != ansible ] || stop_ansible_masters
    case $tool in
        swpush) check_swpush "$run" "$out.txt" "$out.json" && check_hosts "swpush $run" ;;
        ssh-true | ssh-true-fast) ;;
        *) check_hosts "$tool $run" ;;
    esac
    read -r wall user sys rss <"$out.time"
    echo "$tool $run $round $wall $user $sys $rss $((t1 - t0))" >>"$work/rows-$MB"
    echo "$wall"
}

install_peers
bench_setup
make_package # (start_fleet's floor script names it; made again per size below)
start_fleet
enroll_fleet
tck=$(getconf CLK_TCK)
mkdir -p "$(dirname "$CSV")"
[ -s "$CSV" ] || echo "tool,hosts,mb,run,round,wall_s,controller_cpu_s,controller_rss_mb,machine_cpu_s,note" >"$CSV"
echo "peers: $HOSTS hosts, P=$P, MB: $MB_LIST, $ROUNDS rounds, tools: $TOOLS;" \
    "$(nproc) cores, load average $(cut -d ' ' -f 1-3 /proc/loadavg)"

for MB in $MB_LIST; do
    make_package
    write_tool_scripts
    : >"$work/rows-$MB"
    once=" "
    for round in $(seq 1 "$ROUNDS"); do
        line="$HOSTS x $MB MB round $round:"
        for tool in $TOOLS; do
            case $once in *" $tool "*) continue ;; esac
            cold=0
            case $tool in
                ssh-true | ssh-true-fast) ;;
                *)
                    reset_hosts
                    cold=$(run_one "$tool" cold "$round")
                    ;;
            esac
            rerun=$(run_one "$tool" rerun "$round")
            line="$line  $tool $cold/$rerun s"
            if awk -v a="$cold" -v b="$rerun" -v l="$LIMIT" 'BEGIN { exit !(a + b > l) }'; then
                once="$once$tool "
            fi
        done
        echo "$line"
    done
    # The CSV rows of this package size, "once" for a tool run once.
    awk -v h="$HOSTS" -v mb="$MB" -v tck="$tck" -v once="$once" '{
        note = (index(once, " " $1 " ") ? "once" : "")
        printf "%s,%s,%s,%s,%s,%.2f,%.2f,%.1f,%.2f,%s\n", $1, h, mb, $2, $3, $4, $5 + $6, $7 / 1024, $8 / tck, note
    }' "$work/rows-$MB" >>"$CSV"
    echo
    echo "$HOSTS hosts x $MB MB, P=$P, median of $ROUNDS rounds (controller CPU: user+sys of the tool's waited-for processes; RSS: largest single process):"
    printf '  %-14s %-6s %8s %10s %9s %11s\n' tool run wall_s ctl_cpu_s ctl_rss_mb machine_cpu_s
    for tool in $TOOLS; do
        for run in cold rerun; do
            awk -v t="$tool" -v r="$run" -v tck="$tck" '$1 == t && $2 == r { print $4, $5 + $6, $7 / 1024, $8 / tck }' \
                "$work/rows-$MB" >"$work/sel"
            [ -s "$work/sel" ] || continue
            printf '  %-14s %-6s %8s %10s %9s %11s\n' "$tool" "$run" \
                "$(cut -d ' ' -f 1 "$work/sel" | median %.2f)" \
                "$(cut -d ' ' -f 2 "$work/sel" | median %.2f)" \
                "$(cut -d ' ' -f 3 "$work/sel" | median %.1f)" \
                "$(cut -d ' ' -f 4 "$work/sel" | median %.2f)"
        done
    done
    echo
done
echo "peers: rows appended to $CSV"
