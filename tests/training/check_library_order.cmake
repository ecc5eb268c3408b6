# The libstdc++-first rule of src/training/CMakeLists.txt, checked on built
# programs: the first DT_NEEDED entry of each must be libstdc++.so.6, so that
# the system libstdc++ defines std::filesystem (and the rest of the C++
# library) for the program and for a LibTorch that exports its own copies.
#   cmake -DREADELF=readelf -DPROGRAMS="a;b" -P check_library_order.cmake
foreach(program IN LISTS PROGRAMS)
  execute_process(COMMAND ${READELF} -d ${program} OUTPUT_VARIABLE dynamic RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${READELF} -d ${program} failed (${rc}): ${err}")
  endif()
  string(REGEX MATCHALL "\\(NEEDED\\)[^\n]*\\[[^]\n]*\\]" entries "${dynamic}")
  set(libraries "")
  foreach(entry IN LISTS entries)
    string(REGEX REPLACE ".*\\[([^]\n]*)\\]" "\\1" library "${entry}")
    list(APPEND libraries "${library}")
  endforeach()
  list(LENGTH libraries count)
  if(count EQUAL 0)
    message(FATAL_ERROR "${program}: no NEEDED entries in ${READELF} -d")
  endif()
  list(GET libraries 0 first)
  if(NOT first MATCHES "^libstdc\\+\\+\\.so")
    list(JOIN libraries ", " all)
    message(FATAL_ERROR "${program}: its first library is ${first}, not libstdc++.so.6 (all: ${all}). "
                        "LibTorch's own std::filesystem would then serve the program's calls; see the libstdc++ "
                        "rule in src/training/CMakeLists.txt.")
  endif()
  message(STATUS "${program}: libstdc++ first of ${count} libraries")
endforeach()
