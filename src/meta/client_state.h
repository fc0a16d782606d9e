// NFSv4 client records and grace state: the little server state that must survive a restart
// (RFC 8881 §8.4.3) so that a restarted server can tell which clients may reclaim. Open, lock,
// delegation and layout state live in the MDS's memory and are rebuilt by reclaims.
// Writes go through a Txn like everything else; commit before replying to EXCHANGE_ID
// confirmation, RECLAIM_COMPLETE, or a revocation.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "meta/kv.h"
#include "meta/records.h"

namespace loom::meta {

Status PutClient(Txn& t, const ClientRecord& c);
// The record, or nullopt. for_update locks it (e.g. to set a flag).
Result<std::optional<ClientRecord>> GetClient(Txn& t, uint64_t clientid, bool for_update);
Status DeleteClient(Txn& t, uint64_t clientid);
// Every client record (the reclaim list after a restart).
Result<std::vector<ClientRecord>> ListClients(Txn& t);

// Grace state per server name (one loom-mds; several when subtrees move between nodes).
Status PutGrace(Txn& t, std::string_view server, const GraceState& g);
Result<std::optional<GraceState>> GetGrace(Txn& t, std::string_view server, bool for_update);

}  // namespace loom::meta
