#include "xdr/xdr.h"

#include <unistd.h>

namespace loom::xdr {

std::vector<Segment> Encoder::Segments() const {
  std::vector<Segment> out;
  out.reserve(ext_.size() * 2 + 1);
  size_t at = 0;
  for (const External& e : ext_) {
    if (e.at > at) out.push_back({buf_.data() + at, e.at - at, nullptr, 0});
    // Memory, a file range, or a mapped file range (which keeps its address: the transport
    // sends it as memory). An empty one sends nothing.
    if (e.ref.size != 0) out.push_back({e.ref.data, e.ref.size, e.ref.file.get(), e.ref.file_offset});
    at = e.at;
  }
  if (buf_.size() > at) out.push_back({buf_.data() + at, buf_.size() - at, nullptr, 0});
  return out;
}

std::string Encoder::Flatten() const {
  std::string s;
  s.reserve(size());
  for (const Segment& seg : Segments()) {
    if (seg.file == nullptr) {
      s.append(reinterpret_cast<const char*>(seg.data), seg.size);
      continue;
    }
    size_t start = s.size();
    s.resize(start + seg.size);
    size_t done = 0;
    while (done < seg.size) {
      ssize_t r = ::pread(seg.file->fd(), s.data() + start + done, seg.size - done,
                          static_cast<off_t>(seg.offset + done));
      if (r <= 0) break;  // short file: the rest stays zero, as the transport does
      done += static_cast<size_t>(r);
    }
  }
  return s;
}

}  // namespace loom::xdr
