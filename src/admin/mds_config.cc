// loom-mds configuration file parser.
#include "admin/mds_config.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <sstream>

#include "admin/commands.h"
#include "admin/util.h"
#include "rpc/server.h"

namespace loom::admin {

namespace {

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

// The line without its comment: '#' at the start or after a blank.
std::string StripComment(const std::string& line) {
  for (size_t i = 0; i < line.size(); i++) {
    if (line[i] == '#' && (i == 0 || line[i - 1] == ' ' || line[i - 1] == '\t')) {
      return line.substr(0, i);
    }
  }
  return line;
}

using internal::SplitWords;

bool ValidHost(const std::string& h) {
  if (h.empty() || h.size() > 253) return false;
  for (char c : h) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_' &&
        c != ':')
      return false;
  }
  return true;
}

}  // namespace

Status SplitHostPort(const std::string& s, std::string* host, uint16_t* port, int default_port) {
  std::string h, p;
  bool have_port = true;
  if (!s.empty() && s[0] == '[') {
    size_t close = s.find(']');
    if (close == std::string::npos) return Status::Invalid("bad address '" + s + "': no ']'");
    h = s.substr(1, close - 1);
    if (close + 1 == s.size()) {
      have_port = false;
    } else if (s[close + 1] != ':') {
      return Status::Invalid("bad address '" + s + "' (want [IPV6]:PORT)");
    } else {
      p = s.substr(close + 2);
    }
    if (h.find(':') == std::string::npos)
      return Status::Invalid("bad address '" + s + "': brackets are for IPv6 addresses");
  } else {
    size_t colon = s.find(':');
    if (colon == std::string::npos) {
      h = s;
      have_port = false;
    } else {
      if (s.find(':', colon + 1) != std::string::npos)
        return Status::Invalid("bad address '" + s + "' (write IPv6 as [ADDR]:PORT)");
      h = s.substr(0, colon);
      p = s.substr(colon + 1);
    }
  }
  if (!ValidHost(h)) return Status::Invalid("bad host in '" + s + "'");
  if (!have_port) {
    if (default_port < 0) return Status::Invalid("address '" + s + "' needs a port (HOST:PORT)");
    *host = h;
    *port = static_cast<uint16_t>(default_port);
    return Status::Ok();
  }
  auto n = ParseUint(p, 0, 65535);
  if (!n.ok()) return Status::Invalid("bad port in '" + s + "': " + n.status().message());
  *host = h;
  *port = static_cast<uint16_t>(*n);
  return Status::Ok();
}

Result<MdsConfig> ParseMdsConfigText(const std::string& text, const std::string& source) {
  MdsConfig cfg;
  std::string base;
  if (size_t slash = source.rfind('/'); slash != std::string::npos) base = source.substr(0, slash + 1);
  auto path_value = [&](const std::string& v) { return v[0] == '/' || base.empty() ? v : base + v; };
  std::map<std::string, int> seen;  // key -> line first given
  std::istringstream in(text);
  std::string raw;
  int line_no = 0;
  while (std::getline(in, raw)) {
    line_no++;
    const std::string where = source + ":" + std::to_string(line_no);
    auto fail = [&](const std::string& what) { return Status::Invalid(where + ": " + what); };
    std::string line = Trim(StripComment(raw));
    if (line.empty()) continue;
    size_t eq = line.find('=');
    if (eq == std::string::npos) return fail("expected KEY = VALUE, got '" + line + "'");
    std::string key = Trim(line.substr(0, eq));
    std::string value = Trim(line.substr(eq + 1));
    if (key.empty()) return fail("missing key before '='");
    if (value.empty()) return fail(key + " needs a value");
    if (key != "ds") {
      // (An unknown key fails below at its first line, so only known keys repeat here.)
      auto [it, fresh] = seen.emplace(key, line_no);
      if (!fresh) {
        return fail(key + " is given twice (first at line " + std::to_string(it->second) + ")");
      }
    }
    auto one_word = [&]() -> Status {
      if (SplitWords(value).size() != 1) return fail(key + " takes one value, got '" + value + "'");
      return Status::Ok();
    };
    auto uint_value = [&](uint64_t lo, uint64_t hi) -> Result<uint64_t> {
      auto n = ParseUint(value, lo, hi);
      if (!n.ok()) return fail(key + ": " + n.status().message());
      return n;
    };
    if (key == "listen") {
      LOOM_RETURN_IF_ERROR(one_word());
      sockaddr_storage ss;
      socklen_t len;
      Status st = rpc::ParseHostPort(value, &ss, &len);
      if (!st.ok()) return fail("listen: " + st.message() + " (want IP:PORT, e.g. 0.0.0.0:2049)");
      cfg.listen = value;
    } else if (key == "state_dir" || key == "exports" || key == "stats_file") {
      LOOM_RETURN_IF_ERROR(one_word());
      std::string v = path_value(value);
      if (key == "state_dir") cfg.state_dir = v;
      else if (key == "exports") cfg.exports = v;
      else cfg.stats_file = v;
    } else if (key == "lease" || key == "grace") {
      if (value.size() > 1 && value.back() == 's') value.pop_back();
      // A lease of 0 would expire every client at once; grace 0 means no reclaim period.
      auto n = uint_value(key == "lease" ? 1 : 0, 86400);
      if (!n.ok()) return n.status();
      (key == "lease" ? cfg.lease_seconds : cfg.grace_seconds) = static_cast<uint32_t>(*n);
    } else if (key == "advertise") {
      LOOM_RETURN_IF_ERROR(one_word());
      std::string h = value;
      if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
      if (!ValidHost(h)) return fail("advertise: bad host '" + value + "' (a host, no port)");
      if (value.front() != '[' && h.find(':') != std::string::npos && std::count(h.begin(), h.end(), ':') == 1)
        return fail("advertise takes a host without a port (each ds keeps its own port; "
                    "use ds = HOST:PORT@ADVHOST:ADVPORT to change one)");
      cfg.advertise = h;
    } else if (key == "pnfs") {
      std::string v;
      for (char c : value) v += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (v == "on" || v == "yes" || v == "true" || v == "1") cfg.pnfs = true;
      else if (v == "off" || v == "no" || v == "false" || v == "0") cfg.pnfs = false;
      else return fail("pnfs: '" + value + "' is not on or off");
    } else if (key == "mirrors") {
      auto n = uint_value(1, 3);  // issue 11: mirror count 1-3
      if (!n.ok()) return n.status();
      cfg.mirrors = static_cast<uint32_t>(*n);
    } else if (key == "stripes") {
      auto n = uint_value(1, 64);
      if (!n.ok()) return n.status();
      cfg.stripes = static_cast<uint32_t>(*n);
    } else if (key == "stripe_unit") {
      auto n = ParseSize(value);
      if (!n.ok()) return fail("stripe_unit: " + n.status().message());
      if (*n == 0) return fail("stripe_unit must be more than 0");
      cfg.stripe_unit = *n;
    } else if (key == "ds") {
      std::vector<std::string> w = SplitWords(value);
      MdsConfigDataServer ds;
      ds.where = where;
      std::string addr = w[0], adv;
      if (size_t at = addr.find('@'); at != std::string::npos) {
        adv = addr.substr(at + 1);
        addr = addr.substr(0, at);
        if (adv.empty()) return fail("ds: nothing after '@' in '" + w[0] + "'");
      }
      std::string host;
      uint16_t port = 0;
      Status st = SplitHostPort(addr, &host, &port);
      if (!st.ok()) return fail("ds: " + st.message());
      if (port == 0) return fail("ds: port 0 in '" + addr + "'");
      ds.address = addr;
      if (!adv.empty()) {
        std::string ah;
        uint16_t ap = 0;
        st = SplitHostPort(adv, &ah, &ap, port);
        if (!st.ok()) return fail("ds: advertised " + st.message());
        if (ap == 0) return fail("ds: advertised port 0 in '" + adv + "'");
        ds.advertised = (ah.find(':') != std::string::npos ? "[" + ah + "]" : ah) + ":" +
                        std::to_string(ap);
      }
      for (size_t i = 1; i < w.size(); i++) {
        if (w[i].compare(0, 6, "label=") != 0)
          return fail("ds: unexpected '" + w[i] + "' (labels are written label=KEY=VALUE)");
        auto kv = ParseLabel(w[i].substr(6));
        if (!kv.ok()) return fail("ds: " + kv.status().message());
        if (!ds.labels.emplace(kv->first, kv->second).second)
          return fail("ds: label " + kv->first + " given twice");
      }
      for (const auto& o : cfg.data_servers) {
        if (o.address == ds.address)
          return fail("ds " + ds.address + " is already listed at " + o.where);
      }
      cfg.data_servers.push_back(std::move(ds));
    } else {
      return fail("unknown key '" + key +
                  "' (known: listen, state_dir, lease, grace, advertise, pnfs, mirrors, stripes, "
                  "stripe_unit, exports, stats_file, ds)");
    }
  }
  return cfg;
}

Result<MdsConfig> ParseMdsConfig(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno(errno, "cannot read config file " + path);
  std::string text;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Status st = Status::FromErrno(errno, "cannot read config file " + path);
      ::close(fd);
      return st;
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > (1u << 20)) {
      ::close(fd);
      return Status::Invalid("config file " + path + " is over 1 MiB");
    }
  }
  ::close(fd);
  return ParseMdsConfigText(text, path);
}

}  // namespace loom::admin
