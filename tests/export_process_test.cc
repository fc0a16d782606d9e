// Export rules in the real daemons (issue 9 item 3):
//  - loom-ds squashes a forged uid 0 from any address but its metadata servers (--mds): such a
//    caller can neither read nor overwrite a root-owned 0600 file, while the MDS address can;
//  - an address no rule admits gets AUTH_TOOWEAK;
//  - a rules file with an error keeps either daemon from starting, naming the line.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "daemon_process.h"
#include "nfs3/nfs3_client.h"
#include "rpc/raw_test_client.h"

namespace loom {
namespace {

using namespace nfs3;
using namespace rpc::testing;
using loom::testing::Daemon;
using loom::testing::Eventually;

class ExportProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/loom-exports-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    root_ = dir_ + "/root";
    std::filesystem::create_directories(root_);
    ::chmod(root_.c_str(), 0755);
    loops_ = std::make_unique<rpc::LoopGroup>(1);
    loops_->Start();
  }
  void TearDown() override {
    mds_.Stop();
    ds_.Stop();
    loops_.reset();
    std::filesystem::remove_all(dir_);
  }
  bool StartDs(std::vector<std::string> extra) {
    std::vector<std::string> argv = {LOOM_DS_BINARY, "--root", root_, "--state-dir",
                                     dir_ + "/ds-state", "--listen", "127.0.0.1:0", "--workers", "2"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return ds_.Start(argv, dir_ + "/ds.log");
  }
  // One NFSv3/MOUNT call from `from` with `cred`; the reply's head and results.
  ReplyHead Call(const char* from, uint32_t prog, uint32_t proc, const rpc::Cred& cred,
                 const std::string& args) {
    int fd = RawConnectFrom(ds_.port(), from);
    EXPECT_GE(fd, 0);
    ReplyHead h;
    if (fd < 0) return h;
    EXPECT_TRUE(SendAll(fd, CallRecord(1, prog, 3, proc, cred, args)));
    h = ParseReply(RecvRecord(fd));
    ::close(fd);
    return h;
  }
  template <typename T>
  static std::string Encode(const T& v) {
    xdr::Encoder e;
    xdr_encode(e, v);
    return e.Flatten();
  }
  template <typename T>
  static bool Decode(const std::string& s, T* v) {
    xdr::Decoder d(reinterpret_cast<const uint8_t*>(s.data()), s.size());
    return xdr_decode(d, *v);
  }

  std::string dir_, root_;
  Daemon ds_, mds_;
  std::unique_ptr<rpc::LoopGroup> loops_;
};

TEST_F(ExportProcessTest, LoomDsSquashesForgedRootExceptFromItsMds) {
  std::string secret = root_ + "/secret";
  std::ofstream(secret) << "top secret";
  ASSERT_EQ(::chown(secret.c_str(), 0, 0), 0);
  ASSERT_EQ(::chmod(secret.c_str(), 0600), 0);
  // The export already holds a file: a first start there needs --new-secret (issue 10).
  ASSERT_TRUE(StartDs({"--mds", "127.0.0.1", "--new-secret"})) << ds_.log();

  // 127.0.0.2 claims to be root.
  const rpc::Cred root = rpc::Cred::Sys(0, 0);
  xdr::Encoder path;
  path.string("/");
  ReplyHead m = Call("127.0.0.2", MOUNT_PROGRAM, MOUNTPROC3_MNT, root, path.Flatten());
  ASSERT_EQ(m.stat, static_cast<uint32_t>(rpc::SUCCESS));
  mountres3 mr;
  ASSERT_TRUE(Decode(m.results, &mr));
  ASSERT_EQ(mr.fhs_status, MNT3_OK);
  LOOKUP3args la;
  la.what.dir.data = mr.mountinfo.fhandle;
  la.what.name = "secret";
  ReplyHead l = Call("127.0.0.2", NFS_PROGRAM, NFSPROC3_LOOKUP, root, Encode(la));
  LOOKUP3res lr;
  ASSERT_TRUE(Decode(l.results, &lr));
  ASSERT_EQ(lr.status, NFS3_OK);
  READ3args ra;
  ra.file = lr.resok.object;
  ra.count = 100;
  READ3res rr;
  ASSERT_TRUE(Decode(Call("127.0.0.2", NFS_PROGRAM, NFSPROC3_READ, root, Encode(ra)).results, &rr));
  EXPECT_EQ(rr.status, NFS3ERR_ACCES);
  WRITE3args wa;
  wa.file = lr.resok.object;
  wa.stable = FILE_SYNC;
  wa.data = Bytes::Copy("pwned");
  wa.count = wa.data.size;
  WRITE3res wr;
  ASSERT_TRUE(Decode(Call("127.0.0.2", NFS_PROGRAM, NFSPROC3_WRITE, root, Encode(wa)).results, &wr));
  EXPECT_EQ(wr.status, NFS3ERR_ACCES);
  EXPECT_EQ(testing::ReadFile(secret), "top secret");

  // The metadata server's address keeps root.
  auto c = Nfs3Client::Connect(loops_->At(0), ds_.addr(), root);
  ASSERT_TRUE(c.ok());
  READ3res ok;
  ASSERT_TRUE((*c)->Call(NFSPROC3_READ, ra, &ok).ok());
  ASSERT_EQ(ok.status, NFS3_OK);
  EXPECT_EQ(std::string(ok.resok.data.view()), "top secret");
}

TEST_F(ExportProcessTest, LoomDsRefusesAddressesNoRuleAdmits) {
  std::string rules = dir_ + "/ds.exports";
  std::ofstream(rules) << "# only the first two loopback addresses\n127.0.0.1(rw) 127.0.0.2(ro)\n";
  ASSERT_TRUE(StartDs({"--exports", rules})) << ds_.log();
  ReplyHead ok = Call("127.0.0.2", NFS_PROGRAM, NFSPROC3_NULL, rpc::Cred(), "");
  EXPECT_EQ(ok.reply_stat, static_cast<uint32_t>(rpc::MSG_ACCEPTED));
  ReplyHead no = Call("127.0.0.3", NFS_PROGRAM, NFSPROC3_NULL, rpc::Cred(), "");
  EXPECT_EQ(no.reply_stat, static_cast<uint32_t>(rpc::MSG_DENIED));
  EXPECT_EQ(no.stat, static_cast<uint32_t>(rpc::AUTH_ERROR));
  EXPECT_EQ(no.auth_stat, static_cast<uint32_t>(rpc::AUTH_TOOWEAK));
  EXPECT_TRUE(ds_.Alive());
}

TEST_F(ExportProcessTest, BadRulesFilesKeepBothDaemonsFromStarting) {
  std::string bad = dir_ + "/bad.exports";
  std::ofstream(bad) << "127.0.0.0/8(rw)\n* (rw)\n";
  EXPECT_FALSE(StartDs({"--exports", bad}));
  EXPECT_NE(ds_.log().find(bad + ":2: "), std::string::npos) << ds_.log();

  Daemon ds2;
  ASSERT_TRUE(ds2.Start({LOOM_DS_BINARY, "--root", root_, "--state-dir", dir_ + "/ds2-state",
                         "--listen", "127.0.0.1:0", "--mds", "127.0.0.1"},
                        dir_ + "/ds2.log"))
      << ds2.log();
  EXPECT_FALSE(mds_.Start({LOOM_MDS_BINARY, "--state-dir", dir_ + "/mds", "--ds", ds2.addr(),
                           "--listen", "127.0.0.1:0", "--exports", bad},
                          dir_ + "/mds.log"));
  EXPECT_NE(mds_.log().find(bad + ":2: "), std::string::npos) << mds_.log();
}

}  // namespace
}  // namespace loom
