// SipHash-2-4 (Aumasson & Bernstein), a keyed PRF: used to authenticate file handles so that a
// guessed or altered handle is rejected. Implemented from the published algorithm description.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace loom {

using SipKey = std::array<uint8_t, 16>;

uint64_t SipHash24(const SipKey& key, const void* data, size_t len);

}  // namespace loom
