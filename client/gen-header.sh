#!/usr/bin/env bash
# Regenerate include/basalt_client.h from src/capi/ with cbindgen (as a library, through
# the drift test; no cbindgen binary needed). Commit the result.
set -euo pipefail
cd "$(dirname "$0")/.."
BASALT_WRITE_HEADER=1 cargo test -p basalt-client --test capi_header -- --quiet
echo "wrote client/include/basalt_client.h"
