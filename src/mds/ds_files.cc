// DataServerPool: small control files (owner markers, data-server ids), directory listings and
// the by-name operations that recovery and scrub need. All of it over plain NFSv3, so any
// NFSv3 filer can be a data server.
#include <cinttypes>

#include "common/log.h"
#include "mds/data_servers.h"
#include "mds/data_servers_internal.h"

namespace loom::mds {

using namespace loom::nfs3;  // NFSv3 types and constants keep their RFC 1813 names

namespace {
constexpr uint32_t kMaxControlFile = 4096;
}  // namespace

Result<std::optional<std::string>> DataServerPool::LookupIn(Server& s, const std::string& dir,
                                                            const std::string& name) {
  LOOKUP3args la;
  la.what.dir = Fh(dir);
  la.what.name = name;
  LOOKUP3res lr;
  LOOM_RETURN_IF_ERROR(Call(s, NFSPROC3_LOOKUP, la, &lr));
  if (lr.status == NFS3ERR_NOENT) return std::optional<std::string>();
  if (lr.status != NFS3_OK) return FromNfs3(lr.status, s.cfg.id, "LOOKUP");
  return std::optional<std::string>(lr.resok.object.data.str());
}

Result<std::optional<std::string>> DataServerPool::ReadSmall(Server& s, const std::string& fh) {
  READ3args ra;
  ra.file = Fh(fh);
  ra.offset = 0;
  ra.count = kMaxControlFile;
  READ3res rr;
  LOOM_RETURN_IF_ERROR(Call(s, NFSPROC3_READ, ra, &rr));
  if (rr.status == NFS3ERR_STALE || rr.status == NFS3ERR_NOENT) return std::optional<std::string>();
  if (rr.status != NFS3_OK) return FromNfs3(rr.status, s.cfg.id, "READ");
  return std::optional<std::string>(rr.resok.data.str());
}

Result<bool> DataServerPool::CreateSmallIn(Server& s, const std::string& dir,
                                           const std::string& name, std::string_view content) {
  CREATE3args a;
  a.where.dir = Fh(dir);
  a.where.name = name;
  a.how.mode = GUARDED;
  a.how.obj_attributes.mode = {true, 0644};
  CREATE3res r;
  LOOM_RETURN_IF_ERROR(Call(s, NFSPROC3_CREATE, a, &r));
  if (r.status == NFS3ERR_EXIST) return false;
  if (r.status != NFS3_OK) return FromNfs3(r.status, s.cfg.id, "CREATE");
  std::string fh;
  if (r.resok.obj.handle_follows) {
    fh = r.resok.obj.handle.data.str();
  } else {
    auto found = LookupIn(s, dir, name);
    if (!found.ok()) return found.status();
    if (!*found) return Status::Io("data server " + std::to_string(s.cfg.id) + ": " + name + " vanished");
    fh = **found;
  }
  // FILE_SYNC (RFC 1813 §3.3.7): the marker is on stable storage before anyone relies on it.
  WRITE3args w;
  w.file = Fh(fh);
  w.offset = 0;
  w.count = static_cast<uint32_t>(content.size());
  w.stable = FILE_SYNC;
  w.data = Bytes::Copy(std::string(content));
  WRITE3res wr;
  LOOM_RETURN_IF_ERROR(Call(s, NFSPROC3_WRITE, w, &wr));
  if (wr.status != NFS3_OK) return FromNfs3(wr.status, s.cfg.id, "WRITE");
  if (wr.resok.count != content.size())
    return Status::Io("data server " + std::to_string(s.cfg.id) + ": short write of " + name);
  return true;
}

Result<std::optional<std::string>> DataServerPool::WalkDirs(Server& s,
                                                            const std::vector<std::string>& path,
                                                            size_t n, bool create) {
  auto c = Client(s);  // sets root_fh
  if (!c.ok()) return c.status();
  std::string fh;
  {
    std::lock_guard<std::mutex> l(s.mu);
    fh = s.root_fh;
  }
  for (size_t i = 0; i < n; i++) {
    if (create) {
      Result<std::string> d = MakeDir(s, fh, path[i], true);
      if (!d.ok()) return d.status();
      fh = *d;
    } else {
      auto d = LookupIn(s, fh, path[i]);
      if (!d.ok()) return d.status();
      if (!*d) return std::optional<std::string>();
      fh = **d;
    }
  }
  return std::optional<std::string>(fh);
}

Result<std::optional<std::string>> DataServerPool::ReadControlFile(
    uint32_t id, const std::vector<std::string>& path) {
  auto known = Known(id);
  if (!known.ok()) return known.status();
  if (path.empty()) return Status::Invalid("empty path");
  auto dir = WalkDirs(**known, path, path.size() - 1, false);
  if (!dir.ok() || !*dir) return dir;
  auto f = LookupIn(**known, **dir, path.back());
  if (!f.ok() || !*f) return f;
  return ReadSmall(**known, **f);
}

Result<bool> DataServerPool::CreateControlFile(uint32_t id, const std::vector<std::string>& path,
                                               std::string_view content) {
  auto known = Known(id);
  if (!known.ok()) return known.status();
  if (path.empty()) return Status::Invalid("empty path");
  auto dir = WalkDirs(**known, path, path.size() - 1, true);
  if (!dir.ok()) return dir.status();
  return CreateSmallIn(**known, **dir, path.back(), content);
}

Result<std::optional<std::vector<DsEntry>>> DataServerPool::ListDir(
    uint32_t id, const std::vector<std::string>& path) {
  using Out = std::optional<std::vector<DsEntry>>;
  auto known = Known(id);
  if (!known.ok()) return known.status();
  Server& s = **known;
  auto dir = WalkDirs(s, path, path.size(), false);
  if (!dir.ok()) return dir.status();
  if (!*dir) return Out();
  std::vector<DsEntry> out;
  READDIRPLUS3args a;
  a.dir = Fh(**dir);
  a.dircount = 32 * 1024;
  a.maxcount = 64 * 1024;
  for (;;) {
    READDIRPLUS3res r;
    LOOM_RETURN_IF_ERROR(Call(s, NFSPROC3_READDIRPLUS, a, &r));
    if (r.status != NFS3_OK) return FromNfs3(r.status, s.cfg.id, "READDIRPLUS");
    for (const entryplus3& e : r.resok.reply.entries) {
      a.cookie = e.cookie;
      if (e.name == "." || e.name == "..") continue;
      DsEntry d;
      d.name = e.name;
      if (e.name_handle.handle_follows) d.fh = e.name_handle.handle.data.str();
      if (e.name_attributes.attributes_follow) {
        d.is_dir = e.name_attributes.attributes.type == NF3DIR;
        d.size = e.name_attributes.attributes.size;
      }
      out.push_back(std::move(d));
    }
    if (r.resok.reply.eof || r.resok.reply.entries.empty()) break;
    a.cookieverf = r.resok.cookieverf;
  }
  return Out(std::move(out));
}

Status DataServerPool::MoveToLostFound(uint32_t id, const std::string& tree,
                                       const std::string& name) {
  auto known = Known(id);
  if (!known.ok()) return known.status();
  Server& s = **known;
  auto from = WalkDirs(s, {"loom", tree}, 2, false);
  if (!from.ok()) return from.status();
  if (!*from) return Status::Ok();  // nothing to move
  auto to = WalkDirs(s, {"loom", kLostFound}, 2, true);
  if (!to.ok()) return to.status();
  // RENAME replaces an existing target: pick a name nothing holds yet.
  for (int n = 0; n < 1000; n++) {
    std::string target = tree + "-" + name + (n ? "." + std::to_string(n) : "");
    auto taken = LookupIn(s, **to, target);
    if (!taken.ok()) return taken.status();
    if (*taken) continue;
    RENAME3args a;
    a.from.dir = Fh(**from);
    a.from.name = name;
    a.to.dir = Fh(**to);
    a.to.name = target;
    RENAME3res r;
    LOOM_RETURN_IF_ERROR(Call(s, NFSPROC3_RENAME, a, &r));
    if (r.status == NFS3_OK || r.status == NFS3ERR_NOENT) return Status::Ok();
    return FromNfs3(r.status, s.cfg.id, "RENAME");
  }
  return Status(Code::kExists, "data server " + std::to_string(id) + ": no free name in loom/" +
                                   kLostFound + " for " + tree + "-" + name);
}

Status DataServerPool::RenameDataFile(uint32_t id, meta::FsId fsid, meta::Ino from, meta::Ino to,
                                      uint32_t from_gen) {
  auto known = Known(id);
  if (!known.ok()) return known.status();
  Server& s = **known;
  Result<std::string> dir = FsDir(s, fsid, false);
  if (!dir.ok()) return dir.status();
  const std::string from_name = DataFileName(from, from_gen), to_name = DataFileName(to);
  // RENAME replaces an existing target: never let it (nothing is destroyed to adopt a file).
  auto target = LookupIn(s, *dir, to_name);
  if (!target.ok()) return target.status();
  if (*target)
    return Status(Code::kExists, "data server " + std::to_string(id) + ": " + to_name +
                                     " exists; not renaming " + from_name + " over it");
  RENAME3args a;
  a.from.dir = Fh(*dir);
  a.from.name = from_name;
  a.to.dir = Fh(*dir);
  a.to.name = to_name;
  RENAME3res r;
  LOOM_RETURN_IF_ERROR(Call(s, NFSPROC3_RENAME, a, &r));
  return FromNfs3(r.status, s.cfg.id, "RENAME");
}

Result<bool> DataServerPool::DataFileExists(const meta::DataFile& f) {
  auto known = Known(f.ds_id);
  if (!known.ok()) return known.status();
  GETATTR3args a;
  a.object = Fh(f.fh);
  GETATTR3res r;
  LOOM_RETURN_IF_ERROR(Call(**known, NFSPROC3_GETATTR, a, &r));
  if (r.status == NFS3_OK) return true;
  if (r.status == NFS3ERR_STALE || r.status == NFS3ERR_BADHANDLE || r.status == NFS3ERR_NOENT)
    return false;
  return FromNfs3(r.status, f.ds_id, "GETATTR");
}

Status DataServerPool::RemoveDataFileByName(meta::FsId fsid, meta::Ino ino, uint32_t ds_id,
                                            uint32_t name_gen) {
  auto known = Known(ds_id);
  if (!known.ok()) return known.status();
  Server& s = **known;
  Result<std::string> dir = FsDir(s, fsid, false);
  if (!dir.ok()) return dir.status().code() == Code::kNotFound ? Status::Ok() : dir.status();
  REMOVE3args ra;
  ra.object.dir = Fh(*dir);
  ra.object.name = DataFileName(ino, name_gen);
  REMOVE3res rr;
  LOOM_RETURN_IF_ERROR(Call(s, NFSPROC3_REMOVE, ra, &rr));
  if (rr.status == NFS3_OK || rr.status == NFS3ERR_NOENT) return Status::Ok();
  return FromNfs3(rr.status, s.cfg.id, "REMOVE");
}

Result<bool> DataServerPool::CheckOwner(Server& s, const std::string& dir_fh, const std::string& tree,
                                        const std::string& owner, bool create) {
  for (int attempt = 0; attempt < 2; attempt++) {
    auto f = LookupIn(s, dir_fh, kOwnerFile);
    if (!f.ok()) return f.status();
    if (*f) {
      auto text = ReadSmall(s, **f);
      if (!text.ok()) return text.status();
      std::string got = text->value_or("");
      while (!got.empty() && (got.back() == '\n' || got.back() == ' ')) got.pop_back();
      if (got == owner) return true;
      return Status(Code::kPermission, "data server " + std::to_string(s.cfg.id) + ": loom/" +
                                           tree + " belongs to filesystem " + got + ", not " + owner);
    }
    if (!create) return false;  // a tree made before markers existed
    auto made = CreateSmallIn(s, dir_fh, kOwnerFile, owner + "\n");
    if (!made.ok()) return made.status();
    if (*made) return true;
    // Someone made it between our LOOKUP and CREATE: read what they wrote.
  }
  return Status::Io("data server " + std::to_string(s.cfg.id) + ": cannot read loom/" + tree +
                    "/" + kOwnerFile);
}

}  // namespace loom::mds
