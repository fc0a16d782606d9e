// loom: the command-line client of a Loom cluster, on libloom (include/loom/client.h): files
// in and out (cp/put/get), the namespace (ls, stat, mkdir, rm, mv, du, df), the cluster
// (status, layout) and the metadata server's admin program (admin, ds, policy, mv-data,
// fence). docs/cli.md is the manual; `loom --help` and `loom CMD --help` say the same.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bench.h"
#include "commands.h"

namespace loom::cli {
namespace {

int CmdBench(Ctx&, const std::vector<std::string>& args) { return RunBench(args); }

struct Command {
  const char* name;
  const char* summary;
  const char* help;  // nullptr: the command answers --help itself (bench)
  CommandFn run;
  // Admin shorthands forward their arguments to the server untouched: only a leading
  // --help is taken here (`loom ds --help`), so `loom admin echo --help` still reaches it.
  bool forwards = false;
};

const char kBenchSummary[] = "benchmarks through libloom (loom bench --help)";

const Command kCommands[] = {
    {"ls", "list directories", kLsHelp, CmdLs},
    {"stat", "attributes of a file or directory", kStatHelp, CmdStat},
    {"cat", "write files to standard output", kCatHelp, CmdCat},
    {"cp", "copy files and trees in, out of or within Loom (loom:/PATH)", kCpHelp, CmdCp},
    {"put", "cp LOCAL loom:REMOTE", kPutHelp, CmdPut},
    {"get", "cp loom:REMOTE LOCAL", kGetHelp, CmdGet},
    {"mv", "rename within Loom", kMvHelp, CmdMv},
    {"rm", "remove files (and trees with -r)", kRmHelp, CmdRm},
    {"mkdir", "make directories", kMkdirHelp, CmdMkdir},
    {"du", "bytes under directories", kDuHelp, CmdDu},
    {"df", "space and files of the file system", kDfHelp, CmdDf},
    {"layout", "where a file's bytes live", kLayoutHelp, CmdLayout},
    {"status", "the metadata server, data servers, capacity and health", kStatusHelp, CmdStatus},
    {"bench", kBenchSummary, nullptr, CmdBench},
    {"admin", "run an admin command on the metadata server (root)", kAdminHelp, CmdAdmin, true},
    {"ds", "data servers: list, add, drain, undrain, remove (admin)", kDsHelp, CmdAdmin, true},
    {"policy", "placement policy of a directory: get, set (admin)", kPolicyHelp, CmdAdmin, true},
    {"mv-data", "move a file's bytes to other data servers (admin)", kMvDataHelp, CmdAdmin, true},
    {"fence", "recall a file's layouts and fence its holders (admin)", kFenceHelp, CmdAdmin, true},
};

const Command* Find(const std::string& name) {
  for (const auto& c : kCommands)
    if (name == c.name) return &c;
  return nullptr;
}

void Usage(std::FILE* out) {
  std::fprintf(out,
               "usage: loom [--mds HOST[:PORT]] [--retry-for SECONDS] [--no-pnfs] COMMAND [ARGS...]\n"
               "       loom --version | --help | help COMMAND | COMMAND --help\n"
               "Commands:\n");
  for (const auto& c : kCommands) std::fprintf(out, "  %-8s %s\n", c.name, c.summary);
  std::fprintf(out,
               "Loom paths are absolute from the file system's root; cp writes them loom:/PATH.\n"
               "Options:\n"
               "  --mds HOST[:PORT]    the metadata server (host names are fine; default port %d);\n"
               "                       default $LOOM_MDS, else 127.0.0.1:%d (scripts/loom-up.sh)\n"
               "  --retry-for SECONDS  how long a call is retried while a server is unreachable,\n"
               "                       restarting or in its grace period (default 120)\n"
               "  --no-pnfs            no layouts: all bytes go through the metadata server\n"
               "  --version            libloom's version\n",
               kDefaultMdsPort, kDefaultMdsPort);
  std::fputs(kExitCodesHelp, out);
}

}  // namespace
}  // namespace loom::cli

int main(int argc, char** argv) {
  using namespace loom::cli;
  Globals g;
  g.mds = DefaultMds();
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      Usage(stdout);
      return kExitOk;
    }
    if (a == "--version") {
      std::printf("loom %s (libloom %s)\n", LOOM_CLI_VERSION, loom::client::Version());
      return kExitOk;
    }
    if (a == "--no-pnfs") {
      g.pnfs = false;
      continue;
    }
    if (a == "--mds" || a == "--retry-for") {
      if (i + 1 >= argc || argv[i + 1][0] == '\0') {
        std::fprintf(stderr, "loom: %s needs a value\n", a.c_str());
        return kExitUsage;
      }
      std::string v = argv[++i];
      if (a == "--mds") {
        g.mds = WithPort(v, kDefaultMdsPort);
      } else {
        uint64_t s;
        if (!ParseUint(v, 86400 * 365, &s)) {
          std::fprintf(stderr, "loom: --retry-for wants seconds, got '%s'\n", v.c_str());
          return kExitUsage;
        }
        g.retry_for_ms = static_cast<int>(std::min<uint64_t>(s * 1000, INT32_MAX));
      }
      continue;
    }
    std::fprintf(stderr, "loom: unknown option '%s'\n", a.c_str());
    Usage(stderr);
    return kExitUsage;
  }
  if (i >= argc) {
    Usage(stderr);
    return kExitUsage;
  }
  std::string name = argv[i++];
  std::vector<std::string> args(argv + i, argv + argc);
  if (name == "help") {
    if (args.empty()) {
      Usage(stdout);
      return kExitOk;
    }
    name = args[0];
    args = {"--help"};
  }
  const Command* cmd = Find(name);
  if (!cmd) {
    std::fprintf(stderr, "loom: unknown command '%s'\n", name.c_str());
    Usage(stderr);
    return kExitUsage;
  }
  if (cmd->help && (cmd->forwards ? (!args.empty() && args[0] == "--help") : WantsHelp(args))) {
    std::fputs(cmd->help, stdout);
    return kExitOk;
  }
  // The shorthands are admin commands with their first word kept (`loom ds list`).
  if (cmd->forwards && name != "admin") args.insert(args.begin(), name);
  Ctx ctx(g, name);
  int rc = cmd->run(ctx, args);
  std::fflush(stdout);
  return rc;
}
