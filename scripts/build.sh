#!/usr/bin/env bash
# Configures and builds Loom into ./build (RelWithDebInfo). Usage: scripts/build.sh [targets...]
#   LOOM_COVERAGE=ON|OFF  (re)configure with gcov instrumentation on or off (CI: on)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f build/build.ninja ] || [ -n "${LOOM_COVERAGE:-}" ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo ${LOOM_COVERAGE:+-DLOOM_COVERAGE=$LOOM_COVERAGE} >/dev/null
fi
ninja -C build "$@"
