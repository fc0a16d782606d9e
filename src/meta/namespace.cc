// Namespace: creation, lookup, attributes, readdir, layouts and the helpers every operation
// uses. Removal and rename live in namespace_remove.cc.
#include "meta/namespace.h"

#include "meta/namespace_internal.h"

namespace loom::meta {
namespace detail {

Status CheckName(std::string_view name) {
  if (name.size() > kMaxNameLen) return MetaError(MetaErr::kNameTooLong, "name too long");
  if (name.empty() || name == "." || name == ".." ||
      name.find_first_of(std::string_view("/\0", 2)) != std::string_view::npos) {
    return MetaError(MetaErr::kInval, "invalid name");
  }
  return Status::Ok();
}

namespace {
// The inode record a read of ino's key returned: kStale when there is none.
Result<Inode> InodeOf(const Result<MaybeValue>& v, Ino ino) {
  if (!v.ok()) return v.status();
  const MaybeValue& rec = v.value();
  if (!rec) return MetaError(MetaErr::kStale, "no inode " + std::to_string(ino));
  Inode n;
  LOOM_RETURN_IF_ERROR(Decode(*rec, &n));
  return n;
}
}  // namespace

Result<Inode> LoadInode(Txn& t, FsId fs, Ino ino, bool for_update) {
  std::string key = keys::Inode(fs, ino);
  return InodeOf(for_update ? t.GetForUpdate(key) : t.Get(key), ino);
}

Result<Inode> LoadDir(Txn& t, FsId fs, Ino ino, bool for_update) {
  auto n = LoadInode(t, fs, ino, for_update);
  if (n.ok() && n->type != FileType::kDir) return MetaError(MetaErr::kNotDir, "not a directory");
  return n;
}

Status StoreInode(Txn& t, FsId fs, const Inode& n) {
  return t.Put(keys::Inode(fs, n.ino), Encode(n));
}

Result<std::optional<Dentry>> LoadDentry(Txn& t, FsId fs, Ino dir, std::string_view name) {
  auto v = t.Get(keys::Dentry(fs, dir, name));
  if (!v.ok()) return v.status();
  if (!*v) return std::optional<Dentry>();
  Dentry d;
  LOOM_RETURN_IF_ERROR(Decode(**v, &d));
  return std::optional<Dentry>(std::move(d));
}

Status PutEntry(Txn& t, FsId fs, Inode& dir, std::string_view name, Ino ino, FileType type) {
  Dentry d{std::string(name), ino, type, dir.next_cookie++};
  std::string v = Encode(d);
  LOOM_RETURN_IF_ERROR(t.Put(keys::Dentry(fs, dir.ino, name), v));
  return t.Put(keys::Readdir(fs, dir.ino, d.cookie), v);
}

Status DeleteEntry(Txn& t, FsId fs, Ino dir, const Dentry& d) {
  LOOM_RETURN_IF_ERROR(t.Delete(keys::Dentry(fs, dir, d.name)));
  return t.Delete(keys::Readdir(fs, dir, d.cookie));
}

Result<bool> DirIsEmpty(Txn& t, FsId fs, Ino dir) {
  bool empty = true;
  LOOM_RETURN_IF_ERROR(t.Scan(KeyRange::Prefix(keys::ReaddirPrefix(fs, dir)), 1,
                              [&](std::string_view, std::string_view) { return empty = false; }));
  return empty;
}

Status CheckLayout(const Layout& l) {
  bool ok = l.stripe_count > 0 && l.stripe_count <= kMaxStripes &&
            l.mirrors.size() <= kMaxMirrors;
  for (const Mirror& m : l.mirrors) {
    ok = ok && m.files.size() == l.stripe_count;
    for (const DataFile& f : m.files) ok = ok && f.fh.size() <= kMaxFhLen;
  }
  return ok ? Status::Ok() : MetaError(MetaErr::kInval, "malformed layout");
}

void TouchDir(Inode& dir, Timespec now) {
  dir.mtime = now;
  TouchCtime(dir, now);
}

void TouchCtime(Inode& n, Timespec now) {
  n.ctime = now;
  ++n.change;
}

}  // namespace detail

using namespace detail;

Namespace::Namespace(KvStore* store, FsId fs, Options opts)
    : store_(store), fs_(fs), alloc_(store, fs, opts.ino_block) {}

Status Namespace::Mkfs(Txn& t, uint32_t mode, uint32_t uid, uint32_t gid) {
  auto existing = t.GetForUpdate(keys::Fs(fs_));
  if (!existing.ok()) return existing.status();
  if (*existing) return MetaError(MetaErr::kExist, "filesystem already made");
  Timespec now = NowRealtime();
  LOOM_RETURN_IF_ERROR(t.Put(keys::Fs(fs_), Encode(FsInfo{fs_, kRootIno, now})));
  LOOM_RETURN_IF_ERROR(t.Put(keys::InoAlloc(fs_), EncodeU64(kFirstFreeIno)));
  Inode root;
  root.ino = kRootIno;
  root.type = FileType::kDir;
  root.mode = mode & 07777;
  root.uid = uid;
  root.gid = gid;
  root.nlink = 2;
  root.atime = root.mtime = root.ctime = now;
  root.change = 1;
  root.generation = 1;
  root.parent = kRootIno;
  root.next_cookie = kFirstCookie;
  LOOM_RETURN_IF_ERROR(StoreInode(t, fs_, root));
  CountOnCommit(t, 1);
  return Status::Ok();
}

void Namespace::CountOnCommit(Txn& t, int64_t delta) {
  t.OnCommit([n = inodes_, delta] { n->fetch_add(delta, std::memory_order_relaxed); });
}

Status Namespace::CountInodes() {
  auto txn = store_->Begin();
  if (!txn.ok()) return txn.status();
  int64_t n = 0;
  LOOM_RETURN_IF_ERROR((*txn)->Scan(KeyRange::Prefix(keys::InodePrefix(fs_)), 0,
                                    [&n](std::string_view, std::string_view) {
                                      ++n;
                                      return true;
                                    }));
  (*txn)->Rollback();
  // Creates and deletes committed meanwhile were counted into inodes_ as well; with nothing
  // changing the namespace during the scan (see namespace.h) this is exact.
  inodes_->store(n, std::memory_order_relaxed);
  counted_.store(true, std::memory_order_release);
  return Status::Ok();
}

std::optional<uint64_t> Namespace::inodes() const {
  if (!counted_.load(std::memory_order_acquire)) return std::nullopt;
  const int64_t n = inodes_->load(std::memory_order_relaxed);
  return n > 0 ? static_cast<uint64_t>(n) : 0;
}

Result<Dentry> Namespace::Lookup(Txn& t, Ino dir, std::string_view name) {
  LOOM_RETURN_IF_ERROR(CheckName(name));
  auto d = LoadDentry(t, fs_, dir, name);
  if (!d.ok()) return d.status();
  if (*d) return std::move(**d);
  // Only a miss needs the directory, to tell "no such name" from a bad directory.
  auto parent = LoadDir(t, fs_, dir, false);
  if (!parent.ok()) return parent.status();
  return MetaError(MetaErr::kNoEnt, "no such entry");
}

Result<Inode> Namespace::GetAttr(Txn& t, Ino ino) { return LoadInode(t, fs_, ino, false); }

std::vector<Result<Inode>> Namespace::GetAttrs(Txn& t, const std::vector<Ino>& inos) {
  std::vector<std::string> ks;
  ks.reserve(inos.size());
  for (Ino ino : inos) ks.push_back(keys::Inode(fs_, ino));
  std::vector<Result<MaybeValue>> vs;
  t.GetMany(ks, &vs);
  std::vector<Result<Inode>> out;
  out.reserve(inos.size());
  for (size_t i = 0; i < inos.size(); i++) out.push_back(detail::InodeOf(vs[i], inos[i]));
  return out;
}

Result<Inode> Namespace::SetAttr(Txn& t, Ino ino, const SetAttrArgs& a) {
  if (a.mode && (*a.mode & ~07777u)) return MetaError(MetaErr::kInval, "mode has type bits");
  auto n = LoadInode(t, fs_, ino, true);
  if (!n.ok()) return n.status();
  Timespec now = NowRealtime();
  if (a.size) {
    if (n->type == FileType::kDir) return MetaError(MetaErr::kIsDir, "size of a directory");
    if (n->type != FileType::kReg) return MetaError(MetaErr::kInval, "size of a special file");
    n->size = *a.size;
    n->mtime = now;  // truncate changes the data, so mtime too (POSIX)
  }
  if (a.size_at_least && *a.size_at_least > n->size) {
    if (n->type != FileType::kReg) return MetaError(MetaErr::kInval, "size of a non-file");
    n->size = *a.size_at_least;
  }
  if (a.mode) n->mode = *a.mode;
  if (a.kill_setid && n->type != FileType::kDir) {
    n->mode &= ~04000u;
    if (n->mode & 0010) n->mode &= ~02000u;
  }
  if (a.uid) n->uid = *a.uid;
  if (a.gid) n->gid = *a.gid;
  if (a.atime) n->atime = *a.atime;
  if (a.mtime) n->mtime = *a.mtime;
  TouchCtime(*n, now);
  LOOM_RETURN_IF_ERROR(StoreInode(t, fs_, *n));
  return n;
}

Result<CreateResult> Namespace::Create(Txn& t, Ino parent, std::string_view name,
                                       const CreateArgs& a) {
  LOOM_RETURN_IF_ERROR(CheckName(name));
  if (a.mode & ~07777u) return MetaError(MetaErr::kInval, "mode has type bits");
  if (a.type == FileType::kLnk) {
    if (a.symlink.empty()) return MetaError(MetaErr::kInval, "empty symlink target");
    if (a.symlink.size() > kMaxSymlinkLen) {
      return MetaError(MetaErr::kNameTooLong, "symlink target too long");
    }
  }
  if (a.layout && a.type != FileType::kReg) {
    return MetaError(MetaErr::kInval, "layout for a non-regular file");
  }
  if (a.layout) LOOM_RETURN_IF_ERROR(CheckLayout(*a.layout));
  auto dir = LoadDir(t, fs_, parent, true);
  if (!dir.ok()) return dir.status();
  auto existing = LoadDentry(t, fs_, parent, name);
  if (!existing.ok()) return existing.status();
  if (*existing) return MetaError(MetaErr::kExist, "name exists");
  bool is_dir = a.type == FileType::kDir;
  if (is_dir && dir->nlink >= kMaxLink) return MetaError(MetaErr::kMLink, "too many subdirs");
  // Allocated after the checks so a refused create wastes no number (a retried one may).
  auto ino = alloc_.Allocate();
  if (!ino.ok()) return ino.status();

  Timespec now = NowRealtime();
  CreateResult r;
  Inode& n = r.inode;
  n.ino = *ino;
  n.type = a.type;
  n.mode = a.mode;
  n.uid = a.uid;
  n.gid = a.gid;
  n.nlink = is_dir ? 2 : 1;
  n.atime = n.mtime = n.ctime = now;
  n.change = 1;
  n.generation = 1;  // inode numbers are never reused, so one generation suffices
  if (a.type == FileType::kLnk) {
    n.symlink = a.symlink;
    n.size = a.symlink.size();
  }
  if (a.type == FileType::kBlk || a.type == FileType::kChr) {
    n.rdev_major = a.rdev_major;
    n.rdev_minor = a.rdev_minor;
  }
  if (is_dir) {
    n.parent = parent;
    n.next_cookie = kFirstCookie;
  }
  LOOM_RETURN_IF_ERROR(StoreInode(t, fs_, n));
  CountOnCommit(t, 1);
  if (a.layout) LOOM_RETURN_IF_ERROR(t.Put(keys::Layout(fs_, n.ino), Encode(*a.layout)));

  r.dir.before = dir->change;
  LOOM_RETURN_IF_ERROR(PutEntry(t, fs_, *dir, name, n.ino, n.type));
  if (is_dir) ++dir->nlink;  // the new directory's ".."
  TouchDir(*dir, now);
  r.dir.after = dir->change;
  LOOM_RETURN_IF_ERROR(StoreInode(t, fs_, *dir));
  return r;
}

Result<ChangeInfo> Namespace::Link(Txn& t, Ino ino, Ino parent, std::string_view name) {
  LOOM_RETURN_IF_ERROR(CheckName(name));
  auto dir = LoadDir(t, fs_, parent, true);  // directory before object: the lock order
  if (!dir.ok()) return dir.status();
  auto obj = LoadInode(t, fs_, ino, true);
  if (!obj.ok()) return obj.status();
  if (obj->type == FileType::kDir) return MetaError(MetaErr::kIsDir, "link to a directory");
  if (obj->nlink == 0) return MetaError(MetaErr::kNoEnt, "file was removed");
  if (obj->nlink >= kMaxLink) return MetaError(MetaErr::kMLink, "too many links");
  auto existing = LoadDentry(t, fs_, parent, name);
  if (!existing.ok()) return existing.status();
  if (*existing) return MetaError(MetaErr::kExist, "name exists");

  Timespec now = NowRealtime();
  ++obj->nlink;
  TouchCtime(*obj, now);
  LOOM_RETURN_IF_ERROR(StoreInode(t, fs_, *obj));
  ChangeInfo ci{dir->change, 0};
  LOOM_RETURN_IF_ERROR(PutEntry(t, fs_, *dir, name, ino, obj->type));
  TouchDir(*dir, now);
  ci.after = dir->change;
  LOOM_RETURN_IF_ERROR(StoreInode(t, fs_, *dir));
  return ci;
}

Result<ReadDirPage> Namespace::ReadDir(Txn& t, Ino dir, uint64_t cookie, size_t max_entries) {
  if (max_entries == 0) return MetaError(MetaErr::kInval, "readdir of zero entries");
  auto d = LoadDir(t, fs_, dir, false);
  if (!d.ok()) return d.status();
  if (cookie != 0 && (cookie < kFirstCookie || cookie >= d->next_cookie)) {
    return MetaError(MetaErr::kBadCookie, "cookie was never handed out");
  }
  std::string prefix = keys::ReaddirPrefix(fs_, dir);
  ReadDirPage page;
  Status decode_status;
  bool more = false;
  // One extra entry tells whether this page is the last. The pages of one listing follow each
  // other through the directory's prefix: the store may keep it in memory (ScanPrefixFrom).
  LOOM_RETURN_IF_ERROR(t.ScanPrefixFrom(prefix, keys::Readdir(fs_, dir, cookie + 1),
                                        max_entries + 1, [&](std::string_view, std::string_view v) {
                                          if (page.entries.size() == max_entries) return !(more = true);
                                          decode_status = Decode(v, &page.entries.emplace_back());
                                          return decode_status.ok();
                                        }));
  LOOM_RETURN_IF_ERROR(decode_status);
  page.eof = !more;
  return page;
}

Result<Layout> Namespace::GetLayout(Txn& t, Ino ino) {
  auto v = t.Get(keys::Layout(fs_, ino));
  if (!v.ok()) return v.status();
  if (!*v) return MetaError(MetaErr::kNoEnt, "no layout");
  Layout l;
  LOOM_RETURN_IF_ERROR(Decode(**v, &l));
  return l;
}

Status Namespace::SetLayout(Txn& t, Ino ino, const Layout& l) {
  LOOM_RETURN_IF_ERROR(CheckLayout(l));
  auto n = LoadInode(t, fs_, ino, true);
  if (!n.ok()) return n.status();
  if (n->type != FileType::kReg) return MetaError(MetaErr::kInval, "layout for a non-file");
  // The layout now holds its data files: their intent records (P keys, written before the
  // CREATEs) are resolved in the same commit. Intents for servers the layout does not use
  // (a failed placement) stay, naming leftovers for start-up recovery and scrub.
  for (const Mirror& m : l.mirrors)
    for (const DataFile& f : m.files) LOOM_RETURN_IF_ERROR(t.Delete(keys::Pending(fs_, ino, f.ds_id, f.name_gen)));
  return t.Put(keys::Layout(fs_, ino), Encode(l));
}

Status Namespace::ReplaceLayout(Txn& t, Ino ino, const Layout& l) {
  auto old = GetLayout(t, ino);
  if (!old.ok()) return old.status();
  LOOM_RETURN_IF_ERROR(SetLayout(t, ino, l));
  auto held = [&](const DataFile& f) {
    for (const Mirror& m : l.mirrors)
      for (const DataFile& g : m.files)
        if (g.ds_id == f.ds_id && g.fh == f.fh) return true;
    return false;
  };
  const Timespec now = NowRealtime();
  for (const Mirror& m : old->mirrors)
    for (const DataFile& f : m.files)
      if (!held(f)) LOOM_RETURN_IF_ERROR(t.Put(keys::Gc(fs_, ino, f.ds_id, f.fh), Encode(GcItem{ino, f, now})));
  return Status::Ok();
}

Result<std::vector<Orphan>> Namespace::ListOrphans(Txn& t, size_t limit) {
  std::vector<Orphan> out;
  Status st;
  LOOM_RETURN_IF_ERROR(t.Scan(KeyRange::Prefix(keys::OrphanPrefix(fs_)), limit,
                              [&](std::string_view, std::string_view v) {
                                st = Decode(v, &out.emplace_back());
                                return st.ok();
                              }));
  LOOM_RETURN_IF_ERROR(st);
  return out;
}

Result<std::vector<GcItem>> Namespace::ListGc(Txn& t, size_t limit) {
  std::vector<GcItem> out;
  Status st;
  LOOM_RETURN_IF_ERROR(t.Scan(KeyRange::Prefix(keys::GcPrefix(fs_)), limit,
                              [&](std::string_view, std::string_view v) {
                                st = Decode(v, &out.emplace_back());
                                return st.ok();
                              }));
  LOOM_RETURN_IF_ERROR(st);
  return out;
}

Status Namespace::DeleteGc(Txn& t, const GcItem& g) {
  return t.Delete(keys::Gc(fs_, g.ino, g.file.ds_id, g.file.fh));
}

}  // namespace loom::meta
