// Namespace semantics, checked on every backend: create/lookup/attributes, readdir paging with
// stable cookies, link counts, remove with orphan or GC, rename, inode allocation.
#include "meta/namespace.h"

#include <algorithm>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "meta/test_util.h"

namespace loom::meta {
namespace {

using testing::BackendNames;
using testing::Backends;

constexpr FsId kFs = 7;

const Status& StatusOf(const Status& s) { return s; }
template <typename T>
const Status& StatusOf(const Result<T>& r) {
  return r.status();
}

#define EXPECT_ERR(expr, e) EXPECT_EQ(MetaErrName(ErrOf(StatusOf(expr))), MetaErrName(MetaErr::e))
#define ASSERT_OK(expr)                                       \
  do {                                                        \
    auto&& _r = (expr);                                       \
    ASSERT_TRUE(_r.ok()) << _r.status().ToString();           \
  } while (0)

template <typename B>
class NamespaceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    NewNamespace();
    ASSERT_TRUE(Tx([&](Txn& t) { return ns_->Mkfs(t, 0755, 0, 0); }).ok());
  }
  // A fresh Namespace (and allocator) over the same store: a restarted MDS.
  void NewNamespace() { ns_ = std::make_unique<Namespace>(b_.store(), kFs, Namespace::Options{16}); }

  template <typename F>
  auto Tx(F f) {
    return RunTxn(*b_.store(), f);
  }

  Result<CreateResult> Make(Ino dir, std::string name, FileType type = FileType::kReg,
                            std::optional<Layout> layout = std::nullopt) {
    CreateArgs a;
    a.type = type;
    a.mode = type == FileType::kDir ? 0755 : 0644;
    if (type == FileType::kLnk) a.symlink = "/somewhere";
    a.layout = std::move(layout);
    return Tx([&](Txn& t) { return ns_->Create(t, dir, name, a); });
  }
  Ino MakeIno(Ino dir, std::string name, FileType type = FileType::kReg) {
    auto r = Make(dir, name, type);
    EXPECT_TRUE(r.ok()) << name << ": " << r.status().ToString();
    return r.ok() ? r->inode.ino : 0;
  }
  Result<Dentry> Lookup(Ino dir, std::string name) {
    return Tx([&](Txn& t) { return ns_->Lookup(t, dir, name); });
  }
  Result<Inode> Attr(Ino ino) {
    return Tx([&](Txn& t) { return ns_->GetAttr(t, ino); });
  }
  Result<RemoveResult> Remove(Ino dir, std::string name, IsOpenFn is_open = nullptr) {
    return Tx([&](Txn& t) { return ns_->Remove(t, dir, name, is_open); });
  }
  Result<RenameResult> Rename(Ino sd, std::string sn, Ino dd, std::string dn) {
    return Tx([&](Txn& t) { return ns_->Rename(t, sd, sn, dd, dn, nullptr); });
  }
  Result<ReadDirPage> ReadDir(Ino dir, uint64_t cookie, size_t n) {
    return Tx([&](Txn& t) { return ns_->ReadDir(t, dir, cookie, n); });
  }
  std::vector<std::string> Names(Ino dir) {
    std::vector<std::string> out;
    auto p = ReadDir(dir, 0, 100000);
    EXPECT_TRUE(p.ok());
    if (p.ok()) {
      for (auto& e : p->entries) out.push_back(e.name);
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  static Layout TwoByTwo() {
    Layout l;
    l.stripe_unit = 65536;
    l.stripe_count = 2;
    for (uint32_t m = 0; m < 2; ++m) {
      Mirror mir;
      for (uint32_t s = 0; s < 2; ++s) mir.files.push_back({m, "fh" + std::to_string(s), 9, 9});
      l.mirrors.push_back(mir);
    }
    return l;
  }

  B b_;
  std::unique_ptr<Namespace> ns_;
};

TYPED_TEST_SUITE(NamespaceTest, Backends, BackendNames);

TYPED_TEST(NamespaceTest, MkfsMakesRootOnce) {
  auto root = this->Attr(kRootIno);
  ASSERT_OK(root);
  EXPECT_EQ(root->type, FileType::kDir);
  EXPECT_EQ(root->nlink, 2u);
  EXPECT_EQ(root->parent, kRootIno);
  EXPECT_ERR(this->Tx([&](Txn& t) { return this->ns_->Mkfs(t, 0755, 0, 0); }), kExist);
}

// df's used files (Namespace::inodes): a scan at start, then every create and delete as its
// commit succeeds; links, renames and orphans change nothing until an inode really goes.
TYPED_TEST(NamespaceTest, CountsInodesAsCommitsSucceed) {
  EXPECT_EQ(this->ns_->inodes(), std::nullopt);
  ASSERT_TRUE(this->ns_->CountInodes().ok());
  EXPECT_EQ(this->ns_->inodes(), 1u);  // the root
  const Ino d = this->MakeIno(kRootIno, "d", FileType::kDir);
  const Ino a = this->MakeIno(d, "a");
  this->MakeIno(d, "b");
  this->MakeIno(kRootIno, "c");
  EXPECT_EQ(this->ns_->inodes(), 5u);
  ASSERT_OK(this->Tx([&](Txn& t) { return this->ns_->Link(t, a, kRootIno, "a2"); }));
  EXPECT_EQ(this->ns_->inodes(), 5u);  // a second name, no new inode
  ASSERT_OK(this->Remove(d, "a"));
  EXPECT_EQ(this->ns_->inodes(), 5u);  // a2 still names it
  ASSERT_OK(this->Remove(kRootIno, "a2"));
  EXPECT_EQ(this->ns_->inodes(), 4u);
  ASSERT_OK(this->Rename(kRootIno, "c", d, "b"));  // replaces b
  EXPECT_EQ(this->ns_->inodes(), 3u);
  // A create whose transaction is rolled back counts nothing.
  Status failed = this->Tx([&](Txn& t) -> Status {
    CreateArgs ca;
    auto r = this->ns_->Create(t, kRootIno, "gone", ca);
    if (!r.ok()) return r.status();
    return Status(Code::kIo, "the operation fails after its create");
  });
  EXPECT_EQ(failed.code(), Code::kIo);
  EXPECT_EQ(this->ns_->inodes(), 3u);
  // An open file's last name: an orphan is still an inode until it is released.
  ASSERT_OK(this->Remove(d, "b", [](Ino) { return true; }));
  EXPECT_EQ(this->ns_->inodes(), 3u);
  auto orphans = this->Tx([&](Txn& t) { return this->ns_->ListOrphans(t, 10); });
  ASSERT_OK(orphans);
  ASSERT_EQ(orphans->size(), 1u);
  ASSERT_TRUE(this->Tx([&](Txn& t) { return this->ns_->ReleaseOrphan(t, (*orphans)[0].ino); }).ok());
  EXPECT_EQ(this->ns_->inodes(), 2u);  // the root and d
  // A fresh count agrees.
  Namespace again(this->b_.store(), this->ns_->fsid());
  ASSERT_TRUE(again.CountInodes().ok());
  EXPECT_EQ(again.inodes(), this->ns_->inodes());
}

TYPED_TEST(NamespaceTest, CreateLookupAndParentTimes) {
  auto before = this->Attr(kRootIno);
  auto f = this->Make(kRootIno, "file");
  ASSERT_OK(f);
  EXPECT_EQ(f->inode.nlink, 1u);
  EXPECT_EQ(f->dir.before, before->change);
  EXPECT_GT(f->dir.after, f->dir.before);
  auto after = this->Attr(kRootIno);
  EXPECT_EQ(after->change, f->dir.after);
  EXPECT_GE(after->mtime, before->mtime);
  EXPECT_EQ(after->mtime, after->ctime);

  Ino dir = this->MakeIno(kRootIno, "dir", FileType::kDir);
  EXPECT_EQ(this->Attr(kRootIno)->nlink, 3u);  // the subdirectory's ".."
  EXPECT_EQ(this->Attr(dir)->nlink, 2u);
  EXPECT_EQ(this->Attr(dir)->parent, kRootIno);
  auto link = this->Make(dir, "sym", FileType::kLnk);
  ASSERT_OK(link);
  EXPECT_EQ(link->inode.symlink, "/somewhere");
  ASSERT_OK(this->Make(dir, "fifo", FileType::kFifo));

  auto d = this->Lookup(kRootIno, "file");
  ASSERT_OK(d);
  EXPECT_EQ(d->ino, f->inode.ino);
  EXPECT_EQ(d->type, FileType::kReg);
  EXPECT_EQ(this->Lookup(dir, "sym")->type, FileType::kLnk);

  EXPECT_ERR(this->Make(kRootIno, "file"), kExist);
  EXPECT_ERR(this->Make(f->inode.ino, "x"), kNotDir);
  EXPECT_ERR(this->Make(999999, "x"), kStale);
  EXPECT_ERR(this->Lookup(kRootIno, "nope"), kNoEnt);
  EXPECT_ERR(this->Lookup(f->inode.ino, "x"), kNotDir);
  EXPECT_ERR(this->Attr(999999), kStale);
  for (std::string bad : {std::string(), std::string("."), std::string(".."),
                          std::string("a/b"), std::string("a\0b", 3)}) {
    EXPECT_ERR(this->Make(kRootIno, bad), kInval) << bad;
  }
  EXPECT_ERR(this->Make(kRootIno, std::string(256, 'n')), kNameTooLong);
  EXPECT_TRUE(this->Make(kRootIno, std::string(255, 'n')).ok());
}

TYPED_TEST(NamespaceTest, SetAttrBumpsCtimeAndChange) {
  Ino f = this->MakeIno(kRootIno, "f");
  auto before = *this->Attr(f);
  SetAttrArgs a;
  a.mode = 0600;
  a.uid = 5;
  a.gid = 6;
  a.size = 1 << 30;
  a.atime = Timespec{100, 5};
  auto r = this->Tx([&](Txn& t) { return this->ns_->SetAttr(t, f, a); });
  ASSERT_OK(r);
  auto after = *this->Attr(f);
  EXPECT_EQ(after, *r);
  EXPECT_EQ(after.mode, 0600u);
  EXPECT_EQ(after.uid, 5u);
  EXPECT_EQ(after.gid, 6u);
  EXPECT_EQ(after.size, 1u << 30);
  EXPECT_EQ(after.atime, (Timespec{100, 5}));
  EXPECT_EQ(after.change, before.change + 1);
  EXPECT_GE(after.ctime, before.ctime);

  SetAttrArgs bad_mode;
  bad_mode.mode = 0100644;
  EXPECT_ERR(this->Tx([&](Txn& t) { return this->ns_->SetAttr(t, f, bad_mode); }), kInval);
  SetAttrArgs size;
  size.size = 0;
  EXPECT_ERR(this->Tx([&](Txn& t) { return this->ns_->SetAttr(t, kRootIno, size); }), kIsDir);
}

TYPED_TEST(NamespaceTest, SetAttrKillSetidClearsSetIdBitsOfNonDirectories) {
  Ino f = this->MakeIno(kRootIno, "f");
  Ino d = this->MakeIno(kRootIno, "d", FileType::kDir);
  auto set = [&](Ino ino, std::optional<uint32_t> mode, bool kill) {
    SetAttrArgs a;
    a.mode = mode;
    a.kill_setid = kill;
    auto r = this->Tx([&](Txn& t) { return this->ns_->SetAttr(t, ino, a); });
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r->mode : ~0u;
  };
  ASSERT_EQ(set(f, 06755, false), 06755u);
  EXPECT_EQ(set(f, std::nullopt, true), 0755u);
  // Without group execute S_ISGID marks mandatory locking and stays.
  ASSERT_EQ(set(f, 06745, false), 06745u);
  EXPECT_EQ(set(f, std::nullopt, true), 02745u);
  // A mode given in the same change is cleared too; directories keep theirs.
  EXPECT_EQ(set(f, 06711, true), 0711u);
  ASSERT_EQ(set(d, 06775, false), 06775u);
  EXPECT_EQ(set(d, std::nullopt, true), 06775u);
}

TYPED_TEST(NamespaceTest, ReadDirPagesWithStableCookies) {
  Ino dir = this->MakeIno(kRootIno, "d", FileType::kDir);
  for (int i = 0; i < 50; ++i) this->MakeIno(dir, "e" + std::to_string(i));

  std::vector<Dentry> seen;
  uint64_t cookie = 0;
  auto page = this->ReadDir(dir, cookie, 10);
  ASSERT_OK(page);
  ASSERT_EQ(page->entries.size(), 10u);
  EXPECT_FALSE(page->eof);
  seen = page->entries;
  cookie = seen.back().cookie;

  // Between pages: remove entries already read and not yet read, add new ones.
  std::set<std::string> removed_unread = {"e20", "e33", "e49"};
  for (auto n : {"e0", "e5", "e20", "e33", "e49"}) ASSERT_OK(this->Remove(dir, n));
  for (auto n : {"new1", "new2"}) this->MakeIno(dir, n);

  bool eof = false;
  while (!eof) {
    page = this->ReadDir(dir, cookie, 7);
    ASSERT_OK(page);
    for (auto& e : page->entries) {
      EXPECT_GT(e.cookie, cookie);
      cookie = e.cookie;
      seen.push_back(e);
    }
    eof = page->eof;
  }
  std::set<std::string> names;
  for (auto& e : seen) EXPECT_TRUE(names.insert(e.name).second) << "twice: " << e.name;
  for (int i = 0; i < 50; ++i) {
    std::string n = "e" + std::to_string(i);
    EXPECT_EQ(names.count(n), removed_unread.count(n) ? 0u : 1u) << n;
  }
  EXPECT_EQ(names.count("new1") + names.count("new2"), 2u);  // added after: larger cookies

  // Cookies belong to entries: a full listing shows each survivor under the cookie it had.
  auto all = this->ReadDir(dir, 0, 1000);
  ASSERT_OK(all);
  EXPECT_TRUE(all->eof);
  EXPECT_EQ(all->entries.size(), 50u - 5 + 2);
  for (auto& e : all->entries) {
    auto it = std::find_if(seen.begin(), seen.end(), [&](auto& s) { return s.name == e.name; });
    ASSERT_NE(it, seen.end());
    EXPECT_EQ(it->cookie, e.cookie);
    EXPECT_EQ(this->Lookup(dir, e.name)->cookie, e.cookie);
  }
  // A page that ends exactly at the last entry reports eof.
  auto exact = this->ReadDir(dir, 0, all->entries.size());
  EXPECT_TRUE(exact->eof);
  EXPECT_ERR(this->ReadDir(dir, 1u << 30, 10), kBadCookie);
  EXPECT_ERR(this->ReadDir(this->Lookup(dir, "e1")->ino, 0, 10), kNotDir);
  auto empty = this->ReadDir(this->MakeIno(kRootIno, "empty", FileType::kDir), 0, 10);
  ASSERT_OK(empty);
  EXPECT_TRUE(empty->entries.empty());
  EXPECT_TRUE(empty->eof);
}

TYPED_TEST(NamespaceTest, LinkCounts) {
  Ino f = this->MakeIno(kRootIno, "f");
  Ino dir = this->MakeIno(kRootIno, "d", FileType::kDir);
  ASSERT_OK(this->Tx([&](Txn& t) { return this->ns_->Link(t, f, dir, "f2"); }));
  ASSERT_OK(this->Tx([&](Txn& t) { return this->ns_->Link(t, f, kRootIno, "f3"); }));
  EXPECT_EQ(this->Attr(f)->nlink, 3u);
  EXPECT_EQ(this->Lookup(dir, "f2")->ino, f);
  EXPECT_ERR(this->Tx([&](Txn& t) { return this->ns_->Link(t, f, dir, "f2"); }), kExist);
  EXPECT_ERR(this->Tx([&](Txn& t) { return this->ns_->Link(t, dir, kRootIno, "d2"); }), kIsDir);

  auto r = this->Remove(kRootIno, "f");
  ASSERT_OK(r);
  EXPECT_EQ(r->obj.nlink, 2u);
  EXPECT_EQ(this->Attr(f)->nlink, 2u);
  ASSERT_OK(this->Remove(dir, "f2"));
  ASSERT_OK(this->Remove(kRootIno, "f3"));
  EXPECT_ERR(this->Attr(f), kStale);
}

TYPED_TEST(NamespaceTest, RemoveRmdirUnlinkKinds) {
  Ino d = this->MakeIno(kRootIno, "d", FileType::kDir);
  this->MakeIno(d, "inner");
  this->MakeIno(kRootIno, "f");
  auto rmdir = [&](std::string n) {
    return this->Tx([&](Txn& t) { return this->ns_->Rmdir(t, kRootIno, n); });
  };
  auto unlink = [&](std::string n) {
    return this->Tx([&](Txn& t) { return this->ns_->Unlink(t, kRootIno, n, nullptr); });
  };
  EXPECT_ERR(rmdir("d"), kNotEmpty);
  EXPECT_ERR(this->Remove(kRootIno, "d"), kNotEmpty);
  EXPECT_ERR(rmdir("f"), kNotDir);
  EXPECT_ERR(unlink("d"), kIsDir);
  EXPECT_ERR(unlink("missing"), kNoEnt);
  ASSERT_OK(this->Remove(d, "inner"));
  EXPECT_EQ(this->Attr(kRootIno)->nlink, 3u);
  ASSERT_OK(rmdir("d"));
  EXPECT_EQ(this->Attr(kRootIno)->nlink, 2u);
  EXPECT_ERR(this->Attr(d), kStale);
  ASSERT_OK(unlink("f"));
  EXPECT_TRUE(this->Names(kRootIno).empty());
}

TYPED_TEST(NamespaceTest, LastUnlinkOrphansOpenFilesAndQueuesGcForClosedOnes) {
  auto open_file = this->Make(kRootIno, "open", FileType::kReg, this->TwoByTwo());
  auto closed_file = this->Make(kRootIno, "closed", FileType::kReg, this->TwoByTwo());
  ASSERT_OK(open_file);
  ASSERT_OK(closed_file);
  Ino open_ino = open_file->inode.ino, closed_ino = closed_file->inode.ino;
  IsOpenFn is_open = [&](Ino i) { return i == open_ino; };

  auto r = this->Remove(kRootIno, "open", is_open);
  ASSERT_OK(r);
  EXPECT_TRUE(r->obj.orphaned);
  EXPECT_EQ(r->obj.gc_items, 0u);
  EXPECT_EQ(this->Attr(open_ino)->nlink, 0u);  // still readable through its handle
  ASSERT_OK(this->Tx([&](Txn& t) { return this->ns_->GetLayout(t, open_ino); }));
  auto orphans = this->Tx([&](Txn& t) { return this->ns_->ListOrphans(t, 10); });
  ASSERT_OK(orphans);
  ASSERT_EQ(orphans->size(), 1u);
  EXPECT_EQ((*orphans)[0].ino, open_ino);
  EXPECT_ERR(this->Tx([&](Txn& t) { return this->ns_->Link(t, open_ino, kRootIno, "back"); }),
             kNoEnt);

  r = this->Remove(kRootIno, "closed", is_open);
  ASSERT_OK(r);
  EXPECT_FALSE(r->obj.orphaned);
  EXPECT_EQ(r->obj.gc_items, 4u);
  EXPECT_ERR(this->Attr(closed_ino), kStale);
  EXPECT_ERR(this->Tx([&](Txn& t) { return this->ns_->GetLayout(t, closed_ino); }), kNoEnt);
  auto gc = this->Tx([&](Txn& t) { return this->ns_->ListGc(t, 100); });
  ASSERT_OK(gc);
  EXPECT_EQ(gc->size(), 4u);

  // Last close of the orphan.
  ASSERT_TRUE(this->Tx([&](Txn& t) { return this->ns_->ReleaseOrphan(t, open_ino); }).ok());
  EXPECT_ERR(this->Attr(open_ino), kStale);
  EXPECT_TRUE(this->Tx([&](Txn& t) { return this->ns_->ListOrphans(t, 10); })->empty());
  gc = this->Tx([&](Txn& t) { return this->ns_->ListGc(t, 100); });
  ASSERT_EQ(gc->size(), 8u);
  for (const GcItem& g : *gc) {
    EXPECT_TRUE(g.ino == open_ino || g.ino == closed_ino);
    ASSERT_TRUE(this->Tx([&](Txn& t) { return this->ns_->DeleteGc(t, g); }).ok());
  }
  EXPECT_TRUE(this->Tx([&](Txn& t) { return this->ns_->ListGc(t, 100); })->empty());
  // Releasing twice, or a file that is no orphan, does nothing.
  EXPECT_TRUE(this->Tx([&](Txn& t) { return this->ns_->ReleaseOrphan(t, open_ino); }).ok());
}

TYPED_TEST(NamespaceTest, RenameFiles) {
  Ino a = this->MakeIno(kRootIno, "a", FileType::kDir);
  Ino b = this->MakeIno(kRootIno, "b", FileType::kDir);
  Ino f = this->MakeIno(a, "f");
  auto r = this->Rename(a, "f", a, "g");  // same directory
  ASSERT_OK(r);
  EXPECT_EQ(r->src_dir.after, r->src_dir.before + 1);
  EXPECT_ERR(this->Lookup(a, "f"), kNoEnt);
  EXPECT_EQ(this->Lookup(a, "g")->ino, f);

  r = this->Rename(a, "g", b, "h");  // across directories
  ASSERT_OK(r);
  EXPECT_GT(r->src_dir.after, r->src_dir.before);
  EXPECT_GT(r->dst_dir.after, r->dst_dir.before);
  EXPECT_TRUE(this->Names(a).empty());
  EXPECT_EQ(this->Names(b), std::vector<std::string>{"h"});

  // Replacing a file: the old target's last link goes, with its data-server files.
  auto victim = this->Make(b, "victim", FileType::kReg, this->TwoByTwo());
  ASSERT_OK(victim);
  r = this->Rename(b, "h", b, "victim");
  ASSERT_OK(r);
  ASSERT_TRUE(r->replaced.has_value());
  EXPECT_EQ(r->replaced->ino, victim->inode.ino);
  EXPECT_EQ(r->replaced->gc_items, 4u);
  EXPECT_ERR(this->Attr(victim->inode.ino), kStale);
  EXPECT_EQ(this->Lookup(b, "victim")->ino, f);
  EXPECT_EQ(this->Names(b), std::vector<std::string>{"victim"});

  // Onto another link of the same file: nothing happens.
  ASSERT_OK(this->Tx([&](Txn& t) { return this->ns_->Link(t, f, a, "same"); }));
  r = this->Rename(a, "same", b, "victim");
  ASSERT_OK(r);
  EXPECT_FALSE(r->replaced.has_value());
  EXPECT_EQ(this->Attr(f)->nlink, 2u);
  EXPECT_EQ(this->Lookup(a, "same")->ino, f);
  ASSERT_OK(this->Rename(a, "same", a, "same"));  // onto itself
  EXPECT_ERR(this->Rename(a, "missing", b, "x"), kNoEnt);
  EXPECT_ERR(this->Rename(f, "x", b, "x"), kNotDir);
}

TYPED_TEST(NamespaceTest, RenameDirectories) {
  Ino a = this->MakeIno(kRootIno, "a", FileType::kDir);
  Ino b = this->MakeIno(a, "b", FileType::kDir);
  Ino c = this->MakeIno(b, "c", FileType::kDir);
  Ino other = this->MakeIno(kRootIno, "other", FileType::kDir);
  this->MakeIno(kRootIno, "file");

  // Into its own subtree, at any depth, or into itself.
  EXPECT_ERR(this->Rename(kRootIno, "a", c, "x"), kInval);
  EXPECT_ERR(this->Rename(kRootIno, "a", b, "x"), kInval);
  EXPECT_ERR(this->Rename(kRootIno, "a", a, "x"), kInval);
  EXPECT_ERR(this->Rename(a, "b", c, "x"), kInval);

  // Type and emptiness rules for a replaced target.
  this->MakeIno(other, "full", FileType::kDir);
  this->MakeIno(this->Lookup(other, "full")->ino, "x");
  EXPECT_ERR(this->Rename(a, "b", other, "full"), kNotEmpty);
  EXPECT_ERR(this->Rename(a, "b", kRootIno, "file"), kNotDir);
  EXPECT_ERR(this->Rename(kRootIno, "file", a, "b"), kIsDir);

  // A move to another directory fixes both parents' link counts and the ".." pointer.
  EXPECT_EQ(this->Attr(a)->nlink, 3u);
  EXPECT_EQ(this->Attr(other)->nlink, 3u);
  ASSERT_OK(this->Rename(a, "b", other, "b2"));
  EXPECT_EQ(this->Attr(a)->nlink, 2u);
  EXPECT_EQ(this->Attr(other)->nlink, 4u);
  EXPECT_EQ(this->Attr(b)->parent, other);
  EXPECT_EQ(this->Lookup(this->Lookup(other, "b2")->ino, "c")->ino, c);

  // Replacing an empty directory: the target goes, the parent's count follows.
  Ino empty = this->MakeIno(a, "empty", FileType::kDir);
  EXPECT_EQ(this->Attr(a)->nlink, 3u);
  auto r = this->Rename(other, "b2", a, "empty");
  ASSERT_OK(r);
  ASSERT_TRUE(r->replaced.has_value());
  EXPECT_EQ(r->replaced->ino, empty);
  EXPECT_ERR(this->Attr(empty), kStale);
  EXPECT_EQ(this->Attr(a)->nlink, 3u);
  EXPECT_EQ(this->Attr(other)->nlink, 3u);
  EXPECT_EQ(this->Attr(b)->parent, a);
  // Within one directory a directory's parent and counts stay.
  ASSERT_OK(this->Rename(a, "empty", a, "b"));
  EXPECT_EQ(this->Attr(a)->nlink, 3u);
  EXPECT_EQ(this->Attr(b)->parent, a);
}

// A rename's check (RenameCheckFn) sees the directories and the objects as the rename holds
// them locked: a chmod of any of them cannot commit meanwhile, so what is checked is what is
// renamed. A refusal writes nothing; a rename that does nothing is not checked.
TYPED_TEST(NamespaceTest, RenameCheckRunsUnderTheRenameLocks) {
  Ino a = this->MakeIno(kRootIno, "a", FileType::kDir);
  Ino b = this->MakeIno(kRootIno, "b", FileType::kDir);
  Ino d = this->MakeIno(a, "d", FileType::kDir);
  Ino v = this->MakeIno(b, "v", FileType::kDir);
  int calls = 0;
  RenameCheckFn check = [&](const Inode& sd, const Inode& obj, const Inode& td,
                            const Inode* target) -> Status {
    ++calls;
    EXPECT_EQ(sd.ino, a);
    EXPECT_EQ(obj.ino, d);
    EXPECT_EQ(td.ino, b);
    EXPECT_TRUE(target && target->ino == v);
    // Another transaction's chmod of the moving directory or of the target directory waits
    // for the rename's locks and gives up.
    for (Ino ino : {d, b}) {
      auto t2 = this->b_.store()->Begin();
      if (!t2.ok()) return t2.status();
      SetAttrArgs m;
      m.mode = 0777;
      auto set = this->ns_->SetAttr(**t2, ino, m);
      EXPECT_FALSE(set.ok()) << ino;
    }
    return Status(Code::kPermission, "refused");
  };
  auto r = this->Tx([&](Txn& t) { return this->ns_->Rename(t, a, "d", b, "v", nullptr, check); });
  EXPECT_EQ(StatusOf(r).code(), Code::kPermission);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(this->Lookup(a, "d")->ino, d);
  EXPECT_EQ(this->Lookup(b, "v")->ino, v);
  EXPECT_EQ(this->Attr(d)->parent, a);
  EXPECT_EQ(this->Attr(d)->mode & 07777, 0755u);
  EXPECT_EQ(this->Attr(b)->mode & 07777, 0755u);
  ASSERT_OK(this->Tx([&](Txn& t) { return this->ns_->Rename(t, a, "d", a, "d", nullptr, check); }));
  EXPECT_EQ(calls, 1);
  RenameCheckFn allow = [&](const Inode&, const Inode&, const Inode&, const Inode* target) {
    ++calls;
    EXPECT_EQ(target, nullptr);
    return Status::Ok();
  };
  ASSERT_OK(this->Tx([&](Txn& t) { return this->ns_->Rename(t, a, "d", b, "e", nullptr, allow); }));
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(this->Attr(d)->parent, b);
}

// The same for a remove's check (RemoveCheckFn): it sees the directory and the object locked,
// and a refusal removes nothing.
TYPED_TEST(NamespaceTest, RemoveCheckRunsUnderTheRemoveLocks) {
  Ino a = this->MakeIno(kRootIno, "a", FileType::kDir);
  Ino f = this->MakeIno(a, "f");
  int calls = 0;
  RemoveCheckFn check = [&](const Inode& dir, const Inode& obj) -> Status {
    ++calls;
    EXPECT_EQ(dir.ino, a);
    EXPECT_EQ(obj.ino, f);
    auto t2 = this->b_.store()->Begin();
    if (!t2.ok()) return t2.status();
    SetAttrArgs m;
    m.uid = 1000;  // a chown that would change what a sticky directory allows
    EXPECT_FALSE(this->ns_->SetAttr(**t2, f, m).ok());
    return Status(Code::kPermission, "refused");
  };
  auto r = this->Tx([&](Txn& t) { return this->ns_->Remove(t, a, "f", nullptr, check); });
  EXPECT_EQ(StatusOf(r).code(), Code::kPermission);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(this->Lookup(a, "f")->ino, f);
  EXPECT_EQ(this->Attr(f)->uid, 0u);
  RemoveCheckFn allow = [&](const Inode&, const Inode&) { return Status::Ok(); };
  ASSERT_OK(this->Tx([&](Txn& t) { return this->ns_->Remove(t, a, "f", nullptr, allow); }));
  EXPECT_ERR(this->Lookup(a, "f"), kNoEnt);
}

TYPED_TEST(NamespaceTest, CrossedDirectoryRenamesNeverMakeACycle) {
  // "x into y" and "y into x" at once: one must fail, or the tree would lose both.
  for (int round = 0; round < 10; ++round) {
    std::string xn = "x" + std::to_string(round), yn = "y" + std::to_string(round);
    Ino x = this->MakeIno(kRootIno, xn, FileType::kDir);
    Ino y = this->MakeIno(kRootIno, yn, FileType::kDir);
    Result<RenameResult> r1 = Status::Internal("unset"), r2 = Status::Internal("unset");
    std::thread t1([&] { r1 = this->Rename(kRootIno, xn, y, "in"); });
    std::thread t2([&] { r2 = this->Rename(kRootIno, yn, x, "in"); });
    t1.join();
    t2.join();
    EXPECT_NE(r1.ok(), r2.ok()) << r1.status().ToString() << " / " << r2.status().ToString();
    EXPECT_EQ(ErrOf(r1.ok() ? r2.status() : r1.status()), MetaErr::kInval);
    // Both are still reachable from the root.
    for (Ino i : {x, y}) {
      Ino p = i;
      for (int depth = 0; p != kRootIno && depth < 10; ++depth) p = this->Attr(p)->parent;
      EXPECT_EQ(p, kRootIno);
    }
  }
}

TYPED_TEST(NamespaceTest, ConcurrentCreatesInOneDirectory) {
  Ino dir = this->MakeIno(kRootIno, "shared", FileType::kDir);
  std::vector<std::thread> threads;
  for (int w = 0; w < 2; ++w) {
    threads.emplace_back([&, w] {
      for (int i = 0; i < 40; ++i) {
        auto r = this->Make(dir, "w" + std::to_string(w) + "-" + std::to_string(i),
                            i % 4 ? FileType::kReg : FileType::kDir);
        ASSERT_TRUE(r.ok()) << r.status().ToString();
      }
    });
  }
  for (auto& t : threads) t.join();
  auto page = this->ReadDir(dir, 0, 1000);
  ASSERT_OK(page);
  EXPECT_EQ(page->entries.size(), 80u);
  std::set<uint64_t> cookies;
  for (auto& e : page->entries) cookies.insert(e.cookie);
  EXPECT_EQ(cookies.size(), 80u);
  EXPECT_EQ(this->Attr(dir)->nlink, 2u + 20u);
  EXPECT_EQ(this->Attr(dir)->change, 1u + 80u);
}

TYPED_TEST(NamespaceTest, SeveralOperationsInOneTransaction) {
  // What a group-commit batcher does: refused operations leave no trace, the rest commit
  // together.
  auto before = *this->Attr(kRootIno);
  Ino a = 0;
  Status s = this->Tx([&](Txn& t) -> Status {
    CreateArgs args;
    auto ra = this->ns_->Create(t, kRootIno, "a", args);
    if (!ra.ok()) return ra.status();
    a = ra->inode.ino;
    auto rb = this->ns_->Create(t, kRootIno, "b", args);
    if (!rb.ok()) return rb.status();
    EXPECT_ERR(this->ns_->Create(t, kRootIno, "a", args), kExist);
    CreateArgs bad;
    bad.layout = Layout{};
    bad.layout->stripe_count = 0;
    EXPECT_ERR(this->ns_->Create(t, kRootIno, "c", bad), kInval);
    EXPECT_ERR(this->ns_->Remove(t, kRootIno, "missing", nullptr), kNoEnt);
    return this->ns_->Link(t, a, kRootIno, "a2").status();
  });
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(this->Names(kRootIno), (std::vector<std::string>{"a", "a2", "b"}));
  EXPECT_ERR(this->Lookup(kRootIno, "c"), kNoEnt);
  EXPECT_EQ(this->Attr(kRootIno)->change, before.change + 3);
  EXPECT_EQ(this->Attr(a)->nlink, 2u);
}

TYPED_TEST(NamespaceTest, InodeNumbersUniqueAcrossRestartsAndAllocators) {
  std::set<Ino> seen = {kRootIno};
  auto make_many = [&](const std::string& tag, int n) {
    for (int i = 0; i < n; ++i) {
      Ino ino = this->MakeIno(kRootIno, tag + std::to_string(i));
      EXPECT_TRUE(seen.insert(ino).second) << "reused " << ino;
    }
  };
  make_many("a", 40);  // blocks of 16: crosses block boundaries
  this->b_.Reopen();
  this->NewNamespace();
  make_many("b", 40);
  // A second allocator on the same filesystem (another process) gets disjoint blocks.
  Namespace second(this->b_.store(), kFs, Namespace::Options{16});
  for (int i = 0; i < 20; ++i) {
    CreateArgs a;
    auto r = this->Tx([&](Txn& t) { return second.Create(t, kRootIno, "c" + std::to_string(i), a); });
    ASSERT_OK(r);
    EXPECT_TRUE(seen.insert(r->inode.ino).second);
    make_many("d" + std::to_string(i) + "-", 1);
  }
}

}  // namespace
}  // namespace loom::meta
