// Record-level helpers shared by namespace.cc and namespace_remove.cc. Internal to src/meta.
#pragma once

#include <optional>
#include <string_view>

#include "meta/errors.h"
#include "meta/keys.h"
#include "meta/kv.h"
#include "meta/records.h"

namespace loom::meta::detail {

// A valid single path component: 1..255 bytes, no '/' or NUL, not "." or "..".
Status CheckName(std::string_view name);

// The inode, locked when for_update; kStale when it does not exist (the caller holds a
// handle to it, or a dentry pointed at it).
Result<Inode> LoadInode(Txn& t, FsId fs, Ino ino, bool for_update);
// As LoadInode, and kNotDir unless it is a directory.
Result<Inode> LoadDir(Txn& t, FsId fs, Ino ino, bool for_update);
Status StoreInode(Txn& t, FsId fs, const Inode& n);

// The entry or nullopt. Callers hold the directory's lock, so a plain read is stable.
Result<std::optional<Dentry>> LoadDentry(Txn& t, FsId fs, Ino dir, std::string_view name);
// Adds `name` → ino under `dir` (D and R keys) with the next cookie of `dir`.
Status PutEntry(Txn& t, FsId fs, Inode& dir, std::string_view name, Ino ino, FileType type);
Status DeleteEntry(Txn& t, FsId fs, Ino dir, const Dentry& d);
Result<bool> DirIsEmpty(Txn& t, FsId fs, Ino dir);

// kInval unless every mirror has one file per stripe and the bounds of records.h hold.
Status CheckLayout(const Layout& l);

// A directory's entries changed: mtime = ctime = now, change + 1.
void TouchDir(Inode& dir, Timespec now);
// The inode's attributes changed: ctime = now, change + 1.
void TouchCtime(Inode& n, Timespec now);

}  // namespace loom::meta::detail
