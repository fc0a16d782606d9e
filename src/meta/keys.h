// Every key loom-mds stores, in one place. A key is a one-byte tag (the letter below) followed
// by fixed-width big-endian integers, so byte order is numeric order and one directory, one
// inode's xattrs, one filesystem's orphans each form a contiguous range. At most one
// component per key has variable length (a name or a file handle) and it always comes last:
// no escaping is needed, and a prefix scan over the fixed part can never match a longer
// name by accident (a name cannot "spill" into a following field).
//
// Every namespace key carries the fsid (the NFS volume), so several filesystems share one
// store and a volume can later move to another metadata server as one key range.
//
//  F|fsid                     -> FsInfo          filesystem exists; also the rename lock
//  N|fsid                     -> u64             inode-number allocator high-water mark
//  I|fsid|ino                 -> Inode
//  D|fsid|parent|name         -> Dentry          LOOKUP: name -> (ino, type, cookie)
//  R|fsid|parent|cookie       -> Dentry          READDIR: the same entry in cookie order
//  L|fsid|ino                 -> Layout
//  X|fsid|ino|name            -> xattr value (raw bytes)
//  O|fsid|ino                 -> Orphan          nlink 0 but still open
//  G|fsid|ino|ds|fh           -> GcItem          data-server file to delete
//  P|fsid|ino|ds[|gen]        -> PendingFile     data file about to be created (intent);
//                                                gen (u32) only for name generation > 0
//  V|fsid                     -> FsIdentity      the filesystem's unique id and data tree
//  K|uuid                     -> DataServerRecord  a data server's stable id, by its UUID
//  C|clientid                 -> ClientRecord    NFSv4 client state that survives restart
//  S|name                     -> GraceState      grace/epoch state, per server name
//
// fsid, ino, parent, cookie, clientid: u64; ds: u32; uuid: 16 raw bytes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace loom::meta {

using FsId = uint64_t;
using Ino = uint64_t;

namespace tag {
constexpr char kFs = 'F';
constexpr char kInoAlloc = 'N';
constexpr char kInode = 'I';
constexpr char kDentry = 'D';
constexpr char kReaddir = 'R';
constexpr char kLayout = 'L';
constexpr char kPolicy = 'Y';   // Y|fs|dir: a directory's placement policy (meta/policy.h)
constexpr char kXattr = 'X';
constexpr char kOrphan = 'O';
constexpr char kGc = 'G';
constexpr char kPending = 'P';
constexpr char kIdentity = 'V';
constexpr char kDataServer = 'K';
constexpr char kClient = 'C';
constexpr char kState = 'S';
}  // namespace tag

namespace keys {

std::string Fs(FsId fs);
std::string InoAlloc(FsId fs);
std::string Inode(FsId fs, Ino ino);
std::string InodePrefix(FsId fs);  // every inode of fs
std::string Dentry(FsId fs, Ino parent, std::string_view name);
std::string DentryPrefix(FsId fs, Ino parent);
std::string Readdir(FsId fs, Ino dir, uint64_t cookie);
std::string ReaddirPrefix(FsId fs, Ino dir);
std::string Layout(FsId fs, Ino ino);
std::string LayoutPrefix(FsId fs);
std::string Policy(FsId fs, Ino dir);
std::string Xattr(FsId fs, Ino ino, std::string_view name);
std::string XattrPrefix(FsId fs, Ino ino);
std::string Orphan(FsId fs, Ino ino);
std::string OrphanPrefix(FsId fs);
std::string Gc(FsId fs, Ino ino, uint32_t ds_id, std::string_view fh);
std::string GcPrefix(FsId fs);
std::string Pending(FsId fs, Ino ino, uint32_t ds_id);  // name generation 0
std::string Pending(FsId fs, Ino ino, uint32_t ds_id, uint32_t name_gen);
std::string PendingPrefix(FsId fs);            // every intent of the filesystem
std::string PendingPrefix(FsId fs, Ino ino);   // the intents of one file
std::string Identity(FsId fs);
std::string DataServer(std::string_view uuid);
std::string DataServerPrefix();
std::string Client(uint64_t clientid);
std::string ClientPrefix();
std::string State(std::string_view name);

// How many leading bytes of `key` name the neighbourhood it is written in, for the store's
// memtable insert hints (RocksKvStore): one directory's names by their first byte
// (D|fs|parent|c), one directory's cookies in runs of 256 (R|fs|dir|cookie), and runs of 256
// consecutive inode numbers (I|fs|ino, L|fs|ino ...: the tag, the filesystem and the top 7
// bytes of the number). 0: no neighbourhood (short keys).
size_t InsertHintPrefixLength(std::string_view key);

// Whether a commit should leave `key`'s new value in the store's read cache (write-through).
// Not READDIR's rows (R|...): they are only ever scanned, never read one by one, and would
// take a third of the cache from the inodes and names that are.
bool PointRead(std::string_view key);

// The variable-length tail of `key` after `prefix` (a name), or false if key does not start
// with prefix.
bool TailAfter(std::string_view key, std::string_view prefix, std::string_view* tail);

}  // namespace keys
}  // namespace loom::meta
