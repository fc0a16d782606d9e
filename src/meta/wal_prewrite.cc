#include "meta/wal_prewrite.h"

#include <rocksdb/file_system.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <utility>

#include "meta/rocks_file.h"

namespace loom::meta {
namespace {

using rocksdb::IODebugContext;
using rocksdb::IOOptions;
using rocksdb::IOStatus;

bool IsWal(const std::string& path) {
  return path.size() > 4 && path.compare(path.size() - 4, 4, ".log") == 0;
}

// Reads *out's size in bytes of fd from `off`; *out ends at what the file had.
Status PreadAll(int fd, uint64_t off, const std::string& path, std::string* out) {
  size_t got = 0;
  while (got < out->size()) {
    const ssize_t n = ::pread(fd, out->data() + got, out->size() - got, static_cast<off_t>(off + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno(errno, "read " + path);
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  out->resize(got);
  return Status::Ok();
}

// One WAL file. RocksDB appends from its writing thread and syncs from another (loom-mds's
// syncer; PosixWritableFile says IsSyncThreadSafe), so the offsets sit behind a mutex; the
// sync itself runs outside it.
//
// Direct mode (WalFs's `direct`; the file below opened with O_DIRECT): an append that lands
// on the zeros written ahead only copies the record into memory, and Sync writes every
// record since the last sync with one direct write of the 4 KiB blocks they touch, then
// fdatasync (a device cache flush; no page cache to write back). Measured on the 2-vCPU
// development VM (C, 450-byte records over written blocks, p50): a buffered write per record
// + fdatasync 114-117 µs and 51 µs of CPU per sync, the direct write + flush 82-97 µs and
// 32-37 µs; seven records a sync 139-166 µs and 81-90 µs of CPU against 85-123 and 34-49.
// The records stay in memory until the sync that covers them, which no reply precedes (kv.h):
// a killed process loses only commits nothing was acknowledged for. An overwrite of blocks
// already written needs no allocation, so it cannot fail for space (ENOSPC, EDQUOT); an I/O
// error there fails the sync, and the store stops (fail-stop, as for a failed fdatasync). An
// append past the zeros (they could not be extended: a full disk) is written at once, so a
// failure for space fails that commit alone, as in buffered mode.
class PrewrittenFile final : public PlainAppendFile {
 public:
  PrewrittenFile(std::unique_ptr<rocksdb::FSWritableFile> f, uint64_t chunk, bool direct,
                 std::string path)
      : PlainAppendFile(std::move(f)), chunk_(chunk), direct_(direct), path_(std::move(path)) {}

  ~PrewrittenFile() override {
    if (!closed_) Close(IOOptions(), nullptr).PermitUncheckedError();
  }

  // To RocksDB this is a buffered file, whatever the one below is.
  bool use_direct_io() const override { return false; }

  IOStatus Append(const rocksdb::Slice& d, const IOOptions& o, IODebugContext* g) override {
    if (direct_) return AppendDirect(d, o, g);
    std::lock_guard<std::mutex> l(mu_);
    IOStatus s = target()->PositionedAppend(d, size_, o, g);
    if (s.ok()) {
      size_ += d.size();
      written_ = std::max(written_, size_);
    }
    return s;
  }
  // RocksDB writes a WAL with Append; anything positioned is passed on as asked (buffered
  // mode) or taken as an append at that offset (direct mode: the log has no holes).
  IOStatus PositionedAppend(const rocksdb::Slice& d, uint64_t off, const IOOptions& o,
                            IODebugContext* g) override {
    if (direct_) {
      {
        std::lock_guard<std::mutex> l(mu_);
        if (off != size_) return IOStatus::NotSupported("WAL write not at the log's end");
      }
      return AppendDirect(d, o, g);
    }
    std::lock_guard<std::mutex> l(mu_);
    IOStatus s = target()->PositionedAppend(d, off, o, g);
    if (s.ok()) {
      size_ = std::max(size_, off + d.size());
      written_ = std::max(written_, size_);
    }
    return s;
  }
  IOStatus Truncate(uint64_t size, const IOOptions& o, IODebugContext* g) override {
    std::lock_guard<std::mutex> io(io_mu_);
    std::lock_guard<std::mutex> l(mu_);
    if (direct_) {
      if (IOStatus s = WritePendingLocked(0, o, g); !s.ok()) return s;
      // The block the log now ends in is rewritten by the next sync: its bytes from disk.
      std::string block(size % kBlock, '\0');
      if (!block.empty() && !ReadAt(size - block.size(), &block)) {
        return IOStatus::IOError("read back " + path_);
      }
      IOStatus s = target()->Truncate(size, o, g);
      if (!s.ok()) return s;
      size_ = written_ = flushed_ = size;
      tail_off_ = size - block.size();
      tail_ = std::move(block);
      return s;
    }
    IOStatus s = target()->Truncate(size, o, g);
    if (s.ok()) size_ = written_ = size;
    return s;
  }
  uint64_t GetFileSize(const IOOptions&, IODebugContext*) override {
    std::lock_guard<std::mutex> l(mu_);
    return size_;
  }
  IOStatus Sync(const IOOptions& o, IODebugContext* g) override {
    IOStatus s = BeforeSync(o, g);
    return s.ok() ? target()->Sync(o, g) : s;
  }
  IOStatus Fsync(const IOOptions& o, IODebugContext* g) override {
    IOStatus s = BeforeSync(o, g);
    return s.ok() ? target()->Fsync(o, g) : s;
  }
  // A clean close leaves a plain log: the records still in memory are written, and the zeros
  // past the log's end cut off.
  IOStatus Close(const IOOptions& o, IODebugContext* g) override {
    std::lock_guard<std::mutex> io(io_mu_);
    std::lock_guard<std::mutex> l(mu_);
    if (closed_) return IOStatus::OK();
    closed_ = true;
    IOStatus s = direct_ ? WritePendingLocked(0, o, g) : IOStatus::OK();
    if (s.ok() && written_ > size_) s = target()->Truncate(size_, o, g);
    IOStatus c = target()->Close(o, g);
    return s.ok() ? c : s;
  }

 private:
  static constexpr uint64_t kBlock = 4096;  // direct I/O's unit (any device's logical block)
  static uint64_t Down(uint64_t x) { return x / kBlock * kBlock; }
  static uint64_t Up(uint64_t x) { return (x + kBlock - 1) / kBlock * kBlock; }

  // What a sync covers reaches the file: the records in memory (direct mode), or the zeros
  // ahead when due (buffered mode, where only speed depends on them).
  IOStatus BeforeSync(const IOOptions& o, IODebugContext* g) {
    if (direct_) return FlushDirect(o, g);
    Extend(o, g);
    return IOStatus::OK();
  }

  // Where the zeros written ahead should end now: a whole chunk past the log, once the log is
  // within half a chunk of them; else where they end.
  uint64_t ZerosToLocked() const {
    if (written_ >= size_ + chunk_ / 2) return written_;
    return (size_ + chunk_ + chunk_ - 1) / chunk_ * chunk_;
  }

  // Buffered mode: writes zeros past the log's end when it is within half a chunk of them, so
  // that the appends of the next half chunk or more overwrite blocks this sync makes durable.
  // Only speed depends on it: when the write fails (a full disk), the appends past the zeros
  // are plain appends, and the next sync tries again.
  void Extend(const IOOptions& o, IODebugContext* g) {
    std::lock_guard<std::mutex> l(mu_);
    if (closed_) return;
    const uint64_t to = ZerosToLocked();
    if (to <= written_) return;
    const uint64_t from = std::max(written_, size_);
    if (zeros_.size() < to - from) zeros_.assign(to - from, '\0');
    IOStatus s = target()->PositionedAppend(rocksdb::Slice(zeros_.data(), to - from), from, o, g);
    if (s.ok()) written_ = to;
  }

  // Direct mode. The record lands on the zeros: memory only. Past them: written at once.
  IOStatus AppendDirect(const rocksdb::Slice& d, const IOOptions& o, IODebugContext* g) {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (closed_) return IOStatus::IOError("append to a closed WAL file");
      if (size_ + d.size() <= written_) {
        tail_.append(d.data(), d.size());
        size_ += d.size();
        return IOStatus::OK();
      }
    }
    std::lock_guard<std::mutex> io(io_mu_);
    std::lock_guard<std::mutex> l(mu_);
    if (size_ + d.size() <= written_) {  // a sync extended the zeros meanwhile
      tail_.append(d.data(), d.size());
      size_ += d.size();
      return IOStatus::OK();
    }
    // Past the zeros (a new file, or zeros that could not be extended): the record is written
    // now, with zeros ahead again if the disk has room for them, so that the next records
    // land on zeros; a failure (no space) fails this commit alone.
    tail_.append(d.data(), d.size());
    size_ += d.size();
    IOStatus s = WritePendingLocked(ZerosToLocked(), o, g);
    if (!s.ok()) s = WritePendingLocked(0, o, g);
    if (!s.ok()) {  // nothing of this record counts: the next write rewrites its blocks
      size_ -= d.size();
      tail_.resize(tail_.size() - d.size());
    }
    return s;
  }

  // Direct mode: the records since the last sync, and zeros ahead when due, to the file;
  // then (the caller) the sync.
  IOStatus FlushDirect(const IOOptions& o, IODebugContext* g) {
    std::lock_guard<std::mutex> io(io_mu_);
    uint64_t from, end, to;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (closed_) return IOStatus::OK();
      end = size_;
      const uint64_t zeros = ZerosToLocked();
      to = zeros > written_ ? zeros : Up(end);  // zeros ahead only when due
      if (end == flushed_ && to <= written_) return IOStatus::OK();
      from = tail_off_;
      FillLocked(from, end, to);
    }
    // Appends go on meanwhile (into tail_, past `end`); only io_mu_ is held for the write.
    IOStatus s = target()->PositionedAppend(rocksdb::Slice(buf_.data, to - from), from, o, g);
    if (!s.ok() && to > Up(end)) {
      // The zeros ahead did not fit (a full disk): the records alone, over blocks the file
      // has. Only speed depends on the zeros; the next sync tries again.
      s = target()->PositionedAppend(rocksdb::Slice(buf_.data, Up(end) - from), from, o, g);
      to = Up(end);
    }
    std::lock_guard<std::mutex> l(mu_);
    if (!s.ok()) return s;
    DoneLocked(end, to);
    return s;
  }

  // Direct mode, both locks held: writes what is in memory (and zeros to `min_to`).
  IOStatus WritePendingLocked(uint64_t min_to, const IOOptions& o, IODebugContext* g) {
    const uint64_t end = size_;
    const uint64_t to = std::max(min_to, Up(end));
    if (end == flushed_ && to <= std::max(written_, Up(flushed_))) return IOStatus::OK();
    const uint64_t from = tail_off_;
    FillLocked(from, end, to);
    IOStatus s = target()->PositionedAppend(rocksdb::Slice(buf_.data, to - from), from, o, g);
    if (s.ok()) DoneLocked(end, to);
    return s;
  }

  // buf_ = the log's bytes [from, end) from tail_, zeros to `to` (all block-aligned but end).
  void FillLocked(uint64_t from, uint64_t end, uint64_t to) {
    buf_.Reserve(to - from);
    std::memcpy(buf_.data, tail_.data(), end - from);
    std::memset(buf_.data + (end - from), 0, to - end);
  }

  // The log is in the file up to `end`, zeros (or padding) to `to`.
  void DoneLocked(uint64_t end, uint64_t to) {
    flushed_ = std::max(flushed_, end);
    written_ = std::max(written_, to);
    const uint64_t keep = Down(flushed_);
    tail_.erase(0, keep - tail_off_);
    tail_off_ = keep;
  }

  bool ReadAt(uint64_t off, std::string* out) const {
    const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    const size_t want = out->size();
    const bool ok = PreadAll(fd, off, path_, out).ok() && out->size() == want;
    ::close(fd);
    return ok;
  }

  // A block-aligned buffer for direct writes, grown as needed (once to a chunk and a block).
  struct AlignedBuf {
    char* data = nullptr;
    size_t cap = 0;
    ~AlignedBuf() { std::free(data); }
    void Reserve(size_t n) {
      if (n <= cap) return;
      std::free(data);
      cap = (n + kBlock - 1) / kBlock * kBlock;
      data = static_cast<char*>(std::aligned_alloc(kBlock, cap));
      if (data == nullptr) std::abort();  // out of memory
    }
  };

  const uint64_t chunk_;
  const bool direct_;
  const std::string path_;
  std::mutex io_mu_;  // direct mode: one write to the file at a time; taken before mu_
  std::mutex mu_;
  uint64_t size_ = 0;     // the log's end: what RocksDB appended
  uint64_t written_ = 0;  // the file's end: the log, then zeros
  bool closed_ = false;
  std::string zeros_;     // buffered mode
  // Direct mode: the log is in the file up to flushed_; tail_ holds its bytes from tail_off_
  // (flushed_'s block, rewritten whole by the next write) to size_.
  uint64_t flushed_ = 0;
  uint64_t tail_off_ = 0;
  std::string tail_;
  AlignedBuf buf_;  // guarded by io_mu_
};

}  // namespace

WalFs::WalFs(const std::shared_ptr<rocksdb::FileSystem>& base, uint64_t chunk, bool direct)
    : FileSystemWrapper(base),
      chunk_(chunk == 0 ? 0 : (std::max<uint64_t>(chunk, 4096) + 4095) / 4096 * 4096),
      direct_(direct && chunk_ > 0) {}

IOStatus WalFs::NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                std::unique_ptr<rocksdb::FSWritableFile>* r, IODebugContext* d) {
  if (chunk_ == 0 || !IsWal(f) || o.use_direct_writes) return target()->NewWritableFile(f, o, r, d);
  if (direct_) {
    rocksdb::FileOptions od = o;
    od.use_direct_writes = true;
    IOStatus s = target()->NewWritableFile(f, od, r, d);
    if (s.ok()) {
      direct_files_.fetch_add(1, std::memory_order_relaxed);
      *r = std::make_unique<PrewrittenFile>(std::move(*r), chunk_, /*direct=*/true, f);
      return s;
    }
    // A file system without O_DIRECT (EINVAL): buffered writes, as without the option.
  }
  IOStatus s = target()->NewWritableFile(f, o, r, d);
  if (s.ok()) *r = std::make_unique<PrewrittenFile>(std::move(*r), chunk_, /*direct=*/false, f);
  return s;
}

IOStatus WalFs::NewSequentialFile(const std::string& f, const rocksdb::FileOptions& o,
                                  std::unique_ptr<rocksdb::FSSequentialFile>* r,
                                  IODebugContext* d) {
  // RocksDB reads a WAL file sequentially to replay it while it opens, holding the
  // database's lock, with no writer on the file.
  if (IsWal(f) && recovering_.load()) {
    Result<WalRepair> rr = RepairWalFile(f);
    if (!rr.ok()) return IOStatus::IOError(rr.status().ToString());
    std::lock_guard<std::mutex> l(mu_);
    repaired_ += *rr;
  }
  return target()->NewSequentialFile(f, o, r, d);
}

WalRepair WalFs::repaired() const {
  std::lock_guard<std::mutex> l(mu_);
  return repaired_;
}

// --- Tail repair ---
//
// RocksDB's log format (its db/log_format.h; LevelDB's doc/log_format.md): the file is a
// sequence of 32 KiB blocks; a record never crosses a block and starts with a header of
// checksum (4 bytes, little-endian, a masked CRC-32C of the type byte, the log number for the
// recyclable types, and the payload), length (2 bytes) and type (1 byte); a block's last
// bytes, too few for a header, are zeros. The recyclable types (5-8) add a 4-byte log
// number to the header.
namespace {

constexpr uint64_t kLogBlock = 32768;
constexpr uint64_t kSector = 512;  // the unit a device writes whole (or not at all)

uint32_t Crc32c(uint32_t crc, const unsigned char* p, size_t n) {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

uint32_t Unmask(uint32_t masked) {
  const uint32_t rot = masked - 0xa282ead8u;
  return (rot >> 17) | (rot << 15);
}

// Where the whole, intact records of `d` end, and the extent of what stops them there: a
// zero header (the zeros written ahead; `end == stop_end - 7` with nothing in it) or a
// damaged record. `clean` when the records run to the end of the data.
struct Scan {
  uint64_t end = 0;       // first byte after the last intact record
  uint64_t stop_end = 0;  // end of the header/record found at `end` (capped at its block)
  bool clean = false;
};

Scan ScanLog(const std::string& d) {
  const auto* p = reinterpret_cast<const unsigned char*>(d.data());
  const uint64_t size = d.size();
  uint64_t pos = 0;
  while (pos < size) {
    const uint64_t block_end = (pos / kLogBlock + 1) * kLogBlock;
    if (block_end - pos < 7) {  // the block's zero trailer
      pos = block_end;
      continue;
    }
    if (size - pos < 7) return Scan{pos, pos + 7, false};  // a header cut short
    const unsigned type = p[pos + 6];
    const uint64_t len = p[pos + 4] | (uint64_t{p[pos + 5]} << 8);
    const uint64_t hs = (type >= 5 && type <= 8) ? 11 : 7;
    const uint64_t rec_end = std::min(pos + hs + len, block_end);
    if ((type == 0 && len == 0) || pos + hs + len > block_end || pos + hs + len > size)
      return Scan{pos, std::max(rec_end, pos + 7), false};
    const uint32_t want = Unmask(static_cast<uint32_t>(p[pos]) | (uint32_t{p[pos + 1]} << 8) |
                                 (uint32_t{p[pos + 2]} << 16) | (uint32_t{p[pos + 3]} << 24));
    uint32_t crc = Crc32c(0, p + pos + 6, 1);                    // the type
    crc = Crc32c(crc, p + pos + 7, static_cast<size_t>(hs + len - 7));  // [log number,] payload
    if (crc != want) return Scan{pos, rec_end, false};
    pos += hs + len;
  }
  return Scan{size, size, true};
}

Status ReadAll(int fd, const std::string& path, std::string* out) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return Status::FromErrno(errno, "stat " + path);
  out->resize(static_cast<size_t>(st.st_size));
  return PreadAll(fd, 0, path, out);
}

}  // namespace

Result<WalRepair> RepairWalFile(const std::string& path) {
  WalRepair rep;
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  // A store on a read-only file system (looked at, not served): nothing can be cut, and
  // RocksDB judges the file as it is.
  if (fd < 0 && (errno == EROFS || errno == EACCES)) return rep;
  if (fd < 0) return Status::FromErrno(errno, "open " + path);
  std::string d;
  Status st = ReadAll(fd, path, &d);
  rep.files = 1;
  uint64_t cut = d.size();
  bool torn = false;
  if (st.ok()) {
    const Scan sc = ScanLog(d);
    uint64_t last = d.size();  // one past the last non-zero byte
    while (last > sc.end && d[last - 1] == '\0') --last;
    if (!sc.clean && last <= sc.end) {
      cut = sc.end;  // the records, then only zeros
    } else if (!sc.clean) {
      // Non-zero bytes after the whole records: a torn write only if they end inside the
      // record found there, at a sector boundary, with zeros to the end of the file.
      const uint64_t zeros_from = (last + kSector - 1) / kSector * kSector;
      if (zeros_from < sc.stop_end) {
        cut = sc.end;
        torn = true;
      }
    }
  }
  if (st.ok() && cut < d.size()) {
    if (::ftruncate(fd, static_cast<off_t>(cut)) != 0 || ::fsync(fd) != 0) {
      st = Status::FromErrno(errno, "truncate " + path);
    } else {
      rep.truncated = 1;
      rep.bytes_cut = d.size() - cut;
      rep.torn = torn ? 1 : 0;
    }
  }
  ::close(fd);
  if (!st.ok()) return st;
  return rep;
}

}  // namespace loom::meta
