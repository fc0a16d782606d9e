// loom-mds: the Loom metadata server. NFSv4.1/4.2 over a RocksDB namespace; file contents on
// loom-ds data servers (proxied I/O until Flex Files layouts).
#include <signal.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "common/file_util.h"
#include "common/log.h"
#include "mds/data_servers.h"
#include "mds/gc_worker.h"
#include "meta/rocks_kv.h"
#include "nfs4/mds.h"
#include "rpc/server.h"

namespace {

std::atomic<int> g_signal{0};
void OnSignal(int s) { g_signal.store(s); }

void Usage() {
  std::fprintf(stderr,
               "usage: loom-mds --state-dir DIR --ds HOST:PORT [--ds HOST:PORT ...] [options]\n"
               "  --state-dir DIR     metadata store (RocksDB) and handle secret (required)\n"
               "  --ds HOST:PORT      a loom-ds data server (NFSv3 + MOUNT on that port); repeat\n"
               "  --listen HOST:PORT  bind address (default 0.0.0.0:2049)\n"
               "  --lease SECONDS     NFSv4 lease time (default 90)\n"
               "  --grace SECONDS     reclaim period after a restart (default = lease)\n"
               "  --loops N           event-loop threads (default 2)\n"
               "  --workers N         worker threads (default 8)\n"
               "  --stats-file FILE   per-operation counters as JSON, every second\n"
               "  --verbose           debug logging\n");
}


}  // namespace

int main(int argc, char** argv) {
  using namespace loom;
  nfs4::Mds::Options mo;
  rpc::ServerOptions ro;
  ro.listen = "0.0.0.0:2049";
  std::vector<mds::DataServerConfig> servers;
  std::string stats_file;
  int grace = -1;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "loom-mds: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--state-dir") mo.state_dir = next();
    else if (a == "--ds") {
      mds::DataServerConfig c;
      c.id = static_cast<uint32_t>(servers.size() + 1);
      c.address = next();
      servers.push_back(c);
    } else if (a == "--listen") ro.listen = next();
    else if (a == "--lease") mo.lease_seconds = static_cast<uint32_t>(std::atoi(next().c_str()));
    else if (a == "--grace") grace = std::atoi(next().c_str());
    else if (a == "--loops") ro.loops = std::atoi(next().c_str());
    else if (a == "--workers") ro.workers = std::atoi(next().c_str());
    else if (a == "--stats-file") stats_file = next();
    else if (a == "--verbose") SetLogLevel(LogLevel::kDebug);
    else if (a == "--help" || a == "-h") {
      Usage();
      return 0;
    } else {
      std::fprintf(stderr, "loom-mds: unknown option %s\n", a.c_str());
      Usage();
      return 2;
    }
  }
  if (mo.state_dir.empty() || servers.empty() || mo.lease_seconds < 1) {
    Usage();
    return 2;
  }
  mo.grace_seconds = grace < 0 ? mo.lease_seconds : static_cast<uint32_t>(grace);
  ro.conn.max_record = mo.max_io + 64 * 1024;
  ::mkdir(mo.state_dir.c_str(), 0700);
  meta::RocksKvStore::Options ko;
  ko.path = mo.state_dir + "/meta";
  auto store = meta::RocksKvStore::Open(ko);
  if (!store.ok()) {
    std::fprintf(stderr, "loom-mds: %s\n", store.status().ToString().c_str());
    return 1;
  }
  mds::DataServerPool::Options po;
  po.health_interval_ms = 5000;
  auto pool = mds::DataServerPool::Create(servers, po);
  if (!pool.ok()) {
    std::fprintf(stderr, "loom-mds: %s\n", pool.status().ToString().c_str());
    return 1;
  }
  nfs4::Mds mds(mo, store->get(), pool->get());
  Status st = mds.Init();
  if (!st.ok()) {
    std::fprintf(stderr, "loom-mds: %s\n", st.ToString().c_str());
    return 1;
  }
  mds::GcWorker gc(store->get(), {&mds.ns()}, pool->get(), mds::GcWorker::Options{});
  gc.Start();
  rpc::RpcServer server(ro);
  server.Register(mds.Program());
  st = server.Start();
  if (!st.ok()) {
    std::fprintf(stderr, "loom-mds: %s\n", st.ToString().c_str());
    return 1;
  }
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGUSR1, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  std::printf("loom-mds ready: NFSv4.1/4.2 at %s port %u, %zu data servers, state %s%s\n",
              ro.listen.substr(0, ro.listen.rfind(':')).c_str(), server.port(), servers.size(),
              mo.state_dir.c_str(), mds.InGrace() ? " (in grace)" : "");
  std::fflush(stdout);
  int tick = 0;
  for (;;) {
    int s = g_signal.exchange(0);
    if (s == SIGINT || s == SIGTERM) break;
    if (s == SIGUSR1) LOG_INFO("stats %s", server.stats().ToJson().c_str());
    if (++tick % 10 == 0) {
      mds.Tick();
      if (!stats_file.empty()) WriteFileAtomic(stats_file, server.stats().ToJson() + "\n");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  server.Stop();
  gc.Stop();
  LOG_INFO("loom-mds stopped");
  return 0;
}
