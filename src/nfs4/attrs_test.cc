#include "nfs4/attrs.h"

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>

namespace loom::nfs4 {
namespace {

// A small big-endian reader and writer of our own, so the tests do not trust xdr::Encoder.
class Reader {
 public:
  explicit Reader(const Bytes& b) : s_(b.view()) {}
  uint32_t U32() {
    if (pos_ + 4 > s_.size()) {
      ADD_FAILURE() << "read past the end at " << pos_;
      pos_ = s_.size();
      return 0;
    }
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(s_[pos_++]);
    return v;
  }
  uint64_t U64() {
    uint64_t hi = U32();
    return (hi << 32) | U32();
  }
  bool Bool() {
    uint32_t v = U32();
    EXPECT_LE(v, 1u);
    return v != 0;
  }
  std::string Opaque() {
    uint32_t n = U32();
    size_t padded = (n + 3) & ~size_t{3};
    if (pos_ + padded > s_.size()) {
      ADD_FAILURE() << "opaque past the end";
      pos_ = s_.size();
      return "";
    }
    std::string v(s_.substr(pos_, n));
    for (size_t i = n; i < padded; ++i) EXPECT_EQ(s_[pos_ + i], 0) << "nonzero pad";
    pos_ += padded;
    return v;
  }
  std::vector<uint32_t> Words() {
    std::vector<uint32_t> w(U32());
    for (auto& x : w) x = U32();
    return w;
  }
  bool AtEnd() const { return pos_ == s_.size(); }

 private:
  std::string_view s_;
  size_t pos_ = 0;
};

class Writer {
 public:
  Writer& U32(uint32_t v) {
    for (int i = 3; i >= 0; --i) s_.push_back(static_cast<char>(v >> (8 * i)));
    return *this;
  }
  Writer& U64(uint64_t v) {
    return U32(static_cast<uint32_t>(v >> 32)).U32(static_cast<uint32_t>(v));
  }
  Writer& Str(std::string_view v) {
    U32(static_cast<uint32_t>(v.size()));
    s_.append(v);
    s_.append((4 - v.size() % 4) % 4, '\0');
    return *this;
  }
  Writer& Raw(std::string_view v) {
    s_.append(v);
    return *this;
  }
  fattr4 Attrs(std::initializer_list<uint32_t> bits) const {
    fattr4 f;
    for (uint32_t b : bits) BitmapAdd(&f.attrmask, b);
    f.attr_vals = Bytes::Copy(s_);
    return f;
  }

 private:
  std::string s_;
};

bitmap4 Bits(std::initializer_list<uint32_t> bits) {
  bitmap4 b;
  for (uint32_t x : bits) BitmapAdd(&b, x);
  return b;
}

bitmap4 Without(bitmap4 b, std::initializer_list<uint32_t> bits) {
  for (uint32_t x : bits) {
    if (x / 32 < b.size()) b[x / 32] &= ~(1u << (x % 32));
  }
  while (!b.empty() && b.back() == 0) b.pop_back();
  return b;
}

class AttrsTest : public ::testing::Test {
 protected:
  AttrsTest() {
    ino.ino = 4242;
    ino.type = meta::FileType::kReg;
    ino.mode = 0644;
    ino.uid = 1000;
    ino.gid = 100;
    ino.nlink = 3;
    ino.size = 0x123456789aULL;
    ino.space_used = 1u << 20;
    ino.atime = {1700000000, 11};
    ino.mtime = {1700000001, 22};
    ino.ctime = {-5, 999999999};
    ino.change = 77;
    ino.rdev_major = 8;
    ino.rdev_minor = 1;
    fs.space_total = 1000;
    fs.space_free = 600;
    fs.space_avail = 500;
    fs.files_total = 100;
    fs.files_free = 60;
    fs.files_avail = 50;
    fs.lease_time = 45;
    fs.maxread = 1 << 21;
    fs.maxwrite = 1 << 22;
    fs.maxfilesize = 1ULL << 50;
    fs.maxname = 255;
    fs.maxlink = 1000;
    fs.layout_types = {LAYOUT4_FLEX_FILES};
    fs.layout_blksize = 4096;
    fs.layout_alignment = 512;
    fs.clone_blksize = 0;
  }
  AttrSource Src() const { return {.inode = ino, .fh = fh, .fsid = {7, 9}, .fs = fs}; }

  meta::Inode ino;
  FsStats fs;
  std::string fh = "hndl5";  // 5 bytes: exercises padding
};

TEST_F(AttrsTest, SupportedSetsPerMinorVersion) {
  bitmap4 v0 = SupportedAttrs(0), v1 = SupportedAttrs(1), v2 = SupportedAttrs(2);
  for (uint32_t a : {FATTR4_SUPPORTED_ATTRS, FATTR4_TYPE, FATTR4_FH_EXPIRE_TYPE, FATTR4_CHANGE,
                     FATTR4_SIZE, FATTR4_FSID, FATTR4_FILEHANDLE, FATTR4_RDATTR_ERROR,
                     FATTR4_MODE, FATTR4_OWNER, FATTR4_OWNER_GROUP, FATTR4_TIME_ACCESS_SET,
                     FATTR4_TIME_MODIFY_SET, FATTR4_MOUNTED_ON_FILEID}) {
    EXPECT_TRUE(BitmapHas(v0, a) && BitmapHas(v1, a) && BitmapHas(v2, a)) << a;
  }
  for (uint32_t a : {FATTR4_ACL, FATTR4_ARCHIVE, FATTR4_FS_LOCATIONS, FATTR4_HIDDEN,
                     FATTR4_MIMETYPE, FATTR4_QUOTA_USED, FATTR4_TIME_CREATE,
                     FATTR4_LAYOUT_TYPES, FATTR4_MODE_UMASK}) {
    EXPECT_FALSE(BitmapHas(v2, a)) << a;
  }
  for (uint32_t a : {FATTR4_FS_LAYOUT_TYPES, FATTR4_LAYOUT_BLKSIZE, FATTR4_LAYOUT_ALIGNMENT,
                     FATTR4_SUPPATTR_EXCLCREAT}) {
    EXPECT_FALSE(BitmapHas(v0, a)) << a;
    EXPECT_TRUE(BitmapHas(v1, a) && BitmapHas(v2, a)) << a;
  }
  for (uint32_t a : {FATTR4_CLONE_BLKSIZE, FATTR4_CHANGE_ATTR_TYPE}) {
    EXPECT_FALSE(BitmapHas(v1, a)) << a;
    EXPECT_TRUE(BitmapHas(v2, a)) << a;
  }
  EXPECT_EQ(v0.size(), 2u);
  EXPECT_EQ(v1.size(), 3u);
  EXPECT_EQ(SupportedAttrs(7), v2);
  EXPECT_EQ(ExclCreatAttrs(),
            Bits({FATTR4_SIZE, FATTR4_MODE, FATTR4_OWNER, FATTR4_OWNER_GROUP}));
}

TEST_F(AttrsTest, FullGetattrDecodesFieldByField) {
  bitmap4 want = Without(SupportedAttrs(2), {FATTR4_TIME_ACCESS_SET, FATTR4_TIME_MODIFY_SET});
  fattr4 out;
  ASSERT_EQ(EncodeAttrs(want, Src(), 2, &out), NFS4_OK);
  EXPECT_EQ(out.attrmask, want);
  EXPECT_EQ(out.attr_vals.size % 4, 0u);

  Reader r(out.attr_vals);
  EXPECT_EQ(r.Words(), SupportedAttrs(2));              // 0 supported_attrs
  EXPECT_EQ(r.U32(), uint32_t{NF4REG});                // 1 type
  EXPECT_EQ(r.U32(), FH4_PERSISTENT);                   // 2 fh_expire_type
  EXPECT_EQ(r.U64(), 77u);                              // 3 change
  EXPECT_EQ(r.U64(), 0x123456789aULL);                  // 4 size
  EXPECT_TRUE(r.Bool());                                // 5 link_support
  EXPECT_TRUE(r.Bool());                                // 6 symlink_support
  EXPECT_FALSE(r.Bool());                               // 7 named_attr
  EXPECT_EQ(r.U64(), 7u);                               // 8 fsid
  EXPECT_EQ(r.U64(), 9u);
  EXPECT_TRUE(r.Bool());                                // 9 unique_handles
  EXPECT_EQ(r.U32(), 45u);                              // 10 lease_time
  EXPECT_EQ(r.U32(), uint32_t{NFS4_OK});                // 11 rdattr_error
  EXPECT_EQ(r.U32(), 0u);                               // 13 aclsupport
  EXPECT_TRUE(r.Bool());                                // 15 cansettime
  EXPECT_FALSE(r.Bool());                               // 16 case_insensitive
  EXPECT_TRUE(r.Bool());                                // 17 case_preserving
  EXPECT_TRUE(r.Bool());                                // 18 chown_restricted
  EXPECT_EQ(r.Opaque(), "hndl5");                       // 19 filehandle
  EXPECT_EQ(r.U64(), 4242u);                            // 20 fileid
  EXPECT_EQ(r.U64(), 50u);                              // 21 files_avail
  EXPECT_EQ(r.U64(), 60u);                              // 22 files_free
  EXPECT_EQ(r.U64(), 100u);                             // 23 files_total
  EXPECT_TRUE(r.Bool());                                // 26 homogeneous
  EXPECT_EQ(r.U64(), 1ULL << 50);                       // 27 maxfilesize
  EXPECT_EQ(r.U32(), 1000u);                            // 28 maxlink
  EXPECT_EQ(r.U32(), 255u);                             // 29 maxname
  EXPECT_EQ(r.U64(), 1u << 21);                         // 30 maxread
  EXPECT_EQ(r.U64(), 1u << 22);                         // 31 maxwrite
  EXPECT_EQ(r.U32(), 0644u);                            // 33 mode
  EXPECT_TRUE(r.Bool());                                // 34 no_trunc
  EXPECT_EQ(r.U32(), 3u);                               // 35 numlinks
  EXPECT_EQ(r.Opaque(), "1000");                        // 36 owner
  EXPECT_EQ(r.Opaque(), "100");                         // 37 owner_group
  EXPECT_EQ(r.U32(), 8u);                               // 41 rawdev
  EXPECT_EQ(r.U32(), 1u);
  EXPECT_EQ(r.U64(), 500u);                             // 42 space_avail
  EXPECT_EQ(r.U64(), 600u);                             // 43 space_free
  EXPECT_EQ(r.U64(), 1000u);                            // 44 space_total
  // 45 space_used: one copy of the size in 4 KiB blocks (the recorded 1 MiB is less)
  EXPECT_EQ(r.U64(), (0x123456789aULL + 4095) / 4096 * 4096);
  EXPECT_EQ(r.U64(), 1700000000u);                      // 47 time_access
  EXPECT_EQ(r.U32(), 11u);
  EXPECT_EQ(r.U64(), 0u);                               // 51 time_delta
  EXPECT_EQ(r.U32(), 1u);
  EXPECT_EQ(static_cast<int64_t>(r.U64()), -5);         // 52 time_metadata
  EXPECT_EQ(r.U32(), 999999999u);
  EXPECT_EQ(r.U64(), 1700000001u);                      // 53 time_modify
  EXPECT_EQ(r.U32(), 22u);
  EXPECT_EQ(r.U64(), 4242u);                            // 55 mounted_on_fileid
  EXPECT_EQ(r.Words(), std::vector<uint32_t>{4});       // 62 fs_layout_types
  EXPECT_EQ(r.U32(), 4096u);                            // 65 layout_blksize
  EXPECT_EQ(r.U32(), 512u);                             // 66 layout_alignment
  EXPECT_EQ(r.Words(), ExclCreatAttrs());               // 75 suppattr_exclcreat
  EXPECT_EQ(r.U32(), 0u);                               // 77 clone_blksize
  EXPECT_EQ(r.U32(), uint32_t{NFS4_CHANGE_TYPE_IS_MONOTONIC_INCR});  // 79 change_attr_type
  EXPECT_EQ(r.U32(), 0u);                               // 82 xattr_support: false
  EXPECT_TRUE(r.AtEnd());
}

TEST_F(AttrsTest, UnknownAndUnsupportedBitsAreLeftOut) {
  // Everything but the set-only bits, plus bits no version defines and extra words.
  bitmap4 want = {0xffffffffu, 0xffffffffu & ~(1u << 16) & ~(1u << 22), 0xffffffffu,
                  0xffffffffu, 0x1234};
  for (uint32_t minor : {0u, 1u, 2u}) {
    fattr4 out;
    ASSERT_EQ(EncodeAttrs(want, Src(), minor, &out), NFS4_OK);
    EXPECT_EQ(out.attrmask,
              Without(SupportedAttrs(minor), {FATTR4_TIME_ACCESS_SET, FATTR4_TIME_MODIFY_SET}))
        << minor;
  }
  fattr4 out;
  ASSERT_EQ(EncodeAttrs(Bits({FATTR4_ACL, FATTR4_ARCHIVE, FATTR4_QUOTA_USED, 200}), Src(), 2,
                        &out),
            NFS4_OK);
  EXPECT_TRUE(out.attrmask.empty());
  EXPECT_EQ(out.attr_vals.size, 0u);
  // A 4.2 attribute asked over 4.1 is not returned.
  ASSERT_EQ(EncodeAttrs(Bits({FATTR4_SIZE, FATTR4_CLONE_BLKSIZE}), Src(), 1, &out), NFS4_OK);
  EXPECT_EQ(out.attrmask, Bits({FATTR4_SIZE}));
  EXPECT_EQ(out.attr_vals.size, 8u);
}

TEST_F(AttrsTest, GetattrErrorsAndSpecialValues) {
  fattr4 out;
  EXPECT_EQ(EncodeAttrs(Bits({FATTR4_SIZE, FATTR4_TIME_MODIFY_SET}), Src(), 1, &out),
            NFS4ERR_INVAL);
  EXPECT_EQ(EncodeAttrs(Bits({FATTR4_TIME_ACCESS_SET}), Src(), 1, &out), NFS4ERR_INVAL);
  std::string big(NFS4_FHSIZE + 1, 'x');
  AttrSource s{.inode = ino, .fh = big, .fs = fs};
  EXPECT_EQ(EncodeAttrs(Bits({FATTR4_FILEHANDLE}), s, 1, &out), NFS4ERR_SERVERFAULT);

  // Explicit mounted_on_fileid; directory type; mode never carries more than 07777.
  ino.type = meta::FileType::kDir;
  ino.mode = 0171777;
  AttrSource m{.inode = ino, .fh = fh, .mounted_on_fileid = 9, .fs = fs};
  ASSERT_EQ(EncodeAttrs(Bits({FATTR4_TYPE, FATTR4_MODE, FATTR4_MOUNTED_ON_FILEID}), m, 1, &out),
            NFS4_OK);
  Reader r(out.attr_vals);
  EXPECT_EQ(r.U32(), uint32_t{NF4DIR});
  EXPECT_EQ(r.U32(), 01777u);
  EXPECT_EQ(r.U64(), 9u);
  EXPECT_TRUE(r.AtEnd());

  // No layout types: an empty array.
  fs.layout_types.clear();
  ASSERT_EQ(EncodeAttrs(Bits({FATTR4_FS_LAYOUT_TYPES}), Src(), 1, &out), NFS4_OK);
  EXPECT_EQ(Reader(out.attr_vals).Words(), std::vector<uint32_t>{});

  EncodeRdattrError(NFS4ERR_ACCESS, &out);
  EXPECT_EQ(out.attrmask, Bits({FATTR4_RDATTR_ERROR}));
  Reader e(out.attr_vals);
  EXPECT_EQ(e.U32(), uint32_t{NFS4ERR_ACCESS});
  EXPECT_TRUE(e.AtEnd());
}

TEST(FileTypes, Conversions) {
  EXPECT_EQ(FtypeOf(meta::FileType::kLnk), NF4LNK);
  EXPECT_EQ(FtypeOf(meta::FileType::kFifo), NF4FIFO);
  EXPECT_EQ(FileTypeOf(NF4SOCK), meta::FileType::kSock);
  EXPECT_EQ(FileTypeOf(NF4BLK), meta::FileType::kBlk);
  EXPECT_EQ(FileTypeOf(NF4ATTRDIR), std::nullopt);
  EXPECT_EQ(FileTypeOf(NF4NAMEDATTR), std::nullopt);
  EXPECT_EQ(FileTypeOf(static_cast<nfs_ftype4>(0)), std::nullopt);
}

TEST(DecodeSettable, AllSettableAttributes) {
  fattr4 in = Writer()
                  .U64(4096)                     // size
                  .U32(04755)                    // mode
                  .Str("1000")                   // owner
                  .Str("0")                      // owner_group
                  .U32(SET_TO_SERVER_TIME4)      // time_access_set
                  .U32(SET_TO_CLIENT_TIME4)      // time_modify_set
                  .U64(static_cast<uint64_t>(-3))
                  .U32(500)
                  .Attrs({FATTR4_SIZE, FATTR4_MODE, FATTR4_OWNER, FATTR4_OWNER_GROUP,
                          FATTR4_TIME_ACCESS_SET, FATTR4_TIME_MODIFY_SET});
  in.attrmask.push_back(0);  // a trailing zero word is harmless
  Settable s;
  bitmap4 set;
  ASSERT_EQ(DecodeSettable(in, &s, &set), NFS4_OK);
  EXPECT_EQ(s.size, 4096u);
  EXPECT_EQ(s.mode, 04755u);
  EXPECT_EQ(s.uid, 1000u);
  EXPECT_EQ(s.gid, 0u);
  ASSERT_TRUE(s.atime && s.mtime);
  EXPECT_TRUE(s.atime->server_time);
  EXPECT_FALSE(s.mtime->server_time);
  EXPECT_EQ(s.mtime->time, (meta::Timespec{-3, 500}));
  EXPECT_EQ(set, Bits({FATTR4_SIZE, FATTR4_MODE, FATTR4_OWNER, FATTR4_OWNER_GROUP,
                       FATTR4_TIME_ACCESS_SET, FATTR4_TIME_MODIFY_SET}));

  // Only what is given is set; an empty fattr4 sets nothing.
  ASSERT_EQ(DecodeSettable(Writer().U32(0600).Attrs({FATTR4_MODE}), &s, &set), NFS4_OK);
  EXPECT_EQ(s.mode, 0600u);
  EXPECT_FALSE(s.size || s.uid || s.gid || s.atime || s.mtime);
  ASSERT_EQ(DecodeSettable(fattr4{}, &s, &set), NFS4_OK);
  EXPECT_TRUE(set.empty());
  EXPECT_FALSE(s.mode);
}

TEST(DecodeSettable, MalformedValuesAreBadXdr) {
  Settable s;
  bitmap4 set;
  auto dec = [&](const fattr4& f) { return DecodeSettable(f, &s, &set); };
  EXPECT_EQ(dec(Writer().Attrs({FATTR4_MODE})), NFS4ERR_BADXDR);                // empty
  EXPECT_EQ(dec(Writer().Raw("ab").Attrs({FATTR4_MODE})), NFS4ERR_BADXDR);      // 2 bytes
  EXPECT_EQ(dec(Writer().U32(1).Attrs({FATTR4_SIZE})), NFS4ERR_BADXDR);         // half u64
  EXPECT_EQ(dec(Writer().U32(0644).U32(0).Attrs({FATTR4_MODE})), NFS4ERR_BADXDR);  // trailing
  EXPECT_EQ(dec(Writer().U32(10).Raw("1000").Attrs({FATTR4_OWNER})), NFS4ERR_BADXDR);
  EXPECT_EQ(dec(Writer().U32(0xffffffffu).Attrs({FATTR4_OWNER})), NFS4ERR_BADXDR);
  EXPECT_EQ(dec(Writer().U32(2).Attrs({FATTR4_TIME_MODIFY_SET})), NFS4ERR_BADXDR);
  EXPECT_EQ(dec(Writer().U32(1).U64(5).Attrs({FATTR4_TIME_MODIFY_SET})), NFS4ERR_BADXDR);
  // The bitmap names two attributes, the values hold one.
  EXPECT_EQ(dec(Writer().U64(1).Attrs({FATTR4_SIZE, FATTR4_MODE})), NFS4ERR_BADXDR);
  // Nothing is reported as set on failure.
  EXPECT_FALSE(s.mode);
}

TEST(DecodeSettable, UnsupportedAndReadOnly) {
  Settable s;
  bitmap4 set;
  auto dec = [&](const fattr4& f) { return DecodeSettable(f, &s, &set); };
  EXPECT_EQ(dec(Writer().U32(0).Attrs({FATTR4_ACL})), NFS4ERR_ATTRNOTSUPP);
  EXPECT_EQ(dec(Writer().U32(1).Attrs({FATTR4_HIDDEN})), NFS4ERR_ATTRNOTSUPP);
  EXPECT_EQ(dec(Writer().Attrs({FATTR4_MODE_UMASK})), NFS4ERR_ATTRNOTSUPP);
  EXPECT_EQ(dec(Writer().Attrs({300})), NFS4ERR_ATTRNOTSUPP);
  // Unsupported wins over read-only, read-only over bad XDR.
  EXPECT_EQ(dec(Writer().Attrs({FATTR4_TYPE, FATTR4_ARCHIVE})), NFS4ERR_ATTRNOTSUPP);
  EXPECT_EQ(dec(Writer().U32(0644).Attrs({FATTR4_TYPE, FATTR4_MODE})), NFS4ERR_INVAL);
  for (uint32_t ro : {FATTR4_TYPE, FATTR4_CHANGE, FATTR4_FILEID, FATTR4_TIME_MODIFY,
                      FATTR4_TIME_METADATA, FATTR4_NUMLINKS, FATTR4_SUPPATTR_EXCLCREAT,
                      FATTR4_RDATTR_ERROR}) {
    EXPECT_EQ(dec(Writer().U64(0).Attrs({ro})), NFS4ERR_INVAL) << ro;
  }
  // Values out of range.
  EXPECT_EQ(dec(Writer().U32(0100644).Attrs({FATTR4_MODE})), NFS4ERR_INVAL);
  EXPECT_EQ(dec(Writer().U32(1).U64(0).U32(1000000000).Attrs({FATTR4_TIME_ACCESS_SET})),
            NFS4ERR_INVAL);
}

TEST(DecodeSettable, Owners) {
  Settable s;
  bitmap4 set;
  for (const char* bad : {"alice", "alice@example.com", "1000@example.com", "", "010", "-1",
                          "+5", " 1", "1 ", "4294967295", "99999999999", "0x10"}) {
    EXPECT_EQ(DecodeSettable(Writer().Str(bad).Attrs({FATTR4_OWNER}), &s, &set),
              NFS4ERR_BADOWNER) << bad;
    EXPECT_EQ(DecodeSettable(Writer().Str(bad).Attrs({FATTR4_OWNER_GROUP}), &s, &set),
              NFS4ERR_BADOWNER) << bad;
  }
  ASSERT_EQ(DecodeSettable(Writer().Str("4294967294").Str("65534")
                               .Attrs({FATTR4_OWNER, FATTR4_OWNER_GROUP}), &s, &set),
            NFS4_OK);
  EXPECT_EQ(s.uid, 4294967294u);
  EXPECT_EQ(s.gid, 65534u);
}

TEST_F(AttrsTest, VerifySameAndDifferent) {
  bitmap4 mask = Bits({FATTR4_TYPE, FATTR4_CHANGE, FATTR4_SIZE, FATTR4_FSID,
                       FATTR4_FILEHANDLE, FATTR4_MODE, FATTR4_OWNER, FATTR4_TIME_MODIFY,
                       FATTR4_SUPPORTED_ATTRS});
  fattr4 given;
  ASSERT_EQ(EncodeAttrs(mask, Src(), 2, &given), NFS4_OK);
  bool same = false;
  ASSERT_EQ(CompareAttrs(given, Src(), 2, &same), NFS4_OK);
  EXPECT_TRUE(same);

  ino.size += 1;
  ASSERT_EQ(CompareAttrs(given, Src(), 2, &same), NFS4_OK);
  EXPECT_FALSE(same);
  ino.size -= 1;
  ino.uid = 1001;  // owner "1001" vs "1000": same length, other bytes
  ASSERT_EQ(CompareAttrs(given, Src(), 2, &same), NFS4_OK);
  EXPECT_FALSE(same);
  ino.uid = 1000;

  // A hand-written client value.
  fattr4 w = Writer().U64(0x123456789aULL).U32(0644).Attrs({FATTR4_SIZE, FATTR4_MODE});
  ASSERT_EQ(CompareAttrs(w, Src(), 1, &same), NFS4_OK);
  EXPECT_TRUE(same);
  w = Writer().U64(0x123456789aULL).U32(0600).Attrs({FATTR4_SIZE, FATTR4_MODE});
  ASSERT_EQ(CompareAttrs(w, Src(), 1, &same), NFS4_OK);
  EXPECT_FALSE(same);
  // Supported attributes over 4.0 differ from 4.2's.
  ASSERT_EQ(CompareAttrs(given, Src(), 0, &same), NFS4_OK);
  EXPECT_FALSE(same);
  // An empty set is trivially the same.
  ASSERT_EQ(CompareAttrs(fattr4{}, Src(), 2, &same), NFS4_OK);
  EXPECT_TRUE(same);
}

TEST_F(AttrsTest, VerifyErrors) {
  bool same = false;
  auto cmp = [&](const fattr4& f, uint32_t minor = 2) {
    return CompareAttrs(f, Src(), minor, &same);
  };
  EXPECT_EQ(cmp(Writer().U32(0).Attrs({FATTR4_RDATTR_ERROR})), NFS4ERR_INVAL);
  EXPECT_EQ(cmp(Writer().U32(0).Attrs({FATTR4_TIME_ACCESS_SET})), NFS4ERR_INVAL);
  EXPECT_EQ(cmp(Writer().U32(0).Attrs({FATTR4_TIME_MODIFY_SET})), NFS4ERR_INVAL);
  EXPECT_EQ(cmp(Writer().U32(0).Attrs({FATTR4_ACL})), NFS4ERR_ATTRNOTSUPP);
  EXPECT_EQ(cmp(Writer().Attrs({400})), NFS4ERR_ATTRNOTSUPP);
  EXPECT_EQ(cmp(Writer().U32(0).Attrs({FATTR4_RDATTR_ERROR, FATTR4_ACL})), NFS4ERR_ATTRNOTSUPP);
  EXPECT_EQ(cmp(Writer().U32(4096).Attrs({FATTR4_LAYOUT_BLKSIZE}), 0), NFS4ERR_ATTRNOTSUPP);
  EXPECT_EQ(cmp(Writer().U32(0).Attrs({FATTR4_CLONE_BLKSIZE}), 1), NFS4ERR_ATTRNOTSUPP);
  EXPECT_EQ(cmp(Writer().U32(0100644).Attrs({FATTR4_MODE})), NFS4ERR_INVAL);
  EXPECT_EQ(cmp(Writer().U32(1).Attrs({FATTR4_SIZE})), NFS4ERR_BADXDR);
  EXPECT_EQ(cmp(Writer().U64(1).U32(0).Attrs({FATTR4_SIZE})), NFS4ERR_BADXDR);
  EXPECT_EQ(cmp(Writer().U32(2).Attrs({FATTR4_NAMED_ATTR})), NFS4ERR_BADXDR);  // not a bool
  EXPECT_EQ(cmp(Writer().Str(std::string(NFS4_FHSIZE + 1, 'h')).Attrs({FATTR4_FILEHANDLE})),
            NFS4ERR_BADXDR);
  EXPECT_EQ(cmp(Writer().U32(1000).Attrs({FATTR4_SUPPORTED_ATTRS})), NFS4ERR_BADXDR);
}

}  // namespace
}  // namespace loom::nfs4
