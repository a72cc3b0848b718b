#!/bin/sh
# pre_remove: runs before `swpush remove` deletes the package's releases.
set -eu
echo "pre_remove op=$SWPUSH_OP package=$SWPUSH_PACKAGE version=$SWPUSH_VERSION" \
    >> "$SWPUSH_RELEASE_DIR/../../hooks.log"
