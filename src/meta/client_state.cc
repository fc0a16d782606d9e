#include "meta/client_state.h"

#include "meta/keys.h"

namespace loom::meta {
namespace {

template <typename R>
Result<std::optional<R>> GetRecord(Txn& t, const std::string& key, bool for_update) {
  auto v = for_update ? t.GetForUpdate(key) : t.Get(key);
  if (!v.ok()) return v.status();
  if (!*v) return std::optional<R>();
  R r;
  LOOM_RETURN_IF_ERROR(Decode(**v, &r));
  return std::optional<R>(std::move(r));
}

}  // namespace

Status PutClient(Txn& t, const ClientRecord& c) {
  if (c.owner.size() > kMaxClientOwnerLen) return Status::TooLarge("client owner too long");
  return t.Put(keys::Client(c.clientid), Encode(c));
}

Result<std::optional<ClientRecord>> GetClient(Txn& t, uint64_t clientid, bool for_update) {
  return GetRecord<ClientRecord>(t, keys::Client(clientid), for_update);
}

Status DeleteClient(Txn& t, uint64_t clientid) { return t.Delete(keys::Client(clientid)); }

Result<std::vector<ClientRecord>> ListClients(Txn& t) {
  std::vector<ClientRecord> out;
  Status st;
  LOOM_RETURN_IF_ERROR(t.Scan(KeyRange::Prefix(keys::ClientPrefix()), 0,
                              [&](std::string_view, std::string_view v) {
                                st = Decode(v, &out.emplace_back());
                                return st.ok();
                              }));
  LOOM_RETURN_IF_ERROR(st);
  return out;
}

Status PutGrace(Txn& t, std::string_view server, const GraceState& g) {
  return t.Put(keys::State(server), Encode(g));
}

Result<std::optional<GraceState>> GetGrace(Txn& t, std::string_view server, bool for_update) {
  return GetRecord<GraceState>(t, keys::State(server), for_update);
}

}  // namespace loom::meta
