# The engine's extra tests (included by tests/CMakeLists.txt).
#
# fuzz_yaml: libFuzzer target for bench.yaml (tests/fuzz/fuzz_yaml.c). libFuzzer
# needs LLVM clang: with a clang build it is an ordinary target; otherwise, if
# a clang with libFuzzer is installed, a custom command builds it with it. A short
# (15 s) fuzzing run is a ctest when the target exists; run it longer by hand:
#   build/tests/fuzz_yaml -max_total_time=300 /tmp/corpus tests/yaml-cases

set(FUZZ_YAML_SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_yaml.c ${PROJECT_SOURCE_DIR}/engine/yaml.c
    ${PROJECT_SOURCE_DIR}/engine/yaml_encode.c ${PROJECT_SOURCE_DIR}/engine/class.c
    ${PROJECT_SOURCE_DIR}/engine/buf.c)
set(FUZZ_FLAGS -fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer)
set(FUZZ_YAML_EXE "")

# The clang to use: the build's own compiler if it is LLVM clang (Apple's
# clang has no libFuzzer), else any clang on PATH. Probe it for libFuzzer
# (Debian: libclang-rt-dev) before relying on it.
if(CMAKE_C_COMPILER_ID STREQUAL "Clang")
  set(FUZZ_CC ${CMAKE_C_COMPILER})
else()
  find_program(FUZZ_CC NAMES clang clang-18 clang-17 clang-16 clang-15 clang-14)
endif()
set(_fuzz_ok FALSE)
if(FUZZ_CC)
  set(_probe_dir ${CMAKE_CURRENT_BINARY_DIR}/fuzz_probe)
  file(MAKE_DIRECTORY ${_probe_dir})
  file(WRITE ${_probe_dir}/probe.c
    "#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);\n"
    "int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n")
  execute_process(COMMAND ${FUZZ_CC} -fsanitize=fuzzer,address ${_probe_dir}/probe.c -o ${_probe_dir}/probe
    RESULT_VARIABLE _probe_rc OUTPUT_QUIET ERROR_QUIET)
  if(_probe_rc EQUAL 0)
    set(_fuzz_ok TRUE)
  else()
    message(STATUS "fuzz_yaml: ${FUZZ_CC} has no libFuzzer (Debian: libclang-rt-dev); not built")
  endif()
else()
  message(STATUS "fuzz_yaml: no clang found; the YAML fuzzer is not built")
endif()

if(_fuzz_ok AND CMAKE_C_COMPILER_ID STREQUAL "Clang")
  add_executable(fuzz_yaml ${FUZZ_YAML_SOURCES})
  target_include_directories(fuzz_yaml PRIVATE ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/engine)
  target_compile_options(fuzz_yaml PRIVATE ${FUZZ_FLAGS} -g -O1)
  target_link_options(fuzz_yaml PRIVATE ${FUZZ_FLAGS})
  target_link_libraries(fuzz_yaml PRIVATE PkgConfig::LUA PkgConfig::YAML m)
  set(FUZZ_YAML_EXE $<TARGET_FILE:fuzz_yaml>)
elseif(_fuzz_ok)
  # A gcc build: compile the fuzzer with clang in a custom command.
  set(_incs -I${PROJECT_SOURCE_DIR}/include -I${PROJECT_SOURCE_DIR}/engine)
  foreach(d ${LUA_INCLUDE_DIRS} ${YAML_INCLUDE_DIRS})
    list(APPEND _incs -I${d})
  endforeach()
  set(FUZZ_YAML_EXE ${CMAKE_CURRENT_BINARY_DIR}/fuzz_yaml)
  add_custom_command(OUTPUT ${FUZZ_YAML_EXE}
    COMMAND ${FUZZ_CC} -g -O1 ${FUZZ_FLAGS} -D_GNU_SOURCE ${_incs} ${FUZZ_YAML_SOURCES}
            ${LUA_LINK_LIBRARIES} ${YAML_LINK_LIBRARIES} -lm -o ${FUZZ_YAML_EXE}
    DEPENDS ${FUZZ_YAML_SOURCES} ${PROJECT_SOURCE_DIR}/include/benchrun/runtime.h
    COMMENT "Building fuzz_yaml with ${FUZZ_CC} (libFuzzer)"
    VERBATIM)
  add_custom_target(fuzz_yaml ALL DEPENDS ${FUZZ_YAML_EXE})
endif()

if(FUZZ_YAML_EXE)
  # Seeds: the YAML case documents. New inputs go to a scratch corpus.
  add_test(NAME fuzz/yaml_smoke
    COMMAND ${CMAKE_COMMAND} -E env ASAN_OPTIONS=detect_leaks=1
            ${FUZZ_YAML_EXE} -max_total_time=15 -max_len=4096 -timeout=10 -rss_limit_mb=2048
            -artifact_prefix=${CMAKE_CURRENT_BINARY_DIR}/fuzz-
            ${CMAKE_CURRENT_BINARY_DIR}/fuzz_corpus ${CMAKE_CURRENT_SOURCE_DIR}/yaml-cases)
  file(MAKE_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/fuzz_corpus)
  set_tests_properties(fuzz/yaml_smoke PROPERTIES LABELS fuzz TIMEOUT 120)
endif()
