// libFuzzer target: the byte stream a hostile client can send to loom-ds.
// Feeds the input through RecordAssembler in chunks whose sizes the input chooses, then decodes
// each record as the server does: call header, credential, and the NFSv3 / MOUNT arguments of
// the procedure it names. Every decoded value is re-encoded and decoded again; the two
// encodings must agree. Any crash, sanitizer report or mismatch is a bug.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "rpc/auth.h"
#include "rpc/record.h"
#include "xdr/mount3.h"
#include "xdr/nfs3.h"
#include "xdr/rpc.h"

using namespace loom;

namespace {

template <typename T>
void RoundTrip(xdr::Decoder& d) {
  T v;
  if (!xdr_decode(d, v)) return;
  xdr::Encoder e1;
  xdr_encode(e1, v);
  std::string a = e1.Flatten();
  xdr::Decoder d2(reinterpret_cast<const uint8_t*>(a.data()), a.size());
  T w;
  if (!xdr_decode(d2, w) || d2.remaining() != 0) std::abort();
  xdr::Encoder e2;
  xdr_encode(e2, w);
  if (e2.Flatten() != a) std::abort();
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
