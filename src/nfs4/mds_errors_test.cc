// loom-mds error paths, one operation at a time (RFC 8881 §15.2 lists each op's errors).
#include "nfs4/mds_fixture.h"

#include <thread>

namespace loom::nfs4 {
namespace {

nfs_argop4 WithSetattr(uint32_t bit, const std::string& vals, const stateid4& sid = {}) {
  auto a = Op(OP_SETATTR);
  a.opsetattr = std::make_unique<SETATTR4args>();
  a.opsetattr->stateid = sid;
  a.opsetattr->obj_attributes.attrmask.resize(bit / 32 + 1);
  a.opsetattr->obj_attributes.attrmask[bit / 32] = 1u << (bit % 32);
  a.opsetattr->obj_attributes.attr_vals = Bytes::Copy(vals);
  return a;
}

std::string U32(uint32_t v) {
  xdr::Encoder e;
  e.u32(v);
  return e.Flatten();
}

std::string Str(const std::string& s) {
  xdr::Encoder e;
  e.string(s);
  return e.Flatten();
}

TEST_F(MdsTest, OpenErrors) {
  EXPECT_EQ(Run(Ops(PutRootFh(), Open("o", "nope", OPEN4_SHARE_ACCESS_READ, false))), NFS4ERR_NOENT);
  ASSERT_EQ(Run(Ops(PutRootFh(), Mkdir("dir"))), NFS4_OK);
  EXPECT_EQ(Run(Ops(PutRootFh(), Open("o", "dir", OPEN4_SHARE_ACCESS_READ, false))), NFS4ERR_ISDIR);
  ASSERT_EQ(Run(Ops(PutRootFh(), Symlink("sl", "dir"))), NFS4_OK);
  EXPECT_EQ(Run(Ops(PutRootFh(), Open("o", "sl", OPEN4_SHARE_ACCESS_READ, false))), NFS4ERR_SYMLINK);
  EXPECT_EQ(Run(Ops(PutRootFh(), Open("o", "x", 0, true))), NFS4ERR_INVAL);  // no access
  Bytes fh;
  stateid4 sid;
  CreateFile("f", "abc", &fh, &sid);
  EXPECT_EQ(Run(Ops(PutRootFh(), Open("o", "f", OPEN4_SHARE_ACCESS_READ, true, true))), NFS4ERR_EXIST);
  // UNCHECKED4 on an existing file opens it.
  EXPECT_EQ(Run(Ops(PutRootFh(), Open("o2", "f", OPEN4_SHARE_ACCESS_READ, true, false))), NFS4_OK);
  // OPEN in a file (not a directory).
  EXPECT_EQ(Run(Ops(PutFh(fh), Open("o", "x", OPEN4_SHARE_ACCESS_READ, false))), NFS4ERR_NOTDIR);
}

TEST_F(MdsTest, ShareDenyBetweenClientsAndOpenMode) {
  Bytes fh;
  stateid4 sid;
  CreateFile("shared", "data", &fh, &sid);
  COMPOUND4res r;
  // A DENY_WRITE open conflicts with the creator's own write open (another owner), so close it.
  ASSERT_EQ(Run(Ops(PutRootFh(), Open("ro", "shared", OPEN4_SHARE_ACCESS_READ, false, true,
                                       OPEN4_SHARE_DENY_WRITE))),
            NFS4ERR_SHARE_DENIED);
  ASSERT_EQ(Run(Ops(PutFh(fh), Close(sid))), NFS4_OK);
  // client A holds it open for read with DENY_WRITE.
  ASSERT_EQ(Run(Ops(PutRootFh(), Open("ro", "shared", OPEN4_SHARE_ACCESS_READ, false, true,
                                       OPEN4_SHARE_DENY_WRITE)), &r),
            NFS4_OK);
  stateid4 ro = r.resarray[2].opopen->resok4.stateid;
  auto b = NewClient("client-b");
  EXPECT_EQ(Run(Ops(PutFh(fh), OpenFh("w", OPEN4_SHARE_ACCESS_WRITE)), nullptr, b.get()),
            NFS4ERR_SHARE_DENIED);
  EXPECT_EQ(Run(Ops(PutFh(fh), OpenFh("r", OPEN4_SHARE_ACCESS_READ)), nullptr, b.get()), NFS4_OK);
  // A read-only open cannot write (OPENMODE).
  EXPECT_EQ(Run(Ops(PutFh(fh), Write(ro, 0, "x"))), NFS4ERR_OPENMODE);
  // A stateid of client A used by client B.
  EXPECT_EQ(Run(Ops(PutFh(fh), Read(ro, 0, 1)), nullptr, b.get()), NFS4ERR_BAD_STATEID);
  // The same stateid on another file.
  Bytes fh2;
  stateid4 sid2;
  CreateFile("other", "", &fh2, &sid2);
  EXPECT_EQ(Run(Ops(PutFh(fh2), Read(ro, 0, 1))), NFS4ERR_BAD_STATEID);
}

TEST_F(MdsTest, LocksHeldAndFreeStateid) {
  Bytes fh;
  stateid4 sid;
  CreateFile("lk", "0123456789", &fh, &sid);
  COMPOUND4res r;
  ASSERT_EQ(Run(Ops(PutFh(fh), Lock(sid, "owner-l", true, 0, 4)), &r), NFS4_OK);
  stateid4 lk = r.resarray[2].oplock->resok4.lock_stateid;
  EXPECT_EQ(Run(Ops(PutFh(fh), Close(sid))), NFS4ERR_LOCKS_HELD);
  auto fs = Op(OP_FREE_STATEID);
  fs.opfree_stateid = std::make_unique<FREE_STATEID4args>();
  fs.opfree_stateid->fsa_stateid = lk;
  EXPECT_EQ(Run(Ops(std::move(fs))), NFS4ERR_LOCKS_HELD);
  ASSERT_EQ(Run(Ops(PutFh(fh), Locku(lk, 0, 4)), &r), NFS4_OK);
  stateid4 lk2 = r.resarray[2].oplocku->lock_stateid;
  // TEST_STATEID: the live lock stateid, the old seqid, and junk.
  auto ts = Op(OP_TEST_STATEID);
  ts.optest_stateid = std::make_unique<TEST_STATEID4args>();
  stateid4 junk{};
  junk.other[0] = 9;
  ts.optest_stateid->ts_stateids = {lk2, lk, junk};
  ASSERT_EQ(Run(Ops(std::move(ts)), &r), NFS4_OK);
  const auto& codes = r.resarray[1].optest_stateid->tsr_resok4.tsr_status_codes;
  ASSERT_EQ(codes.size(), 3u);
  EXPECT_EQ(codes[0], NFS4_OK);
  EXPECT_EQ(codes[1], NFS4ERR_OLD_STATEID);
  EXPECT_EQ(codes[2], NFS4ERR_BAD_STATEID);
  auto fs2 = Op(OP_FREE_STATEID);
  fs2.opfree_stateid = std::make_unique<FREE_STATEID4args>();
  fs2.opfree_stateid->fsa_stateid = lk2;
  EXPECT_EQ(Run(Ops(std::move(fs2))), NFS4_OK);
  EXPECT_EQ(Run(Ops(PutFh(fh), Close(sid))), NFS4_OK);
  // A length-0 lock is INVAL.
  ASSERT_EQ(Run(Ops(PutFh(fh), OpenFh("o3", OPEN4_SHARE_ACCESS_BOTH)), &r), NFS4_OK);
  EXPECT_EQ(Run(Ops(PutFh(fh), Lock(r.resarray[2].opopen->resok4.stateid, "z", true, 0, 0))),
            NFS4ERR_INVAL);
}

TEST_F(MdsTest, SetattrPermissionsAndBadAttributes) {
  Bytes fh;
  stateid4 sid;
  CreateFile("perm", "x", &fh, &sid);
  auto other = NewClient("client-c");
  other->cred = rpc::Cred::Sys(1000, 1000, {}, "c");
  // Setup ran as root; this session's calls now go as uid 1000, who does not own the file.
  EXPECT_EQ(Run(Ops(PutFh(fh), WithSetattr(FATTR4_MODE, U32(0777))), nullptr, other.get()), NFS4ERR_PERM);
  EXPECT_EQ(Run(Ops(PutFh(fh), WithSetattr(FATTR4_OWNER, Str("1000"))), nullptr, other.get()),
            NFS4ERR_PERM);
  // A name@domain owner is BADOWNER; a read-only attribute is INVAL; junk values BADXDR.
  EXPECT_EQ(Run(Ops(PutFh(fh), WithSetattr(FATTR4_OWNER, Str("bob@example")))), NFS4ERR_BADOWNER);
  EXPECT_EQ(Run(Ops(PutFh(fh), WithSetattr(FATTR4_TYPE, U32(1)))), NFS4ERR_INVAL);
  EXPECT_EQ(Run(Ops(PutFh(fh), WithSetattr(FATTR4_MODE, "\x01\x02"))), NFS4ERR_BADXDR);
  // Root may chown; the new owner shows in GETATTR.
  ASSERT_EQ(Run(Ops(PutFh(fh), WithSetattr(FATTR4_OWNER, Str("1000")))), NFS4_OK);
  COMPOUND4res r;
  ASSERT_EQ(Run(Ops(PutFh(fh), Getattr({FATTR4_OWNER})), &r), NFS4_OK);
  EXPECT_EQ(r.resarray[2].opgetattr->resok4.obj_attributes.attr_vals.view(), Str("1000"));
  // Size changes need a stateid (here a bogus one).
  stateid4 bad{};
  bad.other[0] = 7;
  EXPECT_EQ(Run(Ops(PutFh(fh), WithSetattr(FATTR4_SIZE, std::string(8, '\0'), bad))),
            NFS4ERR_BAD_STATEID);
}

TEST_F(MdsTest, VerifyNverifyAccessSecinfo) {
  Bytes fh;
  stateid4 sid;
  CreateFile("v", "12345", &fh, &sid);
  auto verify = [](nfs_opnum4 op, uint64_t size) {
    auto a = Op(op);
    fattr4 f;
    f.attrmask = {1u << FATTR4_SIZE};
    xdr::Encoder e;
    e.u64(size);
    f.attr_vals = Bytes::Copy(e.Flatten());
    if (op == OP_VERIFY) {
      a.opverify = std::make_unique<VERIFY4args>();
      a.opverify->obj_attributes = f;
    } else {
      a.opnverify = std::make_unique<NVERIFY4args>();
      a.opnverify->obj_attributes = f;
    }
    return a;
  };
  EXPECT_EQ(Run(Ops(PutFh(fh), verify(OP_VERIFY, 5))), NFS4_OK);
  EXPECT_EQ(Run(Ops(PutFh(fh), verify(OP_VERIFY, 6))), NFS4ERR_NOT_SAME);
  EXPECT_EQ(Run(Ops(PutFh(fh), verify(OP_NVERIFY, 5))), NFS4ERR_SAME);
  EXPECT_EQ(Run(Ops(PutFh(fh), verify(OP_NVERIFY, 6))), NFS4_OK);
  // ACCESS as a stranger to a 0644 file: read only.
  auto other = NewClient("client-d");
  other->cred = rpc::Cred::Sys(4242, 4242, {}, "d");
  COMPOUND4res r;
  ASSERT_EQ(Run(Ops(PutFh(fh), AccessOp(ACCESS4_READ | ACCESS4_MODIFY | ACCESS4_EXECUTE)), &r,
                other.get()),
            NFS4_OK);
  EXPECT_EQ(r.resarray[2].opaccess->resok4.access, ACCESS4_READ);
  // SECINFO_NO_NAME consumes the current filehandle.
  auto si = Op(OP_SECINFO_NO_NAME);
  si.opsecinfo_no_name = std::make_unique<secinfo_style4>(SECINFO_STYLE4_CURRENT_FH);
  ASSERT_EQ(Run(Ops(PutRootFh(), std::move(si)), &r), NFS4_OK);
  EXPECT_FALSE(r.resarray[2].opsecinfo_no_name->resok4.empty());
  auto si2 = Op(OP_SECINFO_NO_NAME);
  si2.opsecinfo_no_name = std::make_unique<secinfo_style4>(SECINFO_STYLE4_CURRENT_FH);
  EXPECT_EQ(Run(Ops(PutRootFh(), std::move(si2), GetFh())), NFS4ERR_NOFILEHANDLE);
}

TEST_F(MdsTest, RemoveRenameErrorsAndStaleHandles) {
  Bytes fh;
  stateid4 sid;
  CreateFile("gone", "bytes", &fh, &sid);
  ASSERT_EQ(Run(Ops(PutFh(fh), Close(sid))), NFS4_OK);
  EXPECT_EQ(Run(Ops(PutRootFh(), Remove("nope"))), NFS4ERR_NOENT);
  EXPECT_EQ(Run(Ops(PutRootFh(), Rename("nope", "x"))), NFS4ERR_NOFILEHANDLE);  // no saved fh
  EXPECT_EQ(Run(Ops(PutRootFh(), SaveFh(), Rename("nope", "x"))), NFS4ERR_NOENT);
  ASSERT_EQ(Run(Ops(PutRootFh(), Mkdir("d1"))), NFS4_OK);
  ASSERT_EQ(Run(Ops(PutRootFh(), Lookup("d1"), Mkdir("d2"))), NFS4_OK);
  // A directory cannot move under itself.
  EXPECT_EQ(Run(Ops(PutRootFh(), SaveFh(), Lookup("d1"), Lookup("d2"), Rename("d1", "d1"))),
            NFS4ERR_INVAL);
  // Removing the closed file deletes it: its handle is stale, its data file is queued for GC.
  ASSERT_EQ(Run(Ops(PutRootFh(), Remove("gone"))), NFS4_OK);
  EXPECT_EQ(Run(Ops(PutFh(fh), Getattr({FATTR4_SIZE}))), NFS4ERR_STALE);
  // An open file keeps working after its last name goes (orphan), until CLOSE.
  Bytes fh2;
  stateid4 sid2;
  CreateFile("orphan", "still readable", &fh2, &sid2);
  ASSERT_EQ(Run(Ops(PutRootFh(), Remove("orphan"))), NFS4_OK);
  COMPOUND4res r;
  ASSERT_EQ(Run(Ops(PutFh(fh2), Read(sid2, 0, 100)), &r), NFS4_OK);
  EXPECT_EQ(r.resarray[2].opread->resok4.data.view(), "still readable");
  ASSERT_EQ(Run(Ops(PutFh(fh2), Close(sid2))), NFS4_OK);
  EXPECT_EQ(Run(Ops(PutFh(fh2), Getattr({FATTR4_SIZE}))), NFS4ERR_STALE);
}

TEST_F(MdsTest, WritesFinishingOutOfOrderNeverShrinkTheFile) {
  // The Linux client sends the tail of a file and its body in parallel; whichever WRITE
  // completes last must not cut the size back.
  Bytes fh;
  stateid4 sid;
  CreateFile("race", "", &fh, &sid);
  std::string body(1 << 20, 'b');
  ASSERT_EQ(Run(Ops(PutFh(fh), Write(sid, 1 << 20, "tail!!!"))), NFS4_OK);
  ASSERT_EQ(Run(Ops(PutFh(fh), Write(sid, 0, body))), NFS4_OK);
  COMPOUND4res r;
  ASSERT_EQ(Run(Ops(PutFh(fh), Getattr({FATTR4_SIZE})), &r), NFS4_OK);
  xdr::Decoder d(r.resarray[2].opgetattr->resok4.obj_attributes.attr_vals.data,
                 r.resarray[2].opgetattr->resok4.obj_attributes.attr_vals.size);
  uint64_t size = 0;
  ASSERT_TRUE(d.u64(size));
  EXPECT_EQ(size, (1u << 20) + 7u);
}

TEST_F(MdsTest, DestroyedClientsDoNotHoldGraceAfterARestart) {
  auto ds = Op(OP_DESTROY_SESSION);
  ds.opdestroy_session = std::make_unique<DESTROY_SESSION4args>();
  ds.opdestroy_session->dsa_sessionid = client_->session;
  ASSERT_EQ(client_->Raw(Ops(std::move(ds)))->status, NFS4_OK);
  auto dc = Op(OP_DESTROY_CLIENTID);
  dc.opdestroy_clientid = std::make_unique<DESTROY_CLIENTID4args>();
  dc.opdestroy_clientid->dca_clientid = client_->clientid;
  ASSERT_EQ(client_->Raw(Ops(std::move(dc)))->status, NFS4_OK);
  StopMds();
  StartMds(/*grace=*/30);
  EXPECT_FALSE(mds_->InGrace());  // the only client said goodbye: nobody to wait for
}

// Client ids carry the boot epoch: a restart moves it on by one, and a store made afresh
// starts at a random one, so a server whose state was wiped does not hand out the ids of its
// previous incarnation again (RFC 8881 §2.4). The old client's id is stale on the new one.
TEST_F(MdsTest, ClientIdsOfAnEarlierIncarnationAreNeverReused) {
  const clientid4 first = client_->clientid;
  StopMds();
  StartMds();
  const clientid4 restarted = client_->clientid;
  EXPECT_EQ(restarted >> 32, (first >> 32) + 1);
  StopMds();
  fsys::remove_all(dir_ + "/meta");  // the namespace and its client records made afresh
  StartMds();
  const clientid4 fresh = client_->clientid;
  // A fresh store's first epoch is random (31 bits): equal to the last one 1 time in 2^30.
  EXPECT_NE(fresh >> 32, restarted >> 32);
  EXPECT_NE(fresh >> 32, uint64_t{1});
  for (clientid4 old : {first, restarted}) {
    auto cs = Op(OP_CREATE_SESSION);
    cs.opcreate_session = std::make_unique<CREATE_SESSION4args>();
    cs.opcreate_session->csa_clientid = old;
    auto r = client_->Raw(Ops(std::move(cs)));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->status, NFS4ERR_STALE_CLIENTID) << std::hex << old;
  }
}

TEST_F(MdsTest, SessionLifecycle) {
  // DESTROY_CLIENTID with a session left: busy.
  auto dc = Op(OP_DESTROY_CLIENTID);
  dc.opdestroy_clientid = std::make_unique<DESTROY_CLIENTID4args>();
  dc.opdestroy_clientid->dca_clientid = client_->clientid;
  auto r = client_->Raw(Ops(std::move(dc)));
  EXPECT_EQ(r->status, NFS4ERR_CLIENTID_BUSY);
  // CREATE_SESSION with a stale client id.
  auto cs = Op(OP_CREATE_SESSION);
  cs.opcreate_session = std::make_unique<CREATE_SESSION4args>();
  cs.opcreate_session->csa_clientid = 0xdead;
  r = client_->Raw(Ops(std::move(cs)));
  EXPECT_EQ(r->status, NFS4ERR_STALE_CLIENTID);
  // DESTROY_SESSION, then the session is gone.
  auto ds = Op(OP_DESTROY_SESSION);
  ds.opdestroy_session = std::make_unique<DESTROY_SESSION4args>();
  ds.opdestroy_session->dsa_sessionid = client_->session;
  r = client_->Raw(Ops(std::move(ds)));
  EXPECT_EQ(r->status, NFS4_OK);
  EXPECT_EQ(Run(Ops(PutRootFh())), NFS4ERR_BADSESSION);
  auto dc2 = Op(OP_DESTROY_CLIENTID);
  dc2.opdestroy_clientid = std::make_unique<DESTROY_CLIENTID4args>();
  dc2.opdestroy_clientid->dca_clientid = client_->clientid;
  r = client_->Raw(Ops(std::move(dc2)));
  EXPECT_EQ(r->status, NFS4_OK);
}

class MdsLeaseTest : public MdsTest {
 protected:
  void SetUp() override {
    lease_seconds_ = 1;
    MdsTest::SetUp();
  }
};

TEST_F(MdsLeaseTest, ExpiredLeaseDropsTheClientAndItsState) {
  // The first client holds an open with DENY_BOTH (RFC 8881 §9.7).
  COMPOUND4res r;
  ASSERT_EQ(Run(Ops(PutRootFh(), Open("owner1", "leased", OPEN4_SHARE_ACCESS_BOTH, true, true,
                                      OPEN4_SHARE_DENY_BOTH), GetFh()), &r), NFS4_OK);
  const Bytes fh = r.resarray[3].opgetfh->resok4.object;
  auto b = NewClient("client-e");
  EXPECT_EQ(Run(Ops(PutFh(fh), OpenFh("w", OPEN4_SHARE_ACCESS_WRITE)), nullptr, b.get()),
            NFS4ERR_SHARE_DENIED);
  // Half a lease later (client B renewing, A silent) nothing has expired.
  rpc::testing::AdvanceClockMs(600);
  ASSERT_EQ(Run(Ops(PutRootFh()), nullptr, b.get()), NFS4_OK);
  mds_->Tick();
  EXPECT_EQ(Run(Ops(PutFh(fh), OpenFh("w", OPEN4_SHARE_ACCESS_WRITE)), nullptr, b.get()),
            NFS4ERR_SHARE_DENIED);
  // Past A's lease (1 s; B renewed): A's session is gone and its open released.
  rpc::testing::AdvanceClockMs(600);
  ASSERT_EQ(Run(Ops(PutRootFh()), nullptr, b.get()), NFS4_OK);
  mds_->Tick();
  EXPECT_EQ(Run(Ops(PutRootFh())), NFS4ERR_BADSESSION);
  EXPECT_EQ(Run(Ops(PutFh(fh), OpenFh("w", OPEN4_SHARE_ACCESS_WRITE)), nullptr, b.get()), NFS4_OK);
}

}  // namespace
}  // namespace loom::nfs4
