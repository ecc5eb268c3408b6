#pragma once
// Text helpers shared by every layer: messages and index casts.
//
// cat() appends with += rather than operator+: GCC 12 gives a false
// -Wrestrict on `"literal" + std::string&&`. Doubles print in their shortest
// round-trip form ("0.1", "inf", "nan"), not std::to_string's "0.100000".
// sz() is the one signed-to-unsigned index cast (sizes are std::int64_t in
// gradmatch, std::vector wants std::size_t).
#include <algorithm>
#include <charconv>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace gradmatch::text {

/// The shortest text that reads back as the same double.
inline std::string num(double v) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

inline void append(std::string& s, std::string_view a) { s += a; }
inline void append(std::string& s, const char* a) { s += a; }
inline void append(std::string& s, char a) { s += a; }
inline void append(std::string& s, std::floating_point auto a) { s += num(static_cast<double>(a)); }
template <std::integral T>
  requires(!std::same_as<T, char> && !std::same_as<T, bool>)
void append(std::string& s, T a) {
  s += std::to_string(a);
}

/// Concatenates strings, characters and numbers: cat("row ", 3, " of ", 0.5).
template <class... A>
std::string cat(const A&... a) {
  std::string s;
  (append(s, a), ...);
  return s;
}

/// `value` for a message: at most `max` characters of it, then "... (N
/// characters)" when longer, so that a megabyte config value or file name is
/// never echoed whole.
inline std::string clip(std::string_view value, std::size_t max = 80) {
  if (value.size() <= max) return std::string(value);
  return cat(value.substr(0, max), "... (", value.size(), " characters)");
}

/// Levenshtein distance (insertions, deletions, substitutions).
inline std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1])});
      diag = up;
    }
  }
  return row[b.size()];
}

/// The candidate closest to `word` within `max_distance` edits, or empty
/// (for "did you mean ...?").
inline std::string closest(std::string_view word, const std::vector<std::string>& candidates,
                           std::size_t max_distance = 2) {
  std::string best;
  std::size_t best_d = max_distance + 1;
  for (const std::string& c : candidates)
    if (const std::size_t d = edit_distance(word, c); d < best_d) {
      best_d = d;
      best = c;
    }
  return best;
}

/// A non-negative std::int64_t index or size as std::size_t.
constexpr std::size_t sz(std::int64_t i) { return static_cast<std::size_t>(i); }

}  // namespace gradmatch::text
