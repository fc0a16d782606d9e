// Export rules: who may call a server, and as whom (docs/security.md).
//
// The conventions are those of /etc/exports (exports(5)) and nfs-ganesha: a rule names clients
// by address or network and says whether they may write and how their AUTH_SYS identity is
// mapped. A server holds one ordered list; the first rule whose client matches the caller's
// address applies, and a caller that no rule matches is refused (RFC 5531 §9 AUTH_ERROR with
// AUTH_TOOWEAK, "rejected for security reasons").
//
// File syntax (one daemon serves one export, so there is no path column):
//   # comment
//   CLIENT(OPTIONS) [CLIENT(OPTIONS) ...]
// CLIENT is `*` (anyone), an IPv4 or IPv6 address, ADDRESS/PREFIXLEN, or IPV4/NETMASK.
// OPTIONS, comma-separated: rw | ro, root_squash | no_root_squash | all_squash, anonuid=N,
// anongid=N. Omitted options default as in exports(5): ro, root_squash, anonuid=anongid=65534.
// A CLIENT without parentheses takes all defaults. A space between CLIENT and "(" is an error
// (in /etc/exports "* (rw)" silently means two different rules).
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "rpc/auth.h"

namespace loom::rpc {

// A set of client addresses: everyone, or one network (a host is a /32 or /128 network).
struct AddressMatch {
  bool any = true;
  int family = 0;        // AF_INET or AF_INET6 when !any
  uint8_t addr[16] = {};  // network byte order; 4 bytes used for AF_INET
  int prefix = 0;        // leading bits that must match
  std::string text = "*";  // as written

  // "*", "10.1.2.3", "10.0.0.0/8", "10.0.0.0/255.0.0.0", "::1", "fd00::/8".
  static Result<AddressMatch> Parse(std::string_view s);
  // IPv4-mapped IPv6 peers ("::ffff:10.1.2.3") match IPv4 networks.
  bool Matches(const sockaddr* sa) const;
};

enum class Squash { kRoot, kNone, kAll };

struct ExportRule {
  AddressMatch client;
  bool read_only = true;
  Squash squash = Squash::kRoot;
  uint32_t anonuid = 65534;
  uint32_t anongid = 65534;
  // Where the rule came from and what it says, for logs: "exports.conf:3 10.0.0.0/8(rw,...)".
  std::string name;

  // Maps the caller's identity as the rule says: root_squash maps uid 0 to anonuid and gid 0
  // (also in the supplementary groups) to anongid; all_squash maps every caller; AUTH_NONE
  // callers are always anonymous.
  void Apply(Cred* c) const;
  // "CLIENT(rw,root_squash,anonuid=65534,anongid=65534)"
  std::string Text() const;
};

class ExportRules {
 public:
  // Parses the file syntax above. Errors name `source` and the line.
  static Result<ExportRules> Parse(std::string_view text, const std::string& source);
  static Result<ExportRules> Load(const std::string& path);
  // What loom-ds and loom-mds apply without --exports: "*(rw,root_squash)".
  static ExportRules Default();
  // Anyone, read-write, identities as asserted ("*(rw,no_root_squash)"): the library default
  // of ServerOptions, for servers embedded in tests and tools.
  static ExportRules AllowAll();

  // Puts "SPEC(rw,no_root_squash)" ahead of the other rules (after earlier trusted ones): the
  // data servers' --mds. SPEC is an address or network.
  Status AddTrusted(const std::string& spec, const std::string& why);

  // The first rule that matches the address, or nullptr.
  const ExportRule* Match(const sockaddr* sa) const;
  const std::vector<ExportRule>& rules() const { return rules_; }
  // The rules' texts joined by " ".
  std::string Text() const;

 private:
  std::vector<ExportRule> rules_;
  size_t trusted_ = 0;  // leading rules added by AddTrusted
};

}  // namespace loom::rpc
