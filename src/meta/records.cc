#include "meta/records.h"

#include <time.h>

#include "meta/codec.h"

namespace loom::meta {
namespace {

// The first byte of every record: the tag of the key it lives under (Dentry uses 'D' under
// both D and R keys), so a value written under the wrong key is caught on decode.
// The versions of each record (see records.h for how a version extends the one before).
constexpr uint8_t kVersion1 = 1;
constexpr uint8_t kLayoutVersion = 2;      // + generation, per mirror stale, per file name_gen
constexpr uint8_t kGcVersion = 2;          // + file.name_gen
constexpr uint8_t kPendingVersion = 2;     // + name_gen
constexpr uint8_t kDataServerVersion = 2;  // + advertised_address, labels, draining

std::string Header(char kind, uint8_t version = kVersion1) {
  std::string out;
  out.reserve(64);
  PutU8(out, static_cast<uint8_t>(kind));
  PutU8(out, version);
  return out;
}

bool Bool(ByteReader& r, bool& b) {
  uint8_t v;
  if (!r.U8(v) || v > 1) return false;
  b = v != 0;
  return true;
}

void PutTime(std::string& out, const Timespec& t) {
  PutU64(out, static_cast<uint64_t>(t.sec));
  PutU32(out, t.nsec);
}

bool Time(ByteReader& r, Timespec& t) { return r.I64(t.sec) && r.U32(t.nsec) && t.nsec < 1000000000; }

bool Type(ByteReader& r, FileType& t) {
  uint8_t v;
  if (!r.U8(v) || v < 1 || v > 7) return false;
  t = static_cast<FileType>(v);
  return true;
}

void PutDataFile(std::string& out, const DataFile& f) {
  PutU32(out, f.ds_id);
  PutBytes(out, f.fh);
  PutU32(out, f.uid);
  PutU32(out, f.gid);
}

bool GetDataFile(ByteReader& r, DataFile& f) {
  return r.U32(f.ds_id) && r.Bytes(f.fh, kMaxFhLen) && r.U32(f.uid) && r.U32(f.gid);
}

// Checks the header (a version from 1 to `newest`), runs `body` (which receives the version)
// and requires that it consumed everything.
template <typename Body>
Status DecodeRecord(std::string_view in, char kind, const char* name, Body body,
                    uint8_t newest = kVersion1) {
  ByteReader r(in);
  uint8_t k, version;
  if (!r.U8(k) || k != static_cast<uint8_t>(kind)) {
    return Status::Internal(std::string("corrupt ") + name + " record: wrong kind");
  }
  if (!r.U8(version) || version == 0 || version > newest) {
    return Status::Internal(std::string(name) + " record: unsupported version");
  }
  if (!body(r, version) || !r.done()) {
    return Status::Internal(std::string("corrupt ") + name + " record");
  }
  return Status::Ok();
}

}  // namespace

Timespec NowRealtime() {
  struct timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return Timespec{ts.tv_sec, static_cast<uint32_t>(ts.tv_nsec)};
}

std::string Encode(const FsInfo& f) {
  std::string out = Header('F');
  PutU64(out, f.fsid);
  PutU64(out, f.root);
  PutTime(out, f.created);
  return out;
}

Status Decode(std::string_view in, FsInfo* f) {
  return DecodeRecord(in, 'F', "fs", [&](ByteReader& r, uint8_t) {
    return r.U64(f->fsid) && r.U64(f->root) && Time(r, f->created);
  });
}

std::string Encode(const Inode& n) {
  std::string out = Header('I');
  PutU64(out, n.ino);
  PutU8(out, static_cast<uint8_t>(n.type));
  PutU32(out, n.mode);
  PutU32(out, n.uid);
  PutU32(out, n.gid);
  PutU32(out, n.nlink);
  PutU64(out, n.size);
  PutU64(out, n.space_used);
  PutTime(out, n.atime);
  PutTime(out, n.mtime);
  PutTime(out, n.ctime);
  PutU64(out, n.change);
  PutU32(out, n.rdev_major);
  PutU32(out, n.rdev_minor);
  PutBytes(out, n.symlink);
  PutU64(out, n.generation);
  PutU64(out, n.parent);
  PutU64(out, n.next_cookie);
  return out;
}

Status Decode(std::string_view in, Inode* n) {
  return DecodeRecord(in, 'I', "inode", [&](ByteReader& r, uint8_t) {
    return r.U64(n->ino) && Type(r, n->type) && r.U32(n->mode) && n->mode <= 07777 &&
           r.U32(n->uid) && r.U32(n->gid) && r.U32(n->nlink) && r.U64(n->size) &&
           r.U64(n->space_used) && Time(r, n->atime) && Time(r, n->mtime) &&
           Time(r, n->ctime) && r.U64(n->change) && r.U32(n->rdev_major) &&
           r.U32(n->rdev_minor) && r.Bytes(n->symlink, kMaxSymlinkLen) &&
           r.U64(n->generation) && r.U64(n->parent) && r.U64(n->next_cookie);
  });
}

std::string Encode(const Dentry& d) {
  std::string out = Header('D');
  PutBytes(out, d.name);
  PutU64(out, d.ino);
  PutU8(out, static_cast<uint8_t>(d.type));
  PutU64(out, d.cookie);
  return out;
}

Status Decode(std::string_view in, Dentry* d) {
  return DecodeRecord(in, 'D', "dentry", [&](ByteReader& r, uint8_t) {
    return r.Bytes(d->name, kMaxNameLen) && r.U64(d->ino) && Type(r, d->type) &&
           r.U64(d->cookie);
  });
}

std::string Encode(const Layout& l) {
  std::string out = Header('L', kLayoutVersion);
  PutU64(out, l.stripe_unit);
  PutU32(out, l.stripe_count);
  PutU32(out, static_cast<uint32_t>(l.mirrors.size()));
  for (const Mirror& m : l.mirrors) {
    PutU32(out, static_cast<uint32_t>(m.files.size()));
    for (const DataFile& f : m.files) PutDataFile(out, f);
  }
  // Version 2.
  PutU64(out, l.generation);
  for (const Mirror& m : l.mirrors) PutU8(out, m.stale ? 1 : 0);
  for (const Mirror& m : l.mirrors)
    for (const DataFile& f : m.files) PutU32(out, f.name_gen);
  return out;
}

Status Decode(std::string_view in, Layout* l) {
  *l = Layout{};
  return DecodeRecord(in, 'L', "layout", [&](ByteReader& r, uint8_t version) {
    uint32_t nm;
    if (!r.U64(l->stripe_unit) || !r.U32(l->stripe_count) || l->stripe_count == 0 ||
        l->stripe_count > kMaxStripes || !r.U32(nm) || nm > kMaxMirrors) {
      return false;
    }
    l->mirrors.assign(nm, Mirror{});
    for (Mirror& m : l->mirrors) {
      uint32_t nf;
      // Every mirror has exactly one file per stripe.
      if (!r.U32(nf) || nf != l->stripe_count) return false;
      m.files.assign(nf, DataFile{});
      for (DataFile& f : m.files) {
        if (!GetDataFile(r, f)) return false;
      }
    }
    if (version < 2) return true;
    if (!r.U64(l->generation)) return false;
    for (Mirror& m : l->mirrors)
      if (!Bool(r, m.stale)) return false;
    for (Mirror& m : l->mirrors)
      for (DataFile& f : m.files)
        if (!r.U32(f.name_gen)) return false;
    return true;
  }, kLayoutVersion);
}

std::string Encode(const Orphan& o) {
  std::string out = Header('O');
  PutU64(out, o.ino);
  PutTime(out, o.since);
  return out;
}

Status Decode(std::string_view in, Orphan* o) {
  return DecodeRecord(in, 'O', "orphan",
                      [&](ByteReader& r, uint8_t) { return r.U64(o->ino) && Time(r, o->since); });
}

std::string Encode(const GcItem& g) {
  std::string out = Header('G', kGcVersion);
  PutU64(out, g.ino);
  PutDataFile(out, g.file);
  PutTime(out, g.queued);
  PutU32(out, g.file.name_gen);  // version 2
  return out;
}

Status Decode(std::string_view in, GcItem* g) {
  *g = GcItem{};
  return DecodeRecord(in, 'G', "gc item", [&](ByteReader& r, uint8_t version) {
    return r.U64(g->ino) && GetDataFile(r, g->file) && Time(r, g->queued) &&
           (version < 2 || r.U32(g->file.name_gen));
  }, kGcVersion);
}

std::string Encode(const PendingFile& p) {
  std::string out = Header('P', kPendingVersion);
  PutU64(out, p.ino);
  PutU32(out, p.ds_id);
  PutTime(out, p.since);
  PutU32(out, p.name_gen);  // version 2
  return out;
}

Status Decode(std::string_view in, PendingFile* p) {
  *p = PendingFile{};
  return DecodeRecord(in, 'P', "pending file", [&](ByteReader& r, uint8_t version) {
    return r.U64(p->ino) && r.U32(p->ds_id) && Time(r, p->since) &&
           (version < 2 || r.U32(p->name_gen));
  }, kPendingVersion);
}

std::string Encode(const FsIdentity& f) {
  std::string out = Header('V');
  PutBytes(out, f.uuid);
  PutBytes(out, f.tree);
  PutTime(out, f.created);
  return out;
}

Status Decode(std::string_view in, FsIdentity* f) {
  return DecodeRecord(in, 'V', "filesystem identity", [&](ByteReader& r, uint8_t) {
    return r.Bytes(f->uuid, 16) && f->uuid.size() == 16 && r.Bytes(f->tree, kMaxNameLen) &&
           !f->tree.empty() && Time(r, f->created);
  });
}

std::string Encode(const DataServerRecord& d) {
  std::string out = Header('K', kDataServerVersion);
  PutBytes(out, d.uuid);
  PutU32(out, d.id);
  PutBytes(out, d.address);
  // Version 2.
  PutBytes(out, d.advertised_address);
  PutU32(out, static_cast<uint32_t>(d.labels.size()));
  for (const std::string& l : d.labels) PutBytes(out, l);
  PutU8(out, d.draining ? 1 : 0);
  return out;
}

Status Decode(std::string_view in, DataServerRecord* d) {
  *d = DataServerRecord{};
  return DecodeRecord(in, 'K', "data server", [&](ByteReader& r, uint8_t version) {
    if (!r.Bytes(d->uuid, 16) || d->uuid.size() != 16 || !r.U32(d->id) || d->id == 0 ||
        !r.Bytes(d->address, kMaxAddressLen))
      return false;
    if (version < 2) return true;
    uint32_t n;
    if (!r.Bytes(d->advertised_address, kMaxAddressLen) || !r.U32(n) || n > kMaxServerLabels) return false;
    d->labels.assign(n, std::string());
    for (std::string& l : d->labels)
      if (!r.Bytes(l, kMaxServerLabelLen)) return false;
    return Bool(r, d->draining);
  }, kDataServerVersion);
}

std::string Encode(const ClientRecord& c) {
  std::string out = Header('C');
  PutU64(out, c.clientid);
  PutBytes(out, c.owner);
  PutU64(out, c.verifier);
  PutU32(out, c.flags);
  PutTime(out, c.created);
  return out;
}

Status Decode(std::string_view in, ClientRecord* c) {
  return DecodeRecord(in, 'C', "client", [&](ByteReader& r, uint8_t) {
    return r.U64(c->clientid) && r.Bytes(c->owner, kMaxClientOwnerLen) && r.U64(c->verifier) &&
           r.U32(c->flags) && Time(r, c->created);
  });
}

std::string Encode(const GraceState& g) {
  std::string out = Header('S');
  PutU64(out, g.epoch);
  PutU64(out, g.recovery_epoch);
  PutU8(out, g.in_grace ? 1 : 0);
  return out;
}

Status Decode(std::string_view in, GraceState* g) {
  return DecodeRecord(in, 'S', "grace state", [&](ByteReader& r, uint8_t) {
    uint8_t b;
    if (!r.U64(g->epoch) || !r.U64(g->recovery_epoch) || !r.U8(b) || b > 1) return false;
    g->in_grace = b != 0;
    return true;
  });
}

std::string EncodeU64(uint64_t v) {
  std::string out = Header('N');
  PutU64(out, v);
  return out;
}

Status DecodeU64(std::string_view in, uint64_t* v) {
  return DecodeRecord(in, 'N', "counter", [&](ByteReader& r, uint8_t) { return r.U64(*v); });
}

}  // namespace loom::meta
