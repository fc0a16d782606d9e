#include "cli.h"

#include <signal.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace loom::cli {

const char kExitCodesHelp[] =
    "exit status:\n"
    "  0 ok                    1 other error (I/O, protocol, local)\n"
    "  2 usage                 3 no such file or directory\n"
    "  4 already exists        5 permission denied / read-only\n"
    "  6 no space / quota      7 server unavailable or timed out\n"
    "  8 is / is not a directory, directory not empty\n"
    "  9 checksum mismatch    10 status: degraded (a data server down)\n"
    "  130 interrupted\n"
    "  admin, ds, policy, mv-data, fence: the metadata server's status (13 permission\n"
    "  denied), 1 when it cannot be reached\n";

std::atomic<bool> g_interrupted{false};

namespace {
constexpr char kInterruptedMessage[] = "interrupted";
void OnSignal(int) { g_interrupted.store(true); }
}  // namespace

void InstallSignalHandlers() {
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  // No SA_RESTART: a blocked read returns EINTR and sees the flag. SA_RESETHAND: a second
  // Ctrl-C ends the process at once (a libloom call may be retrying for --retry-for).
  sa.sa_flags = SA_RESETHAND;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

lc::Status Interrupted() { return lc::Status(lc::Errc::kIo, kInterruptedMessage); }
bool IsInterrupted(const lc::Status& s) {
  return s.code() == lc::Errc::kIo && s.message() == kInterruptedMessage && s.nfs_status() == 0;
}

int ExitFor(lc::Errc c) {
  switch (c) {
    case lc::Errc::kOk: return kExitOk;
    case lc::Errc::kNotFound: return kExitNotFound;
    case lc::Errc::kExists: return kExitExists;
    case lc::Errc::kPermission:
    case lc::Errc::kReadOnly: return kExitPermission;
    case lc::Errc::kNoSpace: return kExitNoSpace;
    case lc::Errc::kUnavailable:
    case lc::Errc::kTimeout: return kExitUnavailable;
    case lc::Errc::kNotDir:
    case lc::Errc::kIsDir:
    case lc::Errc::kNotEmpty: return kExitWrongType;
    case lc::Errc::kInvalid:
    case lc::Errc::kNameTooLong:
    case lc::Errc::kStale:
    case lc::Errc::kIo:
    case lc::Errc::kInternal: return kExitError;
  }
  return kExitError;
}

lc::Status FromErrno(int err, const std::string& what) {
  lc::Errc c;
  switch (err) {
    case ENOENT: c = lc::Errc::kNotFound; break;
    case EEXIST: c = lc::Errc::kExists; break;
    case EACCES:
    case EPERM: c = lc::Errc::kPermission; break;
    case EROFS: c = lc::Errc::kReadOnly; break;
    case ENOSPC:
    case EDQUOT: c = lc::Errc::kNoSpace; break;
    case ENOTDIR: c = lc::Errc::kNotDir; break;
    case EISDIR: c = lc::Errc::kIsDir; break;
    case ENOTEMPTY: c = lc::Errc::kNotEmpty; break;
    case ENAMETOOLONG: c = lc::Errc::kNameTooLong; break;
    case EINVAL: c = lc::Errc::kInvalid; break;
    case EINTR: return Interrupted();
    default: c = lc::Errc::kIo; break;
  }
  // The library's words for the class, strerror's when they say more (EIO, EMFILE, ...).
  std::string words = c == lc::Errc::kIo ? std::strerror(err) : "";
  return lc::Status(c, words.empty() ? what : what + ": " + words);
}

std::string ErrorWords(const lc::Status& s) {
  if (IsInterrupted(s)) return "interrupted";
  std::string out = lc::ErrcText(s.code());
  // Status::ToString ends with the protocol's name for the error ("(NFS4ERR_NOENT)") when
  // there is one; the CLI shows it after the words.
  std::string full = s.ToString();
  if (s.nfs_status() != 0 && !full.empty() && full.back() == ')') {
    size_t p = full.rfind(" (");
    if (p != std::string::npos) return out + full.substr(p);
  }
  // Otherwise the detail after the object's name, when there is one ("PATH: Broken pipe",
  // "connect 127.0.0.1:1: Connection refused").
  size_t colon = s.message().find(": ");
  if (colon != std::string::npos && colon + 2 < s.message().size()) out += " (" + s.message().substr(colon + 2) + ")";
  return out;
}

Ctx::~Ctx() {
  if (client_) client_->Close();  // ends the session and the client ID (no grace wait later)
}

lc::Options Ctx::MakeOptions() const {
  lc::Options o;
  o.mds = globals_.mds;
  if (globals_.retry_for_ms >= 0) o.retry_for_ms = globals_.retry_for_ms;
  o.pnfs = globals_.pnfs;
  o.client_name = "loom-cli";
  return o;
}

std::shared_ptr<lc::Client> Ctx::client() {
  if (client_ || !connect_status_.ok()) return client_;
  auto c = lc::Client::Connect(MakeOptions());
  if (!c.ok()) {
    connect_status_ = c.status();
    Fail(globals_.mds, connect_status_);
    return nullptr;
  }
  client_ = *c;
  return client_;
}

std::shared_ptr<lc::Client> Ctx::client_quick(int timeout_ms, bool quiet) {
  if (client_ || !connect_status_.ok()) return client_;
  lc::Options o = MakeOptions();
  o.call_timeout_ms = timeout_ms;
  if (globals_.retry_for_ms < 0) o.retry_for_ms = timeout_ms;
  auto c = lc::Client::Connect(o);
  if (!c.ok()) {
    connect_status_ = c.status();
    if (!quiet) Fail(globals_.mds, connect_status_);
    return nullptr;
  }
  client_ = *c;
  return client_;
}

int Ctx::Fail(const std::string& what, const lc::Status& s) const {
  std::fprintf(stderr, "loom: %s: %s%s%s\n", cmd_.c_str(), what.c_str(), what.empty() ? "" : ": ",
               ErrorWords(s).c_str());
  if (IsInterrupted(s)) return kExitInterrupted;
  return ExitFor(s.code());
}

int Ctx::Usage(const std::string& msg) const {
  std::fprintf(stderr, "loom: %s: %s\nTry 'loom %s --help'.\n", cmd_.c_str(), msg.c_str(), cmd_.c_str());
  return kExitUsage;
}

void Ctx::Note(const std::string& msg) const { std::fprintf(stderr, "loom: %s: %s\n", cmd_.c_str(), msg.c_str()); }

// ---------------------------------------------------------------- flags

bool Flags::Parse(const std::vector<std::string>& args, const std::vector<FlagSpec>& spec,
                  std::string* error) {
  auto key = [](const FlagSpec& f) { return f.long_name ? std::string(f.long_name) : std::string(1, f.short_name); };
  for (size_t i = 0; i < args.size(); i++) {
    const std::string& a = args[i];
    if (a == "--") {
      positional_.insert(positional_.end(), args.begin() + static_cast<long>(i) + 1, args.end());
      return true;
    }
    if (a.size() > 2 && a[0] == '-' && a[1] == '-') {
      std::string name = a.substr(2), value;
      size_t eq = name.find('=');
      bool has_eq = eq != std::string::npos;
      if (has_eq) {
        value = name.substr(eq + 1);
        name.resize(eq);
      }
      const FlagSpec* f = nullptr;
      for (const auto& s : spec)
        if (s.long_name && name == s.long_name) f = &s;
      if (!f) {
        *error = "unknown flag '" + a + "'";
        return false;
      }
      if (f->takes_value && !has_eq) {
        if (i + 1 >= args.size()) {
          *error = "flag '" + a + "' needs a value";
          return false;
        }
        value = args[++i];
      } else if (!f->takes_value && has_eq) {
        *error = "flag '--" + name + "' takes no value";
        return false;
      }
      set_.emplace_back(key(*f), value);
      continue;
    }
    if (a.size() > 1 && a[0] == '-') {  // "-" alone is a positional (stdin/stdout some day)
      for (size_t j = 1; j < a.size(); j++) {
        const FlagSpec* f = nullptr;
        for (const auto& s : spec)
          if (s.short_name == a[j]) f = &s;
        if (!f) {
          *error = std::string("unknown flag '-") + a[j] + "'";
          return false;
        }
        if (!f->takes_value) {
          set_.emplace_back(key(*f), "");
          continue;
        }
        std::string value = a.substr(j + 1);
        if (value.empty()) {
          if (i + 1 >= args.size()) {
            *error = std::string("flag '-") + a[j] + "' needs a value";
            return false;
          }
          value = args[++i];
        }
        set_.emplace_back(key(*f), value);
        break;
      }
      continue;
    }
    positional_.push_back(a);
  }
  return true;
}

bool Flags::Has(const std::string& name) const {
  for (const auto& [k, v] : set_)
    if (k == name) return true;
  return false;
}

std::string Flags::Value(const std::string& name, const std::string& dflt) const {
  std::string out = dflt;
  for (const auto& [k, v] : set_)
    if (k == name) out = v;  // the last one wins
  return out;
}

bool WantsHelp(const std::vector<std::string>& args) {
  for (const auto& a : args) {
    if (a == "--") return false;
    if (a == "--help") return true;  // not -h: ls/du/df use it for human sizes
  }
  return false;
}

// ---------------------------------------------------------------- paths

bool HasRemotePrefix(const std::string& s) { return s.rfind("loom:", 0) == 0; }

std::string RemotePath(const std::string& s) {
  std::string p = HasRemotePrefix(s) ? s.substr(5) : s;
  if (p.empty()) return HasRemotePrefix(s) ? "/" : "";
  std::string out;
  size_t i = 0;
  while (i < p.size()) {
    size_t j = p.find('/', i);
    if (j == std::string::npos) j = p.size();
    if (j > i) out += "/" + p.substr(i, j - i);
    i = j + 1;
  }
  return out.empty() ? "/" : out;
}

std::string JoinPath(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  return dir.back() == '/' ? dir + name : dir + "/" + name;
}

std::string BaseName(const std::string& path) {
  size_t end = path.size();
  while (end > 0 && path[end - 1] == '/') end--;
  size_t start = path.rfind('/', end == 0 ? 0 : end - 1);
  start = (start == std::string::npos || end == 0) ? 0 : start + 1;
  if (end == 0) return "";
  return path.substr(start, end - start);
}

std::string DirName(const std::string& path) {
  size_t end = path.size();
  while (end > 1 && path[end - 1] == '/') end--;
  size_t p = path.rfind('/', end - 1);
  if (p == std::string::npos) return ".";
  if (p == 0) return "/";
  return path.substr(0, p);
}

std::string WithPort(const std::string& s, int port) {
  std::string p = std::to_string(port);
  if (!s.empty() && s[0] == '[') return s.find("]:") == std::string::npos ? s + ":" + p : s;
  size_t colons = 0;
  for (char c : s) colons += c == ':';
  if (colons == 0) return s + ":" + p;
  if (colons > 1) return "[" + s + "]:" + p;
  return s;
}

std::string DefaultMds() {
  const char* e = std::getenv("LOOM_MDS");
  return WithPort(e && *e ? e : "127.0.0.1", kDefaultMdsPort);
}

// ---------------------------------------------------------------- printing

std::string HumanShort(uint64_t b) {
  const char* u = "BKMGTPE";
  double v = static_cast<double>(b);
  int i = 0;
  while (v >= 1024 && i < 6) v /= 1024, i++;
  char buf[32];
  if (i == 0) std::snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(b));
  else std::snprintf(buf, sizeof buf, v < 10 ? "%.1f%c" : "%.0f%c", v, u[i]);
  return buf;
}

std::string HumanLong(uint64_t b) {
  const char* u[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = static_cast<double>(b);
  int i = 0;
  while (v >= 1024 && i < 6) v /= 1024, i++;
  char buf[32];
  std::snprintf(buf, sizeof buf, i ? "%.1f %s" : "%.0f %s", v, u[i]);
  return buf;
}

std::string ModeString(lc::FileType t, uint32_t mode) {
  std::string s = t == lc::FileType::kDirectory ? "d" : t == lc::FileType::kSymlink ? "l"
                  : t == lc::FileType::kRegular  ? "-" : "?";
  const char* rwx = "rwxrwxrwx";
  for (int i = 0; i < 9; i++) s += (mode & (0400u >> i)) ? rwx[i] : '-';
  if (mode & 04000) s[3] = (mode & 0100) ? 's' : 'S';
  if (mode & 02000) s[6] = (mode & 010) ? 's' : 'S';
  if (mode & 01000) s[9] = (mode & 01) ? 't' : 'T';
  return s;
}

bool ParseUint(const std::string& s, uint64_t max, uint64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    if (v > (max - static_cast<uint64_t>(c - '0')) / 10) return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  *out = v;
  return true;
}

}  // namespace loom::cli
