// Key encodings keep numeric order and directory contiguity; records round-trip and refuse
// every kind of damage; MetaErr survives a trip through Status.
#include "meta/records.h"

#include <gtest/gtest.h>

#include "meta/codec.h"
#include "meta/errors.h"
#include "meta/inode_alloc.h"
#include "meta/keys.h"
#include "meta/kv.h"

namespace loom::meta {
namespace {

TEST(KeysTest, IntegersSortNumerically) {
  EXPECT_LT(keys::Inode(1, 255), keys::Inode(1, 256));
  EXPECT_LT(keys::Inode(1, 0xffffffffull), keys::Inode(1, 0x100000000ull));
  EXPECT_LT(keys::Inode(1, ~0ull), keys::Inode(2, 0));  // fsid is the major order
  EXPECT_LT(keys::Readdir(1, 5, 9), keys::Readdir(1, 5, 10));
  EXPECT_EQ(keys::Inode(1, 2).size(), 17u);
}

TEST(KeysTest, DirectoryIsOneContiguousRange) {
  KeyRange dir = KeyRange::Prefix(keys::DentryPrefix(7, 42));
  auto in = [&](const std::string& k) { return k >= dir.begin && k < dir.end; };
  EXPECT_TRUE(in(keys::Dentry(7, 42, "a")));
  EXPECT_TRUE(in(keys::Dentry(7, 42, std::string(255, '\xff'))));
  EXPECT_TRUE(in(keys::Dentry(7, 42, std::string("\0", 1))));
  EXPECT_FALSE(in(keys::Dentry(7, 43, "a")));
  EXPECT_FALSE(in(keys::Dentry(7, 41, std::string(255, '\xff'))));
  EXPECT_FALSE(in(keys::Dentry(8, 42, "a")));
  EXPECT_FALSE(in(keys::Inode(7, 42)));
  std::string_view tail;
  std::string xattr = keys::Xattr(7, 42, "user.x");
  ASSERT_TRUE(keys::TailAfter(xattr, keys::XattrPrefix(7, 42), &tail));
  EXPECT_EQ(tail, "user.x");
  EXPECT_FALSE(keys::TailAfter(keys::Xattr(7, 43, "user.x"), keys::XattrPrefix(7, 42), &tail));
}

TEST(KeysTest, InsertHintNeighbourhoods) {
  auto hint = [](const std::string& k) { return k.substr(0, keys::InsertHintPrefixLength(k)); };
  // One directory's names by their first byte; the next directory's are another.
  EXPECT_EQ(hint(keys::Dentry(7, 42, "a")), hint(keys::Dentry(7, 42, "a" + std::string(200, 'z'))));
  EXPECT_EQ(hint(keys::Dentry(7, 42, "a")), keys::DentryPrefix(7, 42) + "a");
  EXPECT_NE(hint(keys::Dentry(7, 42, "a")), hint(keys::Dentry(7, 42, "b")));
  EXPECT_NE(hint(keys::Dentry(7, 42, "a")), hint(keys::Dentry(7, 43, "a")));
  EXPECT_EQ(hint(keys::DentryPrefix(7, 42)), keys::DentryPrefix(7, 42));
  // Cookies in runs of 256: an entry added (a new cookie) and one taken away (an old cookie)
  // are apart.
  EXPECT_EQ(hint(keys::Readdir(7, 42, 256)), hint(keys::Readdir(7, 42, 511)));
  EXPECT_NE(hint(keys::Readdir(7, 42, 3)), hint(keys::Readdir(7, 42, 1u << 30)));
  EXPECT_NE(hint(keys::Readdir(7, 42, 3)), hint(keys::Readdir(7, 43, 3)));
  // Inodes in runs of 256 numbers, never across a filesystem or a kind of record.
  EXPECT_EQ(hint(keys::Inode(7, 256)), hint(keys::Inode(7, 511)));
  EXPECT_NE(hint(keys::Inode(7, 255)), hint(keys::Inode(7, 256)));
  EXPECT_NE(hint(keys::Inode(7, 256)), hint(keys::Inode(8, 256)));
  EXPECT_NE(hint(keys::Inode(7, 256)), hint(keys::Layout(7, 256)));
  // Short keys have none.
  EXPECT_EQ(keys::InsertHintPrefixLength(keys::Fs(7)), 0u);
  EXPECT_EQ(keys::InsertHintPrefixLength(keys::State("x")), 0u);
}

TEST(KeysTest, ReaddirRowsAreNotPointRead) {
  EXPECT_FALSE(keys::PointRead(keys::Readdir(7, 42, 3)));
  EXPECT_TRUE(keys::PointRead(keys::Dentry(7, 42, "a")));
  EXPECT_TRUE(keys::PointRead(keys::Inode(7, 42)));
  EXPECT_TRUE(keys::PointRead("x"));
}

TEST(KeysTest, PrefixEnd) {
  EXPECT_EQ(PrefixEnd("ab"), "ac");
  EXPECT_EQ(PrefixEnd(std::string("a\xff\xff", 3)), "b");
  EXPECT_EQ(PrefixEnd(std::string("\xff", 1)), "");
}

Inode SampleInode() {
  Inode n;
  n.ino = 12345;
  n.type = FileType::kLnk;
  n.mode = 0755;
  n.uid = 1000;
  n.gid = 100;
  n.nlink = 1;
  n.size = 11;
  n.space_used = 4096;
  n.atime = {1700000000, 1};
  n.mtime = {1700000001, 999999999};
  n.ctime = {-5, 0};
  n.change = 77;
  n.rdev_major = 8;
  n.rdev_minor = 1;
  n.symlink = "/target/x";
  n.generation = 3;
  n.parent = 1;
  n.next_cookie = 9;
  return n;
}

Layout SampleLayout() {
  Layout l;
  l.stripe_unit = 1 << 20;
  l.stripe_count = 2;
  for (uint32_t m = 0; m < 2; ++m) {
    Mirror mir;
    for (uint32_t s = 0; s < 2; ++s)
      mir.files.push_back({m * 10 + s, "fh-" + std::to_string(s), 7, 8, m * 3 + s});
    mir.stale = m == 1;
    l.mirrors.push_back(mir);
  }
  l.generation = 0x1122334455ull;
  return l;
}

// Encodes r, decodes it back, and checks that every truncation and one extra byte fail.
template <typename R>
void CheckRoundTripAndDamage(const R& r) {
  std::string enc = Encode(r);
  R back;
  ASSERT_TRUE(Decode(enc, &back).ok());
  EXPECT_EQ(back, r);
  for (size_t n = 0; n < enc.size(); ++n) {
    R x;
    EXPECT_EQ(Decode(std::string_view(enc).substr(0, n), &x).code(), Code::kInternal) << n;
  }
  R x;
  EXPECT_FALSE(Decode(enc + '\0', &x).ok());
  std::string newer = enc;
  newer[1] = static_cast<char>(enc[1] + 1);  // a version from the future
  EXPECT_FALSE(Decode(newer, &x).ok());
}

TEST(RecordsTest, RoundTripAndRejectDamage) {
  CheckRoundTripAndDamage(SampleInode());
  CheckRoundTripAndDamage(FsInfo{7, kRootIno, {1, 2}});
  CheckRoundTripAndDamage(Dentry{"name", 5, FileType::kDir, 17});
  CheckRoundTripAndDamage(SampleLayout());
  CheckRoundTripAndDamage(Orphan{9, {3, 4}});
  CheckRoundTripAndDamage(PendingFile{12, 3, {5, 6}, 0});
  CheckRoundTripAndDamage(PendingFile{12, 3, {5, 6}, 4000000000u});
  CheckRoundTripAndDamage(FsIdentity{std::string(16, '\x5a'), "5a5a", {7, 8}});
  CheckRoundTripAndDamage(DataServerRecord{std::string(16, '\x01'), 4, "10.0.0.1:2049", "", {}, false});
  CheckRoundTripAndDamage(DataServerRecord{std::string(16, '\x01'), 4, "10.0.0.1:2049",
                                           "ds1.example:2049", {"site=a", "tier=ssd"}, true});
  CheckRoundTripAndDamage(GcItem{9, {3, std::string("\0\1fh", 4), 1, 2, 0}, {5, 6}});
  CheckRoundTripAndDamage(GcItem{9, {3, std::string("\0\1fh", 4), 1, 2, 17}, {5, 6}});
  CheckRoundTripAndDamage(ClientRecord{0xabcdef, "Linux NFSv4.2 host", 42,
                                       ClientRecord::kReclaimComplete, {1, 0}});
  CheckRoundTripAndDamage(GraceState{5, 4, true});
  uint64_t v;
  ASSERT_TRUE(DecodeU64(EncodeU64(1234), &v).ok());
  EXPECT_EQ(v, 1234u);
}

TEST(RecordsTest, RejectsWrongKindAndBadFields) {
  Inode n;
  EXPECT_FALSE(Decode(Encode(Dentry{"x", 1, FileType::kReg, 3}), &n).ok());
  std::string enc = Encode(SampleInode());
  enc[2 + 8] = 9;  // file type after kind, version and ino
  EXPECT_FALSE(Decode(enc, &n).ok());
  Inode big = SampleInode();
  big.mode = 0170000;  // type bits do not belong in mode
  EXPECT_FALSE(Decode(Encode(big), &n).ok());
  Inode badtime = SampleInode();
  badtime.atime.nsec = 1000000000;
  EXPECT_FALSE(Decode(Encode(badtime), &n).ok());
  Dentry longname{std::string(256, 'a'), 1, FileType::kReg, 3};
  Dentry d;
  EXPECT_FALSE(Decode(Encode(longname), &d).ok());
}

TEST(RecordsTest, LayoutShapeIsChecked) {
  Layout l = SampleLayout();
  l.mirrors[1].files.pop_back();  // a mirror with fewer files than stripes
  Layout out;
  EXPECT_FALSE(Decode(Encode(l), &out).ok());
  Layout huge = SampleLayout();
  huge.stripe_count = kMaxStripes + 1;
  EXPECT_FALSE(Decode(Encode(huge), &out).ok());
  Layout fh = SampleLayout();
  fh.mirrors[0].files[0].fh.assign(kMaxFhLen + 1, 'x');
  EXPECT_FALSE(Decode(Encode(fh), &out).ok());
}

// Records written by version 1 (before name generations, stale mirrors, layout generations
// and the registry's extra fields) still decode, with defaults for the new fields.
TEST(RecordsTest, Version1RecordsDecode) {
  auto header = [](char kind) {
    std::string out;
    PutU8(out, static_cast<uint8_t>(kind));
    PutU8(out, 1);
    return out;
  };
  auto data_file = [](std::string& out, uint32_t ds, const std::string& fh) {
    PutU32(out, ds);
    PutBytes(out, fh);
    PutU32(out, 7);
    PutU32(out, 8);
  };
  // A layout of 2 mirrors x 1 stripe.
  std::string l1 = header('L');
  PutU64(l1, 1 << 20);
  PutU32(l1, 1);
  PutU32(l1, 2);
  for (uint32_t m = 0; m < 2; m++) {
    PutU32(l1, 1);
    data_file(l1, 10 + m, "fh" + std::to_string(m));
  }
  Layout l;
  l.generation = 99;  // overwritten
  ASSERT_TRUE(Decode(l1, &l).ok());
  EXPECT_EQ(l.stripe_unit, 1u << 20);
  EXPECT_EQ(l.generation, 0u);
  ASSERT_EQ(l.mirrors.size(), 2u);
  for (uint32_t m = 0; m < 2; m++) {
    EXPECT_FALSE(l.mirrors[m].stale);
    EXPECT_EQ(l.mirrors[m].files[0], (DataFile{10 + m, "fh" + std::to_string(m), 7, 8, 0}));
  }
  EXPECT_FALSE(Decode(l1 + std::string(8, '\0'), &l).ok());  // v2 fields under version 1

  std::string g1 = header('G');
  PutU64(g1, 5);
  data_file(g1, 3, "gfh");
  PutU64(g1, 100);
  PutU32(g1, 200);
  GcItem g;
  g.file.name_gen = 4;
  ASSERT_TRUE(Decode(g1, &g).ok());
  EXPECT_EQ(g, (GcItem{5, {3, "gfh", 7, 8, 0}, {100, 200}}));

  std::string p1 = header('P');
  PutU64(p1, 12);
  PutU32(p1, 3);
  PutU64(p1, 5);
  PutU32(p1, 6);
  PendingFile p;
  p.name_gen = 4;
  ASSERT_TRUE(Decode(p1, &p).ok());
  EXPECT_EQ(p, (PendingFile{12, 3, {5, 6}, 0}));

  std::string k1 = header('K');
  PutBytes(k1, std::string(16, '\x01'));
  PutU32(k1, 4);
  PutBytes(k1, "10.0.0.1:2049");
  DataServerRecord d;
  d.labels = {"x=y"};
  d.draining = true;
  ASSERT_TRUE(Decode(k1, &d).ok());
  EXPECT_EQ(d, (DataServerRecord{std::string(16, '\x01'), 4, "10.0.0.1:2049", "", {}, false}));
}

TEST(RecordsTest, Version2FieldsAreChecked) {
  Layout out;
  std::string enc = Encode(SampleLayout());
  // The stale flags (one byte per mirror) come after the generation: 2 is not a bool.
  size_t stale_at = enc.size() - 4 * 4 - 2;
  enc[stale_at] = 2;
  EXPECT_FALSE(Decode(enc, &out).ok());
  DataServerRecord many{std::string(16, '\x01'), 4, "a:1", "", {}, false};
  many.labels.assign(kMaxServerLabels + 1, "k=v");
  DataServerRecord d;
  EXPECT_FALSE(Decode(Encode(many), &d).ok());
  many.labels.assign(1, std::string(kMaxServerLabelLen + 1, 'k'));
  EXPECT_FALSE(Decode(Encode(many), &d).ok());
}

TEST(KeysTest, PendingKeysByNameGeneration) {
  EXPECT_EQ(keys::Pending(1, 2, 3, 0), keys::Pending(1, 2, 3));
  EXPECT_NE(keys::Pending(1, 2, 3, 1), keys::Pending(1, 2, 3));
  KeyRange file = KeyRange::Prefix(keys::PendingPrefix(1, 2));
  for (uint32_t gen : {0u, 1u, 0xffffffffu}) {
    const std::string k = keys::Pending(1, 2, 3, gen);
    EXPECT_TRUE(k >= file.begin && k < file.end);
  }
  EXPECT_FALSE(keys::Pending(1, 3, 0, 0) < file.end);
}

TEST(ErrorsTest, MetaErrTravelsInStatus) {
  for (MetaErr e : {MetaErr::kNoEnt, MetaErr::kExist, MetaErr::kNotDir, MetaErr::kIsDir,
                    MetaErr::kNotEmpty, MetaErr::kInval, MetaErr::kXDev, MetaErr::kNameTooLong,
                    MetaErr::kMLink, MetaErr::kStale, MetaErr::kBadCookie}) {
    EXPECT_EQ(ErrOf(MetaError(e, "x")), e) << MetaErrName(e);
  }
  EXPECT_EQ(MetaError(MetaErr::kNoEnt, "x").code(), Code::kNotFound);
  EXPECT_EQ(ErrOf(Status::Ok()), MetaErr::kOk);
  EXPECT_EQ(ErrOf(Status(Code::kConflict, "busy")), MetaErr::kDelay);
  EXPECT_EQ(ErrOf(Status::Internal("corrupt")), MetaErr::kServerFault);
}

}  // namespace
}  // namespace loom::meta
