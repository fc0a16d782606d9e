// libloom against an in-process loom-mds and loom-ds cluster (src/nfs4/mds_fixture.h): the
// namespace API, errors in words, many calls in flight on one session, recovery after a
// metadata-server restart, the client record dropped at Close, and the C ABI. The data path
// has its own tests (data_path_test.cc).
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <future>
#include <thread>

#include "loom/client.h"
#include "loom/loom.h"
#include "nfs4/mds_fixture.h"

namespace loom::nfs4 {
namespace {

namespace lc = loom::client;

class ClientTest : public MdsTest {
 protected:
  lc::Options Opts() {
    lc::Options o;
    o.mds = "127.0.0.1:" + std::to_string(port_);
    o.uid = 0;
    o.gid = 0;
    o.retry_for_ms = 20000;
    return o;
  }
  std::shared_ptr<lc::Client> Connect(lc::Options o) {
    auto c = lc::Client::Connect(o);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? c.value() : nullptr;
  }
  std::shared_ptr<lc::Client> Connect() { return Connect(Opts()); }
  // Open for writing, creating the file if missing.
  static lc::OpenFlags Creating() {
    lc::OpenFlags wr;
    wr.write = true;
    wr.create = true;
    return wr;
  }
};

TEST_F(ClientTest, NamespaceOperations) {
  auto c = Connect();
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->MkdirAll("/a/b/c").ok());
  ASSERT_TRUE(c->MkdirAll("/a/b/c").ok());  // mkdir -p of what exists is fine
  auto st = c->Stat("/a/b");
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_EQ(st->type, lc::FileType::kDirectory);
  EXPECT_EQ(st->mode, 0755u);
  EXPECT_NE(st->fileid, 0u);

  // Errors come back as classes with the path in words.
  auto missing = c->Stat("/a/nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), lc::Errc::kNotFound);
  EXPECT_EQ(missing.status().nfs_status(), NFS4ERR_NOENT);
  EXPECT_NE(missing.status().ToString().find("no such file or directory"), std::string::npos);
  EXPECT_NE(missing.status().ToString().find("/a/nope"), std::string::npos);
  EXPECT_EQ(missing.status().posix_errno(), ENOENT);
  EXPECT_EQ(c->Mkdir("/a/b").code(), lc::Errc::kExists);
  EXPECT_EQ(c->Remove("/a").code(), lc::Errc::kNotEmpty);
  EXPECT_EQ(c->Remove("/").code(), lc::Errc::kInvalid);
  EXPECT_EQ(c->Remove("").code(), lc::Errc::kInvalid);
  EXPECT_EQ(c->Mkdir("/").code(), lc::Errc::kExists);
  auto root_open = c->Open("/", lc::OpenFlags{});
  EXPECT_EQ(root_open.status().code(), lc::Errc::kIsDir);
  auto dir_open = c->Open("/a", lc::OpenFlags{});
  ASSERT_FALSE(dir_open.ok());
  EXPECT_EQ(dir_open.status().code(), lc::Errc::kIsDir) << dir_open.status().ToString();
  EXPECT_EQ(c->List("/a/b/c/d").status().code(), lc::Errc::kNotFound);

  // Symlinks, chmod, rename, listing.
  ASSERT_TRUE(c->Symlink("b/c", "/a/link").ok());
  auto target = c->Readlink("/a/link");
  ASSERT_TRUE(target.ok());
  EXPECT_EQ(target.value(), "b/c");
  ASSERT_TRUE(c->Chmod("/a/b/c", 0700).ok());
  EXPECT_EQ(c->Stat("/a/b/c")->mode, 0700u);
  ASSERT_TRUE(c->Rename("/a/b/c", "/a/c2").ok());
  EXPECT_EQ(c->Stat("/a/b/c").status().code(), lc::Errc::kNotFound);
  auto l = c->List("/a");
  ASSERT_TRUE(l.ok());
  std::set<std::string> names;
  for (const auto& e : l.value()) names.insert(e.name);
  EXPECT_EQ(names, (std::set<std::string>{"b", "c2", "link"}));
  for (const auto& e : l.value()) {
    if (e.name == "link") {
      EXPECT_EQ(e.attr.type, lc::FileType::kSymlink);
    }
    if (e.name == "c2") {
      EXPECT_EQ(e.attr.type, lc::FileType::kDirectory);
    }
  }
  EXPECT_EQ(c->List("/a/link").status().code(), lc::Errc::kNotDir);
  ASSERT_TRUE(c->Remove("/a/link").ok());
  ASSERT_TRUE(c->Remove("/a/c2").ok());
  ASSERT_TRUE(c->Remove("/a/b").ok());
  ASSERT_TRUE(c->Remove("/a").ok());
  EXPECT_TRUE(c->List("/")->empty());
  // "." and ".." are resolved by the client; the path never escapes the root.
  ASSERT_TRUE(c->Mkdir("/x").ok());
  EXPECT_TRUE(c->Stat("/x/../../x/.").ok());

  auto fs = c->StatFs("/");
  ASSERT_TRUE(fs.ok()) << fs.status().ToString();
  EXPECT_GT(fs->total_bytes, 0u);
  EXPECT_LE(fs->avail_bytes, fs->total_bytes);
}

TEST_F(ClientTest, DeepPathsAreWalkedInSteps) {
  auto c = Connect();
  ASSERT_TRUE(c);
  std::string p;
  for (int i = 0; i < 70; i++) p += "/d" + std::to_string(i);
  ASSERT_TRUE(c->MkdirAll(p).ok());
  auto st = c->Stat(p);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_EQ(st->type, lc::FileType::kDirectory);
  EXPECT_TRUE(c->List(p).ok());
  EXPECT_EQ(c->Stat(p + "/missing").status().code(), lc::Errc::kNotFound);
}

TEST_F(ClientTest, TheCallersCredentialsAreUsed) {
  auto root = Connect();
  ASSERT_TRUE(root);
  ASSERT_TRUE(root->Mkdir("/private", 0700).ok());
  auto o = Opts();
  o.uid = 1000;
  o.gid = 1000;
  auto user = Connect(o);
  ASSERT_TRUE(user);
  EXPECT_EQ(user->Mkdir("/private/x").code(), lc::Errc::kPermission);
  EXPECT_EQ(user->List("/private").status().code(), lc::Errc::kPermission);
  // A directory the user owns through root's chmod is writable for it.
  ASSERT_TRUE(root->Mkdir("/shared", 0777).ok());
  ASSERT_TRUE(user->Mkdir("/shared/u").ok());
  auto st = root->Stat("/shared/u");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->owner.substr(0, 4), "1000");
}

TEST_F(ClientTest, ManyCallsInFlightShareTheSlots) {
  auto o = Opts();
  o.slots = 16;
  auto c = Connect(o);
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->Mkdir("/many").ok());
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 32; t++) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; i++) {
        const std::string p = "/many/t" + std::to_string(t) + "." + std::to_string(i);
        if (!c->Mkdir(p).ok() || !c->Stat(p).ok()) failures++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(c->List("/many")->size(), 320u);
  EXPECT_GE(c->stats().mds_calls, 640u);
}

TEST_F(ClientTest, RecoversAfterTheMetadataServerRestarts) {
  auto c = Connect();
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->Mkdir("/before").ok());
  const lc::OpenFlags wr = Creating();
  auto f = c->Open("/kept", wr);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  // Restart with a grace period: this client holds an open and must reclaim it.
  StopMds();
  StartMds(/*grace=*/20);
  ASSERT_TRUE(mds_->InGrace());
  auto st = c->Stat("/before");
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_EQ(c->stats().recoveries, 1u);
  // Its RECLAIM_COMPLETE (and the fixture client's) end the grace period early, at the next
  // tick: a new file can be created at once (libloom would also retry NFS4ERR_GRACE until then).
  mds_->Tick();
  EXPECT_FALSE(mds_->InGrace());
  auto g = c->Open("/after", wr);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_TRUE(g.value()->Close().ok());
  // The reclaimed open is valid again: CLOSE succeeds.
  EXPECT_TRUE(f.value()->Close().ok());
  EXPECT_TRUE(c->Stat("/kept").ok());
}

TEST_F(ClientTest, OpsRetryThroughTheGracePeriod) {
  auto c = Connect();
  ASSERT_TRUE(c);
  const lc::OpenFlags wr = Creating();
  // A client of the previous boot that never comes back holds the grace period for its full
  // length (3 s here): an OPEN meanwhile gets NFS4ERR_GRACE and is retried, not failed.
  auto other = NewClient("gone-for-good");
  {
    COMPOUND4res r;
    ASSERT_EQ(Run(Ops(PutRootFh(), Open("o", "held", OPEN4_SHARE_ACCESS_BOTH, true)), &r, other.get()),
              NFS4_OK);
  }
  other.reset();
  StopMds();
  StartMds(/*grace=*/3);
  ASSERT_TRUE(mds_->InGrace());
  // loom-mds's timer runs Tick (lease expiry, end of grace); the fixture has none.
  std::atomic<bool> stop{false};
  std::thread ticker([&] {
    while (!stop) {
      mds_->Tick();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  auto f = c->Open("/during-grace", wr);
  stop = true;
  ticker.join();
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_FALSE(mds_->InGrace());
  EXPECT_GE(c->stats().retries, 1u);
  EXPECT_TRUE(f.value()->Close().ok());
}

TEST_F(ClientTest, CloseDropsTheClientRecordSoARestartHasNoGraceForIt) {
  {
    auto c = Connect();
    ASSERT_TRUE(c);
    const lc::OpenFlags wr = Creating();
    auto f = c->Open("/f", wr);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE(f.value()->Close().ok());
    c->Close();
  }
  StopMds();
  StartMds(/*grace=*/30);
  // The only client of the previous boot left is the fixture's, which reclaimed at once.
  mds_->Tick();
  EXPECT_FALSE(mds_->InGrace());
}

// The application may drop its client while callbacks still hold it (or a File, which holds
// it): the last reference then goes on one of libloom's own threads, here the session's loop
// when it destroys the OpenAsync callback. The teardown joins that very thread, so it must
// run elsewhere (client.cc, ClientDeleter): before, std::thread::join threw and the process
// ended in std::terminate. The client still says goodbye (DESTROY_CLIENTID).
TEST_F(ClientTest, TheLastReferenceMayGoOnTheClientsOwnThread) {
  {
    auto c = Connect();
    ASSERT_TRUE(c);
    auto f = c->Open("/last-ref", Creating());
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE(f.value()->Close().ok());
  }
  auto destroyed = [&] { return mds_->stats().Get("nfs4.op.DESTROY_CLIENTID")->calls(); };
  const uint64_t before = destroyed();
  for (int i = 0; i < 20; ++i) {
    auto c = Connect();
    ASSERT_TRUE(c);
    std::promise<void> ran;
    c->OpenAsync("/last-ref", lc::OpenFlags{}, [&ran](lc::Result<std::shared_ptr<lc::File>> r) {
      EXPECT_TRUE(r.ok()) << r.status().ToString();
      ran.set_value();
    });  // the callback, and the File it gets, hold the client from here on
    c.reset();
    ran.get_future().wait();
  }
  for (int i = 0; i < 500 && destroyed() < before + 20; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(destroyed(), before + 20);
}

TEST_F(ClientTest, AnUnreachableServerFailsInWords) {
  auto o = Opts();
  o.mds = "127.0.0.1:1";  // nothing listens there
  o.retry_for_ms = 300;
  auto c = lc::Client::Connect(o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), lc::Errc::kUnavailable) << c.status().ToString();
  o.mds = "no-such-host.invalid:20490";
  c = lc::Client::Connect(o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), lc::Errc::kUnavailable);
  EXPECT_NE(c.status().ToString().find("no-such-host.invalid"), std::string::npos);
  o.mds = "localhost:" + std::to_string(port_);  // host names resolve
  o.retry_for_ms = 5000;
  EXPECT_TRUE(lc::Client::Connect(o).ok());
  o.mds = "127.0.0.1:99999";
  EXPECT_EQ(lc::Client::Connect(o).status().code(), lc::Errc::kInvalid);
}

TEST_F(ClientTest, OpensOfOneFileAreIndependent) {
  auto c = Connect();
  ASSERT_TRUE(c);
  const lc::OpenFlags wr = Creating();
  const std::string data = "shared by many opens";
  {
    auto f = c->Open("/x", wr);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE(f.value()->Write(0, data.data(), data.size()).ok());
    ASSERT_TRUE(f.value()->Close().ok());
  }
  // Two opens at once: closing one leaves the other usable (each has its own open-owner and
  // stateid; with one owner they would share a stateid that the first CLOSE ends).
  auto a = c->Open("/x", lc::OpenFlags{});
  auto b = c->Open("/x", lc::OpenFlags{});
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(a.value()->Close().ok());
  std::string buf(data.size(), '\0');
  auto n = b.value()->Read(0, buf.data(), buf.size());
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(buf, data);
  ASSERT_TRUE(b.value()->Close().ok());
  // Many threads opening, reading and closing the same file through one client.
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; t++) {
    threads.emplace_back([&] {
      for (int i = 0; i < 40; i++) {
        auto f = c->Open("/x", lc::OpenFlags{});
        if (!f.ok()) {
          failures++;
          continue;
        }
        std::string got(data.size(), '\0');
        auto r = f.value()->Read(0, got.data(), got.size());
        if (!r.ok() || got != data) failures++;
        if (!f.value()->Close().ok()) failures++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
}

// OpenAsync / CloseAsync: many opens in flight from one thread, each file read started from
// its open's callback (on the library's thread), closed without waiting; errors in words; the
// opens that must wait (truncation) still work; a file dropped unclosed inside a callback
// closes without hanging the client.
TEST_F(ClientTest, OpensAndClosesWithoutWaiting) {
  auto c = Connect();
  ASSERT_TRUE(c);
  const lc::OpenFlags wr = Creating();
  constexpr int kFiles = 24;
  auto content = [](int i) { return "file " + std::to_string(i) + std::string(100 + i, 'a' + i % 26); };
  ASSERT_TRUE(c->MkdirAll("/async/d").ok());
  for (int i = 0; i < kFiles; i++) {
    auto f = c->Open("/async/d/f" + std::to_string(i), wr);
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    const std::string d = content(i);
    ASSERT_TRUE(f.value()->Write(0, d.data(), d.size()).ok());
    ASSERT_TRUE(f.value()->Close().ok());
  }
  struct Got {
    std::promise<std::string> bytes;  // what the read returned, or "error: ..."
    std::promise<lc::Status> closed;
    std::string buf = std::string(200, '\0');
  };
  std::vector<Got> got(kFiles);
  for (int i = 0; i < kFiles; i++) {
    Got& g = got[i];
    c->OpenAsync("/async/d/f" + std::to_string(i), lc::OpenFlags{},
                 [&g](lc::Result<std::shared_ptr<lc::File>> r) {
                   if (!r.ok()) {
                     g.bytes.set_value("error: " + r.status().ToString());
                     g.closed.set_value(r.status());
                     return;
                   }
                   std::shared_ptr<lc::File> f = r.value();
                   f->ReadAsync(0, g.buf.data(), g.buf.size(), [&g, f](lc::Status st, size_t n) {
                     g.bytes.set_value(st.ok() ? g.buf.substr(0, n) : "error: " + st.ToString());
                     f->CloseAsync([&g](lc::Status cs) { g.closed.set_value(cs); });
                   });
                 });
  }
  for (int i = 0; i < kFiles; i++) {
    EXPECT_EQ(got[i].bytes.get_future().get(), content(i)) << i;
    lc::Status cs = got[i].closed.get_future().get();
    EXPECT_TRUE(cs.ok()) << i << ": " << cs.ToString();
  }

  // Errors arrive through the callback, in words.
  auto open_async = [&](const std::string& path, lc::OpenFlags fl) {
    std::promise<lc::Result<std::shared_ptr<lc::File>>> p;
    c->OpenAsync(path, fl, [&p](lc::Result<std::shared_ptr<lc::File>> r) { p.set_value(std::move(r)); });
    return p.get_future().get();
  };
  auto missing = open_async("/async/d/nope", lc::OpenFlags{});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), lc::Errc::kNotFound);
  EXPECT_NE(missing.status().ToString().find("/async/d/nope"), std::string::npos);
  EXPECT_EQ(open_async("/", lc::OpenFlags{}).status().code(), lc::Errc::kIsDir);
  lc::OpenFlags neither;
  neither.read = false;
  EXPECT_EQ(open_async("/async/d/f0", neither).status().code(), lc::Errc::kInvalid);

  // A truncating open is one that waits (OPEN, then SETATTR): it still truncates.
  lc::OpenFlags trunc = wr;
  trunc.truncate = true;
  auto t = open_async("/async/d/f1", trunc);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t.value()->size(), 0u);
  std::promise<lc::Status> tclosed;
  t.value()->CloseAsync([&tclosed](lc::Status s) { tclosed.set_value(s); });
  EXPECT_TRUE(tclosed.get_future().get().ok());
  auto st = c->Stat("/async/d/f1");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->size, 0u);

  // A file dropped unclosed in its open's callback (the library's loop thread) closes
  // without waiting there for the reply it would need that same thread to read.
  std::promise<void> dropped;
  c->OpenAsync("/async/d/f2", lc::OpenFlags{}, [&dropped](lc::Result<std::shared_ptr<lc::File>> r) {
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    dropped.set_value();
  });
  dropped.get_future().get();
  // A call that waits for the MDS, made in a callback on that thread, fails at once in words
  // instead of waiting for a reply only that thread could read.
  std::promise<std::pair<lc::Status, lc::Status>> waited;
  c->OpenAsync("/async/d/f3", lc::OpenFlags{}, [&c, &waited](lc::Result<std::shared_ptr<lc::File>> r) {
    if (!r.ok()) return waited.set_value({r.status(), r.status()});
    lc::Status stat = c->Stat("/async/d/f3").status();
    lc::Status close = r.value()->Close();
    waited.set_value({stat, close});
  });
  auto [stat_in_cb, close_in_cb] = waited.get_future().get();
  EXPECT_EQ(stat_in_cb.code(), lc::Errc::kInternal) << stat_in_cb.ToString();
  EXPECT_EQ(close_in_cb.code(), lc::Errc::kInternal) << close_in_cb.ToString();
  EXPECT_NE(close_in_cb.ToString().find("session's own thread"), std::string::npos) << close_in_cb.ToString();
  // The client goes on, and the file can be removed (its open is gone on the server).
  EXPECT_TRUE(c->Stat("/async/d/f2").ok());
  for (int i = 0; i < kFiles; i++) EXPECT_TRUE(c->Remove("/async/d/f" + std::to_string(i)).ok()) << i;
  EXPECT_TRUE(c->Remove("/async/d").ok());
}

int CountEntry(void* arg, const char* name, const loom_stat_t* st) {
  auto* names = static_cast<std::set<std::string>*>(arg);
  names->insert(std::string(name) + (st->type == 2 ? "/" : ""));
  return 0;
}

TEST_F(ClientTest, CAbi) {
  if (::getuid() != 0) GTEST_SKIP() << "needs root (the C ABI uses this process's credentials)";
  loom_client* c = nullptr;
  const std::string addr = "127.0.0.1:" + std::to_string(port_);
  ASSERT_EQ(loom_connect(addr.c_str(), &c), 0) << loom_last_error();
  EXPECT_EQ(loom_mkdir(c, "/cdir", 0755), 0);
  EXPECT_EQ(loom_mkdir(c, "/cdir", 0755), -EEXIST);
  EXPECT_NE(std::string(loom_last_error()).find("/cdir"), std::string::npos);
  loom_stat_t st;
  EXPECT_EQ(loom_stat(c, "/cdir", &st), 0);
  EXPECT_EQ(st.type, 2u);
  EXPECT_EQ(loom_stat(c, "/none", &st), -ENOENT);
  EXPECT_EQ(loom_rename(c, "/cdir", "/cdir2"), 0);
  std::set<std::string> names;
  EXPECT_EQ(loom_listdir(c, "/", CountEntry, &names), 0);
  EXPECT_EQ(names, std::set<std::string>{"cdir2/"});
  EXPECT_EQ(loom_remove(c, "/cdir2"), 0);
  EXPECT_EQ(loom_stat(nullptr, "/", &st), -EINVAL);
  EXPECT_STREQ(loom_version(), "0.1.0");
  loom_disconnect(c);
}

}  // namespace
}  // namespace loom::nfs4
