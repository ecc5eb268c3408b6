#pragma once
// Counter-based random numbers: Philox4x32-10 (Salmon et al., SC'11).
//
// A stream is keyed by (seed, stream_id) -- in a study, (study seed, task
// id) -- and its n-th block of four 32-bit words is a pure function of
// (key, n). Draws therefore never depend on which rank runs a task or in
// what order tasks run.
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>

namespace gradmatch {

class Philox {
 public:
  Philox(std::uint64_t seed, std::uint64_t stream_id) : key_{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)},
        stream_(stream_id) {}

  /// Four 32-bit words of block `counter`.
  std::array<std::uint32_t, 4> block(std::uint64_t counter) const {
    std::array<std::uint32_t, 4> c{static_cast<std::uint32_t>(counter), static_cast<std::uint32_t>(counter >> 32),
                                   static_cast<std::uint32_t>(stream_), static_cast<std::uint32_t>(stream_ >> 32)};
    std::array<std::uint32_t, 2> k = key_;
    for (int round = 0; round < 10; ++round) {
      const std::uint64_t p0 = static_cast<std::uint64_t>(0xD2511F53u) * c[0];
      const std::uint64_t p1 = static_cast<std::uint64_t>(0xCD9E8D57u) * c[2];
      c = {static_cast<std::uint32_t>(p1 >> 32) ^ c[1] ^ k[0], static_cast<std::uint32_t>(p1),
           static_cast<std::uint32_t>(p0 >> 32) ^ c[3] ^ k[1], static_cast<std::uint32_t>(p0)};
      k[0] += 0x9E3779B9u;
      k[1] += 0xBB67AE85u;
    }
    return c;
  }

 private:
  std::array<std::uint32_t, 2> key_;
  std::uint64_t stream_;
};

/// SplitMix64's finaliser (Steele, Lea and Flood, OOPSLA'14): a bijection of
/// 64-bit words whose outputs look independent; mixes several keys into one
/// stream id.
inline std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/// A stream id keyed by a value (its bits) and an integer key: the draws of a
/// task that must not depend on where the value stands in a config's list.
inline std::uint64_t value_keyed_stream(double value, std::uint64_t key) {
  return mix64(std::bit_cast<std::uint64_t>(value) ^ mix64(key));
}

/// Sequential draws from one Philox stream.
class Rng {
 public:
  Rng(std::uint64_t seed, std::uint64_t stream_id) : philox_(seed, stream_id) {}

  /// Uniform in (0, 1), 53 random bits.
  double uniform() {
    const std::uint64_t hi = next32(), lo = next32();
    const std::uint64_t bits = ((hi << 32) | lo) >> 11;
    return (static_cast<double>(bits) + 0.5) * 0x1.0p-53;
  }
  /// Standard normal (Box-Muller; both values of a pair are used).
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double u1 = uniform(), u2 = uniform();
    const double radius = std::sqrt(-2.0 * std::log(u1));
    const double angle = 2.0 * 3.14159265358979323846 * u2;
    spare_ = radius * std::sin(angle);
    has_spare_ = true;
    return radius * std::cos(angle);
  }
  double normal(double mean, double sd) { return mean + sd * normal(); }
  /// Uniform integer in [0, n).
  std::uint64_t below(std::uint64_t n) { return static_cast<std::uint64_t>(uniform() * static_cast<double>(n)) % n; }

 private:
  std::uint32_t next32() {
    if (index_ == 4) {
      words_ = philox_.block(counter_++);
      index_ = 0;
    }
    return words_[index_++];
  }

  Philox philox_;
  std::uint64_t counter_ = 0;
  std::array<std::uint32_t, 4> words_{};
  int index_ = 4;
  double spare_ = 0.0;
  bool has_spare_ = false;
};

}  // namespace gradmatch
