// The admin program's edges, called straight on its procedure table (no sockets) so that each
// test picks the caller's flavor, uid, export rule and read-only flag: refusals and their
// messages, log-line sanitising of hostile argv, output cutting, malformed arguments; and the
// client side's address parsing and argument bounds.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "admin/admin_rpc.h"
#include "rpc/export_rules.h"
#include "rpc/server.h"
#include "xdr/xdr.h"

namespace loom::admin {
namespace {

struct Outcome {
  rpc::accept_stat stat;
  LOOM_ADMIN_COMMAND_res res;
};

class AdminEdgeTest : public ::testing::Test {
 protected:
  void Make(AdminProgramOptions opts = {}) {
    prog_ = AdminProgram(
        [this](const rpc::CallContext&, const std::vector<std::string>& argv) {
          ++runs_;
          last_ = argv;
          if (!argv.empty() && argv[0] == "big") return AdminReply{kAdminOk, std::string(100, 'x')};
          if (!argv.empty() && argv[0] == "unknown") return AdminReply{kAdminUsage, "unknown\n"};
          return AdminReply{kAdminOk, "ran\n"};
        },
        std::move(opts));
  }
  Outcome RunBytes(const rpc::CallContext& ctx, const std::string& args) {
    xdr::Decoder d(reinterpret_cast<const uint8_t*>(args.data()), args.size());
    xdr::Encoder e;
    Outcome o;
    o.stat = prog_.procs[LOOM_ADMINPROC_COMMAND].fn(ctx, d, e);
    if (o.stat == rpc::SUCCESS) {
      std::string out = e.Flatten();
      xdr::Decoder rd(reinterpret_cast<const uint8_t*>(out.data()), out.size());
      EXPECT_TRUE(xdr_decode(rd, o.res));
      EXPECT_EQ(ctx.op_status, o.res.exit_status);
    }
    return o;
  }
  Outcome Run(const rpc::CallContext& ctx, const std::vector<std::string>& argv) {
    LOOM_ADMIN_COMMAND_args a;
    a.argv = argv;
    xdr::Encoder e;
    xdr_encode(e, a);
    return RunBytes(ctx, e.Flatten());
  }
  static rpc::CallContext Ctx(uint32_t uid, bool ro = false) {
    rpc::CallContext c;
    c.cred = rpc::Cred::Sys(uid, uid);
    c.peer = "192.0.2.7:700";
    c.read_only = ro;
    return c;
  }

  rpc::ProgramDesc prog_;
  int runs_ = 0;
  std::vector<std::string> last_;
};

TEST_F(AdminEdgeTest, AuthNoneAndSquashedCallersAreRefusedWithHowTheyArrived) {
  Make();
  rpc::CallContext none;
  none.peer = "192.0.2.9:1";  // AUTH_NONE: nobody
  Outcome o = Run(none, {"ds", "list"});
  ASSERT_EQ(o.stat, rpc::SUCCESS);
  EXPECT_EQ(o.res.exit_status, kAdminDenied);
  EXPECT_NE(o.res.output.find(kAdminDeniedMessage), std::string::npos);
  EXPECT_NE(o.res.output.find("AUTH_NONE"), std::string::npos) << o.res.output;
  EXPECT_NE(o.res.output.find("192.0.2.9:1"), std::string::npos);
  // The export rule that mapped the caller is named.
  auto rules = rpc::ExportRules::Parse("*(ro,root_squash)", "test");
  ASSERT_TRUE(rules.ok());
  rpc::CallContext squashed = Ctx(65534, true);
  squashed.export_rule = &rules->rules().front();
  o = Run(squashed, {"help"});
  EXPECT_EQ(o.res.exit_status, kAdminDenied);
  EXPECT_NE(o.res.output.find("uid 65534"), std::string::npos) << o.res.output;
  EXPECT_NE(o.res.output.find("export rule " + rules->rules().front().Text()), std::string::npos)
      << o.res.output;
  EXPECT_EQ(runs_, 0);
}

TEST_F(AdminEdgeTest, ReadOnlyPrefixesMatchWholeWordsOnly) {
  Make();  // default prefixes: help, "ds list", "policy get", layout
  auto ro = Ctx(0, true);
  EXPECT_EQ(Run(ro, {"ds", "list", "--all"}).res.exit_status, kAdminOk);
  EXPECT_EQ(Run(ro, {"layout"}).res.exit_status, kAdminOk);
  EXPECT_EQ(runs_, 2);
  // "ds" alone is shorter than the prefix "ds list"; "ds listing" is another word.
  Outcome o = Run(ro, {"ds"});
  EXPECT_EQ(o.res.exit_status, kAdminDenied);
  EXPECT_NE(o.res.output.find("read-only commands only"), std::string::npos);
  EXPECT_EQ(Run(ro, {"ds", "listing"}).res.exit_status, kAdminDenied);
  EXPECT_EQ(Run(ro, {}).res.exit_status, kAdminDenied);
  EXPECT_EQ(runs_, 2);
  // The same commands from a read-write rule run.
  EXPECT_EQ(Run(Ctx(0), {"ds", "drain", "3"}).res.exit_status, kAdminOk);
  EXPECT_EQ(runs_, 3);

  EXPECT_TRUE(MatchesPrefix({"policy", "get", "/x"}, {"", "policy get"}));
  EXPECT_FALSE(MatchesPrefix({"policy"}, {"", "policy get"}));  // an empty prefix matches nothing
  EXPECT_FALSE(MatchesPrefix({}, {"help"}));
}

TEST_F(AdminEdgeTest, ReadOnlyPredicateOverridesPrefixes) {
  AdminProgramOptions opts;
  opts.read_only_prefixes = {"help"};
  opts.is_read_only = [](const std::vector<std::string>& argv) {
    return argv.size() == 1 && argv[0] == "status";
  };
  Make(opts);
  EXPECT_EQ(Run(Ctx(0, true), {"status"}).res.exit_status, kAdminOk);
  EXPECT_EQ(Run(Ctx(0, true), {"help"}).res.exit_status, kAdminDenied);
  EXPECT_EQ(AdminRefusal(Ctx(0, true), {"x"}, nullptr).empty(), false);
  EXPECT_EQ(AdminRefusal(Ctx(0, false), {"x"}, nullptr), "");
}

TEST_F(AdminEdgeTest, HostileArgvIsPassedIntactAndRunsOnce) {
  Make();
  // More than 16 words, words over 64 bytes, control characters, an empty word: the log line
  // is sanitised, the handler still gets argv exactly as sent.
  std::vector<std::string> argv = {"echo", std::string(200, 'a'), "bell\a\x7f", "", "two words"};
  for (int i = 0; i < 20; ++i) argv.push_back("w" + std::to_string(i));
  Outcome o = Run(Ctx(0), argv);
  ASSERT_EQ(o.stat, rpc::SUCCESS);
  EXPECT_EQ(o.res.exit_status, kAdminOk);
  EXPECT_EQ(o.res.output, "ran\n");
  EXPECT_EQ(last_, argv);
  EXPECT_EQ(runs_, 1);
  // Refused calls with such argv are logged too, and do not run.
  EXPECT_EQ(Run(Ctx(1000), argv).res.exit_status, kAdminDenied);
  EXPECT_EQ(runs_, 1);
}

TEST_F(AdminEdgeTest, FailedCommandStatusIsTheCallsOpStatus) {
  Make();
  rpc::CallContext c = Ctx(0);
  Outcome o = Run(c, {"unknown", "command"});
  EXPECT_EQ(o.res.exit_status, kAdminUsage);
  EXPECT_EQ(c.op_status, kAdminUsage);
}

TEST_F(AdminEdgeTest, OutputIsCutAtTheLimitWithANote) {
  AdminProgramOptions opts;
  opts.max_output = 10;
  Make(opts);
  Outcome o = Run(Ctx(0), {"big"});
  EXPECT_EQ(o.res.output.substr(0, 10), std::string(10, 'x'));
  EXPECT_NE(o.res.output.find("output cut at 10 of 100 bytes"), std::string::npos)
      << o.res.output;
  // Exactly at the limit: nothing is cut.
  opts.max_output = 100;
  Make(opts);
  EXPECT_EQ(Run(Ctx(0), {"big"}).res.output, std::string(100, 'x'));
}

TEST_F(AdminEdgeTest, MalformedArgumentsAreGarbage) {
  Make();
  LOOM_ADMIN_COMMAND_args a;
  a.argv = {"ds", "list"};
  xdr::Encoder e;
  xdr_encode(e, a);
  std::string good = e.Flatten();
  EXPECT_EQ(RunBytes(Ctx(0), good + std::string(4, '\0')).stat, rpc::GARBAGE_ARGS);  // trailing
  EXPECT_EQ(RunBytes(Ctx(0), good.substr(0, good.size() - 4)).stat, rpc::GARBAGE_ARGS);
  EXPECT_EQ(RunBytes(Ctx(0), "").stat, rpc::GARBAGE_ARGS);
  // 65 words: over LOOM_ADMIN_MAXARGS, refused by the decoder.
  std::string many;
  auto u32 = [&](uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) many.push_back(static_cast<char>(v >> s));
  };
  u32(kMaxArgs + 1);
  for (size_t i = 0; i <= kMaxArgs; ++i) u32(0);
  EXPECT_EQ(RunBytes(Ctx(0), many).stat, rpc::GARBAGE_ARGS);
  EXPECT_EQ(runs_, 0);
  // NULL answers anyone, with no arguments.
  xdr::Decoder d(nullptr, 0);
  xdr::Encoder out;
  rpc::CallContext none;
  EXPECT_EQ(prog_.procs[LOOM_ADMINPROC_NULL].fn(none, d, out), rpc::SUCCESS);
  EXPECT_EQ(out.size(), 0u);
}

TEST(AdminAddressTest, ResolveHostPortRefusesMalformedAddresses) {
  for (const char* bad : {"", "host", "[::1", "[::1]", "[::1]x80", "::1:80", ":80", "host:",
                          "host:8x", "host:123456", "host:65536"}) {
    auto r = ResolveHostPort(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << bad;
    }
  }
  auto v4 = ResolveHostPort("127.0.0.1:65535");
  ASSERT_TRUE(v4.ok()) << v4.status().ToString();
  EXPECT_EQ(*v4, std::vector<std::string>{"127.0.0.1:65535"});
  auto v6 = ResolveHostPort("[::1]:2049");
  ASSERT_TRUE(v6.ok()) << v6.status().ToString();
  EXPECT_EQ(*v6, std::vector<std::string>{"[::1]:2049"});
  // A name that cannot resolve (.invalid is reserved, RFC 2606) is Unavailable.
  auto none = ResolveHostPort("no-such-host.invalid:1");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), Code::kUnavailable);
}

TEST(AdminAddressTest, CallAdminChecksBoundsBeforeConnecting) {
  // The address is never dialled: the bounds fail first.
  std::vector<std::string> many(kMaxArgs + 1, "w");
  auto r = CallAdmin("192.0.2.1:1", many, rpc::Cred::Sys(0, 0), 1000);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("too many words"), std::string::npos);
  r = CallAdmin("192.0.2.1:1", {std::string(kMaxArgLen + 1, 'x')}, rpc::Cred::Sys(0, 0), 1000);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  r = CallAdmin("nocolon", {"help"}, rpc::Cred::Sys(0, 0), 1000);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  // The largest allowed word count and size pass the bounds (and then fail to connect to a
  // port nothing listens on).
  std::vector<std::string> max(kMaxArgs, "w");
  max[0] = std::string(kMaxArgLen, 'x');
  r = CallAdmin("127.0.0.1:1", max, rpc::Cred::Sys(0, 0), 2000);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().code(), Code::kInvalidArgument) << r.status().ToString();
}

// A server that answers the admin program number with something else than loom-mds would.
class OddServer {
 public:
  explicit OddServer(rpc::ProgramDesc p) {
    rpc::ServerOptions o;
    o.listen = "127.0.0.1:0";
    o.loops = 1;
    o.workers = 1;
    server_ = std::make_unique<rpc::RpcServer>(o);
    server_->Register(std::move(p));
    EXPECT_TRUE(server_->Start().ok());
  }
  ~OddServer() { server_->Stop(); }
  std::string addr() const { return "127.0.0.1:" + std::to_string(server_->port()); }

 private:
  std::unique_ptr<rpc::RpcServer> server_;
};

TEST(AdminClientTest, WrongVersionIsNamedAsNotALoomMds) {
  rpc::ProgramDesc p = AdminProgram([](const rpc::CallContext&, const std::vector<std::string>&) {
    return AdminReply{};
  });
  p.vers = kAdminVersion + 1;  // only a version this client does not speak
  OddServer s(std::move(p));
  auto r = CallAdmin(s.addr(), {"help"}, rpc::Cred::Sys(0, 0), 5000);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("does not serve the Loom admin program"), std::string::npos)
      << r.status().ToString();
}

TEST(AdminClientTest, ServerErrorNamesTheAddress) {
  rpc::ProgramDesc p = AdminProgram([](const rpc::CallContext&, const std::vector<std::string>&) {
    return AdminReply{};
  });
  p.procs[LOOM_ADMINPROC_COMMAND].fn = [](const rpc::CallContext&, xdr::Decoder&,
                                          xdr::Encoder&) { return rpc::SYSTEM_ERR; };
  OddServer s(std::move(p));
  auto r = CallAdmin(s.addr(), {"help"}, rpc::Cred::Sys(0, 0), 5000);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().rfind(s.addr() + ": ", 0), 0u) << r.status().ToString();
  EXPECT_EQ(r.status().message().find("does not serve"), std::string::npos);
}

}  // namespace
}  // namespace loom::admin
