// Inode numbers, handed out from blocks reserved in the store (3FS's shape). Reserving a block
// is its own small transaction on N|fsid (a durable high-water mark), so the hot counter is
// never locked across a create and a crash loses at most the rest of a block: numbers are
// never reused, which keeps stale NFS file handles stale forever.
#pragma once

#include <cstdint>
#include <mutex>

#include "meta/keys.h"
#include "meta/kv.h"

namespace loom::meta {

constexpr Ino kRootIno = 1;
constexpr Ino kFirstFreeIno = 2;

// Thread-safe. One per filesystem per process; two processes may allocate from the same
// filesystem (each reserves disjoint blocks).
class InodeAllocator {
 public:
  InodeAllocator(KvStore* store, FsId fs, uint32_t block = 1024)
      : store_(store), fs_(fs), block_(block) {}

  // A number no one has been given before. May block on a commit (once per block).
  Result<Ino> Allocate();

 private:
  KvStore* const store_;
  const FsId fs_;
  const uint32_t block_;
  std::mutex mu_;
  Ino next_ = 0;   // next free in the current block; mu_
  Ino end_ = 0;    // one past the current block; mu_
};

}  // namespace loom::meta
