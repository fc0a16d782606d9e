#include "bench.h"

#include <cstdio>

#include "bench_internal.h"
#include "bench_util.h"

namespace {

const char kUsage[] =
    "usage: loom bench train --workload unet3d|resnet50|cosmoflow [--backend loom|local|nfs]\n"
    "                        [--mds ADDR] [--dir PATH] [--nfs-url nfs://HOST[:PORT]/EXPORT]\n"
    "                        [--accelerators N | --search] [--epochs E] [--files F] [--json]\n"
    "       loom bench train --prepare --workload W [--files F] [backend options]\n"
    "       loom bench read --pattern seq|rand --bs 1M|128K --depth D --connections C\n"
    "                       --seconds S [--file PATH] [--size 1G] [--mds ADDR] [--json]\n"
    "\n"
    "train: simulated accelerators read batches of samples (every sample once per epoch, the\n"
    "files in a shuffled order, a file's samples in order) and sleep the workload's compute\n"
    "time per batch (MLPerf Storage: unet3d 146.6 MB x7, 0.323 s, one sample per file;\n"
    "resnet50 114.7 KB x400, 0.224 s, 1251 samples per file; cosmoflow 2.83 MB x1, 0.0035 s,\n"
    "one per file). AU = compute time / wall time per accelerator (min and mean).\n"
    "  --backend loom    libloom (default; --mds, default $LOOM_MDS or 127.0.0.1:20490)\n"
    "  --backend local   pread from --dir on this machine (the page-cache reference)\n"
    "  --backend nfs     any NFSv3 server through libnfs: --nfs-url nfs://HOST[:PORT]/EXPORT\n"
    "                    (PORT: NFS and MOUNT on one port, as loom-ds; else add\n"
    "                    ?nfsport=P&mountport=P&version=3, or let rpcbind answer)\n"
    "  --dir PATH        data set root; samples are PATH/WORKLOAD/sample_NNNNNN\n"
    "                    (default /loom-bench on loom and nfs; required for local)\n"
    "  --files F         files in the data set (default unet3d 24, resnet50 8, cosmoflow 300)\n"
    "  --samples-per-file K  samples in each file (default the workload's: resnet50 1251,\n"
    "                    others 1; 1 makes every sample a file of its own)\n"
    "  --accelerators N  accelerators for one run (default 1)\n"
    "  --search          largest N with mean AU >= 90% (70% cosmoflow): double, then bisect;\n"
    "                    each trial lasts --trial-seconds S (10) or --epochs E, the first to end\n"
    "  --epochs E        epochs of a single run (default 3); --seconds S caps it\n"
    "  --prefetch P      batches a loader reads ahead of its accelerator (default 1; 0: read,\n"
    "                    then compute, one after the other)\n"
    "  --window B        read bytes in flight per loader (default 64M); --chunk B (1M)\n"
    "  --connections C   loom: TCP connections per data server (default 4)\n"
    "  --keep-open       open every file once and keep it open (no per-sample OPEN/CLOSE)\n"
    "  --open-depth N    opens (and closes) in flight per loader (default 16)\n"
    "  --max-accelerators N (256), --seed N (1), --prepare-threads N (loom/local 4, nfs 1)\n"
    "  --cpu-pid PID[,PID]  servers whose CPU time (/proc/PID/stat) is counted per GB read,\n"
    "                    next to this client's own\n"
    "read: --depth reads of --bs in flight on one file for --seconds; the file (default\n"
    "/loom-bench/read.dat) is written first when it holds fewer than --size bytes.\n"
    "Exit status: 0 ok, 1 an I/O or server error, 2 usage.\n";

}  // namespace

int RunBench(const std::vector<std::string>& args) {
  using namespace loom::bench;
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::fputs(kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? kExitUsage : kExitOk;
  }
  std::vector<std::string> rest(args.begin() + 1, args.end());
  for (const std::string& a : rest) {
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return kExitOk;
    }
  }
  if (args[0] == "train") return RunTrain(rest);
  if (args[0] == "read") return RunRead(rest);
  std::fprintf(stderr, "loom bench: unknown benchmark '%s'\n%s", args[0].c_str(), kUsage);
  return kExitUsage;
}
