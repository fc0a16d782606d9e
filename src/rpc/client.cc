#include "rpc/client.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "rpc/server.h"

namespace loom::rpc {

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
  std::weak_ptr<RpcClient> weak = c;
  Connection::Callbacks cb;
  cb.on_record = [weak](const std::shared_ptr<Connection>& conn, Record r) {
    conn->RecordDone();
    auto self = weak.lock();
    if (!self) return;
    if (r.IsCall()) {
      std::function<void(Record)> h;
      {
        std::lock_guard<std::mutex> g(self->call_mu_);
        h = self->on_call_;
      }
      if (h) h(std::move(r));
      return;
    }
    self->calls_.OnReply(std::move(r));
  };
  cb.on_close = [weak](Connection*) {
    if (auto self = weak.lock()) self->calls_.FailAll(Status::Unavailable("connection closed"));
  };
  c->conn_ = Connection::Create(loop, fd, addr, opts.conn, std::move(cb));
  c->conn_->Start();
  loop->Every(250, [weak] {
    auto self = weak.lock();
    if (!self) return false;  // the client is gone: drop the timer
    self->calls_.Sweep();
    return true;
  });
  return c;
}

RpcClient::~RpcClient() {
  if (conn_) conn_->Close();
}

void RpcClient::CallAsync(uint32_t prog, uint32_t vers, uint32_t proc, const Cred& cred,
                          const std::function<void(xdr::Encoder&)>& encode_args, Callback cb) {
  if (conn_->closed()) {
    cb(Status::Unavailable("connection closed"));
    return;
  }
  auto e = calls_.Prepare(prog, vers, proc, cred, encode_args, std::move(cb));
  conn_->Send(std::move(e));
  // A close that raced with Prepare has already failed everything pending, or will.
  if (conn_->closed()) calls_.FailAll(Status::Unavailable("connection closed"));
}

void RpcClient::SendRawRecord(const std::string& bytes, uint32_t xid, Callback cb) {
  auto e = std::make_unique<xdr::Encoder>();
  Connection::BeginRecord(*e);
  e->raw(bytes.data(), bytes.size());
  calls_.Expect(xid, std::move(cb));
  conn_->Send(std::move(e));
}

Result<Reply> RpcClient::CallSync(uint32_t prog, uint32_t vers, uint32_t proc, const Cred& cred,
                                  const std::function<void(xdr::Encoder&)>& encode_args) {
  auto p = std::make_shared<std::promise<Result<Reply>>>();
  auto f = p->get_future();
  CallAsync(prog, vers, proc, cred, encode_args, [p](Result<Reply> r) { p->set_value(std::move(r)); });
  return f.get();
}

void RpcClient::SetCallHandler(std::function<void(Record)> h) {
  std::lock_guard<std::mutex> g(call_mu_);
  on_call_ = std::move(h);
}

void RpcClient::Close() { conn_->Close(); }

BackChannel::BackChannel(std::shared_ptr<Connection> conn, int timeout_ms)
    : conn_(std::move(conn)), calls_(timeout_ms) {}

void BackChannel::CallAsync(uint32_t prog, uint32_t vers, uint32_t proc, const Cred& cred,
                            const std::function<void(xdr::Encoder&)>& encode_args,
                            ReplyCallback cb) {
  if (conn_->closed()) {
    cb(Status::Unavailable("back channel connection closed"));
    return;
  }
  conn_->Send(calls_.Prepare(prog, vers, proc, cred, encode_args, std::move(cb)));
}

}  // namespace loom::rpc
