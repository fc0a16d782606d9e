// What the client and the data path share about one open file.
#pragma once

#include <atomic>
#include <mutex>
#include <string>

#include "common/buffer.h"
#include "xdr/nfs4.h"

namespace loom::client::internal {

using namespace loom::nfs4;  // the generated NFSv4 types (nfs_argop4, stateid4, ...)

struct FileState {
  std::string path;
  // The open-owner of this open (RFC 8881 §9.1.2): one per File, so that two Files of the same
  // file hold separate open stateids (one owner would share one stateid, which each OPEN bumps
  // and the first CLOSE ends).
  std::string owner;
  Bytes fh;                 // the metadata server's nfs_fh4
  uint32_t share_access = 0;  // OPEN4_SHARE_ACCESS_READ / _WRITE / _BOTH
  std::atomic<uint64_t> size{0};  // the server's at open, grown by our writes

  // The open stateid; replaced when the open is reclaimed after a server restart.
  stateid4 open_stateid() const {
    std::lock_guard<std::mutex> g(mu);
    return stateid;
  }
  void set_open_stateid(const stateid4& s, uint64_t epoch_now) {
    std::lock_guard<std::mutex> g(mu);
    stateid = s;
    epoch = epoch_now;
  }
  uint64_t open_epoch() const {
    std::lock_guard<std::mutex> g(mu);
    return epoch;
  }

 private:
  mutable std::mutex mu;
  stateid4 stateid{};
  uint64_t epoch = 0;  // the session epoch the stateid belongs to
};

}  // namespace loom::client::internal
