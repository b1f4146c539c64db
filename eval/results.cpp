// COCO results files: reading (simdjson DOM), writing, synthetic results.
#include "pasteflow/eval/results.hpp"

#include <simdjson.h>

#include <cmath>
#include <string>

#include "json_scan.hpp"
#include "pasteflow/core/json_writer.hpp"
#include "pasteflow/core/short_number.hpp"
#include "pasteflow/core/random.hpp"

namespace pasteflow::eval {

namespace {

namespace dom = simdjson::dom;

Location file_location(const std::string& file) {
  Location loc;
  loc.file = file;
  return loc;
}

class ResultsReader {
 public:
  ResultsReader(const std::string& name, const io::CocoDataset& gt, ErrorPolicy policy, SkipReport* skipped)
      : name_(name), gt_(gt), policy_(policy), skipped_(skipped) {}

  /// The whole document parsed: every result read (a bad one thrown or
  /// counted), then the loadRes branch checked.
  std::vector<Detection> read(dom::element root) {
    dom::array arr;
    if (root.get_array().get(arr) != simdjson::SUCCESS) {
      throw InputError("not_an_array", "a results file is a JSON array of result objects", file_location(name_));
    }
    std::vector<Detection> out;
    out.reserve(arr.size());
    size_t i = 0;
    for (dom::element e : arr) take(out, e, i++, -1);
    return finish(std::move(out));
  }

  /// The document does not parse: cut the top-level array into records with
  /// the scanner and parse each alone, so that the error gets its byte
  /// offset, and a record with a non-finite number literal (NaN, Infinity:
  /// what Python's json writes) is a bad record (thrown or counted), not a
  /// bad file. `text` is padded (simdjson::SIMDJSON_PADDING readable bytes).
  std::vector<Detection> read_malformed(std::string_view text, size_t skip, simdjson::error_code whole) {
    const char* const begin = text.data();
    const char* const end = begin + text.size();
    const char* p = begin + skip;
    auto ws = [&] {
      while (p < end && io::detail::is_json_ws(*p)) ++p;
    };
    auto malformed = [&](const std::string& message, const char* at, const std::string& path) {
      Location loc = file_location(name_);
      loc.byte_offset = static_cast<int64_t>(at - begin);
      loc.path = path;
      throw InputError("malformed_json", "not valid JSON: " + message, loc);
    };
    ws();
    if (p == end) malformed("the file is empty", p, "");
    if (*p != '[') {
      if (*p == '{') {
        throw InputError("not_an_array", "a results file is a JSON array of result objects", file_location(name_));
      }
      malformed(std::string("expected '[', got '") + *p + "'", p, "");
    }
    ++p;
    std::vector<Detection> out;
    dom::parser parser;
    for (size_t i = 0;; ++i) {
      ws();
      const std::string path = "[" + std::to_string(i) + "]";
      if (p == end) malformed("the file ends inside the array (truncated?)", p, path);
      if (*p == ']' && i == 0) {
        ++p;
        break;
      }
      const char* e = io::detail::find_value_end(p, end, true);
      if (e == nullptr) {
        malformed("the file ends inside result " + std::to_string(i) + " (truncated?)", end, path);
      }
      const std::string_view record(p, static_cast<size_t>(e - p));
      dom::element el;
      if (parser.parse(record.data(), record.size(), true).get(el) != simdjson::SUCCESS) {
        std::string token, key;
        const char* at = bad_token(record, token, key);
        if (at != nullptr && (token == "NaN" || token == "Infinity" || token == "-Infinity")) {
          Location loc = file_location(name_);
          loc.byte_offset = static_cast<int64_t>(at - begin);
          loc.path = path + (key.empty() ? "" : "." + key);
          loc.record = "result " + std::to_string(i);
          ++literal_records_;
          reject(InputError("bad_value", "'" + (key.empty() ? token : key) + "' is not a finite number (" + token + ")",
                            loc));
        } else {
          simdjson::error_code err = parser.parse(record.data(), record.size(), true).error();
          malformed(at != nullptr ? "bad literal '" + token + "'" : std::string(simdjson::error_message(err)),
                    at != nullptr ? at : p, path);
        }
      } else {
        take(out, el, i, p - begin);
      }
      p = e;
      ws();
      if (p < end && *p == ',') {
        ++p;
        continue;
      }
      if (p < end && *p == ']') {
        ++p;
        break;
      }
      malformed(p == end ? "the file ends after result " + std::to_string(i) + " (truncated?)"
                         : std::string("expected ',' or ']' after a result, got '") + *p + "'",
                p, path);
    }
    ws();
    if (p != end) malformed("unexpected content after the array", p, "");
    // Every record parsed alone: the document's error was elsewhere.
    if (literal_records_ == 0) malformed(simdjson::error_message(whole), begin + skip, "");
    return finish(std::move(out));
  }

 private:
  /// Reads result `i` into `out`, or rejects it.
  void take(std::vector<Detection>& out, dom::element e, size_t i, int64_t offset) {
    try {
      out.push_back(read_one(e, i));
      index_.push_back(i);
    } catch (const InputError& err) {
      Location loc = err.where();
      loc.byte_offset = offset;
      reject(InputError(err.reason(), err.detail(), loc));
    }
  }

  void reject(const InputError& e) {
    if (policy_ == ErrorPolicy::kStrict || skipped_ == nullptr) throw e;
    skipped_->add(e);
  }

  /// loadRes reads every result the way the first one looks: one that does
  /// not have what the first one has is rejected.
  std::vector<Detection> finish(std::vector<Detection> out) {
    const auto no_mask = [](const Detection& d) { return std::holds_alternative<std::monostate>(d.segmentation); };
    size_t kept = 0;
    bool decided = false, bbox_branch = false;
    for (size_t j = 0; j < out.size(); ++j) {
      const size_t i = index_[j];
      const Detection& d = out[j];
      if (!decided && !d.bbox && no_mask(d)) {
        reject(error("missing_field", "the first result has neither 'bbox' nor 'segmentation'", i, ""));
        continue;
      }
      if (!decided) {
        decided = true;
        bbox_branch = d.bbox.has_value();
      }
      if (bbox_branch && !d.bbox) {
        reject(error("missing_field", "no 'bbox' (the first result has one, so pycocotools reads every result's bbox)",
                     i, "bbox"));
        continue;
      }
      if (!bbox_branch && no_mask(d)) {
        reject(error("missing_field",
                     "no 'segmentation' (the first result has no bbox, so pycocotools reads every result's "
                     "segmentation)",
                     i, "segmentation"));
        continue;
      }
      if (kept != j) out[kept] = std::move(out[j]);
      ++kept;
    }
    out.resize(kept);
    return out;
  }

  /// The first token of `record` (outside strings) that is neither a
  /// literal nor a JSON number, with the key it is the value of ("" inside
  /// an array); nullptr when there is none.
  static const char* bad_token(std::string_view record, std::string& token, std::string& key) {
    const char* s = record.data();
    const size_t n = record.size();
    for (size_t k = 0; k < n; ++k) {
      const char c = s[k];
      if (c == '"') {
        for (++k; k < n && s[k] != '"'; ++k) {
          if (s[k] == '\\') ++k;
        }
        continue;
      }
      const auto word = [](char x) {
        return (x >= 'a' && x <= 'z') || (x >= 'A' && x <= 'Z') || (x >= '0' && x <= '9') || x == '-' || x == '+' ||
               x == '.';
      };
      if (!word(c)) continue;
      size_t e = k;
      while (e < n && word(s[e])) ++e;
      const std::string_view t(s + k, e - k);
      if (t != "true" && t != "false" && t != "null" && !io::detail::json_number_grammar(t.data(), t.size())) {
        token = std::string(t.substr(0, 32));
        // The key: `"key" :` right before the token.
        size_t b = k;
        while (b > 0 && io::detail::is_json_ws(s[b - 1])) --b;
        if (b > 0 && s[b - 1] == ':') {
          --b;
          while (b > 0 && io::detail::is_json_ws(s[b - 1])) --b;
          if (b > 1 && s[b - 1] == '"') {
            const size_t q = std::string_view(s, b - 1).rfind('"');
            if (q != std::string_view::npos) key.assign(s + q + 1, b - 2 - q);
          }
        }
        return s + k;
      }
      k = e - 1;
    }
    return nullptr;
  }

  InputError error(const std::string& reason, const std::string& message, size_t i, const std::string& field) const {
    Location loc = file_location(name_);
    loc.path = "[" + std::to_string(i) + "]" + (field.empty() ? "" : "." + field);
    loc.record = "result " + std::to_string(i);
    return InputError(reason, message, loc);
  }

  [[noreturn]] void fail(const std::string& reason, const std::string& message, size_t i,
                         const std::string& field) const {
    throw error(reason, message, i, field);
  }
  static const char* type_name(dom::element_type t) {
    switch (t) {
      case dom::element_type::ARRAY: return "an array";
      case dom::element_type::OBJECT: return "an object";
      case dom::element_type::INT64:
      case dom::element_type::UINT64:
      case dom::element_type::DOUBLE: return "a number";
      case dom::element_type::STRING: return "a string";
      case dom::element_type::BOOL: return "a boolean";
      case dom::element_type::NULL_VALUE: return "null";
    }
    return "something else";
  }

  double number(dom::element v, size_t i, const std::string& field) const {
    double d = 0;
    if (v.get_double().get(d) != simdjson::SUCCESS) {
      fail("wrong_type", "'" + field + "' must be a number, got " + type_name(v.type()), i, field);
    }
    if (!std::isfinite(d)) fail("bad_value", "'" + field + "' is not finite", i, field);
    return d;
  }

  /// An integer; integral doubles (1.0) are accepted as Python compares
  /// them equal to ints.
  int64_t integer(dom::element v, size_t i, const std::string& field) const {
    int64_t n = 0;
    if (v.get_int64().get(n) == simdjson::SUCCESS) return n;
    double d = 0;
    if (v.type() == dom::element_type::DOUBLE && v.get_double().get(d) == simdjson::SUCCESS && std::isfinite(d) &&
        d == std::floor(d) && std::fabs(d) < 9.2e18) {
      return static_cast<int64_t>(d);
    }
    if (v.is_number()) fail("bad_value", "'" + field + "' must be an integer", i, field);
    fail("wrong_type", "'" + field + "' must be an integer, got " + type_name(v.type()), i, field);
  }

  uint32_t dimension(dom::element v, size_t i, const std::string& field) const {
    const int64_t n = integer(v, i, field);
    if (n < 0 || n > int64_t(1) << 30) fail("bad_value", "'" + field + "' out of range: " + std::to_string(n), i, field);
    return static_cast<uint32_t>(n);
  }

  Segmentation segmentation(dom::element v, size_t i, const Detection& det) const {
    const std::string f = "segmentation";
    if (v.type() == dom::element_type::ARRAY) {
      PolygonMask poly;
      size_t k = 0;
      for (dom::element part : dom::array(v)) {
        const std::string pf = f + "[" + std::to_string(k) + "]";
        if (part.type() != dom::element_type::ARRAY) {
          fail("wrong_type", "a polygon must be an array of numbers", i, pf);
        }
        std::vector<double> xy;
        size_t j = 0;
        for (dom::element c : dom::array(part)) xy.push_back(number(c, i, pf + "[" + std::to_string(j++) + "]"));
        poly.parts.push_back(std::move(xy));
        ++k;
      }
      if (poly.parts.empty()) fail("empty_segmentation", "segmentation is an empty polygon list", i, f);
      // Rasterise once at the image's size to validate (odd / short polygons).
      const int64_t gi = gt_.image_index(det.image_id);
      if (gi >= 0) {
        std::vector<Span<const double>> parts;
        for (const auto& p : poly.parts) parts.emplace_back(p.data(), p.size());
        try {
          (void)mask::from_polygons(parts, static_cast<uint32_t>(std::max(gt_.images[gi].height, 0)),
                                    static_cast<uint32_t>(std::max(gt_.images[gi].width, 0)));
        } catch (const Error& e) {
          fail(e.reason(), e.detail(), i, f);
        }
      }
      return poly;
    }
    if (v.type() != dom::element_type::OBJECT) {
      fail("wrong_type", "'segmentation' must be an RLE object or a polygon list, got " + std::string(type_name(v.type())),
           i, f);
    }
    dom::element size, counts;
    if (v["size"].get(size) != simdjson::SUCCESS) fail("missing_field", "RLE without 'size'", i, f + ".size");
    if (v["counts"].get(counts) != simdjson::SUCCESS) fail("missing_field", "RLE without 'counts'", i, f + ".counts");
    dom::array sz;
    if (size.get_array().get(sz) != simdjson::SUCCESS || sz.size() != 2) {
      fail("bad_value", "'size' must be [height, width]", i, f + ".size");
    }
    const uint32_t h = dimension(sz.at(0).value_unsafe(), i, f + ".size[0]");
    const uint32_t w = dimension(sz.at(1).value_unsafe(), i, f + ".size[1]");
    // As for the ground truth: a mask of another size than its image would
    // silently never match (rleIou gives -1).
    const int64_t gi = gt_.image_index(det.image_id);
    if (gi >= 0 &&
        (static_cast<int64_t>(h) != gt_.images[gi].height || static_cast<int64_t>(w) != gt_.images[gi].width)) {
      fail("rle_size_mismatch",
           "RLE size [" + std::to_string(h) + ", " + std::to_string(w) + "] is not its image's [height, width] = [" +
               std::to_string(gt_.images[gi].height) + ", " + std::to_string(gt_.images[gi].width) + "]",
           i, f + ".size");
    }
    std::string_view s;
    if (counts.get_string().get(s) == simdjson::SUCCESS) {
      try {
        (void)mask::from_string(s, h, w);
      } catch (const Error& e) {
        fail(e.reason(), e.detail() + (e.where().byte_offset >= 0 ? " (at character " +
                                                                        std::to_string(e.where().byte_offset) + ")"
                                                                  : std::string()),
             i, f + ".counts");
      }
      return CompressedMask{h, w, std::string(s)};
    }
    if (counts.type() == dom::element_type::ARRAY) {
      std::vector<uint32_t> runs;
      size_t j = 0;
      for (dom::element c : dom::array(counts)) {
        const int64_t n = integer(c, i, f + ".counts[" + std::to_string(j) + "]");
        if (n < 0 || n > int64_t(UINT32_MAX)) {
          fail("bad_value", "RLE count out of range: " + std::to_string(n), i, f + ".counts[" + std::to_string(j) + "]");
        }
        runs.push_back(static_cast<uint32_t>(n));
        ++j;
      }
      try {
        return mask::from_counts(Span<const uint32_t>(runs.data(), runs.size()), h, w);
      } catch (const Error& e) {
        fail(e.reason(), e.detail(), i, f + ".counts");
      }
    }
    fail("wrong_type", "'counts' must be a string or an array of integers", i, f + ".counts");
  }

  Detection read_one(dom::element e, size_t i) const {
    dom::object obj;
    if (e.get_object().get(obj) != simdjson::SUCCESS) {
      fail("wrong_type", std::string("a result must be an object, got ") + type_name(e.type()), i, "");
    }
    Detection det;
    dom::element v;
    if (obj["image_id"].get(v) != simdjson::SUCCESS) fail("missing_field", "no 'image_id'", i, "image_id");
    det.image_id = integer(v, i, "image_id");
    if (gt_.image_index(det.image_id) < 0) {
      fail("unknown_image",
           "image_id " + std::to_string(det.image_id) +
               " is not in the ground truth (pycocotools: results do not correspond to current coco set)",
           i, "image_id");
    }
    if (obj["category_id"].get(v) != simdjson::SUCCESS) fail("missing_field", "no 'category_id'", i, "category_id");
    det.category_id = integer(v, i, "category_id");
    if (gt_.category_index(det.category_id) < 0) {
      fail("unknown_category", "category_id " + std::to_string(det.category_id) + " is not a ground-truth category",
           i, "category_id");
    }
    if (obj["score"].get(v) != simdjson::SUCCESS) fail("missing_field", "no 'score'", i, "score");
    det.score = number(v, i, "score");
    if (obj["bbox"].get(v) == simdjson::SUCCESS) {
      dom::array bb;
      if (v.get_array().get(bb) != simdjson::SUCCESS) {
        fail("wrong_type", std::string("'bbox' must be [x, y, w, h], got ") + type_name(v.type()), i, "bbox");
      }
      // loadRes treats "bbox": [] like no bbox.
      if (bb.size() != 0) {
        if (bb.size() != 4) fail("bad_value", "'bbox' must have 4 numbers, got " + std::to_string(bb.size()), i, "bbox");
        std::array<double, 4> box{};
        size_t j = 0;
        for (dom::element c : bb) {
          box[j] = number(c, i, "bbox[" + std::to_string(j) + "]");
          if (std::fabs(box[j]) > io::kMaxCoordinate) {  // as the ground truth's: w * h must stay finite
            fail("bad_value",
                 "'bbox[" + std::to_string(j) + "]' is " + short_number(box[j]) + ", beyond +-" +
                     short_number(io::kMaxCoordinate),
                 i, "bbox");
          }
          ++j;
        }
        if (!(box[2] > 0) || !(box[3] > 0)) {
          fail("bad_value",
               "'bbox' has a zero or negative size (w " + short_number(box[2]) + ", h " + short_number(box[3]) + ")",
               i, "bbox");
        }
        det.bbox = box;
      }
    }
    if (obj["segmentation"].get(v) == simdjson::SUCCESS) det.segmentation = segmentation(v, i, det);
    return det;
  }

  const std::string& name_;
  const io::CocoDataset& gt_;
  ErrorPolicy policy_;
  SkipReport* skipped_;
  std::vector<size_t> index_;  ///< the file index of each result read
  size_t literal_records_ = 0;  ///< results rejected for a NaN / Infinity literal
};

std::vector<Detection> parse_padded(const simdjson::padded_string& json, const std::string& name,
                                    const io::CocoDataset& gt, ErrorPolicy policy, SkipReport* skipped) {
  dom::parser parser;
  std::string_view text(json.data(), json.size());
  size_t skip = 0;
  if (text.size() >= 3 && text.substr(0, 3) == "\xEF\xBB\xBF") skip = 3;
  dom::element root;
  simdjson::error_code err;
  if (skip == 0) {
    err = parser.parse(json).get(root);
  } else {
    err = parser.parse(json.data() + skip, json.size() - skip, true).get(root);
  }
  ResultsReader reader(name, gt, policy, skipped);
  if (err != simdjson::SUCCESS) return reader.read_malformed(text, skip, err);
  return reader.read(root);
}

}  // namespace

std::vector<Detection> load_results(const std::string& path, const io::CocoDataset& gt, ErrorPolicy policy,
                                    SkipReport* skipped) {
  simdjson::padded_string json;
  if (auto e = simdjson::padded_string::load(path).get(json)) {
    throw InputError("io_error", std::string("cannot read the results file: ") + simdjson::error_message(e),
                     file_location(path));
  }
  return parse_padded(json, path, gt, policy, skipped);
}

std::vector<Detection> parse_results(std::string_view json, const std::string& name, const io::CocoDataset& gt,
                                     ErrorPolicy policy, SkipReport* skipped) {
  const simdjson::padded_string padded(json);
  return parse_padded(padded, name, gt, policy, skipped);
}

std::string results_to_json(const std::vector<Detection>& detections) {
  JsonWriter w;
  w.begin_array();
  for (const Detection& d : detections) {
    w.begin_object();
    w.field("image_id", d.image_id);
    w.field("category_id", d.category_id);
    if (d.bbox) {
      w.key("bbox").begin_array();
      for (double c : *d.bbox) w.value(c);
      w.end_array();
    }
    if (const auto* rle = std::get_if<mask::Rle>(&d.segmentation)) {
      w.key("segmentation").begin_object();
      w.key("size").begin_array().value(rle->h).value(rle->w).end_array();
      w.field("counts", mask::to_string(*rle));
      w.end_object();
    } else if (const auto* c = std::get_if<CompressedMask>(&d.segmentation)) {
      w.key("segmentation").begin_object();
      w.key("size").begin_array().value(c->h).value(c->w).end_array();
      w.field("counts", c->counts);
      w.end_object();
    } else if (const auto* poly = std::get_if<PolygonMask>(&d.segmentation)) {
      w.key("segmentation").begin_array();
      for (const auto& part : poly->parts) {
        w.begin_array();
        for (double x : part) w.value(x);
        w.end_array();
      }
      w.end_array();
    }
    w.field("score", d.score);
    w.end_object();
  }
  w.end_array();
  return w.take();
}

std::vector<Detection> random_detections(const io::CocoDataset& gt, size_t n, uint64_t seed, bool with_masks) {
  std::vector<Detection> out;
  if (gt.images.empty() || gt.categories.empty()) return out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    Rng rng(seed, {i});
    Detection d;
    const size_t im = rng.below(gt.images.size());
    const io::ImageRecord& image = gt.images[im];
    const double W = std::max(image.width, 1), H = std::max(image.height, 1);
    d.image_id = image.id;
    d.score = std::round(rng.uniform() * 1e4) / 1e4;  // 4 decimals, as detectors' files: many ties
    std::array<double, 4> box{};
    const auto anns = gt.annotations_of(im);
    if (anns.size() > 0 && rng.uniform() < 0.5) {
      // A jittered copy of a ground-truth box (most become true positives).
      const io::AnnotationRecord& a = gt.annotations[anns[rng.below(anns.size())]];
      d.category_id = rng.uniform() < 0.9 ? a.category_id : gt.categories[rng.below(gt.categories.size())].id;
      const double jw = a.bbox[2] * 0.15, jh = a.bbox[3] * 0.15;
      box = {a.bbox[0] + rng.uniform(-jw, jw), a.bbox[1] + rng.uniform(-jh, jh),
             a.bbox[2] * rng.uniform(0.8, 1.2), a.bbox[3] * rng.uniform(0.8, 1.2)};
    } else {
      d.category_id = gt.categories[rng.below(gt.categories.size())].id;
      const double bw = W * std::pow(rng.uniform(0.02, 0.8), 1.5) + 1, bh = H * std::pow(rng.uniform(0.02, 0.8), 1.5) + 1;
      box = {rng.uniform(0, W - bw), rng.uniform(0, H - bh), bw, bh};
    }
    for (double& c : box) c = std::round(c * 100) / 100;  // 2 decimals, as detectors' files
    box[2] = std::max(box[2], 1.0);
    box[3] = std::max(box[3], 1.0);
    d.bbox = box;
    if (with_masks) {
      // An ellipse-like polygon inscribed in the box.
      constexpr int kVertices = 16;
      std::vector<double> xy;
      const double cx = box[0] + box[2] / 2, cy = box[1] + box[3] / 2;
      for (int v = 0; v < kVertices; ++v) {
        const double ang = 2 * 3.14159265358979323846 * v / kVertices;
        const double r = rng.uniform(0.8, 1.0);
        xy.push_back(cx + r * box[2] / 2 * std::cos(ang));
        xy.push_back(cy + r * box[3] / 2 * std::sin(ang));
      }
      const mask::Rle rle = mask::from_polygon(xy.data(), xy.size(), static_cast<uint32_t>(H), static_cast<uint32_t>(W));
      d.segmentation = CompressedMask{rle.h, rle.w, mask::to_string(rle)};
    }
    out.push_back(std::move(d));
  }
  return out;
}

}  // namespace pasteflow::eval
