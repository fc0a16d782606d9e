// GcWorker: deletes the data-server files of removed files. The namespace queues a GcItem in
// the same transaction that makes a data file unreachable (meta/namespace.h); this worker
// lists the queue, removes each file through the DataServerPool, and only then deletes the
// item, so a crash anywhere repeats work (harmless: a file already gone is success) and never
// loses it. An item whose data server is down stays queued for the next pass.
// A pass also resolves settled intent records (fs_identity.h, ResolveIntents): files a
// placement left on a server it then gave up on. Each pass takes up to Options::batch items starting after where the previous pass stopped
// (wrapping at the end of the queue), so items that keep failing cannot hold back the ones
// behind them.
//
// Thread-safe. Start() runs passes on a thread every Options::interval_ms; RunOnce() runs one
// on the caller's thread (tests, or a shutdown drain).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "mds/data_servers.h"
#include "meta/kv.h"
#include "meta/namespace.h"

namespace loom::mds {

class GcWorker {
 public:
  struct Options {
    int interval_ms = 10000;
    size_t batch = 1024;  // items listed per filesystem per pass
  };
  // REQUIRES: store, filesystems and pool outlive the worker.
  GcWorker(meta::KvStore* store, std::vector<meta::Namespace*> filesystems, DataServerPool* pool,
           Options opts);
  ~GcWorker();  // Stop()

  void Start();
  void Stop();
  void Kick();  // run the next pass now

  struct PassResult {
    size_t removed = 0;  // data files removed (or found gone), their items or intents deleted
    size_t failed = 0;   // left queued
  };
  // One pass over every filesystem. Fails only if the store does.
  Result<PassResult> RunOnce();

 private:
  void Loop();

  meta::KvStore* const store_;
  const std::vector<meta::Namespace*> filesystems_;
  DataServerPool* const pool_;
  const Options opts_;
  std::mutex run_mu_;  // one pass at a time
  std::vector<std::string> cursors_;  // per filesystem: the G key to start from; run_mu_
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false, kick_ = false;
  std::thread thread_;
};

}  // namespace loom::mds
