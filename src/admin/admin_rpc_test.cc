// The admin program served by an in-process RpcServer: round trips through CallAdmin, who may
// run what (uid, root squashing, read-only exports), and the argument bounds.
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "admin/admin_rpc.h"
#include "admin/commands.h"
#include "rpc/raw_test_client.h"
#include "rpc/server.h"

namespace loom::admin {
namespace {

using rpc::Cred;

constexpr int kTimeoutMs = 5000;

class AdminRpcTest : public ::testing::Test {
 protected:
  // Starts a server whose export rules are `exports` (file syntax) serving cmds_.
  void Start(const std::string& exports = "*(rw,no_root_squash)", size_t max_output = 1u << 20) {
    cmds_.Add("ds list", "ds list", true, [this](const std::vector<std::string>& args) {
      runs_++;
      std::string out = "1 127.0.0.1:2050 up\n";
      for (const auto& a : args) out += "arg " + a + "\n";
      return Ok(out);
    });
    cmds_.Add("ds drain", "ds drain ID", false, [this](const std::vector<std::string>& args) {
      runs_++;
      if (args.size() != 1) return UsageError();
      return Ok("draining " + args[0] + "\n");
    });
    cmds_.Add("fail", "fail CODE", false, [this](const std::vector<std::string>& args) {
      runs_++;
      return AdminReply{std::atoi(args.empty() ? "1" : args[0].c_str()), "failed\n"};
    });
    cmds_.Add("big", "big N", true, [](const std::vector<std::string>& args) {
      return Ok(std::string(std::stoul(args.at(0)), 'x'));
    });
    rpc::ServerOptions o;
    o.listen = "127.0.0.1:0";
    o.loops = 1;
    o.workers = 2;
    auto rules = rpc::ExportRules::Parse(exports, "test");
    ASSERT_TRUE(rules.ok()) << rules.status().ToString();
    o.exports = std::move(rules.value());
    server_ = std::make_unique<rpc::RpcServer>(o);
    server_->Register(AdminProgram(cmds_, max_output));
    ASSERT_TRUE(server_->Start().ok());
    addr_ = "127.0.0.1:" + std::to_string(server_->port());
  }
  void TearDown() override {
    if (server_) server_->Stop();
  }

  Result<AdminReply> Call(const std::vector<std::string>& argv, Cred cred = Cred::Sys(0, 0)) {
    return CallAdmin(addr_, argv, cred, kTimeoutMs);
  }

  // Sends a COMMAND call with hand-made argument bytes; returns the accept_stat.
  uint32_t RawCommand(const std::string& args) {
    int fd = rpc::testing::RawConnectFrom(server_->port());
    EXPECT_GE(fd, 0);
    std::string rec = rpc::testing::CallRecord(7, kAdminProgram, kAdminVersion,
                                               LOOM_ADMINPROC_COMMAND, Cred::Sys(0, 0), args);
    EXPECT_TRUE(rpc::testing::SendAll(fd, rec));
    auto head = rpc::testing::ParseReply(rpc::testing::RecvRecord(fd));
    ::close(fd);
    EXPECT_EQ(head.reply_stat, static_cast<uint32_t>(rpc::MSG_ACCEPTED));
    return head.stat;
  }

  AdminCommands cmds_;
  std::atomic<int> runs_{0};
  std::unique_ptr<rpc::RpcServer> server_;
  std::string addr_;
};

std::string EncodeArgv(const std::vector<std::string>& argv) {
  xdr::Encoder e;
  LOOM_ADMIN_COMMAND_args a;
  a.argv = argv;
  xdr_encode(e, a);
  return e.Flatten();
}

TEST_F(AdminRpcTest, RootRunsCommandsAndGetsStatusAndOutput) {
  Start();
  auto r = Call({"ds", "list", "--long"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 0);
  EXPECT_EQ(r->output, "1 127.0.0.1:2050 up\narg --long\n");

  r = Call({"fail", "5"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 5);
  EXPECT_EQ(r->output, "failed\n");
  // A non-zero exit status counts as an error of the procedure.
  EXPECT_EQ(server_->stats().Get("admin.COMMAND")->calls(), 2u);
  EXPECT_EQ(server_->stats().Get("admin.COMMAND")->errors(), 1u);

  r = Call({"ds", "drain"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, kAdminUsage);
  EXPECT_EQ(r->output, "usage: ds drain ID\n");
  EXPECT_EQ(runs_.load(), 3);
}

TEST_F(AdminRpcTest, HostNamesAreResolved) {
  Start();
  // "localhost" may resolve to ::1 first, where nothing listens: the next address is tried.
  auto r = CallAdmin("localhost:" + std::to_string(server_->port()), {"ds", "list"},
                     Cred::Sys(0, 0), kTimeoutMs);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 0);
  auto bad = CallAdmin("no-such-host.invalid:2049", {"ds", "list"}, Cred::Sys(0, 0), kTimeoutMs);
  EXPECT_FALSE(bad.ok());
  EXPECT_FALSE(CallAdmin("127.0.0.1", {"help"}, Cred::Sys(0, 0), kTimeoutMs).ok());
  EXPECT_FALSE(CallAdmin("127.0.0.1:99999", {"help"}, Cred::Sys(0, 0), kTimeoutMs).ok());
}

TEST_F(AdminRpcTest, NonRootUserIsRefused) {
  Start();
  auto r = Call({"ds", "list"}, Cred::Sys(1000, 1000));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, kAdminDenied);
  EXPECT_NE(r->output.find("permission denied"), std::string::npos) << r->output;
  EXPECT_NE(r->output.find("uid 1000"), std::string::npos) << r->output;
  // Root's group is not root.
  r = Call({"ds", "list"}, Cred::Sys(1000, 0, {0}));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, kAdminDenied);
  // AUTH_NONE is nobody.
  r = Call({"ds", "list"}, Cred());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, kAdminDenied);
  EXPECT_EQ(runs_.load(), 0);
  EXPECT_EQ(server_->stats().Get("admin.COMMAND")->errors(), 3u);
}

TEST_F(AdminRpcTest, SquashedRootIsRefused) {
  Start("*(rw,root_squash)");
  auto r = Call({"ds", "drain", "1"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, kAdminDenied);
  EXPECT_NE(r->output.find("rw,no_root_squash"), std::string::npos) << r->output;
  EXPECT_NE(r->output.find("uid 65534"), std::string::npos) << r->output;
  r = Call({"ds", "list"});  // not even read-only commands
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, kAdminDenied);
  EXPECT_EQ(runs_.load(), 0);
}

TEST_F(AdminRpcTest, AllSquashAndAnonuidZeroIsStillRootByItsRule) {
  // anonuid=0 maps everyone to root: the rule's author said so; the layer checks the mapped id.
  Start("*(rw,all_squash,anonuid=0,anongid=0)");
  auto r = Call({"ds", "list"}, Cred::Sys(1000, 1000));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 0);
}

TEST_F(AdminRpcTest, ReadOnlyExportRunsOnlyReadOnlyCommands) {
  Start("*(ro,no_root_squash)");
  auto r = Call({"ds", "list"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 0) << r->output;
  r = Call({"help"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 0);
  EXPECT_NE(r->output.find("ds drain ID"), std::string::npos);
  EXPECT_EQ(runs_.load(), 1);
  r = Call({"ds", "drain", "1"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, kAdminDenied);
  EXPECT_NE(r->output.find(kAdminDeniedMessage), std::string::npos) << r->output;
  EXPECT_NE(r->output.find("read-only"), std::string::npos) << r->output;
  r = Call({"fail", "0"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, kAdminDenied);
  EXPECT_EQ(runs_.load(), 1);
  // A line that names no command only prints the usage: allowed, answered as usage.
  r = Call({"nonsense"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, kAdminUsage);
}

TEST_F(AdminRpcTest, PrefixListAuthorizesPlainHandlers) {
  std::atomic<int> calls{0};
  rpc::ServerOptions o;
  o.listen = "127.0.0.1:0";
  o.loops = 1;
  o.workers = 1;
  o.exports = rpc::ExportRules::Parse("*(ro,no_root_squash)", "t").value();
  server_ = std::make_unique<rpc::RpcServer>(o);
  server_->Register(AdminProgram([&](const rpc::CallContext& ctx, const std::vector<std::string>& argv) {
    calls++;
    EXPECT_TRUE(ctx.read_only);
    EXPECT_EQ(ctx.cred.uid, 0u);
    return AdminReply{0, std::to_string(argv.size())};
  }));
  ASSERT_TRUE(server_->Start().ok());
  addr_ = "127.0.0.1:" + std::to_string(server_->port());
  auto r = Call({"layout", "/a/b"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 0);
  EXPECT_EQ(r->output, "2");
  r = Call({"policy", "get", "/a"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 0);
  r = Call({"policy", "set", "/a", "--mirrors", "2"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, kAdminDenied);
  r = Call({"layoutx", "/a"});  // whole words only
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, kAdminDenied);
  r = Call({"ds"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, kAdminDenied);
  EXPECT_EQ(calls.load(), 2);
}

TEST_F(AdminRpcTest, NullAnswersAnyone) {
  Start("*(ro,root_squash)");
  int fd = rpc::testing::RawConnectFrom(server_->port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(rpc::testing::SendAll(
      fd, rpc::testing::CallRecord(1, kAdminProgram, kAdminVersion, LOOM_ADMINPROC_NULL, Cred())));
  auto head = rpc::testing::ParseReply(rpc::testing::RecvRecord(fd));
  ::close(fd);
  EXPECT_EQ(head.reply_stat, static_cast<uint32_t>(rpc::MSG_ACCEPTED));
  EXPECT_EQ(head.stat, static_cast<uint32_t>(rpc::SUCCESS));
}

TEST_F(AdminRpcTest, ArgumentBounds) {
  Start();
  // At the bounds: 64 words of 4 KiB each.
  std::vector<std::string> argv = {"ds", "list"};
  while (argv.size() < kMaxArgs) argv.push_back(std::string(kMaxArgLen, 'a'));
  auto r = Call(argv);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 0);
  EXPECT_EQ(runs_.load(), 1);

  // Over them: refused by the client before sending...
  auto over = argv;
  over.push_back("x");
  EXPECT_EQ(Call(over).status().code(), Code::kInvalidArgument);
  auto long_word = std::vector<std::string>{"ds", "list", std::string(kMaxArgLen + 1, 'a')};
  EXPECT_EQ(Call(long_word).status().code(), Code::kInvalidArgument);
  // ...and by the server when sent anyway.
  EXPECT_EQ(RawCommand(EncodeArgv(over)), static_cast<uint32_t>(rpc::GARBAGE_ARGS));
  EXPECT_EQ(RawCommand(EncodeArgv(long_word)), static_cast<uint32_t>(rpc::GARBAGE_ARGS));
  EXPECT_EQ(runs_.load(), 1);
}

TEST_F(AdminRpcTest, MalformedArgumentsAreGarbage) {
  Start();
  std::string good = EncodeArgv({"ds", "list"});
  EXPECT_EQ(RawCommand(good), static_cast<uint32_t>(rpc::SUCCESS));
  EXPECT_EQ(RawCommand(""), static_cast<uint32_t>(rpc::GARBAGE_ARGS));            // no count
  EXPECT_EQ(RawCommand(good.substr(0, good.size() - 4)), static_cast<uint32_t>(rpc::GARBAGE_ARGS));
  EXPECT_EQ(RawCommand(good + std::string(4, '\0')), static_cast<uint32_t>(rpc::GARBAGE_ARGS));
  // A count that promises more words than there are bytes.
  EXPECT_EQ(RawCommand(std::string("\0\0\0\x3f", 4)), static_cast<uint32_t>(rpc::GARBAGE_ARGS));
  // A word whose length runs past the end.
  EXPECT_EQ(RawCommand(std::string("\0\0\0\x01\0\0\x0f\xff", 8) + "abcd"),
            static_cast<uint32_t>(rpc::GARBAGE_ARGS));
  EXPECT_EQ(runs_.load(), 1);
}

TEST_F(AdminRpcTest, LongOutputIsCut) {
  Start("*(rw,no_root_squash)", 1000);
  auto r = Call({"big", "500"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->output, std::string(500, 'x'));
  r = Call({"big", "5000"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->output.substr(0, 1000), std::string(1000, 'x'));
  EXPECT_NE(r->output.find("output cut at 1000 of 5000 bytes"), std::string::npos);
  // A command that throws is answered, not fatal.
  r = Call({"big"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, kAdminFailed);
  EXPECT_NE(r->output.find("internal error"), std::string::npos);
}

TEST_F(AdminRpcTest, ServerWithoutTheProgramIsNamed) {
  rpc::ServerOptions o;
  o.listen = "127.0.0.1:0";
  o.loops = 1;
  o.workers = 1;
  server_ = std::make_unique<rpc::RpcServer>(o);
  rpc::ProgramDesc other;
  other.prog = 100003;
  other.vers = 3;
  other.procs.resize(1);
  other.procs[0] = {"NULL", [](const rpc::CallContext&, xdr::Decoder&, xdr::Encoder&) {
                      return rpc::SUCCESS;
                    }};
  server_->Register(other);
  ASSERT_TRUE(server_->Start().ok());
  auto r = CallAdmin("127.0.0.1:" + std::to_string(server_->port()), {"help"}, Cred::Sys(0, 0),
                     kTimeoutMs);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("does not serve the Loom admin program"), std::string::npos)
      << r.status().ToString();
  // Nothing listening.
  server_->Stop();
  uint16_t port = server_->port();
  server_.reset();
  EXPECT_FALSE(CallAdmin("127.0.0.1:" + std::to_string(port), {"help"}, Cred::Sys(0, 0), 2000).ok());
}

}  // namespace
}  // namespace loom::admin
