#include "meta/rocks_kv.h"

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/utilities/transaction.h>
#include <rocksdb/utilities/transaction_db.h>

#include <algorithm>
#include <utility>

namespace loom::meta {
namespace {

rocksdb::Slice ToSlice(std::string_view s) { return {s.data(), s.size()}; }

// Lock timeouts, detected deadlocks (Busy) and expired transactions all mean "roll back and
// rerun": kConflict, the one code RunTxn retries.
Status FromRocks(const rocksdb::Status& s, const char* what) {
  if (s.ok()) return Status::Ok();
  std::string msg = std::string(what) + ": " + s.ToString();
  if (s.IsBusy() || s.IsTimedOut() || s.IsTryAgain() || s.IsExpired()) {
    return Status(Code::kConflict, msg);
  }
  if (s.IsIOError()) return Status(s.IsNoSpace() ? Code::kNoSpace : Code::kIo, msg);
  if (s.IsInvalidArgument()) return Status::Invalid(msg);
  return Status::Internal(msg);  // Corruption and the rest
}

Status Finished() { return Status::Invalid("transaction already finished"); }

}  // namespace

class RocksKvStore::RocksTxn final : public Txn {
 public:
  RocksTxn(rocksdb::Transaction* t, RocksKvStore* store) : txn_(t), store_(store) {}
  // Destroying an unfinished rocksdb::Transaction rolls it back and releases its locks.
  ~RocksTxn() override = default;

  Result<MaybeValue> Get(std::string_view key) override {
    if (!txn_) return Finished();
    std::string v;
    rocksdb::Status s = txn_->Get(rocksdb::ReadOptions(), ToSlice(key), &v);
    return Value(s, std::move(v), "get");
  }

  Result<MaybeValue> GetForUpdate(std::string_view key) override {
    if (!txn_) return Finished();
    // No snapshot is set, so this locks first and then reads the latest committed value —
    // the same as SELECT ... FOR UPDATE under READ COMMITTED.
    std::string v;
    rocksdb::Status s = txn_->GetForUpdate(rocksdb::ReadOptions(), ToSlice(key), &v);
    return Value(s, std::move(v), "get_for_update");
  }

  Status Put(std::string_view key, std::string_view value) override {
    if (!txn_) return Finished();
    return FromRocks(txn_->Put(ToSlice(key), ToSlice(value)), "put");
  }

  Status Delete(std::string_view key) override {
    if (!txn_) return Finished();
    return FromRocks(txn_->Delete(ToSlice(key)), "delete");
  }

  Status Scan(const KeyRange& range, size_t limit, const ScanFn& fn) override {
    if (!txn_) return Finished();
    rocksdb::ReadOptions ro;
    rocksdb::Slice upper = ToSlice(range.end);
    if (!range.end.empty()) ro.iterate_upper_bound = &upper;
    // The transaction's iterator merges its own uncommitted writes with the database.
    std::unique_ptr<rocksdb::Iterator> it(txn_->GetIterator(ro));
    size_t n = 0;
    for (it->Seek(ToSlice(range.begin)); it->Valid(); it->Next()) {
      std::string_view k(it->key().data(), it->key().size());
      // Checked here too: older RocksDB releases ignored the bound for the write-batch part.
      if (!range.end.empty() && k >= range.end) break;
      if (limit != 0 && n++ >= limit) break;
      if (!fn(k, std::string_view(it->value().data(), it->value().size()))) break;
    }
    return FromRocks(it->status(), "scan");
  }

  Status Commit() override {
    if (!txn_) return Finished();
    if (txn_->GetNumPuts() + txn_->GetNumDeletes() + txn_->GetNumMerges() == 0) {
      // A read-only transaction: nothing to make durable, so no WAL write and no fsync.
      Rollback();
      return Status::Ok();
    }
    rocksdb::Status s = txn_->Commit();
    txn_.reset();
    if (!s.ok()) return FromRocks(s, "commit");
    // The commit is in the WAL (and visible, its locks released); it is acknowledged only once
    // the WAL is on disk. Waiting after the locks are gone lets concurrent commits share one
    // fsync (group commit).
    return store_->opts_.sync ? store_->WaitDurable() : Status::Ok();
  }

  void Rollback() override {
    if (!txn_) return;
    (void)txn_->Rollback();  // failure leaves nothing to do: destruction discards it anyway
    txn_.reset();
  }

 private:
  static Result<MaybeValue> Value(const rocksdb::Status& s, std::string v, const char* what) {
    if (s.IsNotFound()) return MaybeValue();
    if (!s.ok()) return FromRocks(s, what);
    return MaybeValue(std::move(v));
  }

  std::unique_ptr<rocksdb::Transaction> txn_;
  RocksKvStore* store_;
};

Status RocksKvStore::WaitDurable() {
  std::unique_lock<std::mutex> l(sync_mu_);
  uint64_t mine = ++sync_requested_;
  while (sync_done_ < mine) {
    if (syncing_) {
      sync_cv_.wait(l);
      continue;
    }
    // Leader: one fsync covers every commit that reached the WAL before it started.
    syncing_ = true;
    uint64_t target = sync_requested_;
    l.unlock();
    rocksdb::Status s = db_->SyncWAL();
    l.lock();
    syncing_ = false;
    if (s.ok()) sync_done_ = std::max(sync_done_, target);
    sync_cv_.notify_all();
    if (!s.ok()) return FromRocks(s, "sync wal");
  }
  return Status::Ok();
}

RocksKvStore::RocksKvStore(Options opts, rocksdb::TransactionDB* db)
    : opts_(std::move(opts)), db_(db) {}

RocksKvStore::~RocksKvStore() = default;

Result<std::unique_ptr<RocksKvStore>> RocksKvStore::Open(const Options& opts) {
  rocksdb::Options o;
  o.create_if_missing = opts.create_if_missing;
  // Metadata is small and hot; two background jobs match the machines Loom starts on.
  o.max_background_jobs = 2;
  rocksdb::TransactionDBOptions t;
  t.transaction_lock_timeout = opts.lock_timeout_ms;
  t.default_lock_timeout = opts.lock_timeout_ms;
  rocksdb::TransactionDB* db = nullptr;
  rocksdb::Status s = rocksdb::TransactionDB::Open(o, t, opts.path, &db);
  if (!s.ok()) return FromRocks(s, ("open " + opts.path).c_str());
  return std::unique_ptr<RocksKvStore>(new RocksKvStore(opts, db));
}

Result<std::unique_ptr<Txn>> RocksKvStore::Begin() {
  rocksdb::WriteOptions w;
  w.sync = false;  // durability comes from WaitDurable (group commit) after Commit
  rocksdb::TransactionOptions t;
  t.deadlock_detect = opts_.deadlock_detect;
  return std::unique_ptr<Txn>(std::make_unique<RocksTxn>(db_->BeginTransaction(w, t), this));
}

}  // namespace loom::meta
