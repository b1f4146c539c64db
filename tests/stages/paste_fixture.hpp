// Test helpers of the copy-paste stage tests: real Samples built from
// tests/data/paste (2 COCO 2017 train images with many small objects, one
// with a crowd region and multi-part polygons), and small mask utilities.
// The samples are built here from the JSON (simdjson) and the mask codec so
// that the tests depend on nothing but the stages under test and mask::.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <simdjson.h>

#include "pasteflow/mask/rle.hpp"
#include "pasteflow/stages/sample.hpp"
#include "pasteflow/stats/size_class.hpp"

namespace paste_test {

using pasteflow::stages::Instance;
using pasteflow::stages::Sample;
namespace mask = pasteflow::mask;

inline std::string data_dir() { return std::string(PASTEFLOW_TEST_DATA) + "/paste"; }

/// image id -> Sample (RGB 8-bit image, instances in file order, masks as
/// pycocotools builds them: polygons rasterised and merged, crowd counts).
inline std::map<int64_t, Sample> load_samples() {
  simdjson::dom::parser parser;
  const simdjson::dom::element doc = parser.load(data_dir() + "/annotations.json");
  std::map<int64_t, Sample> out;
  for (simdjson::dom::element im : doc["images"].get_array()) {
    Sample s;
    s.image_id = im["id"].get_int64();
    s.path = data_dir() + "/images/" + std::string(std::string_view(im["file_name"].get_string()));
    cv::Mat bgr = cv::imread(s.path, cv::IMREAD_COLOR);
    if (bgr.empty()) throw std::runtime_error("cannot read " + s.path);
    cv::cvtColor(bgr, s.image, cv::COLOR_BGR2RGB);
    if (s.image.cols != im["width"].get_int64().value() || s.image.rows != im["height"].get_int64().value())
      throw std::runtime_error("size mismatch " + s.path);
    s.image_index = static_cast<uint32_t>(out.size());
    out[s.image_id] = std::move(s);
  }
  for (simdjson::dom::element a : doc["annotations"].get_array()) {
    Sample& s = out.at(a["image_id"].get_int64());
    const uint32_t h = static_cast<uint32_t>(s.image.rows), w = static_cast<uint32_t>(s.image.cols);
    Instance inst;
    inst.id = a["id"].get_int64();
    inst.category_id = a["category_id"].get_int64();
    inst.iscrowd = static_cast<uint8_t>(int64_t(a["iscrowd"].get_int64()));
    inst.area = a["area"].get_double();
    int k = 0;
    for (simdjson::dom::element v : a["bbox"].get_array()) inst.bbox[k++] = v.get_double();
    inst.has_mask = true;
    const simdjson::dom::element seg = a["segmentation"];
    if (seg.is_array()) {
      std::vector<std::vector<double>> parts;
      for (simdjson::dom::element poly : seg.get_array()) {
        parts.emplace_back();
        for (simdjson::dom::element v : poly.get_array()) parts.back().push_back(v.get_double());
      }
      std::vector<pasteflow::Span<const double>> spans;
      for (const auto& p : parts) spans.emplace_back(p.data(), p.size());
      inst.mask = mask::from_polygons(spans, h, w);
    } else {
      std::vector<uint32_t> counts;
      for (simdjson::dom::element v : seg["counts"].get_array())
        counts.push_back(static_cast<uint32_t>(uint64_t(v.get_uint64())));
      inst.mask = mask::from_counts(pasteflow::Span<const uint32_t>(counts.data(), counts.size()), h, w);
    }
    inst.size_class =
        static_cast<uint8_t>(pasteflow::stats::classify_area(inst.area, pasteflow::stats::SizeClassConfig{}));
    s.instances.push_back(std::move(inst));
  }
  return out;
}

/// The two images of tests/data/paste, loaded once.
inline const std::map<int64_t, Sample>& samples() {
  static const std::map<int64_t, Sample> s = load_samples();
  return s;
}

/// A deep copy (the image is cloned) with the given stream position.
inline Sample copy_of(int64_t image_id, uint64_t seq = 0, uint64_t epoch = 0, bool augment = true) {
  Sample s = samples().at(image_id);
  s.image = s.image.clone();
  s.seq = seq;
  s.epoch = epoch;
  s.augment = augment;
  return s;
}

constexpr int64_t kTable = 84284;   ///< 500x375, 16 objects, 15 small (bottles, books, ...)
constexpr int64_t kStreet = 159269; ///< 427x640, 35 objects, 1 crowd, multi-part polygons

/// Full-frame CV_8U 0/1 image of a mask.
inline cv::Mat decode_mat(const mask::Rle& rle) {
  cv::Mat m(static_cast<int>(rle.h), static_cast<int>(rle.w), CV_8UC1);
  mask::decode_into(rle, m.ptr<uint8_t>(), m.step[0]);
  return m;
}

/// Rle of a CV_8U image (nonzero = 1).
inline mask::Rle encode_mat(const cv::Mat& m) {
  return mask::encode(m.ptr<uint8_t>(), static_cast<uint32_t>(m.rows), static_cast<uint32_t>(m.cols), m.step[0]);
}

/// An instance with a full-frame mask made from a CV_8U frame-sized image.
inline Instance mask_instance(int64_t id, const cv::Mat& frame_mask, uint8_t size_class = 0) {
  Instance inst;
  inst.id = id;
  inst.category_id = 1;
  inst.has_mask = true;
  inst.mask = encode_mat(frame_mask);
  inst.bbox = mask::bbox(inst.mask);
  inst.area = static_cast<double>(mask::area(inst.mask));
  inst.size_class = size_class;
  return inst;
}

/// Number of 8-connected components of the ones of a CV_8U image.
inline int components8(const cv::Mat& m) {
  cv::Mat labels;
  return cv::connectedComponents(m != 0, labels, 8, CV_32S) - 1;
}

}  // namespace paste_test
