#include <cstdio>
#include <iostream>
#include <sstream>

#include "cli/commands.hpp"
#include "core/errors.hpp"
#include "core/fit.hpp"
#include "distributed/distributed_fit.hpp"
#include "io/json_output.hpp"

namespace gradmatch::cli {

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
    os << r.coefficients.size() << " coefficients";
  }
  os << "; residual ratio " << r.residual_ratio << ", cosine " << r.cosine << ", condition " << r.condition_number
     << ", rank " << r.rank << "/" << r.unknowns << ", m = " << r.m << ", p = " << r.p;
  return os.str();
}

int fit_command(const FitArgs& args, const distributed::Communicator& comm) {
  try {
    distributed::collective(comm, [&] {
      if (args.input.empty() == args.model.empty())
        throw InputError("give exactly one of an equation file and --model MODEL.pt");
      if (!args.model.empty() && args.data.empty()) throw InputError("--model needs --data (an IDX directory or an HDF5 file)");
      if (args.model.empty() && (!args.data.empty() || !args.save_equations.empty() || !args.candidates.empty()))
        throw InputError("--data, --save-equations and --candidates go with --model");
    });
    if (!args.model.empty()) return model_fit_command(args, comm);
    FitOptions options;
    distributed::SolverTuning tuning;
    distributed::collective(comm, [&] {
      tuning.reduce = distributed::parse_reduce_backend(args.reduce);
      options.family = FamilySpec::parse(args.family);
      options.method = parse_method(args.method);
      options.normalize = args.normalize;
      options.nonneg = args.nonneg;
      options.rcond = args.rcond;
    });
    const FitResult result = distributed::fit_equation_file(comm, args.input, options, tuning);
    const nlohmann::json doc = io::fit_result_json(result, comm.size());
    distributed::collective(comm, [&] {
      if (!comm.is_root()) return;
      if (!args.output.empty()) io::write_json_file(args.output, doc);
      else std::cout << doc.dump(2) << std::endl;
      if (!args.quiet) std::cerr << "gradmatch fit: " << fit_headline(result) << std::endl;
    });
    return 0;
  } catch (const std::exception& e) {
    return report_failure("fit", e, comm);
  }
}

int report_failure(const std::string& command, const std::exception& e, const distributed::Communicator& comm) {
  const auto* f = dynamic_cast<const distributed::CollectiveFailure*>(&e);
  if (comm.is_root()) {
    std::cerr << "gradmatch " << command << ": error";
    if (f && comm.size() > 1) std::cerr << " on rank " << f->failed_rank();
    std::cerr << ": " << e.what() << std::endl;
  }
  return distributed::exit_code_for(e);
}

}  // namespace gradmatch::cli
