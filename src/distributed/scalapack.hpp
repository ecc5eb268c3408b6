#pragma once
// ScaLAPACK for gradmatch: BLACS process grids, block-cyclic matrices, and
// the solver routines in three tiers (SLATE's scalapack_wrappers.hh):
//   1. extern "C" prototypes of the library's symbols (Fortran ABI: every
//      argument by pointer, column-major arrays),
//   2. typed overloads taking plain ints (double only today; float/complex
//      overloads would sit beside them),
//   3. checked wrappers on DistributedMatrix: sizes are int64_t and narrowed
//      to ScaLAPACK's 32-bit int with an overflow check naming the routine,
//      workspace queries are run here, and info != 0 becomes a NumericalError
//      naming the routine and the argument or failure.
//
// Data layout (2-D block cyclic). A global M x N matrix is cut into MB x NB
// blocks; block (I, J) lives on process (I mod Pr, J mod Pc) of a Pr x Pc
// grid, and each process stores all its blocks column-major in one local
// array with leading dimension LLD >= its local row count. With 0-based
// indices, global row i is on process row (i / MB) mod Pr at local row
// (i / (MB Pr)) MB + i mod MB; local row l of process row r is global row
// ((l / MB) Pr + r) MB + l mod MB. Columns likewise with NB and Pc.
// A 1-D block distribution (rank r owns rows [r MB, (r + 1) MB)) is the
// special case of a P x 1 grid with one block per process.
//
// Process (r, c) of a grid is MPI rank r Pc + c of the grid's communicator
// (row-major order), so a P x 1 grid puts rank r on process row r.
//
// Every wrapper and constructor here is collective over the grid: all ranks
// call it with the same global arguments. Errors that depend only on global
// arguments (overflow of a global size, an illegal argument, a failed
// eigensolver) are thrown on every rank alike.
#include <array>
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "core/lapack.hpp"
#include "core/matrix.hpp"
#include "mpi/mpi.hpp"

// ---- tier 1: the library's symbols -----------------------------------------
extern "C" {
int Csys2blacs_handle(MPI_Comm comm);
void Cblacs_gridinit(int* context, const char* order, int nprow, int npcol);
void Cblacs_gridinfo(int context, int* nprow, int* npcol, int* myrow, int* mycol);
void Cblacs_gridexit(int context);

int numroc_(const int* n, const int* nb, const int* iproc, const int* isrcproc, const int* nprocs);
void descinit_(int* desc, const int* m, const int* n, const int* mb, const int* nb, const int* irsrc,
               const int* icsrc, const int* ictxt, const int* lld, int* info);

void pdgemr2d_(const int* m, const int* n, const double* a, const int* ia, const int* ja, const int* desca,
               double* b, const int* ib, const int* jb, const int* descb, const int* ictxt);
void pdgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k, const double* alpha,
             const double* a, const int* ia, const int* ja, const int* desca, const double* b, const int* ib,
             const int* jb, const int* descb, const double* beta, double* c, const int* ic, const int* jc,
             const int* descc);
void pdgeadd_(const char* trans, const int* m, const int* n, const double* alpha, const double* a, const int* ia,
              const int* ja, const int* desca, const double* beta, double* c, const int* ic, const int* jc,
              const int* descc);
void pdgeqrf_(const int* m, const int* n, double* a, const int* ia, const int* ja, const int* desca, double* tau,
              double* work, const int* lwork, int* info);
void pdormqr_(const char* side, const char* trans, const int* m, const int* n, const int* k, const double* a,
              const int* ia, const int* ja, const int* desca, const double* tau, double* c, const int* ic,
              const int* jc, const int* descc, double* work, const int* lwork, int* info);
void pdgels_(const char* trans, const int* m, const int* n, const int* nrhs, double* a, const int* ia, const int* ja,
             const int* desca, double* b, const int* ib, const int* jb, const int* descb, double* work,
             const int* lwork, int* info);
void pdsyevd_(const char* jobz, const char* uplo, const int* n, double* a, const int* ia, const int* ja,
              const int* desca, double* w, double* z, const int* iz, const int* jz, const int* descz, double* work,
              const int* lwork, int* iwork, const int* liwork, int* info);
void pdgesvd_(const char* jobu, const char* jobvt, const int* m, const int* n, double* a, const int* ia, const int* ja,
              const int* desca, double* s, double* u, const int* iu, const int* ju, const int* descu, double* vt,
              const int* ivt, const int* jvt, const int* descvt, double* work, const int* lwork, int* info);
}

namespace gradmatch::distributed::scalapack {

// ---- tier 2: typed overloads (1-based global indices, as ScaLAPACK) ----------
using Descriptor = std::array<int, 9>;

inline void pgemr2d(int m, int n, const double* a, int ia, int ja, const int* desca, double* b, int ib, int jb,
                    const int* descb, int context) {
  pdgemr2d_(&m, &n, a, &ia, &ja, desca, b, &ib, &jb, descb, &context);
}
inline void pgemm(char transa, char transb, int m, int n, int k, double alpha, const double* a, int ia, int ja,
                  const int* desca, const double* b, int ib, int jb, const int* descb, double beta, double* c, int ic,
                  int jc, const int* descc) {
  pdgemm_(&transa, &transb, &m, &n, &k, &alpha, a, &ia, &ja, desca, b, &ib, &jb, descb, &beta, c, &ic, &jc, descc);
}
inline void pgeadd(char trans, int m, int n, double alpha, const double* a, int ia, int ja, const int* desca,
                   double beta, double* c, int ic, int jc, const int* descc) {
  pdgeadd_(&trans, &m, &n, &alpha, a, &ia, &ja, desca, &beta, c, &ic, &jc, descc);
}
inline void pgeqrf(int m, int n, double* a, int ia, int ja, const int* desca, double* tau, double* work, int lwork,
                   int* info) {
  pdgeqrf_(&m, &n, a, &ia, &ja, desca, tau, work, &lwork, info);
}
inline void pormqr(char side, char trans, int m, int n, int k, const double* a, int ia, int ja, const int* desca,
                   const double* tau, double* c, int ic, int jc, const int* descc, double* work, int lwork, int* info) {
  pdormqr_(&side, &trans, &m, &n, &k, a, &ia, &ja, desca, tau, c, &ic, &jc, descc, work, &lwork, info);
}
inline void pgels(char trans, int m, int n, int nrhs, double* a, int ia, int ja, const int* desca, double* b, int ib,
                  int jb, const int* descb, double* work, int lwork, int* info) {
  pdgels_(&trans, &m, &n, &nrhs, a, &ia, &ja, desca, b, &ib, &jb, descb, work, &lwork, info);
}
inline void psyevd(char jobz, char uplo, int n, double* a, int ia, int ja, const int* desca, double* w, double* z,
                   int iz, int jz, const int* descz, double* work, int lwork, int* iwork, int liwork, int* info) {
  pdsyevd_(&jobz, &uplo, &n, a, &ia, &ja, desca, w, z, &iz, &jz, descz, work, &lwork, iwork, &liwork, info);
}
inline void pgesvd(char jobu, char jobvt, int m, int n, double* a, int ia, int ja, const int* desca, double* s,
                   double* u, int iu, int ju, const int* descu, double* vt, int ivt, int jvt, const int* descvt,
                   double* work, int lwork, int* info) {
  pdgesvd_(&jobu, &jobvt, &m, &n, a, &ia, &ja, desca, s, u, &iu, &ju, descu, vt, &ivt, &jvt, descvt, work, &lwork,
           info);
}

// ---- grids and matrices --------------------------------------------------------

/// Sizes are narrowed to ScaLAPACK's (and MPI's) int by the core's one
/// checked helper (core/lapack.hpp), which also checks info and workspaces.
using lapack::narrow;

/// A BLACS process grid over every rank of a communicator (RAII: gridexit in
/// the destructor). Not copyable: the context is a handle owned once.
class BlacsGrid {
 public:
  /// nprow x npcol must equal comm.size().
  BlacsGrid(const Communicator& comm, int nprow, int npcol);
  /// The near-square grid for comm.size() (see near_square()).
  explicit BlacsGrid(const Communicator& comm);
  ~BlacsGrid();
  BlacsGrid(const BlacsGrid&) = delete;
  BlacsGrid& operator=(const BlacsGrid&) = delete;

  /// Rows x cols = size with rows >= cols and cols the largest divisor of
  /// size not above sqrt(size): 1 -> 1x1, 2 -> 2x1, 4 -> 2x2, 6 -> 3x2, 7 -> 7x1.
  static std::pair<int, int> near_square(int size);

  int context() const { return context_; }
  int nprow() const { return nprow_; }
  int npcol() const { return npcol_; }
  int myrow() const { return myrow_; }
  int mycol() const { return mycol_; }
  const Communicator& comm() const { return comm_; }

 private:
  Communicator comm_;
  int context_ = -1;
  int nprow_ = 0, npcol_ = 0, myrow_ = -1, mycol_ = -1;
};

/// Pass as `root` to gather onto every rank.
inline constexpr int kEveryRank = -1;

/// A global rows x cols matrix of doubles in mb x nb blocks over a grid (see
/// the layout above), zero-initialised. The grid must outlive the matrix.
class DistributedMatrix {
 public:
  DistributedMatrix(const BlacsGrid& grid, std::int64_t rows, std::int64_t cols, std::int64_t mb, std::int64_t nb);

  const BlacsGrid& grid() const { return *grid_; }
  std::int64_t rows() const { return rows_; }
  std::int64_t cols() const { return cols_; }
  std::int64_t mb() const { return mb_; }
  std::int64_t nb() const { return nb_; }
  std::int64_t local_rows() const { return local_rows_; }
  std::int64_t local_cols() const { return local_cols_; }
  std::int64_t lld() const { return lld_; }
  const int* descriptor() const { return desc_.data(); }
  double* data() { return local_.data(); }
  const double* data() const { return local_.data(); }

  /// Local element (il, jl), column-major.
  double& local(std::int64_t il, std::int64_t jl) { return local_[static_cast<std::size_t>(jl * lld_ + il)]; }
  double local(std::int64_t il, std::int64_t jl) const { return local_[static_cast<std::size_t>(jl * lld_ + il)]; }
  /// Global index of local row il / local column jl (0-based).
  std::int64_t global_row(std::int64_t il) const { return ((il / mb_) * grid_->nprow() + grid_->myrow()) * mb_ + il % mb_; }
  std::int64_t global_col(std::int64_t jl) const { return ((jl / nb_) * grid_->npcol() + grid_->mycol()) * nb_ + jl % nb_; }
  /// Process row / column that owns global row i / column j.
  int row_owner(std::int64_t i) const { return static_cast<int>((i / mb_) % grid_->nprow()); }
  int col_owner(std::int64_t j) const { return static_cast<int>((j / nb_) % grid_->npcol()); }
  /// Local index of global row i / column j (meaningful on the owner).
  std::int64_t local_row(std::int64_t i) const { return (i / (mb_ * grid_->nprow())) * mb_ + i % mb_; }
  std::int64_t local_col(std::int64_t j) const { return (j / (nb_ * grid_->npcol())) * nb_ + j % nb_; }

  /// Sets every local element (i, j) to f(i, j) (global indices).
  void fill(const std::function<double(std::int64_t, std::int64_t)>& f);
  /// The leading rows x cols block as a row-major matrix on `root` (empty
  /// elsewhere), or on every rank with kEveryRank. Collective.
  Matrix gather_leading(std::int64_t rows, std::int64_t cols, int root = kEveryRank) const;
  Matrix gather(int root = kEveryRank) const { return gather_leading(rows_, cols_, root); }

 private:
  const BlacsGrid* grid_;
  std::int64_t rows_, cols_, mb_, nb_;
  std::int64_t local_rows_ = 0, local_cols_ = 0, lld_ = 1;
  Descriptor desc_{};
  std::vector<double> local_;
};

// ---- tier 3: checked wrappers on whole matrices ------------------------------

/// dst = src (same global shape, any grids and blockings). `context` is a
/// grid containing every process of both (pdgemr2d).
void redistribute(const DistributedMatrix& src, DistributedMatrix& dst, const BlacsGrid& context);
/// Copies the leading rows x cols block of src into the leading block of dst.
void redistribute_leading(std::int64_t rows, std::int64_t cols, const DistributedMatrix& src, DistributedMatrix& dst,
                          const BlacsGrid& context);

/// C = alpha op(A) op(B) + beta C (pdgemm); shapes are checked.
void gemm(char transa, char transb, double alpha, const DistributedMatrix& a, const DistributedMatrix& b, double beta,
          DistributedMatrix& c);
/// C = alpha op(A) + beta C (pdgeadd); shapes are checked.
void geadd(char trans, double alpha, const DistributedMatrix& a, double beta, DistributedMatrix& c);

/// A = QR (pdgeqrf): on exit R is in the upper triangle of A and the
/// reflectors below it. Returns the local part of tau.
std::vector<double> geqrf(DistributedMatrix& a);
/// C = Q^T C with Q from geqrf(a) (pdormqr, side L, trans T).
void ormqr_qt(const DistributedMatrix& a, const std::vector<double>& tau, DistributedMatrix& c);

/// Least squares min ||A x - B|| for A of full rank (pdgels, trans N): on
/// exit B's leading cols(A) rows hold x and A holds its QR (or LQ) factors.
/// B has max(rows(A), cols(A)) rows. A rank-deficient A gives no error and
/// no meaningful x: check the rank before calling.
void gels(DistributedMatrix& a, DistributedMatrix& b);

/// Symmetric eigendecomposition A = Z diag(w) Z^T (pdsyevd, lower triangle
/// read, A destroyed). A and Z are square with mb == nb and equal blocking.
/// Returns the eigenvalues ascending (on every rank).
std::vector<double> syevd(DistributedMatrix& a, DistributedMatrix& z);

/// Singular values of A, descending, on every rank (pdgesvd without vectors;
/// A destroyed; mb == nb).
std::vector<double> singular_values(DistributedMatrix& a);

}  // namespace gradmatch::distributed::scalapack
