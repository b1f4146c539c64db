// RLE codec: compressed strings, pixel buffers, area and box.
// Algorithms follow cocoapi common/maskApi.c (rleToString, rleFrString,
// rleEncode, rleDecode, rleArea, rleToBbox) so results are bit-exact.
#include <algorithm>
#include <cstring>

#include "pasteflow/mask/rle.hpp"
#include "rle_internal.hpp"

namespace pasteflow::mask {

namespace detail {

void check_pixels(uint64_t h, uint64_t w, const char* what) {
  // h, w < 2^32 as uint32_t: the product fits in 64 bits.
  if (h * w > kMaxPixels) {
    throw InputError("mask_too_large", std::string(what) + ": a mask of " + std::to_string(h) + "x" +
                                           std::to_string(w) + " has more than 2^32-1 pixels");
  }
}

void check_sum(const Rle& r, const char* what) {
  check_pixels(r.h, r.w, what);
  const uint64_t sum = count_sum(r);
  if (sum != pixels(r)) {
    throw InputError("rle_sum", std::string(what) + ": RLE counts add up to " + std::to_string(sum) +
                                    " but the mask has " + std::to_string(r.h) + "x" +
                                    std::to_string(r.w) + " = " + std::to_string(pixels(r)) +
                                    " pixels");
  }
}

}  // namespace detail

Rle empty(uint32_t h, uint32_t w) {
  detail::check_pixels(h, w, "empty mask");
  Rle r;
  r.h = h;
  r.w = w;
  r.counts.push_back(static_cast<uint32_t>(static_cast<uint64_t>(h) * w));
  return r;
}

Rle from_counts(Span<const uint32_t> counts, uint32_t h, uint32_t w) {
  Rle r;
  r.h = h;
  r.w = w;
  r.counts.assign(counts.begin(), counts.end());
  detail::check_sum(r, "uncompressed RLE");
  return r;
}

// ------------------------------------------------------------------ strings

std::string to_string(const Rle& rle) {
  const size_t m = rle.counts.size();
  std::string s;
  s.reserve(m * 7);
  for (size_t i = 0; i < m; ++i) {
    int64_t x = static_cast<int64_t>(rle.counts[i]);
    if (i > 2) x -= static_cast<int64_t>(rle.counts[i - 2]);  // sic: i > 2, as maskApi.c
    bool more = true;
    while (more) {
      char c = static_cast<char>(x & 0x1f);
      x >>= 5;  // arithmetic shift, as the C code on every platform it runs on
      more = (c & 0x10) ? x != -1 : x != 0;
      if (more) c |= 0x20;
      c += 48;
      s.push_back(c);
    }
  }
  return s;
}

Rle from_string(std::string_view s, uint32_t h, uint32_t w) {
  Rle r;
  r.h = h;
  r.w = w;
  r.counts.reserve(s.size());
  const size_t n = s.size();
  size_t p = 0;
  auto fail = [&](size_t at, const std::string& why) {
    Location loc;
    loc.byte_offset = static_cast<int64_t>(at);
    throw InputError("bad_rle", "compressed RLE string: " + why, loc);
  };
  while (p < n) {
    const size_t start = p;
    uint64_t x = 0;
    unsigned k = 0;
    bool more = true;
    while (more) {
      if (p >= n) fail(start, "truncated value at the end of the string");
      const unsigned char ch = static_cast<unsigned char>(s[p]);
      if (ch < 48 || ch > 111) fail(p, "character " + std::to_string(ch) + " outside 48..111");
      if (k >= 12) fail(start, "value longer than 12 characters");
      const unsigned c = ch - 48u;
      x |= static_cast<uint64_t>(c & 0x1f) << (5 * k);
      more = (c & 0x20) != 0;
      ++p;
      ++k;
      if (!more && (c & 0x10)) x |= ~uint64_t{0} << (5 * k);
    }
    int64_t v = static_cast<int64_t>(x);
    const size_t m = r.counts.size();
    if (m > 2) v += static_cast<int64_t>(r.counts[m - 2]);  // sic: m > 2
    if (v < 0 || v > static_cast<int64_t>(UINT32_MAX)) {
      fail(start, "count " + std::to_string(v) + " outside 0..2^32-1");
    }
    r.counts.push_back(static_cast<uint32_t>(v));
  }
  detail::check_sum(r, "compressed RLE");
  return r;
}

// ------------------------------------------------------------ pixel buffers

void decode_into(const Rle& rle, uint8_t* rowmajor, size_t stride) {
  detail::check_sum(rle, "decode");
  const uint32_t h = rle.h, w = rle.w;
  if (h == 0 || w == 0) return;
  for (uint32_t y = 0; y < h; ++y) std::memset(rowmajor + y * stride, 0, w);
  uint64_t pos = 0;  // column-major linear index
  bool value = false;
  for (uint32_t c : rle.counts) {
    if (value && c > 0) {
      // Fill [pos, pos + c) column by column.
      uint64_t x = pos / h;
      uint32_t y = static_cast<uint32_t>(pos - x * h);
      uint64_t left = c;
      while (left > 0) {
        const uint32_t take = static_cast<uint32_t>(std::min<uint64_t>(left, h - y));
        uint8_t* p = rowmajor + static_cast<size_t>(y) * stride + x;
        for (uint32_t t = 0; t < take; ++t, p += stride) *p = 1;
        left -= take;
        y = 0;
        ++x;
      }
    }
    pos += c;
    value = !value;
  }
}

std::vector<uint8_t> decode(const Rle& rle) {
  detail::check_sum(rle, "decode");  // before allocating h * w bytes
  std::vector<uint8_t> out(static_cast<size_t>(rle.h) * rle.w);
  decode_into(rle, out.data(), rle.w);
  return out;
}

namespace {

// High bit of each byte set where the byte is nonzero.
inline uint64_t nonzero_bytes(uint64_t v) {
  constexpr uint64_t k7f = 0x7f7f7f7f7f7f7f7fULL, k80 = 0x8080808080808080ULL;
  return (((v & k7f) + k7f) | v) & k80;
}

struct Transition {
  uint32_t x, y;
};

}  // namespace

Rle encode(const uint8_t* rowmajor, uint32_t h, uint32_t w, size_t stride) {
  // Same runs as rleEncode over the column-major order, found without
  // transposing: a run starts at (x, y) where the pixel differs from the one
  // before it in column-major order, i.e. from (x, y-1), or for y = 0 from
  // (x-1, h-1). Rows are compared 8 bytes at a time; the transitions are
  // then bucketed by column (counting sort, rows already in order).
  detail::check_pixels(h, w, "encode");
  Rle r;
  r.h = h;
  r.w = w;
  if (h == 0 || w == 0) {
    r.counts.push_back(0);
    return r;
  }
  thread_local std::vector<Transition> found;
  thread_local std::vector<uint32_t> column_start;
  found.clear();
  const uint8_t* last = rowmajor + static_cast<size_t>(h - 1) * stride;
  if ((rowmajor[0] != 0)) found.push_back({0, 0});
  for (uint32_t x = 1; x < w; ++x) {
    if ((rowmajor[x] != 0) != (last[x - 1] != 0)) found.push_back({x, 0});
  }
  for (uint32_t y = 1; y < h; ++y) {
    const uint8_t* cur = rowmajor + static_cast<size_t>(y) * stride;
    const uint8_t* prev = cur - stride;
    uint32_t x = 0;
    for (; x + 8 <= w; x += 8) {
      uint64_t a, b;
      std::memcpy(&a, cur + x, 8);
      std::memcpy(&b, prev + x, 8);
      uint64_t d = nonzero_bytes(a) ^ nonzero_bytes(b);
      while (d) {
        found.push_back({x + static_cast<uint32_t>(__builtin_ctzll(d) >> 3), y});
        d &= d - 1;
      }
    }
    for (; x < w; ++x) {
      if ((cur[x] != 0) != (prev[x] != 0)) found.push_back({x, y});
    }
  }
  // Bucket by column.
  column_start.assign(static_cast<size_t>(w) + 1, 0);
  for (const Transition& t : found) ++column_start[t.x + 1];
  for (uint32_t x = 0; x < w; ++x) column_start[x + 1] += column_start[x];
  r.counts.resize(found.size() + 1);
  // Place the start positions, then turn them into run lengths in place.
  for (const Transition& t : found) {
    r.counts[column_start[t.x]++] = static_cast<uint32_t>(static_cast<uint64_t>(t.x) * h + t.y);
  }
  uint32_t before = 0;
  for (size_t i = 0; i + 1 < r.counts.size(); ++i) {
    const uint32_t at = r.counts[i];
    r.counts[i] = at - before;
    before = at;
  }
  r.counts.back() = static_cast<uint32_t>(static_cast<uint64_t>(h) * w - before);
  return r;
}

// --------------------------------------------------------------- measuring

uint64_t area(const Rle& rle) {
  uint64_t a = 0;
  for (size_t j = 1; j < rle.counts.size(); j += 2) a += rle.counts[j];
  return a;
}

std::array<double, 4> bbox(const Rle& rle) {
  // rleToBbox, with its 32-bit unsigned arithmetic.
  const uint32_t h = rle.h, w = rle.w;
  const size_t m = (rle.counts.size() / 2) * 2;
  if (m == 0 || h == 0) return {0.0, 0.0, 0.0, 0.0};
  uint32_t xs = w, ys = h, xe = 0, ye = 0, cc = 0, xp = 0;
  for (size_t j = 0; j < m; ++j) {
    cc += rle.counts[j];
    const uint32_t t = cc - static_cast<uint32_t>(j % 2);
    const uint32_t y = t % h;
    const uint32_t x = (t - y) / h;
    if (j % 2 == 0) {
      xp = x;
    } else if (xp < x) {
      ys = 0;
      ye = h - 1;
    }
    xs = std::min(xs, x);
    xe = std::max(xe, x);
    ys = std::min(ys, y);
    ye = std::max(ye, y);
  }
  return {static_cast<double>(xs), static_cast<double>(ys), static_cast<double>(xe - xs + 1),
          static_cast<double>(ye - ys + 1)};
}

}  // namespace pasteflow::mask
