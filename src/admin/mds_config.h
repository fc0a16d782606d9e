// The loom-mds configuration file (loom-mds --config FILE).
//
//   # comment (a '#' at the start of a line or after a space starts a comment)
//   listen      = 0.0.0.0:2049
//   state_dir   = /var/lib/loom/mds
//   lease       = 90            # seconds (an "s" suffix is allowed)
//   grace       = 90
//   advertise   = 10.0.0.5      # host told to clients for every ds without @
//   pnfs        = on            # on|off (also yes/no, true/false, 1/0)
//   mirrors     = 2             # 1..3
//   stripes     = 1             # 1..64
//   stripe_unit = 1M            # bytes; K/M/G/T suffixes are powers of 1024
//   exports     = /etc/loom/exports
//   stats_file  = /run/loom/mds-stats.json
//   ds = 10.0.0.11:2050 label=site=a label=tier=ssd
//   ds = 127.0.0.1:2051@10.0.0.12:2051
//
// Every key but `ds` may be given once. `ds` repeats, one data server each, in order:
// HOST:PORT[@ADVHOST[:ADVPORT]] followed by zero or more label=KEY=VALUE words; HOST:PORT is
// where loom-mds reaches it, the part after @ is what clients are told (ADVPORT defaults to
// PORT). IPv6 hosts are written in brackets: [fd00::1]:2050. Relative paths (state_dir, exports,
// stats_file) are taken relative to the directory of the configuration file, so a file and
// the state it names can move together. Unknown keys, bad values and repeated keys are
// errors naming FILE:LINE. Command-line flags given beside --config override the file (the
// caller applies that rule; this parser only reads).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace loom::admin {

struct MdsConfigDataServer {
  std::string address;     // HOST:PORT that loom-mds connects to
  std::string advertised;  // ADVHOST:ADVPORT told to clients; "" when not given
  std::map<std::string, std::string> labels;
  std::string where;       // "FILE:LINE", for messages
};

struct MdsConfig {
  std::optional<std::string> listen;
  std::optional<std::string> state_dir;
  std::optional<uint32_t> lease_seconds;
  std::optional<uint32_t> grace_seconds;
  std::optional<std::string> advertise;  // a host (no port)
  std::optional<bool> pnfs;
  std::optional<uint32_t> mirrors;
  std::optional<uint32_t> stripes;
  std::optional<uint64_t> stripe_unit;   // bytes
  std::optional<std::string> exports;    // path of an export-rules file
  std::optional<std::string> stats_file;
  std::vector<MdsConfigDataServer> data_servers;
};

// Reads and parses `path`. Errors: the file cannot be read, or "FILE:LINE: what is wrong".
Result<MdsConfig> ParseMdsConfig(const std::string& path);

// Parses configuration text; `source` names it in errors and (its directory) anchors
// relative paths ("" or a name without '/': paths stay as written).
Result<MdsConfig> ParseMdsConfigText(const std::string& text, const std::string& source);

// Splits "HOST:PORT" or "[IPV6]:PORT" (port 0..65535; host names are not resolved here);
// errors say what is wrong. `default_port` >= 0 allows "HOST" alone (then port = default_port).
Status SplitHostPort(const std::string& s, std::string* host, uint16_t* port,
                     int default_port = -1);

}  // namespace loom::admin
