# Install rules of the layer libraries (the export set pasteflowTargets;
# the package files are written at the end of the top-level CMakeLists.txt).
#
# pasteflow_install_library(pasteflow_<layer>) exports the target as
# pasteflow::<layer> (the alias used inside the build), adds the installed
# include directory and C++17 to what it gives its users once installed
# ($<INSTALL_INTERFACE:...>: nothing changes inside the build tree) and
# installs the library.
include(GNUInstallDirs)

function(pasteflow_install_library target)
  string(REGEX REPLACE "^pasteflow_" "" name "${target}")
  set_target_properties(${target} PROPERTIES EXPORT_NAME ${name})
  target_include_directories(${target} INTERFACE $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  target_compile_features(${target} INTERFACE $<INSTALL_INTERFACE:cxx_std_17>)
  install(TARGETS ${target} EXPORT pasteflowTargets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endfunction()
