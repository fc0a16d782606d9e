#include "xdr/xdr.h"

#include <gtest/gtest.h>

#include "xdr/mount3.h"
#include "xdr/nfs3.h"
#include "xdr/rpc.h"

namespace loom {
namespace {

template <typename T>
std::string Encode(const T& v) {
  xdr::Encoder e;
  xdr_encode(e, v);
  return e.Flatten();
}

// REQUIRES: `s` outlives `v` (decoded opaques are views into it).
template <typename T>
bool Decode(const std::string& s, T& v) {
  xdr::Decoder d(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  return xdr_decode(d, v) && d.remaining() == 0;
}

TEST(XdrTest, PrimitivesAreBigEndianAndPadded) {
  xdr::Encoder e;
  e.u32(0x01020304);
  e.u64(0x0102030405060708ULL);
  e.string("abcde");
  std::string s = e.Flatten();
  ASSERT_EQ(s.size(), 4u + 8u + 4u + 8u);
  EXPECT_EQ(s.substr(0, 4), std::string("\x01\x02\x03\x04", 4));
  EXPECT_EQ(s.substr(12, 4), std::string("\0\0\0\x05", 4));
  EXPECT_EQ(s.substr(16), std::string("abcde\0\0\0", 8));
}

TEST(XdrTest, StructRoundTrip) {
  nfs3::WRITE3args w;
  w.file.data = Bytes::Copy("0123456789");
  w.offset = 1ULL << 40;
  w.count = 5;
  w.stable = nfs3::FILE_SYNC;
  std::string payload(5000, 'x');
  w.data = Bytes::Copy(payload);
  std::string wire = Encode(w);
  EXPECT_EQ(wire.size(), 4u + 12u + 8u + 4u + 4u + 4u + 5000u);
  nfs3::WRITE3args back;
  ASSERT_TRUE(Decode(wire, back));
  EXPECT_EQ(back.file.data.view(), "0123456789");
  EXPECT_EQ(back.offset, 1ULL << 40);
  EXPECT_EQ(back.stable, nfs3::FILE_SYNC);
  EXPECT_EQ(back.data.view(), payload);
}

TEST(XdrTest, DecodedOpaqueIsAViewIntoTheBuffer) {
  nfs3::WRITE3args w;
  w.data = Bytes::Copy(std::string(100, 'y'));
  std::string wire = Encode(w);
  xdr::Decoder d(reinterpret_cast<const uint8_t*>(wire.data()), wire.size());
  nfs3::WRITE3args back;
  ASSERT_TRUE(xdr_decode(d, back));
  EXPECT_GE(back.data.data, reinterpret_cast<const uint8_t*>(wire.data()));
  EXPECT_LT(back.data.data, reinterpret_cast<const uint8_t*>(wire.data()) + wire.size());
}

TEST(XdrTest, UnionArmsAndBoolDiscriminant) {
  nfs3::GETATTR3res r;
  r.status = nfs3::NFS3_OK;
  r.resok.obj_attributes.type = nfs3::NF3DIR;
  r.resok.obj_attributes.size = 77;
  nfs3::GETATTR3res back;
  ASSERT_TRUE(Decode(Encode(r), back));
  EXPECT_EQ(back.resok.obj_attributes.type, nfs3::NF3DIR);
  EXPECT_EQ(back.resok.obj_attributes.size, 77u);

  r.status = nfs3::NFS3ERR_STALE;  // default arm is void
  EXPECT_EQ(Encode(r).size(), 4u);

  // A bool discriminant must be 0 or 1 (RFC 4506 §4.4).
  std::string bad("\0\0\0\x02", 4);
  nfs3::post_op_attr p;
  EXPECT_FALSE(Decode(bad, p));
}

TEST(XdrTest, LinkedListsBecomeVectors) {
  nfs3::READDIR3res r;
  r.status = nfs3::NFS3_OK;
  for (int i = 0; i < 3; i++) {
    nfs3::entry3 e;
    e.fileid = i + 10;
    e.name = "f" + std::to_string(i);
    e.cookie = i + 1;
    r.resok.reply.entries.push_back(e);
  }
  r.resok.reply.eof = true;
  nfs3::READDIR3res back;
  ASSERT_TRUE(Decode(Encode(r), back));
  ASSERT_EQ(back.resok.reply.entries.size(), 3u);
  EXPECT_EQ(back.resok.reply.entries[2].name, "f2");
  EXPECT_TRUE(back.resok.reply.eof);
}

TEST(XdrTest, HostileLengthsAreRejectedWithoutAllocating) {
  // A file handle longer than NFS3_FHSIZE.
  xdr::Encoder e;
  e.u32(65);
  std::string fh = e.Flatten() + std::string(68, 'a');
  nfs3::nfs_fh3 f;
  EXPECT_FALSE(Decode(fh, f));

  // An array count of 2^32-1 with 8 bytes behind it.
  xdr::Encoder e2;
  e2.opaque(Bytes());
  e2.u32(0xffffffffu);
  e2.u64(0);
  nfs3::mountres3_ok m;
  EXPECT_FALSE(Decode(e2.Flatten(), m));

  // Truncation anywhere fails cleanly.
  nfs3::WRITE3args w;
  w.data = Bytes::Copy(std::string(33, 'z'));
  std::string wire = Encode(w);
  for (size_t n = 0; n < wire.size(); n++) {
    nfs3::WRITE3args back;
    EXPECT_FALSE(Decode(wire.substr(0, n), back)) << n;
  }
}

TEST(XdrTest, RpcCallBody) {
  rpc::call_body cb;
  cb.rpcvers = 2;
  cb.prog = 100003;
  cb.vers = 3;
  cb.proc = 6;
  cb.cred.flavor = rpc::AUTH_SYS;
  rpc::authsys_parms sys;
  sys.machinename = "host";
  sys.uid = 1000;
  sys.gid = 100;
  sys.gids = {1, 2, 3};
  cb.cred.body = Bytes::Copy(Encode(sys));
  rpc::call_body back;
  std::string wire = Encode(cb);  // decoded opaques are views: the buffer must outlive them
  ASSERT_TRUE(Decode(wire, back));
  rpc::authsys_parms sys2;
  ASSERT_TRUE(Decode(back.cred.body.str(), sys2));
  EXPECT_EQ(sys2.uid, 1000u);
  EXPECT_EQ(sys2.gids.size(), 3u);
  // More than 16 gids is malformed.
  sys.gids.assign(17, 5);
  EXPECT_FALSE(Decode(Encode(sys), sys2));
}

}  // namespace
}  // namespace loom
