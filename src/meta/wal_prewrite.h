// Write-ahead log files whose appends overwrite blocks already on disk.
//
// A commit is durable when the WAL's fdatasync returns. When that sync follows an append that
// grew the file, ext4 must also commit the inode's new size and block map to its journal: two
// ordered writes and device cache flushes instead of one. Measured on the 2-vCPU VM Loom is
// developed on (virtio disk with a write-back cache, no FUA), a 4 KiB append + fdatasync took
// 150-163 µs (p50), the same write over a block written earlier 78-90 µs: the sync's
// part of a metadata change at one change in flight (bench/README.md).
//
// So each WAL file is written ahead with zeros, a chunk at a time, and RocksDB's appends land
// on those blocks (PositionedAppend at the log's own end). The file on disk is longer than
// the log: its tail is zeros, which RocksDB's log reader skips (a zero header is a padding
// record, RocksDB's log format), and a clean close truncates it away. Extending the zeros
// happens in Sync, when the log comes within half a chunk of them (the thread that syncs
// already waits for the disk; on loom-mds that is the syncer, not the event loop), and that
// sync then pays the size change once per chunk.
//
// What a power cut leaves changes: without the zeros, the last, unsynced record was cut
// short at the end of the file, which RocksDB tolerates. With them, it can end in zeros
// before the file does, and RocksDB's reader calls that a corrupt record and refuses the log
// (kTolerateCorruptedTailRecords tolerates damage only at the end of the file). So while
// the database opens, each WAL file RocksDB reads for recovery is first put back into the
// shape RocksDB tolerates (RepairWalFile); any other damage is left for RocksDB to refuse.
#pragma once

#include <rocksdb/file_system.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "common/status.h"

namespace loom::meta {

struct WalRepair {
  int files = 0;           // WAL files looked at
  int truncated = 0;       // files cut back (zeros after the records, or a torn record)
  uint64_t bytes_cut = 0;  // bytes removed in all
  int torn = 0;            // files whose tail held a record torn by a power cut

  WalRepair& operator+=(const WalRepair& o) {
    files += o.files;
    truncated += o.truncated;
    bytes_cut += o.bytes_cut;
    torn += o.torn;
    return *this;
  }
};

// A FileSystem whose WAL files (names ending in ".log") are written over zeros written ahead
// in chunks of `chunk` bytes (0: plain appends), and whose WAL files are repaired when
// RocksDB opens them to recover (until EndRecovery; RocksDB holds the database's lock then).
// With `direct` (and a chunk), a WAL's records reach the file only when it is synced, with
// one direct (O_DIRECT) write (wal_prewrite.cc, PrewrittenFile); where `base` cannot open a
// file for direct I/O, they are written as without it. Only for a database whose commits are
// all followed by a sync (RocksKvStore with Options::sync): until then they are in memory.
// Every other file goes to `base` untouched.
class WalFs final : public rocksdb::FileSystemWrapper {
 public:
  WalFs(const std::shared_ptr<rocksdb::FileSystem>& base, uint64_t chunk, bool direct = false);
  const char* Name() const override { return "LoomWalFs"; }

  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r,
                                    rocksdb::IODebugContext* d) override;
  rocksdb::IOStatus NewSequentialFile(const std::string& f, const rocksdb::FileOptions& o,
                                      std::unique_ptr<rocksdb::FSSequentialFile>* r,
                                      rocksdb::IODebugContext* d) override;

  // The database is open: WAL files read from now on are live ones, never repaired.
  void EndRecovery() { recovering_.store(false); }
  WalRepair repaired() const;
  // WAL files opened for direct writes so far.
  int direct_files() const { return direct_files_.load(std::memory_order_relaxed); }

 private:
  const uint64_t chunk_;
  const bool direct_;
  std::atomic<int> direct_files_{0};
  std::atomic<bool> recovering_{true};
  mutable std::mutex mu_;
  WalRepair repaired_;  // guarded by mu_
};

// One WAL file, which no one may have open for writing: finds where its whole records end.
// When only zeros follow, or a record that a power cut tore (whole up to a 512-byte sector,
// zeros from there: a device writes a sector whole or not at all, and what it did not write
// is still the zeros written ahead) and then only zeros, the file is cut there -- no record
// a commit was acknowledged for is cut, as those were synced whole. A file that ends cleanly,
// or with damage that is anything else (a record damaged inside a sector, or followed by
// more data), is left as it is, for RocksDB to refuse.
Result<WalRepair> RepairWalFile(const std::string& path);

}  // namespace loom::meta
