#include "mds/scrub.h"

#include <map>
#include <set>
#include <string>
#include <tuple>

namespace loom::mds {

namespace {

// (data server, ino and name generation of the data file's name)
using Key = std::tuple<uint32_t, meta::Ino, uint32_t>;

// Every record of one prefix, decoded.
template <typename Rec, typename Fn>
Status ScanAll(meta::KvStore& store, const std::string& prefix, Fn fn) {
  return meta::RunTxn(store, [&](meta::Txn& t) -> Status {
    Status d;
    LOOM_RETURN_IF_ERROR(t.Scan(meta::KeyRange::Prefix(prefix), 0,
                                [&](std::string_view, std::string_view v) {
                                  Rec r;
                                  d = meta::Decode(v, &r);
                                  if (d.ok()) fn(r);
                                  return d.ok();
                                }));
    return d;
  });
}

}  // namespace

Result<ScrubReport> Scrub(meta::KvStore& store, meta::FsId fsid, DataServerPool& pool, bool repair,
                          std::FILE* out) {
  ScrubReport rep;
  const std::string tree = pool.TreeDir(fsid);
  // What the store says should exist (layouts are keyed L|fsid|ino).
  std::set<Key> held, queued;
  std::map<Key, bool> intents;  // -> file seen on its server
  std::vector<std::pair<meta::Ino, meta::DataFile>> files;
  Status st = meta::RunTxn(store, [&](meta::Txn& t) -> Status {
    files.clear();
    Status d;
    const std::string prefix = meta::keys::LayoutPrefix(fsid);
    LOOM_RETURN_IF_ERROR(t.Scan(meta::KeyRange::Prefix(prefix), 0,
                                [&](std::string_view k, std::string_view v) {
                                  meta::Layout l;
                                  d = k.size() == prefix.size() + 8
                                          ? meta::Decode(v, &l)
                                          : Status::Internal("malformed layout key");
                                  if (!d.ok()) return false;
                                  meta::Ino ino = 0;
                                  for (size_t i = prefix.size(); i < k.size(); i++)
                                    ino = ino << 8 | static_cast<uint8_t>(k[i]);
                                  for (const auto& m : l.mirrors)
                                    for (const auto& f : m.files) files.emplace_back(ino, f);
                                  return true;
                                }));
    return d;
  });
  if (!st.ok()) return st;
  for (const auto& [ino, f] : files) held.emplace(f.ds_id, ino, f.name_gen);
  LOOM_RETURN_IF_ERROR(ScanAll<meta::GcItem>(store, meta::keys::GcPrefix(fsid), [&](const meta::GcItem& g) {
    queued.emplace(g.file.ds_id, g.ino, g.file.name_gen);
  }));
  LOOM_RETURN_IF_ERROR(ScanAll<meta::PendingFile>(store, meta::keys::PendingPrefix(fsid),
                                                  [&](const meta::PendingFile& p) {
                                                    intents[{p.ds_id, p.ino, p.name_gen}] = false;
                                                  }));
  rep.data_files = files.size();
  {
    std::set<meta::Ino> inos;
    for (const auto& [ino, f] : files) inos.insert(ino);
    rep.layouts = inos.size();
  }
  std::set<uint32_t> down;
  auto unreachable = [&](uint32_t ds, const Status& why) {
    if (!down.insert(ds).second) return;
    rep.unreachable++;
    std::fprintf(out, "unreachable ds=%u error=\"%s\"\n", ds, why.ToString().c_str());
  };

  // Layouts whose data file is gone.
  for (const auto& [ino, f] : files) {
    if (down.count(f.ds_id)) continue;
    auto there = pool.DataFileExists(f);
    if (!there.ok()) {
      unreachable(f.ds_id, there.status());
      continue;
    }
    if (!*there) {
      rep.missing++;
      std::fprintf(out, "missing-data ino=%llu ds=%u\n", static_cast<unsigned long long>(ino), f.ds_id);
    }
  }

  // Data files nothing holds.
  for (const DataServerState& s : pool.Servers()) {
    const uint32_t ds = s.config.id;
    if (down.count(ds)) continue;
    auto list = pool.ListDir(ds, {"loom", tree});
    if (!list.ok()) {
      unreachable(ds, list.status());
      continue;
    }
    for (const DsEntry& e : list->value_or(std::vector<DsEntry>{})) {
      auto id = ParseDataFileName(e.name);
      if (!id || e.is_dir) continue;  // the owner marker and anything not a data file
      Key key{ds, id->ino, id->name_gen};
      auto intent = intents.find(key);
      if (intent != intents.end()) intent->second = true;
      if (held.count(key) || queued.count(key)) continue;
      rep.orphans++;
      const bool proof = intent != intents.end();
      const char* action = "none";
      if (repair) {
        Status r = proof ? pool.RemoveDataFileByName(fsid, id->ino, ds, id->name_gen)
                         : pool.MoveToLostFound(ds, tree, e.name);
        if (r.ok() && proof) {
          r = meta::RunTxn(store, [&](meta::Txn& t) {
            return t.Delete(meta::keys::Pending(fsid, id->ino, ds, id->name_gen));
          });
          intents.erase(key);
        }
        if (r.ok()) {
          rep.repaired++;
          action = proof ? "removed" : "moved-to-lost+found";
        } else {
          action = "failed";
        }
      }
      std::fprintf(out, "orphan-data ds=%u file=loom/%s/%s size=%llu proof=%s action=%s\n", ds,
                   tree.c_str(), e.name.c_str(), static_cast<unsigned long long>(e.size),
                   proof ? "intent" : "none", action);
    }
  }

  // Intent records that name no file (or one a layout holds after all).
  for (const auto& [key, seen] : intents) {
    // (no structured binding: clang before 16 cannot capture one in the lambda below)
    const auto ds = std::get<0>(key);
    const auto ino = std::get<1>(key);
    const auto gen = std::get<2>(key);
    if (down.count(ds) || (seen && !held.count(key))) continue;
    rep.stale_intents++;
    const char* action = "none";
    if (repair) {
      Status r = meta::RunTxn(store, [&](meta::Txn& t) {
        return t.Delete(meta::keys::Pending(fsid, ino, ds, gen));
      });
      if (r.ok()) rep.repaired++;
      action = r.ok() ? "deleted" : "failed";
    }
    std::fprintf(out, "stale-intent ino=%llu ds=%u", static_cast<unsigned long long>(ino), ds);
    if (gen) std::fprintf(out, " gen=%u", gen);
    std::fprintf(out, " action=%s\n", action);
  }
  std::fprintf(out,
               "summary layouts=%zu data_files=%zu missing=%zu orphans=%zu stale_intents=%zu "
               "unreachable=%zu repaired=%zu unrepaired=%zu\n",
               rep.layouts, rep.data_files, rep.missing, rep.orphans, rep.stale_intents,
               rep.unreachable, rep.repaired, rep.unrepaired());
  std::fflush(out);
  return rep;
}

}  // namespace loom::mds
