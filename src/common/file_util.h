// Small durable-file helpers shared by the daemons.
#pragma once

#include <cstddef>
#include <string>

#include "common/status.h"

namespace loom {

// Reads `n` bytes of secret from dir/name, or — the first time — makes the directory (0700),
// fills the file with random bytes and fsyncs it (and the directory) before returning: a
// secret lost in a crash would invalidate every handle the clients hold.
Status LoadOrCreateSecret(const std::string& dir, const std::string& name, void* out, size_t n);

// Replaces `path` with `body` through a temporary file and rename(2) (readers never see a
// partial file). Not fsynced: for counters and status files.
bool WriteFileAtomic(const std::string& path, const std::string& body);

}  // namespace loom
