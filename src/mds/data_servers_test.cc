// DataServerPool and GcWorker against real loom-ds servers: three in-process RpcServer +
// Nfs3Service + LocalFs instances on temporary directories, reached over loopback TCP.
#include "mds/data_servers.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "mds/fs_identity.h"
#include "mds/gc_worker.h"
#include "mds/scrub.h"
#include "meta/mem_kv.h"
#include "meta/namespace.h"
#include "nfs3/local_fs.h"
#include "nfs3/nfs3_service.h"
#include "rpc/server.h"

namespace loom::mds {

using namespace loom::nfs3;  // NFSv3 types and constants keep their RFC 1813 names
namespace {

namespace fsys = std::filesystem;

#define ASSERT_OK(e)                                          \
  do {                                                        \
    const auto& _r = (e);                                     \
    ASSERT_TRUE(_r.ok()) << _r.status().ToString();           \
  } while (0)

// One loom-ds: a directory served on a loopback port that survives restarts.
class TestDs {
 public:
  TestDs() {
    char tmpl[] = "/tmp/loom-mds-ds-XXXXXX";
    root_ = ::mkdtemp(tmpl);
  }
  ~TestDs() {
    Stop();
    fsys::remove_all(root_);
  }
  // port 0: any free port (the first start); later starts reuse the port.
  void Start() {
    auto fs = nfs3::LocalFs::Open(nfs3::LocalFs::Options{root_, "", 64});
    ASSERT_TRUE(fs.ok()) << fs.status().ToString();
    fs_ = std::move(fs.value());
    svc_ = std::make_unique<nfs3::Nfs3Service>(fs_.get(), nfs3::Nfs3Service::Options{});
    rpc::ServerOptions o;
    o.listen = "127.0.0.1:" + std::to_string(port_);
    o.loops = 1;
    o.workers = 2;
    server_ = std::make_unique<rpc::RpcServer>(o);
    // FSSTAT answers the space SetSpace gave, when it gave one (the test servers share /tmp).
    rpc::ProgramDesc nfs = svc_->NfsProgram();
    nfs.procs[NFSPROC3_FSSTAT].fn = rpc::Typed<FSSTAT3args, FSSTAT3res>(
        [this](const rpc::CallContext& ctx, const FSSTAT3args& a, FSSTAT3res& r) {
          svc_->Fsstat(ctx, a, r);
          if (r.status == NFS3_OK && capacity_ > 0) {
            r.resok.tbytes = capacity_;
            r.resok.fbytes = r.resok.abytes = free_;
          }
        });
    server_->Register(nfs);
    server_->Register(svc_->MountProgram());
    Status st = server_->Start();
    ASSERT_TRUE(st.ok()) << st.ToString();
    port_ = server_->port();
  }
  void Stop() {
    server_.reset();
    svc_.reset();
    fs_.reset();
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string root() const { return root_; }
  void SetSpace(uint64_t capacity, uint64_t free) {
    free_ = free;
    capacity_ = capacity;
  }
  std::string Path(meta::FsId fsid, meta::Ino ino, uint32_t gen) const {
    return root_ + "/loom/" + FsDirName(fsid) + "/" + DataFileName(ino, gen);
  }
  std::string Path(meta::FsId fsid, meta::Ino ino) const {
    return root_ + "/loom/" + FsDirName(fsid) + "/" + DataFileName(ino);
  }

 private:
  std::string root_;
  uint16_t port_ = 0;
  std::atomic<uint64_t> capacity_{0}, free_{0};
  std::unique_ptr<nfs3::LocalFs> fs_;
  std::unique_ptr<nfs3::Nfs3Service> svc_;
  std::unique_ptr<rpc::RpcServer> server_;
};

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& ch : s) ch = static_cast<char>(rng());
  return s;
}

std::string FileContents(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

constexpr meta::FsId kFs = 7;

Placement Place(uint32_t mirrors, uint32_t stripes, uint64_t stripe_unit) {
  Placement p;
  p.mirrors = mirrors;
  p.stripes = stripes;
  p.stripe_unit = stripe_unit;
  return p;
}

DataServerConfig Config(uint32_t id, std::string address) {
  DataServerConfig c;
  c.id = id;
  c.address = std::move(address);
  return c;
}

class DataServersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 3; i++) {
      ds_.push_back(std::make_unique<TestDs>());
      ds_.back()->Start();
    }
    MakePool();
  }
  void TearDown() override { pool_.reset(); }

  void MakePool(DataServerPool::Options opts = {},
                std::vector<std::vector<std::string>> labels = {}) {
    std::vector<DataServerConfig> cfg;
    for (size_t i = 0; i < ds_.size(); i++) {
      cfg.push_back(Config(Id(i), ds_[i]->address()));
      if (i < labels.size()) cfg.back().labels = labels[i];
    }
    pool_.reset();
    auto p = DataServerPool::Create(cfg, opts);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    pool_ = std::move(p.value());
  }
  static uint32_t Id(size_t index) { return static_cast<uint32_t>(100 + index); }
  TestDs& Ds(uint32_t id) { return *ds_[id - 100]; }

  std::vector<std::unique_ptr<TestDs>> ds_;
  std::unique_ptr<DataServerPool> pool_;
};

TEST(StripingTest, OffsetMapping) {
  meta::Layout one;
  one.stripe_unit = 1 << 20;
  one.stripe_count = 1;
  StripePos p = MapOffset(one, 123456789);
  EXPECT_EQ(p.stripe, 0u);
  EXPECT_EQ(p.ds_offset, 123456789u);
  EXPECT_EQ(StripeFileSize(one, 0, 999), 999u);
  EXPECT_EQ(FileEndOfStripe(one, 0, 999), 999u);

  meta::Layout l;
  l.stripe_unit = 100;
  l.stripe_count = 3;
  p = MapOffset(l, 0);
  EXPECT_EQ(p.stripe, 0u);
  EXPECT_EQ(p.ds_offset, 0u);
  EXPECT_EQ(p.unit_left, 100u);
  p = MapOffset(l, 250);  // unit 2 -> stripe 2, at its file offset (sparse)
  EXPECT_EQ(p.stripe, 2u);
  EXPECT_EQ(p.ds_offset, 250u);
  EXPECT_EQ(p.unit_left, 50u);
  p = MapOffset(l, 310);  // unit 3 -> stripe 0
  EXPECT_EQ(p.stripe, 0u);
  EXPECT_EQ(p.ds_offset, 310u);
  EXPECT_EQ(p.unit_left, 90u);
  // Every data file is as long as the file (the other stripes' units are holes).
  EXPECT_EQ(StripeFileSize(l, 0, 650), 650u);
  EXPECT_EQ(StripeFileSize(l, 2, 650), 650u);
  EXPECT_EQ(FileEndOfStripe(l, 1, 500), 500u);
  EXPECT_EQ(FileEndOfStripe(l, 2, 0), 0u);
  // Round trip for every size up to a few rows.
  for (uint64_t size = 0; size < 1000; size++) {
    uint64_t end = 0;
    for (uint32_t s = 0; s < 3; s++) end = std::max(end, FileEndOfStripe(l, s, StripeFileSize(l, s, size)));
    ASSERT_EQ(end, size);
  }
}

TEST(StripingTest, VerifiersAndErrors) {
  Verifier a{1, 2, 3, 4, 5, 6, 7, 8}, b{8, 7, 6, 5, 4, 3, 2, 1};
  EXPECT_EQ(CombineVerifiers({a}), a);
  EXPECT_EQ(CombineVerifiers({a, b}), CombineVerifiers({a, b}));
  EXPECT_NE(CombineVerifiers({a, b}), CombineVerifiers({a, a}));
  EXPECT_NE(CombineVerifiers({a, b}), CombineVerifiers({b, a}));

  EXPECT_TRUE(FromNfs3(NFS3_OK, 1, "READ").ok());
  EXPECT_EQ(FromNfs3(NFS3ERR_JUKEBOX, 1, "READ").code(), Code::kUnavailable);
  Status stale = FromNfs3(NFS3ERR_STALE, 1, "READ");
  EXPECT_EQ(stale.code(), Code::kIo);
  EXPECT_EQ(stale.os_errno(), ESTALE);
  EXPECT_EQ(FromNfs3(NFS3ERR_NOSPC, 1, "WRITE").code(), Code::kNoSpace);
  EXPECT_EQ(FromNfs3(NFS3ERR_DQUOT, 1, "WRITE").os_errno(), EDQUOT);
  EXPECT_EQ(DataFileName(0x1234), "0000000000001234");
}

TEST(PoolConfigTest, RejectsBadConfig) {
  EXPECT_FALSE(DataServerPool::Create({}, {}).ok());
  EXPECT_FALSE(DataServerPool::Create({Config(1, "127.0.0.1:1"), Config(1, "127.0.0.1:2")}, {}).ok());
  EXPECT_FALSE(DataServerPool::Create({Config(1, "")}, {}).ok());
  DataServerConfig unlabelled = Config(1, "127.0.0.1:1");
  unlabelled.labels = {"tier"};  // not key=value
  EXPECT_FALSE(DataServerPool::Create({unlabelled}, {}).ok());
  auto p = DataServerPool::Create({Config(5, "127.0.0.1:1")}, {});
  ASSERT_OK(p);
  EXPECT_EQ((*p)->Find(5)->advertised_address, "127.0.0.1:1");
  EXPECT_EQ((*p)->Find(6), nullptr);
  EXPECT_EQ((*p)->HealthOf(5), Health::kUnknown);
}

TEST_F(DataServersTest, CreatePlacesRoundRobin) {
  ASSERT_TRUE(pool_->PrepareFilesystem(kFs).ok());
  for (size_t i = 0; i < ds_.size(); i++) {
    EXPECT_TRUE(fsys::is_directory(fsys::path(Ds(Id(i)).Path(kFs, 0)).parent_path()));
  }
  std::vector<uint32_t> placed;
  for (meta::Ino ino = 10; ino < 16; ino++) {
    auto l = pool_->CreateDataFile(kFs, ino);
    ASSERT_OK(l);
    EXPECT_EQ(l->stripe_count, 1u);
    EXPECT_EQ(l->stripe_unit, 1u << 20);
    ASSERT_EQ(l->mirrors.size(), 1u);
    ASSERT_EQ(l->mirrors[0].files.size(), 1u);
    const meta::DataFile& f = l->mirrors[0].files[0];
    EXPECT_FALSE(f.fh.empty());
    EXPECT_EQ(f.uid, 0u);
    placed.push_back(f.ds_id);
    struct stat st;
    ASSERT_EQ(::stat(Ds(f.ds_id).Path(kFs, ino).c_str(), &st), 0) << Ds(f.ds_id).Path(kFs, ino);
    EXPECT_TRUE(S_ISREG(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    EXPECT_EQ(st.st_uid, 0u);
    EXPECT_EQ(st.st_gid, 0u);
    EXPECT_EQ(st.st_size, 0);
    for (size_t i = 0; i < ds_.size(); i++) {  // only there
      if (Id(i) != f.ds_id) {
        EXPECT_FALSE(fsys::exists(Ds(Id(i)).Path(kFs, ino)));
      }
    }
  }
  // Every window of three consecutive files covers all three servers, in a fixed rotation.
  for (size_t i = 0; i + 3 <= placed.size(); i++) {
    EXPECT_EQ(std::set<uint32_t>(placed.begin() + i, placed.begin() + i + 3).size(), 3u);
  }
  EXPECT_EQ(placed[0], placed[3]);
  for (size_t i = 0; i < ds_.size(); i++) EXPECT_EQ(pool_->HealthOf(Id(i)), Health::kUp);
}

TEST_F(DataServersTest, CreateNeverEmptiesAFileItDidNotCreate) {
  // Issue 10.5: a file already at the name (a lost store's, another store's) is data this
  // store knows nothing of. It used to be "taken over, emptied".
  meta::MemKvStore store;
  StoreJournal journal(&store);
  pool_->SetCreateJournal(&journal);
  ASSERT_TRUE(pool_->PrepareFilesystem(kFs).ok());
  for (auto& d : ds_) std::ofstream(d->Path(kFs, 99)) << "left over";
  auto l = pool_->CreateDataFile(kFs, 99);
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.status().code(), Code::kExists) << l.status().ToString();
  for (auto& d : ds_) EXPECT_EQ(FileContents(d->Path(kFs, 99)), "left over");
  // No intent is left behind to make recovery remove them later.
  ASSERT_OK(ResolveIntents(store, kFs, *pool_));
  for (auto& d : ds_) EXPECT_EQ(FileContents(d->Path(kFs, 99)), "left over");
}

TEST_F(DataServersTest, CreateReusesOnlyWhatItsIntentVouchesFor) {
  meta::MemKvStore store;
  StoreJournal journal(&store);
  pool_->SetCreateJournal(&journal);
  ASSERT_TRUE(pool_->PrepareFilesystem(kFs).ok());
  // An earlier attempt of this store recorded its intent everywhere, then died after CREATE.
  for (size_t i = 0; i < ds_.size(); i++) {
    ASSERT_OK(journal.Intend(kFs, 99, Id(i), 0));
    std::ofstream(ds_[i]->Path(kFs, 99)) << "half made";
  }
  auto l = pool_->CreateDataFile(kFs, 99);
  ASSERT_OK(l);
  const meta::DataFile& f = l->mirrors[0].files[0];
  EXPECT_EQ(fsys::file_size(Ds(f.ds_id).Path(kFs, 99)), 0u);
  // A new file's intent is on record until the layout's commit resolves it.
  auto pending = [&](meta::Ino ino) {
    return meta::RunTxn(store, [&](meta::Txn& t) -> Result<size_t> {
      size_t n = 0;
      LOOM_RETURN_IF_ERROR(t.Scan(meta::KeyRange::Prefix(meta::keys::PendingPrefix(kFs, ino)), 0,
                                  [&](std::string_view, std::string_view) { return ++n; }));
      return n;
    });
  };
  meta::Namespace ns(&store, kFs);
  ASSERT_TRUE(meta::RunTxn(store, [&](meta::Txn& t) { return ns.Mkfs(t, 0755, 0, 0); }).ok());
  auto made = meta::RunTxn(store, [&](meta::Txn& t) { return ns.Create(t, ns.root(), "x", {}); });
  ASSERT_OK(made);
  const meta::Ino ino = made->inode.ino;
  auto nl = pool_->CreateDataFile(kFs, ino);
  ASSERT_OK(nl);
  EXPECT_EQ(*pending(ino), 1u);
  ASSERT_TRUE(meta::RunTxn(store, [&](meta::Txn& t) { return ns.SetLayout(t, ino, *nl); }).ok());
  EXPECT_EQ(*pending(ino), 0u);
}

TEST_F(DataServersTest, OwnerMarkerGuardsTheTree) {
  pool_->SetTree(kFs, "tree1", "aaaa");
  ASSERT_TRUE(pool_->PrepareFilesystem(kFs).ok());  // the tree and its marker everywhere
  auto l = pool_->CreateDataFile(kFs, 5);
  ASSERT_OK(l);
  const uint32_t ds = l->mirrors[0].files[0].ds_id;
  const std::string dir = fsys::path(Ds(ds).Path(kFs, 5)).parent_path().parent_path().string();
  EXPECT_EQ(FileContents(dir + "/tree1/.owner"), "aaaa\n");
  EXPECT_TRUE(fsys::exists(dir + "/tree1/" + DataFileName(5)));
  // Another filesystem claiming the same tree is refused, and makes nothing there.
  MakePool();
  pool_->SetTree(kFs, "tree1", "bbbb");
  for (meta::Ino ino = 6; ino < 9; ino++) {
    auto other = pool_->CreateDataFile(kFs, ino);
    ASSERT_FALSE(other.ok());
    EXPECT_EQ(other.status().code(), Code::kPermission) << other.status().ToString();
    EXPECT_FALSE(fsys::exists(dir + "/tree1/" + DataFileName(ino)));
  }
}

TEST_F(DataServersTest, ResolveIntentsRemovesLeftovers) {
  meta::MemKvStore store;
  StoreJournal journal(&store);
  pool_->SetCreateJournal(&journal);
  meta::Namespace ns(&store, kFs);
  ASSERT_TRUE(meta::RunTxn(store, [&](meta::Txn& t) { return ns.Mkfs(t, 0755, 0, 0); }).ok());
  auto create = [&](const char* name) {
    auto r = meta::RunTxn(store, [&](meta::Txn& t) { return ns.Create(t, ns.root(), name, {}); });
    EXPECT_TRUE(r.ok());
    return r->inode.ino;
  };
  // A crash between the data file's CREATE and the layout's commit.
  const meta::Ino lost = create("lost");
  auto l = pool_->CreateDataFile(kFs, lost);
  ASSERT_OK(l);
  const std::string lost_path = Ds(l->mirrors[0].files[0].ds_id).Path(kFs, lost);
  ASSERT_TRUE(fsys::exists(lost_path));
  // A placement that gave up on one server (its intent stays) and used another.
  const meta::Ino moved = create("moved");
  ASSERT_OK(journal.Intend(kFs, moved, Id(0), 0));
  std::ofstream(Ds(Id(0)).Path(kFs, moved)) << "";
  auto ml = pool_->CreateDataFile(kFs, moved, Place(1, 1, 0));
  ASSERT_OK(ml);
  if (ml->mirrors[0].files[0].ds_id == Id(0)) GTEST_SKIP() << "placement chose the same server";
  ASSERT_TRUE(meta::RunTxn(store, [&](meta::Txn& t) { return ns.SetLayout(t, moved, *ml); }).ok());
  // While serving only the settled one goes (the other may still be in flight)...
  auto settled = ResolveIntents(store, kFs, *pool_, true);
  ASSERT_OK(settled);
  EXPECT_EQ(*settled, 1u);
  EXPECT_FALSE(fsys::exists(Ds(Id(0)).Path(kFs, moved)));
  EXPECT_TRUE(fsys::exists(Ds(ml->mirrors[0].files[0].ds_id).Path(kFs, moved)));
  EXPECT_TRUE(fsys::exists(lost_path));
  // ...and at start-up every leftover.
  auto all = ResolveIntents(store, kFs, *pool_);
  ASSERT_OK(all);
  EXPECT_EQ(*all, 1u);
  EXPECT_FALSE(fsys::exists(lost_path));
  EXPECT_EQ(*ResolveIntents(store, kFs, *pool_), 0u);
}

TEST_F(DataServersTest, ScrubReportsAndRepairs) {
  meta::MemKvStore store;
  StoreJournal journal(&store);
  pool_->SetCreateJournal(&journal);
  meta::Namespace ns(&store, kFs);
  ASSERT_TRUE(meta::RunTxn(store, [&](meta::Txn& t) { return ns.Mkfs(t, 0755, 0, 0); }).ok());
  auto file = [&](const char* name, bool record) -> std::pair<meta::Ino, meta::Layout> {
    auto r = meta::RunTxn(store, [&](meta::Txn& t) { return ns.Create(t, ns.root(), name, {}); });
    EXPECT_TRUE(r.ok());
    auto l = pool_->CreateDataFile(kFs, r->inode.ino);
    EXPECT_TRUE(l.ok());
    if (record) {
      EXPECT_TRUE(meta::RunTxn(store, [&](meta::Txn& t) { return ns.SetLayout(t, r->inode.ino, *l); }).ok());
    }
    return {r->inode.ino, *l};
  };
  auto [good, lgood] = file("good", true);
  auto [gone, lgone] = file("gone", true);
  auto [half, lhalf] = file("half", false);  // crashed before its layout: intent on record
  const uint32_t gone_ds = lgone.mirrors[0].files[0].ds_id;
  ASSERT_TRUE(fsys::remove(Ds(gone_ds).Path(kFs, gone)));
  const std::string stranger = Ds(Id(0)).Path(kFs, 0x777);  // no record of any kind
  std::ofstream(stranger) << "whose?";
  auto run = [&](bool repair, std::string* text) {
    char* buf = nullptr;
    size_t len = 0;
    std::FILE* out = ::open_memstream(&buf, &len);
    auto rep = Scrub(store, kFs, *pool_, repair, out);
    std::fclose(out);
    *text = std::string(buf, len);
    std::free(buf);
    return rep;
  };
  std::string text;
  auto rep = run(false, &text);
  ASSERT_OK(rep);
  EXPECT_EQ(rep->layouts, 2u);
  EXPECT_EQ(rep->missing, 1u);
  EXPECT_EQ(rep->orphans, 2u);
  EXPECT_EQ(rep->unrepaired(), 3u);
  EXPECT_NE(text.find("missing-data ino=" + std::to_string(gone) + " ds=" + std::to_string(gone_ds)),
            std::string::npos) << text;
  EXPECT_NE(text.find(DataFileName(half) + " size=0 proof=intent action=none"), std::string::npos) << text;
  EXPECT_NE(text.find(DataFileName(0x777) + " size=6 proof=none action=none"), std::string::npos) << text;
  EXPECT_NE(text.find("summary layouts=2 data_files=2 missing=1 orphans=2"), std::string::npos) << text;
  EXPECT_TRUE(fsys::exists(stranger));

  rep = run(true, &text);
  ASSERT_OK(rep);
  EXPECT_EQ(rep->repaired, 2u);
  EXPECT_EQ(rep->unrepaired(), 1u);  // lost bytes cannot be repaired
  EXPECT_FALSE(fsys::exists(Ds(lhalf.mirrors[0].files[0].ds_id).Path(kFs, half)));
  EXPECT_FALSE(fsys::exists(stranger));
  const std::string moved = fsys::path(stranger).parent_path().parent_path().string() +
                            "/lost+found/" + FsDirName(kFs) + "-" + DataFileName(0x777);
  EXPECT_EQ(FileContents(moved), "whose?");
  // The same name found again later does not replace what lost+found holds.
  std::ofstream(stranger) << "again";
  rep = run(true, &text);
  ASSERT_OK(rep);
  EXPECT_EQ(FileContents(moved), "whose?");
  EXPECT_EQ(FileContents(moved + ".1"), "again");
  EXPECT_TRUE(fsys::exists(Ds(lgood.mirrors[0].files[0].ds_id).Path(kFs, good)));

  rep = run(false, &text);
  ASSERT_OK(rep);
  EXPECT_EQ(rep->inconsistencies(), 1u) << text;
  EXPECT_EQ(rep->missing, 1u);
}

TEST_F(DataServersTest, MirrorsOnDistinctServers) {
  for (meta::Ino ino = 20; ino < 26; ino++) {
    auto l = pool_->CreateDataFile(kFs, ino, Place(2, 1, 0));
    ASSERT_OK(l);
    ASSERT_EQ(l->mirrors.size(), 2u);
    uint32_t a = l->mirrors[0].files[0].ds_id, b = l->mirrors[1].files[0].ds_id;
    EXPECT_NE(a, b);
    EXPECT_TRUE(fsys::exists(Ds(a).Path(kFs, ino)));
    EXPECT_TRUE(fsys::exists(Ds(b).Path(kFs, ino)));
  }
  auto all = pool_->CreateDataFile(kFs, 30, Place(3, 1, 0));
  ASSERT_OK(all);
  std::set<uint32_t> ids;
  for (const auto& m : all->mirrors) ids.insert(m.files[0].ds_id);
  EXPECT_EQ(ids.size(), 3u);
  // More copies than servers is refused rather than doubled up.
  auto four = pool_->CreateDataFile(kFs, 31, Place(4, 1, 0));
  EXPECT_FALSE(four.ok());
  EXPECT_EQ(four.status().code(), Code::kInvalidArgument);
}

TEST_F(DataServersTest, WriteCommitReadRoundTrip) {
  auto l = pool_->CreateDataFile(kFs, 40, Place(2, 1, 0));
  ASSERT_OK(l);
  // 2.5 MiB at an odd offset: three WRITEs per mirror (max_io 1 MiB).
  const uint64_t off = 4097;
  std::string data = RandomBytes((5u << 20) / 2, 1);
  auto w = pool_->Write(*l, off, Bytes::Copy(data), UNSTABLE);
  ASSERT_OK(w);
  EXPECT_EQ(w->count, data.size());
  EXPECT_EQ(w->committed, UNSTABLE);
  auto c = pool_->Commit(*l);
  ASSERT_OK(c);
  EXPECT_EQ(c->verifier, w->verifier);
  ASSERT_EQ(c->mirror_verifiers.size(), 2u);
  EXPECT_NE(c->mirror_verifiers[0], c->mirror_verifiers[1]);  // two servers, two boots

  // Both mirrors hold the bytes on disk.
  std::string expect(off, '\0');
  expect += data;
  for (const auto& m : l->mirrors) EXPECT_TRUE(FileContents(Ds(m.files[0].ds_id).Path(kFs, 40)) == expect);

  auto size = pool_->GetSize(*l);
  ASSERT_OK(size);
  EXPECT_EQ(*size, off + data.size());

  // One read across several data-server READs, and one that reaches the end.
  auto r = pool_->Read(*l, 0, static_cast<uint32_t>(expect.size() + 100));
  ASSERT_OK(r);
  EXPECT_TRUE(r->eof);
  EXPECT_TRUE(r->data.view() == expect);
  r = pool_->Read(*l, off + 10, 1000);
  ASSERT_OK(r);
  EXPECT_FALSE(r->eof);
  EXPECT_TRUE(r->data.view() == data.substr(10, 1000));
  r = pool_->Read(*l, expect.size() + 5, 10);
  ASSERT_OK(r);
  EXPECT_TRUE(r->eof);
  EXPECT_EQ(r->data.size, 0u);

  // FILE_SYNC writes report FILE_SYNC.
  w = pool_->Write(*l, 0, Bytes::Copy("hello"), FILE_SYNC);
  ASSERT_OK(w);
  EXPECT_EQ(w->committed, FILE_SYNC);
  EXPECT_EQ(w->count, 5u);
}

TEST_F(DataServersTest, StripedRoundTrip) {
  auto l = pool_->CreateDataFile(kFs, 45, Place(1, 3, 4096));
  ASSERT_OK(l);
  EXPECT_EQ(l->stripe_count, 3u);
  EXPECT_EQ(l->stripe_unit, 4096u);
  ASSERT_EQ(l->mirrors[0].files.size(), 3u);
  std::string data = RandomBytes(20000, 2);
  auto w = pool_->Write(*l, 0, Bytes::Copy(data), FILE_SYNC);
  ASSERT_OK(w);
  EXPECT_EQ(w->count, data.size());
  // Sparse stripes: each data file ends where its last unit written ends (20000 bytes = units
  // 0..4: stripe 0 holds units 0 and 3, stripe 1 units 1 and 4, stripe 2 unit 2).
  const uint64_t ends[3] = {4 * 4096, 20000, 3 * 4096};
  for (uint32_t s = 0; s < 3; s++)
    EXPECT_EQ(fsys::file_size(Ds(l->mirrors[0].files[s].ds_id).Path(kFs, 45)), ends[s]) << s;
  EXPECT_EQ(*pool_->GetSize(*l), data.size());
  auto r = pool_->Read(*l, 100, 30000);
  ASSERT_OK(r);
  EXPECT_TRUE(r->eof);
  EXPECT_TRUE(r->data.view() == data.substr(100));
  // A hole: write past the end, the gap reads as zeros.
  ASSERT_OK(pool_->Write(*l, 30000, Bytes::Copy("tail"), FILE_SYNC));
  r = pool_->Read(*l, 19990, 20000);
  ASSERT_OK(r);
  EXPECT_TRUE(r->eof);
  std::string want = data.substr(19990) + std::string(30000 - 20000, '\0') + "tail";
  EXPECT_TRUE(r->data.view() == want);
  ASSERT_TRUE(pool_->Truncate(*l, 5000).ok());
  EXPECT_EQ(*pool_->GetSize(*l), 5000u);
  r = pool_->Read(*l, 0, 10000);
  ASSERT_OK(r);
  EXPECT_TRUE(r->data.view() == data.substr(0, 5000));
}

TEST_F(DataServersTest, ReadFailsOverWhenAMirrorIsDown) {
  auto l = pool_->CreateDataFile(kFs, 50, Place(2, 1, 0));
  ASSERT_OK(l);
  std::string data = RandomBytes(100000, 3);
  ASSERT_OK(pool_->Write(*l, 0, Bytes::Copy(data), FILE_SYNC));
  uint32_t first = l->mirrors[0].files[0].ds_id;
  Ds(first).Stop();
  auto r = pool_->Read(*l, 0, 200000);
  ASSERT_OK(r);
  EXPECT_TRUE(r->data.view() == data);
  EXPECT_EQ(pool_->HealthOf(first), Health::kDown);
  // Sizes come from the surviving mirror too; writes need every mirror.
  EXPECT_EQ(*pool_->GetSize(*l), data.size());
  auto w = pool_->Write(*l, 0, Bytes::Copy("x"), FILE_SYNC);
  EXPECT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), Code::kUnavailable);
  // New files go to the two servers still up.
  for (meta::Ino ino = 51; ino < 55; ino++) {
    auto n = pool_->CreateDataFile(kFs, ino);
    ASSERT_OK(n);
    EXPECT_NE(n->mirrors[0].files[0].ds_id, first);
  }
  auto both = pool_->CreateDataFile(kFs, 56, Place(2, 1, 0));
  ASSERT_OK(both);
  auto three = pool_->CreateDataFile(kFs, 57, Place(3, 1, 0));
  EXPECT_EQ(three.status().code(), Code::kUnavailable);
  auto servers = pool_->Servers();
  ASSERT_EQ(servers.size(), 3u);
  EXPECT_EQ(servers[first - 100].health, Health::kDown);
  EXPECT_FALSE(servers[first - 100].last_error.empty());
}

TEST_F(DataServersTest, Truncate) {
  auto l = pool_->CreateDataFile(kFs, 60, Place(2, 1, 0));
  ASSERT_OK(l);
  std::string data = RandomBytes(10000, 4);
  ASSERT_OK(pool_->Write(*l, 0, Bytes::Copy(data), FILE_SYNC));
  ASSERT_TRUE(pool_->Truncate(*l, 4000).ok());
  EXPECT_EQ(*pool_->GetSize(*l), 4000u);
  for (const auto& m : l->mirrors) {
    EXPECT_TRUE(FileContents(Ds(m.files[0].ds_id).Path(kFs, 60)) == data.substr(0, 4000));
  }
  auto r = pool_->Read(*l, 0, 10000);
  ASSERT_OK(r);
  EXPECT_TRUE(r->eof);
  EXPECT_EQ(r->data.size, 4000u);
  ASSERT_TRUE(pool_->Truncate(*l, 1 << 20).ok());  // extending reads back zeros
  EXPECT_EQ(*pool_->GetSize(*l), 1u << 20);
  r = pool_->Read(*l, 4000, 100);
  ASSERT_OK(r);
  EXPECT_TRUE(r->data.view() == std::string(100, '\0'));
}

TEST_F(DataServersTest, RemoveDataFiles) {
  auto l = pool_->CreateDataFile(kFs, 70, Place(2, 1, 0));
  ASSERT_OK(l);
  ASSERT_TRUE(pool_->RemoveDataFiles(kFs, 70, *l).ok());
  for (const auto& m : l->mirrors) EXPECT_FALSE(fsys::exists(Ds(m.files[0].ds_id).Path(kFs, 70)));
  EXPECT_TRUE(pool_->RemoveDataFiles(kFs, 70, *l).ok());  // already gone: fine
  // A filesystem never used on a server: nothing to remove.
  EXPECT_TRUE(pool_->RemoveDataFiles(kFs + 1, 70, *l).ok());
  // The name now holding another file (not this layout's handle) is left alone.
  auto other = pool_->CreateDataFile(kFs, 71);
  ASSERT_OK(other);
  meta::Layout wrong = *other;
  wrong.mirrors[0].files[0].fh = l->mirrors[0].files[0].fh;
  EXPECT_TRUE(pool_->RemoveDataFiles(kFs, 71, wrong).ok());
  EXPECT_TRUE(fsys::exists(Ds(other->mirrors[0].files[0].ds_id).Path(kFs, 71)));
  // A stale handle on read is a lost data file.
  auto r = pool_->Read(*l, 0, 10);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().os_errno(), ESTALE);
}

TEST_F(DataServersTest, GcWorkerRemovesQueuedFiles) {
  meta::MemKvStore store;
  meta::Namespace ns(&store, kFs);
  ASSERT_TRUE(meta::RunTxn(store, [&](meta::Txn& t) { return ns.Mkfs(t, 0755, 0, 0); }).ok());
  auto no_opens = [](meta::Ino) { return false; };
  // Files with data on the data servers, made the way the NFSv4 layer will make them.
  auto make = [&](const std::string& name, uint32_t mirrors) -> std::pair<meta::Ino, meta::Layout> {
    meta::Ino ino = 0;
    meta::Layout layout;
    auto r = meta::RunTxn(store, [&](meta::Txn& t) -> Result<meta::CreateResult> {
      return ns.Create(t, ns.root(), name, meta::CreateArgs{});
    });
    EXPECT_TRUE(r.ok());
    // The layout needs the ino; store it afterwards (a real MDS allocates first).
    ino = r->inode.ino;
    auto l = pool_->CreateDataFile(kFs, ino, Place(mirrors, 1, 0));
    EXPECT_TRUE(l.ok());
    layout = *l;
    EXPECT_TRUE(meta::RunTxn(store, [&](meta::Txn& t) { return ns.SetLayout(t, ino, layout); }).ok());
    EXPECT_TRUE(pool_->Write(layout, 0, Bytes::Copy("payload " + name), FILE_SYNC).ok());
    return {ino, layout};
  };
  auto on_disk = [&](meta::Ino ino, const meta::Layout& l) {
    size_t n = 0;
    for (const auto& m : l.mirrors) n += fsys::exists(Ds(m.files[0].ds_id).Path(kFs, ino));
    return n;
  };
  auto unlink = [&](const std::string& name) {
    auto r = meta::RunTxn(store, [&](meta::Txn& t) { return ns.Unlink(t, ns.root(), name, no_opens); });
    ASSERT_OK(r);
  };
  auto queued = [&] {
    return meta::RunTxn(store, [&](meta::Txn& t) { return ns.ListGc(t, 100); })->size();
  };

  auto [a, la] = make("a", 2);
  auto [b, lb] = make("b", 1);
  auto [keep, lkeep] = make("keep", 1);
  EXPECT_EQ(on_disk(a, la), 2u);
  unlink("a");
  unlink("b");
  EXPECT_EQ(queued(), 3u);

  // One data server down: its item stays queued, the others go.
  uint32_t down = lb.mirrors[0].files[0].ds_id;
  Ds(down).Stop();
  GcWorker gc(&store, {&ns}, pool_.get(), GcWorker::Options{50, 100});
  auto pass = gc.RunOnce();
  ASSERT_OK(pass);
  size_t down_items = 0;
  for (const auto& m : la.mirrors) down_items += m.files[0].ds_id == down;
  EXPECT_EQ(pass->failed, 1 + down_items);
  EXPECT_EQ(pass->removed, 2 - down_items);
  EXPECT_EQ(queued(), 1 + down_items);

  // Back up: the worker thread finishes the job.
  Ds(down).Start();
  ASSERT_TRUE(pool_->Ping(down).ok());
  gc.Start();
  for (int i = 0; i < 200 && queued() > 0; i++) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  EXPECT_EQ(queued(), 0u);
  EXPECT_EQ(on_disk(a, la), 0u);
  EXPECT_EQ(on_disk(b, lb), 0u);
  EXPECT_EQ(on_disk(keep, lkeep), 1u);

  // Later removals are picked up by the running worker; Kick skips the wait.
  unlink("keep");
  gc.Kick();
  for (int i = 0; i < 200 && queued() > 0; i++) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  EXPECT_EQ(queued(), 0u);
  EXPECT_EQ(on_disk(keep, lkeep), 0u);
  gc.Stop();
}

TEST_F(DataServersTest, GcAdvancesPastItemsThatKeepFailing) {
  meta::MemKvStore store;
  meta::Namespace ns(&store, kFs);
  // Three items that can never succeed (their data server left the configuration) queued
  // ahead of one that can.
  auto l = pool_->CreateDataFile(kFs, 50);
  ASSERT_OK(l);
  ASSERT_TRUE(meta::RunTxn(store, [&](meta::Txn& t) -> Status {
    for (meta::Ino ino = 1; ino <= 3; ino++) {
      meta::GcItem g{ino, meta::DataFile{999, "fh" + std::to_string(ino), 0, 0, 0}, {}};
      LOOM_RETURN_IF_ERROR(t.Put(meta::keys::Gc(kFs, ino, 999, g.file.fh), meta::Encode(g)));
    }
    meta::GcItem g{50, l->mirrors[0].files[0], {}};
    return t.Put(meta::keys::Gc(kFs, 50, g.file.ds_id, g.file.fh), meta::Encode(g));
  }).ok());
  GcWorker gc(&store, {&ns}, pool_.get(), GcWorker::Options{50, 2});
  size_t removed = 0;
  for (int pass = 0; pass < 4; pass++) {
    auto r = gc.RunOnce();
    ASSERT_OK(r);
    removed += r->removed;
  }
  EXPECT_EQ(removed, 1u);
  EXPECT_FALSE(fsys::exists(Ds(l->mirrors[0].files[0].ds_id).Path(kFs, 50)));
  EXPECT_EQ(meta::RunTxn(store, [&](meta::Txn& t) { return ns.ListGc(t, 100); })->size(), 3u);
}

TEST_F(DataServersTest, ReconnectAfterDataServerRestart) {
  auto l = pool_->CreateDataFile(kFs, 80);
  ASSERT_OK(l);
  uint32_t id = l->mirrors[0].files[0].ds_id;
  auto w1 = pool_->Write(*l, 0, Bytes::Copy("before restart"), UNSTABLE);
  ASSERT_OK(w1);
  ASSERT_OK(pool_->Commit(*l));

  // Restarted between calls: the next call finds its connection closed and retries once on
  // a fresh one. The handle is still good; the verifier is new.
  Ds(id).Stop();
  Ds(id).Start();
  auto r = pool_->Read(*l, 0, 100);
  ASSERT_OK(r);
  EXPECT_TRUE(r->data.view() == "before restart");
  EXPECT_EQ(pool_->HealthOf(id), Health::kUp);
  auto w2 = pool_->Write(*l, 0, Bytes::Copy("after"), UNSTABLE);
  ASSERT_OK(w2);
  EXPECT_NE(w1->verifier, w2->verifier);
  auto c = pool_->Commit(*l);
  ASSERT_OK(c);
  EXPECT_EQ(c->verifier, w2->verifier);

  // Down for a while: calls fail fast with kUnavailable, a ping brings it back.
  Ds(id).Stop();
  auto gone = pool_->Read(*l, 0, 100);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.status().code(), Code::kUnavailable);
  EXPECT_EQ(pool_->HealthOf(id), Health::kDown);
  EXPECT_FALSE(pool_->Ping(id).ok());
  Ds(id).Start();
  EXPECT_EQ(pool_->Read(*l, 0, 100).status().code(), Code::kUnavailable);  // still marked down
  ASSERT_TRUE(pool_->Ping(id).ok());
  EXPECT_EQ(pool_->HealthOf(id), Health::kUp);
  r = pool_->Read(*l, 0, 100);
  ASSERT_OK(r);
  EXPECT_TRUE(r->data.view() == "aftere restart");  // committed before the stop
}

TEST_F(DataServersTest, PlacementSkipsAServerThatIsDownBeforeFirstContact) {
  ds_[1]->Stop();
  for (meta::Ino ino = 90; ino < 96; ino++) {
    auto l = pool_->CreateDataFile(kFs, ino);
    ASSERT_OK(l);
    EXPECT_NE(l->mirrors[0].files[0].ds_id, Id(1));
  }
  EXPECT_EQ(pool_->HealthOf(Id(1)), Health::kDown);
  auto two = pool_->CreateDataFile(kFs, 96, Place(2, 1, 0));
  ASSERT_OK(two);
}

TEST_F(DataServersTest, SetOwner) {
  auto l = pool_->CreateDataFile(kFs, 97, Place(2, 1, 0));
  ASSERT_OK(l);
  ASSERT_TRUE(pool_->SetOwner(*l, 1234, 5678, 0640).ok());
  for (const auto& m : l->mirrors) {
    struct stat st;
    ASSERT_EQ(::stat(Ds(m.files[0].ds_id).Path(kFs, 97).c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, 1234u);
    EXPECT_EQ(st.st_gid, 5678u);
    EXPECT_EQ(st.st_mode & 07777, 0640u);
  }
}

TEST_F(DataServersTest, HealthChecks) {
  ds_[1]->Stop();
  pool_->CheckHealth();
  EXPECT_EQ(pool_->HealthOf(Id(0)), Health::kUp);
  EXPECT_EQ(pool_->HealthOf(Id(1)), Health::kDown);
  EXPECT_EQ(pool_->HealthOf(Id(2)), Health::kUp);
  // A pool with a health thread notices the server coming back by itself.
  DataServerPool::Options o;
  o.health_interval_ms = 50;
  MakePool(o);
  ds_[1]->Start();
  for (int i = 0; i < 100 && pool_->HealthOf(Id(1)) != Health::kUp; i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(pool_->HealthOf(Id(1)), Health::kUp);
  ds_[2]->Stop();
  for (int i = 0; i < 100 && pool_->HealthOf(Id(2)) != Health::kDown; i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(pool_->HealthOf(Id(2)), Health::kDown);
}

TEST(DataFileNameTest, Generations) {
  EXPECT_EQ(DataFileName(0x12), "0000000000000012");
  EXPECT_EQ(DataFileName(0x12, 0), "0000000000000012");
  EXPECT_EQ(DataFileName(0x12, 7), "0000000000000012.7");
  EXPECT_EQ(DataFileName(0x12, 4294967295u), "0000000000000012.4294967295");
  EXPECT_EQ(ParseDataFileName("0000000000000012"), (DataFileId{0x12, 0}));
  EXPECT_EQ(ParseDataFileName("00000000000000ff.7"), (DataFileId{0xff, 7}));
  EXPECT_EQ(ParseDataFileName("0000000000000012.4294967295"), (DataFileId{0x12, 4294967295u}));
  for (const char* bad : {"0000000000000012.", "0000000000000012.0", "0000000000000012.07",
                          "0000000000000012.4294967296", "0000000000000012.1x",
                          "0000000000000012x1", "000000000000012", "000000000000001G", ".owner",
                          "ds-id", "0000000000000012.99999999999"}) {
    EXPECT_FALSE(ParseDataFileName(bad).has_value()) << bad;
  }
}

TEST_F(DataServersTest, CreateAppliesThePlacementsOwnerAndMode) {
  Placement p = Place(2, 1, 0);
  p.uid = p.gid = 0x10000002;
  p.mode = 0640;
  auto l = pool_->CreateDataFile(kFs, 110, p);
  ASSERT_OK(l);
  for (const auto& m : l->mirrors) {
    const meta::DataFile& f = m.files[0];
    EXPECT_EQ(f.uid, 0x10000002u);
    EXPECT_EQ(f.gid, 0x10000002u);
    EXPECT_EQ(f.name_gen, 0u);
    struct stat st;
    ASSERT_EQ(::stat(Ds(f.ds_id).Path(kFs, 110).c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, 0x10000002u);
    EXPECT_EQ(st.st_gid, 0x10000002u);
    EXPECT_EQ(st.st_mode & 07777, 0640u);
  }
  // The reuse of a file an intent vouches for gets the owner and mode too (and is emptied).
  meta::MemKvStore store;
  StoreJournal journal(&store);
  pool_->SetCreateJournal(&journal);
  ASSERT_TRUE(pool_->PrepareFilesystem(kFs).ok());
  for (size_t i = 0; i < ds_.size(); i++) {
    ASSERT_OK(journal.Intend(kFs, 111, Id(i), 0));
    std::ofstream(ds_[i]->Path(kFs, 111)) << "half made";
    ::chmod(ds_[i]->Path(kFs, 111).c_str(), 0600);
  }
  p = Place(1, 1, 0);
  p.uid = p.gid = 0x10000004;
  auto r = pool_->CreateDataFile(kFs, 111, p);
  ASSERT_OK(r);
  struct stat st;
  ASSERT_EQ(::stat(Ds(r->mirrors[0].files[0].ds_id).Path(kFs, 111).c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 0);
  EXPECT_EQ(st.st_uid, 0x10000004u);
  EXPECT_EQ(st.st_gid, 0x10000004u);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST_F(DataServersTest, PlacementPrefersFreeSpace) {
  constexpr uint64_t kGiB = 1ull << 30;
  Ds(Id(0)).SetSpace(200 * kGiB, 100 * kGiB);
  Ds(Id(1)).SetSpace(200 * kGiB, 50 * kGiB);
  Ds(Id(2)).SetSpace(200 * kGiB, 10 * kGiB);
  pool_->CheckHealth();
  auto servers = pool_->Servers();
  ASSERT_EQ(servers.size(), 3u);
  EXPECT_TRUE(servers[0].space_known);
  EXPECT_EQ(servers[0].capacity, 200 * kGiB);
  EXPECT_EQ(servers[0].free, 100 * kGiB);
  EXPECT_EQ(servers[2].free, 10 * kGiB);
  EXPECT_EQ(StateName(servers[0]), "up");
  for (meta::Ino ino = 120; ino < 124; ino++) {
    auto l = pool_->CreateDataFile(kFs, ino);
    ASSERT_OK(l);
    EXPECT_EQ(l->mirrors[0].files[0].ds_id, Id(0));
  }
  for (meta::Ino ino = 124; ino < 128; ino++) {
    auto l = pool_->CreateDataFile(kFs, ino, Place(2, 1, 0));
    ASSERT_OK(l);
    EXPECT_EQ((std::set<uint32_t>{l->mirrors[0].files[0].ds_id, l->mirrors[1].files[0].ds_id}),
              (std::set<uint32_t>{Id(0), Id(1)}));
  }
  // Within 10% of each other counts as a tie: the two take turns, the third is not used.
  Ds(Id(1)).SetSpace(200 * kGiB, 95 * kGiB);
  ASSERT_TRUE(pool_->Ping(Id(1)).ok());  // a ping refreshes the space
  std::map<uint32_t, int> count;
  for (meta::Ino ino = 130; ino < 136; ino++) {
    auto l = pool_->CreateDataFile(kFs, ino);
    ASSERT_OK(l);
    count[l->mirrors[0].files[0].ds_id]++;
  }
  EXPECT_EQ(count[Id(0)], 3);
  EXPECT_EQ(count[Id(1)], 3);
  EXPECT_EQ(count[Id(2)], 0);
  // A full server is left out; too few left is kNoSpace, saying why.
  Ds(Id(0)).SetSpace(200 * kGiB, 0);
  ASSERT_TRUE(pool_->Ping(Id(0)).ok());
  auto three = pool_->CreateDataFile(kFs, 140, Place(3, 1, 0));
  ASSERT_FALSE(three.ok());
  EXPECT_EQ(three.status().code(), Code::kNoSpace) << three.status().ToString();
  EXPECT_NE(three.status().ToString().find("1 full"), std::string::npos) << three.status().ToString();
  auto two = pool_->CreateDataFile(kFs, 141, Place(2, 1, 0));
  ASSERT_OK(two);
  for (const auto& m : two->mirrors) EXPECT_NE(m.files[0].ds_id, Id(0));
}

TEST_F(DataServersTest, PlacementHonoursLabelsAndDraining) {
  MakePool({}, {{"tier=ssd", "site=a"}, {"tier=ssd", "site=b"}, {"tier=hdd", "site=a"}});
  Placement ssd = Place(1, 1, 0);
  ssd.require_labels = {"tier=ssd"};
  for (meta::Ino ino = 150; ino < 156; ino++) {
    auto l = pool_->CreateDataFile(kFs, ino, ssd);
    ASSERT_OK(l);
    EXPECT_NE(l->mirrors[0].files[0].ds_id, Id(2));
  }
  Placement both = ssd;
  both.require_labels = {"tier=ssd", "site=a"};
  auto a = pool_->CreateDataFile(kFs, 156, both);
  ASSERT_OK(a);
  EXPECT_EQ(a->mirrors[0].files[0].ds_id, Id(0));
  Placement ssd3 = ssd;
  ssd3.mirrors = 3;
  auto none = pool_->CreateDataFile(kFs, 157, ssd3);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), Code::kNoSpace);
  EXPECT_NE(none.status().ToString().find("tier=ssd"), std::string::npos) << none.status().ToString();
  Placement bad = ssd;
  bad.require_labels = {"ssd"};
  EXPECT_EQ(pool_->CreateDataFile(kFs, 158, bad).status().code(), Code::kInvalidArgument);

  // Draining: kept, but not chosen.
  ASSERT_TRUE(pool_->SetDraining(Id(0), true).ok());
  EXPECT_EQ(pool_->SetDraining(999, true).code(), Code::kNotFound);
  auto servers = pool_->Servers();
  EXPECT_TRUE(servers[0].draining);
  EXPECT_EQ(servers[0].config.labels, (std::vector<std::string>{"tier=ssd", "site=a"}));
  for (meta::Ino ino = 160; ino < 164; ino++) {
    auto l = pool_->CreateDataFile(kFs, ino, ssd);
    ASSERT_OK(l);
    EXPECT_EQ(l->mirrors[0].files[0].ds_id, Id(1));
  }
  Placement ssd2 = ssd;
  ssd2.mirrors = 2;
  auto two = pool_->CreateDataFile(kFs, 164, ssd2);
  EXPECT_EQ(two.status().code(), Code::kNoSpace);
  EXPECT_NE(two.status().ToString().find("1 draining"), std::string::npos) << two.status().ToString();
  // The draining server's files stay usable.
  ASSERT_OK(pool_->Write(*a, 0, Bytes::Copy("still here"), FILE_SYNC));
  EXPECT_TRUE(pool_->IsUsable(Id(0)));
  // A server that is down: kUnavailable (it may come back).
  Ds(Id(1)).Stop();
  (void)pool_->Ping(Id(1));
  auto down = pool_->CreateDataFile(kFs, 165, ssd);
  EXPECT_EQ(down.status().code(), Code::kUnavailable) << down.status().ToString();
  ASSERT_TRUE(pool_->SetDraining(Id(0), false).ok());
  ASSERT_OK(pool_->CreateDataFile(kFs, 166, ssd));
  EXPECT_EQ(StateName(pool_->Servers()[1]), "down");
}

TEST_F(DataServersTest, ClientReportedErrorsMarkAServerDown) {
  ASSERT_TRUE(pool_->Ping(Id(0)).ok());
  EXPECT_TRUE(pool_->IsUsable(Id(0)));
  EXPECT_FALSE(pool_->IsUsable(999));
  pool_->ReportError(Id(0), Status::Unavailable("LAYOUTERROR NFS4ERR_NXIO"));
  pool_->ReportError(999, Status::Unavailable("ignored"));
  EXPECT_EQ(pool_->HealthOf(Id(0)), Health::kDown);
  EXPECT_FALSE(pool_->IsUsable(Id(0)));
  EXPECT_NE(pool_->Servers()[0].last_error.find("LAYOUTERROR"), std::string::npos);
  for (meta::Ino ino = 170; ino < 174; ino++) {
    auto l = pool_->CreateDataFile(kFs, ino);
    ASSERT_OK(l);
    EXPECT_NE(l->mirrors[0].files[0].ds_id, Id(0));
  }
  ASSERT_TRUE(pool_->Ping(Id(0)).ok());  // the health check brings it back
  EXPECT_TRUE(pool_->IsUsable(Id(0)));
}

TEST_F(DataServersTest, ServersAddedAndRemovedAtRunTime) {
  pool_->SetTree(kFs, "tree1", "aaaa");
  TestDs extra;
  extra.Start();
  DataServerConfig c = Config(103, extra.address());
  c.labels = {"tier=new"};
  EXPECT_EQ(pool_->AddServer(Config(Id(1), extra.address())).code(), Code::kExists);
  EXPECT_FALSE(pool_->AddServer(Config(104, "127.0.0.1:1")).ok());  // must answer
  EXPECT_EQ(pool_->Find(104), nullptr);
  ASSERT_TRUE(pool_->AddServer(c).ok());
  EXPECT_EQ(pool_->MaxId(), 103u);
  auto servers = pool_->Servers();
  ASSERT_EQ(servers.size(), 4u);
  EXPECT_EQ(servers[3].config.id, 103u);
  EXPECT_EQ(servers[3].health, Health::kUp);
  EXPECT_TRUE(servers[3].space_known);
  EXPECT_EQ(FileContents(extra.root() + "/loom/tree1/.owner"), "aaaa\n");  // tree made on add
  Placement p = Place(1, 1, 0);
  p.require_labels = {"tier=new"};
  auto l = pool_->CreateDataFile(kFs, 180, p);
  ASSERT_OK(l);
  EXPECT_EQ(l->mirrors[0].files[0].ds_id, 103u);
  // A server holding another filesystem's tree is refused.
  TestDs foreign;
  foreign.Start();
  fsys::create_directories(foreign.root() + "/loom/tree1");
  std::ofstream(foreign.root() + "/loom/tree1/.owner") << "bbbb\n";
  EXPECT_EQ(pool_->AddServer(Config(105, foreign.address())).code(), Code::kPermission);
  EXPECT_EQ(pool_->Find(105), nullptr);

  const DataServerConfig* kept = pool_->Find(103);
  ASSERT_TRUE(pool_->RemoveServer(103).ok());
  EXPECT_EQ(kept->address, extra.address());  // a pointer taken before stays valid
  EXPECT_EQ(pool_->Find(103), nullptr);
  EXPECT_EQ(pool_->RemoveServer(103).code(), Code::kNotFound);
  EXPECT_EQ(pool_->RemovedIds(), (std::vector<uint32_t>{103}));
  EXPECT_EQ(pool_->Servers().size(), 3u);
  EXPECT_EQ(pool_->AddServer(c).code(), Code::kExists);  // a removed id is never reused
  EXPECT_EQ(pool_->CreateDataFile(kFs, 181, p).status().code(), Code::kNoSpace);
  c.id = 106;
  ASSERT_TRUE(pool_->AddServer(c).ok());
  ASSERT_OK(pool_->CreateDataFile(kFs, 181, p));
}

TEST_F(DataServersTest, RegistryPersistsAcrossStarts) {
  meta::MemKvStore store;
  std::vector<DataServerConfig> given;
  for (size_t i = 0; i < ds_.size(); i++) given.push_back(Config(0, ds_[i]->address()));
  given[0].labels = {"site=a"};
  given[1].advertised_address = "ds1.example:2049";
  auto plan = PlanStart(store, kFs, given, StartMode::kNormal, {});
  ASSERT_OK(plan);
  ASSERT_EQ(plan->servers.size(), 3u);
  for (const auto& c : plan->servers) EXPECT_EQ(c.uuid.size(), 16u);
  auto pool = DataServerPool::Create(plan->servers, {});
  ASSERT_OK(pool);
  DataServerPool& p = **pool;
  p.SetTree(kFs, plan->identity.tree, UuidHex(plan->identity.uuid));
  const uint32_t third = plan->servers[2].id;
  ASSERT_TRUE(p.SetDraining(third, true).ok());
  TestDs extra;
  extra.Start();
  DataServerConfig c = Config(0, extra.address());
  c.labels = {"tier=new"};
  auto id = AddDataServer(store, p, c);
  ASSERT_OK(id);
  EXPECT_EQ(*id, p.MaxId());
  EXPECT_GT(*id, third);
  EXPECT_EQ(AddDataServer(store, p, c).status().code(), Code::kExists);  // the same export
  ASSERT_TRUE(SaveRegistry(store, p).ok());

  // Restarted with the original three flags and no labels: everything comes back.
  std::vector<DataServerConfig> bare;
  for (size_t i = 0; i < ds_.size(); i++) bare.push_back(Config(0, ds_[i]->address()));
  auto again = PlanStart(store, kFs, bare, StartMode::kNormal, {});
  ASSERT_OK(again);
  ASSERT_EQ(again->servers.size(), 4u);
  std::map<uint32_t, DataServerConfig> by_id;
  for (const auto& s : again->servers) by_id[s.id] = s;
  for (size_t i = 0; i < 3; i++) EXPECT_EQ(again->servers[i].id, plan->servers[i].id);
  EXPECT_EQ(by_id[plan->servers[0].id].labels, (std::vector<std::string>{"site=a"}));
  EXPECT_EQ(by_id[plan->servers[1].id].advertised_address, "ds1.example:2049");
  EXPECT_TRUE(by_id[third].draining);
  EXPECT_FALSE(by_id[plan->servers[0].id].draining);
  ASSERT_TRUE(by_id.count(*id));
  EXPECT_EQ(by_id[*id].address, extra.address());
  EXPECT_EQ(by_id[*id].labels, (std::vector<std::string>{"tier=new"}));
  auto restarted = DataServerPool::Create(again->servers, {});
  ASSERT_OK(restarted);
  EXPECT_TRUE((*restarted)->Servers()[2].draining);

  // Removed: its record goes; the next start does not bring it back.
  ASSERT_TRUE(p.RemoveServer(*id).ok());
  ASSERT_TRUE(SaveRegistry(store, p).ok());
  auto third_start = PlanStart(store, kFs, bare, StartMode::kNormal, {});
  ASSERT_OK(third_start);
  EXPECT_EQ(third_start->servers.size(), 3u);
}

TEST_F(DataServersTest, MovesUseNewNameGenerations) {
  meta::MemKvStore store;
  StoreJournal journal(&store);
  pool_->SetCreateJournal(&journal);
  meta::Namespace ns(&store, kFs);
  ASSERT_TRUE(meta::RunTxn(store, [&](meta::Txn& t) { return ns.Mkfs(t, 0755, 0, 0); }).ok());
  auto made = meta::RunTxn(store, [&](meta::Txn& t) { return ns.Create(t, ns.root(), "f", {}); });
  ASSERT_OK(made);
  const meta::Ino ino = made->inode.ino;
  Placement p = Place(1, 1, 0);
  p.uid = p.gid = 0x10000006;
  p.mode = 0640;
  auto l0 = pool_->CreateDataFile(kFs, ino, p);
  ASSERT_OK(l0);
  ASSERT_TRUE(meta::RunTxn(store, [&](meta::Txn& t) { return ns.SetLayout(t, ino, *l0); }).ok());
  const uint32_t old_ds = l0->mirrors[0].files[0].ds_id;
  const std::string data = RandomBytes(3 * (1 << 20) + 12345, 7);
  ASSERT_OK(pool_->Write(*l0, 0, Bytes::Copy(data), UNSTABLE));
  ASSERT_OK(pool_->Commit(*l0));

  // Bad explicit placements.
  EXPECT_EQ(pool_->CreateDataFilesOn(kFs, ino, p, {Id(0), Id(1)}, 1).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(pool_->CreateDataFilesOn(kFs, ino, Place(2, 1, 0), {Id(0), Id(0)}, 1).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(pool_->CreateDataFilesOn(kFs, ino, p, {999}, 1).status().code(), Code::kNotFound);

  // Generation 1 on the same server as generation 0: no collision.
  auto l1 = pool_->CreateDataFilesOn(kFs, ino, p, {old_ds}, 1);
  ASSERT_OK(l1);
  EXPECT_EQ(l1->mirrors[0].files[0].name_gen, 1u);
  EXPECT_EQ(l1->mirrors[0].files[0].uid, 0x10000006u);
  EXPECT_TRUE(fsys::exists(Ds(old_ds).Path(kFs, ino, 1)));
  struct stat st;
  ASSERT_EQ(::stat(Ds(old_ds).Path(kFs, ino, 1).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(st.st_uid, 0x10000006u);
  // While the move is in flight (the stored layout is generation 0) the GC leaves it alone.
  ASSERT_OK(ResolveIntents(store, kFs, *pool_, true));
  EXPECT_TRUE(fsys::exists(Ds(old_ds).Path(kFs, ino, 1)));
  ASSERT_TRUE(pool_->CopyRange(*l0, *l1, 0, UINT64_MAX, data.size()).ok());
  EXPECT_TRUE(FileContents(Ds(old_ds).Path(kFs, ino, 1)) == data);

  // Then striped over three servers (generation 2), in two ranges, then two mirrors (3).
  Placement striped = Place(1, 3, 64 * 1024);
  auto l2 = pool_->CreateDataFilesOn(kFs, ino, striped, {Id(2), Id(0), Id(1)}, 2);
  ASSERT_OK(l2);
  EXPECT_EQ(l2->mirrors[0].files[0].ds_id, Id(2));
  EXPECT_EQ(l2->mirrors[0].files[2].ds_id, Id(1));
  ASSERT_TRUE(pool_->CopyRange(*l1, *l2, 0, 1 << 20, data.size()).ok());
  ASSERT_TRUE(pool_->CopyRange(*l1, *l2, 1 << 20, UINT64_MAX, data.size()).ok());
  for (uint32_t s = 0; s < 3; s++)
    EXPECT_EQ(fsys::file_size(Ds(l2->mirrors[0].files[s].ds_id).Path(kFs, ino, 2)),
              StripeFileSize(*l2, s, data.size()));
  auto r = pool_->Read(*l2, 0, static_cast<uint32_t>(data.size() + 10));
  ASSERT_OK(r);
  EXPECT_TRUE(r->data.view() == data);
  EXPECT_EQ(NextNameGen(*l0), 1u);
  EXPECT_EQ(NextNameGen(*l2), 3u);
  auto l3 = pool_->CreateDataFilesOn(kFs, ino, Place(2, 1, 0), {Id(1), Id(2)}, NextNameGen(*l2));
  ASSERT_OK(l3);
  ASSERT_TRUE(pool_->CopyRange(*l2, *l3, 0, UINT64_MAX, data.size()).ok());
  for (const auto& m : l3->mirrors)
    EXPECT_TRUE(FileContents(Ds(m.files[0].ds_id).Path(kFs, ino, 3)) == data);

  // A move given up: its files and intents go.
  auto l4 = pool_->CreateDataFilesOn(kFs, ino, p, {Id(2)}, 4);
  ASSERT_OK(l4);
  ASSERT_TRUE(pool_->AbandonDataFiles(kFs, ino, *l4).ok());
  EXPECT_FALSE(fsys::exists(Ds(Id(2)).Path(kFs, ino, 4)));

  // Switch to generation 3: the old data files are queued and removed by name and generation,
  // the new generation's intents are settled by the GC.
  ASSERT_TRUE(meta::RunTxn(store, [&](meta::Txn& t) { return ns.ReplaceLayout(t, ino, *l3); }).ok());
  GcWorker gc(&store, {&ns}, pool_.get(), GcWorker::Options{50, 100});
  ASSERT_OK(gc.RunOnce());
  EXPECT_FALSE(fsys::exists(Ds(old_ds).Path(kFs, ino)));
  for (const auto& m : l3->mirrors) EXPECT_TRUE(fsys::exists(Ds(m.files[0].ds_id).Path(kFs, ino, 3)));
  // Generations 1 and 2 were never stored: start-up recovery removes them by their intents.
  auto resolved = ResolveIntents(store, kFs, *pool_);
  ASSERT_OK(resolved);
  EXPECT_FALSE(fsys::exists(Ds(old_ds).Path(kFs, ino, 1)));
  for (uint32_t id = 100; id < 103; id++) EXPECT_FALSE(fsys::exists(Ds(id).Path(kFs, ino, 2)));
  for (const auto& m : l3->mirrors) EXPECT_TRUE(fsys::exists(Ds(m.files[0].ds_id).Path(kFs, ino, 3)));
  auto pending = meta::RunTxn(store, [&](meta::Txn& t) -> Result<size_t> {
    size_t n = 0;
    LOOM_RETURN_IF_ERROR(t.Scan(meta::KeyRange::Prefix(meta::keys::PendingPrefix(kFs, ino)), 0,
                                [&](std::string_view, std::string_view) { return ++n; }));
    return n;
  });
  EXPECT_EQ(*pending, 0u);
  // Scrub sees a consistent picture with generation-named files.
  char* buf = nullptr;
  size_t len = 0;
  std::FILE* out = ::open_memstream(&buf, &len);
  auto rep = Scrub(store, kFs, *pool_, false, out);
  std::fclose(out);
  std::string text(buf, len);
  std::free(buf);
  ASSERT_OK(rep);
  EXPECT_EQ(rep->inconsistencies(), 0u) << text;
  EXPECT_EQ(rep->data_files, 2u) << text;
}

TEST_F(DataServersTest, MirrorFailuresAreReportedAndResynced) {
  Placement p = Place(2, 1, 0);
  p.uid = p.gid = 0x10000008;
  p.mode = 0640;
  auto made = pool_->CreateDataFile(kFs, 190, p);
  ASSERT_OK(made);
  meta::Layout l = *made;
  const uint32_t a = l.mirrors[0].files[0].ds_id, b = l.mirrors[1].files[0].ds_id;
  std::string data = RandomBytes(2 * (1 << 20) + 100, 9);
  ASSERT_OK(pool_->Write(l, 0, Bytes::Copy(data.substr(0, 1000)), FILE_SYNC));

  // Mirror 1's server goes away: with failed_mirrors the calls go on and name it.
  Ds(b).Stop();
  FailedMirrors failed;
  auto w = pool_->Write(l, 0, Bytes::Copy(data), UNSTABLE, &failed);
  ASSERT_OK(w);
  EXPECT_EQ(w->count, data.size());
  EXPECT_EQ(failed, (FailedMirrors{1}));
  failed.clear();
  ASSERT_OK(pool_->Commit(l, &failed));
  EXPECT_EQ(failed, (FailedMirrors{1}));
  failed.clear();
  ASSERT_TRUE(pool_->SetOwner(l, 0x1000000a, 0x1000000a, 0640, &failed).ok());
  EXPECT_EQ(failed, (FailedMirrors{1}));
  failed.clear();
  EXPECT_TRUE(pool_->Truncate(l, data.size(), &failed).ok());
  EXPECT_EQ(failed, (FailedMirrors{1}));
  // Without it, all mirrors must succeed, as before.
  EXPECT_EQ(pool_->Truncate(l, data.size()).code(), Code::kUnavailable);

  // The MDS marks it stale: calls leave it out, with or without failed_mirrors.
  l.mirrors[1].stale = true;
  ASSERT_OK(pool_->Write(l, 0, Bytes::Copy(data.substr(0, 10)), FILE_SYNC));
  ASSERT_OK(pool_->Commit(l));
  Ds(b).Start();
  ASSERT_TRUE(pool_->Ping(b).ok());
  EXPECT_EQ(FileContents(Ds(b).Path(kFs, 190)), data.substr(0, 1000));  // missed the writes
  meta::Layout flipped = l;  // the stale mirror first: reads still skip it
  std::swap(flipped.mirrors[0], flipped.mirrors[1]);
  auto r = pool_->Read(flipped, 0, static_cast<uint32_t>(data.size()));
  ASSERT_OK(r);
  EXPECT_TRUE(r->data.view() == data);
  EXPECT_EQ(*pool_->GetSize(flipped), data.size());

  // Resync from the good mirror; then the resynced copy serves alone.
  ASSERT_TRUE(pool_->ResyncMirror(l, 1, data.size()).ok());
  EXPECT_TRUE(FileContents(Ds(b).Path(kFs, 190)) == data);
  struct stat st;
  ASSERT_EQ(::stat(Ds(b).Path(kFs, 190).c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0x1000000au);  // the fence it missed
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  l.mirrors[1].stale = false;
  Ds(a).Stop();
  r = pool_->Read(l, 0, static_cast<uint32_t>(data.size()));
  ASSERT_OK(r);
  EXPECT_TRUE(r->data.view() == data);

  // Every mirror failing still fails; every mirror stale is an I/O error.
  Ds(b).Stop();
  failed.clear();
  EXPECT_EQ(pool_->Write(l, 0, Bytes::Copy("x"), FILE_SYNC, &failed).status().code(), Code::kUnavailable);
  l.mirrors[0].stale = l.mirrors[1].stale = true;
  EXPECT_EQ(pool_->Read(l, 0, 10).status().code(), Code::kIo);
  EXPECT_EQ(pool_->Write(l, 0, Bytes::Copy("x"), FILE_SYNC).status().code(), Code::kIo);
  EXPECT_FALSE(pool_->ResyncMirror(l, 0, data.size()).ok());
}

}  // namespace
}  // namespace loom::mds
