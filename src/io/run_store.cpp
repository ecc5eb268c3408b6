// The run store (see run_store.hpp): parallel HDF5 through MPI-IO.
//
// Collective HDF5 calls (file create/open/close, object and attribute
// creation, dataset open) are made by every rank with the same arguments;
// raw-data writes of finished tasks are independent. Decisions about the
// directory (exists? foreign? locked?) are made by rank 0 and broadcast, so
// every rank throws the same InputError.
#include "io/run_store.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

#include "core/errors.hpp"
#include "io/file_bytes.hpp"
#include "io/hdf5_handle.hpp"
#include "mpi/mpi.hpp"

namespace gradmatch::io {

using namespace detail;
namespace fs = std::filesystem;

namespace {

constexpr const char* kFormat = "gradmatch.run_store";
constexpr std::int64_t kVersion = 1;
constexpr const char* kStoreName = "store.h5";
constexpr const char* kLockName = "store.lock";
/// Files a study writes into DIR: their presence without a store means DIR
/// holds someone else's results, which a new run must not overwrite.
constexpr const char* kStudyOutputs[] = {"results.h5", "summary.json", "run_info.json"};

/// Rank 0's (code, text) on every rank.
std::pair<int, std::string> broadcast_verdict(const mpi::Communicator& comm, int code, const std::string& text) {
  const auto agreed = static_cast<int>(comm.broadcast(std::int64_t{code}));
  return {agreed, comm.broadcast(text)};
}

constexpr std::uint64_t kFnvOffset = 14695981039346656037ULL;

std::uint64_t fnv1a_bytes(std::uint64_t h, const char* bytes, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    h ^= static_cast<unsigned char>(bytes[i]);
    h *= 1099511628211ULL;
  }
  return h;
}

std::uint64_t fnv1a(std::uint64_t h, const std::string& s) {
  h = fnv1a_bytes(h, s.data(), s.size());
  // A separator byte that no text contains, so ("ab", "c") != ("a", "bc").
  h ^= 0xff;
  h *= 1099511628211ULL;
  return h;
}

std::map<std::string, std::string> parse_effective(const std::string& text) {
  std::map<std::string, std::string> out;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(start, end - start);
    const std::size_t eq = line.find(" = ");
    if (eq != std::string::npos) out[line.substr(0, eq)] = line.substr(eq + 3);
    start = end + 1;
  }
  return out;
}

PropListHandle mpio_fapl(MPI_Comm comm) {
  PropListHandle fapl(H5Pcreate(H5P_FILE_ACCESS), "H5Pcreate(FILE_ACCESS)");
  checked(H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL), "H5Pset_fapl_mpio");
  return fapl;
}

// ---- attributes (fixed-length strings and int64: plain metadata every rank writes alike) ----

/// A fixed-length string type of `size` bytes (at least one), NUL-padded.
DatatypeHandle text_type(std::size_t size) {
  DatatypeHandle type(H5Tcopy(H5T_C_S1), "H5Tcopy(C_S1)");
  checked(H5Tset_size(type, std::max<std::size_t>(size, 1)), "H5Tset_size");
  checked(H5Tset_strpad(type, H5T_STR_NULLPAD), "H5Tset_strpad");
  return type;
}

std::string padded(const std::string& value) {
  std::string p = value;
  p.resize(std::max<std::size_t>(value.size(), 1), '\0');
  return p;
}

void write_text_attribute(hid_t obj, const char* key, const std::string& value) {
  DatatypeHandle type = text_type(value.size());
  DataspaceHandle space(H5Screate(H5S_SCALAR), "H5Screate(SCALAR)");
  AttributeHandle attr(H5Acreate2(obj, key, type, space, H5P_DEFAULT, H5P_DEFAULT), "H5Acreate2");
  checked(H5Awrite(attr, type, padded(value).data()), "H5Awrite");
}

/// A scalar fixed-length string dataset (collective; rank 0 writes the text).
void write_text_dataset(hid_t file, const char* name, const std::string& value, int rank) {
  DatatypeHandle type = text_type(value.size());
  DataspaceHandle space(H5Screate(H5S_SCALAR), "H5Screate(SCALAR)");
  PropListHandle dcpl = untimed_create_plist(H5P_DATASET_CREATE);
  checked(H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY), "H5Pset_alloc_time");
  DatasetHandle d(H5Dcreate2(file, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT), "H5Dcreate2");
  if (rank == 0) checked(H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, padded(value).data()), "H5Dwrite");
}

/// A scalar fixed-length string dataset's text; false when absent or not one.
bool read_text_dataset(hid_t file, const char* name, std::string& out) {
  if (checked(H5Lexists(file, name, H5P_DEFAULT), "H5Lexists") <= 0) return false;
  DatasetHandle d(H5Dopen2(file, name, H5P_DEFAULT), "H5Dopen2");
  DatatypeHandle type(H5Dget_type(d), "H5Dget_type");
  if (H5Tget_class(type) != H5T_STRING || H5Tis_variable_str(type) > 0) return false;
  std::string buf(H5Tget_size(type), '\0');
  checked(H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()), "H5Dread");
  buf.resize(std::min(buf.find('\0'), buf.size()));
  out = buf;
  return true;
}

void write_int_attribute(hid_t obj, const char* key, std::int64_t value) {
  DataspaceHandle space(H5Screate(H5S_SCALAR), "H5Screate(SCALAR)");
  AttributeHandle attr(H5Acreate2(obj, key, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT), "H5Acreate2");
  checked(H5Awrite(attr, H5T_NATIVE_INT64, &value), "H5Awrite");
}

/// The attribute's text into `out`; false when it is absent or not a fixed-length string.
bool read_text_attribute(hid_t obj, const char* key, std::string& out) {
  if (checked(H5Aexists(obj, key), "H5Aexists") <= 0) return false;
  AttributeHandle attr(H5Aopen(obj, key, H5P_DEFAULT), "H5Aopen");
  DatatypeHandle type(H5Aget_type(attr), "H5Aget_type");
  if (H5Tget_class(type) != H5T_STRING || H5Tis_variable_str(type) > 0) return false;
  const std::size_t size = H5Tget_size(type);
  std::string buf(size, '\0');
  checked(H5Aread(attr, type, buf.data()), "H5Aread");
  buf.resize(std::min(buf.find('\0'), buf.size()));
  out = buf;
  return true;
}

bool read_int_attribute(hid_t obj, const char* key, std::int64_t& out) {
  if (checked(H5Aexists(obj, key), "H5Aexists") <= 0) return false;
  AttributeHandle attr(H5Aopen(obj, key, H5P_DEFAULT), "H5Aopen");
  DatatypeHandle type(H5Aget_type(attr), "H5Aget_type");
  if (H5Tget_class(type) != H5T_INTEGER) return false;
  checked(H5Aread(attr, H5T_NATIVE_INT64, &out), "H5Aread");
  return true;
}

/// A contiguous dataset allocated and filled at creation, recording no times.
DatasetHandle create_table_dataset(hid_t group, const char* name, hid_t file_type, hid_t mem_type, const void* fill,
                                   const std::vector<hsize_t>& dims) {
  DataspaceHandle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), "H5Screate_simple");
  PropListHandle dcpl = untimed_create_plist(H5P_DATASET_CREATE);
  checked(H5Pset_layout(dcpl, H5D_CONTIGUOUS), "H5Pset_layout");
  checked(H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY), "H5Pset_alloc_time");
  checked(H5Pset_fill_time(dcpl, H5D_FILL_TIME_ALLOC), "H5Pset_fill_time");
  checked(H5Pset_fill_value(dcpl, mem_type, fill), "H5Pset_fill_value");
  return DatasetHandle(H5Dcreate2(group, name, file_type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT), "H5Dcreate2");
}

std::int64_t extent(hid_t dataset, int dim) {
  DataspaceHandle space(H5Dget_space(dataset), "H5Dget_space");
  const int rank = checked(H5Sget_simple_extent_ndims(space), "H5Sget_simple_extent_ndims");
  if (dim >= rank) return -1;
  std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
  checked(H5Sget_simple_extent_dims(space, dims.data(), nullptr), "H5Sget_simple_extent_dims");
  return static_cast<std::int64_t>(dims[static_cast<std::size_t>(dim)]);
}

template <class T>
std::vector<T> read_all(hid_t dataset, hid_t mem_type, std::size_t count) {
  std::vector<T> out(count);
  if (count > 0) checked(H5Dread(dataset, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()), "H5Dread");
  return out;
}

/// Writes `count` elements at (row, 0..count) of a 1-D or 2-D dataset.
void write_row_values(hid_t dataset, hid_t mem_type, std::int64_t row, hsize_t count, const void* values) {
  DataspaceHandle file_space(H5Dget_space(dataset), "H5Dget_space");
  const int rank = checked(H5Sget_simple_extent_ndims(file_space), "H5Sget_simple_extent_ndims");
  const hsize_t start[2] = {static_cast<hsize_t>(row), 0};
  const hsize_t counts[2] = {1, count};
  checked(H5Sselect_hyperslab(file_space, H5S_SELECT_SET, start, nullptr, rank == 1 ? &counts[0] : counts, nullptr),
          "H5Sselect_hyperslab");
  DataspaceHandle mem_space(H5Screate_simple(1, &count, nullptr), "H5Screate_simple");
  checked(H5Dwrite(dataset, mem_type, mem_space, file_space, H5P_DEFAULT, values), "H5Dwrite");
}

}  // namespace

std::int64_t RunStoreProgress::rows() const {
  std::int64_t n = 0;
  for (const Table& t : tables) n += t.rows;
  return n;
}

std::int64_t RunStoreProgress::finished() const {
  std::int64_t n = 0;
  for (const Table& t : tables) n += t.done + t.diverged;
  return n;
}

std::int64_t RunStoreProgress::diverged() const {
  std::int64_t n = 0;
  for (const Table& t : tables) n += t.diverged;
  return n;
}

namespace {

/// The refusal of a directory whose lock another run holds.
std::string in_use(const std::string& lock) {
  return cat("is in use by another gradmatch run (it holds ", lock, "); wait for it to finish or use a new --out");
}

/// A directory without a run store that holds a study's outputs is not a
/// resumable run: the refusal, or "" when DIR holds none of them.
std::string foreign_outputs(const fs::path& dir) {
  std::error_code ec;
  for (const char* name : kStudyOutputs)
    if (fs::exists(dir / name, ec))
      return cat("holds ", name, " but no run store (", kStoreName,
                 "): it is not a resumable gradmatch run; use a new --out or delete ", dir.string());
  return {};
}

std::string read_config(hid_t file) {
  std::string config;
  read_text_dataset(file, "config", config);
  return config;
}

/// The checks a run makes of an existing store before it resumes: a gradmatch
/// run store of this format version, made by the same study with the same
/// config (or one that lacks only keys now at their defaults) from the same
/// input files. InputError naming DIR and what to do otherwise; returns the
/// keys the store's config lacks.
std::vector<std::string> check_store_header(hid_t file, const RunStoreSpec& spec, const std::string& dir) {
  const auto input_error = [&](const std::string& what) { throw InputError(cat(dir, ": ", what)); };
  std::string format, study;
  std::int64_t version = 0;
  if (!read_text_attribute(file, "format", format) || format != kFormat || !read_int_attribute(file, "version", version))
    input_error(cat(kStoreName, " is not a gradmatch run store; use a new --out or delete ", dir));
  if (version != kVersion)
    input_error(cat(kStoreName, " has run-store version ", version, ", this gradmatch reads version ", kVersion,
                    "; use a new --out or delete ", dir));
  read_text_attribute(file, "study", study);
  const std::string config = read_config(file);
  if (study != spec.study)
    input_error(cat("was made by study '", study, "', not '", spec.study, "'; use a new --out or delete ", dir));
  std::vector<std::string> keys_added;
  if (config != spec.config) {
    const auto added = keys_added_at_default(config, spec.config, spec.defaults);
    if (!added)
      input_error(cat("was made by a different config (", describe_config_difference(config, spec.config, 3, spec.defaults),
                      "); use a new --out or delete ", dir));
    keys_added = *added;
  }
  if (std::string there; read_text_dataset(file, "inputs", there) && there != spec.inputs)
    input_error(cat("an input file changed since the store was made (", describe_config_difference(there, spec.inputs),
                    "); its rows so far come from the former file: restore it, or use a new --out or delete ", dir));
  return keys_added;
}

}  // namespace

StoreCheck check_run_store(const std::string& dir, RunStoreSpec spec, const std::function<std::string()>& inputs) {
  const fs::path d(dir), store = d / kStoreName;
  StoreCheck out;
  std::error_code ec;
  if (fs::exists(d, ec) && !fs::is_directory(d, ec))
    throw InputError(cat(dir, ": cannot create the output directory (not a directory); choose a writable --out"));
  // A run holding the lock refuses a second one; so does the check: a shared
  // lock, tried without waiting and let go at once (a run starting in that
  // instant is refused as if another run held the directory).
  const std::string lock = (d / kLockName).string();
  if (const int fd = ::open(lock.c_str(), O_RDONLY | O_CLOEXEC); fd >= 0) {
    const bool held = ::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    ::close(fd);
    if (held)
      throw InputError(
          cat(dir, ": ", in_use(lock)));
  }
  if (!fs::exists(store, ec)) {
    if (const std::string refusal = foreign_outputs(d); !refusal.empty()) throw InputError(cat(dir, ": ", refusal));
    return out;
  }
  out.exists = true;
  spec.inputs = inputs();
  const QuietHdf5 quiet;
  {
    const hid_t id = H5Fopen(store.c_str(), H5F_ACC_RDONLY, serial_fapl());
    if (id < 0)
      throw InputError(cat(dir, ": ", kStoreName, " cannot be opened; if it is damaged, delete ", dir, " and run again"));
    const FileHandle file(id, "H5Fopen");
    out.keys_added = check_store_header(file, spec, dir);
  }
  const RunStoreProgress progress = inspect_run_store(store.string());
  out.total = progress.rows();
  out.finished = progress.finished();
  return out;
}

RunStoreProgress inspect_run_store(const std::string& path) {
  const auto not_a_store = [&](const std::string& why) {
    throw InputError(cat(path, ": not a gradmatch run store (", why, ")"));
  };
  const QuietHdf5 quiet;
  const PropListHandle fapl = serial_fapl();
  const hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl);
  if (id < 0) not_a_store("HDF5 cannot open it");
  const FileHandle file(id, "H5Fopen");
  std::string format;
  std::int64_t version = 0;
  if (!read_text_attribute(file, "format", format) || format != kFormat || !read_int_attribute(file, "version", version))
    not_a_store("no format attribute \"gradmatch.run_store\"");
  if (version != kVersion)
    not_a_store(cat("run-store version ", version, "; this gradmatch reads version ", kVersion));
  RunStoreProgress progress;
  read_text_attribute(file, "study", progress.study);
  if (checked(H5Lexists(file, "tables", H5P_DEFAULT), "H5Lexists") <= 0) not_a_store("no group 'tables'");
  const GroupHandle group(H5Gopen2(file, "tables", H5P_DEFAULT), "H5Gopen2(tables)");
  H5G_info_t info;
  checked(H5Gget_info(group, &info), "H5Gget_info");
  for (hsize_t k = 0; k < info.nlinks; ++k) {
    // Creation order is not tracked: names come in alphabetical order.
    const ssize_t size = H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, k, nullptr, 0, H5P_DEFAULT);
    std::string name(static_cast<std::size_t>(checked(static_cast<int>(size), "H5Lget_name_by_idx")), '\0');
    H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, k, name.data(), name.size() + 1, H5P_DEFAULT);
    const GroupHandle g(H5Gopen2(group, name.c_str(), H5P_DEFAULT), "H5Gopen2(table)");
    if (checked(H5Lexists(g, "status", H5P_DEFAULT), "H5Lexists") <= 0) not_a_store(cat("table '", name, "' has no status"));
    const DatasetHandle status(H5Dopen2(g, "status", H5P_DEFAULT), "H5Dopen2(status)");
    RunStoreProgress::Table t;
    t.name = name;
    t.rows = extent(status, 0);
    for (const std::int8_t code : read_all<std::int8_t>(status, H5T_NATIVE_INT8, static_cast<std::size_t>(t.rows))) {
      if (code == static_cast<std::int8_t>(TaskStatus::done)) ++t.done;
      if (code == static_cast<std::int8_t>(TaskStatus::diverged)) ++t.diverged;
    }
    progress.tables.push_back(std::move(t));
  }
  return progress;
}

std::string store_fingerprint(const std::string& study, const std::string& config) {
  std::uint64_t h = kFnvOffset;
  h = fnv1a(h, std::to_string(kVersion));
  h = fnv1a(h, study);
  h = fnv1a(h, config);
  char buf[32];
  std::snprintf(buf, sizeof buf, "fnv1a64:%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string file_digest(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(cat(path, ": cannot read it to record its digest"));
  std::uint64_t h = kFnvOffset;
  std::uint64_t bytes = 0;
  std::vector<char> buffer(std::size_t{1} << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const auto got = static_cast<std::size_t>(in.gcount());
    h = fnv1a_bytes(h, buffer.data(), got);
    bytes += got;
  }
  if (in.bad()) throw std::runtime_error(cat(path, ": reading it to record its digest failed"));
  char buf[64];
  std::snprintf(buf, sizeof buf, "fnv1a64:%016llx, ", static_cast<unsigned long long>(h));
  return cat(buf, bytes, " bytes");
}

std::string describe_config_difference(const std::string& there, const std::string& now, std::size_t limit,
                                       const std::string& defaults) {
  const auto a = parse_effective(there), b = parse_effective(now), d = parse_effective(defaults);
  std::vector<std::string> diffs;
  for (const auto& [key, value] : a) {
    const auto it = b.find(key);
    if (it == b.end())
      diffs.push_back(cat(key, ": ", value, " there, absent now"));
    else if (it->second != value)
      diffs.push_back(cat(key, ": ", value, " there, ", it->second, " now"));
  }
  for (const auto& [key, value] : b) {
    if (a.count(key)) continue;
    const auto before = d.find(key);
    if (before != d.end() && before->second != value)
      diffs.push_back(cat(key, ": absent there (made before the key existed, when gradmatch did ", key, " = ",
                          before->second, "; write that to resume it), ", value, " now"));
    else
      diffs.push_back(cat(key, ": absent there, ", value, " now"));
  }
  std::sort(diffs.begin(), diffs.end());
  std::string out;
  for (std::size_t i = 0; i < diffs.size() && i < limit; ++i) out += cat(i ? "; " : "", diffs[i]);
  if (diffs.size() > limit) out += cat("; and ", diffs.size() - limit, " more");
  return out;
}

std::optional<std::vector<std::string>> keys_added_at_default(const std::string& there, const std::string& now,
                                                              const std::string& defaults) {
  const auto a = parse_effective(there), b = parse_effective(now), d = parse_effective(defaults);
  std::vector<std::string> added;
  for (const auto& [key, value] : a)
    if (const auto it = b.find(key); it == b.end() || it->second != value) return std::nullopt;
  for (const auto& [key, value] : b) {
    if (a.count(key)) continue;
    const auto it = d.find(key);
    if (it == d.end() || it->second != value) return std::nullopt;
    added.push_back(key);
  }
  return added;
}

struct RunStore::Impl {
  struct Table {
    std::string name;
    std::int64_t rows = 0, width = 0;
    DatasetHandle data, status, attempt;
    std::vector<std::int64_t> pending;
  };

  MPI_Comm comm = MPI_COMM_NULL;
  int rank = 0;
  std::string dir, path;
  bool created = false;
  std::int32_t attempt = 1;
  std::string fingerprint;              ///< the store's own (its study and config)
  std::vector<std::string> keys_added;  ///< keys_added_at_default(store's config, spec's)
  std::string made_with;                ///< the store's `compute` attribute ("" before it existed)
  std::vector<std::string> reopened;    ///< rows set pending again at open (reopen_stale)
  std::int64_t total = 0, finished = 0;
  FileHandle file;  // declared before the datasets: they close first (mpio closes files "semi")
  std::vector<Table> tables;
  int lock_fd = -1;
  bool read_only = false;  ///< DIR cannot be written (a finished run on read-only space)
  bool open = false;

  [[noreturn]] void input_error(const std::string& what) const { throw InputError(cat(dir, ": ", what)); }

  /// Rank 0: creates DIR, refuses foreign directories, takes the lock.
  /// Returns (0 store exists | 1 create it | 2 refuse | 3 store exists on
  /// read-only space, message).
  std::pair<int, std::string> inspect_directory() {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec || !fs::is_directory(dir))
      return {2, cat("cannot create the output directory (", ec ? ec.message() : "not a directory",
                     "); choose a writable --out")};
    const bool exists = fs::exists(path);
    if (!exists)
      if (std::string refusal = foreign_outputs(dir); !refusal.empty()) return {2, std::move(refusal)};
    const std::string lock = (fs::path(dir) / kLockName).string();
    lock_fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd < 0 && exists && (errno == EROFS || errno == EACCES)) {
      // A finished run kept on read-only space: it may still say "nothing
      // to do" (a shared flock works on a read-only descriptor); a run with
      // work left is refused once the statuses are read.
      read_only = true;
      lock_fd = ::open(lock.c_str(), O_RDONLY | O_CLOEXEC);
      if (lock_fd >= 0 && ::flock(lock_fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK)
        return {2, in_use(lock)};
      return {3, ""};
    }
    if (lock_fd < 0) return {2, cat("cannot create ", lock, "; choose a writable --out")};
    // Only "held by someone else" refuses: a file system without flock
    // support (some parallel file systems) runs unguarded.
    if (::flock(lock_fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK)
      return {
          2, in_use(lock)};
    return {exists ? 0 : 1, ""};
  }

  void unlock() {
    if (lock_fd >= 0) ::close(lock_fd);  // closing the descriptor releases the flock
    lock_fd = -1;
  }

  void create(const RunStoreSpec& spec) {
    const std::string partial = path + ".partial";
    // Reserve the store's size first: a disk that cannot hold it fails here,
    // with one message, and not inside HDF5's collective writes (where one
    // rank's ENOSPC leaves the others waiting).
    {
      int ok = 1;
      std::string why;
      if (rank == 0) {
        double bytes = 64.0 * 1024.0 + static_cast<double>(spec.config.size());
        for (const auto& t : spec.tables)
          bytes += static_cast<double>(t.ids.size()) * (8.0 * static_cast<double>(t.width) + 13.0);
        const int fd = ::open(partial.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        const int err = fd < 0 ? errno : ::posix_fallocate(fd, 0, static_cast<off_t>(bytes));
        if (fd >= 0) ::close(fd);
        ::unlink(partial.c_str());
        // EINVAL/EOPNOTSUPP: a file system without fallocate; HDF5 finds out.
        if (err == ENOSPC || err == EDQUOT || err == EFBIG) {
          ok = 0;
          why = cat(disk_full_message(path), " (the run store needs ", static_cast<std::int64_t>(bytes), " bytes)");
        }
      }
      const auto verdict = broadcast_verdict(mpi::Communicator(comm), ok, why);
      if (!verdict.first) throw std::runtime_error(verdict.second);
    }
    {
      FileHandle f(H5Fcreate(partial.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, mpio_fapl(comm)), "H5Fcreate");
      write_text_attribute(f, "format", kFormat);
      write_int_attribute(f, "version", kVersion);
      write_text_attribute(f, "study", spec.study);
      write_text_dataset(f, "config", spec.config, rank);  // a dataset, not an attribute: attributes hold at most 64 KiB
      write_text_attribute(f, "fingerprint", store_fingerprint(spec.study, spec.config));
      write_text_attribute(f, "compute", spec.compute);
      if (!spec.inputs.empty()) write_text_dataset(f, "inputs", spec.inputs, rank);
      std::int64_t total_rows = 0;
      for (const auto& t : spec.tables) total_rows += static_cast<std::int64_t>(t.ids.size());
      write_int_attribute(f, "tasks", total_rows);
      {
        GroupHandle group(H5Gcreate2(f, "tables", H5P_DEFAULT, untimed_create_plist(H5P_GROUP_CREATE), H5P_DEFAULT),
                          "H5Gcreate2(tables)");
        for (const auto& t : spec.tables) {
          GroupHandle g(
              H5Gcreate2(group, t.name.c_str(), H5P_DEFAULT, untimed_create_plist(H5P_GROUP_CREATE), H5P_DEFAULT),
              "H5Gcreate2(table)");
          const auto n = static_cast<hsize_t>(t.ids.size()), w = static_cast<hsize_t>(t.width);
          write_int_attribute(g, "tasks", static_cast<std::int64_t>(n));
          write_int_attribute(g, "width", t.width);
          const std::uint64_t zero_id = 0;
          const double nan = std::nan("");
          const std::int8_t pending = static_cast<std::int8_t>(TaskStatus::pending);
          const std::int32_t no_attempt = 0;
          DatasetHandle ids = create_table_dataset(g, "id", H5T_STD_U64LE, H5T_NATIVE_UINT64, &zero_id, {n});
          create_table_dataset(g, "data", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &nan, {n, w});
          create_table_dataset(g, "status", H5T_STD_I8LE, H5T_NATIVE_INT8, &pending, {n});
          create_table_dataset(g, "attempt", H5T_STD_I32LE, H5T_NATIVE_INT32, &no_attempt, {n});
          if (rank == 0 && n > 0)
            checked(H5Dwrite(ids, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.ids.data()), "H5Dwrite(id)");
        }
      }  // every object closed before the file
      f.close("H5Fclose");
    }
    int ok = 1;
    std::string why;
    if (rank == 0) {
      std::error_code ec;
      fs::rename(partial, path, ec);
      if (ec) {
        ok = 0;
        why = ec.message();
      }
    }
    const auto verdict = broadcast_verdict(mpi::Communicator(comm), ok, why);
    if (!verdict.first)
      throw std::runtime_error(cat(path, ": cannot move the new run store into place (", verdict.second, ")"));
  }

  /// Opens the store, checks that it is the one `spec` describes, reads the
  /// statuses. Read-only unless `writable`.
  void open_and_check(const RunStoreSpec& spec, bool writable) {
    file = FileHandle(H5Fopen(path.c_str(), writable ? H5F_ACC_RDWR : H5F_ACC_RDONLY, mpio_fapl(comm)), "H5Fopen");
    keys_added = check_store_header(file, spec, dir);
    fingerprint = store_fingerprint(spec.study, read_config(file));
    made_with.clear();
    read_text_attribute(file, "compute", made_with);

    const auto layout_error = [&](const std::string& what) {
      input_error(cat("its run store has a different task layout for this config (", what,
                      "; made by another gradmatch version?); use a new --out or delete ", dir));
    };
    GroupHandle group(H5Gopen2(file, "tables", H5P_DEFAULT), "H5Gopen2(tables)");
    H5G_info_t info;
    checked(H5Gget_info(group, &info), "H5Gget_info");
    if (info.nlinks != spec.tables.size())
      layout_error(cat(info.nlinks, " task tables, ", spec.tables.size(), " expected"));
    tables.clear();
    total = finished = 0;
    std::int32_t last_attempt = 0;
    for (const auto& t : spec.tables) {
      if (checked(H5Lexists(group, t.name.c_str(), H5P_DEFAULT), "H5Lexists") <= 0)
        layout_error(cat("no table '", t.name, "'"));
      GroupHandle g(H5Gopen2(group, t.name.c_str(), H5P_DEFAULT), "H5Gopen2(table)");
      Table table;
      table.name = t.name;
      table.rows = static_cast<std::int64_t>(t.ids.size());
      table.width = t.width;
      DatasetHandle ids(H5Dopen2(g, "id", H5P_DEFAULT), "H5Dopen2(id)");
      table.data = DatasetHandle(H5Dopen2(g, "data", H5P_DEFAULT), "H5Dopen2(data)");
      table.status = DatasetHandle(H5Dopen2(g, "status", H5P_DEFAULT), "H5Dopen2(status)");
      table.attempt = DatasetHandle(H5Dopen2(g, "attempt", H5P_DEFAULT), "H5Dopen2(attempt)");
      if (extent(ids, 0) != table.rows || extent(table.data, 0) != table.rows || extent(table.data, 1) != table.width)
        layout_error(cat("table '", t.name, "' is ", extent(table.data, 0), " x ", extent(table.data, 1), ", expected ",
                         table.rows, " x ", table.width));
      if (read_all<std::uint64_t>(ids, H5T_NATIVE_UINT64, t.ids.size()) != t.ids)
        layout_error(cat("table '", t.name, "' lists other task ids"));
      const auto status = read_all<std::int8_t>(table.status, H5T_NATIVE_INT8, t.ids.size());
      const auto attempts = read_all<std::int32_t>(table.attempt, H5T_NATIVE_INT32, t.ids.size());
      for (std::int64_t i = 0; i < table.rows; ++i) {
        if (status[static_cast<std::size_t>(i)] == static_cast<std::int8_t>(TaskStatus::pending)) {
          table.pending.push_back(i);
        } else {
          ++finished;
          last_attempt = std::max(last_attempt, attempts[static_cast<std::size_t>(i)]);
        }
      }
      total += table.rows;
      tables.push_back(std::move(table));
    }
    // The runs that did work, plus this one; never lower than an earlier
    // read of this open, so rows set pending again (reopen_stale) still
    // count their run: a run that redoes every row is a new attempt.
    attempt = std::max(attempt, last_attempt + 1);
  }

  /// After open_and_check(): rank 0 finds the done rows to run again
  /// (spec.redo's; done rows whose data are not all finite), and, when there
  /// are any, reopens the file for writing and sets them pending. Collective;
  /// true when it changed the file (the caller reads the statuses anew).
  bool reopen_stale(const RunStoreSpec& spec) {
    std::string found;  // "table row why" lines
    std::set<std::pair<std::size_t, std::int64_t>> listed;
    if (rank == 0) {
      for (std::size_t k = 0; k < tables.size(); ++k) {
        const Table& t = tables[k];
        std::vector<char> pending_row(static_cast<std::size_t>(t.rows), 0);
        for (const std::int64_t r : t.pending) pending_row[static_cast<std::size_t>(r)] = 1;
        if (static_cast<std::int64_t>(t.pending.size()) < t.rows) {
          const auto status = read_all<std::int8_t>(t.status, H5T_NATIVE_INT8, static_cast<std::size_t>(t.rows));
          const auto data = read_all<double>(t.data, H5T_NATIVE_DOUBLE, static_cast<std::size_t>(t.rows * t.width));
          for (std::int64_t r = 0; r < t.rows; ++r) {
            if (status[static_cast<std::size_t>(r)] != static_cast<std::int8_t>(TaskStatus::done)) continue;
            const auto first = data.begin() + static_cast<std::ptrdiff_t>(r * t.width);
            if (!std::all_of(first, first + t.width, [](double v) { return std::isfinite(v); })) {
              found += cat(k, " ", r, " it was marked done but its values never reached the store (a crash between "
                                      "the writes?)\n");
              listed.insert({k, r});
            }
          }
        }
        for (const RunStoreSpec::Redo& redo : spec.redo)
          if (redo.table == k && redo.row >= 0 && redo.row < t.rows && !pending_row[static_cast<std::size_t>(redo.row)] &&
              listed.insert({k, redo.row}).second)
            found += cat(k, " ", redo.row, " ", redo.why, "\n");
      }
    }
    found = mpi::Communicator(comm).broadcast(found);
    reopened.clear();
    if (found.empty()) return false;
    close_file();
    open_and_check(spec, true);
    std::istringstream lines(found);
    std::string line;
    while (std::getline(lines, line)) {
      std::istringstream fields(line);
      std::size_t k = 0;
      std::int64_t row = 0;
      fields >> k >> row;
      std::string why;
      std::getline(fields >> std::ws, why);
      // Numbered as --tasks and --dry-run number the tasks: from 1, over the tables in order.
      std::int64_t task = row + 1;
      for (std::size_t j = 0; j < k; ++j) task += tables[j].rows;
      reopened.push_back(cat("task ", task, " (table '", tables[k].name, "'): ", why));
      if (rank == 0) {
        const auto code = static_cast<std::int8_t>(TaskStatus::pending);
        write_row_values(tables[k].status, H5T_NATIVE_INT8, row, 1, &code);
      }
    }
    mpi::Communicator(comm).barrier();
    return true;
  }

  void close_file() {
    for (auto& t : tables) {
      t.data.reset();
      t.status.reset();
      t.attempt.reset();
    }
    if (file.get() >= 0) file.close("H5Fclose");
  }

  const Table& table(std::size_t i) const {
    if (i >= tables.size()) throw std::out_of_range(cat(path, ": no task table ", i));
    return tables[i];
  }
};

RunStore::RunStore(MPI_Comm comm, const std::string& dir, const RunStoreSpec& spec) : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.comm = comm;
  const mpi::Communicator communicator(comm);
  s.rank = communicator.rank();
  s.dir = dir;
  s.path = (fs::path(dir) / kStoreName).string();
  for (const auto& t : spec.tables) {
    if (t.name.empty() || t.name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") !=
                              std::string::npos)
      throw std::invalid_argument(cat("RunStore: table name '", t.name, "' is not a plain name"));
    if (t.width < 1) throw std::invalid_argument(cat("RunStore: table '", t.name, "' has width < 1"));
  }

  std::pair<int, std::string> local{0, ""};
  if (s.rank == 0) {
    try {
      local = s.inspect_directory();
    } catch (const std::exception& e) {
      local = {2, cat("cannot inspect the output directory (", e.what(), ")")};
    }
  }
  const auto [state, message] = broadcast_verdict(communicator, local.first, local.second);
  if (state == 2) {
    s.unlock();
    throw InputError(cat(dir, ": ", message));
  }

  QuietHdf5 quiet;
  try {
    if (state == 1) {
      s.create(spec);
      s.created = true;
    }
    s.open_and_check(spec, false);
    s.read_only = state == 3;
    if (s.read_only) {
      if (s.finished != s.total)
        throw InputError(cat(dir, ": cannot be written, and ", s.total - s.finished, " of ", s.total,
                             " tasks are not done; choose a writable --out (a copy of DIR resumes there)"));
    } else if (s.reopen_stale(spec)) {  // rows to run again: set them pending, then read the statuses anew
      s.close_file();
      s.open_and_check(spec, false);
    }
    if (s.finished != s.total) {  // work to do: reopen for writing
      s.close_file();
      s.open_and_check(spec, true);
    }
    // No rank may record a task before every rank has read the statuses:
    // all must see the same pending rows and the same attempt number.
    communicator.barrier();
    s.open = true;
  } catch (const Hdf5Error& e) {
    s.unlock();
    // A store that cannot be created is the machine's failure (exit 1); one
    // that is there and cannot be opened is bad input, as the dry run says.
    if (state == 1)
      throw std::runtime_error(cat(s.path, ": the run store cannot be created (", e.what(), "); check that ", s.dir,
                                   " is writable and has space"));
    throw InputError(cat(s.path, ": the run store cannot be opened (", e.what(), "); if it is damaged, delete ", s.dir,
                         " and run again"));
  } catch (...) {
    s.unlock();
    throw;
  }
}

RunStore::~RunStore() {
  try {
    close();
  } catch (...) {  // a destructor must not throw; close() reports its failures when called directly
  }
}

void RunStore::close() {
  if (!impl_ || !impl_->open) return;
  impl_->open = false;
  QuietHdf5 quiet;
  try {
    impl_->close_file();
  } catch (const Hdf5Error& e) {
    impl_->unlock();
    throw std::runtime_error(cat(impl_->path, ": closing the run store failed (", e.what(), ")"));
  }
  impl_->unlock();
}

const std::string& RunStore::dir() const { return impl_->dir; }
const std::string& RunStore::path() const { return impl_->path; }
bool RunStore::created() const { return impl_->created; }
std::int32_t RunStore::attempt() const { return impl_->attempt; }
const std::string& RunStore::fingerprint() const { return impl_->fingerprint; }
const std::vector<std::string>& RunStore::keys_added() const { return impl_->keys_added; }
const std::string& RunStore::made_with() const { return impl_->made_with; }
const std::vector<std::string>& RunStore::reopened() const { return impl_->reopened; }
std::size_t RunStore::table_count() const { return impl_->tables.size(); }

std::size_t RunStore::table_index(const std::string& name) const {
  for (std::size_t i = 0; i < impl_->tables.size(); ++i)
    if (impl_->tables[i].name == name) return i;
  throw std::out_of_range(cat(impl_->path, ": no task table '", name, "'"));
}

const std::string& RunStore::table_name(std::size_t table) const { return impl_->table(table).name; }
std::int64_t RunStore::rows(std::size_t table) const { return impl_->table(table).rows; }
std::int64_t RunStore::width(std::size_t table) const { return impl_->table(table).width; }
const std::vector<std::int64_t>& RunStore::pending(std::size_t table) const { return impl_->table(table).pending; }
std::int64_t RunStore::total_rows() const { return impl_->total; }
std::int64_t RunStore::finished_at_open() const { return impl_->finished; }

TaskStatus RunStore::write(std::size_t table, std::int64_t row, std::span<const double> values) {
  const Impl::Table& t = impl_->table(table);
  if (!impl_->open) throw std::logic_error(cat(impl_->path, ": write after close()"));
  if (row < 0 || row >= t.rows || static_cast<std::int64_t>(values.size()) != t.width)
    throw std::invalid_argument(cat(impl_->path, ": table '", t.name, "': row ", row, " with ", values.size(),
                                    " values does not fit ", t.rows, " rows of width ", t.width));
  const bool finite = std::all_of(values.begin(), values.end(), [](double v) { return std::isfinite(v); });
  const TaskStatus status = finite ? TaskStatus::done : TaskStatus::diverged;
  const auto code = static_cast<std::int8_t>(status);
  QuietHdf5 quiet;
  try {
    // Row, attempt, then status: the status byte is the commit.
    write_row_values(t.data, H5T_NATIVE_DOUBLE, row, static_cast<hsize_t>(t.width), values.data());
    write_row_values(t.attempt, H5T_NATIVE_INT32, row, 1, &impl_->attempt);
    write_row_values(t.status, H5T_NATIVE_INT8, row, 1, &code);
  } catch (const Hdf5Error& e) {
    throw std::runtime_error(
        cat(impl_->path, ": cannot record row ", row, " of table '", t.name, "' (", e.what(), ")"));
  }
  return status;
}

std::vector<double> RunStore::read_data(std::size_t table) const {
  const Impl::Table& t = impl_->table(table);
  QuietHdf5 quiet;
  try {
    return read_all<double>(t.data, H5T_NATIVE_DOUBLE, static_cast<std::size_t>(t.rows * t.width));
  } catch (const Hdf5Error& e) {
    throw std::runtime_error(cat(impl_->path, ": cannot read table '", t.name, "' (", e.what(), ")"));
  }
}

std::vector<TaskStatus> RunStore::read_status(std::size_t table) const {
  const Impl::Table& t = impl_->table(table);
  QuietHdf5 quiet;
  try {
    const auto raw = read_all<std::int8_t>(t.status, H5T_NATIVE_INT8, static_cast<std::size_t>(t.rows));
    std::vector<TaskStatus> out(raw.size());
    std::transform(raw.begin(), raw.end(), out.begin(), [](std::int8_t c) { return static_cast<TaskStatus>(c); });
    return out;
  } catch (const Hdf5Error& e) {
    throw std::runtime_error(cat(impl_->path, ": cannot read the status of table '", t.name, "' (", e.what(), ")"));
  }
}

std::vector<std::int32_t> RunStore::read_attempts(std::size_t table) const {
  const Impl::Table& t = impl_->table(table);
  QuietHdf5 quiet;
  try {
    return read_all<std::int32_t>(t.attempt, H5T_NATIVE_INT32, static_cast<std::size_t>(t.rows));
  } catch (const Hdf5Error& e) {
    throw std::runtime_error(cat(impl_->path, ": cannot read the attempts of table '", t.name, "' (", e.what(), ")"));
  }
}

}  // namespace gradmatch::io
