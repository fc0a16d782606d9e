// File handles of loom-mds (RFC 8881 §4): version, filesystem id and inode number, sealed with
// an 8-byte SipHash MAC under the server's secret so clients cannot forge handles to other
// inodes. Persistent (FH4_PERSISTENT): an inode keeps its handle across renames and restarts;
// once the inode is gone the handle is STALE.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/siphash.h"

namespace loom::nfs4 {

struct MdsHandle {
  uint64_t fsid = 0;
  uint64_t ino = 0;
  bool operator==(const MdsHandle&) const = default;
};

std::string SealFh(const SipKey& key, const MdsHandle& h);
// 0 on success; NFS4ERR_BADHANDLE for malformed handles, NFS4ERR_STALE (or BADHANDLE) for a
// MAC mismatch is chosen by the caller: returns false for malformed, sets *forged on MAC errors.
bool OpenFh(const SipKey& key, std::string_view wire, MdsHandle* out, bool* forged);

}  // namespace loom::nfs4
