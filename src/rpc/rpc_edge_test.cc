// ONC RPC edge cases (RFC 5531): record marking with many and empty fragments, records too
// short to answer, stray REPLY records, call headers and credentials that do not decode,
// PROG_UNAVAIL / PROG_MISMATCH (with the supported low and high versions) / PROC_UNAVAIL for
// every way a call can miss, the duplicate request cache for failed non-idempotent calls,
// large replies from memory and from files, admission control (max_inflight), and the client
// against a scripted server that answers with denials, odd replies and nothing at all.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <future>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "rpc/client.h"
#include "rpc/raw_test_client.h"
#include "rpc/server.h"

namespace loom::rpc {
namespace {

using testing::CallRecord;
using testing::Mark;
using testing::ParseReply;
using testing::PeerClosed;
using testing::RecvRecord;

constexpr uint32_t kProg = 0x20000123;

std::string Words(std::initializer_list<uint32_t> ws) {
  xdr::Encoder e;
  for (uint32_t w : ws) e.u32(w);
  return e.Flatten();
}

// A procedure row, fields by name (ProcDesc grows; brace lists would leave new ones unset).
ProcDesc Proc(const char* name, ProcHandler fn, bool idempotent = true, bool inline_ok = false) {
  ProcDesc d;
  d.name = name;
  d.fn = std::move(fn);
  d.idempotent = idempotent;
  d.inline_ok = inline_ok;
  return d;
}

std::string Pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i++) s[i] = static_cast<char>((i * 131 + seed) >> 3);
  return s;
}

// A counting gate: calls wait in Pass() until the test opens it; the most calls ever waiting
// at once is recorded.
class Gate {
 public:
  void Pass() {
    std::unique_lock<std::mutex> l(mu_);
    waiting_++;
    max_waiting_ = std::max(max_waiting_, waiting_);
    cv_.notify_all();
    cv_.wait(l, [&] { return open_; });
    waiting_--;
  }
  void WaitForWaiting(int n) {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return waiting_ >= n; });
  }
  void Open() {
    std::lock_guard<std::mutex> l(mu_);
    open_ = true;
    cv_.notify_all();
  }
  int max_waiting() {
    std::lock_guard<std::mutex> l(mu_);
    return max_waiting_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int waiting_ = 0, max_waiting_ = 0;
  bool open_ = false;
};

class RpcEdgeTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(ServerOptions{}); }
  void TearDown() override {
    gate_.Open();
    client_.reset();
    loops_.reset();
    server_.reset();
  }
  void Start(ServerOptions o) {
    o.listen = "127.0.0.1:0";
    o.loops = 1;
    o.workers = 4;
    o.conn.max_record = 64 * 1024;
    server_ = std::make_unique<RpcServer>(o);
    ProgramDesc p;
    p.prog = kProg;
    p.vers = 2;
    p.stats_prefix = "edge";
    p.procs.resize(9);
    p.procs[0] = Proc("NULL", [](const CallContext&, xdr::Decoder&, xdr::Encoder&) { return SUCCESS; },
                  true, true);
    p.procs[1] = Proc("ECHO", [](const CallContext&, xdr::Decoder& d, xdr::Encoder& e) {
                    std::string s;
                    if (!d.string(s, 1 << 20)) return GARBAGE_ARGS;
                    e.string(s);
                    return SUCCESS;
                  });
    // 2: not implemented (a gap in the table).
    // 3: non-idempotent, fails with SYSTEM_ERR: the reply cache forgets it.
    p.procs[3] = Proc("FAIL", [this](const CallContext&, xdr::Decoder&, xdr::Encoder& e) {
                    e.u32(++runs_);
                    return SYSTEM_ERR;
                  }, false);
    // 4: non-idempotent, GARBAGE_ARGS: cached like a success (the same bytes fail the same way).
    p.procs[4] = Proc("GARBAGE", [this](const CallContext&, xdr::Decoder&, xdr::Encoder&) {
                    ++runs_;
                    return GARBAGE_ARGS;
                  }, false);
    // 5: n bytes of Pattern(n, 5) as an opaque (sent from memory, not copied).
    p.procs[5] = Proc("BIG", [](const CallContext&, xdr::Decoder& d, xdr::Encoder& e) {
                    uint32_t n;
                    if (!d.u32(n)) return GARBAGE_ARGS;
                    auto buf = std::make_shared<std::string>(Pattern(n, 5));
                    e.opaque(Bytes::View(buf->data(), buf->size(), buf));
                    return SUCCESS;
                  });
    // 6: an opaque of n bytes read from file_ at offset 0 (sendfile; past its end: zeros).
    p.procs[6] = Proc("FILE", [this](const CallContext&, xdr::Decoder& d, xdr::Encoder& e) {
                    uint32_t n;
                    if (!d.u32(n)) return GARBAGE_ARGS;
                    e.opaque(Bytes::FromFile(file_, 0, n));
                    e.u32(0xabcdef01);  // something after the file segment
                    return SUCCESS;
                  });
    p.procs[7] = Proc("GATE", [this](const CallContext&, xdr::Decoder&, xdr::Encoder& e) {
                    gate_.Pass();
                    e.u32(7);
                    return SUCCESS;
                  });
    // 8: non-idempotent and gated: a retransmission arrives while it still runs.
    p.procs[8] = Proc("SLOW_INCR", [this](const CallContext&, xdr::Decoder&, xdr::Encoder& e) {
                    e.u32(++runs_);
                    gate_.Pass();
                    return SUCCESS;
                  }, false);
    server_->Register(p);
    ProgramDesc p5 = p;
    p5.vers = 5;
    server_->Register(p5);
    ASSERT_TRUE(server_->Start().ok());
    loops_ = std::make_unique<LoopGroup>(1);
    loops_->Start();
  }
  int Raw() {
    int fd = testing::RawConnectFrom(server_->port());
    EXPECT_GE(fd, 0);
    return fd;
  }
  // A connection whose receive window is tiny: a large reply cannot be written in one go, so
  // the server must wait for the socket to drain (EAGAIN, then EPOLLOUT) whatever the timing.
  int NarrowRaw() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(server_->port());
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
  }
  // Sends `rec` (mark included) on a new connection and returns the one reply.
  std::string Exchange(const std::string& rec) {
    int fd = Raw();
    EXPECT_TRUE(testing::SendAll(fd, rec));
    std::string r = RecvRecord(fd);
    ::close(fd);
    return r;
  }
  // A call with an arbitrary body after the xid and message type (for malformed headers).
  static std::string Body(uint32_t xid, const std::string& rest) {
    std::string b = Words({xid, CALL}) + rest;
    return Mark(static_cast<uint32_t>(b.size()), true) + b;
  }
  std::shared_ptr<RpcClient> Client() {
    auto c = RpcClient::Connect(loops_->At(0), "127.0.0.1:" + std::to_string(server_->port()));
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? *c : nullptr;
  }

  std::unique_ptr<RpcServer> server_;
  std::unique_ptr<LoopGroup> loops_;
  std::shared_ptr<RpcClient> client_;
  std::atomic<uint32_t> runs_{0};
  std::shared_ptr<const FileRef> file_;
  Gate gate_;
};

// ---------------------------------------------------------------------------------------
// Call headers (RFC 5531 §9).

TEST_F(RpcEdgeTest, MissingProgramVersionAndProcedure) {
  // §9: PROG_UNAVAIL with nothing after it; PROG_MISMATCH with the lowest and highest
  // versions served; PROC_UNAVAIL for a number past the table and for a gap in it.
  auto head = ParseReply(Exchange(CallRecord(1, kProg + 1, 2, 0, Cred())));
  EXPECT_EQ(head.reply_stat, static_cast<uint32_t>(MSG_ACCEPTED));
  EXPECT_EQ(head.stat, static_cast<uint32_t>(PROG_UNAVAIL));
  EXPECT_TRUE(head.results.empty());
  for (uint32_t vers : {1u, 3u, 4u, 6u, 0xffffffffu}) {
    head = ParseReply(Exchange(CallRecord(2, kProg, vers, 0, Cred())));
    EXPECT_EQ(head.stat, static_cast<uint32_t>(PROG_MISMATCH)) << vers;
    EXPECT_EQ(head.results, Words({2, 5})) << vers;
  }
  for (uint32_t proc : {2u, 9u, 1000u, 0xffffffffu}) {
    head = ParseReply(Exchange(CallRecord(3, kProg, 5, proc, Cred())));
    EXPECT_EQ(head.stat, static_cast<uint32_t>(PROC_UNAVAIL)) << proc;
    EXPECT_TRUE(head.results.empty());
  }
  // Both versions serve the same procedures.
  EXPECT_EQ(ParseReply(Exchange(CallRecord(4, kProg, 5, 0, Cred()))).stat, static_cast<uint32_t>(SUCCESS));
  EXPECT_EQ(ParseReply(Exchange(CallRecord(4, kProg, 2, 0, Cred()))).stat, static_cast<uint32_t>(SUCCESS));
}

TEST_F(RpcEdgeTest, TruncatedHeadersAreGarbageAndBadCredentialsAreDenied) {
  // Up to the procedure number missing: GARBAGE_ARGS, with the xid echoed.
  for (const std::string& rest : {std::string(), Words({2}), Words({2, kProg}), Words({2, kProg, 2})}) {
    std::string rep = Exchange(Body(77, rest));
    ASSERT_GE(rep.size(), 4u) << rest.size();
    EXPECT_EQ(rep.substr(0, 4), Words({77}));
    EXPECT_EQ(ParseReply(rep).stat, static_cast<uint32_t>(GARBAGE_ARGS)) << rest.size();
  }
  // A credential or verifier that does not decode: AUTH_ERROR / AUTH_BADCRED.
  const std::string head = Words({2, kProg, 2, 0});
  const std::string bad[] = {
      head,                                                  // no credential
      head + Words({AUTH_NONE}),                             // credential without a length
      head + Words({AUTH_NONE, 8, 1}),                       // body shorter than its length
      head + Words({AUTH_NONE, 401}) + std::string(404, 'x'),  // over the 400-byte limit
      head + Words({AUTH_NONE, 0}),                          // no verifier
      head + Words({AUTH_SYS, 8, 1, 2, AUTH_NONE, 0}),       // AUTH_SYS body too short
      head + Words({AUTH_SYS, 20, 0, 1000, 0, 0, 0, AUTH_NONE, 0}),  // machine name runs over
  };
  for (size_t i = 0; i < std::size(bad); i++) {
    auto h = ParseReply(Exchange(Body(78, bad[i])));
    EXPECT_EQ(h.reply_stat, static_cast<uint32_t>(MSG_DENIED)) << i;
    EXPECT_EQ(h.stat, static_cast<uint32_t>(AUTH_ERROR)) << i;
    EXPECT_EQ(h.auth_stat, static_cast<uint32_t>(AUTH_BADCRED)) << i;
  }
  // rpcvers other than 2: RPC_MISMATCH with low = high = 2 (§9).
  std::string mm = Exchange(Body(79, Words({3, kProg, 2, 0, AUTH_NONE, 0, AUTH_NONE, 0})));
  EXPECT_EQ(mm, Words({79, REPLY, MSG_DENIED, RPC_MISMATCH, 2, 2}));
}

TEST_F(RpcEdgeTest, RecordsWithoutAnXidCloseTheConnection) {
  // Nothing can be answered without an xid and message type.
  for (const std::string& body : {Words({5}), std::string("abcdef")}) {
    int fd = Raw();
    ASSERT_TRUE(testing::SendAll(fd, Mark(static_cast<uint32_t>(body.size()), true) + body));
    EXPECT_TRUE(PeerClosed(fd)) << body.size();
    ::close(fd);
  }
  // An empty record carries nothing at all: it is skipped, and the connection serves on.
  int fd = Raw();
  ASSERT_TRUE(testing::SendAll(fd, Mark(0, true) + CallRecord(6, kProg, 2, 0, Cred())));
  EXPECT_EQ(ParseReply(RecvRecord(fd)).stat, static_cast<uint32_t>(SUCCESS));
  ::close(fd);
}

TEST_F(RpcEdgeTest, StrayRepliesAndUnknownMessageTypesAreDropped) {
  // A REPLY on a connection that made no call (no back channel) and a message type that is
  // neither CALL nor REPLY get no answer; the connection stays usable, so the next reply
  // read is the NULL call's.
  int fd = Raw();
  std::string stray = Words({40, REPLY, MSG_ACCEPTED, AUTH_NONE, 0, SUCCESS});
  std::string odd = Words({41, 7, 1, 2, 3});
  ASSERT_TRUE(testing::SendAll(fd, Mark(static_cast<uint32_t>(stray.size()), true) + stray +
                                       Mark(static_cast<uint32_t>(odd.size()), true) + odd +
                                       CallRecord(42, kProg, 2, 0, Cred())));
  std::string rep = RecvRecord(fd);
  ASSERT_GE(rep.size(), 4u);
  EXPECT_EQ(rep.substr(0, 4), Words({42}));
  ::close(fd);
}

// ---------------------------------------------------------------------------------------
// Record marking (§11).

TEST_F(RpcEdgeTest, ManySmallAndEmptyFragmentsMakeOneRecord) {
  // A call cut into one-byte fragments with empty fragments between them; the record is the
  // concatenation of the fragments (§11: "zero-length fragments" carry nothing).
  xdr::Encoder e;
  e.string("fragmented hello");
  std::string call = CallRecord(50, kProg, 2, 1, Cred::Sys(7, 8, {9}, "m"), e.Flatten()).substr(4);
  std::string wire;
  for (size_t i = 0; i < call.size(); i++) {
    wire += Mark(0, false);
    wire += Mark(1, i + 1 == call.size()) + call[i];
  }
  int fd = Raw();
  ASSERT_TRUE(testing::SendAll(fd, wire));
  auto h = ParseReply(RecvRecord(fd));
  EXPECT_EQ(h.stat, static_cast<uint32_t>(SUCCESS));
  EXPECT_EQ(h.results, e.Flatten());
  ::close(fd);
}

TEST_F(RpcEdgeTest, PeerClosingMidRecordLeavesTheServerServing) {
  // The peer sends a mark for 1000 bytes, ten of them, and closes; another sends a mark and
  // half of the next mark. Neither leaves anything behind that stops service.
  int a = Raw();
  ASSERT_TRUE(testing::SendAll(a, Mark(1000, true) + std::string(10, 'x')));
  ::close(a);
  int b = Raw();
  ASSERT_TRUE(testing::SendAll(b, std::string("\x80\x00", 2)));
  ::shutdown(b, SHUT_WR);
  EXPECT_TRUE(PeerClosed(b));  // EOF inside a record mark: the server closes its side
  ::close(b);
  xdr::Encoder e;
  e.string("still here");
  auto h = ParseReply(Exchange(CallRecord(51, kProg, 2, 1, Cred(), e.Flatten())));
  EXPECT_EQ(h.stat, static_cast<uint32_t>(SUCCESS));
  EXPECT_EQ(h.results, e.Flatten());
}

TEST_F(RpcEdgeTest, RecordOverTheLimitIsRefusedEvenInFragments) {
  // max_record is 64 KiB here: fragments that add up to more close the connection, although
  // each is small.
  int fd = Raw();
  std::string frag(16 * 1024, 'y');
  std::string wire;
  for (int i = 0; i < 5; i++) wire += Mark(static_cast<uint32_t>(frag.size()), false) + frag;
  testing::SendAll(fd, wire);  // may fail part way once the server has closed
  EXPECT_TRUE(PeerClosed(fd));
  ::close(fd);
}

// ---------------------------------------------------------------------------------------
// Duplicate request cache (RFC 5531 §4 leaves retransmission to the server; NFS relies on it
// for non-idempotent procedures).

TEST_F(RpcEdgeTest, FailedNonIdempotentCallsRunAgainWhenRetransmitted) {
  // SYSTEM_ERR is not cached: the retransmission runs the procedure again.
  std::string call = CallRecord(60, kProg, 2, 3, Cred());
  int fd = Raw();
  ASSERT_TRUE(testing::SendAll(fd, call));
  EXPECT_EQ(ParseReply(RecvRecord(fd)).stat, static_cast<uint32_t>(SYSTEM_ERR));
  ASSERT_TRUE(testing::SendAll(fd, call));
  EXPECT_EQ(ParseReply(RecvRecord(fd)).stat, static_cast<uint32_t>(SYSTEM_ERR));
  EXPECT_EQ(runs_.load(), 2u);
  // GARBAGE_ARGS is cached: the same bytes get the same answer without running again.
  std::string garbage = CallRecord(61, kProg, 2, 4, Cred());
  ASSERT_TRUE(testing::SendAll(fd, garbage));
  std::string first = RecvRecord(fd);
  ASSERT_TRUE(testing::SendAll(fd, garbage));
  std::string second = RecvRecord(fd);
  EXPECT_EQ(ParseReply(first).stat, static_cast<uint32_t>(GARBAGE_ARGS));
  EXPECT_EQ(second, first);
  EXPECT_EQ(runs_.load(), 3u);
  ::close(fd);
  // The failures are counted as errors of their procedures.
  EXPECT_EQ(server_->stats().Get("edge.FAIL")->errors(), 2u);
  EXPECT_EQ(server_->stats().Get("edge.GARBAGE")->errors(), 1u);
}

TEST_F(RpcEdgeTest, RetransmissionWhileTheCallRunsGetsOnlyTheOriginalsReply) {
  // The reply cache knows the call is in progress: the copy is dropped, not run, and the one
  // reply that comes is the original's.
  const std::string call = CallRecord(62, kProg, 2, 8, Cred());
  int fd = Raw();
  ASSERT_TRUE(testing::SendAll(fd, call));
  gate_.WaitForWaiting(1);
  ASSERT_TRUE(testing::SendAll(fd, call + CallRecord(63, kProg, 2, 0, Cred())));
  // The NULL call behind the copy is answered while the original still waits: the copy was
  // dealt with (dropped) before it.
  std::string first = RecvRecord(fd);
  ASSERT_GE(first.size(), 4u);
  EXPECT_EQ(first.substr(0, 4), Words({63}));
  gate_.Open();
  auto h = ParseReply(RecvRecord(fd));
  EXPECT_EQ(h.stat, static_cast<uint32_t>(SUCCESS));
  EXPECT_EQ(h.results, Words({1}));
  ASSERT_TRUE(testing::SendAll(fd, CallRecord(64, kProg, 2, 0, Cred())));
  std::string last = RecvRecord(fd);
  ASSERT_GE(last.size(), 4u);
  EXPECT_EQ(last.substr(0, 4), Words({64}));  // no second reply for 62 came before it
  EXPECT_EQ(runs_.load(), 1u);
  // Once done, a retransmission is answered from the cache with the same bytes.
  ASSERT_TRUE(testing::SendAll(fd, call));
  EXPECT_EQ(ParseReply(RecvRecord(fd)).results, Words({1}));
  EXPECT_EQ(runs_.load(), 1u);
  ::close(fd);
}

// ---------------------------------------------------------------------------------------
// Sending large replies.

TEST_F(RpcEdgeTest, LargeRepliesFromMemoryArriveWhole) {
  // Far larger than the socket buffer: the connection writes what it can and resumes when
  // the socket drains (EPOLLOUT), the reply intact and in order with the next one.
  const uint32_t n = 12u << 20;  // more than any socket send buffer holds
  int fd = NarrowRaw();
  ASSERT_TRUE(testing::SendAll(fd, CallRecord(70, kProg, 2, 5, Cred(), Words({n})) +
                                       CallRecord(71, kProg, 2, 5, Cred(), Words({3000}))));
  // Replies may come in any order (§11 keeps none); each is whole.
  std::set<uint32_t> seen;
  for (int i = 0; i < 2; i++) {
    std::string rep = RecvRecord(fd);
    ASSERT_GE(rep.size(), 4u);
    xdr::Decoder xd(reinterpret_cast<const uint8_t*>(rep.data()), 4);
    uint32_t xid = 0;
    ASSERT_TRUE(xd.u32(xid));
    ASSERT_TRUE(xid == 70 || xid == 71) << xid;
    seen.insert(xid);
    const uint32_t len = xid == 70 ? n : 3000;
    auto h = ParseReply(rep);
    ASSERT_EQ(h.stat, static_cast<uint32_t>(SUCCESS));
    ASSERT_EQ(h.results.size(), 4 + xdr::Decoder::Pad(len));
    EXPECT_EQ(h.results.substr(0, 4), Words({len}));
    EXPECT_TRUE(h.results.compare(4, len, Pattern(len, 5)) == 0) << xid;
  }
  EXPECT_EQ(seen.size(), 2u);
  ::close(fd);
}

TEST_F(RpcEdgeTest, FileSegmentsAreSentAndZeroFilledPastTheEnd) {
  // A reply that references a file range goes out with sendfile; a file shorter than the range
  // (truncated meanwhile) yields zeros for the rest, keeping the record's length right.
  char tmpl[] = "/tmp/loom-rpc-edge-XXXXXX";
  int tfd = ::mkstemp(tmpl);
  ASSERT_GE(tfd, 0);
  ::unlink(tmpl);
  const std::string content = Pattern(300000, 9);
  ASSERT_EQ(::write(tfd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
  file_ = std::make_shared<const FileRef>(tfd);
  int fd = Raw();
  const uint32_t whole = 300000, over = 300100;
  ASSERT_TRUE(testing::SendAll(fd, CallRecord(80, kProg, 2, 6, Cred(), Words({whole}))));
  auto a = ParseReply(RecvRecord(fd));
  ASSERT_EQ(a.stat, static_cast<uint32_t>(SUCCESS));
  ASSERT_EQ(a.results.size(), 4 + whole + 4);
  EXPECT_TRUE(a.results.compare(4, whole, content) == 0);
  EXPECT_EQ(a.results.substr(4 + whole), Words({0xabcdef01}));
  ASSERT_TRUE(testing::SendAll(fd, CallRecord(81, kProg, 2, 6, Cred(), Words({over}))));
  auto b = ParseReply(RecvRecord(fd));
  ASSERT_EQ(b.stat, static_cast<uint32_t>(SUCCESS));
  ASSERT_EQ(b.results.size(), 4 + xdr::Decoder::Pad(over) + 4);
  EXPECT_TRUE(b.results.compare(4, whole, content) == 0);
  EXPECT_EQ(b.results.substr(4 + whole, over - whole), std::string(over - whole, '\0'));
  EXPECT_EQ(b.results.substr(b.results.size() - 4), Words({0xabcdef01}));
  ::close(fd);
  // A large file range to a slow reader: sendfile stops at EAGAIN and resumes.
  {
    char big_tmpl[] = "/tmp/loom-rpc-edge-big-XXXXXX";
    int bfd = ::mkstemp(big_tmpl);
    ASSERT_GE(bfd, 0);
    ::unlink(big_tmpl);
    const std::string big = Pattern(10u << 20, 3);
    ASSERT_EQ(::write(bfd, big.data(), big.size()), static_cast<ssize_t>(big.size()));
    file_ = std::make_shared<const FileRef>(bfd);
    int nfd = NarrowRaw();
    ASSERT_TRUE(testing::SendAll(nfd, CallRecord(83, kProg, 2, 6, Cred(), Words({static_cast<uint32_t>(big.size())}))));
    auto h = ParseReply(RecvRecord(nfd));
    ASSERT_EQ(h.stat, static_cast<uint32_t>(SUCCESS));
    ASSERT_EQ(h.results.size(), 4 + big.size() + 4);
    EXPECT_TRUE(h.results.compare(4, big.size(), big) == 0);
    ::close(nfd);
  }
  // A file that cannot be read at all (no descriptor): all zeros.
  file_ = std::make_shared<const FileRef>(-1);
  auto c = ParseReply(Exchange(CallRecord(82, kProg, 2, 6, Cred(), Words({5000}))));
  ASSERT_EQ(c.stat, static_cast<uint32_t>(SUCCESS));
  ASSERT_EQ(c.results.size(), 4u + 5000 + 4);
  EXPECT_EQ(c.results.substr(4, 5000), std::string(5000, '\0'));
}

// ---------------------------------------------------------------------------------------
// Admission control: a connection stops reading while max_inflight calls are in progress.

class RpcInflightTest : public RpcEdgeTest {
 protected:
  void SetUp() override {
    ServerOptions o;
    o.conn.max_inflight = 2;
    Start(o);
  }
};

TEST_F(RpcInflightTest, ReadingPausesAtTheInflightLimitAndResumes) {
  // Two blocking calls fill the connection's limit: the server stops reading it. A NULL call
  // sent then (answered on the loop, without a worker) is only read once a blocking call has
  // finished, so its reply comes after one of theirs; every call is answered.
  int fd = Raw();
  ASSERT_TRUE(testing::SendAll(fd, CallRecord(90, kProg, 2, 7, Cred())));
  gate_.WaitForWaiting(1);
  ASSERT_TRUE(testing::SendAll(fd, CallRecord(91, kProg, 2, 7, Cred())));
  gate_.WaitForWaiting(2);
  ASSERT_TRUE(testing::SendAll(fd, CallRecord(92, kProg, 2, 0, Cred()) + CallRecord(93, kProg, 2, 7, Cred())));
  gate_.Open();
  std::vector<uint32_t> order;
  for (int i = 0; i < 4; i++) {
    std::string rep = RecvRecord(fd);
    ASSERT_GE(rep.size(), 4u) << i;
    xdr::Decoder d(reinterpret_cast<const uint8_t*>(rep.data()), 4);
    uint32_t xid = 0;
    ASSERT_TRUE(d.u32(xid));
    order.push_back(xid);
    EXPECT_EQ(ParseReply(rep).stat, static_cast<uint32_t>(SUCCESS));
  }
  EXPECT_TRUE(order[0] == 90 || order[0] == 91) << order[0];
  EXPECT_EQ(std::set<uint32_t>(order.begin(), order.end()), (std::set<uint32_t>{90, 91, 92, 93}));
  EXPECT_LE(gate_.max_waiting(), 2);
  ::close(fd);
}

// Pipelined records completed by one read: rpc_test.cc's
// RpcAdmission.PipelinedCallsInOneReadAreAdmittedOnlyUpToTheLimit (sync points count them).

// ---------------------------------------------------------------------------------------
// RpcClient against this server.

TEST_F(RpcEdgeTest, ClientReportsEveryKindOfRejection) {
  auto c = Client();
  ASSERT_TRUE(c);
  EXPECT_EQ(c->CallSync(kProg, 9, 0, Cred(), [](xdr::Encoder&) {}).status().message(), "PROG_MISMATCH 2-5");
  EXPECT_EQ(c->CallSync(kProg, 2, 2, Cred(), [](xdr::Encoder&) {}).status().message(), "PROC_UNAVAIL");
  auto sys = c->CallSync(kProg, 2, 3, Cred(), [](xdr::Encoder&) {});
  EXPECT_EQ(sys.status().code(), Code::kInternal);
  EXPECT_EQ(sys.status().message(), "SYSTEM_ERR");
  // A raw record through the client: a call with rpcvers 3 is denied with RPC_MISMATCH.
  std::promise<Result<Reply>> p;
  c->SendRawRecord(Words({0, 0, 3, kProg, 2, 0, AUTH_NONE, 0, AUTH_NONE, 0}), 0,
                   [&](Result<Reply> r) { p.set_value(std::move(r)); });
  Result<Reply> r = p.get_future().get();
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "RPC_MISMATCH");
  // Calls after Close() fail at once.
  c->Close();
  EXPECT_TRUE(c->closed());
  auto after = c->CallSync(kProg, 2, 0, Cred(), [](xdr::Encoder&) {});
  EXPECT_EQ(after.status().code(), Code::kUnavailable);
}

// ---------------------------------------------------------------------------------------
// RpcClient against a scripted server: replies the real one never sends.

class ScriptedServer {
 public:
  ScriptedServer() {
    lfd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(lfd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    EXPECT_EQ(::listen(lfd_, 4), 0);
    socklen_t len = sizeof sa;
    getsockname(lfd_, reinterpret_cast<sockaddr*>(&sa), &len);
    port_ = ntohs(sa.sin_port);
  }
  ~ScriptedServer() {
    if (fd_ >= 0) ::close(fd_);
    ::close(lfd_);
  }
  uint16_t port() const { return port_; }
  void Accept() {
    fd_ = ::accept(lfd_, nullptr, nullptr);
    timeval tv{5, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  // The next call's xid.
  uint32_t NextXid() {
    std::string rec = RecvRecord(fd_);
    if (rec.size() < 4) return 0;
    return (uint32_t(uint8_t(rec[0])) << 24) | (uint32_t(uint8_t(rec[1])) << 16) |
           (uint32_t(uint8_t(rec[2])) << 8) | uint8_t(rec[3]);
  }
  void Send(const std::string& body) {
    EXPECT_TRUE(testing::SendAll(fd_, Mark(static_cast<uint32_t>(body.size()), true) + body));
  }
  void Close() {
    ::close(fd_);
    fd_ = -1;
  }
  int fd() const { return fd_; }

 private:
  int lfd_ = -1, fd_ = -1;
  uint16_t port_ = 0;
};

TEST(RpcClientEdgeTest, RepliesTheServerNeverSends) {
  LoopGroup loops(1);
  loops.Start();
  ScriptedServer srv;
  auto c = RpcClient::Connect(loops.At(0), "127.0.0.1:" + std::to_string(srv.port()));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  srv.Accept();
  auto call = [&](std::function<std::string(uint32_t)> answer) {
    std::promise<Result<Reply>> p;
    (*c)->CallAsync(kProg, 1, 1, Cred(), [](xdr::Encoder& e) { e.u32(5); },
                    [&](Result<Reply> r) { p.set_value(std::move(r)); });
    uint32_t xid = srv.NextXid();
    srv.Send(answer(xid));
    return p.get_future().get();
  };
  // AUTH_ERROR (§9): a permission error naming the auth_stat.
  auto auth = call([](uint32_t x) { return Words({x, REPLY, MSG_DENIED, AUTH_ERROR, AUTH_TOOWEAK}); });
  EXPECT_EQ(auth.status().code(), Code::kPermission);
  EXPECT_EQ(auth.status().message(), "AUTH_ERROR AUTH_TOOWEAK");
  auto mismatch = call([](uint32_t x) { return Words({x, REPLY, MSG_DENIED, RPC_MISMATCH, 2, 2}); });
  EXPECT_EQ(mismatch.status().message(), "RPC_MISMATCH");
  auto unavail = call([](uint32_t x) { return Words({x, REPLY, MSG_ACCEPTED, AUTH_NONE, 0, PROG_UNAVAIL}); });
  EXPECT_EQ(unavail.status().code(), Code::kNotFound);
  EXPECT_EQ(unavail.status().message(), "PROG_UNAVAIL");
  auto garbage = call([](uint32_t x) { return Words({x, REPLY, MSG_ACCEPTED, AUTH_NONE, 0, GARBAGE_ARGS}); });
  EXPECT_EQ(garbage.status().message(), "GARBAGE_ARGS");
  // A reply header that does not decode (accepted, verifier cut short).
  auto cut = call([](uint32_t x) { return Words({x, REPLY, MSG_ACCEPTED, AUTH_NONE}); });
  EXPECT_EQ(cut.status().message(), "malformed RPC reply header");
  // A message for the call's xid that is not a REPLY fails the call.
  auto notreply = call([](uint32_t x) { return Words({x, 9, 9}); });
  EXPECT_EQ(notreply.status().message(), "not an RPC reply");
  // A reply for another xid is dropped; the call is answered by the one for its own xid,
  // with the results after the header.
  std::promise<Result<Reply>> p;
  (*c)->CallAsync(kProg, 1, 1, Cred(), [](xdr::Encoder&) {},
                  [&](Result<Reply> r) { p.set_value(std::move(r)); });
  uint32_t xid = srv.NextXid();
  srv.Send(Words({xid + 1000, REPLY, MSG_ACCEPTED, AUTH_NONE, 0, SUCCESS, 1}));
  // A CALL from the server (a back-channel call) with no handler set: dropped too.
  srv.Send(Words({xid, CALL, 2, 0x40000000, 1, 0, AUTH_NONE, 0, AUTH_NONE, 0}));
  srv.Send(Words({xid, REPLY, MSG_ACCEPTED, AUTH_NONE, 0, SUCCESS, 42}));
  Result<Reply> ok = p.get_future().get();
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  xdr::Decoder d = ok->results();
  uint32_t v = 0;
  ASSERT_TRUE(d.u32(v));
  EXPECT_EQ(v, 42u);
  EXPECT_EQ(d.remaining(), 0u);
  srv.Close();
  loops.Stop();
}

TEST(RpcClientEdgeTest, OutstandingCallsFailWhenTheServerCloses) {
  LoopGroup loops(1);
  loops.Start();
  ScriptedServer srv;
  auto c = RpcClient::Connect(loops.At(0), "127.0.0.1:" + std::to_string(srv.port()));
  ASSERT_TRUE(c.ok());
  srv.Accept();
  std::promise<Result<Reply>> p;
  (*c)->CallAsync(kProg, 1, 0, Cred(), [](xdr::Encoder&) {},
                  [&](Result<Reply> r) { p.set_value(std::move(r)); });
  EXPECT_NE(srv.NextXid(), 0u);
  srv.Close();  // mid-call: no reply will come
  Result<Reply> r = p.get_future().get();
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  loops.Stop();
}

TEST(RpcClientEdgeTest, CallsTimeOutWhenNoReplyComes) {
  LoopGroup loops(1);
  loops.Start();
  ScriptedServer srv;
  RpcClient::Options o;
  o.timeout_ms = 1;  // expires at the first sweep after it is sent
  auto c = RpcClient::Connect(loops.At(0), "127.0.0.1:" + std::to_string(srv.port()), o);
  ASSERT_TRUE(c.ok());
  srv.Accept();
  auto r = (*c)->CallSync(kProg, 1, 0, Cred(), [](xdr::Encoder&) {});
  EXPECT_EQ(r.status().code(), Code::kTimeout);
  // A reply that comes after the timeout is dropped (its call is gone).
  uint32_t xid = srv.NextXid();
  srv.Send(Words({xid, REPLY, MSG_ACCEPTED, AUTH_NONE, 0, SUCCESS}));
  loops.Stop();
}

TEST(RpcClientEdgeTest, ConnectFailures) {
  LoopGroup loops(1);
  loops.Start();
  EXPECT_FALSE(RpcClient::Connect(loops.At(0), "no-port").ok());
  EXPECT_FALSE(RpcClient::Connect(loops.At(0), "example.com:80").ok());  // not numeric
  // Nothing listens on a port we just closed: connection refused.
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  socklen_t len = sizeof sa;
  getsockname(s, reinterpret_cast<sockaddr*>(&sa), &len);
  ::close(s);
  auto refused = RpcClient::Connect(loops.At(0), "127.0.0.1:" + std::to_string(ntohs(sa.sin_port)));
  EXPECT_FALSE(refused.ok());
  // An address nobody answers (TEST-NET-1): unreachable at once, or no answer within the
  // connect timeout, depending on the host's routes; never a client.
  RpcClient::Options quick;
  quick.connect_timeout_ms = 100;
  EXPECT_FALSE(RpcClient::Connect(loops.At(0), "192.0.2.1:9", quick).ok());
  loops.Stop();
}

// ---------------------------------------------------------------------------------------
// Addresses, flags and limits.

TEST(RpcAddressTest, ParseHostPortAcceptsNumericAddressesOnly) {
  sockaddr_storage ss;
  socklen_t len = 0;
  ASSERT_TRUE(ParseHostPort("10.0.0.1:2049", &ss, &len).ok());
  EXPECT_EQ(ss.ss_family, AF_INET);
  EXPECT_EQ(len, sizeof(sockaddr_in));
  EXPECT_EQ(SockaddrToString(reinterpret_cast<sockaddr*>(&ss)), "10.0.0.1:2049");
  ASSERT_TRUE(ParseHostPort("[::1]:20490", &ss, &len).ok());
  EXPECT_EQ(ss.ss_family, AF_INET6);
  EXPECT_EQ(len, sizeof(sockaddr_in6));
  EXPECT_EQ(SockaddrToString(reinterpret_cast<sockaddr*>(&ss)), "[::1]:20490");
  ASSERT_TRUE(ParseHostPort("fe80::1:0", &ss, &len).ok());  // bare v6: the last colon splits
  EXPECT_EQ(ss.ss_family, AF_INET6);
  for (const char* any : {":111", "*:111"}) {
    ASSERT_TRUE(ParseHostPort(any, &ss, &len).ok()) << any;
    EXPECT_EQ(SockaddrToString(reinterpret_cast<sockaddr*>(&ss)), "0.0.0.0:111");
  }
  for (const char* bad : {"", "1.2.3.4", "[::1]", "[::1]:", "[::1]x80", "[::1", "1.2.3.4:",
                          "1.2.3.4:65536", "1.2.3.4:-1", "1.2.3.4:80x", "host.example:80"}) {
    EXPECT_FALSE(ParseHostPort(bad, &ss, &len).ok()) << bad;
  }
  sockaddr_storage unix_family{};
  unix_family.ss_family = AF_UNIX;
  EXPECT_EQ(SockaddrToString(reinterpret_cast<sockaddr*>(&unix_family)), "?");
}

TEST(RpcServerStartTest, StartFailsOnBadListenAddressesAndTakenPorts) {
  ServerOptions o;
  o.loops = 1;
  o.workers = 1;
  o.listen = "not-an-address";
  EXPECT_FALSE(RpcServer(o).Start().ok());
  o.listen = "192.0.2.1:0";  // TEST-NET-1: no local interface has it
  EXPECT_FALSE(RpcServer(o).Start().ok());
  o.listen = "127.0.0.1:0";
  RpcServer first(o);
  ASSERT_TRUE(first.Start().ok());
  o.listen = "127.0.0.1:" + std::to_string(first.port());
  RpcServer second(o);
  Status s = second.Start();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.ToString().find("bind"), std::string::npos) << s.ToString();
  o.listen = "127.0.0.1:0";
  o.trusted = {"not an address/99"};
  EXPECT_FALSE(RpcServer(o).Start().ok());
}

TEST(RpcServerStartTest, VersionRangeCoversEveryRegisteredVersionInAnyOrder) {
  // PROG_MISMATCH names the lowest and highest versions (RFC 5531 §9), whatever the order
  // they were registered in; procedures without a name are not served.
  ServerOptions o;
  o.listen = "127.0.0.1:0";
  o.loops = 1;
  o.workers = 1;
  o.idle_timeout_ms = 0;  // no idle sweeping at all
  o.trusted = {"127.0.0.1"};
  RpcServer srv(o);
  for (uint32_t v : {7u, 3u, 9u}) {
    ProgramDesc p;
    p.prog = kProg;
    p.vers = v;
    p.stats_prefix = "r" + std::to_string(v);
    p.procs.resize(2);
    p.procs[1] = Proc("ONE", [](const CallContext&, xdr::Decoder&, xdr::Encoder&) { return SUCCESS; });
    srv.Register(p);
  }
  ASSERT_TRUE(srv.Start().ok());
  EXPECT_EQ(srv.exports().Text().find("127.0.0.1") != std::string::npos, true) << srv.exports().Text();
  auto exchange = [&](uint32_t vers, uint32_t proc) {
    int fd = testing::RawConnectFrom(srv.port());
    EXPECT_TRUE(testing::SendAll(fd, CallRecord(5, kProg, vers, proc, Cred())));
    auto h = ParseReply(RecvRecord(fd));
    ::close(fd);
    return h;
  };
  auto mm = exchange(5, 1);
  EXPECT_EQ(mm.stat, static_cast<uint32_t>(PROG_MISMATCH));
  EXPECT_EQ(mm.results, Words({3, 9}));
  EXPECT_EQ(exchange(7, 0).stat, static_cast<uint32_t>(PROC_UNAVAIL));  // no name: not served
  EXPECT_EQ(exchange(7, 1).stat, static_cast<uint32_t>(SUCCESS));
  srv.Stop();
  srv.Stop();  // idempotent
}

TEST(RpcServerStartTest, AnExportsFileThatCannotBeReadStopsTheStart) {
  ServerOptions o;
  o.listen = "127.0.0.1:0";
  o.loops = 1;
  o.workers = 1;
  o.exports_file = "/nonexistent/loom/exports";
  Status s = RpcServer(o).Start();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.ToString().find("/nonexistent/loom/exports"), std::string::npos) << s.ToString();
}

// A back channel over one end of a socket pair; the test plays the client on the other.
TEST(RpcBackChannelTest, CallsFailOnceItsConnectionCloses) {
  LoopGroup loops(1);
  loops.Start();
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
  auto conn = Connection::Create(loops.At(0), sv[0], "pair", Connection::Options{}, Connection::Callbacks{});
  conn->Start();
  auto bc = MakeBackChannel(conn, 60000);
  ASSERT_TRUE(bc->usable());
  EXPECT_EQ(bc->connection(), conn.get());
  // A call goes out as a CALL record of the program asked for.
  std::promise<Result<Reply>> inflight;
  bc->CallAsync(0x40000000, 1, 1, Cred(), [](xdr::Encoder& e) { e.u32(77); },
                [&](Result<Reply> r) { inflight.set_value(std::move(r)); });
  int peer = sv[1];
  int fl = fcntl(peer, F_GETFL);
  fcntl(peer, F_SETFL, fl & ~O_NONBLOCK);
  timeval tv{5, 0};
  setsockopt(peer, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string call = RecvRecord(peer);
  xdr::Decoder d(reinterpret_cast<const uint8_t*>(call.data()), call.size());
  uint32_t xid, mtype, rpcvers, prog, vers, proc;
  ASSERT_TRUE(d.u32(xid) && d.u32(mtype) && d.u32(rpcvers) && d.u32(prog) && d.u32(vers) && d.u32(proc));
  EXPECT_EQ(mtype, static_cast<uint32_t>(CALL));
  EXPECT_EQ(prog, 0x40000000u);
  EXPECT_EQ(proc, 1u);
  // The connection closes with the call outstanding: the call fails (the back channel's
  // sweep notices), and new calls fail at once.
  conn->Close();
  Result<Reply> r = inflight.get_future().get();
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_FALSE(bc->usable());
  std::promise<Result<Reply>> after;
  bc->CallAsync(0x40000000, 1, 0, Cred(), [](xdr::Encoder&) {},
                [&](Result<Reply> res) { after.set_value(std::move(res)); });
  Result<Reply> a = after.get_future().get();
  EXPECT_EQ(a.status().code(), Code::kUnavailable);
  EXPECT_EQ(a.status().message(), "back channel connection closed");
  ::close(peer);
  loops.Stop();
}

TEST(RpcServerStartTest, ServesOverIpv6WhenTheHostHasIt) {
  int probe = ::socket(AF_INET6, SOCK_STREAM, 0);
  sockaddr_in6 sa{};
  sa.sin6_family = AF_INET6;
  sa.sin6_addr = in6addr_loopback;
  const bool v6 = probe >= 0 && ::bind(probe, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
  if (probe >= 0) ::close(probe);
  if (!v6) GTEST_SKIP() << "no IPv6 loopback here";
  ServerOptions o;
  o.listen = "[::1]:0";
  o.loops = 1;
  o.workers = 1;
  RpcServer srv(o);
  ProgramDesc p;
  p.prog = kProg;
  p.vers = 1;
  p.stats_prefix = "v6";
  p.procs.push_back(Proc("NULL", [](const CallContext& c, xdr::Decoder&, xdr::Encoder& e) {
                       e.string(c.peer);
                       return SUCCESS;
                     }));
  srv.Register(p);
  ASSERT_TRUE(srv.Start().ok());
  ASSERT_NE(srv.port(), 0);
  LoopGroup loops(1);
  loops.Start();
  auto c = RpcClient::Connect(loops.At(0), "[::1]:" + std::to_string(srv.port()));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto r = (*c)->CallSync(kProg, 1, 0, Cred(), [](xdr::Encoder&) {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::string peer;
  xdr::Decoder d = r->results();
  ASSERT_TRUE(d.string(peer, 100));
  EXPECT_EQ(peer.rfind("[::1]:", 0), 0u) << peer;  // the peer as "[v6]:port"
  c->reset();
  loops.Stop();
}

TEST(RpcServerFlagsTest, SharedDaemonFlags) {
  ServerOptions o;
  std::vector<std::string> vals;
  auto next = [&] {
    std::string v = vals.front();
    vals.erase(vals.begin());
    return v;
  };
  vals = {"/etc/loom/exports"};
  ASSERT_TRUE(ParseServerFlag("--exports", next, &o));
  EXPECT_EQ(o.exports_file, "/etc/loom/exports");
  vals = {"100"};
  ASSERT_TRUE(ParseServerFlag("--max-connections", next, &o));
  EXPECT_EQ(o.max_connections, 100u);
  vals = {"7"};
  ASSERT_TRUE(ParseServerFlag("--max-connections-per-address", next, &o));
  EXPECT_EQ(o.max_connections_per_address, 7u);
  vals = {"0"};
  ASSERT_TRUE(ParseServerFlag("--idle-timeout", next, &o));
  EXPECT_EQ(o.idle_timeout_ms, 0);
  vals = {"90"};
  ASSERT_TRUE(ParseServerFlag("--idle-timeout", next, &o));
  EXPECT_EQ(o.idle_timeout_ms, 90000);
  EXPECT_FALSE(ParseServerFlag("--port", next, &o));  // not one of them: nothing taken
  EXPECT_NE(std::string(kServerFlagsUsage).find("--idle-timeout"), std::string::npos);
}

TEST(RpcServerFlagsDeathTest, BadFlagValuesExitWithStatusTwo) {
  ::testing::FLAGS_gtest_death_test_style = "threadsafe";
  for (auto [flag, value] : {std::pair<const char*, const char*>{"--max-connections", "0"},
                             {"--max-connections", "12x"},
                             {"--max-connections", ""},
                             {"--max-connections-per-address", "99999999999999999999"},
                             {"--idle-timeout", "-1"},
                             {"--idle-timeout", "604801"}}) {
    ServerOptions o;
    std::string v = value;
    EXPECT_EXIT(ParseServerFlag(flag, [&] { return v; }, &o), ::testing::ExitedWithCode(2),
                "want a number")
        << flag << " " << value;
  }
}

TEST(RpcServerFlagsTest, RaiseFdLimitLiftsTheSoftLimitToTheHardOne) {
  rlimit was;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &was), 0);
  if (was.rlim_max != RLIM_INFINITY && was.rlim_max <= 64) GTEST_SKIP() << "hard limit too low";
  rlimit low = was;
  low.rlim_cur = 64;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  RaiseFdLimit();
  rlimit now;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &now), 0);
  EXPECT_EQ(now.rlim_cur, was.rlim_max == RLIM_INFINITY ? rlim_t{1} << 20 : was.rlim_max);
  RaiseFdLimit();  // already at the hard limit: nothing changes
  rlimit again;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &again), 0);
  EXPECT_EQ(again.rlim_cur, now.rlim_cur);
  setrlimit(RLIMIT_NOFILE, &was);
}

// EventLoop::AfterEvents: a function queued while the loop handles a batch runs on the loop
// thread after the batch (the posted functions that came with it included), once; one it
// queues in turn runs after the next batch, without the loop blocking in between. Current()
// names the loop on its thread and nothing elsewhere.
TEST(EventLoopTest, AfterEventsRunsOnceTheBatchInHandIsDone) {
  LoopGroup loops(1);
  loops.Start();
  EventLoop* loop = loops.At(0);
  EXPECT_EQ(EventLoop::Current(), nullptr);
  std::mutex mu;
  std::vector<std::string> order;
  std::promise<void> done;
  auto note = [&](const char* what) {
    std::lock_guard<std::mutex> l(mu);
    order.push_back(what);
  };
  loop->Post([&] {
    EXPECT_EQ(EventLoop::Current(), loop);
    loop->AfterEvents([&] {
      note("after");
      loop->AfterEvents([&] {  // queued from an after-events function: the next round
        note("after-after");
        done.set_value();
      });
    });
    note("posted-1");
  });
  loop->Post([&] { note("posted-2"); });
  ASSERT_EQ(done.get_future().wait_for(std::chrono::seconds(30)), std::future_status::ready);
  std::lock_guard<std::mutex> l(mu);
  // The two posts usually arrive in one batch; if the second came later it ran after "after".
  ASSERT_EQ(order.size(), 4u);
  EXPECT_EQ(order[0], "posted-1");
  EXPECT_EQ(order[3], "after-after");
  EXPECT_TRUE((order[1] == "posted-2" && order[2] == "after") ||
              (order[1] == "after" && order[2] == "posted-2"));
}

}  // namespace
}  // namespace loom::rpc
