#include "client/callback.h"

#include <cstring>

#include "rpc/connection.h"
#include "xdr/rpc.h"

namespace loom::client::internal {

namespace {

constexpr uint32_t kCbNull = 0, kCbCompound = 1, kCbVersion = 1;

// RFC 5531 §9: an accepted reply's header, up to and including accept_stat.
std::unique_ptr<xdr::Encoder> ReplyHeader(uint32_t xid, int32_t accept_stat) {
  auto e = std::make_unique<xdr::Encoder>();
  rpc::Connection::BeginRecord(*e);
  e->u32(xid);
  e->i32(rpc::REPLY);
  e->i32(rpc::MSG_ACCEPTED);
  e->i32(rpc::AUTH_NONE);  // verifier
  e->u32(0);
  e->i32(accept_stat);
  return e;
}

nfs_cb_resop4 StatusRes(nfs_cb_opnum4 op, nfsstat4 st) {
  nfs_cb_resop4 r;
  r.resop = op;
  switch (op) {
    case OP_CB_LAYOUTRECALL:
      r.opcblayoutrecall = std::make_unique<CB_LAYOUTRECALL4res>();
      r.opcblayoutrecall->clorr_status = st;
      break;
    case OP_CB_RECALL_ANY:
      r.opcbrecall_any = std::make_unique<CB_RECALL_ANY4res>();
      r.opcbrecall_any->crar_status = st;
      break;
    case OP_CB_NOTIFY_DEVICEID:
      r.opcbnotify_deviceid = std::make_unique<CB_NOTIFY_DEVICEID4res>();
      r.opcbnotify_deviceid->cndr_status = st;
      break;
    case OP_CB_RECALL:
      r.opcbrecall = std::make_unique<CB_RECALL4res>();
      r.opcbrecall->status = st;
      break;
    case OP_CB_SEQUENCE:
      r.opcbsequence = std::make_unique<CB_SEQUENCE4res>();
      r.opcbsequence->csr_status = st;
      break;
    case OP_CB_GETATTR:
      r.opcbgetattr = std::make_unique<CB_GETATTR4res>();
      r.opcbgetattr->status = st;
      break;
    case OP_CB_NOTIFY:
      r.opcbnotify = std::make_unique<CB_NOTIFY4res>();
      r.opcbnotify->cnr_status = st;
      break;
    case OP_CB_PUSH_DELEG:
      r.opcbpush_deleg = std::make_unique<CB_PUSH_DELEG4res>();
      r.opcbpush_deleg->cpdr_status = st;
      break;
    case OP_CB_RECALLABLE_OBJ_AVAIL:
      r.opcbrecallable_obj_avail = std::make_unique<CB_RECALLABLE_OBJ_AVAIL4res>();
      r.opcbrecallable_obj_avail->croa_status = st;
      break;
    case OP_CB_RECALL_SLOT:
      r.opcbrecall_slot = std::make_unique<CB_RECALL_SLOT4res>();
      r.opcbrecall_slot->rsr_status = st;
      break;
    case OP_CB_WANTS_CANCELLED:
      r.opcbwants_cancelled = std::make_unique<CB_WANTS_CANCELLED4res>();
      r.opcbwants_cancelled->cwcr_status = st;
      break;
    case OP_CB_NOTIFY_LOCK:
      r.opcbnotify_lock = std::make_unique<CB_NOTIFY_LOCK4res>();
      r.opcbnotify_lock->cnlr_status = st;
      break;
    case OP_CB_OFFLOAD:
      r.opcboffload = std::make_unique<CB_OFFLOAD4res>();
      r.opcboffload->cor_status = st;
      break;
    default:
      r.resop = OP_CB_ILLEGAL;
      r.opcbillegal = std::make_unique<CB_ILLEGAL4res>();
      r.opcbillegal->status = st;
      break;
  }
  return r;
}

std::string Encode(const CB_COMPOUND4res& res) {
  xdr::Encoder e;
  xdr_encode(e, res);
  return e.Flatten();
}

}  // namespace

void CallbackService::SetHandler(OpHandler h) {
  std::lock_guard<std::mutex> g(mu_);
  handler_ = std::move(h);
}

void CallbackService::Reset(const sessionid4& sid, uint32_t minor, uint32_t slots) {
  std::lock_guard<std::mutex> g(mu_);
  sid_ = sid;
  minor_ = minor;
  // §20.9.3 / §2.10.6.1: a new session's slots start at seqid 0 (the first call uses 1).
  slots_.assign(std::max<uint32_t>(1, std::min<uint32_t>(slots, 64)), Slot{});
  have_session_ = true;
}

uint64_t CallbackService::answered() const {
  std::lock_guard<std::mutex> g(mu_);
  return answered_;
}

std::unique_ptr<xdr::Encoder> CallbackService::OnCall(const rpc::Record& r) {
  xdr::Decoder d(r.buf->data(), r.size, r.buf);
  uint32_t xid = 0;
  int32_t mtype = 0;
  rpc::call_body body;
  if (!d.u32(xid) || !d.i32(mtype) || mtype != rpc::CALL) return nullptr;
  if (!xdr_decode(d, body)) return ReplyHeader(xid, rpc::GARBAGE_ARGS);
  if (body.rpcvers != 2) {
    auto e = std::make_unique<xdr::Encoder>();
    rpc::Connection::BeginRecord(*e);
    e->u32(xid);
    e->i32(rpc::REPLY);
    e->i32(rpc::MSG_DENIED);
    e->i32(rpc::RPC_MISMATCH);
    e->u32(2);
    e->u32(2);
    return e;
  }
  if (body.prog != kProgram) return ReplyHeader(xid, rpc::PROG_UNAVAIL);
  if (body.vers != kCbVersion) {
    auto e = ReplyHeader(xid, rpc::PROG_MISMATCH);
    e->u32(kCbVersion);
    e->u32(kCbVersion);
    return e;
  }
  if (body.proc == kCbNull) {
    std::lock_guard<std::mutex> g(mu_);
    answered_++;
    return ReplyHeader(xid, rpc::SUCCESS);
  }
  if (body.proc != kCbCompound) return ReplyHeader(xid, rpc::PROC_UNAVAIL);
  // loom-mds sends CB_COMPOUND with AUTH_SYS (the callback security CREATE_SESSION offers);
  // AUTH_NONE is taken too: the connection is the one this client opened to its server.
  if (body.cred.flavor != rpc::AUTH_SYS && body.cred.flavor != rpc::AUTH_NONE) {
    auto e = std::make_unique<xdr::Encoder>();
    rpc::Connection::BeginRecord(*e);
    e->u32(xid);
    e->i32(rpc::REPLY);
    e->i32(rpc::MSG_DENIED);
    e->i32(rpc::AUTH_ERROR);
    e->i32(rpc::AUTH_BADCRED);
    return e;
  }
  std::string res = Compound(d);
  auto e = ReplyHeader(xid, rpc::SUCCESS);
  e->raw(res.data(), res.size());
  std::lock_guard<std::mutex> g(mu_);
  answered_++;
  return e;
}

std::string CallbackService::Compound(xdr::Decoder& d) {
  CB_COMPOUND4res res;
  Bytes tag;
  uint32_t minor = 0, ident = 0, n = 0;
  if (!d.opaque(tag, 1024) || !d.u32(minor) || !d.u32(ident) || !d.u32(n)) {
    res.status = NFS4ERR_BADXDR;
    return Encode(res);
  }
  res.tag = Bytes::Copy(tag.data, tag.size);
  {
    std::lock_guard<std::mutex> g(mu_);
    // §18.36.3: callbacks use the session's minor version.
    if (!have_session_ || minor != minor_) {
      res.status = NFS4ERR_MINOR_VERS_MISMATCH;
      return Encode(res);
    }
  }
  uint32_t slot = UINT32_MAX;
  for (uint32_t i = 0; i < n; i++) {
    // Peek the op number: one outside the callback range cannot be decoded as an argument.
    xdr::Decoder peek = d;
    uint32_t opnum = 0;
    if (!peek.u32(opnum)) {
      res.status = NFS4ERR_BADXDR;
      break;
    }
    if (opnum < OP_CB_GETATTR || opnum > OP_CB_OFFLOAD) {
      res.resarray.push_back(StatusRes(OP_CB_ILLEGAL, NFS4ERR_OP_ILLEGAL));
      res.status = NFS4ERR_OP_ILLEGAL;
      break;
    }
    nfs_cb_argop4 op;
    if (!xdr_decode(d, op)) {
      res.resarray.push_back(StatusRes(static_cast<nfs_cb_opnum4>(opnum), NFS4ERR_BADXDR));
      res.status = NFS4ERR_BADXDR;
      break;
    }
    nfsstat4 st = NFS4_OK;
    if (op.argop == OP_CB_SEQUENCE) {
      // §20.9.3: first, and only first.
      if (i != 0) {
        st = NFS4ERR_SEQUENCE_POS;
        res.resarray.push_back(StatusRes(OP_CB_SEQUENCE, st));
        res.status = st;
        break;
      }
      const CB_SEQUENCE4args& sa = *op.opcbsequence;
      std::lock_guard<std::mutex> g(mu_);
      if (std::memcmp(sa.csa_sessionid.data(), sid_.data(), sid_.size()) != 0) {
        st = NFS4ERR_BADSESSION;
      } else if (sa.csa_slotid >= slots_.size()) {
        st = NFS4ERR_BADSLOT;
      } else if (sa.csa_sequenceid == slots_[sa.csa_slotid].seqid && sa.csa_sequenceid != 0) {
        // A retransmission: the reply the first one got (§2.10.6.1.3).
        if (!slots_[sa.csa_slotid].reply.empty()) return slots_[sa.csa_slotid].reply;
        st = NFS4ERR_RETRY_UNCACHED_REP;
      } else if (sa.csa_sequenceid != slots_[sa.csa_slotid].seqid + 1) {
        st = NFS4ERR_SEQ_MISORDERED;
      }
      if (st != NFS4_OK) {
        res.resarray.push_back(StatusRes(OP_CB_SEQUENCE, st));
        res.status = st;
        break;
      }
      slot = sa.csa_slotid;
      slots_[slot].seqid = sa.csa_sequenceid;
      slots_[slot].reply.clear();
      nfs_cb_resop4 sr;
      sr.resop = OP_CB_SEQUENCE;
      sr.opcbsequence = std::make_unique<CB_SEQUENCE4res>();
      sr.opcbsequence->csr_status = NFS4_OK;
      auto& ok = sr.opcbsequence->csr_resok4;
      ok.csr_sessionid = sa.csa_sessionid;
      ok.csr_sequenceid = sa.csa_sequenceid;
      ok.csr_slotid = sa.csa_slotid;
      ok.csr_highest_slotid = static_cast<uint32_t>(slots_.size() - 1);
      ok.csr_target_highest_slotid = static_cast<uint32_t>(slots_.size() - 1);
      res.resarray.push_back(std::move(sr));
      continue;
    }
    if (i == 0) {
      // §20.9.3: a CB_COMPOUND of NFSv4.1 starts with CB_SEQUENCE.
      st = NFS4ERR_OP_NOT_IN_SESSION;
    } else {
      OpHandler h;
      {
        std::lock_guard<std::mutex> g(mu_);
        h = handler_;
      }
      st = h ? h(op) : NFS4ERR_NOTSUPP;
    }
    res.resarray.push_back(StatusRes(op.argop, st));
    if (st != NFS4_OK) {
      res.status = st;
      break;
    }
  }
  std::string out = Encode(res);
  if (slot != UINT32_MAX) {
    std::lock_guard<std::mutex> g(mu_);
    if (slot < slots_.size()) slots_[slot].reply = out;
  }
  return out;
}

}  // namespace loom::client::internal
