#include "nfs3/file_handle.h"

#include <cstring>

namespace loom::nfs3 {

namespace {
constexpr uint8_t kVersion = 1;
constexpr size_t kHeader = 4;
constexpr size_t kMac = 8;
}  // namespace

Result<std::string> SealHandle(const SipKey& key, const KernelHandle& kh) {
  if (kh.bytes.size() > kMaxKernelHandle || kh.type < 0 || kh.type > 255)
    return Status::Invalid("kernel file handle does not fit an NFSv3 handle");
  std::string w;
  w.reserve(kHeader + kh.bytes.size() + kMac);
  w.push_back(static_cast<char>(kVersion));
  w.push_back(static_cast<char>(kh.type));
  w.push_back(static_cast<char>(kh.bytes.size()));
  w.push_back(0);
  w += kh.bytes;
  uint64_t mac = SipHash24(key, w.data(), w.size());
  char m[kMac];
  std::memcpy(m, &mac, kMac);
  w.append(m, kMac);
  return w;
}

Result<KernelHandle> OpenHandle(const SipKey& key, std::string_view w) {
  if (w.size() < kHeader + kMac || static_cast<uint8_t>(w[0]) != kVersion || w[3] != 0)
    return Status::Invalid("malformed file handle");
  size_t n = static_cast<uint8_t>(w[2]);
  if (n > kMaxKernelHandle || w.size() != kHeader + n + kMac)
    return Status::Invalid("malformed file handle");
  uint64_t mac = SipHash24(key, w.data(), kHeader + n);
  if (std::memcmp(&mac, w.data() + kHeader + n, kMac) != 0)
    return Status(Code::kPermission, "file handle not issued by this export");
  KernelHandle kh;
  kh.type = static_cast<uint8_t>(w[1]);
  kh.bytes.assign(w.data() + kHeader, n);
  return kh;
}

}  // namespace loom::nfs3
