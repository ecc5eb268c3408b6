#include "io/file_bytes.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "core/errors.hpp"
#include "core/text.hpp"

namespace gradmatch::io {
namespace {

/// Bytes this process may still write before the injected ENOSPC; negative:
/// no injection. The count restarts whenever the variable's value changes.
std::int64_t injected_budget(std::int64_t written_now) {
  static std::string seen;
  static std::int64_t written = 0;
  const char* v = std::getenv("GRADMATCH_FAULT_INJECT");
  constexpr std::string_view prefix = "enospc-after:";
  const std::string value = v ? v : "";
  if (value != seen) {
    seen = value;
    written = 0;
  }
  written += written_now;
  if (std::string_view(value).substr(0, prefix.size()) != prefix) return -1;
  return std::max<std::int64_t>(0, std::strtoll(value.c_str() + prefix.size(), nullptr, 10) - written);
}

[[noreturn]] void fail(const std::string& path, const std::string& shown, int err, int fd) {
  if (fd >= 0) ::close(fd);
  std::error_code ec;
  std::filesystem::remove(path, ec);
  if (err == ENOSPC || err == EDQUOT) throw std::runtime_error(disk_full_message(shown));
  throw std::runtime_error(text::cat(shown, ": cannot write the file (", std::strerror(err), ")"));
}

}  // namespace

std::string disk_full_message(const std::string& path) {
  return text::cat("disk full while writing ", path, "; free space and re-run the same command to resume");
}

void write_file_bytes(const std::string& path, std::string_view bytes, const std::string& shown_name) {
  const std::string& shown = shown_name.empty() ? path : shown_name;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT || err == ENOTDIR || err == EACCES || err == EISDIR || err == EROFS || err == EPERM)
      throw InputError(text::cat(shown, ": cannot create the file (", std::strerror(err),
                                 "); check that its directory exists and is writable"));
    fail(path, shown, err, -1);
  }
  std::size_t done = 0;
  while (done < bytes.size()) {
    std::size_t want = bytes.size() - done;
    if (const std::int64_t budget = injected_budget(0); budget >= 0) {
      if (budget == 0) fail(path, shown, ENOSPC, fd);
      want = std::min<std::size_t>(want, static_cast<std::size_t>(budget));
    }
    const ssize_t n = ::write(fd, bytes.data() + done, want);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(path, shown, errno, fd);
    }
    done += static_cast<std::size_t>(n);
    injected_budget(n);
  }
  if (::close(fd) != 0) fail(path, shown, errno, -1);
}

}  // namespace gradmatch::io
