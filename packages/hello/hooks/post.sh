#!/bin/sh
# post_install: runs after `current` points at the new release. A real
# package would start its service here; exiting non-zero makes swpush switch
# back to the previous release. This one checks that the program runs.
set -eu
./bin/hello >/dev/null
echo "post_install op=$SWPUSH_OP package=$SWPUSH_PACKAGE version=$SWPUSH_VERSION previous=${SWPUSH_PREVIOUS_VERSION:-} dir=$SWPUSH_RELEASE_DIR" \
    >> "$SWPUSH_RELEASE_DIR/../../hooks.log"
