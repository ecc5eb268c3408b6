// Equation files, version 1 (docs/equation-format.md).
//
// A Reader opens the file once and checks its whole structure from metadata
// alone (attributes, names, ranks, shapes, element types); read() then
// fetches one block of points with hyperslab selections and checks the
// values. Every problem becomes an InputError that begins with the path and
// says what to change. The writer validates first, writes a temporary file
// beside the target and renames it, so readers never see half a file.
#include "io/equation_file.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>

#include "core/errors.hpp"
#include "core/resources.hpp"
#include "io/file_bytes.hpp"
#include "io/hdf5_handle.hpp"
#include "io/provenance.hpp"

namespace gradmatch::io {
namespace {

using namespace detail;
namespace fs = std::filesystem;

constexpr const char* kWhere = "(docs/equation-format.md)";

std::string shape_str(const std::vector<hsize_t>& dims) {
  std::string s = "[";
  for (std::size_t i = 0; i < dims.size(); ++i) s += cat(i ? ", " : "", dims[i]);
  return s + "]";
}

std::string type_name(hid_t type) {
  const std::size_t bits = 8 * H5Tget_size(type);
  switch (H5Tget_class(type)) {
    case H5T_INTEGER: return cat(H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int", bits);
    case H5T_FLOAT: return cat("float", bits);
    case H5T_STRING: return "string";
    case H5T_ENUM: return "enum (boolean?)";
    case H5T_COMPOUND: return "compound";
    default: return "non-numeric";
  }
}

/// Names of the links in a group, sorted.
std::vector<std::string> member_names(hid_t group) {
  std::vector<std::string> names;
  hsize_t idx = 0;
  checked(H5Literate(
              group, H5_INDEX_NAME, H5_ITER_INC, &idx,
              [](hid_t, const char* name, const H5L_info_t*, void* out) -> herr_t {
                static_cast<std::vector<std::string>*>(out)->emplace_back(name);
                return 0;
              },
              &names),
          "H5Literate");
  std::sort(names.begin(), names.end());
  return names;
}

/// A scalar string attribute, fixed or variable length (h5py writes a Python
/// str as variable-length UTF-8, numpy bytes as fixed length).
std::string read_string_attribute(hid_t attr, hid_t type) {
  if (H5Tis_variable_str(type) > 0) {
    char* p = nullptr;
    checked(H5Aread(attr, type, &p), "H5Aread");
    std::string s = p ? p : "";
    H5free_memory(p);
    return s;
  }
  std::string buf(H5Tget_size(type) + 1, '\0');
  checked(H5Aread(attr, type, buf.data()), "H5Aread");
  buf.resize(buf.find('\0'));
  if (H5Tget_strpad(type) == H5T_STR_SPACEPAD) buf.erase(buf.find_last_not_of(' ') + 1);
  return buf;
}

class Reader {
 public:
  explicit Reader(std::string path) : path_(std::move(path)) {
    open_file();
    check_attributes();
    check_members();
    std::vector<hsize_t> dims;
    theta_ = open_dataset("theta", 2, dims);
    m_ = static_cast<std::int64_t>(dims[0]);
    p_ = static_cast<std::int64_t>(dims[1]);
    if (m_ == 0 || p_ == 0)
      bad(cat("dataset 'theta' has shape ", shape_str(dims),
              "; at least one point (m >= 1) and one parameter (p >= 1) are needed"));
    grad_loss_ = open_matrix("grad_loss");
    info.m = m_;
    info.p = p_;
    if ((info.has_target = exists("target"))) target_ = open_matrix("target");
    if (exists("features")) open_features();
    if (exists("parameters")) read_parameters();
    if ((info.has_weights = exists("weights"))) {
      weights_ = open_dataset("weights", 1, dims);
      if (static_cast<std::int64_t>(dims[0]) != m_)
        bad(cat("dataset 'weights' has ", dims[0], " entries but 'theta' has m = ", m_,
                " points; give exactly one weight per point"));
    }
  }

  EquationFileInfo info;

  Equations read(std::int64_t begin, std::int64_t end) {
    if (begin < 0 || begin > end || end > m_)
      bad(cat("points [", begin, ", ", end, ") were requested but the file holds points [0, ", m_, ")"));
    // Refuse what cannot fit before allocating it (a small chunked file can
    // declare petabytes).
    const double arrays = 2.0 + (info.has_target ? 1.0 : 0.0) + static_cast<double>(features_.size());
    const double rows = static_cast<double>(end - begin);
    const bool all = begin == 0 && end == m_;
    resources::require_memory(
        cat(path_, all ? "" : cat(" (points ", begin, " to ", end, ")"), " declares ",
            resources::count_text(all ? static_cast<double>(m_) : rows), " x ", resources::count_text(static_cast<double>(p_)),
            " float64 in ", static_cast<std::int64_t>(arrays), " datasets, which"),
        8.0 * rows * static_cast<double>(p_) * arrays, "fit fewer points or parameters, or spread them over more nodes with mpirun");
    Equations eq;
    eq.theta = read_block(theta_, "theta", begin, end);
    eq.grad_loss = read_block(grad_loss_, "grad_loss", begin, end);
    if (info.has_target) eq.target = read_block(target_, "target", begin, end);
    for (std::size_t i = 0; i < features_.size(); ++i)
      eq.features.emplace_back(info.features[i], read_block(features_[i], "features/" + info.features[i], begin, end));
    if (info.has_weights) {
      Matrix w = read_block(weights_, "weights", begin, end);
      for (std::int64_t k = 0; k < w.size(); ++k)
        if (w.values()[static_cast<std::size_t>(k)] < 0.0)
          bad(cat("dataset 'weights' has the negative value ", w.values()[static_cast<std::size_t>(k)], " at point ",
                  begin + k, "; weights must be non-negative"));
      eq.weights = std::move(w.values());
    }
    eq.parameters = info.parameters;
    return eq;
  }

 private:
  [[noreturn]] void bad(const std::string& what) const { throw InputError(cat(path_, ": ", what)); }

  void open_file() {
    std::error_code ec;
    const auto status = fs::status(path_, ec);
    if (!fs::exists(status)) bad("does not exist; check the path");
    if (fs::is_directory(status)) bad("is a directory, not an equation file");
    // A pipe or device would block the read (or never end): not a file.
    if (!fs::is_regular_file(status)) bad("is not a regular file (a pipe, socket or device); give an equation file");
    if (fs::file_size(path_, ec) == 0)
      bad("is empty (0 bytes), not an HDF5 equation file; was its writer interrupted? write it again");
    const htri_t is_hdf5 = H5Fis_hdf5(path_.c_str());
    if (is_hdf5 < 0) bad(cat("cannot be opened for reading (", innermost_hdf5_error(), "); check its permissions"));
    if (is_hdf5 == 0)
      bad(cat("is not an HDF5 file (no HDF5 signature); equation files are HDF5 ", kWhere));
    try {
      file_ = FileHandle(H5Fopen(path_.c_str(), H5F_ACC_RDONLY, serial_fapl()), "H5Fopen");
    } catch (const Hdf5Error& e) {
      bad(cat("cannot be opened: the HDF5 file is truncated or corrupt (", e.what(), "); write it again"));
    }
  }

  void check_attributes() {
    if (checked(H5Aexists(file_, "format"), "H5Aexists") <= 0)
      bad(cat("has no root attribute 'format'; an equation file needs format = \"", kEquationFormat, "\" ", kWhere));
    {
      AttributeHandle attr(H5Aopen(file_, "format", H5P_DEFAULT), "H5Aopen(format)");
      DatatypeHandle type(H5Aget_type(attr), "H5Aget_type");
      DataspaceHandle space(H5Aget_space(attr), "H5Aget_space");
      if (H5Tget_class(type) != H5T_STRING || H5Sget_simple_extent_npoints(space) != 1)
        bad(cat("root attribute 'format' is not a single string (", type_name(type), "); set format = \"",
                kEquationFormat, "\""));
      const std::string format = read_string_attribute(attr, type);
      if (format == "gradmatch.results" || format == "gradmatch.run_store")
        bad(cat("is a study's ", format == "gradmatch.results" ? "results file" : "run store", " (format = \"", format,
                "\"), not an equation file: `gradmatch report DIR` reads the study's directory, and its equation "
                "files are DIR/equations_*.h5"));
      if (format != kEquationFormat)
        bad(cat("has format = \"", format, "\", not \"", kEquationFormat,
                "\": it is not a gradmatch equation file; write one as described in ", kWhere));
    }
    if (checked(H5Aexists(file_, "version"), "H5Aexists") <= 0)
      bad(cat("has no root attribute 'version'; set version = ", kEquationVersion, " (an integer) ", kWhere));
    AttributeHandle attr(H5Aopen(file_, "version", H5P_DEFAULT), "H5Aopen(version)");
    DatatypeHandle type(H5Aget_type(attr), "H5Aget_type");
    DataspaceHandle space(H5Aget_space(attr), "H5Aget_space");
    if (H5Tget_class(type) != H5T_INTEGER || H5Sget_simple_extent_npoints(space) != 1)
      bad(cat("root attribute 'version' is not a single integer (", type_name(type), "); set version = ",
              kEquationVersion, " as an integer"));
    std::int64_t version = 0;
    checked(H5Aread(attr, H5T_NATIVE_INT64, &version), "H5Aread(version)");
    if (version != kEquationVersion)
      bad(cat("has version = ", version, " but this gradmatch reads version ", kEquationVersion,
              " only; write the file in version ", kEquationVersion, " ", kWhere));
  }

  // Unknown names are rejected rather than ignored: a misspelt optional
  // dataset ("targets", "weight") would otherwise silently change the fit.
  void check_members() {
    static const std::set<std::string> known = {"theta", "grad_loss", "target", "features", "weights", "parameters"};
    for (const std::string& name : member_names(file_))
      if (!known.count(name))
        bad(cat("has an unexpected object '", name,
                "' at the root; version 1 allows only theta, grad_loss, target, features/<name>, weights and "
                "parameters/{names,shapes,offsets} "
                "(keep metadata in attributes)"));
    if (!exists("theta"))
      bad("is missing the required dataset 'theta' ([m, p], the parameters at each point)");
    if (!exists("grad_loss"))
      bad("is missing the required dataset 'grad_loss' ([m, p], the mean loss gradient at each point)");
  }

  bool exists(const char* name) const { return checked(H5Lexists(file_, name, H5P_DEFAULT), "H5Lexists") > 0; }

  /// Opens a float64 dataset of the given rank; `dims` receives its shape.
  DatasetHandle open_dataset(const std::string& name, int rank, std::vector<hsize_t>& dims) const {
    {
      ObjectHandle obj(H5Oopen(file_, name.c_str(), H5P_DEFAULT), "H5Oopen");
      if (H5Iget_type(obj) != H5I_DATASET) bad(cat("'", name, "' is not a dataset; it must be a float64 dataset"));
    }
    DatasetHandle d(H5Dopen2(file_, name.c_str(), H5P_DEFAULT), "H5Dopen2");
    DatatypeHandle type(H5Dget_type(d), "H5Dget_type");
    if (H5Tget_class(type) != H5T_FLOAT || H5Tget_size(type) != 8)
      bad(cat("dataset '", name, "' has element type ", type_name(type),
              "; version 1 requires float64 (e.g. numpy: array.astype('float64'))"));
    DataspaceHandle space(H5Dget_space(d), "H5Dget_space");
    const int ndims = checked(H5Sget_simple_extent_ndims(space), "H5Sget_simple_extent_ndims");
    dims.assign(static_cast<std::size_t>(ndims), 0);
    if (ndims > 0) checked(H5Sget_simple_extent_dims(space, dims.data(), nullptr), "H5Sget_simple_extent_dims");
    if (ndims != rank)
      bad(cat("dataset '", name, "' has ", ndims, " dimension(s) ", shape_str(dims), "; it must have ", rank,
              rank == 2 ? " dimensions [m, p]" : " dimension [m]"));
    return d;
  }

  DatasetHandle open_matrix(const std::string& name) const {
    std::vector<hsize_t> dims;
    DatasetHandle d = open_dataset(name, 2, dims);
    if (static_cast<std::int64_t>(dims[0]) != m_ || static_cast<std::int64_t>(dims[1]) != p_)
      bad(cat("dataset '", name, "' has shape ", shape_str(dims), " but 'theta' has shape [", m_, ", ", p_,
              "]; every [m, p] dataset must match 'theta'"));
    return d;
  }

  void open_features() {
    std::vector<std::string> names;
    {
      ObjectHandle obj(H5Oopen(file_, "features", H5P_DEFAULT), "H5Oopen(features)");
      if (H5Iget_type(obj) != H5I_GROUP)
        bad("'features' is not a group; it must be a group holding one [m, p] float64 dataset per feature");
      names = member_names(obj);
    }
    for (const std::string& name : names) {
      features_.push_back(open_matrix("features/" + name));
      info.features.push_back(name);
    }
  }

  /// A 1-D dataset of `cls` (H5T_INTEGER or H5T_STRING) under parameters/; its length.
  DatasetHandle open_vector(const std::string& name, H5T_class_t cls, hsize_t& n) const {
    const std::string full = "parameters/" + name;
    if (!exists(full.c_str()))
      bad(cat("has a 'parameters' group without the dataset '", full,
              "'; it needs names [k] (strings), shapes (int64, every dimension) and offsets [k + 1] (int64) ", kWhere));
    {
      ObjectHandle obj(H5Oopen(file_, full.c_str(), H5P_DEFAULT), "H5Oopen");
      if (H5Iget_type(obj) != H5I_DATASET) bad(cat("'", full, "' is not a dataset"));
    }
    DatasetHandle d(H5Dopen2(file_, full.c_str(), H5P_DEFAULT), "H5Dopen2");
    DatatypeHandle type(H5Dget_type(d), "H5Dget_type");
    if (H5Tget_class(type) != cls)
      bad(cat("dataset '", full, "' has element type ", type_name(type), "; it must hold ",
              cls == H5T_STRING ? "strings (the parameter names)" : "integers (int64)"));
    DataspaceHandle space(H5Dget_space(d), "H5Dget_space");
    if (checked(H5Sget_simple_extent_ndims(space), "H5Sget_simple_extent_ndims") != 1)
      bad(cat("dataset '", full, "' must be one-dimensional"));
    checked(H5Sget_simple_extent_dims(space, &n, nullptr), "H5Sget_simple_extent_dims");
    return d;
  }

  std::vector<std::int64_t> read_int64s(const std::string& name) const {
    hsize_t n = 0;
    DatasetHandle d = open_vector(name, H5T_INTEGER, n);
    std::vector<std::int64_t> out(n);
    if (n) checked(H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()), "H5Dread");
    return out;
  }

  std::vector<std::string> read_names() const {
    hsize_t n = 0;
    DatasetHandle d = open_vector("names", H5T_STRING, n);
    DatatypeHandle type(H5Dget_type(d), "H5Dget_type");
    std::vector<std::string> out;
    if (n == 0) return out;
    if (H5Tis_variable_str(type) > 0) {
      std::vector<char*> p(n, nullptr);
      checked(H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, p.data()), "H5Dread(names)");
      for (char* c : p) {
        out.emplace_back(c ? c : "");
        H5free_memory(c);
      }
      return out;
    }
    const std::size_t len = H5Tget_size(type);
    std::string buf(len * n, '\0');
    checked(H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()), "H5Dread(names)");
    for (hsize_t i = 0; i < n; ++i) {
      std::string one = buf.substr(i * len, len);
      one.resize(std::min(one.find('\0'), one.size()));
      if (H5Tget_strpad(type) == H5T_STR_SPACEPAD) one.erase(one.find_last_not_of(' ') + 1);
      out.push_back(std::move(one));
    }
    return out;
  }

  // Optional names and shapes of theta's columns: checked completely when
  // present, so that a result never maps coefficients to the wrong tensors.
  void read_parameters() {
    {
      ObjectHandle obj(H5Oopen(file_, "parameters", H5P_DEFAULT), "H5Oopen(parameters)");
      if (H5Iget_type(obj) != H5I_GROUP)
        bad(cat("'parameters' is not a group; it must hold names, shapes and offsets ", kWhere));
      for (const std::string& name : member_names(obj))
        if (name != "names" && name != "shapes" && name != "offsets")
          bad(cat("has an unexpected object 'parameters/", name, "'; the group holds only names, shapes and offsets"));
    }
    const std::vector<std::string> names = read_names();
    const std::vector<std::int64_t> shapes = read_int64s("shapes");
    const std::vector<std::int64_t> offsets = read_int64s("offsets");
    const std::size_t k = names.size();
    if (offsets.size() != k + 1)
      bad(cat("dataset 'parameters/offsets' has ", offsets.size(), " entries but 'parameters/names' has ", k,
              "; offsets needs k + 1 = ", k + 1, " entries (parameter i has the dimensions shapes[offsets[i]:offsets[i+1]])"));
    if (offsets.front() != 0 || offsets.back() != static_cast<std::int64_t>(shapes.size()))
      bad(cat("dataset 'parameters/offsets' must start at 0 and end at the length of 'parameters/shapes' (",
              shapes.size(), "); it runs from ", offsets.front(), " to ", offsets.back()));
    std::set<std::string> seen;
    std::int64_t total = 0;
    for (std::size_t i = 0; i < k; ++i) {
      if (offsets[i + 1] < offsets[i]) bad(cat("dataset 'parameters/offsets' decreases at entry ", i + 1));
      ParameterBlock b;
      b.name = names[i];
      if (b.name.empty() || !seen.insert(b.name).second)
        bad(cat("parameter name '", b.name, "' (entry ", i, " of 'parameters/names') is empty or repeats"));
      b.shape.assign(shapes.begin() + offsets[i], shapes.begin() + offsets[i + 1]);
      // The product and the running sum are checked against p before they
      // could overflow (a shape like [2^62, 4] would wrap around).
      std::int64_t size = 1;
      for (std::int64_t dim : b.shape) {
        if (dim < 0) bad(cat("parameter '", b.name, "' has the negative dimension ", dim, " in 'parameters/shapes'"));
        if (dim != 0 && size > p_ / dim) size = p_ + 1;  // already more than p
        else size *= dim;
      }
      if (size > p_ - total)
        bad(cat("the parameters recorded under 'parameters' hold more than p = ", p_, " scalars (at '", b.name,
                "'); their sizes must sum to p, the columns of 'theta'"));
      total += size;
      info.parameters.push_back(std::move(b));
    }
    if (total != p_)
      bad(cat("the parameters recorded under 'parameters' hold ", total, " scalars but 'theta' has p = ", p_,
              " columns; their sizes must sum to p"));
  }

  Matrix read_block(const DatasetHandle& d, const std::string& name, std::int64_t begin, std::int64_t end) const {
    DataspaceHandle file_space(H5Dget_space(d), "H5Dget_space");
    const int rank = checked(H5Sget_simple_extent_ndims(file_space), "H5Sget_simple_extent_ndims");
    const std::int64_t cols = rank == 2 ? p_ : 1;
    Matrix out(end - begin, cols);
    if (out.size() == 0) return out;
    const hsize_t start[2] = {static_cast<hsize_t>(begin), 0};
    const hsize_t count[2] = {static_cast<hsize_t>(end - begin), static_cast<hsize_t>(cols)};
    checked(H5Sselect_hyperslab(file_space, H5S_SELECT_SET, start, nullptr, count, nullptr), "H5Sselect_hyperslab");
    DataspaceHandle mem_space(H5Screate_simple(rank, count, nullptr), "H5Screate_simple");
    checked(H5Dread(d, H5T_NATIVE_DOUBLE, mem_space, file_space, H5P_DEFAULT, out.data()), "H5Dread");
    for (std::int64_t i = 0; i < out.rows(); ++i)
      for (std::int64_t j = 0; j < cols; ++j)
        if (!std::isfinite(out(i, j)))
          bad(cat("dataset '", name, "' holds a non-finite value (", out(i, j), ") at point ", begin + i,
                  rank == 2 ? cat(", parameter ", j) : std::string(),
                  "; drop that point (a diverged run?) or fix the writer"));
    return out;
  }

  std::string path_;
  FileHandle file_;
  std::int64_t m_ = 0, p_ = 0;
  DatasetHandle theta_, grad_loss_, target_, weights_;
  std::vector<DatasetHandle> features_;
};

/// Runs `f` with HDF5's stderr printing off; an HDF5 failure that the checks
/// did not foresee still becomes an InputError naming the file.
template <class F>
auto guarded(const std::string& path, F&& f) {
  QuietHdf5 quiet;
  try {
    return f();
  } catch (const Hdf5Error& e) {
    throw InputError(cat(path, ": cannot be read as an equation file (", e.what(),
                         "); check that it is complete and write it again"));
  }
}

void write_matrix(hid_t loc, const std::string& name, const double* data, std::vector<hsize_t> dims) {
  DataspaceHandle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), "H5Screate_simple");
  DatasetHandle d(H5Dcreate2(loc, name.c_str(), H5T_IEEE_F64LE, space, H5P_DEFAULT,
                             untimed_create_plist(H5P_DATASET_CREATE), H5P_DEFAULT),
                  "H5Dcreate2");
  checked(H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), "H5Dwrite");
}

void write_matrix(hid_t loc, const std::string& name, const Matrix& a) {
  write_matrix(loc, name, a.data(), {static_cast<hsize_t>(a.rows()), static_cast<hsize_t>(a.cols())});
}

void write_int64s(hid_t loc, const std::string& name, const std::vector<std::int64_t>& v) {
  const hsize_t n = v.size();
  DataspaceHandle space(H5Screate_simple(1, &n, nullptr), "H5Screate_simple");
  DatasetHandle d(H5Dcreate2(loc, name.c_str(), H5T_STD_I64LE, space, H5P_DEFAULT,
                             untimed_create_plist(H5P_DATASET_CREATE), H5P_DEFAULT),
                  "H5Dcreate2");
  if (n) checked(H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), "H5Dwrite");
}

}  // namespace

void write_parameter_group(hid_t file, const std::vector<ParameterBlock>& blocks) {
  GroupHandle group(H5Gcreate2(file, "parameters", H5P_DEFAULT, untimed_create_plist(H5P_GROUP_CREATE), H5P_DEFAULT),
                    "H5Gcreate2(parameters)");
  std::vector<const char*> names;
  std::vector<std::int64_t> shapes, offsets{0};
  for (const ParameterBlock& b : blocks) {
    names.push_back(b.name.c_str());
    shapes.insert(shapes.end(), b.shape.begin(), b.shape.end());
    offsets.push_back(static_cast<std::int64_t>(shapes.size()));
  }
  {
    const hsize_t n = names.size();
    DatatypeHandle type = utf8_string_type();
    DataspaceHandle space(H5Screate_simple(1, &n, nullptr), "H5Screate_simple");
    DatasetHandle d(H5Dcreate2(group, "names", type, space, H5P_DEFAULT, untimed_create_plist(H5P_DATASET_CREATE),
                               H5P_DEFAULT),
                    "H5Dcreate2(names)");
    checked(H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, names.data()), "H5Dwrite(names)");
  }
  write_int64s(group, "shapes", shapes);
  write_int64s(group, "offsets", offsets);
}

namespace {

}  // namespace

EquationFileInfo inspect_equation_file(const std::string& path) {
  return guarded(path, [&] { return Reader(path).info; });
}

Equations read_equation_file(const std::string& path) {
  return guarded(path, [&] {
    Reader r(path);
    return r.read(0, r.info.m);
  });
}

Equations read_equation_rows(const std::string& path, std::int64_t begin, std::int64_t end) {
  return guarded(path, [&] { return Reader(path).read(begin, end); });
}

void write_equation_file(const std::string& path, const Equations& eq) {
  eq.validate(path);
  std::set<std::string> seen;
  for (const auto& [name, f] : eq.features)
    if (name.empty() || name == "." || name.find('/') != std::string::npos || !seen.insert(name).second)
      throw InputError(cat(path, ": feature name '", name,
                           "' is empty, contains '/' or repeats; give each feature a unique plain name"));

  write_hdf5_atomically(path, "the equation file", [&](std::int64_t file) {
    write_string_attribute(file, "format", kEquationFormat);
    {
      DataspaceHandle space(H5Screate(H5S_SCALAR), "H5Screate(SCALAR)");
      AttributeHandle attr(H5Acreate2(file, "version", H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT),
                           "H5Acreate2(version)");
      const std::int64_t version = kEquationVersion;
      checked(H5Awrite(attr, H5T_NATIVE_INT64, &version), "H5Awrite(version)");
    }
    for (const auto& [key, value] : provenance()) write_string_attribute(file, key, value);
    write_matrix(file, "theta", eq.theta);
    write_matrix(file, "grad_loss", eq.grad_loss);
    if (eq.target) write_matrix(file, "target", *eq.target);
    if (!eq.features.empty()) {
      GroupHandle group(H5Gcreate2(file, "features", H5P_DEFAULT, untimed_create_plist(H5P_GROUP_CREATE), H5P_DEFAULT),
                        "H5Gcreate2(features)");
      for (const auto& [name, f] : eq.features) write_matrix(group, name, f);
    }
    if (!eq.weights.empty()) write_matrix(file, "weights", eq.weights.data(), {eq.weights.size()});
    if (!eq.parameters.empty()) write_parameter_group(file, eq.parameters);
  });
}

void write_hdf5_atomically(const std::string& path, const std::string& what,
                           const std::function<void(std::int64_t file)>& fill) {
  QuietHdf5 quiet;
  const std::string tmp = cat(path, ".tmp-", static_cast<long>(::getpid()));
  std::string image;
  try {
    // Built in memory (untimed objects: the same values give the same bytes),
    // then written in one go: a full disk fails the plain write below.
    FileHandle file(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, untimed_create_plist(H5P_FILE_CREATE), memory_fapl()),
                    "H5Fcreate");
    fill(file);
    image = file_image(file);
    file.close("H5Fclose");
  } catch (const Hdf5Error& e) {
    throw std::runtime_error(cat(path, ": writing ", what, " failed (", e.what(), ")"));
  }
  write_file_bytes(tmp, image, path);
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw std::runtime_error(cat(path, ": cannot move the finished file into place (", ec.message(), ")"));
  }
}

}  // namespace gradmatch::io
