// The commands `loom admin` (and its shortcuts `loom ds`, `loom policy`, `loom layout`,
// `loom mv-data`, `loom fence`) run on loom-mds, over the admin RPC program (src/admin).
#pragma once

#include "admin/commands.h"
#include "mds/data_servers.h"
#include "meta/kv.h"
#include "nfs4/mds.h"

namespace loom {

void RegisterMdsAdminCommands(admin::AdminCommands& cmds, nfs4::Mds& mds, mds::DataServerPool& pool,
                              meta::KvStore& store);

}  // namespace loom
