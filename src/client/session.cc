// libloom's session with the metadata server. See session.h.
//
// Slots (RFC 8881 §2.10.6.1): each call takes a free slot and sends seqid = last + 1. A call
// whose reply never came (timeout, lost connection) is resent on the same slot with the same
// seqid, so the server answers it from its reply cache (or says RETRY_UNCACHED_REP) instead of
// running it twice. Calls the server answers with NFS4ERR_DELAY or NFS4ERR_GRACE are resent
// after a back-off (doubling, 50 ms to 2 s) until Options::retry_for_ms has passed.
//
// Recovery (§8.4.2.1): NFS4ERR_BADSESSION / DEADSESSION / STALE_CLIENTID / EXPIRED, or a
// connection that cannot be re-established, start one recovery thread: new connection,
// EXCHANGE_ID with the same owner and verifier (the server recognises this client and lets it
// reclaim), CREATE_SESSION, the reclaim hook, RECLAIM_COMPLETE. Calls wait meanwhile.
#include "client/session.h"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <chrono>
#include <map>
#include <random>

#include "nfs4/simple_client.h"

namespace loom::client::internal {

namespace s4 = loom::nfs4::simple;
using Clock = std::chrono::steady_clock;

Result<std::string> ResolveAddress(const std::string& addr, uint16_t default_port) {
  std::string host = addr, port = std::to_string(default_port);
  if (!addr.empty() && addr[0] == '[') {  // [v6]:port
    size_t close = addr.find(']');
    if (close == std::string::npos) return Status(Errc::kInvalid, "bad address: " + addr);
    host = addr.substr(1, close - 1);
    if (close + 1 < addr.size()) {
      if (addr[close + 1] != ':') return Status(Errc::kInvalid, "bad address: " + addr);
      port = addr.substr(close + 2);
    }
  } else {
    size_t colon = addr.rfind(':');
    if (colon != std::string::npos && addr.find(':') == colon) {
      host = addr.substr(0, colon);
      port = addr.substr(colon + 1);
    }
  }
  if (host.empty()) host = "127.0.0.1";
  char* end = nullptr;
  unsigned long p = std::strtoul(port.c_str(), &end, 10);
  if (port.empty() || *end || p == 0 || p > 65535)
    return Status(Errc::kInvalid, "bad port in address: " + addr);
  addrinfo hints{}, *res = nullptr;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0 || !res)
    return Status(Errc::kUnavailable, "cannot resolve " + host + ": " + ::gai_strerror(rc));
  std::string out;
  for (addrinfo* a = res; a && out.empty(); a = a->ai_next) {
    char buf[INET6_ADDRSTRLEN] = {0};
    if (a->ai_family == AF_INET) {
      ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr, buf, sizeof buf);
      out = std::string(buf) + ":" + std::to_string(p);
    }
  }
  for (addrinfo* a = res; a && out.empty(); a = a->ai_next) {
    char buf[INET6_ADDRSTRLEN] = {0};
    if (a->ai_family == AF_INET6) {
      ::inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_addr, buf, sizeof buf);
      out = "[" + std::string(buf) + "]:" + std::to_string(p);
    }
  }
  ::freeaddrinfo(res);
  if (out.empty()) return Status(Errc::kUnavailable, "no address for " + host);
  return out;
}

namespace {

bool SessionLost(nfsstat4 s) {
  return s == NFS4ERR_BADSESSION || s == NFS4ERR_DEADSESSION || s == NFS4ERR_STALE_CLIENTID ||
         s == NFS4ERR_EXPIRED;
}

// One call waiting for, or holding, a slot.
struct Pending {
  std::string body;  // the caller's ops, XDR-encoded once
  uint32_t nops = 0;
  bool cachethis = false;
  CompoundCallback cb;
  Clock::time_point deadline;
  int backoff_ms = 0;
  bool recovery = false;  // CallRecovery: may run while normal calls wait
};

}  // namespace

struct Session::Impl {
  Session* self = nullptr;
  Options opts;
  Counters* counters = nullptr;

  std::mutex mu;
  std::condition_variable cv;
  std::shared_ptr<rpc::RpcClient> rpc;
  clientid4 clientid = 0;
  sessionid4 sessionid{};
  verifier4 verifier{};
  channel_attrs4 fore{};
  uint32_t lease = 90;
  // Slot table: seqid last used, whether in use; `highest` = the slots we may use.
  std::vector<uint32_t> slot_seq;
  std::vector<bool> slot_busy;
  uint32_t highest = 0;
  std::deque<std::shared_ptr<Pending>> waiting;
  bool recovering = false;
  bool shut = false;
  uint32_t in_flight = 0;
  Clock::time_point last_reply = Clock::now();
  std::function<void()> reclaim_hook;
  // The back channel (RFC 8881 §2.10.3.1): on every connection the session uses.
  std::shared_ptr<CallbackService> callbacks = std::make_shared<CallbackService>();
  bool back_chan = false;
  Clock::time_point last_rebind{};

  // Timers (back-off retries, lease renewal) run on one thread.
  std::multimap<Clock::time_point, std::function<void()>> timers;
  std::thread timer_thread;
  std::thread recovery_thread;

  ~Impl() = default;

  // ---------------------------------------------------------------- raw calls

  Result<COMPOUND4res> RawSync(std::vector<nfs_argop4> ops) {
    std::shared_ptr<rpc::RpcClient> c;
    {
      std::lock_guard<std::mutex> g(mu);
      c = rpc;
    }
    if (!c) return Status(Errc::kUnavailable, "not connected to " + self->address_);
    COMPOUND4args args;
    args.minorversion = self->minor_;
    args.argarray = std::move(ops);
    auto r = c->CallSync(NFS4_PROGRAM, NFS_V4, 1, self->cred_,
                         [&](xdr::Encoder& e) { xdr_encode(e, args); });
    counters->mds_calls++;
    if (!r.ok()) return FromLoomStatus(r.status(), self->address_);
    COMPOUND4res res;
    xdr::Decoder d = r->results();
    if (!xdr_decode(d, res)) return Status(Errc::kInternal, "undecodable COMPOUND reply");
    return res;
  }

  Status Connect() {
    rpc::RpcClient::Options o;
    o.timeout_ms = opts.call_timeout_ms;
    auto c = rpc::RpcClient::Connect(self->loop_, self->address_, o);
    if (!c.ok()) return FromLoomStatus(c.status(), self->address_);
    // The server's callbacks come on this connection; the service answers them on it.
    std::weak_ptr<rpc::RpcClient> weak = c.value();
    std::shared_ptr<CallbackService> cbs = callbacks;
    c.value()->SetCallHandler([weak, cbs](rpc::Record r) {
      auto reply = cbs->OnCall(r);
      auto conn = weak.lock();
      if (reply && conn) conn->SendMessage(std::move(reply));
    });
    std::lock_guard<std::mutex> g(mu);
    if (rpc) rpc->Close();
    rpc = std::move(c.value());
    return Status::Ok();
  }

  // EXCHANGE_ID + CREATE_SESSION on the current connection (RFC 8881 §18.35, §18.36).
  Status Establish() {
    std::vector<nfs_argop4> v;
    v.push_back(s4::ExchangeId(self->owner_, verifier));
    auto r = RawSync(std::move(v));
    if (!r.ok()) return r.status();
    if (r->status == NFS4ERR_MINOR_VERS_MISMATCH && self->minor_ == 2) {
      self->minor_ = 1;  // a 4.1-only server
      return Establish();
    }
    if (r->status != NFS4_OK) return FromNfs4(r->status, "EXCHANGE_ID");
    const auto& eir = r->resarray[0].opexchange_id->eir_resok4;
    const clientid4 id = eir.eir_clientid;
    // Room for a 1 MiB READ or WRITE through the metadata server plus the COMPOUND around it.
    const uint32_t big = opts.io_size + (64 << 10);
    const channel_attrs4 f{0, big, big, 64 << 10, 64, std::max<uint32_t>(1, opts.slots), {}};
    // The back channel (§18.36): CB_SEQUENCE + a CB_LAYOUTRECALL or two fit in 4 KiB; replies
    // are kept for retransmissions (§20.9.3), so they may all be cached.
    const channel_attrs4 back{0, 4096, 4096, 4096, 8, 4, {}};
    std::vector<nfs_argop4> v2;
    v2.push_back(s4::CreateSession(id, eir.eir_sequenceid, CREATE_SESSION4_FLAG_CONN_BACK_CHAN, f, back));
    {
      // Callback security: AUTH_SYS, as loom-mds (and Linux's nfsd) call back with; AUTH_NONE too.
      auto& ca = *v2.back().opcreate_session;
      ca.csa_cb_program = CallbackService::kProgram;
      callback_sec_parms4 sys;
      sys.cb_secflavor = 1;
      sys.cbsp_sys_cred.machinename = self->cred_.machine;
      ca.csa_sec_parms.push_back(sys);
      callback_sec_parms4 none;
      none.cb_secflavor = 0;
      ca.csa_sec_parms.push_back(none);
    }
    auto cr = RawSync(std::move(v2));
    if (!cr.ok()) return cr.status();
    if (cr->status != NFS4_OK) return FromNfs4(cr->status, "CREATE_SESSION");
    const auto& cs = cr->resarray[0].opcreate_session->csr_resok4;
    callbacks->Reset(cs.csr_sessionid, self->minor_, cs.csr_back_chan_attrs.ca_maxrequests);
    std::lock_guard<std::mutex> g(mu);
    back_chan = (cs.csr_flags & CREATE_SESSION4_FLAG_CONN_BACK_CHAN) != 0;
    clientid = id;
    sessionid = cs.csr_sessionid;
    fore = cs.csr_fore_chan_attrs;
    const uint32_t n = std::max<uint32_t>(1, std::min<uint32_t>(fore.ca_maxrequests, 1024));
    slot_seq.assign(n, 0);
    slot_busy.assign(n, false);
    highest = n;
    return Status::Ok();
  }

  Status FetchLease() {
    auto r = CallRecoverySync(Ops(s4::PutRootFh(), s4::Getattr({FATTR4_LEASE_TIME})));
    if (!r.ok()) return r.status();
    if (r->status != NFS4_OK || r->resarray.size() < 2) return Status::Ok();
    const Bytes& b = r->resarray[1].opgetattr->resok4.obj_attributes.attr_vals;
    xdr::Decoder d(b.data, b.size);
    uint32_t l = 0;
    if (d.u32(l) && l > 0) {
      std::lock_guard<std::mutex> g(mu);
      lease = l;
    }
    return Status::Ok();
  }

  template <typename... T>
  static std::vector<nfs_argop4> Ops(T&&... ops) {
    std::vector<nfs_argop4> v;
    (v.push_back(std::forward<T>(ops)), ...);
    return v;
  }

  // ---------------------------------------------------------------- slotted calls

  static std::string Encode(const std::vector<nfs_argop4>& ops) {
    xdr::Encoder e;
    for (const auto& op : ops) xdr_encode(e, op);
    return e.Flatten();
  }

  void Submit(std::shared_ptr<Pending> p) {
    std::unique_lock<std::mutex> g(mu);
    if (shut) {
      g.unlock();
      p->cb(Status(Errc::kUnavailable, "client closed"), COMPOUND4res{});
      return;
    }
    if ((recovering && !p->recovery) || !TryStart(p, g)) waiting.push_back(std::move(p));
  }

  // Takes a free slot and sends; false if none is free. Called with mu held; unlocks it when
  // it sends.
  bool TryStart(const std::shared_ptr<Pending>& p, std::unique_lock<std::mutex>& g) {
    uint32_t slot = highest;
    for (uint32_t i = 0; i < highest; i++) {
      if (!slot_busy[i]) {
        slot = i;
        break;
      }
    }
    if (slot == highest) return false;
    slot_busy[slot] = true;
    const uint32_t seq = slot_seq[slot] + 1;
    in_flight++;
    Send(p, slot, seq, g);
    return true;
  }

  void Send(std::shared_ptr<Pending> p, uint32_t slot, uint32_t seq, std::unique_lock<std::mutex>& g) {
    auto c = rpc;
    const sessionid4 sid = sessionid;
    const uint32_t hi = highest - 1;
    const uint32_t minor = self->minor_;
    g.unlock();
    if (!c) {
      OnReply(p, slot, seq, Status(Errc::kUnavailable, "not connected"), rpc::Reply{});
      return;
    }
    counters->mds_calls++;
    c->CallAsync(
        NFS4_PROGRAM, NFS_V4, 1, self->cred_,
        [p, slot, seq, sid, hi, minor](xdr::Encoder& e) {
          e.string("");  // tag
          e.u32(minor);
          e.u32(p->nops + 1);
          SEQUENCE4args sa;
          sa.sa_sessionid = sid;
          sa.sa_sequenceid = seq;
          sa.sa_slotid = slot;
          sa.sa_highest_slotid = hi;
          sa.sa_cachethis = p->cachethis;
          e.u32(OP_SEQUENCE);
          xdr_encode(e, sa);
          e.raw(p->body.data(), p->body.size());
        },
        [this, p, slot, seq](loom::Result<rpc::Reply> r) {
          if (!r.ok()) {
            OnReply(p, slot, seq, FromLoomStatus(r.status(), self->address_), rpc::Reply{});
          } else {
            OnReply(p, slot, seq, Status::Ok(), std::move(r.value()));
          }
        });
  }

  void Release(uint32_t slot, bool advance, uint32_t seq) {
    // mu held
    if (slot < slot_seq.size()) {
      if (advance) slot_seq[slot] = seq;
      slot_busy[slot] = false;
    }
    in_flight--;
    cv.notify_all();
  }

  // Starts waiting calls on free slots (mu held on entry; returns with it released).
  void Pump(std::unique_lock<std::mutex>& g) {
    while (!waiting.empty() && !shut) {
      auto p = waiting.front();
      if (recovering && !p->recovery) {
        // Let recovery calls overtake.
        auto it = std::find_if(waiting.begin(), waiting.end(), [](auto& q) { return q->recovery; });
        if (it == waiting.end()) break;
        p = *it;
        waiting.erase(it);
      } else {
        waiting.pop_front();
      }
      if (!TryStart(p, g)) {
        waiting.push_front(p);
        break;
      }
      g.lock();
    }
    g.unlock();
  }

  void Finish(const std::shared_ptr<Pending>& p, Status st, COMPOUND4res res) {
    p->cb(std::move(st), std::move(res));
  }

  // Retries `p` after its back-off, or fails it if its time is up.
  void RetryLater(const std::shared_ptr<Pending>& p, Status why) {
    const auto now = Clock::now();
    if (now >= p->deadline) {
      Finish(p, Status(why.code() == Errc::kOk ? Errc::kTimeout : why.code(),
                       "gave up after retrying for " + std::to_string(opts.retry_for_ms / 1000) +
                           " s: " + why.message()),
             COMPOUND4res{});
      return;
    }
    counters->retries++;
    p->backoff_ms = std::min(2000, p->backoff_ms ? p->backoff_ms * 2 : 50);
    At(now + std::chrono::milliseconds(p->backoff_ms), [this, p] { Submit(p); });
  }

  void OnReply(const std::shared_ptr<Pending>& p, uint32_t slot, uint32_t seq, Status transport,
               rpc::Reply reply) {
    std::unique_lock<std::mutex> g(mu);
    if (!transport.ok()) {
      // The server may or may not have seen this seqid: leave the slot's seqid where it was and
      // resend the same request (slot, seqid) — the reply cache makes it safe.
      Release(slot, false, seq);
      const bool conn_lost = !rpc || rpc->closed();
      g.unlock();
      if (conn_lost) StartRecovery(/*reconnect_only=*/true);
      RetryLater(p, transport);
      g.lock();
      Pump(g);
      return;
    }
    last_reply = Clock::now();
    COMPOUND4res res;
    xdr::Decoder d = reply.results();
    if (!xdr_decode(d, res)) {
      Release(slot, true, seq);
      Pump(g);
      Finish(p, Status(Errc::kInternal, "undecodable COMPOUND reply"), COMPOUND4res{});
      return;
    }
    if (res.resarray.empty() || res.resarray[0].resop != OP_SEQUENCE) {
      // The COMPOUND failed before SEQUENCE ran (a minor version mismatch, bad XDR).
      Release(slot, false, seq);
      Pump(g);
      Finish(p, FromNfs4(res.status, "COMPOUND"), std::move(res));
      return;
    }
    const auto& sr = *res.resarray[0].opsequence;
    const nfsstat4 sst = sr.sr_status;
    if (sst == NFS4_OK) {
      Release(slot, true, seq);
      // The server may lower our slots (sr_target_highest_slotid, §2.10.6.1): use no more.
      const uint32_t target = sr.sr_resok4.sr_target_highest_slotid + 1;
      if (target >= 1 && target < highest) highest = target;
      if (target > highest && target <= slot_seq.size()) highest = target;
      // §18.46.3: the server cannot reach us over the back channel (a callback on this
      // connection timed out, or it kept the channel on a connection that is gone): bind
      // the current connection again, at most every few seconds.
      if (back_chan && !recovering &&
          (sr.sr_resok4.sr_status_flags & (SEQ4_STATUS_CB_PATH_DOWN | SEQ4_STATUS_CB_PATH_DOWN_SESSION |
                                           SEQ4_STATUS_BACKCHANNEL_FAULT)) &&
          Clock::now() - last_rebind > std::chrono::seconds(5)) {
        last_rebind = Clock::now();
        timers.emplace(last_rebind, [this] { (void)BindConnection(); });
        cv.notify_all();
      }
      res.resarray.erase(res.resarray.begin());
      if (res.status == NFS4ERR_DELAY || res.status == NFS4ERR_GRACE) {
        // An op was not run; the ops before it were, and run again (they are idempotent in
        // every COMPOUND libloom sends: PUTFH, LOOKUP, GETATTR ...).
        g.unlock();
        RetryLater(p, FromNfs4(res.status, "metadata server"));
        g.lock();
        Pump(g);
        return;
      }
      Pump(g);
      Finish(p, Status::Ok(), std::move(res));
      return;
    }
    if (sst == NFS4ERR_DELAY) {  // slot busy with our earlier request (§2.10.6.2)
      Release(slot, false, seq);
      g.unlock();
      RetryLater(p, FromNfs4(sst, "SEQUENCE"));
      g.lock();
      Pump(g);
      return;
    }
    if (sst == NFS4ERR_RETRY_UNCACHED_REP) {
      // A resend of a request that ran but whose reply was not kept: its result is lost.
      Release(slot, true, seq);
      Pump(g);
      Finish(p, Status(Errc::kIo, "the reply to a resent request was lost (it may have taken effect)",
                       sst),
             COMPOUND4res{});
      return;
    }
    if (sst == NFS4ERR_BADSLOT) {
      Release(slot, false, seq);
      if (slot > 0 && slot < highest) highest = slot;
      g.unlock();
      RetryLater(p, FromNfs4(sst, "SEQUENCE"));
      g.lock();
      Pump(g);
      return;
    }
    if (sst == NFS4ERR_SEQ_MISORDERED) {
      // We lost track of this slot's seqid (a reply from an older session?): do not use it
      // again in this session; retry elsewhere.
      slot_busy[slot] = true;
      in_flight--;
      cv.notify_all();
      if (highest > 1 && slot == highest - 1) highest--;
      // Every slot we may use is given up and nothing is in flight to free one: no call could
      // start on this session again. A new session starts with fresh slots (§2.10.6.1).
      bool stuck = in_flight == 0;
      for (uint32_t i = 0; stuck && i < highest; i++) stuck = slot_busy[i];
      if (stuck && !p->recovery) {
        waiting.push_back(p);
        g.unlock();
        StartRecovery(false);
        return;
      }
      g.unlock();
      RetryLater(p, FromNfs4(sst, "SEQUENCE"));
      g.lock();
      Pump(g);
      return;
    }
    if (SessionLost(sst)) {
      Release(slot, false, seq);
      if (!p->recovery) waiting.push_back(p);
      g.unlock();
      if (p->recovery) {
        Finish(p, FromNfs4(sst, "SEQUENCE"), COMPOUND4res{});
      } else {
        StartRecovery(false);
      }
      return;
    }
    Release(slot, false, seq);
    Pump(g);
    Finish(p, FromNfs4(sst, "SEQUENCE"), std::move(res));
  }

  // ---------------------------------------------------------------- recovery

  void StartRecovery(bool reconnect_only) {
    std::lock_guard<std::mutex> g(mu);
    if (recovering || shut) return;
    recovering = true;
    if (recovery_thread.joinable()) recovery_thread.detach();
    recovery_thread = std::thread([this, reconnect_only] {
      MarkLibraryThread();
      Recover(reconnect_only);
    });
  }

  void Recover(bool reconnect_only) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(opts.retry_for_ms);
    int backoff = 50;
    Status last;
    for (;;) {
      {
        std::lock_guard<std::mutex> g(mu);
        if (shut) break;
      }
      // Wait for calls in flight on the old session to come back (they are retried).
      {
        std::unique_lock<std::mutex> g(mu);
        cv.wait_for(g, std::chrono::milliseconds(200), [&] { return in_flight == 0 || shut; });
      }
      last = Connect();
      if (last.ok() && reconnect_only) {
        // Same server instance? The session's back channel moves to the new connection
        // (BIND_CONN_TO_SESSION, §18.34: a new connection carries only the fore channel
        // otherwise); then a SEQUENCE probe: if our session still exists the server knows it;
        // if not, fall through to a full recovery.
        if (BindConnection() == NFS4_OK && SequenceProbe() == NFS4_OK) break;
        reconnect_only = false;
      }
      if (last.ok()) last = Establish();
      if (last.ok()) {
        self->epoch_++;
        counters->recoveries++;
        std::function<void()> hook;
        {
          std::lock_guard<std::mutex> g(mu);
          hook = reclaim_hook;
        }
        if (hook) hook();
        auto rc = CallRecoverySync(Ops(s4::ReclaimComplete()));
        if (rc.ok() && (rc->status == NFS4_OK || rc->status == NFS4ERR_COMPLETE_ALREADY)) break;
        last = rc.ok() ? FromNfs4(rc->status, "RECLAIM_COMPLETE") : rc.status();
      }
      if (Clock::now() >= deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(backoff));
      backoff = std::min(backoff * 2, 2000);
    }
    std::deque<std::shared_ptr<Pending>> failed;
    std::unique_lock<std::mutex> g(mu);
    recovering = false;
    if (!last.ok() && Clock::now() >= deadline) failed.swap(waiting);
    Pump(g);
    for (auto& p : failed)
      Finish(p, Status(last.code(), "metadata server unreachable: " + last.message()), COMPOUND4res{});
  }

  // BIND_CONN_TO_SESSION of the current connection, both directions when the session has a
  // back channel (alone in its COMPOUND, without SEQUENCE: §18.34.3).
  nfsstat4 BindConnection() {
    auto a = s4::Op(OP_BIND_CONN_TO_SESSION);
    a.opbind_conn_to_session = std::make_unique<BIND_CONN_TO_SESSION4args>();
    bool back;
    {
      std::lock_guard<std::mutex> g(mu);
      a.opbind_conn_to_session->bctsa_sessid = sessionid;
      back = back_chan;
    }
    a.opbind_conn_to_session->bctsa_dir = back ? CDFC4_FORE_OR_BOTH : CDFC4_FORE;
    a.opbind_conn_to_session->bctsa_use_conn_in_rdma_mode = false;
    std::vector<nfs_argop4> v;
    v.push_back(std::move(a));
    auto r = RawSync(std::move(v));
    if (!r.ok()) return NFS4ERR_BADSESSION;
    if (r->status == NFS4_OK && back && r->resarray[0].opbind_conn_to_session->bctsr_resok4.bctsr_dir == CDFS4_FORE) {
      std::lock_guard<std::mutex> g(mu);
      back_chan = false;  // the server keeps callbacks elsewhere (or nowhere): fences then
    }
    return r->status;
  }

  // A SEQUENCE alone on slot 0's next seqid on the new connection: NFS4_OK if the session
  // survived (the connection dropped but the server did not restart).
  nfsstat4 SequenceProbe() {
    auto r = CallRecoverySync({});
    if (!r.ok()) return NFS4ERR_BADSESSION;
    return r->status;
  }

  Result<COMPOUND4res> CallRecoverySync(std::vector<nfs_argop4> ops) {
    auto p = std::make_shared<Pending>();
    p->body = Encode(ops);
    p->nops = static_cast<uint32_t>(ops.size());
    p->recovery = true;
    p->deadline = Clock::now() + std::chrono::milliseconds(opts.call_timeout_ms);
    std::promise<std::pair<Status, COMPOUND4res>> done;
    auto fut = done.get_future();
    p->cb = [&done](Status s, COMPOUND4res r) { done.set_value({std::move(s), std::move(r)}); };
    Submit(p);
    auto [s, r] = fut.get();
    if (!s.ok()) return s;
    return std::move(r);
  }

  // ---------------------------------------------------------------- timers

  void At(Clock::time_point when, std::function<void()> fn) {
    {
      std::lock_guard<std::mutex> g(mu);
      if (!shut) {
        timers.emplace(when, std::move(fn));
        cv.notify_all();
        return;
      }
    }
    // Shut down: no timer thread runs it. A retry fails at once (Submit sees `shut`).
    fn();
  }

  void TimerLoop() {
    std::unique_lock<std::mutex> g(mu);
    auto last_renew = Clock::now();
    while (!shut) {
      // Renew the lease (RFC 8881 §8.3) with a SEQUENCE alone when nothing else did for a
      // third of it. The lease is re-read each time: it is learnt after this thread starts.
      const auto period = std::chrono::milliseconds(std::max<uint64_t>(1000, uint64_t{lease} * 1000 / 3));
      const auto renew_at = std::max(last_reply, last_renew) + period;
      auto wake = renew_at;
      if (!timers.empty() && timers.begin()->first < wake) wake = timers.begin()->first;
      cv.wait_until(g, wake);
      if (shut) break;
      const auto now = Clock::now();
      while (!timers.empty() && timers.begin()->first <= now) {
        auto fn = std::move(timers.begin()->second);
        timers.erase(timers.begin());
        g.unlock();
        fn();
        g.lock();
      }
      if (now >= std::max(last_reply, last_renew) + period && !recovering && !shut) {
        last_renew = now;
        auto p = std::make_shared<Pending>();
        p->deadline = now + period;
        p->cb = [](Status, COMPOUND4res) {};
        g.unlock();
        Submit(p);
        g.lock();
      }
    }
  }
};

Result<std::unique_ptr<Session>> Session::Start(rpc::EventLoop* loop, const Options& opts,
                                                Counters* counters) {
  std::unique_ptr<Session> s(new Session());
  s->loop_ = loop;
  s->impl_ = std::make_unique<Impl>();
  Impl& m = *s->impl_;
  m.self = s.get();
  m.opts = opts;
  m.counters = counters;
  s->cred_ = rpc::Cred::Sys(opts.uid.value_or(::getuid()), opts.gid.value_or(::getgid()),
                            opts.gids.value_or(std::vector<uint32_t>{}));
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);
  s->cred_.machine = host;
  std::random_device rd;
  const uint64_t nonce = (uint64_t{rd()} << 32) | rd();
  // The owner (RFC 8881 §2.4) must be unique to this client instance: two processes with one
  // owner would look like one client rebooting, and each would wipe the other's state. The
  // label only prefixes it.
  s->owner_ = (opts.client_name.empty() ? std::string("libloom") : opts.client_name) + "/" +
              std::string(host) + "/" + std::to_string(::getpid()) + "/" + std::to_string(nonce);
  for (int i = 0; i < 8; i++) m.verifier[i] = static_cast<uint8_t>(nonce >> (8 * i));
  auto addr = ResolveAddress(opts.mds, 20490);
  if (!addr.ok()) return addr.status();
  s->address_ = addr.value();

  const auto deadline = Clock::now() + std::chrono::milliseconds(opts.retry_for_ms);
  Status st;
  int backoff = 50;
  for (;;) {
    st = m.Connect();
    if (st.ok()) st = m.Establish();
    // A server that is starting (refused connection) or in a hurry (DELAY) is retried;
    // anything else (permission, a bad address) fails at once.
    const bool transient = st.code() == Errc::kUnavailable || st.code() == Errc::kTimeout ||
                           st.nfs_status() == NFS4ERR_DELAY;
    if (st.ok() || !transient || Clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(backoff));
    backoff = std::min(backoff * 2, 1000);
  }
  if (!st.ok()) return st;
  m.timer_thread = std::thread([&m] {
    MarkLibraryThread();
    m.TimerLoop();
  });
  // A new client has nothing to reclaim (RFC 8881 §18.51): say so, so that the server need not
  // hold its grace period for us after a restart.
  auto rc = m.CallRecoverySync(Impl::Ops(s4::ReclaimComplete()));
  if (!rc.ok()) return rc.status();
  if (rc->status != NFS4_OK && rc->status != NFS4ERR_COMPLETE_ALREADY)
    return FromNfs4(rc->status, "RECLAIM_COMPLETE");
  (void)m.FetchLease();
  return s;
}

Session::~Session() { Shutdown(); }

void Session::CallAsync(std::vector<nfs_argop4> ops, CompoundCallback cb, bool cachethis) {
  auto p = std::make_shared<Pending>();
  p->body = Impl::Encode(ops);
  p->nops = static_cast<uint32_t>(ops.size());
  p->cachethis = cachethis;
  p->cb = std::move(cb);
  p->deadline = Clock::now() + std::chrono::milliseconds(impl_->opts.retry_for_ms);
  impl_->Submit(std::move(p));
}

Result<COMPOUND4res> Session::Call(std::vector<nfs_argop4> ops, bool cachethis) {
  // The reply would be read by this very thread: waiting here would never end. A bug in the
  // library (an asynchronous callback that made a waiting call), reported as one.
  if (loop_->InLoopThread()) {
    return Status(Errc::kInternal, "a waiting call on the session's own thread (libloom bug)");
  }
  std::promise<std::pair<Status, COMPOUND4res>> done;
  auto fut = done.get_future();
  CallAsync(
      std::move(ops),
      [&done](Status s, COMPOUND4res r) { done.set_value({std::move(s), std::move(r)}); },
      cachethis);
  auto [s, r] = fut.get();
  if (!s.ok()) return s;
  return std::move(r);
}

void Session::SetCallbackHandler(CallbackService::OpHandler h) { impl_->callbacks->SetHandler(std::move(h)); }

bool Session::back_channel() const {
  std::lock_guard<std::mutex> g(impl_->mu);
  return impl_->back_chan;
}

uint64_t Session::callbacks_answered() const { return impl_->callbacks->answered(); }

void Session::SetReclaimHook(std::function<void()> hook) {
  std::lock_guard<std::mutex> g(impl_->mu);
  impl_->reclaim_hook = std::move(hook);
}

Result<COMPOUND4res> Session::CallRecovery(std::vector<nfs_argop4> ops) {
  return impl_->CallRecoverySync(std::move(ops));
}

uint32_t Session::max_request() const {
  std::lock_guard<std::mutex> g(impl_->mu);
  return impl_->fore.ca_maxrequestsize;
}
uint32_t Session::max_response() const {
  std::lock_guard<std::mutex> g(impl_->mu);
  return impl_->fore.ca_maxresponsesize;
}
uint32_t Session::lease_seconds() const {
  std::lock_guard<std::mutex> g(impl_->mu);
  return impl_->lease;
}

void Session::Shutdown() {
  if (!impl_) return;
  Impl& m = *impl_;
  {
    std::unique_lock<std::mutex> g(m.mu);
    if (m.shut) return;
    // Let calls in flight finish (bounded).
    m.cv.wait_for(g, std::chrono::milliseconds(m.opts.call_timeout_ms),
                  [&] { return m.in_flight == 0 && m.waiting.empty() && !m.recovering; });
  }
  // DESTROY_SESSION alone and then DESTROY_CLIENTID (RFC 8881 §18.37, §18.50): the server
  // forgets this client now instead of at lease expiry, and a restart of the server does not
  // hold its grace period for a client that is gone.
  std::vector<nfs_argop4> v;
  v.push_back(s4::DestroySession(m.sessionid));
  auto r1 = m.RawSync(std::move(v));
  if (r1.ok() && r1->status == NFS4_OK) {
    auto dc = s4::Op(OP_DESTROY_CLIENTID);
    dc.opdestroy_clientid = std::make_unique<DESTROY_CLIENTID4args>();
    dc.opdestroy_clientid->dca_clientid = m.clientid;
    std::vector<nfs_argop4> v2;
    v2.push_back(std::move(dc));
    (void)m.RawSync(std::move(v2));
  }
  std::deque<std::shared_ptr<Pending>> left;
  std::multimap<Clock::time_point, std::function<void()>> timers;
  {
    std::lock_guard<std::mutex> g(m.mu);
    m.shut = true;
    left.swap(m.waiting);
    timers.swap(m.timers);
    if (m.rpc) m.rpc->Close();
    m.cv.notify_all();
  }
  for (auto& p : left) p->cb(Status(Errc::kUnavailable, "client closed"), COMPOUND4res{});
  // Calls waiting out a back-off are in `timers`: run now, each retry fails as closed
  // (dropping them would leave their callers waiting for ever).
  for (auto& [when, fn] : timers) fn();
  if (m.timer_thread.joinable()) m.timer_thread.join();
  if (m.recovery_thread.joinable()) m.recovery_thread.join();
}

namespace {
thread_local bool library_thread = false;
}  // namespace

void MarkLibraryThread() { library_thread = true; }
bool OnLibraryThread() {
  return library_thread || rpc::EventLoop::Current() != nullptr || rpc::WorkerPool::Current() != nullptr;
}

}  // namespace loom::client::internal
