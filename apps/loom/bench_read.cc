// `loom bench read`: raw libloom reads of one file for a fixed time, `depth` reads in flight,
// sequential (wrapping at the end of the file) or at random block-aligned offsets. Each
// completion issues the next read from libloom's thread (ReadAsync does not block), so no
// thread hand-off of ours is in the measured path.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <functional>
#include <mutex>
#include <random>

#include "bench_internal.h"
#include "bench_util.h"
#include "common/proc_stat.h"
#include "loom/client.h"

namespace loom::bench {
namespace {

using client::Client;
using client::File;
using client::OpenFlags;
using client::Status;

uint64_t SplitMix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Creates `path` with `size` bytes of random data (1 MiB writes, 16 in flight), unless it
// already holds at least that many.
std::string EnsureFile(Client* c, const std::string& path, uint64_t size, uint64_t* have) {
  auto st = c->Stat(path);
  if (st.ok() && st->size >= size) {
    *have = st->size;
    return "";
  }
  size_t slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    Status s = c->MkdirAll(path.substr(0, slash));
    if (!s.ok()) return "mkdir: " + s.ToString();
  }
  OpenFlags fl;
  fl.write = fl.create = fl.truncate = true;
  auto r = c->Open(path, fl);
  if (!r.ok()) return "create " + path + ": " + r.status().ToString();
  std::shared_ptr<File> f = *r;
  const size_t kChunk = 1 << 20, kDepth = 16;
  std::vector<char> buf(kChunk);
  std::mt19937_64 rng(42);
  for (size_t i = 0; i + 8 <= buf.size(); i += 8) {
    uint64_t v = rng();
    std::memcpy(&buf[i], &v, 8);
  }
  std::mutex mu;
  std::condition_variable cv;
  size_t inflight = 0;
  std::string err;
  for (uint64_t off = 0; off < size; off += kChunk) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, size - off));
    {
      std::unique_lock<std::mutex> lk(mu);
      cv.wait(lk, [&] { return inflight < kDepth; });
      if (!err.empty()) break;
      inflight++;
    }
    f->WriteAsync(off, buf.data(), n, [&, n](Status s, size_t done) {
      std::lock_guard<std::mutex> lk(mu);
      if (err.empty() && (!s.ok() || done != n)) err = "write " + path + ": " + s.ToString();
      inflight--;
      cv.notify_all();
    });
  }
  {
    std::unique_lock<std::mutex> lk(mu);
    cv.wait(lk, [&] { return inflight == 0; });
  }
  Status s = f->Close();
  if (!err.empty()) return err;
  if (!s.ok()) return "close " + path + ": " + s.ToString();
  *have = size;
  return "";
}

struct Slot {
  char* buf = nullptr;
  double issued = 0;
  std::vector<double> lat_us;
  uint64_t bytes = 0;
};

}  // namespace

int RunRead(const std::vector<std::string>& args) {
  Flags f;
  std::string err;
  if (!f.Parse(args, {"pattern", "bs", "depth", "connections", "seconds", "file", "size", "mds"},
               {"json"}, &err)) {
    std::fprintf(stderr, "loom bench read: %s (see loom bench --help)\n", err.c_str());
    return kExitUsage;
  }
  std::string pattern = f.Get("pattern", "seq");
  uint64_t bs, depth, conns, size;
  double seconds;
  if (!ParseSize(f.Get("bs", "1M"), &bs) || !ParseUint(f.Get("depth", "8"), &depth) ||
      !ParseUint(f.Get("connections", "4"), &conns) ||
      !ParseDouble(f.Get("seconds", "5"), &seconds) || !ParseSize(f.Get("size", "1G"), &size) ||
      bs == 0 || depth == 0 || conns == 0 || seconds <= 0 || size < bs ||
      (pattern != "seq" && pattern != "rand")) {
    std::fprintf(stderr, "loom bench read: bad options (--pattern seq|rand --bs N --depth D "
                         "--connections C --seconds S --size N)\n");
    return kExitUsage;
  }
  std::string path = f.Get("file", "/loom-bench/read.dat");

  client::Options opts;
  opts.mds = f.Get("mds");
  opts.connections_per_ds = static_cast<uint32_t>(conns);
  if (bs > opts.io_size) opts.io_size = static_cast<uint32_t>(bs);
  auto cr = Client::Connect(opts);
  if (!cr.ok()) {
    std::fprintf(stderr, "loom bench read: connect: %s\n", cr.status().ToString().c_str());
    return kExitError;
  }
  std::shared_ptr<Client> c = *cr;
  uint64_t file_size = 0;
  err = EnsureFile(c.get(), path, size, &file_size);
  if (err.empty()) {
    auto r = c->Open(path, OpenFlags{});
    if (!r.ok()) err = "open " + path + ": " + r.status().ToString();
    std::shared_ptr<File> file = r.ok() ? *r : nullptr;
    uint64_t blocks = size / bs;  // the measured range: the first --size bytes
    std::vector<Slot> slots(depth);
    IoRegion region(depth * bs);  // the same destination memory as `loom bench train`'s
    for (size_t i = 0; i < slots.size(); i++) slots[i].buf = region.data() + i * bs;
    // One read before the clock starts: the layout and the data-server connections.
    if (file) {
      auto w = file->Read(0, slots[0].buf, bs);
      if (!w.ok()) err = "read " + path + ": " + w.status().ToString();
    }
    if (err.empty()) {
      client::ClientStats s0 = c->stats();
      std::atomic<uint64_t> seq{0}, errors{0};
      std::mutex mu;
      std::condition_variable cv;
      size_t active = depth;
      std::string io_err;
      const bool rand = pattern == "rand";
      double cpu0 = SelfCpuSeconds();
      double t0 = NowS(), end = t0 + seconds;
      std::function<void(size_t)> issue = [&](size_t i) {
        uint64_t n = seq.fetch_add(1);
        uint64_t block = rand ? SplitMix(n) % blocks : n % blocks;
        Slot& slot = slots[i];
        slot.issued = NowS();
        file->ReadAsync(block * bs, slot.buf, bs, [&, i](Status st, size_t got) {
          Slot& s = slots[i];
          double now = NowS();
          if (!st.ok() || got != bs) {
            errors++;
            std::lock_guard<std::mutex> lk(mu);
            if (io_err.empty()) io_err = st.ok() ? "short read" : st.ToString();
          } else {
            s.lat_us.push_back((now - s.issued) * 1e6);
            s.bytes += got;
          }
          if (now < end && errors == 0) {
            issue(i);
            return;
          }
          std::lock_guard<std::mutex> lk(mu);
          if (--active == 0) cv.notify_all();
        });
      };
      for (size_t i = 0; i < depth; i++) issue(i);
      {
        std::unique_lock<std::mutex> lk(mu);
        cv.wait(lk, [&] { return active == 0; });
      }
      double secs = NowS() - t0;
      double cpu = SelfCpuSeconds() - cpu0;
      client::ClientStats s1 = c->stats();
      if (!io_err.empty()) err = "read " + path + ": " + io_err;
      std::vector<double> lat;
      uint64_t bytes = 0;
      for (auto& s : slots) {
        lat.insert(lat.end(), s.lat_us.begin(), s.lat_us.end());
        bytes += s.bytes;
      }
      double ops = static_cast<double>(lat.size());
      double p50 = Percentile(&lat, 50), p99 = Percentile(&lat, 99);
      auto layout = file->Layout();
      (void)file->Close();
      if (err.empty()) {
        bench::Json j;
        j.Str("bench", "read").Str("pattern", pattern).Int("bs", static_cast<int64_t>(bs));
        j.Int("depth", static_cast<int64_t>(depth)).Int("connections", static_cast<int64_t>(conns));
        j.Num("seconds", secs, 3).Int("bytes", static_cast<int64_t>(bytes));
        j.Num("MB_s", bytes / secs / 1e6, 1).Num("MiB_s", bytes / secs / 1048576.0, 1);
        j.Num("iops", ops / secs, 0).Num("p50_us", p50, 0).Num("p99_us", p99, 0);
        // This client's CPU (libloom and the benchmark's own threads) per GiB read.
        j.Num("client_cpu_s", cpu, 2).Num("client_cpu_s_per_GiB", bytes > 0 ? cpu / (bytes / 1073741824.0) : 0, 3);
        j.Str("file", path).Int("range_bytes", static_cast<int64_t>(blocks * bs));
        if (layout.ok()) {
          j.Bool("layout", layout->granted);
          j.Int("stripes", layout->mirrors.empty() ? 0 : static_cast<int64_t>(layout->mirrors[0].size()));
          j.Int("mirrors", static_cast<int64_t>(layout->mirrors.size()));
        }
        j.Int("ds_read_bytes", static_cast<int64_t>(s1.ds_read_bytes - s0.ds_read_bytes));
        j.Int("mds_read_bytes", static_cast<int64_t>(s1.mds_read_bytes - s0.mds_read_bytes));
        if (f.Has("json")) {
          std::printf("%s\n", j.str().c_str());
        } else {
          std::printf("%s %s x%llu, %llu conn/ds: %.1f MiB/s, %.0f IOPS, p50 %.0f us, "
                      "p99 %.0f us\n",
                      pattern.c_str(), f.Get("bs", "1M").c_str(),
                      static_cast<unsigned long long>(depth),
                      static_cast<unsigned long long>(conns), bytes / secs / 1048576.0,
                      ops / secs, p50, p99);
        }
      }
    }
  }
  c->Close();
  if (!err.empty()) {
    std::fprintf(stderr, "loom bench read: %s\n", err.c_str());
    return kExitError;
  }
  return kExitOk;
}

}  // namespace loom::bench
