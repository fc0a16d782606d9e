// pNFS layout state (RFC 8881 §12.5, RFC 8435): which client holds which layout of which
// file, under which layout stateid, and the recalls in progress. Like StateManager it knows
// files only as uint64 ids and nothing of the namespace or the data servers; the operations
// (ops_layout.cc) and Mds decide what a layout contains.
//
// One layout stateid per (client, file) (§12.5.3): its `other` never changes while the client
// holds any layout of the file, and its seqid grows by one on every LAYOUTGET, LAYOUTRETURN
// and CB_LAYOUTRECALL. The Linux client drops a reply carrying a new `other` while it holds a
// layout, and refuses a recall whose seqid is not exactly one past the last it saw
// (shared/notes/linux-flexfiles-client.md §1, §6).
//
// Thread-safe: split into kStateShards shards by file as StateManager is (a layout stateid's
// counter names its shard), each with its own mutex, never held while calling out; only
// whole-client operations visit every shard.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <vector>

#include "nfs4/state.h"
#include "xdr/nfs4.h"

namespace loom::nfs4 {

// Bits of the iomodes a client holds.
constexpr uint32_t kIoRead = 1u << LAYOUTIOMODE4_READ;
constexpr uint32_t kIoRw = 1u << LAYOUTIOMODE4_RW;

// A recall to send: CB_LAYOUTRECALL(FILE) of `file` to `client` with `stateid` (seqid
// already advanced).
struct RecallTarget {
  clientid4 client = 0;
  uint64_t file = 0;
  stateid4 stateid{};
};

namespace internal {

// The layouts of the files of one shard; LayoutTable (below) documents the operations.
class LayoutShard {
 public:
  LayoutShard(uint32_t boot_epoch, uint32_t shard) : epoch_(boot_epoch), shard_(shard) {}
  nfsstat4 Grant(clientid4 client, uint64_t file, layoutiomode4 iomode, const stateid4& presented,
                 stateid4* out);
  bool Holds(clientid4 client, uint64_t file, const stateid4& s) const;
  // `counter`: of a layout stateid of this boot (LayoutTable::IssuedTo checked it).
  bool IssuedTo(clientid4 client, uint64_t counter) const;
  nfsstat4 Return(clientid4 client, uint64_t file, layoutiomode4 iomode, const stateid4& sid,
                  bool* remaining, stateid4* out);
  void ReturnAll(clientid4 client, uint64_t file = 0);
  std::vector<uint64_t> ReturnIomode(clientid4 client, layoutiomode4 iomode);
  std::vector<RecallTarget> BeginRecall(uint64_t file, clientid4 except = 0);
  void EndRecall(uint64_t file);
  void Block(uint64_t file);
  bool Recalling(uint64_t file) const;
  std::map<clientid4, uint32_t> Holders(uint64_t file) const;
  std::vector<uint64_t> FilesOf(clientid4 client) const;
  size_t size() const;

 private:
  struct State {
    uint64_t id = 0;  // the counter in `other`
    uint32_t seqid = 0;
    clientid4 client = 0;
    uint64_t file = 0;
    uint32_t iomodes = 0;
  };
  stateid4 StateidOf(const State& s) const;
  State* FindLocked(clientid4 client, uint64_t file);
  void EraseLocked(std::map<std::pair<clientid4, uint64_t>, State>::iterator it);

  const uint32_t epoch_;
  const uint32_t shard_;
  mutable std::mutex mu_;
  uint64_t next_id_ = 1;
  std::map<std::pair<clientid4, uint64_t>, State> states_;  // (client, file)
  std::map<uint64_t, std::set<clientid4>> by_file_;
  std::map<uint64_t, int> recalling_;  // file -> nesting count of BeginRecall
  std::map<uint64_t, clientid4> released_;  // counter of a released layout stateid -> client
};

}  // namespace internal

class LayoutTable {
 public:
  explicit LayoutTable(uint32_t boot_epoch);

  // LAYOUTGET's state step (§18.43.3). `presented` has been checked by the caller when it is
  // an open, lock or delegation stateid; a layout stateid is checked here (another client's,
  // another file's or an unknown one: BAD_STATEID; a seqid ahead of ours: BAD_STATEID;
  // §12.5.3 lets older seqids through, replies may cross). While the file is being recalled
  // (or its layouts are being changed), NFS4ERR_RECALLCONFLICT. On success *out is the layout
  // stateid with its seqid advanced and `iomode` is recorded.
  nfsstat4 Grant(clientid4 client, uint64_t file, layoutiomode4 iomode, const stateid4& presented,
                 stateid4* out);
  // Whether `s` is a layout stateid (of any client or file, even an unknown one).
  static bool IsLayoutStateid(const stateid4& s);
  // A layout stateid of `client` for `file`, live now (seqid not checked).
  bool Holds(clientid4 client, uint64_t file, const stateid4& s) const;
  // Whether `s` is a layout stateid this server instance handed out to `client` (held now or
  // since returned or dropped; the last 65536 released ones are remembered).
  bool IssuedTo(clientid4 client, const stateid4& s) const;
  // Whether the layout stateid was made by an earlier boot of the server.
  bool FromEarlierBoot(const stateid4& s) const;

  // LAYOUTRETURN4_FILE (§18.44.3): `iomode` READ, RW or ANY. NFS4ERR_BAD_STATEID for a
  // stateid that is not this client's layout stateid of the file. *remaining is set when the
  // client still holds a layout of the file, with the stateid (seqid advanced) in *out.
  nfsstat4 Return(clientid4 client, uint64_t file, layoutiomode4 iomode, const stateid4& sid,
                  bool* remaining, stateid4* out);
  // LAYOUTRETURN4_FSID / _ALL, return-on-close, lease expiry: everything of the client (of one
  // file when `file` != 0).
  void ReturnAll(clientid4 client, uint64_t file = 0);
  // LAYOUTRETURN4_FSID / _ALL with an iomode (§18.44.3): the client's layouts of that iomode
  // (READ or RW; ANY is ReturnAll) on every file. Returns the files it no longer holds.
  std::vector<uint64_t> ReturnIomode(clientid4 client, layoutiomode4 iomode);
  void DropClient(clientid4 client) { ReturnAll(client); }

  // Starts recalling every layout of `file` (all clients, or all but `except`): each holder's
  // seqid is advanced and listed, and LAYOUTGETs of the file get RECALLCONFLICT until
  // EndRecall. Holders' layouts stay recorded until they return them (or are dropped).
  std::vector<RecallTarget> BeginRecall(uint64_t file, clientid4 except = 0);
  void EndRecall(uint64_t file);
  // LAYOUTGETs of `file` get RECALLCONFLICT until the matching EndRecall (a change of the
  // file's layout in progress), without recalling anything.
  void Block(uint64_t file);
  bool Recalling(uint64_t file) const;
  // Clients holding a layout of `file` (with the iomodes, kIo* bits).
  std::map<clientid4, uint32_t> Holders(uint64_t file) const;
  // Files `client` holds layouts of.
  std::vector<uint64_t> FilesOf(clientid4 client) const;
  size_t size() const;

 private:
  internal::LayoutShard& ForFile(uint64_t file) const;
  internal::LayoutShard& ForStateid(const StateidParts& p) const;

  const uint32_t epoch_;
  std::unique_ptr<internal::LayoutShard> shards_[kStateShards];
};

}  // namespace loom::nfs4
