# The macOS side compiled on every CI run (issue 7, docs/macos.md):
# tests/macos/check.sh cross-compiles every engine file for aarch64-macos and
# x86_64-macos with the Zig toolchain pinned in tests/macos/package.json, and
# links the platform layer against macOS's libSystem stubs. Nothing is run on
# macOS. On a Mac the ordinary build is the real check, so it is Linux only.
if(NOT APPLE)
  set(BENCHRUN_MACOS_WORK ${CMAKE_CURRENT_BINARY_DIR}/macos)

  # Where the dependencies' headers are; check.sh copies only these into a
  # shim folder, so nothing else from Linux's /usr/include is seen.
  find_path(BENCHRUN_MACOS_LUA_DIR luaconf.h HINTS ${LUA_INCLUDE_DIRS} PATH_SUFFIXES lua5.4)
  find_path(BENCHRUN_MACOS_CURL_DIR curl/curl.h HINTS ${CURL_INCLUDE_DIRS})
  find_path(BENCHRUN_MACOS_YAML_DIR yaml.h HINTS ${YAML_INCLUDE_DIRS})
  find_path(BENCHRUN_MACOS_CJSON_DIR cJSON.h HINTS ${CJSONC_INCLUDE_DIRS} PATH_SUFFIXES cjson)
  find_path(BENCHRUN_MACOS_SQLITE_DIR sqlite3.h HINTS ${SQLITE3_INCLUDE_DIRS})
  find_path(BENCHRUN_MACOS_EDIT_DIR NAMES histedit.h editline/readline.h HINTS ${LIBEDIT_INCLUDE_DIRS})

  # The definitions and warnings of the real targets, one per line, so the
  # cross-compile sees what the native build sees (generator expressions:
  # the values are read when the build system is generated).
  set(_macos_flags "# Written by tests/macos.cmake for tests/macos/check.sh.\n")
  string(APPEND _macos_flags
    "engine_define $<JOIN:$<TARGET_PROPERTY:benchrun_engine,COMPILE_DEFINITIONS>,\nengine_define >\n"
    "main_define $<JOIN:$<TARGET_PROPERTY:benchrun,COMPILE_DEFINITIONS>,\nmain_define >\n")
  foreach(w ${BENCHRUN_WARNINGS})
    string(APPEND _macos_flags "warning ${w}\n")
  endforeach()
  foreach(k LUA CURL YAML CJSON SQLITE)
    if(BENCHRUN_MACOS_${k}_DIR)
      string(TOLOWER ${k} _macos_key)
      string(APPEND _macos_flags "headers ${_macos_key} ${BENCHRUN_MACOS_${k}_DIR}\n")
    endif()
  endforeach()
  if(LIBEDIT_FOUND AND BENCHRUN_MACOS_EDIT_DIR AND EXISTS ${BENCHRUN_MACOS_EDIT_DIR}/editline/readline.h)
    string(APPEND _macos_flags "headers edit ${BENCHRUN_MACOS_EDIT_DIR}\n")
  endif()
  # The shared libraries the real executable links: check.sh turns their
  # exported symbols into macOS link stubs (.tbd), so the whole engine can be
  # linked for macOS and a call to something no library has fails there.
  foreach(k LUA CURL YAML CJSONC SQLITE3 LIBEDIT)
    foreach(lib ${${k}_LINK_LIBRARIES})
      if(lib MATCHES "\\.so(\\.[0-9]+)*$")
        string(APPEND _macos_flags "library ${lib}\n")
      endif()
    endforeach()
  endforeach()
  file(GENERATE OUTPUT ${BENCHRUN_MACOS_WORK}/flags.txt CONTENT "${_macos_flags}")

  add_test(NAME macos/cross-compile
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/macos/check.sh ${BENCHRUN_MACOS_WORK})
  # no-asan: the check compiles with its own toolchain and flags, so the
  # sanitizer pass would repeat the same work for the same answer.
  # 77: skipped where the pinned toolchain does not exist (not x86_64 Linux).
  set_tests_properties(macos/cross-compile PROPERTIES
    LABELS "macos;no-asan" SKIP_RETURN_CODE 77 TIMEOUT 600)
endif()
