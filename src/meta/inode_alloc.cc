#include "meta/inode_alloc.h"

#include "meta/records.h"

namespace loom::meta {

Result<Ino> InodeAllocator::Allocate() {
  std::lock_guard<std::mutex> g(mu_);
  if (next_ == end_) {
    Ino start = 0;
    Status s = RunTxn(*store_, [&](Txn& t) -> Status {
      auto v = t.GetForUpdate(keys::InoAlloc(fs_));
      if (!v.ok()) return v.status();
      if (!*v) return Status::NotFound("no inode allocator: filesystem not made (Mkfs)");
      LOOM_RETURN_IF_ERROR(DecodeU64(**v, &start));
      return t.Put(keys::InoAlloc(fs_), EncodeU64(start + block_));
    });
    if (!s.ok()) return s;
    next_ = start;
    end_ = start + block_;
  }
  return next_++;
}

}  // namespace loom::meta
