// `loom bench ...`: storage benchmarks run from the loom CLI (docs/benchmarks.md).
//   loom bench train ...   AI training read load, MLPerf Storage method (accelerator utilisation)
//   loom bench read ...    raw libloom read sweep (sequential / random, queue depth, connections)
#pragma once

#include <string>
#include <vector>

// Runs `loom bench ARGS...` (ARGS without "bench"). Prints results on stdout (one JSON object
// with --json), progress and errors on stderr. Returns the exit status: 0 ok, 1 an I/O or
// server error, 2 usage.
int RunBench(const std::vector<std::string>& args);
