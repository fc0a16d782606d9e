#include "nfs4/compound.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "common/log.h"
#include "meta/kv.h"
#include "nfs4/mds.h"
#include "nfs4/ops.def.h"
#include "rpc/event_loop.h"

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

// The operations that change only the namespace and run on the event loop whatever their
// arguments, so already finish with their log sync owed there: on a worker they may too
// (meta::OweScope). Not OPEN, CLOSE, SETATTR, LAYOUT*: some of their forms act outside the
// store (data servers, the last close of an unlinked file) after a commit.
bool OwesOnWorker(nfs_opnum4 op) {
  return op == OP_REMOVE || op == OP_RENAME || op == OP_LINK || op == OP_CREATE;
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

namespace {

// One COMPOUND between its header and its reply; kept across the move from the event loop to
// a worker (CallContext::resume).
struct CompoundRun {
  CompoundRun(Mds& m, const rpc::CallContext& c) : cx(m, c) {}
  Cx cx;
  COMPOUND4args hdr;
  uint32_t nops = 0;
  size_t request_bytes = 0;
  std::vector<nfs_resop4> results;
  nfsstat4 status = NFS4_OK;
  uint32_t next = 0;         // the next operation to run
  size_t next_at = 0;        // where its bytes start, from the start of the arguments
  bool replayed = false;
  std::shared_ptr<const std::string> replay;
  uint64_t reply_bound = 0;
  uint32_t max_response = 0, max_response_cached = 0;
  // The store's durability ticket for what the operations on the loop wrote or read
  // (meta::NoBlockScope::owed): the reply waits for it.
  uint64_t owed = 0;
  bool finishing = false;  // every operation ran; only the reply is left
};

enum class Ran { kDone, kDefer };

// Runs operations from run.next on, `d` at their bytes (`args` is where the arguments start).
Ran RunOps(Mds& mds, CompoundRun& run, const uint8_t* args, xdr::Decoder& d) {
  Cx& cx = run.cx;
  std::vector<nfs_resop4>& results = run.results;
  nfsstat4& status = run.status;
  for (uint32_t i = run.next; i < run.nops; i++) {
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
    // On the loop, an operation that may wait goes to a worker before anything of it runs,
    // even its checks (so the worker's run is the only one). Refusals come from the worker.
    if (cx.on_loop && (!desc || !(desc->flags & kOnLoop))) {
      LOG_DEBUG("compound: %s may wait; it and the rest go to a worker", OpName(op));
      run.next = i;
      run.next_at = static_cast<size_t>(op_start - args);
      return Ran::kDefer;
    }
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
    } else if (Sessionless(op) && !cx.in_session && run.nops > 1) {
      pre = NFS4ERR_NOT_ONLY_OP;
    } else if (op == OP_DESTROY_SESSION && cx.in_session && i + 1 < run.nops &&
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
      SequenceResult sr = mds.sessions().Sequence(*arg.opsequence, run.request_bytes, run.nops);
      res.resop = OP_SEQUENCE;
      res.opsequence = std::make_unique<SEQUENCE4res>();
      res.opsequence->sr_status = sr.status;
      if (sr.replay) {
        run.replay = sr.replay;
        run.replayed = true;
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
      run.max_response = sr.max_response;
      run.max_response_cached = sr.max_response_cached;
      // The RPC reply header (ca_maxresponsesize counts it, §18.36.3), the COMPOUND4res
      // header (status, tag, count) and the SEQUENCE result (44 bytes).
      run.reply_bound = kRpcReplyHeader + 12 + xdr::Decoder::Pad(run.hdr.tag.size) + 44;
      mds.OnSequence(cx, res.opsequence->sr_resok4);
      continue;
    }
    uint64_t bound_before = run.reply_bound;
    if (cx.in_session) {
      // §2.10.6.4: refuse an op whose reply could exceed what the session allows (or, when
      // the client wants the reply cached, what the slot may hold).
      run.reply_bound += MaxReply(*desc, arg);
      nfsstat4 big = NFS4_OK;
      if (run.reply_bound > run.max_response) big = NFS4ERR_REP_TOO_BIG;
      else if (cx.cachethis && run.reply_bound > run.max_response_cached)
        big = NFS4ERR_REP_TOO_BIG_TO_CACHE;
      if (big != NFS4_OK) {
        LOG_INFO("compound: %s would need %llu reply bytes; session allows %u (%u cached, "
                 "cachethis %d): %s", OpName(op), (unsigned long long)run.reply_bound,
                 run.max_response, run.max_response_cached, cx.cachethis ? 1 : 0,
                 nfsstat4_name(big));
        SetOpError(res, op, big);
        status = big;
        break;
      }
    }
    const int64_t t0 = rpc::NowUs();
    {
      // On a worker holding its reply (meta::OweScope), only the operations that also run
      // on the loop, where commits never wait, leave their log sync owed; every other one
      // keeps commits durable when they return, as it may act outside the store after one.
      std::optional<meta::OweScope::Suspend> durable_on_return;
      if (!cx.on_loop && meta::OweScope::Active() && !OwesOnWorker(op)) durable_on_return.emplace();
      status = desc->fn(cx, arg, res);
    }
    if (status == kOpWouldBlock) {
      if (cx.on_loop) {
        LOG_DEBUG("compound: %s would wait; the rest goes to a worker", OpName(op));
        // It changed nothing: the worker runs it again from its first byte.
        results.pop_back();
        run.reply_bound = bound_before;
        run.status = NFS4_OK;
        run.next = i;
        run.next_at = static_cast<size_t>(op_start - args);
        return Ran::kDefer;
      }
      LOG_ERROR("compound: %s said it would block on a worker", OpName(op));
      SetOpError(res, op, NFS4ERR_SERVERFAULT);
      status = NFS4ERR_SERVERFAULT;
    }
    mds.CountOp(op, static_cast<uint64_t>(rpc::NowUs() - t0), arg, res, status);
    if (status != NFS4_OK) break;
  }
  return Ran::kDone;
}

// The reply of a COMPOUND whose operations have all run (or stopped at an error).
rpc::accept_stat Finish(Mds& mds, CompoundRun& run, const rpc::CallContext& ctx,
                        xdr::Encoder& e) {
  Cx& cx = run.cx;
  if (run.replayed) {
    // §2.10.6.1.3: the retransmission gets the reply of the original request, byte for byte.
    e.raw(run.replay->data(), run.replay->size());
    return rpc::SUCCESS;
  }
  ctx.op_status = run.status;
  if (!cx.in_session) {
    EncodeResult(e, run.status, run.hdr.tag, run.results);
    return rpc::SUCCESS;
  }
  // In a session: the reply goes to the slot's cache when the client asked (sa_cachethis);
  // otherwise a retransmission gets NFS4ERR_RETRY_UNCACHED_REP.
  std::shared_ptr<const std::string> cached;
  bool cache = cx.cachethis;
  if (cache) {
    xdr::Encoder body;
    EncodeResult(body, run.status, run.hdr.tag, run.results);
    cached = std::make_shared<const std::string>(body.Flatten());
    e.raw(cached->data(), cached->size());
  } else {
    EncodeResult(e, run.status, run.hdr.tag, run.results);
  }
  mds.sessions().Complete(cx.sid, cx.slot, std::move(cached), cache);
  return rpc::SUCCESS;
}

}  // namespace

rpc::accept_stat RunCompound(Mds& mds, const rpc::CallContext& ctx, xdr::Decoder& d,
                             xdr::Encoder& e, bool on_loop) {
  const uint8_t* args = d.pos();
  std::shared_ptr<CompoundRun> run;
  if (ctx.resume) {
    // The event loop ran this COMPOUND up to an operation that had to wait: go on from it.
    run = std::static_pointer_cast<CompoundRun>(ctx.resume);
    ctx.resume.reset();
    run->cx.rpc = &ctx;
    run->cx.on_loop = false;
    // Its gate opened (what it changed is durable): only the reply is left.
    if (run->finishing) return Finish(mds, *run, ctx, e);
    if (!d.skip(run->next_at)) return rpc::SYSTEM_ERR;  // the same bytes: cannot happen
  } else {
    run = std::make_shared<CompoundRun>(mds, ctx);
    COMPOUND4args& hdr = run->hdr;
    // §2.10.6.4: the whole request counts against ca_maxrequestsize, RPC header included.
    run->request_bytes = RpcCallHeaderBytes(ctx.cred) + d.remaining();
    // The header: tag, minor version, op count. A bad header is BADXDR with no results.
    if (!d.opaque(hdr.tag, NFS4_OPAQUE_LIMIT) || !d.u32(hdr.minorversion) ||
        !d.array_len(run->nops, 0xffffffffu)) {
      std::vector<nfs_resop4> none;
      EncodeResult(e, NFS4ERR_BADXDR, hdr.tag, none);
      ctx.op_status = NFS4ERR_BADXDR;
      return rpc::SUCCESS;
    }
    // §16.2.3: minor versions other than 1 and 2 get MINOR_VERS_MISMATCH and no results.
    if (hdr.minorversion != 1 && hdr.minorversion != 2) {
      EncodeResult(e, NFS4ERR_MINOR_VERS_MISMATCH, hdr.tag, run->results);
      ctx.op_status = NFS4ERR_MINOR_VERS_MISMATCH;
      return rpc::SUCCESS;
    }
    run->cx.minor = hdr.minorversion;
    run->cx.on_loop = on_loop;
    run->results.reserve(std::min<uint32_t>(run->nops, 64));
  }
  Ran ran;
  {
    // One wait, at the end, for the pending commits that the ops' reads saw (kv.h): not one
    // per read-only transaction. An op that commits has waited for them already. On the loop
    // the store refuses such reads instead (NoBlockScope), so there is nothing to wait for.
    // On a worker that may hold its reply, the changes' log sync and the read waits are
    // owed too, and the reply waits for them on the store's syncer (below) instead of this
    // thread blocking for its own sync.
    std::optional<meta::OweScope> owe;
    if (!on_loop && ctx.reply_later_ok) owe.emplace();
    meta::ReadWaitScope read_waits(mds.store());
    std::optional<meta::NoBlockScope> no_block;
    if (on_loop) no_block.emplace();
    ran = RunOps(mds, *run, args, d);
    if (no_block) run->owed = std::max(run->owed, no_block->owed());
    read_waits.End();  // before the reply is encoded, sent or cached
    if (owe) run->owed = std::max(run->owed, owe->owed());
  }
  if (ran == Ran::kDefer) {
    ctx.resume = std::move(run);
    return rpc::kDeferToWorker;
  }
  if (run->owed != 0) {
    if (on_loop || ctx.reply_later_ok) {
      // Run to completion for changes: the loop does not wait for the log sync. The reply
      // (and the slot's completion, so a retransmission meanwhile gets NFS4ERR_DELAY) waits
      // for it; one sync covers every change that reached the log meanwhile.
      run->finishing = true;
      meta::KvStore* store = &mds.store();
      const uint64_t ticket = run->owed;
      ctx.resume = std::move(run);
      ctx.gate = [store, ticket](std::function<void()> go) {
        // On the loop, with nothing else to sync for, the loop syncs itself once it has
        // handled the requests in hand (KvStore::WhenDurableSyncLater), instead of waking
        // the store's syncer for one commit.
        rpc::EventLoop* loop = rpc::EventLoop::Current();
        if (loop == nullptr) {
          store->WhenDurable(ticket, std::move(go));
        } else if (store->WhenDurableSyncLater(ticket, std::move(go))) {
          loop->AfterEvents([store] { store->SyncOwed(); });
        }
      };
      return rpc::kReplyLater;
    }
    // A worker went on from the loop's operations: their changes before the reply.
    mds.store().WaitUntilDurable(run->owed);
  }
  return Finish(mds, *run, ctx, e);
}

}  // namespace loom::nfs4
