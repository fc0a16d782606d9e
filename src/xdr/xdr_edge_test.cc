// XDR (RFC 4506) at buffer boundaries: every primitive with one byte too few, lengths over
// their maximum or over what is left, padding that is missing, booleans other than 0 and 1,
// and the encoder's external (zero-copy) and file segments. Generated codecs are then fed every
// prefix of a valid message: only the whole message decodes, and nothing crashes.
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "xdr/nfs3.h"
#include "xdr/nfs4.h"
#include "xdr/rpc.h"
#include "xdr/xdr.h"

namespace loom {
namespace {

using xdr::Decoder;
using xdr::Encoder;

std::string Words(std::initializer_list<uint32_t> ws) {
  Encoder e;
  for (uint32_t w : ws) e.u32(w);
  return e.Flatten();
}

Decoder Over(const std::string& s) { return Decoder(reinterpret_cast<const uint8_t*>(s.data()), s.size()); }

TEST(XdrEdgeTest, FixedSizePrimitivesNeedAllTheirBytes) {
  const std::string eight = Words({0x80000001, 0xfffffffe});
  for (size_t n = 0; n <= 8; n++) {
    std::string s = eight.substr(0, n);
    uint32_t u = 7;
    int32_t i = 7;
    uint64_t u64 = 7;
    int64_t i64 = 7;
    Decoder a = Over(s), b = Over(s), c = Over(s), d = Over(s);
    EXPECT_EQ(a.u32(u), n >= 4) << n;
    EXPECT_EQ(b.i32(i), n >= 4) << n;
    EXPECT_EQ(c.u64(u64), n == 8) << n;
    EXPECT_EQ(d.i64(i64), n == 8) << n;
    if (n >= 4) {
      EXPECT_EQ(u, 0x80000001u);
      EXPECT_EQ(i, static_cast<int32_t>(0x80000001u));  // two's complement, RFC 4506 §4.1
      EXPECT_EQ(a.remaining(), n - 4);
    } else {
      EXPECT_EQ(u, 7u);  // a failed read leaves its output alone
      EXPECT_EQ(a.remaining(), n);
    }
    if (n == 8) {
      EXPECT_EQ(u64, 0x80000001fffffffeULL);
      EXPECT_EQ(i64, static_cast<int64_t>(0x80000001fffffffeULL));
    } else {
      EXPECT_EQ(i64, 7);
    }
  }
}

TEST(XdrEdgeTest, BooleansAreZeroOrOneOnly) {
  // RFC 4506 §4.4.
  for (auto [w, ok, v] : {std::tuple<uint32_t, bool, bool>{0, true, false},
                          {1, true, true},
                          {2, false, false},
                          {0x80000000u, false, false},
                          {0xffffffffu, false, false}}) {
    std::string s = Words({w});
    Decoder d = Over(s);
    bool b = false;
    EXPECT_EQ(d.boolean(b), ok) << w;
    if (ok) {
      EXPECT_EQ(b, v);
    }
  }
  std::string three = "\0\0\0";
  Decoder d = Over(three);
  bool b;
  EXPECT_FALSE(d.boolean(b));
}

TEST(XdrEdgeTest, OpaquesAndStringsNeedTheirPadding) {
  // A 5-byte opaque takes 8 bytes on the wire (§4.10): 4 + 5 bytes is not enough.
  std::string full = Words({5}) + "hello" + std::string(3, '\0');
  for (size_t n = 0; n <= full.size(); n++) {
    std::string s = full.substr(0, n);
    Bytes out;
    std::string str = "unchanged";
    Decoder a = Over(s), b = Over(s);
    EXPECT_EQ(a.opaque(out, 100), n == full.size()) << n;
    EXPECT_EQ(b.string(str, 100), n == full.size()) << n;
    if (n == full.size()) {
      EXPECT_EQ(std::string(reinterpret_cast<const char*>(out.data), out.size), "hello");
      EXPECT_EQ(str, "hello");
      EXPECT_EQ(a.remaining(), 0u);
    } else {
      EXPECT_EQ(str, "unchanged");
    }
  }
  // Over the declared maximum: refused before looking at the bytes.
  Bytes out;
  std::string str;
  Decoder a = Over(full), b = Over(full);
  EXPECT_FALSE(a.opaque(out, 4));
  EXPECT_FALSE(b.string(str, 4));
  // Exactly the maximum is fine; zero length takes just the length word.
  Decoder c = Over(full);
  EXPECT_TRUE(c.opaque(out, 5));
  std::string empty = Words({0});
  Decoder e = Over(empty);
  EXPECT_TRUE(e.string(str, 0));
  EXPECT_EQ(str, "");
  EXPECT_EQ(e.remaining(), 0u);
  // A length near 2^32 cannot wrap the padding arithmetic into a small skip.
  std::string huge = Words({0xfffffffdu}) + std::string(16, 'x');
  Decoder h = Over(huge);
  EXPECT_FALSE(h.opaque(out, xdr::kUnbounded));
  Decoder h2 = Over(huge);
  EXPECT_FALSE(h2.string(str, xdr::kUnbounded));
}

TEST(XdrEdgeTest, DecodedOpaquesShareTheBuffersOwner) {
  auto owner = std::make_shared<std::string>(Words({3}) + "abc" + std::string(1, '\0'));
  Bytes out;
  {
    Decoder d(reinterpret_cast<const uint8_t*>(owner->data()), owner->size(), owner);
    EXPECT_EQ(d.owner().get(), owner.get());
    ASSERT_TRUE(d.opaque(out, 10));
  }
  EXPECT_EQ(out.owner.get(), owner.get());  // the view keeps the buffer alive
  std::weak_ptr<std::string> weak = owner;
  owner.reset();
  EXPECT_FALSE(weak.expired());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(out.data), out.size), "abc");
  out = Bytes();
  EXPECT_TRUE(weak.expired());
}

TEST(XdrEdgeTest, SkipAndFixedChecksPaddedLengths) {
  std::string s(10, 'z');
  Decoder a = Over(s);
  EXPECT_TRUE(a.skip(5));  // 8 with padding
  EXPECT_EQ(a.remaining(), 2u);
  EXPECT_FALSE(a.skip(1));  // would need 4
  EXPECT_TRUE(a.skip(0));
  Decoder b = Over(s);
  EXPECT_FALSE(b.skip(SIZE_MAX - 1));  // padding overflows: refused, not wrapped
  EXPECT_FALSE(b.skip(11));
  EXPECT_EQ(b.remaining(), 10u);
  uint8_t out[8] = {1, 1, 1, 1, 1, 1, 1, 1};
  Decoder c = Over(s);
  EXPECT_TRUE(c.fixed(out, 6));
  EXPECT_EQ(std::string(reinterpret_cast<char*>(out), 6), "zzzzzz");
  EXPECT_EQ(c.remaining(), 2u);
  uint8_t keep[4] = {9, 9, 9, 9};
  EXPECT_FALSE(c.fixed(keep, 3));
  EXPECT_EQ(keep[0], 9);
  EXPECT_EQ(Decoder::Pad(0), 0u);
  EXPECT_EQ(Decoder::Pad(1), 4u);
  EXPECT_EQ(Decoder::Pad(4), 4u);
  EXPECT_EQ(Decoder::Pad(5), 8u);
}

TEST(XdrEdgeTest, ArrayLengthsAreBoundedByMaximumAndBytesLeft) {
  // §4.13: every element takes at least four bytes, so a count the buffer cannot hold is
  // refused before anything is allocated.
  std::string s = Words({3, 1, 2, 3});
  uint32_t n = 0;
  Decoder a = Over(s);
  EXPECT_TRUE(a.array_len(n, 3));
  EXPECT_EQ(n, 3u);
  Decoder b = Over(s);
  EXPECT_FALSE(b.array_len(n, 2));
  std::string t = Words({4, 1, 2, 3});
  Decoder c = Over(t);
  EXPECT_FALSE(c.array_len(n, 100));
  std::string u = "\0\0";
  Decoder d = Over(u);
  EXPECT_FALSE(d.array_len(n, 100));
}

TEST(XdrEdgeTest, EnumsKeepValuesOutsideTheirSet) {
  // §4.3: decoding keeps the value; whoever uses it decides (union arms reject it).
  std::string s = Words({0xfffffff0u});
  Decoder d = Over(s);
  nfs4::nfs_opnum4 op{};
  ASSERT_TRUE(xdr::decode_enum(d, op));
  EXPECT_EQ(static_cast<int32_t>(op), -16);
  std::string none = "\0";
  Decoder e = Over(none);
  EXPECT_FALSE(xdr::decode_enum(e, op));
  // As a union discriminant it has no arm: the union does not decode.
  std::string arg = Words({0xfffffff0u, 0});
  Decoder f = Over(arg);
  nfs4::nfs_argop4 a;
  EXPECT_FALSE(xdr_decode(f, a));
}

// ---------------------------------------------------------------------------------------
// Encoder.

TEST(XdrEdgeTest, LargeOpaquesAreReferencedAndTruncateDropsThem) {
  Encoder e;
  e.u32(1);
  const std::string small(Encoder::kExternalThreshold - 1, 's');
  const std::string big(Encoder::kExternalThreshold, 'b');
  auto keep = std::make_shared<std::string>(big);
  e.opaque(Bytes::Copy(small));                                    // copied inline
  const size_t mark = e.inline_size();
  e.opaque(Bytes::View(keep->data(), keep->size(), keep));          // referenced
  e.u32(2);
  EXPECT_EQ(e.size(), 4 + 4 + Decoder::Pad(small.size()) + 4 + big.size() + 4);
  EXPECT_EQ(e.inline_size(), e.size() - big.size());
  auto segs = e.Segments();
  ASSERT_EQ(segs.size(), 3u);  // inline, the referenced opaque, inline
  EXPECT_EQ(segs[1].data, reinterpret_cast<const uint8_t*>(keep->data()));
  EXPECT_EQ(segs[1].size, big.size());
  std::string flat = e.Flatten();
  Decoder d = Over(flat);
  uint32_t w;
  Bytes b1, b2;
  ASSERT_TRUE(d.u32(w) && d.opaque(b1, xdr::kUnbounded) && d.opaque(b2, xdr::kUnbounded) && d.u32(w));
  EXPECT_EQ(b1.view(), small);
  EXPECT_EQ(b2.view(), big);
  EXPECT_EQ(w, 2u);
  // Truncating back to before the big opaque drops its reference and its bytes.
  e.truncate(mark);
  EXPECT_EQ(e.size(), mark);
  EXPECT_EQ(e.Segments().size(), 1u);
  EXPECT_EQ(e.Flatten().size(), mark);
  // Truncating to after it keeps it.
  Encoder f;
  f.opaque(Bytes::View(keep->data(), keep->size(), keep));
  f.u32(3);
  f.truncate(f.inline_size() - 4);
  EXPECT_EQ(f.size(), 4 + big.size());
}

TEST(XdrEdgeTest, ReservedWordsArePatchedInPlace) {
  Encoder e;
  size_t at = e.reserve_u32();
  e.string("x");
  e.patch_u32(at, 0xdeadbeef);
  EXPECT_EQ(e.Flatten(), Words({0xdeadbeef, 1}) + std::string("x\0\0\0", 4));
  Encoder g;
  g.boolean(true);
  g.boolean(false);
  g.i64(-2);
  g.fixed(reinterpret_cast<const uint8_t*>("ab"), 2);
  g.pad(4);  // nothing to pad
  EXPECT_EQ(g.Flatten(), Words({1, 0, 0xffffffff, 0xfffffffe}) + std::string("ab\0\0", 4));
}

TEST(XdrEdgeTest, FileSegmentsAreReadAndZeroFilledWhenShort) {
  char tmpl[] = "/tmp/loom-xdr-edge-XXXXXX";
  int fd = ::mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  ::unlink(tmpl);
  ASSERT_EQ(::write(fd, "0123456789", 10), 10);
  auto file = std::make_shared<const FileRef>(fd);
  Encoder e;
  e.opaque(Bytes::FromFile(file, 2, 5));   // "23456", padded
  e.opaque(Bytes::FromFile(file, 6, 8));   // "6789" then four zeros: the file is short
  e.opaque(Bytes::FromFile(file, 0, 0));   // an empty range: no segment at all
  e.u32(9);
  auto segs = e.Segments();
  size_t files = 0;
  for (const auto& s : segs) files += s.file != nullptr;
  EXPECT_EQ(files, 2u);
  std::string flat = e.Flatten();
  EXPECT_EQ(flat, Words({5}) + std::string("23456\0\0\0", 8) + Words({8}) + std::string("6789\0\0\0\0", 8) +
                      Words({0}) + Words({9}));
  // A range of a file that cannot be read at all comes out as zeros.
  Encoder z;
  z.opaque(Bytes::FromFile(std::make_shared<const FileRef>(-1), 0, 4));
  EXPECT_EQ(z.Flatten(), Words({4}) + std::string(4, '\0'));
}

// ---------------------------------------------------------------------------------------
// Generated codecs: every strict prefix of a valid message fails, the whole one decodes.

template <typename T>
void EveryPrefixFails(const std::string& wire, const char* what) {
  for (size_t n = 0; n < wire.size(); n++) {
    std::string s = wire.substr(0, n);
    Decoder d = Over(s);
    T v;
    EXPECT_FALSE(xdr_decode(d, v)) << what << " decoded from " << n << " of " << wire.size() << " bytes";
  }
  Decoder d = Over(wire);
  T v;
  EXPECT_TRUE(xdr_decode(d, v)) << what;
  EXPECT_EQ(d.remaining(), 0u) << what;
}

TEST(XdrEdgeTest, TruncatedCompoundsNeverDecode) {
  using namespace nfs4;
  COMPOUND4args a;
  a.tag = Bytes::Copy("t");
  a.minorversion = 2;
  nfs_argop4 seq;
  seq.argop = OP_SEQUENCE;
  seq.opsequence = std::make_unique<SEQUENCE4args>();
  seq.opsequence->sa_sequenceid = 9;
  a.argarray.push_back(std::move(seq));
  nfs_argop4 put;
  put.argop = OP_PUTFH;
  put.opputfh = std::make_unique<PUTFH4args>();
  put.opputfh->object = Bytes::Copy("handle-bytes");
  a.argarray.push_back(std::move(put));
  nfs_argop4 lg;
  lg.argop = OP_LAYOUTGET;
  lg.oplayoutget = std::make_unique<LAYOUTGET4args>();
  lg.oplayoutget->loga_layout_type = LAYOUT4_FLEX_FILES;
  lg.oplayoutget->loga_iomode = LAYOUTIOMODE4_RW;
  a.argarray.push_back(std::move(lg));
  nfs_argop4 open;
  open.argop = OP_OPEN;
  open.opopen = std::make_unique<OPEN4args>();
  open.opopen->owner.owner = Bytes::Copy("owner");
  open.opopen->openhow.opentype = OPEN4_CREATE;
  open.opopen->openhow.how.mode = GUARDED4;
  open.opopen->claim.claim = CLAIM_NULL;
  open.opopen->claim.file = Bytes::Copy("name");
  a.argarray.push_back(std::move(open));
  Encoder e;
  xdr_encode(e, a);
  EveryPrefixFails<COMPOUND4args>(e.Flatten(), "COMPOUND4args");
}

TEST(XdrEdgeTest, TruncatedRpcHeadersAndNfs3ArgsNeverDecode) {
  rpc::call_body cb;
  cb.rpcvers = 2;
  cb.prog = 100003;
  cb.vers = 3;
  cb.proc = 7;
  cb.cred.flavor = rpc::AUTH_SYS;
  cb.cred.body = Bytes::Copy(std::string(20, 'c'));
  Encoder e;
  xdr_encode(e, cb);
  EveryPrefixFails<rpc::call_body>(e.Flatten(), "call_body");
  nfs3::WRITE3args w;
  w.file.data = Bytes::Copy(std::string(32, 'f'));
  w.offset = 1ull << 40;
  w.count = 5;
  w.stable = nfs3::FILE_SYNC;
  w.data = Bytes::Copy("abcde");
  Encoder f;
  xdr_encode(f, w);
  EveryPrefixFails<nfs3::WRITE3args>(f.Flatten(), "WRITE3args");
}

}  // namespace
}  // namespace loom
