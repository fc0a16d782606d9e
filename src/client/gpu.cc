// The GPU path (loom/gpu.h). Built without CUDA headers: the few runtime and cuFile entry
// points used here are declared below with the C types they have in cuda_runtime_api.h and
// cufile.h, and resolved with dlsym on first use.
#include "loom/gpu.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

namespace loom::client {
namespace {

// ---------------------------------------------------------------- the CUDA runtime

// cudaError_t is an enum: 0 is cudaSuccess; cudaErrorNotReady (600) is what cudaEventQuery
// says while work before the event is still running.
using cudaError = int;
constexpr cudaError kCudaSuccess = 0;
constexpr cudaError kCudaErrorNotReady = 600;
constexpr int kCudaMemcpyHostToDevice = 1;          // enum cudaMemcpyKind
constexpr unsigned kCudaStreamNonBlocking = 0x01;   // no implicit sync with stream 0
constexpr unsigned kCudaEventDefault = 0x00;
constexpr unsigned kCudaEventDisableTiming = 0x02;  // cheaper events for the ring
constexpr int kCudaMemoryTypeDevice = 2;            // enum cudaMemoryType
constexpr int kCudaMemoryTypeManaged = 3;

using CudaStream = void*;  // cudaStream_t and cudaEvent_t are pointers to opaque structs
using CudaEvent = void*;

// cudaPointerAttributes (CUDA 11 and later) begins with {cudaMemoryType type; int device;}.
// Room is left for fields a later runtime may append.
struct CudaPointerAttributes {
  int type;
  int device;
  void* device_pointer;
  void* host_pointer;
  char reserved[64];
};

struct CudaRt {
  std::string error;  // empty when the runtime loaded and a device is present
  std::string library;
  int device_count = 0;
  cudaError (*GetDeviceCount)(int*) = nullptr;
  cudaError (*SetDevice)(int) = nullptr;
  cudaError (*GetLastError)() = nullptr;
  const char* (*GetErrorString)(cudaError) = nullptr;
  cudaError (*MallocHost)(void**, size_t) = nullptr;
  cudaError (*FreeHost)(void*) = nullptr;
  cudaError (*Malloc)(void**, size_t) = nullptr;
  cudaError (*Free)(void*) = nullptr;
  cudaError (*StreamCreateWithFlags)(CudaStream*, unsigned) = nullptr;
  cudaError (*StreamDestroy)(CudaStream) = nullptr;
  cudaError (*StreamSynchronize)(CudaStream) = nullptr;
  cudaError (*MemcpyAsync)(void*, const void*, size_t, int, CudaStream) = nullptr;
  cudaError (*EventCreateWithFlags)(CudaEvent*, unsigned) = nullptr;
  cudaError (*EventDestroy)(CudaEvent) = nullptr;
  cudaError (*EventRecord)(CudaEvent, CudaStream) = nullptr;
  cudaError (*EventQuery)(CudaEvent) = nullptr;
  cudaError (*EventSynchronize)(CudaEvent) = nullptr;
  cudaError (*EventElapsedTime)(float*, CudaEvent, CudaEvent) = nullptr;
  cudaError (*PointerGetAttributes)(CudaPointerAttributes*, const void*) = nullptr;

  bool ok() const { return error.empty(); }
  std::string Text(cudaError e) const {
    const char* s = GetErrorString ? GetErrorString(e) : nullptr;
    return s ? s : "cudaError " + std::to_string(e);
  }
};

// dlopen the first of `names` that loads; one already in the process (torch's own libcudart,
// say) is preferred, so device pointers and contexts are shared with it.
void* OpenFirst(const std::vector<std::string>& names, std::string* tried, std::string* used) {
  for (int pass = 0; pass < 2; ++pass) {
    for (const std::string& n : names) {
      void* h = dlopen(n.c_str(), RTLD_NOW | RTLD_LOCAL | (pass == 0 ? RTLD_NOLOAD : 0));
      if (h) {
        *used = n;
        return h;
      }
      if (pass == 1) {
        const char* e = dlerror();
        *tried += (tried->empty() ? "" : "; ") + (e ? std::string(e) : n);
      }
    }
  }
  return nullptr;
}

template <typename F>
bool Sym(void* lib, const char* name, F* fn, std::string* missing) {
  *fn = reinterpret_cast<F>(dlsym(lib, name));
  if (!*fn) *missing += (missing->empty() ? "" : ", ") + std::string(name);
  return *fn != nullptr;
}

const CudaRt& Rt() {
  static const CudaRt* rt = [] {
    auto* r = new CudaRt;  // lives for the process: copies may run until exit
    std::vector<std::string> names = {"libcudart.so", "libcudart.so.13", "libcudart.so.12"};
    if (const char* env = std::getenv("LOOM_CUDART"); env && *env) names = {env};
    std::string tried;
    void* lib = OpenFirst(names, &tried, &r->library);
    if (!lib) {
      r->error = "no CUDA runtime: " + tried;
      return r;
    }
    std::string missing;
    Sym(lib, "cudaGetDeviceCount", &r->GetDeviceCount, &missing);
    Sym(lib, "cudaSetDevice", &r->SetDevice, &missing);
    Sym(lib, "cudaGetLastError", &r->GetLastError, &missing);
    Sym(lib, "cudaGetErrorString", &r->GetErrorString, &missing);
    Sym(lib, "cudaMallocHost", &r->MallocHost, &missing);
    Sym(lib, "cudaFreeHost", &r->FreeHost, &missing);
    Sym(lib, "cudaMalloc", &r->Malloc, &missing);
    Sym(lib, "cudaFree", &r->Free, &missing);
    Sym(lib, "cudaStreamCreateWithFlags", &r->StreamCreateWithFlags, &missing);
    Sym(lib, "cudaStreamDestroy", &r->StreamDestroy, &missing);
    Sym(lib, "cudaStreamSynchronize", &r->StreamSynchronize, &missing);
    Sym(lib, "cudaMemcpyAsync", &r->MemcpyAsync, &missing);
    Sym(lib, "cudaEventCreateWithFlags", &r->EventCreateWithFlags, &missing);
    Sym(lib, "cudaEventDestroy", &r->EventDestroy, &missing);
    Sym(lib, "cudaEventRecord", &r->EventRecord, &missing);
    Sym(lib, "cudaEventQuery", &r->EventQuery, &missing);
    Sym(lib, "cudaEventSynchronize", &r->EventSynchronize, &missing);
    Sym(lib, "cudaEventElapsedTime", &r->EventElapsedTime, &missing);
    Sym(lib, "cudaPointerGetAttributes", &r->PointerGetAttributes, &missing);
    if (!missing.empty()) {
      r->error = "no CUDA runtime: " + r->library + " lacks " + missing;
      return r;
    }
    cudaError e = r->GetDeviceCount(&r->device_count);
    if (e != kCudaSuccess || r->device_count <= 0) {
      r->error = "no CUDA device: cudaGetDeviceCount: " +
                 (e != kCudaSuccess ? r->Text(e) : std::string("0 devices"));
      r->GetLastError();
    }
    return r;
  }();
  return *rt;
}

Status Unavailable(const std::string& why) { return Status(Errc::kUnavailable, why); }

Status CudaStatus(const CudaRt& rt, const char* call, cudaError e) {
  rt.GetLastError();  // clear it, so the next call does not report it again
  return Status(Errc::kIo, std::string(call) + ": " + rt.Text(e));
}

// The runtime, with `device` current on this thread (the runtime's current device is per
// thread; every entry point sets it).
Status UseDevice(int device) {
  const CudaRt& rt = Rt();
  if (!rt.ok()) return Unavailable(rt.error);
  if (device < 0 || device >= rt.device_count) {
    return Status(Errc::kInvalid, "no CUDA device " + std::to_string(device) + " (" +
                                      std::to_string(rt.device_count) + " present)");
  }
  if (cudaError e = rt.SetDevice(device); e != kCudaSuccess) return CudaStatus(rt, "cudaSetDevice", e);
  return Status::Ok();
}

// `p` must be device (or managed) memory on `device`: a host pointer given by mistake would
// otherwise fail deep inside the copy, or not at all for pinned memory.
Status CheckDevicePointer(const void* p, int device) {
  const CudaRt& rt = Rt();
  if (!p) return Status(Errc::kInvalid, "null device pointer");
  CudaPointerAttributes a{};
  if (cudaError e = rt.PointerGetAttributes(&a, p); e != kCudaSuccess) {
    return CudaStatus(rt, "cudaPointerGetAttributes", e);
  }
  if (a.type == kCudaMemoryTypeManaged) return Status::Ok();
  if (a.type != kCudaMemoryTypeDevice) return Status(Errc::kInvalid, "not a device pointer");
  if (a.device != device) {
    return Status(Errc::kInvalid, "the pointer is on device " + std::to_string(a.device) +
                                      ", the reader on device " + std::to_string(device));
  }
  return Status::Ok();
}

// ---------------------------------------------------------------- cuFile (GPUDirect Storage)

// CUfileError_t: {CUfileOpError err; CUresult cu_err;}, err 0 = CU_FILE_SUCCESS.
struct CUfileError {
  int err;
  int cu_err;
};
constexpr int kCuFileHandleTypeOpaqueFd = 1;  // CU_FILE_HANDLE_TYPE_OPAQUE_FD
// CUfileDescr_t.
struct CUfileDescr {
  int type;
  union {
    int fd;
    void* handle;
  } handle;
  const void* fs_ops;  // null: the library's own operations
};

struct CuFile {
  std::string error;
  CUfileError (*DriverOpen)() = nullptr;
  CUfileError (*HandleRegister)(void**, CUfileDescr*) = nullptr;
  void (*HandleDeregister)(void*) = nullptr;
  ssize_t (*Read)(void*, void*, size_t, off_t, off_t) = nullptr;
  bool ok() const { return error.empty(); }
};

const CuFile& Cf() {
  static const CuFile* cf = [] {
    auto* c = new CuFile;
    std::vector<std::string> names = {"libcufile.so.0", "libcufile.so"};
    if (const char* env = std::getenv("LOOM_CUFILE"); env && *env) {
      if (std::string(env) == "none") {
        c->error = "GPUDirect Storage turned off (LOOM_CUFILE=none)";
        return c;
      }
      names = {env};
    }
    if (!Rt().ok()) {
      c->error = Rt().error;
      return c;
    }
    std::string tried, used, missing;
    void* lib = OpenFirst(names, &tried, &used);
    if (!lib) {
      c->error = "no GPUDirect Storage: " + tried;
      return c;
    }
    Sym(lib, "cuFileDriverOpen", &c->DriverOpen, &missing);
    Sym(lib, "cuFileHandleRegister", &c->HandleRegister, &missing);
    Sym(lib, "cuFileHandleDeregister", &c->HandleDeregister, &missing);
    Sym(lib, "cuFileRead", &c->Read, &missing);
    if (!missing.empty()) {
      c->error = "no GPUDirect Storage: " + used + " lacks " + missing;
      return c;
    }
    // cuFile needs a CUDA context on the calling thread; cudaFree(nullptr) makes the primary
    // context of device 0 current. The driver stays open for the process: closing it at exit
    // would race other users of cuFile in the same process.
    if (UseDevice(0).ok()) Rt().Free(nullptr);
    CUfileError e = c->DriverOpen();
    if (e.err != 0) {
      c->error = "no GPUDirect Storage: cuFileDriverOpen failed (error " + std::to_string(e.err) +
                 ", CUresult " + std::to_string(e.cu_err) + ")";
    }
    return c;
  }();
  return *cf;
}

Status ErrnoStatus(const std::string& what, int err) {
  Errc c = Errc::kIo;
  if (err == ENOENT) c = Errc::kNotFound;
  if (err == EACCES || err == EPERM) c = Errc::kPermission;
  if (err == EISDIR) c = Errc::kIsDir;
  return Status(c, what + ": " + std::strerror(err));
}

using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

bool GpuAvailable(std::string* why) {
  const CudaRt& rt = Rt();
  if (why) *why = rt.ok() ? "CUDA runtime " + rt.library + ", " + std::to_string(rt.device_count) +
                                " device(s)"
                          : rt.error;
  return rt.ok();
}

bool GpuDirectStorageAvailable(std::string* why) {
  const CuFile& cf = Cf();
  if (why) *why = cf.ok() ? "cuFile driver open" : cf.error;
  return cf.ok();
}

// ---------------------------------------------------------------- GpuReader

struct GpuReader::Impl {
  // One staging buffer of the ring. kReading: a network read fills it (its callback moves it
  // to kRead); kCopying: a cudaMemcpyAsync from it is queued, `event` marks its end.
  enum class State { kFree, kReading, kRead, kCopying };
  struct Slot {
    void* host = nullptr;
    CudaEvent event = nullptr;
    State state = State::kFree;
    size_t want = 0, got = 0;
    Status status;
  };

  int device = 0;
  size_t chunk = 0;
  CudaStream stream = nullptr;
  std::vector<Slot> slots;

  std::mutex run_mu;  // one transfer at a time: they share the ring
  std::mutex mu;      // slot states written by read callbacks, and `inflight`
  std::condition_variable cv;
  int inflight = 0;

  mutable std::mutex stats_mu;
  GpuReadStats last, total;

  ~Impl() {
    const CudaRt& rt = Rt();
    if (!rt.ok() || rt.SetDevice(device) != kCudaSuccess) return;
    if (stream) rt.StreamSynchronize(stream);
    for (Slot& s : slots) {
      if (s.event) rt.EventDestroy(s.event);
      if (s.host) rt.FreeHost(s.host);
    }
    if (stream) rt.StreamDestroy(stream);
  }

  // Starts the read of chunk `k` of [off, off+len) into its slot.
  void Issue(File& f, uint64_t off, size_t len, size_t k) {
    Slot& s = slots[k % slots.size()];
    size_t want = std::min(chunk, len - k * chunk);
    {
      std::lock_guard<std::mutex> g(mu);
      s.state = State::kReading;
      s.want = want;
      s.got = 0;
      s.status = Status::Ok();
      ++inflight;
    }
    f.ReadAsync(off + k * chunk, s.host, want, [this, &s](Status st, size_t got) {
      std::lock_guard<std::mutex> g(mu);
      s.status = std::move(st);
      s.got = got;
      s.state = State::kRead;
      --inflight;
      cv.notify_all();
    });
  }

  // After a transfer, successful or not: no read may still write into a staging buffer and
  // no copy may still read from one when the next transfer starts.
  Status Drain() {
    {
      std::unique_lock<std::mutex> g(mu);
      cv.wait(g, [&] { return inflight == 0; });
    }
    const CudaRt& rt = Rt();
    cudaError e = rt.StreamSynchronize(stream);
    for (Slot& s : slots) s.state = State::kFree;
    return e == kCudaSuccess ? Status::Ok() : CudaStatus(rt, "cudaStreamSynchronize", e);
  }

  void Record(const GpuReadStats& st) {
    std::lock_guard<std::mutex> g(stats_mu);
    last = st;
    total.bytes += st.bytes;
    total.seconds += st.seconds;
    total.read_wait_seconds += st.read_wait_seconds;
    total.copy_wait_seconds += st.copy_wait_seconds;
    total.gpudirect = total.gpudirect || st.gpudirect;
  }

  Result<size_t> ReadFile(File& f, uint64_t off, size_t len, void* dev_ptr);
  Result<size_t> ReadLocalStaged(int fd, uint64_t off, size_t len, void* dev_ptr,
                                 GpuReadStats* st);
  Result<size_t> ReadLocalCuFile(int fd, uint64_t off, size_t len, void* dev_ptr,
                                 GpuReadStats* st);
};

Result<size_t> GpuReader::Impl::ReadFile(File& f, uint64_t off, size_t len, void* dev_ptr) {
  const CudaRt& rt = Rt();
  auto t0 = Clock::now();
  GpuReadStats st;
  const size_t n = slots.size();
  const size_t nchunks = (len + chunk - 1) / chunk;
  char* dev = static_cast<char*>(dev_ptr);
  size_t issued = 0, queued = 0, done = 0;
  bool eof = false;
  Status err;
  while (queued < nchunks) {
    // Refill: chunk `issued` goes into the slot that chunk issued-n used; that chunk's copy
    // must be finished. While other reads are in flight, only take the slot if its copy is
    // already done; with nothing else in flight, wait for the copy.
    while (!eof && issued < nchunks && issued < queued + n) {
      Slot& s = slots[issued % n];
      if (s.state == State::kCopying) {
        if (issued > queued) {
          cudaError e = rt.EventQuery(s.event);
          if (e == kCudaErrorNotReady) break;
          if (e != kCudaSuccess) {
            err = CudaStatus(rt, "cudaEventQuery", e);
            break;
          }
        } else {
          auto tw = Clock::now();
          cudaError e = rt.EventSynchronize(s.event);
          st.copy_wait_seconds += Since(tw);
          if (e != kCudaSuccess) {
            err = CudaStatus(rt, "cudaEventSynchronize", e);
            break;
          }
        }
        s.state = State::kFree;
      }
      Issue(f, off, len, issued++);
    }
    if (!err.ok() || queued == issued) break;
    // Copy the next chunk in file order once its read is in.
    Slot& s = slots[queued % n];
    {
      auto tw = Clock::now();
      std::unique_lock<std::mutex> g(mu);
      cv.wait(g, [&] { return s.state == State::kRead; });
      st.read_wait_seconds += Since(tw);
    }
    if (!s.status.ok()) {
      err = s.status;
      break;
    }
    if (s.got > 0) {
      cudaError e = rt.MemcpyAsync(dev + queued * chunk, s.host, s.got, kCudaMemcpyHostToDevice,
                                   stream);
      if (e == kCudaSuccess) e = rt.EventRecord(s.event, stream);
      if (e != kCudaSuccess) {
        err = CudaStatus(rt, "cudaMemcpyAsync", e);
        break;
      }
      s.state = State::kCopying;
    } else {
      s.state = State::kFree;
    }
    done += s.got;
    ++queued;
    if (s.got < s.want) eof = true;  // the file ends here: chunks after it read nothing
    if (eof) break;
  }
  Status drained = Drain();
  if (err.ok()) err = drained;
  if (!err.ok()) return err;
  st.bytes = done;
  st.seconds = Since(t0);
  Record(st);
  return done;
}

Result<size_t> GpuReader::Impl::ReadLocalStaged(int fd, uint64_t off, size_t len, void* dev_ptr,
                                                GpuReadStats* st) {
  const CudaRt& rt = Rt();
  char* dev = static_cast<char*>(dev_ptr);
  const size_t n = slots.size();
  size_t done = 0;
  Status err;
  // pread of chunk k runs on this thread while the copies of chunks before it run on the
  // stream; a slot is reused once its last copy has finished.
  for (size_t k = 0; done < len; ++k) {
    Slot& s = slots[k % n];
    if (s.state == State::kCopying) {
      auto tw = Clock::now();
      cudaError e = rt.EventSynchronize(s.event);
      st->copy_wait_seconds += Since(tw);
      if (e != kCudaSuccess) {
        err = CudaStatus(rt, "cudaEventSynchronize", e);
        break;
      }
      s.state = State::kFree;
    }
    size_t want = std::min(chunk, len - done), got = 0;
    auto tr = Clock::now();
    while (got < want) {
      ssize_t r = ::pread(fd, static_cast<char*>(s.host) + got, want - got,
                          static_cast<off_t>(off + done + got));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) {
        err = ErrnoStatus("pread", errno);
        break;
      }
      if (r == 0) break;
      got += static_cast<size_t>(r);
    }
    st->read_wait_seconds += Since(tr);
    if (!err.ok()) break;
    if (got > 0) {
      cudaError e = rt.MemcpyAsync(dev + done, s.host, got, kCudaMemcpyHostToDevice, stream);
      if (e == kCudaSuccess) e = rt.EventRecord(s.event, stream);
      if (e != kCudaSuccess) {
        err = CudaStatus(rt, "cudaMemcpyAsync", e);
        break;
      }
      s.state = State::kCopying;
    }
    done += got;
    if (got < want) break;  // end of file
  }
  Status drained = Drain();
  if (err.ok()) err = drained;
  if (!err.ok()) return err;
  return done;
}

Result<size_t> GpuReader::Impl::ReadLocalCuFile(int fd, uint64_t off, size_t len, void* dev_ptr,
                                                GpuReadStats* st) {
  const CuFile& cf = Cf();
  CUfileDescr d{};
  d.type = kCuFileHandleTypeOpaqueFd;
  d.handle.fd = fd;
  void* h = nullptr;
  CUfileError e = cf.HandleRegister(&h, &d);
  if (e.err != 0) {
    return Status(Errc::kUnavailable, "cuFileHandleRegister failed (error " +
                                          std::to_string(e.err) + ")");
  }
  size_t done = 0;
  Status err;
  auto tr = Clock::now();
  while (done < len) {
    ssize_t r = cf.Read(h, dev_ptr, len - done, static_cast<off_t>(off + done),
                        static_cast<off_t>(done));
    if (r < 0) {
      // -1 and errno for a system error, else minus a CUfileOpError.
      err = r == -1 ? ErrnoStatus("cuFileRead", errno)
                    : Status(Errc::kIo, "cuFileRead failed (error " + std::to_string(-r) + ")");
      break;
    }
    if (r == 0) break;
    done += static_cast<size_t>(r);
  }
  st->read_wait_seconds += Since(tr);
  cf.HandleDeregister(h);
  if (!err.ok()) return err;
  st->gpudirect = true;
  return done;
}

GpuReader::GpuReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GpuReader::~GpuReader() = default;

Result<std::unique_ptr<GpuReader>> GpuReader::Create(int device, size_t staging_bytes, int nbufs) {
  if (staging_bytes == 0 || nbufs < 1) {
    return Status(Errc::kInvalid, "GpuReader needs staging_bytes > 0 and nbufs >= 1");
  }
  if (Status s = UseDevice(device); !s.ok()) return s;
  const CudaRt& rt = Rt();
  auto impl = std::make_unique<Impl>();
  impl->device = device;
  impl->chunk = staging_bytes;
  if (cudaError e = rt.StreamCreateWithFlags(&impl->stream, kCudaStreamNonBlocking);
      e != kCudaSuccess) {
    impl->stream = nullptr;
    return CudaStatus(rt, "cudaStreamCreateWithFlags", e);
  }
  impl->slots.resize(static_cast<size_t>(nbufs));
  for (Impl::Slot& s : impl->slots) {
    if (cudaError e = rt.MallocHost(&s.host, staging_bytes); e != kCudaSuccess) {
      s.host = nullptr;
      return CudaStatus(rt, "cudaMallocHost", e);
    }
    if (cudaError e = rt.EventCreateWithFlags(&s.event, kCudaEventDisableTiming);
        e != kCudaSuccess) {
      s.event = nullptr;
      return CudaStatus(rt, "cudaEventCreateWithFlags", e);
    }
  }
  return std::unique_ptr<GpuReader>(new GpuReader(std::move(impl)));
}

int GpuReader::device() const { return impl_->device; }

GpuReadStats GpuReader::last_stats() const {
  std::lock_guard<std::mutex> g(impl_->stats_mu);
  return impl_->last;
}

GpuReadStats GpuReader::total_stats() const {
  std::lock_guard<std::mutex> g(impl_->stats_mu);
  return impl_->total;
}

Result<size_t> GpuReader::Read(File& f, uint64_t off, size_t len, void* dev_ptr) {
  std::lock_guard<std::mutex> run(impl_->run_mu);
  if (Status s = UseDevice(impl_->device); !s.ok()) return s;
  if (Status s = CheckDevicePointer(dev_ptr, impl_->device); !s.ok()) return s;
  if (len == 0) return size_t{0};
  return impl_->ReadFile(f, off, len, dev_ptr);
}

Result<size_t> GpuReader::ReadLocal(const std::string& path, uint64_t off, size_t len,
                                    void* dev_ptr) {
  std::lock_guard<std::mutex> run(impl_->run_mu);
  // Before UseDevice: loading cuFile the first time makes device 0 current.
  const bool gds = len > 0 && Cf().ok();
  if (Status s = UseDevice(impl_->device); !s.ok()) return s;
  if (Status s = CheckDevicePointer(dev_ptr, impl_->device); !s.ok()) return s;
  auto t0 = Clock::now();
  GpuReadStats st;
  Result<size_t> r = size_t{0};
  bool staged = true;
  if (gds) {
    // cuFile works in the calling thread's current context: make the device's primary
    // context current (cudaSetDevice alone does not before CUDA 12).
    Rt().Free(nullptr);
    // GPUDirect wants O_DIRECT; a file system that refuses it is still served by cuFile's
    // compatibility mode through a plain descriptor.
    Fd fd{::open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC)};
    if (fd.fd < 0) fd.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd.fd < 0) return ErrnoStatus(path, errno);
    r = impl_->ReadLocalCuFile(fd.fd, off, len, dev_ptr, &st);
    // A file cuFile will not register (an unsupported file system with compatibility mode
    // off) goes through the staging ring instead.
    staged = !r.ok() && r.status().code() == Errc::kUnavailable;
    if (!staged && !r.ok()) return r;
  }
  if (staged && len > 0) {
    Fd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
    if (fd.fd < 0) return ErrnoStatus(path, errno);
    ::posix_fadvise(fd.fd, static_cast<off_t>(off), static_cast<off_t>(len), POSIX_FADV_SEQUENTIAL);
    st = GpuReadStats();
    r = impl_->ReadLocalStaged(fd.fd, off, len, dev_ptr, &st);
    if (!r.ok()) return r;
  }
  st.bytes = *r;
  st.seconds = Since(t0);
  impl_->Record(st);
  return r;
}

Result<size_t> CopyLocalFileToDevice(const std::string& path, uint64_t off, size_t len,
                                     void* dev_ptr, int device, GpuReadStats* stats) {
  // Small chunks: a one-shot copy should not pin much memory; two buffers still overlap the
  // pread of one chunk with the copy of the other.
  size_t staging = std::clamp<size_t>(len, 1, 4u << 20);
  auto reader = GpuReader::Create(device, staging, 2);
  if (!reader.ok()) return reader.status();
  Result<size_t> r = (*reader)->ReadLocal(path, off, len, dev_ptr);
  if (r.ok() && stats) *stats = (*reader)->last_stats();
  return r;
}

Result<double> PinnedH2DCeilingGBps(size_t bytes, int device) {
  if (bytes == 0) return Status(Errc::kInvalid, "PinnedH2DCeilingGBps needs bytes > 0");
  if (Status s = UseDevice(device); !s.ok()) return s;
  const CudaRt& rt = Rt();
  // Everything allocated here is released on every return.
  struct Resources {
    const CudaRt& rt;
    void* host = nullptr;
    void* dev = nullptr;
    CudaStream stream = nullptr;
    CudaEvent start = nullptr, stop = nullptr;
    ~Resources() {
      if (stream) rt.StreamSynchronize(stream);
      if (start) rt.EventDestroy(start);
      if (stop) rt.EventDestroy(stop);
      if (stream) rt.StreamDestroy(stream);
      if (dev) rt.Free(dev);
      if (host) rt.FreeHost(host);
    }
  } res{rt};
  cudaError e;
  if ((e = rt.MallocHost(&res.host, bytes)) != kCudaSuccess) {
    res.host = nullptr;
    return CudaStatus(rt, "cudaMallocHost", e);
  }
  if ((e = rt.Malloc(&res.dev, bytes)) != kCudaSuccess) {
    res.dev = nullptr;
    return CudaStatus(rt, "cudaMalloc", e);
  }
  std::memset(res.host, 0x5a, bytes);  // fault the pages in before timing
  if ((e = rt.StreamCreateWithFlags(&res.stream, kCudaStreamNonBlocking)) != kCudaSuccess) {
    res.stream = nullptr;
    return CudaStatus(rt, "cudaStreamCreateWithFlags", e);
  }
  if ((e = rt.EventCreateWithFlags(&res.start, kCudaEventDefault)) != kCudaSuccess) {
    res.start = nullptr;
    return CudaStatus(rt, "cudaEventCreateWithFlags", e);
  }
  if ((e = rt.EventCreateWithFlags(&res.stop, kCudaEventDefault)) != kCudaSuccess) {
    res.stop = nullptr;
    return CudaStatus(rt, "cudaEventCreateWithFlags", e);
  }
  constexpr int kCopies = 4;
  // The warm-up copy absorbs first-use costs (context setup, page-table entries).
  if ((e = rt.MemcpyAsync(res.dev, res.host, bytes, kCudaMemcpyHostToDevice, res.stream)) !=
      kCudaSuccess) {
    return CudaStatus(rt, "cudaMemcpyAsync", e);
  }
  if ((e = rt.EventRecord(res.start, res.stream)) != kCudaSuccess) {
    return CudaStatus(rt, "cudaEventRecord", e);
  }
  for (int i = 0; i < kCopies; ++i) {
    if ((e = rt.MemcpyAsync(res.dev, res.host, bytes, kCudaMemcpyHostToDevice, res.stream)) !=
        kCudaSuccess) {
      return CudaStatus(rt, "cudaMemcpyAsync", e);
    }
  }
  if ((e = rt.EventRecord(res.stop, res.stream)) != kCudaSuccess) {
    return CudaStatus(rt, "cudaEventRecord", e);
  }
  if ((e = rt.EventSynchronize(res.stop)) != kCudaSuccess) {
    return CudaStatus(rt, "cudaEventSynchronize", e);
  }
  float ms = 0;
  if ((e = rt.EventElapsedTime(&ms, res.start, res.stop)) != kCudaSuccess) {
    return CudaStatus(rt, "cudaEventElapsedTime", e);
  }
  if (ms <= 0) return Status(Errc::kInternal, "cudaEventElapsedTime measured no time");
  return static_cast<double>(bytes) * kCopies / (ms / 1e3) / 1e9;
}

}  // namespace loom::client
