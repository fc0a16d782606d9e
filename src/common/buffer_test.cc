#include "common/buffer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>
#include <vector>

namespace loom {
namespace {

// The pool keeps large blocks that were in use at once, and hands the same memory out again:
// a server's READ buffers are not faulted in anew for every reply.
TEST(BufferPoolTest, KeepsWhatWasInUseAndReusesIt) {
  constexpr size_t kBlock = 1 << 20;
  constexpr int kLive = 48;  // more than the 32 MiB always kept
  std::vector<std::shared_ptr<Buffer>> live;
  for (int i = 0; i < kLive; i++) live.push_back(Buffer::Allocate(kBlock));
  size_t before = Buffer::PooledBytes();
  std::vector<uint8_t*> addrs;
  for (auto& b : live) addrs.push_back(b->data());
  live.clear();
  EXPECT_GE(Buffer::PooledBytes(), before + kLive * kBlock);
  // The same blocks come back (the pool is LIFO per size class).
  for (int i = 0; i < kLive; i++) live.push_back(Buffer::Allocate(kBlock));
  int reused = 0;
  for (auto& b : live) {
    for (uint8_t* a : addrs) reused += b->data() == a;
  }
  EXPECT_EQ(reused, kLive);
  live.clear();
}

// Blocks that stay idle for a whole trim period beyond the 32 MiB kept are given back.
TEST(BufferPoolTest, IdleBlocksBeyondTheKeepAreFreed) {
  constexpr size_t kBlock = 1 << 20;
  {
    std::vector<std::shared_ptr<Buffer>> live;
    for (int i = 0; i < 96; i++) live.push_back(Buffer::Allocate(kBlock));
  }
  EXPECT_GE(Buffer::PooledBytes(), size_t{96} << 20);
  // Two periods: the first ends with the low-water mark still high from before; the free at
  // the end of the second finds them idle through it.
  for (int period = 0; period < 2; period++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    Buffer::Allocate(kBlock).reset();
  }
  EXPECT_LE(Buffer::PooledBytes(), (size_t{32} << 20) + kBlock);
  // An idle pool shrinks through TrimIdle alone (no allocation or free needed), as the
  // daemons call it once a second.
  {
    std::vector<std::shared_ptr<Buffer>> live;
    for (int i = 0; i < 96; i++) live.push_back(Buffer::Allocate(kBlock));
  }
  EXPECT_GE(Buffer::PooledBytes(), size_t{96} << 20);
  for (int period = 0; period < 3; period++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    Buffer::TrimIdle();
  }
  EXPECT_LE(Buffer::PooledBytes(), size_t{32} << 20);
  // Small blocks never enter the pool.
  size_t pooled = Buffer::PooledBytes();
  Buffer::Allocate(100).reset();
  EXPECT_EQ(Buffer::PooledBytes(), pooled);
}

}  // namespace
}  // namespace loom
