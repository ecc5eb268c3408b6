// Study results as HDF5 (see hdf5_file.hpp).
//
// The writer builds the file in memory and, on commit(), writes it as
// PATH.partial and renames it, so a results file that exists is always
// complete and a full disk is one clear error (file_bytes.hpp). No object records its
// creation time: the same values give the same bytes (runs compare by cmp). Strings are
// variable-length UTF-8, the type h5py writes for a Python str.
#include "io/hdf5_file.hpp"

#include <filesystem>
#include <stdexcept>

#include "core/errors.hpp"
#include "io/file_bytes.hpp"
#include "io/hdf5_handle.hpp"
#include "io/provenance.hpp"

namespace gradmatch::io {

using namespace detail;
namespace fs = std::filesystem;

struct ResultsWriter::Impl {
  std::string partial;
  FileHandle file;
  bool committed = false;

  void require_open(const std::string& what) const {
    if (committed) throw std::logic_error(cat(partial, ": ", what, " after commit()"));
  }

  /// Creates dataset `name` (and missing groups on its path) and writes it.
  void write(const std::string& name, hid_t file_type, hid_t mem_type, const std::vector<hsize_t>& dims,
             const void* data) {
    require_open(cat("writing '", name, "'"));
    QuietHdf5 quiet;
    try {
      DataspaceHandle space(dims.empty() ? H5Screate(H5S_SCALAR)
                                         : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                            "H5Screate");
      PropListHandle lcpl(H5Pcreate(H5P_LINK_CREATE), "H5Pcreate(LINK_CREATE)");
      checked(H5Pset_create_intermediate_group(lcpl, 1), "H5Pset_create_intermediate_group");
      PropListHandle dcpl = untimed_create_plist(H5P_DATASET_CREATE);
      DatasetHandle d(H5Dcreate2(file, name.c_str(), file_type, space, lcpl, dcpl, H5P_DEFAULT), "H5Dcreate2");
      // HDF5 refuses a null buffer even for zero elements, and there is nothing to write.
      if (checked(H5Sget_simple_extent_npoints(space), "H5Sget_simple_extent_npoints") > 0)
        checked(H5Dwrite(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), "H5Dwrite");
    } catch (const Hdf5Error& e) {
      throw std::runtime_error(cat(partial, ": cannot write dataset '", name, "' (", e.what(), ")"));
    }
  }

  /// Opens `object` ("" or "/" is the root), creating it as a group if absent.
  ObjectHandle open_or_create(const std::string& object) {
    const std::string name = object.empty() ? "/" : object;
    if (hid_t id = H5Oopen(file, name.c_str(), H5P_DEFAULT); id >= 0) return ObjectHandle(id, "H5Oopen");
    PropListHandle lcpl(H5Pcreate(H5P_LINK_CREATE), "H5Pcreate(LINK_CREATE)");
    checked(H5Pset_create_intermediate_group(lcpl, 1), "H5Pset_create_intermediate_group");
    GroupHandle(H5Gcreate2(file, name.c_str(), lcpl, untimed_create_plist(H5P_GROUP_CREATE), H5P_DEFAULT),
                "H5Gcreate2");
    return ObjectHandle(H5Oopen(file, name.c_str(), H5P_DEFAULT), "H5Oopen");
  }

  template <class F>
  void set_attribute(const std::string& object, const std::string& key, F&& write_attr) {
    require_open(cat("setting attribute '", key, "'"));
    QuietHdf5 quiet;
    try {
      ObjectHandle obj = open_or_create(object);
      write_attr(obj.get());
    } catch (const Hdf5Error& e) {
      throw std::runtime_error(cat(partial, ": cannot set attribute '", key, "' on '", object, "' (", e.what(), ")"));
    }
  }
};

ResultsWriter::ResultsWriter(std::string path, const std::string& study)
    : path_(std::move(path)), impl_(std::make_unique<Impl>()) {
  impl_->partial = path_ + ".partial";
  std::error_code ec;
  if (const fs::path dir = fs::path(path_).parent_path(); !dir.empty() && !fs::is_directory(dir, ec))
    throw InputError(cat(path_, ": cannot create the results file: the directory ", dir.string(),
                         " does not exist; create it first"));
  QuietHdf5 quiet;
  try {
    impl_->file = FileHandle(
        H5Fcreate(impl_->partial.c_str(), H5F_ACC_TRUNC, untimed_create_plist(H5P_FILE_CREATE), memory_fapl()),
        "H5Fcreate");
  } catch (const Hdf5Error& e) {
    throw InputError(cat(impl_->partial, ": cannot create the results file (", e.what(),
                         "); check that its directory exists and is writable"));
  }
  set_attribute("/", "format", "gradmatch.results");
  set_attribute("/", "study", study);
  for (const auto& [key, value] : provenance())
    if (key != "study") set_attribute("/", key, value);
}

ResultsWriter::~ResultsWriter() {
  if (impl_->committed) return;
  impl_->file.reset();
  std::error_code ec;
  fs::remove(impl_->partial, ec);
}

namespace {

/// [n] when `shape` is empty; checks the element count and the axis names.
std::vector<hsize_t> checked_dims(const std::string& file, const std::string& name, std::size_t values,
                                  const std::vector<std::int64_t>& shape, const DatasetInfo& info) {
  std::vector<hsize_t> dims;
  std::int64_t n = 1;
  for (std::int64_t d : shape) {
    if (d < 0) throw std::invalid_argument(cat(file, ": dataset '", name, "' has a negative dimension"));
    dims.push_back(static_cast<hsize_t>(d));
    n *= d;
  }
  if (shape.empty()) {
    dims.push_back(values);
    n = static_cast<std::int64_t>(values);
  }
  if (n != static_cast<std::int64_t>(values))
    throw std::invalid_argument(cat(file, ": dataset '", name, "' has ", std::to_string(values),
                                    " values but its shape holds ", std::to_string(n)));
  if (info.dims.size() != dims.size())
    throw std::invalid_argument(cat(file, ": dataset '", name, "' has ", std::to_string(dims.size()),
                                    " dimensions but ", std::to_string(info.dims.size()), " axis names"));
  return dims;
}

}  // namespace

void ResultsWriter::describe(const std::string& name, const DatasetInfo& info) {
  set_attribute(name, "description", info.description);
  set_attribute(name, "units", info.units);
  set_attribute(name, "dims", info.dims);
}

void ResultsWriter::write(const std::string& name, const std::vector<double>& value, const DatasetInfo& info,
                          const std::vector<std::int64_t>& shape) {
  impl_->write(name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, checked_dims(impl_->partial, name, value.size(), shape, info),
               value.data());
  describe(name, info);
}

void ResultsWriter::write(const std::string& name, const std::vector<std::int64_t>& value, const DatasetInfo& info,
                          const std::vector<std::int64_t>& shape) {
  impl_->write(name, H5T_STD_I64LE, H5T_NATIVE_INT64, checked_dims(impl_->partial, name, value.size(), shape, info),
               value.data());
  describe(name, info);
}

void ResultsWriter::write(const std::string& name, const Matrix& value, const DatasetInfo& info) {
  write(name, value.values(), info, {value.rows(), value.cols()});
}

void ResultsWriter::write(const std::string& name, double value, const DatasetInfo& info) {
  if (!info.dims.empty()) throw std::invalid_argument(cat(impl_->partial, ": scalar '", name, "' has axis names"));
  impl_->write(name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, {}, &value);
  describe(name, info);
}

void ResultsWriter::write(const std::string& name, std::int64_t value, const DatasetInfo& info) {
  if (!info.dims.empty()) throw std::invalid_argument(cat(impl_->partial, ": scalar '", name, "' has axis names"));
  impl_->write(name, H5T_STD_I64LE, H5T_NATIVE_INT64, {}, &value);
  describe(name, info);
}

void ResultsWriter::write(const std::string& name, const std::string& value, const DatasetInfo& info) {
  QuietHdf5 quiet;
  DatatypeHandle type = utf8_string_type();
  const char* p = value.c_str();
  impl_->write(name, type, type, {}, &p);
  describe(name, info);
}

void ResultsWriter::set_attribute(const std::string& object, const std::string& key, const std::string& value) {
  impl_->set_attribute(object, key, [&](hid_t obj) { write_string_attribute(obj, key, value); });
}

void ResultsWriter::set_attribute(const std::string& object, const std::string& key, double value) {
  impl_->set_attribute(object, key, [&](hid_t obj) {
    if (checked(H5Aexists(obj, key.c_str()), "H5Aexists") > 0) checked(H5Adelete(obj, key.c_str()), "H5Adelete");
    DataspaceHandle space(H5Screate(H5S_SCALAR), "H5Screate(SCALAR)");
    AttributeHandle attr(H5Acreate2(obj, key.c_str(), H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT), "H5Acreate2");
    checked(H5Awrite(attr, H5T_NATIVE_DOUBLE, &value), "H5Awrite");
  });
}

void ResultsWriter::set_attribute(const std::string& object, const std::string& key,
                                  const std::vector<std::string>& value) {
  impl_->set_attribute(object, key, [&](hid_t obj) {
    if (checked(H5Aexists(obj, key.c_str()), "H5Aexists") > 0) checked(H5Adelete(obj, key.c_str()), "H5Adelete");
    DatatypeHandle type = utf8_string_type();
    const hsize_t n = value.size();
    DataspaceHandle space(H5Screate_simple(1, &n, nullptr), "H5Screate_simple");
    AttributeHandle attr(H5Acreate2(obj, key.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT), "H5Acreate2");
    std::vector<const char*> pointers;
    for (const std::string& v : value) pointers.push_back(v.c_str());
    // HDF5 refuses a null buffer even for zero elements.
    const char* none = "";
    checked(H5Awrite(attr, type, pointers.empty() ? static_cast<const void*>(&none) : pointers.data()), "H5Awrite");
  });
}

void ResultsWriter::commit() {
  impl_->require_open("commit()");
  QuietHdf5 quiet;
  std::string image;
  try {
    image = file_image(impl_->file);
    impl_->file.close("H5Fclose");
  } catch (const std::exception& e) {
    throw std::runtime_error(cat(path_, ": cannot finish the results file (", e.what(), ")"));
  }
  write_file_bytes(impl_->partial, image, path_);
  std::error_code ec;
  fs::rename(impl_->partial, path_, ec);
  if (ec) {
    fs::remove(impl_->partial, ec);
    throw std::runtime_error(cat(path_, ": cannot move the finished results file into place (", ec.message(), ")"));
  }
  impl_->committed = true;
}

std::vector<double> read_doubles(const std::string& path, const std::string& name, std::vector<std::int64_t>* shape) {
  QuietHdf5 quiet;
  const auto bad = [&](const std::string& what) { return InputError(cat(path, ": ", what)); };
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw bad("does not exist or is not a file; check the path");
  if (H5Fis_hdf5(path.c_str()) <= 0) throw bad("is not an HDF5 file");
  try {
    FileHandle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, serial_fapl()), "H5Fopen");
    // H5Lexists needs every group on the way to exist: test each prefix.
    for (std::size_t pos = 0; pos != std::string::npos;) {
      pos = name.find('/', pos + 1);
      const std::string prefix = name.substr(0, pos);
      if (!prefix.empty() && checked(H5Lexists(file, prefix.c_str(), H5P_DEFAULT), "H5Lexists") <= 0)
        throw bad(cat("has no dataset '", name, "'"));
    }
    DatasetHandle d(H5Dopen2(file, name.c_str(), H5P_DEFAULT), "H5Dopen2");
    DatatypeHandle type(H5Dget_type(d), "H5Dget_type");
    if (const H5T_class_t c = H5Tget_class(type); c != H5T_FLOAT && c != H5T_INTEGER)
      throw bad(cat("dataset '", name, "' is not numeric"));
    DataspaceHandle space(H5Dget_space(d), "H5Dget_space");
    const int rank = checked(H5Sget_simple_extent_ndims(space), "H5Sget_simple_extent_ndims");
    std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
    if (rank > 0) checked(H5Sget_simple_extent_dims(space, dims.data(), nullptr), "H5Sget_simple_extent_dims");
    std::vector<double> out(static_cast<std::size_t>(checked(H5Sget_simple_extent_npoints(space), "H5Sget_simple_extent_npoints")));
    if (!out.empty()) checked(H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()), "H5Dread");
    if (shape) shape->assign(dims.begin(), dims.end());
    return out;
  } catch (const Hdf5Error& e) {
    throw bad(cat("cannot read dataset '", name, "' (", e.what(), ")"));
  }
}

}  // namespace gradmatch::io
