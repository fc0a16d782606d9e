// Issue 10, "Must show": SIGKILL loom-mds and the data servers at random points while a client
// writes (UNSTABLE + COMMIT), renames, truncates and removes files; restart them; then every
// file whose COMMIT or metadata reply was received reads back identical, and
// `loom-mds --scrub` finds nothing wrong.
//
// The client keeps a model: per name, known contents, known absent, or unknown (a reply that
// never came, or an error after a change may have been made). Only known names are checked.
#include <atomic>
#include <map>
#include <mutex>
#include <random>

#include <gtest/gtest.h>

#include "tests/crash/cluster.h"

namespace loom::crash {
namespace {

struct Entry {
  enum { kAbsent, kKnown, kUnknown } state = kAbsent;
  std::string data;
};

std::string Random(std::mt19937& rng, size_t n) {
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

TEST(CrashTest, KillsDuringWritesRenamesTruncatesRemoves) {
  const std::string dir = TempDir("crash");
  const uint32_t seed = std::random_device()();
  std::printf("seed %u, directory %s\n", seed, dir.c_str());
  std::mt19937 rng(seed);
  std::vector<std::unique_ptr<Ds>> ds;
  for (int i = 0; i < 2; i++) {
    fsys::create_directories(dir + "/ds" + std::to_string(i));
    ds.push_back(std::make_unique<Ds>(dir + "/ds" + std::to_string(i)));
    ASSERT_TRUE(ds.back()->Start());
  }
  const std::vector<std::string> addrs = {ds[0]->addr(), ds[1]->addr()};
  Mds mds(dir);
  ASSERT_TRUE(mds.Start(addrs)) << mds.log();

  // The killer: every 0.3 to 1.5 s one process dies and comes back 50 to 400 ms later.
  std::mutex procs_mu;  // guards mds and ds against the final checks
  std::atomic<bool> stop{false};
  std::atomic<int> kills{0};
  std::string start_failure;
  std::thread killer([&] {
    std::mt19937 krng(seed + 1);
    while (!stop) {
      std::this_thread::sleep_for(std::chrono::milliseconds(300 + krng() % 1200));
      if (stop) break;
      std::lock_guard<std::mutex> l(procs_mu);
      int victim = static_cast<int>(krng() % 3);
      if (victim == 0) mds.Kill(SIGKILL);
      else ds[victim - 1]->Kill(SIGKILL);
      kills++;
      std::this_thread::sleep_for(std::chrono::milliseconds(50 + krng() % 350));
      bool ok = victim == 0 ? mds.Start(addrs) : ds[victim - 1]->Start();
      if (!ok) {
        start_failure = victim == 0 ? "loom-mds exit " + std::to_string(mds.exit_code()) + ": " + mds.log()
                                    : "loom-ds " + std::to_string(victim - 1);
        stop = true;
      }
    }
  });

  std::map<std::string, Entry> model;
  const int kNames = 12;
  auto name = [&](int i) { return "f" + std::to_string(i); };
  FileClient c;
  auto connect = [&] {
    for (int i = 0; i < 300 && !c.connected() && !start_failure.size(); i++) {
      if (c.Connect(mds.addr())) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  };
  size_t done[4] = {0, 0, 0, 0};
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < end && !stop) {
    connect();
    const int op = static_cast<int>(rng() % 10);
    const std::string a = name(static_cast<int>(rng() % kNames));
    Entry& ea = model[a];
    if (op < 5) {  // write the whole file, COMMIT
      std::string data = Random(rng, rng() % (200 * 1024));
      nfs4::nfsstat4 st = c.Put(a, data);
      if (st == nfs4::NFS4_OK) ea = Entry{Entry::kKnown, std::move(data)};
      else ea.state = Entry::kUnknown;
      done[0] += st == nfs4::NFS4_OK;
    } else if (op < 7) {  // rename (one transaction: an error reply means nothing happened)
      const std::string b = name(static_cast<int>(rng() % kNames));
      if (a == b) continue;
      Entry& eb = model[b];
      nfs4::nfsstat4 st = c.Rename(a, b);
      if (st == nfs4::NFS4_OK) {
        eb = ea;
        ea = Entry{};
      } else if (st == FileClient::kNoReply) {
        ea.state = eb.state = Entry::kUnknown;
      }
      done[1] += st == nfs4::NFS4_OK;
    } else if (op < 9) {  // truncate, shorter or longer
      const uint64_t size = rng() % (250 * 1024);
      nfs4::nfsstat4 st = c.Truncate(a, size);
      if (st == nfs4::NFS4_OK && ea.state == Entry::kKnown) ea.data.resize(size, '\0');
      else if (st != nfs4::NFS4_OK && !(st == nfs4::NFS4ERR_NOENT && ea.state == Entry::kAbsent))
        ea.state = Entry::kUnknown;
      done[2] += st == nfs4::NFS4_OK;
    } else {  // remove
      nfs4::nfsstat4 st = c.Remove(a);
      if (st == nfs4::NFS4_OK) ea = Entry{};
      else if (st == FileClient::kNoReply) ea.state = Entry::kUnknown;
      done[3] += st == nfs4::NFS4_OK;
    }
  }
  stop = true;
  killer.join();
  ASSERT_TRUE(start_failure.empty()) << "a restart failed: " << start_failure;
  std::printf("%d kills; succeeded: %zu writes, %zu renames, %zu truncates, %zu removes\n",
              kills.load(), done[0], done[1], done[2], done[3]);
  EXPECT_GT(done[0], 0u);

  // One last crash of everything, and a restart; then every known file as the model says.
  mds.Kill(SIGKILL);
  for (auto& d : ds) {
    d->Kill(SIGKILL);
    ASSERT_TRUE(d->Start());
  }
  ASSERT_TRUE(mds.Start(addrs)) << mds.log();
  FileClient v;
  ASSERT_TRUE(v.Connect(mds.addr()));
  size_t checked = 0;
  for (const auto& [n, e] : model) {
    if (e.state == Entry::kUnknown) continue;
    std::string got;
    nfs4::nfsstat4 st = v.Get(n, &got);
    if (e.state == Entry::kAbsent) {
      EXPECT_EQ(st, nfs4::NFS4ERR_NOENT) << n;
    } else {
      EXPECT_EQ(st, nfs4::NFS4_OK) << n;
      EXPECT_EQ(got.size(), e.data.size()) << n;
      EXPECT_TRUE(got == e.data) << n << ": contents differ";
    }
    checked++;
  }
  std::printf("checked %zu files\n", checked);

  // The store and the data servers agree.
  mds.Kill(SIGTERM);
  Mds scrub(dir, mds.state());
  EXPECT_EQ(scrub.Run(addrs, {"--scrub"}), 0) << scrub.log();
  const std::string out = scrub.log();
  EXPECT_NE(out.find("missing=0 orphans=0 stale_intents=0 unreachable=0"), std::string::npos) << out;
  if (!HasFailure()) fsys::remove_all(dir);
}

}  // namespace
}  // namespace loom::crash
