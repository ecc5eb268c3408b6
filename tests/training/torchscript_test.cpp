// A user's model: make_torchscript_model.py scripts a small MLP with Debian's
// python3-torch, trains it with an explicit ridge penalty to a stationary
// point in float64 and saves model.pt + data.h5. Then
//   gradmatch fit --model model.pt --data data.h5 --loss mse --family ridge
// must return that lambda, and the C++ view of the module must agree with
// Python's forward and gradient.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/errors.hpp"
#include "core/fit.hpp"
#include "io/equation_file.hpp"
#include "io/hdf5_file.hpp"
#include "test_support.hpp"
#include "training/endpoint.hpp"
#include "training/idx.hpp"
#include "training/model_equations.hpp"
#include "training/tensor_bridge.hpp"
#include "training/torchscript.hpp"
#include "../required_inputs.hpp"

namespace gradmatch::training {
namespace {

namespace fs = std::filesystem;

struct CommandRun {
  int exit_code;
  std::string output;
};

CommandRun run(const std::string& command, const fs::path& dir) {
  const fs::path log = dir / "command.log";
  const std::string full = command + " > " + log.string() + " 2>&1";
  const int status = std::system(full.c_str());
  std::ifstream in(log);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, text};
}

// The Python side runs once: as the ctest fixture training_torchscript_fixture
// (GRADMATCH_TORCHSCRIPT_FIXTURE names its directory), or here when the binary
// runs on its own. Each test writes its outputs to its own directory.
class TorchScriptModel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (const char* fixture = std::getenv("GRADMATCH_TORCHSCRIPT_FIXTURE")) {
      inputs_ = fixture;
      if (fs::exists(inputs_ / "SKIP")) skip_ = "Debian's python3-torch and python3-h5py are needed";
      else if (!fs::exists(inputs_ / "model.pt")) script_error_ = "the fixture did not write model.pt";
      return;
    }
    inputs_ = fs::temp_directory_path() / (std::string("gradmatch-torchscript-") + std::to_string(::getpid()));
    owned_ = true;
    fs::remove_all(inputs_);
    fs::create_directories(inputs_);
    if (std::system((gradmatch::test_inputs::python_command() + "-c 'import torch, h5py' > /dev/null 2>&1").c_str()) != 0) {
      skip_ = "Debian's python3-torch and python3-h5py are needed";
      return;
    }
    std::string cmd = gradmatch::test_inputs::python_command();
    cmd += GRADMATCH_TORCHSCRIPT_SCRIPT;
    cmd += " " + inputs_.string();
    const CommandRun r = run(cmd, inputs_);
    if (r.exit_code != 0) script_error_ = r.output;
  }
  static void TearDownTestSuite() {
    if (owned_) fs::remove_all(inputs_);
  }
  void SetUp() override {
    GRADMATCH_NEEDS(skip_.empty(), skip_);
    ASSERT_TRUE(script_error_.empty()) << script_error_;
    lambda_ = io::read_doubles(file("data.h5"), "lambda").at(0);
  }
  static std::string file(const std::string& name) { return (inputs_ / name).string(); }
  std::string out(const std::string& name) const { return outputs_.file(name); }

  testing::TempDir outputs_;
  double lambda_ = 0.0;
  static inline fs::path inputs_;
  static inline bool owned_ = false;
  static inline std::string skip_;
  static inline std::string script_error_;
};

TEST_F(TorchScriptModel, LoadsWithPythonsParameterOrderForwardAndGradient) {
  const ModelHandle model = load_torchscript(file("model.pt"), at::Device(at::kCPU));
  const std::vector<std::string> names = {"hidden.weight", "hidden.bias", "out.weight", "out.bias"};
  EXPECT_EQ(model.parameter_names, names);
  std::vector<std::int64_t> xs, ys, ps;
  const std::vector<double> x = io::read_doubles(file("data.h5"), "X", &xs);
  const std::vector<double> y = io::read_doubles(file("data.h5"), "y", &ys);
  const std::vector<double> pred = io::read_doubles(file("data.h5"), "pred", &ps);
  const std::vector<double> grad = io::read_doubles(file("data.h5"), "grad");
  const Dataset data{to_tensor(x, xs), to_tensor(y, ys)};
  const at::Tensor out = model.forward(data.x);
  EXPECT_LT((out - to_tensor(pred, ps)).abs().max().item<double>(), 1e-14);
  const at::Tensor g = full_batch_gradient(model, data, LossKind::mse, 7);
  const at::Tensor expected = to_tensor(grad, {static_cast<std::int64_t>(grad.size())});
  EXPECT_LT((g - expected).norm().item<double>(), 1e-12 * expected.norm().item<double>());
}

TEST_F(TorchScriptModel, FitModelRecoversTheRidgePenalty) {
  const CommandRun r = run(std::string(GRADMATCH_EXE) + " fit --model " + file("model.pt") + " --data " +
                               file("data.h5") + " --loss mse --family ridge --output " + out("fit.json") +
                               " --save-equations " + out("eq.h5"),
                           outputs_.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ifstream in(out("fit.json"));
  const nlohmann::json doc = nlohmann::json::parse(in);
  const double lambda = doc.at("lambda").get<double>();
  EXPECT_NEAR(lambda, lambda_, 1e-6 * lambda_) << r.output;
  EXPECT_EQ(doc.at("p").get<int>(), 4 * 6 + 6 + 6 * 2 + 2);
  EXPECT_EQ(doc.at("n").get<int>(), 120);
  EXPECT_LT(doc.at("residual_ratio").get<double>(), 1e-8);
  // Where the ridge explains the gradient (residual ratio < 1e-8), grad L = -2 lambda theta: ||grad L|| / ||theta|| = 2 lambda.
  EXPECT_NEAR(doc.at("relative_gradient_norm").get<double>(), 2.0 * lambda, 1e-7 * 2.0 * lambda);

  // The saved equations reproduce the estimate through `gradmatch fit EQUATIONS`.
  const CommandRun again = run(std::string(GRADMATCH_EXE) + " fit " + out("eq.h5") + " --family ridge --output " +
                                   out("fit2.json"),
                               outputs_.path());
  ASSERT_EQ(again.exit_code, 0) << again.output;
  std::ifstream in2(out("fit2.json"));
  EXPECT_DOUBLE_EQ(nlohmann::json::parse(in2).at("lambda").get<double>(), lambda);
}

TEST_F(TorchScriptModel, FeatureCandidatesGiveTheSameRidgeEstimate) {
  ModelEquationsOptions o;
  o.candidates = {"ridge", "nuclear"};
  std::vector<std::int64_t> xs, ys;
  HostArray x{io::read_doubles(file("data.h5"), "X", &xs), xs};
  HostArray y{io::read_doubles(file("data.h5"), "y", &ys), ys};
  const ModelEquations me = torchscript_equations({file("model.pt")}, x, y, o);
  ASSERT_EQ(me.equations.features.size(), 2u);
  FitOptions fo;
  fo.family = FamilySpec::parse("ridge");
  const double ridge = fit(me.equations, fo).coefficient();
  me.equations.validate("test");
  Equations only_ridge = me.equations;
  only_ridge.features.pop_back();
  fo.family = FamilySpec::parse("features");
  EXPECT_NEAR(fit(only_ridge, fo).coefficient(), ridge, 1e-12 * ridge);
}

TEST_F(TorchScriptModel, IdxDirectoriesGiveTheSoftmaxRegressionGradient) {
  // Five 2 x 3 "images" with labels 0..2 in a plain IDX directory; the scripted
  // Linear(6, 3) has the closed-form cross-entropy gradient
  //   grad W = (1/n) sum_i (softmax(W x_i + c) - e_{y_i}) x_i^T,  grad c = (1/n) sum_i (...).
  const auto write = [&](const std::string& name, std::vector<std::uint8_t> header, std::size_t count, int mod) {
    for (std::size_t i = 0; i < count; ++i) header.push_back(static_cast<std::uint8_t>((i * 37) % static_cast<std::size_t>(mod)));
    std::ofstream(out(name), std::ios::binary).write(reinterpret_cast<const char*>(header.data()), static_cast<std::streamsize>(header.size()));
  };
  write("train-images-idx3-ubyte", {0, 0, 8, 3, 0, 0, 0, 5, 0, 0, 0, 2, 0, 0, 0, 3}, 30, 256);
  write("train-labels-idx1-ubyte", {0, 0, 8, 1, 0, 0, 0, 5}, 5, 3);
  ModelEquationsOptions o;
  o.loss = "ce";
  const ModelEquations me = torchscript_equations({file("classifier.pt")}, outputs_.path().string(), o);
  ASSERT_EQ(me.equations.p(), 3 * 6 + 3);
  EXPECT_EQ(me.n, 5);

  const Dataset data = load_idx(outputs_.path().string(), IdxPart::train);
  const at::Tensor x = data.x.to(at::kDouble);
  const ModelHandle model = load_torchscript(file("classifier.pt"), at::Device(at::kCPU));
  const at::Tensor w = model.parameters[0].detach(), c = model.parameters[1].detach();
  const at::Tensor r = at::softmax(at::matmul(x, w.t()) + c, 1) - at::one_hot(data.y, 3).to(at::kDouble);
  const at::Tensor expected = at::cat({at::matmul(r.t(), x).reshape({-1}), r.sum(0)}) / 5.0;
  const at::Tensor got = to_tensor(me.equations.grad_loss.values(), {me.equations.p()});
  EXPECT_LT((got - expected).abs().max().item<double>(), 1e-15);
  // mse on class labels is refused.
  o.loss = "mse";
  EXPECT_THROW(torchscript_equations({file("classifier.pt")}, outputs_.path().string(), o), InputError);
}

TEST_F(TorchScriptModel, BadInvocationsAreInputErrors) {
  const std::string exe = GRADMATCH_EXE;
  // Both an equation file and --model, or neither.
  CommandRun r = run(exe + " fit " + file("data.h5") + " --model " + file("model.pt") + " --data " + file("data.h5") +
                         " --family ridge",
                     outputs_.path());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("exactly one"), std::string::npos) << r.output;
  // --model without --data.
  r = run(exe + " fit --model " + file("model.pt") + " --family ridge", outputs_.path());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--data"), std::string::npos) << r.output;
  // Not a TorchScript file: the error names it.
  r = run(exe + " fit --model " + file("data.h5") + " --data " + file("data.h5") + " --family ridge", outputs_.path());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find(file("data.h5") + ": is not a TorchScript module"), std::string::npos) << r.output;
  // Float targets are not class indices (checked in-process: each CLI run costs a second).
  ModelEquationsOptions o;
  o.loss = "ce";
  std::vector<std::int64_t> xs, ys;
  HostArray x{io::read_doubles(file("data.h5"), "X", &xs), xs};
  HostArray y{io::read_doubles(file("data.h5"), "y", &ys), ys};
  EXPECT_THROW(torchscript_equations({file("model.pt")}, x, y, o), InputError);
  o.loss = "hinge";
  EXPECT_THROW(torchscript_equations({file("model.pt")}, x, y, o), InputError);
}

TEST_F(TorchScriptModel, FitModelPoolsModelsAndLeavesFrozenParametersOut) {
  // frozen0.pt and frozen1.pt: hidden layer frozen, output layer (p = 2 * 6 + 2) at the
  // exact ridge minimum, so the pooled ridge fit returns lambda with zero residual.
  const std::string exe = GRADMATCH_EXE;
  const std::string data = " --data " + file("data.h5") + " --loss mse ";
  CommandRun r = run(exe + " fit --model " + file("frozen0.pt") + " --model " + file("frozen1.pt") + data +
                         "--family ridge --output " + out("fit.json") + " --save-equations " + out("eq.h5"),
                     outputs_.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  nlohmann::json doc = nlohmann::json::parse(std::ifstream(out("fit.json")));
  EXPECT_EQ(doc.at("m").get<int>(), 2);
  EXPECT_EQ(doc.at("p").get<int>(), 14);
  EXPECT_NEAR(doc.at("lambda").get<double>(), lambda_, 1e-9 * lambda_);
  EXPECT_LT(doc.at("residual_ratio").get<double>(), 1e-8);
  EXPECT_TRUE(doc.at("warnings").empty()) << doc.at("warnings");
  EXPECT_EQ(doc.at("per_model").size(), 2u);
  ASSERT_EQ(doc.at("parameters").size(), 2u);
  EXPECT_EQ(doc.at("parameters")[0].at("name"), "out.weight");
  const Equations eq = io::read_equation_file(out("eq.h5"));
  ASSERT_EQ(eq.parameters.size(), 2u);
  EXPECT_EQ(eq.parameters[0].name, "out.weight");
  EXPECT_EQ(eq.parameters[0].shape, (std::vector<std::int64_t>{2, 6}));
  EXPECT_EQ(eq.parameters[1].name, "out.bias");
  EXPECT_EQ(eq.parameters[1].shape, (std::vector<std::int64_t>{2}));

  // A glob pools the same two files; --params narrows to one tensor; --include-frozen takes all 44.
  r = run(exe + " fit --model '" + file("frozen*.pt") + "' --params 'out.w*'" + data + "--family ridge -q -o " +
              out("weights.json"),
          outputs_.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  doc = nlohmann::json::parse(std::ifstream(out("weights.json")));
  EXPECT_EQ(doc.at("m").get<int>(), 2);
  EXPECT_EQ(doc.at("p").get<int>(), 12);
  EXPECT_NEAR(doc.at("lambda").get<double>(), lambda_, 1e-9 * lambda_);
  r = run(exe + " fit --model " + file("frozen0.pt") + " --include-frozen" + data + "--family ridge -q -o " +
              out("all.json"),
          outputs_.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(nlohmann::json::parse(std::ifstream(out("all.json"))).at("p").get<int>(), 44);

  // A glob that selects nothing names the parameters; different architectures do not pool.
  r = run(exe + " fit --model " + file("frozen0.pt") + " --params 'hidden.*'" + data + "--family ridge", outputs_.path());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("hidden.weight (frozen)"), std::string::npos) << r.output;
  r = run(exe + " fit --model " + file("frozen0.pt") + " --model " + file("model.pt") + data + "--family ridge",
          outputs_.path());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("same architecture"), std::string::npos) << r.output;
}

TEST_F(TorchScriptModel, FitModelChecksEveryOutputPathBeforeWriting) {
  const std::string exe = GRADMATCH_EXE;
  const std::string base = exe + " fit --model " + file("model.pt") + " --data " + file("data.h5") + " --family ridge";
  const auto size_before = fs::file_size(file("data.h5"));
  // An output that is an input, a bad extension, a missing directory: exit 2, nothing written.
  for (const std::string& flags :
       {" -o " + file("data.h5"), " -o " + out("fit.json") + " --save-equations " + file("model.pt"),
        " -o " + out("fit.txt") + " --save-equations " + out("eq.h5"),
        " -o " + out("fit.json") + " --save-equations " + out("missing/eq.h5")}) {
    const CommandRun r = run(base + flags, outputs_.path());
    EXPECT_EQ(r.exit_code, 2) << flags << "\n" << r.output;
    EXPECT_FALSE(fs::exists(out("fit.json"))) << flags;
    EXPECT_FALSE(fs::exists(out("eq.h5"))) << flags;
  }
  EXPECT_EQ(fs::file_size(file("data.h5")), size_before);
  // HDF5 output: lambda as a dataset, statistics as attributes.
  const CommandRun r = run(base + " -q -o " + out("fit.h5"), outputs_.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NEAR(io::read_doubles(out("fit.h5"), "lambda").at(0), lambda_, 1e-6 * lambda_);
}

}  // namespace
}  // namespace gradmatch::training
