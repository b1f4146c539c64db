// The mask importer's decoders (importers::instances_from_labels,
// importers::instance_from_mask). Input: a mode byte, then
//   0: a label image file (PNG / TIFF / JPEG bytes) -> decode stage ("keep",
//      16-bit kept, at most 2^16 pixels) -> instances_from_labels;
//   1: an instance mask file -> decode -> instance_from_mask;
//   2: raw labels: width, height (1 byte each, 1..64), 8 or 16 bit, then
//      the pixels (missing bytes are 0) -> instances_from_labels.
// Checks beyond "no crash": the instances' runs, painted back with their
// values, give the label image exactly (so they are disjoint, cover every
// non-zero pixel, and each sums to h * w); values increase; area and bbox
// are the RLE's; a mask instance decodes to the mask's non-zero pixels.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "fuzz_input.hpp"
#include "pasteflow/core/error.hpp"
#include "pasteflow/importers/masks.hpp"
#include "pasteflow/mask/rle.hpp"
#include "pasteflow/stages/decode.hpp"

using namespace pasteflow;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

uint32_t value_at(const cv::Mat& m, int y, int x) {
  return m.depth() == CV_8U ? m.at<uint8_t>(y, x) : m.at<uint16_t>(y, x);
}

void check_labels(const cv::Mat& labels) {
  std::vector<importers::Instance> got;
  try {
    got = importers::instances_from_labels(labels, "fuzz.png");
  } catch (const InputError&) {
    check(labels.channels() != 1 || (labels.depth() != CV_8U && labels.depth() != CV_16U));
    return;
  }
  const uint64_t h = uint64_t(labels.rows), w = uint64_t(labels.cols);
  std::vector<uint32_t> painted(h * w, 0);  // column-major
  uint32_t last_value = 0;
  for (const importers::Instance& inst : got) {
    check(inst.rle.h == h && inst.rle.w == w);
    const size_t colon = inst.source.rfind(':');
    check(colon != std::string::npos);
    const uint32_t v = uint32_t(std::stoul(inst.source.substr(colon + 1)));
    check(v > last_value);
    last_value = v;
    uint64_t pos = 0, area = 0;
    for (size_t k = 0; k < inst.rle.counts.size(); ++k) {
      const uint64_t n = inst.rle.counts[k];
      check(pos + n <= h * w);
      if (k % 2 == 1) {
        check(n > 0);
        for (uint64_t p = pos; p < pos + n; ++p) {
          check(painted[p] == 0);
          painted[p] = v;
        }
        area += n;
      }
      pos += n;
    }
    check(pos == h * w);
    check(area > 0 && area == inst.area && area == mask::area(inst.rle));
    check(inst.bbox == mask::bbox(inst.rle));
  }
  for (uint64_t x = 0; x < w; ++x) {
    for (uint64_t y = 0; y < h; ++y) check(painted[x * h + y] == value_at(labels, int(y), int(x)));
  }
}

void check_mask(const cv::Mat& m) {
  importers::Instance inst;
  try {
    inst = importers::instance_from_mask(m, "fuzz.png");
  } catch (const InputError& e) {
    check(e.reason() == "non_binary_mask" || e.reason() == "empty_mask" || e.reason() == "unsupported_image");
    return;
  }
  const std::vector<uint8_t> px = mask::decode(inst.rle);
  check(px.size() == m.total());
  uint64_t area = 0;
  for (int y = 0; y < m.rows; ++y) {
    for (int x = 0; x < m.cols; ++x) {
      bool on = false;
      for (int c = 0; c < m.channels(); ++c) {
        const size_t off = size_t(x) * size_t(m.channels()) + size_t(c);
        on |= (m.depth() == CV_8U ? m.ptr<uint8_t>(y)[off] : m.ptr<uint16_t>(y)[off]) != 0;
      }
      check(px[size_t(y) * size_t(m.cols) + size_t(x)] == (on ? 1 : 0));
      area += on;
    }
  }
  check(area > 0 && area == inst.area);
  check(inst.bbox == mask::bbox(inst.rle));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;  // no mode byte (libFuzzer starts with the empty input)
  fuzz::Input in(data, size);
  const uint8_t mode = in.byte() % 3;
  if (mode == 2) {
    const int w = 1 + in.byte() % 64, h = 1 + in.byte() % 64;
    const bool sixteen = in.byte() & 1;
    cv::Mat labels(h, w, sixteen ? CV_16U : CV_8U);
    for (int y = 0; y < h; ++y) {
      for (int x = 0; x < w; ++x) {
        if (sixteen) {
          labels.at<uint16_t>(y, x) = in.u16();
        } else {
          labels.at<uint8_t>(y, x) = in.byte();
        }
      }
    }
    check_labels(labels);
    return 0;
  }
  static const stages::Decoder decoder({int64_t(1) << 16, "keep", true});
  const Span<const uint8_t> bytes(data + 1, size - 1);
  cv::Mat image;
  try {
    image = decoder.decode_bytes(bytes, "fuzz.img");
  } catch (const InputError&) {
    return 0;
  }
  if (mode == 0) {
    check_labels(image);
  } else {
    check_mask(image);
  }
  return 0;
}
