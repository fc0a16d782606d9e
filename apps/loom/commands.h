// The commands of `loom`, each `int Cmd...(Ctx&, args after the command name)` returning the
// exit status, and each with its --help text. main.cc has the table.
#pragma once

#include <string>
#include <vector>

#include "cli.h"

namespace loom::cli {

using CommandFn = int (*)(Ctx&, const std::vector<std::string>&);

// cmd_fs.cc
int CmdLs(Ctx&, const std::vector<std::string>&);
int CmdStat(Ctx&, const std::vector<std::string>&);
int CmdCat(Ctx&, const std::vector<std::string>&);
int CmdMkdir(Ctx&, const std::vector<std::string>&);
int CmdRm(Ctx&, const std::vector<std::string>&);
int CmdMv(Ctx&, const std::vector<std::string>&);
int CmdDu(Ctx&, const std::vector<std::string>&);
int CmdDf(Ctx&, const std::vector<std::string>&);
extern const char kLsHelp[], kStatHelp[], kCatHelp[], kMkdirHelp[], kRmHelp[], kMvHelp[], kDuHelp[], kDfHelp[];

// cmd_cp.cc
int CmdCp(Ctx&, const std::vector<std::string>&);
int CmdPut(Ctx&, const std::vector<std::string>&);
int CmdGet(Ctx&, const std::vector<std::string>&);
extern const char kCpHelp[], kPutHelp[], kGetHelp[];

// cmd_status.cc: the cluster (status, layout) and the admin program of loom-mds.
int CmdStatus(Ctx&, const std::vector<std::string>&);
int CmdLayout(Ctx&, const std::vector<std::string>&);
// `loom admin [--server HOST[:PORT]] [--timeout S] ARGS...`; also `loom ds|policy|mv-data|fence`
// with the command word put back in front of args.
int CmdAdmin(Ctx&, const std::vector<std::string>&);
extern const char kStatusHelp[], kLayoutHelp[], kAdminHelp[], kDsHelp[], kPolicyHelp[], kMvDataHelp[],
    kFenceHelp[];

// Runs argv on the metadata server's admin program (as `loom admin` does) and returns the
// reply: status -1 when it could not be reached (error then says why).
struct AdminResult {
  int status = -1;
  std::string output;
  std::string error;
};
AdminResult CallAdminOn(const std::string& server, const std::vector<std::string>& argv, int timeout_ms);

}  // namespace loom::cli
