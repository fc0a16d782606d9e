#include "meta/fault_env.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <utility>

#include "meta/rocks_file.h"

namespace loom::meta {
namespace {

using rocksdb::IODebugContext;
using rocksdb::IOOptions;
using rocksdb::IOStatus;

std::string Normalize(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

std::string Parent(const std::string& p) {
  size_t slash = p.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : p.substr(0, slash);
}

IOStatus Injected(int err, const char* what) {
  std::string msg = std::string("injected ") + what + " failure: " + std::strerror(err);
  // RocksDB has a code for a full disk only; a quota is another I/O error to it.
  return err == ENOSPC ? IOStatus::NoSpace(msg) : IOStatus::IOError(msg);
}

// The synced prefix of a file: what a power cut leaves of it. nullopt if it cannot be read.
std::optional<std::string> ReadPrefix(const std::string& path, std::optional<uint64_t> len) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string out;
  char buf[1 << 14];
  for (;;) {
    size_t want = sizeof buf;
    if (len) want = std::min<uint64_t>(want, *len - out.size());
    if (want == 0) break;
    ssize_t n = ::read(fd, buf, want);
    if (n < 0) {
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

uint64_t RealSize(const std::string& path) {
  struct stat sb;
  return ::stat(path.c_str(), &sb) == 0 ? static_cast<uint64_t>(sb.st_size) : 0;
}

bool ReadAt(const std::string& path, uint64_t off, std::string* out) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const ssize_t n = ::pread(fd, out->data(), out->size(), static_cast<off_t>(off));
  ::close(fd);
  if (n < 0) return false;
  out->resize(static_cast<size_t>(n));
  return true;
}

bool WriteAt(const std::string& path, uint64_t off, const std::string& data) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT;  // deleted since: nothing to put back
  const ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(off));
  ::close(fd);
  return n == static_cast<ssize_t>(data.size());
}

bool WriteWhole(const std::string& path, const std::string& data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  bool ok = ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
  return ::close(fd) == 0 && ok;
}

// Handed out for files opened after the power failed: everything is dropped.
class DroppingFile final : public rocksdb::FSWritableFile {
 public:
  IOStatus Append(const rocksdb::Slice& d, const IOOptions&, IODebugContext*) override {
    size_ += d.size();
    return IOStatus::OK();
  }
  IOStatus Close(const IOOptions&, IODebugContext*) override { return IOStatus::OK(); }
  IOStatus Flush(const IOOptions&, IODebugContext*) override { return IOStatus::OK(); }
  IOStatus Sync(const IOOptions&, IODebugContext*) override { return IOStatus::OK(); }
  uint64_t GetFileSize(const IOOptions&, IODebugContext*) override { return size_; }

 private:
  uint64_t size_ = 0;
};

}  // namespace

class FaultFs::Impl final : public rocksdb::FileSystemWrapper {
 public:
  // A write over bytes the file already had, not yet synced: what they were before.
  struct Overwrite {
    uint64_t off = 0;
    std::string old;
  };
  struct FileState {
    uint64_t size = 0;    // bytes written (in the page cache)
    uint64_t synced = 0;  // bytes a sync covered
    bool name_durable = false;
    std::vector<Overwrite> overwrites;  // oldest first; cleared by a sync
  };
  struct PendingRename {
    std::string src, dst;
    bool src_name_durable = false;
    std::optional<std::string> old_dst;  // synced content of a durable file dst replaced
  };
  struct Trigger {
    uint64_t left = 0;  // 0: disarmed
    int err = 0;
    // Counts one call; true when this is the one it waits for.
    bool Fire() { return left != 0 && --left == 0; }
  };

  Impl() : FileSystemWrapper(rocksdb::FileSystem::Default()) {}
  const char* Name() const override { return "LoomFaultFs"; }

  // --- Files ---

  class File final : public PlainAppendFile {
   public:
    File(std::unique_ptr<rocksdb::FSWritableFile> f, Impl* fs, std::string path)
        : PlainAppendFile(std::move(f)), fs_(fs), path_(std::move(path)) {}

    IOStatus Append(const rocksdb::Slice& d, const IOOptions& o, IODebugContext* g) override {
      std::lock_guard<std::mutex> l(fs_->mu_);
      if (IOStatus s; fs_->BeforeAppendLocked(path_, &s)) return s;
      if (fs_->disk_full_ != 0 && d.size() > 0) return Injected(fs_->disk_full_, "append");
      IOStatus s = target()->Append(d, o, g);
      if (s.ok()) fs_->files_[path_].size += d.size();
      return s;
    }
    IOStatus PositionedAppend(const rocksdb::Slice& d, uint64_t off, const IOOptions& o,
                              IODebugContext* g) override {
      std::lock_guard<std::mutex> l(fs_->mu_);
      if (IOStatus s; fs_->BeforeAppendLocked(path_, &s)) return s;
      FileState& st = fs_->files_[path_];
      if (fs_->disk_full_ != 0 && off + d.size() > std::max(st.size, RealSize(path_))) {
        return Injected(fs_->disk_full_, "append");
      }
      // Bytes overwritten below the file's end keep their old content until a sync: saved
      // here so that a power cut can put it back (RestoreLocked).
      if (off < st.size) {
        Overwrite ow{off, std::string(std::min<uint64_t>(d.size(), st.size - off), '\0')};
        if (!ReadAt(path_, off, &ow.old)) return IOStatus::IOError("fault fs: read " + path_);
        st.overwrites.push_back(std::move(ow));
      }
      IOStatus s = target()->PositionedAppend(d, off, o, g);
      if (s.ok()) {
        st.size = std::max(st.size, off + d.size());
      } else if (off < st.size) {
        st.overwrites.pop_back();
      }
      return s;
    }
    IOStatus Truncate(uint64_t size, const IOOptions& o, IODebugContext* g) override {
      std::lock_guard<std::mutex> l(fs_->mu_);
      if (fs_->cut_) return IOStatus::OK();
      IOStatus s = target()->Truncate(size, o, g);
      if (s.ok()) {
        FileState& st = fs_->files_[path_];
        st.size = size;
        st.synced = std::min(st.synced, size);
        for (Overwrite& ow : st.overwrites) {
          ow.old.resize(ow.off >= size ? 0 : std::min<uint64_t>(ow.old.size(), size - ow.off));
        }
      }
      return s;
    }
    IOStatus Sync(const IOOptions&, IODebugContext*) override { return DoSync(); }
    IOStatus Fsync(const IOOptions&, IODebugContext*) override { return DoSync(); }
    // sync_file_range starts writeback and waits for nothing: not a durability point.
    IOStatus RangeSync(uint64_t, uint64_t, const IOOptions&, IODebugContext*) override {
      return IOStatus::OK();
    }
    bool IsSyncThreadSafe() const override { return true; }

   private:
    IOStatus DoSync() {
      std::lock_guard<std::mutex> l(fs_->mu_);
      if (fs_->cut_) return IOStatus::OK();
      if (fs_->Filtered(path_)) {
        ++fs_->stats_.syncs;
        if (fs_->fail_sync_.Fire()) return Injected(fs_->fail_sync_.err, "sync");
        if (fs_->cut_sync_.Fire()) {
          fs_->CutLocked();
          return IOStatus::OK();
        }
      }
      // No real fsync: the model decides what survives (fault_env.h).
      FileState& st = fs_->files_[path_];
      st.synced = st.size;
      st.overwrites.clear();
      return IOStatus::OK();
    }

    Impl* const fs_;
    const std::string path_;
  };

  class Dir final : public rocksdb::FSDirectoryWrapper {
   public:
    Dir(std::unique_ptr<rocksdb::FSDirectory> d, Impl* fs, std::string path)
        : FSDirectoryWrapper(std::move(d)), fs_(fs), path_(std::move(path)) {}
    IOStatus Fsync(const IOOptions&, IODebugContext*) override { return DoSync(); }
    IOStatus FsyncWithDirOptions(const IOOptions&, IODebugContext*,
                                 const rocksdb::DirFsyncOptions&) override {
      return DoSync();
    }

   private:
    IOStatus DoSync() {
      std::lock_guard<std::mutex> l(fs_->mu_);
      if (fs_->cut_) return IOStatus::OK();
      for (auto& [p, st] : fs_->files_) {
        if (Parent(p) == path_) st.name_durable = true;
      }
      auto& r = fs_->renames_;
      r.erase(std::remove_if(r.begin(), r.end(),
                             [&](const PendingRename& x) { return Parent(x.dst) == path_; }),
              r.end());
      return IOStatus::OK();
    }
    Impl* const fs_;
    const std::string path_;
  };

  IOStatus NewWritableFile(const std::string& fname, const rocksdb::FileOptions& o,
                           std::unique_ptr<rocksdb::FSWritableFile>* r,
                           IODebugContext* d) override {
    return OpenWritable(fname, /*reopen=*/false, o, r, d);
  }

  IOStatus ReopenWritableFile(const std::string& fname, const rocksdb::FileOptions& o,
                              std::unique_ptr<rocksdb::FSWritableFile>* r,
                              IODebugContext* d) override {
    return OpenWritable(fname, /*reopen=*/true, o, r, d);
  }

  // NewWritableFile (reopen false) and ReopenWritableFile (reopen true): the target's open,
  // tracked. After a cut the open succeeds and writes go nowhere.
  IOStatus OpenWritable(const std::string& fname, bool reopen, const rocksdb::FileOptions& o,
                        std::unique_ptr<rocksdb::FSWritableFile>* r, IODebugContext* d) {
    const std::string f = Normalize(fname);
    std::lock_guard<std::mutex> l(mu_);
    if (cut_) {
      *r = std::make_unique<DroppingFile>();
      return IOStatus::OK();
    }
    struct stat sb;
    const bool existed = ::stat(f.c_str(), &sb) == 0;
    IOStatus s = reopen ? target()->ReopenWritableFile(f, o, r, d)
                        : target()->NewWritableFile(f, o, r, d);
    if (!s.ok()) return s;
    auto it = files_.find(f);
    if (!reopen) {
      // O_TRUNC keeps the inode, so a durable name stays durable.
      const bool durable = existed && (it == files_.end() || it->second.name_durable);
      files_[f] = FileState{0, 0, durable, {}};
    } else if (it == files_.end()) {
      // Not written since the last Restore: durable as it is.
      uint64_t size = existed ? static_cast<uint64_t>(sb.st_size) : 0;
      files_[f] = FileState{size, size, existed, {}};
    }
    *r = std::make_unique<File>(std::move(*r), this, f);
    return s;
  }

  IOStatus ReuseWritableFile(const std::string& fname, const std::string& old,
                             const rocksdb::FileOptions& o,
                             std::unique_ptr<rocksdb::FSWritableFile>* r,
                             IODebugContext* d) override {
    // WAL recycling (off in Loom): a rename of `old` and a fresh file, none of it durable.
    const std::string f = Normalize(fname);
    std::lock_guard<std::mutex> l(mu_);
    if (cut_) {
      *r = std::make_unique<DroppingFile>();
      return IOStatus::OK();
    }
    IOStatus s = target()->ReuseWritableFile(f, old, o, r, d);
    if (!s.ok()) return s;
    files_.erase(Normalize(old));
    files_[f] = FileState{0, 0, false, {}};
    *r = std::make_unique<File>(std::move(*r), this, f);
    return s;
  }

  IOStatus NewDirectory(const std::string& name, const IOOptions& o,
                        std::unique_ptr<rocksdb::FSDirectory>* r, IODebugContext* d) override {
    IOStatus s = target()->NewDirectory(name, o, r, d);
    if (s.ok()) *r = std::make_unique<Dir>(std::move(*r), this, Normalize(name));
    return s;
  }

  IOStatus DeleteFile(const std::string& fname, const IOOptions& o, IODebugContext* d) override {
    const std::string f = Normalize(fname);
    std::lock_guard<std::mutex> l(mu_);
    if (cut_) return IOStatus::OK();
    IOStatus s = target()->DeleteFile(f, o, d);
    if (s.ok()) files_.erase(f);  // durable at once: a simplification (fault_env.h)
    return s;
  }

  IOStatus DeleteDir(const std::string& dir, const IOOptions& o, IODebugContext* d) override {
    std::lock_guard<std::mutex> l(mu_);
    if (cut_) return IOStatus::OK();
    return target()->DeleteDir(dir, o, d);
  }

  IOStatus Truncate(const std::string& fname, size_t size, const IOOptions& o,
                    IODebugContext* d) override {
    const std::string f = Normalize(fname);
    std::lock_guard<std::mutex> l(mu_);
    if (cut_) return IOStatus::OK();
    IOStatus s = target()->Truncate(f, size, o, d);
    if (auto it = files_.find(f); s.ok() && it != files_.end()) {
      it->second.size = size;
      it->second.synced = std::min<uint64_t>(it->second.synced, size);
    }
    return s;
  }

  IOStatus RenameFile(const std::string& src_name, const std::string& dst_name,
                      const IOOptions& o, IODebugContext* d) override {
    const std::string src = Normalize(src_name), dst = Normalize(dst_name);
    std::lock_guard<std::mutex> l(mu_);
    if (cut_) return IOStatus::OK();
    auto s_it = files_.find(src);
    if (s_it == files_.end()) {
      // A file this FileSystem did not write (RocksDB's info LOG): passed through.
      IOStatus s = target()->RenameFile(src, dst, o, d);
      if (s.ok()) files_.erase(dst);
      return s;
    }
    PendingRename pr{src, dst, s_it->second.name_durable, std::nullopt};
    auto d_it = files_.find(dst);
    struct stat sb;
    if (::stat(dst.c_str(), &sb) == 0) {
      if (d_it == files_.end()) {
        pr.old_dst = ReadPrefix(dst, std::nullopt);
      } else if (d_it->second.name_durable) {
        pr.old_dst = ReadPrefix(dst, d_it->second.synced);
      }
    }
    IOStatus s = target()->RenameFile(src, dst, o, d);
    if (!s.ok()) return s;
    FileState st = s_it->second;
    st.name_durable = false;
    files_.erase(src);
    files_[dst] = st;
    renames_.push_back(std::move(pr));
    return s;
  }

  // --- Control (FaultFs) ---

  bool Filtered(const std::string& path) const { return !filter_ || filter_(path); }

  // For an append: true when it is not to happen, with *s its result.
  bool BeforeAppendLocked(const std::string& path, IOStatus* s) {
    *s = IOStatus::OK();
    if (cut_) return true;
    if (!Filtered(path)) return false;
    ++stats_.appends;
    if (fail_append_.Fire()) {
      *s = Injected(fail_append_.err, "append");
      return true;
    }
    if (cut_append_.Fire()) {
      CutLocked();
      return true;
    }
    return false;
  }

  void CutLocked() { cut_ = true; }

  Status RestoreLocked(const FaultFs::RestoreOptions& ro) {
    cut_ = true;
    std::mt19937_64 rng(ro.seed);
    stats_.bytes_dropped = stats_.files_deleted = stats_.renames_undone = 0;
    // Renames no directory sync covered, newest first.
    for (auto it = renames_.rbegin(); it != renames_.rend(); ++it) {
      auto f = files_.find(it->dst);
      if (f != files_.end() && it->src_name_durable) {
        if (::rename(it->dst.c_str(), it->src.c_str()) != 0)
          return Status::FromErrno(errno, "undo rename " + it->dst);
        FileState st = f->second;
        st.name_durable = true;
        files_.erase(f);
        files_[it->src] = st;
      } else if (f != files_.end()) {
        files_.erase(f);
        if (::unlink(it->dst.c_str()) != 0 && errno != ENOENT)
          return Status::FromErrno(errno, "unlink " + it->dst);
      }
      if (it->old_dst && !WriteWhole(it->dst, *it->old_dst))
        return Status::FromErrno(errno, "restore " + it->dst);
      ++stats_.renames_undone;
    }
    for (const auto& [path, st] : files_) {
      if (!st.name_durable) {
        if (::unlink(path.c_str()) != 0 && errno != ENOENT)
          return Status::FromErrno(errno, "unlink " + path);
        ++stats_.files_deleted;
        continue;
      }
      uint64_t undone = 0;
      if (!UndoOverwrites(path, st, ro.tear ? &rng : nullptr, &undone))
        return Status::FromErrno(errno, "undo overwrites of " + path);
      stats_.bytes_dropped += undone;
      uint64_t keep = st.synced;
      if (ro.tear && st.size > st.synced) keep += rng() % (st.size - st.synced + 1);
      stats_.bytes_dropped += st.size - keep;
      if (::truncate(path.c_str(), static_cast<off_t>(keep)) != 0 && errno != ENOENT)
        return Status::FromErrno(errno, "truncate " + path);
    }
    files_.clear();
    renames_.clear();
    DisarmLocked();
    cut_ = false;
    return Status::Ok();
  }

  // Puts back what unsynced overwrites replaced. With `rng` (a torn write), a random prefix
  // of them, in the order they were made, reached the disk first, cut at a 512-byte sector
  // of the file: a device writes a sector whole or not at all.
  static bool UndoOverwrites(const std::string& path, const FileState& st, std::mt19937_64* rng,
                             uint64_t* undone) {
    uint64_t total = 0;
    for (const Overwrite& ow : st.overwrites) total += ow.old.size();
    uint64_t survive = rng != nullptr && total > 0 ? (*rng)() % (total + 1) : 0;
    std::vector<std::pair<uint64_t, std::string>> undo;  // (offset, old bytes) to write back
    for (const Overwrite& ow : st.overwrites) {
      const uint64_t n = ow.old.size();
      if (survive >= n) {
        survive -= n;
        continue;
      }
      uint64_t from = (ow.off + survive) / 512 * 512;  // a sector is written whole or not
      from = std::max(from, ow.off);
      survive = 0;
      undo.emplace_back(from, ow.old.substr(from - ow.off));
    }
    // Newest first, so that bytes written twice get their oldest content back.
    for (auto it = undo.rbegin(); it != undo.rend(); ++it) {
      if (it->second.empty()) continue;
      if (!WriteAt(path, it->first, it->second)) return false;
      *undone += it->second.size();
    }
    return true;
  }

  void DisarmLocked() {
    cut_sync_ = cut_append_ = fail_sync_ = fail_append_ = Trigger();
    disk_full_ = 0;
  }

  mutable std::mutex mu_;
  // All guarded by mu_.
  bool cut_ = false;
  std::map<std::string, FileState> files_;  // files written since the last Restore
  std::vector<PendingRename> renames_;      // oldest first
  std::function<bool(const std::string&)> filter_;
  Trigger cut_sync_, cut_append_, fail_sync_, fail_append_;
  int disk_full_ = 0;  // DiskFull's error; 0: there is room
  FaultFs::Stats stats_;
};

FaultFs::FaultFs() : impl_(std::make_shared<Impl>()), env_(rocksdb::NewCompositeEnv(impl_)) {}
FaultFs::~FaultFs() = default;

void FaultFs::SetTriggerFilter(std::function<bool(const std::string&)> f) {
  std::lock_guard<std::mutex> l(impl_->mu_);
  impl_->filter_ = std::move(f);
}

void FaultFs::PowerCut() {
  std::lock_guard<std::mutex> l(impl_->mu_);
  impl_->CutLocked();
}

bool FaultFs::cut() const {
  std::lock_guard<std::mutex> l(impl_->mu_);
  return impl_->cut_;
}

bool FaultFs::IfPowerOn(const std::function<void()>& fn) {
  std::lock_guard<std::mutex> l(impl_->mu_);
  if (impl_->cut_) return false;
  fn();
  return true;
}

void FaultFs::CutBeforeSync(uint64_t n) {
  std::lock_guard<std::mutex> l(impl_->mu_);
  impl_->cut_sync_ = Impl::Trigger{n, 0};
}

void FaultFs::CutBeforeAppend(uint64_t n) {
  std::lock_guard<std::mutex> l(impl_->mu_);
  impl_->cut_append_ = Impl::Trigger{n, 0};
}

void FaultFs::FailSync(uint64_t n, int err) {
  std::lock_guard<std::mutex> l(impl_->mu_);
  impl_->fail_sync_ = Impl::Trigger{n, err};
}

void FaultFs::FailAppend(uint64_t n, int err) {
  std::lock_guard<std::mutex> l(impl_->mu_);
  impl_->fail_append_ = Impl::Trigger{n, err};
}

void FaultFs::DiskFull(int err) {
  std::lock_guard<std::mutex> l(impl_->mu_);
  impl_->disk_full_ = err;
}

void FaultFs::Disarm() {
  std::lock_guard<std::mutex> l(impl_->mu_);
  impl_->DisarmLocked();
}

Status FaultFs::Restore(const RestoreOptions& o) {
  std::lock_guard<std::mutex> l(impl_->mu_);
  return impl_->RestoreLocked(o);
}

FaultFs::Stats FaultFs::stats() const {
  std::lock_guard<std::mutex> l(impl_->mu_);
  return impl_->stats_;
}

}  // namespace loom::meta
