// The two sides of a copy: a local file system (POSIX calls) and a Loom file system (libloom),
// behind one small interface, so `loom cp` has one code path for put, get and remote copies.
// Writers write to a temporary name beside the destination (".NAME.loom-tmp-XXXXXX") and
// publish it with a rename, so a failed or interrupted copy leaves no partial file.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cli.h"

namespace loom::cli {

struct Entry {
  bool exists = false;
  lc::FileType type = lc::FileType::kOther;
  uint64_t size = 0;
  uint32_t mode = 0644;
  bool is_dir() const { return type == lc::FileType::kDirectory; }
};

// Something bytes can be written to at offsets; writes may complete out of order.
class Sink {
 public:
  virtual ~Sink() = default;
  virtual void WriteAsync(uint64_t off, const void* buf, size_t len, lc::IoCallback cb) = 0;
};

class Reader {
 public:
  virtual ~Reader() = default;
  virtual uint64_t size() const = 0;
  // Fewer bytes than asked only at end of file.
  virtual void ReadAsync(uint64_t off, void* buf, size_t len, lc::IoCallback cb) = 0;
  virtual lc::Status Close() = 0;
};

// A new file under a temporary name. Close (data durable where the side promises it), then
// Publish (rename to the destination) or Abort (remove the temporary file). Dropping a Writer
// that was not published aborts it.
class Writer : public Sink {
 public:
  virtual lc::Status Close() = 0;
  virtual const std::string& temp_path() const = 0;
  // overwrite=false: fails with kExists when the destination appeared meanwhile.
  virtual lc::Status Publish(bool overwrite) = 0;
  virtual void Abort() = 0;
};

class Fs {
 public:
  virtual ~Fs() = default;
  virtual bool remote() const = 0;
  // How the user writes the path ("loom:/a/b" or "a/b").
  virtual std::string Display(const std::string& path) const = 0;
  // follow: stat the target of a symlink (top-level arguments) instead of the link.
  virtual lc::Result<Entry> Stat(const std::string& path, bool follow) = 0;  // !exists if missing
  virtual lc::Result<std::vector<std::pair<std::string, Entry>>> List(const std::string& dir) = 0;
  // An existing directory is fine.
  virtual lc::Status Mkdir(const std::string& path, uint32_t mode) = 0;
  virtual lc::Result<std::string> Readlink(const std::string& path) = 0;
  // Creates a symlink; kExists when something is there and !overwrite.
  virtual lc::Status Symlink(const std::string& target, const std::string& path, bool overwrite) = 0;
  virtual lc::Result<std::unique_ptr<Reader>> OpenRead(const std::string& path) = 0;
  virtual lc::Result<std::unique_ptr<Writer>> Create(const std::string& dest, uint32_t mode) = 0;
};

std::unique_ptr<Fs> MakeLocalFs();
std::unique_ptr<Fs> MakeRemoteFs(std::shared_ptr<lc::Client> client);

// A Sink on a descriptor written in order (stdout for `loom cat`).
std::unique_ptr<Sink> MakeFdSink(int fd);

// The temporary name for `dest`: ".NAME.loom-tmp-XXXXXX" in the same directory, the X's
// replaced by `suffix` when given.
std::string TempName(const std::string& dest, const std::string& suffix = "XXXXXX");
std::string RandomSuffix();

}  // namespace loom::cli
