// Crash durability of RocksKvStore, on FaultFs (fault_env.h): a file system that loses every
// byte not synced when the power is cut. Killing the process is not enough for this: the
// page cache survives a SIGKILL, so a commit acknowledged before its WAL fsync would
// survive it too, and such a test passes with the fsync removed.
//
// The power-cut test: threads run random namespace operations (group commit: their kSync
// commits share WAL syncs) in directories of their own and remember, for each, the state
// after every operation and the last one acknowledged; the power fails at a random point —
// between operations, as the nth WAL sync or append begins, or from a timer thread in the
// middle of commits — the files lose what was not synced (sometimes a torn prefix of it
// stays), and the database is opened again. Each directory must then hold exactly the state
// after one of its operations, no earlier than the last acknowledged one: every acknowledged
// commit is there and none is half applied.
//
// Then injected errors (a full disk on a WAL write fails that commit only) and fail-stop
// (kv.h): a WAL sync that fails must stop the process before anyone is told about the
// commit, reader or writer. Those run as gtest death tests in the "threadsafe" style (the
// child is an exec of this binary).
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "meta/fault_env.h"
#include "meta/namespace.h"
#include "meta/rocks_kv.h"
#include "meta/test_util.h"

namespace loom::meta {
namespace {

constexpr FsId kFs = 3;

bool IsWal(const std::string& path) { return path.size() > 4 && path.ends_with(".log"); }

// --- A model of one directory's entries ---

struct Entry {
  FileType type = FileType::kReg;
  Ino ino = 0;  // 0: not known (a create whose reply never came)
  uint64_t size = 0;
  bool operator==(const Entry&) const = default;
};
using DirState = std::map<std::string, Entry>;

std::string Show(const DirState& s) {
  std::ostringstream o;
  o << "{";
  for (const auto& [n, e] : s) {
    o << " " << n << (e.type == FileType::kDir ? "/" : "") << "#" << e.ino;
    if (e.type == FileType::kReg) o << ":" << e.size;
  }
  o << " }";
  return o.str();
}

// What the store must hold for a directory in state `want`: the same names and types, the
// same inode numbers where known, file sizes, link counts (a file's nlink is its number of
// names; the directory's is 2 plus its subdirectories).
bool Matches(const DirState& got, uint32_t got_dir_nlink, const std::map<Ino, uint32_t>& nlinks,
             const DirState& want) {
  if (got.size() != want.size()) return false;
  uint32_t subdirs = 0;
  std::map<Ino, uint32_t> names;
  for (const auto& [n, e] : want) {
    if (e.type == FileType::kDir) ++subdirs;
    if (e.type == FileType::kReg && e.ino != 0) ++names[e.ino];
  }
  if (got_dir_nlink != 2 + subdirs) return false;
  for (const auto& [n, e] : want) {
    auto it = got.find(n);
    if (it == got.end() || it->second.type != e.type || it->second.size != e.size) return false;
    if (e.ino != 0 && it->second.ino != e.ino) return false;
    const uint32_t links = e.type == FileType::kDir ? 2 : (e.ino != 0 ? names[e.ino] : 1);
    if (nlinks.at(it->second.ino) != links) return false;
  }
  return true;
}

// One thread's operations on its directory. states[i] is the state after i operations
// (states[0]: as the iteration began); `acked` the number of operations known durable: the
// last kSync commit acknowledged before the power failed covers every commit before it.
struct Worker {
  Ino dir = 0;
  std::vector<DirState> states;
  size_t acked = 0;
  std::string failure;  // an unexpected error
};

// A random operation that is valid in `s`, run in its own transaction; updates `next` to the
// state after it. Returns the commit's result and whether it was a kSync commit.
struct OpResult {
  Status status;
  bool sync = true;
};
OpResult RandomOp(KvStore& store, Namespace& ns, Ino dir, const DirState& s, std::mt19937_64& rng,
                  DirState* next) {
  auto pick_name = [&](const char* prefix) { return prefix + std::to_string(rng() % 10); };
  auto pick_existing = [&](bool files_only) -> std::optional<std::string> {
    std::vector<std::string> names;
    for (const auto& [n, e] : s) {
      if (!files_only || e.type == FileType::kReg) names.push_back(n);
    }
    if (names.empty()) return std::nullopt;
    return names[rng() % names.size()];
  };
  auto not_open = [](Ino) { return false; };
  *next = s;
  for (;;) {
    switch (rng() % 8) {
      case 0:
      case 1: {  // create a file or a directory
        const bool is_dir = rng() % 4 == 0;
        std::string name = pick_name(is_dir ? "d" : "f");
        if (s.count(name)) continue;
        CreateArgs a;
        a.type = is_dir ? FileType::kDir : FileType::kReg;
        if (!is_dir) a.layout = Layout{1 << 20, 1, {Mirror{{DataFile{1, "fh-" + name, 1, 1}}}}};
        (*next)[name] = Entry{a.type, 0, 0};
        auto r = RunTxn(store, [&](Txn& t) { return ns.Create(t, dir, name, a); });
        if (r.ok()) (*next)[name].ino = r->inode.ino;
        return {r.status()};
      }
      case 2: {  // another name for a file
        auto src = pick_existing(true);
        std::string name = pick_name("f");
        if (!src || s.count(name)) continue;
        const Entry e = s.at(*src);
        (*next)[name] = e;
        return {RunTxn(store, [&](Txn& t) { return ns.Link(t, e.ino, dir, name); }).status()};
      }
      case 3: {  // rename, onto a free name or over another file
        auto src = pick_existing(false);
        if (!src) continue;
        const Entry e = s.at(*src);
        std::string dst = pick_name(e.type == FileType::kDir ? "d" : "f");
        auto d = s.find(dst);
        if (dst == *src || (d != s.end() && (d->second.type == FileType::kDir ||
                                             d->second.ino == e.ino))) {
          continue;
        }
        next->erase(*src);
        (*next)[dst] = e;
        return {RunTxn(store, [&](Txn& t) {
                  return ns.Rename(t, dir, *src, dir, dst, not_open);
                }).status()};
      }
      case 4: {  // remove a name (directories here are always empty)
        auto name = pick_existing(false);
        if (!name) continue;
        next->erase(*name);
        return {RunTxn(store, [&](Txn& t) { return ns.Remove(t, dir, *name, not_open); })
                    .status()};
      }
      case 5: {  // truncate / extend a file (every name of it)
        auto name = pick_existing(true);
        if (!name) continue;
        const Entry e = s.at(*name);
        SetAttrArgs a;
        a.size = rng() % 100000;
        for (auto& [n, x] : *next) {
          if (x.ino == e.ino) x.size = *a.size;
        }
        return {RunTxn(store, [&](Txn& t) { return ns.SetAttr(t, e.ino, a); }).status()};
      }
      case 6:
      case 7: {  // what an UNSTABLE WRITE past EOF does: a kDeferred size extension
        auto name = pick_existing(true);
        if (!name) continue;
        const Entry e = s.at(*name);
        SetAttrArgs a;
        a.size_at_least = e.size + 1 + rng() % 5000;
        for (auto& [n, x] : *next) {
          if (x.ino == e.ino) x.size = *a.size_at_least;
        }
        Status st = RunTxn(store, [&](Txn& t) {
          t.SetDurability(Durability::kDeferred);
          return ns.SetAttr(t, e.ino, a).status();
        });
        return {st, false};
      }
    }
  }
}

// The directory as the store holds it, and every link count it shows.
Status ReadState(KvStore& store, Namespace& ns, Ino dir, DirState* out, uint32_t* dir_nlink,
                 std::map<Ino, uint32_t>* nlinks) {
  auto page = RunTxn(store, [&](Txn& t) { return ns.ReadDir(t, dir, 0, 100000); });
  if (!page.ok()) return page.status();
  if (!page->eof) return Status::Internal("readdir not at eof");
  auto d = RunTxn(store, [&](Txn& t) { return ns.GetAttr(t, dir); });
  if (!d.ok()) return d.status();
  *dir_nlink = d->nlink;
  out->clear();
  for (const Dentry& e : page->entries) {
    auto a = RunTxn(store, [&](Txn& t) { return ns.GetAttr(t, e.ino); });
    if (!a.ok()) return Status::Internal(e.name + ": " + a.status().ToString());
    if (a->type != e.type) return Status::Internal(e.name + ": entry and inode types differ");
    (*out)[e.name] = Entry{e.type, e.ino, e.type == FileType::kReg ? a->size : 0};
    (*nlinks)[e.ino] = a->nlink;
  }
  return Status::Ok();
}

Result<std::unique_ptr<RocksKvStore>> OpenOn(FaultFs& fs, const std::string& path,
                                             bool wal_direct = true,
                                             uint64_t wal_prewrite_bytes = uint64_t{1} << 20) {
  RocksKvStore::Options o;
  o.path = path;  // sync commits: the default
  o.env = fs.env();
  o.wal_direct = wal_direct;
  o.wal_prewrite_bytes = wal_prewrite_bytes;
  return RocksKvStore::Open(o);
}

enum class CutMode { kBetweenOps, kAtWalSync, kAtWalAppend, kFromTimer };
const char* Name(CutMode m) {
  switch (m) {
    case CutMode::kBetweenOps: return "between operations";
    case CutMode::kAtWalSync: return "as a WAL sync begins";
    case CutMode::kAtWalAppend: return "as a WAL append begins";
    case CutMode::kFromTimer: return "from a timer thread";
  }
  return "?";
}

TEST(RocksCrashTest, AcknowledgedCommitsSurviveEveryPowerCut) {
  constexpr int kIterations = 150, kThreads = 4, kMaxOps = 25;
  // LOOM_CRASH_SEED reruns another sequence (the failure message names the seed).
  const char* seed_env = std::getenv("LOOM_CRASH_SEED");
  const uint64_t seed = seed_env ? std::strtoull(seed_env, nullptr, 10) : 20261206;
  std::mt19937_64 rng(seed);
  testing::TempDir tmp;
  const std::string path = tmp.path() + "/db";
  FaultFs fs;
  fs.SetTriggerFilter(IsWal);
  std::vector<Worker> workers(kThreads);
  {
    auto store = OpenOn(fs, path);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    Namespace ns(store->get(), kFs);
    ASSERT_TRUE(RunTxn(**store, [&](Txn& t) { return ns.Mkfs(t, 0755, 0, 0); }).ok());
    for (int i = 0; i < kThreads; ++i) {
      CreateArgs a;
      a.type = FileType::kDir;
      auto r = RunTxn(**store, [&](Txn& t) {
        return ns.Create(t, kRootIno, "t" + std::to_string(i), a);
      });
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      workers[i].dir = r->inode.ino;
      workers[i].states = {DirState()};
    }
  }
  ASSERT_TRUE(fs.Restore().ok());  // all of that was acknowledged: nothing to drop
  uint64_t dropped = 0, cuts_mid_commit = 0;
  for (int iter = 0; iter < kIterations; ++iter) {
    const CutMode mode = static_cast<CutMode>(rng() % 4);
    const bool tear = rng() % 2;
    SCOPED_TRACE("seed " + std::to_string(seed) + ", iteration " + std::to_string(iter) +
                 ": power cut " + Name(mode) + (tear ? ", torn tails" : ""));
    auto opened = OpenOn(fs, path);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    std::unique_ptr<RocksKvStore> store = std::move(opened).value();
    // Verify the state the last cut left, then start this iteration from it.
    {
      Namespace ns(store.get(), kFs);
      for (int i = 0; i < kThreads; ++i) {
        Worker& w = workers[i];
        DirState got;
        uint32_t dir_nlink = 0;
        std::map<Ino, uint32_t> nlinks;
        Status s = ReadState(*store, ns, w.dir, &got, &dir_nlink, &nlinks);
        ASSERT_TRUE(s.ok()) << "thread " << i << ": " << s.ToString();
        bool found = false;
        for (size_t k = w.acked; k < w.states.size() && !found; ++k) {
          found = Matches(got, dir_nlink, nlinks, w.states[k]);
        }
        ASSERT_TRUE(found) << "thread " << i << ": after the power cut the directory holds "
                           << Show(got) << " (nlink " << dir_nlink << "), which is no state from "
                           << "the last acknowledged one (" << w.acked << " of "
                           << w.states.size() - 1 << " operations): " << Show(w.states[w.acked]);
        w.states = {got};
        w.acked = 0;
      }
    }
    std::vector<uint64_t> seeds;
    for (int i = 0; i < kThreads; ++i) seeds.push_back(rng());
    switch (mode) {
      case CutMode::kAtWalSync: fs.CutBeforeSync(1 + rng() % 40); break;
      case CutMode::kAtWalAppend: fs.CutBeforeAppend(1 + rng() % 80); break;
      default: break;
    }
    const auto timer_delay = std::chrono::microseconds(rng() % 20000);
    Namespace ns(store.get(), kFs);
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back([&, i] {
        Worker& w = workers[i];
        std::mt19937_64 r(seeds[i]);
        for (int op = 0; op < kMaxOps && !fs.cut(); ++op) {
          DirState next;
          OpResult res = RandomOp(*store, ns, w.dir, w.states.back(), r, &next);
          w.states.push_back(std::move(next));  // started: it may be on disk
          if (!res.status.ok()) {
            if (!fs.cut()) w.failure = res.status.ToString();
            return;
          }
          // Acknowledged only while the power is on (under the cut's lock).
          if (res.sync) fs.IfPowerOn([&] { w.acked = w.states.size() - 1; });
        }
      });
    }
    std::thread timer;
    if (mode == CutMode::kFromTimer) {
      timer = std::thread([&] {
        std::this_thread::sleep_for(timer_delay);
        fs.PowerCut();
      });
    }
    for (auto& t : threads) t.join();
    if (timer.joinable()) timer.join();
    if (fs.cut()) ++cuts_mid_commit;
    fs.PowerCut();
    for (int i = 0; i < kThreads; ++i) {
      ASSERT_EQ(workers[i].failure, "") << "thread " << i;
    }
    store.reset();  // the process is gone
    ASSERT_TRUE(fs.Restore({tear, rng()}).ok());
    dropped += fs.stats().bytes_dropped;
  }
  // The test proves something only if cuts really dropped acknowledged-looking data.
  EXPECT_GT(dropped, 0u);
  EXPECT_GT(cuts_mid_commit, 0u);
  std::printf("power cuts: %d (%llu during commits), unsynced bytes dropped: %llu\n", kIterations,
              static_cast<unsigned long long>(cuts_mid_commit),
              static_cast<unsigned long long>(dropped));
}

// FaultFs itself: what was synced survives a cut, what was not is gone (with no tearing).
TEST(RocksCrashTest, PowerCutDropsWhatNoSyncCovered) {
  testing::TempDir tmp;
  const std::string path = tmp.path() + "/db";
  FaultFs fs;
  auto put = [](KvStore& s, const std::string& k, Durability d) {
    return RunTxn(s, [&](Txn& t) {
      t.SetDurability(d);
      return t.Put(k, "v");
    });
  };
  auto get = [](KvStore& s, const std::string& k) {
    auto v = RunTxn(s, [&](Txn& t) { return t.Get(k); });
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    return v.ok() && v->has_value();
  };
  {
    auto store = OpenOn(fs, path);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    ASSERT_TRUE(put(**store, "sync", Durability::kSync).ok());
    ASSERT_TRUE(put(**store, "deferred-synced", Durability::kDeferred).ok());
    ASSERT_TRUE((*store)->Sync().ok());
    ASSERT_TRUE(put(**store, "deferred", Durability::kDeferred).ok());
    EXPECT_TRUE(get(**store, "deferred"));  // visible before durable
  }
  ASSERT_TRUE(fs.Restore().ok());
  EXPECT_GT(fs.stats().bytes_dropped, 0u);
  auto store = OpenOn(fs, path);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_TRUE(get(**store, "sync"));
  EXPECT_TRUE(get(**store, "deferred-synced"));
  EXPECT_FALSE(get(**store, "deferred"));
}

// A WAL write that fails (a full disk, a quota, an I/O error) fails that commit — with the
// code the NFS layer maps to NOSPC or IO — and nothing else: after a power cut every
// acknowledged commit is there and the failed one is not.
// Creates f0, f1, ... in the root until one fails (with `want`) or `max` were made: the
// acknowledged names go to `acked`, the failed one to `failed`. Returns how many succeeded.
int CreateUntilOneFails(KvStore& store, Namespace& ns, int max, Code want,
                        std::map<std::string, Ino>* acked, std::string* failed) {
  int n = 0;
  for (int i = 0; i < max && failed->empty(); ++i) {
    std::string name = "f" + std::to_string(i);
    CreateArgs a;
    auto r = RunTxn(store, [&](Txn& t) { return ns.Create(t, kRootIno, name, a); });
    if (r.ok()) {
      (*acked)[name] = r->inode.ino;
      ++n;
    } else {
      EXPECT_EQ(r.status().code(), want) << r.status().ToString();
      *failed = name;
    }
  }
  return n;
}

// The root directory's names and inodes after a power cut (FaultFs::Restore) and a reopen;
// every database on `fs` must be closed.
std::map<std::string, Ino> RootAfterPowerCut(FaultFs& fs, const std::string& path) {
  std::map<std::string, Ino> got;
  EXPECT_TRUE(fs.Restore().ok());
  auto store = OpenOn(fs, path);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  if (!store.ok()) return got;
  Namespace ns(store->get(), kFs);
  auto page = RunTxn(**store, [&](Txn& t) { return ns.ReadDir(t, kRootIno, 0, 1000); });
  EXPECT_TRUE(page.ok()) << page.status().ToString();
  if (page.ok()) {
    for (const Dentry& e : page->entries) got[e.name] = e.ino;
  }
  return got;
}

// With buffered WAL writes (Options::wal_direct off) each commit writes its own record, so any
// failed write fails that commit alone. (With direct writes, the default, only a write past
// the zeros can fail alone: AFullDiskFailsOnlyCommitsPastTheZeros; an I/O error in a sync's
// write stops the process, RocksFailStopTest.InjectedEioOnDirectWalWriteStopsTheProcess.)
TEST(RocksCrashTest, FailedWalWriteFailsThatCommitOnly) {
  struct Case {
    int err;
    Code want;
  };
  for (const Case c : {Case{ENOSPC, Code::kNoSpace}, Case{EDQUOT, Code::kIo}, Case{EIO, Code::kIo}}) {
    SCOPED_TRACE(std::strerror(c.err));
    testing::TempDir tmp;
    const std::string path = tmp.path() + "/db";
    FaultFs fs;
    fs.SetTriggerFilter(IsWal);
    std::map<std::string, Ino> acked;
    std::string failed;
    {
      auto store = OpenOn(fs, path, /*wal_direct=*/false);
      ASSERT_TRUE(store.ok()) << store.status().ToString();
      Namespace ns(store->get(), kFs);
      ASSERT_TRUE(RunTxn(**store, [&](Txn& t) { return ns.Mkfs(t, 0755, 0, 0); }).ok());
      fs.FailAppend(7, c.err);
      CreateUntilOneFails(**store, ns, 20, c.want, &acked, &failed);
    }
    ASSERT_FALSE(failed.empty()) << "the injected error never reached a commit";
    EXPECT_EQ(RootAfterPowerCut(fs, path), acked) << failed << " failed";
  }
}

// Direct WAL writes on a disk that fills up. Records land on the zeros written ahead and reach
// the file with the sync, as overwrites, which a full disk does not refuse: those commits
// succeed. Once the zeros are used up, a record must grow the file: its write fails for space
// and fails that commit alone (kNoSpace), and what was acknowledged survives a power cut.
TEST(RocksCrashTest, AFullDiskFailsOnlyCommitsPastTheZeros) {
  testing::TempDir tmp;
  const std::string path = tmp.path() + "/db";
  FaultFs fs;
  fs.SetTriggerFilter(IsWal);
  std::map<std::string, Ino> acked;
  std::string failed;
  int acked_while_full = 0;
  {
    auto store = OpenOn(fs, path, /*wal_direct=*/true, /*wal_prewrite_bytes=*/8192);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    if ((*store)->stats().wal_direct_files == 0) GTEST_SKIP() << "no O_DIRECT on " << tmp.path();
    Namespace ns(store->get(), kFs);
    ASSERT_TRUE(RunTxn(**store, [&](Txn& t) { return ns.Mkfs(t, 0755, 0, 0); }).ok());
    fs.DiskFull(ENOSPC);
    acked_while_full = CreateUntilOneFails(**store, ns, 400, Code::kNoSpace, &acked, &failed);
  }
  EXPECT_GT(acked_while_full, 0) << "no record landed on the zeros written ahead";
  ASSERT_FALSE(failed.empty()) << "the zeros never ran out";
  EXPECT_EQ(RootAfterPowerCut(fs, path), acked) << failed << " failed";
}

// --- Fail-stop on a failed WAL sync ---

constexpr const char* kFailDirEnv = "LOOM_META_FAILSTOP_DIR";
constexpr const char* kFailStopMessage = "WAL sync failed";

// The database directory for a fail-stop test: made by the parent (and named to its death-test
// children in the environment, since a threadsafe death test reruns the test body).
class FailStopDir {
 public:
  FailStopDir() {
    if (const char* d = std::getenv(kFailDirEnv)) {
      path_ = d;
      child_ = true;
      return;
    }
    tmp_.emplace();
    path_ = tmp_->path() + "/db";
    ::setenv(kFailDirEnv, path_.c_str(), 1);
  }
  ~FailStopDir() {
    if (!child_) ::unsetenv(kFailDirEnv);
  }
  const std::string& path() const { return path_; }
  bool child() const { return child_; }

 private:
  std::optional<testing::TempDir> tmp_;
  std::string path_;
  bool child_ = false;
};

Status PutOne(KvStore& store, const std::string& k, const std::string& v) {
  return RunTxn(store, [&](Txn& t) { return t.Put(k, v); });
}

MaybeValue GetOne(KvStore& store, const std::string& k) {
  auto v = RunTxn(store, [&](Txn& t) { return t.Get(k); });
  EXPECT_TRUE(v.ok()) << v.status().ToString();
  return v.ok() ? *v : MaybeValue();
}

// Child: "b" is committed while every WAL sync fails. Returning at all is the bug.
void CommitWithFailingSync(const std::string& path) {
  RocksKvStore::Options o;
  o.path = path;
  o.before_sync = [](const std::string& f) {
    return IsWal(f) ? Status(Code::kIo, "disk says no") : Status::Ok();
  };
  auto store = RocksKvStore::Open(o);
  if (!store.ok()) _exit(2);
  Status s = PutOne(**store, "b", "2");
  std::fprintf(stderr, "commit returned: %s\n", s.ToString().c_str());
  _exit(0);
}

// Child: four threads commit 20 changes each on FaultFs while `arm` makes one WAL call fail
// (EIO). Returning at all is the bug. With `direct`, exits 4 where WAL files cannot be opened
// for direct writes.
void CommitsWithEio(const std::function<void(FaultFs&)>& arm, bool direct) {
  testing::TempDir tmp;
  FaultFs fs;
  fs.SetTriggerFilter(IsWal);
  auto store = OpenOn(fs, tmp.path() + "/db", direct);
  if (!store.ok()) _exit(2);
  if (direct && (*store)->stats().wal_direct_files == 0) _exit(4);
  arm(fs);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      for (int j = 0; j < 20; ++j) {
        if (!PutOne(**store, "k" + std::to_string(i) + "-" + std::to_string(j), "v").ok()) _exit(3);
      }
    });
  }
  for (auto& t : threads) t.join();
  std::fprintf(stderr, "every commit returned\n");
  _exit(0);
}

// The third WAL sync fails.
TEST(RocksFailStopTest, InjectedEioOnWalSyncStopsTheProcess) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(CommitsWithEio([](FaultFs& fs) { fs.FailSync(3, EIO); }, /*direct=*/false),
               kFailStopMessage);
}

// With direct WAL writes the records reach the file in the syncs' writes; the fifth WAL write
// fails. Those commits are visible and were not written: the process must stop, as for a
// failed fdatasync.
TEST(RocksFailStopTest, InjectedEioOnDirectWalWriteStopsTheProcess) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  {
    testing::TempDir tmp;
    FaultFs fs;
    auto store = OpenOn(fs, tmp.path() + "/db");
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    if ((*store)->stats().wal_direct_files == 0) GTEST_SKIP() << "no O_DIRECT on " << tmp.path();
  }
  EXPECT_DEATH(CommitsWithEio([](FaultFs& fs) { fs.FailAppend(5, EIO); }, /*direct=*/true),
               kFailStopMessage);
}

TEST(RocksFailStopTest, FailedWalSyncStopsTheProcess) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  FailStopDir dir;
  if (!dir.child()) {
    RocksKvStore::Options o;
    o.path = dir.path();
    auto store = RocksKvStore::Open(o);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    ASSERT_TRUE(PutOne(**store, "a", "1").ok());
  }
  EXPECT_DEATH(CommitWithFailingSync(dir.path()), kFailStopMessage);
  // After the restart: what was durable is there; "b" is either absent or (its WAL write
  // reached the disk after all) present — never acknowledged as failed and served.
  RocksKvStore::Options o;
  o.path = dir.path();
  auto store = RocksKvStore::Open(o);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ(GetOne(**store, "a"), "1");
  MaybeValue b = GetOne(**store, "b");
  EXPECT_TRUE(!b || *b == "2");
}

// Child: a writer's WAL sync is held (then fails) while a reader reads the writer's commit,
// which is visible already. The reader must not finish with it: its Commit (or its Rollback,
// the way an operation that fails on what it read ends) waits for the sync, which stops the
// process.
enum class ReaderEnd { kCommit, kRollback, kScanCommit, kScopeEnd };
void ReadWhileSyncFails(const std::string& path, ReaderEnd how) {
  std::mutex mu;
  std::condition_variable cv;
  bool in_sync = false, reader_read = false;
  RocksKvStore::Options o;
  o.path = path;
  o.before_sync = [&](const std::string& f) {
    if (!IsWal(f)) return Status::Ok();
    std::unique_lock<std::mutex> l(mu);
    in_sync = true;
    cv.notify_all();
    cv.wait(l, [&] { return reader_read; });
    return Status(Code::kIo, "disk says no");
  };
  auto store = RocksKvStore::Open(o);
  if (!store.ok()) _exit(2);
  std::thread writer([&] { (void)PutOne(**store, "b", "2"); });
  {
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return in_sync; });
  }
  std::optional<ReadWaitScope> scope;
  if (how == ReaderEnd::kScopeEnd) scope.emplace(**store);
  auto t = (*store)->Begin();
  if (!t.ok()) _exit(3);
  auto v = (*t)->Get("b");  // visible: the WAL write is done, its sync is not
  if (how == ReaderEnd::kScanCommit) {
    // Reads "b" only through a scan of a range that holds it.
    v = Result<MaybeValue>(MaybeValue());
    Status sc = (*t)->Scan(KeyRange::Prefix(""), 0, [&](std::string_view k, std::string_view val) {
      if (k == "b") v = Result<MaybeValue>(MaybeValue(std::string(val)));
      return true;
    });
    if (!sc.ok()) _exit(4);
  }
  Status s;
  if (how == ReaderEnd::kScopeEnd) {
    // Inside the scope the transaction's end does not wait (the sync is still held here)...
    s = (*t)->Commit();
    std::fprintf(stderr, "reader committed inside the scope: %s\n", s.ToString().c_str());
  }
  {
    std::lock_guard<std::mutex> l(mu);
    reader_read = true;
    cv.notify_all();
  }
  if (how == ReaderEnd::kRollback) {
    (*t)->Rollback();
  } else if (how == ReaderEnd::kScopeEnd) {
    scope->End();  // ...the scope's end does
  } else {
    s = (*t)->Commit();
  }
  std::fprintf(stderr, "reader finished: %s, b=%s\n", s.ToString().c_str(),
               v.ok() && *v ? (*v)->c_str() : "(none)");
  _exit(0);
}

TEST(RocksFailStopTest, NoReaderFinishesWithACommitWhoseSyncFailed) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  FailStopDir dir;
  EXPECT_DEATH(ReadWhileSyncFails(dir.path(), ReaderEnd::kCommit), kFailStopMessage);
  EXPECT_DEATH(ReadWhileSyncFails(dir.path(), ReaderEnd::kRollback), kFailStopMessage);
  EXPECT_DEATH(ReadWhileSyncFails(dir.path(), ReaderEnd::kScanCommit), kFailStopMessage);
  EXPECT_DEATH(ReadWhileSyncFails(dir.path(), ReaderEnd::kScopeEnd), kFailStopMessage);
}

// A reader waits only for the pending commits it read: while a commit of "a" waits for its
// (held) WAL sync, a transaction that reads other keys -- a Get of "b", a scan of the "c"
// range -- finishes. (Waiting for every pending commit made each read-only transaction of a
// busy server wait for an fsync.)
TEST(RocksDurabilityTest, ReadersOfOtherKeysDoNotWaitForAPendingSync) {
  testing::TempDir tmp;
  std::mutex mu;
  std::condition_variable cv;
  bool armed = false, in_sync = false, release = false, reader_done = false;
  RocksKvStore::Options o;
  o.path = tmp.path() + "/db";
  o.before_sync = [&](const std::string& f) {
    if (!IsWal(f)) return Status::Ok();
    std::unique_lock<std::mutex> l(mu);
    if (!armed) return Status::Ok();
    in_sync = true;
    cv.notify_all();
    cv.wait(l, [&] { return release; });
    return Status::Ok();
  };
  auto store = RocksKvStore::Open(o);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  ASSERT_TRUE(PutOne(**store, "b", "1").ok());
  ASSERT_TRUE(PutOne(**store, "c1", "1").ok());
  {
    std::lock_guard<std::mutex> l(mu);
    armed = true;
  }
  std::thread writer([&] { EXPECT_TRUE(PutOne(**store, "a", "2").ok()); });
  {
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return in_sync; });
  }
  Status read_status;
  std::thread reader([&] {
    auto t = (*store)->Begin();
    ASSERT_TRUE(t.ok());
    auto b = (*t)->Get("b");
    EXPECT_TRUE(b.ok() && *b == "1");
    int n = 0;
    read_status = (*t)->Scan(KeyRange::Prefix("c"), 0, [&](std::string_view, std::string_view) {
      ++n;
      return true;
    });
    EXPECT_EQ(n, 1);
    if (read_status.ok()) read_status = (*t)->Commit();
    std::lock_guard<std::mutex> l(mu);
    reader_done = true;
    cv.notify_all();
  });
  bool finished_while_held;
  {
    // The bound only keeps a wrong implementation from hanging the test.
    std::unique_lock<std::mutex> l(mu);
    finished_while_held = cv.wait_for(l, std::chrono::seconds(30), [&] { return reader_done; });
    release = true;
    cv.notify_all();
  }
  reader.join();
  writer.join();
  EXPECT_TRUE(finished_while_held);
  EXPECT_TRUE(read_status.ok()) << read_status.ToString();
  EXPECT_EQ((*store)->stats().read_waits, 0u);
}

// --- Deferred durability (NFS UNSTABLE writes) ---

TEST(RocksDurabilityTest, DeferredCommitsAreSyncedOnceBySync) {
  testing::TempDir tmp;
  RocksKvStore::Options o;
  o.path = tmp.path() + "/db";
  auto opened = RocksKvStore::Open(o);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  RocksKvStore& store = **opened;
  const uint64_t base = store.stats().wal_syncs;
  ASSERT_TRUE(PutOne(store, "durable", "x").ok());
  EXPECT_EQ(store.stats().wal_syncs, base + 1);
  for (int i = 0; i < 20; i++) {
    Status s = RunTxn(store, [&](Txn& t) {
      t.SetDurability(Durability::kDeferred);
      return t.Put("k" + std::to_string(i), "v");
    });
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(GetOne(store, "k" + std::to_string(i)), "v");  // visible at once
  }
  EXPECT_EQ(store.stats().wal_syncs, base + 1);  // neither the writes nor the reads synced
  EXPECT_EQ(store.stats().deferred_commits, 20u);
  ASSERT_TRUE(store.Sync().ok());
  EXPECT_EQ(store.stats().wal_syncs, base + 2);  // one sync for all twenty
  ASSERT_TRUE(store.Sync().ok());
  EXPECT_EQ(store.stats().wal_syncs, base + 2);  // nothing new: no fsync
}

// A deferred commit that is not yet synced fails with the process too (no one was told it
// was durable, and the process that could serve it is gone).
void SyncDeferredWithFailingDisk(const std::string& path) {
  std::atomic<bool> fail{false};
  RocksKvStore::Options o;
  o.path = path;
  o.before_sync = [&](const std::string& f) {
    return IsWal(f) && fail.load() ? Status(Code::kIo, "disk says no") : Status::Ok();
  };
  auto store = RocksKvStore::Open(o);
  if (!store.ok()) _exit(2);
  Status s = RunTxn(**store, [&](Txn& t) {
    t.SetDurability(Durability::kDeferred);
    return t.Put("d", "1");
  });
  if (!s.ok()) _exit(3);
  fail = true;
  s = (*store)->Sync();
  std::fprintf(stderr, "sync returned: %s\n", s.ToString().c_str());
  _exit(0);
}

TEST(RocksFailStopTest, FailedSyncOfDeferredCommitsStopsTheProcess) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  FailStopDir dir;
  EXPECT_DEATH(SyncDeferredWithFailingDisk(dir.path()), kFailStopMessage);
}

// Power loss, simulated: the child records, at every WAL sync, how long the WAL file is (what
// that sync makes durable), commits, and is SIGKILLed; the parent then cuts each WAL file back
// to its last synced length — what a power failure would leave — and reopens. Everything
// Sync() covered is there; what was only ever written is gone, which shows the simulation
// really drops unsynced data.
void DeferredThenKilled(const std::string& path) {
  const std::string record = path + ".synced";
  RocksKvStore::Options o;
  o.path = path;
  o.before_sync = [&](const std::string& f) {
    if (!IsWal(f)) return Status::Ok();
    struct stat st;
    if (::stat(f.c_str(), &st) != 0) return Status(Code::kIo, "stat");
    FILE* out = std::fopen(record.c_str(), "a");
    if (!out) return Status(Code::kIo, "record");
    std::fprintf(out, "%s %lld\n", f.c_str(), static_cast<long long>(st.st_size));
    std::fclose(out);
    return Status::Ok();
  };
  auto store = RocksKvStore::Open(o);
  if (!store.ok()) _exit(2);
  auto deferred = [&](const std::string& k) {
    Status s = RunTxn(**store, [&](Txn& t) {
      t.SetDurability(Durability::kDeferred);
      return t.Put(k, "v");
    });
    if (!s.ok()) _exit(3);
  };
  for (int i = 0; i < 20; i++) deferred("synced-" + std::to_string(i));
  if (!(*store)->Sync().ok()) _exit(4);
  for (int i = 0; i < 5; i++) deferred("unsynced-" + std::to_string(i));
  ::raise(SIGKILL);
}

TEST(RocksDurabilityTest, WhatSyncCoveredSurvivesPowerLoss) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  FailStopDir dir;
  EXPECT_EXIT(DeferredThenKilled(dir.path()), ::testing::KilledBySignal(SIGKILL), "");
  std::map<std::string, long long> synced;
  if (FILE* in = std::fopen((dir.path() + ".synced").c_str(), "r")) {
    char f[4096];
    long long n;
    while (std::fscanf(in, "%4095s %lld", f, &n) == 2) synced[f] = n;
    std::fclose(in);
  }
  ASSERT_FALSE(synced.empty());
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    std::string f = e.path().string();
    if (!IsWal(f)) continue;
    auto it = synced.find(f);
    ASSERT_EQ(::truncate(f.c_str(), it == synced.end() ? 0 : it->second), 0) << f;
  }
  RocksKvStore::Options o;
  o.path = dir.path();
  auto store = RocksKvStore::Open(o);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  for (int i = 0; i < 20; i++) EXPECT_EQ(GetOne(**store, "synced-" + std::to_string(i)), "v") << i;
  for (int i = 0; i < 5; i++) EXPECT_EQ(GetOne(**store, "unsynced-" + std::to_string(i)), std::nullopt) << i;
}

}  // namespace
}  // namespace loom::meta
