// Read-ahead for data loaders: given the (path, offset, length) items a consumer will ask for,
// in the order it will ask, keep reads of the next items in flight — many at once, across
// files and data servers — and hand out the buffers in that order, never holding more than a
// memory budget.
//
// Memory: the budget counts the buffers of items read or being read and not yet handed out.
// Reads start strictly in item order, so the budget always goes to the items needed first and
// a slow item cannot starve the ones before it. An item larger than the whole budget is read
// only when nothing else is held (so it still gets through), which is the one time the
// budget is exceeded; size the budget above the largest item.
//
// Opens are metadata calls (the client API has them only synchronous): a few opener threads
// run them ahead of the reads, up to `max_ahead` items past the consumer. Items of the same
// path share one open while both are in the window, and one path is never opened and closed
// at the same time: NFSv4 opens of one file by one open-owner share a single open stateid
// (RFC 8881 §9.1.2, §18.16.4), so a CLOSE racing a second OPEN would end both.
//
// Thread-safety: Next() and Close() from one consumer thread at a time; stats() from any.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "loom/client.h"

namespace loom::python {

using client::Result;
using client::Status;

struct PrefetchItem {
  std::string path;
  uint64_t offset = 0;
  uint64_t length = kToEnd;  // kToEnd: from offset to the end of the file (its size at open)
  static constexpr uint64_t kToEnd = UINT64_MAX;
};

struct PrefetchOptions {
  size_t budget_bytes = 256u << 20;
  size_t max_ahead = 256;            // items opened / read past the consumer, at most
  int open_threads = 4;
  size_t piece_bytes = 4u << 20;     // a large item is read in pieces of this size, in parallel
};

struct PrefetchStats {
  size_t items = 0, delivered = 0;
  size_t held_bytes = 0, peak_held_bytes = 0, budget_bytes = 0;
  size_t reads_in_flight = 0, peak_reads_in_flight = 0;
  size_t opens = 0;         // OPENs sent (items of one path in the window share one)
  uint64_t bytes_read = 0;  // bytes delivered
};

// A finished item: its bytes (fewer than asked only at end of file) or why it failed.
struct PrefetchBuffer {
  std::unique_ptr<char[]> data;
  size_t size = 0;
};

class Prefetcher {
 public:
  Prefetcher(std::shared_ptr<client::Client> client, std::vector<PrefetchItem> items,
             PrefetchOptions opts);
  ~Prefetcher();  // Close()
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  // The next item in order, waiting for it; nullopt after the last. An item that could not be
  // opened or read comes back as its error, and the items after it follow as usual.
  std::optional<Result<PrefetchBuffer>> Next();
  // Stops reading ahead, waits for the reads in flight, closes the files. Idempotent.
  void Close();
  PrefetchStats stats() const;

 private:
  struct Slot;
  struct OpenFile {
    std::shared_ptr<client::File> file;
    int users = 0;  // items in the window that read through this open
  };

  void OpenerLoop();
  // The open of `path` for one more item (mu_ held; released while an OPEN is sent).
  Result<std::shared_ptr<client::File>> Acquire(std::unique_lock<std::mutex>& g,
                                                const std::string& path);
  // Starts reads for opened items in order while the budget allows. Called with mu_ held;
  // returns the reads to start once it is released (a read may complete inline).
  struct PendingRead {
    std::shared_ptr<client::File> file;
    size_t index;
    uint64_t off;
    char* buf;
    size_t len;
    size_t piece_off;
  };
  std::vector<PendingRead> TakeIssuable();
  void StartReads(std::vector<PendingRead> reads);
  void OnRead(size_t index, size_t piece_off, size_t want, Status st, size_t got);
  void ReleaseFile(const std::string& path);  // mu_ held

  std::shared_ptr<client::Client> client_;
  std::vector<PrefetchItem> items_;
  PrefetchOptions opts_;

  mutable std::mutex mu_;
  std::condition_variable cv_;  // slot state changes, window moves, stop
  std::unordered_map<size_t, std::unique_ptr<Slot>> slots_;  // the window
  std::unordered_map<std::string, OpenFile> open_;
  std::deque<std::pair<std::string, std::shared_ptr<client::File>>> to_close_;
  std::unordered_map<std::string, int> busy_;  // paths with an OPEN or CLOSE in progress
  size_t next_open_ = 0, next_issue_ = 0, next_out_ = 0;
  size_t held_ = 0, inflight_ = 0;
  bool stopping_ = false, closed_ = false;
  PrefetchStats stats_;
  std::vector<std::thread> openers_;
};

}  // namespace loom::python
