// The data path's NFSv3 client (ds_conn.cc) against a scripted data server: NFSv3 errors with
// and without attributes (RFC 1813 §3.3.6, §3.3.7, §3.3.21), RPC-level refusals (RFC 5531 §9),
// malformed replies, connections refused or closed, and what goes on the wire for a WRITE.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "client/ds_conn.h"
#include "client/ds_test_util.h"

namespace loom::client::internal {
namespace {

using namespace loom::client::dstest;

const Bytes kFh = Bytes::Copy("handle-1");

DsReply Wait(std::function<void(DsCallback)> start) {
  std::promise<DsReply> p;
  start([&p](const DsReply& r) { p.set_value(r); });
  return p.get_future().get();
}
DsReply ReadOf(DsConn& c, uint32_t n, void* dst) {
  return Wait([&](DsCallback cb) { c.Read(DsCred{7, 8}, kFh, 4096, n, dst, std::move(cb)); });
}
DsReply WriteOf(DsConn& c, const std::string& data, uint32_t stable) {
  return Wait([&](DsCallback cb) {
    c.Write(DsCred{7, 8}, kFh, 8192, data.data(), static_cast<uint32_t>(data.size()), stable, std::move(cb));
  });
}

TEST(DsConnFaultsTest, NfsErrorsComeBackAsTheirStatusAndLeaveTheBufferAlone) {
  std::atomic<int> n{0};
  ScriptedDs ds([&n](const std::string& call) {
    std::string r = Accepted(WordAt(call, 0));
    const uint32_t proc = WordAt(call, 5);
    if (proc == 6) {  // READ: NFS3ERR_ACCES with attributes, then STALE without
      const bool first = n++ == 0;
      Word(r, first ? 13 : 70);
      PostOpAttr(r, first);
    } else if (proc == 7) {  // WRITE: NFS3ERR_NOSPC with wcc_data
      Word(r, 28);
      Wcc(r, true);
    } else if (proc == 21) {  // COMMIT: NFS3ERR_IO without
      Word(r, 5);
      Wcc(r, false);
    }
    return r;
  });
  DsConn c(ds.address(), 5000);
  std::string buf(64, 'x');
  DsReply r = ReadOf(c, 64, buf.data());
  EXPECT_TRUE(r.transport.ok()) << r.transport.ToString();
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.nfs_status, 13u);
  EXPECT_EQ(r.count, 0u);
  r = ReadOf(c, 64, buf.data());
  EXPECT_EQ(r.nfs_status, 70u);
  EXPECT_EQ(buf, std::string(64, 'x'));
  r = WriteOf(c, "abc", 0);
  EXPECT_TRUE(r.transport.ok());
  EXPECT_EQ(r.nfs_status, 28u);
  r = Wait([&](DsCallback cb) { c.Commit(DsCred{}, kFh, std::move(cb)); });
  EXPECT_TRUE(r.transport.ok());
  EXPECT_EQ(r.nfs_status, 5u);
  // All of it on one connection: an NFS error is no reason to drop it.
  EXPECT_EQ(ds.connections(), 1);
  EXPECT_EQ(c.inflight(), 0u);
}

TEST(DsConnFaultsTest, WriteCommitAndNullResults) {
  ScriptedDs ds([](const std::string& call) {
    std::string r = Accepted(WordAt(call, 0));
    const uint32_t proc = WordAt(call, 5);
    if (proc == 7) {
      Word(r, 0);
      Wcc(r, true);
      Word(r, 5);  // count
      Word(r, 2);  // FILE_SYNC
      r += "VERIFIER";
    } else if (proc == 21) {
      Word(r, 0);
      Wcc(r, false);
      r += "commitVF";
    }
    return r;
  });
  DsConn c(ds.address(), 5000);
  DsReply w = WriteOf(c, "hello", 2);
  ASSERT_TRUE(w.ok()) << w.transport.ToString();
  EXPECT_EQ(w.count, 5u);
  EXPECT_EQ(w.committed, 2u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(w.verf), 8), "VERIFIER");
  DsReply cm = Wait([&](DsCallback cb) { c.Commit(DsCred{}, kFh, std::move(cb)); });
  ASSERT_TRUE(cm.ok());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(cm.verf), 8), "commitVF");
  DsReply n = Wait([&](DsCallback cb) { c.Null(std::move(cb)); });
  EXPECT_TRUE(n.ok()) << n.transport.ToString();

  // What went on the wire for the WRITE (RFC 1813 §3.3.7): the handle, offset, count, stable
  // and the bytes padded to four, with the layout's uid/gid in AUTH_SYS.
  auto calls = ds.calls();
  ASSERT_EQ(calls.size(), 3u);
  const std::string& wr = calls[0];
  EXPECT_EQ(WordAt(wr, 1), 0u);         // CALL
  EXPECT_EQ(WordAt(wr, 3), 100003u);    // NFS
  EXPECT_EQ(WordAt(wr, 4), 3u);         // version 3
  EXPECT_EQ(WordAt(wr, 5), 7u);         // WRITE
  EXPECT_EQ(WordAt(wr, 6), 1u);         // AUTH_SYS
  EXPECT_NE(wr.find("handle-1"), std::string::npos);
  EXPECT_EQ(wr.size() % 4, 0u);
  EXPECT_EQ(wr.substr(wr.size() - 8), std::string("hello\0\0\0", 8));
  EXPECT_EQ(WordAt(wr, wr.size() / 4 - 3), 5u);  // the opaque's length
  EXPECT_EQ(WordAt(calls[2], 5), 0u);  // NULL
}

TEST(DsConnFaultsTest, RpcRefusalsAreInternalErrorsInWords) {
  std::atomic<int> n{0};
  ScriptedDs ds([&n](const std::string& call) {
    const uint32_t xid = WordAt(call, 0);
    switch (n++) {
      case 0: {  // MSG_DENIED, RPC_MISMATCH 2..2
        std::string r;
        Word(r, xid);
        Word(r, 1);
        Word(r, 1);
        Word(r, 0);
        Word(r, 2);
        Word(r, 2);
        return r;
      }
      case 1:
        return Accepted(xid, 1);  // PROG_UNAVAIL
      default:
        return Accepted(xid, 4);  // GARBAGE_ARGS
    }
  });
  DsConn c(ds.address(), 5000);
  char buf[8];
  DsReply r = ReadOf(c, 8, buf);
  EXPECT_EQ(r.transport.code(), Errc::kInternal);
  EXPECT_NE(r.transport.message().find("denied"), std::string::npos) << r.transport.ToString();
  r = ReadOf(c, 8, buf);
  EXPECT_EQ(r.transport.code(), Errc::kInternal);
  EXPECT_NE(r.transport.message().find("accept_stat 1"), std::string::npos) << r.transport.ToString();
  r = WriteOf(c, "x", 0);
  EXPECT_NE(r.transport.message().find("accept_stat 4"), std::string::npos) << r.transport.ToString();
  EXPECT_EQ(ds.connections(), 1);
}

TEST(DsConnFaultsTest, MalformedReadRepliesDropTheConnection) {
  std::atomic<int> n{0};
  ScriptedDs ds([&](const std::string& call) {
    std::string r = Accepted(WordAt(call, 0));
    Word(r, 0);
    PostOpAttr(r, false);
    switch (n++) {
      case 0:  // count and the opaque's length disagree
        Word(r, 4);
        Word(r, 0);
        Word(r, 8);
        r += "12345678";
        return r;
      case 1:  // eof neither true nor false
        Word(r, 4);
        Word(r, 2);
        Word(r, 4);
        r += "1234";
        return r;
      case 2:  // the record ends inside the payload
        Word(r, 8);
        Word(r, 1);
        Word(r, 8);
        r += "1234";
        return r;
      default:  // a good one
        Word(r, 4);
        Word(r, 1);
        Word(r, 4);
        r += "good";
        return r;
    }
  });
  DsConn c(ds.address(), 5000);
  std::string buf(8, 'x');
  for (int i = 0; i < 3; i++) {
    DsReply r = ReadOf(c, 8, buf.data());
    EXPECT_EQ(r.transport.code(), Errc::kInternal) << i << ": " << r.transport.ToString();
    EXPECT_NE(r.transport.message().find("malformed"), std::string::npos) << r.transport.ToString();
  }
  // Each malformed reply cost its connection; the next call gets a new one.
  DsReply r = ReadOf(c, 8, buf.data());
  ASSERT_TRUE(r.ok()) << r.transport.ToString();
  EXPECT_EQ(r.count, 4u);
  EXPECT_TRUE(r.eof);
  EXPECT_EQ(buf.substr(0, 4), "good");
  EXPECT_EQ(ds.connections(), 4);
}

// A READ payload is received with the socket's low-water mark raised (RecordReader::WakeAt):
// whatever the pace of the server, every byte must arrive, in order, and the small replies
// after a large one must not wait for a mark meant for the large one.
TEST(DsConnFaultsTest, ReadPayloadsArriveWholeHoweverTheServerPacesThem) {
  auto pattern = [](size_t len) {
    std::string p(len, '\0');
    for (size_t i = 0; i < len; i++) p[i] = static_cast<char>((i * 7 + len) & 0xff);
    return p;
  };
  ScriptedDs ds([&](const std::string& call) {
    // READ3args after the RPC header and AUTH_SYS: the handle, offset (u64), count (u32).
    const uint32_t count = WordAt(call, call.size() / 4 - 1);
    std::string r = Accepted(WordAt(call, 0));
    Word(r, 0);
    PostOpAttr(r, false);
    Word(r, count);
    Word(r, 0);
    Word(r, count);
    r += pattern(count);
    r.append((4 - count % 4) % 4, '\0');
    return r;
  });
  DsConn c(ds.address(), 5000);
  struct Pace {
    size_t piece;
    int pause_ms;
  };
  // At once; 100 KB pieces (below the mark) 5 ms apart; a piece, then a pause longer than the
  // receiver's 250 ms wait, then the rest.
  const Pace paces[] = {{0, 0}, {100000, 5}, {200000, 300}};
  const size_t sizes[] = {1u << 20, 300 * 1024, 70 * 1024, 5};
  for (const Pace& pace : paces) {
    ds.SendInPieces(pace.piece, pace.pause_ms);
    for (size_t len : sizes) {
      if (pace.pause_ms >= 300 && len > 300 * 1024) continue;  // keeps the test short
      std::string buf(len, 'x');
      DsReply r = ReadOf(c, static_cast<uint32_t>(len), buf.data());
      ASSERT_TRUE(r.ok()) << len << " bytes in pieces of " << pace.piece << ": " << r.transport.ToString();
      EXPECT_EQ(r.count, len);
      EXPECT_TRUE(buf == pattern(len)) << len << " bytes in pieces of " << pace.piece;
      // A small reply right after a large one.
      std::string small(5, 'x');
      r = ReadOf(c, 5, small.data());
      ASSERT_TRUE(r.ok()) << r.transport.ToString();
      EXPECT_EQ(small, pattern(5));
    }
  }
  EXPECT_EQ(ds.connections(), 1);
  EXPECT_EQ(c.inflight(), 0u);
}

TEST(DsConnFaultsTest, AStreamThatIsNotRepliesFailsItsCalls) {
  std::atomic<int> n{0};
  ScriptedDs ds([&](const std::string& call) {
    const uint32_t xid = WordAt(call, 0);
    if (n++ == 0) {
      std::string r;
      Word(r, xid);
      Word(r, 0);  // a CALL where a REPLY belongs
      r.append(16, '\0');
      return r;
    }
    if (n == 2) {
      std::string r;  // a verifier longer than RFC 5531 allows
      Word(r, xid);
      Word(r, 1);
      Word(r, 0);
      Word(r, 0);
      Word(r, 401);
      r.append(404, '\0');
      return r;
    }
    return ScriptedDs::Close();  // closes without answering
  });
  DsConn c(ds.address(), 5000);
  for (int i = 0; i < 3; i++) {
    DsReply r = Wait([&](DsCallback cb) { c.Null(std::move(cb)); });
    EXPECT_EQ(r.transport.code(), Errc::kUnavailable) << i << ": " << r.transport.ToString();
    EXPECT_NE(r.transport.message().find("lost"), std::string::npos) << r.transport.ToString();
  }
  EXPECT_EQ(ds.connections(), 3);
}

TEST(DsConnFaultsTest, UnreachableAndClosedConnectionsFailAtOnce) {
  // A port nothing listens on: refused, and the next call fails fast without trying again.
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  socklen_t l = sizeof(a);
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &l);
  const std::string dead = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  DsConn c(dead, 5000);
  DsReply r = Wait([&](DsCallback cb) { c.Null(std::move(cb)); });
  EXPECT_EQ(r.transport.code(), Errc::kUnavailable);
  EXPECT_NE(r.transport.message().find(dead), std::string::npos) << r.transport.ToString();
  r = Wait([&](DsCallback cb) { c.Null(std::move(cb)); });
  EXPECT_EQ(r.transport.code(), Errc::kUnavailable);
  EXPECT_NE(r.transport.message().find("unreachable"), std::string::npos) << r.transport.ToString();
  ::close(s);
  EXPECT_EQ(c.inflight(), 0u);

  // Addresses that cannot be parsed never reach the network.
  for (const char* bad : {"no-port", "[::1", "127.0.0.1:0", "127.0.0.1:70000", "not-an-ip:80", "[zz]:80"}) {
    DsConn b(bad, 5000);
    DsReply br = Wait([&](DsCallback cb) { b.Null(std::move(cb)); });
    EXPECT_EQ(br.transport.code(), Errc::kUnavailable) << bad;
    EXPECT_EQ(b.address(), bad);
  }

  // A closed connection fails every call, and does not reconnect.
  ScriptedDs ds([](const std::string& call) { return Accepted(WordAt(call, 0)); });
  DsConn d(ds.address(), 5000);
  ASSERT_TRUE(Wait([&](DsCallback cb) { d.Null(std::move(cb)); }).ok());
  d.Close();
  d.Join();
  r = Wait([&](DsCallback cb) { d.Null(std::move(cb)); });
  EXPECT_EQ(r.transport.code(), Errc::kUnavailable);
  EXPECT_NE(r.transport.message().find("closed"), std::string::npos) << r.transport.ToString();
  EXPECT_EQ(ds.connections(), 1);
}

TEST(DsConnFaultsTest, APoolOfNoConnectionsHasOneAndClosesWithItsCalls) {
  ScriptedDs ds([](const std::string& call) { return Accepted(WordAt(call, 0)); });
  DsPool pool(ds.address(), 0, 5000);
  EXPECT_EQ(pool.address(), ds.address());
  DsConn& c = pool.Pick();
  EXPECT_EQ(&pool.Pick(), &c);  // the only one
  EXPECT_TRUE(Wait([&](DsCallback cb) { c.Null(std::move(cb)); }).ok());
  pool.Close();
  pool.Join();
  DsReply r = Wait([&](DsCallback cb) { pool.Pick().Null(std::move(cb)); });
  EXPECT_EQ(r.transport.code(), Errc::kUnavailable);
  EXPECT_EQ(ds.connections(), 1);
}

}  // namespace
}  // namespace loom::client::internal
