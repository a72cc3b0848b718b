#!/bin/sh
# A fleet's reaper: `sh reaper.sh FLEET_DIR`, stdin a pipe only the Fleet
# writes to. Blocks until that pipe closes (Fleet dropped, or the test process
# gone however it ended), then SIGKILLs every process living in one of the
# hosts' mount namespaces (listed in FLEET_DIR/hosts/*/mntns) until none is
# left, deletes the network namespace FLEET_DIR/netns names, if any, and
# removes FLEET_DIR. Never kills in its own namespace.
F=$1
while read -r _; do :; done
self=$(stat -L -c %i "/proc/$$/ns/mnt")
# Only processes that existed when the fleet ended: once its namespaces are
# gone, the kernel may give a new fleet's host the same namespace id.
hz=$(getconf CLK_TCK 2>/dev/null || echo 100)
woke=$(awk -v hz="$hz" '{ printf "%d", $1 * hz }' /proc/uptime)
n=0
while [ "$n" -lt 200 ]; do
	ns=' '
	for f in "$F"/hosts/*/mntns; do
		[ -s "$f" ] && i=$(cat "$f") && [ "$i" != "$self" ] && ns="$ns$i "
	done
	pids=
	# Zombies have no namespace left: stat fails for them and they are skipped.
	for l in $(stat -L -c '%i:%n' /proc/[0-9]*/ns/mnt 2>/dev/null); do
		case $ns in *" ${l%%:*} "*)
			p=${l#*:/proc/}
			p=${p%%/*}
			born=$(awk '{ sub(/.*\) /, ""); print $20 }' "/proc/$p/stat" 2>/dev/null)
			if [ -n "$born" ] && [ "$born" -le "$woke" ]; then pids="$pids $p"; fi
			;;
		esac
	done
	[ -n "$pids" ] || break
	# shellcheck disable=SC2086 # a list of pids
	kill -9 $pids 2>/dev/null
	sleep 0.05
	n=$((n + 1))
done
# A site's network namespace (Fleet::start_site), named in FLEET_DIR/netns.
if [ -s "$F/netns" ]; then
	ip netns del "$(cat "$F/netns")" 2>/dev/null
fi
rm -rf "$F"
