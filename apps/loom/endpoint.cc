#include "endpoint.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <random>

namespace loom::cli {

std::string RandomSuffix() {
  static const char chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string s;
  for (int i = 0; i < 6; i++) s += chars[rng() % (sizeof chars - 1)];
  return s;
}

std::string TempName(const std::string& dest, const std::string& suffix) {
  std::string dir = DirName(dest);
  std::string name = "." + BaseName(dest) + ".loom-tmp-" + suffix;
  // A plain relative destination ("f") keeps its temporary file relative too.
  if (dest.find('/') == std::string::npos) return name;
  return JoinPath(dir, name);
}

namespace {

lc::FileType TypeOf(mode_t m) {
  if (S_ISDIR(m)) return lc::FileType::kDirectory;
  if (S_ISREG(m)) return lc::FileType::kRegular;
  if (S_ISLNK(m)) return lc::FileType::kSymlink;
  return lc::FileType::kOther;
}

Entry FromStat(const struct stat& st) {
  Entry e;
  e.exists = true;
  e.type = TypeOf(st.st_mode);
  e.size = static_cast<uint64_t>(st.st_size);
  e.mode = st.st_mode & 07777;
  return e;
}

// ---------------------------------------------------------------- local

class LocalReader : public Reader {
 public:
  LocalReader(int fd, uint64_t size, std::string path) : fd_(fd), size_(size), path_(std::move(path)) {}
  ~LocalReader() override { (void)Close(); }
  uint64_t size() const override { return size_; }
  void ReadAsync(uint64_t off, void* buf, size_t len, lc::IoCallback cb) override {
    size_t done = 0;
    while (done < len) {
      ssize_t n = ::pread(fd_, static_cast<char*>(buf) + done, len - done, static_cast<off_t>(off + done));
      if (n < 0 && errno == EINTR && !g_interrupted.load()) continue;
      if (n < 0) return cb(FromErrno(errno, path_), done);
      if (n == 0) break;
      done += static_cast<size_t>(n);
    }
    cb(lc::Status::Ok(), done);
  }
  lc::Status Close() override {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    return lc::Status::Ok();
  }

 private:
  int fd_;
  uint64_t size_;
  std::string path_;
};

lc::Status WriteFully(int fd, uint64_t off, const void* buf, size_t len, bool positional, const std::string& what) {
  size_t done = 0;
  while (done < len) {
    const char* p = static_cast<const char*>(buf) + done;
    ssize_t n = positional ? ::pwrite(fd, p, len - done, static_cast<off_t>(off + done)) : ::write(fd, p, len - done);
    if (n < 0 && errno == EINTR && !g_interrupted.load()) continue;
    if (n < 0) return FromErrno(errno, what);
    done += static_cast<size_t>(n);
  }
  return lc::Status::Ok();
}

mode_t Umask() {
  static const mode_t m = [] {
    mode_t u = ::umask(022);
    ::umask(u);
    return u;
  }();
  return m;
}

class LocalWriter : public Writer {
 public:
  LocalWriter(int fd, std::string tmp, std::string dest, uint32_t mode)
      : fd_(fd), tmp_(std::move(tmp)), dest_(std::move(dest)), mode_(mode) {}
  ~LocalWriter() override {
    if (!published_) Abort();
  }
  void WriteAsync(uint64_t off, const void* buf, size_t len, lc::IoCallback cb) override {
    lc::Status s = WriteFully(fd_, off, buf, len, true, tmp_);
    cb(s, s.ok() ? len : 0);
  }
  lc::Status Close() override {
    if (fd_ < 0) return lc::Status::Ok();
    // mkstemp made it 0600; the copy gets the source's mode as a new file would (umask).
    lc::Status s;
    if (::fchmod(fd_, mode_ & ~Umask() & 07777) != 0) s = FromErrno(errno, tmp_);
    if (::close(fd_) != 0 && s.ok()) s = FromErrno(errno, tmp_);  // NFS-mounted targets report here
    fd_ = -1;
    return s;
  }
  const std::string& temp_path() const override { return tmp_; }
  lc::Status Publish(bool overwrite) override {
    int rc;
    if (overwrite) {
      rc = ::rename(tmp_.c_str(), dest_.c_str());
    } else {
      rc = ::renameat2(AT_FDCWD, tmp_.c_str(), AT_FDCWD, dest_.c_str(), RENAME_NOREPLACE);
      if (rc != 0 && (errno == EINVAL || errno == ENOSYS)) {
        // A file system without RENAME_NOREPLACE: link() also refuses to replace.
        rc = ::link(tmp_.c_str(), dest_.c_str());
        if (rc == 0) ::unlink(tmp_.c_str());
      }
    }
    if (rc != 0) {
      lc::Status s = FromErrno(errno, dest_);
      Abort();
      return s;
    }
    published_ = true;
    return lc::Status::Ok();
  }
  void Abort() override {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    if (!published_ && !removed_) ::unlink(tmp_.c_str());
    removed_ = true;
  }

 private:
  int fd_;
  std::string tmp_, dest_;
  uint32_t mode_;
  bool published_ = false, removed_ = false;
};

class LocalFs : public Fs {
 public:
  LocalFs() { (void)Umask(); }  // read once, on the main thread
  bool remote() const override { return false; }
  std::string Display(const std::string& path) const override { return path; }
  lc::Result<Entry> Stat(const std::string& path, bool follow) override {
    struct stat st;
    if ((follow ? ::stat(path.c_str(), &st) : ::lstat(path.c_str(), &st)) != 0) {
      if (errno == ENOENT) return Entry{};
      return FromErrno(errno, path);
    }
    return FromStat(st);
  }
  lc::Result<std::vector<std::pair<std::string, Entry>>> List(const std::string& dir) override {
    DIR* d = ::opendir(dir.c_str());
    if (!d) return FromErrno(errno, dir);
    std::vector<std::pair<std::string, Entry>> out;
    errno = 0;
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      struct stat st;
      if (::lstat(JoinPath(dir, name).c_str(), &st) != 0) {
        if (errno == ENOENT) continue;  // removed while we looked
        lc::Status s = FromErrno(errno, JoinPath(dir, name));
        ::closedir(d);
        return s;
      }
      out.emplace_back(name, FromStat(st));
    }
    ::closedir(d);
    return out;
  }
  lc::Status Mkdir(const std::string& path, uint32_t mode) override {
    if (::mkdir(path.c_str(), mode) == 0) return lc::Status::Ok();
    int err = errno;
    struct stat st;
    if (err == EEXIST && ::stat(path.c_str(), &st) == 0) {
      if (S_ISDIR(st.st_mode)) return lc::Status::Ok();
      return lc::Status(lc::Errc::kNotDir, path);
    }
    return FromErrno(err, path);
  }
  lc::Result<std::string> Readlink(const std::string& path) override {
    std::string buf(4096, '\0');
    ssize_t n = ::readlink(path.c_str(), buf.data(), buf.size());
    if (n < 0) return FromErrno(errno, path);
    buf.resize(static_cast<size_t>(n));
    return buf;
  }
  lc::Status Symlink(const std::string& target, const std::string& path, bool overwrite) override {
    if (::symlink(target.c_str(), path.c_str()) == 0) return lc::Status::Ok();
    if (errno != EEXIST || !overwrite) return FromErrno(errno, path);
    if (::unlink(path.c_str()) != 0) return FromErrno(errno, path);
    if (::symlink(target.c_str(), path.c_str()) != 0) return FromErrno(errno, path);
    return lc::Status::Ok();
  }
  lc::Result<std::unique_ptr<Reader>> OpenRead(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return FromErrno(errno, path);
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      lc::Status s = FromErrno(errno, path);
      ::close(fd);
      return s;
    }
    if (S_ISDIR(st.st_mode)) {
      ::close(fd);
      return lc::Status(lc::Errc::kIsDir, path);
    }
    return std::unique_ptr<Reader>(new LocalReader(fd, static_cast<uint64_t>(st.st_size), path));
  }
  lc::Result<std::unique_ptr<Writer>> Create(const std::string& dest, uint32_t mode) override {
    std::string tmp = TempName(dest);
    int fd = ::mkostemp(tmp.data(), O_CLOEXEC);
    if (fd < 0) return FromErrno(errno, DirName(dest));
    return std::unique_ptr<Writer>(new LocalWriter(fd, tmp, dest, mode));
  }
};

// ---------------------------------------------------------------- remote

class RemoteReader : public Reader {
 public:
  explicit RemoteReader(std::shared_ptr<lc::File> f) : f_(std::move(f)) {}
  ~RemoteReader() override { (void)Close(); }
  uint64_t size() const override { return f_->size(); }
  void ReadAsync(uint64_t off, void* buf, size_t len, lc::IoCallback cb) override {
    f_->ReadAsync(off, buf, len, std::move(cb));
  }
  lc::Status Close() override { return f_->Close(); }

 private:
  std::shared_ptr<lc::File> f_;
};

class RemoteWriter : public Writer {
 public:
  RemoteWriter(std::shared_ptr<lc::Client> c, std::shared_ptr<lc::File> f, std::string tmp, std::string dest)
      : c_(std::move(c)), f_(std::move(f)), tmp_(std::move(tmp)), dest_(std::move(dest)) {}
  ~RemoteWriter() override {
    if (!published_) Abort();
  }
  void WriteAsync(uint64_t off, const void* buf, size_t len, lc::IoCallback cb) override {
    f_->WriteAsync(off, buf, len, std::move(cb));
  }
  lc::Status Close() override { return f_->Close(); }  // COMMIT + LAYOUTCOMMIT + CLOSE
  const std::string& temp_path() const override { return tmp_; }
  lc::Status Publish(bool overwrite) override {
    // NFSv4 RENAME replaces its target (RFC 8881 §18.26.4) and has no "no-replace" flag, so
    // the check is a look first: another client creating the name in between loses its file.
    auto st = c_->Stat(dest_);
    if (st.ok() && (!overwrite || st->type == lc::FileType::kDirectory)) {
      Abort();
      return lc::Status(st->type == lc::FileType::kDirectory ? lc::Errc::kIsDir : lc::Errc::kExists, dest_);
    }
    if (!st.ok() && st.status().code() != lc::Errc::kNotFound) {
      Abort();
      return st.status();
    }
    lc::Status s = c_->Rename(tmp_, dest_);
    if (!s.ok()) {
      Abort();
      return s;
    }
    published_ = true;
    return s;
  }
  void Abort() override {
    if (removed_ || published_) return;
    removed_ = true;
    (void)f_->Close();
    (void)c_->Remove(tmp_);
  }

 private:
  std::shared_ptr<lc::Client> c_;
  std::shared_ptr<lc::File> f_;
  std::string tmp_, dest_;
  bool published_ = false, removed_ = false;
};

class RemoteFs : public Fs {
 public:
  explicit RemoteFs(std::shared_ptr<lc::Client> c) : c_(std::move(c)) {}
  bool remote() const override { return true; }
  std::string Display(const std::string& path) const override { return "loom:" + path; }
  lc::Result<Entry> Stat(const std::string& path, bool) override {
    auto a = c_->Stat(path);
    if (!a.ok()) {
      if (a.status().code() == lc::Errc::kNotFound) return Entry{};
      return a.status();
    }
    return ToEntry(*a);
  }
  lc::Result<std::vector<std::pair<std::string, Entry>>> List(const std::string& dir) override {
    auto l = c_->List(dir);
    if (!l.ok()) return l.status();
    std::vector<std::pair<std::string, Entry>> out;
    for (const auto& e : *l) {
      if (e.name == "." || e.name == "..") continue;
      out.emplace_back(e.name, ToEntry(e.attr));
    }
    return out;
  }
  lc::Status Mkdir(const std::string& path, uint32_t mode) override {
    lc::Status s = c_->Mkdir(path, mode);
    if (s.ok() || s.code() != lc::Errc::kExists) return s;
    auto a = c_->Stat(path);
    if (a.ok() && a->type == lc::FileType::kDirectory) return lc::Status::Ok();
    return lc::Status(lc::Errc::kNotDir, path);
  }
  lc::Result<std::string> Readlink(const std::string& path) override { return c_->Readlink(path); }
  lc::Status Symlink(const std::string& target, const std::string& path, bool overwrite) override {
    lc::Status s = c_->Symlink(target, path);
    if (s.ok() || s.code() != lc::Errc::kExists || !overwrite) return s;
    s = c_->Remove(path);
    return s.ok() ? c_->Symlink(target, path) : s;
  }
  lc::Result<std::unique_ptr<Reader>> OpenRead(const std::string& path) override {
    lc::OpenFlags fl;
    fl.read = true;
    auto f = c_->Open(path, fl);
    if (!f.ok()) return f.status();
    return std::unique_ptr<Reader>(new RemoteReader(*f));
  }
  lc::Result<std::unique_ptr<Writer>> Create(const std::string& dest, uint32_t mode) override {
    lc::OpenFlags fl;
    fl.read = false;
    fl.write = true;
    fl.create = true;
    fl.exclusive = true;
    fl.mode = mode & 07777;
    for (int attempt = 0;; attempt++) {
      std::string tmp = TempName(dest, RandomSuffix());
      auto f = c_->Open(tmp, fl);
      if (f.ok()) return std::unique_ptr<Writer>(new RemoteWriter(c_, *f, tmp, dest));
      if (f.status().code() != lc::Errc::kExists || attempt == 4) return f.status();
    }
  }

 private:
  static Entry ToEntry(const lc::Attr& a) {
    Entry e;
    e.exists = true;
    e.type = a.type;
    e.size = a.size;
    e.mode = a.mode;
    return e;
  }
  std::shared_ptr<lc::Client> c_;
};

class FdSink : public Sink {
 public:
  explicit FdSink(int fd) : fd_(fd) {}
  void WriteAsync(uint64_t, const void* buf, size_t len, lc::IoCallback cb) override {
    lc::Status s = WriteFully(fd_, 0, buf, len, false, "standard output");
    cb(s, s.ok() ? len : 0);
  }

 private:
  int fd_;
};

}  // namespace

std::unique_ptr<Fs> MakeLocalFs() { return std::make_unique<LocalFs>(); }
std::unique_ptr<Fs> MakeRemoteFs(std::shared_ptr<lc::Client> client) {
  return std::make_unique<RemoteFs>(std::move(client));
}
std::unique_ptr<Sink> MakeFdSink(int fd) { return std::make_unique<FdSink>(fd); }

}  // namespace loom::cli
