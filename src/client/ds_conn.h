// The data path's NFSv3 client (RFC 1813): READ, WRITE, COMMIT and NULL to one data server,
// nothing else. It exists apart from rpc::RpcClient because the bytes must not be copied: a
// READ reply's header is parsed by hand and its payload is received straight from the socket
// into the caller's buffer; a WRITE goes out with one sendmsg of a header iovec and the
// caller's buffer. Calls carry AUTH_SYS with the layout's synthetic uid/gid (RFC 8435 §2.2).
//
// DsConn: one TCP connection (RPC record marking, RFC 5531 §11), many calls in flight matched
// by xid, a receive thread, a per-call timeout. A lost connection fails its calls; the next
// call reconnects. DsPool: Options::connections_per_ds of them to one server, the least
// loaded picked per call.
//
// Threading: thread-safe. Callbacks run on the connection's receive thread (or on the caller's
// thread when the call fails before it is sent); they must not block for long.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/buffer.h"
#include "loom/client.h"

namespace loom::client::internal {

// What a data-server call delivered.
struct DsReply {
  // Not ok: no usable reply (no connection, connection lost, timeout, RPC-level rejection,
  // undecodable reply). kUnavailable / kTimeout / kInternal.
  Status transport;
  uint32_t nfs_status = 0;  // nfsstat3 (NFS3_OK = 0)
  uint32_t count = 0;       // READ: bytes placed in the buffer; WRITE: bytes written
  bool eof = false;         // READ
  uint32_t committed = 0;   // WRITE: stable_how the server applied
  uint8_t verf[8] = {};     // WRITE / COMMIT: the server's write verifier (RFC 1813 §3.3.7)
  bool ok() const { return transport.ok() && nfs_status == 0; }
};
using DsCallback = std::function<void(const DsReply&)>;

struct DsCred {
  uint32_t uid = 65534, gid = 65534;
};

class DsConn {
 public:
  DsConn(std::string address, int timeout_ms);
  ~DsConn();  // Close()s and joins the receive threads
  DsConn(const DsConn&) = delete;
  DsConn& operator=(const DsConn&) = delete;

  // REQUIRES: fh.size <= 64 (NFS3_FHSIZE). `dst` must hold `count` bytes until cb runs.
  void Read(const DsCred& cred, const Bytes& fh, uint64_t off, uint32_t count, void* dst,
            DsCallback cb);
  // `src` must stay valid until cb runs. stable: 0 UNSTABLE, 1 DATA_SYNC, 2 FILE_SYNC.
  void Write(const DsCred& cred, const Bytes& fh, uint64_t off, const void* src, uint32_t count,
             uint32_t stable, DsCallback cb);
  void Commit(const DsCred& cred, const Bytes& fh, DsCallback cb);
  void Null(DsCallback cb);

  // Fails every call in flight and every later one; no reconnects.
  void Close();
  // After Close: waits for the receive threads (those not the caller's own).
  void Join();
  uint32_t inflight() const { return inflight_.load(std::memory_order_relaxed); }
  const std::string& address() const { return address_; }

 private:
  struct Link;
  struct Pending {
    uint32_t proc = 0;
    uint8_t* dst = nullptr;  // READ: where the payload goes
    uint32_t cap = 0;
    int64_t deadline_ms = 0;
    DsCallback cb;
  };
  // Sends a call: header bytes (record mark first), then an optional payload and its pad.
  void Submit(uint32_t proc, std::vector<uint8_t> header, const void* payload, uint32_t len,
              Pending p);
  std::shared_ptr<Link> GetLink(Status* why);
  void ReceiveLoop(std::shared_ptr<Link> link);
  bool ReadReply(Link& l, struct RecordReader& rd);
  void Sweep(Link& l, int64_t now);
  void FailAll(Link& l, const Status& why);
  void Finish(Pending& p, DsReply& r);
  std::vector<uint8_t> CallHeader(uint32_t xid, uint32_t proc, const DsCred& cred);

  const std::string address_;
  const int timeout_ms_;
  std::atomic<uint32_t> next_xid_;
  std::atomic<uint32_t> inflight_{0};
  std::mutex mu_;  // guards the fields below
  std::shared_ptr<Link> link_;
  std::vector<std::shared_ptr<Link>> retired_;  // dead links whose threads may still run
  bool closed_ = false;
  int64_t down_until_ms_ = 0;  // after a failed connect: fail fast until then
};

class DsPool {
 public:
  DsPool(std::string address, uint32_t connections, int timeout_ms);
  const std::string& address() const { return address_; }
  // The least loaded connection.
  DsConn& Pick();
  void Close();
  void Join();

 private:
  const std::string address_;
  std::vector<std::unique_ptr<DsConn>> conns_;
};

}  // namespace loom::client::internal
