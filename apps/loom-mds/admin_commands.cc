#include "admin_commands.h"

#include <cinttypes>
#include <cstdio>
#include <sstream>

#include "mds/fs_identity.h"
#include "meta/errors.h"
#include "meta/policy.h"

namespace loom {

namespace {

using admin::AdminReply;

// "/a/b/c" -> inode number, walking from the root (no permission checks: admin is root).
Result<meta::Ino> ResolvePath(nfs4::Mds& mds, const std::string& path) {
  if (path.empty() || path[0] != '/') return Status::Invalid("paths start with / (the namespace root)");
  return meta::RunTxn(mds.store(), [&](meta::Txn& t) -> Result<meta::Ino> {
    meta::Ino ino = mds.ns().root();
    std::stringstream ss(path);
    std::string part;
    while (std::getline(ss, part, '/')) {
      if (part.empty() || part == ".") continue;
      auto d = mds.ns().Lookup(t, ino, part);
      if (!d.ok()) {
        if (meta::ErrOf(d.status()) == meta::MetaErr::kNoEnt) return Status::NotFound(path + ": no such file or directory");
        return d.status();
      }
      ino = d->ino;
    }
    return ino;
  });
}

std::string Human(uint64_t b) {
  const char* u[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(b);
  int i = 0;
  while (v >= 1024 && i < 5) {
    v /= 1024;
    i++;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, i ? "%.1f %s" : "%.0f %s", v, u[i]);
  return buf;
}

std::string Join(const std::vector<std::string>& v, const char* sep) {
  std::string s;
  for (size_t i = 0; i < v.size(); i++) s += (i ? sep : "") + v[i];
  return s;
}

AdminReply DsList(mds::DataServerPool& pool) {
  std::string out = "ID  STATE          ADDRESS                ADVERTISED             CAPACITY    FREE        LABELS\n";
  for (const auto& s : pool.Servers()) {
    char line[512];
    std::snprintf(line, sizeof line, "%-3u %-14s %-22s %-22s %-11s %-11s %s\n", s.config.id,
                  mds::StateName(s).c_str(), s.config.address.c_str(),
                  s.config.advertised_address.empty() ? "-" : s.config.advertised_address.c_str(),
                  s.space_known ? Human(s.capacity).c_str() : "?", s.space_known ? Human(s.free).c_str() : "?",
                  s.config.labels.empty() ? "-" : Join(s.config.labels, ",").c_str());
    out += line;
    if (!s.last_error.empty() && s.health == mds::Health::kDown) out += "    last error: " + s.last_error + "\n";
  }
  return admin::Ok(out);
}

// Whether any layout names data server `id` (a full scan of the layouts).
Result<bool> LayoutsUse(nfs4::Mds& mds, uint32_t id) {
  return meta::RunTxn(mds.store(), [&](meta::Txn& t) -> Result<bool> {
    bool used = false;
    Status st;
    LOOM_RETURN_IF_ERROR(t.Scan(meta::KeyRange::Prefix(meta::keys::LayoutPrefix(mds.options().fsid)), 0,
                                [&](std::string_view, std::string_view v) {
                                  meta::Layout l;
                                  st = meta::Decode(v, &l);
                                  if (!st.ok()) return false;
                                  for (const auto& m : l.mirrors)
                                    for (const auto& f : m.files)
                                      if (f.ds_id == id) used = true;
                                  return !used;
                                }));
    LOOM_RETURN_IF_ERROR(st);
    return used;
  });
}

std::string DescribeLayout(mds::DataServerPool& pool, const meta::Layout& l, uint64_t size) {
  std::string out;
  char buf[256];
  std::snprintf(buf, sizeof buf, "size %" PRIu64 "  generation %" PRIu64 "  mirrors %zu  stripes %u  stripe_unit %" PRIu64 "\n",
                size, l.generation, l.mirrors.size(), l.stripe_count, l.stripe_unit);
  out += buf;
  for (size_t m = 0; m < l.mirrors.size(); m++) {
    std::snprintf(buf, sizeof buf, "mirror %zu%s\n", m, l.mirrors[m].stale ? "  STALE (being resynced)" : "");
    out += buf;
    for (size_t s = 0; s < l.mirrors[m].files.size(); s++) {
      const meta::DataFile& f = l.mirrors[m].files[s];
      const mds::DataServerConfig* c = pool.Find(f.ds_id);
      std::snprintf(buf, sizeof buf, "  stripe %zu  ds %u (%s, %s)  name-gen %u  owner %u:%u\n", s, f.ds_id,
                    c ? c->address.c_str() : "unknown", mds::HealthName(pool.HealthOf(f.ds_id)), f.name_gen,
                    f.uid, f.gid);
      out += buf;
    }
  }
  return out;
}

}  // namespace

void RegisterMdsAdminCommands(admin::AdminCommands& cmds, nfs4::Mds& mds, mds::DataServerPool& pool,
                              meta::KvStore& store) {
  cmds.Add("ds list", "ds list", true, [&pool](const std::vector<std::string>& args) -> AdminReply {
    if (!args.empty()) return admin::UsageError();
    return DsList(pool);
  });
  cmds.Add("ds add", "ds add HOST:PORT[@ADVHOST:ADVPORT] [--label k=v]...", false,
           [&pool, &store](const std::vector<std::string>& args) -> AdminReply {
             auto p = admin::ParseFlags(args, {"label"});
             if (!p.ok()) return admin::UsageError(p.status().message());
             if (p->positional.size() != 1) return admin::UsageError();
             mds::DataServerConfig c;
             c.address = p->positional[0];
             size_t at = c.address.find('@');
             if (at != std::string::npos) {
               c.advertised_address = c.address.substr(at + 1);
               c.address.resize(at);
             }
             auto labels = p->GetLabels();
             if (!labels.ok()) return admin::UsageError(labels.status().message());
             for (const auto& [k, v] : *labels) c.labels.push_back(k + "=" + v);
             auto id = mds::AddDataServer(store, pool, c);
             if (!id.ok()) return admin::FromStatus(id.status());
             return admin::Ok("added data server " + std::to_string(*id) + " (" + c.address + ")\n");
           });
  auto set_draining = [&pool, &store](const std::vector<std::string>& args, bool on) -> AdminReply {
    if (args.size() != 1) return admin::UsageError();
    auto id = admin::ParseUint(args[0], 1, UINT32_MAX);
    if (!id.ok()) return admin::UsageError(id.status().message());
    Status s = pool.SetDraining(static_cast<uint32_t>(*id), on);
    if (s.ok()) s = mds::SaveRegistry(store, pool);
    return admin::FromStatus(s, std::string("data server ") + args[0] + (on ? " is draining: no new files go there\n" : " takes new files again\n"));
  };
  cmds.Add("ds drain", "ds drain ID", false, [set_draining](const auto& a) { return set_draining(a, true); });
  cmds.Add("ds undrain", "ds undrain ID", false, [set_draining](const auto& a) { return set_draining(a, false); });
  cmds.Add("ds remove", "ds remove ID", false, [&pool, &store, &mds](const std::vector<std::string>& args) -> AdminReply {
    if (args.size() != 1) return admin::UsageError();
    auto id = admin::ParseUint(args[0], 1, UINT32_MAX);
    if (!id.ok()) return admin::UsageError(id.status().message());
    auto used = LayoutsUse(mds, static_cast<uint32_t>(*id));
    if (!used.ok()) return admin::FromStatus(used.status());
    if (*used)
      return admin::Failed("data server " + args[0] + " still holds data files: drain it and move them off (loom mv-data) first\n");
    Status s = pool.RemoveServer(static_cast<uint32_t>(*id));
    if (s.ok()) s = mds::SaveRegistry(store, pool);
    return admin::FromStatus(s, "removed data server " + args[0] + "\n");
  });
  cmds.Add("policy set", "policy set DIR [--mirrors N] [--stripes N] [--stripe-unit BYTES] [--label k=v]... | policy set DIR --clear",
           false, [&mds](const std::vector<std::string>& args) -> AdminReply {
             auto p = admin::ParseFlags(args, {"mirrors", "stripes", "stripe-unit", "label"}, {"clear"});
             if (!p.ok()) return admin::UsageError(p.status().message());
             if (p->positional.size() != 1) return admin::UsageError();
             auto dir = ResolvePath(mds, p->positional[0]);
             if (!dir.ok()) return admin::FromStatus(dir.status());
             if (p->Has("clear")) return admin::FromStatus(mds.SetPolicy(*dir, std::nullopt), "policy cleared\n");
             meta::PlacementPolicy pol;
             auto mi = p->GetUint("mirrors", 1, 3);
             auto st = p->GetUint("stripes", 1, 64);
             auto su = p->GetSize("stripe-unit");
             auto lb = p->GetLabels();
             if (!mi.ok()) return admin::UsageError(mi.status().message());
             if (!st.ok()) return admin::UsageError(st.status().message());
             if (!su.ok()) return admin::UsageError(su.status().message());
             if (!lb.ok()) return admin::UsageError(lb.status().message());
             if (*su && (**su < 4096 || **su % 4096)) return admin::UsageError("--stripe-unit is a multiple of 4096");
             pol.mirrors = mi->value_or(0);
             pol.stripes = static_cast<uint32_t>(st->value_or(0));
             pol.stripe_unit = su->value_or(0);
             for (const auto& [k, v] : *lb) pol.labels.push_back(k + "=" + v);
             return admin::FromStatus(mds.SetPolicy(*dir, pol), "policy set: new files under " + p->positional[0] + " follow it\n");
           });
  cmds.Add("policy get", "policy get DIR", true, [&mds](const std::vector<std::string>& args) -> AdminReply {
    if (args.size() != 1) return admin::UsageError();
    auto dir = ResolvePath(mds, args[0]);
    if (!dir.ok()) return admin::FromStatus(dir.status());
    auto eff = meta::RunTxn(mds.store(), [&](meta::Txn& t) { return meta::EffectivePolicy(t, mds.ns(), *dir); });
    if (!eff.ok()) return admin::FromStatus(eff.status());
    const auto& o = mds.options();
    char buf[256];
    std::snprintf(buf, sizeof buf, "mirrors %u  stripes %u  stripe_unit %" PRIu64 "  labels %s\n",
                  eff->mirrors ? eff->mirrors : o.mirrors, eff->stripes ? eff->stripes : o.stripes,
                  eff->stripe_unit ? eff->stripe_unit : o.stripe_unit,
                  eff->labels.empty() ? "-" : Join(eff->labels, ",").c_str());
    return admin::Ok(buf);
  });
  cmds.Add("layout", "layout PATH", true, [&mds, &pool](const std::vector<std::string>& args) -> AdminReply {
    if (args.size() != 1) return admin::UsageError();
    auto ino = ResolvePath(mds, args[0]);
    if (!ino.ok()) return admin::FromStatus(ino.status());
    auto n = meta::RunTxn(mds.store(), [&](meta::Txn& t) { return mds.ns().GetAttr(t, *ino); });
    if (!n.ok()) return admin::FromStatus(n.status());
    if (n->type != meta::FileType::kReg) return admin::Failed(args[0] + ": not a regular file\n");
    auto l = mds.LayoutOf(*ino);
    if (!l.ok()) {
      if (meta::ErrOf(l.status()) == meta::MetaErr::kNoEnt) return admin::Ok("no data files yet (nothing written)\n");
      return admin::FromStatus(l.status());
    }
    std::string out = DescribeLayout(pool, *l, n->size);
    for (const auto& [c, io] : mds.layouts().Holders(*ino)) {
      char buf[96];
      std::snprintf(buf, sizeof buf, "held by client %016" PRIx64 " (%s)\n", c, (io & nfs4::kIoRw) ? "rw" : "read");
      out += buf;
    }
    return admin::Ok(out);
  });
  cmds.Add("mv-data", "mv-data PATH --to ID[,ID...]", false, [&mds](const std::vector<std::string>& args) -> AdminReply {
    auto p = admin::ParseFlags(args, {"to"});
    if (!p.ok()) return admin::UsageError(p.status().message());
    if (p->positional.size() != 1 || !p->Has("to")) return admin::UsageError();
    auto ids = p->GetIds("to");
    if (!ids.ok()) return admin::UsageError(ids.status().message());
    auto ino = ResolvePath(mds, p->positional[0]);
    if (!ino.ok()) return admin::FromStatus(ino.status());
    return admin::FromStatus(mds.MoveData(*ino, *ids), "moved the data of " + p->positional[0] + "\n");
  });
  cmds.Add("fence", "fence PATH [--no-recall]", false, [&mds](const std::vector<std::string>& args) -> AdminReply {
    // --no-recall: fence at once, as when a holder ignores the recall until its deadline
    // (the clients' old ids are refused by the data servers; they must get new layouts).
    auto p = admin::ParseFlags(args, {}, {"no-recall"});
    if (!p.ok()) return admin::UsageError(p.status().message());
    if (p->positional.size() != 1) return admin::UsageError();
    auto ino = ResolvePath(mds, p->positional[0]);
    if (!ino.ok()) return admin::FromStatus(ino.status());
    const bool recall = !p->Has("no-recall");
    if (recall) {
      // Holders that return in time never see their ids refused; the late ones do.
      mds.RecallLayouts(*ino, "fenced by an administrator");
      const uint32_t t = mds.options().recall_timeout_ms ? mds.options().recall_timeout_ms
                                                         : mds.options().lease_seconds * 1000;
      mds.WaitRecall(*ino, static_cast<int>(t));
    }
    return admin::FromStatus(mds.Fence(*ino), "fenced " + p->positional[0] +
                                                  (recall ? ": layouts recalled, " : ": ") +
                                                  "data files have a new owner\n");
  });
}

}  // namespace loom
