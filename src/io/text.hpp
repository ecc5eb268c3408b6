#pragma once
// String building for error messages (private to src/io).
//
// cat() appends with += rather than operator+: GCC 12 gives a false
// -Wrestrict on `"literal" + std::string&&`. Doubles print in their shortest
// round-trip form ("0.1", "inf", "nan"), not std::to_string's "0.100000".
#include <charconv>
#include <concepts>
#include <string>
#include <string_view>

namespace gradmatch::io::detail {

inline std::string num(double v) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

inline void append(std::string& s, std::string_view a) { s += a; }
inline void append(std::string& s, char a) { s += a; }
inline void append(std::string& s, std::floating_point auto a) { s += num(static_cast<double>(a)); }
template <std::integral T>
  requires(!std::same_as<T, char> && !std::same_as<T, bool>)
void append(std::string& s, T a) {
  s += std::to_string(a);
}

template <class... A>
std::string cat(const A&... a) {
  std::string s;
  (append(s, a), ...);
  return s;
}

}  // namespace gradmatch::io::detail
