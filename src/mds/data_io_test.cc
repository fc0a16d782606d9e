// The MDS's proxied I/O and copies (data_io.cc) when data servers misbehave: errors on READ,
// WRITE, COMMIT, SETATTR and GETATTR, short and empty writes, a reboot seen in a COMMIT
// verifier, JUKEBOX, layouts that are malformed, fully stale or name a server the pool does
// not know. Each failure must be an error (never silent zeros or a partial success reported
// as whole), and failing over must return the right bytes.
#include <cerrno>
#include <filesystem>

#include <gtest/gtest.h>

#include "mds/data_servers.h"
#include "mds/test_ds.h"

namespace loom::mds {
namespace {

using namespace loom::nfs3;  // NFSv3 constants keep their RFC 1813 names
using testing::Config;
using testing::Faults;
using testing::FastOptions;
using testing::ReadAll;
using testing::TestDs;
namespace fsys = std::filesystem;

using testing::kFs;

using testing::Has;

using testing::Place;

class DataIoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 3; i++) {
      ds_.push_back(std::make_unique<TestDs>());
      ds_.back()->Start(&faults_[i]);
    }
    MakePool(FastOptions());
  }
  void MakePool(DataServerPool::Options o) {
    pool_.reset();
    std::vector<DataServerConfig> cfg;
    for (size_t i = 0; i < ds_.size(); i++) cfg.push_back(Config(static_cast<uint32_t>(i + 1), ds_[i]->address()));
    auto p = DataServerPool::Create(cfg, o);
    LOOM_ASSERT_OK(p);
    pool_ = std::move(*p);
  }
  Faults& F(uint32_t ds) { return faults_[ds - 1]; }
  std::string Path(uint32_t ds, meta::Ino ino) {
    return ds_[ds - 1]->Loom(FsDirName(kFs) + "/" + DataFileName(ino));
  }
  meta::Layout Make(meta::Ino ino, const Placement& p, const std::vector<uint32_t>& ids) {
    auto l = pool_->CreateDataFilesOn(kFs, ino, p, ids, 0);
    EXPECT_TRUE(l.ok()) << l.status().ToString();
    return l.ok() ? *l : meta::Layout{};
  }
  Result<std::string> ReadStr(const meta::Layout& l, uint64_t off, uint32_t n) {
    auto r = pool_->Read(l, off, n);
    if (!r.ok()) return r.status();
    return r->data.str();
  }

  Faults faults_[3];
  std::vector<std::unique_ptr<TestDs>> ds_;
  std::unique_ptr<DataServerPool> pool_;
};

TEST_F(DataIoTest, MalformedLayoutsAreRefused) {
  meta::Layout none;  // no mirrors
  meta::Layout uneven = Make(5, Place(1, 1), {1});
  uneven.stripe_count = 2;  // but one data file
  for (const meta::Layout& l : {none, uneven}) {
    EXPECT_EQ(pool_->Read(l, 0, 10).status().code(), Code::kInvalidArgument);
    EXPECT_EQ(pool_->Write(l, 0, Bytes::Copy("x"), FILE_SYNC).status().code(), Code::kInvalidArgument);
    EXPECT_EQ(pool_->Commit(l).status().code(), Code::kInvalidArgument);
    EXPECT_EQ(pool_->Truncate(l, 0).code(), Code::kInvalidArgument);
    EXPECT_EQ(pool_->SetOwner(l, 1, 1).code(), Code::kInvalidArgument);
    EXPECT_EQ(pool_->GetSize(l).status().code(), Code::kInvalidArgument);
    EXPECT_EQ(pool_->ResyncMirror(l, 0, 10).code(), Code::kInvalidArgument);
  }
  meta::Layout good = Make(6, Place(1, 1), {2});
  EXPECT_EQ(pool_->CopyRange(none, good, 0, 10, 10).code(), Code::kInvalidArgument);
  EXPECT_EQ(pool_->CopyRange(good, uneven, 0, 10, 10).code(), Code::kInvalidArgument);
  Status st = pool_->ResyncMirror(good, 1, 10);
  EXPECT_EQ(st.code(), Code::kInvalidArgument);
  EXPECT_TRUE(Has(st.message(), "mirror 1 of a layout of 1")) << st.ToString();
}

TEST_F(DataIoTest, EveryMirrorStaleIsAnIoErrorNotZeros) {
  meta::Layout l = Make(5, Place(2, 1), {1, 2});
  ASSERT_TRUE(pool_->Write(l, 0, Bytes::Copy("data"), FILE_SYNC).ok());
  for (auto& m : l.mirrors) m.stale = true;
  auto check = [](const Status& s) {
    EXPECT_EQ(s.code(), Code::kIo) << s.ToString();
    EXPECT_EQ(s.os_errno(), EIO);
    EXPECT_TRUE(Has(s.message(), "every mirror of the layout is stale")) << s.ToString();
  };
  check(pool_->Read(l, 0, 4).status());
  check(pool_->Write(l, 0, Bytes::Copy("x"), FILE_SYNC).status());
  check(pool_->Commit(l).status());
  check(pool_->Truncate(l, 0));
  check(pool_->GetSize(l).status());
  meta::Layout to = Make(6, Place(1, 1), {3});
  check(pool_->CopyRange(l, to, 0, 4, 4));
  // Resyncing needs another mirror to copy from.
  meta::Layout one = Make(7, Place(1, 1), {1});
  Status st = pool_->ResyncMirror(one, 0, 0);
  EXPECT_EQ(st.os_errno(), EIO) << st.ToString();
  EXPECT_TRUE(Has(st.message(), "no other mirror")) << st.ToString();
  EXPECT_EQ(ReadAll(Path(1, 5)), "data");  // nothing written through a stale layout
}

TEST_F(DataIoTest, ReadFailsOverAndReportsTheFirstError) {
  meta::Layout l = Make(5, Place(2, 1), {1, 2});
  ASSERT_TRUE(pool_->Write(l, 0, Bytes::Copy("hello"), FILE_SYNC).ok());
  F(1).Fail(NFSPROC3_READ, NFS3ERR_IO);
  auto r = ReadStr(l, 0, 100);
  LOOM_ASSERT_OK(r);
  EXPECT_EQ(*r, "hello");
  F(2).Fail(NFSPROC3_READ, NFS3ERR_ACCES);
  r = ReadStr(l, 0, 100);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kIo);  // data server 1's, the first tried
  EXPECT_TRUE(Has(r.status().message(), "data server 1 READ")) << r.status().ToString();
  F(1).Clear();
  F(2).Clear();
  // A mirror on a server the pool no longer has: the other serves.
  meta::Layout gone = l;
  gone.mirrors[0].files[0].ds_id = 99;
  r = ReadStr(gone, 0, 100);
  LOOM_ASSERT_OK(r);
  EXPECT_EQ(*r, "hello");
  auto size = pool_->GetSize(gone);
  LOOM_ASSERT_OK(size);
  EXPECT_EQ(*size, 5u);
  gone.mirrors[1].files[0].ds_id = 98;
  EXPECT_EQ(pool_->Read(gone, 0, 10).status().code(), Code::kNotFound);
  EXPECT_EQ(pool_->GetSize(gone).status().code(), Code::kNotFound);
}

TEST_F(DataIoTest, ReadRetriesJukebox) {
  meta::Layout l = Make(5, Place(1, 1), {1});
  ASSERT_TRUE(pool_->Write(l, 0, Bytes::Copy("tape"), FILE_SYNC).ok());
  F(1).Fail(NFSPROC3_READ, NFS3ERR_JUKEBOX, 0, 1);  // once: the retry gets the bytes
  auto r = ReadStr(l, 0, 10);
  LOOM_ASSERT_OK(r);
  EXPECT_EQ(*r, "tape");
  F(1).Fail(NFSPROC3_READ, NFS3ERR_JUKEBOX);  // for good: "try later", not an I/O error
  r = ReadStr(l, 0, 10);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable) << r.status().ToString();
}

TEST_F(DataIoTest, WriteErrors) {
  meta::Layout l = Make(5, Place(2, 1), {1, 2});
  // A full disk is not a mirror to leave behind: the write fails.
  F(2).Fail(NFSPROC3_WRITE, NFS3ERR_NOSPC);
  FailedMirrors failed;
  auto w = pool_->Write(l, 0, Bytes::Copy("abc"), FILE_SYNC, &failed);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), Code::kNoSpace) << w.status().ToString();
  EXPECT_TRUE(failed.empty());
  F(2).Clear();
  // A mirror on a server the pool does not know.
  meta::Layout gone = l;
  gone.mirrors[1].files[0].ds_id = 99;
  EXPECT_EQ(pool_->Write(gone, 0, Bytes::Copy("abc"), FILE_SYNC, &failed).status().code(), Code::kNotFound);
  // A short write on one mirror: the shortest count is what was written everywhere.
  F(2).write_short_by = 2;
  w = pool_->Write(l, 0, Bytes::Copy("abcdef"), FILE_SYNC);
  LOOM_ASSERT_OK(w);
  EXPECT_EQ(w->count, 4u);
  F(2).Clear();
}

TEST_F(DataIoTest, WriteThatFailsPartWayReportsWhatWasWritten) {
  DataServerPool::Options o = FastOptions();
  o.max_io = 4096;
  MakePool(o);
  meta::Layout l = Make(5, Place(1, 1), {1});
  const std::string data(10000, 'w');
  F(1).Fail(NFSPROC3_WRITE, NFS3ERR_IO, 1);  // the second piece fails
  auto w = pool_->Write(l, 0, Bytes::Copy(data), FILE_SYNC);
  LOOM_ASSERT_OK(w);
  EXPECT_EQ(w->count, 4096u);  // the client resends the rest
  EXPECT_EQ(fsys::file_size(Path(1, 5)), 4096u);
  F(1).Clear();
  F(1).Fail(NFSPROC3_WRITE, NFS3ERR_IO);  // the first piece fails: an error
  EXPECT_EQ(pool_->Write(l, 0, Bytes::Copy(data), FILE_SYNC).status().code(), Code::kIo);
}

TEST_F(DataIoTest, CommitErrors) {
  meta::Layout l = Make(5, Place(2, 1), {1, 2});
  ASSERT_TRUE(pool_->Write(l, 0, Bytes::Copy("abc"), UNSTABLE).ok());
  F(2).Fail(NFSPROC3_COMMIT, NFS3ERR_IO);
  FailedMirrors failed;
  auto c = pool_->Commit(l, &failed);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Code::kIo);
  EXPECT_TRUE(Has(c.status().message(), "data server 2 COMMIT")) << c.status().ToString();
  F(2).Clear();
  meta::Layout gone = l;
  gone.mirrors[0].files[0].ds_id = 99;
  EXPECT_EQ(pool_->Commit(gone).status().code(), Code::kNotFound);
  // A striped layout: one verifier per mirror, combined over its stripes.
  meta::Layout s = Make(6, Place(1, 2, 4096), {1, 3});
  ASSERT_TRUE(pool_->Write(s, 0, Bytes::Copy(std::string(8192, 's')), UNSTABLE).ok());
  auto sc = pool_->Commit(s);
  LOOM_ASSERT_OK(sc);
  ASSERT_EQ(sc->mirror_verifiers.size(), 1u);
  EXPECT_EQ(sc->mirror_verifiers[0], sc->verifier);
}

TEST_F(DataIoTest, SetAttrErrors) {
  meta::Layout l = Make(5, Place(2, 1), {1, 2});
  F(1).Fail(NFSPROC3_SETATTR, NFS3ERR_ACCES);
  EXPECT_EQ(pool_->Truncate(l, 100).code(), Code::kPermission);
  EXPECT_EQ(pool_->SetOwner(l, 5, 5, 0640).code(), Code::kPermission);
  F(1).Clear();
  meta::Layout gone = l;
  gone.mirrors[1].files[0].ds_id = 99;
  FailedMirrors failed;
  EXPECT_EQ(pool_->Truncate(gone, 100, &failed).code(), Code::kNotFound);
  EXPECT_TRUE(failed.empty());
}

TEST_F(DataIoTest, GetSizeFallsBackToAnotherMirror) {
  meta::Layout l = Make(5, Place(2, 1), {1, 2});
  ASSERT_TRUE(pool_->Write(l, 0, Bytes::Copy("12345"), FILE_SYNC).ok());
  F(1).Fail(NFSPROC3_GETATTR, NFS3ERR_IO);
  auto size = pool_->GetSize(l);
  LOOM_ASSERT_OK(size);
  EXPECT_EQ(*size, 5u);
  F(2).Fail(NFSPROC3_GETATTR, NFS3ERR_IO);
  EXPECT_EQ(pool_->GetSize(l).status().code(), Code::kIo);
  // A striped read needs the size: it fails rather than guess where the file ends.
  meta::Layout s = Make(6, Place(1, 2, 4096), {1, 2});
  EXPECT_EQ(pool_->Read(s, 0, 100).status().code(), Code::kIo);
}

TEST_F(DataIoTest, CopyFillsHolesWithZeros) {
  meta::Layout from = Make(5, Place(1, 1), {1});
  meta::Layout to = Make(6, Place(1, 1), {2});
  ASSERT_TRUE(pool_->Write(from, 0, Bytes::Copy("abcde"), FILE_SYNC).ok());
  // The file is 10 bytes long, its data file only 5 (the end is a hole).
  ASSERT_TRUE(pool_->CopyRange(from, to, 0, 100, 10).ok());
  EXPECT_EQ(ReadAll(Path(2, 6)), std::string("abcde\0\0\0\0\0", 10));
  // Nothing to copy past the end; the target is still sized and committed.
  ASSERT_TRUE(pool_->CopyRange(from, to, 20, 100, 12).ok());
  EXPECT_EQ(fsys::file_size(Path(2, 6)), 12u);
}

TEST_F(DataIoTest, CopyErrorsFailTheCopy) {
  meta::Layout from = Make(5, Place(1, 1), {1});
  meta::Layout to = Make(6, Place(1, 1), {2});
  ASSERT_TRUE(pool_->Write(from, 0, Bytes::Copy("abcde"), FILE_SYNC).ok());
  F(1).Fail(NFSPROC3_READ, NFS3ERR_IO);
  EXPECT_EQ(pool_->CopyRange(from, to, 0, 5, 5).code(), Code::kIo);
  EXPECT_EQ(fsys::file_size(Path(2, 6)), 0u);
  F(1).Clear();
  F(2).Fail(NFSPROC3_WRITE, NFS3ERR_NOSPC);
  EXPECT_EQ(pool_->CopyRange(from, to, 0, 5, 5).code(), Code::kNoSpace);
  F(2).Clear();
  // A server that accepts a WRITE but writes nothing would loop for ever: an error.
  F(2).write_short_by = 1u << 30;
  Status st = pool_->CopyRange(from, to, 0, 5, 5);
  EXPECT_EQ(st.code(), Code::kIo);
  EXPECT_TRUE(Has(st.message(), "wrote nothing")) << st.ToString();
  F(2).Clear();
  F(2).Fail(NFSPROC3_SETATTR, NFS3ERR_ROFS);
  EXPECT_EQ(pool_->CopyRange(from, to, 0, 5, 5).os_errno(), EROFS);
  F(2).Clear();
  F(2).Fail(NFSPROC3_COMMIT, NFS3ERR_IO);
  EXPECT_EQ(pool_->CopyRange(from, to, 0, 5, 5).code(), Code::kIo);
  F(2).Clear();
  meta::Layout gone = to;
  gone.mirrors[0].files[0].ds_id = 99;
  EXPECT_EQ(pool_->CopyRange(from, gone, 0, 5, 5).code(), Code::kNotFound);
  EXPECT_EQ(pool_->CopyRange(from, gone, 10, 5, 5).code(), Code::kNotFound);  // sizing only
}

TEST_F(DataIoTest, CopyNoticesATargetThatRebootedBeforeItsCommit) {
  // UNSTABLE bytes a server lost in a reboot show as a new COMMIT verifier (RFC 1813
  // §3.3.21): the copy must be redone, not reported done.
  meta::Layout from = Make(5, Place(1, 1), {1});
  meta::Layout to = Make(6, Place(1, 1), {2});
  ASSERT_TRUE(pool_->Write(from, 0, Bytes::Copy("abcde"), FILE_SYNC).ok());
  F(2).commit_new_verifier = true;
  Status st = pool_->CopyRange(from, to, 0, 5, 5);
  EXPECT_EQ(st.code(), Code::kUnavailable) << st.ToString();
  EXPECT_TRUE(Has(st.message(), "restarted during the copy")) << st.ToString();
}

TEST_F(DataIoTest, ResyncErrors) {
  meta::Layout l = Make(5, Place(2, 1), {1, 2});
  ASSERT_TRUE(pool_->Write(l, 0, Bytes::Copy("good"), FILE_SYNC).ok());
  // The good mirror's owner cannot be read: nothing is copied.
  F(1).Fail(NFSPROC3_GETATTR, NFS3ERR_IO);
  EXPECT_EQ(pool_->ResyncMirror(l, 1, 4).code(), Code::kIo);
  F(1).Clear();
  // The stale mirror's owner cannot be set.
  F(2).Fail(NFSPROC3_SETATTR, NFS3ERR_ACCES);
  EXPECT_EQ(pool_->ResyncMirror(l, 1, 4).code(), Code::kPermission);
  F(2).Clear();
  meta::Layout gone = l;
  gone.mirrors[1].files[0].ds_id = 99;
  EXPECT_EQ(pool_->ResyncMirror(gone, 1, 4).code(), Code::kNotFound);
  meta::Layout src_gone = l;
  src_gone.mirrors[0].files[0].ds_id = 99;
  EXPECT_EQ(pool_->ResyncMirror(src_gone, 1, 4).code(), Code::kNotFound);
  // With the faults gone it works, and the copy is the good one's.
  ASSERT_TRUE(pool_->Truncate(l, 0).ok());
  ASSERT_TRUE(pool_->Write(l, 0, Bytes::Copy("good"), FILE_SYNC).ok());
  std::filesystem::resize_file(Path(2, 5), 0);
  ASSERT_TRUE(pool_->ResyncMirror(l, 1, 4).ok());
  EXPECT_EQ(ReadAll(Path(2, 5)), "good");
}

TEST_F(DataIoTest, StuckMirrorIsLeftBehindAfterTheTimeout) {
  DataServerPool::Options o = FastOptions();
  o.rpc_timeout_ms = 300;
  MakePool(o);
  meta::Layout l = Make(5, Place(2, 1), {1, 2});
  F(2).hang[NFSPROC3_WRITE] = true;  // server 2 takes the WRITE and never answers
  FailedMirrors failed;
  auto w = pool_->Write(l, 0, Bytes::Copy("abc"), FILE_SYNC, &failed);
  LOOM_ASSERT_OK(w);
  EXPECT_EQ(w->count, 3u);
  EXPECT_EQ(failed, (FailedMirrors{1}));
  EXPECT_EQ(pool_->HealthOf(2), Health::kDown);
  EXPECT_EQ(ReadAll(Path(1, 5)), "abc");
  // Without a caller that can mark the mirror stale, the write fails (server 2 is down now).
  auto strict = pool_->Write(l, 0, Bytes::Copy("abc"), FILE_SYNC);
  EXPECT_EQ(strict.status().code(), Code::kUnavailable) << strict.status().ToString();
  F(2).Release();
}

}  // namespace
}  // namespace loom::mds
