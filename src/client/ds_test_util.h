// A scripted NFSv3 data server for libloom's tests (ds_conn_faults_test.cc,
// session_faults_test.cc): it reads one call at a time and answers with whatever the test
// builds, so replies can be wrong in ways a real loom-ds never is.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace loom::client::dstest {

inline void Word(std::string& s, uint32_t v) {
  const char b[4] = {char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
  s.append(b, 4);
}
inline uint32_t WordAt(const std::string& s, size_t i) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data() + 4 * i);
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

// An accepted reply's header: xid, REPLY, MSG_ACCEPTED, AUTH_NONE verifier, accept_stat.
inline std::string Accepted(uint32_t xid, uint32_t accept_stat = 0) {
  std::string r;
  Word(r, xid);
  Word(r, 1);
  Word(r, 0);
  Word(r, 0);
  Word(r, 0);
  Word(r, accept_stat);
  return r;
}
// post_op_attr: attributes follow (84 bytes of fattr3) or not.
inline void PostOpAttr(std::string& r, bool follows) {
  Word(r, follows ? 1 : 0);
  if (follows) r.append(84, '\x11');
}
// wcc_data: pre_op_attr (24 bytes) and post_op_attr.
inline void Wcc(std::string& r, bool follows) {
  Word(r, follows ? 1 : 0);
  if (follows) r.append(24, '\x22');
  PostOpAttr(r, follows);
}

// A data server that reads one call at a time and answers with what `respond` returns for it
// (the whole call record without its mark; "" sends nothing; nullopt-like "\xff" closes).
class ScriptedDs {
 public:
  using Respond = std::function<std::string(const std::string& call)>;
  explicit ScriptedDs(Respond r) : respond_(std::move(r)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    EXPECT_EQ(::listen(fd_, 8), 0);
    socklen_t l = sizeof(a);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &l);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~ScriptedDs() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  int connections() const { return connections_.load(); }
  std::vector<std::string> calls() {
    std::lock_guard<std::mutex> g(mu_);
    return calls_;
  }
  // From now on each reply goes out in pieces of `bytes`, `pause_ms` apart (a slow or
  // congested data server); 0 sends each reply at once.
  void SendInPieces(size_t bytes, int pause_ms) {
    piece_.store(bytes);
    pause_ms_.store(pause_ms);
  }
  static const std::string& Close() {
    static const std::string k("\xff");
    return k;
  }

 private:
  static bool ReadExact(int fd, void* p, size_t n) {
    auto* b = static_cast<uint8_t*>(p);
    while (n > 0) {
      ssize_t r = ::recv(fd, b, n, 0);
      if (r <= 0) return false;
      b += r;
      n -= static_cast<size_t>(r);
    }
    return true;
  }
  void Serve() {
    for (;;) {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      connections_++;
      for (;;) {
        uint8_t m[4];
        if (!ReadExact(c, m, 4)) break;
        const uint32_t len = ((uint32_t{m[0]} & 0x7f) << 24) | (uint32_t{m[1]} << 16) | (uint32_t{m[2]} << 8) | m[3];
        std::string rec(len, '\0');
        if (!ReadExact(c, rec.data(), len)) break;
        {
          std::lock_guard<std::mutex> g(mu_);
          calls_.push_back(rec);
        }
        const std::string reply = respond_(rec);
        if (reply == Close()) break;
        if (reply.empty()) continue;
        std::string out;
        Word(out, static_cast<uint32_t>(reply.size()) | 0x80000000u);
        out += reply;
        if (!SendAll(c, out)) break;
      }
      ::close(c);
    }
  }
  bool SendAll(int c, const std::string& out) {
    const size_t piece = piece_.load() ? piece_.load() : out.size();
    for (size_t off = 0; off < out.size(); off += piece) {
      if (off > 0) std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms_.load()));
      const size_t n = std::min(piece, out.size() - off);
      for (size_t sent = 0; sent < n;) {
        ssize_t r = ::send(c, out.data() + off + sent, n - sent, MSG_NOSIGNAL);
        if (r <= 0) return false;
        sent += static_cast<size_t>(r);
      }
    }
    return true;
  }
  Respond respond_;
  std::atomic<size_t> piece_{0};
  std::atomic<int> pause_ms_{0};
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<int> connections_{0};
  std::mutex mu_;
  std::vector<std::string> calls_;
  std::thread thread_;
};

}  // namespace loom::client::dstest
