#include "rpc/call_table.h"

#include <random>
#include <vector>

#include "rpc/connection.h"
#include "rpc/event_loop.h"
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

CallTable::CallTable(int timeout_ms) : timeout_ms_(timeout_ms) {
  std::random_device rd;
  next_xid_.store(rd());
}

std::unique_ptr<xdr::Encoder> CallTable::Prepare(
    uint32_t prog, uint32_t vers, uint32_t proc, const Cred& cred,
    const std::function<void(xdr::Encoder&)>& encode_args, ReplyCallback cb) {
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
  Expect(xid, std::move(cb));
  return e;
}

void CallTable::Expect(uint32_t xid, ReplyCallback cb) {
  std::lock_guard<std::mutex> l(mu_);
  pending_[xid] = Pending{std::move(cb), NowMs() + timeout_ms_};
}

void CallTable::OnReply(Record r) {
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

void CallTable::Fail(uint32_t xid, Status s) {
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

void CallTable::FailAll(Status s) {
  std::unordered_map<uint32_t, Pending> all;
  {
    std::lock_guard<std::mutex> l(mu_);
    all.swap(pending_);
  }
  for (auto& [xid, p] : all) p.cb(s);
}

void CallTable::Sweep() {
  int64_t now = NowMs();
  std::vector<uint32_t> expired;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (auto& [xid, p] : pending_)
      if (p.deadline_ms <= now) expired.push_back(xid);
  }
  for (uint32_t x : expired) Fail(x, Status::Timeout("RPC call timed out"));
}

size_t CallTable::pending() const {
  std::lock_guard<std::mutex> l(mu_);
  return pending_.size();
}

}  // namespace loom::rpc
