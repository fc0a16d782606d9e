// loom-mds --scrub (mds/scrub.h) against real loom-ds servers: each kind of finding, the
// records it must not mistake for one (GC queue, settled intents, foreign names), data servers
// it cannot reach, repairs that fail, and a damaged store.
#include "mds/scrub.h"

#include <filesystem>

#include <gtest/gtest.h>

#include "mds/fs_identity.h"
#include "mds/test_ds.h"
#include "meta/mem_kv.h"
#include "meta/namespace.h"

namespace loom::mds {
namespace {

using namespace loom::nfs3;  // NFSv3 constants keep their RFC 1813 names
using testing::Capture;
using testing::Config;
using testing::Faults;
using testing::FastOptions;
using testing::ReadAll;
using testing::TestDs;
using testing::WriteFile;
namespace fsys = std::filesystem;

using testing::kFs;

using testing::Has;

class ScrubTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 2; i++) {
      ds_.push_back(std::make_unique<TestDs>());
      ds_.back()->Start(&faults_[i]);
    }
    auto p = DataServerPool::Create({Config(1, ds_[0]->address()), Config(2, ds_[1]->address())},
                                    FastOptions());
    LOOM_ASSERT_OK(p);
    pool_ = std::move(*p);
    pool_->SetCreateJournal(&journal_);
    ASSERT_TRUE(meta::RunTxn(store_, [&](meta::Txn& t) { return ns_.Mkfs(t, 0755, 0, 0); }).ok());
  }
  // ds id -> its server's path of a data file
  std::string Path(uint32_t ds, meta::Ino ino, uint32_t gen = 0) {
    return ds_[ds - 1]->Loom(FsDirName(kFs) + "/" + DataFileName(ino, gen));
  }
  // A file whose data is on server `ds` (placement steered by the label-free 1x1 placement
  // onto that server through CreateDataFilesOn), its layout committed when `commit`.
  std::pair<meta::Ino, meta::Layout> File(const std::string& name, uint32_t ds, bool commit = true) {
    auto c = meta::RunTxn(store_, [&](meta::Txn& t) { return ns_.Create(t, ns_.root(), name, {}); });
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    auto l = pool_->CreateDataFilesOn(kFs, c->inode.ino, Placement(), {ds}, 0);
    EXPECT_TRUE(l.ok()) << l.status().ToString();
    if (commit) {
      EXPECT_TRUE(meta::RunTxn(store_, [&](meta::Txn& t) { return ns_.SetLayout(t, c->inode.ino, *l); }).ok());
    }
    return {c->inode.ino, *l};
  }
  Result<ScrubReport> Run(bool repair, std::string* text) {
    Result<ScrubReport> rep = Status::Internal("not run");
    *text = Capture([&](std::FILE* out) { rep = Scrub(store_, kFs, *pool_, repair, out); });
    return rep;
  }
  size_t Intents() {
    size_t n = 0;
    EXPECT_TRUE(meta::RunTxn(store_, [&](meta::Txn& t) {
                  n = 0;
                  return t.Scan(meta::KeyRange::Prefix(meta::keys::PendingPrefix(kFs)), 0,
                                [&](std::string_view, std::string_view) { return ++n, true; });
                }).ok());
    return n;
  }
  Status Put(const std::string& k, const std::string& v) {
    return meta::RunTxn(store_, [&](meta::Txn& t) { return t.Put(k, v); });
  }

  Faults faults_[2];
  std::vector<std::unique_ptr<TestDs>> ds_;
  meta::MemKvStore store_;
  meta::Namespace ns_{&store_, kFs};
  StoreJournal journal_{&store_};
  std::unique_ptr<DataServerPool> pool_;
};

TEST_F(ScrubTest, CleanFilesystem) {
  File("a", 1);
  File("b", 2);
  // Names in the tree that are not data files (the marker, editor leftovers, directories)
  // are none of scrub's business.
  WriteFile(ds_[0]->Loom(FsDirName(kFs) + "/notes.txt"), "x");
  fsys::create_directories(ds_[1]->Loom(FsDirName(kFs) + "/" + DataFileName(0x99)));
  std::string text;
  auto rep = Run(true, &text);
  LOOM_ASSERT_OK(rep);
  EXPECT_EQ(rep->layouts, 2u);
  EXPECT_EQ(rep->data_files, 2u);
  EXPECT_EQ(rep->inconsistencies(), 0u) << text;
  EXPECT_EQ(rep->repaired, 0u);
  EXPECT_EQ(text, "summary layouts=2 data_files=2 missing=0 orphans=0 stale_intents=0 unreachable=0 "
                  "repaired=0 unrepaired=0\n");
  EXPECT_TRUE(fsys::exists(ds_[1]->Loom(FsDirName(kFs) + "/" + DataFileName(0x99))));
}

TEST_F(ScrubTest, StaleIntentsAreReportedThenDeleted) {
  // Intents whose files were never made (a crash before the CREATE), one of a later name
  // generation.
  LOOM_ASSERT_OK(journal_.Intend(kFs, 40, 1, 0));
  LOOM_ASSERT_OK(journal_.Intend(kFs, 41, 2, 3));
  std::string text;
  auto rep = Run(false, &text);
  LOOM_ASSERT_OK(rep);
  EXPECT_EQ(rep->stale_intents, 2u);
  EXPECT_EQ(rep->unrepaired(), 2u);
  EXPECT_TRUE(Has(text, "stale-intent ino=40 ds=1 action=none\n")) << text;
  EXPECT_TRUE(Has(text, "stale-intent ino=41 ds=2 gen=3 action=none\n")) << text;
  EXPECT_EQ(Intents(), 2u);
  rep = Run(true, &text);
  LOOM_ASSERT_OK(rep);
  EXPECT_EQ(rep->repaired, 2u);
  EXPECT_EQ(rep->unrepaired(), 0u);
  EXPECT_TRUE(Has(text, "stale-intent ino=41 ds=2 gen=3 action=deleted\n")) << text;
  EXPECT_EQ(Intents(), 0u);
}

TEST_F(ScrubTest, IntentOfAFileALayoutHoldsIsStaleButTheFileStays) {
  // The layout was committed by a path that left the intent behind (a raw write here).
  auto c = meta::RunTxn(store_, [&](meta::Txn& t) { return ns_.Create(t, ns_.root(), "f", {}); });
  LOOM_ASSERT_OK(c);
  auto l = pool_->CreateDataFilesOn(kFs, c->inode.ino, Placement(), {2}, 0);
  LOOM_ASSERT_OK(l);
  ASSERT_TRUE(Put(meta::keys::Layout(kFs, c->inode.ino), meta::Encode(*l)).ok());
  std::string text;
  auto rep = Run(true, &text);
  LOOM_ASSERT_OK(rep);
  EXPECT_EQ(rep->orphans, 0u) << text;
  EXPECT_EQ(rep->missing, 0u) << text;
  EXPECT_EQ(rep->stale_intents, 1u) << text;
  EXPECT_TRUE(Has(text, "stale-intent ino=" + std::to_string(c->inode.ino) + " ds=2 action=deleted")) << text;
  EXPECT_TRUE(fsys::exists(Path(2, c->inode.ino)));
  EXPECT_EQ(Intents(), 0u);
}

TEST_F(ScrubTest, QueuedFilesAreNeitherOrphansNorMissing) {
  auto [ino, l] = File("f", 1, false);
  ASSERT_TRUE(meta::RunTxn(store_, [&](meta::Txn& t) -> Status {
                meta::GcItem g{ino, l.mirrors[0].files[0], {}};
                LOOM_RETURN_IF_ERROR(t.Put(meta::keys::Gc(kFs, ino, 1, g.file.fh), meta::Encode(g)));
                return t.Delete(meta::keys::Pending(kFs, ino, 1, 0));
              }).ok());
  std::string text;
  auto rep = Run(true, &text);
  LOOM_ASSERT_OK(rep);
  EXPECT_EQ(rep->inconsistencies(), 0u) << text;
  EXPECT_TRUE(fsys::exists(Path(1, ino)));  // the GC worker's to remove, not scrub's
}

TEST_F(ScrubTest, UnreachableServerIsReportedOnceAndNothingThereIsJudged) {
  File("a", 2);
  File("b", 2);
  auto [c, lc] = File("c", 1);
  LOOM_ASSERT_OK(journal_.Intend(kFs, 77, 2, 0));  // its file may well be there
  ds_[1]->Stop();
  std::string text;
  auto rep = Run(true, &text);
  LOOM_ASSERT_OK(rep);
  EXPECT_EQ(rep->unreachable, 1u) << text;
  EXPECT_EQ(rep->missing, 0u) << text;
  EXPECT_EQ(rep->stale_intents, 0u) << text;
  EXPECT_EQ(rep->unrepaired(), 1u);
  EXPECT_TRUE(Has(text, "unreachable ds=2 error=")) << text;
  EXPECT_EQ(text.find("unreachable"), text.rfind("unreachable ds="));  // one line
  EXPECT_EQ(Intents(), 1u);  // kept for a scrub that can check
  EXPECT_TRUE(Has(text, "summary layouts=3 data_files=3 missing=0 orphans=0 stale_intents=0 unreachable=1")) << text;
}

TEST_F(ScrubTest, ServerThatCannotBeListedIsUnreachable) {
  File("a", 1);
  WriteFile(Path(2, 0x55), "orphan?");
  faults_[1].Fail(NFSPROC3_READDIRPLUS, NFS3ERR_IO);
  std::string text;
  auto rep = Run(true, &text);
  LOOM_ASSERT_OK(rep);
  EXPECT_EQ(rep->unreachable, 1u) << text;
  EXPECT_EQ(rep->orphans, 0u) << text;
  EXPECT_TRUE(Has(text, "unreachable ds=2 error=\"")) << text;
  EXPECT_EQ(ReadAll(Path(2, 0x55)), "orphan?");
}

TEST_F(ScrubTest, CheckThatFailsIsUnreachableNotMissing) {
  // A GETATTR refused (not STALE): the file may be there; "missing" would be a lie.
  auto [ino, l] = File("a", 1);
  faults_[0].Fail(NFSPROC3_GETATTR, NFS3ERR_ACCES);
  std::string text;
  auto rep = Run(false, &text);
  LOOM_ASSERT_OK(rep);
  EXPECT_EQ(rep->missing, 0u) << text;
  EXPECT_EQ(rep->unreachable, 1u) << text;
  EXPECT_TRUE(fsys::exists(Path(1, ino)));
}

TEST_F(ScrubTest, RepairsThatFailAreReportedAndChangeNothing) {
  auto [half, lh] = File("half", 1, false);  // intent on record, no layout: proof it is ours
  WriteFile(Path(2, 0x66, 2), "stranger");  // no record at all
  faults_[0].Fail(NFSPROC3_REMOVE, NFS3ERR_ROFS);
  faults_[1].Fail(NFSPROC3_RENAME, NFS3ERR_ACCES);
  std::string text;
  auto rep = Run(true, &text);
  LOOM_ASSERT_OK(rep);
  EXPECT_EQ(rep->orphans, 2u) << text;
  EXPECT_EQ(rep->repaired, 0u) << text;
  EXPECT_EQ(rep->unrepaired(), 2u);
  EXPECT_TRUE(Has(text, "orphan-data ds=1 file=loom/" + FsDirName(kFs) + "/" + DataFileName(half) +
                            " size=0 proof=intent action=failed")) << text;
  EXPECT_TRUE(Has(text, "orphan-data ds=2 file=loom/" + FsDirName(kFs) + "/" + DataFileName(0x66, 2) +
                            " size=8 proof=none action=failed")) << text;
  EXPECT_TRUE(fsys::exists(Path(1, half)));
  EXPECT_EQ(Intents(), 1u);  // the proof stays with the file
  EXPECT_EQ(ReadAll(Path(2, 0x66, 2)), "stranger");
  // Once the servers allow it, the next scrub repairs both.
  faults_[0].Clear();
  faults_[1].Clear();
  rep = Run(true, &text);
  LOOM_ASSERT_OK(rep);
  EXPECT_EQ(rep->repaired, 2u) << text;
  EXPECT_FALSE(fsys::exists(Path(1, half)));
  EXPECT_EQ(Intents(), 0u);
  EXPECT_EQ(ReadAll(ds_[1]->Loom(std::string(kLostFound) + "/" + FsDirName(kFs) + "-" + DataFileName(0x66, 2))),
            "stranger");
}

TEST_F(ScrubTest, DamagedStoreFailsTheScrub) {
  File("a", 1);
  // A layout key of the wrong length.
  ASSERT_TRUE(Put(meta::keys::LayoutPrefix(kFs) + "xy", "whatever").ok());
  std::string text;
  auto rep = Run(false, &text);
  ASSERT_FALSE(rep.ok());
  EXPECT_TRUE(Has(rep.status().message(), "malformed layout key")) << rep.status().ToString();
  EXPECT_TRUE(text.empty()) << text;  // no half report that looks like a clean one
}

TEST_F(ScrubTest, DamagedRecordsOfEachKindFailTheScrub) {
  for (const std::string& key : {meta::keys::Layout(kFs, 5), meta::keys::Gc(kFs, 5, 1, "fh"),
                                 meta::keys::Pending(kFs, 5, 1)}) {
    meta::MemKvStore damaged;
    ASSERT_TRUE(meta::RunTxn(damaged, [&](meta::Txn& t) { return t.Put(key, "junk"); }).ok());
    Result<ScrubReport> rep = Status::Internal("not run");
    std::string text = Capture([&](std::FILE* out) { rep = Scrub(damaged, kFs, *pool_, true, out); });
    EXPECT_FALSE(rep.ok()) << text;
    EXPECT_TRUE(text.empty()) << text;
  }
}

}  // namespace
}  // namespace loom::mds
