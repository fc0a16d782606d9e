// libloom's callback service: the server side of the NFSv4.1 back channel (RFC 8881 §2.10.3.1,
// §20). loom-mds sends CB_NULL and CB_COMPOUND over the connection libloom opened (CREATE_SESSION
// with CREATE_SESSION4_FLAG_CONN_BACK_CHAN); Session hands each CALL record here and sends the
// reply built here.
//
// CB_COMPOUND: CB_SEQUENCE first, checked against the session's own back-channel slot table
// (§20.9.3: seqid last + 1 runs, seqid last answers from the slot's cached reply), then each op
// to the handler the data path registers (CB_LAYOUTRECALL, CB_RECALL_ANY, CB_NOTIFY_DEVICEID).
// Other ops get NFS4ERR_NOTSUPP, op numbers outside the callback range OP_CB_ILLEGAL.
//
// Threading: thread-safe. OnCall runs on the session's loop thread: the handler must not wait
// for the server (it queues the work and answers at once).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "rpc/record.h"
#include "xdr/nfs4.h"
#include "xdr/xdr.h"

namespace loom::client::internal {

using namespace loom::nfs4;

class CallbackService {
 public:
  // One callback operation (never CB_SEQUENCE) -> its status. NFS4ERR_NOTSUPP for ops the
  // handler does not serve.
  using OpHandler = std::function<nfsstat4(const nfs_cb_argop4&)>;

  // The RPC program the server calls back on (CREATE_SESSION's csa_cb_program).
  static constexpr uint32_t kProgram = 0x40000000;

  void SetHandler(OpHandler h);
  // A new session: its id, minor version and back-channel slot count (csr_back_chan_attrs).
  void Reset(const sessionid4& sid, uint32_t minor, uint32_t slots);
  // A CALL record from the server: the reply to send (record mark reserved), or null when the
  // call is not to be answered.
  std::unique_ptr<xdr::Encoder> OnCall(const rpc::Record& r);

  // Callbacks answered (for tests and diagnostics).
  uint64_t answered() const;

 private:
  struct Slot {
    uint32_t seqid = 0;
    std::string reply;  // the encoded CB_COMPOUND4res of seqid (§20.9.3 reply cache)
  };
  // The encoded CB_COMPOUND4res for `d` positioned at the CB_COMPOUND4args.
  std::string Compound(xdr::Decoder& d);

  mutable std::mutex mu_;
  OpHandler handler_;
  sessionid4 sid_{};
  uint32_t minor_ = 1;
  std::vector<Slot> slots_;
  bool have_session_ = false;
  uint64_t answered_ = 0;
};

}  // namespace loom::client::internal
