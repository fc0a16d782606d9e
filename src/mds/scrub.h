// loom-mds --scrub: compares the metadata store with what the data servers hold (issue 10.7).
// Runs offline (the store's lock keeps a serving loom-mds out) and writes one line per finding,
// then a summary, all as `word key=value ...` for scripts:
//   missing-data ino=N ds=D                  a layout's data file is gone (GETATTR: STALE)
//   orphan-data ds=D file=loom/T/NAME size=S proof=intent|none action=...
//                                            a data file no layout or GC item holds
//   stale-intent ino=N ds=D [gen=G] action=...  an intent record whose file is not there
//                                            (gen: the data file's name generation, when > 0)
//   unreachable ds=D error=...               a data server that could not be checked
//   summary layouts=.. data_files=.. missing=.. orphans=.. stale_intents=.. unreachable=..
//           repaired=.. unrepaired=..
// Repairs (repair = true):
//   orphan with an intent record (this store made it; a crash came before its layout):
//     removed, record deleted (action=removed)
//   orphan without proof: moved to loom/lost+found/T-NAME on its data server, never deleted
//     (action=moved-to-lost+found)
//   stale intent: record deleted (action=deleted)
//   missing data: not repairable (the bytes are gone). The layout stays, so READ and WRITE
//     of the file fail with NFS4ERR_IO (the data server answers STALE) rather than returning
//     zeros; remove or rewrite the file. It counts as unrepaired.
// Data files queued for the GC worker are neither orphans nor missing.
#pragma once

#include <cstdio>

#include "mds/data_servers.h"
#include "meta/kv.h"

namespace loom::mds {

struct ScrubReport {
  size_t layouts = 0, data_files = 0;
  size_t missing = 0, orphans = 0, stale_intents = 0, unreachable = 0;
  size_t repaired = 0;
  size_t inconsistencies() const { return missing + orphans + stale_intents + unreachable; }
  size_t unrepaired() const { return inconsistencies() - repaired; }
};

// Fails only if the store does; data-server trouble is reported as `unreachable`.
Result<ScrubReport> Scrub(meta::KvStore& store, meta::FsId fsid, DataServerPool& pool, bool repair,
                          std::FILE* out);

}  // namespace loom::mds
