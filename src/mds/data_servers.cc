// DataServerPool: connections, health, placement, data-file creation and removal.
// The proxied I/O is in data_io.cc.
#include "mds/data_servers.h"

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <future>
#include <latch>
#include <set>

#include "common/log.h"
#include "mds/data_servers_internal.h"

namespace loom::mds {

using namespace loom::nfs3;  // NFSv3 types and constants keep their RFC 1813 names

const char* HealthName(Health h) {
  switch (h) {
    case Health::kUnknown: return "unknown";
    case Health::kUp: return "up";
    case Health::kDown: return "down";
  }
  return "?";
}

std::string FsDirName(meta::FsId fsid) { return std::to_string(fsid); }

std::string DataFileName(meta::Ino ino) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, ino);
  return buf;
}

std::optional<meta::Ino> ParseDataFileName(std::string_view name) {
  if (name.size() != 16) return std::nullopt;
  meta::Ino v = 0;
  for (char c : name) {
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return std::nullopt;
    v = v << 4 | static_cast<meta::Ino>(d);
  }
  return v;
}

Status FromNfs3(nfsstat3 st, uint32_t ds_id, const char* what) {
  if (st == NFS3_OK) return Status::Ok();
  std::string where = "data server " + std::to_string(ds_id) + " " + what + " " +
                      nfsstat3_name(st);
  int err = EIO;
  switch (st) {
    case NFS3ERR_JUKEBOX: return Status::Unavailable(where);
    case NFS3ERR_STALE:
    case NFS3ERR_BADHANDLE: err = ESTALE; where += " (data file lost)"; break;
    case NFS3ERR_NOENT: err = ENOENT; break;
    case NFS3ERR_EXIST: err = EEXIST; break;
    case NFS3ERR_PERM: err = EPERM; break;
    case NFS3ERR_ACCES: err = EACCES; break;
    case NFS3ERR_NOSPC: err = ENOSPC; break;
    case NFS3ERR_DQUOT: err = EDQUOT; break;
    case NFS3ERR_FBIG: err = EFBIG; break;
    case NFS3ERR_ROFS: err = EROFS; break;
    case NFS3ERR_INVAL: err = EINVAL; break;
    case NFS3ERR_ISDIR: err = EISDIR; break;
    case NFS3ERR_NOTDIR: err = ENOTDIR; break;
    case NFS3ERR_NAMETOOLONG: err = ENAMETOOLONG; break;
    default: break;
  }
  return Status::FromErrno(err, where);
}

Result<std::unique_ptr<DataServerPool>> DataServerPool::Create(
    std::vector<DataServerConfig> servers, Options opts, rpc::LoopGroup* loops) {
  if (servers.empty()) return Status::Invalid("no data servers configured");
  std::set<uint32_t> ids;
  for (const DataServerConfig& c : servers) {
    if (c.address.empty()) return Status::Invalid("data server " + std::to_string(c.id) + ": no address");
    if (!ids.insert(c.id).second) return Status::Invalid("duplicate data server id " + std::to_string(c.id));
  }
  if (opts.stripe_unit == 0 || opts.max_io == 0) return Status::Invalid("stripe_unit and max_io must be > 0");
  return std::unique_ptr<DataServerPool>(new DataServerPool(std::move(servers), opts, loops));
}

DataServerPool::DataServerPool(std::vector<DataServerConfig> servers, Options opts,
                               rpc::LoopGroup* loops)
    : opts_(std::move(opts)), loops_(loops) {
  if (!loops_) {
    own_loops_ = std::make_unique<rpc::LoopGroup>(1);
    own_loops_->Start();
    loops_ = own_loops_.get();
  }
  std::sort(servers.begin(), servers.end(),
            [](const DataServerConfig& a, const DataServerConfig& b) { return a.id < b.id; });
  for (DataServerConfig& c : servers) {
    if (c.advertised_address.empty()) c.advertised_address = c.address;
    if (c.export_path.empty()) c.export_path = "/";
    servers_.push_back(std::make_unique<Server>(std::move(c)));
  }
  fanout_ = std::make_unique<rpc::WorkerPool>(std::max(1, opts_.fanout_threads));
  if (opts_.health_interval_ms > 0) health_thread_ = std::thread([this] { HealthLoop(); });
}

DataServerPool::~DataServerPool() {
  {
    std::lock_guard<std::mutex> l(health_mu_);
    stopping_ = true;
  }
  health_cv_.notify_all();
  if (health_thread_.joinable()) health_thread_.join();
  fanout_.reset();
  // Connections go before the loops they live on.
  for (auto& s : servers_) {
    std::shared_ptr<nfs3::Nfs3Client> c;
    {
      std::lock_guard<std::mutex> l(s->mu);
      c = std::move(s->client);
    }
    if (c) c->rpc().Close();
  }
  servers_.clear();
  own_loops_.reset();
}

// --- Servers and health ---

DataServerPool::Server* DataServerPool::Lookup(uint32_t id) const {
  auto it = std::lower_bound(servers_.begin(), servers_.end(), id,
                             [](const std::unique_ptr<Server>& s, uint32_t v) { return s->cfg.id < v; });
  return it != servers_.end() && (*it)->cfg.id == id ? it->get() : nullptr;
}

const DataServerConfig* DataServerPool::Find(uint32_t id) const {
  Server* s = Lookup(id);
  return s ? &s->cfg : nullptr;
}

std::vector<DataServerState> DataServerPool::Servers() const {
  std::vector<DataServerState> out;
  for (const auto& s : servers_) {
    std::lock_guard<std::mutex> l(s->mu);
    out.push_back(DataServerState{s->cfg, s->health, s->since_ms, s->last_error});
  }
  return out;
}

Health DataServerPool::HealthOf(uint32_t id) const {
  Server* s = Lookup(id);
  if (!s) return Health::kUnknown;
  std::lock_guard<std::mutex> l(s->mu);
  return s->health;
}

void DataServerPool::MarkUp(Server& s) {
  std::lock_guard<std::mutex> l(s.mu);
  if (s.health == Health::kUp) return;
  if (s.health == Health::kDown) LOG_INFO("data server %u (%s) is up", s.cfg.id, s.cfg.address.c_str());
  s.health = Health::kUp;
  s.since_ms = rpc::NowMs();
  s.last_error.clear();
}

void DataServerPool::MarkDown(Server& s, const Status& why) {
  std::lock_guard<std::mutex> l(s.mu);
  int64_t now = rpc::NowMs();
  s.failed_ms = now;
  s.last_error = why.ToString();
  if (s.health == Health::kDown) return;
  LOG_WARN("data server %u (%s) is down: %s", s.cfg.id, s.cfg.address.c_str(), s.last_error.c_str());
  s.health = Health::kDown;
  s.since_ms = now;
}

bool DataServerPool::Usable(const Server& s) const {
  std::lock_guard<std::mutex> l(s.mu);
  return s.health != Health::kDown || rpc::NowMs() - s.failed_ms >= opts_.down_retry_ms;
}

Result<std::shared_ptr<nfs3::Nfs3Client>> DataServerPool::Client(Server& s) {
  {
    std::lock_guard<std::mutex> l(s.mu);
    if (s.client && !s.client->rpc().closed()) return s.client;
  }
  std::lock_guard<std::mutex> connecting(s.connect_mu);
  {
    std::lock_guard<std::mutex> l(s.mu);  // someone else may have connected meanwhile
    if (s.client && !s.client->rpc().closed()) return s.client;
  }
  rpc::RpcClient::Options ro;
  ro.timeout_ms = opts_.rpc_timeout_ms;
  ro.connect_timeout_ms = opts_.connect_timeout_ms;
  // Whatever stops a connection (refused, unreachable, timed out, MNT refused), the server is
  // unusable for now: kUnavailable, which the NFSv4 layer answers with NFS4ERR_DELAY.
  auto unavailable = [&](const Status& why) {
    MarkDown(s, why);
    return Status::Unavailable("data server " + std::to_string(s.cfg.id) + ": " + why.ToString());
  };
  auto rc = rpc::RpcClient::Connect(loops_->Next(), s.cfg.address, ro);
  if (!rc.ok()) return unavailable(rc.status());
  auto c = std::make_shared<nfs3::Nfs3Client>(std::move(rc.value()), opts_.cred);
  Result<nfs_fh3> root = c->Mount(s.cfg.export_path);
  if (!root.ok()) {
    c->rpc().Close();
    return unavailable(root.status());
  }
  FSINFO3args fa;
  fa.fsroot = *root;
  FSINFO3res fr;
  Status fst = c->Call(NFSPROC3_FSINFO, fa, &fr);
  {
    std::lock_guard<std::mutex> l(s.mu);
    std::string fh = root->data.str();
    if (fh != s.root_fh) {  // first connect, or the export changed under us
      s.root_fh = fh;
      s.loom_fh.clear();
      s.fs_dirs.clear();
    }
    if (fst.ok() && fr.status == NFS3_OK) {
      s.rtmax = fr.resok.rtmax;
      s.wtmax = fr.resok.wtmax;
    }
    s.client = c;
  }
  MarkUp(s);
  return c;
}

void DataServerPool::DropClient(Server& s, const std::shared_ptr<nfs3::Nfs3Client>& c) {
  {
    std::lock_guard<std::mutex> l(s.mu);
    if (s.client == c) s.client.reset();
  }
  c->rpc().Close();
}

Result<DataServerPool::Server*> DataServerPool::Known(uint32_t id) const {
  Server* s = Lookup(id);
  if (!s) return Status::NotFound("unknown data server " + std::to_string(id));
  return s;
}

Status DataServerPool::Ping(uint32_t id) {
  auto known = Known(id);
  if (!known.ok()) return known.status();
  Server* s = *known;
  auto c = Client(*s);  // marks down on failure
  if (!c.ok()) return c.status();
  auto done = std::make_shared<std::promise<Status>>();
  std::future<Status> f = done->get_future();
  (*c)->rpc().CallAsync(NFS_PROGRAM, NFS_V3, NFSPROC3_NULL, opts_.cred, [](xdr::Encoder&) {},
                        [done](Result<rpc::Reply> r) { done->set_value(r.status()); });
  Status st = f.wait_for(std::chrono::milliseconds(opts_.ping_timeout_ms)) ==
                      std::future_status::ready
                  ? f.get()
                  : Status::Timeout("NULL ping of data server " + std::to_string(id));
  if (st.ok()) {
    MarkUp(*s);
  } else {
    DropClient(*s, *c);
    MarkDown(*s, st);
  }
  return st;
}

void DataServerPool::CheckHealth() {
  ForEach(servers_.size(), [&](size_t i) { (void)Ping(servers_[i]->cfg.id); });
}

void DataServerPool::HealthLoop() {
  std::unique_lock<std::mutex> l(health_mu_);
  while (!stopping_) {
    l.unlock();
    CheckHealth();
    l.lock();
    health_cv_.wait_for(l, std::chrono::milliseconds(opts_.health_interval_ms),
                        [this] { return stopping_; });
  }
}

void DataServerPool::ForEach(size_t n, const std::function<void(size_t)>& fn) {
  if (n == 0) return;
  // Shared: a finishing task may still be inside count_down when wait() returns.
  auto done = std::make_shared<std::latch>(static_cast<std::ptrdiff_t>(n - 1));
  for (size_t i = 1; i < n; i++) {
    fanout_->Submit([&fn, done, i] {
      fn(i);
      done->count_down();
    });
  }
  fn(0);
  done->wait();
}

// --- Directories ---

Result<std::string> DataServerPool::MakeDir(Server& s, const std::string& parent,
                                            const std::string& name, bool create) {
  LOOKUP3args la;
  la.what.dir = Fh(parent);
  la.what.name = name;
  LOOKUP3res lr;
  LOOM_RETURN_IF_ERROR(Call(s, NFSPROC3_LOOKUP, la, &lr));
  if (lr.status == NFS3_OK) return lr.resok.object.data.str();
  if (lr.status != NFS3ERR_NOENT || !create) return FromNfs3(lr.status, s.cfg.id, "LOOKUP");
  MKDIR3args ma;
  ma.where = la.what;
  ma.attributes.mode = {true, 0755};
  ma.attributes.uid = {true, 0};
  ma.attributes.gid = {true, 0};
  MKDIR3res mr;
  LOOM_RETURN_IF_ERROR(Call(s, NFSPROC3_MKDIR, ma, &mr));
  if (mr.status == NFS3_OK && mr.resok.obj.handle_follows) return mr.resok.obj.handle.data.str();
  if (mr.status != NFS3_OK && mr.status != NFS3ERR_EXIST) return FromNfs3(mr.status, s.cfg.id, "MKDIR");
  LOOM_RETURN_IF_ERROR(Call(s, NFSPROC3_LOOKUP, la, &lr));  // made by someone else, or no handle
  if (lr.status != NFS3_OK) return FromNfs3(lr.status, s.cfg.id, "LOOKUP");
  return lr.resok.object.data.str();
}

void DataServerPool::SetTree(meta::FsId fsid, std::string dir, std::string owner) {
  std::lock_guard<std::mutex> l(trees_mu_);
  trees_[fsid] = Tree{std::move(dir), std::move(owner)};
}

std::string DataServerPool::TreeDir(meta::FsId fsid) const {
  std::lock_guard<std::mutex> l(trees_mu_);
  auto it = trees_.find(fsid);
  return it != trees_.end() ? it->second.dir : FsDirName(fsid);
}

Result<std::string> DataServerPool::FsDir(Server& s, meta::FsId fsid, bool create) {
  auto c = Client(s);  // sets root_fh
  if (!c.ok()) return c.status();
  std::string root, loom;
  {
    std::lock_guard<std::mutex> l(s.mu);
    auto it = s.fs_dirs.find(fsid);
    if (it != s.fs_dirs.end()) return it->second;
    root = s.root_fh;
    loom = s.loom_fh;
  }
  if (loom.empty()) {
    Result<std::string> r = MakeDir(s, root, "loom", create);
    if (!r.ok()) return r.status();
    loom = *r;
  }
  Tree tree{FsDirName(fsid), ""};
  {
    std::lock_guard<std::mutex> l(trees_mu_);
    auto it = trees_.find(fsid);
    if (it != trees_.end()) tree = it->second;
  }
  Result<std::string> dir = MakeDir(s, loom, tree.dir, create);
  if (!dir.ok()) return dir.status();
  if (!tree.owner.empty()) LOOM_RETURN_IF_ERROR(CheckOwner(s, *dir, tree.dir, tree.owner, create));
  std::lock_guard<std::mutex> l(s.mu);
  s.loom_fh = loom;
  s.fs_dirs[fsid] = *dir;
  return *dir;
}

void DataServerPool::ForgetFsDir(Server& s, meta::FsId fsid) {
  std::lock_guard<std::mutex> l(s.mu);
  s.fs_dirs.erase(fsid);
  s.loom_fh.clear();
}

Status DataServerPool::PrepareFilesystem(meta::FsId fsid) {
  std::vector<Status> st(servers_.size());
  ForEach(servers_.size(), [&](size_t i) { st[i] = FsDir(*servers_[i], fsid, true).status(); });
  for (const Status& s : st) LOOM_RETURN_IF_ERROR(s);
  return Status::Ok();
}

// --- Creating data files ---

Result<std::string> DataServerPool::CreateOn(Server& s, meta::FsId fsid, meta::Ino ino) {
  bool ours = false;  // an earlier attempt of this store may have made the file
  if (journal_) {
    Result<bool> prior = journal_->Intend(fsid, ino, s.cfg.id);
    if (!prior.ok()) return prior.status();
    ours = *prior;
  }
  for (int attempt = 0;; ++attempt) {
    Result<std::string> dir = FsDir(s, fsid, true);
    if (!dir.ok()) return dir.status();
    CREATE3args a;
    a.where.dir = Fh(*dir);
    a.where.name = DataFileName(ino);
    a.how.mode = GUARDED;
    sattr3& sa = a.how.obj_attributes;
    sa.mode = {true, 0600};
    sa.uid = {true, 0};
    sa.gid = {true, 0};
    CREATE3res r;
    LOOM_RETURN_IF_ERROR(Call(s, NFSPROC3_CREATE, a, &r));
    if (r.status == NFS3ERR_EXIST) {
      // Only a file an intent record of this store vouches for is taken over (emptied: its
      // layout was never stored, so no client saw its bytes). Anything else there is data
      // this store does not know — from a lost or another store — and is never touched.
      if (!ours && journal_) LOOM_RETURN_IF_ERROR(journal_->Cancel(fsid, ino, s.cfg.id));
      if (!ours)
        return Status(Code::kExists, "data server " + std::to_string(s.cfg.id) + ": " +
                                         TreeDir(fsid) + "/" + a.where.name +
                                         " exists and this metadata store did not create it; "
                                         "left alone (see loom-mds --scrub)");
      a.how.mode = UNCHECKED;
      sa.size = {true, 0};
      LOOM_RETURN_IF_ERROR(Call(s, NFSPROC3_CREATE, a, &r));
    }
    if (r.status == NFS3ERR_STALE && attempt == 0) {  // loom/<fsid> was removed under us
      ForgetFsDir(s, fsid);
      continue;
    }
    if (r.status != NFS3_OK) return FromNfs3(r.status, s.cfg.id, "CREATE");
    if (r.resok.obj.handle_follows) return r.resok.obj.handle.data.str();
    LOOKUP3args la;
    la.what = a.where;
    LOOKUP3res lr;
    LOOM_RETURN_IF_ERROR(Call(s, NFSPROC3_LOOKUP, la, &lr));
    if (lr.status != NFS3_OK) return FromNfs3(lr.status, s.cfg.id, "LOOKUP");
    return lr.resok.object.data.str();
  }
}

std::vector<DataServerPool::Server*> DataServerPool::PickServers(
    size_t n, const std::vector<uint32_t>& exclude) {
  std::vector<Server*> eligible;
  for (const auto& s : servers_) {
    if (std::find(exclude.begin(), exclude.end(), s->cfg.id) == exclude.end() && Usable(*s))
      eligible.push_back(s.get());
  }
  if (eligible.size() < n) return {};
  uint64_t start = next_.fetch_add(n);
  std::vector<Server*> out;
  for (size_t k = 0; k < n; k++) out.push_back(eligible[(start + k) % eligible.size()]);
  return out;
}

Result<meta::Layout> DataServerPool::CreateDataFile(meta::FsId fsid, meta::Ino ino,
                                                    const Placement& p) {
  const size_t n = static_cast<size_t>(p.mirrors) * p.stripes;
  if (p.mirrors == 0 || p.stripes == 0 || p.mirrors > meta::kMaxMirrors ||
      p.stripes > meta::kMaxStripes)
    return Status::Invalid("bad placement: " + std::to_string(p.mirrors) + " mirrors x " +
                           std::to_string(p.stripes) + " stripes");
  if (n > servers_.size())
    return Status::Invalid("placement needs " + std::to_string(n) + " data servers, " +
                           std::to_string(servers_.size()) + " configured");
  std::vector<uint32_t> exclude;
  Status last;
  for (size_t attempt = 0; attempt < servers_.size(); attempt++) {
    std::vector<Server*> picked = PickServers(n, exclude);
    if (picked.empty()) {
      std::string msg = "placement needs " + std::to_string(n) + " data servers up";
      if (!last.ok()) msg += "; last error: " + last.ToString();
      return Status::Unavailable(msg);
    }
    // File k is stripe k / mirrors of mirror k % mirrors: a stripe's copies are consecutive
    // picks, so distinct servers.
    std::vector<Status> st(n);
    std::vector<std::string> fh(n);
    ForEach(n, [&](size_t k) {
      Result<std::string> r = CreateOn(*picked[k], fsid, ino);
      if (r.ok()) fh[k] = std::move(*r);
      else st[k] = r.status();
    });
    bool ok = std::all_of(st.begin(), st.end(), [](const Status& s) { return s.ok(); });
    if (ok) {
      meta::Layout l;
      l.stripe_unit = p.stripe_unit ? p.stripe_unit : opts_.stripe_unit;
      l.stripe_count = p.stripes;
      l.mirrors.resize(p.mirrors);
      for (auto& m : l.mirrors) m.files.resize(p.stripes);
      for (size_t k = 0; k < n; k++) {
        meta::DataFile& f = l.mirrors[k % p.mirrors].files[k / p.mirrors];
        f.ds_id = picked[k]->cfg.id;
        f.fh = std::move(fh[k]);
      }
      return l;
    }
    // Undo what was made (best effort; a leftover is reused or swept later) and place again
    // without the servers that failed.
    for (size_t k = 0; k < n; k++) {
      if (st[k].ok()) {
        (void)RemoveDataFile(fsid, ino, meta::DataFile{picked[k]->cfg.id, fh[k], 0, 0});
      } else {
        LOG_WARN("creating data file %s on data server %u: %s", DataFileName(ino).c_str(),
                 picked[k]->cfg.id, st[k].ToString().c_str());
        exclude.push_back(picked[k]->cfg.id);
        last = st[k];
      }
    }
  }
  return last;
}

// --- Removing data files ---

Status DataServerPool::RemoveDataFile(meta::FsId fsid, meta::Ino ino, const meta::DataFile& f) {
  auto known = Known(f.ds_id);
  if (!known.ok()) return known.status();
  Server* s = *known;
  Result<std::string> dir = FsDir(*s, fsid, false);
  if (!dir.ok()) return dir.status().code() == Code::kNotFound ? Status::Ok() : dir.status();
  LOOKUP3args la;
  la.what.dir = Fh(*dir);
  la.what.name = DataFileName(ino);
  LOOKUP3res lr;
  LOOM_RETURN_IF_ERROR(Call(*s, NFSPROC3_LOOKUP, la, &lr));
  if (lr.status == NFS3ERR_NOENT) return Status::Ok();
  if (lr.status == NFS3ERR_STALE) ForgetFsDir(*s, fsid);  // the next try looks it up again
  if (lr.status != NFS3_OK) return FromNfs3(lr.status, s->cfg.id, "LOOKUP");
  if (lr.resok.object.data.view() != f.fh) {
    LOG_WARN("data server %u: %s/%s is not the layout's file; left alone", s->cfg.id,
             TreeDir(fsid).c_str(), la.what.name.c_str());
    return Status::Ok();
  }
  REMOVE3args ra;
  ra.object = la.what;
  REMOVE3res rr;
  LOOM_RETURN_IF_ERROR(Call(*s, NFSPROC3_REMOVE, ra, &rr));
  if (rr.status == NFS3_OK || rr.status == NFS3ERR_NOENT) return Status::Ok();
  return FromNfs3(rr.status, s->cfg.id, "REMOVE");
}

Status DataServerPool::RemoveDataFiles(meta::FsId fsid, meta::Ino ino, const meta::Layout& l) {
  std::vector<const meta::DataFile*> files;
  for (const meta::Mirror& m : l.mirrors)
    for (const meta::DataFile& f : m.files) files.push_back(&f);
  std::vector<Status> st(files.size());
  ForEach(files.size(), [&](size_t i) { st[i] = RemoveDataFile(fsid, ino, *files[i]); });
  for (const Status& s : st) LOOM_RETURN_IF_ERROR(s);
  return Status::Ok();
}

}  // namespace loom::mds
