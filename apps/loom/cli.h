// The `loom` command-line tool: what its commands share (exit codes, error messages, flag
// parsing, remote paths, the libloom connection). Each cmd_*.cc holds a group of commands;
// main.cc holds the table that names them.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "loom/client.h"

namespace loom::cli {

namespace lc = loom::client;

// Exit statuses, one per error class (docs/cli.md; `loom --help` prints the same table).
// The admin commands (admin, ds, policy, mv-data, fence) keep the status the metadata server
// answers (13: permission denied) and 1 when it cannot be reached, as they always have.
enum Exit : int {
  kExitOk = 0,
  kExitError = 1,        // anything not below: I/O error, protocol error, local error
  kExitUsage = 2,        // bad arguments, unknown command or flag
  kExitNotFound = 3,     // no such file or directory
  kExitExists = 4,       // the destination exists (cp/mv without -f, mkdir without -p)
  kExitPermission = 5,   // permission denied, read-only export or file system
  kExitNoSpace = 6,      // no space left, quota exceeded
  kExitUnavailable = 7,  // the metadata server or a data server cannot be reached, timeout
  kExitWrongType = 8,    // is a directory, not a directory, directory not empty
  kExitChecksum = 9,     // cp --checksum: the copy's SHA-256 differs from the source's
  kExitDegraded = 10,    // status: reachable, but a data server is down or unknown
  kExitInterrupted = 130 // SIGINT/SIGTERM (the copy's temporary files are removed)
};
extern const char kExitCodesHelp[];

int ExitFor(lc::Errc c);
// A local OS error as a libloom Status (ENOENT -> kNotFound, ...); `what` names the object.
lc::Status FromErrno(int err, const std::string& what);
// "interrupted" (SIGINT/SIGTERM) as a Status; ExitFor gives kExitInterrupted for it via
// IsInterrupted.
lc::Status Interrupted();
bool IsInterrupted(const lc::Status& s);

// Set by the SIGINT/SIGTERM handler that copies install; they poll it and remove their
// temporary files. A second signal ends the process (the default action).
extern std::atomic<bool> g_interrupted;
void InstallSignalHandlers();

// Options before the command (see main.cc).
struct Globals {
  std::string mds;       // HOST:PORT, normalized (default port 20490)
  int retry_for_ms = -1; // --retry-for; -1: libloom's default
  bool pnfs = true;
};

// One run of one command: its name for messages and the (lazily made) libloom client.
class Ctx {
 public:
  Ctx(Globals g, std::string cmd) : globals_(std::move(g)), cmd_(std::move(cmd)) {}
  ~Ctx();
  const Globals& globals() const { return globals_; }
  const std::string& cmd() const { return cmd_; }

  // Connects on first use; null after printing the error (status() then has it).
  std::shared_ptr<lc::Client> client();
  // A client whose calls give up sooner (status, layout probes): timeout_ms per call and
  // for retries unless --retry-for says otherwise.
  std::shared_ptr<lc::Client> client_quick(int timeout_ms, bool quiet);
  const lc::Status& status() const { return connect_status_; }
  int connect_exit() const { return ExitFor(connect_status_.code()); }

  // "loom: CMD: WHAT: no such file or directory (NFS4ERR_NOENT)" on stderr; the exit status.
  int Fail(const std::string& what, const lc::Status& s) const;
  // "loom: CMD: MSG" + a hint to --help on stderr; kExitUsage.
  int Usage(const std::string& msg) const;
  // "loom: CMD: MSG" on stderr (a warning or a note).
  void Note(const std::string& msg) const;

 private:
  lc::Options MakeOptions() const;

  Globals globals_;
  std::string cmd_;
  std::shared_ptr<lc::Client> client_;
  lc::Status connect_status_;
};

// The words of a Status for a message: "no such file or directory (NFS4ERR_NOENT)".
std::string ErrorWords(const lc::Status& s);

// ---------------------------------------------------------------- flags

struct FlagSpec {
  char short_name;        // 0: none
  const char* long_name;  // without "--"; nullptr: none
  bool takes_value;
};

// GNU-style: flags anywhere before "--", "-lR" combined, "-j4" / "-j 4", "--jobs=4" / "--jobs 4".
// Flags are looked up by long name (or the short letter as a string when there is none).
class Flags {
 public:
  // False (with *error set) on an unknown flag or a missing value.
  bool Parse(const std::vector<std::string>& args, const std::vector<FlagSpec>& spec, std::string* error);
  bool Has(const std::string& name) const;
  std::string Value(const std::string& name, const std::string& dflt = "") const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::vector<std::pair<std::string, std::string>> set_;
  std::vector<std::string> positional_;
};

// True when args has --help before any "--" (each command answers it with its help).
bool WantsHelp(const std::vector<std::string>& args);

// ---------------------------------------------------------------- paths

// Remote paths are written "loom:/a/b" (cp and its aliases need the prefix to tell them from
// local ones; the other commands take remote paths with or without it).
bool HasRemotePrefix(const std::string& s);
// "loom:/a//b/" / "/a/b" / "a/b" -> "/a/b"; "loom:" and "/" -> "/". Empty -> "" (an error
// for the caller to report).
std::string RemotePath(const std::string& s);
std::string JoinPath(const std::string& dir, const std::string& name);
// The last component ("/" and "" have none: ""). Trailing slashes are ignored.
std::string BaseName(const std::string& path);
// The directory part of a path ("/a" -> "/", "a" -> ".", "a/b" -> "a").
std::string DirName(const std::string& path);

// HOST, HOST:PORT, [V6], [V6]:PORT or a bare IPv6 address, as HOST:PORT (`port` when none).
std::string WithPort(const std::string& s, int port);
constexpr int kDefaultMdsPort = 20490;  // libloom's and scripts/loom-up.sh's
std::string DefaultMds();               // $LOOM_MDS, else 127.0.0.1:20490

// ---------------------------------------------------------------- printing

// 1536 -> "1.5K" (ls -h, du -h, df -h) / "1.5 KiB" (progress, status).
std::string HumanShort(uint64_t bytes);
std::string HumanLong(uint64_t bytes);
std::string ModeString(lc::FileType t, uint32_t mode);  // "drwxr-xr-x"
bool ParseUint(const std::string& s, uint64_t max, uint64_t* out);

}  // namespace loom::cli
