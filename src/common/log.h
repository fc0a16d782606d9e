// Minimal leveled logging to stderr. Thread-safe (one write(2) per line).
#pragma once

#include <cstdio>
#include <string>

namespace loom {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

void SetLogLevel(LogLevel l);
LogLevel GetLogLevel();
void LogLine(LogLevel l, const char* file, int line, const char* fmt, ...)
    __attribute__((format(printf, 4, 5)));

}  // namespace loom

#define LOOM_LOG(level, ...)                                                 \
  do {                                                                       \
    if (::loom::LogLevel::level >= ::loom::GetLogLevel())                    \
      ::loom::LogLine(::loom::LogLevel::level, __FILE__, __LINE__, __VA_ARGS__); \
  } while (0)
#define LOG_DEBUG(...) LOOM_LOG(kDebug, __VA_ARGS__)
#define LOG_INFO(...) LOOM_LOG(kInfo, __VA_ARGS__)
#define LOG_WARN(...) LOOM_LOG(kWarn, __VA_ARGS__)
#define LOG_ERROR(...) LOOM_LOG(kError, __VA_ARGS__)
