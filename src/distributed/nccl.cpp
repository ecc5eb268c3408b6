// NCCL all-reduce (see nccl.hpp). Everything NCCL and CUDA is inside
// GRADMATCH_WITH_NCCL; without it only the refusal is compiled.
#include "distributed/nccl.hpp"

#include "core/errors.hpp"

#if GRADMATCH_WITH_NCCL
#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <cstdlib>
#include <thread>
#endif

namespace gradmatch::distributed {

ReduceBackend parse_reduce_backend(std::string_view text) {
  if (text == "mpi") return ReduceBackend::mpi;
  if (text == "nccl") return ReduceBackend::nccl;
  std::string msg = "--reduce: unknown backend '";
  msg += text;
  msg += "'; use mpi or nccl";
  throw InputError(msg);
}

std::string to_string(ReduceBackend backend) { return backend == ReduceBackend::nccl ? "nccl" : "mpi"; }

bool nccl_built_in() { return GRADMATCH_WITH_NCCL != 0; }

#if GRADMATCH_WITH_NCCL
namespace {

void cuda_check(cudaError_t rc, const char* call) {
  if (rc == cudaSuccess) return;
  std::string msg = "nccl reduce: ";
  msg += call;
  msg += " failed: ";
  msg += cudaGetErrorString(rc);
  throw std::runtime_error(msg);
}

void nccl_check(ncclResult_t rc, const char* call) {
  if (rc == ncclSuccess) return;
  std::string msg = "nccl reduce: ";
  msg += call;
  msg += " failed: ";
  msg += ncclGetErrorString(rc);
  throw std::runtime_error(msg);
}

}  // namespace

struct NcclReducer::State {
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
  int device = 0;
  double* buffer = nullptr;
  std::size_t capacity = 0;  // doubles
};

NcclReducer::NcclReducer(const Communicator& comm) : state_(std::make_unique<State>()) {
  State& s = *state_;
  collective(comm, [&] {
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices < 1)
      throw InputError("--reduce nccl: no CUDA device is visible to this rank; use --reduce mpi");
    s.device = comm.local_rank() % devices;
    cuda_check(cudaSetDevice(s.device), "cudaSetDevice");
    cuda_check(cudaStreamCreate(&s.stream), "cudaStreamCreate");
  });
  ncclUniqueId id{};
  collective(comm, [&] {
    if (comm.is_root()) nccl_check(ncclGetUniqueId(&id), "ncclGetUniqueId");
  });
  GRADMATCH_MPI_CHECK(MPI_Bcast(&id, static_cast<int>(sizeof id), MPI_BYTE, 0, comm.get()));
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 14, 0)
  // Non-blocking: a rank whose init fails cannot leave the others waiting
  // for it forever. Each rank polls its communicator until it is ready,
  // failed, or the deadline passed (GRADMATCH_NCCL_INIT_TIMEOUT seconds,
  // default 300); then the ranks agree over MPI, and on any failure every
  // rank aborts its communicator and throws the same error.
  double timeout_s = 300.0;
  if (const char* env = std::getenv("GRADMATCH_NCCL_INIT_TIMEOUT")) {
    char* end = nullptr;
    const double v = std::strtod(env, &end);
    if (end != env && v > 0.0) timeout_s = v;
  }
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  ncclResult_t state = ncclCommInitRankConfig(&s.comm, comm.size(), id, comm.rank(), &config);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  bool timed_out = false;
  while (state == ncclInProgress || (state == ncclSuccess && s.comm != nullptr)) {
    if (ncclCommGetAsyncError(s.comm, &state) != ncclSuccess) state = ncclInternalError;
    if (state != ncclInProgress) break;
    if (std::chrono::steady_clock::now() > deadline) {
      timed_out = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  try {
    collective(comm, [&] {
      if (timed_out)
        throw std::runtime_error("nccl reduce: the NCCL communicator was not ready after " + std::to_string(timeout_s) +
                                 " s (another rank failed, or the ranks cannot reach each other; NCCL_DEBUG=INFO says "
                                 "which; GRADMATCH_NCCL_INIT_TIMEOUT sets the wait); use --reduce mpi");
      nccl_check(state, "ncclCommInitRankConfig");
    });
  } catch (...) {
    if (s.comm) ncclCommAbort(s.comm);
    s.comm = nullptr;
    cudaStreamDestroy(s.stream);
    s.stream = nullptr;
    throw;
  }
#else
  // NCCL before 2.14 has no non-blocking init: this blocks until every rank
  // has joined, and a rank whose init fails leaves the others waiting.
  nccl_check(ncclCommInitRank(&s.comm, comm.size(), id, comm.rank()), "ncclCommInitRank");
#endif
}

NcclReducer::~NcclReducer() {
  State& s = *state_;
  if (s.comm) ncclCommDestroy(s.comm);
  if (s.buffer) cudaFree(s.buffer);
  if (s.stream) cudaStreamDestroy(s.stream);
}

void NcclReducer::allreduce_sum(std::vector<double>& values) {
  State& s = *state_;
  const std::size_t n = values.size();
  if (n == 0) return;
  cuda_check(cudaSetDevice(s.device), "cudaSetDevice");
  if (n > s.capacity) {
    if (s.buffer) cuda_check(cudaFree(s.buffer), "cudaFree");
    s.buffer = nullptr;
    cuda_check(cudaMalloc(reinterpret_cast<void**>(&s.buffer), n * sizeof(double)), "cudaMalloc");
    s.capacity = n;
  }
  const std::size_t bytes = n * sizeof(double);
  cuda_check(cudaMemcpyAsync(s.buffer, values.data(), bytes, cudaMemcpyHostToDevice, s.stream), "cudaMemcpyAsync");
  nccl_check(ncclAllReduce(s.buffer, s.buffer, n, ncclDouble, ncclSum, s.comm, s.stream), "ncclAllReduce");
  cuda_check(cudaMemcpyAsync(values.data(), s.buffer, bytes, cudaMemcpyDeviceToHost, s.stream), "cudaMemcpyAsync");
  cuda_check(cudaStreamSynchronize(s.stream), "cudaStreamSynchronize");
}

int NcclReducer::cuda_device() const { return state_->device; }

#else  // without NCCL

struct NcclReducer::State {};

NcclReducer::NcclReducer(const Communicator& comm) {
  (void)comm;
  throw InputError(
      "--reduce nccl: this gradmatch was built without NCCL (it needs a CUDA LibTorch and NCCL at configure time, "
      "see docs/gpu.md); use --reduce mpi");
}

NcclReducer::~NcclReducer() = default;

void NcclReducer::allreduce_sum(std::vector<double>&) {}

int NcclReducer::cuda_device() const { return -1; }

#endif

void allreduce_sum(const Communicator& comm, NcclReducer* nccl, std::vector<double>& values) {
  if (nccl) nccl->allreduce_sum(values);
  else comm.allreduce_sum(values);
}

}  // namespace gradmatch::distributed
