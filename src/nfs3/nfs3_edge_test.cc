// loom-ds error paths, called straight on Nfs3Service (no RPC) so that each test can pick the
// caller's credentials and the export's read-only flag: the RFC 1813 errors of the directory
// procedures (§3.3.3-3.3.16), stale and forged handles, the descriptor cache, WRITE/COMMIT
// refusals, READDIR/READDIRPLUS buffer limits and LocalFs::Open's refusals.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdint>
#include <filesystem>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "nfs3/nfs3_test_fixture.h"

namespace loom::nfs3 {
namespace {

class Nfs3EdgeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/loom-nfs3-edge-XXXXXX";
    root_ = mkdtemp(tmpl);
    ::chmod(root_.c_str(), 0777);
    Open(4);
  }
  void TearDown() override {
    svc_.reset();
    fs_.reset();
    fsys::remove_all(root_);
  }
  void Open(size_t fd_cache) {
    svc_.reset();
    fs_.reset();
    LocalFs::Options o{root_, "", fd_cache};
    o.sync = &sync_;
    auto fs = LocalFs::Open(o);
    ASSERT_TRUE(fs.ok()) << fs.status().ToString();
    fs_ = std::move(fs.value());
    svc_ = std::make_unique<Nfs3Service>(fs_.get(), Nfs3Service::Options{});
    rootfh_.data = Bytes::Copy(fs_->root_handle());
  }
  static rpc::CallContext As(uint32_t uid, bool ro = false) {
    rpc::CallContext c;
    c.cred = rpc::Cred::Sys(uid, uid);
    c.read_only = ro;
    return c;
  }
  nfs_fh3 Fh(const std::string& rel) {
    Node n;
    Node root;
    EXPECT_EQ(fs_->Resolve(fs_->root_handle(), &root), 0);
    EXPECT_EQ(fs_->LookupAt(root, rel, &n), 0) << rel;
    nfs_fh3 fh;
    fh.data = Bytes::Copy(n.fh);
    return fh;
  }
  nfsstat3 Create(const rpc::CallContext& c, const nfs_fh3& dir, const std::string& name,
                  createmode3 mode = GUARDED, nfs_fh3* out = nullptr, uint64_t verf = 0) {
    CREATE3args a;
    a.where = {dir, name};
    a.how.mode = mode;
    a.how.obj_attributes.mode.set_it = true;
    a.how.obj_attributes.mode.mode = 0644;
    std::memcpy(a.how.verf.data(), &verf, 8);
    CREATE3res r;
    svc_->Create(c, a, r);
    if (out && r.status == NFS3_OK) *out = r.resok.obj.handle;
    return r.status;
  }
  nfsstat3 Mkdir(const rpc::CallContext& c, const nfs_fh3& dir, const std::string& name) {
    MKDIR3args a;
    a.where = {dir, name};
    MKDIR3res r;
    svc_->Mkdir(c, a, r);
    return r.status;
  }
  nfsstat3 Remove(const rpc::CallContext& c, const nfs_fh3& dir, const std::string& name) {
    REMOVE3args a;
    a.object = {dir, name};
    REMOVE3res r;
    svc_->Remove(c, a, r);
    return r.status;
  }
  nfsstat3 Rmdir(const rpc::CallContext& c, const nfs_fh3& dir, const std::string& name) {
    RMDIR3args a;
    a.object = {dir, name};
    RMDIR3res r;
    svc_->Rmdir(c, a, r);
    return r.status;
  }
  nfsstat3 Rename(const rpc::CallContext& c, const nfs_fh3& fd, const std::string& fn,
                  const nfs_fh3& td, const std::string& tn) {
    RENAME3args a;
    a.from = {fd, fn};
    a.to = {td, tn};
    RENAME3res r;
    svc_->Rename(c, a, r);
    return r.status;
  }
  nfsstat3 Link(const rpc::CallContext& c, const nfs_fh3& file, const nfs_fh3& dir,
                const std::string& name) {
    LINK3args a;
    a.file = file;
    a.link = {dir, name};
    LINK3res r;
    svc_->Link(c, a, r);
    return r.status;
  }
  nfsstat3 Lookup(const rpc::CallContext& c, const nfs_fh3& dir, const std::string& name) {
    LOOKUP3args a;
    a.what = {dir, name};
    LOOKUP3res r;
    svc_->Lookup(c, a, r);
    return r.status;
  }
  WRITE3res Write(const rpc::CallContext& c, const nfs_fh3& fh, uint64_t off,
                  const std::string& data, stable_how how = UNSTABLE) {
    WRITE3args a;
    a.file = fh;
    a.offset = off;
    a.count = static_cast<uint32_t>(data.size());
    a.stable = how;
    a.data = Bytes::Copy(data);
    WRITE3res r;
    svc_->Write(c, a, r);
    return r;
  }
  nfsstat3 Getattr(const nfs_fh3& fh) {
    GETATTR3res r;
    svc_->Getattr(As(0), GETATTR3args{fh}, r);
    return r.status;
  }
  void Touch(const std::string& rel, mode_t mode = 0644, uid_t uid = 0) {
    std::string p = root_ + "/" + rel;
    int fd = ::open(p.c_str(), O_CREAT | O_WRONLY, mode);
    ASSERT_GE(fd, 0) << p;
    ::close(fd);
    ASSERT_EQ(::chmod(p.c_str(), mode), 0);
    ASSERT_EQ(::chown(p.c_str(), uid, uid), 0);
  }
  void Dir(const std::string& rel, mode_t mode = 0777, uid_t uid = 0) {
    std::string p = root_ + "/" + rel;
    ASSERT_EQ(::mkdir(p.c_str(), 0700), 0) << p;
    ASSERT_EQ(::chmod(p.c_str(), mode), 0);
    ASSERT_EQ(::chown(p.c_str(), uid, uid), 0);
  }
  bool Exists(const std::string& rel) {
    struct stat st;
    return ::lstat((root_ + "/" + rel).c_str(), &st) == 0;
  }

  std::string root_;
  CountingSync sync_;
  std::unique_ptr<LocalFs> fs_;
  std::unique_ptr<Nfs3Service> svc_;
  nfs_fh3 rootfh_;
};

TEST_F(Nfs3EdgeTest, DirectoryProceduresOnAFileAreNotDir) {
  Touch("f");
  nfs_fh3 f = Fh("f");
  EXPECT_EQ(Lookup(As(0), f, "x"), NFS3ERR_NOTDIR);
  EXPECT_EQ(Create(As(0), f, "x"), NFS3ERR_NOTDIR);
  EXPECT_EQ(Mkdir(As(0), f, "x"), NFS3ERR_NOTDIR);
  EXPECT_EQ(Remove(As(0), f, "x"), NFS3ERR_NOTDIR);
  EXPECT_EQ(Rename(As(0), rootfh_, "f", f, "x"), NFS3ERR_NOTDIR);
  EXPECT_EQ(Link(As(0), f, f, "x"), NFS3ERR_NOTDIR);
  READDIR3args ra;
  ra.dir = f;
  ra.count = 4096;
  READDIR3res rr;
  svc_->Readdir(As(0), ra, rr);
  EXPECT_EQ(rr.status, NFS3ERR_NOTDIR);
  READDIRPLUS3args pa;
  pa.dir = f;
  pa.dircount = pa.maxcount = 4096;
  READDIRPLUS3res pr;
  svc_->Readdirplus(As(0), pa, pr);
  EXPECT_EQ(pr.status, NFS3ERR_NOTDIR);
}

TEST_F(Nfs3EdgeTest, NamesAndTheHiddenStateDirectory) {
  const std::string too_long(NAME_MAX + 1, 'n');
  EXPECT_EQ(Lookup(As(0), rootfh_, too_long), NFS3ERR_NAMETOOLONG);
  EXPECT_EQ(Create(As(0), rootfh_, too_long), NFS3ERR_NAMETOOLONG);
  EXPECT_EQ(Create(As(0), rootfh_, "a/b"), NFS3ERR_ACCES);
  EXPECT_EQ(Create(As(0), rootfh_, ""), NFS3ERR_ACCES);
  EXPECT_EQ(Create(As(0), rootfh_, "."), NFS3ERR_EXIST);
  EXPECT_EQ(Mkdir(As(0), rootfh_, ".."), NFS3ERR_EXIST);
  // The state directory (secret inside the export) is invisible and untouchable.
  ASSERT_TRUE(Exists(LocalFs::kHiddenName));
  EXPECT_EQ(Lookup(As(0), rootfh_, LocalFs::kHiddenName), NFS3ERR_NOENT);
  EXPECT_EQ(Create(As(0), rootfh_, LocalFs::kHiddenName), NFS3ERR_EXIST);
  EXPECT_EQ(Remove(As(0), rootfh_, LocalFs::kHiddenName), NFS3ERR_ACCES);
  EXPECT_EQ(Rmdir(As(0), rootfh_, LocalFs::kHiddenName), NFS3ERR_ACCES);
  Touch("f");
  EXPECT_EQ(Rename(As(0), rootfh_, "f", rootfh_, LocalFs::kHiddenName), NFS3ERR_ACCES);
  EXPECT_EQ(Rename(As(0), rootfh_, LocalFs::kHiddenName, rootfh_, "g"), NFS3ERR_ACCES);
  EXPECT_EQ(Link(As(0), Fh("f"), rootfh_, LocalFs::kHiddenName), NFS3ERR_EXIST);
  EXPECT_TRUE(Exists(std::string(LocalFs::kHiddenName) + "/secret"));
  // §3.3.12/13/14: "." and ".." are not entries one can remove or rename.
  EXPECT_EQ(Remove(As(0), rootfh_, "."), NFS3ERR_INVAL);
  EXPECT_EQ(Rmdir(As(0), rootfh_, "."), NFS3ERR_INVAL);
  EXPECT_EQ(Rmdir(As(0), rootfh_, ".."), NFS3ERR_NOTEMPTY);
  EXPECT_EQ(Rename(As(0), rootfh_, "..", rootfh_, "x"), NFS3ERR_INVAL);
  EXPECT_EQ(Rename(As(0), rootfh_, "f", rootfh_, "."), NFS3ERR_INVAL);
  EXPECT_EQ(Rename(As(0), rootfh_, "f", rootfh_, too_long), NFS3ERR_NAMETOOLONG);
  EXPECT_EQ(Link(As(0), Fh("f"), rootfh_, ".."), NFS3ERR_EXIST);
  EXPECT_TRUE(Exists("f"));
}

TEST_F(Nfs3EdgeTest, ReadOnlyExportRefusesEveryChange) {
  Touch("f");
  Dir("d");
  auto ro = As(0, true);
  EXPECT_EQ(Create(ro, rootfh_, "x"), NFS3ERR_ROFS);
  EXPECT_EQ(Mkdir(ro, rootfh_, "x"), NFS3ERR_ROFS);
  EXPECT_EQ(Remove(ro, rootfh_, "f"), NFS3ERR_ROFS);
  EXPECT_EQ(Rmdir(ro, rootfh_, "d"), NFS3ERR_ROFS);
  EXPECT_EQ(Rename(ro, rootfh_, "f", rootfh_, "g"), NFS3ERR_ROFS);
  EXPECT_EQ(Link(ro, Fh("f"), rootfh_, "g"), NFS3ERR_ROFS);
  EXPECT_EQ(Write(ro, Fh("f"), 0, "data").status, NFS3ERR_ROFS);
  EXPECT_TRUE(Exists("f"));
  EXPECT_TRUE(Exists("d"));
  EXPECT_FALSE(Exists("x"));
  EXPECT_FALSE(Exists("g"));
  // Reads still work.
  EXPECT_EQ(Lookup(ro, rootfh_, "f"), NFS3_OK);
}

TEST_F(Nfs3EdgeTest, PermissionRefusals) {
  Dir("closed", 0755);   // root's: others may not add names
  Dir("noexec", 0766);   // no search permission for others
  Dir("noread", 0733);   // no read permission for others
  Touch("closed/f", 0600);
  EXPECT_EQ(Create(As(1000), Fh("closed"), "x"), NFS3ERR_ACCES);
  EXPECT_EQ(Mkdir(As(1000), Fh("closed"), "x"), NFS3ERR_ACCES);
  EXPECT_EQ(Remove(As(1000), Fh("closed"), "f"), NFS3ERR_ACCES);
  EXPECT_EQ(Lookup(As(1000), Fh("noexec"), "x"), NFS3ERR_ACCES);
  READDIR3args ra;
  ra.dir = Fh("noread");
  ra.count = 4096;
  READDIR3res rr;
  svc_->Readdir(As(1000), ra, rr);
  EXPECT_EQ(rr.status, NFS3ERR_ACCES);
  // protected_hardlinks: no link to someone else's file the caller cannot read and write.
  EXPECT_EQ(Link(As(1000), Fh("closed/f"), rootfh_, "stolen"), NFS3ERR_PERM);
  EXPECT_FALSE(Exists("stolen"));
  // Device nodes need root; an unknown type is BADTYPE (§3.3.11).
  MKNOD3args m;
  m.where = {rootfh_, "dev"};
  m.what.type = NF3CHR;
  MKNOD3res mr;
  svc_->Mknod(As(1000), m, mr);
  EXPECT_EQ(mr.status, NFS3ERR_PERM);
  m.what.type = NF3REG;
  svc_->Mknod(As(0), m, mr);
  EXPECT_EQ(mr.status, NFS3ERR_BADTYPE);
  EXPECT_FALSE(Exists("dev"));
  // Moving a directory to another parent rewrites its "..": needs write on the directory.
  Dir("mine", 0777, 1000);
  Dir("theirs", 0555, 1001);
  Dir("open", 0777);
  EXPECT_EQ(Rename(As(1000), rootfh_, "theirs", Fh("mine"), "t"), NFS3ERR_ACCES);
  EXPECT_EQ(Rename(As(1000), rootfh_, "mine", Fh("open"), "m"), NFS3_OK);
  EXPECT_TRUE(Exists("open/m"));
}

TEST_F(Nfs3EdgeTest, StickyDirectoryProtectsOthersEntries) {
  Dir("tmp", 01777);
  nfs_fh3 tmp = Fh("tmp");
  ASSERT_EQ(Create(As(1000), tmp, "a"), NFS3_OK);
  ASSERT_EQ(Mkdir(As(1000), tmp, "sub"), NFS3_OK);
  EXPECT_EQ(Remove(As(1001), tmp, "a"), NFS3ERR_ACCES);
  EXPECT_EQ(Rmdir(As(1001), tmp, "sub"), NFS3ERR_ACCES);
  EXPECT_EQ(Rename(As(1001), tmp, "a", tmp, "b"), NFS3ERR_ACCES);
  ASSERT_EQ(Create(As(1001), tmp, "mine"), NFS3_OK);
  EXPECT_EQ(Rename(As(1001), tmp, "mine", tmp, "a"), NFS3ERR_ACCES);  // target is 1000's
  EXPECT_TRUE(Exists("tmp/a"));
  // The owner of the entry, and root, may.
  EXPECT_EQ(Rename(As(1000), tmp, "a", tmp, "b"), NFS3_OK);
  EXPECT_EQ(Remove(As(0), tmp, "b"), NFS3_OK);
  EXPECT_EQ(Rmdir(As(1000), tmp, "sub"), NFS3_OK);
  // A missing name in a sticky directory is simply NOENT.
  EXPECT_EQ(Remove(As(1001), tmp, "gone"), NFS3ERR_NOENT);
}

TEST_F(Nfs3EdgeTest, TypeAndEmptinessErrors) {
  Dir("d");
  Dir("full");
  Touch("full/x");
  Touch("f");
  EXPECT_EQ(Rmdir(As(0), rootfh_, "f"), NFS3ERR_NOTDIR);
  EXPECT_EQ(Rmdir(As(0), rootfh_, "full"), NFS3ERR_NOTEMPTY);
  EXPECT_EQ(Remove(As(0), rootfh_, "d"), NFS3ERR_ISDIR);
  EXPECT_EQ(Rmdir(As(0), rootfh_, "nope"), NFS3ERR_NOENT);
  EXPECT_EQ(Rename(As(0), rootfh_, "d", rootfh_, "f"), NFS3ERR_NOTDIR);
  EXPECT_EQ(Rename(As(0), rootfh_, "f", rootfh_, "d"), NFS3ERR_ISDIR);
  EXPECT_EQ(Rename(As(0), rootfh_, "d", rootfh_, "full"), NFS3ERR_NOTEMPTY);
  EXPECT_EQ(Rename(As(0), rootfh_, "full", Fh("full"), "loop"), NFS3ERR_INVAL);
  EXPECT_EQ(Rename(As(0), rootfh_, "nope", rootfh_, "x"), NFS3ERR_NOENT);
  EXPECT_EQ(Link(As(0), Fh("d"), rootfh_, "dl"), NFS3ERR_ISDIR);
  EXPECT_EQ(Link(As(0), Fh("f"), rootfh_, "d"), NFS3ERR_EXIST);
  EXPECT_EQ(Create(As(0), rootfh_, "d", UNCHECKED), NFS3ERR_EXIST);
  EXPECT_EQ(Mkdir(As(0), rootfh_, "f"), NFS3ERR_EXIST);
  // Rename over a file drops the replaced file's handle: it is STALE now.
  nfs_fh3 old = Fh("full/x");
  EXPECT_EQ(Getattr(old), NFS3_OK);
  EXPECT_EQ(Rename(As(0), rootfh_, "f", Fh("full"), "x"), NFS3_OK);
  EXPECT_EQ(Getattr(old), NFS3ERR_STALE);
  // A link count that changes as names come and go.
  nfs_fh3 x = Fh("full/x");
  ASSERT_EQ(Link(As(0), x, rootfh_, "x2"), NFS3_OK);
  struct stat st;
  ASSERT_EQ(::stat((root_ + "/x2").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 2u);
  ASSERT_EQ(Remove(As(0), Fh("full"), "x"), NFS3_OK);
  EXPECT_EQ(Getattr(x), NFS3_OK);  // still reachable as x2
}

TEST_F(Nfs3EdgeTest, CreateModes) {
  nfs_fh3 fh;
  ASSERT_EQ(Create(As(1000), rootfh_, "f", GUARDED, &fh), NFS3_OK);
  EXPECT_EQ(Write(As(1000), fh, 0, "hello").status, NFS3_OK);
  EXPECT_EQ(Create(As(1000), rootfh_, "f", GUARDED), NFS3ERR_EXIST);
  // UNCHECKED over an existing file applies the attributes (here: size 0).
  CREATE3args a;
  a.where = {rootfh_, "f"};
  a.how.mode = UNCHECKED;
  a.how.obj_attributes.size.set_it = true;
  a.how.obj_attributes.size.size = 0;
  CREATE3res r;
  svc_->Create(As(1000), a, r);
  EXPECT_EQ(r.status, NFS3_OK);
  struct stat st;
  ASSERT_EQ(::stat((root_ + "/f").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 0);
  // EXCLUSIVE: a retransmission with the same verifier succeeds, another verifier is EXIST.
  const uint64_t verf = 0x0000123400005678ull;
  nfs_fh3 e1, e2;
  ASSERT_EQ(Create(As(1000), rootfh_, "e", EXCLUSIVE, &e1, verf), NFS3_OK);
  EXPECT_EQ(Create(As(1000), rootfh_, "e", EXCLUSIVE, &e2, verf), NFS3_OK);
  EXPECT_EQ(e1.data.view(), e2.data.view());
  EXPECT_EQ(Create(As(1000), rootfh_, "e", EXCLUSIVE, nullptr, verf + 1), NFS3ERR_EXIST);
  // The new file is the caller's, with the mode asked for whatever the umask.
  ASSERT_EQ(::stat((root_ + "/f").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1000u);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
}

TEST_F(Nfs3EdgeTest, SymlinkAndReadlinkRefusals) {
  SYMLINK3args a;
  a.where = {rootfh_, "l"};
  SYMLINK3res r;
  svc_->Symlink(As(0), a, r);  // empty target
  EXPECT_EQ(r.status, NFS3ERR_INVAL);
  a.symlink.symlink_data = std::string("a\0b", 3);
  svc_->Symlink(As(0), a, r);
  EXPECT_EQ(r.status, NFS3ERR_INVAL);
  a.symlink.symlink_data = std::string(PATH_MAX, 'p');
  svc_->Symlink(As(0), a, r);
  EXPECT_EQ(r.status, NFS3ERR_INVAL);
  EXPECT_FALSE(Exists("l"));
  a.symlink.symlink_data = "target";
  svc_->Symlink(As(0), a, r);
  ASSERT_EQ(r.status, NFS3_OK);
  svc_->Symlink(As(0), a, r);
  EXPECT_EQ(r.status, NFS3ERR_EXIST);
  Touch("f");
  READLINK3res rl;
  svc_->Readlink(As(0), READLINK3args{Fh("f")}, rl);
  EXPECT_EQ(rl.status, NFS3ERR_INVAL);
  svc_->Readlink(As(0), READLINK3args{Fh("l")}, rl);
  ASSERT_EQ(rl.status, NFS3_OK);
  EXPECT_EQ(rl.resok.data, "target");
  // I/O on a symlink handle is INVAL, on a directory ISDIR.
  EXPECT_EQ(Write(As(0), Fh("l"), 0, "x").status, NFS3ERR_INVAL);
  EXPECT_EQ(Write(As(0), rootfh_, 0, "x").status, NFS3ERR_ISDIR);
  READ3res rd;
  svc_->Read(As(0), READ3args{Fh("l"), 0, 10}, rd);
  EXPECT_EQ(rd.status, NFS3ERR_INVAL);
  svc_->Read(As(0), READ3args{rootfh_, 0, 10}, rd);
  EXPECT_EQ(rd.status, NFS3ERR_ISDIR);
  COMMIT3res cr;
  svc_->Commit(As(0), COMMIT3args{rootfh_, 0, 0}, cr);
  EXPECT_EQ(cr.status, NFS3ERR_ISDIR);
  svc_->Commit(As(0), COMMIT3args{Fh("l"), 0, 0}, cr);
  EXPECT_EQ(cr.status, NFS3ERR_INVAL);
}

TEST_F(Nfs3EdgeTest, StaleAndForgedHandles) {
  Touch("f");
  nfs_fh3 f = Fh("f");
  ASSERT_EQ(Getattr(f), NFS3_OK);
  // Removed behind the server's back (by another client of the local filesystem).
  ASSERT_EQ(::unlink((root_ + "/f").c_str()), 0);
  EXPECT_EQ(Getattr(f), NFS3ERR_STALE);
  EXPECT_EQ(Write(As(0), f, 0, "x").status, NFS3ERR_STALE);
  READ3res rd;
  svc_->Read(As(0), READ3args{f, 0, 1}, rd);
  EXPECT_EQ(rd.status, NFS3ERR_STALE);
  COMMIT3res cr;
  svc_->Commit(As(0), COMMIT3args{f, 0, 0}, cr);
  EXPECT_EQ(cr.status, NFS3ERR_STALE);
  // A removed directory.
  Dir("d");
  nfs_fh3 d = Fh("d");
  ASSERT_EQ(::rmdir((root_ + "/d").c_str()), 0);
  EXPECT_EQ(Getattr(d), NFS3ERR_STALE);
  EXPECT_EQ(Create(As(0), d, "x"), NFS3ERR_STALE);
  EXPECT_EQ(Lookup(As(0), d, "x"), NFS3ERR_STALE);
  // A handle with one byte changed fails its seal: never another file's handle.
  Touch("g");
  std::string forged(Fh("g").data.view());
  forged[forged.size() / 2] ^= 0x40;
  nfs_fh3 bad;
  bad.data = Bytes::Copy(forged);
  nfsstat3 st = Getattr(bad);
  EXPECT_TRUE(st == NFS3ERR_STALE || st == NFS3ERR_BADHANDLE) << st;
  nfs_fh3 junk;
  junk.data = Bytes::Copy(std::string("xy"));
  st = Getattr(junk);
  EXPECT_TRUE(st == NFS3ERR_STALE || st == NFS3ERR_BADHANDLE) << st;
  EXPECT_EQ(Create(As(0), junk, "x"), st);
  EXPECT_EQ(Link(As(0), junk, rootfh_, "x"), st);
  EXPECT_EQ(Link(As(0), Fh("g"), junk, "x"), st);
}

TEST_F(Nfs3EdgeTest, HandlesOutliveDescriptorCacheEviction) {
  Open(2);  // two open descriptors at most
  std::vector<nfs_fh3> fhs;
  for (int i = 0; i < 6; ++i) {
    std::string name = "f" + std::to_string(i);
    nfs_fh3 fh;
    ASSERT_EQ(Create(As(0), rootfh_, name, GUARDED, &fh), NFS3_OK);
    ASSERT_EQ(Write(As(0), fh, 0, name).status, NFS3_OK);
    fhs.push_back(fh);
  }
  // Every handle still reaches its own file after the cache dropped it.
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < 6; ++i) {
      READ3res r;
      svc_->Read(As(0), READ3args{fhs[i], 0, 100}, r);
      ASSERT_EQ(r.status, NFS3_OK);
      EXPECT_EQ(std::string(r.resok.data.view()), "f" + std::to_string(i));
      EXPECT_TRUE(r.resok.eof);
    }
  }
  // Forgetting a handle that is not cached is harmless.
  fs_->Forget("not a handle");
  EXPECT_EQ(Getattr(fhs[0]), NFS3_OK);
}

TEST_F(Nfs3EdgeTest, WriteAndCommitErrors) {
  nfs_fh3 fh;
  ASSERT_EQ(Create(As(1000), rootfh_, "f", GUARDED, &fh), NFS3_OK);
  // Another user without write permission.
  EXPECT_EQ(Write(As(1001), fh, 0, "x").status, NFS3ERR_ACCES);
  // count larger than the data sent.
  WRITE3args a;
  a.file = fh;
  a.count = 10;
  a.data = Bytes::Copy(std::string("abc"));
  WRITE3res r;
  svc_->Write(As(1000), a, r);
  EXPECT_EQ(r.status, NFS3ERR_INVAL);
  // Past the largest file offset.
  EXPECT_EQ(Write(As(1000), fh, static_cast<uint64_t>(INT64_MAX) - 1, "xyz").status,
            NFS3ERR_FBIG);
  // Stable modes are reported as asked, with the server's write verifier.
  for (stable_how how : {UNSTABLE, DATA_SYNC, FILE_SYNC}) {
    WRITE3res w = Write(As(1000), fh, 0, "data", how);
    ASSERT_EQ(w.status, NFS3_OK);
    EXPECT_EQ(w.resok.committed, how);
    EXPECT_EQ(w.resok.count, 4u);
    EXPECT_TRUE(std::equal(w.resok.verf.begin(), w.resok.verf.end(),
                           fs_->write_verifier().begin()));
  }
  // A write by a non-owner clears set-user-ID.
  ASSERT_EQ(::chmod((root_ + "/f").c_str(), 04666), 0);
  ASSERT_EQ(Write(As(1001), fh, 0, "y").status, NFS3_OK);
  struct stat st;
  ASSERT_EQ(::stat((root_ + "/f").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0666u);
  // COMMIT whose sync fails is IO; then succeeds again.
  sync_.fail_with = EIO;
  COMMIT3res cr;
  svc_->Commit(As(1000), COMMIT3args{fh, 0, 0}, cr);
  EXPECT_EQ(cr.status, NFS3ERR_IO);
  // A failed directory sync fails the change that needed it.
  EXPECT_EQ(Mkdir(As(0), rootfh_, "d"), NFS3ERR_IO);
  sync_.fail_with = ENOSPC;
  EXPECT_EQ(Create(As(0), rootfh_, "g"), NFS3ERR_NOSPC);
  sync_.fail_with = 0;
  svc_->Commit(As(1000), COMMIT3args{fh, 0, 0}, cr);
  EXPECT_EQ(cr.status, NFS3_OK);
  // Reads past EOF return nothing and eof.
  READ3res rd;
  svc_->Read(As(1000), READ3args{fh, 1000, 10}, rd);
  ASSERT_EQ(rd.status, NFS3_OK);
  EXPECT_EQ(rd.resok.count, 0u);
  EXPECT_TRUE(rd.resok.eof);
  // Read permission: a 0600 file of another user.
  ASSERT_EQ(::chmod((root_ + "/f").c_str(), 0600), 0);
  svc_->Read(As(1001), READ3args{fh, 0, 10}, rd);
  EXPECT_EQ(rd.status, NFS3ERR_ACCES);
}

TEST_F(Nfs3EdgeTest, ReaddirBufferLimits) {
  for (int i = 0; i < 20; ++i) Touch("entry-with-a-longish-name-" + std::to_string(i));
  // Too small for even one entry: TOOSMALL (§3.3.16).
  READDIR3args a;
  a.dir = rootfh_;
  a.count = 120;
  READDIR3res r;
  svc_->Readdir(As(0), a, r);
  EXPECT_EQ(r.status, NFS3ERR_TOOSMALL);
  READDIRPLUS3args p;
  p.dir = rootfh_;
  p.dircount = 4096;
  p.maxcount = 200;
  READDIRPLUS3res pr;
  svc_->Readdirplus(As(0), p, pr);
  EXPECT_EQ(pr.status, NFS3ERR_TOOSMALL);
  // Small pages: paging by cookie sees every name exactly once, never the state directory.
  std::multiset<std::string> seen;
  a.count = 400;
  a.cookie = 0;
  for (int pages = 0; pages < 100; ++pages) {
    READDIR3res page;
    svc_->Readdir(As(0), a, page);
    ASSERT_EQ(page.status, NFS3_OK);
    ASSERT_FALSE(page.resok.reply.entries.empty());
    for (auto& e : page.resok.reply.entries) seen.insert(e.name);
    a.cookie = page.resok.reply.entries.back().cookie;
    if (page.resok.reply.eof) break;
  }
  EXPECT_EQ(seen.size(), 22u);  // 20 files, "." and ".."
  EXPECT_EQ(seen.count(LocalFs::kHiddenName), 0u);
  EXPECT_EQ(seen.count("entry-with-a-longish-name-7"), 1u);
  // READDIRPLUS with a tight dircount stops early but returns at least one entry.
  p.dircount = 10;
  p.maxcount = 32768;
  pr = READDIRPLUS3res{};  // a fresh result, as every call on the wire has
  svc_->Readdirplus(As(0), p, pr);
  ASSERT_EQ(pr.status, NFS3_OK);
  EXPECT_EQ(pr.resok.reply.entries.size(), 1u);
  EXPECT_FALSE(pr.resok.reply.eof);
  // A full READDIRPLUS gives handles and attributes of every entry.
  p.dircount = 0;
  pr = READDIRPLUS3res{};
  svc_->Readdirplus(As(0), p, pr);
  ASSERT_EQ(pr.status, NFS3_OK);
  EXPECT_TRUE(pr.resok.reply.eof);
  std::multiset<std::string> plus;
  for (auto& e : pr.resok.reply.entries) plus.insert(e.name);
  EXPECT_EQ(plus, seen);
  for (auto& e : pr.resok.reply.entries) {
    EXPECT_TRUE(e.name_handle.handle_follows) << e.name;
    EXPECT_TRUE(e.name_attributes.attributes_follow) << e.name;
  }
}

TEST_F(Nfs3EdgeTest, OpenRefusesExportsItCannotServeSafely) {
  // A missing export.
  LocalFs::Options o{root_ + "/missing", "", 4};
  EXPECT_FALSE(LocalFs::Open(o).ok());
  // An export that holds files but no secret: a new one would make old handles STALE.
  Dir("exp");
  Touch("exp/data");
  std::string state = root_ + "/state-elsewhere";
  LocalFs::Options e{root_ + "/exp", state, 4};
  auto r = LocalFs::Open(e);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNotFound);
  EXPECT_FALSE(Exists("state-elsewhere/secret"));
  // Accepted with new_secret, and the secret then lives in the state directory.
  e.new_secret = true;
  auto ok = LocalFs::Open(e);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_TRUE(Exists("state-elsewhere/secret"));
  EXPECT_EQ((*ok)->state_dir(), state);
  // Handles from another export's secret are refused.
  Node n;
  EXPECT_NE((*ok)->Resolve(fs_->root_handle(), &n), 0);
  // The default state directory is a per-export name under /var/lib/loom-ds.
  std::string d1 = LocalFs::DefaultStateDir(root_);
  EXPECT_EQ(d1.rfind("/var/lib/loom-ds/", 0), 0u);
  EXPECT_NE(d1, LocalFs::DefaultStateDir(root_ + "/exp"));
  EXPECT_EQ(d1, LocalFs::DefaultStateDir(root_ + "/exp/.."));
}

TEST_F(Nfs3EdgeTest, ReaddirOfBadDirectoriesAndCookies) {
  Dir("d");
  Touch("d/a");
  nfs_fh3 d = Fh("d");
  // A cookie the directory can never have handed out (negative as a file offset).
  READDIR3args a;
  a.dir = d;
  a.count = 4096;
  a.cookie = ~0ull;
  READDIR3res r;
  svc_->Readdir(As(0), a, r);
  EXPECT_EQ(r.status, NFS3ERR_BAD_COOKIE);
  READDIRPLUS3args p;
  p.dir = d;
  p.cookie = ~0ull;
  p.dircount = 4096;
  p.maxcount = 8192;
  READDIRPLUS3res pr;
  svc_->Readdirplus(As(0), p, pr);
  EXPECT_EQ(pr.status, NFS3ERR_BAD_COOKIE);
  // A directory removed behind the server's back: STALE, without attributes.
  ASSERT_EQ(::unlink((root_ + "/d/a").c_str()), 0);
  ASSERT_EQ(::rmdir((root_ + "/d").c_str()), 0);
  a.cookie = 0;
  READDIR3res r2;
  svc_->Readdir(As(0), a, r2);
  EXPECT_EQ(r2.status, NFS3ERR_STALE);
  EXPECT_FALSE(r2.resfail.dir_attributes.attributes_follow);
  p.cookie = 0;
  READDIRPLUS3res pr2;
  svc_->Readdirplus(As(0), p, pr2);
  EXPECT_EQ(pr2.status, NFS3ERR_STALE);
  // Not readable: ACCES, but with the directory's attributes.
  Dir("closed", 0711);
  p.dir = Fh("closed");
  READDIRPLUS3res pr3;
  svc_->Readdirplus(As(1000), p, pr3);
  EXPECT_EQ(pr3.status, NFS3ERR_ACCES);
  EXPECT_TRUE(pr3.resfail.dir_attributes.attributes_follow);
}

TEST_F(Nfs3EdgeTest, LookupOfDotDotAtTheRootIsTheRoot) {
  LOOKUP3args a;
  a.what = {rootfh_, ".."};
  LOOKUP3res r;
  svc_->Lookup(As(1000), a, r);
  ASSERT_EQ(r.status, NFS3_OK);
  EXPECT_EQ(r.resok.object.data.view(), rootfh_.data.view());
  a.what = {rootfh_, "."};
  LOOKUP3res r2;
  svc_->Lookup(As(1000), a, r2);
  ASSERT_EQ(r2.status, NFS3_OK);
  EXPECT_EQ(r2.resok.object.data.view(), rootfh_.data.view());
  // Below the root, ".." is the parent.
  Dir("sub");
  a.what = {Fh("sub"), ".."};
  LOOKUP3res r3;
  svc_->Lookup(As(1000), a, r3);
  ASSERT_EQ(r3.status, NFS3_OK);
  EXPECT_EQ(r3.resok.object.data.view(), rootfh_.data.view());
}

TEST_F(Nfs3EdgeTest, SpecialFilesGetTheirModeThroughTheirDescriptor) {
  for (ftype3 type : {NF3FIFO, NF3SOCK}) {
    std::string name = type == NF3FIFO ? "fifo" : "sock";
    MKNOD3args m;
    m.where = {rootfh_, name};
    m.what.type = type;
    m.what.pipe_attributes.mode.set_it = true;
    m.what.pipe_attributes.mode.mode = 0604;
    MKNOD3res r;
    svc_->Mknod(As(1000), m, r);
    ASSERT_EQ(r.status, NFS3_OK) << name;
    struct stat st;
    ASSERT_EQ(::lstat((root_ + "/" + name).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0604u) << name;
    EXPECT_EQ(st.st_uid, 1000u) << name;
    // SETATTR of the mode goes through /proc/self/fd (no fchmod on an O_PATH descriptor).
    SETATTR3args sa;
    sa.object = r.resok.obj.handle;
    sa.new_attributes.mode.set_it = true;
    sa.new_attributes.mode.mode = 0640;
    SETATTR3res sr;
    svc_->Setattr(As(1000), sa, sr);
    ASSERT_EQ(sr.status, NFS3_OK) << name;
    ASSERT_EQ(::lstat((root_ + "/" + name).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0640u) << name;
    // Another user may not.
    sa.new_attributes.mode.mode = 0666;
    svc_->Setattr(As(1001), sa, sr);
    EXPECT_EQ(sr.status, NFS3ERR_PERM) << name;
    // Syncing a special file syncs its filesystem.
    int before = sync_.count[SyncOps::kFilesystem];
    Node n;
    ASSERT_EQ(fs_->Resolve(r.resok.obj.handle.data.view(), &n), 0);
    EXPECT_EQ(fs_->SyncObject(n, false), 0);
    EXPECT_EQ(sync_.count[SyncOps::kFilesystem], before + 1);
  }
}

TEST_F(Nfs3EdgeTest, ReadLimitsInlineAndSendfile) {
  nfs_fh3 fh;
  ASSERT_EQ(Create(As(0), rootfh_, "f", GUARDED, &fh), NFS3_OK);
  const std::string data(64 * 1024, 'd');
  ASSERT_EQ(Write(As(0), fh, 0, data, FILE_SYNC).status, NFS3_OK);
  // A server with a small rtmax answers at most that much, not at EOF.
  Nfs3Service::Options o;
  o.max_io = 100;
  o.read_sendfile = Nfs3Service::Options::Sendfile::kOn;
  Nfs3Service small(fs_.get(), o);
  READ3res r;
  small.Read(As(0), READ3args{fh, 0, 1000}, r);
  ASSERT_EQ(r.status, NFS3_OK);
  EXPECT_EQ(r.resok.count, 100u);
  EXPECT_FALSE(r.resok.eof);
  // Large reads with sendfile on: the reply refers to the file instead of copying it.
  o.max_io = 1u << 20;
  Nfs3Service big(fs_.get(), o);
  READ3res rb;
  big.Read(As(0), READ3args{fh, 1000, 60000}, rb);
  ASSERT_EQ(rb.status, NFS3_OK);
  EXPECT_EQ(rb.resok.count, 60000u);
  EXPECT_EQ(rb.resok.data.size, 60000u);
  EXPECT_TRUE(rb.resok.data.is_file());
  EXPECT_FALSE(rb.resok.eof);
  // On the loop thread, a large sendfile read is answered there when every page of the range
  // is in the page cache (cachestat, Linux 6.5+; the read above brought them in), and goes to a
  // worker when some page would come from the disk, or the kernel cannot tell.
  const bool has_cachestat = ::syscall(451, -1, nullptr, nullptr, 0) != 0 && errno != ENOSYS;
  READ3res ri;
  EXPECT_EQ(big.ReadInline(As(0), READ3args{fh, 0, 60000}, ri), has_cachestat);
  if (has_cachestat) {
    ASSERT_EQ(ri.status, NFS3_OK);
    EXPECT_TRUE(ri.resok.data.is_file());
    EXPECT_EQ(ri.resok.count, 60000u);
    // Evicted (the data is clean: FILE_SYNC), the same read must not run on the loop.
    int fd = ::open((root_ + "/f").c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
    ::close(fd);
    READ3res re;
    EXPECT_FALSE(big.ReadInline(As(0), READ3args{fh, 0, 60000}, re));
  }
  // A small read of a cached handle is answered inline, from the page cache.
  READ3res rs;
  if (svc_->ReadInline(As(0), READ3args{fh, 65000, 1000}, rs)) {
    ASSERT_EQ(rs.status, NFS3_OK);
    EXPECT_EQ(rs.resok.count, 536u);
    EXPECT_TRUE(rs.resok.eof);
  }
  // A handle not open yet needs the disk: deferred.
  Touch("cold");
  Open(4);  // a fresh LocalFs: nothing cached
  std::string cold;
  {
    Node root;
    ASSERT_EQ(fs_->Resolve(fs_->root_handle(), &root), 0);
    ASSERT_EQ(fs_->HandleOf(root.fd(), "cold", &cold), 0);
  }
  nfs_fh3 cfh;
  cfh.data = Bytes::Copy(cold);
  READ3res rc;
  EXPECT_FALSE(svc_->ReadInline(As(0), READ3args{cfh, 0, 10}, rc));
  GETATTR3res ga;
  EXPECT_FALSE(svc_->GetattrInline(As(0), GETATTR3args{cfh}, ga));
  EXPECT_EQ(Getattr(cfh), NFS3_OK);  // opens and caches it
  EXPECT_TRUE(svc_->GetattrInline(As(0), GETATTR3args{cfh}, ga));
  EXPECT_EQ(ga.status, NFS3_OK);
}

TEST_F(Nfs3EdgeTest, SecretInsideTheExportIsFoundWhenTheStateDirIsElsewhere) {
  // This export already has its secret in <root>/.loom-ds (the fixture made it): a state
  // directory given later without a secret falls back to it, so handles stay valid.
  nfs_fh3 before = rootfh_;
  svc_.reset();
  fs_.reset();
  LocalFs::Options o{root_, root_ + "/elsewhere/state", 4};
  auto fs = LocalFs::Open(o);
  ASSERT_TRUE(fs.ok()) << fs.status().ToString();
  EXPECT_EQ((*fs)->state_dir(), root_ + "/" + LocalFs::kHiddenName);
  EXPECT_EQ((*fs)->root_handle(), std::string(before.data.view()));
  // A state directory that cannot be made (its parent is a file).
  Touch("plainfile");
  fsys::remove_all(root_ + "/" + LocalFs::kHiddenName);
  LocalFs::Options bad{root_, root_ + "/plainfile/state", 4};
  bad.new_secret = true;
  auto r = LocalFs::Open(bad);
  ASSERT_FALSE(r.ok());
  // An enormous descriptor cache is clamped to what the process may open.
  LocalFs::Options huge{root_, root_ + "/state2", size_t{1} << 40};
  huge.new_secret = true;
  auto h = LocalFs::Open(huge);
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  Node root;
  EXPECT_EQ((*h)->Resolve((*h)->root_handle(), &root), 0);
  EXPECT_TRUE(root.is_root);
}

TEST_F(Nfs3EdgeTest, SetattrRefusals) {
  Touch("f", 0644, 1000);
  Dir("d");
  nfs_fh3 f = Fh("f");
  auto setattr = [&](const rpc::CallContext& c, const nfs_fh3& fh, const sattr3& sa,
                     sattrguard3 guard = {}) {
    SETATTR3args a;
    a.object = fh;
    a.new_attributes = sa;
    a.guard = guard;
    SETATTR3res r;
    svc_->Setattr(c, a, r);
    return r.status;
  };
  sattr3 size0;
  size0.size.set_it = true;
  size0.size.size = 0;
  EXPECT_EQ(setattr(As(1000, true), f, size0), NFS3ERR_ROFS);
  EXPECT_EQ(setattr(As(0), Fh("d"), size0), NFS3ERR_ISDIR);
  EXPECT_EQ(setattr(As(1001), f, size0), NFS3ERR_ACCES);  // not the owner, no write permission
  // §3.3.2 guard: a ctime that does not match is NOT_SYNC, and nothing changes.
  sattrguard3 stale{true, nfstime3{1, 2}};
  EXPECT_EQ(setattr(As(1000), f, size0, stale), NFS3ERR_NOT_SYNC);
  // Owners and groups: only the owner chowns, only root gives away, the owner may pick
  // only a group it is in.
  sattr3 own;
  own.uid.set_it = true;
  own.uid.uid = 1001;
  EXPECT_EQ(setattr(As(1000), f, own), NFS3ERR_PERM);
  EXPECT_EQ(setattr(As(1001), f, own), NFS3ERR_PERM);
  sattr3 grp;
  grp.gid.set_it = true;
  grp.gid.gid = 4242;
  EXPECT_EQ(setattr(As(1000), f, grp), NFS3ERR_PERM);
  // A chgrp to one of the caller's groups clears set-user-ID (an unprivileged chown).
  ASSERT_EQ(::chmod((root_ + "/f").c_str(), 04644), 0);
  rpc::CallContext member = As(1000);
  member.cred = rpc::Cred::Sys(1000, 1000, {4242});
  EXPECT_EQ(setattr(member, Fh("f"), grp), NFS3_OK);
  struct stat st;
  ASSERT_EQ(::stat((root_ + "/f").c_str(), &st), 0);
  EXPECT_EQ(st.st_gid, 4242u);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  // chmod by someone else.
  sattr3 mode;
  mode.mode.set_it = true;
  mode.mode.mode = 0777;
  EXPECT_EQ(setattr(As(1001), f, mode), NFS3ERR_PERM);
  // Times: explicit times need ownership, "now" needs write permission.
  sattr3 client_time;
  client_time.mtime.set_it = SET_TO_CLIENT_TIME;
  client_time.mtime.mtime = nfstime3{12345, 0};
  EXPECT_EQ(setattr(As(1001), f, client_time), NFS3ERR_PERM);
  sattr3 now;
  now.atime.set_it = SET_TO_SERVER_TIME;
  EXPECT_EQ(setattr(As(1001), f, now), NFS3ERR_ACCES);
  ASSERT_EQ(::chmod((root_ + "/f").c_str(), 0666), 0);
  EXPECT_EQ(setattr(As(1001), Fh("f"), now), NFS3_OK);
  EXPECT_EQ(setattr(As(1000), Fh("f"), client_time), NFS3_OK);
  ASSERT_EQ(::stat((root_ + "/f").c_str(), &st), 0);
  EXPECT_EQ(st.st_mtim.tv_sec, 12345);
  // A truncate whose sync fails is IO (the new size must be durable before the reply).
  sync_.fail_with = EIO;
  EXPECT_EQ(setattr(As(1000), Fh("f"), size0), NFS3ERR_IO);
  sync_.fail_with = 0;
  // ACCESS from a read-only export never grants MODIFY.
  ACCESS3res ar;
  svc_->Access(As(1000, true), ACCESS3args{Fh("f"), ACCESS3_READ | ACCESS3_MODIFY}, ar);
  ASSERT_EQ(ar.status, NFS3_OK);
  EXPECT_EQ(ar.resok.access, uint32_t{ACCESS3_READ});
  svc_->Access(As(1000), ACCESS3args{Fh("f"), ACCESS3_READ | ACCESS3_MODIFY}, ar);
  EXPECT_EQ(ar.resok.access, uint32_t{ACCESS3_READ | ACCESS3_MODIFY});
}

}  // namespace
}  // namespace loom::nfs3
