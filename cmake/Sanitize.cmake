# Sanitizer and libFuzzer flags for the whole tree.
#
# PASTEFLOW_SANITIZE is a string: "" (off), "address,undefined" (ASan + UBSan;
# ON still means this), "thread" (TSan). Every target is compiled and linked
# with it; UBSan findings abort (-fno-sanitize-recover) so a test fails on
# them instead of printing and passing.
#
# PASTEFLOW_FUZZ (clang only) also compiles everything with
# -fsanitize=fuzzer-no-link (coverage for libFuzzer) and builds the fuzz
# targets of fuzz/, linked with -fsanitize=fuzzer. One tree then serves both
# the ASan+UBSan unit tests and the fuzz targets.
function(pasteflow_setup_sanitizers)
  set(san "${PASTEFLOW_SANITIZE}")
  if(san MATCHES "^(ON|on|On|TRUE|true|YES|yes|1)$")
    set(san "address,undefined")
  elseif(san MATCHES "^(OFF|off|Off|FALSE|false|NO|no|0)$")
    set(san "")
  endif()
  if(NOT san STREQUAL "" AND NOT san STREQUAL "address,undefined" AND NOT san STREQUAL "address"
     AND NOT san STREQUAL "undefined" AND NOT san STREQUAL "thread")
    message(FATAL_ERROR "PASTEFLOW_SANITIZE='${PASTEFLOW_SANITIZE}': use \"\", \"address,undefined\" or \"thread\"")
  endif()
  if(PASTEFLOW_FUZZ)
    if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
      message(FATAL_ERROR "PASTEFLOW_FUZZ needs clang (libFuzzer): configure with -DCMAKE_CXX_COMPILER=clang++-14")
    endif()
    if(san STREQUAL "thread")
      message(FATAL_ERROR "PASTEFLOW_FUZZ goes with PASTEFLOW_SANITIZE=address,undefined, not thread")
    endif()
  endif()
  # The normalised value, for the tests' labels (tests/CMakeLists.txt).
  set(PASTEFLOW_SANITIZERS "${san}" PARENT_SCOPE)
  if(san STREQUAL "")
    if(PASTEFLOW_FUZZ)
      add_compile_options(-fsanitize=fuzzer-no-link)
    endif()
    return()
  endif()
  set(compile -fsanitize=${san} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  if(PASTEFLOW_FUZZ)
    list(APPEND compile -fsanitize=fuzzer-no-link)
  endif()
  add_compile_options(${compile})
  add_link_options(-fsanitize=${san})
endfunction()
