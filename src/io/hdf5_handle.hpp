#pragma once
// RAII ownership of HDF5 identifiers (private to src/io).
//
// Every hid_t the io layer obtains goes straight into a Handle, so an
// exception anywhere closes what was opened (a file left open would keep the
// temporary file of an atomic write alive). checked() turns a negative hid_t
// or herr_t into an Hdf5Error naming the call and HDF5's innermost reason;
// callers add the file name and what it means for the user.
#include <hdf5.h>

#include <stdexcept>
#include <string>
#include <utility>

#include "core/text.hpp"

namespace gradmatch::io::detail {

// The io sources say `using namespace detail;` and build messages with these.
using text::cat;
using text::num;

class Hdf5Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// HDF5's innermost error description (the first frame of the default
/// stack), e.g. "truncated file: eof = 1024, ...". Empty when there is none.
inline std::string innermost_hdf5_error() {
  std::string out;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_UPWARD,
      [](unsigned n, const H5E_error2_t* e, void* data) -> herr_t {
        if (n == 0 && e->desc) *static_cast<std::string*>(data) = e->desc;
        return 0;
      },
      &out);
  return out;
}

/// Throws Hdf5Error naming `call` when an HDF5 call reports failure (< 0).
template <class T>
T checked(T result, const char* call) {
  if (result < 0) {
    std::string msg = cat(call, " failed");
    if (std::string why = innermost_hdf5_error(); !why.empty()) msg += cat(" (", why, ")");
    throw Hdf5Error(msg);
  }
  return result;
}

/// While alive, HDF5 prints nothing to stderr: its failures become exceptions
/// with our own messages instead of a stack dump for every malformed file.
class QuietHdf5 {
 public:
  QuietHdf5() {
    H5Eget_auto2(H5E_DEFAULT, &func_, &data_);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
  ~QuietHdf5() { H5Eset_auto2(H5E_DEFAULT, func_, data_); }
  QuietHdf5(const QuietHdf5&) = delete;
  QuietHdf5& operator=(const QuietHdf5&) = delete;

 private:
  H5E_auto2_t func_ = nullptr;
  void* data_ = nullptr;
};

template <herr_t (*Close)(hid_t)>
class Handle {
 public:
  Handle() = default;
  /// Takes ownership; throws (naming `call`) when `id` is invalid.
  Handle(hid_t id, const char* call) : id_(checked(id, call)) {}
  ~Handle() { reset(); }
  Handle(Handle&& o) noexcept : id_(std::exchange(o.id_, H5I_INVALID_HID)) {}
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = std::exchange(o.id_, H5I_INVALID_HID);
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;

  hid_t get() const { return id_; }
  operator hid_t() const { return id_; }  // NOLINT: handles pass straight to the C API

  /// Closes now and reports failure (a file's close flushes its metadata).
  void close(const char* call) {
    const hid_t id = std::exchange(id_, H5I_INVALID_HID);
    if (id >= 0) checked(Close(id), call);
  }
  void reset() noexcept {
    if (id_ >= 0) Close(id_);
    id_ = H5I_INVALID_HID;
  }

 private:
  hid_t id_ = H5I_INVALID_HID;
};

using FileHandle = Handle<H5Fclose>;
using GroupHandle = Handle<H5Gclose>;
using ObjectHandle = Handle<H5Oclose>;
using DatasetHandle = Handle<H5Dclose>;
using DataspaceHandle = Handle<H5Sclose>;
using DatatypeHandle = Handle<H5Tclose>;
using AttributeHandle = Handle<H5Aclose>;
using PropListHandle = Handle<H5Pclose>;

/// A file-access property list for plain serial access (default sec2 driver,
/// even in the parallel library) that tolerates file systems without locks.
inline PropListHandle serial_fapl() {
  PropListHandle fapl(H5Pcreate(H5P_FILE_ACCESS), "H5Pcreate(FILE_ACCESS)");
  checked(H5Pset_file_locking(fapl, true, true), "H5Pset_file_locking");
  return fapl;
}

/// A file-access property list for a file built in memory (the core driver
/// without a backing store): nothing reaches the disk until file_image()'s
/// bytes are written with io::write_file_bytes (file_bytes.hpp), so a full
/// disk never leaves HDF5 holding a file it cannot flush.
inline PropListHandle memory_fapl() {
  PropListHandle fapl(H5Pcreate(H5P_FILE_ACCESS), "H5Pcreate(FILE_ACCESS)");
  checked(H5Pset_fapl_core(fapl, std::size_t{1} << 20, 0), "H5Pset_fapl_core");
  return fapl;
}

/// The finished bytes of a file made with memory_fapl().
inline std::string file_image(hid_t file) {
  checked(H5Fflush(file, H5F_SCOPE_GLOBAL), "H5Fflush");
  const ssize_t size = H5Fget_file_image(file, nullptr, 0);
  if (size < 0) checked(-1, "H5Fget_file_image");
  std::string bytes(static_cast<std::size_t>(size), '\0');
  if (H5Fget_file_image(file, bytes.data(), bytes.size()) != size) checked(-1, "H5Fget_file_image");
  return bytes;
}

/// Object-creation property lists of `cls` (H5P_DATASET_CREATE,
/// H5P_GROUP_CREATE, H5P_FILE_CREATE for the root group) that record no
/// access/modification times: two runs that write the same values then write
/// the same bytes, so results files compare with `cmp`.
inline PropListHandle untimed_create_plist(hid_t cls) {
  PropListHandle plist(H5Pcreate(cls), "H5Pcreate(object create)");
  checked(H5Pset_obj_track_times(plist, false), "H5Pset_obj_track_times");
  return plist;
}

/// The variable-length UTF-8 string type h5py writes for a Python str.
inline DatatypeHandle utf8_string_type() {
  DatatypeHandle t(H5Tcopy(H5T_C_S1), "H5Tcopy(C_S1)");
  checked(H5Tset_size(t, H5T_VARIABLE), "H5Tset_size");
  checked(H5Tset_cset(t, H5T_CSET_UTF8), "H5Tset_cset");
  return t;
}

/// Writes a scalar variable-length UTF-8 string attribute on `object`
/// (replacing one of the same name): h5py reads it back as a Python str.
inline void write_string_attribute(hid_t object, const std::string& key, const std::string& value) {
  if (checked(H5Aexists(object, key.c_str()), "H5Aexists") > 0) checked(H5Adelete(object, key.c_str()), "H5Adelete");
  DatatypeHandle type = utf8_string_type();
  DataspaceHandle space(H5Screate(H5S_SCALAR), "H5Screate(SCALAR)");
  AttributeHandle attr(H5Acreate2(object, key.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT), "H5Acreate2");
  const char* p = value.c_str();
  checked(H5Awrite(attr, type, &p), "H5Awrite");
}

}  // namespace gradmatch::io::detail
