// Namespace operations that need no attribute encoding: ACCESS (§18.1), LINK (§18.9),
// READLINK (§18.24), REMOVE (§18.25), RENAME (§18.26).
#include "nfs4/mds.h"
#include "nfs4/names.h"

namespace loom::nfs4 {

namespace {

change_info4 Cinfo(const meta::ChangeInfo& c) {
  // Atomic: before/after are read and written under the directory's lock in one transaction.
  return change_info4{true, c.before, c.after};
}

// Adding or removing entries needs write and search permission on the directory.
bool MayChangeEntries(const rpc::Cred& c, const meta::Inode& dir) {
  return c.MayAccess(dir.mode, dir.uid, dir.gid, true, 2 | 1);
}

// The directory must be one the caller may modify. Read in the operation's own transaction
// `t`, not in one of its own: a transaction that read a commit still waiting for its WAL sync
// waits for that sync when it ends (rocks_kv.h), and the directory of a busy directory almost
// always has one (every create, remove and rename in it changes its times) -- one extra fsync
// wait per operation. In `t` a failed check ends the transaction (its rollback waits so that
// the error does not rest on an undurable state) and a passed one waits only with the commit.
nfsstat4 WritableDir(Cx& cx, meta::Txn& t, uint64_t ino) {
  auto dir = cx.mds.ns().GetAttr(t, ino);
  if (!dir.ok()) return FromMeta(dir.status());
  if (dir->type != meta::FileType::kDir) return NFS4ERR_NOTDIR;
  return MayChangeEntries(cx.rpc->cred, *dir) ? NFS4_OK : NFS4ERR_ACCESS;
}

// Ends the transaction of an operation whose early check failed.
Status EarlyAnswer() { return Status(Code::kPermission, "early check failed"); }

// Sticky directories: only the owner of the entry or of the directory (or root) may remove
// or rename the entry.
bool StickyAllows(const rpc::Cred& c, const meta::Inode& dir, const meta::Inode& obj) {
  return !(dir.mode & 01000) || c.uid == 0 || c.uid == dir.uid || c.uid == obj.uid;
}

// REMOVE's permission checks (Linux's may_delete), made by Namespace::Remove on the
// directory and the object it has locked: the directory writable and searchable, and a
// sticky directory's entry removable only by root or its or the directory's owner.
nfsstat4 RemoveChecks(const rpc::Cred& c, const meta::Inode& dir, const meta::Inode& obj) {
  return MayChangeEntries(c, dir) && StickyAllows(c, dir, obj) ? NFS4_OK : NFS4ERR_ACCESS;
}

// RENAME's permission checks (Linux's may_delete on both names, may_create, and vfs_rename's
// check of a moving directory), made by Namespace::Rename on the directories and objects it
// has locked, so that no chmod, chown or new target slips in between check and rename: both
// directories writable and searchable; a sticky source directory protects another user's
// entry from being moved, a sticky target directory another user's entry from being
// replaced; a directory moving to another parent gets a new "..", a change to the directory
// itself, so it needs write permission on it.
nfsstat4 RenameChecks(const rpc::Cred& c, const meta::Inode& sdir, const meta::Inode& obj,
                      const meta::Inode& tdir, const meta::Inode* target) {
  if (!MayChangeEntries(c, sdir) || !MayChangeEntries(c, tdir)) return NFS4ERR_ACCESS;
  if (!StickyAllows(c, sdir, obj)) return NFS4ERR_ACCESS;
  if (target && !StickyAllows(c, tdir, *target)) return NFS4ERR_ACCESS;
  bool moving_dir = sdir.ino != tdir.ino && obj.type == meta::FileType::kDir;
  if (moving_dir && !c.MayAccess(obj.mode, obj.uid, obj.gid, true, 2)) return NFS4ERR_ACCESS;
  return NFS4_OK;
}

}  // namespace

nfsstat4 OpAccess(Cx& cx, const nfs_argop4& a, nfs_resop4& r) {
  auto& res = *(r.opaccess = std::make_unique<ACCESS4res>());
  r.resop = OP_ACCESS;
  meta::Inode n;
  res.status = CurrentInode(cx, &n);
  if (res.status != NFS4_OK) return res.status;
  const rpc::Cred& c = cx.rpc->cred;
  bool dir = n.type == meta::FileType::kDir;
  auto may = [&](int want) { return c.MayAccess(n.mode, n.uid, n.gid, dir, want); };
  uint32_t granted = 0;
  if (may(4)) granted |= ACCESS4_READ;
  // Nothing is modifiable through a read-only export (as nfsd's ACCESS answers).
  if (may(2) && !cx.rpc->read_only)
    granted |= ACCESS4_MODIFY | ACCESS4_EXTEND | (dir ? ACCESS4_DELETE : 0);
  if (may(1)) granted |= dir ? ACCESS4_LOOKUP : ACCESS4_EXECUTE;
  uint32_t known = ACCESS4_READ | ACCESS4_LOOKUP | ACCESS4_MODIFY | ACCESS4_EXTEND |
                   ACCESS4_DELETE | ACCESS4_EXECUTE;
  res.resok4.supported = a.opaccess->access & known;
  res.resok4.access = a.opaccess->access & granted;
  return NFS4_OK;
}

nfsstat4 OpReadlink(Cx& cx, const nfs_argop4&, nfs_resop4& r) {
  auto& res = *(r.opreadlink = std::make_unique<READLINK4res>());
  r.resop = OP_READLINK;
  meta::Inode n;
  res.status = CurrentInode(cx, &n);
  if (res.status == NFS4_OK && n.type != meta::FileType::kLnk) res.status = NFS4ERR_INVAL;
  if (res.status == NFS4_OK) res.resok4.link = Bytes::Copy(n.symlink);
  return res.status;
}

nfsstat4 OpRemove(Cx& cx, const nfs_argop4& a, nfs_resop4& r) {
  auto& res = *(r.opremove = std::make_unique<REMOVE4res>());
  r.resop = OP_REMOVE;
  const Bytes& name = a.opremove->target;
  res.status = CheckWritableExport(cx);
  if (res.status == NFS4_OK) res.status = CheckComponent(name);
  if (res.status != NFS4_OK) return res.status;
  // The early checks (WritableDir, grace) answer early; RemoveChecks decides, on what the
  // remove locked.
  nfsstat4 early = NFS4_OK;
  nfsstat4 denied = NFS4_OK;
  auto check = [&](const meta::Inode& d, const meta::Inode& obj) {
    denied = RemoveChecks(cx.rpc->cred, d, obj);
    return denied == NFS4_OK ? Status::Ok() : Status(Code::kPermission, "remove not permitted");
  };
  auto rr = meta::RunTxn(cx.mds.store(), [&](meta::Txn& t) -> Result<meta::RemoveResult> {
    denied = NFS4_OK;
    early = WritableDir(cx, t, cx.cfh.ino);
    if (early == NFS4_OK && cx.mds.InGrace()) early = NFS4ERR_GRACE;  // §8.4.2.1
    if (early != NFS4_OK) return EarlyAnswer();
    return cx.mds.ns().Remove(t, cx.cfh.ino, name.view(),
                              [&](meta::Ino ino) { return cx.mds.IsOpen(ino); }, check);
  });
  if (early != NFS4_OK) return res.status = early;
  if (!rr.ok()) return res.status = denied != NFS4_OK ? denied : FromMeta(rr.status());
  res.resok4.cinfo = Cinfo(rr->dir);
  cx.mds.AfterUnlink(rr->obj);
  return NFS4_OK;
}

nfsstat4 OpRename(Cx& cx, const nfs_argop4& a, nfs_resop4& r) {
  auto& res = *(r.oprename = std::make_unique<RENAME4res>());
  r.resop = OP_RENAME;
  // §18.26: the saved filehandle is the source directory, the current one the target.
  if (!cx.have_sfh) return res.status = NFS4ERR_NOFILEHANDLE;
  const Bytes& from = a.oprename->oldname;
  const Bytes& to = a.oprename->newname;
  res.status = CheckWritableExport(cx);
  if (res.status == NFS4_OK) res.status = CheckComponent(from);
  if (res.status == NFS4_OK) res.status = CheckComponent(to);
  if (res.status == NFS4_OK && cx.sfh.fsid != cx.cfh.fsid) res.status = NFS4ERR_XDEV;
  if (res.status != NFS4_OK) return res.status;
  // The early checks (WritableDir, grace) answer early; RenameChecks decides, on what the
  // rename locked.
  nfsstat4 early = NFS4_OK;
  nfsstat4 denied = NFS4_OK;
  auto check = [&](const meta::Inode& sd, const meta::Inode& obj, const meta::Inode& td,
                   const meta::Inode* target) {
    denied = RenameChecks(cx.rpc->cred, sd, obj, td, target);
    return denied == NFS4_OK ? Status::Ok() : Status(Code::kPermission, "rename not permitted");
  };
  auto rr = meta::RunTxn(cx.mds.store(), [&](meta::Txn& t) -> Result<meta::RenameResult> {
    denied = NFS4_OK;
    early = WritableDir(cx, t, cx.sfh.ino);
    if (early == NFS4_OK) early = WritableDir(cx, t, cx.cfh.ino);
    if (early == NFS4_OK && cx.mds.InGrace()) early = NFS4ERR_GRACE;
    if (early != NFS4_OK) return EarlyAnswer();
    return cx.mds.ns().Rename(t, cx.sfh.ino, from.view(), cx.cfh.ino, to.view(),
                              [&](meta::Ino ino) { return cx.mds.IsOpen(ino); }, check);
  });
  if (early != NFS4_OK) return res.status = early;
  if (!rr.ok()) return res.status = denied != NFS4_OK ? denied : FromMeta(rr.status());
  res.resok4.source_cinfo = Cinfo(rr->src_dir);
  res.resok4.target_cinfo = Cinfo(rr->dst_dir);
  if (rr->replaced) cx.mds.AfterUnlink(*rr->replaced);
  return NFS4_OK;
}

nfsstat4 OpLink(Cx& cx, const nfs_argop4& a, nfs_resop4& r) {
  auto& res = *(r.oplink = std::make_unique<LINK4res>());
  r.resop = OP_LINK;
  // §18.9: the saved filehandle is the object, the current one the directory.
  if (!cx.have_sfh) return res.status = NFS4ERR_NOFILEHANDLE;
  const Bytes& name = a.oplink->newname;
  res.status = CheckWritableExport(cx);
  if (res.status == NFS4_OK) res.status = CheckComponent(name);
  if (res.status == NFS4_OK && cx.sfh.fsid != cx.cfh.fsid) res.status = NFS4ERR_XDEV;
  if (res.status != NFS4_OK) return res.status;
  nfsstat4 early = NFS4_OK;
  auto rr = meta::RunTxn(cx.mds.store(), [&](meta::Txn& t) -> Result<meta::ChangeInfo> {
    early = WritableDir(cx, t, cx.cfh.ino);
    if (early != NFS4_OK) return EarlyAnswer();
    return cx.mds.ns().Link(t, cx.sfh.ino, cx.cfh.ino, name.view());
  });
  if (early != NFS4_OK) return res.status = early;
  if (!rr.ok()) return res.status = FromMeta(rr.status());
  res.resok4.cinfo = Cinfo(rr.value());
  return NFS4_OK;
}

}  // namespace loom::nfs4
