#!/usr/bin/env bash
# The fleet-size matrix of docs/benchmarks.md: bench/peers.sh at 20, 100,
# 250 and 1,000 hosts, every tool interleaved round by round, into one CSV,
# then bench/chart.sh draws it.
#
#   bench/matrix.sh [CSV [PNG]]     default docs/bench/matrix.csv and .png
#
# Rounds: 3 where a round of every tool fits in a few minutes on a 2-core
# machine (20 hosts; 100 hosts at 1 and 10 MB), 1 above that (100 hosts at
# 100 MB, 250 and 1,000 hosts), so that the whole matrix runs in about two
# hours. ROUNDS_BIG=3 runs those with 3 rounds as well. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
csv=${1:-docs/bench/matrix.csv}
png=${2:-${csv%.csv}.png}
big=${ROUNDS_BIG:-1}
csv=$(realpath -m "$csv")
rm -f "$csv"
mkdir -p "$(dirname "$csv")"
run() { echo "matrix: HOSTS=$1 MB=\"$2\" ROUNDS=$3" >&2; HOSTS=$1 MB=$2 ROUNDS=$3 CSV=$csv bash bench/peers.sh; }
run 20 "1 10 100" 3
run 100 "1 10" 3
run 100 100 "$big"
run 250 "1 10" "$big"
run 1000 "1 10" "$big"
bash bench/chart.sh "$csv" "$png"
