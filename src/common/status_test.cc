#include "common/status.h"

#include <cerrno>

#include <gtest/gtest.h>

namespace loom {

TEST(StatusTest, OkAndErrors) {
  Status ok;
  EXPECT_TRUE(ok.ok());
  EXPECT_EQ(ok.ToString(), "OK");
  Status e = Status::FromErrno(ENOENT, "open x");
  EXPECT_FALSE(e.ok());
  EXPECT_EQ(e.code(), Code::kNotFound);
  EXPECT_EQ(e.os_errno(), ENOENT);
  EXPECT_NE(e.message().find("open x"), std::string::npos);
}

TEST(StatusTest, Result) {
  Result<int> r = 5;
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 5);
  Result<int> bad = Status::Invalid("nope");
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
}

}  // namespace loom
