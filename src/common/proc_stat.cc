#include "common/proc_stat.h"

#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

namespace loom {

double SelfCpuSeconds() {
  rusage ru{};
  if (::getrusage(RUSAGE_SELF, &ru) != 0) return 0;
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return s(ru.ru_utime) + s(ru.ru_stime);
}

double ProcCpuSeconds(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  // The fields after the command name, which may hold spaces and parentheses: the state is
  // field 3, utime and stime are 14 and 15.
  size_t close = line.rfind(')');
  if (close == std::string::npos) return -1;
  const char* p = line.c_str() + close + 1;
  unsigned long long ticks[2] = {0, 0};
  for (int field = 3; field <= 15; field++) {
    while (*p == ' ') p++;
    if (!*p) return -1;
    char* end = nullptr;
    unsigned long long v = std::strtoull(p, &end, 10);
    if (field >= 14) ticks[field - 14] = v;
    while (*end && *end != ' ') end++;  // a non-numeric field (the state)
    p = end;
  }
  return static_cast<double>(ticks[0] + ticks[1]) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

}  // namespace loom
