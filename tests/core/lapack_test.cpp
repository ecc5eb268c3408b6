// The checks every LAPACK and ScaLAPACK wrapper shares (core/lapack.hpp).
#include "core/lapack.hpp"

#include <gtest/gtest.h>

#include <climits>
#include <cmath>
#include <limits>
#include <string>

#include "core/errors.hpp"

namespace gradmatch::lapack {
namespace {

std::string message_of(const auto& call) {
  try {
    call();
  } catch (const NumericalError& e) {
    return e.what();
  }
  return "(no NumericalError)";
}

TEST(Narrow, KeepsEveryIntAndRefusesWhatDoesNotFitNamingTheRoutine) {
  EXPECT_EQ(narrow(0, "dgemm"), 0);
  EXPECT_EQ(narrow(INT_MAX, "dgemm"), INT_MAX);
  const std::string big = message_of([] { narrow(std::int64_t{INT_MAX} + 1, "pdgels"); });
  EXPECT_EQ(big.rfind("pdgels: size 2147483648 does not fit", 0), 0u) << big;
  const std::string negative = message_of([] { narrow(-1, "dsyevd"); });
  EXPECT_EQ(negative.rfind("dsyevd: size -1 does not fit", 0), 0u) << negative;
}

TEST(CheckInfo, NamesTheIllegalArgumentOrDescriptorEntry) {
  EXPECT_NO_THROW(check_info(0, "dgelsd"));
  EXPECT_EQ(message_of([] { check_info(-4, "dgelsd"); }),
            "dgelsd: argument 4 had an illegal value (a gradmatch bug; please report it)");
  // ScaLAPACK: -(100 i + j) is entry j of the descriptor argument i.
  EXPECT_EQ(message_of([] { check_info(-1203, "pdgels"); }),
            "pdgels: argument 12 (entry 3) had an illegal value (a gradmatch bug; please report it)");
}

TEST(CheckInfo, ReportsANumericalFailureWithInfoAndTheRoutinesOwnWords) {
  EXPECT_EQ(message_of([] { check_info(3, "dsyevd"); }),
            "dsyevd: failed (info = 3); the input may contain NaN/Inf or be extremely ill-conditioned");
  EXPECT_EQ(message_of([] { check_info(1, "pdsyevd", "the divide-and-conquer eigensolver failed"); }),
            "pdsyevd: the divide-and-conquer eigensolver failed (info = 1); the input may contain NaN/Inf or be "
            "extremely ill-conditioned");
}

TEST(WorkspaceSize, AddsOneToTheQueryAndRefusesUnusableQueries) {
  EXPECT_EQ(workspace_size(0.0, "dgeqrf"), 2);      // at least 1, plus one
  EXPECT_EQ(workspace_size(100.0, "dgeqrf"), 101);
  EXPECT_EQ(workspace_size(100.7, "dgeqrf"), 101);  // LAPACK returns integers as doubles
  EXPECT_EQ(workspace_size(static_cast<double>(INT_MAX) - 1.0, "dgeqrf"), INT_MAX);
  const std::string big = message_of([] { workspace_size(static_cast<double>(INT_MAX), "dormqr"); });
  EXPECT_EQ(big.rfind("dormqr: size 2147483648 does not fit", 0), 0u) << big;
  const std::string nan = message_of([] { workspace_size(std::nan(""), "dgelsd"); });
  EXPECT_EQ(nan, "dgelsd: the workspace query returned nan, not a usable size");
  EXPECT_THROW(workspace_size(std::numeric_limits<double>::infinity(), "dgelsd"), NumericalError);
  EXPECT_THROW(workspace_size(1e300, "dgelsd"), NumericalError);
}

TEST(Syevd, EigenvaluesOfAKnownSymmetricMatrixAscend) {
  // [[2, 1], [1, 2]] has eigenvalues 1 and 3 (column-major, lower triangle read).
  double a[] = {2.0, 1.0, 1.0, 2.0};
  const std::vector<double> w = syevd(2, a, 2);
  ASSERT_EQ(w.size(), 2u);
  EXPECT_NEAR(w[0], 1.0, 1e-14);
  EXPECT_NEAR(w[1], 3.0, 1e-14);
}

}  // namespace
}  // namespace gradmatch::lapack
