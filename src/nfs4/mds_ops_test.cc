// loom-mds operations that had no test of their own (issue 14): the NFSv4.2 data operations,
// OPEN_DOWNGRADE, the filehandle operations, SECINFO, BIND_CONN_TO_SESSION and the back
// channel's state in SEQUENCE, exclusive creates, setting times, RENAME over an open file,
// orphans after a restart, data-server failures under READ/WRITE/COMMIT, and the SEQUENCE,
// EXCHANGE_ID and COMPOUND errors. Each check names the RFC section it holds the server to.
#include <map>

#include "meta/namespace.h"
#include "nfs4/mds_fixture.h"
#include "nfs4/raw_v4_client.h"
#include "nfs4/state.h"

namespace loom::nfs4 {
namespace {

std::string U32(uint32_t v) {
  xdr::Encoder e;
  e.u32(v);
  return e.Flatten();
}

// A settime4 (RFC 8881 §3.3): SET_TO_CLIENT_TIME4 with the time, or the server's clock.
std::string ClientTime(int64_t sec, uint32_t nsec) {
  xdr::Encoder e;
  e.u32(SET_TO_CLIENT_TIME4);
  e.i64(sec);
  e.u32(nsec);
  return e.Flatten();
}
std::string ServerTime() { return U32(SET_TO_SERVER_TIME4); }

fattr4 Attrs(const std::map<uint32_t, std::string>& vals) {
  fattr4 f;
  std::string body;
  for (const auto& [bit, v] : vals) {  // std::map: bitmap order
    if (f.attrmask.size() <= bit / 32) f.attrmask.resize(bit / 32 + 1);
    f.attrmask[bit / 32] |= 1u << (bit % 32);
    body += v;
  }
  f.attr_vals = Bytes::Copy(body);
  return f;
}

nfs_argop4 Setattr(const std::map<uint32_t, std::string>& vals) {
  auto a = Op(OP_SETATTR);
  a.opsetattr = std::make_unique<SETATTR4args>();
  a.opsetattr->obj_attributes = Attrs(vals);
  return a;
}

nfs_argop4 OpenExclusive(const std::string& name, createmode4 how, const verifier4& verf,
                         const fattr4& attrs = {}) {
  auto a = Open("excl-owner", name, OPEN4_SHARE_ACCESS_BOTH, true);
  createhow4& h = a.opopen->openhow.how;
  h.mode = how;
  h.createverf = verf;
  h.ch_createboth.cva_verf = verf;
  h.ch_createboth.cva_attrs = attrs;
  return a;
}

nfs_argop4 OpenDowngrade(const stateid4& s, uint32_t access, uint32_t deny) {
  auto a = Op(OP_OPEN_DOWNGRADE);
  a.opopen_downgrade = std::make_unique<OPEN_DOWNGRADE4args>();
  a.opopen_downgrade->open_stateid = s;
  a.opopen_downgrade->share_access = access;
  a.opopen_downgrade->share_deny = deny;
  return a;
}

nfs_argop4 SeekWhat(const stateid4& s, uint64_t off, data_content4 what) {
  auto a = Seek(s, off);
  a.opseek->sa_what = what;
  return a;
}

nfs_argop4 Deallocate(const stateid4& s, uint64_t off, uint64_t len) {
  auto a = Op(OP_DEALLOCATE);
  a.opdeallocate = std::make_unique<DEALLOCATE4args>();
  a.opdeallocate->da_stateid = s;
  a.opdeallocate->da_offset = off;
  a.opdeallocate->da_length = len;
  return a;
}

nfs_argop4 Bind(const sessionid4& s, channel_dir_from_client4 dir) {
  auto b = Op(OP_BIND_CONN_TO_SESSION);
  b.opbind_conn_to_session = std::make_unique<BIND_CONN_TO_SESSION4args>();
  b.opbind_conn_to_session->bctsa_sessid = s;
  b.opbind_conn_to_session->bctsa_dir = dir;
  return b;
}

nfs_argop4 SequenceOn(const sessionid4& s, sequenceid4 seq, slotid4 slot) {
  auto q = Sequence(s, seq);
  q.opsequence->sa_slotid = slot;
  q.opsequence->sa_highest_slotid = slot;
  return q;
}

channel_attrs4 Fore() { return channel_attrs4{0, 1 << 20, 1 << 20, 8192, 8, 16, {}}; }
channel_attrs4 Back() { return channel_attrs4{0, 4096, 4096, 0, 2, 1, {}}; }

class MdsOpsTest : public MdsTest {
 protected:
  // SEQUENCE + ops in a COMPOUND of minor version 2 (the NFSv4.2 operations need it).
  nfsstat4 Run2(std::vector<nfs_argop4> ops, COMPOUND4res* out = nullptr, V4Client* c = nullptr) {
    if (!c) c = client_.get();
    c->seq++;
    ops.insert(ops.begin(), Sequence(c->session, c->seq));
    auto r = c->Raw(std::move(ops), 2);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return NFS4ERR_SERVERFAULT;
    nfsstat4 st = r->status;
    if (out) *out = std::move(r.value());
    return st;
  }
  // The SEQUENCE status flags a plain SEQUENCE of `c` gets.
  uint32_t StatusFlags(RawClient& c, const sessionid4& s, sequenceid4 seq) {
    auto r = c.Call(Ops(Sequence(s, seq)));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return 0;
    EXPECT_EQ(r->status, NFS4_OK);  // a failure is recorded here, not read as flags
    return r->status == NFS4_OK ? r->resarray[0].opsequence->sr_resok4.sr_status_flags : 0;
  }
  // The time attributes (seconds) of `fh`: time_access and time_modify.
  std::pair<int64_t, int64_t> Times(const Bytes& fh) {
    COMPOUND4res r;
    EXPECT_EQ(Run(Ops(PutFh(fh), Getattr({FATTR4_TIME_ACCESS, FATTR4_TIME_MODIFY})), &r), NFS4_OK);
    if (r.resarray.size() < 3) return {-1, -1};
    const Bytes& b = r.resarray[2].opgetattr->resok4.obj_attributes.attr_vals;
    xdr::Decoder d(b.data, b.size);
    int64_t a = -1, m = -1;
    uint32_t ns;
    EXPECT_TRUE(d.i64(a) && d.u32(ns) && d.i64(m) && d.u32(ns));
    return {a, m};
  }
  // The regular files holding file data on the data servers (the handle secrets aside).
  std::vector<fsys::path> DataFiles() {
    std::vector<fsys::path> out;
    for (int i = 0; i < ds_count_; i++) {
      fsys::path root = dir_ + "/ds" + std::to_string(i);
      for (auto it = fsys::recursive_directory_iterator(root);
           it != fsys::recursive_directory_iterator(); ++it) {
        if (it->path().filename() == nfs3::LocalFs::kHiddenName) {
          it.disable_recursion_pending();
          continue;
        }
        if (it->is_regular_file()) out.push_back(it->path());
      }
    }
    return out;
  }
};

// ---------------------------------------------------------------------------------------
// NFSv4.2 data operations (RFC 7862 §15).

TEST_F(MdsOpsTest, ReadPlusReturnsDataSegmentsAndEof) {
  Bytes fh;
  stateid4 sid;
  CreateFile("rp", "hello", &fh, &sid);
  // Extend the file: bytes 5..99 were never written (a hole on the data server).
  ASSERT_EQ(Run(Ops(PutFh(fh), SetSize(sid, 100))), NFS4_OK);
  COMPOUND4res r;
  ASSERT_EQ(Run2(Ops(PutFh(fh), ReadPlus(sid, 0, 1000)), &r), NFS4_OK);
  const read_plus_res4& all = r.resarray[2].opread_plus->rp_resok4;
  // §15.10.3: the server may return a hole as data; loom-mds cannot see holes through NFSv3,
  // so the range comes back as one data segment whose unwritten part reads as zeros.
  EXPECT_TRUE(all.rpr_eof);
  ASSERT_EQ(all.rpr_contents.size(), 1u);
  EXPECT_EQ(all.rpr_contents[0].rpc_content, NFS4_CONTENT_DATA);
  EXPECT_EQ(all.rpr_contents[0].rpc_data.d_offset, 0u);
  EXPECT_EQ(all.rpr_contents[0].rpc_data.d_data.view(),
            std::string("hello") + std::string(95, '\0'));
  // A segment in the middle carries its own offset and is not the end of the file.
  ASSERT_EQ(Run2(Ops(PutFh(fh), ReadPlus(sid, 2, 2)), &r), NFS4_OK);
  const read_plus_res4& mid = r.resarray[2].opread_plus->rp_resok4;
  EXPECT_FALSE(mid.rpr_eof);
  ASSERT_EQ(mid.rpr_contents.size(), 1u);
  EXPECT_EQ(mid.rpr_contents[0].rpc_data.d_offset, 2u);
  EXPECT_EQ(mid.rpr_contents[0].rpc_data.d_data.view(), "ll");
  // At or past the end: eof and no segment at all (never a zero-length one).
  for (uint64_t off : {100u, 5000u}) {
    ASSERT_EQ(Run2(Ops(PutFh(fh), ReadPlus(sid, off, 10)), &r), NFS4_OK);
    EXPECT_TRUE(r.resarray[2].opread_plus->rp_resok4.rpr_eof) << off;
    EXPECT_TRUE(r.resarray[2].opread_plus->rp_resok4.rpr_contents.empty()) << off;
  }
  // On a directory: ISDIR (§15.10.3 lists READ's errors).
  ASSERT_EQ(Run(Ops(PutRootFh(), Mkdir("d"))), NFS4_OK);
  EXPECT_EQ(Run2(Ops(PutRootFh(), Lookup("d"), ReadPlus(AnonymousStateid(), 0, 10))),
            NFS4ERR_ISDIR);
}

TEST_F(MdsOpsTest, SeekFindsDataAndTheEndOfFileHole) {
  Bytes fh;
  stateid4 sid;
  CreateFile("seek", std::string(4096, 's'), &fh, &sid);
  COMPOUND4res r;
  // §15.11.3: every file has a virtual hole at its end; the data servers report no other
  // holes, so data starts where asked and the first hole is at the end of the file.
  ASSERT_EQ(Run2(Ops(PutFh(fh), SeekWhat(sid, 100, NFS4_CONTENT_DATA)), &r), NFS4_OK);
  EXPECT_EQ(r.resarray[2].opseek->resok4.sr_offset, 100u);
  EXPECT_FALSE(r.resarray[2].opseek->resok4.sr_eof);
  ASSERT_EQ(Run2(Ops(PutFh(fh), SeekWhat(sid, 100, NFS4_CONTENT_HOLE)), &r), NFS4_OK);
  EXPECT_EQ(r.resarray[2].opseek->resok4.sr_offset, 4096u);
  EXPECT_TRUE(r.resarray[2].opseek->resok4.sr_eof);
  // An offset at or past the end of the file is NXIO for either kind.
  for (data_content4 what : {NFS4_CONTENT_DATA, NFS4_CONTENT_HOLE}) {
    EXPECT_EQ(Run2(Ops(PutFh(fh), SeekWhat(sid, 4096, what))), NFS4ERR_NXIO) << what;
    EXPECT_EQ(Run2(Ops(PutFh(fh), SeekWhat(sid, 1u << 30, what))), NFS4ERR_NXIO) << what;
  }
  // A stateid of another file: BAD_STATEID before anything else.
  Bytes other;
  stateid4 osid;
  CreateFile("seek2", "x", &other, &osid);
  EXPECT_EQ(Run2(Ops(PutFh(fh), SeekWhat(osid, 0, NFS4_CONTENT_DATA))), NFS4ERR_BAD_STATEID);
}

TEST_F(MdsOpsTest, AllocateExtendsWithZerosAndDeallocateIsNotSupported) {
  Bytes fh;
  stateid4 sid;
  CreateFile("alloc", "abc", &fh, &sid);
  // §15.1.3: after ALLOCATE the range is allocated; loom-mds extends the size over it (as
  // fallocate without KEEP_SIZE) and the new bytes read as zeros.
  ASSERT_EQ(Run2(Ops(PutFh(fh), Allocate(sid, 1000, 24))), NFS4_OK);
  EXPECT_EQ(AttrOf<uint64_t>(fh, FATTR4_SIZE), 1024u);
  COMPOUND4res r;
  ASSERT_EQ(Run(Ops(PutFh(fh), Read(sid, 0, 2000)), &r), NFS4_OK);
  EXPECT_EQ(r.resarray[2].opread->resok4.data.view(), "abc" + std::string(1021, '\0'));
  EXPECT_TRUE(r.resarray[2].opread->resok4.eof);
  // A range inside the file changes neither size nor data.
  ASSERT_EQ(Run2(Ops(PutFh(fh), Allocate(sid, 0, 10))), NFS4_OK);
  EXPECT_EQ(AttrOf<uint64_t>(fh, FATTR4_SIZE), 1024u);
  ASSERT_EQ(Run(Ops(PutFh(fh), Read(sid, 0, 3)), &r), NFS4_OK);
  EXPECT_EQ(r.resarray[2].opread->resok4.data.view(), "abc");
  // A zero length is INVAL (as fallocate(2) has it); a range past 2^63 - 1 is FBIG.
  EXPECT_EQ(Run2(Ops(PutFh(fh), Allocate(sid, 0, 0))), NFS4ERR_INVAL);
  EXPECT_EQ(Run2(Ops(PutFh(fh), Allocate(sid, INT64_MAX, 2))), NFS4ERR_FBIG);
  // A read-only open may not allocate: ALLOCATE writes, so its stateid must allow writing.
  ASSERT_EQ(Run(Ops(PutFh(fh), OpenFh("reader", OPEN4_SHARE_ACCESS_READ)), &r), NFS4_OK);
  stateid4 ro = r.resarray[2].opopen->resok4.stateid;
  EXPECT_EQ(Run2(Ops(PutFh(fh), Allocate(ro, 0, 4096))), NFS4ERR_OPENMODE);
  EXPECT_EQ(AttrOf<uint64_t>(fh, FATTR4_SIZE), 1024u);
  // DEALLOCATE is optional (RFC 7862 §13, Table 6): NFSv3 data servers cannot punch holes, so
  // it is NOTSUPP and leaves the bytes as they were.
  EXPECT_EQ(Run2(Ops(PutFh(fh), Deallocate(sid, 0, 3))), NFS4ERR_NOTSUPP);
  ASSERT_EQ(Run(Ops(PutFh(fh), Read(sid, 0, 3)), &r), NFS4_OK);
  EXPECT_EQ(r.resarray[2].opread->resok4.data.view(), "abc");
}

TEST_F(MdsOpsTest, MinorVersionTwoOperationsAreIllegalInMinorVersionOne) {
  Bytes fh;
  stateid4 sid;
  CreateFile("v1", "data", &fh, &sid);
  // RFC 8881 §15.1.3.4, §18.52: an operation number outside the COMPOUND's minor version
  // is an illegal one, answered with an ILLEGAL result (RFC 7862 §13 defines them for minor
  // version 2 only). Linux nfsd answers the same.
  for (auto make : {+[](const stateid4& s) { return Seek(s, 0); },
                    +[](const stateid4& s) { return Allocate(s, 0, 10); },
                    +[](const stateid4& s) { return ReadPlus(s, 0, 10); }}) {
    COMPOUND4res r;
    EXPECT_EQ(Run(Ops(PutFh(fh), make(sid)), &r), NFS4ERR_OP_ILLEGAL);
    ASSERT_EQ(r.resarray.size(), 3u);
    EXPECT_EQ(r.resarray[2].resop, OP_ILLEGAL);
  }
  EXPECT_EQ(AttrOf<uint64_t>(fh, FATTR4_SIZE), 4u);  // the ALLOCATE did not run
  EXPECT_EQ(Run2(Ops(PutFh(fh), Seek(sid, 0))), NFS4_OK);
}

// ---------------------------------------------------------------------------------------
// OPEN_DOWNGRADE (RFC 8881 §18.18).

TEST_F(MdsOpsTest, OpenDowngradeNarrowsTheOpen) {
  Bytes fh;
  stateid4 sid;
  CreateFile("down", "0123", &fh, &sid);  // OPEN4_SHARE_ACCESS_BOTH, deny none
  COMPOUND4res r;
  ASSERT_EQ(
      Run(Ops(PutFh(fh), OpenDowngrade(sid, OPEN4_SHARE_ACCESS_READ, OPEN4_SHARE_DENY_NONE)), &r),
      NFS4_OK);
  stateid4 rd = r.resarray[2].opopen_downgrade->resok4.open_stateid;
  EXPECT_EQ(rd.other, sid.other);
  EXPECT_EQ(rd.seqid, sid.seqid + 1);
  // The old seqid is OLD_STATEID; the new one reads, and writing is OPENMODE (the stateid no
  // longer sanctions it, §15.1).
  EXPECT_EQ(Run(Ops(PutFh(fh), Read(sid, 0, 4))), NFS4ERR_OLD_STATEID);
  ASSERT_EQ(Run(Ops(PutFh(fh), Read(rd, 0, 4)), &r), NFS4_OK);
  EXPECT_EQ(r.resarray[2].opread->resok4.data.view(), "0123");
  EXPECT_EQ(Run(Ops(PutFh(fh), Write(rd, 0, "x"))), NFS4ERR_OPENMODE);
  // §18.18.3: access or deny bits not held (WRITE now, a deny never asked) are INVAL, and so
  // is no access at all; the open keeps its state.
  EXPECT_EQ(Run(Ops(PutFh(fh), OpenDowngrade(rd, OPEN4_SHARE_ACCESS_WRITE, OPEN4_SHARE_DENY_NONE))),
            NFS4ERR_INVAL);
  EXPECT_EQ(Run(Ops(PutFh(fh), OpenDowngrade(rd, OPEN4_SHARE_ACCESS_READ, OPEN4_SHARE_DENY_WRITE))),
            NFS4ERR_INVAL);
  EXPECT_EQ(Run(Ops(PutFh(fh), OpenDowngrade(rd, 0, OPEN4_SHARE_DENY_NONE))), NFS4ERR_INVAL);
  EXPECT_EQ(Run(Ops(PutFh(fh), Read(rd, 0, 1))), NFS4_OK);
  // This open still reads, so another client cannot deny reading...
  auto b = NewClient("client-b");
  auto deny_read = OpenFh("b", OPEN4_SHARE_ACCESS_WRITE);
  deny_read.opopen->share_deny = OPEN4_SHARE_DENY_READ;
  EXPECT_EQ(Run(Ops(PutFh(fh), std::move(deny_read)), nullptr, b.get()), NFS4ERR_SHARE_DENIED);
  // ...but may write: the downgraded open neither writes nor denies anything.
  EXPECT_EQ(Run(Ops(PutFh(fh), OpenFh("b", OPEN4_SHARE_ACCESS_WRITE)), nullptr, b.get()), NFS4_OK);
  // On another file the stateid is BAD_STATEID.
  Bytes other;
  stateid4 osid;
  CreateFile("down2", "", &other, &osid);
  EXPECT_EQ(
      Run(Ops(PutFh(other), OpenDowngrade(rd, OPEN4_SHARE_ACCESS_READ, OPEN4_SHARE_DENY_NONE))),
      NFS4ERR_BAD_STATEID);
}

// ---------------------------------------------------------------------------------------
// Filehandle operations and SECINFO.

TEST_F(MdsOpsTest, SaveRestoreAndPublicFilehandles) {
  ASSERT_EQ(Run(Ops(PutRootFh(), Mkdir("sub"))), NFS4_OK);
  COMPOUND4res r;
  ASSERT_EQ(Run(Ops(PutRootFh(), GetFh()), &r), NFS4_OK);
  const Bytes root = r.resarray[2].opgetfh->resok4.object;
  // §18.27.3: RESTOREFH makes the saved filehandle current again.
  ASSERT_EQ(Run(Ops(PutRootFh(), SaveFh(), Lookup("sub"), GetFh(), RestoreFh(), GetFh()), &r),
            NFS4_OK);
  EXPECT_NE(r.resarray[4].opgetfh->resok4.object.view(), root.view());
  EXPECT_EQ(r.resarray[6].opgetfh->resok4.object.view(), root.view());
  // Nothing saved: NFS4ERR_RESTOREFH, the error §15.1 defines for exactly this and §15.2
  // lists for RESTOREFH (§18.27.3's prose says NOFILEHANDLE; Linux nfsd, like loom-mds,
  // answers RESTOREFH, and clients treat either as fatal).
  EXPECT_EQ(Run(Ops(PutRootFh(), RestoreFh(), GetFh()), &r), NFS4ERR_RESTOREFH);
  EXPECT_EQ(r.resarray.size(), 3u);
  // SAVEFH needs a current filehandle (§18.28.3).
  EXPECT_EQ(Run(Ops(SaveFh())), NFS4ERR_NOFILEHANDLE);
  // The saved filehandle lasts for one COMPOUND only (§16.2.3.1.1).
  ASSERT_EQ(Run(Ops(PutRootFh(), SaveFh())), NFS4_OK);
  EXPECT_EQ(Run(Ops(RestoreFh())), NFS4ERR_RESTOREFH);
  // §18.20.3: PUTPUBFH; loom-mds has one namespace, whose root is its public filehandle.
  ASSERT_EQ(Run(Ops(Op(OP_PUTPUBFH), GetFh(), Lookup("sub")), &r), NFS4_OK);
  EXPECT_EQ(r.resarray[2].opgetfh->resok4.object.view(), root.view());
}

TEST_F(MdsOpsTest, SecinfoListsFlavorsAndConsumesTheFilehandle) {
  Bytes fh;
  stateid4 sid;
  CreateFile("f", "", &fh, &sid);
  ASSERT_EQ(Run(Ops(PutRootFh(), Mkdir("dir"))), NFS4_OK);
  COMPOUND4res r;
  // §18.29.3: the flavors usable for the named object, in order of preference.
  ASSERT_EQ(Run(Ops(PutRootFh(), Secinfo("f")), &r), NFS4_OK);
  const auto& flavors = r.resarray[2].opsecinfo->resok4;
  ASSERT_EQ(flavors.size(), 2u);
  EXPECT_EQ(flavors[0].flavor, rpc::AUTH_SYS);
  EXPECT_EQ(flavors[1].flavor, rpc::AUTH_NONE);
  // RFC 8881 §2.6.3.1.1.8: after SECINFO there is no current filehandle.
  EXPECT_EQ(Run(Ops(PutRootFh(), Secinfo("f"), GetFh())), NFS4ERR_NOFILEHANDLE);
  // Errors: a missing name, a file as the directory, a bad name (§18.29.3, §15.2).
  EXPECT_EQ(Run(Ops(PutRootFh(), Secinfo("missing"))), NFS4ERR_NOENT);
  EXPECT_EQ(Run(Ops(PutFh(fh), Secinfo("x"))), NFS4ERR_NOTDIR);
  EXPECT_EQ(Run(Ops(PutRootFh(), Secinfo(".."))), NFS4ERR_BADNAME);
  EXPECT_EQ(Run(Ops(Secinfo("f"))), NFS4ERR_NOFILEHANDLE);
  // SECINFO_NO_NAME of a directory's parent: the same flavors, the filehandle consumed
  // (§18.45.3); of a file's parent: NOTDIR.
  ASSERT_EQ(Run(Ops(PutRootFh(), Lookup("dir"), SecinfoParent()), &r), NFS4_OK);
  EXPECT_EQ(r.resarray[3].opsecinfo_no_name->resok4.size(), 2u);
  EXPECT_EQ(Run(Ops(PutRootFh(), Lookup("dir"), SecinfoParent(), GetFh())), NFS4ERR_NOFILEHANDLE);
  EXPECT_EQ(Run(Ops(PutFh(fh), SecinfoParent())), NFS4ERR_NOTDIR);
}

// ---------------------------------------------------------------------------------------
// Creates, times, RENAME over an open file, orphans across a restart.

TEST_F(MdsOpsTest, ExclusiveCreatesAreIdempotentOnlyForTheirVerifier) {
  const verifier4 v1{1, 1, 1, 1, 1, 1, 1, 1}, v2{2, 2, 2, 2, 2, 2, 2, 2};
  for (createmode4 how : {EXCLUSIVE4, EXCLUSIVE4_1}) {
    const std::string name = how == EXCLUSIVE4 ? "e4" : "e41";
    fattr4 attrs = how == EXCLUSIVE4_1 ? Attrs({{FATTR4_MODE, U32(0640)}}) : fattr4{};
    COMPOUND4res r;
    ASSERT_EQ(Run(Ops(PutRootFh(), OpenExclusive(name, how, v1, attrs), GetFh()), &r), NFS4_OK);
    const Bytes fh = r.resarray[3].opgetfh->resok4.object;
    ASSERT_EQ(Run(Ops(PutFh(fh), Write(r.resarray[2].opopen->resok4.stateid, 0, "first"))),
              NFS4_OK);
    // §18.16.3: the same verifier is a retransmission of the create: the same file, opened,
    // not truncated.
    ASSERT_EQ(Run(Ops(PutRootFh(), OpenExclusive(name, how, v1, attrs), GetFh()), &r), NFS4_OK);
    EXPECT_EQ(r.resarray[3].opgetfh->resok4.object.view(), fh.view()) << name;
    EXPECT_EQ(AttrOf<uint64_t>(fh, FATTR4_SIZE), 5u) << name;
    // Another verifier is another create: the name exists.
    EXPECT_EQ(Run(Ops(PutRootFh(), OpenExclusive(name, how, v2, attrs))), NFS4ERR_EXIST) << name;
    // EXCLUSIVE4_1 sets the attributes it carries (§18.16.3, cva_attrs).
    if (how == EXCLUSIVE4_1) {
      EXPECT_EQ(AttrOf<uint32_t>(fh, FATTR4_MODE) & 07777, 0640u);
    }
  }
  // EXCLUSIVE4_1 may not carry attributes outside suppattr_exclcreat: time_access holds the
  // verifier (§18.16.3), so giving it is INVAL.
  auto bad =
      OpenExclusive("e-bad", EXCLUSIVE4_1, v1, Attrs({{FATTR4_TIME_ACCESS_SET, ServerTime()}}));
  EXPECT_EQ(Run(Ops(PutRootFh(), std::move(bad))), NFS4ERR_INVAL);
  EXPECT_EQ(Run(Ops(PutRootFh(), Lookup("e-bad"))), NFS4ERR_NOENT);
}

TEST_F(MdsOpsTest, TimesAreSetToTheClientsOrTheServersClock) {
  Bytes fh;
  stateid4 sid;
  CreateFile("t", "x", &fh, &sid);
  // SETATTR of time_access_set and time_modify_set (RFC 8881 §18.30, §5.8.2):
  // SET_TO_CLIENT_TIME4 sets the given time exactly.
  ASSERT_EQ(Run(Ops(PutFh(fh), Setattr({{FATTR4_TIME_ACCESS_SET, ClientTime(1000, 5)},
                                        {FATTR4_TIME_MODIFY_SET, ClientTime(2000, 7)}}))),
            NFS4_OK);
  EXPECT_EQ(Times(fh), std::make_pair(int64_t{1000}, int64_t{2000}));
  // SET_TO_SERVER_TIME4 takes the server's clock; only the attribute named changes.
  const int64_t before = ::time(nullptr);
  ASSERT_EQ(Run(Ops(PutFh(fh), Setattr({{FATTR4_TIME_MODIFY_SET, ServerTime()}}))), NFS4_OK);
  auto [atime, mtime] = Times(fh);
  EXPECT_EQ(atime, 1000);
  EXPECT_GE(mtime, before);
  // Another user: with write permission, the server's time only (utimes(NULL) rules); an
  // explicit time is for the owner (PERM); without write permission, ACCESS.
  ASSERT_EQ(Run(Ops(PutFh(fh), Setattr({{FATTR4_MODE, U32(0666)}}))), NFS4_OK);
  auto other = NewClient("client-t");
  other->cred = rpc::Cred::Sys(1000, 1000, {}, "t");
  EXPECT_EQ(
      Run(Ops(PutFh(fh), Setattr({{FATTR4_TIME_ACCESS_SET, ServerTime()}})), nullptr, other.get()),
      NFS4_OK);
  EXPECT_GE(Times(fh).first, before);
  EXPECT_EQ(Run(Ops(PutFh(fh), Setattr({{FATTR4_TIME_MODIFY_SET, ClientTime(5, 0)}})), nullptr,
                other.get()),
            NFS4ERR_PERM);
  ASSERT_EQ(Run(Ops(PutFh(fh), Setattr({{FATTR4_MODE, U32(0644)}}))), NFS4_OK);
  EXPECT_EQ(
      Run(Ops(PutFh(fh), Setattr({{FATTR4_TIME_MODIFY_SET, ServerTime()}})), nullptr, other.get()),
      NFS4ERR_ACCESS);
  EXPECT_GE(Times(fh).second, before);
  EXPECT_NE(Times(fh).second, 5);
  // A time_how4 that is neither 0 nor 1 is malformed (BADXDR).
  EXPECT_EQ(Run(Ops(PutFh(fh), Setattr({{FATTR4_TIME_MODIFY_SET, U32(2)}}))), NFS4ERR_BADXDR);
}

TEST_F(MdsOpsTest, RenameOverAnOpenFileKeepsItReadableUntilClosed) {
  Bytes victim, newcomer;
  stateid4 vsid, nsid;
  CreateFile("victim", "old bytes", &victim, &vsid);
  CreateFile("newcomer", "new bytes", &newcomer, &nsid);
  ASSERT_EQ(Run(Ops(PutFh(newcomer), Close(nsid))), NFS4_OK);
  COMPOUND4res r;
  ASSERT_EQ(Run(Ops(PutRootFh(), SaveFh(), Rename("newcomer", "victim")), &r), NFS4_OK);
  // §18.26.3: the old name is gone, the target name now names the renamed file.
  EXPECT_EQ(Run(Ops(PutRootFh(), Lookup("newcomer"))), NFS4ERR_NOENT);
  ASSERT_EQ(Run(Ops(PutRootFh(), Lookup("victim"), GetFh()), &r), NFS4_OK);
  EXPECT_EQ(r.resarray[3].opgetfh->resok4.object.view(), newcomer.view());
  // The replaced file was open: it lives on (OPEN4_RESULT_PRESERVE_UNLINKED, §18.16.4)
  // through its handle and stateid, with its own bytes, until the CLOSE.
  ASSERT_EQ(Run(Ops(PutFh(victim), Read(vsid, 0, 100)), &r), NFS4_OK);
  EXPECT_EQ(r.resarray[2].opread->resok4.data.view(), "old bytes");
  ASSERT_EQ(Run(Ops(PutFh(victim), Write(vsid, 0, "OLD"))), NFS4_OK);
  EXPECT_EQ(AttrOf<uint32_t>(victim, FATTR4_NUMLINKS), 0u);
  ASSERT_EQ(Run(Ops(PutRootFh(), Lookup("victim"), OpenFh("o2", OPEN4_SHARE_ACCESS_READ)), &r),
            NFS4_OK);
  stateid4 s2 = r.resarray[3].opopen->resok4.stateid;
  ASSERT_EQ(Run(Ops(PutRootFh(), Lookup("victim"), Read(s2, 0, 100)), &r), NFS4_OK);
  EXPECT_EQ(r.resarray[3].opread->resok4.data.view(), "new bytes");
  ASSERT_EQ(Run(Ops(PutFh(victim), Close(vsid))), NFS4_OK);
  EXPECT_EQ(Run(Ops(PutFh(victim), Getattr({FATTR4_SIZE}))), NFS4ERR_STALE);
}

TEST_F(MdsOpsTest, OrphansAreReleasedByARestartWithoutGrace) {
  Bytes fh;
  stateid4 sid;
  CreateFile("orphan", "doomed bytes", &fh, &sid);
  const uint64_t ino = AttrOf<uint64_t>(fh, FATTR4_FILEID);
  ASSERT_EQ(Run(Ops(PutRootFh(), Remove("orphan"))), NFS4_OK);
  auto orphans = [&]() {
    auto o = meta::RunTxn(*store_, [&](meta::Txn& t) { return mds_->ns().ListOrphans(t, 100); });
    EXPECT_TRUE(o.ok());
    return o.ok() ? o.value() : std::vector<meta::Orphan>{};
  };
  auto gc = [&]() {
    auto g = meta::RunTxn(*store_, [&](meta::Txn& t) { return mds_->ns().ListGc(t, 100); });
    EXPECT_TRUE(g.ok());
    std::vector<uint64_t> inos;
    if (g.ok())
      for (const auto& item : g.value()) inos.push_back(item.ino);
    return inos;
  };
  // Unlinked while open: an orphan, its data file still in place.
  ASSERT_EQ(orphans().size(), 1u);
  EXPECT_EQ(orphans()[0].ino, ino);
  EXPECT_TRUE(gc().empty());
  // The server goes away with the file open. With no grace period nobody can reclaim the open,
  // so Init releases the orphan (§8.4.2.1: only reclaims could keep it): inode gone, data file
  // queued for deletion.
  StopMds();
  StartMds(/*grace=*/0);
  EXPECT_FALSE(mds_->InGrace());
  EXPECT_TRUE(orphans().empty());
  EXPECT_EQ(gc(), std::vector<uint64_t>{ino});
  EXPECT_EQ(Run(Ops(PutFh(fh), Getattr({FATTR4_SIZE}))), NFS4ERR_STALE);
}

TEST_F(MdsOpsTest, OrphansWaitForTheEndOfGrace) {
  Bytes fh;
  stateid4 sid;
  CreateFile("orphan", "kept for reclaim", &fh, &sid);
  ASSERT_EQ(Run(Ops(PutRootFh(), Remove("orphan"))), NFS4_OK);
  StopMds();
  StartMds(/*grace=*/30, /*reclaim_complete=*/false);
  ASSERT_TRUE(mds_->InGrace());
  // During grace the orphan is kept: its open may be reclaimed (§8.4.2.1).
  auto reclaim = OpenFh("owner1", OPEN4_SHARE_ACCESS_BOTH);
  reclaim.opopen->claim.claim = CLAIM_PREVIOUS;
  reclaim.opopen->claim.delegate_type = OPEN_DELEGATE_NONE;
  COMPOUND4res r;
  ASSERT_EQ(Run(Ops(PutFh(fh), std::move(reclaim)), &r), NFS4_OK);
  stateid4 s2 = r.resarray[2].opopen->resok4.stateid;
  ASSERT_EQ(Run(Ops(PutFh(fh), Read(s2, 0, 100)), &r), NFS4_OK);
  EXPECT_EQ(r.resarray[2].opread->resok4.data.view(), "kept for reclaim");
  // Grace ends (the clock, not a sleep; the client renews its lease first); the reclaimed
  // open still holds the file; its CLOSE frees it.
  rpc::testing::AdvanceClockMs(31000);
  ASSERT_EQ(Run(Ops(PutRootFh())), NFS4_OK);
  mds_->Tick();
  EXPECT_FALSE(mds_->InGrace());
  EXPECT_EQ(Run(Ops(PutFh(fh), Getattr({FATTR4_SIZE}))), NFS4_OK);
  ASSERT_EQ(Run(Ops(PutFh(fh), Close(s2))), NFS4_OK);
  EXPECT_EQ(Run(Ops(PutFh(fh), Getattr({FATTR4_SIZE}))), NFS4ERR_STALE);
}

// ---------------------------------------------------------------------------------------
// Data-server failures under the MDS's own READ, WRITE and COMMIT (the mapping of
// FromDataServer, mds.cc; the data-server side of it in data_servers.h).

TEST_F(MdsOpsTest, DataServerErrorsMapToNfs4Status) {
  // RFC 8881 §15.1: DELAY (try again later) for a server that is down or slow, the space
  // errors as they are, IO for lost or unreadable data.
  EXPECT_EQ(FromDataServer(Status::Ok()), NFS4_OK);
  EXPECT_EQ(FromDataServer(Status::Unavailable("down")), NFS4ERR_DELAY);
  EXPECT_EQ(FromDataServer(Status::Timeout("slow")), NFS4ERR_DELAY);
  EXPECT_EQ(FromDataServer(mds::FromNfs3(nfs3::NFS3ERR_JUKEBOX, 1, "WRITE")), NFS4ERR_DELAY);
  EXPECT_EQ(FromDataServer(mds::FromNfs3(nfs3::NFS3ERR_NOSPC, 1, "WRITE")), NFS4ERR_NOSPC);
  EXPECT_EQ(FromDataServer(mds::FromNfs3(nfs3::NFS3ERR_DQUOT, 1, "WRITE")), NFS4ERR_DQUOT);
  EXPECT_EQ(FromDataServer(mds::FromNfs3(nfs3::NFS3ERR_FBIG, 1, "WRITE")), NFS4ERR_FBIG);
  EXPECT_EQ(FromDataServer(mds::FromNfs3(nfs3::NFS3ERR_ROFS, 1, "WRITE")), NFS4ERR_ROFS);
  EXPECT_EQ(FromDataServer(mds::FromNfs3(nfs3::NFS3ERR_STALE, 1, "READ")), NFS4ERR_IO);
  EXPECT_EQ(FromDataServer(mds::FromNfs3(nfs3::NFS3ERR_IO, 1, "READ")), NFS4ERR_IO);
}

TEST_F(MdsOpsTest, LostDataFileIsIoForReadWriteAndCommit) {
  Bytes fh;
  stateid4 sid;
  CreateFile("lost", "some bytes", &fh, &sid);
  auto files = DataFiles();
  ASSERT_EQ(files.size(), 1u);
  fsys::remove(files[0]);
  // The data server answers STALE for a handle whose file is gone: the bytes are lost, which
  // is an I/O error, not something to retry (RFC 8881 §15.1, NFS4ERR_IO).
  EXPECT_EQ(Run(Ops(PutFh(fh), Read(sid, 0, 10))), NFS4ERR_IO);
  EXPECT_EQ(Run(Ops(PutFh(fh), Write(sid, 0, "more"))), NFS4ERR_IO);
  EXPECT_EQ(Run(Ops(PutFh(fh), Commit())), NFS4ERR_IO);
  EXPECT_EQ(AttrOf<uint64_t>(fh, FATTR4_SIZE), 10u);  // a failed WRITE changed nothing
}

TEST_F(MdsOpsTest, StoppedDataServersAreDelayForReadWriteAndCommit) {
  Bytes fh;
  stateid4 sid;
  CreateFile("down", "some bytes", &fh, &sid);
  for (auto& ds : ds_) ds.server.reset();
  // Unreachable servers may come back: DELAY tells the client to retry (§15.1.1.3).
  EXPECT_EQ(Run(Ops(PutFh(fh), Read(sid, 0, 10))), NFS4ERR_DELAY);
  EXPECT_EQ(Run(Ops(PutFh(fh), Write(sid, 0, "more"))), NFS4ERR_DELAY);
  EXPECT_EQ(Run(Ops(PutFh(fh), Commit())), NFS4ERR_DELAY);
  EXPECT_EQ(AttrOf<uint64_t>(fh, FATTR4_SIZE), 10u);
  // A file with no data file yet needs a data server for its first WRITE: DELAY too.
  Bytes empty;
  stateid4 esid;
  CreateFile("empty", "", &empty, &esid);
  EXPECT_EQ(Run(Ops(PutFh(empty), Write(esid, 0, "x"))), NFS4ERR_DELAY);
  EXPECT_EQ(AttrOf<uint64_t>(empty, FATTR4_SIZE), 0u);
}

// pwritev2 on a data server failing with `write_errno` while it is set (LocalFs's seam).
class FailingWrites : public nfs3::SyncOps {
 public:
  ssize_t Write(int fd, const iovec* iov, int iovcnt, off_t offset, int flags) override {
    if (int e = write_errno.load()) {
      errno = e;
      return -1;
    }
    return SyncOps::Write(fd, iov, iovcnt, offset, flags);
  }
  std::atomic<int> write_errno{0};
};

TEST_F(MdsOpsTest, DataServerWriteErrorsReachTheClient) {
  Bytes fh;
  stateid4 sid;
  CreateFile("full", "kept", &fh, &sid);
  auto files = DataFiles();
  ASSERT_EQ(files.size(), 1u);
  const int i = files[0].string().find(dir_ + "/ds1/") == 0 ? 1 : 0;
  // The data server holding the file restarts over the same export and port with a disk
  // whose writes fail.
  FailingWrites disk;
  const uint16_t port = ds_[i].server->port();
  ds_[i].server.reset();
  ds_[i].svc.reset();
  ds_[i].fs.reset();
  nfs3::LocalFs::Options fo{dir_ + "/ds" + std::to_string(i), "", 64};
  fo.sync = &disk;
  auto fs = nfs3::LocalFs::Open(fo);
  ASSERT_TRUE(fs.ok()) << fs.status().ToString();
  ds_[i].fs = std::move(fs.value());
  ds_[i].svc = std::make_unique<nfs3::Nfs3Service>(ds_[i].fs.get(), nfs3::Nfs3Service::Options{});
  rpc::ServerOptions o;
  o.listen = "127.0.0.1:" + std::to_string(port);
  o.workers = 2;
  o.loops = 1;
  ds_[i].server = std::make_unique<rpc::RpcServer>(o);
  ds_[i].server->Register(ds_[i].svc->NfsProgram());
  ds_[i].server->Register(ds_[i].svc->MountProgram());
  ASSERT_TRUE(ds_[i].server->Start().ok());
  // The pool's connection to the old server may not have seen its close yet: the first ping
  // can fail on it (and drop it); the next one connects to the new server.
  Status ping = pool_->Ping(static_cast<uint32_t>(i + 1));
  if (!ping.ok()) ping = pool_->Ping(static_cast<uint32_t>(i + 1));
  ASSERT_TRUE(ping.ok()) << ping.ToString();
  // The data server's NFSv3 status arrives as the NFSv4 one of the same meaning (RFC 8881
  // §18.32.3 lists NOSPC, DQUOT, FBIG and ROFS for WRITE); nothing is written, the size stays.
  for (auto [err, want] : {std::pair{ENOSPC, NFS4ERR_NOSPC},
                           {EDQUOT, NFS4ERR_DQUOT},
                           {EFBIG, NFS4ERR_FBIG},
                           {EROFS, NFS4ERR_ROFS}}) {
    disk.write_errno = err;
    EXPECT_EQ(Run(Ops(PutFh(fh), Write(sid, 4, "lost"))), want) << err;
  }
  disk.write_errno = 0;
  EXPECT_EQ(AttrOf<uint64_t>(fh, FATTR4_SIZE), 4u);
  COMPOUND4res r;
  ASSERT_EQ(Run(Ops(PutFh(fh), Write(sid, 4, "+ok"), Read(sid, 0, 100)), &r), NFS4_OK);
  EXPECT_EQ(r.resarray[3].opread->resok4.data.view(), "kept+ok");
}

// ---------------------------------------------------------------------------------------
// Sessions: SEQUENCE errors, EXCHANGE_ID, NOT_ONLY_OP, BIND_CONN_TO_SESSION, the back channel.

TEST_F(MdsOpsTest, SequenceSlotErrors) {
  // §18.46.3: a slot beyond the session's is BADSLOT; the session has 8 (V4Client::Setup).
  auto r = client_->Raw(Ops(SequenceOn(client_->session, 1, 8), PutRootFh()));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, NFS4ERR_BADSLOT);
  ASSERT_EQ(r->resarray.size(), 1u);
  // Another slot within the table has its own sequence, starting at 1.
  r = client_->Raw(Ops(SequenceOn(client_->session, 1, 7), PutRootFh()));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, NFS4_OK);
  EXPECT_EQ(r->resarray[0].opsequence->sr_resok4.sr_slotid, 7u);
  EXPECT_EQ(r->resarray[0].opsequence->sr_resok4.sr_highest_slotid, 7u);
  // More operations than ca_maxoperations (16 here, SEQUENCE included) is TOO_MANY_OPS
  // (§2.10.6.4), and uses no sequence id.
  std::vector<nfs_argop4> many;
  for (int i = 0; i < 16; i++) many.push_back(PutRootFh());
  EXPECT_EQ(Run(std::move(many)), NFS4ERR_TOO_MANY_OPS);
  client_->seq--;
  // A retransmission of a request whose reply was not cached: RETRY_UNCACHED_REP
  // (§2.10.6.1.3); the request is not executed again.
  auto first = client_->Call(Ops(PutRootFh(), Mkdir("once")), /*cachethis=*/false);
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->status, NFS4_OK);
  auto again = client_->Replay(Ops(PutRootFh(), Mkdir("again")));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->status, NFS4ERR_RETRY_UNCACHED_REP);
  EXPECT_EQ(Run(Ops(PutRootFh(), Lookup("again"))), NFS4ERR_NOENT);
}

TEST_F(MdsOpsTest, ABusySlotAnswersDelay) {
  // A request in progress on slot 0 (claimed through the session table, as the COMPOUND code
  // does before running the operations).
  auto q = Sequence(client_->session, client_->seq + 1);
  SequenceResult running = mds_->sessions().Sequence(*q.opsequence, 200, 2);
  ASSERT_EQ(running.status, NFS4_OK);
  // §2.10.6.2: its retransmission while it runs gets DELAY, not a replay and not a second run.
  client_->seq++;
  auto r = client_->Replay(Ops(PutRootFh(), Mkdir("dup")));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, NFS4ERR_DELAY);
  // So does the next sequence id on the same slot before the first finishes.
  auto next = Sequence(client_->session, client_->seq + 1);
  EXPECT_EQ(mds_->sessions().Sequence(*next.opsequence, 200, 2).status, NFS4ERR_DELAY);
  // Once it completes (reply not cached), the slot moves on.
  mds_->sessions().Complete(client_->session, 0, nullptr, false);
  EXPECT_EQ(Run(Ops(PutRootFh(), Lookup("dup"))), NFS4ERR_NOENT);
}

TEST_F(MdsOpsTest, ExchangeIdUpdatesAndClidInUse) {
  auto ex = [&](V4Client& c, const std::string& owner, const verifier4& v, uint32_t flags,
                EXCHANGE_ID4resok* ok = nullptr) {
    auto a = ExchangeId(owner, v);
    a.opexchange_id->eia_flags = flags;
    auto r = c.Raw(Ops(std::move(a)));
    EXPECT_TRUE(r.ok());
    if (!r.ok()) return NFS4ERR_SERVERFAULT;
    if (ok && r->status == NFS4_OK) *ok = r->resarray[0].opexchange_id->eir_resok4;
    return r->status;
  };
  const uint32_t upd = EXCHGID4_FLAG_UPD_CONFIRMED_REC_A;
  // §18.35.4 case 6: an update of the confirmed record by its owner: the same client id,
  // reported confirmed; the session goes on.
  EXCHANGE_ID4resok ok;
  ASSERT_EQ(ex(*client_, "client-a", client_->verifier, upd, &ok), NFS4_OK);
  EXPECT_EQ(ok.eir_clientid, client_->clientid);
  EXPECT_TRUE(ok.eir_flags & EXCHGID4_FLAG_CONFIRMED_R);
  EXPECT_EQ(Run(Ops(PutRootFh())), NFS4_OK);
  // Case 8: an update with another verifier is NOT_SAME; case 7: of no record, NOENT.
  EXPECT_EQ(ex(*client_, "client-a", {9, 9, 9, 9, 9, 9, 9, 9}, upd), NFS4ERR_NOT_SAME);
  EXPECT_EQ(ex(*client_, "nobody", client_->verifier, upd), NFS4ERR_NOENT);
  // Another principal: an update is PERM (case 9); a plain EXCHANGE_ID while the record
  // holds a session is CLID_INUSE (case 3, client collision).
  auto stranger = NewClient("client-a", /*setup=*/false);
  stranger->cred = rpc::Cred::Sys(1000, 1000, {}, "elsewhere");
  EXPECT_EQ(ex(*stranger, "client-a", client_->verifier, upd), NFS4ERR_PERM);
  EXPECT_EQ(ex(*stranger, "client-a", client_->verifier, 0), NFS4ERR_CLID_INUSE);
  EXPECT_EQ(Run(Ops(PutRootFh())), NFS4_OK);  // the owner's record and session are intact
  // CREATE_SESSION for a client id by another principal than the one that made it:
  // CLID_INUSE (§18.36.3).
  auto fresh = NewClient("fresh", /*setup=*/false);
  ASSERT_EQ(ex(*fresh, "fresh", fresh->verifier, 0, &ok), NFS4_OK);
  fresh->cred = rpc::Cred::Sys(1000, 1000, {}, "elsewhere");
  auto cs = fresh->Raw(Ops(CreateSession(ok.eir_clientid, ok.eir_sequenceid, 0, Fore(), Back())));
  ASSERT_TRUE(cs.ok());
  EXPECT_EQ(cs->status, NFS4ERR_CLID_INUSE);
  // Unknown flags are INVAL (§18.35.3).
  EXPECT_EQ(ex(*fresh, "fresh", fresh->verifier, 0x80000000u), NFS4ERR_INVAL);
}

TEST_F(MdsOpsTest, SessionlessOperationsMustBeAlone) {
  // §18.35.3, §18.36.3, §18.37.3, §18.34.3, §18.50.3: EXCHANGE_ID, CREATE_SESSION,
  // DESTROY_SESSION, BIND_CONN_TO_SESSION and DESTROY_CLIENTID outside a session must be the
  // only operation: NOT_ONLY_OP, and nothing in the COMPOUND runs.
  auto expect_alone = [&](nfs_argop4 op) {
    const nfs_opnum4 num = op.argop;
    auto r = client_->Raw(Ops(std::move(op), PutRootFh()));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->status, NFS4ERR_NOT_ONLY_OP) << num;
    ASSERT_EQ(r->resarray.size(), 1u) << num;
    EXPECT_EQ(r->resarray[0].resop, num);
  };
  const size_t clients = mds_->sessions().clients();
  expect_alone(ExchangeId("lonely", {4, 4, 4, 4, 4, 4, 4, 4}));
  expect_alone(CreateSession(client_->clientid, 99, 0, Fore(), Back()));
  expect_alone(DestroySession(client_->session));
  expect_alone(Bind(client_->session, CDFC4_FORE));
  auto dc = Op(OP_DESTROY_CLIENTID);
  dc.opdestroy_clientid = std::make_unique<DESTROY_CLIENTID4args>();
  dc.opdestroy_clientid->dca_clientid = client_->clientid;
  expect_alone(std::move(dc));                     // §18.50.3
  EXPECT_EQ(mds_->sessions().clients(), clients);  // no record for "lonely"
  EXPECT_EQ(Run(Ops(PutRootFh())), NFS4_OK);       // the session was not destroyed
  // After SEQUENCE, DESTROY_SESSION of another session may come with other operations...
  auto other = NewClient("other-owner");
  EXPECT_EQ(Run(Ops(DestroySession(other->session), PutRootFh())), NFS4_OK);
  EXPECT_EQ(Run(Ops(PutRootFh()), nullptr, other.get()), NFS4ERR_BADSESSION);
  // ...but of the session the COMPOUND runs in, it must be the last one (§18.37.3).
  COMPOUND4res r;
  EXPECT_EQ(Run(Ops(DestroySession(client_->session), PutRootFh()), &r), NFS4ERR_NOT_ONLY_OP);
  EXPECT_EQ(r.resarray.size(), 2u);
  EXPECT_EQ(Run(Ops(PutRootFh(), DestroySession(client_->session))), NFS4_OK);
  EXPECT_EQ(Run(Ops(PutRootFh())), NFS4ERR_BADSESSION);
}

TEST_F(MdsOpsTest, BindConnToSessionBindsASecondConnection) {
  // A second connection of the same client (its own socket), bound to the session.
  auto second = NewClient("client-a", /*setup=*/false);
  auto r = second->Raw(Ops(Bind(client_->session, CDFC4_FORE)));
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->status, NFS4_OK);
  const auto& ok = r->resarray[0].opbind_conn_to_session->bctsr_resok4;
  // §18.34.3: the session and the direction granted.
  EXPECT_EQ(ok.bctsr_sessid, client_->session);
  EXPECT_EQ(ok.bctsr_dir, CDFS4_FORE);
  EXPECT_FALSE(ok.bctsr_use_conn_in_rdma_mode);
  // Requests on slot 0 go on over either connection, in one sequence.
  second->session = client_->session;
  second->clientid = client_->clientid;
  second->seq = client_->seq;
  EXPECT_EQ(Run(Ops(PutRootFh(), Mkdir("via-second")), nullptr, second.get()), NFS4_OK);
  client_->seq = second->seq;
  EXPECT_EQ(Run(Ops(PutRootFh(), Lookup("via-second"))), NFS4_OK);
  // Both directions asked (on a connection that answers the back channel's CB_NULL probe):
  // BOTH granted.
  RawClient third(/*answer_callbacks=*/true);
  ASSERT_TRUE(third.Connect(port_));
  auto both = third.Call(Ops(Bind(client_->session, CDFC4_FORE_OR_BOTH)));
  ASSERT_TRUE(both.ok());
  ASSERT_EQ(both->status, NFS4_OK);
  EXPECT_EQ(both->resarray[0].opbind_conn_to_session->bctsr_resok4.bctsr_dir, CDFS4_BOTH);
  // An unknown session is BADSESSION; an unknown direction INVAL.
  sessionid4 bogus = client_->session;
  bogus[0] ^= 0xff;
  r = second->Raw(Ops(Bind(bogus, CDFC4_FORE)));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, NFS4ERR_BADSESSION);
  r = second->Raw(Ops(Bind(client_->session, static_cast<channel_dir_from_client4>(9))));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, NFS4ERR_INVAL);
}

TEST_F(MdsOpsTest, CallbackPathDownIsReportedUntilABackChannelWorks) {
  // §18.46.3 SEQ4_STATUS_CB_PATH_DOWN: the client has no working back channel. A session made
  // without one (the fixture's) is told so at once.
  COMPOUND4res r;
  ASSERT_EQ(Run(Ops(PutRootFh()), &r), NFS4_OK);
  EXPECT_TRUE(r.resarray[0].opsequence->sr_resok4.sr_status_flags & SEQ4_STATUS_CB_PATH_DOWN);
  // A client whose connection carries the back channel but never answers the server.
  RawClient silent(/*answer_callbacks=*/false);
  ASSERT_TRUE(silent.Connect(port_));
  auto x = silent.Call(Ops(ExchangeId("cb-silent", {6, 6, 6, 6, 6, 6, 6, 6})));
  ASSERT_TRUE(x.ok());
  ASSERT_EQ(x->status, NFS4_OK);
  const auto& eir = x->resarray[0].opexchange_id->eir_resok4;
  auto c = silent.Call(Ops(CreateSession(eir.eir_clientid, eir.eir_sequenceid,
                                         CREATE_SESSION4_FLAG_CONN_BACK_CHAN, Fore(), Back())));
  ASSERT_TRUE(c.ok());
  ASSERT_EQ(c->status, NFS4_OK);
  const sessionid4 sid = c->resarray[0].opcreate_session->csr_resok4.csr_sessionid;
  EXPECT_TRUE(c->resarray[0].opcreate_session->csr_resok4.csr_flags &
              CREATE_SESSION4_FLAG_CONN_BACK_CHAN);
  // The server probed the path with CB_NULL (RFC 8881 §20.1) as it made the session; while the
  // probe is unanswered the path is not known to be down.
  if (silent.callbacks() == 0) {
    ASSERT_TRUE(silent.WaitCallback());
  }
  EXPECT_EQ(silent.callbacks(), 1);
  EXPECT_EQ(StatusFlags(silent, sid, 1) & SEQ4_STATUS_CB_PATH_DOWN, 0u);
  // The probe times out (the clock moved past the callback timeout, the timeout sweep run
  // here rather than waited for): from then on every SEQUENCE says CB_PATH_DOWN.
  auto bc = mds_->sessions().BackChannelOfSession(sid);
  ASSERT_NE(bc, nullptr);
  rpc::testing::AdvanceClockMs(10001);
  bc->Sweep();
  EXPECT_TRUE(StatusFlags(silent, sid, 2) & SEQ4_STATUS_CB_PATH_DOWN);
  EXPECT_TRUE(StatusFlags(silent, sid, 3) & SEQ4_STATUS_CB_PATH_DOWN);
  // The client binds a connection that answers as its back channel (§18.34): the new probe
  // is answered and the flag clears.
  RawClient answering(/*answer_callbacks=*/true);
  ASSERT_TRUE(answering.Connect(port_));
  auto b = answering.Call(Ops(Bind(sid, CDFC4_BACK_OR_BOTH)));
  ASSERT_TRUE(b.ok());
  ASSERT_EQ(b->status, NFS4_OK);
  EXPECT_EQ(b->resarray[0].opbind_conn_to_session->bctsr_resok4.bctsr_dir, CDFS4_BOTH);
  EXPECT_EQ(StatusFlags(answering, sid, 4) & SEQ4_STATUS_CB_PATH_DOWN, 0u);
}

TEST_F(MdsOpsTest, CallbackPathDownIsTheClientsNotOneSessions) {
  // One client, three sessions: A over a connection that never answers callbacks, B with no
  // back channel, later C over a connection that answers.
  RawClient silent(/*answer_callbacks=*/false), answering(/*answer_callbacks=*/true);
  ASSERT_TRUE(silent.Connect(port_));
  ASSERT_TRUE(answering.Connect(port_));
  auto x = silent.Call(Ops(ExchangeId("cb-three", {8, 8, 8, 8, 8, 8, 8, 8})));
  ASSERT_TRUE(x.ok());
  ASSERT_EQ(x->status, NFS4_OK);
  const clientid4 id = x->resarray[0].opexchange_id->eir_resok4.eir_clientid;
  sequenceid4 cseq = x->resarray[0].opexchange_id->eir_resok4.eir_sequenceid;
  auto create = [&](RawClient& conn, uint32_t flags, sessionid4* out) {
    auto c = conn.Call(Ops(CreateSession(id, cseq++, flags, Fore(), Back())));
    ASSERT_TRUE(c.ok());
    ASSERT_EQ(c->status, NFS4_OK);
    *out = c->resarray[0].opcreate_session->csr_resok4.csr_sessionid;
  };
  sessionid4 a, b, c;
  create(silent, CREATE_SESSION4_FLAG_CONN_BACK_CHAN, &a);
  create(silent, 0, &b);
  const uint32_t down = SEQ4_STATUS_CB_PATH_DOWN, down_session = SEQ4_STATUS_CB_PATH_DOWN_SESSION;
  // §18.46.3: CB_PATH_DOWN is about the client (no back channel on any of its sessions).
  // While A's path is not known to be down, B, which has none, is not told to make one.
  EXPECT_EQ(StatusFlags(silent, b, 1) & (down | down_session), 0u);
  // A's probe times out: now no session of the client has a working path.
  auto bc = mds_->sessions().BackChannelOfSession(a);
  ASSERT_NE(bc, nullptr);
  rpc::testing::AdvanceClockMs(10001);
  bc->Sweep();
  EXPECT_EQ(StatusFlags(silent, a, 1) & down, down);
  EXPECT_EQ(StatusFlags(silent, b, 2) & down, down);
  // C brings a working back channel: the client has a path again. A, whose own channel is
  // still broken, gets CB_PATH_DOWN_SESSION only; B nothing.
  create(answering, CREATE_SESSION4_FLAG_CONN_BACK_CHAN, &c);
  EXPECT_EQ(StatusFlags(answering, c, 1) & (down | down_session), 0u);
  EXPECT_EQ(StatusFlags(silent, a, 2) & (down | down_session), down_session);
  EXPECT_EQ(StatusFlags(silent, b, 3) & (down | down_session), 0u);
  // And callbacks to the client (recalls) take C's working path, not A's broken one.
  SessionId via{};
  uint32_t cb_seq = 0;
  ASSERT_NE(mds_->sessions().BackChannelOf(id, &via, &cb_seq), nullptr);
  EXPECT_EQ(via, c);
}

}  // namespace
}  // namespace loom::nfs4
