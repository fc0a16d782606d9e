#include "bench_util.h"

#include <sys/mman.h>
#include <time.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

namespace loom::bench {

IoRegion::IoRegion(size_t bytes) {
  constexpr size_t kHuge = 2u << 20;
  size_ = (std::max<size_t>(bytes, 1) + kHuge - 1) / kHuge * kHuge;
  void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  (void)::madvise(p, size_, MADV_HUGEPAGE);
  std::memset(p, 0, size_);
  data_ = static_cast<char*>(p);
}

IoRegion::~IoRegion() { ::munmap(data_, size_); }

bool Flags::Parse(const std::vector<std::string>& args, const std::set<std::string>& with_value,
                  const std::set<std::string>& booleans, std::string* err) {
  for (size_t i = 0; i < args.size(); i++) {
    const std::string& a = args[i];
    if (a.size() < 3 || a.compare(0, 2, "--") != 0) {
      *err = "unexpected argument '" + a + "'";
      return false;
    }
    std::string name = a.substr(2), value;
    size_t eq = name.find('=');
    bool inline_value = eq != std::string::npos;
    if (inline_value) {
      value = name.substr(eq + 1);
      name.resize(eq);
    }
    if (booleans.count(name)) {
      if (inline_value) {
        *err = "--" + name + " takes no value";
        return false;
      }
      values_[name].assign(1, '1');  // (operator=("1") trips a GCC 12 -Wrestrict false positive)
    } else if (with_value.count(name)) {
      if (!inline_value) {
        if (i + 1 >= args.size()) {
          *err = "--" + name + " needs a value";
          return false;
        }
        value = args[++i];
      }
      values_[name] = value;
    } else {
      *err = "unknown option --" + name;
      return false;
    }
  }
  return true;
}

std::string Flags::Get(const std::string& name, const std::string& def) const {
  auto it = values_.find(name);
  return it == values_.end() ? def : it->second;
}

bool ParseDouble(const std::string& s, double* out) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(s.c_str(), &end);
  if (errno != 0 || end != s.c_str() + s.size() || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

bool ParseUint(const std::string& s, uint64_t* out) {
  if (s.empty() || s[0] == '-') return false;
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (errno != 0 || end != s.c_str() + s.size()) return false;
  *out = v;
  return true;
}

bool ParseSize(const std::string& s, uint64_t* out) {
  size_t n = 0;
  while (n < s.size() && (std::isdigit(static_cast<unsigned char>(s[n])) || s[n] == '.')) n++;
  double v;
  if (n == 0 || !ParseDouble(s.substr(0, n), &v)) return false;
  std::string unit = s.substr(n);
  for (char& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  double mul;
  if (unit.empty() || unit == "B") mul = 1;
  else if (unit == "K" || unit == "KI" || unit == "KIB") mul = 1024.0;
  else if (unit == "M" || unit == "MI" || unit == "MIB") mul = 1024.0 * 1024;
  else if (unit == "G" || unit == "GI" || unit == "GIB") mul = 1024.0 * 1024 * 1024;
  else if (unit == "KB") mul = 1e3;
  else if (unit == "MB") mul = 1e6;
  else if (unit == "GB") mul = 1e9;
  else return false;
  double bytes = v * mul;
  if (bytes < 0 || bytes > 1e18 || bytes != std::floor(bytes)) return false;
  *out = static_cast<uint64_t>(bytes);
  return true;
}

std::string JsonQuote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

void Json::Key(const std::string& key) {
  if (!body_.empty()) body_ += ',';
  body_ += JsonQuote(key) + ':';
}
Json& Json::Str(const std::string& key, const std::string& v) {
  Key(key);
  body_ += JsonQuote(v);
  return *this;
}
Json& Json::Num(const std::string& key, double v, int decimals) {
  Key(key);
  if (!std::isfinite(v)) {
    body_ += "null";
    return *this;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  body_ += buf;
  return *this;
}
Json& Json::Int(const std::string& key, int64_t v) {
  Key(key);
  body_ += std::to_string(v);
  return *this;
}
Json& Json::Bool(const std::string& key, bool v) {
  Key(key);
  body_ += v ? "true" : "false";
  return *this;
}
Json& Json::Null(const std::string& key) {
  Key(key);
  body_ += "null";
  return *this;
}
Json& Json::Raw(const std::string& key, const std::string& json) {
  Key(key);
  body_ += json;
  return *this;
}

double NowS() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

void SleepUntil(double t) {
  timespec ts;
  ts.tv_sec = static_cast<time_t>(t);
  ts.tv_nsec = static_cast<long>((t - static_cast<double>(ts.tv_sec)) * 1e9);
  if (ts.tv_nsec >= 1000000000L) ts.tv_nsec = 999999999L;
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

double Percentile(std::vector<double>* v, double p) {
  if (v->empty()) return 0;
  std::sort(v->begin(), v->end());
  double rank = p / 100.0 * static_cast<double>(v->size() - 1);
  size_t i = static_cast<size_t>(rank);
  if (i + 1 >= v->size()) return v->back();
  double frac = rank - static_cast<double>(i);
  return (*v)[i] + ((*v)[i + 1] - (*v)[i]) * frac;
}

std::string SamplePath(const std::string& dir, uint64_t i) {
  char name[32];
  std::snprintf(name, sizeof name, "sample_%06llu", static_cast<unsigned long long>(i));
  std::string d = dir;
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  if (d.empty() || d.back() != '/') d += '/';
  return d + name;
}

}  // namespace loom::bench
