#pragma once
// The studies gradmatch runs, as text: the name a config's `study` key gives,
// the paper figure, one line on what it measures and its paper-scale config.
// Header-only and free of LibTorch, so that `gradmatch studies` and
// `gradmatch run --help` list them without loading the studies themselves
// (registry.cpp maps each name to its study; a test checks the two agree).
#include <string>
#include <string_view>

namespace gradmatch::studies {

struct StudyInfo {
  std::string_view name;     ///< the config's `study` value
  std::string_view figure;   ///< where in the paper
  std::string_view summary;  ///< what it measures, one line
  std::string_view config;   ///< the paper-scale config in the source tree
};

inline constexpr StudyInfo kStudyCatalog[] = {
    {"ols_early_stopping", "Figures 4 and 7", "early stopping as a quadratic penalty in OLS (Ali et al.'s Lambda(t))",
     "configs/ols_early_stopping.toml"},
    {"igr_synthetic", "Figure 6, linear model", "implicit gradient penalty of gradient descent on linear regression",
     "configs/igr_synthetic.toml"},
    {"long_horizon", "appendix H.5", "gradient descent against the modified flow over many steps",
     "configs/long_horizon.toml"},
    {"igr_calibration", "Figure 6, appendix H.5", "implicit gradient penalty of MLPs on Fashion-MNIST, with curvature",
     "configs/igr_calibration.toml"},
    {"elastic_net", "Figure 3, appendix H.2", "explicit elastic-net penalties recovered from trained networks",
     "configs/elastic_net.toml"},
    {"dropout", "Figure 5, appendix H.4", "dropout as an adaptive ridge in ReLU classifiers", "configs/dropout.toml"},
    {"bootstrap", "Algorithm 1", "your TorchScript model retrained on bootstrap resamples; ridge .. sym over a scope",
     "configs/smoke/bootstrap.toml"},
};

/// One line per study: "  name             summary (figure)".
inline std::string study_list() {
  std::string out;
  for (const StudyInfo& s : kStudyCatalog) {
    std::string line = "  ";
    line += s.name;
    line.append(line.size() < 22 ? 22 - line.size() : 1, ' ');
    line += s.summary;
    line += " (";
    line += s.figure;
    line += ")\n";
    out += line;
  }
  return out;
}

}  // namespace gradmatch::studies
