// Test helpers for process tests of the daemons: start a binary with its output in a log file
// (optionally with a lowered descriptor limit), wait for its "ready ... port N" line, look at
// its /proc entries.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace loom::testing {

inline std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Polls cond() every 20 ms for up to `seconds`; the tests assert the state reached, never the
// time it took.
template <typename F>
bool Eventually(F cond, int seconds = 30) {
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < until) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return cond();
}

// A daemon started by the test, its stdout and stderr in `log`.
class Daemon {
 public:
  ~Daemon() { Stop(); }
  // Starts `argv`; nofile > 0 sets its RLIMIT_NOFILE (soft and hard) before exec.
  bool Start(std::vector<std::string> argv, std::string log, rlim_t nofile = 0) {
    log_ = std::move(log);
    pid_ = ::fork();
    if (pid_ == 0) {
      int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      if (nofile > 0) {
        rlimit rl{nofile, nofile};
        ::setrlimit(RLIMIT_NOFILE, &rl);
      }
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      _exit(127);
    }
    bool ready = Eventually([&] {
      std::string s = ReadFile(log_);
      auto p = s.find(" ready");
      if (p == std::string::npos) return !Alive();
      auto q = s.find(" port ", p);
      if (q == std::string::npos) return false;
      port_ = static_cast<uint16_t>(std::stoi(s.substr(q + 6)));
      return true;
    });
    return ready && Alive() && port_ != 0;
  }
  void Stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }
  // False once the daemon has exited (it is then reaped and never signalled again).
  bool Alive() {
    if (pid_ <= 0) return false;
    if (::waitpid(pid_, nullptr, WNOHANG) == 0) return true;
    pid_ = -1;
    return false;
  }
  uint16_t port() const { return port_; }
  std::string addr() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string log() const { return ReadFile(log_); }
  // Descriptors the daemon has open.
  size_t Fds() const {
    size_t n = 0;
    std::error_code ec;
    for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid_) + "/fd", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
      n++;
    return n;
  }
  // VmData of /proc/PID/status in KiB (private writable memory it has reserved).
  size_t VmDataKb() const {
    std::string s = ReadFile("/proc/" + std::to_string(pid_) + "/status");
    auto p = s.find("VmData:");
    return p == std::string::npos ? 0 : std::stoul(s.substr(p + 7));
  }

 private:
  std::string log_;
  pid_t pid_ = -1;
  uint16_t port_ = 0;
};

}  // namespace loom::testing
