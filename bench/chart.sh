#!/usr/bin/env bash
# Draws bench/peers.sh's CSV: the median wall time of the cold runs against
# the number of hosts, one line per tool and package size, both axes log
# scale, as a PNG (gnuplot; installs gnuplot-nox when missing).
#
#   bench/chart.sh CSV PNG      e.g. bench/chart.sh docs/bench/peers.csv docs/bench/peers.png
set -euo pipefail

[ "$#" = 2 ] || { echo "usage: bench/chart.sh CSV PNG" >&2 && exit 2; }
csv=$1
png=$2
[ -s "$csv" ] || { echo "chart: no data in $csv" >&2 && exit 1; }
if ! command -v gnuplot >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnuplot-nox) >&2
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# "tool|mb hosts wall" of every cold run, then one median per series and host count.
awk -F, 'NR > 1 && $4 == "cold" { print $1 "|" $3, $2, $6 }' "$csv" | sort -k1,1 -k2,2n -k3,3n |
    awk '{ k = $1 " " $2; if (k != last && last != "") flush(); last = k; v[++n] = $3 }
        function flush() { print last, v[int((n + 1) / 2)]; n = 0 }
        END { if (n) flush() }' >"$tmp/medians"
[ -s "$tmp/medians" ] || { echo "chart: no cold runs in $csv" >&2 && exit 1; }

# One colour per tool, one dash pattern per package size (solid: the smallest).
sizes=$(cut -d ' ' -f 1 "$tmp/medians" | sed 's/.*|//' | sort -n -u | tr '\n' ' ')
plot=""
i=0
for series in $(cut -d ' ' -f 1 "$tmp/medians" | uniq); do
    i=$((i + 1))
    awk -v s="$series" '$1 == s { print $2, $3 }' "$tmp/medians" >"$tmp/s$i"
    tool=${series%|*}
    mb=${series#*|}
    colour=$(cut -d ' ' -f 1 "$tmp/medians" | sed 's/|.*//' | uniq | grep -nx -- "$tool" | cut -d : -f 1)
    dash=$(echo "$sizes" | tr ' ' '\n' | grep -nx -- "$mb" | cut -d : -f 1)
    plot="$plot${plot:+, }'$tmp/s$i' using 1:2 with linespoints linecolor $colour dashtype $dash linewidth 2 title '$tool, $mb MB'"
done

# pngcairo where gnuplot has it (gnuplot-nox may not), else the plain png terminal.
term="png size 900,600"
if gnuplot -e 'set terminal' 2>&1 | grep -q pngcairo; then term="pngcairo size 900,600"; fi
gnuplot <<EOF
set terminal $term
set output '$png'
set title 'Cold install: median wall time against hosts (bench/peers.sh)'
set xlabel 'hosts'
set ylabel 'wall seconds'
set logscale xy
set key outside right top
set grid
plot $plot
EOF
echo "chart: $png"
