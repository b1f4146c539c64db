// Deterministic randomness keyed by (seed, stream ids): the same sample gets
// the same random numbers whatever the thread count or scheduling.
// Distributions are written here (not <random>'s) so that streams are
// identical across standard libraries.
#pragma once

#include <cmath>
#include <cstdint>
#include <initializer_list>

namespace pasteflow {

/// SplitMix64 finaliser: a good 64-bit mixing function.
constexpr uint64_t mix64(uint64_t x) noexcept {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

/// Combines a seed and any number of ids into one 64-bit key.
inline uint64_t derive_seed(uint64_t seed, std::initializer_list<uint64_t> ids) noexcept {
  uint64_t h = mix64(seed);
  for (uint64_t id : ids) h = mix64(h ^ mix64(id + 0x632be59bd9b4e019ULL));
  return h;
}

/// xoshiro256** seeded by SplitMix64; small, fast, and its state can be
/// saved and restored (checkpoints) as four integers.
class Rng {
 public:
  explicit Rng(uint64_t seed = 0) noexcept { reseed(seed); }
  Rng(uint64_t seed, std::initializer_list<uint64_t> ids) noexcept { reseed(derive_seed(seed, ids)); }

  void reseed(uint64_t seed) noexcept {
    uint64_t z = seed;
    for (auto& s : s_) {
      z += 0x9e3779b97f4a7c15ULL;
      s = mix64(z);
    }
  }

  uint64_t next() noexcept {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  /// Uniform double in [0, 1) with 53 random bits.
  double uniform() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  /// Uniform double in [lo, hi).
  double uniform(double lo, double hi) noexcept { return lo + (hi - lo) * uniform(); }
  /// Uniform integer in [0, n) without modulo bias (Lemire); n > 0.
  uint64_t below(uint64_t n) noexcept {
    unsigned __int128 m = static_cast<unsigned __int128>(next()) * n;
    uint64_t low = static_cast<uint64_t>(m);
    if (low < n) {
      const uint64_t threshold = (0 - n) % n;
      while (low < threshold) {
        m = static_cast<unsigned __int128>(next()) * n;
        low = static_cast<uint64_t>(m);
      }
    }
    return static_cast<uint64_t>(m >> 64);
  }
  /// Uniform integer in [lo, hi] (inclusive); lo <= hi.
  int64_t range(int64_t lo, int64_t hi) noexcept {
    return lo + static_cast<int64_t>(below(static_cast<uint64_t>(hi - lo) + 1));
  }
  bool bernoulli(double p) noexcept { return uniform() < p; }
  /// Standard normal via Box-Muller (one value per call, deterministic).
  double normal() noexcept {
    double u1 = uniform();
    while (u1 <= 0.0) u1 = uniform();
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

  struct State {
    uint64_t s[4];
  };
  State state() const noexcept { return State{{s_[0], s_[1], s_[2], s_[3]}}; }
  void set_state(const State& st) noexcept {
    for (int i = 0; i < 4; ++i) s_[i] = st.s[i];
  }

 private:
  static constexpr uint64_t rotl(uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

}  // namespace pasteflow
