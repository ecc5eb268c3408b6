// `gradmatch fit --model MODEL.pt --data DATA --loss L --family F`: gradient
// equations of a user's TorchScript module at its current parameters, then
// the same fit and output as `gradmatch fit EQUATIONS`. Each model file is one
// row of equations (its endpoint); several are pooled. The rank 0 process
// builds and fits them; every rank returns the same exit code.
#include <algorithm>
#include <filesystem>
#include <iostream>

#include "cli/commands.hpp"
#include "core/fit.hpp"
#include "io/equation_file.hpp"
#include "io/fit_output.hpp"
#include "io/hdf5_file.hpp"
#include "io/json_output.hpp"
#include "io/provenance.hpp"
#include "training/model_equations.hpp"

namespace gradmatch::cli {

int model_fit_command(const FitArgs& args, const std::vector<std::string>& models, const mpi::Communicator& comm) {
  try {
    mpi::collective(comm, [&] {
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
      mo.params = args.params;
      mo.include_frozen = args.include_frozen;
      mo.data_name = args.data;
      training::ModelEquations me;
      std::error_code ec;
      if (std::filesystem::is_directory(args.data, ec)) {
        me = training::torchscript_equations(models, args.data, mo);
      } else {
        training::HostArray x, y;
        x.values = io::read_doubles(args.data, "X", &x.shape);
        y.values = io::read_doubles(args.data, "y", &y.shape);
        me = training::torchscript_equations(models, x, y, mo);
      }
      if (!args.save_equations.empty()) {
        // The file says how it was made: the models, data and loss it came from.
        std::string command = "gradmatch fit";
        for (const std::string& m : models) command += " --model " + m;
        io::set_created_by(command + " --data " + args.data + " --loss " + args.loss);
        io::write_equation_file(args.save_equations, me.equations);
      }

      const FitResult result = fit(me.equations, options);
      nlohmann::json doc = io::fit_result_json(result, 1);  // solved serially on rank 0
      // One model: its loss and stationarity; several: their mean loss, the
      // largest relative gradient norm, and each model's values under per_model.
      double loss = 0.0, worst = 0.0;
      nlohmann::json per_model = nlohmann::json::array();
      for (std::size_t i = 0; i < models.size(); ++i) {
        loss += me.losses[i] / static_cast<double>(models.size());
        worst = std::max(worst, me.relative_gradient_norms[i]);
        per_model.push_back(
            {{"model", models[i]}, {"mean_loss", me.losses[i]}, {"relative_gradient_norm", me.relative_gradient_norms[i]}});
      }
      if (models.size() == 1) doc["model"] = models.front();
      doc["models"] = models;
      doc["data"] = args.data;
      doc["loss"] = args.loss;
      doc["n"] = me.n;
      doc["mean_loss"] = loss;
      doc["relative_gradient_norm"] = worst;
      if (models.size() > 1) doc["per_model"] = per_model;
      if (!args.output.empty()) io::write_fit_output(args.output, result, doc);
      else std::cout << doc.dump(2) << std::endl;
      print_fit_messages(result, args.quiet,
                         (models.size() > 1 ? "; largest ||grad L|| / ||theta|| = " : "; ||grad L|| / ||theta|| = ") +
                             std::to_string(worst));
    });
    return 0;
  } catch (const std::exception& e) {
    return report_failure("fit", e, comm, "--model " + models.front() + " --data " + args.data);
  }
}

}  // namespace gradmatch::cli
