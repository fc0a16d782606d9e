// PollWindow (common/poll_window.h): the adaptation rule, fed outcomes.
#include "common/poll_window.h"

#include <gtest/gtest.h>

namespace loom {
namespace {

// The polling window adapts to what polling finds: a wait that ended soon after the window
// (within kGrowLimit times the most) grows it back toward the most, a long one halves it, and
// below kStartUs polling stops until events come close together again.
TEST(PollWindowTest, GrowsOnShortWaitsAndStopsWhenIdle) {
  PollWindow off(0);
  EXPECT_EQ(off.window_us(), 0);
  off.Blocked(1);
  EXPECT_EQ(off.window_us(), 0);  // 0 never polls, whatever it sees

  PollWindow w(50);
  EXPECT_EQ(w.window_us(), 50);  // starts polling: a server is started to be used
  w.Blocked(1000);
  EXPECT_EQ(w.window_us(), 25);
  w.Blocked(201);  // just over kGrowLimit * 50
  EXPECT_EQ(w.window_us(), 12);
  w.Blocked(5000);
  EXPECT_EQ(w.window_us(), 0);  // 6 < kStartUs: an idle loop blocks at once
  w.Blocked(100000);
  EXPECT_EQ(w.window_us(), 0);
  w.Blocked(60);  // events close together again (the wake-up itself takes tens of µs)
  EXPECT_EQ(w.window_us(), PollWindow::kStartUs);
  w.Blocked(200);  // exactly kGrowLimit * 50 still counts as close
  EXPECT_EQ(w.window_us(), 16);
  w.Blocked(10);
  w.Blocked(10);
  EXPECT_EQ(w.window_us(), 50);  // never past the most
  w.Blocked(10);
  EXPECT_EQ(w.window_us(), 50);

  PollWindow neg(-5);  // a nonsense setting means off
  EXPECT_EQ(neg.max_us(), 0);
  EXPECT_EQ(neg.window_us(), 0);
}

}  // namespace
}  // namespace loom
