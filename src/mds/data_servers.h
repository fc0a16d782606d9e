// The metadata server's side of the data servers: loom-mds is an NFSv3 client of every
// loom-ds. It creates, sizes, copies and removes the data files behind each regular file's
// layout, and — for NFSv4 clients that do no pNFS — proxies READ, WRITE and COMMIT to them.
//
// Where data files live: on each data server, under its export, `loom/<tree>/<name>`. <name>
// is the ino as 16 lower-case hex digits (so a listing sorts numerically), followed by
// `.<g>` (g in decimal) for a data file of name generation g > 0 (DataFile::name_gen): a
// file's bytes moved to other servers (live data mobility) go to a new generation, so the
// move never collides with the old data files, even on a server that holds one of them.
// <tree> is the directory SetTree registered for the fsid (loom-mds registers its
// filesystem's 128-bit id in hex, see mds/fs_identity.h), else the fsid in decimal. A
// registered tree carries an owner marker, `loom/<tree>/.owner`, holding the owner string:
// the pool writes it when it makes the tree and refuses (kPermission) to use a tree whose
// marker names another owner. Beside the trees, `loom/ds-id` holds the data server's own UUID
// and `loom/lost+found/` receives orphan data files that scrub could not prove were ours. The
// name is a function of (fsid, ino, name generation) only: the data files of one layout are
// always on distinct data servers (placement never puts two on one server), which is what
// lets REMOVE, which needs a name, work from a layout or a GcItem that carries only handles.
// Data files are made with the owner, group and mode of the Placement (the MDS passes
// per-file synthetic ids, RFC 8435 §2.2 loosely coupled); the MDS itself talks to data
// servers as AUTH_SYS root.
//
// The data servers and placement. Each server has a state: up, down (unreachable; left out
// of placement, its calls fail at once until a ping or Options::down_retry_ms brings it
// back) and, orthogonally, draining (kept for the files it holds, never chosen for new
// ones); its capacity and free space (NFSv3 FSSTAT, on connect, Ping and the health loop);
// and labels ("key=value"). New files go to the servers with the most free space among the
// usable, non-draining ones that carry the Placement's required labels (servers within 10%
// of each other count as tied and take turns). Servers can be added, drained and removed
// while the pool runs (the MDS persists the registry: mds/fs_identity.h).
//
// Mirrors. A layout's mirror may be marked stale (meta::Mirror::stale) by the MDS: it missed
// writes. Read, Write, Commit, Truncate, SetOwner and GetSize leave stale mirrors out.
// Write, Commit, Truncate and SetOwner given a `failed_mirrors` vector tolerate a mirror
// whose server is unavailable or times out while another mirror succeeds: the call succeeds
// and names that mirror, which the MDS then marks stale. ResyncMirror copies a stale mirror
// back from the others.
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
// Creating a data file never empties or takes over a file that is already there unless the
// CreateJournal says an earlier attempt of this store made it (issue 10: nothing lost is
// silently replaced).
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
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
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
  std::vector<std::string> labels; // "key=value" (site=a, tier=ssd): what placements can require
  bool draining = false;           // the state the pool starts it in (SetDraining changes it)
  std::string uuid;                // raw 16 bytes of its loom/ds-id when known (the registry's key)
};

enum class Health : uint8_t { kUnknown, kUp, kDown };
const char* HealthName(Health h);

// What the pool knows of one data server (for the registry, GETDEVICEINFO, monitoring).
struct DataServerState {
  DataServerConfig config;  // its labels: config.labels; config.draining == draining
  Health health = Health::kUnknown;
  int64_t since_ms = 0;     // when health last changed (rpc::NowMs clock)
  std::string last_error;   // the error that made it kDown
  bool draining = false;    // kept for existing files, never chosen for new ones
  bool space_known = false; // an FSSTAT answered: capacity and free are meaningful
  uint64_t capacity = 0;    // bytes (FSSTAT tbytes)
  uint64_t free = 0;        // bytes available (FSSTAT abytes)
};
// "up", "down", "unknown", or "draining" (up or unknown, and draining) / "down,draining".
std::string StateName(const DataServerState& s);

// How to place a new file's data.
struct Placement {
  uint32_t mirrors = 1;      // copies, each on its own data server
  uint32_t stripes = 1;      // data files per mirror; stripes * mirrors servers are needed
  uint64_t stripe_unit = 0;  // 0: Options::stripe_unit
  // Owner, group and permission bits of every data file (the CREATE's sattr3), recorded in
  // each DataFile's uid/gid. The MDS passes the file's synthetic ids (RFC 8435 §2.2).
  uint32_t uid = 0, gid = 0, mode = 0600;
  // Only data servers carrying every one of these labels ("key=value", exact match).
  std::vector<std::string> require_labels;
};

// RFC 1813 write verifier (and NFSv4 verifier4): 8 opaque bytes.
using Verifier = std::array<uint8_t, 8>;

struct ReadResult {
  Bytes data;        // a view of the reply buffer when one data-server READ served it
  bool eof = false;  // offset + data.size is at or past the end of the file
};

struct WriteResult {
  uint32_t count = 0;                 // bytes written on every mirror written (a prefix of the data)
  nfs3::stable_how committed = nfs3::FILE_SYNC;   // the weakest any data file reported
  Verifier verifier{};                // see CombineVerifiers
};

struct CommitResult {
  Verifier verifier{};                // the same combination WRITE reports
  std::vector<Verifier> mirror_verifiers;  // per mirror (combined over its stripes)
};

// Indices into Layout::mirrors of mirrors that missed a change (see the top).
using FailedMirrors = std::vector<uint32_t>;

// Where one byte of a striped file lives. Sparse packing: stripe unit k of the file is in
// data file k % stripe_count at the same offset as in the file (the other stripes' units are
// holes there). That is how the Linux flexfiles client (6.18+) stripes within a mirror: the
// kernel_client.pnfs test on the 7.x kernel finds a striped file's bytes at their file
// offsets in its data files. (RFC 8881 §13.4.4's dense packing is for file layouts.) These
// three functions are the only place that knows.
struct StripePos {
  uint32_t stripe = 0;       // index into Mirror::files
  uint64_t ds_offset = 0;    // offset in that data file
  uint64_t unit_left = 0;    // bytes from here to the end of this stripe unit (UINT64_MAX: none)
};
StripePos MapOffset(const meta::Layout& l, uint64_t offset);
// The size data file `stripe` has when the file's size is `file_size` (sparse: the same).
uint64_t StripeFileSize(const meta::Layout& l, uint32_t stripe, uint64_t file_size);
// The file size implied by data file `stripe` having `ds_size` bytes.
uint64_t FileEndOfStripe(const meta::Layout& l, uint32_t stripe, uint64_t ds_size);

// One verifier for a set of data files (in layout order: mirror by mirror, stripe by stripe):
// the data file's own verifier when there is one, else a hash of all of them. It changes when
// any of them changes, so an NFSv4 client that compares WRITE and COMMIT verifiers resends
// after any data server restarted.
Verifier CombineVerifiers(const std::vector<Verifier>& v);

// The default <tree> (fsid in decimal) and the <name> of loom/<tree>/<name>: 16 hex digits of
// ino, then ".<name_gen>" when name_gen > 0.
std::string FsDirName(meta::FsId fsid);
std::string DataFileName(meta::Ino ino, uint32_t name_gen = 0);
// What a data-file name stands for, or nullopt for any other name (including a generation
// written with leading zeros or as ".0", which DataFileName never makes).
struct DataFileId {
  meta::Ino ino = 0;
  uint32_t name_gen = 0;
  bool operator==(const DataFileId&) const = default;
};
std::optional<DataFileId> ParseDataFileName(std::string_view name);
// The name generation for data files that will replace some of `l`'s (a move, a re-placed
// mirror): one above every generation `l` holds.
uint32_t NextNameGen(const meta::Layout& l);

constexpr const char* kOwnerFile = ".owner";
constexpr const char* kDsIdFile = "ds-id";
constexpr const char* kLostFound = "lost+found";

// Durable intent before a data file is made (issue 10.7): the MDS records "ino's data file is
// about to be created on data server ds" (with the name generation) in its store before the
// CREATE, so a crash between the CREATE and the layout's commit leaves a record that names
// the leftover file.
class CreateJournal {
 public:
  virtual ~CreateJournal() = default;
  // Records the intent (durably, before returning). True if the record already existed: an
  // earlier attempt of this store may have made the file, so it may be reused.
  virtual Result<bool> Intend(meta::FsId fsid, meta::Ino ino, uint32_t ds_id,
                              uint32_t name_gen) = 0;
  // Withdraws an intent whose file does not exist (the name was taken by a file that is not
  // ours, or the file was removed again): left in place, it would make recovery remove that
  // file.
  virtual Status Cancel(meta::FsId fsid, meta::Ino ino, uint32_t ds_id, uint32_t name_gen) = 0;
};

// One entry of a data-server directory (ListDir).
struct DsEntry {
  std::string name;
  std::string fh;        // empty if the server sent none
  bool is_dir = false;
  uint64_t size = 0;
};

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
    // A server whose last FSSTAT showed at most this many bytes available is full: left out
    // of placement.
    uint64_t min_free_bytes = 0;
  };

  // `loops`: event loops for the connections; nullptr makes (and owns) a one-thread group.
  // Fails on an empty list, a duplicate id, an empty address or a label without '='.
  static Result<std::unique_ptr<DataServerPool>> Create(std::vector<DataServerConfig> servers,
                                                        Options opts,
                                                        rpc::LoopGroup* loops = nullptr);
  ~DataServerPool();
  DataServerPool(const DataServerPool&) = delete;
  DataServerPool& operator=(const DataServerPool&) = delete;

  const Options& options() const { return opts_; }

  // --- Data servers and their health ---
  std::vector<DataServerState> Servers() const;  // by id
  const DataServerConfig* Find(uint32_t id) const;  // nullptr if unknown; lives as long as the pool
  Health HealthOf(uint32_t id) const;
  // Known, and not down (or down for down_retry_ms, so that the next call tries it again).
  // What the MDS asks before handing out a layout that names the server.
  bool IsUsable(uint32_t id) const;
  // NULL-pings one server (connecting if needed) within ping_timeout_ms and updates its
  // health, then refreshes its capacity and free space (FSSTAT).
  Status Ping(uint32_t id);
  void CheckHealth();  // pings every server
  // A client reported a transport error talking to the server (LAYOUTERROR, LAYOUTRETURN
  // ioerr): marks it down like a failed call of the pool's own. Unknown ids are ignored.
  void ReportError(uint32_t ds_id, const Status& why);

  // --- Runtime registry changes (the MDS persists them: SaveRegistry in fs_identity.h) ---
  // Adds a server: connects and pings it, and makes (checks the owner marker of) every tree
  // registered with SetTree on it; any failure adds nothing. `c.id` must be non-zero and not
  // the id of a server the pool has or had (removed ones included); a new server takes
  // MaxId() + 1 (AddDataServer in fs_identity.h picks it, and keeps a known server's id).
  Status AddServer(DataServerConfig c);
  // Draining: kept for the files it holds, never chosen for new placements.
  Status SetDraining(uint32_t id, bool draining);
  // Forgets the server (its connection is closed). The caller checks first that no layout
  // names it. Its id is never given to another server of this pool.
  Status RemoveServer(uint32_t id);
  std::vector<uint32_t> RemovedIds() const;
  uint32_t MaxId() const;  // the largest id the pool has or had (0: none)

  // Makes loom/<tree> on every data server (EXIST is fine). Optional: CreateDataFile makes it
  // on first use. Returns the first error; the servers that failed are marked down.
  Status PrepareFilesystem(meta::FsId fsid);
  // Data files of `fsid` live in loom/<dir>, owned by `owner` (see the top). Call before use.
  void SetTree(meta::FsId fsid, std::string dir, std::string owner);
  std::string TreeDir(meta::FsId fsid) const;
  // REQUIRES: set before the first CreateDataFile; outlives the pool. Without one, a data file
  // that already exists is never reused (CreateDataFile fails with kExists).
  void SetCreateJournal(CreateJournal* j) { journal_ = j; }

  // --- Small control files and listings under the export (ds_files.cc) ---
  // `path` is a list of names below the export root. The contents of a file of at most 4 KiB,
  // or nullopt if it (or a directory on the way) does not exist.
  Result<std::optional<std::string>> ReadControlFile(uint32_t id, const std::vector<std::string>& path);
  // Makes the directories on the way and the file (GUARDED, written FILE_SYNC). False if the
  // file already existed (it is left as it is).
  Result<bool> CreateControlFile(uint32_t id, const std::vector<std::string>& path,
                                 std::string_view content);
  // The entries of a directory ("." and ".." left out), or nullopt if it does not exist.
  Result<std::optional<std::vector<DsEntry>>> ListDir(uint32_t id, const std::vector<std::string>& path);
  // Moves loom/<tree>/<name> to loom/lost+found/<tree>-<name> (".1", ".2"... appended when
  // taken; nothing is replaced): scrub's repair of a file it cannot prove is ours.
  Status MoveToLostFound(uint32_t id, const std::string& tree, const std::string& name);
  // RENAME of the data file of (from, from_gen) to that of (to, generation 0) in loom/<tree>
  // (the handle stays): AdoptTree gives an adopted data file the name of its new inode.
  Status RenameDataFile(uint32_t id, meta::FsId fsid, meta::Ino from, meta::Ino to,
                        uint32_t from_gen = 0);
  // Whether the data file behind a layout entry still exists (GETATTR of its handle).
  Result<bool> DataFileExists(const meta::DataFile& f);
  // REMOVE of the data file of (ino, name_gen) whatever handle it has. Only for a file an
  // intent record proves this store created (scrub, start-up recovery). Gone already is
  // success.
  Status RemoveDataFileByName(meta::FsId fsid, meta::Ino ino, uint32_t ds_id,
                              uint32_t name_gen = 0);

  // --- Data files ---
  // Creates the data files of a new file and returns its layout (generation 0, no mirror
  // stale): every DataFile has ds_id, the NFSv3 handle, name_gen 0 and the placement's uid and
  // gid. Servers are chosen as the top describes; never two data files on one server. With a
  // CreateJournal, the intent is recorded before each CREATE, and a file left by an earlier,
  // interrupted attempt of this store for the same ino and server is reused, emptied and
  // given the placement's owner and mode (SETATTR); any other existing file fails the call
  // with kExists and is not touched. A server that fails is marked down and the placement
  // retried without it. Not enough servers: kInvalidArgument when the pool has fewer than
  // mirrors * stripes in all, kNoSpace when too few carry the labels, are not draining or
  // have free space, kUnavailable when too few of those are up; the message says which.
  Result<meta::Layout> CreateDataFile(meta::FsId fsid, meta::Ino ino,
                                      const Placement& placement = Placement());
  // The same on the servers given: ds_ids[m * stripes + s] holds stripe s of mirror m
  // (mirror-major), all distinct, none draining, each carrying the required labels. The data
  // files are of name generation `name_gen`, which must be above every name_gen of the
  // file's current layout (the old one's highest + 1): the GC's sweep of settled intents
  // (ResolveIntents) takes an intent of a generation the stored layout already has for a
  // leftover. No retry elsewhere: on any failure what was made is removed and the error
  // returned. For moving a file's bytes (then CopyRange) and re-placing a mirror.
  Result<meta::Layout> CreateDataFilesOn(meta::FsId fsid, meta::Ino ino, const Placement& p,
                                         const std::vector<uint32_t>& ds_ids, uint32_t name_gen);
  // Undoes CreateDataFile(s)On for a layout that will not be committed (a move given up):
  // removes its data files and withdraws their intent records. Stops at the first error
  // (the records of files not removed stay, for recovery).
  Status AbandonDataFiles(meta::FsId fsid, meta::Ino ino, const meta::Layout& l);
  // REMOVE of every data file; a file already gone is success. A name that now holds a
  // different handle is left alone (logged) and counts as success.
  Status RemoveDataFiles(meta::FsId fsid, meta::Ino ino, const meta::Layout& l);
  Status RemoveDataFile(meta::FsId fsid, meta::Ino ino, const meta::DataFile& f);

  // --- Proxied I/O (the MDS serving READ/WRITE/COMMIT itself) ---
  // Reads from the first non-stale mirror whose server is not down, failing over to the next
  // non-stale one on error.
  Result<ReadResult> Read(const meta::Layout& l, uint64_t offset, uint32_t count);
  // Writes every non-stale mirror (in parallel). Without `failed_mirrors` all must succeed;
  // with it, a mirror whose server is unavailable or times out is left out for the rest of
  // the call and appended there, as long as at least one mirror succeeds. A short write on
  // any mirror returns the shortest count.
  Result<WriteResult> Write(const meta::Layout& l, uint64_t offset, const Bytes& data,
                            nfs3::stable_how stable, FailedMirrors* failed_mirrors = nullptr);
  // COMMIT (whole file) of every data file of the non-stale mirrors; `failed_mirrors` as for
  // Write (a failed mirror's entries in the result keep its server's last known verifier).
  Result<CommitResult> Commit(const meta::Layout& l, FailedMirrors* failed_mirrors = nullptr);
  // SETATTR size on every data file of the non-stale mirrors; `failed_mirrors` as for Write.
  Status Truncate(const meta::Layout& l, uint64_t size, FailedMirrors* failed_mirrors = nullptr);
  // SETATTR owner, group and mode on every data file of the non-stale mirrors: what a Flex
  // Files layout's synthetic ffds_user/ffds_group must be allowed by, and how a client is
  // fenced off (loom-ds checks AUTH_SYS identities against them). `failed_mirrors` as for
  // Write. A stale mirror gets its owner back from a good one in ResyncMirror.
  Status SetOwner(const meta::Layout& l, uint32_t uid, uint32_t gid, uint32_t mode = 0600,
                  FailedMirrors* failed_mirrors = nullptr);
  // The file size from the data files (GETATTR; the first reachable non-stale mirror of each
  // stripe).
  Result<uint64_t> GetSize(const meta::Layout& l);

  // --- Copies (live data mobility, mirror resync) ---
  // Copies bytes [offset, min(offset + length, file_size)) of the file from `from` (its
  // non-stale mirrors, failing over like Read; holes read as zeros) to every mirror of `to`,
  // each side's striping mapped through MapOffset, in pieces of at most max_io: UNSTABLE
  // WRITEs, then every data file of `to` sized to StripeFileSize(to, s, file_size), then one
  // COMMIT per data file of `to`. A data server of `to` that restarted during the copy (its
  // COMMIT verifier differs from its WRITEs') fails the call with kUnavailable: copy again.
  // Writers must be kept out (or the range copied again after them) by the caller.
  Status CopyRange(const meta::Layout& from, const meta::Layout& to, uint64_t offset,
                   uint64_t length, uint64_t file_size);
  // Makes mirror `stale_mirror` of `l` a copy of the others (their non-stale mirrors): its
  // data files get the owner, group and mode of the good mirror's, then the whole file is
  // copied as CopyRange does. The stale flag is the caller's to clear (and persist).
  Status ResyncMirror(const meta::Layout& l, size_t stale_mirror, uint64_t file_size);

 private:
  struct Server;
  DataServerPool(std::vector<DataServerConfig> servers, Options opts, rpc::LoopGroup* loops);

  Server* Lookup(uint32_t id) const;
  // Lookup, with NotFound ("unknown data server N") for an id not in the configuration.
  Result<Server*> Known(uint32_t id) const;
  std::vector<Server*> Snapshot() const;  // the current servers, by id
  // The connected client of `s`, connecting (and MOUNTing, FSINFO, FSSTAT) if needed.
  Result<std::shared_ptr<nfs3::Nfs3Client>> Client(Server& s);
  void DropClient(Server& s, const std::shared_ptr<nfs3::Nfs3Client>& c);
  void MarkUp(Server& s);
  void MarkDown(Server& s, const Status& why);
  bool Usable(const Server& s) const;  // not down, or down long enough to try again
  Status PingServer(Server& s);
  void NoteSpace(Server& s, const nfs3::FSSTAT3res& r);

  // One NFSv3 call: on a lost connection retried once on a fresh one; NFS3ERR_JUKEBOX
  // retried with backoff. OK means the call completed: the caller reads res->status.
  template <typename Args, typename Res>
  Status Call(Server& s, uint32_t proc, const Args& args, Res* res);
  template <typename Args, typename Res>
  Status CallOnce(Server& s, uint32_t proc, const Args& args, Res* res);

  // Handle of loom/<tree> on `s`, made when `create`; its owner marker checked (and written
  // when `create` and missing).
  Result<std::string> FsDir(Server& s, meta::FsId fsid, bool create);
  // True: the tree carries `owner`'s marker (written now when `create`). False: it has none
  // (made before markers) and `create` is false. Another owner's marker: kPermission.
  Result<bool> CheckOwner(Server& s, const std::string& dir_fh, const std::string& tree,
                          const std::string& owner, bool create);
  // Small-file pieces (ds_files.cc). nullopt: no such name.
  Result<std::optional<std::string>> LookupIn(Server& s, const std::string& dir, const std::string& name);
  Result<std::optional<std::string>> ReadSmall(Server& s, const std::string& fh);
  Result<bool> CreateSmallIn(Server& s, const std::string& dir, const std::string& name,
                             std::string_view content);
  Result<std::optional<std::string>> WalkDirs(Server& s, const std::vector<std::string>& path,
                                              size_t n, bool create);
  void ForgetFsDir(Server& s, meta::FsId fsid);
  Result<std::string> MakeDir(Server& s, const std::string& parent, const std::string& name,
                              bool create);
  Result<std::string> CreateOn(Server& s, meta::FsId fsid, meta::Ino ino, uint32_t name_gen,
                               const Placement& p);
  // Creates the data files on picked[k] (file k: stripe k / mirrors of mirror k % mirrors
  // when `mirror_major` is false, else mirror k / stripes, stripe k % stripes). On failure
  // removes what it made and fills `failed` with the servers that failed.
  Result<meta::Layout> CreateOnServers(meta::FsId fsid, meta::Ino ino, const Placement& p,
                                       const std::vector<Server*>& picked, uint32_t name_gen,
                                       bool mirror_major, std::vector<uint32_t>* failed);
  // n distinct servers for a placement (see the top), or why there are not enough.
  Result<std::vector<Server*>> PickServers(size_t n, const std::vector<uint32_t>& exclude,
                                           const std::vector<std::string>& labels);

  // I/O pieces (data_io.cc).
  Result<ReadResult> ReadFile(const meta::Layout& l, uint32_t stripe, uint64_t ds_offset,
                              uint32_t count);
  Status SetAttrAll(const meta::Layout& l, const std::function<nfs3::sattr3(uint32_t stripe)>& attrs,
                    FailedMirrors* failed_mirrors);
  // Copies [offset, end) of the file from `from` into mirrors `to_mirrors` of `to`.
  Status CopyInto(const meta::Layout& from, const meta::Layout& to,
                  const std::vector<size_t>& to_mirrors, uint64_t offset, uint64_t end,
                  uint64_t file_size);
  void NoteVerifier(Server& s, const Verifier& v);
  Verifier KnownVerifier(uint32_t ds_id);
  uint32_t MaxIo(uint32_t ds_id, bool write);
  // Runs fn(0..n-1) concurrently (fn(0) on the calling thread) and waits for all.
  void ForEach(size_t n, const std::function<void(size_t)>& fn);

  void HealthLoop();

  const Options opts_;
  std::unique_ptr<rpc::LoopGroup> own_loops_;
  rpc::LoopGroup* loops_;
  mutable std::shared_mutex servers_mu_;          // servers_ and removed_ (not their contents)
  std::vector<std::unique_ptr<Server>> servers_;  // sorted by id
  // Removed servers: kept (unused) until the pool goes, so that a pointer taken before the
  // removal (Find, a call in flight) stays valid.
  std::vector<std::unique_ptr<Server>> removed_;
  std::atomic<uint64_t> next_{0};                 // round-robin cursor
  std::unique_ptr<rpc::WorkerPool> fanout_;
  CreateJournal* journal_ = nullptr;
  struct Tree {
    std::string dir, owner;
  };
  mutable std::mutex trees_mu_;
  std::unordered_map<meta::FsId, Tree> trees_;  // guarded by trees_mu_

  std::mutex health_mu_;
  std::condition_variable health_cv_;
  bool stopping_ = false;
  std::thread health_thread_;
};

// Maps an NFSv3 status to a Status as described at the top; `what` names the call.
Status FromNfs3(nfs3::nfsstat3 st, uint32_t ds_id, const char* what);

}  // namespace loom::mds
