#include "client/layout.h"

#include <cstdio>
#include <cstdlib>

#include "nfs4/simple_client.h"
#include "xdr/xdr.h"

namespace loom::client::internal {

namespace {

using loom::nfs4::simple::Op;

std::string Hex(const uint8_t* p, size_t n) {
  static const char kDigits[] = "0123456789abcdef";
  std::string s;
  s.reserve(2 * n);
  for (size_t i = 0; i < n; i++) {
    s.push_back(kDigits[p[i] >> 4]);
    s.push_back(kDigits[p[i] & 15]);
  }
  return s;
}

// ffds_user / ffds_group: loom-mds sends plain decimal ids (docs/pnfs.md); names would need an
// id mapping the data path does not have.
bool ParseId(const Bytes& b, uint32_t* out) {
  if (b.size == 0 || b.size > 10) return false;
  uint64_t v = 0;
  for (uint32_t i = 0; i < b.size; i++) {
    if (b.data[i] < '0' || b.data[i] > '9') return false;
    v = v * 10 + (b.data[i] - '0');
  }
  if (v > UINT32_MAX) return false;
  *out = static_cast<uint32_t>(v);
  return true;
}

// A universal address (RFC 5665 §5.2.3.3): "h1.h2.h3.h4.p1.p2" for tcp, "v6addr.p1.p2" for
// tcp6; the port is p1 * 256 + p2.
bool ParseUaddr(const std::string& netid, const std::string& ua, std::string* out) {
  size_t p2 = ua.rfind('.');
  if (p2 == std::string::npos || p2 == 0) return false;
  size_t p1 = ua.rfind('.', p2 - 1);
  if (p1 == std::string::npos || p1 == 0) return false;
  auto num = [](const std::string& s, int* v) {
    if (s.empty() || s.size() > 3) return false;
    char* end = nullptr;
    long x = std::strtol(s.c_str(), &end, 10);
    if (*end || x < 0 || x > 255) return false;
    *v = static_cast<int>(x);
    return true;
  };
  int hi = 0, lo = 0;
  if (!num(ua.substr(p1 + 1, p2 - p1 - 1), &hi) || !num(ua.substr(p2 + 1), &lo)) return false;
  const std::string host = ua.substr(0, p1);
  const std::string port = std::to_string(hi * 256 + lo);
  if (netid == "tcp6") *out = "[" + host + "]:" + port;
  else *out = host + ":" + port;
  return true;
}

}  // namespace

nfsstat4 ReportedStatus(const DsReply& r) {
  if (!r.transport.ok()) return NFS4ERR_NXIO;
  // NFSv3 error numbers are NFSv4's (RFC 1813 §2.6, RFC 8881 §15.1); JUKEBOX is DELAY.
  return static_cast<nfsstat4>(r.nfs_status);
}

LayoutInfo Layout::Describe() const {
  LayoutInfo info;
  info.granted = true;
  info.stripe_unit = stripes() > 1 ? stripe_unit : 0;
  for (const auto& m : mirrors) {
    std::vector<LayoutInfo::DataFile> files;
    for (const auto& d : m) {
      LayoutInfo::DataFile f;
      f.address = d.address;
      f.deviceid_hex = Hex(d.deviceid.data(), d.deviceid.size());
      f.user = d.user;
      f.group = d.group;
      files.push_back(std::move(f));
    }
    info.mirrors.push_back(std::move(files));
  }
  return info;
}

Layouts::Layouts(Session* session, const Options& opts, Counters* counters)
    : session_(session), opts_(opts), counters_(counters) {}

Layouts::~Layouts() {
  CloseAll();
  JoinAll();
}

void Layouts::CloseAll() {
  std::lock_guard<std::mutex> g(mu_);
  closed_ = true;
  for (auto& [addr, p] : pools_) p->Close();
}

void Layouts::JoinAll() {
  std::vector<std::shared_ptr<DsPool>> all;
  {
    std::lock_guard<std::mutex> g(mu_);
    for (auto& [addr, p] : pools_) all.push_back(p);
  }
  for (auto& p : all) p->Join();
}

void Layouts::ForgetDevice(const DeviceId& id) {
  std::lock_guard<std::mutex> g(mu_);
  devices_.erase(id);
}

std::shared_ptr<DsPool> Layouts::PoolFor(const std::string& address) {
  std::lock_guard<std::mutex> g(mu_);
  auto& p = pools_[address];
  if (!p) {
    p = std::make_shared<DsPool>(address, opts_.connections_per_ds, opts_.call_timeout_ms);
    if (closed_) p->Close();  // shutting down: its calls fail at once
  }
  return p;
}

Result<Layouts::Device> Layouts::DeviceOf(const DeviceId& id, bool may_wait) {
  {
    std::lock_guard<std::mutex> g(mu_);
    auto it = devices_.find(id);
    if (it != devices_.end()) return it->second;
  }
  if (!may_wait) return Status(Errc::kUnavailable, "device " + Hex(id.data(), id.size()) + " not known yet");
  auto a = Op(OP_GETDEVICEINFO);
  a.opgetdeviceinfo = std::make_unique<GETDEVICEINFO4args>();
  a.opgetdeviceinfo->gdia_device_id = id;
  a.opgetdeviceinfo->gdia_layout_type = LAYOUT4_FLEX_FILES;
  a.opgetdeviceinfo->gdia_maxcount = 64 * 1024;
  // No notifications: without a back channel they could not reach us. The cache is dropped
  // instead when a data server cannot be reached.
  std::vector<nfs_argop4> ops;
  ops.push_back(std::move(a));
  auto r = session_->Call(std::move(ops));
  const std::string what = "device " + Hex(id.data(), id.size());
  if (!r.ok()) return r.status();
  if (r->status != NFS4_OK) return FromNfs4(r->status, "GETDEVICEINFO of " + what);
  const auto& ok = r->resarray.back().opgetdeviceinfo->gdir_resok4;
  if (ok.gdir_device_addr.da_layout_type != LAYOUT4_FLEX_FILES)
    return Status(Errc::kInternal, what + ": not a flexible-file device");
  const Bytes& body = ok.gdir_device_addr.da_addr_body;
  xdr::Decoder d(body.data, body.size, body.owner);
  ff_device_addr4 fa;
  if (!xdr_decode(d, fa)) return Status(Errc::kInternal, what + ": undecodable ff_device_addr4");
  Device dev;
  for (const auto& na : fa.ffda_netaddrs) {
    if ((na.na_r_netid == "tcp" || na.na_r_netid == "tcp6") && ParseUaddr(na.na_r_netid, na.na_r_addr, &dev.address))
      break;
  }
  if (dev.address.empty()) return Status(Errc::kInternal, what + ": no TCP address");
  for (const auto& v : fa.ffda_versions) {
    if (v.ffdv_version == 3) {
      dev.rsize = v.ffdv_rsize;
      dev.wsize = v.ffdv_wsize;
      break;
    }
  }
  if (dev.rsize == 0 || dev.wsize == 0) return Status(Errc::kInternal, what + ": no NFSv3 service");
  std::lock_guard<std::mutex> g(mu_);
  devices_[id] = dev;
  return dev;
}

Result<Layouts::Grant> Layouts::Get(const FileState& f, layoutiomode4 mode) {
  auto a = Op(OP_LAYOUTGET);
  a.oplayoutget = std::make_unique<LAYOUTGET4args>();
  auto& l = *a.oplayoutget;
  l.loga_signal_layout_avail = false;
  l.loga_layout_type = LAYOUT4_FLEX_FILES;
  l.loga_iomode = mode;
  l.loga_offset = 0;
  l.loga_length = NFS4_UINT64_MAX;  // the whole file: loom-mds grants nothing smaller
  l.loga_minlength = 0;
  l.loga_stateid = f.open_stateid();
  l.loga_maxcount = 16 * 1024;
  std::vector<nfs_argop4> ops;
  ops.push_back(loom::nfs4::simple::PutFh(f.fh));
  ops.push_back(std::move(a));
  const uint64_t epoch = session_->epoch();
  auto r = session_->Call(std::move(ops));
  if (!r.ok()) return r.status();
  if (r->status != NFS4_OK) {
    const bool at_layoutget = !r->resarray.empty() && r->resarray.back().resop == OP_LAYOUTGET;
    switch (r->status) {
      // RFC 8881 §18.43.3: none for this file (now), or not of this type: I/O through the MDS.
      case NFS4ERR_LAYOUTUNAVAILABLE:
      case NFS4ERR_LAYOUTTRYLATER:
      case NFS4ERR_RECALLCONFLICT:
      case NFS4ERR_UNKNOWN_LAYOUTTYPE:
      case NFS4ERR_BADLAYOUT:
      case NFS4ERR_BADIOMODE:
      case NFS4ERR_TOOSMALL:
      case NFS4ERR_NOTSUPP:
      case NFS4ERR_OP_ILLEGAL:
        if (at_layoutget) return Grant{nullptr, r->status};
        break;
      default:
        break;
    }
    return FromNfs4(r->status, f.path + ": LAYOUTGET");
  }
  return Adopt(f, *r->resarray.back().oplayoutget, mode, epoch);
}

Result<Layouts::Grant> Layouts::Adopt(const FileState& f, const LAYOUTGET4res& res, layoutiomode4 mode,
                                      uint64_t epoch, bool may_wait) {
  counters_->layouts_fetched++;
  auto g = Decode(res, epoch, mode, may_wait);
  if (!g.ok()) return g;
  if (g->refused != NFS4_OK && g->layout) {
    // Granted but unusable here: give it back at once (or, unable to wait, leave it to the
    // LAYOUTGET the first I/O sends, which returns what it cannot use).
    if (may_wait) (void)Return(f, *g->layout, {});
    return Grant{nullptr, g->refused};
  }
  return g;
}

Result<Layouts::Grant> Layouts::Decode(const LAYOUTGET4res& res, uint64_t epoch, layoutiomode4 mode,
                                       bool may_wait) {
  const auto& ok = res.logr_resok4;
  auto lay = std::make_shared<Layout>();
  lay->stateid = ok.logr_stateid;
  lay->return_on_close = ok.logr_return_on_close;
  lay->epoch = epoch;
  lay->iomode = mode;
  {
    std::lock_guard<std::mutex> g(mu_);
    lay->serial = ++serial_;
  }
  // Anything this client cannot use is refused like LAYOUTUNAVAILABLE: the caller returns it
  // and goes through the MDS.
  auto unusable = [&](const char*) { return Grant{lay, NFS4ERR_BADLAYOUT}; };
  if (ok.logr_layout.empty()) return Grant{nullptr, NFS4ERR_LAYOUTUNAVAILABLE};
  const layout4& l = ok.logr_layout[0];
  if (l.lo_content.loc_type != LAYOUT4_FLEX_FILES || l.lo_offset != 0 || l.lo_length != NFS4_UINT64_MAX)
    return unusable("not a whole-file flexible-file layout");
  const Bytes& body = l.lo_content.loc_body;
  xdr::Decoder d(body.data, body.size, body.owner);
  ff_layout4 ff;
  if (!xdr_decode(d, ff) || ff.ffl_mirrors.empty()) return unusable("undecodable ff_layout4");
  lay->stripe_unit = ff.ffl_stripe_unit;
  lay->flags = ff.ffl_flags;
  lay->stats_hint = ff.ffl_stats_collect_hint;
  const size_t stripes = ff.ffl_mirrors[0].ffm_data_servers.size();
  if (stripes == 0 || (stripes > 1 && ff.ffl_stripe_unit == 0)) return unusable("bad striping");
  for (const ff_mirror4& m : ff.ffl_mirrors) {
    if (m.ffm_data_servers.size() != stripes) return unusable("mirrors of different stripe counts");
    std::vector<DataFile> files;
    for (const ff_data_server4& s : m.ffm_data_servers) {
      DataFile df;
      df.deviceid = s.ffds_deviceid;
      if (s.ffds_fh_vers.empty() || s.ffds_fh_vers[0].size == 0 || s.ffds_fh_vers[0].size > 64)
        return unusable("no NFSv3 handle");
      df.fh = Bytes::Copy(s.ffds_fh_vers[0].data, s.ffds_fh_vers[0].size);
      if (!ParseId(s.ffds_user, &df.cred.uid) || !ParseId(s.ffds_group, &df.cred.gid))
        return unusable("ids are not numeric");
      df.user = s.ffds_user.str();
      df.group = s.ffds_group.str();
      auto dev = DeviceOf(df.deviceid, may_wait);
      if (!dev.ok()) {
        if (!may_wait) return dev.status();  // not known yet: not a fault of the layout
        return unusable("device unusable");
      }
      df.address = dev->address;
      df.rsize = std::min(dev->rsize, opts_.io_size);
      df.wsize = std::min(dev->wsize, opts_.io_size);
      df.pool = PoolFor(df.address);
      df.key = Hex(df.deviceid.data(), df.deviceid.size()) + "/" + Hex(df.fh.data, df.fh.size);
      files.push_back(std::move(df));
    }
    lay->mirrors.push_back(std::move(files));
  }
  return Grant{lay, NFS4_OK};
}

namespace {
// One failed data-server call as LAYOUTRETURN's ff_ioerr4 and LAYOUTERROR both report it.
device_error4 DeviceError(const IoError& e) {
  device_error4 de;
  de.de_deviceid = e.deviceid;
  de.de_status = e.status;
  de.de_opnum = e.op;
  return de;
}
}  // namespace

Status Layouts::Return(const FileState& f, const Layout& l, const std::vector<IoError>& errors,
                       const std::vector<ff_iostats4>& stats) {
  // RFC 8435 §9: the ff_layoutreturn4 body (lrf_body) carries the I/O errors not yet reported.
  ff_layoutreturn4 body;
  for (const IoError& e : errors) {
    ff_ioerr4 r;
    r.ffie_offset = e.offset;
    r.ffie_length = e.length;
    r.ffie_stateid = l.stateid;
    r.ffie_errors.push_back(DeviceError(e));
    body.fflr_ioerr_report.push_back(std::move(r));
  }
  body.fflr_iostats_report = stats;
  xdr::Encoder enc;
  xdr_encode(enc, body);
  auto a = Op(OP_LAYOUTRETURN);
  a.oplayoutreturn = std::make_unique<LAYOUTRETURN4args>();
  auto& r = *a.oplayoutreturn;
  r.lora_reclaim = false;
  r.lora_layout_type = LAYOUT4_FLEX_FILES;
  r.lora_iomode = LAYOUTIOMODE4_ANY;
  r.lora_layoutreturn.lr_returntype = LAYOUTRETURN4_FILE;
  r.lora_layoutreturn.lr_layout.lrf_offset = 0;
  r.lora_layoutreturn.lr_layout.lrf_length = NFS4_UINT64_MAX;
  r.lora_layoutreturn.lr_layout.lrf_stateid = l.stateid;
  r.lora_layoutreturn.lr_layout.lrf_body = Bytes::Copy(enc.Flatten());
  std::vector<nfs_argop4> ops;
  ops.push_back(loom::nfs4::simple::PutFh(f.fh));
  ops.push_back(std::move(a));
  auto res = session_->Call(std::move(ops));
  if (!res.ok()) return res.status();
  // A layout the server no longer knows (its restart, a revoked one) is as good as returned.
  switch (res->status) {
    case NFS4_OK:
    case NFS4ERR_BAD_STATEID:
    case NFS4ERR_OLD_STATEID:
    case NFS4ERR_STALE_STATEID:
    case NFS4ERR_NOMATCHING_LAYOUT:
      return Status::Ok();
    default:
      return FromNfs4(res->status, f.path + ": LAYOUTRETURN");
  }
}

Status Layouts::Commit(const FileState& f, const Layout& l, uint64_t last_byte) {
  auto a = Op(OP_LAYOUTCOMMIT);
  a.oplayoutcommit = std::make_unique<LAYOUTCOMMIT4args>();
  auto& c = *a.oplayoutcommit;
  c.loca_offset = 0;
  c.loca_length = last_byte + 1;
  c.loca_reclaim = false;
  c.loca_stateid = l.stateid;
  c.loca_last_write_offset.no_newoffset = true;
  c.loca_last_write_offset.no_offset = last_byte;
  c.loca_layoutupdate.lou_type = LAYOUT4_FLEX_FILES;  // flexible files send no update body
  std::vector<nfs_argop4> ops;
  ops.push_back(loom::nfs4::simple::PutFh(f.fh));
  ops.push_back(std::move(a));
  auto res = session_->Call(std::move(ops));
  if (!res.ok()) return res.status();
  return FromNfs4(res->status, f.path + ": LAYOUTCOMMIT");
}

void Layouts::StatsAsync(const FileState& f, const Layout& l, const std::vector<ff_iostats4>& stats) {
  if (session_->minor_version() < 2 || stats.empty()) return;
  std::vector<nfs_argop4> ops;
  ops.push_back(loom::nfs4::simple::PutFh(f.fh));
  for (const ff_iostats4& st : stats) {
    auto a = Op(OP_LAYOUTSTATS);
    a.oplayoutstats = std::make_unique<LAYOUTSTATS4args>();
    auto& ls = *a.oplayoutstats;
    ls.lsa_offset = st.ffis_offset;
    ls.lsa_length = st.ffis_length;
    ls.lsa_stateid = l.stateid;
    ls.lsa_read = st.ffis_read;
    ls.lsa_write = st.ffis_write;
    ls.lsa_deviceid = st.ffis_deviceid;
    // RFC 8435 §8: for flexible files the layoutupdate4 body is an ff_layoutupdate4.
    xdr::Encoder e;
    xdr_encode(e, st.ffis_layoutupdate);
    ls.lsa_layoutupdate.lou_type = LAYOUT4_FLEX_FILES;
    ls.lsa_layoutupdate.lou_body = Bytes::Copy(e.Flatten());
    ops.push_back(std::move(a));
  }
  session_->CallAsync(std::move(ops), [](Status, COMPOUND4res) {});
}

void Layouts::ReportAsync(const FileState& f, const Layout& l, const IoError& e) {
  if (session_->minor_version() < 2) return;  // LAYOUTERROR is NFSv4.2; LAYOUTRETURN reports it
  auto a = Op(OP_LAYOUTERROR);
  a.oplayouterror = std::make_unique<LAYOUTERROR4args>();
  auto& le = *a.oplayouterror;
  le.lea_offset = e.offset;
  le.lea_length = e.length;
  le.lea_stateid = l.stateid;
  le.lea_errors.push_back(DeviceError(e));
  std::vector<nfs_argop4> ops;
  ops.push_back(loom::nfs4::simple::PutFh(f.fh));
  ops.push_back(std::move(a));
  session_->CallAsync(std::move(ops), [](Status, COMPOUND4res) {});
}

}  // namespace loom::client::internal
