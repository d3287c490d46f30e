# lua/proc_servers_test's readiness case needs a server that answers with
# Content-Length and keeps the connection open: tests/helpers/rawserver.
if(TEST lua/proc_servers_test)
  set_tests_properties(lua/proc_servers_test PROPERTIES
    ENVIRONMENT "BENCHRUN_TESTS=${CMAKE_CURRENT_SOURCE_DIR};BENCHRUN_RAWSERVER=$<TARGET_FILE:rawserver>"
    TIMEOUT 300)
endif()
