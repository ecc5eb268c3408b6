#include "core/resources.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>

#include "core/text.hpp"

namespace gradmatch::resources {
namespace {

bool g_enabled = true;

std::optional<double> from_environment(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  char* end = nullptr;
  const double d = std::strtod(v, &end);
  if (end == v || *end != '\0' || !(d >= 0.0)) return std::nullopt;
  return d;
}

}  // namespace

void set_resource_check(bool enabled) { g_enabled = enabled; }
bool resource_check_enabled() { return g_enabled; }

std::optional<double> available_memory() {
  if (auto v = from_environment("GRADMATCH_MEMORY_AVAILABLE")) return v;
  std::ifstream in("/proc/meminfo");
  std::string key;
  double value = 0.0;
  std::string unit;
  while (in >> key >> value) {
    std::getline(in, unit);
    if (key == "MemAvailable:") return value * 1024.0;  // kB
  }
  return std::nullopt;
}

std::optional<double> available_disk(const std::filesystem::path& dir) {
  if (auto v = from_environment("GRADMATCH_DISK_AVAILABLE")) return v;
  std::error_code ec;
  std::filesystem::path p = dir.empty() ? std::filesystem::path(".") : dir;
  while (!std::filesystem::exists(p, ec) && p.has_parent_path() && p.parent_path() != p) p = p.parent_path();
  const std::filesystem::space_info s = std::filesystem::space(p, ec);
  if (ec) return std::nullopt;
  return static_cast<double>(s.available);
}

std::string bytes_text(double bytes) {
  static const char* units[] = {"B", "kB", "MB", "GB", "TB", "PB", "EB"};
  std::size_t u = 0;
  while (bytes >= 1000.0 && u + 1 < std::size(units)) {
    bytes /= 1000.0;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.3g %s", bytes, units[u]);
  return buf;
}

std::string count_text(double count) {
  if (count < 1e6) return text::num(std::round(count));
  const int e = static_cast<int>(std::floor(std::log10(count)));
  const double mantissa = count / std::pow(10.0, e);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", mantissa);
  return std::string(buf) == "1" ? text::cat("1e", e) : text::cat(buf, "e", e);
}

void require_memory(const std::string& what, double bytes, const std::string& change) {
  if (!g_enabled) return;
  const std::optional<double> avail = available_memory();
  if (!avail || bytes <= *avail) return;
  throw ResourceError(text::cat(what, " needs ", bytes_text(bytes), " of memory; this machine has ",
                                bytes_text(*avail), " available (MemAvailable); ", change, ", or pass ", kOverrideFlag,
                                " to try anyway"));
}

void require_disk(const std::string& what, double bytes, const std::filesystem::path& dir, const std::string& change) {
  if (!g_enabled) return;
  const std::optional<double> avail = available_disk(dir);
  if (!avail || bytes <= *avail) return;
  throw ResourceError(text::cat(what, " needs ", bytes_text(bytes), " of disk; ", dir.string(), " has ",
                                bytes_text(*avail), " free; ", change, ", or pass ", kOverrideFlag, " to try anyway"));
}

std::int64_t checked_product(const std::vector<std::int64_t>& factors, const std::string& what) {
  std::int64_t out = 1;
  std::string shown;
  for (const std::int64_t f : factors) shown += text::cat(shown.empty() ? "" : " x ", f);
  for (const std::int64_t f : factors) {
    if (f < 0) throw InputError(text::cat(what, ": the size ", f, " is negative"));
    if (f != 0 && out > std::numeric_limits<std::int64_t>::max() / f)
      throw InputError(text::cat(what, ": the product of the declared sizes ", shown,
                                 " overflows 64 bits; the header is corrupt"));
    out *= f;
  }
  return out;
}

}  // namespace gradmatch::resources
