// loom cp / put / get: copies between the local file system and Loom (either way, or Loom to
// Loom). Each file goes to ".NAME.loom-tmp-XXXXXX" beside its destination and is renamed into
// place when complete (after its checksum matched, with --checksum), so a failed or
// interrupted copy leaves no partial file; an existing destination is an error unless -f.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <deque>
#include <mutex>
#include <thread>

#include "commands.h"
#include "endpoint.h"
#include "transfer.h"

namespace loom::cli {
namespace {

struct CopyOptions {
  bool recursive = false, force = false, checksum = false, verbose = false;
  bool progress = false;  // draw the progress line
  unsigned jobs = 4;
};

struct Job {
  std::string src, dst;
  Entry entry;  // regular file or symlink
};

// Our own temporary files (".NAME.loom-tmp-XXXXXX") are copies in progress: never copied.
bool IsTempName(const std::string& name) {
  size_t p = name.rfind(".loom-tmp-");
  return !name.empty() && name[0] == '.' && p != std::string::npos && name.size() == p + 10 + 6;
}

class Copier {
 public:
  Copier(Ctx& ctx, Fs& sfs, Fs& dfs, const CopyOptions& o) : ctx_(ctx), sfs_(sfs), dfs_(dfs), o_(o) {}

  int Run(const std::string& src, const std::string& dst, bool dst_is_dir_hint);

 private:
  int Plan(const std::string& src, const Entry& se, const std::string& dst, bool dst_is_dir_hint);
  int Walk(const std::string& src, const std::string& dst);
  void Worker();
  int CopyOne(const Job& j);
  // Prints "loom: CMD: WHAT: words" (above the progress line) and records the exit status.
  int Error(const std::string& what, const lc::Status& s, const std::string& hint = "");

  Ctx& ctx_;
  Fs &sfs_, &dfs_;
  CopyOptions o_;
  std::vector<Job> jobs_;
  uint64_t total_bytes_ = 0;
  std::unique_ptr<Progress> progress_;
  std::mutex mu_;
  size_t next_ = 0;
  int rc_ = kExitOk;
  uint64_t verified_ = 0;
};

int Copier::Error(const std::string& what, const lc::Status& s, const std::string& hint) {
  std::lock_guard<std::mutex> l(mu_);
  // Off the progress line: erased on a terminal, ended elsewhere (--progress into a file).
  if (o_.progress) std::fputs(::isatty(2) ? "\r\x1b[K" : "\n", stderr);
  std::fprintf(stderr, "loom: %s: %s: %s%s\n", ctx_.cmd().c_str(), what.c_str(), ErrorWords(s).c_str(),
               hint.c_str());
  int code = IsInterrupted(s) ? kExitInterrupted : ExitFor(s.code());
  if (rc_ == kExitOk || rc_ == kExitError) rc_ = code;  // the first specific reason wins
  return code;
}

int Copier::Run(const std::string& src, const std::string& dst, bool dst_is_dir_hint) {
  auto se = sfs_.Stat(src, /*follow=*/true);
  if (!se.ok()) return Error(sfs_.Display(src), se.status());
  if (!se->exists) return Error(sfs_.Display(src), lc::Status(lc::Errc::kNotFound, src));
  if (se->is_dir() && !o_.recursive)
    return Error(sfs_.Display(src), lc::Status(lc::Errc::kIsDir, src), " (use -r to copy a directory)");
  int rc = Plan(src, *se, dst, dst_is_dir_hint);
  if (rc != kExitOk) return rc;

  progress_ = std::make_unique<Progress>(o_.progress, total_bytes_, jobs_.size(), o_.checksum);
  unsigned n = std::max(1u, std::min<unsigned>(o_.jobs, static_cast<unsigned>(jobs_.size())));
  std::vector<std::thread> threads;
  for (unsigned i = 1; i < n; i++) threads.emplace_back([this] { Worker(); });
  Worker();
  for (auto& t : threads) t.join();
  progress_->Finish();
  if (o_.checksum && verified_ > 0 && (o_.verbose || o_.progress || jobs_.size() > 1))
    std::fprintf(stderr, "checksum: %llu file%s verified (SHA-256)\n", static_cast<unsigned long long>(verified_),
                 verified_ == 1 ? "" : "s");
  if (g_interrupted.load() && rc_ == kExitOk) rc_ = kExitInterrupted;
  return rc_;
}

int Copier::Plan(const std::string& src, const Entry& se, const std::string& dst, bool dst_is_dir_hint) {
  auto de = dfs_.Stat(dst, /*follow=*/true);
  if (!de.ok()) return Error(dfs_.Display(dst), de.status());
  const std::string base = BaseName(src);
  if (!se.is_dir()) {
    std::string target = dst;
    if (de->exists && de->is_dir()) {
      if (base.empty()) return Error(sfs_.Display(src), lc::Status(lc::Errc::kInvalid, src));
      target = JoinPath(dst, base);
    } else if (dst_is_dir_hint) {  // "DIR/" names a directory that must exist
      return Error(dfs_.Display(dst), lc::Status(de->exists ? lc::Errc::kNotDir : lc::Errc::kNotFound, dst));
    }
    if (sfs_.remote() == dfs_.remote() && target == src)
      return Error(dfs_.Display(target), lc::Status(lc::Errc::kInvalid, target), " (source and destination are the same file)");
    jobs_.push_back({src, target, se});
    total_bytes_ += se.type == lc::FileType::kRegular ? se.size : 0;
    return kExitOk;
  }
  // A directory: into DST/NAME when DST is a directory (as cp -r does), else as DST.
  std::string root = dst;
  if (de->exists) {
    if (!de->is_dir()) return Error(dfs_.Display(dst), lc::Status(lc::Errc::kNotDir, dst));
    if (!base.empty()) root = JoinPath(dst, base);
  }
  if (sfs_.remote() == dfs_.remote() && (root == src || root.rfind(src == "/" ? "/" : src + "/", 0) == 0))
    return Error(dfs_.Display(root), lc::Status(lc::Errc::kInvalid, root), " (cannot copy a directory into itself)");
  lc::Status ms = dfs_.Mkdir(root, (se.mode | 0700) & 07777);
  if (!ms.ok()) return Error(dfs_.Display(root), ms);
  return Walk(src, root);
}

// Lists the source tree, making each directory at the destination as it goes (parents
// first); files and symlinks become jobs.
int Copier::Walk(const std::string& src, const std::string& dst) {
  std::deque<std::pair<std::string, std::string>> dirs{{src, dst}};
  while (!dirs.empty()) {
    if (g_interrupted.load()) return Error(sfs_.Display(src), Interrupted());
    auto [s, d] = dirs.front();
    dirs.pop_front();
    auto list = sfs_.List(s);
    if (!list.ok()) {
      Error(sfs_.Display(s), list.status());
      continue;
    }
    std::sort(list->begin(), list->end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (const auto& [name, e] : *list) {
      if (IsTempName(name)) continue;
      std::string sp = JoinPath(s, name), dp = JoinPath(d, name);
      if (e.is_dir()) {
        lc::Status ms = dfs_.Mkdir(dp, (e.mode | 0700) & 07777);
        if (!ms.ok()) {
          Error(dfs_.Display(dp), ms);
          continue;
        }
        dirs.emplace_back(sp, dp);
      } else if (e.type == lc::FileType::kRegular || e.type == lc::FileType::kSymlink) {
        jobs_.push_back({sp, dp, e});
        total_bytes_ += e.type == lc::FileType::kRegular ? e.size : 0;
      } else {
        std::lock_guard<std::mutex> l(mu_);
        ctx_.Note(sfs_.Display(sp) + ": skipped (not a regular file, directory or symlink)");
      }
    }
  }
  return kExitOk;
}

void Copier::Worker() {
  for (;;) {
    size_t i;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (next_ >= jobs_.size() || g_interrupted.load()) return;
      i = next_++;
    }
    CopyOne(jobs_[i]);
  }
}

int Copier::CopyOne(const Job& j) {
  const std::string sd = sfs_.Display(j.src), dd = dfs_.Display(j.dst);
  if (j.entry.type == lc::FileType::kSymlink) {
    auto target = sfs_.Readlink(j.src);
    if (!target.ok()) return Error(sd, target.status());
    lc::Status s = dfs_.Symlink(*target, j.dst, o_.force);
    if (!s.ok()) return Error(dd, s, s.code() == lc::Errc::kExists ? " (use -f to overwrite)" : "");
    progress_->FileDone();
    return kExitOk;
  }
  // Refuse before copying anything; Publish checks again (the name may appear meanwhile).
  auto de = dfs_.Stat(j.dst, /*follow=*/false);
  if (!de.ok()) return Error(dd, de.status());
  if (de->exists && de->is_dir()) return Error(dd, lc::Status(lc::Errc::kIsDir, j.dst));
  if (de->exists && !o_.force) return Error(dd, lc::Status(lc::Errc::kExists, j.dst), " (use -f to overwrite)");

  auto r = sfs_.OpenRead(j.src);
  if (!r.ok()) return Error(sd, r.status());
  auto w = dfs_.Create(j.dst, j.entry.mode);
  if (!w.ok()) return Error(dd, w.status());
  Sha256 hash;
  bool write_failed = false;
  auto n = CopyData(**r, **w, o_.checksum ? &hash : nullptr, progress_.get(), &write_failed);
  (void)(*r)->Close();  // read-only: nothing to lose
  if (!n.ok()) {
    (*w)->Abort();
    // Whose fault: a read error names the source, a write error the destination.
    return Error(write_failed || IsInterrupted(n.status()) ? dd : sd, n.status());
  }
  lc::Status cs = (*w)->Close();
  if (!cs.ok()) {
    (*w)->Abort();
    return Error(dd, cs);
  }
  if (o_.checksum) {
    std::string want = hash.HexDigest();
    auto tr = dfs_.OpenRead((*w)->temp_path());
    if (!tr.ok()) {
      (*w)->Abort();
      return Error(dd, tr.status());
    }
    auto got = HashAll(**tr, progress_.get());
    (void)(*tr)->Close();
    if (!got.ok()) {
      (*w)->Abort();
      return Error(dd, got.status());
    }
    if (*got != want) {
      (*w)->Abort();
      std::lock_guard<std::mutex> l(mu_);
      std::fprintf(stderr, "loom: %s: %s: checksum mismatch: source sha256 %s, copy sha256 %s (copy removed)\n",
                   ctx_.cmd().c_str(), dd.c_str(), want.c_str(), got->c_str());
      rc_ = kExitChecksum;
      return kExitChecksum;
    }
    if (o_.verbose) {
      std::lock_guard<std::mutex> l(mu_);
      std::printf("sha256 %s  %s\n", want.c_str(), dd.c_str());
    }
  }
  lc::Status ps = (*w)->Publish(o_.force);
  if (!ps.ok()) return Error(dd, ps, ps.code() == lc::Errc::kExists ? " (use -f to overwrite)" : "");
  progress_->FileDone();
  std::lock_guard<std::mutex> l(mu_);
  if (o_.checksum) verified_++;
  if (o_.verbose) std::printf("%s -> %s (%llu bytes)\n", sd.c_str(), dd.c_str(), static_cast<unsigned long long>(*n));
  return kExitOk;
}

const std::vector<FlagSpec> kCpFlags = {
    {'r', "recursive", false}, {'R', nullptr, false}, {'f', "force", false},     {'j', "jobs", true},
    {0, "progress", false},    {0, "no-progress", false}, {0, "checksum", false}, {'v', "verbose", false}};

// Shared by cp, put and get. `src_remote`/`dst_remote` say which side is Loom.
int CopyCommand(Ctx& ctx, const Flags& f, std::string src, bool src_remote, std::string dst, bool dst_remote) {
  CopyOptions o;
  o.recursive = f.Has("recursive") || f.Has("R");
  o.force = f.Has("force");
  o.checksum = f.Has("checksum");
  o.verbose = f.Has("verbose");
  o.progress = f.Has("progress") || (!f.Has("no-progress") && ::isatty(2) == 1);
  if (f.Has("jobs")) {
    uint64_t j;
    if (!ParseUint(f.Value("jobs"), 256, &j) || j == 0) return ctx.Usage("-j wants 1..256, got '" + f.Value("jobs") + "'");
    o.jobs = static_cast<unsigned>(j);
  }
  if (src.empty() || dst.empty()) return ctx.Usage("empty path");
  // "DIR/" as the destination: must be a directory (the file goes inside it).
  bool dst_dir_hint = dst.size() > 1 && dst.back() == '/';
  if (src_remote) src = RemotePath(src);
  if (dst_remote) dst = RemotePath(dst);
  if (!src_remote) {
    while (src.size() > 1 && src.back() == '/') src.pop_back();
  }
  if (!dst_remote) {
    while (dst.size() > 1 && dst.back() == '/') dst.pop_back();
  }
  InstallSignalHandlers();  // Ctrl-C: stop, remove the temporary files, exit 130
  auto client = ctx.client();
  if (!client) return ctx.connect_exit();
  std::unique_ptr<Fs> local = MakeLocalFs(), remote = MakeRemoteFs(client);
  Fs& sfs = src_remote ? *remote : *local;
  Fs& dfs = dst_remote ? *remote : *local;
  Copier c(ctx, sfs, dfs, o);
  return c.Run(src, dst, dst_dir_hint);
}

}  // namespace

const char kCpHelp[] =
    "usage: loom cp [-r] [-f] [-j N] [--progress] [--checksum] [-v] SRC DST\n"
    "Copies a file or, with -r, a directory tree between this machine and Loom, or within Loom.\n"
    "Loom paths are written loom:/PATH; plain paths are local. One side at least is loom:.\n"
    "  DST an existing directory: SRC goes inside it (DST/NAME); \"DST/\" must be one.\n"
    "  -r, -R, --recursive  copy directories (without it a directory is an error)\n"
    "  -f, --force          replace existing files (without it an existing destination is an\n"
    "                       error and nothing is written)\n"
    "  -j, --jobs N         files copied in parallel (default 4)\n"
    "  --progress           draw the progress line even when stderr is not a terminal\n"
    "  --no-progress        never draw it (default: drawn on a terminal)\n"
    "  --checksum           SHA-256 of the source (as read) and of the copy (read back) must\n"
    "                       match before the copy takes the destination's name\n"
    "  -v, --verbose        a line per file copied (and its SHA-256 with --checksum)\n"
    "Each file is written as .NAME.loom-tmp-XXXXXX beside the destination and renamed into\n"
    "place when complete: a failed or interrupted (Ctrl-C) copy leaves no partial file.\n"
    "Examples:\n"
    "  loom cp data.bin loom:/in/          loom cp -r -j 8 --checksum ./ds loom:/datasets/\n"
    "  loom cp loom:/out/model.pt .        loom cp loom:/a loom:/b\n";

const char kPutHelp[] =
    "usage: loom put [cp flags] LOCAL REMOTE\n"
    "loom cp LOCAL loom:REMOTE (REMOTE is a Loom path with or without loom:). See loom cp --help.\n";

const char kGetHelp[] =
    "usage: loom get [cp flags] REMOTE LOCAL\n"
    "loom cp loom:REMOTE LOCAL (LOCAL is always local). See loom cp --help.\n";

int CmdCp(Ctx& ctx, const std::vector<std::string>& args) {
  Flags f;
  std::string err;
  if (!f.Parse(args, kCpFlags, &err)) return ctx.Usage(err);
  if (f.positional().size() != 2) return ctx.Usage("wants SRC and DST");
  const std::string &src = f.positional()[0], &dst = f.positional()[1];
  bool sr = HasRemotePrefix(src), dr = HasRemotePrefix(dst);
  if (!sr && !dr) return ctx.Usage("neither SRC nor DST is a Loom path (write loom:/PATH)");
  return CopyCommand(ctx, f, src, sr, dst, dr);
}

int CmdPut(Ctx& ctx, const std::vector<std::string>& args) {
  Flags f;
  std::string err;
  if (!f.Parse(args, kCpFlags, &err)) return ctx.Usage(err);
  if (f.positional().size() != 2) return ctx.Usage("wants LOCAL and REMOTE");
  return CopyCommand(ctx, f, f.positional()[0], false, f.positional()[1], true);
}

int CmdGet(Ctx& ctx, const std::vector<std::string>& args) {
  Flags f;
  std::string err;
  if (!f.Parse(args, kCpFlags, &err)) return ctx.Usage(err);
  if (f.positional().size() != 2) return ctx.Usage("wants REMOTE and LOCAL");
  return CopyCommand(ctx, f, f.positional()[0], true, f.positional()[1], false);
}

}  // namespace loom::cli
