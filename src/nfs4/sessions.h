// NFSv4.1 client records and sessions (RFC 8881 §2.4, §2.10, §18.35-18.37, §18.46).
//
// SessionTable owns every client record (EXCHANGE_ID), session (CREATE_SESSION) and slot
// table, and enforces the exactly-once semantics of SEQUENCE: a slot's sequence id equal to
// the last one is a retransmission answered from the slot's reply cache, the next one is a
// new request, anything else is NFS4ERR_SEQ_MISORDERED. Leases are renewed by SEQUENCE and
// expired by Reap(). Thread-safe: a reader-writer lock guards the tables. SEQUENCE and the
// completion of its COMPOUND (the per-request path) take it shared, with a striped lock per
// slot and an atomic lease, so requests of different sessions and slots do not serialise;
// everything that adds, removes or reconfigures clients and sessions takes it exclusive. No
// callback (a back-channel call's completion) ever runs while it is held.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "rpc/client.h"
#include "rpc/event_loop.h"  // NowMs
#include "xdr/nfs4.h"

namespace loom::nfs4 {

using SessionId = std::array<uint8_t, NFS4_SESSIONID_SIZE>;

// Sizes as ca_maxrequestsize and ca_maxresponsesize count them (§18.36.3: RPC headers
// included, record marking not).
constexpr uint32_t kRpcCallHeaderMin = 40;  // xid, type, rpcvers, prog, vers, proc, AUTH_NONE cred, verifier
constexpr uint32_t kRpcReplyHeader = 24;    // xid, type, reply_stat, AUTH_NONE verifier, accept_stat

// The smallest channels that can work; asking for less is NFS4ERR_TOOSMALL (§18.36.3).
// Fore channel: one SEQUENCE + PUTROOTFH + GETATTR compound must fit.
//   request:  40 (RPC) + 12 (tag, minorversion, count) + 36 (SEQUENCE) + 4 (PUTROOTFH)
//             + 16 (GETATTR of a two-word bitmap) = 108
//   response: 24 (RPC) + 12 (status, tag, count) + 44 (SEQUENCE) + the PUTROOTFH and GETATTR
//             reply bounds of the op table (8 + 2048) = 2136 (ChannelLimits::min_fore_response,
//             which loom-mds computes from its op table)
//   operations: 3. Linux asks 1 MiB + 904 bytes of response, 7.5 KiB cached and 8 operations.
// Back channel: CB_COMPOUND with CB_SEQUENCE and CB_RECALL (the largest callback we send):
//   request:  40 + 16 (tag, minorversion, callback_ident, count) + 40 (CB_SEQUENCE)
//             + 156 (CB_RECALL with a 128-byte handle) = 252
//   response: 24 + 12 + 40 (CB_SEQUENCE) + 8 (CB_RECALL) = 84
//   operations: 2. Linux asks a page each way and 2 operations.
// ca_maxresponsesize_cached has no minimum: 0 means no reply is cached.
constexpr uint32_t kMinForeRequest = 108;
constexpr uint32_t kMinForeOps = 3;
constexpr uint32_t kMinBackRequest = 252;
constexpr uint32_t kMinBackResponse = 84;
constexpr uint32_t kMinBackOps = 2;

// What the server grants at most: a client asking more gets these (§18.36.3 lets the server
// lower what the client asks, never raise it).
struct ChannelLimits {
  uint32_t max_request = 1u << 20;
  uint32_t max_response = 1u << 20;
  uint32_t max_response_cached = 64u << 10;
  uint32_t max_ops = 64;
  uint32_t max_slots = 64;
  uint32_t min_fore_response = kRpcReplyHeader + 12 + 44 + 8 + 2048;
};

struct Slot {
  uint32_t seqid = 0;
  bool busy = false;                      // a request on this slot is executing
  std::shared_ptr<const std::string> reply;  // cached COMPOUND4res body, if cached
};

struct Session {
  SessionId id{};
  clientid4 client = 0;
  channel_attrs4 fore{};
  channel_attrs4 back{};
  uint32_t flags = 0;
  uint32_t cb_program = 0;
  std::vector<Slot> slots;
  // The back channel of the connection the client bound (shared by every session bound to
  // that connection, §2.10.3.1); null until the client binds one.
  std::shared_ptr<rpc::BackChannel> back_channel;
  uint64_t reserved = 0;  // bytes of the server's reply-cache budget held by the slots
  uint32_t cb_seqid = 0;                           // CB_SEQUENCE sequence on back slot 0
  // The minor version of the COMPOUND that made the session: callbacks carry it in
  // CB_COMPOUND (Linux looks the session up by minor version and answers BADSESSION to another).
  uint32_t minor = 1;
  bool cb_down = false;                            // the last callback attempt failed
};

struct ClientRecord {
  clientid4 id = 0;
  std::string owner;          // co_ownerid
  verifier4 verifier{};       // co_verifier: changes when the client reboots
  std::string principal;      // who created it (AUTH_SYS uid@machine)
  bool confirmed = false;
  bool confirming = false;  // CREATE_SESSION is making the record durable right now
  sequenceid4 create_seq = 1;  // the csa_sequence the next CREATE_SESSION must carry
  // The last CREATE_SESSION result, for replays (§18.36.4: csa_sequence == create_seq - 1).
  std::shared_ptr<const CREATE_SESSION4res> last_create;
  bool reclaim_complete = false;
  int64_t lease_expiry_ms = 0;  // through SessionTable::RenewLease / LeaseOf (atomic)
  std::vector<SessionId> sessions;
  // eia_client_impl_id's nii_name, if sent (Linux: "Linux <release> <version> <machine>"):
  // tells which layouts the client can decode.
  std::string impl_name;
};

// What SEQUENCE decided.
struct SequenceResult {
  nfsstat4 status = NFS4_OK;
  // On a retransmission of a completed request: the cached reply to send as it is.
  std::shared_ptr<const std::string> replay;
  SEQUENCE4resok resok{};
  clientid4 client = 0;
  uint32_t max_response = 0;         // the session's ca_maxresponsesize
  uint32_t max_response_cached = 0;  // and ca_maxresponsesize_cached
};

class SessionTable {
 public:
  struct Options {
    uint32_t lease_seconds = 90;
    ChannelLimits limits;
    std::array<uint8_t, 8> server_owner_minor{};  // random per boot, in so_minor_id
    std::string server_owner_major = "loom-mds";
    std::string server_scope = "loom";
    uint32_t boot_epoch = 0;  // high half of every clientid: a restart makes old ones stale
    // Bytes all slots of all sessions may hold in cached replies (each session reserves
    // slots x ca_maxresponsesize_cached; a session that does not fit gets fewer slots).
    uint64_t max_cached_reply_bytes = 256u << 20;
    // Whether a client holds open, lock or other state (EXCHANGE_ID case 3). Called with the
    // table's lock held: it must not call back into the table.
    std::function<bool(clientid4)> has_state;
    // EXCHANGE_ID answers USE_PNFS_MDS (layouts are handed out) rather than USE_NON_PNFS.
    bool pnfs = false;
  };
  // Sessions one client may have at a time; more is NFS4ERR_NOSPC.
  static constexpr uint32_t kMaxSessionsPerClient = 16;
  explicit SessionTable(Options o) : opts_(std::move(o)) {}

  // EXCHANGE_ID (§18.35). `principal` identifies the caller's credential. Client records this
  // replaces (§18.35.4 case 3: another principal, the old record holding no state) are
  // dropped and listed in *replaced, so that their durable records can go too.
  nfsstat4 ExchangeId(const EXCHANGE_ID4args& a, const std::string& principal,
                      EXCHANGE_ID4resok* res, std::vector<clientid4>* replaced = nullptr);

  // A CREATE_SESSION that confirms client record `id`: `replaced` are the confirmed records
  // of the same owner that go when it is confirmed (the client rebooted, §18.35.4 case 5).
  struct Confirmation {
    clientid4 id = 0;
    std::string owner;
    verifier4 verifier{};
    std::vector<clientid4> replaced;
  };
  // Makes a confirmation durable (§8.4.3) before anything changes in memory; an error fails
  // the CREATE_SESSION with nothing changed, so that the client's retry runs it again.
  using ConfirmHook = std::function<Status(const Confirmation&)>;
  // CREATE_SESSION (§18.36). With CREATE_SESSION4_FLAG_CONN_BACK_CHAN, `conn`'s back channel
  // (one per connection, shared by the sessions bound to it) becomes the session's. When
  // the call confirms the record, `confirm` runs without the table's lock held, and the
  // records it replaced are dropped and listed in *replaced (their open and lock state is
  // the caller's to drop).
  nfsstat4 CreateSession(const CREATE_SESSION4args& a, const std::string& principal,
                         const std::shared_ptr<rpc::Connection>& conn,
                         CREATE_SESSION4resok* res, const ConfirmHook& confirm = nullptr,
                         std::vector<clientid4>* replaced = nullptr);
  nfsstat4 DestroySession(const SessionId& id);
  nfsstat4 DestroyClientId(clientid4 id);
  nfsstat4 BindConnToSession(const BIND_CONN_TO_SESSION4args& a,
                             const std::shared_ptr<rpc::Connection>& conn,
                             BIND_CONN_TO_SESSION4resok* res);
  // The global RECLAIM_COMPLETE (rca_one_fs FALSE, §18.51).
  nfsstat4 ReclaimComplete(clientid4 id);
  // Whether the client sent the global RECLAIM_COMPLETE (before it, non-reclaim locking
  // operations are NFS4ERR_GRACE, §18.51.3).
  bool ReclaimCompleted(clientid4 id);
  // SEQUENCE (§18.46): validates and claims the slot. `request_bytes` is the whole request as
  // ca_maxrequestsize counts it (RPC header included). On NFS4_OK without `replay`, the
  // caller executes the compound and then must call Complete() with the encoded reply.
  SequenceResult Sequence(const SEQUENCE4args& a, size_t request_bytes, size_t nops);
  // A reply larger than the session's ca_maxresponsesize_cached is not cached even if asked.
  void Complete(const SessionId& sid, slotid4 slot, std::shared_ptr<const std::string> reply,
                bool cache);
  // Renews a client's lease; false when the client is unknown (expired or never existed).
  bool Renew(clientid4 id);
  bool Confirmed(clientid4 id);
  bool Known(clientid4 id);
  // The client's co_ownerid and verifier; false if unknown.
  bool OwnerOf(clientid4 id, std::string* owner, verifier4* verf = nullptr);
  // The client's implementation name from EXCHANGE_ID (empty if none was sent).
  std::string ImplName(clientid4 id);
  // Expires clients whose lease ran out; calls on_expire(clientid) for each (to drop state).
  void Reap(const std::function<void(clientid4)>& on_expire);
  // The back channel of one of the client's sessions, or null.
  std::shared_ptr<rpc::BackChannel> BackChannelOf(clientid4 id, SessionId* sid, uint32_t* seq,
                                                  uint32_t* cb_program = nullptr,
                                                  uint32_t* minor = nullptr);
  // Records the minor version a session was created with (CREATE_SESSION's COMPOUND).
  void SetMinorVersion(const SessionId& sid, uint32_t minor);
  // The back channel of one session, or null.
  std::shared_ptr<rpc::BackChannel> BackChannelOfSession(const SessionId& sid,
                                                         uint32_t* cb_program = nullptr);
  // Records whether a callback over the session's back channel worked (CB_PATH_DOWN).
  void SetCallbackPath(const SessionId& sid, bool ok);
  size_t clients() const;

 private:
  using BackChannels = std::vector<std::shared_ptr<rpc::BackChannel>>;
  ClientRecord* FindLocked(clientid4 id);
  Session* FindSessionLocked(const SessionId& id);
  // Removing sessions never runs callbacks under mu_ (a callback's completion may take it):
  // back channels no session uses any more are appended to `idle`, and the caller fails
  // their pending calls with FailIdle after releasing the lock.
  void DestroySessionLocked(const SessionId& id, BackChannels* idle);
  void ExpireLocked(clientid4 id, BackChannels* idle);
  static void FailIdle(const BackChannels& idle);
  nfsstat4 Negotiate(const channel_attrs4& want, bool fore, channel_attrs4* out) const;
  nfsstat4 CreateSessionLocked(std::unique_lock<std::shared_mutex>& l, const CREATE_SESSION4args& a,
                               const std::string& principal,
                               std::shared_ptr<rpc::BackChannel> bc, CREATE_SESSION4resok* res,
                               const ConfirmHook& confirm, std::vector<clientid4>* replaced,
                               BackChannels* idle);
  // The back channel of `conn`: the one already made for it, or a new one.
  std::shared_ptr<rpc::BackChannel> BackChannelFor(const std::shared_ptr<rpc::Connection>& conn);

  // A client's lease is renewed by SEQUENCE under the shared lock, so concurrently for
  // several sessions of one client: it is written and read atomically.
  // Renews it for the lease period from now.
  void RenewLease(ClientRecord& c) const {
    std::atomic_ref<int64_t>(c.lease_expiry_ms)
        .store(rpc::NowMs() + int64_t{opts_.lease_seconds} * 1000, std::memory_order_relaxed);
  }
  static int64_t LeaseOf(ClientRecord& c) {
    return std::atomic_ref<int64_t>(c.lease_expiry_ms).load(std::memory_order_relaxed);
  }
  // The lock of one slot's state (seqid, busy, cached reply) while the table is held shared.
  std::mutex& SlotMutex(const Session& s, slotid4 slot) const {
    uintptr_t h = reinterpret_cast<uintptr_t>(&s) * 0x9E3779B97F4A7C15ull + slot;
    return slot_mu_[(h * 0x9E3779B97F4A7C15ull) >> 58];
  }

  const Options opts_;
  mutable std::shared_mutex mu_;
  mutable std::array<std::mutex, 64> slot_mu_;
  uint32_t next_client_ = 1;
  uint32_t next_session_ = 1;
  uint64_t cached_bytes_ = 0;  // sum of Session::reserved
  std::map<clientid4, ClientRecord> clients_;
  std::map<SessionId, Session> sessions_;
  // One back channel per connection (RFC 8881 §2.10.3.1), so that replies to calls made for
  // any session on it are matched. Guarded by bc_mu_, which is never held with mu_.
  std::mutex bc_mu_;
  std::map<const rpc::Connection*, std::weak_ptr<rpc::BackChannel>> conn_back_;
};

}  // namespace loom::nfs4
