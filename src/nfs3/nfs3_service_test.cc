// loom-ds's NFSv3 service end to end in one process: RpcServer + Nfs3Service over a temporary
// directory, driven through Nfs3Client over loopback TCP.
#include "nfs3/nfs3_service.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include <gtest/gtest.h>

#include "common/sync_point.h"
#include "nfs3/nfs3_client.h"
#include "nfs3/nfs3_test_fixture.h"

namespace loom::nfs3 {
namespace {

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& ch : s) ch = static_cast<char>(rng());
  return s;
}

TEST_F(Nfs3Test, MountExportAndRootAttributes) {
  EXPECT_FALSE(client_->Mount("/elsewhere").ok());
  // Subdirectories may be mounted; files, "..", and the hidden state directory may not.
  nfs_fh3 sub = Mkdir(rootfh_, "sub");
  Mkdir(sub, "deeper");
  auto m = client_->Mount("/sub/deeper/");
  ASSERT_TRUE(m.ok());
  nfs_fh3 deeper;
  ASSERT_EQ(Lookup(sub, "deeper", &deeper), NFS3_OK);
  EXPECT_EQ(m->data, deeper.data);
  Create(sub, "file");
  EXPECT_FALSE(client_->Mount("/sub/file").ok());
  EXPECT_FALSE(client_->Mount("/sub/../..").ok());
  EXPECT_FALSE(client_->Mount("/.loom-ds").ok());
  auto r = Getattr(rootfh_);
  ASSERT_EQ(r.status, NFS3_OK);
  EXPECT_EQ(r.resok.obj_attributes.type, NF3DIR);
  auto ex = client_->rpc().CallSync(MOUNT_PROGRAM, MOUNT_V3, MOUNTPROC3_EXPORT, rpc::Cred(),
                                    [](xdr::Encoder&) {});
  ASSERT_TRUE(ex.ok());
  exports3 exports;
  xdr::Decoder d = ex->results();
  ASSERT_TRUE(xdr_decode(d, exports));
  ASSERT_EQ(exports.entries.size(), 1u);
  EXPECT_EQ(exports.entries[0].ex_dir, "/");
  FSINFO3res fi;
  ASSERT_TRUE(client_->Call(NFSPROC3_FSINFO, FSINFO3args{rootfh_}, &fi).ok());
  EXPECT_EQ(fi.resok.rtmax, 1u << 20);
  FSSTAT3res fsst;
  ASSERT_TRUE(client_->Call(NFSPROC3_FSSTAT, FSSTAT3args{rootfh_}, &fsst).ok());
  EXPECT_GT(fsst.resok.tbytes, 0u);
  PATHCONF3res pc;
  ASSERT_TRUE(client_->Call(NFSPROC3_PATHCONF, PATHCONF3args{rootfh_}, &pc).ok());
  EXPECT_EQ(pc.resok.name_max, 255u);
}

TEST_F(Nfs3Test, WriteReadCommitRoundTrip) {
  nfs_fh3 fh = Create(rootfh_, "data.bin");
  struct stat st;
  ASSERT_EQ(::stat((root_ + "/data.bin").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1000u);  // created as the caller
  EXPECT_EQ(st.st_mode & 0777, 0644u);
  std::string big = RandomBytes(300 * 1024 + 7, 1);
  size_t off = 0;
  while (off < big.size()) {
    size_t n = std::min<size_t>(64 * 1024, big.size() - off);
    auto w = Write(fh, off, big.substr(off, n));
    ASSERT_EQ(w.status, NFS3_OK);
    ASSERT_EQ(w.resok.count, n);
    EXPECT_EQ(w.resok.committed, UNSTABLE);
    off += n;
  }
  COMMIT3res cr;
  ASSERT_TRUE(client_->Call(NFSPROC3_COMMIT, COMMIT3args{fh, 0, 0}, &cr).ok());
  ASSERT_EQ(cr.status, NFS3_OK);
  EXPECT_EQ(std::equal(cr.resok.verf.begin(), cr.resok.verf.end(), fs_->write_verifier().begin()), true);
  // Large read and small read (copy paths), then the sendfile path.
  auto r = Read(fh, 0, 256 * 1024);
  ASSERT_EQ(r.status, NFS3_OK);
  EXPECT_EQ(r.resok.count, 256u * 1024);
  EXPECT_FALSE(r.resok.eof);
  EXPECT_EQ(r.resok.data.view(), std::string_view(big).substr(0, 256 * 1024));
  auto tail = Read(fh, 256 * 1024, 1 << 20);
  EXPECT_EQ(tail.resok.data.view(), std::string_view(big).substr(256 * 1024));
  EXPECT_TRUE(tail.resok.eof);
  auto small = Read(fh, 100, 10);
  EXPECT_EQ(small.resok.data.view(), std::string_view(big).substr(100, 10));
  auto past = Read(fh, big.size() + 10, 10);
  EXPECT_EQ(past.resok.count, 0u);
  EXPECT_TRUE(past.resok.eof);
  // FILE_SYNC is reported as such.
  EXPECT_EQ(Write(fh, 0, "x", FILE_SYNC).resok.committed, FILE_SYNC);
  // The bytes on disk are the bytes written.
  std::ifstream in(root_ + "/data.bin", std::ios::binary);
  std::string disk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  big[0] = 'x';
  EXPECT_EQ(disk, big);
  auto* s = server_->stats().Get("nfs3.WRITE");
  EXPECT_GE(s->calls(), 5u);
  EXPECT_GE(s->bytes_in(), big.size());
  // The same bytes through the sendfile path.
  svc_opts_.read_sendfile = Nfs3Service::Options::Sendfile::kOn;
  std::string fhbytes = fh.data.str();
  RestartServer();
  fh.data = Bytes::Copy(fhbytes);
  auto sf = Read(fh, 4096, 200 * 1024);
  ASSERT_EQ(sf.status, NFS3_OK);
  EXPECT_EQ(sf.resok.data.view(), std::string_view(big).substr(4096, 200 * 1024));
}

// Options::read_sendfile: a large READ alone on its connection (this client waits for each
// reply) goes out with sendfile under kWhenAlone (the default) and kOn; under kOff it is sent
// from the file's mapping (Options::read_map, the default) or copied; small ones are always
// copied. The bytes are the same either way. (When calls are not alone: rpc_test.cc,
// RpcConnection.AloneMeansNoOtherCallSentAndUnanswered.)
TEST_F(Nfs3Test, LargeReadsGoOutWithSendfileWhenAloneElseFromTheMapping) {
  nfs_fh3 fh = Create(rootfh_, "sf.bin");
  std::string big(256 * 1024, '\0');
  for (size_t i = 0; i < big.size(); i++) big[i] = static_cast<char>('a' + i % 26);
  ASSERT_EQ(Write(fh, 0, big, FILE_SYNC).status, NFS3_OK);
  const std::string fhbytes = fh.data.str();
  for (bool map : {true, false}) {
    for (auto mode : {Nfs3Service::Options::Sendfile::kWhenAlone, Nfs3Service::Options::Sendfile::kOn,
                      Nfs3Service::Options::Sendfile::kOff}) {
      svc_opts_.read_sendfile = mode;
      svc_opts_.read_map = map;
      RestartServer();
      fh.data = Bytes::Copy(fhbytes);
      // Open the handle first (on a worker), so that every READ counted below finds it open.
      ASSERT_EQ(Read(fh, 0, 1).status, NFS3_OK);
      std::atomic<int> sent{0}, copied{0}, mapped{0};
      ::loom::testing::SyncPointScope sp;
      sp.Set("Nfs3Service::ReadNode:sendfile", [&] { sent++; });
      sp.Set("Nfs3Service::ReadNode:copy", [&] { copied++; });
      sp.Set("Nfs3Service::ReadNode:map", [&] { mapped++; });
      for (uint64_t off = 0; off < big.size(); off += 64 * 1024) {
        auto r = Read(fh, off, 64 * 1024);
        ASSERT_EQ(r.status, NFS3_OK);
        EXPECT_EQ(r.resok.data.view(), std::string_view(big).substr(off, 64 * 1024));
      }
      auto small = Read(fh, 10, 100);
      EXPECT_EQ(small.resok.data.view(), std::string_view(big).substr(10, 100));
      const bool sendfile = mode != Nfs3Service::Options::Sendfile::kOff;
      SCOPED_TRACE(::testing::Message() << "mode " << static_cast<int>(mode) << " map " << map);
      EXPECT_EQ(sent.load(), sendfile ? 4 : 0);
      EXPECT_EQ(mapped.load(), !sendfile && map ? 4 : 0);
      EXPECT_EQ(copied.load(), !sendfile && !map ? 5 : 1);
    }
  }
}

// kB of file pages mapped into this process (the server's replies among them).
long RssFileKb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("RssFile:", 0) == 0) return std::atol(line.c_str() + 8);
  }
  return -1;
}

// Mapped READs map windows of the file, not the file: reading a 160 MiB file from start to
// end leaves about two windows' pages mapped (resident, and counted in the OOM killer's
// score), not the whole file. Whole-file mappings grew this by the file's size.
TEST_F(Nfs3Test, MappedReadsOfABigFileKeepOnlyAWindowOfItMapped) {
  constexpr size_t kSize = 160u << 20;
  nfs_fh3 fh = Create(rootfh_, "win.bin");
  {
    std::string chunk(1 << 20, '\0');
    std::ofstream out(root_ + "/win.bin", std::ios::binary | std::ios::trunc);
    for (size_t off = 0; off < kSize; off += chunk.size()) {
      for (size_t i = 0; i < chunk.size(); i += 4096) std::memcpy(&chunk[i], &off, sizeof off);
      chunk[4096 + off / chunk.size() % 4000] = 'x';
      out.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
      chunk[4096 + off / chunk.size() % 4000] = '\0';
    }
  }
  svc_opts_.read_sendfile = Nfs3Service::Options::Sendfile::kOff;
  svc_opts_.read_map = true;
  const std::string fhbytes = fh.data.str();
  RestartServer();
  fh.data = Bytes::Copy(fhbytes);
  std::atomic<int> mapped{0};
  ::loom::testing::SyncPointScope sp;
  sp.Set("Nfs3Service::ReadNode:map", [&] { mapped++; });
  const long before = RssFileKb();
  ASSERT_GE(before, 0);
  long peak = before;
  constexpr uint32_t kRead = 512 * 1024;
  for (size_t off = 0; off < kSize; off += kRead) {
    auto r = Read(fh, off, kRead);
    ASSERT_EQ(r.status, NFS3_OK);
    ASSERT_EQ(r.resok.count, kRead);
    const std::string_view d = r.resok.data.view();
    const size_t mib = off / (1 << 20) * (1 << 20);
    size_t tag = 0;
    std::memcpy(&tag, d.data(), sizeof tag);
    ASSERT_EQ(tag, mib) << off;
    if (off % (1 << 20) == 0) {
      ASSERT_EQ(d[4096 + mib / (1 << 20) % 4000], 'x') << off;
    }
    peak = std::max(peak, RssFileKb());
  }
  EXPECT_EQ(mapped.load(), static_cast<int>(kSize / kRead));
  // Two 32 MiB windows, and room for the rest of the process.
  EXPECT_LT(peak - before, 80L * 1024) << "RssFile grew from " << before << " to " << peak << " kB";
}

// A READ reply sent from the file's mapping, the file truncated after the reply was built and
// before it was sent: the send faults (EFAULT, no SIGBUS: the kernel reads the mapping), the
// connection falls back to sendfile, which pads the promised length with zeros. The reply
// stays whole and the connection keeps serving, the next mapped READ included.
TEST_F(Nfs3Test, AMappedReadOfAFileTruncatedBeforeItsSendStaysWhole) {
  nfs_fh3 fh = Create(rootfh_, "tr.bin");
  std::string big(256 * 1024, '\0');
  for (size_t i = 0; i < big.size(); i++) big[i] = static_cast<char>('a' + i % 26);
  ASSERT_EQ(Write(fh, 0, big, FILE_SYNC).status, NFS3_OK);
  svc_opts_.read_sendfile = Nfs3Service::Options::Sendfile::kOff;
  svc_opts_.read_map = true;
  const std::string fhbytes = fh.data.str();
  RestartServer();
  fh.data = Bytes::Copy(fhbytes);
  const std::string path = root_ + "/tr.bin";
  {
    ::loom::testing::SyncPointScope sp;
    std::atomic<int> mapped{0}, faulted{0};
    sp.Set("Nfs3Service::ReadNode:map", [&] {
      if (mapped++ == 0) {
        ASSERT_EQ(::truncate(path.c_str(), 4096), 0);
      }
    });
    sp.Set("Connection::WriteSome:unmapped", [&] { faulted++; });
    auto r = Read(fh, 64 * 1024, 64 * 1024);
    ASSERT_EQ(r.status, NFS3_OK);
    ASSERT_EQ(r.resok.count, 64u * 1024);
    EXPECT_EQ(r.resok.data.view(), std::string(64 * 1024, '\0'));
    EXPECT_EQ(mapped.load(), 1);
    EXPECT_EQ(faulted.load(), 1);  // the fault was met, and met once
  }
  // The file back to its length: the same connection reads it whole again.
  ASSERT_EQ(Write(fh, 0, big, FILE_SYNC).status, NFS3_OK);
  for (uint64_t off = 0; off < big.size(); off += 64 * 1024) {
    auto r = Read(fh, off, 64 * 1024);
    ASSERT_EQ(r.status, NFS3_OK);
    EXPECT_EQ(r.resok.data.view(), std::string_view(big).substr(off, 64 * 1024));
  }
}

// The permission check comes before the mapping: another user's large READ of a 0600 file is
// refused without the file being mapped; its owner's is served from the mapping.
TEST_F(Nfs3Test, AnotherUsersLargeReadIsRefusedBeforeAnyMapping) {
  svc_opts_.read_sendfile = Nfs3Service::Options::Sendfile::kOff;  // large READs: the mapping
  RestartServer();
  nfs_fh3 f = Create(rootfh_, "private.bin");
  const std::string big(128 * 1024, 'p');
  ASSERT_EQ(Write(f, 0, big, FILE_SYNC).status, NFS3_OK);
  ASSERT_EQ(GiveAsRoot(f, 2000, 0600), NFS3_OK);
  ::loom::testing::SyncPointScope sp;
  std::atomic<int> mapped{0};
  sp.Set("Nfs3Service::ReadNode:map", [&] { mapped++; });
  client_->set_cred(rpc::Cred::Sys(1000, 1000));
  auto refused = Read(f, 0, 64 * 1024);
  EXPECT_EQ(refused.status, NFS3ERR_ACCES);
  EXPECT_EQ(refused.resok.data.size, 0u);
  EXPECT_EQ(mapped.load(), 0);
  client_->set_cred(rpc::Cred::Sys(2000, 2000));
  auto owner = Read(f, 0, 64 * 1024);
  ASSERT_EQ(owner.status, NFS3_OK);
  EXPECT_EQ(owner.resok.data.view(), std::string_view(big).substr(0, 64 * 1024));
  EXPECT_EQ(mapped.load(), 1);
}

TEST_F(Nfs3Test, CreateModes) {
  Create(rootfh_, "g");
  Create(rootfh_, "g", GUARDED, NFS3ERR_EXIST);
  nfs_fh3 fh;
  ASSERT_EQ(Lookup(rootfh_, "g", &fh), NFS3_OK);
  ASSERT_EQ(Write(fh, 0, "hello").status, NFS3_OK);
  // UNCHECKED with size 0 on an existing file truncates it.
  CREATE3args a;
  a.where.dir = rootfh_;
  a.where.name = "g";
  a.how.mode = UNCHECKED;
  a.how.obj_attributes.size.set_it = true;
  a.how.obj_attributes.size.size = 0;
  CREATE3res r;
  ASSERT_TRUE(client_->Call(NFSPROC3_CREATE, a, &r).ok());
  EXPECT_EQ(r.status, NFS3_OK);
  EXPECT_EQ(Getattr(fh).resok.obj_attributes.size, 0u);
  // EXCLUSIVE: the same verifier is idempotent, another one is EXIST.
  CREATE3args x;
  x.where.dir = rootfh_;
  x.where.name = "x";
  x.how.mode = EXCLUSIVE;
  x.how.verf = {1, 2, 3, 4, 5, 6, 7, 8};
  CREATE3res xr;
  ASSERT_TRUE(client_->Call(NFSPROC3_CREATE, x, &xr).ok());
  EXPECT_EQ(xr.status, NFS3_OK);
  ASSERT_TRUE(client_->Call(NFSPROC3_CREATE, x, &xr).ok());
  EXPECT_EQ(xr.status, NFS3_OK);
  x.how.verf[0] = 9;
  ASSERT_TRUE(client_->Call(NFSPROC3_CREATE, x, &xr).ok());
  EXPECT_EQ(xr.status, NFS3ERR_EXIST);
  // Bad names.
  Create(rootfh_, "a/b", GUARDED, NFS3ERR_ACCES);
  Create(rootfh_, std::string(300, 'n'), GUARDED, NFS3ERR_NAMETOOLONG);
  Create(rootfh_, ".loom-ds", GUARDED, NFS3ERR_EXIST);
}

TEST_F(Nfs3Test, LookupErrorsAndHiddenStateDir) {
  nfs_fh3 f = Create(rootfh_, "file");
  EXPECT_EQ(Lookup(rootfh_, "missing"), NFS3ERR_NOENT);
  EXPECT_EQ(Lookup(f, "x"), NFS3ERR_NOTDIR);
  EXPECT_EQ(Lookup(rootfh_, ".loom-ds"), NFS3ERR_NOENT);
  nfs_fh3 up;
  ASSERT_EQ(Lookup(rootfh_, "..", &up), NFS3_OK);  // ".." of the root is the root
  EXPECT_EQ(up.data, rootfh_.data);
  READDIR3args ra;
  ra.dir = rootfh_;
  ra.count = 8192;
  READDIR3res rr;
  ASSERT_TRUE(client_->Call(NFSPROC3_READDIR, ra, &rr).ok());
  for (const auto& e : rr.resok.reply.entries) EXPECT_NE(e.name, ".loom-ds");
}

TEST_F(Nfs3Test, ForgedStaleAndMalformedHandles) {
  nfs_fh3 f = Create(rootfh_, "victim");
  std::string forged = f.data.str();
  forged[6] ^= 0x40;  // a guessed neighbour inode
  nfs_fh3 ff;
  ff.data = Bytes::Copy(forged);
  EXPECT_EQ(Getattr(ff).status, NFS3ERR_STALE);
  nfs_fh3 junk;
  junk.data = Bytes::Copy("not a handle");
  EXPECT_EQ(Getattr(junk).status, NFS3ERR_BADHANDLE);
  REMOVE3args rm;
  rm.object.dir = rootfh_;
  rm.object.name = "victim";
  REMOVE3res rr;
  ASSERT_TRUE(client_->Call(NFSPROC3_REMOVE, rm, &rr).ok());
  EXPECT_EQ(rr.status, NFS3_OK);
  EXPECT_EQ(Getattr(f).status, NFS3ERR_STALE);
  ASSERT_TRUE(client_->Call(NFSPROC3_REMOVE, rm, &rr).ok());
  EXPECT_EQ(rr.status, NFS3ERR_NOENT);
  // NFS-level errors are counted as errors of the procedure.
  EXPECT_EQ(server_->stats().Get("nfs3.REMOVE")->errors(), 1u);
  EXPECT_EQ(server_->stats().Get("nfs3.GETATTR")->errors(), 3u);
}

TEST_F(Nfs3Test, SetattrTruncateChmodChownAndGuard) {
  nfs_fh3 f = Create(rootfh_, "s");
  ASSERT_EQ(Write(f, 0, std::string(5000, 'a')).status, NFS3_OK);
  SETATTR3args a;
  a.object = f;
  a.new_attributes.size.set_it = true;
  a.new_attributes.size.size = 10;
  a.new_attributes.mode.set_it = true;
  a.new_attributes.mode.mode = 0600;
  SETATTR3res r;
  ASSERT_TRUE(client_->Call(NFSPROC3_SETATTR, a, &r).ok());
  ASSERT_EQ(r.status, NFS3_OK);
  EXPECT_EQ(r.resok.obj_wcc.after.attributes.size, 10u);
  EXPECT_EQ(r.resok.obj_wcc.after.attributes.mode, 0600u);
  // A non-root caller cannot give the file away.
  SETATTR3args own;
  own.object = f;
  own.new_attributes.uid.set_it = true;
  own.new_attributes.uid.uid = 0;
  ASSERT_TRUE(client_->Call(NFSPROC3_SETATTR, own, &r).ok());
  EXPECT_EQ(r.status, NFS3ERR_PERM);
  // The ctime guard.
  SETATTR3args g;
  g.object = f;
  g.guard.check = true;
  g.guard.obj_ctime = {1, 2};
  g.new_attributes.mode.set_it = true;
  g.new_attributes.mode.mode = 0644;
  ASSERT_TRUE(client_->Call(NFSPROC3_SETATTR, g, &r).ok());
  EXPECT_EQ(r.status, NFS3ERR_NOT_SYNC);
}

TEST_F(Nfs3Test, AccessChecksAndFencingByOwnership) {
  nfs_fh3 f = Create(rootfh_, "fenced");
  ACCESS3args a{f, ACCESS3_READ | ACCESS3_MODIFY | ACCESS3_EXTEND | ACCESS3_EXECUTE};
  ACCESS3res r;
  ASSERT_TRUE(client_->Call(NFSPROC3_ACCESS, a, &r).ok());
  EXPECT_EQ(r.resok.access, ACCESS3_READ | ACCESS3_MODIFY | ACCESS3_EXTEND);
  ASSERT_EQ(Write(f, 0, "ok").status, NFS3_OK);
  // The metadata server fences uid 1000 by giving the file to another owner with mode 0600.
  ASSERT_EQ(GiveAsRoot(f, 2000, 0600), NFS3_OK);
  client_->set_cred(rpc::Cred::Sys(1000, 1000));
  EXPECT_EQ(Write(f, 0, "no").status, NFS3ERR_ACCES);
  EXPECT_EQ(Read(f, 0, 2).status, NFS3ERR_ACCES);
  ASSERT_TRUE(client_->Call(NFSPROC3_ACCESS, a, &r).ok());
  EXPECT_EQ(r.resok.access, 0u);
  client_->set_cred(rpc::Cred::Sys(2000, 2000));
  EXPECT_EQ(Write(f, 0, "ok").status, NFS3_OK);
}

TEST_F(Nfs3Test, DirectoriesRenameLinkSymlink) {
  nfs_fh3 d1 = Mkdir(rootfh_, "d1");
  nfs_fh3 d2 = Mkdir(rootfh_, "d2");
  nfs_fh3 f = Create(d1, "f");
  ASSERT_EQ(Write(f, 0, "contents").status, NFS3_OK);
  RENAME3args rn;
  rn.from = {d1, "f"};
  rn.to = {d2, "g"};
  RENAME3res rr;
  ASSERT_TRUE(client_->Call(NFSPROC3_RENAME, rn, &rr).ok());
  ASSERT_EQ(rr.status, NFS3_OK);
  EXPECT_EQ(Lookup(d1, "f"), NFS3ERR_NOENT);
  nfs_fh3 g;
  ASSERT_EQ(Lookup(d2, "g", &g), NFS3_OK);
  EXPECT_EQ(g.data, f.data);  // the handle survives the rename
  EXPECT_EQ(Read(f, 0, 100).resok.data.view(), "contents");
  // RMDIR of a non-empty directory.
  RMDIR3args rd;
  rd.object = {rootfh_, "d2"};
  RMDIR3res rdr;
  ASSERT_TRUE(client_->Call(NFSPROC3_RMDIR, rd, &rdr).ok());
  EXPECT_EQ(rdr.status, NFS3ERR_NOTEMPTY);
  // Hard link.
  LINK3args la;
  la.file = g;
  la.link = {d1, "hard"};
  LINK3res lr;
  ASSERT_TRUE(client_->Call(NFSPROC3_LINK, la, &lr).ok());
  ASSERT_EQ(lr.status, NFS3_OK);
  EXPECT_EQ(lr.resok.file_attributes.attributes.nlink, 2u);
  // Symlink + READLINK.
  SYMLINK3args sa;
  sa.where = {d1, "ln"};
  sa.symlink.symlink_data = "../d2/g";
  SYMLINK3res sr;
  ASSERT_TRUE(client_->Call(NFSPROC3_SYMLINK, sa, &sr).ok());
  ASSERT_EQ(sr.status, NFS3_OK);
  READLINK3res rl;
  ASSERT_TRUE(client_->Call(NFSPROC3_READLINK, READLINK3args{sr.resok.obj.handle}, &rl).ok());
  EXPECT_EQ(rl.resok.data, "../d2/g");
  EXPECT_EQ(Getattr(sr.resok.obj.handle).resok.obj_attributes.type, NF3LNK);
  // Remove everything.
  for (auto [dir, name] : {std::pair{d1, "hard"}, {d1, "ln"}, {d2, "g"}}) {
    REMOVE3args rm;
    rm.object = {dir, name};
    REMOVE3res rmr;
    ASSERT_TRUE(client_->Call(NFSPROC3_REMOVE, rm, &rmr).ok());
    EXPECT_EQ(rmr.status, NFS3_OK) << name;
  }
  ASSERT_TRUE(client_->Call(NFSPROC3_RMDIR, rd, &rdr).ok());
  EXPECT_EQ(rdr.status, NFS3_OK);
  EXPECT_FALSE(fsys::exists(root_ + "/d2"));
}

TEST_F(Nfs3Test, ReaddirPagesThroughEveryEntryOnce) {
  nfs_fh3 d = Mkdir(rootfh_, "many");
  std::set<std::string> want;
  for (int i = 0; i < 300; i++) {
    std::string n = "entry-" + std::to_string(i);
    Create(d, n);
    want.insert(n);
  }
  std::set<std::string> seen;
  uint64_t cookie = 0;
  int pages = 0;
  for (;;) {
    READDIR3args a;
    a.dir = d;
    a.cookie = cookie;
    a.count = 1024;
    READDIR3res r;
    ASSERT_TRUE(client_->Call(NFSPROC3_READDIR, a, &r).ok());
    ASSERT_EQ(r.status, NFS3_OK);
    pages++;
    for (const auto& e : r.resok.reply.entries) {
      if (e.name == "." || e.name == "..") continue;
      EXPECT_TRUE(seen.insert(e.name).second) << "duplicate " << e.name;
      cookie = e.cookie;
    }
    if (!r.resok.reply.entries.empty()) cookie = r.resok.reply.entries.back().cookie;
    if (r.resok.reply.eof) break;
    ASSERT_LT(pages, 1000);
  }
  EXPECT_EQ(seen, want);
  EXPECT_GT(pages, 5);
  // READDIRPLUS gives usable handles and attributes.
  READDIRPLUS3args p;
  p.dir = d;
  p.dircount = 4096;
  p.maxcount = 32768;
  READDIRPLUS3res pr;
  ASSERT_TRUE(client_->Call(NFSPROC3_READDIRPLUS, p, &pr).ok());
  ASSERT_EQ(pr.status, NFS3_OK);
  int checked = 0;
  for (const auto& e : pr.resok.reply.entries) {
    if (e.name == "." || e.name == "..") continue;
    ASSERT_TRUE(e.name_handle.handle_follows);
    EXPECT_EQ(Getattr(e.name_handle.handle).resok.obj_attributes.fileid, e.fileid);
    checked++;
  }
  EXPECT_GT(checked, 10);
  // A count too small for any entry.
  READDIR3args tiny;
  tiny.dir = d;
  tiny.count = 100;
  READDIR3res tr;
  ASSERT_TRUE(client_->Call(NFSPROC3_READDIR, tiny, &tr).ok());
  EXPECT_EQ(tr.status, NFS3ERR_TOOSMALL);
}

TEST_F(Nfs3Test, HandlesPersistAndVerifierChangesAcrossRestart) {
  nfs_fh3 f = Create(rootfh_, "persist");
  ASSERT_EQ(Write(f, 0, "still here", FILE_SYNC).status, NFS3_OK);
  auto verf_before = fs_->write_verifier();
  std::string fh = f.data.str();
  RestartServer();
  nfs_fh3 same;
  same.data = Bytes::Copy(fh);
  EXPECT_EQ(Read(same, 0, 100).resok.data.view(), "still here");
  EXPECT_NE(fs_->write_verifier(), verf_before);
}

TEST_F(Nfs3Test, GarbageArgumentsGetGarbageArgs) {
  auto r = client_->rpc().CallSync(NFS_PROGRAM, NFS_V3, NFSPROC3_WRITE, rpc::Cred::Sys(0, 0),
                                   [](xdr::Encoder& e) {
                                     e.u32(8);  // fh length 8, then nothing
                                   });
  EXPECT_EQ(r.status().message(), "GARBAGE_ARGS");
  EXPECT_TRUE(client_->Null().ok());
}


// Run to completion: a READ of bytes in the page cache through an open handle is answered on
// the loop thread; a handle not open yet, or bytes not in memory, go to a worker; the bytes
// are right either way (nfs3.inline.READ / nfs3.deferred.READ count which path ran).
TEST_F(Nfs3Test, ReadsAnsweredOnTheLoopWhenResidentElseOnAWorker) {
  nfs_fh3 fh = Create(rootfh_, "rtc.bin");
  std::string data = RandomBytes(256 * 1024, 7);
  ASSERT_EQ(Write(fh, 0, data, FILE_SYNC).status, NFS3_OK);
  auto* inl = server_->stats().Get("nfs3.inline.READ");
  auto* def = server_->stats().Get("nfs3.deferred.READ");
  const uint64_t i0 = inl->calls(), d0 = def->calls();
  // Just written: the descriptor is open and the pages are in memory.
  auto r = Read(fh, 1000, 64 * 1024);
  ASSERT_EQ(r.status, NFS3_OK);
  EXPECT_EQ(r.resok.data.view(), std::string_view(data).substr(1000, 64 * 1024));
  EXPECT_EQ(inl->calls(), i0 + 1);
  EXPECT_EQ(def->calls(), d0);
  // The descriptor is dropped (as after a REMOVE elsewhere): opening it again is a worker's job.
  fs_->Forget(fh.data.str());
  auto r2 = Read(fh, 0, 4096);
  EXPECT_EQ(r2.resok.data.view(), std::string_view(data).substr(0, 4096));
  EXPECT_EQ(def->calls(), d0 + 1);
  EXPECT_EQ(inl->calls(), i0 + 1);
  // GETATTR the same way: now open again, so inline.
  auto* ginl = server_->stats().Get("nfs3.inline.GETATTR");
  const uint64_t g0 = ginl->calls();
  EXPECT_EQ(Getattr(fh).resok.obj_attributes.size, data.size());
  EXPECT_EQ(ginl->calls(), g0 + 1);
  // Errors are answered inline too: a read of a directory.
  EXPECT_EQ(Read(rootfh_, 0, 10).status, NFS3ERR_ISDIR);
  // Evict the file's pages; where the filesystem really drops them (not tmpfs), the next read
  // cannot be served without the disk and goes to a worker, with the same bytes.
  const std::string path = root_ + "/rtc.bin";
  int fd = ::open(path.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::fdatasync(fd), 0);
  ASSERT_EQ(::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
  void* m = ::mmap(nullptr, data.size(), PROT_READ, MAP_SHARED, fd, 0);
  ASSERT_NE(m, MAP_FAILED);
  std::vector<unsigned char> vec(data.size() / 4096);
  ASSERT_EQ(::mincore(m, data.size(), vec.data()), 0);
  const bool evicted = (vec[100000 / 4096] & 1) == 0;
  ::munmap(m, data.size());
  ::close(fd);
  const uint64_t d1 = def->calls();
  auto r3 = Read(fh, 100000, 8192);
  EXPECT_EQ(r3.resok.data.view(), std::string_view(data).substr(100000, 8192));
  if (!evicted) GTEST_SKIP() << "this filesystem keeps the pages (tmpfs?): no page-cache miss to show";
  EXPECT_EQ(def->calls(), d1 + 1);
}

}  // namespace
}  // namespace loom::nfs3
