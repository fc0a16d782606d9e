// NFSv4 file attributes (fattr4): GETATTR/READDIR encoding, SETATTR/CREATE/OPEN decoding and
// VERIFY/NVERIFY comparison (RFC 8881 §5, §18.7, §18.30, §18.31; RFC 7862 §12.2 for 4.2).
//
// An fattr4 is a bitmap plus the values of the set bits, XDR-encoded in bit order (§3.3.7).
// Owners travel as decimal ids ("1000"): the Linux client's idmapper takes numeric strings
// without idmapd, and sends them back the same way. Stateless and thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "meta/records.h"
#include "xdr/nfs4.h"

namespace loom::nfs4 {

// File-system-wide values (§5.8.2). Defaults are what loom-mds serves unless configured.
struct FsStats {
  // Refreshed by loom-mds's background tick while GETATTRs read them: each is atomic (the
  // six need not be one snapshot: FSSTAT-like values are advisory).
  std::atomic<uint64_t> space_total{0}, space_free{0}, space_avail{0};
  std::atomic<uint64_t> files_total{0}, files_free{0}, files_avail{0};
  uint32_t lease_time = 90;                   // seconds
  uint64_t maxread = 1u << 20, maxwrite = 1u << 20;
  uint64_t maxfilesize = NFS4_INT64_MAX;      // off_t's limit
  uint32_t maxname = meta::kMaxNameLen;
  uint32_t maxlink = 0xfffffff0u;             // meta::kMaxLink
  std::vector<layouttype4> layout_types;      // fs_layout_types; empty: no pNFS
  uint32_t layout_blksize = 0;
  uint32_t layout_alignment = 0;
  uint32_t clone_blksize = 0;                 // 0: no CLONE
};

// Everything one object's attributes are computed from. A view: the referenced values must
// outlive the call.
struct AttrSource {
  const meta::Inode& inode;
  std::string_view fh;              // the object's file handle as sent on the wire
  fsid4 fsid{};
  uint64_t mounted_on_fileid = 0;   // 0: same as fileid (not a mount point, §5.8.2.19)
  const FsStats& fs;
};

// Bitmap words (§3.3.7): bit n is word n/32, bit n%32.
inline bool BitmapHas(const bitmap4& b, uint32_t bit) {
  return bit / 32 < b.size() && (b[bit / 32] >> (bit % 32)) & 1;
}
void BitmapAdd(bitmap4* b, uint32_t bit);

// supported_attrs for a minor version (4.0, 4.1, 4.2; larger is treated as 2).
bitmap4 SupportedAttrs(uint32_t minorversion);
// suppattr_exclcreat (§5.8.1.14): settable with an EXCLUSIVE4_1 create. The times are left
// out, so an implementation may keep the create verifier in atime/mtime (§18.16.3).
bitmap4 ExclCreatAttrs();

inline nfs_ftype4 FtypeOf(meta::FileType t) { return static_cast<nfs_ftype4>(t); }
// The meta type of a createtype4/nfs_ftype4; nullopt for NF4ATTRDIR, NF4NAMEDATTR, junk.
std::optional<meta::FileType> FileTypeOf(nfs_ftype4 t);

// GETATTR/READDIR (§18.7.3): the requested, supported attributes in bit order; unsupported
// bits are left out of out->attrmask. NFS4ERR_INVAL if a set-only attribute is asked (§5.5).
// rdattr_error, if asked, is NFS4_OK.
nfsstat4 EncodeAttrs(const bitmap4& want, const AttrSource& src, uint32_t minorversion,
                     fattr4* out);
// EncodeAttrs in two steps, for a READDIR that encodes the same request for many entries:
// the attribute mask (the requested, supported bits; NFS4ERR_INVAL for a set-only one), then
// the values of those attributes appended to e.
nfsstat4 AttrMaskFor(const bitmap4& want, uint32_t minorversion, bitmap4* mask);
nfsstat4 EncodeAttrValues(const bitmap4& mask, const AttrSource& src, uint32_t minorversion,
                          xdr::Encoder& e);
// A READDIR entry whose attributes cannot be read (§18.23.3): just rdattr_error = err. Only
// when the client asked for rdattr_error; otherwise READDIR itself fails with err.
void EncodeRdattrError(nfsstat4 err, fattr4* out);

// A settime4 (§5.8.2.37): the server's clock, or the client's time.
struct SetTime {
  bool server_time = false;
  meta::Timespec time;   // when !server_time
};

struct Settable {
  std::optional<uint64_t> size;
  std::optional<uint32_t> mode;   // 07777 bits
  std::optional<uint32_t> uid, gid;
  std::optional<SetTime> atime, mtime;
};

// SETATTR/CREATE/OPEN createattrs (§18.30.3). Errors, in this order: NFS4ERR_ATTRNOTSUPP for
// a bit not supported; NFS4ERR_INVAL for a read-only attribute (§5.5); NFS4ERR_BADXDR for
// truncated values or trailing bytes; NFS4ERR_INVAL for mode bits outside 07777 (§6.2.4) or
// nseconds > 999999999; NFS4ERR_BADOWNER for an owner that is not a decimal id. On success
// *set is the attributes given (SETATTR4res attrsset), trailing zero words dropped.
nfsstat4 DecodeSettable(const fattr4& in, Settable* out, bitmap4* set);

// VERIFY/NVERIFY (§18.31.3, §18.15.3): NFS4ERR_ATTRNOTSUPP for an unsupported bit,
// NFS4ERR_INVAL for rdattr_error or a set-only attribute, or mode bits outside 07777;
// NFS4ERR_BADXDR for malformed values. Else *same = our encoding equals given.attr_vals.
nfsstat4 CompareAttrs(const fattr4& given, const AttrSource& src, uint32_t minorversion,
                      bool* same);

}  // namespace loom::nfs4
