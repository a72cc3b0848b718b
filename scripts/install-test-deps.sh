#!/bin/sh
# Installs what the test suite needs on a Debian/Ubuntu machine: OpenSSH's
# sshd (the tests start real sshd hosts), the shells and tar flavours the
# client step must run under (dash, busybox), zstd, shellcheck, sudo (for
# `become: true` hosts), ansible-core (the oracle tests/testsuite/ansible.rs compares
# Ansible inventories with), iproute2 (`ss`: a test checks that a refused
# host saw no connection; `ip netns`: tests/testsuite/jump.rs puts targets in a network
# namespace only a bastion reaches), util-linux (`unshare`, `nsenter`), bsdutils (`script`: -K is typed on a real pty).
# Idempotent and quiet when everything is already
# there. Needs root (the test fleet does too: it uses mount namespaces).
set -eu

missing=""
for pair in /usr/sbin/sshd:openssh-server /usr/bin/ssh:openssh-client \
    /usr/bin/ssh-keygen:openssh-client /bin/dash:dash /bin/busybox:busybox \
    /usr/bin/zstd:zstd /usr/bin/shellcheck:shellcheck /usr/bin/unshare:util-linux \
    /usr/bin/tar:tar /usr/bin/sudo:sudo /usr/bin/ansible-inventory:ansible-core \
    /bin/ss:iproute2 /usr/sbin/ip:iproute2 /usr/bin/nsenter:util-linux \
    /usr/bin/script:bsdutils; do
    [ -x "${pair%%:*}" ] || missing="$missing ${pair#*:}"
done

if [ -n "$missing" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "error: the tests need root; missing packages:$missing" >&2
        exit 1
    fi
    echo "installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086 # one word per package
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
