#pragma once
// The bootstrap study: the paper's Algorithm 1 on a user's TorchScript model.
//
//   read_bootstrap_config -> shared data and scope -> replicates (task farm)
//                         -> pooled equations -> one fit per family -> outputs
//
// The model trains in the dtype it was saved in (the data is converted to
// it): save it in float64 for equations accurate to double precision.
// Replicate r (a task; a pure function of (config, data, r)):
//   - the model file's module, its trainable parameters re-drawn from the
//     keyed stream (seed, r) (init = "keyed": U(-1/sqrt(fan_in), +1/sqrt(fan_in)),
//     PyTorch's default for linear layers; fan_in of a bias is that of the
//     weight before it) or kept as saved (init = "file"); frozen parameters
//     (requires_grad false) always stay as saved;
//   - its data set: data.file, data.dir, or data.files[r mod count] (fresh
//     data sets of one shape, e.g. new responses for one design);
//   - its training sample: n draws with replacement from the data (resample =
//     "bootstrap", keyed by (seed, r); replicate 0 trains on the data itself,
//     Algorithm 1's theta-hat(D), unless include_original = false) or the
//     whole data (resample = "none"); with stop = "early_stopping" a keyed
//     validation_fraction of the data set's rows is held out for the monitor
//     first and the rest resampled (n - held draws), so that no row is on
//     both sides (validation_split = "rows"; "draws" splits the resample's
//     draws instead, as gradmatch did before the key existed);
//   - training (training/trainer.hpp: sgd with momentum, adam, full-batch
//     lbfgs; step schedule; weight decay as the ridge (weight_decay / 2) sum
//     theta^2 over every trainable parameter, which is what torch's SGD
//     weight_decay adds to the gradient) with the explicit penalty, if any,
//     on the scope: penalty.family ridge (lambda sum theta_s^2), diag
//     (sum q_j theta_sj^2) or sym (theta_s^T Lambda theta_s), lambda from
//     penalty.file (dataset `lambda`: a scalar, [p_s] or [p_s, p_s]);
//   - stopping: `epochs` epochs, early stopping on the validation loss
//     (patience, keep-best), or once the full-batch gradient of the training
//     objective has norm <= gradient_tolerance (checked after each epoch);
//   - its equation row over the scope (the parameters whose names match a
//     `scope` glob; default: every trainable one): theta_s and the full-batch
//     mean gradient of the data loss on its own training sample, plus the
//     candidate columns of fit.candidates (training/endpoint.hpp).
// A diverged replicate is recorded as such and left out of the fits.
//
// The fits run on rank 0 after the farm, except sym over several ranks with
// a scope of p >= fit.scalapack_min_p (default 256, `gradmatch fit`'s
// crossover): then every rank takes part (Study::collective_step), the
// pooled rows are scattered in point blocks and ScaLAPACK solves (PDGEMM,
// PDSYEVD; distributed/distributed_fit.hpp). Its fit_sym.json may then
// differ from a one-rank run's in the last bits (and records `ranks`);
// every other output is byte-identical for any number of ranks.
//
// Outputs: equations.h5 (the pooled rows, with parameter names and shapes),
// fit_<family>.json for each of fit.families (the `gradmatch fit --output`
// document; ':' in a family becomes '_'), results.h5 (per replicate, through
// a studies::Schema: theta, grad_loss, features, loss, relative gradient
// norm, epochs, stopped, diverged), summary.json, run_info.json (with each
// fit's wall seconds). Relative model/data/penalty paths are read from the
// config file's directory.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "studies/study.hpp"

namespace gradmatch::io {
class ConfigReader;
}

namespace gradmatch::studies {

struct BootstrapConfig {
  std::uint64_t seed = 1;
  std::string model_file;        ///< model.file (TorchScript)
  std::vector<std::string> data_files;  ///< data.file (one) or data.files: HDF5 with X [n, d] and y
  std::string data_dir;          ///< data.dir: IDX directory (training split)
  std::string data_files_key;    ///< which of data.file, data.files, data.dir the config gave
  std::string loss = "mse";      ///< mse | ce | bce
  std::int64_t replicates = 100;
  std::string resample = "bootstrap";  ///< bootstrap | none
  /// resample = "bootstrap": replicate 0 trains on the data set itself
  /// (Algorithm 1's theta-hat(D)), the others on resamples.
  bool include_original = true;
  std::string init = "keyed";          ///< keyed | file
  std::vector<std::string> scope;      ///< parameter name globs; empty: every trainable parameter
  // training.*
  std::string optimizer = "sgd";  ///< sgd | adam | lbfgs
  double learning_rate = 0.01;
  double momentum = 0.0;
  double weight_decay = 0.0;
  std::int64_t step_size = 0;
  double gamma = 0.1;
  std::int64_t batch_size = 0;  ///< 0: full batch
  std::int64_t epochs = 100;
  std::int64_t lbfgs_max_iter = 100;
  std::string stop = "epochs";  ///< epochs | early_stopping | gradient_norm
  std::int64_t patience = 5;
  double validation_fraction = 0.1;
  /// early stopping with resample = "bootstrap": "rows" holds out a keyed
  /// share of the data set's rows and resamples the rest (no row on both
  /// sides); "draws" holds out a share of the resample's draws (a row drawn
  /// twice can land on both sides: about 55-60% of the held-out draws).
  std::string validation_split = "rows";
  double gradient_tolerance = 1e-8;
  // penalty.*
  std::string penalty_family = "none";  ///< none | ridge | diag | sym
  std::string penalty_file;
  // fit.*
  std::vector<std::string> families{"ridge", "diag"};
  std::vector<std::string> candidates;  ///< for the family "features"
  /// sym over several ranks: ScaLAPACK from this scope size p on, below it
  /// rank 0 fits alone (distributed::SolverTuning's crossover)
  std::int64_t scalapack_min_p = 256;
  /// layerwise-ridge was added to `candidates` for the family of that name
  /// only; the family "features" leaves its columns out.
  bool features_skip_layerwise = false;
  /// ConfigReader::where of the keys that name the model, the data and the
  /// penalty ("FILE:LINE: key 'model.file'"): a file found wrong once read
  /// is reported at its key.
  std::string model_where, data_where, penalty_where;
};

/// The rows of a data set of n examples that replicate r trains on (with
/// repeats when resampled) and holds out for early stopping.
struct ReplicateSample {
  std::vector<std::int64_t> train, validation;
  bool whole = false;  ///< train is every row once, in order: the data set itself
};
ReplicateSample replicate_sample(const BootstrapConfig& c, std::int64_t n, std::int64_t r);

/// Reads every key (top-level `study = "bootstrap"`), checks values and the
/// files' existence, then reader.finish(). InputError naming file and key.
BootstrapConfig read_bootstrap_config(io::ConfigReader& reader);

/// The study for the runner (study.hpp): `gradmatch run` of a bootstrap config.
std::unique_ptr<Study> make_bootstrap_study();

}  // namespace gradmatch::studies
