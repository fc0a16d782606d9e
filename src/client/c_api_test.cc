// libloom's C ABI (include/loom/loom.h) against an in-process loom-mds and loom-ds cluster
// (src/nfs4/mds_fixture.h): every call with good arguments, with NULL or bad ones (-EINVAL and
// words in loom_last_error), and with errors from the server mapped to the negative errno the
// header promises.
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <set>
#include <string>

#include "loom/loom.h"
#include "nfs4/mds_fixture.h"

namespace loom::nfs4 {
namespace {

class CApiTest : public MdsTest {
 protected:
  void SetUp() override {
    MdsTest::SetUp();
    // The C ABI sends this process's credentials: the export root is root's.
    if (::getuid() != 0) GTEST_SKIP() << "needs root (the C ABI uses this process's credentials)";
    addr_ = "127.0.0.1:" + std::to_string(port_);
    ASSERT_EQ(loom_connect(addr_.c_str(), &c_), 0) << loom_last_error();
    ASSERT_NE(c_, nullptr);
  }
  void TearDown() override {
    loom_disconnect(c_);
    MdsTest::TearDown();
  }
  std::string LastError() { return loom_last_error(); }

  std::string addr_;
  loom_client* c_ = nullptr;
};

struct Listing {
  std::set<std::string> names;
  int stop_after = -1;  // >= 0: return non-zero after that many entries
  int seen = 0;
};

int Collect(void* arg, const char* name, const loom_stat_t* st) {
  auto* l = static_cast<Listing*>(arg);
  l->names.insert(std::string(name) + (st->type == 2 ? "/" : ""));
  l->seen++;
  return l->stop_after >= 0 && l->seen >= l->stop_after ? 1 : 0;
}

TEST_F(CApiTest, NullArgumentsAreInvalidAndSayWhy) {
  loom_stat_t st;
  loom_file* f = nullptr;
  char buf[8];
  Listing l;
  EXPECT_EQ(loom_connect(addr_.c_str(), nullptr), -EINVAL);
  EXPECT_NE(LastError().find("invalid argument"), std::string::npos) << LastError();
  EXPECT_EQ(loom_stat(c_, nullptr, &st), -EINVAL);
  EXPECT_EQ(loom_stat(c_, "/", nullptr), -EINVAL);
  EXPECT_EQ(loom_mkdir(nullptr, "/x", 0755), -EINVAL);
  EXPECT_EQ(loom_mkdir(c_, nullptr, 0755), -EINVAL);
  EXPECT_EQ(loom_remove(nullptr, "/x"), -EINVAL);
  EXPECT_EQ(loom_remove(c_, nullptr), -EINVAL);
  EXPECT_EQ(loom_rename(nullptr, "/a", "/b"), -EINVAL);
  EXPECT_EQ(loom_rename(c_, nullptr, "/b"), -EINVAL);
  EXPECT_EQ(loom_rename(c_, "/a", nullptr), -EINVAL);
  EXPECT_EQ(loom_listdir(nullptr, "/", Collect, &l), -EINVAL);
  EXPECT_EQ(loom_listdir(c_, nullptr, Collect, &l), -EINVAL);
  EXPECT_EQ(loom_listdir(c_, "/", nullptr, &l), -EINVAL);
  EXPECT_EQ(loom_open(nullptr, "/f", LOOM_O_READ, 0644, &f), -EINVAL);
  EXPECT_EQ(loom_open(c_, nullptr, LOOM_O_READ, 0644, &f), -EINVAL);
  EXPECT_EQ(loom_open(c_, "/f", LOOM_O_READ, 0644, nullptr), -EINVAL);
  EXPECT_EQ(f, nullptr);
  EXPECT_EQ(loom_pread(nullptr, buf, sizeof buf, 0), -EINVAL);
  EXPECT_EQ(loom_pwrite(nullptr, buf, sizeof buf, 0), -EINVAL);
  EXPECT_EQ(loom_pread_async(nullptr, buf, sizeof buf, 0, [](void*, int64_t) {}, nullptr), -EINVAL);
  EXPECT_EQ(loom_fsync(nullptr), -EINVAL);
  EXPECT_EQ(loom_close(nullptr), -EINVAL);
  EXPECT_EQ(loom_size(nullptr), 0u);
  loom_disconnect(nullptr);  // a no-op, as free(NULL)
  // Nothing was created by any of them.
  EXPECT_EQ(loom_listdir(c_, "/", Collect, &l), 0);
  EXPECT_TRUE(l.names.empty());
}

TEST_F(CApiTest, ServerErrorsMapToTheirErrno) {
  loom_stat_t st;
  loom_file* f = nullptr;
  Listing l;
  ASSERT_EQ(loom_mkdir(c_, "/d", 0755), 0);
  ASSERT_EQ(loom_mkdir(c_, "/d/sub", 0755), 0);
  EXPECT_EQ(loom_mkdir(c_, "/d", 0755), -EEXIST);
  EXPECT_EQ(loom_mkdir(c_, "/missing/x", 0755), -ENOENT);
  EXPECT_NE(LastError().find("/missing"), std::string::npos) << LastError();
  EXPECT_EQ(loom_remove(c_, "/d"), -ENOTEMPTY);
  EXPECT_EQ(loom_remove(c_, "/nope"), -ENOENT);
  EXPECT_EQ(loom_remove(c_, "/"), -EINVAL);
  EXPECT_EQ(loom_rename(c_, "/nope", "/other"), -ENOENT);
  EXPECT_EQ(loom_listdir(c_, "/nope", Collect, &l), -ENOENT);
  EXPECT_EQ(loom_stat(c_, "/d/sub/deeper", &st), -ENOENT);
  EXPECT_EQ(loom_open(c_, "/nope", LOOM_O_READ, 0, &f), -ENOENT);
  EXPECT_EQ(loom_open(c_, "/d", LOOM_O_READ, 0, &f), -EISDIR);
  // Neither reading nor writing asked for.
  EXPECT_EQ(loom_open(c_, "/d/file", LOOM_O_CREATE, 0644, &f), -EINVAL);
  EXPECT_EQ(f, nullptr);
  // A regular file as a directory.
  ASSERT_EQ(loom_open(c_, "/plain", LOOM_O_WRITE | LOOM_O_CREATE, 0644, &f), 0) << LastError();
  EXPECT_EQ(loom_close(f), 0);
  EXPECT_EQ(loom_mkdir(c_, "/plain/x", 0755), -ENOTDIR);
  EXPECT_EQ(loom_listdir(c_, "/plain", Collect, &l), -ENOTDIR);
  // The failed calls left the namespace as it was.
  EXPECT_EQ(loom_listdir(c_, "/", Collect, &l), 0);
  EXPECT_EQ(l.names, (std::set<std::string>{"d/", "plain"}));
}

TEST_F(CApiTest, ListingStopsWhenTheCallbackSaysSo) {
  for (const char* p : {"/l", "/l/a", "/l/b", "/l/c", "/l/d"}) ASSERT_EQ(loom_mkdir(c_, p, 0700), 0);
  Listing all;
  EXPECT_EQ(loom_listdir(c_, "/l", Collect, &all), 0);
  EXPECT_EQ(all.names, (std::set<std::string>{"a/", "b/", "c/", "d/"}));
  Listing two;
  two.stop_after = 2;
  EXPECT_EQ(loom_listdir(c_, "/l", Collect, &two), 0);
  EXPECT_EQ(two.seen, 2);
  EXPECT_EQ(two.names.size(), 2u);
  loom_stat_t st;
  ASSERT_EQ(loom_stat(c_, "/l/a", &st), 0);
  EXPECT_EQ(st.type, 2u);
  EXPECT_EQ(st.mode, 0700u);
  EXPECT_GE(st.nlink, 2u);
  EXPECT_NE(st.fileid, 0u);
}

TEST_F(CApiTest, FileReadWriteSyncAndClose) {
  loom_file* f = nullptr;
  ASSERT_EQ(loom_open(c_, "/data", LOOM_O_READ | LOOM_O_WRITE | LOOM_O_CREATE | LOOM_O_EXCL, 0640, &f), 0)
      << LastError();
  EXPECT_EQ(loom_size(f), 0u);
  const std::string text = "hello from C";
  EXPECT_EQ(loom_pwrite(f, text.data(), text.size(), 0), static_cast<int64_t>(text.size()));
  EXPECT_EQ(loom_pwrite(f, text.data(), text.size(), 100), static_cast<int64_t>(text.size()));
  EXPECT_EQ(loom_size(f), 100 + text.size());
  // Zero bytes with no buffer is allowed (and does nothing).
  EXPECT_EQ(loom_pwrite(f, nullptr, 0, 0), 0);
  EXPECT_EQ(loom_pread(f, nullptr, 0, 0), 0);
  // A buffer missing for a non-zero length is not.
  EXPECT_EQ(loom_pwrite(f, nullptr, 4, 0), -EINVAL);
  EXPECT_EQ(loom_pread(f, nullptr, 4, 0), -EINVAL);
  EXPECT_EQ(loom_fsync(f), 0) << LastError();
  std::string got(text.size(), '\0');
  EXPECT_EQ(loom_pread(f, got.data(), got.size(), 0), static_cast<int64_t>(text.size()));
  EXPECT_EQ(got, text);
  // The gap between the two writes reads as zeros; a read past the end is short.
  std::string gap(10, 'x');
  EXPECT_EQ(loom_pread(f, gap.data(), gap.size(), 50), 10);
  EXPECT_EQ(gap, std::string(10, '\0'));
  std::string tail(64, 'x');
  EXPECT_EQ(loom_pread(f, tail.data(), tail.size(), 100), static_cast<int64_t>(text.size()));
  EXPECT_EQ(tail.substr(0, text.size()), text);
  EXPECT_EQ(loom_close(f), 0) << LastError();

  // O_EXCL of what exists.
  loom_file* g = nullptr;
  EXPECT_EQ(loom_open(c_, "/data", LOOM_O_WRITE | LOOM_O_CREATE | LOOM_O_EXCL, 0640, &g), -EEXIST);
  EXPECT_EQ(g, nullptr);
  loom_stat_t st;
  ASSERT_EQ(loom_stat(c_, "/data", &st), 0);
  EXPECT_EQ(st.type, 1u);
  EXPECT_EQ(st.mode, 0640u);
  EXPECT_EQ(st.size, 100 + text.size());
  EXPECT_GT(st.mtime_ns, 0);

  // Read-only opens cannot write; O_TRUNC empties the file.
  ASSERT_EQ(loom_open(c_, "/data", LOOM_O_READ, 0, &g), 0);
  EXPECT_EQ(loom_size(g), 100 + text.size());
  EXPECT_EQ(loom_pwrite(g, text.data(), text.size(), 0), -EACCES);
  EXPECT_NE(LastError().find("not open for writing"), std::string::npos) << LastError();
  EXPECT_EQ(loom_close(g), 0);
  ASSERT_EQ(loom_open(c_, "/data", LOOM_O_WRITE | LOOM_O_TRUNC, 0, &g), 0);
  EXPECT_EQ(loom_size(g), 0u);
  char b[4];
  EXPECT_EQ(loom_pread(g, b, sizeof b, 0), -EACCES);  // write-only
  EXPECT_EQ(loom_close(g), 0);
  ASSERT_EQ(loom_stat(c_, "/data", &st), 0);
  EXPECT_EQ(st.size, 0u);
}

struct AsyncResult {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  int64_t result = 0;
};

void AsyncDone(void* arg, int64_t result) {
  auto* r = static_cast<AsyncResult*>(arg);
  std::lock_guard<std::mutex> g(r->mu);
  r->result = result;
  r->done = true;
  r->cv.notify_all();
}

int64_t Wait(AsyncResult& r) {
  std::unique_lock<std::mutex> g(r.mu);
  r.cv.wait(g, [&] { return r.done; });
  return r.result;
}

TEST_F(CApiTest, AsyncReadsCompleteWithBytesOrANegativeErrno) {
  loom_file* f = nullptr;
  ASSERT_EQ(loom_open(c_, "/async", LOOM_O_READ | LOOM_O_WRITE | LOOM_O_CREATE, 0644, &f), 0);
  const std::string text(5000, 'q');
  ASSERT_EQ(loom_pwrite(f, text.data(), text.size(), 0), 5000);
  ASSERT_EQ(loom_fsync(f), 0);
  EXPECT_EQ(loom_pread_async(f, nullptr, 10, 0, AsyncDone, nullptr), -EINVAL);
  char buf[16];
  EXPECT_EQ(loom_pread_async(f, buf, sizeof buf, 0, nullptr, nullptr), -EINVAL);

  std::string got(6000, 'x');
  AsyncResult r;
  ASSERT_EQ(loom_pread_async(f, got.data(), got.size(), 0, AsyncDone, &r), 0);
  EXPECT_EQ(Wait(r), 5000);  // short at end of file
  EXPECT_EQ(got.substr(0, 5000), text);
  EXPECT_EQ(got.substr(5000), std::string(1000, 'x'));
  EXPECT_EQ(loom_close(f), 0);

  // A write-only open: the completion carries -EACCES.
  ASSERT_EQ(loom_open(c_, "/async", LOOM_O_WRITE, 0, &f), 0);
  AsyncResult denied;
  ASSERT_EQ(loom_pread_async(f, buf, sizeof buf, 0, AsyncDone, &denied), 0);
  EXPECT_EQ(Wait(denied), -EACCES);
  EXPECT_EQ(loom_close(f), 0);
}

TEST_F(CApiTest, ConnectFailuresSayWhy) {
  loom_client* other = nullptr;
  // A bad port is refused before any connection is tried.
  EXPECT_EQ(loom_connect("127.0.0.1:99999", &other), -EINVAL);
  EXPECT_EQ(other, nullptr);
  EXPECT_NE(LastError().find("99999"), std::string::npos) << LastError();
  EXPECT_EQ(loom_connect("no-such-host.invalid:1234", &other), -EHOSTUNREACH);
  EXPECT_EQ(other, nullptr);
  EXPECT_NE(LastError().find("no-such-host.invalid"), std::string::npos) << LastError();
  // A second client of the same server works beside the first; renames are seen by both.
  ASSERT_EQ(loom_connect(addr_.c_str(), &other), 0) << LastError();
  ASSERT_EQ(loom_mkdir(other, "/from-other", 0755), 0);
  EXPECT_EQ(loom_rename(c_, "/from-other", "/renamed"), 0);
  loom_stat_t st;
  EXPECT_EQ(loom_stat(other, "/from-other", &st), -ENOENT);
  EXPECT_EQ(loom_stat(other, "/renamed", &st), 0);
  EXPECT_EQ(loom_remove(other, "/renamed"), 0);
  loom_disconnect(other);
  EXPECT_STREQ(loom_version(), "0.1.0");
}

TEST_F(CApiTest, TheLastErrorIsPerThread) {
  loom_stat_t st;
  ASSERT_EQ(loom_stat(c_, "/not-here", &st), -ENOENT);
  const std::string mine = LastError();
  EXPECT_NE(mine.find("/not-here"), std::string::npos);
  std::string theirs;
  std::thread t([&] {
    theirs = loom_last_error();  // nothing failed on this thread yet
    (void)loom_mkdir(nullptr, "/x", 0);
    theirs += "|" + std::string(loom_last_error());
  });
  t.join();
  EXPECT_EQ(theirs, "|invalid argument: null argument");
  EXPECT_EQ(LastError(), mine);
}

}  // namespace
}  // namespace loom::nfs4
