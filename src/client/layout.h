// Flexible File layouts (RFC 8435) as the data path uses them: LAYOUTGET of a whole file and
// its decoding (ff_layout4: stripe unit, mirrors x stripes of data files with their NFSv3
// handles and synthetic AUTH_SYS ids), the data servers behind the device ids (GETDEVICEINFO,
// ff_device_addr4, cached), LAYOUTRETURN with an ff_layoutreturn4 error report, LAYOUTERROR
// (RFC 7862 §15.6), LAYOUTCOMMIT (RFC 8881 §18.42), LAYOUTSTATS (RFC 7862 §15.7) and the
// ff_iostats4 report of LAYOUTRETURN (RFC 8435 §9.1).
//
// Threading: Layouts is thread-safe. Its synchronous calls (Get, Return, Commit) wait for the
// metadata server: never call them on the session's loop thread.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "client/counters.h"
#include "client/ds_conn.h"
#include "client/file_state.h"
#include "client/session.h"
#include "loom/client.h"

namespace loom::client::internal {

using DeviceId = std::array<uint8_t, NFS4_DEVICEID4_SIZE>;

// One data file of a layout: stripe s of mirror m.
struct DataFile {
  DeviceId deviceid{};
  Bytes fh;  // the data file's NFSv3 handle (owned)
  DsCred cred;
  std::string user, group;  // as the layout names them
  std::string address;      // "host:port"
  uint32_t rsize = 0, wsize = 0;
  std::shared_ptr<DsPool> pool;
  // Identifies the data file across layouts (device + handle).
  std::string key;
};

struct Layout {
  stateid4 stateid{};
  layoutiomode4 iomode = LAYOUTIOMODE4_READ;
  uint64_t stripe_unit = 0;  // 0 when there is one data file per mirror
  uint32_t flags = 0;        // FF_FLAGS_*
  uint32_t stats_hint = 0;   // ffl_stats_collect_hint: seconds between LAYOUTSTATS (0: ours)
  std::vector<std::vector<DataFile>> mirrors;  // [mirror][stripe]; every mirror has stripes() files
  // logr_return_on_close (RFC 8881 §18.43.3): the last CLOSE returns the layout, so a close
  // with nothing to report needs no LAYOUTRETURN.
  bool return_on_close = false;
  uint64_t epoch = 0;  // Session::epoch() when granted
  uint64_t serial = 0;  // distinct per LAYOUTGET (this client's counter)

  size_t stripes() const { return mirrors.empty() ? 0 : mirrors[0].size(); }
  // Sparse striping (RFC 8435 §5.1 with loom-mds' placement, src/mds/data_io.cc MapOffset):
  // stripe unit k of the file is in data file k % stripes, at the same offset as in the file.
  size_t StripeOf(uint64_t off) const {
    return stripes() <= 1 || stripe_unit == 0 ? 0 : static_cast<size_t>((off / stripe_unit) % stripes());
  }
  // Bytes from `off` to the end of its stripe unit (unbounded when not striped).
  uint64_t UnitLeft(uint64_t off) const {
    return stripes() <= 1 || stripe_unit == 0 ? UINT64_MAX : stripe_unit - off % stripe_unit;
  }
  LayoutInfo Describe() const;
};

// A failed data-server call, kept for LAYOUTRETURN's ff_ioerr4 report.
struct IoError {
  uint64_t offset = 0, length = 0;
  DeviceId deviceid{};
  nfsstat4 status = NFS4ERR_NXIO;
  nfs_opnum4 op = OP_READ;
};

// The NFSv4 status a data-server failure is reported with: a server that cannot be reached
// (or does not answer) as NFS4ERR_NXIO, as the Linux client does and loom-mds expects (it then
// checks the server itself); NFSv3 statuses keep their numbers, which NFSv4 shares.
nfsstat4 ReportedStatus(const DsReply& r);



class Layouts {
 public:
  Layouts(Session* session, const Options& opts, Counters* counters);
  ~Layouts();  // closes the data-server connections

  // What LAYOUTGET gave: a layout, or none (`refused` says why: LAYOUTUNAVAILABLE,
  // LAYOUTTRYLATER, RECALLCONFLICT, ...), when I/O goes through the MDS.
  struct Grant {
    std::shared_ptr<const Layout> layout;
    nfsstat4 refused = NFS4_OK;
  };
  // LAYOUTGET of the whole file (PUTFH + LAYOUTGET with the open stateid). Errors: transport,
  // or a status that says the file or the open is gone.
  Result<Grant> Get(const FileState& f, layoutiomode4 mode);
  // A LAYOUTGET result that came in another COMPOUND (the OPEN's: OPEN + LAYOUTGET with the
  // current stateid, as the Linux client sends it): decoded as Get does, an unusable layout
  // returned at once. Without `may_wait` (on the session's thread, which cannot wait for a
  // reply) it makes no call: a layout naming a device not yet known fails (the first I/O asks
  // for a layout again, from its own thread) and an unusable one is dropped, not returned.
  Result<Grant> Adopt(const FileState& f, const LAYOUTGET4res& res, layoutiomode4 mode, uint64_t epoch,
                      bool may_wait = true);
  // LAYOUTRETURN of the file's layout, with the errors seen and the I/O statistics per data
  // server as an ff_layoutreturn4 body.
  Status Return(const FileState& f, const Layout& l, const std::vector<IoError>& errors,
                const std::vector<ff_iostats4>& stats = {});
  // LAYOUTSTATS (RFC 7862 §15.7), one per data server, in one COMPOUND sent without waiting
  // (minor version 2 sessions only).
  void StatsAsync(const FileState& f, const Layout& l, const std::vector<ff_iostats4>& stats);
  // LAYOUTCOMMIT: the last byte written (RFC 8881 §18.42.3); the MDS moves the size.
  Status Commit(const FileState& f, const Layout& l, uint64_t last_byte);
  // LAYOUTERROR (RFC 7862 §15.6), sent without waiting (minor version 2 sessions only).
  void ReportAsync(const FileState& f, const Layout& l, const IoError& e);
  // Drops a device's address so the next layout using it asks GETDEVICEINFO again.
  void ForgetDevice(const DeviceId& id);
  // Fails every data-server call in flight and later ones; then JoinAll waits for the
  // receive threads (no data-server callback runs after it returns). Not on such a thread.
  void CloseAll();
  void JoinAll();

 private:
  struct Device {
    std::string address;
    uint32_t rsize = 0, wsize = 0;
  };
  // Without `may_wait`, only a device already known (no GETDEVICEINFO).
  Result<Device> DeviceOf(const DeviceId& id, bool may_wait = true);
  std::shared_ptr<DsPool> PoolFor(const std::string& address);
  Result<Grant> Decode(const LAYOUTGET4res& res, uint64_t epoch, layoutiomode4 mode, bool may_wait = true);

  Session* const session_;
  const Options opts_;
  Counters* const counters_;
  std::mutex mu_;  // guards the maps and serial_
  std::map<DeviceId, Device> devices_;
  std::map<std::string, std::shared_ptr<DsPool>> pools_;
  uint64_t serial_ = 0;
  bool closed_ = false;
};

}  // namespace loom::client::internal
