// Export rules (issue 9 item 3): parsing, matching, identity mapping, and their effect on
// calls served by RpcServer from different client addresses.
#include "rpc/export_rules.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "rpc/raw_test_client.h"
#include "rpc/server.h"

namespace loom::rpc {
namespace {

using namespace loom::rpc::testing;

sockaddr_storage V4(const char* a) {
  sockaddr_storage ss{};
  auto* s = reinterpret_cast<sockaddr_in*>(&ss);
  s->sin_family = AF_INET;
  inet_pton(AF_INET, a, &s->sin_addr);
  return ss;
}
sockaddr_storage V6(const char* a) {
  sockaddr_storage ss{};
  auto* s = reinterpret_cast<sockaddr_in6*>(&ss);
  s->sin6_family = AF_INET6;
  inet_pton(AF_INET6, a, &s->sin6_addr);
  return ss;
}
const sockaddr* Sa(const sockaddr_storage& ss) { return reinterpret_cast<const sockaddr*>(&ss); }

TEST(ExportRulesTest, ParsesClientsAndOptionsAndTheFirstMatchWins) {
  auto r = ExportRules::Parse(
      "# metadata server, then the storage network\n"
      "10.0.0.5(rw,no_root_squash)\n"
      "10.0.0.0/255.255.0.0(rw) 192.168.1.0/24(ro,all_squash,anonuid=1000,anongid=100)\n"
      "   fd00::/8(rw)   # v6\n"
      "\n"
      "*(ro)\n",
      "test.exports");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->rules().size(), 5u);
  const ExportRule* m = r->Match(Sa(V4("10.0.0.5")));
  ASSERT_NE(m, nullptr);
  EXPECT_FALSE(m->read_only);
  EXPECT_EQ(m->squash, Squash::kNone);
  EXPECT_EQ(m->name, "test.exports:2 10.0.0.5(rw,no_root_squash,anonuid=65534,anongid=65534)");
  m = r->Match(Sa(V4("10.0.200.1")));
  ASSERT_NE(m, nullptr);
  EXPECT_FALSE(m->read_only);
  EXPECT_EQ(m->squash, Squash::kRoot);  // the default
  m = r->Match(Sa(V4("192.168.1.77")));
  ASSERT_NE(m, nullptr);
  EXPECT_TRUE(m->read_only);
  EXPECT_EQ(m->squash, Squash::kAll);
  EXPECT_EQ(m->anonuid, 1000u);
  EXPECT_EQ(m->anongid, 100u);
  m = r->Match(Sa(V6("fd12::1")));
  ASSERT_NE(m, nullptr);
  EXPECT_FALSE(m->read_only);
  // An IPv4-mapped IPv6 peer matches IPv4 networks.
  m = r->Match(Sa(V6("::ffff:10.0.0.5")));
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->squash, Squash::kNone);
  m = r->Match(Sa(V4("8.8.8.8")));
  ASSERT_NE(m, nullptr);
  EXPECT_TRUE(m->read_only);  // *(ro)
  EXPECT_EQ(m->name.substr(0, 15), "test.exports:6 ");
}

TEST(ExportRulesTest, NoMatchingRuleMatchesNothing) {
  auto r = ExportRules::Parse("10.1.0.0/16(rw)\n", "f");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->Match(Sa(V4("10.2.0.1"))), nullptr);
  EXPECT_EQ(r->Match(Sa(V6("::1"))), nullptr);
  // A client without options takes exports(5)'s defaults: ro, root_squash.
  auto d = ExportRules::Parse("127.0.0.1\n", "f");
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->rules()[0].read_only);
  EXPECT_EQ(d->rules()[0].squash, Squash::kRoot);
}

TEST(ExportRulesTest, ErrorsNameTheLine) {
  struct Case {
    const char* text;
    const char* want;
  } cases[] = {
      {"*(rw)\n* (rw)\n", "f:2: "},                      // the classic /etc/exports trap
      {"\n\n10.0.0.1(rw,sync)\n", "f:3: unknown option \"sync\""},
      {"somehost(rw)\n", "f:1: \"somehost\" is not *"},
      {"/export 10.0.0.1(rw)\n", "f:1: \"/export\": paths are not accepted"},
      {"10.0.0.0/33(rw)\n", "f:1: \"10.0.0.0/33\": bad prefix length"},
      {"10.0.0.0/255.0.255.0(rw)\n", "bad prefix length or netmask"},
      {"10.0.0.1(rw,anonuid=x)\n", "f:1: bad anonuid=x"},
      {"10.0.0.1(rw\n", "f:1: unbalanced"},
      {"10.0.0.1(rw,,ro)\n", "f:1: empty option"},
      {"# nothing\n", "f: no rules"},
  };
  for (const Case& c : cases) {
    auto r = ExportRules::Parse(c.text, "f");
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_NE(r.status().message().find(c.want), std::string::npos)
        << c.text << " -> " << r.status().message();
  }
}

TEST(ExportRulesTest, SquashingMapsIdentities) {
  ExportRule root;  // root_squash
  root.anonuid = 99;
  root.anongid = 98;
  Cred c = Cred::Sys(0, 0, {0, 5});
  root.Apply(&c);
  EXPECT_EQ(c.uid, 99u);
  EXPECT_EQ(c.gid, 98u);
  EXPECT_EQ(c.gids, (std::vector<uint32_t>{98, 5}));
  Cred user = Cred::Sys(1000, 1000, {0});
  root.Apply(&user);
  EXPECT_EQ(user.uid, 1000u);
  EXPECT_EQ(user.gids, (std::vector<uint32_t>{98}));

  ExportRule all;
  all.squash = Squash::kAll;
  Cred u = Cred::Sys(1000, 1000, {4, 5});
  all.Apply(&u);
  EXPECT_EQ(u.uid, 65534u);
  EXPECT_EQ(u.gid, 65534u);
  EXPECT_TRUE(u.gids.empty());

  ExportRule none;
  none.squash = Squash::kNone;
  Cred r0 = Cred::Sys(0, 0);
  none.Apply(&r0);
  EXPECT_EQ(r0.uid, 0u);
  // AUTH_NONE callers are anonymous whatever the rule says.
  none.anonuid = 7;
  Cred anon;
  none.Apply(&anon);
  EXPECT_EQ(anon.uid, 7u);
}

TEST(ExportRulesTest, TrustedAddressesGoFirst) {
  ExportRules r = ExportRules::Default();
  ASSERT_TRUE(r.AddTrusted("10.0.0.5", "--mds 10.0.0.5").ok());
  ASSERT_TRUE(r.AddTrusted("10.0.1.0/24", "--mds 10.0.1.0/24").ok());
  EXPECT_FALSE(r.AddTrusted("mds.example", "--mds mds.example").ok());
  ASSERT_EQ(r.rules().size(), 3u);
  EXPECT_EQ(r.rules()[0].client.text, "10.0.0.5");
  EXPECT_EQ(r.rules()[1].client.text, "10.0.1.0/24");
  EXPECT_EQ(r.Match(Sa(V4("10.0.1.9")))->squash, Squash::kNone);
  const ExportRule* other = r.Match(Sa(V4("10.0.2.9")));
  EXPECT_EQ(other->squash, Squash::kRoot);
  EXPECT_FALSE(other->read_only);
  EXPECT_EQ(r.Text(), "10.0.0.5(rw,no_root_squash,anonuid=65534,anongid=65534) "
                      "10.0.1.0/24(rw,no_root_squash,anonuid=65534,anongid=65534) "
                      "*(rw,root_squash,anonuid=65534,anongid=65534)");
}

constexpr uint32_t kProg = 0x20000098;

// A server whose procedure 1 reports the identity and access it was given.
class ExportServerTest : public ::testing::Test {
 protected:
  Status StartServer(ServerOptions o) {
    o.listen = "127.0.0.1:0";
    o.loops = 1;
    o.workers = 2;
    server_ = std::make_unique<RpcServer>(o);
    ProgramDesc p;
    p.prog = kProg;
    p.vers = 1;
    p.stats_prefix = "exp";
    p.procs.resize(2);
    p.procs[0] = {"NULL", [](const CallContext&, xdr::Decoder&, xdr::Encoder&) { return SUCCESS; }};
    p.procs[1] = {"WHO", [](const CallContext& c, xdr::Decoder&, xdr::Encoder& e) {
                    e.u32(c.cred.uid);
                    e.u32(c.cred.gid);
                    e.u32(c.read_only ? 1 : 0);
                    e.string(c.export_rule ? c.export_rule->name : "");
                    return SUCCESS;
                  }};
    server_->Register(p);
    return server_->Start();
  }
  struct Who {
    ReplyHead head;
    uint32_t uid = ~0u, gid = ~0u, ro = ~0u;
    std::string rule;
  };
  Who Call(const char* from, const Cred& cred) {
    Who w;
    int fd = RawConnectFrom(server_->port(), from);
    EXPECT_GE(fd, 0);
    if (fd < 0) return w;
    EXPECT_TRUE(SendAll(fd, CallRecord(1, kProg, 1, 1, cred)));
    w.head = ParseReply(RecvRecord(fd));
    ::close(fd);
    xdr::Decoder d(reinterpret_cast<const uint8_t*>(w.head.results.data()), w.head.results.size());
    if (w.head.reply_stat == MSG_ACCEPTED && w.head.stat == SUCCESS) {
      EXPECT_TRUE(d.u32(w.uid) && d.u32(w.gid) && d.u32(w.ro) && d.string(w.rule, 1000));
    }
    return w;
  }
  std::unique_ptr<RpcServer> server_;
};

TEST_F(ExportServerTest, RulesDecideIdentityAccessAndAdmission) {
  auto rules = ExportRules::Parse("127.0.0.2(rw,no_root_squash) 127.0.0.3(ro,all_squash,anonuid=7)"
                                  " 127.0.0.1/32(rw)\n",
                                  "exports");
  ASSERT_TRUE(rules.ok()) << rules.status().ToString();
  ServerOptions o;
  o.exports = *rules;
  ASSERT_TRUE(StartServer(o).ok());
  // 127.0.0.1: root is squashed, others keep their identity; rw.
  Who w = Call("127.0.0.1", Cred::Sys(0, 0));
  EXPECT_EQ(w.uid, 65534u);
  EXPECT_EQ(w.gid, 65534u);
  EXPECT_EQ(w.ro, 0u);
  EXPECT_EQ(w.rule.substr(0, 10), "exports:1 ");
  EXPECT_EQ(Call("127.0.0.1", Cred::Sys(1000, 100)).uid, 1000u);
  // 127.0.0.2: root stays root.
  EXPECT_EQ(Call("127.0.0.2", Cred::Sys(0, 0)).uid, 0u);
  // 127.0.0.3: everyone is uid 7, read-only.
  w = Call("127.0.0.3", Cred::Sys(1000, 100));
  EXPECT_EQ(w.uid, 7u);
  EXPECT_EQ(w.ro, 1u);
  // 127.0.0.4 matches no rule: MSG_DENIED, AUTH_ERROR, AUTH_TOOWEAK (RFC 5531 §9).
  w = Call("127.0.0.4", Cred::Sys(1000, 100));
  EXPECT_EQ(w.head.reply_stat, static_cast<uint32_t>(MSG_DENIED));
  EXPECT_EQ(w.head.stat, static_cast<uint32_t>(AUTH_ERROR));
  EXPECT_EQ(w.head.auth_stat, static_cast<uint32_t>(AUTH_TOOWEAK));
}

TEST_F(ExportServerTest, DaemonDefaultSquashesRootAndTrustedAddressesKeepIt) {
  ServerOptions o;
  o.exports = ExportRules::Default();
  o.trusted = {"127.0.0.2"};
  ASSERT_TRUE(StartServer(o).ok());
  EXPECT_EQ(Call("127.0.0.1", Cred::Sys(0, 0)).uid, 65534u);
  EXPECT_EQ(Call("127.0.0.2", Cred::Sys(0, 0)).uid, 0u);
  Who w = Call("127.0.0.5", Cred::Sys(0, 0));
  EXPECT_EQ(w.uid, 65534u);
  EXPECT_EQ(w.ro, 0u);
}

TEST_F(ExportServerTest, ExportsFileIsLoadedAndItsErrorsStopTheServer) {
  auto dir = std::filesystem::temp_directory_path() /
             ("loom-exports-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::string bad = (dir / "bad").string(), good = (dir / "good").string();
  std::ofstream(bad) << "127.0.0.1(rw)\n127.0.0.2(rw,insecure)\n";
  std::ofstream(good) << "127.0.0.1(ro,no_root_squash)\n";
  ServerOptions o;
  o.exports_file = bad;
  Status s = StartServer(o);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find(bad + ":2: unknown option \"insecure\""), std::string::npos) << s.message();
  ServerOptions missing;
  missing.exports_file = (dir / "nope").string();
  EXPECT_FALSE(StartServer(missing).ok());
  ServerOptions ok;
  ok.exports_file = good;
  ASSERT_TRUE(StartServer(ok).ok());
  Who w = Call("127.0.0.1", Cred::Sys(0, 0));
  EXPECT_EQ(w.uid, 0u);
  EXPECT_EQ(w.ro, 1u);
  EXPECT_EQ(Call("127.0.0.2", Cred::Sys(0, 0)).head.auth_stat, static_cast<uint32_t>(AUTH_TOOWEAK));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace loom::rpc
