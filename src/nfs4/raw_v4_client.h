// Test helper: an NFSv4.1 client over a plain blocking socket that also acts as the callback
// server on the same connection (RFC 8881 §2.10.3.1: the back channel shares the fore
// channel's connection). While it waits for a reply, calls the server sends it are answered
// (by `on_callback` when set, else SUCCESS with no results) or left unanswered.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "rpc/auth.h"
#include "rpc/call_table.h"
#include "rpc/server.h"
#include "xdr/nfs4.h"
#include "xdr/rpc.h"

namespace loom::nfs4 {

class RawClient {
 public:
  explicit RawClient(bool answer_callbacks) : answer_(answer_callbacks) {}
  ~RawClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool Connect(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{10, 0};  // a server that stops answering fails the test instead of hanging it
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  // A COMPOUND; callbacks that arrive before its reply are handled on the way.
  Result<COMPOUND4res> Call(std::vector<nfs_argop4> ops, uint32_t minor = 1) {
    COMPOUND4args args;
    args.minorversion = minor;
    args.argarray = std::move(ops);
    uint32_t xid = next_xid_++;
    xdr::Encoder e;
    e.u32(xid);
    e.i32(rpc::CALL);
    rpc::call_body body;
    body.rpcvers = 2;
    body.prog = NFS4_PROGRAM;
    body.vers = NFS_V4;
    body.proc = 1;
    body.cred = rpc::EncodeCred(rpc::Cred::Sys(0, 0, {}, "raw"));
    body.verf.flavor = rpc::AUTH_NONE;
    xdr_encode(e, body);
    xdr_encode(e, args);
    if (!SendRecord(e.Flatten())) return Status::Io("send");
    for (;;) {
      std::string rec;
      if (!ReadRecord(&rec)) return Status::Timeout("no reply from the server");
      xdr::Decoder d(reinterpret_cast<const uint8_t*>(rec.data()), rec.size());
      uint32_t rxid;
      int32_t mtype;
      if (!d.u32(rxid) || !d.i32(mtype)) return Status::Invalid("short record");
      if (mtype == rpc::CALL) {
        if (!Answer(rxid, d)) return Status::Io("send callback reply");
        continue;
      }
      if (rxid != xid) continue;
      uint32_t ignored;
      auto off = rpc::ParseReplyHeader(reinterpret_cast<const uint8_t*>(rec.data()), rec.size(),
                                       &ignored);
      if (!off.ok()) return off.status();
      xdr::Decoder rd(reinterpret_cast<const uint8_t*>(rec.data()) + *off, rec.size() - *off);
      COMPOUND4res res;
      if (!xdr_decode(rd, res)) return Status::Invalid("undecodable COMPOUND4res");
      return res;
    }
  }
  int callbacks() const { return callbacks_; }
  // Waits (up to the socket timeout) for one call from the server and answers it.
  bool WaitCallback() {
    std::string rec;
    if (!ReadRecord(&rec)) return false;
    xdr::Decoder d(reinterpret_cast<const uint8_t*>(rec.data()), rec.size());
    uint32_t rxid;
    int32_t mtype;
    if (!d.u32(rxid) || !d.i32(mtype) || mtype != rpc::CALL) return false;
    return Answer(rxid, d);
  }
  // CB_COMPOUND handler: the results to send back, or nullopt to leave the call unanswered.
  std::function<std::optional<CB_COMPOUND4res>(const CB_COMPOUND4args&)> on_callback;

 private:
  bool SendRecord(const std::string& body) {
    uint32_t mark = htonl(0x80000000u | static_cast<uint32_t>(body.size()));
    std::string out(reinterpret_cast<const char*>(&mark), 4);
    out += body;
    return ::send(fd_, out.data(), out.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(out.size());
  }
  bool ReadFull(void* p, size_t n) {
    auto* c = static_cast<char*>(p);
    while (n > 0) {
      ssize_t k = ::recv(fd_, c, n, 0);
      if (k <= 0) return false;
      c += k;
      n -= static_cast<size_t>(k);
    }
    return true;
  }
  bool ReadRecord(std::string* rec) {
    rec->clear();
    for (;;) {
      uint32_t mark;
      if (!ReadFull(&mark, 4)) return false;
      mark = ntohl(mark);
      size_t len = mark & 0x7fffffffu;
      size_t at = rec->size();
      rec->resize(at + len);
      if (!ReadFull(rec->data() + at, len)) return false;
      if (mark & 0x80000000u) return true;
    }
  }

  // Answers the call whose header (after xid and message type) is at `d`.
  bool Answer(uint32_t rxid, xdr::Decoder& d) {
    callbacks_++;
    if (!answer_) return true;
    rpc::call_body body;
    std::optional<CB_COMPOUND4res> res;
    if (on_callback && xdr_decode(d, body) && body.proc == 1) {
      CB_COMPOUND4args args;
      if (xdr_decode(d, args)) res = on_callback(args);
      if (!res) return true;
    }
    // CB_NULL (and anything else): accepted, SUCCESS, with the results if any.
    xdr::Encoder r;
    r.u32(rxid);
    r.i32(rpc::REPLY);
    r.i32(rpc::MSG_ACCEPTED);
    r.i32(rpc::AUTH_NONE);
    r.u32(0);
    r.i32(rpc::SUCCESS);
    if (res) xdr_encode(r, *res);
    return SendRecord(r.Flatten());
  }

  const bool answer_;
  int fd_ = -1;
  uint32_t next_xid_ = 1000;
  int callbacks_ = 0;
};

}  // namespace loom::nfs4
