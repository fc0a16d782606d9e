// Filesystem and data-server identity (mds/fs_identity.h) against real loom-ds servers: what
// PlanStart decides from the store and what the data servers hold, every refusal (the code, a
// message that tells the operator what to do, and nothing changed), recovery of a lost store
// (AdoptTree), start-up intent resolution and the registry.
#include "mds/fs_identity.h"

#include <filesystem>
#include <map>
#include <set>

#include <gtest/gtest.h>

#include "mds/test_ds.h"
#include "meta/inode_alloc.h"
#include "meta/mem_kv.h"
#include "meta/namespace.h"

namespace loom::mds {
namespace {

using namespace loom::nfs3;  // NFSv3 constants keep their RFC 1813 names
using testing::Config;
using testing::DeadAddress;
using testing::FastOptions;
using testing::ReadAll;
using testing::TestDs;
using testing::WriteFile;
namespace fsys = std::filesystem;

using testing::kFs;

using testing::Has;

std::string Hex(char fill) { return std::string(32, fill); }

TEST(UuidTest, HexRoundTripAndRefusals) {
  const std::string raw = NewUuid();
  ASSERT_EQ(raw.size(), 16u);
  EXPECT_NE(NewUuid(), raw);
  const std::string hex = UuidHex(raw);
  ASSERT_EQ(hex.size(), 32u);
  std::string back;
  ASSERT_TRUE(ParseUuidHex(hex, &back));
  EXPECT_EQ(back, raw);
  EXPECT_EQ(UuidHex(std::string("\x00\x01\xab\xff", 4)), "0001abff");
  ASSERT_TRUE(ParseUuidHex("00112233445566778899aabbccddeeff", &back));
  EXPECT_EQ(UuidHex(back), "00112233445566778899aabbccddeeff");
  // Only the spelling UuidHex makes: 32 lower-case digits. A refusal leaves the output alone.
  std::string out = "kept";
  EXPECT_FALSE(ParseUuidHex("00112233445566778899AABBCCDDEEFF", &out));
  EXPECT_FALSE(ParseUuidHex(hex.substr(0, 31), &out));
  EXPECT_FALSE(ParseUuidHex(hex + "0", &out));
  EXPECT_FALSE(ParseUuidHex("", &out));
  EXPECT_FALSE(ParseUuidHex("0011223344556677889 aabbccddeeff", &out));
  EXPECT_FALSE(ParseUuidHex("g0112233445566778899aabbccddeeff", &out));
  EXPECT_FALSE(ParseUuidHex("0g112233445566778899aabbccddeeff", &out));
  EXPECT_EQ(out, "kept");
}

class FsIdentityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 2; i++) {
      ds_.push_back(std::make_unique<TestDs>());
      ds_.back()->Start(&faults_[i]);
    }
  }
  std::vector<DataServerConfig> Given() const {
    std::vector<DataServerConfig> out;
    for (const auto& d : ds_) out.push_back(Config(0, d->address()));
    return out;
  }
  Result<StartPlan> Plan(StartMode mode = StartMode::kNormal, const std::string& recover_id = "") {
    return PlanStart(store_, kFs, Given(), mode, FastOptions(), recover_id);
  }
  Result<StartPlan> Plan(std::vector<DataServerConfig> servers, StartMode mode = StartMode::kNormal) {
    return PlanStart(store_, kFs, std::move(servers), mode, FastOptions());
  }
  // The store's V record, if any.
  std::optional<meta::FsIdentity> StoredIdentity() {
    std::optional<meta::FsIdentity> id;
    Status s = meta::RunTxn(store_, [&](meta::Txn& t) -> Status {
      id.reset();
      auto v = t.Get(meta::keys::Identity(kFs));
      if (!v.ok()) return v.status();
      if (*v) return meta::Decode(**v, &id.emplace());
      return Status::Ok();
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
    return id;
  }
  std::map<std::string, meta::DataServerRecord> Registry() {
    std::map<std::string, meta::DataServerRecord> out;
    Status s = meta::RunTxn(store_, [&](meta::Txn& t) -> Status {
      out.clear();
      return t.Scan(meta::KeyRange::Prefix(meta::keys::DataServerPrefix()), 0,
                    [&](std::string_view, std::string_view v) {
                      meta::DataServerRecord r;
                      EXPECT_TRUE(meta::Decode(v, &r).ok());
                      out[r.address] = r;
                      return true;
                    });
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
    return out;
  }
  std::string DsIdOf(size_t i) { return ReadAll(ds_[i]->Loom("ds-id")); }
  // A tree of some filesystem on server i, with its marker (none when owner is empty).
  void MakeTree(size_t i, const std::string& dir, const std::string& owner) {
    fsys::create_directories(ds_[i]->Loom(dir));
    if (!owner.empty()) WriteFile(ds_[i]->Loom(dir + "/.owner"), owner + "\n");
  }

  meta::MemKvStore store_;
  testing::Faults faults_[2];
  std::vector<std::unique_ptr<TestDs>> ds_;
};

TEST_F(FsIdentityTest, NewFilesystemThenRestart) {
  auto plan = Plan();
  LOOM_ASSERT_OK(plan);
  EXPECT_TRUE(plan->summary.rfind("new filesystem ", 0) == 0) << plan->summary;
  EXPECT_FALSE(plan->adopt_tree);
  EXPECT_FALSE(plan->had_namespace);
  EXPECT_EQ(plan->identity.uuid.size(), 16u);
  EXPECT_EQ(plan->identity.tree, UuidHex(plan->identity.uuid));
  auto stored = StoredIdentity();
  ASSERT_TRUE(stored);
  EXPECT_EQ(*stored, plan->identity);
  // Each server got its own identity file, and the registry holds it.
  ASSERT_EQ(plan->servers.size(), 2u);
  std::set<uint32_t> ids;
  for (size_t i = 0; i < 2; i++) {
    const DataServerConfig& c = plan->servers[i];
    EXPECT_EQ(DsIdOf(i), UuidHex(c.uuid) + "\n");
    ids.insert(c.id);
  }
  EXPECT_EQ(ids, (std::set<uint32_t>{1, 2}));
  EXPECT_NE(plan->servers[0].uuid, plan->servers[1].uuid);
  auto reg = Registry();
  ASSERT_EQ(reg.size(), 2u);
  EXPECT_EQ(reg[ds_[0]->address()].id, plan->servers[0].id);
  EXPECT_EQ(reg[ds_[0]->address()].advertised_address, "");  // the same as the address

  // Restarted with the flags in the other order: ids follow the servers, not the order.
  auto swapped = Given();
  std::swap(swapped[0], swapped[1]);
  auto again = Plan(swapped);
  LOOM_ASSERT_OK(again);
  EXPECT_EQ(again->identity, plan->identity);
  EXPECT_EQ(again->summary, "filesystem " + UuidHex(plan->identity.uuid));
  ASSERT_EQ(again->servers.size(), 2u);
  EXPECT_EQ(again->servers[0].id, plan->servers[1].id);
  EXPECT_EQ(again->servers[1].id, plan->servers[0].id);
  EXPECT_EQ(DsIdOf(0), UuidHex(plan->servers[0].uuid) + "\n");  // never rewritten
}

TEST_F(FsIdentityTest, EmptyStoreNeedsEveryServerToAnswer) {
  auto given = Given();
  const std::string dead = DeadAddress();
  given.push_back(Config(0, dead));
  auto plan = Plan(given);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), Code::kUnavailable);
  EXPECT_TRUE(Has(plan.status().message(), dead)) << plan.status().ToString();
  EXPECT_TRUE(Has(plan.status().message(), "every data server must be checked")) << plan.status().ToString();
  EXPECT_FALSE(StoredIdentity());
  EXPECT_TRUE(Registry().empty());
}

TEST_F(FsIdentityTest, BadConfigurationIsRefusedBeforeAnyProbe) {
  EXPECT_EQ(Plan(std::vector<DataServerConfig>{}).status().code(), Code::kInvalidArgument);
  auto given = Given();
  given[1].labels = {"no-equals-sign"};
  auto plan = Plan(given);
  EXPECT_EQ(plan.status().code(), Code::kInvalidArgument) << plan.status().ToString();
  EXPECT_FALSE(fsys::exists(ds_[0]->Loom("ds-id")));
  EXPECT_FALSE(StoredIdentity());
}

TEST_F(FsIdentityTest, EmptyStoreOverAnExistingFilesystemIsRefused) {
  const std::string other = Hex('a');
  MakeTree(1, other, other);
  WriteFile(ds_[1]->Loom(other + "/" + DataFileName(5)), "precious");
  auto plan = Plan();
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), Code::kExists);
  const std::string msg = plan.status().message();
  EXPECT_TRUE(Has(msg, ds_[1]->address() + ":loom/" + other + " (filesystem " + other + ")")) << msg;
  EXPECT_TRUE(Has(msg, "--recover")) << msg;
  EXPECT_TRUE(Has(msg, "--force-new")) << msg;
  EXPECT_EQ(ReadAll(ds_[1]->Loom(other + "/" + DataFileName(5))), "precious");
  EXPECT_FALSE(StoredIdentity());
  // lost+found is not a filesystem's tree.
  fsys::remove_all(ds_[1]->Loom(other));
  fsys::create_directories(ds_[1]->Loom(kLostFound));
  LOOM_ASSERT_OK(Plan());
}

TEST_F(FsIdentityTest, ForceNewStartsBesideTheOldTreeOnlyOnAnEmptyStore) {
  const std::string other = Hex('b');
  MakeTree(0, other, other);
  WriteFile(ds_[0]->Loom(other + "/" + DataFileName(5)), "precious");
  auto plan = Plan(StartMode::kForceNew);
  LOOM_ASSERT_OK(plan);
  EXPECT_NE(UuidHex(plan->identity.uuid), other);
  EXPECT_NE(plan->identity.tree, other);
  EXPECT_FALSE(plan->adopt_tree);
  EXPECT_TRUE(Has(plan->summary, "--force-new; left alone: " + ds_[0]->address() + ":loom/" + other))
      << plan->summary;
  EXPECT_EQ(ReadAll(ds_[0]->Loom(other + "/" + DataFileName(5))), "precious");
  EXPECT_EQ(ReadAll(ds_[0]->Loom(other + "/.owner")), other + "\n");

  // Now the store holds a filesystem: --force-new would abandon it.
  auto again = Plan(StartMode::kForceNew);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(Has(again.status().message(), UuidHex(plan->identity.uuid))) << again.status().ToString();
  EXPECT_EQ(StoredIdentity()->uuid, plan->identity.uuid);
}

TEST_F(FsIdentityTest, ForceNewOnALegacyStoreIsRefused) {
  meta::Namespace ns(&store_, kFs);
  ASSERT_TRUE(meta::RunTxn(store_, [&](meta::Txn& t) { return ns.Mkfs(t, 0755, 0, 0); }).ok());
  auto plan = Plan(StartMode::kForceNew);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(Has(plan.status().message(), "made before ids")) << plan.status().ToString();
}

TEST_F(FsIdentityTest, RecoverAdoptsTheOneFilesystemFound) {
  const std::string id = "0123456789abcdef0123456789abcdef";
  MakeTree(0, id, id);
  MakeTree(1, id, id);
  auto plan = Plan(StartMode::kRecover);
  LOOM_ASSERT_OK(plan);
  EXPECT_TRUE(plan->adopt_tree);
  EXPECT_EQ(UuidHex(plan->identity.uuid), id);
  EXPECT_EQ(plan->identity.tree, id);
  EXPECT_EQ(plan->summary, "recovering filesystem " + id + " from loom/" + id);
  EXPECT_EQ(StoredIdentity()->tree, id);
  // Interrupted and started again with --recover: the store knows it now; adoption goes on.
  auto again = Plan(StartMode::kRecover);
  LOOM_ASSERT_OK(again);
  EXPECT_TRUE(again->adopt_tree);
  EXPECT_EQ(again->identity, plan->identity);
}

TEST_F(FsIdentityTest, RecoverChoosesAmongSeveralOnlyWhenTold) {
  const std::string a = Hex('a'), b = Hex('b');
  MakeTree(0, a, a);
  MakeTree(1, b, b);
  auto several = Plan(StartMode::kRecover);
  ASSERT_FALSE(several.ok());
  EXPECT_EQ(several.status().code(), Code::kExists);
  EXPECT_TRUE(Has(several.status().message(), "--recover-id")) << several.status().ToString();
  EXPECT_TRUE(Has(several.status().message(), a) && Has(several.status().message(), b));
  auto unknown = Plan(StartMode::kRecover, Hex('c'));
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), Code::kNotFound);
  EXPECT_TRUE(Has(unknown.status().message(), Hex('c'))) << unknown.status().ToString();
  EXPECT_FALSE(StoredIdentity());
  auto chosen = Plan(StartMode::kRecover, b);
  LOOM_ASSERT_OK(chosen);
  EXPECT_EQ(UuidHex(chosen->identity.uuid), b);
  EXPECT_EQ(chosen->identity.tree, b);
  // The other filesystem's tree is left as it was.
  EXPECT_EQ(ReadAll(ds_[0]->Loom(a + "/.owner")), a + "\n");
}

TEST_F(FsIdentityTest, RecoverATreeFromBeforeOwnerMarkers) {
  MakeTree(0, "7", "");  // the old name (the fsid), no marker
  auto plan = Plan(StartMode::kRecover, "7");
  LOOM_ASSERT_OK(plan);
  EXPECT_EQ(plan->identity.tree, "7");
  EXPECT_EQ(plan->identity.uuid.size(), 16u);  // a new id: the tree had none
  EXPECT_TRUE(plan->adopt_tree);
  // A damaged marker: the tree cannot be proved to be the one adopted under a new id, so it
  // is refused (by the owner check), and nothing is recorded.
  meta::MemKvStore other;
  fsys::remove_all(ds_[0]->Loom("7"));
  MakeTree(0, "old", "not-a-uuid");
  auto odd = PlanStart(other, kFs, Given(), StartMode::kRecover, FastOptions());
  ASSERT_FALSE(odd.ok());
  EXPECT_EQ(odd.status().code(), Code::kPermission) << odd.status().ToString();
  EXPECT_TRUE(Has(odd.status().message(), "belongs to filesystem not-a-uuid")) << odd.status().ToString();
  auto v = meta::RunTxn(other, [&](meta::Txn& t) { return t.Get(meta::keys::Identity(kFs)); });
  LOOM_ASSERT_OK(v);
  EXPECT_FALSE(v->has_value());
  EXPECT_EQ(ReadAll(ds_[0]->Loom("old/.owner")), "not-a-uuid\n");
}

TEST_F(FsIdentityTest, DamagedDataServerIdIsRefused) {
  WriteFile(ds_[1]->Loom("ds-id"), "this is not an id\n");
  auto plan = Plan();
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), Code::kInternal);
  EXPECT_TRUE(Has(plan.status().message(), ds_[1]->address())) << plan.status().ToString();
  EXPECT_TRUE(Has(plan.status().message(), "damaged")) << plan.status().ToString();
  EXPECT_EQ(ReadAll(ds_[1]->Loom("ds-id")), "this is not an id\n");  // not "repaired" by a guess
  EXPECT_FALSE(StoredIdentity());
  // Trailing spaces and CRs (an id edited by hand) are fine.
  const std::string id = Hex('d');
  WriteFile(ds_[1]->Loom("ds-id"), id + " \r\n");
  auto ok = Plan();
  LOOM_ASSERT_OK(ok);
  EXPECT_EQ(UuidHex(ok->servers[1].uuid), id);
}

TEST_F(FsIdentityTest, TheSameExportTwiceIsRefused) {
  auto given = Given();
  given[1].address = given[0].address;
  auto plan = Plan(given);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(Has(plan.status().message(), "same export")) << plan.status().ToString();
  // Also when it is reached at two addresses: the id tells.
  WriteFile(ds_[1]->Loom("ds-id"), ReadAll(ds_[0]->Loom("ds-id")));
  auto copied = Plan();
  EXPECT_EQ(copied.status().code(), Code::kInvalidArgument) << copied.status().ToString();
}

TEST_F(FsIdentityTest, TreeOfAnotherFilesystemIsRefused) {
  auto plan = Plan();
  LOOM_ASSERT_OK(plan);
  const std::string tree = plan->identity.tree;
  MakeTree(1, tree, Hex('e'));  // someone else's marker in our tree
  auto again = Plan();
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), Code::kPermission);
  EXPECT_TRUE(Has(again.status().message(), "belongs to filesystem " + Hex('e'))) << again.status().ToString();
  EXPECT_TRUE(Has(again.status().message(), ds_[1]->address()));
  // Our own marker is fine.
  WriteFile(ds_[1]->Loom(tree + "/.owner"), UuidHex(plan->identity.uuid) + "\n");
  LOOM_ASSERT_OK(Plan());
}

TEST_F(FsIdentityTest, StoreFromBeforeIdsIsAdopted) {
  meta::Namespace ns(&store_, kFs);
  ASSERT_TRUE(meta::RunTxn(store_, [&](meta::Txn& t) { return ns.Mkfs(t, 0755, 0, 0); }).ok());
  MakeTree(0, FsDirName(kFs), "");  // its data, under the old tree name
  auto plan = Plan();
  LOOM_ASSERT_OK(plan);
  EXPECT_TRUE(plan->had_namespace);
  EXPECT_FALSE(plan->adopt_tree);
  EXPECT_EQ(plan->identity.tree, FsDirName(kFs));
  EXPECT_TRUE(Has(plan->summary, "made before ids")) << plan->summary;
  // Layouts of such a store name servers by their --ds position.
  ASSERT_EQ(plan->servers.size(), 2u);
  EXPECT_EQ(plan->servers[0].id, 1u);
  EXPECT_EQ(plan->servers[1].id, 2u);
  auto again = Plan();
  LOOM_ASSERT_OK(again);
  EXPECT_EQ(again->identity, plan->identity);
  EXPECT_TRUE(again->had_namespace);
}

TEST_F(FsIdentityTest, LegacyStoreStartsWithAServerDown) {
  meta::Namespace ns(&store_, kFs);
  ASSERT_TRUE(meta::RunTxn(store_, [&](meta::Txn& t) { return ns.Mkfs(t, 0755, 0, 0); }).ok());
  ds_[1]->Stop();
  auto plan = Plan();
  LOOM_ASSERT_OK(plan);
  ASSERT_EQ(plan->servers.size(), 2u);
  EXPECT_EQ(plan->servers[1].id, 2u);     // by position, as its layouts mean
  EXPECT_TRUE(plan->servers[1].uuid.empty());
  EXPECT_EQ(Registry().size(), 1u);       // no record without an id
}

TEST_F(FsIdentityTest, KnownServerMayBeDownUnknownMayNot) {
  auto plan = Plan();
  LOOM_ASSERT_OK(plan);
  auto reg = Registry();
  reg[ds_[1]->address()].labels = {"site=b"};
  ASSERT_TRUE(meta::RunTxn(store_, [&](meta::Txn& t) {
                return t.Put(meta::keys::DataServer(reg[ds_[1]->address()].uuid),
                             meta::Encode(reg[ds_[1]->address()]));
              }).ok());
  ds_[1]->Stop();
  auto again = Plan();
  LOOM_ASSERT_OK(again);
  ASSERT_EQ(again->servers.size(), 2u);
  EXPECT_EQ(again->servers[1].id, plan->servers[1].id);
  EXPECT_EQ(again->servers[1].uuid, plan->servers[1].uuid);
  EXPECT_EQ(again->servers[1].labels, (std::vector<std::string>{"site=b"}));
  // A server this store never saw cannot be checked: refused.
  auto given = Given();
  const std::string dead = DeadAddress();
  given.push_back(Config(0, dead));
  auto refused = Plan(given);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Code::kUnavailable);
  EXPECT_TRUE(Has(refused.status().message(), "has not seen it before")) << refused.status().ToString();
}

TEST_F(FsIdentityTest, ServersKnownOnlyToTheStore) {
  // Three servers known; restarted with only the first on the command line.
  TestDs third;
  third.Start();
  auto all = Given();
  all.push_back(Config(0, third.address()));
  auto plan = Plan(all);
  LOOM_ASSERT_OK(plan);
  const std::vector<DataServerConfig> only_first = {Config(0, ds_[0]->address())};
  auto again = Plan(only_first);
  LOOM_ASSERT_OK(again);
  EXPECT_EQ(again->servers.size(), 3u);

  // One is down (kept: it may come back), one now serves another export (left out: its old
  // id must not be given to the wrong files), a third's tree is another filesystem's.
  ds_[1]->Stop();
  third.Stop();
  fsys::remove(third.root() + "/loom/ds-id");
  third.Start();
  auto mixed = Plan(only_first);
  LOOM_ASSERT_OK(mixed);
  std::set<std::string> addrs;
  for (const auto& c : mixed->servers) addrs.insert(c.address);
  EXPECT_EQ(addrs, (std::set<std::string>{ds_[0]->address(), ds_[1]->address()}));
  EXPECT_FALSE(fsys::exists(third.root() + "/loom/ds-id"));  // a server left out is not written

  // A damaged id on a server known only to the store leaves it out too.
  WriteFile(third.root() + "/loom/ds-id", "garbage\n");
  auto damaged = Plan(only_first);
  LOOM_ASSERT_OK(damaged);
  EXPECT_EQ(damaged->servers.size(), 2u);
  EXPECT_EQ(ReadAll(third.root() + "/loom/ds-id"), "garbage\n");

  ds_[1]->Start();
  MakeTree(1, plan->identity.tree, Hex('f'));
  auto foreign = Plan(only_first);
  ASSERT_FALSE(foreign.ok());
  EXPECT_EQ(foreign.status().code(), Code::kPermission);
  EXPECT_TRUE(Has(foreign.status().message(), ds_[1]->address())) << foreign.status().ToString();
}

TEST_F(FsIdentityTest, DamagedStoreRecordsAreReportedNotGuessed) {
  ASSERT_TRUE(meta::RunTxn(store_, [&](meta::Txn& t) { return t.Put(meta::keys::Identity(kFs), "junk"); }).ok());
  auto plan = Plan();
  ASSERT_FALSE(plan.ok());
  EXPECT_TRUE(Has(plan.status().message(), "reading the metadata store")) << plan.status().ToString();
  EXPECT_FALSE(fsys::exists(ds_[0]->Loom("ds-id")));  // refused before touching the servers

  meta::MemKvStore other;
  ASSERT_TRUE(meta::RunTxn(other, [&](meta::Txn& t) { return t.Put(meta::keys::DataServer("x"), "junk"); }).ok());
  auto reg = PlanStart(other, kFs, Given(), StartMode::kNormal, FastOptions());
  ASSERT_FALSE(reg.ok());
  EXPECT_TRUE(Has(reg.status().message(), "reading the metadata store")) << reg.status().ToString();
}

TEST_F(FsIdentityTest, ServerThatFailsTheProbeIsNamedAndNothingIsRecorded) {
  // An export that cannot take its identity file (read-only).
  faults_[1].Fail(NFSPROC3_CREATE, NFS3ERR_ROFS);
  auto plan = Plan();
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), Code::kIo) << plan.status().ToString();
  EXPECT_TRUE(Has(plan.status().message(), "NFS3ERR_ROFS")) << plan.status().ToString();
  EXPECT_TRUE(Has(plan.status().message(), "data server " + ds_[1]->address() + ":")) << plan.status().ToString();
  EXPECT_FALSE(StoredIdentity());
  faults_[1].Clear();
  // One whose loom/ cannot be listed: it might hold a filesystem, so no new one is made.
  faults_[0].Fail(NFSPROC3_READDIRPLUS, NFS3ERR_IO);
  plan = Plan();
  ASSERT_FALSE(plan.ok());
  EXPECT_TRUE(Has(plan.status().message(), ds_[0]->address())) << plan.status().ToString();
  EXPECT_FALSE(StoredIdentity());
  faults_[0].Clear();
  // One whose tree's owner marker cannot be read (the first READ is its loom/ds-id).
  MakeTree(0, Hex('a'), Hex('a'));
  faults_[0].Fail(NFSPROC3_READ, NFS3ERR_IO, 1);
  plan = Plan(StartMode::kRecover);
  ASSERT_FALSE(plan.ok());
  EXPECT_TRUE(Has(plan.status().message(), ds_[0]->address())) << plan.status().ToString();
  EXPECT_FALSE(StoredIdentity());
}

TEST_F(FsIdentityTest, IdWrittenByAnotherServerMeanwhileIsUsed) {
  // Two metadata servers probing a new export at once: the one whose GUARDED CREATE loses
  // reads the other's id instead of writing its own.
  const std::string theirs = Hex('c');
  WriteFile(ds_[1]->Loom("ds-id"), theirs + "\n");
  faults_[1].Fail(NFSPROC3_LOOKUP, NFS3ERR_NOENT, 1, 1);  // loom/ found, ds-id "not yet"
  auto plan = Plan();
  LOOM_ASSERT_OK(plan);
  EXPECT_EQ(UuidHex(plan->servers[1].uuid), theirs);
  EXPECT_EQ(ReadAll(ds_[1]->Loom("ds-id")), theirs + "\n");
}

// --- Recovery of a lost store ---

class AdoptTreeTest : public FsIdentityTest {
 protected:
  // The servers hold filesystem `id_`'s tree; the store is empty (lost).
  void SetUp() override {
    FsIdentityTest::SetUp();
    MakeTree(0, id_, id_);
    MakeTree(1, id_, id_);
    WriteFile(ds_[0]->Loom(id_ + "/" + DataFileName(5)), "five");
    WriteFile(ds_[1]->Loom(id_ + "/" + DataFileName(5)), "five too");  // a mirror's copy
    WriteFile(ds_[0]->Loom(id_ + "/" + DataFileName(0x40, 2)), "moved, gen 2");
    WriteFile(ds_[1]->Loom(id_ + "/not-a-data-file"), "ignored");
    fsys::create_directories(ds_[1]->Loom(id_ + "/" + DataFileName(0x50)));  // a directory
  }
  Result<size_t> Adopt() {
    auto plan = Plan(StartMode::kRecover);
    if (!plan.ok()) return plan.status();
    EXPECT_TRUE(plan->adopt_tree);
    auto pool = DataServerPool::Create(plan->servers, FastOptions());
    if (!pool.ok()) return pool.status();
    pool_ = std::move(*pool);
    pool_->SetTree(kFs, plan->identity.tree, UuidHex(plan->identity.uuid));
    Status mk = meta::RunTxn(store_, [&](meta::Txn& t) { return ns_.Mkfs(t, 0755, 0, 0); });
    if (!mk.ok() && meta::ErrOf(mk) != meta::MetaErr::kExist) return mk;
    return AdoptTree(store_, ns_, *pool_);
  }
  std::map<std::string, meta::Ino> LostFound() {
    std::map<std::string, meta::Ino> out;
    Status s = meta::RunTxn(store_, [&](meta::Txn& t) -> Status {
      out.clear();
      auto lf = ns_.Lookup(t, ns_.root(), kLostFound);
      if (!lf.ok()) return lf.status();
      uint64_t cookie = 0;
      for (;;) {
        auto page = ns_.ReadDir(t, lf->ino, cookie, 100);
        if (!page.ok()) return page.status();
        for (const auto& d : page->entries) {
          out[d.name] = d.ino;
          cookie = d.cookie;
        }
        if (page->eof) return Status::Ok();
      }
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
    return out;
  }

  const std::string id_ = "fedcba9876543210fedcba9876543210";
  meta::Namespace ns_{&store_, kFs};
  std::unique_ptr<DataServerPool> pool_;
};

TEST_F(AdoptTreeTest, LinksEveryDataFileIntoLostFound) {
  auto linked = Adopt();
  LOOM_ASSERT_OK(linked);
  EXPECT_EQ(*linked, 3u);
  auto lf = LostFound();
  ASSERT_EQ(lf.size(), 3u);
  // Two servers held a file of ino 5: each copy gets a name saying where it came from.
  const uint32_t id0 = pool_->Servers()[0].config.address == ds_[0]->address()
                           ? pool_->Servers()[0].config.id
                           : pool_->Servers()[1].config.id;
  const std::string five0 = DataFileName(5) + "@ds" + std::to_string(id0);
  ASSERT_TRUE(lf.count(five0)) << ::testing::PrintToString(lf);
  ASSERT_TRUE(lf.count(DataFileName(0x40, 2)));
  // Each entry reads back its bytes, through a layout naming the renamed data file.
  for (const auto& [name, ino] : lf) {
    auto l = meta::RunTxn(store_, [&](meta::Txn& t) { return ns_.GetLayout(t, ino); });
    LOOM_ASSERT_OK(l);
    auto attr = meta::RunTxn(store_, [&](meta::Txn& t) { return ns_.GetAttr(t, ino); });
    LOOM_ASSERT_OK(attr);
    auto r = pool_->Read(*l, 0, 100);
    LOOM_ASSERT_OK(r);
    const std::string want = name == five0 ? "five" : name == DataFileName(0x40, 2) ? "moved, gen 2" : "five too";
    EXPECT_EQ(r->data.str(), want) << name;
    EXPECT_EQ(attr->size, want.size());
  }
  // The old names are gone (renamed, never copied or truncated); foreign files stay.
  EXPECT_FALSE(fsys::exists(ds_[0]->Loom(id_ + "/" + DataFileName(5))));
  EXPECT_EQ(ReadAll(ds_[0]->Loom(id_ + "/" + DataFileName(lf[five0]))), "five");
  EXPECT_EQ(ReadAll(ds_[1]->Loom(id_ + "/not-a-data-file")), "ignored");
  // New inodes never reuse a number found on the servers.
  for (const auto& [name, ino] : lf) EXPECT_GT(ino, 0x40u) << name;
  auto fresh = meta::RunTxn(store_, [&](meta::Txn& t) { return ns_.Create(t, ns_.root(), "new", {}); });
  LOOM_ASSERT_OK(fresh);
  EXPECT_GT(fresh->inode.ino, 0x40u);

  // Run again (an interrupted recovery restarted): nothing more to link, nothing doubled.
  auto again = AdoptTree(store_, ns_, *pool_);
  LOOM_ASSERT_OK(again);
  EXPECT_EQ(*again, 0u);
  EXPECT_EQ(LostFound().size(), 3u);
}

TEST_F(AdoptTreeTest, AServerThatCannotBeListedStopsTheAdoption) {
  auto plan = Plan(StartMode::kRecover);
  LOOM_ASSERT_OK(plan);
  auto pool = DataServerPool::Create(plan->servers, FastOptions());
  LOOM_ASSERT_OK(pool);
  (*pool)->SetTree(kFs, plan->identity.tree, UuidHex(plan->identity.uuid));
  ASSERT_TRUE(meta::RunTxn(store_, [&](meta::Txn& t) { return ns_.Mkfs(t, 0755, 0, 0); }).ok());
  ds_[1]->Stop();
  auto linked = AdoptTree(store_, ns_, **pool);
  ASSERT_FALSE(linked.ok());
  EXPECT_EQ(linked.status().code(), Code::kUnavailable) << linked.status().ToString();
  // Nothing was linked or renamed.
  EXPECT_TRUE(fsys::exists(ds_[0]->Loom(id_ + "/" + DataFileName(5))));
  auto lf = meta::RunTxn(store_, [&](meta::Txn& t) { return ns_.Lookup(t, ns_.root(), kLostFound); });
  EXPECT_EQ(meta::ErrOf(lf.status()), meta::MetaErr::kNoEnt);
}

// --- Intents and the registry ---

class IntentTest : public FsIdentityTest {
 protected:
  void SetUp() override {
    FsIdentityTest::SetUp();
    auto pool = DataServerPool::Create({Config(1, ds_[0]->address()), Config(2, ds_[1]->address())},
                                       FastOptions());
    LOOM_ASSERT_OK(pool);
    pool_ = std::move(*pool);
    pool_->SetCreateJournal(&journal_);
  }
  size_t Pending() {
    size_t n = 0;
    EXPECT_TRUE(meta::RunTxn(store_, [&](meta::Txn& t) {
                  n = 0;
                  return t.Scan(meta::KeyRange::Prefix(meta::keys::PendingPrefix(kFs)), 0,
                                [&](std::string_view, std::string_view) { return ++n, true; });
                }).ok());
    return n;
  }
  StoreJournal journal_{&store_};
  std::unique_ptr<DataServerPool> pool_;
};

TEST_F(IntentTest, JournalRecordsAndWithdraws) {
  auto first = journal_.Intend(kFs, 9, 1, 0);
  LOOM_ASSERT_OK(first);
  EXPECT_FALSE(*first);
  auto second = journal_.Intend(kFs, 9, 1, 0);
  LOOM_ASSERT_OK(second);
  EXPECT_TRUE(*second);  // an earlier attempt may have made the file
  auto gen = journal_.Intend(kFs, 9, 1, 3);
  LOOM_ASSERT_OK(gen);
  EXPECT_FALSE(*gen);  // another name generation is another file
  EXPECT_EQ(Pending(), 2u);
  ASSERT_TRUE(journal_.Cancel(kFs, 9, 1, 0).ok());
  EXPECT_EQ(Pending(), 1u);
  auto after = journal_.Intend(kFs, 9, 1, 0);
  LOOM_ASSERT_OK(after);
  EXPECT_FALSE(*after);
}

TEST_F(IntentTest, ADownServerKeepsItsIntentsForTheNextStart) {
  auto l = pool_->CreateDataFile(kFs, 11);
  LOOM_ASSERT_OK(l);
  const uint32_t ds = l->mirrors[0].files[0].ds_id;
  ds_[ds - 1]->Stop();
  auto r = ResolveIntents(store_, kFs, *pool_);
  LOOM_ASSERT_OK(r);
  EXPECT_EQ(*r, 0u);
  EXPECT_EQ(Pending(), 1u);
  ds_[ds - 1]->Start();
  ASSERT_TRUE(pool_->Ping(ds).ok());
  r = ResolveIntents(store_, kFs, *pool_);
  LOOM_ASSERT_OK(r);
  EXPECT_EQ(*r, 1u);
  EXPECT_EQ(Pending(), 0u);
}

TEST_F(IntentTest, IntentOfAFileItsLayoutHoldsOnlyLosesTheRecord) {
  meta::Namespace ns(&store_, kFs);
  ASSERT_TRUE(meta::RunTxn(store_, [&](meta::Txn& t) { return ns.Mkfs(t, 0755, 0, 0); }).ok());
  auto c = meta::RunTxn(store_, [&](meta::Txn& t) { return ns.Create(t, ns.root(), "f", {}); });
  LOOM_ASSERT_OK(c);
  const meta::Ino ino = c->inode.ino;
  auto l = pool_->CreateDataFile(kFs, ino);
  LOOM_ASSERT_OK(l);
  // The layout is stored by a raw write, as if the crash came after it but before the intent
  // was deleted (SetLayout would delete it).
  ASSERT_TRUE(meta::RunTxn(store_, [&](meta::Txn& t) { return t.Put(meta::keys::Layout(kFs, ino), meta::Encode(*l)); }).ok());
  const uint32_t ds = l->mirrors[0].files[0].ds_id;
  auto r = ResolveIntents(store_, kFs, *pool_);
  LOOM_ASSERT_OK(r);
  EXPECT_EQ(*r, 1u);
  EXPECT_EQ(Pending(), 0u);
  auto there = pool_->DataFileExists(l->mirrors[0].files[0]);
  LOOM_ASSERT_OK(there);
  EXPECT_TRUE(*there) << "data server " << ds << ": the file its layout holds was removed";
}

TEST_F(IntentTest, DamagedRecordsStopTheSweep) {
  ASSERT_TRUE(meta::RunTxn(store_, [&](meta::Txn& t) { return t.Put(meta::keys::Pending(kFs, 3, 1), "junk"); }).ok());
  EXPECT_FALSE(ResolveIntents(store_, kFs, *pool_).ok());
  ASSERT_TRUE(meta::RunTxn(store_, [&](meta::Txn& t) {
                return t.Put(meta::keys::Pending(kFs, 3, 1), meta::Encode(meta::PendingFile{3, 1, {}, 0}));
              }).ok());
  ASSERT_TRUE(meta::RunTxn(store_, [&](meta::Txn& t) { return t.Put(meta::keys::Layout(kFs, 3), "junk"); }).ok());
  EXPECT_FALSE(ResolveIntents(store_, kFs, *pool_).ok());
  EXPECT_EQ(Pending(), 1u);  // kept for a store that can be read
}

TEST_F(FsIdentityTest, AddDataServerKeepsAKnownServersIdAndRefusesADeadOne) {
  TestDs third;
  third.Start();
  auto all = Given();
  all.push_back(Config(0, third.address()));
  all[2].labels = {"tier=old"};
  auto plan = Plan(all);
  LOOM_ASSERT_OK(plan);
  // Running with the first two only (the third's flag dropped, and its record kept).
  std::vector<DataServerConfig> two(plan->servers.begin(), plan->servers.begin() + 2);
  auto pool = DataServerPool::Create(two, FastOptions());
  LOOM_ASSERT_OK(pool);
  auto id = AddDataServer(store_, **pool, Config(0, third.address()));
  LOOM_ASSERT_OK(id);
  EXPECT_EQ(*id, plan->servers[2].id);  // the id its layouts use
  const DataServerConfig* c = (*pool)->Find(*id);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->labels, (std::vector<std::string>{"tier=old"}));
  const std::string dead = DeadAddress();
  auto refused = AddDataServer(store_, **pool, Config(0, dead));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Code::kUnavailable);
  EXPECT_TRUE(Has(refused.status().message(), dead)) << refused.status().ToString();
  EXPECT_EQ((*pool)->Servers().size(), 3u);
  EXPECT_EQ(Registry().size(), 3u);
}

TEST_F(FsIdentityTest, SaveRegistryRecordsDrainingAndForgetsRemoved) {
  auto plan = Plan();
  LOOM_ASSERT_OK(plan);
  auto servers = plan->servers;
  servers.push_back(Config(9, DeadAddress()));  // never identified: no uuid, no record
  auto pool = DataServerPool::Create(servers, FastOptions());
  LOOM_ASSERT_OK(pool);
  ASSERT_TRUE((*pool)->SetDraining(plan->servers[0].id, true).ok());
  ASSERT_TRUE((*pool)->RemoveServer(plan->servers[1].id).ok());
  ASSERT_TRUE(SaveRegistry(store_, **pool).ok());
  auto reg = Registry();
  ASSERT_EQ(reg.size(), 1u);
  EXPECT_TRUE(reg[ds_[0]->address()].draining);
  // A damaged record is reported, not overwritten.
  ASSERT_TRUE(meta::RunTxn(store_, [&](meta::Txn& t) { return t.Put(meta::keys::DataServer("zz"), "junk"); }).ok());
  EXPECT_FALSE(SaveRegistry(store_, **pool).ok());
  EXPECT_FALSE(AddDataServer(store_, **pool, Config(0, ds_[1]->address())).ok());
}

}  // namespace
}  // namespace loom::mds
