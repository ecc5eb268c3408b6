#pragma once
// Error types shared by every layer.
//
// InputError: the user gave something wrong (a file, a flag, a config key).
// The CLI turns it into exit code 2 with the message as written, so messages
// begin with where the problem is and say what to change.
// NumericalError: a library or algorithm failed on valid input (LAPACK info,
// a diverged computation).
#include <stdexcept>
#include <string>

namespace gradmatch {

class InputError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

class NumericalError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace gradmatch
