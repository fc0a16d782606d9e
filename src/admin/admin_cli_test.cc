// The `loom` CLI's admin side against an in-process admin server: argv forwarded as given,
// output printed, the server's exit status returned, the server address taken from --mds,
// $LOOM_MDS or admin --server.
#include <stdlib.h>
#include <sys/wait.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "admin/commands.h"
#include "rpc/server.h"

namespace loom::admin {
namespace {

struct CliRun {
  int status = -1;
  std::string out;  // stdout and stderr together
};

// Runs `loom ARGS` through the shell (arguments are single-quoted, without quotes inside).
CliRun Loom(const std::string& args, const std::string& env = "") {
  std::string cmd = env + (env.empty() ? "" : " ") + LOOM_CLI_BINARY + std::string(" ") + args +
                    " 2>&1";
  CliRun r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

class AdminCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cmds_.Add("ds list", "ds list", true, [](const std::vector<std::string>&) {
      return Ok("ID ADDRESS STATE\n1 127.0.0.1:2050 up\n");
    });
    cmds_.Add("echo", "echo WORDS...", true, [](const std::vector<std::string>& args) {
      std::string s;
      for (const auto& a : args) s += "[" + a + "]";
      return Ok(s);  // no trailing newline: the CLI adds one
    });
    cmds_.Add("layout", "layout PATH", true,
              [](const std::vector<std::string>& a) { return Ok("layout of " + a.at(0) + "\n"); });
    cmds_.Add("mv-data", "mv-data PATH --to ID[,ID...]", false,
              [](const std::vector<std::string>& a) {
                auto p = ParseFlags(a, {"to"});
                if (!p.ok() || p->positional.size() != 1) return UsageError();
                auto ids = p->GetIds("to");
                if (!ids.ok() || ids->empty()) return UsageError(ids.ok() ? "" : ids.status().message());
                return Ok("moving " + p->positional[0] + " to " + std::to_string(ids->size()) +
                          " servers\n");
              });
    cmds_.Add("fence", "fence PATH", false,
              [](const std::vector<std::string>& a) { return AdminReply{7, "cannot fence " + a.at(0)}; });
    rw_ = StartServer("*(rw,all_squash,anonuid=0,anongid=0)");  // every caller is root
    ro_ = StartServer("*(ro,all_squash,anonuid=0,anongid=0)");
    user_ = StartServer("*(rw,all_squash,anonuid=1000,anongid=1000)");
  }
  void TearDown() override {
    for (auto* s : {&rw_, &ro_, &user_}) {
      if (*s) (*s)->Stop();
    }
  }
  std::unique_ptr<rpc::RpcServer> StartServer(const std::string& exports) {
    rpc::ServerOptions o;
    o.listen = "127.0.0.1:0";
    o.loops = 1;
    o.workers = 1;
    o.exports = rpc::ExportRules::Parse(exports, "test").value();
    auto s = std::make_unique<rpc::RpcServer>(o);
    s->Register(AdminProgram(cmds_));
    EXPECT_TRUE(s->Start().ok());
    return s;
  }
  static std::string Addr(const std::unique_ptr<rpc::RpcServer>& s) {
    return "127.0.0.1:" + std::to_string(s->port());
  }

  AdminCommands cmds_;
  std::unique_ptr<rpc::RpcServer> rw_, ro_, user_;
};

TEST_F(AdminCliTest, AdminForwardsArgvAndPrintsOutput) {
  CliRun r = Loom("--mds " + Addr(rw_) + " admin ds list");
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out, "ID ADDRESS STATE\n1 127.0.0.1:2050 up\n");
  r = Loom("admin --server " + Addr(rw_) + " echo 'a b' --x '' c");
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out, "[a b][--x][][c]\n");
  r = Loom("admin ds list", "LOOM_MDS=" + Addr(rw_));
  EXPECT_EQ(r.status, 0) << r.out;
  // --server overrides --mds.
  r = Loom("--mds 127.0.0.1:1 admin --server " + Addr(rw_) + " --timeout 5 ds list");
  EXPECT_EQ(r.status, 0) << r.out;
}

TEST_F(AdminCliTest, AliasesForwardToAdmin) {
  std::string mds = "--mds " + Addr(rw_);
  CliRun r = Loom(mds + " ds list");
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out, "ID ADDRESS STATE\n1 127.0.0.1:2050 up\n");
  r = Loom(mds + " layout /dir/file");
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out, "layout of /dir/file\n");
  r = Loom(mds + " mv-data /f --to 2,3");
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out, "moving /f to 2 servers\n");
  r = Loom(mds + " mv-data /f --to 2,,3");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.out.find("usage: mv-data PATH --to ID[,ID...]"), std::string::npos) << r.out;
  r = Loom(mds + " fence /f");
  EXPECT_EQ(r.status, 7);
  EXPECT_EQ(r.out, "cannot fence /f\n");
  r = Loom(mds + " policy get /");  // not registered here: usage from the server
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.out.find("unknown command 'policy get /'"), std::string::npos) << r.out;
}

TEST_F(AdminCliTest, RefusalsExitThirteen) {
  CliRun r = Loom("--mds " + Addr(user_) + " ds list");
  EXPECT_EQ(r.status, 13);
  EXPECT_NE(r.out.find("permission denied"), std::string::npos) << r.out;
  r = Loom("--mds " + Addr(ro_) + " ds list");
  EXPECT_EQ(r.status, 0) << r.out;
  r = Loom("--mds " + Addr(ro_) + " fence /f");
  EXPECT_EQ(r.status, 13);
  EXPECT_NE(r.out.find("read-only"), std::string::npos) << r.out;
}

TEST_F(AdminCliTest, UnreachableServerAndBadFlags) {
  // Port 1 on loopback: nothing listens there.
  CliRun r = Loom("admin --server 127.0.0.1:1 ds list");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("loom: admin 127.0.0.1:1"), std::string::npos) << r.out;
  r = Loom("admin --timeout zero ds list");
  EXPECT_EQ(r.status, 2);
  r = Loom("admin --server");
  EXPECT_EQ(r.status, 2);
}

}  // namespace
}  // namespace loom::admin
