#include "common/log.h"

#include <unistd.h>

#include <atomic>
#include <cstdarg>
#include <cstdlib>
#include <cstring>
#include <string>
#include <ctime>

namespace loom {

namespace {
// LOOM_LOG=debug|info|warn|error sets the initial level.
int InitialLevel() {
  const char* e = std::getenv("LOOM_LOG");
  if (!e) return static_cast<int>(LogLevel::kInfo);
  std::string v(e);
  if (v == "debug") return static_cast<int>(LogLevel::kDebug);
  if (v == "warn") return static_cast<int>(LogLevel::kWarn);
  if (v == "error") return static_cast<int>(LogLevel::kError);
  return static_cast<int>(LogLevel::kInfo);
}
std::atomic<int> g_level{InitialLevel()};
const char* kNames[] = {"D", "I", "W", "E"};
}  // namespace

void SetLogLevel(LogLevel l) { g_level.store(static_cast<int>(l)); }
LogLevel GetLogLevel() { return static_cast<LogLevel>(g_level.load(std::memory_order_relaxed)); }

void LogLine(LogLevel l, const char* file, int line, const char* fmt, ...) {
  char buf[2048];
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  tm tmv;
  gmtime_r(&ts.tv_sec, &tmv);
  const char* base = std::strrchr(file, '/');
  base = base ? base + 1 : file;
  int n = std::snprintf(buf, sizeof buf, "%s %02d:%02d:%02d.%03ld %s:%d] ",
                        kNames[static_cast<int>(l)], tmv.tm_hour, tmv.tm_min, tmv.tm_sec,
                        ts.tv_nsec / 1000000, base, line);
  va_list ap;
  va_start(ap, fmt);
  int m = std::vsnprintf(buf + n, sizeof buf - n - 1, fmt, ap);
  va_end(ap);
  size_t len = static_cast<size_t>(n) + (m < 0 ? 0 : std::min<size_t>(m, sizeof buf - n - 2));
  buf[len++] = '\n';
  ssize_t ignored = ::write(2, buf, len);
  (void)ignored;
}

}  // namespace loom
