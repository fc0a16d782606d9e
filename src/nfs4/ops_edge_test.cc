// OPEN, LOCK and I/O operations with odd arguments (RFC 8881 §18.16, §18.10-18.12, §18.22,
// §18.32; RFC 7862 §15.1): share values out of range, the wrong kind of current filehandle,
// the current stateid when none is set, reclaims outside grace, reads past the end and of
// files that were never written, writes past 2^63, and set-id bits dropped by ALLOCATE.
#include <gtest/gtest.h>

#include "nfs4/compound.h"
#include "nfs4/simple_client.h"
#include "nfs4/testing/direct_mds.h"

namespace loom::nfs4 {
namespace {

using simple::Op;
using testing::DirectClient;
using testing::DirectMds;
using testing::Reply;

template <typename... T>
std::vector<nfs_argop4> Ops(T&&... ops) {
  std::vector<nfs_argop4> v;
  (v.push_back(std::forward<T>(ops)), ...);
  return v;
}

stateid4 CurrentStateid() {
  stateid4 s{};
  s.seqid = 1;
  return s;
}

nfs_argop4 SetMode(uint32_t mode) {
  auto a = Op(OP_SETATTR);
  a.opsetattr = std::make_unique<SETATTR4args>();
  a.opsetattr->obj_attributes.attrmask = {0, 1u << (FATTR4_MODE - 32)};
  xdr::Encoder e;
  e.u32(mode);
  a.opsetattr->obj_attributes.attr_vals = Bytes::Copy(e.Flatten());
  return a;
}

nfs_argop4 FreeStateid(const stateid4& s) {
  auto a = Op(OP_FREE_STATEID);
  a.opfree_stateid = std::make_unique<FREE_STATEID4args>();
  a.opfree_stateid->fsa_stateid = s;
  return a;
}

nfs_argop4 OpenDowngrade(const stateid4& s, uint32_t access) {
  auto a = Op(OP_OPEN_DOWNGRADE);
  a.opopen_downgrade = std::make_unique<OPEN_DOWNGRADE4args>();
  a.opopen_downgrade->open_stateid = s;
  a.opopen_downgrade->share_access = access;
  return a;
}

class OpsEdgeTest : public ::testing::Test {
 protected:
  explicit OpsEdgeTest(rpc::Cred cred = rpc::Cred::Sys(0, 0, {}, "ops-edge"), int data_servers = 1)
      : mds_(DirectMds::Options{.data_servers = data_servers}), cred_(cred), client_(mds_, "ops-edge", cred) {}
  void SetUp() override { ASSERT_EQ(client_.Setup(), NFS4_OK); }

  // Creates `name` in dir_ ("" for the root), open for read and write.
  void Create(const std::string& name, Bytes* fh, stateid4* open) {
    std::vector<nfs_argop4> ops = Ops(simple::PutRootFh());
    if (!dir_.empty()) ops.push_back(simple::Lookup(dir_));
    ops.push_back(simple::Open("o", name, OPEN4_SHARE_ACCESS_BOTH, true));
    ops.push_back(simple::GetFh());
    Reply r = client_.Call(std::move(ops));
    ASSERT_TRUE(r.decoded);
    ASSERT_EQ(r.res.status, NFS4_OK);
    *open = r.res.resarray[r.res.resarray.size() - 2].opopen->resok4.stateid;
    const Bytes& o = r.res.resarray.back().opgetfh->resok4.object;
    *fh = Bytes::Copy(std::string(reinterpret_cast<const char*>(o.data), o.size));
  }
  // The status of the last op of SEQUENCE + ops (the COMPOUND stops at the first error).
  nfsstat4 Last(std::vector<nfs_argop4> ops, Reply* out = nullptr, uint32_t minor = 1) {
    const size_t n = ops.size() + 1;
    ops.insert(ops.begin(), simple::Sequence(client_.session, ++client_.seq, false));
    Reply r = mds_.Call(std::move(ops), cred_, minor);
    EXPECT_TRUE(r.decoded);
    nfsstat4 st = r.res.resarray.size() == n ? OpStatus(r.res.resarray.back()) : NFS4ERR_RESOURCE;
    if (r.res.resarray.size() != n) ADD_FAILURE() << "stopped early: " << r.res.status;
    if (out) *out = std::move(r);
    return st;
  }
  uint32_t Mode(const Bytes& fh) {
    Reply r;
    EXPECT_EQ(Last(Ops(simple::PutFh(fh), simple::Getattr({FATTR4_MODE})), &r), NFS4_OK);
    const Bytes& v = r.res.resarray.back().opgetattr->resok4.obj_attributes.attr_vals;
    xdr::Decoder d(v.data, v.size);
    uint32_t m = ~0u;
    EXPECT_TRUE(d.u32(m));
    return m;
  }

  DirectMds mds_;
  rpc::Cred cred_;
  DirectClient client_;
  std::string dir_;
};

// ---------------------------------------------------------------------------------------
// OPEN (§18.16).

TEST_F(OpsEdgeTest, OpenRefusesShareValuesOutOfRange) {
  // §18.16.3: share_access must name READ, WRITE or both; share_deny at most DENY_BOTH.
  auto none = simple::Open("o", "x", 0, true);
  EXPECT_EQ(Last(Ops(simple::PutRootFh(), std::move(none))), NFS4ERR_INVAL);
  auto deny = simple::Open("o", "x", OPEN4_SHARE_ACCESS_READ, true, true, 4);
  EXPECT_EQ(Last(Ops(simple::PutRootFh(), std::move(deny))), NFS4ERR_INVAL);
  // Only the want-delegation bits, no access: INVAL too.
  auto want_only = simple::Open("o", "x", OPEN4_SHARE_ACCESS_WANT_NO_DELEG, true);
  EXPECT_EQ(Last(Ops(simple::PutRootFh(), std::move(want_only))), NFS4ERR_INVAL);
}

TEST_F(OpsEdgeTest, OpenByNameNeedsADirectoryAndOpensOnlyRegularFiles) {
  Bytes fh;
  stateid4 open;
  Create("file", &fh, &open);
  // CLAIM_NULL looks the name up in the current filehandle: a file is NOTDIR, a symlink
  // SYMLINK (§18.16.3, §15.1.2.9).
  EXPECT_EQ(Last(Ops(simple::PutFh(fh), simple::Open("o", "y", OPEN4_SHARE_ACCESS_READ, false))),
            NFS4ERR_NOTDIR);
  Reply ln;
  ASSERT_EQ(Last(Ops(simple::PutRootFh(), simple::Symlink("ln", "file"), simple::GetFh()), &ln), NFS4_OK);
  const Bytes& lo = ln.res.resarray.back().opgetfh->resok4.object;
  Bytes link = Bytes::Copy(std::string(reinterpret_cast<const char*>(lo.data), lo.size));
  EXPECT_EQ(Last(Ops(simple::PutFh(link), simple::Open("o", "y", OPEN4_SHARE_ACCESS_READ, false))),
            NFS4ERR_SYMLINK);
  // Opening the symlink or a directory itself: SYMLINK and ISDIR.
  EXPECT_EQ(Last(Ops(simple::PutRootFh(), simple::Open("o", "ln", OPEN4_SHARE_ACCESS_READ, false))),
            NFS4ERR_SYMLINK);
  EXPECT_EQ(Last(Ops(simple::PutRootFh(), simple::Mkdir("dir"))), NFS4_OK);
  EXPECT_EQ(Last(Ops(simple::PutRootFh(), simple::Open("o", "dir", OPEN4_SHARE_ACCESS_READ, false))),
            NFS4ERR_ISDIR);
  EXPECT_EQ(Last(Ops(simple::PutRootFh(), simple::OpenFh("o", OPEN4_SHARE_ACCESS_READ))), NFS4ERR_ISDIR);
  // CLAIM_FH cannot create.
  auto fh_create = simple::OpenFh("o", OPEN4_SHARE_ACCESS_READ);
  fh_create.opopen->openhow.opentype = OPEN4_CREATE;
  EXPECT_EQ(Last(Ops(simple::PutFh(fh), std::move(fh_create))), NFS4ERR_INVAL);
  // A claim type for delegations, which this server never grants.
  auto deleg = simple::OpenFh("o", OPEN4_SHARE_ACCESS_READ);
  deleg.opopen->claim.claim = CLAIM_DELEG_CUR_FH;
  EXPECT_EQ(Last(Ops(simple::PutFh(fh), std::move(deleg))), NFS4ERR_NOTSUPP);
}

TEST_F(OpsEdgeTest, ReclaimOutsideGraceIsNoGrace) {
  // §8.4.2.1: CLAIM_PREVIOUS and LOCK reclaims only during grace (none here).
  Bytes fh;
  stateid4 open;
  Create("f", &fh, &open);
  auto prev = simple::OpenFh("o", OPEN4_SHARE_ACCESS_READ);
  prev.opopen->claim.claim = CLAIM_PREVIOUS;
  EXPECT_EQ(Last(Ops(simple::PutFh(fh), std::move(prev))), NFS4ERR_NO_GRACE);
  auto lock = simple::Lock(open, "lo", true, 0, 10);
  lock.oplock->reclaim = true;
  EXPECT_EQ(Last(Ops(simple::PutFh(fh), std::move(lock))), NFS4ERR_NO_GRACE);
}

TEST_F(OpsEdgeTest, AskingForADelegationSaysWhyThereIsNone) {
  // §18.16.3, §10.4: OPEN_DELEGATE_NONE_EXT with the reason when the client asked.
  Bytes fh;
  stateid4 open;
  Create("d", &fh, &open);
  Reply r;
  ASSERT_EQ(Last(Ops(simple::PutFh(fh),
                     simple::OpenFh("o2", OPEN4_SHARE_ACCESS_READ | OPEN4_SHARE_ACCESS_WANT_NO_DELEG)),
                 &r),
            NFS4_OK);
  const open_delegation4& d = r.res.resarray.back().opopen->resok4.delegation;
  EXPECT_EQ(d.delegation_type, OPEN_DELEGATE_NONE_EXT);
  EXPECT_EQ(d.od_whynone.ond_why, WND4_NOT_WANTED);
  ASSERT_EQ(Last(Ops(simple::PutFh(fh),
                     simple::OpenFh("o3", OPEN4_SHARE_ACCESS_READ | OPEN4_SHARE_ACCESS_WANT_READ_DELEG)),
                 &r),
            NFS4_OK);
  EXPECT_EQ(r.res.resarray.back().opopen->resok4.delegation.delegation_type, OPEN_DELEGATE_NONE_EXT);
  EXPECT_NE(r.res.resarray.back().opopen->resok4.delegation.od_whynone.ond_why, WND4_NOT_WANTED);
  ASSERT_EQ(Last(Ops(simple::PutFh(fh), simple::OpenFh("o4", OPEN4_SHARE_ACCESS_READ)), &r), NFS4_OK);
  EXPECT_EQ(r.res.resarray.back().opopen->resok4.delegation.delegation_type, OPEN_DELEGATE_NONE);
}

TEST_F(OpsEdgeTest, UncheckedCreateOfAnExistingFileAppliesTheSizeAttribute) {
  // §18.16.3: UNCHECKED4 of an existing file is an open, with the attributes applied; a size
  // of 0 truncates (O_CREAT|O_TRUNC).
  Bytes fh;
  stateid4 open;
  Create("t", &fh, &open);
  ASSERT_EQ(Last(Ops(simple::PutFh(fh), simple::Write(open, 0, "twelve bytes"))), NFS4_OK);
  auto trunc = simple::Open("o", "t", OPEN4_SHARE_ACCESS_BOTH, true, /*guarded=*/false);
  fattr4 size0;
  size0.attrmask = {1u << FATTR4_SIZE};
  xdr::Encoder e;
  e.u64(0);
  size0.attr_vals = Bytes::Copy(e.Flatten());
  trunc.opopen->openhow.how.createattrs = size0;
  Reply r;
  ASSERT_EQ(Last(Ops(simple::PutRootFh(), std::move(trunc)), &r), NFS4_OK);
  const bitmap4& set = r.res.resarray.back().opopen->resok4.attrset;
  ASSERT_GE(set.size(), 1u);
  EXPECT_TRUE(set[0] & (1u << FATTR4_SIZE));
  Reply g;
  ASSERT_EQ(Last(Ops(simple::PutFh(fh), simple::Getattr({FATTR4_SIZE})), &g), NFS4_OK);
  const Bytes& v = g.res.resarray.back().opgetattr->resok4.obj_attributes.attr_vals;
  xdr::Decoder d(v.data, v.size);
  uint64_t size = 1;
  ASSERT_TRUE(d.u64(size));
  EXPECT_EQ(size, 0u);
  // GUARDED4 of the existing name: EXIST.
  EXPECT_EQ(Last(Ops(simple::PutRootFh(), simple::Open("o", "t", OPEN4_SHARE_ACCESS_READ, true))), NFS4ERR_EXIST);
}

TEST_F(OpsEdgeTest, ExclusiveCreateRefusesAttributesItCannotSet) {
  // §18.16.3: EXCLUSIVE4_1 takes attributes, but not those in suppattr_exclcreat's
  // complement (the size, say): INVAL.
  auto a = simple::Open("o", "ex", OPEN4_SHARE_ACCESS_BOTH, true);
  a.opopen->openhow.how.mode = EXCLUSIVE4_1;
  a.opopen->openhow.how.ch_createboth.cva_verf = {1, 2, 3, 4, 5, 6, 7, 8};
  fattr4 f;
  f.attrmask = {1u << FATTR4_TYPE};  // read-only attribute
  xdr::Encoder e;
  e.u32(NF4REG);
  f.attr_vals = Bytes::Copy(e.Flatten());
  a.opopen->openhow.how.ch_createboth.cva_attrs = f;
  EXPECT_EQ(Last(Ops(simple::PutRootFh(), std::move(a))), NFS4ERR_INVAL);
}

// ---------------------------------------------------------------------------------------
// The current stateid (§16.2.3.1.2) where none is set: BAD_STATEID.

TEST_F(OpsEdgeTest, CurrentStateidWithoutOneIsBadStateid) {
  Bytes fh;
  stateid4 open;
  Create("cs", &fh, &open);
  const stateid4 cur = CurrentStateid();
  EXPECT_EQ(Last(Ops(simple::PutFh(fh), simple::Close(cur))), NFS4ERR_BAD_STATEID);
  EXPECT_EQ(Last(Ops(simple::PutFh(fh), OpenDowngrade(cur, OPEN4_SHARE_ACCESS_READ))), NFS4ERR_BAD_STATEID);
  EXPECT_EQ(Last(Ops(simple::PutFh(fh), simple::Lock(cur, "lo", false, 0, 1))), NFS4ERR_BAD_STATEID);
  EXPECT_EQ(Last(Ops(simple::PutFh(fh), simple::Locku(cur, 0, 1))), NFS4ERR_BAD_STATEID);
  EXPECT_EQ(Last(Ops(FreeStateid(cur))), NFS4ERR_BAD_STATEID);
  EXPECT_EQ(Last(Ops(simple::PutFh(fh), simple::Read(cur, 0, 1))), NFS4ERR_BAD_STATEID);
  EXPECT_EQ(Last(Ops(simple::PutFh(fh), simple::Write(cur, 0, "x"))), NFS4ERR_BAD_STATEID);
  // Set by OPEN, then by LOCK (the lock stateid), it chains through the COMPOUND.
  Reply r;
  ASSERT_EQ(Last(Ops(simple::PutRootFh(), simple::Open("o", "cs", OPEN4_SHARE_ACCESS_BOTH, false),
                     simple::Lock(cur, "lo", true, 0, 10), simple::Locku(cur, 0, 10),
                     simple::Write(cur, 0, "abc")),
                 &r),
            NFS4_OK);
  const stateid4 lock = r.res.resarray[3].oplock->resok4.lock_stateid;
  EXPECT_EQ(r.res.resarray[4].oplocku->lock_stateid.other, lock.other);
  EXPECT_GT(r.res.resarray[4].oplocku->lock_stateid.seqid, lock.seqid);
  EXPECT_EQ(r.res.resarray[5].opwrite->resok4.count, 3u);
  // FREE_STATEID of the current (lock) stateid, now holding no locks.
  // (The second OPEN by the same owner advanced the open stateid's seqid: use the new one.)
  const stateid4 reopened = r.res.resarray[2].opopen->resok4.stateid;
  EXPECT_GT(reopened.seqid, open.seqid);
  EXPECT_EQ(Last(Ops(simple::PutFh(fh), simple::Lock(open, "lo3", false, 0, 1))), NFS4ERR_OLD_STATEID);
  EXPECT_EQ(Last(Ops(simple::PutFh(fh), simple::Lock(reopened, "lo2", false, 0, 1), simple::Locku(cur, 0, 1),
                     FreeStateid(cur))),
            NFS4_OK);
}

TEST_F(OpsEdgeTest, LocksAreOnRegularFilesOnly) {
  Bytes fh;
  stateid4 open;
  Create("l", &fh, &open);
  EXPECT_EQ(Last(Ops(simple::PutRootFh(), simple::Lock(open, "lo", true, 0, 1))), NFS4ERR_ISDIR);
  EXPECT_EQ(Last(Ops(simple::PutRootFh(), simple::Lockt("lo", true, 0, 1))), NFS4ERR_ISDIR);
  Reply ln;
  ASSERT_EQ(Last(Ops(simple::PutRootFh(), simple::Symlink("sl", "l")), &ln), NFS4_OK);
  EXPECT_EQ(Last(Ops(simple::PutRootFh(), simple::Symlink("sl2", "l"), simple::Lockt("lo", true, 0, 1))),
            NFS4ERR_INVAL);
  EXPECT_EQ(Last(Ops(simple::PutRootFh(), simple::Symlink("sl3", "l"), simple::Lock(open, "lo", true, 0, 1))),
            NFS4ERR_INVAL);
  // The open file itself: LOCKT finds no conflict.
  EXPECT_EQ(Last(Ops(simple::PutFh(fh), simple::Lockt("other", true, 0, 100))), NFS4_OK);
}

// ---------------------------------------------------------------------------------------
// READ and WRITE through the MDS (§18.22, §18.32).

TEST_F(OpsEdgeTest, ReadsPastTheEndAndOfBytesNeverWritten) {
  Bytes fh;
  stateid4 open;
  Create("r", &fh, &open);
  // Extended by SETATTR only: no data anywhere, reads as zeros (§18.30.4).
  ASSERT_EQ(Last(Ops(simple::PutFh(fh), simple::SetSize(open, 100))), NFS4_OK);
  Reply r;
  ASSERT_EQ(Last(Ops(simple::PutFh(fh), simple::Read(open, 10, 1000)), &r), NFS4_OK);
  const READ4resok& z = r.res.resarray.back().opread->resok4;
  EXPECT_EQ(z.data.size, 90u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(z.data.data), z.data.size), std::string(90, '\0'));
  EXPECT_TRUE(z.eof);
  // Written in part: the data, then zeros to the size.
  ASSERT_EQ(Last(Ops(simple::PutFh(fh), simple::Write(open, 0, "head"))), NFS4_OK);
  ASSERT_EQ(Last(Ops(simple::PutFh(fh), simple::Read(open, 0, 8)), &r), NFS4_OK);
  const READ4resok& part = r.res.resarray.back().opread->resok4;
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(part.data.data), part.data.size),
            std::string("head\0\0\0\0", 8));
  EXPECT_FALSE(part.eof);
  // At or past the end: nothing, and eof.
  for (uint64_t off : {100ull, 101ull, 1ull << 62}) {
    ASSERT_EQ(Last(Ops(simple::PutFh(fh), simple::Read(open, off, 10)), &r), NFS4_OK);
    EXPECT_EQ(r.res.resarray.back().opread->resok4.data.size, 0u);
    EXPECT_TRUE(r.res.resarray.back().opread->resok4.eof) << off;
  }
  // A zero count inside the file: nothing, not eof.
  ASSERT_EQ(Last(Ops(simple::PutFh(fh), simple::Read(open, 5, 0)), &r), NFS4_OK);
  EXPECT_EQ(r.res.resarray.back().opread->resok4.data.size, 0u);
  EXPECT_FALSE(r.res.resarray.back().opread->resok4.eof);
}

TEST_F(OpsEdgeTest, IoOnlyOnRegularFilesAndWithinTheOffsetRange) {
  Bytes fh;
  stateid4 open;
  Create("w", &fh, &open);
  // §18.32.3: a write whose end is past 2^63 - 1 is FBIG (files are off_t sized).
  EXPECT_EQ(Last(Ops(simple::PutFh(fh), simple::Write(open, (1ull << 63) - 2, "abc"))), NFS4ERR_FBIG);
  EXPECT_EQ(Last(Ops(simple::PutFh(fh), simple::Write(open, ~0ull, "a"))), NFS4ERR_FBIG);
  // READ/WRITE of a directory: ISDIR; of a symlink: INVAL (§18.22.3).
  EXPECT_EQ(Last(Ops(simple::PutRootFh(), simple::Read(open, 0, 1))), NFS4ERR_ISDIR);
  EXPECT_EQ(Last(Ops(simple::PutRootFh(), simple::Write(open, 0, "x"))), NFS4ERR_ISDIR);
  EXPECT_EQ(Last(Ops(simple::PutRootFh(), simple::Symlink("s", "w"), simple::Read(open, 0, 1))), NFS4ERR_INVAL);
  // ALLOCATE past 2^63 - 1: FBIG as well (RFC 7862 §15.1.3).
  EXPECT_EQ(Last(Ops(simple::PutFh(fh), simple::Allocate(open, 1ull << 62, 1ull << 62)), nullptr, 2),
            NFS4ERR_FBIG);
}

TEST_F(OpsEdgeTest, UnstableWritesCommitWithTheSameVerifier) {
  // §18.32.3, §18.3.3: an UNSTABLE write's verifier is the one COMMIT returns while the server
  // did not restart; the client compares them to know its data is safe.
  Bytes fh;
  stateid4 open;
  Create("u", &fh, &open);
  Reply w;
  ASSERT_EQ(Last(Ops(simple::PutFh(fh), simple::Write(open, 0, "unstable", UNSTABLE4)), &w), NFS4_OK);
  const WRITE4resok& wr = w.res.resarray.back().opwrite->resok4;
  EXPECT_EQ(wr.count, 8u);
  Reply c;
  ASSERT_EQ(Last(Ops(simple::PutFh(fh), simple::Commit()), &c), NFS4_OK);
  EXPECT_EQ(c.res.resarray.back().opcommit->resok4.writeverf, wr.writeverf);
  // A FILE_SYNC write is durable at once and says so.
  ASSERT_EQ(Last(Ops(simple::PutFh(fh), simple::Write(open, 8, "stable", FILE_SYNC4)), &w), NFS4_OK);
  EXPECT_EQ(w.res.resarray.back().opwrite->resok4.committed, FILE_SYNC4);
  Reply r;
  ASSERT_EQ(Last(Ops(simple::PutFh(fh), simple::Read(open, 0, 100)), &r), NFS4_OK);
  const Bytes& d = r.res.resarray.back().opread->resok4.data;
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(d.data), d.size), "unstablestable");
}

class OpsGraceTest : public ::testing::Test {
 protected:
  OpsGraceTest() : mds_(DirectMds::Options{.data_servers = 1, .grace_seconds = 3600}) {}
  DirectMds mds_;
};

TEST_F(OpsGraceTest, AfterARestartOnlyReclaimsAndNoSpecialStateidIo) {
  // A file opened before a restart; after it, the server is in grace (§8.4.2.1).
  DirectClient before(mds_, "grace-client");
  ASSERT_EQ(before.Setup(), NFS4_OK);
  Reply made = before.Call(Ops(simple::PutRootFh(), simple::Open("o", "g", OPEN4_SHARE_ACCESS_BOTH, true),
                               simple::GetFh()));
  ASSERT_EQ(made.res.status, NFS4_OK);
  const Bytes& o = made.res.resarray[3].opgetfh->resok4.object;
  Bytes fh = Bytes::Copy(std::string(reinterpret_cast<const char*>(o.data), o.size));
  ASSERT_TRUE(mds_.store().Sync().ok());
  mds_.Restart();
  ASSERT_TRUE(mds_.mds().InGrace());
  // A client the server never knew: I/O with a special stateid and LOCKT could conflict with
  // a lock not yet reclaimed (GRACE), and it has nothing to reclaim (RECLAIM_BAD, §15.1.9.4).
  DirectClient stranger(mds_, "grace-stranger");
  ASSERT_EQ(stranger.Setup(/*reclaim_complete=*/false), NFS4_OK);
  EXPECT_EQ(stranger.Call(Ops(simple::PutFh(fh), simple::Read(stateid4{}, 0, 10))).res.status, NFS4ERR_GRACE);
  EXPECT_EQ(stranger.Call(Ops(simple::PutFh(fh), simple::Lockt("x", true, 0, 1))).res.status, NFS4ERR_GRACE);
  auto prev = simple::OpenFh("o", OPEN4_SHARE_ACCESS_READ);
  prev.opopen->claim.claim = CLAIM_PREVIOUS;
  EXPECT_EQ(stranger.Call(Ops(simple::PutFh(fh), std::move(prev))).res.status, NFS4ERR_RECLAIM_BAD);
  // Not a reclaim: new opens wait for the end of grace.
  EXPECT_EQ(stranger.Call(Ops(simple::PutFh(fh), simple::OpenFh("o", OPEN4_SHARE_ACCESS_READ))).res.status,
            NFS4ERR_GRACE);
  // The client of the previous boot reclaims its open; a delegation it never had is RECLAIM_BAD.
  DirectClient again(mds_, "grace-client");
  ASSERT_EQ(again.Setup(/*reclaim_complete=*/false), NFS4_OK);
  auto deleg = simple::OpenFh("o", OPEN4_SHARE_ACCESS_BOTH);
  deleg.opopen->claim.claim = CLAIM_PREVIOUS;
  deleg.opopen->claim.delegate_type = OPEN_DELEGATE_READ;
  EXPECT_EQ(again.Call(Ops(simple::PutFh(fh), std::move(deleg))).res.status, NFS4ERR_RECLAIM_BAD);
  auto reclaim = simple::OpenFh("o", OPEN4_SHARE_ACCESS_BOTH);
  reclaim.opopen->claim.claim = CLAIM_PREVIOUS;
  Reply ok = again.Call(Ops(simple::PutFh(fh), std::move(reclaim)));
  ASSERT_EQ(ok.res.status, NFS4_OK);
  // A lock reclaim with the reclaimed open is fine during grace.
  auto lock = simple::Lock(ok.res.resarray[2].opopen->resok4.stateid, "lo", true, 0, 10);
  lock.oplock->reclaim = true;
  EXPECT_EQ(again.Call(Ops(simple::PutFh(fh), std::move(lock))).res.status, NFS4_OK);
  // ...but a new lock is not (§8.4.2.1).
  stateid4 open2 = ok.res.resarray[2].opopen->resok4.stateid;
  EXPECT_EQ(again.Call(Ops(simple::PutFh(fh), simple::Lock(open2, "lo-new", true, 20, 10))).res.status,
            NFS4ERR_GRACE);
}

class OpsEdgeUserTest : public OpsEdgeTest {
 protected:
  OpsEdgeUserTest() : OpsEdgeTest(rpc::Cred::Sys(1000, 1000, {}, "user")) {}
  void SetUp() override {
    OpsEdgeTest::SetUp();
    // Root makes a directory everyone may create in; the user's files go there.
    DirectClient admin(mds_, "ops-edge-admin", rpc::Cred::Sys(0, 0, {}, "admin"));
    ASSERT_EQ(admin.Setup(), NFS4_OK);
    Reply r = admin.Call(Ops(simple::PutRootFh(), simple::Mkdir("pub", 0777)));
    ASSERT_EQ(r.res.status, NFS4_OK);
    dir_ = "pub";
  }
};

TEST_F(OpsEdgeUserTest, AllocateByANonRootWriterDropsSetIdBits) {
  // Like a write, an ALLOCATE by anyone but root clears set-user-ID and set-group-ID, also
  // when it does not change the size (RFC 7862 §15.1.3 leaves it to the server's POSIX
  // semantics; Linux does so for fallocate).
  Bytes fh;
  stateid4 open;
  Create("suid", &fh, &open);
  ASSERT_EQ(Last(Ops(simple::PutFh(fh), simple::SetSize(open, 100))), NFS4_OK);
  ASSERT_EQ(Last(Ops(simple::PutFh(fh), SetMode(04755))), NFS4_OK);
  ASSERT_EQ(Mode(fh) & 07777, 04755u);
  ASSERT_EQ(Last(Ops(simple::PutFh(fh), simple::Allocate(open, 0, 50)), nullptr, 2), NFS4_OK);
  EXPECT_EQ(Mode(fh) & 07777, 0755u);
  // Without set-id bits there is nothing to drop, and the mode stays.
  ASSERT_EQ(Last(Ops(simple::PutFh(fh), SetMode(0640))), NFS4_OK);
  ASSERT_EQ(Last(Ops(simple::PutFh(fh), simple::Allocate(open, 0, 50)), nullptr, 2), NFS4_OK);
  EXPECT_EQ(Mode(fh) & 07777, 0640u);
}

// Without data servers nothing was ever written anywhere: sizes come from SETATTR alone.
class OpsNoDataServersTest : public OpsEdgeTest {
 protected:
  OpsNoDataServersTest() : OpsEdgeTest(rpc::Cred::Sys(0, 0, {}, "ops-edge"), 0) {}
};

TEST_F(OpsNoDataServersTest, EmptyFilesReadAsEofAndCommitHasNothingToDo) {
  Bytes fh;
  stateid4 open;
  Create("z", &fh, &open);
  // A size change needs the data servers, which are not there: DELAY, the client retries.
  EXPECT_EQ(Last(Ops(simple::PutFh(fh), simple::SetSize(open, 64))), NFS4ERR_DELAY);
  Reply r;
  ASSERT_EQ(Last(Ops(simple::PutFh(fh), simple::Read(open, 0, 100)), &r), NFS4_OK);
  EXPECT_EQ(r.res.resarray.back().opread->resok4.data.size, 0u);
  EXPECT_TRUE(r.res.resarray.back().opread->resok4.eof);
  // READ_PLUS at the end: no segment at all, never an empty one (RFC 7862 §15.10.3).
  ASSERT_EQ(Last(Ops(simple::PutFh(fh), simple::ReadPlus(open, 0, 10)), &r, 2), NFS4_OK);
  EXPECT_TRUE(r.res.resarray.back().opread_plus->rp_resok4.rpr_contents.empty());
  EXPECT_TRUE(r.res.resarray.back().opread_plus->rp_resok4.rpr_eof);
  // COMMIT of a file with no data anywhere: the server's verifier, nothing to sync.
  ASSERT_EQ(Last(Ops(simple::PutFh(fh), simple::Commit()), &r), NFS4_OK);
  EXPECT_EQ(r.res.resarray.back().opcommit->resok4.writeverf, mds_.mds().write_verifier());
  EXPECT_EQ(Last(Ops(simple::PutRootFh(), simple::Commit())), NFS4ERR_ISDIR);
}

}  // namespace
}  // namespace loom::nfs4
