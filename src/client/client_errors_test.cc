// libloom's error handling in units: nfsstat4 and library statuses mapped to error classes,
// errno values and words (errors.cc), and the back channel's server side (callback.cc) fed
// well-formed and malformed CB_COMPOUNDs (RFC 8881 §20, §2.10.6.1; RPC rules of RFC 5531 §9).
#include <cerrno>
#include <cstring>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "client/callback.h"
#include "client/session.h"
#include "loom/client.h"
#include "rpc/auth.h"
#include "rpc/call_table.h"
#include "xdr/rpc.h"

namespace loom::client {
namespace {

const Errc kAllErrc[] = {Errc::kOk,       Errc::kNotFound,    Errc::kExists,   Errc::kPermission,
                         Errc::kNotDir,   Errc::kIsDir,       Errc::kNotEmpty, Errc::kNoSpace,
                         Errc::kReadOnly, Errc::kInvalid,     Errc::kNameTooLong, Errc::kStale,
                         Errc::kIo,       Errc::kUnavailable, Errc::kTimeout,  Errc::kInternal};

TEST(ClientErrorsTest, EveryClassHasItsOwnWordsAndErrno) {
  std::set<std::string> words;
  std::set<int> errnos;
  for (Errc c : kAllErrc) {
    words.insert(ErrcText(c));
    errnos.insert(ErrcToErrno(c));
  }
  EXPECT_EQ(words.size(), std::size(kAllErrc));
  EXPECT_EQ(errnos.size(), std::size(kAllErrc));
  EXPECT_STREQ(ErrcText(Errc::kOk), "ok");
  EXPECT_EQ(ErrcToErrno(Errc::kOk), 0);
  const std::pair<Errc, int> want[] = {
      {Errc::kNotFound, ENOENT},    {Errc::kExists, EEXIST},       {Errc::kPermission, EACCES},
      {Errc::kNotDir, ENOTDIR},     {Errc::kIsDir, EISDIR},        {Errc::kNotEmpty, ENOTEMPTY},
      {Errc::kNoSpace, ENOSPC},     {Errc::kReadOnly, EROFS},      {Errc::kInvalid, EINVAL},
      {Errc::kNameTooLong, ENAMETOOLONG}, {Errc::kStale, ESTALE},  {Errc::kIo, EIO},
      {Errc::kUnavailable, EHOSTUNREACH}, {Errc::kTimeout, ETIMEDOUT}, {Errc::kInternal, EPROTO}};
  for (auto [c, e] : want) EXPECT_EQ(ErrcToErrno(c), e) << ErrcText(c);
  EXPECT_STREQ(ErrcText(Errc::kReadOnly), "read-only file system");
  EXPECT_STREQ(ErrcText(Errc::kNameTooLong), "name too long");
  // A value outside the enum (a newer library's code seen by an older caller).
  EXPECT_STREQ(ErrcText(static_cast<Errc>(200)), "unknown error");
  EXPECT_EQ(ErrcToErrno(static_cast<Errc>(200)), EIO);
}

TEST(ClientErrorsTest, StatusInWords) {
  EXPECT_EQ(Status().ToString(), "ok");
  EXPECT_TRUE(Status::Ok().ok());
  EXPECT_EQ(Status(Errc::kIo, "").ToString(), "I/O error");
  EXPECT_EQ(Status(Errc::kIo, "/f").ToString(), "I/O error: /f");
  Status s(Errc::kStale, "/g", nfs4::NFS4ERR_STALE);
  EXPECT_EQ(s.ToString(), "stale file handle (removed or replaced): /g (NFS4ERR_STALE)");
  EXPECT_EQ(s.posix_errno(), ESTALE);
  EXPECT_EQ(s.nfs_status(), nfs4::NFS4ERR_STALE);
  EXPECT_EQ(s.message(), "/g");
  Result<int> r(Status(Errc::kTimeout, "slow"));
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Errc::kTimeout);
  Result<int> v(7);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, 7);
  EXPECT_STREQ(Version(), "0.1.0");
}

TEST(ClientErrorsTest, EveryNfs4StatusClassMapsToItsErrc) {
  using namespace nfs4;
  const std::pair<nfsstat4, Errc> want[] = {
      {NFS4ERR_NOENT, Errc::kNotFound},        {NFS4ERR_EXIST, Errc::kExists},
      {NFS4ERR_PERM, Errc::kPermission},       {NFS4ERR_ACCESS, Errc::kPermission},
      {NFS4ERR_WRONGSEC, Errc::kPermission},   {NFS4ERR_OPENMODE, Errc::kPermission},
      {NFS4ERR_NOTDIR, Errc::kNotDir},         {NFS4ERR_ISDIR, Errc::kIsDir},
      {NFS4ERR_NOTEMPTY, Errc::kNotEmpty},     {NFS4ERR_NOSPC, Errc::kNoSpace},
      {NFS4ERR_DQUOT, Errc::kNoSpace},         {NFS4ERR_ROFS, Errc::kReadOnly},
      {NFS4ERR_NAMETOOLONG, Errc::kNameTooLong}, {NFS4ERR_INVAL, Errc::kInvalid},
      {NFS4ERR_BADNAME, Errc::kInvalid},       {NFS4ERR_BADCHAR, Errc::kInvalid},
      {NFS4ERR_SYMLINK, Errc::kInvalid},       {NFS4ERR_WRONG_TYPE, Errc::kInvalid},
      {NFS4ERR_XDEV, Errc::kInvalid},          {NFS4ERR_FBIG, Errc::kInvalid},
      {NFS4ERR_STALE, Errc::kStale},           {NFS4ERR_FHEXPIRED, Errc::kStale},
      {NFS4ERR_DELAY, Errc::kTimeout},         {NFS4ERR_GRACE, Errc::kTimeout},
      {NFS4ERR_IO, Errc::kIo},                 {NFS4ERR_NXIO, Errc::kIo},
      {NFS4ERR_BADSESSION, Errc::kUnavailable}, {NFS4ERR_DEADSESSION, Errc::kUnavailable},
      {NFS4ERR_STALE_CLIENTID, Errc::kUnavailable}, {NFS4ERR_EXPIRED, Errc::kUnavailable},
      // Anything else is a protocol error: a bug on one side.
      {NFS4ERR_BADXDR, Errc::kInternal},       {NFS4ERR_SERVERFAULT, Errc::kInternal},
      {NFS4ERR_BAD_STATEID, Errc::kInternal},  {NFS4ERR_OP_ILLEGAL, Errc::kInternal},
  };
  for (auto [st, c] : want) {
    Status s = internal::FromNfs4(st, "/p");
    EXPECT_EQ(s.code(), c) << nfsstat4_name(st);
    EXPECT_EQ(s.nfs_status(), st);
    EXPECT_EQ(s.message(), "/p");
    EXPECT_NE(s.ToString().find(nfsstat4_name(st)), std::string::npos) << s.ToString();
  }
  Status ok = internal::FromNfs4(NFS4_OK, "/p");
  EXPECT_TRUE(ok.ok());
  EXPECT_EQ(ok.message(), "");
}

TEST(ClientErrorsTest, LibraryStatusesMapToErrcWithTheirMessage) {
  const std::pair<loom::Code, Errc> want[] = {
      {loom::Code::kNotFound, Errc::kNotFound},       {loom::Code::kExists, Errc::kExists},
      {loom::Code::kPermission, Errc::kPermission},   {loom::Code::kNoSpace, Errc::kNoSpace},
      {loom::Code::kUnavailable, Errc::kUnavailable}, {loom::Code::kTimeout, Errc::kTimeout},
      {loom::Code::kInvalidArgument, Errc::kInvalid}, {loom::Code::kIo, Errc::kIo},
      {loom::Code::kTooLarge, Errc::kInternal},       {loom::Code::kConflict, Errc::kInternal},
      {loom::Code::kInternal, Errc::kInternal},
  };
  for (auto [from, to] : want) {
    Status s = internal::FromLoomStatus(loom::Status(from, "went wrong"), "");
    EXPECT_EQ(s.code(), to) << loom::CodeName(from);
    EXPECT_EQ(s.message(), "went wrong");
    EXPECT_EQ(s.nfs_status(), 0);
    EXPECT_EQ(internal::FromLoomStatus(loom::Status(from, "went wrong"), "connect").message(),
              "connect: went wrong");
  }
  EXPECT_TRUE(internal::FromLoomStatus(loom::Status::Ok(), "x").ok());
}

TEST(ClientErrorsTest, AddressesAreParsedAndResolved) {
  using internal::ResolveAddress;
  EXPECT_EQ(ResolveAddress("127.0.0.1:5", 2049).value(), "127.0.0.1:5");
  EXPECT_EQ(ResolveAddress("127.0.0.1", 2049).value(), "127.0.0.1:2049");
  EXPECT_EQ(ResolveAddress(":7", 2049).value(), "127.0.0.1:7");  // no host: loopback
  EXPECT_EQ(ResolveAddress("", 2049).value(), "127.0.0.1:2049");
  EXPECT_EQ(ResolveAddress("[::1]:9", 2049).value(), "[::1]:9");
  EXPECT_EQ(ResolveAddress("[::1]", 2049).value(), "[::1]:2049");
  // A bare IPv6 address (more than one colon) is a host without a port.
  EXPECT_EQ(ResolveAddress("::1", 2049).value(), "[::1]:2049");
  for (const char* bad : {"[::1", "[::1]x9", "host:0", "host:65536", "host:12ab", "host:"}) {
    auto r = ResolveAddress(bad, 2049);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), Errc::kInvalid) << bad;
    EXPECT_NE(r.status().message().find(bad), std::string::npos) << r.status().ToString();
  }
  auto unknown = ResolveAddress("no-such-host.invalid:1", 2049);
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), Errc::kUnavailable);
  EXPECT_NE(unknown.status().message().find("no-such-host.invalid"), std::string::npos);
}

// ---------------------------------------------------------------- the back channel

using internal::CallbackService;

// Builds CALL records for CallbackService::OnCall and decodes its replies.
class CallbackEdgeTest : public ::testing::Test {
 protected:
  struct Header {
    int32_t mtype = rpc::CALL;
    uint32_t rpcvers = 2;
    uint32_t prog = CallbackService::kProgram;
    uint32_t vers = 1;
    uint32_t proc = 1;
    int32_t flavor = rpc::AUTH_SYS;
  };

  void SetUp() override {
    for (size_t i = 0; i < sid_.size(); i++) sid_[i] = static_cast<uint8_t>(0x40 + i);
  }
  void Open(uint32_t minor = 2, uint32_t slots = 4) {
    svc_.Reset(sid_, minor, slots);
    svc_.SetHandler([this](const nfs4::nfs_cb_argop4& op) {
      seen_.push_back(op.argop);
      return op.argop == nfs4::OP_CB_LAYOUTRECALL ? recall_status_ : nfs4::NFS4ERR_NOTSUPP;
    });
  }

  static void EncodeHeader(xdr::Encoder& e, const Header& h) {
    e.u32(4242);
    e.i32(h.mtype);
    rpc::call_body body;
    body.rpcvers = h.rpcvers;
    body.prog = h.prog;
    body.vers = h.vers;
    body.proc = h.proc;
    if (h.flavor == rpc::AUTH_SYS) {
      body.cred = rpc::EncodeCred(rpc::Cred::Sys(0, 0, {}, "loom-mds"));
    } else {
      body.cred.flavor = static_cast<rpc::auth_flavor>(h.flavor);
    }
    body.verf.flavor = rpc::AUTH_NONE;
    xdr_encode(e, body);
  }
  // CB_COMPOUND header: tag, minor version, callback_ident, op count.
  static void EncodeCompoundHead(xdr::Encoder& e, uint32_t minor, uint32_t nops) {
    e.u32(0);
    e.u32(minor);
    e.u32(0);
    e.u32(nops);
  }
  void EncodeSequence(xdr::Encoder& e, uint32_t slot, uint32_t seq) {
    nfs4::nfs_cb_argop4 op;
    op.argop = nfs4::OP_CB_SEQUENCE;
    op.opcbsequence = std::make_unique<nfs4::CB_SEQUENCE4args>();
    op.opcbsequence->csa_sessionid = sid_;
    op.opcbsequence->csa_sequenceid = seq;
    op.opcbsequence->csa_slotid = slot;
    xdr_encode(e, op);
  }
  // An op with default arguments (every member set so it encodes).
  static nfs4::nfs_cb_argop4 DefaultOp(nfs4::nfs_cb_opnum4 n) {
    using namespace nfs4;
    nfs_cb_argop4 op;
    op.argop = n;
    switch (n) {
      case OP_CB_GETATTR: op.opcbgetattr = std::make_unique<CB_GETATTR4args>(); break;
      case OP_CB_RECALL: op.opcbrecall = std::make_unique<CB_RECALL4args>(); break;
      case OP_CB_LAYOUTRECALL: {
        op.opcblayoutrecall = std::make_unique<CB_LAYOUTRECALL4args>();
        op.opcblayoutrecall->clora_type = LAYOUT4_FLEX_FILES;
        op.opcblayoutrecall->clora_iomode = LAYOUTIOMODE4_ANY;
        op.opcblayoutrecall->clora_recall.lor_recalltype = LAYOUTRECALL4_ALL;
        break;
      }
      case OP_CB_NOTIFY: op.opcbnotify = std::make_unique<CB_NOTIFY4args>(); break;
      case OP_CB_PUSH_DELEG: op.opcbpush_deleg = std::make_unique<CB_PUSH_DELEG4args>(); break;
      case OP_CB_RECALL_ANY: op.opcbrecall_any = std::make_unique<CB_RECALL_ANY4args>(); break;
      case OP_CB_RECALLABLE_OBJ_AVAIL:
        op.opcbrecallable_obj_avail = std::make_unique<CB_RECALLABLE_OBJ_AVAIL4args>();
        break;
      case OP_CB_RECALL_SLOT: op.opcbrecall_slot = std::make_unique<CB_RECALL_SLOT4args>(); break;
      case OP_CB_SEQUENCE: op.opcbsequence = std::make_unique<CB_SEQUENCE4args>(); break;
      case OP_CB_WANTS_CANCELLED: op.opcbwants_cancelled = std::make_unique<CB_WANTS_CANCELLED4args>(); break;
      case OP_CB_NOTIFY_LOCK: op.opcbnotify_lock = std::make_unique<CB_NOTIFY_LOCK4args>(); break;
      case OP_CB_NOTIFY_DEVICEID: op.opcbnotify_deviceid = std::make_unique<CB_NOTIFY_DEVICEID4args>(); break;
      case OP_CB_OFFLOAD: op.opcboffload = std::make_unique<CB_OFFLOAD4args>(); break;
      default: break;
    }
    return op;
  }
  // OnCall of the encoded bytes; the reply without its record mark ("" when none is sent).
  std::string Send(const std::string& bytes) {
    rpc::Record r;
    r.buf = Buffer::Allocate(bytes.size() ? bytes.size() : 1);
    std::memcpy(r.buf->data(), bytes.data(), bytes.size());
    r.size = bytes.size();
    auto reply = svc_.OnCall(r);
    return reply ? reply->Flatten().substr(4) : std::string();
  }
  // CB_SEQUENCE(slot, seq) followed by `ops`.
  std::string Compound(uint32_t slot, uint32_t seq, std::vector<nfs4::nfs_cb_opnum4> ops) {
    xdr::Encoder e;
    EncodeHeader(e, Header{});
    EncodeCompoundHead(e, 2, static_cast<uint32_t>(ops.size() + 1));
    EncodeSequence(e, slot, seq);
    for (auto n : ops) xdr_encode(e, DefaultOp(n));
    return Send(e.Flatten());
  }
  // The RPC accept_stat of a reply (or the loom::Code ParseReplyHeader gives a denial).
  static loom::Status ReplyStatus(const std::string& reply, size_t* body_off = nullptr) {
    uint32_t xid = 0;
    auto off = rpc::ParseReplyHeader(reinterpret_cast<const uint8_t*>(reply.data()), reply.size(), &xid);
    if (!off.ok()) return off.status();
    if (xid != 4242) return loom::Status(loom::Code::kInternal, "wrong xid");
    if (body_off) *body_off = *off;
    return loom::Status::Ok();
  }
  static nfs4::CB_COMPOUND4res Res(const std::string& reply) {
    nfs4::CB_COMPOUND4res res;
    res.status = nfs4::NFS4ERR_SERVERFAULT;
    size_t off = 0;
    if (!ReplyStatus(reply, &off).ok()) return res;
    xdr::Decoder d(reinterpret_cast<const uint8_t*>(reply.data()) + off, reply.size() - off);
    if (!xdr_decode(d, res)) res.status = nfs4::NFS4ERR_SERVERFAULT;
    return res;
  }

  CallbackService svc_;
  nfs4::sessionid4 sid_{};
  std::vector<nfs4::nfs_cb_opnum4> seen_;
  nfs4::nfsstat4 recall_status_ = nfs4::NFS4_OK;
};

TEST_F(CallbackEdgeTest, RpcLevelErrorsFollowRfc5531) {
  Open();
  // A reply (not a call), or a record too short to hold a header: no answer at all.
  {
    xdr::Encoder e;
    e.u32(1);
    e.i32(rpc::REPLY);
    EXPECT_EQ(Send(e.Flatten()), "");
    EXPECT_EQ(Send(std::string("\0\0", 2)), "");
  }
  // The call body cut short: GARBAGE_ARGS.
  {
    xdr::Encoder e;
    e.u32(4242);
    e.i32(rpc::CALL);
    e.u32(2);
    EXPECT_EQ(ReplyStatus(Send(e.Flatten())).code(), loom::Code::kInvalidArgument);
  }
  // RPC version 3: MSG_DENIED / RPC_MISMATCH.
  Header h;
  h.rpcvers = 3;
  xdr::Encoder e1;
  EncodeHeader(e1, h);
  loom::Status st = ReplyStatus(Send(e1.Flatten()));
  EXPECT_EQ(st.code(), loom::Code::kInvalidArgument);
  EXPECT_EQ(st.message(), "RPC_MISMATCH");
  // Another program version: PROG_MISMATCH; an unknown procedure: PROC_UNAVAIL.
  h = Header{};
  h.vers = 4;
  xdr::Encoder e2;
  EncodeHeader(e2, h);
  st = ReplyStatus(Send(e2.Flatten()));
  EXPECT_EQ(st.code(), loom::Code::kNotFound);
  EXPECT_EQ(st.message().rfind("PROG_MISMATCH 1", 0), 0u) << st.ToString();
  h = Header{};
  h.proc = 7;
  xdr::Encoder e3;
  EncodeHeader(e3, h);
  st = ReplyStatus(Send(e3.Flatten()));
  EXPECT_EQ(st.code(), loom::Code::kNotFound);
  EXPECT_EQ(st.message(), "PROC_UNAVAIL");
  // A credential flavor other than AUTH_SYS / AUTH_NONE: AUTH_ERROR.
  h = Header{};
  h.flavor = 6;  // RPCSEC_GSS
  xdr::Encoder e4;
  EncodeHeader(e4, h);
  EncodeCompoundHead(e4, 2, 0);
  st = ReplyStatus(Send(e4.Flatten()));
  EXPECT_EQ(st.code(), loom::Code::kPermission);
  EXPECT_NE(st.message().find("AUTH_BADCRED"), std::string::npos) << st.ToString();
  // None of these reached the handler or counted as answered.
  EXPECT_TRUE(seen_.empty());
  EXPECT_EQ(svc_.answered(), 0u);
  // CB_NULL (procedure 0) is answered with SUCCESS and nothing after it; AUTH_NONE is taken.
  h = Header{};
  h.proc = 0;
  h.flavor = rpc::AUTH_NONE;
  xdr::Encoder e5;
  EncodeHeader(e5, h);
  size_t off = 0;
  const std::string null_reply = Send(e5.Flatten());
  ASSERT_TRUE(ReplyStatus(null_reply, &off).ok());
  EXPECT_EQ(off, null_reply.size());
  EXPECT_EQ(svc_.answered(), 1u);
}

TEST_F(CallbackEdgeTest, MalformedCompoundsGetBadXdr) {
  Open();
  // The compound header cut short.
  {
    xdr::Encoder e;
    EncodeHeader(e, Header{});
    e.u32(0);  // tag only
    EXPECT_EQ(Res(Send(e.Flatten())).status, nfs4::NFS4ERR_BADXDR);
  }
  // More ops announced than sent.
  {
    xdr::Encoder e;
    EncodeHeader(e, Header{});
    EncodeCompoundHead(e, 2, 3);
    EncodeSequence(e, 0, 1);
    auto res = Res(Send(e.Flatten()));
    EXPECT_EQ(res.status, nfs4::NFS4ERR_BADXDR);
    ASSERT_EQ(res.resarray.size(), 1u);  // CB_SEQUENCE ran
  }
  // An op whose arguments are cut short: its result carries BADXDR.
  {
    xdr::Encoder e;
    EncodeHeader(e, Header{});
    EncodeCompoundHead(e, 2, 2);
    EncodeSequence(e, 0, 2);
    e.u32(nfs4::OP_CB_LAYOUTRECALL);
    e.u32(nfs4::LAYOUT4_FLEX_FILES);
    auto res = Res(Send(e.Flatten()));
    EXPECT_EQ(res.status, nfs4::NFS4ERR_BADXDR);
    ASSERT_EQ(res.resarray.size(), 2u);
    EXPECT_EQ(res.resarray[1].resop, nfs4::OP_CB_LAYOUTRECALL);
    ASSERT_TRUE(res.resarray[1].opcblayoutrecall);
    EXPECT_EQ(res.resarray[1].opcblayoutrecall->clorr_status, nfs4::NFS4ERR_BADXDR);
  }
  EXPECT_TRUE(seen_.empty());
}

TEST_F(CallbackEdgeTest, SequenceMustComeFirstAndOnlyFirst) {
  Open();
  // No CB_SEQUENCE at all: OP_NOT_IN_SESSION and the op does not run.
  {
    xdr::Encoder e;
    EncodeHeader(e, Header{});
    EncodeCompoundHead(e, 2, 1);
    xdr_encode(e, DefaultOp(nfs4::OP_CB_RECALL_ANY));
    auto res = Res(Send(e.Flatten()));
    EXPECT_EQ(res.status, nfs4::NFS4ERR_OP_NOT_IN_SESSION);
    ASSERT_EQ(res.resarray.size(), 1u);
    EXPECT_EQ(res.resarray[0].resop, nfs4::OP_CB_RECALL_ANY);
  }
  // A second CB_SEQUENCE: SEQUENCE_POS.
  {
    xdr::Encoder e;
    EncodeHeader(e, Header{});
    EncodeCompoundHead(e, 2, 2);
    EncodeSequence(e, 0, 1);
    EncodeSequence(e, 1, 1);
    auto res = Res(Send(e.Flatten()));
    EXPECT_EQ(res.status, nfs4::NFS4ERR_SEQUENCE_POS);
    ASSERT_EQ(res.resarray.size(), 2u);
    EXPECT_EQ(res.resarray[1].resop, nfs4::OP_CB_SEQUENCE);
  }
  EXPECT_TRUE(seen_.empty());
  // Slot 0 took seqid 1 in the compound above: 2 runs now, and the slot limits are reported.
  auto res = Res(Compound(0, 2, {}));
  ASSERT_EQ(res.status, nfs4::NFS4_OK);
  ASSERT_EQ(res.resarray.size(), 1u);
  EXPECT_EQ(res.resarray[0].opcbsequence->csr_resok4.csr_highest_slotid, 3u);
  EXPECT_EQ(res.resarray[0].opcbsequence->csr_resok4.csr_target_highest_slotid, 3u);
  EXPECT_EQ(res.resarray[0].opcbsequence->csr_resok4.csr_sessionid, sid_);
}

TEST_F(CallbackEdgeTest, EachRefusedOpAnswersWithItsOwnResultType) {
  using namespace nfs4;
  Open();
  const nfs_cb_opnum4 ops[] = {OP_CB_GETATTR,     OP_CB_RECALL,        OP_CB_NOTIFY,
                               OP_CB_PUSH_DELEG,  OP_CB_RECALLABLE_OBJ_AVAIL, OP_CB_RECALL_SLOT,
                               OP_CB_WANTS_CANCELLED, OP_CB_NOTIFY_LOCK, OP_CB_NOTIFY_DEVICEID,
                               OP_CB_OFFLOAD,     OP_CB_RECALL_ANY};
  uint32_t seq = 0;
  for (nfs_cb_opnum4 op : ops) {
    auto res = Res(Compound(1, ++seq, {op}));
    EXPECT_EQ(res.status, NFS4ERR_NOTSUPP) << op;
    ASSERT_EQ(res.resarray.size(), 2u) << op;
    EXPECT_EQ(res.resarray[1].resop, op);
  }
  EXPECT_EQ(seen_.size(), std::size(ops));
  // The status lands in each op's own result.
  auto res = Res(Compound(1, ++seq, {OP_CB_NOTIFY_DEVICEID}));
  ASSERT_TRUE(res.resarray[1].opcbnotify_deviceid);
  EXPECT_EQ(res.resarray[1].opcbnotify_deviceid->cndr_status, NFS4ERR_NOTSUPP);
  res = Res(Compound(1, ++seq, {OP_CB_OFFLOAD}));
  ASSERT_TRUE(res.resarray[1].opcboffload);
  EXPECT_EQ(res.resarray[1].opcboffload->cor_status, NFS4ERR_NOTSUPP);
  // A served op then a refused one: the compound stops at the refused one.
  res = Res(Compound(1, ++seq, {OP_CB_LAYOUTRECALL, OP_CB_GETATTR, OP_CB_LAYOUTRECALL}));
  EXPECT_EQ(res.status, NFS4ERR_NOTSUPP);
  ASSERT_EQ(res.resarray.size(), 3u);
  EXPECT_EQ(res.resarray[1].opcblayoutrecall->clorr_status, NFS4_OK);
  // The handler's own error (NOMATCHING_LAYOUT: nothing to recall) is passed on.
  recall_status_ = NFS4ERR_NOMATCHING_LAYOUT;
  res = Res(Compound(1, ++seq, {OP_CB_LAYOUTRECALL}));
  EXPECT_EQ(res.status, NFS4ERR_NOMATCHING_LAYOUT);
  EXPECT_EQ(res.resarray[1].opcblayoutrecall->clorr_status, NFS4ERR_NOMATCHING_LAYOUT);
}

TEST_F(CallbackEdgeTest, WithoutAHandlerOrASessionNothingRuns) {
  // Before any session: the compound cannot be checked against one.
  auto res = Res(Compound(0, 1, {nfs4::OP_CB_RECALL_ANY}));
  EXPECT_EQ(res.status, nfs4::NFS4ERR_MINOR_VERS_MISMATCH);
  EXPECT_TRUE(res.resarray.empty());
  // A session but no handler: every op but CB_SEQUENCE is refused.
  svc_.Reset(sid_, 2, 100);  // more slots than the service keeps: 64
  res = Res(Compound(0, 1, {nfs4::OP_CB_LAYOUTRECALL}));
  EXPECT_EQ(res.status, nfs4::NFS4ERR_NOTSUPP);
  res = Res(Compound(63, 1, {}));
  ASSERT_EQ(res.status, nfs4::NFS4_OK);
  EXPECT_EQ(res.resarray[0].opcbsequence->csr_resok4.csr_highest_slotid, 63u);
  EXPECT_EQ(Res(Compound(64, 1, {})).status, nfs4::NFS4ERR_BADSLOT);
  // A new session starts every slot again at seqid 1 (RFC 8881 §2.10.6.1).
  svc_.Reset(sid_, 2, 0);  // at least one slot
  EXPECT_EQ(Res(Compound(0, 2, {})).status, nfs4::NFS4ERR_SEQ_MISORDERED);
  EXPECT_EQ(Res(Compound(0, 1, {})).status, nfs4::NFS4_OK);
  EXPECT_EQ(Res(Compound(1, 1, {})).status, nfs4::NFS4ERR_BADSLOT);
  // Seqid 0 is never a retransmission of the slot's initial state.
  svc_.Reset(sid_, 2, 1);
  EXPECT_EQ(Res(Compound(0, 0, {})).status, nfs4::NFS4ERR_SEQ_MISORDERED);
}

}  // namespace
}  // namespace loom::client
