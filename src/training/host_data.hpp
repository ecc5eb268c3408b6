#pragma once
// Training data read from files by the callers (HDF5 X [n, d] and y) as a
// Dataset: float64 tensors, y as int64 class indices for the ce loss.
#include "training/data.hpp"
#include "training/losses.hpp"
#include "training/model_equations.hpp"

namespace gradmatch::training {

/// InputError on bad shapes, or on y that is not class indices for ce.
Dataset dataset_from_arrays(const HostArray& x, const HostArray& y, LossKind loss, const std::string& name = "data");

}  // namespace gradmatch::training
