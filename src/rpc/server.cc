#include "rpc/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
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

}  // namespace

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
        if (errno == EMFILE || errno == ENFILE) LOG_WARN("accept: out of file descriptors");
        return;
      }
      srv_->OnAccept(c, SockaddrToString(reinterpret_cast<sockaddr*>(&ss)));
    }
  }
  int fd() const { return fd_; }
  EventLoop* loop() const { return loop_; }

 private:
  RpcServer* srv_;
  EventLoop* loop_;
  int fd_;
};

RpcServer::RpcServer(ServerOptions opts) : opts_(std::move(opts)), drc_(opts_.reply_cache_entries) {}

RpcServer::~RpcServer() { Stop(); }

void RpcServer::Register(ProgramDesc p) {
  Registered r;
  for (size_t i = 0; i < p.procs.size(); i++) {
    const char* n = p.procs[i].name;
    r.stats.push_back(n ? stats_.Get(p.stats_prefix + "." + n) : nullptr);
  }
  auto& range = version_range_[p.prog];
  if (range.first == 0 || p.vers < range.first) range.first = p.vers;
  if (p.vers > range.second) range.second = p.vers;
  auto key = std::make_pair(p.prog, p.vers);
  r.desc = std::move(p);
  programs_[key] = std::move(r);
}

Status RpcServer::Start() {
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
  loops_ = std::make_unique<LoopGroup>(opts_.loops);
  workers_ = std::make_unique<WorkerPool>(opts_.workers);
  acceptor_ = std::make_unique<Acceptor>(this, loops_->At(0), fd);
  LOOM_RETURN_IF_ERROR(loops_->At(0)->Add(fd, EPOLLIN, acceptor_.get()));
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
    for (auto& [p, c] : conns_) c->Close();
  }
  workers_.reset();  // finishes queued calls
  loops_->Stop();
  {
    std::lock_guard<std::mutex> l(conns_mu_);
    conns_.clear();
  }
  acceptor_.reset();
  loops_.reset();
}

void RpcServer::OnAccept(int fd, std::string peer) {
  accepted_.fetch_add(1);
  Connection::Callbacks cb;
  cb.on_record = [this](const std::shared_ptr<Connection>& c, Record r) { OnRecord(c, std::move(r)); };
  cb.on_close = [this](Connection* c) {
    std::lock_guard<std::mutex> l(conns_mu_);
    conns_.erase(c);
  };
  auto conn = Connection::Create(loops_->Next(), fd, std::move(peer), opts_.conn, std::move(cb));
  {
    std::lock_guard<std::mutex> l(conns_mu_);
    conns_[conn.get()] = conn;
  }
  conn->Start();
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
    c->Send(std::move(reply));
    c->RecordDone();
    return;
  }
  if (cb.rpcvers != RPC_VERS) {
    rejected_reply rr;
    rr.stat = RPC_MISMATCH;
    rr.mismatch_info = {RPC_VERS, RPC_VERS};
    EncodeDenied(*reply, xid, rr);
    c->Send(std::move(reply));
    c->RecordDone();
    return;
  }
  if (!xdr_decode(d, cb.cred) || !xdr_decode(d, cb.verf) || !ParseCred(cb.cred, &ctx.cred)) {
    rejected_reply rr;
    rr.stat = AUTH_ERROR;
    rr.stat_auth = AUTH_BADCRED;
    EncodeDenied(*reply, xid, rr);
    c->Send(std::move(reply));
    c->RecordDone();
    return;
  }
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
    c->Send(std::move(reply));
    c->RecordDone();
    return;
  }
  const Registered* prog = &it->second;
  if (cb.proc >= prog->desc.procs.size() || prog->desc.procs[cb.proc].name == nullptr) {
    EncodeAcceptedHeader(*reply, xid, PROC_UNAVAIL);
    c->Send(std::move(reply));
    c->RecordDone();
    return;
  }
  const ProcDesc* pd = &prog->desc.procs[cb.proc];
  size_t args_off = r.size - d.remaining();
  std::string drc_key;
  if (!pd->idempotent) {
    drc_key = ReplyCache::MakeKey(ctx.peer.substr(0, ctx.peer.rfind(':')), xid, cb.prog,
                                  cb.vers, cb.proc, d.pos(), d.remaining());
    std::string cached;
    switch (drc_.Begin(drc_key, &cached)) {
      case ReplyCache::State::kInProgress:
        c->RecordDone();  // the original call's reply will answer it
        return;
      case ReplyCache::State::kDone: {
        auto again = std::make_unique<xdr::Encoder>();
        again->raw(cached.data(), cached.size());
        c->Send(std::move(again));
        c->RecordDone();
        return;
      }
      case ReplyCache::State::kNew:
        break;
    }
  }
  if (pd->inline_ok) {
    Execute(c, std::move(r), prog, pd, std::move(ctx), args_off, std::move(drc_key));
  } else {
    workers_->Submit([this, c, r = std::move(r), prog, pd, ctx = std::move(ctx), args_off,
                      drc_key = std::move(drc_key)]() mutable {
      Execute(std::move(c), std::move(r), prog, pd, std::move(ctx), args_off, std::move(drc_key));
    });
  }
}

void RpcServer::Execute(std::shared_ptr<Connection> c, Record r, const Registered* prog,
                        const ProcDesc* pd, CallContext ctx, size_t args_off,
                        std::string drc_key) {
  int64_t start = NowUs();
  xdr::Decoder args(r.buf->data() + args_off, r.size - args_off, r.buf);
  auto reply = std::make_unique<xdr::Encoder>();
  Connection::BeginRecord(*reply);
  EncodeAcceptedHeader(*reply, ctx.xid, SUCCESS);
  size_t body_at = reply->inline_size();
  accept_stat st = pd->fn(ctx, args, *reply);
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
  c->Send(std::move(reply));
  c->RecordDone();
}

}  // namespace loom::rpc
