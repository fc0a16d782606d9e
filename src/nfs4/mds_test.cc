// loom-mds end to end in one process: two loom-ds data servers, the metadata server over a
// RocksDB store, and a small NFSv4.1 client, all over loopback TCP.
#include "nfs4/mds_fixture.h"

namespace loom::nfs4 {
namespace {

TEST_F(MdsTest, CompoundAndSessionRules) {
  // Minor version 0 is refused with no results (RFC 8881 §16.2.3).
  auto r0 = client_->Raw(Ops(PutRootFh()), 0);
  ASSERT_TRUE(r0.ok());
  EXPECT_EQ(r0->status, NFS4ERR_MINOR_VERS_MISMATCH);
  EXPECT_TRUE(r0->resarray.empty());
  // Without SEQUENCE first.
  auto r1 = client_->Raw(Ops(PutRootFh(), GetFh()));
  EXPECT_EQ(r1->status, NFS4ERR_OP_NOT_IN_SESSION);
  // SEQUENCE in second position.
  auto s = Op(OP_SEQUENCE);
  s.opsequence = std::make_unique<SEQUENCE4args>();
  EXPECT_EQ(Run(Ops(PutRootFh(), std::move(s))), NFS4ERR_SEQUENCE_POS);
  // A bad session.
  V4Client bogus = *client_;
  bogus.session[0] ^= 0xff;
  auto rb = bogus.Call(Ops(PutRootFh()));
  EXPECT_EQ(rb->status, NFS4ERR_BADSESSION);
  // Misordered slot sequence id.
  client_->seq += 5;
  EXPECT_EQ(Run(Ops(PutRootFh())), NFS4ERR_SEQ_MISORDERED);
  client_->seq -= 6;
  // A retransmission gets the cached reply, byte for byte the same result.
  COMPOUND4res first;
  ASSERT_EQ(Run(Ops(PutRootFh(), Mkdir("once")), &first), NFS4_OK);
  auto again = client_->Replay(Ops(PutRootFh(), Mkdir("once")));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->status, NFS4_OK);  // not EXIST: it was not executed twice
  EXPECT_EQ(again->resarray[2].opcreate->resok4.cinfo.after,
            first.resarray[2].opcreate->resok4.cinfo.after);
  // No current filehandle.
  EXPECT_EQ(Run(Ops(GetFh())), NFS4ERR_NOFILEHANDLE);
  // A 4.0-only operation.
  EXPECT_EQ(Run(Ops(Op(OP_RENEW))), NFS4ERR_NOTSUPP);
}

TEST_F(MdsTest, MalformedCompoundsGetBadxdrOrOpIllegal) {
  auto seqop = [&]() {
    client_->seq++;
    auto s = Op(OP_SEQUENCE);
    s.opsequence = std::make_unique<SEQUENCE4args>();
    s.opsequence->sa_sessionid = client_->session;
    s.opsequence->sa_sequenceid = client_->seq;
    xdr::Encoder e;
    xdr_encode(e, s);
    return e.Flatten();
  };
  auto header = [](uint32_t n) {
    xdr::Encoder e;
    e.u32(0);  // empty tag
    e.u32(1);
    e.u32(n);
    return e.Flatten();
  };
  auto u32 = [](uint32_t v) {
    xdr::Encoder e;
    e.u32(v);
    return e.Flatten();
  };
  // An unknown op number.
  auto r = client_->RawBytes(header(2) + seqop() + u32(9999));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, NFS4ERR_OP_ILLEGAL);
  ASSERT_EQ(r->resarray.size(), 2u);
  EXPECT_EQ(r->resarray[1].resop, OP_ILLEGAL);
  // Truncated arguments of a known op (LOOKUP with a name length beyond the record).
  r = client_->RawBytes(header(2) + seqop() + u32(OP_LOOKUP) + u32(1000) + "ab");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, NFS4ERR_BADXDR);
  // An absurd op count.
  r = client_->RawBytes(header(0x7fffffff) + seqop());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, NFS4ERR_BADXDR);
  client_->seq--;  // refused before its SEQUENCE ran: the slot did not advance
  // A truncated header.
  r = client_->RawBytes(std::string("\0\0\0\x10", 4));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, NFS4ERR_BADXDR);
  // The session still works.
  EXPECT_EQ(Run(Ops(PutRootFh(), GetFh())), NFS4_OK);
}

TEST_F(MdsTest, NamespaceOperationsAndErrors) {
  COMPOUND4res r;
  ASSERT_EQ(Run(Ops(PutRootFh(), Mkdir("a"))), NFS4_OK);
  ASSERT_EQ(Run(Ops(PutRootFh(), Mkdir("b"))), NFS4_OK);
  EXPECT_EQ(Run(Ops(PutRootFh(), Mkdir("a"))), NFS4ERR_EXIST);
  EXPECT_EQ(Run(Ops(PutRootFh(), Lookup("missing"))), NFS4ERR_NOENT);
  EXPECT_EQ(Run(Ops(PutRootFh(), Lookup(".."))), NFS4ERR_BADNAME);
  EXPECT_EQ(Run(Ops(PutRootFh(), Lookup("x/y"))), NFS4ERR_BADCHAR);
  Bytes fh;
  stateid4 sid;
  CreateFile("f", "hello", &fh, &sid);
  EXPECT_EQ(Run(Ops(PutFh(fh), Lookup("x"))), NFS4ERR_NOTDIR);
  // Rename across directories, through SAVEFH (source) and the current fh (target).
  ASSERT_EQ(Run(Ops(PutRootFh(), Lookup("a"), Open("o", "moved", OPEN4_SHARE_ACCESS_READ, true))), NFS4_OK);
  ASSERT_EQ(Run(Ops(PutRootFh(), Lookup("a"), SaveFh(), PutRootFh(), Lookup("b"), Rename("moved", "here"))),
            NFS4_OK);
  EXPECT_EQ(Run(Ops(PutRootFh(), Lookup("b"), Lookup("here"))), NFS4_OK);
  EXPECT_EQ(Run(Ops(PutRootFh(), Lookup("a"), Lookup("moved"))), NFS4ERR_NOENT);
  // A directory that is not empty cannot be removed.
  EXPECT_EQ(Run(Ops(PutRootFh(), Remove("b"))), NFS4ERR_NOTEMPTY);
  // Hard link: numlinks 2.
  ASSERT_EQ(Run(Ops(PutFh(fh), SaveFh(), PutRootFh(), Lookup("a"), Link("f2"))), NFS4_OK);
  ASSERT_EQ(Run(Ops(PutFh(fh), Getattr({FATTR4_NUMLINKS})), &r), NFS4_OK);
  const Bytes& vals = r.resarray[2].opgetattr->resok4.obj_attributes.attr_vals;
  ASSERT_EQ(vals.size, 4u);
  EXPECT_EQ(vals.data[3], 2);
  // Symlink and READLINK.
  ASSERT_EQ(Run(Ops(PutRootFh(), Symlink("ln", "a/f2"))), NFS4_OK);
  ASSERT_EQ(Run(Ops(PutRootFh(), Lookup("ln"), Op(OP_READLINK)), &r), NFS4_OK);
  EXPECT_EQ(r.resarray[3].opreadlink->resok4.link.view(), "a/f2");
  EXPECT_EQ(Run(Ops(PutRootFh(), Lookup("ln"), Lookup("x"))), NFS4ERR_SYMLINK);
  // A forged and a malformed handle.
  std::string forged = fh.str();
  forged[12] ^= 1;
  EXPECT_EQ(Run(Ops(PutFh(Bytes::Copy(forged)))), NFS4ERR_STALE);
  EXPECT_EQ(Run(Ops(PutFh(Bytes::Copy("junk")))), NFS4ERR_BADHANDLE);
  // LOOKUPP at the root.
  EXPECT_EQ(Run(Ops(PutRootFh(), Lookupp())), NFS4ERR_NOENT);
  ASSERT_EQ(Run(Ops(PutRootFh(), Lookup("a"), Lookupp(), GetFh()), &r), NFS4_OK);
}

TEST_F(MdsTest, ReaddirPagesWithStableCookies) {
  ASSERT_EQ(Run(Ops(PutRootFh(), Mkdir("d"))), NFS4_OK);
  for (int i = 0; i < 60; i++) {
    ASSERT_EQ(Run(Ops(PutRootFh(), Lookup("d"), Mkdir("e" + std::to_string(i)))), NFS4_OK);
  }
  std::set<std::string> seen;
  uint64_t cookie = 0;
  bool eof = false;
  int pages = 0;
  while (!eof && pages < 100) {
    COMPOUND4res r;
    ASSERT_EQ(Run(Ops(PutRootFh(), Lookup("d"), Readdir(cookie, 1024, {1u << FATTR4_TYPE | 1u << FATTR4_SIZE})), &r),
              NFS4_OK);
    const auto& rd = r.resarray[3].opreaddir->resok4.reply;
    for (const auto& e : rd.entries) {
      EXPECT_TRUE(seen.insert(e.name.str()).second);
      cookie = e.cookie;
    }
    // An entry added between pages does not disturb the walk.
    if (pages == 1) {
      ASSERT_EQ(Run(Ops(PutRootFh(), Lookup("d"), Mkdir("late"))), NFS4_OK);
    }
    eof = rd.eof;
    pages++;
  }
  EXPECT_TRUE(eof);
  EXPECT_GT(pages, 2);
  EXPECT_EQ(seen.size(), 61u);
}

TEST_F(MdsTest, DataGoesToDataServersAndStateidsAreChecked) {
  Bytes fh;
  stateid4 sid;
  std::string data(300000, 'x');
  for (size_t i = 0; i < data.size(); i++) data[i] = static_cast<char>(i * 7);
  CreateFile("big", data, &fh, &sid);
  COMPOUND4res r;
  ASSERT_EQ(Run(Ops(PutFh(fh), Commit())), NFS4_OK);
  // A 1 MiB READ reply cannot go to the slot cache (64 KiB negotiated): asking for that is
  // REP_TOO_BIG_TO_CACHE (§2.10.6.4); without cachethis it is fine.
  EXPECT_EQ(Run(Ops(PutFh(fh), Read(sid, 0, 1 << 20))), NFS4ERR_REP_TOO_BIG_TO_CACHE);
  auto big = client_->Call(Ops(PutFh(fh), Read(sid, 0, 1 << 20)), /*cachethis=*/false);
  ASSERT_TRUE(big.ok());
  ASSERT_EQ(big->status, NFS4_OK);
  r = std::move(big.value());
  EXPECT_TRUE(r.resarray[2].opread->resok4.eof);
  EXPECT_EQ(r.resarray[2].opread->resok4.data.view(), data);
  // The bytes are on a data server, not on the MDS.
  size_t found = 0;
  for (const auto& e : fsys::recursive_directory_iterator(dir_))
    if (e.is_regular_file() && e.file_size() == data.size() && e.path().string().find("/ds") != std::string::npos)
      found++;
  EXPECT_EQ(found, 1u);
  // Size through GETATTR.
  EXPECT_EQ(AttrOf<uint64_t>(fh, FATTR4_SIZE), data.size());
  // Truncate with the open stateid.
  ASSERT_EQ(Run(Ops(PutFh(fh), SetSize(sid, 10), Read(sid, 0, 100)), &r), NFS4_OK);
  EXPECT_EQ(r.resarray[3].opread->resok4.data.view(), data.substr(0, 10));
  EXPECT_EQ(AttrOf<uint64_t>(fh, FATTR4_SIZE), 10u);
  // A stateid from nowhere, and an old seqid after an upgrade.
  stateid4 bad = sid;
  bad.other[5] ^= 0x55;
  EXPECT_EQ(Run(Ops(PutFh(fh), Read(bad, 0, 10))), NFS4ERR_BAD_STATEID);
  ASSERT_EQ(Run(Ops(PutFh(fh), OpenFh("owner1", OPEN4_SHARE_ACCESS_READ)), &r), NFS4_OK);
  stateid4 newer = r.resarray[2].opopen->resok4.stateid;
  EXPECT_GT(newer.seqid, sid.seqid);
  EXPECT_EQ(Run(Ops(PutFh(fh), Read(sid, 0, 10))), NFS4ERR_OLD_STATEID);
  ASSERT_EQ(Run(Ops(PutFh(fh), Close(newer))), NFS4_OK);
  EXPECT_EQ(Run(Ops(PutFh(fh), Read(newer, 0, 10))), NFS4ERR_BAD_STATEID);
}

TEST_F(MdsTest, ShareReservationsDenyConflictingOpens) {
  // RFC 8881 §9.7: an OPEN whose access conflicts with another open's deny (or whose deny
  // conflicts with another open's access) gets NFS4ERR_SHARE_DENIED.
  COMPOUND4res r;
  ASSERT_EQ(Run(Ops(PutRootFh(), Open("owner-a", "shared", OPEN4_SHARE_ACCESS_READ, true, true,
                                      OPEN4_SHARE_DENY_WRITE), GetFh()), &r), NFS4_OK);
  const stateid4 asid = r.resarray[2].opopen->resok4.stateid;
  const Bytes fh = r.resarray[3].opgetfh->resok4.object;
  auto other = NewClient("client-b");
  EXPECT_EQ(Run(Ops(PutFh(fh), OpenFh("owner-b", OPEN4_SHARE_ACCESS_WRITE)), &r, other.get()),
            NFS4ERR_SHARE_DENIED);
  EXPECT_EQ(Run(Ops(PutFh(fh), OpenFh("owner-b", OPEN4_SHARE_ACCESS_BOTH)), &r, other.get()),
            NFS4ERR_SHARE_DENIED);
  // Reading is not denied; but B cannot deny reading while A reads.
  ASSERT_EQ(Run(Ops(PutFh(fh), OpenFh("owner-b", OPEN4_SHARE_ACCESS_READ)), &r, other.get()), NFS4_OK);
  const stateid4 bsid = r.resarray[2].opopen->resok4.stateid;
  auto deny_read = OpenFh("owner-b2", OPEN4_SHARE_ACCESS_READ);
  deny_read.opopen->share_deny = OPEN4_SHARE_DENY_READ;
  EXPECT_EQ(Run(Ops(PutFh(fh), std::move(deny_read)), &r, other.get()), NFS4ERR_SHARE_DENIED);
  // Once A closes, B may open for writing.
  ASSERT_EQ(Run(Ops(PutFh(fh), Close(asid))), NFS4_OK);
  ASSERT_EQ(Run(Ops(PutFh(fh), OpenFh("owner-b", OPEN4_SHARE_ACCESS_WRITE)), &r, other.get()), NFS4_OK);
  EXPECT_EQ(Run(Ops(PutFh(fh), Close(r.resarray[2].opopen->resok4.stateid)), nullptr, other.get()), NFS4_OK);
  (void)bsid;
}

TEST_F(MdsTest, ByteRangeLocksConflictAcrossClients) {
  Bytes fh;
  stateid4 sid;
  CreateFile("locked", "0123456789", &fh, &sid);
  auto other = NewClient("client-b");
  COMPOUND4res r;
  ASSERT_EQ(Run(Ops(PutFh(fh), Lock(sid, "lo-a", true, 0, 5)), &r), NFS4_OK);
  ASSERT_EQ(Run(Ops(PutFh(fh), OpenFh("owner-b", OPEN4_SHARE_ACCESS_BOTH)), &r, other.get()), NFS4_OK);
  stateid4 bsid = r.resarray[2].opopen->resok4.stateid;
  EXPECT_EQ(Run(Ops(PutFh(fh), Lock(bsid, "lo-b", true, 3, 4)), &r, other.get()), NFS4ERR_DENIED);
  EXPECT_EQ(r.resarray[2].oplock->denied.offset, 0u);
  EXPECT_EQ(r.resarray[2].oplock->denied.length, 5u);
  EXPECT_EQ(r.resarray[2].oplock->denied.locktype, WRITE_LT);
  EXPECT_EQ(Run(Ops(PutFh(fh), Lockt("lo-b", false, 4, 1)), nullptr, other.get()), NFS4ERR_DENIED);
  EXPECT_EQ(Run(Ops(PutFh(fh), Lock(bsid, "lo-b", true, 5, 5)), nullptr, other.get()), NFS4_OK);
}

TEST_F(MdsTest, RestartKeepsTheTreeAndClientsReclaimInGrace) {
  Bytes fh;
  stateid4 sid;
  CreateFile("durable", "persisted bytes", &fh, &sid);
  ASSERT_EQ(Run(Ops(PutFh(fh), Commit())), NFS4_OK);
  ASSERT_EQ(Run(Ops(PutRootFh(), Mkdir("tree"))), NFS4_OK);
  StopMds();
  StartMds(/*grace=*/30, /*reclaim_complete=*/false);  // the old client may reclaim
  ASSERT_TRUE(mds_->InGrace());
  // The new client object is a fresh session of the same owner ("client-a").
  COMPOUND4res r;
  EXPECT_EQ(Run(Ops(PutRootFh(), Open("owner1", "other", OPEN4_SHARE_ACCESS_READ, true))), NFS4ERR_GRACE);
  auto reclaim = OpenFh("owner1", OPEN4_SHARE_ACCESS_BOTH);
  reclaim.opopen->claim.claim = CLAIM_PREVIOUS;
  reclaim.opopen->claim.delegate_type = OPEN_DELEGATE_NONE;
  ASSERT_EQ(Run(Ops(PutFh(fh), std::move(reclaim)), &r), NFS4_OK);
  stateid4 s2 = r.resarray[2].opopen->resok4.stateid;
  ASSERT_EQ(Run(Ops(PutFh(fh), Read(s2, 0, 100)), &r), NFS4_OK);
  EXPECT_EQ(r.resarray[2].opread->resok4.data.view(), "persisted bytes");
  EXPECT_EQ(Run(Ops(PutRootFh(), Lookup("tree"))), NFS4_OK);
  // RECLAIM_COMPLETE from the only previous client ends grace early (checked at the next tick).
  auto rc = Op(OP_RECLAIM_COMPLETE);
  rc.opreclaim_complete = std::make_unique<RECLAIM_COMPLETE4args>();
  ASSERT_EQ(Run(Ops(std::move(rc))), NFS4_OK);
  mds_->Tick();
  EXPECT_FALSE(mds_->InGrace());
  EXPECT_EQ(Run(Ops(PutRootFh(), Open("owner1", "other", OPEN4_SHARE_ACCESS_READ, true))), NFS4_OK);
}

}  // namespace
}  // namespace loom::nfs4
