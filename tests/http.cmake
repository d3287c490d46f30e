# Tests of the http part (engine/sse.c, engine/llmchunk.c, engine/h1.c; the
# decoders' buffers are the engine's br_buf, so buf.c is linked with them)
# beyond the auto-registered ones: fuzzers for the stream decoders and for
# the HTTP/1.1 response parser.
#
#  - fuzz_sse_replay (any compiler): the fuzz target run over the llama-server
#    captures and a few thousand pseudo-random streams; a normal ctest.
#  - fuzz_sse (clang only, libFuzzer): `fuzz/sse` runs it for 20 s. Labelled
#    no-asan because it carries its own sanitizers (and the ASan pass of
#    tools/test.sh need not run it twice).
set(_HTTP_FUZZ_SOURCES
  ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_sse.c
  ${PROJECT_SOURCE_DIR}/engine/sse.c
  ${PROJECT_SOURCE_DIR}/engine/llmchunk.c
  ${PROJECT_SOURCE_DIR}/engine/buf.c)
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

# The same pair for the HTTP/1.1 response parser (engine/h1.c):
#  - fuzz_h1_replay (any compiler): built-in seeds, the llama-server captures
#    sent as chunked responses (and two captured heads as they are), and a few
#    thousand pseudo-random responses; a normal ctest.
#  - fuzz_h1 (clang only, libFuzzer): `fuzz/h1` runs it for 15 s from a few
#    seed responses written into its corpus here (an input's first byte picks
#    the cut and HEAD; see fuzz_h1.c). Labelled no-asan as fuzz/sse is.
set(_H1_FUZZ_SOURCES
  ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_h1.c
  ${PROJECT_SOURCE_DIR}/engine/h1.c)

add_executable(fuzz_h1_replay ${_H1_FUZZ_SOURCES})
target_include_directories(fuzz_h1_replay PRIVATE ${PROJECT_SOURCE_DIR}/engine)
target_compile_definitions(fuzz_h1_replay PRIVATE _GNU_SOURCE FUZZ_REPLAY_MAIN)
target_compile_options(fuzz_h1_replay PRIVATE ${BENCHRUN_WARNINGS})
add_test(NAME fuzz/h1_replay COMMAND fuzz_h1_replay
  ${_HTTP_FIXTURES}/chat-stream.sse ${_HTTP_FIXTURES}/completions-stream.sse
  ${_HTTP_FIXTURES}/native-completion-stream.sse
  ${_HTTP_FIXTURES}/chat-stream.headers ${_HTTP_FIXTURES}/bad-json.headers)
set_tests_properties(fuzz/h1_replay PROPERTIES TIMEOUT 120)

if(CMAKE_C_COMPILER_ID MATCHES "Clang")
  add_executable(fuzz_h1 ${_H1_FUZZ_SOURCES})
  target_include_directories(fuzz_h1 PRIVATE ${PROJECT_SOURCE_DIR}/engine)
  target_compile_definitions(fuzz_h1 PRIVATE _GNU_SOURCE)
  target_compile_options(fuzz_h1 PRIVATE -g -fsanitize=fuzzer,address,undefined)
  target_link_options(fuzz_h1 PRIVATE -fsanitize=fuzzer,address,undefined)
  set(_H1_CORPUS ${CMAKE_CURRENT_BINARY_DIR}/fuzz_h1_corpus)
  file(MAKE_DIRECTORY ${_H1_CORPUS})
  # "@" (0x40): cut about half way, not HEAD; "\xC0" would be the same with HEAD.
  file(WRITE ${_H1_CORPUS}/seed-length
    "@HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello")
  file(WRITE ${_H1_CORPUS}/seed-chunked
    "@HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\nA\r\n0123456789\r\n0\r\nT: 1\r\n\r\n")
  file(WRITE ${_H1_CORPUS}/seed-interim
    "@HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")
  file(WRITE ${_H1_CORPUS}/seed-close
    "@HTTP/1.0 200 OK\nConnection: keep-alive\nTransfer-Encoding: gzip\n\nto the close")
  file(WRITE ${_H1_CORPUS}/seed-pipelined
    "@HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 304 Not Modified\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n")
  add_test(NAME fuzz/h1 COMMAND fuzz_h1 -max_total_time=15 -max_len=8192 -timeout=10 ${_H1_CORPUS})
  set_tests_properties(fuzz/h1 PROPERTIES LABELS "fuzz;no-asan" TIMEOUT 120)
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

# A scripted raw TCP server for the native transport's tests: they control
# every byte the client reads (framing split across writes, resets, stalls,
# garbage). lua/http_native_test, lua/http_agree_test (both transports
# against the same bytes) and lua/client_wire_test (a full accept queue)
# find it through BENCHRUN_RAWSERVER.
add_executable(rawserver ${CMAKE_CURRENT_SOURCE_DIR}/helpers/rawserver.c)
target_compile_definitions(rawserver PRIVATE _GNU_SOURCE)
target_compile_options(rawserver PRIVATE ${BENCHRUN_WARNINGS})
foreach(name http_native_test http_agree_test client_wire_test)
  if(TEST lua/${name})
    set_tests_properties(lua/${name} PROPERTIES
      ENVIRONMENT "BENCHRUN_TESTS=${CMAKE_CURRENT_SOURCE_DIR};BENCHRUN_RAWSERVER=$<TARGET_FILE:rawserver>"
      TIMEOUT 120)
  endif()
endforeach()
