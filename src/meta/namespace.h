// Filesystem operations of one filesystem (fsid), written once over Txn so that every
// backend runs the same code (the JuiceFS/3FS shape). Each operation is one straight function
// that reads and writes inside the caller's transaction; the caller wraps it in RunTxn (or
// puts several operations into one transaction for group commit) and replies only after the
// commit. Errors are MetaErr statuses (errors.h).
//
// Batching: an operation that fails with a MetaErr has written nothing (every check comes
// before the first write), so a group-commit batcher may run many operations in one
// transaction, report the refused ones and commit the rest. Any other error (kConflict, I/O)
// spoils the whole transaction: roll back and rerun the batch.
//
// Concurrency: correct under kv.h's read-committed-plus-row-locks contract. The rules:
//  - A directory's inode is locked (GetForUpdate) by every operation that changes its
//    entries, so its entries, nlink, next_cookie and times change one operation at a time.
//  - Lock order: F|fsid (rename lock) → directories in inode-number order → the objects
//    named, in inode-number order. Breaking the order can only cost a deadlock, which the
//    store turns into kConflict and RunTxn into a retry.
//  - Only a directory moving between two directories changes a directory's parent; it also
//    holds F|fsid (Linux's s_vfs_rename_mutex), so its walk up the tree to refuse moving a
//    directory into its own subtree sees a tree no one else is reshaping.
//
// Thread-safe: holds no per-operation state (the inode allocator is locked inside).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "meta/errors.h"
#include "meta/inode_alloc.h"
#include "meta/keys.h"
#include "meta/kv.h"
#include "meta/records.h"

namespace loom::meta {

// READDIR cookies 0, 1 and 2 are reserved (0 = start; some clients use 1 and 2 for "." and
// ".."), so a directory's first entry gets 3.
constexpr uint64_t kFirstCookie = 3;
constexpr uint32_t kMaxLink = 0xfffffff0u;

// Whether a file is open now: decides between an Orphan record and immediate deletion when
// its last name goes. Called inside the transaction; must not block on the store.
using IsOpenFn = std::function<bool(Ino)>;

// The caller's permission checks of a rename, run by Rename on the two directories and the
// objects as locked, before anything is written, so that what they check is what the rename
// acts on (no chmod, chown or replaced entry can come between). dst_obj is null when the
// target name is free. Not called for a rename that does nothing (a name onto itself or onto
// another link of the same file). A non-OK Status refuses the rename: Rename returns it.
using RenameCheckFn = std::function<Status(const Inode& src_dir, const Inode& src_obj,
                                           const Inode& dst_dir, const Inode* dst_obj)>;
// The same for a remove: the directory and the object named, as locked.
using RemoveCheckFn = std::function<Status(const Inode& dir, const Inode& obj)>;

struct CreateArgs {
  FileType type = FileType::kReg;
  uint32_t mode = 0644;                      // permission bits only
  uint32_t uid = 0, gid = 0;
  std::string symlink;                       // kLnk target
  uint32_t rdev_major = 0, rdev_minor = 0;   // kBlk, kChr
  std::optional<Layout> layout;              // kReg: stored in the same transaction
};

// Fields to change; unset ones stay. Times are explicit (the NFS layer passes the server's
// time for SET_TO_SERVER_TIME4). Any change sets ctime to now and bumps `change`.
struct SetAttrArgs {
  std::optional<uint32_t> mode, uid, gid;
  std::optional<uint64_t> size;              // regular files; also sets mtime unless given
  // Regular files: extend the size to at least this, never shrink (a WRITE that ended past
  // EOF). Applied under the inode's lock, so concurrent writers cannot lose an extension.
  std::optional<uint64_t> size_at_least;
  std::optional<Timespec> atime, mtime;
  // Non-directories: clear S_ISUID, and S_ISGID where group execute is set (without it the
  // bit marks mandatory locking, not set-group-ID), after `mode` is applied and under the
  // inode's lock. For a data or owner change by a caller without CAP_FSETID, as Linux does.
  bool kill_setid = false;
};

// A directory's change attribute before and after an operation (NFSv4 change_info4; atomic,
// since both are read and written under the directory's lock).
struct ChangeInfo {
  uint64_t before = 0, after = 0;
};

struct CreateResult {
  Inode inode;
  ChangeInfo dir;
};

// What dropping one name did to the object.
struct Unlinked {
  Ino ino = 0;
  FileType type = FileType::kReg;
  uint32_t nlink = 0;       // after; 0 means gone or orphaned
  bool orphaned = false;    // nlink 0 while open: an Orphan record keeps it until last close
  size_t gc_items = 0;      // data-server files queued for deletion
};

struct RemoveResult {
  Unlinked obj;
  ChangeInfo dir;
};

struct RenameResult {
  ChangeInfo src_dir, dst_dir;              // the same values when one directory
  std::optional<Unlinked> replaced;         // the target that was overwritten, if any
};

struct ReadDirPage {
  std::vector<Dentry> entries;              // ascending cookies
  bool eof = false;
};

class Namespace {
 public:
  struct Options {
    uint32_t ino_block = 1024;              // inode numbers reserved per store round trip
  };
  Namespace(KvStore* store, FsId fs) : Namespace(store, fs, Options{}) {}
  Namespace(KvStore* store, FsId fs, Options opts);

  FsId fsid() const { return fs_; }
  Ino root() const { return kRootIno; }

  // Makes the filesystem: its F record, allocator and root directory. kExist if made before.
  Status Mkfs(Txn& t, uint32_t mode, uint32_t uid, uint32_t gid);

  // The entry `name` in `dir` (kNoEnt; kNotDir/kStale for a bad dir).
  Result<Dentry> Lookup(Txn& t, Ino dir, std::string_view name);
  Result<Inode> GetAttr(Txn& t, Ino ino);
  // GetAttr of several inodes, read together (Txn::GetMany): READDIR's page of entries.
  std::vector<Result<Inode>> GetAttrs(Txn& t, const std::vector<Ino>& inos);
  Result<Inode> SetAttr(Txn& t, Ino ino, const SetAttrArgs& a);

  // Creates a file, directory, symlink or special file (kExist, kNotDir, kInval...).
  Result<CreateResult> Create(Txn& t, Ino parent, std::string_view name, const CreateArgs& a);
  // Adds a name for a non-directory (kIsDir for directories).
  Result<ChangeInfo> Link(Txn& t, Ino ino, Ino parent, std::string_view name);

  // NFSv4 REMOVE: a name of any type (a directory must be empty: kNotEmpty).
  // `check`, if set, may refuse it (RemoveCheckFn).
  Result<RemoveResult> Remove(Txn& t, Ino parent, std::string_view name, const IsOpenFn& is_open,
                              const RemoveCheckFn& check = nullptr);
  // POSIX unlink (kIsDir for a directory) and rmdir (kNotDir for a non-directory).
  Result<RemoveResult> Unlink(Txn& t, Ino parent, std::string_view name, const IsOpenFn& is_open);
  Result<RemoveResult> Rmdir(Txn& t, Ino parent, std::string_view name);

  // POSIX rename within this filesystem (the caller returns kXDev when the handles' fsids
  // differ): replaces a compatible target, refuses to move a directory into its own subtree
  // (kInval), renaming onto another name of the same file does nothing. `check`, if set,
  // may refuse it (RenameCheckFn).
  Result<RenameResult> Rename(Txn& t, Ino src_dir, std::string_view src_name, Ino dst_dir,
                              std::string_view dst_name, const IsOpenFn& is_open,
                              const RenameCheckFn& check = nullptr);

  // Up to max_entries entries with cookies greater than `cookie` (0 = from the start), in
  // cookie order. A cookie names its entry for good: entries added later get larger cookies,
  // removed ones just stop appearing, so paging never repeats or skips a surviving entry.
  Result<ReadDirPage> ReadDir(Txn& t, Ino dir, uint64_t cookie, size_t max_entries);

  Result<Layout> GetLayout(Txn& t, Ino ino);   // kNoEnt if the file has none
  Status SetLayout(Txn& t, Ino ino, const Layout& l);
  // Replaces the file's layout by `l` (its data moved), queueing the data files of the old
  // layout that `l` does not hold for the GC worker in the same commit.
  Status ReplaceLayout(Txn& t, Ino ino, const Layout& l);

  // Last close of an unlinked file: deletes it and queues its data-server files. OK and
  // nothing done if `ino` is not an orphan. After a restart, when no opens can be reclaimed
  // any more, the MDS releases every orphan from ListOrphans.
  Status ReleaseOrphan(Txn& t, Ino ino);
  Result<std::vector<Orphan>> ListOrphans(Txn& t, size_t limit);

  // The GC worker: list queued data-server files, delete each on its data server, then
  // DeleteGc in a transaction of its own.
  Result<std::vector<GcItem>> ListGc(Txn& t, size_t limit);
  Status DeleteGc(Txn& t, const GcItem& item);

  // How many inodes the filesystem has (files, directories, symlinks, orphans not yet
  // released: df's used files). CountInodes scans the store once, while nothing else changes
  // the namespace (loom-mds before it serves); from then on this Namespace's creates and
  // deletes keep the count as their commits succeed (Txn::OnCommit). Changes made through
  // another Namespace object of the same filesystem are not seen. nullopt before CountInodes.
  Status CountInodes();
  std::optional<uint64_t> inodes() const;

 private:
  enum class RemoveKind { kAny, kNonDir, kDir };
  Result<RemoveResult> RemoveImpl(Txn& t, Ino parent, std::string_view name, RemoveKind kind,
                                  const IsOpenFn& is_open, const RemoveCheckFn& check = nullptr);
  // Drops one link of `obj` (already locked): orphans or deletes it at nlink 0.
  Result<Unlinked> DropLink(Txn& t, Inode& obj, Timespec now, const IsOpenFn& is_open);
  // Deletes inode, layout, xattrs and orphan record; queues the layout's files for GC.
  Result<size_t> DeleteObject(Txn& t, const Inode& obj, Timespec now);

  // Counts the inode a commit makes (+1) or deletes (-1) once it succeeds.
  void CountOnCommit(Txn& t, int64_t delta);

  KvStore* const store_;
  const FsId fs_;
  InodeAllocator alloc_;
  std::atomic<bool> counted_{false};
  // Shared with the commit hooks, which may run after this object is gone (a Namespace made
  // for one operation, committed by its caller).
  std::shared_ptr<std::atomic<int64_t>> inodes_ = std::make_shared<std::atomic<int64_t>>(0);
};

}  // namespace loom::meta
