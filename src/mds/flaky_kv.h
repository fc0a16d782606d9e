// Test support for the loom_mds tests: a KvStore over another that fails chosen operations,
// to check what the metadata server does when its store does (a disk error, a full disk).
// Tests only.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <string_view>

#include "meta/kv.h"

namespace loom::mds::testing {

// Fails the operations of the kinds in FailOn's `ops` on keys whose first byte is `tag` (the
// record kind, meta/keys.h tag::), after `after` of them went through. A Scan counts with its
// range's first key; a Commit fails when the transaction wrote such a key. The failure is
// Status::Io, which RunTxn does not retry.
class FlakyStore : public meta::KvStore {
 public:
  enum Op { kGet = 1, kPut = 2, kDelete = 4, kScan = 8, kCommit = 16 };

  explicit FlakyStore(meta::KvStore* base) : base_(base) {}
  void FailOn(char tag, int ops, int after = 0) {
    tag_ = tag;
    after_ = after;
    ops_ = ops;
  }
  void Heal() { ops_ = 0; }
  int failures() const { return failures_; }

  Result<std::unique_ptr<meta::Txn>> Begin() override {
    auto t = base_->Begin();
    if (!t.ok()) return t.status();
    return std::unique_ptr<meta::Txn>(new Txn(this, std::move(*t)));
  }
  Status Sync() override { return base_->Sync(); }
  void WhenDurable(uint64_t t, std::function<void()> fn) override {
    base_->WhenDurable(t, std::move(fn));
  }
  void WaitUntilDurable(uint64_t t) override { base_->WaitUntilDurable(t); }

 private:
  class Txn : public meta::Txn {
   public:
    Txn(FlakyStore* s, std::unique_ptr<meta::Txn> t) : s_(s), t_(std::move(t)) {}
    Result<meta::MaybeValue> Get(std::string_view key) override {
      if (s_->Fails(kGet, key)) return Injected();
      return t_->Get(key);
    }
    Result<meta::MaybeValue> GetForUpdate(std::string_view key) override {
      if (s_->Fails(kGet, key)) return Injected();
      return t_->GetForUpdate(key);
    }
    Status Put(std::string_view key, std::string_view value) override {
      if (s_->Fails(kPut, key)) return Injected();
      wrote_ = wrote_ || s_->Matches(key);
      return t_->Put(key, value);
    }
    Status Delete(std::string_view key) override {
      if (s_->Fails(kDelete, key)) return Injected();
      wrote_ = wrote_ || s_->Matches(key);
      return t_->Delete(key);
    }
    Status Scan(const meta::KeyRange& range, size_t limit, const meta::ScanFn& fn) override {
      if (s_->Fails(kScan, range.begin)) return Injected();
      return t_->Scan(range, limit, fn);
    }
    Status Commit() override {
      if (wrote_ && s_->Fails(kCommit, std::string(1, s_->tag_))) {
        t_->Rollback();
        return Injected();
      }
      return t_->Commit();
    }
    void Rollback() override { t_->Rollback(); }
    void SetDurability(meta::Durability d) override { t_->SetDurability(d); }
    void OnCommit(std::function<void()> fn) override { t_->OnCommit(std::move(fn)); }

   private:
    static Status Injected() { return Status::Io("injected store failure"); }
    FlakyStore* const s_;
    std::unique_ptr<meta::Txn> t_;
    bool wrote_ = false;
  };

  bool Matches(std::string_view key) const { return !key.empty() && key[0] == tag_; }
  bool Fails(int op, std::string_view key) {
    if (!(ops_ & op) || !Matches(key)) return false;
    for (int left = after_.load(); left > 0;)
      if (after_.compare_exchange_weak(left, left - 1)) return false;
    failures_++;
    return true;
  }

  meta::KvStore* const base_;
  std::atomic<char> tag_{0};
  std::atomic<int> ops_{0}, after_{0}, failures_{0};
};

}  // namespace loom::mds::testing
