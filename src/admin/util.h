// Small string helpers shared by the admin sources (internal; not part of the admin API).
#pragma once

#include <sstream>
#include <string>
#include <vector>

namespace loom::admin::internal {

// `s` split at runs of whitespace; empty words are never returned.
inline std::vector<std::string> SplitWords(const std::string& s) {
  std::vector<std::string> w;
  std::istringstream in(s);
  std::string x;
  while (in >> x) w.push_back(x);
  return w;
}

}  // namespace loom::admin::internal
