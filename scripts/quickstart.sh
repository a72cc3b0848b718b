#!/bin/sh
# The README's first command: build swpush and run it on the built-in
# example, touching nothing outside target/quickstart/. It lists the example
# inventory's hosts (no connection is made), packs the example package
# twice to show the output is byte-identical, and creates a distribution key
# in a private HOME to show the known_servers line a client needs.
set -eu
cd "$(dirname "$0")/.."

cargo build --release --locked --quiet
swpush=target/release/swpush
work=target/quickstart
rm -rf "$work"
mkdir -p "$work/home"

echo "== swpush hosts --inventory inventory.example.yaml"
"$swpush" hosts --inventory inventory.example.yaml
echo
echo "== swpush hosts --inventory inventory.example.yaml --limit 'web,!canary'"
"$swpush" hosts --inventory inventory.example.yaml --limit 'web,!canary'
echo
echo "== swpush pack packages/hello -o $work/hello.tar.gz"
"$swpush" pack packages/hello -o "$work/hello.tar.gz"
"$swpush" pack packages/hello -o "$work/hello-again.tar.gz" >/dev/null
cmp "$work/hello.tar.gz" "$work/hello-again.tar.gz"
echo "(packed twice: byte-identical)"
echo
echo "== swpush keygen (HOME=$work/home)"
HOME="$PWD/$work/home" "$swpush" keygen
