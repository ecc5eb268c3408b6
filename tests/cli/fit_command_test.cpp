// End-to-end: the `gradmatch` executable on hand-made equation files whose
// answers are known exactly, with and without mpirun.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/problems.hpp"
#include "core/regularizers.hpp"
#include "core/rng.hpp"
#include "io/equation_file.hpp"
#include "studies/catalog.hpp"
#include "../required_inputs.hpp"

namespace gradmatch {
namespace {

namespace fs = std::filesystem;

struct CommandRun {
  int exit_code;
  std::string output;  // stdout + stderr
};

CommandRun run(const std::string& args, bool mpi2 = false) {
  const fs::path log = fs::temp_directory_path() / ("gradmatch_cli_" + std::to_string(::getpid()) + ".log");
  std::string cmd;
  if (mpi2) cmd = std::string(GRADMATCH_MPIEXEC_2) + " ";
  cmd += std::string(GRADMATCH_EXE) + " " + args + " > " + log.string() + " 2>&1";
  const int status = std::system(cmd.c_str());
  std::ifstream in(log);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  fs::remove(log);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, text};
}

class FitCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    ::setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    ::setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    dir_ = fs::temp_directory_path() / ("gradmatch_cli_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const Equations& eq) {
    const std::string path = (dir_ / name).string();
    io::write_equation_file(path, eq);
    return path;
  }
  nlohmann::json fit(const std::string& file, const std::string& flags, bool mpi2 = false) {
    const std::string out = (dir_ / "fit.json").string();
    fs::remove(out);
    const CommandRun r = run("fit " + file + " " + flags + " --output " + out, mpi2);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    std::ifstream in(out);
    return nlohmann::json::parse(in);
  }
  fs::path dir_;
};

// Points theta_k ~ N(0, sd^2) with grad_loss_k = -grad R(theta_k) for the given penalty.
template <typename Grad>
Equations exact(std::int64_t m, std::int64_t p, double sd, Grad grad) {
  Rng rng(50, static_cast<std::uint64_t>(m * 100 + p));
  Equations eq{problems::gaussian(rng, m, p, sd), Matrix(m, p), {}, {}, {}, {}};
  std::vector<double> g(static_cast<std::size_t>(p));
  for (std::int64_t k = 0; k < m; ++k) {
    grad(eq.theta.row(k), std::span<double>(g));
    for (std::int64_t j = 0; j < p; ++j) eq.grad_loss(k, j) = -g[static_cast<std::size_t>(j)];
  }
  return eq;
}

TEST_F(FitCommand, RidgeReturnsTheKnownLambdaAndTheDesignKeys) {
  const auto eq = exact(3, 10, 1.0, [](auto t, auto g) { reg::ridge_gradient(t, 0.3, g); });
  const auto j = fit(write("ridge.h5", eq), "--family ridge");
  EXPECT_NEAR(j["lambda"].get<double>(), 0.3, 1e-12);
  for (const char* key : {"family", "lambda", "m", "p", "residual_ratio", "cosine", "condition_number", "method", "ranks",
                          "standard_errors"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["family"], "ridge");
  EXPECT_EQ(j["m"], 3);
  EXPECT_EQ(j["p"], 10);
  EXPECT_EQ(j["ranks"], 1);
  EXPECT_LT(j["residual_ratio"].get<double>(), 1e-12);
}

TEST_F(FitCommand, DiagReturnsTheKnownVector) {
  const std::vector<double> q{0.1, 0.2, 0.3, 0.4, 0.5};
  const auto eq = exact(1, 5, 1.0, [&](auto t, auto g) { reg::diag_gradient(t, q, g); });
  const auto j = fit(write("diag.h5", eq), "--family diag");
  ASSERT_EQ(j["lambda"].size(), 5u);
  for (std::size_t i = 0; i < 5; ++i) EXPECT_NEAR(j["lambda"][i].get<double>(), q[i], 1e-12);
}

TEST_F(FitCommand, SymReturnsTheKnownMatrixByEveryMethod) {
  Rng rng(51, 0);
  const Matrix lambda = problems::random_spd(rng, 4, 10.0, 0.2);
  const auto eq = exact(8, 4, 1.0, [&](auto t, auto g) { reg::sym_gradient(t, lambda, g); });
  const std::string file = write("sym.h5", eq);
  for (const char* method : {"structured", "vech", "vech-plain"}) {
    const auto j = fit(file, std::string("--family sym --method ") + method);
    EXPECT_EQ(j["method"], method);
    for (std::int64_t a = 0; a < 4; ++a)
      for (std::int64_t b = 0; b < 4; ++b)
        EXPECT_NEAR(j["lambda"][static_cast<std::size_t>(a)][static_cast<std::size_t>(b)].get<double>(), lambda(a, b), 1e-10);
  }
}

TEST_F(FitCommand, HuberAndElasticNetReturnTheKnownCoefficients) {
  // sd 0.02 with beta 0.01: coordinates on both sides of beta, so lambda1 and lambda2 are identifiable.
  const auto en = exact(4, 20, 0.02, [](auto t, auto g) { reg::elastic_net_gradient(t, 0.7, 2.0, 0.01, g); });
  const auto j = fit(write("en.h5", en), "--family elastic-net:beta=0.01");
  EXPECT_NEAR(j["lambda"][0].get<double>(), 0.7, 1e-10);
  EXPECT_NEAR(j["lambda"][1].get<double>(), 2.0, 1e-10);
  EXPECT_EQ(j["names"], nlohmann::json({"lambda1", "lambda2"}));
  const auto hu = exact(2, 10, 1.0, [](auto t, auto g) { reg::huber_gradient(t, 0.05, 0.5, g); });
  EXPECT_NEAR(fit(write("huber.h5", hu), "--family huber:beta=0.5")["lambda"].get<double>(), 0.05, 1e-12);
}

TEST_F(FitCommand, FeaturesReturnOneCoefficientPerFeatureDataset) {
  Rng rng(52, 0);
  Equations eq{problems::gaussian(rng, 3, 6), Matrix(3, 6), {}, {}, {}, {}};
  const Matrix f1 = problems::gaussian(rng, 3, 6), f2 = problems::gaussian(rng, 3, 6);
  for (std::int64_t i = 0; i < eq.grad_loss.size(); ++i) eq.grad_loss.data()[i] = -(1.5 * f1.data()[i] - 0.25 * f2.data()[i]);
  eq.features = {{"first", f1}, {"second", f2}};
  const auto j = fit(write("features.h5", eq), "--family features");
  EXPECT_NEAR(j["lambda"][0].get<double>(), 1.5, 1e-12);
  EXPECT_NEAR(j["lambda"][1].get<double>(), -0.25, 1e-12);
  EXPECT_EQ(j["names"], nlohmann::json({"first", "second"}));
}

TEST_F(FitCommand, UnderMpirunTwoRanksGiveTheSameAnswer) {
  Rng rng(53, 0);
  Equations eq = problems::random_sym(rng, 11, 5);
  const std::string file = write("noisy.h5", eq);
  for (const char* flags : {"--family sym", "--family diag", "--family ridge --method normal", "--family ridge"}) {
    const auto one = fit(file, flags);
    const auto two = fit(file, flags, true);
    EXPECT_EQ(two["ranks"], 2);
    const auto a = one["lambda"].flatten(), b = two["lambda"].flatten();
    ASSERT_EQ(a.size(), b.size());
    for (auto it = a.begin(); it != a.end(); ++it)
      EXPECT_NEAR(it.value().get<double>(), b[it.key()].get<double>(), 1e-10 * (1.0 + std::abs(it.value().get<double>())))
          << flags;
  }
}

TEST_F(FitCommand, MalformedInputExitsWithCode2AndWritesNoOutput) {
  const std::string text_file = (dir_ / "notes.h5").string();
  std::ofstream(text_file) << "this is not HDF5\n";
  const std::string out = (dir_ / "fit.json").string();
  for (const std::string& args : {"fit " + text_file + " --family ridge --output " + out,
                                  "fit " + (dir_ / "missing.h5").string() + " --family ridge --output " + out}) {
    const CommandRun r = run(args);
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find("error"), std::string::npos) << r.output;
    EXPECT_FALSE(fs::exists(out));
  }
  const CommandRun two = run("fit " + text_file + " --family ridge --output " + out, true);
  EXPECT_EQ(two.exit_code, 2) << two.output;
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(FitCommand, BadFlagsExitWithCode2AndSayWhatIsAccepted) {
  const auto eq = exact(1, 3, 1.0, [](auto t, auto g) { reg::ridge_gradient(t, 1.0, g); });
  const std::string file = write("ok.h5", eq);
  CommandRun r = run("fit " + file + " --family lasso");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("accepted families"), std::string::npos) << r.output;
  r = run("fit " + file + " --family sym --method qr");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("structured"), std::string::npos) << r.output;
  r = run("fit " + file);
  EXPECT_EQ(r.exit_code, 2);
  r = run("fit --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.output.find("elastic-net:beta=B"), std::string::npos);
}

TEST_F(FitCommand, RcondCutsTheSameSingularValuesOnEveryRouteAndOutOfRangeIsRefused) {
  // Orthogonal candidate columns with singular values 1 and 0.3 (two points,
  // so that two ranks hold one each): --rcond 0.5 drops the second on the
  // serial qr and normal routes and the distributed one alike.
  Equations eq{Matrix(2, 2, {1.0, 1.0, 1.0, 1.0}), Matrix(2, 2, {-1.0, -0.3, -1.0, -0.3}), {}, {}, {}, {}};
  eq.features = {{"a", Matrix(2, 2, {1.0, 0.0, 1.0, 0.0})}, {"b", Matrix(2, 2, {0.0, 0.3, 0.0, 0.3})}};
  const std::string file = write("features.h5", eq);
  for (const bool mpi2 : {false, true})
    for (const char* method : {"qr", "normal"}) {
      const auto cut = fit(file, std::string("--family features -q --rcond 0.5 --method ") + method, mpi2);
      EXPECT_EQ(cut["rank"], 1) << method << mpi2;
      EXPECT_NEAR(cut["lambda"][1].get<double>(), 0.0, 1e-12) << method << mpi2;
      const auto kept = fit(file, std::string("--family features -q --rcond 0.2 --method ") + method, mpi2);
      EXPECT_EQ(kept["rank"], 2) << method << mpi2;
      EXPECT_NEAR(kept["lambda"][1].get<double>(), 1.0, 1e-12) << method << mpi2;
    }
  for (const char* bad : {"-1", "nan", "2", "1", "inf", "0.5x"}) {
    const CommandRun r = run("fit " + file + " --family features --rcond " + bad);
    EXPECT_EQ(r.exit_code, 2) << bad;
    EXPECT_NE(r.output.find(std::string("--rcond: the value '") + bad + "' is not a number in [0, 1)"),
              std::string::npos)
        << r.output;
  }
  const CommandRun batch = run("fit " + file + " --family ridge --batch-size -5");
  EXPECT_EQ(batch.exit_code, 2);
  EXPECT_NE(batch.output.find("--batch-size: the value '-5' is not an integer >= 0"), std::string::npos)
      << batch.output;
}

TEST(Cli, RunDryRunPrintsTasksMemoryDiskTimeAndFilesAndWritesNothing) {
  const fs::path out = fs::temp_directory_path() / ("gradmatch_dry_run_" + std::to_string(::getpid()));
  fs::remove_all(out);
  const CommandRun r =
      run("run " + std::string(GRADMATCH_SOURCE_DIR) + "/configs/smoke/ols_early_stopping.toml --out " + out.string() +
          " --dry-run");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_FALSE(fs::exists(out));
  // configs/smoke: fixed-iterate and variable-stop 2 pools x 20 endpoints,
  // bootstrap 2 x (20 - 1) (endpoint 0 is the canonical run), 3 sigmas x 2 x 19.
  EXPECT_NE(r.output.find("tasks:   232: gradient-descent runs of OLS with n = 200, p = 5 (fixed_iterate 40, "
                          "variable_stop 40, bootstrap 38, sigma_sweep 114)"),
            std::string::npos)
      << r.output;
  // The run store: 232 rows of 2p + 1 = 11 doubles, 8 * 11 + 13 bytes each, plus 64 KiB.
  EXPECT_NE(r.output.find("run store ~89 kB"), std::string::npos) << r.output;
  for (const char* part : {"memory:  ~", "available", "free in", "time:    ~", "writes:  store.h5, results.h5, summary.json",
                           "run_info.json", "check:   fits this machine"})
    EXPECT_NE(r.output.find(part), std::string::npos) << part << "\n" << r.output;
}

TEST(Cli, RunDryRunOnAnExistingDirectoryRefusesWhatTheRunRefusesAndCountsWhatItResumes) {
  const fs::path root = fs::temp_directory_path() / ("gradmatch_dry_resume_" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root);
  const std::string smoke = std::string(GRADMATCH_SOURCE_DIR) + "/configs/smoke/";
  const fs::path done = root / "ols";
  ASSERT_EQ(run("run " + smoke + "ols_early_stopping.toml --out " + done.string()).exit_code, 0);
  const auto listing = [](const fs::path& dir) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string() + " " +
                                                                   std::to_string(fs::last_write_time(e).time_since_epoch().count()));
    std::sort(out.begin(), out.end());
    return out;
  };
  const std::vector<std::string> before = listing(done);
  // The same config: a resume with every task done.
  CommandRun r = run("run " + smoke + "ols_early_stopping.toml --out " + done.string() + " --dry-run");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("  resume:  " + done.string() + "/store.h5 has 232 of 232 tasks done; the run only writes "
                          "outputs that are missing\n"),
            std::string::npos)
      << r.output;
  // Another study, another seed, a file as --out: the run's own refusals, exit code 2.
  std::ofstream(root / "seed57.toml") << [&] {
    std::ifstream in(smoke + "ols_early_stopping.toml");
    std::string text((std::istreambuf_iterator<char>(in)), {});
    text.replace(text.find("seed = 56"), 9, "seed = 57");
    return text;
  }();
  std::ofstream(root / "a_file") << "x";
  const std::vector<std::pair<std::string, std::string>> refused{
      {smoke + "igr_synthetic.toml --out " + done.string(), "was made by study 'ols_early_stopping', not 'igr_synthetic'"},
      {(root / "seed57.toml").string() + " --out " + done.string(), "was made by a different config (seed: 56 there, 57 now)"},
      {smoke + "ols_early_stopping.toml --out " + (root / "a_file").string(), "cannot create the output directory (not a directory)"}};
  for (const auto& [args, message] : refused) {
    r = run("run " + args + " --dry-run");
    EXPECT_EQ(r.exit_code, 2) << args << ": " << r.output;
    EXPECT_NE(r.output.find(message), std::string::npos) << r.output;
    EXPECT_EQ(r.exit_code, run("run " + args).exit_code) << args;  // the run refuses alike
  }
  EXPECT_EQ(listing(done), before);  // nothing written, not even the lock
  fs::remove_all(root);
}

TEST(Cli, RunDryRunNumbersTheTasksAndABadSelectionExitsTwoWritingNothing) {
  const fs::path out = fs::temp_directory_path() / ("gradmatch_tasks_" + std::to_string(::getpid()));
  fs::remove_all(out);
  const std::string config = std::string(GRADMATCH_SOURCE_DIR) + "/configs/smoke/igr_calibration.toml";
  CommandRun r = run("run " + config + " --out " + out.string() + " --dry-run --tasks 2");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  // configs/smoke: widths [8, 16] x learning_rates [0.05, 0.2], one seed, width-major.
  EXPECT_NE(r.output.find("  tasks by number (for --tasks):\n    1  width 8, eta 0.05, seed 0\n"
                          "    2  width 8, eta 0.2, seed 0\n    3  width 16, eta 0.05, seed 0\n"
                          "    4  width 16, eta 0.2, seed 0\n  --tasks 2 selects:\n    2  width 8, eta 0.2, seed 0\n"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(out));
  for (const std::string flags : {"--dry-run --tasks 5", "--tasks 5", "--tasks 1-x"}) {
    r = run("run " + config + " --out " + out.string() + " " + flags);
    EXPECT_EQ(r.exit_code, 2) << flags << ": " << r.output;
    EXPECT_NE(r.output.find("gradmatch run: error: --tasks: "), std::string::npos) << r.output;
    EXPECT_FALSE(fs::exists(out)) << flags;
  }
}

TEST(Cli, AnUnknownCommandIsOneLineWithTheCommandsAndTheClosestOne) {
  CommandRun r = run("fitt");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.output,
            "gradmatch: error: unknown command 'fitt'; the commands are: fit, run, studies, report (did you mean fit?)\n");
  r = run("studys");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("(did you mean studies?)"), std::string::npos) << r.output;
  r = run("fit --no-such-flag x.h5 --family ridge");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_LT(std::count(r.output.begin(), r.output.end(), '\n'), 3) << r.output;  // not the whole help
  EXPECT_NE(r.output.find("gradmatch fit: error:"), std::string::npos) << r.output;
}

TEST_F(FitCommand, WarningsAreInTheJsonAndOnStderrAndTheExitCodeStaysZero) {
  // b_k orthogonal to theta_k: ridge explains nothing (residual ratio 1).
  Equations eq{Matrix(2, 2, {1.0, 0.0, 0.0, 2.0}), Matrix(2, 2, {0.0, 3.0, -1.0, 0.0}), {}, {}, {}, {}};
  const std::string file = write("orthogonal.h5", eq);
  const std::string out = (dir_ / "fit.json").string();
  const CommandRun r = run("fit " + file + " --family ridge --quiet --output " + out);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("gradmatch fit: warning: the ridge family explains little"), std::string::npos) << r.output;
  const auto j = nlohmann::json::parse(std::ifstream(out));
  ASSERT_EQ(j["warnings"].size(), 1u);
  EXPECT_NE(j["warnings"][0].get<std::string>().find("explains little"), std::string::npos);
  // A sym fit of one point in p = 4: underdetermined, 3 more endpoints needed.
  const auto one = exact(1, 4, 1.0, [](auto t, auto g) { reg::ridge_gradient(t, 0.3, g); });
  const auto s = fit(write("one.h5", one), "--family sym");
  ASSERT_EQ(s["warnings"].size(), 1u) << s["warnings"];
  EXPECT_NE(s["warnings"][0].get<std::string>().find("(3 more independent ones)"), std::string::npos) << s["warnings"];
  // A clean fit carries an empty list.
  const auto clean = fit(write("ridge.h5", exact(3, 10, 1.0, [](auto t, auto g) { reg::ridge_gradient(t, 0.3, g); })),
                         "--family ridge");
  EXPECT_TRUE(clean["warnings"].is_array() && clean["warnings"].empty());
}

TEST_F(FitCommand, H5OutputHoldsLambdaAsADatasetAndStatisticsAsAttributes) {
  GRADMATCH_NEEDS_PYTHON3("h5py");
  const std::vector<double> q{0.1, 0.2, 0.3};
  const auto eq = exact(2, 3, 1.0, [&](auto t, auto g) { reg::diag_gradient(t, q, g); });
  const std::string file = write("diag.h5", eq), out = (dir_ / "fit.h5").string();
  const CommandRun r = run("fit " + file + " --family diag -q -o " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string check = gradmatch::test_inputs::python_command() + "-c \"import h5py, numpy as np; f = h5py.File('" + out +
                            "', 'r'); assert np.allclose(f['lambda'][()], [0.1, 0.2, 0.3], atol=1e-12); "
                            "assert f.attrs['family'] == 'diag' and f.attrs['m'] == 2 and f.attrs['p'] == 3; "
                            "assert f.attrs['residual_ratio'] < 1e-12 and list(f.attrs['warnings']) == []; "
                            "assert f['standard_errors'].shape == (3,)\"";
  EXPECT_EQ(std::system(check.c_str()), 0);
}

TEST_F(FitCommand, BadOutputPathsExitWithCode2BeforeAnyWork) {
  const auto eq = exact(3, 10, 1.0, [](auto t, auto g) { reg::ridge_gradient(t, 0.3, g); });
  const std::string file = write("ridge.h5", eq);
  const auto size = fs::file_size(file);
  for (const std::string& out : {(dir_ / "fit.txt").string(), (dir_ / "fit").string(), file,
                                 (dir_ / "missing" / "fit.json").string()}) {
    const CommandRun r = run("fit " + file + " --family ridge --output " + out);
    EXPECT_EQ(r.exit_code, 2) << out << ": " << r.output;
    EXPECT_NE(r.output.find("--output " + out), std::string::npos) << r.output;
  }
  EXPECT_EQ(fs::file_size(file), size);
  EXPECT_EQ(io::read_equation_file(file).theta(2, 9), eq.theta(2, 9));
  EXPECT_FALSE(fs::exists(dir_ / "fit.txt"));
}

TEST_F(FitCommand, FittingAnEquationFileNeedsNeitherLibTorchNorALauncher) {
  // The LibTorch half is missing: fits of equation files still work; --model says what is missing.
  const auto eq = exact(3, 10, 1.0, [](auto t, auto g) { reg::ridge_gradient(t, 0.3, g); });
  const std::string file = write("ridge.h5", eq);
  ::setenv("GRADMATCH_TORCH_EXE", "/nonexistent/gradmatch-torch", 1);
  const CommandRun ok = run("fit " + file + " --family ridge -q -o " + (dir_ / "fit.json").string());
  const CommandRun model = run("fit --model m.pt --data d.h5 --family ridge");
  ::unsetenv("GRADMATCH_TORCH_EXE");
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_EQ(model.exit_code, 1) << model.output;
  EXPECT_NE(model.output.find("/nonexistent/gradmatch-torch"), std::string::npos) << model.output;
}

TEST_F(FitCommand, ReduceNcclWithoutALauncherFitsOnOneRankOrSaysWhatIsMissing) {
  // --reduce nccl takes the distributed path on one rank too (NCCL's id goes
  // out over MPI, the solve runs on a BLACS grid), so the command starts MPI
  // without a launcher as well: on a GPU machine it once called MPI_Bcast
  // before MPI_Init, and Open MPI aborted. Built with NCCL on a GPU: the
  // fit; otherwise exit 2 saying what is missing. (Only a build with NCCL on
  // a GPU reaches MPI on this path: elsewhere the refusal comes first.)
  const auto eq = exact(3, 10, 1.0, [](auto t, auto g) { reg::ridge_gradient(t, 0.3, g); });
  const std::string file = write("ridge.h5", eq), out = (dir_ / "fit.json").string();
  const CommandRun r = run("fit " + file + " --family ridge --method normal --reduce nccl -q -o " + out);
  EXPECT_EQ(r.output.find("MPI_INIT"), std::string::npos) << r.output;
  if (r.exit_code == 0) {
    std::ifstream in(out);
    EXPECT_NEAR(nlohmann::json::parse(in).at("lambda").get<double>(), 0.3, 1e-10);
  } else {
    EXPECT_EQ(r.exit_code, 2) << r.output;
    const bool says = r.output.find("built without NCCL") != std::string::npos ||
                      r.output.find("no CUDA device is visible") != std::string::npos;
    EXPECT_TRUE(says) << r.output;
    EXPECT_FALSE(fs::exists(out));
  }
  // A missing file under --reduce nccl is bad input like any other.
  const CommandRun missing = run("fit " + (dir_ / "missing.h5").string() + " --family ridge --method normal --reduce nccl");
  EXPECT_EQ(missing.exit_code, 2) << missing.output;
  EXPECT_EQ(missing.output.find("MPI_INIT"), std::string::npos) << missing.output;
}

TEST(Cli, StudiesListsEveryStudyOneLineEachWithoutLibTorch) {
  ::setenv("GRADMATCH_TORCH_EXE", "/nonexistent/gradmatch-torch", 1);  // the list needs no LibTorch
  const CommandRun r = run("studies");
  ::unsetenv("GRADMATCH_TORCH_EXE");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  std::size_t lines = 0;
  for (const char c : r.output) lines += c == '\n';
  EXPECT_EQ(lines, std::size(studies::kStudyCatalog)) << r.output;
  for (const auto& s : studies::kStudyCatalog) EXPECT_NE(r.output.find(std::string(s.name)), std::string::npos);
}

TEST(Cli, RunHelpListsTheStudiesWithAnExampleAndSaysHowResumeWorks) {
  const CommandRun r = run("run --help");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  for (const auto& s : studies::kStudyCatalog) EXPECT_NE(r.output.find(std::string(s.name)), std::string::npos);
  EXPECT_NE(r.output.find("gradmatch run configs/smoke/ols_early_stopping.toml --out"), std::string::npos);
  EXPECT_NE(r.output.find("Resume:"), std::string::npos) << r.output;
}

TEST(Cli, AnEmptyTaskSelectionIsRefusedRatherThanRunningEveryTask) {
  // `--tasks "$TASKS"` with TASKS unset in a job script.
  const fs::path out = fs::temp_directory_path() / ("gradmatch_cli_tasks_" + std::to_string(::getpid()));
  const CommandRun r =
      run(std::string("run ") + GRADMATCH_SOURCE_DIR + "/configs/smoke/ols_early_stopping.toml --out " + out.string() +
          " --tasks ''");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--tasks: is empty; give task numbers (e.g. 6 or 1-3,7), or leave --tasks out"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(out));
}

}  // namespace
}  // namespace gradmatch
