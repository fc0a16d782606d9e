#include "rpc/reply_cache.h"

#include "xdr/rpc.h"

#include <gtest/gtest.h>

namespace loom::rpc {

TEST(ReplyCacheTest, NewInProgressDone) {
  ReplyCache c(2);
  const uint8_t args[] = {1, 2, 3, 4};
  std::string k = ReplyCache::MakeKey("1.2.3.4", 1, 100003, 3, 8, AUTH_NONE, "", args, 4);
  std::string rep;
  EXPECT_EQ(c.Begin(k, &rep), ReplyCache::State::kNew);
  EXPECT_EQ(c.Begin(k, &rep), ReplyCache::State::kInProgress);
  c.Finish(k, "reply");
  EXPECT_EQ(c.Begin(k, &rep), ReplyCache::State::kDone);
  EXPECT_EQ(rep, "reply");
  // Different arguments under the same xid are a different call.
  const uint8_t other[] = {9, 9, 9, 9};
  EXPECT_NE(k, ReplyCache::MakeKey("1.2.3.4", 1, 100003, 3, 8, AUTH_NONE, "", other, 4));
  // So are the same call from another port or with another credential.
  EXPECT_NE(k, ReplyCache::MakeKey("1.2.3.4:2", 1, 100003, 3, 8, AUTH_NONE, "", args, 4));
  EXPECT_NE(k, ReplyCache::MakeKey("1.2.3.4", 1, 100003, 3, 8, AUTH_SYS, "", args, 4));
  EXPECT_NE(k, ReplyCache::MakeKey("1.2.3.4", 1, 100003, 3, 8, AUTH_NONE, "x", args, 4));
}

TEST(ReplyCacheTest, BoundedLru) {
  ReplyCache c(2);
  for (uint32_t x = 0; x < 10; x++) {
    std::string k = ReplyCache::MakeKey("h", x, 1, 1, 1, AUTH_NONE, "", nullptr, 0);
    std::string rep;
    ASSERT_EQ(c.Begin(k, &rep), ReplyCache::State::kNew);
    c.Finish(k, "r");
  }
  // Exactly the capacity is kept, and it is the most recent calls.
  EXPECT_EQ(c.size(), 2u);
  std::string rep;
  EXPECT_EQ(c.Begin(ReplyCache::MakeKey("h", 9, 1, 1, 1, AUTH_NONE, "", nullptr, 0), &rep),
            ReplyCache::State::kDone);
  EXPECT_EQ(c.Begin(ReplyCache::MakeKey("h", 8, 1, 1, 1, AUTH_NONE, "", nullptr, 0), &rep),
            ReplyCache::State::kDone);
  // The oldest were evicted: their key is new again.
  EXPECT_EQ(c.Begin(ReplyCache::MakeKey("h", 0, 1, 1, 1, AUTH_NONE, "", nullptr, 0), &rep),
            ReplyCache::State::kNew);
}

}  // namespace loom::rpc
