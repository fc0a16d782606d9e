// The WAL written over zeros (wal_prewrite.h) on the real file system: what a killed process
// leaves opens with every commit, a write torn at a sector is cut back to the last whole
// record, and damage that is not a torn last write is still refused. The power-cut model
// (FaultFs, torn overwrites included) runs in rocks_crash_test.cc.
#include "meta/wal_prewrite.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "meta/rocks_kv.h"
#include "meta/test_util.h"

namespace loom::meta {
namespace {

namespace fs = std::filesystem;

Result<std::unique_ptr<RocksKvStore>> Open(const std::string& path) {
  RocksKvStore::Options o;
  o.path = path;
  return RocksKvStore::Open(o);
}

Status Put(KvStore& s, const std::string& k, const std::string& v) {
  return RunTxn(s, [&](Txn& t) { return t.Put(k, v); });
}

std::optional<std::string> Get(KvStore& s, const std::string& k) {
  auto v = RunTxn(s, [&](Txn& t) { return t.Get(k); });
  EXPECT_TRUE(v.ok()) << v.status().ToString();
  return v.ok() ? *v : std::nullopt;
}

std::string WalOf(const std::string& dir) {
  std::string wal;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n.size() > 4 && n.substr(n.size() - 4) == ".log") wal = e.path().string();
  }
  return wal;
}

std::string ReadFile(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteFile(const std::string& p, const std::string& d) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(d.data(), static_cast<std::streamsize>(d.size()));
}

// One past the last non-zero byte.
size_t LogEnd(const std::string& d) {
  size_t n = d.size();
  while (n > 0 && d[n - 1] == '\0') --n;
  return n;
}

// A store with `n` acknowledged commits, the last one `last_value` long, copied while it is
// open: the files as a process killed at that moment leaves them (the page cache survives).
class WalPrewriteTest : public ::testing::Test {
 protected:
  void Build(int n, size_t last_value) {
    live_ = tmp_.path() + "/live";
    copy_ = tmp_.path() + "/copy";
    auto store = Open(live_);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    for (int i = 0; i < n; ++i) {
      const std::string v = i + 1 == n ? std::string(last_value, 'x') : "v" + std::to_string(i);
      ASSERT_TRUE(Put(**store, "k" + std::to_string(i), v).ok());
    }
    const std::string wal = WalOf(live_);
    ASSERT_FALSE(wal.empty());
    const std::string d = ReadFile(wal);
    // Written ahead: the file runs on in zeros past its records, to a whole chunk.
    EXPECT_EQ(d.size() % (uint64_t{1} << 20), 0u) << d.size();
    EXPECT_LT(LogEnd(d), d.size());
    fs::copy(live_, copy_, fs::copy_options::recursive);
    store->reset();
    wal_ = WalOf(copy_);
  }

  testing::TempDir tmp_;
  std::string live_, copy_, wal_;
};

TEST_F(WalPrewriteTest, AKilledStoreOpensWithEveryCommitAndAPlainLog) {
  Build(200, 10);
  const uint64_t size_before = fs::file_size(wal_);
  auto rep = RepairWalFile(wal_);
  ASSERT_TRUE(rep.ok()) << rep.status().ToString();
  EXPECT_EQ(rep->truncated, 1);
  EXPECT_EQ(rep->torn, 0);
  const std::string d = ReadFile(wal_);
  EXPECT_EQ(LogEnd(d), d.size());  // the zeros are gone, the records are not
  EXPECT_EQ(rep->bytes_cut, size_before - d.size());
  // A second look finds nothing to do.
  auto again = RepairWalFile(wal_);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->truncated, 0);
  auto store = Open(copy_);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  for (int i = 0; i < 200; ++i) EXPECT_TRUE(Get(**store, "k" + std::to_string(i)).has_value()) << i;
}

TEST_F(WalPrewriteTest, AWriteTornAtASectorIsCutBackToTheLastWholeRecord) {
  Build(50, 3000);  // the last record spans several 512-byte sectors
  std::string d = ReadFile(wal_);
  const size_t end = LogEnd(d);
  // The device wrote the record's first sectors, not its last: zeros from a sector inside it.
  const size_t torn_at = (end - 1500) / 512 * 512;
  std::fill(d.begin() + static_cast<long>(torn_at), d.end(), '\0');
  WriteFile(wal_, d);
  // The store repairs it as it opens (WalFs, while RocksDB replays the log).
  auto store = Open(copy_);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  for (int i = 0; i < 49; ++i) EXPECT_TRUE(Get(**store, "k" + std::to_string(i)).has_value()) << i;
  EXPECT_FALSE(Get(**store, "k49").has_value());  // the torn one, never acknowledged
  store->reset();
  // RepairWalFile alone (the store replayed and retired that log): the same cut, as torn.
  WriteFile(wal_, d);
  auto rep = RepairWalFile(wal_);
  ASSERT_TRUE(rep.ok()) << rep.status().ToString();
  EXPECT_EQ(rep->truncated, 1);
  EXPECT_EQ(rep->torn, 1);
  EXPECT_LT(fs::file_size(wal_), torn_at);
}

TEST_F(WalPrewriteTest, ALastRecordDamagedAtItsEndIsNotTakenForATornWrite) {
  Build(50, 3000);
  std::string d = ReadFile(wal_);
  d[LogEnd(d) - 1] ^= 0x5a;  // its last byte: the record ends where it should, but wrong
  WriteFile(wal_, d);
  auto rep = RepairWalFile(wal_);
  ASSERT_TRUE(rep.ok()) << rep.status().ToString();
  EXPECT_EQ(rep->truncated, 0);
  auto store = Open(copy_);
  EXPECT_FALSE(store.ok()) << "an acknowledged record was damaged: RocksDB must refuse";
}

TEST_F(WalPrewriteTest, DamageFollowedByMoreRecordsIsLeftForRocksDbToRefuse) {
  Build(200, 10);
  std::string d = ReadFile(wal_);
  d[20] ^= 0x01;  // inside the first record's payload
  WriteFile(wal_, d);
  auto rep = RepairWalFile(wal_);
  ASSERT_TRUE(rep.ok()) << rep.status().ToString();
  EXPECT_EQ(rep->truncated, 0);
  EXPECT_EQ(ReadFile(wal_), d);  // untouched
  auto store = Open(copy_);
  EXPECT_FALSE(store.ok());
}

TEST_F(WalPrewriteTest, ACleanCloseLeavesAPlainLogAndWithoutPrewriteTheFileJustGrows) {
  const std::string path = tmp_.path() + "/plain";
  {
    RocksKvStore::Options o;
    o.path = path;
    o.wal_prewrite_bytes = 0;
    auto store = RocksKvStore::Open(o);
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE(Put(**store, "a", "b").ok());
    const std::string d = ReadFile(WalOf(path));
    EXPECT_EQ(LogEnd(d), d.size());
  }
  {
    auto store = Open(path);  // prewrite on, over a plain log
    ASSERT_TRUE(store.ok());
    EXPECT_EQ(Get(**store, "a"), std::optional<std::string>("b"));
    ASSERT_TRUE(Put(**store, "c", "d").ok());
  }
  for (const auto& e : fs::directory_iterator(path)) {
    const std::string n = e.path().filename().string();
    if (n.size() > 4 && n.substr(n.size() - 4) == ".log") {
      const std::string d = ReadFile(e.path().string());
      EXPECT_EQ(LogEnd(d), d.size()) << n << ": zeros left after a clean close";
    }
  }
  auto store = Open(path);
  ASSERT_TRUE(store.ok());
  EXPECT_EQ(Get(**store, "c"), std::optional<std::string>("d"));
}

// Direct mode, on the file system below (wal_prewrite.cc, PrewrittenFile): a record that
// lands on the zeros is in memory until Sync, which writes it with the blocks around it; a
// record past the zeros is written at once (zeros ahead with it); a truncated log goes on from
// its new end; a clean close leaves exactly the log.
TEST(WalDirectTest, RecordsReachTheFileWhenSyncedAndACloseLeavesThePlainLog) {
  testing::TempDir tmp;
  const std::string path = tmp.path() + "/000007.log";
  auto wal_fs = std::make_shared<WalFs>(rocksdb::FileSystem::Default(), 8192, /*direct=*/true);
  std::unique_ptr<rocksdb::FSWritableFile> f;
  const rocksdb::IOOptions io;
  ASSERT_TRUE(wal_fs->NewWritableFile(path, rocksdb::FileOptions(), &f, nullptr).ok());
  if (wal_fs->direct_files() == 0) GTEST_SKIP() << "no O_DIRECT on " << tmp.path();
  EXPECT_FALSE(f->use_direct_io());  // RocksDB sees a buffered file

  // A new file has no zeros: the first record is written at once, with zeros to a whole
  // chunk past it.
  ASSERT_TRUE(f->Append("first;", io, nullptr).ok());
  std::string d = ReadFile(path);
  EXPECT_EQ(d.size(), 16384u);
  EXPECT_EQ(d.substr(0, 6), "first;");
  EXPECT_EQ(LogEnd(d), 6u);

  // On the zeros: memory only until the sync.
  ASSERT_TRUE(f->Append("second;", io, nullptr).ok());
  EXPECT_EQ(LogEnd(ReadFile(path)), 6u);
  EXPECT_EQ(f->GetFileSize(io, nullptr), 13u);
  ASSERT_TRUE(f->Sync(io, nullptr).ok());
  d = ReadFile(path);
  EXPECT_EQ(d.substr(0, LogEnd(d)), "first;second;");
  std::string log = "first;second;";

  // Records across block boundaries; once the log is within half a chunk of the zeros' end,
  // the sync extends them to a chunk past it, in the same write.
  for (const char c : {'b', 'c'}) {
    const std::string rec(7000, c);
    ASSERT_TRUE(f->Append(rec, io, nullptr).ok());
    log += rec;
    EXPECT_EQ(ReadFile(path).size(), 16384u);
    ASSERT_TRUE(f->Sync(io, nullptr).ok());
    d = ReadFile(path);
    EXPECT_EQ(d.substr(0, LogEnd(d)), log);
  }
  EXPECT_EQ(d.size(), 24576u);  // 14 013 bytes of log: zeros to a chunk past it

  // Past the zeros at once: written by the append itself, zeros ahead with it.
  const std::string huge(20000, 'h');
  ASSERT_TRUE(f->Append(huge, io, nullptr).ok());
  log += huge;
  d = ReadFile(path);
  EXPECT_EQ(d.substr(0, LogEnd(d)), log);
  EXPECT_EQ(d.size(), 49152u);
  ASSERT_TRUE(f->Sync(io, nullptr).ok());

  // Truncated inside an earlier block, the log goes on from there.
  ASSERT_TRUE(f->Truncate(10, io, nullptr).ok());
  ASSERT_TRUE(f->Append("+tail", io, nullptr).ok());
  ASSERT_TRUE(f->Sync(io, nullptr).ok());
  d = ReadFile(path);
  EXPECT_EQ(d.substr(0, LogEnd(d)), "first;seco+tail");

  // Not synced, then closed: the close writes the record and cuts the zeros.
  ASSERT_TRUE(f->Append("!end", io, nullptr).ok());
  ASSERT_TRUE(f->Close(io, nullptr).ok());
  EXPECT_EQ(ReadFile(path), "first;seco+tail!end");
}

TEST(WalDirectTest, AStoreWritesItsLogDirectlyAndWithoutItThroughThePageCache) {
  testing::TempDir tmp;
  for (const bool direct : {true, false}) {
    SCOPED_TRACE(direct ? "direct" : "buffered");
    RocksKvStore::Options o;
    o.path = tmp.path() + (direct ? "/d" : "/b");
    o.wal_direct = direct;
    auto store = RocksKvStore::Open(o);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    if (direct && (*store)->stats().wal_direct_files == 0) {
      GTEST_SKIP() << "no O_DIRECT on " << tmp.path();
    }
    if (!direct) EXPECT_EQ((*store)->stats().wal_direct_files, 0u);
    for (int i = 0; i < 50; ++i) {
      ASSERT_TRUE(Put(**store, "k" + std::to_string(i), std::string(300, 'v')).ok());
    }
    // Every acknowledged commit is in the file while the store is open (a killed process
    // leaves that): each was synced before Put returned.
    fs::copy(o.path, o.path + ".copy", fs::copy_options::recursive);
    store->reset();
    auto copy = Open(o.path + ".copy");
    ASSERT_TRUE(copy.ok()) << copy.status().ToString();
    for (int i = 0; i < 50; ++i) {
      EXPECT_EQ(Get(**copy, "k" + std::to_string(i)), std::optional<std::string>(std::string(300, 'v')));
    }
  }
}

}  // namespace
}  // namespace loom::meta
