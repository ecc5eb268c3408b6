#include "studies/registry.hpp"

#include "core/errors.hpp"
#include "io/config.hpp"
#include "studies/ols_early_stopping.hpp"

namespace gradmatch::studies {

std::vector<std::string> study_names() { return {"ols_early_stopping"}; }

void run_study(const std::string& config_path, const std::string& out_dir, const distributed::Communicator& comm) {
  std::string name;
  distributed::collective(comm, [&] {
    io::ConfigReader peek(config_path);
    name = peek.get_string("study");
    const auto names = study_names();
    if (std::find(names.begin(), names.end(), name) == names.end()) {
      std::string list;
      for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
      throw InputError(config_path + ": key 'study': unknown study '" + name + "'; known studies: " + list);
    }
  });
  // Every rank runs the study: its tasks go through the task farm, and its
  // phases agree on failures themselves.
  run_ols_early_stopping(config_path, out_dir, comm);
}

}  // namespace gradmatch::studies
