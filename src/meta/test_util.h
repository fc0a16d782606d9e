// Backends for the typed store tests: every suite runs once on MemKvStore and once on a real
// RocksKvStore in a temporary directory (sync writes on, as in production).
#pragma once

#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "meta/fault_env.h"
#include "meta/mem_kv.h"
#include "meta/rocks_kv.h"

namespace loom::meta::testing {

// A fresh directory, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "loom-meta-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data()) ? tmpl : "";
    EXPECT_FALSE(path_.empty());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Reopen() models a crash and restart of loom-mds, so that "survives a restart" tests can
// fail: the MemKvStore keeps only what it made durable (MemKvStore::Restart: kDeferred
// commits no sync covered are dropped); the RocksKvStore is closed, loses every byte its
// files were not synced for (a power cut on FaultFs), and is opened again.
class MemBackend {
 public:
  static constexpr const char* kName = "Mem";
  explicit MemBackend(int64_t lock_timeout_ms = 1000)
      : store_(std::make_unique<MemKvStore>(
            MemKvStore::Options{std::chrono::milliseconds(lock_timeout_ms), true})) {}
  KvStore* store() { return store_.get(); }
  void Reopen() { store_->Restart(); }

 private:
  std::unique_ptr<MemKvStore> store_;
};

class RocksBackend {
 public:
  static constexpr const char* kName = "Rocks";
  explicit RocksBackend(int64_t lock_timeout_ms = 1000) : timeout_(lock_timeout_ms) { Open(); }
  KvStore* store() { return store_.get(); }
  void Reopen() {
    store_.reset();
    Status s = fault_.Restore();  // the power cut: unsynced bytes go
    ASSERT_TRUE(s.ok()) << s.ToString();
    Open();
  }
  const std::string& path() const { return dir_.path(); }

 private:
  void Open() {
    RocksKvStore::Options o;
    o.path = dir_.path() + "/db";
    o.lock_timeout_ms = timeout_;
    o.env = fault_.env();
    auto s = RocksKvStore::Open(o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
  }

  TempDir dir_;
  int64_t timeout_;
  FaultFs fault_;  // before store_: the database uses it until closed
  std::unique_ptr<RocksKvStore> store_;
};

using Backends = ::testing::Types<MemBackend, RocksBackend>;

struct BackendNames {
  template <typename B>
  static std::string GetName(int) {
    return B::kName;
  }
};

}  // namespace loom::meta::testing
