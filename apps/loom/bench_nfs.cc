// The nfs backend: any NFSv3 server (nfs-ganesha, a Linux knfsd, a loom-ds) through libnfs,
// one libnfs context (one TCP connection, one MOUNT) per reader. A batch runs on the reader's
// own poll loop: up to --open-depth LOOKUP/OPENs in flight, the reads of opened files in flight
// up to the window, each file closed when its last read is back.
#include "bench_backend.h"

// Built with libnfs when the build says so (LOOM_HAVE_LIBNFS) or, failing that, when its
// header is there: Debian's libnfs-dev ships the header and the library together, and
// apps/loom/CMakeLists.txt links the library whenever it finds it.
#if !defined(LOOM_HAVE_LIBNFS) && !defined(LOOM_NO_LIBNFS) && __has_include(<nfsc/libnfs.h>)
#define LOOM_HAVE_LIBNFS 1
#endif

#ifdef LOOM_HAVE_LIBNFS

#include <fcntl.h>
#include <poll.h>
#include <sys/time.h>  // libnfs.h uses struct timeval without including it

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>

extern "C" {
#include <nfsc/libnfs.h>
}

namespace loom::bench {
namespace {

struct Mount {
  nfs_context* nfs = nullptr;
  ~Mount() {
    if (nfs) nfs_destroy_context(nfs);
  }
};

// libnfs 4 takes ports only from the URL's query (nfsport=, mountport=) and would read
// "host:port" as a host name: nfs://HOST:PORT/PATH becomes nfs://HOST/PATH?nfsport=PORT&
// mountport=PORT (one port for both, as loom-ds serves them), version=3 unless given.
std::string NormalizeUrl(const std::string& url) {
  const std::string scheme = "nfs://";
  if (url.compare(0, scheme.size(), scheme) != 0) return url;
  size_t host_end = url.find_first_of("/?", scheme.size());
  if (host_end == std::string::npos) host_end = url.size();
  std::string authority = url.substr(scheme.size(), host_end - scheme.size());
  size_t colon = authority.rfind(':');
  if (colon == std::string::npos || authority.find(']', colon) != std::string::npos ||
      (authority[0] != '[' && authority.find(':') != colon)) {
    return url;  // no port (or a bare IPv6 address)
  }
  std::string port = authority.substr(colon + 1);
  if (port.empty() || port.find_first_not_of("0123456789") != std::string::npos) return url;
  std::string rest = url.substr(host_end);
  size_t q = rest.find('?');
  std::string path = rest.substr(0, q), query = q == std::string::npos ? "" : rest.substr(q + 1);
  if (path.empty()) path = "/";
  std::string extra;
  if (query.find("nfsport=") == std::string::npos) extra += "&nfsport=" + port;
  if (query.find("mountport=") == std::string::npos) extra += "&mountport=" + port;
  if (query.find("version=") == std::string::npos) extra += "&version=3";
  query += extra;
  if (!query.empty() && query[0] == '&') query.erase(0, 1);
  return scheme + authority.substr(0, colon) + path + (query.empty() ? "" : "?" + query);
}

// Mounts `url` (nfs_parse_url_dir: the whole path is the export). The URL's query
// (nfsport, mountport, version) is applied to the context by libnfs.
std::string MountUrl(const std::string& raw_url, Mount* m) {
  m->nfs = nfs_init_context();
  if (!m->nfs) return "libnfs: cannot create a context";
  std::string url = NormalizeUrl(raw_url);
  nfs_url* u = nfs_parse_url_dir(m->nfs, url.c_str());
  if (!u) return "bad --nfs-url " + url + ": " + nfs_get_error(m->nfs);
  int rc = nfs_mount(m->nfs, u->server, u->path);
  std::string where = std::string(u->server) + ":" + u->path;
  nfs_destroy_url(u);
  if (rc != 0) return "mount " + where + ": " + nfs_get_error(m->nfs);
  return "";
}

class NfsReader : public Reader {
 public:
  explicit NfsReader(const BackendConfig& cfg) : cfg_(cfg) {}
  ~NfsReader() override {
    for (auto& [path, fh] : open_) nfs_close(m_.nfs, fh);
  }
  std::string Init() { return MountUrl(cfg_.nfs_url, &m_); }

  std::string ReadBatch(const std::vector<Extent>& ext, uint64_t /*file_bytes*/) override {
    slots_.EnsureFor(cfg_, ext);
    Batch b;
    b.self = this;
    b.ext = &ext;
    b.files.resize(ext.size());
    for (size_t i = 0; i < ext.size(); i++) {
      b.files[i].next_off = ext[i].off;
      b.files[i].end = ext[i].off + ext[i].len;
    }
    for (size_t i = slots_.size(); i-- > 0;) b.free_slots.push_back(i);
    while (true) {
      Pump(&b);
      if (b.done == ext.size() && b.calls == 0) break;
      if (!b.err.empty() && b.calls == 0) break;
      pollfd pfd{nfs_get_fd(m_.nfs), static_cast<short>(nfs_which_events(m_.nfs)), 0};
      int rc = poll(&pfd, 1, 1000);
      if (rc < 0 && errno != EINTR) return std::string("poll: ") + std::strerror(errno);
      if (nfs_service(m_.nfs, rc > 0 ? pfd.revents : 0) < 0) {
        return std::string("libnfs: ") + nfs_get_error(m_.nfs);
      }
    }
    return b.err;
  }

 private:
  struct FileState {
    nfsfh* fh = nullptr;
    uint64_t next_off = 0;  // next byte to ask for
    uint64_t end = 0;       // the extent's end
    size_t pending = 0;
    bool opening = false, closing = false;
  };
  struct Batch {
    NfsReader* self;
    const std::vector<Extent>* ext;
    std::vector<FileState> files;
    std::vector<size_t> free_slots;
    size_t next_open = 0, opens = 0, done = 0, calls = 0;
    std::deque<size_t> readable;  // opened files with bytes left to ask for
    std::string err;
  };
  struct Call {  // one libnfs call's context
    Batch* b;
    size_t file;
    size_t slot;
    uint64_t len;
  };

  // Starts what can start: opens up to kOpenDepth, reads while slots are free.
  void Pump(Batch* b) {
    if (!b->err.empty()) return;
    while (b->opens < cfg_.open_depth && b->next_open < b->ext->size()) {
      size_t i = b->next_open++;
      const std::string& path = (*b->ext)[i].path;
      if (auto it = open_.find(path); it != open_.end()) {
        b->files[i].fh = it->second;
        b->readable.push_back(i);
        continue;
      }
      b->opens++;
      b->calls++;
      b->files[i].opening = true;
      if (nfs_open_async(m_.nfs, path.c_str(), O_RDONLY, OnOpen, new Call{b, i, 0, 0}) != 0) {
        Fail(b, "open " + path + ": " + nfs_get_error(m_.nfs));
        b->opens--;
        b->calls--;
        return;
      }
    }
    while (!b->readable.empty() && !b->free_slots.empty()) {
      size_t i = b->readable.front();
      FileState& f = b->files[i];
      uint64_t len = std::min<uint64_t>(slots_.bytes(), f.end - f.next_off);
      size_t slot = b->free_slots.back();
      b->free_slots.pop_back();
      b->calls++;
      f.pending++;
      uint64_t off = f.next_off;
      f.next_off += len;
      if (f.next_off >= f.end) b->readable.pop_front();
      if (nfs_pread_async(m_.nfs, f.fh, off, len, OnRead, new Call{b, i, slot, len}) != 0) {
        Fail(b, "read " + (*b->ext)[i].path + ": " + nfs_get_error(m_.nfs));
        b->calls--;
        return;
      }
    }
  }

  static void Fail(Batch* b, const std::string& err) {
    if (b->err.empty()) b->err = err;
  }

  static void OnOpen(int status, nfs_context* nfs, void* data, void* priv) {
    Call* c = static_cast<Call*>(priv);
    Batch* b = c->b;
    b->calls--;
    b->opens--;
    FileState& f = b->files[c->file];
    f.opening = false;
    const std::string& path = (*b->ext)[c->file].path;
    if (status != 0) {
      Fail(b, "open " + path + ": " + static_cast<const char*>(data));
    } else {
      f.fh = static_cast<nfsfh*>(data);
      if (b->self->cfg_.keep_open) b->self->open_[path] = f.fh;
      // libnfs keeps the size from the open to itself (a GETATTR would be another round
      // trip): a file shorter than the workload's shows as a short read.
      if (f.next_off >= f.end) {
        b->self->Finish(b, c->file);
      } else {
        b->readable.push_back(c->file);
      }
    }
    delete c;
    b->self->Pump(b);
  }

  static void OnRead(int status, nfs_context* nfs, void* data, void* priv) {
    Call* c = static_cast<Call*>(priv);
    Batch* b = c->b;
    NfsReader* self = b->self;
    FileState& f = b->files[c->file];
    b->calls--;
    f.pending--;
    const std::string& path = (*b->ext)[c->file].path;
    if (status < 0) {
      Fail(b, "read " + path + ": " + static_cast<const char*>(data));
    } else if (static_cast<uint64_t>(status) != c->len) {
      Fail(b, "short read of " + path + ": " + std::to_string(status) + " of " +
                  std::to_string(c->len) + " (is the data set prepared for this workload?)");
    } else {
      // libnfs hands us its reply buffer; the copy is the "bytes land in our buffer" step.
      std::memcpy(self->slots_[c->slot], data, c->len);
    }
    b->free_slots.push_back(c->slot);
    if (f.pending == 0 && f.next_off >= f.end) self->Finish(b, c->file);
    delete c;
    self->Pump(b);
  }

  // A file's reads are all back: close it (unless kept open); it counts as done then.
  void Finish(Batch* b, size_t i) {
    FileState& f = b->files[i];
    if (cfg_.keep_open) {
      b->done++;
      return;
    }
    f.closing = true;
    b->calls++;
    if (nfs_close_async(m_.nfs, f.fh, OnClose, new Call{b, i, 0, 0}) != 0) {
      b->calls--;
      Fail(b, "close " + (*b->ext)[i].path + ": " + nfs_get_error(m_.nfs));
    }
  }

  static void OnClose(int status, nfs_context* nfs, void* data, void* priv) {
    Call* c = static_cast<Call*>(priv);
    Batch* b = c->b;
    b->calls--;
    b->done++;
    if (status != 0) Fail(b, "close " + (*b->ext)[c->file].path + ": " + static_cast<const char*>(data));
    delete c;
  }

  BackendConfig cfg_;
  Mount m_;
  ReadSlots slots_;
  std::map<std::string, nfsfh*> open_;
};

class NfsBackend : public Backend {
 public:
  explicit NfsBackend(const BackendConfig& cfg) : cfg_(cfg) {}

  std::string Init() { return MountUrl(cfg_.nfs_url, &admin_); }

  std::string NewReader(std::unique_ptr<Reader>* out) override {
    auto r = std::make_unique<NfsReader>(cfg_);
    std::string err = r->Init();
    if (!err.empty()) return err;
    *out = std::move(r);
    return "";
  }

  // Prepare uses libnfs's synchronous calls on one context (they are not thread-safe).
  std::string MakeDirs(const std::string& dir) override {
    std::lock_guard<std::mutex> lk(mu_);
    size_t i = 0;
    while (i <= dir.size()) {
      size_t j = dir.find('/', i);
      if (j == std::string::npos) j = dir.size();
      std::string cur = dir.substr(0, j);
      if (!cur.empty() && cur != "/") {
        int rc = nfs_mkdir(admin_.nfs, cur.c_str());
        if (rc != 0 && rc != -EEXIST) return "mkdir " + cur + ": " + nfs_get_error(admin_.nfs);
      }
      i = j + 1;
    }
    return "";
  }

  std::string WriteFile(const std::string& path, const char* data, uint64_t len) override {
    std::lock_guard<std::mutex> lk(mu_);
    nfsfh* fh = nullptr;
    if (nfs_open2(admin_.nfs, path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644, &fh) != 0) {
      return "create " + path + ": " + nfs_get_error(admin_.nfs);
    }
    std::string err;
    for (uint64_t off = 0; off < len && err.empty();) {
      uint64_t n = std::min<uint64_t>(cfg_.chunk_bytes, len - off);
      int rc = nfs_pwrite(admin_.nfs, fh, off, n, data + off);
      if (rc <= 0) err = "write " + path + ": " + nfs_get_error(admin_.nfs);
      else off += static_cast<uint64_t>(rc);
    }
    if (err.empty() && nfs_fsync(admin_.nfs, fh) != 0) {
      err = "commit " + path + ": " + nfs_get_error(admin_.nfs);
    }
    nfs_close(admin_.nfs, fh);
    return err;
  }

 private:
  BackendConfig cfg_;
  std::mutex mu_;
  Mount admin_;
};

}  // namespace

std::string MakeNfsBackend(const BackendConfig& cfg, std::unique_ptr<Backend>* out) {
  if (cfg.nfs_url.empty()) return "the nfs backend needs --nfs-url nfs://HOST/EXPORT?...";
  auto b = std::make_unique<NfsBackend>(cfg);
  std::string err = b->Init();
  if (!err.empty()) return err;
  *out = std::move(b);
  return "";
}

}  // namespace loom::bench

#else  // !LOOM_HAVE_LIBNFS

namespace loom::bench {

std::string MakeNfsBackend(const BackendConfig&, std::unique_ptr<Backend>*) {
  return "the nfs backend is not available: loom was built without libnfs "
         "(install libnfs-dev and rebuild)";
}

}  // namespace loom::bench

#endif
