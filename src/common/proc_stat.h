// CPU time of processes, for the benchmarks that report CPU per operation or per byte next to
// their peer's (mdsbench, `loom bench`).
#pragma once

namespace loom {

// CPU seconds (user + system, every thread) this process has used (getrusage).
double SelfCpuSeconds();
// CPU seconds (user + system, every thread) process `pid` has used, from /proc/PID/stat
// (utime and stime, fields 14 and 15 of proc(5)); -1 when it cannot be read (the process
// is gone).
double ProcCpuSeconds(int pid);

}  // namespace loom
