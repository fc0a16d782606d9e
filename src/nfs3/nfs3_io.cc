// READ, WRITE and COMMIT: the data path of loom-ds.
//
// READ: by default the loop thread (bytes in the page cache, preadv2 RWF_NOWAIT) or a worker
// preads into a pooled buffer and the reply goes out with sendmsg.
// With Options::read_sendfile, large reads are instead sent from the page cache with
// sendfile(2), so the bytes never pass through user space: on the loop thread when cachestat(2)
// says every page of the range is resident (nothing can wait for the disk), else on a worker
// after readahead(2). On loopback this trades: with one 1 MiB read in flight the reply starts at
// once and reads run 3.0-4.1 GiB/s against 2.1-2.4 copied, but with 8 in flight 1.9 against 2.35
// and the receiver spends ~1.8x the CPU (page-sized skb fragments cost it more than one copy
// does). With one call in flight the server's copy is a step the client waits through; with
// several, the copies of one overlap the client's receiving of another. So the default
// (Sendfile::kWhenAlone, loom-ds --sendfile auto) sends a large READ from the page cache when
// it is the only call in flight on its connection, and copies otherwise.
// WRITE: the payload is a view into the receive buffer and goes to pwritev2 as is; FILE_SYNC
// and DATA_SYNC use RWF_SYNC / RWF_DSYNC. Both go through LocalFs's SyncOps seam (pwritev2 and
// COMMIT's fdatasync), which the power-cut tests replace (local_fs_crash_test.cc).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <mutex>

#include "common/sync_point.h"
#include "nfs3/nfs3_service.h"
#include "rpc/connection.h"

namespace loom::nfs3 {

using rpc::CallContext;

namespace {
// Reads at most this long are copied: for them a copy is cheaper than the extra syscall.
constexpr uint32_t kCopyReadMax = 16 * 1024;

// Linux nfsd lets the owner read and write regardless of mode (NFSD_MAY_OWNER_OVERRIDE), so a
// file created with mode 0444 can still be written through the descriptor that created it.
bool MayIo(const rpc::Cred& c, const struct stat& st, int want) {
  if (c.uid == st.st_uid) return true;
  if (LocalFs::CheckAccess(c, st, want)) return true;
  // A read is also allowed with execute permission (clients read to execute, RFC 1813 §4.4).
  return want == kMayRead && LocalFs::CheckAccess(c, st, kMayExec);
}
// Whether every page of [off, off+len) of fd is in the page cache, so that sending the range
// cannot wait for the disk: cachestat(2) (Linux 6.5). Where the kernel lacks it (Debian 12's
// 6.1), mincore(2) over `map` when the range is mapped, else false: the caller takes its
// blocking path.
bool Resident(int fd, uint64_t off, uint32_t len, const FileMapping* map = nullptr) {
  struct {
    uint64_t off, len;
  } range{off, len};
  struct {
    uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
  } cs{};
  constexpr long kSysCachestat = 451;  // the same number on every architecture
  static std::atomic<bool> missing{false};
  static const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const uint64_t first = off / page * page;
  const uint64_t pages = (off + len + page - 1) / page - off / page;
  if (!missing.load(std::memory_order_relaxed)) {
    if (::syscall(kSysCachestat, fd, &range, &cs, 0) == 0) return cs.nr_cache >= pages;
    if (errno != ENOSYS) return false;
    missing.store(true, std::memory_order_relaxed);
  }
  // Without cachestat, a mapped range can still be asked with mincore(2), which for a file
  // the caller may write (loom-ds runs as root) reports the page cache, mapped here or not.
  unsigned char vec[1100];
  if (map == nullptr || pages > sizeof vec || !map->Covers(first, off + len - first)) return false;
  if (::mincore(const_cast<uint8_t*>(map->At(first)), off + len - first, vec) != 0) return false;
  for (uint64_t i = 0; i < pages; i++)
    if (!(vec[i] & 1)) return false;
  return true;
}

std::mutex& WriteLockFor(const struct stat& st) {
  static std::mutex locks[64];
  return locks[(st.st_ino * 0x9E3779B97F4A7C15ull + st.st_dev) >> 58];
}
}  // namespace

void Nfs3Service::Read(const CallContext& c, const READ3args& a, READ3res& r) {
  Node n;
  (void)ReadNode(c, a, fs_->Resolve(a.file.data.view(), &n), n, /*nowait=*/false, r);
}

// Run to completion on the loop thread: only a handle whose descriptor is open already, only
// bytes already in the page cache (preadv2 RWF_NOWAIT). Anything else goes to a worker.
bool Nfs3Service::ReadInline(const CallContext& c, const READ3args& a, READ3res& r) {
  Node n;
  int err = fs_->Resolve(a.file.data.view(), &n, /*cached_only=*/true);
  if (err == EWOULDBLOCK) return false;
  return ReadNode(c, a, err, n, /*nowait=*/true, r);
}

bool Nfs3Service::Sendfile(const CallContext& c) const {
  switch (opts_.read_sendfile) {
    case Options::Sendfile::kOff:
      return false;
    case Options::Sendfile::kOn:
      return true;
    case Options::Sendfile::kWhenAlone:
      break;
  }
  std::shared_ptr<rpc::Connection> conn = c.conn.lock();
  return conn && conn->Alone();
}

bool Nfs3Service::ReadNode(const CallContext& c, const READ3args& a, int resolve_err, Node& n,
                           bool nowait, READ3res& r) {
  r.status = FromErrno(resolve_err);
  if (r.status != NFS3_OK) return true;
  if (!S_ISREG(n.st.st_mode)) {
    r.status = S_ISDIR(n.st.st_mode) ? NFS3ERR_ISDIR : NFS3ERR_INVAL;
    r.resfail.file_attributes = PostOp(n);
    return true;
  }
  if (!MayIo(c.cred, n.st, kMayRead)) {
    r.status = NFS3ERR_ACCES;
    r.resfail.file_attributes = PostOp(n);
    return true;
  }
  uint64_t size = static_cast<uint64_t>(n.st.st_size);
  uint32_t count = std::min(a.count, opts_.max_io);
  if (a.offset >= size) {
    count = 0;
  } else if (size - a.offset < count) {
    count = static_cast<uint32_t>(size - a.offset);
  }
  READ3resok& ok = r.resok;
  const bool sendfile = count > kCopyReadMax && Sendfile(c);
  // A large READ that does not go with sendfile is a range of the file's mapping: the reply
  // is sent from the page cache with one copy (into the socket) where a read into a buffer
  // would add another, and gathers with other replies' headers as memory does.
  std::shared_ptr<const FileMapping> map;
  if (count > kCopyReadMax && !sendfile && opts_.read_map) map = n.ref->Map(a.offset, count);
  if (map) {
    if (nowait) {
      // On the loop only when nothing is left for the disk: the send would fault it in.
      if (!Resident(n.fd(), a.offset, count, map.get())) return false;
    } else {
      // Blocks here, on the worker, until the range is in the page cache: the send may run
      // on the loop thread.
      ::readahead(n.fd(), static_cast<off64_t>(a.offset), count);
    }
    LOOM_SYNC_POINT("Nfs3Service::ReadNode:map");
    ok.data = Bytes::FromMapping(n.ref, std::move(map), a.offset, count);
  } else if (count > 0 && !sendfile) {
    auto buf = Buffer::Allocate(count);
    ssize_t got;
    if (nowait) {
      iovec iov{buf->data(), count};
      got = ::preadv2(n.fd(), &iov, 1, static_cast<off_t>(a.offset), RWF_NOWAIT);
      // Not (all) in the page cache, or a filesystem without RWF_NOWAIT: the worker reads it.
      if (got < 0 && (errno == EAGAIN || errno == EOPNOTSUPP)) return false;
      if (got >= 0 && static_cast<uint32_t>(got) < count) return false;
    } else {
      got = ::pread(n.fd(), buf->data(), count, static_cast<off_t>(a.offset));
    }
    if (got < 0) {
      r.status = FromErrno(errno);
      r.resfail.file_attributes = PostOp(n);
      return true;
    }
    count = static_cast<uint32_t>(got);
    LOOM_SYNC_POINT("Nfs3Service::ReadNode:copy");
    ok.data = Bytes::View(buf->data(), count, buf);
  } else if (count > 0) {
    if (nowait) {
      // On the loop only when nothing is left for the disk: sendfile would wait for it.
      if (!Resident(n.fd(), a.offset, count)) return false;
    } else {
      // Blocks here, on the worker, until the range is in the page cache.
      ::readahead(n.fd(), static_cast<off64_t>(a.offset), count);
    }
    LOOM_SYNC_POINT("Nfs3Service::ReadNode:sendfile");
    ok.data = Bytes::FromFile(n.ref, a.offset, count);
  }
  ok.count = count;
  ok.eof = a.offset + count >= size;
  ok.file_attributes = PostOp(n);
  return true;
}

void Nfs3Service::Write(const CallContext& c, const WRITE3args& a, WRITE3res& r) {
  Node n;
  r.status = FromErrno(fs_->Resolve(a.file.data.view(), &n));
  if (r.status != NFS3_OK) return;
  r.resfail.file_wcc.before = PreOp(n.st);
  r.resok.file_wcc.before = r.resfail.file_wcc.before;
  auto fail = [&](nfsstat3 st) {
    r.status = st;
    r.resfail.file_wcc.after = PostOpFd(n.fd());
  };
  if (c.read_only) return fail(NFS3ERR_ROFS);
  if (!S_ISREG(n.st.st_mode)) return fail(S_ISDIR(n.st.st_mode) ? NFS3ERR_ISDIR : NFS3ERR_INVAL);
  if (!MayIo(c.cred, n.st, kMayWrite)) return fail(NFS3ERR_ACCES);
  // §3.3.7: count is the number of bytes of data; more data than that is ignored, less is
  // an error.
  if (a.data.size < a.count) return fail(NFS3ERR_INVAL);
  if (a.offset > static_cast<uint64_t>(INT64_MAX) - a.count) return fail(NFS3ERR_FBIG);
  int flags = 0;
  stable_how committed = UNSTABLE;
  if (a.stable == FILE_SYNC) {
    flags = RWF_SYNC;
    committed = FILE_SYNC;
  } else if (a.stable == DATA_SYNC) {
    flags = RWF_DSYNC;
    committed = DATA_SYNC;
  }
  // Buffered writes to one file serialize on its inode lock in the kernel anyway; waiting here
  // instead keeps workers from spinning on that lock (measured: a new 1 GiB file written with
  // 8 writes in flight cost 4 s of system time without this, 0.4 s with it).
  std::lock_guard<std::mutex> file_lock(WriteLockFor(n.st));
  // A write by a caller without CAP_FSETID (anyone but root) clears set-user-ID, and
  // set-group-ID with group-execute, as Linux does; loom-ds itself is root, so the kernel
  // keeps them unless we do it.
  if (int err = LocalFs::DropPrivs(c.cred, n)) return fail(FromErrno(err));
  size_t done = 0;
  while (done < a.count) {
    iovec iov{const_cast<uint8_t*>(a.data.data) + done, a.count - done};
    ssize_t w = fs_->Pwritev2(n, &iov, 1, static_cast<off_t>(a.offset + done), flags);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (done == 0) return fail(FromErrno(errno));
      break;  // a short write is reported as such
    }
    if (w == 0) break;
    done += static_cast<size_t>(w);
  }
  r.resok.file_wcc.after = PostOpFd(n.fd());
  r.resok.count = static_cast<uint32_t>(done);
  r.resok.committed = committed;
  std::copy(fs_->write_verifier().begin(), fs_->write_verifier().end(), r.resok.verf.begin());
}

void Nfs3Service::Commit(const CallContext&, const COMMIT3args& a, COMMIT3res& r) {
  Node n;
  r.status = FromErrno(fs_->Resolve(a.file.data.view(), &n));
  if (r.status != NFS3_OK) return;
  r.resok.file_wcc.before = PreOp(n.st);
  r.resfail.file_wcc.before = r.resok.file_wcc.before;
  if (!S_ISREG(n.st.st_mode)) {
    r.status = S_ISDIR(n.st.st_mode) ? NFS3ERR_ISDIR : NFS3ERR_INVAL;
    r.resfail.file_wcc.after = PostOp(n);
    return;
  }
  // The whole file is flushed whatever the range (allowed by §3.3.21: the server may commit
  // more than asked). fdatasync covers the data and the size needed to read it back.
  if (fs_->SyncObject(n, true) != 0) {
    r.status = NFS3ERR_IO;
    r.resfail.file_wcc.after = PostOpFd(n.fd());
    return;
  }
  r.resok.file_wcc.after = PostOpFd(n.fd());
  std::copy(fs_->write_verifier().begin(), fs_->write_verifier().end(), r.resok.verf.begin());
}

}  // namespace loom::nfs3
