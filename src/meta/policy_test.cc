// Placement policies (meta/policy.h): the record's codec, its limits, and how a new file's
// effective policy is resolved from the nearest directories that set each field.
#include "meta/policy.h"

#include <string>

#include <gtest/gtest.h>

#include "meta/errors.h"
#include "meta/keys.h"
#include "meta/mem_kv.h"
#include "meta/namespace.h"

namespace loom::meta {
namespace {

constexpr FsId kFs = 3;

PlacementPolicy Full() {
  PlacementPolicy p;
  p.mirrors = 2;
  p.stripes = 0x01020304;             // every byte distinct: a swapped byte shows
  p.stripe_unit = 0x0102030405060708ull;
  p.labels = {"site=a", "tier=ssd", ""};
  return p;
}

TEST(PolicyCodecTest, RoundTrips) {
  for (const PlacementPolicy& p : {PlacementPolicy{}, Full()}) {
    PlacementPolicy out;
    out.mirrors = 99;  // overwritten
    out.labels = {"stale=1"};
    ASSERT_TRUE(Decode(Encode(p), &out).ok());
    EXPECT_EQ(out, p);
  }
  // The largest record the decoder accepts: 16 labels of 512 bytes.
  PlacementPolicy big;
  for (int i = 0; i < 16; i++) big.labels.push_back(std::string(512, static_cast<char>('a' + i)));
  PlacementPolicy out;
  ASSERT_TRUE(Decode(Encode(big), &out).ok());
  EXPECT_EQ(out, big);
}

TEST(PolicyCodecTest, FixedWireFormat) {
  // A stored record must read the same after an upgrade: kind 'P', version 1, big-endian.
  PlacementPolicy p;
  p.mirrors = 1;
  p.stripes = 2;
  p.stripe_unit = 4096;
  p.labels = {"k=v"};
  const std::string want("P\x01"
                         "\0\0\0\x01"
                         "\0\0\0\x02"
                         "\0\0\0\0\0\0\x10\0"
                         "\0\0\0\x01"
                         "\0\0\0\x03k=v",
                         2 + 4 + 4 + 8 + 4 + 4 + 3);
  EXPECT_EQ(Encode(p), want);
}

TEST(PolicyCodecTest, RefusesDamagedRecords) {
  const std::string good = Encode(Full());
  auto refused = [](std::string_view in) {
    PlacementPolicy out = Full();
    Status s = Decode(in, &out);
    EXPECT_EQ(s.code(), Code::kInternal) << s.ToString();
    EXPECT_NE(s.ToString().find("damaged placement policy"), std::string::npos) << s.ToString();
    EXPECT_EQ(out, Full()) << "a refused record must leave the output alone";
  };
  refused("");
  refused("P");
  std::string wrong_kind = good;
  wrong_kind[0] = 'Q';
  refused(wrong_kind);
  std::string v0 = good;
  v0[1] = 0;
  refused(v0);
  std::string newer = good;  // a version this build does not know
  newer[1] = 2;
  refused(newer);
  // Cut anywhere: every field's bound is checked.
  for (size_t n = 2; n < good.size(); n++) refused(good.substr(0, n));
  refused(good + "x");  // trailing bytes
  // A label count over 16, and a label over 512 bytes, even when the bytes are there.
  PlacementPolicy many;
  for (int i = 0; i < 17; i++) many.labels.push_back("k=v");
  refused(Encode(many));
  PlacementPolicy long_label;
  long_label.labels = {std::string(513, 'x')};
  refused(Encode(long_label));
  // A length that claims more than is left.
  std::string claim = Encode(PlacementPolicy{.labels = {"ab"}});
  claim[claim.size() - 3] = 9;  // length 2 -> 9
  refused(claim);
}

class PolicyStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(RunTxn(store_, [&](Txn& t) { return ns_.Mkfs(t, 0755, 0, 0); }).ok());
  }
  Ino Make(Ino parent, const char* name, FileType type = FileType::kDir) {
    CreateArgs a;
    a.type = type;
    auto r = RunTxn(store_, [&](Txn& t) { return ns_.Create(t, parent, name, a); });
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r->inode.ino : 0;
  }
  Status Put(Ino dir, const std::optional<PlacementPolicy>& p) {
    return RunTxn(store_, [&](Txn& t) { return PutPolicy(t, kFs, dir, p); });
  }
  Result<std::optional<PlacementPolicy>> Get(Ino dir) {
    return RunTxn(store_, [&](Txn& t) { return GetPolicy(t, kFs, dir); });
  }
  Result<PlacementPolicy> Effective(Ino dir) {
    return RunTxn(store_, [&](Txn& t) { return EffectivePolicy(t, ns_, dir); });
  }

  MemKvStore store_;
  Namespace ns_{&store_, kFs};
};

TEST_F(PolicyStoreTest, PutGetAndClear) {
  const Ino d = Make(ns_.root(), "d");
  auto none = Get(d);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  ASSERT_TRUE(Put(d, Full()).ok());
  auto got = Get(d);
  ASSERT_TRUE(got.ok());
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ(**got, Full());
  // Another filesystem's directory of the same number is another record.
  auto other = RunTxn(store_, [&](Txn& t) { return GetPolicy(t, kFs + 1, d); });
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(other->has_value());
  ASSERT_TRUE(Put(d, std::nullopt).ok());
  got = Get(d);
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->has_value());
  ASSERT_TRUE(Put(d, std::nullopt).ok());  // clearing nothing is fine
}

TEST_F(PolicyStoreTest, DamagedRecordIsAnErrorNotADefault) {
  // A policy that cannot be read must not silently become "no policy": files would be placed
  // against the operator's wishes (say, on the wrong site).
  const Ino d = Make(ns_.root(), "d");
  const Ino sub = Make(d, "sub");
  ASSERT_TRUE(RunTxn(store_, [&](Txn& t) { return t.Put(keys::Policy(kFs, d), "garbage"); }).ok());
  EXPECT_EQ(Get(d).status().code(), Code::kInternal);
  EXPECT_EQ(Effective(sub).status().code(), Code::kInternal);
}

TEST_F(PolicyStoreTest, RefusesWhatItCouldNotReadBack) {
  // `loom policy set DIR --label ...` takes any number of labels; a policy over the record's
  // limits must be refused when it is set, not stored and then found "damaged" by every
  // create under DIR.
  const Ino d = Make(ns_.root(), "d");
  PlacementPolicy keep;
  keep.mirrors = 2;
  ASSERT_TRUE(Put(d, keep).ok());
  PlacementPolicy many;
  for (int i = 0; i < 17; i++) many.labels.push_back("k" + std::to_string(i) + "=v");
  Status s = Put(d, many);
  EXPECT_EQ(s.code(), Code::kInvalidArgument) << s.ToString();
  PlacementPolicy long_label;
  long_label.labels = {"k=" + std::string(511, 'v')};
  s = Put(d, long_label);
  EXPECT_EQ(s.code(), Code::kInvalidArgument) << s.ToString();
  // The old policy is untouched and still resolves.
  auto got = Get(d);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ(**got, keep);
  auto eff = Effective(d);
  ASSERT_TRUE(eff.ok()) << eff.status().ToString();
  EXPECT_EQ(eff->mirrors, 2u);
  // At the limits it is accepted.
  PlacementPolicy most;
  for (int i = 0; i < 16; i++) most.labels.push_back("k" + std::to_string(i) + "=v");
  most.labels[0] = "k=" + std::string(510, 'v');
  ASSERT_TRUE(Put(d, most).ok());
  got = Get(d);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(**got, most);
}

TEST_F(PolicyStoreTest, EffectivePolicyTakesEachFieldFromTheNearestDirectory) {
  const Ino a = Make(ns_.root(), "a");
  const Ino b = Make(a, "b");
  const Ino c = Make(b, "c");
  // Nothing set anywhere: all zero (the server's defaults apply).
  auto eff = Effective(c);
  ASSERT_TRUE(eff.ok());
  EXPECT_EQ(*eff, PlacementPolicy{});

  PlacementPolicy root;
  root.mirrors = 3;
  root.stripes = 4;
  root.stripe_unit = 1 << 20;
  root.labels = {"site=root"};
  ASSERT_TRUE(Put(ns_.root(), root).ok());
  PlacementPolicy pa;
  pa.stripes = 2;
  pa.labels = {"site=a", "tier=ssd"};
  ASSERT_TRUE(Put(a, pa).ok());
  PlacementPolicy pb;
  pb.mirrors = 1;  // no labels: a's labels still apply below b
  ASSERT_TRUE(Put(b, pb).ok());

  eff = Effective(c);
  ASSERT_TRUE(eff.ok());
  EXPECT_EQ(eff->mirrors, 1u);             // b
  EXPECT_EQ(eff->stripes, 2u);             // a
  EXPECT_EQ(eff->stripe_unit, 1u << 20);   // root
  EXPECT_EQ(eff->labels, (std::vector<std::string>{"site=a", "tier=ssd"}));  // a, not merged with root's
  eff = Effective(ns_.root());
  ASSERT_TRUE(eff.ok());
  EXPECT_EQ(*eff, root);

  // Changing an ancestor changes what new files below it get.
  ASSERT_TRUE(Put(a, std::nullopt).ok());
  eff = Effective(c);
  ASSERT_TRUE(eff.ok());
  EXPECT_EQ(eff->stripes, 4u);
  EXPECT_EQ(eff->labels, (std::vector<std::string>{"site=root"}));
}

TEST_F(PolicyStoreTest, EffectivePolicyOfAFileAndOfAMissingDirectory) {
  const Ino a = Make(ns_.root(), "a");
  PlacementPolicy pa;
  pa.mirrors = 2;
  ASSERT_TRUE(Put(a, pa).ok());
  PlacementPolicy root;
  root.stripes = 5;
  ASSERT_TRUE(Put(ns_.root(), root).ok());
  // A file's own record (what InheritPolicy stored at its creation) is the answer; the walk
  // does not climb from a non-directory.
  const Ino f = Make(a, "f", FileType::kReg);
  PlacementPolicy pf;
  pf.stripe_unit = 65536;
  ASSERT_TRUE(Put(f, pf).ok());
  auto eff = Effective(f);
  ASSERT_TRUE(eff.ok());
  EXPECT_EQ(eff->stripe_unit, 65536u);
  EXPECT_EQ(eff->mirrors, 0u);
  EXPECT_EQ(eff->stripes, 0u);
  // A directory removed meanwhile: the error, not a guess.
  auto gone = Effective(987654);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(ErrOf(gone.status()), MetaErr::kStale) << gone.status().ToString();
}

}  // namespace
}  // namespace loom::meta
