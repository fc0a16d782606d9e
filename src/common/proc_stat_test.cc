#include "common/proc_stat.h"

#include <unistd.h>

#include <gtest/gtest.h>

namespace loom {
namespace {

TEST(ProcStatTest, CountsThisProcessAndRefusesOneThatIsGone) {
  // Burn some CPU so that both counters move past a clock tick.
  const double self0 = SelfCpuSeconds();
  volatile unsigned long x = 0;
  while (SelfCpuSeconds() - self0 < 0.05) x = x + 1;
  EXPECT_GE(SelfCpuSeconds() - self0, 0.05);
  const double proc = ProcCpuSeconds(::getpid());
  EXPECT_GE(proc, 0.04);  // /proc counts in clock ticks (10 ms)
  EXPECT_LE(proc, SelfCpuSeconds() + 0.02);
  EXPECT_EQ(ProcCpuSeconds(0), -1);
  EXPECT_EQ(ProcCpuSeconds(-1), -1);
}

}  // namespace
}  // namespace loom
