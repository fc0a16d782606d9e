#!/usr/bin/env bash
# Configures and builds Loom into ./build (RelWithDebInfo). Usage: scripts/build.sh [targets...]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f build/build.ninja ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi
ninja -C build "$@"
