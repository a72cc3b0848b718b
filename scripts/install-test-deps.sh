#!/bin/sh
# Installs what the test suite needs on a Debian/Ubuntu machine: OpenSSH's
# sshd (the tests start real sshd hosts), the shells and tar flavours the
# client step must run under (dash, busybox), zstd, shellcheck, sudo (for
# `become: true` hosts), ansible-core (the oracle tests/testsuite/ansible.rs compares
# Ansible inventories with), iproute2 (`ss`: a test checks that a refused
# host saw no connection; `ip netns`: tests/testsuite/jump.rs puts targets in a network
# namespace only a bastion reaches), util-linux (`unshare`, `nsenter`), bsdutils (`script`: -K is typed on a real pty),
# nginx (mirror mode's origin and site cache, tests/testsuite/mirror.rs; the
# tests start their own, and the package's service is kept from starting),
# curl and wget (what the client step fetches from a mirror with).
# Idempotent and quiet when everything is already
# there. Needs root (the test fleet does too: it uses mount namespaces).
set -eu

missing=""
for pair in /usr/sbin/sshd:openssh-server /usr/bin/ssh:openssh-client \
    /usr/bin/ssh-keygen:openssh-client /bin/dash:dash /bin/busybox:busybox \
    /usr/bin/zstd:zstd /usr/bin/shellcheck:shellcheck /usr/bin/unshare:util-linux \
    /usr/bin/tar:tar /usr/bin/sudo:sudo /usr/bin/ansible-inventory:ansible-core \
    /bin/ss:iproute2 /usr/sbin/ip:iproute2 /usr/bin/nsenter:util-linux \
    /usr/bin/script:bsdutils /usr/sbin/nginx:nginx /usr/bin/curl:curl /usr/bin/wget:wget; do
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
    # No service the packages bring (nginx) starts listening on this machine.
    policy=/usr/sbin/policy-rc.d
    made_policy=
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
    fi
    # shellcheck disable=SC2086 # one word per package
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
    if [ -n "$made_policy" ]; then rm -f "$policy"; fi
fi
