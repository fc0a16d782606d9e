// The typed records loom-mds stores (values of the keys in keys.h) and their binary encoding.
//
// Encoding: [kind u8][version u8][fields...], integers big-endian fixed width, byte strings
// u32-length-prefixed. A record change appends fields under a new version; decoders accept
// every version up to their own (older ones get defaults for the missing fields) and refuse
// newer ones rather than silently dropping fields on a rewrite. Encoders always write their
// record's newest version. Fields of array elements added by a later version go after all of
// the older version's fields, as one more array in element order. Decoding is bounded: every
// length is checked against its maximum and the bytes left, and any damage (truncation,
// trailing bytes, an out-of-range enum) is a kInternal error, never a crash.
#pragma once

#include <compare>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "meta/keys.h"

namespace loom::meta {

// Bounds, shared with namespace.cc's argument checks.
constexpr size_t kMaxNameLen = 255;            // NAME_MAX
constexpr size_t kMaxSymlinkLen = 4096;        // PATH_MAX
constexpr size_t kMaxFhLen = 128;              // NFSv3 handles are at most 64 bytes
constexpr size_t kMaxMirrors = 16;
constexpr size_t kMaxStripes = 1024;
constexpr size_t kMaxClientOwnerLen = 1024;    // NFS4_OPAQUE_LIMIT
constexpr size_t kMaxAddressLen = 1024;        // a data server's host:port
constexpr size_t kMaxServerLabels = 64;        // per data server
constexpr size_t kMaxServerLabelLen = 256;     // "key=value"

// Values equal nfs_ftype4 (RFC 8881 §5.8.1.2), so the NFS layer casts.
enum class FileType : uint8_t {
  kReg = 1, kDir = 2, kBlk = 3, kChr = 4, kLnk = 5, kSock = 6, kFifo = 7,
};

struct Timespec {
  int64_t sec = 0;
  uint32_t nsec = 0;
  auto operator<=>(const Timespec&) const = default;
};
Timespec NowRealtime();

// F|fsid: written by Mkfs.
struct FsInfo {
  FsId fsid = 0;
  Ino root = 0;
  Timespec created;
  bool operator==(const FsInfo&) const = default;
};

struct Inode {
  Ino ino = 0;
  FileType type = FileType::kReg;
  uint32_t mode = 0;          // permission bits only (07777); the type is `type`
  uint32_t uid = 0, gid = 0;
  uint32_t nlink = 0;
  uint64_t size = 0;
  uint64_t space_used = 0;
  Timespec atime, mtime, ctime;
  uint64_t change = 0;        // NFSv4 change attribute: +1 on every change to the inode
  uint32_t rdev_major = 0, rdev_minor = 0;   // kBlk/kChr
  std::string symlink;        // kLnk target
  uint64_t generation = 0;
  // Directories only: the parent directory (root: itself) — READDIR's "..", LOOKUPP and the
  // rename loop check; and the next readdir cookie to hand out (never reused).
  Ino parent = 0;
  uint64_t next_cookie = 0;
  bool operator==(const Inode&) const = default;
};

// A directory entry. Stored under both D|fs|parent|name and R|fs|parent|cookie.
struct Dentry {
  std::string name;
  Ino ino = 0;
  FileType type = FileType::kReg;
  uint64_t cookie = 0;        // stable READDIR cookie of this entry, from parent.next_cookie
  bool operator==(const Dentry&) const = default;
};

// One data-server file of a layout (an ff_data_server4 of RFC 8435 §5.1).
struct DataFile {
  uint32_t ds_id = 0;         // the data server, resolved to an address by the MDS
  std::string fh;             // its NFSv3 file handle
  uint32_t uid = 0, gid = 0;  // synthetic owner the client uses on the data server (fencing)
  // Generation of the data file's name on its server (mds/data_servers.h): 0 is
  // loom/<tree>/<ino>, g > 0 is loom/<tree>/<ino>.<g>, so that moving a file's bytes to a
  // server that holds an older generation does not collide. Since version 2 of Layout and
  // GcItem.
  uint32_t name_gen = 0;
  bool operator==(const DataFile&) const = default;
};

struct Mirror {
  std::vector<DataFile> files;  // one per stripe: files.size() == Layout::stripe_count
  // The mirror missed writes (its server failed while others succeeded): excluded from reads
  // and new layouts until resynced from a good mirror. Since Layout version 2.
  bool stale = false;
  bool operator==(const Mirror&) const = default;
};

struct Layout {
  uint64_t stripe_unit = 0;
  uint32_t stripe_count = 1;
  std::vector<Mirror> mirrors;
  uint64_t generation = 0;    // bumped by the MDS on every change (version 2)
  bool operator==(const Layout&) const = default;
};

// O|fs|ino: a file whose last name was removed while it was open.
struct Orphan {
  Ino ino = 0;
  Timespec since;
  bool operator==(const Orphan&) const = default;
};

// G|fs|ino|ds|fh: a data-server file to delete, written in the transaction that made it
// unreachable. The GC worker deletes the file, then the item; repeating is harmless.
struct GcItem {
  Ino ino = 0;
  DataFile file;
  Timespec queued;
  bool operator==(const GcItem&) const = default;
};

// P|fsid|ino|ds: the MDS is about to create ino's data file on data server ds (issue 10.7).
// Written (durably) before the CREATE, deleted with the layout's commit (Namespace::SetLayout);
// one left over after a crash names a data file that this store made and no layout holds.
struct PendingFile {
  Ino ino = 0;
  uint32_t ds_id = 0;
  Timespec since;
  uint32_t name_gen = 0;      // of the data file's name (DataFile::name_gen); version 2
  bool operator==(const PendingFile&) const = default;
};

// V|fsid: the filesystem's identity, written once when its store is made (issue 10.5). `uuid`
// is 16 random bytes, the owner the data servers' loom/<tree>/.owner markers name; `tree` is
// the directory under loom/ that holds its data files.
struct FsIdentity {
  std::string uuid;
  std::string tree;
  Timespec created;
  bool operator==(const FsIdentity&) const = default;
};

// K|uuid: a data server known to this store (issue 10.8). Layouts name data servers by `id`;
// the id belongs to the server's UUID (its loom/ds-id file), not to its place on the command
// line. `address` is where it was last seen. Version 2 adds what the registry keeps across
// restarts: the address clients are told (empty: `address`), labels ("key=value") and the
// draining state.
struct DataServerRecord {
  std::string uuid;
  uint32_t id = 0;
  std::string address;
  std::string advertised_address;
  std::vector<std::string> labels;
  bool draining = false;
  bool operator==(const DataServerRecord&) const = default;
};

// C|clientid: what RFC 8881 §8.4.3 requires to survive a restart, to refuse a wrong reclaim.
struct ClientRecord {
  enum Flags : uint32_t {
    kConfirmed = 1u << 0,
    kReclaimComplete = 1u << 1,          // sent RECLAIM_COMPLETE in its last epoch
    kRevokedWithoutFree = 1u << 2,       // state revoked, FREE_STATEID not yet received
  };
  uint64_t clientid = 0;
  std::string owner;          // co_ownerid
  uint64_t verifier = 0;      // co_verifier
  uint32_t flags = 0;
  Timespec created;
  bool operator==(const ClientRecord&) const = default;
};

// S|server: the server's boot epoch and the epoch whose clients may still reclaim.
struct GraceState {
  uint64_t epoch = 0;
  uint64_t recovery_epoch = 0;
  bool in_grace = false;
  bool operator==(const GraceState&) const = default;
};

std::string Encode(const FsInfo& r);
std::string Encode(const Inode& r);
std::string Encode(const Dentry& r);
std::string Encode(const Layout& r);
std::string Encode(const Orphan& r);
std::string Encode(const GcItem& r);
std::string Encode(const PendingFile& r);
std::string Encode(const FsIdentity& r);
std::string Encode(const DataServerRecord& r);
std::string Encode(const ClientRecord& r);
std::string Encode(const GraceState& r);
std::string EncodeU64(uint64_t v);  // N|fsid

Status Decode(std::string_view in, FsInfo* out);
Status Decode(std::string_view in, Inode* out);
Status Decode(std::string_view in, Dentry* out);
Status Decode(std::string_view in, Layout* out);
Status Decode(std::string_view in, Orphan* out);
Status Decode(std::string_view in, GcItem* out);
Status Decode(std::string_view in, PendingFile* out);
Status Decode(std::string_view in, FsIdentity* out);
Status Decode(std::string_view in, DataServerRecord* out);
Status Decode(std::string_view in, ClientRecord* out);
Status Decode(std::string_view in, GraceState* out);
Status DecodeU64(std::string_view in, uint64_t* out);

}  // namespace loom::meta
