#include "mpi/mpi.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "core/errors.hpp"
#include "core/lapack.hpp"

namespace gradmatch::mpi {

void throw_mpi_error(int code, const char* call, const char* file, int line) {
  char text[MPI_MAX_ERROR_STRING] = {0};
  int len = 0;
  MPI_Error_string(code, text, &len);
  std::string msg = call;
  msg += " failed at ";
  msg += file;
  msg += ":";
  msg += std::to_string(line);
  msg += ": ";
  msg.append(text, static_cast<std::size_t>(len));
  throw MpiError(msg);
}

std::string thread_level_name(int level) {
  if (level == MPI_THREAD_SINGLE) return "MPI_THREAD_SINGLE";
  if (level == MPI_THREAD_FUNNELED) return "MPI_THREAD_FUNNELED";
  if (level == MPI_THREAD_SERIALIZED) return "MPI_THREAD_SERIALIZED";
  if (level == MPI_THREAD_MULTIPLE) return "MPI_THREAD_MULTIPLE";
  return "level " + std::to_string(level);
}

void require_thread_level(int provided, int required) {
  if (provided >= required) return;
  std::string msg = "the MPI library provides thread support ";
  msg += thread_level_name(provided);
  msg += " but gradmatch needs ";
  msg += thread_level_name(required);
  msg += "; use an MPI built with thread support (Open MPI and MPICH provide it by default)";
  throw MpiError(msg);
}

std::string library_version() {
  char text[MPI_MAX_LIBRARY_VERSION_STRING] = {0};
  int len = 0;
  GRADMATCH_MPI_CHECK(MPI_Get_library_version(text, &len));
  std::string out(text, static_cast<std::size_t>(len));
  const std::size_t eol = out.find_first_of("\r\n");
  if (eol != std::string::npos) out.resize(eol);
  while (!out.empty() && (out.back() == ' ' || out.back() == '\0' || out.back() == ',')) out.pop_back();
  return out;
}

Environment::Environment(int* argc, char*** argv, int required) {
  int initialized = 0;
  GRADMATCH_MPI_CHECK(MPI_Initialized(&initialized));
  if (!initialized) {
    GRADMATCH_MPI_CHECK(MPI_Init_thread(argc, argv, required, &provided_));
    owns_ = true;
  } else {
    GRADMATCH_MPI_CHECK(MPI_Query_thread(&provided_));
  }
  try {
    GRADMATCH_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    require_thread_level(provided_, required);
  } catch (...) {
    if (owns_) MPI_Finalize();  // the destructor of a half-made object does not run
    throw;
  }
}

Environment::~Environment() {
  if (!owns_) return;  // whoever initialised MPI finalises it
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

bool launched_by_mpi() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", "MPI_LOCALNRANKS",
                           "HYDRA_CONTROL_FD", "SLURM_STEP_ID"})
    if (std::getenv(name) != nullptr) return true;
  return false;
}

Communicator::Communicator(MPI_Comm comm) : comm_(comm) {
  // Without MPI_Init (a command run without a launcher skips it) this is
  // the one-rank world: every collective below is a no-op at size 1.
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) return;
  GRADMATCH_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
  GRADMATCH_MPI_CHECK(MPI_Comm_size(comm_, &size_));
}

void Communicator::barrier() const {
  if (size_ > 1) GRADMATCH_MPI_CHECK(MPI_Barrier(comm_));
}

void Communicator::allreduce_sum(std::vector<double>& values) const {
  if (size_ == 1 || values.empty()) return;
  // MPI counts are int: reduce in chunks so p x p statistics of any size fit.
  constexpr std::size_t kChunk = std::size_t{1} << 28;
  for (std::size_t off = 0; off < values.size(); off += kChunk) {
    const int n = static_cast<int>(std::min(kChunk, values.size() - off));
    GRADMATCH_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, values.data() + off, n, MPI_DOUBLE, MPI_SUM, comm_));
  }
}

double Communicator::allreduce_max(double value) const {
  if (size_ == 1) return value;
  double out = value;
  GRADMATCH_MPI_CHECK(MPI_Allreduce(&value, &out, 1, MPI_DOUBLE, MPI_MAX, comm_));
  return out;
}

std::int64_t Communicator::allreduce_max(std::int64_t value) const {
  if (size_ == 1) return value;
  std::int64_t out = value;
  GRADMATCH_MPI_CHECK(MPI_Allreduce(&value, &out, 1, MPI_INT64_T, MPI_MAX, comm_));
  return out;
}

std::string Communicator::broadcast(const std::string& value, int root) const {
  if (size_ == 1) return value;
  std::int64_t n = rank_ == root ? static_cast<std::int64_t>(value.size()) : 0;
  GRADMATCH_MPI_CHECK(MPI_Bcast(&n, 1, MPI_INT64_T, root, comm_));
  std::string out = rank_ == root ? value : std::string(static_cast<std::size_t>(n), '\0');
  if (n > 0) GRADMATCH_MPI_CHECK(MPI_Bcast(out.data(), lapack::narrow(n, "MPI_Bcast count"), MPI_CHAR, root, comm_));
  return out;
}

std::vector<double> Communicator::broadcast(const std::vector<double>& values, int root) const {
  if (size_ == 1) return values;
  std::int64_t n = rank_ == root ? static_cast<std::int64_t>(values.size()) : 0;
  GRADMATCH_MPI_CHECK(MPI_Bcast(&n, 1, MPI_INT64_T, root, comm_));
  std::vector<double> out = rank_ == root ? values : std::vector<double>(static_cast<std::size_t>(n));
  if (n > 0) GRADMATCH_MPI_CHECK(MPI_Bcast(out.data(), lapack::narrow(n, "MPI_Bcast count"), MPI_DOUBLE, root, comm_));
  return out;
}

std::int64_t Communicator::broadcast(std::int64_t value, int root) const {
  GRADMATCH_MPI_CHECK(MPI_Bcast(&value, 1, MPI_INT64_T, root, comm_));
  return value;
}

namespace {
// Rank and size within the node (MPI_COMM_TYPE_SHARED).
std::pair<int, int> node_position(MPI_Comm comm, int rank) {
  MPI_Comm node;
  GRADMATCH_MPI_CHECK(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node));
  int r = 0, s = 1;
  const int rc_rank = MPI_Comm_rank(node, &r), rc_size = MPI_Comm_size(node, &s);
  GRADMATCH_MPI_CHECK(MPI_Comm_free(&node));  // freed before a failed query throws
  if (rc_rank != MPI_SUCCESS) throw_mpi_error(rc_rank, "MPI_Comm_rank(node, &r)", __FILE__, __LINE__);
  if (rc_size != MPI_SUCCESS) throw_mpi_error(rc_size, "MPI_Comm_size(node, &s)", __FILE__, __LINE__);
  return {r, s};
}
}  // namespace

int Communicator::local_rank() const { return size_ == 1 ? 0 : node_position(comm_, rank_).first; }
int Communicator::local_size() const { return size_ == 1 ? 1 : node_position(comm_, rank_).second; }

std::vector<std::int64_t> Communicator::allgather(std::int64_t value) const {
  if (size_ == 1) return {value};
  std::vector<std::int64_t> out(static_cast<std::size_t>(size_));
  GRADMATCH_MPI_CHECK(MPI_Allgather(&value, 1, MPI_INT64_T, out.data(), 1, MPI_INT64_T, comm_));
  return out;
}

std::vector<double> Communicator::allgather(double value) const {
  if (size_ == 1) return {value};
  std::vector<double> out(static_cast<std::size_t>(size_));
  GRADMATCH_MPI_CHECK(MPI_Allgather(&value, 1, MPI_DOUBLE, out.data(), 1, MPI_DOUBLE, comm_));
  return out;
}

std::vector<std::string> Communicator::gather(const std::string& value, int root) const {
  if (size_ == 1) return {value};
  const int n = lapack::narrow(static_cast<std::int64_t>(value.size()), "MPI_Gather count");
  std::vector<int> counts(rank_ == root ? static_cast<std::size_t>(size_) : 0);
  GRADMATCH_MPI_CHECK(MPI_Gather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, root, comm_));
  std::vector<int> displs(counts.size());
  std::int64_t total = 0;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    displs[i] = lapack::narrow(total, "MPI_Gatherv displacement");
    total += counts[i];
  }
  std::string all(static_cast<std::size_t>(total), '\0');
  GRADMATCH_MPI_CHECK(
      MPI_Gatherv(value.data(), n, MPI_CHAR, all.data(), counts.data(), displs.data(), MPI_CHAR, root, comm_));
  std::vector<std::string> out;
  for (std::size_t i = 0; i < counts.size(); ++i)
    out.push_back(all.substr(static_cast<std::size_t>(displs[i]), static_cast<std::size_t>(counts[i])));
  return out;
}

std::string processor_name() {
  char name[MPI_MAX_PROCESSOR_NAME] = {0};
  int len = 0;
  GRADMATCH_MPI_CHECK(MPI_Get_processor_name(name, &len));
  return std::string(name, static_cast<std::size_t>(len));
}

int exit_code_for(const std::exception& e) {
  if (const auto* f = dynamic_cast<const CollectiveFailure*>(&e)) return f->exit_code();
  return dynamic_cast<const InputError*>(&e) ? 2 : 1;
}

void collective(const Communicator& comm, const std::function<void()>& phase) {
  int code = 0, origin = comm.rank();
  std::string message;
  try {
    phase();
  } catch (const std::exception& e) {
    code = exit_code_for(e);
    message = e.what();
    // A failure already agreed by a nested collective() (every rank holds it)
    // keeps the rank that failed first.
    if (const auto* f = dynamic_cast<const CollectiveFailure*>(&e)) origin = f->failed_rank();
  }
  if (comm.size() == 1) {
    if (code != 0) throw CollectiveFailure(code, 0, message);
    return;
  }
  // MAXLOC on (exit code, rank): the highest code, and among equal codes the lowest rank.
  int local[2] = {code, origin};
  int global[2] = {0, 0};
  GRADMATCH_MPI_CHECK(MPI_Allreduce(local, global, 1, MPI_2INT, MPI_MAXLOC, comm.get()));
  if (global[0] == 0) return;
  const int failed_rank = global[1];
  const std::string text = comm.broadcast(message, failed_rank);
  throw CollectiveFailure(global[0], failed_rank, text);
}

std::pair<std::int64_t, std::int64_t> block_range(std::int64_t m, int rank, int size) {
  const std::int64_t base = m / size, extra = m % size;
  const std::int64_t begin = rank * base + std::min<std::int64_t>(rank, extra);
  return {begin, begin + base + (rank < extra ? 1 : 0)};
}

}  // namespace gradmatch::mpi
