// ONC RPC client over one TCP connection: many calls in flight, replies matched by xid in any
// order, per-call timeouts. The metadata server (as an NFSv3 client of the data servers), the
// native client and the test tools all use it.
#pragma once

#include <atomic>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "common/status.h"
#include "rpc/auth.h"
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
  // A successful reply: the record plus where the procedure's results start.
  struct Reply {
    Record rec;
    size_t results_off = 0;
    xdr::Decoder results() const {
      return xdr::Decoder(rec.buf->data() + results_off, rec.size - results_off, rec.buf);
    }
  };
  using Callback = std::function<void(Result<Reply>)>;

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
  // xid found in its first word.
  void SendRawRecord(const std::string& bytes, uint32_t xid, Callback cb);

  void Close();
  bool closed() const { return conn_->closed(); }

 private:
  struct Pending {
    Callback cb;
    int64_t deadline_ms;
  };
  RpcClient(Options opts) : opts_(opts) {}
  void OnRecord(Record r);
  void OnClose();
  void Sweep();
  void Fail(uint32_t xid, Status s);

  Options opts_;
  std::shared_ptr<Connection> conn_;
  std::mutex mu_;
  std::unordered_map<uint32_t, Pending> pending_;
  std::atomic<uint32_t> next_xid_;
};

// Decodes an RPC reply header (RFC 5531 §9). On SUCCESS returns the offset of the results.
Result<size_t> ParseReplyHeader(const uint8_t* p, size_t n, uint32_t* xid);

}  // namespace loom::rpc
