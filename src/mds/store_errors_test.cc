// The metadata server's start-up, recovery, registry, scrub and GC when the metadata store
// fails (FlakyStore: a disk error on one kind of record). Each must stop with the store's
// error rather than act on a guess, and a run after the store recovers must finish the job
// without losing or doubling anything.
#include <filesystem>
#include <map>
#include <set>

#include <gtest/gtest.h>

#include "mds/flaky_kv.h"
#include "mds/fs_identity.h"
#include "mds/gc_worker.h"
#include "mds/scrub.h"
#include "mds/test_ds.h"
#include "meta/mem_kv.h"
#include "meta/namespace.h"

namespace loom::mds {
namespace {

using namespace loom::nfs3;  // NFSv3 constants keep their RFC 1813 names
using testing::Capture;
using testing::Config;
using testing::FastOptions;
using testing::FlakyStore;
using testing::ReadAll;
using testing::TestDs;
using testing::WriteFile;
namespace fsys = std::filesystem;
namespace tag = meta::tag;

using testing::kFs;

using testing::Has;

class StoreErrorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 2; i++) {
      ds_.push_back(std::make_unique<TestDs>());
      ds_.back()->Start();
    }
  }
  std::vector<DataServerConfig> Given() const {
    std::vector<DataServerConfig> out;
    for (const auto& d : ds_) out.push_back(Config(0, d->address()));
    return out;
  }
  Result<StartPlan> Plan(StartMode mode = StartMode::kNormal) {
    return PlanStart(store_, kFs, Given(), mode, FastOptions());
  }
  // A pool over the servers at ids 1 and 2, with the intent journal on the flaky store.
  void MakePool() {
    auto p = DataServerPool::Create({Config(1, ds_[0]->address()), Config(2, ds_[1]->address())},
                                    FastOptions());
    LOOM_ASSERT_OK(p);
    pool_ = std::move(*p);
    pool_->SetCreateJournal(&journal_);
  }
  std::string Path(uint32_t ds, meta::Ino ino) {
    return ds_[ds - 1]->Loom(FsDirName(kFs) + "/" + DataFileName(ino));
  }
  size_t Count(const std::string& prefix) {
    size_t n = 0;
    EXPECT_TRUE(meta::RunTxn(base_, [&](meta::Txn& t) {
                  n = 0;
                  return t.Scan(meta::KeyRange::Prefix(prefix), 0,
                                [&](std::string_view, std::string_view) { return ++n, true; });
                }).ok());
    return n;
  }
  static void ExpectInjected(const Status& s) {
    EXPECT_EQ(s.code(), Code::kIo) << s.ToString();
    EXPECT_TRUE(Has(s.ToString(), "injected store failure")) << s.ToString();
  }

  std::vector<std::unique_ptr<TestDs>> ds_;
  meta::MemKvStore base_;
  FlakyStore store_{&base_};
  meta::Namespace ns_{&store_, kFs};
  StoreJournal journal_{&store_};
  std::unique_ptr<DataServerPool> pool_;
};

TEST_F(StoreErrorsTest, StartRefusesWhenTheStoreCannotBeRead) {
  for (char t : {tag::kIdentity, tag::kFs, tag::kDataServer}) {
    store_.FailOn(t, t == tag::kDataServer ? FlakyStore::kScan : FlakyStore::kGet);
    auto plan = Plan();
    ASSERT_FALSE(plan.ok()) << t;
    ExpectInjected(plan.status());
    EXPECT_TRUE(Has(plan.status().message(), "reading the metadata store")) << plan.status().ToString();
    // Refused before any data server was touched.
    EXPECT_FALSE(fsys::exists(ds_[0]->Loom("ds-id")));
  }
}

TEST_F(StoreErrorsTest, StartThatCannotRecordItsDecisionFailsAndCanBeRetried) {
  store_.FailOn(tag::kIdentity, FlakyStore::kPut);
  auto plan = Plan();
  ASSERT_FALSE(plan.ok());
  ExpectInjected(plan.status());
  EXPECT_EQ(Count(std::string(1, tag::kIdentity)), 0u);
  EXPECT_EQ(Count(meta::keys::DataServerPrefix()), 0u);  // one transaction: nothing half-written
  store_.FailOn(tag::kDataServer, FlakyStore::kPut);
  ExpectInjected(Plan().status());
  EXPECT_EQ(Count(std::string(1, tag::kIdentity)), 0u);
  store_.Heal();
  auto ok = Plan();
  LOOM_ASSERT_OK(ok);
  EXPECT_EQ(Count(meta::keys::DataServerPrefix()), 2u);
}

TEST_F(StoreErrorsTest, IntentJournalFailureCreatesNothing) {
  MakePool();
  for (int ops : {FlakyStore::kGet, FlakyStore::kPut}) {
    store_.FailOn(tag::kPending, ops);
    auto l = pool_->CreateDataFile(kFs, 5);
    ASSERT_FALSE(l.ok());
    ExpectInjected(l.status());
    // No data file without its intent record (a crash would leave it unaccounted for).
    EXPECT_FALSE(fsys::exists(Path(1, 5)));
    EXPECT_FALSE(fsys::exists(Path(2, 5)));
  }
  store_.FailOn(tag::kPending, FlakyStore::kDelete);
  ExpectInjected(journal_.Cancel(kFs, 5, 1, 0));
}

TEST_F(StoreErrorsTest, ResolveIntentsStopsAndResumes) {
  MakePool();
  auto l = pool_->CreateDataFile(kFs, 5);  // never committed: a leftover
  LOOM_ASSERT_OK(l);
  const uint32_t ds = l->mirrors[0].files[0].ds_id;
  store_.FailOn(tag::kPending, FlakyStore::kScan);
  ExpectInjected(ResolveIntents(store_, kFs, *pool_).status());
  store_.FailOn(tag::kLayout, FlakyStore::kGet);
  ExpectInjected(ResolveIntents(store_, kFs, *pool_).status());
  EXPECT_TRUE(fsys::exists(Path(ds, 5)));  // nothing removed without knowing its layout
  // The file goes, but its record cannot be deleted: the next run finishes.
  store_.FailOn(tag::kPending, FlakyStore::kDelete);
  ExpectInjected(ResolveIntents(store_, kFs, *pool_).status());
  EXPECT_FALSE(fsys::exists(Path(ds, 5)));
  EXPECT_EQ(Count(meta::keys::PendingPrefix(kFs)), 1u);
  store_.Heal();
  auto r = ResolveIntents(store_, kFs, *pool_);
  LOOM_ASSERT_OK(r);
  EXPECT_EQ(*r, 1u);
  EXPECT_EQ(Count(meta::keys::PendingPrefix(kFs)), 0u);
}

TEST_F(StoreErrorsTest, RegistryWritesThatFail) {
  auto plan = Plan();
  LOOM_ASSERT_OK(plan);
  auto p = DataServerPool::Create(plan->servers, FastOptions());
  LOOM_ASSERT_OK(p);
  DataServerPool& pool = **p;
  store_.FailOn(tag::kDataServer, FlakyStore::kScan);
  ExpectInjected(SaveRegistry(store_, pool));
  store_.FailOn(tag::kDataServer, FlakyStore::kPut);
  ExpectInjected(SaveRegistry(store_, pool));
  ASSERT_TRUE(pool.RemoveServer(plan->servers[1].id).ok());
  store_.FailOn(tag::kDataServer, FlakyStore::kDelete);
  ExpectInjected(SaveRegistry(store_, pool));
  EXPECT_EQ(Count(meta::keys::DataServerPrefix()), 2u);
  store_.Heal();
  ASSERT_TRUE(SaveRegistry(store_, pool).ok());
  EXPECT_EQ(Count(meta::keys::DataServerPrefix()), 1u);
}

TEST_F(StoreErrorsTest, AddedServerThatCannotBeRecordedIsNotUsed) {
  // `loom ds add` that fails must not leave the server in use: files placed there would
  // name an id the store does not know, and the next start would not bring the server back.
  auto plan = Plan();
  LOOM_ASSERT_OK(plan);
  auto p = DataServerPool::Create(plan->servers, FastOptions());
  LOOM_ASSERT_OK(p);
  DataServerPool& pool = **p;
  TestDs extra;
  extra.Start();
  store_.FailOn(tag::kDataServer, FlakyStore::kPut);
  auto id = AddDataServer(store_, pool, Config(0, extra.address()));
  ASSERT_FALSE(id.ok());
  ExpectInjected(id.status());
  EXPECT_EQ(pool.Servers().size(), 2u);
  for (meta::Ino ino = 10; ino < 16; ino++) {
    auto l = pool.CreateDataFile(kFs, ino);
    LOOM_ASSERT_OK(l);
    EXPECT_LE(l->mirrors[0].files[0].ds_id, plan->servers.back().id);
  }
  // Once the store works, adding it again succeeds.
  store_.Heal();
  auto again = AddDataServer(store_, pool, Config(0, extra.address()));
  LOOM_ASSERT_OK(again);
  EXPECT_EQ(Count(meta::keys::DataServerPrefix()), 3u);
}

class AdoptStoreErrorsTest : public StoreErrorsTest {
 protected:
  void SetUp() override {
    StoreErrorsTest::SetUp();
    for (size_t i = 0; i < 2; i++) {
      fsys::create_directories(ds_[i]->Loom(id_));
      WriteFile(ds_[i]->Loom(id_ + "/.owner"), id_ + "\n");
    }
    contents_ = {{DataFileName(5), "five on 0"}, {DataFileName(9), "nine on 0"}};
    for (const auto& [name, text] : contents_) WriteFile(ds_[0]->Loom(id_ + "/" + name), text);
    WriteFile(ds_[1]->Loom(id_ + "/" + DataFileName(0x20)), "thirty-two on 1");
    contents_[DataFileName(0x20)] = "thirty-two on 1";
    auto plan = Plan(StartMode::kRecover);
    LOOM_ASSERT_OK(plan);
    auto p = DataServerPool::Create(plan->servers, FastOptions());
    LOOM_ASSERT_OK(p);
    pool_ = std::move(*p);
    pool_->SetTree(kFs, plan->identity.tree, UuidHex(plan->identity.uuid));
    ASSERT_TRUE(meta::RunTxn(store_, [&](meta::Txn& t) { return ns_.Mkfs(t, 0755, 0, 0); }).ok());
  }
  // Every byte the servers held, read back through the layouts of /lost+found.
  std::multiset<std::string> Recovered() {
    std::multiset<std::string> out;
    Status s = meta::RunTxn(store_, [&](meta::Txn& t) -> Status {
      out.clear();
      auto lf = ns_.Lookup(t, ns_.root(), kLostFound);
      if (!lf.ok()) return lf.status();
      auto page = ns_.ReadDir(t, lf->ino, 0, 100);
      if (!page.ok()) return page.status();
      for (const auto& d : page->entries) {
        auto l = ns_.GetLayout(t, d.ino);
        if (!l.ok()) continue;  // an entry whose layout never made it
        auto r = pool_->Read(*l, 0, 100);
        if (!r.ok()) return r.status();
        out.insert(r->data.str());
      }
      return Status::Ok();
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
    return out;
  }
  std::multiset<std::string> All() const {
    std::multiset<std::string> out;
    for (const auto& [name, text] : contents_) out.insert(text);
    return out;
  }

  const std::string id_ = "00112233445566778899aabbccddeeff";
  std::map<std::string, std::string> contents_;
};

TEST_F(AdoptStoreErrorsTest, FailuresBeforeAnyRenameChangeNothingOnTheServers) {
  const std::vector<std::pair<char, int>> faults = {
      {tag::kLayout, FlakyStore::kScan},    // which files layouts hold
      {tag::kInoAlloc, FlakyStore::kGet},   // moving the allocator past the numbers found
      {tag::kInoAlloc, FlakyStore::kPut},
      {tag::kDentry, FlakyStore::kGet},     // finding /lost+found
      {tag::kDentry, FlakyStore::kPut},     // making it
  };
  for (const auto& [t, ops] : faults) {
    store_.FailOn(t, ops);
    auto n = AdoptTree(store_, ns_, *pool_);
    ASSERT_FALSE(n.ok()) << t << " " << ops;
    ExpectInjected(n.status());
    for (const auto& [name, text] : contents_) {
      const size_t i = text.find("on 1") != std::string::npos ? 1 : 0;
      EXPECT_EQ(ReadAll(ds_[i]->Loom(id_ + "/" + name)), text) << t << " " << ops;
    }
  }
  store_.Heal();
  auto n = AdoptTree(store_, ns_, *pool_);
  LOOM_ASSERT_OK(n);
  EXPECT_EQ(*n, 3u);
  EXPECT_EQ(Recovered(), All());
}

TEST_F(AdoptStoreErrorsTest, InterruptedAdoptionLosesNoBytes) {
  // The layout of the first adopted file cannot be written (after its data file took the new
  // inode's name); then the entry of a later one cannot be made. Run again: every byte is in
  // /lost+found exactly once.
  store_.FailOn(tag::kLayout, FlakyStore::kPut);
  auto n = AdoptTree(store_, ns_, *pool_);
  ASSERT_FALSE(n.ok());
  ExpectInjected(n.status());
  store_.FailOn(tag::kDentry, FlakyStore::kPut, 2);  // lost+found exists; one entry goes in
  n = AdoptTree(store_, ns_, *pool_);
  ASSERT_FALSE(n.ok());
  ExpectInjected(n.status());
  store_.Heal();
  n = AdoptTree(store_, ns_, *pool_);
  LOOM_ASSERT_OK(n);
  EXPECT_EQ(Recovered(), All());
  n = AdoptTree(store_, ns_, *pool_);
  LOOM_ASSERT_OK(n);
  EXPECT_EQ(*n, 0u);
  EXPECT_EQ(Recovered(), All());
}

class ScrubStoreErrorsTest : public StoreErrorsTest {
 protected:
  void SetUp() override {
    StoreErrorsTest::SetUp();
    MakePool();
    ASSERT_TRUE(meta::RunTxn(store_, [&](meta::Txn& t) { return ns_.Mkfs(t, 0755, 0, 0); }).ok());
  }
  Result<ScrubReport> Run(bool repair, std::string* text) {
    Result<ScrubReport> rep = Status::Internal("not run");
    *text = Capture([&](std::FILE* out) { rep = Scrub(store_, kFs, *pool_, repair, out); });
    return rep;
  }
};

TEST_F(ScrubStoreErrorsTest, UnreadableStoreFailsTheScrub) {
  for (char t : {tag::kLayout, tag::kGc, tag::kPending}) {
    store_.FailOn(t, FlakyStore::kScan);
    std::string text;
    auto rep = Run(true, &text);
    ASSERT_FALSE(rep.ok()) << t;
    ExpectInjected(rep.status());
    EXPECT_TRUE(text.empty()) << text;
  }
}

TEST_F(ScrubStoreErrorsTest, RepairsTheStoreRefusesAreReportedAsFailed) {
  auto l = pool_->CreateDataFilesOn(kFs, 5, Placement(), {1}, 0);  // orphan with its intent
  LOOM_ASSERT_OK(l);
  LOOM_ASSERT_OK(journal_.Intend(kFs, 6, 2, 0));                    // stale intent
  store_.FailOn(tag::kPending, FlakyStore::kDelete);
  std::string text;
  auto rep = Run(true, &text);
  LOOM_ASSERT_OK(rep);
  EXPECT_EQ(rep->orphans, 1u) << text;
  EXPECT_EQ(rep->stale_intents, 1u) << text;
  EXPECT_EQ(rep->repaired, 0u) << text;
  EXPECT_TRUE(Has(text, "proof=intent action=failed")) << text;
  EXPECT_TRUE(Has(text, "stale-intent ino=6 ds=2 action=failed")) << text;
  EXPECT_EQ(Count(meta::keys::PendingPrefix(kFs)), 2u);
  store_.Heal();
  rep = Run(true, &text);
  LOOM_ASSERT_OK(rep);
  // The orphan's file went the first time: both records are stale intents now.
  EXPECT_EQ(rep->orphans, 0u) << text;
  EXPECT_EQ(rep->stale_intents, 2u) << text;
  EXPECT_EQ(rep->repaired, 2u) << text;
  EXPECT_EQ(Count(meta::keys::PendingPrefix(kFs)), 0u);
}

TEST_F(StoreErrorsTest, GcPassStopsOnStoreErrorsAndLosesNoItem) {
  MakePool();
  ASSERT_TRUE(meta::RunTxn(store_, [&](meta::Txn& t) { return ns_.Mkfs(t, 0755, 0, 0); }).ok());
  auto c = meta::RunTxn(store_, [&](meta::Txn& t) { return ns_.Create(t, ns_.root(), "f", {}); });
  LOOM_ASSERT_OK(c);
  auto l = pool_->CreateDataFile(kFs, c->inode.ino);
  LOOM_ASSERT_OK(l);
  ASSERT_TRUE(meta::RunTxn(store_, [&](meta::Txn& t) { return ns_.SetLayout(t, c->inode.ino, *l); }).ok());
  auto gone = meta::RunTxn(store_, [&](meta::Txn& t) {
    return ns_.Unlink(t, ns_.root(), "f", [](meta::Ino) { return false; });
  });
  LOOM_ASSERT_OK(gone);
  const meta::DataFile f = l->mirrors[0].files[0];
  GcWorker gc(&store_, {&ns_}, pool_.get(), GcWorker::Options{1000, 10});
  store_.FailOn(tag::kGc, FlakyStore::kScan);
  ExpectInjected(gc.RunOnce().status());
  EXPECT_TRUE(fsys::exists(Path(f.ds_id, c->inode.ino)));
  store_.FailOn(tag::kPending, FlakyStore::kScan);
  ExpectInjected(gc.RunOnce().status());
  // The file is removed but its item cannot be deleted: it stays queued, and the next pass
  // (the file already gone) deletes it.
  store_.FailOn(tag::kGc, FlakyStore::kDelete);
  ExpectInjected(gc.RunOnce().status());
  EXPECT_FALSE(fsys::exists(Path(f.ds_id, c->inode.ino)));
  EXPECT_EQ(Count(meta::keys::GcPrefix(kFs)), 1u);
  store_.Heal();
  auto pass = gc.RunOnce();
  LOOM_ASSERT_OK(pass);
  EXPECT_EQ(pass->removed, 1u);
  EXPECT_EQ(Count(meta::keys::GcPrefix(kFs)), 0u);
  // Start and Stop are idempotent; the worker stops cleanly with nothing to do.
  gc.Start();
  gc.Start();
  gc.Kick();
  gc.Stop();
  gc.Stop();
  auto after = gc.RunOnce();
  LOOM_ASSERT_OK(after);
  EXPECT_EQ(after->removed + after->failed, 0u);
}

}  // namespace
}  // namespace loom::mds
