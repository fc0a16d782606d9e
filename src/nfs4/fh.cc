#include "nfs4/fh.h"

#include <cstring>

namespace loom::nfs4 {

namespace {
constexpr uint8_t kVersion = 1;
constexpr size_t kBody = 4 + 8 + 8;
constexpr size_t kSize = kBody + 8;

void Put64(char* p, uint64_t v) {
  for (int i = 7; i >= 0; i--) {
    p[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
}
uint64_t Get64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}
}  // namespace

std::string SealFh(const SipKey& key, const MdsHandle& h) {
  std::string w(kSize, '\0');
  w[0] = static_cast<char>(kVersion);
  Put64(&w[4], h.fsid);
  Put64(&w[12], h.ino);
  uint64_t mac = SipHash24(key, w.data(), kBody);
  std::memcpy(&w[kBody], &mac, 8);
  return w;
}

bool OpenFh(const SipKey& key, std::string_view w, MdsHandle* out, bool* forged) {
  *forged = false;
  if (w.size() != kSize || static_cast<uint8_t>(w[0]) != kVersion) return false;
  uint64_t mac = SipHash24(key, w.data(), kBody);
  if (std::memcmp(&mac, w.data() + kBody, 8) != 0) {
    *forged = true;
    return false;
  }
  out->fsid = Get64(w.data() + 4);
  out->ino = Get64(w.data() + 12);
  return true;
}

}  // namespace loom::nfs4
