// _loom: the Python binding of libloom (loom/client.h, loom/gpu.h) and of the read-ahead
// prefetcher. The pure-Python package `loom` (python/loom/) builds on it; see docs/python.md.
//
// Every call that can wait on the network releases the GIL. Errors come back as OSError with
// the matching errno, so Python picks the subclass (FileNotFoundError, PermissionError, ...).
//
// Fork: libloom objects own threads and sockets that a forked child does not inherit. An
// object used in a process other than the one that made it raises RuntimeError, and one
// dropped there is left alone (its destructor would wait on threads that do not exist in the
// child). A DataLoader worker makes its own Client (python/loom/data.py does).
#include <Python.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <mutex>

#include "loom/client.h"
#include "loom/gpu.h"
#include "prefetcher.h"

namespace py = pybind11;
using namespace loom::client;
using loom::python::PrefetchBuffer;
using loom::python::Prefetcher;
using loom::python::PrefetchItem;
using loom::python::PrefetchOptions;

namespace {

[[noreturn]] void Raise(const Status& s) {
  int e = s.posix_errno();
  if (e == 0) e = EIO;
  // OSError(errno, text) constructs the errno's subclass (FileNotFoundError for ENOENT...).
  PyObject* args = Py_BuildValue("(is)", e, s.ToString().c_str());
  PyErr_SetObject(PyExc_OSError, args);
  Py_XDECREF(args);
  throw py::error_already_set();
}

template <typename T>
T Check(Result<T> r) {
  if (!r.ok()) Raise(r.status());
  return std::move(*r);
}

void Check(const Status& s) {
  if (!s.ok()) Raise(s);
}

// Runs `f` without the GIL.
template <typename F>
auto NoGil(F&& f) {
  py::gil_scoped_release nogil;
  return f();
}

void CheckProcess(pid_t owner, const char* what) {
  if (getpid() != owner) {
    throw std::runtime_error(std::string(what) + " was made in process " + std::to_string(owner) +
                             " and cannot be used after fork(); make a new one in this process");
  }
}

// A holder that is left alone (never destroyed) when dropped in a forked child.
template <typename T>
void DropInOwner(pid_t owner, T& held) {
  if (getpid() != owner) new T(std::move(held));  // deliberately leaked: see the top
}

struct PyClient {
  std::shared_ptr<Client> c;
  pid_t pid = getpid();
  size_t gpu_staging_bytes = 8u << 20;
  int gpu_buffers = 4;
  std::mutex gpu_mu;
  std::map<int, std::shared_ptr<GpuReader>> gpu;  // one reader per device, made on first use

  ~PyClient() {
    DropInOwner(pid, c);
    DropInOwner(pid, gpu);
  }
  // A reference of the caller's own, as for PyFile::get.
  std::shared_ptr<Client> get() {
    CheckProcess(pid, "this loom.Client");
    if (!c) throw std::runtime_error("the loom.Client is closed");
    return c;
  }
  // The device's reader, made on first use. Called without the GIL: making one initializes
  // CUDA, and gpu_mu must never be waited for while holding the GIL.
  Result<std::shared_ptr<GpuReader>> Reader(int device) {
    std::lock_guard<std::mutex> g(gpu_mu);
    auto& r = gpu[device];
    if (!r) {
      auto made = GpuReader::Create(device, gpu_staging_bytes, gpu_buffers);
      if (!made.ok()) {
        gpu.erase(device);
        return made.status();
      }
      r = std::move(*made);
    }
    return r;
  }
};

struct PyFile {
  std::shared_ptr<File> f;
  std::shared_ptr<Client> client;  // the File needs its client alive
  pid_t pid = getpid();
  std::string mode;

  ~PyFile() {
    DropInOwner(pid, f);
    DropInOwner(pid, client);
  }
  // A reference of the caller's own: a close() on another thread must not free the File
  // under a call that released the GIL.
  std::shared_ptr<File> get() {
    CheckProcess(pid, "this loom.File");
    if (!f) throw std::runtime_error("I/O on a closed loom.File");
    return f;
  }
};

struct PyPrefetcher {
  std::unique_ptr<Prefetcher> p;
  pid_t pid = getpid();
  ~PyPrefetcher() {
    if (getpid() != pid) {
      (void)p.release();  // its threads are the parent's: leave it alone
    } else if (p) {
      py::gil_scoped_release nogil;  // Close waits for reads in flight
      p.reset();
    }
  }
  Prefetcher& get() {
    CheckProcess(pid, "this loom.Prefetcher");
    return *p;
  }
};

// A finished read handed out by the prefetcher: exposes its bytes through the buffer protocol
// (memoryview, numpy.frombuffer, bytes()) without a copy.
struct PyBuffer {
  PrefetchBuffer b;
};

// A contiguous view of any object with the buffer protocol (bytes, bytearray, memoryview,
// numpy arrays); a CPU torch.Tensor goes through .numpy(), which shares its memory.
struct BufferView {
  Py_buffer view{};
  bool held = false;
  BufferView(py::handle obj, bool writable) {
    py::object o = py::reinterpret_borrow<py::object>(obj);
    if (!PyObject_CheckBuffer(o.ptr()) && py::hasattr(o, "is_cuda") && py::hasattr(o, "numpy")) {
      if (o.attr("is_cuda").cast<bool>()) {
        throw py::type_error("a CUDA tensor: use Client.read_into_cuda");
      }
      o = o.attr("detach")().attr("numpy")();
    }
    int flags = PyBUF_ANY_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(o.ptr(), &view, flags) != 0) throw py::error_already_set();
    held = true;
  }
  ~BufferView() {
    if (held) PyBuffer_Release(&view);
  }
  char* data() const { return static_cast<char*>(view.buf); }
  size_t size() const { return static_cast<size_t>(view.len); }
};

const char* TypeName(FileType t) {
  switch (t) {
    case FileType::kRegular: return "file";
    case FileType::kDirectory: return "dir";
    case FileType::kSymlink: return "symlink";
    default: return "other";
  }
}

OpenFlags ParseMode(const std::string& mode) {
  // Python's open() letters, without a file position: reads and writes take offsets.
  OpenFlags f;
  std::string m;
  for (char ch : mode) {
    if (ch != 'b') m += ch;
  }
  bool plus = m.find('+') != std::string::npos;
  if (!m.empty() && m.back() == '+') m.pop_back();
  if (m == "r") {
    f.read = true;
    f.write = plus;
  } else if (m == "w") {
    f.read = plus;
    f.write = f.create = f.truncate = true;
  } else if (m == "x") {
    f.read = plus;
    f.write = f.create = f.exclusive = true;
  } else {
    throw py::value_error("mode must be r, r+, w, w+, x or x+ (with an optional b), not '" + mode +
                          "'; append has no meaning with explicit offsets");
  }
  return f;
}

py::dict StatsDict(const ClientStats& s) {
  py::dict d;
  d["mds_calls"] = s.mds_calls;
  d["mds_read_bytes"] = s.mds_read_bytes;
  d["mds_write_bytes"] = s.mds_write_bytes;
  d["ds_read_bytes"] = s.ds_read_bytes;
  d["ds_write_bytes"] = s.ds_write_bytes;
  d["ds_errors"] = s.ds_errors;
  d["read_failovers"] = s.read_failovers;
  d["layouts_fetched"] = s.layouts_fetched;
  d["recoveries"] = s.recoveries;
  d["retries"] = s.retries;
  return d;
}

py::dict GpuStatsDict(const GpuReadStats& s) {
  py::dict d;
  d["bytes"] = s.bytes;
  d["seconds"] = s.seconds;
  d["read_wait_seconds"] = s.read_wait_seconds;
  d["copy_wait_seconds"] = s.copy_wait_seconds;
  d["gpudirect"] = s.gpudirect;
  d["bytes_per_second"] = s.bytes_per_second();
  return d;
}

py::dict LayoutDict(const LayoutInfo& l) {
  py::dict d;
  d["granted"] = l.granted;
  d["stripe_unit"] = l.stripe_unit;
  py::list mirrors;
  for (const auto& m : l.mirrors) {
    py::list stripes;
    for (const auto& df : m) {
      py::dict x;
      x["address"] = df.address;
      x["deviceid"] = df.deviceid_hex;
      x["user"] = df.user;
      x["group"] = df.group;
      stripes.append(x);
    }
    mirrors.append(stripes);
  }
  d["mirrors"] = mirrors;
  return d;
}

// pread into a new bytes object of `n` bytes, shrunk to what was read.
py::bytes ReadBytes(File& f, uint64_t off, size_t n) {
  PyObject* b = PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(n));
  if (!b) throw py::error_already_set();
  py::object owner = py::reinterpret_steal<py::object>(b);
  char* p = PyBytes_AS_STRING(b);
  Result<size_t> r = NoGil([&] { return f.Read(off, p, n); });
  size_t got = Check(std::move(r));
  if (got < n) {
    PyObject* raw = owner.release().ptr();
    if (_PyBytes_Resize(&raw, static_cast<Py_ssize_t>(got)) != 0) throw py::error_already_set();
    owner = py::reinterpret_steal<py::object>(raw);
  }
  return py::reinterpret_steal<py::bytes>(owner.release());
}

std::shared_ptr<PyFile> OpenFile(PyClient& self, const std::string& path, const std::string& mode) {
  OpenFlags flags = ParseMode(mode);
  std::shared_ptr<Client> held = self.get();
  Client& c = *held;
  auto f = Check(NoGil([&] { return c.Open(path, flags); }));
  auto pf = std::make_shared<PyFile>();
  pf->f = std::move(f);
  pf->client = self.c;
  pf->mode = mode;
  return pf;
}

// `src`: a path or a loom.File. Reads `nbytes` at `offset` into device memory `ptr`.
size_t ReadToDevice(PyClient& self, py::object src, uint64_t offset, size_t nbytes, uintptr_t ptr,
                    int device) {
  std::shared_ptr<PyFile> owned;
  std::shared_ptr<File> f;
  if (py::isinstance<py::str>(src)) {
    owned = OpenFile(self, src.cast<std::string>(), "r");
    f = owned->f;
  } else {
    f = src.cast<PyFile&>().get();
  }
  auto r = NoGil([&]() -> Result<size_t> {
    auto reader = self.Reader(device);
    if (!reader.ok()) return reader.status();
    return (*reader)->Read(*f, offset, nbytes, reinterpret_cast<void*>(ptr));
  });
  if (owned) (void)NoGil([&] { return owned->f->Close(); });
  return Check(std::move(r));
}

}  // namespace

PYBIND11_MODULE(_loom, m) {
  m.doc() = "libloom: the Loom client library (see docs/python.md)";
  m.attr("__version__") = Version();

  py::class_<Attr>(m, "Stat", "A file's attributes (Client.stat).")
      .def_property_readonly("type", [](const Attr& a) { return TypeName(a.type); })
      .def_readonly("mode", &Attr::mode)
      .def_readonly("nlink", &Attr::nlink)
      .def_readonly("owner", &Attr::owner)
      .def_readonly("group", &Attr::group)
      .def_readonly("size", &Attr::size)
      .def_readonly("space_used", &Attr::space_used)
      .def_readonly("fileid", &Attr::fileid)
      .def_readonly("atime_ns", &Attr::atime_ns)
      .def_readonly("mtime_ns", &Attr::mtime_ns)
      .def_readonly("ctime_ns", &Attr::ctime_ns)
      .def_property_readonly("mtime", [](const Attr& a) { return a.mtime_ns / 1e9; })
      .def("is_dir", [](const Attr& a) { return a.type == FileType::kDirectory; })
      .def("is_file", [](const Attr& a) { return a.type == FileType::kRegular; })
      .def("__repr__", [](const Attr& a) {
        return "loom.Stat(type=" + std::string(TypeName(a.type)) + ", size=" +
               std::to_string(a.size) + ", mode=0o" + [&] {
                 char b[16];
                 std::snprintf(b, sizeof b, "%o", a.mode);
                 return std::string(b);
               }() + ")";
      });

  py::class_<DirEntry>(m, "DirEntry", "One entry of Client.scandir: name and attributes.")
      .def_readonly("name", &DirEntry::name)
      .def_readonly("stat", &DirEntry::attr)
      .def("is_dir", [](const DirEntry& e) { return e.attr.type == FileType::kDirectory; })
      .def("is_file", [](const DirEntry& e) { return e.attr.type == FileType::kRegular; })
      .def("__repr__", [](const DirEntry& e) { return "loom.DirEntry('" + e.name + "')"; });

  py::class_<PyBuffer>(m, "Buffer", py::buffer_protocol(),
                       "Bytes read by a Prefetcher; memoryview(b) / numpy.frombuffer(b) share them.")
      .def_buffer([](PyBuffer& b) {
        return py::buffer_info(b.b.data.get(), 1, py::format_descriptor<uint8_t>::format(), 1,
                               {static_cast<py::ssize_t>(b.b.size)}, {1});
      })
      .def("__len__", [](const PyBuffer& b) { return b.b.size; });

  py::class_<PyFile, std::shared_ptr<PyFile>>(m, "File", "An open Loom file (Client.open).")
      .def_property_readonly("size", [](PyFile& f) { return f.get()->size(); })
      .def_property_readonly("path", [](PyFile& f) { return f.get()->path(); })
      .def_property_readonly("mode", [](PyFile& f) { return f.mode; })
      .def_property_readonly("closed", [](PyFile& f) { return !f.f; })
      .def(
          "pread",
          [](PyFile& self, uint64_t off, int64_t n) {
            std::shared_ptr<File> held = self.get();
            File& f = *held;
            if (n < 0) {
              uint64_t size = f.size();
              n = off >= size ? 0 : static_cast<int64_t>(size - off);
            }
            return ReadBytes(f, off, static_cast<size_t>(n));
          },
          py::arg("offset"), py::arg("n") = -1,
          "Up to n bytes at offset (n < 0: to the end of the file); fewer only at end of file.")
      .def(
          "readinto",
          [](PyFile& self, uint64_t off, py::object buffer) {
            std::shared_ptr<File> held = self.get();
            File& f = *held;
            BufferView v(buffer, true);
            auto r = NoGil([&] { return f.Read(off, v.data(), v.size()); });
            return Check(std::move(r));
          },
          py::arg("offset"), py::arg("buffer"),
          "Reads into a writable buffer (bytearray, numpy array, CPU tensor) with no copy; "
          "returns the bytes read.")
      .def(
          "pwrite",
          [](PyFile& self, uint64_t off, py::object data) {
            std::shared_ptr<File> held = self.get();
            File& f = *held;
            BufferView v(data, false);
            auto r = NoGil([&] { return f.Write(off, v.data(), v.size()); });
            return Check(std::move(r));
          },
          py::arg("offset"), py::arg("data"))
      .def("sync", [](PyFile& self) {
        std::shared_ptr<File> held = self.get();
            File& f = *held;
        Check(NoGil([&] { return f.Sync(); }));
      })
      .def("layout", [](PyFile& self) {
        std::shared_ptr<File> held = self.get();
            File& f = *held;
        return LayoutDict(Check(NoGil([&] { return f.Layout(); })));
      })
      .def("close", [](PyFile& self) {
        CheckProcess(self.pid, "this loom.File");
        if (!self.f) return;
        std::shared_ptr<File> f = std::move(self.f);
        Check(NoGil([&] { return f->Close(); }));
      })
      .def("__enter__", [](std::shared_ptr<PyFile> self) { return self; })
      .def("__exit__", [](PyFile& self, py::object, py::object, py::object) {
        if (!self.f || getpid() != self.pid) return;
        std::shared_ptr<File> f = std::move(self.f);
        Check(NoGil([&] { return f->Close(); }));
      })
      .def("__repr__", [](PyFile& f) {
        return "loom.File('" + (f.f ? f.f->path() : std::string("closed")) + "', '" + f.mode + "')";
      });

  py::class_<PyPrefetcher>(m, "Prefetcher",
                           "Reads (path, offset, length) items ahead, in order, within a memory "
                           "budget. Iterate, or call next(). See Client.prefetch.")
      .def("next", [](PyPrefetcher& self) -> py::object {
             Prefetcher& p = self.get();
             auto r = NoGil([&] { return p.Next(); });
             if (!r) return py::none();
             return py::cast(PyBuffer{Check(std::move(*r))});
           },
           "The next item's Buffer (waits for it); None after the last. A failed item raises "
           "OSError; the items after it still follow.")
      .def("__iter__", [](py::object self) { return self; })
      .def("__next__", [](PyPrefetcher& self) {
        Prefetcher& p = self.get();
        auto r = NoGil([&] { return p.Next(); });
        if (!r) throw py::stop_iteration();
        return PyBuffer{Check(std::move(*r))};
      })
      .def("stats", [](PyPrefetcher& self) {
        auto s = self.get().stats();
        py::dict d;
        d["items"] = s.items;
        d["delivered"] = s.delivered;
        d["held_bytes"] = s.held_bytes;
        d["peak_held_bytes"] = s.peak_held_bytes;
        d["budget_bytes"] = s.budget_bytes;
        d["reads_in_flight"] = s.reads_in_flight;
        d["peak_reads_in_flight"] = s.peak_reads_in_flight;
        d["opens"] = s.opens;
        d["bytes_read"] = s.bytes_read;
        return d;
      })
      .def("close", [](PyPrefetcher& self) {
        Prefetcher& p = self.get();
        NoGil([&] { p.Close(); });
      })
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](PyPrefetcher& self, py::object, py::object, py::object) {
        if (getpid() != self.pid) return;
        Prefetcher& p = *self.p;
        NoGil([&] { p.Close(); });
      });

  py::class_<PyClient>(m, "Client", "A connection to a Loom cluster (see loom.Client).")
      .def(py::init([](std::optional<std::string> mds, std::optional<uint32_t> uid,
                       std::optional<uint32_t> gid, uint32_t connections_per_ds, bool pnfs,
                       std::optional<uint32_t> io_size, std::optional<std::string> client_name,
                       size_t gpu_staging_bytes, int gpu_buffers) {
             Options o;
             if (mds) o.mds = *mds;
             o.uid = uid;
             o.gid = gid;
             o.connections_per_ds = connections_per_ds;
             o.pnfs = pnfs;
             if (io_size) o.io_size = *io_size;
             if (client_name) o.client_name = *client_name;
             auto pc = std::make_unique<PyClient>();
             pc->c = Check(NoGil([&] { return Client::Connect(o); }));
             pc->gpu_staging_bytes = gpu_staging_bytes;
             pc->gpu_buffers = gpu_buffers;
             return pc;
           }),
           py::arg("mds") = py::none(), py::arg("uid") = py::none(), py::arg("gid") = py::none(),
           py::arg("connections_per_ds") = 2, py::arg("pnfs") = true,
           py::arg("io_size") = py::none(), py::arg("client_name") = py::none(),
           py::arg("gpu_staging_bytes") = size_t{8u << 20}, py::arg("gpu_buffers") = 4)
      .def_property_readonly("mds_address", [](PyClient& s) { return s.get()->mds_address(); })
      .def("stat", [](PyClient& s, const std::string& p) {
             std::shared_ptr<Client> held = s.get();
             Client& c = *held;
             return Check(NoGil([&] { return c.Stat(p); }));
           }, py::arg("path"))
      .def("exists", [](PyClient& s, const std::string& p) {
             std::shared_ptr<Client> held = s.get();
             Client& c = *held;
             auto r = NoGil([&] { return c.Stat(p); });
             if (!r.ok() && r.status().code() == Errc::kNotFound) return false;
             Check(r.status());
             return true;
           }, py::arg("path"))
      .def("scandir", [](PyClient& s, const std::string& p) {
             std::shared_ptr<Client> held = s.get();
             Client& c = *held;
             return Check(NoGil([&] { return c.List(p); }));
           }, py::arg("path") = "/")
      .def("listdir", [](PyClient& s, const std::string& p) {
             std::shared_ptr<Client> held = s.get();
             Client& c = *held;
             auto entries = Check(NoGil([&] { return c.List(p); }));
             std::vector<std::string> names;
             for (auto& e : entries) names.push_back(std::move(e.name));
             return names;
           }, py::arg("path") = "/")
      .def("mkdir", [](PyClient& s, const std::string& p, uint32_t mode) {
             std::shared_ptr<Client> held = s.get();
             Client& c = *held;
             Check(NoGil([&] { return c.Mkdir(p, mode); }));
           }, py::arg("path"), py::arg("mode") = 0755)
      .def("makedirs", [](PyClient& s, const std::string& p, uint32_t mode, bool exist_ok) {
             std::shared_ptr<Client> held = s.get();
             Client& c = *held;
             if (!exist_ok) {
               auto st = NoGil([&] { return c.Stat(p); });
               if (st.ok()) Raise(Status(Errc::kExists, p));
             }
             Check(NoGil([&] { return c.MkdirAll(p, mode); }));
           }, py::arg("path"), py::arg("mode") = 0755, py::arg("exist_ok") = false)
      .def("remove", [](PyClient& s, const std::string& p) {
             std::shared_ptr<Client> held = s.get();
             Client& c = *held;
             Check(NoGil([&] { return c.Remove(p); }));
           }, py::arg("path"))
      .def("rename", [](PyClient& s, const std::string& a, const std::string& b) {
             std::shared_ptr<Client> held = s.get();
             Client& c = *held;
             Check(NoGil([&] { return c.Rename(a, b); }));
           }, py::arg("src"), py::arg("dst"))
      .def("symlink", [](PyClient& s, const std::string& target, const std::string& p) {
             std::shared_ptr<Client> held = s.get();
             Client& c = *held;
             Check(NoGil([&] { return c.Symlink(target, p); }));
           }, py::arg("target"), py::arg("path"))
      .def("readlink", [](PyClient& s, const std::string& p) {
             std::shared_ptr<Client> held = s.get();
             Client& c = *held;
             return Check(NoGil([&] { return c.Readlink(p); }));
           }, py::arg("path"))
      .def("chmod", [](PyClient& s, const std::string& p, uint32_t mode) {
             std::shared_ptr<Client> held = s.get();
             Client& c = *held;
             Check(NoGil([&] { return c.Chmod(p, mode); }));
           }, py::arg("path"), py::arg("mode"))
      .def("truncate", [](PyClient& s, const std::string& p, uint64_t size) {
             std::shared_ptr<Client> held = s.get();
             Client& c = *held;
             Check(NoGil([&] { return c.Truncate(p, size); }));
           }, py::arg("path"), py::arg("size"))
      .def("statfs", [](PyClient& s, const std::string& p) {
             std::shared_ptr<Client> held = s.get();
             Client& c = *held;
             FsStat f = Check(NoGil([&] { return c.StatFs(p); }));
             py::dict d;
             d["total_bytes"] = f.total_bytes;
             d["free_bytes"] = f.free_bytes;
             d["avail_bytes"] = f.avail_bytes;
             d["total_files"] = f.total_files;
             d["free_files"] = f.free_files;
             return d;
           }, py::arg("path") = "/")
      .def("layout", [](PyClient& s, const std::string& p) {
             std::shared_ptr<Client> held = s.get();
             Client& c = *held;
             return LayoutDict(Check(NoGil([&] { return c.Layout(p); })));
           }, py::arg("path"))
      .def("open", &OpenFile, py::arg("path"), py::arg("mode") = "r",
           "Opens a file: mode r, r+, w (create, truncate), x (create, must not exist), "
           "with + for both directions.")
      .def("read_file", [](PyClient& s, const std::string& p) {
             auto f = OpenFile(s, p, "r");
             py::bytes b = ReadBytes(*f->f, 0, static_cast<size_t>(f->f->size()));
             Check(NoGil([&] { return f->f->Close(); }));
             return b;
           }, py::arg("path"), "The whole file as bytes.")
      .def("write_file", [](PyClient& s, const std::string& p, py::object data, uint32_t mode) {
             std::shared_ptr<Client> held = s.get();
             Client& c = *held;
             BufferView v(data, false);
             OpenFlags flags = ParseMode("w");
             flags.mode = mode;
             auto r = NoGil([&]() -> Result<size_t> {
               auto f = c.Open(p, flags);
               if (!f.ok()) return f.status();
               auto n = (*f)->Write(0, v.data(), v.size());
               Status closed = (*f)->Close();  // Close syncs: the bytes are stable after it
               if (!n.ok()) return n;
               if (!closed.ok()) return closed;
               return n;
             });
             return Check(std::move(r));
           }, py::arg("path"), py::arg("data"), py::arg("mode") = 0644,
           "Creates or replaces the file with `data`; the bytes are stable when it returns.")
      .def("stats", [](PyClient& s) { return StatsDict(s.get()->stats()); })
      .def("prefetch",
           [](PyClient& s, const std::vector<std::tuple<std::string, uint64_t, int64_t>>& items,
              size_t budget_bytes, size_t max_ahead, int open_threads, size_t piece_bytes) {
             s.get();
             std::vector<PrefetchItem> v;
             v.reserve(items.size());
             for (const auto& [path, off, len] : items) {
               v.push_back(PrefetchItem{path, off,
                                        len < 0 ? PrefetchItem::kToEnd : static_cast<uint64_t>(len)});
             }
             PrefetchOptions o;
             o.budget_bytes = budget_bytes;
             o.max_ahead = max_ahead;
             o.open_threads = open_threads;
             o.piece_bytes = piece_bytes;
             auto p = std::make_unique<PyPrefetcher>();
             p->p = std::make_unique<Prefetcher>(s.c, std::move(v), o);
             return p;
           },
           py::arg("items"), py::arg("budget_bytes") = size_t{256u << 20},
           py::arg("max_ahead") = size_t{256}, py::arg("open_threads") = 4,
           py::arg("piece_bytes") = size_t{4u << 20},
           "A Prefetcher over (path, offset, length) items (length < 0: to the end of the file), "
           "in the order they will be consumed.")
      .def("_read_to_device", &ReadToDevice, py::arg("src"), py::arg("offset"), py::arg("nbytes"),
           py::arg("ptr"), py::arg("device"),
           "Reads nbytes of src (a path or File) at offset into device memory at ptr.")
      .def("gpu_stats", [](PyClient& s, int device) {
             std::shared_ptr<GpuReader> r = NoGil([&] {  // gpu_mu: never waited for with the GIL
               std::lock_guard<std::mutex> g(s.gpu_mu);
               auto it = s.gpu.find(device);
               return it != s.gpu.end() ? it->second : nullptr;
             });
             py::dict d;
             d["last"] = GpuStatsDict(r ? r->last_stats() : GpuReadStats());
             d["total"] = GpuStatsDict(r ? r->total_stats() : GpuReadStats());
             return d;
           }, py::arg("device") = 0)
      .def("close", [](PyClient& s) {
        CheckProcess(s.pid, "this loom.Client");
        if (!s.c) return;
        std::shared_ptr<Client> c = s.c;
        NoGil([&] {
          {
            std::lock_guard<std::mutex> g(s.gpu_mu);
            s.gpu.clear();
          }
          c->Close();
        });
        s.c.reset();
      });

  m.def("gpu_available", [] {
    std::string why;
    bool ok = GpuAvailable(&why);
    return std::make_pair(ok, why);
  }, "(available, why): whether the CUDA runtime loads and sees a device.");
  m.def("gpudirect_available", [] {
    std::string why;
    bool ok = GpuDirectStorageAvailable(&why);
    return std::make_pair(ok, why);
  }, "(available, why): whether GPUDirect Storage (cuFile) is usable.");
  m.def("pinned_h2d_ceiling_gbps", [](size_t bytes, int device) {
    return Check(NoGil([&] { return PinnedH2DCeilingGBps(bytes, device); }));
  }, py::arg("nbytes") = size_t{256u << 20}, py::arg("device") = 0,
     "GB/s of cudaMemcpyAsync from pinned host memory: the ceiling of any host-to-GPU path.");
  m.def("_copy_local_file_to_device",
        [](const std::string& path, uint64_t off, size_t n, uintptr_t ptr, int device) {
          GpuReadStats st;
          auto r = NoGil([&] {
            return CopyLocalFileToDevice(path, off, n, reinterpret_cast<void*>(ptr), device, &st);
          });
          size_t got = Check(std::move(r));
          return std::make_pair(got, GpuStatsDict(st));
        },
        py::arg("path"), py::arg("offset"), py::arg("nbytes"), py::arg("ptr"), py::arg("device"));
}
