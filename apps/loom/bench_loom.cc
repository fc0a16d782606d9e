// The loom backend: libloom. Each file of a batch is opened (Client::OpenAsync: OPEN and, with
// pNFS, the layout in one COMPOUND; up to --open-depth at once) and read with ReadAsync, the
// batch's reads in flight together up to the window, the bytes landing straight in the
// reader's reused buffers. A file is closed (File::CloseAsync) as soon as its last read is
// back, while the batch's other reads are in flight.
#include <algorithm>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include "bench_backend.h"
#include "loom/client.h"

namespace loom::bench {
namespace {

using client::Client;
using client::File;
using client::OpenFlags;
using client::Result;
using client::Status;

// The state of one WriteFile: writes in flight and the first error. Completions arrive on
// libloom's threads and only touch this under `mu`; the writer waits for `inflight == 0`
// before the state goes away.
struct Window {
  std::mutex mu;
  std::condition_variable cv;
  size_t inflight = 0;
  std::string err;
};

class LoomReader : public Reader {
 public:
  LoomReader(std::shared_ptr<Client> client, const BackendConfig& cfg)
      : client_(std::move(client)), cfg_(cfg) {}
  ~LoomReader() override {
    for (auto& [path, f] : open_) (void)f->Close();
  }

  // One loop on the calling thread: keep up to open_depth opens in flight; issue the reads of
  // opened files while slots are free; hand each file whose reads are all back to a close.
  // Opens, reads and closes complete on other threads and only touch `b` under `b.mu`; the
  // loop returns when nothing is in flight any more.
  std::string ReadBatch(const std::vector<Extent>& ext, uint64_t file_bytes) override {
    slots_.EnsureFor(cfg_, ext);
    struct Sample {
      std::shared_ptr<File> file;
      uint64_t next_off = 0, end = 0;
      size_t pending = 0;
    };
    struct Batch {
      std::mutex mu;
      std::condition_variable cv;
      std::vector<Sample> samples;
      std::vector<size_t> free_slots;
      std::deque<size_t> readable;  // opened, with bytes left to ask for
      std::deque<size_t> finished;  // every read back: to close
      size_t next_open = 0, opens = 0, reads = 0, closes = 0;
      std::string err;
      void Fail(const std::string& e) {
        if (err.empty()) err = e;
      }
    } b;
    b.samples.resize(ext.size());
    for (size_t i = 0; i < ext.size(); i++) {
      b.samples[i].next_off = ext[i].off;
      b.samples[i].end = ext[i].off + ext[i].len;
    }
    for (size_t i = slots_.size(); i-- > 0;) b.free_slots.push_back(i);

    std::unique_lock<std::mutex> lk(b.mu);
    while (true) {
      bool stopping = !b.err.empty();
      while (!stopping && b.opens < cfg_.open_depth && b.next_open < ext.size()) {
        size_t i = b.next_open++;
        if (auto it = open_.find(ext[i].path); it != open_.end()) {
          b.samples[i].file = it->second;
          b.readable.push_back(i);
          continue;
        }
        b.opens++;
        lk.unlock();  // OpenAsync may call back on this thread
        client_->OpenAsync(ext[i].path, OpenFlags{}, [&b, &ext, i, file_bytes](Result<std::shared_ptr<File>> r) {
          std::lock_guard<std::mutex> g(b.mu);
          b.opens--;
          if (!r.ok()) {
            b.Fail("open " + ext[i].path + ": " + r.status().ToString());
          } else if ((*r)->size() != file_bytes) {
            b.Fail(WrongSize(ext[i].path, (*r)->size(), file_bytes));
            b.samples[i].file = *r;
            b.finished.push_back(i);
          } else {
            b.samples[i].file = *r;
            b.readable.push_back(i);
          }
          b.cv.notify_all();
        });
        lk.lock();
        stopping = !b.err.empty();
      }
      while (!stopping && !b.readable.empty() && !b.free_slots.empty()) {
        size_t i = b.readable.front();
        Sample& s = b.samples[i];
        if (cfg_.keep_open && !open_.count(ext[i].path)) open_[ext[i].path] = s.file;
        uint64_t off = s.next_off;
        size_t len = static_cast<size_t>(std::min<uint64_t>(slots_.bytes(), s.end - off));
        s.next_off += len;
        if (s.next_off >= s.end) b.readable.pop_front();
        size_t slot = b.free_slots.back();
        b.free_slots.pop_back();
        s.pending++;
        b.reads++;
        std::shared_ptr<File> f = s.file;
        lk.unlock();  // ReadAsync may complete on this thread
        f->ReadAsync(off, slots_[slot], len, [&b, &ext, i, slot, len, off](Status st, size_t n) {
          std::lock_guard<std::mutex> g(b.mu);
          if (!st.ok()) {
            b.Fail("read " + ext[i].path + " at " + std::to_string(off) + ": " + st.ToString());
          } else if (n != len) {
            b.Fail("short read of " + ext[i].path + " at " + std::to_string(off) + ": " +
                   std::to_string(n) + " of " + std::to_string(len));
          }
          b.free_slots.push_back(slot);
          b.reads--;
          Sample& done = b.samples[i];
          const bool file_done = --done.pending == 0 && done.next_off >= done.end;
          if (file_done) b.finished.push_back(i);
          // Wake the loop only when it has something to do: a file to close, a read to issue
          // into the freed slot, the batch's last read back, an error. A sample's other
          // chunks coming back are not news (cosmoflow: 3 reads per sample, 2 wake-ups fewer).
          if (file_done || !b.readable.empty() || b.reads == 0 || !b.err.empty()) b.cv.notify_all();
        });
        lk.lock();
        stopping = !b.err.empty();
      }
      while (!b.finished.empty()) {
        size_t i = b.finished.front();
        b.finished.pop_front();
        std::shared_ptr<File> f = std::move(b.samples[i].file);
        if (cfg_.keep_open && open_.count(ext[i].path)) continue;
        b.closes++;
        lk.unlock();  // CloseAsync may call back on this thread
        f->CloseAsync([&b, &ext, i](Status st) {
          std::lock_guard<std::mutex> g(b.mu);
          b.closes--;
          if (!st.ok()) b.Fail("close " + ext[i].path + ": " + st.ToString());
          // The loop waits for closes only to finish the batch.
          if (b.closes == 0 || !b.err.empty()) b.cv.notify_all();
        });
        lk.lock();
      }
      bool idle = b.opens == 0 && b.reads == 0 && b.closes == 0;
      if (idle && (stopping || (b.next_open == ext.size() && b.readable.empty()))) break;
      b.cv.wait(lk);
    }
    // After an error: files opened whose reads were never all issued.
    for (size_t i = 0; i < b.samples.size(); i++) {
      if (b.samples[i].file && !open_.count(ext[i].path)) (void)b.samples[i].file->Close();
    }
    return b.err;
  }

 private:
  std::shared_ptr<Client> client_;
  BackendConfig cfg_;
  ReadSlots slots_;
  std::map<std::string, std::shared_ptr<File>> open_;  // --keep-open; this thread only
};

class LoomBackend : public Backend {
 public:
  LoomBackend(std::shared_ptr<Client> client, const BackendConfig& cfg)
      : client_(std::move(client)), cfg_(cfg) {}
  ~LoomBackend() override { client_->Close(); }

  std::string NewReader(std::unique_ptr<Reader>* out) override {
    *out = std::make_unique<LoomReader>(client_, cfg_);
    return "";
  }

  std::string MakeDirs(const std::string& dir) override {
    Status st = client_->MkdirAll(dir);
    return st.ok() ? "" : "mkdir " + dir + ": " + st.ToString();
  }

  std::string WriteFile(const std::string& path, const char* data, uint64_t len) override {
    OpenFlags fl;
    fl.write = true;
    fl.create = true;
    fl.truncate = true;
    auto r = client_->Open(path, fl);
    if (!r.ok()) return "create " + path + ": " + r.status().ToString();
    std::shared_ptr<File> f = *r;
    // Up to 16 chunks in flight; the data is the caller's and outlives every write.
    Window w;
    const size_t kDepth = 16;
    for (uint64_t off = 0; off < len; off += cfg_.chunk_bytes) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(cfg_.chunk_bytes, len - off));
      {
        std::unique_lock<std::mutex> lk(w.mu);
        w.cv.wait(lk, [&] { return w.inflight < kDepth || !w.err.empty(); });
        if (!w.err.empty()) break;
        w.inflight++;
      }
      f->WriteAsync(off, data + off, n, [&w, &path, n, off](Status st, size_t done) {
        std::lock_guard<std::mutex> lk(w.mu);
        if (w.err.empty() && !st.ok()) {
          w.err = "write " + path + " at " + std::to_string(off) + ": " + st.ToString();
        } else if (w.err.empty() && done != n) {
          w.err = "short write of " + path + " at " + std::to_string(off);
        }
        w.inflight--;
        w.cv.notify_all();
      });
    }
    {
      std::unique_lock<std::mutex> lk(w.mu);
      w.cv.wait(lk, [&] { return w.inflight == 0; });
    }
    Status st = f->Close();  // Sync (COMMIT, LAYOUTCOMMIT), then CLOSE
    if (!w.err.empty()) return w.err;
    return st.ok() ? "" : "close " + path + ": " + st.ToString();
  }

  // The client's counters over the whole run (all trials): metadata calls per sample read
  // show what opening every sample costs; mds_read_bytes > 0 means bytes bypassed pNFS.
  std::string StatsJson() {
    client::ClientStats st = client_->stats();
    auto kv = [](const char* k, uint64_t v) { return std::string(",\"") + k + "\":" + std::to_string(v); };
    return kv("mds_calls", st.mds_calls) + kv("ds_read_bytes", st.ds_read_bytes) +
           kv("mds_read_bytes", st.mds_read_bytes) + kv("layouts_fetched", st.layouts_fetched) +
           kv("ds_errors", st.ds_errors) + kv("retries", st.retries);
  }

  std::string DescribeJson(const std::string& sample_path) override {
    auto l = client_->Layout(sample_path);
    if (!l.ok()) return "{\"layout\":null" + StatsJson() + "}";
    size_t stripes = l->mirrors.empty() ? 0 : l->mirrors[0].size();
    return "{\"layout\":" + std::string(l->granted ? "true" : "false") +
           ",\"mirrors\":" + std::to_string(l->mirrors.size()) +
           ",\"stripes\":" + std::to_string(stripes) +
           ",\"stripe_unit\":" + std::to_string(l->stripe_unit) +
           ",\"mds\":\"" + client_->mds_address() + "\"" + StatsJson() + "}";
  }

 private:
  std::shared_ptr<Client> client_;
  BackendConfig cfg_;
};

}  // namespace

std::string MakeLoomBackend(const BackendConfig& cfg, std::unique_ptr<Backend>* out) {
  client::Options opts;
  opts.mds = cfg.mds;
  opts.connections_per_ds = cfg.connections;
  if (cfg.chunk_bytes > opts.io_size) opts.io_size = static_cast<uint32_t>(cfg.chunk_bytes);
  auto c = Client::Connect(opts);
  if (!c.ok()) return "connect to the metadata server: " + c.status().ToString();
  *out = std::make_unique<LoomBackend>(*c, cfg);
  return "";
}

}  // namespace loom::bench
