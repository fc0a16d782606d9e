// DataServerPool's control files, listings and by-name operations (ds_files.cc) against a real
// loom-ds, including the answers a data server may give that a healthy loom-ds does not
// (Faults): every failure must come back as an error naming the server, and must leave the
// files that were there as they were.
#include <filesystem>
#include <set>

#include <gtest/gtest.h>

#include "mds/data_servers.h"
#include "mds/test_ds.h"

namespace loom::mds {
namespace {

using namespace loom::nfs3;  // NFSv3 constants keep their RFC 1813 names
using testing::Config;
using testing::DeadAddress;
using testing::Faults;
using testing::FastOptions;
using testing::ReadAll;
using testing::TestDs;
using testing::WriteFile;
namespace fsys = std::filesystem;

using testing::kFs;
constexpr uint32_t kId = 1;

using testing::Has;

class DsFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ds_.Start(&faults_);
    auto p = DataServerPool::Create({Config(kId, ds_.address())}, FastOptions());
    LOOM_ASSERT_OK(p);
    pool_ = std::move(*p);
  }
  std::string Tree(const std::string& name = "") const {
    return ds_.Loom(FsDirName(kFs)) + (name.empty() ? "" : "/" + name);
  }

  Faults faults_;
  TestDs ds_;
  std::unique_ptr<DataServerPool> pool_;
};

TEST_F(DsFilesTest, ControlFilesRoundTrip) {
  const std::vector<std::string> path = {"loom", "a", "b", "marker"};
  auto none = pool_->ReadControlFile(kId, path);
  LOOM_ASSERT_OK(none);
  EXPECT_FALSE(none->has_value());  // directories on the way missing
  auto made = pool_->CreateControlFile(kId, path, "first\n");
  LOOM_ASSERT_OK(made);
  EXPECT_TRUE(*made);
  EXPECT_EQ(ReadAll(ds_.Loom("a/b/marker")), "first\n");
  // A second writer finds it there and leaves it alone (GUARDED).
  auto again = pool_->CreateControlFile(kId, path, "second\n");
  LOOM_ASSERT_OK(again);
  EXPECT_FALSE(*again);
  auto read = pool_->ReadControlFile(kId, path);
  LOOM_ASSERT_OK(read);
  ASSERT_TRUE(read->has_value());
  EXPECT_EQ(**read, "first\n");
  // The directory exists, the file does not.
  auto missing = pool_->ReadControlFile(kId, {"loom", "a", "b", "other"});
  LOOM_ASSERT_OK(missing);
  EXPECT_FALSE(missing->has_value());
  // Only the first 4 KiB of a control file are read.
  WriteFile(ds_.Loom("big"), std::string(5000, 'x'));
  auto big = pool_->ReadControlFile(kId, {"loom", "big"});
  LOOM_ASSERT_OK(big);
  EXPECT_EQ((*big)->size(), 4096u);
}

TEST_F(DsFilesTest, BadArgumentsAreRefused) {
  EXPECT_EQ(pool_->ReadControlFile(kId, {}).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(pool_->CreateControlFile(kId, {}, "x").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(pool_->ReadControlFile(99, {"loom", "x"}).status().code(), Code::kNotFound);
  EXPECT_EQ(pool_->CreateControlFile(99, {"x"}, "x").status().code(), Code::kNotFound);
  EXPECT_EQ(pool_->ListDir(99, {"loom"}).status().code(), Code::kNotFound);
  EXPECT_EQ(pool_->MoveToLostFound(99, "t", "n").code(), Code::kNotFound);
  EXPECT_EQ(pool_->RenameDataFile(99, kFs, 1, 2).code(), Code::kNotFound);
  EXPECT_EQ(pool_->RemoveDataFileByName(kFs, 1, 99).code(), Code::kNotFound);
  meta::DataFile f;
  f.ds_id = 99;
  EXPECT_EQ(pool_->DataFileExists(f).status().code(), Code::kNotFound);
}

TEST_F(DsFilesTest, ControlFileErrorsNameTheServer) {
  // A READ that fails: not "no file" (that would make PlanStart write a new id over it).
  ASSERT_TRUE(*pool_->CreateControlFile(kId, {"loom", "id"}, "x"));
  faults_.Fail(NFSPROC3_READ, NFS3ERR_IO);
  auto r = pool_->ReadControlFile(kId, {"loom", "id"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kIo);
  EXPECT_TRUE(Has(r.status().message(), "data server 1 READ")) << r.status().ToString();
  // A file that vanished between LOOKUP and READ reads as absent.
  faults_.Fail(NFSPROC3_READ, NFS3ERR_STALE);
  r = pool_->ReadControlFile(kId, {"loom", "id"});
  LOOM_ASSERT_OK(r);
  EXPECT_FALSE(r->has_value());
  faults_.Clear();
  // LOOKUP failing other than NOENT.
  faults_.Fail(NFSPROC3_LOOKUP, NFS3ERR_ACCES);
  r = pool_->ReadControlFile(kId, {"loom", "id"});
  EXPECT_EQ(r.status().code(), Code::kPermission) << r.status().ToString();
  auto made = pool_->CreateControlFile(kId, {"loom", "new"}, "x");
  EXPECT_EQ(made.status().code(), Code::kPermission) << made.status().ToString();
  faults_.Clear();
  // CREATE refused; WRITE refused; a short WRITE: each an error, never "made".
  faults_.Fail(NFSPROC3_CREATE, NFS3ERR_NOSPC);
  made = pool_->CreateControlFile(kId, {"loom", "c1"}, "x");
  EXPECT_EQ(made.status().code(), Code::kNoSpace) << made.status().ToString();
  faults_.Clear();
  faults_.Fail(NFSPROC3_WRITE, NFS3ERR_ROFS);
  made = pool_->CreateControlFile(kId, {"loom", "c2"}, "x");
  EXPECT_EQ(made.status().code(), Code::kIo) << made.status().ToString();
  EXPECT_EQ(made.status().os_errno(), EROFS);
  faults_.Clear();
  faults_.write_short_by = 1;
  made = pool_->CreateControlFile(kId, {"loom", "c3"}, "abc");
  ASSERT_FALSE(made.ok());
  EXPECT_TRUE(Has(made.status().message(), "short write of c3")) << made.status().ToString();
  faults_.Clear();
  // MKDIR of a directory on the way refused.
  faults_.Fail(NFSPROC3_MKDIR, NFS3ERR_DQUOT);
  made = pool_->CreateControlFile(kId, {"loom", "d", "f"}, "x");
  EXPECT_EQ(made.status().os_errno(), EDQUOT) << made.status().ToString();
  EXPECT_FALSE(fsys::exists(ds_.Loom("d")));
}

TEST_F(DsFilesTest, ServersThatSendNoHandleOnCreate) {
  // RFC 1813 §3.3.8/§3.3.9: the handle is optional in CREATE and MKDIR replies; the pool
  // looks the new object up instead.
  faults_.create_without_handle = true;
  auto made = pool_->CreateControlFile(kId, {"loom", "x", "ds-id"}, "hello\n");
  LOOM_ASSERT_OK(made);
  EXPECT_TRUE(*made);
  EXPECT_EQ(ReadAll(ds_.Loom("x/ds-id")), "hello\n");
  auto l = pool_->CreateDataFile(kFs, 5);
  LOOM_ASSERT_OK(l);
  EXPECT_FALSE(l->mirrors[0].files[0].fh.empty());
  EXPECT_TRUE(fsys::exists(Tree(DataFileName(5))));
}

TEST_F(DsFilesTest, ListDirPagesThroughLargeDirectories) {
  auto none = pool_->ListDir(kId, {"loom", "nothing"});
  LOOM_ASSERT_OK(none);
  EXPECT_FALSE(none->has_value());
  // Enough long names that READDIRPLUS needs several replies.
  std::set<std::string> want;
  fsys::create_directories(Tree());
  for (int i = 0; i < 1500; i++) {
    std::string name = DataFileName(static_cast<meta::Ino>(i)) + std::string(40, 'n');
    WriteFile(Tree(name), std::string(i % 7, 'd'));
    want.insert(name);
  }
  fsys::create_directories(Tree("subdir"));
  auto list = pool_->ListDir(kId, {"loom", FsDirName(kFs)});
  LOOM_ASSERT_OK(list);
  ASSERT_TRUE(list->has_value());
  std::set<std::string> got;
  for (const DsEntry& e : **list) {
    EXPECT_NE(e.name, ".");
    EXPECT_NE(e.name, "..");
    if (e.name == "subdir") {
      EXPECT_TRUE(e.is_dir);
      continue;
    }
    EXPECT_FALSE(e.is_dir) << e.name;
    EXPECT_FALSE(e.fh.empty()) << e.name;
    EXPECT_TRUE(got.insert(e.name).second) << "listed twice: " << e.name;
    const int i = std::stoi(e.name.substr(0, 16), nullptr, 16);
    EXPECT_EQ(e.size, static_cast<uint64_t>(i % 7)) << e.name;
  }
  EXPECT_EQ(got, want);
  faults_.Fail(NFSPROC3_READDIRPLUS, NFS3ERR_IO);
  auto failed = pool_->ListDir(kId, {"loom", FsDirName(kFs)});
  ASSERT_FALSE(failed.ok());
  EXPECT_TRUE(Has(failed.status().message(), "READDIRPLUS")) << failed.status().ToString();
}

TEST_F(DsFilesTest, MoveToLostFoundNeverReplaces) {
  // No tree, or no such file: nothing to move.
  EXPECT_TRUE(pool_->MoveToLostFound(kId, "t", DataFileName(1)).ok());
  EXPECT_FALSE(fsys::exists(ds_.Loom(kLostFound)));
  WriteFile(ds_.Loom("t/" + DataFileName(1)), "one");
  EXPECT_TRUE(pool_->MoveToLostFound(kId, "t", DataFileName(2)).ok());
  EXPECT_EQ(ReadAll(ds_.Loom("t/" + DataFileName(1))), "one");
  // Moved; a second file of the same name gets the next free name.
  ASSERT_TRUE(pool_->MoveToLostFound(kId, "t", DataFileName(1)).ok());
  const std::string target = ds_.Loom(std::string(kLostFound) + "/t-" + DataFileName(1));
  EXPECT_EQ(ReadAll(target), "one");
  EXPECT_FALSE(fsys::exists(ds_.Loom("t/" + DataFileName(1))));
  WriteFile(ds_.Loom("t/" + DataFileName(1)), "two");
  WriteFile(target + ".1", "taken");
  ASSERT_TRUE(pool_->MoveToLostFound(kId, "t", DataFileName(1)).ok());
  EXPECT_EQ(ReadAll(target), "one");
  EXPECT_EQ(ReadAll(target + ".1"), "taken");
  EXPECT_EQ(ReadAll(target + ".2"), "two");
  // A RENAME the server refuses: the file stays where it was.
  WriteFile(ds_.Loom("t/" + DataFileName(3)), "three");
  faults_.Fail(NFSPROC3_RENAME, NFS3ERR_ACCES);
  Status st = pool_->MoveToLostFound(kId, "t", DataFileName(3));
  EXPECT_EQ(st.code(), Code::kPermission) << st.ToString();
  EXPECT_EQ(ReadAll(ds_.Loom("t/" + DataFileName(3))), "three");
  faults_.Clear();
  faults_.Fail(NFSPROC3_LOOKUP, NFS3ERR_IO);
  EXPECT_EQ(pool_->MoveToLostFound(kId, "t", DataFileName(3)).code(), Code::kIo);
}

TEST_F(DsFilesTest, RenameDataFileNeverReplaces) {
  // No tree yet.
  Status st = pool_->RenameDataFile(kId, kFs, 5, 6);
  EXPECT_FALSE(st.ok());
  WriteFile(Tree(DataFileName(5, 2)), "five");
  WriteFile(Tree(DataFileName(6)), "six");
  st = pool_->RenameDataFile(kId, kFs, 5, 6, 2);
  EXPECT_EQ(st.code(), Code::kExists) << st.ToString();
  EXPECT_EQ(ReadAll(Tree(DataFileName(5, 2))), "five");
  EXPECT_EQ(ReadAll(Tree(DataFileName(6))), "six");
  ASSERT_TRUE(pool_->RenameDataFile(kId, kFs, 5, 7, 2).ok());
  EXPECT_EQ(ReadAll(Tree(DataFileName(7))), "five");
  EXPECT_FALSE(fsys::exists(Tree(DataFileName(5, 2))));
  // The source is gone (renamed already): an error, not silent success.
  st = pool_->RenameDataFile(kId, kFs, 5, 8, 2);
  EXPECT_EQ(st.code(), Code::kNotFound) << st.ToString();
  faults_.Fail(NFSPROC3_LOOKUP, NFS3ERR_SERVERFAULT);
  pool_ = nullptr;  // a fresh pool: the tree's handle is looked up again
  auto p = DataServerPool::Create({Config(kId, ds_.address())}, FastOptions());
  LOOM_ASSERT_OK(p);
  EXPECT_EQ((*p)->RenameDataFile(kId, kFs, 7, 9).code(), Code::kIo);
  EXPECT_EQ(ReadAll(Tree(DataFileName(7))), "five");
}

TEST_F(DsFilesTest, DataFileExistsAndRemoveByName) {
  auto l = pool_->CreateDataFile(kFs, 5);
  LOOM_ASSERT_OK(l);
  const meta::DataFile f = l->mirrors[0].files[0];
  auto there = pool_->DataFileExists(f);
  LOOM_ASSERT_OK(there);
  EXPECT_TRUE(*there);
  faults_.Fail(NFSPROC3_GETATTR, NFS3ERR_ACCES);
  there = pool_->DataFileExists(f);
  EXPECT_EQ(there.status().code(), Code::kPermission) << "not 'missing': the bytes may be there";
  faults_.Clear();
  faults_.Fail(NFSPROC3_REMOVE, NFS3ERR_ROFS);
  Status st = pool_->RemoveDataFileByName(kFs, 5, kId);
  EXPECT_EQ(st.os_errno(), EROFS) << st.ToString();
  EXPECT_TRUE(fsys::exists(Tree(DataFileName(5))));
  faults_.Clear();
  ASSERT_TRUE(pool_->RemoveDataFileByName(kFs, 5, kId).ok());
  EXPECT_FALSE(fsys::exists(Tree(DataFileName(5))));
  there = pool_->DataFileExists(f);
  LOOM_ASSERT_OK(there);
  EXPECT_FALSE(*there);
  EXPECT_TRUE(pool_->RemoveDataFileByName(kFs, 5, kId).ok());  // gone already
  // A tree that does not exist holds nothing to remove.
  EXPECT_TRUE(pool_->RemoveDataFileByName(kFs + 1, 5, kId).ok());
  EXPECT_FALSE(fsys::exists(ds_.Loom(FsDirName(kFs + 1))));
}

TEST_F(DsFilesTest, ADownServerFailsEveryCallAtOnce) {
  auto p = DataServerPool::Create({Config(kId, DeadAddress())}, FastOptions());
  LOOM_ASSERT_OK(p);
  DataServerPool& pool = **p;
  EXPECT_EQ(pool.ReadControlFile(kId, {"loom", "ds-id"}).status().code(), Code::kUnavailable);
  EXPECT_EQ(pool.CreateControlFile(kId, {"loom", "ds-id"}, "x").status().code(), Code::kUnavailable);
  EXPECT_EQ(pool.ListDir(kId, {"loom"}).status().code(), Code::kUnavailable);
  EXPECT_EQ(pool.MoveToLostFound(kId, "t", "n").code(), Code::kUnavailable);
  EXPECT_EQ(pool.RenameDataFile(kId, kFs, 1, 2).code(), Code::kUnavailable);
  EXPECT_EQ(pool.RemoveDataFileByName(kFs, 1, kId).code(), Code::kUnavailable);
  meta::DataFile f;
  f.ds_id = kId;
  f.fh = "x";
  EXPECT_EQ(pool.DataFileExists(f).status().code(), Code::kUnavailable);
  EXPECT_EQ(pool.HealthOf(kId), Health::kDown);
}

TEST_F(DsFilesTest, OwnerMarkerChecks) {
  // A tree from before markers is used as it is when reading, and gets one when written.
  fsys::create_directories(Tree());
  WriteFile(Tree(DataFileName(5)), "old");
  pool_->SetTree(kFs, FsDirName(kFs), "me");
  EXPECT_TRUE(pool_->RemoveDataFileByName(kFs, 9, kId).ok());
  EXPECT_FALSE(fsys::exists(Tree(".owner")));
  ASSERT_TRUE(pool_->PrepareFilesystem(kFs).ok());
  EXPECT_EQ(ReadAll(Tree(".owner")), "me\n");
  // A marker with trailing blanks is the same owner.
  auto p = DataServerPool::Create({Config(kId, ds_.address())}, FastOptions());
  LOOM_ASSERT_OK(p);
  WriteFile(Tree(".owner"), "me \n");
  (*p)->SetTree(kFs, FsDirName(kFs), "me");
  EXPECT_TRUE((*p)->PrepareFilesystem(kFs).ok());
  // A marker that cannot be read is an error, not a claim.
  auto q = DataServerPool::Create({Config(kId, ds_.address())}, FastOptions());
  LOOM_ASSERT_OK(q);
  (*q)->SetTree(kFs, FsDirName(kFs), "me");
  faults_.Fail(NFSPROC3_READ, NFS3ERR_IO);
  Status st = (*q)->PrepareFilesystem(kFs);
  EXPECT_EQ(st.code(), Code::kIo) << st.ToString();
  faults_.Clear();
  // Someone else's: refused, and the marker kept.
  WriteFile(Tree(".owner"), "you\n");
  auto r = DataServerPool::Create({Config(kId, ds_.address())}, FastOptions());
  LOOM_ASSERT_OK(r);
  (*r)->SetTree(kFs, FsDirName(kFs), "me");
  st = (*r)->RemoveDataFileByName(kFs, 5, kId);
  EXPECT_EQ(st.code(), Code::kPermission) << st.ToString();
  EXPECT_TRUE(Has(st.message(), "belongs to filesystem you, not me")) << st.ToString();
  EXPECT_EQ(ReadAll(Tree(DataFileName(5))), "old");
  EXPECT_EQ(ReadAll(Tree(".owner")), "you\n");
}

TEST_F(DsFilesTest, LookupsThatFailPartWay) {
  // CREATE sent no handle and the LOOKUP that should find the new file fails, or finds
  // nothing: an error, never a control file taken as written.
  faults_.create_without_handle = true;
  ASSERT_TRUE(*pool_->CreateControlFile(kId, {"loom", "first"}, "x"));  // makes loom/
  faults_.Fail(NFSPROC3_LOOKUP, NFS3ERR_IO, 1);  // loom/ is found, the new file is not
  auto made = pool_->CreateControlFile(kId, {"loom", "second"}, "x");
  EXPECT_EQ(made.status().code(), Code::kIo) << made.status().ToString();
  faults_.Fail(NFSPROC3_LOOKUP, NFS3ERR_NOENT, 1);
  made = pool_->CreateControlFile(kId, {"loom", "third"}, "x");
  ASSERT_FALSE(made.ok());
  EXPECT_TRUE(Has(made.status().message(), "third vanished")) << made.status().ToString();
  faults_.Clear();
  // The target of a rename cannot be checked: nothing is renamed.
  WriteFile(Tree(DataFileName(5)), "five");
  faults_.Fail(NFSPROC3_LOOKUP, NFS3ERR_IO, 2);  // loom/ and the tree are found
  EXPECT_EQ(pool_->RenameDataFile(kId, kFs, 5, 6).code(), Code::kIo);
  EXPECT_EQ(ReadAll(Tree(DataFileName(5))), "five");
  faults_.Clear();
  // lost+found cannot be made, or a name in it cannot be checked: the file stays.
  faults_.Fail(NFSPROC3_MKDIR, NFS3ERR_NOSPC);
  EXPECT_EQ(pool_->MoveToLostFound(kId, FsDirName(kFs), DataFileName(5)).code(), Code::kNoSpace);
  faults_.Clear();
  fsys::create_directories(ds_.Loom(kLostFound));
  faults_.Fail(NFSPROC3_LOOKUP, NFS3ERR_IO, 4);  // loom, tree, loom, lost+found
  EXPECT_EQ(pool_->MoveToLostFound(kId, FsDirName(kFs), DataFileName(5)).code(), Code::kIo);
  EXPECT_EQ(ReadAll(Tree(DataFileName(5))), "five");
}

TEST_F(DsFilesTest, LostFoundWithNoFreeNameRefuses) {
  const std::string base = ds_.Loom(std::string(kLostFound) + "/t-" + DataFileName(1));
  WriteFile(base, "0");
  for (int n = 1; n < 1000; n++) WriteFile(base + "." + std::to_string(n), "taken");
  WriteFile(ds_.Loom("t/" + DataFileName(1)), "keep me");
  Status st = pool_->MoveToLostFound(kId, "t", DataFileName(1));
  EXPECT_EQ(st.code(), Code::kExists) << st.ToString();
  EXPECT_TRUE(Has(st.message(), "no free name")) << st.ToString();
  EXPECT_EQ(ReadAll(ds_.Loom("t/" + DataFileName(1))), "keep me");
  EXPECT_EQ(ReadAll(base + ".999"), "taken");
}

TEST_F(DsFilesTest, OwnerMarkerThatCannotBeCheckedOrWritten) {
  auto fresh = [&] {
    auto p = DataServerPool::Create({Config(kId, ds_.address())}, FastOptions());
    EXPECT_TRUE(p.ok());
    (*p)->SetTree(kFs, "tree", "me");
    return std::move(*p);
  };
  fsys::create_directories(ds_.Loom("tree"));
  faults_.Fail(NFSPROC3_LOOKUP, NFS3ERR_IO, 2);  // loom/ and the tree found, the marker not
  EXPECT_EQ(fresh()->PrepareFilesystem(kFs).code(), Code::kIo);
  faults_.Clear();
  faults_.Fail(NFSPROC3_CREATE, NFS3ERR_ROFS);
  EXPECT_EQ(fresh()->PrepareFilesystem(kFs).os_errno(), EROFS);
  faults_.Clear();
  // Another writer's marker appeared between LOOKUP and CREATE (EXIST) but cannot be found
  // again: an error rather than a tree taken without its marker.
  faults_.Fail(NFSPROC3_CREATE, NFS3ERR_EXIST);
  Status st = fresh()->PrepareFilesystem(kFs);
  EXPECT_EQ(st.code(), Code::kIo) << st.ToString();
  EXPECT_TRUE(Has(st.message(), "cannot read loom/tree/.owner")) << st.ToString();
  EXPECT_FALSE(fsys::exists(ds_.Loom("tree/.owner")));
  // A lost race once: the second look finds the marker (here: made by the retry).
  faults_.Fail(NFSPROC3_CREATE, NFS3ERR_EXIST, 0, 1);
  ASSERT_TRUE(fresh()->PrepareFilesystem(kFs).ok());
  EXPECT_EQ(ReadAll(ds_.Loom("tree/.owner")), "me\n");
}

}  // namespace
}  // namespace loom::mds
