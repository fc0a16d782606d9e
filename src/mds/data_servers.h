// The metadata server's side of the data servers: loom-mds is an NFSv3 client of every
// loom-ds. It creates, sizes and removes the data files behind each regular file's layout, and
// — for NFSv4 clients that do no pNFS, or until Flex Files layouts exist — proxies READ, WRITE
// and COMMIT to them.
//
// Where data files live: on each data server, under its export, `loom/<fsid>/<ino>` with fsid
// in decimal and ino as 16 lower-case hex digits (so a listing sorts numerically). The name is
// a function of (fsid, ino) only: a file's data files are always on distinct data servers
// (CreateDataFile refuses a placement that would need two on one server), which is what lets
// REMOVE, which needs a name, work from a layout or a GcItem that carries only handles.
// Data files are mode 0600, owned by uid/gid 0; the MDS talks to data servers as AUTH_SYS root.
//
// Errors. Data-server status codes become Status values here and nowhere else (FromNfs3 in
// data_servers.cc): the Code says what the NFSv4 layer should do, os_errno() keeps the detail.
//   kUnavailable  data server unreachable, or NFS3ERR_JUKEBOX after the retries: retry later
//                 (NFS4ERR_DELAY)
//   kTimeout      no reply within Options::rpc_timeout_ms (NFS4ERR_DELAY)
//   kIo + ESTALE  the data file is gone (NFS3ERR_STALE/BADHANDLE): its bytes are lost
//                 (NFS4ERR_IO; worth a loud log)
//   kNoSpace      NFS3ERR_NOSPC; kIo + EDQUOT for NFS3ERR_DQUOT; kIo + EFBIG / EROFS likewise
//   kIo           anything else (EIO)
//
// Thread-safety: DataServerPool is thread-safe; its calls block (they are meant for the MDS
// worker pool, never an event-loop thread).
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/buffer.h"
#include "common/status.h"
#include "meta/keys.h"
#include "meta/records.h"
#include "rpc/auth.h"
#include "rpc/event_loop.h"
#include "xdr/nfs3.h"

namespace loom::nfs3 {
class Nfs3Client;
}

namespace loom::mds {

// One data server of the configuration.
struct DataServerConfig {
  uint32_t id = 0;                 // stable: stored in every layout (DataFile::ds_id)
  std::string address;             // "host:port" the MDS connects to
  std::string advertised_address;  // "host:port" clients are told (GETDEVICEINFO); empty: address
  std::string export_path = "/";   // MOUNT path on the data server
};

enum class Health : uint8_t { kUnknown, kUp, kDown };
const char* HealthName(Health h);

// What the pool knows of one data server (for a registry, GETDEVICEINFO, monitoring).
struct DataServerState {
  DataServerConfig config;
  Health health = Health::kUnknown;
  int64_t since_ms = 0;     // when health last changed (rpc::NowMs clock)
  std::string last_error;   // the error that made it kDown
};

// How to place a new file's data.
struct Placement {
  uint32_t mirrors = 1;      // copies, each on its own data server
  uint32_t stripes = 1;      // data files per mirror; stripes * mirrors servers are needed
  uint64_t stripe_unit = 0;  // 0: Options::stripe_unit
};

// RFC 1813 write verifier (and NFSv4 verifier4): 8 opaque bytes.
using Verifier = std::array<uint8_t, 8>;

struct ReadResult {
  Bytes data;        // a view of the reply buffer when one data-server READ served it
  bool eof = false;  // offset + data.size is at or past the end of the file
};

struct WriteResult {
  uint32_t count = 0;                 // bytes written on every mirror (a prefix of the data)
  nfs3::stable_how committed = nfs3::FILE_SYNC;   // the weakest any data file reported
  Verifier verifier{};                // see CombineVerifiers
};

struct CommitResult {
  Verifier verifier{};                // the same combination WRITE reports
  std::vector<Verifier> mirror_verifiers;  // per mirror (combined over its stripes)
};

// Where one byte of a striped file lives. Dense packing (as RFC 8881 §13.4.4 defines it for
// file layouts): stripe unit k of the file is unit k / stripe_count of data file
// k % stripe_count. With stripe_count 1 the data-server offset is the file offset. Before
// striped Flex Files layouts go to clients, check that the client's striping (Linux 6.18+,
// see shared/notes/linux-flexfiles-client.md §2) packs the same way; these three functions
// are the only place that knows.
struct StripePos {
  uint32_t stripe = 0;       // index into Mirror::files
  uint64_t ds_offset = 0;    // offset in that data file
  uint64_t unit_left = 0;    // bytes from here to the end of this stripe unit (UINT64_MAX: none)
};
StripePos MapOffset(const meta::Layout& l, uint64_t offset);
// The size data file `stripe` has when the file's size is `file_size`.
uint64_t StripeFileSize(const meta::Layout& l, uint32_t stripe, uint64_t file_size);
// The file size implied by data file `stripe` having `ds_size` bytes.
uint64_t FileEndOfStripe(const meta::Layout& l, uint32_t stripe, uint64_t ds_size);

// One verifier for a set of data files (in layout order: mirror by mirror, stripe by stripe):
// the data file's own verifier when there is one, else a hash of all of them. It changes when
// any of them changes, so an NFSv4 client that compares WRITE and COMMIT verifiers resends
// after any data server restarted.
Verifier CombineVerifiers(const std::vector<Verifier>& v);

// The <fsid> and <ino> components of loom/<fsid>/<ino>, as described above.
std::string FsDirName(meta::FsId fsid);
std::string DataFileName(meta::Ino ino);

class DataServerPool {
 public:
  struct Options {
    rpc::Cred cred = rpc::Cred::Sys(0, 0);
    int rpc_timeout_ms = 30000;
    int connect_timeout_ms = 3000;
    int ping_timeout_ms = 2000;
    // A server marked down is left out of placement and its calls fail at once (reads go to
    // another mirror), until a ping brings it back or this long has passed since its last
    // failure (then the next call tries to connect again).
    int down_retry_ms = 5000;
    // >0: a thread NULL-pings every server this often and updates health.
    int health_interval_ms = 0;
    // NFS3ERR_JUKEBOX: retry this many times, sleeping jukebox_delay_ms doubling each time.
    int jukebox_retries = 5;
    int jukebox_delay_ms = 50;
    uint64_t stripe_unit = 1u << 20;
    uint32_t max_io = 1u << 20;  // largest READ/WRITE sent (also capped by the server's FSINFO)
    int fanout_threads = 4;      // concurrent per-mirror calls of one Write/Commit/Truncate
  };

  // `loops`: event loops for the connections; nullptr makes (and owns) a one-thread group.
  // Fails on an empty list, a duplicate id or an empty address.
  static Result<std::unique_ptr<DataServerPool>> Create(std::vector<DataServerConfig> servers,
                                                        Options opts,
                                                        rpc::LoopGroup* loops = nullptr);
  ~DataServerPool();
  DataServerPool(const DataServerPool&) = delete;
  DataServerPool& operator=(const DataServerPool&) = delete;

  // --- Data servers and their health ---
  std::vector<DataServerState> Servers() const;
  const DataServerConfig* Find(uint32_t id) const;  // nullptr if unknown; lives as long as the pool
  Health HealthOf(uint32_t id) const;
  // NULL-pings one server (connecting if needed) within ping_timeout_ms and updates its health.
  Status Ping(uint32_t id);
  void CheckHealth();  // pings every server

  // Makes loom/<fsid> on every data server (EXIST is fine). Optional: CreateDataFile makes it
  // on first use. Returns the first error; the servers that failed are marked down.
  Status PrepareFilesystem(meta::FsId fsid);

  // --- Data files ---
  // Creates the data files of a new file (round-robin over the servers not known to be down)
  // and returns its layout: every DataFile has ds_id, the NFSv3 handle and uid = gid = 0.
  // Idempotent: a file left by an earlier, interrupted attempt for the same ino is reused and
  // emptied. A server that fails is marked down and the placement retried without it.
  Result<meta::Layout> CreateDataFile(meta::FsId fsid, meta::Ino ino,
                                      const Placement& placement = Placement());
  // REMOVE of every data file; a file already gone is success. A name that now holds a
  // different handle is left alone (logged) and counts as success.
  Status RemoveDataFiles(meta::FsId fsid, meta::Ino ino, const meta::Layout& l);
  Status RemoveDataFile(meta::FsId fsid, meta::Ino ino, const meta::DataFile& f);

  // --- Proxied I/O (the MDS serving READ/WRITE/COMMIT itself) ---
  // Reads from the first mirror whose server is not down, failing over to the next on error.
  Result<ReadResult> Read(const meta::Layout& l, uint64_t offset, uint32_t count);
  // Writes every mirror (in parallel); all must succeed. A short write on any mirror returns
  // the shortest count.
  Result<WriteResult> Write(const meta::Layout& l, uint64_t offset, const Bytes& data,
                            nfs3::stable_how stable);
  // COMMIT (whole file) of every data file.
  Result<CommitResult> Commit(const meta::Layout& l);
  // SETATTR size on every data file.
  Status Truncate(const meta::Layout& l, uint64_t size);
  // SETATTR owner, group and mode on every data file: what a Flex Files layout's synthetic
  // ffds_user/ffds_group must be allowed by, and how a client is fenced off (loom-ds checks
  // AUTH_SYS identities against them).
  Status SetOwner(const meta::Layout& l, uint32_t uid, uint32_t gid, uint32_t mode = 0600);
  // The file size from the data files (GETATTR; the first reachable mirror of each stripe).
  Result<uint64_t> GetSize(const meta::Layout& l);

 private:
  struct Server;
  DataServerPool(std::vector<DataServerConfig> servers, Options opts, rpc::LoopGroup* loops);

  Server* Lookup(uint32_t id) const;
  // Lookup, with NotFound ("unknown data server N") for an id not in the configuration.
  Result<Server*> Known(uint32_t id) const;
  // The connected client of `s`, connecting (and MOUNTing, FSINFO) if needed.
  Result<std::shared_ptr<nfs3::Nfs3Client>> Client(Server& s);
  void DropClient(Server& s, const std::shared_ptr<nfs3::Nfs3Client>& c);
  void MarkUp(Server& s);
  void MarkDown(Server& s, const Status& why);
  bool Usable(const Server& s) const;  // not down, or down long enough to try again

  // One NFSv3 call: on a lost connection retried once on a fresh one; NFS3ERR_JUKEBOX
  // retried with backoff. OK means the call completed: the caller reads res->status.
  template <typename Args, typename Res>
  Status Call(Server& s, uint32_t proc, const Args& args, Res* res);
  template <typename Args, typename Res>
  Status CallOnce(Server& s, uint32_t proc, const Args& args, Res* res);

  // Handle of loom/<fsid> on `s`, made when `create`.
  Result<std::string> FsDir(Server& s, meta::FsId fsid, bool create);
  void ForgetFsDir(Server& s, meta::FsId fsid);
  Result<std::string> MakeDir(Server& s, const std::string& parent, const std::string& name,
                              bool create);
  Result<std::string> CreateOn(Server& s, meta::FsId fsid, meta::Ino ino);
  std::vector<Server*> PickServers(size_t n, const std::vector<uint32_t>& exclude);

  // I/O pieces (data_io.cc).
  Result<ReadResult> ReadFile(const meta::Layout& l, uint32_t stripe, uint64_t ds_offset,
                              uint32_t count);
  Status SetAttrAll(const meta::Layout& l, const std::function<nfs3::sattr3(uint32_t stripe)>& attrs);
  void NoteVerifier(Server& s, const Verifier& v);
  Verifier KnownVerifier(uint32_t ds_id);
  uint32_t MaxIo(uint32_t ds_id, bool write);
  // Runs fn(0..n-1) concurrently (fn(0) on the calling thread) and waits for all.
  void ForEach(size_t n, const std::function<void(size_t)>& fn);

  void HealthLoop();

  const Options opts_;
  std::unique_ptr<rpc::LoopGroup> own_loops_;
  rpc::LoopGroup* loops_;
  std::vector<std::unique_ptr<Server>> servers_;  // sorted by id
  std::atomic<uint64_t> next_{0};                 // round-robin cursor
  std::unique_ptr<rpc::WorkerPool> fanout_;

  std::mutex health_mu_;
  std::condition_variable health_cv_;
  bool stopping_ = false;
  std::thread health_thread_;
};

// Maps an NFSv3 status to a Status as described at the top; `what` names the call.
Status FromNfs3(nfs3::nfsstat3 st, uint32_t ds_id, const char* what);

}  // namespace loom::mds
