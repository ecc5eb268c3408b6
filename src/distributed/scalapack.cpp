#include "distributed/scalapack.hpp"

#include <algorithm>
#include <climits>
#include <memory>
#include <stdexcept>
#include <string>

#include "core/errors.hpp"
#include "core/lapack.hpp"
#include "core/text.hpp"

namespace gradmatch::distributed::scalapack {
namespace {

using lapack::check_info;
using lapack::narrow;
using lapack::workspace_size;
using text::cat;

// Uninitialised work array: the queries ask for room proportional to the
// local rows (NB (MpA0 + NqA0) for pdgeqrf: 640 MB for 10^7 x 8 on one rank)
// that a one-panel factorization never touches; zero-filling it cost more
// than the factorization's own passes.
class Workspace {
 public:
  explicit Workspace(int n) : data_(new double[static_cast<std::size_t>(n)]) {}
  double* get() const { return data_.get(); }

 private:
  std::unique_ptr<double[]> data_;
};

int op_rows(char trans, const DistributedMatrix& a) { return narrow(trans == 'N' ? a.rows() : a.cols(), "pdgemm"); }
int op_cols(char trans, const DistributedMatrix& a) { return narrow(trans == 'N' ? a.cols() : a.rows(), "pdgemm"); }

// Process (0, 0) is rank 0 of the grid's communicator (row-major order).
void broadcast_from_root(const BlacsGrid& grid, std::vector<double>& values) {
  if (grid.comm().size() == 1 || values.empty()) return;
  GRADMATCH_MPI_CHECK(MPI_Bcast(values.data(), narrow(static_cast<std::int64_t>(values.size()), "MPI_Bcast"), MPI_DOUBLE,
                                0, grid.comm().get()));
}

void require(bool ok, const char* what) {
  if (!ok) throw std::logic_error(what);
}

}  // namespace

// ---- BlacsGrid ------------------------------------------------------------------

std::pair<int, int> BlacsGrid::near_square(int size) {
  if (size < 1) throw std::invalid_argument("BlacsGrid::near_square: size must be positive");
  int cols = 1;
  for (int d = 1; static_cast<long>(d) * d <= size; ++d)
    if (size % d == 0) cols = d;
  return {size / cols, cols};
}

BlacsGrid::BlacsGrid(const Communicator& comm) : BlacsGrid(comm, near_square(comm.size()).first, near_square(comm.size()).second) {}

BlacsGrid::BlacsGrid(const Communicator& comm, int nprow, int npcol) : comm_(comm) {
  if (nprow < 1 || npcol < 1 || static_cast<long>(nprow) * npcol != comm.size())
    throw std::invalid_argument(cat("BlacsGrid: a ", std::to_string(nprow), " x ", std::to_string(npcol),
                                    " grid does not cover the ", std::to_string(comm.size()), " ranks"));
  // A BLACS context on this communicator (not necessarily MPI_COMM_WORLD);
  // "Row" order puts rank r at (r / npcol, r % npcol). The system handle is a
  // slot in BLACS' table that it hands out again for the same communicator,
  // so it is never freed: freeing it under another live grid would warn.
  context_ = Csys2blacs_handle(comm.get());
  Cblacs_gridinit(&context_, "Row", nprow, npcol);
  Cblacs_gridinfo(context_, &nprow_, &npcol_, &myrow_, &mycol_);
  if (myrow_ < 0 || mycol_ < 0 || nprow_ != nprow || npcol_ != npcol) {
    Cblacs_gridexit(context_);
    throw MpiError(cat("BlacsGrid: Cblacs_gridinit did not place rank ", std::to_string(comm.rank()), " in the grid"));
  }
}

BlacsGrid::~BlacsGrid() { Cblacs_gridexit(context_); }

// ---- DistributedMatrix -------------------------------------------------------

DistributedMatrix::DistributedMatrix(const BlacsGrid& grid, std::int64_t rows, std::int64_t cols, std::int64_t mb,
                                     std::int64_t nb)
    : grid_(&grid), rows_(rows), cols_(cols), mb_(mb), nb_(nb) {
  if (mb < 1 || nb < 1) throw std::invalid_argument("DistributedMatrix: block sizes must be positive");
  const int m = narrow(rows, "descinit"), n = narrow(cols, "descinit");
  const int imb = narrow(mb, "descinit"), inb = narrow(nb, "descinit");
  const int zero = 0, nprow = grid.nprow(), npcol = grid.npcol(), myrow = grid.myrow(), mycol = grid.mycol();
  local_rows_ = numroc_(&m, &imb, &myrow, &zero, &nprow);
  local_cols_ = numroc_(&n, &inb, &mycol, &zero, &npcol);
  lld_ = std::max<std::int64_t>(1, local_rows_);
  // ScaLAPACK addresses local arrays with int offsets (LLD * column + row).
  narrow(lld_ * local_cols_, "local block of a distributed matrix");
  const int lld = static_cast<int>(lld_), context = grid.context();
  int info = 0;
  descinit_(desc_.data(), &m, &n, &imb, &inb, &zero, &zero, &context, &lld, &info);
  check_info(info, "descinit");
  local_.assign(static_cast<std::size_t>(std::max<std::int64_t>(1, lld_ * local_cols_)), 0.0);
}

void DistributedMatrix::fill(const std::function<double(std::int64_t, std::int64_t)>& f) {
  for (std::int64_t jl = 0; jl < local_cols_; ++jl) {
    const std::int64_t j = global_col(jl);
    for (std::int64_t il = 0; il < local_rows_; ++il) local(il, jl) = f(global_row(il), j);
  }
}

Matrix DistributedMatrix::gather_leading(std::int64_t rows, std::int64_t cols, int root) const {
  require(rows >= 0 && cols >= 0 && rows <= rows_ && cols <= cols_, "DistributedMatrix::gather_leading: block too large");
  const Communicator& comm = grid_->comm();
  // Each entry is owned by exactly one rank and the others add zeros, so the
  // sum is exact and the same on every rank.
  std::vector<double> buf(static_cast<std::size_t>(rows * cols), 0.0);
  for (std::int64_t jl = 0; jl < local_cols_; ++jl) {
    const std::int64_t j = global_col(jl);
    if (j >= cols) break;  // global indices grow with local ones
    for (std::int64_t il = 0; il < local_rows_; ++il) {
      const std::int64_t i = global_row(il);
      if (i >= rows) break;
      buf[static_cast<std::size_t>(i * cols + j)] = local(il, jl);
    }
  }
  if (root == kEveryRank) {
    comm.allreduce_sum(buf);
    return Matrix(rows, cols, std::move(buf));
  }
  constexpr std::size_t kChunk = std::size_t{1} << 28;  // MPI counts are int
  for (std::size_t off = 0; off < buf.size(); off += kChunk) {
    const int n = static_cast<int>(std::min(kChunk, buf.size() - off));
    void* send = comm.rank() == root ? MPI_IN_PLACE : static_cast<void*>(buf.data() + off);
    GRADMATCH_MPI_CHECK(MPI_Reduce(send, buf.data() + off, n, MPI_DOUBLE, MPI_SUM, root, comm.get()));
  }
  return comm.rank() == root ? Matrix(rows, cols, std::move(buf)) : Matrix();
}

// ---- tier 3 ----------------------------------------------------------------------

void redistribute_leading(std::int64_t rows, std::int64_t cols, const DistributedMatrix& src, DistributedMatrix& dst,
                          const BlacsGrid& context) {
  require(rows <= src.rows() && rows <= dst.rows() && cols <= src.cols() && cols <= dst.cols(),
          "redistribute: block larger than a matrix");
  const int m = narrow(rows, "pdgemr2d"), n = narrow(cols, "pdgemr2d");
  if (m == 0 || n == 0) return;
  pgemr2d(m, n, src.data(), 1, 1, src.descriptor(), dst.data(), 1, 1, dst.descriptor(), context.context());
}

void redistribute(const DistributedMatrix& src, DistributedMatrix& dst, const BlacsGrid& context) {
  require(src.rows() == dst.rows() && src.cols() == dst.cols(), "redistribute: shapes differ");
  redistribute_leading(src.rows(), src.cols(), src, dst, context);
}

void gemm(char transa, char transb, double alpha, const DistributedMatrix& a, const DistributedMatrix& b, double beta,
          DistributedMatrix& c) {
  const int m = op_rows(transa, a), k = op_cols(transa, a), n = op_cols(transb, b);
  require(op_rows(transb, b) == k && c.rows() == m && c.cols() == n, "gemm: shapes of op(A), op(B) and C differ");
  if (m == 0 || n == 0) return;
  pgemm(transa, transb, m, n, k, alpha, a.data(), 1, 1, a.descriptor(), b.data(), 1, 1, b.descriptor(), beta, c.data(),
        1, 1, c.descriptor());
}

void geadd(char trans, double alpha, const DistributedMatrix& a, double beta, DistributedMatrix& c) {
  const int m = narrow(c.rows(), "pdgeadd"), n = narrow(c.cols(), "pdgeadd");
  require((trans == 'N' ? a.rows() : a.cols()) == m && (trans == 'N' ? a.cols() : a.rows()) == n,
          "geadd: shapes of op(A) and C differ");
  if (m == 0 || n == 0) return;
  pgeadd(trans, m, n, alpha, a.data(), 1, 1, a.descriptor(), beta, c.data(), 1, 1, c.descriptor());
}

std::vector<double> geqrf(DistributedMatrix& a) {
  const int m = narrow(a.rows(), "pdgeqrf"), n = narrow(a.cols(), "pdgeqrf");
  std::vector<double> tau(static_cast<std::size_t>(std::max<std::int64_t>(1, a.local_cols())), 0.0);
  if (m == 0 || n == 0) return tau;
  int info = 0;
  double query = 0.0;
  pgeqrf(m, n, a.data(), 1, 1, a.descriptor(), tau.data(), &query, -1, &info);
  check_info(info, "pdgeqrf (workspace query)");
  const int lwork = workspace_size(query, "pdgeqrf");
  const Workspace work(lwork);
  pgeqrf(m, n, a.data(), 1, 1, a.descriptor(), tau.data(), work.get(), lwork, &info);
  check_info(info, "pdgeqrf");
  return tau;
}

void ormqr_qt(const DistributedMatrix& a, const std::vector<double>& tau, DistributedMatrix& c) {
  require(a.rows() == c.rows(), "ormqr_qt: A and C have different row counts");
  const int m = narrow(c.rows(), "pdormqr"), n = narrow(c.cols(), "pdormqr");
  const int k = narrow(std::min(a.rows(), a.cols()), "pdormqr");
  if (m == 0 || n == 0 || k == 0) return;
  int info = 0;
  double query = 0.0;
  pormqr('L', 'T', m, n, k, a.data(), 1, 1, a.descriptor(), tau.data(), c.data(), 1, 1, c.descriptor(), &query, -1,
         &info);
  check_info(info, "pdormqr (workspace query)");
  const int lwork = workspace_size(query, "pdormqr");
  const Workspace work(lwork);
  pormqr('L', 'T', m, n, k, a.data(), 1, 1, a.descriptor(), tau.data(), c.data(), 1, 1, c.descriptor(), work.get(),
         lwork, &info);
  check_info(info, "pdormqr");
}

void gels(DistributedMatrix& a, DistributedMatrix& b) {
  const int m = narrow(a.rows(), "pdgels"), n = narrow(a.cols(), "pdgels"), nrhs = narrow(b.cols(), "pdgels");
  require(b.rows() >= std::max(a.rows(), a.cols()), "gels: B needs max(rows(A), cols(A)) rows");
  int info = 0;
  double query = 0.0;
  pgels('N', m, n, nrhs, a.data(), 1, 1, a.descriptor(), b.data(), 1, 1, b.descriptor(), &query, -1, &info);
  check_info(info, "pdgels (workspace query)");
  const int lwork = workspace_size(query, "pdgels");
  const Workspace work(lwork);
  pgels('N', m, n, nrhs, a.data(), 1, 1, a.descriptor(), b.data(), 1, 1, b.descriptor(), work.get(), lwork, &info);
  check_info(info, "pdgels");
}

std::vector<double> syevd(DistributedMatrix& a, DistributedMatrix& z) {
  require(a.rows() == a.cols() && z.rows() == a.rows() && z.cols() == a.cols(), "syevd: A and Z must be n x n");
  require(a.mb() == a.nb() && z.mb() == a.mb() && z.nb() == a.nb(), "syevd: needs square, equal blocks");
  const int n = narrow(a.rows(), "pdsyevd");
  std::vector<double> w(static_cast<std::size_t>(n), 0.0);
  if (n == 0) return w;
  int info = 0, iquery = 0;
  double query = 0.0;
  psyevd('V', 'L', n, a.data(), 1, 1, a.descriptor(), w.data(), z.data(), 1, 1, z.descriptor(), &query, -1, &iquery,
         -1, &info);
  check_info(info, "pdsyevd (workspace query)");
  // pdsyevd's query omits what its final PDORMTR needs when a block is large
  // next to the local matrix (e.g. n = 20, nb = 64: PDORMTR then fails with
  // "parameter 16", and pdsyevd returns info = 0 with wrong vectors). Add
  // PDORMTR's own minimum, (MpC0 + NqC0) nb + nb^2 with MpC0 <= np + nb,
  // NqC0 <= nq + nb, past the 2n entries pdsyevd keeps in front of it.
  const std::int64_t nb = a.nb();
  const double ormtr = static_cast<double>(2 * a.rows() + (a.local_rows() + a.local_cols() + 2 * nb) * nb + nb * nb);
  const int lwork = workspace_size(std::max(query, ormtr), "pdsyevd"), liwork = std::max(1, iquery);
  const Workspace work(lwork);
  std::vector<int> iwork(static_cast<std::size_t>(liwork));
  psyevd('V', 'L', n, a.data(), 1, 1, a.descriptor(), w.data(), z.data(), 1, 1, z.descriptor(), work.get(), lwork,
         iwork.data(), liwork, &info);
  check_info(info, "pdsyevd", "the divide-and-conquer eigensolver failed");
  // W is documented as global output, but a rank that owns no block (n < nb
  // on a 2 x 2 grid) was measured to return garbage in it: take process
  // (0, 0)'s, which always owns the first block.
  broadcast_from_root(a.grid(), w);
  return w;
}

std::vector<double> singular_values(DistributedMatrix& a) {
  require(a.mb() == a.nb(), "singular_values: needs square blocks");
  const int m = narrow(a.rows(), "pdgesvd"), n = narrow(a.cols(), "pdgesvd");
  std::vector<double> s(static_cast<std::size_t>(std::min(m, n)), 0.0);
  if (m == 0 || n == 0) return s;
  // U and VT are not referenced without vectors; A's descriptor stands in.
  double dummy = 0.0, query = 0.0;
  int info = 0;
  pgesvd('N', 'N', m, n, a.data(), 1, 1, a.descriptor(), s.data(), &dummy, 1, 1, a.descriptor(), &dummy, 1, 1,
         a.descriptor(), &query, -1, &info);
  check_info(info, "pdgesvd (workspace query)");
  const int lwork = workspace_size(query, "pdgesvd");
  const Workspace work(lwork);
  pgesvd('N', 'N', m, n, a.data(), 1, 1, a.descriptor(), s.data(), &dummy, 1, 1, a.descriptor(), &dummy, 1, 1,
         a.descriptor(), work.get(), lwork, &info);
  check_info(info, "pdgesvd", "the bidiagonal SVD did not converge or the ranks disagreed");
  broadcast_from_root(a.grid(), s);  // as in syevd(): every rank gets process (0, 0)'s copy
  return s;
}

}  // namespace gradmatch::distributed::scalapack
