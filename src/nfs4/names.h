// Helpers shared by the NFSv4 operation files.
#pragma once

#include "meta/records.h"
#include "nfs4/compound.h"

namespace loom::nfs4 {

// A component name check (RFC 8881 §14.2-14.4).
nfsstat4 CheckComponent(const Bytes& name);
// The inode of `ino` / of the current filehandle.
nfsstat4 GetInode(Cx& cx, uint64_t ino, meta::Inode* out);
nfsstat4 CurrentInode(Cx& cx, meta::Inode* out);

}  // namespace loom::nfs4
