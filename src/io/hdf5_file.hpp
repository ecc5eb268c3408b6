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

class ResultsWriter {
 public:
  explicit ResultsWriter(std::string path);
  ~ResultsWriter();  // removes the .partial file when commit() was not called
  ResultsWriter(const ResultsWriter&) = delete;
  ResultsWriter& operator=(const ResultsWriter&) = delete;

  void write(const std::string& name, const Matrix& value);                    ///< float64 [rows, cols]
  void write(const std::string& name, const std::vector<double>& value);       ///< float64 [n]
  void write(const std::string& name, const std::vector<std::int64_t>& value); ///< int64 [n]
  void write(const std::string& name, double value);                           ///< float64 scalar
  void write(const std::string& name, const std::string& value);               ///< variable-length string
  /// float64 array of any rank, row-major.
  void write(const std::string& name, const std::vector<double>& value, const std::vector<std::int64_t>& shape);
  void set_attribute(const std::string& object, const std::string& key, const std::string& value);
  void set_attribute(const std::string& object, const std::string& key, double value);

  void commit();
  const std::string& path() const { return path_; }

 private:
  struct Impl;
  std::string path_;
  std::unique_ptr<Impl> impl_;
};

/// Reads a float64 dataset of any rank back (tests and `gradmatch report`).
std::vector<double> read_doubles(const std::string& path, const std::string& name,
                                 std::vector<std::int64_t>* shape = nullptr);

}  // namespace gradmatch::io
