#include "cli/commands.hpp"
#include "studies/registry.hpp"

namespace gradmatch::cli {

int run_command(const RunArgs& args, const distributed::Communicator& comm) {
  try {
    studies::run_study(args.config, args.out, comm);
    return 0;
  } catch (const std::exception& e) {
    return report_failure("run", e, comm);
  }
}

}  // namespace gradmatch::cli
