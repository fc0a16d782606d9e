// libloom's Client and File: namespace operations as COMPOUNDs on the session, opens with
// reclaim after a server restart, and the data path for the bytes. See include/loom/client.h.
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "client/data_path.h"
#include "client/session.h"
#include "nfs4/simple_client.h"
#include "rpc/event_loop.h"

namespace loom::client {

namespace internal {
namespace {

namespace s4 = loom::nfs4::simple;

// Paths deeper than this are resolved in steps (a COMPOUND has a bounded number of ops).
constexpr size_t kLookupsPerCall = 24;

std::vector<std::string> SplitPath(const std::string& path) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    if (j > i) {
      std::string c = path.substr(i, j - i);
      if (c == "..") {
        if (!out.empty()) out.pop_back();
      } else if (c != ".") {
        out.push_back(std::move(c));
      }
    }
    i = j + 1;
  }
  return out;
}

std::vector<uint32_t> Mask(std::initializer_list<uint32_t> bits) {
  std::vector<uint32_t> m;
  for (uint32_t b : bits) {
    if (m.size() <= b / 32) m.resize(b / 32 + 1);
    m[b / 32] |= 1u << (b % 32);
  }
  return m;
}

const std::vector<uint32_t> kAttrBits = {
    FATTR4_TYPE,      FATTR4_SIZE,        FATTR4_FILEID,      FATTR4_MODE,
    FATTR4_NUMLINKS,  FATTR4_OWNER,       FATTR4_OWNER_GROUP, FATTR4_SPACE_USED,
    FATTR4_TIME_ACCESS, FATTR4_TIME_METADATA, FATTR4_TIME_MODIFY};

bool Has(const fattr4& f, uint32_t bit) {
  return bit / 32 < f.attrmask.size() && ((f.attrmask[bit / 32] >> (bit % 32)) & 1);
}

// Decodes the attributes of kAttrBits that the server returned (in bit order, RFC 8881 §5).
Attr DecodeAttr(const fattr4& f) {
  Attr a;
  xdr::Decoder d(f.attr_vals.data, f.attr_vals.size);
  uint32_t u = 0;
  uint64_t v = 0;
  auto time = [&](int64_t* out) {
    int64_t s = 0;
    uint32_t ns = 0;
    if (d.i64(s) && d.u32(ns)) *out = s * 1000000000 + ns;
  };
  if (Has(f, FATTR4_TYPE) && d.u32(u)) {
    a.type = u == NF4REG ? FileType::kRegular : u == NF4DIR ? FileType::kDirectory
             : u == NF4LNK ? FileType::kSymlink : FileType::kOther;
  }
  if (Has(f, FATTR4_SIZE) && d.u64(v)) a.size = v;
  if (Has(f, FATTR4_FILEID) && d.u64(v)) a.fileid = v;
  if (Has(f, FATTR4_MODE) && d.u32(u)) a.mode = u & 07777;
  if (Has(f, FATTR4_NUMLINKS) && d.u32(u)) a.nlink = u;
  if (Has(f, FATTR4_OWNER)) (void)d.string(a.owner, 1024);
  if (Has(f, FATTR4_OWNER_GROUP)) (void)d.string(a.group, 1024);
  if (Has(f, FATTR4_SPACE_USED) && d.u64(v)) a.space_used = v;
  if (Has(f, FATTR4_TIME_ACCESS)) time(&a.atime_ns);
  if (Has(f, FATTR4_TIME_METADATA)) time(&a.ctime_ns);
  if (Has(f, FATTR4_TIME_MODIFY)) time(&a.mtime_ns);
  return a;
}

fattr4 ModeAttr(uint32_t mode) {
  fattr4 f;
  f.attrmask = Mask({FATTR4_MODE});
  xdr::Encoder e;
  e.u32(mode & 07777);
  f.attr_vals = Bytes::Copy(e.Flatten());
  return f;
}

nfs_argop4 SetAttr(const stateid4& sid, fattr4 attrs) {
  auto a = s4::Op(OP_SETATTR);
  a.opsetattr = std::make_unique<SETATTR4args>();
  a.opsetattr->stateid = sid;
  a.opsetattr->obj_attributes = std::move(attrs);
  return a;
}

nfs_argop4 ReadLink() { return s4::Op(OP_READLINK); }

template <typename... T>
std::vector<nfs_argop4> Ops(T&&... ops) {
  std::vector<nfs_argop4> v;
  (v.push_back(std::forward<T>(ops)), ...);
  return v;
}

// The status of a reply as a Status naming `what`.
Status Check(const Result<COMPOUND4res>& r, const std::string& what) {
  if (!r.ok()) return Status(r.status().code(), what + ": " + r.status().message(), r.status().nfs_status());
  return FromNfs4(r->status, what);
}

std::string Display(const std::string& path) { return path.empty() ? "/" : path; }

}  // namespace

class FileImpl;

class ClientImpl : public Client, public std::enable_shared_from_this<ClientImpl> {
 public:
  ClientImpl(const Options& o) : opts_(o), loops_(1) {}
  ~ClientImpl() override { Close(); }

  Status Init() {
    loops_.Start();
    auto s = Session::Start(loops_.At(0), opts_, &counters_);
    if (!s.ok()) return s.status();
    session_ = std::move(s.value());
    data_ = std::make_unique<DataPath>(session_.get(), opts_, &counters_);
    session_->SetReclaimHook([this] { Reclaim(); });
    return Status::Ok();
  }

  void Close() override {
    std::lock_guard<std::mutex> g(close_mu_);
    if (closed_) return;
    closed_ = true;
    data_.reset();
    if (session_) session_->Shutdown();
    loops_.Stop();
  }

  // ---------------------------------------------------------------- path walking

  // ops that leave the current filehandle at `comps` (all of them, or all but the last with
  // parent=true): PUTROOTFH + LOOKUPs, or for deep paths PUTFH of a handle resolved first.
  Result<std::vector<nfs_argop4>> Walk(const std::vector<std::string>& comps, bool parent) {
    const size_t n = comps.size() - (parent && !comps.empty() ? 1 : 0);
    std::vector<nfs_argop4> ops;
    size_t start = 0;
    if (n > kLookupsPerCall) {
      start = n - kLookupsPerCall;
      Bytes fh;
      bool root = true;
      for (size_t i = 0; i < start; i += kLookupsPerCall) {
        std::vector<nfs_argop4> step;
        step.push_back(root ? s4::PutRootFh() : s4::PutFh(fh));
        for (size_t j = i; j < std::min(start, i + kLookupsPerCall); j++) step.push_back(s4::Lookup(comps[j]));
        step.push_back(s4::GetFh());
        auto r = session_->Call(std::move(step));
        Status st = Check(r, "/" + Join(comps, std::min(start, i + kLookupsPerCall)));
        if (!st.ok()) return st;
        fh = r->resarray.back().opgetfh->resok4.object;
        root = false;
      }
      ops.push_back(s4::PutFh(fh));
    } else {
      ops.push_back(s4::PutRootFh());
    }
    for (size_t i = start; i < n; i++) ops.push_back(s4::Lookup(comps[i]));
    return ops;
  }

  static std::string Join(const std::vector<std::string>& c, size_t n) {
    std::string s;
    for (size_t i = 0; i < n && i < c.size(); i++) s += (i ? "/" : "") + c[i];
    return s;
  }

  // Runs Walk(path) + `tail`; the reply's status as a Status naming the path.
  Result<COMPOUND4res> OnPath(const std::string& path, bool parent, std::vector<nfs_argop4> tail,
                              bool cachethis = false) {
    auto w = Walk(SplitPath(path), parent);
    if (!w.ok()) return w.status();
    auto ops = std::move(w.value());
    for (auto& op : tail) ops.push_back(std::move(op));
    auto r = session_->Call(std::move(ops), cachethis);
    Status st = Check(r, Display(path));
    if (!st.ok()) return st;
    return r;
  }

  // ---------------------------------------------------------------- namespace

  Result<Attr> Stat(const std::string& path) override {
    auto r = OnPath(path, false, Ops(s4::Getattr(kAttrBits)));
    if (!r.ok()) return r.status();
    return DecodeAttr(r->resarray.back().opgetattr->resok4.obj_attributes);
  }

  Result<std::vector<DirEntry>> List(const std::string& path) override {
    auto w = Walk(SplitPath(path), false);
    if (!w.ok()) return w.status();
    // Resolve once, then READDIR by handle (the walk is not repeated per chunk).
    auto ops = std::move(w.value());
    ops.push_back(s4::GetFh());
    ops.push_back(s4::Getattr({FATTR4_TYPE}));
    auto r = session_->Call(std::move(ops));
    Status st = Check(r, Display(path));
    if (!st.ok()) return st;
    const Bytes fh = r->resarray[r->resarray.size() - 2].opgetfh->resok4.object;
    if (DecodeAttr(r->resarray.back().opgetattr->resok4.obj_attributes).type != FileType::kDirectory)
      return Status(Errc::kNotDir, Display(path));
    std::vector<DirEntry> out;
    uint64_t cookie = 0;
    verifier4 cookieverf{};
    for (;;) {
      auto rd = s4::Op(OP_READDIR);
      rd.opreaddir = std::make_unique<READDIR4args>();
      rd.opreaddir->cookie = cookie;
      rd.opreaddir->cookieverf = cookieverf;
      rd.opreaddir->dircount = 64 << 10;
      rd.opreaddir->maxcount = 256 << 10;
      rd.opreaddir->attr_request = Mask({FATTR4_TYPE, FATTR4_SIZE, FATTR4_FILEID, FATTR4_MODE,
                                         FATTR4_NUMLINKS, FATTR4_OWNER, FATTR4_OWNER_GROUP,
                                         FATTR4_SPACE_USED, FATTR4_TIME_ACCESS,
                                         FATTR4_TIME_METADATA, FATTR4_TIME_MODIFY});
      auto rr = session_->Call(Ops(s4::PutFh(fh), std::move(rd)));
      st = Check(rr, Display(path));
      if (!st.ok()) return st;
      const auto& ok = rr->resarray.back().opreaddir->resok4;
      cookieverf = ok.cookieverf;
      for (const auto& e : ok.reply.entries) {
        out.push_back(DirEntry{e.name.str(), DecodeAttr(e.attrs)});
        cookie = e.cookie;
      }
      if (ok.reply.eof || ok.reply.entries.empty()) break;
    }
    return out;
  }

  Status Mkdir(const std::string& path, uint32_t mode) override {
    auto comps = SplitPath(path);
    if (comps.empty()) return Status(Errc::kExists, "/");
    auto mk = s4::Mkdir(comps.back(), mode);
    return OnPath(path, true, Ops(std::move(mk)), true).status();
  }

  Status MkdirAll(const std::string& path, uint32_t mode) override {
    auto comps = SplitPath(path);
    std::string cur;
    for (size_t i = 0; i < comps.size(); i++) {
      cur += "/" + comps[i];
      auto a = Stat(cur);
      if (a.ok()) {
        if (a->type != FileType::kDirectory) return Status(Errc::kNotDir, cur);
        continue;
      }
      if (a.status().code() != Errc::kNotFound) return a.status();
      Status st = Mkdir(cur, mode);
      if (!st.ok() && st.code() != Errc::kExists) return st;  // a racing mkdir is fine
    }
    return Status::Ok();
  }

  Status Remove(const std::string& path) override {
    auto comps = SplitPath(path);
    if (comps.empty()) return Status(Errc::kInvalid, "cannot remove the root directory");
    return OnPath(path, true, Ops(s4::Remove(comps.back())), true).status();
  }

  Status Rename(const std::string& from, const std::string& to) override {
    auto fc = SplitPath(from), tc = SplitPath(to);
    if (fc.empty() || tc.empty()) return Status(Errc::kInvalid, "cannot rename the root directory");
    auto w1 = Walk(fc, true);
    if (!w1.ok()) return w1.status();
    auto w2 = Walk(tc, true);
    if (!w2.ok()) return w2.status();
    auto ops = std::move(w1.value());
    ops.push_back(s4::SaveFh());
    for (auto& op : w2.value()) ops.push_back(std::move(op));
    ops.push_back(s4::Rename(fc.back(), tc.back()));
    auto r = session_->Call(std::move(ops), true);
    return Check(r, Display(from) + " -> " + Display(to));
  }

  Status Symlink(const std::string& target, const std::string& path) override {
    auto comps = SplitPath(path);
    if (comps.empty()) return Status(Errc::kExists, "/");
    return OnPath(path, true, Ops(s4::Symlink(comps.back(), target)), true).status();
  }

  Result<std::string> Readlink(const std::string& path) override {
    auto r = OnPath(path, false, Ops(ReadLink()));
    if (!r.ok()) return r.status();
    return r->resarray.back().opreadlink->resok4.link.str();
  }

  Status Chmod(const std::string& path, uint32_t mode) override {
    return OnPath(path, false, Ops(SetAttr(stateid4{}, ModeAttr(mode))), true).status();
  }

  Status Truncate(const std::string& path, uint64_t size) override {
    OpenFlags f;
    f.read = false;
    f.write = true;
    auto file = Open(path, f);
    if (!file.ok()) return file.status();
    Status st = SetSize(*file.value(), size);
    Status cl = file.value()->Close();
    return st.ok() ? cl : st;
  }

  Result<FsStat> StatFs(const std::string& path) override {
    auto r = OnPath(path, false,
                    Ops(s4::Getattr({FATTR4_FILES_AVAIL, FATTR4_FILES_FREE, FATTR4_FILES_TOTAL,
                                     FATTR4_SPACE_AVAIL, FATTR4_SPACE_FREE, FATTR4_SPACE_TOTAL})));
    if (!r.ok()) return r.status();
    const fattr4& f = r->resarray.back().opgetattr->resok4.obj_attributes;
    xdr::Decoder d(f.attr_vals.data, f.attr_vals.size);
    FsStat s;
    uint64_t files_avail = 0;
    if (Has(f, FATTR4_FILES_AVAIL)) (void)d.u64(files_avail);
    if (Has(f, FATTR4_FILES_FREE)) (void)d.u64(s.free_files);
    if (Has(f, FATTR4_FILES_TOTAL)) (void)d.u64(s.total_files);
    if (Has(f, FATTR4_SPACE_AVAIL)) (void)d.u64(s.avail_bytes);
    if (Has(f, FATTR4_SPACE_FREE)) (void)d.u64(s.free_bytes);
    if (Has(f, FATTR4_SPACE_TOTAL)) (void)d.u64(s.total_bytes);
    return s;
  }

  Result<LayoutInfo> Layout(const std::string& path) override {
    auto f = Open(path, OpenFlags{});
    if (!f.ok()) return f.status();
    auto l = f.value()->Layout();
    (void)f.value()->Close();
    return l;
  }

  Result<std::shared_ptr<File>> Open(const std::string& path, const OpenFlags& flags) override;
  void OpenAsync(const std::string& path, const OpenFlags& flags, OpenCallback cb) override;

  ClientStats stats() const override { return counters_.Snapshot(); }
  const Options& options() const override { return opts_; }
  std::string mds_address() const override { return session_ ? session_->address() : opts_.mds; }

  // ---------------------------------------------------------------- used by FileImpl

  Status SetSize(File& f, uint64_t size);
  Status CloseFile(const std::shared_ptr<FileState>& st);
  void CloseFileAsync(const std::shared_ptr<FileState>& st, std::function<void(Status)> cb);
  DataPath* data() { return data_.get(); }
  Session* session() { return session_.get(); }

  void Track(const std::shared_ptr<FileState>& st) {
    std::lock_guard<std::mutex> g(open_mu_);
    open_[st.get()] = st;
  }
  void Untrack(FileState* st) {
    std::lock_guard<std::mutex> g(open_mu_);
    open_.erase(st);
  }

  // One OPEN COMPOUND built (Walk + OPEN + GETFH + GETATTR [+ LAYOUTGET]) and what its
  // reply needs to become a File.
  struct OpenCall {
    std::vector<nfs_argop4> ops;
    size_t first = 0;  // index of OPEN's result
    uint32_t share_access = 0;
    std::string owner, display;
    bool with_layout = false;
    uint64_t epoch = 0;
  };
  Result<OpenCall> PlanOpen(const std::string& path, const OpenFlags& flags);
  // `may_wait`: false on the session's thread (OpenAsync's completion), where nothing may wait
  // for another reply of the MDS.
  Result<std::shared_ptr<File>> FinishOpen(const OpenCall& oc, const Result<COMPOUND4res>& r, bool may_wait);

 private:
  // After a server restart: each open file's open is reclaimed (OPEN with CLAIM_PREVIOUS, RFC
  // 8881 §9.11, §18.16.3) during the grace period, so its stateid is valid again.
  void Reclaim() {
    std::vector<std::shared_ptr<FileState>> files;
    {
      std::lock_guard<std::mutex> g(open_mu_);
      for (auto& [p, w] : open_)
        if (auto s = w.lock()) files.push_back(std::move(s));
    }
    for (auto& f : files) {
      auto o = s4::Op(OP_OPEN);
      o.opopen = std::make_unique<OPEN4args>();
      o.opopen->share_access = f->share_access;
      o.opopen->owner.owner = Bytes::Copy(f->owner);
      o.opopen->openhow.opentype = OPEN4_NOCREATE;
      o.opopen->claim.claim = CLAIM_PREVIOUS;
      o.opopen->claim.delegate_type = OPEN_DELEGATE_NONE;
      auto r = session_->CallRecovery(Ops(s4::PutFh(f->fh), std::move(o)));
      if (r.ok() && r->status == NFS4_OK) {
        f->set_open_stateid(r->resarray.back().opopen->resok4.stateid, session_->epoch());
      }
      // A file that cannot be reclaimed (removed meanwhile) keeps its old stateid: its next I/O
      // fails with a stale-state error, which is the truth.
    }
  }

 public:
  std::string NextOwner() { return "libloom-open-" + std::to_string(next_owner_.fetch_add(1)); }

 private:
  Options opts_;
  Counters counters_;
  rpc::LoopGroup loops_;
  std::unique_ptr<Session> session_;
  std::unique_ptr<DataPath> data_;
  std::mutex close_mu_;
  bool closed_ = false;
  std::mutex open_mu_;
  std::map<FileState*, std::weak_ptr<FileState>> open_;
  std::atomic<uint64_t> next_owner_{1};
};

class FileImpl : public File {
 public:
  FileImpl(std::shared_ptr<ClientImpl> c, std::shared_ptr<FileState> st) : c_(std::move(c)), st_(std::move(st)) {}
  // Dropped unclosed on the session's loop thread (an OpenAsync callback's file), a waiting
  // Close would wait for a reply only that thread can read: the CLOSE goes out without waiting.
  ~FileImpl() override {
    if (c_->session()->loop()->InLoopThread()) CloseAsync([](Status) {});
    else (void)Close();
  }

  uint64_t size() const override { return st_->size.load(); }
  const std::string& path() const override { return st_->path; }

  void ReadAsync(uint64_t off, void* buf, size_t len, IoCallback cb) override {
    if (closed_.load()) return cb(Status(Errc::kInvalid, st_->path + ": file is closed"), 0);
    if (!(st_->share_access & OPEN4_SHARE_ACCESS_READ))
      return cb(Status(Errc::kPermission, st_->path + ": not open for reading"), 0);
    if (len == 0) return cb(Status::Ok(), 0);
    c_->data()->Read(st_, off, buf, len, std::move(cb));
  }
  void WriteAsync(uint64_t off, const void* buf, size_t len, IoCallback cb) override {
    if (closed_.load()) return cb(Status(Errc::kInvalid, st_->path + ": file is closed"), 0);
    if (!(st_->share_access & OPEN4_SHARE_ACCESS_WRITE))
      return cb(Status(Errc::kPermission, st_->path + ": not open for writing"), 0);
    if (len == 0) return cb(Status::Ok(), 0);
    written_ = true;
    c_->data()->Write(st_, off, buf, len, std::move(cb));
  }
  Status Sync() override {
    if (closed_.load()) return Status(Errc::kInvalid, st_->path + ": file is closed");
    return c_->data()->Sync(st_);
  }
  Status Close() override {
    if (closed_.exchange(true)) return Status::Ok();
    Status s = written_ ? c_->data()->Sync(st_) : Status::Ok();
    Status r = c_->data()->Release(st_);
    Status cl = c_->CloseFile(st_);
    c_->Untrack(st_.get());
    if (!s.ok()) return s;
    return cl.ok() ? r : cl;
  }
  void CloseAsync(std::function<void(Status)> cb) override {
    if (closed_.exchange(true)) return cb(Status::Ok());
    if (c_->session()->loop()->InLoopThread()) {
      // On the session's thread (a file closed inside an OpenAsync callback) nothing may wait
      // for the MDS, and a written file's sync or a layout with errors to report does: the
      // close goes on on the library's workers. Rare; the usual close comes from a read's
      // completion, on a data server connection's thread.
      c_->data()->Defer([c = c_, st = st_, written = written_.load(), cb = std::move(cb)]() mutable {
        Closing(c, st, written, std::move(cb));
      });
      return;
    }
    Closing(c_, st_, written_.load(), std::move(cb));
  }
  Result<LayoutInfo> Layout() override { return c_->data()->Describe(st_); }

  const std::shared_ptr<FileState>& state() const { return st_; }

 private:
  // CloseAsync's work, on a thread that may wait for the data servers and the MDS.
  static void Closing(const std::shared_ptr<ClientImpl>& c, const std::shared_ptr<FileState>& st, bool written,
                      std::function<void(Status)> cb) {
    Status s = written ? c->data()->Sync(st) : Status::Ok();
    Status r = c->data()->Release(st);
    c->CloseFileAsync(st, [c, st, s, r, cb = std::move(cb)](Status cl) {
      c->Untrack(st.get());
      if (!s.ok()) return cb(s);
      cb(cl.ok() ? r : cl);
    });
  }

  std::shared_ptr<ClientImpl> c_;
  std::shared_ptr<FileState> st_;
  std::atomic<bool> closed_{false};
  std::atomic<bool> written_{false};
};

Result<ClientImpl::OpenCall> ClientImpl::PlanOpen(const std::string& path, const OpenFlags& flags) {
  auto comps = SplitPath(path);
  if (comps.empty()) return Status(Errc::kIsDir, "/");
  if (!flags.read && !flags.write) return Status(Errc::kInvalid, Display(path) + ": open for neither reading nor writing");
  OpenCall oc;
  oc.display = Display(path);
  auto o = s4::Op(OP_OPEN);
  o.opopen = std::make_unique<OPEN4args>();
  OPEN4args& a = *o.opopen;
  a.share_access = (flags.read ? OPEN4_SHARE_ACCESS_READ : 0) | (flags.write ? OPEN4_SHARE_ACCESS_WRITE : 0);
  a.share_deny = OPEN4_SHARE_DENY_NONE;
  oc.owner = NextOwner();
  a.owner.owner = Bytes::Copy(oc.owner);
  if (flags.create) {
    a.openhow.opentype = OPEN4_CREATE;
    // GUARDED4 fails with NFS4ERR_EXIST if the name exists (RFC 8881 §18.16.3); a racing
    // creator loses cleanly. UNCHECKED4 opens what is there.
    a.openhow.how.mode = flags.exclusive ? GUARDED4 : UNCHECKED4;
    a.openhow.how.createattrs = ModeAttr(flags.mode);
  } else {
    a.openhow.opentype = OPEN4_NOCREATE;
  }
  a.claim.claim = CLAIM_NULL;
  a.claim.file = Bytes::Copy(comps.back());
  oc.share_access = a.share_access;  // `a` goes with `o` into the COMPOUND
  auto w = Walk(comps, true);
  if (!w.ok()) return w.status();
  oc.ops = std::move(w.value());
  oc.first = oc.ops.size();
  oc.ops.push_back(std::move(o));
  oc.ops.push_back(s4::GetFh());
  oc.ops.push_back(s4::Getattr({FATTR4_TYPE, FATTR4_SIZE}));
  // The layout in the same COMPOUND, with the current stateid (RFC 8881 §16.2.3.1.2: seqid 1,
  // other all zeros = the stateid OPEN just returned), as the Linux client asks: one round
  // trip per open file instead of two. Its refusal does not fail the open.
  oc.with_layout = opts_.pnfs;
  if (oc.with_layout) {
    stateid4 current{};
    current.seqid = 1;
    oc.ops.push_back(s4::LayoutGet(current, flags.write ? LAYOUTIOMODE4_RW : LAYOUTIOMODE4_READ, 16 * 1024));
  }
  oc.epoch = session_->epoch();
  return oc;
}

Result<std::shared_ptr<File>> ClientImpl::FinishOpen(const OpenCall& oc, const Result<COMPOUND4res>& r,
                                                     bool may_wait) {
  if (!r.ok()) return Status(r.status().code(), oc.display + ": " + r.status().message(), r.status().nfs_status());
  const size_t first = oc.first;
  const bool opened = r->status == NFS4_OK ||
                      (oc.with_layout && r->resarray.size() == first + 4 && r->resarray.back().resop == OP_LAYOUTGET);
  if (!opened) return FromNfs4(r->status, oc.display);
  auto st = std::make_shared<FileState>();
  st->path = oc.display;
  st->share_access = oc.share_access;
  st->owner = oc.owner;
  st->set_open_stateid(r->resarray[first].opopen->resok4.stateid, oc.epoch);
  st->fh = r->resarray[first + 1].opgetfh->resok4.object;
  Attr at = DecodeAttr(r->resarray[first + 2].opgetattr->resok4.obj_attributes);
  st->size = at.size;
  Track(st);
  if (oc.with_layout && r->resarray.size() == first + 4 && r->resarray[first + 3].oplayoutget)
    data_->Adopt(st, *r->resarray[first + 3].oplayoutget, oc.epoch, may_wait);
  return std::shared_ptr<File>(std::make_shared<FileImpl>(shared_from_this(), st));
}

Result<std::shared_ptr<File>> ClientImpl::Open(const std::string& path, const OpenFlags& flags) {
  auto oc = PlanOpen(path, flags);
  if (!oc.ok()) return oc.status();
  auto f = FinishOpen(*oc, session_->Call(std::move(oc->ops), true), /*may_wait=*/true);
  if (!f.ok()) return f;
  if (flags.write && flags.truncate && f.value()->size() > 0) {
    Status s = SetSize(*f.value(), 0);
    if (!s.ok()) {
      (void)f.value()->Close();
      return s;
    }
  }
  return f;
}

void ClientImpl::OpenAsync(const std::string& path, const OpenFlags& flags, OpenCallback cb) {
  // A deep path needs LOOKUP round trips first (Walk), and a truncation a SETATTR after:
  // those wait, here.
  if ((flags.write && flags.truncate) || SplitPath(path).size() > kLookupsPerCall + 1) return cb(Open(path, flags));
  auto oc = PlanOpen(path, flags);
  if (!oc.ok()) return cb(oc.status());
  auto call = std::make_shared<OpenCall>(std::move(oc.value()));
  std::vector<nfs_argop4> ops = std::move(call->ops);
  session_->CallAsync(
      std::move(ops),
      [self = shared_from_this(), call, cb = std::move(cb)](Status transport, COMPOUND4res res) {
        cb(self->FinishOpen(*call,
                            transport.ok() ? Result<COMPOUND4res>(std::move(res)) : Result<COMPOUND4res>(transport),
                            /*may_wait=*/false));
      },
      true);
}

Status ClientImpl::SetSize(File& file, uint64_t size) {
  auto& st = static_cast<FileImpl&>(file).state();
  // Bytes written but not yet committed must land before the size changes under them.
  Status s = data_->Sync(st);
  if (!s.ok()) return s;
  fattr4 f;
  f.attrmask = Mask({FATTR4_SIZE});
  xdr::Encoder e;
  e.u64(size);
  f.attr_vals = Bytes::Copy(e.Flatten());
  auto r = session_->Call(Ops(s4::PutFh(st->fh), SetAttr(st->open_stateid(), std::move(f))), true);
  s = Check(r, st->path);
  if (s.ok()) st->size = size;
  return s;
}

namespace {
// What a CLOSE's reply means for the caller. After a server restart the open may be gone for
// good (not reclaimed): nothing to close.
Status CloseResult(const Result<COMPOUND4res>& r, const std::string& path) {
  Status s = Check(r, path);
  if (s.nfs_status() == NFS4ERR_BAD_STATEID || s.nfs_status() == NFS4ERR_OLD_STATEID ||
      s.nfs_status() == NFS4ERR_STALE_STATEID)
    return Status::Ok();
  return s;
}
}  // namespace

void ClientImpl::CloseFileAsync(const std::shared_ptr<FileState>& st, std::function<void(Status)> cb) {
  session_->CallAsync(
      Ops(s4::PutFh(st->fh), s4::Close(st->open_stateid())),
      [path = st->path, cb = std::move(cb)](Status transport, COMPOUND4res res) {
        cb(CloseResult(transport.ok() ? Result<COMPOUND4res>(std::move(res)) : Result<COMPOUND4res>(transport), path));
      },
      true);
}

Status ClientImpl::CloseFile(const std::shared_ptr<FileState>& st) {
  // Through Session::Call, which refuses to wait on the session's own thread.
  return CloseResult(session_->Call(Ops(s4::PutFh(st->fh), s4::Close(st->open_stateid())), true), st->path);
}

namespace {

// The last reference to a client can go on one of its own threads: a File or the client held
// by a callback's lambda that the session's loop, a data-path worker or a data-server receive
// thread destroys after running it. Tearing the client down there would join the very thread it runs on (std::thread::join
// throws, and the process ends in std::terminate). Such a client is deleted by this thread
// instead, which is joined at exit after every client it was given is gone.
class Reaper {
 public:
  static Reaper& Get() {
    static Reaper r;
    return r;
  }
  void Delete(ClientImpl* c) {
    {
      std::lock_guard<std::mutex> l(mu_);
      q_.push_back(c);
      if (!thread_.joinable()) thread_ = std::thread([this] { Run(); });
    }
    cv_.notify_one();
  }
  ~Reaper() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Run() {
    for (;;) {
      ClientImpl* c = nullptr;
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [this] { return stop_ || !q_.empty(); });
        if (q_.empty()) return;
        c = q_.front();
        q_.pop_front();
      }
      delete c;
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<ClientImpl*> q_;
  bool stop_ = false;
  std::thread thread_;
};

struct ClientDeleter {
  void operator()(ClientImpl* c) const {
    if (OnLibraryThread()) {
      Reaper::Get().Delete(c);
    } else {
      delete c;
    }
  }
};

}  // namespace

}  // namespace internal

Result<std::shared_ptr<Client>> Client::Connect(const Options& in) {
  Options o = in;
  if (o.mds.empty()) {
    const char* env = std::getenv("LOOM_MDS");
    o.mds = env && *env ? env : "127.0.0.1:20490";
  }
  if (o.slots == 0) o.slots = 1;
  if (o.connections_per_ds == 0) o.connections_per_ds = 1;
  if (o.io_size < 4096) o.io_size = 4096;
  std::shared_ptr<internal::ClientImpl> c(new internal::ClientImpl(o), internal::ClientDeleter());
  Status s = c->Init();
  if (!s.ok()) return s;
  return std::shared_ptr<Client>(c);
}

}  // namespace loom::client
