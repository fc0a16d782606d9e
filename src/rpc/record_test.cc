#include "rpc/record.h"

#include <cstring>
#include <string>

#include <gtest/gtest.h>

namespace loom::rpc {

std::string Mark(uint32_t len, bool last) {
  uint32_t v = len | (last ? 0x80000000u : 0);
  return std::string{char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
}

TEST(RecordAssemblerTest, FragmentsAnyChunking) {
  std::string stream = Mark(3, false) + "abc" + Mark(0, false) + Mark(2, true) + "de" +
                       Mark(4, true) + "wxyz";
  for (size_t chunk = 1; chunk <= stream.size(); chunk++) {
    RecordAssembler a(100);
    std::vector<Record> out;
    for (size_t i = 0; i < stream.size(); i += chunk) {
      ASSERT_TRUE(a.Feed(reinterpret_cast<const uint8_t*>(stream.data()) + i,
                         std::min(chunk, stream.size() - i), &out));
    }
    ASSERT_EQ(out.size(), 2u) << chunk;
    EXPECT_EQ(std::string(reinterpret_cast<char*>(out[0].buf->data()), out[0].size), "abcde");
    EXPECT_EQ(std::string(reinterpret_cast<char*>(out[1].buf->data()), out[1].size), "wxyz");
  }
}

TEST(RecordAssemblerTest, OversizedRecordsAreRefusedBeforeAllocation) {
  RecordAssembler a(10);
  std::vector<Record> out;
  std::string big = Mark(0x7fffffff, true);
  EXPECT_FALSE(a.Feed(reinterpret_cast<const uint8_t*>(big.data()), big.size(), &out));
  // Many small fragments adding up past the bound.
  RecordAssembler b(10);
  std::string s = Mark(6, false) + "123456" + Mark(6, true) + "789012";
  EXPECT_FALSE(b.Feed(reinterpret_cast<const uint8_t*>(s.data()), s.size(), &out));
}

TEST(RecordAssemblerTest, DirectReadsIntoTheRecord) {
  RecordAssembler a(1 << 20);
  std::vector<Record> out;
  std::string m = Mark(100000, true) + "xy";
  ASSERT_TRUE(a.Feed(reinterpret_cast<const uint8_t*>(m.data()), m.size(), &out));
  // Direct reads go into the record buffer, as far as it has grown; Feed grows it.
  size_t left = 100000 - 2;
  while (left > 0) {
    uint8_t* dst;
    size_t n = a.DirectTarget(&dst);
    if (n == 0) {
      std::string chunk(std::min<size_t>(left, 4096), 'z');
      ASSERT_TRUE(a.Feed(reinterpret_cast<const uint8_t*>(chunk.data()), chunk.size(), &out));
      left -= chunk.size();
      continue;
    }
    n = std::min(n, left);
    std::memset(dst, 'z', n);
    a.DirectDone(n, &out);
    left -= n;
  }
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].size, 100000u);
  EXPECT_EQ(out[0].buf->data()[1], 'y');
  EXPECT_EQ(out[0].buf->data()[99999], 'z');
}

// A record mark alone must not make the assembler reserve the announced size: memory follows
// the bytes that actually arrived (issue 9 item 14).
TEST(RecordAssemblerTest, BufferGrowsWithTheBytesThatArrive) {
  RecordAssembler a(2 << 20);
  std::vector<Record> out;
  std::string m = Mark(1 << 20, true);
  ASSERT_TRUE(a.Feed(reinterpret_cast<const uint8_t*>(m.data()), m.size(), &out));
  EXPECT_LE(a.buffered(), 64u * 1024);
  uint8_t* dst = nullptr;
  EXPECT_LE(a.DirectTarget(&dst), 64u * 1024);
  // Feeding the body in pieces grows the buffer; the record comes out whole.
  std::string body(1 << 20, '\0');
  for (size_t i = 0; i < body.size(); i++) body[i] = static_cast<char>(i * 7);
  size_t fed = 0;
  while (fed < body.size()) {
    size_t n = std::min<size_t>(10000, body.size() - fed);
    ASSERT_TRUE(a.Feed(reinterpret_cast<const uint8_t*>(body.data()) + fed, n, &out));
    fed += n;
    if (fed < body.size()) {
      EXPECT_LE(a.buffered(), 2 * fed + 64 * 1024);
    }
  }
  ASSERT_EQ(out.size(), 1u);
  ASSERT_EQ(out[0].size, body.size());
  EXPECT_EQ(std::memcmp(out[0].buf->data(), body.data(), body.size()), 0);
  EXPECT_EQ(a.buffered(), 0u);
}

}  // namespace loom::rpc
