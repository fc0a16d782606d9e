#include "nfs4/state.h"

#include <algorithm>
#include <cstdlib>

namespace loom::nfs4 {

namespace {

constexpr uint64_t kMaxCounter = (uint64_t{1} << 56) - 1;
// Share-access bits that ask about delegations (§18.16.3); they do not affect reservations.
constexpr uint32_t kWantBits = OPEN4_SHARE_ACCESS_WANT_DELEG_MASK |
                               OPEN4_SHARE_ACCESS_WANT_SIGNAL_DELEG_WHEN_RESRC_AVAIL |
                               OPEN4_SHARE_ACCESS_WANT_PUSH_DELEG_WHEN_UNCONTENDED;

bool OtherIs(const stateid4& s, uint8_t byte) {
  return std::all_of(s.other.begin(), s.other.end(), [byte](uint8_t b) { return b == byte; });
}

uint32_t KindBit(StateKind k) { return 1u << static_cast<unsigned>(k); }

// [offset, offset + length) as an inclusive range (§18.10.3): length 0, or a sum past
// NFS4_UINT64_MAX with a length that is not all ones, is NFS4ERR_INVAL.
nfsstat4 ToRange(uint64_t offset, uint64_t length, uint64_t* start, uint64_t* end) {
  if (length == 0) return NFS4ERR_INVAL;
  *start = offset;
  if (length == NFS4_UINT64_MAX) {
    *end = NFS4_UINT64_MAX;
    return NFS4_OK;
  }
  if (length > NFS4_UINT64_MAX - offset) return NFS4ERR_INVAL;
  *end = offset + length - 1;  // < NFS4_UINT64_MAX: only "to EOF" ends at the last byte
  return NFS4_OK;
}

bool ValidLockType(nfs_lock_type4 t) { return t >= READ_LT && t <= WRITEW_LT; }
bool IsWriteLock(nfs_lock_type4 t) { return t == WRITE_LT || t == WRITEW_LT; }

}  // namespace

// ----------------------------------------------------------------------------- stateids

stateid4 MakeStateid(StateKind kind, uint32_t epoch, uint64_t counter, uint32_t seqid) {
  stateid4 s;
  s.seqid = seqid;
  s.other[0] = static_cast<uint8_t>(kind);
  for (int i = 0; i < 4; i++) s.other[1 + i] = static_cast<uint8_t>(epoch >> (24 - 8 * i));
  for (int i = 0; i < 7; i++) s.other[5 + i] = static_cast<uint8_t>(counter >> (48 - 8 * i));
  return s;
}

bool DecodeStateid(const stateid4& s, StateidParts* out) {
  uint8_t tag = s.other[0];
  if (tag < static_cast<uint8_t>(StateKind::kOpen) ||
      tag > static_cast<uint8_t>(StateKind::kLayout))
    return false;
  out->kind = static_cast<StateKind>(tag);
  out->epoch = 0;
  for (int i = 0; i < 4; i++) out->epoch = (out->epoch << 8) | s.other[1 + i];
  out->counter = 0;
  for (int i = 0; i < 7; i++) out->counter = (out->counter << 8) | s.other[5 + i];
  return true;
}

stateid4 AnonymousStateid() { return stateid4{}; }

stateid4 ReadBypassStateid() {
  stateid4 s;
  s.seqid = NFS4_UINT32_MAX;
  s.other.fill(0xFF);
  return s;
}

stateid4 CurrentStateid() {
  stateid4 s;
  s.seqid = 1;
  return s;
}

stateid4 InvalidStateid() {
  stateid4 s;
  s.seqid = NFS4_UINT32_MAX;
  return s;
}

bool IsAnonymousStateid(const stateid4& s) { return s.seqid == 0 && OtherIs(s, 0); }
bool IsReadBypassStateid(const stateid4& s) {
  return s.seqid == NFS4_UINT32_MAX && OtherIs(s, 0xFF);
}
bool IsCurrentStateid(const stateid4& s) { return s.seqid == 1 && OtherIs(s, 0); }
bool IsInvalidStateid(const stateid4& s) { return s.seqid == NFS4_UINT32_MAX && OtherIs(s, 0); }
bool IsSpecialStateid(const stateid4& s) { return OtherIs(s, 0) || OtherIs(s, 0xFF); }

uint32_t NextSeqid(uint32_t seqid) { return seqid == NFS4_UINT32_MAX ? 1 : seqid + 1; }

// ----------------------------------------------------------------------------- lookup

namespace internal {

stateid4 StateShard::StateidOf(const State& s) const {
  return MakeStateid(s.kind, opts_.boot_epoch, s.id, s.seqid);
}

nfsstat4 StateShard::FindLocked(const stateid4& sid, clientid4 caller, const uint64_t* file,
                                uint32_t kinds, bool check_seqid, State** out) const {
  *out = nullptr;
  StateidParts p;
  if (!DecodeStateid(sid, &p) || p.epoch != opts_.boot_epoch) return NFS4ERR_BAD_STATEID;
  auto it = states_.find(p.counter);
  if (it == states_.end() || it->second.kind != p.kind) return NFS4ERR_BAD_STATEID;
  State& s = const_cast<State&>(it->second);
  if (file && s.file != *file) return NFS4ERR_BAD_STATEID;
  if (s.client != caller) return NFS4ERR_BAD_STATEID;
  *out = &s;
  if (s.revoked != NFS4_OK) return s.revoked;
  if (kinds && !(kinds & KindBit(s.kind))) return NFS4ERR_BAD_STATEID;
  // Serial-number comparison, so that the wrap from NFS4_UINT32_MAX to 1 reads as "newer".
  if (check_seqid && sid.seqid != 0 && sid.seqid != s.seqid)
    return static_cast<int32_t>(sid.seqid - s.seqid) > 0 ? NFS4ERR_BAD_STATEID
                                                         : NFS4ERR_OLD_STATEID;
  return NFS4_OK;
}

nfsstat4 StateShard::ResolveSpecialLocked(const stateid4& sid, uint64_t file, Accept accept,
                                          Access want, Resolved* out) const {
  bool anonymous = IsAnonymousStateid(sid);
  bool bypass = IsReadBypassStateid(sid);
  // The current stateid is the COMPOUND layer's to substitute; arriving here it is invalid.
  if ((!anonymous && !bypass) || accept != Accept::kIo) return NFS4ERR_BAD_STATEID;
  // §8.2.3: READ with the bypass stateid may skip share checks; used for WRITE it is
  // treated as anonymous. Without an open, a deny reservation of anyone applies (§9.7).
  if (!(bypass && want == Access::kRead) && want != Access::kNone) {
    uint32_t need = want == Access::kRead ? OPEN4_SHARE_DENY_READ : OPEN4_SHARE_DENY_WRITE;
    auto f = files_.find(file);
    if (f != files_.end()) {
      for (uint64_t id : f->second.opens)
        if (states_.at(id).deny & need) return NFS4ERR_LOCKED;
    }
  }
  if (out) {
    *out = Resolved{};
    out->special = true;
    out->current = sid;
  }
  return NFS4_OK;
}

nfsstat4 StateShard::Resolve(const stateid4& sid, clientid4 caller, uint64_t file,
                             Accept accept, Access want, Resolved* out) const {
  std::lock_guard<std::mutex> l(mu_);
  if (IsSpecialStateid(sid)) return ResolveSpecialLocked(sid, file, accept, want, out);
  uint32_t kinds = accept == Accept::kOpen   ? KindBit(StateKind::kOpen)
                   : accept == Accept::kLock ? KindBit(StateKind::kLock)
                                             : KindBit(StateKind::kOpen) |
                                                   KindBit(StateKind::kLock);
  State* s;
  nfsstat4 st = FindLocked(sid, caller, &file, kinds, true, &s);
  if (st != NFS4_OK) return st;
  const State& open = s->kind == StateKind::kOpen ? *s : states_.at(s->open);
  if (want == Access::kWrite && !(open.access & OPEN4_SHARE_ACCESS_WRITE))
    return NFS4ERR_OPENMODE;
  if (out) {
    out->special = false;
    out->kind = s->kind;
    out->current = StateidOf(*s);
    out->open = StateidOf(open);
    out->share_access = open.access;
    out->share_deny = open.deny;
  }
  return NFS4_OK;
}

nfsstat4 StateShard::CheckIo(const stateid4& sid, clientid4 caller, uint64_t file,
                               bool write, bool* write_open) const {
  Resolved r;
  nfsstat4 st = Resolve(sid, caller, file, Accept::kIo, write ? Access::kWrite : Access::kRead,
                        &r);
  if (write_open)
    *write_open = st == NFS4_OK && !r.special && (r.share_access & OPEN4_SHARE_ACCESS_WRITE);
  return st;
}

// ----------------------------------------------------------------------------- opens

StateShard::State& StateShard::NewStateLocked(StateKind kind, clientid4 client, uint64_t file,
                                              std::string owner) {
  // The counter's low bits name the shard (StateManager::ForStateid).
  uint64_t id = next_id_++ * kStateShards + shard_;
  // 2^56 stateids in one boot is beyond any server's life; wrapping would reuse ids.
  if (id > kMaxCounter) std::abort();
  State& s = states_[id];
  s.kind = kind;
  s.id = id;
  s.client = client;
  s.file = file;
  s.owner = std::move(owner);
  by_client_[client].insert(id);
  return s;
}

nfsstat4 StateShard::Open(const OpenRequest& r, stateid4* out) {
  uint32_t access = r.share_access & ~kWantBits;
  if (access == 0 || access > OPEN4_SHARE_ACCESS_BOTH || r.share_deny > OPEN4_SHARE_DENY_BOTH)
    return NFS4ERR_INVAL;
  std::lock_guard<std::mutex> l(mu_);
  OwnerKey key{r.client, r.file, r.owner};
  auto idx = open_index_.find(key);
  State* cur = idx == open_index_.end() ? nullptr : &states_.at(idx->second);
  uint32_t want_access = access | (cur ? cur->access : 0);
  uint32_t want_deny = r.share_deny | (cur ? cur->deny : 0);
  // §9.7: the new reservation must not conflict with any other open of the file, whoever
  // holds it (another owner of the same client included).
  auto f = files_.find(r.file);
  if (f != files_.end()) {
    for (uint64_t id : f->second.opens) {
      if (cur && id == cur->id) continue;
      const State& o = states_.at(id);
      if ((want_access & o.deny) || (want_deny & o.access)) return NFS4ERR_SHARE_DENIED;
    }
  }
  if (cur) {
    // Every OPEN of an existing open state is a change the client must be able to order
    // against CLOSE and OPEN_DOWNGRADE (§8.2.2), so the seqid moves even if no bit did.
    cur->access = want_access;
    cur->deny = want_deny;
    cur->seqid = NextSeqid(cur->seqid);
  } else {
    cur = &NewStateLocked(StateKind::kOpen, r.client, r.file, r.owner);
    cur->access = want_access;
    cur->deny = want_deny;
    open_index_.emplace(std::move(key), cur->id);
    files_[r.file].opens.push_back(cur->id);
  }
  cur->reclaimed = cur->reclaimed || r.reclaim;
  *out = StateidOf(*cur);
  return NFS4_OK;
}

nfsstat4 StateShard::OpenDowngrade(clientid4 caller, uint64_t file,
                                   const OPEN_DOWNGRADE4args& a, stateid4* out) {
  std::lock_guard<std::mutex> l(mu_);
  State* s;
  nfsstat4 st = FindLocked(a.open_stateid, caller, &file, KindBit(StateKind::kOpen), true, &s);
  if (st != NFS4_OK) return st;
  uint32_t access = a.share_access & ~kWantBits;
  if (access == 0 || access > OPEN4_SHARE_ACCESS_BOTH || a.share_deny > OPEN4_SHARE_DENY_BOTH)
    return NFS4ERR_INVAL;
  // §18.18.3: the bits must be a subset of those held.
  if ((access & ~s->access) || (a.share_deny & ~s->deny)) return NFS4ERR_INVAL;
  s->access = access;
  s->deny = a.share_deny;
  s->seqid = NextSeqid(s->seqid);
  *out = StateidOf(*s);
  return NFS4_OK;
}

nfsstat4 StateShard::Close(clientid4 caller, uint64_t file, const stateid4& open,
                           stateid4* out) {
  std::vector<uint64_t> closed;
  {
    std::lock_guard<std::mutex> l(mu_);
    State* s;
    nfsstat4 st = FindLocked(open, caller, &file, KindBit(StateKind::kOpen), true, &s);
    if (st != NFS4_OK) return st;
    // §18.2.4: the server MUST fail if locks would exist after the CLOSE.
    for (uint64_t ls : s->lock_states)
      if (HasLocksLocked(ls)) return NFS4ERR_LOCKS_HELD;
    ReleaseLocked(*s, NFS4_OK, &closed);
  }
  *out = InvalidStateid();
  NotifyClosed(closed);
  return NFS4_OK;
}

bool StateShard::IsOpen(uint64_t file) const {
  std::lock_guard<std::mutex> l(mu_);
  auto f = files_.find(file);
  return f != files_.end() && !f->second.opens.empty();
}

bool StateShard::ClientHasOpen(clientid4 client, uint64_t file) const {
  std::lock_guard<std::mutex> l(mu_);
  auto f = files_.find(file);
  if (f == files_.end()) return false;
  for (uint64_t id : f->second.opens) {
    auto it = states_.find(id);
    if (it != states_.end() && it->second.client == client) return true;
  }
  return false;
}

size_t StateShard::size() const {
  std::lock_guard<std::mutex> l(mu_);
  return states_.size();
}

// ----------------------------------------------------------------------------- locks

const StateShard::Range* StateShard::ConflictLocked(uint64_t file, uint64_t owner,
                                                    uint64_t start, uint64_t end,
                                                    bool write) const {
  auto f = files_.find(file);
  if (f == files_.end()) return nullptr;
  for (const Range& r : f->second.locks) {
    if (r.owner == owner || r.end < start || r.start > end) continue;
    if (write || r.write) return &r;
  }
  return nullptr;
}

void StateShard::FillDenied(const Range& r, LOCK4denied* d) const {
  const State& o = states_.at(r.owner);
  d->offset = r.start;
  d->length = r.end == NFS4_UINT64_MAX ? NFS4_UINT64_MAX : r.end - r.start + 1;
  d->locktype = r.write ? WRITE_LT : READ_LT;
  d->owner.clientid = o.client;
  d->owner.owner = Bytes::Copy(o.owner);
}

bool StateShard::HasLocksLocked(uint64_t lock_state) const {
  const State& s = states_.at(lock_state);
  auto f = files_.find(s.file);
  if (f == files_.end()) return false;
  return std::any_of(f->second.locks.begin(), f->second.locks.end(),
                     [&](const Range& r) { return r.owner == lock_state; });
}

// The owner's locks never overlap one another and same-type locks are never adjacent; a
// single pass keeps that: a same-type lock that touches the new range is absorbed into it,
// one of the other type loses the overlap (keeping up to two pieces).
void StateShard::SetLockLocked(uint64_t file, uint64_t owner, uint64_t start, uint64_t end,
                               bool write) {
  std::vector<Range>& v = files_[file].locks;
  std::vector<Range> out;
  out.reserve(v.size() + 2);
  for (const Range& r : v) {
    if (r.owner != owner) {
      out.push_back(r);
      continue;
    }
    bool overlap = r.start <= end && start <= r.end;
    bool adjacent = (r.end != NFS4_UINT64_MAX && r.end + 1 == start) ||
                    (end != NFS4_UINT64_MAX && end + 1 == r.start);
    if (r.write == write && (overlap || adjacent)) {
      start = std::min(start, r.start);
      end = std::max(end, r.end);
    } else if (!overlap) {
      out.push_back(r);
    } else {
      if (r.start < start) out.push_back({owner, r.start, start - 1, r.write});
      if (r.end > end) out.push_back({owner, end + 1, r.end, r.write});
    }
  }
  out.push_back({owner, start, end, write});
  v.swap(out);
}

void StateShard::ClearLocksLocked(uint64_t file, uint64_t owner, uint64_t start,
                                  uint64_t end) {
  auto f = files_.find(file);
  if (f == files_.end()) return;
  std::vector<Range> out;
  out.reserve(f->second.locks.size() + 1);
  for (const Range& r : f->second.locks) {
    if (r.owner != owner || r.end < start || r.start > end) {
      out.push_back(r);
      continue;
    }
    if (r.start < start) out.push_back({owner, r.start, start - 1, r.write});
    if (r.end > end) out.push_back({owner, end + 1, r.end, r.write});
  }
  f->second.locks.swap(out);
}

nfsstat4 StateShard::Lock(clientid4 caller, uint64_t file, const LOCK4args& a, stateid4* out,
                          LOCK4denied* denied) {
  if (!ValidLockType(a.locktype)) return NFS4ERR_INVAL;
  uint64_t start, end;
  nfsstat4 st = ToRange(a.offset, a.length, &start, &end);
  if (st != NFS4_OK) return st;
  bool write = IsWriteLock(a.locktype);
  std::lock_guard<std::mutex> l(mu_);
  State* lock = nullptr;
  State* open = nullptr;
  OwnerKey key;
  if (a.locker.new_lock_owner) {
    const open_to_lock_owner4& o = a.locker.open_owner;
    st = FindLocked(o.open_stateid, caller, &file, KindBit(StateKind::kOpen), true, &open);
    if (st != NFS4_OK) return st;
    // §18.10.3: with sessions the clientid inside lock_owner4 is ignored.
    key = OwnerKey{caller, file, o.lock_owner.owner.str()};
    auto idx = lock_index_.find(key);
    if (idx != lock_index_.end()) lock = &states_.at(idx->second);
  } else {
    st = FindLocked(a.locker.lock_owner.lock_stateid, caller, &file, KindBit(StateKind::kLock),
                    true, &lock);
    if (st != NFS4_OK) return st;
    open = &states_.at(lock->open);
  }
  uint32_t need = write ? OPEN4_SHARE_ACCESS_WRITE : OPEN4_SHARE_ACCESS_READ;
  if (!(open->access & need)) return NFS4ERR_OPENMODE;
  if (const Range* c = ConflictLocked(file, lock ? lock->id : 0, start, end, write)) {
    FillDenied(*c, denied);
    return NFS4ERR_DENIED;
  }
  if (lock) {
    lock->seqid = NextSeqid(lock->seqid);
  } else {
    lock = &NewStateLocked(StateKind::kLock, caller, file, std::get<2>(key));
    lock->open = open->id;
    open->lock_states.push_back(lock->id);
    lock_index_.emplace(std::move(key), lock->id);
  }
  SetLockLocked(file, lock->id, start, end, write);
  *out = StateidOf(*lock);
  return NFS4_OK;
}

nfsstat4 StateShard::LockTest(clientid4 caller, uint64_t file, const LOCKT4args& a,
                              LOCK4denied* denied) const {
  if (!ValidLockType(a.locktype)) return NFS4ERR_INVAL;
  uint64_t start, end;
  nfsstat4 st = ToRange(a.offset, a.length, &start, &end);
  if (st != NFS4_OK) return st;
  std::lock_guard<std::mutex> l(mu_);
  auto idx = lock_index_.find(OwnerKey{caller, file, a.owner.owner.str()});
  uint64_t self = idx == lock_index_.end() ? 0 : idx->second;
  if (const Range* c = ConflictLocked(file, self, start, end, IsWriteLock(a.locktype))) {
    FillDenied(*c, denied);
    return NFS4ERR_DENIED;
  }
  return NFS4_OK;
}

nfsstat4 StateShard::Unlock(clientid4 caller, uint64_t file, const LOCKU4args& a,
                            stateid4* out) {
  if (!ValidLockType(a.locktype)) return NFS4ERR_INVAL;
  uint64_t start, end;
  nfsstat4 st = ToRange(a.offset, a.length, &start, &end);
  if (st != NFS4_OK) return st;
  std::lock_guard<std::mutex> l(mu_);
  State* lock;
  st = FindLocked(a.lock_stateid, caller, &file, KindBit(StateKind::kLock), true, &lock);
  if (st != NFS4_OK) return st;
  ClearLocksLocked(file, lock->id, start, end);
  lock->seqid = NextSeqid(lock->seqid);
  *out = StateidOf(*lock);
  return NFS4_OK;
}

// ----------------------------------------------------------------------------- lifetime

void StateShard::EraseLocked(uint64_t id) {
  auto it = states_.find(id);
  if (it == states_.end()) return;
  auto c = by_client_.find(it->second.client);
  if (c != by_client_.end()) {
    c->second.erase(id);
    if (c->second.empty()) by_client_.erase(c);
  }
  states_.erase(it);
}

void StateShard::ReleaseLocked(State& s, nfsstat4 why, std::vector<uint64_t>* closed) {
  uint64_t id = s.id;
  uint64_t file = s.file;
  if (s.kind == StateKind::kOpen) {
    std::vector<uint64_t> children;
    children.swap(s.lock_states);
    for (uint64_t c : children) {
      auto it = states_.find(c);
      if (it != states_.end() && it->second.revoked == NFS4_OK)
        ReleaseLocked(it->second, why, closed);
    }
  }
  auto f = files_.find(file);
  if (s.kind == StateKind::kOpen) {
    open_index_.erase(OwnerKey{s.client, file, s.owner});
    if (f != files_.end()) {
      auto& opens = f->second.opens;
      opens.erase(std::remove(opens.begin(), opens.end(), id), opens.end());
      if (opens.empty()) closed->push_back(file);
    }
  } else {
    ClearLocksLocked(file, id, 0, NFS4_UINT64_MAX);
    lock_index_.erase(OwnerKey{s.client, file, s.owner});
    auto p = states_.find(s.open);
    if (p != states_.end()) {
      auto& v = p->second.lock_states;
      v.erase(std::remove(v.begin(), v.end(), id), v.end());
    }
    s.open = 0;
  }
  if (f != files_.end() && f->second.opens.empty() && f->second.locks.empty()) files_.erase(f);
  if (why == NFS4_OK) {
    EraseLocked(id);
  } else {
    s.revoked = why;
  }
}

void StateShard::NotifyClosed(const std::vector<uint64_t>& files) const {
  if (!opts_.on_last_close) return;
  for (uint64_t f : files) opts_.on_last_close(f);
}

nfsstat4 StateShard::FreeStateid(clientid4 caller, const stateid4& sid) {
  if (IsSpecialStateid(sid)) return NFS4ERR_BAD_STATEID;
  std::lock_guard<std::mutex> l(mu_);
  State* s;
  nfsstat4 st = FindLocked(sid, caller, nullptr, 0, false, &s);
  if (!s) return st;
  if (s->revoked != NFS4_OK) {
    EraseLocked(s->id);
    return NFS4_OK;
  }
  if (st != NFS4_OK) return st;
  if (s->kind != StateKind::kLock || HasLocksLocked(s->id)) return NFS4ERR_LOCKS_HELD;
  std::vector<uint64_t> closed;  // a lock state never closes a file
  ReleaseLocked(*s, NFS4_OK, &closed);
  return NFS4_OK;
}

nfsstat4 StateShard::TestStateid(clientid4 caller, const stateid4& sid) const {
  if (IsSpecialStateid(sid)) return NFS4ERR_BAD_STATEID;
  std::lock_guard<std::mutex> l(mu_);
  State* s;
  return FindLocked(sid, caller, nullptr, 0, true, &s);
}

std::vector<uint64_t> StateShard::DropClient(clientid4 client) {
  std::vector<uint64_t> closed;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto c = by_client_.find(client);
    if (c == by_client_.end()) return closed;
    std::vector<uint64_t> ids(c->second.begin(), c->second.end());
    // Opens first: releasing one takes its lock states with it.
    std::stable_partition(ids.begin(), ids.end(), [&](uint64_t id) {
      return states_.at(id).kind == StateKind::kOpen;
    });
    for (uint64_t id : ids) {
      auto it = states_.find(id);
      if (it == states_.end()) continue;
      if (it->second.revoked == NFS4_OK) {
        ReleaseLocked(it->second, NFS4_OK, &closed);
      } else {
        EraseLocked(id);
      }
    }
  }
  NotifyClosed(closed);
  return closed;
}

nfsstat4 StateShard::Revoke(const stateid4& sid, nfsstat4 why) {
  if (why == NFS4_OK) why = NFS4ERR_ADMIN_REVOKED;
  if (IsSpecialStateid(sid)) return NFS4ERR_BAD_STATEID;
  std::vector<uint64_t> closed;
  {
    std::lock_guard<std::mutex> l(mu_);
    StateidParts p;
    if (!DecodeStateid(sid, &p) || p.epoch != opts_.boot_epoch) return NFS4ERR_BAD_STATEID;
    auto it = states_.find(p.counter);
    if (it == states_.end() || it->second.kind != p.kind) return NFS4ERR_BAD_STATEID;
    if (it->second.revoked != NFS4_OK) return NFS4_OK;
    ReleaseLocked(it->second, why, &closed);
  }
  NotifyClosed(closed);
  return NFS4_OK;
}

void StateShard::RevokeClient(clientid4 client, nfsstat4 why) {
  if (why == NFS4_OK) why = NFS4ERR_EXPIRED;
  std::vector<uint64_t> closed;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto c = by_client_.find(client);
    if (c == by_client_.end()) return;
    std::vector<uint64_t> ids(c->second.begin(), c->second.end());
    for (uint64_t id : ids) {
      State& s = states_.at(id);  // revoking keeps every state as a tombstone
      if (s.kind == StateKind::kOpen && s.revoked == NFS4_OK) ReleaseLocked(s, why, &closed);
    }
  }
  NotifyClosed(closed);
}

bool StateShard::HasState(clientid4 client) const {
  std::lock_guard<std::mutex> l(mu_);
  return by_client_.count(client) > 0;
}

bool StateShard::HasRevoked(clientid4 client) const {
  std::lock_guard<std::mutex> l(mu_);
  auto c = by_client_.find(client);
  if (c == by_client_.end()) return false;
  return std::any_of(c->second.begin(), c->second.end(),
                     [&](uint64_t id) { return states_.at(id).revoked != NFS4_OK; });
}

}  // namespace internal

// ----------------------------------------------------------------------------- shards

StateManager::StateManager(Options o) : opts_(std::move(o)) {
  for (uint32_t i = 0; i < kStateShards; i++) {
    shards_[i] = std::make_unique<internal::StateShard>(&opts_, i);
  }
}

StateManager::~StateManager() = default;

internal::StateShard& StateManager::ForFile(uint64_t file) const {
  return *shards_[FileShard(file)];
}

internal::StateShard& StateManager::ForStateid(const stateid4& sid) const {
  StateidParts p;
  if (!DecodeStateid(sid, &p)) return *shards_[0];
  return *shards_[p.counter % kStateShards];
}

// A stateid of another shard than the file's cannot be the file's: the file's shard does not
// know it and answers NFS4ERR_BAD_STATEID, as §8.2.4 asks for a stateid of another file.
nfsstat4 StateManager::Resolve(const stateid4& sid, clientid4 caller, uint64_t file,
                               Accept accept, Access want, Resolved* out) const {
  return ForFile(file).Resolve(sid, caller, file, accept, want, out);
}

nfsstat4 StateManager::CheckIo(const stateid4& sid, clientid4 caller, uint64_t file, bool write,
                               bool* write_open) const {
  return ForFile(file).CheckIo(sid, caller, file, write, write_open);
}

nfsstat4 StateManager::Open(const OpenRequest& r, stateid4* out) {
  return ForFile(r.file).Open(r, out);
}

nfsstat4 StateManager::OpenDowngrade(clientid4 caller, uint64_t file,
                                     const OPEN_DOWNGRADE4args& a, stateid4* out) {
  return ForFile(file).OpenDowngrade(caller, file, a, out);
}

nfsstat4 StateManager::Close(clientid4 caller, uint64_t file, const stateid4& open,
                             stateid4* out) {
  return ForFile(file).Close(caller, file, open, out);
}

nfsstat4 StateManager::Lock(clientid4 caller, uint64_t file, const LOCK4args& a, stateid4* out,
                            LOCK4denied* denied) {
  return ForFile(file).Lock(caller, file, a, out, denied);
}

nfsstat4 StateManager::LockTest(clientid4 caller, uint64_t file, const LOCKT4args& a,
                                LOCK4denied* denied) const {
  return ForFile(file).LockTest(caller, file, a, denied);
}

nfsstat4 StateManager::Unlock(clientid4 caller, uint64_t file, const LOCKU4args& a,
                              stateid4* out) {
  return ForFile(file).Unlock(caller, file, a, out);
}

nfsstat4 StateManager::FreeStateid(clientid4 caller, const stateid4& sid) {
  return ForStateid(sid).FreeStateid(caller, sid);
}

nfsstat4 StateManager::TestStateid(clientid4 caller, const stateid4& sid) const {
  return ForStateid(sid).TestStateid(caller, sid);
}

std::vector<nfsstat4> StateManager::TestStateids(clientid4 caller,
                                                 const std::vector<stateid4>& ids) const {
  std::vector<nfsstat4> out;
  out.reserve(ids.size());
  for (const stateid4& s : ids) out.push_back(TestStateid(caller, s));
  return out;
}

std::vector<uint64_t> StateManager::DropClient(clientid4 client) {
  std::vector<uint64_t> closed;
  for (auto& s : shards_) {
    std::vector<uint64_t> c = s->DropClient(client);
    closed.insert(closed.end(), c.begin(), c.end());
  }
  return closed;
}

nfsstat4 StateManager::Revoke(const stateid4& sid, nfsstat4 why) {
  any_revoked_.store(true, std::memory_order_release);
  return ForStateid(sid).Revoke(sid, why);
}

void StateManager::RevokeClient(clientid4 client, nfsstat4 why) {
  any_revoked_.store(true, std::memory_order_release);
  for (auto& s : shards_) s->RevokeClient(client, why);
}

bool StateManager::HasRevoked(clientid4 client) const {
  if (!any_revoked_.load(std::memory_order_acquire)) return false;
  for (auto& s : shards_) {
    if (s->HasRevoked(client)) return true;
  }
  return false;
}

bool StateManager::HasState(clientid4 client) const {
  for (auto& s : shards_) {
    if (s->HasState(client)) return true;
  }
  return false;
}

bool StateManager::IsOpen(uint64_t file) const { return ForFile(file).IsOpen(file); }

bool StateManager::ClientHasOpen(clientid4 client, uint64_t file) const {
  return ForFile(file).ClientHasOpen(client, file);
}

size_t StateManager::size() const {
  size_t n = 0;
  for (auto& s : shards_) n += s->size();
  return n;
}

}  // namespace loom::nfs4
