// A registry of admin commands for loom-mds, and helpers to parse their arguments.
//
//   AdminCommands cmds;
//   cmds.Add("ds list", "ds list", /*read_only=*/true, [&](const auto& args) { ... });
//   cmds.Add("ds drain", "ds drain ID", false, [&](const auto& args) { ... });
//   server.Register(AdminProgram(cmds));   // authorization uses each command's read_only flag
//
// A command is named by one or more words; a command line runs the command whose name is the
// longest run of leading words it matches, and the command gets the words after its name.
// "help [WORDS...]" lists the usages (of the commands starting with WORDS). A line that names
// no command answers kAdminUsage with the usage list. A command that answers kAdminUsage with
// no output gets "usage: <its usage>"; with output, the usage line is appended to it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "admin/admin_rpc.h"
#include "common/status.h"

namespace loom::admin {

using CommandFn = std::function<AdminReply(const std::vector<std::string>& args)>;

// Thread-safe: commands may be added while others are dispatched.
class AdminCommands {
 public:
  // `name`: the command's words separated by spaces ("ds list"); a name added again replaces
  // the earlier command. `usage`: one line, e.g. "ds add HOST:PORT[@ADV] [--label k=v]...".
  // `read_only`: the command changes nothing (callers from read-only exports may run it).
  void Add(std::string name, std::string usage, bool read_only, CommandFn fn);

  // Runs the command argv names. Exceptions a command throws are answered kAdminFailed with
  // their message rather than reaching the RPC worker.
  AdminReply Dispatch(const rpc::CallContext& ctx, const std::vector<std::string>& argv) const;

  // Whether argv may run from a read-only export: help, lines that name no command (they only
  // print the usage) and commands added with read_only.
  bool IsReadOnly(const std::vector<std::string>& argv) const;

  // "usage:\n  <usage>\n..." for every command (sorted by name) whose name starts with `words`.
  std::string Usage(const std::vector<std::string>& words = {}) const;

 private:
  struct Command {
    std::vector<std::string> words;
    std::string usage;
    bool read_only = false;
    CommandFn fn;
  };
  // The command with the longest name that argv starts with (copied out under the lock).
  std::optional<Command> Find(const std::vector<std::string>& argv) const;

  mutable std::mutex mu_;
  std::map<std::string, Command> commands_;  // by name; guarded by mu_
};

// The program table for an RpcServer, authorizing with cmds.IsReadOnly and dispatching to
// cmds. REQUIRES: `cmds` outlives the server.
rpc::ProgramDesc AdminProgram(const AdminCommands& cmds, size_t max_output = 1u << 20);

// ---- Argument helpers for commands -------------------------------------------------------

// A command's arguments split into positionals and flags. Flags are "--key value" or
// "--key=value" (value flags) and "--key" (switches); "--" ends the flags. Repeated flags
// keep every value in order (--label a=1 --label b=2).
struct ParsedArgs {
  std::vector<std::string> positional;
  std::map<std::string, std::vector<std::string>> values;  // key without "--"
  std::map<std::string, int> switches;                     // key without "--" -> times given

  bool Has(const std::string& key) const { return values.count(key) || switches.count(key); }
  // The value given (the last one when repeated), or nullopt.
  std::optional<std::string> Get(const std::string& key) const;
  // Every value given, in order (empty when none).
  const std::vector<std::string>& All(const std::string& key) const;
  // Get(key) as an integer in [lo, hi]; nullopt when absent; an error names the flag.
  Result<std::optional<uint64_t>> GetUint(const std::string& key, uint64_t lo, uint64_t hi) const;
  // Get(key) as a byte count with an optional K/M/G/T suffix (ParseSize).
  Result<std::optional<uint64_t>> GetSize(const std::string& key) const;
  // Every value of `key` as k=v labels (ParseLabel); a key given twice is an error.
  Result<std::map<std::string, std::string>> GetLabels(const std::string& key = "label") const;
  // Every value of `key`, each a comma list of ids, concatenated (ParseIdList).
  Result<std::vector<uint32_t>> GetIds(const std::string& key) const;
};

// Splits args. `value_flags` and `switch_flags` name the flags allowed (without "--"); any
// other "--x" is an error, as is a value flag with no value. A lone "-" is a positional.
Result<ParsedArgs> ParseFlags(const std::vector<std::string>& args,
                              const std::vector<std::string>& value_flags,
                              const std::vector<std::string>& switch_flags = {});

// Decimal integer in [lo, hi] (no sign, no spaces).
Result<uint64_t> ParseUint(const std::string& s, uint64_t lo = 0, uint64_t hi = UINT64_MAX);
// Byte count: digits with an optional binary suffix K, M, G or T (also k/m/g/t, KiB/MiB/GiB/TiB
// and KB... meaning the same powers of 1024): "1M" = 1048576. Overflow is an error.
Result<uint64_t> ParseSize(const std::string& s);
// "k=v": k is 1-64 characters of [A-Za-z0-9._-]; v is 0-256 printable characters without
// spaces or commas.
Result<std::pair<std::string, std::string>> ParseLabel(const std::string& s);
// "1,2,5": data-server ids (1 .. 2^32-1), no empty items, no repeats.
Result<std::vector<uint32_t>> ParseIdList(const std::string& s);

// Replies for commands.
inline AdminReply Ok(std::string output = "") { return {kAdminOk, std::move(output)}; }
inline AdminReply Failed(std::string output) { return {kAdminFailed, std::move(output)}; }
// Dispatch appends the command's usage line.
inline AdminReply UsageError(std::string message = "") { return {kAdminUsage, std::move(message)}; }
// A Status as a reply: OK -> kAdminOk with `ok_output`; an error -> kAdminFailed (kAdminUsage
// for kInvalidArgument) with the status text.
AdminReply FromStatus(const Status& s, std::string ok_output = "");

}  // namespace loom::admin
