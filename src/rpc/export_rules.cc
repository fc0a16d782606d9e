#include "rpc/export_rules.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace loom::rpc {

namespace {

bool ParseU32(std::string_view s, uint32_t* out) {
  if (s.empty() || s.size() > 10) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v > 0xffffffffu) return false;
  *out = static_cast<uint32_t>(v);
  return true;
}

// Prefix length of a contiguous IPv4 netmask, or -1.
int MaskPrefix(const in_addr& m) {
  uint32_t v = ntohl(m.s_addr);
  int n = 0;
  while (n < 32 && (v & (0x80000000u >> n))) n++;
  if (n < 32 && (v << n) != 0) return -1;
  return n;
}

bool PrefixEqual(const uint8_t* a, const uint8_t* b, int bits) {
  int bytes = bits / 8;
  if (std::memcmp(a, b, static_cast<size_t>(bytes)) != 0) return false;
  int rest = bits % 8;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a[bytes] & mask) == (b[bytes] & mask);
}

Status LineError(const std::string& source, int line, const std::string& what) {
  return Status::Invalid(source + ":" + std::to_string(line) + ": " + what);
}

// One "CLIENT(OPTIONS)" or "CLIENT" token.
Status ParseEntry(std::string_view tok, ExportRule* r) {
  std::string_view client = tok, opts;
  bool has_opts = false;
  auto open = tok.find('(');
  if (open != std::string_view::npos) {
    if (tok.back() != ')') return Status::Invalid("unbalanced parentheses in \"" + std::string(tok) + "\"");
    client = tok.substr(0, open);
    opts = tok.substr(open + 1, tok.size() - open - 2);
    has_opts = true;
  } else if (tok.find(')') != std::string_view::npos) {
    return Status::Invalid("unbalanced parentheses in \"" + std::string(tok) + "\"");
  }
  if (client.empty()) {
    return Status::Invalid("options \"" + std::string(tok) +
                           "\" without a client (no space is allowed between a client and its "
                           "options; write *(...) for everyone)");
  }
  if (client[0] == '/') {
    return Status::Invalid("\"" + std::string(client) +
                           "\": paths are not accepted (each daemon serves one export; the "
                           "rules apply to it)");
  }
  auto m = AddressMatch::Parse(client);
  if (!m.ok()) return m.status();
  r->client = *m;
  if (!has_opts) return Status::Ok();
  size_t pos = 0;
  while (pos <= opts.size()) {
    size_t comma = opts.find(',', pos);
    if (comma == std::string_view::npos) comma = opts.size();
    std::string_view o = opts.substr(pos, comma - pos);
    pos = comma + 1;
    if (o.empty()) {
      if (opts.empty()) break;
      return Status::Invalid("empty option in \"" + std::string(tok) + "\"");
    }
    if (o == "rw") r->read_only = false;
    else if (o == "ro") r->read_only = true;
    else if (o == "root_squash") r->squash = Squash::kRoot;
    else if (o == "no_root_squash") r->squash = Squash::kNone;
    else if (o == "all_squash") r->squash = Squash::kAll;
    else if (o.substr(0, 8) == "anonuid=") {
      if (!ParseU32(o.substr(8), &r->anonuid)) return Status::Invalid("bad " + std::string(o));
    } else if (o.substr(0, 8) == "anongid=") {
      if (!ParseU32(o.substr(8), &r->anongid)) return Status::Invalid("bad " + std::string(o));
    } else {
      return Status::Invalid("unknown option \"" + std::string(o) +
                             "\" (known: rw, ro, root_squash, no_root_squash, all_squash, "
                             "anonuid=N, anongid=N)");
    }
  }
  return Status::Ok();
}

// A read-write rule for `client`, named "LABEL <its text>" (what logs and errors show).
ExportRule ReadWriteRule(const AddressMatch& client, Squash squash, const std::string& label) {
  ExportRule r;
  r.client = client;
  r.read_only = false;
  r.squash = squash;
  r.name = label + " " + r.Text();
  return r;
}

}  // namespace

Result<AddressMatch> AddressMatch::Parse(std::string_view s) {
  AddressMatch m;
  m.text = std::string(s);
  if (s == "*") return m;
  m.any = false;
  std::string host(s), mask;
  auto slash = s.find('/');
  if (slash != std::string_view::npos) {
    host = std::string(s.substr(0, slash));
    mask = std::string(s.substr(slash + 1));
    if (mask.empty()) return Status::Invalid("\"" + m.text + "\": empty prefix length");
  }
  in_addr v4;
  in6_addr v6;
  int maxbits;
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    m.family = AF_INET;
    std::memcpy(m.addr, &v4, 4);
    maxbits = 32;
  } else if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    m.family = AF_INET6;
    std::memcpy(m.addr, &v6, 16);
    maxbits = 128;
  } else {
    return Status::Invalid("\"" + m.text +
                           "\" is not *, an IP address or a network (host names and "
                           "wildcards are not supported)");
  }
  m.prefix = maxbits;
  if (!mask.empty()) {
    uint32_t bits;
    in_addr nm;
    if (ParseU32(mask, &bits) && bits <= static_cast<uint32_t>(maxbits)) {
      m.prefix = static_cast<int>(bits);
    } else if (m.family == AF_INET && inet_pton(AF_INET, mask.c_str(), &nm) == 1 &&
               MaskPrefix(nm) >= 0) {
      m.prefix = MaskPrefix(nm);
    } else {
      return Status::Invalid("\"" + m.text + "\": bad prefix length or netmask");
    }
  }
  return m;
}

bool AddressMatch::Matches(const sockaddr* sa) const {
  if (any) return true;
  const uint8_t* a = nullptr;
  int fam = sa->sa_family;
  if (fam == AF_INET) {
    a = reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in*>(sa)->sin_addr);
  } else if (fam == AF_INET6) {
    const auto* in6 = &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr;
    a = reinterpret_cast<const uint8_t*>(in6);
    if (IN6_IS_ADDR_V4MAPPED(in6)) {
      fam = AF_INET;
      a += 12;
    }
  } else {
    return false;
  }
  return fam == family && PrefixEqual(a, addr, prefix);
}

void ExportRule::Apply(Cred* c) const {
  if (c->flavor == AUTH_NONE || squash == Squash::kAll) {
    c->uid = anonuid;
    c->gid = anongid;
    c->gids.clear();
    return;
  }
  if (squash != Squash::kRoot) return;
  if (c->uid == 0) c->uid = anonuid;
  if (c->gid == 0) c->gid = anongid;
  std::replace(c->gids.begin(), c->gids.end(), uint32_t{0}, anongid);
}

std::string ExportRule::Text() const {
  std::string s = client.text + (read_only ? "(ro," : "(rw,");
  s += squash == Squash::kRoot ? "root_squash" : squash == Squash::kNone ? "no_root_squash"
                                                                          : "all_squash";
  s += ",anonuid=" + std::to_string(anonuid) + ",anongid=" + std::to_string(anongid) + ")";
  return s;
}

Result<ExportRules> ExportRules::Parse(std::string_view text, const std::string& source) {
  ExportRules out;
  std::istringstream in{std::string(text)};
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    n++;
    auto hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    // Split on blanks; a blank inside parentheses is an error too (options have none).
    size_t i = 0;
    while (i < line.size()) {
      while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) i++;
      if (i >= line.size()) break;
      size_t j = i;
      while (j < line.size() && line[j] != ' ' && line[j] != '\t' && line[j] != '\r') j++;
      std::string_view tok(line.data() + i, j - i);
      i = j;
      ExportRule r;
      Status s = ParseEntry(tok, &r);
      if (!s.ok()) return LineError(source, n, s.message());
      r.name = source + ":" + std::to_string(n) + " " + r.Text();
      out.rules_.push_back(std::move(r));
    }
  }
  if (out.rules_.empty()) {
    return Status::Invalid(source + ": no rules (nobody could connect; write *(rw) to admit "
                                    "everyone)");
  }
  return out;
}

Result<ExportRules> ExportRules::Load(const std::string& path) {
  std::ifstream f(path);
  if (!f) return Status::FromErrno(errno, "exports file " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  return Parse(ss.str(), path);
}

ExportRules ExportRules::Default() {
  ExportRules out;
  out.rules_.push_back(ReadWriteRule(AddressMatch{}, Squash::kRoot, "default"));
  return out;
}

ExportRules ExportRules::AllowAll() {
  ExportRules out;
  out.rules_.push_back(ReadWriteRule(AddressMatch{}, Squash::kNone, "allow-all"));
  return out;
}

Status ExportRules::AddTrusted(const std::string& spec, const std::string& why) {
  auto m = AddressMatch::Parse(spec);
  if (!m.ok()) return Status::Invalid(why + ": " + m.status().message());
  rules_.insert(rules_.begin() + static_cast<std::ptrdiff_t>(trusted_),
                ReadWriteRule(*m, Squash::kNone, why));
  trusted_++;
  return Status::Ok();
}

const ExportRule* ExportRules::Match(const sockaddr* sa) const {
  for (const ExportRule& r : rules_) {
    if (r.client.Matches(sa)) return &r;
  }
  return nullptr;
}

std::string ExportRules::Text() const {
  std::string s;
  for (const ExportRule& r : rules_) {
    if (!s.empty()) s += " ";
    s += r.Text();
  }
  return s;
}

}  // namespace loom::rpc
