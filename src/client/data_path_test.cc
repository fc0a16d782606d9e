// libloom's data path end to end in one process: loom-mds and three loom-ds data servers
// (src/nfs4/mds_fixture.h), a libloom client reading and writing the data servers directly
// with the layouts the MDS grants (RFC 8435), and what happens when a data server goes away.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <future>
#include <random>
#include <chrono>
#include <thread>

#include "client/callback.h"
#include "client/ds_conn.h"
#include "loom/client.h"
#include "nfs4/fh.h"
#include "nfs4/mds_fixture.h"
#include "rpc/call_table.h"
#include "xdr/rpc.h"

namespace loom::client {
namespace {

namespace fsys = std::filesystem;

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

std::string ReadLocalFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class DataPathTest : public nfs4::MdsTest {
 protected:
  DataPathTest() { ds_count_ = 3; }

  std::shared_ptr<Client> Connect(bool pnfs = true, size_t max_uncommitted = 64u << 20) {
    Options o;
    o.max_uncommitted_bytes = max_uncommitted;
    o.mds = "127.0.0.1:" + std::to_string(port_);
    o.uid = 0;
    o.gid = 0;
    o.pnfs = pnfs;
    o.call_timeout_ms = 5000;
    o.retry_for_ms = 20000;
    auto c = Client::Connect(o);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? c.value() : nullptr;
  }
  std::shared_ptr<File> OpenFile(Client& c, const std::string& path, bool write, bool create = false) {
    OpenFlags f;
    f.read = true;
    f.write = write;
    f.create = create;
    auto r = c.Open(path, f);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r.value() : nullptr;
  }
  // Writes `data` at `off` in pieces of `chunk`, then Sync and Close.
  void WriteFile(Client& c, const std::string& path, const std::string& data, size_t chunk = 1 << 20) {
    auto f = OpenFile(c, path, true, true);
    ASSERT_TRUE(f);
    for (size_t pos = 0; pos < data.size(); pos += chunk) {
      size_t n = std::min(chunk, data.size() - pos);
      auto w = f->Write(pos, data.data() + pos, n);
      ASSERT_TRUE(w.ok()) << w.status().ToString();
      ASSERT_EQ(*w, n);
    }
    ASSERT_TRUE(f->Sync().ok());
    ASSERT_TRUE(f->Close().ok());
  }
  std::string ReadAll(File& f, size_t chunk = 1 << 20) {
    std::string out(f.size(), '\0');
    for (size_t pos = 0; pos < out.size(); pos += chunk) {
      size_t n = std::min(chunk, out.size() - pos);
      auto r = f.Read(pos, out.data() + pos, n);
      EXPECT_TRUE(r.ok()) << r.status().ToString();
      if (!r.ok()) return "";
      EXPECT_EQ(*r, n);
    }
    return out;
  }
  uint64_t MdsReadCalls() { return mds_->stats().Get("nfs4.op.READ")->calls(); }
  uint64_t MdsWriteCalls() { return mds_->stats().Get("nfs4.op.WRITE")->calls(); }
  // Index into ds_ of the data server at "host:port".
  int DsIndexOf(const std::string& address) {
    for (size_t i = 0; i < ds_.size(); i++)
      if (ds_[i].server && address == "127.0.0.1:" + std::to_string(ds_[i].server->port())) return static_cast<int>(i);
    return -1;
  }
  // The data files on data server i (regular files outside the server's hidden state).
  std::vector<std::string> DataFilesOn(int i) {
    std::vector<std::string> out;
    const std::string root = dir_ + "/ds" + std::to_string(i);
    for (auto it = fsys::recursive_directory_iterator(root); it != fsys::recursive_directory_iterator(); ++it) {
      if (it->is_directory() && it->path().filename().string().rfind(".loom", 0) == 0) {
        it.disable_recursion_pending();
        continue;
      }
      if (it->is_regular_file()) out.push_back(it->path().string());
    }
    return out;
  }
};

// Recalls over libloom's back channel (RFC 8881 §12.5.5, §20.3) and its LAYOUTSTATS.
class DataPathRecallTest : public DataPathTest {
 protected:
  DataPathRecallTest() {
    // A client that does not answer is fenced after this long: the tests see it as a fence.
    recall_timeout_ms_ = 3000;
    // LAYOUTSTATS go out every third of the lease when the layout gives no hint: every second.
    lease_seconds_ = 3;
  }
  uint64_t Counter(const std::string& name) { return mds_->stats().Get(name)->calls(); }
  // Counter(name) once it reached `n`, or after 5 s. The MDS counts a CB_LAYOUTRECALL's reply
  // when that reply arrives on the back channel, which may be after the LAYOUTRETURN (on the
  // fore channel) has ended the recall.
  uint64_t CounterReaching(const std::string& name, uint64_t n) {
    for (int i = 0; i < 500 && Counter(name) < n; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return Counter(name);
  }
  // The MDS's inode number of the file at the root named `name`.
  uint64_t InoOf(const std::string& name) {
    nfs4::COMPOUND4res r;
    EXPECT_EQ(Run(Ops(nfs4::simple::PutRootFh(), nfs4::simple::Lookup(name), nfs4::simple::GetFh()), &r), nfs4::NFS4_OK);
    if (r.resarray.size() < 4) return 0;
    const Bytes& fh = r.resarray[3].opgetfh->resok4.object;
    nfs4::MdsHandle h;
    bool forged = false;
    EXPECT_TRUE(nfs4::OpenFh(mds_->fh_key(), std::string_view(reinterpret_cast<const char*>(fh.data), fh.size), &h, &forged));
    return h.ino;
  }
};

TEST_F(DataPathRecallTest, ADataMoveRecallsTheLayoutAndLibloomReturnsItWithoutAFence) {
  mds_->StartBackground();
  auto c = Connect();
  ASSERT_TRUE(c);
  std::string want = RandomBytes(4u << 20, 21);
  WriteFile(*c, "/m", want);
  const uint64_t ino = InoOf("m");
  auto before = mds_->LayoutOf(ino);
  ASSERT_TRUE(before.ok());
  const uint32_t from = before->mirrors[0].files[0].ds_id;
  const uint32_t to = from == 1 ? 2 : 1;
  auto f = OpenFile(*c, "/m", true);
  ASSERT_TRUE(f);
  auto lay = f->Layout();  // a layout in hand when the recall comes
  ASSERT_TRUE(lay.ok());
  ASSERT_TRUE(lay->granted);
  const uint64_t fenced = Counter("pnfs.fenced"), answered = Counter("pnfs.recall_reply.NFS4_OK");
  const uint64_t recalls = Counter("pnfs.recalls");

  // One thread writes and reads the file all through the move; `want` follows its writes.
  std::atomic<bool> stop{false};
  std::atomic<int> rounds{0};
  std::string io_error;
  std::atomic<bool> io_failed{false};
  std::thread io([&] {
    std::mt19937 rng(5);
    std::string buf(64 << 10, '\0');
    for (int i = 0; !stop.load() || i < 4; i++) {
      const size_t off = (rng() % (want.size() / buf.size())) * buf.size();
      const size_t roff = (rng() % (want.size() / buf.size())) * buf.size();
      auto r = f->Read(roff, buf.data(), buf.size());
      if (!r.ok() || *r != buf.size() || buf != want.substr(roff, buf.size())) {
        io_error = "read at " + std::to_string(roff) + ": " + (r.ok() ? std::string("wrong bytes") : r.status().ToString());
        io_failed = true;
        return;
      }
      rounds++;
      const std::string piece = RandomBytes(buf.size(), 1000 + i);
      // Writes go on through the recall: from then on through the MDS, whose WRITE takes the
      // size lock a move holds over its switch before it reads the layout.
      auto w = f->Write(off, piece.data(), piece.size());
      if (!w.ok() || *w != piece.size()) {
        io_error = "write: " + (w.ok() ? std::string("short") : w.status().ToString());
        io_failed = true;
        return;
      }
      want.replace(off, piece.size(), piece);
    }
  });
  // The move starts once libloom is busy with the file.
  while (rounds.load() < 4 && !io_failed.load()) std::this_thread::yield();
  loom::Status moved = mds_->MoveData(ino, {to});
  stop = true;
  io.join();
  ASSERT_TRUE(moved.ok()) << moved.ToString();
  ASSERT_EQ(io_error, "");
  ASSERT_TRUE(f->Sync().ok());
  ASSERT_TRUE(f->Close().ok());

  // libloom answered the recall and returned the layout: nobody was fenced.
  EXPECT_GE(CounterReaching("pnfs.recall_reply.NFS4_OK", answered + 1), answered + 1);
  EXPECT_GT(Counter("pnfs.recalls"), recalls);
  EXPECT_EQ(Counter("pnfs.fenced"), fenced);
  auto after = mds_->LayoutOf(ino);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->mirrors[0].files[0].ds_id, to);
  // Every byte, those written during the move included, is in the new place.
  auto r = OpenFile(*c, "/m", false);
  ASSERT_TRUE(r);
  auto lay2 = r->Layout();
  ASSERT_TRUE(lay2.ok());
  ASSERT_TRUE(lay2->granted);
  EXPECT_EQ(DsIndexOf(lay2->mirrors[0][0].address), static_cast<int>(to) - 1);
  EXPECT_TRUE(ReadAll(*r) == want);
  ASSERT_TRUE(r->Close().ok());
}

TEST_F(DataPathRecallTest, AfterTheMdsRestartsTheNewSessionCarriesTheBackChannel) {
  auto c = Connect();
  ASSERT_TRUE(c);
  const std::string data = RandomBytes(1u << 20, 23);
  WriteFile(*c, "/b", data);
  StopMds();
  StartMds();
  mds_->StartBackground();
  ASSERT_TRUE(c->Stat("/b").ok());
  EXPECT_EQ(c->stats().recoveries, 1u);
  const uint64_t ino = InoOf("b");
  auto before = mds_->LayoutOf(ino);
  ASSERT_TRUE(before.ok());
  const uint32_t to = before->mirrors[0].files[0].ds_id == 1 ? 2 : 1;
  auto f = OpenFile(*c, "/b", false);
  ASSERT_TRUE(f);
  auto lay = f->Layout();
  ASSERT_TRUE(lay.ok());
  ASSERT_TRUE(lay->granted);
  // The recall reaches libloom over the recovered session and is answered: no fence.
  ASSERT_TRUE(mds_->MoveData(ino, {to}).ok());
  EXPECT_GE(CounterReaching("pnfs.recall_reply.NFS4_OK", 1), 1u);
  EXPECT_EQ(Counter("pnfs.fenced"), 0u);
  EXPECT_TRUE(ReadAll(*f) == data);
  ASSERT_TRUE(f->Close().ok());
}

TEST_F(DataPathRecallTest, AReconnectBindsTheBackChannelToTheNewConnection) {
  mds_->StartBackground();
  auto c = Connect();
  ASSERT_TRUE(c);
  const std::string data = RandomBytes(1u << 20, 24);
  WriteFile(*c, "/n", data);
  const uint64_t ino = InoOf("n");
  // The RPC server goes and comes back on the same port; loom-mds (and the session) stay.
  server_.reset();
  ServeMds();
  auto f = OpenFile(*c, "/n", false);
  ASSERT_TRUE(f);
  // The session survived: a reconnect (BIND_CONN_TO_SESSION), not a recovery.
  EXPECT_EQ(c->stats().recoveries, 0u);
  auto lay = f->Layout();
  ASSERT_TRUE(lay.ok());
  ASSERT_TRUE(lay->granted);
  auto before = mds_->LayoutOf(ino);
  ASSERT_TRUE(before.ok());
  const uint32_t to = before->mirrors[0].files[0].ds_id == 1 ? 2 : 1;
  ASSERT_TRUE(mds_->MoveData(ino, {to}).ok());
  EXPECT_GE(CounterReaching("pnfs.recall_reply.NFS4_OK", 1), 1u);
  EXPECT_EQ(Counter("pnfs.fenced"), 0u);
  EXPECT_TRUE(ReadAll(*f) == data);
  ASSERT_TRUE(f->Close().ok());
}

TEST_F(DataPathRecallTest, LayoutStatsReachTheMds) {
  auto c = Connect();
  ASSERT_TRUE(c);
  const std::string data = RandomBytes(1u << 20, 22);
  WriteFile(*c, "/s", data);
  auto f = OpenFile(*c, "/s", false);
  ASSERT_TRUE(f);
  const uint64_t before = Counter("nfs4.op.LAYOUTSTATS");
  // Reads keep the file active until a report period has passed and the report is in.
  std::string buf(64 << 10, '\0');
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);  // a hang guard only
  for (size_t i = 0; Counter("nfs4.op.LAYOUTSTATS") == before; i++) {
    ASSERT_LT(std::chrono::steady_clock::now(), give_up) << "no LAYOUTSTATS reached the MDS";
    auto r = f->Read((i * buf.size()) % data.size(), buf.data(), buf.size());
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }
  EXPECT_EQ(mds_->stats().Get("nfs4.op.LAYOUTSTATS")->errors(), 0u);
  EXPECT_EQ(c->stats().mds_read_bytes, 0u);
  ASSERT_TRUE(f->Close().ok());
}

class DataPathStripedTest : public DataPathTest {
 protected:
  DataPathStripedTest() { stripes_ = 3; }
};

class DataPathMirroredTest : public DataPathTest {
 protected:
  DataPathMirroredTest() { mirrors_ = 2; }
  // Writes 4 MiB, killing the data server of mirror 1 half way; then reads it back.
  void WriteWhileADataServerDies();
};

TEST_F(DataPathTest, WriteAndReadBackStraightFromTheDataServers) {
  auto c = Connect();
  ASSERT_TRUE(c);
  const std::string data = RandomBytes((3u << 20) + 12345, 1);
  const uint64_t mds_reads = MdsReadCalls(), mds_writes = MdsWriteCalls();
  WriteFile(*c, "/f", data);
  // LAYOUTCOMMIT moved the size on the MDS.
  auto st = c->Stat("/f");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->size, data.size());
  auto f = OpenFile(*c, "/f", false);
  ASSERT_TRUE(f);
  auto lay = f->Layout();
  ASSERT_TRUE(lay.ok());
  EXPECT_TRUE(lay->granted);
  ASSERT_EQ(lay->mirrors.size(), 1u);
  EXPECT_GE(DsIndexOf(lay->mirrors[0][0].address), 0);
  EXPECT_TRUE(ReadAll(*f) == data);
  ASSERT_TRUE(f->Close().ok());
  ClientStats s = c->stats();
  EXPECT_EQ(s.ds_write_bytes, data.size());
  EXPECT_EQ(s.ds_read_bytes, data.size());
  EXPECT_EQ(s.mds_read_bytes, 0u);
  EXPECT_EQ(s.mds_write_bytes, 0u);
  EXPECT_EQ(s.ds_errors, 0u);
  EXPECT_GE(s.layouts_fetched, 2u);
  // The MDS saw no READ or WRITE at all: every byte went to the data servers.
  EXPECT_EQ(MdsReadCalls(), mds_reads);
  EXPECT_EQ(MdsWriteCalls(), mds_writes);
  // Another client (through the MDS) sees the same bytes.
  auto plain = Connect(false);
  ASSERT_TRUE(plain);
  auto g = OpenFile(*plain, "/f", false);
  ASSERT_TRUE(g);
  EXPECT_TRUE(ReadAll(*g, 300000) == data);
  EXPECT_EQ(plain->stats().mds_read_bytes, data.size());
}

TEST_F(DataPathStripedTest, WritesPastTheUncommittedBoundCommitFirst) {
  // 1 MiB of retained bytes at most: the writes below commit every few pieces.
  auto c = Connect(true, 1u << 20);
  ASSERT_TRUE(c);
  const std::string data = RandomBytes((5u << 20) + 3, 12);
  WriteFile(*c, "/b", data, 300000);
  auto f = OpenFile(*c, "/b", false);
  ASSERT_TRUE(f);
  EXPECT_TRUE(ReadAll(*f) == data);
  EXPECT_EQ(c->stats().ds_write_bytes, data.size());
}

// OpenAsync completes on the session's thread, which may not wait for another MDS reply: a
// layout naming a data server the client does not know yet (a fresh client) is not taken
// there, and the first read asks for it again from a worker (LAYOUTGET + GETDEVICEINFO);
// once the device is known the OPEN's own layout is used. Either way every byte comes from
// the data servers, and the file is closed from the read's completion.
TEST_F(DataPathTest, OpenAsyncReadsFromTheDataServersFromTheFirstFile) {
  auto w = Connect();
  ASSERT_TRUE(w);
  const std::string a = RandomBytes(300000, 31), b = RandomBytes(200000, 32);
  WriteFile(*w, "/oa", a);
  WriteFile(*w, "/ob", b);
  auto c = Connect();  // knows no device yet
  ASSERT_TRUE(c);
  const uint64_t mds_reads = MdsReadCalls();
  auto read_async = [&](const std::string& path, size_t size) {
    std::promise<std::string> got;
    auto buf = std::make_shared<std::string>(size, '\0');
    c->OpenAsync(path, OpenFlags{}, [&got, buf](Result<std::shared_ptr<File>> r) {
      if (!r.ok()) return got.set_value("error: " + r.status().ToString());
      std::shared_ptr<File> f = r.value();
      f->ReadAsync(0, buf->data(), buf->size(), [&got, buf, f](Status st, size_t n) {
        f->CloseAsync([&got, buf, st, n](Status cs) {
          if (!st.ok()) return got.set_value("error: " + st.ToString());
          if (!cs.ok()) return got.set_value("close: " + cs.ToString());
          got.set_value(buf->substr(0, n));
        });
      });
    });
    return got.get_future().get();
  };
  EXPECT_TRUE(read_async("/oa", a.size()) == a);
  const uint64_t fetched_first = c->stats().layouts_fetched;
  EXPECT_GE(fetched_first, 2u);  // the OPEN's, not taken, then the read's
  EXPECT_TRUE(read_async("/oa", a.size()) == a);
  EXPECT_EQ(c->stats().layouts_fetched, fetched_first + 1);  // the OPEN's, taken
  EXPECT_TRUE(read_async("/ob", b.size()) == b);  // maybe on another data server
  ClientStats s = c->stats();
  EXPECT_EQ(s.ds_read_bytes, 2 * a.size() + b.size());
  EXPECT_EQ(s.mds_read_bytes, 0u);
  EXPECT_EQ(MdsReadCalls(), mds_reads);
}

TEST_F(DataPathTest, WithoutPnfsEveryByteGoesThroughTheMds) {
  auto c = Connect(false);
  ASSERT_TRUE(c);
  const std::string data = RandomBytes((2u << 20) + 7, 2);
  WriteFile(*c, "/m", data, 777777);
  auto f = OpenFile(*c, "/m", false);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->size(), data.size());
  EXPECT_TRUE(ReadAll(*f, 1000000) == data);
  auto lay = f->Layout();
  ASSERT_TRUE(lay.ok());
  EXPECT_FALSE(lay->granted);
  ClientStats s = c->stats();
  EXPECT_EQ(s.mds_write_bytes, data.size());
  EXPECT_EQ(s.mds_read_bytes, data.size());
  EXPECT_EQ(s.ds_read_bytes, 0u);
  EXPECT_EQ(s.ds_write_bytes, 0u);
  EXPECT_EQ(s.layouts_fetched, 0u);
}

TEST_F(DataPathStripedTest, StripesArePlacedSparselyAtTheirFileOffsets) {
  auto c = Connect();
  ASSERT_TRUE(c);
  // 7.5 stripe units: units 0..7 over three data files (0,3,6 / 1,4,7 / 2,5).
  const std::string data = RandomBytes((15u << 20) / 2, 3);
  WriteFile(*c, "/s", data, 3u << 19);
  auto f = OpenFile(*c, "/s", false);
  ASSERT_TRUE(f);
  auto lay = f->Layout();
  ASSERT_TRUE(lay.ok());
  ASSERT_TRUE(lay->granted);
  ASSERT_EQ(lay->mirrors.size(), 1u);
  ASSERT_EQ(lay->mirrors[0].size(), 3u);
  const uint64_t su = lay->stripe_unit;
  ASSERT_EQ(su, 1u << 20);
  EXPECT_TRUE(ReadAll(*f, 1234567) == data);
  for (size_t s = 0; s < 3; s++) {
    const int i = DsIndexOf(lay->mirrors[0][s].address);
    ASSERT_GE(i, 0);
    auto files = DataFilesOn(i);
    ASSERT_EQ(files.size(), 1u) << "data server " << i;
    const std::string on_disk = ReadLocalFile(files[0]);
    // The data file ends with its last stripe unit; its units sit at their file offsets and
    // the others' are holes (zeros).
    uint64_t last_unit = s;
    while ((last_unit + 3) * su < data.size()) last_unit += 3;
    EXPECT_EQ(on_disk.size(), std::min<uint64_t>((last_unit + 1) * su, data.size())) << "stripe " << s;
    for (uint64_t u = 0; u * su < on_disk.size(); u++) {
      const uint64_t off = u * su, n = std::min<uint64_t>(su, on_disk.size() - off);
      if (u % 3 == s)
        EXPECT_TRUE(on_disk.compare(off, n, data, off, n) == 0) << "stripe " << s << " unit " << u;
      else
        EXPECT_TRUE(on_disk.compare(off, n, std::string(n, '\0')) == 0) << "stripe " << s << " unit " << u;
    }
  }
  EXPECT_EQ(c->stats().mds_read_bytes, 0u);
}

TEST_F(DataPathStripedTest, UnalignedPiecesHolesAndReadsPastTheEnd) {
  auto c = Connect();
  ASSERT_TRUE(c);
  auto f = OpenFile(*c, "/u", true, true);
  ASSERT_TRUE(f);
  // A model of the file: written pieces at odd offsets across stripe units, a hole between.
  std::string model;
  auto put = [&](uint64_t off, size_t n, uint32_t seed) {
    const std::string d = RandomBytes(n, seed);
    auto w = f->Write(off, d.data(), n);
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    ASSERT_EQ(*w, n);
    if (model.size() < off + n) model.resize(off + n, '\0');
    model.replace(off, n, d);
  };
  put(7, 1000, 10);
  put((1u << 20) - 3, 10, 11);            // across the first stripe-unit boundary
  put((2u << 20) + 333, (1u << 20) + 5, 12);  // spans units 2 and 3
  put((5u << 20) + 1, 4099, 13);          // after a hole (unit 4 never written)
  EXPECT_EQ(f->size(), model.size());
  ASSERT_TRUE(f->Sync().ok());
  struct Case {
    uint64_t off;
    size_t len;
  };
  for (const Case& k : {Case{0, model.size()}, Case{5, 3}, Case{(1u << 20) - 5, 20}, Case{(3u << 20) - 1, 2},
                        Case{(4u << 20) + 17, 4096}, Case{(2u << 20) + 100, (3u << 20)}}) {
    std::string buf(k.len, 'x');
    auto r = f->Read(k.off, buf.data(), k.len);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    const size_t want = std::min<uint64_t>(k.len, model.size() - k.off);
    ASSERT_EQ(*r, want) << k.off;
    EXPECT_TRUE(buf.compare(0, want, model, k.off, want) == 0) << "at " << k.off;
  }
  // Past the end: what there is, then nothing.
  std::string buf(100, 'x');
  auto r = f->Read(model.size() - 10, buf.data(), 100);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 10u);
  EXPECT_EQ(buf.substr(0, 10), model.substr(model.size() - 10));
  r = f->Read(model.size() + 5, buf.data(), 100);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 0u);
  ASSERT_TRUE(f->Close().ok());
  // The MDS knows the size, and a fresh client reads the same (the hole as zeros).
  auto c2 = Connect();
  auto g = OpenFile(*c2, "/u", false);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->size(), model.size());
  EXPECT_TRUE(ReadAll(*g, 999999) == model);
  EXPECT_EQ(c2->stats().mds_read_bytes, 0u);
}

TEST_F(DataPathStripedTest, ManyReadsInFlight) {
  auto c = Connect();
  ASSERT_TRUE(c);
  const std::string data = RandomBytes(6u << 20, 4);
  WriteFile(*c, "/many", data, 6u << 20);
  auto f = OpenFile(*c, "/many", false);
  ASSERT_TRUE(f);
  constexpr int kReads = 96;
  std::mt19937 rng(5);
  struct Io {
    uint64_t off;
    size_t len;
    std::string buf;
    Status st;
    size_t got = 0;
  };
  std::vector<Io> ios(kReads);
  std::mutex mu;
  std::condition_variable cv;
  int left = kReads;
  for (auto& io : ios) {
    io.off = rng() % data.size();
    io.len = 1 + rng() % (300 * 1024);
    io.buf.assign(io.len, 'x');
  }
  for (auto& io : ios) {
    f->ReadAsync(io.off, io.buf.data(), io.len, [&, p = &io](Status s, size_t n) {
      std::lock_guard<std::mutex> g(mu);
      p->st = s;
      p->got = n;
      if (--left == 0) cv.notify_all();
    });
  }
  {
    std::unique_lock<std::mutex> g(mu);
    cv.wait(g, [&] { return left == 0; });
  }
  for (const auto& io : ios) {
    ASSERT_TRUE(io.st.ok()) << io.st.ToString();
    const size_t want = std::min<uint64_t>(io.len, data.size() - io.off);
    ASSERT_EQ(io.got, want);
    EXPECT_TRUE(io.buf.compare(0, want, data, io.off, want) == 0) << io.off;
  }
  EXPECT_EQ(c->stats().mds_read_bytes, 0u);
}

TEST_F(DataPathMirroredTest, ReadFailsOverWhenADataServerDies) {
  auto w = Connect();
  ASSERT_TRUE(w);
  const std::string data = RandomBytes(8u << 20, 6);
  WriteFile(*w, "/r", data);
  EXPECT_EQ(w->stats().ds_write_bytes, 2 * data.size());  // every byte to both mirrors
  auto c = Connect();
  ASSERT_TRUE(c);
  auto f = OpenFile(*c, "/r", false);
  ASSERT_TRUE(f);
  auto lay = f->Layout();
  ASSERT_TRUE(lay.ok());
  ASSERT_EQ(lay->mirrors.size(), 2u);
  std::string got(data.size(), '\0');
  const size_t half = data.size() / 2;
  const uint64_t mds_reads = MdsReadCalls();
  for (size_t pos = 0; pos < half; pos += 1 << 20) ASSERT_TRUE(f->Read(pos, got.data() + pos, 1 << 20).ok());
  EXPECT_EQ(c->stats().read_failovers, 0u);
  const int victim = DsIndexOf(lay->mirrors[0][0].address);
  ASSERT_GE(victim, 0);
  ds_[victim].server.reset();
  for (size_t pos = half; pos < data.size(); pos += 1 << 20) {
    auto r = f->Read(pos, got.data() + pos, 1 << 20);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_EQ(*r, size_t{1} << 20);
  }
  EXPECT_TRUE(got == data);
  ClientStats s = c->stats();
  EXPECT_GT(s.read_failovers, 0u);
  EXPECT_GT(s.ds_errors, 0u);
  // The other mirror served every byte: nothing went through the metadata server.
  EXPECT_EQ(s.mds_read_bytes, 0u);
  EXPECT_EQ(MdsReadCalls(), mds_reads);
}

void DataPathMirroredTest::WriteWhileADataServerDies() {
  auto c = Connect();
  ASSERT_TRUE(c);
  const std::string data = RandomBytes(4u << 20, 7);
  auto f = OpenFile(*c, "/w", true, true);
  ASSERT_TRUE(f);
  auto lay = f->Layout();
  ASSERT_TRUE(lay.ok());
  ASSERT_EQ(lay->mirrors.size(), 2u);
  const size_t half = data.size() / 2;
  auto r = f->Write(0, data.data(), half);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const int victim = DsIndexOf(lay->mirrors[1][0].address);
  ASSERT_GE(victim, 0);
  ds_[victim].server.reset();
  for (size_t pos = half; pos < data.size(); pos += 1 << 20) {
    r = f->Write(pos, data.data() + pos, 1 << 20);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_EQ(*r, size_t{1} << 20);
  }
  Status s = f->Sync();
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_TRUE(f->Close().ok());
  EXPECT_GT(c->stats().ds_errors, 0u);
  auto st = c->Stat("/w");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->size, data.size());
  // A new client reads every byte back (from the surviving mirror).
  auto c2 = Connect();
  auto g = OpenFile(*c2, "/w", false);
  ASSERT_TRUE(g);
  EXPECT_TRUE(ReadAll(*g) == data);
}

// Without the MDS's background checks the data server is not found down, so the reports
// pile up: loom-mds refuses layouts of the file after three and the rest goes through it.
TEST_F(DataPathMirroredTest, WriteSurvivesADataServerDying) { WriteWhileADataServerDies(); }

// With them, the MDS pings the server the client reported unreachable, finds it down and
// leaves its mirror out of the next layout (marked stale for a resync).
TEST_F(DataPathMirroredTest, WriteSurvivesADataServerDyingWithTheMdsCheckingServers) {
  mds_->StartBackground();
  WriteWhileADataServerDies();
}

TEST_F(DataPathTest, UnstableWritesADataServerLostInARestartAreSentAgain) {
  auto c = Connect();
  ASSERT_TRUE(c);
  const std::string data = RandomBytes((2u << 20) + 100, 11);
  auto f = OpenFile(*c, "/v", true, true);
  ASSERT_TRUE(f);
  auto w = f->Write(0, data.data(), data.size());
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  auto lay = f->Layout();
  ASSERT_TRUE(lay.ok() && lay->granted);
  const int i = DsIndexOf(lay->mirrors[0][0].address);
  ASSERT_GE(i, 0);
  const uint16_t port = ds_[i].server->port();
  // The data server goes down before COMMIT and loses what was not on stable storage (here:
  // everything); it comes back on the same address with a new write verifier.
  ds_[i].server.reset();
  ds_[i].svc.reset();
  ds_[i].fs.reset();
  auto files = DataFilesOn(i);
  ASSERT_EQ(files.size(), 1u);
  fsys::resize_file(files[0], 0);
  auto fs = nfs3::LocalFs::Open(nfs3::LocalFs::Options{dir_ + "/ds" + std::to_string(i), "", 64});
  ASSERT_TRUE(fs.ok());
  ds_[i].fs = std::move(fs.value());
  ds_[i].svc = std::make_unique<nfs3::Nfs3Service>(ds_[i].fs.get(), nfs3::Nfs3Service::Options{});
  rpc::ServerOptions o;
  o.listen = "127.0.0.1:" + std::to_string(port);
  o.workers = 2;
  o.loops = 1;
  ds_[i].server = std::make_unique<rpc::RpcServer>(o);
  ds_[i].server->Register(ds_[i].svc->NfsProgram());
  ASSERT_TRUE(ds_[i].server->Start().ok());
  // COMMIT answers with a verifier unlike the WRITEs': the retained bytes go out again.
  Status s = f->Sync();
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(c->stats().ds_write_bytes, 2 * data.size());
  ASSERT_TRUE(f->Close().ok());
  EXPECT_TRUE(ReadLocalFile(files[0]) == data);  // stable on the data server itself
  auto c2 = Connect();
  auto g = OpenFile(*c2, "/v", false);
  ASSERT_TRUE(g);
  EXPECT_TRUE(ReadAll(*g) == data);
}

TEST_F(DataPathTest, AFencedLayoutIsReplacedAndTheIoRetried) {
  auto c = Connect();
  ASSERT_TRUE(c);
  const std::string data = RandomBytes(1u << 20, 8);
  WriteFile(*c, "/fence", data);
  auto f = OpenFile(*c, "/fence", true);
  ASSERT_TRUE(f);
  std::string got(data.size(), '\0');
  ASSERT_TRUE(f->Read(0, got.data(), got.size()).ok());
  const uint64_t fetched = c->stats().layouts_fetched;
  auto st = c->Stat("/fence");
  ASSERT_TRUE(st.ok());
  // New owner ids on the data files: the layout held stops working (NFS3ERR_ACCES), as after
  // a recall this client could not hear.
  ASSERT_TRUE(mds_->Fence(st->fileid).ok());
  got.assign(data.size(), '\0');
  auto r = f->Read(0, got.data(), got.size());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(got == data);
  EXPECT_GT(c->stats().layouts_fetched, fetched);
  // Writes go on after a fence too: the one refused is redone with the new layout's ids, and
  // the COMMIT of what was written before uses them.
  const std::string more = RandomBytes(4096, 9), again = RandomBytes(5000, 10);
  ASSERT_TRUE(f->Write(10, more.data(), more.size()).ok());
  const uint64_t fetched2 = c->stats().layouts_fetched;
  ASSERT_TRUE(mds_->Fence(st->fileid).ok());
  auto w = f->Write(100000, again.data(), again.size());
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_GT(c->stats().layouts_fetched, fetched2);
  Status s = f->Close();
  ASSERT_TRUE(s.ok()) << s.ToString();
  auto g = OpenFile(*c, "/fence", false);
  ASSERT_TRUE(g);
  std::string want = data;
  want.replace(10, more.size(), more);
  want.replace(100000, again.size(), again);
  EXPECT_TRUE(ReadAll(*g) == want);
  EXPECT_EQ(c->stats().mds_write_bytes, 0u);
}

// ------------------------------------------------------------------ the NFSv3 client alone

void PutWord(std::string& s, uint32_t v) {
  const char b[4] = {char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
  s.append(b, 4);
}

// A READ3 reply (RFC 1813 §3.3.6) to `xid`: no attributes, `data` as the payload but
// announced as `len` bytes.
std::string ReadReply(uint32_t xid, const std::string& data, uint32_t len, bool eof) {
  std::string r;
  for (uint32_t w : {xid, 1u, 0u, 0u, 0u, 0u}) PutWord(r, w);  // REPLY, accepted, AUTH_NONE, SUCCESS
  for (uint32_t w : {0u, 0u, len, eof ? 1u : 0u, len}) PutWord(r, w);  // NFS3_OK, no attrs, count, eof
  r += data;
  r.append((4 - data.size() % 4) % 4, '\0');
  return r;
}

// A data server that answers as each test says, one connection after another.
class FakeDs {
 public:
  // respond(fd, xid, proc) answers one call; false closes the connection.
  using Respond = std::function<bool(int fd, uint32_t xid, uint32_t proc)>;
  explicit FakeDs(Respond respond) : respond_(std::move(respond)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    EXPECT_EQ(::listen(fd_, 4), 0);
    socklen_t l = sizeof(a);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &l);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~FakeDs() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  int connections() const { return connections_.load(); }
  // Sends `body` as one record in fragments cut at `cuts` (RFC 5531 §11).
  static void SendRecord(int fd, const std::string& body, std::vector<size_t> cuts) {
    cuts.push_back(body.size());
    size_t at = 0;
    for (size_t i = 0; i < cuts.size(); i++) {
      const size_t n = cuts[i] - at;
      std::string frag;
      PutWord(frag, static_cast<uint32_t>(n) | (i + 1 == cuts.size() ? 0x80000000u : 0));
      frag += body.substr(at, n);
      ASSERT_EQ(::send(fd, frag.data(), frag.size(), MSG_NOSIGNAL), static_cast<ssize_t>(frag.size()));
      at = cuts[i];
    }
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
        if (!ReadExact(c, rec.data(), len) || len < 24) break;
        auto word = [&](size_t i) {
          const auto* p = reinterpret_cast<const uint8_t*>(rec.data() + 4 * i);
          return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
        };
        if (!respond_(c, word(0), word(5))) break;
      }
      ::close(c);
    }
  }
  Respond respond_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<int> connections_{0};
  std::thread thread_;
};

// Runs one READ of `count` bytes into `dst` and waits for it.
internal::DsReply ReadSync(internal::DsConn& c, uint32_t count, void* dst) {
  std::promise<internal::DsReply> p;
  c.Read(internal::DsCred{1, 1}, Bytes::Copy("fh"), 0, count, dst,
         [&p](const internal::DsReply& r) { p.set_value(r); });
  return p.get_future().get();
}

// The back channel's server side alone (RFC 8881 §20.9.3): CB_SEQUENCE's slot rules, the reply
// cache, and ops it does not serve.
class CallbackServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (size_t i = 0; i < sid_.size(); i++) sid_[i] = static_cast<uint8_t>(i + 1);
    svc_.Reset(sid_, 2, 2);
    svc_.SetHandler([this](const nfs4::nfs_cb_argop4& op) {
      handled_++;
      return op.argop == nfs4::OP_CB_RECALL_ANY ? nfs4::NFS4_OK : nfs4::NFS4ERR_NOTSUPP;
    });
  }
  // CB_SEQUENCE(slot, seq) + ops by number (CB_RECALL_ANY's arguments for 8; op numbers the
  // protocol does not know are sent bare).
  std::string Call(uint32_t slot, uint32_t seq, std::vector<uint32_t> ops, uint32_t minor = 2,
                   uint32_t prog = internal::CallbackService::kProgram) {
    xdr::Encoder e;
    e.u32(77);
    e.i32(rpc::CALL);
    rpc::call_body body;
    body.rpcvers = 2;
    body.prog = prog;
    body.vers = 1;
    body.proc = 1;
    body.cred = rpc::EncodeCred(rpc::Cred::Sys(0, 0, {}, "loom-mds"));
    body.verf.flavor = rpc::AUTH_NONE;
    xdr_encode(e, body);
    e.u32(0);  // tag
    e.u32(minor);
    e.u32(0);  // callback_ident
    e.u32(static_cast<uint32_t>(ops.size() + 1));
    e.u32(nfs4::OP_CB_SEQUENCE);
    nfs4::CB_SEQUENCE4args sa;
    sa.csa_sessionid = sid_;
    sa.csa_sequenceid = seq;
    sa.csa_slotid = slot;
    xdr_encode(e, sa);
    for (uint32_t op : ops) {
      e.u32(op);
      if (op == nfs4::OP_CB_RECALL_ANY) {
        nfs4::CB_RECALL_ANY4args ra;
        ra.craa_type_mask = {1u << 16};
        xdr_encode(e, ra);
      } else if (op == nfs4::OP_CB_RECALL) {
        nfs4::CB_RECALL4args ra;
        xdr_encode(e, ra);
      }
    }
    const std::string bytes = e.Flatten();
    rpc::Record r;
    r.buf = Buffer::Allocate(bytes.size());
    std::memcpy(r.buf->data(), bytes.data(), bytes.size());
    r.size = bytes.size();
    auto reply = svc_.OnCall(r);
    return reply ? reply->Flatten().substr(4) : std::string();  // without the record mark
  }
  // The CB_COMPOUND4res of a reply (status NFS4ERR_SERVERFAULT when undecodable).
  static nfs4::CB_COMPOUND4res Res(const std::string& reply) {
    nfs4::CB_COMPOUND4res res;
    res.status = nfs4::NFS4ERR_SERVERFAULT;
    uint32_t xid = 0;
    auto off = rpc::ParseReplyHeader(reinterpret_cast<const uint8_t*>(reply.data()), reply.size(), &xid);
    if (!off.ok()) return res;
    xdr::Decoder d(reinterpret_cast<const uint8_t*>(reply.data()) + *off, reply.size() - *off);
    if (!xdr_decode(d, res)) res.status = nfs4::NFS4ERR_SERVERFAULT;
    return res;
  }

  internal::CallbackService svc_;
  nfs4::sessionid4 sid_{};
  int handled_ = 0;
};

TEST_F(CallbackServiceTest, SlotsRunEachSeqidOnceAndReplayTheCachedReply) {
  const std::string first = Call(0, 1, {nfs4::OP_CB_RECALL_ANY});
  auto res = Res(first);
  ASSERT_EQ(res.status, nfs4::NFS4_OK);
  ASSERT_EQ(res.resarray.size(), 2u);
  EXPECT_EQ(res.resarray[0].opcbsequence->csr_resok4.csr_sequenceid, 1u);
  EXPECT_EQ(res.resarray[1].resop, nfs4::OP_CB_RECALL_ANY);
  EXPECT_EQ(handled_, 1);
  // A retransmission gets the same reply without running again.
  EXPECT_EQ(Call(0, 1, {nfs4::OP_CB_RECALL_ANY}), first);
  EXPECT_EQ(handled_, 1);
  // Skipping a seqid, an unknown slot, or another session is refused before any op runs.
  EXPECT_EQ(Res(Call(0, 3, {nfs4::OP_CB_RECALL_ANY})).status, nfs4::NFS4ERR_SEQ_MISORDERED);
  EXPECT_EQ(Res(Call(2, 1, {nfs4::OP_CB_RECALL_ANY})).status, nfs4::NFS4ERR_BADSLOT);
  sid_[0] ^= 0xff;
  EXPECT_EQ(Res(Call(0, 2, {nfs4::OP_CB_RECALL_ANY})).status, nfs4::NFS4ERR_BADSESSION);
  sid_[0] ^= 0xff;
  EXPECT_EQ(handled_, 1);
  // Slots are independent; slot 0 goes on at 2.
  EXPECT_EQ(Res(Call(1, 1, {nfs4::OP_CB_RECALL_ANY})).status, nfs4::NFS4_OK);
  EXPECT_EQ(Res(Call(0, 2, {nfs4::OP_CB_RECALL_ANY})).status, nfs4::NFS4_OK);
  EXPECT_EQ(handled_, 3);
}

TEST_F(CallbackServiceTest, OpsItDoesNotServeAreRefused) {
  // CB_RECALL (delegations: libloom takes none): NOTSUPP, and the compound stops there.
  auto res = Res(Call(0, 1, {nfs4::OP_CB_RECALL, nfs4::OP_CB_RECALL_ANY}));
  EXPECT_EQ(res.status, nfs4::NFS4ERR_NOTSUPP);
  ASSERT_EQ(res.resarray.size(), 2u);
  EXPECT_EQ(res.resarray[1].opcbrecall->status, nfs4::NFS4ERR_NOTSUPP);
  EXPECT_EQ(handled_, 1);
  // An op number outside the callback range: OP_CB_ILLEGAL.
  res = Res(Call(0, 2, {99}));
  EXPECT_EQ(res.status, nfs4::NFS4ERR_OP_ILLEGAL);
  ASSERT_EQ(res.resarray.size(), 2u);
  EXPECT_EQ(res.resarray[1].resop, nfs4::OP_CB_ILLEGAL);
  // The wrong minor version, and the wrong program.
  EXPECT_EQ(Res(Call(0, 3, {}, 1)).status, nfs4::NFS4ERR_MINOR_VERS_MISMATCH);
  uint32_t xid = 0;
  const std::string r = Call(0, 3, {}, 2, 12345);
  EXPECT_EQ(rpc::ParseReplyHeader(reinterpret_cast<const uint8_t*>(r.data()), r.size(), &xid).status().code(),
            loom::Code::kNotFound);  // PROG_UNAVAIL
  EXPECT_EQ(handled_, 1);
}

TEST(DataPathDsConnTest, ReadPayloadArrivesAcrossFragments) {
  const std::string data = RandomBytes(100001, 20);
  FakeDs ds([&](int fd, uint32_t xid, uint32_t proc) {
    EXPECT_EQ(proc, 6u);  // NFSPROC3_READ
    // A reply to a call nobody made first (skipped), then the real one in four fragments,
    // cut inside the header and inside the payload.
    FakeDs::SendRecord(fd, ReadReply(xid + 1000, "zz", 2, false), {});
    FakeDs::SendRecord(fd, ReadReply(xid, data, static_cast<uint32_t>(data.size()), true), {7, 45, 50000});
    return true;
  });
  internal::DsConn c(ds.address(), 5000);
  std::string buf(data.size() + 16, 'x');
  internal::DsReply r = ReadSync(c, static_cast<uint32_t>(data.size()), buf.data());
  ASSERT_TRUE(r.ok()) << r.transport.ToString();
  EXPECT_EQ(r.count, data.size());
  EXPECT_TRUE(r.eof);
  EXPECT_TRUE(buf.compare(0, data.size(), data) == 0);
  EXPECT_EQ(buf.substr(data.size()), std::string(16, 'x'));
}

TEST(DataPathDsConnTest, APayloadLongerThanAskedIsRefusedAndTheBufferUntouched) {
  FakeDs ds([&](int fd, uint32_t xid, uint32_t) {
    FakeDs::SendRecord(fd, ReadReply(xid, std::string(32, 'A'), 32, false), {});
    return true;
  });
  internal::DsConn c(ds.address(), 5000);
  std::string buf(64, 'x');
  internal::DsReply r = ReadSync(c, 16, buf.data());
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.transport.code(), Errc::kInternal);
  EXPECT_EQ(buf, std::string(64, 'x'));
}

TEST(DataPathDsConnTest, ALostConnectionFailsTheCallAndTheNextOneReconnects) {
  int calls = 0;
  FakeDs ds([&](int fd, uint32_t xid, uint32_t) {
    if (calls++ == 0) {
      // Half the reply, then the connection goes.
      std::string rep = ReadReply(xid, std::string(1000, 'B'), 1000, false);
      std::string mark;
      PutWord(mark, static_cast<uint32_t>(rep.size()) | 0x80000000u);
      std::string half = mark + rep.substr(0, 500);
      EXPECT_EQ(::send(fd, half.data(), half.size(), MSG_NOSIGNAL), static_cast<ssize_t>(half.size()));
      return false;
    }
    FakeDs::SendRecord(fd, ReadReply(xid, std::string(1000, 'C'), 1000, false), {});
    return true;
  });
  internal::DsConn c(ds.address(), 5000);
  std::string buf(1000, 'x');
  internal::DsReply r = ReadSync(c, 1000, buf.data());
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.transport.code(), Errc::kUnavailable);
  r = ReadSync(c, 1000, buf.data());
  ASSERT_TRUE(r.ok()) << r.transport.ToString();
  EXPECT_EQ(buf, std::string(1000, 'C'));
  EXPECT_EQ(ds.connections(), 2);
}

TEST(DataPathDsConnTest, ACallWithoutAnswerTimesOut) {
  FakeDs ds([&](int, uint32_t, uint32_t) { return true; });  // never answers
  internal::DsConn c(ds.address(), 300);
  std::string buf(10, 'x');
  internal::DsReply r = ReadSync(c, 10, buf.data());
  EXPECT_EQ(r.transport.code(), Errc::kTimeout);
  EXPECT_EQ(buf, std::string(10, 'x'));
}

}  // namespace
}  // namespace loom::client
