#!/bin/sh
# pre_install: runs in the new release directory before it becomes current.
# A real package would stop its service here. Each hook appends one line to
# hooks.log beside the releases, so an operator (and the tests) can see the
# order and the environment swpush gave it.
set -eu
echo "pre_install op=$SWPUSH_OP package=$SWPUSH_PACKAGE version=$SWPUSH_VERSION previous=${SWPUSH_PREVIOUS_VERSION:-} dir=$SWPUSH_RELEASE_DIR" \
    >> "$SWPUSH_RELEASE_DIR/../../hooks.log"
