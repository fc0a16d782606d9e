// libloom's session against a metadata server that misbehaves on cue: a real in-process loom-mds
// (src/nfs4/mds_fixture.h) served through an interposer that can answer a COMPOUND itself (a
// SEQUENCE error, a reply that does not decode, an RPC-level failure) or rewrite the reply the
// MDS gave. Each test checks what the caller sees: a retry that succeeds, a recovery, or an
// error class in words (RFC 8881 §2.10.6, §18.46.3).
#include <condition_variable>
#include <future>
#include <mutex>
#include <string>

#include "client/ds_test_util.h"
#include "loom/client.h"
#include "nfs4/mds_fixture.h"

namespace loom::nfs4 {
namespace {

namespace lc = loom::client;
namespace dstest = loom::client::dstest;

// Whether a COMPOUND carries op `n`.
bool Has(const COMPOUND4args& a, nfs_opnum4 n) {
  for (const auto& op : a.argarray)
    if (op.argop == n) return true;
  return false;
}

// A reply whose SEQUENCE failed with `st` (nothing after it ran).
COMPOUND4res SequenceError(nfsstat4 st) {
  COMPOUND4res r;
  r.status = st;
  nfs_resop4 op;
  op.resop = OP_SEQUENCE;
  op.opsequence = std::make_unique<SEQUENCE4res>();
  op.opsequence->sr_status = st;
  r.resarray.push_back(std::move(op));
  return r;
}

class SessionFaultTest : public MdsTest {
 protected:
  enum class Pre { kRun, kAnswer, kSystemErr, kGarbage, kCloseConnection };
  // Before the MDS runs a COMPOUND: run it, answer with *out, fail the RPC, send bytes that
  // do not decode, or drop the connection it came on.
  using PreHook = std::function<Pre(const COMPOUND4args&, COMPOUND4res* out)>;
  // After the MDS ran it: may rewrite the reply.
  using PostHook = std::function<void(const COMPOUND4args&, COMPOUND4res& res)>;

  void SetUp() override {
    MdsTest::SetUp();
    if (HasFatalFailure()) return;
    rpc::ProgramDesc p = mds_->Program();
    rpc::ProcHandler real = p.procs[1].fn;
    // Every COMPOUND goes through the hooks below, so none runs on the loop by itself.
    p.procs[1].try_inline = nullptr;
    p.procs[1].fn = [this, real](const rpc::CallContext& ctx, xdr::Decoder& d, xdr::Encoder& e) {
      xdr::Decoder peek = d;
      COMPOUND4args a;
      if (!xdr_decode(peek, a)) return real(ctx, d, e);
      PreHook pre;
      PostHook post;
      {
        std::lock_guard<std::mutex> g(mu_);
        seen_.push_back(Summary(a));
        if (!a.argarray.empty() && a.argarray[0].argop == OP_SEQUENCE) {
          last_conn_ = ctx.conn;
          last_session_ = a.argarray[0].opsequence->sa_sessionid;
        }
        pre = pre_;
        post = post_;
        cv_.notify_all();
      }
      COMPOUND4res mine;
      switch (pre ? pre(a, &mine) : Pre::kRun) {
        case Pre::kRun:
          break;
        case Pre::kAnswer:
          xdr_encode(e, mine);
          return rpc::SUCCESS;
        case Pre::kSystemErr:
          return rpc::SYSTEM_ERR;
        case Pre::kGarbage:
          e.u32(NFS4_OK);
          e.u32(1000);  // a tag longer than what follows
          return rpc::SUCCESS;
        case Pre::kCloseConnection:
          if (auto c = ctx.conn.lock()) c->Close();
          return rpc::SYSTEM_ERR;
      }
      if (!post) return real(ctx, d, e);
      xdr::Encoder tmp;
      const rpc::accept_stat st = real(ctx, d, tmp);
      if (st != rpc::SUCCESS) return st;
      const std::string bytes = tmp.Flatten();
      xdr::Decoder rd(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
      COMPOUND4res res;
      if (!xdr_decode(rd, res)) {
        ADD_FAILURE() << "the MDS's own reply does not decode";
        return rpc::SYSTEM_ERR;
      }
      post(a, res);
      xdr_encode(e, res);
      return rpc::SUCCESS;
    };
    rpc::ServerOptions o;
    o.listen = "127.0.0.1:0";
    o.workers = 2;
    o.loops = 1;
    proxy_ = std::make_unique<rpc::RpcServer>(o);
    proxy_->Register(std::move(p));
    ASSERT_TRUE(proxy_->Start().ok());
  }
  void TearDown() override {
    proxy_.reset();
    MdsTest::TearDown();
  }

  // "minor:OP,OP,..." of a COMPOUND, for the tests to look for.
  static std::string Summary(const COMPOUND4args& a) {
    std::string s = std::to_string(a.minorversion) + ":";
    for (const auto& op : a.argarray) s += std::string(nfs_opnum4_name(op.argop)) + ",";
    return s;
  }
  void SetPre(PreHook h) {
    std::lock_guard<std::mutex> g(mu_);
    pre_ = std::move(h);
  }
  void SetPost(PostHook h) {
    std::lock_guard<std::mutex> g(mu_);
    post_ = std::move(h);
  }
  std::vector<std::string> Seen() {
    std::lock_guard<std::mutex> g(mu_);
    return seen_;
  }
  size_t CountSeen(const std::string& needle) {
    size_t n = 0;
    for (const auto& s : Seen()) n += s.find(needle) != std::string::npos;
    return n;
  }
  // Waits (up to `ms`, which only bounds a failing test) until a COMPOUND containing `needle`
  // has arrived.
  bool WaitSeen(const std::string& needle, size_t times = 1, int ms = 10000) {
    std::unique_lock<std::mutex> g(mu_);
    return cv_.wait_for(g, std::chrono::milliseconds(ms), [&] {
      size_t n = 0;
      for (const auto& s : seen_) n += s.find(needle) != std::string::npos;
      return n >= times;
    });
  }
  // A pre hook that answers the first `times` COMPOUNDs carrying `op` with `answer` and runs
  // everything else.
  static PreHook Times(nfs_opnum4 op, int times, std::function<Pre(COMPOUND4res*)> answer) {
    auto left = std::make_shared<std::atomic<int>>(times);
    return [=](const COMPOUND4args& a, COMPOUND4res* out) {
      if (!Has(a, op) || left->fetch_sub(1) <= 0) return Pre::kRun;
      return answer(out);
    };
  }
  static std::function<Pre(COMPOUND4res*)> Seq(nfsstat4 st) {
    return [st](COMPOUND4res* out) {
      *out = SequenceError(st);
      return Pre::kAnswer;
    };
  }

  lc::Options Opts() {
    lc::Options o;
    o.mds = "127.0.0.1:" + std::to_string(proxy_->port());
    o.uid = 0;
    o.gid = 0;
    o.call_timeout_ms = 5000;
    o.retry_for_ms = 10000;
    return o;
  }
  std::shared_ptr<lc::Client> Connect(lc::Options o) {
    auto c = lc::Client::Connect(o);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? c.value() : nullptr;
  }
  std::shared_ptr<lc::Client> Connect() { return Connect(Opts()); }

  std::unique_ptr<rpc::RpcServer> proxy_;
  std::mutex mu_;
  std::condition_variable cv_;
  PreHook pre_;
  PostHook post_;
  std::vector<std::string> seen_;
  std::weak_ptr<rpc::Connection> last_conn_;
  sessionid4 last_session_{};
  uint32_t cb_seq_ = 0;
  std::shared_ptr<rpc::BackChannel> bc_;

  // Sends CB_SEQUENCE + `op` to the client over the connection of its latest COMPOUND, as the
  // MDS would (RFC 8881 §20.9); the CB_COMPOUND4res it answers.
  CB_COMPOUND4res Callback(nfs_cb_argop4 op) {
    CB_COMPOUND4res res;
    res.status = NFS4ERR_SERVERFAULT;
    auto args = std::make_shared<CB_COMPOUND4args>();
    {
      std::lock_guard<std::mutex> g(mu_);
      auto conn = last_conn_.lock();
      if (!conn) return res;
      // Replies on this connection now come to this back channel (the MDS's own callbacks
      // would time out: these tests make none).
      if (!bc_ || bc_->connection() != conn.get()) bc_ = rpc::MakeBackChannel(conn, 5000);
      args->minorversion = 2;
      nfs_cb_argop4 sq;
      sq.argop = OP_CB_SEQUENCE;
      sq.opcbsequence = std::make_unique<CB_SEQUENCE4args>();
      sq.opcbsequence->csa_sessionid = last_session_;
      // Slot 0 (the MDS grants one): these tests make the MDS recall nothing, so its seqids
      // are ours.
      sq.opcbsequence->csa_slotid = 0;
      sq.opcbsequence->csa_sequenceid = ++cb_seq_;
      args->argarray.push_back(std::move(sq));
      args->argarray.push_back(std::move(op));
    }
    std::promise<Result<rpc::Reply>> p;
    bc_->CallAsync(internal_program(), 1, 1, rpc::Cred::Sys(0, 0, {}, "test"),
                   [args](xdr::Encoder& e) { xdr_encode(e, *args); },
                   [&p](Result<rpc::Reply> r) { p.set_value(std::move(r)); });
    auto r = p.get_future().get();
    if (!r.ok()) return res;
    xdr::Decoder d = r->results();
    if (!xdr_decode(d, res)) res.status = NFS4ERR_SERVERFAULT;
    return res;
  }
  static uint32_t internal_program() { return 0x40000000; }  // CallbackService::kProgram
};

TEST_F(SessionFaultTest, SequenceDelayBadSlotAndMisorderedAreRetried) {
  auto c = Connect();
  ASSERT_TRUE(c);
  const nfsstat4 cases[] = {NFS4ERR_DELAY, NFS4ERR_BADSLOT, NFS4ERR_SEQ_MISORDERED};
  int i = 0;
  for (nfsstat4 st : cases) {
    const uint64_t retries = c->stats().retries;
    SetPre(Times(OP_CREATE, 1, Seq(st)));
    const std::string dir = "/d" + std::to_string(i++);
    lc::Status s = c->Mkdir(dir);
    ASSERT_TRUE(s.ok()) << nfsstat4_name(st) << ": " << s.ToString();
    EXPECT_EQ(c->stats().retries, retries + 1) << nfsstat4_name(st);
    // It ran once: the directory is there, and a second mkdir says so.
    EXPECT_EQ(c->Mkdir(dir).code(), lc::Errc::kExists);
  }
  SetPre(nullptr);
  // The session goes on working on the slots it has left.
  for (int k = 0; k < 20; k++) ASSERT_TRUE(c->Stat("/d0").ok());
  EXPECT_EQ(c->List("/")->size(), 3u);
}

TEST_F(SessionFaultTest, ALostReplyToAResendIsAnIoErrorInWords) {
  auto c = Connect();
  ASSERT_TRUE(c);
  SetPre(Times(OP_CREATE, 1, Seq(NFS4ERR_RETRY_UNCACHED_REP)));
  lc::Status s = c->Mkdir("/maybe");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), lc::Errc::kIo);
  EXPECT_EQ(s.nfs_status(), NFS4ERR_RETRY_UNCACHED_REP);
  EXPECT_NE(s.ToString().find("may have taken effect"), std::string::npos) << s.ToString();
  // The slot's seqid moved on while the server's did not: the next call on it is misordered
  // and retried on another slot; the caller sees none of that.
  SetPre(nullptr);
  ASSERT_TRUE(c->Mkdir("/after").ok());
  EXPECT_TRUE(c->Stat("/after").ok());
  EXPECT_EQ(c->Stat("/maybe").status().code(), lc::Errc::kNotFound);
}

TEST_F(SessionFaultTest, AnUnknownSequenceErrorFailsTheCall) {
  auto c = Connect();
  ASSERT_TRUE(c);
  SetPre(Times(OP_CREATE, 1, Seq(NFS4ERR_SERVERFAULT)));
  lc::Status s = c->Mkdir("/x");
  EXPECT_EQ(s.code(), lc::Errc::kInternal) << s.ToString();
  EXPECT_EQ(s.nfs_status(), NFS4ERR_SERVERFAULT);
  SetPre(nullptr);
  EXPECT_TRUE(c->Mkdir("/x").ok());
}

TEST_F(SessionFaultTest, RepliesThatDoNotDecodeOrLackSequenceAreProtocolErrors) {
  auto c = Connect();
  ASSERT_TRUE(c);
  SetPre(Times(OP_CREATE, 1, [](COMPOUND4res*) { return Pre::kGarbage; }));
  lc::Status s = c->Mkdir("/g");
  EXPECT_EQ(s.code(), lc::Errc::kInternal) << s.ToString();
  EXPECT_NE(s.ToString().find("undecodable"), std::string::npos) << s.ToString();
  // A COMPOUND that failed before its SEQUENCE ran (bad XDR as the server saw it).
  SetPre(Times(OP_CREATE, 1, [](COMPOUND4res* out) {
    out->status = NFS4ERR_BADXDR;
    return Pre::kAnswer;
  }));
  s = c->Mkdir("/g");
  EXPECT_EQ(s.code(), lc::Errc::kInternal) << s.ToString();
  EXPECT_EQ(s.nfs_status(), NFS4ERR_BADXDR);
  SetPre(nullptr);
  EXPECT_TRUE(c->Mkdir("/g").ok());
}

TEST_F(SessionFaultTest, AnRpcFailureIsRetried) {
  auto c = Connect();
  ASSERT_TRUE(c);
  const uint64_t retries = c->stats().retries;
  SetPre(Times(OP_CREATE, 2, [](COMPOUND4res*) { return Pre::kSystemErr; }));
  lc::Status s = c->Mkdir("/r");
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(c->stats().retries, retries + 2);
  EXPECT_TRUE(c->Stat("/r").ok());
}

TEST_F(SessionFaultTest, OpLevelDelayIsRetriedAndPersistentGraceTimesOut) {
  auto o = Opts();
  o.retry_for_ms = 400;
  auto c = Connect(o);
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->Mkdir("/s").ok());
  // The MDS ran the ops; the reply says one was not done (DELAY): asked again, same answer.
  auto left = std::make_shared<std::atomic<int>>(1);
  SetPost([left](const COMPOUND4args& a, COMPOUND4res& res) {
    if (Has(a, OP_GETATTR) && Has(a, OP_LOOKUP) && left->fetch_sub(1) > 0) res.status = NFS4ERR_DELAY;
  });
  const uint64_t retries = c->stats().retries;
  auto st = c->Stat("/s");
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_EQ(st->type, lc::FileType::kDirectory);
  EXPECT_EQ(c->stats().retries, retries + 1);
  // A server that stays in grace for longer than the caller retries: kTimeout, in words.
  SetPost([](const COMPOUND4args& a, COMPOUND4res& res) {
    if (Has(a, OP_LOOKUP)) res.status = NFS4ERR_GRACE;
  });
  auto late = c->Stat("/s");
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.status().code(), lc::Errc::kTimeout) << late.status().ToString();
  EXPECT_NE(late.status().ToString().find("gave up after retrying"), std::string::npos);
  SetPost(nullptr);
  EXPECT_TRUE(c->Stat("/s").ok());
}

TEST_F(SessionFaultTest, ABadSessionIsRecoveredWithANewOne) {
  auto c = Connect();
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->Mkdir("/b").ok());
  EXPECT_EQ(c->stats().recoveries, 0u);
  const size_t sessions = CountSeen("CREATE_SESSION");
  SetPre(Times(OP_LOOKUP, 1, Seq(NFS4ERR_BADSESSION)));
  auto st = c->Stat("/b");
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_EQ(c->stats().recoveries, 1u);
  EXPECT_EQ(CountSeen("CREATE_SESSION"), sessions + 1);
  EXPECT_GE(CountSeen("RECLAIM_COMPLETE"), 1u);
  // Later calls use the new session.
  SetPre(nullptr);
  EXPECT_TRUE(c->Mkdir("/b/c").ok());
}

TEST_F(SessionFaultTest, ALostConnectionIsReboundToTheSameSession) {
  auto c = Connect();
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->Mkdir("/k").ok());
  const size_t sessions = CountSeen("CREATE_SESSION");
  SetPre(Times(OP_LOOKUP, 1, [](COMPOUND4res*) { return Pre::kCloseConnection; }));
  auto st = c->Stat("/k");
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  // The session outlived its connection: BIND_CONN_TO_SESSION on a new one, no new session.
  EXPECT_GE(CountSeen("BIND_CONN_TO_SESSION"), 1u);
  EXPECT_EQ(CountSeen("CREATE_SESSION"), sessions);
  EXPECT_EQ(c->stats().recoveries, 0u);
  EXPECT_GE(c->stats().retries, 1u);
}

TEST_F(SessionFaultTest, ABackChannelReportedDownIsBoundAgain) {
  auto c = Connect();
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->Mkdir("/p").ok());
  auto left = std::make_shared<std::atomic<int>>(1);
  SetPost([left](const COMPOUND4args& a, COMPOUND4res& res) {
    if (Has(a, OP_LOOKUP) && !res.resarray.empty() && res.resarray[0].opsequence &&
        left->fetch_sub(1) > 0)
      res.resarray[0].opsequence->sr_resok4.sr_status_flags |= SEQ4_STATUS_CB_PATH_DOWN;
  });
  ASSERT_TRUE(c->Stat("/p").ok());
  // The rebind runs on the session's timer, after the call returned.
  EXPECT_TRUE(WaitSeen("BIND_CONN_TO_SESSION"));
  SetPost(nullptr);
  EXPECT_TRUE(c->Stat("/p").ok());
  EXPECT_EQ(c->stats().recoveries, 0u);
}

TEST_F(SessionFaultTest, AServerWithoutMinorVersion2IsSpokenToIn41) {
  // The server refuses minor version 2 (RFC 8881 §16.2.3: MINOR_VERS_MISMATCH, no results).
  SetPre([](const COMPOUND4args& a, COMPOUND4res* out) {
    if (a.minorversion != 2) return Pre::kRun;
    out->status = NFS4ERR_MINOR_VERS_MISMATCH;
    return Pre::kAnswer;
  });
  auto c = Connect();
  ASSERT_TRUE(c);
  ASSERT_EQ(CountSeen("2:OP_EXCHANGE_ID"), 1u);
  const size_t before = Seen().size();
  // Namespace and data through a 4.1 session; nothing after the first try asks for 4.2.
  ASSERT_TRUE(c->Mkdir("/v41").ok());
  lc::OpenFlags wr;
  wr.write = true;
  wr.create = true;
  auto f = c->Open("/v41/f", wr);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  const std::string data(100000, 'v');
  auto w = f.value()->Write(0, data.data(), data.size());
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  ASSERT_TRUE(f.value()->Sync().ok());
  std::string back(data.size(), '\0');
  auto r = f.value()->Read(0, back.data(), back.size());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(back, data);
  ASSERT_TRUE(f.value()->Close().ok());
  auto seen = Seen();
  ASSERT_GT(seen.size(), before);
  for (size_t i = before; i < seen.size(); i++) EXPECT_EQ(seen[i].substr(0, 2), "1:") << seen[i];
  EXPECT_EQ(c->Stat("/v41/f")->size, data.size());
}

TEST_F(SessionFaultTest, ConnectGivesUpWhenTheServerNeverAnswersWell) {
  SetPre([](const COMPOUND4args& a, COMPOUND4res* out) {
    if (!Has(a, OP_EXCHANGE_ID)) return Pre::kRun;
    out->status = NFS4ERR_SERVERFAULT;
    return Pre::kAnswer;
  });
  auto o = Opts();
  o.retry_for_ms = 300;
  auto c = lc::Client::Connect(o);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().ToString().find("EXCHANGE_ID"), std::string::npos) << c.status().ToString();
  // CREATE_SESSION refused.
  SetPre([](const COMPOUND4args& a, COMPOUND4res* out) {
    if (!Has(a, OP_CREATE_SESSION)) return Pre::kRun;
    out->status = NFS4ERR_INVAL;
    return Pre::kAnswer;
  });
  c = lc::Client::Connect(o);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().ToString().find("CREATE_SESSION"), std::string::npos) << c.status().ToString();
  // RECLAIM_COMPLETE refused (as by a server that takes no reclaims): no client either.
  SetPre([](const COMPOUND4args& a, COMPOUND4res* out) {
    if (!Has(a, OP_RECLAIM_COMPLETE)) return Pre::kRun;
    *out = SequenceError(NFS4ERR_SERVERFAULT);
    return Pre::kAnswer;
  });
  c = lc::Client::Connect(o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), lc::Errc::kInternal) << c.status().ToString();
  // A server that says DELAY to EXCHANGE_ID at first is asked again.
  auto left = std::make_shared<std::atomic<int>>(2);
  SetPre([left](const COMPOUND4args& a, COMPOUND4res* out) {
    if (!Has(a, OP_EXCHANGE_ID) || left->fetch_sub(1) <= 0) return Pre::kRun;
    out->status = NFS4ERR_DELAY;
    return Pre::kAnswer;
  });
  o.retry_for_ms = 10000;
  const size_t tries = CountSeen("EXCHANGE_ID");
  c = lc::Client::Connect(o);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(CountSeen("EXCHANGE_ID"), tries + 3);
  EXPECT_TRUE(c.value()->Mkdir("/connected").ok());
}

TEST_F(SessionFaultTest, AMisorderedLastSlotDoesNotStallTheSession) {
  auto o = Opts();
  o.retry_for_ms = 3000;
  o.call_timeout_ms = 2000;
  auto c = Connect(o);
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->Mkdir("/one").ok());
  // The server lowers this session to one slot (sr_target_highest_slotid 0, RFC 8881
  // §2.10.6.1)...
  SetPost([](const COMPOUND4args& a, COMPOUND4res& res) {
    if (Has(a, OP_LOOKUP) && !res.resarray.empty() && res.resarray[0].opsequence)
      res.resarray[0].opsequence->sr_resok4.sr_target_highest_slotid = 0;
  });
  ASSERT_TRUE(c->Stat("/one").ok());
  // ...and then says that slot's seqid is misordered. The client gives that slot up; with no
  // other slot left it must get new ones (a new session) rather than wait for ever.
  const size_t sessions = CountSeen("CREATE_SESSION");
  SetPre(Times(OP_CREATE, 1, Seq(NFS4ERR_SEQ_MISORDERED)));
  auto done = std::async(std::launch::async, [c] { return c->Mkdir("/two"); });
  const bool renewed = WaitSeen("CREATE_SESSION", sessions + 1);
  EXPECT_TRUE(renewed) << "no new session after the last slot was given up";
  if (!renewed) c->Close();  // fails the stalled call
  lc::Status s = done.get();
  EXPECT_TRUE(s.ok()) << s.ToString();
  SetPre(nullptr);
  SetPost(nullptr);
  EXPECT_TRUE(c->Stat("/two").ok());
}

TEST_F(SessionFaultTest, CloseFailsACallWaitingToBeRetried) {
  auto c = Connect();
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->Mkdir("/w").ok());
  // The server stays in grace: the call backs off and retries for retry_for_ms (10 s).
  SetPost([](const COMPOUND4args& a, COMPOUND4res& res) {
    if (Has(a, OP_LOOKUP)) res.status = NFS4ERR_GRACE;
  });
  const size_t lookups = CountSeen("OP_LOOKUP");
  auto done = std::async(std::launch::async, [c] { return c->Stat("/w"); });
  ASSERT_TRUE(WaitSeen("OP_LOOKUP", lookups + 2));  // retried once: it is in its back-off
  c->Close();
  // Close ends the wait: the call fails as closed instead of hanging.
  auto r = done.get();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), lc::Errc::kUnavailable) << r.status().ToString();
  EXPECT_NE(r.status().ToString().find("closed"), std::string::npos) << r.status().ToString();
}

// ---------------------------------------------------------------- I/O through the MDS

TEST_F(SessionFaultTest, MdsWriteErrorsReachTheCaller) {
  auto o = Opts();
  o.pnfs = false;  // every byte through the MDS (RFC 8881 §18.32, §18.22)
  auto c = Connect(o);
  ASSERT_TRUE(c);
  lc::OpenFlags rw;
  rw.write = true;
  rw.create = true;
  auto f = c->Open("/m", rw);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  const std::string data(3000, 'w');
  // The MDS's disk is full.
  SetPost([](const COMPOUND4args& a, COMPOUND4res& res) {
    if (!Has(a, OP_WRITE)) return;
    res.status = NFS4ERR_NOSPC;
    res.resarray.back().opwrite->status = NFS4ERR_NOSPC;
  });
  auto w = f.value()->Write(0, data.data(), data.size());
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), lc::Errc::kNoSpace) << w.status().ToString();
  EXPECT_NE(w.status().ToString().find("/m"), std::string::npos);
  // It says it wrote nothing, or more than it was sent.
  for (uint32_t count : {0u, 5000u}) {
    SetPost([count](const COMPOUND4args& a, COMPOUND4res& res) {
      if (Has(a, OP_WRITE) && res.status == NFS4_OK) res.resarray.back().opwrite->resok4.count = count;
    });
    w = f.value()->Write(0, data.data(), data.size());
    ASSERT_FALSE(w.ok());
    EXPECT_EQ(w.status().code(), lc::Errc::kIo) << w.status().ToString();
    EXPECT_NE(w.status().ToString().find("wrote nothing"), std::string::npos) << w.status().ToString();
  }
  // A short write is continued from where it stopped; an UNSTABLE one is committed by Sync.
  auto shorter = std::make_shared<std::atomic<int>>(1);
  SetPost([shorter](const COMPOUND4args& a, COMPOUND4res& res) {
    if (!Has(a, OP_WRITE) || res.status != NFS4_OK) return;
    res.resarray.back().opwrite->resok4.committed = UNSTABLE4;
    if (shorter->fetch_sub(1) > 0) res.resarray.back().opwrite->resok4.count = 1000;
  });
  const size_t commits = CountSeen("OP_COMMIT");
  w = f.value()->Write(0, data.data(), data.size());
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ(*w, data.size());
  ASSERT_TRUE(f.value()->Sync().ok());
  EXPECT_EQ(CountSeen("OP_COMMIT"), commits + 1);
  // A COMMIT the MDS refuses fails the Sync.
  ASSERT_TRUE(f.value()->Write(0, data.data(), data.size()).ok());
  SetPost([](const COMPOUND4args& a, COMPOUND4res& res) {
    if (Has(a, OP_COMMIT)) res.status = NFS4ERR_IO;
  });
  lc::Status s = f.value()->Sync();
  EXPECT_EQ(s.code(), lc::Errc::kIo) << s.ToString();
  SetPost(nullptr);
  EXPECT_TRUE(f.value()->Close().ok());
  std::string back(data.size(), '\0');
  auto g = c->Open("/m", lc::OpenFlags{});
  ASSERT_TRUE(g.ok());
  ASSERT_TRUE(g.value()->Read(0, back.data(), back.size()).ok());
  EXPECT_EQ(back, data);
  // A READ the MDS fails.
  SetPost([](const COMPOUND4args& a, COMPOUND4res& res) {
    if (Has(a, OP_READ)) res.status = NFS4ERR_IO;
  });
  auto r = g.value()->Read(0, back.data(), back.size());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), lc::Errc::kIo) << r.status().ToString();
  SetPost(nullptr);
  EXPECT_TRUE(g.value()->Close().ok());
}

// ---------------------------------------------------------------- the namespace API at its edges

TEST_F(SessionFaultTest, FilesAndPathsAtTheirEdges) {
  auto c = Connect();
  ASSERT_TRUE(c);
  lc::OpenFlags rw;
  rw.write = true;
  rw.create = true;
  auto f = c->Open("/t", rw);
  ASSERT_TRUE(f.ok());
  const std::string data(10000, 't');
  ASSERT_TRUE(f.value()->Write(0, data.data(), data.size()).ok());
  ASSERT_TRUE(f.value()->Close().ok());
  EXPECT_TRUE(f.value()->Close().ok());  // idempotent
  // A closed file refuses I/O in words.
  char b[4];
  auto r = f.value()->Read(0, b, sizeof b);
  EXPECT_EQ(r.status().code(), lc::Errc::kInvalid);
  EXPECT_NE(r.status().ToString().find("closed"), std::string::npos);
  EXPECT_EQ(f.value()->Write(0, b, sizeof b).status().code(), lc::Errc::kInvalid);
  EXPECT_EQ(f.value()->Sync().code(), lc::Errc::kInvalid);
  // Zero bytes: nothing to do, at once.
  auto g = c->Open("/t", lc::OpenFlags{});
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g.value()->size(), data.size());
  EXPECT_EQ(g.value()->path(), "/t");
  auto z = g.value()->Read(0, b, 0);
  ASSERT_TRUE(z.ok());
  EXPECT_EQ(*z, 0u);
  // Past the end: nothing.
  auto past = g.value()->Read(data.size() + 100, b, sizeof b);
  ASSERT_TRUE(past.ok());
  EXPECT_EQ(*past, 0u);
  ASSERT_TRUE(g.value()->Close().ok());

  // Truncate shrinks and grows; of a directory or a missing file it fails.
  ASSERT_TRUE(c->Truncate("/t", 100).ok());
  EXPECT_EQ(c->Stat("/t")->size, 100u);
  ASSERT_TRUE(c->Truncate("/t", 20000).ok());
  EXPECT_EQ(c->Stat("/t")->size, 20000u);
  EXPECT_EQ(c->Truncate("/none", 1).code(), lc::Errc::kNotFound);
  ASSERT_TRUE(c->Mkdir("/dir").ok());
  EXPECT_EQ(c->Truncate("/dir", 1).code(), lc::Errc::kIsDir);
  // Open with truncate of a file with bytes.
  lc::OpenFlags tr;
  tr.write = true;
  tr.truncate = true;
  auto h = c->Open("/t", tr);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h.value()->size(), 0u);
  ASSERT_TRUE(h.value()->Close().ok());
  EXPECT_EQ(c->Stat("/t")->size, 0u);

  // The layout of a path: granted (pNFS is on), one data file on one of the data servers.
  auto lay = c->Layout("/t");
  ASSERT_TRUE(lay.ok()) << lay.status().ToString();
  EXPECT_TRUE(lay->granted);
  ASSERT_EQ(lay->mirrors.size(), 1u);
  ASSERT_EQ(lay->mirrors[0].size(), 1u);
  EXPECT_EQ(lay->mirrors[0][0].address.rfind("127.0.0.1:", 0), 0u);
  EXPECT_EQ(lay->mirrors[0][0].deviceid_hex.size(), 32u);
  EXPECT_EQ(c->Layout("/none").status().code(), lc::Errc::kNotFound);

  // Other namespace calls on what is not there, or not of the right kind.
  EXPECT_EQ(c->Chmod("/none", 0600).code(), lc::Errc::kNotFound);
  EXPECT_EQ(c->Readlink("/t").status().code(), lc::Errc::kInvalid);
  EXPECT_EQ(c->Readlink("/none").status().code(), lc::Errc::kNotFound);
  ASSERT_TRUE(c->Symlink("t", "/ln").ok());
  EXPECT_EQ(c->Symlink("t", "/ln").code(), lc::Errc::kExists);
  EXPECT_EQ(c->Rename("/", "/x").code(), lc::Errc::kInvalid);
  EXPECT_EQ(c->Rename("/t", "/").code(), lc::Errc::kInvalid);
  EXPECT_EQ(c->MkdirAll("/t/sub").code(), lc::Errc::kNotDir);
  EXPECT_EQ(c->Mkdir("/t/sub").code(), lc::Errc::kNotDir);
  EXPECT_EQ(c->StatFs("/none").status().code(), lc::Errc::kNotFound);
  EXPECT_EQ(c->mds_address(), "127.0.0.1:" + std::to_string(proxy_->port()));
  EXPECT_EQ(c->options().mds, Opts().mds);
  lc::OpenFlags neither;
  neither.read = false;
  EXPECT_EQ(c->Open("/t", neither).status().code(), lc::Errc::kInvalid);
  lc::OpenFlags excl;
  excl.write = true;
  excl.create = true;
  excl.exclusive = true;
  EXPECT_EQ(c->Open("/t", excl).status().code(), lc::Errc::kExists);
  // After Close, calls fail as unavailable instead of hanging.
  c->Close();
  c->Close();
  EXPECT_EQ(c->Stat("/t").status().code(), lc::Errc::kUnavailable);
}

// ---------------------------------------------------------------- callbacks to the data path

TEST_F(SessionFaultTest, RecallsAndDeviceNotificationsOverTheBackChannel) {
  auto c = Connect();
  ASSERT_TRUE(c);
  lc::OpenFlags rw;
  rw.write = true;
  rw.create = true;
  auto f = c->Open("/cb", rw);
  ASSERT_TRUE(f.ok());
  const std::string data(50000, 'c');
  ASSERT_TRUE(f.value()->Write(0, data.data(), data.size()).ok());
  auto lay = f.value()->Layout();
  ASSERT_TRUE(lay.ok());
  ASSERT_TRUE(lay->granted);
  const size_t returns = CountSeen("OP_LAYOUTRETURN");

  // CB_RECALL_ANY of read layouts only: this RW layout stays.
  nfs_cb_argop4 ra;
  ra.argop = OP_CB_RECALL_ANY;
  ra.opcbrecall_any = std::make_unique<CB_RECALL_ANY4args>();
  ra.opcbrecall_any->craa_type_mask = {1u << PNFS_FF_RCA4_TYPE_MASK_READ};
  auto res = Callback(std::move(ra));
  ASSERT_EQ(res.status, NFS4_OK);
  ASSERT_EQ(res.resarray.size(), 2u);
  // No flexible-file bit at all: nothing to do.
  ra = nfs_cb_argop4();
  ra.argop = OP_CB_RECALL_ANY;
  ra.opcbrecall_any = std::make_unique<CB_RECALL_ANY4args>();
  ra.opcbrecall_any->craa_type_mask = {1u};
  EXPECT_EQ(Callback(std::move(ra)).status, NFS4_OK);
  EXPECT_TRUE(f.value()->Layout()->granted);

  // CB_NOTIFY_DEVICEID: the device changed; the cached address goes, I/O goes on.
  std::array<uint8_t, NFS4_DEVICEID4_SIZE> dev{};
  const std::string hex = lay->mirrors[0][0].deviceid_hex;
  ASSERT_EQ(hex.size(), 2 * dev.size());
  for (size_t i = 0; i < dev.size(); i++) dev[i] = static_cast<uint8_t>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
  nfs_cb_argop4 nd;
  nd.argop = OP_CB_NOTIFY_DEVICEID;
  nd.opcbnotify_deviceid = std::make_unique<CB_NOTIFY_DEVICEID4args>();
  {
    notify4 n;
    n.notify_mask = {(1u << NOTIFY_DEVICEID4_CHANGE) | (1u << NOTIFY_DEVICEID4_DELETE)};
    xdr::Encoder e;
    notify_deviceid_change4 ch;
    ch.ndc_layouttype = LAYOUT4_FLEX_FILES;
    ch.ndc_deviceid = dev;
    xdr_encode(e, ch);
    notify_deviceid_delete4 del;
    del.ndd_layouttype = LAYOUT4_FLEX_FILES;
    del.ndd_deviceid = dev;
    xdr_encode(e, del);
    n.notify_vals = Bytes::Copy(e.Flatten());
    nd.opcbnotify_deviceid->cnda_changes.push_back(std::move(n));
  }
  EXPECT_EQ(Callback(std::move(nd)).status, NFS4_OK);
  // A notification cut short is BADXDR.
  nd = nfs_cb_argop4();
  nd.argop = OP_CB_NOTIFY_DEVICEID;
  nd.opcbnotify_deviceid = std::make_unique<CB_NOTIFY_DEVICEID4args>();
  {
    notify4 n;
    n.notify_mask = {1u << NOTIFY_DEVICEID4_CHANGE};
    n.notify_vals = Bytes::Copy("\0\0\0\1", 4);
    nd.opcbnotify_deviceid->cnda_changes.push_back(std::move(n));
  }
  EXPECT_EQ(Callback(std::move(nd)).status, NFS4ERR_BADXDR);

  // CB_LAYOUTRECALL of a file it has no layout for: NOMATCHING_LAYOUT.
  nfs_cb_argop4 lr;
  lr.argop = OP_CB_LAYOUTRECALL;
  lr.opcblayoutrecall = std::make_unique<CB_LAYOUTRECALL4args>();
  lr.opcblayoutrecall->clora_type = LAYOUT4_FLEX_FILES;
  lr.opcblayoutrecall->clora_iomode = LAYOUTIOMODE4_ANY;
  lr.opcblayoutrecall->clora_recall.lor_recalltype = LAYOUTRECALL4_FILE;
  lr.opcblayoutrecall->clora_recall.lor_layout.lor_fh = Bytes::Copy("not-a-handle");
  lr.opcblayoutrecall->clora_recall.lor_layout.lor_length = NFS4_UINT64_MAX;
  EXPECT_EQ(Callback(std::move(lr)).status, NFS4ERR_NOMATCHING_LAYOUT);

  // CB_RECALL_ANY of RW layouts, keeping none: the layout goes back, the data stays written.
  ra = nfs_cb_argop4();
  ra.argop = OP_CB_RECALL_ANY;
  ra.opcbrecall_any = std::make_unique<CB_RECALL_ANY4args>();
  ra.opcbrecall_any->craa_type_mask = {1u << PNFS_FF_RCA4_TYPE_MASK_RW};
  EXPECT_EQ(Callback(std::move(ra)).status, NFS4_OK);
  EXPECT_TRUE(WaitSeen("OP_LAYOUTRETURN", returns + 1));

  // CB_LAYOUTRECALL of everything (the fsid's and all): answered; later I/O asks again.
  for (layoutrecall_type4 t : {LAYOUTRECALL4_FSID, LAYOUTRECALL4_ALL}) {
    lr = nfs_cb_argop4();
    lr.argop = OP_CB_LAYOUTRECALL;
    lr.opcblayoutrecall = std::make_unique<CB_LAYOUTRECALL4args>();
    lr.opcblayoutrecall->clora_type = LAYOUT4_FLEX_FILES;
    lr.opcblayoutrecall->clora_iomode = LAYOUTIOMODE4_ANY;
    lr.opcblayoutrecall->clora_recall.lor_recalltype = t;
    const nfsstat4 st = Callback(std::move(lr)).status;
    EXPECT_TRUE(st == NFS4_OK || st == NFS4ERR_NOMATCHING_LAYOUT) << nfsstat4_name(st);
  }
  ASSERT_TRUE(f.value()->Write(data.size(), data.data(), data.size()).ok());
  ASSERT_TRUE(f.value()->Close().ok());
  auto g = c->Open("/cb", lc::OpenFlags{});
  ASSERT_TRUE(g.ok());
  std::string back(2 * data.size(), '\0');
  auto r = g.value()->Read(0, back.data(), back.size());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(back, data + data);
  EXPECT_TRUE(g.value()->Close().ok());
}

// ---------------------------------------------------------------- layouts the client cannot use

// Layouts and device addresses rewritten on their way to libloom (RFC 8435 §5.1, §4.1). A layout
// the client cannot use is given back and the file's I/O goes through the MDS: the bytes must
// still land, none of them on a data server.
class LayoutFaultTest : public SessionFaultTest {
 protected:
  // Rewrites every granted ff_layout4 (in OPEN's COMPOUND or LAYOUTGET's own).
  void RewriteLayouts(std::function<void(layout4&, ff_layout4&)> f) {
    SetPost([f](const COMPOUND4args&, COMPOUND4res& res) {
      for (auto& op : res.resarray) {
        if (op.resop != OP_LAYOUTGET || !op.oplayoutget || op.oplayoutget->logr_status != NFS4_OK) continue;
        for (layout4& l : op.oplayoutget->logr_resok4.logr_layout) {
          xdr::Decoder d(l.lo_content.loc_body.data, l.lo_content.loc_body.size);
          ff_layout4 ff;
          ASSERT_TRUE(xdr_decode(d, ff));
          f(l, ff);
          xdr::Encoder e;
          xdr_encode(e, ff);
          l.lo_content.loc_body = Bytes::Copy(e.Flatten());
        }
      }
    });
  }
  // Rewrites every GETDEVICEINFO answer's ff_device_addr4.
  void RewriteDevices(std::function<void(device_addr4&, ff_device_addr4&)> f) {
    SetPost([f](const COMPOUND4args&, COMPOUND4res& res) {
      for (auto& op : res.resarray) {
        if (op.resop != OP_GETDEVICEINFO || !op.opgetdeviceinfo || op.opgetdeviceinfo->gdir_status != NFS4_OK)
          continue;
        device_addr4& da = op.opgetdeviceinfo->gdir_resok4.gdir_device_addr;
        xdr::Decoder d(da.da_addr_body.data, da.da_addr_body.size);
        ff_device_addr4 fa;
        ASSERT_TRUE(xdr_decode(d, fa));
        f(da, fa);
        xdr::Encoder e;
        xdr_encode(e, fa);
        da.da_addr_body = Bytes::Copy(e.Flatten());
      }
    });
  }
  // Writes, syncs and reads back a file through `c`; the bytes went through the MDS only.
  void ExpectIoThroughTheMds(const std::string& path) {
    auto c = Connect();
    ASSERT_TRUE(c);
    lc::OpenFlags wr;
    wr.write = true;
    wr.create = true;
    const std::string data = std::string(70000, 'm') + path;
    {
      auto f = c->Open(path, wr);
      ASSERT_TRUE(f.ok()) << f.status().ToString();
      auto w = f.value()->Write(0, data.data(), data.size());
      ASSERT_TRUE(w.ok()) << w.status().ToString();
      ASSERT_TRUE(f.value()->Sync().ok());
      ASSERT_TRUE(f.value()->Close().ok());
    }
    {
      auto f = c->Open(path, lc::OpenFlags{});
      ASSERT_TRUE(f.ok()) << f.status().ToString();
      std::string back(data.size(), '\0');
      auto r = f.value()->Read(0, back.data(), back.size());
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      EXPECT_EQ(back, data);
      auto l = f.value()->Layout();
      ASSERT_TRUE(l.ok());
      EXPECT_FALSE(l->granted);
      ASSERT_TRUE(f.value()->Close().ok());
    }
    const auto st = c->stats();
    EXPECT_EQ(st.ds_write_bytes, 0u) << path;
    EXPECT_EQ(st.ds_read_bytes, 0u) << path;
    EXPECT_GE(st.mds_write_bytes, data.size()) << path;
    EXPECT_GE(st.mds_read_bytes, data.size()) << path;
    c->Close();
    // A client that sees the real layouts reads the same bytes from the data servers.
    SetPost(nullptr);
    SetPre(nullptr);
    auto clean = Connect();
    ASSERT_TRUE(clean);
    auto f = clean->Open(path, lc::OpenFlags{});
    ASSERT_TRUE(f.ok());
    std::string back(data.size(), '\0');
    ASSERT_TRUE(f.value()->Read(0, back.data(), back.size()).ok());
    EXPECT_EQ(back, data) << path;
    EXPECT_TRUE(f.value()->Close().ok());
  }
};

TEST_F(LayoutFaultTest, DataServerEntriesItCannotUse) {
  RewriteLayouts([](layout4&, ff_layout4& ff) { ff.ffl_mirrors[0].ffm_data_servers[0].ffds_user = Bytes::Copy("alice"); });
  ExpectIoThroughTheMds("/user-name");
  RewriteLayouts([](layout4&, ff_layout4& ff) { ff.ffl_mirrors[0].ffm_data_servers[0].ffds_group = Bytes(); });
  ExpectIoThroughTheMds("/no-group");
  RewriteLayouts([](layout4&, ff_layout4& ff) {
    ff.ffl_mirrors[0].ffm_data_servers[0].ffds_user = Bytes::Copy("4294967296");  // 2^32
  });
  ExpectIoThroughTheMds("/uid-too-big");
  RewriteLayouts([](layout4&, ff_layout4& ff) { ff.ffl_mirrors[0].ffm_data_servers[0].ffds_fh_vers.clear(); });
  ExpectIoThroughTheMds("/no-handle");
  RewriteLayouts([](layout4&, ff_layout4& ff) {
    ff.ffl_mirrors[0].ffm_data_servers[0].ffds_fh_vers[0] = Bytes::Copy(std::string(65, 'h'));
  });
  ExpectIoThroughTheMds("/long-handle");
}

TEST_F(LayoutFaultTest, LayoutShapesItCannotUse) {
  RewriteLayouts([](layout4&, ff_layout4& ff) {
    // Two stripes without a stripe unit.
    ff.ffl_mirrors[0].ffm_data_servers.push_back(ff.ffl_mirrors[0].ffm_data_servers[0]);
    ff.ffl_stripe_unit = 0;
  });
  ExpectIoThroughTheMds("/no-unit");
  RewriteLayouts([](layout4&, ff_layout4& ff) {
    // A second mirror with two stripes beside a first with one.
    ff_mirror4 m = ff.ffl_mirrors[0];
    m.ffm_data_servers.push_back(m.ffm_data_servers[0]);
    ff.ffl_mirrors.push_back(m);
    ff.ffl_stripe_unit = 65536;
  });
  ExpectIoThroughTheMds("/uneven-mirrors");
  RewriteLayouts([](layout4&, ff_layout4& ff) { ff.ffl_mirrors.clear(); });
  ExpectIoThroughTheMds("/no-mirrors");
  RewriteLayouts([](layout4& l, ff_layout4&) { l.lo_offset = 4096; });
  ExpectIoThroughTheMds("/partial");
  RewriteLayouts([](layout4& l, ff_layout4&) { l.lo_content.loc_type = LAYOUT4_NFSV4_1_FILES; });
  ExpectIoThroughTheMds("/files-layout");
  SetPost([](const COMPOUND4args&, COMPOUND4res& res) {
    for (auto& op : res.resarray)
      if (op.resop == OP_LAYOUTGET && op.oplayoutget->logr_status == NFS4_OK)
        for (layout4& l : op.oplayoutget->logr_resok4.logr_layout) l.lo_content.loc_body = Bytes::Copy("\0\0\0", 3);
  });
  ExpectIoThroughTheMds("/garbage-body");
  // A grant with no layout in it.
  SetPost([](const COMPOUND4args&, COMPOUND4res& res) {
    for (auto& op : res.resarray)
      if (op.resop == OP_LAYOUTGET && op.oplayoutget->logr_status == NFS4_OK) op.oplayoutget->logr_resok4.logr_layout.clear();
  });
  ExpectIoThroughTheMds("/empty-grant");
}

TEST_F(LayoutFaultTest, DeviceAddressesItCannotUse) {
  RewriteDevices([](device_addr4&, ff_device_addr4& fa) {
    for (auto& na : fa.ffda_netaddrs) na.na_r_netid = "udp";
  });
  ExpectIoThroughTheMds("/udp");
  RewriteDevices([](device_addr4&, ff_device_addr4& fa) {
    for (auto& na : fa.ffda_netaddrs) na.na_r_addr = "localhost";  // no port octets
  });
  ExpectIoThroughTheMds("/no-port");
  RewriteDevices([](device_addr4&, ff_device_addr4& fa) {
    for (auto& na : fa.ffda_netaddrs) na.na_r_addr = "127.0.0.1.999.1";  // an octet over 255
  });
  ExpectIoThroughTheMds("/bad-port");
  RewriteDevices([](device_addr4&, ff_device_addr4& fa) {
    for (auto& v : fa.ffda_versions) v.ffdv_version = 4;
  });
  ExpectIoThroughTheMds("/no-v3");
  RewriteDevices([](device_addr4& da, ff_device_addr4&) { da.da_layout_type = LAYOUT4_BLOCK_VOLUME; });
  ExpectIoThroughTheMds("/block-device");
  // GETDEVICEINFO of a device the MDS no longer knows.
  SetPost([](const COMPOUND4args&, COMPOUND4res& res) {
    for (auto& op : res.resarray) {
      if (op.resop != OP_GETDEVICEINFO) continue;
      op.opgetdeviceinfo = std::make_unique<GETDEVICEINFO4res>();
      op.opgetdeviceinfo->gdir_status = NFS4ERR_NOENT;
      res.status = NFS4ERR_NOENT;
    }
  });
  ExpectIoThroughTheMds("/unknown-device");
}

// The data servers of every layout replaced by one scripted server (its address in each
// GETDEVICEINFO answer), to see what libloom does with the errors a real loom-ds seldom gives.
class ScriptedDsLayoutTest : public LayoutFaultTest {
 protected:
  void UseScriptedDs(const dstest::ScriptedDs& ds) {
    const std::string a = ds.address();
    const unsigned port = static_cast<unsigned>(std::stoul(a.substr(a.rfind(':') + 1)));
    const std::string uaddr = "127.0.0.1." + std::to_string(port >> 8) + "." + std::to_string(port & 255);
    RewriteDevices([uaddr](device_addr4&, ff_device_addr4& fa) {
      for (auto& na : fa.ffda_netaddrs) na.na_r_addr = uaddr;
    });
  }
  lc::Options OneConnection() {
    auto o = Opts();
    o.connections_per_ds = 1;  // the scripted server serves one connection at a time
    o.retry_for_ms = 3000;
    return o;
  }
};

TEST_F(ScriptedDsLayoutTest, AFullDataServerFailsTheWriteAtOnce) {
  using namespace dstest;
  ScriptedDs ds([](const std::string& call) {
    std::string r = Accepted(WordAt(call, 0));
    Word(r, 28);  // NFS3ERR_NOSPC
    Wcc(r, false);
    return r;
  });
  UseScriptedDs(ds);
  auto c = Connect(OneConnection());
  ASSERT_TRUE(c);
  lc::OpenFlags rw;
  rw.write = true;
  rw.create = true;
  auto f = c->Open("/full", rw);
  ASSERT_TRUE(f.ok());
  const std::string data(20000, 'f');
  auto w = f.value()->Write(0, data.data(), data.size());
  ASSERT_FALSE(w.ok());
  // No other layout cures a full disk: no retry through the MDS either.
  EXPECT_EQ(w.status().code(), lc::Errc::kNoSpace) << w.status().ToString();
  EXPECT_GE(c->stats().ds_errors, 1u);
  EXPECT_EQ(c->stats().mds_write_bytes, 0u);
  ASSERT_FALSE(ds.calls().empty());
  EXPECT_EQ(WordAt(ds.calls()[0], 5), 7u);  // it was a WRITE
  (void)f.value()->Close();
}

TEST_F(ScriptedDsLayoutTest, ADataServerThatLostUnstableWritesGetsThemAgain) {
  using namespace dstest;
  // WRITEs are kept UNSTABLE with verifier A; COMMIT answers B: the server restarted in
  // between (RFC 1813 §3.3.21), so the writes must go again, stable this time.
  std::atomic<int> commits{0};
  ScriptedDs ds([&](const std::string& call) {
    std::string r = Accepted(WordAt(call, 0));
    const uint32_t proc = WordAt(call, 5);
    Word(r, 0);
    Wcc(r, false);
    if (proc == 7) {
      // WRITE3args end with count, stable, then the opaque (its length, the bytes padded to
      // four): find the count from where the payload ends.
      uint32_t count = 0;
      for (size_t i = 10; i + 3 < call.size() / 4; i++) {
        const uint32_t n = WordAt(call, i), stable = WordAt(call, i + 1), len = WordAt(call, i + 2);
        if (n == len && stable <= 2 && n > 0 && (i + 3) * 4 + ((n + 3) & ~3u) == call.size()) {
          count = n;
          break;
        }
      }
      Word(r, count);
      Word(r, 0);  // UNSTABLE
      r += "verif-AA";
    } else if (proc == 21) {
      commits++;
      r += "verif-BB";
    }
    return r;
  });
  UseScriptedDs(ds);
  auto c = Connect(OneConnection());
  ASSERT_TRUE(c);
  lc::OpenFlags rw;
  rw.write = true;
  rw.create = true;
  auto f = c->Open("/lost", rw);
  ASSERT_TRUE(f.ok());
  const std::string data(8192, 'l');
  auto w = f.value()->Write(0, data.data(), data.size());
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  const size_t writes_before = ds.calls().size();
  lc::Status s = f.value()->Sync();
  EXPECT_GE(commits.load(), 1);
  // After the COMMIT with a new verifier the bytes went out again.
  size_t rewrites = 0;
  auto calls = ds.calls();
  for (size_t i = writes_before; i < calls.size(); i++) rewrites += WordAt(calls[i], 5) == 7;
  EXPECT_GE(rewrites, 1u) << s.ToString();
  // Sent again stable, the bytes are safe: the Sync succeeds.
  EXPECT_TRUE(s.ok()) << s.ToString();
  (void)f.value()->Close();
}

TEST_F(ScriptedDsLayoutTest, ReadErrorsFromTheOnlyMirrorFallBackToTheMds) {
  using namespace dstest;
  // Bytes written through the real data servers first.
  {
    auto c = Connect();
    ASSERT_TRUE(c);
    lc::OpenFlags rw;
    rw.write = true;
    rw.create = true;
    auto f = c->Open("/r", rw);
    ASSERT_TRUE(f.ok());
    const std::string data(4096, 'r');
    ASSERT_TRUE(f.value()->Write(0, data.data(), data.size()).ok());
    ASSERT_TRUE(f.value()->Close().ok());
  }
  ScriptedDs ds([](const std::string& call) {
    std::string r = Accepted(WordAt(call, 0));
    Word(r, 5);  // NFS3ERR_IO
    PostOpAttr(r, false);
    return r;
  });
  UseScriptedDs(ds);
  auto c = Connect(OneConnection());
  ASSERT_TRUE(c);
  auto f = c->Open("/r", lc::OpenFlags{});
  ASSERT_TRUE(f.ok());
  std::string back(4096, 'x');
  // Every data server of the layout fails the READ: the layout goes back with the error and
  // the bytes come through the MDS (which reads the real data server).
  auto r = f.value()->Read(0, back.data(), back.size());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, back.size());
  EXPECT_EQ(back, std::string(4096, 'r'));
  EXPECT_GE(c->stats().ds_errors, 1u);
  EXPECT_EQ(c->stats().ds_read_bytes, 0u);
  EXPECT_GE(c->stats().mds_read_bytes, back.size());
  ASSERT_FALSE(ds.calls().empty());
  EXPECT_EQ(WordAt(ds.calls()[0], 5), 6u);  // a READ reached the scripted server
  // The layout with the error went back with an ff_ioerr4 report, or a LAYOUTERROR told the MDS.
  EXPECT_GE(CountSeen("OP_LAYOUTRETURN") + CountSeen("OP_LAYOUTERROR"), 1u);
  (void)f.value()->Close();
}

TEST_F(LayoutFaultTest, RefusedLayoutsSendIoThroughTheMds) {
  for (nfsstat4 st : {NFS4ERR_LAYOUTUNAVAILABLE, NFS4ERR_LAYOUTTRYLATER, NFS4ERR_RECALLCONFLICT}) {
    SetPost([st](const COMPOUND4args&, COMPOUND4res& res) {
      for (auto& op : res.resarray) {
        if (op.resop != OP_LAYOUTGET) continue;
        op.oplayoutget = std::make_unique<LAYOUTGET4res>();
        op.oplayoutget->logr_status = st;
        res.status = st;
      }
    });
    ExpectIoThroughTheMds(std::string("/") + nfsstat4_name(st));
  }
}

}  // namespace
}  // namespace loom::nfs4
