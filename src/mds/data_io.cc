// Proxied I/O through the data servers, copies between layouts, and the striping arithmetic.
// Every piece of I/O is cut at stripe-unit boundaries (MapOffset) and at the servers' maximum
// transfer size, then sent to the data file that holds it: READ to one non-stale mirror
// (failing over), WRITE to all non-stale ones.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <optional>

#include "common/log.h"
#include "common/siphash.h"
#include "mds/data_servers.h"
#include "mds/data_servers_internal.h"

namespace loom::mds {

using namespace loom::nfs3;  // NFSv3 types and constants keep their RFC 1813 names

namespace {
constexpr uint64_t kNoBoundary = std::numeric_limits<uint64_t>::max();

bool Striped(const meta::Layout& l) { return l.stripe_count > 1 && l.stripe_unit > 0; }

Status CheckLayout(const meta::Layout& l) {
  if (l.mirrors.empty()) return Status::Invalid("layout has no mirrors");
  for (const meta::Mirror& m : l.mirrors) {
    if (m.files.size() != std::max<uint32_t>(l.stripe_count, 1))
      return Status::Invalid("layout mirror does not have stripe_count data files");
  }
  return Status::Ok();
}

// The mirrors that are not stale, in layout order.
std::vector<size_t> Current(const meta::Layout& l) {
  std::vector<size_t> out;
  for (size_t m = 0; m < l.mirrors.size(); m++)
    if (!l.mirrors[m].stale) out.push_back(m);
  return out;
}

Status NoCurrentMirror() {
  return Status::FromErrno(EIO, "every mirror of the layout is stale: no copy of the file is current");
}

// A failure that makes a mirror stale rather than failing the call (when another succeeds):
// the server is unreachable, not the data wrong.
bool Degradable(const Status& s) {
  return s.code() == Code::kUnavailable || s.code() == Code::kTimeout;
}

// How the per-mirror outcomes of one operation combine (see Write in data_servers.h): the
// mirrors that failed degradably go to `failed` when the caller tolerates that and another
// mirror succeeded; otherwise the first failure is the call's.
Status Combine(const std::vector<size_t>& mirrors, const std::vector<Status>& st,
               FailedMirrors* tolerate, FailedMirrors* failed) {
  Status hard, soft;
  size_t ok = 0;
  for (size_t i = 0; i < st.size(); i++) {
    if (st[i].ok()) {
      ok++;
    } else if (tolerate && Degradable(st[i])) {
      if (soft.ok()) soft = st[i];
    } else if (hard.ok()) {
      hard = st[i];
    }
  }
  if (!hard.ok()) return hard;
  if (ok == 0 && !soft.ok()) return soft;
  for (size_t i = 0; i < st.size(); i++)
    if (!st[i].ok()) failed->push_back(static_cast<uint32_t>(mirrors[i]));
  return Status::Ok();
}

void Report(FailedMirrors* out, FailedMirrors failed) {
  if (!out) return;
  out->insert(out->end(), failed.begin(), failed.end());
  std::sort(out->begin(), out->end());
  out->erase(std::unique(out->begin(), out->end()), out->end());
}
}  // namespace

StripePos MapOffset(const meta::Layout& l, uint64_t offset) {
  if (!Striped(l)) return StripePos{0, offset, kNoBoundary};
  const uint64_t su = l.stripe_unit, within = offset % su;
  // Sparse: a byte lives at its file offset in the data file of its stripe unit's stripe.
  return StripePos{static_cast<uint32_t>((offset / su) % l.stripe_count), offset, su - within};
}

uint64_t StripeFileSize(const meta::Layout&, uint32_t, uint64_t file_size) {
  // Sparse data files are as long as the file; the other stripes' units are holes. A reader
  // of any stripe then never meets an early end of file.
  return file_size;
}

uint64_t FileEndOfStripe(const meta::Layout&, uint32_t, uint64_t ds_size) { return ds_size; }

Verifier CombineVerifiers(const std::vector<Verifier>& v) {
  if (v.size() == 1) return v[0];
  static const SipKey kKey{};  // not a secret: this only has to change when an input does
  uint64_t h = SipHash24(kKey, v.data(), v.size() * sizeof(Verifier));
  Verifier out;
  std::memcpy(out.data(), &h, out.size());
  return out;
}

void DataServerPool::NoteVerifier(Server& s, const Verifier& v) {
  std::lock_guard<std::mutex> l(s.mu);
  s.verf = v;
}

Verifier DataServerPool::KnownVerifier(uint32_t ds_id) {
  Server* s = Lookup(ds_id);
  if (!s) return Verifier{};
  std::lock_guard<std::mutex> l(s->mu);
  return s->verf;
}

uint32_t DataServerPool::MaxIo(uint32_t ds_id, bool write) {
  uint32_t n = opts_.max_io;
  if (Server* s = Lookup(ds_id)) {
    std::lock_guard<std::mutex> l(s->mu);
    uint32_t srv = write ? s->wtmax : s->rtmax;
    if (srv > 0) n = std::min(n, srv);
  }
  return n;
}

// --- READ ---

Result<ReadResult> DataServerPool::ReadFile(const meta::Layout& l, uint32_t stripe,
                                            uint64_t ds_offset, uint32_t count) {
  // Non-stale mirrors whose server is not known to be down first, in layout order.
  std::vector<size_t> order = Current(l);
  if (order.empty()) return NoCurrentMirror();
  std::stable_partition(order.begin(), order.end(), [&](size_t m) {
    Server* s = Lookup(l.mirrors[m].files[stripe].ds_id);
    return s && Usable(*s);
  });
  Status first;
  for (size_t m : order) {
    const meta::DataFile& f = l.mirrors[m].files[stripe];
    auto known = Known(f.ds_id);
    Status st = known.status();
    READ3res r;
    if (known.ok()) {
      Server* s = *known;
      READ3args a;
      a.file = Fh(f.fh);
      a.offset = ds_offset;
      a.count = count;
      st = Call(*s, NFSPROC3_READ, a, &r);
      if (st.ok()) st = FromNfs3(r.status, f.ds_id, "READ");
    }
    if (st.ok()) {
      if (!first.ok()) LOG_WARN("READ failed over to data server %u: %s", f.ds_id, first.ToString().c_str());
      return ReadResult{std::move(r.resok.data), r.resok.eof};
    }
    if (first.ok()) first = st;
  }
  return first;
}

Result<ReadResult> DataServerPool::Read(const meta::Layout& l, uint64_t offset, uint32_t count) {
  LOOM_RETURN_IF_ERROR(CheckLayout(l));
  const std::vector<size_t> current = Current(l);
  if (current.empty()) return NoCurrentMirror();
  uint64_t end = offset + count;
  uint64_t size = 0;
  if (Striped(l)) {
    // A short read of one data file may be a hole or the end of the file: decide by the size.
    Result<uint64_t> sz = GetSize(l);
    if (!sz.ok()) return sz.status();
    size = *sz;
    end = std::max(offset, std::min(end, size));
  }
  std::vector<Bytes> parts;
  uint64_t pos = offset;
  bool eof = false;
  do {
    StripePos p = MapOffset(l, pos);
    uint32_t n = static_cast<uint32_t>(
        std::min({end - pos, p.unit_left,
                  uint64_t{MaxIo(l.mirrors[current[0]].files[p.stripe].ds_id, false)}}));
    Result<ReadResult> r = ReadFile(l, p.stripe, p.ds_offset, n);
    if (!r.ok()) {
      if (parts.empty()) return r.status();
      break;  // return what was read
    }
    pos += r->data.size;
    bool short_read = r->data.size < n;
    parts.push_back(std::move(r->data));
    if (short_read) {
      if (!Striped(l)) {
        eof = r->eof;
        break;
      }
      parts.push_back(Bytes::Copy(std::string(n - parts.back().size, '\0')));  // a hole
      pos += parts.back().size;
    } else if (!Striped(l)) {
      eof = r->eof;
    }
  } while (pos < end && !eof);
  if (Striped(l)) eof = pos >= size;

  ReadResult out;
  out.eof = eof;
  if (parts.size() == 1) {
    out.data = std::move(parts[0]);
    return out;
  }
  size_t total = 0;
  for (const Bytes& b : parts) total += b.size;
  auto buf = Buffer::Allocate(total);
  size_t at = 0;
  for (const Bytes& b : parts) {
    if (b.size) std::memcpy(buf->data() + at, b.data, b.size);
    at += b.size;
  }
  out.data = Bytes::View(buf->data(), total, buf);
  return out;
}

// --- WRITE, COMMIT ---

Result<WriteResult> DataServerPool::Write(const meta::Layout& l, uint64_t offset,
                                          const Bytes& data, stable_how stable,
                                          FailedMirrors* failed_mirrors) {
  LOOM_RETURN_IF_ERROR(CheckLayout(l));
  if (data.is_file()) return Status::Invalid("Write needs the bytes in memory");
  std::vector<size_t> active = Current(l);  // mirrors still written
  if (active.empty()) return NoCurrentMirror();
  const size_t nm = l.mirrors.size(), ns = l.mirrors[0].files.size();
  // Verifiers in layout order; untouched data files contribute their server's last one.
  std::vector<Verifier> verf(nm * ns);
  std::vector<bool> touched(nm * ns, false);
  FailedMirrors failed;
  WriteResult out;
  uint64_t done = 0;
  while (done < data.size) {
    StripePos p = MapOffset(l, offset + done);
    uint64_t n = std::min<uint64_t>(data.size - done, p.unit_left);
    for (size_t m : active) n = std::min<uint64_t>(n, MaxIo(l.mirrors[m].files[p.stripe].ds_id, true));
    Bytes piece = Bytes::View(data.data + done, n, data.owner);
    std::vector<Status> st(active.size());
    std::vector<WRITE3res> res(active.size());
    ForEach(active.size(), [&](size_t i) {
      const meta::DataFile& f = l.mirrors[active[i]].files[p.stripe];
      auto known = Known(f.ds_id);
      if (!known.ok()) {
        st[i] = known.status();
        return;
      }
      Server* s = *known;
      WRITE3args a;
      a.file = Fh(f.fh);
      a.offset = p.ds_offset;
      a.count = static_cast<uint32_t>(n);
      a.stable = stable;
      a.data = piece;
      st[i] = Call(*s, NFSPROC3_WRITE, a, &res[i]);
      if (st[i].ok()) st[i] = FromNfs3(res[i].status, f.ds_id, "WRITE");
      if (st[i].ok()) NoteVerifier(*s, res[i].resok.verf);
    });
    FailedMirrors now;
    Status cs = Combine(active, st, failed_mirrors, &now);
    if (!cs.ok()) {
      if (done == 0) return cs;
      break;  // a later piece failed: report the bytes written so far
    }
    failed.insert(failed.end(), now.begin(), now.end());
    std::vector<size_t> still;
    uint64_t wrote = n;
    for (size_t i = 0; i < active.size(); i++) {
      if (!st[i].ok()) continue;  // left out from here on (it missed this piece)
      const size_t m = active[i];
      still.push_back(m);
      wrote = std::min<uint64_t>(wrote, res[i].resok.count);
      out.committed = std::min(out.committed, res[i].resok.committed);
      verf[m * ns + p.stripe] = res[i].resok.verf;
      touched[m * ns + p.stripe] = true;
    }
    active = std::move(still);
    done += wrote;
    if (wrote < n) break;  // short write: the caller resends the rest
  }
  for (size_t m = 0; m < nm; m++)
    for (size_t s = 0; s < ns; s++)
      if (!touched[m * ns + s]) verf[m * ns + s] = KnownVerifier(l.mirrors[m].files[s].ds_id);
  out.count = static_cast<uint32_t>(done);
  out.verifier = CombineVerifiers(verf);
  Report(failed_mirrors, std::move(failed));
  return out;
}

Result<CommitResult> DataServerPool::Commit(const meta::Layout& l, FailedMirrors* failed_mirrors) {
  LOOM_RETURN_IF_ERROR(CheckLayout(l));
  const std::vector<size_t> current = Current(l);
  if (current.empty()) return NoCurrentMirror();
  const size_t nm = l.mirrors.size(), ns = l.mirrors[0].files.size();
  std::vector<Verifier> verf(nm * ns);
  for (size_t k = 0; k < nm * ns; k++) verf[k] = KnownVerifier(l.mirrors[k / ns].files[k % ns].ds_id);
  std::vector<Status> st(current.size() * ns);
  ForEach(st.size(), [&](size_t j) {
    const size_t k = current[j / ns] * ns + j % ns;
    const meta::DataFile& f = l.mirrors[k / ns].files[k % ns];
    auto known = Known(f.ds_id);
    if (!known.ok()) {
      st[j] = known.status();
      return;
    }
    Server* s = *known;
    COMMIT3args a;
    a.file = Fh(f.fh);  // offset 0, count 0: the whole file
    COMMIT3res r;
    st[j] = Call(*s, NFSPROC3_COMMIT, a, &r);
    if (st[j].ok()) st[j] = FromNfs3(r.status, f.ds_id, "COMMIT");
    if (st[j].ok()) {
      verf[k] = r.resok.verf;
      NoteVerifier(*s, r.resok.verf);
    }
  });
  // Per mirror: its first failure.
  std::vector<Status> per(current.size());
  for (size_t j = 0; j < st.size(); j++)
    if (per[j / ns].ok() && !st[j].ok()) per[j / ns] = st[j];
  FailedMirrors failed;
  LOOM_RETURN_IF_ERROR(Combine(current, per, failed_mirrors, &failed));
  CommitResult out;
  out.verifier = CombineVerifiers(verf);
  for (size_t m = 0; m < nm; m++)
    out.mirror_verifiers.push_back(CombineVerifiers(
        std::vector<Verifier>(verf.begin() + m * ns, verf.begin() + (m + 1) * ns)));
  Report(failed_mirrors, std::move(failed));
  return out;
}

// --- Sizes ---

Status DataServerPool::SetAttrAll(const meta::Layout& l,
                                  const std::function<sattr3(uint32_t stripe)>& attrs,
                                  FailedMirrors* failed_mirrors) {
  LOOM_RETURN_IF_ERROR(CheckLayout(l));
  const std::vector<size_t> current = Current(l);
  if (current.empty()) return NoCurrentMirror();
  const size_t ns = l.mirrors[0].files.size();
  std::vector<Status> st(current.size() * ns);
  ForEach(st.size(), [&](size_t j) {
    const uint32_t stripe = static_cast<uint32_t>(j % ns);
    const meta::DataFile& f = l.mirrors[current[j / ns]].files[stripe];
    auto known = Known(f.ds_id);
    if (!known.ok()) {
      st[j] = known.status();
      return;
    }
    Server* s = *known;
    SETATTR3args a;
    a.object = Fh(f.fh);
    a.new_attributes = attrs(stripe);
    SETATTR3res r;
    st[j] = Call(*s, NFSPROC3_SETATTR, a, &r);
    if (st[j].ok()) st[j] = FromNfs3(r.status, f.ds_id, "SETATTR");
  });
  std::vector<Status> per(current.size());
  for (size_t j = 0; j < st.size(); j++)
    if (per[j / ns].ok() && !st[j].ok()) per[j / ns] = st[j];
  FailedMirrors failed;
  LOOM_RETURN_IF_ERROR(Combine(current, per, failed_mirrors, &failed));
  Report(failed_mirrors, std::move(failed));
  return Status::Ok();
}

Status DataServerPool::Truncate(const meta::Layout& l, uint64_t size, FailedMirrors* failed_mirrors) {
  return SetAttrAll(l, [&](uint32_t stripe) {
    sattr3 sa;
    sa.size = {true, StripeFileSize(l, stripe, size)};
    return sa;
  }, failed_mirrors);
}

Status DataServerPool::SetOwner(const meta::Layout& l, uint32_t uid, uint32_t gid,
                                uint32_t mode, FailedMirrors* failed_mirrors) {
  return SetAttrAll(l, [&](uint32_t) {
    sattr3 sa;
    sa.uid = {true, uid};
    sa.gid = {true, gid};
    sa.mode = {true, mode & 07777};
    return sa;
  }, failed_mirrors);
}

Result<uint64_t> DataServerPool::GetSize(const meta::Layout& l) {
  LOOM_RETURN_IF_ERROR(CheckLayout(l));
  const size_t ns = l.mirrors[0].files.size();
  uint64_t size = 0;
  for (size_t stripe = 0; stripe < ns; stripe++) {
    std::vector<size_t> order = Current(l);
    if (order.empty()) return NoCurrentMirror();
    std::stable_partition(order.begin(), order.end(), [&](size_t m) {
      Server* s = Lookup(l.mirrors[m].files[stripe].ds_id);
      return s && Usable(*s);
    });
    Status first;
    bool got = false;
    for (size_t m : order) {
      const meta::DataFile& f = l.mirrors[m].files[stripe];
      auto known = Known(f.ds_id);
      if (!known.ok()) {
        if (first.ok()) first = known.status();
        continue;
      }
      Server* s = *known;
      GETATTR3args a;
      a.object = Fh(f.fh);
      GETATTR3res r;
      Status st = Call(*s, NFSPROC3_GETATTR, a, &r);
      if (st.ok()) st = FromNfs3(r.status, f.ds_id, "GETATTR");
      if (st.ok()) {
        size = std::max(size, FileEndOfStripe(l, static_cast<uint32_t>(stripe),
                                               r.resok.obj_attributes.size));
        got = true;
        break;
      }
      if (first.ok()) first = st;
    }
    if (!got) return first;
  }
  return size;
}

// --- Copies ---

Status DataServerPool::CopyRange(const meta::Layout& from, const meta::Layout& to,
                                 uint64_t offset, uint64_t length, uint64_t file_size) {
  LOOM_RETURN_IF_ERROR(CheckLayout(from));
  LOOM_RETURN_IF_ERROR(CheckLayout(to));
  const uint64_t end = offset >= file_size ? offset : offset + std::min(length, file_size - offset);
  std::vector<size_t> all(to.mirrors.size());
  for (size_t m = 0; m < all.size(); m++) all[m] = m;
  return CopyInto(from, to, all, offset, end, file_size);
}

Status DataServerPool::ResyncMirror(const meta::Layout& l, size_t stale_mirror, uint64_t file_size) {
  LOOM_RETURN_IF_ERROR(CheckLayout(l));
  if (stale_mirror >= l.mirrors.size())
    return Status::Invalid("mirror " + std::to_string(stale_mirror) + " of a layout of " +
                           std::to_string(l.mirrors.size()));
  meta::Layout from = l;  // read from the others only
  from.mirrors[stale_mirror].stale = true;
  const std::vector<size_t> good = Current(from);
  if (good.empty())
    return Status::FromErrno(EIO, "mirror " + std::to_string(stale_mirror) +
                                      ": no other mirror is current to resync it from");
  // Owner, group and mode as the good mirror's (a fence may have changed them while this
  // mirror was left out), before any byte goes there.
  const size_t ns = l.mirrors[0].files.size();
  for (size_t stripe = 0; stripe < ns; stripe++) {
    Status first;
    bool got = false;
    fattr3 attr;
    for (size_t m : good) {
      const meta::DataFile& f = l.mirrors[m].files[stripe];
      auto known = Known(f.ds_id);
      Status st = known.status();
      GETATTR3res r;
      if (known.ok()) {
        GETATTR3args a;
        a.object = Fh(f.fh);
        st = Call(**known, NFSPROC3_GETATTR, a, &r);
        if (st.ok()) st = FromNfs3(r.status, f.ds_id, "GETATTR");
      }
      if (st.ok()) {
        attr = r.resok.obj_attributes;
        got = true;
        break;
      }
      if (first.ok()) first = st;
    }
    if (!got) return first;
    const meta::DataFile& t = l.mirrors[stale_mirror].files[stripe];
    auto known = Known(t.ds_id);
    if (!known.ok()) return known.status();
    SETATTR3args a;
    a.object = Fh(t.fh);
    a.new_attributes.uid = {true, attr.uid};
    a.new_attributes.gid = {true, attr.gid};
    a.new_attributes.mode = {true, attr.mode & 07777};
    SETATTR3res r;
    LOOM_RETURN_IF_ERROR(Call(**known, NFSPROC3_SETATTR, a, &r));
    LOOM_RETURN_IF_ERROR(FromNfs3(r.status, t.ds_id, "SETATTR"));
  }
  return CopyInto(from, l, {stale_mirror}, 0, file_size, file_size);
}

Status DataServerPool::CopyInto(const meta::Layout& from, const meta::Layout& to,
                                const std::vector<size_t>& to_mirrors, uint64_t offset,
                                uint64_t end, uint64_t file_size) {
  const std::vector<size_t> src = Current(from);
  if (src.empty()) return NoCurrentMirror();
  const size_t ns = to.mirrors[0].files.size();
  // The write verifier each target data file reported first (slot: index in to_mirrors * ns
  // + stripe), to tell a server that restarted (and lost UNSTABLE bytes) before the COMMIT.
  std::vector<std::optional<Verifier>> wverf(to_mirrors.size() * ns);
  auto restarted = [&](uint32_t ds_id) {
    return Status::Unavailable("data server " + std::to_string(ds_id) +
                               " restarted during the copy (its write verifier changed): copy again");
  };
  uint64_t pos = offset;
  while (pos < end) {
    const StripePos fp = MapOffset(from, pos), tp = MapOffset(to, pos);
    uint64_t n = std::min({end - pos, fp.unit_left, tp.unit_left});
    for (size_t m : src) n = std::min<uint64_t>(n, MaxIo(from.mirrors[m].files[fp.stripe].ds_id, false));
    for (size_t m : to_mirrors) n = std::min<uint64_t>(n, MaxIo(to.mirrors[m].files[tp.stripe].ds_id, true));
    Result<ReadResult> r = ReadFile(from, fp.stripe, fp.ds_offset, static_cast<uint32_t>(n));
    if (!r.ok()) return r.status();
    Bytes data = std::move(r->data);
    if (data.size < n) {  // a hole, or the end of a data file that is short: zeros
      auto buf = Buffer::Allocate(n);
      if (data.size) std::memcpy(buf->data(), data.data, data.size);
      std::memset(buf->data() + data.size, 0, n - data.size);
      data = Bytes::View(buf->data(), n, buf);
    }
    std::vector<Status> st(to_mirrors.size());
    ForEach(to_mirrors.size(), [&](size_t i) {
      const meta::DataFile& f = to.mirrors[to_mirrors[i]].files[tp.stripe];
      auto known = Known(f.ds_id);
      if (!known.ok()) {
        st[i] = known.status();
        return;
      }
      Server* s = *known;
      std::optional<Verifier>& seen = wverf[i * ns + tp.stripe];
      for (uint64_t at = 0; at < n;) {  // a short WRITE: send the rest
        WRITE3args a;
        a.file = Fh(f.fh);
        a.offset = tp.ds_offset + at;
        a.count = static_cast<uint32_t>(n - at);
        a.stable = UNSTABLE;
        a.data = Bytes::View(data.data + at, n - at, data.owner);
        WRITE3res w;
        st[i] = Call(*s, NFSPROC3_WRITE, a, &w);
        if (st[i].ok()) st[i] = FromNfs3(w.status, f.ds_id, "WRITE");
        if (st[i].ok() && w.resok.count == 0)
          st[i] = Status::Io("data server " + std::to_string(f.ds_id) + " wrote nothing");
        if (!st[i].ok()) return;
        NoteVerifier(*s, w.resok.verf);
        if (!seen) seen = w.resok.verf;
        if (*seen != w.resok.verf) {
          st[i] = restarted(f.ds_id);
          return;
        }
        at += w.resok.count;
      }
    });
    for (const Status& e : st) LOOM_RETURN_IF_ERROR(e);
    pos += n;
  }
  // Sizes (a file that ends in a hole, or was shorter before), then the bytes to disk.
  std::vector<Status> st(to_mirrors.size() * ns);
  ForEach(st.size(), [&](size_t j) {
    const uint32_t stripe = static_cast<uint32_t>(j % ns);
    const meta::DataFile& f = to.mirrors[to_mirrors[j / ns]].files[stripe];
    auto known = Known(f.ds_id);
    if (!known.ok()) {
      st[j] = known.status();
      return;
    }
    Server* s = *known;
    SETATTR3args a;
    a.object = Fh(f.fh);
    a.new_attributes.size = {true, StripeFileSize(to, stripe, file_size)};
    SETATTR3res sr;
    st[j] = Call(*s, NFSPROC3_SETATTR, a, &sr);
    if (st[j].ok()) st[j] = FromNfs3(sr.status, f.ds_id, "SETATTR");
    if (!st[j].ok()) return;
    COMMIT3args c;
    c.file = Fh(f.fh);
    COMMIT3res cr;
    st[j] = Call(*s, NFSPROC3_COMMIT, c, &cr);
    if (st[j].ok()) st[j] = FromNfs3(cr.status, f.ds_id, "COMMIT");
    if (!st[j].ok()) return;
    NoteVerifier(*s, cr.resok.verf);
    if (wverf[j] && *wverf[j] != cr.resok.verf) st[j] = restarted(f.ds_id);
  });
  for (const Status& e : st) LOOM_RETURN_IF_ERROR(e);
  return Status::Ok();
}

}  // namespace loom::mds
