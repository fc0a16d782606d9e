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

// The current filehandle must be a directory the caller may modify.
nfsstat4 WritableDir(Cx& cx, uint64_t ino, meta::Inode* dir) {
  nfsstat4 st = GetInode(cx, ino, dir);
  if (st != NFS4_OK) return st;
  if (dir->type != meta::FileType::kDir) return NFS4ERR_NOTDIR;
  if (!cx.rpc.cred.MayAccess(dir->mode, dir->uid, dir->gid, true, 2 | 1)) return NFS4ERR_ACCESS;
  return NFS4_OK;
}

// Sticky directories: only the owner of the entry or of the directory (or root) may remove
// or rename the entry.
nfsstat4 StickyCheck(Cx& cx, const meta::Inode& dir, std::string_view name) {
  if (!(dir.mode & 01000) || cx.rpc.cred.uid == 0 || cx.rpc.cred.uid == dir.uid) return NFS4_OK;
  auto d = meta::RunTxn(cx.mds.store(), [&](meta::Txn& t) { return cx.mds.ns().Lookup(t, dir.ino, name); });
  if (!d.ok()) return FromMeta(d.status());
  meta::Inode obj;
  nfsstat4 st = GetInode(cx, d->ino, &obj);
  if (st != NFS4_OK) return st;
  return obj.uid == cx.rpc.cred.uid ? NFS4_OK : NFS4ERR_ACCESS;
}

}  // namespace

nfsstat4 OpAccess(Cx& cx, const nfs_argop4& a, nfs_resop4& r) {
  auto& res = *(r.opaccess = std::make_unique<ACCESS4res>());
  r.resop = OP_ACCESS;
  meta::Inode n;
  res.status = CurrentInode(cx, &n);
  if (res.status != NFS4_OK) return res.status;
  const rpc::Cred& c = cx.rpc.cred;
  bool dir = n.type == meta::FileType::kDir;
  auto may = [&](int want) { return c.MayAccess(n.mode, n.uid, n.gid, dir, want); };
  uint32_t granted = 0;
  if (may(4)) granted |= ACCESS4_READ;
  if (may(2)) granted |= ACCESS4_MODIFY | ACCESS4_EXTEND | (dir ? ACCESS4_DELETE : 0);
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
  meta::Inode dir;
  res.status = CheckComponent(name);
  if (res.status == NFS4_OK) res.status = WritableDir(cx, cx.cfh.ino, &dir);
  if (res.status == NFS4_OK && cx.mds.InGrace()) res.status = NFS4ERR_GRACE;  // §8.4.2.1
  if (res.status == NFS4_OK) res.status = StickyCheck(cx, dir, name.view());
  if (res.status != NFS4_OK) return res.status;
  auto rr = meta::RunTxn(cx.mds.store(), [&](meta::Txn& t) {
    return cx.mds.ns().Remove(t, cx.cfh.ino, name.view(),
                              [&](meta::Ino ino) { return cx.mds.IsOpen(ino); });
  });
  if (!rr.ok()) return res.status = FromMeta(rr.status());
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
  res.status = CheckComponent(from);
  if (res.status == NFS4_OK) res.status = CheckComponent(to);
  if (res.status == NFS4_OK && cx.sfh.fsid != cx.cfh.fsid) res.status = NFS4ERR_XDEV;
  meta::Inode sdir, tdir;
  if (res.status == NFS4_OK) res.status = WritableDir(cx, cx.sfh.ino, &sdir);
  if (res.status == NFS4_OK) res.status = WritableDir(cx, cx.cfh.ino, &tdir);
  if (res.status == NFS4_OK && cx.mds.InGrace()) res.status = NFS4ERR_GRACE;
  if (res.status == NFS4_OK) res.status = StickyCheck(cx, sdir, from.view());
  if (res.status != NFS4_OK) return res.status;
  auto rr = meta::RunTxn(cx.mds.store(), [&](meta::Txn& t) {
    return cx.mds.ns().Rename(t, cx.sfh.ino, from.view(), cx.cfh.ino, to.view(),
                              [&](meta::Ino ino) { return cx.mds.IsOpen(ino); });
  });
  if (!rr.ok()) return res.status = FromMeta(rr.status());
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
  res.status = CheckComponent(name);
  if (res.status == NFS4_OK && cx.sfh.fsid != cx.cfh.fsid) res.status = NFS4ERR_XDEV;
  meta::Inode dir;
  if (res.status == NFS4_OK) res.status = WritableDir(cx, cx.cfh.ino, &dir);
  if (res.status != NFS4_OK) return res.status;
  auto rr = meta::RunTxn(cx.mds.store(), [&](meta::Txn& t) {
    return cx.mds.ns().Link(t, cx.sfh.ino, cx.cfh.ino, name.view());
  });
  if (!rr.ok()) return res.status = FromMeta(rr.status());
  res.resok4.cinfo = Cinfo(rr.value());
  return NFS4_OK;
}

}  // namespace loom::nfs4
