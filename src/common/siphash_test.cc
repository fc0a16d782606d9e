#include "common/siphash.h"

#include <gtest/gtest.h>

namespace loom {

// Reference vectors from the SipHash paper (key 00..0f, message 00..len-1).
TEST(SipHashTest, ReferenceVectors) {
  SipKey key;
  for (int i = 0; i < 16; i++) key[i] = static_cast<uint8_t>(i);
  uint8_t msg[64];
  for (int i = 0; i < 64; i++) msg[i] = static_cast<uint8_t>(i);
  EXPECT_EQ(SipHash24(key, msg, 0), 0x726fdb47dd0e0e31ULL);
  EXPECT_EQ(SipHash24(key, msg, 15), 0xa129ca6149be45e5ULL);
}

TEST(SipHashTest, KeyMatters) {
  SipKey a{}, b{};
  b[3] = 1;
  const char m[] = "handle";
  EXPECT_NE(SipHash24(a, m, sizeof m), SipHash24(b, m, sizeof m));
}

}  // namespace loom
