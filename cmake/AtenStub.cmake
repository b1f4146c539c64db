# Finds how to call ATen's CPU kernels through their dispatch stubs
# (ATen/native/DispatchStub.h), which rcnn::resize_bilinear_into uses to
# resize straight into a view of the padded batch. The stub's ABI depends on
# the CPU variants LibTorch was built with (HAVE_AVX512_CPU_DEFINITION, ...),
# which TorchConfig does not export, so each plausible set is tried by linking
# a probe. Sets PASTEFLOW_ATEN_STUB_DEFINITIONS (a list) and defines
# PASTEFLOW_HAVE_ATEN_STUB when one links; otherwise the resize writes a
# temporary and copies it (same values, one more pass over the pixels).
function(pasteflow_find_aten_stub)
  if(DEFINED CACHE{PASTEFLOW_ATEN_STUB_DEFINITIONS})
    return()
  endif()
  set(candidates
    "HAVE_AVX512_CPU_DEFINITION,HAVE_AVX2_CPU_DEFINITION"  # x86-64 (commas: one list item)
    "HAVE_AVX2_CPU_DEFINITION"
    "HAVE_VSX_CPU_DEFINITION"                              # ppc64le
    "HAVE_ZVECTOR_CPU_DEFINITION"                          # s390x
    "NONE")                                                # aarch64 and others
  set(found "")
  foreach(set_ IN LISTS candidates)
    string(REPLACE "," ";" defs "${set_}")
    set(flags "")
    if(NOT set_ STREQUAL "NONE")
      foreach(d IN LISTS defs)
        list(APPEND flags "-D${d}")
      endforeach()
    endif()
    string(MAKE_C_IDENTIFIER "${set_}" tag)
    try_compile(ok ${CMAKE_BINARY_DIR}/probe_aten_stub_${tag}
      SOURCES ${PROJECT_SOURCE_DIR}/cmake/probe_aten_stub.cpp
      COMPILE_DEFINITIONS ${flags}
      CMAKE_FLAGS "-DINCLUDE_DIRECTORIES=${TORCH_INCLUDE_DIRS}"
      LINK_LIBRARIES ${TORCH_LIBRARIES}
      CXX_STANDARD 17)
    if(ok)
      set(found "${set_}")
      break()
    endif()
  endforeach()
  if(found STREQUAL "")
    message(STATUS "ATen dispatch stubs: not callable; the batch resize copies through a temporary")
    set(PASTEFLOW_ATEN_STUB_DEFINITIONS "UNAVAILABLE" CACHE INTERNAL "")
  else()
    message(STATUS "ATen dispatch stubs: callable with ${found}")
    set(PASTEFLOW_ATEN_STUB_DEFINITIONS "${found}" CACHE INTERNAL "")
  endif()
endfunction()
