// The NFSv4.1/4.2 session of one libloom client with the metadata server (RFC 8881 §2.10):
// EXCHANGE_ID + CREATE_SESSION, a slot table with all the slots the server grants, COMPOUNDs
// sent asynchronously on free slots, retries with back-off on NFS4ERR_DELAY / NFS4ERR_GRACE /
// a lost connection, lease renewal when idle, and recovery after a server restart (a new
// client ID and session, then the reclaim hook, then RECLAIM_COMPLETE).
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "client/callback.h"
#include "client/counters.h"
#include "common/status.h"
#include "loom/client.h"
#include "rpc/auth.h"
#include "rpc/client.h"
#include "rpc/event_loop.h"
#include "xdr/nfs4.h"

namespace loom::client::internal {

using namespace loom::nfs4;  // the generated NFSv4 types (nfs_argop4, stateid4, ...)

// nfsstat4 -> Status ("what" names the object: a path).
Status FromNfs4(int nfsstat4_value, const std::string& what);
// Transport/library Status -> public Status.
Status FromLoomStatus(const loom::Status& s, const std::string& what);

// What a COMPOUND call delivers: the transport status (kUnavailable/kTimeout...) or the reply,
// whose .status is the first failing op's nfsstat4 (NFS4_OK when all ran). The SEQUENCE result
// is taken off: res.resarray[i] answers the caller's ops[i].
using CompoundCallback = std::function<void(Status transport, COMPOUND4res res)>;

class Session {
 public:
  // The event loop must be running. Connects and sets the session up (retrying while the
  // server is in grace or restarting, for up to opts.retry_for_ms).
  static Result<std::unique_ptr<Session>> Start(rpc::EventLoop* loop, const Options& opts,
                                                Counters* counters);
  ~Session();

  // SEQUENCE + ops on a free slot (waits for one). Retries as said at the top; the callback
  // runs once, on the loop thread or a library thread. `cachethis`: ask the server to keep the
  // reply for a retransmission (keep it off for READ/READDIR-sized replies).
  void CallAsync(std::vector<nfs_argop4> ops, CompoundCallback cb, bool cachethis = false);
  // Synchronous wrapper. The returned reply's status is NFS4_OK or an op's error; transport
  // errors come back as the Status.
  Result<COMPOUND4res> Call(std::vector<nfs_argop4> ops, bool cachethis = false);

  // Called during recovery after a server restart, with a new session in place and before
  // RECLAIM_COMPLETE: reclaim open state (OPEN with CLAIM_PREVIOUS) through `CallRecovery`.
  void SetReclaimHook(std::function<void()> hook);
  // Only for the reclaim hook: a COMPOUND on the new session while normal calls wait.
  Result<COMPOUND4res> CallRecovery(std::vector<nfs_argop4> ops);

  // Serves the server's callbacks (CB_LAYOUTRECALL ...) arriving on the back channel; null to
  // stop. The handler runs on the loop thread and must not wait (see callback.h).
  void SetCallbackHandler(CallbackService::OpHandler h);
  // Whether the current session has a back channel (the server granted
  // CREATE_SESSION4_FLAG_CONN_BACK_CHAN): without one, recalls reach the data path as fences.
  bool back_channel() const;
  uint64_t callbacks_answered() const;

  // Increases at each recovery: state (stateids, layouts) from an earlier epoch is gone.
  uint64_t epoch() const { return epoch_.load(); }
  const rpc::Cred& cred() const { return cred_; }
  rpc::EventLoop* loop() const { return loop_; }
  uint32_t minor_version() const { return minor_; }
  // The server's limits from CREATE_SESSION (what a READ/WRITE through the MDS may carry).
  uint32_t max_request() const;
  uint32_t max_response() const;
  uint32_t lease_seconds() const;
  const std::string& address() const { return address_; }
  const std::string& owner() const { return owner_; }

  // DESTROY_SESSION + DESTROY_CLIENTID; later calls fail with kUnavailable.
  void Shutdown();

 private:
  struct Impl;
  Session() = default;
  rpc::EventLoop* loop_ = nullptr;
  rpc::Cred cred_;
  uint32_t minor_ = 2;
  std::string address_, owner_;
  std::atomic<uint64_t> epoch_{0};
  std::unique_ptr<Impl> impl_;
};

// Resolves "host[:port]" (names, IPv4, [IPv6]) to "a.b.c.d:port" for RpcClient::Connect.
Result<std::string> ResolveAddress(const std::string& addr, uint16_t default_port);

// Threads libloom starts itself and that run completions or drop references (the session's
// timer and recovery threads, data-server receive threads) mark themselves; with event-loop
// and worker-pool threads (rpc::EventLoop::Current, rpc::WorkerPool::Current) they are the
// threads a client must not be torn down on (client.cc, ClientDeleter).
void MarkLibraryThread();
bool OnLibraryThread();

}  // namespace loom::client::internal
