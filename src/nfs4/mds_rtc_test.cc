// Run to completion in loom-mds (RunCompound with on_loop): COMPOUNDs that memory can answer
// run on the RPC event loop; at the first operation that would wait, the COMPOUND stops before
// it and a worker goes on from there. SEQUENCE and the operations before the stop run exactly
// once; the stopped operation's partial work is dropped.
#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>
#include <set>

#include "meta/errors.h"
#include "nfs4/mds_fixture.h"

namespace loom::nfs4 {
namespace {

// In front of the real store: refuses, inside a meta::NoBlockScope, the read numbered
// `refuse_at` (counting from 1, reads and row locks in the scope only) as a cold cache or a
// lock held elsewhere would, so a test can stop a COMPOUND at a chosen point.
class RefusingStore final : public meta::KvStore {
 public:
  explicit RefusingStore(meta::KvStore* inner) : inner_(inner) {}
  Result<std::unique_ptr<meta::Txn>> Begin() override {
    auto t = inner_->Begin();
    if (!t.ok()) return t.status();
    return std::unique_ptr<meta::Txn>(std::make_unique<Txn>(std::move(t).value(), this));
  }
  Status Sync() override { return inner_->Sync(); }
  void BeginDeferredReadWaits() override { inner_->BeginDeferredReadWaits(); }
  void EndDeferredReadWaits() override { inner_->EndDeferredReadWaits(); }
  void WhenDurable(uint64_t t, std::function<void()> fn) override {
    inner_->WhenDurable(t, std::move(fn));
  }
  void WaitUntilDurable(uint64_t t) override { inner_->WaitUntilDurable(t); }

  // Counts from the next read in a NoBlockScope; 0: refuse nothing.
  void RefuseRead(int n) {
    seen_ = 0;
    refuse_at_ = n;
  }
  int refused() const { return refused_; }

 private:
  class Txn final : public meta::Txn {
   public:
    Txn(std::unique_ptr<meta::Txn> t, RefusingStore* s) : t_(std::move(t)), s_(s) {}
    Result<meta::MaybeValue> Get(std::string_view k) override {
      if (s_->Refuse()) return meta::WouldBlock("test: not cached");
      return t_->Get(k);
    }
    Result<meta::MaybeValue> GetForUpdate(std::string_view k) override {
      if (s_->Refuse()) return meta::WouldBlock("test: locked");
      return t_->GetForUpdate(k);
    }
    Status Put(std::string_view k, std::string_view v) override { return t_->Put(k, v); }
    Status Delete(std::string_view k) override { return t_->Delete(k); }
    Status Scan(const meta::KeyRange& r, size_t limit, const meta::ScanFn& fn) override {
      if (s_->Refuse()) return meta::WouldBlock("test: not cached");
      return t_->Scan(r, limit, fn);
    }
    Status Commit() override { return t_->Commit(); }
    void Rollback() override { t_->Rollback(); }
    void SetDurability(meta::Durability d) override { t_->SetDurability(d); }
    void OnCommit(std::function<void()> fn) override { t_->OnCommit(std::move(fn)); }

   private:
    std::unique_ptr<meta::Txn> t_;
    RefusingStore* s_;
  };

  bool Refuse() {
    if (!meta::NoBlockScope::Active() || refuse_at_ == 0) return false;
    if (++seen_ != refuse_at_) return false;
    refused_++;
    return true;
  }

  meta::KvStore* inner_;
  std::atomic<int> seen_{0}, refuse_at_{0}, refused_{0};
};

class MdsRtcTest : public MdsTest {
 protected:
  meta::KvStore* WrapStore(meta::KvStore* s) override {
    refusing_ = std::make_unique<RefusingStore>(s);
    return refusing_.get();
  }
  uint64_t Calls(const std::string& name) { return server_->stats().Get(name)->calls(); }
  uint64_t OnLoop() { return Calls("nfs4.inline.COMPOUND"); }
  uint64_t Deferred() { return Calls("nfs4.deferred.COMPOUND"); }
  uint64_t Op(const std::string& op) { return mds_->stats().Get("nfs4.op." + op)->calls(); }

  std::unique_ptr<RefusingStore> refusing_;
};

TEST_F(MdsRtcTest, CompoundsThatReadRunOnTheLoop) {
  Bytes fh;
  stateid4 sid;
  CreateFile("f", "12345", &fh, &sid);
  ASSERT_EQ(Run(Ops(PutFh(fh), Close(sid))), NFS4_OK);
  ASSERT_EQ(Run(Ops(PutRootFh(), Mkdir("d"))), NFS4_OK);
  const uint64_t on_loop = OnLoop(), deferred = Deferred();
  COMPOUND4res r;
  EXPECT_EQ(AttrOf<uint64_t>(fh, FATTR4_SIZE), 5u);
  ASSERT_EQ(Run(Ops(PutRootFh(), Lookup("d"), GetFh(), Getattr({FATTR4_TYPE})), &r), NFS4_OK);
  ASSERT_EQ(Run(Ops(PutRootFh(), AccessOp(ACCESS4_READ | ACCESS4_LOOKUP)), &r), NFS4_OK);
  ASSERT_EQ(Run(Ops(PutRootFh(), Readdir(0, 8192)), &r), NFS4_OK);
  std::set<std::string> names;
  for (const auto& e : r.resarray[2].opreaddir->resok4.reply.entries) names.insert(e.name.str());
  EXPECT_EQ(names, (std::set<std::string>{"d", "f"}));
  ASSERT_EQ(Run(Ops(PutRootFh(), Lookup("nope"))), NFS4ERR_NOENT);  // errors too
  EXPECT_EQ(OnLoop() - on_loop, 5u);
  EXPECT_EQ(Deferred(), deferred);
}

TEST_F(MdsRtcTest, AnOperationThatMayWaitGoesOnOnAWorkerFromItself) {
  Bytes fh;
  stateid4 sid;
  CreateFile("f", "12345", &fh, &sid);
  ASSERT_EQ(Run(Ops(PutFh(fh), Close(sid))), NFS4_OK);
  const uint64_t deferred = Deferred();
  const uint64_t putroot = Op("PUTROOTFH"), save = Op("SAVEFH"), lookup = Op("LOOKUP");
  const uint64_t setattr = Op("SETATTR");
  COMPOUND4res r;
  // The loop runs SEQUENCE, PUTROOTFH, SAVEFH, LOOKUP and GETFH; SETATTR of the size stops
  // it; the worker keeps the filehandles and the session slot the loop set up.
  ASSERT_EQ(Run(Ops(PutRootFh(), SaveFh(), Lookup("f"), GetFh(), SetSize(stateid4{}, 3),
                    RestoreFh(), GetFh()),
                &r),
            NFS4_OK);
  ASSERT_EQ(r.resarray.size(), 8u);
  EXPECT_EQ(r.resarray[4].opgetfh->resok4.object.str(), fh.str());
  EXPECT_NE(r.resarray[7].opgetfh->resok4.object.str(), fh.str());
  EXPECT_EQ(Deferred() - deferred, 1u);
  EXPECT_EQ(Op("PUTROOTFH") - putroot, 1u);
  EXPECT_EQ(Op("SAVEFH") - save, 1u);
  EXPECT_EQ(Op("LOOKUP") - lookup, 1u);
  EXPECT_EQ(Op("SETATTR") - setattr, 1u);
  EXPECT_EQ(AttrOf<uint64_t>(fh, FATTR4_SIZE), 3u);
  // The slot advanced exactly once: the next COMPOUND on it is not a replay or misordered.
  ASSERT_EQ(Run(Ops(PutRootFh(), Lookup("f"))), NFS4_OK);
}

TEST_F(MdsRtcTest, ChangesInOneTransactionRunOnTheLoopAndAnswerOnceDurable) {
  const uint64_t on_loop = OnLoop(), deferred = Deferred();
  const uint64_t syncs = store_->stats().wal_syncs;
  COMPOUND4res r;
  ASSERT_EQ(Run(Ops(PutRootFh(), Mkdir("d"), GetFh(), Getattr({FATTR4_TYPE}))), NFS4_OK);
  ASSERT_EQ(Run(Ops(PutRootFh(), Lookup("d"), Mkdir("e"))), NFS4_OK);
  ASSERT_EQ(Run(Ops(PutRootFh(), Lookup("d"), SaveFh(), Rename("e", "f"))), NFS4_OK);
  ASSERT_EQ(Run(Ops(PutRootFh(), Lookup("d"), Remove("f"))), NFS4_OK);
  ASSERT_EQ(Run(Ops(PutRootFh(), Lookup("d"), Remove("f"))), NFS4ERR_NOENT);
  EXPECT_EQ(OnLoop() - on_loop, 5u);
  EXPECT_EQ(Deferred(), deferred);
  // Each change was synced before its reply (the client waits for the reply before the
  // next, so no two shared a sync).
  EXPECT_GE(store_->stats().wal_syncs - syncs, 4u);
  // A retransmission is answered from the slot; nothing runs twice.
  ASSERT_EQ(Run(Ops(PutRootFh(), Lookup("d"), Readdir(0, 4096))), NFS4_OK);
}

TEST_F(MdsRtcTest, OpensThatFitOneTransactionRunOnTheLoop) {
  const uint64_t on_loop = OnLoop(), deferred = Deferred();
  COMPOUND4res r;
  // Create (mode only), then open the existing file by name: both on the loop.
  ASSERT_EQ(Run(Ops(PutRootFh(), Open("o1", "f", OPEN4_SHARE_ACCESS_BOTH, true), GetFh()), &r),
            NFS4_OK);
  const stateid4 created = r.resarray[2].opopen->resok4.stateid;
  const Bytes fh = r.resarray[3].opgetfh->resok4.object;
  ASSERT_EQ(Run(Ops(PutRootFh(), Open("o2", "f", OPEN4_SHARE_ACCESS_READ, false)), &r), NFS4_OK);
  const stateid4 opened = r.resarray[2].opopen->resok4.stateid;
  EXPECT_EQ(OnLoop() - on_loop, 2u);
  EXPECT_EQ(Deferred(), deferred);
  ASSERT_EQ(Run(Ops(PutFh(fh), Close(created))), NFS4_OK);
  ASSERT_EQ(Run(Ops(PutFh(fh), Close(opened))), NFS4_OK);
  EXPECT_EQ(OnLoop() - on_loop, 4u);
  EXPECT_EQ(Deferred(), deferred);
  // An exclusive create (its verifier takes a second transaction) goes to a worker.
  auto excl = Open("o3", "g", OPEN4_SHARE_ACCESS_BOTH, true);
  excl.opopen->openhow.how.mode = EXCLUSIVE4;
  ASSERT_EQ(Run(Ops(PutRootFh(), std::move(excl))), NFS4_OK);
  EXPECT_EQ(Deferred() - deferred, 1u);
}

TEST_F(MdsRtcTest, TheLastCloseOfAnUnlinkedFileReleasesItOnTheLoop) {
  Bytes fh;
  stateid4 sid;
  CreateFile("f", "12345", &fh, &sid);
  ASSERT_EQ(Run(Ops(PutRootFh(), Remove("f"))), NFS4_OK);
  EXPECT_EQ(AttrOf<uint64_t>(fh, FATTR4_SIZE), 5u);  // open: still there (an orphan)
  const uint64_t on_loop = OnLoop(), deferred = Deferred();
  ASSERT_EQ(Run(Ops(PutFh(fh), Close(sid))), NFS4_OK);
  EXPECT_EQ(OnLoop() - on_loop, 1u);
  EXPECT_EQ(Deferred(), deferred);
  EXPECT_EQ(Run(Ops(PutFh(fh), Getattr({FATTR4_SIZE}))), NFS4ERR_STALE);
}

TEST_F(MdsRtcTest, AChangeRefusedHalfWayIsMadeOnceOnAWorker) {
  ASSERT_EQ(Run(Ops(PutRootFh(), Mkdir("d"))), NFS4_OK);
  for (int refuse = 1; refuse <= 6; refuse++) {
    SCOPED_TRACE("refused read " + std::to_string(refuse));
    const std::string name = "e" + std::to_string(refuse);
    ASSERT_EQ(Run(Ops(PutRootFh(), Lookup("d"), Mkdir(name))), NFS4_OK);
    const uint64_t deferred = Deferred();
    const int refused = refusing_->refused();
    refusing_->RefuseRead(refuse);
    ASSERT_EQ(Run(Ops(PutRootFh(), Lookup("d"), Remove(name))), NFS4_OK);
    refusing_->RefuseRead(0);
    EXPECT_EQ(refusing_->refused() - refused, 1);
    EXPECT_EQ(Deferred() - deferred, 1u);
    EXPECT_EQ(Run(Ops(PutRootFh(), Lookup("d"), Lookup(name))), NFS4ERR_NOENT);
  }
  COMPOUND4res r;
  ASSERT_EQ(Run(Ops(PutRootFh(), Lookup("d"), Readdir(0, 4096)), &r), NFS4_OK);
  EXPECT_TRUE(r.resarray[3].opreaddir->resok4.reply.entries.empty());
}

TEST_F(MdsRtcTest, AReadTheCacheCannotAnswerMovesTheCompoundToAWorker) {
  Bytes fh;
  stateid4 sid;
  CreateFile("f", "12345", &fh, &sid);
  ASSERT_EQ(Run(Ops(PutFh(fh), Close(sid))), NFS4_OK);
  const uint64_t on_loop = OnLoop(), deferred = Deferred();
  const uint64_t getattr = Op("GETATTR"), putfh = Op("PUTFH");
  refusing_->RefuseRead(1);  // GETATTR's read of the inode
  EXPECT_EQ(AttrOf<uint64_t>(fh, FATTR4_SIZE), 5u);
  EXPECT_EQ(refusing_->refused(), 1);
  EXPECT_EQ(Deferred() - deferred, 1u);
  EXPECT_EQ(OnLoop(), on_loop);
  EXPECT_EQ(Op("GETATTR") - getattr, 1u);  // counted once, by the worker's run
  EXPECT_EQ(Op("PUTFH") - putfh, 1u);
}

TEST_F(MdsRtcTest, AReaddirStoppedHalfWayListsEveryEntryOnce) {
  ASSERT_EQ(Run(Ops(PutRootFh(), Mkdir("d"))), NFS4_OK);
  for (int i = 0; i < 20; i++) {
    ASSERT_EQ(Run(Ops(PutRootFh(), Lookup("d"), Mkdir("e" + std::to_string(i)))), NFS4_OK);
  }
  for (int refuse = 1; refuse <= 8; refuse++) {
    SCOPED_TRACE("refused read " + std::to_string(refuse));
    refusing_->RefuseRead(refuse);
    COMPOUND4res r;
    ASSERT_EQ(Run(Ops(PutRootFh(), Lookup("d"), Readdir(0, 8192, {FATTR4_TYPE})), &r), NFS4_OK);
    std::multiset<std::string> names;
    for (const auto& e : r.resarray[3].opreaddir->resok4.reply.entries) names.insert(e.name.str());
    EXPECT_EQ(names.size(), 20u);
    EXPECT_EQ(std::set<std::string>(names.begin(), names.end()).size(), 20u);
    EXPECT_TRUE(r.resarray[3].opreaddir->resok4.reply.eof);
  }
  EXPECT_EQ(refusing_->refused(), 8);
}

class MdsNoRtcTest : public MdsRtcTest {
 protected:
  MdsNoRtcTest() { run_to_completion_ = false; }
};

// Every COMPOUND on a worker (run to completion off), and the WAL syncs held by a hook: a
// REMOVE's reply waits for its sync, but the worker that ran it does not (meta::OweScope), so
// with both workers' removes waiting, a third client is still answered.
class MdsHeldSyncTest : public MdsNoRtcTest {
 protected:
  void TuneStore(meta::RocksKvStore::Options& o) override {
    o.before_sync = [this](const std::string& f) {
      std::unique_lock<std::mutex> l(mu_);
      if (!held_ || !f.ends_with(".log")) return Status::Ok();
      ++in_sync_;
      cv_.wait(l, [&] { return !held_; });
      return Status::Ok();
    };
  }
  void Hold() {
    std::lock_guard<std::mutex> l(mu_);
    held_ = true;
  }
  void Release() {
    std::lock_guard<std::mutex> l(mu_);
    held_ = false;
    cv_.notify_all();
  }
  int InSync() {
    std::lock_guard<std::mutex> l(mu_);
    return in_sync_;
  }
  std::mutex mu_;
  std::condition_variable cv_;
  bool held_ = false;
  int in_sync_ = 0;
};

TEST_F(MdsHeldSyncTest, AWorkerDoesNotWaitForTheSyncItsReplyWaitsFor) {
  for (const char* d : {"p", "q", "r"}) ASSERT_EQ(Run(Ops(PutRootFh(), Mkdir(d))), NFS4_OK);
  ASSERT_EQ(Run(Ops(PutRootFh(), Lookup("p"), Mkdir("x"))), NFS4_OK);
  ASSERT_EQ(Run(Ops(PutRootFh(), Lookup("q"), Mkdir("y"))), NFS4_OK);
  auto b = NewClient("client-b");
  auto c = NewClient("client-c");
  Hold();
  std::promise<nfsstat4> rx, ry;
  std::thread tx([&] { rx.set_value(Run(Ops(PutRootFh(), Lookup("p"), Remove("x")))); });
  std::thread ty([&] {
    ry.set_value(Run(Ops(PutRootFh(), Lookup("q"), Remove("y")), nullptr, b.get()));
  });
  auto fx = rx.get_future(), fy = ry.get_future();
  for (int i = 0; i < 500 && InSync() == 0; i++) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_GT(InSync(), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // both removes reach the store
  // The removes are not answered: their changes are not durable.
  EXPECT_EQ(fx.wait_for(std::chrono::seconds(0)), std::future_status::timeout);
  EXPECT_EQ(fy.wait_for(std::chrono::seconds(0)), std::future_status::timeout);
  // Both workers are free: a third client's COMPOUND is answered meanwhile (it reads nothing
  // the removes changed; a read of their directories would wait for their sync too).
  std::promise<nfsstat4> rc;
  std::thread tc([&] {
    rc.set_value(Run(Ops(PutRootFh(), Lookup("r"), Getattr({FATTR4_TYPE})), nullptr, c.get()));
  });
  auto fc = rc.get_future();
  EXPECT_EQ(fc.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  EXPECT_EQ(fx.wait_for(std::chrono::seconds(0)), std::future_status::timeout);
  Release();
  EXPECT_EQ(fx.get(), NFS4_OK);
  EXPECT_EQ(fy.get(), NFS4_OK);
  tc.join();
  tx.join();
  ty.join();
  EXPECT_EQ(fc.get(), NFS4_OK);
  ASSERT_EQ(Run(Ops(PutRootFh(), Lookup("p"), Lookup("x"))), NFS4ERR_NOENT);
  EXPECT_EQ(OnLoop(), 0u);  // nothing ran on the loop
}

TEST_F(MdsNoRtcTest, OffEveryCompoundRunsOnAWorker) {
  const uint64_t on_loop = OnLoop();
  ASSERT_EQ(Run(Ops(PutRootFh(), Getattr({FATTR4_TYPE}))), NFS4_OK);
  EXPECT_EQ(OnLoop(), on_loop);
  EXPECT_EQ(Deferred(), 0u);
}

}  // namespace
}  // namespace loom::nfs4
