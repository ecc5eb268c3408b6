#pragma once
// Text helpers shared by every layer: messages and index casts.
//
// cat() appends with += rather than operator+: GCC 12 gives a false
// -Wrestrict on `"literal" + std::string&&`. Doubles print in their shortest
// round-trip form ("0.1", "inf", "nan"), not std::to_string's "0.100000".
// sz() is the one signed-to-unsigned index cast (sizes are std::int64_t in
// gradmatch, std::vector wants std::size_t).
#include <charconv>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

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

/// A non-negative std::int64_t index or size as std::size_t.
constexpr std::size_t sz(std::int64_t i) { return static_cast<std::size_t>(i); }

}  // namespace gradmatch::text
