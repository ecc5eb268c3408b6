#include "core/lapack.hpp"

#include <algorithm>
#include <climits>
#include <string>

#include "core/errors.hpp"
#include "core/text.hpp"

extern "C" {
void dgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k, const double* alpha,
            const double* a, const int* lda, const double* b, const int* ldb, const double* beta, double* c,
            const int* ldc);
void dsyrk_(const char* uplo, const char* trans, const int* n, const int* k, const double* alpha, const double* a,
            const int* lda, const double* beta, double* c, const int* ldc);
void dsyevd_(const char* jobz, const char* uplo, const int* n, double* a, const int* lda, double* w, double* work,
             const int* lwork, int* iwork, const int* liwork, int* info);
void dgelsd_(const int* m, const int* n, const int* nrhs, double* a, const int* lda, double* b, const int* ldb,
             double* s, const double* rcond, int* rank, double* work, const int* lwork, int* iwork, int* info);
void dgeqrf_(const int* m, const int* n, double* a, const int* lda, double* tau, double* work, const int* lwork,
             int* info);
void dormqr_(const char* side, const char* trans, const int* m, const int* n, const int* k, const double* a,
             const int* lda, const double* tau, double* c, const int* ldc, double* work, const int* lwork,
             int* info);
}

namespace gradmatch::lapack {

int narrow(std::int64_t n, const char* what) {
  if (n < 0 || n > INT_MAX)
    throw NumericalError(text::cat(what, ": size ", n,
                                   " does not fit the 32-bit int of LAPACK, ScaLAPACK and MPI; split the problem, or "
                                   "run the distributed solver on more ranks (smaller local blocks)"));
  return static_cast<int>(n);
}

void check_info(int info, const char* routine, const char* failure) {
  if (info == 0) return;
  if (info < 0) {
    const int code = -info;
    const std::string argument = code > 100 ? text::cat(code / 100, " (entry ", code % 100, ")") : text::cat(code);
    throw NumericalError(
        text::cat(routine, ": argument ", argument, " had an illegal value (a gradmatch bug; please report it)"));
  }
  throw NumericalError(text::cat(routine, ": ", failure, " (info = ", info,
                                 "); the input may contain NaN/Inf or be extremely ill-conditioned"));
}

int workspace_size(double query, const char* routine) {
  // 2^40 doubles (8 TiB) is far beyond any int: compare before casting.
  if (!(query <= 1099511627776.0))
    throw NumericalError(text::cat(routine, ": the workspace query returned ", query, ", not a usable size"));
  return narrow(static_cast<std::int64_t>(std::max(1.0, query)) + 1, routine);
}

void gemm(char transa, char transb, std::int64_t m, std::int64_t n, std::int64_t k, double alpha, const double* a,
          std::int64_t lda, const double* b, std::int64_t ldb, double beta, double* c, std::int64_t ldc) {
  const int im = narrow(m, "dgemm"), in = narrow(n, "dgemm"), ik = narrow(k, "dgemm");
  const int ilda = narrow(std::max<std::int64_t>(lda, 1), "dgemm"), ildb = narrow(std::max<std::int64_t>(ldb, 1), "dgemm"),
            ildc = narrow(std::max<std::int64_t>(ldc, 1), "dgemm");
  dgemm_(&transa, &transb, &im, &in, &ik, &alpha, a, &ilda, b, &ildb, &beta, c, &ildc);
}

void syrk(char uplo, char trans, std::int64_t n, std::int64_t k, double alpha, const double* a, std::int64_t lda,
          double beta, double* c, std::int64_t ldc) {
  const int in = narrow(n, "dsyrk"), ik = narrow(k, "dsyrk");
  const int ilda = narrow(std::max<std::int64_t>(lda, 1), "dsyrk"), ildc = narrow(std::max<std::int64_t>(ldc, 1), "dsyrk");
  dsyrk_(&uplo, &trans, &in, &ik, &alpha, a, &ilda, &beta, c, &ildc);
}

std::vector<double> syevd(std::int64_t n, double* a, std::int64_t lda) {
  const int in = narrow(n, "dsyevd"), ilda = narrow(std::max<std::int64_t>(lda, 1), "dsyevd");
  std::vector<double> w(static_cast<std::size_t>(n));
  if (n == 0) return w;
  const char jobz = 'V', uplo = 'L';
  int info = 0, lwork = -1, liwork = -1, iwork_query = 0;
  double work_query = 0.0;
  dsyevd_(&jobz, &uplo, &in, a, &ilda, w.data(), &work_query, &lwork, &iwork_query, &liwork, &info);
  check_info(info, "dsyevd (workspace query)");
  lwork = workspace_size(work_query, "dsyevd");
  liwork = std::max(1, iwork_query);
  std::vector<double> work(static_cast<std::size_t>(lwork));
  std::vector<int> iwork(static_cast<std::size_t>(liwork));
  dsyevd_(&jobz, &uplo, &in, a, &ilda, w.data(), work.data(), &lwork, iwork.data(), &liwork, &info);
  check_info(info, "dsyevd");
  return w;
}

LstsqInfo gelsd(std::int64_t m, std::int64_t n, std::int64_t nrhs, double* a, std::int64_t lda, double* b,
                std::int64_t ldb, double rcond) {
  const int im = narrow(m, "dgelsd"), in = narrow(n, "dgelsd"), inrhs = narrow(nrhs, "dgelsd");
  const int ilda = narrow(std::max<std::int64_t>(lda, 1), "dgelsd"), ildb = narrow(std::max<std::int64_t>(ldb, 1), "dgelsd");
  LstsqInfo out;
  out.singular_values.assign(static_cast<std::size_t>(std::min(m, n)), 0.0);
  if (m == 0 || n == 0) return out;
  int rank = 0, info = 0, lwork = -1, iwork_query = 0;
  double work_query = 0.0;
  dgelsd_(&im, &in, &inrhs, a, &ilda, b, &ildb, out.singular_values.data(), &rcond, &rank, &work_query, &lwork,
          &iwork_query, &info);
  check_info(info, "dgelsd (workspace query)");
  lwork = workspace_size(work_query, "dgelsd");
  std::vector<double> work(static_cast<std::size_t>(lwork));
  std::vector<int> iwork(static_cast<std::size_t>(std::max(1, iwork_query)));
  dgelsd_(&im, &in, &inrhs, a, &ilda, b, &ildb, out.singular_values.data(), &rcond, &rank, work.data(), &lwork,
          iwork.data(), &info);
  check_info(info, "dgelsd");
  out.rank = rank;
  return out;
}

void geqrf(std::int64_t m, std::int64_t n, double* a, std::int64_t lda, std::vector<double>& tau) {
  const int im = narrow(m, "dgeqrf"), in = narrow(n, "dgeqrf"), ilda = narrow(std::max<std::int64_t>(lda, 1), "dgeqrf");
  tau.assign(static_cast<std::size_t>(std::min(m, n)), 0.0);
  if (m == 0 || n == 0) return;
  int info = 0, lwork = -1;
  double work_query = 0.0;
  dgeqrf_(&im, &in, a, &ilda, tau.data(), &work_query, &lwork, &info);
  check_info(info, "dgeqrf (workspace query)");
  lwork = workspace_size(work_query, "dgeqrf");
  std::vector<double> work(static_cast<std::size_t>(lwork));
  dgeqrf_(&im, &in, a, &ilda, tau.data(), work.data(), &lwork, &info);
  check_info(info, "dgeqrf");
}

void ormqr_qt(std::int64_t m, std::int64_t ncols_c, std::int64_t k, const double* a, std::int64_t lda,
              const std::vector<double>& tau, double* c, std::int64_t ldc) {
  const int im = narrow(m, "dormqr"), in = narrow(ncols_c, "dormqr"), ik = narrow(k, "dormqr");
  const int ilda = narrow(std::max<std::int64_t>(lda, 1), "dormqr"), ildc = narrow(std::max<std::int64_t>(ldc, 1), "dormqr");
  if (m == 0 || ncols_c == 0 || k == 0) return;
  const char side = 'L', trans = 'T';
  int info = 0, lwork = -1;
  double work_query = 0.0;
  dormqr_(&side, &trans, &im, &in, &ik, a, &ilda, tau.data(), c, &ildc, &work_query, &lwork, &info);
  check_info(info, "dormqr (workspace query)");
  lwork = workspace_size(work_query, "dormqr");
  std::vector<double> work(static_cast<std::size_t>(lwork));
  dormqr_(&side, &trans, &im, &in, &ik, a, &ilda, tau.data(), c, &ildc, work.data(), &lwork, &info);
  check_info(info, "dormqr");
}

}  // namespace gradmatch::lapack
