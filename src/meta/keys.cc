#include "meta/keys.h"

#include <algorithm>

#include "meta/codec.h"

namespace loom::meta::keys {
namespace {

std::string Tagged(char t, uint64_t a) {
  std::string k;
  k.reserve(1 + 8 + 8 + 16);  // room for a second integer and a short name
  k.push_back(t);
  PutU64(k, a);
  return k;
}

std::string Tagged(char t, uint64_t a, uint64_t b) {
  std::string k = Tagged(t, a);
  PutU64(k, b);
  return k;
}

}  // namespace

std::string Fs(FsId fs) { return Tagged(tag::kFs, fs); }
std::string InoAlloc(FsId fs) { return Tagged(tag::kInoAlloc, fs); }
std::string Inode(FsId fs, Ino ino) { return Tagged(tag::kInode, fs, ino); }
std::string InodePrefix(FsId fs) { return Tagged(tag::kInode, fs); }

std::string Dentry(FsId fs, Ino parent, std::string_view name) {
  std::string k = DentryPrefix(fs, parent);
  k.append(name);
  return k;
}
std::string DentryPrefix(FsId fs, Ino parent) { return Tagged(tag::kDentry, fs, parent); }

std::string Readdir(FsId fs, Ino dir, uint64_t cookie) {
  std::string k = ReaddirPrefix(fs, dir);
  PutU64(k, cookie);
  return k;
}
std::string ReaddirPrefix(FsId fs, Ino dir) { return Tagged(tag::kReaddir, fs, dir); }

std::string Layout(FsId fs, Ino ino) { return Tagged(tag::kLayout, fs, ino); }
std::string LayoutPrefix(FsId fs) { return Tagged(tag::kLayout, fs); }
std::string Policy(FsId fs, Ino dir) { return Tagged(tag::kPolicy, fs, dir); }

std::string Xattr(FsId fs, Ino ino, std::string_view name) {
  std::string k = XattrPrefix(fs, ino);
  k.append(name);
  return k;
}
std::string XattrPrefix(FsId fs, Ino ino) { return Tagged(tag::kXattr, fs, ino); }

std::string Orphan(FsId fs, Ino ino) { return Tagged(tag::kOrphan, fs, ino); }
std::string OrphanPrefix(FsId fs) { return Tagged(tag::kOrphan, fs); }

std::string Gc(FsId fs, Ino ino, uint32_t ds_id, std::string_view fh) {
  std::string k = Tagged(tag::kGc, fs, ino);
  PutU32(k, ds_id);
  k.append(fh);
  return k;
}
std::string GcPrefix(FsId fs) { return Tagged(tag::kGc, fs); }

std::string Pending(FsId fs, Ino ino, uint32_t ds_id) {
  std::string k = PendingPrefix(fs, ino);
  PutU32(k, ds_id);
  return k;
}
std::string Pending(FsId fs, Ino ino, uint32_t ds_id, uint32_t name_gen) {
  std::string k = Pending(fs, ino, ds_id);
  if (name_gen != 0) PutU32(k, name_gen);  // generation 0 keeps the key it always had
  return k;
}
std::string PendingPrefix(FsId fs) { return Tagged(tag::kPending, fs); }
std::string PendingPrefix(FsId fs, Ino ino) { return Tagged(tag::kPending, fs, ino); }
std::string Identity(FsId fs) { return Tagged(tag::kIdentity, fs); }
std::string DataServer(std::string_view uuid) {
  std::string k(1, tag::kDataServer);
  k.append(uuid);
  return k;
}
std::string DataServerPrefix() { return std::string(1, tag::kDataServer); }

std::string Client(uint64_t clientid) { return Tagged(tag::kClient, clientid); }
std::string ClientPrefix() { return std::string(1, tag::kClient); }

std::string State(std::string_view name) {
  std::string k(1, tag::kState);
  k.append(name);
  return k;
}

size_t InsertHintPrefixLength(std::string_view key) {
  constexpr size_t kNumbered = 1 + 8 + 8;  // tag, filesystem, first number
  if (key.size() < kNumbered) return 0;
  switch (key[0]) {
    // A rename deletes one name and adds another, and a new entry's cookie comes after every
    // old one: the first byte of the name and the cookie's top 7 bytes keep the two places a
    // change writes to in separate neighbourhoods.
    case tag::kDentry: return std::min(key.size(), kNumbered + 1);
    case tag::kReaddir: return std::min(key.size(), kNumbered + 7);
    default: return kNumbered - 1;
  }
}

bool PointRead(std::string_view key) { return key.empty() || key[0] != tag::kReaddir; }

bool TailAfter(std::string_view key, std::string_view prefix, std::string_view* tail) {
  if (key.substr(0, prefix.size()) != prefix) return false;
  *tail = key.substr(prefix.size());
  return true;
}

}  // namespace loom::meta::keys
