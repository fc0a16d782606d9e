#include "common/buffer.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
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

// FileRef::Map hands out windows of the file: the two mapped last are reused, a range that
// crosses a window's end gets one mapping of both windows, a third window replaces the older
// one, and a replaced window is unmapped once no one holds it.
TEST(FileRefMapTest, WindowsAreReusedReplacedAndReleased) {
  constexpr uint64_t W = FileRef::kMapWindow;
  char path[] = "/tmp/loom-map-XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::unlink(path);
  ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(4 * W)), 0);
  const uint64_t marks[] = {0, W - 8, W + 100, 3 * W + 7};
  for (uint64_t m : marks) ASSERT_EQ(::pwrite(fd, &m, sizeof m, static_cast<off_t>(m)), 8);
  auto ref = std::make_shared<FileRef>(fd);
  auto read_at = [](const FileMapping& mp, uint64_t off) {
    uint64_t v = 0;
    std::memcpy(&v, mp.At(off), sizeof v);
    return v;
  };
  auto a = ref->Map(0, 4096);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->off, 0u);
  EXPECT_EQ(a->len, W);
  auto b = ref->Map(W + 100, 4096);
  EXPECT_EQ(b->off, W);
  EXPECT_EQ(read_at(*b, W + 100), W + 100);
  EXPECT_EQ(ref->Map(10, 100), a);  // both stay mapped: reused
  EXPECT_EQ(ref->Map(W + 5000, 100), b);
  // Across the first window's end: one mapping of both windows, at the file's offsets.
  auto c = ref->Map(W - 8, 16);
  EXPECT_EQ(c->off, 0u);
  EXPECT_EQ(c->len, 2 * W);
  EXPECT_EQ(read_at(*c, W - 8), W - 8);
  EXPECT_EQ(read_at(*c, W + 100), W + 100);
  // c and b are the two kept; a third window replaces the older (b), which goes once
  // nobody holds it.
  std::weak_ptr<const FileMapping> wb = b;
  b.reset();
  auto d = ref->Map(3 * W + 7, 8);
  EXPECT_EQ(read_at(*d, 3 * W + 7), 3 * W + 7);
  EXPECT_TRUE(wb.expired());
  EXPECT_EQ(ref->Map(0, 8), c);
  // A window held by a reply outlives its replacement.
  std::weak_ptr<const FileMapping> wa = a;
  EXPECT_FALSE(wa.expired());
  EXPECT_EQ(read_at(*a, 0), 0u);
}

}  // namespace
}  // namespace loom
