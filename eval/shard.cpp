#include "pasteflow/eval/shard.hpp"

#include <cstring>
#include <string>
#include <variant>

#include "pasteflow/core/error.hpp"

namespace pasteflow::eval {

namespace {

template <class T>
void put(std::vector<uint8_t>& out, T v) {
  const auto* p = reinterpret_cast<const uint8_t*>(&v);
  out.insert(out.end(), p, p + sizeof(T));
}

struct Reader {
  const std::vector<uint8_t>& bytes;
  size_t at = 0;

  [[noreturn]] void fail(const std::string& message) const {
    Location where;
    where.byte_offset = static_cast<int64_t>(at);
    throw InputError("bad_shard", "evaluation shard: " + message, where);
  }
  template <class T>
  T get() {
    if (bytes.size() - at < sizeof(T)) fail("cut short");
    T v;
    std::memcpy(&v, bytes.data() + at, sizeof(T));
    at += sizeof(T);
    return v;
  }
  bool flag() {
    const uint8_t f = get<uint8_t>();
    if (f > 1) {
      --at;
      fail("flag " + std::to_string(f) + " is neither 0 nor 1");
    }
    return f == 1;
  }
  size_t left() const { return bytes.size() - at; }
};

}  // namespace

std::vector<uint8_t> encode_shard(const DetectionShard& shard) {
  if (shard.positions.size() != shard.detections.size()) {
    throw Error("bad_shard", "a shard needs one position per detection");
  }
  std::vector<uint8_t> out;
  put<uint64_t>(out, shard.images);
  put<uint64_t>(out, shard.dropped);
  put<uint64_t>(out, shard.detections.size());
  for (size_t i = 0; i < shard.detections.size(); ++i) {
    const Detection& d = shard.detections[i];
    put<uint32_t>(out, shard.positions[i]);
    put<int64_t>(out, d.image_id);
    put<int64_t>(out, d.category_id);
    put<double>(out, d.score);
    put<uint8_t>(out, d.bbox ? 1 : 0);
    if (d.bbox) {
      for (double v : *d.bbox) put<double>(out, v);
    }
    if (const auto* rle = std::get_if<mask::Rle>(&d.segmentation)) {
      put<uint8_t>(out, 1);
      put<uint32_t>(out, rle->h);
      put<uint32_t>(out, rle->w);
      put<uint64_t>(out, rle->counts.size());
      for (uint32_t c : rle->counts) put<uint32_t>(out, c);
    } else if (std::holds_alternative<std::monostate>(d.segmentation)) {
      put<uint8_t>(out, 0);
    } else {
      throw Error("bad_shard", "only RLE segmentations travel in an evaluation shard");
    }
  }
  return out;
}

DetectionShard decode_shard(const std::vector<uint8_t>& bytes) {
  Reader r{bytes};
  DetectionShard s;
  s.images = r.get<uint64_t>();
  s.dropped = r.get<uint64_t>();
  const uint64_t n = r.get<uint64_t>();
  constexpr size_t kSmallestRecord = 4 + 8 + 8 + 8 + 1 + 1;
  if (n > r.left() / kSmallestRecord) r.fail(std::to_string(n) + " detections cannot fit in the bytes left");
  for (uint64_t i = 0; i < n; ++i) {
    s.positions.push_back(r.get<uint32_t>());
    Detection d;
    d.image_id = r.get<int64_t>();
    d.category_id = r.get<int64_t>();
    d.score = r.get<double>();
    if (r.flag()) {
      std::array<double, 4> b{};
      for (double& v : b) v = r.get<double>();
      d.bbox = b;
    }
    if (r.flag()) {
      mask::Rle rle;
      rle.h = r.get<uint32_t>();
      rle.w = r.get<uint32_t>();
      const uint64_t k = r.get<uint64_t>();
      if (k > r.left() / sizeof(uint32_t)) r.fail(std::to_string(k) + " RLE counts cannot fit in the bytes left");
      rle.counts.resize(static_cast<size_t>(k));
      uint64_t total = 0;
      for (uint32_t& c : rle.counts) {
        c = r.get<uint32_t>();
        total += c;
      }
      if (total != uint64_t{rle.h} * rle.w) {
        r.fail("RLE counts sum to " + std::to_string(total) + ", not " + std::to_string(rle.h) + " x " +
               std::to_string(rle.w));
      }
      d.segmentation = std::move(rle);
    }
    s.detections.push_back(std::move(d));
  }
  if (r.left() != 0) r.fail(std::to_string(r.left()) + " trailing byte(s)");
  return s;
}

}  // namespace pasteflow::eval
