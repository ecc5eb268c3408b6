// `gradmatch fit --model MODEL.pt --data DATA --loss L --family F`: gradient
// equations of a user's TorchScript module at its current parameters, then
// the same fit and JSON as `gradmatch fit EQUATIONS`. The rank 0 process
// builds and fits them (one model, one row of equations); every rank returns
// the same exit code.
#include <filesystem>
#include <iostream>

#include "cli/commands.hpp"
#include "core/fit.hpp"
#include "io/equation_file.hpp"
#include "io/hdf5_file.hpp"
#include "io/json_output.hpp"
#include "training/model_equations.hpp"

namespace gradmatch::cli {

int model_fit_command(const FitArgs& args, const distributed::Communicator& comm) {
  try {
    distributed::collective(comm, [&] {
      FitOptions options;
      options.family = FamilySpec::parse(args.family);
      options.method = parse_method(args.method);
      options.normalize = args.normalize;
      options.nonneg = args.nonneg;
      options.rcond = args.rcond;
      if (!comm.is_root()) return;

      training::ModelEquationsOptions mo;
      mo.loss = args.loss;
      mo.batch_size = args.batch_size;
      mo.candidates = args.candidates;
      training::ModelEquations me;
      std::error_code ec;
      if (std::filesystem::is_directory(args.data, ec)) {
        me = training::torchscript_equations(args.model, args.data, mo);
      } else {
        training::HostArray x, y;
        x.values = io::read_doubles(args.data, "X", &x.shape);
        y.values = io::read_doubles(args.data, "y", &y.shape);
        me = training::torchscript_equations(args.model, x, y, mo);
      }
      if (!args.save_equations.empty()) io::write_equation_file(args.save_equations, me.equations);

      const FitResult result = fit(me.equations, options);
      nlohmann::json doc = io::fit_result_json(result, 1);  // one row, solved serially on rank 0
      doc["model"] = args.model;
      doc["data"] = args.data;
      doc["loss"] = args.loss;
      doc["n"] = me.n;
      doc["mean_loss"] = me.loss;
      doc["relative_gradient_norm"] = me.relative_gradient_norm;
      if (!args.output.empty()) io::write_json_file(args.output, doc);
      else std::cout << doc.dump(2) << std::endl;
      if (!args.quiet) {
        std::cerr << "gradmatch fit: " << fit_headline(result) << "; ||grad L|| / ||theta|| = " << me.relative_gradient_norm
                  << std::endl;
      }
    });
    return 0;
  } catch (const std::exception& e) {
    return report_failure("fit", e, comm);
  }
}

}  // namespace gradmatch::cli
