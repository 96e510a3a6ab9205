# ctest's alip_find_package: install the built core into a scratch prefix, configure and
# build the consumer project against it with find_package(alip), run it.
file(REMOVE_RECURSE "${ALIP_SCRATCH}")
function(step)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  message(STATUS "${out}")
endfunction()
step(${CMAKE_COMMAND} --install "${ALIP_BUILD_DIR}" --prefix "${ALIP_SCRATCH}/prefix")
step(${CMAKE_COMMAND} -S "${ALIP_CONSUMER_DIR}" -B "${ALIP_SCRATCH}/build" -DCMAKE_PREFIX_PATH=${ALIP_SCRATCH}/prefix
     -DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER} -DCMAKE_BUILD_TYPE=Release)
step(${CMAKE_COMMAND} --build "${ALIP_SCRATCH}/build")
step("${ALIP_SCRATCH}/build/consumer")
