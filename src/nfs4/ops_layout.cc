// pNFS operations with Flexible File layouts (RFC 8881 §12, §18.40-18.44; RFC 7862 §15.6-15.7;
// RFC 8435): LAYOUTGET, GETDEVICEINFO, GETDEVICELIST, LAYOUTCOMMIT, LAYOUTRETURN, LAYOUTERROR
// and LAYOUTSTATS. Clients read and write the data servers (NFSv3) directly with the layouts
// handed out here; what the Linux client expects of them is in
// shared/notes/linux-flexfiles-client.md.
#include <arpa/inet.h>
#include <netdb.h>

#include <algorithm>
#include <cstring>

#include "common/log.h"
#include "mds/data_servers.h"
#include "nfs4/layouts.h"
#include "nfs4/mds.h"
#include "nfs4/names.h"
#include "nfs4/state.h"

namespace loom::nfs4 {

namespace {

// The Linux client reads a LAYOUTGET reply into one page and treats a longer body as an
// error (notes §1), so no layout body is ever larger.
constexpr uint32_t kMaxLayoutBody = 4096;

nfsstat4 LayoutFile(Cx& cx, meta::Inode* n) {
  nfsstat4 st = CurrentInode(cx, n);
  if (st != NFS4_OK) return st;
  if (n->type == meta::FileType::kDir) return NFS4ERR_ISDIR;
  if (n->type != meta::FileType::kReg) return NFS4ERR_WRONG_TYPE;
  return NFS4_OK;
}

Bytes Decimal(uint32_t v) { return Bytes::Copy(std::to_string(v)); }

}  // namespace

// deviceid4 of a data server: "loom", eight zero bytes, the data server's id (big-endian).
// Ids are stable (mds/fs_identity.h), so device ids survive restarts of loom-mds.
std::array<uint8_t, NFS4_DEVICEID4_SIZE> DeviceIdOf(uint32_t ds_id) {
  std::array<uint8_t, NFS4_DEVICEID4_SIZE> d{};
  std::memcpy(d.data(), "loom", 4);
  d[12] = uint8_t(ds_id >> 24);
  d[13] = uint8_t(ds_id >> 16);
  d[14] = uint8_t(ds_id >> 8);
  d[15] = uint8_t(ds_id);
  return d;
}

bool DsIdOfDevice(const std::array<uint8_t, NFS4_DEVICEID4_SIZE>& d, uint32_t* id) {
  static const uint8_t kZero[8] = {};
  if (std::memcmp(d.data(), "loom", 4) != 0 || std::memcmp(d.data() + 4, kZero, 8) != 0) return false;
  *id = (uint32_t{d[12]} << 24) | (uint32_t{d[13]} << 16) | (uint32_t{d[14]} << 8) | d[15];
  return true;
}

// "host:port" (or "[v6]:port") as an RFC 5665 universal address: "a.b.c.d.p1.p2" with netid
// "tcp", or "v6addr.p1.p2" with "tcp6". Host names are resolved (IPv4 first).
bool UniversalAddress(const std::string& host_port, std::string* netid, std::string* uaddr) {
  size_t colon = host_port.rfind(':');
  if (colon == std::string::npos) return false;
  std::string host = host_port.substr(0, colon);
  int port = std::atoi(host_port.c_str() + colon + 1);
  if (port <= 0 || port > 65535) return false;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  char buf[INET6_ADDRSTRLEN] = {};
  in_addr a4;
  in6_addr a6;
  if (inet_pton(AF_INET, host.c_str(), &a4) == 1) {
    *netid = "tcp";
    inet_ntop(AF_INET, &a4, buf, sizeof buf);
  } else if (inet_pton(AF_INET6, host.c_str(), &a6) == 1) {
    *netid = "tcp6";
    inet_ntop(AF_INET6, &a6, buf, sizeof buf);
  } else {
    addrinfo hints{}, *res = nullptr;
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0 || !res) return false;
    *netid = "tcp";
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr, buf, sizeof buf);
    freeaddrinfo(res);
  }
  *uaddr = std::string(buf) + "." + std::to_string(port >> 8) + "." + std::to_string(port & 0xff);
  return true;
}

// The ff_layout4 body for `l` (RFC 8435 §5.1), or an error status: LAYOUTUNAVAILABLE when no
// mirror may be used, TOOSMALL when it does not fit `maxcount`.
nfsstat4 EncodeFfLayout(Cx& cx, const meta::Layout& l, layoutiomode4 iomode, uint32_t maxcount,
                        Bytes* body) {
  ff_layout4 ff;
  // §5.1: ffl_stripe_unit is the unit of striping within a mirror; with one data server per
  // mirror it is unused (0, as nfsd sends).
  ff.ffl_stripe_unit = l.stripe_count > 1 ? l.stripe_unit : 0;
  std::vector<size_t> usable, down;
  for (size_t i = 0; i < l.mirrors.size(); i++) {
    if (MirrorIsStale(l.mirrors[i])) continue;
    bool up = true;
    for (const auto& f : l.mirrors[i].files)
      if (cx.mds.data_servers()->HealthOf(f.ds_id) == mds::Health::kDown) up = false;
    (up ? usable : down).push_back(i);
  }
  // A READ layout leaves out mirrors on data servers known to be down, while another mirror
  // is up: the client would try them first and stall (an RW layout never lists them:
  // LayoutForClients marked them stale).
  if (usable.empty()) usable = down;
  if (usable.empty()) return NFS4ERR_LAYOUTUNAVAILABLE;
  // Read preference (efficiency, highest first: notes §2) rotates with the client, so that
  // the readers of a mirrored file spread over its mirrors.
  const size_t n = usable.size();
  const size_t rot = static_cast<size_t>((cx.client ^ (cx.client >> 32)) % n);
  for (size_t k = 0; k < n; k++) {
    const meta::Mirror& m = l.mirrors[usable[k]];
    ff_mirror4 fm;
    for (const meta::DataFile& f : m.files) {
      ff_data_server4 ds;
      ds.ffds_deviceid = DeviceIdOf(f.ds_id);
      // An NFSv3 data server takes no stateid: the anonymous one (§5.1, as nfsd sends).
      ds.ffds_stateid = stateid4{};
      ds.ffds_fh_vers.push_back(Bytes::Copy(f.fh));
      // Loosely coupled (§2.2): the data server checks these AUTH_SYS ids against the data
      // file's owner (uid, gid, mode 0640). A READ layout names a uid one past the owner's,
      // which only the group's read bit lets in, so it cannot write.
      ds.ffds_user = Decimal(iomode == LAYOUTIOMODE4_RW ? f.uid : f.uid + 1);
      ds.ffds_group = Decimal(f.gid);
      fm.ffm_data_servers.push_back(std::move(ds));
    }
    ff.ffl_mirrors.push_back(std::move(fm));
  }
  // Efficiencies: the rotation's first mirror highest.
  for (size_t k = 0; k < n; k++) {
    uint32_t eff = static_cast<uint32_t>(n - ((k + n - rot) % n));
    for (auto& ds : ff.ffl_mirrors[k].ffm_data_servers) ds.ffds_efficiency = eff;
  }
  ff.ffl_flags = 0;               // I/O may fall back to the MDS; LAYOUTCOMMIT is wanted
  ff.ffl_stats_collect_hint = 0;  // the client's default LAYOUTSTATS interval
  xdr::Encoder e;
  xdr_encode(e, ff);
  std::string s = e.Flatten();
  if (s.size() > std::min(maxcount, kMaxLayoutBody)) return NFS4ERR_TOOSMALL;
  *body = Bytes::Copy(s);
  return NFS4_OK;
}

nfsstat4 OpLayoutGet(Cx& cx, const nfs_argop4& a, nfs_resop4& r) {
  auto& res = *(r.oplayoutget = std::make_unique<LAYOUTGET4res>());
  r.resop = OP_LAYOUTGET;
  const LAYOUTGET4args& la = *a.oplayoutget;
  auto fail = [&](nfsstat4 st) {
    cx.mds.CountLayoutRefusal(st);
    return res.logr_status = st;
  };
  if (!cx.mds.options().pnfs || !cx.mds.data_servers()) return fail(NFS4ERR_LAYOUTUNAVAILABLE);
  if (la.loga_layout_type != LAYOUT4_FLEX_FILES) return fail(NFS4ERR_UNKNOWN_LAYOUTTYPE);
  if (la.loga_iomode != LAYOUTIOMODE4_READ && la.loga_iomode != LAYOUTIOMODE4_RW)
    return fail(NFS4ERR_BADIOMODE);
  // §18.43.3: a zero length, a minimum above the length, or a range past 2^64 is INVAL.
  if (la.loga_length == 0 || (la.loga_length != NFS4_UINT64_MAX && la.loga_minlength > la.loga_length) ||
      (la.loga_length != NFS4_UINT64_MAX && la.loga_offset > NFS4_UINT64_MAX - la.loga_length) ||
      (la.loga_minlength != NFS4_UINT64_MAX && la.loga_minlength != 0 &&
       la.loga_offset > NFS4_UINT64_MAX - la.loga_minlength))
    return fail(NFS4ERR_INVAL);
  meta::Inode n;
  nfsstat4 st = LayoutFile(cx, &n);
  if (st != NFS4_OK) return fail(st);
  const bool rw = la.loga_iomode == LAYOUTIOMODE4_RW;
  if (rw && cx.rpc->read_only) return fail(NFS4ERR_ROFS);
  // The stateid: an open, lock or delegation stateid of this client for this file (the first
  // LAYOUTGET), or the layout stateid it holds (§12.5.3).
  stateid4 sid = la.loga_stateid;
  if (!cx.ResolveCurrentStateid(&sid)) return fail(NFS4ERR_BAD_STATEID);
  if (!LayoutTable::IsLayoutStateid(sid)) {
    Resolved rs;
    st = cx.mds.state().Resolve(sid, cx.client, n.ino, Accept::kIo,
                                rw ? Access::kWrite : Access::kRead, &rs);
    if (st != NFS4_OK) return fail(st);
    if (rs.special) return fail(NFS4ERR_BAD_STATEID);  // layouts need real state
  }
  // Whoever gets a layout reads (or writes) the data servers with its ids: the same access
  // decision as a READ or WRITE through the MDS (owner override included).
  st = CheckIoAccess(cx, n, rw ? Access::kWrite : Access::kRead);
  if (st != NFS4_OK) return fail(st);
  auto l = cx.mds.LayoutForClients(n.ino, rw);
  if (!l.ok()) {
    nfsstat4 e = FromDataServer(l.status());
    // A file whose data servers cannot take it now: the client does I/O through the MDS.
    return fail(e == NFS4ERR_DELAY || e == NFS4ERR_NOSPC ? NFS4ERR_LAYOUTUNAVAILABLE : e);
  }
  st = cx.mds.LayoutAllowed(cx.client, n.ino, l.value());
  if (st != NFS4_OK) return fail(st);
  Bytes body;
  st = EncodeFfLayout(cx, l.value(), la.loga_iomode, la.loga_maxcount, &body);
  if (st != NFS4_OK) return fail(st);
  stateid4 out;
  st = cx.mds.layouts().Grant(cx.client, n.ino, la.loga_iomode, sid, &out);
  if (st != NFS4_OK) return fail(st);
  if (rw) cx.mds.NoteRwLayout(n.ino);
  res.logr_status = NFS4_OK;
  // §18.43.3: the layouts are returned at the last CLOSE (the client sends LAYOUTRETURN in
  // its CLOSE compound; the server drops them at CLOSE too).
  res.logr_resok4.logr_return_on_close = true;
  res.logr_resok4.logr_stateid = out;
  layout4 lo;
  lo.lo_offset = 0;  // the whole file: no partial segments for the client to refetch
  lo.lo_length = NFS4_UINT64_MAX;
  lo.lo_iomode = la.loga_iomode;
  lo.lo_content.loc_type = LAYOUT4_FLEX_FILES;
  lo.lo_content.loc_body = std::move(body);
  res.logr_resok4.logr_layout.push_back(std::move(lo));
  cx.SetCurrentStateid(out);
  return NFS4_OK;
}

nfsstat4 OpGetDeviceInfo(Cx& cx, const nfs_argop4& a, nfs_resop4& r) {
  auto& res = *(r.opgetdeviceinfo = std::make_unique<GETDEVICEINFO4res>());
  r.resop = OP_GETDEVICEINFO;
  const GETDEVICEINFO4args& ga = *a.opgetdeviceinfo;
  if (ga.gdia_layout_type != LAYOUT4_FLEX_FILES) return res.gdir_status = NFS4ERR_UNKNOWN_LAYOUTTYPE;
  uint32_t id = 0;
  const mds::DataServerConfig* c = nullptr;
  if (cx.mds.data_servers() && DsIdOfDevice(ga.gdia_device_id, &id)) c = cx.mds.data_servers()->Find(id);
  if (!c) return res.gdir_status = NFS4ERR_NOENT;
  const std::string& where = c->advertised_address.empty() ? c->address : c->advertised_address;
  ff_device_addr4 fa;
  netaddr4 na;
  std::string netid, uaddr;
  if (!UniversalAddress(where, &netid, &uaddr)) {
    LOG_WARN("GETDEVICEINFO: data server %u has no usable address (%s)", id, where.c_str());
    return res.gdir_status = NFS4ERR_NOENT;
  }
  na.na_r_netid = netid;
  na.na_r_addr = uaddr;
  fa.ffda_netaddrs.push_back(std::move(na));
  // One version: NFSv3 (minor version 0), loosely coupled (RFC 8435 §4.1, §2.2).
  ff_device_versions4 v;
  v.ffdv_version = 3;
  v.ffdv_minorversion = 0;
  v.ffdv_rsize = v.ffdv_wsize = cx.mds.options().max_io;
  v.ffdv_tightly_coupled = false;
  fa.ffda_versions.push_back(v);
  xdr::Encoder e;
  xdr_encode(e, fa);
  std::string body = e.Flatten();
  // §18.40.3: gdia_maxcount bounds the device_addr4 (type + body); 0 means no limit here.
  const uint32_t need = 4 + 4 + static_cast<uint32_t>(xdr::Decoder::Pad(body.size()));
  if (ga.gdia_maxcount != 0 && need > ga.gdia_maxcount) {
    res.gdir_mincount = need;
    return res.gdir_status = NFS4ERR_TOOSMALL;
  }
  res.gdir_status = NFS4_OK;
  res.gdir_resok4.gdir_device_addr.da_layout_type = LAYOUT4_FLEX_FILES;
  res.gdir_resok4.gdir_device_addr.da_addr_body = Bytes::Copy(body);
  // Granting both notifications lets Linux cache the device (notes §3). A data server's
  // address change is sent as CB_NOTIFY_DEVICEID(DELETE) when it happens.
  uint32_t want = ga.gdia_notify_types.empty() ? 0 : ga.gdia_notify_types[0];
  uint32_t grant = want & ((1u << NOTIFY_DEVICEID4_CHANGE) | (1u << NOTIFY_DEVICEID4_DELETE));
  if (grant) res.gdir_resok4.gdir_notification.push_back(grant);
  return NFS4_OK;
}

nfsstat4 OpGetDeviceList(Cx& cx, const nfs_argop4& a, nfs_resop4& r) {
  auto& res = *(r.opgetdevicelist = std::make_unique<GETDEVICELIST4res>());
  r.resop = OP_GETDEVICELIST;
  const GETDEVICELIST4args& ga = *a.opgetdevicelist;
  if (ga.gdla_layout_type != LAYOUT4_FLEX_FILES) return res.gdlr_status = NFS4ERR_UNKNOWN_LAYOUTTYPE;
  if (ga.gdla_maxdevices == 0) return res.gdlr_status = NFS4ERR_INVAL;
  std::vector<uint32_t> ids;
  if (cx.mds.data_servers())
    for (const auto& s : cx.mds.data_servers()->Servers()) ids.push_back(s.config.id);
  std::sort(ids.begin(), ids.end());
  // The cookie is the index of the next device; the verifier stays zero (the list only grows
  // at its end, so cookies stay valid).
  if (ga.gdla_cookie > ids.size()) return res.gdlr_status = NFS4ERR_BAD_COOKIE;
  auto& ok = res.gdlr_resok4;
  size_t i = ga.gdla_cookie;
  for (; i < ids.size() && ok.gdlr_deviceid_list.size() < std::min<uint32_t>(ga.gdla_maxdevices, 256); i++)
    ok.gdlr_deviceid_list.push_back(DeviceIdOf(ids[i]));
  ok.gdlr_cookie = i;
  ok.gdlr_eof = i == ids.size();
  return res.gdlr_status = NFS4_OK;
}

nfsstat4 OpLayoutCommit(Cx& cx, const nfs_argop4& a, nfs_resop4& r) {
  auto& res = *(r.oplayoutcommit = std::make_unique<LAYOUTCOMMIT4res>());
  r.resop = OP_LAYOUTCOMMIT;
  const LAYOUTCOMMIT4args& ca = *a.oplayoutcommit;
  meta::Inode n;
  nfsstat4 st = CheckWritableExport(cx);
  if (st == NFS4_OK) st = LayoutFile(cx, &n);
  if (st != NFS4_OK) return res.locr_status = st;
  if (ca.loca_layoutupdate.lou_type != LAYOUT4_FLEX_FILES) return res.locr_status = NFS4ERR_UNKNOWN_LAYOUTTYPE;
  stateid4 sid = ca.loca_stateid;
  if (!cx.ResolveCurrentStateid(&sid)) return res.locr_status = NFS4ERR_BAD_STATEID;
  // A layout stateid: the one this client holds for the file, or one it held (returned after
  // a data-server error, revoked by a fence, or from before a restart of this server:
  // §18.42.3 reclaim). The client wrote with it, and what it reports is on the data servers
  // whatever became of the layout; refusing it would fail the application's fsync (Linux
  // turns a failed LAYOUTCOMMIT into EIO). It only ever grows the size, and the caller needs
  // write access like any WRITE.
  const bool known = cx.mds.layouts().Holds(cx.client, n.ino, sid) || cx.mds.layouts().IssuedTo(cx.client, sid) ||
                     cx.mds.layouts().FromEarlierBoot(sid);
  if (!known && !ca.loca_reclaim) return res.locr_status = NFS4ERR_BAD_STATEID;
  // A writer of the data servers is a writer of the file: the same check as WRITE.
  st = CheckIoAccess(cx, n, Access::kWrite);
  if (st != NFS4_OK) return res.locr_status = st;
  meta::SetAttrArgs sa;
  // §18.42.3: the size grows to the last byte written; LAYOUTCOMMIT never shrinks a file.
  if (ca.loca_last_write_offset.no_newoffset && ca.loca_last_write_offset.no_offset < NFS4_UINT64_MAX)
    sa.size_at_least = ca.loca_last_write_offset.no_offset + 1;
  // Linux never sends a time (notes §4): the server's clock stands for the writes.
  sa.mtime = ca.loca_time_modify.nt_timechanged
                 ? meta::Timespec{ca.loca_time_modify.nt_time.seconds, ca.loca_time_modify.nt_time.nseconds}
                 : meta::NowRealtime();
  sa.kill_setid = cx.rpc->cred.uid != 0;
  uint64_t before = n.size;
  auto size_lock = cx.mds.size_locks().Shared(n.ino);
  meta::Inode after;
  Status u = meta::RunTxn(cx.mds.store(), [&](meta::Txn& t) -> Status {
    auto g = cx.mds.ns().SetAttr(t, n.ino, sa);
    if (!g.ok()) return g.status();
    after = g.value();
    return Status::Ok();
  });
  if (!u.ok()) return res.locr_status = FromMeta(u);
  res.locr_resok4.locr_newsize.ns_sizechanged = after.size != before;
  res.locr_resok4.locr_newsize.ns_size = after.size;
  cx.mds.CountLayoutCommit();
  return res.locr_status = NFS4_OK;
}

nfsstat4 OpLayoutReturn(Cx& cx, const nfs_argop4& a, nfs_resop4& r) {
  auto& res = *(r.oplayoutreturn = std::make_unique<LAYOUTRETURN4res>());
  r.resop = OP_LAYOUTRETURN;
  const LAYOUTRETURN4args& ra = *a.oplayoutreturn;
  if (ra.lora_layout_type != LAYOUT4_FLEX_FILES) return res.lorr_status = NFS4ERR_UNKNOWN_LAYOUTTYPE;
  if (ra.lora_iomode != LAYOUTIOMODE4_READ && ra.lora_iomode != LAYOUTIOMODE4_RW &&
      ra.lora_iomode != LAYOUTIOMODE4_ANY)
    return res.lorr_status = NFS4ERR_INVAL;
  switch (ra.lora_layoutreturn.lr_returntype) {
    case LAYOUTRETURN4_FILE: {
      if (!cx.have_cfh) return res.lorr_status = NFS4ERR_NOFILEHANDLE;
      meta::Inode n;
      nfsstat4 st = LayoutFile(cx, &n);
      if (st != NFS4_OK) return res.lorr_status = st;
      const layoutreturn_file4& f = ra.lora_layoutreturn.lr_layout;
      stateid4 sid = f.lrf_stateid;
      if (!cx.ResolveCurrentStateid(&sid)) return res.lorr_status = NFS4ERR_BAD_STATEID;
      // The body reports the client's I/O errors and statistics (RFC 8435 §9).
      if (f.lrf_body.size > 0) cx.mds.NoteLayoutReturnBody(cx.client, n.ino, f.lrf_body);
      bool remaining = false;
      stateid4 out;
      st = cx.mds.layouts().Return(cx.client, n.ino, ra.lora_iomode, sid, &remaining, &out);
      if (st != NFS4_OK) return res.lorr_status = st;
      cx.mds.OnLayoutReturned(cx.client, n.ino);
      res.lorr_stateid.lrs_present = remaining;
      if (remaining) {
        res.lorr_stateid.lrs_stateid = out;
        cx.SetCurrentStateid(out);
      }
      return res.lorr_status = NFS4_OK;
    }
    case LAYOUTRETURN4_FSID:
    case LAYOUTRETURN4_ALL: {
      // One filesystem per server: both mean every layout of the client of that iomode
      // (§18.44.3; ANY: all of them).
      for (uint64_t ino : cx.mds.layouts().ReturnIomode(cx.client, ra.lora_iomode))
        cx.mds.OnLayoutReturned(cx.client, ino);
      res.lorr_stateid.lrs_present = false;
      return res.lorr_status = NFS4_OK;
    }
    default:
      return res.lorr_status = NFS4ERR_INVAL;
  }
}

nfsstat4 OpLayoutError(Cx& cx, const nfs_argop4& a, nfs_resop4& r) {
  auto& res = *(r.oplayouterror = std::make_unique<LAYOUTERROR4res>());
  r.resop = OP_LAYOUTERROR;
  const LAYOUTERROR4args& ea = *a.oplayouterror;
  meta::Inode n;
  nfsstat4 st = LayoutFile(cx, &n);
  if (st != NFS4_OK) return res.ler_status = st;
  // RFC 7862 §15.6: the stateid Linux sends is the data server's (ffds_stateid, all zero for
  // NFSv3), not the layout's, so it is not checked (notes §6).
  for (const device_error4& de : ea.lea_errors) {
    uint32_t id = 0;
    if (!DsIdOfDevice(de.de_deviceid, &id)) continue;
    cx.mds.NoteDataServerError(cx.client, n.ino, id, de.de_status, de.de_opnum);
  }
  return res.ler_status = NFS4_OK;
}

nfsstat4 OpLayoutStats(Cx& cx, const nfs_argop4& a, nfs_resop4& r) {
  auto& res = *(r.oplayoutstats = std::make_unique<LAYOUTSTATS4res>());
  r.resop = OP_LAYOUTSTATS;
  const LAYOUTSTATS4args& sa = *a.oplayoutstats;
  meta::Inode n;
  nfsstat4 st = LayoutFile(cx, &n);
  if (st != NFS4_OK) return res.lsr_status = st;
  uint32_t id = 0;
  if (DsIdOfDevice(sa.lsa_deviceid, &id))
    cx.mds.NoteLayoutStats(id, sa.lsa_read.ii_bytes, sa.lsa_write.ii_bytes);
  return res.lsr_status = NFS4_OK;
}

}  // namespace loom::nfs4
