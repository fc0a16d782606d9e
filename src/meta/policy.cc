#include "meta/policy.h"

#include "meta/errors.h"
#include "meta/keys.h"

namespace loom::meta {

namespace {

constexpr uint8_t kKind = 0x50;  // 'P'olicy
constexpr uint8_t kVersion = 1;
constexpr size_t kMaxPolicyLabels = 16;
constexpr size_t kMaxPolicyLabelLen = 512;

void PutU32(std::string& s, uint32_t v) {
  for (int i = 3; i >= 0; i--) s.push_back(static_cast<char>(v >> (8 * i)));
}
void PutU64(std::string& s, uint64_t v) {
  for (int i = 7; i >= 0; i--) s.push_back(static_cast<char>(v >> (8 * i)));
}
bool GetU32(std::string_view& in, uint32_t* v) {
  if (in.size() < 4) return false;
  *v = 0;
  for (int i = 0; i < 4; i++) *v = (*v << 8) | static_cast<uint8_t>(in[i]);
  in.remove_prefix(4);
  return true;
}
bool GetU64(std::string_view& in, uint64_t* v) {
  if (in.size() < 8) return false;
  *v = 0;
  for (int i = 0; i < 8; i++) *v = (*v << 8) | static_cast<uint8_t>(in[i]);
  in.remove_prefix(8);
  return true;
}

}  // namespace

std::string Encode(const PlacementPolicy& p) {
  std::string s;
  s.push_back(static_cast<char>(kKind));
  s.push_back(static_cast<char>(kVersion));
  PutU32(s, p.mirrors);
  PutU32(s, p.stripes);
  PutU64(s, p.stripe_unit);
  PutU32(s, static_cast<uint32_t>(p.labels.size()));
  for (const auto& l : p.labels) {
    PutU32(s, static_cast<uint32_t>(l.size()));
    s += l;
  }
  return s;
}

Status Decode(std::string_view in, PlacementPolicy* out) {
  auto bad = [] { return Status::Internal("damaged placement policy record"); };
  if (in.size() < 2 || static_cast<uint8_t>(in[0]) != kKind) return bad();
  if (static_cast<uint8_t>(in[1]) > kVersion || in[1] == 0) return bad();
  in.remove_prefix(2);
  PlacementPolicy p;
  uint32_t n = 0;
  if (!GetU32(in, &p.mirrors) || !GetU32(in, &p.stripes) || !GetU64(in, &p.stripe_unit) || !GetU32(in, &n) ||
      n > kMaxPolicyLabels)
    return bad();
  for (uint32_t i = 0; i < n; i++) {
    uint32_t len = 0;
    if (!GetU32(in, &len) || len > kMaxPolicyLabelLen || len > in.size()) return bad();
    p.labels.emplace_back(in.substr(0, len));
    in.remove_prefix(len);
  }
  if (!in.empty()) return bad();
  *out = std::move(p);
  return Status::Ok();
}

Result<std::optional<PlacementPolicy>> GetPolicy(Txn& t, FsId fs, Ino dir) {
  auto v = t.Get(keys::Policy(fs, dir));
  if (!v.ok()) return v.status();
  if (!*v) return std::optional<PlacementPolicy>();
  PlacementPolicy p;
  LOOM_RETURN_IF_ERROR(Decode(**v, &p));
  return std::optional<PlacementPolicy>(std::move(p));
}

Status PutPolicy(Txn& t, FsId fs, Ino dir, const std::optional<PlacementPolicy>& p) {
  if (!p) return t.Delete(keys::Policy(fs, dir));
  // Refuse here what Decode refuses: stored, it would fail every create under `dir`.
  if (p->labels.size() > kMaxPolicyLabels)
    return Status::Invalid("a placement policy holds at most " + std::to_string(kMaxPolicyLabels) +
                           " labels");
  for (const auto& l : p->labels)
    if (l.size() > kMaxPolicyLabelLen)
      return Status::Invalid("a placement policy label is at most " +
                             std::to_string(kMaxPolicyLabelLen) + " bytes");
  return t.Put(keys::Policy(fs, dir), Encode(*p));
}

Result<PlacementPolicy> EffectivePolicy(Txn& t, Namespace& ns, Ino dir) {
  PlacementPolicy eff;
  bool labels_set = false;
  for (int depth = 0; depth < 4096; depth++) {
    auto p = GetPolicy(t, ns.fsid(), dir);
    if (!p.ok()) return p.status();
    if (*p) {
      const PlacementPolicy& q = **p;
      if (!eff.mirrors) eff.mirrors = q.mirrors;
      if (!eff.stripes) eff.stripes = q.stripes;
      if (!eff.stripe_unit) eff.stripe_unit = q.stripe_unit;
      if (!labels_set && !q.labels.empty()) {
        eff.labels = q.labels;
        labels_set = true;
      }
    }
    if (dir == ns.root()) break;
    auto n = ns.GetAttr(t, dir);
    if (!n.ok()) return n.status();
    if (n->type != FileType::kDir || n->parent == 0 || n->parent == dir) break;
    dir = n->parent;
  }
  return eff;
}

}  // namespace loom::meta
