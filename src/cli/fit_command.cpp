#include <glob.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <new>
#include <sstream>

#include "cli/commands.hpp"
#include "core/errors.hpp"
#include "core/fit.hpp"
#include "core/resources.hpp"
#include "core/text.hpp"
#include "distributed/distributed_fit.hpp"
#include "io/equation_file.hpp"
#include "io/fit_output.hpp"
#include "io/json_output.hpp"

namespace gradmatch::cli {

void print_fit_messages(const FitResult& r, bool quiet, const std::string& extra) {
  if (!quiet) std::cerr << "gradmatch fit: " << fit_headline(r) << extra << std::endl;
  for (const std::string& w : r.warnings) std::cerr << "gradmatch fit: warning: " << w << std::endl;
}

std::string fit_headline(const FitResult& r) {
  std::ostringstream os;
  os.precision(6);
  os << r.family << " [" << r.method << "]: ";
  if (r.coefficients.size() <= 4) {
    const std::vector<std::string> names = r.names.empty() ? std::vector<std::string>(r.coefficients.size(), "q") : r.names;
    for (std::size_t i = 0; i < r.coefficients.size(); ++i) {
      os << (i ? ", " : "") << (r.names.empty() && r.shape.empty() ? "lambda" : names[i]);
      if (r.names.empty() && !r.shape.empty()) os << "[" << i << "]";
      os << " = " << r.coefficients[i];
      if (i < r.standard_errors.size()) os << " (se " << r.standard_errors[i] << ")";
    }
  } else {
    // A symmetric [p, p] matrix has p(p+1)/2 free entries: say both counts.
    if (r.shape.size() == 2) os << r.shape[0] << " x " << r.shape[1] << " symmetric matrix (" << r.unknowns << " unknowns)";
    else os << r.coefficients.size() << " coefficients";
  }
  os << "; residual ratio " << r.residual_ratio << ", cosine " << r.cosine << ", condition " << r.condition_number
     << ", rank " << r.rank << "/" << r.unknowns << ", m = " << r.m << ", p = " << r.p;
  return os.str();
}

std::vector<std::string> expand_model_paths(const std::vector<std::string>& patterns) {
  std::vector<std::string> out;
  for (const std::string& pattern : patterns) {
    if (pattern.find_first_of("*?[") == std::string::npos) {
      out.push_back(pattern);
      continue;
    }
    glob_t g{};
    const int rc = ::glob(pattern.c_str(), 0, nullptr, &g);
    if (rc == 0)
      for (std::size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);  // glob sorts them
    ::globfree(&g);
    if (rc != 0) throw InputError("--model " + pattern + ": the glob matches no file; check the pattern and directory");
  }
  return out;
}

void check_fit_outputs(const FitArgs& args, const std::vector<std::string>& inputs) {
  namespace fs = std::filesystem;
  std::vector<std::pair<std::string, std::string>> outputs;  // (flag, path)
  if (!args.output.empty()) {
    io::fit_output_format(args.output);
    outputs.emplace_back("--output", args.output);
  }
  if (!args.save_equations.empty()) {
    // An equation file is HDF5: a name that says otherwise (eq.json, eq.txt)
    // is a mistake, as --output refuses a suffix it does not write.
    const std::string ext = fs::path(args.save_equations).extension().string();
    if (ext != ".h5" && ext != ".hdf5")
      throw InputError("--save-equations " + args.save_equations +
                       ": equation files are HDF5; give a name ending in .h5 (or .hdf5)");
    outputs.emplace_back("--save-equations", args.save_equations);
  }
  const auto same_file = [](const std::string& a, const std::string& b) {
    std::error_code ec;
    if (fs::equivalent(a, b, ec)) return true;
    return fs::weakly_canonical(a, ec) == fs::weakly_canonical(b, ec) && !ec;
  };
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    const auto& [flag, path] = outputs[i];
    std::error_code ec;
    const fs::path dir = fs::path(path).parent_path();
    if (!dir.empty() && !fs::is_directory(dir, ec))
      throw InputError(flag + " " + path + ": the directory " + dir.string() + " does not exist; create it first");
    if (fs::is_directory(path, ec)) throw InputError(flag + " " + path + ": is a directory; give a file name");
    for (const std::string& in : inputs)
      if (!in.empty() && same_file(path, in))
        throw InputError(flag + " " + path + ": is also an input (" + in + "); writing it would destroy the input");
    for (std::size_t j = 0; j < i; ++j)
      if (same_file(path, outputs[j].second))
        throw InputError(flag + " " + path + ": is also the " + outputs[j].first + " file; give two different files");
  }
}

int fit_command(const FitArgs& args, const mpi::Communicator& comm) {
  try {
    std::vector<std::string> models;
    FitOptions options;
    distributed::SolverTuning tuning;
    mpi::collective(comm, [&] {
      tuning.reduce = distributed::parse_reduce_backend(args.reduce);
      if (args.input.empty() == args.models.empty())
        throw InputError("give exactly one of an equation file and --model MODEL.pt");
      if (!args.models.empty() && args.data.empty())
        throw InputError("--model needs --data (an IDX directory or an HDF5 file)");
      if (args.models.empty() && (!args.data.empty() || !args.save_equations.empty() || !args.candidates.empty() ||
                                  !args.params.empty() || args.include_frozen || args.model_only_given))
        throw InputError(
            "--data, --loss, --batch-size, --save-equations, --candidates, --params and --include-frozen go with "
            "--model (an equation file already holds the gradients)");
      const bool features_family = args.family.rfind("features", 0) == 0;  // the columns options apply only there
      if (!args.columns.empty() && !features_family)
        throw InputError(text::cat("--columns selects the feature columns of --family features; with --family ",
                                   args.family, " it would be ignored: drop --columns or use --family features"));
      if (!args.columns.empty() && !args.models.empty())
        throw InputError("--columns selects columns of an equation file; with --model, choose them with --candidates");
      if (!args.candidates.empty() && !features_family)
        throw InputError(text::cat("--candidates adds the columns of --family features; with --family ", args.family,
                             " they would be ignored: drop --candidates or use --family features"));
      options.family = FamilySpec::parse(args.family);
      options.method = parse_method(args.method);
      options.normalize = args.normalize;
      options.nonneg = args.nonneg;
      options.rcond = args.rcond;
      std::vector<std::string> inputs{args.input, args.data};
      if (!args.models.empty()) {
        models = expand_model_paths(args.models);
        inputs.insert(inputs.end(), models.begin(), models.end());
      }
      check_fit_outputs(args, inputs);
    });
    if (!models.empty()) {
#if GRADMATCH_TORCH_COMMANDS
      return model_fit_command(args, models, comm);
#else
      throw std::logic_error("fit --model reached the executable without LibTorch; it runs in gradmatch-torch");
#endif
    }
    // One rank: the serial fit (no BLACS grid, so no MPI needed); several, or
    // --reduce nccl: distributed.
    FitResult result;
    if (comm.size() == 1 && tuning.reduce == distributed::ReduceBackend::mpi)
      mpi::collective(comm, [&] {
        Equations eq = io::read_equation_file(args.input);  // its own memory checked first
        // A sym fit's solve can need far more than the file (p x p matrices).
        resources::require_memory(
            text::cat(args.input, ": --family sym over p = ", resources::count_text(static_cast<double>(eq.p())),
                      " parameters (m = ", resources::count_text(static_cast<double>(eq.m())), ", --method ",
                      args.method, "), which"),
            sym_fit_workspace_bytes(options, eq.m(), eq.p()),
            "fit a smaller scope (fewer parameters) or --family diag, or spread the solve over ranks with mpirun "
            "(ScaLAPACK)");
        eq.keep_features(args.columns);
        result = fit(eq, options);
      });
    else result = distributed::fit_equation_file(comm, args.input, options, tuning, args.columns);
    const nlohmann::json doc = io::fit_result_json(result, comm.size());
    mpi::collective(comm, [&] {
      if (!comm.is_root()) return;
      if (!args.output.empty()) io::write_fit_output(args.output, result, doc);
      else std::cout << doc.dump(2) << std::endl;
      print_fit_messages(result, args.quiet, "");
    });
    return 0;
  } catch (const std::exception& e) {
    return report_failure("fit", e, comm, args.input);
  }
}

int report_failure(const std::string& command, const std::exception& e, const mpi::Communicator& comm,
                   const std::string& input) {
  const auto* f = dynamic_cast<const mpi::CollectiveFailure*>(&e);
  // A bad_alloc that crossed a collective arrives as its what() text.
  const bool no_memory = dynamic_cast<const std::bad_alloc*>(&e) != nullptr || std::string(e.what()) == "std::bad_alloc" ||
                         std::string(e.what()) == "std::bad_array_new_length";
  if (comm.is_root()) {
    std::cerr << "gradmatch " << command << ": error";
    if (f && comm.size() > 1) std::cerr << " on rank " << f->failed_rank();
    if (no_memory)
      std::cerr << ": out of memory while running 'gradmatch " << command << (input.empty() ? "" : " ") << input
                << "' (an allocation failed: " << e.what()
                << "); free memory, use a smaller input or more nodes, and run the same command again" << std::endl;
    else std::cerr << ": " << text::clip(e.what(), 4000) << std::endl;  // never a megabyte of echoed input
  }
  return no_memory ? 1 : mpi::exit_code_for(e);
}

}  // namespace gradmatch::cli
