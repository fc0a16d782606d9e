// Client records and grace state round-trip through every backend and survive a reopen.
#include "meta/client_state.h"

#include <gtest/gtest.h>

#include "meta/test_util.h"

namespace loom::meta {
namespace {

using testing::BackendNames;
using testing::Backends;

template <typename B>
class ClientStateTest : public ::testing::Test {
 protected:
  B b_;
};

TYPED_TEST_SUITE(ClientStateTest, Backends, BackendNames);

TYPED_TEST(ClientStateTest, RecordsSurviveReopen) {
  KvStore& s = *this->b_.store();
  ClientRecord a{11, "host-a", 1, ClientRecord::kConfirmed, {5, 0}};
  ClientRecord b{12, "host-b", 2, ClientRecord::kConfirmed | ClientRecord::kReclaimComplete,
                 {6, 0}};
  ASSERT_TRUE(RunTxn(s, [&](Txn& t) -> Status {
                LOOM_RETURN_IF_ERROR(PutClient(t, a));
                LOOM_RETURN_IF_ERROR(PutClient(t, b));
                return PutGrace(t, "mds0", GraceState{3, 2, true});
              }).ok());
  this->b_.Reopen();
  KvStore& r = *this->b_.store();
  auto list = RunTxn(r, [](Txn& t) { return ListClients(t); });
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(*list, (std::vector<ClientRecord>{a, b}));
  // Revocation without FREE_STATEID is a flag set under the record's lock.
  ASSERT_TRUE(RunTxn(r, [&](Txn& t) -> Status {
                auto c = GetClient(t, 11, true);
                if (!c.ok()) return c.status();
                (*c)->flags |= ClientRecord::kRevokedWithoutFree;
                return PutClient(t, **c);
              }).ok());
  auto c = RunTxn(r, [](Txn& t) { return GetClient(t, 11, false); });
  ASSERT_TRUE(c.ok() && c->has_value());
  EXPECT_TRUE((*c)->flags & ClientRecord::kRevokedWithoutFree);
  ASSERT_TRUE(RunTxn(r, [](Txn& t) { return DeleteClient(t, 12); }).ok());
  EXPECT_FALSE(RunTxn(r, [](Txn& t) { return GetClient(t, 12, false); })->has_value());
  auto g = RunTxn(r, [](Txn& t) { return GetGrace(t, "mds0", false); });
  ASSERT_TRUE(g.ok() && g->has_value());
  EXPECT_EQ(**g, (GraceState{3, 2, true}));
  EXPECT_FALSE(RunTxn(r, [](Txn& t) { return GetGrace(t, "mds1", false); })->has_value());
}

}  // namespace
}  // namespace loom::meta
