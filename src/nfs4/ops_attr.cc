// Operations that read or write attributes: GETATTR (§18.7), SETATTR (§18.30), VERIFY (§18.31),
// NVERIFY (§18.15), CREATE (§18.4) and READDIR (§18.23).
#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "nfs4/attrs.h"
#include "nfs4/mds.h"
#include "nfs4/names.h"
#include "nfs4/state.h"
#include "mds/data_servers.h"

namespace loom::nfs4 {

// SetattrOn for a caller that holds the file's size lock exclusively already (ALLOCATE).
nfsstat4 SetattrHoldingSizeLock(Cx& cx, uint64_t ino, const Settable& s);

namespace {

AttrSource Source(Cx& cx, const meta::Inode& n, std::string_view fh) {
  return AttrSource{n, fh, fsid4{cx.mds.options().fsid, 0}, 0, cx.mds.fs_stats()};
}

meta::Timespec ToTime(const SetTime& t) { return t.server_time ? meta::NowRealtime() : t.time; }

// Who may change what (POSIX rules, as chown(2)/chmod(2)/utimes(2)/truncate(2)). Owner and
// group may be "changed" to their present values only by the owner (Linux's chown_ok and
// chgrp_ok), so a stranger's no-op chown is EPERM as well. A size change needs write access
// (or ownership) whatever stateid came with it, as Linux nfsd checks it.
nfsstat4 CheckSetattrPermission(const rpc::Cred& c, const meta::Inode& n, const Settable& s) {
  bool root = c.uid == 0, owner = c.uid == n.uid;
  bool dir = n.type == meta::FileType::kDir;
  if (s.uid && !root && !(owner && *s.uid == n.uid)) return NFS4ERR_PERM;
  if (s.gid && !root && !(owner && (*s.gid == n.gid || c.in_group(*s.gid)))) return NFS4ERR_PERM;
  if (s.mode && !root && !owner) return NFS4ERR_PERM;
  if (s.size) {
    if (dir) return NFS4ERR_ISDIR;
    if (n.type != meta::FileType::kReg) return NFS4ERR_INVAL;
    if (!root && !owner && !c.MayAccess(n.mode, n.uid, n.gid, false, 2)) return NFS4ERR_ACCESS;
  }
  bool explicit_time = (s.atime && !s.atime->server_time) || (s.mtime && !s.mtime->server_time);
  if ((s.atime || s.mtime) && !root && !owner) {
    if (explicit_time) return NFS4ERR_PERM;
    if (!c.MayAccess(n.mode, n.uid, n.gid, dir, 2)) return NFS4ERR_ACCESS;
  }
  return NFS4_OK;
}

// The change to make, with set-user-ID and set-group-ID kept as Linux keeps them:
//  - chmod by a caller outside the file's (new) group, root aside, drops S_ISGID
//    (setattr_copy);
//  - chown/chgrp of a non-directory, by anyone, drops S_ISUID and a group-executable S_ISGID,
//    from the mode given alongside too (nfsd_sanitize_attrs, chown_common);
//  - a size change by anyone but root drops them as a write does (do_truncate).
meta::SetAttrArgs ToMeta(const rpc::Cred& c, const meta::Inode& n, const Settable& s) {
  meta::SetAttrArgs m;
  m.mode = s.mode;
  if (m.mode && c.uid != 0 && !c.in_group(s.gid.value_or(n.gid))) *m.mode &= ~02000u;
  m.kill_setid = (s.uid || s.gid || (s.size && c.uid != 0)) && n.type != meta::FileType::kDir;
  m.uid = s.uid;
  m.gid = s.gid;
  m.size = s.size;
  if (s.atime) m.atime = ToTime(*s.atime);
  if (s.mtime) m.mtime = ToTime(*s.mtime);
  return m;
}

}  // namespace

nfsstat4 OpGetattr(Cx& cx, const nfs_argop4& a, nfs_resop4& r) {
  auto& res = *(r.opgetattr = std::make_unique<GETATTR4res>());
  r.resop = OP_GETATTR;
  meta::Inode n;
  res.status = CurrentInode(cx, &n);
  if (res.status != NFS4_OK) return res.status;
  if (n.type == meta::FileType::kReg && BitmapHas(a.opgetattr->attr_request, FATTR4_SIZE)) {
    // Settling asks the data servers (pnfs.cc): not on the loop.
    if (cx.on_loop && cx.mds.SizeUnsettled(n.ino)) return res.status = kOpWouldBlock;
    cx.mds.SettleSize(&n);
  }
  res.status = EncodeAttrs(a.opgetattr->attr_request, Source(cx, n, cx.cfh_wire), cx.minor,
                           &res.resok4.obj_attributes);
  return res.status;
}

nfsstat4 SetattrOn(Cx& cx, uint64_t ino, const Settable& s) {
  // A size change holds the file's size lock from reading the old size to storing the new
  // one, excluding WRITEs (size_locks.h).
  std::unique_lock<std::shared_mutex> size_lock;
  if (s.size) size_lock = cx.mds.size_locks().Exclusive(ino);
  return SetattrHoldingSizeLock(cx, ino, s);
}

nfsstat4 SetattrHoldingSizeLock(Cx& cx, uint64_t ino, const Settable& s) {
  meta::Inode n;
  nfsstat4 st = GetInode(cx, ino, &n);
  if (st != NFS4_OK) return st;
  st = CheckSetattrPermission(cx.rpc->cred, n, s);
  if (st != NFS4_OK) return st;
  // With layouts out, the data servers may hold bytes past the size the MDS knows (written,
  // not yet LAYOUTCOMMITted): cut them whatever the recorded size says.
  if (s.size && (*s.size != n.size || !cx.mds.layouts().Holders(ino).empty())) {
    // The data files first: a crash in between leaves metadata at the old size, which the
    // client's retried SETATTR fixes; the other order could expose stale bytes past EOF.
    st = cx.mds.TruncateData(ino, *s.size, cx.client);
    if (st != NFS4_OK) return st;
    cx.mds.size_locks().Reached(ino, SizeLocks::Step::kTruncateDataDone);
  }
  auto rr = meta::RunTxn(cx.mds.store(), [&](meta::Txn& t) { return cx.mds.ns().SetAttr(t, ino, ToMeta(cx.rpc->cred, n, s)); });
  return rr.ok() ? NFS4_OK : FromMeta(rr.status());
}

nfsstat4 OpSetattr(Cx& cx, const nfs_argop4& a, nfs_resop4& r) {
  auto& res = *(r.opsetattr = std::make_unique<SETATTR4res>());
  r.resop = OP_SETATTR;
  Settable s;
  bitmap4 set;
  res.status = CheckWritableExport(cx);
  if (res.status == NFS4_OK) res.status = DecodeSettable(a.opsetattr->obj_attributes, &s, &set);
  if (res.status != NFS4_OK) return res.status;
  bool write_open = false;
  if (s.size) {
    // §18.30.3: a size change carries a stateid: an open/lock stateid with write access, or a
    // special stateid.
    stateid4 sid = a.opsetattr->stateid;
    if (!cx.ResolveCurrentStateid(&sid)) return res.status = NFS4ERR_BAD_STATEID;
    res.status = cx.mds.state().CheckIo(sid, cx.client, cx.cfh.ino, /*write=*/true, &write_open);
    if (res.status != NFS4_OK) return res.status;
    if (cx.mds.InGrace() && !write_open) return res.status = NFS4ERR_GRACE;
  }
  res.status = SetattrOn(cx, cx.cfh.ino, s);
  if (res.status == NFS4_OK) res.attrsset = std::move(set);
  return res.status;
}

namespace {
nfsstat4 Verify(Cx& cx, const fattr4& given, bool want_same) {
  meta::Inode n;
  nfsstat4 st = CurrentInode(cx, &n);
  if (st != NFS4_OK) return st;
  bool same = false;
  st = CompareAttrs(given, Source(cx, n, cx.cfh_wire), cx.minor, &same);
  if (st != NFS4_OK) return st;
  if (same == want_same) return NFS4_OK;
  return want_same ? NFS4ERR_NOT_SAME : NFS4ERR_SAME;
}
}  // namespace

nfsstat4 OpVerify(Cx& cx, const nfs_argop4& a, nfs_resop4& r) {
  nfsstat4 st = Verify(cx, a.opverify->obj_attributes, true);
  SetOpError(r, OP_VERIFY, st);
  return st;
}

nfsstat4 OpNverify(Cx& cx, const nfs_argop4& a, nfs_resop4& r) {
  nfsstat4 st = Verify(cx, a.opnverify->obj_attributes, false);
  SetOpError(r, OP_NVERIFY, st);
  return st;
}

nfsstat4 OpCreate(Cx& cx, const nfs_argop4& a, nfs_resop4& r) {
  auto& res = *(r.opcreate = std::make_unique<CREATE4res>());
  r.resop = OP_CREATE;
  const CREATE4args& ca = *a.opcreate;
  auto type = FileTypeOf(ca.objtype.type);
  // §18.4.3: regular files are made by OPEN; CREATE of NF4REG is BADTYPE.
  if (!type || *type == meta::FileType::kReg) return res.status = NFS4ERR_BADTYPE;
  res.status = CheckWritableExport(cx);
  if (res.status == NFS4_OK) res.status = CheckComponent(ca.objname);
  meta::Inode dir;
  if (res.status == NFS4_OK) res.status = GetInode(cx, cx.cfh.ino, &dir);
  if (res.status == NFS4_OK && dir.type != meta::FileType::kDir) res.status = NFS4ERR_NOTDIR;
  if (res.status == NFS4_OK && !cx.rpc->cred.MayAccess(dir.mode, dir.uid, dir.gid, true, 3))
    res.status = NFS4ERR_ACCESS;
  if (res.status == NFS4_OK && cx.mds.InGrace()) res.status = NFS4ERR_GRACE;
  Settable s;
  bitmap4 set;
  if (res.status == NFS4_OK) res.status = DecodeSettable(ca.createattrs, &s, &set);
  if (res.status == NFS4_OK && *type == meta::FileType::kLnk &&
      (ca.objtype.linkdata.size == 0 || ca.objtype.linkdata.size > 4096))
    res.status = ca.objtype.linkdata.size == 0 ? NFS4ERR_INVAL : NFS4ERR_NAMETOOLONG;
  if (res.status == NFS4_OK && (*type == meta::FileType::kBlk || *type == meta::FileType::kChr) &&
      cx.rpc->cred.uid != 0)
    res.status = NFS4ERR_PERM;
  if (res.status != NFS4_OK) return res.status;
  // The attributes the create does not set take a second transaction (below): not on the
  // loop, where it could not wait once the first had committed.
  if (cx.on_loop && (s.uid || s.gid || s.atime || s.mtime || s.size)) return kOpWouldBlock;
  meta::CreateArgs args;
  args.type = *type;
  args.mode = s.mode.value_or(*type == meta::FileType::kDir ? 0755 : 0777) & 07777;
  InitOwner(cx.rpc->cred, dir, *type == meta::FileType::kDir, &args);
  args.symlink = ca.objtype.linkdata.str();
  args.rdev_major = ca.objtype.devdata.specdata1;
  args.rdev_minor = ca.objtype.devdata.specdata2;
  auto cr = meta::RunTxn(cx.mds.store(), [&](meta::Txn& t) {
    return cx.mds.ns().Create(t, cx.cfh.ino, ca.objname.view(), args);
  });
  if (!cr.ok()) return res.status = FromMeta(cr.status());
  res.resok4.cinfo = change_info4{true, cr->dir.before, cr->dir.after};
  uint64_t ino = cr->inode.ino;
  MdsHandle h{cx.cfh.fsid, ino};
  cx.SetCfh(h, SealFh(cx.mds.fh_key(), h));
  // The remaining attributes (owner changes by root, times, a size) as a SETATTR would.
  Settable rest = s;
  rest.mode.reset();
  if (rest.uid || rest.gid || rest.atime || rest.mtime || rest.size) {
    nfsstat4 st = SetattrOn(cx, ino, rest);
    if (st != NFS4_OK) {
      // The object exists; report the attributes that did take effect (only mode).
      set.clear();
      if (s.mode) BitmapAdd(&set, FATTR4_MODE);
    }
  }
  res.resok4.attrset = std::move(set);
  return NFS4_OK;
}

namespace {

// The names and attribute values of one READDIR reply's entries, copied into a few blocks
// that the entries' Bytes view: one allocation per 64 KiB of reply instead of three per entry.
// Blocks never move, so views stay valid while the reply (which holds the arena) lives.
class ReplyArena {
 public:
  static constexpr size_t kBlock = 64 * 1024;
  Bytes Put(const void* p, size_t n, const std::shared_ptr<ReplyArena>& self) {
    if (n == 0) return Bytes();
    if (blocks_.empty() || used_ + n > cap_) {
      cap_ = std::max(kBlock, n);
      blocks_.push_back(std::make_unique<uint8_t[]>(cap_));
      used_ = 0;
    }
    uint8_t* at = blocks_.back().get() + used_;
    std::memcpy(at, p, n);
    used_ += n;
    return Bytes::View(at, n, self);
  }

 private:
  std::vector<std::unique_ptr<uint8_t[]>> blocks_;
  size_t used_ = 0, cap_ = 0;
};

}  // namespace

nfsstat4 OpReaddir(Cx& cx, const nfs_argop4& a, nfs_resop4& r) {
  auto& res = *(r.opreaddir = std::make_unique<READDIR4res>());
  r.resop = OP_READDIR;
  const READDIR4args& ra = *a.opreaddir;
  meta::Inode dir;
  res.status = CurrentInode(cx, &dir);
  if (res.status == NFS4_OK && dir.type != meta::FileType::kDir) res.status = NFS4ERR_NOTDIR;
  if (res.status == NFS4_OK && !cx.rpc->cred.MayAccess(dir.mode, dir.uid, dir.gid, true, 4))
    res.status = NFS4ERR_ACCESS;
  // §18.23.3: cookies 1 and 2 are reserved and never handed out.
  if (res.status == NFS4_OK && (ra.cookie == 1 || ra.cookie == 2)) res.status = NFS4ERR_BAD_COOKIE;
  if (res.status != NFS4_OK) return res.status;
  // Cookies are stable forever, so the verifier is constant (zero).
  size_t limit = std::min<size_t>(ra.maxcount, cx.mds.options().max_io);
  size_t used = 8 + 4 + 4;  // cookieverf, final "no more entries", eof
  size_t dirused = 0;
  bool want_rderr = BitmapHas(ra.attr_request, FATTR4_RDATTR_ERROR);
  const bool want_fh = BitmapHas(ra.attr_request, FATTR4_FILEHANDLE);
  // The same attributes for every entry: the mask once, the values per entry into one
  // scratch encoder, copied into the reply's arena.
  bitmap4 mask;
  if (nfsstat4 st = AttrMaskFor(ra.attr_request, cx.minor, &mask); st != NFS4_OK) {
    return res.status = st;
  }
  auto arena = std::make_shared<ReplyArena>();
  xdr::Encoder vals;
  uint64_t cookie = ra.cookie;
  bool done = false, full = false;
  // Entries are read a page per store transaction. The first page is a guess; later ones are
  // sized from the bytes the entries so far took, so that a 64 KiB reply of short entries
  // (~900) takes two or three transactions rather than eight, without reading many entries
  // the reply has no room for.
  size_t page_entries = 128;
  while (!done && !full) {
    auto page = meta::RunTxn(cx.mds.store(), [&](meta::Txn& t) -> Result<std::vector<std::pair<meta::Dentry, Result<meta::Inode>>>> {
      auto p = cx.mds.ns().ReadDir(t, cx.cfh.ino, cookie, page_entries);
      if (!p.ok()) return p.status();
      std::vector<meta::Ino> inos;
      inos.reserve(p->entries.size());
      for (const auto& d : p->entries) inos.push_back(d.ino);
      std::vector<Result<meta::Inode>> attrs = cx.mds.ns().GetAttrs(t, inos);
      std::vector<std::pair<meta::Dentry, Result<meta::Inode>>> out;
      out.reserve(p->entries.size());
      for (size_t i = 0; i < attrs.size(); i++) {
        // Not an entry's own error: the whole READDIR goes on on a worker.
        if (meta::ErrOf(attrs[i].status()) == meta::MetaErr::kWouldBlock) return attrs[i].status();
        out.emplace_back(std::move(p->entries[i]), std::move(attrs[i]));
      }
      done = p->eof;
      return out;
    });
    if (!page.ok()) return res.status = FromMeta(page.status());
    if (page->empty()) break;
    for (auto& [d, in] : *page) {
      entry4 e;
      e.cookie = d.cookie;
      e.name = arena->Put(d.name.data(), d.name.size(), arena);
      if (in.ok()) {
        // Sealing costs a keyed hash: only for the clients that asked for handles (ls -l).
        std::string fh;
        if (want_fh) fh = SealFh(cx.mds.fh_key(), MdsHandle{cx.cfh.fsid, d.ino});
        vals.truncate(0);
        nfsstat4 st = EncodeAttrValues(mask, Source(cx, in.value(), fh), cx.minor, vals);
        if (st != NFS4_OK) return res.status = st;
        e.attrs.attrmask = mask;
        e.attrs.attr_vals = vals.ext_count() == 0
                                ? arena->Put(vals.inline_data(), vals.inline_size(), arena)
                                : Bytes::Copy(vals.Flatten());
      } else if (want_rderr) {
        EncodeRdattrError(FromMeta(in.status()), &e.attrs);
      } else {
        cookie = d.cookie;
        continue;  // vanished between the listing and the lookup
      }
      size_t sz = 4 + 8 + 4 + ((d.name.size() + 3) & ~size_t{3}) + 4 + 4 * e.attrs.attrmask.size() +
                  4 + ((e.attrs.attr_vals.size + 3) & ~size_t{3});
      size_t dsz = 8 + 4 + d.name.size();
      if (used + sz > limit || (ra.dircount > 0 && dirused + dsz > ra.dircount &&
                                !res.resok4.reply.entries.empty())) {
        full = true;
        break;
      }
      used += sz;
      dirused += dsz;
      cookie = d.cookie;
      res.resok4.reply.entries.push_back(std::move(e));
    }
    if (const size_t n = res.resok4.reply.entries.size(); n > 0 && used < limit) {
      const size_t avg = std::max<size_t>(1, used / n);
      page_entries = std::clamp<size_t>((limit - used) / avg + 1, 16, 1024);
    }
  }
  if (full && res.resok4.reply.entries.empty()) return res.status = NFS4ERR_TOOSMALL;
  res.resok4.reply.eof = done && !full;
  return res.status = NFS4_OK;
}

}  // namespace loom::nfs4
