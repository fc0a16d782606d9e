// NFSv4.1 client records and sessions (RFC 8881 §2.4, §2.10, §18.35-18.37, §18.46).
//
// SessionTable owns every client record (EXCHANGE_ID), session (CREATE_SESSION) and slot
// table, and enforces the exactly-once semantics of SEQUENCE: a slot's sequence id equal to
// the last one is a retransmission answered from the slot's reply cache, the next one is a
// new request, anything else is NFS4ERR_SEQ_MISORDERED. Leases are renewed by SEQUENCE and
// expired by Reap(). Thread-safe (one mutex; callers hold no lock across calls).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "rpc/client.h"
#include "xdr/nfs4.h"

namespace loom::nfs4 {

using SessionId = std::array<uint8_t, NFS4_SESSIONID_SIZE>;

struct ChannelLimits {
  uint32_t max_request = 1u << 20;
  uint32_t max_response = 1u << 20;
  uint32_t max_response_cached = 64u << 10;
  uint32_t max_ops = 64;
  uint32_t max_slots = 64;
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
  std::shared_ptr<rpc::BackChannel> back_channel;  // null until the client binds one
  uint32_t cb_seqid = 0;                           // CB_SEQUENCE sequence on back slot 0
  bool cb_down = false;                            // the last callback attempt failed
};

struct ClientRecord {
  clientid4 id = 0;
  std::string owner;          // co_ownerid
  verifier4 verifier{};       // co_verifier: changes when the client reboots
  std::string principal;      // who created it (AUTH_SYS uid@machine)
  bool confirmed = false;
  sequenceid4 create_seq = 1;  // the csa_sequence the next CREATE_SESSION must carry
  // The last CREATE_SESSION result, for replays (§18.36.4: csa_sequence == create_seq - 1).
  std::shared_ptr<const CREATE_SESSION4res> last_create;
  bool reclaim_complete = false;
  int64_t lease_expiry_ms = 0;
  std::vector<SessionId> sessions;
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
  };
  explicit SessionTable(Options o) : opts_(std::move(o)) {}

  // EXCHANGE_ID (§18.35). `principal` identifies the caller's credential.
  nfsstat4 ExchangeId(const EXCHANGE_ID4args& a, const std::string& principal,
                      EXCHANGE_ID4resok* res);
  // CREATE_SESSION (§18.36). `conn` becomes the back channel when requested.
  nfsstat4 CreateSession(const CREATE_SESSION4args& a, const std::string& principal,
                         const std::shared_ptr<rpc::Connection>& conn,
                         CREATE_SESSION4resok* res);
  nfsstat4 DestroySession(const SessionId& id);
  nfsstat4 DestroyClientId(clientid4 id);
  nfsstat4 BindConnToSession(const BIND_CONN_TO_SESSION4args& a,
                             const std::shared_ptr<rpc::Connection>& conn,
                             BIND_CONN_TO_SESSION4resok* res);
  nfsstat4 ReclaimComplete(clientid4 id);
  // SEQUENCE (§18.46): validates and claims the slot. On NFS4_OK without `replay`, the caller
  // executes the compound and then must call Complete() with the encoded reply.
  SequenceResult Sequence(const SEQUENCE4args& a, size_t request_bytes, size_t nops);
  void Complete(const SessionId& sid, slotid4 slot, std::shared_ptr<const std::string> reply,
                bool cache);
  // Renews a client's lease; false when the client is unknown (expired or never existed).
  bool Renew(clientid4 id);
  bool Confirmed(clientid4 id);
  bool Known(clientid4 id);
  // The client's co_ownerid and verifier; false if unknown.
  bool OwnerOf(clientid4 id, std::string* owner, verifier4* verf = nullptr);
  // Expires clients whose lease ran out; calls on_expire(clientid) for each (to drop state).
  void Reap(const std::function<void(clientid4)>& on_expire);
  // The back channel of one of the client's sessions, or null.
  std::shared_ptr<rpc::BackChannel> BackChannelOf(clientid4 id, SessionId* sid, uint32_t* seq,
                                                  uint32_t* cb_program = nullptr);
  // Records whether a callback over the session's back channel worked (CB_PATH_DOWN).
  void SetCallbackPath(const SessionId& sid, bool ok);
  size_t clients() const;

 private:
  ClientRecord* FindLocked(clientid4 id);
  Session* FindSessionLocked(const SessionId& id);
  void DestroySessionLocked(const SessionId& id);
  void ExpireLocked(clientid4 id);
  channel_attrs4 Negotiate(const channel_attrs4& want, bool fore) const;

  const Options opts_;
  mutable std::mutex mu_;
  uint32_t next_client_ = 1;
  uint32_t next_session_ = 1;
  std::map<clientid4, ClientRecord> clients_;
  std::map<SessionId, Session> sessions_;
};

}  // namespace loom::nfs4
