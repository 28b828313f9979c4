# Injected by scripts/build_interfaces.sh (CMAKE_PROJECT_INCLUDE) when building against the ROS 2 PyPI wheels.
# Those wheels' exported CMake targets name the include directories of the machine that built them
# (/opt/python/cp311-cp311/include/python3.11 and that Python's numpy include). CMake refuses imported targets
# whose include directories do not exist, so at the end of the configure step every imported target's include
# directories are rewritten to this Python's and this numpy's. On a normal ROS 2 install nothing matches.
function(segzero_fix_wheel_include_paths)
  get_property(targets DIRECTORY "${CMAKE_SOURCE_DIR}" PROPERTY IMPORTED_TARGETS)
  foreach(target IN LISTS targets)
    get_target_property(dirs ${target} INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT dirs)
      continue()
    endif()
    set(fixed "")
    foreach(dir IN LISTS dirs)
      if(dir MATCHES "^/opt/python/[^/]+/include/python")
        set(dir "${SEGZERO_PYTHON_INCLUDE}")
      elseif(dir MATCHES "^/opt/python/.*/numpy/_core/include$")
        set(dir "${SEGZERO_NUMPY_INCLUDE}")
      endif()
      list(APPEND fixed "${dir}")
    endforeach()
    if(NOT fixed STREQUAL dirs)
      set_target_properties(${target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${fixed}")
    endif()
  endforeach()
endfunction()

cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL segzero_fix_wheel_include_paths)
