# The libraries gradmatch's targets link, found alike by the build
# (CMakeLists.txt) and by the installed package (gradmatchConfig.cmake, where
# GRADMATCH_FIND_AS_DEPENDENCY is set and find_dependency reports what is
# missing to the consumer's find_package(gradmatch)). Debian packages only:
# scripts/setup.sh installs them.
macro(gradmatch_find_dependency)
  if(GRADMATCH_FIND_AS_DEPENDENCY)
    find_dependency(${ARGV})
  else()
    find_package(${ARGV} REQUIRED)
  endif()
endmacro()

gradmatch_find_dependency(BLAS)
gradmatch_find_dependency(LAPACK)
set(MPI_DETERMINE_LIBRARY_VERSION TRUE)  # MPI_C_LIBRARY_VERSION_STRING (build info, Open MPI test flags)
gradmatch_find_dependency(MPI COMPONENTS C)
set(HDF5_PREFER_PARALLEL TRUE)
gradmatch_find_dependency(HDF5 COMPONENTS C)
if(NOT HDF5_IS_PARALLEL)
  message(FATAL_ERROR "gradmatch needs parallel HDF5 (Debian: libhdf5-openmpi-dev); found a serial HDF5 at ${HDF5_INCLUDE_DIRS}")
endif()
# HDF5 as one imported target (FindHDF5 of CMake >= 3.19 provides hdf5::hdf5).
if(NOT TARGET hdf5::hdf5)
  add_library(hdf5::hdf5 INTERFACE IMPORTED)
  target_include_directories(hdf5::hdf5 SYSTEM INTERFACE ${HDF5_INCLUDE_DIRS})
  target_link_libraries(hdf5::hdf5 INTERFACE ${HDF5_LIBRARIES})
endif()
gradmatch_find_dependency(PkgConfig)
if(NOT TARGET PkgConfig::SCALAPACK)
  pkg_check_modules(SCALAPACK REQUIRED IMPORTED_TARGET scalapack-openmpi)
endif()
gradmatch_find_dependency(Torch)
gradmatch_find_dependency(tomlplusplus)
gradmatch_find_dependency(nlohmann_json)
gradmatch_find_dependency(ZLIB)
