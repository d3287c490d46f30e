# benchrun sim: the benchmark's streaming reader (tools/bench-sim.sh runs it).
add_executable(sim_reader ${CMAKE_CURRENT_SOURCE_DIR}/bench/sim_reader.c)
target_compile_options(sim_reader PRIVATE ${BENCHRUN_WARNINGS})
target_compile_definitions(sim_reader PRIVATE _GNU_SOURCE)
target_link_libraries(sim_reader PRIVATE benchrun_engine)
