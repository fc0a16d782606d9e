// loom-ds: the Loom data server. NFSv3 + MOUNT v3 over one local directory, on one TCP port.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "common/buffer.h"
#include "common/file_util.h"
#include "common/log.h"
#include "nfs3/local_fs.h"
#include "nfs3/nfs3_service.h"
#include "rpc/server.h"

namespace {

std::atomic<int> g_signal{0};
void OnSignal(int s) { g_signal.store(s); }

void Usage() {
  std::fprintf(stderr,
               "usage: loom-ds --root DIR [options]\n"
               "  --root DIR          directory to export (required)\n"
               "  --listen HOST:PORT  bind address (default 0.0.0.0:2049); NFS and MOUNT share it\n"
               "  --advertise HOST    address clients should use (reported in the ready line)\n"
               "  --export PATH       MOUNT path clients ask for (default /)\n"
               "  --state-dir DIR     where the handle secret is kept (default\n"
               "                      /var/lib/loom-ds/<hash of ROOT's real path>; a secret in\n"
               "                      the old location ROOT/.loom-ds is still used when found)\n"
               "  --new-secret        start with a new handle secret even though ROOT holds\n"
               "                      files (their old handles become STALE); refused otherwise\n"
               "  --loops N           event-loop threads (default 2)\n"
               "  --workers N         I/O worker threads (default 8)\n"
               "  --poll-us N         µs an event-loop thread polls for the next request before\n"
               "                      it sleeps, adapted to the traffic (default 50; 0: never)\n"
               "  --max-io BYTES      largest READ/WRITE (default 1048576)\n"
               "  --stats-file FILE   write per-operation counters as JSON every second\n"
               "  --sendfile on|off|auto  large READ payloads with sendfile(2) from the page\n"
               "                      cache instead of a copy; auto (the default): when the READ\n"
               "                      is the only call in flight on its connection\n"
               "  --read-map on|off   other large READ payloads sent from a read-only mapping of\n"
               "                      the file (one copy, into the socket) rather than read\n"
               "                      into a buffer first (default on)\n"
               "  --no-run-to-completion  every READ/GETATTR goes to a worker thread (default:\n"
               "                      answered on the loop thread when the handle is open and\n"
               "                      the bytes are in the page cache)\n"
               "  --verbose           debug logging\n"
               "  --mds ADDR[/PREFIX] a metadata server (or its network): rw, and its root stays\n"
               "                      root; everyone else's root is squashed; repeat\n");
  std::fputs(loom::rpc::kServerFlagsUsage, stderr);
}


}  // namespace

int main(int argc, char** argv) {
  using namespace loom;
  nfs3::LocalFs::Options fso;
  nfs3::Nfs3Service::Options so;
  rpc::ServerOptions ro;
  ro.listen = "0.0.0.0:2049";
  ro.exports = rpc::ExportRules::Default();  // without --exports: *(rw,root_squash)
  std::string advertise, stats_file;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "loom-ds: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--root") fso.root = next();
    else if (a == "--listen") ro.listen = next();
    else if (a == "--advertise") advertise = next();
    else if (a == "--export") so.export_path = next();
    else if (a == "--state-dir") fso.state_dir = next();
    else if (a == "--new-secret") fso.new_secret = true;
    else if (a == "--loops") ro.loops = std::atoi(next().c_str());
    else if (a == "--workers") ro.workers = std::atoi(next().c_str());
    else if (a == "--poll-us") ro.poll_us = std::atoi(next().c_str());
    else if (a == "--max-io") so.max_io = static_cast<uint32_t>(std::strtoul(next().c_str(), nullptr, 10));
    else if (a == "--stats-file") stats_file = next();
    else if (a == "--read-map") {
      std::string v = next();
      if (v == "on" || v == "off") so.read_map = v == "on";
      else {
        std::fprintf(stderr, "loom-ds: --read-map takes on or off, not '%s'\n", v.c_str());
        return 2;
      }
    } else if (a == "--sendfile") {
      const std::string v = next();
      if (v == "on") so.read_sendfile = loom::nfs3::Nfs3Service::Options::Sendfile::kOn;
      else if (v == "off") so.read_sendfile = loom::nfs3::Nfs3Service::Options::Sendfile::kOff;
      else if (v == "auto") so.read_sendfile = loom::nfs3::Nfs3Service::Options::Sendfile::kWhenAlone;
      else {
        std::fprintf(stderr, "loom-ds: --sendfile takes on, off or auto, not '%s'\n", v.c_str());
        return 2;
      }
    }
    else if (a == "--no-run-to-completion") so.run_to_completion = false;
    else if (a == "--verbose") SetLogLevel(LogLevel::kDebug);
    else if (a == "--mds") ro.trusted.push_back(next());
    else if (rpc::ParseServerFlag(a, next, &ro)) continue;
    else if (a == "--help" || a == "-h") {
      Usage();
      return 0;
    } else {
      std::fprintf(stderr, "loom-ds: unknown option %s\n", a.c_str());
      Usage();
      return 2;
    }
  }
  if (fso.root.empty()) {
    Usage();
    return 2;
  }
  if (so.max_io < 4096 || so.max_io > (4u << 20)) {
    std::fprintf(stderr, "loom-ds: --max-io must be within 4096..4194304\n");
    return 2;
  }
  ro.conn.max_record = so.max_io + 64 * 1024;  // a full WRITE plus its headers
  if (fso.state_dir.empty()) fso.state_dir = nfs3::LocalFs::DefaultStateDir(fso.root);
  auto fs = nfs3::LocalFs::Open(fso);
  if (!fs.ok()) {
    std::fprintf(stderr, "loom-ds: %s\n", fs.status().ToString().c_str());
    return 1;
  }
  LOG_INFO("loom-ds: handle secret in %s", (*fs)->state_dir().c_str());
  nfs3::Nfs3Service svc(fs->get(), so);
  rpc::RpcServer server(ro);
  server.Register(svc.NfsProgram());
  server.Register(svc.MountProgram());
  Status st = server.Start();
  if (!st.ok()) {
    std::fprintf(stderr, "loom-ds: %s\n", st.ToString().c_str());
    return 1;
  }
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGUSR1, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  std::string host = advertise.empty() ? ro.listen.substr(0, ro.listen.rfind(':')) : advertise;
  std::printf("loom-ds ready: export %s of %s at %s port %u (nfs3+mount3)\n",
              so.export_path.c_str(), fso.root.c_str(), host.c_str(), server.port());
  std::fflush(stdout);
  int tick = 0;
  for (;;) {
    int s = g_signal.exchange(0);
    if (s == SIGINT || s == SIGTERM) break;
    if (s == SIGUSR1) LOG_INFO("stats %s", server.stats().ToJson().c_str());
    if (++tick % 10 == 0) {
      Buffer::TrimIdle();  // READ/WRITE buffers left over from a burst go back after a second idle
      if (!stats_file.empty()) WriteFileAtomic(stats_file, server.stats().ToJson() + "\n");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  server.Stop();
  if (!stats_file.empty()) WriteFileAtomic(stats_file, server.stats().ToJson() + "\n");
  LOG_INFO("loom-ds stopped");
  return 0;
}
