#pragma once
// The distributed, resumable run of a study whose tasks each return one
// fixed-width row of doubles (the IGR studies; the OLS study spells the same
// sequence out itself):
//
//   every rank: configure_study_device -> read config, shared data, tasks
//   run_farm_study: run store DIR/store.h5 (one table per task kind) ->
//     task farm over the pending rows -> rank 0 reads every row back in
//     table order -> write(rows) writes the outputs -> DIR/run_info.json last.
//
// Resume, refusal and "nothing to do" are the run store's (io/run_store.hpp):
// a re-run on the same DIR only computes the rows still pending, and since a
// task is a pure function of (config, shared data, task id) the outputs
// equal an uninterrupted run's byte for byte, for any number of ranks.
// Failures are agreed (every rank throws the same CollectiveFailure).
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "distributed/device.hpp"
#include "mpi/mpi.hpp"

namespace gradmatch::io {
class ConfigReader;
}

namespace gradmatch::studies {

/// configure_device() for a study computing with LibTorch on the CPU: the
/// rank's thread count is applied to the BLAS and to LibTorch's intra-op
/// pool. Collective.
distributed::RankDevice configure_study_device(const distributed::Communicator& comm);

struct StudyTable {
  std::string name;                ///< store table name (letters, digits, '_')
  std::int64_t width = 0;          ///< doubles per task result
  std::vector<std::uint64_t> ids;  ///< stable task ids, row order
};

struct StudyRunSpec {
  std::string study;
  std::string effective_config;     ///< ConfigReader::effective()
  std::vector<StudyTable> tables;
  std::vector<std::string> outputs;  ///< files a finished DIR holds, besides run_info.json
  double shared_seconds = 0.0;       ///< time the caller spent on shared data (run_info)
};

/// compute(table, row): the result of one task (width doubles; a non-finite
/// value marks the task diverged in the store).
using ComputeRow = std::function<std::vector<double>(std::size_t table, std::int64_t row)>;
/// Rank 0 only: every table's rows, row-major [rows, width], in row order.
/// Writes the outputs (each atomically); returns extra run_info.json entries.
using WriteOutputs = std::function<nlohmann::json(const std::vector<std::vector<double>>& tables)>;

/// Collective over `comm` (see the top). Progress lines go to stderr (rank 0).
void run_farm_study(const distributed::Communicator& comm, const distributed::RankDevice& device,
                    const std::string& out_dir, const StudyRunSpec& spec, const ComputeRow& compute,
                    const WriteOutputs& write);

/// The shortest "%g" form that reads back as the same double ("0.001",
/// "3e-05"): numbers in output file names.
std::string short_number(double value);

/// Concatenation without temporaries of the form "literal" + std::string&&.
template <class... A>
std::string cat(std::string_view first, const A&... rest) {
  std::string s(first);
  ((s += rest), ...);
  return s;
}

/// InputError "FILE: key 'KEY': WHAT".
[[noreturn]] void config_error(const io::ConfigReader& reader, const std::string& key, const std::string& what);

/// Every study config starts alike: checks that the top-level `study` key
/// names `study`, then returns `seed` (default `fallback`).
std::uint64_t read_study_seed(io::ConfigReader& reader, const char* study, std::uint64_t fallback);

}  // namespace gradmatch::studies
