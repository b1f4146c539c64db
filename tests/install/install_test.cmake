# cmake -DBUILD_DIR=... -DSOURCE_DIR=... -DGENERATOR=... -DCXX_COMPILER=...
#       -DBUILD_TYPE=... -DDATA_DIR=... -P install_test.cmake
#
# 1. cmake --install BUILD_DIR into a fresh temporary prefix;
# 2. checks the installed tree: package files, headers, libraries, the CLI,
#    and that no installed CMake file names the build or the source tree;
# 3. configures and builds SOURCE_DIR/examples/consumer against the prefix
#    (same generator and compiler), its build directory in the same
#    temporary directory (nothing is written into the source tree);
# 4. runs it on DATA_DIR (annotations.json, images/: tests/data/paste) and
#    checks its output;
# 5. removes the temporary directory (also when a step fails).
cmake_minimum_required(VERSION 3.22)
foreach(v BUILD_DIR SOURCE_DIR GENERATOR CXX_COMPILER DATA_DIR)
  if(NOT DEFINED ${v} OR "${${v}}" STREQUAL "")
    message(FATAL_ERROR "install_test.cmake: -D${v}=... is required")
  endif()
endforeach()
if(NOT BUILD_TYPE)
  set(BUILD_TYPE Release)
endif()

if(DEFINED ENV{TMPDIR} AND IS_DIRECTORY "$ENV{TMPDIR}")
  set(tmp_root "$ENV{TMPDIR}")
else()
  set(tmp_root /tmp)
endif()
string(RANDOM LENGTH 10 tag)
set(tmp "${tmp_root}/pasteflow-install-test-${tag}")
set(prefix "${tmp}/prefix")
set(consumer_build "${tmp}/consumer-build")
file(MAKE_DIRECTORY "${tmp}")

set(failure "")
# step(<name> <command...>): runs the command unless an earlier step failed.
macro(step name)
  if(failure STREQUAL "")
    string(TIMESTAMP t0 "%s")
    execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
    string(TIMESTAMP t1 "%s")
    math(EXPR dt "${t1} - ${t0}")
    message(STATUS "${name}: exit ${rc} (${dt} s)")
    if(NOT rc EQUAL 0)
      set(failure "${name} failed (${rc}):\n${out}\n${err}")
    endif()
  endif()
endmacro()
macro(check condition_message)
  if(failure STREQUAL "")
    set(failure "${condition_message}")
  endif()
endmacro()

step("install" "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${prefix}")

# The installed tree.
if(failure STREQUAL "")
  set(pkg "${prefix}/lib/cmake/pasteflow")
  foreach(f pasteflowConfig.cmake pasteflowConfigVersion.cmake pasteflowTargets.cmake
            include/pasteflow/pipeline/loader.hpp include/pasteflow/io/coco.hpp bin/pasteflow
            lib/libpasteflow_core.a lib/libpasteflow_pipeline.a lib/libpasteflow_train.a)
    if(f MATCHES "^pasteflow")
      set(path "${pkg}/${f}")
    else()
      set(path "${prefix}/${f}")
    endif()
    if(NOT EXISTS "${path}")
      check("not installed: ${path}")
    endif()
  endforeach()
  # Test and benchmark programs are not installed.
  file(GLOB extra_programs "${prefix}/bin/test_*" "${prefix}/bin/bench_*")
  if(extra_programs)
    check("test/bench programs installed: ${extra_programs}")
  endif()
  # No installed CMake file may name the build or the source tree.
  file(GLOB_RECURSE cmake_files "${pkg}/*.cmake")
  foreach(f IN LISTS cmake_files)
    file(READ "${f}" text)
    foreach(tree "${BUILD_DIR}" "${SOURCE_DIR}")
      string(FIND "${text}" "${tree}" at)
      if(NOT at EQUAL -1)
        check("${f} names ${tree}")
      endif()
    endforeach()
    if(text MATCHES "pasteflow_warnings")
      check("${f} exports the build-only target pasteflow_warnings")
    endif()
  endforeach()
endif()

step("configure examples/consumer" "${CMAKE_COMMAND}" -S "${SOURCE_DIR}/examples/consumer" -B "${consumer_build}"
  -G "${GENERATOR}" "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}" "-DCMAKE_BUILD_TYPE=${BUILD_TYPE}"
  "-DCMAKE_PREFIX_PATH=${prefix}" -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON)
step("build examples/consumer" "${CMAKE_COMMAND}" --build "${consumer_build}")
step("run pasteflow_consumer" "${consumer_build}/pasteflow_consumer"
  "${DATA_DIR}/annotations.json" "${DATA_DIR}/images" 3)
if(failure STREQUAL "")
  message(STATUS "consumer output:\n${out}")
  # tests/data/paste: 2 images, 51 annotations. With original_aug an epoch
  # is each image as is and once augmented: 4 samples, 2 batches of 2 (the
  # example stops at the epoch's end), each a [2, 3, H, W] tensor; the
  # pasted copies make more instances than the dataset has annotations.
  if(NOT out MATCHES "dataset images=2 annotations=([0-9]+)")
    check("unexpected consumer output:\n${out}")
  else()
    set(annotations "${CMAKE_MATCH_1}")
    if(NOT out MATCHES "batches=2 images=4 instances=([0-9]+) first_batch=\\[2, 3, [0-9]+, [0-9]+\\]")
      check("unexpected consumer output:\n${out}")
    elseif(NOT CMAKE_MATCH_1 GREATER annotations)
      check("no pasted instances (${CMAKE_MATCH_1} <= ${annotations} annotations):\n${out}")
    endif()
  endif()
endif()
# The installed CLI runs (it links the same static layers).
step("run installed pasteflow --help" "${prefix}/bin/pasteflow" --help)
# The installed Python package imports and works from the prefix (PYTHON
# is given when the build has the Python module).
if(PYTHON)
  # (a script file: step() is a macro, which would split inline code at ';')
  file(WRITE "${tmp}/import_test.py"
    "import os\nimport pasteflow\n"
    "assert os.path.dirname(pasteflow.__file__).startswith('${prefix}'), pasteflow.__file__\n"
    "rle = pasteflow.mask.frPyObjects([[1, 1, 9, 1, 9, 9, 1, 9]], 12, 12)[0]\n"
    "print('python', pasteflow.__version__, int(pasteflow.mask.area(rle)))\n")
  step("import the installed pasteflow" "${CMAKE_COMMAND}" -E env
    "PYTHONPATH=${prefix}/lib/python3/dist-packages" "${PYTHON}" "${tmp}/import_test.py")
  if(failure STREQUAL "" AND NOT out MATCHES "python [0-9.]+ 64")
    check("unexpected output of the installed Python module:\n${out}")
  endif()
endif()

file(REMOVE_RECURSE "${tmp}")
if(EXISTS "${tmp}")
  check("could not remove ${tmp}")
endif()
if(NOT failure STREQUAL "")
  message(FATAL_ERROR "install test: ${failure}")
endif()
message(STATUS "install test passed")
