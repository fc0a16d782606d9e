#include "nfs4/compound.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/log.h"
#include "nfs4/mds.h"
#include "nfs4/ops.def.h"

namespace loom::nfs4 {

void SetOpError(nfs_resop4& r, nfs_opnum4 op, nfsstat4 st) {
  r.resop = op;
  switch (op) {
#define LOOM_SET_ERR(OPNUM, ARM, RES, STATUS, ARGS) \
  case OPNUM:                                       \
    r.ARM = std::make_unique<RES>();                \
    r.ARM->STATUS = st;                             \
    return;
    LOOM_NFS4_OPS(LOOM_SET_ERR)
#undef LOOM_SET_ERR
    default:
      r.resop = OP_ILLEGAL;
      r.opillegal = std::make_unique<ILLEGAL4res>();
      r.opillegal->status = st;
  }
}

nfsstat4 OpStatus(const nfs_resop4& r) {
  switch (r.resop) {
#define LOOM_GET_ST(OPNUM, ARM, RES, STATUS, ARGS) \
  case OPNUM:                                      \
    return r.ARM ? r.ARM->STATUS : NFS4_OK;
    LOOM_NFS4_OPS(LOOM_GET_ST)
#undef LOOM_GET_ST
    default:
      return NFS4ERR_OP_ILLEGAL;
  }
}

const char* OpName(uint32_t op) {
  const char* n = nfs_opnum4_name(static_cast<int32_t>(op));
  return n ? n : "?";
}

uint32_t MaxReply(const OpDesc& d, const nfs_argop4& a) {
  // Data-carrying replies: the op number, status and fixed fields, then what was asked for.
  // Kept tight: clients size ca_maxresponsesize for exactly one full READ plus its compound.
  uint64_t n = d.max_reply;
  switch (a.argop) {
    case OP_READ: n = 16 + uint64_t{a.opread ? a.opread->count : 0}; break;
    case OP_READ_PLUS: n = 40 + uint64_t{a.opread_plus ? a.opread_plus->rpa_count : 0}; break;
    case OP_READDIR: n = 8 + uint64_t{a.opreaddir ? a.opreaddir->maxcount : 0}; break;
    case OP_LAYOUTGET:
      if (a.oplayoutget) n = 64 + std::min<uint64_t>(a.oplayoutget->loga_maxcount, 4096);
      break;
    default: break;
  }
  return static_cast<uint32_t>(std::min<uint64_t>(n, UINT32_MAX));
}

bool Cx::ResolveCurrentStateid(stateid4* s) const {
  static const std::array<uint8_t, NFS4_OTHER_SIZE> kZero{};
  if (s->seqid != 1 || s->other != kZero) return true;  // not the special current stateid
  if (!have_cur_stateid) return false;
  *s = cur_stateid;
  return true;
}

namespace {

// True for the operations that may run outside a session (§2.10.6.1 / §18.35-18.37, 18.50).
bool Sessionless(nfs_opnum4 op) {
  return op == OP_EXCHANGE_ID || op == OP_CREATE_SESSION || op == OP_DESTROY_SESSION ||
         op == OP_DESTROY_CLIENTID || op == OP_BIND_CONN_TO_SESSION;
}

// The RPC call header in front of the COMPOUND, as ca_maxrequestsize counts it (§18.36.3):
// six words, the credential and the verifier (AUTH_NONE with AUTH_SYS and AUTH_NONE).
size_t RpcCallHeaderBytes(const rpc::Cred& c) {
  size_t cred = 0;
  if (c.flavor == rpc::AUTH_SYS)  // stamp, machine name, uid, gid, gids
    cred = 4 + 4 + xdr::Decoder::Pad(c.machine.size()) + 4 + 4 + 4 + 4 * c.gids.size();
  return kRpcCallHeaderMin + cred;
}

void EncodeResult(xdr::Encoder& e, nfsstat4 status, const Bytes& tag,
                  const std::vector<nfs_resop4>& res) {
  e.i32(status);
  e.opaque(tag);
  e.u32(static_cast<uint32_t>(res.size()));
  for (const auto& r : res) xdr_encode(e, r);
}

}  // namespace

rpc::accept_stat RunCompound(Mds& mds, const rpc::CallContext& ctx, xdr::Decoder& d,
                             xdr::Encoder& e) {
  COMPOUND4args hdr;
  uint32_t nops;
  // §2.10.6.4: the whole request counts against ca_maxrequestsize, RPC header included.
  const size_t request_bytes = RpcCallHeaderBytes(ctx.cred) + d.remaining();
  // The header: tag, minor version, op count. A bad header is BADXDR with no results.
  if (!d.opaque(hdr.tag, NFS4_OPAQUE_LIMIT) || !d.u32(hdr.minorversion) ||
      !d.array_len(nops, 0xffffffffu)) {
    std::vector<nfs_resop4> none;
    EncodeResult(e, NFS4ERR_BADXDR, hdr.tag, none);
    ctx.op_status = NFS4ERR_BADXDR;
    return rpc::SUCCESS;
  }
  std::vector<nfs_resop4> results;
  nfsstat4 status = NFS4_OK;
  // §16.2.3: minor versions other than 1 and 2 get MINOR_VERS_MISMATCH and no results.
  if (hdr.minorversion != 1 && hdr.minorversion != 2) {
    EncodeResult(e, NFS4ERR_MINOR_VERS_MISMATCH, hdr.tag, results);
    ctx.op_status = NFS4ERR_MINOR_VERS_MISMATCH;
    return rpc::SUCCESS;
  }
  Cx cx(mds, ctx);
  cx.minor = hdr.minorversion;
  results.reserve(std::min<uint32_t>(nops, 64));
  bool replayed = false;
  std::shared_ptr<const std::string> replay;
  uint64_t reply_bound = 0;
  uint32_t max_response = 0, max_response_cached = 0;
  // One wait, at the end, for the pending commits that the ops' reads saw (kv.h): not one per
  // read-only transaction. An op that commits has waited for them already.
  meta::ReadWaitScope read_waits(mds.store());
  for (uint32_t i = 0; i < nops; i++) {
    const uint8_t* op_start = d.pos();
    xdr::Decoder peek(op_start, d.remaining());
    int32_t opnum_raw;
    if (!peek.i32(opnum_raw)) {
      results.emplace_back();
      SetOpError(results.back(), OP_ILLEGAL, NFS4ERR_BADXDR);
      status = NFS4ERR_BADXDR;
      break;
    }
    nfs_opnum4 op = static_cast<nfs_opnum4>(opnum_raw);
    const OpDesc* desc = mds.LookupOp(op);
    results.emplace_back();
    nfs_resop4& res = results.back();
    if (!desc) {
      SetOpError(res, OP_ILLEGAL, NFS4ERR_OP_ILLEGAL);  // §15.2: unknown op numbers
      status = NFS4ERR_OP_ILLEGAL;
      break;
    }
    if ((desc->flags & kMinor2) && cx.minor < 2) {
      SetOpError(res, OP_ILLEGAL, NFS4ERR_OP_ILLEGAL);
      status = NFS4ERR_OP_ILLEGAL;
      break;
    }
    nfs_argop4 arg;
    if (!xdr_decode(d, arg)) {
      SetOpError(res, op, NFS4ERR_BADXDR);
      status = NFS4ERR_BADXDR;
      break;
    }
    // Session rules (§2.10.6.x, §18.46.3).
    nfsstat4 pre = NFS4_OK;
    if (i == 0 && op != OP_SEQUENCE && !Sessionless(op)) {
      pre = NFS4ERR_OP_NOT_IN_SESSION;
    } else if (i > 0 && op == OP_SEQUENCE) {
      pre = NFS4ERR_SEQUENCE_POS;
    } else if (Sessionless(op) && !cx.in_session && nops > 1) {
      pre = NFS4ERR_NOT_ONLY_OP;
    } else if (op == OP_DESTROY_SESSION && cx.in_session && i + 1 < nops &&
               arg.opdestroy_session->dsa_sessionid == cx.sid) {
      // §18.37.3: destroying the session the COMPOUND runs in must be its last operation
      // (Linux nfsd answers NOT_ONLY_OP too); nothing would be left to run the rest in.
      pre = NFS4ERR_NOT_ONLY_OP;
    } else if (desc->flags & kV40Only) {
      pre = NFS4ERR_NOTSUPP;
    } else if ((desc->flags & kNeedCfh) && !cx.have_cfh) {
      pre = NFS4ERR_NOFILEHANDLE;
    } else if (!desc->fn && op != OP_SEQUENCE) {  // SEQUENCE is handled right here
      pre = NFS4ERR_NOTSUPP;
    }
    if (pre != NFS4_OK) {
      LOG_DEBUG("compound op %d (%s) refused: %s fn=%p flags=%x", op, OpName(op), nfsstat4_name(pre),
                (void*)desc->fn, desc->flags);
      SetOpError(res, op, pre);
      status = pre;
      break;
    }
    if (op == OP_SEQUENCE) {
      SequenceResult sr = mds.sessions().Sequence(*arg.opsequence, request_bytes, nops);
      res.resop = OP_SEQUENCE;
      res.opsequence = std::make_unique<SEQUENCE4res>();
      res.opsequence->sr_status = sr.status;
      if (sr.replay) {
        replay = sr.replay;
        replayed = true;
        break;
      }
      if (sr.status != NFS4_OK) {
        status = sr.status;
        break;
      }
      res.opsequence->sr_resok4 = sr.resok;
      cx.in_session = true;
      cx.sid = arg.opsequence->sa_sessionid;
      cx.slot = arg.opsequence->sa_slotid;
      cx.cachethis = arg.opsequence->sa_cachethis;
      cx.client = sr.client;
      max_response = sr.max_response;
      max_response_cached = sr.max_response_cached;
      // The RPC reply header (ca_maxresponsesize counts it, §18.36.3), the COMPOUND4res
      // header (status, tag, count) and the SEQUENCE result (44 bytes).
      reply_bound = kRpcReplyHeader + 12 + xdr::Decoder::Pad(hdr.tag.size) + 44;
      mds.OnSequence(cx, res.opsequence->sr_resok4);
      continue;
    }
    if (cx.in_session) {
      // §2.10.6.4: refuse an op whose reply could exceed what the session allows (or, when
      // the client wants the reply cached, what the slot may hold).
      reply_bound += MaxReply(*desc, arg);
      nfsstat4 big = NFS4_OK;
      if (reply_bound > max_response) big = NFS4ERR_REP_TOO_BIG;
      else if (cx.cachethis && reply_bound > max_response_cached) big = NFS4ERR_REP_TOO_BIG_TO_CACHE;
      if (big != NFS4_OK) {
        LOG_INFO("compound: %s would need %llu reply bytes; session allows %u (%u cached, "
                 "cachethis %d): %s", OpName(op), (unsigned long long)reply_bound, max_response,
                 max_response_cached, cx.cachethis ? 1 : 0, nfsstat4_name(big));
        SetOpError(res, op, big);
        status = big;
        break;
      }
    }
    const int64_t t0 = rpc::NowUs();
    status = desc->fn(cx, arg, res);
    mds.CountOp(op, static_cast<uint64_t>(rpc::NowUs() - t0), arg, res, status);
    if (status != NFS4_OK) break;
  }
  read_waits.End();  // before the reply is encoded, sent or cached
  if (replayed) {
    // §2.10.6.1.3: the retransmission gets the reply of the original request, byte for byte.
    e.raw(replay->data(), replay->size());
    return rpc::SUCCESS;
  }
  ctx.op_status = status;
  if (!cx.in_session) {
    EncodeResult(e, status, hdr.tag, results);
    return rpc::SUCCESS;
  }
  // In a session: the reply goes to the slot's cache when the client asked (sa_cachethis);
  // otherwise a retransmission gets NFS4ERR_RETRY_UNCACHED_REP.
  std::shared_ptr<const std::string> cached;
  bool cache = cx.cachethis;
  if (cache) {
    xdr::Encoder body;
    EncodeResult(body, status, hdr.tag, results);
    cached = std::make_shared<const std::string>(body.Flatten());
    e.raw(cached->data(), cached->size());
  } else {
    EncodeResult(e, status, hdr.tag, results);
  }
  mds.sessions().Complete(cx.sid, cx.slot, std::move(cached), cache);
  return rpc::SUCCESS;
}

}  // namespace loom::nfs4
