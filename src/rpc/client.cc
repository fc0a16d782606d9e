#include "rpc/client.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <random>

#include "rpc/server.h"
#include "xdr/rpc.h"

namespace loom::rpc {

Result<size_t> ParseReplyHeader(const uint8_t* p, size_t n, uint32_t* xid) {
  xdr::Decoder d(p, n);
  int32_t mtype;
  reply_body body;
  if (!d.u32(*xid) || !d.i32(mtype) || mtype != REPLY) return Status::Invalid("not an RPC reply");
  if (!xdr_decode(d, body)) return Status::Invalid("malformed RPC reply header");
  if (body.stat == MSG_DENIED) {
    if (body.rreply.stat == RPC_MISMATCH) return Status::Invalid("RPC_MISMATCH");
    return Status(Code::kPermission,
                  std::string("AUTH_ERROR ") + auth_stat_name(body.rreply.stat_auth));
  }
  const accepted_reply_data& ad = body.areply.reply_data;
  switch (ad.stat) {
    case SUCCESS:
      return n - d.remaining();
    case PROG_MISMATCH:
      return Status(Code::kNotFound, "PROG_MISMATCH " + std::to_string(ad.mismatch_info.low) +
                                         "-" + std::to_string(ad.mismatch_info.high));
    case PROG_UNAVAIL:
    case PROC_UNAVAIL:
      return Status(Code::kNotFound, accept_stat_name(ad.stat));
    case GARBAGE_ARGS:
      return Status::Invalid("GARBAGE_ARGS");
    default:
      return Status::Internal(accept_stat_name(ad.stat));
  }
}

Result<std::shared_ptr<RpcClient>> RpcClient::Connect(EventLoop* loop, const std::string& addr,
                                                      Options opts) {
  sockaddr_storage ss;
  socklen_t len;
  LOOM_RETURN_IF_ERROR(ParseHostPort(addr, &ss, &len));
  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::FromErrno(errno, "socket");
  int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&ss), len);
  if (rc != 0 && errno != EINPROGRESS) {
    Status s = Status::FromErrno(errno, "connect " + addr);
    ::close(fd);
    return s;
  }
  if (rc != 0) {
    pollfd pfd{fd, POLLOUT, 0};
    int pr = ::poll(&pfd, 1, opts.connect_timeout_ms);
    int err = 0;
    socklen_t elen = sizeof err;
    if (pr <= 0) {
      ::close(fd);
      return Status::Timeout("connect " + addr);
    }
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
    if (err != 0) {
      ::close(fd);
      return Status::FromErrno(err, "connect " + addr);
    }
  }
  std::shared_ptr<RpcClient> c(new RpcClient(opts));
  std::random_device rd;
  c->next_xid_.store(rd());
  std::weak_ptr<RpcClient> weak = c;
  Connection::Callbacks cb;
  cb.on_record = [weak](const std::shared_ptr<Connection>& conn, Record r) {
    conn->RecordDone();
    if (auto self = weak.lock()) self->OnRecord(std::move(r));
  };
  cb.on_close = [weak](Connection*) {
    if (auto self = weak.lock()) self->OnClose();
  };
  c->conn_ = Connection::Create(loop, fd, addr, opts.conn, std::move(cb));
  c->conn_->Start();
  loop->Every(250, [weak] {
    if (auto self = weak.lock()) self->Sweep();
  });
  return c;
}

RpcClient::~RpcClient() {
  if (conn_) conn_->Close();
}

void RpcClient::CallAsync(uint32_t prog, uint32_t vers, uint32_t proc, const Cred& cred,
                          const std::function<void(xdr::Encoder&)>& encode_args, Callback cb) {
  uint32_t xid = next_xid_.fetch_add(1);
  auto e = std::make_unique<xdr::Encoder>();
  Connection::BeginRecord(*e);
  e->u32(xid);
  e->i32(CALL);
  call_body body;
  body.rpcvers = RPC_VERS;
  body.prog = prog;
  body.vers = vers;
  body.proc = proc;
  body.cred = EncodeCred(cred);
  body.verf.flavor = AUTH_NONE;
  xdr_encode(*e, body);
  encode_args(*e);
  {
    std::lock_guard<std::mutex> l(mu_);
    if (conn_->closed()) {
      cb(Status::Unavailable("connection closed"));
      return;
    }
    pending_[xid] = Pending{std::move(cb), NowMs() + opts_.timeout_ms};
  }
  conn_->Send(std::move(e));
}

void RpcClient::SendRawRecord(const std::string& bytes, uint32_t xid, Callback cb) {
  auto e = std::make_unique<xdr::Encoder>();
  Connection::BeginRecord(*e);
  e->raw(bytes.data(), bytes.size());
  {
    std::lock_guard<std::mutex> l(mu_);
    pending_[xid] = Pending{std::move(cb), NowMs() + opts_.timeout_ms};
  }
  conn_->Send(std::move(e));
}

Result<RpcClient::Reply> RpcClient::CallSync(uint32_t prog, uint32_t vers, uint32_t proc,
                                             const Cred& cred,
                                             const std::function<void(xdr::Encoder&)>& encode_args) {
  auto p = std::make_shared<std::promise<Result<Reply>>>();
  auto f = p->get_future();
  CallAsync(prog, vers, proc, cred, encode_args, [p](Result<Reply> r) { p->set_value(std::move(r)); });
  return f.get();
}

void RpcClient::OnRecord(Record r) {
  uint32_t xid = 0;
  Result<size_t> off = ParseReplyHeader(r.buf->data(), r.size, &xid);
  Pending p;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = pending_.find(xid);
    if (it == pending_.end()) return;  // late reply to a call that timed out
    p = std::move(it->second);
    pending_.erase(it);
  }
  if (!off.ok()) {
    p.cb(off.status());
    return;
  }
  p.cb(Reply{std::move(r), *off});
}

void RpcClient::Fail(uint32_t xid, Status s) {
  Pending p;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = pending_.find(xid);
    if (it == pending_.end()) return;
    p = std::move(it->second);
    pending_.erase(it);
  }
  p.cb(std::move(s));
}

void RpcClient::OnClose() {
  std::unordered_map<uint32_t, Pending> all;
  {
    std::lock_guard<std::mutex> l(mu_);
    all.swap(pending_);
  }
  for (auto& [xid, p] : all) p.cb(Status::Unavailable("connection closed"));
}

void RpcClient::Sweep() {
  int64_t now = NowMs();
  std::vector<uint32_t> expired;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (auto& [xid, p] : pending_)
      if (p.deadline_ms <= now) expired.push_back(xid);
  }
  for (uint32_t x : expired) Fail(x, Status::Timeout("RPC call timed out"));
}

void RpcClient::Close() { conn_->Close(); }

}  // namespace loom::rpc
