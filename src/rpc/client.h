// ONC RPC client over one TCP connection: many calls in flight, replies matched by xid in any
// order, per-call timeouts. The metadata server (as an NFSv3 client of the data servers), the
// native client and the test tools all use it.
#pragma once

#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>

#include "common/status.h"
#include "rpc/auth.h"
#include "rpc/call_table.h"
#include "rpc/connection.h"
#include "rpc/event_loop.h"

namespace loom::rpc {

class RpcClient : public std::enable_shared_from_this<RpcClient> {
 public:
  struct Options {
    int timeout_ms = 30000;
    int connect_timeout_ms = 5000;
    Connection::Options conn;
  };
  using Reply = rpc::Reply;
  using Callback = ReplyCallback;

  // Connects to "host:port". `loop` must be running (or be started soon); callbacks run on it.
  static Result<std::shared_ptr<RpcClient>> Connect(EventLoop* loop, const std::string& addr,
                                                    Options opts);
  static Result<std::shared_ptr<RpcClient>> Connect(EventLoop* loop, const std::string& addr) {
    return Connect(loop, addr, Options());
  }
  ~RpcClient();

  // Thread-safe. `encode_args` appends the procedure's arguments. The callback runs exactly
  // once: with the reply, or with an error (RPC-level rejection, timeout, connection loss).
  void CallAsync(uint32_t prog, uint32_t vers, uint32_t proc, const Cred& cred,
                 const std::function<void(xdr::Encoder&)>& encode_args, Callback cb);

  // Synchronous wrapper: encode `args`, wait, decode `res`.
  template <typename Args, typename Res>
  Status Call(uint32_t prog, uint32_t vers, uint32_t proc, const Args& args, Res* res,
              const Cred& cred = Cred()) {
    Result<Reply> r = CallSync(prog, vers, proc, cred,
                               [&](xdr::Encoder& e) { xdr_encode(e, args); });
    if (!r.ok()) return r.status();
    xdr::Decoder d = r->results();
    if (!xdr_decode(d, *res)) return Status::Invalid("undecodable results");
    return Status::Ok();
  }
  Result<Reply> CallSync(uint32_t prog, uint32_t vers, uint32_t proc, const Cred& cred,
                         const std::function<void(xdr::Encoder&)>& encode_args);

  // Sends raw bytes as one record (for protocol tests); the reply, if any, is matched by the
  // xid given.
  void SendRawRecord(const std::string& bytes, uint32_t xid, Callback cb);

  // Calls the peer makes to us over this connection (an NFSv4.1 back channel, RFC 8881
  // §2.10.3.1: the server's CB_COMPOUNDs share the fore channel's connection). `h` runs on the
  // loop thread with each CALL record; without a handler such records are dropped. Answers go
  // out with SendMessage. Thread-safe.
  void SetCallHandler(std::function<void(Record)> h);
  // Sends a caller-built message (record mark reserved by Connection::BeginRecord), e.g. the
  // reply to a call from the peer.
  void SendMessage(std::unique_ptr<xdr::Encoder> msg) { conn_->Send(std::move(msg)); }

  void Close();
  bool closed() const { return conn_->closed(); }

 private:
  explicit RpcClient(Options opts) : opts_(opts), calls_(opts.timeout_ms) {}

  Options opts_;
  CallTable calls_;
  std::shared_ptr<Connection> conn_;
  std::mutex call_mu_;
  std::function<void(Record)> on_call_;  // guarded by call_mu_
};

// Calls from a server to a client over a connection the client opened (the NFSv4.1 back
// channel). Replies are routed here by RpcServer. Thread-safe.
class BackChannel {
 public:
  BackChannel(std::shared_ptr<Connection> conn, int timeout_ms);
  void CallAsync(uint32_t prog, uint32_t vers, uint32_t proc, const Cred& cred,
                 const std::function<void(xdr::Encoder&)>& encode_args, ReplyCallback cb);
  void OnReply(Record r) { calls_.OnReply(std::move(r)); }
  void FailAll(Status s) { calls_.FailAll(std::move(s)); }
  void Sweep() { calls_.Sweep(); }
  bool usable() const { return !conn_->closed(); }
  Connection* connection() const { return conn_.get(); }

 private:
  std::shared_ptr<Connection> conn_;
  CallTable calls_;
};

}  // namespace loom::rpc
