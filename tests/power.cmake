# lua/power_test: bench.power over fake sysfs trees (BENCHRUN_SYSFS_ROOT) and
# the fake NVML of tests/mem.cmake (both of its builds), loaded through
# BENCHRUN_NVML by the inner benchrun processes the test starts.
if(TEST lua/power_test)
  set_tests_properties(lua/power_test PROPERTIES
    ENVIRONMENT "BENCHRUN_TESTS=${CMAKE_CURRENT_SOURCE_DIR};BENCHRUN_FAKE_NVML=$<TARGET_FILE:fake_nvml>;BENCHRUN_FAKE_NVML_LEGACY=$<TARGET_FILE:fake_nvml_legacy>"
    TIMEOUT 300)
endif()
