// Admin command registry and argument helpers.
#include "admin/commands.h"

#include <algorithm>
#include <cctype>
#include <exception>
#include <set>

#include "admin/util.h"

namespace loom::admin {

namespace {

using internal::SplitWords;

bool StartsWith(const std::vector<std::string>& argv, const std::vector<std::string>& words) {
  if (words.size() > argv.size()) return false;
  for (size_t i = 0; i < words.size(); i++) {
    if (argv[i] != words[i]) return false;
  }
  return true;
}

std::string Join(const std::vector<std::string>& w) {
  std::string s;
  for (const auto& x : w) s += (s.empty() ? "" : " ") + x;
  return s;
}

// A word quoted for a message (control characters replaced, long words cut).
std::string Quote(const std::string& s) {
  std::string w = s.size() > 80 ? s.substr(0, 80) + "..." : s;
  for (char& c : w) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return "'" + w + "'";
}

}  // namespace

void AdminCommands::Add(std::string name, std::string usage, bool read_only, CommandFn fn) {
  Command c;
  c.words = SplitWords(name);
  c.usage = std::move(usage);
  c.read_only = read_only;
  c.fn = std::move(fn);
  std::lock_guard<std::mutex> l(mu_);
  commands_[Join(c.words)] = std::move(c);
}

std::optional<AdminCommands::Command> AdminCommands::Find(
    const std::vector<std::string>& argv) const {
  std::lock_guard<std::mutex> l(mu_);
  const Command* best = nullptr;
  for (const auto& [name, c] : commands_) {
    if (c.words.empty() || !StartsWith(argv, c.words)) continue;
    if (!best || c.words.size() > best->words.size()) best = &c;
  }
  if (!best) return std::nullopt;
  return *best;
}

std::string AdminCommands::Usage(const std::vector<std::string>& words) const {
  std::lock_guard<std::mutex> l(mu_);
  std::string out;
  for (const auto& [name, c] : commands_) {
    // "help ds" lists "ds ..." commands; "help ds list extra" still lists "ds list".
    size_t n = std::min(words.size(), c.words.size());
    bool match = true;
    for (size_t i = 0; i < n && match; i++) match = words[i] == c.words[i];
    if (match) out += "  " + c.usage + "\n";
  }
  if (out.empty()) return "";
  return "usage:\n" + out + "  help [COMMAND]\n";
}

AdminReply AdminCommands::Dispatch(const rpc::CallContext& ctx,
                                   const std::vector<std::string>& argv) const {
  (void)ctx;
  if (argv.empty()) return {kAdminUsage, "no command given\n" + Usage()};
  if (argv[0] == "help") {
    std::vector<std::string> topic(argv.begin() + 1, argv.end());
    std::string u = Usage(topic);
    if (u.empty()) return {kAdminUsage, "no command " + Quote(Join(topic)) + "\n" + Usage()};
    return {kAdminOk, u};
  }
  std::optional<Command> c = Find(argv);
  if (!c) {
    // A known first word ("ds") with an unknown rest: list just that group.
    std::string group = Usage({argv[0]});
    return {kAdminUsage,
            "unknown command " + Quote(Join(argv)) + "\n" + (group.empty() ? Usage() : group)};
  }
  std::vector<std::string> args(argv.begin() + static_cast<long>(c->words.size()), argv.end());
  AdminReply r;
  try {
    r = c->fn(args);
  } catch (const std::exception& e) {
    return {kAdminFailed, Join(c->words) + ": internal error: " + e.what() + "\n"};
  }
  if (r.status == kAdminUsage) {
    if (!r.output.empty() && r.output.back() != '\n') r.output += '\n';
    r.output += "usage: " + c->usage + "\n";
  }
  return r;
}

bool AdminCommands::IsReadOnly(const std::vector<std::string>& argv) const {
  if (argv.empty() || argv[0] == "help") return true;
  std::optional<Command> c = Find(argv);
  return !c || c->read_only;
}

rpc::ProgramDesc AdminProgram(const AdminCommands& cmds, size_t max_output) {
  AdminProgramOptions o;
  o.is_read_only = [&cmds](const std::vector<std::string>& argv) { return cmds.IsReadOnly(argv); };
  o.max_output = max_output;
  return AdminProgram(
      [&cmds](const rpc::CallContext& ctx, const std::vector<std::string>& argv) {
        return cmds.Dispatch(ctx, argv);
      },
      o);
}

// ---- Arguments ---------------------------------------------------------------------------

std::optional<std::string> ParsedArgs::Get(const std::string& key) const {
  auto it = values.find(key);
  if (it == values.end() || it->second.empty()) return std::nullopt;
  return it->second.back();
}

const std::vector<std::string>& ParsedArgs::All(const std::string& key) const {
  static const std::vector<std::string> kNone;
  auto it = values.find(key);
  return it == values.end() ? kNone : it->second;
}

Result<std::optional<uint64_t>> ParsedArgs::GetUint(const std::string& key, uint64_t lo,
                                                    uint64_t hi) const {
  auto v = Get(key);
  if (!v) return std::optional<uint64_t>();
  auto n = ParseUint(*v, lo, hi);
  if (!n.ok()) return Status::Invalid("--" + key + ": " + n.status().message());
  return std::optional<uint64_t>(*n);
}

Result<std::optional<uint64_t>> ParsedArgs::GetSize(const std::string& key) const {
  auto v = Get(key);
  if (!v) return std::optional<uint64_t>();
  auto n = ParseSize(*v);
  if (!n.ok()) return Status::Invalid("--" + key + ": " + n.status().message());
  return std::optional<uint64_t>(*n);
}

Result<std::map<std::string, std::string>> ParsedArgs::GetLabels(const std::string& key) const {
  std::map<std::string, std::string> out;
  for (const auto& v : All(key)) {
    auto kv = ParseLabel(v);
    if (!kv.ok()) return Status::Invalid("--" + key + ": " + kv.status().message());
    if (!out.emplace(kv->first, kv->second).second)
      return Status::Invalid("--" + key + ": label " + kv->first + " given twice");
  }
  return out;
}

Result<std::vector<uint32_t>> ParsedArgs::GetIds(const std::string& key) const {
  std::vector<uint32_t> out;
  for (const auto& v : All(key)) {
    auto ids = ParseIdList(v);
    if (!ids.ok()) return Status::Invalid("--" + key + ": " + ids.status().message());
    for (uint32_t id : *ids) {
      for (uint32_t o : out) {
        if (o == id) return Status::Invalid("--" + key + ": id " + std::to_string(id) + " given twice");
      }
      out.push_back(id);
    }
  }
  return out;
}

Result<ParsedArgs> ParseFlags(const std::vector<std::string>& args,
                              const std::vector<std::string>& value_flags,
                              const std::vector<std::string>& switch_flags) {
  std::set<std::string> vf(value_flags.begin(), value_flags.end());
  std::set<std::string> sf(switch_flags.begin(), switch_flags.end());
  ParsedArgs p;
  bool flags_done = false;
  for (size_t i = 0; i < args.size(); i++) {
    const std::string& a = args[i];
    if (flags_done || a.size() < 3 || a.compare(0, 2, "--") != 0) {
      if (!flags_done && a == "--") {
        flags_done = true;
        continue;
      }
      if (!flags_done && a.size() > 1 && a[0] == '-' && a != "-")
        return Status::Invalid("unknown option " + Quote(a));
      p.positional.push_back(a);
      continue;
    }
    std::string key = a.substr(2);
    std::optional<std::string> value;
    size_t eq = key.find('=');
    if (eq != std::string::npos) {
      value = key.substr(eq + 1);
      key = key.substr(0, eq);
    }
    if (vf.count(key)) {
      if (!value) {
        if (i + 1 >= args.size()) return Status::Invalid("--" + key + " needs a value");
        value = args[++i];
      }
      p.values[key].push_back(*value);
    } else if (sf.count(key)) {
      if (value) return Status::Invalid("--" + key + " takes no value");
      p.switches[key]++;
    } else {
      return Status::Invalid("unknown option " + Quote("--" + key));
    }
  }
  return p;
}

Result<uint64_t> ParseUint(const std::string& s, uint64_t lo, uint64_t hi) {
  if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos)
    return Status::Invalid("not a number: " + Quote(s));
  uint64_t v = 0;
  for (char c : s) {
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return Status::Invalid("number too large: " + Quote(s));
    v = v * 10 + d;
  }
  if (v < lo || v > hi) {
    return Status::Invalid(std::to_string(v) + " is out of range " + std::to_string(lo) + ".." +
                           std::to_string(hi));
  }
  return v;
}

Result<uint64_t> ParseSize(const std::string& s) {
  size_t digits = 0;
  while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9') digits++;
  if (digits == 0) return Status::Invalid("not a size: " + Quote(s) + " (e.g. 65536, 64K, 1M, 2G)");
  std::string suffix = s.substr(digits);
  int shift = 0;
  if (!suffix.empty()) {
    char u = static_cast<char>(std::toupper(static_cast<unsigned char>(suffix[0])));
    std::string rest = suffix.substr(1);
    if (u == 'K') shift = 10;
    else if (u == 'M') shift = 20;
    else if (u == 'G') shift = 30;
    else if (u == 'T') shift = 40;
    else if (u == 'B' && rest.empty()) shift = 0;
    else return Status::Invalid("not a size: " + Quote(s) + " (suffixes: K, M, G, T)");
    if (u != 'B' && !(rest.empty() || rest == "B" || rest == "iB" || rest == "ib" || rest == "b"))
      return Status::Invalid("not a size: " + Quote(s) + " (suffixes: K, M, G, T)");
  }
  auto n = ParseUint(s.substr(0, digits));
  if (!n.ok()) return n.status();
  if (*n > (UINT64_MAX >> shift)) return Status::Invalid("size too large: " + Quote(s));
  return *n << shift;
}

Result<std::pair<std::string, std::string>> ParseLabel(const std::string& s) {
  size_t eq = s.find('=');
  if (eq == std::string::npos) return Status::Invalid("label " + Quote(s) + " is not KEY=VALUE");
  std::string k = s.substr(0, eq), v = s.substr(eq + 1);
  if (k.empty() || k.size() > 64)
    return Status::Invalid("label " + Quote(s) + ": the key must be 1-64 characters");
  for (char c : k) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-')
      return Status::Invalid("label " + Quote(s) + ": the key may hold only A-Z a-z 0-9 . _ -");
  }
  if (v.size() > 256) return Status::Invalid("label " + Quote(s) + ": the value is over 256 bytes");
  for (char c : v) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == ',')
      return Status::Invalid("label " + Quote(s) +
                             ": the value may not hold spaces, commas or control characters");
  }
  return std::make_pair(k, v);
}

Result<std::vector<uint32_t>> ParseIdList(const std::string& s) {
  std::vector<uint32_t> out;
  size_t i = 0;
  if (s.empty()) return Status::Invalid("empty id list");
  for (;;) {
    size_t j = s.find(',', i);
    std::string item = s.substr(i, j == std::string::npos ? std::string::npos : j - i);
    auto n = ParseUint(item, 1, UINT32_MAX);
    if (!n.ok())
      return Status::Invalid("bad id " + Quote(item) + " in " + Quote(s) + ": " + n.status().message());
    for (uint32_t o : out) {
      if (o == *n) return Status::Invalid("id " + item + " given twice in " + Quote(s));
    }
    out.push_back(static_cast<uint32_t>(*n));
    if (j == std::string::npos) break;
    i = j + 1;
  }
  return out;
}

AdminReply FromStatus(const Status& s, std::string ok_output) {
  if (s.ok()) return {kAdminOk, std::move(ok_output)};
  std::string m = s.message();
  if (m.empty() || m.back() != '\n') m += '\n';
  return {s.code() == Code::kInvalidArgument ? kAdminUsage : kAdminFailed, m};
}

}  // namespace loom::admin
