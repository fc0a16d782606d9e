// Data operations, proxied to the data servers until Flex Files layouts take the MDS out of
// the data path: READ (§18.22), WRITE (§18.32), COMMIT (§18.3); NFSv4.2 SEEK, ALLOCATE,
// DEALLOCATE and READ_PLUS (RFC 7862 §15).
#include <algorithm>

#include "mds/data_servers.h"
#include "nfs4/mds.h"
#include "nfs4/attrs.h"
#include "nfs4/names.h"
#include "nfs4/state.h"

namespace loom::nfs4 {

nfsstat4 SetattrHoldingSizeLock(Cx& cx, uint64_t ino, const Settable& s);

namespace {

// Checks the stateid for an I/O on the current file (§8.2.4, §9.1.2 share/lock checks).
nfsstat4 CheckIo(Cx& cx, stateid4 sid, Access want) {
  if (!cx.ResolveCurrentStateid(&sid)) return NFS4ERR_BAD_STATEID;
  Resolved res;
  nfsstat4 st = cx.mds.state().Resolve(sid, cx.client, cx.cfh.ino, Accept::kIo, want, &res);
  if (st != NFS4_OK) return st;
  // §8.4.2.1: I/O with a special stateid during grace could conflict with a reclaimed lock.
  if (res.special && cx.mds.InGrace()) return NFS4ERR_GRACE;
  return NFS4_OK;
}

nfsstat4 RegularFile(Cx& cx, meta::Inode* n) {
  nfsstat4 st = CurrentInode(cx, n);
  if (st != NFS4_OK) return st;
  if (n->type == meta::FileType::kDir) return NFS4ERR_ISDIR;
  if (n->type != meta::FileType::kReg) return NFS4ERR_INVAL;
  return NFS4_OK;
}

// The current file, a regular file, for an I/O with stateid `sid` needing `want`: the
// stateid first (another client's stateid is BAD_STATEID, §8.2.4), then the caller's access.
nfsstat4 IoTarget(Cx& cx, const stateid4& sid, Access want, meta::Inode* n) {
  nfsstat4 st = RegularFile(cx, n);
  if (st == NFS4_OK) st = CheckIo(cx, sid, want);
  return st == NFS4_OK ? CheckIoAccess(cx, *n, want) : st;
}

// Reads [offset, offset+count) of the file whose size is n.size: data and eof.
nfsstat4 ReadData(Cx& cx, const meta::Inode& n, uint64_t offset, uint32_t count, Bytes* data,
                  bool* eof) {
  count = std::min(count, cx.mds.options().max_io);
  if (offset >= n.size || count == 0) {
    *eof = offset >= n.size;
    return NFS4_OK;
  }
  count = static_cast<uint32_t>(std::min<uint64_t>(count, n.size - offset));
  auto l = cx.mds.LayoutOf(n.ino);
  if (l.ok()) {
    auto r = cx.mds.data_servers()->Read(l.value(), offset, count);
    if (!r.ok()) return FromDataServer(r.status());
    *data = std::move(r->data);
  } else if (meta::ErrOf(l.status()) != meta::MetaErr::kNoEnt) {
    return FromMeta(l.status());
  }
  if (data->size < count) {
    // Bytes the data servers do not have read as zeros: a file never written has no data file,
    // and one extended by SETATTR or by a write to another stripe is shorter there.
    auto z = Buffer::Allocate(count);
    if (data->size) std::memcpy(z->data(), data->data, data->size);
    std::memset(z->data() + data->size, 0, count - data->size);
    *data = Bytes::View(z->data(), count, z);
  }
  *eof = offset + data->size >= n.size;
  return NFS4_OK;
}

// The write verifier a client sees (WRITE and COMMIT): the data servers' with this boot of
// loom-mds mixed in. An UNSTABLE write's size reaches stable storage only at COMMIT, so a
// restart of loom-mds alone must change the verifier too, or the client would take a write
// whose size was lost for committed instead of resending it (§18.3.3, §18.32.3).
verifier4 ClientVerifier(Cx& cx, const mds::Verifier& ds) {
  const verifier4& boot = cx.mds.write_verifier();
  mds::Verifier b;
  std::copy(boot.begin(), boot.end(), b.begin());
  const mds::Verifier v = mds::CombineVerifiers({ds, b});
  verifier4 out;
  std::copy(v.begin(), v.end(), out.begin());
  return out;
}

}  // namespace

// The caller's own right to the data. RFC 8881 §8.2.3: the special stateids bypass share
// reservations, never access rights. Checked on every I/O whatever the stateid, as Linux
// nfsd does, with its owner override: the owner reads and writes through an open even when
// the mode does not allow it (a file created 0444 is written through the OPEN that made it).
// A file one may execute may be read: clients read a binary to run it.
nfsstat4 CheckIoAccess(Cx& cx, const meta::Inode& n, Access want) {
  const rpc::Cred& c = cx.rpc->cred;
  if (want == Access::kNone || c.uid == n.uid) return NFS4_OK;
  auto may = [&](int bits) { return c.MayAccess(n.mode, n.uid, n.gid, false, bits); };
  bool ok = want == Access::kWrite ? may(2) : may(4) || may(1);
  return ok ? NFS4_OK : NFS4ERR_ACCESS;
}

nfsstat4 OpRead(Cx& cx, const nfs_argop4& a, nfs_resop4& r) {
  auto& res = *(r.opread = std::make_unique<READ4res>());
  r.resop = OP_READ;
  meta::Inode n;
  res.status = IoTarget(cx, a.opread->stateid, Access::kRead, &n);
  if (res.status != NFS4_OK) return res.status;
  res.status = ReadData(cx, n, a.opread->offset, a.opread->count, &res.resok4.data, &res.resok4.eof);
  return res.status;
}

nfsstat4 OpReadPlus(Cx& cx, const nfs_argop4& a, nfs_resop4& r) {
  auto& res = *(r.opread_plus = std::make_unique<READ_PLUS4res>());
  r.resop = OP_READ_PLUS;
  const READ_PLUS4args& ra = *a.opread_plus;
  meta::Inode n;
  res.rp_status = IoTarget(cx, ra.rpa_stateid, Access::kRead, &n);
  if (res.rp_status != NFS4_OK) return res.rp_status;
  Bytes data;
  bool eof = false;
  res.rp_status = ReadData(cx, n, ra.rpa_offset, ra.rpa_count, &data, &eof);
  if (res.rp_status != NFS4_OK) return res.rp_status;
  // One data segment, or none at all at EOF (RFC 7862 §15.10.3: never a 0-byte segment).
  res.rp_resok4.rpr_eof = eof;
  if (data.size > 0) {
    read_plus_content c;
    c.rpc_content = NFS4_CONTENT_DATA;
    c.rpc_data.d_offset = ra.rpa_offset;
    c.rpc_data.d_data = std::move(data);
    res.rp_resok4.rpr_contents.push_back(std::move(c));
  }
  return NFS4_OK;
}

nfsstat4 OpWrite(Cx& cx, const nfs_argop4& a, nfs_resop4& r) {
  auto& res = *(r.opwrite = std::make_unique<WRITE4res>());
  r.resop = OP_WRITE;
  const WRITE4args& wa = *a.opwrite;
  meta::Inode n;
  res.status = CheckWritableExport(cx);
  if (res.status == NFS4_OK) res.status = IoTarget(cx, wa.stateid, Access::kWrite, &n);
  if (res.status == NFS4_OK && wa.offset > static_cast<uint64_t>(INT64_MAX) - wa.data.size)
    res.status = NFS4ERR_FBIG;
  if (res.status != NFS4_OK) return res.status;
  // Held from before the layout is read to the size update: size changes and data moves
  // (MoveData switches the layout under the exclusive lock) wait, other WRITEs do not
  // (size_locks.h). Taken after the layout, a WRITE racing a move would write the old data
  // files after the switch and be lost.
  auto size_lock = cx.mds.size_locks().Shared(n.ino);
  auto l = cx.mds.EnsureLayout(n.ino);
  if (!l.ok()) return res.status = FromDataServer(l.status());
  mds::FailedMirrors failed;
  auto w = cx.mds.data_servers()->Write(l.value(), wa.offset, wa.data,
                                        static_cast<nfs3::stable_how>(wa.stable), &failed);
  if (!w.ok()) return res.status = FromDataServer(w.status());
  // A mirror whose data server failed missed this write: it stays out of reads and layouts
  // until resynced from a good one (RFC 8435 §2.3 leaves that to the metadata server).
  for (uint32_t m : failed) (void)cx.mds.MarkMirrorStale(n.ino, m, "missed a write");
  cx.mds.size_locks().Reached(n.ino, SizeLocks::Step::kWriteDataDone);
  // The file's size, mtime and change attribute live in the metadata store. Two WRITEs of one
  // file may finish in either order: the size only ever grows here (size_at_least, applied
  // under the inode lock), or a late short write would cut off an earlier long one.
  meta::SetAttrArgs sa;
  sa.size_at_least = wa.offset + w->count;
  sa.mtime = meta::NowRealtime();
  // A write by anyone but root drops set-user-ID and set-group-ID (Linux's file_remove_privs;
  // nfsd runs non-root callers without CAP_FSETID).
  sa.kill_setid = cx.rpc->cred.uid != 0;
  // The size and mtime are as stable as the bytes (§18.32.3): an UNSTABLE write's become
  // durable at COMMIT (OpCommit syncs the store; until then a restart changes the verifier and
  // the client resends), a write the data servers made stable gets them synced at once.
  const meta::Durability durability =
      w->committed == nfs3::UNSTABLE ? meta::Durability::kDeferred : meta::Durability::kSync;
  auto u = meta::RunTxn(cx.mds.store(), [&](meta::Txn& t) {
    t.SetDurability(durability);
    return cx.mds.ns().SetAttr(t, n.ino, sa);
  });
  if (!u.ok()) return res.status = FromMeta(u.status());
  res.resok4.count = w->count;
  res.resok4.committed = static_cast<stable_how4>(w->committed);
  res.resok4.writeverf = ClientVerifier(cx, w->verifier);
  return res.status = NFS4_OK;
}

nfsstat4 OpCommit(Cx& cx, const nfs_argop4&, nfs_resop4& r) {
  auto& res = *(r.opcommit = std::make_unique<COMMIT4res>());
  r.resop = OP_COMMIT;
  meta::Inode n;
  res.status = CheckWritableExport(cx);
  if (res.status == NFS4_OK) res.status = RegularFile(cx, &n);
  // COMMIT has no stateid, but makes the file's data durable: the caller needs write access,
  // owner override included (as nfsd_commit's file acquisition with NFSD_MAY_WRITE).
  if (res.status == NFS4_OK) res.status = CheckIoAccess(cx, n, Access::kWrite);
  if (res.status != NFS4_OK) return res.status;
  auto l = cx.mds.LayoutOf(n.ino);
  if (!l.ok()) {
    if (meta::ErrOf(l.status()) != meta::MetaErr::kNoEnt) return res.status = FromMeta(l.status());
    res.resok4.writeverf = cx.mds.write_verifier();  // nothing was ever written
    return res.status = NFS4_OK;
  }
  mds::FailedMirrors failed;
  auto c = cx.mds.data_servers()->Commit(l.value(), &failed);
  for (uint32_t m : failed) (void)cx.mds.MarkMirrorStale(n.ino, m, "missed a commit");
  if (!c.ok()) return res.status = FromDataServer(c.status());
  // The sizes and mtimes of the UNSTABLE writes being committed (OpWrite): one sync.
  Status synced = cx.mds.store().Sync();
  if (!synced.ok()) return res.status = FromMeta(synced);
  res.resok4.writeverf = ClientVerifier(cx, c->verifier);
  return res.status = NFS4_OK;
}

nfsstat4 OpSeek(Cx& cx, const nfs_argop4& a, nfs_resop4& r) {
  auto& res = *(r.opseek = std::make_unique<SEEK4res>());
  r.resop = OP_SEEK;
  const SEEK4args& sa = *a.opseek;
  meta::Inode n;
  res.sa_status = IoTarget(cx, sa.sa_stateid, Access::kRead, &n);
  if (res.sa_status != NFS4_OK) return res.sa_status;
  // The data servers do not report holes over NFSv3, so the file is one data extent:
  // SEEK_DATA finds the offset itself, SEEK_HOLE the end of file; past EOF is NXIO.
  if (sa.sa_offset >= n.size) return res.sa_status = NFS4ERR_NXIO;
  res.resok4.sr_offset = sa.sa_what == NFS4_CONTENT_DATA ? sa.sa_offset : n.size;
  res.resok4.sr_eof = sa.sa_what != NFS4_CONTENT_DATA;
  return res.sa_status = NFS4_OK;
}

nfsstat4 OpAllocate(Cx& cx, const nfs_argop4& a, nfs_resop4& r) {
  auto& res = *(r.opallocate = std::make_unique<ALLOCATE4res>());
  r.resop = OP_ALLOCATE;
  const ALLOCATE4args& aa = *a.opallocate;
  meta::Inode n;
  res.ar_status = CheckWritableExport(cx);
  if (res.ar_status == NFS4_OK) res.ar_status = IoTarget(cx, aa.aa_stateid, Access::kWrite, &n);
  if (res.ar_status == NFS4_OK && aa.aa_length == 0) res.ar_status = NFS4ERR_INVAL;
  if (res.ar_status == NFS4_OK && aa.aa_offset > static_cast<uint64_t>(INT64_MAX) - aa.aa_length)
    res.ar_status = NFS4ERR_FBIG;
  if (res.ar_status != NFS4_OK) return res.ar_status;
  // Space is not reserved on the data servers (NFSv3 has no ALLOCATE); the file is extended
  // so that its size covers the range, as fallocate(2) without KEEP_SIZE would. The size is
  // read again and extended under the file's size lock, so that a WRITE past `end` meanwhile
  // is not cut back (size_locks.h).
  auto size_lock = cx.mds.size_locks().Exclusive(n.ino);
  res.ar_status = GetInode(cx, n.ino, &n);
  if (res.ar_status != NFS4_OK) return res.ar_status;
  uint64_t end = aa.aa_offset + aa.aa_length;
  if (end <= n.size) {
    // Nothing to extend, but like any data change by a non-root caller it drops
    // set-user-ID and set-group-ID (the size change below does so in SetattrOn).
    if (cx.rpc->cred.uid == 0 || !(n.mode & 06000)) return res.ar_status = NFS4_OK;
    meta::SetAttrArgs kill;
    kill.kill_setid = true;
    auto u = meta::RunTxn(cx.mds.store(),
                          [&](meta::Txn& t) { return cx.mds.ns().SetAttr(t, n.ino, kill); });
    return res.ar_status = u.ok() ? NFS4_OK : FromMeta(u.status());
  }
  Settable s;
  s.size = end;
  return res.ar_status = SetattrHoldingSizeLock(cx, n.ino, s);
}

nfsstat4 OpDeallocate(Cx& cx, const nfs_argop4&, nfs_resop4& r) {
  // Punching holes needs an operation NFSv3 data servers do not have.
  nfsstat4 st = CheckWritableExport(cx);
  if (st == NFS4_OK) st = NFS4ERR_NOTSUPP;
  SetOpError(r, OP_DEALLOCATE, st);
  return st;
}

}  // namespace loom::nfs4
