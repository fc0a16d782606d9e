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

// The state of one COMPOUND as its operations run.
struct Cx {
  Cx(Mds& m, const rpc::CallContext& c) : mds(m), rpc(c) {}
  Mds& mds;
  const rpc::CallContext& rpc;
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
rpc::accept_stat RunCompound(Mds& mds, const rpc::CallContext& ctx, xdr::Decoder& d,
                             xdr::Encoder& e);

}  // namespace loom::nfs4
