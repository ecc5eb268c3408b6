#include "io/provenance.hpp"

#include "core/build_info.hpp"

namespace gradmatch::io {
namespace {

std::string& created_by_storage() {
  static std::string command = "gradmatch";
  return command;
}

std::string& study_storage() {
  static std::string study;
  return study;
}

}  // namespace

void set_created_by(std::string command) { created_by_storage() = std::move(command); }

void set_study(std::string study) { study_storage() = std::move(study); }

// build_info::version views a string literal, so data() is NUL-terminated.
const char* gradmatch_version() { return build_info::version.data(); }

std::vector<std::pair<std::string, std::string>> provenance() {
  std::vector<std::pair<std::string, std::string>> out;
  if (!study_storage().empty()) out.emplace_back("study", study_storage());
  out.emplace_back("gradmatch_version", std::string(build_info::version));
  if (const std::string commit(build_info::git_commit()); !commit.empty()) out.emplace_back("git_commit", commit);
  out.emplace_back("libtorch_version", std::string(build_info::libtorch_version));
  out.emplace_back("created_by", created_by_storage());
  return out;
}

}  // namespace gradmatch::io
