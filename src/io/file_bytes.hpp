#pragma once
// Output files written in one place: HDF5 outputs are built in memory (the
// core driver, nothing on disk) and their finished image is written here
// with plain POSIX writes, so that a full disk is one clear error -- never a
// half-flushed HDF5 file that the library tries to close again at exit.
//
// A write that fails with ENOSPC or EDQUOT throws a std::runtime_error
// "disk full while writing FILE; free space and re-run the same command to
// resume" (an environment failure: exit code 1); the file is removed.
//
// Testing hook: GRADMATCH_FAULT_INJECT=enospc-after:N makes these writers
// fail with ENOSPC once N bytes have been written by this process (so tests
// can fill the disk where no small file system can be mounted).
#include <cstdint>
#include <string>
#include <string_view>

namespace gradmatch::io {

/// Writes `bytes` to `path` (created or truncated); messages name `shown`
/// (default: `path`), e.g. the final name of a temporary file.
void write_file_bytes(const std::string& path, std::string_view bytes, const std::string& shown = "");

/// The message of a full disk at `path`.
std::string disk_full_message(const std::string& path);

}  // namespace gradmatch::io
