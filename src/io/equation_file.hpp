#pragma once
// Equation files, version 1: the interchange format of gradmatch
// (docs/equation-format.md).
//
// HDF5, float64, row-major. Root attributes format = "gradmatch.equations"
// (string) and version = 1 (integer). Datasets:
//   theta      [m, p]            parameters at m points
//   grad_loss  [m, p]            full-batch mean loss gradient; b = -grad_loss
//   target     [m, p] optional   explicit target b (trajectory estimators)
//   features/<name> [m, p] opt.  gradient of a candidate regularizer
//   weights    [m]    optional   non-negative weight of each point
//   parameters/names   [k] strings  optional: the parameter tensors that
//   parameters/shapes  [*] int64    theta's columns are, in order; tensor i
//   parameters/offsets [k+1] int64  has dimensions shapes[offsets[i]:offsets[i+1]]
// Readers reject anything else with an InputError naming the file and what
// is wrong; writers write to a temporary file beside the target and rename
// it, so a failed write leaves nothing half-written.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/equations.hpp"

namespace gradmatch::io {

inline constexpr const char* kEquationFormat = "gradmatch.equations";
inline constexpr int kEquationVersion = 1;

struct EquationFileInfo {
  std::int64_t m = 0;
  std::int64_t p = 0;
  bool has_target = false;
  bool has_weights = false;
  std::vector<std::string> features;  ///< names under features/, sorted
  std::vector<ParameterBlock> parameters;  ///< from parameters/; empty when absent
};

/// Checks the attributes and every dataset's presence, rank, shape and type
/// without reading the data.
EquationFileInfo inspect_equation_file(const std::string& path);

/// Reads and fully validates (shapes, finiteness, weights >= 0) all points.
Equations read_equation_file(const std::string& path);

/// Reads points [begin, end) only (hyperslab reads, for one rank's share).
/// Validates the attributes/shapes of the whole file and the values read.
Equations read_equation_rows(const std::string& path, std::int64_t begin, std::int64_t end);

/// Validates `eq`, then writes it atomically (temporary file + rename).
void write_equation_file(const std::string& path, const Equations& eq);

/// Creates `path` as a temporary HDF5 file beside it, lets `fill` write into
/// the open file (an hid_t), then renames it into place; on any failure the
/// temporary file is removed and the error names `path` and `what`.
void write_hdf5_atomically(const std::string& path, const std::string& what,
                           const std::function<void(std::int64_t file)>& fill);

/// Writes the group parameters/{names, shapes, offsets} describing `blocks`
/// into the open HDF5 file or group `file` (also used by fit results in HDF5).
void write_parameter_group(std::int64_t file, const std::vector<ParameterBlock>& blocks);

}  // namespace gradmatch::io
