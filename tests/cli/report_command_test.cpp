// End-to-end: `gradmatch report` on the outputs of the smoke studies (shrunk
// further where training dominates). Every number a table prints must be the
// summary.json value it stands for, marks must follow the trust rules, and no
// distance is ever printed with a negative bound.
#include <gtest/gtest.h>
#include <sys/file.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>
#include "../required_inputs.hpp"
#include "../studies/bootstrap_inputs.hpp"

namespace gradmatch {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct CommandRun {
  int exit_code;
  std::string out;  // stdout
  std::string err;  // stderr
};

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

CommandRun gradmatch(const std::string& args) {
  const fs::path base = fs::temp_directory_path() / ("gradmatch_report_" + std::to_string(::getpid()));
  const std::string cmd =
      std::string(GRADMATCH_EXE) + " " + args + " > " + base.string() + ".out 2> " + base.string() + ".err";
  const int status = std::system(cmd.c_str());
  CommandRun r{WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(base.string() + ".out"),
               slurp(base.string() + ".err")};
  fs::remove(base.string() + ".out");
  fs::remove(base.string() + ".err");
  return r;
}

/// configs/smoke/<study>.toml with `key = value` lines replaced (each key must exist).
std::string shrunk_config(const std::string& study, const std::map<std::string, std::string>& edits) {
  std::string text = slurp(std::string(GRADMATCH_SOURCE_DIR) + "/configs/smoke/" + study + ".toml");
  for (const auto& [key, value] : edits) {
    const std::regex line("^" + key + " = .*$", std::regex::multiline);
    EXPECT_TRUE(std::regex_search(text, line)) << "configs/smoke/" << study << ".toml has no key " << key;
    text = std::regex_replace(text, line, key + " = " + value);
  }
  return text;
}


/// One output directory per study for the whole test program, run on first use.
class StudyOutputs {
 public:
  static const fs::path& of(const std::string& study) {
    static StudyOutputs outputs;
    auto it = outputs.dirs_.find(study);
    if (it != outputs.dirs_.end()) return it->second;
    const fs::path dir = outputs.root_ / study;
    const fs::path config = outputs.root_ / (study + ".toml");
    std::ofstream(config) << outputs.config_text(study);
    const CommandRun r = gradmatch("run " + config.string() + " --out " + dir.string());
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return outputs.dirs_.emplace(study, dir).first->second;
  }

 private:
  StudyOutputs() : root_(fs::temp_directory_path() / ("gradmatch_report_studies_" + std::to_string(::getpid()))) {
    ::setenv("OMP_NUM_THREADS", "1", 1);
    ::setenv("OPENBLAS_NUM_THREADS", "1", 1);
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  ~StudyOutputs() { fs::remove_all(root_); }

  static std::string config_text(const std::string& study) {
    if (study == "elastic_net")  // training dominates: fewer examples, units and epochs
      return shrunk_config(study, {{"n", "300"}, {"max_epochs", "25"}, {"hidden", "16"}});
    if (study == "dropout")
      return shrunk_config(
          study, {{"train_subset", "300"}, {"test_subset", "100"}, {"max_epochs", "4"}, {"adam_max_epochs", "30"}});
    return shrunk_config(study, {});
  }

  fs::path root_;
  std::map<std::string, fs::path> dirs_;
};

json summary_of(const fs::path& dir) { return json::parse(slurp(dir / "summary.json")); }

/// The numbers as the report prints them.
std::string g(double x, int digits = 3) {
  if (std::isnan(x)) return "n/a";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", digits, x);
  return buf;
}

/// A printed table: its title line, header cells and rows (cells split on
/// two or more spaces; the first cell of a row is its label).
struct PrintedTable {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  const std::vector<std::string>& row(const std::string& label) const {
    for (const auto& r : rows)
      if (!r.empty() && r[0] == label) return r;
    ADD_FAILURE() << "no row " << label;
    static const std::vector<std::string> none;
    return none;
  }
  /// The index of the column headed `label` (header.size() when none is).
  std::size_t column(const std::string& label) const {
    std::size_t col = 1;
    while (col < header.size() && header[col] != label) ++col;
    return col;
  }
};

std::vector<std::string> split_cells(const std::string& line) {
  std::vector<std::string> cells;
  static const std::regex sep(" {2,}");
  const std::string trimmed = std::regex_replace(line, std::regex("^ +| +$"), "");
  for (std::sregex_token_iterator it(trimmed.begin(), trimmed.end(), sep, -1), end; it != end; ++it)
    cells.push_back(*it);
  return cells;
}

/// The table whose title line starts with `title`.
PrintedTable table(const std::string& text, const std::string& title) {
  std::istringstream in(text);
  std::string line;
  PrintedTable t;
  while (std::getline(in, line))
    if (line.rfind(title, 0) == 0) break;
  if (!in) {
    ADD_FAILURE() << "no table titled '" << title << "' in\n" << text;
    return t;
  }
  std::getline(in, line);
  t.header = split_cells(line);
  std::getline(in, line);  // dashes
  while (std::getline(in, line) && !line.empty() && line.rfind("  (", 0) != 0) t.rows.push_back(split_cells(line));
  return t;
}

/// Cells of a JSON report table as [row][column] objects.
const json& json_table(const json& report, const std::string& title_prefix) {
  for (const json& t : report.at("tables"))
    if (t.at("title").get<std::string>().rfind(title_prefix, 0) == 0) return t;
  ADD_FAILURE() << "no JSON table titled '" << title_prefix << "'";
  static const json none = json::object();
  return none;
}

bool ends_with_star(const std::string& s) { return !s.empty() && s.back() == '*'; }

class ReportCommand : public ::testing::Test {
 protected:
  static CommandRun report(const fs::path& dir, const std::string& flags = "") {
    CommandRun r = gradmatch("report " + dir.string() + " " + flags);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r;
  }
};

TEST_F(ReportCommand, ElasticNetPrintsALambda1ByLambda2TableOfMeansAndStandardErrors) {
  const fs::path dir = StudyOutputs::of("elastic_net");
  const json s = summary_of(dir);
  const std::string text = report(dir).out;
  for (int which = 1; which <= 2; ++which) {
    const std::string k = "lambda" + std::to_string(which);
    const PrintedTable t = table(text, "λ" + std::to_string(which) + " estimate, mean ± SE");
    ASSERT_EQ(t.header.size(), 1 + s.at("lambda2").size());
    for (std::size_t j = 0; j < s.at("lambda2").size(); ++j)
      EXPECT_EQ(t.header[j + 1], g(s.at("lambda2")[j].get<double>(), 6));
    ASSERT_EQ(t.rows.size(), s.at("lambda1").size());
    for (const json& cell : s.at("cells")) {
      const auto& row = t.row(g(cell.at("lambda1").get<double>(), 6));
      std::size_t col = 0;
      while (col < s.at("lambda2").size() && s.at("lambda2")[col] != cell.at("lambda2")) ++col;
      ASSERT_LT(col + 1, row.size()) << text;
      std::string shown = row[col + 1];
      if (ends_with_star(shown)) shown.pop_back();
      EXPECT_EQ(shown, g(cell.at(k + "_hat_mean").get<double>()) + " ± " + g(cell.at(k + "_hat_se").get<double>()));
    }
  }
}

TEST_F(ReportCommand, ElasticNetMarksExactlyTheEstimatesThatFailTheTrustRule) {
  const fs::path dir = StudyOutputs::of("elastic_net");
  const json s = summary_of(dir);
  const std::string text = report(dir).out;
  int marked = 0;
  for (int which = 1; which <= 2; ++which) {
    const std::string k = "lambda" + std::to_string(which);
    const PrintedTable t = table(text, "λ" + std::to_string(which) + " estimate, mean ± SE");
    for (const json& cell : s.at("cells")) {
      std::size_t col = 0;
      while (s.at("lambda2")[col] != cell.at("lambda2")) ++col;
      const std::string shown = t.row(g(cell.at("lambda1").get<double>(), 6)).at(col + 1);
      // The rule as documented: residual ratio <= 0.8, condition number <= 1e3
      // (null: rank deficient), and the estimate more than 2 SE above 0.
      const json& cond = cell.at("condition_number_median");
      const bool trusted = cell.at("residual_ratio_median").get<double>() <= 0.8 && cond.is_number() &&
                           cond.get<double>() <= 1e3 &&
                           cell.at(k + "_hat_mean").get<double>() > 2.0 * cell.at(k + "_hat_se").get<double>();
      EXPECT_EQ(ends_with_star(shown), !trusted) << shown;
      marked += !trusted;
    }
  }
  // The smallest penalties are not identified at any scale: something is marked, and explained.
  EXPECT_GT(marked, 0);
  EXPECT_NE(text.find(" * not identified"), std::string::npos) << text;
}

TEST_F(ReportCommand, JsonCarriesTheSummaryNumbersUnrounded) {
  const fs::path dir = StudyOutputs::of("elastic_net");
  const json s = summary_of(dir);
  const json j = json::parse(report(dir, "--json").out);
  EXPECT_EQ(j.at("study"), "elastic_net");
  const json& t = json_table(j, "λ2 estimate");
  for (const json& cell : s.at("cells")) {
    bool found = false;
    for (const json& row : t.at("rows")) {
      if (row.at("label") != g(cell.at("lambda1").get<double>(), 6)) continue;
      for (std::size_t c = 0; c < t.at("columns").size(); ++c) {
        if (t.at("columns")[c] != g(cell.at("lambda2").get<double>(), 6)) continue;
        EXPECT_EQ(row.at("cells")[c].at("value").get<double>(), cell.at("lambda2_hat_mean").get<double>());
        EXPECT_EQ(row.at("cells")[c].at("se").get<double>(), cell.at("lambda2_hat_se").get<double>());
        found = true;
      }
    }
    EXPECT_TRUE(found) << cell.dump();
  }
}

TEST_F(ReportCommand, DropoutPrintsARateByArchitectureTableMarkedByTheStoredTrustFlag) {
  GRADMATCH_NEEDS_FASHION_MNIST();
  const fs::path dir = StudyOutputs::of("dropout");
  const json s = summary_of(dir);
  const std::string text = report(dir).out;
  const PrintedTable t = table(text, "ridge λ estimate, median over seeds");
  ASSERT_EQ(t.rows.size(), s.at("rates").size());
  ASSERT_EQ(t.header.size(), 1 + s.at("depths").size() * s.at("widths").size());
  bool untrusted = false;
  for (const json& cell : s.at("cells")) {
    const std::string arch = g(cell.at("depth").get<double>(), 6) + "×" + g(cell.at("width").get<double>(), 6);
    const std::size_t col = t.column(arch);
    ASSERT_LT(col, t.header.size()) << arch;
    const std::string shown = t.row(g(cell.at("rate").get<double>(), 6)).at(col);
    const bool trusted = cell.at("trusted").get<bool>();
    EXPECT_EQ(shown, g(cell.at("lambda_hat_median").get<double>()) + (trusted ? "" : "*"));
    untrusted |= !trusted;
  }
  if (untrusted) {
    EXPECT_NE(text.find(" * untrusted: the endpoints are not stationary for the objective dropout trains on"), std::string::npos) << text;
  }
}

TEST_F(ReportCommand, DropoutPrintsTheEpochsTrainedAndTheBestValidationEpochOfEachCell) {
  GRADMATCH_NEEDS_FASHION_MNIST();
  const fs::path dir = StudyOutputs::of("dropout");
  const std::string text = report(dir).out;
  for (const auto& [title, key] : {std::pair{"epochs trained, median over seeds", "epochs_median"},
                                   std::pair{"epoch of the best validation loss (early stopping)", "best_epoch_median"}}) {
    const PrintedTable t = table(text, title);
    for (const json& cell : summary_of(dir).at("cells")) {
      const std::string arch = g(cell.at("depth").get<double>(), 6) + "×" + g(cell.at("width").get<double>(), 6);
      ASSERT_LT(t.column(arch), t.header.size()) << title << ": " << arch;
      EXPECT_EQ(t.row(g(cell.at("rate").get<double>(), 6)).at(t.column(arch)), g(cell.at(key).get<double>(), 4)) << title;
      // Early stopping is on (patience 10): every network has a best epoch, within the epochs it trained.
      EXPECT_GE(cell.at("best_epoch_median").get<double>(), 1.0);
      EXPECT_LE(cell.at("best_epoch_median").get<double>(), cell.at("epochs_median").get<double>());
    }
  }
}

TEST_F(ReportCommand, DropoutPrintsTheTrendTestsWithinSeedsOfTheSummary) {
  GRADMATCH_NEEDS_FASHION_MNIST();
  const fs::path dir = StudyOutputs::of("dropout");
  const json s = summary_of(dir);
  const PrintedTable t = table(report(dir).out, "trend with the dropout rate");
  ASSERT_EQ(t.rows.size(), s.at("trends").size());
  for (const json& trend : s.at("trends")) {
    const auto& row = t.row(g(trend.at("depth").get<double>(), 6) + "×" + g(trend.at("width").get<double>(), 6));
    ASSERT_EQ(row.size(), t.header.size());
    EXPECT_EQ(row.at(t.column("Spearman(λ, rate)")), g(trend.at("spearman").get<double>(), 2));
    for (const auto& [key, label, p_key, p_label] :
         {std::tuple{"seed_trend", "λ within seeds", "p_increasing", "p (λ rises)"},
          std::tuple{"seed_trend_penalty", "λ_R within seeds", "p_increasing", "p (λ_R rises)"},
          std::tuple{"seed_trend_nonstationary", "λ_ns within seeds", "p_decreasing", "p (λ_ns falls)"}}) {
      EXPECT_EQ(row.at(t.column(label)), g(trend.at(key).at("statistic").get<double>(), 2)) << key;
      EXPECT_EQ(row.at(t.column(p_label)), g(trend.at(key).at(p_key).get<double>(), 2)) << key;
    }
  }
}

TEST_F(ReportCommand, OlsNeverPrintsANegativeBoundForADistance) {
  const fs::path dir = StudyOutputs::of("ols_early_stopping");
  const json s = summary_of(dir);
  // The smoke study's σ sweep has a mean-distance interval reaching below 0.
  double lowest = 0.0;
  for (const json& v : s.at("sigma_sweep").at("ci_low")) lowest = std::min(lowest, v.get<double>());
  for (const char* band : {"fixed_iterate_distance_by_m", "variable_stop_distance_by_m", "bootstrap_distance_by_m"})
    for (const json& v : s.at(band).at("ci_low")) lowest = std::min(lowest, v.get<double>());
  ASSERT_LT(lowest, 0.0) << "no negative lower bound to clip in this summary";

  const std::string text = report(dir).out;
  EXPECT_EQ(text.find("[-"), std::string::npos) << text;
  EXPECT_NE(text.find(" ^ the 95% interval of this mean distance reaches below 0"), std::string::npos) << text;
  const PrintedTable sweep = table(text, "bootstrap recovery against the noise level σ");
  const json& sw = s.at("sigma_sweep");
  for (std::size_t i = 0; i < sw.at("sigma").size(); ++i) {
    const double low = sw.at("ci_low")[i].get<double>();
    std::string shown = sweep.row(g(sw.at("sigma")[i].get<double>(), 6)).at(1);
    if (ends_with_star(shown)) shown.pop_back();
    EXPECT_EQ(shown, g(sw.at("distance")[i].get<double>()) + " [" + (low < 0 ? "0^" : g(low)) + ", " +
                         g(sw.at("ci_high")[i].get<double>()) + "]");
  }
  // --json: the bound as shown, and the value it was clipped from.
  const json j = json::parse(report(dir, "--json").out);
  const json& t = json_table(j, "bootstrap recovery against the noise level σ");
  for (std::size_t i = 0; i < t.at("rows").size(); ++i) {
    const json& cell = t.at("rows")[i].at("cells")[0];
    EXPECT_GE(cell.at("ci_low").get<double>(), 0.0);
    if (sw.at("ci_low")[i].get<double>() < 0) {
      EXPECT_EQ(cell.at("ci_low_clipped_from").get<double>(), sw.at("ci_low")[i].get<double>());
    }
  }
}

TEST_F(ReportCommand, OlsTablesShowTheDistanceBandsAndTheLambdaTraceOfTheSummary) {
  const fs::path dir = StudyOutputs::of("ols_early_stopping");
  const json s = summary_of(dir);
  const std::string text = report(dir).out;
  const PrintedTable by_m = table(text, "distance ‖Λ̂_m − Λ‖_F by pool size m");
  const json& fixed = s.at("fixed_iterate_distance_by_m");
  ASSERT_EQ(by_m.header.at(1), "fixed iterate");
  for (std::size_t i = 0; i < fixed.at("m").size(); ++i) {
    std::string shown = by_m.row(g(fixed.at("m")[i].get<double>(), 6)).at(1);
    const double base = fixed.contains("zero_baseline") ? fixed.at("zero_baseline").get<double>() : NAN;
    EXPECT_EQ(ends_with_star(shown), fixed.at("mean")[i].get<double>() >= base) << shown;
    EXPECT_EQ(shown.substr(0, shown.find(" [")), g(fixed.at("mean")[i].get<double>()));
  }
  // The bootstrap column is marked where it is no better than Λ̂ = 0.
  const json& boot = s.at("bootstrap_distance_by_m");
  for (std::size_t i = 0; i < boot.at("m").size(); ++i) {
    const std::string shown = by_m.row(g(boot.at("m")[i].get<double>(), 6)).at(3);
    EXPECT_EQ(ends_with_star(shown), boot.at("mean")[i].get<double>() >= boot.at("zero_baseline").get<double>());
  }
  const PrintedTable trace = table(text, "scalar ridge λ along the GD path");
  const json& tr = s.at("lambda_trace");
  for (std::size_t i = 0; i < tr.at("t").size(); ++i) {
    const auto& row = trace.row(g(tr.at("t")[i].get<double>(), 6));
    EXPECT_EQ(row.at(1), g(tr.at("closed")[i].get<double>()));
    EXPECT_EQ(row.at(3), g(tr.at("theory")[i].get<double>()));
  }
}

TEST_F(ReportCommand, IgrSyntheticPrintsTheRatioToEtaPOver4ByStepSizeAndDimension) {
  const fs::path dir = StudyOutputs::of("igr_synthetic");
  const json s = summary_of(dir);
  const PrintedTable t = table(report(dir).out, "λ estimate / (ηp/4), mean over seeds");
  for (const json& cell : s.at("cells")) {
    const std::string p = "p = " + g(cell.at("p").get<double>(), 6);
    const std::size_t col = t.column(p);
    ASSERT_LT(col, t.header.size()) << p;
    EXPECT_EQ(t.row(g(cell.at("eta").get<double>(), 6)).at(col), g(cell.at("ratio_mean").get<double>(), 4) + " (" +
                                                                     g(cell.at("ratio_min").get<double>(), 4) + " to " +
                                                                     g(cell.at("ratio_max").get<double>(), 4) + ")");
  }
}

TEST_F(ReportCommand, IgrSyntheticPrintsTheLargestGapToTheSpectralFactorPerCell) {
  const fs::path dir = StudyOutputs::of("igr_synthetic");
  const json s = summary_of(dir);
  const PrintedTable t = table(report(dir).out, "largest |ratio - spectral finite-step factor|");
  std::map<std::pair<double, double>, double> largest;  // (eta, p) -> max over seeds
  for (const json& run : s.at("runs")) {
    double& m = largest[{run.at("eta").get<double>(), run.at("p").get<double>()}];
    m = std::max(m, std::abs(run.at("ratio").get<double>() - run.at("finite_step_factor_spectral").get<double>()));
  }
  ASSERT_FALSE(largest.empty());
  for (const auto& [cell, gap] : largest) {
    const std::string p = "p = " + g(cell.second, 6);
    const std::size_t col = t.column(p);
    ASSERT_LT(col, t.header.size()) << p;
    EXPECT_EQ(t.row(g(cell.first, 6)).at(col), g(gap, 2));
    EXPECT_LT(gap, 1e-8);  // a quadratic: the ratio is the spectral factor
  }
}

TEST_F(ReportCommand, LongHorizonPrintsBothDistancesAndTheirRatioPerStepSize) {
  const fs::path dir = StudyOutputs::of("long_horizon");
  const json s = summary_of(dir);
  const PrintedTable t = table(report(dir).out, "distance of GD from the gradient flow");
  ASSERT_EQ(t.rows.size(), s.at("runs").size());
  for (const json& run : s.at("runs")) {
    const auto& row = t.row(g(run.at("eta").get<double>(), 6));
    EXPECT_EQ(row.at(1), g(run.at("final_dist_flow").get<double>()));
    EXPECT_EQ(row.at(2), g(run.at("final_dist_modified").get<double>()));
    EXPECT_EQ(row.at(3), g(run.at("ratio").get<double>()));
    EXPECT_EQ(row.at(4), g(4.0 * run.at("eta").get<double>() / 3.0));
  }
}

TEST_F(ReportCommand, IgrCalibrationPrintsTheFiniteStepFactorsBesideTheRatios) {
  GRADMATCH_NEEDS_FASHION_MNIST();
  const fs::path dir = StudyOutputs::of("igr_calibration");
  const json s = summary_of(dir);
  const std::string out = report(dir).out;
  const PrintedTable single = table(out, "finite-step factor r(η s_eff) (mean over seeds");
  const PrintedTable spectral = table(out, "spectral finite-step factor");
  const PrintedTable third = table(out, "third-order term");
  for (const json& run : s.at("runs")) {
    if (!(run.at("status") == "ok" || run.at("status") == 0)) continue;
    const std::string w = "width " + g(run.at("width").get<double>(), 6);
    const std::size_t col = single.column(w);
    ASSERT_LT(col, single.header.size()) << w;
    const std::string eta = g(run.at("eta").get<double>(), 6);
    const std::string mark = run.at("residual_ratio").get<double>() <= 0.5 ? "" : "*";
    EXPECT_EQ(single.row(eta).at(col), g(run.at("finite_step_factor").get<double>()) + mark);
    EXPECT_EQ(spectral.row(eta).at(col), g(run.at("finite_step_factor_spectral").get<double>()) + mark);
    EXPECT_EQ(third.row(eta).at(col), g(run.at("third_order_term").get<double>(), 2) + mark);
  }
}

TEST_F(ReportCommand, IgrCalibrationPrintsAStepSizeByWidthTableOfRatios) {
  GRADMATCH_NEEDS_FASHION_MNIST();
  const fs::path dir = StudyOutputs::of("igr_calibration");
  const json s = summary_of(dir);
  const PrintedTable t = table(report(dir).out, "λ estimate / (ηp/4) (mean over seeds");
  for (const json& run : s.at("runs")) {
    const std::string w = "width " + g(run.at("width").get<double>(), 6);
    const std::size_t col = t.column(w);
    ASSERT_LT(col, t.header.size()) << w;
    const std::string shown = t.row(g(run.at("eta").get<double>(), 6)).at(col);
    // One seed per cell in the smoke config; a status is a word or the code 0 (ok).
    if (run.at("status") == "ok" || run.at("status") == 0) {
      EXPECT_EQ(shown, g(run.at("ratio").get<double>()) + (run.at("residual_ratio").get<double>() <= 0.5 ? "" : "*"));
    } else {
      EXPECT_TRUE(ends_with_star(shown)) << shown;
    }
  }
}

TEST_F(ReportCommand, AnEquationFileIsDescribedAsJson) {
  const fs::path dir = StudyOutputs::of("ols_early_stopping");
  const json j = json::parse(report(dir / "equations_fixed_iterate_pool0.h5", "--json").out);
  const json s = summary_of(dir);
  // A pool holds as many endpoints as the largest pool size of the fixed-iterate curve.
  EXPECT_EQ(j.at("points").get<double>(), s.at("fixed_iterate_distance_by_m").at("m").back().get<double>());
  EXPECT_EQ(j.at("parameters").get<int>(), 5);  // configs/smoke/ols_early_stopping.toml: p = 5
  EXPECT_EQ(j.at("target"), false);
  EXPECT_EQ(j.at("values_checked"), true);  // small: read and found finite, as fit reads it
}

TEST_F(ReportCommand, ARunStillCreatingItsStoreIsReportedAsStarting) {
  const fs::path dir = fs::temp_directory_path() / ("gradmatch_report_starting_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  // What a starting run holds: the lock (flock), and the store being filled.
  const int lock = ::open((dir / "store.lock").c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(lock, 0);
  ASSERT_EQ(::flock(lock, LOCK_EX | LOCK_NB), 0);
  std::ofstream(dir / "store.h5.partial") << "";
  CommandRun r = gradmatch("report " + dir.string());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, dir.string() + ": a run is creating its run store here; no task is done yet\n");
  r = gradmatch("report --json " + dir.string());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out).at("starting"), true);
  ::close(lock);  // the run stopped before its store was made: the lock file stays, held by no one
  r = gradmatch("report " + dir.string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("no summary.json here"), std::string::npos) << r.err;
  fs::remove_all(dir);
}

TEST_F(ReportCommand, AnUnfinishedRunSaysHowManyTasksOfEachTableAreDone) {
  // igr_synthetic's smoke config: tables p3 (tasks 1-2) and p5 (tasks 3-4).
  const fs::path dir = fs::temp_directory_path() / ("gradmatch_report_parts_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const std::string run =
      "run " + std::string(GRADMATCH_SOURCE_DIR) + "/configs/smoke/igr_synthetic.toml --out " + dir.string();
  ASSERT_EQ(gradmatch(run + " --tasks 3").exit_code, 0);
  CommandRun r = gradmatch("report " + dir.string());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find(dir.string() + ": igr_synthetic, not finished: 1 of 4 tasks done\n  table p3: 0 of 2 done\n"
                                      "  table p5: 1 of 2 done\n  no outputs yet"),
            std::string::npos)
      << r.out;
  r = gradmatch("report " + dir.string() + " --json");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const json doc = json::parse(r.out);
  EXPECT_EQ(doc.at("finished"), false);
  EXPECT_EQ(doc.at("tasks"), json({{"total", 4}, {"finished", 1}, {"diverged", 0}}));
  ASSERT_EQ(gradmatch(run).exit_code, 0);  // the rest: now a finished run with its tables
  r = gradmatch("report " + dir.string());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.find("not finished"), std::string::npos) << r.out;
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "store.h5") << "not HDF5";
  r = gradmatch("report " + dir.string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find((dir / "store.h5").string() + ": not a gradmatch run store"), std::string::npos) << r.err;
  fs::remove_all(dir);
}

TEST_F(ReportCommand, BootstrapPrintsEachFitsResidualRatioCosineAndRankFromTheSummary) {
  const fs::path dir = fs::temp_directory_path() / ("gradmatch_report_bootstrap_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "in");
  const auto inputs = gradmatch::studies::test_support::write_bootstrap_inputs(dir / "in");
  GRADMATCH_NEEDS(inputs.skip.empty(), inputs.skip);
  ASSERT_TRUE(inputs.error.empty()) << inputs.error;
  fs::copy_file(std::string(GRADMATCH_SOURCE_DIR) + "/configs/smoke/bootstrap.toml", dir / "in" / "bootstrap.toml");
  ASSERT_EQ(gradmatch("run " + (dir / "in" / "bootstrap.toml").string() + " --out " + (dir / "out").string()).exit_code,
            0);
  const json s = summary_of(dir / "out");
  const std::string text = report(dir / "out").out;
  EXPECT_NE(text.find("  replicates: 4\n  scope (p = 6): out.weight [1,5], out.bias [1]\n"), std::string::npos) << text;
  const PrintedTable t = table(text, "fits of the pooled equations");
  ASSERT_EQ(t.rows.size(), s.at("fits").size());
  for (const auto& [family, fit] : s.at("fits").items()) {
    const auto& row = t.row(family);
    ASSERT_EQ(row.size(), 5u) << text;
    const std::string flag = fit.at("warnings").empty() ? "" : "*";  // a fit with warnings is marked untrusted
    EXPECT_EQ(row[1], g(fit.at("residual_ratio").get<double>()) + flag);
    EXPECT_EQ(row[2], g(fit.at("cosine").get<double>()) + flag);
    EXPECT_EQ(row[3], std::to_string(fit.at("rank").get<int>()) + " / " + std::to_string(fit.at("unknowns").get<int>()));
    EXPECT_EQ(row[4], std::to_string(fit.at("warnings").size()));
  }
  fs::remove_all(dir);
}

TEST_F(ReportCommand, AMissingOrCutShortOutputIsNotedWithHowToWriteItAgain) {
  const fs::path dir = fs::temp_directory_path() / ("gradmatch_report_damaged_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  ASSERT_EQ(gradmatch("run " + std::string(GRADMATCH_SOURCE_DIR) + "/configs/smoke/igr_synthetic.toml --out " +
                      dir.string())
                .exit_code,
            0);
  EXPECT_EQ(report(dir).out.find("note:"), std::string::npos);
  fs::resize_file(dir / "results.h5", 100);
  const std::string note = "  note: results.h5 (cut short); run the study's command (run_info.json: created_by) on "
                           "this directory again to write its outputs from the run store\n";
  EXPECT_NE(report(dir).out.find(note), std::string::npos);
  fs::remove(dir / "results.h5");
  EXPECT_NE(report(dir).out.find("  note: results.h5 (missing); run the study's command"), std::string::npos);
  fs::remove_all(dir);
}

TEST_F(ReportCommand, ADirectoryWithoutASummaryIsBadInputNamingIt) {
  const fs::path empty = fs::temp_directory_path() / ("gradmatch_report_empty_" + std::to_string(::getpid()));
  fs::create_directories(empty);
  const CommandRun r = gradmatch("report " + empty.string() + " --json");
  fs::remove_all(empty);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find(empty.string() + ": no summary.json here"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST_F(ReportCommand, AStudysOwnOutputFileIsBadInputPointingAtItsDirectory) {
  const fs::path dir = fs::temp_directory_path() / ("gradmatch_report_file_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "summary.json") << "{}";
  const CommandRun r = gradmatch("report " + (dir / "summary.json").string());
  fs::remove_all(dir);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find((dir / "summary.json").string() + ": summary.json is one of a study's outputs; report reads "
                       "the study's directory: gradmatch report " + dir.string()),
            std::string::npos)
      << r.err;
}

}  // namespace
}  // namespace gradmatch
