// RPC runtime tests: a test program served by RpcServer, called by RpcClient and by raw
// sockets that send well-formed, fragmented, truncated, oversized and garbage records.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <future>
#include <chrono>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "common/sync_point.h"
#include "rpc/client.h"
#include "rpc/raw_test_client.h"
#include "rpc/server.h"

namespace loom::rpc {
namespace {

using testing::Mark;
using testing::RecvRecord;

constexpr uint32_t kProg = 0x20000099;
constexpr uint32_t kVers = 1;

// A server of one loop thread on a free loopback port, and a program of procedure 0 (unset)
// and 1, for the tests that set up their own.
ServerOptions OneLoop(int workers) {
  ServerOptions o;
  o.listen = "127.0.0.1:0";
  o.loops = 1;
  o.workers = workers;
  return o;
}
ProgramDesc OneProc(const char* stats_prefix) {
  ProgramDesc p;
  p.prog = kProg;
  p.vers = kVers;
  p.stats_prefix = stats_prefix;
  p.procs.resize(2);
  return p;
}

// Calls of procedure 1 with xids 1..n (AUTH_NONE, no arguments), as one byte string that a
// single send puts on the wire: a pipelining client.
std::string PipelinedCalls(uint32_t n) {
  std::string wire;
  for (uint32_t x = 1; x <= n; x++) {
    xdr::Encoder e;
    e.u32(0);  // record mark, set below
    for (uint32_t w : {x, 0u /*CALL*/, 2u, kProg, kVers, 1u, 0u, 0u, 0u, 0u}) e.u32(w);
    std::string rec = e.Flatten();
    const uint32_t mark = htonl(0x80000000u | static_cast<uint32_t>(rec.size() - 4));
    std::memcpy(rec.data(), &mark, 4);
    wire += rec;
  }
  return wire;
}

// The xids of the next n replies on fd (an empty set if one does not come).
std::set<uint32_t> RecvXids(int fd, int n) {
  std::set<uint32_t> xids;
  for (int i = 0; i < n; i++) {
    std::string rep = RecvRecord(fd);
    if (rep.size() < 4) return {};
    uint32_t xid;
    std::memcpy(&xid, rep.data(), 4);
    xids.insert(ntohl(xid));
  }
  return xids;
}

struct EchoArgs {};

class RpcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerOptions o;
    o.listen = "127.0.0.1:0";
    o.loops = 2;
    o.workers = 4;
    o.conn.max_record = 64 * 1024;
    server_ = std::make_unique<RpcServer>(o);
    ProgramDesc p;
    p.prog = kProg;
    p.vers = kVers;
    p.stats_prefix = "test";
    p.procs.resize(7);
    p.procs[0] = {"NULL", [](const CallContext&, xdr::Decoder&, xdr::Encoder&) { return SUCCESS; },
                  true, true};
    // 1: echo a string; GARBAGE_ARGS when it does not decode.
    p.procs[1] = {"ECHO", [](const CallContext&, xdr::Decoder& d, xdr::Encoder& e) {
                    std::string s;
                    if (!d.string(s, 1024)) return GARBAGE_ARGS;
                    e.string(s);
                    return SUCCESS;
                  }};
    // 2: sleep for the given milliseconds, then echo the number (out-of-order replies).
    p.procs[2] = {"SLEEP", [](const CallContext&, xdr::Decoder& d, xdr::Encoder& e) {
                    uint32_t ms;
                    if (!d.u32(ms)) return GARBAGE_ARGS;
                    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
                    e.u32(ms);
                    return SUCCESS;
                  }};
    // 6: waits until the test opens gate_, then answers 6 (an explicit sync point: a reply
    // held back until another call has been answered, with no timing involved).
    p.procs[6] = {"GATE", [this](const CallContext&, xdr::Decoder&, xdr::Encoder& e) {
                    gate_entered_++;
                    gate_open_.wait();
                    e.u32(6);
                    return SUCCESS;
                  }};
    // 3: non-idempotent counter: each execution increments.
    p.procs[3] = {"INCR", [this](const CallContext&, xdr::Decoder&, xdr::Encoder& e) {
                    e.u32(++counter_);
                    return SUCCESS;
                  }, false};
    // 4: returns the caller's uid.
    p.procs[4] = {"WHOAMI", [](const CallContext& c, xdr::Decoder&, xdr::Encoder& e) {
                    e.u32(c.cred.uid);
                    return SUCCESS;
                  }};
    // 5: calls the client back on the same connection (program kCbProg proc 1 with the
    // given number) and returns what the client answered.
    p.procs[5] = {"CALLBACK", [](const CallContext& c, xdr::Decoder& d, xdr::Encoder& e) {
                    uint32_t v;
                    if (!d.u32(v)) return GARBAGE_ARGS;
                    auto conn = c.conn.lock();
                    if (!conn) return SYSTEM_ERR;
                    auto bc = MakeBackChannel(conn, 5000);
                    std::promise<Result<Reply>> p;
                    bc->CallAsync(0x40000000, 1, 1, Cred(), [v](xdr::Encoder& a) { a.u32(v); },
                                  [&p](Result<Reply> r) { p.set_value(std::move(r)); });
                    Result<Reply> r = p.get_future().get();
                    if (!r.ok()) return SYSTEM_ERR;
                    uint32_t back;
                    xdr::Decoder rd = r->results();
                    if (!rd.u32(back)) return SYSTEM_ERR;
                    e.u32(back);
                    return SUCCESS;
                  }};
    server_->Register(p);
    ProgramDesc p2 = p;
    p2.vers = 3;
    server_->Register(p2);
    ASSERT_TRUE(server_->Start().ok());
    addr_ = "127.0.0.1:" + std::to_string(server_->port());
    loops_ = std::make_unique<LoopGroup>(1);
    loops_->Start();
  }
  void TearDown() override {
    // A test that failed before opening the gate must not leave a worker waiting on it.
    try {
      gate_.set_value();
    } catch (const std::future_error&) {
    }
    client_.reset();
    loops_.reset();
    server_.reset();
  }
  std::shared_ptr<RpcClient> Client() {
    auto c = RpcClient::Connect(loops_->At(0), addr_);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return *c;
  }

  // A blocking raw socket to the server (receives time out after 5 s).
  int RawConnect() {
    int fd = testing::RawConnectFrom(server_->port());
    EXPECT_GE(fd, 0) << "connect: " << strerror(errno);
    return fd;
  }
  static void SendAll(int fd, const std::string& s) { ASSERT_TRUE(testing::SendAll(fd, s)); }
  static std::string CallHeader(uint32_t xid, uint32_t prog, uint32_t vers, uint32_t proc,
                                uint32_t rpcvers = 2) {
    xdr::Encoder e;
    e.u32(xid);
    e.u32(CALL);
    e.u32(rpcvers);
    e.u32(prog);
    e.u32(vers);
    e.u32(proc);
    e.u32(AUTH_NONE);
    e.u32(0);
    e.u32(AUTH_NONE);
    e.u32(0);
    return e.Flatten();
  }
  // A denied reply (RFC 5531 §9, rejected_reply): reject_stat, then for RPC_MISMATCH the
  // supported low/high versions, for AUTH_ERROR the auth_stat.
  struct Denial {
    uint32_t reject_stat = ~0u;
    uint32_t a = 0, b = 0;  // RPC_MISMATCH: low, high; AUTH_ERROR: auth_stat in a
  };
  static Denial Denied(const std::string& rep) {
    xdr::Decoder d(reinterpret_cast<const uint8_t*>(rep.data()), rep.size());
    uint32_t xid, mt, rs;
    Denial out;
    EXPECT_TRUE(d.u32(xid) && d.u32(mt) && d.u32(rs));
    EXPECT_EQ(rs, static_cast<uint32_t>(MSG_DENIED));
    if (rs != MSG_DENIED || !d.u32(out.reject_stat)) return out;
    if (out.reject_stat == RPC_MISMATCH) {
      EXPECT_TRUE(d.u32(out.a) && d.u32(out.b));
    }
    if (out.reject_stat == AUTH_ERROR) {
      EXPECT_TRUE(d.u32(out.a));
    }
    EXPECT_EQ(d.remaining(), 0u);
    return out;
  }
  // accept_stat of a raw reply, or -1 for a denied reply.
  static int AcceptStat(const std::string& rep) {
    xdr::Decoder d(reinterpret_cast<const uint8_t*>(rep.data()), rep.size());
    uint32_t xid, mt, rs, fl, len, st;
    EXPECT_TRUE(d.u32(xid) && d.u32(mt) && d.u32(rs));
    if (rs != MSG_ACCEPTED) return -1;
    EXPECT_TRUE(d.u32(fl) && d.u32(len) && d.u32(st));
    return static_cast<int>(st);
  }

  std::unique_ptr<RpcServer> server_;
  std::unique_ptr<LoopGroup> loops_;
  std::shared_ptr<RpcClient> client_;
  std::string addr_;
  std::atomic<uint32_t> counter_{0};
  std::promise<void> gate_;
  std::shared_future<void> gate_open_ = gate_.get_future().share();
  std::atomic<int> gate_entered_{0};  // GATE calls that reached the procedure
};

TEST_F(RpcTest, EchoAndErrors) {
  auto c = Client();
  struct Str {
    std::string s;
  };
  auto r = c->CallSync(kProg, kVers, 1, Cred(), [](xdr::Encoder& e) { e.string("hello"); });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::string out;
  xdr::Decoder d = r->results();
  ASSERT_TRUE(d.string(out, 100));
  EXPECT_EQ(out, "hello");

  auto unavail = c->CallSync(kProg + 1, 1, 0, Cred(), [](xdr::Encoder&) {});
  EXPECT_EQ(unavail.status().message(), "PROG_UNAVAIL");
  auto mismatch = c->CallSync(kProg, 2, 0, Cred(), [](xdr::Encoder&) {});
  EXPECT_EQ(mismatch.status().message(), "PROG_MISMATCH 1-3");
  auto noproc = c->CallSync(kProg, kVers, 77, Cred(), [](xdr::Encoder&) {});
  EXPECT_EQ(noproc.status().message(), "PROC_UNAVAIL");
  auto garbage = c->CallSync(kProg, kVers, 1, Cred(), [](xdr::Encoder& e) { e.u32(5000); });
  EXPECT_EQ(garbage.status().message(), "GARBAGE_ARGS");
  // The connection still works.
  auto again = c->CallSync(kProg, kVers, 0, Cred(), [](xdr::Encoder&) {});
  EXPECT_TRUE(again.ok());
  EXPECT_EQ(server_->stats().Get("test.ECHO")->calls(), 2u);
  EXPECT_EQ(server_->stats().Get("test.ECHO")->errors(), 1u);
}

TEST_F(RpcTest, AuthSysCredentialReachesTheProcedure) {
  auto c = Client();
  auto r = c->CallSync(kProg, kVers, 4, Cred::Sys(1234, 55, {1, 2}), [](xdr::Encoder&) {});
  ASSERT_TRUE(r.ok());
  uint32_t uid;
  xdr::Decoder d = r->results();
  ASSERT_TRUE(d.u32(uid));
  EXPECT_EQ(uid, 1234u);
}

TEST_F(RpcTest, RepliesMayComeOutOfOrder) {
  // The first call's reply is held back by the server until the second call's reply has
  // reached the client: the client must match replies to calls by xid, in any order.
  auto c = Client();
  std::mutex mu;
  std::vector<uint32_t> order;
  std::promise<void> both;
  auto record = [&](uint32_t v) {
    std::lock_guard<std::mutex> l(mu);
    order.push_back(v);
    if (order.size() == 2) both.set_value();
  };
  c->CallAsync(kProg, kVers, 6, Cred(), [](xdr::Encoder&) {}, [&](Result<RpcClient::Reply> r) {
    ASSERT_TRUE(r.ok());
    uint32_t v = 0;
    xdr::Decoder d = r->results();
    ASSERT_TRUE(d.u32(v));
    record(v);
  });
  c->CallAsync(kProg, kVers, 2, Cred(), [](xdr::Encoder& e) { e.u32(0); },
               [&](Result<RpcClient::Reply> r) {
                 ASSERT_TRUE(r.ok());
                 uint32_t v = 1;
                 xdr::Decoder d = r->results();
                 ASSERT_TRUE(d.u32(v));
                 record(v);
                 gate_.set_value();  // now the held call may answer
               });
  ASSERT_EQ(both.get_future().wait_for(std::chrono::seconds(30)), std::future_status::ready);
  std::lock_guard<std::mutex> l(mu);
  EXPECT_EQ(order, (std::vector<uint32_t>{0u, 6u}));
}

TEST_F(RpcTest, ManyCallsInFlight) {
  auto c = Client();
  std::atomic<int> ok{0}, done{0};
  const int n = 500;
  for (int i = 0; i < n; i++) {
    std::string s = "msg" + std::to_string(i);
    c->CallAsync(kProg, kVers, 1, Cred(), [s](xdr::Encoder& e) { e.string(s); },
                 [&, s](Result<RpcClient::Reply> r) {
                   std::string out;
                   xdr::Decoder d = r.ok() ? r->results() : xdr::Decoder(nullptr, 0);
                   if (r.ok() && d.string(out, 100) && out == s) ok++;
                   done++;
                 });
  }
  for (int i = 0; i < 500 && done < n; i++) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(ok.load(), n);
}

TEST_F(RpcTest, MultiFragmentRecord) {
  int fd = RawConnect();
  xdr::Encoder args;
  args.string("fragmented!");
  std::string call = CallHeader(7, kProg, kVers, 1) + args.Flatten();
  // Three fragments: 5 bytes, 0 bytes, rest.
  std::string wire = Mark(5, false) + call.substr(0, 5) + Mark(0, false) +
                     Mark(call.size() - 5, true) + call.substr(5);
  SendAll(fd, wire);
  std::string rep = RecvRecord(fd);
  ASSERT_FALSE(rep.empty());
  EXPECT_EQ(AcceptStat(rep), SUCCESS);
  EXPECT_NE(rep.find("fragmented!"), std::string::npos);
  ::close(fd);
}

TEST_F(RpcTest, RpcVersionMismatchAndBadCredentialAreDenied) {
  int fd = RawConnect();
  SendAll(fd, Mark(40, true) + CallHeader(8, kProg, kVers, 0, /*rpcvers=*/3));
  std::string rep = RecvRecord(fd);
  ASSERT_FALSE(rep.empty());
  EXPECT_EQ(AcceptStat(rep), -1);
  Denial mismatch = Denied(rep);
  EXPECT_EQ(mismatch.reject_stat, static_cast<uint32_t>(RPC_MISMATCH));
  EXPECT_EQ(mismatch.a, 2u);  // the one RPC version served: low = high = 2
  EXPECT_EQ(mismatch.b, 2u);
  // An unknown credential flavor (RPCSEC_GSS) is AUTH_ERROR.
  xdr::Encoder e;
  e.u32(9);
  e.u32(CALL);
  e.u32(2);
  e.u32(kProg);
  e.u32(kVers);
  e.u32(0);
  e.u32(RPCSEC_GSS);
  e.u32(0);
  e.u32(AUTH_NONE);
  e.u32(0);
  std::string call = e.Flatten();
  SendAll(fd, Mark(call.size(), true) + call);
  rep = RecvRecord(fd);
  ASSERT_FALSE(rep.empty());
  EXPECT_EQ(AcceptStat(rep), -1);
  Denial auth = Denied(rep);
  EXPECT_EQ(auth.reject_stat, static_cast<uint32_t>(AUTH_ERROR));
  EXPECT_TRUE(auth.a == AUTH_BADCRED || auth.a == AUTH_REJECTEDCRED || auth.a == AUTH_TOOWEAK)
      << "auth_stat " << auth.a;
  ::close(fd);
}

TEST_F(RpcTest, TruncatedHeaderGetsGarbageArgs) {
  int fd = RawConnect();
  std::string call = CallHeader(10, kProg, kVers, 0).substr(0, 14);  // xid, CALL, part of body
  SendAll(fd, Mark(call.size(), true) + call);
  std::string rep = RecvRecord(fd);
  ASSERT_FALSE(rep.empty());
  EXPECT_EQ(AcceptStat(rep), GARBAGE_ARGS);
  ::close(fd);
}

TEST_F(RpcTest, OversizedRecordClosesConnectionAndServerKeepsServing) {
  int bad = RawConnect();
  SendAll(bad, Mark(10u << 20, true) + std::string(1000, 'x'));  // claims 10 MiB > 64 KiB max
  EXPECT_EQ(RecvRecord(bad), "");  // closed
  ::close(bad);
  // Garbage: a fragment of random junk.
  int junk = RawConnect();
  std::string g(64, '\xff');
  SendAll(junk, Mark(g.size(), true) + g);
  ::close(junk);  // a message type of 0xffffffff is not a call: ignored, nothing to read
  // Other clients are unaffected.
  auto c = Client();
  EXPECT_TRUE(c->CallSync(kProg, kVers, 0, Cred(), [](xdr::Encoder&) {}).ok());
}

TEST_F(RpcTest, DuplicateRequestCacheAnswersRetransmissions) {
  int fd = RawConnect();
  std::string call = CallHeader(4242, kProg, kVers, 3);
  SendAll(fd, Mark(call.size(), true) + call);
  std::string first = RecvRecord(fd);
  SendAll(fd, Mark(call.size(), true) + call);  // retransmission, same xid and args
  std::string second = RecvRecord(fd);
  ASSERT_FALSE(first.empty());
  EXPECT_EQ(first, second);
  EXPECT_EQ(counter_.load(), 1u);
  // A new xid executes again.
  std::string call2 = CallHeader(4243, kProg, kVers, 3);
  SendAll(fd, Mark(call2.size(), true) + call2);
  EXPECT_FALSE(RecvRecord(fd).empty());
  EXPECT_EQ(counter_.load(), 2u);
  ::close(fd);
}

// Two clients behind one address (different ports) that happen to use the same xid each get
// their own execution and reply; so does a call with the same xid but another credential.
TEST_F(RpcTest, DuplicateRequestCacheKeysOnPortAndCredential) {
  int a = RawConnect();
  int b = RawConnect();
  std::string call = CallHeader(5151, kProg, kVers, 3);
  SendAll(a, Mark(call.size(), true) + call);
  std::string ra = RecvRecord(a);
  SendAll(b, Mark(call.size(), true) + call);
  std::string rb = RecvRecord(b);
  ASSERT_FALSE(ra.empty());
  ASSERT_FALSE(rb.empty());
  EXPECT_EQ(counter_.load(), 2u);
  EXPECT_NE(ra, rb);
  // Same connection, same xid, another AUTH_SYS identity: not a retransmission.
  xdr::Encoder e;
  e.u32(5151);
  e.u32(CALL);
  e.u32(2);
  e.u32(kProg);
  e.u32(kVers);
  e.u32(3);
  xdr_encode(e, EncodeCred(Cred::Sys(1000, 1000)));
  e.u32(AUTH_NONE);
  e.u32(0);
  std::string sys = e.Flatten();
  SendAll(a, Mark(sys.size(), true) + sys);
  EXPECT_FALSE(RecvRecord(a).empty());
  EXPECT_EQ(counter_.load(), 3u);
  ::close(a);
  ::close(b);
}

// A raw client that answers the server's callback on the connection it opened.
TEST_F(RpcTest, BackChannelCallsTheClientOnItsOwnConnection) {
  int fd = RawConnect();
  xdr::Encoder args;
  args.u32(41);
  std::string call = CallHeader(77, kProg, kVers, 5) + args.Flatten();
  SendAll(fd, Mark(call.size(), true) + call);
  // The server's CALL arrives first.
  std::string cb = RecvRecord(fd);
  ASSERT_FALSE(cb.empty());
  xdr::Decoder d(reinterpret_cast<const uint8_t*>(cb.data()), cb.size());
  uint32_t xid, mtype, rpcvers, prog, vers, proc;
  ASSERT_TRUE(d.u32(xid) && d.u32(mtype) && d.u32(rpcvers) && d.u32(prog) && d.u32(vers) && d.u32(proc));
  EXPECT_EQ(mtype, static_cast<uint32_t>(CALL));
  EXPECT_EQ(prog, 0x40000000u);
  opaque_auth cred, verf;
  ASSERT_TRUE(xdr_decode(d, cred) && xdr_decode(d, verf));
  uint32_t v;
  ASSERT_TRUE(d.u32(v));
  EXPECT_EQ(v, 41u);
  // Answer it: v + 1.
  xdr::Encoder rep;
  rep.u32(xid);
  rep.u32(REPLY);
  rep.u32(MSG_ACCEPTED);
  rep.u32(AUTH_NONE);
  rep.u32(0);
  rep.u32(SUCCESS);
  rep.u32(v + 1);
  std::string rs = rep.Flatten();
  SendAll(fd, Mark(rs.size(), true) + rs);
  // Then the reply to our original call carries the client's answer.
  std::string fin = RecvRecord(fd);
  ASSERT_FALSE(fin.empty());
  EXPECT_EQ(AcceptStat(fin), SUCCESS);
  xdr::Decoder fd2(reinterpret_cast<const uint8_t*>(fin.data()) + 24, fin.size() - 24);
  uint32_t got;
  ASSERT_TRUE(fd2.u32(got));
  EXPECT_EQ(got, 42u);
  ::close(fd);
}

TEST_F(RpcTest, ClientFailsCallsWhenServerGoesAway) {
  auto c = Client();
  std::promise<Status> p;
  // A call the server holds (GATE) is in flight when the client closes: it fails at once.
  c->CallAsync(kProg, kVers, 6, Cred(), [](xdr::Encoder&) {},
               [&](Result<RpcClient::Reply> r) { p.set_value(r.status()); });
  while (gate_entered_ == 0) std::this_thread::yield();
  c->Close();
  auto f = p.get_future();
  ASSERT_EQ(f.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_EQ(f.get().code(), Code::kUnavailable);
}


// The loop thread closes a connection (the peer hung up) through the raw pointer epoll gives
// it; the owner, seeing closed(), drops the client at that very moment. That reference may be
// the last: the connection must still be alive when Close() posts its clean-up (it once was
// not: bad_weak_ptr killed the crash test). The sync point holds the loop thread just after
// closed() becomes true until the owner has let go.
TEST(RpcConnectionLifetime, OwnerDropsTheClientWhileTheLoopThreadCloses) {
  int lfd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(lfd, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(lfd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ASSERT_EQ(::listen(lfd, 4), 0);
  socklen_t len = sizeof sa;
  ASSERT_EQ(::getsockname(lfd, reinterpret_cast<sockaddr*>(&sa), &len), 0);
  LoopGroup loops(1);
  loops.Start();
  for (int round = 0; round < 20; round++) {
    auto c = RpcClient::Connect(loops.At(0), "127.0.0.1:" + std::to_string(ntohs(sa.sin_port)));
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    std::shared_ptr<RpcClient> client = std::move(c.value());
    int peer = ::accept(lfd, nullptr, nullptr);
    ASSERT_GE(peer, 0);
    std::promise<void> marked, dropped;
    auto dropped_f = dropped.get_future().share();
    std::atomic<bool> fired{false};
    ::loom::testing::SyncPointScope sp;
    sp.Set("Connection::Close:marked", [&] {
      if (fired.exchange(true)) return;
      marked.set_value();
      dropped_f.wait();
    });
    ::close(peer);  // the client's loop reads EOF and closes from OnEvents
    marked.get_future().wait();
    EXPECT_TRUE(client->closed());
    client.reset();  // ~RpcClient: Close() is a no-op now; its reference goes
    dropped.set_value();
    // A call on a new client proves the loop thread survived and went on.
    std::promise<void> ran;
    loops.At(0)->Post([&] { ran.set_value(); });
    ran.get_future().wait();
  }
  loops.Stop();
  ::close(lfd);
}


// Run to completion (ProcDesc::try_inline): what the inline handler can answer is answered on
// the loop thread; what it defers runs the ordinary handler on a worker, with the same
// arguments, and only that reply goes out. Each path is counted.
TEST(RpcRunToCompletion, DeferredCallsRunOnAWorkerAndOnlyTheirReplyIsSent) {
  RpcServer server(OneLoop(2));
  ProgramDesc p = OneProc("rtc");
  std::atomic<std::thread::id> inline_thread{}, worker_thread{};
  // Even numbers are answered inline (tag 1); odd ones defer, after writing junk that must
  // not reach the client, and the worker answers them (tag 2).
  p.procs[1].name = "HALF";
  p.procs[1].fn = [&](const CallContext&, xdr::Decoder& d, xdr::Encoder& e) {
    uint32_t n;
    if (!d.u32(n)) return GARBAGE_ARGS;
    worker_thread = std::this_thread::get_id();
    e.u32(2);
    e.u32(n);
    return SUCCESS;
  };
  p.procs[1].try_inline = [&](const CallContext&, xdr::Decoder& d, xdr::Encoder& e) {
    uint32_t n;
    if (!d.u32(n)) return GARBAGE_ARGS;
    if (n % 2 == 1) {
      e.u32(0xdeadbeef);
      return kDeferToWorker;
    }
    inline_thread = std::this_thread::get_id();
    e.u32(1);
    e.u32(n);
    return SUCCESS;
  };
  server.Register(p);
  ASSERT_TRUE(server.Start().ok());
  LoopGroup loops(1);
  loops.Start();
  auto c = RpcClient::Connect(loops.At(0), "127.0.0.1:" + std::to_string(server.port()));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  for (uint32_t n = 0; n < 10; n++) {
    auto r = (*c)->CallSync(kProg, kVers, 1, Cred{}, [n](xdr::Encoder& e) { e.u32(n); });
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    xdr::Decoder d = r->results();
    uint32_t tag = 0, echo = ~0u;
    ASSERT_TRUE(d.u32(tag) && d.u32(echo)) << n;
    EXPECT_EQ(tag, n % 2 == 0 ? 1u : 2u) << n;
    EXPECT_EQ(echo, n);
    EXPECT_EQ(d.remaining(), 0u) << "the deferred attempt's bytes leaked into the reply of " << n;
  }
  EXPECT_NE(inline_thread.load(), worker_thread.load());
  EXPECT_EQ(server.stats().Get("rtc.inline.HALF")->calls(), 5u);
  EXPECT_EQ(server.stats().Get("rtc.deferred.HALF")->calls(), 5u);
  EXPECT_EQ(server.stats().Get("rtc.HALF")->calls(), 10u);
  // Arguments that do not decode: the inline attempt answers GARBAGE_ARGS itself.
  auto bad = (*c)->CallSync(kProg, kVers, 1, Cred{}, [](xdr::Encoder&) {});
  EXPECT_EQ(bad.status().message(), "GARBAGE_ARGS");
  EXPECT_EQ(server.stats().Get("rtc.inline.HALF")->calls(), 6u);
  c->reset();
  loops.Stop();
  server.Stop();
}


// Admission control with a pipelining client: four calls that block arrive in one segment,
// on a connection allowed two in flight. Two are admitted, the others wait (in order) and
// reading stops; as each admitted call finishes, one more is admitted. Sync points count the
// admissions and mark the moment the loop stops reading (it once admitted all four).
TEST(RpcAdmission, PipelinedCallsInOneReadAreAdmittedOnlyUpToTheLimit) {
  ServerOptions o = OneLoop(8);
  o.conn.max_inflight = 2;
  RpcServer server(o);
  ProgramDesc p = OneProc("adm");
  std::promise<void> gate;
  std::shared_future<void> open = gate.get_future().share();
  p.procs[1] = {"BLOCK", [open](const CallContext&, xdr::Decoder&, xdr::Encoder& e) {
                  open.wait();
                  e.u32(1);
                  return SUCCESS;
                }};
  server.Register(p);
  ASSERT_TRUE(server.Start().ok());
  std::atomic<int> admitted{0};
  std::promise<int> admitted_at_pause;
  std::atomic<bool> paused_once{false};
  ::loom::testing::SyncPointScope sp;
  sp.Set("Connection::Deliver:admitted", [&] { admitted++; });
  sp.Set("Connection::HandleRead:paused", [&] {
    if (!paused_once.exchange(true)) admitted_at_pause.set_value(admitted.load());
  });
  int fd = testing::RawConnectFrom(server.port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(testing::SendAll(fd, PipelinedCalls(4)));
  EXPECT_EQ(admitted_at_pause.get_future().get(), 2);
  gate.set_value();
  EXPECT_EQ(RecvXids(fd, 4), (std::set<uint32_t>{1, 2, 3, 4}));
  EXPECT_EQ(admitted.load(), 4);
  ::close(fd);
  server.Stop();
}


// A polling loop does what a blocking one does: posted work, timers, Stop (every server in the
// other tests polls: ServerOptions::poll_us is on by default); and it counts what its polls
// found. A loop starts with its full window, so its first wait polls: by the time the first
// posted function runs, that poll has been counted as a hit (the post ended it) or a miss (it
// ran out, then the loop blocked until the post).
TEST(RpcPollWindow, PollingLoopRunsPostsTimersAndCountsItsPolls) {
  OpStats hit, miss;
  EventLoop::Options lo;
  lo.poll_max_us = 200;
  lo.poll_hit = &hit;
  lo.poll_miss = &miss;
  LoopGroup loops(1, lo);
  loops.Start();
  EventLoop* loop = loops.At(0);
  std::promise<void> first;
  std::promise<uint64_t> counted;
  loop->Post([&] {
    first.set_value();
    counted.set_value(hit.calls() + miss.calls());
  });
  first.get_future().get();
  EXPECT_GE(counted.get_future().get(), 1u);

  std::promise<void> ticked;
  int ticks = 0;
  loop->Every(1, [&] {
    if (++ticks == 3) ticked.set_value();
    return ticks < 3;
  });
  ticked.get_future().get();
  EXPECT_EQ(ticks, 3);

  loops.Stop();
}


// Options::batch_replies: the replies a loop answers while handling one read's records leave
// in one sendmsg (common/flush_batch.h); without it, one each. Eight calls arrive in one
// segment and are answered inline.
TEST(RpcBatchReplies, RepliesToOneReadLeaveInOneSend) {
  for (bool batch : {false, true}) {
    ServerOptions o = OneLoop(1);
    o.conn.batch_replies = batch;
    RpcServer server(o);
    ProgramDesc p = OneProc("batch");
    p.procs[1].name = "ECHO";
    p.procs[1].fn = [](const CallContext&, xdr::Decoder&, xdr::Encoder& e) {
      e.u32(2);
      return SUCCESS;
    };
    p.procs[1].try_inline = [](const CallContext&, xdr::Decoder&, xdr::Encoder& e) {
      e.u32(1);
      return SUCCESS;
    };
    server.Register(p);
    ASSERT_TRUE(server.Start().ok());
    std::atomic<int> sends{0};
    ::loom::testing::SyncPointScope sp;
    sp.Set("Connection::WriteSome:sendmsg", [&] { sends++; });
    int fd = testing::RawConnectFrom(server.port());
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(testing::SendAll(fd, PipelinedCalls(8)));
    EXPECT_EQ(RecvXids(fd, 8).size(), 8u);
    EXPECT_EQ(sends.load(), batch ? 1 : 8) << "batch_replies " << batch;
    ::close(fd);
    server.Stop();
  }
}

// Connection::Alone: a call is alone when nothing else the client sent on the connection is
// unanswered. Eight calls in one segment: each of the first seven has calls behind it, the
// last has none; a call sent by itself afterwards is alone.
// Procedure 1, PROBE: the loop thread answers it (tag 1) and records whether the call was
// Alone on its connection; with `defer_odd`, calls whose argument is odd go to a worker
// instead (tag 2). Without it the calls carry no argument.
ProgramDesc AloneProbe(const char* stats_prefix, std::vector<bool>* alone, bool defer_odd) {
  ProgramDesc p = OneProc(stats_prefix);
  p.procs[1].name = "PROBE";
  p.procs[1].fn = [](const CallContext&, xdr::Decoder&, xdr::Encoder& e) {
    e.u32(2);
    return SUCCESS;
  };
  p.procs[1].try_inline = [alone, defer_odd](const CallContext& c, xdr::Decoder& d,
                                             xdr::Encoder& e) {
    uint32_t n = 0;
    if (defer_odd && !d.u32(n)) return GARBAGE_ARGS;
    if (n % 2 == 1) return kDeferToWorker;
    std::shared_ptr<Connection> conn = c.conn.lock();
    alone->push_back(conn && conn->Alone());
    e.u32(1);
    return SUCCESS;
  };
  return p;
}

TEST(RpcConnection, AloneMeansNoOtherCallSentAndUnanswered) {
  RpcServer server(OneLoop(1));
  std::vector<bool> alone;  // the loop thread's only
  ProgramDesc p = AloneProbe("alone", &alone, false);
  server.Register(p);
  ASSERT_TRUE(server.Start().ok());
  int fd = testing::RawConnectFrom(server.port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(testing::SendAll(fd, PipelinedCalls(8)));
  EXPECT_EQ(RecvXids(fd, 8).size(), 8u);
  ASSERT_TRUE(testing::SendAll(fd, PipelinedCalls(1)));
  EXPECT_EQ(RecvXids(fd, 1).size(), 1u);
  EXPECT_EQ(alone, (std::vector<bool>{false, false, false, false, false, false, false, true, true}));
  ::close(fd);
  server.Stop();
}

// A client that waits for each reply before it sends the next call is alone on its
// connection each time, also right after a reply a worker sent: the call leaves the count of
// those in flight before its reply can reach the client (SendReply). A sync point holds the
// thread that sent each reply after the send, where a RecordDone after Send once ran.
TEST(RpcConnection, AfterAWorkersReplyTheNextCallIsAlone) {
  RpcServer server(OneLoop(2));
  std::vector<bool> alone;  // the loop thread's only
  ProgramDesc p = AloneProbe("alone2", &alone, true);
  server.Register(p);
  ASSERT_TRUE(server.Start().ok());
  ::loom::testing::SyncPointScope sp;
  sp.Set("Connection::Queue:flushed",
         [] { std::this_thread::sleep_for(std::chrono::milliseconds(2)); });
  LoopGroup loops(1);
  loops.Start();
  auto c = RpcClient::Connect(loops.At(0), "127.0.0.1:" + std::to_string(server.port()));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  for (uint32_t n = 0; n < 40; n++) {
    auto r = (*c)->CallSync(kProg, kVers, 1, Cred{}, [n](xdr::Encoder& e) { e.u32(n); });
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }
  EXPECT_EQ(alone, std::vector<bool>(20, true));
  EXPECT_EQ(server.stats().Get("alone2.deferred.PROBE")->calls(), 20u);
  c->reset();
  loops.Stop();
  server.Stop();
}

}  // namespace
}  // namespace loom::rpc
