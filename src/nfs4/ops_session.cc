// Session and client-id operations (RFC 8881 §18.35-18.37, §18.34, §18.50, §18.51).
#include "nfs4/mds.h"

namespace loom::nfs4 {

namespace {
// The caller's identity for client-record ownership: AUTH_SYS uid and machine name.
std::string Principal(const rpc::CallContext& c) {
  return std::to_string(c.cred.uid) + "@" + c.cred.machine;
}
}  // namespace

nfsstat4 OpExchangeId(Cx& cx, const nfs_argop4& a, nfs_resop4& r) {
  auto& res = *(r.opexchange_id = std::make_unique<EXCHANGE_ID4res>());
  r.resop = OP_EXCHANGE_ID;
  std::vector<clientid4> replaced;
  res.eir_status = cx.mds.sessions().ExchangeId(*a.opexchange_id, Principal(*cx.rpc),
                                                &res.eir_resok4, &replaced);
  // §18.35.4 case 3: a record that held nothing gave its owner to another principal; its
  // durable record goes too, so that it does not wait for a reclaim after a restart.
  for (clientid4 id : replaced) {
    Status s = cx.mds.ForgetClient(id);
    if (!s.ok()) return res.eir_status = NFS4ERR_SERVERFAULT;
  }
  return res.eir_status;
}

nfsstat4 OpCreateSession(Cx& cx, const nfs_argop4& a, nfs_resop4& r) {
  auto& res = *(r.opcreate_session = std::make_unique<CREATE_SESSION4res>());
  r.resop = OP_CREATE_SESSION;
  // §8.4.3: a confirmed client is recorded durably before the reply, so that after a restart
  // the server knows it may reclaim; the records of its earlier incarnations go in the same
  // commit. A failed write fails the CREATE_SESSION with nothing changed (the client's retry
  // runs it again rather than replaying a success).
  std::vector<clientid4> replaced;
  res.csr_status = cx.mds.sessions().CreateSession(
      *a.opcreate_session, Principal(*cx.rpc), cx.rpc->conn.lock(), &res.csr_resok4,
      [&](const SessionTable::Confirmation& c) { return cx.mds.ConfirmClient(c); }, &replaced);
  // §18.35.4 case 5: the client rebooted; its old incarnation's opens, locks and orphans go.
  for (clientid4 id : replaced) cx.mds.DropClientState(id);
  if (res.csr_status == NFS4_OK) cx.mds.sessions().SetMinorVersion(res.csr_resok4.csr_sessionid, cx.minor);
  if (res.csr_status == NFS4_OK && (res.csr_resok4.csr_flags & CREATE_SESSION4_FLAG_CONN_BACK_CHAN))
    cx.mds.ProbeBackChannel(res.csr_resok4.csr_sessionid);
  return res.csr_status;
}

nfsstat4 OpDestroySession(Cx& cx, const nfs_argop4& a, nfs_resop4& r) {
  auto& res = *(r.opdestroy_session = std::make_unique<DESTROY_SESSION4res>());
  r.resop = OP_DESTROY_SESSION;
  res.dsr_status = cx.mds.sessions().DestroySession(a.opdestroy_session->dsa_sessionid);
  return res.dsr_status;
}

nfsstat4 OpDestroyClientId(Cx& cx, const nfs_argop4& a, nfs_resop4& r) {
  auto& res = *(r.opdestroy_clientid = std::make_unique<DESTROY_CLIENTID4res>());
  r.resop = OP_DESTROY_CLIENTID;
  res.dcr_status = cx.mds.sessions().DestroyClientId(a.opdestroy_clientid->dca_clientid);
  if (res.dcr_status == NFS4_OK) {
    // A client that said goodbye has nothing to reclaim after a restart (§18.50.3): its record
    // goes, so it does not hold the next grace period open.
    Status s = cx.mds.ForgetClient(a.opdestroy_clientid->dca_clientid);
    if (!s.ok()) return res.dcr_status = NFS4ERR_SERVERFAULT;
  }
  return res.dcr_status;
}

nfsstat4 OpBindConnToSession(Cx& cx, const nfs_argop4& a, nfs_resop4& r) {
  auto& res = *(r.opbind_conn_to_session = std::make_unique<BIND_CONN_TO_SESSION4res>());
  r.resop = OP_BIND_CONN_TO_SESSION;
  res.bctsr_status = cx.mds.sessions().BindConnToSession(*a.opbind_conn_to_session,
                                                         cx.rpc->conn.lock(), &res.bctsr_resok4);
  if (res.bctsr_status == NFS4_OK && res.bctsr_resok4.bctsr_dir != CDFS4_FORE)
    cx.mds.ProbeBackChannel(res.bctsr_resok4.bctsr_sessid);
  return res.bctsr_status;
}

nfsstat4 OpReclaimComplete(Cx& cx, const nfs_argop4& a, nfs_resop4& r) {
  auto& res = *(r.opreclaim_complete = std::make_unique<RECLAIM_COMPLETE4res>());
  r.resop = OP_RECLAIM_COMPLETE;
  if (a.opreclaim_complete->rca_one_fs) {
    // §18.51.3: reclaims done for the filesystem of the current filehandle only. The client
    // still owes the global RECLAIM_COMPLETE, which alone ends its reclaim and may end grace.
    return res.rcr_status = cx.have_cfh ? NFS4_OK : NFS4ERR_NOFILEHANDLE;
  }
  // Durable first: a failed write leaves the client able to send RECLAIM_COMPLETE again
  // (rather than NFS4ERR_COMPLETE_ALREADY for a completion nobody recorded).
  if (cx.mds.sessions().ReclaimCompleted(cx.client)) return res.rcr_status = NFS4ERR_COMPLETE_ALREADY;
  std::string owner;
  verifier4 verf;
  if (!cx.mds.sessions().OwnerOf(cx.client, &owner, &verf))
    return res.rcr_status = NFS4ERR_STALE_CLIENTID;
  if (!cx.mds.PersistClient(cx.client, owner, verf, true).ok())
    return res.rcr_status = NFS4ERR_SERVERFAULT;
  res.rcr_status = cx.mds.sessions().ReclaimComplete(cx.client);
  if (res.rcr_status == NFS4_OK) cx.mds.ReclaimDone(owner);
  return res.rcr_status;
}

}  // namespace loom::nfs4
