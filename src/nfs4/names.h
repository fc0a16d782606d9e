// Helpers shared by the NFSv4 operation files.
#pragma once

#include "meta/namespace.h"
#include "meta/records.h"
#include "nfs4/compound.h"
#include "nfs4/state.h"

namespace loom::nfs4 {

// A component name check (RFC 8881 §14.2-14.4).
nfsstat4 CheckComponent(const Bytes& name);
// The inode of `ino` / of the current filehandle.
nfsstat4 GetInode(Cx& cx, uint64_t ino, meta::Inode* out);
nfsstat4 CurrentInode(Cx& cx, meta::Inode* out);
// NFS4ERR_ACCESS unless the caller may search directory `dir` (execute permission), which
// resolving a name in it needs: LOOKUP, LOOKUPP, SECINFO, OPEN (as Linux nfsd's NFSD_MAY_EXEC).
nfsstat4 CheckSearch(const Cx& cx, const meta::Inode& dir);

// NFS4ERR_ROFS when the export rule that admitted the call is read-only ("ro"); every
// operation that modifies a file, a directory or their attributes checks it first.
inline nfsstat4 CheckWritableExport(const Cx& cx) {
  return cx.rpc->read_only ? NFS4ERR_ROFS : NFS4_OK;
}

// The caller's own right to a file's data for an I/O (READ, WRITE, COMMIT, LAYOUTGET,
// LAYOUTCOMMIT): mode bits with nfsd's owner override (ops_io.cc).
nfsstat4 CheckIoAccess(Cx& cx, const meta::Inode& n, Access want);

// Whether a mirror of a layout missed writes and may not be handed out or read from until
// it is resynchronised.
inline bool MirrorIsStale(const meta::Mirror& m) { return m.stale; }

// Owner, group and mode of a new object in `dir` (a->mode holds the requested bits), as
// Linux's inode_init_owner and mode_strip_sgid: the caller's uid; the directory's group when
// the directory is set-group-ID (a new directory inherits the bit too), else the caller's
// gid; a group-executable S_ISGID on a non-directory is dropped when the inherited group is
// not one of the caller's (root aside), or creating files would hand out set-group-ID.
inline void InitOwner(const rpc::Cred& c, const meta::Inode& dir, bool is_dir,
                      meta::CreateArgs* a) {
  bool inherit = (dir.mode & 02000) != 0;
  a->uid = c.uid;
  a->gid = inherit ? dir.gid : c.gid;
  if (is_dir && inherit) a->mode |= 02000;
  if (!is_dir && inherit && (a->mode & 02010) == 02010 && c.uid != 0 && !c.in_group(dir.gid))
    a->mode &= ~02000u;
}

}  // namespace loom::nfs4
