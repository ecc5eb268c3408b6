#include "studies/registry.hpp"

#include "core/errors.hpp"
#include "io/config.hpp"
#include "studies/bootstrap.hpp"
#include "studies/dropout.hpp"
#include "studies/elastic_net.hpp"
#include "studies/igr_calibration.hpp"
#include "studies/igr_synthetic.hpp"
#include "studies/long_horizon.hpp"
#include "studies/ols_early_stopping.hpp"

namespace gradmatch::studies {

std::vector<std::string> study_names() {
  return {"ols_early_stopping", "igr_calibration", "igr_synthetic", "long_horizon", "elastic_net", "dropout", "bootstrap"};
}

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
  if (name == "bootstrap") return run_bootstrap(config_path, out_dir, comm);
  if (name == "dropout") return run_dropout(config_path, out_dir, comm);
  if (name == "elastic_net") return run_elastic_net(config_path, out_dir, comm);
  if (name == "igr_calibration") return run_igr_calibration(config_path, out_dir, comm);
  if (name == "igr_synthetic") return run_igr_synthetic(config_path, out_dir, comm);
  if (name == "long_horizon") return run_long_horizon(config_path, out_dir, comm);
  run_ols_early_stopping(config_path, out_dir, comm);
}

}  // namespace gradmatch::studies
