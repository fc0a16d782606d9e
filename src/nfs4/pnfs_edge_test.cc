// pNFS layout operations with odd arguments (RFC 8881 §12, §18.40-18.44; RFC 7862 §15.6-15.7;
// RFC 8435): LAYOUTGET ranges, iomodes, layout types and stateids; GETDEVICELIST cookies;
// GETDEVICEINFO limits and notifications; LAYOUTRETURN of FILE, FSID and ALL; LAYOUTCOMMIT's
// new offset and time; LAYOUTERROR and LAYOUTSTATS reports. loom-mds runs in process
// (testing::DirectMds) over in-process loom-ds data servers.
#include <gtest/gtest.h>

#include "meta/policy.h"
#include "nfs4/compound.h"
#include "nfs4/fh.h"
#include "nfs4/layouts.h"
#include "nfs4/mds.h"
#include "nfs4/simple_client.h"
#include "nfs4/testing/direct_mds.h"

namespace loom::nfs4 {

// ops_layout.cc: "host:port" as an RFC 5665 universal address (no header declares it).
bool UniversalAddress(const std::string& host_port, std::string* netid, std::string* uaddr);

namespace {

using simple::Op;
using testing::DirectClient;
using testing::DirectMds;
using testing::Reply;

const rpc::Cred kCred = rpc::Cred::Sys(0, 0, {}, "pnfs-edge");

template <typename... T>
std::vector<nfs_argop4> Ops(T&&... ops) {
  std::vector<nfs_argop4> v;
  (v.push_back(std::forward<T>(ops)), ...);
  return v;
}

// The current stateid (§16.2.3.1.2): seqid 1, other all zero.
stateid4 CurrentStateid() {
  stateid4 s{};
  s.seqid = 1;
  return s;
}

nfs_argop4 DeviceList(uint32_t maxdevices, uint64_t cookie, layouttype4 type = LAYOUT4_FLEX_FILES) {
  auto a = Op(OP_GETDEVICELIST);
  a.opgetdevicelist = std::make_unique<GETDEVICELIST4args>();
  a.opgetdevicelist->gdla_layout_type = type;
  a.opgetdevicelist->gdla_maxdevices = maxdevices;
  a.opgetdevicelist->gdla_cookie = cookie;
  return a;
}

nfs_argop4 DeviceInfo(const deviceid4& id, uint32_t maxcount, std::vector<uint32_t> notify,
                      layouttype4 type = LAYOUT4_FLEX_FILES) {
  auto a = Op(OP_GETDEVICEINFO);
  a.opgetdeviceinfo = std::make_unique<GETDEVICEINFO4args>();
  a.opgetdeviceinfo->gdia_device_id = id;
  a.opgetdeviceinfo->gdia_layout_type = type;
  a.opgetdeviceinfo->gdia_maxcount = maxcount;
  a.opgetdeviceinfo->gdia_notify_types = std::move(notify);
  return a;
}

nfs_argop4 ReturnOf(layoutreturn_type4 type, layoutiomode4 mode, const stateid4& sid = {},
                    const Bytes& body = {}) {
  auto a = simple::LayoutReturn(sid, mode);
  a.oplayoutreturn->lora_layoutreturn.lr_returntype = type;
  a.oplayoutreturn->lora_layoutreturn.lr_layout.lrf_body = body;
  return a;
}

nfs_argop4 LayoutError(std::vector<device_error4> errs) {
  auto a = Op(OP_LAYOUTERROR);
  a.oplayouterror = std::make_unique<LAYOUTERROR4args>();
  a.oplayouterror->lea_length = NFS4_UINT64_MAX;
  a.oplayouterror->lea_errors = std::move(errs);
  return a;
}

device_error4 DevError(const deviceid4& id, nfsstat4 st, nfs_opnum4 op) {
  device_error4 e;
  e.de_deviceid = id;
  e.de_status = st;
  e.de_opnum = op;
  return e;
}

Bytes Encoded(const ff_layoutreturn4& fr) {
  xdr::Encoder e;
  xdr_encode(e, fr);
  return Bytes::Copy(e.Flatten());
}

class PnfsEdgeTest : public ::testing::Test {
 protected:
  explicit PnfsEdgeTest(int data_servers = 2)
      : mds_(DirectMds::Options{.data_servers = data_servers}), client_(mds_, "pnfs-edge", kCred) {}
  void SetUp() override { ASSERT_EQ(client_.Setup(), NFS4_OK); }

  // Creates `name` at the root opened for read and write; its handle and open stateid.
  void Create(const std::string& name, Bytes* fh, stateid4* open) {
    Reply r = client_.Call(Ops(simple::PutRootFh(),
                               simple::Open("o", name, OPEN4_SHARE_ACCESS_BOTH, true), simple::GetFh()));
    ASSERT_TRUE(r.decoded);
    ASSERT_EQ(r.res.status, NFS4_OK);
    *open = r.res.resarray[2].opopen->resok4.stateid;
    *fh = Bytes::Copy(std::string(reinterpret_cast<const char*>(r.res.resarray[3].opgetfh->resok4.object.data),
                                  r.res.resarray[3].opgetfh->resok4.object.size));
  }
  // One op after PUTFH(fh); the op's status.
  nfsstat4 OnFile(const Bytes& fh, nfs_argop4 op, Reply* out = nullptr) {
    Reply r = client_.Call(Ops(simple::PutFh(fh), std::move(op)));
    EXPECT_TRUE(r.decoded);
    nfsstat4 st = r.res.resarray.size() == 3 ? OpStatus(r.res.resarray[2]) : r.res.status;
    if (out) *out = std::move(r);
    return st;
  }
  // PUTFH(fh) and one NFSv4.2 op (LAYOUTERROR, LAYOUTSTATS) in a minor version 2 COMPOUND.
  nfsstat4 Call42(const Bytes& fh, nfs_argop4 op) {
    Reply r = mds_.Call(Ops(simple::Sequence(client_.session, ++client_.seq), simple::PutFh(fh), std::move(op)),
                        kCred, 2);
    EXPECT_TRUE(r.decoded);
    return r.res.resarray.size() == 3 ? OpStatus(r.res.resarray[2]) : r.res.status;
  }
  // A layout of `mode` on fh with the open stateid; the layout stateid.
  stateid4 Layout(const Bytes& fh, const stateid4& open, layoutiomode4 mode) {
    Reply r;
    EXPECT_EQ(OnFile(fh, simple::LayoutGet(open, mode), &r), NFS4_OK);
    if (r.res.resarray.size() != 3) return {};
    return r.res.resarray[2].oplayoutget->logr_resok4.logr_stateid;
  }
  uint64_t Refusals(nfsstat4 st) {
    return mds_.mds().stats().Get(std::string("pnfs.layoutget_refused.") + nfsstat4_name(st))->calls();
  }
  uint64_t Size(const Bytes& fh) {
    Reply r = client_.Call(Ops(simple::PutFh(fh), simple::Getattr({FATTR4_SIZE})));
    if (r.res.status != NFS4_OK) return ~0ull;
    const Bytes& v = r.res.resarray[2].opgetattr->resok4.obj_attributes.attr_vals;
    xdr::Decoder d(v.data, v.size);
    uint64_t n = ~0ull;
    EXPECT_TRUE(d.u64(n));
    return n;
  }

  DirectMds mds_;
  DirectClient client_;
};

// ---------------------------------------------------------------------------------------
// LAYOUTGET (§18.43).

TEST_F(PnfsEdgeTest, LayoutGetRefusesBadTypesIomodesAndRanges) {
  Bytes fh;
  stateid4 open;
  Create("f", &fh, &open);
  struct Case {
    const char* what;
    std::function<void(LAYOUTGET4args&)> change;
    nfsstat4 want;
  };
  const Case cases[] = {
      {"files layout type", [](auto& l) { l.loga_layout_type = LAYOUT4_NFSV4_1_FILES; },
       NFS4ERR_UNKNOWN_LAYOUTTYPE},
      {"iomode ANY", [](auto& l) { l.loga_iomode = LAYOUTIOMODE4_ANY; }, NFS4ERR_BADIOMODE},
      {"iomode 0", [](auto& l) { l.loga_iomode = static_cast<layoutiomode4>(0); }, NFS4ERR_BADIOMODE},
      {"zero length", [](auto& l) { l.loga_length = 0; }, NFS4ERR_INVAL},
      {"minlength over length",
       [](auto& l) {
         l.loga_length = 100;
         l.loga_minlength = 200;
       },
       NFS4ERR_INVAL},
      {"range past 2^64",
       [](auto& l) {
         l.loga_offset = NFS4_UINT64_MAX - 10;
         l.loga_length = 100;
         l.loga_minlength = 0;
       },
       NFS4ERR_INVAL},
      {"minimum past 2^64",
       [](auto& l) {
         l.loga_offset = NFS4_UINT64_MAX - 10;
         l.loga_minlength = 100;
       },
       NFS4ERR_INVAL},
      {"body larger than maxcount", [](auto& l) { l.loga_maxcount = 16; }, NFS4ERR_TOOSMALL},
      {"anonymous stateid", [](auto& l) { l.loga_stateid = stateid4{}; }, NFS4ERR_BAD_STATEID},
      {"current stateid with none set", [](auto& l) { l.loga_stateid = CurrentStateid(); },
       NFS4ERR_BAD_STATEID},
  };
  for (const Case& c : cases) {
    auto op = simple::LayoutGet(open, LAYOUTIOMODE4_RW);
    c.change(*op.oplayoutget);
    const uint64_t before = Refusals(c.want);
    EXPECT_EQ(OnFile(fh, std::move(op)), c.want) << c.what;
    EXPECT_EQ(Refusals(c.want), before + 1) << c.what;  // counted by reason
  }
  // A range that ends exactly at 2^64 - 1 is fine...
  auto edge = simple::LayoutGet(open, LAYOUTIOMODE4_READ);
  edge.oplayoutget->loga_offset = 100;
  edge.oplayoutget->loga_length = NFS4_UINT64_MAX - 100;
  edge.oplayoutget->loga_minlength = 0;
  EXPECT_EQ(OnFile(fh, std::move(edge)), NFS4_OK);
  // ...and so is a minimum of NFS4_UINT64_MAX ("to the end of file") from any offset, which
  // the overflow rule exempts (§18.43.3).
  auto to_eof = simple::LayoutGet(open, LAYOUTIOMODE4_READ);
  to_eof.oplayoutget->loga_offset = 50;
  to_eof.oplayoutget->loga_minlength = NFS4_UINT64_MAX;
  EXPECT_EQ(OnFile(fh, std::move(to_eof)), NFS4_OK);
  // A minimum above a bounded length is INVAL even when it is NFS4_UINT64_MAX.
  auto over = simple::LayoutGet(open, LAYOUTIOMODE4_READ);
  over.oplayoutget->loga_length = 4096;
  over.oplayoutget->loga_minlength = NFS4_UINT64_MAX;
  EXPECT_EQ(OnFile(fh, std::move(over)), NFS4ERR_INVAL);
}

TEST_F(PnfsEdgeTest, LayoutGetOnlyForRegularFiles) {
  // §18.43.3: a layout is of a regular file; a directory is ISDIR, a symlink WRONG_TYPE.
  Reply r = client_.Call(Ops(simple::PutRootFh(), simple::LayoutGet(stateid4{}, LAYOUTIOMODE4_READ)));
  EXPECT_EQ(r.res.status, NFS4ERR_ISDIR);
  Reply s = client_.Call(Ops(simple::PutRootFh(), simple::Symlink("ln", "target"),
                             simple::LayoutGet(stateid4{}, LAYOUTIOMODE4_READ)));
  ASSERT_EQ(s.res.resarray.size(), 4u);
  EXPECT_EQ(OpStatus(s.res.resarray[2]), NFS4_OK);
  EXPECT_EQ(OpStatus(s.res.resarray[3]), NFS4ERR_WRONG_TYPE);
}

TEST_F(PnfsEdgeTest, LayoutStateidSeqidAdvancesAndIsUsableAgain) {
  // §12.5.3: the first LAYOUTGET takes the open stateid and returns a layout stateid; a
  // later one may present the layout stateid, and each grant bumps its seqid.
  Bytes fh;
  stateid4 open;
  Create("g", &fh, &open);
  stateid4 l1 = Layout(fh, open, LAYOUTIOMODE4_READ);
  EXPECT_TRUE(LayoutTable::IsLayoutStateid(l1));
  EXPECT_NE(l1.other, open.other);
  stateid4 l2 = Layout(fh, l1, LAYOUTIOMODE4_RW);
  EXPECT_EQ(l2.other, l1.other);
  EXPECT_GT(l2.seqid, l1.seqid);
  // The layout stateid in the same COMPOUND through the current stateid (as Linux sends
  // LAYOUTGET after OPEN).
  Reply r = client_.Call(Ops(simple::PutFh(fh), simple::LayoutGet(l2, LAYOUTIOMODE4_READ),
                             simple::LayoutGet(CurrentStateid(), LAYOUTIOMODE4_RW)));
  ASSERT_EQ(r.res.status, NFS4_OK);
  EXPECT_GT(r.res.resarray[3].oplayoutget->logr_resok4.logr_stateid.seqid,
            r.res.resarray[2].oplayoutget->logr_resok4.logr_stateid.seqid);
}

// ---------------------------------------------------------------------------------------
// GETDEVICELIST (§18.41) and GETDEVICEINFO (§18.40).

TEST_F(PnfsEdgeTest, DeviceListPagesByCookie) {
  Bytes fh;
  stateid4 open;
  Create("d", &fh, &open);
  Reply r;
  EXPECT_EQ(OnFile(fh, DeviceList(4, 0, LAYOUT4_NFSV4_1_FILES)), NFS4ERR_UNKNOWN_LAYOUTTYPE);
  EXPECT_EQ(OnFile(fh, DeviceList(0, 0)), NFS4ERR_INVAL);
  EXPECT_EQ(OnFile(fh, DeviceList(4, 3)), NFS4ERR_BAD_COOKIE);  // two devices: cookies 0..2
  // All at once.
  ASSERT_EQ(OnFile(fh, DeviceList(4, 0), &r), NFS4_OK);
  const auto& all = r.res.resarray[2].opgetdevicelist->gdlr_resok4;
  ASSERT_EQ(all.gdlr_deviceid_list.size(), 2u);
  EXPECT_EQ(all.gdlr_deviceid_list[0], DeviceIdOf(1));
  EXPECT_EQ(all.gdlr_deviceid_list[1], DeviceIdOf(2));
  EXPECT_TRUE(all.gdlr_eof);
  EXPECT_EQ(all.gdlr_cookie, 2u);
  // One at a time: the cookie names the next device.
  ASSERT_EQ(OnFile(fh, DeviceList(1, 0), &r), NFS4_OK);
  const auto& first = r.res.resarray[2].opgetdevicelist->gdlr_resok4;
  ASSERT_EQ(first.gdlr_deviceid_list.size(), 1u);
  EXPECT_EQ(first.gdlr_deviceid_list[0], DeviceIdOf(1));
  EXPECT_FALSE(first.gdlr_eof);
  EXPECT_EQ(first.gdlr_cookie, 1u);
  ASSERT_EQ(OnFile(fh, DeviceList(1, 1), &r), NFS4_OK);
  const auto& second = r.res.resarray[2].opgetdevicelist->gdlr_resok4;
  ASSERT_EQ(second.gdlr_deviceid_list.size(), 1u);
  EXPECT_EQ(second.gdlr_deviceid_list[0], DeviceIdOf(2));
  EXPECT_TRUE(second.gdlr_eof);
  // The end: an empty page, at eof.
  ASSERT_EQ(OnFile(fh, DeviceList(1, 2), &r), NFS4_OK);
  EXPECT_TRUE(r.res.resarray[2].opgetdevicelist->gdlr_resok4.gdlr_deviceid_list.empty());
  EXPECT_TRUE(r.res.resarray[2].opgetdevicelist->gdlr_resok4.gdlr_eof);
}

TEST_F(PnfsEdgeTest, DeviceInfoChecksTypeIdMaxcountAndNotifications) {
  auto info = [&](nfs_argop4 op, Reply* out = nullptr) {
    Reply r = client_.Call(Ops(std::move(op)));  // needs no filehandle
    EXPECT_TRUE(r.decoded);
    nfsstat4 st = r.res.resarray.size() == 2 ? OpStatus(r.res.resarray[1]) : r.res.status;
    if (out) *out = std::move(r);
    return st;
  };
  EXPECT_EQ(info(DeviceInfo(DeviceIdOf(1), 0, {}, LAYOUT4_NFSV4_1_FILES)), NFS4ERR_UNKNOWN_LAYOUTTYPE);
  deviceid4 foreign{};
  foreign[0] = 'x';
  EXPECT_EQ(info(DeviceInfo(foreign, 0, {})), NFS4ERR_NOENT);      // not one of ours
  EXPECT_EQ(info(DeviceInfo(DeviceIdOf(99), 0, {})), NFS4ERR_NOENT);  // ours, no such server
  deviceid4 padded = DeviceIdOf(1);
  padded[6] = 1;  // the eight bytes after "loom" must be zero
  EXPECT_EQ(info(DeviceInfo(padded, 0, {})), NFS4ERR_NOENT);
  // Too small a gdia_maxcount: TOOSMALL with the size that would do (§18.40.3).
  Reply r;
  ASSERT_EQ(info(DeviceInfo(DeviceIdOf(1), 8, {}), &r), NFS4ERR_TOOSMALL);
  const uint32_t need = r.res.resarray[1].opgetdeviceinfo->gdir_mincount;
  EXPECT_GT(need, 8u);
  ASSERT_EQ(info(DeviceInfo(DeviceIdOf(1), need, {}), &r), NFS4_OK);
  EXPECT_TRUE(r.res.resarray[1].opgetdeviceinfo->gdir_resok4.gdir_notification.empty());
  EXPECT_EQ(info(DeviceInfo(DeviceIdOf(1), need - 4, {})), NFS4ERR_TOOSMALL);
  // Notifications: only CHANGE and DELETE are granted, and only those asked for.
  const uint32_t change = 1u << NOTIFY_DEVICEID4_CHANGE, del = 1u << NOTIFY_DEVICEID4_DELETE;
  ASSERT_EQ(info(DeviceInfo(DeviceIdOf(2), 0, {change | del | 1u | (1u << 7)}), &r), NFS4_OK);
  ASSERT_EQ(r.res.resarray[1].opgetdeviceinfo->gdir_resok4.gdir_notification.size(), 1u);
  EXPECT_EQ(r.res.resarray[1].opgetdeviceinfo->gdir_resok4.gdir_notification[0], change | del);
  ASSERT_EQ(info(DeviceInfo(DeviceIdOf(2), 0, {1u}), &r), NFS4_OK);
  EXPECT_TRUE(r.res.resarray[1].opgetdeviceinfo->gdir_resok4.gdir_notification.empty());
  // The address body decodes as an ff_device_addr4 naming NFSv3 over tcp.
  const Bytes& body = r.res.resarray[1].opgetdeviceinfo->gdir_resok4.gdir_device_addr.da_addr_body;
  xdr::Decoder d(body.data, body.size);
  ff_device_addr4 fa;
  ASSERT_TRUE(xdr_decode(d, fa));
  ASSERT_EQ(fa.ffda_netaddrs.size(), 1u);
  EXPECT_EQ(fa.ffda_netaddrs[0].na_r_netid, "tcp");
  ASSERT_EQ(fa.ffda_versions.size(), 1u);
  EXPECT_EQ(fa.ffda_versions[0].ffdv_version, 3u);
  EXPECT_FALSE(fa.ffda_versions[0].ffdv_tightly_coupled);
}

TEST(PnfsAddressTest, UniversalAddressesOfHostsAndPorts) {
  // RFC 5665 §5.2.3.3-4: "h1.h2.h3.h4.p1.p2" for IPv4, "<v6>.p1.p2" for IPv6.
  std::string netid, uaddr;
  ASSERT_TRUE(UniversalAddress("10.1.2.3:2049", &netid, &uaddr));
  EXPECT_EQ(netid, "tcp");
  EXPECT_EQ(uaddr, "10.1.2.3.8.1");
  ASSERT_TRUE(UniversalAddress("[::1]:20490", &netid, &uaddr));
  EXPECT_EQ(netid, "tcp6");
  EXPECT_EQ(uaddr, "::1.80.10");
  ASSERT_TRUE(UniversalAddress("fe80::2:65535", &netid, &uaddr));  // bare v6, last colon is the port
  EXPECT_EQ(netid, "tcp6");
  EXPECT_EQ(uaddr, "fe80::2.255.255");
  ASSERT_TRUE(UniversalAddress("localhost:1", &netid, &uaddr));  // resolved (IPv4)
  EXPECT_EQ(netid, "tcp");
  EXPECT_EQ(uaddr, "127.0.0.1.0.1");
  for (const char* bad : {"10.1.2.3", "10.1.2.3:0", "10.1.2.3:65536", "10.1.2.3:-1", "10.1.2.3:x"})
    EXPECT_FALSE(UniversalAddress(bad, &netid, &uaddr)) << bad;
}

// ---------------------------------------------------------------------------------------
// LAYOUTRETURN (§18.44).

TEST_F(PnfsEdgeTest, LayoutReturnChecksTypeIomodeAndReturnType) {
  Bytes fh;
  stateid4 open;
  Create("r", &fh, &open);
  stateid4 l = Layout(fh, open, LAYOUTIOMODE4_RW);
  auto wrong_type = ReturnOf(LAYOUTRETURN4_FILE, LAYOUTIOMODE4_ANY, l);
  wrong_type.oplayoutreturn->lora_layout_type = LAYOUT4_BLOCK_VOLUME;
  EXPECT_EQ(OnFile(fh, std::move(wrong_type)), NFS4ERR_UNKNOWN_LAYOUTTYPE);
  for (int mode : {0, 4, 100})
    EXPECT_EQ(OnFile(fh, ReturnOf(LAYOUTRETURN4_FILE, static_cast<layoutiomode4>(mode), l)), NFS4ERR_INVAL)
        << mode;
  EXPECT_EQ(OnFile(fh, ReturnOf(static_cast<layoutreturn_type4>(7), LAYOUTIOMODE4_ANY, l)), NFS4ERR_INVAL);
  // FILE needs the file: no filehandle, a directory, an unresolved current stateid.
  Reply nofh = client_.Call(Ops(ReturnOf(LAYOUTRETURN4_FILE, LAYOUTIOMODE4_ANY, l)));
  EXPECT_EQ(nofh.res.status, NFS4ERR_NOFILEHANDLE);
  Reply dir = client_.Call(Ops(simple::PutRootFh(), ReturnOf(LAYOUTRETURN4_FILE, LAYOUTIOMODE4_ANY, l)));
  EXPECT_EQ(dir.res.status, NFS4ERR_ISDIR);
  EXPECT_EQ(OnFile(fh, ReturnOf(LAYOUTRETURN4_FILE, LAYOUTIOMODE4_ANY, CurrentStateid())),
            NFS4ERR_BAD_STATEID);
  // The layout is still held: returning it works.
  EXPECT_EQ(OnFile(fh, ReturnOf(LAYOUTRETURN4_FILE, LAYOUTIOMODE4_ANY, l)), NFS4_OK);
}

TEST_F(PnfsEdgeTest, ReturningOneIomodeKeepsTheOtherAndItsStateid) {
  // §18.44.3: lrs_present says whether layouts of the file remain; the stateid then carries
  // a newer seqid. A return when nothing is held succeeds with no stateid.
  Bytes fh;
  stateid4 open;
  Create("two", &fh, &open);
  stateid4 rd = Layout(fh, open, LAYOUTIOMODE4_READ);
  stateid4 rw = Layout(fh, rd, LAYOUTIOMODE4_RW);
  Reply r;
  ASSERT_EQ(OnFile(fh, ReturnOf(LAYOUTRETURN4_FILE, LAYOUTIOMODE4_RW, rw), &r), NFS4_OK);
  const auto kept = r.res.resarray[2].oplayoutreturn->lorr_stateid;
  ASSERT_TRUE(kept.lrs_present);
  EXPECT_EQ(kept.lrs_stateid.other, rw.other);
  EXPECT_GT(kept.lrs_stateid.seqid, rw.seqid);
  // The stateid the return handed back is the current stateid for what follows.
  Reply cur = client_.Call(Ops(simple::PutFh(fh), ReturnOf(LAYOUTRETURN4_FILE, LAYOUTIOMODE4_RW, kept.lrs_stateid),
                               ReturnOf(LAYOUTRETURN4_FILE, LAYOUTIOMODE4_READ, CurrentStateid())));
  ASSERT_EQ(cur.res.status, NFS4_OK);
  EXPECT_FALSE(cur.res.resarray[3].oplayoutreturn->lorr_stateid.lrs_present);
  ASSERT_EQ(OnFile(fh, ReturnOf(LAYOUTRETURN4_FILE, LAYOUTIOMODE4_READ, kept.lrs_stateid), &r), NFS4_OK);
  EXPECT_FALSE(r.res.resarray[2].oplayoutreturn->lorr_stateid.lrs_present);
  // An open stateid is no layout stateid.
  EXPECT_EQ(OnFile(fh, ReturnOf(LAYOUTRETURN4_FILE, LAYOUTIOMODE4_READ, open)), NFS4ERR_BAD_STATEID);
}

TEST_F(PnfsEdgeTest, ReturnFsidAndAllNeedNoFilehandle) {
  // §18.44.3: LAYOUTRETURN4_FSID and _ALL name no file; every layout of the iomode goes
  // (one filesystem per server).
  Bytes a, b;
  stateid4 oa, ob;
  Create("a", &a, &oa);
  Create("b", &b, &ob);
  stateid4 la = Layout(a, oa, LAYOUTIOMODE4_READ);
  stateid4 lb = Layout(b, ob, LAYOUTIOMODE4_RW);
  Reply fsid = client_.Call(Ops(ReturnOf(LAYOUTRETURN4_FSID, LAYOUTIOMODE4_READ)));
  ASSERT_EQ(fsid.res.status, NFS4_OK);
  EXPECT_FALSE(fsid.res.resarray[1].oplayoutreturn->lorr_stateid.lrs_present);
  Reply r;
  // a's READ layout went: returning it finds nothing.
  ASSERT_EQ(OnFile(a, ReturnOf(LAYOUTRETURN4_FILE, LAYOUTIOMODE4_ANY, la), &r), NFS4_OK);
  EXPECT_FALSE(r.res.resarray[2].oplayoutreturn->lorr_stateid.lrs_present);
  // b's RW layout stayed: returning READ of it leaves RW held.
  ASSERT_EQ(OnFile(b, ReturnOf(LAYOUTRETURN4_FILE, LAYOUTIOMODE4_READ, lb), &r), NFS4_OK);
  ASSERT_TRUE(r.res.resarray[2].oplayoutreturn->lorr_stateid.lrs_present);
  lb = r.res.resarray[2].oplayoutreturn->lorr_stateid.lrs_stateid;
  Reply all = client_.Call(Ops(ReturnOf(LAYOUTRETURN4_ALL, LAYOUTIOMODE4_ANY)));
  ASSERT_EQ(all.res.status, NFS4_OK);
  ASSERT_EQ(OnFile(b, ReturnOf(LAYOUTRETURN4_FILE, LAYOUTIOMODE4_READ, lb), &r), NFS4_OK);
  EXPECT_FALSE(r.res.resarray[2].oplayoutreturn->lorr_stateid.lrs_present);
}

TEST_F(PnfsEdgeTest, LayoutReturnBodiesReportErrorsAndStatistics) {
  // RFC 8435 §9.3: the body of a FILE return is an ff_layoutreturn4 with I/O errors and
  // statistics per data server. A body that does not decode is counted and ignored.
  Bytes fh;
  stateid4 open;
  Create("body", &fh, &open);
  StatsRegistry& stats = mds_.mds().stats();
  stateid4 l = Layout(fh, open, LAYOUTIOMODE4_RW);
  EXPECT_EQ(OnFile(fh, ReturnOf(LAYOUTRETURN4_FILE, LAYOUTIOMODE4_RW, l, Bytes::Copy("junk"))), NFS4_OK);
  EXPECT_EQ(stats.Get("pnfs.layoutreturn_bad_body")->errors(), 1u);
  ff_layoutreturn4 fr;
  ff_ioerr4 ioerr;
  ioerr.ffie_errors.push_back(DevError(DeviceIdOf(2), NFS4ERR_IO, OP_WRITE));
  deviceid4 foreign{};
  foreign.fill(0xee);
  ioerr.ffie_errors.push_back(DevError(foreign, NFS4ERR_IO, OP_WRITE));  // not ours: ignored
  fr.fflr_ioerr_report.push_back(ioerr);
  ff_iostats4 st;
  st.ffis_deviceid = DeviceIdOf(1);
  st.ffis_read.ii_bytes = 1000;
  st.ffis_write.ii_bytes = 3000;
  fr.fflr_iostats_report.push_back(st);
  st.ffis_deviceid = foreign;
  fr.fflr_iostats_report.push_back(st);
  l = Layout(fh, open, LAYOUTIOMODE4_RW);
  EXPECT_EQ(OnFile(fh, ReturnOf(LAYOUTRETURN4_FILE, LAYOUTIOMODE4_RW, l, Encoded(fr))), NFS4_OK);
  EXPECT_EQ(stats.Get("pnfs.ds2.client_errors")->errors(), 1u);
  EXPECT_EQ(stats.Get("pnfs.ds1.client_errors")->errors(), 0u);
  OpStats* s1 = stats.Get("pnfs.ds1.client_stats");
  EXPECT_EQ(s1->calls(), 1u);
  EXPECT_EQ(s1->bytes_in(), 3000u);
  EXPECT_EQ(s1->bytes_out(), 1000u);
  EXPECT_EQ(stats.Get("pnfs.layoutreturn_bad_body")->errors(), 1u);
}

// ---------------------------------------------------------------------------------------
// LAYOUTCOMMIT (§18.42).

TEST_F(PnfsEdgeTest, LayoutCommitChecksTypeAndStateidAndGrowsOnly) {
  Bytes fh;
  stateid4 open;
  Create("c", &fh, &open);
  stateid4 l = Layout(fh, open, LAYOUTIOMODE4_RW);
  auto typed = simple::LayoutCommit(l, 99);
  typed.oplayoutcommit->loca_layoutupdate.lou_type = LAYOUT4_OSD2_OBJECTS;
  EXPECT_EQ(OnFile(fh, std::move(typed)), NFS4ERR_UNKNOWN_LAYOUTTYPE);
  // The open stateid is no layout stateid of this client (§18.42.3).
  EXPECT_EQ(OnFile(fh, simple::LayoutCommit(open, 99)), NFS4ERR_BAD_STATEID);
  EXPECT_EQ(OnFile(fh, simple::LayoutCommit(CurrentStateid(), 99)), NFS4ERR_BAD_STATEID);
  // ...unless the client says it is reclaiming after a server restart.
  auto reclaim = simple::LayoutCommit(open, 9);
  reclaim.oplayoutcommit->loca_reclaim = true;
  EXPECT_EQ(OnFile(fh, std::move(reclaim)), NFS4_OK);
  EXPECT_EQ(Size(fh), 10u);
  // No new offset: the size stays, and the reply says so.
  auto none = simple::LayoutCommit(l, 500);
  none.oplayoutcommit->loca_last_write_offset.no_newoffset = false;
  Reply r;
  ASSERT_EQ(OnFile(fh, std::move(none), &r), NFS4_OK);
  EXPECT_FALSE(r.res.resarray[2].oplayoutcommit->locr_resok4.locr_newsize.ns_sizechanged);
  EXPECT_EQ(Size(fh), 10u);
  // A smaller last offset never shrinks the file.
  ASSERT_EQ(OnFile(fh, simple::LayoutCommit(l, 3), &r), NFS4_OK);
  EXPECT_FALSE(r.res.resarray[2].oplayoutcommit->locr_resok4.locr_newsize.ns_sizechanged);
  EXPECT_EQ(Size(fh), 10u);
  // An offset of 2^64 - 1 cannot be a last byte (the size would wrap): ignored.
  ASSERT_EQ(OnFile(fh, simple::LayoutCommit(l, NFS4_UINT64_MAX), &r), NFS4_OK);
  EXPECT_EQ(Size(fh), 10u);
  // A larger one grows it, with the client's modify time when it sends one.
  auto grow = simple::LayoutCommit(l, 4095);
  grow.oplayoutcommit->loca_time_modify.nt_timechanged = true;
  grow.oplayoutcommit->loca_time_modify.nt_time.seconds = 1234567;
  ASSERT_EQ(OnFile(fh, std::move(grow), &r), NFS4_OK);
  EXPECT_TRUE(r.res.resarray[2].oplayoutcommit->locr_resok4.locr_newsize.ns_sizechanged);
  EXPECT_EQ(r.res.resarray[2].oplayoutcommit->locr_resok4.locr_newsize.ns_size, 4096u);
  Reply t = client_.Call(Ops(simple::PutFh(fh), simple::Getattr({FATTR4_TIME_MODIFY})));
  ASSERT_EQ(t.res.status, NFS4_OK);
  const Bytes& v = t.res.resarray[2].opgetattr->resok4.obj_attributes.attr_vals;
  xdr::Decoder d(v.data, v.size);
  int64_t sec = 0;
  ASSERT_TRUE(d.i64(sec));
  EXPECT_EQ(sec, 1234567);
  // A directory is no layout file.
  Reply dir = client_.Call(Ops(simple::PutRootFh(), simple::LayoutCommit(l, 1)));
  EXPECT_EQ(dir.res.status, NFS4ERR_ISDIR);
}

// ---------------------------------------------------------------------------------------
// LAYOUTERROR and LAYOUTSTATS (RFC 7862 §15.6, §15.7).

TEST_F(PnfsEdgeTest, RepeatedLayoutErrorsSendTheClientThroughTheMds) {
  // Three errors on one file within a minute: LAYOUTGET answers LAYOUTUNAVAILABLE for that
  // file (the client then does its I/O through the MDS); other files are unaffected.
  Bytes fh, other;
  stateid4 open, oo;
  Create("e", &fh, &open);
  Create("e2", &other, &oo);
  Layout(fh, open, LAYOUTIOMODE4_RW);
  deviceid4 foreign{};
  foreign.fill(1);
  // Errors from devices that are not ours do not count.
  for (int i = 0; i < 3; i++)
    EXPECT_EQ(Call42(fh, LayoutError({DevError(foreign, NFS4ERR_IO, OP_READ)})), NFS4_OK);
  EXPECT_EQ(OnFile(fh, simple::LayoutGet(open, LAYOUTIOMODE4_RW)), NFS4_OK);
  EXPECT_EQ(Call42(fh, LayoutError({DevError(DeviceIdOf(1), NFS4ERR_IO, OP_READ),
                                    DevError(DeviceIdOf(1), NFS4ERR_IO, OP_WRITE)})),
            NFS4_OK);
  EXPECT_EQ(OnFile(fh, simple::LayoutGet(open, LAYOUTIOMODE4_RW)), NFS4_OK);  // two so far
  EXPECT_EQ(Call42(fh, LayoutError({DevError(DeviceIdOf(2), NFS4ERR_NXIO, OP_WRITE)})), NFS4_OK);
  EXPECT_EQ(OnFile(fh, simple::LayoutGet(open, LAYOUTIOMODE4_RW)), NFS4ERR_LAYOUTUNAVAILABLE);
  EXPECT_EQ(OnFile(other, simple::LayoutGet(oo, LAYOUTIOMODE4_RW)), NFS4_OK);
  EXPECT_EQ(mds_.mds().stats().Get("pnfs.ds1.client_errors")->errors(), 2u);
  EXPECT_EQ(mds_.mds().stats().Get("pnfs.ds2.client_errors")->errors(), 1u);
  // LAYOUTERROR on a directory is ISDIR (it names a file's layout).
  Reply dir = mds_.Call(Ops(simple::Sequence(client_.session, ++client_.seq), simple::PutRootFh(),
                            LayoutError({})),
                        kCred, 2);
  EXPECT_EQ(dir.res.status, NFS4ERR_ISDIR);
}

TEST_F(PnfsEdgeTest, LayoutStatsAreCountedPerDataServer) {
  Bytes fh;
  stateid4 open;
  Create("s", &fh, &open);
  auto stats = [&](const deviceid4& id, uint64_t rd, uint64_t wr) {
    auto a = Op(OP_LAYOUTSTATS);
    a.oplayoutstats = std::make_unique<LAYOUTSTATS4args>();
    a.oplayoutstats->lsa_deviceid = id;
    a.oplayoutstats->lsa_read.ii_bytes = rd;
    a.oplayoutstats->lsa_write.ii_bytes = wr;
    a.oplayoutstats->lsa_layoutupdate.lou_type = LAYOUT4_FLEX_FILES;
    return a;
  };
  EXPECT_EQ(Call42(fh, stats(DeviceIdOf(2), 10, 20)), NFS4_OK);
  deviceid4 foreign{};
  foreign.fill(7);
  EXPECT_EQ(Call42(fh, stats(foreign, 10, 20)), NFS4_OK);
  OpStats* s = mds_.mds().stats().Get("pnfs.ds2.client_stats");
  EXPECT_EQ(s->calls(), 1u);
  EXPECT_EQ(s->bytes_in(), 20u);
  EXPECT_EQ(s->bytes_out(), 10u);
  Reply dir = mds_.Call(Ops(simple::Sequence(client_.session, ++client_.seq), simple::PutRootFh(),
                            stats(DeviceIdOf(1), 1, 1)),
                        kCred, 2);
  EXPECT_EQ(dir.res.status, NFS4ERR_ISDIR);
}

// ---------------------------------------------------------------------------------------
// Without data servers (or with pNFS off) there are no layouts and no devices.

class NoPnfsTest : public PnfsEdgeTest {
 protected:
  NoPnfsTest() : PnfsEdgeTest(0) {}
};

TEST_F(NoPnfsTest, LayoutsAreUnavailableAndThereAreNoDevices) {
  Bytes fh;
  stateid4 open;
  Create("n", &fh, &open);
  EXPECT_EQ(OnFile(fh, simple::LayoutGet(open, LAYOUTIOMODE4_READ)), NFS4ERR_LAYOUTUNAVAILABLE);
  Reply r;
  ASSERT_EQ(OnFile(fh, DeviceList(8, 0), &r), NFS4_OK);
  EXPECT_TRUE(r.res.resarray[2].opgetdevicelist->gdlr_resok4.gdlr_deviceid_list.empty());
  EXPECT_TRUE(r.res.resarray[2].opgetdevicelist->gdlr_resok4.gdlr_eof);
  Reply info = client_.Call(Ops(DeviceInfo(DeviceIdOf(1), 0, {})));
  EXPECT_EQ(info.res.status, NFS4ERR_NOENT);
}

// ---------------------------------------------------------------------------------------
// Placement policies, striping and which clients may have striped layouts.

// A session whose EXCHANGE_ID names the client implementation (eia_client_impl_id, §18.35):
// Linux sends "Linux <release> ...".
class ImplClient {
 public:
  ImplClient(DirectMds& m, const std::string& owner, const std::string& impl) : m_(m) {
    auto x = simple::ExchangeId(owner, {9, 9, 9, 9, 9, 9, 9, 9});
    if (!impl.empty()) {
      nfs_impl_id4 id;
      id.nii_domain = Bytes::Copy("kernel.org");
      id.nii_name = Bytes::Copy(impl);
      x.opexchange_id->eia_client_impl_id.push_back(id);
    }
    Reply e = m_.Call(Ops(std::move(x)), kCred);
    EXPECT_EQ(e.res.status, NFS4_OK);
    if (e.res.status != NFS4_OK) return;
    const auto& ok = e.res.resarray[0].opexchange_id->eir_resok4;
    const channel_attrs4 fore{0, 1u << 20, 1u << 20, 64u << 10, 16, 8, {}};
    const channel_attrs4 back{0, 4096, 4096, 0, 2, 1, {}};
    Reply c = m_.Call(Ops(simple::CreateSession(ok.eir_clientid, ok.eir_sequenceid, 0, fore, back)), kCred);
    EXPECT_EQ(c.res.status, NFS4_OK);
    if (c.res.status != NFS4_OK) return;
    session_ = c.res.resarray[0].opcreate_session->csr_resok4.csr_sessionid;
    EXPECT_EQ(Call(Ops(simple::ReclaimComplete())).res.status, NFS4_OK);
  }
  Reply Call(std::vector<nfs_argop4> ops) {
    ops.insert(ops.begin(), simple::Sequence(session_, ++seq_));
    return m_.Call(std::move(ops), kCred);
  }

 private:
  DirectMds& m_;
  sessionid4 session_{};
  uint32_t seq_ = 0;
};

uint64_t InoOf(Mds& mds, const std::string& wire) {
  MdsHandle h;
  bool forged = false;
  EXPECT_TRUE(OpenFh(mds.fh_key(), wire, &h, &forged));
  return h.ino;
}

std::string Wire(const Bytes& b) { return std::string(reinterpret_cast<const char*>(b.data), b.size); }

TEST_F(PnfsEdgeTest, StripedLayoutsOnlyForClientsThatDecodeThem) {
  // A policy of two stripes on the root: new files there get a striped layout. Linux before
  // 6.18 cannot decode more than one data server per mirror, so it gets LAYOUTUNAVAILABLE
  // (and does I/O through the MDS); Linux 6.18 and other clients get the layout.
  Mds& mds = mds_.mds();
  const uint64_t root = InoOf(mds, mds.RootFh());
  Bytes file_fh;
  stateid4 file_open;
  Create("plain", &file_fh, &file_open);
  meta::PlacementPolicy p;
  p.stripes = 2;
  p.stripe_unit = 65536;
  EXPECT_FALSE(mds.SetPolicy(InoOf(mds, Wire(file_fh)), p).ok());  // on a directory only
  ASSERT_TRUE(mds.SetPolicy(root, p).ok());
  struct Who {
    const char* impl;
    nfsstat4 want;
  };
  for (const Who& w : {Who{"Linux 6.1.0-18-amd64 #1 SMP x86_64", NFS4ERR_LAYOUTUNAVAILABLE},
                       Who{"Linux 5.15.0 #1 SMP aarch64", NFS4ERR_LAYOUTUNAVAILABLE},
                       Who{"Linux unknown-release", NFS4ERR_LAYOUTUNAVAILABLE},
                       Who{"Linux 6.18.1 #1 SMP x86_64", NFS4_OK},
                       Who{"Linux 7.0.0 #1 SMP x86_64", NFS4_OK},
                       Who{"FreeBSD 14.1", NFS4_OK},
                       Who{"", NFS4_OK}}) {
    ImplClient c(mds_, std::string("impl-") + w.impl, w.impl);
    Reply r = c.Call(Ops(simple::PutRootFh(),
                         simple::Open("o", std::string("s-") + w.impl, OPEN4_SHARE_ACCESS_BOTH, true),
                         simple::LayoutGet(CurrentStateid(), LAYOUTIOMODE4_RW)));
    ASSERT_EQ(r.res.resarray.size(), 4u) << w.impl;
    EXPECT_EQ(OpStatus(r.res.resarray[3]), w.want) << w.impl;
    if (w.want != NFS4_OK) continue;
    const layout4& l = r.res.resarray[3].oplayoutget->logr_resok4.logr_layout.at(0);
    xdr::Decoder d(l.lo_content.loc_body.data, l.lo_content.loc_body.size);
    ff_layout4 ff;
    ASSERT_TRUE(xdr_decode(d, ff));
    EXPECT_EQ(ff.ffl_stripe_unit, 65536u);  // RFC 8435 §5.1: the unit of striping
    ASSERT_EQ(ff.ffl_mirrors.size(), 1u);
    EXPECT_EQ(ff.ffl_mirrors[0].ffm_data_servers.size(), 2u);
  }
  // The file made before the policy keeps its single data server: any client gets it.
  ImplClient old(mds_, "impl-old", "Linux 6.1.0 #1");
  Reply r = old.Call(Ops(simple::PutFh(file_fh), simple::OpenFh("o", OPEN4_SHARE_ACCESS_READ),
                         simple::LayoutGet(CurrentStateid(), LAYOUTIOMODE4_READ)));
  EXPECT_EQ(r.res.status, NFS4_OK);
  // Directories made under the policy pass it on to their files.
  Reply mk = client_.Call(Ops(simple::PutRootFh(), simple::Mkdir("sub"),
                              simple::Open("o", "deep", OPEN4_SHARE_ACCESS_BOTH, true), simple::GetFh(),
                              simple::LayoutGet(CurrentStateid(), LAYOUTIOMODE4_RW)));
  ASSERT_EQ(mk.res.status, NFS4_OK);
  auto layout = mds.LayoutOf(InoOf(mds, Wire(mk.res.resarray[4].opgetfh->resok4.object)));
  ASSERT_TRUE(layout.ok()) << layout.status().ToString();
  EXPECT_EQ(layout->stripe_count, 2u);
  // Removing the policy: new files are plain again.
  ASSERT_TRUE(mds.SetPolicy(root, std::nullopt).ok());
}

class PnfsMirrorEdgeTest : public PnfsEdgeTest {
 protected:
  void SetUp() override {
    PnfsEdgeTest::SetUp();
    meta::PlacementPolicy p;
    p.mirrors = 2;
    Mds& mds = mds_.mds();
    ASSERT_TRUE(mds.SetPolicy(InoOf(mds, mds.RootFh()), p).ok());
  }
  size_t MirrorsHandedOut(const Bytes& fh, const stateid4& open) {
    Reply r;
    EXPECT_EQ(OnFile(fh, simple::LayoutGet(open, LAYOUTIOMODE4_READ), &r), NFS4_OK);
    if (r.res.resarray.size() != 3) return 0;
    const layout4& l = r.res.resarray[2].oplayoutget->logr_resok4.logr_layout.at(0);
    xdr::Decoder d(l.lo_content.loc_body.data, l.lo_content.loc_body.size);
    ff_layout4 ff;
    EXPECT_TRUE(xdr_decode(d, ff));
    return ff.ffl_mirrors.size();
  }
};

TEST_F(PnfsMirrorEdgeTest, StaleMirrorsAreLeftOutUntilResynced) {
  Mds& mds = mds_.mds();
  Bytes fh;
  stateid4 open;
  Create("m", &fh, &open);
  ASSERT_EQ(OnFile(fh, simple::Write(open, 0, "mirrored bytes")), NFS4_OK);
  const uint64_t ino = InoOf(mds, Wire(fh));
  EXPECT_EQ(MirrorsHandedOut(fh, open), 2u);
  EXPECT_FALSE(mds.MarkMirrorStale(ino, 2, "test").ok());  // mirrors 0 and 1 only
  ASSERT_EQ(OnFile(fh, ReturnOf(LAYOUTRETURN4_FILE, LAYOUTIOMODE4_ANY, Layout(fh, open, LAYOUTIOMODE4_READ))),
            NFS4_OK);
  ASSERT_TRUE(mds.MarkMirrorStale(ino, 1, "test").ok());
  EXPECT_EQ(MirrorsHandedOut(fh, open), 1u);  // the stale one is not handed out
  ASSERT_EQ(OnFile(fh, ReturnOf(LAYOUTRETURN4_ALL, LAYOUTIOMODE4_ANY)), NFS4_OK);
  // Resync (as the background thread would) copies it back from mirror 0; a second pass
  // finds nothing left to do.
  mds.ResyncStaleMirrors();
  EXPECT_EQ(mds.stats().Get("pnfs.mirrors_resynced")->calls(), 1u);
  mds.ResyncStaleMirrors();
  EXPECT_EQ(mds.stats().Get("pnfs.mirrors_resynced")->calls(), 1u);
  EXPECT_EQ(MirrorsHandedOut(fh, open), 2u);
  ASSERT_EQ(OnFile(fh, ReturnOf(LAYOUTRETURN4_ALL, LAYOUTIOMODE4_ANY)), NFS4_OK);
  // Both stale: no copy may be handed out (the client goes through the MDS), and there is no
  // current mirror to resync from, so they stay stale.
  ASSERT_TRUE(mds.MarkMirrorStale(ino, 0, "test").ok());
  ASSERT_TRUE(mds.MarkMirrorStale(ino, 1, "test").ok());
  EXPECT_EQ(OnFile(fh, simple::LayoutGet(open, LAYOUTIOMODE4_READ)), NFS4ERR_LAYOUTUNAVAILABLE);
  mds.ResyncStaleMirrors();
  EXPECT_EQ(mds.stats().Get("pnfs.mirrors_resynced")->calls(), 1u);
  EXPECT_EQ(OnFile(fh, simple::LayoutGet(open, LAYOUTIOMODE4_READ)), NFS4ERR_LAYOUTUNAVAILABLE);
  // Nor does the MDS read a copy it cannot vouch for: I/O errors rather than old bytes.
  EXPECT_EQ(OnFile(fh, simple::Read(open, 0, 100)), NFS4ERR_IO);
  // A stale file removed before its resync is simply forgotten.
  Bytes gone;
  stateid4 go;
  Create("gone", &gone, &go);
  ASSERT_EQ(OnFile(gone, simple::Write(go, 0, "x")), NFS4_OK);
  ASSERT_TRUE(mds.MarkMirrorStale(InoOf(mds, Wire(gone)), 0, "test").ok());
  ASSERT_EQ(OnFile(gone, simple::Close(go)), NFS4_OK);
  ASSERT_EQ(client_.Call(Ops(simple::PutRootFh(), simple::Remove("gone"))).res.status, NFS4_OK);
  mds.ResyncStaleMirrors();
  EXPECT_EQ(mds.stats().Get("pnfs.mirrors_resynced")->calls(), 1u);
}

TEST_F(PnfsMirrorEdgeTest, LayoutsListingAStaleMirrorAreRecalledUntilReturned) {
  // §12.5.5.2: while a recall of a file's layouts is outstanding, LAYOUTGET answers
  // RECALLCONFLICT; the holder's LAYOUTRETURN ends the recall. This client has no back
  // channel, so it is never told: it learns from RECALLCONFLICT and returns on its own.
  Mds& mds = mds_.mds();
  Bytes fh;
  stateid4 open;
  Create("held", &fh, &open);
  ASSERT_EQ(OnFile(fh, simple::Write(open, 0, "held bytes")), NFS4_OK);
  const uint64_t ino = InoOf(mds, Wire(fh));
  stateid4 l = Layout(fh, open, LAYOUTIOMODE4_RW);
  const uint64_t recalls = mds.stats().Get("pnfs.recalls")->calls();
  ASSERT_TRUE(mds.MarkMirrorStale(ino, 1, "test").ok());
  EXPECT_EQ(mds.stats().Get("pnfs.recalls")->calls(), recalls + 1);
  EXPECT_EQ(OnFile(fh, simple::LayoutGet(l, LAYOUTIOMODE4_READ)), NFS4ERR_RECALLCONFLICT);
  // Another file is not affected.
  Bytes other;
  stateid4 oo;
  Create("free", &other, &oo);
  EXPECT_EQ(OnFile(other, simple::LayoutGet(oo, LAYOUTIOMODE4_READ)), NFS4_OK);
  ASSERT_EQ(OnFile(fh, ReturnOf(LAYOUTRETURN4_FILE, LAYOUTIOMODE4_ANY, l)), NFS4_OK);
  EXPECT_EQ(MirrorsHandedOut(fh, open), 1u);  // granted again, without the stale mirror
}

TEST_F(PnfsMirrorEdgeTest, MoveDataChecksTheDataServersItIsGiven) {
  Mds& mds = mds_.mds();
  Bytes fh;
  stateid4 open;
  Create("mv", &fh, &open);
  ASSERT_EQ(OnFile(fh, simple::Write(open, 0, "moving bytes")), NFS4_OK);
  const uint64_t ino = InoOf(mds, Wire(fh));
  // Two mirrors of one stripe: exactly two data servers.
  Status wrong = mds.MoveData(ino, {1});
  EXPECT_FALSE(wrong.ok());
  EXPECT_NE(wrong.ToString().find("2 mirrors of 1 stripes"), std::string::npos) << wrong.ToString();
  EXPECT_FALSE(mds.MoveData(ino, {1, 99}).ok());  // no data server 99
  EXPECT_FALSE(mds.MoveData(ino + 1000, {1, 2}).ok());  // no such file
  // Swapping the mirrors' servers keeps the bytes.
  ASSERT_TRUE(mds.MoveData(ino, {2, 1}).ok());
  auto l = mds.LayoutOf(ino);
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->mirrors[0].files[0].ds_id, 2u);
  EXPECT_EQ(l->mirrors[1].files[0].ds_id, 1u);
  Reply r;
  ASSERT_EQ(OnFile(fh, simple::Read(open, 0, 100), &r), NFS4_OK);
  const Bytes& data = r.res.resarray[2].opread->resok4.data;
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(data.data), data.size), "moving bytes");
  // Fencing gives the data files a new owner: layouts handed out later carry it.
  Reply before;
  ASSERT_EQ(OnFile(fh, simple::LayoutGet(open, LAYOUTIOMODE4_READ), &before), NFS4_OK);
  ASSERT_EQ(OnFile(fh, ReturnOf(LAYOUTRETURN4_ALL, LAYOUTIOMODE4_ANY)), NFS4_OK);
  const uint32_t uid_before = l->mirrors[0].files[0].uid;
  ASSERT_TRUE(mds.Fence(ino).ok());
  auto after = mds.LayoutOf(ino);
  ASSERT_TRUE(after.ok());
  EXPECT_NE(after->mirrors[0].files[0].uid, uid_before);
  EXPECT_EQ(mds.stats().Get("pnfs.fenced")->calls(), 1u);
  EXPECT_EQ(mds.stats().Get("pnfs.fenced")->errors(), 0u);
}

}  // namespace
}  // namespace loom::nfs4
