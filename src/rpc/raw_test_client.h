// Test helpers: a blocking raw TCP client for RpcServer tests, able to connect from a chosen
// loopback address (127.0.0.2 is loopback on Linux too: a "different host").
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "rpc/auth.h"
#include "xdr/rpc.h"
#include "xdr/xdr.h"

namespace loom::rpc::testing {

// Connects to 127.0.0.1:port from `from` (an IPv4 address); -1 on failure. Receives time out
// after `timeout_s`.
inline int RawConnectFrom(uint16_t port, const char* from = "127.0.0.1", int timeout_s = 5) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in me{};
  me.sin_family = AF_INET;
  inet_pton(AF_INET, from, &me.sin_addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&me), sizeof me) != 0) {
    ::close(fd);
    return -1;
  }
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{timeout_s, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

inline bool SendAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

inline std::string Mark(uint32_t len, bool last) {
  uint32_t v = len | (last ? 0x80000000u : 0);
  return std::string{char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
}

// A whole call record (mark included) with the given credential and no arguments.
inline std::string CallRecord(uint32_t xid, uint32_t prog, uint32_t vers, uint32_t proc,
                              const Cred& cred, const std::string& args = "") {
  xdr::Encoder e;
  e.u32(xid);
  e.u32(CALL);
  e.u32(2);
  e.u32(prog);
  e.u32(vers);
  e.u32(proc);
  xdr_encode(e, EncodeCred(cred));
  e.u32(AUTH_NONE);
  e.u32(0);
  std::string body = e.Flatten() + args;
  return Mark(static_cast<uint32_t>(body.size()), true) + body;
}

// Reads one record; "" when the connection closed or timed out.
inline std::string RecvRecord(int fd) {
  std::string rec;
  for (;;) {
    uint8_t m[4];
    if (::recv(fd, m, 4, MSG_WAITALL) != 4) return "";
    uint32_t mark = (uint32_t{m[0]} << 24) | (uint32_t{m[1]} << 16) | (uint32_t{m[2]} << 8) | m[3];
    std::string frag(mark & 0x7fffffff, '\0');
    if (!frag.empty() &&
        ::recv(fd, frag.data(), frag.size(), MSG_WAITALL) != static_cast<ssize_t>(frag.size()))
      return "";
    rec += frag;
    if (mark & 0x80000000u) return rec;
  }
}

// True when the peer has closed the connection (reads EOF or an error within the timeout).
inline bool PeerClosed(int fd) {
  char b;
  for (;;) {
    ssize_t n = ::recv(fd, &b, 1, 0);
    if (n == 0) return true;
    if (n < 0) return errno == ECONNRESET || errno == EPIPE;
  }
}

// The reply's words after the xid: {reply_stat, then accept_stat or reject_stat and auth_stat}.
struct ReplyHead {
  uint32_t reply_stat = ~0u;
  uint32_t stat = ~0u;       // accept_stat, or reject_stat when denied
  uint32_t auth_stat = ~0u;  // when denied with AUTH_ERROR
  std::string results;       // bytes after accept_stat
};
inline ReplyHead ParseReply(const std::string& rep) {
  ReplyHead h;
  xdr::Decoder d(reinterpret_cast<const uint8_t*>(rep.data()), rep.size());
  uint32_t xid, mt, fl, len;
  if (!d.u32(xid) || !d.u32(mt) || !d.u32(h.reply_stat)) return h;
  if (h.reply_stat == MSG_DENIED) {
    if (d.u32(h.stat) && h.stat == AUTH_ERROR && !d.u32(h.auth_stat)) h.auth_stat = ~0u;
    return h;
  }
  if (!d.u32(fl) || !d.u32(len) || !d.skip(len)) return h;
  if (!d.u32(h.stat)) return h;
  h.results = rep.substr(rep.size() - d.remaining());
  return h;
}

}  // namespace loom::rpc::testing
