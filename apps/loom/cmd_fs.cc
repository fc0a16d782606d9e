// The namespace commands: ls, stat, cat, mkdir, rm, mv, du, df. Paths are Loom paths, with or
// without "loom:".
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "commands.h"
#include "endpoint.h"
#include "transfer.h"

namespace loom::cli {

const char kLsHelp[] =
    "usage: loom ls [-l] [-R] [-a] [-h] [-d] [PATH...]\n"
    "Lists directories (default /), sorted by name.\n"
    "  -l  long format: mode, links, owner, group, size, modification time, name\n"
    "  -R  recurse into subdirectories\n"
    "  -a  show names starting with '.' (copies in progress are .NAME.loom-tmp-XXXXXX)\n"
    "  -h  sizes as 1.5K, 20M, 3.1G (with -l)\n"
    "  -d  list a directory itself, not its contents\n";
const char kStatHelp[] =
    "usage: loom stat PATH...\n"
    "One line per path: PATH: type T mode MODE links N owner O group G size BYTES mtime SECONDS\n"
    "ctime SECONDS fileid ID (type - file, d directory, l symlink).\n";
const char kCatHelp[] = "usage: loom cat PATH...\nWrites the files' contents to standard output.\n";
const char kMkdirHelp[] =
    "usage: loom mkdir [-p] [-m MODE] PATH...\n"
    "  -p  make missing parents; an existing directory is not an error\n"
    "  -m  permission bits in octal (default 755)\n";
const char kRmHelp[] =
    "usage: loom rm [-r] [-f] PATH...\n"
    "Removes files and symlinks; with -r, directories and everything under them.\n"
    "  -r, -R, --recursive  remove directories\n"
    "  -f, --force          a missing path is not an error\n";
const char kMvHelp[] =
    "usage: loom mv [-f] SRC DST\n"
    "Renames within Loom. DST an existing directory: SRC moves inside it. An existing DST file\n"
    "is an error unless -f (replace it).\n";
const char kDuHelp[] =
    "usage: loom du [-s] [-h] [PATH...]\n"
    "Bytes (file sizes) under each directory (default /), every directory listed, deepest first.\n"
    "  -s  only the total of each PATH\n"
    "  -h  1.5K, 20M, 3.1G\n";
const char kDfHelp[] =
    "usage: loom df [-h] [PATH]\n"
    "Size, used and available space and files of the Loom file system (FSSTAT of PATH, default /).\n"
    "  -h  1.5K, 20M, 3.1G\n";

namespace {

// Parses flags; on --help-less errors prints usage. Returns false with *rc set to exit.
bool ParseOrFail(Ctx& ctx, const std::vector<std::string>& args, const std::vector<FlagSpec>& spec, Flags* f,
                 int* rc) {
  std::string err;
  if (f->Parse(args, spec, &err)) return true;
  *rc = ctx.Usage(err);
  return false;
}

// A Loom path argument, or "" (after printing a usage error) when empty.
std::string Arg(const std::string& a) { return RemotePath(a); }

std::string TimeString(int64_t ns) {
  time_t t = static_cast<time_t>(ns / 1000000000);
  struct tm tm;
  localtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%d %H:%M", &tm);
  return buf;
}

void PrintLong(lc::Client& c, const std::string& path, const std::string& name, const lc::Attr& a, bool human) {
  std::string size = human ? HumanShort(a.size) : std::to_string(a.size);
  std::string link;
  if (a.type == lc::FileType::kSymlink) {
    auto t = c.Readlink(path);
    if (t.ok()) link = " -> " + *t;
  }
  std::printf("%s %3u %-8s %-8s %12s %s %s%s\n", ModeString(a.type, a.mode).c_str(), a.nlink, a.owner.c_str(),
              a.group.c_str(), size.c_str(), TimeString(a.mtime_ns).c_str(), name.c_str(), link.c_str());
}

}  // namespace

int CmdLs(Ctx& ctx, const std::vector<std::string>& args) {
  Flags f;
  int rc = kExitOk;
  if (!ParseOrFail(ctx, args, {{'l', nullptr, false}, {'R', "recursive", false}, {'a', "all", false},
                               {'h', nullptr, false}, {'d', "directory", false}}, &f, &rc))
    return rc;
  std::vector<std::string> paths = f.positional();
  if (paths.empty()) paths.push_back("/");
  for (const auto& p : paths)
    if (Arg(p).empty()) return ctx.Usage("empty path");
  auto c = ctx.client();
  if (!c) return ctx.connect_exit();
  const bool lng = f.Has("l"), all = f.Has("all"), human = f.Has("h");
  auto show = [&](const std::string& full, const std::string& name, const lc::Attr& a) {
    if (lng) PrintLong(*c, full, name, a, human);
    else std::printf("%s\n", name.c_str());
  };
  bool headers = paths.size() > 1 || f.Has("recursive");
  bool first = true;
  for (const auto& arg : paths) {
    std::string path = Arg(arg);
    auto a = c->Stat(path);
    if (!a.ok()) {
      rc = ctx.Fail(path, a.status());
      continue;
    }
    if (a->type != lc::FileType::kDirectory || f.Has("directory")) {
      show(path, arg, *a);
      continue;
    }
    std::vector<std::string> todo{path};
    while (!todo.empty()) {
      std::string dir = todo.front();
      todo.erase(todo.begin());
      auto list = c->List(dir);
      if (!list.ok()) {
        rc = ctx.Fail(dir, list.status());
        continue;
      }
      std::sort(list->begin(), list->end(), [](const auto& x, const auto& y) { return x.name < y.name; });
      if (headers) std::printf("%s%s:\n", first ? "" : "\n", dir.c_str());
      first = false;
      std::vector<std::string> sub;
      for (const auto& e : *list) {
        if (e.name == "." || e.name == "..") continue;
        if (!all && !e.name.empty() && e.name[0] == '.') continue;
        show(JoinPath(dir, e.name), e.name, e.attr);
        if (f.Has("recursive") && e.attr.type == lc::FileType::kDirectory) sub.push_back(JoinPath(dir, e.name));
      }
      todo.insert(todo.begin(), sub.begin(), sub.end());  // depth first, in name order
    }
  }
  return rc;
}

// For commands that take one or more Loom PATHs and no flags: parses, checks the paths and
// connects. False (with *rc set) when the command must stop there.
bool PathsAndClient(Ctx& ctx, const std::vector<std::string>& args, Flags* f, int* rc,
                    std::shared_ptr<lc::Client>* c) {
  if (!ParseOrFail(ctx, args, {}, f, rc)) return false;
  if (f->positional().empty()) {
    *rc = ctx.Usage("wants a PATH");
    return false;
  }
  for (const auto& p : f->positional()) {
    if (Arg(p).empty()) {
      *rc = ctx.Usage("empty path");
      return false;
    }
  }
  *c = ctx.client();
  if (!*c) {
    *rc = ctx.connect_exit();
    return false;
  }
  return true;
}

int CmdStat(Ctx& ctx, const std::vector<std::string>& args) {
  Flags f;
  int rc = kExitOk;
  std::shared_ptr<lc::Client> c;
  if (!PathsAndClient(ctx, args, &f, &rc, &c)) return rc;
  for (const auto& arg : f.positional()) {
    std::string path = Arg(arg);
    auto a = c->Stat(path);
    if (!a.ok()) {
      rc = ctx.Fail(path, a.status());
      continue;
    }
    // The first fields keep the order and spelling of the old tool: scripts parse them
    // (tests/kernel-client's HOSTSTAT check reads mode/owner/group/size/mtime).
    const char* t = a->type == lc::FileType::kDirectory ? "d" : a->type == lc::FileType::kSymlink ? "l" : "-";
    std::printf("%s: type %s mode %04o links %u owner %s group %s size %llu mtime %lld ctime %lld fileid %llu\n",
                path.c_str(), t, a->mode, a->nlink, a->owner.c_str(), a->group.c_str(),
                static_cast<unsigned long long>(a->size), static_cast<long long>(a->mtime_ns / 1000000000),
                static_cast<long long>(a->ctime_ns / 1000000000), static_cast<unsigned long long>(a->fileid));
  }
  return rc;
}

int CmdCat(Ctx& ctx, const std::vector<std::string>& args) {
  Flags f;
  int rc = kExitOk;
  std::shared_ptr<lc::Client> c;
  if (!PathsAndClient(ctx, args, &f, &rc, &c)) return rc;
  auto fs = MakeRemoteFs(c);
  auto out = MakeFdSink(1);
  for (const auto& arg : f.positional()) {
    std::string path = Arg(arg);
    auto a = c->Stat(path);
    if (a.ok() && a->type == lc::FileType::kDirectory) {
      rc = ctx.Fail(path, lc::Status(lc::Errc::kIsDir, path));
      continue;
    }
    auto r = fs->OpenRead(path);
    if (!r.ok()) {
      rc = ctx.Fail(path, r.status());
      continue;
    }
    auto n = CopyData(**r, *out, nullptr, nullptr);
    (void)(*r)->Close();
    if (!n.ok()) {
      rc = ctx.Fail(path, n.status());
      if (IsInterrupted(n.status())) break;
    }
  }
  return rc;
}

int CmdMkdir(Ctx& ctx, const std::vector<std::string>& args) {
  Flags f;
  int rc = kExitOk;
  if (!ParseOrFail(ctx, args, {{'p', "parents", false}, {'m', "mode", true}}, &f, &rc)) return rc;
  if (f.positional().empty()) return ctx.Usage("wants a PATH");
  uint32_t mode = 0755;
  if (f.Has("mode")) {
    const std::string m = f.Value("mode");
    char* end = nullptr;
    unsigned long v = std::strtoul(m.c_str(), &end, 8);
    if (m.empty() || *end != '\0' || v > 07777) return ctx.Usage("-m wants an octal mode, got '" + m + "'");
    mode = static_cast<uint32_t>(v);
  }
  for (const auto& p : f.positional())
    if (Arg(p).empty()) return ctx.Usage("empty path");
  auto c = ctx.client();
  if (!c) return ctx.connect_exit();
  for (const auto& arg : f.positional()) {
    std::string path = Arg(arg);
    lc::Status s = f.Has("parents") ? c->MkdirAll(path, mode) : c->Mkdir(path, mode);
    if (!s.ok()) rc = ctx.Fail(path, s);
  }
  return rc;
}

namespace {
// Removes `path` and, for a directory, everything under it (children first).
lc::Status RemoveTree(lc::Client& c, const std::string& path) {
  auto a = c.Stat(path);
  if (!a.ok()) return a.status();
  if (a->type == lc::FileType::kDirectory) {
    auto list = c.List(path);
    if (!list.ok()) return list.status();
    for (const auto& e : *list) {
      if (e.name == "." || e.name == "..") continue;
      if (g_interrupted.load()) return Interrupted();
      lc::Status s = RemoveTree(c, JoinPath(path, e.name));
      if (!s.ok() && s.code() != lc::Errc::kNotFound) return s;
    }
  }
  return c.Remove(path);
}
}  // namespace

int CmdRm(Ctx& ctx, const std::vector<std::string>& args) {
  Flags f;
  int rc = kExitOk;
  if (!ParseOrFail(ctx, args, {{'r', "recursive", false}, {'R', nullptr, false}, {'f', "force", false}}, &f, &rc))
    return rc;
  if (f.positional().empty()) return ctx.Usage("wants a PATH");
  for (const auto& p : f.positional()) {
    if (Arg(p).empty()) return ctx.Usage("empty path");
    if (Arg(p) == "/") return ctx.Usage("refusing to remove /");
  }
  auto c = ctx.client();
  if (!c) return ctx.connect_exit();
  const bool recursive = f.Has("recursive") || f.Has("R"), force = f.Has("force");
  for (const auto& arg : f.positional()) {
    std::string path = Arg(arg);
    auto a = c->Stat(path);
    if (!a.ok()) {
      if (!(force && a.status().code() == lc::Errc::kNotFound)) rc = ctx.Fail(path, a.status());
      continue;
    }
    if (a->type == lc::FileType::kDirectory && !recursive) {
      std::fprintf(stderr, "loom: rm: %s: is a directory (use -r to remove it and what it holds)\n", path.c_str());
      rc = kExitWrongType;
      continue;
    }
    lc::Status s = recursive ? RemoveTree(*c, path) : c->Remove(path);
    if (!s.ok() && !(force && s.code() == lc::Errc::kNotFound)) rc = ctx.Fail(path, s);
  }
  return rc;
}

int CmdMv(Ctx& ctx, const std::vector<std::string>& args) {
  Flags f;
  int rc = kExitOk;
  if (!ParseOrFail(ctx, args, {{'f', "force", false}}, &f, &rc)) return rc;
  if (f.positional().size() != 2) return ctx.Usage("wants SRC and DST");
  std::string src = Arg(f.positional()[0]), dst = Arg(f.positional()[1]);
  if (src.empty() || dst.empty()) return ctx.Usage("empty path");
  if (src == "/") return ctx.Usage("cannot move /");
  auto c = ctx.client();
  if (!c) return ctx.connect_exit();
  auto sa = c->Stat(src);
  if (!sa.ok()) return ctx.Fail(src, sa.status());
  auto da = c->Stat(dst);
  if (da.ok() && da->type == lc::FileType::kDirectory) {
    dst = JoinPath(dst, BaseName(src));
    da = c->Stat(dst);
  }
  if (dst == src) return kExitOk;
  if (sa->type == lc::FileType::kDirectory && dst.rfind(src + "/", 0) == 0)
    return ctx.Fail(dst, lc::Status(lc::Errc::kInvalid, dst));
  if (da.ok()) {
    if (!f.Has("force")) {
      std::fprintf(stderr, "loom: mv: %s: %s (use -f to replace it)\n", dst.c_str(), lc::ErrcText(lc::Errc::kExists));
      return kExitExists;
    }
  } else if (da.status().code() != lc::Errc::kNotFound) {
    return ctx.Fail(dst, da.status());
  }
  lc::Status s = c->Rename(src, dst);
  return s.ok() ? kExitOk : ctx.Fail(src, s);
}

namespace {
struct DuWalk {
  Ctx& ctx;
  lc::Client& c;
  bool summary, human;
  int rc = kExitOk;
  void Print(uint64_t n, const std::string& path) {
    std::printf("%s\t%s\n", human ? HumanShort(n).c_str() : std::to_string(n).c_str(), path.c_str());
  }
  uint64_t Dir(const std::string& path) {
    uint64_t total = 0;
    auto list = c.List(path);
    if (!list.ok()) {
      rc = ctx.Fail(path, list.status());
      return 0;
    }
    std::sort(list->begin(), list->end(), [](const auto& x, const auto& y) { return x.name < y.name; });
    for (const auto& e : *list) {
      if (e.name == "." || e.name == "..") continue;
      if (e.attr.type == lc::FileType::kDirectory) total += Dir(JoinPath(path, e.name));
      else total += e.attr.size;
    }
    if (!summary) Print(total, path);
    return total;
  }
};
}  // namespace

int CmdDu(Ctx& ctx, const std::vector<std::string>& args) {
  Flags f;
  int rc = kExitOk;
  if (!ParseOrFail(ctx, args, {{'s', "summarize", false}, {'h', nullptr, false}}, &f, &rc)) return rc;
  std::vector<std::string> paths = f.positional();
  if (paths.empty()) paths.push_back("/");
  for (const auto& p : paths)
    if (Arg(p).empty()) return ctx.Usage("empty path");
  auto c = ctx.client();
  if (!c) return ctx.connect_exit();
  DuWalk w{ctx, *c, f.Has("summarize"), f.Has("h")};
  for (const auto& arg : paths) {
    std::string path = Arg(arg);
    auto a = c->Stat(path);
    if (!a.ok()) {
      w.rc = ctx.Fail(path, a.status());
      continue;
    }
    if (a->type != lc::FileType::kDirectory) {
      w.Print(a->size, path);
      continue;
    }
    uint64_t total = w.Dir(path);
    if (w.summary) w.Print(total, path);
  }
  return w.rc;
}

int CmdDf(Ctx& ctx, const std::vector<std::string>& args) {
  Flags f;
  int rc = kExitOk;
  if (!ParseOrFail(ctx, args, {{'h', nullptr, false}}, &f, &rc)) return rc;
  if (f.positional().size() > 1) return ctx.Usage("wants at most one PATH");
  std::string path = f.positional().empty() ? "/" : Arg(f.positional()[0]);
  if (path.empty()) return ctx.Usage("empty path");
  auto c = ctx.client();
  if (!c) return ctx.connect_exit();
  auto s = c->StatFs(path);
  if (!s.ok()) return ctx.Fail(path, s.status());
  const bool h = f.Has("h");
  auto num = [&](uint64_t v) { return h ? HumanShort(v) : std::to_string(v); };
  uint64_t used = s->total_bytes > s->free_bytes ? s->total_bytes - s->free_bytes : 0;
  uint64_t iused = s->total_files > s->free_files ? s->total_files - s->free_files : 0;
  // Use% as df computes it: used / (used + available), rounded up.
  uint64_t denom = used + s->avail_bytes;
  unsigned pct = denom ? static_cast<unsigned>((used * 100 + denom - 1) / denom) : 0;
  std::string fsname = "loom:" + c->mds_address();
  std::printf("%-24s %14s %14s %14s %4s %12s %12s %12s\n", "Filesystem", h ? "Size" : "Bytes", "Used", "Avail",
              "Use%", "Files", "FUsed", "FFree");
  std::printf("%-24s %14s %14s %14s %3u%% %12llu %12llu %12llu\n", fsname.c_str(), num(s->total_bytes).c_str(),
              num(used).c_str(), num(s->avail_bytes).c_str(), pct, static_cast<unsigned long long>(s->total_files),
              static_cast<unsigned long long>(iused), static_cast<unsigned long long>(s->free_files));
  return kExitOk;
}

}  // namespace loom::cli
