#include "mds/fs_identity.h"

#include <sys/random.h>

#include <map>
#include <optional>
#include <set>

#include "common/log.h"

namespace loom::mds {

namespace {

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

// What one data server holds under loom/.
struct Probe {
  Status status;                 // kUnavailable/kTimeout: did not answer
  std::string uuid;              // raw 16 bytes, from loom/ds-id
  struct Tree {
    std::string dir, owner;      // owner: the marker's text ("" when there is none)
  };
  std::vector<Tree> trees;
};

bool Unreachable(const Status& s) {
  return s.code() == Code::kUnavailable || s.code() == Code::kTimeout;
}

// `create_id`: write loom/ds-id when there is none (else p.uuid stays empty).
Probe ProbeServer(DataServerPool& pool, const DataServerConfig& c, bool create_id = true) {
  Probe p;
  const std::vector<std::string> id_path = {"loom", kDsIdFile};
  auto cur = pool.ReadControlFile(c.id, id_path);
  if (!cur.ok()) {
    p.status = cur.status();
    return p;
  }
  std::string text;
  if (*cur) {
    text = **cur;
  } else if (!create_id) {
    return p;
  } else {
    text = UuidHex(NewUuid());
    auto made = pool.CreateControlFile(c.id, id_path, text + "\n");
    if (!made.ok()) {
      p.status = made.status();
      return p;
    }
    if (!*made) {  // another metadata server wrote it meanwhile: use theirs
      auto again = pool.ReadControlFile(c.id, id_path);
      if (!again.ok()) {
        p.status = again.status();
        return p;
      }
      text = again->value_or("");
    }
  }
  if (!ParseUuidHex(Trim(text), &p.uuid)) {
    p.status = Status::Internal("data server " + c.address + ": loom/" + kDsIdFile +
                                " is damaged (expected 32 hex digits); refusing to guess its identity");
    return p;
  }
  auto list = pool.ListDir(c.id, {"loom"});
  if (!list.ok()) {
    p.status = list.status();
    return p;
  }
  for (const DsEntry& e : list->value_or(std::vector<DsEntry>{})) {
    if (!e.is_dir || e.name == kLostFound) continue;
    auto owner = pool.ReadControlFile(c.id, {"loom", e.name, kOwnerFile});
    if (!owner.ok()) {
      p.status = owner.status();
      return p;
    }
    p.trees.push_back(Probe::Tree{e.name, Trim(owner->value_or(""))});
  }
  return p;
}

// Probes servers through a throwaway pool (ids are positions there).
std::vector<Probe> ProbeAll(std::vector<DataServerConfig> servers,
                            const DataServerPool::Options& opts, bool create_id) {
  for (size_t i = 0; i < servers.size(); i++) servers[i].id = static_cast<uint32_t>(i + 1);
  DataServerPool::Options po = opts;
  po.health_interval_ms = 0;
  std::vector<Probe> probes;
  auto pool = DataServerPool::Create(servers, po);
  if (!pool.ok()) {
    probes.assign(servers.size(), Probe{});
    for (Probe& p : probes) p.status = pool.status();
    return probes;
  }
  for (const DataServerConfig& c : servers) probes.push_back(ProbeServer(**pool, c, create_id));
  return probes;
}

// What the registry restores of a server: settings the command line left empty, and the
// draining state.
void Restore(DataServerConfig& c, const meta::DataServerRecord& r) {
  if (c.advertised_address.empty()) c.advertised_address = r.advertised_address;
  if (c.labels.empty()) c.labels = r.labels;
  c.draining = c.draining || r.draining;
}

meta::DataServerRecord RecordOf(const DataServerConfig& c, bool draining) {
  meta::DataServerRecord r;
  r.uuid = c.uuid;
  r.id = c.id;
  r.address = c.address;
  r.advertised_address = c.advertised_address == c.address ? "" : c.advertised_address;
  r.labels = c.labels;
  r.draining = draining;
  return r;
}

Status ReadRegistry(meta::KvStore& store, std::vector<meta::DataServerRecord>* out) {
  return meta::RunTxn(store, [&](meta::Txn& t) -> Status {
    out->clear();
    Status ds;
    LOOM_RETURN_IF_ERROR(t.Scan(meta::KeyRange::Prefix(meta::keys::DataServerPrefix()), 0,
                                [&](std::string_view, std::string_view val) {
                                  ds = meta::Decode(val, &out->emplace_back());
                                  return ds.ok();
                                }));
    return ds;
  });
}

std::string TreeList(const std::vector<std::pair<std::string, Probe::Tree>>& trees) {
  std::string out;
  for (const auto& [addr, t] : trees) {
    if (!out.empty()) out += ", ";
    out += addr + ":loom/" + t.dir + (t.owner.empty() ? "" : " (filesystem " + t.owner + ")");
  }
  return out;
}

}  // namespace

std::string NewUuid() {
  std::string raw(16, '\0');
  size_t got = 0;
  while (got < raw.size()) {
    ssize_t n = ::getrandom(raw.data() + got, raw.size() - got, 0);
    if (n > 0) got += static_cast<size_t>(n);
  }
  return raw;
}

std::string UuidHex(const std::string& raw) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

bool ParseUuidHex(std::string_view hex, std::string* raw) {
  if (hex.size() != 32) return false;
  std::string out;
  for (size_t i = 0; i < 32; i += 2) {
    int v = 0;
    for (size_t k = i; k < i + 2; k++) {
      char c = hex[k];
      int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      if (d < 0) return false;
      v = v * 16 + d;
    }
    out.push_back(static_cast<char>(v));
  }
  *raw = std::move(out);
  return true;
}

Result<StartPlan> PlanStart(meta::KvStore& store, meta::FsId fsid,
                            std::vector<DataServerConfig> servers, StartMode mode,
                            const DataServerPool::Options& opts, const std::string& recover_id) {
  // What the store knows.
  std::optional<meta::FsIdentity> ident;
  bool has_fs = false;
  std::vector<meta::DataServerRecord> known;
  Status rs = meta::RunTxn(store, [&](meta::Txn& t) -> Status {
    ident.reset();
    known.clear();
    auto v = t.Get(meta::keys::Identity(fsid));
    if (!v.ok()) return v.status();
    if (*v) LOOM_RETURN_IF_ERROR(meta::Decode(**v, &ident.emplace()));
    auto f = t.Get(meta::keys::Fs(fsid));
    if (!f.ok()) return f.status();
    has_fs = f->has_value();
    Status ds;
    LOOM_RETURN_IF_ERROR(t.Scan(meta::KeyRange::Prefix(meta::keys::DataServerPrefix()), 0,
                                [&](std::string_view, std::string_view val) {
                                  ds = meta::Decode(val, &known.emplace_back());
                                  return ds.ok();
                                }));
    return ds;
  });
  if (!rs.ok()) return Status(rs.code(), "reading the metadata store: " + rs.ToString());
  const bool fresh = !ident && !has_fs;
  const bool legacy = !ident && has_fs;
  if (mode == StartMode::kForceNew && !fresh)
    return Status::Invalid("--force-new makes a new filesystem and needs an empty metadata store; "
                           "this one holds filesystem " +
                           (ident ? UuidHex(ident->uuid) : std::string("(made before ids)")));

  // What the data servers hold (probed under provisional ids: their positions).
  for (size_t i = 0; i < servers.size(); i++) servers[i].id = static_cast<uint32_t>(i + 1);
  {
    DataServerPool::Options po = opts;
    po.health_interval_ms = 0;
    auto check = DataServerPool::Create(servers, po);  // the configuration itself
    if (!check.ok()) return check.status();
  }
  std::vector<Probe> probes = ProbeAll(servers, opts, true);
  std::vector<std::pair<std::string, Probe::Tree>> trees;  // (address, tree) everywhere
  std::map<std::string, size_t> by_uuid;
  for (size_t i = 0; i < servers.size(); i++) {
    const Probe& p = probes[i];
    if (!p.status.ok()) {
      if (Unreachable(p.status) && !fresh) continue;  // known servers may be down
      if (Unreachable(p.status))
        return Status::Unavailable("data server " + servers[i].address + " does not answer (" +
                                   p.status.ToString() +
                                   "): with an empty metadata store every data server must be "
                                   "checked for an existing filesystem first");
      return Status(p.status.code(), "data server " + servers[i].address + ": " + p.status.ToString());
    }
    auto [it, inserted] = by_uuid.emplace(p.uuid, i);
    if (!inserted)
      return Status::Invalid("data servers " + servers[it->second].address + " and " +
                             servers[i].address + " are the same export (loom/ds-id " +
                             UuidHex(p.uuid) + ")");
    for (const Probe::Tree& t : p.trees) trees.emplace_back(servers[i].address, t);
  }

  StartPlan plan;
  meta::Timespec now = meta::NowRealtime();
  if (ident) {
    plan.identity = *ident;
    plan.adopt_tree = mode == StartMode::kRecover;  // finishing an interrupted recovery
    plan.summary = "filesystem " + UuidHex(ident->uuid);
  } else if (legacy) {
    std::string u = NewUuid();
    plan.identity = meta::FsIdentity{u, FsDirName(fsid), now};
    plan.summary = "filesystem made before ids existed: now " + UuidHex(u) + ", data in loom/" +
                   plan.identity.tree;
  } else if (trees.empty() || mode == StartMode::kForceNew) {
    std::string u = NewUuid();
    plan.identity = meta::FsIdentity{u, UuidHex(u), now};
    plan.summary = "new filesystem " + UuidHex(u);
    if (!trees.empty()) plan.summary += " (--force-new; left alone: " + TreeList(trees) + ")";
  } else if (mode == StartMode::kRecover) {
    std::set<std::pair<std::string, std::string>> owners;  // (tree, owner)
    for (const auto& [addr, t] : trees)
      if (recover_id.empty() || t.owner == recover_id || t.dir == recover_id)
        owners.emplace(t.dir, t.owner);
    if (owners.empty())
      return Status::NotFound("--recover " + recover_id + ": no such filesystem on the data servers: " +
                              TreeList(trees));
    if (owners.size() != 1)
      return Status(Code::kExists,
                    "--recover adopts one filesystem, and the data servers hold several: " +
                        TreeList(trees) + ". Name one: --recover-id ID");
    auto [dir, owner] = *owners.begin();
    std::string u;
    if (owner.empty() || !ParseUuidHex(owner, &u)) u = NewUuid();  // a tree from before markers
    plan.identity = meta::FsIdentity{u, dir, now};
    plan.adopt_tree = true;
    plan.summary = "recovering filesystem " + UuidHex(u) + " from loom/" + dir;
  } else {
    return Status(Code::kExists,
                  "the metadata store is empty, but the data servers hold the files of a Loom "
                  "filesystem: " +
                      TreeList(trees) +
                      ". Refusing to start: that would reuse inode numbers over them. If the "
                      "store was lost or damaged, restore it, or start with --recover to adopt "
                      "those files (into /lost+found); --force-new starts a new filesystem beside "
                      "them. Nothing on the data servers was changed");
  }
  const std::string owner_hex = UuidHex(plan.identity.uuid);
  for (const auto& [addr, t] : trees) {
    if (t.dir == plan.identity.tree && !t.owner.empty() && t.owner != owner_hex)
      return Status(Code::kPermission, "data server " + addr + ": loom/" + t.dir +
                                           " belongs to filesystem " + t.owner + ", not to " +
                                           owner_hex + " (this store's)");
  }

  // Data-server ids by UUID.
  std::map<std::string, const meta::DataServerRecord*> rec_of;
  uint32_t next = 1;
  for (const meta::DataServerRecord& r : known) {
    rec_of[r.uuid] = &r;
    next = std::max(next, r.id + 1);
  }
  const bool positional = legacy && known.empty();  // what layouts of such a store mean
  std::set<std::string> matched;                    // uuids of the records used
  for (size_t i = 0; i < servers.size(); i++) {
    const Probe& p = probes[i];
    const meta::DataServerRecord* r = nullptr;
    if (!p.status.ok()) {  // down, and the store is not empty: find it by its last address
      for (const auto& k : known)
        if (k.address == servers[i].address && !matched.count(k.uuid)) r = &k;
      if (!r && !positional)
        return Status::Unavailable("data server " + servers[i].address + " does not answer (" +
                                   p.status.ToString() + ") and this store has not seen it before");
      if (r) servers[i].id = r->id;
      LOG_WARN("data server %s does not answer (%s); starting without checking it",
               servers[i].address.c_str(), p.status.ToString().c_str());
    } else {
      auto it = rec_of.find(p.uuid);
      if (it != rec_of.end()) r = it->second;
      servers[i].id = positional ? static_cast<uint32_t>(i + 1) : r ? r->id : next++;
      servers[i].uuid = p.uuid;
    }
    if (r) {
      matched.insert(r->uuid);
      servers[i].uuid = r->uuid;
      Restore(servers[i], *r);
    }
  }
  // Servers the store knows that the command line did not name (added at run time): at their
  // last address, if that is still them; kept when they do not answer.
  std::vector<DataServerConfig> extra;
  for (const meta::DataServerRecord& r : known) {
    if (matched.count(r.uuid)) continue;
    if (std::any_of(servers.begin(), servers.end(),
                    [&](const DataServerConfig& c) { return c.id == r.id; }))
      continue;
    DataServerConfig c;
    c.id = r.id;
    c.address = r.address;
    c.uuid = r.uuid;
    Restore(c, r);
    extra.push_back(std::move(c));
  }
  std::vector<Probe> extra_probes = ProbeAll(extra, opts, false);
  for (size_t i = 0; i < extra.size(); i++) {
    const Probe& p = extra_probes[i];
    if (!p.status.ok() && !Unreachable(p.status)) {
      LOG_WARN("data server %u (%s, known to the store): %s; leaving it out", extra[i].id,
               extra[i].address.c_str(), p.status.ToString().c_str());
      continue;
    }
    if (p.status.ok() && p.uuid != extra[i].uuid) {
      LOG_WARN("data server %u: %s now holds another export (loom/ds-id %s, not %s); leaving "
               "it out: name its new address with --ds",
               extra[i].id, extra[i].address.c_str(), p.uuid.empty() ? "none" : UuidHex(p.uuid).c_str(),
               UuidHex(extra[i].uuid).c_str());
      continue;
    }
    if (p.status.ok()) {
      for (const Probe::Tree& t : p.trees)
        if (t.dir == plan.identity.tree && !t.owner.empty() && t.owner != owner_hex)
          return Status(Code::kPermission, "data server " + extra[i].address + ": loom/" + t.dir +
                                               " belongs to filesystem " + t.owner + ", not to " +
                                               owner_hex + " (this store's)");
    } else {
      LOG_WARN("data server %u (%s, known to the store) does not answer (%s); starting without "
               "checking it", extra[i].id, extra[i].address.c_str(), p.status.ToString().c_str());
    }
    LOG_INFO("data server %u (%s): known to the store, not on the command line; using it",
             extra[i].id, extra[i].address.c_str());
    servers.push_back(std::move(extra[i]));
  }
  std::vector<meta::DataServerRecord> put;
  for (const DataServerConfig& c : servers)
    if (c.uuid.size() == 16) put.push_back(RecordOf(c, c.draining));
  Status ws = meta::RunTxn(store, [&](meta::Txn& t) -> Status {
    if (!ident) LOOM_RETURN_IF_ERROR(t.Put(meta::keys::Identity(fsid), meta::Encode(plan.identity)));
    for (const auto& r : put) LOOM_RETURN_IF_ERROR(t.Put(meta::keys::DataServer(r.uuid), meta::Encode(r)));
    return Status::Ok();
  });
  if (!ws.ok()) return ws;
  plan.servers = std::move(servers);
  plan.had_namespace = has_fs;
  return plan;
}

Result<size_t> AdoptTree(meta::KvStore& store, meta::Namespace& ns, DataServerPool& pool) {
  const meta::FsId fsid = ns.fsid();
  const std::string tree = pool.TreeDir(fsid);
  // The data files layouts already hold, by (server, handle).
  std::set<std::pair<uint32_t, std::string>> held;
  Status ls = meta::RunTxn(store, [&](meta::Txn& t) -> Status {
    held.clear();
    Status d;
    LOOM_RETURN_IF_ERROR(t.Scan(meta::KeyRange::Prefix(meta::keys::LayoutPrefix(fsid)), 0, [&](std::string_view, std::string_view v) {
                                  meta::Layout l;
                                  d = meta::Decode(v, &l);
                                  for (const auto& m : l.mirrors)
                                    for (const auto& f : m.files) held.emplace(f.ds_id, f.fh);
                                  return d.ok();
                                }));
    return d;
  });
  if (!ls.ok()) return ls;
  struct Found {
    uint32_t ds;
    meta::Ino ino;
    uint32_t gen;
    std::string fh;
    uint64_t size;
  };
  std::vector<Found> found;
  std::map<meta::Ino, int> copies;
  meta::Ino max_ino = 0;
  for (const DataServerState& s : pool.Servers()) {
    auto list = pool.ListDir(s.config.id, {"loom", tree});
    if (!list.ok()) return list.status();
    for (const DsEntry& e : list->value_or(std::vector<DsEntry>{})) {
      auto id = ParseDataFileName(e.name);
      if (!id || e.is_dir || e.fh.empty()) continue;
      max_ino = std::max(max_ino, id->ino);
      if (held.count({s.config.id, e.fh})) continue;
      found.push_back(Found{s.config.id, id->ino, id->name_gen, e.fh, e.size});
      copies[id->ino]++;
    }
  }
  // Inode numbers are never reused: move the allocator past every number on the servers.
  Status as = meta::RunTxn(store, [&](meta::Txn& t) -> Status {
    auto v = t.GetForUpdate(meta::keys::InoAlloc(fsid));
    if (!v.ok()) return v.status();
    uint64_t next = meta::kFirstFreeIno;
    if (*v) LOOM_RETURN_IF_ERROR(meta::DecodeU64(**v, &next));
    if (next > max_ino) return Status::Ok();
    return t.Put(meta::keys::InoAlloc(fsid), meta::EncodeU64(max_ino + 1));
  });
  if (!as.ok()) return as;
  if (found.empty()) return size_t{0};
  auto lf = meta::RunTxn(store, [&](meta::Txn& t) -> Result<meta::Ino> {
    auto d = ns.Lookup(t, ns.root(), kLostFound);
    if (d.ok()) return d->ino;
    if (meta::ErrOf(d.status()) != meta::MetaErr::kNoEnt) return d.status();
    meta::CreateArgs a;
    a.type = meta::FileType::kDir;
    a.mode = 0700;
    auto made = ns.Create(t, ns.root(), kLostFound, a);
    if (!made.ok()) return made.status();
    return made->inode.ino;
  });
  if (!lf.ok()) return lf.status();
  size_t linked = 0;
  for (const Found& f : found) {
    std::string base = DataFileName(f.ino, f.gen);
    if (copies[f.ino] > 1) base += "@ds" + std::to_string(f.ds);
    // The entry (a new inode, no layout yet), then the data file renamed to the new inode's
    // name, then the layout: an interruption leaves at worst an empty entry, never lost bytes.
    Result<meta::CreateResult> made = Status::Internal("unset");
    for (int n = 0; n < 100; n++) {
      std::string name = n == 0 ? base : base + "." + std::to_string(n);
      made = meta::RunTxn(store, [&](meta::Txn& t) {
        meta::CreateArgs a;
        a.mode = 0600;
        return ns.Create(t, *lf, name, a);
      });
      if (made.ok() || meta::ErrOf(made.status()) != meta::MetaErr::kExist) break;
    }
    if (!made.ok()) return made.status();
    const meta::Ino ino = made->inode.ino;
    LOOM_RETURN_IF_ERROR(pool.RenameDataFile(f.ds, fsid, f.ino, ino, f.gen));
    meta::Layout l;
    l.stripe_unit = 1u << 20;
    l.stripe_count = 1;
    l.mirrors.push_back(meta::Mirror{{meta::DataFile{f.ds, f.fh, 0, 0, 0}}});
    Status st = meta::RunTxn(store, [&](meta::Txn& t) -> Status {
      LOOM_RETURN_IF_ERROR(ns.SetLayout(t, ino, l));
      meta::SetAttrArgs sa;
      sa.size = f.size;
      return ns.SetAttr(t, ino, sa).status();
    });
    if (!st.ok()) return st;
    LOG_INFO("recovered data server %u loom/%s/%s as inode %llu in /%s (%llu bytes)", f.ds,
             tree.c_str(), DataFileName(f.ino, f.gen).c_str(), static_cast<unsigned long long>(ino),
             kLostFound, static_cast<unsigned long long>(f.size));
    linked++;
  }
  return linked;
}

Result<size_t> ResolveIntents(meta::KvStore& store, meta::FsId fsid, DataServerPool& pool,
                              bool settled_only) {
  std::vector<meta::PendingFile> pending;
  Status ls = meta::RunTxn(store, [&](meta::Txn& t) -> Status {
    pending.clear();
    Status d;
    LOOM_RETURN_IF_ERROR(t.Scan(meta::KeyRange::Prefix(meta::keys::PendingPrefix(fsid)), 0,
                                [&](std::string_view, std::string_view v) {
                                  d = meta::Decode(v, &pending.emplace_back());
                                  return d.ok();
                                }));
    return d;
  });
  if (!ls.ok()) return ls;
  size_t resolved = 0;
  for (const meta::PendingFile& p : pending) {
    // Does the layout hold a file on that server after all?
    bool has_layout = false, gen_settled = false;
    auto held = meta::RunTxn(store, [&](meta::Txn& t) -> Result<bool> {
      has_layout = gen_settled = false;
      auto v = t.Get(meta::keys::Layout(fsid, p.ino));
      if (!v.ok()) return v.status();
      has_layout = v->has_value();
      if (!*v) return false;
      meta::Layout l;
      LOOM_RETURN_IF_ERROR(meta::Decode(**v, &l));
      bool found = false;
      for (const auto& m : l.mirrors)
        for (const auto& f : m.files) {
          if (f.name_gen == p.name_gen) gen_settled = true;
          if (f.ds_id == p.ds_id && f.name_gen == p.name_gen) found = true;
        }
      return found;
    });
    if (!held.ok()) return held.status();
    if (settled_only && (!has_layout || !gen_settled)) continue;
    if (!*held) {
      Status st = pool.RemoveDataFileByName(fsid, p.ino, p.ds_id, p.name_gen);
      if (!st.ok()) {
        LOG_WARN("leftover data file %s on data server %u kept for now: %s",
                 DataFileName(p.ino, p.name_gen).c_str(), p.ds_id, st.ToString().c_str());
        continue;
      }
    }
    Status st = meta::RunTxn(store, [&](meta::Txn& t) {
      return t.Delete(meta::keys::Pending(fsid, p.ino, p.ds_id, p.name_gen));
    });
    if (!st.ok()) return st;
    resolved++;
  }
  return resolved;
}

Result<bool> StoreJournal::Intend(meta::FsId fsid, meta::Ino ino, uint32_t ds_id,
                                  uint32_t name_gen) {
  return meta::RunTxn(*store_, [&](meta::Txn& t) -> Result<bool> {
    const std::string k = meta::keys::Pending(fsid, ino, ds_id, name_gen);
    auto v = t.GetForUpdate(k);
    if (!v.ok()) return v.status();
    if (*v) return true;
    LOOM_RETURN_IF_ERROR(t.Put(
        k, meta::Encode(meta::PendingFile{ino, ds_id, meta::NowRealtime(), name_gen})));
    return false;
  });
}

Status StoreJournal::Cancel(meta::FsId fsid, meta::Ino ino, uint32_t ds_id, uint32_t name_gen) {
  return meta::RunTxn(*store_, [&](meta::Txn& t) {
    return t.Delete(meta::keys::Pending(fsid, ino, ds_id, name_gen));
  });
}

Status SaveRegistry(meta::KvStore& store, const DataServerPool& pool) {
  const std::vector<DataServerState> servers = pool.Servers();
  const std::vector<uint32_t> removed = pool.RemovedIds();
  return meta::RunTxn(store, [&](meta::Txn& t) -> Status {
    std::vector<meta::DataServerRecord> old;
    Status ds;
    LOOM_RETURN_IF_ERROR(t.Scan(meta::KeyRange::Prefix(meta::keys::DataServerPrefix()), 0,
                                [&](std::string_view, std::string_view val) {
                                  ds = meta::Decode(val, &old.emplace_back());
                                  return ds.ok();
                                }));
    LOOM_RETURN_IF_ERROR(ds);
    for (const meta::DataServerRecord& r : old)
      if (std::find(removed.begin(), removed.end(), r.id) != removed.end())
        LOOM_RETURN_IF_ERROR(t.Delete(meta::keys::DataServer(r.uuid)));
    for (const DataServerState& s : servers) {
      if (s.config.uuid.size() != 16) continue;  // never identified (down since before ids)
      LOOM_RETURN_IF_ERROR(t.Put(meta::keys::DataServer(s.config.uuid),
                                 meta::Encode(RecordOf(s.config, s.draining))));
    }
    return Status::Ok();
  });
}

Result<uint32_t> AddDataServer(meta::KvStore& store, DataServerPool& pool, DataServerConfig c) {
  std::vector<Probe> probe = ProbeAll({c}, pool.options(), true);
  if (!probe[0].status.ok())
    return Status(probe[0].status.code(),
                  "data server " + c.address + ": " + probe[0].status.ToString());
  const std::string& uuid = probe[0].uuid;
  for (const DataServerState& s : pool.Servers())
    if (s.config.uuid == uuid)
      return Status(Code::kExists, "data server " + c.address + " (loom/ds-id " + UuidHex(uuid) +
                                       ") is data server " + std::to_string(s.config.id) +
                                       " at " + s.config.address + " already");
  std::vector<meta::DataServerRecord> known;
  LOOM_RETURN_IF_ERROR(ReadRegistry(store, &known));
  uint32_t id = 0, max = pool.MaxId();
  for (const meta::DataServerRecord& r : known) {
    max = std::max(max, r.id);
    if (r.uuid == uuid) {
      id = r.id;  // seen before: layouts may name it by that id
      Restore(c, r);
    }
  }
  c.id = id ? id : max + 1;
  c.uuid = uuid;
  LOOM_RETURN_IF_ERROR(pool.AddServer(c));
  // Unrecorded, it must not stay in use: files placed there would name an id the store does
  // not know, and the next start would not bring the server back.
  Status saved = SaveRegistry(store, pool);
  if (!saved.ok()) {
    (void)pool.RemoveServer(c.id);
    return Status(saved.code(), "data server " + c.address + " not added: recording it in the "
                                "metadata store: " + saved.ToString());
  }
  return c.id;
}

}  // namespace loom::mds
