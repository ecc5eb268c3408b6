#pragma once
// BLAS/LAPACK in three tiers (the SLATE scalapack_wrappers pattern):
//   1. extern "C" Fortran prototypes (lapack.cpp),
//   2. nothing typed beyond double is needed by the core,
//   3. checked C++ wrappers below: 64-bit sizes narrowed to the Fortran int
//      with an overflow check, workspace queries done here, info != 0 turned
//      into a NumericalError that names the routine. narrow(), check_info()
//      and workspace_size() are the one set of checks; the ScaLAPACK
//      wrappers (distributed/scalapack.cpp) use them too.
// All matrices passed to these wrappers are COLUMN-major, as LAPACK wants.
#include <cstdint>
#include <vector>

namespace gradmatch::lapack {

// ---- checks shared with the ScaLAPACK wrappers (distributed/scalapack.cpp) ----

/// Narrows a 64-bit size to the 32-bit int of LAPACK, ScaLAPACK and MPI;
/// throws NumericalError naming `what` when it is negative or does not fit.
int narrow(std::int64_t n, const char* what);

/// info != 0 as a NumericalError naming `routine`. info < 0 is an illegal
/// argument -i, or entry j of array (descriptor) argument i for -(100 i + j)
/// (ScaLAPACK's encoding): a gradmatch bug. info > 0 is a numerical failure,
/// described by `failure` ("failed" unless the routine says more).
void check_info(int info, const char* routine, const char* failure = "failed");

/// The work-array length to allocate after a workspace query returned
/// `query` (a double, as LAPACK returns it): at least 1, plus one element
/// against the rounding of large sizes; checked like narrow() (a NaN or
/// oversized query throws rather than allocating a wrong size).
int workspace_size(double query, const char* routine);

/// C = alpha op(A) op(B) + beta C.
void gemm(char transa, char transb, std::int64_t m, std::int64_t n, std::int64_t k, double alpha, const double* a,
          std::int64_t lda, const double* b, std::int64_t ldb, double beta, double* c, std::int64_t ldc);

/// C = alpha op(A) op(A)^T + beta C, referencing the `uplo` triangle of C only.
void syrk(char uplo, char trans, std::int64_t n, std::int64_t k, double alpha, const double* a, std::int64_t lda,
          double beta, double* c, std::int64_t ldc);

/// Symmetric eigendecomposition (divide and conquer). On entry `a` (n x n,
/// column-major) holds the symmetric matrix (lower triangle read); on exit
/// its columns are the orthonormal eigenvectors. Returns ascending eigenvalues.
std::vector<double> syevd(std::int64_t n, double* a, std::int64_t lda);

struct LstsqInfo {
  std::int64_t rank = 0;
  std::vector<double> singular_values;  // descending
};

/// Minimum-norm least squares min ||A x - b|| by SVD (dgelsd). `a` is
/// m x n column-major and is destroyed; `b` has max(m, n) rows and `nrhs`
/// columns, holds b on entry and x (first n rows) on exit. Singular values
/// below rcond * s_max are treated as zero.
LstsqInfo gelsd(std::int64_t m, std::int64_t n, std::int64_t nrhs, double* a, std::int64_t lda, double* b,
                std::int64_t ldb, double rcond);

/// QR factorization A = Q R (dgeqrf); `tau` is resized to min(m, n).
void geqrf(std::int64_t m, std::int64_t n, double* a, std::int64_t lda, std::vector<double>& tau);

/// C = Q^T C with Q from geqrf (dormqr, side 'L', trans 'T').
void ormqr_qt(std::int64_t m, std::int64_t ncols_c, std::int64_t k, const double* a, std::int64_t lda,
              const std::vector<double>& tau, double* c, std::int64_t ldc);

}  // namespace gradmatch::lapack
