// Crash durability of RocksKvStore: a child process creates entries and reports each one only
// after its Commit returned; the parent SIGKILLs it right after a report, reopens the database
// and must find every reported entry (and at most one more: a commit that finished but was
// not reported yet).
//
// The child is this same test binary, started with fork + exec so that it begins with a
// clean RocksDB (a fork alone would inherit the parent's RocksDB background threads' state
// without the threads).
//
// Then fail-stop (kv.h): a WAL sync that fails — injected through Options::before_sync —
// must stop the process before anyone is told about the commit, reader or writer. Those run
// as gtest death tests in the "threadsafe" style (the child is an exec of this binary too).
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "meta/namespace.h"
#include "meta/rocks_kv.h"
#include "meta/test_util.h"

extern char** environ;

namespace loom::meta {
namespace {

constexpr FsId kFs = 3;
constexpr const char* kTestName = "RocksCrashTest.AcknowledgedCreatesSurviveSigkill";
constexpr const char* kDirEnv = "LOOM_META_CRASH_DIR";
constexpr const char* kFdEnv = "LOOM_META_CRASH_FD";
constexpr const char* kRoundEnv = "LOOM_META_CRASH_ROUND";

Result<std::unique_ptr<RocksKvStore>> OpenDb(const std::string& path) {
  RocksKvStore::Options o;
  o.path = path;  // sync writes: the default
  return RocksKvStore::Open(o);
}

// The child: create entries forever, reporting "name ino" after each commit.
[[noreturn]] void RunChild(const char* path, int fd, const char* round) {
  auto store = OpenDb(path);
  if (!store.ok()) _exit(2);
  Namespace ns(store->get(), kFs);
  for (uint64_t i = 0;; ++i) {
    std::string name = std::string("r") + round + "-" + std::to_string(i);
    CreateArgs a;
    if (i % 10 == 9) {
      a.type = FileType::kDir;
    } else {
      a.layout = Layout{1 << 20, 1, {Mirror{{DataFile{1, "fh-" + name, 1, 1}}}}};
    }
    auto r = RunTxn(**store, [&](Txn& t) { return ns.Create(t, kRootIno, name, a); });
    if (!r.ok()) _exit(3);
    std::string line = name + " " + std::to_string(r->inode.ino) + "\n";
    if (::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) _exit(4);
  }
}

TEST(RocksCrashTest, AcknowledgedCreatesSurviveSigkill) {
  if (const char* dir = std::getenv(kDirEnv)) {
    RunChild(dir, std::atoi(std::getenv(kFdEnv)), std::getenv(kRoundEnv));
  }
  testing::TempDir tmp;
  const std::string path = tmp.path() + "/db";
  {
    auto store = OpenDb(path);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    Namespace ns(store->get(), kFs);
    ASSERT_TRUE(RunTxn(**store, [&](Txn& t) { return ns.Mkfs(t, 0755, 0, 0); }).ok());
  }

  std::map<std::string, Ino> acked;
  constexpr int kRounds = 3;
  for (int round = 0; round < kRounds; ++round) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    // Everything the child needs is built before fork: only exec runs after it.
    std::vector<std::string> env_strings = {std::string(kDirEnv) + "=" + path,
                                            std::string(kFdEnv) + "=" + std::to_string(fds[1]),
                                            std::string(kRoundEnv) + "=" + std::to_string(round)};
    std::vector<char*> envp;
    for (char** e = environ; *e; ++e) envp.push_back(*e);
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::string filter = std::string("--gtest_filter=") + kTestName;
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      int devnull = ::open("/dev/null", O_WRONLY);  // keep the child's gtest chatter out
      ::dup2(devnull, 1);
      ::execle("/proc/self/exe", "meta_test", filter.c_str(), static_cast<char*>(nullptr),
               envp.data());
      _exit(127);
    }
    ::close(fds[1]);
    // Whatever assertion fails below, the child does not outlive the test.
    std::unique_ptr<pid_t, void (*)(pid_t*)> reaper(&pid, [](pid_t* p) {
      if (*p > 0) {
        ::kill(*p, SIGKILL);
        ::waitpid(*p, nullptr, 0);
      }
    });
    FILE* in = ::fdopen(fds[0], "r");
    // Kill after a different number of acknowledgements each round.
    const int want = 40 + 30 * round;
    int got = 0;
    char line[256];
    while (got < want && std::fgets(line, sizeof line, in)) {
      char name[200];
      unsigned long long ino;
      ASSERT_EQ(std::sscanf(line, "%199s %llu", name, &ino), 2) << line;
      acked[name] = ino;
      if (++got == want) ::kill(pid, SIGKILL);  // right after the report
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    pid = 0;  // reaped
    std::fclose(in);
    ASSERT_EQ(got, want) << "child exited early, status " << status;
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;

    auto store = OpenDb(path);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    Namespace ns(store->get(), kFs);
    for (const auto& [name, ino] : acked) {
      auto d = RunTxn(**store, [&](Txn& t) { return ns.Lookup(t, kRootIno, name); });
      ASSERT_TRUE(d.ok()) << name << ": " << d.status().ToString();
      EXPECT_EQ(d->ino, ino);
      auto attr = RunTxn(**store, [&](Txn& t) { return ns.GetAttr(t, ino); });
      ASSERT_TRUE(attr.ok()) << name;
    }
    auto page = RunTxn(**store, [&](Txn& t) { return ns.ReadDir(t, kRootIno, 0, 100000); });
    ASSERT_TRUE(page.ok());
    // Per round at most one commit may have finished without its report getting through.
    EXPECT_GE(page->entries.size(), acked.size());
    EXPECT_LE(page->entries.size(), acked.size() + round + 1);
  }
}

// --- Fail-stop on a failed WAL sync ---

constexpr const char* kFailDirEnv = "LOOM_META_FAILSTOP_DIR";
constexpr const char* kFailStopMessage = "WAL sync failed";

bool IsWal(const std::string& path) { return path.size() > 4 && path.ends_with(".log"); }

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
