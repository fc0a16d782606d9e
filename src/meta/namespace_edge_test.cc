// Namespace edge cases and error paths: bad names and types, refused moves, link-count limits,
// damaged records and store failures at every step of every operation. The store faults come
// from FaultTxn, a Txn that fails (or damages the value of) its Nth call, so each test sweeps N
// over the whole operation and checks that the store's error reaches the caller unchanged and
// that a refusal (a MetaErr) has written nothing, as namespace.h promises group commit.
#include <functional>
#include <map>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "meta/mem_kv.h"
#include "meta/namespace.h"

namespace loom::meta {
namespace {

constexpr FsId kFs = 9;

const Status& StatusOf(const Status& s) { return s; }
template <typename T>
const Status& StatusOf(const Result<T>& r) {
  return r.status();
}
#define EXPECT_ERR(expr, e) EXPECT_EQ(MetaErrName(ErrOf(StatusOf(expr))), MetaErrName(MetaErr::e))
#define ASSERT_OK(expr)                                   \
  do {                                                    \
    auto&& _r = (expr);                                   \
    ASSERT_TRUE(_r.ok()) << StatusOf(_r).ToString();      \
  } while (0)

// Wraps a real transaction. In kFail mode call number fail_at (counting every call) returns
// an I/O error; in kDamage mode the fail_at-th read that finds a value (Get, GetForUpdate or a
// Scan row) sees it cut in half. Counts writes, so a test can check that a refusal wrote
// nothing.
class FaultTxn : public Txn {
 public:
  enum class Mode { kFail, kDamage };
  FaultTxn(std::unique_ptr<Txn> inner, Mode mode, int fail_at)
      : inner_(std::move(inner)), mode_(mode), fail_at_(fail_at) {}

  Result<MaybeValue> Get(std::string_view key) override {
    if (FailNow()) return Injected();
    return MaybeDamage(key, inner_->Get(key));
  }
  Result<MaybeValue> GetForUpdate(std::string_view key) override {
    if (FailNow()) return Injected();
    return MaybeDamage(key, inner_->GetForUpdate(key));
  }
  Status Put(std::string_view key, std::string_view value) override {
    if (FailNow()) return Injected();
    ++writes_;
    return inner_->Put(key, value);
  }
  Status Delete(std::string_view key) override {
    if (FailNow()) return Injected();
    ++writes_;
    return inner_->Delete(key);
  }
  Status Scan(const KeyRange& range, size_t limit, const ScanFn& fn) override {
    if (FailNow()) return Injected();
    return inner_->Scan(range, limit, [&](std::string_view k, std::string_view v) {
      if (DamageNow()) {
        damaged_key_ = std::string(k);
        return fn(k, v.substr(0, v.size() / 2));
      }
      return fn(k, v);
    });
  }
  Status Commit() override { return inner_->Commit(); }
  void Rollback() override { inner_->Rollback(); }
  void SetDurability(Durability d) override { inner_->SetDurability(d); }
  void OnCommit(std::function<void()> fn) override { inner_->OnCommit(std::move(fn)); }

  static Status Injected() { return Status(Code::kIo, "injected fault"); }
  // Whether the fault fired during the operation.
  bool fired() const { return fired_; }
  int writes() const { return writes_; }
  // The key whose value was damaged (kDamage mode), empty if none.
  const std::string& damaged_key() const { return damaged_key_; }

 private:
  bool FailNow() {
    if (mode_ != Mode::kFail) return false;
    if (calls_++ != fail_at_) return false;
    fired_ = true;
    return true;
  }
  bool DamageNow() {
    if (mode_ != Mode::kDamage) return false;
    if (reads_++ != fail_at_) return false;
    fired_ = true;
    return true;
  }
  Result<MaybeValue> MaybeDamage(std::string_view key, Result<MaybeValue> r) {
    if (!r.ok() || !*r || !DamageNow()) return r;
    damaged_key_ = std::string(key);
    (*r)->resize((*r)->size() / 2);
    return r;
  }

  std::unique_ptr<Txn> inner_;
  Mode mode_;
  int fail_at_;
  int calls_ = 0, reads_ = 0, writes_ = 0;
  bool fired_ = false;
  std::string damaged_key_;
};

// A fresh store with a made filesystem; helpers run operations in ordinary transactions.
class World {
 public:
  World() : ns_(&store_, kFs, Namespace::Options{16}) {
    Status s = RunTxn(store_, [&](Txn& t) { return ns_.Mkfs(t, 0755, 0, 0); });
    EXPECT_TRUE(s.ok()) << s.ToString();
  }
  template <typename F>
  auto Tx(F f) {
    return RunTxn(store_, f);
  }
  Ino Make(Ino dir, const std::string& name, FileType type = FileType::kReg,
           std::optional<Layout> layout = std::nullopt) {
    CreateArgs a;
    a.type = type;
    a.mode = type == FileType::kDir ? 0755 : 0644;
    if (type == FileType::kLnk) a.symlink = "target";
    a.layout = std::move(layout);
    auto r = Tx([&](Txn& t) { return ns_.Create(t, dir, name, a); });
    EXPECT_TRUE(r.ok()) << name << ": " << r.status().ToString();
    return r.ok() ? r->inode.ino : 0;
  }
  Inode Attr(Ino ino) {
    auto r = Tx([&](Txn& t) { return ns_.GetAttr(t, ino); });
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : Inode{};
  }
  bool Exists(const std::string& key) {
    auto r = Tx([&](Txn& t) { return t.Get(key); });
    return r.ok() && r->has_value();
  }
  Status PutRaw(const std::string& key, const std::string& value) {
    return Tx([&](Txn& t) { return t.Put(key, value); });
  }
  // Every key and value in the store, to compare before and after a failed operation.
  std::map<std::string, std::string> Dump() {
    std::map<std::string, std::string> out;
    Status s = Tx([&](Txn& t) {
      out.clear();
      return t.Scan(KeyRange{"", ""}, 0, [&](std::string_view k, std::string_view v) {
        out.emplace(std::string(k), std::string(v));
        return true;
      });
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
    return out;
  }

  MemKvStore store_;
  Namespace ns_;
};

Layout OneFileLayout(uint32_t ds, std::string fh) {
  Layout l;
  l.stripe_unit = 65536;
  l.stripe_count = 1;
  l.mirrors.push_back(Mirror{{DataFile{ds, std::move(fh), 1, 1, 0}}, false});
  return l;
}

// An operation under test: `setup` builds the state in a fresh World (returning whatever the
// operation needs through captures), `op` runs it in the given transaction.
struct Scenario {
  const char* name;
  std::function<void(World&)> setup;
  std::function<Status(World&, Txn&)> op;
};

template <typename T>
Status Drop(Result<T> r) {
  return r.status();
}

std::vector<Scenario> Scenarios() {
  static Ino a, b, f, g;  // set by each setup before its op runs
  auto no = [](Ino) { return false; };
  auto yes = [](Ino) { return true; };
  return {
      {"CreateFileWithLayout", [](World&) {},
       [](World& w, Txn& t) {
         CreateArgs c;
         c.layout = OneFileLayout(1, "fh1");
         return Drop(w.ns_.Create(t, kRootIno, "f", c));
       }},
      {"CreateDir", [](World&) {},
       [](World& w, Txn& t) {
         CreateArgs c;
         c.type = FileType::kDir;
         return Drop(w.ns_.Create(t, kRootIno, "d", c));
       }},
      {"Lookup", [](World& w) { w.Make(kRootIno, "x"); },
       [](World& w, Txn& t) { return Drop(w.ns_.Lookup(t, kRootIno, "x")); }},
      {"SetAttr", [](World& w) { f = w.Make(kRootIno, "x"); },
       [](World& w, Txn& t) {
         SetAttrArgs s;
         s.size = 10;
         s.mode = 0600;
         return Drop(w.ns_.SetAttr(t, f, s));
       }},
      {"Link", [](World& w) { f = w.Make(kRootIno, "x"); },
       [](World& w, Txn& t) { return Drop(w.ns_.Link(t, f, kRootIno, "y")); }},
      {"ReadDir",
       [](World& w) {
         w.Make(kRootIno, "x");
         w.Make(kRootIno, "y");
       },
       [](World& w, Txn& t) { return Drop(w.ns_.ReadDir(t, kRootIno, 0, 1)); }},
      {"RemoveWithLayoutAndXattr",
       [](World& w) {
         f = w.Make(kRootIno, "x", FileType::kReg, OneFileLayout(2, "fh2"));
         EXPECT_TRUE(w.PutRaw(keys::Xattr(kFs, f, "user.a"), "v").ok());
       },
       [no](World& w, Txn& t) { return Drop(w.ns_.Remove(t, kRootIno, "x", no)); }},
      {"UnlinkOpenFile", [](World& w) { w.Make(kRootIno, "x"); },
       [yes](World& w, Txn& t) { return Drop(w.ns_.Unlink(t, kRootIno, "x", yes)); }},
      {"UnlinkOneOfTwoLinks",
       [](World& w) {
         f = w.Make(kRootIno, "x");
         EXPECT_TRUE(w.Tx([&](Txn& t) { return w.ns_.Link(t, f, kRootIno, "y"); }).ok());
       },
       [no](World& w, Txn& t) { return Drop(w.ns_.Unlink(t, kRootIno, "x", no)); }},
      {"Rmdir", [](World& w) { w.Make(kRootIno, "d", FileType::kDir); },
       [](World& w, Txn& t) { return Drop(w.ns_.Rmdir(t, kRootIno, "d")); }},
      {"RenameReplacingFileWithLayout",
       [](World& w) {
         w.Make(kRootIno, "x");
         w.Make(kRootIno, "y", FileType::kReg, OneFileLayout(3, "fh3"));
       },
       [no](World& w, Txn& t) { return Drop(w.ns_.Rename(t, kRootIno, "x", kRootIno, "y", no)); }},
      {"RenameDirAcrossDirsOntoEmptyDir",
       [](World& w) {
         a = w.Make(kRootIno, "a", FileType::kDir);
         b = w.Make(kRootIno, "b", FileType::kDir);
         g = w.Make(b, "c", FileType::kDir);
         w.Make(a, "d", FileType::kDir);
         w.Make(g, "e", FileType::kDir);
       },
       [no](World& w, Txn& t) { return Drop(w.ns_.Rename(t, a, "d", g, "e", no)); }},
      {"ReleaseOrphan",
       [yes](World& w) {
         f = w.Make(kRootIno, "x", FileType::kReg, OneFileLayout(4, "fh4"));
         EXPECT_TRUE(w.Tx([&](Txn& t) { return w.ns_.Unlink(t, kRootIno, "x", yes); }).ok());
       },
       [](World& w, Txn& t) { return w.ns_.ReleaseOrphan(t, f); }},
      {"ListOrphansAndGc",
       [yes, no](World& w) {
         w.Make(kRootIno, "x");
         w.Make(kRootIno, "y", FileType::kReg, OneFileLayout(5, "fh5"));
         EXPECT_TRUE(w.Tx([&](Txn& t) { return w.ns_.Unlink(t, kRootIno, "x", yes); }).ok());
         EXPECT_TRUE(w.Tx([&](Txn& t) { return w.ns_.Unlink(t, kRootIno, "y", no); }).ok());
       },
       [](World& w, Txn& t) {
         LOOM_RETURN_IF_ERROR(Drop(w.ns_.ListOrphans(t, 10)));
         auto gc = w.ns_.ListGc(t, 10);
         if (!gc.ok()) return gc.status();
         if (gc->size() != 1) return Status::Internal("expected one GC item");
         return w.ns_.DeleteGc(t, gc->front());
       }},
      {"ReplaceLayout",
       [](World& w) { f = w.Make(kRootIno, "x", FileType::kReg, OneFileLayout(6, "old")); },
       [](World& w, Txn& t) { return w.ns_.ReplaceLayout(t, f, OneFileLayout(7, "new")); }},
      {"MkfsOfAnotherFs", [](World&) {},
       [](World& w, Txn& t) {
         Namespace other(&w.store_, kFs + 1);
         return other.Mkfs(t, 0700, 1, 1);
       }},
  };
}

// Every store call of every operation failing in turn: the operation returns that very error
// (never a success, never another error that would hide an I/O failure from the client).
TEST(NamespaceFaultTest, EveryStoreErrorReachesTheCaller) {
  for (const Scenario& sc : Scenarios()) {
    SCOPED_TRACE(sc.name);
    bool finished = false;
    for (int n = 0; n < 200 && !finished; ++n) {
      World w;
      sc.setup(w);
      auto before = w.Dump();
      auto inner = w.store_.Begin();
      ASSERT_TRUE(inner.ok());
      FaultTxn t(std::move(*inner), FaultTxn::Mode::kFail, n);
      Status s = sc.op(w, t);
      if (!t.fired()) {
        ASSERT_TRUE(s.ok()) << "call " << n << ": " << s.ToString();
        ASSERT_TRUE(t.Commit().ok());
        finished = true;
        continue;
      }
      EXPECT_EQ(s.code(), Code::kIo) << "call " << n << ": " << s.ToString();
      EXPECT_EQ(s.ToString(), FaultTxn::Injected().ToString()) << "call " << n;
      t.Rollback();
      // The inode allocator reserves numbers in transactions of its own (a failed create may
      // waste one, namespace.cc); everything else is as it was.
      auto after = w.Dump();
      after.erase(keys::InoAlloc(kFs));
      before.erase(keys::InoAlloc(kFs));
      EXPECT_EQ(after, before) << "call " << n;
    }
    EXPECT_TRUE(finished) << "operation never completed";
  }
}

// Every record read damaged in turn: the operation refuses with a corrupt-record error, unless
// the value was one the operation only tests for presence (a lock key, an emptiness scan, the
// orphan marker, a raw xattr value).
TEST(NamespaceFaultTest, DamagedRecordsAreRefused) {
  auto presence_only = [](const std::string& k) {
    char tag = k.empty() ? 0 : k[0];
    return tag == tag::kFs || tag == tag::kXattr || tag == tag::kOrphan ||
           tag == tag::kReaddir;
  };
  for (const Scenario& sc : Scenarios()) {
    SCOPED_TRACE(sc.name);
    bool finished = false;
    for (int n = 0; n < 200 && !finished; ++n) {
      World w;
      sc.setup(w);
      auto inner = w.store_.Begin();
      ASSERT_TRUE(inner.ok());
      FaultTxn t(std::move(*inner), FaultTxn::Mode::kDamage, n);
      Status s = sc.op(w, t);
      t.Rollback();
      if (!t.fired()) {
        EXPECT_TRUE(s.ok()) << s.ToString();
        finished = true;
        continue;
      }
      if (s.ok()) {
        EXPECT_TRUE(presence_only(t.damaged_key()))
            << "read " << n << ": damaged record of kind '" << t.damaged_key()[0]
            << "' was accepted";
      } else if (!presence_only(t.damaged_key())) {
        EXPECT_EQ(s.code(), Code::kInternal) << "read " << n << ": " << s.ToString();
      }
    }
    EXPECT_TRUE(finished);
  }
}

// A refusal writes nothing, so a batcher can commit the rest of the transaction.
TEST(NamespaceEdgeTest, RefusalsWriteNothing) {
  World w;
  Ino d = w.Make(kRootIno, "d", FileType::kDir);
  w.Make(d, "inner");
  Ino f = w.Make(kRootIno, "f");
  struct Case {
    const char* what;
    MetaErr want;
    std::function<Status(Txn&)> op;
  };
  CreateArgs file;
  std::vector<Case> cases = {
      {"create existing", MetaErr::kExist,
       [&](Txn& t) { return Drop(w.ns_.Create(t, kRootIno, "f", file)); }},
      {"create in a file", MetaErr::kNotDir,
       [&](Txn& t) { return Drop(w.ns_.Create(t, f, "x", file)); }},
      {"link existing", MetaErr::kExist,
       [&](Txn& t) { return Drop(w.ns_.Link(t, f, kRootIno, "d")); }},
      {"link a directory", MetaErr::kIsDir,
       [&](Txn& t) { return Drop(w.ns_.Link(t, d, kRootIno, "d2")); }},
      {"rmdir non-empty", MetaErr::kNotEmpty,
       [&](Txn& t) { return Drop(w.ns_.Rmdir(t, kRootIno, "d")); }},
      {"rmdir a file", MetaErr::kNotDir,
       [&](Txn& t) { return Drop(w.ns_.Rmdir(t, kRootIno, "f")); }},
      {"unlink a directory", MetaErr::kIsDir,
       [&](Txn& t) { return Drop(w.ns_.Unlink(t, kRootIno, "d", nullptr)); }},
      {"remove missing", MetaErr::kNoEnt,
       [&](Txn& t) { return Drop(w.ns_.Remove(t, kRootIno, "nope", nullptr)); }},
      {"rename missing", MetaErr::kNoEnt,
       [&](Txn& t) { return Drop(w.ns_.Rename(t, kRootIno, "nope", d, "x", nullptr)); }},
      {"set size of a directory", MetaErr::kIsDir,
       [&](Txn& t) {
         SetAttrArgs s;
         s.size = 1;
         return Drop(w.ns_.SetAttr(t, d, s));
       }},
  };
  for (auto& c : cases) {
    SCOPED_TRACE(c.what);
    auto inner = w.store_.Begin();
    ASSERT_TRUE(inner.ok());
    FaultTxn t(std::move(*inner), FaultTxn::Mode::kFail, -1);
    Status s = c.op(t);
    EXPECT_EQ(MetaErrName(ErrOf(s)), MetaErrName(c.want)) << s.ToString();
    EXPECT_EQ(t.writes(), 0);
    t.Rollback();
  }
}

TEST(NamespaceEdgeTest, NamesAreCheckedByEveryOperation) {
  World w;
  Ino f = w.Make(kRootIno, "f");
  const std::string longest(kMaxNameLen, 'n');
  const std::string too_long(kMaxNameLen + 1, 'n');
  for (std::string bad : {std::string(""), std::string("."), std::string(".."),
                          std::string("a/b"), std::string("a\0b", 3)}) {
    SCOPED_TRACE(bad);
    EXPECT_ERR(w.Tx([&](Txn& t) { return w.ns_.Lookup(t, kRootIno, bad); }), kInval);
    EXPECT_ERR(w.Tx([&](Txn& t) { return w.ns_.Create(t, kRootIno, bad, CreateArgs{}); }),
               kInval);
    EXPECT_ERR(w.Tx([&](Txn& t) { return w.ns_.Link(t, f, kRootIno, bad); }), kInval);
    EXPECT_ERR(w.Tx([&](Txn& t) { return w.ns_.Remove(t, kRootIno, bad, nullptr); }), kInval);
    EXPECT_ERR(w.Tx([&](Txn& t) { return w.ns_.Rename(t, kRootIno, bad, kRootIno, "z", nullptr); }),
               kInval);
    EXPECT_ERR(w.Tx([&](Txn& t) { return w.ns_.Rename(t, kRootIno, "f", kRootIno, bad, nullptr); }),
               kInval);
  }
  EXPECT_ERR(w.Tx([&](Txn& t) { return w.ns_.Create(t, kRootIno, too_long, CreateArgs{}); }),
             kNameTooLong);
  EXPECT_ERR(w.Tx([&](Txn& t) { return w.ns_.Rename(t, kRootIno, "f", kRootIno, too_long, nullptr); }),
             kNameTooLong);
  EXPECT_ERR(w.Tx([&](Txn& t) { return w.ns_.Lookup(t, kRootIno, too_long); }), kNameTooLong);
  // NAME_MAX itself is fine.
  ASSERT_OK(w.Tx([&](Txn& t) { return w.ns_.Create(t, kRootIno, longest, CreateArgs{}); }));
  ASSERT_OK(w.Tx([&](Txn& t) { return w.ns_.Lookup(t, kRootIno, longest); }));
}

TEST(NamespaceEdgeTest, CreateRefusesBadArguments) {
  World w;
  Ino f = w.Make(kRootIno, "f");
  auto create = [&](Ino dir, const std::string& name, const CreateArgs& a) {
    return w.Tx([&](Txn& t) { return w.ns_.Create(t, dir, name, a); });
  };
  CreateArgs a;
  a.mode = 0100644;  // S_IFREG in the mode: only permission bits belong there
  EXPECT_ERR(create(kRootIno, "m", a), kInval);
  a = {};
  a.type = FileType::kLnk;
  EXPECT_ERR(create(kRootIno, "l", a), kInval);  // empty target
  a.symlink = std::string(kMaxSymlinkLen + 1, 's');
  EXPECT_ERR(create(kRootIno, "l", a), kNameTooLong);
  a.symlink = std::string(kMaxSymlinkLen, 's');
  auto l = create(kRootIno, "l", a);
  ASSERT_OK(l);
  EXPECT_EQ(l->inode.size, kMaxSymlinkLen);
  a = {};
  a.type = FileType::kDir;
  a.layout = OneFileLayout(1, "fh");
  EXPECT_ERR(create(kRootIno, "dl", a), kInval);
  a = {};
  a.type = FileType::kChr;
  a.rdev_major = 4;
  a.rdev_minor = 64;
  auto c = create(kRootIno, "tty", a);
  ASSERT_OK(c);
  EXPECT_EQ(w.Attr(c->inode.ino).rdev_major, 4u);
  EXPECT_EQ(w.Attr(c->inode.ino).rdev_minor, 64u);
  // A parent that is a file, and one that does not exist.
  EXPECT_ERR(create(f, "x", CreateArgs{}), kNotDir);
  EXPECT_ERR(create(123456, "x", CreateArgs{}), kStale);
  EXPECT_ERR(w.Tx([&](Txn& t) { return w.ns_.Lookup(t, 123456, "x"); }), kStale);
  EXPECT_ERR(w.Tx([&](Txn& t) { return w.ns_.Lookup(t, f, "x"); }), kNotDir);
}

TEST(NamespaceEdgeTest, MalformedLayoutsAreRefused) {
  World w;
  Ino f = w.Make(kRootIno, "f");
  Ino d = w.Make(kRootIno, "d", FileType::kDir);
  std::vector<Layout> bad;
  Layout l = OneFileLayout(1, "fh");
  l.stripe_count = 0;
  bad.push_back(l);
  l = OneFileLayout(1, "fh");
  l.stripe_count = 2;  // one file for two stripes
  bad.push_back(l);
  l = OneFileLayout(1, std::string(kMaxFhLen + 1, 'h'));
  bad.push_back(l);
  l = OneFileLayout(1, "fh");
  l.mirrors.assign(kMaxMirrors + 1, l.mirrors[0]);
  bad.push_back(l);
  l = OneFileLayout(1, "fh");
  l.stripe_count = kMaxStripes + 1;
  bad.push_back(l);
  for (size_t i = 0; i < bad.size(); ++i) {
    SCOPED_TRACE(i);
    CreateArgs a;
    a.layout = bad[i];
    EXPECT_ERR(w.Tx([&](Txn& t) { return w.ns_.Create(t, kRootIno, "g", a); }), kInval);
    EXPECT_ERR(w.Tx([&](Txn& t) { return w.ns_.SetLayout(t, f, bad[i]); }), kInval);
  }
  EXPECT_ERR(w.Tx([&](Txn& t) { return w.ns_.SetLayout(t, d, OneFileLayout(1, "fh")); }),
             kInval);
  EXPECT_ERR(w.Tx([&](Txn& t) { return w.ns_.SetLayout(t, 999999, OneFileLayout(1, "fh")); }),
             kStale);
  EXPECT_ERR(w.Tx([&](Txn& t) { return w.ns_.GetLayout(t, f); }), kNoEnt);
  EXPECT_ERR(w.Tx([&](Txn& t) { return w.ns_.ReplaceLayout(t, f, OneFileLayout(1, "fh")); }),
             kNoEnt);
}

TEST(NamespaceEdgeTest, SetLayoutResolvesIntentsOfItsFilesOnly) {
  World w;
  Ino f = w.Make(kRootIno, "f");
  ASSERT_OK(w.PutRaw(keys::Pending(kFs, f, 1, 0), "x"));
  ASSERT_OK(w.PutRaw(keys::Pending(kFs, f, 2, 0), "x"));
  ASSERT_OK(w.Tx([&](Txn& t) { return w.ns_.SetLayout(t, f, OneFileLayout(1, "fh")); }));
  EXPECT_FALSE(w.Exists(keys::Pending(kFs, f, 1, 0)));
  EXPECT_TRUE(w.Exists(keys::Pending(kFs, f, 2, 0)));  // a failed placement's leftover
}

TEST(NamespaceEdgeTest, ReplaceLayoutQueuesOnlyFilesItDrops) {
  World w;
  Layout old;
  old.stripe_count = 2;
  old.stripe_unit = 4096;
  old.mirrors.push_back(Mirror{{DataFile{1, "keep", 0, 0, 0}, DataFile{2, "drop", 0, 0, 0}}});
  Ino f = w.Make(kRootIno, "f", FileType::kReg, old);
  Layout neu = old;
  neu.mirrors[0].files[1] = DataFile{3, "new", 0, 0, 0};
  ASSERT_OK(w.Tx([&](Txn& t) { return w.ns_.ReplaceLayout(t, f, neu); }));
  auto gc = w.Tx([&](Txn& t) { return w.ns_.ListGc(t, 10); });
  ASSERT_OK(gc);
  ASSERT_EQ(gc->size(), 1u);
  EXPECT_EQ(gc->front().file.ds_id, 2u);
  EXPECT_EQ(gc->front().file.fh, "drop");
  auto got = w.Tx([&](Txn& t) { return w.ns_.GetLayout(t, f); });
  ASSERT_OK(got);
  EXPECT_EQ(*got, neu);
}

TEST(NamespaceEdgeTest, SetAttrTypeRules) {
  World w;
  Ino f = w.Make(kRootIno, "f");
  Ino d = w.Make(kRootIno, "d", FileType::kDir);
  Ino l = w.Make(kRootIno, "l", FileType::kLnk);
  auto set = [&](Ino ino, SetAttrArgs a) {
    return w.Tx([&](Txn& t) { return w.ns_.SetAttr(t, ino, a); });
  };
  SetAttrArgs a;
  a.mode = 0170755;
  EXPECT_ERR(set(f, a), kInval);
  a = {};
  a.size = 0;
  EXPECT_ERR(set(l, a), kInval);
  EXPECT_ERR(set(d, a), kIsDir);
  a = {};
  a.size_at_least = 100;
  EXPECT_ERR(set(l, a), kInval);
  EXPECT_ERR(set(9999999, a), kStale);
  // size_at_least never shrinks.
  a = {};
  a.size = 50;
  ASSERT_OK(set(f, a));
  a = {};
  a.size_at_least = 10;
  auto r = set(f, a);
  ASSERT_OK(r);
  EXPECT_EQ(r->size, 50u);
  a.size_at_least = 70;
  r = set(f, a);
  ASSERT_OK(r);
  EXPECT_EQ(r->size, 70u);
  // kill_setid: S_ISGID goes only with group execute; directories keep theirs.
  a = {};
  a.mode = 06755;
  a.kill_setid = true;
  r = set(f, a);
  ASSERT_OK(r);
  EXPECT_EQ(r->mode, 0755u);
  a.mode = 06745;
  r = set(f, a);
  ASSERT_OK(r);
  EXPECT_EQ(r->mode, 02745u);
  a.mode = 06755;
  r = set(d, a);
  ASSERT_OK(r);
  EXPECT_EQ(r->mode, 06755u);
  // Explicit times and owners stick; change goes up by one per SETATTR.
  uint64_t change = w.Attr(f).change;
  a = {};
  a.uid = 5;
  a.gid = 6;
  a.atime = Timespec{100, 1};
  a.mtime = Timespec{200, 2};
  r = set(f, a);
  ASSERT_OK(r);
  EXPECT_EQ(r->uid, 5u);
  EXPECT_EQ(r->gid, 6u);
  EXPECT_EQ(r->atime, (Timespec{100, 1}));
  EXPECT_EQ(r->mtime, (Timespec{200, 2}));
  EXPECT_EQ(r->change, change + 1);
}

TEST(NamespaceEdgeTest, LinkRules) {
  World w;
  Ino f = w.Make(kRootIno, "f");
  Ino d = w.Make(kRootIno, "d", FileType::kDir);
  EXPECT_ERR(w.Tx([&](Txn& t) { return w.ns_.Link(t, f, d + 1000, "x"); }), kStale);
  EXPECT_ERR(w.Tx([&](Txn& t) { return w.ns_.Link(t, f, f, "x"); }), kNotDir);
  EXPECT_ERR(w.Tx([&](Txn& t) { return w.ns_.Link(t, 777777, d, "x"); }), kStale);
  auto ci = w.Tx([&](Txn& t) { return w.ns_.Link(t, f, d, "x"); });
  ASSERT_OK(ci);
  EXPECT_EQ(ci->after, ci->before + 1);
  EXPECT_EQ(w.Attr(f).nlink, 2u);
  // At the link limit (a record written as if it had that many names).
  Inode n = w.Attr(f);
  n.nlink = kMaxLink;
  ASSERT_OK(w.PutRaw(keys::Inode(kFs, f), Encode(n)));
  EXPECT_ERR(w.Tx([&](Txn& t) { return w.ns_.Link(t, f, d, "y"); }), kMLink);
  // An orphan (nlink 0) gets no new name.
  n.nlink = 0;
  ASSERT_OK(w.PutRaw(keys::Inode(kFs, f), Encode(n)));
  EXPECT_ERR(w.Tx([&](Txn& t) { return w.ns_.Link(t, f, d, "y"); }), kNoEnt);
  // A directory with the most subdirectories allowed takes no more.
  Inode dir = w.Attr(d);
  dir.nlink = kMaxLink;
  ASSERT_OK(w.PutRaw(keys::Inode(kFs, d), Encode(dir)));
  CreateArgs sub;
  sub.type = FileType::kDir;
  EXPECT_ERR(w.Tx([&](Txn& t) { return w.ns_.Create(t, d, "sub", sub); }), kMLink);
  ASSERT_OK(w.Tx([&](Txn& t) { return w.ns_.Create(t, d, "file", CreateArgs{}); }));
}

TEST(NamespaceEdgeTest, RenameRefusals) {
  World w;
  Ino a = w.Make(kRootIno, "a", FileType::kDir);
  Ino b = w.Make(a, "b", FileType::kDir);
  Ino c = w.Make(b, "c", FileType::kDir);
  w.Make(kRootIno, "f");
  w.Make(kRootIno, "full", FileType::kDir);
  w.Make(kRootIno, "g");
  Ino full = 0;
  {
    auto r = w.Tx([&](Txn& t) { return w.ns_.Lookup(t, kRootIno, "full"); });
    ASSERT_OK(r);
    full = r->ino;
  }
  w.Make(full, "inside");
  auto rename = [&](Ino sd, std::string sn, Ino dd, std::string dn) {
    return w.Tx([&](Txn& t) { return w.ns_.Rename(t, sd, sn, dd, dn, nullptr); });
  };
  // Into its own subtree: directly below itself and further down.
  EXPECT_ERR(rename(kRootIno, "a", a, "x"), kInval);
  EXPECT_ERR(rename(kRootIno, "a", c, "x"), kInval);
  EXPECT_ERR(rename(a, "b", c, "x"), kInval);
  // Type mismatches and a non-empty target.
  EXPECT_ERR(rename(kRootIno, "f", kRootIno, "a"), kIsDir);
  EXPECT_ERR(rename(kRootIno, "a", kRootIno, "f"), kNotDir);
  EXPECT_ERR(rename(b, "c", kRootIno, "full"), kNotEmpty);
  EXPECT_ERR(rename(kRootIno, "f", 55555, "x"), kStale);
  EXPECT_ERR(rename(kRootIno, "f", kRootIno, "f/"), kInval);
  // The tree is as it was.
  EXPECT_EQ(w.Attr(c).parent, b);
  EXPECT_EQ(w.Attr(b).parent, a);
  EXPECT_EQ(w.Attr(kRootIno).nlink, 4u);  // ".", "..", a and full

  // A check function sees the locked objects and its refusal wins.
  int calls = 0;
  auto r = w.Tx([&](Txn& t) {
    return w.ns_.Rename(t, kRootIno, "f", kRootIno, "g", nullptr,
                        [&](const Inode& sd, const Inode& so, const Inode& dd, const Inode* dobj) {
                          ++calls;
                          EXPECT_EQ(sd.ino, kRootIno);
                          EXPECT_EQ(dd.ino, kRootIno);
                          EXPECT_EQ(so.type, FileType::kReg);
                          EXPECT_NE(dobj, nullptr);
                          return MetaError(MetaErr::kXDev, "refused by check");
                        });
  });
  EXPECT_ERR(r, kXDev);
  EXPECT_GE(calls, 1);
  ASSERT_OK(w.Tx([&](Txn& t) { return w.ns_.Lookup(t, kRootIno, "f"); }));
}

TEST(NamespaceEdgeTest, DirectoryMoveFixesLinkCountsAndParent) {
  World w;
  Ino a = w.Make(kRootIno, "a", FileType::kDir);
  Ino b = w.Make(kRootIno, "b", FileType::kDir);
  Ino d = w.Make(a, "d", FileType::kDir);
  Ino e = w.Make(b, "e", FileType::kDir);
  auto r = w.Tx([&](Txn& t) { return w.ns_.Rename(t, a, "d", b, "e", nullptr); });
  ASSERT_OK(r);
  ASSERT_TRUE(r->replaced.has_value());
  EXPECT_EQ(r->replaced->ino, e);
  EXPECT_EQ(r->replaced->type, FileType::kDir);
  EXPECT_EQ(r->replaced->nlink, 0u);
  EXPECT_EQ(w.Attr(a).nlink, 2u);
  EXPECT_EQ(w.Attr(b).nlink, 3u);  // lost e's "..", gained d's
  EXPECT_EQ(w.Attr(d).parent, b);
  EXPECT_NE(r->src_dir.after, r->src_dir.before);
  EXPECT_NE(r->dst_dir.after, r->dst_dir.before);
  EXPECT_FALSE(w.Exists(keys::Inode(kFs, e)));
  // Moving back up and across is fine too (the walk reaches the root).
  ASSERT_OK(w.Tx([&](Txn& t) { return w.ns_.Rename(t, b, "e", kRootIno, "top", nullptr); }));
  EXPECT_EQ(w.Attr(d).parent, kRootIno);
  EXPECT_EQ(w.Attr(kRootIno).nlink, 5u);
}

TEST(NamespaceEdgeTest, RenameOntoAnotherLinkOfTheSameFileDoesNothing) {
  World w;
  Ino f = w.Make(kRootIno, "f");
  ASSERT_OK(w.Tx([&](Txn& t) { return w.ns_.Link(t, f, kRootIno, "g"); }));
  auto before = w.Dump();
  auto r = w.Tx([&](Txn& t) { return w.ns_.Rename(t, kRootIno, "f", kRootIno, "g", nullptr); });
  ASSERT_OK(r);
  EXPECT_FALSE(r->replaced.has_value());
  EXPECT_EQ(r->src_dir.before, r->src_dir.after);
  EXPECT_EQ(w.Dump(), before);
}

TEST(NamespaceEdgeTest, RenameThroughACycleIsAnInternalError) {
  World w;
  Ino x = w.Make(kRootIno, "x", FileType::kDir);
  Ino a = w.Make(kRootIno, "a", FileType::kDir);
  Ino b = w.Make(a, "b", FileType::kDir);
  // Damage: a and b each name the other as parent, so the walk from b never meets the root.
  Inode ai = w.Attr(a);
  ai.parent = b;
  ASSERT_OK(w.PutRaw(keys::Inode(kFs, a), Encode(ai)));
  auto r = w.Tx([&](Txn& t) { return w.ns_.Rename(t, kRootIno, "x", b, "x", nullptr); });
  EXPECT_EQ(r.status().code(), Code::kInternal) << r.status().ToString();
  EXPECT_EQ(w.Attr(x).parent, kRootIno);
}

TEST(NamespaceEdgeTest, RemoveCheckAndOrphanLifecycle) {
  World w;
  Ino f = w.Make(kRootIno, "f", FileType::kReg, OneFileLayout(1, "fh"));
  // The check sees the locked directory and object and can refuse (e.g. the sticky bit).
  auto refused = w.Tx([&](Txn& t) {
    return w.ns_.Remove(t, kRootIno, "f", nullptr, [&](const Inode& dir, const Inode& obj) {
      EXPECT_EQ(dir.ino, kRootIno);
      EXPECT_EQ(obj.ino, f);
      return MetaError(MetaErr::kInval, "sticky");
    });
  });
  EXPECT_ERR(refused, kInval);
  EXPECT_EQ(w.Attr(f).nlink, 1u);

  auto r = w.Tx([&](Txn& t) { return w.ns_.Remove(t, kRootIno, "f", [](Ino) { return true; }); });
  ASSERT_OK(r);
  EXPECT_TRUE(r->obj.orphaned);
  EXPECT_EQ(r->obj.gc_items, 0u);
  EXPECT_TRUE(w.Exists(keys::Layout(kFs, f)));  // open state still reads it
  auto orphans = w.Tx([&](Txn& t) { return w.ns_.ListOrphans(t, 0); });
  ASSERT_OK(orphans);
  ASSERT_EQ(orphans->size(), 1u);
  EXPECT_EQ(orphans->front().ino, f);
  // Releasing a non-orphan does nothing; releasing the orphan deletes it and queues its file.
  ASSERT_OK(w.Tx([&](Txn& t) { return w.ns_.ReleaseOrphan(t, kRootIno); }));
  EXPECT_TRUE(w.Exists(keys::Inode(kFs, kRootIno)));
  ASSERT_OK(w.Tx([&](Txn& t) { return w.ns_.ReleaseOrphan(t, f); }));
  EXPECT_FALSE(w.Exists(keys::Inode(kFs, f)));
  EXPECT_FALSE(w.Exists(keys::Orphan(kFs, f)));
  auto gc = w.Tx([&](Txn& t) { return w.ns_.ListGc(t, 0); });
  ASSERT_OK(gc);
  ASSERT_EQ(gc->size(), 1u);
  EXPECT_EQ(gc->front().file.fh, "fh");
  ASSERT_OK(w.Tx([&](Txn& t) { return w.ns_.DeleteGc(t, gc->front()); }));
  gc = w.Tx([&](Txn& t) { return w.ns_.ListGc(t, 0); });
  ASSERT_OK(gc);
  EXPECT_TRUE(gc->empty());
}

TEST(NamespaceEdgeTest, OrphanThatRegainedANameIsKept) {
  World w;
  Ino f = w.Make(kRootIno, "f");
  // An orphan record left behind for a file that has a name (nlink 1): release keeps the
  // file and drops only the record.
  ASSERT_OK(w.PutRaw(keys::Orphan(kFs, f), Encode(Orphan{f, NowRealtime()})));
  ASSERT_OK(w.Tx([&](Txn& t) { return w.ns_.ReleaseOrphan(t, f); }));
  EXPECT_FALSE(w.Exists(keys::Orphan(kFs, f)));
  EXPECT_EQ(w.Attr(f).nlink, 1u);
  // An orphan record whose inode is gone is a stale reference.
  ASSERT_OK(w.PutRaw(keys::Orphan(kFs, 424242), Encode(Orphan{424242, NowRealtime()})));
  EXPECT_ERR(w.Tx([&](Txn& t) { return w.ns_.ReleaseOrphan(t, 424242); }), kStale);
}

TEST(NamespaceEdgeTest, RemovingAnEntryWhoseInodeIsGoneIsStale) {
  World w;
  Ino f = w.Make(kRootIno, "f");
  Ino d = w.Make(kRootIno, "d", FileType::kDir);
  Ino g = w.Make(d, "g");
  ASSERT_OK(w.Tx([&](Txn& t) { return t.Delete(keys::Inode(kFs, f)); }));
  ASSERT_OK(w.Tx([&](Txn& t) { return t.Delete(keys::Inode(kFs, g)); }));
  EXPECT_ERR(w.Tx([&](Txn& t) { return w.ns_.Remove(t, kRootIno, "f", nullptr); }), kStale);
  EXPECT_ERR(w.Tx([&](Txn& t) { return w.ns_.Rename(t, d, "g", kRootIno, "f", nullptr); }),
             kStale);
  EXPECT_ERR(w.Tx([&](Txn& t) { return w.ns_.Remove(t, 31337, "f", nullptr); }), kStale);
}

TEST(NamespaceEdgeTest, ReadDirArguments) {
  World w;
  Ino f = w.Make(kRootIno, "f");
  w.Make(kRootIno, "g");
  auto rd = [&](Ino dir, uint64_t cookie, size_t n) {
    return w.Tx([&](Txn& t) { return w.ns_.ReadDir(t, dir, cookie, n); });
  };
  EXPECT_ERR(rd(kRootIno, 0, 0), kInval);
  EXPECT_ERR(rd(f, 0, 10), kNotDir);
  EXPECT_ERR(rd(9090909, 0, 10), kStale);
  EXPECT_ERR(rd(kRootIno, 1, 10), kBadCookie);
  EXPECT_ERR(rd(kRootIno, 2, 10), kBadCookie);
  EXPECT_ERR(rd(kRootIno, kFirstCookie + 2, 10), kBadCookie);  // never handed out
  auto p = rd(kRootIno, 0, 1);
  ASSERT_OK(p);
  ASSERT_EQ(p->entries.size(), 1u);
  EXPECT_FALSE(p->eof);
  p = rd(kRootIno, p->entries[0].cookie, 1);
  ASSERT_OK(p);
  ASSERT_EQ(p->entries.size(), 1u);
  EXPECT_EQ(p->entries[0].name, "g");
  EXPECT_TRUE(p->eof);
  // The last cookie handed out is still valid and yields an empty last page.
  p = rd(kRootIno, p->entries[0].cookie, 1);
  ASSERT_OK(p);
  EXPECT_TRUE(p->entries.empty());
  EXPECT_TRUE(p->eof);
}

TEST(NamespaceEdgeTest, MkfsTwiceIsExist) {
  World w;
  EXPECT_ERR(w.Tx([&](Txn& t) { return w.ns_.Mkfs(t, 0755, 0, 0); }), kExist);
  EXPECT_EQ(w.ns_.root(), kRootIno);
  EXPECT_EQ(w.ns_.fsid(), kFs);
}

// RunTxn's driver: conflicts are retried up to the limit, other errors end it at once, and a
// store that cannot begin a transaction never runs the operation.
TEST(RunTxnEdgeTest, RetriesOnlyConflictsAndStopsAtTheLimit) {
  MemKvStore store;
  int calls = 0;
  Status s = RunTxn(
      store,
      [&](Txn&) {
        ++calls;
        return Status(Code::kConflict, "busy");
      },
      3);
  EXPECT_EQ(s.code(), Code::kConflict);
  EXPECT_EQ(calls, 4);  // the first attempt and three retries

  calls = 0;
  s = RunTxn(store, [&](Txn&) {
    ++calls;
    return Status(Code::kIo, "disk");
  });
  EXPECT_EQ(s.code(), Code::kIo);
  EXPECT_EQ(calls, 1);

  // A Result that conflicts twice, then commits: the value of the committed attempt, and
  // the writes of the failed attempts are gone.
  calls = 0;
  auto r = RunTxn(store, [&](Txn& t) -> Result<int> {
    ++calls;
    Status p = t.Put("attempt" + std::to_string(calls), "x");
    if (!p.ok()) return p;
    if (calls < 3) return Status(Code::kConflict, "again");
    return calls * 10;
  });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, 30);
  auto seen = RunTxn(store, [&](Txn& t) -> Result<std::vector<std::string>> {
    std::vector<std::string> keys;
    Status st = t.Scan(KeyRange{"", ""}, 0, [&](std::string_view k, std::string_view) {
      keys.emplace_back(k);
      return true;
    });
    if (!st.ok()) return st;
    return keys;
  });
  ASSERT_TRUE(seen.ok());
  EXPECT_EQ(*seen, std::vector<std::string>{"attempt3"});
}

class NoBeginStore : public KvStore {
 public:
  Result<std::unique_ptr<Txn>> Begin() override { return Status(Code::kUnavailable, "down"); }
  Status Sync() override { return Status::Ok(); }
  void WhenDurable(uint64_t, std::function<void()> fn) override { fn(); }
  void WaitUntilDurable(uint64_t) override {}
};

TEST(RunTxnEdgeTest, StoreThatCannotBeginRunsNothing) {
  NoBeginStore store;
  int calls = 0;
  Status s = RunTxn(store, [&](Txn&) {
    ++calls;
    return Status::Ok();
  });
  EXPECT_EQ(s.code(), Code::kUnavailable);
  EXPECT_EQ(calls, 0);
  auto r = RunTxn(store, [&](Txn&) -> Result<int> { return 1; });
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
}

}  // namespace
}  // namespace loom::meta
