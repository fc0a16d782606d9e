// The data path of one libloom client: for each open file, a Flexible File layout (RFC 8435)
// from LAYOUTGET, the data servers from GETDEVICEINFO, and NFSv3 READ/WRITE/COMMIT sent
// straight to them over a pool of connections per server (Options::connections_per_ds):
// striping (sparse, as loom-mds and Linux place stripes: a byte sits at its file offset in its
// stripe's data file), writes to every mirror, reads from one mirror with failover to the
// others, errors reported with LAYOUTERROR (and in LAYOUTRETURN's ff_ioerr4 where the session
// is NFSv4.1). Without a layout (none granted, pnfs off, or the server said
// LAYOUTUNAVAILABLE) the bytes go through the metadata server (READ/WRITE/COMMIT in
// COMPOUNDs).
//
// Recalls (RFC 8881 §12.5.5, §20.3): the session's back channel delivers CB_LAYOUTRECALL
// here. The layout leaves use at once (new I/O goes through the MDS), the I/O in flight on it
// finishes, what it wrote is committed (COMMIT, LAYOUTCOMMIT), and it goes back with
// LAYOUTRETURN; the next I/O asks for a layout again. CB_RECALL_ANY returns layouts the same
// way; CB_NOTIFY_DEVICEID drops cached device addresses. Without a back channel (a server
// that refuses one) a recalled layout reaches libloom as a fence (the data servers refuse its
// ids with ACCES/PERM/STALE): the layout is returned, a new one fetched and the I/O retried.
//
// Statistics (RFC 7862 §15.7, RFC 8435 §8): per file and data server, operations and bytes
// requested and completed, and busy time, sent with LAYOUTSTATS every ffl_stats_collect_hint
// seconds (or a third of the lease, at most 30 s) while the file sees I/O, and in
// LAYOUTRETURN's ff_iostats4 report (NFSv4.2 sessions only: LAYOUTSTATS is a 4.2 operation).
//
// Threading: thread-safe. The hot path (a read or write with a layout in hand) takes only
// per-file locks; anything that waits for the metadata server (LAYOUTGET, retries after
// errors, commits before a write past Options::max_uncommitted_bytes) runs on the data
// path's own worker threads, never on the session's loop thread or a connection's thread.
#pragma once

#include <memory>

#include "client/counters.h"
#include "client/file_state.h"
#include "client/session.h"
#include "loom/client.h"

namespace loom::client::internal {

class DataPath {
 public:
  DataPath(Session* session, const Options& opts, Counters* counters);
  ~DataPath();  // closes every data-server connection; I/O still queued fails or completes

  // pread/pwrite semantics; many calls may be in flight on one file. `buf` stays valid until
  // `cb` runs. A read returns fewer bytes only at end of file (f.size as the server knows it).
  void Read(const std::shared_ptr<FileState>& f, uint64_t off, void* buf, size_t len,
            IoCallback cb);
  // Counts in ClientStats::ds_write_bytes once per mirror written.
  void Write(const std::shared_ptr<FileState>& f, uint64_t off, const void* buf, size_t len,
             IoCallback cb);
  // Stable on every mirror (COMMIT; resend what a restarted data server lost) and the size on
  // the metadata server (LAYOUTCOMMIT), or COMMIT through the metadata server. Writes still
  // in flight when it starts are not covered.
  Status Sync(const std::shared_ptr<FileState>& f);
  // Before CLOSE: give the layout back (LAYOUTRETURN with the error report) and forget the
  // file.
  Status Release(const std::shared_ptr<FileState>& f);
  // Takes the layout the OPEN's COMPOUND fetched (OPEN + GETFH + GETATTR + LAYOUTGET): one
  // round trip fewer per open file. `epoch`: the session epoch the OPEN was sent in.
  // Without `may_wait` (the session's thread) it makes no call of its own (Layouts::Adopt).
  void Adopt(const std::shared_ptr<FileState>& f, const LAYOUTGET4res& res, uint64_t epoch,
             bool may_wait = true);
  // The layout as `loom layout` shows it (fetches one if none is held).
  Result<LayoutInfo> Describe(const std::shared_ptr<FileState>& f);
  // Runs fn on the library's worker threads (on this thread once the client is closing): for
  // work that must wait for a server and was asked for on a thread that may not.
  void Defer(std::function<void()> fn);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace loom::client::internal
