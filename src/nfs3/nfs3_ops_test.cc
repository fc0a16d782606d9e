// loom-ds procedures and error mappings that had no test of their own (issue 14): MKNOD,
// MOUNT's UMNT, UMNTALL and DUMP, and the errno -> nfsstat3 mapping for NOSPC, DQUOT, FBIG,
// ROFS, XDEV and JUKEBOX (through LocalFs's SyncOps seam where no real condition is at hand).
#include <cerrno>

#include "nfs3/nfs3_test_fixture.h"

namespace loom::nfs3 {
namespace {

// pwritev2 failing with `write_errno` while it is set; syncs as CountingSync.
class FaultyOps : public CountingSync {
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

class Nfs3OpsTest : public Nfs3Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/loom-nfs3-ops-test-XXXXXX";
    root_ = mkdtemp(tmpl);
    ::chmod(root_.c_str(), 0777);
    StartNfs3(&faulty_, svc_opts_);
  }
  MKNOD3res Mknod(const std::string& name, ftype3 type, uint32_t mode = 0640, specdata3 spec = {}) {
    MKNOD3args a;
    a.where = {rootfh_, name};
    a.what.type = type;
    sattr3& sa =
        (type == NF3CHR || type == NF3BLK) ? a.what.device.dev_attributes : a.what.pipe_attributes;
    sa.mode.set_it = true;
    sa.mode.mode = mode;
    a.what.device.spec = spec;
    MKNOD3res r;
    EXPECT_TRUE(client_->Call(NFSPROC3_MKNOD, a, &r).ok());
    return r;
  }
  // MOUNT procedures that take a dirpath (MNT, UMNT) or nothing (DUMP, UMNTALL).
  bool MountCall(uint32_t proc, const std::string* path, mountlist3* dump = nullptr) {
    auto r = client_->rpc().CallSync(MOUNT_PROGRAM, MOUNT_V3, proc, rpc::Cred::Sys(1000, 1000),
                                     [&](xdr::Encoder& e) {
                                       if (path) e.string(*path);
                                     });
    if (!r.ok()) return false;
    if (dump) {
      xdr::Decoder d = r->results();
      return xdr_decode(d, *dump);
    }
    return true;
  }
  std::vector<std::string> Mounted() {
    mountlist3 l;
    EXPECT_TRUE(MountCall(MOUNTPROC3_DUMP, nullptr, &l));
    std::vector<std::string> dirs;
    for (const auto& m : l.entries) {
      EXPECT_EQ(m.ml_hostname, "127.0.0.1");
      dirs.push_back(m.ml_directory);
    }
    return dirs;
  }
  void Umnt(const std::string& path) { ASSERT_TRUE(MountCall(MOUNTPROC3_UMNT, &path)); }

  FaultyOps faulty_;
};

// ---------------------------------------------------------------------------------------
// MKNOD (RFC 1813 §3.3.11).

TEST_F(Nfs3OpsTest, MknodMakesFifosSocketsAndDevicesOnly) {
  // FIFOs and sockets: any user with write permission on the directory; the object has the
  // type and the mode asked, and the caller as owner.
  for (auto [name, type, ifmt] :
       {std::tuple{"fifo", NF3FIFO, S_IFIFO}, {"sock", NF3SOCK, S_IFSOCK}}) {
    MKNOD3res r = Mknod(name, type);
    ASSERT_EQ(r.status, NFS3_OK) << name;
    ASSERT_TRUE(r.resok.obj.handle_follows);
    ASSERT_TRUE(r.resok.obj_attributes.attributes_follow);
    EXPECT_EQ(r.resok.obj_attributes.attributes.type, type);
    EXPECT_EQ(r.resok.obj_attributes.attributes.mode & 07777, 0640u);
    EXPECT_EQ(r.resok.obj_attributes.attributes.uid, 1000u);
    struct stat st {};
    ASSERT_EQ(::lstat((root_ + "/" + name).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & S_IFMT, static_cast<mode_t>(ifmt)) << name;
    EXPECT_EQ(Getattr(r.resok.obj.handle).resok.obj_attributes.type, type);
  }
  // Devices: only root (as mknod(2) needs CAP_MKNOD): PERM for uid 1000, nothing made.
  EXPECT_EQ(Mknod("null", NF3CHR, 0666, {1, 3}).status, NFS3ERR_PERM);
  EXPECT_NE(::access((root_ + "/null").c_str(), F_OK), 0);
  client_->set_cred(rpc::Cred::Sys(0, 0));
  MKNOD3res dev = Mknod("null", NF3CHR, 0666, {1, 3});
  ASSERT_EQ(dev.status, NFS3_OK);
  EXPECT_EQ(dev.resok.obj_attributes.attributes.type, NF3CHR);
  EXPECT_EQ(dev.resok.obj_attributes.attributes.rdev.specdata1, 1u);  // the major and minor
  EXPECT_EQ(dev.resok.obj_attributes.attributes.rdev.specdata2, 3u);
  MKNOD3res blk = Mknod("loop", NF3BLK, 0600, {7, 0});
  ASSERT_EQ(blk.status, NFS3_OK);
  EXPECT_EQ(blk.resok.obj_attributes.attributes.type, NF3BLK);
  EXPECT_EQ(blk.resok.obj_attributes.attributes.rdev.specdata1, 7u);
  client_->set_cred(rpc::Cred::Sys(1000, 1000));
  // §3.3.11: regular files, directories and symbolic links are not made by MKNOD: BADTYPE.
  for (ftype3 type : {NF3REG, NF3DIR, NF3LNK}) {
    EXPECT_EQ(Mknod("wrong", type).status, NFS3ERR_BADTYPE) << type;
    EXPECT_NE(::access((root_ + "/wrong").c_str(), F_OK), 0) << type;
  }
  // An existing name is EXIST, the object there untouched.
  EXPECT_EQ(Mknod("fifo", NF3SOCK).status, NFS3ERR_EXIST);
  struct stat st {};
  ASSERT_EQ(::lstat((root_ + "/fifo").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  // The directory's wcc data is returned on failure too.
  MKNOD3res fail = Mknod("fifo", NF3FIFO);
  EXPECT_EQ(fail.status, NFS3ERR_EXIST);
  EXPECT_TRUE(fail.resfail.dir_wcc.after.attributes_follow);
}

// ---------------------------------------------------------------------------------------
// MOUNT (RFC 1813 §5.2.2-5.2.4): the mount list.

TEST_F(Nfs3OpsTest, UmntAndDumpKeepTheMountList) {
  // The fixture mounted "/" (MNT adds the client and the path, §5.2.1).
  EXPECT_EQ(Mounted(), std::vector<std::string>{"/"});
  Mkdir(rootfh_, "sub");
  ASSERT_TRUE(client_->Mount("/sub/").ok());
  EXPECT_EQ(Mounted(), (std::vector<std::string>{"/", "/sub"}));
  // UMNT removes the entry for the path as MNT spelled it, trailing '/' or not (§5.2.3).
  Umnt("/sub/");
  EXPECT_EQ(Mounted(), std::vector<std::string>{"/"});
  // A path that is not mounted: nothing changes, and UMNT has no error to return.
  Umnt("/elsewhere");
  EXPECT_EQ(Mounted(), std::vector<std::string>{"/"});
  Umnt("/");
  EXPECT_TRUE(Mounted().empty());
  // UMNTALL (§5.2.4) removes every entry of the caller.
  ASSERT_TRUE(client_->Mount("/").ok());
  ASSERT_TRUE(client_->Mount("/sub").ok());
  EXPECT_EQ(Mounted().size(), 2u);
  ASSERT_TRUE(MountCall(MOUNTPROC3_UMNTALL, nullptr));
  EXPECT_TRUE(Mounted().empty());
  // A refused MNT adds nothing.
  EXPECT_FALSE(client_->Mount("/missing").ok());
  EXPECT_TRUE(Mounted().empty());
}

// ---------------------------------------------------------------------------------------
// errno -> nfsstat3 (RFC 1813 §2.6).

TEST_F(Nfs3OpsTest, ErrnosMapToTheirNfs3Status) {
  // The table, for the codes no real condition here produces (XDEV needs a second filesystem
  // inside the export).
  EXPECT_EQ(Nfs3Service::FromErrno(ENOSPC), NFS3ERR_NOSPC);
  EXPECT_EQ(Nfs3Service::FromErrno(EROFS), NFS3ERR_ROFS);
  EXPECT_EQ(Nfs3Service::FromErrno(EDQUOT), NFS3ERR_DQUOT);
  EXPECT_EQ(Nfs3Service::FromErrno(EFBIG), NFS3ERR_FBIG);
  EXPECT_EQ(Nfs3Service::FromErrno(EXDEV), NFS3ERR_XDEV);
  EXPECT_EQ(Nfs3Service::FromErrno(EAGAIN), NFS3ERR_JUKEBOX);
  EXPECT_EQ(Nfs3Service::FromErrno(EIO), NFS3ERR_IO);
  EXPECT_EQ(Nfs3Service::FromErrno(0), NFS3_OK);
}

TEST_F(Nfs3OpsTest, WriteFailuresReachTheClientWithTheirStatus) {
  nfs_fh3 fh = Create(rootfh_, "f");
  ASSERT_EQ(Write(fh, 0, "kept", FILE_SYNC).status, NFS3_OK);
  // §3.3.7 WRITE: the disk is full (NOSPC), over quota (DQUOT), the file too large (FBIG),
  // the filesystem read-only underneath (ROFS); EAGAIN is "try later" (JUKEBOX, §2.6).
  for (auto [err, want] : {std::pair{ENOSPC, NFS3ERR_NOSPC},
                           {EDQUOT, NFS3ERR_DQUOT},
                           {EFBIG, NFS3ERR_FBIG},
                           {EROFS, NFS3ERR_ROFS},
                           {EAGAIN, NFS3ERR_JUKEBOX}}) {
    faulty_.write_errno = err;
    WRITE3res r = Write(fh, 4, "lost", FILE_SYNC);
    EXPECT_EQ(r.status, want) << err;
    EXPECT_TRUE(r.resfail.file_wcc.after.attributes_follow) << err;
  }
  faulty_.write_errno = 0;
  // Nothing of the failed writes landed.
  READ3res rd = Read(fh, 0, 100);
  ASSERT_EQ(rd.status, NFS3_OK);
  EXPECT_EQ(rd.resok.data.view(), "kept");
  // A real FBIG: an offset past the largest file (2^63 - 1) is refused before any write.
  EXPECT_EQ(Write(fh, static_cast<uint64_t>(INT64_MAX) - 1, "xx").status, NFS3ERR_FBIG);
  // COMMIT lists no space errors (§3.3.21): a failing sync is IO.
  faulty_.fail_with = ENOSPC;
  COMMIT3args ca;
  ca.file = fh;
  COMMIT3res cr;
  ASSERT_TRUE(client_->Call(NFSPROC3_COMMIT, ca, &cr).ok());
  EXPECT_EQ(cr.status, NFS3ERR_IO);
  faulty_.fail_with = 0;
  ASSERT_TRUE(client_->Call(NFSPROC3_COMMIT, ca, &cr).ok());
  EXPECT_EQ(cr.status, NFS3_OK);
}

TEST_F(Nfs3OpsTest, NamespaceChangesMapTheirErrnos) {
  // A synchronous namespace change whose sync fails with ENOSPC (a full journal) reports it
  // (§3.3.8 CREATE, §3.3.9 MKDIR list NOSPC); one that fails with EDQUOT, DQUOT.
  faulty_.fail_with = ENOSPC;
  MKDIR3args a;
  a.where = {rootfh_, "d"};
  MKDIR3res r;
  ASSERT_TRUE(client_->Call(NFSPROC3_MKDIR, a, &r).ok());
  EXPECT_EQ(r.status, NFS3ERR_NOSPC);
  faulty_.fail_with = EDQUOT;
  a.where.name = "d2";
  ASSERT_TRUE(client_->Call(NFSPROC3_MKDIR, a, &r).ok());
  EXPECT_EQ(r.status, NFS3ERR_DQUOT);
  faulty_.fail_with = 0;
}

}  // namespace
}  // namespace loom::nfs3
