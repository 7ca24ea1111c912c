# engine/node: persisted node state and the `hasync run` event loop.
set(HASYNC_NODE_SOURCES ${CMAKE_CURRENT_LIST_DIR}/state.cpp ${CMAKE_CURRENT_LIST_DIR}/node.cpp
    ${CMAKE_CURRENT_LIST_DIR}/hooks.cpp
    ${CMAKE_CURRENT_LIST_DIR}/control.cpp
    ${CMAKE_CURRENT_LIST_DIR}/service.cpp
    ${CMAKE_CURRENT_LIST_DIR}/history.cpp
    ${CMAKE_CURRENT_LIST_DIR}/metrics.cpp)
