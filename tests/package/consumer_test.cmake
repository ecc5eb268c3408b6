# Installs the build in BUILD_DIR into WORK_DIR/prefix, configures and builds
# the consumer project against it with find_package(gradmatch), runs the
# program and checks what it prints; also runs the installed executable.
cmake_minimum_required(VERSION 3.25)

function(run_step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${out}\n${err}")
  endif()
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
set(prefix "${WORK_DIR}/prefix")
run_step("cmake --install" ${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${prefix}")
foreach(file bin/gradmatch include/gradmatch/core/fit.hpp include/gradmatch/core/build_info.hpp
             include/gradmatch/mpi/mpi.hpp lib/cmake/gradmatch/gradmatchConfig.cmake
             lib/cmake/gradmatch/gradmatchConfigVersion.cmake)
  if(NOT EXISTS "${prefix}/${file}")
    message(FATAL_ERROR "the install has no ${file}")
  endif()
endforeach()
if(EXISTS "${prefix}/include/gradmatch/io/hdf5_handle.hpp")
  message(FATAL_ERROR "the private io/hdf5_handle.hpp was installed")
endif()

# The package remembers the LibTorch it was built against (a CUDA LibTorch
# lies outside CMake's default prefixes: a consumer that named only
# gradmatch's prefix did not find it on a GPU machine).
file(READ "${prefix}/lib/cmake/gradmatch/gradmatchConfig.cmake" config)
string(FIND "${config}" "set(GRADMATCH_TORCH_HINT \"${TORCH_DIR}\")" at)
if(at EQUAL -1)
  message(FATAL_ERROR "the installed gradmatchConfig.cmake does not name the build's Torch_DIR ${TORCH_DIR}")
endif()

run_step("configuring the consumer" ${CMAKE_COMMAND} -S "${CONSUMER_SOURCE_DIR}" -B "${WORK_DIR}/build"
         -G "${GENERATOR}" -D CMAKE_BUILD_TYPE=Release -D CMAKE_CXX_COMPILER=${CXX_COMPILER}
         -D CMAKE_PREFIX_PATH=${prefix} -D GRADMATCH_EXPECTED_VERSION=${EXPECTED_VERSION})
run_step("building the consumer" ${CMAKE_COMMAND} --build "${WORK_DIR}/build")
run_step("running the consumer" "${WORK_DIR}/build/consumer")
set(expected "gradmatch ${EXPECTED_VERSION}: median 2.5, t(0.975, 4) 2.776445105, narrow 7, gradmatch.equations, MPI_THREAD_FUNNELED\n")
if(NOT step_output STREQUAL expected)
  message(FATAL_ERROR "the consumer printed\n  '${step_output}'\nnot\n  '${expected}'")
endif()

# The installed executable runs and names its version.
run_step("gradmatch --version" "${prefix}/bin/gradmatch" --version)
if(NOT step_output MATCHES "gradmatch ${EXPECTED_VERSION}")
  message(FATAL_ERROR "the installed gradmatch --version printed '${step_output}'")
endif()
message(STATUS "installed, found, built and ran: ${step_output}")
