// COMPOUND edge cases (RFC 8881 §15.2, §16.2, §2.10.6; RFC 7862 §15): headers that do not
// decode, op counts the body cannot hold, truncated operations, minor-version rules, the
// session-position rules, the reply-size limits and the op table's result arms. The COMPOUNDs
// go through testing::DirectMds, so each test sees the exact reply bytes a client would.
#include <gtest/gtest.h>

#include "common/log.h"
#include "nfs4/compound.h"
#include "nfs4/ops.def.h"
#include "nfs4/simple_client.h"
#include "nfs4/testing/direct_mds.h"

namespace loom::nfs4 {
namespace {

using simple::Op;
using testing::DirectClient;
using testing::DirectMds;
using testing::Reply;

const rpc::Cred kCred = rpc::Cred::Sys(0, 0, {}, "edge");

std::string Words(std::initializer_list<uint32_t> ws) {
  xdr::Encoder e;
  for (uint32_t w : ws) e.u32(w);
  return e.Flatten();
}

// A COMPOUND4args header: tag, minor version, op count.
std::string Header(const std::string& tag, uint32_t minor, uint32_t nops) {
  xdr::Encoder e;
  e.string(tag);
  e.u32(minor);
  e.u32(nops);
  return e.Flatten();
}

std::string Encode(const nfs_argop4& a) {
  xdr::Encoder e;
  xdr_encode(e, a);
  return e.Flatten();
}

template <typename... T>
std::vector<nfs_argop4> Ops(T&&... ops) {
  std::vector<nfs_argop4> v;
  (v.push_back(std::forward<T>(ops)), ...);
  return v;
}

std::string Tag(const Reply& r) { return std::string(reinterpret_cast<const char*>(r.res.tag.data), r.res.tag.size); }

class CompoundEdgeTest : public ::testing::Test {
 protected:
  CompoundEdgeTest() : mds_(DirectMds::Options{}), client_(mds_, "edge-client", kCred) {}
  void SetUp() override { ASSERT_EQ(client_.Setup(), NFS4_OK); }

  // SEQUENCE (next sequence id) as raw bytes, to go after a hand-made header: lets a test
  // append bytes that do not decode.
  std::string SequenceBytes(bool cachethis = false) {
    return Encode(simple::Sequence(client_.session, ++client_.seq, cachethis));
  }
  Reply Call42(std::vector<nfs_argop4> ops, bool cachethis = false) {
    ops.insert(ops.begin(), simple::Sequence(client_.session, ++client_.seq, cachethis));
    return mds_.Call(std::move(ops), kCred, 2);
  }

  DirectMds mds_;
  DirectClient client_;
};

// ---------------------------------------------------------------------------------------
// The op table: one result arm per operation (ops.def.h), and the status inside it.

// The result survives encode and decode with its op number and status.
bool RoundTrips(const nfs_resop4& r, nfsstat4 want) {
  xdr::Encoder e;
  xdr_encode(e, r);
  std::string b = e.Flatten();
  xdr::Decoder d(reinterpret_cast<const uint8_t*>(b.data()), b.size());
  nfs_resop4 back;
  return xdr_decode(d, back) && d.remaining() == 0 && back.resop == r.resop && OpStatus(back) == want;
}

TEST(CompoundTableTest, EveryOperationGetsItsOwnErrorArm) {
  int rows = 0;
#define LOOM_CHECK_ARM(OPNUM, ARM, RES, STATUS, ARGS)                                        \
  {                                                                                         \
    rows++;                                                                                 \
    nfs_resop4 r;                                                                           \
    SetOpError(r, OPNUM, NFS4ERR_DELAY);                                                    \
    EXPECT_EQ(r.resop, OPNUM) << #OPNUM;                                                    \
    ASSERT_TRUE(r.ARM) << #OPNUM;                                                           \
    EXPECT_EQ(r.ARM->STATUS, NFS4ERR_DELAY) << #OPNUM;                                      \
    EXPECT_EQ(OpStatus(r), NFS4ERR_DELAY) << #OPNUM;                                        \
    /* The arm is the one the codec uses for this op: the status survives the wire. */      \
    EXPECT_TRUE(RoundTrips(r, NFS4ERR_DELAY)) << #OPNUM;                               \
    /* A result whose arm was never filled in reads as OK (nothing failed). */              \
    r.ARM.reset();                                                                          \
    EXPECT_EQ(OpStatus(r), NFS4_OK) << #OPNUM;                                              \
    EXPECT_STRNE(OpName(OPNUM), "?") << #OPNUM;                                             \
  }
  LOOM_NFS4_OPS(LOOM_CHECK_ARM)
#undef LOOM_CHECK_ARM
  // Every operation of RFC 8881 (3..58), RFC 7862 (59..71), RFC 8276 (72..75) and ILLEGAL.
  EXPECT_EQ(rows, 74);
}

TEST(CompoundTableTest, UnknownOperationNumbersBecomeIllegal) {
  // §15.2: an operation number the server does not know is answered as OP_ILLEGAL.
  for (int32_t n : {0, 1, 2, 76, 9999, -5}) {
    nfs_resop4 r;
    SetOpError(r, static_cast<nfs_opnum4>(n), NFS4ERR_OP_ILLEGAL);
    EXPECT_EQ(r.resop, OP_ILLEGAL) << n;
    ASSERT_TRUE(r.opillegal) << n;
    EXPECT_EQ(r.opillegal->status, NFS4ERR_OP_ILLEGAL);
    EXPECT_STREQ(OpName(static_cast<uint32_t>(n)), "?") << n;
  }
  nfs_resop4 odd;
  odd.resop = static_cast<nfs_opnum4>(1234);
  EXPECT_EQ(OpStatus(odd), NFS4ERR_OP_ILLEGAL);
  EXPECT_STREQ(OpName(OP_READ), "OP_READ");
}

TEST(CompoundTableTest, MaxReplyCountsTheDataAnOperationAsksFor) {
  OpDesc d;
  d.max_reply = 100;
  // READ: op, status, eof, length, then the bytes.
  auto rd = Op(OP_READ);
  EXPECT_EQ(MaxReply(d, rd), 16u);  // no arguments decoded: nothing asked for
  rd.opread = std::make_unique<READ4args>();
  rd.opread->count = 1000;
  EXPECT_EQ(MaxReply(d, rd), 1016u);
  rd.opread->count = UINT32_MAX;  // the bound saturates instead of wrapping
  EXPECT_EQ(MaxReply(d, rd), UINT32_MAX);
  auto rp = Op(OP_READ_PLUS);
  EXPECT_EQ(MaxReply(d, rp), 40u);
  rp.opread_plus = std::make_unique<READ_PLUS4args>();
  rp.opread_plus->rpa_count = 60;
  EXPECT_EQ(MaxReply(d, rp), 100u);
  auto rdd = Op(OP_READDIR);
  EXPECT_EQ(MaxReply(d, rdd), 8u);
  rdd.opreaddir = std::make_unique<READDIR4args>();
  rdd.opreaddir->maxcount = 8192;
  EXPECT_EQ(MaxReply(d, rdd), 8200u);
  // LAYOUTGET: the layout body is at most 4 KiB whatever loga_maxcount says.
  auto lg = Op(OP_LAYOUTGET);
  EXPECT_EQ(MaxReply(d, lg), 100u);
  lg.oplayoutget = std::make_unique<LAYOUTGET4args>();
  lg.oplayoutget->loga_maxcount = 100;
  EXPECT_EQ(MaxReply(d, lg), 164u);
  lg.oplayoutget->loga_maxcount = 1u << 30;
  EXPECT_EQ(MaxReply(d, lg), 64u + 4096u);
  EXPECT_EQ(MaxReply(d, Op(OP_GETATTR)), 100u);
}

// ---------------------------------------------------------------------------------------
// The header (§16.2.3): BADXDR with no results when it does not decode.

TEST_F(CompoundEdgeTest, HeaderThatDoesNotDecodeIsBadXdrWithNoResults) {
  const std::string cases[] = {
      "",                                         // nothing at all
      Words({3}),                                 // tag length, no tag
      Words({NFS4_OPAQUE_LIMIT + 1}),             // tag longer than any opaque
      Header("t", 1, 0).substr(0, 8),             // tag, no minor version
      Header("t", 1, 0).substr(0, 12),            // no op count
      Header("t", 1, 5),                          // five ops announced, none sent
      Header("t", 1, 0xffffffffu) + std::string(64, '\0'),  // more ops than bytes
  };
  for (const std::string& c : cases) {
    Reply r = mds_.CallBytes(c, kCred);
    EXPECT_EQ(r.accept, rpc::SUCCESS);
    ASSERT_TRUE(r.decoded) << c.size();
    EXPECT_EQ(r.res.status, NFS4ERR_BADXDR) << c.size();
    EXPECT_TRUE(r.res.resarray.empty()) << c.size();
  }
}

TEST_F(CompoundEdgeTest, UnsupportedMinorVersionsGetMismatchAndTheirTag) {
  // §16.2.3, §15.1.3.3 (NFS4ERR_MINOR_VERS_MISMATCH): no operation is looked at, the tag is
  // still echoed. Minor version 0 is NFSv4.0, which loom-mds does not serve.
  for (uint32_t minor : {0u, 3u, 0x7fffffffu}) {
    std::string body = Header("vers-tag", minor, 1) + Encode(simple::PutRootFh());
    Reply r = mds_.CallBytes(body, kCred);
    ASSERT_TRUE(r.decoded);
    EXPECT_EQ(r.res.status, NFS4ERR_MINOR_VERS_MISMATCH) << minor;
    EXPECT_TRUE(r.res.resarray.empty());
    EXPECT_EQ(Tag(r), "vers-tag");
  }
}

TEST_F(CompoundEdgeTest, EmptyCompoundSucceedsWithNoResults) {
  // §16.2.3: a COMPOUND of zero operations is legal and does nothing.
  Reply r = mds_.CallBytes(Header("empty", 1, 0), kCred);
  ASSERT_TRUE(r.decoded);
  EXPECT_EQ(r.res.status, NFS4_OK);
  EXPECT_TRUE(r.res.resarray.empty());
  EXPECT_EQ(Tag(r), "empty");
}

// ---------------------------------------------------------------------------------------
// Operations that do not decode.

TEST_F(CompoundEdgeTest, MissingOperationAfterSequenceIsBadXdrIllegal) {
  // Three ops announced, the body holds SEQUENCE only (long enough for the count check).
  std::string body = Header("", 1, 3) + SequenceBytes();
  Reply r = mds_.CallBytes(body, kCred);
  ASSERT_TRUE(r.decoded);
  EXPECT_EQ(r.res.status, NFS4ERR_BADXDR);
  ASSERT_EQ(r.res.resarray.size(), 2u);
  EXPECT_EQ(r.res.resarray[0].resop, OP_SEQUENCE);
  EXPECT_EQ(OpStatus(r.res.resarray[0]), NFS4_OK);
  EXPECT_EQ(r.res.resarray[1].resop, OP_ILLEGAL);
  EXPECT_EQ(OpStatus(r.res.resarray[1]), NFS4ERR_BADXDR);
}

TEST_F(CompoundEdgeTest, TruncatedArgumentsAreBadXdrForThatOperation) {
  // PUTFH whose handle length runs past the end, LOOKUP whose name is cut short, and a
  // GETATTR bitmap that claims more words than there are: the result carries the op number.
  const std::string bad[] = {
      Words({OP_PUTFH, 64, 1, 2}),
      Words({OP_LOOKUP, 10}) + "abcd",
      Words({OP_GETATTR, 1000}),
      Words({OP_PUTFH, NFS4_FHSIZE + 1}) + std::string(NFS4_FHSIZE + 4, 'x'),  // over the limit
  };
  const nfs_opnum4 ops[] = {OP_PUTFH, OP_LOOKUP, OP_GETATTR, OP_PUTFH};
  for (size_t i = 0; i < std::size(bad); i++) {
    std::string body = Header("", 1, 3) + SequenceBytes() + Encode(simple::PutRootFh()) + bad[i];
    Reply r = mds_.CallBytes(body, kCred);
    ASSERT_TRUE(r.decoded) << i;
    EXPECT_EQ(r.res.status, NFS4ERR_BADXDR) << i;
    ASSERT_EQ(r.res.resarray.size(), 3u) << i;
    EXPECT_EQ(r.res.resarray[1].resop, OP_PUTROOTFH);
    EXPECT_EQ(OpStatus(r.res.resarray[1]), NFS4_OK);
    EXPECT_EQ(r.res.resarray[2].resop, ops[i]) << i;
    EXPECT_EQ(OpStatus(r.res.resarray[2]), NFS4ERR_BADXDR) << i;
  }
}

TEST_F(CompoundEdgeTest, UnknownOperationNumbersAreIllegalAndStopTheCompound) {
  // §15.2, §18.52: OP_ILLEGAL's result for a number outside the protocol; nothing after it
  // runs (the GETFH would otherwise fail with NOFILEHANDLE... or succeed).
  for (uint32_t n : {0u, 2u, 76u, 10044u, 0x80000000u}) {
    std::string body = Header("", 2, 3) + SequenceBytes() + Words({n}) + Encode(simple::GetFh());
    Reply r = mds_.CallBytes(body, kCred);
    ASSERT_TRUE(r.decoded) << n;
    EXPECT_EQ(r.res.status, NFS4ERR_OP_ILLEGAL) << n;
    ASSERT_EQ(r.res.resarray.size(), 2u) << n;
    EXPECT_EQ(r.res.resarray[1].resop, OP_ILLEGAL);
    EXPECT_EQ(OpStatus(r.res.resarray[1]), NFS4ERR_OP_ILLEGAL);
  }
}

// ---------------------------------------------------------------------------------------
// Minor-version rules.

TEST_F(CompoundEdgeTest, EveryMinorVersionTwoOperationIsIllegalInMinorVersionOne) {
  // RFC 7862 §15 adds operations 59..75 in minor version 2; in a 4.1 COMPOUND they are
  // numbers outside the minor version (RFC 8881 §15.1.3.4): OP_ILLEGAL, and nothing runs.
  for (int n = OP_ALLOCATE; n <= OP_REMOVEXATTR; n++) {
    Reply r = client_.Call(Ops(simple::PutRootFh(), Op(static_cast<nfs_opnum4>(n)), simple::GetFh()));
    ASSERT_TRUE(r.decoded) << n;
    EXPECT_EQ(r.res.status, NFS4ERR_OP_ILLEGAL) << n;
    ASSERT_EQ(r.res.resarray.size(), 3u) << n;
    EXPECT_EQ(r.res.resarray[2].resop, OP_ILLEGAL) << n;
  }
}

TEST_F(CompoundEdgeTest, OperationsWithoutAHandlerAreNotSupported) {
  // Known operation numbers the server does not implement answer NFS4ERR_NOTSUPP with their
  // own result arm (RFC 8881 §15.1.1.5), as do those NFSv4.1 removed (§18.1: "MUST NOT be
  // sent in minor version 1": OPEN_CONFIRM, RENEW, SETCLIENTID, SETCLIENTID_CONFIRM,
  // RELEASE_LOCKOWNER).
  const nfs_opnum4 removed[] = {OP_OPEN_CONFIRM, OP_RENEW, OP_SETCLIENTID, OP_SETCLIENTID_CONFIRM,
                                OP_RELEASE_LOCKOWNER};
  for (nfs_opnum4 op : removed) {
    Reply r = client_.Call(Ops(simple::PutRootFh(), Op(op)));
    ASSERT_TRUE(r.decoded) << op;
    EXPECT_EQ(r.res.status, NFS4ERR_NOTSUPP) << op;
    ASSERT_EQ(r.res.resarray.size(), 3u);
    EXPECT_EQ(r.res.resarray[2].resop, op);
  }
  int unimplemented = 0;
  for (int n = OP_ACCESS; n <= OP_REMOVEXATTR; n++) {
    const nfs_opnum4 op = static_cast<nfs_opnum4>(n);
    const OpDesc* d = mds_.mds().LookupOp(op);
    ASSERT_NE(d, nullptr) << n;  // every number of 4.1 and 4.2 has a row
    if (d->fn || op == OP_SEQUENCE) continue;
    unimplemented++;
    // Arguments that decode: unions whose default discriminant is no arm get a valid one.
    nfs_argop4 a = Op(op);
    if (op == OP_WANT_DELEGATION) {
      a.opwant_delegation = std::make_unique<WANT_DELEGATION4args>();
      a.opwant_delegation->wda_claim.dc_claim = CLAIM_FH;
    } else if (op == OP_COPY_NOTIFY) {
      a.opcopy_notify = std::make_unique<COPY_NOTIFY4args>();
      a.opcopy_notify->cna_destination_server.nl_type = NL4_NAME;
    }
    Reply r = Call42(Ops(simple::PutRootFh(), std::move(a), simple::GetFh()));
    ASSERT_TRUE(r.decoded) << n;
    EXPECT_EQ(r.res.status, NFS4ERR_NOTSUPP) << OpName(n);
    ASSERT_EQ(r.res.resarray.size(), 3u) << OpName(n);
    EXPECT_EQ(r.res.resarray[2].resop, op);
  }
  // At least the delegation-purge, named-attribute, SSV and server-side copy operations.
  EXPECT_GE(unimplemented, 8);
  for (nfs_opnum4 op : {OP_DELEGPURGE, OP_OPENATTR, OP_SET_SSV, OP_COPY, OP_CLONE})
    EXPECT_EQ(mds_.mds().LookupOp(op)->fn, nullptr) << OpName(op);
  EXPECT_EQ(mds_.mds().LookupOp(static_cast<nfs_opnum4>(OP_REMOVEXATTR + 1)), nullptr);
  EXPECT_EQ(mds_.mds().LookupOp(static_cast<nfs_opnum4>(2)), nullptr);
}

// ---------------------------------------------------------------------------------------
// Session rules (§2.10.6, §18.46.3).

TEST_F(CompoundEdgeTest, SequenceMustComeFirstAndOnlyOnce) {
  // Not first: OP_NOT_IN_SESSION for the first op (§18.46.3)...
  Reply a = mds_.Call(Ops(simple::PutRootFh(), simple::GetFh()), kCred);
  ASSERT_TRUE(a.decoded);
  EXPECT_EQ(a.res.status, NFS4ERR_OP_NOT_IN_SESSION);
  ASSERT_EQ(a.res.resarray.size(), 1u);
  EXPECT_EQ(a.res.resarray[0].resop, OP_PUTROOTFH);
  // ...and a second SEQUENCE is SEQUENCE_POS (§15.1.10.4).
  Reply b = client_.Call(Ops(simple::PutRootFh(), simple::Sequence(client_.session, 77)));
  ASSERT_TRUE(b.decoded);
  EXPECT_EQ(b.res.status, NFS4ERR_SEQUENCE_POS);
  ASSERT_EQ(b.res.resarray.size(), 3u);
  EXPECT_EQ(b.res.resarray[2].resop, OP_SEQUENCE);
  // The session still works: the failed op used the slot's sequence id properly.
  EXPECT_EQ(client_.Call(Ops(simple::PutRootFh())).res.status, NFS4_OK);
}

TEST_F(CompoundEdgeTest, CurrentFilehandleIsRequired) {
  // §15.1.2.7 NOFILEHANDLE for every op flagged as needing one, before it decodes anything
  // from the store.
  for (nfs_opnum4 op : {OP_GETFH, OP_GETATTR, OP_SAVEFH, OP_LOOKUP, OP_READ, OP_LAYOUTGET,
                        OP_GETDEVICELIST, OP_LAYOUTCOMMIT, OP_OPEN}) {
    Reply r = client_.Call(Ops(Op(op)));
    ASSERT_TRUE(r.decoded) << OpName(op);
    EXPECT_EQ(r.res.status, NFS4ERR_NOFILEHANDLE) << OpName(op);
    ASSERT_EQ(r.res.resarray.size(), 2u);
    EXPECT_EQ(r.res.resarray[1].resop, op);
  }
  for (nfs_opnum4 op : {OP_SEEK, OP_ALLOCATE, OP_READ_PLUS, OP_LAYOUTSTATS, OP_LAYOUTERROR}) {
    Reply r = Call42(Ops(Op(op)));
    ASSERT_TRUE(r.decoded) << OpName(op);
    EXPECT_EQ(r.res.status, NFS4ERR_NOFILEHANDLE) << OpName(op);
  }
}

TEST_F(CompoundEdgeTest, RefusedOperationsAreLoggedAtDebugLevel) {
  // The refusal path formats the op's name and flags; it must not depend on the op having a
  // handler (fn may be null).
  const LogLevel was = GetLogLevel();
  SetLogLevel(LogLevel::kDebug);
  Reply r = client_.Call(Ops(simple::PutRootFh(), Op(OP_DELEGPURGE)));
  Reply s = client_.Call(Ops(Op(OP_GETFH)));
  SetLogLevel(was);
  EXPECT_EQ(r.res.status, NFS4ERR_NOTSUPP);
  EXPECT_EQ(s.res.status, NFS4ERR_NOFILEHANDLE);
}

TEST_F(CompoundEdgeTest, RepliesLargerThanTheSessionAllowsAreRefusedBeforeRunning) {
  // DirectClient's session: ca_maxresponsesize 1 MiB, ca_maxresponsesize_cached 64 KiB.
  // §2.10.6.4, §15.1.10.5: REP_TOO_BIG when the reply could exceed the first, and
  // REP_TOO_BIG_TO_CACHE when sa_cachethis asks to cache more than the second.
  auto readdir = [](uint32_t maxcount) { return simple::Readdir(0, maxcount); };
  Reply big = client_.Call(Ops(simple::PutRootFh(), readdir(2u << 20)));
  ASSERT_TRUE(big.decoded);
  EXPECT_EQ(big.res.status, NFS4ERR_REP_TOO_BIG);
  ASSERT_EQ(big.res.resarray.size(), 3u);
  EXPECT_EQ(big.res.resarray[2].resop, OP_READDIR);
  // DirectClient caches every reply: 100 KiB fits the session, not the slot's cache.
  Reply cached = client_.Call(Ops(simple::PutRootFh(), readdir(100u << 10)));
  ASSERT_TRUE(cached.decoded);
  EXPECT_EQ(cached.res.status, NFS4ERR_REP_TOO_BIG_TO_CACHE);
  // Not cached, the same request runs.
  Reply uncached = Call42(Ops(simple::PutRootFh(), readdir(100u << 10)), false);
  ASSERT_TRUE(uncached.decoded);
  EXPECT_EQ(uncached.res.status, NFS4_OK);
  // The bound is the sum over the COMPOUND: ten READDIRs of 6000 bytes fit the 64 KiB cache,
  // the eleventh does not, and only it is refused.
  std::vector<nfs_argop4> many = Ops(simple::PutRootFh());
  for (int i = 0; i < 12; i++) many.push_back(readdir(6000));
  Reply sum = client_.Call(std::move(many));
  ASSERT_TRUE(sum.decoded);
  EXPECT_EQ(sum.res.status, NFS4ERR_REP_TOO_BIG_TO_CACHE);
  ASSERT_EQ(sum.res.resarray.size(), 13u);
  EXPECT_EQ(OpStatus(sum.res.resarray[11]), NFS4_OK);
  EXPECT_EQ(sum.res.resarray[12].resop, OP_READDIR);
  EXPECT_EQ(OpStatus(sum.res.resarray[12]), NFS4ERR_REP_TOO_BIG_TO_CACHE);
}

TEST_F(CompoundEdgeTest, MoreOperationsThanTheSessionAllowsIsTooManyOps) {
  // The session was created with ca_maxoperations 16 (§18.36.3); a COMPOUND of 17 gets
  // NFS4ERR_TOO_MANY_OPS in SEQUENCE's result and nothing runs (§2.10.6.4, §15.1.10.6).
  std::vector<nfs_argop4> ops;
  for (int i = 0; i < 16; i++) ops.push_back(simple::PutRootFh());
  Reply r = client_.Call(std::move(ops));
  ASSERT_TRUE(r.decoded);
  EXPECT_EQ(r.res.status, NFS4ERR_TOO_MANY_OPS);
  ASSERT_EQ(r.res.resarray.size(), 1u);
  EXPECT_EQ(r.res.resarray[0].resop, OP_SEQUENCE);
  // Sixteen in all is allowed.
  std::vector<nfs_argop4> fifteen;
  for (int i = 0; i < 15; i++) fifteen.push_back(simple::PutRootFh());
  Reply ok = client_.Call(std::move(fifteen));
  EXPECT_EQ(ok.res.status, NFS4_OK);
  EXPECT_EQ(ok.res.resarray.size(), 16u);
}

TEST_F(CompoundEdgeTest, RetransmissionGetsTheCachedReplyByteForByte) {
  // §2.10.6.1.3: the same slot and sequence id again is answered from the slot's cache,
  // not run again (the tag shows it is the original reply).
  const uint32_t seq = ++client_.seq;
  auto call = [&](const std::string& tag) {
    COMPOUND4args a;
    a.minorversion = 1;
    a.tag = Bytes::Copy(tag);
    a.argarray.push_back(simple::Sequence(client_.session, seq, true));
    a.argarray.push_back(simple::PutRootFh());
    a.argarray.push_back(simple::GetFh());
    return mds_.Call(a, kCred);
  };
  Reply first = call("first");
  Reply again = call("second");
  ASSERT_TRUE(first.decoded);
  EXPECT_EQ(first.res.status, NFS4_OK);
  EXPECT_EQ(again.bytes, first.bytes);
  EXPECT_EQ(Tag(again), "first");
}

TEST_F(CompoundEdgeTest, AuthNoneCallsAreCountedWithTheSmallerHeader) {
  // ca_maxrequestsize counts the RPC header (§18.36.3); with AUTH_NONE there is no credential
  // body. A COMPOUND from an AUTH_NONE caller on the session still runs.
  rpc::Cred none;
  none.flavor = rpc::AUTH_NONE;
  std::vector<nfs_argop4> ops;
  ops.push_back(simple::Sequence(client_.session, ++client_.seq, false));
  ops.push_back(simple::PutRootFh());
  Reply r = mds_.Call(std::move(ops), none);
  ASSERT_TRUE(r.decoded);
  EXPECT_EQ(r.res.status, NFS4_OK);
}

}  // namespace
}  // namespace loom::nfs4
