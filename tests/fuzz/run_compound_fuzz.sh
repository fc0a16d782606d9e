#!/usr/bin/env bash
# Bounded run of compound_fuzz, the stateful COMPOUND fuzzer (issue 14): builds it in
# build-fuzz (the clang/libFuzzer build scripts/test.sh makes for rpc_fuzz), writes its seed
# corpus and fuzzes for LOOM_COMPOUND_FUZZ_SECONDS (default 60). Exits non-zero on a crash,
# a sanitizer report or a violated invariant, after printing the end of the log and the
# crash input. An invariant violation also leaves every input the process ran, in order, in
# build-fuzz/compound-artifacts/compound-history-PID.bin (the state is made by the inputs
# before the failing one); replay: LOOM_FUZZ_REPLAY=<file> LOOM_FUZZ_TRACE=1 \
#   build-fuzz/compound_fuzz -runs=0
# LOOM_FUZZ_BUILD_DIR overrides the build directory.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs="${LOOM_COMPOUND_FUZZ_SECONDS:-60}"
b="${LOOM_FUZZ_BUILD_DIR:-build-fuzz}"
if [ ! -f "$b/build.ninja" ]; then
  CC=clang CXX=clang++ cmake -S . -B "$b" -G Ninja -DLOOM_FUZZ=ON -DLOOM_BUILD_TESTS=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
ninja -C "$b" compound_fuzz
echo "== fuzz (compound_fuzz, stateful COMPOUNDs, ${secs}s)"
python3 tests/fuzz/make_compound_seeds.py "$b/compound-seeds"
mkdir -p "$b/compound-corpus" "$b/compound-artifacts"
# -detect_leaks=0: the fuzzer keeps state from input to input by design, so nearly every input
# allocates more than it frees, and libFuzzer's per-input leak check (an LSan pass each time)
# would find nothing but cost two thirds of the run. ASan and UBSan stay on.
LOOM_FUZZ_HISTORY_DIR="$b/compound-artifacts" "$b/compound_fuzz" -max_total_time="$secs" \
  -detect_leaks=0 -max_len=4096 -rss_limit_mb=2048 -timeout=60 -print_final_stats=1 \
  -artifact_prefix="$b/compound-artifacts/" \
  "$b/compound-corpus" "$b/compound-seeds" 2>"$b/compound-fuzz.log" || {
  tail -60 "$b/compound-fuzz.log"
  for f in "$b"/compound-artifacts/crash-*; do
    [ -f "$f" ] && { echo "crash input $f:"; od -An -tx1 "$f" | head -20; }
  done
  ls -l "$b"/compound-artifacts/compound-history-*.bin 2>/dev/null || true
  echo "compound fuzz: FAILED"
  exit 1
}
grep -E "stat::number_of_executed_units|Done|^compound_fuzz: [0-9]" "$b/compound-fuzz.log" | tail -3
echo "compound fuzz: 1 passed, 0 failed"
