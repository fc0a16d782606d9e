// The `loom` CLI's pieces that need no server: flag parsing, Loom paths, the default address,
// exit statuses per error class, human sizes, temporary names and SHA-256 (FIPS 180-4 test
// vectors).
#include <cerrno>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cli.h"
#include "endpoint.h"
#include "sha256.h"

namespace loom::cli {
namespace {

TEST(CliFlags, GnuStyle) {
  Flags f;
  std::string err;
  ASSERT_TRUE(f.Parse({"-rf", "a", "--jobs=3", "b", "-j", "5", "--progress", "--", "-x"},
                      {{'r', "recursive", false}, {'f', "force", false}, {'j', "jobs", true}, {0, "progress", false}},
                      &err))
      << err;
  EXPECT_TRUE(f.Has("recursive"));
  EXPECT_TRUE(f.Has("force"));
  EXPECT_TRUE(f.Has("progress"));
  EXPECT_EQ(f.Value("jobs"), "5");  // the last one wins
  EXPECT_EQ(f.positional(), (std::vector<std::string>{"a", "b", "-x"}));
  Flags g;
  EXPECT_TRUE(g.Parse({"-j7"}, {{'j', "jobs", true}}, &err));
  EXPECT_EQ(g.Value("jobs"), "7");
}

TEST(CliFlags, Errors) {
  std::string err;
  Flags a;
  EXPECT_FALSE(a.Parse({"--nope"}, {{'r', "recursive", false}}, &err));
  EXPECT_NE(err.find("--nope"), std::string::npos);
  Flags b;
  EXPECT_FALSE(b.Parse({"-j"}, {{'j', "jobs", true}}, &err));
  Flags c;
  EXPECT_FALSE(c.Parse({"--recursive=1"}, {{'r', "recursive", false}}, &err));
  Flags d;
  EXPECT_FALSE(d.Parse({"-x"}, {{'r', "recursive", false}}, &err));
}

TEST(CliFlags, HelpIsOnlyTheLongFlag) {
  EXPECT_TRUE(WantsHelp({"a", "--help"}));
  EXPECT_FALSE(WantsHelp({"-h", "/"}));  // ls -h, du -h, df -h: human sizes
  EXPECT_FALSE(WantsHelp({"--", "--help"}));
}

TEST(CliPaths, RemotePath) {
  EXPECT_EQ(RemotePath("loom:/a//b/"), "/a/b");
  EXPECT_EQ(RemotePath("loom:a/b"), "/a/b");
  EXPECT_EQ(RemotePath("/a/b"), "/a/b");
  EXPECT_EQ(RemotePath("loom:"), "/");
  EXPECT_EQ(RemotePath("/"), "/");
  EXPECT_EQ(RemotePath("///"), "/");
  EXPECT_EQ(RemotePath(""), "");  // an empty argument is an error for the caller
  EXPECT_TRUE(HasRemotePrefix("loom:/x"));
  EXPECT_FALSE(HasRemotePrefix("./loom:/x"));
}

TEST(CliPaths, BaseAndDir) {
  EXPECT_EQ(BaseName("/a/b"), "b");
  EXPECT_EQ(BaseName("/a/b/"), "b");
  EXPECT_EQ(BaseName("b"), "b");
  EXPECT_EQ(BaseName("/"), "");
  EXPECT_EQ(BaseName(""), "");
  EXPECT_EQ(DirName("/a/b"), "/a");
  EXPECT_EQ(DirName("/a"), "/");
  EXPECT_EQ(DirName("a"), ".");
  EXPECT_EQ(DirName("a/b"), "a");
  EXPECT_EQ(JoinPath("/", "x"), "/x");
  EXPECT_EQ(JoinPath("/a", "x"), "/a/x");
}

TEST(CliPaths, TempNames) {
  EXPECT_EQ(TempName("/d/f.bin", "abcdef"), "/d/.f.bin.loom-tmp-abcdef");
  EXPECT_EQ(TempName("f.bin", "abcdef"), ".f.bin.loom-tmp-abcdef");
  EXPECT_EQ(TempName("/f", "abcdef"), "/.f.loom-tmp-abcdef");
  std::string s = RandomSuffix();
  EXPECT_EQ(s.size(), 6u);
}

TEST(CliAddress, DefaultsToLoomUpsPort) {
  EXPECT_EQ(kDefaultMdsPort, 20490);
  EXPECT_EQ(WithPort("mds.example", kDefaultMdsPort), "mds.example:20490");
  EXPECT_EQ(WithPort("10.0.0.1:2049", kDefaultMdsPort), "10.0.0.1:2049");
  EXPECT_EQ(WithPort("[::1]", kDefaultMdsPort), "[::1]:20490");
  EXPECT_EQ(WithPort("[::1]:7", kDefaultMdsPort), "[::1]:7");
  EXPECT_EQ(WithPort("::1", kDefaultMdsPort), "[::1]:20490");
  ::unsetenv("LOOM_MDS");
  EXPECT_EQ(DefaultMds(), "127.0.0.1:20490");
  ::setenv("LOOM_MDS", "node7", 1);
  EXPECT_EQ(DefaultMds(), "node7:20490");
  ::unsetenv("LOOM_MDS");
}

TEST(CliExit, OneStatusPerClass) {
  EXPECT_EQ(ExitFor(lc::Errc::kOk), 0);
  EXPECT_EQ(ExitFor(lc::Errc::kIo), 1);
  EXPECT_EQ(ExitFor(lc::Errc::kNotFound), 3);
  EXPECT_EQ(ExitFor(lc::Errc::kExists), 4);
  EXPECT_EQ(ExitFor(lc::Errc::kPermission), 5);
  EXPECT_EQ(ExitFor(lc::Errc::kReadOnly), 5);
  EXPECT_EQ(ExitFor(lc::Errc::kNoSpace), 6);
  EXPECT_EQ(ExitFor(lc::Errc::kUnavailable), 7);
  EXPECT_EQ(ExitFor(lc::Errc::kTimeout), 7);
  EXPECT_EQ(ExitFor(lc::Errc::kIsDir), 8);
  EXPECT_EQ(ExitFor(lc::Errc::kNotDir), 8);
  EXPECT_EQ(ExitFor(lc::Errc::kNotEmpty), 8);
  // Local errors land in the same classes as the server's.
  EXPECT_EQ(ExitFor(FromErrno(ENOENT, "x").code()), 3);
  EXPECT_EQ(ExitFor(FromErrno(EEXIST, "x").code()), 4);
  EXPECT_EQ(ExitFor(FromErrno(EACCES, "x").code()), 5);
  EXPECT_EQ(ExitFor(FromErrno(ENOSPC, "x").code()), 6);
  EXPECT_EQ(ExitFor(FromErrno(EDQUOT, "x").code()), 6);
  EXPECT_EQ(ExitFor(FromErrno(EISDIR, "x").code()), 8);
  EXPECT_EQ(ExitFor(FromErrno(EIO, "x").code()), 1);
  EXPECT_TRUE(IsInterrupted(FromErrno(EINTR, "x")));
  EXPECT_FALSE(IsInterrupted(FromErrno(EIO, "x")));
}

TEST(CliPrint, Sizes) {
  EXPECT_EQ(HumanShort(0), "0");
  EXPECT_EQ(HumanShort(1023), "1023");
  EXPECT_EQ(HumanShort(1536), "1.5K");
  EXPECT_EQ(HumanShort(20u << 20), "20M");
  EXPECT_EQ(HumanLong(1536), "1.5 KiB");
  EXPECT_EQ(HumanLong(5), "5 B");
  EXPECT_EQ(ModeString(lc::FileType::kDirectory, 0755), "drwxr-xr-x");
  EXPECT_EQ(ModeString(lc::FileType::kRegular, 04644), "-rwSr--r--");
  uint64_t v;
  EXPECT_TRUE(ParseUint("42", 100, &v));
  EXPECT_EQ(v, 42u);
  EXPECT_FALSE(ParseUint("101", 100, &v));
  EXPECT_FALSE(ParseUint("4x", 100, &v));
  EXPECT_FALSE(ParseUint("", 100, &v));
}

std::string Hash(const std::string& s, size_t step) {
  Sha256 h;
  for (size_t i = 0; i < s.size(); i += step) h.Update(s.data() + i, std::min(step, s.size() - i));
  return h.HexDigest();
}

TEST(CliSha256, Fips180Vectors) {
  EXPECT_EQ(Hash("", 1), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Hash("abc", 1), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  for (size_t step : {1, 7, 55, 56, 64, 1000})
    EXPECT_EQ(Hash(two, step), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1") << step;
  const std::string million(1000000, 'a');
  EXPECT_EQ(Hash(million, 4096), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

}  // namespace
}  // namespace loom::cli
