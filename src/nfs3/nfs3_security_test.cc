// loom-ds permission semantics, export confinement and durability (issues 9 and 10):
// set-ID bits, chown rules, attributes of special files, read-only exports, a symlink race
// against the creating procedures, and the syncs RFC 1813 §1.6 asks before a reply.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "nfs3/nfs3_test_fixture.h"

namespace loom::nfs3 {
namespace {

class Nfs3PermTest : public Nfs3Test {
 protected:
  nfsstat3 SetMode(const nfs_fh3& fh, uint32_t mode) {
    SETATTR3args a;
    a.object = fh;
    a.new_attributes.mode.set_it = true;
    a.new_attributes.mode.mode = mode;
    return Setattr(a);
  }
  nfsstat3 Chown(const nfs_fh3& fh, int64_t uid, int64_t gid) {
    SETATTR3args a;
    a.object = fh;
    a.new_attributes.uid.set_it = uid >= 0;
    a.new_attributes.uid.uid = static_cast<uint32_t>(uid);
    a.new_attributes.gid.set_it = gid >= 0;
    a.new_attributes.gid.gid = static_cast<uint32_t>(gid);
    return Setattr(a);
  }
  nfs_fh3 Mknod(const nfs_fh3& dir, const std::string& name, ftype3 type, nfsstat3 want = NFS3_OK) {
    MKNOD3args a;
    a.where = {dir, name};
    a.what.type = type;
    sattr3& sa = (type == NF3CHR || type == NF3BLK) ? a.what.device.dev_attributes
                                                    : a.what.pipe_attributes;
    sa.mode.set_it = true;
    sa.mode.mode = 0644;
    if (type == NF3CHR) a.what.device.spec = {1, 3};  // like /dev/null
    MKNOD3res r;
    EXPECT_TRUE(client_->Call(NFSPROC3_MKNOD, a, &r).ok());
    EXPECT_EQ(r.status, want) << name;
    return r.resok.obj.handle;
  }
  nfs_fh3 Symlink(const nfs_fh3& dir, const std::string& name, const std::string& target) {
    SYMLINK3args a;
    a.where = {dir, name};
    a.symlink.symlink_data = target;
    SYMLINK3res r;
    EXPECT_TRUE(client_->Call(NFSPROC3_SYMLINK, a, &r).ok());
    EXPECT_EQ(r.status, NFS3_OK) << name;
    return r.resok.obj.handle;
  }
  struct stat Lstat(const std::string& rel) {
    struct stat st {};
    EXPECT_EQ(::lstat((root_ + "/" + rel).c_str(), &st), 0) << rel;
    return st;
  }
  void As(uint32_t uid, uint32_t gid) { client_->set_cred(rpc::Cred::Sys(uid, gid)); }
  // Calls the service procedure `fn` directly (no RPC), as `ctx`; returns its status.
  template <typename Args, typename Res>
  nfsstat3 Serve(void (Nfs3Service::*fn)(const rpc::CallContext&, const Args&, Res&),
                 const rpc::CallContext& ctx, const Args& a) {
    Res r;
    (svc_.get()->*fn)(ctx, a, r);
    return r.status;
  }
};

// Issue 9 item 5: set-user-ID and set-group-ID are cleared as Linux clears them.
TEST_F(Nfs3PermTest, SetIdBitsAreClearedLikeLinux) {
  nfs_fh3 f = Create(rootfh_, "suid");
  ASSERT_EQ(SetMode(f, 06755), NFS3_OK);
  EXPECT_EQ(Lstat("suid").st_mode & 07777, 06755u);
  // chown by the (non-root) owner, even to its own uid, clears both (group-execute is set).
  ASSERT_EQ(Chown(f, 1000, -1), NFS3_OK);
  EXPECT_EQ(Lstat("suid").st_mode & 07777, 0755u);
  // A WRITE by the owner clears them.
  ASSERT_EQ(SetMode(f, 06755), NFS3_OK);
  ASSERT_EQ(Write(f, 0, "x").status, NFS3_OK);
  EXPECT_EQ(Lstat("suid").st_mode & 07777, 0755u);
  // ... and by another user allowed to write.
  ASSERT_EQ(SetMode(f, 06777), NFS3_OK);
  As(2000, 2000);
  ASSERT_EQ(Write(f, 0, "y").status, NFS3_OK);
  EXPECT_EQ(Lstat("suid").st_mode & 07777, 0777u);
  // Root (CAP_FSETID) keeps them.
  As(0, 0);
  ASSERT_EQ(SetMode(f, 06755), NFS3_OK);
  ASSERT_EQ(Write(f, 0, "z").status, NFS3_OK);
  EXPECT_EQ(Lstat("suid").st_mode & 07777, 06755u);
  // Without group-execute, set-group-ID marks mandatory locking and stays.
  As(1000, 1000);
  ASSERT_EQ(SetMode(f, 06644), NFS3_OK);
  ASSERT_EQ(Write(f, 0, "w").status, NFS3_OK);
  EXPECT_EQ(Lstat("suid").st_mode & 07777, 02644u);
  // A truncate is a write.
  ASSERT_EQ(SetMode(f, 04755), NFS3_OK);
  SETATTR3args t;
  t.object = f;
  t.new_attributes.size.set_it = true;
  t.new_attributes.size.size = 0;
  ASSERT_EQ(Setattr(t), NFS3_OK);
  EXPECT_EQ(Lstat("suid").st_mode & 07777, 0755u);
  // chown and chmod in one SETATTR: the bits come out of the requested mode.
  SETATTR3args both;
  both.object = f;
  both.new_attributes.gid.set_it = true;
  both.new_attributes.gid.gid = 1000;
  both.new_attributes.mode.set_it = true;
  both.new_attributes.mode.mode = 06755;
  ASSERT_EQ(Setattr(both), NFS3_OK);
  EXPECT_EQ(Lstat("suid").st_mode & 07777, 0755u);
  // chmod by an owner outside the file's group cannot set set-group-ID.
  ASSERT_EQ(::chown((root_ + "/suid").c_str(), 1000, 5000), 0);
  ASSERT_EQ(SetMode(f, 02755), NFS3_OK);
  EXPECT_EQ(Lstat("suid").st_mode & 07777, 0755u);
  // ... but inside it (a supplementary group) it can.
  client_->set_cred(rpc::Cred::Sys(1000, 1000, {5000}));
  ASSERT_EQ(SetMode(f, 02755), NFS3_OK);
  EXPECT_EQ(Lstat("suid").st_mode & 07777, 02755u);
  // A new file in a group the caller is not in (set-group-ID directory) cannot be created
  // set-group-ID either.
  ASSERT_EQ(::mkdir((root_ + "/sgid").c_str(), 02777), 0);
  ASSERT_EQ(::chown((root_ + "/sgid").c_str(), 0, 5000), 0);
  ASSERT_EQ(::chmod((root_ + "/sgid").c_str(), 02777), 0);
  nfs_fh3 sg;
  ASSERT_EQ(Lookup(rootfh_, "sgid", &sg), NFS3_OK);
  As(1000, 1000);
  CREATE3args ca;
  ca.where = {sg, "new"};
  ca.how.mode = GUARDED;
  ca.how.obj_attributes.mode.set_it = true;
  ca.how.obj_attributes.mode.mode = 02755;
  CREATE3res cr;
  ASSERT_TRUE(client_->Call(NFSPROC3_CREATE, ca, &cr).ok());
  ASSERT_EQ(cr.status, NFS3_OK);
  struct stat st = Lstat("sgid/new");
  EXPECT_EQ(st.st_gid, 5000u);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  // A directory keeps the set-group-ID it inherits.
  nfs_fh3 sub = Mkdir(sg, "subdir");
  EXPECT_EQ(Lstat("sgid/subdir").st_mode & 07777, 02755u);
  (void)sub;
}

// Issue 9 item 6: only the owner (or root) may chown, even to the values the file has.
TEST_F(Nfs3PermTest, ChownByNonOwnerIsPermEvenToTheSameValues) {
  nfs_fh3 f = Create(rootfh_, "owned");
  ASSERT_EQ(SetMode(f, 0666), NFS3_OK);
  As(2000, 1000);  // in the file's group, not its owner
  EXPECT_EQ(Chown(f, 1000, -1), NFS3ERR_PERM);
  EXPECT_EQ(Chown(f, -1, 1000), NFS3ERR_PERM);
  EXPECT_EQ(Chown(f, 1000, 1000), NFS3ERR_PERM);
  EXPECT_EQ(Chown(f, 2000, -1), NFS3ERR_PERM);
  As(1000, 1000);
  EXPECT_EQ(Chown(f, 1000, 1000), NFS3_OK);
  EXPECT_EQ(Chown(f, -1, 3000), NFS3ERR_PERM);  // not one of its groups
  EXPECT_EQ(Chown(f, 0, -1), NFS3ERR_PERM);     // cannot give it away
  As(0, 0);
  EXPECT_EQ(Chown(f, 3000, 3000), NFS3_OK);
  EXPECT_EQ(Lstat("owned").st_uid, 3000u);
}

// Issue 9 item 9: chmod and utimes on FIFOs, sockets, devices and symlinks, without
// following links.
TEST_F(Nfs3PermTest, ModeAndTimesOnSpecialFilesAndSymlinks) {
  nfs_fh3 fifo = Mknod(rootfh_, "fifo", NF3FIFO);
  nfs_fh3 sock = Mknod(rootfh_, "sock", NF3SOCK);
  As(0, 0);
  nfs_fh3 chr = Mknod(rootfh_, "chr", NF3CHR);
  EXPECT_EQ(Chown(chr, 1000, 1000), NFS3_OK);
  As(1000, 1000);
  Create(rootfh_, "target");
  ASSERT_EQ(::chmod((root_ + "/target").c_str(), 0600), 0);
  nfs_fh3 link = Symlink(rootfh_, "link", "target");
  struct stat target_before = Lstat("target");
  for (auto [fh, name] : {std::pair{fifo, "fifo"}, {sock, "sock"}, {chr, "chr"}}) {
    EXPECT_EQ(SetMode(fh, 0640), NFS3_OK) << name;
    EXPECT_EQ(Lstat(name).st_mode & 07777, 0640u) << name;
    SETATTR3args t;
    t.object = fh;
    t.new_attributes.atime.set_it = SET_TO_CLIENT_TIME;
    t.new_attributes.atime.atime = {1000000, 5};
    t.new_attributes.mtime.set_it = SET_TO_CLIENT_TIME;
    t.new_attributes.mtime.mtime = {2000000, 7};
    EXPECT_EQ(Setattr(t), NFS3_OK) << name;
    struct stat st = Lstat(name);
    EXPECT_EQ(st.st_atim.tv_sec, 1000000) << name;
    EXPECT_EQ(st.st_mtim.tv_sec, 2000000) << name;
    EXPECT_EQ(Getattr(fh).resok.obj_attributes.mtime.seconds, 2000000u) << name;
  }
  // A symlink: its own times change, not its target's; a mode is ignored (Linux nfsd does
  // the same: a symlink has no mode of its own on Linux).
  SETATTR3args t;
  t.object = link;
  t.new_attributes.mtime.set_it = SET_TO_CLIENT_TIME;
  t.new_attributes.mtime.mtime = {3000000, 0};
  EXPECT_EQ(Setattr(t), NFS3_OK);
  EXPECT_EQ(Lstat("link").st_mtim.tv_sec, 3000000);
  EXPECT_EQ(SetMode(link, 0600), NFS3_OK);
  struct stat target_after = Lstat("target");
  EXPECT_EQ(target_after.st_mtim.tv_sec, target_before.st_mtim.tv_sec);
  EXPECT_EQ(target_after.st_mode, target_before.st_mode);
  // Another user may not.
  As(2000, 2000);
  EXPECT_EQ(SetMode(fifo, 0777), NFS3ERR_PERM);
  EXPECT_EQ(Setattr(t), NFS3ERR_PERM);
}

// Creating procedures as another uid and as a root-squashed caller.
TEST_F(Nfs3PermTest, CreatorsGetTheirObjectsAndCannotGiveThemAway) {
  // An unprivileged caller's uid/gid at creation are ignored (as by Linux nfsd): no
  // set-user-ID file owned by root can be made this way.
  CREATE3args ca;
  ca.where = {rootfh_, "mine"};
  ca.how.mode = GUARDED;
  ca.how.obj_attributes.mode.set_it = true;
  ca.how.obj_attributes.mode.mode = 04755;
  ca.how.obj_attributes.uid.set_it = true;
  ca.how.obj_attributes.uid.uid = 0;
  ca.how.obj_attributes.gid.set_it = true;
  ca.how.obj_attributes.gid.gid = 0;
  CREATE3res cr;
  ASSERT_TRUE(client_->Call(NFSPROC3_CREATE, ca, &cr).ok());
  ASSERT_EQ(cr.status, NFS3_OK);
  struct stat st = Lstat("mine");
  EXPECT_EQ(st.st_uid, 1000u);
  EXPECT_EQ(st.st_gid, 1000u);
  MKDIR3args ma;
  ma.where = {rootfh_, "mydir"};
  ma.attributes.uid.set_it = true;
  ma.attributes.uid.uid = 0;
  MKDIR3res mr;
  ASSERT_TRUE(client_->Call(NFSPROC3_MKDIR, ma, &mr).ok());
  ASSERT_EQ(mr.status, NFS3_OK);
  EXPECT_EQ(Lstat("mydir").st_uid, 1000u);
  MKNOD3args na;
  na.where = {rootfh_, "myfifo"};
  na.what.type = NF3FIFO;
  na.what.pipe_attributes.uid.set_it = true;
  na.what.pipe_attributes.uid.uid = 0;
  MKNOD3res nr;
  ASSERT_TRUE(client_->Call(NFSPROC3_MKNOD, na, &nr).ok());
  ASSERT_EQ(nr.status, NFS3_OK);
  EXPECT_EQ(Lstat("myfifo").st_uid, 1000u);
  nfs_fh3 sl = Symlink(rootfh_, "mylink", "anything");
  EXPECT_EQ(Lstat("mylink").st_uid, 1000u);
  (void)sl;
  // Devices need root.
  Mknod(rootfh_, "dev", NF3CHR, NFS3ERR_PERM);
  // Root may give objects away at creation.
  As(0, 0);
  ca.where.name = "roots";
  ca.how.obj_attributes.uid.uid = 3000;
  ASSERT_TRUE(client_->Call(NFSPROC3_CREATE, ca, &cr).ok());
  ASSERT_EQ(cr.status, NFS3_OK);
  EXPECT_EQ(Lstat("roots").st_uid, 3000u);
  // A root-squashed caller (nobody) cannot create in a directory only root may write.
  nfs_fh3 locked = Mkdir(rootfh_, "locked");
  ASSERT_EQ(SetMode(locked, 0755), NFS3_OK);
  As(65534, 65534);
  Create(locked, "f", GUARDED, NFS3ERR_ACCES);
  MKDIR3args md;
  md.where = {locked, "d"};
  ASSERT_TRUE(client_->Call(NFSPROC3_MKDIR, md, &mr).ok());
  EXPECT_EQ(mr.status, NFS3ERR_ACCES);
  Mknod(locked, "p", NF3FIFO, NFS3ERR_ACCES);
  EXPECT_FALSE(fsys::exists(root_ + "/locked/f"));
}

// Issue 9 item 8 (loom-ds side): moving a directory to a new parent changes its "..", so it
// needs write permission on the directory itself (as Linux vfs_rename); within one parent not.
TEST_F(Nfs3PermTest, MovingAnotherUsersDirectoryNeedsWriteOnIt) {
  As(0, 0);
  nfs_fh3 a = Mkdir(rootfh_, "a");
  nfs_fh3 b = Mkdir(rootfh_, "b");
  ASSERT_EQ(SetMode(a, 0777), NFS3_OK);
  ASSERT_EQ(SetMode(b, 0777), NFS3_OK);
  As(2000, 2000);
  nfs_fh3 d = Mkdir(a, "theirs");
  ASSERT_EQ(SetMode(d, 0755), NFS3_OK);
  As(1000, 1000);
  RENAME3args rn;
  rn.from = {a, "theirs"};
  rn.to = {b, "mine"};
  RENAME3res rr;
  ASSERT_TRUE(client_->Call(NFSPROC3_RENAME, rn, &rr).ok());
  EXPECT_EQ(rr.status, NFS3ERR_ACCES);
  EXPECT_TRUE(fsys::exists(root_ + "/a/theirs"));
  rn.to = {a, "renamed"};
  ASSERT_TRUE(client_->Call(NFSPROC3_RENAME, rn, &rr).ok());
  EXPECT_EQ(rr.status, NFS3_OK);
  // Its owner may move it; so may anyone when it is writable to them.
  rn.from = {a, "renamed"};
  rn.to = {b, "moved"};
  As(2000, 2000);
  ASSERT_TRUE(client_->Call(NFSPROC3_RENAME, rn, &rr).ok());
  EXPECT_EQ(rr.status, NFS3_OK);
  // A file needs no such permission.
  As(2000, 2000);
  nfs_fh3 f = Create(a, "file");
  ASSERT_EQ(SetMode(f, 0600), NFS3_OK);
  As(1000, 1000);
  rn.from = {a, "file"};
  rn.to = {b, "file"};
  ASSERT_TRUE(client_->Call(NFSPROC3_RENAME, rn, &rr).ok());
  EXPECT_EQ(rr.status, NFS3_OK);
}

// LINK as Linux with fs.protected_hardlinks (the default): a caller that does not own a file
// may link it only when it is a regular file it may read and write and not set-ID; so nobody
// pins another user's set-user-ID program or private file under a name of their own.
TEST_F(Nfs3PermTest, HardLinksToOthersFilesAreProtected) {
  nfs_fh3 own = Create(rootfh_, "own");
  ASSERT_EQ(SetMode(own, 0600), NFS3_OK);
  nfs_fh3 shared = Create(rootfh_, "shared");
  ASSERT_EQ(SetMode(shared, 0666), NFS3_OK);
  nfs_fh3 suid = Create(rootfh_, "suid");
  ASSERT_EQ(SetMode(suid, 04777), NFS3_OK);
  auto link = [&](const nfs_fh3& f, const std::string& name) {
    LINK3args la;
    la.file = f;
    la.link = {rootfh_, name};
    LINK3res lr;
    EXPECT_TRUE(client_->Call(NFSPROC3_LINK, la, &lr).ok());
    return lr.status;
  };
  EXPECT_EQ(link(own, "own2"), NFS3_OK);  // the owner may
  As(2000, 2000);
  EXPECT_EQ(link(own, "stolen"), NFS3ERR_PERM);
  EXPECT_EQ(link(suid, "suid2"), NFS3ERR_PERM);
  EXPECT_EQ(link(shared, "shared2"), NFS3_OK);
  EXPECT_FALSE(fsys::exists(root_ + "/stolen"));
  As(0, 0);
  EXPECT_EQ(link(own, "roots"), NFS3_OK);
}

// Read-only exports: every modifying procedure is NFS3ERR_ROFS, reads still work.
TEST_F(Nfs3PermTest, ReadOnlyExportRefusesEveryChange) {
  nfs_fh3 f = Create(rootfh_, "ro");
  Write(f, 0, "keep");
  nfs_fh3 d = Mkdir(rootfh_, "dir");
  rpc::CallContext ro;
  ro.cred = rpc::Cred::Sys(0, 0);
  ro.read_only = true;
  SETATTR3args sa;
  sa.object = f;
  sa.new_attributes.size.set_it = true;
  EXPECT_EQ(Serve(&Nfs3Service::Setattr, ro, sa), NFS3ERR_ROFS);
  WRITE3args wa;
  wa.file = f;
  wa.count = 1;
  wa.data = Bytes::Copy("x");
  EXPECT_EQ(Serve(&Nfs3Service::Write, ro, wa), NFS3ERR_ROFS);
  CREATE3args ca;
  ca.where = {rootfh_, "new"};
  EXPECT_EQ(Serve(&Nfs3Service::Create, ro, ca), NFS3ERR_ROFS);
  MKDIR3args ma;
  ma.where = {rootfh_, "newdir"};
  EXPECT_EQ(Serve(&Nfs3Service::Mkdir, ro, ma), NFS3ERR_ROFS);
  SYMLINK3args sl;
  sl.where = {rootfh_, "newlink"};
  sl.symlink.symlink_data = "ro";
  EXPECT_EQ(Serve(&Nfs3Service::Symlink, ro, sl), NFS3ERR_ROFS);
  MKNOD3args na;
  na.where = {rootfh_, "newfifo"};
  na.what.type = NF3FIFO;
  EXPECT_EQ(Serve(&Nfs3Service::Mknod, ro, na), NFS3ERR_ROFS);
  EXPECT_EQ(Serve(&Nfs3Service::Remove, ro, REMOVE3args{{rootfh_, "ro"}}), NFS3ERR_ROFS);
  EXPECT_EQ(Serve(&Nfs3Service::Rmdir, ro, RMDIR3args{{rootfh_, "dir"}}), NFS3ERR_ROFS);
  RENAME3args rn;
  rn.from = {rootfh_, "ro"};
  rn.to = {d, "moved"};
  EXPECT_EQ(Serve(&Nfs3Service::Rename, ro, rn), NFS3ERR_ROFS);
  LINK3args la;
  la.file = f;
  la.link = {d, "hard"};
  EXPECT_EQ(Serve(&Nfs3Service::Link, ro, la), NFS3ERR_ROFS);
  // Nothing changed; reads work.
  std::vector<std::string> names;
  for (const auto& e : fsys::directory_iterator(root_)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{".loom-ds", "dir", "ro"}));
  EXPECT_TRUE(fsys::is_empty(root_ + "/dir"));
  EXPECT_EQ(Lstat("ro").st_size, 4);
  READ3args ra{f, 0, 10};
  READ3res rr;
  svc_->Read(ro, ra, rr);
  ASSERT_EQ(rr.status, NFS3_OK);
  EXPECT_EQ(rr.resok.data.view(), "keep");
  COMMIT3res cm;
  svc_->Commit(ro, COMMIT3args{f, 0, 0}, cm);
  EXPECT_EQ(cm.status, NFS3_OK);
  // ACCESS grants no modification (as Linux nfsd on an "ro" export), so clients fail early.
  ACCESS3res ar;
  svc_->Access(ro, ACCESS3args{d, ACCESS3_READ | ACCESS3_LOOKUP | ACCESS3_MODIFY |
                                      ACCESS3_EXTEND | ACCESS3_DELETE}, ar);
  ASSERT_EQ(ar.status, NFS3_OK);
  EXPECT_EQ(ar.resok.access, ACCESS3_READ | ACCESS3_LOOKUP);
}

// Issue 10 item 1: namespace changes and size changes are durable before the reply
// (RFC 1813 §1.6), and a failed sync is NFS3ERR_IO.
TEST_F(Nfs3PermTest, ChangesAreSyncedBeforeTheReply) {
  auto dirs = [&] { return sync_.count[SyncOps::kDir].load(); };
  auto files = [&] {
    return sync_.count[SyncOps::kFile].load() + sync_.count[SyncOps::kData].load();
  };
  int d0 = dirs(), f0 = files();
  nfs_fh3 f = Create(rootfh_, "a");
  EXPECT_EQ(dirs(), d0 + 1);
  EXPECT_EQ(files(), f0 + 1);  // the new file's inode (owner, mode)
  d0 = dirs();
  nfs_fh3 d = Mkdir(rootfh_, "d");
  EXPECT_EQ(dirs(), d0 + 1);
  d0 = dirs();
  Symlink(rootfh_, "l", "a");
  EXPECT_EQ(dirs(), d0 + 1);
  d0 = dirs();
  Mknod(rootfh_, "p", NF3FIFO);
  EXPECT_EQ(dirs(), d0 + 1);
  d0 = dirs();
  RENAME3args rn;
  rn.from = {rootfh_, "a"};
  rn.to = {d, "b"};
  RENAME3res rr;
  ASSERT_TRUE(client_->Call(NFSPROC3_RENAME, rn, &rr).ok());
  ASSERT_EQ(rr.status, NFS3_OK);
  EXPECT_EQ(dirs(), d0 + 2);  // both parents
  d0 = dirs();
  LINK3args la;
  la.file = f;
  la.link = {rootfh_, "hard"};
  LINK3res lr;
  ASSERT_TRUE(client_->Call(NFSPROC3_LINK, la, &lr).ok());
  ASSERT_EQ(lr.status, NFS3_OK);
  EXPECT_EQ(dirs(), d0 + 1);
  d0 = dirs();
  REMOVE3args rm;
  rm.object = {rootfh_, "hard"};
  REMOVE3res rmr;
  ASSERT_TRUE(client_->Call(NFSPROC3_REMOVE, rm, &rmr).ok());
  ASSERT_EQ(rmr.status, NFS3_OK);
  EXPECT_EQ(dirs(), d0 + 1);
  f0 = files();
  SETATTR3args t;
  t.object = f;
  t.new_attributes.size.set_it = true;
  t.new_attributes.size.size = 100;
  SETATTR3res sr;
  ASSERT_TRUE(client_->Call(NFSPROC3_SETATTR, t, &sr).ok());
  ASSERT_EQ(sr.status, NFS3_OK);
  EXPECT_EQ(files(), f0 + 1);
  // A failing sync is an error, never OK.
  sync_.fail_with = EIO;
  Create(rootfh_, "c", GUARDED, NFS3ERR_IO);
  MKDIR3args ma;
  ma.where = {rootfh_, "d2"};
  MKDIR3res mr;
  ASSERT_TRUE(client_->Call(NFSPROC3_MKDIR, ma, &mr).ok());
  EXPECT_EQ(mr.status, NFS3ERR_IO);
  ASSERT_TRUE(client_->Call(NFSPROC3_SETATTR, t, &sr).ok());
  EXPECT_EQ(sr.status, NFS3ERR_IO);
  COMMIT3res cm;
  ASSERT_TRUE(client_->Call(NFSPROC3_COMMIT, COMMIT3args{f, 0, 0}, &cm).ok());
  EXPECT_EQ(cm.status, NFS3ERR_IO);
  rm.object = {d, "b"};
  ASSERT_TRUE(client_->Call(NFSPROC3_REMOVE, rm, &rmr).ok());
  EXPECT_EQ(rmr.status, NFS3ERR_IO);
}

// Issue 9 item 2: a client that swaps a name for a symlink while it is being created
// (MKDIR, MKNOD, SYMLINK, CREATE with attributes) changes nothing outside the export. The
// swapping client is a thread here, working on the exported directory directly (as fast as a
// client can be), for a few seconds.
TEST_F(Nfs3PermTest, SymlinkSwapRaceNeverReachesOutsideTheExport) {
  char tmpl[] = "/tmp/loom-nfs3-outside-XXXXXX";
  std::string outside = ::mkdtemp(tmpl);
  std::string sdir = outside + "/dir", sfile = outside + "/file";
  ASSERT_EQ(::mkdir(sdir.c_str(), 0700), 0);
  int fd = ::open(sfile.c_str(), O_CREAT | O_WRONLY, 0600);
  ASSERT_GE(fd, 0);
  ::close(fd);
  timespec old_times[2] = {{1000, 0}, {1000, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, sdir.c_str(), old_times, 0), 0);
  ASSERT_EQ(::utimensat(AT_FDCWD, sfile.c_str(), old_times, 0), 0);
  struct stat dir0, file0;
  ASSERT_EQ(::stat(sdir.c_str(), &dir0), 0);
  ASSERT_EQ(::stat(sfile.c_str(), &file0), 0);

  nfs_fh3 race = Mkdir(rootfh_, "race");
  int racefd = ::open((root_ + "/race").c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(racefd, 0);
  std::atomic<bool> stop{false};
  // Swapper: whatever the server just made under each name becomes a symlink outside.
  std::thread swapper([&] {
    const char* names[] = {"d", "n", "c", "s"};
    const std::string* targets[] = {&sdir, &sfile, &sfile, &sfile};
    while (!stop.load(std::memory_order_relaxed)) {
      for (int i = 0; i < 4; i++) {
        ::unlinkat(racefd, names[i], AT_REMOVEDIR);
        ::unlinkat(racefd, names[i], 0);
        ::symlinkat(targets[i]->c_str(), racefd, names[i]);
        ::unlinkat(racefd, names[i], 0);
      }
    }
  });
  // The creating client: one thread per procedure, each with its own connection.
  auto creator = [&](uint32_t proc) {
    auto c = Nfs3Client::Connect(loops_->At(0), "127.0.0.1:" + std::to_string(server_->port()),
                                 rpc::Cred::Sys(1000, 1000));
    ASSERT_TRUE(c.ok());
    sattr3 sa;
    sa.mode.set_it = true;
    sa.mode.mode = 07777;
    sa.atime.set_it = SET_TO_CLIENT_TIME;
    sa.atime.atime = {424242, 0};
    sa.mtime.set_it = SET_TO_CLIENT_TIME;
    sa.mtime.mtime = {424242, 0};
    while (!stop.load(std::memory_order_relaxed)) {
      if (proc == NFSPROC3_MKDIR) {
        MKDIR3args a;
        a.where = {race, "d"};
        a.attributes = sa;
        MKDIR3res r;
        (void)(*c)->Call(proc, a, &r);
      } else if (proc == NFSPROC3_MKNOD) {
        MKNOD3args a;
        a.where = {race, "n"};
        a.what.type = NF3FIFO;
        a.what.pipe_attributes = sa;
        MKNOD3res r;
        (void)(*c)->Call(proc, a, &r);
      } else if (proc == NFSPROC3_CREATE) {
        CREATE3args a;
        a.where = {race, "c"};
        a.how.mode = UNCHECKED;
        a.how.obj_attributes = sa;
        CREATE3res r;
        (void)(*c)->Call(proc, a, &r);
      } else {
        SYMLINK3args a;
        a.where = {race, "s"};
        a.symlink.symlink_data = "x";
        SYMLINK3res r;
        (void)(*c)->Call(proc, a, &r);
      }
    }
  };
  std::vector<std::thread> creators;
  for (uint32_t p : {NFSPROC3_MKDIR, NFSPROC3_MKNOD, NFSPROC3_CREATE, NFSPROC3_SYMLINK})
    creators.emplace_back(creator, p);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(4);
  struct stat dir1, file1;
  bool changed = false;
  while (!changed && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ::stat(sdir.c_str(), &dir1);
    ::stat(sfile.c_str(), &file1);
    changed = dir1.st_mode != dir0.st_mode || dir1.st_uid != dir0.st_uid ||
              dir1.st_mtim.tv_sec != dir0.st_mtim.tv_sec || file1.st_mode != file0.st_mode ||
              file1.st_uid != file0.st_uid || file1.st_mtim.tv_sec != file0.st_mtim.tv_sec;
  }
  stop = true;
  for (auto& t : creators) t.join();
  swapper.join();
  ::close(racefd);
  ASSERT_EQ(::stat(sdir.c_str(), &dir1), 0);
  ASSERT_EQ(::stat(sfile.c_str(), &file1), 0);
  EXPECT_EQ(dir1.st_mode, dir0.st_mode);
  EXPECT_EQ(dir1.st_uid, dir0.st_uid);
  EXPECT_EQ(dir1.st_gid, dir0.st_gid);
  EXPECT_EQ(dir1.st_mtim.tv_sec, dir0.st_mtim.tv_sec);
  EXPECT_EQ(file1.st_mode, file0.st_mode);
  EXPECT_EQ(file1.st_uid, file0.st_uid);
  EXPECT_EQ(file1.st_gid, file0.st_gid);
  EXPECT_EQ(file1.st_mtim.tv_sec, file0.st_mtim.tv_sec);
  EXPECT_EQ(file1.st_atim.tv_sec, file0.st_atim.tv_sec);
  fsys::remove_all(outside);
}

}  // namespace
}  // namespace loom::nfs3
