#include "nfs3/file_handle.h"

#include <gtest/gtest.h>

namespace loom::nfs3 {

TEST(FileHandleTest, SealAndOpen) {
  SipKey key{};
  key[0] = 7;
  KernelHandle kh{1, std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8)};
  auto w = SealHandle(key, kh);
  ASSERT_TRUE(w.ok());
  EXPECT_LE(w->size(), 64u);
  auto back = OpenHandle(key, *w);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->type, 1);
  EXPECT_EQ(back->bytes, kh.bytes);
}

TEST(FileHandleTest, ForgedOrDamagedHandlesAreRejected) {
  SipKey key{}, other{};
  other[5] = 1;
  auto w = SealHandle(key, KernelHandle{1, std::string(8, 'a')});
  ASSERT_TRUE(w.ok());
  // Another export's key: not ours (STALE).
  EXPECT_EQ(OpenHandle(other, *w).status().code(), Code::kPermission);
  // A guessed inode: flip one byte of the kernel handle.
  std::string bad = *w;
  bad[5] ^= 1;
  EXPECT_EQ(OpenHandle(key, bad).status().code(), Code::kPermission);
  // Wrong length, version or size byte: malformed (BADHANDLE).
  EXPECT_EQ(OpenHandle(key, w->substr(0, 10)).status().code(), Code::kInvalidArgument);
  std::string v = *w;
  v[0] = 9;
  EXPECT_EQ(OpenHandle(key, v).status().code(), Code::kInvalidArgument);
  EXPECT_FALSE(SealHandle(key, KernelHandle{1, std::string(45, 'x')}).ok());
}

}  // namespace loom::nfs3
