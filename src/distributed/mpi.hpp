#pragma once
// The MPI environment, communicators and the agreement on failure.
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

namespace gradmatch::distributed {

class MpiError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] void throw_mpi_error(int code, const char* call, const char* file, int line);

#define GRADMATCH_MPI_CHECK(call)                                                              \
  do {                                                                                         \
    const int gradmatch_mpi_rc_ = (call);                                                      \
    if (gradmatch_mpi_rc_ != MPI_SUCCESS)                                                      \
      ::gradmatch::distributed::throw_mpi_error(gradmatch_mpi_rc_, #call, __FILE__, __LINE__); \
  } while (0)

/// RAII MPI_Init_thread / MPI_Finalize. Works with and without a launcher
/// (a plain `gradmatch run` is a singleton MPI job of one rank).
class Environment {
 public:
  Environment(int* argc, char*** argv);
  ~Environment();
  Environment(const Environment&) = delete;
  Environment& operator=(const Environment&) = delete;
};

/// A non-owning view of a communicator with the collectives gradmatch uses.
/// Constructed while MPI is not initialized, it is the one-rank world (rank 0
/// of 1) and makes no MPI call: commands run without a launcher skip MPI_Init.
/// True when the process was started by an MPI launcher (mpirun/mpiexec of
/// Open MPI, MPICH or Intel MPI, or SLURM's srun), judged by the environment
/// variables these set. Without one, `gradmatch fit` skips MPI_Init.
bool launched_by_mpi();

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
  /// The root's string on every rank.
  std::string broadcast(const std::string& value, int root = 0) const;

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

}  // namespace gradmatch::distributed
