// libFuzzer target: the byte stream a hostile client can send to loom-ds and loom-mds.
// Feeds the input through RecordAssembler in chunks whose sizes the input chooses, then decodes
// each record as the server does: call header, credential, and the NFSv3 / MOUNT arguments of
// the procedure it names, or for NFSv4 (program 100003 version 4) a COMPOUND, its results,
// the callback COMPOUND and the Flexible File layout bodies (see DecodeNfs4). Every decoded
// value is re-encoded and decoded again; the two encodings must agree. Any crash, sanitizer
// report or mismatch is a bug.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "rpc/auth.h"
#include "rpc/record.h"
#include "xdr/mount3.h"
#include "xdr/nfs3.h"
#include "xdr/nfs4.h"
#include "xdr/rpc.h"

using namespace loom;

namespace {

// Decodes a T into v; when that succeeds, checks that encode/decode/encode agrees.
template <typename T>
bool RoundTrip(xdr::Decoder& d, T& v) {
  if (!xdr_decode(d, v)) return false;
  xdr::Encoder e1;
  xdr_encode(e1, v);
  std::string a = e1.Flatten();
  xdr::Decoder d2(reinterpret_cast<const uint8_t*>(a.data()), a.size());
  T w;
  if (!xdr_decode(d2, w) || d2.remaining() != 0) std::abort();
  xdr::Encoder e2;
  xdr_encode(e2, w);
  if (e2.Flatten() != a) std::abort();
  return true;
}

template <typename T>
void RoundTrip(xdr::Decoder& d) {
  T v;
  (void)RoundTrip(d, v);
}

// An opaque body that holds another XDR type (a layout-type-specific body).
template <typename T>
void RoundTripBody(const Bytes& b) {
  if (b.is_file()) return;
  xdr::Decoder d(b.data, b.size, b.owner);
  RoundTrip<T>(d);
}

// NFSv4 (program 100003 version 4). The procedure number picks what the body is decoded as:
// 1 COMPOUND4args (as loom-mds receives it), 101 COMPOUND4res, 201 CB_COMPOUND4args,
// 202 CB_COMPOUND4res (the backchannel), 150-153 Flexible File bodies.
void DecodeNfs4(uint32_t proc, xdr::Decoder& d) {
  using namespace nfs4;
  switch (proc) {
    case NFSPROC4_COMPOUND: {
      COMPOUND4args args;
      if (!RoundTrip(d, args)) return;
      // The layout bodies a client sends are decoded by the MDS too.
      for (const nfs_argop4& op : args.argarray) {
        if (op.argop == OP_LAYOUTRETURN && op.oplayoutreturn &&
            op.oplayoutreturn->lora_layout_type == LAYOUT4_FLEX_FILES) {
          const layoutreturn4& lr = op.oplayoutreturn->lora_layoutreturn;
          if (lr.lr_returntype == LAYOUTRETURN4_FILE) {
            RoundTripBody<ff_layoutreturn4>(lr.lr_layout.lrf_body);
          }
        } else if (op.argop == OP_LAYOUTSTATS && op.oplayoutstats) {
          RoundTripBody<ff_layoutupdate4>(op.oplayoutstats->lsa_layoutupdate.lou_body);
        }
      }
      return;
    }
    case 100 + NFSPROC4_COMPOUND: return RoundTrip<COMPOUND4res>(d);
    case 200 + CB_COMPOUND: return RoundTrip<CB_COMPOUND4args>(d);
    case 201 + CB_COMPOUND: return RoundTrip<CB_COMPOUND4res>(d);
    case 150: return RoundTrip<ff_layout4>(d);
    case 151: return RoundTrip<ff_device_addr4>(d);
    case 152: return RoundTrip<ff_layoutreturn4>(d);
    case 153: return RoundTrip<ff_layouthint4>(d);
    default: return;
  }
}

void DecodeNfs3(uint32_t proc, xdr::Decoder& d) {
  using namespace nfs3;
  switch (proc) {
    case NFSPROC3_GETATTR: return RoundTrip<GETATTR3args>(d);
    case NFSPROC3_SETATTR: return RoundTrip<SETATTR3args>(d);
    case NFSPROC3_LOOKUP: return RoundTrip<LOOKUP3args>(d);
    case NFSPROC3_ACCESS: return RoundTrip<ACCESS3args>(d);
    case NFSPROC3_READLINK: return RoundTrip<READLINK3args>(d);
    case NFSPROC3_READ: return RoundTrip<READ3args>(d);
    case NFSPROC3_WRITE: return RoundTrip<WRITE3args>(d);
    case NFSPROC3_CREATE: return RoundTrip<CREATE3args>(d);
    case NFSPROC3_MKDIR: return RoundTrip<MKDIR3args>(d);
    case NFSPROC3_SYMLINK: return RoundTrip<SYMLINK3args>(d);
    case NFSPROC3_MKNOD: return RoundTrip<MKNOD3args>(d);
    case NFSPROC3_REMOVE: return RoundTrip<REMOVE3args>(d);
    case NFSPROC3_RMDIR: return RoundTrip<RMDIR3args>(d);
    case NFSPROC3_RENAME: return RoundTrip<RENAME3args>(d);
    case NFSPROC3_LINK: return RoundTrip<LINK3args>(d);
    case NFSPROC3_READDIR: return RoundTrip<READDIR3args>(d);
    case NFSPROC3_READDIRPLUS: return RoundTrip<READDIRPLUS3args>(d);
    case NFSPROC3_FSSTAT: return RoundTrip<FSSTAT3args>(d);
    case NFSPROC3_FSINFO: return RoundTrip<FSINFO3args>(d);
    case NFSPROC3_PATHCONF: return RoundTrip<PATHCONF3args>(d);
    case NFSPROC3_COMMIT: return RoundTrip<COMMIT3args>(d);
    // Results too: the MDS and the native client decode these from data servers.
    case 100 + NFSPROC3_READ: return RoundTrip<READ3res>(d);
    case 100 + NFSPROC3_READDIRPLUS: return RoundTrip<READDIRPLUS3res>(d);
    case 100 + NFSPROC3_LOOKUP: return RoundTrip<LOOKUP3res>(d);
    case 100 + NFSPROC3_WRITE: return RoundTrip<WRITE3res>(d);
    case 200 + MOUNTPROC3_MNT: return RoundTrip<mountres3>(d);
    case 200 + MOUNTPROC3_EXPORT: return RoundTrip<exports3>(d);
    case 200 + MOUNTPROC3_DUMP: return RoundTrip<mountlist3>(d);
    default: return;
  }
}

void DecodeRecord(const rpc::Record& r) {
  xdr::Decoder d(r.buf->data(), r.size, r.buf);
  uint32_t xid;
  int32_t mtype;
  if (!d.u32(xid) || !d.i32(mtype)) return;
  if (mtype == rpc::REPLY) {
    rpc::reply_body body;
    (void)xdr_decode(d, body);
    return;
  }
  rpc::call_body cb;
  if (!xdr_decode(d, cb)) return;
  rpc::Cred cred;
  (void)rpc::ParseCred(cb.cred, &cred);
  if (cb.prog == nfs4::NFS4_PROGRAM && cb.vers == nfs4::NFS_V4) {
    DecodeNfs4(cb.proc % 256, d);
    return;
  }
  if (cb.prog == nfs3::MOUNT_PROGRAM) {
    std::string path;
    (void)d.string(path, nfs3::MNTPATHLEN);
    return;
  }
  // Procedure numbers beyond NFSv3's pick result decoders (see DecodeNfs3).
  DecodeNfs3(cb.proc % 256, d);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  size_t chunk = 1 + data[0] % 64;  // exercise marks split across reads
  data++;
  size--;
  rpc::RecordAssembler as(64 * 1024);
  std::vector<rpc::Record> recs;
  for (size_t off = 0; off < size; off += chunk) {
    size_t n = std::min(chunk, size - off);
    bool ok = as.Feed(data + off, n, &recs);
    for (const auto& r : recs) DecodeRecord(r);
    recs.clear();
    if (!ok) break;
  }
  return 0;
}
