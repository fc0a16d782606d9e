// loom-mds access control and POSIX permission semantics (issue 9): I/O permission checks for
// every stateid, the namespace root's mode, set-user-ID/set-group-ID clearing, chown rules,
// OPEN's permission check, renaming directories, the exclusive-create attrset, the
// PRESERVE_UNLINKED flag, read-only exports, and the permissions LOOKUP, LOOKUPP, READDIR,
// SECINFO, OPEN and COMMIT need.
#include <map>

#include "meta/mem_kv.h"
#include "nfs4/mds_fixture.h"
#include "nfs4/state.h"

namespace loom::nfs4 {
namespace {

std::string U32(uint32_t v) {
  xdr::Encoder e;
  e.u32(v);
  return e.Flatten();
}

std::string U64(uint64_t v) {
  xdr::Encoder e;
  e.u64(v);
  return e.Flatten();
}

std::string Str(const std::string& s) {
  xdr::Encoder e;
  e.string(s);
  return e.Flatten();
}

// A fattr4 from encoded values by attribute number (a std::map keeps the bitmap order).
fattr4 Attrs(const std::map<uint32_t, std::string>& vals) {
  fattr4 f;
  std::string body;
  for (const auto& [bit, v] : vals) {
    if (f.attrmask.size() <= bit / 32) f.attrmask.resize(bit / 32 + 1);
    f.attrmask[bit / 32] |= 1u << (bit % 32);
    body += v;
  }
  f.attr_vals = Bytes::Copy(body);
  return f;
}

nfs_argop4 Setattr(const std::map<uint32_t, std::string>& vals, const stateid4& sid = {}) {
  auto a = Op(OP_SETATTR);
  a.opsetattr = std::make_unique<SETATTR4args>();
  a.opsetattr->stateid = sid;
  a.opsetattr->obj_attributes = Attrs(vals);
  return a;
}

nfs_argop4 SetMode(uint32_t mode) { return Setattr({{FATTR4_MODE, U32(mode)}}); }

nfs_argop4 OpenHow(const std::string& owner, const std::string& name, uint32_t access,
                   createmode4 how, const fattr4& attrs, const verifier4& verf = {}) {
  auto a = Open(owner, name, access, true);
  createhow4& h = a.opopen->openhow.how;
  h.mode = how;
  h.createattrs = attrs;
  h.createverf = verf;
  h.ch_createboth.cva_verf = verf;
  h.ch_createboth.cva_attrs = attrs;
  return a;
}

class MdsSecurityTest : public MdsTest {
 protected:
  // A session of its own (a separate client) calling as uid/gid.
  std::unique_ptr<V4Client> As(uint32_t uid, uint32_t gid, std::vector<uint32_t> gids = {}) {
    auto c = NewClient("client-" + std::to_string(uid) + "-" + std::to_string(next_++));
    c->cred = rpc::Cred::Sys(uid, gid, std::move(gids), "u");
    return c;
  }
  // A NFSv4.2 COMPOUND (SEQUENCE + ops) of `c`: its status.
  nfsstat4 Run2(V4Client* c, std::vector<nfs_argop4> ops, COMPOUND4res* out = nullptr) {
    c->seq++;
    auto s = Op(OP_SEQUENCE);
    s.opsequence = std::make_unique<SEQUENCE4args>();
    s.opsequence->sa_sessionid = c->session;
    s.opsequence->sa_sequenceid = c->seq;
    ops.insert(ops.begin(), std::move(s));
    auto r = c->Raw(std::move(ops), 2);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return NFS4ERR_SERVERFAULT;
    nfsstat4 st = r->status;
    if (out) *out = std::move(r.value());
    return st;
  }
  uint32_t ModeOf(const Bytes& fh) { return AttrOf<uint32_t>(fh, FATTR4_MODE); }
  uint64_t SizeOf(const Bytes& fh) { return AttrOf<uint64_t>(fh, FATTR4_SIZE); }
  // A root-owned file `name` at the root with `data`, closed, then chmod `mode`.
  Bytes RootFile(const std::string& name, const std::string& data, uint32_t mode) {
    Bytes fh;
    stateid4 sid;
    CreateFile(name, data, &fh, &sid);
    EXPECT_EQ(Run(Ops(PutFh(fh), Close(sid))), NFS4_OK);
    EXPECT_EQ(Run(Ops(PutFh(fh), SetMode(mode))), NFS4_OK);
    return fh;
  }
  // A world-writable directory at the root (made by root) for other users' files.
  Bytes PublicDir(const std::string& name, uint32_t mode = 0777) {
    COMPOUND4res r;
    EXPECT_EQ(Run(Ops(PutRootFh(), Mkdir(name, mode), GetFh()), &r), NFS4_OK);
    Bytes fh = r.resarray[3].opgetfh->resok4.object;
    EXPECT_EQ(Run(Ops(PutFh(fh), SetMode(mode))), NFS4_OK);  // no umask: exactly `mode`
    return fh;
  }
  // Creates `name` in directory `dir` as `c` (OPEN GUARDED4 with `mode`), closed; its handle.
  Bytes UserFile(V4Client* c, const Bytes& dir, const std::string& name, uint32_t mode,
                 const std::string& data = "") {
    COMPOUND4res r;
    EXPECT_EQ(Run(Ops(PutFh(dir), OpenHow("uo", name, OPEN4_SHARE_ACCESS_BOTH, GUARDED4,
                                          Attrs({{FATTR4_MODE, U32(mode)}})),
                      GetFh()),
                  &r, c),
              NFS4_OK);
    if (r.resarray.size() < 4) return {};
    stateid4 sid = r.resarray[2].opopen->resok4.stateid;
    Bytes fh = r.resarray[3].opgetfh->resok4.object;
    if (!data.empty()) {
      EXPECT_EQ(Run(Ops(PutFh(fh), Write(sid, 0, data)), nullptr, c), NFS4_OK);
    }
    EXPECT_EQ(Run(Ops(PutFh(fh), Close(sid)), nullptr, c), NFS4_OK);
    return fh;
  }
  int next_ = 0;
};

// 9.1: uid 1000 can neither read nor write a root-owned 0600 file with any stateid.
TEST_F(MdsSecurityTest, NoStateidBypassesFilePermissions) {
  Bytes fh = RootFile("secret", "top secret", 0600);
  // Root's own open, held by another client.
  COMPOUND4res r;
  ASSERT_EQ(Run(Ops(PutFh(fh), OpenFh("root-owner", OPEN4_SHARE_ACCESS_BOTH)), &r), NFS4_OK);
  stateid4 roots = r.resarray[2].opopen->resok4.stateid;
  auto u = As(1000, 1000);
  for (const stateid4& s : {AnonymousStateid(), ReadBypassStateid()}) {
    EXPECT_EQ(Run(Ops(PutFh(fh), Read(s, 0, 100)), nullptr, u.get()), NFS4ERR_ACCESS);
    EXPECT_EQ(Run(Ops(PutFh(fh), Write(s, 0, "pwned")), nullptr, u.get()), NFS4ERR_ACCESS);
    EXPECT_EQ(Run(Ops(PutFh(fh), SetSize(s, 0)), nullptr, u.get()), NFS4ERR_ACCESS);
    EXPECT_EQ(Run2(u.get(), Ops(PutFh(fh), ReadPlus(s, 0, 100))), NFS4ERR_ACCESS);
    EXPECT_EQ(Run2(u.get(), Ops(PutFh(fh), Seek(s, 0))), NFS4ERR_ACCESS);
    EXPECT_EQ(Run2(u.get(), Ops(PutFh(fh), Allocate(s, 0, 1 << 20))), NFS4ERR_ACCESS);
  }
  // Another client's open stateid is not this client's (RFC 8881 §8.2.4).
  EXPECT_EQ(Run(Ops(PutFh(fh), Read(roots, 0, 100)), nullptr, u.get()), NFS4ERR_BAD_STATEID);
  EXPECT_EQ(Run(Ops(PutFh(fh), Write(roots, 0, "pwned")), nullptr, u.get()), NFS4ERR_BAD_STATEID);
  // Its own OPEN is refused, for reading, writing, and with a truncating UNCHECKED4 create.
  EXPECT_EQ(Run(Ops(PutFh(fh), OpenFh("u", OPEN4_SHARE_ACCESS_READ)), nullptr, u.get()), NFS4ERR_ACCESS);
  EXPECT_EQ(Run(Ops(PutFh(fh), OpenFh("u", OPEN4_SHARE_ACCESS_WRITE)), nullptr, u.get()), NFS4ERR_ACCESS);
  EXPECT_EQ(Run(Ops(PutRootFh(), OpenHow("u", "secret", OPEN4_SHARE_ACCESS_WRITE, UNCHECKED4,
                                          Attrs({{FATTR4_SIZE, U64(0)}}))),
                nullptr, u.get()),
            NFS4ERR_ACCESS);
  // A stateid of the same client, opened by root, does not lend root's rights to uid 1000
  // (the caller's access is checked on every I/O, as Linux nfsd does).
  ASSERT_EQ(Run(Ops(PutFh(fh), OpenFh("shared-owner", OPEN4_SHARE_ACCESS_BOTH)), &r, u.get()),
            NFS4ERR_ACCESS);
  u->cred = rpc::Cred::Sys(0, 0, {}, "u");
  ASSERT_EQ(Run(Ops(PutFh(fh), OpenFh("shared-owner", OPEN4_SHARE_ACCESS_BOTH)), &r, u.get()), NFS4_OK);
  stateid4 mine = r.resarray[2].opopen->resok4.stateid;
  u->cred = rpc::Cred::Sys(1000, 1000, {}, "u");
  EXPECT_EQ(Run(Ops(PutFh(fh), Read(mine, 0, 100)), nullptr, u.get()), NFS4ERR_ACCESS);
  EXPECT_EQ(Run(Ops(PutFh(fh), Write(mine, 0, "pwned")), nullptr, u.get()), NFS4ERR_ACCESS);
  // Nothing changed; root still reads its data.
  EXPECT_EQ(SizeOf(fh), 10u);
  ASSERT_EQ(Run(Ops(PutFh(fh), Read(roots, 0, 100)), &r), NFS4_OK);
  EXPECT_EQ(r.resarray[2].opread->resok4.data.view(), "top secret");
  // Root reads with the anonymous stateid; a 0644 file is readable by anyone but not writable.
  EXPECT_EQ(Run(Ops(PutFh(fh), Read(AnonymousStateid(), 0, 100))), NFS4_OK);
  ASSERT_EQ(Run(Ops(PutFh(fh), SetMode(0644))), NFS4_OK);
  EXPECT_EQ(Run(Ops(PutFh(fh), Read(AnonymousStateid(), 0, 100)), nullptr, u.get()), NFS4_OK);
  EXPECT_EQ(Run(Ops(PutFh(fh), Write(AnonymousStateid(), 0, "x")), nullptr, u.get()), NFS4ERR_ACCESS);
}

// 9.1 / 9.7: the owner override holds for I/O on an open file, and the creator may write the
// file its OPEN just created whatever the mode; a later OPEN for write is checked like open(2).
TEST_F(MdsSecurityTest, OwnerOverrideIsForIoNotForOpen) {
  Bytes pub = PublicDir("pub");
  auto u = As(1000, 1000);
  COMPOUND4res r;
  ASSERT_EQ(Run(Ops(PutFh(pub), OpenHow("o", "ro", OPEN4_SHARE_ACCESS_BOTH, GUARDED4,
                                        Attrs({{FATTR4_MODE, U32(0444)}})),
                    GetFh()),
                &r, u.get()),
            NFS4_OK);
  stateid4 sid = r.resarray[2].opopen->resok4.stateid;
  Bytes fh = r.resarray[3].opgetfh->resok4.object;
  EXPECT_EQ(ModeOf(fh), 0444u);
  EXPECT_EQ(Run(Ops(PutFh(fh), Write(sid, 0, "created")), nullptr, u.get()), NFS4_OK);
  EXPECT_EQ(Run(Ops(PutFh(fh), Close(sid)), nullptr, u.get()), NFS4_OK);
  // A new OPEN for write by the owner: the mode denies it.
  EXPECT_EQ(Run(Ops(PutFh(fh), OpenFh("o2", OPEN4_SHARE_ACCESS_WRITE)), nullptr, u.get()), NFS4ERR_ACCESS);
  EXPECT_EQ(Run(Ops(PutFh(pub), Open("o2", "ro", OPEN4_SHARE_ACCESS_BOTH, false)), nullptr, u.get()),
            NFS4ERR_ACCESS);
  ASSERT_EQ(Run(Ops(PutFh(fh), OpenFh("o3", OPEN4_SHARE_ACCESS_READ)), &r, u.get()), NFS4_OK);
  // An exec-only file can be opened and read for execution (as nfsd's READ_IF_EXEC).
  Bytes prog = UserFile(u.get(), pub, "prog", 0700, "#!binary");
  ASSERT_EQ(Run(Ops(PutFh(prog), SetMode(0711))), NFS4_OK);
  auto other = As(2000, 2000);
  ASSERT_EQ(Run(Ops(PutFh(prog), OpenFh("x", OPEN4_SHARE_ACCESS_READ)), &r, other.get()), NFS4_OK);
  EXPECT_EQ(Run(Ops(PutFh(prog), Read(r.resarray[2].opopen->resok4.stateid, 0, 8)), nullptr, other.get()),
            NFS4_OK);
}

// 9.7: without the owner override at OPEN, an owner still reclaims after a restart the write
// open of a file it created read-only (the open it had before is given back).
TEST_F(MdsSecurityTest, OwnerReclaimsAWriteOpenOfAReadOnlyFile) {
  Bytes pub = PublicDir("pub");
  auto u = NewClient("reclaimer");
  u->cred = rpc::Cred::Sys(1000, 1000, {}, "u");
  COMPOUND4res r;
  ASSERT_EQ(Run(Ops(PutFh(pub), OpenHow("o", "ro", OPEN4_SHARE_ACCESS_BOTH, GUARDED4,
                                        Attrs({{FATTR4_MODE, U32(0444)}})),
                    GetFh()),
                &r, u.get()),
            NFS4_OK);
  Bytes fh = r.resarray[3].opgetfh->resok4.object;
  u.reset();
  StopMds();
  StartMds(/*grace=*/30, /*reclaim_complete=*/false);
  u = NewClient("reclaimer", true, false);
  u->cred = rpc::Cred::Sys(1000, 1000, {}, "u");
  auto reclaim = OpenFh("o", OPEN4_SHARE_ACCESS_BOTH);
  reclaim.opopen->claim.claim = CLAIM_PREVIOUS;
  reclaim.opopen->claim.delegate_type = OPEN_DELEGATE_NONE;
  ASSERT_EQ(Run(Ops(PutFh(fh), std::move(reclaim)), &r, u.get()), NFS4_OK);
  EXPECT_EQ(Run(Ops(PutFh(fh), Write(r.resarray[2].opopen->resok4.stateid, 0, "again")), nullptr, u.get()),
            NFS4_OK);
}

// 9.4: the root directory is 0755 root:root by default; others cannot rename what is in it.
TEST_F(MdsSecurityTest, RootDirectoryIsNotWorldWritable) {
  COMPOUND4res r;
  ASSERT_EQ(Run(Ops(PutRootFh(), GetFh()), &r), NFS4_OK);
  Bytes root = r.resarray[2].opgetfh->resok4.object;
  EXPECT_EQ(ModeOf(root), 0755u);
  ASSERT_EQ(Run(Ops(PutRootFh(), Getattr({FATTR4_OWNER, FATTR4_OWNER_GROUP})), &r), NFS4_OK);
  EXPECT_EQ(r.resarray[2].opgetattr->resok4.obj_attributes.attr_vals.view(), Str("0") + Str("0"));
  ASSERT_EQ(Run(Ops(PutRootFh(), Mkdir("etc"))), NFS4_OK);
  auto u = As(1000, 1000);
  EXPECT_EQ(Run(Ops(PutRootFh(), SaveFh(), Rename("etc", "mine")), nullptr, u.get()), NFS4ERR_ACCESS);
  EXPECT_EQ(Run(Ops(PutRootFh(), Mkdir("x")), nullptr, u.get()), NFS4ERR_ACCESS);
}

// 9.4: the root's mode and owner come from Mds::Options on the first start.
TEST_F(MdsSecurityTest, RootModeAndOwnerAreConfigurable) {
  meta::MemKvStore store;
  Mds::Options o;
  o.state_dir = dir_ + "/state2";
  o.root_mode = 01777;
  o.root_uid = 500;
  o.root_gid = 600;
  Mds m(o, &store, pool_.get());
  ASSERT_TRUE(m.Init().ok());
  auto n = meta::RunTxn(store, [&](meta::Txn& t) { return m.ns().GetAttr(t, m.ns().root()); });
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n->mode, 01777u);
  EXPECT_EQ(n->uid, 500u);
  EXPECT_EQ(n->gid, 600u);
}

// 9.5: chown clears set-user-ID and (with group execute) set-group-ID of a non-directory.
TEST_F(MdsSecurityTest, ChownClearsSetIdBits) {
  Bytes pub = PublicDir("pub");
  auto u = As(1000, 1000, {3000});
  Bytes a = UserFile(u.get(), pub, "a", 0755);
  ASSERT_EQ(Run(Ops(PutFh(a), SetMode(06755)), nullptr, u.get()), NFS4_OK);
  ASSERT_EQ(ModeOf(a), 06755u);
  ASSERT_EQ(Run(Ops(PutFh(a), Setattr({{FATTR4_OWNER_GROUP, Str("3000")}})), nullptr, u.get()), NFS4_OK);
  EXPECT_EQ(ModeOf(a), 0755u);
  // Without group execute S_ISGID is a locking mark, not set-group-ID: it stays.
  Bytes b = UserFile(u.get(), pub, "b", 0644);
  ASSERT_EQ(Run(Ops(PutFh(b), SetMode(06644)), nullptr, u.get()), NFS4_OK);
  ASSERT_EQ(Run(Ops(PutFh(b), Setattr({{FATTR4_OWNER, Str("1000")}})), nullptr, u.get()), NFS4_OK);
  EXPECT_EQ(ModeOf(b), 02644u);
  // Root's chown clears them too (Linux since 2.2.13); a mode given alongside is cleared.
  ASSERT_EQ(Run(Ops(PutFh(a), SetMode(06755))), NFS4_OK);
  ASSERT_EQ(Run(Ops(PutFh(a), Setattr({{FATTR4_OWNER, Str("2000")}}))), NFS4_OK);
  EXPECT_EQ(ModeOf(a), 0755u);
  ASSERT_EQ(Run(Ops(PutFh(a), Setattr({{FATTR4_MODE, U32(06755)}, {FATTR4_OWNER, Str("1000")}}))), NFS4_OK);
  EXPECT_EQ(ModeOf(a), 0755u);
  // Directories keep theirs.
  COMPOUND4res r;
  ASSERT_EQ(Run(Ops(PutFh(pub), Mkdir("d", 0755), GetFh()), &r, u.get()), NFS4_OK);
  Bytes d = r.resarray[3].opgetfh->resok4.object;
  ASSERT_EQ(Run(Ops(PutFh(d), SetMode(02775)), nullptr, u.get()), NFS4_OK);
  ASSERT_EQ(Run(Ops(PutFh(d), Setattr({{FATTR4_OWNER_GROUP, Str("3000")}})), nullptr, u.get()), NFS4_OK);
  EXPECT_EQ(ModeOf(d), 02775u);
}

// 9.5: a WRITE by anyone but root clears set-user-ID and set-group-ID (with group execute).
TEST_F(MdsSecurityTest, WriteByNonRootClearsSetIdBits) {
  Bytes f = RootFile("suid", "", 06777);
  auto u = As(1000, 1000);
  EXPECT_EQ(Run(Ops(PutFh(f), Write(AnonymousStateid(), 0, "x")), nullptr, u.get()), NFS4_OK);
  EXPECT_EQ(ModeOf(f), 0777u);
  // Without group execute S_ISGID stays; S_ISUID goes.
  ASSERT_EQ(Run(Ops(PutFh(f), SetMode(06766))), NFS4_OK);
  EXPECT_EQ(Run(Ops(PutFh(f), Write(AnonymousStateid(), 0, "y")), nullptr, u.get()), NFS4_OK);
  EXPECT_EQ(ModeOf(f), 02766u);
  // Root's writes keep them.
  ASSERT_EQ(Run(Ops(PutFh(f), SetMode(06777))), NFS4_OK);
  EXPECT_EQ(Run(Ops(PutFh(f), Write(AnonymousStateid(), 0, "z"))), NFS4_OK);
  EXPECT_EQ(ModeOf(f), 06777u);
  // A size change by a non-root caller clears them as truncate(2) does.
  EXPECT_EQ(Run(Ops(PutFh(f), SetSize(AnonymousStateid(), 0)), nullptr, u.get()), NFS4_OK);
  EXPECT_EQ(ModeOf(f), 0777u);
  ASSERT_EQ(Run(Ops(PutFh(f), SetMode(06777))), NFS4_OK);
  EXPECT_EQ(Run2(u.get(), Ops(PutFh(f), Allocate(AnonymousStateid(), 0, 4096))), NFS4_OK);
  EXPECT_EQ(ModeOf(f), 0777u);
  // Also when the range is inside the file already and the size does not change.
  ASSERT_EQ(Run(Ops(PutFh(f), SetMode(06777))), NFS4_OK);
  EXPECT_EQ(Run2(u.get(), Ops(PutFh(f), Allocate(AnonymousStateid(), 0, 10))), NFS4_OK);
  EXPECT_EQ(ModeOf(f), 0777u);
  EXPECT_EQ(SizeOf(f), 4096u);
}

// 9.5: chmod by an owner outside the file's group drops S_ISGID; so does creating a
// group-executable set-group-ID file in a set-group-ID directory of a group one is not in.
TEST_F(MdsSecurityTest, ChmodAndCreateDropSetGidOutsideGroup) {
  Bytes pub = PublicDir("pub");
  auto u = As(1000, 1000);
  Bytes f = UserFile(u.get(), pub, "f", 0755);
  ASSERT_EQ(Run(Ops(PutFh(f), Setattr({{FATTR4_OWNER_GROUP, Str("2000")}}))), NFS4_OK);  // root
  ASSERT_EQ(Run(Ops(PutFh(f), SetMode(02755)), nullptr, u.get()), NFS4_OK);
  EXPECT_EQ(ModeOf(f), 0755u);
  ASSERT_EQ(Run(Ops(PutFh(f), SetMode(04755)), nullptr, u.get()), NFS4_OK);
  EXPECT_EQ(ModeOf(f), 04755u);  // set-user-ID is the owner's to set
  ASSERT_EQ(Run(Ops(PutFh(f), SetMode(02755))), NFS4_OK);  // root may
  EXPECT_EQ(ModeOf(f), 02755u);
  // A set-group-ID directory owned by group 2000.
  Bytes sg = PublicDir("sg", 02777);
  ASSERT_EQ(Run(Ops(PutFh(sg), Setattr({{FATTR4_OWNER_GROUP, Str("2000")}}))), NFS4_OK);
  Bytes g = UserFile(u.get(), sg, "g", 02755);
  EXPECT_EQ(ModeOf(g), 0755u);
  auto member = As(1001, 1001, {2000});
  Bytes h = UserFile(member.get(), sg, "h", 02755);
  EXPECT_EQ(ModeOf(h), 02755u);
}

// 9.6: chown/chgrp by a non-owner is EPERM even when nothing would change.
TEST_F(MdsSecurityTest, ChownByNonOwnerIsPermEvenWhenUnchanged) {
  Bytes f = RootFile("f", "", 0666);
  auto u = As(1000, 1000);
  EXPECT_EQ(Run(Ops(PutFh(f), Setattr({{FATTR4_OWNER, Str("0")}})), nullptr, u.get()), NFS4ERR_PERM);
  EXPECT_EQ(Run(Ops(PutFh(f), Setattr({{FATTR4_OWNER_GROUP, Str("0")}})), nullptr, u.get()), NFS4ERR_PERM);
  // The owner may "change" to the same owner and group.
  Bytes pub = PublicDir("pub");
  Bytes g = UserFile(u.get(), pub, "g", 0644);
  ASSERT_EQ(Run(Ops(PutFh(g), Setattr({{FATTR4_OWNER_GROUP, Str("2000")}}))), NFS4_OK);  // root
  EXPECT_EQ(Run(Ops(PutFh(g), Setattr({{FATTR4_OWNER, Str("1000")}, {FATTR4_OWNER_GROUP, Str("2000")}})),
                nullptr, u.get()),
            NFS4_OK);
  EXPECT_EQ(Run(Ops(PutFh(g), Setattr({{FATTR4_OWNER_GROUP, Str("1000")}})), nullptr, u.get()), NFS4_OK);
  EXPECT_EQ(Run(Ops(PutFh(g), Setattr({{FATTR4_OWNER_GROUP, Str("4000")}})), nullptr, u.get()), NFS4ERR_PERM);
}

// 9.8: moving a directory to another parent changes its "..": write permission on the
// directory itself is needed; sticky target directories protect their entries too.
TEST_F(MdsSecurityTest, RenameDirectoryToNewParentNeedsWriteOnIt) {
  Bytes a = PublicDir("a"), b = PublicDir("b");
  auto other = As(2000, 2000);
  ASSERT_EQ(Run(Ops(PutFh(a), Mkdir("d", 0755)), nullptr, other.get()), NFS4_OK);
  auto u = As(1000, 1000);
  EXPECT_EQ(Run(Ops(PutFh(a), SaveFh(), PutFh(b), Rename("d", "d")), nullptr, u.get()), NFS4ERR_ACCESS);
  // Within one parent ".." stays: allowed as on Linux.
  EXPECT_EQ(Run(Ops(PutFh(a), SaveFh(), PutFh(a), Rename("d", "e")), nullptr, u.get()), NFS4_OK);
  // The owner of the directory moves it.
  EXPECT_EQ(Run(Ops(PutFh(a), SaveFh(), PutFh(b), Rename("e", "d")), nullptr, other.get()), NFS4_OK);
  // A sticky target: replacing another user's entry is refused.
  Bytes s = PublicDir("s", 01777);
  Bytes victim = UserFile(other.get(), s, "x", 0644, "theirs");
  UserFile(u.get(), a, "y", 0644, "mine");
  EXPECT_EQ(Run(Ops(PutFh(a), SaveFh(), PutFh(s), Rename("y", "x")), nullptr, u.get()), NFS4ERR_ACCESS);
  EXPECT_EQ(SizeOf(victim), 6u);
  EXPECT_EQ(Run(Ops(PutFh(a), SaveFh(), PutFh(s), Rename("y", "z")), nullptr, u.get()), NFS4_OK);
}

// 9.10: the attributes that hold an exclusive create's verifier are listed in attrset.
TEST_F(MdsSecurityTest, ExclusiveCreateReportsVerifierAttributes) {
  verifier4 v{1, 2, 3, 4, 5, 6, 7, 8};
  Bytes pub = PublicDir("pub");
  for (createmode4 how : {EXCLUSIVE4, EXCLUSIVE4_1}) {
    std::string name = how == EXCLUSIVE4 ? "x4" : "x41";
    fattr4 attrs = how == EXCLUSIVE4_1 ? Attrs({{FATTR4_MODE, U32(0600)}}) : fattr4{};
    for (int attempt = 0; attempt < 2; attempt++) {  // the create and its retransmission
      COMPOUND4res r;
      ASSERT_EQ(Run(Ops(PutFh(pub), OpenHow("ex", name, OPEN4_SHARE_ACCESS_BOTH, how, attrs, v)), &r),
                NFS4_OK);
      const bitmap4& set = r.resarray[2].opopen->resok4.attrset;
      ASSERT_GE(set.size(), 2u) << name;
      EXPECT_TRUE(set[FATTR4_TIME_ACCESS / 32] & (1u << (FATTR4_TIME_ACCESS % 32))) << name;
      if (how == EXCLUSIVE4_1) {
        EXPECT_TRUE(set[1] & (1u << (FATTR4_MODE - 32)));
      }
      ASSERT_EQ(Run(Ops(PutFh(pub), Lookup(name), Close(r.resarray[2].opopen->resok4.stateid))), NFS4_OK);
    }
    // The verifier can be read from time_access, but it opens the file for its creator only.
    auto u = As(1000, 1000);
    EXPECT_EQ(Run(Ops(PutFh(pub), OpenHow("ex", name, OPEN4_SHARE_ACCESS_BOTH, how, attrs, v)),
                  nullptr, u.get()),
              NFS4ERR_EXIST);
  }
}

// 9.11: open files survive their last unlink (orphans), so the result says so.
TEST_F(MdsSecurityTest, OpenResultPreservesUnlinked) {
  COMPOUND4res r;
  ASSERT_EQ(Run(Ops(PutRootFh(), Open("o", "f", OPEN4_SHARE_ACCESS_BOTH, true), GetFh()), &r), NFS4_OK);
  EXPECT_TRUE(r.resarray[2].opopen->resok4.rflags & OPEN4_RESULT_PRESERVE_UNLINKED);
  stateid4 sid = r.resarray[2].opopen->resok4.stateid;
  Bytes fh = r.resarray[3].opgetfh->resok4.object;
  ASSERT_EQ(Run(Ops(PutFh(fh), Write(sid, 0, "still here"))), NFS4_OK);
  ASSERT_EQ(Run(Ops(PutRootFh(), Remove("f"))), NFS4_OK);
  ASSERT_EQ(Run(Ops(PutFh(fh), Read(sid, 0, 100)), &r), NFS4_OK);
  EXPECT_EQ(r.resarray[2].opread->resok4.data.view(), "still here");
}

// Read-only exports: every modifying operation answers NFS4ERR_ROFS; reads still work.
TEST_F(MdsSecurityTest, ReadOnlyExportRefusesModifications) {
  Bytes fh;
  stateid4 sid;
  CreateFile("f", "data", &fh, &sid);
  ASSERT_EQ(Run(Ops(PutFh(fh), Close(sid))), NFS4_OK);
  ASSERT_EQ(Run(Ops(PutRootFh(), Mkdir("d"))), NFS4_OK);
  // A second listener for the same server whose calls carry read_only, as an "ro" rule sets.
  rpc::ProgramDesc p = mds_->Program();
  // Both forms: on the event loop (run to completion) and on a worker; what the loop leaves
  // for the worker (resume) goes back to the server's context.
  auto read_only = [](rpc::ProcHandler inner) {
    return [inner](const rpc::CallContext& c, xdr::Decoder& d, xdr::Encoder& e) {
      rpc::CallContext ro = c;
      ro.read_only = true;
      rpc::accept_stat st = inner(ro, d, e);
      c.resume = std::move(ro.resume);
      return st;
    };
  };
  p.procs[1].fn = read_only(p.procs[1].fn);
  p.procs[1].try_inline = read_only(p.procs[1].try_inline);
  rpc::ServerOptions so;
  so.listen = "127.0.0.1:0";
  so.workers = 1;
  so.loops = 1;
  rpc::RpcServer ros(so);
  ros.Register(p);
  ASSERT_TRUE(ros.Start().ok());
  auto rpc = rpc::RpcClient::Connect(loops_->At(0), "127.0.0.1:" + std::to_string(ros.port()));
  ASSERT_TRUE(rpc.ok());
  V4Client c(rpc.value(), "ro-client");
  ASSERT_EQ(c.Setup(), NFS4_OK);
  V4Client* ro = &c;
  COMPOUND4res r;
  EXPECT_EQ(Run(Ops(PutFh(fh), OpenFh("o", OPEN4_SHARE_ACCESS_WRITE)), nullptr, ro), NFS4ERR_ROFS);
  EXPECT_EQ(Run(Ops(PutRootFh(), Open("o", "new", OPEN4_SHARE_ACCESS_READ, true)), nullptr, ro), NFS4ERR_ROFS);
  EXPECT_EQ(Run(Ops(PutFh(fh), Write(AnonymousStateid(), 0, "x")), nullptr, ro), NFS4ERR_ROFS);
  EXPECT_EQ(Run(Ops(PutFh(fh), SetMode(0777)), nullptr, ro), NFS4ERR_ROFS);
  EXPECT_EQ(Run(Ops(PutFh(fh), SetSize(AnonymousStateid(), 0)), nullptr, ro), NFS4ERR_ROFS);
  EXPECT_EQ(Run(Ops(PutRootFh(), Mkdir("e")), nullptr, ro), NFS4ERR_ROFS);
  EXPECT_EQ(Run(Ops(PutRootFh(), Remove("f")), nullptr, ro), NFS4ERR_ROFS);
  EXPECT_EQ(Run(Ops(PutRootFh(), SaveFh(), Rename("f", "g")), nullptr, ro), NFS4ERR_ROFS);
  EXPECT_EQ(Run(Ops(PutFh(fh), SaveFh(), PutRootFh(), Link("h")), nullptr, ro), NFS4ERR_ROFS);
  EXPECT_EQ(Run(Ops(PutFh(fh), Commit()), nullptr, ro), NFS4ERR_ROFS);
  EXPECT_EQ(Run2(ro, Ops(PutFh(fh), Allocate(AnonymousStateid(), 0, 10))), NFS4ERR_ROFS);
  // ACCESS grants no modification; reading works with an open for read and anonymously.
  ASSERT_EQ(Run(Ops(PutFh(fh), AccessOp(ACCESS4_READ | ACCESS4_MODIFY | ACCESS4_EXTEND)), &r, ro), NFS4_OK);
  EXPECT_EQ(r.resarray[2].opaccess->resok4.access, ACCESS4_READ);
  ASSERT_EQ(Run(Ops(PutFh(fh), OpenFh("o", OPEN4_SHARE_ACCESS_READ)), &r, ro), NFS4_OK);
  stateid4 rs = r.resarray[2].opopen->resok4.stateid;
  ASSERT_EQ(Run(Ops(PutFh(fh), Read(rs, 0, 10)), &r, ro), NFS4_OK);
  EXPECT_EQ(r.resarray[2].opread->resok4.data.view(), "data");
  EXPECT_EQ(Run(Ops(PutFh(fh), Read(AnonymousStateid(), 0, 10)), nullptr, ro), NFS4_OK);
  // pNFS: a READ layout, but no RW layout and no LAYOUTCOMMIT (which would grow the file).
  EXPECT_EQ(Run(Ops(PutFh(fh), LayoutGet(rs, LAYOUTIOMODE4_RW)), nullptr, ro), NFS4ERR_ROFS);
  ASSERT_EQ(Run(Ops(PutFh(fh), LayoutGet(rs, LAYOUTIOMODE4_READ)), &r, ro), NFS4_OK);
  const stateid4 ls = r.resarray[2].oplayoutget->logr_resok4.logr_stateid;
  EXPECT_EQ(Run(Ops(PutFh(fh), LayoutCommit(ls, 100)), nullptr, ro), NFS4ERR_ROFS);
  EXPECT_EQ(Run(Ops(PutFh(fh), Close(rs)), nullptr, ro), NFS4_OK);
  // Nothing changed.
  EXPECT_EQ(SizeOf(fh), 4u);
  EXPECT_EQ(ModeOf(fh), 0644u);
  ros.Stop();
}

// Name resolution checks the directory as Linux nfsd does (nfsd_lookup's fh_verify with
// NFSD_MAY_EXEC, nfsd_readdir's NFSD_MAY_READ): LOOKUP, LOOKUPP, SECINFO, SECINFO_NO_NAME
// (parent) and OPEN's lookup need search permission on the directory they start from
// (LOOKUPP's is the current directory, whose ".." is looked up), READDIR needs read.
TEST_F(MdsSecurityTest, NameResolutionNeedsDirectoryPermissions) {
  Bytes priv = PublicDir("priv", 0700);
  COMPOUND4res r;
  ASSERT_EQ(Run(Ops(PutFh(priv), Mkdir("sub", 0755), GetFh()), &r), NFS4_OK);
  Bytes sub = r.resarray[3].opgetfh->resok4.object;
  ASSERT_EQ(Run(Ops(PutFh(sub), SetMode(0600))), NFS4_OK);
  ASSERT_EQ(Run(Ops(PutFh(priv), Open("o", "f", OPEN4_SHARE_ACCESS_BOTH, true))), NFS4_OK);
  auto u = As(1000, 1000);
  EXPECT_EQ(Run(Ops(PutFh(priv), Lookup("f")), nullptr, u.get()), NFS4ERR_ACCESS);
  EXPECT_EQ(Run(Ops(PutFh(priv), Readdir(0, 4096)), nullptr, u.get()), NFS4ERR_ACCESS);
  EXPECT_EQ(Run(Ops(PutFh(priv), Secinfo("f")), nullptr, u.get()), NFS4ERR_ACCESS);
  EXPECT_EQ(Run(Ops(PutFh(priv), Open("u", "f", OPEN4_SHARE_ACCESS_READ, false)), nullptr, u.get()),
            NFS4ERR_ACCESS);
  EXPECT_EQ(Run(Ops(PutFh(sub), Lookupp()), nullptr, u.get()), NFS4ERR_ACCESS);
  EXPECT_EQ(Run(Ops(PutFh(sub), SecinfoParent()), nullptr, u.get()), NFS4ERR_ACCESS);
  // Search permission on a directory is enough to go up from it (the parent's own mode is
  // checked by the next LOOKUP from there, as in sub's 0700 parent), and nothing is needed
  // for the root's NOENT.
  ASSERT_EQ(Run(Ops(PutFh(sub), SetMode(0711))), NFS4_OK);
  EXPECT_EQ(Run(Ops(PutFh(sub), Lookupp()), nullptr, u.get()), NFS4_OK);
  EXPECT_EQ(Run(Ops(PutFh(sub), SecinfoParent()), nullptr, u.get()), NFS4_OK);
  EXPECT_EQ(Run(Ops(PutFh(priv), Lookupp()), nullptr, u.get()), NFS4ERR_ACCESS);
  EXPECT_EQ(Run(Ops(PutFh(sub), Lookupp(), Lookup("sub")), nullptr, u.get()), NFS4ERR_ACCESS);
  EXPECT_EQ(Run(Ops(PutRootFh(), Lookupp()), nullptr, u.get()), NFS4ERR_NOENT);
  // Search without read: names resolve, the listing does not.
  ASSERT_EQ(Run(Ops(PutFh(priv), SetMode(0711))), NFS4_OK);
  EXPECT_EQ(Run(Ops(PutFh(priv), Lookup("f")), nullptr, u.get()), NFS4_OK);
  EXPECT_EQ(Run(Ops(PutFh(priv), Secinfo("f")), nullptr, u.get()), NFS4_OK);
  EXPECT_EQ(Run(Ops(PutFh(priv), Readdir(0, 4096)), nullptr, u.get()), NFS4ERR_ACCESS);
  // Root searches and lists anything.
  EXPECT_EQ(Run(Ops(PutFh(priv), SetMode(0))), NFS4_OK);
  EXPECT_EQ(Run(Ops(PutFh(priv), Lookup("f"))), NFS4_OK);
  EXPECT_EQ(Run(Ops(PutFh(priv), Readdir(0, 4096))), NFS4_OK);
}

// OPEN with OPEN4_CREATE needs write permission on the directory only when it creates
// (nfsd4_create_file checks NFSD_MAY_CREATE for a missing name only): an UNCHECKED4 open of
// an existing file in a directory the caller cannot write opens it (checked like any OPEN),
// GUARDED4 reports the existing name.
TEST_F(MdsSecurityTest, OpenCreateNeedsDirectoryWriteOnlyToCreate) {
  Bytes dir = PublicDir("shared", 0755);
  COMPOUND4res r;
  ASSERT_EQ(Run(Ops(PutFh(dir), Open("o", "f", OPEN4_SHARE_ACCESS_BOTH, true), GetFh()), &r), NFS4_OK);
  Bytes fh = r.resarray[3].opgetfh->resok4.object;
  ASSERT_EQ(Run(Ops(PutFh(fh), Close(r.resarray[2].opopen->resok4.stateid))), NFS4_OK);
  ASSERT_EQ(Run(Ops(PutFh(fh), SetMode(0666))), NFS4_OK);
  auto u = As(1000, 1000);
  ASSERT_EQ(Run(Ops(PutFh(dir), OpenHow("u", "f", OPEN4_SHARE_ACCESS_WRITE, UNCHECKED4, Attrs({}))), &r,
                u.get()),
            NFS4_OK);
  EXPECT_EQ(Run(Ops(PutFh(fh), Close(r.resarray[2].opopen->resok4.stateid)), nullptr, u.get()), NFS4_OK);
  EXPECT_EQ(Run(Ops(PutFh(dir), OpenHow("u", "f", OPEN4_SHARE_ACCESS_WRITE, GUARDED4, Attrs({}))),
                nullptr, u.get()),
            NFS4ERR_EXIST);
  EXPECT_EQ(Run(Ops(PutFh(dir), OpenHow("u", "new", OPEN4_SHARE_ACCESS_WRITE, UNCHECKED4, Attrs({}))),
                nullptr, u.get()),
            NFS4ERR_ACCESS);
  EXPECT_EQ(Run(Ops(PutFh(dir), Lookup("new"))), NFS4ERR_NOENT);
  // The existing file's own mode still decides.
  ASSERT_EQ(Run(Ops(PutFh(fh), SetMode(0644))), NFS4_OK);
  EXPECT_EQ(Run(Ops(PutFh(dir), OpenHow("u", "f", OPEN4_SHARE_ACCESS_WRITE, UNCHECKED4, Attrs({}))),
                nullptr, u.get()),
            NFS4ERR_ACCESS);
}

// COMMIT needs write access to the file (nfsd_commit acquires the file with NFSD_MAY_WRITE,
// owner override included), not only a writable export.
TEST_F(MdsSecurityTest, CommitNeedsWriteAccess) {
  Bytes fh = RootFile("secret", "top secret", 0600);
  auto u = As(1000, 1000);
  EXPECT_EQ(Run(Ops(PutFh(fh), Commit()), nullptr, u.get()), NFS4ERR_ACCESS);
  ASSERT_EQ(Run(Ops(PutFh(fh), SetMode(0644))), NFS4_OK);
  EXPECT_EQ(Run(Ops(PutFh(fh), Commit()), nullptr, u.get()), NFS4ERR_ACCESS);
  ASSERT_EQ(Run(Ops(PutFh(fh), SetMode(0666))), NFS4_OK);
  EXPECT_EQ(Run(Ops(PutFh(fh), Commit()), nullptr, u.get()), NFS4_OK);
  EXPECT_EQ(Run(Ops(PutFh(fh), Commit())), NFS4_OK);
  // The owner commits what it writes through the OPEN that created the file 0444.
  Bytes pub = PublicDir("pub");
  COMPOUND4res r;
  ASSERT_EQ(Run(Ops(PutFh(pub), OpenHow("o", "ro", OPEN4_SHARE_ACCESS_BOTH, GUARDED4,
                                        Attrs({{FATTR4_MODE, U32(0444)}})),
                    GetFh()),
                &r, u.get()),
            NFS4_OK);
  stateid4 sid = r.resarray[2].opopen->resok4.stateid;
  Bytes mine = r.resarray[3].opgetfh->resok4.object;
  ASSERT_EQ(Run(Ops(PutFh(mine), Write(sid, 0, "created")), nullptr, u.get()), NFS4_OK);
  EXPECT_EQ(Run(Ops(PutFh(mine), Commit()), nullptr, u.get()), NFS4_OK);
}

// Sticky directories (checked inside the REMOVE's and RENAME's own transactions): another
// user's entry can be neither removed nor moved; one's own can, and root may do either.
TEST_F(MdsSecurityTest, StickyDirectoryProtectsOtherUsersEntries) {
  Bytes tmp = PublicDir("tmp", 01777);
  auto other = As(2000, 2000);
  auto u = As(1000, 1000);
  Bytes theirs = UserFile(other.get(), tmp, "theirs", 0666, "data");
  UserFile(u.get(), tmp, "mine", 0644);
  EXPECT_EQ(Run(Ops(PutFh(tmp), Remove("theirs")), nullptr, u.get()), NFS4ERR_ACCESS);
  EXPECT_EQ(Run(Ops(PutFh(tmp), SaveFh(), Rename("theirs", "stolen")), nullptr, u.get()), NFS4ERR_ACCESS);
  EXPECT_EQ(SizeOf(theirs), 4u);
  EXPECT_EQ(Run(Ops(PutFh(tmp), Lookup("theirs"))), NFS4_OK);
  EXPECT_EQ(Run(Ops(PutFh(tmp), SaveFh(), Rename("mine", "mine2")), nullptr, u.get()), NFS4_OK);
  EXPECT_EQ(Run(Ops(PutFh(tmp), Remove("mine2")), nullptr, u.get()), NFS4_OK);
  EXPECT_EQ(Run(Ops(PutFh(tmp), Remove("theirs")), nullptr, other.get()), NFS4_OK);
  UserFile(other.get(), tmp, "again", 0644);
  EXPECT_EQ(Run(Ops(PutFh(tmp), Remove("again"))), NFS4_OK);  // root
  // Without the sticky bit, write permission on the directory is all it takes.
  ASSERT_EQ(Run(Ops(PutFh(tmp), SetMode(0777))), NFS4_OK);
  UserFile(other.get(), tmp, "open", 0644);
  EXPECT_EQ(Run(Ops(PutFh(tmp), Remove("open")), nullptr, u.get()), NFS4_OK);
  // Without write permission, nothing.
  UserFile(u.get(), tmp, "last", 0644);
  ASSERT_EQ(Run(Ops(PutFh(tmp), SetMode(0755))), NFS4_OK);
  EXPECT_EQ(Run(Ops(PutFh(tmp), Remove("last")), nullptr, u.get()), NFS4ERR_ACCESS);
}

}  // namespace
}  // namespace loom::nfs4
