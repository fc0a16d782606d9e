// DataServerPool (data_servers.cc) beyond the happy paths of data_servers_test: configuration
// and placement refusals, server states as operators see them, data-file creation when a data
// server refuses part of it (what was made is undone, intents withdrawn), and removal when the
// name no longer holds the layout's file.
#include <filesystem>

#include <gtest/gtest.h>

#include "mds/data_servers.h"
#include "mds/fs_identity.h"
#include "mds/test_ds.h"
#include "meta/mem_kv.h"

namespace loom::mds {
namespace {

using namespace loom::nfs3;  // NFSv3 constants keep their RFC 1813 names
using testing::Config;
using testing::Faults;
using testing::FastOptions;
using testing::ReadAll;
using testing::TestDs;
using testing::WriteFile;
namespace fsys = std::filesystem;

using testing::kFs;

using testing::Has;

using testing::Place;

TEST(PoolConfigMoreTest, LabelsAndOptionsAreChecked) {
  DataServerConfig c = Config(1, "127.0.0.1:1");
  for (int i = 0; i < 65; i++) c.labels.push_back("k" + std::to_string(i) + "=v");
  auto p = DataServerPool::Create({c}, {});
  EXPECT_EQ(p.status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(Has(p.status().message(), "too many labels")) << p.status().ToString();
  c.labels = {"k=" + std::string(255, 'v')};  // 257 bytes
  EXPECT_EQ(DataServerPool::Create({c}, {}).status().code(), Code::kInvalidArgument);
  c.labels = {"=v"};  // no key
  EXPECT_EQ(DataServerPool::Create({c}, {}).status().code(), Code::kInvalidArgument);
  c.labels = {"k=" + std::string(254, 'v')};  // 256: the limit
  EXPECT_TRUE(DataServerPool::Create({c}, {}).ok());
  DataServerPool::Options o;
  o.stripe_unit = 0;
  EXPECT_EQ(DataServerPool::Create({Config(1, "127.0.0.1:1")}, o).status().code(), Code::kInvalidArgument);
  o = {};
  o.max_io = 0;
  EXPECT_EQ(DataServerPool::Create({Config(1, "127.0.0.1:1")}, o).status().code(), Code::kInvalidArgument);
  DataServerConfig bare = Config(3, "127.0.0.1:1");
  bare.export_path = "";
  auto q = DataServerPool::Create({bare, Config(2, "127.0.0.1:2")}, {});
  LOOM_ASSERT_OK(q);
  EXPECT_EQ((*q)->Find(3)->export_path, "/");
  auto servers = (*q)->Servers();
  ASSERT_EQ(servers.size(), 2u);
  EXPECT_EQ(servers[0].config.id, 2u);  // by id, whatever the order given
  EXPECT_EQ((*q)->MaxId(), 3u);
}

TEST(PoolStateTest, StateNames) {
  EXPECT_STREQ(HealthName(Health::kUnknown), "unknown");
  EXPECT_STREQ(HealthName(Health::kUp), "up");
  EXPECT_STREQ(HealthName(Health::kDown), "down");
  DataServerState s;
  EXPECT_EQ(StateName(s), "unknown");
  s.draining = true;
  EXPECT_EQ(StateName(s), "draining");
  s.health = Health::kUp;
  EXPECT_EQ(StateName(s), "draining");
  s.health = Health::kDown;
  EXPECT_EQ(StateName(s), "down,draining");
  s.draining = false;
  EXPECT_EQ(StateName(s), "down");
}

class PoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 3; i++) {
      ds_.push_back(std::make_unique<TestDs>());
      ds_.back()->Start(&faults_[i]);
    }
    std::vector<DataServerConfig> cfg;
    for (size_t i = 0; i < ds_.size(); i++) {
      cfg.push_back(Config(static_cast<uint32_t>(i + 1), ds_[i]->address()));
      cfg.back().labels = {"n=" + std::to_string(i + 1), "all=yes"};
    }
    auto p = DataServerPool::Create(cfg, FastOptions());
    LOOM_ASSERT_OK(p);
    pool_ = std::move(*p);
    pool_->SetCreateJournal(&journal_);
  }
  Faults& F(uint32_t ds) { return faults_[ds - 1]; }
  std::string Path(uint32_t ds, meta::Ino ino, uint32_t gen = 0) {
    return ds_[ds - 1]->Loom(FsDirName(kFs) + "/" + DataFileName(ino, gen));
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

  Faults faults_[3];
  std::vector<std::unique_ptr<TestDs>> ds_;
  meta::MemKvStore store_;
  StoreJournal journal_{&store_};
  std::unique_ptr<DataServerPool> pool_;
};

TEST_F(PoolTest, UnknownIdsAndStateChanges) {
  EXPECT_EQ(pool_->HealthOf(99), Health::kUnknown);
  EXPECT_FALSE(pool_->IsUsable(99));
  EXPECT_EQ(pool_->Ping(99).code(), Code::kNotFound);
  EXPECT_EQ(pool_->SetDraining(99, true).code(), Code::kNotFound);
  pool_->ReportError(99, Status::Unavailable("x"));  // ignored
  EXPECT_EQ(pool_->Servers().size(), 3u);
  ASSERT_TRUE(pool_->SetDraining(1, true).ok());
  ASSERT_TRUE(pool_->SetDraining(1, true).ok());  // again: no change
  EXPECT_TRUE(pool_->Servers()[0].draining);
  EXPECT_EQ(StateName(pool_->Servers()[0]), "draining");
  ASSERT_TRUE(pool_->SetDraining(1, false).ok());
  EXPECT_FALSE(pool_->Servers()[0].draining);
  // Added servers need an id.
  TestDs extra;
  extra.Start();
  DataServerConfig c = Config(0, extra.address());
  EXPECT_EQ(pool_->AddServer(c).code(), Code::kInvalidArgument);
  c.id = 9;
  c.export_path = "";
  ASSERT_TRUE(pool_->AddServer(c).ok());
  EXPECT_EQ(pool_->Find(9)->export_path, "/");
  EXPECT_EQ(pool_->Find(9)->advertised_address, extra.address());
}

TEST_F(PoolTest, PingWithoutSpaceAnswerKeepsTheServerUp) {
  ASSERT_TRUE(pool_->Ping(1).ok());
  const DataServerState before = pool_->Servers()[0];
  EXPECT_TRUE(before.space_known);
  F(1).Fail(NFSPROC3_FSSTAT, NFS3ERR_IO);
  ASSERT_TRUE(pool_->Ping(1).ok());
  const DataServerState after = pool_->Servers()[0];
  EXPECT_EQ(after.health, Health::kUp);
  EXPECT_TRUE(after.space_known);  // the last answer stands
  EXPECT_EQ(after.capacity, before.capacity);
}

TEST_F(PoolTest, BadPlacementsAreRefused) {
  for (const Placement& p : {Place(0, 1), Place(1, 0), Place(17, 1), Place(1, 1025)}) {
    auto l = pool_->CreateDataFile(kFs, 5, p);
    EXPECT_EQ(l.status().code(), Code::kInvalidArgument) << p.mirrors << "x" << p.stripes;
    EXPECT_EQ(pool_->CreateDataFilesOn(kFs, 5, p, {1}, 0).status().code(), Code::kInvalidArgument);
  }
  Placement bad_label = Place(1, 1);
  bad_label.require_labels = {"nolabel"};
  EXPECT_EQ(pool_->CreateDataFile(kFs, 5, bad_label).status().code(), Code::kInvalidArgument);
  auto too_many = pool_->CreateDataFile(kFs, 5, Place(2, 2));
  EXPECT_EQ(too_many.status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(Has(too_many.status().message(), "needs 4 data servers, 3 configured")) << too_many.status().ToString();
  // On named servers: the count, unknown ids, the same id twice, labels, draining.
  EXPECT_EQ(pool_->CreateDataFilesOn(kFs, 5, Place(2, 1), {1}, 0).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(pool_->CreateDataFilesOn(kFs, 5, Place(1, 1), {99}, 0).status().code(), Code::kNotFound);
  EXPECT_EQ(pool_->CreateDataFilesOn(kFs, 5, Place(2, 1), {1, 1}, 0).status().code(), Code::kInvalidArgument);
  Placement labelled = Place(1, 1);
  labelled.require_labels = {"n=2", "all=yes"};
  auto lacks = pool_->CreateDataFilesOn(kFs, 5, labelled, {1}, 0);
  EXPECT_EQ(lacks.status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(Has(lacks.status().message(), "lacks the labels n=2,all=yes")) << lacks.status().ToString();
  ASSERT_TRUE(pool_->SetDraining(2, true).ok());
  auto draining = pool_->CreateDataFilesOn(kFs, 5, labelled, {2}, 0);
  EXPECT_EQ(draining.status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(Has(draining.status().message(), "is draining")) << draining.status().ToString();
  // None of it made a file or left an intent.
  for (uint32_t ds = 1; ds <= 3; ds++) EXPECT_FALSE(fsys::exists(Path(ds, 5)));
  EXPECT_EQ(Intents(), 0u);
}

TEST_F(PoolTest, PartlyFailedCreationIsUndone) {
  // Mirror 0 made on server 1, mirror 1 refused by server 2: server 1's file goes again, and
  // both intents are withdrawn (no leftover for recovery to chase).
  F(2).Fail(NFSPROC3_CREATE, NFS3ERR_NOSPC);
  auto l = pool_->CreateDataFilesOn(kFs, 5, Place(2, 1), {1, 2}, 0);
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.status().code(), Code::kNoSpace);
  EXPECT_FALSE(fsys::exists(Path(1, 5)));
  // Server 1's intent is withdrawn with its file. Server 2's stays: a CREATE that answered an
  // error is left to recovery (ResolveIntents, scrub), which removes only what is there.
  auto pending = [&](uint32_t ds) {
    auto v = meta::RunTxn(store_, [&](meta::Txn& t) { return t.Get(meta::keys::Pending(kFs, 5, ds)); });
    EXPECT_TRUE(v.ok());
    return v.ok() && v->has_value();
  };
  EXPECT_FALSE(pending(1));
  EXPECT_TRUE(pending(2));
  EXPECT_EQ(Intents(), 1u);
  // Placed freely, the pool goes around the server that failed.
  auto free = pool_->CreateDataFile(kFs, 6, Place(2, 1));
  LOOM_ASSERT_OK(free);
  for (const auto& m : free->mirrors) EXPECT_NE(m.files[0].ds_id, 2u);
  EXPECT_TRUE(fsys::exists(Path(1, 6)));
  EXPECT_TRUE(fsys::exists(Path(3, 6)));
}

TEST_F(PoolTest, CreationThatFailsEverywhereSaysWhy) {
  for (uint32_t ds = 1; ds <= 3; ds++) F(ds).Fail(NFSPROC3_CREATE, NFS3ERR_ROFS);
  auto l = pool_->CreateDataFile(kFs, 5, Place(2, 1));
  ASSERT_FALSE(l.ok());
  EXPECT_TRUE(Has(l.status().message(), "failed this placement")) << l.status().ToString();
  EXPECT_TRUE(Has(l.status().message(), "last error")) << l.status().ToString();
  EXPECT_TRUE(Has(l.status().message(), "NFS3ERR_ROFS")) << l.status().ToString();
  for (uint32_t ds = 1; ds <= 3; ds++) EXPECT_FALSE(fsys::exists(Path(ds, 5)));
  auto one = pool_->CreateDataFile(kFs, 6, Place(1, 1));
  ASSERT_FALSE(one.ok());
  EXPECT_EQ(one.status().os_errno(), EROFS) << one.status().ToString();
}

TEST_F(PoolTest, TreeRemovedUnderThePoolIsMadeAgain) {
  LOOM_ASSERT_OK(pool_->CreateDataFilesOn(kFs, 5, Place(1, 1), {1}, 0));
  // The cached handle of loom/<tree> answers STALE once (the directory was removed and made
  // again by someone): the pool looks it up again and creates there.
  F(1).Fail(NFSPROC3_CREATE, NFS3ERR_STALE, 0, 1);
  auto l = pool_->CreateDataFilesOn(kFs, 6, Place(1, 1), {1}, 0);
  LOOM_ASSERT_OK(l);
  EXPECT_TRUE(fsys::exists(Path(1, 6)));
  F(1).Fail(NFSPROC3_CREATE, NFS3ERR_STALE);  // for good: an error
  EXPECT_EQ(pool_->CreateDataFilesOn(kFs, 7, Place(1, 1), {1}, 0).status().os_errno(), ESTALE);
}

TEST_F(PoolTest, ReusingAnInterruptedCreationCanFail) {
  // An earlier attempt of this store made ino 5's file on server 1 (its intent says so).
  LOOM_ASSERT_OK(journal_.Intend(kFs, 5, 1, 0));
  WriteFile(Path(1, 5), "stale bytes");
  F(1).Fail(NFSPROC3_SETATTR, NFS3ERR_ACCES);
  auto l = pool_->CreateDataFilesOn(kFs, 5, Place(1, 1), {1}, 0);
  EXPECT_EQ(l.status().code(), Code::kPermission) << l.status().ToString();
  F(1).Clear();
  l = pool_->CreateDataFilesOn(kFs, 5, Place(1, 1), {1}, 0);
  LOOM_ASSERT_OK(l);
  EXPECT_EQ(ReadAll(Path(1, 5)), "");  // emptied: no client ever saw those bytes
  // A server that sends no handle, and then cannot look the file up.
  F(1).create_without_handle = true;
  F(1).Fail(NFSPROC3_LOOKUP, NFS3ERR_IO);
  EXPECT_EQ(pool_->CreateDataFilesOn(kFs, 6, Place(1, 1), {1}, 0).status().code(), Code::kIo);
}

TEST_F(PoolTest, AbandonRemovesFilesAndIntents) {
  auto l = pool_->CreateDataFilesOn(kFs, 5, Place(2, 1), {1, 3}, 2);
  LOOM_ASSERT_OK(l);
  EXPECT_EQ(Intents(), 2u);
  F(3).Fail(NFSPROC3_REMOVE, NFS3ERR_IO);
  EXPECT_EQ(pool_->AbandonDataFiles(kFs, 5, *l).code(), Code::kIo);
  EXPECT_FALSE(fsys::exists(Path(1, 5, 2)));
  EXPECT_TRUE(fsys::exists(Path(3, 5, 2)));
  EXPECT_EQ(Intents(), 1u);  // the file not removed keeps its record, for recovery
  F(3).Clear();
  ASSERT_TRUE(pool_->AbandonDataFiles(kFs, 5, *l).ok());
  EXPECT_FALSE(fsys::exists(Path(3, 5, 2)));
  EXPECT_EQ(Intents(), 0u);
}

TEST_F(PoolTest, RemoveLeavesAnotherFileOfTheSameNameAlone) {
  auto l = pool_->CreateDataFilesOn(kFs, 5, Place(1, 1), {1}, 0);
  LOOM_ASSERT_OK(l);
  meta::DataFile f = l->mirrors[0].files[0];
  // The name now holds another file (removed and made again by someone): not ours to delete.
  WriteFile(Path(1, 5) + ".new", "someone else's");
  fsys::rename(Path(1, 5) + ".new", Path(1, 5));
  ASSERT_TRUE(pool_->RemoveDataFile(kFs, 5, f).ok());
  EXPECT_EQ(ReadAll(Path(1, 5)), "someone else's");
  // Errors while looking and removing are errors.
  auto m = pool_->CreateDataFilesOn(kFs, 6, Place(1, 1), {1}, 0);
  LOOM_ASSERT_OK(m);
  F(1).Fail(NFSPROC3_REMOVE, NFS3ERR_ROFS);
  EXPECT_EQ(pool_->RemoveDataFile(kFs, 6, m->mirrors[0].files[0]).os_errno(), EROFS);
  EXPECT_EQ(pool_->RemoveDataFiles(kFs, 6, *m).os_errno(), EROFS);
  EXPECT_TRUE(fsys::exists(Path(1, 6)));
  F(1).Clear();
  F(1).Fail(NFSPROC3_LOOKUP, NFS3ERR_IO);
  EXPECT_EQ(pool_->RemoveDataFile(kFs, 6, m->mirrors[0].files[0]).code(), Code::kIo);
  // A STALE tree handle: an error now, looked up afresh next time.
  F(1).Fail(NFSPROC3_LOOKUP, NFS3ERR_STALE, 0, 1);
  EXPECT_EQ(pool_->RemoveDataFile(kFs, 6, m->mirrors[0].files[0]).os_errno(), ESTALE);
  ASSERT_TRUE(pool_->RemoveDataFile(kFs, 6, m->mirrors[0].files[0]).ok());
  EXPECT_FALSE(fsys::exists(Path(1, 6)));
  meta::DataFile unknown = m->mirrors[0].files[0];
  unknown.ds_id = 99;
  EXPECT_EQ(pool_->RemoveDataFile(kFs, 6, unknown).code(), Code::kNotFound);
}

TEST_F(PoolTest, AServerReportedDownFailsAtOnceUntilItAnswersAgain) {
  ASSERT_TRUE(pool_->Ping(1).ok());
  pool_->ReportError(1, Status::Unavailable("connection reset"));
  EXPECT_EQ(pool_->HealthOf(1), Health::kDown);
  EXPECT_FALSE(pool_->IsUsable(1));
  EXPECT_TRUE(Has(pool_->Servers()[0].last_error, "reported by a client: Unavailable: connection reset"))
      << pool_->Servers()[0].last_error;
  auto r = pool_->ReadControlFile(1, {"loom", "ds-id"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_TRUE(Has(r.status().message(), "data server 1 is down")) << r.status().ToString();
  // Never placed on while down.
  for (meta::Ino ino = 10; ino < 14; ino++) {
    auto l = pool_->CreateDataFile(kFs, ino);
    LOOM_ASSERT_OK(l);
    EXPECT_NE(l->mirrors[0].files[0].ds_id, 1u);
  }
  ASSERT_TRUE(pool_->Ping(1).ok());
  EXPECT_EQ(pool_->HealthOf(1), Health::kUp);
  LOOM_ASSERT_OK(pool_->ReadControlFile(1, {"loom", "ds-id"}));
}

TEST_F(PoolTest, JukeboxThatPersistsIsTryLater) {
  F(1).Fail(NFSPROC3_CREATE, NFS3ERR_JUKEBOX);
  auto l = pool_->CreateDataFilesOn(kFs, 5, Place(1, 1), {1}, 0);
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.status().code(), Code::kUnavailable) << l.status().ToString();
  F(1).Fail(NFSPROC3_CREATE, NFS3ERR_JUKEBOX, 0, 1);
  LOOM_ASSERT_OK(pool_->CreateDataFilesOn(kFs, 5, Place(1, 1), {1}, 0));
}

}  // namespace
}  // namespace loom::mds
