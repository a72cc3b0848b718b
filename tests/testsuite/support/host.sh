#!/bin/sh
# One test host: run as `unshare -m --propagation private sh host.sh H`, where H
# is the host's directory (absolute, no ',' or ':', not under /tmp). Gives this
# mount namespace a private view of the dirs swpush touches, then becomes sshd.
# Writes nothing outside H: overlays catch writes to /etc, /var/{lib,cache,log}
# and /run; H/* is bind-mounted over swpush's own dirs, /opt and /tmp. /root
# stays the machine's, but its shell startup files are hidden behind an empty
# file: a developer's rc (pyenv, ...) made each login slow, wrote to the real
# /root, and when a login was killed mid-way it left a lock that stalled all
# later logins for a minute.
set -eu
H=$1
# The reaper finds this host's processes by this namespace id.
stat -L -c %i "/proc/$$/ns/mnt" >"$H/mntns"
for d in etc var/lib var/cache var/log run; do
	mkdir -p "$H/ov/$d/upper" "$H/ov/$d/work"
	mount -t overlay overlay -o "lowerdir=/$d,upperdir=$H/ov/$d/upper,workdir=$H/ov/$d/work" "/$d"
done
# Inside the overlays now: these mkdirs do not reach the machine.
mkdir -p /run/sshd /etc/swpush /var/lib/swpush /var/cache/swpush /run/swpush
for m in etc/swpush:etc-swpush var/lib/swpush:var-lib-swpush \
	var/cache/swpush:var-cache-swpush run/swpush:run-swpush opt:opt tmp:tmp; do
	mkdir -p "$H/${m#*:}"
	mount --bind "$H/${m#*:}" "/${m%%:*}"
done
chmod 1777 "$H/tmp"
: >"$H/empty"
for f in .bashrc .profile .bash_profile .bash_login .bash_logout; do
	if [ -f "/root/$f" ]; then mount --bind "$H/empty" "/root/$f"; fi
done
exec /usr/sbin/sshd -D -f "$H/sshd_config" -E "$H/sshd.log"
