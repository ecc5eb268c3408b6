#pragma once
// Who wrote an output file: the facts every HDF5 file gradmatch writes
// carries as root attributes (and run_info.json / fit JSON as keys), so a
// file found years later says which program and command produced it.
//
//   gradmatch_version   the project version ("0.1.0")
//   git_commit          the source commit, when the build knew it
//   libtorch_version    the LibTorch the program was built with
//   created_by          the command, e.g. "gradmatch run configs/dropout.toml"
//
// created_by leaves out the output location (--out), so that two runs of the
// same command into different directories write byte-identical files.
#include <string>
#include <utility>
#include <vector>

namespace gradmatch::io {

/// Set once by the executable before anything is written.
void set_created_by(std::string command);
/// The study being run (`gradmatch run`); equation files a study writes
/// carry it as their `study` attribute.
void set_study(std::string study);

/// study (when set), then the attributes above, in a fixed order;
/// git_commit only when known.
std::vector<std::pair<std::string, std::string>> provenance();

/// The gradmatch version string.
const char* gradmatch_version();

}  // namespace gradmatch::io
