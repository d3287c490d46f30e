# Tests against a real llama.cpp llama-server (issue 13): the fixture
# realserver/build builds llama-server and llama-quantize from
# ../shared/realservers/llama.cpp and makes the models (tools/realserver.sh:
# cached outside the clone by the snapshot's hash, so only the first run on
# a machine builds, for minutes). Every tests/realserver/*_test.lua needs it
# and reads the paths from realserver.env; where building is impossible (no
# C++ compiler) they skip (code 77) with the reason. tools/test.sh sets
# BENCHRUN_REALSERVER=require under CI=true so that a skip is a failure there.
set(REALSERVER_ENV ${CMAKE_BINARY_DIR}/realserver.env)
add_test(NAME realserver/build COMMAND bash ${PROJECT_SOURCE_DIR}/tools/realserver.sh ${REALSERVER_ENV})
set_tests_properties(realserver/build PROPERTIES FIXTURES_SETUP realserver LABELS realserver
  TIMEOUT 3600 RUN_SERIAL ON)
file(GLOB REALSERVER_TESTS CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/realserver/*_test.lua)
foreach(src ${REALSERVER_TESTS})
  get_filename_component(name ${src} NAME_WE)
  add_test(NAME realserver/${name} COMMAND benchrun run ${src})
  set_tests_properties(realserver/${name} PROPERTIES
    ENVIRONMENT "BENCHRUN_TESTS=${CMAKE_CURRENT_SOURCE_DIR};BENCHRUN_REALSERVER_ENV=${REALSERVER_ENV};BENCHRUN_SOURCE=${PROJECT_SOURCE_DIR};BENCHRUN_HISTORY=${CMAKE_CURRENT_BINARY_DIR}/history.db"
    FIXTURES_REQUIRED realserver LABELS realserver SKIP_RETURN_CODE 77 TIMEOUT 600)
endforeach()
# a timing comparison (prefill tokens / TTFT against the server's own
# figure): alone, so that other tests do not take the machine's 2 cores
set_tests_properties(realserver/depth_test PROPERTIES RUN_SERIAL ON)
