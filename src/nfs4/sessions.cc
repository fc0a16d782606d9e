#include "nfs4/sessions.h"

#include <algorithm>
#include <cstring>

#include "common/log.h"
#include "rpc/event_loop.h"
#include "rpc/server.h"

namespace loom::nfs4 {

namespace {
constexpr int kCallbackTimeoutMs = 10000;
}

ClientRecord* SessionTable::FindLocked(clientid4 id) {
  auto it = clients_.find(id);
  return it == clients_.end() ? nullptr : &it->second;
}

Session* SessionTable::FindSessionLocked(const SessionId& id) {
  auto it = sessions_.find(id);
  return it == sessions_.end() ? nullptr : &it->second;
}

nfsstat4 SessionTable::ExchangeId(const EXCHANGE_ID4args& a, const std::string& principal,
                                  EXCHANGE_ID4resok* res, std::vector<clientid4>* replaced) {
  // State protection: only SP4_NONE, or SP4_MACH_CRED answered with empty must-enforce and
  // must-allow sets (no operation is restricted to the machine credential).
  if (a.eia_state_protect.spa_how == SP4_SSV) return NFS4ERR_ENCR_ALG_UNSUPP;
  if (a.eia_flags & ~(EXCHGID4_FLAG_SUPP_MOVED_REFER | EXCHGID4_FLAG_SUPP_MOVED_MIGR |
                      EXCHGID4_FLAG_BIND_PRINC_STATEID | EXCHGID4_FLAG_USE_NON_PNFS |
                      EXCHGID4_FLAG_USE_PNFS_MDS | EXCHGID4_FLAG_USE_PNFS_DS |
                      EXCHGID4_FLAG_UPD_CONFIRMED_REC_A | EXCHGID4_FLAG_SUPP_FENCE_OPS))
    return NFS4ERR_INVAL;
  const std::string owner = a.eia_clientowner.co_ownerid.str();
  const verifier4& verf = a.eia_clientowner.co_verifier;
  std::lock_guard<std::shared_mutex> l(mu_);
  ClientRecord* confirmed = nullptr;
  ClientRecord* unconfirmed = nullptr;
  for (auto& [id, c] : clients_) {
    if (c.owner != owner) continue;
    (c.confirmed ? confirmed : unconfirmed) = &c;
  }
  ClientRecord* result = nullptr;
  bool update = (a.eia_flags & EXCHGID4_FLAG_UPD_CONFIRMED_REC_A) != 0;
  if (update) {
    // §18.35.4 cases 6-8: update of a confirmed record.
    if (!confirmed) return NFS4ERR_NOENT;
    if (confirmed->verifier != verf) return NFS4ERR_NOT_SAME;
    if (confirmed->principal != principal) return NFS4ERR_PERM;
    result = confirmed;
  } else if (confirmed && confirmed->verifier == verf && confirmed->principal == principal) {
    result = confirmed;  // case 2: the same client again
  } else {
    if (confirmed && confirmed->principal != principal) {
      // Case 3: another principal claims the owner. While the record holds state (sessions,
      // opens, locks) it keeps the owner; one that holds nothing is replaced now.
      if (!confirmed->sessions.empty() || (opts_.has_state && opts_.has_state(confirmed->id)))
        return NFS4ERR_CLID_INUSE;
      if (replaced) replaced->push_back(confirmed->id);
      clients_.erase(confirmed->id);  // no sessions: nothing else to release
      confirmed = nullptr;
    }
    // Cases 1, 4, 5: a new unconfirmed record (replacing any older unconfirmed one). A
    // confirmed record with another verifier (the client rebooted) stays until the new one is
    // confirmed by CREATE_SESSION.
    if (unconfirmed && unconfirmed->confirming) return NFS4ERR_DELAY;
    if (unconfirmed) clients_.erase(unconfirmed->id);
    ClientRecord c;
    c.id = (uint64_t{opts_.boot_epoch} << 32) | next_client_++;
    c.owner = owner;
    c.verifier = verf;
    c.principal = principal;
    RenewLease(c);
    result = &clients_.emplace(c.id, std::move(c)).first->second;
  }
  res->eir_clientid = result->id;
  res->eir_sequenceid = result->create_seq;
  // §13.1: a metadata server says USE_PNFS_MDS; Linux refuses MDS together with NON_PNFS.
  res->eir_flags = (opts_.pnfs ? EXCHGID4_FLAG_USE_PNFS_MDS : EXCHGID4_FLAG_USE_NON_PNFS) |
                   (result->confirmed ? EXCHGID4_FLAG_CONFIRMED_R : 0);
  if (!a.eia_client_impl_id.empty()) {
    const Bytes& n = a.eia_client_impl_id[0].nii_name;
    result->impl_name.assign(reinterpret_cast<const char*>(n.data), std::min<size_t>(n.size, 256));
  }
  res->eir_state_protect.spr_how = a.eia_state_protect.spa_how;
  res->eir_server_owner.so_minor_id = 0;
  std::memcpy(&res->eir_server_owner.so_minor_id, opts_.server_owner_minor.data(), 8);
  res->eir_server_owner.so_major_id = Bytes::Copy(opts_.server_owner_major);
  res->eir_server_scope = Bytes::Copy(opts_.server_scope);
  nfs_impl_id4 impl;
  impl.nii_domain = Bytes::Copy("loom.dev");
  impl.nii_name = Bytes::Copy("loom-mds");
  res->eir_server_impl_id.push_back(impl);
  return NFS4_OK;
}

nfsstat4 SessionTable::Negotiate(const channel_attrs4& want, bool fore,
                                 channel_attrs4* out) const {
  // §18.36.3: the server may lower what the client asks, never raise it; a channel too small
  // to carry the smallest useful compound (see kMin* in sessions.h) is NFS4ERR_TOOSMALL.
  const ChannelLimits& l = opts_.limits;
  uint32_t min_request = fore ? kMinForeRequest : kMinBackRequest;
  uint32_t min_response = fore ? l.min_fore_response : kMinBackResponse;
  uint32_t min_ops = fore ? kMinForeOps : kMinBackOps;
  if (want.ca_maxrequestsize < min_request || want.ca_maxresponsesize < min_response ||
      want.ca_maxoperations < min_ops || want.ca_maxrequests == 0)
    return NFS4ERR_TOOSMALL;
  channel_attrs4& c = *out;
  c = channel_attrs4{};
  c.ca_headerpadsize = 0;
  c.ca_maxrequestsize = std::min(want.ca_maxrequestsize, l.max_request);
  c.ca_maxresponsesize = std::min(want.ca_maxresponsesize, l.max_response);
  c.ca_maxresponsesize_cached = std::min(want.ca_maxresponsesize_cached, l.max_response_cached);
  c.ca_maxoperations = std::min(want.ca_maxoperations, l.max_ops);
  // The back channel: we send one callback at a time (slot 0).
  c.ca_maxrequests = fore ? std::min(want.ca_maxrequests, l.max_slots) : 1;
  return NFS4_OK;
}

std::shared_ptr<rpc::BackChannel> SessionTable::BackChannelFor(
    const std::shared_ptr<rpc::Connection>& conn) {
  std::lock_guard<std::mutex> l(bc_mu_);
  for (auto it = conn_back_.begin(); it != conn_back_.end();) {
    it = it->second.expired() ? conn_back_.erase(it) : std::next(it);
  }
  // A live entry keeps its connection alive (BackChannel holds it), so the address cannot
  // have been reused by another connection.
  auto it = conn_back_.find(conn.get());
  if (it != conn_back_.end()) {
    if (auto bc = it->second.lock()) return bc;
  }
  auto bc = rpc::MakeBackChannel(conn, kCallbackTimeoutMs);
  conn_back_[conn.get()] = bc;
  return bc;
}

void SessionTable::FailIdle(const BackChannels& idle) {
  for (const auto& bc : idle) bc->FailAll(Status::Unavailable("session destroyed"));
}

nfsstat4 SessionTable::CreateSession(const CREATE_SESSION4args& a, const std::string& principal,
                                     const std::shared_ptr<rpc::Connection>& conn,
                                     CREATE_SESSION4resok* res, const ConfirmHook& confirm,
                                     std::vector<clientid4>* replaced) {
  std::shared_ptr<rpc::BackChannel> bc;
  if ((a.csa_flags & CREATE_SESSION4_FLAG_CONN_BACK_CHAN) && conn) bc = BackChannelFor(conn);
  BackChannels idle;
  nfsstat4 st;
  {
    std::unique_lock<std::shared_mutex> l(mu_);
    st = CreateSessionLocked(l, a, principal, std::move(bc), res, confirm, replaced, &idle);
  }
  FailIdle(idle);
  return st;
}

nfsstat4 SessionTable::CreateSessionLocked(std::unique_lock<std::shared_mutex>& l,
                                           const CREATE_SESSION4args& a,
                                           const std::string& principal,
                                           std::shared_ptr<rpc::BackChannel> bc,
                                           CREATE_SESSION4resok* res, const ConfirmHook& confirm,
                                           std::vector<clientid4>* replaced, BackChannels* idle) {
  ClientRecord* c = FindLocked(a.csa_clientid);
  if (!c) return NFS4ERR_STALE_CLIENTID;
  if (c->principal != principal) return NFS4ERR_CLID_INUSE;
  if (c->confirming) return NFS4ERR_DELAY;  // the same request, still making it durable
  // §18.36.4: the sequence id detects replays of CREATE_SESSION itself.
  if (a.csa_sequence + 1 == c->create_seq && c->last_create) {
    if (c->last_create->csr_status != NFS4_OK) return c->last_create->csr_status;
    *res = c->last_create->csr_resok4;
    return NFS4_OK;
  }
  if (a.csa_sequence != c->create_seq) return NFS4ERR_SEQ_MISORDERED;
  Session s;
  nfsstat4 st = Negotiate(a.csa_fore_chan_attrs, true, &s.fore);
  if (st == NFS4_OK) st = Negotiate(a.csa_back_chan_attrs, false, &s.back);
  if (st != NFS4_OK) return st;
  if (c->sessions.size() >= kMaxSessionsPerClient) return NFS4ERR_NOSPC;
  // The slots' cached replies share one server-wide budget: a session that does not fit gets
  // fewer slots (§18.36.3 lets the server lower ca_maxrequests), none left is "try later".
  uint64_t per_slot = s.fore.ca_maxresponsesize_cached;
  if (per_slot > 0) {
    uint64_t left = opts_.max_cached_reply_bytes - std::min(cached_bytes_, opts_.max_cached_reply_bytes);
    s.fore.ca_maxrequests = static_cast<uint32_t>(std::min<uint64_t>(s.fore.ca_maxrequests, left / per_slot));
    if (s.fore.ca_maxrequests == 0) {
      LOG_WARN("loom-mds: reply cache budget (%llu bytes) spent: CREATE_SESSION delayed",
               (unsigned long long)opts_.max_cached_reply_bytes);
      return NFS4ERR_DELAY;
    }
  }
  s.reserved = per_slot * s.fore.ca_maxrequests;
  cached_bytes_ += s.reserved;
  if (!c->confirmed) {
    // Confirming a record replaces every confirmed record of the same owner (the client
    // rebooted, §18.35.4 case 5). The confirmation is made durable first, without the lock;
    // `confirming` turns concurrent attempts away meanwhile.
    Confirmation conf;
    conf.id = c->id;
    conf.owner = c->owner;
    conf.verifier = c->verifier;
    for (const auto& [id, o] : clients_)
      if (o.confirmed && o.owner == c->owner && id != c->id) conf.replaced.push_back(id);
    if (confirm) {
      c->confirming = true;
      l.unlock();
      Status ds = confirm(conf);
      l.lock();
      c = FindLocked(conf.id);
      if (c) c->confirming = false;
      if (!c || !ds.ok()) {
        cached_bytes_ -= s.reserved;
        if (!ds.ok()) {
          LOG_WARN("loom-mds: client record %016llx not saved: %s", (unsigned long long)conf.id,
                   ds.ToString().c_str());
          return NFS4ERR_SERVERFAULT;
        }
        return NFS4ERR_STALE_CLIENTID;
      }
    }
    for (clientid4 old : conf.replaced) ExpireLocked(old, idle);
    if (replaced) *replaced = conf.replaced;
    c->confirmed = true;
  }
  uint32_t n = next_session_++;
  std::memcpy(s.id.data(), &c->id, 8);
  std::memcpy(s.id.data() + 8, &n, 4);
  std::memcpy(s.id.data() + 12, &opts_.boot_epoch, 4);
  s.client = c->id;
  s.flags = 0;
  s.cb_program = a.csa_cb_program;
  if (bc) {
    s.back_channel = std::move(bc);
    s.flags |= CREATE_SESSION4_FLAG_CONN_BACK_CHAN;
  }
  s.slots.resize(s.fore.ca_maxrequests);
  LOG_INFO("session for client %016llx: fore channel req %u resp %u cached %u ops %u slots %u "
           "(asked resp %u cached %u)", (unsigned long long)c->id, s.fore.ca_maxrequestsize,
           s.fore.ca_maxresponsesize, s.fore.ca_maxresponsesize_cached, s.fore.ca_maxoperations,
           s.fore.ca_maxrequests, a.csa_fore_chan_attrs.ca_maxresponsesize,
           a.csa_fore_chan_attrs.ca_maxresponsesize_cached);
  res->csr_sessionid = s.id;
  res->csr_sequence = a.csa_sequence;
  res->csr_flags = s.flags;
  res->csr_fore_chan_attrs = s.fore;
  res->csr_back_chan_attrs = s.back;
  c->sessions.push_back(s.id);
  c->create_seq++;
  auto cached = std::make_shared<CREATE_SESSION4res>();
  cached->csr_status = NFS4_OK;
  cached->csr_resok4 = *res;
  c->last_create = std::move(cached);
  RenewLease(*c);
  sessions_.emplace(s.id, std::move(s));
  return NFS4_OK;
}

void SessionTable::DestroySessionLocked(const SessionId& id, BackChannels* idle) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  Session& s = it->second;
  cached_bytes_ -= std::min(cached_bytes_, s.reserved);
  if (ClientRecord* c = FindLocked(s.client)) {
    c->sessions.erase(std::remove(c->sessions.begin(), c->sessions.end(), id), c->sessions.end());
  }
  std::shared_ptr<rpc::BackChannel> bc = std::move(s.back_channel);
  sessions_.erase(it);
  // The connection's back channel may serve other sessions still: only an unused one has its
  // pending calls failed.
  if (!bc) return;
  for (const auto& [sid, other] : sessions_)
    if (other.back_channel == bc) return;
  idle->push_back(std::move(bc));
}

nfsstat4 SessionTable::DestroySession(const SessionId& id) {
  BackChannels idle;
  {
    std::lock_guard<std::shared_mutex> l(mu_);
    if (!FindSessionLocked(id)) return NFS4ERR_BADSESSION;
    DestroySessionLocked(id, &idle);
  }
  FailIdle(idle);
  return NFS4_OK;
}

nfsstat4 SessionTable::DestroyClientId(clientid4 id) {
  std::lock_guard<std::shared_mutex> l(mu_);
  ClientRecord* c = FindLocked(id);
  if (!c) return NFS4ERR_STALE_CLIENTID;
  if (c->confirming) return NFS4ERR_DELAY;
  if (!c->sessions.empty()) return NFS4ERR_CLIENTID_BUSY;  // §18.50.3
  clients_.erase(id);
  return NFS4_OK;
}

nfsstat4 SessionTable::BindConnToSession(const BIND_CONN_TO_SESSION4args& a,
                                         const std::shared_ptr<rpc::Connection>& conn,
                                         BIND_CONN_TO_SESSION4resok* res) {
  bool back = a.bctsa_dir == CDFC4_BACK || a.bctsa_dir == CDFC4_FORE_OR_BOTH ||
              a.bctsa_dir == CDFC4_BACK_OR_BOTH;
  if (!back && a.bctsa_dir != CDFC4_FORE) return NFS4ERR_INVAL;
  std::shared_ptr<rpc::BackChannel> bc = back && conn ? BackChannelFor(conn) : nullptr;
  BackChannels idle;
  {
    std::lock_guard<std::shared_mutex> l(mu_);
    Session* s = FindSessionLocked(a.bctsa_sessid);
    if (!s) return NFS4ERR_BADSESSION;
    res->bctsr_sessid = s->id;
    res->bctsr_use_conn_in_rdma_mode = false;
    res->bctsr_dir = !back                       ? CDFS4_FORE
                     : a.bctsa_dir == CDFC4_BACK ? CDFS4_BACK
                                                 : CDFS4_BOTH;
    if (bc && s->back_channel != bc) {
      std::shared_ptr<rpc::BackChannel> old = std::move(s->back_channel);
      s->back_channel = bc;
      s->flags |= CREATE_SESSION4_FLAG_CONN_BACK_CHAN;
      s->cb_down = false;  // a new path: the probe that follows tells
      bool used = false;
      for (const auto& [sid, other] : sessions_) used |= old && other.back_channel == old;
      if (old && !used) idle.push_back(std::move(old));
    }
  }
  FailIdle(idle);
  return NFS4_OK;
}

nfsstat4 SessionTable::ReclaimComplete(clientid4 id) {
  std::lock_guard<std::shared_mutex> l(mu_);
  ClientRecord* c = FindLocked(id);
  if (!c) return NFS4ERR_STALE_CLIENTID;
  if (c->reclaim_complete) return NFS4ERR_COMPLETE_ALREADY;
  c->reclaim_complete = true;
  return NFS4_OK;
}

bool SessionTable::ReclaimCompleted(clientid4 id) {
  std::lock_guard<std::shared_mutex> l(mu_);
  ClientRecord* c = FindLocked(id);
  return c && c->reclaim_complete;
}

// The hot path of every COMPOUND: the table's lock is taken shared (sessions and clients do not
// come and go meanwhile) and the slot's own stripe lock guards the slot; the lease is an
// atomic store. Sessions of different clients, and slots of one session, run in parallel.
SequenceResult SessionTable::Sequence(const SEQUENCE4args& a, size_t request_bytes, size_t nops) {
  SequenceResult r;
  std::shared_lock<std::shared_mutex> l(mu_);
  Session* s = FindSessionLocked(a.sa_sessionid);
  if (!s) {
    r.status = NFS4ERR_BADSESSION;
    return r;
  }
  if (a.sa_slotid >= s->slots.size()) {
    r.status = NFS4ERR_BADSLOT;
    return r;
  }
  if (request_bytes > s->fore.ca_maxrequestsize) {
    r.status = NFS4ERR_REQ_TOO_BIG;
    return r;
  }
  if (nops > s->fore.ca_maxoperations) {
    r.status = NFS4ERR_TOO_MANY_OPS;
    return r;
  }
  Slot& slot = s->slots[a.sa_slotid];
  std::unique_lock<std::mutex> slot_lock(SlotMutex(*s, a.sa_slotid));
  if (a.sa_sequenceid == slot.seqid) {
    // §2.10.6.1.3: a retransmission.
    if (slot.busy) {
      r.status = NFS4ERR_DELAY;
    } else if (slot.reply) {
      r.replay = slot.reply;
    } else {
      r.status = NFS4ERR_RETRY_UNCACHED_REP;
    }
    return r;
  }
  if (a.sa_sequenceid != slot.seqid + 1) {  // wraps at 2^32 as the RFC requires
    r.status = NFS4ERR_SEQ_MISORDERED;
    return r;
  }
  if (slot.busy) {
    r.status = NFS4ERR_DELAY;
    return r;
  }
  slot.busy = true;
  slot.seqid = a.sa_sequenceid;
  std::shared_ptr<const std::string> old = std::move(slot.reply);
  slot_lock.unlock();
  old.reset();  // the cached reply is freed outside the slot's lock
  ClientRecord* c = FindLocked(s->client);
  if (c) RenewLease(*c);
  r.client = s->client;
  r.max_response = s->fore.ca_maxresponsesize;
  r.max_response_cached = s->fore.ca_maxresponsesize_cached;
  SEQUENCE4resok& ok = r.resok;
  ok.sr_sessionid = s->id;
  ok.sr_sequenceid = a.sa_sequenceid;
  ok.sr_slotid = a.sa_slotid;
  ok.sr_highest_slotid = static_cast<slotid4>(s->slots.size() - 1);
  ok.sr_target_highest_slotid = ok.sr_highest_slotid;
  ok.sr_status_flags = 0;
  // §18.46.3: CB_PATH_DOWN means the client has no working back channel on any of its
  // sessions (callbacks go over whichever works, BackChannelOf), so a session made without
  // one is not told to fix a path the client has elsewhere. CB_PATH_DOWN_SESSION: this
  // session's own back channel, which the client asked for, does not work while another does.
  auto works = [](const Session& x) {
    return x.back_channel && x.back_channel->usable() && !x.cb_down;
  };
  bool any = works(*s);
  for (size_t i = 0; c && !any && i < c->sessions.size(); i++) {
    const Session* o = FindSessionLocked(c->sessions[i]);
    any = o && works(*o);
  }
  if (!any) ok.sr_status_flags |= SEQ4_STATUS_CB_PATH_DOWN;
  else if (s->back_channel && !works(*s)) ok.sr_status_flags |= SEQ4_STATUS_CB_PATH_DOWN_SESSION;
  return r;
}

void SessionTable::Complete(const SessionId& sid, slotid4 slot,
                            std::shared_ptr<const std::string> reply, bool cache) {
  std::shared_lock<std::shared_mutex> l(mu_);
  Session* s = FindSessionLocked(sid);
  if (!s || slot >= s->slots.size()) return;
  std::lock_guard<std::mutex> slot_lock(SlotMutex(*s, slot));
  s->slots[slot].busy = false;
  // The slot's share of the reply-cache budget is ca_maxresponsesize_cached: a larger reply
  // (the op table's bounds missed it) is not kept; a retransmission then gets
  // NFS4ERR_RETRY_UNCACHED_REP.
  if (cache && reply && reply->size() <= s->fore.ca_maxresponsesize_cached)
    s->slots[slot].reply = std::move(reply);
}

bool SessionTable::Renew(clientid4 id) {
  std::lock_guard<std::shared_mutex> l(mu_);
  ClientRecord* c = FindLocked(id);
  if (!c) return false;
  RenewLease(*c);
  return true;
}

bool SessionTable::Confirmed(clientid4 id) {
  std::lock_guard<std::shared_mutex> l(mu_);
  ClientRecord* c = FindLocked(id);
  return c && c->confirmed;
}

bool SessionTable::Known(clientid4 id) {
  std::lock_guard<std::shared_mutex> l(mu_);
  return FindLocked(id) != nullptr;
}

bool SessionTable::OwnerOf(clientid4 id, std::string* owner, verifier4* verf) {
  std::lock_guard<std::shared_mutex> l(mu_);
  ClientRecord* c = FindLocked(id);
  if (!c) return false;
  *owner = c->owner;
  if (verf) *verf = c->verifier;
  return true;
}

void SessionTable::ExpireLocked(clientid4 id, BackChannels* idle) {
  ClientRecord* c = FindLocked(id);
  if (!c) return;
  std::vector<SessionId> ss = c->sessions;
  for (const auto& s : ss) DestroySessionLocked(s, idle);
  clients_.erase(id);
}

void SessionTable::Reap(const std::function<void(clientid4)>& on_expire) {
  std::vector<clientid4> gone;
  BackChannels idle;
  {
    std::lock_guard<std::shared_mutex> l(mu_);
    int64_t now = rpc::NowMs();
    for (auto& [id, c] : clients_) {
      if (LeaseOf(c) >= now || c.confirming) continue;
      bool busy = false;
      for (const auto& sid : c.sessions) {
        Session* s = FindSessionLocked(sid);
        for (const Slot& sl : s->slots) busy |= sl.busy;
      }
      if (!busy) gone.push_back(id);
    }
    for (clientid4 id : gone) ExpireLocked(id, &idle);
  }
  FailIdle(idle);
  for (clientid4 id : gone) on_expire(id);
}

void SessionTable::SetMinorVersion(const SessionId& sid, uint32_t minor) {
  std::lock_guard<std::shared_mutex> l(mu_);
  if (Session* s = FindSessionLocked(sid)) s->minor = minor;
}

std::shared_ptr<rpc::BackChannel> SessionTable::BackChannelOf(clientid4 id, SessionId* sid,
                                                              uint32_t* seq, uint32_t* cb_program,
                                                              uint32_t* minor) {
  std::lock_guard<std::shared_mutex> l(mu_);
  ClientRecord* c = FindLocked(id);
  if (!c) return nullptr;
  // A path known to work first: one whose last callback failed (a client that does not
  // answer on that connection) only when there is no other.
  Session* pick = nullptr;
  for (const auto& s : c->sessions) {
    Session* ss = FindSessionLocked(s);
    if (!ss || !ss->back_channel || !ss->back_channel->usable()) continue;
    if (!pick || (pick->cb_down && !ss->cb_down)) pick = ss;
    if (!pick->cb_down) break;
  }
  if (!pick) return nullptr;
  *sid = pick->id;
  *seq = ++pick->cb_seqid;
  if (cb_program) *cb_program = pick->cb_program;
  if (minor) *minor = pick->minor;
  return pick->back_channel;
}

std::shared_ptr<rpc::BackChannel> SessionTable::BackChannelOfSession(const SessionId& sid,
                                                                     uint32_t* cb_program) {
  std::lock_guard<std::shared_mutex> l(mu_);
  Session* s = FindSessionLocked(sid);
  if (!s || !s->back_channel) return nullptr;
  if (cb_program) *cb_program = s->cb_program;
  return s->back_channel;
}

void SessionTable::SetCallbackPath(const SessionId& sid, bool ok) {
  std::lock_guard<std::shared_mutex> l(mu_);
  if (Session* s = FindSessionLocked(sid)) s->cb_down = !ok;
}

std::string SessionTable::ImplName(clientid4 id) {
  std::lock_guard<std::shared_mutex> l(mu_);
  ClientRecord* c = FindLocked(id);
  return c ? c->impl_name : std::string();
}

size_t SessionTable::clients() const {
  std::lock_guard<std::shared_mutex> l(mu_);
  return clients_.size();
}

}  // namespace loom::nfs4
