// Private to data_servers.cc, data_io.cc and ds_files.cc: one data server's connection state and the call
// driver (reconnect once, JUKEBOX backoff) both files use.
#pragma once

#include <algorithm>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include "mds/data_servers.h"
#include "nfs3/nfs3_client.h"

namespace loom::mds {

struct DataServerPool::Server {
  explicit Server(DataServerConfig c) : cfg(std::move(c)), draining(cfg.draining) {}
  const DataServerConfig cfg;

  std::mutex connect_mu;  // one connect (TCP + MNT + FSINFO) at a time; held while blocking
  mutable std::mutex mu;  // everything below
  std::shared_ptr<nfs3::Nfs3Client> client;     // null or closed: connect on next use
  std::string root_fh;                          // MNT of cfg.export_path
  std::string loom_fh;                          // <export>/loom
  std::unordered_map<meta::FsId, std::string> fs_dirs;  // <export>/loom/<fsid>
  uint32_t rtmax = 0, wtmax = 0;                // FSINFO; 0: unknown
  Verifier verf{};                              // last write verifier seen (loom-ds: per boot)
  Health health = Health::kUnknown;
  int64_t since_ms = 0;                         // health changed
  int64_t failed_ms = 0;                        // last failure (for down_retry_ms)
  std::string last_error;
  bool draining = false;
  bool space_known = false;                     // FSSTAT answered at least once
  uint64_t capacity = 0, free = 0;              // FSSTAT tbytes, abytes
};

template <typename Args, typename Res>
Status DataServerPool::CallOnce(Server& s, uint32_t proc, const Args& args, Res* res) {
  if (!Usable(s)) {
    std::lock_guard<std::mutex> l(s.mu);
    return Status::Unavailable("data server " + std::to_string(s.cfg.id) + " is down (" +
                               s.last_error + ")");
  }
  for (int attempt = 0;; ++attempt) {
    Result<std::shared_ptr<nfs3::Nfs3Client>> c = Client(s);
    if (!c.ok()) return c.status();
    *res = Res();
    Status st = (*c)->Call(proc, args, res);
    if (st.ok()) return st;
    if (st.code() != Code::kUnavailable && st.code() != Code::kTimeout) return st;
    // The connection is gone (the server restarted, or closed it) or stuck: drop it. A lost
    // connection gets one retry on a fresh one — every call the MDS makes is safe to repeat
    // (CREATE falls back to UNCHECKED on EXIST, REMOVE treats NOENT as done).
    DropClient(s, *c);
    if (st.code() == Code::kUnavailable && attempt == 0) continue;
    MarkDown(s, st);
    return st;
  }
}

template <typename Args, typename Res>
Status DataServerPool::Call(Server& s, uint32_t proc, const Args& args, Res* res) {
  int delay_ms = opts_.jukebox_delay_ms;
  for (int i = 0;; ++i) {
    LOOM_RETURN_IF_ERROR(CallOnce(s, proc, args, res));
    // RFC 1813 §2.6: JUKEBOX is "try again later", e.g. a file being recalled from tape.
    if (res->status != nfs3::NFS3ERR_JUKEBOX || i >= opts_.jukebox_retries) return Status::Ok();
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    delay_ms = std::min(delay_ms * 2, 1000);
  }
}

inline nfs3::nfs_fh3 Fh(const std::string& s) {
  nfs3::nfs_fh3 fh;
  fh.data = Bytes::Copy(s);
  return fh;
}

}  // namespace loom::mds
