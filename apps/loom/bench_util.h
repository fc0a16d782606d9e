// Small helpers shared by the `loom bench` commands: flag parsing, sizes, a one-line JSON
// writer, clocks and percentiles. Internal to apps/loom.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace loom::bench {

// Destination memory for reads, the same for every backend: anonymous, in whole 2 MiB, with
// huge pages asked for (MADV_HUGEPAGE; the kernel may decline), as a loader that stages large
// batches would have it (PyTorch: THP_MEM_ALLOC_ENABLE=1). A receive copy into 4 KiB pages
// spends a good part of its time in TLB misses: 1 MiB reads from three data servers ran
// ~10 % faster into huge pages here. Zeroed on allocation: every page is touched once here,
// so no read faults one in.
class IoRegion {
 public:
  explicit IoRegion(size_t bytes);
  ~IoRegion();
  IoRegion(const IoRegion&) = delete;
  IoRegion& operator=(const IoRegion&) = delete;
  char* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  char* data_ = nullptr;
  size_t size_ = 0;
};

// Exit statuses of `loom bench`.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;

// "--name value" and "--flag" words. Not thread-safe (parse once, then read).
class Flags {
 public:
  // `with_value` and `booleans` list the accepted names (without "--"). Returns false and sets
  // `err` on an unknown name, a missing value or a stray word.
  bool Parse(const std::vector<std::string>& args, const std::set<std::string>& with_value,
             const std::set<std::string>& booleans, std::string* err);
  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  std::string Get(const std::string& name, const std::string& def = "") const;

 private:
  std::map<std::string, std::string> values_;
};

// "146600000", "128K", "1M", "2G" (powers of 1024), "114.7KB" / "2.83MB" (powers of 1000).
bool ParseSize(const std::string& s, uint64_t* out);
bool ParseUint(const std::string& s, uint64_t* out);
bool ParseDouble(const std::string& s, double* out);

// Builds one flat-or-nested JSON object on one line, keys in insertion order.
class Json {
 public:
  Json& Str(const std::string& key, const std::string& v);
  Json& Num(const std::string& key, double v, int decimals = 3);
  Json& Int(const std::string& key, int64_t v);
  Json& Bool(const std::string& key, bool v);
  Json& Null(const std::string& key);
  Json& Raw(const std::string& key, const std::string& json);  // a nested object or array
  std::string str() const { return "{" + body_ + "}"; }

 private:
  void Key(const std::string& key);
  std::string body_;
};
std::string JsonQuote(const std::string& s);

// Monotonic seconds.
double NowS();
// Sleeps until NowS() == t (absolute, CLOCK_MONOTONIC).
void SleepUntil(double t);
// The p-th percentile (0..100) of `v` (sorts it); 0 when empty.
double Percentile(std::vector<double>* v, double p);

// A file name for sample `i` of a data set in `dir` ("DIR/sample_000042").
std::string SamplePath(const std::string& dir, uint64_t i);

}  // namespace loom::bench
