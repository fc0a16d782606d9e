// The Loom administration program: `loom admin ...` on one side, loom-mds on the other.
//
// An ONC RPC program (RFC 5531) served on the metadata server's port beside NFSv4; its wire
// types are in src/xdr/spec/loom_admin.x. Procedure 1 carries a command line (argv, at most
// LOOM_ADMIN_MAXARGS words of at most LOOM_ADMIN_MAXARGLEN bytes) and returns an exit status
// and the command's output. Who may run what is decided here, before the handler sees the
// call (docs/security.md has the export rules):
//   - only a caller whose AUTH_SYS uid is 0 after its export rule mapped it (root_squash turns
//     a remote root into 65534, which is refused);
//   - a caller admitted by a read-only ("ro") export rule may run only read-only commands.
// A refused call still succeeds at the RPC level and answers kAdminDenied with a message, so
// the CLI can say why.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/status.h"
#include "rpc/auth.h"
#include "rpc/server.h"
#include "xdr/loom_admin.h"

namespace loom::admin {

constexpr uint32_t kAdminProgram = LOOM_ADMIN_PROGRAM;  // 0x20004C4D
constexpr uint32_t kAdminVersion = LOOM_ADMIN_V1;       // 1
constexpr size_t kMaxArgs = LOOM_ADMIN_MAXARGS;         // 64
constexpr size_t kMaxArgLen = LOOM_ADMIN_MAXARGLEN;     // 4096

// Exit statuses with a fixed meaning (shell conventions); commands use others freely.
constexpr int kAdminOk = 0;
constexpr int kAdminFailed = 1;   // the command ran and failed
constexpr int kAdminUsage = 2;    // unknown command or bad arguments
constexpr int kAdminDenied = 13;  // EACCES: the caller may not run this command

// What a command answers: the exit status of `loom admin` and the text it prints.
struct AdminReply {
  int status = kAdminOk;
  std::string output;
};

// Runs an authorized command line. Called on a worker thread, possibly concurrently.
using AdminHandler =
    std::function<AdminReply(const rpc::CallContext&, const std::vector<std::string>& argv)>;

// Whether a command line only reads (may run from a read-only export).
using ReadOnlyPredicate = std::function<bool(const std::vector<std::string>& argv)>;

struct AdminProgramOptions {
  // Command prefixes, in words, that only read: argv is read-only when its first words equal
  // one of these ("ds list" matches {"ds", "list", ...}). Used when `is_read_only` is empty.
  std::vector<std::string> read_only_prefixes = {"help", "ds list", "policy get", "layout"};
  // Overrides read_only_prefixes (AdminCommands::IsReadOnly fits here).
  ReadOnlyPredicate is_read_only;
  // Output beyond this many bytes is cut, with a note, so a reply always fits a client's
  // record limit (rpc::Connection::Options::max_record, 1 MiB + 64 KiB by default).
  size_t max_output = 1u << 20;
};

// The message refused calls get (followed by a line saying how the call arrived).
extern const char kAdminDeniedMessage[];

// True when the first words of argv equal the words of one of `prefixes`.
bool MatchesPrefix(const std::vector<std::string>& argv, const std::vector<std::string>& prefixes);

// Why the call may not run `argv` ("" when it may): not AUTH_SYS uid 0, or a read-only
// export and a command that is not read-only.
std::string AdminRefusal(const rpc::CallContext& ctx, const std::vector<std::string>& argv,
                         const ReadOnlyPredicate& is_read_only);

// The program table to register with an RpcServer (beside the NFSv4 program, same port).
// NULL answers anyone; COMMAND decodes argv (GARBAGE_ARGS when malformed or over the bounds),
// authorizes, then calls `handler`. The call's op_status is the exit status, so refused and
// failed commands count as errors in the "admin.COMMAND" counters.
rpc::ProgramDesc AdminProgram(AdminHandler handler, AdminProgramOptions opts = {});

// Client side: connects to HOST:PORT ("[v6addr]:port" for IPv6; host names are resolved),
// sends argv with `cred`, waits at most timeout_ms for the reply. Errors: cannot resolve or
// connect (Unavailable/Timeout/...), the server lacks the program (PROG_UNAVAIL, e.g. a
// loom-ds), arguments over the bounds (Invalid, checked before sending).
Result<AdminReply> CallAdmin(const std::string& host_port, const std::vector<std::string>& argv,
                             rpc::Cred cred, int timeout_ms);

// Resolves the host part of HOST:PORT to every numeric "ip:port" / "[ip6]:port" it names
// (numeric hosts are returned as they are).
Result<std::vector<std::string>> ResolveHostPort(const std::string& host_port);

}  // namespace loom::admin
