#include "distributed/distributed_solvers.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>

#include "core/errors.hpp"
#include "distributed/scalapack.hpp"

namespace gradmatch::distributed {
namespace {

using scalapack::BlacsGrid;
using scalapack::DistributedMatrix;

// Runs on every rank inside a collective phase, so that a block that does
// not match the partition fails everywhere instead of hanging the others.
void check_block(const Communicator& comm, const Equations& block, std::int64_t m_total, const char* where) {
  const auto [begin, end] = point_block(m_total, comm.rank(), comm.size());
  if (block.m() != end - begin) {
    std::string msg(where);
    msg += ": rank ";
    msg += std::to_string(comm.rank());
    msg += " holds ";
    msg += std::to_string(block.m());
    msg += " points but point_block() gives it ";
    msg += std::to_string(end - begin);
    throw std::logic_error(msg);
  }
}

void broadcast(const Communicator& comm, std::vector<double>& values, int root) {
  if (comm.size() == 1 || values.empty()) return;
  GRADMATCH_MPI_CHECK(MPI_Bcast(values.data(), lapack::narrow(static_cast<std::int64_t>(values.size()), "MPI_Bcast"),
                                MPI_DOUBLE, root, comm.get()));
}

// Rank / condition number of the symmetric design from G's eigenvalues,
// exactly as core solve_structured decides them.
void structured_rank(const std::vector<double>& ev, double rcond, SymmetricSolution& out) {
  const auto p = static_cast<std::int64_t>(ev.size());
  const double mu_max = std::max(2.0 * ev.back(), 0.0);
  const double cut = rcond * rcond * mu_max;
  out.rank = 0;
  for (std::int64_t i = 0; i < p; ++i)
    for (std::int64_t j = i; j < p; ++j) {
      const double mu = ev[static_cast<std::size_t>(i)] + ev[static_cast<std::size_t>(j)];
      if (mu > cut && mu > 0.0) ++out.rank;
    }
  const double mu_min = 2.0 * ev.front();
  out.condition_number = (out.rank == sym_unknowns(p) && mu_min > 0.0) ? std::sqrt(mu_max / mu_min)
                                                                        : std::numeric_limits<double>::infinity();
}

void symmetrize(Matrix& a) {
  for (std::int64_t i = 0; i < a.rows(); ++i)
    for (std::int64_t j = i + 1; j < a.cols(); ++j) a(i, j) = a(j, i) = 0.5 * (a(i, j) + a(j, i));
}

// All points on `root` (theta, b as -grad_loss, weights); empty elsewhere.
Equations gather_equations(const Communicator& comm, const Equations& block, std::int64_t m_total, int root) {
  const std::int64_t p = block.p();
  std::vector<int> counts(static_cast<std::size_t>(comm.size())), displs(counts.size());
  for (int r = 0; r < comm.size(); ++r) {
    const auto [b, e] = point_block(m_total, r, comm.size());
    counts[static_cast<std::size_t>(r)] = lapack::narrow((e - b) * p, "MPI_Gatherv (equation rows)");
    displs[static_cast<std::size_t>(r)] = lapack::narrow(b * p, "MPI_Gatherv (equation rows)");
  }
  Matrix theta(block.m(), p), b(block.m(), p);
  std::vector<double> w(static_cast<std::size_t>(block.m()));
  for (std::int64_t k = 0; k < block.m(); ++k) {
    w[static_cast<std::size_t>(k)] = block.weight(k);
    for (std::int64_t j = 0; j < p; ++j) {
      theta(k, j) = block.theta(k, j);
      b(k, j) = -block.b(k, j);  // stored as grad_loss, so that eq.b() returns it exactly
    }
  }
  const bool is_root = comm.rank() == root;
  Equations all;
  if (is_root) {
    all.theta = Matrix(m_total, p);
    all.grad_loss = Matrix(m_total, p);
    all.weights.resize(static_cast<std::size_t>(m_total));
  }
  GRADMATCH_MPI_CHECK(MPI_Gatherv(theta.data(), counts[static_cast<std::size_t>(comm.rank())], MPI_DOUBLE,
                                  all.theta.data(), counts.data(), displs.data(), MPI_DOUBLE, root, comm.get()));
  GRADMATCH_MPI_CHECK(MPI_Gatherv(b.data(), counts[static_cast<std::size_t>(comm.rank())], MPI_DOUBLE,
                                  all.grad_loss.data(), counts.data(), displs.data(), MPI_DOUBLE, root, comm.get()));
  for (int r = 0; r < comm.size(); ++r) {
    counts[static_cast<std::size_t>(r)] /= static_cast<int>(std::max<std::int64_t>(p, 1));
    displs[static_cast<std::size_t>(r)] /= static_cast<int>(std::max<std::int64_t>(p, 1));
  }
  GRADMATCH_MPI_CHECK(MPI_Gatherv(w.data(), counts[static_cast<std::size_t>(comm.rank())], MPI_DOUBLE,
                                  all.weights.data(), counts.data(), displs.data(), MPI_DOUBLE, root, comm.get()));
  return all;
}

// Column index of Lambda_ij (i <= j) in the vech unknowns, row by row (the
// order of core solve_vech; any order gives the same solution).
class VechIndex {
 public:
  explicit VechIndex(std::int64_t p) : first_(static_cast<std::size_t>(p)) {
    for (std::int64_t i = 0, idx = 0; i < p; ++i) {
      first_[static_cast<std::size_t>(i)] = idx - i;
      idx += p - i;
    }
  }
  std::int64_t operator()(std::int64_t i, std::int64_t j) const {
    if (i > j) std::swap(i, j);
    return first_[static_cast<std::size_t>(i)] + j;
  }

 private:
  std::vector<std::int64_t> first_;
};

}  // namespace

std::int64_t points_per_block(std::int64_t m, int size) { return std::max<std::int64_t>(1, (m + size - 1) / size); }

std::pair<std::int64_t, std::int64_t> point_block(std::int64_t m, int rank, int size) {
  const std::int64_t c = points_per_block(m, size);
  return {std::min(m, rank * c), std::min(m, (rank + 1) * c)};
}

Matrix scatter_rows(const Communicator& comm, const Matrix& all, std::int64_t m_total, std::int64_t cols, int root) {
  std::vector<int> counts(static_cast<std::size_t>(comm.size())), displs(counts.size());
  for (int r = 0; r < comm.size(); ++r) {
    const auto [b, e] = point_block(m_total, r, comm.size());
    counts[static_cast<std::size_t>(r)] = lapack::narrow((e - b) * cols, "MPI_Scatterv (rows)");
    displs[static_cast<std::size_t>(r)] = lapack::narrow(b * cols, "MPI_Scatterv (rows)");
  }
  const auto [begin, end] = point_block(m_total, comm.rank(), comm.size());
  Matrix mine(end - begin, cols);
  if (comm.rank() == root && (all.rows() != m_total || all.cols() != cols))
    throw std::logic_error("scatter_rows: the root's matrix is not m_total x cols");
  GRADMATCH_MPI_CHECK(MPI_Scatterv(comm.rank() == root ? all.data() : nullptr, counts.data(), displs.data(), MPI_DOUBLE,
                                   mine.data(), counts[static_cast<std::size_t>(comm.rank())], MPI_DOUBLE, root,
                                   comm.get()));
  return mine;
}

std::pair<Matrix, Matrix> allreduce_lyapunov(const Communicator& comm, const Equations& block) {
  const std::int64_t p = block.p();
  Matrix g(p, p), c(p, p);
  accumulate_lyapunov(block, g, c);
  std::vector<double> s(g.values());
  s.insert(s.end(), c.values().begin(), c.values().end());
  comm.allreduce_sum(s);
  return {Matrix(p, p, std::vector<double>(s.begin(), s.begin() + p * p)),
          Matrix(p, p, std::vector<double>(s.begin() + p * p, s.end()))};
}

ColumnQrSolution solve_columns_qr(const Communicator& comm, const FamilySpec& family, const Equations& block,
                                  std::int64_t m_total, bool normalize, double rcond, const SolverTuning& tuning) {
  const std::int64_t p = block.p(), r = column_count(family, block), n_rows = m_total * p;
  const std::int64_t rows_per_rank = points_per_block(m_total, comm.size()) * p;
  const BlacsGrid grid(comm, comm.size(), 1);
  std::optional<DistributedMatrix> a, b;
  collective(comm, [&] {  // local work: a failure here (memory) must not strand the other ranks
    check_block(comm, block, m_total, "solve_columns_qr");
    a.emplace(grid, n_rows, r, std::max<std::int64_t>(rows_per_rank, 1), std::max<std::int64_t>(1, std::min(r, tuning.block_size)));
    b.emplace(grid, n_rows, 1, std::max<std::int64_t>(rows_per_rank, 1), 1);
    // On the P x 1 grid this rank's local rows are its points' rows in order
    // and every column is local: local (k p + j, c) is design row (k, j).
    std::vector<double> cols(static_cast<std::size_t>(p * r));
    for (std::int64_t k = 0; k < block.m(); ++k) {
      const double sw = std::sqrt(block.weight(k));
      fill_columns(family, block, k, cols.data());
      for (std::int64_t j = 0; j < p; ++j) {
        b->local(k * p + j, 0) = sw * block.b(k, j);
        for (std::int64_t c = 0; c < r; ++c) a->local(k * p + j, c) = sw * cols[static_cast<std::size_t>(j * r + c)];
      }
    }
  });
  const std::vector<double> tau = scalapack::geqrf(*a);
  scalapack::ormqr_qt(*a, tau, *b);
  // R is the upper triangle of the leading min(N, r) rows (zero-padded to
  // r x r, as core solve_qr pads an underdetermined design).
  const std::int64_t k = std::min(n_rows, r);
  const Matrix rk = a->gather_leading(k, r), zk = b->gather_leading(k, 1);
  Matrix rmat(r, r);
  std::vector<double> z(static_cast<std::size_t>(r), 0.0);
  for (std::int64_t i = 0; i < k; ++i) {
    z[static_cast<std::size_t>(i)] = zk(i, 0);
    for (std::int64_t j = i; j < r; ++j) rmat(i, j) = rk(i, j);
  }
  ColumnQrSolution out;
  out.gram = Matrix(r, r);
  out.rhs.assign(static_cast<std::size_t>(r), 0.0);
  for (std::int64_t c = 0; c < r; ++c)
    for (std::int64_t i = 0; i <= c; ++i) {
      out.rhs[static_cast<std::size_t>(c)] += rmat(i, c) * z[static_cast<std::size_t>(i)];
      for (std::int64_t d = 0; d < r; ++d) out.gram(c, d) += rmat(i, c) * rmat(i, d);
    }
  if (normalize)  // QR of A D^{-1} is Q (R D^{-1}): scale R's columns
    for (std::int64_t c = 0; c < r; ++c) {
      const double n = std::sqrt(out.gram(c, c)), s = n > 0.0 ? n : 1.0;
      for (std::int64_t i = 0; i < r; ++i) rmat(i, c) /= s;
    }
  // dgeqrf leaves an upper-triangular R as it is, so this is dgelsd on R.
  out.solution = solve_qr(rmat, z, rcond);
  return out;
}

SymmetricSolution solve_structured_scalapack(const Communicator& comm, const Equations& block, std::int64_t m_total,
                                             double rcond, const SolverTuning& tuning) {
  const std::int64_t p = block.p(), m = m_total, c = points_per_block(m_total, comm.size());
  const std::int64_t nb = std::max<std::int64_t>(1, tuning.block_size);
  const BlacsGrid rows(comm, comm.size(), 1), grid(comm);
  std::optional<DistributedMatrix> theta_rows, b_rows, theta, bm, g, z, x, cm, t;
  collective(comm, [&] {
    check_block(comm, block, m_total, "solve_structured_scalapack");
    theta_rows.emplace(rows, m, p, c, std::max<std::int64_t>(p, 1));
    b_rows.emplace(rows, m, p, c, std::max<std::int64_t>(p, 1));
    for (std::int64_t k = 0; k < block.m(); ++k) {
      const double sw = std::sqrt(block.weight(k));
      for (std::int64_t j = 0; j < p; ++j) {
        theta_rows->local(k, j) = sw * block.theta(k, j);
        b_rows->local(k, j) = sw * block.b(k, j);
      }
    }
    theta.emplace(grid, m, p, nb, nb);
    bm.emplace(grid, m, p, nb, nb);
    for (auto* a : {&g, &z, &x, &cm, &t}) a->emplace(grid, p, p, nb, nb);
  });
  scalapack::redistribute(*theta_rows, *theta, rows);
  scalapack::redistribute(*b_rows, *bm, rows);
  theta_rows.reset();
  b_rows.reset();
  scalapack::gemm('T', 'N', 1.0, *theta, *theta, 0.0, *g);  // G = Theta^T Theta
  scalapack::gemm('T', 'N', 1.0, *bm, *theta, 0.0, *x);     // X = B^T Theta
  scalapack::geadd('N', 0.5, *x, 0.0, *cm);                 // C = (X + X^T) / 2
  scalapack::geadd('T', 0.5, *x, 1.0, *cm);
  std::vector<double> ev = scalapack::syevd(*g, *z);  // G = Z diag(ev) Z^T, identical on every rank
  scalapack::gemm('T', 'N', 1.0, *z, *cm, 0.0, *t);  // C~ = Z^T C Z
  scalapack::gemm('N', 'N', 1.0, *t, *z, 0.0, *x);
  const double cut = rcond * rcond * std::max(2.0 * ev.back(), 0.0);
  for (std::int64_t jl = 0; jl < x->local_cols(); ++jl)
    for (std::int64_t il = 0; il < x->local_rows(); ++il) {
      const double mu = ev[static_cast<std::size_t>(x->global_row(il))] + ev[static_cast<std::size_t>(x->global_col(jl))];
      x->local(il, jl) = (mu > cut && mu > 0.0) ? x->local(il, jl) / mu : 0.0;
    }
  scalapack::gemm('N', 'N', 1.0, *z, *x, 0.0, *t);  // Lambda = Z C~ Z^T
  scalapack::gemm('N', 'T', 1.0, *t, *z, 0.0, *cm);
  SymmetricSolution out;
  out.lambda = cm->gather();
  symmetrize(out.lambda);
  out.eigenvectors = z->gather();  // row-major, column i = eigenvector i
  out.eigenvalues = std::move(ev);
  structured_rank(out.eigenvalues, rcond, out);
  return out;
}

VechSolution solve_vech_distributed(const Communicator& comm, const Equations& block, std::int64_t m_total,
                                    double rcond, VechCoordinates coords, const SolverTuning& tuning) {
  const std::int64_t p = block.p(), q = sym_unknowns(p), n_rows = m_total * p;
  SymmetricSolution structured;
  collective(comm, [&] { check_block(comm, block, m_total, "solve_vech_distributed"); });
  {
    const std::pair<Matrix, Matrix> gc = allreduce_lyapunov(comm, block);
    collective(comm, [&] { structured = solve_structured(gc.first, gc.second, rcond); });
  }
  const std::vector<double>& ev = structured.eigenvalues;
  // Margin 4: the plain coordinates' singular values are within sqrt(2) of
  // the isometric ones, so dgelsd would call the design full rank too.
  // Rank 0 decides for everyone: the ranks must take the same branch even if
  // their all-reduced G differed in the last bit.
  std::vector<double> decision{(p > 0 && n_rows >= q && ev.front() > 0.0 && ev.front() > 4.0 * rcond * rcond * ev.back())
                                   ? 1.0
                                   : 0.0};
  broadcast(comm, decision, 0);
  const bool full_rank = decision[0] == 1.0;

  VechSolution out;
  if (full_rank) {
    const std::int64_t rows_per_rank = points_per_block(m_total, comm.size()) * p;
    const std::int64_t nb = std::max<std::int64_t>(1, tuning.block_size);
    const BlacsGrid rows(comm, comm.size(), 1), grid(comm);
    std::optional<DistributedMatrix> a_rows, b_rows, a, b, r;
    const VechIndex index(p);
    const double off = coords == VechCoordinates::isometric ? std::sqrt(2.0) : 2.0;
    collective(comm, [&] {
      a_rows.emplace(rows, n_rows, q, rows_per_rank, q);
      b_rows.emplace(rows, n_rows, 1, rows_per_rank, 1);
      for (std::int64_t k = 0; k < block.m(); ++k) {
        const double sw = std::sqrt(block.weight(k));
        for (std::int64_t i = 0; i < p; ++i) {
          b_rows->local(k * p + i, 0) = sw * block.b(k, i);
          for (std::int64_t j = 0; j < p; ++j)
            a_rows->local(k * p + i, index(i, j)) += (i == j ? 2.0 : off) * sw * block.theta(k, j);
        }
      }
      a.emplace(grid, n_rows, q, nb, nb);
      b.emplace(grid, n_rows, 1, nb, nb);
      r.emplace(grid, q, q, nb, nb);
    });
    scalapack::redistribute(*a_rows, *a, rows);
    scalapack::redistribute(*b_rows, *b, rows);
    a_rows.reset();
    b_rows.reset();
    scalapack::gels(*a, *b);
    const Matrix x = b->gather_leading(q, 1);
    // cond(design) = cond(R): R is the upper triangle of A's leading q rows.
    scalapack::redistribute_leading(q, q, *a, *r, rows);
    for (std::int64_t jl = 0; jl < r->local_cols(); ++jl)
      for (std::int64_t il = 0; il < r->local_rows(); ++il)
        if (r->global_row(il) > r->global_col(jl)) r->local(il, jl) = 0.0;
    const std::vector<double> sv = scalapack::singular_values(*r);
    if (sv.back() > rcond * sv.front()) {
      out.scalapack = true;
      SymmetricSolution& s = out.solution;
      s.rank = q;
      s.condition_number = sv.front() / sv.back();
      s.lambda = Matrix(p, p);
      const double unscale = coords == VechCoordinates::isometric ? 1.0 / std::sqrt(2.0) : 1.0;
      for (std::int64_t i = 0; i < p; ++i)
        for (std::int64_t j = i; j < p; ++j) {
          const double u = x(index(i, j), 0);
          s.lambda(i, j) = s.lambda(j, i) = (i == j ? u : u * unscale);
        }
    }
  }
  if (!out.scalapack) {
    // Rank deficient: the serial minimum-norm solve on rank 0, broadcast.
    const Equations all = gather_equations(comm, block, m_total, 0);
    std::vector<double> packed(static_cast<std::size_t>(p * p + 2), 0.0);
    collective(comm, [&] {
      if (!comm.is_root()) return;
      const SymmetricSolution s = solve_vech(all, rcond, coords);
      std::copy(s.lambda.values().begin(), s.lambda.values().end(), packed.begin());
      packed[static_cast<std::size_t>(p * p)] = static_cast<double>(s.rank);
      packed[static_cast<std::size_t>(p * p + 1)] = s.condition_number;
    });
    broadcast(comm, packed, 0);
    out.solution.lambda = Matrix(p, p, std::vector<double>(packed.begin(), packed.begin() + p * p));
    out.solution.rank = static_cast<std::int64_t>(packed[static_cast<std::size_t>(p * p)]);
    out.solution.condition_number = packed[static_cast<std::size_t>(p * p + 1)];
  }
  // Standard errors come from G's eigenstructure (same model), as in Fitter::solve_all.
  out.solution.eigenvectors = std::move(structured.eigenvectors);
  out.solution.eigenvalues = std::move(structured.eigenvalues);
  return out;
}

}  // namespace gradmatch::distributed
