#pragma once
// gradmatch_mpi: the MPI environment, communicators and the agreement on
// failure. The lowest MPI layer: io (the run store) and distributed (task
// farm, ScaLAPACK) build on it; it uses only MPI and core/errors.hpp.
//
// Every MPI call goes through GRADMATCH_MPI_CHECK, which throws MpiError with
// the call text and file:line; MPI_ERRORS_RETURN is set on the world
// communicator so that the check can fire instead of MPI aborting.
//
// Failure agreement (SLATE's print_reduce_error): each phase of a command
// runs under `collective()`, which catches a rank's exception, all-reduces
// (exit code, failing rank) and broadcasts the failing rank's message, so
// every rank throws the same CollectiveFailure and exits with the same code.
#include <mpi.h>

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace gradmatch::mpi {

class MpiError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] void throw_mpi_error(int code, const char* call, const char* file, int line);

#define GRADMATCH_MPI_CHECK(call)                                                              \
  do {                                                                                         \
    const int gradmatch_mpi_rc_ = (call);                                                      \
    if (gradmatch_mpi_rc_ != MPI_SUCCESS)                                                      \
      ::gradmatch::mpi::throw_mpi_error(gradmatch_mpi_rc_, #call, __FILE__, __LINE__); \
  } while (0)

/// RAII MPI_Init_thread / MPI_Finalize. Works with and without a launcher
/// (a plain `gradmatch run` is a singleton MPI job of one rank).
///
/// Only the main thread calls MPI (LibTorch and OpenBLAS threads never do),
/// so gradmatch asks for MPI_THREAD_FUNNELED. The level the library provides
/// is checked, also when MPI was initialised before (a test harness, a host
/// program): a lower one throws MpiError naming both levels.
class Environment {
 public:
  Environment(int* argc, char*** argv, int required = MPI_THREAD_FUNNELED);
  ~Environment();
  Environment(const Environment&) = delete;
  Environment& operator=(const Environment&) = delete;
  /// The thread level MPI provides (MPI_THREAD_SINGLE ... MPI_THREAD_MULTIPLE).
  int thread_level() const { return provided_; }

 private:
  int provided_ = MPI_THREAD_SINGLE;
  bool owns_ = false;  ///< this object initialised MPI, so it finalises it
};

/// Throws MpiError unless `provided` >= `required` (MPI thread levels).
void require_thread_level(int provided, int required);

/// "MPI_THREAD_FUNNELED" etc.; "level N" for an unknown value.
std::string thread_level_name(int level);

/// The MPI library's own version text (MPI_Get_library_version), first line.
std::string library_version();

/// True when the process was started by an MPI launcher (mpirun/mpiexec of
/// Open MPI, MPICH or Intel MPI, or SLURM's srun), judged by the environment
/// variables these set. Without one, `gradmatch fit` skips MPI_Init.
bool launched_by_mpi();

/// A non-owning view of a communicator with the collectives gradmatch uses.
/// Constructed while MPI is not initialized, it is the one-rank world (rank 0
/// of 1) and makes no MPI call: commands run without a launcher skip MPI_Init.
class Communicator {
 public:
  explicit Communicator(MPI_Comm comm = MPI_COMM_WORLD);
  MPI_Comm get() const { return comm_; }
  int rank() const { return rank_; }
  int size() const { return size_; }
  bool is_root() const { return rank_ == 0; }

  void barrier() const;
  /// In-place element-wise sum over all ranks.
  void allreduce_sum(std::vector<double>& values) const;
  double allreduce_max(double value) const;
  std::int64_t allreduce_max(std::int64_t value) const;
  /// The root's value on every rank.
  std::string broadcast(const std::string& value, int root = 0) const;
  std::int64_t broadcast(std::int64_t value, int root = 0) const;
  std::vector<double> broadcast(const std::vector<double>& values, int root = 0) const;

  /// Rank within its node and ranks on the node (MPI_COMM_TYPE_SHARED).
  int local_rank() const;
  int local_size() const;

  /// Every rank's value, in rank order, on every rank.
  std::vector<std::int64_t> allgather(std::int64_t value) const;
  std::vector<double> allgather(double value) const;
  /// Every rank's string, in rank order, on `root` (empty elsewhere).
  std::vector<std::string> gather(const std::string& value, int root = 0) const;

 private:
  MPI_Comm comm_;
  int rank_ = 0;
  int size_ = 1;
};

/// What every rank throws after a collective phase in which some rank failed.
class CollectiveFailure : public std::runtime_error {
 public:
  CollectiveFailure(int exit_code, int failed_rank, const std::string& message)
      : std::runtime_error(message), exit_code_(exit_code), failed_rank_(failed_rank) {}
  int exit_code() const { return exit_code_; }
  int failed_rank() const { return failed_rank_; }

 private:
  int exit_code_;
  int failed_rank_;
};

/// Exit code for an exception: 2 for InputError (bad user input), else 1.
int exit_code_for(const std::exception& e);

/// Runs `phase` on every rank; if it throws anywhere, every rank throws the
/// same CollectiveFailure naming the lowest failing rank with the highest
/// exit code. `phase` must not itself call collectives after throwing. A
/// CollectiveFailure from a nested collective() on the same communicator
/// passes through with its failing rank.
void collective(const Communicator& comm, const std::function<void()>& phase);

/// This process's host name (MPI_Get_processor_name).
std::string processor_name();

/// Rows [begin, end) of m that rank `rank` of `size` owns (contiguous blocks).
std::pair<std::int64_t, std::int64_t> block_range(std::int64_t m, int rank, int size);

}  // namespace gradmatch::mpi

// The distributed layer is written in terms of these names (its collectives
// run on them throughout): imported, not redefined.
namespace gradmatch::distributed {
using mpi::block_range;
using mpi::collective;
using mpi::CollectiveFailure;
using mpi::Communicator;
using mpi::Environment;
using mpi::exit_code_for;
using mpi::MpiError;
using mpi::processor_name;
}  // namespace gradmatch::distributed
