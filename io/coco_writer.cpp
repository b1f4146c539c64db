// COCO writer: one record per line, shortest round-trip doubles, kept extras
// reproduced verbatim, atomic replacement of the target file.
#include <unistd.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "pasteflow/io/coco.hpp"

namespace pasteflow::io {
namespace {

Location file_location(const std::string& file) {
  Location loc;
  loc.file = file;
  return loc;
}

/// Output buffer that drains to a FILE* (when given) in large writes.
class Sink {
 public:
  Sink(std::FILE* file, const std::string& path) : file_(file), path_(path) {
    if (file_) out_.reserve(kFlushAt + 4096);
  }
  std::string& out() { return out_; }
  void maybe_flush() {
    if (file_ && out_.size() >= kFlushAt) flush();
  }
  void flush() {
    if (!file_ || out_.empty()) return;
    if (std::fwrite(out_.data(), 1, out_.size(), file_) != out_.size()) {
      throw Error("io_error", std::string("write failed: ") + std::strerror(errno), file_location(path_));
    }
    out_.clear();
  }

 private:
  static constexpr size_t kFlushAt = size_t(4) << 20;
  std::FILE* file_;
  std::string path_;
  std::string out_;
};

void put_int(std::string& o, int64_t v) {
  char b[24];
  const auto r = std::to_chars(b, b + sizeof(b), v);
  o.append(b, static_cast<size_t>(r.ptr - b));
}

void put_uint(std::string& o, uint64_t v) {
  char b[24];
  const auto r = std::to_chars(b, b + sizeof(b), v);
  o.append(b, static_cast<size_t>(r.ptr - b));
}

/// Shortest text that parses back to the same double (std::to_chars).
void put_double(std::string& o, double v, const char* what, size_t index) {
  if (!std::isfinite(v)) {
    throw Error("bad_value", std::string("cannot write a non-finite ") + what + " (annotation index " +
                                 std::to_string(index) + ")");
  }
  char b[32];
  const auto r = std::to_chars(b, b + sizeof(b), v);
  o.append(b, static_cast<size_t>(r.ptr - b));
}

void put_string(std::string& o, std::string_view s) {
  static const char* const kHex = "0123456789abcdef";
  o += '"';
  size_t run = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    o.append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"': o += "\\\""; break;
      case '\\': o += "\\\\"; break;
      case '\n': o += "\\n"; break;
      case '\r': o += "\\r"; break;
      case '\t': o += "\\t"; break;
      case '\b': o += "\\b"; break;
      case '\f': o += "\\f"; break;
      default:
        o += "\\u00";
        o += kHex[c >> 4];
        o += kHex[c & 15];
    }
  }
  o.append(s.data() + run, s.size() - run);
  o += '"';
}

void put_extra(std::string& o, const CocoDataset& ds, StrRef extra, const WriteOptions& opt) {
  if (!opt.write_extra_fields || extra.size == 0) return;
  o += ',';
  o.append(ds.str(extra));
}

void write_all(const CocoDataset& ds, const WriteOptions& opt, Sink& sink) {
  std::string& o = sink.out();
  o += '{';
  if (opt.write_extra_fields && ds.top_level_extra.size > 0) {
    o.append(ds.str(ds.top_level_extra));
    o += ",\n";
  }
  o += "\"images\":[";
  for (size_t i = 0; i < ds.images.size(); ++i) {
    const ImageRecord& im = ds.images[i];
    o += i ? ",\n{\"id\":" : "\n{\"id\":";
    put_int(o, im.id);
    o += ",\"width\":";
    put_int(o, im.width);
    o += ",\"height\":";
    put_int(o, im.height);
    o += ",\"file_name\":";
    put_string(o, ds.str(im.file_name));
    put_extra(o, ds, im.extra, opt);
    o += '}';
    sink.maybe_flush();
  }
  o += ds.images.empty() ? "],\n\"annotations\":[" : "\n],\n\"annotations\":[";
  CompressedRle rle;
  for (size_t i = 0; i < ds.annotations.size(); ++i) {
    const AnnotationRecord& a = ds.annotations[i];
    o += i ? ",\n{\"id\":" : "\n{\"id\":";
    put_int(o, a.id);
    o += ",\"image_id\":";
    put_int(o, a.image_id);
    o += ",\"category_id\":";
    put_int(o, a.category_id);
    const bool replaced = opt.segmentation_override && opt.segmentation_override(ds, i, rle);
    if (replaced) {
      o += ",\"segmentation\":{\"size\":[";
      put_uint(o, rle.height);
      o += ',';
      put_uint(o, rle.width);
      o += "],\"counts\":";
      put_string(o, rle.counts);
      o += '}';
    } else {
      switch (a.seg_kind) {
        case SegmentationKind::kNone: break;
        case SegmentationKind::kPolygons: {
          o += ",\"segmentation\":[";
          for (size_t k = 0; k < a.seg_count; ++k) {
            if (k) o += ',';
            o += '[';
            const Span<const double> xy = ds.polygon(a, k);
            for (size_t j = 0; j < xy.size(); ++j) {
              if (j) o += ',';
              put_double(o, xy[j], "polygon coordinate", i);
            }
            o += ']';
          }
          o += ']';
          break;
        }
        case SegmentationKind::kRleCounts:
        case SegmentationKind::kRleString: {
          o += ",\"segmentation\":{\"size\":[";
          put_uint(o, a.rle_height);
          o += ',';
          put_uint(o, a.rle_width);
          o += "],\"counts\":";
          if (a.seg_kind == SegmentationKind::kRleString) {
            put_string(o, ds.rle_string(a));
          } else {
            o += '[';
            const Span<const uint32_t> c = ds.counts(a);
            for (size_t j = 0; j < c.size(); ++j) {
              if (j) o += ',';
              put_uint(o, c[j]);
            }
            o += ']';
          }
          o += '}';
          break;
        }
      }
    }
    if (a.has_area) {
      o += ",\"area\":";
      put_double(o, a.area, "area", i);
    }
    if (a.has_bbox) {
      o += ",\"bbox\":[";
      for (int j = 0; j < 4; ++j) {
        if (j) o += ',';
        put_double(o, a.bbox[static_cast<size_t>(j)], "bbox value", i);
      }
      o += ']';
    }
    if (a.has_iscrowd) o += a.iscrowd ? ",\"iscrowd\":1" : ",\"iscrowd\":0";
    put_extra(o, ds, a.extra, opt);
    o += '}';
    sink.maybe_flush();
  }
  o += ds.annotations.empty() ? "],\n\"categories\":[" : "\n],\n\"categories\":[";
  for (size_t i = 0; i < ds.categories.size(); ++i) {
    const CategoryRecord& c = ds.categories[i];
    o += i ? ",\n{\"id\":" : "\n{\"id\":";
    put_int(o, c.id);
    o += ",\"name\":";
    put_string(o, ds.str(c.name));
    if (c.has_supercategory) {
      o += ",\"supercategory\":";
      put_string(o, ds.str(c.supercategory));
    }
    put_extra(o, ds, c.extra, opt);
    o += '}';
  }
  o += ds.categories.empty() ? "]}\n" : "\n]}\n";
}

}  // namespace

std::string write_coco_string(const CocoDataset& dataset, const WriteOptions& options) {
  Sink sink(nullptr, "");
  write_all(dataset, options, sink);
  return std::move(sink.out());
}

void write_coco(const CocoDataset& dataset, const std::string& path, const WriteOptions& options) {
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) {
    throw Error("io_error", std::string("cannot create temporary file: ") + std::strerror(errno), file_location(tmp));
  }
  try {
    Sink sink(f, tmp);
    write_all(dataset, options, sink);
    sink.flush();
    if (std::fflush(f) != 0) {
      throw Error("io_error", std::string("flush failed: ") + std::strerror(errno), file_location(tmp));
    }
    if (options.fsync && ::fsync(fileno(f)) != 0) {
      throw Error("io_error", std::string("fsync failed: ") + std::strerror(errno), file_location(tmp));
    }
    std::FILE* done = f;
    f = nullptr;
    if (std::fclose(done) != 0) {
      throw Error("io_error", std::string("close failed: ") + std::strerror(errno), file_location(tmp));
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
      throw Error("io_error", std::string("cannot rename the temporary file over the target: ") +
                                  std::strerror(errno), file_location(path));
    }
  } catch (...) {
    if (f) std::fclose(f);
    std::remove(tmp.c_str());
    throw;
  }
}

}  // namespace pasteflow::io
