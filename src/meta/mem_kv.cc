#include "meta/mem_kv.h"

#include "common/sync_point.h"

#include <cstdlib>
#include <utility>
#include <vector>

namespace loom::meta {

class MemKvStore::MemTxn final : public Txn {
 public:
  MemTxn(MemKvStore* store, uint64_t id) : store_(store), id_(id) {}
  ~MemTxn() override { Rollback(); }

  Result<MaybeValue> Get(std::string_view key) override {
    if (done_) return Finished();
    std::lock_guard<std::mutex> g(store_->mu_);
    return ReadLocked(key);
  }

  Result<MaybeValue> GetForUpdate(std::string_view key) override {
    if (done_) return Finished();
    LOOM_SYNC_POINT("KvTxn::GetForUpdate:lock");
    std::unique_lock<std::mutex> g(store_->mu_);
    LOOM_RETURN_IF_ERROR(LockLocked(g, key));
    return ReadLocked(key);
  }

  Status Put(std::string_view key, std::string_view value) override {
    return Write(key, std::string(value));
  }
  Status Delete(std::string_view key) override { return Write(key, std::nullopt); }

  Status Scan(const KeyRange& range, size_t limit, const ScanFn& fn) override {
    if (done_) return Finished();
    // Merge committed data with our own writes under the store mutex, then call fn without
    // it, so fn may use other transactions.
    std::vector<std::pair<std::string, std::string>> rows;
    {
      std::lock_guard<std::mutex> g(store_->mu_);
      auto in_range = [&](const std::string& k) { return range.end.empty() || k < range.end; };
      auto a = store_->data_.lower_bound(range.begin);
      auto b = writes_.lower_bound(range.begin);
      while (limit == 0 || rows.size() < limit) {
        bool a_ok = a != store_->data_.end() && in_range(a->first);
        bool b_ok = b != writes_.end() && in_range(b->first);
        if (!a_ok && !b_ok) break;
        if (b_ok && (!a_ok || b->first <= a->first)) {
          if (a_ok && a->first == b->first) ++a;  // our write shadows the committed value
          if (b->second) rows.emplace_back(b->first, *b->second);
          ++b;
        } else {
          rows.emplace_back(a->first, a->second);
          ++a;
        }
      }
    }
    for (const auto& [k, v] : rows) {
      if (!fn(k, v)) break;
    }
    return Status::Ok();
  }

  Status Commit() override {
    if (done_) return Finished();
    CommitLocked();
    for (auto& fn : on_commit_) fn();  // after the store's lock: a hook may begin a transaction
    on_commit_.clear();
    return Status::Ok();
  }

  void CommitLocked() {
    std::lock_guard<std::mutex> g(store_->mu_);
    if (store_->opts_.restartable && !writes_.empty()) {
      if (durability_ == Durability::kSync) {
        // Like a WAL sync: this commit and every one before it reach the disk.
        for (const WriteSet& w : store_->unsynced_) store_->MakeDurableLocked(w);
        store_->unsynced_.clear();
        store_->MakeDurableLocked(writes_);
      } else {
        store_->unsynced_.push_back(writes_);
      }
    }
    // Every written key is locked by us, so nothing can conflict here.
    for (auto& [k, v] : writes_) {
      if (v) {
        store_->data_.insert_or_assign(k, std::move(*v));
      } else {
        store_->data_.erase(k);
      }
    }
    ReleaseLocked();
  }

  void Rollback() override {
    if (done_) return;
    std::lock_guard<std::mutex> g(store_->mu_);
    ReleaseLocked();
  }

  // Matters only with Options::restartable (Restart drops unsynced kDeferred commits).
  void SetDurability(Durability d) override { durability_ = d; }
  void OnCommit(std::function<void()> fn) override { on_commit_.push_back(std::move(fn)); }

 private:
  static Status Finished() { return Status::Invalid("transaction already finished"); }

  Status Write(std::string_view key, std::optional<std::string> value) {
    if (done_) return Finished();
    {
      std::unique_lock<std::mutex> g(store_->mu_);
      LOOM_RETURN_IF_ERROR(LockLocked(g, key));
    }
    writes_.insert_or_assign(std::string(key), std::move(value));
    return Status::Ok();
  }

  // REQUIRES: store_->mu_ held.
  Result<MaybeValue> ReadLocked(std::string_view key) {
    if (auto w = writes_.find(key); w != writes_.end()) return MaybeValue(w->second);
    if (auto c = store_->data_.find(key); c != store_->data_.end()) return MaybeValue(c->second);
    return MaybeValue();
  }

  // Takes the key's lock, waiting up to the lock timeout. REQUIRES: g holds store_->mu_.
  Status LockLocked(std::unique_lock<std::mutex>& g, std::string_view key) {
    auto deadline = std::chrono::steady_clock::now() + store_->opts_.lock_timeout;
    for (;;) {
      auto it = store_->locks_.find(key);
      if (it == store_->locks_.end()) {
        store_->locks_.emplace(std::string(key), id_);
        held_.emplace_back(key);
        return Status::Ok();
      }
      if (it->second == id_) return Status::Ok();
      // In a NoBlockScope (kv.h) a lock someone else holds fails at once. Commits here are
      // durable when they return, so nothing is ever owed.
      if (NoBlockScope::Active()) return WouldBlock("lock held");
      if (store_->lock_released_.wait_until(g, deadline) == std::cv_status::timeout) {
        return Status(Code::kConflict, "lock wait timed out");
      }
    }
  }

  // REQUIRES: store_->mu_ held.
  void ReleaseLocked() {
    for (const auto& k : held_) store_->locks_.erase(k);
    if (!held_.empty()) store_->lock_released_.notify_all();
    held_.clear();
    writes_.clear();
    done_ = true;
  }

  MemKvStore* const store_;
  const uint64_t id_;
  bool done_ = false;
  Durability durability_ = Durability::kSync;
  std::vector<std::function<void()>> on_commit_;
  WriteSet writes_;
  std::vector<std::string> held_;
};

Result<std::unique_ptr<Txn>> MemKvStore::Begin() {
  uint64_t id;
  {
    std::lock_guard<std::mutex> g(mu_);
    id = next_txn_id_++;
  }
  return std::unique_ptr<Txn>(std::make_unique<MemTxn>(this, id));
}

Status MemKvStore::Sync() {
  std::lock_guard<std::mutex> g(mu_);
  for (const WriteSet& w : unsynced_) MakeDurableLocked(w);
  unsynced_.clear();
  return Status::Ok();
}

void MemKvStore::MakeDurableLocked(const WriteSet& w) {
  for (const auto& [k, v] : w) {
    if (v) {
      durable_.insert_or_assign(k, *v);
    } else {
      durable_.erase(k);
    }
  }
}

void MemKvStore::Restart() {
  std::lock_guard<std::mutex> g(mu_);
  if (!opts_.restartable) std::abort();  // nothing to restart from: a test bug
  data_ = durable_;
  unsynced_.clear();
  locks_.clear();
}

size_t MemKvStore::Size() const {
  std::lock_guard<std::mutex> g(mu_);
  return data_.size();
}

}  // namespace loom::meta
