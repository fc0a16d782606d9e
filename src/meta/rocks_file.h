// Helpers for wrapping RocksDB's files (meta/wal_prewrite.cc, meta/fault_env.cc).
#pragma once

#include <rocksdb/file_system.h>

#include <cstdint>
#include <memory>
#include <utility>

namespace loom::meta {

// A writable-file wrapper whose Append and PositionedAppend with DataVerificationInfo go to
// the plain forms, so that a wrapper overrides only those (RocksDB calls either).
class PlainAppendFile : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  explicit PlainAppendFile(std::unique_ptr<rocksdb::FSWritableFile> f)
      : FSWritableFileOwnerWrapper(std::move(f)) {}
  using FSWritableFileOwnerWrapper::Append;
  using FSWritableFileOwnerWrapper::PositionedAppend;
  rocksdb::IOStatus Append(const rocksdb::Slice& d, const rocksdb::IOOptions& o,
                           const rocksdb::DataVerificationInfo&,
                           rocksdb::IODebugContext* g) override {
    return Append(d, o, g);
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& d, uint64_t off,
                                     const rocksdb::IOOptions& o,
                                     const rocksdb::DataVerificationInfo&,
                                     rocksdb::IODebugContext* g) override {
    return PositionedAppend(d, off, o, g);
  }
};

}  // namespace loom::meta
