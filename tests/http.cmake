# Tests of the http part (engine/sse.c, engine/llmchunk.c) beyond the
# auto-registered ones: a fuzzer for the stream decoders.
#
#  - fuzz_sse_replay (any compiler): the fuzz target run over the llama-server
#    captures and a few thousand pseudo-random streams; a normal ctest.
#  - fuzz_sse (clang only, libFuzzer): `fuzz/sse` runs it for 20 s. Labelled
#    no-asan because it carries its own sanitizers (and the ASan pass of
#    tools/test.sh need not run it twice).
set(_HTTP_FUZZ_SOURCES
  ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_sse.c
  ${PROJECT_SOURCE_DIR}/engine/sse.c
  ${PROJECT_SOURCE_DIR}/engine/llmchunk.c)
set(_HTTP_FIXTURES ${PROJECT_SOURCE_DIR}/tests/fixtures/llama-server)

add_executable(fuzz_sse_replay ${_HTTP_FUZZ_SOURCES})
target_include_directories(fuzz_sse_replay PRIVATE ${PROJECT_SOURCE_DIR}/engine)
target_compile_definitions(fuzz_sse_replay PRIVATE _GNU_SOURCE FUZZ_REPLAY_MAIN)
target_compile_options(fuzz_sse_replay PRIVATE ${BENCHRUN_WARNINGS})
add_test(NAME fuzz/sse_replay COMMAND fuzz_sse_replay
  ${_HTTP_FIXTURES}/chat-stream.sse ${_HTTP_FIXTURES}/completions-stream.sse
  ${_HTTP_FIXTURES}/native-completion-stream.sse)
set_tests_properties(fuzz/sse_replay PROPERTIES TIMEOUT 120)

if(CMAKE_C_COMPILER_ID MATCHES "Clang")
  add_executable(fuzz_sse ${_HTTP_FUZZ_SOURCES})
  target_include_directories(fuzz_sse PRIVATE ${PROJECT_SOURCE_DIR}/engine)
  target_compile_definitions(fuzz_sse PRIVATE _GNU_SOURCE)
  target_compile_options(fuzz_sse PRIVATE -g -fsanitize=fuzzer,address,undefined)
  target_link_options(fuzz_sse PRIVATE -fsanitize=fuzzer,address,undefined)
  set(_HTTP_CORPUS ${CMAKE_CURRENT_BINARY_DIR}/fuzz_sse_corpus)
  file(MAKE_DIRECTORY ${_HTTP_CORPUS})
  add_test(NAME fuzz/sse COMMAND fuzz_sse -max_total_time=20 -max_len=4096 -timeout=10
    ${_HTTP_CORPUS} ${_HTTP_FIXTURES})
  set_tests_properties(fuzz/sse PROPERTIES LABELS "fuzz;no-asan" TIMEOUT 120)
endif()

# The floor of the client benchmark (tools/bench-client.sh): a minimal
# reader on the engine's loop. Built with the tests, run only by the script.
add_executable(bench_client_reader ${CMAKE_CURRENT_SOURCE_DIR}/bench/client_reader.c)
target_include_directories(bench_client_reader PRIVATE ${PROJECT_SOURCE_DIR}/engine)
target_compile_definitions(bench_client_reader PRIVATE _GNU_SOURCE)
target_compile_options(bench_client_reader PRIVATE ${BENCHRUN_WARNINGS})
target_link_libraries(bench_client_reader PRIVATE benchrun_engine)

# The client's Lua tests once more with curl for every request: plain
# http:// to an address normally takes the native transport (engine/http.c),
# so without this curl's path would only see the TLS and HTTP/2 cases.
foreach(name http_request_test openai_client_test load_sim_test)
  add_test(NAME lua/${name}_curl COMMAND benchrun run ${CMAKE_CURRENT_SOURCE_DIR}/lua/${name}.lua)
  set_tests_properties(lua/${name}_curl PROPERTIES
    ENVIRONMENT "BENCHRUN_TESTS=${CMAKE_CURRENT_SOURCE_DIR};BENCHRUN_HTTP_TRANSPORT=curl"
    TIMEOUT 300)
endforeach()
