#pragma once
// Moved to the gradmatch_mpi layer: include "mpi/mpi.hpp".
#include "mpi/mpi.hpp"
