# The layout rules of the architecture (issue 14): no require cycle among
# scripts/, no library -> phase edge; long files and functions listed
# (tools/check-layout.lua says which of them fail).
add_test(NAME layout/check_layout COMMAND benchrun run ${PROJECT_SOURCE_DIR}/tools/check-layout.lua ${PROJECT_SOURCE_DIR})
set_tests_properties(layout/check_layout PROPERTIES TIMEOUT 60)
