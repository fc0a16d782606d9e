// NFSv3 file handles of loom-ds (at most NFS3_FHSIZE = 64 bytes, RFC 1813 §2.5).
//
//   byte 0     format version (1)
//   byte 1     kernel handle type (from name_to_handle_at)
//   byte 2     kernel handle length n (<= 44)
//   byte 3     reserved, 0
//   4 .. 4+n   the kernel's handle bytes (inode + generation on ext4/xfs): persistent across
//              restarts, and stale once the inode is freed and reused
//   8 bytes    SipHash-2-4 of bytes [0, 4+n) under the export's secret key
//
// The MAC makes handles unforgeable: a client can only present handles this export issued,
// so guessing inode numbers does not reach files outside the export.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/siphash.h"
#include "common/status.h"

namespace loom::nfs3 {

constexpr size_t kMaxKernelHandle = 44;

struct KernelHandle {
  int type = 0;
  std::string bytes;  // f_handle
};

// Builds the wire handle for a kernel handle.
Result<std::string> SealHandle(const SipKey& key, const KernelHandle& kh);
// Verifies and unpacks a wire handle. Errors: kInvalidArgument for malformed (BADHANDLE),
// kPermission for a MAC mismatch (treated as STALE: the handle is not ours).
Result<KernelHandle> OpenHandle(const SipKey& key, std::string_view wire);

}  // namespace loom::nfs3
