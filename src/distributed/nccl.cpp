// NCCL all-reduce (see nccl.hpp). Everything NCCL and CUDA is inside
// GRADMATCH_WITH_NCCL; without it only the refusal is compiled.
#include "distributed/nccl.hpp"

#include "core/errors.hpp"

#if GRADMATCH_WITH_NCCL
#include <cuda_runtime.h>
#include <nccl.h>
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
  // Blocks until every rank has joined; a failure here is reported by the
  // rank that sees it (NCCL cannot agree on failures without a communicator).
  nccl_check(ncclCommInitRank(&s.comm, comm.size(), id, comm.rank()), "ncclCommInitRank");
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
