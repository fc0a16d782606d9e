// Placement policies (issue 11): how a new file's data is laid out — mirrors, stripes, stripe
// unit and the labels its data servers must carry. A directory may have one (Y|fs|dir); a
// new file takes the policy of its nearest ancestor directory that has one, else the server's
// defaults. The policy is read when the file's data files are made, so changing a directory's
// policy affects files created afterwards, never existing ones (moving those is `mv-data`).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "meta/kv.h"
#include "meta/namespace.h"

namespace loom::meta {

struct PlacementPolicy {
  uint32_t mirrors = 0;      // 0: inherit
  uint32_t stripes = 0;      // 0: inherit
  uint64_t stripe_unit = 0;  // 0: inherit
  std::vector<std::string> labels;  // "key=value", all required
  bool operator==(const PlacementPolicy&) const = default;
};

std::string Encode(const PlacementPolicy& p);
Status Decode(std::string_view in, PlacementPolicy* out);

// The directory's own policy, or nullopt.
Result<std::optional<PlacementPolicy>> GetPolicy(Txn& t, FsId fs, Ino dir);
// Sets (or, with nullopt, removes) a directory's policy.
Status PutPolicy(Txn& t, FsId fs, Ino dir, const std::optional<PlacementPolicy>& p);
// The effective policy for a new object in `dir`: each field from the nearest directory
// (dir, its parent, ... the root) that sets it; unset fields stay 0.
Result<PlacementPolicy> EffectivePolicy(Txn& t, Namespace& ns, Ino dir);

}  // namespace loom::meta
