// Power loss under loom-ds, simulated through LocalFs's SyncOps seam (local_fs.h). Killing
// loom-ds is no test of durability: the page cache survives a SIGKILL, so a COMMIT without
// its fdatasync would still pass. PowerCutSync models a disk instead: every WRITE reaches the
// file (and the page cache) as usual, but it is durable only once a sync covers it — an
// fdatasync or fsync of the file (COMMIT, SETATTR of the size), syncfs, or the write's own
// RWF_SYNC / RWF_DSYNC (FILE_SYNC and DATA_SYNC writes). A power cut rewrites each file to
// what the disk would hold: the content at its last sync, plus the synchronous writes since;
// unsynced writes are dropped, or with tearing each 512-byte sector of them independently
// made it or not. Then loom-ds starts again on the same export (a new write verifier).
//
// What RFC 1813 promises (§3.3.7 WRITE, §3.3.21 COMMIT) and these tests check: bytes of a
// FILE_SYNC or DATA_SYNC write, and bytes an UNSTABLE write put there before a COMMIT that
// replied, survive; other UNSTABLE bytes may be lost — which the client learns from the new
// verifier — but nothing else.
//
// Simplifications: directory entries are not modelled (CREATE syncs its directory before it
// replies, which nfs3_security_test checks); files are tracked from the first write or sync
// through the seam, and what they held then counts as durable.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "nfs3/nfs3_client.h"
#include "nfs3/nfs3_service.h"
#include "nfs3/nfs3_test_fixture.h"

namespace loom::nfs3 {
namespace {

constexpr size_t kSector = 512;

// The SyncOps of a disk that can lose power. Thread-safe.
class PowerCutSync final : public SyncOps {
 public:
  ~PowerCutSync() override {
    for (auto& [k, f] : files_) ::close(f.fd);
  }

  int Sync(int fd, Kind kind) override {
    std::lock_guard<std::mutex> l(mu_);
    if (cut_) return 0;  // the machine is dead: nothing reaches the disk any more
    ++syncs_;
    if (fail_sync_at_ != 0 && syncs_ == fail_sync_at_) return fail_sync_err_;
    if (kind == kFilesystem) {
      for (auto& [k, f] : files_) Snapshot(f);
    } else if (kind != kDir) {
      if (File* f = Find(fd)) Snapshot(*f);
    }
    return 0;  // no real sync: the model decides what survives
  }

  ssize_t Write(int fd, const iovec* iov, int iovcnt, off_t offset, int flags) override {
    std::lock_guard<std::mutex> l(mu_);
    size_t len = 0;
    for (int i = 0; i < iovcnt; ++i) len += iov[i].iov_len;
    if (cut_) return static_cast<ssize_t>(len);  // "written", lost with the machine
    ++writes_;
    if (fail_write_at_ != 0 && writes_ == fail_write_at_) {
      errno = fail_write_err_;
      return -1;
    }
    File* f = Track(fd);
    if (f == nullptr) return -1;
    ssize_t n = ::pwritev2(fd, iov, iovcnt, offset, flags & ~(RWF_SYNC | RWF_DSYNC));
    if (n <= 0) return n;
    std::string data;
    for (int i = 0; i < iovcnt && data.size() < static_cast<size_t>(n); ++i) {
      size_t take = std::min(iov[i].iov_len, static_cast<size_t>(n) - data.size());
      data.append(static_cast<const char*>(iov[i].iov_base), take);
    }
    // RWF_DSYNC: the data and what is needed to read it back; RWF_SYNC: all metadata too.
    const bool durable = (flags & (RWF_SYNC | RWF_DSYNC)) != 0;
    f->log.push_back(Logged{static_cast<uint64_t>(offset), std::move(data), durable});
    return n;
  }

  void PowerCut() {
    std::lock_guard<std::mutex> l(mu_);
    cut_ = true;
  }
  // Makes every file what the disk held at the cut (cutting now if no cut happened), then
  // powers the disk on with nothing unsynced. Returns the unsynced bytes dropped.
  size_t Restore(bool tear, uint64_t seed) {
    std::lock_guard<std::mutex> l(mu_);
    std::mt19937_64 rng(seed);
    size_t dropped = 0;
    for (auto& [k, f] : files_) {
      std::string image = f.base;
      for (const Logged& w : f.log) {
        for (size_t at = 0; at < w.data.size(); at += kSector) {
          size_t n = std::min(kSector, w.data.size() - at);
          if (!w.durable && !(tear && rng() % 2)) {
            dropped += n;
            continue;
          }
          if (image.size() < w.offset + at + n) image.resize(w.offset + at + n, '\0');
          image.replace(w.offset + at, n, w.data, at, n);
        }
      }
      EXPECT_EQ(::ftruncate(f.fd, 0), 0);
      EXPECT_EQ(::pwrite(f.fd, image.data(), image.size(), 0),
                static_cast<ssize_t>(image.size()));
      ::close(f.fd);
    }
    files_.clear();
    cut_ = false;
    fail_write_at_ = fail_sync_at_ = 0;
    return dropped;
  }

  // The nth write / sync from now fails with `err` and changes nothing.
  void FailWrite(uint64_t n, int err) {
    std::lock_guard<std::mutex> l(mu_);
    fail_write_at_ = writes_ + n;
    fail_write_err_ = err;
  }
  void FailSync(uint64_t n, int err) {
    std::lock_guard<std::mutex> l(mu_);
    fail_sync_at_ = syncs_ + n;
    fail_sync_err_ = err;
  }

 private:
  struct Logged {
    uint64_t offset;
    std::string data;
    bool durable;
  };
  struct File {
    int fd = -1;             // our own descriptor, to rewrite the file at Restore
    std::string base;        // the content at the last sync
    std::vector<Logged> log;  // writes since, oldest first
  };
  using Key = std::pair<dev_t, ino_t>;

  static std::optional<Key> KeyOf(int fd) {
    struct stat st;
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
    return Key{st.st_dev, st.st_ino};
  }
  static std::string ReadAll(int fd) {
    std::string out;
    char buf[1 << 16];
    for (;;) {
      ssize_t n = ::pread(fd, buf, sizeof buf, static_cast<off_t>(out.size()));
      if (n <= 0) return out;
      out.append(buf, static_cast<size_t>(n));
    }
  }
  File* Find(int fd) {
    auto k = KeyOf(fd);
    if (!k) return nullptr;
    auto it = files_.find(*k);
    return it == files_.end() ? nullptr : &it->second;
  }
  File* Track(int fd) {
    auto k = KeyOf(fd);
    if (!k) {
      errno = EINVAL;
      return nullptr;
    }
    auto [it, fresh] = files_.try_emplace(*k);
    if (fresh) {
      it->second.fd = ::dup(fd);
      it->second.base = ReadAll(fd);  // durable as found (fault_fs model, above)
    }
    return &it->second;
  }
  static void Snapshot(File& f) {
    f.base = ReadAll(f.fd);
    f.log.clear();
  }

  std::mutex mu_;
  bool cut_ = false;
  std::map<Key, File> files_;
  uint64_t writes_ = 0, syncs_ = 0;
  uint64_t fail_write_at_ = 0, fail_sync_at_ = 0;
  int fail_write_err_ = 0, fail_sync_err_ = 0;
};

class LocalFsCrashTest : public ::testing::Test, public Nfs3Loopback {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/loom-ds-crash-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    ::chmod(root_.c_str(), 0777);
    Start();
  }
  void TearDown() override {
    Stop();
    std::filesystem::remove_all(root_);
  }
  void Start() { StartNfs3(&disk_, Nfs3Service::Options{}); }
  void Stop() { StopNfs3(); }
  // The power fails; loom-ds comes back on what the disk held. Returns the bytes dropped.
  size_t PowerCutAndRestart(bool tear = false, uint64_t seed = 0) {
    disk_.PowerCut();
    Stop();
    size_t dropped = disk_.Restore(tear, seed);
    Start();
    return dropped;
  }

  nfs_fh3 Create(const std::string& name) { return Nfs3Loopback::Create(rootfh_, name); }
  COMMIT3res Commit(const nfs_fh3& fh) {
    COMMIT3res r;
    EXPECT_TRUE(client_->Call(NFSPROC3_COMMIT, COMMIT3args{fh, 0, 0}, &r).ok());
    return r;
  }
  // The whole file, through READ.
  std::string ReadAll(const nfs_fh3& fh) {
    std::string out;
    for (;;) {
      READ3res r;
      EXPECT_TRUE(client_->Call(NFSPROC3_READ, READ3args{fh, out.size(), 1 << 16}, &r).ok());
      EXPECT_EQ(r.status, NFS3_OK);
      if (r.status != NFS3_OK) return out;
      out.append(r.resok.data.view());
      if (r.resok.eof || r.resok.count == 0) return out;
    }
  }

  PowerCutSync disk_;
};

std::string Pattern(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>('a' + rng() % 26);
  return s;
}

// The rules one by one, without tearing: committed and FILE_SYNC/DATA_SYNC bytes are there;
// the UNSTABLE bytes no COMMIT covered are gone (which also shows the cut really drops).
TEST_F(LocalFsCrashTest, CommittedAndSyncWritesSurvivePowerCut) {
  nfs_fh3 fh = Create("f");
  const std::string a = Pattern(64 << 10, 1), b = Pattern(16 << 10, 2), c = Pattern(8 << 10, 3),
                    d = Pattern(4 << 10, 4), e = Pattern(8 << 10, 5);
  WRITE3res w = Write(fh, 0, a, UNSTABLE);
  ASSERT_EQ(w.status, NFS3_OK);
  EXPECT_EQ(w.resok.committed, UNSTABLE);
  const writeverf3 verf = w.resok.verf;
  COMMIT3res cm = Commit(fh);
  ASSERT_EQ(cm.status, NFS3_OK);
  EXPECT_EQ(cm.resok.verf, verf);
  ASSERT_EQ(Write(fh, 16 << 10, b, UNSTABLE).status, NFS3_OK);    // over committed bytes
  w = Write(fh, 64 << 10, c, FILE_SYNC);                          // extends the file
  ASSERT_EQ(w.status, NFS3_OK);
  EXPECT_EQ(w.resok.committed, FILE_SYNC);
  ASSERT_EQ(Write(fh, 72 << 10, d, UNSTABLE).status, NFS3_OK);    // past it, never committed
  w = Write(fh, 76 << 10, e, DATA_SYNC);
  ASSERT_EQ(w.status, NFS3_OK);
  EXPECT_GE(w.resok.committed, DATA_SYNC);

  EXPECT_EQ(PowerCutAndRestart(), b.size() + d.size());
  std::string got = ReadAll(fh);  // the handle is still good after the restart
  std::string want = a + c + std::string(d.size(), '\0') + e;  // b and d were never stable
  ASSERT_EQ(got.size(), want.size());
  EXPECT_TRUE(got.substr(0, 64 << 10) == a) << "committed bytes lost";
  EXPECT_TRUE(got.substr(64 << 10, 8 << 10) == c) << "FILE_SYNC bytes lost";
  EXPECT_TRUE(got.substr(76 << 10) == e) << "DATA_SYNC bytes lost";
  EXPECT_TRUE(got == want);
  // A new verifier tells the client to resend what it wrote UNSTABLE since its last COMMIT.
  COMMIT3res cm2 = Commit(fh);
  ASSERT_EQ(cm2.status, NFS3_OK);
  EXPECT_NE(cm2.resok.verf, verf);
}

// Many random runs: UNSTABLE, DATA_SYNC and FILE_SYNC writes and COMMITs on a few files, a
// power cut after a random number of them, with torn sectors or not. Per byte, what the
// client was told is stable must be there, or be overwritten by a later write (stable or
// not: either may have reached the disk); a byte nothing stable covers may hold any value a
// write gave it, or zero.
TEST_F(LocalFsCrashTest, StableBytesSurviveRandomPowerCuts) {
  constexpr int kFiles = 3, kRounds = 40;
  constexpr size_t kMax = 48 << 10;
  std::mt19937_64 rng(20261206);
  struct Byte {
    std::optional<char> stable;  // the last value a stable write or COMMIT covered
    std::string later;           // values written after it, not stable
    std::optional<char> current;  // the last value written
  };
  struct Model {
    nfs_fh3 fh;
    std::vector<Byte> bytes;  // as long as the file is now
    size_t stable_size = 0;
  };
  std::vector<Model> files(kFiles);
  for (int i = 0; i < kFiles; ++i) files[i].fh = Create("r" + std::to_string(i));
  size_t dropped = 0;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const int ops = 1 + static_cast<int>(rng() % 12);
    for (int op = 0; op < ops; ++op) {
      Model& m = files[rng() % kFiles];
      if (rng() % 4 == 0) {
        // The whole file, whatever the range (as loom-ds does, §3.3.21 allows it).
        ASSERT_EQ(Commit(m.fh).status, NFS3_OK);
        for (Byte& b : m.bytes) {
          if (b.current) b = Byte{b.current, "", b.current};
        }
        m.stable_size = m.bytes.size();
        continue;
      }
      const uint64_t off = rng() % kMax;
      const std::string data = Pattern(1 + rng() % 8192, rng());
      const stable_how how = static_cast<stable_how>(rng() % 3);
      WRITE3res w = Write(m.fh, off, data, how);
      ASSERT_EQ(w.status, NFS3_OK);
      ASSERT_EQ(w.resok.count, data.size());
      if (m.bytes.size() < off + data.size()) m.bytes.resize(off + data.size());
      for (size_t i = 0; i < data.size(); ++i) {
        Byte& b = m.bytes[off + i];
        if (w.resok.committed == UNSTABLE) {
          b.later += data[i];
          b.current = data[i];
        } else {
          b = Byte{data[i], "", data[i]};
        }
      }
      if (w.resok.committed != UNSTABLE) {
        m.stable_size = std::max<size_t>(m.stable_size, off + data.size());
      }
    }
    const bool tear = rng() % 2;
    dropped += PowerCutAndRestart(tear, rng());
    for (int i = 0; i < kFiles; ++i) {
      Model& m = files[i];
      const std::string got = ReadAll(m.fh);
      ASSERT_GE(got.size(), m.stable_size) << "file " << i << ": stable size lost";
      ASSERT_LE(got.size(), m.bytes.size()) << "file " << i;
      for (size_t at = 0; at < m.bytes.size(); ++at) {
        const Byte& b = m.bytes[at];
        const char c = at < got.size() ? got[at] : '\0';
        const bool ok = (b.stable ? c == *b.stable : c == '\0') ||
                        b.later.find(c) != std::string::npos;
        ASSERT_TRUE(ok) << "file " << i << " byte " << at << ": got '" << c << "', stable "
                        << (b.stable ? std::string(1, *b.stable) : "(none)") << ", later '"
                        << b.later << "'" << (tear ? " (torn)" : "");
      }
      // The client resends nothing here; what survived is now the file.
      m.bytes.assign(got.size(), Byte{});
      for (size_t at = 0; at < got.size(); ++at) m.bytes[at] = Byte{got[at], "", got[at]};
      m.stable_size = got.size();
    }
  }
  EXPECT_GT(dropped, 0u);  // the cuts did drop data, so survival means something
}

// Errors on the durability calls reach the client as their NFS codes (RFC 1813 §2.6), and a
// COMMIT that failed leaves nothing promised.
TEST_F(LocalFsCrashTest, InjectedWriteAndSyncErrorsReachTheClient) {
  nfs_fh3 fh = Create("e");
  disk_.FailWrite(1, ENOSPC);
  EXPECT_EQ(Write(fh, 0, "abc", UNSTABLE).status, NFS3ERR_NOSPC);
  disk_.FailWrite(1, EDQUOT);
  EXPECT_EQ(Write(fh, 0, "abc", FILE_SYNC).status, NFS3ERR_DQUOT);
  disk_.FailWrite(1, EIO);
  EXPECT_EQ(Write(fh, 0, "abc", DATA_SYNC).status, NFS3ERR_IO);
  ASSERT_EQ(Write(fh, 0, "stable", FILE_SYNC).status, NFS3_OK);
  ASSERT_EQ(Write(fh, 0, "STA", UNSTABLE).status, NFS3_OK);
  disk_.FailSync(1, EIO);
  EXPECT_EQ(Commit(fh).status, NFS3ERR_IO);
  PowerCutAndRestart();
  EXPECT_EQ(ReadAll(fh), "stable");  // the failed COMMIT made nothing durable
}

}  // namespace
}  // namespace loom::nfs3
