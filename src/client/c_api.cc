// The C ABI (include/loom/loom.h) over the C++ client.
#include "loom/loom.h"

#include <cerrno>
#include <string>

#include "loom/client.h"

using loom::client::Client;
using loom::client::File;
using loom::client::Status;

struct loom_client {
  std::shared_ptr<Client> c;
};
struct loom_file {
  std::shared_ptr<File> f;
};

namespace {

thread_local std::string last_error;

int Fail(const Status& s) {
  last_error = s.ToString();
  return -s.posix_errno();
}

int Invalid(const char* what) {
  last_error = std::string("invalid argument: ") + what;
  return -EINVAL;
}

loom_stat_t ToC(const loom::client::Attr& a) {
  loom_stat_t s{};
  s.type = static_cast<uint32_t>(a.type);
  s.mode = a.mode;
  s.nlink = a.nlink;
  s.size = a.size;
  s.fileid = a.fileid;
  s.mtime_ns = a.mtime_ns;
  return s;
}

}  // namespace

extern "C" {

int loom_connect(const char* mds, loom_client** out) {
  if (!out) return Invalid("out");
  loom::client::Options o;
  if (mds) o.mds = mds;
  auto c = Client::Connect(o);
  if (!c.ok()) return Fail(c.status());
  *out = new loom_client{std::move(c.value())};
  return 0;
}

void loom_disconnect(loom_client* c) {
  if (!c) return;
  c->c->Close();
  delete c;
}

const char* loom_last_error(void) { return last_error.c_str(); }
const char* loom_version(void) { return loom::client::Version(); }

int loom_stat(loom_client* c, const char* path, loom_stat_t* out) {
  if (!c || !path || !out) return Invalid("null argument");
  auto a = c->c->Stat(path);
  if (!a.ok()) return Fail(a.status());
  *out = ToC(a.value());
  return 0;
}

int loom_mkdir(loom_client* c, const char* path, uint32_t mode) {
  if (!c || !path) return Invalid("null argument");
  Status s = c->c->Mkdir(path, mode);
  return s.ok() ? 0 : Fail(s);
}

int loom_remove(loom_client* c, const char* path) {
  if (!c || !path) return Invalid("null argument");
  Status s = c->c->Remove(path);
  return s.ok() ? 0 : Fail(s);
}

int loom_rename(loom_client* c, const char* from, const char* to) {
  if (!c || !from || !to) return Invalid("null argument");
  Status s = c->c->Rename(from, to);
  return s.ok() ? 0 : Fail(s);
}

int loom_listdir(loom_client* c, const char* path,
                 int (*each)(void*, const char*, const loom_stat_t*), void* arg) {
  if (!c || !path || !each) return Invalid("null argument");
  auto l = c->c->List(path);
  if (!l.ok()) return Fail(l.status());
  for (const auto& e : l.value()) {
    loom_stat_t st = ToC(e.attr);
    if (each(arg, e.name.c_str(), &st) != 0) break;
  }
  return 0;
}

int loom_open(loom_client* c, const char* path, int flags, uint32_t mode, loom_file** out) {
  if (!c || !path || !out) return Invalid("null argument");
  loom::client::OpenFlags f;
  f.read = flags & LOOM_O_READ;
  f.write = flags & LOOM_O_WRITE;
  f.create = flags & LOOM_O_CREATE;
  f.exclusive = flags & LOOM_O_EXCL;
  f.truncate = flags & LOOM_O_TRUNC;
  f.mode = mode;
  auto r = c->c->Open(path, f);
  if (!r.ok()) return Fail(r.status());
  *out = new loom_file{std::move(r.value())};
  return 0;
}

int64_t loom_pread(loom_file* f, void* buf, size_t len, uint64_t off) {
  if (!f || (!buf && len)) return Invalid("null argument");
  auto r = f->f->Read(off, buf, len);
  if (!r.ok()) return Fail(r.status());
  return static_cast<int64_t>(r.value());
}

int64_t loom_pwrite(loom_file* f, const void* buf, size_t len, uint64_t off) {
  if (!f || (!buf && len)) return Invalid("null argument");
  auto r = f->f->Write(off, buf, len);
  if (!r.ok()) return Fail(r.status());
  return static_cast<int64_t>(r.value());
}

int loom_pread_async(loom_file* f, void* buf, size_t len, uint64_t off,
                     void (*done)(void*, int64_t), void* arg) {
  if (!f || (!buf && len) || !done) return Invalid("null argument");
  f->f->ReadAsync(off, buf, len, [done, arg](Status s, size_t n) {
    done(arg, s.ok() ? static_cast<int64_t>(n) : -static_cast<int64_t>(s.posix_errno()));
  });
  return 0;
}

uint64_t loom_size(loom_file* f) { return f ? f->f->size() : 0; }

int loom_fsync(loom_file* f) {
  if (!f) return Invalid("null argument");
  Status s = f->f->Sync();
  return s.ok() ? 0 : Fail(s);
}

int loom_close(loom_file* f) {
  if (!f) return Invalid("null argument");
  Status s = f->f->Close();
  delete f;
  return s.ok() ? 0 : Fail(s);
}

}  // extern "C"
