// Namespace: everything that takes a name away — remove, rmdir, rename — and what happens to
// an object whose last name goes (orphan or delete + GC), all inside the caller's transaction.
#include <algorithm>
#include <vector>

#include "meta/namespace.h"
#include "meta/namespace_internal.h"

namespace loom::meta {

using namespace detail;

Result<RemoveResult> Namespace::Remove(Txn& t, Ino parent, std::string_view name,
                                       const IsOpenFn& is_open, const RemoveCheckFn& check) {
  return RemoveImpl(t, parent, name, RemoveKind::kAny, is_open, check);
}

Result<RemoveResult> Namespace::Unlink(Txn& t, Ino parent, std::string_view name,
                                       const IsOpenFn& is_open) {
  return RemoveImpl(t, parent, name, RemoveKind::kNonDir, is_open);
}

Result<RemoveResult> Namespace::Rmdir(Txn& t, Ino parent, std::string_view name) {
  return RemoveImpl(t, parent, name, RemoveKind::kDir, nullptr);
}

Result<RemoveResult> Namespace::RemoveImpl(Txn& t, Ino parent, std::string_view name,
                                           RemoveKind kind, const IsOpenFn& is_open,
                                           const RemoveCheckFn& check) {
  LOOM_RETURN_IF_ERROR(CheckName(name));
  auto dir = LoadDir(t, fs_, parent, true);
  if (!dir.ok()) return dir.status();
  auto d = LoadDentry(t, fs_, parent, name);
  if (!d.ok()) return d.status();
  if (!*d) return MetaError(MetaErr::kNoEnt, "no such entry");
  bool is_dir = (*d)->type == FileType::kDir;
  if (kind == RemoveKind::kNonDir && is_dir) return MetaError(MetaErr::kIsDir, "is a directory");
  if (kind == RemoveKind::kDir && !is_dir) return MetaError(MetaErr::kNotDir, "not a directory");
  auto obj = LoadInode(t, fs_, (*d)->ino, true);
  if (!obj.ok()) return obj.status();
  if (check) LOOM_RETURN_IF_ERROR(check(*dir, *obj));
  if (is_dir) {
    // The directory's lock (just taken) keeps anyone from adding to it meanwhile.
    auto empty = DirIsEmpty(t, fs_, obj->ino);
    if (!empty.ok()) return empty.status();
    if (!*empty) return MetaError(MetaErr::kNotEmpty, "directory not empty");
  }

  Timespec now = NowRealtime();
  RemoveResult r;
  r.dir.before = dir->change;
  LOOM_RETURN_IF_ERROR(DeleteEntry(t, fs_, parent, **d));
  if (is_dir) --dir->nlink;  // its ".." is gone
  TouchDir(*dir, now);
  r.dir.after = dir->change;
  LOOM_RETURN_IF_ERROR(StoreInode(t, fs_, *dir));
  auto u = DropLink(t, *obj, now, is_open);
  if (!u.ok()) return u.status();
  r.obj = *u;
  return r;
}

Result<Unlinked> Namespace::DropLink(Txn& t, Inode& obj, Timespec now, const IsOpenFn& is_open) {
  Unlinked u{obj.ino, obj.type, 0, false, 0};
  // A directory has exactly one name; it goes at once (an open directory needs no orphan:
  // nothing reads a removed directory's data).
  obj.nlink = obj.type == FileType::kDir || obj.nlink == 0 ? 0 : obj.nlink - 1;
  u.nlink = obj.nlink;
  if (obj.nlink > 0) {
    TouchCtime(obj, now);
    LOOM_RETURN_IF_ERROR(StoreInode(t, fs_, obj));
    return u;
  }
  if (obj.type != FileType::kDir && is_open && is_open(obj.ino)) {
    // Keep inode and layout so open state can still read and write it; the Orphan record
    // lets the last close, or the first restart, finish the job.
    TouchCtime(obj, now);
    LOOM_RETURN_IF_ERROR(StoreInode(t, fs_, obj));
    LOOM_RETURN_IF_ERROR(t.Put(keys::Orphan(fs_, obj.ino), Encode(Orphan{obj.ino, now})));
    u.orphaned = true;
    return u;
  }
  auto gc = DeleteObject(t, obj, now);
  if (!gc.ok()) return gc.status();
  u.gc_items = *gc;
  return u;
}

Result<size_t> Namespace::DeleteObject(Txn& t, const Inode& obj, Timespec now) {
  size_t queued = 0;
  auto lv = t.Get(keys::Layout(fs_, obj.ino));
  if (!lv.ok()) return lv.status();
  if (*lv) {
    Layout l;
    LOOM_RETURN_IF_ERROR(Decode(**lv, &l));
    // Queued in this transaction: the data-server files become garbage exactly when the
    // metadata that points at them disappears, never before and never lost.
    for (const Mirror& m : l.mirrors) {
      for (const DataFile& f : m.files) {
        LOOM_RETURN_IF_ERROR(
            t.Put(keys::Gc(fs_, obj.ino, f.ds_id, f.fh), Encode(GcItem{obj.ino, f, now})));
        ++queued;
      }
    }
    LOOM_RETURN_IF_ERROR(t.Delete(keys::Layout(fs_, obj.ino)));
  }
  // A placement policy the file took from its directory (meta/policy.h).
  if (obj.type == FileType::kReg) LOOM_RETURN_IF_ERROR(t.Delete(keys::Policy(fs_, obj.ino)));
  LOOM_RETURN_IF_ERROR(t.Delete(keys::Orphan(fs_, obj.ino)));
  LOOM_RETURN_IF_ERROR(t.Delete(keys::Inode(fs_, obj.ino)));
  CountOnCommit(t, -1);
  return queued;
}

Status Namespace::ReleaseOrphan(Txn& t, Ino ino) {
  auto o = t.GetForUpdate(keys::Orphan(fs_, ino));
  if (!o.ok()) return o.status();
  if (!*o) return Status::Ok();
  auto obj = LoadInode(t, fs_, ino, true);
  if (!obj.ok()) return obj.status();
  if (obj->nlink != 0) return t.Delete(keys::Orphan(fs_, ino));  // relinked: keep the file
  return DeleteObject(t, *obj, NowRealtime()).status();
}

Result<RenameResult> Namespace::Rename(Txn& t, Ino src_dir, std::string_view src_name,
                                       Ino dst_dir, std::string_view dst_name,
                                       const IsOpenFn& is_open, const RenameCheckFn& check) {
  LOOM_RETURN_IF_ERROR(CheckName(src_name));
  LOOM_RETURN_IF_ERROR(CheckName(dst_name));
  const bool one_dir = src_dir == dst_dir;

  // A directory moving to another directory needs the rename lock, and the lock order puts
  // it first, so peek (unlocked) at the source; if it changes before the directories are
  // locked, the check below sends the whole operation round again.
  auto peek = LoadDentry(t, fs_, src_dir, src_name);
  if (!peek.ok()) return peek.status();
  const bool dir_move = !one_dir && *peek && (*peek)->type == FileType::kDir;
  if (dir_move) {
    auto lock = t.GetForUpdate(keys::Fs(fs_));
    if (!lock.ok()) return lock.status();
  }

  // Both directories, locked in inode-number order.
  std::optional<Inode> lo, hi;
  for (Ino ino : {std::min(src_dir, dst_dir), std::max(src_dir, dst_dir)}) {
    if (lo && one_dir) break;
    auto d = LoadDir(t, fs_, ino, true);
    if (!d.ok()) return d.status();
    (lo ? hi : lo).emplace(std::move(*d));
  }
  Inode& sdir = lo->ino == src_dir ? *lo : *hi;
  Inode& ddir = lo->ino == dst_dir ? *lo : *hi;

  auto sd = LoadDentry(t, fs_, src_dir, src_name);
  if (!sd.ok()) return sd.status();
  if (!*sd) return MetaError(MetaErr::kNoEnt, "no such source");
  const Dentry src = **sd;
  const bool src_is_dir = src.type == FileType::kDir;
  if (dir_move != (src_is_dir && !one_dir)) {
    return Status(Code::kConflict, "rename source changed before the lock");
  }
  auto dd = LoadDentry(t, fs_, dst_dir, dst_name);
  if (!dd.ok()) return dd.status();
  RenameResult r;
  r.src_dir = {sdir.change, sdir.change};
  r.dst_dir = {ddir.change, ddir.change};
  // POSIX: renaming a name onto itself or onto another link of the same file does nothing.
  if (*dd && (*dd)->ino == src.ino) return r;

  if (dir_move) {
    // Refuse to move a directory into its own subtree: walk from the destination up to the
    // root. The rename lock keeps every directory's parent fixed meanwhile.
    Ino p = dst_dir;
    for (int depth = 0;; ++depth) {
      if (p == src.ino) return MetaError(MetaErr::kInval, "directory into its own subtree");
      if (p == kRootIno) break;
      if (depth > 1'000'000) return Status::Internal("directory tree has a cycle");
      auto n = LoadDir(t, fs_, p, false);
      if (!n.ok()) return n.status();
      p = n->parent;
    }
  }

  // The objects, in inode-number order.
  std::optional<Inode> src_obj, dst_obj;
  std::vector<Ino> order{src.ino};
  if (*dd) order.push_back((*dd)->ino);
  std::sort(order.begin(), order.end());
  for (Ino ino : order) {
    auto n = LoadInode(t, fs_, ino, true);
    if (!n.ok()) return n.status();
    (ino == src.ino ? src_obj : dst_obj).emplace(std::move(*n));
  }
  if (check) LOOM_RETURN_IF_ERROR(check(sdir, *src_obj, ddir, dst_obj ? &*dst_obj : nullptr));
  if (dst_obj) {
    bool dst_is_dir = dst_obj->type == FileType::kDir;
    if (src_is_dir && !dst_is_dir) return MetaError(MetaErr::kNotDir, "target not a directory");
    if (!src_is_dir && dst_is_dir) return MetaError(MetaErr::kIsDir, "target is a directory");
    if (dst_is_dir) {
      auto empty = DirIsEmpty(t, fs_, dst_obj->ino);
      if (!empty.ok()) return empty.status();
      if (!*empty) return MetaError(MetaErr::kNotEmpty, "target directory not empty");
    }
  }

  Timespec now = NowRealtime();
  LOOM_RETURN_IF_ERROR(DeleteEntry(t, fs_, src_dir, src));
  if (dst_obj) {
    LOOM_RETURN_IF_ERROR(DeleteEntry(t, fs_, dst_dir, **dd));
    if (dst_obj->type == FileType::kDir) --ddir.nlink;
    auto u = DropLink(t, *dst_obj, now, is_open);
    if (!u.ok()) return u.status();
    r.replaced = *u;
  }
  // A new cookie even within one directory: the entry is new to a reader paging through.
  LOOM_RETURN_IF_ERROR(PutEntry(t, fs_, ddir, dst_name, src.ino, src.type));
  if (dir_move) {
    src_obj->parent = dst_dir;
    --sdir.nlink;
    ++ddir.nlink;
  }
  TouchCtime(*src_obj, now);  // as Linux does; NFS clients use it to notice the move
  LOOM_RETURN_IF_ERROR(StoreInode(t, fs_, *src_obj));
  TouchDir(sdir, now);
  if (!one_dir) TouchDir(ddir, now);
  r.src_dir.after = sdir.change;
  r.dst_dir.after = ddir.change;
  LOOM_RETURN_IF_ERROR(StoreInode(t, fs_, sdir));
  if (!one_dir) LOOM_RETURN_IF_ERROR(StoreInode(t, fs_, ddir));
  return r;
}

}  // namespace loom::meta
