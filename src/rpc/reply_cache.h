// Duplicate request cache for non-idempotent procedures (the "DRC" of NFS servers).
//
// A client that loses a connection retransmits calls it has no reply for; re-executing a
// REMOVE or an exclusive CREATE would then return a wrong error. The cache remembers the
// replies of recent non-idempotent calls and answers a retransmission from memory. A
// retransmission of a call still in progress is dropped. Bounded LRU. Thread-safe.
//
// The key is what Linux nfsd's cache compares (nfsd_cache_lookup): the client's address AND
// port (two clients behind one address may use the same xid), xid, program, version,
// procedure, the credential (flavor and body: another user's call is another call), and a
// checksum and length of the arguments.
#pragma once

#include <cstdint>
#include <list>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace loom::rpc {

class ReplyCache {
 public:
  enum class State { kNew, kInProgress, kDone };

  explicit ReplyCache(size_t capacity) : capacity_(capacity) {}

  // `peer` is "address:port".
  static std::string MakeKey(const std::string& peer, uint32_t xid, uint32_t prog,
                             uint32_t vers, uint32_t proc, uint32_t cred_flavor,
                             std::string_view cred_body, const uint8_t* args, size_t len);

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
