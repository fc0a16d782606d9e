// NFSv4.1 open and byte-range lock state (RFC 8881 §8, §9): stateids, share reservations,
// OPEN / OPEN_DOWNGRADE / CLOSE, LOCK / LOCKT / LOCKU, FREE_STATEID, TEST_STATEID and the
// cleanup of an expired client. Files are plain uint64 ids: this layer knows nothing of the
// namespace. Delegation and layout stateids share the encoding (MakeStateid) but are kept by
// their own managers.
//
// Thread-safe. The state is split into kStateShards shards by file, each behind its own mutex:
// every operation on a file's state (OPEN, CLOSE, LOCK, the stateid checks of READ/WRITE/
// SETATTR) takes one shard's lock, so requests on different files do not serialise on one
// global mutex. A stateid names its shard (the low bits of its counter), so operations that
// have only a stateid (FREE_STATEID, TEST_STATEID, revocation) find it without a file. Only
// whole-client operations (lease expiry, DESTROY_CLIENTID) visit every shard. No call blocks
// or calls out while holding a lock (the last-close callback runs after it is released).
#pragma once

#include <cstdint>
#include <atomic>
#include <functional>
#include <memory>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "xdr/nfs4.h"

namespace loom::nfs4 {

// ---------------------------------------------------------------------------------------
// Stateids (§8.2). `other` (12 bytes) is laid out as
//   [0]      StateKind tag (never 0x00 or 0xFF, so no stateid looks special)
//   [1..4]   boot epoch, big-endian: stateids of an earlier server instance never resolve
//   [5..11]  a 56-bit counter, big-endian, unique within the epoch
// `seqid` starts at 1 and is bumped on every change to the state (§8.2.2), 0 is skipped on
// wrap-around.

enum class StateKind : uint8_t { kOpen = 1, kLock = 2, kDelegation = 3, kLayout = 4 };

struct StateidParts {
  StateKind kind{};
  uint32_t epoch = 0;
  uint64_t counter = 0;  // < 2^56
};

stateid4 MakeStateid(StateKind kind, uint32_t epoch, uint64_t counter, uint32_t seqid);
// False for special stateids and for `other` values with an unknown tag.
bool DecodeStateid(const stateid4& s, StateidParts* out);

// Special stateids (§8.2.3).
stateid4 AnonymousStateid();   // seqid 0, other all zeros
stateid4 ReadBypassStateid();  // seqid all ones, other all ones
stateid4 CurrentStateid();     // seqid 1, other all zeros: substituted by COMPOUND
stateid4 InvalidStateid();     // seqid all ones, other all zeros: what CLOSE returns
bool IsAnonymousStateid(const stateid4& s);
bool IsReadBypassStateid(const stateid4& s);
bool IsCurrentStateid(const stateid4& s);
bool IsInvalidStateid(const stateid4& s);
// `other` is all zeros or all ones (whatever the seqid).
bool IsSpecialStateid(const stateid4& s);
// The next seqid after `seqid` (§8.2.2: NFS4_UINT32_MAX is followed by 1).
uint32_t NextSeqid(uint32_t seqid);

// ---------------------------------------------------------------------------------------

// Which stateids an operation takes (§8.2.4: anything else is NFS4ERR_BAD_STATEID).
enum class Accept : uint8_t {
  kOpen,  // CLOSE, OPEN_DOWNGRADE, LOCK with open_to_lock_owner4
  kLock,  // LOCKU, LOCK with exist_lock_owner4
  kIo,    // READ, WRITE, SETATTR(size), ...: open or lock stateids, anonymous, READ bypass
};

// The access an I/O needs from the open behind a stateid.
enum class Access : uint8_t { kNone, kRead, kWrite };

// What a stateid resolved to.
struct Resolved {
  bool special = false;       // the anonymous or READ-bypass stateid
  StateKind kind{};           // kOpen or kLock when !special
  stateid4 current{};         // the stateid with its current seqid
  stateid4 open{};            // the open stateid (itself, or the open a lock state came from)
  uint32_t share_access = 0;  // of that open
  uint32_t share_deny = 0;
};

// An OPEN's effect on state (§18.16); the OPEN operation itself (claims, create, truncate,
// delegations, grace) lives above. `owner` is open_owner4.owner: with sessions the clientid
// inside open_owner4 is ignored, the session's client ID is used (§18.16.3).
struct OpenRequest {
  clientid4 client = 0;
  std::string owner;
  uint64_t file = 0;
  uint32_t share_access = 0;  // OPEN4_SHARE_ACCESS_*; WANT_* delegation bits are ignored here
  uint32_t share_deny = 0;    // OPEN4_SHARE_DENY_*
  bool reclaim = false;       // CLAIM_PREVIOUS: recorded only; the caller enforces grace
};

struct StateOptions {
  uint32_t boot_epoch = 0;  // different on every server start
  // Called (without locks held) when the last open of a file goes away: CLOSE, DropClient,
  // revocation. May be empty. A new OPEN may race with the call: check IsOpen() before acting
  // on it.
  std::function<void(uint64_t file)> on_last_close;
};

inline constexpr uint32_t kStateShards = 16;
// The shard of a file's open, lock and layout state.
inline uint32_t FileShard(uint64_t file) {
  return static_cast<uint32_t>((file * 0x9E3779B97F4A7C15ull) >> 60);
}

namespace internal {

// The state of the files of one shard. Its stateids' counters are `shard` modulo
// kStateShards. StateManager (below) documents the operations.
class StateShard {
 public:
  StateShard(const StateOptions* o, uint32_t shard) : opts_(*o), shard_(shard) {}
  StateShard(const StateShard&) = delete;
  StateShard& operator=(const StateShard&) = delete;

  nfsstat4 Resolve(const stateid4& sid, clientid4 caller, uint64_t file, Accept accept,
                   Access want, Resolved* out = nullptr) const;

  nfsstat4 CheckIo(const stateid4& sid, clientid4 caller, uint64_t file, bool write,
                   bool* write_open = nullptr) const;

  nfsstat4 Open(const OpenRequest& r, stateid4* out);
  nfsstat4 OpenDowngrade(clientid4 caller, uint64_t file, const OPEN_DOWNGRADE4args& a,
                         stateid4* out);
  nfsstat4 Close(clientid4 caller, uint64_t file, const stateid4& open, stateid4* out);

  nfsstat4 Lock(clientid4 caller, uint64_t file, const LOCK4args& a, stateid4* out,
                LOCK4denied* denied);
  nfsstat4 LockTest(clientid4 caller, uint64_t file, const LOCKT4args& a,
                    LOCK4denied* denied) const;
  nfsstat4 Unlock(clientid4 caller, uint64_t file, const LOCKU4args& a, stateid4* out);

  nfsstat4 FreeStateid(clientid4 caller, const stateid4& sid);
  nfsstat4 TestStateid(clientid4 caller, const stateid4& sid) const;

  std::vector<uint64_t> DropClient(clientid4 client);
  nfsstat4 Revoke(const stateid4& sid, nfsstat4 why);
  void RevokeClient(clientid4 client, nfsstat4 why);
  bool HasRevoked(clientid4 client) const;
  bool HasState(clientid4 client) const;

  bool IsOpen(uint64_t file) const;
  bool ClientHasOpen(clientid4 client, uint64_t file) const;
  size_t size() const;

 private:
  struct State {
    StateKind kind{};
    uint64_t id = 0;  // the counter in `other`
    uint32_t seqid = 1;
    clientid4 client = 0;
    uint64_t file = 0;
    std::string owner;           // open-owner or lock-owner bytes
    nfsstat4 revoked = NFS4_OK;  // != OK: a tombstone kept until FREE_STATEID
    // kOpen
    uint32_t access = 0;
    uint32_t deny = 0;
    bool reclaimed = false;
    std::vector<uint64_t> lock_states;  // lock states opened through this open
    // kLock
    uint64_t open = 0;
  };
  // One byte-range lock: [start, end] inclusive; end == UINT64_MAX means "to EOF".
  struct Range {
    uint64_t owner = 0;  // the lock state's id (one per lock owner and file)
    uint64_t start = 0;
    uint64_t end = 0;
    bool write = false;
  };
  struct FileState {
    std::vector<uint64_t> opens;  // live open states
    std::vector<Range> locks;
  };
  using OwnerKey = std::tuple<clientid4, uint64_t, std::string>;  // client, file, owner

  stateid4 StateidOf(const State& s) const;
  // The §8.2.4 checks for a non-special stateid: `file` null skips the file check, `kinds`
  // (bits 1 << StateKind) 0 skips the kind check, `check_seqid` false the seqid check.
  // *out is the state whenever it exists and is the caller's (so also when revoked).
  nfsstat4 FindLocked(const stateid4& sid, clientid4 caller, const uint64_t* file,
                      uint32_t kinds, bool check_seqid, State** out) const;
  nfsstat4 ResolveSpecialLocked(const stateid4& sid, uint64_t file, Accept accept,
                                Access want, Resolved* out) const;
  State& NewStateLocked(StateKind kind, clientid4 client, uint64_t file, std::string owner);
  // The first lock of another owner on `file` that conflicts with [start, end].
  const Range* ConflictLocked(uint64_t file, uint64_t owner, uint64_t start, uint64_t end,
                              bool write) const;
  void FillDenied(const Range& r, LOCK4denied* d) const;
  bool HasLocksLocked(uint64_t lock_state) const;
  void SetLockLocked(uint64_t file, uint64_t owner, uint64_t start, uint64_t end, bool write);
  void ClearLocksLocked(uint64_t file, uint64_t owner, uint64_t start, uint64_t end);
  // Releases what a live state holds (share reservation, locks, owner index entries; an
  // open's lock states too). Files whose last open went away are appended to `closed`.
  // With `why` == NFS4_OK the states are erased, otherwise they stay as tombstones.
  void ReleaseLocked(State& s, nfsstat4 why, std::vector<uint64_t>* closed);
  void EraseLocked(uint64_t id);
  void NotifyClosed(const std::vector<uint64_t>& files) const;

  const StateOptions& opts_;
  const uint32_t shard_;
  mutable std::mutex mu_;
  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, State> states_;
  std::unordered_map<uint64_t, FileState> files_;
  std::map<OwnerKey, uint64_t> open_index_;  // live open state per (client, file, owner)
  std::map<OwnerKey, uint64_t> lock_index_;  // live lock state per (client, file, owner)
  std::unordered_map<clientid4, std::unordered_set<uint64_t>> by_client_;
};

}  // namespace internal

class StateManager {
 public:
  using Options = StateOptions;
  explicit StateManager(Options o);
  explicit StateManager(uint32_t boot_epoch) : StateManager(Options{boot_epoch, nullptr}) {}
  StateManager(const StateManager&) = delete;
  StateManager& operator=(const StateManager&) = delete;
  ~StateManager();


  // Validates `sid` for an operation on `file` by `caller` (§8.2.4), in this order:
  //   special stateids: anonymous and READ bypass only for kIo (bypass WRITE is treated as
  //     anonymous); either one is NFS4ERR_LOCKED when another open denies the access; any
  //     other special value (the current stateid included) is NFS4ERR_BAD_STATEID;
  //   unknown, earlier boot epoch, another file or another client: NFS4ERR_BAD_STATEID
  //     (§15.1.16.7: STALE_STATEID is moot in 4.1, a restart is seen by SEQUENCE);
  //   revoked: NFS4ERR_EXPIRED or NFS4ERR_ADMIN_REVOKED;
  //   a kind `accept` does not take: NFS4ERR_BAD_STATEID;
  //   seqid 0 means "current"; otherwise newer than current is NFS4ERR_BAD_STATEID and
  //     older is NFS4ERR_OLD_STATEID;
  //   kIo with an open lacking the access: NFS4ERR_OPENMODE (READ is allowed on a write-only
  //     open, as Linux nfsd does: clients read to fill partial pages).
  nfsstat4 Resolve(const stateid4& sid, clientid4 caller, uint64_t file, Accept accept,
                   Access want, Resolved* out = nullptr) const;

  // Resolve for READ (write false) or WRITE / SETATTR of the size (write true) with
  // Accept::kIo. *write_open (optional) tells whether `sid` is an open or lock stateid whose
  // open has WRITE access, as opposed to a special stateid or a read-only open: what grace
  // decisions need (special stateids must wait out the grace period).
  nfsstat4 CheckIo(const stateid4& sid, clientid4 caller, uint64_t file, bool write,
                   bool* write_open = nullptr) const;

  // OPEN (§18.16, §9.7): the open stateid of (client, owner, file), created with seqid 1 or
  // upgraded (access and deny OR'ed in, seqid bumped). NFS4ERR_SHARE_DENIED when the result
  // conflicts with another open of the file (any other owner, any client); NFS4ERR_INVAL for
  // access not in READ/WRITE/BOTH or deny not in NONE..BOTH. On error nothing changes.
  nfsstat4 Open(const OpenRequest& r, stateid4* out);
  // OPEN_DOWNGRADE (§18.18): access and deny must be subsets of what is held (and access not
  // empty) or NFS4ERR_INVAL. The seqid argument (a 4.0 owner seqid) is ignored in 4.1.
  nfsstat4 OpenDowngrade(clientid4 caller, uint64_t file, const OPEN_DOWNGRADE4args& a,
                         stateid4* out);
  // CLOSE (§18.2): NFS4ERR_LOCKS_HELD while a lock state of this open holds locks; otherwise
  // frees the open and its (empty) lock states and returns InvalidStateid() (§18.2.4).
  nfsstat4 Close(clientid4 caller, uint64_t file, const stateid4& open, stateid4* out);

  // LOCK (§18.10). A new lock owner (open_to_lock_owner4) names an open stateid of `file`;
  // the lock owner's existing lock stateid for the file is reused if it has one. The
  // lock_seqid / open_seqid arguments are ignored (4.1). Blocking types (READW/WRITEW) are
  // answered like the others: NFS4ERR_DENIED with `denied` describing one conflicting lock.
  // NFS4ERR_INVAL for length 0 or offset + length > NFS4_UINT64_MAX (length all ones = to
  // EOF); NFS4ERR_OPENMODE for WRITE_LT on an open without WRITE access or READ_LT without
  // READ access. Locks merge with the owner's adjacent locks of the same type and replace
  // (splitting as needed) its locks of the other type: upgrade and downgrade are atomic.
  nfsstat4 Lock(clientid4 caller, uint64_t file, const LOCK4args& a, stateid4* out,
                LOCK4denied* denied);
  // LOCKT (§18.11): NFS4_OK or NFS4ERR_DENIED with a conflicting lock; locks held by the
  // lock owner (caller, a.owner.owner) itself never conflict. a.owner.clientid is ignored.
  nfsstat4 LockTest(clientid4 caller, uint64_t file, const LOCKT4args& a,
                    LOCK4denied* denied) const;
  // LOCKU (§18.12): releases [offset, offset+length) of the lock owner's locks (any type,
  // splitting ranges; an unlocked range is not an error); returns the bumped lock stateid.
  nfsstat4 Unlock(clientid4 caller, uint64_t file, const LOCKU4args& a, stateid4* out);

  // FREE_STATEID (§18.38): frees a lock stateid without locks, or any revoked stateid.
  // NFS4ERR_LOCKS_HELD for a lock stateid with locks and for a live open stateid (CLOSE it).
  // No current filehandle is involved and the seqid is not checked.
  nfsstat4 FreeStateid(clientid4 caller, const stateid4& sid);
  // TEST_STATEID (§18.48): the status Resolve would give without the file and kind checks;
  // special stateids are NFS4ERR_BAD_STATEID.
  nfsstat4 TestStateid(clientid4 caller, const stateid4& sid) const;
  std::vector<nfsstat4> TestStateids(clientid4 caller, const std::vector<stateid4>& s) const;

  // Drops every open, lock and revoked stateid of `client` (lease expired, DESTROY_CLIENTID,
  // client reboot). Returns the files whose last open went away; on_last_close, when set,
  // is also called for each of them (use one or the other).
  std::vector<uint64_t> DropClient(clientid4 client);
  // Revokes one open or lock stateid (`why`: NFS4ERR_ADMIN_REVOKED or NFS4ERR_EXPIRED): its
  // share reservation and locks are released at once (an open takes its lock states along),
  // and the stateid answers `why` until the client frees it with FREE_STATEID.
  nfsstat4 Revoke(const stateid4& sid, nfsstat4 why);
  // Revokes all of a client's state the same way (a courteous server's lease expiry).
  void RevokeClient(clientid4 client, nfsstat4 why);
  // Whether the client has revoked stateids not yet freed (SEQ4_STATUS_*_STATE_REVOKED).
  bool HasRevoked(clientid4 client) const;
  // Whether the client holds any stateid, revoked ones included (EXCHANGE_ID §18.35.4 case 3).
  bool HasState(clientid4 client) const;

  // Whether any open of `file` exists (orphan handling: an unlinked file stays while open).
  bool IsOpen(uint64_t file) const;
  // Whether `client` has an open of `file` (return-on-close of its layouts).
  bool ClientHasOpen(clientid4 client, uint64_t file) const;
  // Stateids kept, revoked ones included (for tests and counters).
  size_t size() const;

 private:
  internal::StateShard& ForFile(uint64_t file) const;
  // The shard a stateid's counter names (shard 0 for one that does not decode: it then
  // resolves nowhere, as an unknown stateid should).
  internal::StateShard& ForStateid(const stateid4& sid) const;

  const Options opts_;
  std::unique_ptr<internal::StateShard> shards_[kStateShards];
  // Set once anything was revoked: until then no client has revoked state, and SEQUENCE's
  // HasRevoked answers without visiting the shards.
  std::atomic<bool> any_revoked_{false};
};

}  // namespace loom::nfs4
