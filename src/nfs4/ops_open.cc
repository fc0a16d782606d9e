// OPEN (§18.16), CLOSE (§18.2), OPEN_DOWNGRADE (§18.18), LOCK/LOCKT/LOCKU (§18.10-18.12),
// TEST_STATEID (§18.48), FREE_STATEID (§18.38), DELEGRETURN (§18.6), GET_DIR_DELEGATION
// (§18.39). Delegations are never granted.
#include <cstring>

#include "nfs4/attrs.h"
#include "nfs4/mds.h"
#include "nfs4/names.h"
#include "nfs4/state.h"

namespace loom::nfs4 {

nfsstat4 SetattrOn(Cx& cx, uint64_t ino, const Settable& s);

namespace {

// EXCLUSIVE4/EXCLUSIVE4_1 keep the create verifier in time_access (seconds field), which is
// left out of suppattr_exclcreat for that reason (§18.16.3). The reply's attrset names
// time_access (§18.16.4), so the client follows up with a SETATTR that gives the file a real
// access time.
int64_t VerifierTime(const verifier4& v) {
  int64_t t;
  std::memcpy(&t, v.data(), 8);
  return t;
}

nfsstat4 TypeCheckForOpen(const meta::Inode& n) {
  switch (n.type) {
    case meta::FileType::kReg: return NFS4_OK;
    case meta::FileType::kDir: return NFS4ERR_ISDIR;
    case meta::FileType::kLnk: return NFS4ERR_SYMLINK;
    default: return NFS4ERR_WRONG_TYPE;
  }
}

// open(2)'s permission check for an OPEN of an existing file, as Linux nfsd makes it: read
// access for READ (or for denying reads to others), write access for WRITE. No owner
// override: that is for I/O through an open, not for opening. A file one may execute may be
// opened for reading (clients read a binary to run it; nfsd's MAY_READ_IF_EXEC).
nfsstat4 CheckOpenAccess(const rpc::Cred& c, const meta::Inode& n, uint32_t access, uint32_t deny) {
  auto may = [&](int want) { return c.MayAccess(n.mode, n.uid, n.gid, false, want); };
  bool read = (access & OPEN4_SHARE_ACCESS_READ) || (deny & OPEN4_SHARE_DENY_READ);
  if (read && !may(4) && !may(1)) return NFS4ERR_ACCESS;
  if ((access & OPEN4_SHARE_ACCESS_WRITE) && !may(2)) return NFS4ERR_ACCESS;
  return NFS4_OK;
}

struct Opened {
  meta::Inode inode;
  bool created = false;
  meta::ChangeInfo dir;
  bitmap4 attrset;
};

// CLAIM_NULL with OPEN4_CREATE: finds or makes the regular file `name` in the directory.
nfsstat4 OpenCreate(Cx& cx, const OPEN4args& a, const meta::Inode& dir, Opened* out) {
  const createhow4& how = a.openhow.how;
  std::string_view name = a.claim.file.view();
  Settable s;
  bitmap4 set;
  bool exclusive = how.mode == EXCLUSIVE4 || how.mode == EXCLUSIVE4_1;
  verifier4 verf{};
  nfsstat4 st = NFS4_OK;
  if (how.mode == UNCHECKED4 || how.mode == GUARDED4) {
    st = DecodeSettable(how.createattrs, &s, &set);
  } else if (how.mode == EXCLUSIVE4) {
    verf = how.createverf;
  } else if (how.mode == EXCLUSIVE4_1) {
    verf = how.ch_createboth.cva_verf;
    st = DecodeSettable(how.ch_createboth.cva_attrs, &s, &set);
    // Only suppattr_exclcreat attributes may come with an exclusive create.
    bitmap4 ok = ExclCreatAttrs();
    for (size_t w = 0; st == NFS4_OK && w < set.size(); w++)
      if (set[w] & ~(w < ok.size() ? ok[w] : 0)) st = NFS4ERR_INVAL;
  } else {
    st = NFS4ERR_INVAL;
  }
  if (st != NFS4_OK) return st;
  // Write permission on the directory is needed to create, not to open a name that exists
  // (as nfsd4_create_file, which checks NFSD_MAY_CREATE only for a missing name): without
  // it the name is looked up and, if it exists, handled below like any existing file.
  const bool may_create = cx.rpc->cred.MayAccess(dir.mode, dir.uid, dir.gid, true, 3);
  meta::CreateArgs args;
  args.type = meta::FileType::kReg;
  args.mode = s.mode.value_or(0644) & 07777;
  InitOwner(cx.rpc->cred, dir, false, &args);
  Result<meta::CreateResult> cr = meta::MetaError(meta::MetaErr::kExist, "not created");
  if (may_create) {
    cr = meta::RunTxn(cx.mds.store(), [&](meta::Txn& t) {
      auto c = cx.mds.ns().Create(t, dir.ino, name, args);
      if (c.ok()) {
        // The directory's placement policy goes with the file (meta/policy.h).
        Status ps = cx.mds.InheritPolicy(t, dir.ino, c->inode.ino);
        if (!ps.ok()) return Result<meta::CreateResult>(ps);
      }
      return c;
    });
  }
  if (cr.ok()) {
    out->inode = cr->inode;
    out->created = true;
    out->dir = cr->dir;
    Settable rest = s;
    rest.mode.reset();
    if (exclusive) {
      SetTime t;
      t.time = meta::Timespec{VerifierTime(verf), 0};
      rest.atime = t;
    }
    if (rest.size && *rest.size == 0) rest.size.reset();  // a new file is empty already
    if (rest.uid || rest.gid || rest.size || rest.atime || rest.mtime) {
      st = SetattrOn(cx, out->inode.ino, rest);
      if (st != NFS4_OK) return st;
      GetInode(cx, out->inode.ino, &out->inode);
    }
    out->attrset = std::move(set);
    if (exclusive) BitmapAdd(&out->attrset, FATTR4_TIME_ACCESS);
    return NFS4_OK;
  }
  if (meta::ErrOf(cr.status()) != meta::MetaErr::kExist) return FromMeta(cr.status());
  // The name exists (or, for a caller who may not create, is looked up).
  if (how.mode == GUARDED4 && may_create) return NFS4ERR_EXIST;  // Create found it
  auto d = meta::RunTxn(cx.mds.store(), [&](meta::Txn& t) { return cx.mds.ns().Lookup(t, dir.ino, name); });
  if (!d.ok()) {
    bool missing = meta::ErrOf(d.status()) == meta::MetaErr::kNoEnt;
    return missing && !may_create ? NFS4ERR_ACCESS : FromMeta(d.status());
  }
  if (how.mode == GUARDED4) return NFS4ERR_EXIST;
  st = GetInode(cx, d->ino, &out->inode);
  if (st != NFS4_OK) return st;
  out->dir = meta::ChangeInfo{dir.change, dir.change};
  if (exclusive) {
    // §18.16.4: a retransmitted exclusive create finds its own verifier and succeeds. Only
    // the creator's: a verifier read from time_access must not open someone else's file
    // past the permission check that a created file skips.
    if (out->inode.type != meta::FileType::kReg || out->inode.atime.sec != VerifierTime(verf) ||
        out->inode.uid != cx.rpc->cred.uid)
      return NFS4ERR_EXIST;
    out->created = true;
    out->attrset = std::move(set);
    BitmapAdd(&out->attrset, FATTR4_TIME_ACCESS);
    return NFS4_OK;
  }
  st = TypeCheckForOpen(out->inode);
  // The permission check comes before a truncation, which must not happen for an OPEN
  // that is then refused.
  if (st == NFS4_OK) st = CheckOpenAccess(cx.rpc->cred, out->inode, a.share_access, a.share_deny);
  if (st != NFS4_OK) return st;
  // UNCHECKED4 on an existing file: only a size (truncation) applies.
  if (s.size) {
    Settable trunc;
    trunc.size = s.size;
    st = SetattrOn(cx, out->inode.ino, trunc);
    if (st != NFS4_OK) return st;
    GetInode(cx, out->inode.ino, &out->inode);
    BitmapAdd(&out->attrset, FATTR4_SIZE);
  }
  return NFS4_OK;
}

}  // namespace

namespace {
// What an OPEN may do on the event loop (run to completion): changes in at most one store
// transaction, all of them before the open state changes. So: an open by name or handle of
// what exists, or a create that sets nothing but the mode (UNCHECKED4, GUARDED4). A reclaim,
// an exclusive create (its verifier goes in a second transaction) and a create that sets
// owners, times or a size go to a worker.
bool OpenFitsTheLoop(const OPEN4args& a) {
  if (a.claim.claim != CLAIM_NULL && a.claim.claim != CLAIM_FH) return false;
  if (a.openhow.opentype != OPEN4_CREATE) return true;
  const createhow4& how = a.openhow.how;
  if (how.mode != UNCHECKED4 && how.mode != GUARDED4) return false;
  Settable s;
  bitmap4 set;
  if (DecodeSettable(how.createattrs, &s, &set) != NFS4_OK) return false;  // the worker says why
  return !s.size && !s.uid && !s.gid && !s.atime && !s.mtime;
}
}  // namespace

nfsstat4 OpOpen(Cx& cx, const nfs_argop4& arg, nfs_resop4& r) {
  const OPEN4args& a = *arg.opopen;
  if (cx.on_loop && !OpenFitsTheLoop(a)) return kOpWouldBlock;
  auto& res = *(r.opopen = std::make_unique<OPEN4res>());
  r.resop = OP_OPEN;
  uint32_t access = a.share_access & OPEN4_SHARE_ACCESS_BOTH;
  if (access == 0 || a.share_deny > OPEN4_SHARE_DENY_BOTH) return res.status = NFS4ERR_INVAL;
  // A read-only export opens for reading only, and makes nothing.
  if (a.openhow.opentype == OPEN4_CREATE || (access & OPEN4_SHARE_ACCESS_WRITE)) {
    nfsstat4 ro = CheckWritableExport(cx);
    if (ro != NFS4_OK) return res.status = ro;
  }
  Opened o;
  bool reclaim = false;
  nfsstat4 st = NFS4_OK;
  switch (a.claim.claim) {
    case CLAIM_NULL: {
      st = CheckComponent(a.claim.file);
      meta::Inode dir;
      if (st == NFS4_OK) st = CurrentInode(cx, &dir);
      if (st == NFS4_OK && dir.type != meta::FileType::kDir)
        st = dir.type == meta::FileType::kLnk ? NFS4ERR_SYMLINK : NFS4ERR_NOTDIR;
      if (st == NFS4_OK && !cx.mds.NonReclaimAllowed(cx.client)) st = NFS4ERR_GRACE;  // §8.4.2.1, §18.51.3
      if (st == NFS4_OK) st = CheckSearch(cx, dir);  // the name is looked up in it
      if (st != NFS4_OK) break;
      if (a.openhow.opentype == OPEN4_CREATE) {
        st = OpenCreate(cx, a, dir, &o);
      } else {
        auto d = meta::RunTxn(cx.mds.store(), [&](meta::Txn& t) {
          return cx.mds.ns().Lookup(t, dir.ino, a.claim.file.view());
        });
        if (!d.ok()) {
          st = FromMeta(d.status());
          break;
        }
        st = GetInode(cx, d->ino, &o.inode);
        o.dir = meta::ChangeInfo{dir.change, dir.change};
      }
      break;
    }
    case CLAIM_FH:
    case CLAIM_PREVIOUS: {
      if (a.openhow.opentype == OPEN4_CREATE) {
        st = NFS4ERR_INVAL;
        break;
      }
      if (a.claim.claim == CLAIM_PREVIOUS) {
        // §8.4.2.1: reclaims only during grace, only by clients of the previous boot.
        std::string owner;
        if (!cx.mds.InGrace()) st = NFS4ERR_NO_GRACE;
        else if (!cx.mds.sessions().OwnerOf(cx.client, &owner) || !cx.mds.MayReclaim(owner))
          st = NFS4ERR_RECLAIM_BAD;
        else if (a.claim.delegate_type != OPEN_DELEGATE_NONE) st = NFS4ERR_RECLAIM_BAD;
        reclaim = true;
      } else if (!cx.mds.NonReclaimAllowed(cx.client)) {
        st = NFS4ERR_GRACE;
      }
      if (st == NFS4_OK) st = CurrentInode(cx, &o.inode);
      o.dir = meta::ChangeInfo{};
      break;
    }
    default:
      st = NFS4ERR_NOTSUPP;  // delegation claims: we never grant delegations
  }
  if (st == NFS4_OK) st = TypeCheckForOpen(o.inode);
  // The file's own permissions. The creator may open what this OPEN just made whatever the
  // mode (§18.16.3: a file created 0444 is opened for writing by the open(2) that made it),
  // and an owner reclaiming after a restart gets back the open it had (perhaps that one).
  bool owner_reclaim = reclaim && cx.rpc->cred.uid == o.inode.uid;
  if (st == NFS4_OK && !o.created && !owner_reclaim)
    st = CheckOpenAccess(cx.rpc->cred, o.inode, access, a.share_deny);
  if (st != NFS4_OK) return res.status = st;
  OpenRequest req;
  req.client = cx.client;
  req.owner = a.owner.owner.str();
  req.file = o.inode.ino;
  req.share_access = access;
  req.share_deny = a.share_deny;
  req.reclaim = reclaim;
  st = cx.mds.state().Open(req, &res.resok4.stateid);
  if (st != NFS4_OK) return res.status = st;
  res.resok4.cinfo = change_info4{true, o.dir.before, o.dir.after};
  // §18.16.4: PRESERVE_UNLINKED, since a file unlinked while open stays readable and
  // writable until its last CLOSE (an orphan), so clients need no "silly rename".
  res.resok4.rflags = OPEN4_RESULT_LOCKTYPE_POSIX | OPEN4_RESULT_PRESERVE_UNLINKED;
  res.resok4.attrset = std::move(o.attrset);
  res.resok4.delegation.delegation_type = OPEN_DELEGATE_NONE;
  if (a.share_access & OPEN4_SHARE_ACCESS_WANT_DELEG_MASK) {
    // §18.16.3: a client that asked for a delegation learns why there is none.
    res.resok4.delegation.delegation_type = OPEN_DELEGATE_NONE_EXT;
    res.resok4.delegation.od_whynone.ond_why =
        (a.share_access & OPEN4_SHARE_ACCESS_WANT_DELEG_MASK) == OPEN4_SHARE_ACCESS_WANT_NO_DELEG
            ? WND4_NOT_WANTED
            : WND4_NOT_SUPP_FTYPE;
  }
  MdsHandle h{cx.cfh.fsid, o.inode.ino};
  cx.SetCfh(h, SealFh(cx.mds.fh_key(), h));
  cx.SetCurrentStateid(res.resok4.stateid);
  return res.status = NFS4_OK;
}

nfsstat4 OpClose(Cx& cx, const nfs_argop4& a, nfs_resop4& r) {
  auto& res = *(r.opclose = std::make_unique<CLOSE4res>());
  r.resop = OP_CLOSE;
  stateid4 sid = a.opclose->open_stateid;
  if (!cx.ResolveCurrentStateid(&sid)) return res.status = NFS4ERR_BAD_STATEID;
  // Returning layouts on close (below) may answer a recall: on a worker.
  if (cx.on_loop && cx.mds.HoldsLayout(cx.client, cx.cfh.ino)) return kOpWouldBlock;
  res.status = cx.mds.state().Close(cx.client, cx.cfh.ino, sid, &res.open_stateid);
  if (res.status != NFS4_OK) return res.status;
  cx.SetCurrentStateid(res.open_stateid);
  // Layouts are granted return-on-close: the client's last CLOSE of the file ends them.
  if (!cx.mds.state().ClientHasOpen(cx.client, cx.cfh.ino)) cx.mds.OnClientClosed(cx.client, cx.cfh.ino);
  return res.status;
}

nfsstat4 OpOpenDowngrade(Cx& cx, const nfs_argop4& a, nfs_resop4& r) {
  auto& res = *(r.opopen_downgrade = std::make_unique<OPEN_DOWNGRADE4res>());
  r.resop = OP_OPEN_DOWNGRADE;
  OPEN_DOWNGRADE4args args = *a.opopen_downgrade;
  if (!cx.ResolveCurrentStateid(&args.open_stateid)) return res.status = NFS4ERR_BAD_STATEID;
  args.share_access &= OPEN4_SHARE_ACCESS_BOTH;
  res.status = cx.mds.state().OpenDowngrade(cx.client, cx.cfh.ino, args, &res.resok4.open_stateid);
  if (res.status == NFS4_OK) cx.SetCurrentStateid(res.resok4.open_stateid);
  return res.status;
}

nfsstat4 OpLock(Cx& cx, const nfs_argop4& a, nfs_resop4& r) {
  auto& res = *(r.oplock = std::make_unique<LOCK4res>());
  r.resop = OP_LOCK;
  LOCK4args args = *a.oplock;
  stateid4& sid = args.locker.new_lock_owner ? args.locker.open_owner.open_stateid
                                             : args.locker.lock_owner.lock_stateid;
  if (!cx.ResolveCurrentStateid(&sid)) return res.status = NFS4ERR_BAD_STATEID;
  // §8.4.2.1: during grace only reclaims (and before the client's RECLAIM_COMPLETE, §18.51.3);
  // after it, no reclaims.
  if (!args.reclaim && !cx.mds.NonReclaimAllowed(cx.client)) return res.status = NFS4ERR_GRACE;
  if (!cx.mds.InGrace() && args.reclaim) return res.status = NFS4ERR_NO_GRACE;
  meta::Inode n;
  res.status = CurrentInode(cx, &n);
  if (res.status == NFS4_OK && n.type != meta::FileType::kReg)
    res.status = n.type == meta::FileType::kDir ? NFS4ERR_ISDIR : NFS4ERR_INVAL;
  if (res.status != NFS4_OK) return res.status;
  res.status = cx.mds.state().Lock(cx.client, cx.cfh.ino, args, &res.resok4.lock_stateid, &res.denied);
  if (res.status == NFS4_OK) cx.SetCurrentStateid(res.resok4.lock_stateid);
  return res.status;
}

nfsstat4 OpLockt(Cx& cx, const nfs_argop4& a, nfs_resop4& r) {
  auto& res = *(r.oplockt = std::make_unique<LOCKT4res>());
  r.resop = OP_LOCKT;
  if (cx.mds.InGrace()) return res.status = NFS4ERR_GRACE;
  meta::Inode n;
  res.status = CurrentInode(cx, &n);
  if (res.status == NFS4_OK && n.type != meta::FileType::kReg)
    res.status = n.type == meta::FileType::kDir ? NFS4ERR_ISDIR : NFS4ERR_INVAL;
  if (res.status != NFS4_OK) return res.status;
  res.status = cx.mds.state().LockTest(cx.client, cx.cfh.ino, *a.oplockt, &res.denied);
  return res.status;
}

nfsstat4 OpLocku(Cx& cx, const nfs_argop4& a, nfs_resop4& r) {
  auto& res = *(r.oplocku = std::make_unique<LOCKU4res>());
  r.resop = OP_LOCKU;
  LOCKU4args args = *a.oplocku;
  if (!cx.ResolveCurrentStateid(&args.lock_stateid)) return res.status = NFS4ERR_BAD_STATEID;
  res.status = cx.mds.state().Unlock(cx.client, cx.cfh.ino, args, &res.lock_stateid);
  if (res.status == NFS4_OK) cx.SetCurrentStateid(res.lock_stateid);
  return res.status;
}

nfsstat4 OpTestStateid(Cx& cx, const nfs_argop4& a, nfs_resop4& r) {
  auto& res = *(r.optest_stateid = std::make_unique<TEST_STATEID4res>());
  r.resop = OP_TEST_STATEID;
  res.tsr_status = NFS4_OK;
  res.tsr_resok4.tsr_status_codes = cx.mds.state().TestStateids(cx.client, a.optest_stateid->ts_stateids);
  return NFS4_OK;
}

nfsstat4 OpFreeStateid(Cx& cx, const nfs_argop4& a, nfs_resop4& r) {
  auto& res = *(r.opfree_stateid = std::make_unique<FREE_STATEID4res>());
  r.resop = OP_FREE_STATEID;
  stateid4 sid = a.opfree_stateid->fsa_stateid;
  if (!cx.ResolveCurrentStateid(&sid)) return res.fsr_status = NFS4ERR_BAD_STATEID;
  return res.fsr_status = cx.mds.state().FreeStateid(cx.client, sid);
}

nfsstat4 OpDelegReturn(Cx&, const nfs_argop4&, nfs_resop4& r) {
  // No delegation was ever granted, so none can be returned.
  SetOpError(r, OP_DELEGRETURN, NFS4ERR_BAD_STATEID);
  return NFS4ERR_BAD_STATEID;
}

nfsstat4 OpGetDirDelegation(Cx&, const nfs_argop4&, nfs_resop4& r) {
  // §18.39.3: "unavailable" is a non-fatal answer, so the rest of the compound (the Linux 7.x
  // client puts it before GETATTR) still runs.
  auto& res = *(r.opget_dir_delegation = std::make_unique<GET_DIR_DELEGATION4res>());
  r.resop = OP_GET_DIR_DELEGATION;
  res.gddr_status = NFS4_OK;
  res.gddr_res_non_fatal4.gddrnf_status = GDD4_UNAVAIL;
  res.gddr_res_non_fatal4.gddrnf_will_signal_deleg_avail = false;
  return NFS4_OK;
}

}  // namespace loom::nfs4
