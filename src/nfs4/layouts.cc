#include "nfs4/layouts.h"

namespace loom::nfs4 {
namespace internal {

stateid4 LayoutShard::StateidOf(const State& s) const {
  return MakeStateid(StateKind::kLayout, epoch_, s.id, s.seqid);
}

bool LayoutShard::IssuedTo(clientid4 client, uint64_t counter) const {
  std::lock_guard<std::mutex> l(mu_);
  auto r = released_.find(counter);
  if (r != released_.end()) return r->second == client;
  for (auto it = states_.lower_bound({client, 0}); it != states_.end() && it->first.first == client; ++it)
    if (it->second.id == counter) return true;
  return false;
}

LayoutShard::State* LayoutShard::FindLocked(clientid4 client, uint64_t file) {
  auto it = states_.find({client, file});
  return it == states_.end() ? nullptr : &it->second;
}

bool LayoutShard::Holds(clientid4 client, uint64_t file, const stateid4& s) const {
  StateidParts p;
  if (!DecodeStateid(s, &p) || p.kind != StateKind::kLayout || p.epoch != epoch_) return false;
  std::lock_guard<std::mutex> l(mu_);
  auto it = states_.find({client, file});
  return it != states_.end() && it->second.id == p.counter;
}

nfsstat4 LayoutShard::Grant(clientid4 client, uint64_t file, layoutiomode4 iomode,
                            const stateid4& presented, stateid4* out) {
  std::lock_guard<std::mutex> l(mu_);
  if (recalling_.count(file)) return NFS4ERR_RECALLCONFLICT;  // §12.5.5.2
  State* s = FindLocked(client, file);
  StateidParts p;
  if (DecodeStateid(presented, &p) && p.kind == StateKind::kLayout) {
    // A layout stateid must be the one this client holds for this file (§12.5.3).
    if (p.epoch != epoch_ || !s || s->id != p.counter) return NFS4ERR_BAD_STATEID;
    if (presented.seqid != 0 && presented.seqid > s->seqid) return NFS4ERR_BAD_STATEID;
  }
  if (!s) {
    State n;
    n.id = next_id_++ * kStateShards + shard_;  // the low bits name the shard
    n.client = client;
    n.file = file;
    s = &states_.emplace(std::make_pair(client, file), n).first->second;
    by_file_[file].insert(client);
  }
  s->seqid = NextSeqid(s->seqid);
  s->iomodes |= 1u << iomode;
  *out = StateidOf(*s);
  return NFS4_OK;
}

void LayoutShard::EraseLocked(std::map<std::pair<clientid4, uint64_t>, State>::iterator it) {
  // The last 65536 over all shards; ids grow, so the smallest is the oldest.
  if (released_.size() >= 65536 / kStateShards) released_.erase(released_.begin());
  released_[it->second.id] = it->second.client;
  auto f = by_file_.find(it->second.file);
  if (f != by_file_.end()) {
    f->second.erase(it->second.client);
    if (f->second.empty()) by_file_.erase(f);
  }
  states_.erase(it);
}

nfsstat4 LayoutShard::Return(clientid4 client, uint64_t file, layoutiomode4 iomode,
                             const stateid4& sid, bool* remaining, stateid4* out) {
  *remaining = false;
  StateidParts p;
  if (!DecodeStateid(sid, &p) || p.kind != StateKind::kLayout) return NFS4ERR_BAD_STATEID;
  std::lock_guard<std::mutex> l(mu_);
  auto it = states_.find({client, file});
  if (it == states_.end()) {
    // Nothing held: a layout this server forgot (restart, lease expiry, fencing) or one
    // already returned. §18.44.3 makes a return of nothing a success.
    return NFS4_OK;
  }
  if (p.epoch != epoch_ || it->second.id != p.counter) return NFS4ERR_BAD_STATEID;
  State& s = it->second;
  if (iomode == LAYOUTIOMODE4_ANY) s.iomodes = 0;
  else s.iomodes &= ~(1u << iomode);
  if (s.iomodes == 0) {
    EraseLocked(it);
    return NFS4_OK;
  }
  s.seqid = NextSeqid(s.seqid);
  *remaining = true;
  *out = StateidOf(s);
  return NFS4_OK;
}

void LayoutShard::ReturnAll(clientid4 client, uint64_t file) {
  std::lock_guard<std::mutex> l(mu_);
  for (auto it = states_.lower_bound({client, file}); it != states_.end() && it->first.first == client;) {
    if (file != 0 && it->first.second != file) break;
    auto next = std::next(it);
    EraseLocked(it);
    it = next;
  }
}

std::vector<uint64_t> LayoutShard::ReturnIomode(clientid4 client, layoutiomode4 iomode) {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<uint64_t> gone;
  for (auto it = states_.lower_bound({client, 0}); it != states_.end() && it->first.first == client;) {
    auto next = std::next(it);
    State& s = it->second;
    if (iomode == LAYOUTIOMODE4_ANY) s.iomodes = 0;
    else s.iomodes &= ~(1u << iomode);
    if (s.iomodes == 0) {
      gone.push_back(s.file);
      EraseLocked(it);
    } else {
      s.seqid = NextSeqid(s.seqid);
    }
    it = next;
  }
  return gone;
}

std::vector<RecallTarget> LayoutShard::BeginRecall(uint64_t file, clientid4 except) {
  std::lock_guard<std::mutex> l(mu_);
  recalling_[file]++;
  std::vector<RecallTarget> out;
  auto f = by_file_.find(file);
  if (f == by_file_.end()) return out;
  for (clientid4 c : f->second) {
    if (c == except) continue;
    State* s = FindLocked(c, file);
    if (!s) continue;
    // §12.5.5.2.1: the recall carries the stateid with its seqid advanced, and the client
    // checks it is exactly one past the last it saw.
    s->seqid = NextSeqid(s->seqid);
    out.push_back({c, file, StateidOf(*s)});
  }
  return out;
}

void LayoutShard::Block(uint64_t file) {
  std::lock_guard<std::mutex> l(mu_);
  recalling_[file]++;
}

void LayoutShard::EndRecall(uint64_t file) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = recalling_.find(file);
  if (it != recalling_.end() && --it->second <= 0) recalling_.erase(it);
}

bool LayoutShard::Recalling(uint64_t file) const {
  std::lock_guard<std::mutex> l(mu_);
  return recalling_.count(file) > 0;
}

std::map<clientid4, uint32_t> LayoutShard::Holders(uint64_t file) const {
  std::lock_guard<std::mutex> l(mu_);
  std::map<clientid4, uint32_t> out;
  auto f = by_file_.find(file);
  if (f == by_file_.end()) return out;
  for (clientid4 c : f->second) {
    auto it = states_.find({c, file});
    if (it != states_.end()) out[c] = it->second.iomodes;
  }
  return out;
}

std::vector<uint64_t> LayoutShard::FilesOf(clientid4 client) const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<uint64_t> out;
  for (auto it = states_.lower_bound({client, 0}); it != states_.end() && it->first.first == client; ++it)
    out.push_back(it->first.second);
  return out;
}

size_t LayoutShard::size() const {
  std::lock_guard<std::mutex> l(mu_);
  return states_.size();
}

}  // namespace internal

LayoutTable::LayoutTable(uint32_t boot_epoch) : epoch_(boot_epoch) {
  for (uint32_t i = 0; i < kStateShards; i++) {
    shards_[i] = std::make_unique<internal::LayoutShard>(boot_epoch, i);
  }
}

internal::LayoutShard& LayoutTable::ForFile(uint64_t file) const {
  return *shards_[FileShard(file)];
}

internal::LayoutShard& LayoutTable::ForStateid(const StateidParts& p) const {
  return *shards_[p.counter % kStateShards];
}

bool LayoutTable::IsLayoutStateid(const stateid4& s) {
  StateidParts p;
  return DecodeStateid(s, &p) && p.kind == StateKind::kLayout;
}

bool LayoutTable::FromEarlierBoot(const stateid4& s) const {
  StateidParts p;
  return DecodeStateid(s, &p) && p.kind == StateKind::kLayout && p.epoch != epoch_;
}

nfsstat4 LayoutTable::Grant(clientid4 client, uint64_t file, layoutiomode4 iomode,
                            const stateid4& presented, stateid4* out) {
  return ForFile(file).Grant(client, file, iomode, presented, out);
}

bool LayoutTable::Holds(clientid4 client, uint64_t file, const stateid4& s) const {
  return ForFile(file).Holds(client, file, s);
}

bool LayoutTable::IssuedTo(clientid4 client, const stateid4& s) const {
  StateidParts p;
  if (!DecodeStateid(s, &p) || p.kind != StateKind::kLayout || p.epoch != epoch_) return false;
  return ForStateid(p).IssuedTo(client, p.counter);
}

nfsstat4 LayoutTable::Return(clientid4 client, uint64_t file, layoutiomode4 iomode,
                             const stateid4& sid, bool* remaining, stateid4* out) {
  return ForFile(file).Return(client, file, iomode, sid, remaining, out);
}

void LayoutTable::ReturnAll(clientid4 client, uint64_t file) {
  if (file != 0) return ForFile(file).ReturnAll(client, file);
  for (auto& s : shards_) s->ReturnAll(client);
}

std::vector<uint64_t> LayoutTable::ReturnIomode(clientid4 client, layoutiomode4 iomode) {
  std::vector<uint64_t> out;
  for (auto& s : shards_) {
    std::vector<uint64_t> f = s->ReturnIomode(client, iomode);
    out.insert(out.end(), f.begin(), f.end());
  }
  return out;
}

std::vector<RecallTarget> LayoutTable::BeginRecall(uint64_t file, clientid4 except) {
  return ForFile(file).BeginRecall(file, except);
}

void LayoutTable::EndRecall(uint64_t file) { ForFile(file).EndRecall(file); }

void LayoutTable::Block(uint64_t file) { ForFile(file).Block(file); }

bool LayoutTable::Recalling(uint64_t file) const { return ForFile(file).Recalling(file); }

std::map<clientid4, uint32_t> LayoutTable::Holders(uint64_t file) const {
  return ForFile(file).Holders(file);
}

std::vector<uint64_t> LayoutTable::FilesOf(clientid4 client) const {
  std::vector<uint64_t> out;
  for (auto& s : shards_) {
    std::vector<uint64_t> f = s->FilesOf(client);
    out.insert(out.end(), f.begin(), f.end());
  }
  return out;
}

size_t LayoutTable::size() const {
  size_t n = 0;
  for (auto& s : shards_) n += s->size();
  return n;
}

}  // namespace loom::nfs4
