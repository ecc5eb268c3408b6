#pragma once
// Configs shared by the bootstrap study's tests (inputs from
// make_bootstrap_inputs.py).
#include <string>

namespace gradmatch::studies::test_support {

/// Linear model (p = 4), L_r = mse on bootstrap resample r, trained by
/// full-batch L-BFGS to a stationary point of L_r + theta^T Lambda theta
/// (Lambda from sym.h5): grad L_r = -2 Lambda theta_r exactly, and the 12
/// endpoints determine Lambda. Fits sym and ridge; `fit_extra` is appended
/// to the [fit] table. On the CPU on every machine: L-BFGS on a 4-parameter
/// model is a string of host reads, minutes on a GPU shared with the rest of
/// the suite (164 s on an NVIDIA H200); GpuStudies runs the bootstrap study
/// on the GPU.
inline std::string sym_penalty_config(const std::string& fit_extra = "") {
  return std::string(R"(study = "bootstrap"
device = "cpu"
seed = 3
loss = "mse"
replicates = 12
resample = "bootstrap"
[model]
file = "linear.pt"
[data]
file = "linear.h5"
[training]
optimizer = "lbfgs"
learning_rate = 1.0
epochs = 20
stop = "gradient_norm"
gradient_tolerance = 1e-12
[penalty]
family = "sym"
file = "sym.h5"
[fit]
families = ["sym", "ridge"]
)") + fit_extra;
}

}  // namespace gradmatch::studies::test_support
