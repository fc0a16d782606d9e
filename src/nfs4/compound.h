// COMPOUND processing (RFC 8881 §15.2, §16.2, §2.10.6): decodes the operations one at a time,
// runs each through the op table, stops at the first error, and applies the session rules
// (SEQUENCE first, session-less operations alone, the slot's reply cache for retransmissions).
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "nfs4/fh.h"
#include "nfs4/sessions.h"
#include "rpc/server.h"
#include "xdr/nfs4.h"

namespace loom::nfs4 {

class Mds;

// What an operation returns when, run on the event loop (Cx::on_loop), it would have to wait
// (disk, a lock, a log sync, a data server). Not an RFC 8881 nfsstat4 and never on the wire:
// the operation must have changed nothing, and the COMPOUND goes on from it on a worker.
inline constexpr nfsstat4 kOpWouldBlock = static_cast<nfsstat4>(0x7ffffffe);

// The state of one COMPOUND as its operations run.
struct Cx {
  Cx(Mds& m, const rpc::CallContext& c) : mds(m), rpc(&c) {}
  Mds& mds;
  const rpc::CallContext* rpc;  // re-pointed when a COMPOUND moves from the loop to a worker
  // Running on the event-loop thread (run to completion): the store refuses to wait
  // (meta::NoBlockScope) and an operation that would wait returns kOpWouldBlock.
  bool on_loop = false;
  uint32_t minor = 1;
  // Current and saved filehandle (§16.2.3.1.1), as handle and as the client's bytes.
  bool have_cfh = false, have_sfh = false;
  MdsHandle cfh, sfh;
  std::string cfh_wire, sfh_wire;
  // Current and saved stateid (§16.2.3.1.2).
  bool have_cur_stateid = false, have_saved_stateid = false;
  stateid4 cur_stateid{}, saved_stateid{};
  // The session this compound runs in (after SEQUENCE).
  bool in_session = false;
  SessionId sid{};
  slotid4 slot = 0;
  bool cachethis = false;
  clientid4 client = 0;

  void SetCfh(const MdsHandle& h, std::string wire) {
    cfh = h;
    cfh_wire = std::move(wire);
    have_cfh = true;
    have_cur_stateid = false;  // a new current filehandle clears the current stateid
  }
  // The special "current stateid" (seqid 1, other all zero) names cur_stateid (§16.2.3.1.2).
  bool ResolveCurrentStateid(stateid4* s) const;
  void SetCurrentStateid(const stateid4& s) {
    cur_stateid = s;
    have_cur_stateid = true;
  }
};

using OpHandler = nfsstat4 (*)(Cx& cx, const nfs_argop4& a, nfs_resop4& r);

enum OpFlags : uint32_t {
  kNeedCfh = 1u << 0,      // NFS4ERR_NOFILEHANDLE without a current filehandle
  kSessionless = 1u << 1,  // may be the sole op of a compound without SEQUENCE
  kMinor2 = 1u << 2,       // NFSv4.2 only (OP_ILLEGAL in a 4.1 compound)
  kV40Only = 1u << 3,      // removed in 4.1 (NFS4ERR_NOTSUPP)
  // May run on the event loop: answers from memory, or changes the store in one transaction
  // (committed without waiting for its sync: the reply waits), or returns kOpWouldBlock
  // having changed nothing. Other operations make the COMPOUND go on from them on a worker.
  kOnLoop = 1u << 4,
};

struct OpDesc {
  const char* name = nullptr;
  OpHandler fn = nullptr;  // nullptr: NFS4ERR_NOTSUPP
  uint32_t flags = 0;
  // Largest reply this op can add (bytes), checked against the session's response limits
  // before the op runs (§2.10.6.4). READ, READ_PLUS and READDIR add what their args ask for.
  uint32_t max_reply = 128;
};

// The most reply bytes `a` can produce (its desc's max_reply, plus the data it asks for).
uint32_t MaxReply(const OpDesc& d, const nfs_argop4& a);

// Sets op's result arm to an error result with status `st`.
void SetOpError(nfs_resop4& r, nfs_opnum4 op, nfsstat4 st);
// The status of a filled-in result.
nfsstat4 OpStatus(const nfs_resop4& r);
const char* OpName(uint32_t op);

// Runs a COMPOUND: args at `d`, results appended to `e`. Returns the RPC accept status
// (GARBAGE_ARGS only when not even the header decodes).
//
// Run to completion: with on_loop, the COMPOUND runs on the event-loop thread for as long as
// its operations can be answered without waiting (kOnLoop operations, the store in a
// meta::NoBlockScope). At the first one that cannot, it stops before that operation, leaves
// its state in ctx.resume and returns rpc::kDeferToWorker; the RPC server then calls it again
// on a worker (without on_loop), which goes on from that operation. SEQUENCE and the
// operations before the stop ran once, as the session rules require (§2.10.6). Changes made
// on the loop are visible before they are durable: when every operation ran there, it
// returns rpc::kReplyLater with ctx.gate opening once they are durable, and the server calls
// it again then to encode the reply and complete the slot.
rpc::accept_stat RunCompound(Mds& mds, const rpc::CallContext& ctx, xdr::Decoder& d,
                             xdr::Encoder& e, bool on_loop = false);

}  // namespace loom::nfs4
