#include "mds/gc_worker.h"

#include <chrono>

#include "common/log.h"
#include "mds/fs_identity.h"

namespace loom::mds {

GcWorker::GcWorker(meta::KvStore* store, std::vector<meta::Namespace*> filesystems,
                   DataServerPool* pool, Options opts)
    : store_(store),
      filesystems_(std::move(filesystems)),
      pool_(pool),
      opts_(opts),
      cursors_(filesystems_.size()) {}

GcWorker::~GcWorker() { Stop(); }

void GcWorker::Start() {
  std::lock_guard<std::mutex> l(mu_);
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] { Loop(); });
}

void GcWorker::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void GcWorker::Kick() {
  {
    std::lock_guard<std::mutex> l(mu_);
    kick_ = true;
  }
  cv_.notify_all();
}

void GcWorker::Loop() {
  std::unique_lock<std::mutex> l(mu_);
  while (!stop_) {
    kick_ = false;
    l.unlock();
    Result<PassResult> r = RunOnce();
    if (!r.ok()) LOG_WARN("GC pass: %s", r.status().ToString().c_str());
    l.lock();
    cv_.wait_for(l, std::chrono::milliseconds(opts_.interval_ms), [this] { return stop_ || kick_; });
  }
}

Result<GcWorker::PassResult> GcWorker::RunOnce() {
  std::lock_guard<std::mutex> run(run_mu_);
  PassResult out;
  for (size_t fi = 0; fi < filesystems_.size(); fi++) {
    meta::Namespace* ns = filesystems_[fi];
    std::string& cursor = cursors_[fi];
    const std::string prefix = meta::keys::GcPrefix(ns->fsid());
    std::string last;
    auto items = meta::RunTxn(*store_, [&](meta::Txn& t) -> Result<std::vector<meta::GcItem>> {
      std::vector<meta::GcItem> out;
      Status d;
      meta::KeyRange range = cursor.empty() ? meta::KeyRange::Prefix(prefix)
                                            : meta::KeyRange::PrefixFrom(prefix, cursor);
      LOOM_RETURN_IF_ERROR(t.Scan(range, opts_.batch, [&](std::string_view k, std::string_view v) {
        d = meta::Decode(v, &out.emplace_back());
        last = std::string(k);
        return d.ok();
      }));
      if (!d.ok()) return d;
      return out;
    });
    if (!items.ok()) return items.status();
    // The next pass starts after this batch, or from the top once the end was reached.
    cursor = items->size() < opts_.batch ? std::string() : last + std::string(1, '\0');
    std::vector<const meta::GcItem*> done;
    Status first;
    size_t failed = 0;
    for (const meta::GcItem& g : *items) {
      Status st = pool_->RemoveDataFile(ns->fsid(), g.ino, g.file);
      if (st.ok()) {
        done.push_back(&g);
      } else {
        failed++;
        if (first.ok()) first = st;
      }
    }
    if (!first.ok())
      LOG_WARN("GC fsid %llu: %zu data files left queued, first: %s",
               static_cast<unsigned long long>(ns->fsid()), failed, first.ToString().c_str());
    out.failed += failed;
    // Data files of placements that moved on to other servers after a failure.
    auto settled = ResolveIntents(*store_, ns->fsid(), *pool_, /*settled_only=*/true);
    if (!settled.ok()) return settled.status();
    out.removed += *settled;
    if (done.empty()) continue;
    Status st = meta::RunTxn(*store_, [&](meta::Txn& t) -> Status {
      for (const meta::GcItem* g : done) LOOM_RETURN_IF_ERROR(ns->DeleteGc(t, *g));
      return Status::Ok();
    });
    if (!st.ok()) return st;
    out.removed += done.size();
  }
  return out;
}

}  // namespace loom::mds
