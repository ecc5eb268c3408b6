#pragma once
// Resource estimates checked before a command starts: memory against
// MemAvailable of /proc/meminfo, disk against the free space of the folder
// written to (std::filesystem::space). A run that cannot fit is refused with
// a ResourceError (bad input, exit code 2) that names the key or file, the
// size needed, the size available and the override, `--ignore-resource-check`
// (which calls set_resource_check(false)). Sizes in bytes are doubles: a
// declared [1e9, 1e6] float64 array is 8e15 bytes, more than any size_t
// arithmetic should be trusted with.
//
// OutOfMemory is the environment failure (exit code 1) an allocation that
// fails anyway becomes, with the size when it is known.
#include <cstdint>
#include <filesystem>
#include <vector>
#include <optional>
#include <stdexcept>
#include <string>

#include "core/errors.hpp"

namespace gradmatch::resources {

class ResourceError : public InputError {
 public:
  using InputError::InputError;
};

class OutOfMemory : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The override flag the messages name.
inline constexpr const char* kOverrideFlag = "--ignore-resource-check";

/// Whether require_memory / require_disk refuse (default true).
void set_resource_check(bool enabled);
bool resource_check_enabled();

/// MemAvailable of /proc/meminfo in bytes; nullopt when unknown.
/// GRADMATCH_MEMORY_AVAILABLE (bytes) replaces it: a testing hook.
std::optional<double> available_memory();
/// Free bytes for an unprivileged writer in `dir` (or its nearest existing
/// parent); nullopt when unknown. GRADMATCH_DISK_AVAILABLE replaces it.
std::optional<double> available_disk(const std::filesystem::path& dir);

/// "8 PB", "1.5 GB", "312 kB", "12 B" (powers of 1000, 2-3 significant digits).
std::string bytes_text(double bytes);
/// "1e+09"-free short form of a count: 1000000000 -> "1e9", 784 -> "784".
std::string count_text(double count);

/// Refuses with ResourceError "WHAT needs SIZE of memory; this machine has
/// AVAILABLE available; CHANGE, or pass --ignore-resource-check" when
/// `bytes` exceeds the available memory (and the check is enabled).
void require_memory(const std::string& what, double bytes, const std::string& change);
/// The same for disk space in `dir`.
void require_disk(const std::string& what, double bytes, const std::filesystem::path& dir, const std::string& change);

/// The product of `factors` (each >= 0), or an InputError "WHAT: the
/// product ... overflows 64 bits" instead of a wrapped value.
std::int64_t checked_product(const std::vector<std::int64_t>& factors, const std::string& what);

}  // namespace gradmatch::resources
