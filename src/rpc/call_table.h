// Outstanding calls of one RPC caller: builds call messages, matches replies to callbacks by
// xid (replies may arrive in any order), fails calls on timeout or connection loss. Shared by
// RpcClient (calls over a connection we opened) and BackChannel (calls a server makes over a
// connection its client opened, e.g. NFSv4.1 CB_COMPOUND, RFC 8881 §2.10.3.1). Thread-safe.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "common/status.h"
#include "rpc/auth.h"
#include "rpc/record.h"
#include "xdr/xdr.h"

namespace loom::rpc {

// A successful reply: the record plus where the procedure's results start.
struct Reply {
  Record rec;
  size_t results_off = 0;
  xdr::Decoder results() const {
    return xdr::Decoder(rec.buf->data() + results_off, rec.size - results_off, rec.buf);
  }
};
using ReplyCallback = std::function<void(Result<Reply>)>;

class CallTable {
 public:
  explicit CallTable(int timeout_ms);

  // Encodes a call (record mark reserved first) and registers `cb` for its reply.
  std::unique_ptr<xdr::Encoder> Prepare(uint32_t prog, uint32_t vers, uint32_t proc,
                                        const Cred& cred,
                                        const std::function<void(xdr::Encoder&)>& encode_args,
                                        ReplyCallback cb);
  // Registers `cb` for a caller-built message with the given xid.
  void Expect(uint32_t xid, ReplyCallback cb);
  // A reply record arrived: runs its callback (or drops a late/unknown reply).
  void OnReply(Record r);
  void Fail(uint32_t xid, Status s);
  void FailAll(Status s);
  // Fails calls whose deadline passed.
  void Sweep();
  size_t pending() const;

 private:
  struct Pending {
    ReplyCallback cb;
    int64_t deadline_ms;
  };
  const int timeout_ms_;
  mutable std::mutex mu_;
  std::unordered_map<uint32_t, Pending> pending_;
  std::atomic<uint32_t> next_xid_;
};

// Decodes an RPC reply header (RFC 5531 §9). On SUCCESS returns the offset of the results.
Result<size_t> ParseReplyHeader(const uint8_t* p, size_t n, uint32_t* xid);

}  // namespace loom::rpc
