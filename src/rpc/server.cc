#include "rpc/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "common/log.h"

namespace loom::rpc {

Status ParseHostPort(const std::string& s, sockaddr_storage* ss, socklen_t* len) {
  std::memset(ss, 0, sizeof *ss);
  std::string host, port;
  if (!s.empty() && s[0] == '[') {
    auto close = s.find(']');
    if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':')
      return Status::Invalid("bad address " + s);
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
  } else {
    auto colon = s.rfind(':');
    if (colon == std::string::npos) return Status::Invalid("address needs host:port: " + s);
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
  }
  char* end = nullptr;
  long p = std::strtol(port.c_str(), &end, 10);
  if (port.empty() || *end != '\0' || p < 0 || p > 65535) return Status::Invalid("bad port " + s);
  auto* v4 = reinterpret_cast<sockaddr_in*>(ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(ss);
  if (host.empty() || host == "*") host = "0.0.0.0";
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(p));
    *len = sizeof(sockaddr_in);
    return Status::Ok();
  }
  if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(p));
    *len = sizeof(sockaddr_in6);
    return Status::Ok();
  }
  return Status::Invalid("not a numeric IP address: " + host);
}

std::string SockaddrToString(const sockaddr* sa) {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (sa->sa_family == AF_INET) {
    auto* v4 = reinterpret_cast<const sockaddr_in*>(sa);
    inet_ntop(AF_INET, &v4->sin_addr, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(ntohs(v4->sin_port));
  }
  if (sa->sa_family == AF_INET6) {
    auto* v6 = reinterpret_cast<const sockaddr_in6*>(sa);
    inet_ntop(AF_INET6, &v6->sin6_addr, buf, sizeof buf);
    return "[" + std::string(buf) + "]:" + std::to_string(ntohs(v6->sin6_port));
  }
  return "?";
}

void EncodeAcceptedHeader(xdr::Encoder& e, uint32_t xid, accept_stat stat) {
  e.u32(xid);
  e.i32(REPLY);
  e.i32(MSG_ACCEPTED);
  e.i32(AUTH_NONE);  // verifier: AUTH_NONE, empty body
  e.u32(0);
  e.i32(stat);
}

std::shared_ptr<BackChannel> MakeBackChannel(const std::shared_ptr<Connection>& conn,
                                             int timeout_ms) {
  auto bc = std::make_shared<BackChannel>(conn, timeout_ms);
  std::weak_ptr<BackChannel> weak = bc;
  conn->SetReplySink([weak](Record r) {
    if (auto b = weak.lock()) b->OnReply(std::move(r));
  });
  conn->loop()->Every(500, [weak] {
    auto b = weak.lock();
    if (!b) return false;
    if (!b->usable()) b->FailAll(Status::Unavailable("back channel connection closed"));
    b->Sweep();
    return true;
  });
  return bc;
}

namespace {

void EncodeDenied(xdr::Encoder& e, uint32_t xid, const rejected_reply& rr) {
  e.u32(xid);
  e.i32(REPLY);
  e.i32(MSG_DENIED);
  xdr_encode(e, rr);
}

// Answers the call in `reply` (its record mark begun) with MSG_DENIED (RFC 5531 §9) and ends
// the record.
void SendDenied(const std::shared_ptr<Connection>& c, std::unique_ptr<xdr::Encoder> reply,
                uint32_t xid, const rejected_reply& rr) {
  EncodeDenied(*reply, xid, rr);
  c->SendReply(std::move(reply));
}

rejected_reply AuthError(auth_stat why) {
  rejected_reply rr;
  rr.stat = AUTH_ERROR;
  rr.stat_auth = why;
  return rr;
}

// Log lines about floods (refused connections, descriptors running out, refused callers)
// are written at most once per interval, with the number of events since the last line, so a
// flood cannot fill the disk. Thread-safe.
class RateLimitedLog {
 public:
  explicit RateLimitedLog(int64_t interval_ms) : interval_ms_(interval_ms) {}
  // Counts one event; true when a line should be written now. *events: events the line
  // stands for (this one included).
  bool Tick(uint64_t* events) {
    std::lock_guard<std::mutex> l(mu_);
    pending_++;
    int64_t now = NowMs();
    if (last_ms_ != 0 && now - last_ms_ < interval_ms_) return false;
    last_ms_ = now;
    *events = pending_;
    pending_ = 0;
    return true;
  }

 private:
  const int64_t interval_ms_;
  std::mutex mu_;
  int64_t last_ms_ = 0;
  uint64_t pending_ = 0;
};

constexpr int64_t kFloodLogIntervalMs = 10000;
RateLimitedLog g_fd_log(kFloodLogIntervalMs);
RateLimitedLog g_cap_log(kFloodLogIntervalMs);
RateLimitedLog g_denied_log(kFloodLogIntervalMs);

std::string AddressOnly(const std::string& peer) { return peer.substr(0, peer.rfind(':')); }

long ParseCount(const std::string& flag, const std::string& v, long min, long max) {
  char* end = nullptr;
  errno = 0;
  long n = std::strtol(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || errno != 0 || n < min || n > max) {
    std::fprintf(stderr, "%s: want a number within %ld..%ld, got \"%s\"\n", flag.c_str(), min,
                 max, v.c_str());
    std::exit(2);
  }
  return n;
}

}  // namespace

const char kServerFlagsUsage[] =
    "  --exports FILE      export rules: who may connect, rw/ro, root squashing\n"
    "                      (docs/security.md; default *(rw,root_squash))\n"
    "  --max-connections N             total connection cap (default 4096)\n"
    "  --max-connections-per-address N per client address (default 512)\n"
    "  --idle-timeout SECONDS          close connections idle this long (default 300; 0: never)\n";

bool ParseServerFlag(const std::string& flag, const std::function<std::string()>& next,
                     ServerOptions* o) {
  if (flag == "--exports") {
    o->exports_file = next();
  } else if (flag == "--max-connections") {
    o->max_connections = static_cast<size_t>(ParseCount(flag, next(), 1, 1 << 24));
  } else if (flag == "--max-connections-per-address") {
    o->max_connections_per_address = static_cast<size_t>(ParseCount(flag, next(), 1, 1 << 24));
  } else if (flag == "--idle-timeout") {
    o->idle_timeout_ms = static_cast<int>(ParseCount(flag, next(), 0, 86400 * 7) * 1000);
  } else {
    return false;
  }
  return true;
}

void RaiseFdLimit() {
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    // An unlimited hard limit is still bounded by fs.nr_open (1,048,576 by default).
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? rlim_t{1} << 20 : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) LOG_WARN("setrlimit(RLIMIT_NOFILE): %s", std::strerror(errno));
  }
}

class RpcServer::Acceptor : public EventLoop::Handler {
 public:
  Acceptor(RpcServer* srv, EventLoop* loop, int fd) : srv_(srv), loop_(loop), fd_(fd) {}
  ~Acceptor() override { ::close(fd_); }
  void OnEvents(uint32_t) override {
    for (;;) {
      sockaddr_storage ss;
      socklen_t len = sizeof ss;
      int c = ::accept4(fd_, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (c < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) Backoff(errno);
        return;
      }
      srv_->OnAccept(c, ss);
    }
  }
  // Out of descriptors (or memory): the pending connection stays in the backlog and the
  // level-triggered listen socket would wake us at once, forever. Stop watching it for a
  // while instead; connections that close meanwhile give descriptors back.
  void Backoff(int err) {
    uint64_t n;
    if (g_fd_log.Tick(&n)) {
      LOG_WARN("accept: %s; not accepting for %d ms at a time (%llu times since the last such "
               "message; at most one every %lld s)",
               std::strerror(err), srv_->opts_.accept_backoff_ms,
               static_cast<unsigned long long>(n),
               static_cast<long long>(kFloodLogIntervalMs / 1000));
    }
    if (paused_) return;
    paused_ = true;
    (void)loop_->Modify(fd_, 0, this);
    loop_->Every(srv_->opts_.accept_backoff_ms, [this] {
      paused_ = false;
      (void)loop_->Modify(fd_, EPOLLIN, this);
      return false;
    });
  }
  int fd() const { return fd_; }
  EventLoop* loop() const { return loop_; }

 private:
  RpcServer* srv_;
  EventLoop* loop_;
  int fd_;
  bool paused_ = false;  // loop thread only
};

RpcServer::RpcServer(ServerOptions opts)
    : opts_(std::move(opts)), drc_(opts_.reply_cache_entries), budget_(std::make_shared<ByteBudget>(opts_.max_buffered_bytes)) {
  opts_.conn.budget = budget_;
}

RpcServer::~RpcServer() { Stop(); }

void RpcServer::Register(ProgramDesc p) {
  Registered r;
  for (size_t i = 0; i < p.procs.size(); i++) {
    const char* n = p.procs[i].name;
    r.stats.push_back(n ? stats_.Get(p.stats_prefix + "." + n) : nullptr);
    const bool tries = n && p.procs[i].try_inline;
    r.inline_stats.push_back(tries ? stats_.Get(p.stats_prefix + ".inline." + n) : nullptr);
    r.deferred_stats.push_back(tries ? stats_.Get(p.stats_prefix + ".deferred." + n) : nullptr);
  }
  auto& range = version_range_[p.prog];
  if (range.first == 0 || p.vers < range.first) range.first = p.vers;
  if (p.vers > range.second) range.second = p.vers;
  auto key = std::make_pair(p.prog, p.vers);
  r.desc = std::move(p);
  programs_[key] = std::move(r);
}

Status RpcServer::Start() {
  if (!opts_.exports_file.empty()) {
    auto rules = ExportRules::Load(opts_.exports_file);
    if (!rules.ok()) return rules.status();
    opts_.exports = std::move(rules.value());
  }
  for (const std::string& t : opts_.trusted) {
    LOOM_RETURN_IF_ERROR(opts_.exports.AddTrusted(t, "trusted " + t));
  }
  if (!opts_.exports_file.empty() || !opts_.trusted.empty()) {
    LOG_INFO("export rules, first match wins: %s", opts_.exports.Text().c_str());
  }
  RaiseFdLimit();
  sockaddr_storage ss;
  socklen_t len;
  LOOM_RETURN_IF_ERROR(ParseHostPort(opts_.listen, &ss, &len));
  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::FromErrno(errno, "socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    Status s = Status::FromErrno(errno, "bind " + opts_.listen);
    ::close(fd);
    return s;
  }
  if (::listen(fd, 1024) != 0) {
    Status s = Status::FromErrno(errno, "listen");
    ::close(fd);
    return s;
  }
  sockaddr_storage bound;
  socklen_t blen = sizeof bound;
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &blen);
  port_ = bound.ss_family == AF_INET
              ? ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port)
              : ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
  EventLoop::Options lo;
  lo.poll_max_us = opts_.poll_us;
  lo.poll_hit = stats_.Get("rpc.poll_hit");
  lo.poll_miss = stats_.Get("rpc.poll_miss");
  loops_ = std::make_unique<LoopGroup>(opts_.loops, lo);
  workers_ = std::make_unique<WorkerPool>(opts_.workers);
  acceptor_ = std::make_unique<Acceptor>(this, loops_->At(0), fd);
  LOOM_RETURN_IF_ERROR(loops_->At(0)->Add(fd, EPOLLIN, acceptor_.get()));
  if (opts_.idle_timeout_ms > 0) {
    int period = std::clamp(opts_.idle_timeout_ms / 4, 10, 5000);
    loops_->At(0)->Every(period, [this] {
      SweepIdle();
      return true;
    });
  }
  loops_->Start();
  started_ = true;
  return Status::Ok();
}

void RpcServer::Stop() {
  if (!started_) return;
  started_ = false;
  acceptor_->loop()->Remove(acceptor_->fd());
  {
    std::lock_guard<std::mutex> l(conns_mu_);
    for (auto& [p, e] : conns_) e.conn->Close();
  }
  workers_.reset();  // finishes queued calls
  {
    // Replies held for a gate (kReplyLater) are sent, or dropped with their closed
    // connections, by whoever opens the gate; the procedures' owners outlive this wait.
    std::unique_lock<std::mutex> l(later_mu_);
    later_cv_.wait(l, [&] { return later_ == 0; });
  }
  loops_->Stop();
  {
    std::lock_guard<std::mutex> l(conns_mu_);
    conns_.clear();
    per_address_.clear();
  }
  acceptor_.reset();
  loops_.reset();
}

size_t RpcServer::connections_open() {
  std::lock_guard<std::mutex> l(conns_mu_);
  return conns_.size();
}

void RpcServer::OnAccept(int fd, const sockaddr_storage& ss) {
  accepted_.fetch_add(1);
  std::string peer = SockaddrToString(reinterpret_cast<const sockaddr*>(&ss));
  std::string addr = AddressOnly(peer);
  {
    std::lock_guard<std::mutex> l(conns_mu_);
    const char* cap = nullptr;
    if (conns_.size() >= opts_.max_connections) {
      cap = "the server's connection cap";
    } else if (per_address_[addr] >= opts_.max_connections_per_address) {
      cap = "the per-address connection cap";
    }
    if (cap) {
      if (per_address_[addr] == 0) per_address_.erase(addr);
      refused_.fetch_add(1);
      ::close(fd);
      uint64_t n;
      if (g_cap_log.Tick(&n)) {
        LOG_WARN("refusing connection from %s: %s is reached (%llu refused since the last such "
                 "message; at most one every %lld s)",
                 peer.c_str(), cap, static_cast<unsigned long long>(n),
                 static_cast<long long>(kFloodLogIntervalMs / 1000));
      }
      return;
    }
    per_address_[addr]++;
  }
  Connection::Callbacks cb;
  cb.on_record = [this](const std::shared_ptr<Connection>& c, Record r) { OnRecord(c, std::move(r)); };
  cb.on_close = [this](Connection* c) {
    std::lock_guard<std::mutex> l(conns_mu_);
    auto it = conns_.find(c);
    if (it == conns_.end()) return;
    auto pa = per_address_.find(it->second.addr);
    if (pa != per_address_.end() && --pa->second == 0) per_address_.erase(pa);
    conns_.erase(it);
  };
  auto conn = Connection::Create(loops_->Next(), fd, peer, opts_.conn, std::move(cb));
  // Rules depend on the address only: matched once per connection.
  conn->set_export_rule(opts_.exports.Match(reinterpret_cast<const sockaddr*>(&ss)));
  {
    std::lock_guard<std::mutex> l(conns_mu_);
    conns_[conn.get()] = ConnEntry{conn, std::move(addr)};
  }
  conn->Start();
}

void RpcServer::SweepIdle() {
  int64_t now = NowMs();
  std::vector<std::shared_ptr<Connection>> idle;
  {
    std::lock_guard<std::mutex> l(conns_mu_);
    for (auto& [p, e] : conns_) {
      if (e.conn->inflight() == 0 && now - e.conn->last_active_ms() >= opts_.idle_timeout_ms)
        idle.push_back(e.conn);
    }
  }
  // A client may close an idle connection at any time and reconnect (RFC 5531 §11 gives TCP
  // records no session); NFS clients do exactly that.
  for (auto& c : idle) {
    LOG_DEBUG("closing %s: idle for %d ms", c->peer().c_str(), opts_.idle_timeout_ms);
    c->Close();
  }
}

void RpcServer::OnRecord(const std::shared_ptr<Connection>& c, Record r) {
  xdr::Decoder d(r.buf->data(), r.size, r.buf);
  uint32_t xid;
  int32_t mtype;
  if (!d.u32(xid) || !d.i32(mtype)) {
    // Too short to carry an xid: nothing can be answered (RFC 5531 gives no reply without xid).
    c->Close();
    c->RecordDone();
    return;
  }
  if (mtype != CALL) {
    // A reply to a call we made on this connection (back channel), or stray: dropped.
    c->RecordDone();
    if (mtype == REPLY) {
      if (auto sink = c->reply_sink()) sink(std::move(r));
    }
    return;
  }
  auto reply = std::make_unique<xdr::Encoder>();
  Connection::BeginRecord(*reply);
  CallContext ctx;
  ctx.xid = xid;
  ctx.peer = c->peer();
  ctx.conn = c;
  call_body cb;
  if (!d.u32(cb.rpcvers) || !d.u32(cb.prog) || !d.u32(cb.vers) || !d.u32(cb.proc)) {
    EncodeAcceptedHeader(*reply, xid, GARBAGE_ARGS);
    c->SendReply(std::move(reply));
    return;
  }
  if (cb.rpcvers != RPC_VERS) {
    rejected_reply rr;
    rr.stat = RPC_MISMATCH;
    rr.mismatch_info = {RPC_VERS, RPC_VERS};
    SendDenied(c, std::move(reply), xid, rr);
    return;
  }
  if (!xdr_decode(d, cb.cred) || !xdr_decode(d, cb.verf) || !ParseCred(cb.cred, &ctx.cred)) {
    SendDenied(c, std::move(reply), xid, AuthError(AUTH_BADCRED));
    return;
  }
  const ExportRule* rule = c->export_rule();
  if (rule == nullptr) {
    // No export rule admits this address: RFC 5531 §9 AUTH_TOOWEAK, "rejected for security
    // reasons" (a valid credential that this server does not accept from here).
    uint64_t n;
    if (g_denied_log.Tick(&n)) {
      LOG_WARN("denied call from %s: no export rule matches its address (%llu denied since the "
               "last such message; at most one every %lld s)",
               c->peer().c_str(), static_cast<unsigned long long>(n),
               static_cast<long long>(kFloodLogIntervalMs / 1000));
    }
    SendDenied(c, std::move(reply), xid, AuthError(AUTH_TOOWEAK));
    return;
  }
  rule->Apply(&ctx.cred);
  ctx.read_only = rule->read_only;
  ctx.export_rule = rule;
  ctx.prog = cb.prog;
  ctx.vers = cb.vers;
  ctx.proc = cb.proc;
  auto it = programs_.find({cb.prog, cb.vers});
  if (it == programs_.end()) {
    auto vr = version_range_.find(cb.prog);
    if (vr == version_range_.end()) {
      EncodeAcceptedHeader(*reply, xid, PROG_UNAVAIL);
    } else {
      EncodeAcceptedHeader(*reply, xid, PROG_MISMATCH);
      reply->u32(vr->second.first);
      reply->u32(vr->second.second);
    }
    c->SendReply(std::move(reply));
    return;
  }
  const Registered* prog = &it->second;
  if (cb.proc >= prog->desc.procs.size() || prog->desc.procs[cb.proc].name == nullptr) {
    EncodeAcceptedHeader(*reply, xid, PROC_UNAVAIL);
    c->SendReply(std::move(reply));
    return;
  }
  const ProcDesc* pd = &prog->desc.procs[cb.proc];
  size_t args_off = r.size - d.remaining();
  std::string drc_key;
  if (!pd->idempotent) {
    // The credential as sent (before squashing): the same bytes identify a retransmission.
    drc_key = ReplyCache::MakeKey(ctx.peer, xid, cb.prog, cb.vers, cb.proc, cb.cred.flavor,
                                  cb.cred.body.view(), d.pos(), d.remaining());
    std::string cached;
    switch (drc_.Begin(drc_key, &cached)) {
      case ReplyCache::State::kInProgress:
        c->RecordDone();  // the original call's reply will answer it
        return;
      case ReplyCache::State::kDone: {
        auto again = std::make_unique<xdr::Encoder>();
        again->raw(cached.data(), cached.size());
        c->SendReply(std::move(again));
        return;
      }
      case ReplyCache::State::kNew:
        break;
    }
  }
  if (pd->try_inline && drc_key.empty()) {
    const int64_t start = NowUs();
    ctx.reply_later_ok = true;
    OpStats* on_loop = prog->inline_stats[cb.proc];
    switch (Execute(c, r, prog, pd->try_inline, ctx, args_off, drc_key, on_loop, start)) {
      case Ran::kSent:
        return;
      case Ran::kLater:
        ReplyLater(c, std::move(r), prog, pd, std::move(ctx), args_off, on_loop, start);
        return;
      case Ran::kDeferred:
        break;
    }
    prog->deferred_stats[cb.proc]->Record(0, 0, 0, false);
    ctx.op_status = 0;
  }
  if (pd->inline_ok) {
    ctx.reply_later_ok = false;
    Execute(c, r, prog, pd->fn, ctx, args_off, drc_key);
  } else {
    // A worker's handler may hold its reply too (its changes' log sync then runs on the
    // store's syncer, shared with others, instead of blocking this worker), unless the reply
    // cache tracks the call: its entry is finished by the reply Execute sends.
    ctx.reply_later_ok = drc_key.empty();
    workers_->Submit([this, c, r = std::move(r), prog, pd, ctx = std::move(ctx), args_off,
                      drc_key = std::move(drc_key)]() mutable {
      const int64_t start = NowUs();
      if (Execute(c, r, prog, pd->fn, ctx, args_off, drc_key, nullptr, start) == Ran::kLater) {
        ReplyLater(c, std::move(r), prog, pd, std::move(ctx), args_off, nullptr, start);
      }
    });
  }
}

RpcServer::Ran RpcServer::Execute(const std::shared_ptr<Connection>& c, const Record& r,
                                  const Registered* prog, const ProcHandler& fn,
                                  const CallContext& ctx, size_t args_off,
                                  const std::string& drc_key, OpStats* also_count,
                                  int64_t start_us) {
  const int64_t start = start_us ? start_us : NowUs();
  xdr::Decoder args(r.buf->data() + args_off, r.size - args_off, r.buf);
  auto reply = std::make_unique<xdr::Encoder>();
  Connection::BeginRecord(*reply);
  EncodeAcceptedHeader(*reply, ctx.xid, SUCCESS);
  size_t body_at = reply->inline_size();
  accept_stat st = fn(ctx, args, *reply);
  if (st == kDeferToWorker) return Ran::kDeferred;
  if (st == kReplyLater) return Ran::kLater;
  if (st != SUCCESS) {
    reply->truncate(body_at - 4);
    reply->i32(st);
  }
  size_t out_bytes = reply->size();
  if (!drc_key.empty()) {
    // Cache the whole reply (record mark included; it is rewritten on resend).
    if (st == SUCCESS || st == GARBAGE_ARGS) {
      drc_.Finish(drc_key, reply->Flatten());
    } else {
      drc_.Abandon(drc_key);
    }
  }
  // Counted before the reply leaves, so a client that sees the reply also sees the count.
  OpStats* s = prog->stats[ctx.proc];
  if (s) {
    s->Record(static_cast<uint64_t>(NowUs() - start), r.size, out_bytes,
              st != SUCCESS || ctx.op_status != 0);
  }
  if (also_count) also_count->Record(0, 0, 0, false);
  c->SendReply(std::move(reply));
  return Ran::kSent;
}

void RpcServer::ReplyLater(const std::shared_ptr<Connection>& c, Record r,
                           const Registered* prog, const ProcDesc* pd, CallContext ctx,
                           size_t args_off, OpStats* also_count, int64_t start_us) {
  {
    std::lock_guard<std::mutex> l(later_mu_);
    later_++;
  }
  // The call stays in flight on its connection (admission control counts it) until sent.
  auto gate = std::move(ctx.gate);
  auto call = std::make_shared<CallContext>(std::move(ctx));
  call->reply_later_ok = false;
  gate([this, c, r = std::move(r), prog, pd, call, args_off, also_count, start_us] {
    // The handler's worker form finishes what it left in call->resume; it must not ask to
    // wait again.
    if (Execute(c, r, prog, pd->fn, *call, args_off, std::string(), also_count, start_us) !=
        Ran::kSent) {
      LOG_ERROR("%s: a reply held for later was not sent; closing %s",
                pd->name ? pd->name : "?", c->peer().c_str());
      c->Close();
      c->RecordDone();
    }
    std::lock_guard<std::mutex> l(later_mu_);
    if (--later_ == 0) later_cv_.notify_all();
  });
}

}  // namespace loom::rpc
