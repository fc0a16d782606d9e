#include "rpc/auth.h"

#include <algorithm>

namespace loom::rpc {

Cred Cred::Sys(uint32_t uid, uint32_t gid, std::vector<uint32_t> gids, std::string machine) {
  Cred c;
  c.flavor = AUTH_SYS;
  c.uid = uid;
  c.gid = gid;
  c.gids = std::move(gids);
  c.machine = std::move(machine);
  return c;
}

bool Cred::in_group(uint32_t g) const {
  return g == gid || std::find(gids.begin(), gids.end(), g) != gids.end();
}

bool Cred::MayAccess(uint32_t mode, uint32_t owner, uint32_t group, bool is_dir, int want) const {
  if (uid == 0) return !((want & 1) && !is_dir && !(mode & 0111));
  int bits;
  if (uid == owner) {
    bits = (mode >> 6) & 7;
  } else if (in_group(group)) {
    bits = (mode >> 3) & 7;
  } else {
    bits = mode & 7;
  }
  return (bits & want) == want;
}

bool ParseCred(const opaque_auth& a, Cred* out) {
  switch (a.flavor) {
    case AUTH_NONE:
      *out = Cred();
      return true;
    case AUTH_SYS: {
      if (a.body.is_file()) return false;
      xdr::Decoder d(a.body.data, a.body.size);
      authsys_parms p;
      if (!xdr_decode(d, p) || d.remaining() != 0) return false;
      out->flavor = AUTH_SYS;
      out->uid = p.uid;
      out->gid = p.gid;
      out->gids = std::move(p.gids);
      out->machine = std::move(p.machinename);
      return true;
    }
    default:
      return false;
  }
}

opaque_auth EncodeCred(const Cred& c) {
  opaque_auth a;
  a.flavor = c.flavor;
  if (c.flavor == AUTH_SYS) {
    authsys_parms p;
    p.stamp = 0;
    p.machinename = c.machine;
    p.uid = c.uid;
    p.gid = c.gid;
    p.gids = c.gids;
    if (p.gids.size() > 16) p.gids.resize(16);
    xdr::Encoder e;
    xdr_encode(e, p);
    std::string s = e.Flatten();
    a.body = Bytes::Copy(s);
  }
  return a;
}

}  // namespace loom::rpc
