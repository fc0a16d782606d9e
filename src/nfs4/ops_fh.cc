// Filehandle operations (RFC 8881 §18.19-18.22, §18.24-18.25, §18.27-18.29, §18.45) and
// LOOKUP/LOOKUPP (§18.15-18.16).
#include "common/log.h"
#include "meta/errors.h"
#include "nfs4/mds.h"
#include "nfs4/names.h"

namespace loom::nfs4 {

nfsstat4 FromMeta(const Status& s) {
  if (s.ok()) return NFS4_OK;
  switch (meta::ErrOf(s)) {
    case meta::MetaErr::kNoEnt: return NFS4ERR_NOENT;
    case meta::MetaErr::kExist: return NFS4ERR_EXIST;
    case meta::MetaErr::kNotDir: return NFS4ERR_NOTDIR;
    case meta::MetaErr::kIsDir: return NFS4ERR_ISDIR;
    case meta::MetaErr::kNotEmpty: return NFS4ERR_NOTEMPTY;
    case meta::MetaErr::kInval: return NFS4ERR_INVAL;
    case meta::MetaErr::kXDev: return NFS4ERR_XDEV;
    case meta::MetaErr::kNameTooLong: return NFS4ERR_NAMETOOLONG;
    case meta::MetaErr::kMLink: return NFS4ERR_MLINK;
    case meta::MetaErr::kStale: return NFS4ERR_STALE;
    case meta::MetaErr::kBadCookie: return NFS4ERR_BAD_COOKIE;
    case meta::MetaErr::kDelay: return NFS4ERR_DELAY;
    case meta::MetaErr::kWouldBlock: return kOpWouldBlock;  // on the loop: go on on a worker
    default:
      LOG_WARN("metadata error: %s", s.ToString().c_str());
      return NFS4ERR_SERVERFAULT;
  }
}

nfsstat4 CheckComponent(const Bytes& name) {
  // §14.2-14.4: empty is INVAL, "." and ".." are BADNAME, '/' and NUL are BADCHAR, invalid
  // UTF-8 is INVAL.
  if (name.size == 0) return NFS4ERR_INVAL;
  if (name.size > 255) return NFS4ERR_NAMETOOLONG;
  std::string_view n = name.view();
  if (n == "." || n == "..") return NFS4ERR_BADNAME;
  if (n.find('/') != std::string_view::npos || n.find('\0') != std::string_view::npos)
    return NFS4ERR_BADCHAR;
  // UTF-8 well-formedness (no overlongs or surrogates checked beyond the byte structure).
  for (size_t i = 0; i < n.size();) {
    unsigned char c = static_cast<unsigned char>(n[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > n.size()) return NFS4ERR_INVAL;
    for (size_t k = 1; k < len; k++)
      if ((static_cast<unsigned char>(n[i + k]) >> 6) != 2) return NFS4ERR_INVAL;
    i += len;
  }
  return NFS4_OK;
}

nfsstat4 GetInode(Cx& cx, uint64_t ino, meta::Inode* out) {
  auto r = meta::RunTxn(cx.mds.store(), [&](meta::Txn& t) { return cx.mds.ns().GetAttr(t, ino); });
  if (!r.ok()) return FromMeta(r.status());
  *out = std::move(r.value());
  return NFS4_OK;
}

nfsstat4 CurrentInode(Cx& cx, meta::Inode* out) { return GetInode(cx, cx.cfh.ino, out); }

nfsstat4 CheckSearch(const Cx& cx, const meta::Inode& dir) {
  return cx.rpc->cred.MayAccess(dir.mode, dir.uid, dir.gid, true, 1) ? NFS4_OK : NFS4ERR_ACCESS;
}

nfsstat4 OpPutRootFh(Cx& cx, const nfs_argop4&, nfs_resop4& r) {
  SetOpError(r, OP_PUTROOTFH, NFS4_OK);
  cx.SetCfh(MdsHandle{cx.mds.options().fsid, cx.mds.ns().root()}, cx.mds.RootFh());
  return NFS4_OK;
}

nfsstat4 OpPutPubFh(Cx& cx, const nfs_argop4&, nfs_resop4& r) {
  SetOpError(r, OP_PUTPUBFH, NFS4_OK);
  cx.SetCfh(MdsHandle{cx.mds.options().fsid, cx.mds.ns().root()}, cx.mds.RootFh());
  return NFS4_OK;
}

nfsstat4 OpPutFh(Cx& cx, const nfs_argop4& a, nfs_resop4& r) {
  const Bytes& fh = a.opputfh->object;
  MdsHandle h;
  bool forged;
  nfsstat4 st = NFS4_OK;
  if (fh.size > NFS4_FHSIZE) {
    st = NFS4ERR_BADHANDLE;
  } else if (!OpenFh(cx.mds.fh_key(), fh.view(), &h, &forged)) {
    st = forged ? NFS4ERR_STALE : NFS4ERR_BADHANDLE;
  } else if (h.fsid != cx.mds.options().fsid) {
    st = NFS4ERR_STALE;
  }
  SetOpError(r, OP_PUTFH, st);
  if (st == NFS4_OK) cx.SetCfh(h, fh.str());
  return st;
}

nfsstat4 OpGetFh(Cx& cx, const nfs_argop4&, nfs_resop4& r) {
  auto& res = *(r.opgetfh = std::make_unique<GETFH4res>());
  r.resop = OP_GETFH;
  res.status = NFS4_OK;
  res.resok4.object = Bytes::Copy(cx.cfh_wire);
  return NFS4_OK;
}

nfsstat4 OpSaveFh(Cx& cx, const nfs_argop4&, nfs_resop4& r) {
  SetOpError(r, OP_SAVEFH, NFS4_OK);
  cx.sfh = cx.cfh;
  cx.sfh_wire = cx.cfh_wire;
  cx.have_sfh = true;
  cx.saved_stateid = cx.cur_stateid;
  cx.have_saved_stateid = cx.have_cur_stateid;
  return NFS4_OK;
}

nfsstat4 OpRestoreFh(Cx& cx, const nfs_argop4&, nfs_resop4& r) {
  if (!cx.have_sfh) {
    SetOpError(r, OP_RESTOREFH, NFS4ERR_RESTOREFH);
    return NFS4ERR_RESTOREFH;
  }
  SetOpError(r, OP_RESTOREFH, NFS4_OK);
  cx.SetCfh(cx.sfh, cx.sfh_wire);
  cx.cur_stateid = cx.saved_stateid;
  cx.have_cur_stateid = cx.have_saved_stateid;
  return NFS4_OK;
}

namespace {
void FillSecinfo(std::vector<secinfo4>* out) {
  secinfo4 sys;
  sys.flavor = rpc::AUTH_SYS;
  out->push_back(sys);
  secinfo4 none;
  none.flavor = rpc::AUTH_NONE;
  out->push_back(none);
}
}  // namespace

nfsstat4 OpSecinfo(Cx& cx, const nfs_argop4& a, nfs_resop4& r) {
  // §18.29.3: SECINFO consumes the current filehandle.
  auto& res = *(r.opsecinfo = std::make_unique<SECINFO4res>());
  r.resop = OP_SECINFO;
  res.status = CheckComponent(a.opsecinfo->name);
  meta::Inode dir;
  if (res.status == NFS4_OK) res.status = CurrentInode(cx, &dir);
  if (res.status == NFS4_OK && dir.type != meta::FileType::kDir) res.status = NFS4ERR_NOTDIR;
  // As LOOKUP: the name is resolved only for a caller who may search the directory (nfsd's
  // SECINFO verifies the directory with NFSD_MAY_EXEC), or SECINFO would tell anyone which
  // names exist in a directory they may not search.
  if (res.status == NFS4_OK) res.status = CheckSearch(cx, dir);
  if (res.status == NFS4_OK) {
    auto d = meta::RunTxn(cx.mds.store(), [&](meta::Txn& t) {
      return cx.mds.ns().Lookup(t, cx.cfh.ino, a.opsecinfo->name.view());
    });
    if (!d.ok()) res.status = FromMeta(d.status());
  }
  if (res.status != NFS4_OK) return res.status;
  FillSecinfo(&res.resok4);
  cx.have_cfh = false;
  return NFS4_OK;
}

nfsstat4 OpSecinfoNoName(Cx& cx, const nfs_argop4& a, nfs_resop4& r) {
  auto& res = *(r.opsecinfo_no_name = std::make_unique<SECINFO4res>());
  r.resop = OP_SECINFO_NO_NAME;
  if (*a.opsecinfo_no_name == SECINFO_STYLE4_PARENT) {
    meta::Inode cur;
    res.status = CurrentInode(cx, &cur);
    if (res.status == NFS4_OK && cur.type != meta::FileType::kDir) res.status = NFS4ERR_NOTDIR;
    // §18.45.3: the root has no parent.
    if (res.status == NFS4_OK && cur.ino == cx.mds.ns().root()) res.status = NFS4ERR_NOENT;
    if (res.status == NFS4_OK) res.status = CheckSearch(cx, cur);  // as LOOKUPP
    if (res.status != NFS4_OK) return res.status;
  }
  res.status = NFS4_OK;
  FillSecinfo(&res.resok4);
  cx.have_cfh = false;  // §18.45.3: consumes the current filehandle
  return NFS4_OK;
}

nfsstat4 OpLookup(Cx& cx, const nfs_argop4& a, nfs_resop4& r) {
  meta::Inode dir;
  nfsstat4 st = CurrentInode(cx, &dir);
  if (st == NFS4_OK && dir.type != meta::FileType::kDir)
    st = dir.type == meta::FileType::kLnk ? NFS4ERR_SYMLINK : NFS4ERR_NOTDIR;
  if (st == NFS4_OK) st = CheckComponent(a.oplookup->objname);
  if (st == NFS4_OK) st = CheckSearch(cx, dir);  // §18.13: a LOOKUP searches the directory
  meta::Dentry d;
  if (st == NFS4_OK) {
    auto res = meta::RunTxn(cx.mds.store(), [&](meta::Txn& t) {
      return cx.mds.ns().Lookup(t, cx.cfh.ino, a.oplookup->objname.view());
    });
    if (!res.ok()) st = FromMeta(res.status());
    else d = res.value();
  }
  SetOpError(r, OP_LOOKUP, st);
  if (st != NFS4_OK) return st;
  MdsHandle h{cx.cfh.fsid, d.ino};
  cx.SetCfh(h, SealFh(cx.mds.fh_key(), h));
  return NFS4_OK;
}

nfsstat4 OpLookupp(Cx& cx, const nfs_argop4&, nfs_resop4& r) {
  meta::Inode cur;
  nfsstat4 st = CurrentInode(cx, &cur);
  if (st == NFS4_OK && cur.type != meta::FileType::kDir)
    st = cur.type == meta::FileType::kLnk ? NFS4ERR_SYMLINK : NFS4ERR_NOTDIR;
  // §18.14.3: LOOKUPP at the root of the exported tree is NFS4ERR_NOENT.
  if (st == NFS4_OK && cur.ino == cx.mds.ns().root()) st = NFS4ERR_NOENT;
  // LOOKUPP looks ".." up in the current directory, so it needs search permission there, as
  // Linux nfsd's (nfsd_lookup of ".." verifies the directory with NFSD_MAY_EXEC). The
  // parent's own mode is checked by whatever is looked up from it next.
  if (st == NFS4_OK) st = CheckSearch(cx, cur);
  SetOpError(r, OP_LOOKUPP, st);
  if (st != NFS4_OK) return st;
  MdsHandle h{cx.cfh.fsid, cur.parent};
  cx.SetCfh(h, SealFh(cx.mds.fh_key(), h));
  return NFS4_OK;
}

}  // namespace loom::nfs4
