#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "core/errors.hpp"
#include "io/equation_file.hpp"

namespace gradmatch::cli {
namespace {

void describe_equation_file(const std::string& path) {
  const io::EquationFileInfo info = io::inspect_equation_file(path);
  std::cout << path << ": gradmatch equation file, version 1\n"
            << "  points m = " << info.m << ", parameters p = " << info.p << "\n"
            << "  target: " << (info.has_target ? "explicit 'target' dataset" : "b = -grad_loss") << "\n"
            << "  weights: " << (info.has_weights ? "per-point 'weights'" : "none (all 1)") << "\n"
            << "  features: ";
  if (info.features.empty()) std::cout << "none";
  for (std::size_t i = 0; i < info.features.size(); ++i) std::cout << (i ? ", " : "") << info.features[i];
  std::cout << std::endl;
}

// One line per number; arrays as "[n values: first ... last]"; objects indented.
void print_items(const nlohmann::json& doc, const std::string& indent) {
  for (const auto& [key, value] : doc.items()) {
    if (key == "study") continue;
    if (value.is_object()) {
      std::cout << indent << key << ":\n";
      print_items(value, indent + "  ");
    } else if (value.is_array() && value.size() > 4) {
      std::cout << indent << key << ": [" << value.size() << " values: " << value.front().dump() << " ... "
                << value.back().dump() << "]\n";
    } else {
      std::cout << indent << key << ": " << value.dump() << "\n";
    }
  }
}

void describe_study(const std::filesystem::path& dir) {
  const auto summary = dir / "summary.json";
  std::ifstream in(summary);
  if (!in)
    throw InputError(dir.string() + ": no summary.json here; is this a finished study output directory? (run "
                     "'gradmatch run CONFIG --out " + dir.string() + "' first)");
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw InputError(summary.string() + ": not valid JSON (" + e.what() + ")");
  }
  std::cout << dir.string() << ": " << doc.value("study", std::string("study")) << "\n";
  print_items(doc, "  ");
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) files.push_back(entry.path().filename().string());
  std::sort(files.begin(), files.end());
  std::cout << "  files:";
  for (const auto& f : files) std::cout << " " << f;
  std::cout << std::endl;
}

}  // namespace

int report_command(const ReportArgs& args, const distributed::Communicator& comm) {
  try {
    distributed::collective(comm, [&] {
      if (!comm.is_root()) return;
      const std::filesystem::path path(args.path);
      if (std::filesystem::is_directory(path)) describe_study(path);
      else if (std::filesystem::exists(path)) describe_equation_file(args.path);
      else throw InputError(args.path + ": no such file or directory");
    });
    return 0;
  } catch (const std::exception& e) {
    return report_failure("report", e, comm);
  }
}

}  // namespace gradmatch::cli
