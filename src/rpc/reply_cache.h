// Duplicate request cache for non-idempotent procedures (the "DRC" of NFS servers).
//
// A client that loses a connection retransmits calls it has no reply for; re-executing a
// REMOVE or an exclusive CREATE would then return a wrong error. The cache remembers the
// replies of recent non-idempotent calls, keyed by client address, xid, program, version,
// procedure and a hash of the arguments, and answers a retransmission from memory. A
// retransmission of a call still in progress is dropped. Bounded LRU. Thread-safe.
#pragma once

#include <cstdint>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>

namespace loom::rpc {

class ReplyCache {
 public:
  enum class State { kNew, kInProgress, kDone };

  explicit ReplyCache(size_t capacity) : capacity_(capacity) {}

  static std::string MakeKey(const std::string& peer, uint32_t xid, uint32_t prog,
                             uint32_t vers, uint32_t proc, const uint8_t* args, size_t len);

  // kNew: the caller must later call Finish or Abandon. kDone: *reply holds the cached reply.
  State Begin(const std::string& key, std::string* reply);
  void Finish(const std::string& key, std::string reply);
  void Abandon(const std::string& key);

  uint64_t hits() const { return hits_; }
  size_t size() const;

 private:
  struct Entry {
    bool done = false;
    std::string reply;
    std::list<std::string>::iterator lru;
  };
  void EvictLocked();

  const size_t capacity_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> map_;
  std::list<std::string> lru_;  // front = most recent
  uint64_t hits_ = 0;
};

}  // namespace loom::rpc
