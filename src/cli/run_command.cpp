#include "cli/commands.hpp"
#include "io/provenance.hpp"
#include "studies/registry.hpp"

namespace gradmatch::cli {

int run_command(const RunArgs& args, const mpi::Communicator& comm) {
  try {
    // The output directory is left out: two runs into different directories
    // write byte-identical files.
    io::set_created_by("gradmatch run " + args.config);
    if (args.dry_run) studies::dry_run_study(args.config, args.out, comm, args.tasks);
    else studies::run_study(args.config, args.out, comm, studies::RunOptions{args.tasks, args.program});
    return 0;
  } catch (const std::exception& e) {
    return report_failure("run", e, comm, args.config + " --out " + args.out);
  }
}

int run_precheck(const RunArgs& args, const mpi::Communicator& comm) {
  try {
    studies::check_study_config(args.config, args.out, comm);
    return 0;
  } catch (const std::exception& e) {
    return report_failure("run", e, comm, args.config + " --out " + args.out);
  }
}

}  // namespace gradmatch::cli
