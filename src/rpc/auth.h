// RPC credentials (RFC 5531 §8, Appendix A).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/buffer.h"
#include "xdr/rpc.h"

namespace loom::rpc {

// The caller's identity. AUTH_NONE callers get uid/gid 65534 (nobody).
struct Cred {
  auth_flavor flavor = AUTH_NONE;
  uint32_t uid = 65534;
  uint32_t gid = 65534;
  std::vector<uint32_t> gids;
  std::string machine;

  static Cred Sys(uint32_t uid, uint32_t gid, std::vector<uint32_t> gids = {},
                  std::string machine = "loom");
  bool in_group(uint32_t g) const;
  // POSIX permission check of this caller against an object's mode/owner/group. `want` is a
  // mask of 4 (read), 2 (write), 1 (execute/search). Root may do anything except execute a
  // non-directory that has no execute bit at all.
  bool MayAccess(uint32_t mode, uint32_t owner, uint32_t group, bool is_dir, int want) const;
};

// Parses an opaque_auth credential into `out`. False for malformed bodies or unsupported
// flavors (the caller replies AUTH_ERROR / AUTH_BADCRED).
bool ParseCred(const opaque_auth& a, Cred* out);
// Encodes `c` as an opaque_auth (AUTH_NONE or AUTH_SYS).
opaque_auth EncodeCred(const Cred& c);

}  // namespace loom::rpc
