// NFSv4.1/4.2 XDR (src/xdr/spec/nfs4.x): COMPOUND round trips, byte-level field order of a
// client's EXCHANGE_ID, hostile counts and unknown operations, Flexible File layout sizes,
// and the callback program.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "xdr/nfs4.h"
#include "xdr/xdr.h"

namespace loom {
namespace {

using namespace nfs4;

template <typename T>
std::string Encode(const T& v) {
  xdr::Encoder e;
  xdr_encode(e, v);
  return e.Flatten();
}

template <typename T>
bool Decode(const std::string& s, T& v) {
  xdr::Decoder d(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  return xdr_decode(d, v) && d.remaining() == 0;
}

Bytes B(std::string_view s) { return Bytes::Copy(s); }

// Builds XDR by hand, independently of the generated encoders.
class Wire {
 public:
  Wire& u32(uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) out_.push_back(static_cast<char>(v >> s));
    return *this;
  }
  Wire& u64(uint64_t v) {
    return u32(static_cast<uint32_t>(v >> 32)).u32(static_cast<uint32_t>(v));
  }
  Wire& fixed(std::string_view b) {
    out_.append(b);
    out_.append((4 - b.size() % 4) % 4, '\0');
    return *this;
  }
  Wire& opaque(std::string_view b) { return u32(static_cast<uint32_t>(b.size())).fixed(b); }
  const std::string& str() const { return out_; }

 private:
  std::string out_;
};

stateid4 Stateid(uint32_t seqid, char fill) {
  stateid4 s;
  s.seqid = seqid;
  s.other.fill(static_cast<uint8_t>(fill));
  return s;
}

sessionid4 Session() {
  sessionid4 s;
  for (size_t i = 0; i < s.size(); i++) s[i] = static_cast<uint8_t>(0xa0 + i);
  return s;
}

// An ff_layout4 with two mirrors of one data server each.
ff_layout4 TwoMirrorLayout() {
  ff_layout4 l;
  l.ffl_stripe_unit = 1 << 20;
  for (int m = 0; m < 2; m++) {
    ff_mirror4 mirror;
    ff_data_server4 ds;
    ds.ffds_deviceid.fill(static_cast<uint8_t>(0x10 + m));
    ds.ffds_efficiency = 100 - m;
    ds.ffds_stateid = Stateid(0, 0);  // anonymous stateid: loosely coupled data servers
    ds.ffds_fh_vers.push_back(B(m == 0 ? std::string(20, 'f') : std::string(22, 'g')));
    ds.ffds_user = B(m == 0 ? "1000" : "0");
    ds.ffds_group = B(m == 0 ? "1000" : "0");
    mirror.ffm_data_servers.push_back(std::move(ds));
    l.ffl_mirrors.push_back(std::move(mirror));
  }
  l.ffl_flags = FF_FLAGS_NO_IO_THRU_MDS;
  l.ffl_stats_collect_hint = 60;
  return l;
}

// SEQUENCE, PUTFH, OPEN (CLAIM_NULL, EXCLUSIVE4_1), GETFH, GETATTR, LAYOUTGET: what a client
// sends to create a file and get a layout for writing it.
COMPOUND4args OpenCompound() {
  COMPOUND4args a;
  a.tag = B("open-create");
  a.minorversion = 2;

  nfs_argop4& seq = a.argarray.emplace_back();
  seq.argop = OP_SEQUENCE;
  seq.opsequence = std::make_unique<SEQUENCE4args>();
  seq.opsequence->sa_sessionid = Session();
  seq.opsequence->sa_sequenceid = 17;
  seq.opsequence->sa_slotid = 3;
  seq.opsequence->sa_highest_slotid = 7;
  seq.opsequence->sa_cachethis = true;

  nfs_argop4& putfh = a.argarray.emplace_back();
  putfh.argop = OP_PUTFH;
  putfh.opputfh = std::make_unique<PUTFH4args>();
  putfh.opputfh->object = B("dir-handle-0123456789");

  nfs_argop4& open = a.argarray.emplace_back();
  open.argop = OP_OPEN;
  open.opopen = std::make_unique<OPEN4args>();
  OPEN4args& o = *open.opopen;
  o.seqid = 0;
  o.share_access = OPEN4_SHARE_ACCESS_BOTH | OPEN4_SHARE_ACCESS_WANT_NO_DELEG;
  o.share_deny = OPEN4_SHARE_DENY_NONE;
  o.owner.clientid = 0x1122334455667788ULL;
  o.owner.owner = B(std::string_view("open id:\0\0\0\x2a", 12));
  o.openhow.opentype = OPEN4_CREATE;
  o.openhow.how.mode = EXCLUSIVE4_1;
  o.openhow.how.ch_createboth.cva_verf = {1, 2, 3, 4, 5, 6, 7, 8};
  o.openhow.how.ch_createboth.cva_attrs.attrmask = {0, 1u << (FATTR4_MODE - 32)};
  o.openhow.how.ch_createboth.cva_attrs.attr_vals = B(std::string("\0\0\x01\xa4", 4));  // 0644
  o.claim.claim = CLAIM_NULL;
  o.claim.file = B("data.bin");

  a.argarray.emplace_back().argop = OP_GETFH;

  nfs_argop4& getattr = a.argarray.emplace_back();
  getattr.argop = OP_GETATTR;
  getattr.opgetattr = std::make_unique<GETATTR4args>();
  getattr.opgetattr->attr_request = {
      (1u << FATTR4_TYPE) | (1u << FATTR4_CHANGE) | (1u << FATTR4_SIZE) | (1u << FATTR4_FILEID),
      (1u << (FATTR4_MODE - 32)) | (1u << (FATTR4_TIME_MODIFY - 32))};

  nfs_argop4& lg = a.argarray.emplace_back();
  lg.argop = OP_LAYOUTGET;
  lg.oplayoutget = std::make_unique<LAYOUTGET4args>();
  LAYOUTGET4args& l = *lg.oplayoutget;
  l.loga_signal_layout_avail = false;
  l.loga_layout_type = LAYOUT4_FLEX_FILES;
  l.loga_iomode = LAYOUTIOMODE4_RW;
  l.loga_offset = 0;
  l.loga_length = NFS4_UINT64_MAX;
  l.loga_minlength = 4096;
  l.loga_stateid = Stateid(1, 0);  // the current stateid (seqid 1, other 0)
  l.loga_maxcount = 65536;
  return a;
}

TEST(Nfs4XdrTest, CompoundArgsRoundTrip) {
  std::string wire = Encode(OpenCompound());
  COMPOUND4args b;
  ASSERT_TRUE(Decode(wire, b));
  EXPECT_EQ(b.tag.view(), "open-create");
  EXPECT_EQ(b.minorversion, 2u);
  ASSERT_EQ(b.argarray.size(), 6u);
  const nfs_opnum4 ops[] = {OP_SEQUENCE, OP_PUTFH, OP_OPEN, OP_GETFH, OP_GETATTR, OP_LAYOUTGET};
  for (size_t i = 0; i < 6; i++) EXPECT_EQ(b.argarray[i].argop, ops[i]) << i;

  ASSERT_TRUE(b.argarray[0].opsequence);
  EXPECT_EQ(b.argarray[0].opsequence->sa_sessionid, Session());
  EXPECT_EQ(b.argarray[0].opsequence->sa_slotid, 3u);
  EXPECT_TRUE(b.argarray[0].opsequence->sa_cachethis);
  EXPECT_EQ(b.argarray[1].opputfh->object.view(), "dir-handle-0123456789");

  // Only the arm the discriminant selects is allocated.
  EXPECT_FALSE(b.argarray[0].opputfh);
  EXPECT_FALSE(b.argarray[3].opputfh);

  const OPEN4args& o = *b.argarray[2].opopen;
  EXPECT_EQ(o.share_access, OPEN4_SHARE_ACCESS_BOTH | OPEN4_SHARE_ACCESS_WANT_NO_DELEG);
  EXPECT_EQ(o.owner.clientid, 0x1122334455667788ULL);
  EXPECT_EQ(o.owner.owner.view(), std::string_view("open id:\0\0\0\x2a", 12));
  EXPECT_EQ(o.openhow.opentype, OPEN4_CREATE);
  EXPECT_EQ(o.openhow.how.mode, EXCLUSIVE4_1);
  EXPECT_EQ(o.openhow.how.ch_createboth.cva_verf[7], 8);
  EXPECT_EQ(o.openhow.how.ch_createboth.cva_attrs.attrmask.size(), 2u);
  EXPECT_EQ(o.claim.claim, CLAIM_NULL);
  EXPECT_EQ(o.claim.file.view(), "data.bin");

  EXPECT_EQ(b.argarray[4].opgetattr->attr_request[1], 0x00200002u);  // mode (33), mtime (53)
  const LAYOUTGET4args& l = *b.argarray[5].oplayoutget;
  EXPECT_EQ(l.loga_layout_type, LAYOUT4_FLEX_FILES);
  EXPECT_EQ(l.loga_iomode, LAYOUTIOMODE4_RW);
  EXPECT_EQ(l.loga_length, NFS4_UINT64_MAX);
  EXPECT_EQ(l.loga_stateid.seqid, 1u);
  EXPECT_EQ(l.loga_maxcount, 65536u);

  EXPECT_EQ(Encode(b), wire);
  // Every strict prefix is a clean decode failure.
  for (size_t n = 0; n < wire.size(); n++) {
    COMPOUND4args t;
    EXPECT_FALSE(Decode(wire.substr(0, n), t)) << n;
  }
}

TEST(Nfs4XdrTest, CompoundResRoundTrip) {
  COMPOUND4res r;
  r.status = NFS4_OK;
  r.tag = B("open-create");

  nfs_resop4& seq = r.resarray.emplace_back();
  seq.resop = OP_SEQUENCE;
  seq.opsequence = std::make_unique<SEQUENCE4res>();
  seq.opsequence->sr_status = NFS4_OK;
  seq.opsequence->sr_resok4.sr_sessionid = Session();
  seq.opsequence->sr_resok4.sr_sequenceid = 17;
  seq.opsequence->sr_resok4.sr_slotid = 3;
  seq.opsequence->sr_resok4.sr_highest_slotid = 63;
  seq.opsequence->sr_resok4.sr_target_highest_slotid = 63;
  seq.opsequence->sr_resok4.sr_status_flags = SEQ4_STATUS_DEVID_CHANGED;

  nfs_resop4& putfh = r.resarray.emplace_back();
  putfh.resop = OP_PUTFH;
  putfh.opputfh = std::make_unique<PUTFH4res>();

  nfs_resop4& open = r.resarray.emplace_back();
  open.resop = OP_OPEN;
  open.opopen = std::make_unique<OPEN4res>();
  OPEN4resok& ok = open.opopen->resok4;
  ok.stateid = Stateid(1, 'S');
  ok.cinfo.atomic = true;
  ok.cinfo.before = 10;
  ok.cinfo.after = 11;
  ok.rflags = OPEN4_RESULT_LOCKTYPE_POSIX;
  ok.attrset = {0, 1u << (FATTR4_MODE - 32)};
  ok.delegation.delegation_type = OPEN_DELEGATE_NONE_EXT;
  ok.delegation.od_whynone.ond_why = WND4_NOT_WANTED;

  nfs_resop4& getfh = r.resarray.emplace_back();
  getfh.resop = OP_GETFH;
  getfh.opgetfh = std::make_unique<GETFH4res>();
  getfh.opgetfh->resok4.object = B("file-handle-abcdef");

  nfs_resop4& getattr = r.resarray.emplace_back();
  getattr.resop = OP_GETATTR;
  getattr.opgetattr = std::make_unique<GETATTR4res>();
  getattr.opgetattr->resok4.obj_attributes.attrmask = {1u << FATTR4_SIZE};
  getattr.opgetattr->resok4.obj_attributes.attr_vals = B(std::string(8, '\0'));

  nfs_resop4& lg = r.resarray.emplace_back();
  lg.resop = OP_LAYOUTGET;
  lg.oplayoutget = std::make_unique<LAYOUTGET4res>();
  LAYOUTGET4resok& lok = lg.oplayoutget->logr_resok4;
  lok.logr_return_on_close = true;
  lok.logr_stateid = Stateid(1, 'L');
  layout4& lay = lok.logr_layout.emplace_back();
  lay.lo_offset = 0;
  lay.lo_length = NFS4_UINT64_MAX;
  lay.lo_iomode = LAYOUTIOMODE4_RW;
  lay.lo_content.loc_type = LAYOUT4_FLEX_FILES;
  lay.lo_content.loc_body = B(Encode(TwoMirrorLayout()));

  std::string wire = Encode(r);
  COMPOUND4res b;
  ASSERT_TRUE(Decode(wire, b));
  ASSERT_EQ(b.resarray.size(), 6u);
  EXPECT_EQ(b.resarray[0].opsequence->sr_resok4.sr_status_flags, SEQ4_STATUS_DEVID_CHANGED);
  EXPECT_EQ(b.resarray[1].opputfh->status, NFS4_OK);
  const OPEN4resok& bo = b.resarray[2].opopen->resok4;
  EXPECT_EQ(bo.stateid.other[11], 'S');
  EXPECT_EQ(bo.cinfo.after, 11u);
  EXPECT_EQ(bo.delegation.delegation_type, OPEN_DELEGATE_NONE_EXT);
  EXPECT_EQ(bo.delegation.od_whynone.ond_why, WND4_NOT_WANTED);
  EXPECT_EQ(b.resarray[3].opgetfh->resok4.object.view(), "file-handle-abcdef");
  const LAYOUTGET4resok& bl = b.resarray[5].oplayoutget->logr_resok4;
  EXPECT_TRUE(bl.logr_return_on_close);
  ASSERT_EQ(bl.logr_layout.size(), 1u);
  EXPECT_EQ(bl.logr_layout[0].lo_content.loc_type, LAYOUT4_FLEX_FILES);

  // The layout body decodes as an ff_layout4.
  ff_layout4 ff;
  ASSERT_TRUE(Decode(bl.logr_layout[0].lo_content.loc_body.str(), ff));
  ASSERT_EQ(ff.ffl_mirrors.size(), 2u);
  EXPECT_EQ(ff.ffl_mirrors[1].ffm_data_servers[0].ffds_fh_vers[0].size, 22u);
  EXPECT_EQ(ff.ffl_flags, FF_FLAGS_NO_IO_THRU_MDS);

  EXPECT_EQ(Encode(b), wire);

  // An error status ends the results and carries no body.
  COMPOUND4res err;
  err.status = NFS4ERR_BADSESSION;
  nfs_resop4& e = err.resarray.emplace_back();
  e.resop = OP_SEQUENCE;
  e.opsequence = std::make_unique<SEQUENCE4res>();
  e.opsequence->sr_status = NFS4ERR_BADSESSION;
  EXPECT_EQ(Encode(err).size(), 4u + 4u + 4u + 4u + 4u);
}

// EXCHANGE_ID as the Linux client sends it (one op, SP4_MACH_CRED, an implementation id),
// written out byte by byte so the test pins the field order, not just the round trip.
TEST(Nfs4XdrTest, DecodesHandBuiltExchangeId) {
  const std::string owner = "Linux NFSv4.2 client-a";  // 22 bytes, 2 of padding
  Wire w;
  w.opaque("")                                  // tag
      .u32(2)                                   // minorversion
      .u32(1)                                   // argarray count
      .u32(42)                                  // OP_EXCHANGE_ID
      .fixed(std::string("\x63\x5f\x1a\x2b\x00\x00\x00\x07", 8))  // co_verifier
      .opaque(owner)                            // co_ownerid
      .u32(0x00000107)                          // eia_flags
      .u32(1)                                   // spa_how = SP4_MACH_CRED
      .u32(2).u32(0x00000000).u32(0x02001e00)   // spo_must_enforce
      .u32(2).u32(0x00204130).u32(0x00982000)   // spo_must_allow
      .u32(1)                                   // eia_client_impl_id count
      .opaque("kernel.org")                     // nii_domain
      .opaque("Linux 6.1.0 x86_64")             // nii_name
      .u64(0).u32(0);                           // nii_date
  ASSERT_EQ(w.str().size(), 4u + 4 + 4 + 4 + 8 + 28 + 4 + 4 + 12 + 12 + 4 + 16 + 24 + 12);

  COMPOUND4args a;
  ASSERT_TRUE(Decode(w.str(), a));
  EXPECT_TRUE(a.tag.empty());
  EXPECT_EQ(a.minorversion, 2u);
  ASSERT_EQ(a.argarray.size(), 1u);
  ASSERT_EQ(a.argarray[0].argop, OP_EXCHANGE_ID);
  const EXCHANGE_ID4args& x = *a.argarray[0].opexchange_id;
  EXPECT_EQ(x.eia_clientowner.co_verifier[0], 0x63);
  EXPECT_EQ(x.eia_clientowner.co_verifier[7], 0x07);
  EXPECT_EQ(x.eia_clientowner.co_ownerid.view(), owner);
  EXPECT_EQ(x.eia_flags, EXCHGID4_FLAG_SUPP_MOVED_REFER | EXCHGID4_FLAG_SUPP_MOVED_MIGR |
                             EXCHGID4_FLAG_SUPP_FENCE_OPS | EXCHGID4_FLAG_BIND_PRINC_STATEID);
  EXPECT_EQ(x.eia_state_protect.spa_how, SP4_MACH_CRED);
  const state_protect_ops4& ops = x.eia_state_protect.spa_mach_ops;
  ASSERT_EQ(ops.spo_must_enforce.size(), 2u);
  EXPECT_EQ(ops.spo_must_enforce[1], (1u << (OP_BIND_CONN_TO_SESSION - 32)) |
                                         (1u << (OP_EXCHANGE_ID - 32)) |
                                         (1u << (OP_CREATE_SESSION - 32)) |
                                         (1u << (OP_DESTROY_SESSION - 32)) |
                                         (1u << (OP_DESTROY_CLIENTID - 32)));
  EXPECT_EQ(ops.spo_must_allow[0], (1u << OP_CLOSE) | (1u << OP_COMMIT) |
                                       (1u << OP_DELEGRETURN) | (1u << OP_LOCKU) |
                                       (1u << OP_OPEN_DOWNGRADE));
  ASSERT_EQ(x.eia_client_impl_id.size(), 1u);
  EXPECT_EQ(x.eia_client_impl_id[0].nii_domain.view(), "kernel.org");
  EXPECT_EQ(x.eia_client_impl_id[0].nii_name.view(), "Linux 6.1.0 x86_64");
  EXPECT_EQ(Encode(a), w.str());

  // eia_client_impl_id is <1>: two entries is malformed.
  std::string two = w.str();
  const size_t count_at = two.size() - (12 + 16 + 24 + 4);
  ASSERT_EQ(two.substr(count_at, 4), std::string("\0\0\0\1", 4));
  two[count_at + 3] = 2;
  EXPECT_FALSE(Decode(two, a));
}

TEST(Nfs4XdrTest, HostileCountsAndUnknownOpsFailCleanly) {
  // argarray of 2^31 entries with a few bytes behind it.
  std::string huge = Wire().opaque("").u32(1).u32(0x80000000u).u32(OP_GETFH).u32(OP_GETFH).str();
  COMPOUND4args a;
  EXPECT_FALSE(Decode(huge, a));
  // ... and of 2^32-1.
  huge = Wire().opaque("").u32(1).u32(0xffffffffu).str();
  EXPECT_FALSE(Decode(huge, a));
  // A count larger than the bytes that follow could hold.
  EXPECT_FALSE(Decode(Wire().opaque("").u32(1).u32(3).u32(OP_GETFH).u32(OP_GETFH).str(), a));

  // Operation numbers outside the protocol: 0..2, 76 (one past REMOVEXATTR), negative.
  for (uint32_t op : {0u, 1u, 2u, 76u, 10043u, 10045u, 0xffffffffu}) {
    std::string w = Wire().opaque("").u32(1).u32(1).u32(op).str();
    EXPECT_FALSE(Decode(w, a)) << op;
    std::string r = Wire().u32(NFS4ERR_OP_ILLEGAL).opaque("").u32(1).u32(op).u32(0).str();
    COMPOUND4res res;
    EXPECT_FALSE(Decode(r, res)) << op;
  }
  // OP_ILLEGAL itself is a defined (void) arm, and an op after a valid one is still checked.
  EXPECT_TRUE(Decode(Wire().opaque("").u32(1).u32(1).u32(OP_ILLEGAL).str(), a));
  EXPECT_FALSE(Decode(Wire().opaque("").u32(1).u32(2).u32(OP_GETFH).u32(76).str(), a));

  CB_COMPOUND4args cb;
  EXPECT_FALSE(Decode(Wire().opaque("").u32(1).u32(0).u32(1).u32(16).str(), cb));
  EXPECT_FALSE(Decode(Wire().opaque("").u32(1).u32(0).u32(0x40000000u).str(), cb));

  // Bounded items: a filehandle over NFS4_FHSIZE, an owner over NFS4_OPAQUE_LIMIT.
  PUTFH4args fh;
  EXPECT_FALSE(Decode(Wire().opaque(std::string(NFS4_FHSIZE + 1, 'h')).str(), fh));
  EXPECT_TRUE(Decode(Wire().opaque(std::string(NFS4_FHSIZE, 'h')).str(), fh));
  state_owner4 so;
  EXPECT_FALSE(Decode(Wire().u64(1).opaque(std::string(NFS4_OPAQUE_LIMIT + 1, 'o')).str(), so));

  // A union with no default arm rejects values outside its cases (createmode4 4).
  createhow4 how;
  EXPECT_FALSE(Decode(Wire().u32(4).str(), how));
}

TEST(Nfs4XdrTest, FlexFileLayoutWithTwoMirrorsHasTheComputedLength) {
  // ff_data_server4 = deviceid 16 + efficiency 4 + stateid (4 + 12) + fh_vers count 4
  //                   + each fh (4 + padded length) + user (4 + padded) + group (4 + padded)
  const size_t ds0 = 16 + 4 + 16 + 4 + (4 + 20) + (4 + 4) + (4 + 4);  // fh 20, "1000", "1000"
  const size_t ds1 = 16 + 4 + 16 + 4 + (4 + 24) + (4 + 4) + (4 + 4);  // fh 22 -> 24, "0", "0"
  // ff_mirror4 = data server count 4 + servers
  const size_t mirrors = (4 + ds0) + (4 + ds1);
  // ff_layout4 = stripe unit 8 + mirror count 4 + mirrors + flags 4 + stats hint 4
  const size_t expected = 8 + 4 + mirrors + 4 + 4;
  ASSERT_EQ(expected, 192u);

  ff_layout4 l = TwoMirrorLayout();
  std::string wire = Encode(l);
  EXPECT_EQ(wire.size(), expected);
  // The first mirror's first data server starts after stripe unit, mirror count, server count.
  EXPECT_EQ(wire.substr(16, 16), std::string(16, '\x10'));
  ff_layout4 back;
  ASSERT_TRUE(Decode(wire, back));
  EXPECT_EQ(back.ffl_stripe_unit, 1u << 20);
  EXPECT_EQ(back.ffl_mirrors[0].ffm_data_servers[0].ffds_efficiency, 100u);
  EXPECT_EQ(back.ffl_mirrors[0].ffm_data_servers[0].ffds_user.view(), "1000");
  EXPECT_EQ(back.ffl_stats_collect_hint, 60u);
  EXPECT_EQ(Encode(back), wire);
}

TEST(Nfs4XdrTest, FlexFileDeviceAndReturnBodies) {
  ff_device_addr4 da;
  netaddr4& na = da.ffda_netaddrs.emplace_back();
  na.na_r_netid = "tcp";
  na.na_r_addr = "10.0.0.7.8.1";  // port 2049
  ff_device_versions4& v = da.ffda_versions.emplace_back();
  v.ffdv_version = 3;
  v.ffdv_minorversion = 0;
  v.ffdv_rsize = v.ffdv_wsize = 1 << 20;
  v.ffdv_tightly_coupled = false;
  std::string wire = Encode(da);
  EXPECT_EQ(wire.size(), 4u + (4 + 4) + (4 + 12) + 4 + 20);
  ff_device_addr4 db;
  ASSERT_TRUE(Decode(wire, db));
  EXPECT_EQ(db.ffda_netaddrs[0].na_r_addr, "10.0.0.7.8.1");
  EXPECT_EQ(db.ffda_versions[0].ffdv_rsize, 1u << 20);

  ff_layoutreturn4 ret;
  ff_ioerr4& ioerr = ret.fflr_ioerr_report.emplace_back();
  ioerr.ffie_offset = 4096;
  ioerr.ffie_length = 8192;
  ioerr.ffie_stateid = Stateid(2, 'L');
  device_error4& de = ioerr.ffie_errors.emplace_back();
  de.de_deviceid.fill(0x11);
  de.de_status = NFS4ERR_NXIO;
  de.de_opnum = OP_WRITE;
  ff_iostats4& st = ret.fflr_iostats_report.emplace_back();
  st.ffis_read.ii_count = 5;
  st.ffis_write.ii_bytes = 1 << 30;
  st.ffis_layoutupdate.ffl_addr = na;
  st.ffis_layoutupdate.ffl_fhandle = B("ds-fh");
  st.ffis_layoutupdate.ffl_write.ffil_bytes_completed = 1 << 30;
  st.ffis_layoutupdate.ffl_local = true;
  std::string rw = Encode(ret);
  ff_layoutreturn4 rb;
  ASSERT_TRUE(Decode(rw, rb));
  EXPECT_EQ(rb.fflr_ioerr_report[0].ffie_errors[0].de_opnum, OP_WRITE);
  EXPECT_EQ(rb.fflr_iostats_report[0].ffis_write.ii_bytes, 1u << 30);
  EXPECT_TRUE(rb.fflr_iostats_report[0].ffis_layoutupdate.ffl_local);
  EXPECT_EQ(Encode(rb), rw);

  ff_layouthint4 hint;
  hint.fflh_mirrors_hint.ffmc_valid = true;
  hint.fflh_mirrors_hint.ffmc_mirrors = 2;
  EXPECT_EQ(Encode(hint), Wire().u32(1).u32(2).str());
}

TEST(Nfs4XdrTest, ArraysOfArrayTypedefs) {
  // pathname4 is component4<>; fs_location4.server is utf8str_cis<>.
  fs_locations4 loc;
  loc.fs_root = {B("export"), B("data")};
  fs_location4& l = loc.locations.emplace_back();
  l.server = {B("mds1"), B("mds2.example")};
  l.rootpath = {B("srv")};
  std::string wire = Encode(loc);
  EXPECT_EQ(wire, Wire()
                      .u32(2).opaque("export").opaque("data")
                      .u32(1)
                      .u32(2).opaque("mds1").opaque("mds2.example")
                      .u32(1).opaque("srv")
                      .str());
  fs_locations4 back;
  ASSERT_TRUE(Decode(wire, back));
  EXPECT_EQ(back.locations[0].server[1].view(), "mds2.example");

  // deviceid4 is opaque[16]: a list of them is 4 + 16 per entry.
  GETDEVICELIST4resok dl;
  dl.gdlr_deviceid_list.resize(2);
  dl.gdlr_deviceid_list[1].fill(0x7e);
  dl.gdlr_eof = true;
  std::string dw = Encode(dl);
  EXPECT_EQ(dw.size(), 8u + 8 + 4 + 2 * 16 + 4);
  GETDEVICELIST4resok db;
  ASSERT_TRUE(Decode(dw, db));
  EXPECT_EQ(db.gdlr_deviceid_list[1][15], 0x7e);

  // multipath_list4 is netaddr4<>; the file layout's device address holds a list of them.
  nfsv4_1_file_layout_ds_addr4 fa;
  fa.nflda_stripe_indices = {0, 1};
  fa.nflda_multipath_ds_list.resize(2);
  fa.nflda_multipath_ds_list[1].push_back(netaddr4{"tcp", "10.0.0.2.8.1"});
  nfsv4_1_file_layout_ds_addr4 fb;
  ASSERT_TRUE(Decode(Encode(fa), fb));
  ASSERT_EQ(fb.nflda_multipath_ds_list.size(), 2u);
  EXPECT_TRUE(fb.nflda_multipath_ds_list[0].empty());
  EXPECT_EQ(fb.nflda_multipath_ds_list[1][0].na_r_addr, "10.0.0.2.8.1");
}

TEST(Nfs4XdrTest, ReaddirEntriesAreAList) {
  READDIR4res r;
  r.status = NFS4_OK;
  for (int i = 0; i < 3; i++) {
    entry4& e = r.resok4.reply.entries.emplace_back();
    e.cookie = i + 3;
    e.name = B("f" + std::to_string(i));
    e.attrs.attrmask = {1u << FATTR4_TYPE};
    e.attrs.attr_vals = B(std::string("\0\0\0\1", 4));
  }
  r.resok4.reply.eof = true;
  std::string wire = Encode(r);
  READDIR4res back;
  ASSERT_TRUE(Decode(wire, back));
  ASSERT_EQ(back.resok4.reply.entries.size(), 3u);
  EXPECT_EQ(back.resok4.reply.entries[2].name.view(), "f2");
  EXPECT_TRUE(back.resok4.reply.eof);
  EXPECT_EQ(Encode(back), wire);
}

TEST(Nfs4XdrTest, NullPointerArmEncodesADefaultValue) {
  nfs_argop4 op;
  op.argop = OP_PUTFH;  // opputfh left null
  EXPECT_EQ(Encode(op), Wire().u32(OP_PUTFH).u32(0).str());
  nfs_argop4 back;
  ASSERT_TRUE(Decode(Encode(op), back));
  ASSERT_TRUE(back.opputfh);
  EXPECT_TRUE(back.opputfh->object.empty());

  nfs_resop4 res;
  res.resop = OP_ILLEGAL;
  EXPECT_EQ(Encode(res), Wire().u32(OP_ILLEGAL).u32(NFS4_OK).str());
}

TEST(Nfs4XdrTest, CallbackCompoundRoundTrip) {
  CB_COMPOUND4args a;
  a.minorversion = 1;
  a.callback_ident = 0;

  nfs_cb_argop4& seq = a.argarray.emplace_back();
  seq.argop = OP_CB_SEQUENCE;
  seq.opcbsequence = std::make_unique<CB_SEQUENCE4args>();
  seq.opcbsequence->csa_sessionid = Session();
  seq.opcbsequence->csa_sequenceid = 1;
  referring_call_list4& rcl = seq.opcbsequence->csa_referring_call_lists.emplace_back();
  rcl.rcl_sessionid = Session();
  rcl.rcl_referring_calls.push_back(referring_call4{17, 3});

  nfs_cb_argop4& recall = a.argarray.emplace_back();
  recall.argop = OP_CB_LAYOUTRECALL;
  recall.opcblayoutrecall = std::make_unique<CB_LAYOUTRECALL4args>();
  CB_LAYOUTRECALL4args& lr = *recall.opcblayoutrecall;
  lr.clora_type = LAYOUT4_FLEX_FILES;
  lr.clora_iomode = LAYOUTIOMODE4_ANY;
  lr.clora_changed = true;
  lr.clora_recall.lor_recalltype = LAYOUTRECALL4_FILE;
  lr.clora_recall.lor_layout.lor_fh = B("file-handle-abcdef");
  lr.clora_recall.lor_layout.lor_length = NFS4_UINT64_MAX;
  lr.clora_recall.lor_layout.lor_stateid = Stateid(2, 'L');

  nfs_cb_argop4& any = a.argarray.emplace_back();
  any.argop = OP_CB_RECALL_ANY;
  any.opcbrecall_any = std::make_unique<CB_RECALL_ANY4args>();
  any.opcbrecall_any->craa_objects_to_keep = 0;
  any.opcbrecall_any->craa_type_mask = {(1u << PNFS_FF_RCA4_TYPE_MASK_READ) |
                                        (1u << PNFS_FF_RCA4_TYPE_MASK_RW)};

  nfs_cb_argop4& off = a.argarray.emplace_back();
  off.argop = OP_CB_OFFLOAD;
  off.opcboffload = std::make_unique<CB_OFFLOAD4args>();
  off.opcboffload->coa_offload_info.coa_status = NFS4ERR_NOSPC;  // default arm: bytes copied
  off.opcboffload->coa_offload_info.coa_bytes_copied = 12345;

  std::string wire = Encode(a);
  CB_COMPOUND4args b;
  ASSERT_TRUE(Decode(wire, b));
  ASSERT_EQ(b.argarray.size(), 4u);
  EXPECT_EQ(b.argarray[0].opcbsequence->csa_referring_call_lists[0].rcl_referring_calls[0]
                .rc_slotid,
            3u);
  EXPECT_EQ(b.argarray[1].opcblayoutrecall->clora_recall.lor_layout.lor_fh.view(),
            "file-handle-abcdef");
  EXPECT_EQ(b.argarray[2].opcbrecall_any->craa_type_mask[0], 0x30000u);
  EXPECT_EQ(b.argarray[3].opcboffload->coa_offload_info.coa_bytes_copied, 12345u);
  EXPECT_EQ(Encode(b), wire);

  CB_COMPOUND4res r;
  r.status = NFS4_OK;
  nfs_cb_resop4& rs = r.resarray.emplace_back();
  rs.resop = OP_CB_SEQUENCE;
  rs.opcbsequence = std::make_unique<CB_SEQUENCE4res>();
  rs.opcbsequence->csr_resok4.csr_sessionid = Session();
  nfs_cb_resop4& rl = r.resarray.emplace_back();
  rl.resop = OP_CB_LAYOUTRECALL;
  rl.opcblayoutrecall = std::make_unique<CB_LAYOUTRECALL4res>();
  rl.opcblayoutrecall->clorr_status = NFS4ERR_NOMATCHING_LAYOUT;
  std::string rw = Encode(r);
  CB_COMPOUND4res rb;
  ASSERT_TRUE(Decode(rw, rb));
  EXPECT_EQ(rb.resarray[1].opcblayoutrecall->clorr_status, NFS4ERR_NOMATCHING_LAYOUT);
  EXPECT_EQ(Encode(rb), rw);
}

TEST(Nfs4XdrTest, NamesAndProgramTables) {
  EXPECT_STREQ(nfs_opnum4_name(OP_LAYOUTGET), "OP_LAYOUTGET");
  EXPECT_STREQ(nfs_opnum4_name(OP_REMOVEXATTR), "OP_REMOVEXATTR");
  EXPECT_STREQ(nfs_opnum4_name(76), "?");
  EXPECT_STREQ(nfsstat4_name(NFS4ERR_OFFLOAD_NO_REQS), "NFS4ERR_OFFLOAD_NO_REQS");
  EXPECT_STREQ(nfsstat4_name(NFS4ERR_XATTR2BIG), "NFS4ERR_XATTR2BIG");
  EXPECT_STREQ(nfs_cb_opnum4_name(OP_CB_OFFLOAD), "OP_CB_OFFLOAD");
  EXPECT_EQ(NFS4_PROGRAM, 100003u);
  EXPECT_EQ(NFS_V4, 4u);
  EXPECT_STREQ(NFS_V4_procname(NFSPROC4_COMPOUND), "NFSPROC4_COMPOUND");
  EXPECT_EQ(NFS_V4_procname(2), nullptr);
  EXPECT_STREQ(NFS_CB_procname(CB_COMPOUND), "CB_COMPOUND");
}

}  // namespace
}  // namespace loom
