#include "nfs4/attrs.h"

#include <algorithm>
#include <array>
#include <memory>
#include <string>

namespace loom::nfs4 {
namespace {

using xdr::Decoder;
using xdr::Encoder;

// The wire shape of each supported attribute (its fattr4_* typedef, §5.8, RFC 7862 §12.2).
enum Shape : uint8_t { kNone, kU32, kU64, kBool, kFsid, kTime, kSetTime, kSpec, kBitmap,
                       kFh, kOwner, kU32Array };
// §5.5: get-only (read-only), settable and set-only attributes.
enum Access : uint8_t { kGet, kGetSet, kSet };

struct AttrInfo {
  Shape shape = kNone;
  uint8_t minor = 0;    // first minor version that defines it
  Access access = kGet;
};

constexpr uint32_t kNumAttrs = FATTR4_XATTR_SUPPORT + 1;

constexpr std::array<AttrInfo, kNumAttrs> MakeTable() {
  std::array<AttrInfo, kNumAttrs> t{};
  auto get = [&](uint32_t a, Shape s, uint8_t minor = 0) { t[a] = {s, minor, kGet}; };
  get(FATTR4_SUPPORTED_ATTRS, kBitmap);
  get(FATTR4_TYPE, kU32);
  get(FATTR4_FH_EXPIRE_TYPE, kU32);
  get(FATTR4_CHANGE, kU64);
  t[FATTR4_SIZE] = {kU64, 0, kGetSet};
  get(FATTR4_LINK_SUPPORT, kBool);
  get(FATTR4_SYMLINK_SUPPORT, kBool);
  get(FATTR4_NAMED_ATTR, kBool);
  get(FATTR4_FSID, kFsid);
  get(FATTR4_UNIQUE_HANDLES, kBool);
  get(FATTR4_LEASE_TIME, kU32);
  get(FATTR4_RDATTR_ERROR, kU32);
  get(FATTR4_ACLSUPPORT, kU32);
  get(FATTR4_CANSETTIME, kBool);
  get(FATTR4_CASE_INSENSITIVE, kBool);
  get(FATTR4_CASE_PRESERVING, kBool);
  get(FATTR4_CHOWN_RESTRICTED, kBool);
  get(FATTR4_FILEHANDLE, kFh);
  get(FATTR4_FILEID, kU64);
  get(FATTR4_FILES_AVAIL, kU64);
  get(FATTR4_FILES_FREE, kU64);
  get(FATTR4_FILES_TOTAL, kU64);
  get(FATTR4_HOMOGENEOUS, kBool);
  get(FATTR4_MAXFILESIZE, kU64);
  get(FATTR4_MAXLINK, kU32);
  get(FATTR4_MAXNAME, kU32);
  get(FATTR4_MAXREAD, kU64);
  get(FATTR4_MAXWRITE, kU64);
  t[FATTR4_MODE] = {kU32, 0, kGetSet};
  get(FATTR4_NO_TRUNC, kBool);
  get(FATTR4_NUMLINKS, kU32);
  t[FATTR4_OWNER] = {kOwner, 0, kGetSet};
  t[FATTR4_OWNER_GROUP] = {kOwner, 0, kGetSet};
  get(FATTR4_RAWDEV, kSpec);
  get(FATTR4_SPACE_AVAIL, kU64);
  get(FATTR4_SPACE_FREE, kU64);
  get(FATTR4_SPACE_TOTAL, kU64);
  get(FATTR4_SPACE_USED, kU64);
  get(FATTR4_TIME_ACCESS, kTime);
  t[FATTR4_TIME_ACCESS_SET] = {kSetTime, 0, kSet};
  get(FATTR4_TIME_DELTA, kTime);
  get(FATTR4_TIME_METADATA, kTime);
  get(FATTR4_TIME_MODIFY, kTime);
  t[FATTR4_TIME_MODIFY_SET] = {kSetTime, 0, kSet};
  get(FATTR4_MOUNTED_ON_FILEID, kU64);
  get(FATTR4_FS_LAYOUT_TYPES, kU32Array, 1);
  get(FATTR4_LAYOUT_BLKSIZE, kU32, 1);
  get(FATTR4_LAYOUT_ALIGNMENT, kU32, 1);
  get(FATTR4_SUPPATTR_EXCLCREAT, kBitmap, 1);
  get(FATTR4_CLONE_BLKSIZE, kU32, 2);
  get(FATTR4_CHANGE_ATTR_TYPE, kU32, 2);
  get(FATTR4_XATTR_SUPPORT, kBool, 2);  // RFC 8276 §8.1 (a 4.2 extension)
  return t;
}
constexpr std::array<AttrInfo, kNumAttrs> kTable = MakeTable();

bool Supported(uint32_t attr, uint32_t minor) {
  return attr < kNumAttrs && kTable[attr].shape != kNone && kTable[attr].minor <= minor;
}

void Trim(bitmap4* b) {
  while (!b->empty() && b->back() == 0) b->pop_back();
}

// Calls f(attr) for each set bit in order; stops at, and returns, f's first error.
template <typename F>
nfsstat4 ForEachBit(const bitmap4& b, F f) {
  for (uint32_t w = 0; w < b.size(); ++w) {
    for (uint32_t word = b[w]; word != 0; word &= word - 1) {
      nfsstat4 st = f(w * 32 + static_cast<uint32_t>(__builtin_ctz(word)));
      if (st != NFS4_OK) return st;
    }
  }
  return NFS4_OK;
}

const bitmap4& SupportedFor(uint32_t minor) {
  static const std::array<bitmap4, 3> kSupported = [] {
    std::array<bitmap4, 3> s;
    for (uint32_t m = 0; m < 3; ++m) {
      for (uint32_t a = 0; a < kNumAttrs; ++a) {
        if (Supported(a, m)) BitmapAdd(&s[m], a);
      }
    }
    return s;
  }();
  return kSupported[std::min(minor, 2u)];
}

void PutBitmap(Encoder& e, const bitmap4& b) {
  e.u32(static_cast<uint32_t>(b.size()));
  for (uint32_t w : b) e.u32(w);
}
void PutTime(Encoder& e, const meta::Timespec& t) {
  e.i64(t.sec);
  e.u32(t.nsec);
}
void PutString(Encoder& e, std::string_view s) {
  e.u32(static_cast<uint32_t>(s.size()));
  e.fixed(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

void EncodeOne(Encoder& e, uint32_t attr, const AttrSource& s, uint32_t minor) {
  const meta::Inode& ino = s.inode;
  const FsStats& fs = s.fs;
  switch (attr) {
    case FATTR4_SUPPORTED_ATTRS: PutBitmap(e, SupportedFor(minor)); break;
    case FATTR4_TYPE: e.i32(FtypeOf(ino.type)); break;
    case FATTR4_FH_EXPIRE_TYPE: e.u32(FH4_PERSISTENT); break;
    case FATTR4_CHANGE: e.u64(ino.change); break;
    case FATTR4_SIZE: e.u64(ino.size); break;
    case FATTR4_LINK_SUPPORT: e.boolean(true); break;
    case FATTR4_SYMLINK_SUPPORT: e.boolean(true); break;
    case FATTR4_NAMED_ATTR: e.boolean(false); break;
    case FATTR4_FSID: e.u64(s.fsid.major); e.u64(s.fsid.minor); break;
    case FATTR4_UNIQUE_HANDLES: e.boolean(true); break;
    case FATTR4_LEASE_TIME: e.u32(fs.lease_time); break;
    case FATTR4_RDATTR_ERROR: e.i32(NFS4_OK); break;
    case FATTR4_ACLSUPPORT: e.u32(0); break;
    case FATTR4_CANSETTIME: e.boolean(true); break;
    case FATTR4_CASE_INSENSITIVE: e.boolean(false); break;
    case FATTR4_CASE_PRESERVING: e.boolean(true); break;
    case FATTR4_CHOWN_RESTRICTED: e.boolean(true); break;
    case FATTR4_FILEHANDLE: PutString(e, s.fh); break;
    case FATTR4_FILEID: e.u64(ino.ino); break;
    case FATTR4_FILES_AVAIL: e.u64(fs.files_avail); break;
    case FATTR4_FILES_FREE: e.u64(fs.files_free); break;
    case FATTR4_FILES_TOTAL: e.u64(fs.files_total); break;
    case FATTR4_HOMOGENEOUS: e.boolean(true); break;
    case FATTR4_MAXFILESIZE: e.u64(fs.maxfilesize); break;
    case FATTR4_MAXLINK: e.u32(fs.maxlink); break;
    case FATTR4_MAXNAME: e.u32(fs.maxname); break;
    case FATTR4_MAXREAD: e.u64(fs.maxread); break;
    case FATTR4_MAXWRITE: e.u64(fs.maxwrite); break;
    case FATTR4_MODE: e.u32(ino.mode & 07777); break;  // §6.2.4: no other bits
    case FATTR4_NO_TRUNC: e.boolean(true); break;
    case FATTR4_NUMLINKS: e.u32(ino.nlink); break;
    case FATTR4_OWNER: PutString(e, std::to_string(ino.uid)); break;
    case FATTR4_OWNER_GROUP: PutString(e, std::to_string(ino.gid)); break;
    case FATTR4_RAWDEV: e.u32(ino.rdev_major); e.u32(ino.rdev_minor); break;
    case FATTR4_SPACE_AVAIL: e.u64(fs.space_avail); break;
    case FATTR4_SPACE_FREE: e.u64(fs.space_free); break;
    case FATTR4_SPACE_TOTAL: e.u64(fs.space_total); break;
    case FATTR4_SPACE_USED:
      // The data servers hold the real allocation; the MDS does not track it per write. Report
      // one copy's bytes in 4 KiB blocks (what du and ls -s show), never less than recorded.
      e.u64(std::max<uint64_t>(ino.space_used, (ino.size + 4095) / 4096 * 4096));
      break;
    case FATTR4_TIME_ACCESS: PutTime(e, ino.atime); break;
    case FATTR4_TIME_DELTA: PutTime(e, {0, 1}); break;  // times are kept in ns
    case FATTR4_TIME_METADATA: PutTime(e, ino.ctime); break;
    case FATTR4_TIME_MODIFY: PutTime(e, ino.mtime); break;
    case FATTR4_MOUNTED_ON_FILEID:
      e.u64(s.mounted_on_fileid != 0 ? s.mounted_on_fileid : ino.ino);
      break;
    case FATTR4_FS_LAYOUT_TYPES:
      e.u32(static_cast<uint32_t>(fs.layout_types.size()));
      for (layouttype4 t : fs.layout_types) e.i32(t);
      break;
    case FATTR4_LAYOUT_BLKSIZE: e.u32(fs.layout_blksize); break;
    case FATTR4_LAYOUT_ALIGNMENT: e.u32(fs.layout_alignment); break;
    case FATTR4_SUPPATTR_EXCLCREAT: PutBitmap(e, ExclCreatAttrs()); break;
    case FATTR4_CLONE_BLKSIZE: e.u32(fs.clone_blksize); break;
    // RFC 7862 §12.2.3: the change counter only grows. It is not bumped per data-server
    // WRITE, so the stronger VERSION_COUNTER would be untrue under pNFS.
    case FATTR4_CHANGE_ATTR_TYPE: e.i32(NFS4_CHANGE_TYPE_IS_MONOTONIC_INCR); break;
    // RFC 8276 §8.1: false until the xattr operations exist, so clients do not try them.
    case FATTR4_XATTR_SUPPORT: e.boolean(false); break;
  }
}

Bytes ToBytes(const Encoder& e) {
  auto s = std::make_shared<std::string>(e.Flatten());
  return Bytes::View(s->data(), s->size(), s);
}

// Reads one value of `shape` (VERIFY's walk); only its bounds are checked.
bool Skip(Decoder& d, Shape shape) {
  uint32_t u, n;
  uint64_t v;
  bool b;
  Bytes o;
  switch (shape) {
    case kU32: return d.u32(u);
    case kU64: return d.u64(v);
    case kBool: return d.boolean(b);
    case kFsid: return d.u64(v) && d.u64(v);
    case kTime: return d.u64(v) && d.u32(u);
    case kSpec: return d.u32(u) && d.u32(u);
    case kFh: return d.opaque(o, NFS4_FHSIZE);
    case kOwner: return d.opaque(o, xdr::kUnbounded);
    case kBitmap:
    case kU32Array:
      if (!d.array_len(n, xdr::kUnbounded)) return false;
      for (uint32_t i = 0; i < n; ++i) {
        if (!d.u32(u)) return false;
      }
      return true;
    case kSetTime:
    case kNone: return false;
  }
  return false;
}

bool GetTime(Decoder& d, meta::Timespec* t) { return d.i64(t->sec) && d.u32(t->nsec); }

// settime4 (§5.8.2.37): a discriminant other than 0/1 is malformed.
bool GetSetTime(Decoder& d, SetTime* t) {
  uint32_t how;
  if (!d.u32(how) || how > SET_TO_CLIENT_TIME4) return false;
  t->server_time = how == SET_TO_SERVER_TIME4;
  return t->server_time || GetTime(d, &t->time);
}

// A decimal id: digits only, no leading zero (the kernel would read "010" as octal), and not
// (uint32_t)-1, which chown reads as "unchanged".
bool ParseId(std::string_view s, uint32_t* id) {
  if (s.empty() || s.size() > 10 || (s[0] == '0' && s.size() > 1)) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v >= 0xffffffffu) return false;
  *id = static_cast<uint32_t>(v);
  return true;
}

// Decoded fattr4s are memory; a file-backed one (never decoded) reads as empty.
Decoder ValuesOf(const fattr4& f) {
  if (f.attr_vals.is_file()) return Decoder(nullptr, 0);
  return Decoder(f.attr_vals.data, f.attr_vals.size);
}

}  // namespace

void BitmapAdd(bitmap4* b, uint32_t bit) {
  if (b->size() <= bit / 32) b->resize(bit / 32 + 1, 0);
  (*b)[bit / 32] |= 1u << (bit % 32);
}

bitmap4 SupportedAttrs(uint32_t minorversion) { return SupportedFor(minorversion); }

bitmap4 ExclCreatAttrs() {
  bitmap4 b;
  for (uint32_t a = 0; a < kNumAttrs; ++a) {
    if (kTable[a].access == kGetSet) BitmapAdd(&b, a);
  }
  return b;
}

std::optional<meta::FileType> FileTypeOf(nfs_ftype4 t) {
  if (t < NF4REG || t > NF4FIFO) return std::nullopt;
  return static_cast<meta::FileType>(t);
}

nfsstat4 AttrMaskFor(const bitmap4& want, uint32_t minorversion, bitmap4* mask) {
  const bitmap4& sup = SupportedFor(minorversion);
  mask->assign(std::min(want.size(), sup.size()), 0);
  for (size_t w = 0; w < mask->size(); ++w) (*mask)[w] = want[w] & sup[w];
  Trim(mask);
  if (BitmapHas(*mask, FATTR4_TIME_ACCESS_SET) || BitmapHas(*mask, FATTR4_TIME_MODIFY_SET)) {
    return NFS4ERR_INVAL;  // §5.5: set-only
  }
  return NFS4_OK;
}

nfsstat4 EncodeAttrValues(const bitmap4& mask, const AttrSource& src, uint32_t minorversion,
                          xdr::Encoder& e) {
  if (BitmapHas(mask, FATTR4_FILEHANDLE) && src.fh.size() > NFS4_FHSIZE) {
    return NFS4ERR_SERVERFAULT;
  }
  (void)ForEachBit(mask, [&](uint32_t a) {
    EncodeOne(e, a, src, minorversion);
    return NFS4_OK;
  });
  return NFS4_OK;
}

nfsstat4 EncodeAttrs(const bitmap4& want, const AttrSource& src, uint32_t minorversion,
                     fattr4* out) {
  bitmap4 mask;
  nfsstat4 st = AttrMaskFor(want, minorversion, &mask);
  if (st != NFS4_OK) return st;
  Encoder e;
  st = EncodeAttrValues(mask, src, minorversion, e);
  if (st != NFS4_OK) return st;
  out->attrmask = std::move(mask);
  out->attr_vals = ToBytes(e);
  return NFS4_OK;
}

void EncodeRdattrError(nfsstat4 err, fattr4* out) {
  out->attrmask.clear();
  BitmapAdd(&out->attrmask, FATTR4_RDATTR_ERROR);
  Encoder e;
  e.i32(err);
  out->attr_vals = ToBytes(e);
}

nfsstat4 DecodeSettable(const fattr4& in, Settable* out, bitmap4* set) {
  *out = Settable{};
  bitmap4 mask = in.attrmask;
  Trim(&mask);
  nfsstat4 st = ForEachBit(mask, [](uint32_t a) {
    return Supported(a, 2) ? NFS4_OK : NFS4ERR_ATTRNOTSUPP;
  });
  if (st != NFS4_OK) return st;
  st = ForEachBit(mask, [](uint32_t a) {
    return kTable[a].access == kGet ? NFS4ERR_INVAL : NFS4_OK;  // §18.30.4
  });
  if (st != NFS4_OK) return st;

  Decoder d = ValuesOf(in);
  Settable s;
  Bytes owner, group;
  st = ForEachBit(mask, [&](uint32_t a) {
    bool ok = false;
    switch (a) {
      case FATTR4_SIZE: ok = d.u64(s.size.emplace()); break;
      case FATTR4_MODE: ok = d.u32(s.mode.emplace()); break;
      case FATTR4_OWNER: ok = d.opaque(owner, xdr::kUnbounded); break;
      case FATTR4_OWNER_GROUP: ok = d.opaque(group, xdr::kUnbounded); break;
      case FATTR4_TIME_ACCESS_SET: ok = GetSetTime(d, &s.atime.emplace()); break;
      case FATTR4_TIME_MODIFY_SET: ok = GetSetTime(d, &s.mtime.emplace()); break;
    }
    return ok ? NFS4_OK : NFS4ERR_BADXDR;
  });
  if (st != NFS4_OK) return st;
  if (d.remaining() != 0) return NFS4ERR_BADXDR;

  if (s.mode && (*s.mode & ~07777u) != 0) return NFS4ERR_INVAL;  // §6.2.4
  for (const auto* t : {&s.atime, &s.mtime}) {
    if (*t && !(*t)->server_time && (*t)->time.nsec > 999999999) return NFS4ERR_INVAL;
  }
  if (BitmapHas(mask, FATTR4_OWNER) && !ParseId(owner.view(), &s.uid.emplace())) {
    return NFS4ERR_BADOWNER;
  }
  if (BitmapHas(mask, FATTR4_OWNER_GROUP) && !ParseId(group.view(), &s.gid.emplace())) {
    return NFS4ERR_BADOWNER;
  }
  *out = std::move(s);
  *set = std::move(mask);
  return NFS4_OK;
}

nfsstat4 CompareAttrs(const fattr4& given, const AttrSource& src, uint32_t minorversion,
                      bool* same) {
  bitmap4 mask = given.attrmask;
  Trim(&mask);
  nfsstat4 st = ForEachBit(mask, [&](uint32_t a) {
    return Supported(a, minorversion) ? NFS4_OK : NFS4ERR_ATTRNOTSUPP;
  });
  if (st != NFS4_OK) return st;
  st = ForEachBit(mask, [](uint32_t a) {  // §18.31.3, §5.5
    return a == FATTR4_RDATTR_ERROR || kTable[a].access == kSet ? NFS4ERR_INVAL : NFS4_OK;
  });
  if (st != NFS4_OK) return st;

  Decoder d = ValuesOf(given);
  st = ForEachBit(mask, [&](uint32_t a) {
    if (a != FATTR4_MODE) return Skip(d, kTable[a].shape) ? NFS4_OK : NFS4ERR_BADXDR;
    uint32_t mode;
    if (!d.u32(mode)) return NFS4ERR_BADXDR;
    return (mode & ~07777u) != 0 ? NFS4ERR_INVAL : NFS4_OK;  // §6.2.4
  });
  if (st != NFS4_OK) return st;
  if (d.remaining() != 0) return NFS4ERR_BADXDR;

  fattr4 ours;
  st = EncodeAttrs(mask, src, minorversion, &ours);
  if (st != NFS4_OK) return st;
  *same = ours.attr_vals == given.attr_vals;
  return NFS4_OK;
}

}  // namespace loom::nfs4
