# CUDA and NCCL, decided by the LibTorch that find_package(Torch) found.
#
#   GRADMATCH_TORCH_CUDA  ON when that LibTorch was built with CUDA (its
#                         package then defines torch_cuda / TORCH_CUDA_LIBRARIES):
#                         the training layer names GPUs and can compute on them.
#   GRADMATCH_WITH_NCCL   AUTO (default): ON when LibTorch has CUDA and nccl.h,
#                         libnccl and the CUDA toolkit are found; ON: NCCL and
#                         the CUDA toolkit are required (a configure error
#                         otherwise) whatever LibTorch has -- the NCCL path uses
#                         only the CUDA runtime and NCCL; OFF.
#                         With NCCL, `gradmatch fit --reduce nccl` all-reduces
#                         the distributed fits' statistics on device buffers.
#                         NCCL_ROOT / NCCL_HOME point at a non-system NCCL.
set(GRADMATCH_TORCH_CUDA OFF)
if(TARGET torch_cuda OR TORCH_CUDA_LIBRARIES OR CAFFE2_USE_CUDA)
  set(GRADMATCH_TORCH_CUDA ON)
endif()

#   GRADMATCH_CUDA_KERNELS ON with a CUDA LibTorch and a CUDA compiler (nvcc):
#                         the dropout masks' one-pass kernel (training/
#                         dropout_masks_cuda.cu); without it the same masks come
#                         from elementwise tensor code. -DGRADMATCH_CUDA_KERNELS_REQUEST=OFF
#                         leaves it out. Architectures: "native" where nothing set
#                         CMAKE_CUDA_ARCHITECTURES; with Torch's CMake package
#                         found first it is OFF and Torch's -gencode flags decide.
set(GRADMATCH_CUDA_KERNELS_REQUEST ON CACHE BOOL "Build the CUDA kernel of the dropout masks when a CUDA compiler is found")
set(GRADMATCH_CUDA_KERNELS OFF)
if(GRADMATCH_TORCH_CUDA AND GRADMATCH_CUDA_KERNELS_REQUEST)
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES native)
    endif()
    enable_language(CUDA)
    set(GRADMATCH_CUDA_KERNELS ON)
  endif()
endif()

set(GRADMATCH_WITH_NCCL AUTO CACHE STRING "NCCL all-reduces for distributed fits: AUTO, ON or OFF")
set_property(CACHE GRADMATCH_WITH_NCCL PROPERTY STRINGS AUTO ON OFF)
set(GRADMATCH_NCCL OFF)
if(GRADMATCH_WITH_NCCL STREQUAL "ON" OR (GRADMATCH_WITH_NCCL STREQUAL "AUTO" AND GRADMATCH_TORCH_CUDA))
  find_package(CUDAToolkit QUIET)
  find_path(GRADMATCH_NCCL_INCLUDE_DIR nccl.h HINTS ENV NCCL_ROOT ENV NCCL_HOME ${CUDAToolkit_INCLUDE_DIRS}
            PATH_SUFFIXES include)
  find_library(GRADMATCH_NCCL_LIBRARY nccl HINTS ENV NCCL_ROOT ENV NCCL_HOME ${CUDAToolkit_LIBRARY_DIR}
               "${CUDAToolkit_LIBRARY_ROOT}" PATH_SUFFIXES lib lib64)
  if(CUDAToolkit_FOUND AND GRADMATCH_NCCL_INCLUDE_DIR AND GRADMATCH_NCCL_LIBRARY)
    set(GRADMATCH_NCCL ON)
  endif()
endif()
if(GRADMATCH_WITH_NCCL STREQUAL "ON" AND NOT GRADMATCH_NCCL)
  message(FATAL_ERROR "GRADMATCH_WITH_NCCL=ON needs the CUDA toolkit (found: ${CUDAToolkit_FOUND}) and NCCL "
                      "(nccl.h: ${GRADMATCH_NCCL_INCLUDE_DIR}, libnccl: ${GRADMATCH_NCCL_LIBRARY}; set NCCL_ROOT): "
                      "configure with -DGRADMATCH_WITH_NCCL=AUTO or OFF, or install them")
endif()
message(STATUS "gradmatch: LibTorch ${Torch_VERSION}, CUDA ${GRADMATCH_TORCH_CUDA}, NCCL ${GRADMATCH_NCCL}, "
               "CUDA kernels ${GRADMATCH_CUDA_KERNELS}")
