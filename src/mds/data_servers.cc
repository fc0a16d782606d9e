// DataServerPool: connections, health, placement, data-file creation and removal.
// The proxied I/O is in data_io.cc.
#include "mds/data_servers.h"

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <future>
#include <latch>
#include <map>
#include <mutex>
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

std::string StateName(const DataServerState& s) {
  std::string out = HealthName(s.health);
  if (!s.draining) return out;
  return s.health == Health::kDown ? out + ",draining" : "draining";
}

std::string FsDirName(meta::FsId fsid) { return std::to_string(fsid); }

std::string DataFileName(meta::Ino ino, uint32_t name_gen) {
  char buf[32];
  if (name_gen == 0) {
    std::snprintf(buf, sizeof buf, "%016" PRIx64, ino);
  } else {
    std::snprintf(buf, sizeof buf, "%016" PRIx64 ".%" PRIu32, ino, name_gen);
  }
  return buf;
}

std::optional<DataFileId> ParseDataFileName(std::string_view name) {
  if (name.size() < 16) return std::nullopt;
  DataFileId out;
  for (char c : name.substr(0, 16)) {
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return std::nullopt;
    out.ino = out.ino << 4 | static_cast<meta::Ino>(d);
  }
  if (name.size() == 16) return out;
  std::string_view gen = name.substr(16);
  // ".<g>": g in decimal, 1..2^32-1, no leading zero (the one spelling DataFileName makes).
  if (gen.size() < 2 || gen.size() > 11 || gen[0] != '.' || gen[1] == '0') return std::nullopt;
  uint64_t g = 0;
  for (char c : gen.substr(1)) {
    if (c < '0' || c > '9') return std::nullopt;
    g = g * 10 + static_cast<uint64_t>(c - '0');
  }
  if (g > UINT32_MAX) return std::nullopt;
  out.name_gen = static_cast<uint32_t>(g);
  return out;
}

uint32_t NextNameGen(const meta::Layout& l) {
  uint32_t g = 0;
  for (const meta::Mirror& m : l.mirrors)
    for (const meta::DataFile& f : m.files) g = std::max(g, f.name_gen);
  return g + 1;
}

namespace {

bool ValidLabel(const std::string& l) {
  size_t eq = l.find('=');
  return eq != std::string::npos && eq > 0 && l.size() <= meta::kMaxServerLabelLen;
}

Status CheckConfig(const DataServerConfig& c) {
  if (c.address.empty()) return Status::Invalid("data server " + std::to_string(c.id) + ": no address");
  if (c.labels.size() > meta::kMaxServerLabels)
    return Status::Invalid("data server " + std::to_string(c.id) + ": too many labels");
  for (const std::string& l : c.labels)
    if (!ValidLabel(l))
      return Status::Invalid("data server " + std::to_string(c.id) + ": label \"" + l +
                             "\" is not key=value");
  return Status::Ok();
}

bool HasLabels(const DataServerConfig& c, const std::vector<std::string>& want) {
  for (const std::string& w : want)
    if (std::find(c.labels.begin(), c.labels.end(), w) == c.labels.end()) return false;
  return true;
}

std::string LabelList(const std::vector<std::string>& labels) {
  std::string out;
  for (const std::string& l : labels) out += (out.empty() ? "" : ",") + l;
  return out;
}

// NULL's void arguments and results.
struct Void {};
void xdr_encode(xdr::Encoder&, const Void&) {}
[[nodiscard]] bool xdr_decode(xdr::Decoder&, Void&) { return true; }

// One NFSv3 call on `c` that gives up after timeout_ms (pings: shorter than rpc_timeout_ms).
template <typename Args, typename Res>
Status CallWithin(nfs3::Nfs3Client& c, const rpc::Cred& cred, uint32_t proc, const Args& args,
                  Res* res, int timeout_ms) {
  struct Done {
    std::promise<Status> p;
    Res res;
  };
  auto done = std::make_shared<Done>();
  std::future<Status> f = done->p.get_future();
  c.rpc().CallAsync(NFS_PROGRAM, NFS_V3, proc, cred,
                    [&args](xdr::Encoder& e) { xdr_encode(e, args); },
                    [done](Result<rpc::Reply> r) {
                      if (!r.ok()) {
                        done->p.set_value(r.status());
                        return;
                      }
                      xdr::Decoder d = r->results();
                      done->p.set_value(xdr_decode(d, done->res)
                                            ? Status::Ok()
                                            : Status::Invalid("undecodable results"));
                    });
  if (f.wait_for(std::chrono::milliseconds(timeout_ms)) != std::future_status::ready)
    return Status::Timeout(std::string("no answer within ") + std::to_string(timeout_ms) + " ms");
  Status st = f.get();
  if (st.ok()) *res = std::move(done->res);
  return st;
}

}  // namespace

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
    LOOM_RETURN_IF_ERROR(CheckConfig(c));
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
  for (auto* list : {&servers_, &removed_}) {
    for (auto& s : *list) {
      std::shared_ptr<nfs3::Nfs3Client> c;
      {
        std::lock_guard<std::mutex> l(s->mu);
        c = std::move(s->client);
      }
      if (c) c->rpc().Close();
    }
  }
  servers_.clear();
  removed_.clear();
  own_loops_.reset();
}

// --- Servers and health ---

DataServerPool::Server* DataServerPool::Lookup(uint32_t id) const {
  std::shared_lock<std::shared_mutex> lock(servers_mu_);
  auto it = std::lower_bound(servers_.begin(), servers_.end(), id,
                             [](const std::unique_ptr<Server>& s, uint32_t v) { return s->cfg.id < v; });
  return it != servers_.end() && (*it)->cfg.id == id ? it->get() : nullptr;
}

const DataServerConfig* DataServerPool::Find(uint32_t id) const {
  Server* s = Lookup(id);
  return s ? &s->cfg : nullptr;
}

std::vector<DataServerPool::Server*> DataServerPool::Snapshot() const {
  std::shared_lock<std::shared_mutex> lock(servers_mu_);
  std::vector<Server*> out;
  for (const auto& s : servers_) out.push_back(s.get());
  return out;
}

std::vector<DataServerState> DataServerPool::Servers() const {
  std::vector<DataServerState> out;
  for (Server* s : Snapshot()) {
    std::lock_guard<std::mutex> l(s->mu);
    DataServerState st;
    st.config = s->cfg;
    st.health = s->health;
    st.since_ms = s->since_ms;
    st.last_error = s->last_error;
    st.draining = st.config.draining = s->draining;
    st.space_known = s->space_known;
    st.capacity = s->capacity;
    st.free = s->free;
    out.push_back(std::move(st));
  }
  return out;
}

bool DataServerPool::IsUsable(uint32_t id) const {
  Server* s = Lookup(id);
  return s && Usable(*s);
}

void DataServerPool::ReportError(uint32_t ds_id, const Status& why) {
  Server* s = Lookup(ds_id);
  if (!s) return;
  MarkDown(*s, Status(why.code(), "reported by a client: " + why.ToString()));
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
  FSSTAT3args sa;
  sa.fsroot = *root;
  FSSTAT3res sr;
  if (c->Call(NFSPROC3_FSSTAT, sa, &sr).ok()) NoteSpace(s, sr);
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

void DataServerPool::NoteSpace(Server& s, const FSSTAT3res& r) {
  if (r.status != NFS3_OK) return;
  std::lock_guard<std::mutex> l(s.mu);
  s.space_known = true;
  s.capacity = r.resok.tbytes;
  s.free = r.resok.abytes;  // what a write can use (RFC 1813 §3.3.18)
}

Status DataServerPool::Ping(uint32_t id) {
  auto known = Known(id);
  if (!known.ok()) return known.status();
  return PingServer(**known);
}

Status DataServerPool::PingServer(Server& s) {
  auto c = Client(s);  // marks down on failure
  if (!c.ok()) return c.status();
  Void na, nr;
  Status st = CallWithin(**c, opts_.cred, NFSPROC3_NULL, na, &nr, opts_.ping_timeout_ms);
  if (!st.ok()) {
    st = Status(st.code(), "NULL ping of data server " + std::to_string(s.cfg.id) + ": " + st.ToString());
    DropClient(s, *c);
    MarkDown(s, st);
    return st;
  }
  MarkUp(s);
  std::string root;
  {
    std::lock_guard<std::mutex> l(s.mu);
    root = s.root_fh;
  }
  FSSTAT3args sa;
  sa.fsroot = Fh(root);
  FSSTAT3res sr;
  Status fs = CallWithin(**c, opts_.cred, NFSPROC3_FSSTAT, sa, &sr, opts_.ping_timeout_ms);
  if (fs.ok()) {
    NoteSpace(s, sr);
  } else {  // it answered NULL: its space is merely not refreshed this time
    LOG_DEBUG("FSSTAT of data server %u: %s", s.cfg.id, fs.ToString().c_str());
  }
  return Status::Ok();
}

void DataServerPool::CheckHealth() {
  std::vector<Server*> all = Snapshot();
  ForEach(all.size(), [&](size_t i) { (void)PingServer(*all[i]); });
}

// --- Runtime registry changes ---

uint32_t DataServerPool::MaxId() const {
  std::shared_lock<std::shared_mutex> lock(servers_mu_);
  uint32_t m = 0;
  for (const auto* list : {&servers_, &removed_})
    for (const auto& s : *list) m = std::max(m, s->cfg.id);
  return m;
}

std::vector<uint32_t> DataServerPool::RemovedIds() const {
  std::shared_lock<std::shared_mutex> lock(servers_mu_);
  std::vector<uint32_t> out;
  for (const auto& s : removed_) out.push_back(s->cfg.id);
  return out;
}

Status DataServerPool::AddServer(DataServerConfig c) {
  LOOM_RETURN_IF_ERROR(CheckConfig(c));
  if (c.id == 0) return Status::Invalid("data server id 0 is not allowed");
  auto taken = [this](uint32_t id) {  // REQUIRES: servers_mu_ held
    for (const auto* list : {&servers_, &removed_})
      for (const auto& o : *list)
        if (o->cfg.id == id) return true;
    return false;
  };
  {
    std::shared_lock<std::shared_mutex> lock(servers_mu_);
    if (taken(c.id))
      return Status(Code::kExists, "data server id " + std::to_string(c.id) + " is taken");
  }
  if (c.advertised_address.empty()) c.advertised_address = c.address;
  if (c.export_path.empty()) c.export_path = "/";
  auto s = std::make_unique<Server>(std::move(c));
  LOOM_RETURN_IF_ERROR(PingServer(*s));
  // Every registered tree, so that a server holding another filesystem's tree is refused now
  // rather than at its first placement.
  std::vector<meta::FsId> fsids;
  {
    std::lock_guard<std::mutex> l(trees_mu_);
    for (const auto& [fsid, t] : trees_) fsids.push_back(fsid);
  }
  Status st;
  for (meta::FsId fsid : fsids) {
    st = FsDir(*s, fsid, true).status();
    if (!st.ok()) break;
  }
  if (st.ok()) {
    std::unique_lock<std::shared_mutex> lock(servers_mu_);
    if (!taken(s->cfg.id)) {
      LOG_INFO("data server %u (%s) added", s->cfg.id, s->cfg.address.c_str());
      auto at = std::lower_bound(servers_.begin(), servers_.end(), s->cfg.id,
                                 [](const std::unique_ptr<Server>& o, uint32_t v) { return o->cfg.id < v; });
      servers_.insert(at, std::move(s));  // servers_ stays sorted
      return Status::Ok();
    }
    st = Status(Code::kExists, "data server id " + std::to_string(s->cfg.id) + " was taken meanwhile");
  }
  std::shared_ptr<nfs3::Nfs3Client> client;
  {
    std::lock_guard<std::mutex> l(s->mu);
    client = std::move(s->client);
  }
  if (client) client->rpc().Close();
  return st;
}

Status DataServerPool::SetDraining(uint32_t id, bool draining) {
  auto known = Known(id);
  if (!known.ok()) return known.status();
  std::lock_guard<std::mutex> l((*known)->mu);
  if ((*known)->draining != draining)
    LOG_INFO("data server %u %s", id, draining ? "is draining" : "is no longer draining");
  (*known)->draining = draining;
  return Status::Ok();
}

Status DataServerPool::RemoveServer(uint32_t id) {
  Server* s = nullptr;
  {
    std::unique_lock<std::shared_mutex> lock(servers_mu_);
    auto it = std::find_if(servers_.begin(), servers_.end(),
                           [&](const std::unique_ptr<Server>& p) { return p->cfg.id == id; });
    if (it == servers_.end()) return Status::NotFound("unknown data server " + std::to_string(id));
    s = it->get();
    removed_.push_back(std::move(*it));
    servers_.erase(it);
  }
  std::shared_ptr<nfs3::Nfs3Client> c;
  {
    std::lock_guard<std::mutex> l(s->mu);
    c = std::move(s->client);
  }
  if (c) c->rpc().Close();
  LOG_INFO("data server %u (%s) removed", id, s->cfg.address.c_str());
  return Status::Ok();
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
  if (!tree.owner.empty()) {
    auto marked = CheckOwner(s, *dir, tree.dir, tree.owner, create);
    if (!marked.ok()) return marked.status();
    // A tree from before markers, looked up without `create`: not remembered, so that the next
    // call that may create (PrepareFilesystem at start-up, after AdoptTree and ResolveIntents
    // looked it up) still writes its marker. A marked tree is remembered as any other.
    if (!*marked) return *dir;
  }
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
  std::vector<Server*> all = Snapshot();
  std::vector<Status> st(all.size());
  ForEach(all.size(), [&](size_t i) { st[i] = FsDir(*all[i], fsid, true).status(); });
  for (const Status& s : st) LOOM_RETURN_IF_ERROR(s);
  return Status::Ok();
}

// --- Creating data files ---

Result<std::string> DataServerPool::CreateOn(Server& s, meta::FsId fsid, meta::Ino ino,
                                             uint32_t name_gen, const Placement& p) {
  bool ours = false;  // an earlier attempt of this store may have made the file
  if (journal_) {
    Result<bool> prior = journal_->Intend(fsid, ino, s.cfg.id, name_gen);
    if (!prior.ok()) return prior.status();
    ours = *prior;
  }
  auto owner = [&p] {
    sattr3 sa;
    sa.mode = {true, p.mode & 07777};
    sa.uid = {true, p.uid};
    sa.gid = {true, p.gid};
    return sa;
  };
  for (int attempt = 0;; ++attempt) {
    Result<std::string> dir = FsDir(s, fsid, true);
    if (!dir.ok()) return dir.status();
    CREATE3args a;
    a.where.dir = Fh(*dir);
    a.where.name = DataFileName(ino, name_gen);
    a.how.mode = GUARDED;
    a.how.obj_attributes = owner();
    CREATE3res r;
    LOOM_RETURN_IF_ERROR(Call(s, NFSPROC3_CREATE, a, &r));
    bool reused = false;
    if (r.status == NFS3ERR_EXIST) {
      // Only a file an intent record of this store vouches for is taken over (emptied: its
      // layout was never stored, so no client saw its bytes). Anything else there is data
      // this store does not know — from a lost or another store — and is never touched.
      if (!ours && journal_) LOOM_RETURN_IF_ERROR(journal_->Cancel(fsid, ino, s.cfg.id, name_gen));
      if (!ours)
        return Status(Code::kExists, "data server " + std::to_string(s.cfg.id) + ": " +
                                         TreeDir(fsid) + "/" + a.where.name +
                                         " exists and this metadata store did not create it; "
                                         "left alone (see loom-mds --scrub)");
      a.how.mode = UNCHECKED;
      a.how.obj_attributes.size = {true, 0};
      LOOM_RETURN_IF_ERROR(Call(s, NFSPROC3_CREATE, a, &r));
      reused = true;
    }
    if (r.status == NFS3ERR_STALE && attempt == 0) {  // loom/<fsid> was removed under us
      ForgetFsDir(s, fsid);
      continue;
    }
    if (r.status != NFS3_OK) return FromNfs3(r.status, s.cfg.id, "CREATE");
    std::string fh;
    if (r.resok.obj.handle_follows) {
      fh = r.resok.obj.handle.data.str();
    } else {
      LOOKUP3args la;
      la.what = a.where;
      LOOKUP3res lr;
      LOOM_RETURN_IF_ERROR(Call(s, NFSPROC3_LOOKUP, la, &lr));
      if (lr.status != NFS3_OK) return FromNfs3(lr.status, s.cfg.id, "LOOKUP");
      fh = lr.resok.object.data.str();
    }
    if (reused) {
      // An UNCHECKED CREATE of an existing file need not apply the owner and mode (RFC 1813
      // §3.3.8 leaves it to the server): set them, and the size, explicitly.
      SETATTR3args sa;
      sa.object = Fh(fh);
      sa.new_attributes = owner();
      sa.new_attributes.size = {true, 0};
      SETATTR3res sr;
      LOOM_RETURN_IF_ERROR(Call(s, NFSPROC3_SETATTR, sa, &sr));
      if (sr.status != NFS3_OK) return FromNfs3(sr.status, s.cfg.id, "SETATTR");
    }
    return fh;
  }
}

Result<std::vector<DataServerPool::Server*>> DataServerPool::PickServers(
    size_t n, const std::vector<uint32_t>& exclude, const std::vector<std::string>& labels) {
  struct Cand {
    Server* s;
    bool known;
    uint64_t free;
  };
  std::vector<Cand> cands;
  size_t total = 0, unlabeled = 0, draining = 0, full = 0, down = 0, excluded = 0;
  for (Server* s : Snapshot()) {
    total++;
    if (std::find(exclude.begin(), exclude.end(), s->cfg.id) != exclude.end()) {
      excluded++;
      continue;
    }
    if (!HasLabels(s->cfg, labels)) {
      unlabeled++;
      continue;
    }
    Cand c{s, false, 0};
    bool drain;
    {
      std::lock_guard<std::mutex> l(s->mu);
      drain = s->draining;
      c.known = s->space_known;
      c.free = s->free;
    }
    if (drain) {
      draining++;
      continue;
    }
    if (c.known && c.free <= opts_.min_free_bytes) {
      full++;
      continue;
    }
    if (!Usable(*s)) {
      down++;
      continue;
    }
    cands.push_back(c);
  }
  if (cands.size() < n) {
    std::string why = "placement needs " + std::to_string(n) + " data servers";
    if (!labels.empty()) why += " labelled " + LabelList(labels);
    why += ", " + std::to_string(cands.size()) + " of " + std::to_string(total) + " usable";
    auto part = [&](size_t k, const char* what) {
      if (k) why += ", " + std::to_string(k) + " " + what;
    };
    part(unlabeled, labels.empty() ? "" : "without the labels");
    part(draining, "draining");
    part(full, "full");
    part(down, "down");
    part(excluded, "failed this placement");
    // Down (or just failed) servers come back: retry later. Otherwise the pool cannot hold it.
    if (cands.size() + down + excluded >= n) return Status::Unavailable(why);
    return Status(Code::kNoSpace, why);
  }
  // Most free space first; servers whose space is unknown (not contacted yet) count as the
  // roomiest. Ties — within 10% of the first of a tier — are in id order and take turns.
  std::stable_sort(cands.begin(), cands.end(), [](const Cand& a, const Cand& b) {
    if (a.known != b.known) return !a.known;
    return a.free > b.free;
  });
  std::vector<Server*> out;
  size_t i = 0;
  while (out.size() < n) {
    size_t j = i + 1;
    while (j < cands.size() &&
           (!cands[i].known ? !cands[j].known
                            : cands[j].known && cands[j].free >= cands[i].free - cands[i].free / 10))
      j++;
    std::vector<Server*> tier;
    for (size_t k = i; k < j; k++) tier.push_back(cands[k].s);
    std::sort(tier.begin(), tier.end(), [](Server* a, Server* b) { return a->cfg.id < b->cfg.id; });
    size_t want = n - out.size();
    if (tier.size() <= want) {
      out.insert(out.end(), tier.begin(), tier.end());
    } else {
      uint64_t start = next_.fetch_add(want);
      for (size_t k = 0; k < want; k++) out.push_back(tier[(start + k) % tier.size()]);
    }
    i = j;
  }
  return out;
}

Result<meta::Layout> DataServerPool::CreateOnServers(meta::FsId fsid, meta::Ino ino,
                                                     const Placement& p,
                                                     const std::vector<Server*>& picked,
                                                     uint32_t name_gen, bool mirror_major,
                                                     std::vector<uint32_t>* failed) {
  const size_t n = picked.size();
  std::vector<Status> st(n);
  std::vector<std::string> fh(n);
  ForEach(n, [&](size_t k) {
    Result<std::string> r = CreateOn(*picked[k], fsid, ino, name_gen, p);
    if (r.ok()) fh[k] = std::move(*r);
    else st[k] = r.status();
  });
  if (std::all_of(st.begin(), st.end(), [](const Status& s) { return s.ok(); })) {
    meta::Layout l;
    l.stripe_unit = p.stripe_unit ? p.stripe_unit : opts_.stripe_unit;
    l.stripe_count = p.stripes;
    l.mirrors.resize(p.mirrors);
    for (auto& m : l.mirrors) m.files.resize(p.stripes);
    for (size_t k = 0; k < n; k++) {
      meta::DataFile& f = mirror_major ? l.mirrors[k / p.stripes].files[k % p.stripes]
                                       : l.mirrors[k % p.mirrors].files[k / p.mirrors];
      f.ds_id = picked[k]->cfg.id;
      f.fh = std::move(fh[k]);
      f.uid = p.uid;
      f.gid = p.gid;
      f.name_gen = name_gen;
    }
    return l;
  }
  // Undo what was made (best effort; a leftover is reused or swept later).
  Status first;
  for (size_t k = 0; k < n; k++) {
    if (st[k].ok()) {
      meta::DataFile f{picked[k]->cfg.id, fh[k], 0, 0, name_gen};
      if (RemoveDataFile(fsid, ino, f).ok() && journal_)
        (void)journal_->Cancel(fsid, ino, f.ds_id, name_gen);
    } else {
      LOG_WARN("creating data file %s on data server %u: %s",
               DataFileName(ino, name_gen).c_str(), picked[k]->cfg.id, st[k].ToString().c_str());
      if (failed) failed->push_back(picked[k]->cfg.id);
      if (first.ok()) first = st[k];
    }
  }
  return first;
}

namespace {
Status CheckPlacement(const Placement& p) {
  if (p.mirrors == 0 || p.stripes == 0 || p.mirrors > meta::kMaxMirrors ||
      p.stripes > meta::kMaxStripes)
    return Status::Invalid("bad placement: " + std::to_string(p.mirrors) + " mirrors x " +
                           std::to_string(p.stripes) + " stripes");
  for (const std::string& l : p.require_labels)
    if (!ValidLabel(l)) return Status::Invalid("placement label \"" + l + "\" is not key=value");
  return Status::Ok();
}
}  // namespace

Result<meta::Layout> DataServerPool::CreateDataFile(meta::FsId fsid, meta::Ino ino,
                                                    const Placement& p) {
  LOOM_RETURN_IF_ERROR(CheckPlacement(p));
  const size_t n = static_cast<size_t>(p.mirrors) * p.stripes;
  const size_t total = Snapshot().size();
  if (n > total)
    return Status::Invalid("placement needs " + std::to_string(n) + " data servers, " +
                           std::to_string(total) + " configured");
  std::vector<uint32_t> exclude;
  Status last;
  for (size_t attempt = 0; attempt < total; attempt++) {
    Result<std::vector<Server*>> picked = PickServers(n, exclude, p.require_labels);
    if (!picked.ok()) {
      if (last.ok()) return picked.status();
      return Status(picked.status().code(),
                    picked.status().ToString() + "; last error: " + last.ToString());
    }
    // File k is stripe k / mirrors of mirror k % mirrors: a stripe's copies are consecutive
    // picks.
    std::vector<uint32_t> failed;
    Result<meta::Layout> l = CreateOnServers(fsid, ino, p, *picked, 0, false, &failed);
    if (l.ok()) return l;
    last = l.status();
    // Place again without the servers that failed (a name taken there, a tree of another
    // filesystem there, or the server unreachable: another server may do).
    if (failed.empty()) return last;
    exclude.insert(exclude.end(), failed.begin(), failed.end());
  }
  return last;
}

Result<meta::Layout> DataServerPool::CreateDataFilesOn(meta::FsId fsid, meta::Ino ino,
                                                       const Placement& p,
                                                       const std::vector<uint32_t>& ds_ids,
                                                       uint32_t name_gen) {
  LOOM_RETURN_IF_ERROR(CheckPlacement(p));
  const size_t n = static_cast<size_t>(p.mirrors) * p.stripes;
  if (ds_ids.size() != n)
    return Status::Invalid("placement of " + std::to_string(p.mirrors) + " mirrors x " +
                           std::to_string(p.stripes) + " stripes needs " + std::to_string(n) +
                           " data servers, " + std::to_string(ds_ids.size()) + " given");
  std::vector<Server*> picked;
  for (uint32_t id : ds_ids) {
    auto known = Known(id);
    if (!known.ok()) return known.status();
    if (std::count(ds_ids.begin(), ds_ids.end(), id) > 1)
      return Status::Invalid("data server " + std::to_string(id) +
                             " named twice: a file's data files are on distinct servers");
    if (!HasLabels((*known)->cfg, p.require_labels))
      return Status::Invalid("data server " + std::to_string(id) + " lacks the labels " +
                             LabelList(p.require_labels));
    {
      std::lock_guard<std::mutex> l((*known)->mu);
      if ((*known)->draining)
        return Status::Invalid("data server " + std::to_string(id) + " is draining");
    }
    picked.push_back(*known);
  }
  return CreateOnServers(fsid, ino, p, picked, name_gen, true, nullptr);
}

Status DataServerPool::AbandonDataFiles(meta::FsId fsid, meta::Ino ino, const meta::Layout& l) {
  for (const meta::Mirror& m : l.mirrors) {
    for (const meta::DataFile& f : m.files) {
      LOOM_RETURN_IF_ERROR(RemoveDataFile(fsid, ino, f));
      if (journal_) LOOM_RETURN_IF_ERROR(journal_->Cancel(fsid, ino, f.ds_id, f.name_gen));
    }
  }
  return Status::Ok();
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
  la.what.name = DataFileName(ino, f.name_gen);
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
