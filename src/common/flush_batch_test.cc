// FlushBatch (flush_batch.h): deferred flushes run once, at the outermost scope's end, in
// order, including ones queued by a flush; without a scope nothing is deferred.
#include "common/flush_batch.h"

#include <string>
#include <thread>

#include <gtest/gtest.h>

namespace loom {
namespace {

TEST(FlushBatchTest, WithoutABatchNothingIsDeferred) {
  EXPECT_FALSE(FlushBatch::Defer([] { FAIL() << "must not run"; }));
}

TEST(FlushBatchTest, FlushesRunAtTheOutermostEndInOrder) {
  std::string ran;
  {
    FlushBatch outer;
    ASSERT_TRUE(FlushBatch::Defer([&] { ran += "a"; }));
    {
      FlushBatch inner;  // joins the outer batch
      ASSERT_TRUE(FlushBatch::Defer([&] {
        ran += "b";
        // A flush that finds more to send queues it: it still runs before the end.
        EXPECT_TRUE(FlushBatch::Defer([&] { ran += "c"; }));
      }));
    }
    EXPECT_EQ(ran, "");
  }
  EXPECT_EQ(ran, "abc");
  EXPECT_FALSE(FlushBatch::Defer([] {}));
}

TEST(FlushBatchTest, ABatchIsPerThread) {
  FlushBatch mine;
  bool other_deferred = true;
  std::thread t([&] { other_deferred = FlushBatch::Defer([] {}); });
  t.join();
  EXPECT_FALSE(other_deferred);
}

}  // namespace
}  // namespace loom
