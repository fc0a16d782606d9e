#include "common/stats.h"

#include <gtest/gtest.h>

namespace loom {

TEST(StatsTest, RecordsAndQuantiles) {
  StatsRegistry reg;
  OpStats* s = reg.Get("nfs3.READ");
  EXPECT_EQ(s, reg.Get("nfs3.READ"));
  for (int i = 0; i < 99; i++) s->Record(10, 100, 1000, false);
  s->Record(100000, 0, 0, true);
  EXPECT_EQ(s->calls(), 100u);
  EXPECT_EQ(s->errors(), 1u);
  EXPECT_EQ(s->bytes_in(), 9900u);
  EXPECT_EQ(s->bytes_out(), 99000u);
  EXPECT_EQ(s->QuantileUs(0.5), 16u);      // 10 µs falls in the [8,16) bucket
  EXPECT_GE(s->QuantileUs(0.999), 65536u);  // the slow call
  std::string j = reg.ToJson();
  EXPECT_NE(j.find("\"nfs3.READ\":{\"calls\":100"), std::string::npos) << j;
}

}  // namespace loom
