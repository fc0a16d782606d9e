// Proxied I/O through the data servers, and the striping arithmetic. Every piece of I/O is
// cut at stripe-unit boundaries (MapOffset) and at the servers' maximum transfer size, then
// sent to the data file that holds it: READ to one mirror (failing over), WRITE to all.
#include <algorithm>
#include <cstring>
#include <limits>

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
}  // namespace

StripePos MapOffset(const meta::Layout& l, uint64_t offset) {
  if (!Striped(l)) return StripePos{0, offset, kNoBoundary};
  const uint64_t su = l.stripe_unit;
  const uint64_t unit = offset / su, within = offset % su;
  return StripePos{static_cast<uint32_t>(unit % l.stripe_count),
                   (unit / l.stripe_count) * su + within, su - within};
}

uint64_t StripeFileSize(const meta::Layout& l, uint32_t stripe, uint64_t file_size) {
  if (!Striped(l)) return file_size;
  const uint64_t su = l.stripe_unit, row = su * l.stripe_count;
  const uint64_t rem = file_size % row, start = stripe * su;
  return (file_size / row) * su + (rem > start ? std::min(rem - start, su) : 0);
}

uint64_t FileEndOfStripe(const meta::Layout& l, uint32_t stripe, uint64_t ds_size) {
  if (!Striped(l) || ds_size == 0) return ds_size;
  const uint64_t su = l.stripe_unit, last = ds_size - 1;
  return ((last / su) * l.stripe_count + stripe) * su + last % su + 1;
}

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
  // Mirrors whose server is not known to be down first, in layout order.
  std::vector<size_t> order(l.mirrors.size());
  for (size_t i = 0; i < order.size(); i++) order[i] = i;
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
        std::min({end - pos, p.unit_left, uint64_t{MaxIo(l.mirrors[0].files[p.stripe].ds_id, false)}}));
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
                                          const Bytes& data, stable_how stable) {
  LOOM_RETURN_IF_ERROR(CheckLayout(l));
  if (data.is_file()) return Status::Invalid("Write needs the bytes in memory");
  const size_t nm = l.mirrors.size(), ns = l.mirrors[0].files.size();
  // Verifiers in layout order; untouched data files contribute their server's last one.
  std::vector<Verifier> verf(nm * ns);
  std::vector<bool> touched(nm * ns, false);
  WriteResult out;
  uint64_t done = 0;
  while (done < data.size) {
    StripePos p = MapOffset(l, offset + done);
    uint64_t n = std::min<uint64_t>(data.size - done, p.unit_left);
    for (size_t m = 0; m < nm; m++) n = std::min<uint64_t>(n, MaxIo(l.mirrors[m].files[p.stripe].ds_id, true));
    Bytes piece = Bytes::View(data.data + done, n, data.owner);
    std::vector<Status> st(nm);
    std::vector<WRITE3res> res(nm);
    ForEach(nm, [&](size_t m) {
      const meta::DataFile& f = l.mirrors[m].files[p.stripe];
      auto known = Known(f.ds_id);
      if (!known.ok()) {
        st[m] = known.status();
        return;
      }
      Server* s = *known;
      WRITE3args a;
      a.file = Fh(f.fh);
      a.offset = p.ds_offset;
      a.count = static_cast<uint32_t>(n);
      a.stable = stable;
      a.data = piece;
      st[m] = Call(*s, NFSPROC3_WRITE, a, &res[m]);
      if (st[m].ok()) st[m] = FromNfs3(res[m].status, f.ds_id, "WRITE");
      if (st[m].ok()) NoteVerifier(*s, res[m].resok.verf);
    });
    for (const Status& s : st) {
      if (s.ok()) continue;
      if (done == 0) return s;
      n = 0;  // a later piece failed: report the bytes written so far
      break;
    }
    if (n == 0) break;
    uint64_t wrote = n;
    for (size_t m = 0; m < nm; m++) {
      wrote = std::min<uint64_t>(wrote, res[m].resok.count);
      out.committed = std::min(out.committed, res[m].resok.committed);
      verf[m * ns + p.stripe] = res[m].resok.verf;
      touched[m * ns + p.stripe] = true;
    }
    done += wrote;
    if (wrote < n) break;  // short write: the caller resends the rest
  }
  for (size_t m = 0; m < nm; m++)
    for (size_t s = 0; s < ns; s++)
      if (!touched[m * ns + s]) verf[m * ns + s] = KnownVerifier(l.mirrors[m].files[s].ds_id);
  out.count = static_cast<uint32_t>(done);
  out.verifier = CombineVerifiers(verf);
  return out;
}

Result<CommitResult> DataServerPool::Commit(const meta::Layout& l) {
  LOOM_RETURN_IF_ERROR(CheckLayout(l));
  const size_t nm = l.mirrors.size(), ns = l.mirrors[0].files.size();
  std::vector<Verifier> verf(nm * ns);
  std::vector<Status> st(nm * ns);
  ForEach(nm * ns, [&](size_t k) {
    const meta::DataFile& f = l.mirrors[k / ns].files[k % ns];
    auto known = Known(f.ds_id);
    if (!known.ok()) {
      st[k] = known.status();
      return;
    }
    Server* s = *known;
    COMMIT3args a;
    a.file = Fh(f.fh);  // offset 0, count 0: the whole file
    COMMIT3res r;
    st[k] = Call(*s, NFSPROC3_COMMIT, a, &r);
    if (st[k].ok()) st[k] = FromNfs3(r.status, f.ds_id, "COMMIT");
    if (st[k].ok()) {
      verf[k] = r.resok.verf;
      NoteVerifier(*s, r.resok.verf);
    }
  });
  for (const Status& s : st) LOOM_RETURN_IF_ERROR(s);
  CommitResult out;
  out.verifier = CombineVerifiers(verf);
  for (size_t m = 0; m < nm; m++)
    out.mirror_verifiers.push_back(CombineVerifiers(
        std::vector<Verifier>(verf.begin() + m * ns, verf.begin() + (m + 1) * ns)));
  return out;
}

// --- Sizes ---

Status DataServerPool::SetAttrAll(const meta::Layout& l,
                                  const std::function<sattr3(uint32_t stripe)>& attrs) {
  LOOM_RETURN_IF_ERROR(CheckLayout(l));
  const size_t nm = l.mirrors.size(), ns = l.mirrors[0].files.size();
  std::vector<Status> st(nm * ns);
  ForEach(nm * ns, [&](size_t k) {
    const meta::DataFile& f = l.mirrors[k / ns].files[k % ns];
    auto known = Known(f.ds_id);
    if (!known.ok()) {
      st[k] = known.status();
      return;
    }
    Server* s = *known;
    SETATTR3args a;
    a.object = Fh(f.fh);
    a.new_attributes = attrs(static_cast<uint32_t>(k % ns));
    SETATTR3res r;
    st[k] = Call(*s, NFSPROC3_SETATTR, a, &r);
    if (st[k].ok()) st[k] = FromNfs3(r.status, f.ds_id, "SETATTR");
  });
  for (const Status& s : st) LOOM_RETURN_IF_ERROR(s);
  return Status::Ok();
}

Status DataServerPool::Truncate(const meta::Layout& l, uint64_t size) {
  return SetAttrAll(l, [&](uint32_t stripe) {
    sattr3 sa;
    sa.size = {true, StripeFileSize(l, stripe, size)};
    return sa;
  });
}

Status DataServerPool::SetOwner(const meta::Layout& l, uint32_t uid, uint32_t gid,
                                uint32_t mode) {
  return SetAttrAll(l, [&](uint32_t) {
    sattr3 sa;
    sa.uid = {true, uid};
    sa.gid = {true, gid};
    sa.mode = {true, mode & 07777};
    return sa;
  });
}

Result<uint64_t> DataServerPool::GetSize(const meta::Layout& l) {
  LOOM_RETURN_IF_ERROR(CheckLayout(l));
  const size_t ns = l.mirrors[0].files.size();
  uint64_t size = 0;
  for (size_t stripe = 0; stripe < ns; stripe++) {
    std::vector<size_t> order(l.mirrors.size());
    for (size_t i = 0; i < order.size(); i++) order[i] = i;
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

}  // namespace loom::mds
