// Size and durability of proxied I/O, end to end (real RocksDB, real loom-ds):
//  - a WRITE past EOF and a truncate of the same file are serialized across "data servers +
//    metadata store" (size_locks.h), in both orders, and under a free-running race;
//  - UNSTABLE WRITEs leave their size durable to COMMIT (one metadata sync, not one per WRITE),
//    and the write verifier changes when loom-mds restarts so that clients resend.
#include <condition_variable>
#include <mutex>
#include <thread>

#include "nfs4/mds_fixture.h"

namespace loom::nfs4 {
namespace {

std::string Pattern(size_t n, char seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i++) s[i] = static_cast<char>('a' + (seed + i) % 26);
  return s;
}

// One event a test thread waits for.
class Latch {
 public:
  void Set() {
    std::lock_guard<std::mutex> l(mu_);
    set_ = true;
    cv_.notify_all();
  }
  void Wait() {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return set_; });
  }
  bool IsSet() {
    std::lock_guard<std::mutex> l(mu_);
    return set_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool set_ = false;
};

class MdsDurabilityTest : public MdsTest {
 protected:
  // A file open by client_ (fh, sid) and by a second client (other, bsid): one side writes,
  // the other changes the size.
  struct SharedFile {
    Bytes fh;
    stateid4 sid;
    uint64_t ino = 0;
    std::unique_ptr<V4Client> other;
    stateid4 bsid;
  };
  void OpenFromTwoClients(const std::string& name, const std::string& data, SharedFile* f) {
    ASSERT_NO_FATAL_FAILURE(CreateFile(name, data, &f->fh, &f->sid));
    f->ino = Ino(f->fh);
    f->other = NewClient("client-b");
    COMPOUND4res r;
    ASSERT_EQ(
        Run(Ops(PutFh(f->fh), OpenFh("owner-b", OPEN4_SHARE_ACCESS_BOTH)), &r, f->other.get()),
        NFS4_OK);
    f->bsid = r.resarray[2].opopen->resok4.stateid;
  }
  void TearDown() override {
    if (mds_) mds_->size_locks().SetTestHook(nullptr);
    MdsTest::TearDown();
  }
  uint64_t Size(const Bytes& fh, V4Client* c = nullptr) { return AttrOf<uint64_t>(fh, FATTR4_SIZE, c); }
  uint64_t Ino(const Bytes& fh) {
    const uint64_t ino = AttrOf<uint64_t>(fh, FATTR4_FILEID);
    return ino == ~0ull ? 0 : ino;
  }
  // What the data servers hold for the file.
  uint64_t DataSize(uint64_t ino) {
    auto l = mds_->LayoutOf(ino);
    EXPECT_TRUE(l.ok()) << l.status().ToString();
    if (!l.ok()) return ~0ull;
    auto s = pool_->GetSize(l.value());
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? *s : ~0ull;
  }
  std::string ReadAll(const Bytes& fh, const stateid4& sid, uint64_t size) {
    std::string out;
    while (out.size() < size) {
      auto r = client_->Call(Ops(PutFh(fh), Read(sid, out.size(), 256 * 1024)), /*cachethis=*/false);
      EXPECT_TRUE(r.ok() && r->status == NFS4_OK);
      if (!r.ok() || r->status != NFS4_OK) break;
      const auto& d = r->resarray[2].opread->resok4.data;
      if (d.size == 0) break;
      out.append(d.view());
    }
    return out;
  }
  // The invariant a size change must keep: store and data servers agree on the size.
  void ExpectConsistent(const Bytes& fh, const stateid4& sid, uint64_t ino) {
    uint64_t size = Size(fh);
    EXPECT_EQ(DataSize(ino), size) << "metadata size and data-server size disagree";
    std::string data = ReadAll(fh, sid, size);
    EXPECT_EQ(data.size(), size);
  }
};

// WRITE first: its bytes reach the data server, and before its size reaches the store a
// truncate to 0 comes. Unserialized, the truncate cut the bytes and the WRITE then set a size
// covering them: the file read back as zeros where data was written.
TEST_F(MdsDurabilityTest, TruncateWaitsForAWriteBetweenItsTwoSteps) {
  SharedFile f;
  ASSERT_NO_FATAL_FAILURE(OpenFromTwoClients("race", "hello", &f));

  Latch write_paused, release_write, truncate_waiting;
  mds_->size_locks().SetTestHook([&](uint64_t i, SizeLocks::Step step) {
    if (i != f.ino) return;
    if (step == SizeLocks::Step::kWriteDataDone && !write_paused.IsSet()) {
      write_paused.Set();
      release_write.Wait();
    } else if (step == SizeLocks::Step::kWaitExclusive) {
      truncate_waiting.Set();
    }
  });
  const std::string data = Pattern(4096, 3);
  nfsstat4 wst = NFS4ERR_SERVERFAULT, tst = NFS4ERR_SERVERFAULT;
  std::thread writer([&] { wst = Run(Ops(PutFh(f.fh), Write(f.sid, 4096, data))); });
  write_paused.Wait();
  Latch truncate_done;
  std::thread truncater([&] {
    tst = Run(Ops(PutFh(f.fh), SetSize(f.bsid, 0)), nullptr, f.other.get());
    truncate_done.Set();
  });
  // The truncate either finished (unserialized) or waits for the WRITE's lock.
  while (!truncate_done.IsSet() && !truncate_waiting.IsSet()) std::this_thread::yield();
  release_write.Set();
  writer.join();
  truncater.join();
  mds_->size_locks().SetTestHook(nullptr);
  ASSERT_EQ(wst, NFS4_OK);
  ASSERT_EQ(tst, NFS4_OK);
  // The truncate came last: nothing is left.
  EXPECT_EQ(Size(f.fh), 0u);
  ExpectConsistent(f.fh, f.sid, f.ino);
}

// Truncate first: it has cut the data file, and before its size reaches the store a WRITE past
// EOF comes. Unserialized, the WRITE's bytes stayed on the data server past the size the
// truncate then stored.
TEST_F(MdsDurabilityTest, WriteWaitsForATruncateBetweenItsTwoSteps) {
  SharedFile f;
  ASSERT_NO_FATAL_FAILURE(OpenFromTwoClients("race", Pattern(10000, 1), &f));

  Latch truncate_paused, release_truncate, write_waiting;
  mds_->size_locks().SetTestHook([&](uint64_t i, SizeLocks::Step step) {
    if (i != f.ino) return;
    if (step == SizeLocks::Step::kTruncateDataDone && !truncate_paused.IsSet()) {
      truncate_paused.Set();
      release_truncate.Wait();
    } else if (step == SizeLocks::Step::kWaitShared && truncate_paused.IsSet()) {
      write_waiting.Set();
    }
  });
  nfsstat4 wst = NFS4ERR_SERVERFAULT, tst = NFS4ERR_SERVERFAULT;
  std::thread truncater(
      [&] { tst = Run(Ops(PutFh(f.fh), SetSize(f.bsid, 0)), nullptr, f.other.get()); });
  truncate_paused.Wait();
  const std::string data = Pattern(4096, 7);
  Latch write_done;
  std::thread writer([&] {
    wst = Run(Ops(PutFh(f.fh), Write(f.sid, 4096, data)));
    write_done.Set();
  });
  while (!write_done.IsSet() && !write_waiting.IsSet()) std::this_thread::yield();
  release_truncate.Set();
  truncater.join();
  writer.join();
  mds_->size_locks().SetTestHook(nullptr);
  ASSERT_EQ(wst, NFS4_OK);
  ASSERT_EQ(tst, NFS4_OK);
  // The WRITE came last: a hole, then its bytes.
  ASSERT_EQ(Size(f.fh), 8192u);
  ExpectConsistent(f.fh, f.sid, f.ino);
  EXPECT_EQ(ReadAll(f.fh, f.sid, 8192), std::string(4096, '\0') + data);
}

// The free-running race, no pauses: WRITEs past EOF from one client, truncates to 0 from
// another, many rounds. Whatever order they land in, store and data servers agree.
TEST_F(MdsDurabilityTest, WritesRacingTruncatesKeepSizeAndDataTogether) {
  SharedFile f;
  ASSERT_NO_FATAL_FAILURE(OpenFromTwoClients("race", "seed", &f));
  for (int round = 0; round < 40; round++) {
    const std::string data = Pattern(2048, static_cast<char>(round));
    const uint64_t off = 4096 * (1 + round % 3);
    nfsstat4 wst = NFS4ERR_SERVERFAULT, tst = NFS4ERR_SERVERFAULT;
    std::thread writer([&] { wst = Run(Ops(PutFh(f.fh), Write(f.sid, off, data))); });
    tst = Run(Ops(PutFh(f.fh), SetSize(f.bsid, 0)), nullptr, f.other.get());
    writer.join();
    ASSERT_EQ(wst, NFS4_OK);
    ASSERT_EQ(tst, NFS4_OK);
    const uint64_t size = Size(f.fh);
    ASSERT_EQ(DataSize(f.ino), size) << "round " << round;
    if (size != 0) {
      // The WRITE came last: its bytes are there, after a hole.
      ASSERT_EQ(size, off + data.size()) << "round " << round;
      EXPECT_EQ(ReadAll(f.fh, f.sid, size), std::string(off, '\0') + data) << "round " << round;
    }
  }
}

// ALLOCATE extends a file to cover a range; it must read the size it compares against under
// the size lock. Paused just before that lock while a WRITE past the range lands, it used to
// set the size it computed from the older size and cut the WRITE's bytes off.
TEST_F(MdsDurabilityTest, AllocateNeverCutsBackAWriteThatLandedMeanwhile) {
  SharedFile f;
  ASSERT_NO_FATAL_FAILURE(OpenFromTwoClients("alloc", "x", &f));

  Latch allocate_paused, release_allocate;
  mds_->size_locks().SetTestHook([&](uint64_t i, SizeLocks::Step step) {
    if (i == f.ino && step == SizeLocks::Step::kWaitExclusive && !allocate_paused.IsSet()) {
      allocate_paused.Set();
      release_allocate.Wait();
    }
  });
  nfsstat4 ast = NFS4ERR_SERVERFAULT;
  std::thread allocator([&] {
    f.other->seq++;
    auto seq = Sequence(f.other->session, f.other->seq);
    auto res = f.other->Raw(Ops(std::move(seq), PutFh(f.fh), Allocate(f.bsid, 0, 4096)), /*minor=*/2);
    ast = res.ok() ? res->status : NFS4ERR_SERVERFAULT;
  });
  allocate_paused.Wait();
  const std::string data = Pattern(4096, 9);
  ASSERT_EQ(Run(Ops(PutFh(f.fh), Write(f.sid, 8192, data))), NFS4_OK);  // past the range
  release_allocate.Set();
  allocator.join();
  mds_->size_locks().SetTestHook(nullptr);
  ASSERT_EQ(ast, NFS4_OK);
  ASSERT_EQ(Size(f.fh), 8192u + data.size());
  ExpectConsistent(f.fh, f.sid, f.ino);
  EXPECT_EQ(ReadAll(f.fh, f.sid, 8192 + data.size()).substr(8192), data);
}

// --- Proxied UNSTABLE writes: durable at COMMIT, one metadata sync ---

TEST_F(MdsDurabilityTest, UnstableWritesSyncTheStoreOnceAtCommit) {
  Bytes fh;
  stateid4 sid;
  CreateFile("big", "x", &fh, &sid);  // makes the data file and its layout
  constexpr int kWrites = 8;
  const std::string mib = Pattern(1 << 20, 5);
  const uint64_t before = store_->stats().wal_syncs;
  verifier4 verf{};
  for (int i = 0; i < kWrites; i++) {
    auto r = client_->Call(Ops(PutFh(fh), Write(sid, uint64_t(i) << 20, mib, UNSTABLE4)), false);
    ASSERT_TRUE(r.ok() && r->status == NFS4_OK);
    const WRITE4resok& w = r->resarray[2].opwrite->resok4;
    ASSERT_EQ(w.count, mib.size());
    EXPECT_EQ(w.committed, UNSTABLE4);
    if (i > 0) {
      EXPECT_EQ(w.writeverf, verf);
    }
    verf = w.writeverf;
  }
  const uint64_t after_writes = store_->stats().wal_syncs;
  COMPOUND4res r;
  ASSERT_EQ(Run(Ops(PutFh(fh), Commit()), &r), NFS4_OK);
  EXPECT_EQ(r.resarray[2].opcommit->resok4.writeverf, verf);  // nothing to resend
  const uint64_t after_commit = store_->stats().wal_syncs;
  std::printf("metadata WAL syncs: %d UNSTABLE 1 MiB WRITEs: %llu, then COMMIT: %llu\n", kWrites,
              static_cast<unsigned long long>(after_writes - before),
              static_cast<unsigned long long>(after_commit - after_writes));
  EXPECT_EQ(after_writes, before);     // the WRITEs synced nothing
  EXPECT_LE(after_commit - before, 1u);  // the COMMIT, once
  EXPECT_EQ(Size(fh), uint64_t{kWrites} << 20);
  // A FILE_SYNC write's size is synced with it.
  ASSERT_EQ(Run(Ops(PutFh(fh), Write(sid, uint64_t{kWrites} << 20, "tail", FILE_SYNC4))), NFS4_OK);
  EXPECT_EQ(store_->stats().wal_syncs, after_commit + 1);
  // And it all survives a restart.
  StopMds();
  StartMds();
  EXPECT_EQ(Size(fh), (uint64_t{kWrites} << 20) + 4);
}

// The verifier is how a client learns that UNSTABLE writes may be lost (RFC 8881 §18.32.3):
// their sizes are durable only at COMMIT, so a restart of loom-mds alone — data servers up,
// their verifiers unchanged — must change it.
TEST_F(MdsDurabilityTest, WriteVerifierChangesWhenTheMdsRestarts) {
  Bytes fh;
  stateid4 sid;
  CreateFile("f", "x", &fh, &sid);
  COMPOUND4res r;
  ASSERT_EQ(Run(Ops(PutFh(fh), Write(sid, 0, "first boot", UNSTABLE4)), &r), NFS4_OK);
  const verifier4 first = r.resarray[2].opwrite->resok4.writeverf;
  ASSERT_EQ(Run(Ops(PutFh(fh), Commit()), &r), NFS4_OK);
  EXPECT_EQ(r.resarray[2].opcommit->resok4.writeverf, first);
  StopMds();
  StartMds();
  ASSERT_EQ(Run(Ops(PutFh(fh), OpenFh("owner1", OPEN4_SHARE_ACCESS_BOTH)), &r), NFS4_OK);
  const stateid4 sid2 = r.resarray[2].opopen->resok4.stateid;
  ASSERT_EQ(Run(Ops(PutFh(fh), Write(sid2, 0, "next boot", UNSTABLE4)), &r), NFS4_OK);
  const verifier4 second = r.resarray[2].opwrite->resok4.writeverf;
  EXPECT_NE(second, first);
  ASSERT_EQ(Run(Ops(PutFh(fh), Commit()), &r), NFS4_OK);
  EXPECT_EQ(r.resarray[2].opcommit->resok4.writeverf, second);
}

}  // namespace
}  // namespace loom::nfs4
