# Helpers shared by the module, test and benchmark CMakeLists.

# hasync_test(NAME SOURCES... LIBS ...): one GoogleTest binary registered with CTest.
# Each TEST() becomes its own CTest entry (gtest_discover_tests), so a skipped test is
# reported as skipped, never as passed.
function(hasync_test name)
  # SERIAL: the tests run alone (timing bounds, or load they create themselves).
  # TIMEOUT: seconds, for a test whose long mode (HASYNC_LONG=1) needs more than 600.
  cmake_parse_arguments(T "SERIAL" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} GTest::gtest GTest::gmock GTest::gtest_main
                                        hasync_private)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})
  set(props TIMEOUT 600)
  if(T_TIMEOUT)
    set(props TIMEOUT ${T_TIMEOUT})
  endif()
  if(T_SERIAL)
    list(APPEND props RUN_SERIAL TRUE)
  endif()
  if(T_LABELS)
    # A list value inside PROPERTIES must keep its semicolons escaped.
    string(REPLACE ";" "\\;" labels "${T_LABELS}")
    list(APPEND props LABELS "${labels}")
  endif()
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 30 PROPERTIES ${props})
endfunction()

# hasync_benchmark(NAME SOURCES... LIBS ...): one Google Benchmark binary.
function(hasync_benchmark name)
  cmake_parse_arguments(B "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${B_SOURCES})
  target_link_libraries(${name} PRIVATE ${B_LIBS} benchmark::benchmark hasync_private)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})
endfunction()

# hasync_module(NAME SOURCES... DEPS ...): a module library with alias hasync::NAME,
# public headers included from the repo root ("wire/frame.h").
function(hasync_module name)
  cmake_parse_arguments(M "" "" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(hasync_${name} STATIC ${M_SOURCES})
  add_library(hasync::${name} ALIAS hasync_${name})
  target_include_directories(hasync_${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(hasync_${name} PUBLIC ${M_DEPS} PRIVATE ${M_PRIVATE_DEPS} hasync_private)
endfunction()
