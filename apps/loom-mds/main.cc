// loom-mds: the Loom metadata server. NFSv4.1/4.2 over a RocksDB namespace; file contents on
// loom-ds data servers (proxied I/O until Flex Files layouts).
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "admin/commands.h"
#include "admin/mds_config.h"
#include "admin_commands.h"
#include "common/buffer.h"
#include "common/file_util.h"
#include "common/log.h"
#include "mds/data_servers.h"
#include "mds/fs_identity.h"
#include "mds/gc_worker.h"
#include "mds/scrub.h"
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
               "  --ds HOST:PORT[@ADVHOST:ADVPORT]\n"
               "                      a loom-ds data server (NFSv3 + MOUNT on that port); repeat.\n"
               "                      After @: the address clients are told (GETDEVICEINFO)\n"
               "  --advertise HOST    the host clients are told for data servers without @\n"
               "  --pnfs on|off       hand out Flex Files layouts (default on); off: all I/O\n"
               "                      goes through loom-mds\n"
               "  --mirrors N         copies of a new file's data, 1-3 (default 1)\n"
               "  --stripes N         data servers a new file is striped over (default 1)\n"
               "  --stripe-unit BYTES stripe unit (default 1048576)\n"
               "  --listen HOST:PORT  bind address (default 0.0.0.0:2049)\n"
               "  --lease SECONDS     NFSv4 lease time (default 90)\n"
               "  --grace SECONDS     reclaim period after a restart (default = lease)\n"
               "  --loops N           event-loop threads (default 2)\n"
               "  --no-run-to-completion\n"
               "                      every COMPOUND goes to a worker thread (default: those\n"
               "                      answered from memory run on the event loop)\n"
               "  --workers N         worker threads (default 8)\n"
               "  --poll-us N         µs an event-loop thread polls for the next request before\n"
               "                      it sleeps, adapted to the traffic (default 50; 0: never)\n"
               "  --read-cache-mib N  memory for committed inodes and directory entries that\n"
               "                      reads are answered from (default 256; 0: off)\n"
               "  --block-cache-mib N RocksDB's cache of table blocks, index and filters: a\n"
               "                      read on the event loop that it misses goes to a worker\n"
               "                      (default 64)\n"
               "  --loop-lock-wait-us N  µs the event loop waits for a row lock another\n"
               "                      transaction holds before it hands the request to a\n"
               "                      worker (default 200; 0: at once)\n"
               "  --listing-cache-mib N  memory for directory listings that READDIR pages\n"
               "                      through (default 128, ~1.5 million entries; 0: off)\n"
               "  --commit-delay-us N group commit: while changes come concurrently, the WAL\n"
               "                      sync waits N µs for more to share it (default -1: half\n"
               "                      the recent sync time, at most 1000; 0: never)\n"
               "  --syncer-poll-us N  µs the WAL syncer polls for new changes before it sleeps\n"
               "                      (default 0: it sleeps at once)\n"
               "  --inline-sync-max-us N  one change at a time: the event loop syncs the WAL\n"
               "                      itself instead of waking the syncer, while recent syncs\n"
               "                      took at most N µs (default 1000; 0: never)\n"
               "  --wal-prewrite-kib N  write the WAL's files ahead with zeros, N KiB at a time,\n"
               "                      so a commit's sync overwrites blocks already on disk\n"
               "                      (default 1024; 0: plain appends)\n"
               "  --wal-direct 0|1    1 (default): the WAL's records since the last sync are\n"
               "                      written by the sync, with one direct (O_DIRECT) write;\n"
               "                      0: each commit writes its record to the page cache\n"
               "  --stats-file FILE   per-operation counters as JSON, every second\n"
               "  --verbose           debug logging\n"
               "  --recover           the store is empty or lost: adopt the one filesystem on the\n"
               "                      data servers (its id and loom/<id> tree), link its data files\n"
               "                      into /lost+found; nothing is truncated or removed\n"
               "  --recover-id ID     --recover, of the filesystem with this id (loom/<ID>)\n"
               "  --force-new         the store is empty: make a new filesystem (new id) beside the\n"
               "                      trees already on the data servers, which stay untouched\n"
               "  --scrub             compare the store with the data servers, print findings and a\n"
               "                      summary, exit 0 if consistent, 1 if not (see docs/mds.md)\n"
               "  --repair            with --scrub: repair what can be repaired\n"
               "  --new-secret        start although the handle secret of an existing namespace\n"
               "                      is missing (every file handle clients hold becomes stale)\n");
  std::fputs("  --config FILE       settings from FILE (key = value; see docs/mds.md); flags\n"
             "                      after it override them\n", stderr);
  std::fputs(loom::rpc::kServerFlagsUsage, stderr);
}


}  // namespace

int main(int argc, char** argv) {
  using namespace loom;
  nfs4::Mds::Options mo;
  rpc::ServerOptions ro;
  ro.listen = "0.0.0.0:2049";
  ro.exports = rpc::ExportRules::Default();  // without --exports: *(rw,root_squash)
  // NFSv4.1 bounds a client's calls by its session's slot table (64 slots, sessions.h); the
  // connection must admit all of them, or a client using every slot has calls left unread
  // behind ones that wait on it (a recall answer, a lock release): twice, for a session's fore
  // channel plus another session on the same connection.
  ro.conn.max_inflight = 128;
  // Metadata replies are small: those answered while handling one read leave together.
  ro.conn.batch_replies = true;
  std::vector<mds::DataServerConfig> servers;
  std::string stats_file;
  int grace = -1;
  mds::StartMode start_mode = mds::StartMode::kNormal;
  bool scrub = false, repair = false, new_secret = false;
  long read_cache_mib = -1;  // -1: the store's default
  long listing_cache_mib = -1;
  long block_cache_mib = -1;
  long loop_lock_wait_us = -1;
  int commit_delay_us = -1;  // -1: adaptive (the store's default)
  int syncer_poll_us = 0;
  long wal_prewrite_kib = -1;  // -1: the store's default
  int wal_direct = -1;         // -1: the store's default
  long inline_sync_max_us = -1;  // -1: the store's default
  std::string recover_id;
  std::string advertise;  // host clients are told for data servers without their own
  // --config first: the flags override what the file says, wherever they stand.
  for (int i = 1; i + 1 < argc; i++) {
    if (std::string(argv[i]) != "--config") continue;
      // The file's settings; flags after --config override them.
      auto cfg = admin::ParseMdsConfig(argv[i + 1]);
      if (!cfg.ok()) {
        std::fprintf(stderr, "loom-mds: %s\n", cfg.status().ToString().c_str());
        return 2;
      }
      if (cfg->listen) ro.listen = *cfg->listen;
      if (cfg->state_dir) mo.state_dir = *cfg->state_dir;
      if (cfg->lease_seconds) mo.lease_seconds = *cfg->lease_seconds;
      if (cfg->grace_seconds) grace = static_cast<int>(*cfg->grace_seconds);
      if (cfg->advertise) advertise = *cfg->advertise;
      if (cfg->pnfs) mo.pnfs = *cfg->pnfs;
      if (cfg->mirrors) mo.mirrors = *cfg->mirrors;
      if (cfg->stripes) mo.stripes = *cfg->stripes;
      if (cfg->stripe_unit) mo.stripe_unit = *cfg->stripe_unit;
      if (cfg->stats_file) stats_file = *cfg->stats_file;
      if (cfg->exports) ro.exports_file = *cfg->exports;
      for (const auto& d : cfg->data_servers) {
        mds::DataServerConfig c;
        c.id = static_cast<uint32_t>(servers.size() + 1);
        auto resolved = admin::ResolveHostPort(d.address);
        c.address = resolved.ok() && !resolved->empty() ? resolved->front() : d.address;
        c.advertised_address = d.advertised;
        for (const auto& [k, v] : d.labels) c.labels.push_back(k + "=" + v);
        servers.push_back(c);
      }
  }
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "loom-mds: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--config") {
      next();  // applied before the other flags (below), which override it
    } else if (a == "--state-dir") mo.state_dir = next();
    else if (a == "--ds") {
      mds::DataServerConfig c;
      c.id = static_cast<uint32_t>(servers.size() + 1);
      c.address = next();
      size_t at = c.address.find('@');
      if (at != std::string::npos) {
        c.advertised_address = c.address.substr(at + 1);
        c.address.resize(at);
      }
      servers.push_back(c);
    } else if (a == "--advertise") advertise = next();
    else if (a == "--pnfs") {
      std::string v = next();
      if (v != "on" && v != "off") {
        std::fprintf(stderr, "loom-mds: --pnfs takes on or off\n");
        return 2;
      }
      mo.pnfs = v == "on";
    } else if (a == "--no-run-to-completion") {
      mo.run_to_completion = false;
    } else if (a == "--mirrors") mo.mirrors = static_cast<uint32_t>(std::atoi(next().c_str()));
    else if (a == "--stripes") mo.stripes = static_cast<uint32_t>(std::atoi(next().c_str()));
    else if (a == "--stripe-unit") mo.stripe_unit = std::strtoull(next().c_str(), nullptr, 0); else if (a == "--listen") ro.listen = next();
    else if (a == "--lease") mo.lease_seconds = static_cast<uint32_t>(std::atoi(next().c_str()));
    else if (a == "--grace") grace = std::atoi(next().c_str());
    else if (a == "--loops") ro.loops = std::atoi(next().c_str());
    else if (a == "--workers") ro.workers = std::atoi(next().c_str());
    else if (a == "--read-cache-mib") read_cache_mib = std::atol(next().c_str());
    else if (a == "--listing-cache-mib") listing_cache_mib = std::atol(next().c_str());
    else if (a == "--block-cache-mib") block_cache_mib = std::atol(next().c_str());
    else if (a == "--loop-lock-wait-us") loop_lock_wait_us = std::atol(next().c_str());
    else if (a == "--commit-delay-us") commit_delay_us = std::atoi(next().c_str());
    else if (a == "--syncer-poll-us") syncer_poll_us = std::atoi(next().c_str());
    else if (a == "--inline-sync-max-us") inline_sync_max_us = std::atol(next().c_str());
    else if (a == "--wal-prewrite-kib") wal_prewrite_kib = std::atol(next().c_str());
    else if (a == "--wal-direct") wal_direct = std::atoi(next().c_str()) != 0 ? 1 : 0;
    else if (a == "--poll-us") ro.poll_us = std::atoi(next().c_str());
    else if (a == "--stats-file") stats_file = next();
    else if (a == "--verbose") SetLogLevel(LogLevel::kDebug);
    else if (rpc::ParseServerFlag(a, next, &ro)) continue;
    else if (a == "--recover") start_mode = mds::StartMode::kRecover;
    else if (a == "--recover-id") {
      start_mode = mds::StartMode::kRecover;
      recover_id = next();
    }
    else if (a == "--force-new") start_mode = mds::StartMode::kForceNew;
    else if (a == "--scrub") scrub = true;
    else if (a == "--new-secret") new_secret = true;
    else if (a == "--repair") repair = true;
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
  if (mo.mirrors < 1 || mo.mirrors > 3 || mo.stripes < 1 || mo.stripes > 64 ||
      mo.stripe_unit < 4096 || mo.stripe_unit % 4096 != 0) {
    std::fprintf(stderr, "loom-mds: --mirrors is 1-3, --stripes 1-64, --stripe-unit a multiple of 4096\n");
    return 2;
  }
  if (!advertise.empty()) {
    for (auto& c : servers)
      if (c.advertised_address.empty())
        c.advertised_address = advertise + c.address.substr(c.address.rfind(':'));
  }
  mo.grace_seconds = grace < 0 ? mo.lease_seconds : static_cast<uint32_t>(grace);
  ro.conn.max_record = mo.max_io + 64 * 1024;
  ::mkdir(mo.state_dir.c_str(), 0700);
  meta::RocksKvStore::Options ko;
  ko.path = mo.state_dir + "/meta";
  if (read_cache_mib >= 0) ko.read_cache_bytes = static_cast<size_t>(read_cache_mib) << 20;
  if (block_cache_mib > 0) ko.block_cache_bytes = static_cast<size_t>(block_cache_mib) << 20;
  if (loop_lock_wait_us >= 0) ko.no_block_lock_wait_us = static_cast<int>(loop_lock_wait_us);
  if (listing_cache_mib >= 0) {
    ko.listing_cache_bytes = static_cast<size_t>(listing_cache_mib) << 20;
  }
  ko.commit_delay_us = commit_delay_us < -1 ? -1 : commit_delay_us;
  ko.syncer_poll_us = syncer_poll_us < 0 ? 0 : syncer_poll_us;
  if (inline_sync_max_us >= 0) {
    ko.inline_sync_max_us = static_cast<int>(std::min(inline_sync_max_us, 1'000'000L));
  }
  if (wal_prewrite_kib >= 0) ko.wal_prewrite_bytes = static_cast<uint64_t>(wal_prewrite_kib) << 10;
  if (wal_direct >= 0) ko.wal_direct = wal_direct == 1;
  if (repair && !scrub) {
    std::fprintf(stderr, "loom-mds: --repair goes with --scrub\n");
    return 2;
  }
  if (scrub && start_mode != mds::StartMode::kNormal) {
    std::fprintf(stderr, "loom-mds: --scrub cannot be combined with --recover or --force-new\n");
    return 2;
  }
  auto store = meta::RocksKvStore::Open(ko);
  if (!store.ok()) {
    std::fprintf(stderr,
                 "loom-mds: refusing to start: the metadata store %s cannot be opened (%s). It may "
                 "be damaged: restore it from a backup, or move it aside and start with "
                 "--recover to adopt the files on the data servers\n",
                 ko.path.c_str(), store.status().ToString().c_str());
    return 1;
  }
  mds::DataServerPool::Options po;
  po.health_interval_ms = 5000;
  // Which filesystem this is and which data server is which, before anything is served or
  // written (issue 10: never destroy data because state was lost). See mds/fs_identity.h.
  auto plan = mds::PlanStart(**store, mo.fsid, servers, start_mode, po, recover_id);
  if (!plan.ok()) {
    std::fprintf(stderr, "loom-mds: refusing to start: %s\n", plan.status().ToString().c_str());
    return 1;
  }
  servers = plan->servers;
  auto pool = mds::DataServerPool::Create(servers, po);
  if (!pool.ok()) {
    std::fprintf(stderr, "loom-mds: %s\n", pool.status().ToString().c_str());
    return 1;
  }
  (*pool)->SetTree(mo.fsid, plan->identity.tree, mds::UuidHex(plan->identity.uuid));
  mds::StoreJournal journal(store->get());
  (*pool)->SetCreateJournal(&journal);
  if (scrub) {
    auto rep = mds::Scrub(**store, mo.fsid, **pool, repair, stdout);
    if (!rep.ok()) {
      std::fprintf(stderr, "loom-mds: scrub: %s\n", rep.status().ToString().c_str());
      return 2;
    }
    return rep->unrepaired() == 0 ? 0 : 1;
  }
  // A new handle secret over an existing namespace turns every handle clients hold STALE
  // (issue 10: lost state is refused, not silently replaced).
  const std::string secret = mo.state_dir + "/fh-secret";
  struct stat sst;
  if (plan->had_namespace && !new_secret && ::stat(secret.c_str(), &sst) != 0) {
    std::fprintf(stderr,
                 "loom-mds: refusing to start: the handle secret %s is missing, but the store "
                 "holds filesystem %s; a new secret would make every file handle its clients "
                 "hold stale. Restore the file, or start with --new-secret\n",
                 secret.c_str(), mds::UuidHex(plan->identity.uuid).c_str());
    return 1;
  }
  LOG_INFO("loom-mds: %s", plan->summary.c_str());
  nfs4::Mds mds(mo, store->get(), pool->get());
  Status st = mds.Init();
  if (!st.ok()) {
    std::fprintf(stderr, "loom-mds: %s\n", st.ToString().c_str());
    return 1;
  }
  if (plan->adopt_tree) {
    auto n = mds::AdoptTree(**store, mds.ns(), **pool);
    if (!n.ok()) {
      std::fprintf(stderr, "loom-mds: --recover: %s (run it again once fixed)\n",
                   n.status().ToString().c_str());
      return 1;
    }
    LOG_INFO("loom-mds: --recover linked %zu data files into /%s", *n, mds::kLostFound);
  }
  // Data files a previous run created but never recorded in a layout (it died in between).
  auto resolved = mds::ResolveIntents(**store, mo.fsid, **pool);
  if (!resolved.ok()) {
    std::fprintf(stderr, "loom-mds: %s\n", resolved.status().ToString().c_str());
    return 1;
  }
  if (*resolved) LOG_INFO("loom-mds: removed %zu data files of interrupted creations", *resolved);
  // The tree and its owner marker on every data server now, so that a store-less loom-mds
  // pointed at them later finds this filesystem even before its first write.
  st = (*pool)->PrepareFilesystem(mo.fsid);
  if (!st.ok()) LOG_WARN("loom-mds: preparing data servers: %s", st.ToString().c_str());
  mds::GcWorker gc(store->get(), {&mds.ns()}, pool->get(), mds::GcWorker::Options{});
  gc.Start();
  rpc::RpcServer server(ro);
  mds.UseStats(&server.stats());
  (*store)->UseStats(&server.stats());
  server.Register(mds.Program());
  // `loom admin` (src/admin): root from an address whose export rule keeps root.
  admin::AdminCommands admin_cmds;
  RegisterMdsAdminCommands(admin_cmds, mds, **pool, **store);
  server.Register(admin::AdminProgram(admin_cmds));
  mds.StartBackground();
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
      Buffer::TrimIdle();
      if (!stats_file.empty()) WriteFileAtomic(stats_file, server.stats().ToJson() + "\n");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  mds.StopBackground();
  server.Stop();
  gc.Stop();
  LOG_INFO("loom-mds stopped");
  return 0;
}
