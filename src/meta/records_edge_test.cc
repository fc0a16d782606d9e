// Every record decoder refuses damaged input cleanly (kInternal, never a crash or a partly
// filled record taken as good): each strict prefix of a valid record, a trailing byte, a wrong
// kind byte, versions it does not know, the bytes of every other record type, and field values
// out of range. Plus the small stores built on records: client state and the inode allocator.
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "meta/client_state.h"
#include "meta/inode_alloc.h"
#include "meta/mem_kv.h"
#include "meta/records.h"

namespace loom::meta {
namespace {

// A record type under test: a valid encoding and a decoder that reports only its Status.
struct Kind {
  const char* name;
  std::string encoded;
  std::function<Status(std::string_view)> decode;
};

template <typename R>
Kind Make(const char* name, const R& sample) {
  return Kind{name, Encode(sample), [](std::string_view in) {
                R r;
                return Decode(in, &r);
              }};
}

std::vector<Kind> AllKinds() {
  Inode n;
  n.ino = 42;
  n.type = FileType::kLnk;
  n.mode = 0777;
  n.nlink = 1;
  n.symlink = "target";
  n.size = 6;
  n.next_cookie = 3;
  Layout l;
  l.stripe_unit = 1 << 16;
  l.stripe_count = 2;
  l.generation = 9;
  l.mirrors.push_back(Mirror{{DataFile{1, "fh-a", 5, 6, 1}, DataFile{2, "fh-b", 5, 6, 2}}, true});
  DataServerRecord ds;
  ds.uuid = std::string(16, 'u');
  ds.id = 3;
  ds.address = "10.0.0.1:2049";
  ds.advertised_address = "ds1:2049";
  ds.labels = {"rack=a", "ssd"};
  ds.draining = true;
  ClientRecord c;
  c.clientid = 77;
  c.owner = "client-owner";
  c.verifier = 0x1234;
  c.flags = ClientRecord::kConfirmed;
  return {
      Make("fs", FsInfo{7, 1, Timespec{10, 20}}),
      Make("inode", n),
      Make("dentry", Dentry{"name", 42, FileType::kDir, 5}),
      Make("layout", l),
      Make("orphan", Orphan{42, Timespec{1, 2}}),
      Make("gc", GcItem{42, DataFile{1, "fh", 0, 0, 4}, Timespec{3, 4}}),
      Make("pending", PendingFile{42, 1, Timespec{5, 6}, 2}),
      Make("identity", FsIdentity{std::string(16, 'x'), "tree", Timespec{7, 8}}),
      Make("data server", ds),
      Make("client", c),
      Make("grace", GraceState{4, 3, true}),
      Kind{"counter", EncodeU64(1000),
           [](std::string_view in) {
             uint64_t v;
             return DecodeU64(in, &v);
           }},
  };
}

TEST(RecordsEdgeTest, ValidRecordsDecode) {
  for (const Kind& k : AllKinds()) {
    Status s = k.decode(k.encoded);
    EXPECT_TRUE(s.ok()) << k.name << ": " << s.ToString();
  }
}

TEST(RecordsEdgeTest, EveryTruncationIsRefused) {
  for (const Kind& k : AllKinds()) {
    for (size_t len = 0; len < k.encoded.size(); ++len) {
      Status s = k.decode(std::string_view(k.encoded).substr(0, len));
      EXPECT_EQ(s.code(), Code::kInternal) << k.name << " cut to " << len << " bytes";
    }
  }
}

TEST(RecordsEdgeTest, TrailingBytesAreRefused) {
  for (const Kind& k : AllKinds()) {
    Status s = k.decode(k.encoded + '\0');
    EXPECT_EQ(s.code(), Code::kInternal) << k.name;
    EXPECT_NE(s.message().find("corrupt"), std::string::npos) << s.ToString();
  }
}

TEST(RecordsEdgeTest, UnknownVersionsAreRefused) {
  for (const Kind& k : AllKinds()) {
    for (uint8_t v : {uint8_t{0}, uint8_t{0x7f}, uint8_t{0xff}}) {
      std::string bad = k.encoded;
      bad[1] = static_cast<char>(v);
      Status s = k.decode(bad);
      EXPECT_EQ(s.code(), Code::kInternal) << k.name << " version " << int(v);
      EXPECT_NE(s.message().find("unsupported version"), std::string::npos) << s.ToString();
    }
  }
}

TEST(RecordsEdgeTest, OtherRecordTypesAreRefused) {
  auto kinds = AllKinds();
  for (const Kind& decoder : kinds) {
    for (const Kind& other : kinds) {
      if (&decoder == &other) continue;
      Status s = decoder.decode(other.encoded);
      EXPECT_EQ(s.code(), Code::kInternal) << decoder.name << " given a " << other.name;
      EXPECT_NE(s.message().find("wrong kind"), std::string::npos) << s.ToString();
    }
  }
}

TEST(RecordsEdgeTest, OutOfRangeFieldsAreRefused) {
  auto refused = [](auto rec, const char* what) {
    decltype(rec) out;
    Status s = Decode(Encode(rec), &out);
    EXPECT_EQ(s.code(), Code::kInternal) << what;
  };
  Inode n;
  n.mode = 0100644;  // type bits belong in `type`, not in mode
  refused(n, "inode mode with type bits");
  n = Inode{};
  n.type = static_cast<FileType>(0);
  refused(n, "inode type 0");
  n.type = static_cast<FileType>(8);
  refused(n, "inode type 8");
  n = Inode{};
  n.symlink = std::string(kMaxSymlinkLen + 1, 's');
  refused(n, "symlink over PATH_MAX");
  refused(Dentry{std::string(kMaxNameLen + 1, 'n'), 1, FileType::kReg, 3}, "name over NAME_MAX");
  refused(Dentry{"n", 1, static_cast<FileType>(9), 3}, "dentry type 9");
  Layout l;
  l.stripe_count = 0;
  refused(l, "layout of zero stripes");
  l.stripe_count = kMaxStripes + 1;
  refused(l, "layout over the stripe limit");
  l = Layout{};
  l.mirrors.assign(kMaxMirrors + 1, Mirror{{DataFile{1, "f", 0, 0, 0}}, false});
  refused(l, "layout over the mirror limit");
  l = Layout{};
  l.mirrors.push_back(Mirror{{DataFile{1, std::string(kMaxFhLen + 1, 'h'), 0, 0, 0}}, false});
  refused(l, "file handle over the limit");
  refused(FsIdentity{"short", "tree", {}}, "uuid of 5 bytes");
  refused(FsIdentity{std::string(16, 'u'), "", {}}, "empty tree name");
  DataServerRecord ds;
  ds.uuid = std::string(16, 'u');
  ds.id = 0;
  ds.address = "a:1";
  refused(ds, "data server id 0");
  ds.id = 1;
  ds.uuid = "u";
  refused(ds, "data server uuid of 1 byte");
  ClientRecord c;
  c.owner = std::string(kMaxClientOwnerLen + 1, 'o');
  refused(c, "client owner over the limit");
  // A boolean byte other than 0 or 1.
  std::string g = Encode(GraceState{1, 1, true});
  g.back() = 2;
  GraceState gs;
  EXPECT_EQ(Decode(g, &gs).code(), Code::kInternal);
}

TEST(RecordsEdgeTest, ClientStateStore) {
  MemKvStore store;
  auto tx = [&](auto f) { return RunTxn(store, f); };
  ClientRecord big;
  big.clientid = 1;
  big.owner = std::string(kMaxClientOwnerLen + 1, 'o');
  EXPECT_EQ(tx([&](Txn& t) { return PutClient(t, big); }).code(), Code::kTooLarge);
  ClientRecord a{5, "owner-a", 1, ClientRecord::kConfirmed, Timespec{1, 1}};
  ClientRecord b{6, "owner-b", 2, 0, Timespec{2, 2}};
  ASSERT_TRUE(tx([&](Txn& t) { return PutClient(t, a); }).ok());
  ASSERT_TRUE(tx([&](Txn& t) { return PutClient(t, b); }).ok());
  auto got = tx([&](Txn& t) { return GetClient(t, 5, true); });
  ASSERT_TRUE(got.ok());
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ(**got, a);
  auto missing = tx([&](Txn& t) { return GetClient(t, 99, false); });
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
  auto all = tx([&](Txn& t) { return ListClients(t); });
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(*all, (std::vector<ClientRecord>{a, b}));
  ASSERT_TRUE(tx([&](Txn& t) { return DeleteClient(t, 5); }).ok());
  all = tx([&](Txn& t) { return ListClients(t); });
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(*all, (std::vector<ClientRecord>{b}));
  // A damaged client record fails the listing and the lookup, not silently skipped.
  ASSERT_TRUE(tx([&](Txn& t) { return t.Put(keys::Client(6), "C\x01junk"); }).ok());
  EXPECT_EQ(tx([&](Txn& t) { return ListClients(t); }).status().code(), Code::kInternal);
  EXPECT_EQ(tx([&](Txn& t) { return GetClient(t, 6, false); }).status().code(), Code::kInternal);
  // Grace state per server name.
  ASSERT_TRUE(tx([&](Txn& t) { return PutGrace(t, "mds-a", GraceState{3, 2, true}); }).ok());
  auto grace = tx([&](Txn& t) { return GetGrace(t, "mds-a", false); });
  ASSERT_TRUE(grace.ok());
  ASSERT_TRUE(grace->has_value());
  EXPECT_EQ(**grace, (GraceState{3, 2, true}));
  auto none = tx([&](Txn& t) { return GetGrace(t, "mds-b", true); });
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

TEST(RecordsEdgeTest, InodeAllocatorNeedsAMadeFilesystemAndAGoodCounter) {
  MemKvStore store;
  InodeAllocator unmade(&store, 3, 4);
  auto r = unmade.Allocate();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNotFound);
  // Damaged counter record.
  ASSERT_TRUE(RunTxn(store, [&](Txn& t) { return t.Put(keys::InoAlloc(3), "N\x01"); }).ok());
  EXPECT_EQ(unmade.Allocate().status().code(), Code::kInternal);
  // A good one: numbers come in blocks, consecutive, and the next block is reserved.
  ASSERT_TRUE(RunTxn(store, [&](Txn& t) { return t.Put(keys::InoAlloc(3), EncodeU64(100)); }).ok());
  InodeAllocator alloc(&store, 3, 4);
  for (Ino want = 100; want < 106; ++want) {
    auto ino = alloc.Allocate();
    ASSERT_TRUE(ino.ok());
    EXPECT_EQ(*ino, want);
  }
  auto counter = RunTxn(store, [&](Txn& t) { return t.Get(keys::InoAlloc(3)); });
  ASSERT_TRUE(counter.ok() && counter->has_value());
  uint64_t next = 0;
  ASSERT_TRUE(DecodeU64(**counter, &next).ok());
  EXPECT_EQ(next, 108u);
}

}  // namespace
}  // namespace loom::meta
