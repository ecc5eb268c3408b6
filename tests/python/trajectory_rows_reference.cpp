// The C++ trajectory rows of a TorchScript model, for the Python package's
// cross-check (test_trajectory_matches_cpp in test_gradmatch.py):
//
//   trajectory_rows_reference MODEL.pt DATA.h5 OUT.h5 MODE ETA STEPS BATCH SEED SUBSTEPS
//
// DATA.h5 holds X [n, d] and y [n, k] (float64). Runs training::trajectory_rows
// with a row at every step t in [0, STEPS) from the model's parameters (MSE,
// RK4 reference with SUBSTEPS substeps in flow mode; mini-batches of BATCH
// from (SEED, stream 0) in sgd, coupled and dropout modes; torch's generator seeded
// with SEED first, for the dropout masks) and writes OUT.h5 with the rows
// (theta, grad_loss, target, gradient_penalty [rows, p]) and, for the Python
// side to replay the same steps, the batches' example indices
// (batches [STEPS * BATCH], int64, step-major).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <iostream>
#include <string>
#include <vector>

#include "core/rng.hpp"
#include "io/hdf5_file.hpp"
#include "training/data.hpp"
#include "training/torchscript.hpp"
#include "training/trajectory.hpp"

namespace {

using namespace gradmatch;

at::Tensor read_matrix(const std::string& path, const std::string& name) {
  std::vector<std::int64_t> shape;
  std::vector<double> values = io::read_doubles(path, name, &shape);
  return at::tensor(values, at::kDouble).reshape(shape);
}

// The batches training::trajectory_rows draws (its BatchStream): a fresh
// permutation of [0, n) from one (seed, stream) generator every epoch.
std::vector<std::int64_t> batch_indices(std::int64_t n, std::int64_t batch, std::int64_t steps, std::uint64_t seed) {
  Rng rng(seed, 0);
  std::vector<std::int64_t> order, out;
  std::int64_t position = n;
  batch = std::min(batch, n);
  for (std::int64_t t = 0; t < steps; ++t) {
    if (position >= n) {
      order = training::permutation(n, rng);
      position = 0;
    }
    const std::int64_t end = std::min(n, position + batch);
    out.insert(out.end(), order.begin() + position, order.begin() + end);
    position = end;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 10) {
    std::cerr << "usage: " << argv[0] << " MODEL.pt DATA.h5 OUT.h5 MODE ETA STEPS BATCH SEED SUBSTEPS\n";
    return 2;
  }
  try {
    at::set_num_threads(1);
    const training::ModelHandle model = training::load_torchscript(argv[1], c10::Device(c10::kCPU));
    const training::Dataset data{read_matrix(argv[2], "X"), read_matrix(argv[2], "y")};
    training::TrajectoryOptions o;
    o.mode = training::parse_trajectory_mode(argv[4]);
    o.learning_rate = std::stod(argv[5]);
    o.steps = std::stoll(argv[6]);
    o.batch_size = std::stoll(argv[7]);
    o.seed = std::stoull(argv[8]);
    o.substeps = std::stoll(argv[9]);
    for (std::int64_t t = 0; t < o.steps; ++t) o.checkpoints.push_back(t);
    at::manual_seed(o.seed);
    const training::TrajectoryRows rows = training::trajectory_rows(model, data, o);

    io::ResultsWriter out(argv[3], "trajectory_rows_reference");
    const io::DatasetInfo rows_info{"", "", {"step", "parameter"}};
    out.write("theta", rows.equations.theta, rows_info);
    out.write("grad_loss", rows.equations.grad_loss, rows_info);
    out.write("target", *rows.equations.target, rows_info);
    out.write("gradient_penalty", rows.equations.features.at(0).second, rows_info);
    out.write("loss", rows.loss, {"", "", {"step"}});
    if (o.mode != training::TrajectoryMode::flow) {
      const auto batches = batch_indices(data.size(), o.batch_size, o.steps, o.seed);
      out.write("batches", batches, {"", "", {"index"}});
    }
    out.commit();
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "trajectory_rows_reference: " << e.what() << "\n";
    return 2;
  }
}
