// `loom bench train`: the MLPerf Storage training method. Simulated accelerators (threads)
// each take the next batch of samples (every sample once per epoch; the files in a new random
// order each epoch, a file's samples in file order, as MLPerf's data sets are laid out: unet3d
// and cosmoflow one sample per file, resnet50 1251 records per file), wait for the batch's
// bytes, then "compute" by sleeping the workload's time per batch. A loader per accelerator reads up to --prefetch
// batches ahead while the accelerator computes, as a training framework's data loader does.
// Accelerator utilisation (AU) = compute time / wall time; storage keeps up with N
// accelerators when AU stays >= 90% (70% for cosmoflow). docs/benchmarks.md has the details.
#include <sys/prctl.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "bench_backend.h"
#include "bench_internal.h"
#include "bench_util.h"
#include "common/proc_stat.h"

namespace loom::bench {
namespace {

struct Workload {
  const char* name;
  uint64_t sample_bytes;
  uint32_t batch;      // samples per batch, per accelerator
  double compute_s;    // simulated compute time per batch
  double au_target;    // the AU a run must keep to pass
  uint64_t default_files;
  uint64_t samples_per_file;  // records per file (TFRecord files hold many)
};

// MLPerf Storage v1.0 (A100 accelerators): sample sizes, batch sizes and compute times of
// the three training workloads, and how its data sets hold the samples: unet3d one sample per
// .npz file, cosmoflow one per TFRecord file, resnet50 1251 per TFRecord file (ImageNet's
// 1.28M images in 1024 files). The file counts are small data sets for one machine.
const Workload kWorkloads[] = {
    {"unet3d", 146600000, 7, 0.323, 0.90, 24, 1},
    {"resnet50", 114700, 400, 0.224, 0.90, 8, 1251},
    {"cosmoflow", 2830000, 1, 0.0035, 0.70, 300, 1},
};

const Workload* FindWorkload(const std::string& name) {
  for (const Workload& w : kWorkloads) {
    if (name == w.name) return &w;
  }
  return nullptr;
}

double DemandMBps(const Workload& w) {
  return static_cast<double>(w.sample_bytes) * w.batch / w.compute_s / 1e6;
}

// A batch's byte ranges: (file index, first sample, samples), consecutive samples of one
// file merged into one range.
struct Span {
  uint64_t file, first, count;
};

// Hands out batches: each epoch a new shuffle of the files; the samples in that file order
// (a file's samples in order, as a TFRecord reader streams them), cut into batches of `batch`
// (the last, partial one dropped, as a data loader with drop_last does). Thread-safe.
class BatchSource {
 public:
  BatchSource(uint64_t files, uint64_t per_file, uint32_t batch, uint64_t epochs, double deadline,
              uint64_t seed)
      : files_(files), per_file_(per_file), samples_(files * per_file), batch_(batch),
        epochs_(epochs), deadline_(deadline), rng_(seed) {
    perm_.resize(files);
    for (uint64_t i = 0; i < files; i++) perm_[i] = i;
    std::shuffle(perm_.begin(), perm_.end(), rng_);
  }
  // The next batch; false once the epochs are done or the deadline passed.
  bool Next(std::vector<Span>* out) {
    std::lock_guard<std::mutex> lk(mu_);
    if (NowS() >= deadline_) return false;
    if (pos_ + batch_ > samples_) {
      if (epoch_ + 1 >= epochs_) return false;
      epoch_++;
      std::shuffle(perm_.begin(), perm_.end(), rng_);
      pos_ = 0;
    }
    out->clear();
    for (uint64_t s = pos_, end = pos_ + batch_; s < end;) {
      uint64_t file = perm_[s / per_file_], first = s % per_file_;
      uint64_t n = std::min(per_file_ - first, end - s);
      out->push_back(Span{file, first, n});
      s += n;
    }
    pos_ += batch_;
    return true;
  }
  // Epochs begun (a fraction: batches handed out / batches per epoch).
  double epochs_done() {
    std::lock_guard<std::mutex> lk(mu_);
    uint64_t per_epoch = samples_ / batch_;
    return static_cast<double>(epoch_) + static_cast<double>(pos_ / batch_) / per_epoch;
  }

 private:
  const uint64_t files_, per_file_, samples_;
  const uint32_t batch_;
  const uint64_t epochs_;
  const double deadline_;
  std::mutex mu_;
  std::mt19937_64 rng_;
  std::vector<uint64_t> perm_;
  uint64_t pos_ = 0, epoch_ = 0;
};

struct TrialConfig {
  const Workload* w;
  std::string dir;  // where the samples are: DIR/sample_NNNNNN
  uint64_t files;
  uint64_t per_file;  // samples per file
  uint64_t epochs;
  double seconds;  // no new batch after this long
  uint32_t prefetch;
  uint64_t seed;
  std::vector<int> server_pids;  // --cpu-pid: their CPU time is measured around each trial
};

// CPU seconds of all `pids` together; -1 when there are none or one cannot be read.
double ServersCpuS(const std::vector<int>& pids) {
  if (pids.empty()) return -1;
  double sum = 0;
  for (int pid : pids) {
    double s = ProcCpuSeconds(pid);
    if (s < 0) return -1;
    sum += s;
  }
  return sum;
}

struct AccResult {
  double start = 0, end = 0;  // first batch in hand, last compute done
  double first_batch_s = 0;   // trial start to the first batch in hand
  double compute_s = 0, stall_s = 0;
  uint64_t batches = 0;
  uint64_t reads = 0;          // batches its loader read
  std::vector<double> read_s;  // each ReadBatch's time but the first
  std::string err;
};

struct TrialResult {
  uint32_t accelerators = 0;
  double au_min = 0, au_mean = 0;
  double seconds = 0, mb_s = 0, samples_s = 0, stall_s_mean = 0, first_batch_s_max = 0;
  double epochs = 0;
  uint64_t batches = 0;
  double gb = 0;  // bytes read, 10^9
  // How long a loader waited for a batch's bytes (ReadBatch), p50 and p99 over every batch
  // but each loader's first.
  double read_p50_ms = 0, read_p99_ms = 0;
  // CPU seconds during the trial: this process (the client, all of its threads) and the
  // --cpu-pid server processes together (-1: none given, or one could not be read).
  double client_cpu_s = 0, server_cpu_s = -1;
  bool pass = false;
  std::string err;

  std::string Json(bool brief) const {
    bench::Json j;
    j.Int("accelerators", accelerators).Num("au_min", au_min, 4).Num("au_mean", au_mean, 4);
    j.Num("MB_s", mb_s, 1).Bool("pass", pass);
    j.Num("read_p50_ms", read_p50_ms, 2).Num("read_p99_ms", read_p99_ms, 2);
    j.Num("GB", gb, 3).Num("client_cpu_s", client_cpu_s, 2);
    if (server_cpu_s >= 0) j.Num("server_cpu_s", server_cpu_s, 2);
    else j.Null("server_cpu_s");
    if (!err.empty()) j.Str("error", err);
    if (brief) return j.str();
    j.Num("samples_s", samples_s, 1).Num("seconds", seconds, 2).Num("epochs", epochs, 2);
    j.Int("batches", static_cast<int64_t>(batches)).Num("stall_s_mean", stall_s_mean, 3);
    j.Num("first_batch_s_max", first_batch_s_max, 3);
    return j.str();
  }
};

// One accelerator's loader (prefetch > 0): reads batches into a queue of at most `prefetch`.
struct Pipe {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<uint64_t> ready;  // samples in each batch read and not yet computed on
  bool loader_done = false;
  std::string err;
};

std::vector<Extent> Extents(const std::string& dir, uint64_t sample_bytes,
                            const std::vector<Span>& spans) {
  std::vector<Extent> e;
  e.reserve(spans.size());
  for (const Span& s : spans) {
    e.push_back(Extent{SamplePath(dir, s.file), s.first * sample_bytes, s.count * sample_bytes});
  }
  return e;
}

TrialResult RunTrial(Backend* backend, const TrialConfig& tc, uint32_t n) {
  TrialResult tr;
  tr.accelerators = n;
  const Workload& w = *tc.w;
  std::vector<std::unique_ptr<Reader>> readers(n);
  for (auto& r : readers) {
    std::string err = backend->NewReader(&r);
    if (!err.empty()) {
      tr.err = err;
      return tr;
    }
  }
  double server_cpu0 = ServersCpuS(tc.server_pids), client_cpu0 = SelfCpuSeconds();
  double t0 = NowS();
  BatchSource src(tc.files, tc.per_file, w.batch, tc.epochs, t0 + tc.seconds, tc.seed);
  std::vector<AccResult> acc(n);
  std::vector<Pipe> pipes(n);
  std::vector<std::thread> threads;

  auto read_next = [&](uint32_t a, std::string* err) -> bool {
    std::vector<Span> spans;
    if (!src.Next(&spans)) return false;
    double r0 = NowS();
    *err = readers[a]->ReadBatch(Extents(tc.dir, w.sample_bytes, spans), w.sample_bytes * tc.per_file);
    // One loader per accelerator: acc[a].read_s has a single writer. Its first batch is left
    // out: every loader starts at once, so it measures the start (first_batch_s_max), not
    // the steady state.
    if (acc[a].reads++ > 0) acc[a].read_s.push_back(NowS() - r0);
    return err->empty();
  };

  for (uint32_t a = 0; a < n; a++) {
    if (tc.prefetch > 0) {
      threads.emplace_back([&, a] {
        Pipe& p = pipes[a];
        std::string err;
        while (true) {
          {
            std::unique_lock<std::mutex> lk(p.mu);
            p.cv.wait(lk, [&] { return p.ready.size() < tc.prefetch; });
          }
          if (!read_next(a, &err)) break;
          std::lock_guard<std::mutex> lk(p.mu);
          p.ready.push_back(w.batch);
          p.cv.notify_all();
        }
        std::lock_guard<std::mutex> lk(p.mu);
        p.err = err;
        p.loader_done = true;
        p.cv.notify_all();
      });
    }
    threads.emplace_back([&, a] {
      // Wake from the compute sleep on time: the default 50 us timer slack is 1.4% of
      // cosmoflow's 3.5 ms and would show up as lost utilisation.
      prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
      AccResult& r = acc[a];
      Pipe& p = pipes[a];
      while (true) {
        double t = NowS();
        if (tc.prefetch > 0) {
          std::unique_lock<std::mutex> lk(p.mu);
          p.cv.wait(lk, [&] { return !p.ready.empty() || p.loader_done; });
          if (p.ready.empty()) {
            r.err = p.err;
            break;
          }
          p.ready.pop_front();
          p.cv.notify_all();
        } else if (!read_next(a, &r.err)) {
          break;
        }
        double now = NowS();
        if (r.batches == 0) {
          r.start = now;
          r.first_batch_s = now - t0;
        } else {
          r.stall_s += now - t;
        }
        SleepUntil(now + w.compute_s);
        r.compute_s += w.compute_s;
        r.batches++;
        r.end = NowS();
      }
    });
  }
  for (auto& t : threads) t.join();
  tr.client_cpu_s = SelfCpuSeconds() - client_cpu0;
  if (server_cpu0 >= 0) {
    double s1 = ServersCpuS(tc.server_pids);
    tr.server_cpu_s = s1 >= 0 ? s1 - server_cpu0 : -1;
  }

  // AU per accelerator from its first batch on: the very first read cannot overlap any
  // compute, in a real job as here, and is reported apart (first_batch_s_max).
  double au_sum = 0, stall_sum = 0, end_max = t0;
  tr.au_min = 1;
  std::vector<double> reads;
  for (const AccResult& r : acc) {
    reads.insert(reads.end(), r.read_s.begin(), r.read_s.end());
    if (!r.err.empty() && tr.err.empty()) tr.err = r.err;
    double wall = r.end - r.start;
    double au = r.batches == 0 ? 0 : (wall > 0 ? std::min(1.0, r.compute_s / wall) : 1);
    tr.au_min = std::min(tr.au_min, au);
    au_sum += au;
    stall_sum += r.stall_s;
    tr.batches += r.batches;
    end_max = std::max(end_max, r.end);
    tr.first_batch_s_max = std::max(tr.first_batch_s_max, r.first_batch_s);
  }
  tr.au_mean = au_sum / n;
  tr.stall_s_mean = stall_sum / n;
  tr.seconds = end_max - t0;
  tr.read_p50_ms = Percentile(&reads, 50) * 1e3;
  tr.read_p99_ms = Percentile(&reads, 99) * 1e3;
  double samples = static_cast<double>(tr.batches) * w.batch;
  tr.gb = samples * static_cast<double>(w.sample_bytes) / 1e9;
  if (tr.seconds > 0) {
    tr.samples_s = samples / tr.seconds;
    tr.mb_s = samples * static_cast<double>(w.sample_bytes) / tr.seconds / 1e6;
  }
  tr.epochs = src.epochs_done();
  tr.pass = tr.err.empty() && tr.au_mean >= w.au_target;
  return tr;
}

// Writes the data set: `files` files of `per_file` samples of random bytes (a different 8-byte
// stamp at the start of every MiB of each, so no two files are equal), `threads` files at a
// time.
int Prepare(Backend* backend, const Workload& w, const std::string& dir, uint64_t files,
            uint64_t per_file, uint32_t threads, bool json) {
  std::string err = backend->MakeDirs(dir);
  if (!err.empty()) {
    std::fprintf(stderr, "loom bench: %s\n", err.c_str());
    return kExitError;
  }
  std::vector<char> base(w.sample_bytes * per_file);
  std::mt19937_64 rng(0x4c6f6f6d);
  for (size_t i = 0; i + 8 <= base.size(); i += 8) {
    uint64_t v = rng();
    std::memcpy(&base[i], &v, 8);
  }
  std::atomic<uint64_t> next{0};
  std::mutex mu;
  std::string first_err;
  double t0 = NowS();
  std::vector<std::thread> ts;
  for (uint32_t t = 0; t < threads; t++) {
    ts.emplace_back([&] {
      std::vector<char> buf = base;
      while (true) {
        uint64_t i = next.fetch_add(1);
        if (i >= files) break;
        for (size_t off = 0; off + 8 <= buf.size(); off += 1 << 20) {
          uint64_t stamp = (i << 32) ^ off ^ 0x53616d706c65ull;
          std::memcpy(&buf[off], &stamp, 8);
        }
        std::string e = backend->WriteFile(SamplePath(dir, i), buf.data(), buf.size());
        std::lock_guard<std::mutex> lk(mu);
        if (!e.empty()) {
          if (first_err.empty()) first_err = e;
          next = files;
        }
      }
    });
  }
  for (auto& t : ts) t.join();
  double secs = NowS() - t0;
  if (!first_err.empty()) {
    std::fprintf(stderr, "loom bench: %s\n", first_err.c_str());
    return kExitError;
  }
  double mb = static_cast<double>(files) * static_cast<double>(base.size()) / 1e6;
  if (json) {
    bench::Json j;
    j.Str("bench", "train-prepare").Str("workload", w.name).Str("dir", dir);
    j.Int("files", static_cast<int64_t>(files)).Int("sample_bytes", static_cast<int64_t>(w.sample_bytes));
    j.Int("samples_per_file", static_cast<int64_t>(per_file));
    j.Num("seconds", secs, 2).Num("MB_s", secs > 0 ? mb / secs : 0, 1);
    std::printf("%s\n", j.str().c_str());
  } else {
    std::printf("prepared %s: %llu files of %llu bytes (%llu samples each) in %s (%.0f MB in %.1f s, "
                "%.0f MB/s)\n",
                w.name, static_cast<unsigned long long>(files),
                static_cast<unsigned long long>(base.size()), static_cast<unsigned long long>(per_file),
                dir.c_str(), mb, secs, secs > 0 ? mb / secs : 0);
  }
  return kExitOk;
}

void PrintTrial(const Workload& w, const TrialResult& r) {
  std::fprintf(stderr,
               "  %s: %u accelerators: AU mean %.1f%% min %.1f%%, %.0f MB/s, %.0f samples/s, "
               "%.1f s%s%s\n",
               w.name, r.accelerators, r.au_mean * 100, r.au_min * 100, r.mb_s, r.samples_s,
               r.seconds, r.pass ? "" : " (below target)",
               r.err.empty() ? "" : (" ERROR: " + r.err).c_str());
}

}  // namespace

int RunTrain(const std::vector<std::string>& args) {
  Flags f;
  std::string err;
  if (!f.Parse(args,
               {"workload", "backend", "mds", "dir", "nfs-url", "accelerators", "epochs", "files",
                "seconds", "trial-seconds", "max-accelerators", "prefetch", "connections",
                "window", "chunk", "seed", "prepare-threads", "open-depth", "samples-per-file",
                "cpu-pid"},
               {"search", "json", "prepare", "keep-open"}, &err)) {
    std::fprintf(stderr, "loom bench train: %s (see loom bench --help)\n", err.c_str());
    return kExitUsage;
  }
  const Workload* w = FindWorkload(f.Get("workload"));
  if (!w) {
    std::fprintf(stderr, "loom bench train: --workload unet3d|resnet50|cosmoflow is required\n");
    return kExitUsage;
  }
  BackendConfig bc;
  bc.kind = f.Get("backend", "loom");
  bc.mds = f.Get("mds");
  bc.nfs_url = f.Get("nfs-url");
  bc.keep_open = f.Has("keep-open");
  uint64_t files = w->default_files, epochs = 0, accel = 1, max_accel = 256, prefetch = 1;
  uint64_t conns = 4, seed = 1, prep_threads = 0, open_depth = 16, per_file = w->samples_per_file;
  double seconds = 0, trial_seconds = 10;
  bool ok = ParseUint(f.Get("files", std::to_string(files)), &files) &&
            ParseUint(f.Get("accelerators", "1"), &accel) &&
            ParseUint(f.Get("max-accelerators", "256"), &max_accel) &&
            ParseUint(f.Get("prefetch", "1"), &prefetch) &&
            ParseUint(f.Get("connections", "4"), &conns) &&
            ParseUint(f.Get("seed", "1"), &seed) &&
            ParseUint(f.Get("prepare-threads", "0"), &prep_threads) &&
            ParseUint(f.Get("open-depth", "16"), &open_depth) &&
            ParseUint(f.Get("samples-per-file", std::to_string(per_file)), &per_file) &&
            ParseUint(f.Get("epochs", "0"), &epochs) &&
            ParseDouble(f.Get("seconds", "0"), &seconds) &&
            ParseDouble(f.Get("trial-seconds", "10"), &trial_seconds) &&
            ParseSize(f.Get("window", "64M"), &bc.window_bytes) &&
            ParseSize(f.Get("chunk", "1M"), &bc.chunk_bytes);
  if (!ok || accel == 0 || max_accel == 0 || conns == 0 || open_depth == 0 || per_file == 0 ||
      per_file > (1u << 20) || bc.chunk_bytes == 0 ||
      bc.window_bytes == 0 || seconds < 0 || trial_seconds <= 0) {
    std::fprintf(stderr, "loom bench train: bad number in the options\n");
    return kExitUsage;
  }
  bc.connections = static_cast<uint32_t>(conns);
  bc.open_depth = static_cast<size_t>(open_depth);
  if (files == 0 || files * per_file < w->batch) {
    std::fprintf(stderr,
                 "loom bench train: %s needs at least %u samples (one batch): --files %llu x "
                 "--samples-per-file %llu is fewer\n",
                 w->name, w->batch, static_cast<unsigned long long>(files),
                 static_cast<unsigned long long>(per_file));
    return kExitUsage;
  }
  std::string root = f.Get("dir", bc.kind == "local" ? "" : "/loom-bench");
  if (root.empty()) {
    std::fprintf(stderr, "loom bench train: the local backend needs --dir PATH\n");
    return kExitUsage;
  }
  std::string dir = root + (root.back() == '/' ? "" : "/") + w->name;
  bool json = f.Has("json");

  std::unique_ptr<Backend> backend;
  err = MakeBackend(bc, &backend);
  if (!err.empty()) {
    std::fprintf(stderr, "loom bench train: %s\n", err.c_str());
    return bc.kind == "loom" || bc.kind == "local" || bc.kind == "nfs" ? kExitError : kExitUsage;
  }
  if (f.Has("prepare")) {
    // libnfs calls for one context are serialised anyway; loom and local write in parallel.
    uint32_t th = prep_threads ? static_cast<uint32_t>(prep_threads) : (bc.kind == "nfs" ? 1 : 4);
    return Prepare(backend.get(), *w, dir, files, per_file, th, json);
  }

  TrialConfig tc;
  tc.w = w;
  tc.dir = dir;
  tc.files = files;
  tc.per_file = per_file;
  tc.prefetch = static_cast<uint32_t>(prefetch);
  tc.seed = seed;
  if (f.Has("cpu-pid")) {
    std::stringstream list(f.Get("cpu-pid"));
    for (std::string item; std::getline(list, item, ',');) {
      uint64_t pid = 0;
      if (!ParseUint(item, &pid) || pid == 0 || pid > INT32_MAX || ProcCpuSeconds(static_cast<int>(pid)) < 0) {
        std::fprintf(stderr, "loom bench train: --cpu-pid %s: not a running process\n", item.c_str());
        return kExitUsage;
      }
      tc.server_pids.push_back(static_cast<int>(pid));
    }
  }
  bool search = f.Has("search");
  if (search) {
    // Trials run for --trial-seconds (or --epochs, if given, whichever ends first).
    tc.epochs = epochs ? epochs : UINT64_MAX;
    tc.seconds = trial_seconds;
  } else {
    tc.epochs = epochs ? epochs : 3;
    tc.seconds = seconds > 0 ? seconds : 600;
  }

  std::vector<TrialResult> trials;
  TrialResult best;
  auto trial = [&](uint64_t n) {
    TrialResult r = RunTrial(backend.get(), tc, static_cast<uint32_t>(n));
    PrintTrial(*w, r);
    trials.push_back(r);
    return r;
  };
  if (!search) {
    best = trial(accel);
  } else {
    // Double until a trial misses the target, then bisect between the last pass and the
    // first miss: the largest N whose AU holds.
    uint64_t lo = 0, hi = 0;
    for (uint64_t n = 1; n <= max_accel; n *= 2) {
      TrialResult r = trial(n);
      if (!r.err.empty()) break;
      if (!r.pass) {
        hi = n;
        if (lo == 0) best = r;
        break;
      }
      lo = n;
      best = r;
    }
    while (hi > 0 && lo > 0 && hi - lo > 1) {
      uint64_t mid = lo + (hi - lo) / 2;
      TrialResult r = trial(mid);
      if (!r.err.empty()) break;
      if (r.pass) {
        lo = mid;
        best = r;
      } else {
        hi = mid;
      }
    }
    if (lo == 0 && !trials.empty()) best = trials.front();  // not even one accelerator
  }
  // A trial that failed ends the run; what came before is still printed, marked with the
  // error (a search cut short is no answer: "error" is set, and the exit status is 1).
  std::string run_err;
  for (const TrialResult& r : trials) {
    if (!r.err.empty() && run_err.empty()) run_err = r.err;
  }
  if (!run_err.empty()) std::fprintf(stderr, "loom bench train: %s\n", run_err.c_str());
  uint64_t found = search ? (best.pass ? best.accelerators : 0) : best.accelerators;

  std::string trial_list = "[";
  for (size_t i = 0; i < trials.size(); i++) trial_list += (i ? "," : "") + trials[i].Json(true);
  trial_list += "]";
  bench::Json j;
  j.Str("bench", "train").Str("workload", w->name).Str("backend", bc.kind);
  j.Int("accelerators", static_cast<int64_t>(found)).Bool("search", search);
  j.Num("au_target", w->au_target, 2).Num("au_min", best.au_min, 4).Num("au_mean", best.au_mean, 4);
  j.Bool("pass", best.pass);
  j.Num("throughput_MB_s", best.mb_s, 1).Num("samples_s", best.samples_s, 1);
  j.Num("demand_MB_s_per_accelerator", DemandMBps(*w), 1);
  j.Raw("best_trial", best.Json(false));
  j.Int("sample_bytes", static_cast<int64_t>(w->sample_bytes)).Int("batch", w->batch);
  j.Num("compute_s", w->compute_s, 4).Int("files", static_cast<int64_t>(files));
  j.Int("samples_per_file", static_cast<int64_t>(per_file));
  j.Int("prefetch", static_cast<int64_t>(prefetch)).Bool("keep_open", bc.keep_open);
  j.Int("open_depth", static_cast<int64_t>(open_depth));
  j.Int("window_bytes", static_cast<int64_t>(bc.window_bytes));
  if (search) j.Num("trial_seconds", trial_seconds, 1);
  j.Str("dir", dir);
  j.Raw("trials", trial_list);
  uint64_t samples_total = 0;
  double gb = 0, client_cpu = 0, server_cpu = 0;
  for (const TrialResult& r : trials) {
    samples_total += r.batches * w->batch;
    gb += r.gb;
    client_cpu += r.client_cpu_s;
    server_cpu = server_cpu < 0 || r.server_cpu_s < 0 ? -1 : server_cpu + r.server_cpu_s;
  }
  j.Int("samples_total", static_cast<int64_t>(samples_total));
  // CPU per GB moved over every trial of the run: the client (this process: the backend's
  // client library, the loaders, the accelerator threads) and the --cpu-pid servers.
  {
    bench::Json c;
    c.Num("GB", gb, 3).Num("client_s", client_cpu, 2);
    c.Num("client_s_per_GB", gb > 0 ? client_cpu / gb : 0, 4);
    if (!tc.server_pids.empty() && server_cpu >= 0) {
      c.Num("server_s", server_cpu, 2).Num("server_s_per_GB", gb > 0 ? server_cpu / gb : 0, 4);
      c.Num("total_s_per_GB", gb > 0 ? (client_cpu + server_cpu) / gb : 0, 4);
    } else {
      c.Null("server_s").Null("server_s_per_GB").Null("total_s_per_GB");
    }
    j.Raw("cpu", c.str());
  }
  j.Raw("backend_info", backend->DescribeJson(SamplePath(dir, 0)));
  if (run_err.empty()) j.Null("error");
  else j.Str("error", run_err);
  if (json) {
    std::printf("%s\n", j.str().c_str());
  } else {
    std::printf("%s on %s: %llu accelerators%s, AU mean %.1f%% (min %.1f%%, target %.0f%%), "
                "%.0f MB/s, %.0f samples/s; one accelerator needs %.0f MB/s\n",
                w->name, bc.kind.c_str(), static_cast<unsigned long long>(found),
                search ? " (largest passing)" : "", best.au_mean * 100, best.au_min * 100,
                w->au_target * 100, best.mb_s, best.samples_s, DemandMBps(*w));
  }
  return run_err.empty() ? kExitOk : kExitError;
}

}  // namespace loom::bench
