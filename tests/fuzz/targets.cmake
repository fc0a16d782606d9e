# compound_fuzz: a stateful COMPOUND fuzzer (clients, sessions, filehandles and stateids kept
# across inputs; invariants checked after every COMPOUND). See compound_fuzz.cc.
# Included by tests/fuzz/CMakeLists.txt, or by hook.cmake.
if(NOT TARGET compound_fuzz)
  add_executable(compound_fuzz ${CMAKE_SOURCE_DIR}/tests/fuzz/compound_fuzz.cc)
  target_include_directories(compound_fuzz PRIVATE ${CMAKE_SOURCE_DIR}/src)
  target_link_libraries(compound_fuzz PRIVATE loom_nfs4 loom_nfs4_client loom_nfs3 -fsanitize=fuzzer)
endif()
