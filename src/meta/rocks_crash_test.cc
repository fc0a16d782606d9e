// Crash durability of RocksKvStore: a child process creates entries and reports each one only
// after its Commit returned; the parent SIGKILLs it right after a report, reopens the database
// and must find every reported entry (and at most one more: a commit that finished but was
// not reported yet).
//
// The child is this same test binary, started with fork + exec so that it begins with a
// clean RocksDB (a fork alone would inherit the parent's RocksDB background threads' state
// without the threads).
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "meta/namespace.h"
#include "meta/rocks_kv.h"
#include "meta/test_util.h"

extern char** environ;

namespace loom::meta {
namespace {

constexpr FsId kFs = 3;
constexpr const char* kTestName = "RocksCrashTest.AcknowledgedCreatesSurviveSigkill";
constexpr const char* kDirEnv = "LOOM_META_CRASH_DIR";
constexpr const char* kFdEnv = "LOOM_META_CRASH_FD";
constexpr const char* kRoundEnv = "LOOM_META_CRASH_ROUND";

Result<std::unique_ptr<RocksKvStore>> OpenDb(const std::string& path) {
  RocksKvStore::Options o;
  o.path = path;  // sync writes: the default
  return RocksKvStore::Open(o);
}

// The child: create entries forever, reporting "name ino" after each commit.
[[noreturn]] void RunChild(const char* path, int fd, const char* round) {
  auto store = OpenDb(path);
  if (!store.ok()) _exit(2);
  Namespace ns(store->get(), kFs);
  for (uint64_t i = 0;; ++i) {
    std::string name = std::string("r") + round + "-" + std::to_string(i);
    CreateArgs a;
    if (i % 10 == 9) {
      a.type = FileType::kDir;
    } else {
      a.layout = Layout{1 << 20, 1, {Mirror{{DataFile{1, "fh-" + name, 1, 1}}}}};
    }
    auto r = RunTxn(**store, [&](Txn& t) { return ns.Create(t, kRootIno, name, a); });
    if (!r.ok()) _exit(3);
    std::string line = name + " " + std::to_string(r->inode.ino) + "\n";
    if (::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) _exit(4);
  }
}

TEST(RocksCrashTest, AcknowledgedCreatesSurviveSigkill) {
  if (const char* dir = std::getenv(kDirEnv)) {
    RunChild(dir, std::atoi(std::getenv(kFdEnv)), std::getenv(kRoundEnv));
  }
  testing::TempDir tmp;
  const std::string path = tmp.path() + "/db";
  {
    auto store = OpenDb(path);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    Namespace ns(store->get(), kFs);
    ASSERT_TRUE(RunTxn(**store, [&](Txn& t) { return ns.Mkfs(t, 0755, 0, 0); }).ok());
  }

  std::map<std::string, Ino> acked;
  constexpr int kRounds = 3;
  for (int round = 0; round < kRounds; ++round) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    // Everything the child needs is built before fork: only exec runs after it.
    std::vector<std::string> env_strings = {std::string(kDirEnv) + "=" + path,
                                            std::string(kFdEnv) + "=" + std::to_string(fds[1]),
                                            std::string(kRoundEnv) + "=" + std::to_string(round)};
    std::vector<char*> envp;
    for (char** e = environ; *e; ++e) envp.push_back(*e);
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::string filter = std::string("--gtest_filter=") + kTestName;
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      int devnull = ::open("/dev/null", O_WRONLY);  // keep the child's gtest chatter out
      ::dup2(devnull, 1);
      ::execle("/proc/self/exe", "meta_test", filter.c_str(), static_cast<char*>(nullptr),
               envp.data());
      _exit(127);
    }
    ::close(fds[1]);
    // Whatever assertion fails below, the child does not outlive the test.
    std::unique_ptr<pid_t, void (*)(pid_t*)> reaper(&pid, [](pid_t* p) {
      if (*p > 0) {
        ::kill(*p, SIGKILL);
        ::waitpid(*p, nullptr, 0);
      }
    });
    FILE* in = ::fdopen(fds[0], "r");
    // Kill after a different number of acknowledgements each round.
    const int want = 40 + 30 * round;
    int got = 0;
    char line[256];
    while (got < want && std::fgets(line, sizeof line, in)) {
      char name[200];
      unsigned long long ino;
      ASSERT_EQ(std::sscanf(line, "%199s %llu", name, &ino), 2) << line;
      acked[name] = ino;
      if (++got == want) ::kill(pid, SIGKILL);  // right after the report
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    pid = 0;  // reaped
    std::fclose(in);
    ASSERT_EQ(got, want) << "child exited early, status " << status;
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;

    auto store = OpenDb(path);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    Namespace ns(store->get(), kFs);
    for (const auto& [name, ino] : acked) {
      auto d = RunTxn(**store, [&](Txn& t) { return ns.Lookup(t, kRootIno, name); });
      ASSERT_TRUE(d.ok()) << name << ": " << d.status().ToString();
      EXPECT_EQ(d->ino, ino);
      auto attr = RunTxn(**store, [&](Txn& t) { return ns.GetAttr(t, ino); });
      ASSERT_TRUE(attr.ok()) << name;
    }
    auto page = RunTxn(**store, [&](Txn& t) { return ns.ReadDir(t, kRootIno, 0, 100000); });
    ASSERT_TRUE(page.ok());
    // Per round at most one commit may have finished without its report getting through.
    EXPECT_GE(page->entries.size(), acked.size());
    EXPECT_LE(page->entries.size(), acked.size() + round + 1);
  }
}

}  // namespace
}  // namespace loom::meta
