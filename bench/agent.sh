#!/usr/bin/env bash
# Many hosts through one ssh-agent: `swpush install` to HOSTS local sshd
# hosts (tests/testsuite/support fleet) with no identity file, every login signed by
# one real ssh-agent, then a re-run through the agent and the same re-run
# with the key file, for comparison. Every host must install.
#
#   bench/agent.sh [HOSTS]      default 100; needs root (sshd hosts)
#
# Runs the ignored test `agent_throughput` in tests/testsuite/agent.rs (debug build,
# as the tests are built) and prints its timings; record them in
# docs/benchmarks.md ("## Many hosts through one ssh-agent").
set -euo pipefail
cd "$(dirname "$0")/.."
HOSTS=${1:-100}
case $HOSTS in '' | *[!0-9]*) echo "usage: bench/agent.sh [HOSTS]" >&2; exit 2 ;; esac
[ "$(id -u)" = 0 ] || { echo "bench: the local fleet needs root" >&2; exit 1; }
echo "bench: $HOSTS hosts through one ssh-agent, $(nproc) cores," \
    "load average $(cut -d ' ' -f 1-3 /proc/loadavg)"
SWPUSH_AGENT_HOSTS=$HOSTS cargo test --locked --test testsuite agent::agent_throughput -- \
    --ignored --nocapture --exact 2>&1 | grep -E '^[0-9]+ hosts|test result|panicked|FAILED'
