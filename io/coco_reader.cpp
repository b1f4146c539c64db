// COCO reader: block-streamed, element-batched simdjson On-Demand parsing.
//
// The file is read in blocks (LoadOptions::block_size). A small hand-written
// state machine walks the top-level object; the three big arrays (images,
// annotations, categories) are cut into complete elements by the scanner in
// json_scan.hpp, and every run of complete elements in the buffer is parsed by
// one On-Demand iterate() call: the byte before the first element becomes '['
// and the byte after the last one ']' (both restored afterwards), so the batch
// is an ordinary JSON array. Incomplete tails are carried to the next block.
// References (image_id, category_id) and duplicate ids are checked after the
// whole file is read, so the top-level keys may come in any order.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <simdjson.h>

#include "id_table.hpp"
#include "json_scan.hpp"
#include "pasteflow/core/short_number.hpp"
#include "pasteflow/io/coco.hpp"

namespace pasteflow::io {
namespace detail {
void group_by_image(CocoDataset& ds);
}

namespace {

Location file_location(const std::string& file) {
  Location loc;
  loc.file = file;
  return loc;
}

namespace od = simdjson::ondemand;
using detail::find_value_end;
using detail::is_json_ws;

// Readable bytes after the valid data: simdjson's padding plus one chunk of
// the scanner.
constexpr size_t kPad = simdjson::SIMDJSON_PADDING + 64;

// ------------------------------------------------------------------ sources
class Source {
 public:
  virtual ~Source() = default;
  /// Reads up to n bytes; 0 at end of input.
  virtual size_t read(char* dst, size_t n) = 0;
  virtual uint64_t size() const = 0;
};

class FileSource final : public Source {
 public:
  explicit FileSource(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) {
      throw InputError("io_error", std::string("cannot open COCO file: ") + std::strerror(errno), file_location(path));
    }
    struct stat st {};
    if (::fstat(fd_, &st) == 0 && S_ISDIR(st.st_mode)) {
      ::close(fd_);
      throw InputError("io_error", "cannot read COCO file: it is a directory", file_location(path));
    }
    size_ = ::fstat(fd_, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
#ifdef POSIX_FADV_SEQUENTIAL
    ::posix_fadvise(fd_, 0, 0, POSIX_FADV_SEQUENTIAL);
#endif
  }
  ~FileSource() override { ::close(fd_); }
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;

  size_t read(char* dst, size_t n) override {
    while (true) {
      const ssize_t r = ::read(fd_, dst, n);
      if (r >= 0) return static_cast<size_t>(r);
      if (errno == EINTR) continue;
      throw InputError("io_error", std::string("read failed: ") + std::strerror(errno), file_location(path_));
    }
  }
  uint64_t size() const override { return size_; }

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

class MemorySource final : public Source {
 public:
  explicit MemorySource(std::string_view s) : s_(s) {}
  size_t read(char* dst, size_t n) override {
    const size_t k = std::min(n, s_.size() - pos_);
    std::memcpy(dst, s_.data() + pos_, k);
    pos_ += k;
    return k;
  }
  uint64_t size() const override { return s_.size(); }

 private:
  std::string_view s_;
  size_t pos_ = 0;
};

// ------------------------------------------------------------------ reader
enum class Kind { kImages = 0, kAnnotations = 1, kCategories = 2 };
const char* const kArrayName[] = {"images", "annotations", "categories"};
const char* const kRecordName[] = {"image", "annotation", "category"};

/// First problem of the record being parsed (reported when the record ends,
/// once its id is known).
struct Problem {
  const char* reason = nullptr;
  std::string message;
  std::string subpath;  ///< appended to "annotations[i]"
  const char* at = nullptr;  ///< position in the buffer, nullptr = record start
};

std::string_view rtrim(std::string_view s) {
  while (!s.empty() && is_json_ws(s.back())) s.remove_suffix(1);
  return s;
}

/// Key length up to the closing quote; npos when the key has escapes (then
/// it is treated as an unknown key and kept verbatim).
size_t key_length(const char* k) {
  size_t n = 0;
  while (k[n] != '"') {
    if (k[n] == '\\') return std::string_view::npos;
    ++n;
  }
  return n;
}

bool key_is(const char* k, size_t n, const char* lit, size_t lit_n) {
  return n == lit_n && std::memcmp(k, lit, n) == 0;
}
#define PF_KEY(k, n, lit) key_is(k, n, lit, sizeof(lit) - 1)

const char* type_name(od::value& v) {
  od::json_type t;
  if (v.type().get(t)) return "invalid";
  switch (t) {
    case od::json_type::array: return "an array";
    case od::json_type::object: return "an object";
    case od::json_type::number: return "a number";
    case od::json_type::string: return "a string";
    case od::json_type::boolean: return "a boolean";
    case od::json_type::null: return "null";
  }
  return "invalid";
}

/// Sum of the run lengths of a pycocotools compressed RLE string (the
/// decoding of maskApi.c rleFrString); false when the string is not a valid
/// encoding.
bool compressed_rle_sum(std::string_view s, uint64_t& sum, std::string& why) {
  sum = 0;
  int64_t prev2 = 0, prev1 = 0;
  size_t m = 0, p = 0;
  while (p < s.size()) {
    int64_t x = 0;
    int k = 0;
    bool more = true;
    while (more) {
      if (p >= s.size()) {
        why = "compressed RLE string ends inside a count";
        return false;
      }
      const int c = static_cast<unsigned char>(s[p]) - 48;
      if (c < 0 || c > 63) {
        why = "compressed RLE string has a character outside '0'..'o'";
        return false;
      }
      if (k >= 12) {  // as mask::from_string
        why = "compressed RLE count is too long";
        return false;
      }
      x |= static_cast<int64_t>(static_cast<uint64_t>(c & 0x1f) << (5 * k));  // unsigned: a 13th character reaches bit 64
      more = (c & 0x20) != 0;
      ++p;
      ++k;
      if (!more && (c & 0x10) && 5 * k < 64) x |= static_cast<int64_t>(~uint64_t(0) << (5 * k));
    }
    if (m > 2) x += prev2;
    if (x < 0) {
      why = "compressed RLE decodes to a negative count";
      return false;
    }
    if (x > static_cast<int64_t>(std::numeric_limits<uint32_t>::max())) {
      why = "compressed RLE count " + std::to_string(x) + " is beyond 2^32-1";
      return false;
    }
    sum += static_cast<uint64_t>(x);
    prev2 = prev1;
    prev1 = x;
    ++m;
  }
  return true;
}

class Reader {
 public:
  Reader(Source& src, std::string name, const LoadOptions& options)
      : src_(src), name_(std::move(name)), opt_(options) {}

  CocoDataset run();

 private:
  // --- buffer --------------------------------------------------------------
  char* buf() { return buf_.get(); }
  uint64_t offset_of(const char* p) const { return base_ + static_cast<uint64_t>(p - buf_.get()); }
  /// Drops bytes before keep_from, reads more. Returns the shift applied to
  /// positions (subtract it) via `shift`; false when nothing new was read.
  bool refill(size_t keep_from, size_t& shift);
  /// Skips whitespace (refilling); returns the next char or 0 at end of input.
  char skip_ws(size_t& pos);
  /// Ensures the value starting at pos is complete in the buffer; returns its end.
  size_t complete_value(size_t& pos);

  // --- errors ---------------------------------------------------------------
  [[noreturn]] void malformed(const std::string& message, uint64_t offset, const std::string& path = {}) const;
  [[noreturn]] void json_fail(simdjson::error_code e, const char* fallback_at) const;
  std::string element_path() const {
    return std::string(kArrayName[static_cast<int>(kind_)]) + "[" + std::to_string(elem_) + "]";
  }
  /// Marks known member `which` (key k, length n) as seen; a second
  /// occurrence records "duplicate_field" and returns false.
  bool first_occurrence(Problem& p, unsigned& seen, int which, const char* k, size_t n) const {
    if (seen & (1u << which)) {
      set_problem(p, "duplicate_field", "field '" + std::string(k, n) + "' appears twice", "." + std::string(k, n),
                  k - 1);
      return false;
    }
    seen |= 1u << which;
    return true;
  }

  void set_problem(Problem& p, const char* reason, std::string message, std::string subpath, const char* at) const {
    if (p.reason) return;
    p.reason = reason;
    p.message = std::move(message);
    p.subpath = std::move(subpath);
    p.at = at;
  }
  /// Reports a bad record: throws under kStrict, counts it under kSkip.
  void report(const char* reason, const std::string& message, const std::string& path, int64_t offset,
              const std::string& record);
  /// Reports `p` for the current element; true when the record must be dropped.
  bool finish(Problem& p, bool has_id, int64_t id);

  // --- top level and arrays --------------------------------------------------
  void stream_array(size_t& pos);
  void parse_batch();
  void parse_image(od::value& v);
  void parse_category(od::value& v);
  void parse_annotation(od::value& v);
  void parse_segmentation(od::value& v, AnnotationRecord& a, Problem& p, const char* at);
  void parse_rle(od::value& v, AnnotationRecord& a, Problem& p, const char* at);
  void reserve_estimate(uint64_t bytes_done);
  void resolve();
  void compact_pools();

  // --- value helpers ---------------------------------------------------------
  bool read_int(od::value& v, int64_t& out, Problem& p, const char* field, const char* at);
  bool read_double(od::value& v, double& out, Problem& p, const std::string& field, const char* at);
  bool read_string(od::value& v, std::string_view& out, Problem& p, const char* field, const char* at);
  /// Validates an unknown member's value completely and appends the member's
  /// raw text to extra_ when extras are kept.
  void take_extra(const char* key, od::value& v);
  void walk(od::value& v, int depth);

  Source& src_;
  std::string name_;
  LoadOptions opt_;
  CocoDataset ds_;

  std::unique_ptr<char[]> buf_;
  size_t cap_ = 0;
  size_t len_ = 0;
  uint64_t base_ = 0;
  bool eof_ = false;

  od::parser parser_;
  mutable od::document doc_;
  std::vector<std::pair<size_t, size_t>> ranges_;  // complete elements of the batch
  Kind kind_ = Kind::kImages;
  uint32_t elem_ = 0;          // element index within the current array
  uint32_t batch_first_ = 0;   // element index of ranges_[0]
  std::string extra_;          // raw members of the current record
  std::string top_extra_;
  bool reserved_ = false;
  size_t batch_bytes_ = 0;  // bytes per On-Demand iterate() call (set by run())

  std::vector<RecordSource> src_images_, src_categories_, src_annotations_;
  std::vector<int64_t> skipped_images_;  // ids of images dropped under kSkip
};

bool Reader::refill(size_t keep_from, size_t& shift) {
  shift = 0;
  if (eof_) return false;
  const size_t keep = len_ - keep_from;
  if (keep_from > 0) {
    std::memmove(buf(), buf() + keep_from, keep);
    base_ += keep_from;
    len_ = keep;
    shift = keep_from;
  }
  if (len_ * 2 > cap_) {  // a record bigger than half the buffer: grow
    const size_t new_cap = cap_ * 2;
    std::unique_ptr<char[]> nb(new char[new_cap + kPad]);
    std::memcpy(nb.get(), buf(), len_);
    buf_ = std::move(nb);
    cap_ = new_cap;
  }
  const size_t before = len_;
  while (len_ < cap_) {
    const size_t n = src_.read(buf() + len_, cap_ - len_);
    if (n == 0) {
      eof_ = true;
      break;
    }
    len_ += n;
  }
  std::memset(buf() + len_, 0, kPad);  // defined bytes for the scanner's over-reads
  return len_ > before;
}

char Reader::skip_ws(size_t& pos) {
  while (true) {
    while (pos < len_ && is_json_ws(buf()[pos])) ++pos;
    if (pos < len_) return buf()[pos];
    size_t shift;
    if (!refill(pos, shift)) return 0;
    pos -= shift;
  }
}

size_t Reader::complete_value(size_t& pos) {
  while (true) {
    const char* e = find_value_end(buf() + pos, buf() + len_, eof_);
    if (e) return static_cast<size_t>(e - buf());
    size_t shift;
    if (!refill(pos, shift)) malformed("unexpected end of file inside a value", offset_of(buf() + pos));
    pos -= shift;
  }
}

void Reader::malformed(const std::string& message, uint64_t offset, const std::string& path) const {
  throw InputError("malformed_json", "malformed JSON: " + message,
                   Location{name_, path, static_cast<int64_t>(offset), "", ""});
}

void Reader::json_fail(simdjson::error_code e, const char* fallback_at) const {
  const char* loc = nullptr;
  if (doc_.current_location().get(loc) != simdjson::SUCCESS || loc == nullptr) loc = fallback_at;
  const uint64_t off = loc ? offset_of(loc) : base_ + ranges_[elem_ - batch_first_].first;
  malformed(simdjson::error_message(e), off, element_path());
}

void Reader::report(const char* reason, const std::string& message, const std::string& path, int64_t offset,
                    const std::string& record) {
  InputError err(reason, message, Location{name_, path, offset, record, ""});
  if (opt_.policy == ErrorPolicy::kStrict) throw err;
  ds_.skipped.add(err);
}

bool Reader::finish(Problem& p, bool has_id, int64_t id) {
  if (!p.reason) return false;
  const int k = static_cast<int>(kind_);
  const uint64_t off = p.at ? offset_of(p.at) : base_ + ranges_[elem_ - batch_first_].first;
  const std::string record =
      has_id ? std::string(kRecordName[k]) + " id " + std::to_string(id) : std::string(kRecordName[k]) + " without id";
  report(p.reason, p.message, element_path() + p.subpath, static_cast<int64_t>(off), record);
  return true;
}

// ------------------------------------------------------------------ values
bool Reader::read_int(od::value& v, int64_t& out, Problem& p, const char* field, const char* at) {
  const simdjson::error_code e = v.get_int64().get(out);
  if (e == simdjson::SUCCESS) return true;
  if (e == simdjson::INCORRECT_TYPE || e == simdjson::NUMBER_OUT_OF_RANGE || e == simdjson::NUMBER_ERROR) {
    if (e == simdjson::NUMBER_ERROR) {
      const std::string_view tok = rtrim(v.raw_json_token());
      if (!detail::json_number_grammar(tok.data(), tok.size())) json_fail(e, at);
    }
    set_problem(p, "wrong_type", std::string("'") + field + "' must be an integer, got " + type_name(v),
                std::string(".") + field, at);
    return false;
  }
  json_fail(e, at);
}

bool Reader::read_double(od::value& v, double& out, Problem& p, const std::string& field, const char* at) {
  const simdjson::error_code e = v.get_double().get(out);
  if (e == simdjson::SUCCESS) {
    if (std::isfinite(out)) return true;
    set_problem(p, "bad_value", "'" + field + "' is not a finite number", "." + field, at);
    return false;
  }
  if (e == simdjson::INCORRECT_TYPE) {
    set_problem(p, "wrong_type", "'" + field + "' must be a number, got " + type_name(v), "." + field, at);
    return false;
  }
  if (e == simdjson::NUMBER_ERROR || e == simdjson::NUMBER_OUT_OF_RANGE) {
    const std::string_view tok = rtrim(v.raw_json_token());
    if (!detail::json_number_grammar(tok.data(), tok.size())) json_fail(e, at);
    set_problem(p, "bad_value", "'" + field + "' is not a finite double: " + std::string(tok), "." + field, at);
    return false;
  }
  json_fail(e, at);
}

bool Reader::read_string(od::value& v, std::string_view& out, Problem& p, const char* field, const char* at) {
  const simdjson::error_code e = v.get_string().get(out);
  if (e == simdjson::SUCCESS) return true;
  if (e == simdjson::INCORRECT_TYPE) {
    set_problem(p, "wrong_type", std::string("'") + field + "' must be a string, got " + type_name(v),
                std::string(".") + field, at);
    return false;
  }
  json_fail(e, at);
}

void Reader::walk(od::value& v, int depth) {
  od::json_type t;
  if (auto e = v.type().get(t)) json_fail(e, nullptr);
  switch (t) {
    case od::json_type::array: {
      od::array a;
      if (auto e = v.get_array().get(a)) json_fail(e, nullptr);
      for (auto r : a) {
        od::value x;
        if (auto e = std::move(r).get(x)) json_fail(e, nullptr);
        walk(x, depth + 1);
      }
      break;
    }
    case od::json_type::object: {
      od::object o;
      if (auto e = v.get_object().get(o)) json_fail(e, nullptr);
      for (auto r : o) {
        od::field f;
        if (auto e = std::move(r).get(f)) json_fail(e, nullptr);
        std::string_view k;
        if (auto e = f.unescaped_key().get(k)) json_fail(e, nullptr);
        od::value x = f.value();
        walk(x, depth + 1);
      }
      break;
    }
    case od::json_type::number: {
      double d;
      const std::string_view tok = rtrim(v.raw_json_token());
      if (v.get_double().get(d) != simdjson::SUCCESS && !detail::json_number_grammar(tok.data(), tok.size())) {
        json_fail(simdjson::NUMBER_ERROR, tok.data());
      }
      break;
    }
    case od::json_type::string: {
      std::string_view s;
      if (auto e = v.get_string().get(s)) json_fail(e, nullptr);
      break;
    }
    case od::json_type::boolean: {
      bool b;
      if (auto e = v.get_bool().get(b)) json_fail(e, nullptr);
      break;
    }
    case od::json_type::null: {
      bool n = false;
      if (v.is_null().get(n) != simdjson::SUCCESS || !n) json_fail(simdjson::N_ATOM_ERROR, nullptr);
      break;
    }
  }
}

void Reader::take_extra(const char* key, od::value& v) {
  od::json_type t;
  if (auto e = v.type().get(t)) json_fail(e, key);
  const char* end = nullptr;
  if (t == od::json_type::array || t == od::json_type::object) {
    walk(v, 0);
    if (opt_.keep_extra_fields) {
      // After the walk the iterator stands on the token that follows the value.
      const char* next = nullptr;
      if (auto e = doc_.current_location().get(next)) json_fail(e, key);
      end = key + rtrim(std::string_view(key, static_cast<size_t>(next - key))).size();
    }
  } else {
    const std::string_view tok = rtrim(v.raw_json_token());
    end = tok.data() + tok.size();
    walk(v, 0);
  }
  if (opt_.keep_extra_fields) {
    if (!extra_.empty()) extra_ += ',';
    extra_.append(key - 1, static_cast<size_t>(end - (key - 1)));
  }
}

// ------------------------------------------------------------------ records
void Reader::parse_image(od::value& v) {
  Problem p;
  ImageRecord im;
  const size_t str_mark = ds_.strings.size();
  extra_.clear();
  int64_t w = 0, h = 0;
  const char* w_at = nullptr;
  const char* h_at = nullptr;
  unsigned seen = 0;
  bool id_ok = false;
  od::object obj;
  if (v.get_object().get(obj) != simdjson::SUCCESS) {
    set_problem(p, "wrong_type", std::string("image must be an object, got ") + type_name(v), "", nullptr);
  } else {
    for (auto r : obj) {
      od::field f;
      if (auto e = std::move(r).get(f)) json_fail(e, nullptr);
      const char* k = f.key().raw();
      const size_t n = key_length(k);
      od::value val = f.value();
      int which = -1;
      if (PF_KEY(k, n, "id")) which = 0;
      else if (PF_KEY(k, n, "width")) which = 1;
      else if (PF_KEY(k, n, "height")) which = 2;
      else if (PF_KEY(k, n, "file_name")) which = 3;
      if (which >= 0 && !first_occurrence(p, seen, which, k, n)) continue;
      switch (which) {
        case 0: id_ok = read_int(val, im.id, p, "id", k - 1); break;
        case 1:
          w_at = k - 1;
          read_int(val, w, p, "width", k - 1);
          break;
        case 2:
          h_at = k - 1;
          read_int(val, h, p, "height", k - 1);
          break;
        case 3: {
          std::string_view s;
          if (read_string(val, s, p, "file_name", k - 1)) {
            if (s.empty()) {
              set_problem(p, "bad_value", "'file_name' is empty", ".file_name", k - 1);
            } else {
              im.file_name = ds_.add_string(s);
            }
          }
          break;
        }
        default: take_extra(k, val); break;
      }
    }
    static const char* const kReq[] = {"id", "width", "height", "file_name"};
    for (int i = 0; i < 4; ++i) {
      if (!(seen & (1u << i))) {
        set_problem(p, "missing_field", std::string("image lacks required field '") + kReq[i] + "'", "", nullptr);
      }
    }
    // Masks are rasterised at the image's size: a zero or huge size would
    // turn into wrong masks or overflowing pixel counts later.
    if ((seen & 2u) && (w <= 0 || w > std::numeric_limits<int32_t>::max())) {
      set_problem(p, "bad_image_size", "'width' must be a positive 32-bit integer, got " + std::to_string(w),
                  ".width", w_at);
    }
    if ((seen & 4u) && (h <= 0 || h > std::numeric_limits<int32_t>::max())) {
      set_problem(p, "bad_image_size", "'height' must be a positive 32-bit integer, got " + std::to_string(h),
                  ".height", h_at);
    }
    constexpr int64_t kMax32 = std::numeric_limits<int32_t>::max();
    const bool size_ok = w > 0 && h > 0 && w <= kMax32 && h <= kMax32;  // then w * h < 2^62: no overflow
    if (opt_.max_pixels > 0 && size_ok && w * h > opt_.max_pixels) {
      set_problem(p, "pixel_limit",
                  "image size " + std::to_string(w) + "x" + std::to_string(h) + " = " + std::to_string(w * h) +
                      " pixels exceeds the limit of " + std::to_string(opt_.max_pixels) + " (max_pixels)",
                  ".width", w_at);
    }
  }
  if (finish(p, id_ok, im.id)) {
    ds_.strings.resize(str_mark);
    if (id_ok) skipped_images_.push_back(im.id);
    return;
  }
  im.width = static_cast<int32_t>(w);
  im.height = static_cast<int32_t>(h);
  if (opt_.keep_extra_fields && !extra_.empty()) im.extra = ds_.add_string(extra_);
  ds_.images.push_back(im);
  src_images_.push_back({base_ + ranges_[elem_ - batch_first_].first, elem_, im.id});
}

void Reader::parse_category(od::value& v) {
  Problem p;
  CategoryRecord c;
  const size_t str_mark = ds_.strings.size();
  extra_.clear();
  unsigned seen = 0;
  bool id_ok = false;
  od::object obj;
  if (v.get_object().get(obj) != simdjson::SUCCESS) {
    set_problem(p, "wrong_type", std::string("category must be an object, got ") + type_name(v), "", nullptr);
  } else {
    for (auto r : obj) {
      od::field f;
      if (auto e = std::move(r).get(f)) json_fail(e, nullptr);
      const char* k = f.key().raw();
      const size_t n = key_length(k);
      od::value val = f.value();
      int which = -1;
      if (PF_KEY(k, n, "id")) which = 0;
      else if (PF_KEY(k, n, "name")) which = 1;
      else if (PF_KEY(k, n, "supercategory")) which = 2;
      if (which >= 0 && !first_occurrence(p, seen, which, k, n)) continue;
      switch (which) {
        case 0: id_ok = read_int(val, c.id, p, "id", k - 1); break;
        case 1: {
          std::string_view s;
          if (read_string(val, s, p, "name", k - 1)) c.name = ds_.add_string(s);
          break;
        }
        case 2: {
          od::json_type t;
          if (auto e = val.type().get(t)) json_fail(e, k);
          if (t == od::json_type::string) {
            std::string_view s;
            if (read_string(val, s, p, "supercategory", k - 1)) {
              c.supercategory = ds_.add_string(s);
              c.has_supercategory = true;
            }
          } else {
            take_extra(k, val);  // null or anything else: kept verbatim
          }
          break;
        }
        default: take_extra(k, val); break;
      }
    }
    if (!(seen & 1u)) set_problem(p, "missing_field", "category lacks required field 'id'", "", nullptr);
    if (!(seen & 2u)) set_problem(p, "missing_field", "category lacks required field 'name'", "", nullptr);
  }
  if (finish(p, id_ok, c.id)) {
    ds_.strings.resize(str_mark);
    return;
  }
  if (opt_.keep_extra_fields && !extra_.empty()) c.extra = ds_.add_string(extra_);
  ds_.categories.push_back(c);
  src_categories_.push_back({base_ + ranges_[elem_ - batch_first_].first, elem_, c.id});
}

void Reader::parse_segmentation(od::value& v, AnnotationRecord& a, Problem& p, const char* at) {
  od::json_type t;
  if (auto e = v.type().get(t)) json_fail(e, at);
  if (t == od::json_type::null) {
    bool n;
    if (v.is_null().get(n) != simdjson::SUCCESS || !n) json_fail(simdjson::N_ATOM_ERROR, at);
    a.seg_kind = SegmentationKind::kNone;
    return;
  }
  if (t == od::json_type::object) {
    parse_rle(v, a, p, at);
    return;
  }
  if (t != od::json_type::array) {
    set_problem(p, "wrong_type",
                std::string("'segmentation' must be a list of polygons or an RLE object, got ") + type_name(v),
                ".segmentation", at);
    return;
  }
  od::array parts;
  if (auto e = v.get_array().get(parts)) json_fail(e, at);
  a.seg_kind = SegmentationKind::kPolygons;
  a.seg_begin = ds_.part_offsets.size() - 1;
  uint32_t k = 0;
  std::vector<double>& coords = ds_.coords;
  for (auto r : parts) {
    od::value part;
    if (auto e = std::move(r).get(part)) json_fail(e, at);
    const char* part_at = nullptr;
    if (part.current_location().get(part_at) != simdjson::SUCCESS) part_at = at;
    od::array xs;
    if (part.get_array().get(xs) != simdjson::SUCCESS) {
      set_problem(p, "wrong_type",
                  std::string("polygon must be a list of numbers, got ") + type_name(part),
                  ".segmentation[" + std::to_string(k) + "]", part_at);
      return;
    }
    const size_t n0 = coords.size();
    size_t j = 0;
    for (auto xr : xs) {
      od::value x;
      if (auto e = std::move(xr).get(x)) json_fail(e, part_at);
      double d;
      const simdjson::error_code e = x.get_double().get(d);
      if (e != simdjson::SUCCESS || std::fabs(d) > kMaxCoordinate) {
        const char* x_at = e == simdjson::SUCCESS ? x.raw_json_token().data() : nullptr;  // the number's start
        if (x_at == nullptr && x.current_location().get(x_at) != simdjson::SUCCESS) x_at = part_at;
        const std::string field = "segmentation[" + std::to_string(k) + "][" + std::to_string(j) + "]";
        if (e != simdjson::SUCCESS) {
          read_double(x, d, p, field, x_at);
        } else {
          set_problem(p, "polygon_range",
                      "polygon coordinate " + short_number(d) + " is beyond +-" + short_number(kMaxCoordinate),
                      "." + field, x_at);
        }
        return;
      }
      coords.push_back(d);
      ++j;
    }
    const size_t n = coords.size() - n0;
    if (n % 2 != 0) {
      set_problem(p, "odd_polygon", "polygon has an odd number of values (" + std::to_string(n) + ")",
                  ".segmentation[" + std::to_string(k) + "]", part_at);
      return;
    }
    if (n < 6) {
      set_problem(p, "short_polygon",
                  "polygon has " + std::to_string(n) + " values; at least 6 (3 points) are required" +
                      (n == 4 ? " (4 values would be read as a box by pycocotools)" : ""),
                  ".segmentation[" + std::to_string(k) + "]", part_at);
      return;
    }
    ds_.part_offsets.push_back(coords.size());
    ++k;
  }
  a.seg_count = k;
}

void Reader::parse_rle(od::value& v, AnnotationRecord& a, Problem& p, const char* at) {
  od::object obj;
  if (auto e = v.get_object().get(obj)) json_fail(e, at);
  bool has_size = false, has_counts = false, counts_is_string = false;
  int64_t hw[2] = {0, 0};
  uint64_t sum = 0;
  uint64_t first = 0;
  uint32_t count = 0;
  for (auto r : obj) {
    od::field f;
    if (auto e = std::move(r).get(f)) json_fail(e, at);
    const char* k = f.key().raw();
    const size_t n = key_length(k);
    od::value val = f.value();
    if (PF_KEY(k, n, "size")) {
      has_size = true;
      od::array arr;
      if (val.get_array().get(arr) != simdjson::SUCCESS) {
        set_problem(p, "wrong_type", std::string("RLE 'size' must be [h, w], got ") + type_name(val),
                    ".segmentation.size", k - 1);
        return;
      }
      size_t i = 0;
      for (auto xr : arr) {
        od::value x;
        if (auto e = std::move(xr).get(x)) json_fail(e, k);
        int64_t q = 0;
        if (!read_int(x, q, p, "segmentation.size", k - 1)) return;
        if (i < 2) hw[i] = q;
        ++i;
      }
      if (i != 2 || hw[0] < 0 || hw[1] < 0 || hw[0] > std::numeric_limits<int32_t>::max() ||
          hw[1] > std::numeric_limits<int32_t>::max()) {
        set_problem(p, "bad_value", "RLE 'size' must be [h, w] with two non-negative integers",
                    ".segmentation.size", k - 1);
        return;
      }
    } else if (PF_KEY(k, n, "counts")) {
      has_counts = true;
      od::json_type t;
      if (auto e = val.type().get(t)) json_fail(e, k);
      if (t == od::json_type::string) {
        std::string_view s;
        if (!read_string(val, s, p, "segmentation.counts", k - 1)) return;
        std::string why;
        if (!compressed_rle_sum(s, sum, why)) {
          set_problem(p, "bad_value", why, ".segmentation.counts", k - 1);
          return;
        }
        if (s.size() > std::numeric_limits<uint32_t>::max()) {
          set_problem(p, "bad_value", "compressed RLE string too long", ".segmentation.counts", k - 1);
          return;
        }
        first = ds_.add_string(s).begin;
        count = static_cast<uint32_t>(s.size());
        counts_is_string = true;
      } else if (t == od::json_type::array) {
        od::array arr;
        if (auto e = val.get_array().get(arr)) json_fail(e, k);
        first = ds_.rle_counts.size();
        size_t j = 0;
        for (auto xr : arr) {
          od::value x;
          if (auto e = std::move(xr).get(x)) json_fail(e, k);
          uint64_t c = 0;
          const simdjson::error_code e = x.get_uint64().get(c);
          if (e != simdjson::SUCCESS || c > std::numeric_limits<uint32_t>::max()) {
            const char* x_at = nullptr;
            if (x.current_location().get(x_at) != simdjson::SUCCESS) x_at = k - 1;
            if (e == simdjson::SUCCESS || e == simdjson::NUMBER_OUT_OF_RANGE || x.is_negative()) {
              set_problem(p, "bad_value", "RLE counts must be non-negative 32-bit integers",
                          ".segmentation.counts[" + std::to_string(j) + "]", x_at);
            } else {
              int64_t dummy;
              read_int(x, dummy, p, ("segmentation.counts[" + std::to_string(j) + "]").c_str(), x_at);
            }
            return;
          }
          ds_.rle_counts.push_back(static_cast<uint32_t>(c));
          sum += c;
          ++j;
        }
        count = static_cast<uint32_t>(j);
      } else {
        set_problem(p, "wrong_type", std::string("RLE 'counts' must be a list or a string, got ") + type_name(val),
                    ".segmentation.counts", k - 1);
        return;
      }
    } else {
      walk(val, 0);  // other members of an RLE object: validated, not kept
    }
  }
  if (!has_size || !has_counts) {
    set_problem(p, "missing_field",
                std::string("RLE segmentation lacks '") + (has_size ? "counts" : "size") + "'", ".segmentation", at);
    return;
  }
  const uint64_t area = static_cast<uint64_t>(hw[0]) * static_cast<uint64_t>(hw[1]);
  if (sum != area) {
    set_problem(p, "rle_sum",
                "RLE counts sum to " + std::to_string(sum) + " but size " + std::to_string(hw[0]) + "x" +
                    std::to_string(hw[1]) + " has " + std::to_string(area) + " pixels",
                ".segmentation.counts", at);
    return;
  }
  a.seg_kind = counts_is_string ? SegmentationKind::kRleString : SegmentationKind::kRleCounts;
  a.rle_height = static_cast<uint32_t>(hw[0]);
  a.rle_width = static_cast<uint32_t>(hw[1]);
  a.seg_begin = first;
  a.seg_count = count;
}

void Reader::parse_annotation(od::value& v) {
  Problem p;
  AnnotationRecord a;
  const size_t coords_mark = ds_.coords.size(), parts_mark = ds_.part_offsets.size();
  const size_t counts_mark = ds_.rle_counts.size(), str_mark = ds_.strings.size();
  extra_.clear();
  unsigned seen = 0;
  bool id_ok = false;
  od::object obj;
  if (v.get_object().get(obj) != simdjson::SUCCESS) {
    set_problem(p, "wrong_type", std::string("annotation must be an object, got ") + type_name(v), "", nullptr);
  } else {
    for (auto r : obj) {
      od::field f;
      if (auto e = std::move(r).get(f)) json_fail(e, nullptr);
      const char* k = f.key().raw();
      const size_t n = key_length(k);
      od::value val = f.value();
      int which = -1;
      switch (n) {
        case 2: if (k[0] == 'i' && k[1] == 'd') which = 0; break;
        case 4:
          if (std::memcmp(k, "bbox", 4) == 0) which = 4;
          else if (std::memcmp(k, "area", 4) == 0) which = 5;
          break;
        case 7: if (std::memcmp(k, "iscrowd", 7) == 0) which = 6; break;
        case 8: if (std::memcmp(k, "image_id", 8) == 0) which = 1; break;
        case 11: if (std::memcmp(k, "category_id", 11) == 0) which = 2; break;
        case 12: if (std::memcmp(k, "segmentation", 12) == 0) which = 3; break;
        default: break;
      }
      if (which >= 0 && !first_occurrence(p, seen, which, k, n)) continue;
      switch (which) {
        case 0: id_ok = read_int(val, a.id, p, "id", k - 1); break;
        case 1: read_int(val, a.image_id, p, "image_id", k - 1); break;
        case 2: read_int(val, a.category_id, p, "category_id", k - 1); break;
        case 3: parse_segmentation(val, a, p, k - 1); break;
        case 4: {
          od::array arr;
          if (val.get_array().get(arr) != simdjson::SUCCESS) {
            set_problem(p, "wrong_type", std::string("'bbox' must be [x, y, w, h], got ") + type_name(val), ".bbox",
                        k - 1);
            break;
          }
          size_t i = 0;
          bool ok = true;
          for (auto xr : arr) {
            od::value x;
            if (auto e = std::move(xr).get(x)) json_fail(e, k);
            double d = 0;
            if (!read_double(x, d, p, "bbox[" + std::to_string(i) + "]", k - 1)) {
              ok = false;
              break;
            }
            if (i < 4) a.bbox[i] = d;
            if (std::fabs(d) > kMaxCoordinate) {
              set_problem(p, "bad_value",
                          "'bbox[" + std::to_string(i) + "]' is " + short_number(d) + ", beyond +-" +
                              short_number(kMaxCoordinate),
                          ".bbox", k - 1);
              ok = false;
              break;
            }
            ++i;
          }
          if (!ok) break;
          if (i != 4) {
            set_problem(p, "bad_value", "'bbox' must have 4 numbers, has " + std::to_string(i), ".bbox", k - 1);
          } else if (a.bbox[2] < 0 || a.bbox[3] < 0) {
            set_problem(p, "bad_value", "'bbox' has a negative width or height", ".bbox", k - 1);
          }
          a.has_bbox = true;
          break;
        }
        case 5:
          if (read_double(val, a.area, p, "area", k - 1)) {
            if (a.area < 0) {
              set_problem(p, "bad_value", "'area' is negative", ".area", k - 1);
            } else if (a.area > kMaxCoordinate * kMaxCoordinate) {
              set_problem(p, "bad_value",
                          "'area' is " + short_number(a.area) + ", beyond " +
                              short_number(kMaxCoordinate * kMaxCoordinate),
                          ".area", k - 1);
            }
          }
          a.has_area = true;
          break;
        case 6: {
          int64_t c = 0;
          bool b = false;
          if (val.get_bool().get(b) == simdjson::SUCCESS) {
            c = b ? 1 : 0;
          } else if (!read_int(val, c, p, "iscrowd", k - 1)) {
            break;
          }
          if (c != 0 && c != 1) set_problem(p, "bad_value", "'iscrowd' must be 0 or 1", ".iscrowd", k - 1);
          a.iscrowd = static_cast<uint8_t>(c != 0);
          a.has_iscrowd = true;
          break;
        }
        default: take_extra(k, val); break;
      }
    }
    static const char* const kReq[] = {"id", "image_id", "category_id"};
    for (int i = 0; i < 3; ++i) {
      if (!(seen & (1u << i))) {
        set_problem(p, "missing_field", std::string("annotation lacks required field '") + kReq[i] + "'", "",
                    nullptr);
      }
    }
  }
  if (finish(p, id_ok, a.id)) {
    ds_.coords.resize(coords_mark);
    ds_.part_offsets.resize(parts_mark);
    ds_.rle_counts.resize(counts_mark);
    ds_.strings.resize(str_mark);
    return;
  }
  if (opt_.keep_extra_fields && !extra_.empty()) a.extra = ds_.add_string(extra_);
  ds_.annotations.push_back(a);
  src_annotations_.push_back({base_ + ranges_[elem_ - batch_first_].first, elem_, a.id});
}

// ------------------------------------------------------------------ batches
void Reader::parse_batch() {
  const size_t s0 = ranges_.front().first;
  const size_t e1 = ranges_.back().second;
  char* b = buf();
  const char save0 = b[s0 - 1], save1 = b[e1];
  b[s0 - 1] = '[';
  b[e1] = ']';
  struct Restore {
    char* b;
    size_t s0, e1;
    char c0, c1;
    ~Restore() {
      b[s0 - 1] = c0;
      b[e1] = c1;
    }
  } restore{b, s0, e1, save0, save1};

  const char* start = b + s0 - 1;
  const size_t n = e1 + 1 - (s0 - 1);
  const size_t capacity = cap_ + kPad - (s0 - 1);
  elem_ = batch_first_;
  simdjson::error_code e = parser_.iterate(start, n, capacity).get(doc_);
  if (e != simdjson::SUCCESS) {
    // Find the element simdjson rejects (stage 1: bad UTF-8, control chars).
    for (size_t k = 0; k < ranges_.size(); ++k) {
      elem_ = batch_first_ + static_cast<uint32_t>(k);
      const size_t s = ranges_[k].first;
      od::document d;
      const simdjson::error_code ek = parser_.iterate(b + s, ranges_[k].second - s, cap_ + kPad - s).get(d);
      if (ek != simdjson::SUCCESS) malformed(simdjson::error_message(ek), base_ + s, element_path());
    }
    malformed(simdjson::error_message(e), base_ + s0, element_path());
  }
  od::array arr;
  if (auto err = doc_.get_array().get(arr)) json_fail(err, start);
  size_t k = 0;
  for (auto r : arr) {
    // The scanner cut the batch into ranges_.size() records; On-Demand can
    // see more in text the scanner read differently (fuzz_coco: ranges_[k]
    // was read past its end).
    if (k >= ranges_.size()) malformed("element count mismatch in batch", base_ + s0, element_path());
    elem_ = batch_first_ + static_cast<uint32_t>(k);
    od::value v;
    if (auto err = std::move(r).get(v)) json_fail(err, b + ranges_[std::min(k, ranges_.size() - 1)].first);
    switch (kind_) {
      case Kind::kImages: parse_image(v); break;
      case Kind::kAnnotations: parse_annotation(v); break;
      case Kind::kCategories: parse_category(v); break;
    }
    ++k;
  }
  if (k != ranges_.size()) malformed("element count mismatch in batch", base_ + s0, element_path());
}

void Reader::reserve_estimate(uint64_t bytes_done) {
  // After ~1 MB of annotations, reserve the pools for the rest of the file
  // (proportionally) so that they are not copied while growing.
  if (reserved_ || bytes_done < (uint64_t(1) << 20)) return;
  reserved_ = true;
  const uint64_t total = src_.size();
  if (total <= base_) return;
  const double scale = 1.05 * static_cast<double>(total) / static_cast<double>(bytes_done);
  auto grow = [scale](auto& vec) {
    const double want = static_cast<double>(vec.size()) * scale;
    if (want > static_cast<double>(vec.capacity())) vec.reserve(static_cast<size_t>(want));
  };
  grow(ds_.coords);
  grow(ds_.part_offsets);
  grow(ds_.annotations);
  grow(src_annotations_);
}

void Reader::stream_array(size_t& pos) {
  // buf[pos] == '['
  ++pos;
  enum class St { kValueOrEnd, kValue, kSepOrEnd } st = St::kValueOrEnd;
  uint32_t index = 0;
  const uint64_t array_start = offset_of(buf() + pos);
  while (true) {
    bool done = false, batch_full = false;
    ranges_.clear();
    while (true) {
      char* b = buf();
      if (!ranges_.empty() && ranges_.back().second - ranges_.front().first >= batch_bytes_) {
        batch_full = true;
        break;
      }
      while (pos < len_ && is_json_ws(b[pos])) ++pos;
      if (pos >= len_) break;
      const char c = b[pos];
      if (st == St::kSepOrEnd) {
        if (c == ',') {
          ++pos;
          st = St::kValue;
          continue;
        }
        if (c == ']') {
          ++pos;
          done = true;
          break;
        }
        elem_ = index + static_cast<uint32_t>(ranges_.size()) - 1;
        malformed(std::string("expected ',' or ']' after an element, got '") + c + "'", offset_of(b + pos),
                  element_path());
      }
      if (c == ']') {
        if (st == St::kValue) {
          malformed("trailing comma before ']'", offset_of(b + pos),
                    std::string(kArrayName[static_cast<int>(kind_)]));
        }
        ++pos;
        done = true;
        break;
      }
      if (c == ',') {
        malformed("missing value before ','", offset_of(b + pos), std::string(kArrayName[static_cast<int>(kind_)]));
      }
      const char* e = find_value_end(b + pos, b + len_, eof_);
      if (!e) break;
      ranges_.emplace_back(pos, static_cast<size_t>(e - b));
      pos = static_cast<size_t>(e - b);
      st = St::kSepOrEnd;
    }
    if (!ranges_.empty()) {
      // Record indices are 32-bit (image_annotations, the id tables).
      if (ranges_.size() >= std::numeric_limits<uint32_t>::max() - index) {
        throw InputError("too_many_records",
                         std::string("more than 2^32-2 records in '") + kArrayName[static_cast<int>(kind_)] + "'",
                         Location{name_, kArrayName[static_cast<int>(kind_)], static_cast<int64_t>(array_start), "",
                                  ""});
      }
      batch_first_ = index;
      parse_batch();
      index += static_cast<uint32_t>(ranges_.size());
      if (kind_ == Kind::kAnnotations) reserve_estimate(offset_of(buf() + pos) - array_start);
    }
    if (done) return;
    if (batch_full) continue;
    size_t shift;
    if (!refill(pos - 1, shift)) {
      malformed(std::string("unexpected end of file inside '") + kArrayName[static_cast<int>(kind_)] + "'",
                offset_of(buf() + pos));
    }
    pos -= shift;
  }
}

void Reader::resolve() {
  // Categories and images: duplicate ids (the first record wins).
  auto dedupe = [this](auto& records, std::vector<RecordSource>& srcs, Kind kind,
                       std::vector<uint32_t>& slots) {
    detail::reset_slots(slots, records.size());
    size_t out = 0;
    for (size_t i = 0; i < records.size(); ++i) {
      const int64_t first = detail::slots_insert(slots, records[i].id, static_cast<uint32_t>(out),
                                                 [&records](uint32_t k) { return records[k].id; });
      if (first >= 0) {
        const int k = static_cast<int>(kind);
        report("duplicate_id",
               std::string("duplicate ") + kRecordName[k] + " id " + std::to_string(records[i].id) + " (first at " +
                   kArrayName[k] + "[" + std::to_string(srcs[static_cast<size_t>(first)].element) + "])",
               std::string(kArrayName[k]) + "[" + std::to_string(srcs[i].element) + "]",
               static_cast<int64_t>(srcs[i].offset), std::string(kRecordName[k]) + " id " + std::to_string(records[i].id));
        continue;
      }
      if (out != i) {
        records[out] = records[i];
        srcs[out] = srcs[i];
      }
      ++out;
    }
    records.resize(out);
    srcs.resize(out);
  };
  std::vector<uint32_t> slots;
  dedupe(ds_.categories, src_categories_, Kind::kCategories, slots);
  dedupe(ds_.images, src_images_, Kind::kImages, slots);
  ds_.build_index();

  detail::IdSet ann_ids(ds_.annotations.size());
  detail::IdSet skipped_images(skipped_images_.size());
  for (int64_t id : skipped_images_) skipped_images.insert(id);
  std::vector<AnnotationRecord>& anns = ds_.annotations;
  size_t out = 0;
  for (size_t i = 0; i < anns.size(); ++i) {
    AnnotationRecord& a = anns[i];
    const char* reason = nullptr;
    const char* subpath = "";
    std::string message;
    int64_t im = -1, cat = -1;
    if (!ann_ids.insert(a.id)) {
      reason = "duplicate_id";
      message = "duplicate annotation id " + std::to_string(a.id);
    } else if ((im = ds_.image_index(a.image_id)) < 0) {
      if (skipped_images.contains(a.image_id)) {
        reason = "image_skipped";
        message = "image_id " + std::to_string(a.image_id) + " names an image that was skipped";
      } else {
        reason = "unknown_image";
        message = "image_id " + std::to_string(a.image_id) + " names no image";
      }
    } else if ((cat = ds_.category_index(a.category_id)) < 0) {
      reason = "unknown_category";
      message = "category_id " + std::to_string(a.category_id) + " names no category";
    } else if ((a.seg_kind == SegmentationKind::kRleCounts || a.seg_kind == SegmentationKind::kRleString) &&
               (static_cast<int64_t>(a.rle_height) != ds_.images[im].height ||
                static_cast<int64_t>(a.rle_width) != ds_.images[im].width)) {
      // pycocotools decodes an RLE at its own size: one that disagrees with
      // its image would silently give a mask of another shape.
      reason = "rle_size_mismatch";
      subpath = ".segmentation.size";
      message = "RLE size [" + std::to_string(a.rle_height) + ", " + std::to_string(a.rle_width) +
                "] is not its image's [height, width] = [" + std::to_string(ds_.images[im].height) + ", " +
                std::to_string(ds_.images[im].width) + "]";
    }
    if (reason) {
      const RecordSource& s = src_annotations_[i];
      report(reason, message, "annotations[" + std::to_string(s.element) + "]" + subpath,
             static_cast<int64_t>(s.offset), "annotation id " + std::to_string(a.id));
      continue;
    }
    a.image_index = static_cast<uint32_t>(im);
    a.category_index = static_cast<uint32_t>(cat);
    if (out != i) {
      anns[out] = a;
      src_annotations_[out] = src_annotations_[i];
    }
    ++out;
  }
  const bool dropped = out != anns.size();
  anns.resize(out);
  src_annotations_.resize(out);
  ds_.annotation_sources = std::move(src_annotations_);
  if (dropped) compact_pools();
  detail::group_by_image(ds_);
}

// Removes the polygon parts and RLE counts of annotations dropped after
// parsing (duplicate ids, unknown references). Pool order follows annotation
// order, so moving the survivors' data down in place is safe.
void Reader::compact_pools() {
  std::vector<double>& coords = ds_.coords;
  std::vector<uint64_t>& parts = ds_.part_offsets;
  std::vector<uint32_t>& counts = ds_.rle_counts;
  uint64_t next_part = 0, next_coord = 0, next_count = 0;
  for (AnnotationRecord& a : ds_.annotations) {
    if (a.seg_kind == SegmentationKind::kPolygons) {
      const uint64_t p0 = a.seg_begin;
      for (uint64_t k = 0; k < a.seg_count; ++k) {
        const uint64_t b = parts[p0 + k], e = parts[p0 + k + 1];
        if (next_coord != b) std::copy(coords.begin() + static_cast<ptrdiff_t>(b),
                                       coords.begin() + static_cast<ptrdiff_t>(e),
                                       coords.begin() + static_cast<ptrdiff_t>(next_coord));
        parts[next_part + k] = next_coord;
        next_coord += e - b;
      }
      a.seg_begin = next_part;
      next_part += a.seg_count;
      parts[next_part] = next_coord;
    } else if (a.seg_kind == SegmentationKind::kRleCounts) {
      if (next_count != a.seg_begin) {
        std::copy(counts.begin() + static_cast<ptrdiff_t>(a.seg_begin),
                  counts.begin() + static_cast<ptrdiff_t>(a.seg_begin + a.seg_count),
                  counts.begin() + static_cast<ptrdiff_t>(next_count));
      }
      a.seg_begin = next_count;
      next_count += a.seg_count;
    }
  }
  parts[next_part] = next_coord;
  parts.resize(next_part + 1);
  coords.resize(next_coord);
  counts.resize(next_count);
}

CocoDataset Reader::run() {
  ds_.source_path = name_;
  ds_.image_root = opt_.image_root;
  // No bigger than the input (+1 so that the first read sees the end).
  cap_ = static_cast<size_t>(std::min<uint64_t>(opt_.block_size, src_.size() + 1));
  cap_ = std::max<size_t>(cap_, 16);
  batch_bytes_ = std::max<size_t>(std::min(opt_.batch_size, cap_), 1);
  buf_.reset(new char[cap_ + kPad]);
  size_t pos = 0, shift = 0;
  refill(0, shift);

  if (len_ >= 3 && std::memcmp(buf(), "\xEF\xBB\xBF", 3) == 0) pos = 3;  // UTF-8 byte order mark
  char c = skip_ws(pos);
  if (c == 0) malformed("empty document", offset_of(buf() + pos));
  if (c != '{') {
    if (c == '[' || c == '"' || c == '-' || (c >= '0' && c <= '9') || c == 't' || c == 'f' || c == 'n') {
      throw InputError("wrong_type", "a COCO file must hold a JSON object at the top level",
                       Location{name_, "", static_cast<int64_t>(offset_of(buf() + pos)), "", ""});
    }
    malformed(std::string("unexpected character '") + c + "'", offset_of(buf() + pos));
  }
  ++pos;
  bool seen[3] = {false, false, false};
  c = skip_ws(pos);
  if (c != '}') {
    while (true) {
      if (c == 0) malformed("unexpected end of file in the top-level object", offset_of(buf() + pos));
      if (c != '"') malformed("expected a key in the top-level object", offset_of(buf() + pos));
      const size_t key_end = complete_value(pos);
      const std::string key(buf() + pos + 1, key_end - pos - 2);
      const uint64_t key_offset = offset_of(buf() + pos);
      pos = key_end;
      c = skip_ws(pos);
      if (c != ':') malformed("expected ':' after key \"" + key + "\"", offset_of(buf() + pos));
      ++pos;
      c = skip_ws(pos);
      if (c == 0) malformed("unexpected end of file after key \"" + key + "\"", offset_of(buf() + pos));
      int which = -1;
      for (int i = 0; i < 3; ++i) {
        if (key == kArrayName[i]) which = i;
      }
      if (which >= 0) {
        if (seen[which]) {
          throw InputError("duplicate_field", "top-level key \"" + key + "\" appears twice",
                           Location{name_, key, static_cast<int64_t>(key_offset), "", ""});
        }
        seen[which] = true;
        if (c != '[') {
          throw InputError("wrong_type", "\"" + key + "\" must be an array",
                           Location{name_, key, static_cast<int64_t>(offset_of(buf() + pos)), "", ""});
        }
        kind_ = static_cast<Kind>(which);
        stream_array(pos);
      } else {
        const size_t end = complete_value(pos);
        const std::string_view raw(buf() + pos, end - pos);
        simdjson::dom::parser check;
        simdjson::dom::element ignored;
        if (auto e = check.parse(raw.data(), raw.size(), true).get(ignored)) {
          malformed(std::string(simdjson::error_message(e)) + " (in the value of \"" + key + "\")",
                    offset_of(buf() + pos), key);
        }
        if (opt_.keep_extra_fields) {
          if (!top_extra_.empty()) top_extra_ += ',';
          top_extra_ += '"';
          top_extra_ += key;
          top_extra_ += "\":";
          top_extra_.append(raw.data(), raw.size());
        }
        pos = end;
      }
      c = skip_ws(pos);
      if (c == ',') {
        ++pos;
        c = skip_ws(pos);
        continue;
      }
      if (c == '}') break;
      if (c == 0) malformed("unexpected end of file in the top-level object", offset_of(buf() + pos));
      malformed(std::string("expected ',' or '}' in the top-level object, got '") + c + "'",
                offset_of(buf() + pos));
    }
  }
  ++pos;
  c = skip_ws(pos);
  if (c != 0) malformed("unexpected content after the top-level object", offset_of(buf() + pos));
  for (int i = 0; i < 3; ++i) {
    if (!seen[i]) {
      throw InputError("missing_field", std::string("top-level key \"") + kArrayName[i] + "\" is missing",
                       Location{name_, "", -1, "", ""});
    }
  }
  buf_.reset();
  resolve();
  if (opt_.keep_extra_fields && !top_extra_.empty()) ds_.top_level_extra = ds_.add_string(top_extra_);
  return std::move(ds_);
}

}  // namespace

CocoDataset load_coco(const std::string& path, const LoadOptions& options) {
  FileSource src(path);
  Reader reader(src, path, options);
  return reader.run();
}

CocoDataset parse_coco(std::string_view json, const std::string& name, const LoadOptions& options) {
  MemorySource src(json);
  Reader reader(src, name, options);
  return reader.run();
}

}  // namespace pasteflow::io
