// FaultFs: a fault-injecting rocksdb::FileSystem for crash tests of RocksKvStore (the role
// leveldb's test Env and RocksDB's FaultInjectionTestFS play there). Tests only.
//
// The model of a disk that loses power:
//  - A file's bytes are durable up to the length its last Sync/Fsync covered. Appends after
//    that live only in the page cache. (RangeSync is sync_file_range without waiting and
//    without metadata, so it makes nothing durable here.) Writes over bytes a file already
//    had (PositionedAppend below its end: the WAL written over zeros, wal_prewrite.h) keep
//    the old bytes until a sync covers them; a power cut puts the old bytes back.
//  - A file's name is durable once its directory was fsynced after the file was created or
//    renamed to that name. A rename the directory sync has not covered is undone by a power
//    cut (the old target comes back with its synced content); a file created and never
//    covered by a directory sync disappears.
//  - Simplifications, stated so no one relies on more: deletions are durable at once (a real
//    power cut may bring a deleted file back), directories themselves always survive, and
//    files the database did not write through this FileSystem since the last Restore count
//    as durable.
// Real fsyncs are skipped: the model, not the disk, decides what survives, and skipping them
// keeps thousands of commits fast.
//
// A power cut (PowerCut, or a trigger below) freezes the disk: from then on every write,
// sync, create, rename and delete is dropped and reports success, so the process keeps
// running as if its machine had died under it. Close the database, then Restore() applies
// the cut to the files (truncates, deletes, undoes renames and overwrites), optionally
// tearing the unsynced tail of each file (a random prefix of it reached the disk; of
// overwrites, a prefix in the order they were made, cut at a 512-byte sector, which a device
// writes whole or not at all), and thaws the disk for the next open.
//
// Thread-safe. Outlives every database opened on env().
#pragma once

#include <cerrno>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace rocksdb {
class Env;
class FileSystem;
}

namespace loom::meta {

class FaultFs {
 public:
  FaultFs();
  ~FaultFs();
  FaultFs(const FaultFs&) = delete;
  FaultFs& operator=(const FaultFs&) = delete;

  // For RocksKvStore::Options::env.
  rocksdb::Env* env() const { return env_.get(); }

  // Which files count for the triggers and injected errors (e.g. only the WAL: names ending
  // in ".log"); every file when unset. Set before arming.
  void SetTriggerFilter(std::function<bool(const std::string& path)> f);

  // Cuts the power now.
  void PowerCut();
  bool cut() const;
  // Runs fn under the same lock as the cut, only if the power is still on; returns whether
  // it ran. A test records "this commit was acknowledged" with it, so an acknowledgement it
  // records happened before any cut.
  bool IfPowerOn(const std::function<void()>& fn);

  // Triggers, counted over calls to filtered files from the moment they are armed; each
  // fires once. 1 = the next such call.
  void CutBeforeSync(uint64_t n);    // the power fails as the nth sync begins
  void CutBeforeAppend(uint64_t n);  // ... as the nth append begins
  // The nth sync / append fails with `err` (EIO, ENOSPC or EDQUOT) and changes nothing.
  void FailSync(uint64_t n, int err = EIO);
  void FailAppend(uint64_t n, int err = EIO);
  // The disk is full (err: ENOSPC or EDQUOT) until Disarm or Restore: a write that would make
  // a file longer fails with err and changes nothing; an overwrite of bytes the file already
  // has still succeeds (a full file system does not fail those).
  void DiskFull(int err = ENOSPC);
  void Disarm();

  struct RestoreOptions {
    // Each file keeps a random prefix of its unsynced bytes instead of none (a torn write).
    bool tear = false;
    uint64_t seed = 0;
  };
  // REQUIRES: every database on env() is closed. Applies the power cut (cutting first if no
  // cut happened) to the real files, then forgets all state: what is on disk now is durable.
  Status Restore(const RestoreOptions& o);
  Status Restore() { return Restore(RestoreOptions{}); }

  struct Stats {
    uint64_t syncs = 0, appends = 0;  // of filtered files, while the power was on
    uint64_t bytes_dropped = 0;       // by the last Restore (cut off or put back)
    uint64_t files_deleted = 0;       // by the last Restore (names never made durable)
    uint64_t renames_undone = 0;      // by the last Restore
  };
  Stats stats() const;

  class Impl;  // the FileSystem and its files (fault_env.cc)

 private:
  std::shared_ptr<Impl> impl_;
  std::unique_ptr<rocksdb::Env> env_;
};

}  // namespace loom::meta
