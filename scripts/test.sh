#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test: unit tests, process tests, libnfs and
# Linux-kernel-client interoperability, and a bounded libFuzzer run. Exits non-zero on failure.
#   LOOM_FUZZ_SECONDS  fuzzing time of each fuzzer (default 60; two fuzzers run)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# CI measures coverage (scripts/coverage.sh after the tests); elsewhere LOOM_COVERAGE=ON asks.
if [ "${CI:-}" = "true" ]; then export LOOM_COVERAGE="${LOOM_COVERAGE:-ON}"; fi
bash scripts/build.sh
if [ "${LOOM_COVERAGE:-}" = "ON" ]; then bash scripts/coverage.sh --reset; fi

# In CI every test must really run: a skip of a kernel-client test (Debian 12's 6.1 and the
# newest 7.x client) or of the libnfs interop test is a failure there.
if [ "${CI:-}" = "true" ]; then
  export LOOM_REQUIRE_KERNEL="${LOOM_REQUIRE_KERNEL:-6.1 7}"
  export LOOM_REQUIRE_INTEROP="${LOOM_REQUIRE_INTEROP:-1}"
fi

echo "== ctest"
ctest --test-dir build --output-on-failure -j 2 --timeout 900

echo "== fuzz (libFuzzer, ${LOOM_FUZZ_SECONDS:-60}s)"
if [ ! -f build-fuzz/build.ninja ]; then
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DLOOM_FUZZ=ON -DLOOM_BUILD_TESTS=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
ninja -C build-fuzz rpc_fuzz
corpus=build-fuzz/corpus
mkdir -p "$corpus"
python3 tests/fuzz/make_seeds.py build-fuzz/seeds
build-fuzz/rpc_fuzz -max_total_time="${LOOM_FUZZ_SECONDS:-60}" -max_len=8192 -rss_limit_mb=1024 \
  -print_final_stats=1 "$corpus" build-fuzz/seeds 2>build-fuzz/fuzz.log || {
  tail -50 build-fuzz/fuzz.log
  echo "fuzz: FAILED"
  exit 1
}
grep -E "stat::number_of_executed_units|Done" build-fuzz/fuzz.log | tail -2
echo "fuzz: 1 passed, 0 failed"
# The stateful COMPOUND fuzzer (issue 14), bounded the same way: fuzzing stays under 3 minutes.
LOOM_COMPOUND_FUZZ_SECONDS="${LOOM_COMPOUND_FUZZ_SECONDS:-${LOOM_FUZZ_SECONDS:-60}}" bash tests/fuzz/run_compound_fuzz.sh

if [ "${LOOM_COVERAGE:-}" = "ON" ]; then
  echo "== coverage (gcovr): replaying the fuzz corpora through the instrumented build"
  ninja -C build rpc_fuzz_replay compound_fuzz_replay >/dev/null
  build/rpc_fuzz_replay build-fuzz/corpus build-fuzz/seeds 2>&1 | tail -1
  build/compound_fuzz_replay build-fuzz/compound-corpus build-fuzz/compound-seeds 2>&1 | tail -1
  bash scripts/coverage.sh
fi
