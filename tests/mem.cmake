# lua/mem_gpu_test: a fake libnvidia-ml.so.1 (tests/helpers/fake_nvml.c,
# NVML 12.2's signatures and records) that benchrun loads through
# BENCHRUN_NVML, built twice: with the _v2/_v3 process lists of current
# drivers, and with only the unversioned v1 list of drivers before R470.
foreach(variant fake_nvml fake_nvml_legacy)
  add_library(${variant} SHARED ${CMAKE_CURRENT_SOURCE_DIR}/helpers/fake_nvml.c)
  target_compile_options(${variant} PRIVATE ${BENCHRUN_WARNINGS} -Wno-missing-prototypes -fvisibility=hidden)
  set_target_properties(${variant} PROPERTIES OUTPUT_NAME nvidia-ml PREFIX lib SUFFIX .so.1
    LIBRARY_OUTPUT_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/${variant})
endforeach()
target_compile_definitions(fake_nvml_legacy PRIVATE FAKE_NVML_LEGACY)

if(TEST lua/mem_gpu_test)
  set_tests_properties(lua/mem_gpu_test PROPERTIES
    ENVIRONMENT "BENCHRUN_TESTS=${CMAKE_CURRENT_SOURCE_DIR};BENCHRUN_FAKE_NVML=$<TARGET_FILE:fake_nvml>;BENCHRUN_FAKE_NVML_LEGACY=$<TARGET_FILE:fake_nvml_legacy>"
    TIMEOUT 300)
endif()
