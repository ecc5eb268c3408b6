#pragma once
// Writing study results to HDF5 in a form h5py reads directly.
//
// ResultsWriter creates `path + ".partial"`, and commit() renames it to
// `path`: an interrupted study leaves no half-written results file.
// Dataset names may contain '/' (groups are created on demand).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/matrix.hpp"

namespace gradmatch::io {

/// What a dataset holds, stored as its attributes `description`, `units`
/// and `dims` (one axis name per dimension, outermost first). Every dataset
/// a study writes carries them; docs/outputs.md lists them all.
struct DatasetInfo {
  std::string description;
  std::string units;              ///< "" for dimensionless numbers and counts
  std::vector<std::string> dims;  ///< empty for scalars
};

class ResultsWriter {
 public:
  /// Creates PATH.partial with the root attributes format =
  /// "gradmatch.results", study, and the provenance (io/provenance.hpp).
  ResultsWriter(std::string path, const std::string& study);
  ~ResultsWriter();  // removes the .partial file when commit() was not called
  ResultsWriter(const ResultsWriter&) = delete;
  ResultsWriter& operator=(const ResultsWriter&) = delete;

  /// float64 / int64 arrays of any rank, row-major; `shape` empty means [n].
  /// The number of `info.dims` must equal the rank.
  void write(const std::string& name, const std::vector<double>& value, const DatasetInfo& info,
             const std::vector<std::int64_t>& shape = {});
  void write(const std::string& name, const std::vector<std::int64_t>& value, const DatasetInfo& info,
             const std::vector<std::int64_t>& shape = {});
  void write(const std::string& name, const Matrix& value, const DatasetInfo& info);  ///< float64 [rows, cols]
  void write(const std::string& name, double value, const DatasetInfo& info);          ///< float64 scalar
  void write(const std::string& name, std::int64_t value, const DatasetInfo& info);    ///< int64 scalar
  void write(const std::string& name, const std::string& value, const DatasetInfo& info);  ///< UTF-8 string
  void set_attribute(const std::string& object, const std::string& key, const std::string& value);
  void set_attribute(const std::string& object, const std::string& key, double value);
  void set_attribute(const std::string& object, const std::string& key, const std::vector<std::string>& value);

  void commit();
  const std::string& path() const { return path_; }

 private:
  void describe(const std::string& name, const DatasetInfo& info);
  struct Impl;
  std::string path_;
  std::unique_ptr<Impl> impl_;
};

/// Reads a float64 dataset of any rank back (tests and `gradmatch report`).
std::vector<double> read_doubles(const std::string& path, const std::string& name,
                                 std::vector<std::int64_t>* shape = nullptr);

}  // namespace gradmatch::io
