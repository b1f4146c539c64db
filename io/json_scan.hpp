// Internal: a fast scanner that finds where a JSON value ends, used by the
// COCO reader to cut the big top-level arrays into complete elements before
// handing them to simdjson On-Demand. Not a validator: it only tracks strings
// (with escapes) and bracket depth; simdjson validates what is inside.
//
// Every function may read up to 64 bytes past `end` (the caller's buffer is
// padded); bytes past `end` never influence the result.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace pasteflow::io::detail {

inline bool is_json_ws(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

/// Bit masks of one 64-byte chunk.
struct ChunkMasks {
  uint64_t quote;
  uint64_t backslash;
  uint64_t open;   ///< '{' or '['
  uint64_t close;  ///< '}' or ']'
};

inline ChunkMasks chunk_masks(const char* p) {
  ChunkMasks m;
#if defined(__SSE2__)
  const __m128i q = _mm_set1_epi8('"');
  const __m128i bs = _mm_set1_epi8('\\');
  const __m128i lower = _mm_set1_epi8(0x20);  // '[' | 0x20 == '{', ']' | 0x20 == '}'
  const __m128i op = _mm_set1_epi8('{');
  const __m128i cl = _mm_set1_epi8('}');
  uint64_t mq = 0, mb = 0, mo = 0, mc = 0;
  for (int i = 0; i < 4; ++i) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * i));
    const __m128i vl = _mm_or_si128(v, lower);
    const int sh = 16 * i;
    mq |= uint64_t(uint32_t(_mm_movemask_epi8(_mm_cmpeq_epi8(v, q)))) << sh;
    mb |= uint64_t(uint32_t(_mm_movemask_epi8(_mm_cmpeq_epi8(v, bs)))) << sh;
    mo |= uint64_t(uint32_t(_mm_movemask_epi8(_mm_cmpeq_epi8(vl, op)))) << sh;
    mc |= uint64_t(uint32_t(_mm_movemask_epi8(_mm_cmpeq_epi8(vl, cl)))) << sh;
  }
  m.quote = mq;
  m.backslash = mb;
  m.open = mo;
  m.close = mc;
#else
  m = ChunkMasks{0, 0, 0, 0};
  for (int i = 0; i < 64; ++i) {
    const char c = p[i];
    const uint64_t bit = uint64_t(1) << i;
    if (c == '"') m.quote |= bit;
    if (c == '\\') m.backslash |= bit;
    const char l = static_cast<char>(c | 0x20);
    if (l == '{') m.open |= bit;
    if (l == '}') m.close |= bit;
  }
#endif
  return m;
}

/// Characters escaped by a backslash in this chunk. `carry` is 1 when the
/// previous chunk ended in an unescaped backslash; updated for the next one.
inline uint64_t escaped_chars(uint64_t backslash, uint64_t& carry) {
  uint64_t escaped = 0;
  if (carry) {
    escaped = 1;
    backslash &= ~uint64_t(1);
  }
  carry = 0;
  while (backslash) {
    const int i = __builtin_ctzll(backslash);
    if (i == 63) {
      carry = 1;
      break;
    }
    escaped |= uint64_t(1) << (i + 1);
    backslash &= ~(uint64_t(3) << i);
  }
  return escaped;
}

inline uint64_t prefix_xor(uint64_t x) {
  x ^= x << 1;
  x ^= x << 2;
  x ^= x << 4;
  x ^= x << 8;
  x ^= x << 16;
  x ^= x << 32;
  return x;
}

inline int popcount64(uint64_t x) {
#if defined(__POPCNT__)
  return __builtin_popcountll(x);
#else
  x = x - ((x >> 1) & 0x5555555555555555ULL);
  x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
  x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0fULL;
  return static_cast<int>((x * 0x0101010101010101ULL) >> 56);
#endif
}

/// `p` points at '{' or '['. Returns one past the matching close bracket, or
/// nullptr when it is not within [p, end).
inline const char* match_container(const char* p, const char* end) {
  uint64_t esc_carry = 0;
  uint64_t in_string_carry = 0;  // all ones while inside a string
  int64_t depth = 0;
  for (const char* c = p; c < end; c += 64) {
    const size_t left = static_cast<size_t>(end - c);
    const uint64_t valid = left >= 64 ? ~uint64_t(0) : ((uint64_t(1) << left) - 1);
    ChunkMasks m = chunk_masks(c);
    uint64_t quote = m.quote & valid;
    const uint64_t bs = m.backslash & valid;
    if (bs | esc_carry) quote &= ~escaped_chars(bs, esc_carry);
    const uint64_t in_string = quote ? (prefix_xor(quote) ^ in_string_carry) : in_string_carry;
    in_string_carry = static_cast<uint64_t>(static_cast<int64_t>(in_string) >> 63);
    const uint64_t op = m.open & valid & ~in_string;
    const uint64_t cl = m.close & valid & ~in_string;
    // Fast path: this chunk cannot bring the depth back to zero.
    const int n_close = popcount64(cl);
    if (n_close < depth) {
      depth += popcount64(op) - n_close;
      continue;
    }
    uint64_t br = op | cl;
    while (br) {
      const int i = __builtin_ctzll(br);
      if ((op >> i) & 1) {
        ++depth;
      } else if (--depth == 0) {
        return c + i + 1;
      }
      br &= br - 1;
    }
  }
  return nullptr;
}

/// `p` points at '"'. Returns one past the closing quote or nullptr.
inline const char* match_string(const char* p, const char* end) {
  for (const char* c = p + 1; c < end; ++c) {
    if (*c == '\\') {
      ++c;
    } else if (*c == '"') {
      return c + 1;
    }
  }
  return nullptr;
}

/// End of the JSON value starting at `p` (first non-space character), or
/// nullptr when it does not end within [p, end). A scalar (number, literal)
/// that runs to `end` is complete only when `at_eof`.
inline const char* find_value_end(const char* p, const char* end, bool at_eof) {
  if (p >= end) return nullptr;
  const char c = *p;
  if (c == '{' || c == '[') return match_container(p, end);
  if (c == '"') return match_string(p, end);
  for (const char* q = p; q < end; ++q) {
    const char d = *q;
    if (d == ',' || d == ']' || d == '}' || d == ':' || d == '{' || d == '[' || d == '"' || is_json_ws(d)) {
      return q == p ? p + 1 : q;  // a lone structural char is its own (bad) value
    }
  }
  return at_eof ? end : nullptr;
}

/// True when `s` follows the JSON number grammar.
inline bool json_number_grammar(const char* s, size_t n) {
  size_t i = 0;
  if (i < n && s[i] == '-') ++i;
  if (i >= n) return false;
  if (s[i] == '0') {
    ++i;
  } else if (s[i] >= '1' && s[i] <= '9') {
    while (i < n && s[i] >= '0' && s[i] <= '9') ++i;
  } else {
    return false;
  }
  if (i < n && s[i] == '.') {
    ++i;
    const size_t d = i;
    while (i < n && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == d) return false;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < n && (s[i] == '+' || s[i] == '-')) ++i;
    const size_t d = i;
    while (i < n && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == d) return false;
  }
  return i == n;
}

}  // namespace pasteflow::io::detail
