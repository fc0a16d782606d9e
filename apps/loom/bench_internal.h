// The `loom bench` subcommands (bench.cc dispatches to them). Internal to apps/loom.
#pragma once

#include <string>
#include <vector>

namespace loom::bench {

// `loom bench train ...` (bench_train.cc) and `loom bench read ...` (bench_read.cc): ARGS are
// the words after the subcommand. Return the exit status (bench_util.h).
int RunTrain(const std::vector<std::string>& args);
int RunRead(const std::vector<std::string>& args);

}  // namespace loom::bench
