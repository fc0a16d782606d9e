# Optional hook: cmake -DCMAKE_PROJECT_INCLUDE=<repo>/tests/fuzz/hook.cmake -DLOOM_FUZZ=ON ...
# defines the tests/fuzz targets (targets.cmake) at the end of the top-level directory, when
# every library target and compile option exists, unless the top level already did
# (add_subdirectory(tests/fuzz)). Used by tests/fuzz/run_compound_fuzz.sh.
function(loom_fuzz_hook_add)
  if(LOOM_FUZZ)
    include(${CMAKE_SOURCE_DIR}/tests/fuzz/targets.cmake)
  endif()
endfunction()
cmake_language(DEFER DIRECTORY ${CMAKE_SOURCE_DIR} CALL loom_fuzz_hook_add)
