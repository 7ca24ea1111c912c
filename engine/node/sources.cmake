# engine/node: persisted node state and the `hasync run` event loop. node.cpp wires the
# parts; docs/ARCHITECTURE.md "The node's parts" says what each file owns.
set(HASYNC_NODE_SOURCES ${CMAKE_CURRENT_LIST_DIR}/state.cpp ${CMAKE_CURRENT_LIST_DIR}/node.cpp
    ${CMAKE_CURRENT_LIST_DIR}/peer_link.cpp
    ${CMAKE_CURRENT_LIST_DIR}/lock_records.cpp
    ${CMAKE_CURRENT_LIST_DIR}/failover_driver.cpp
    ${CMAKE_CURRENT_LIST_DIR}/arbiter_worker.cpp
    ${CMAKE_CURRENT_LIST_DIR}/session_out.cpp
    ${CMAKE_CURRENT_LIST_DIR}/primary_role.cpp
    ${CMAKE_CURRENT_LIST_DIR}/standby_role.cpp
    ${CMAKE_CURRENT_LIST_DIR}/session_gate.cpp
    ${CMAKE_CURRENT_LIST_DIR}/startup.cpp
    ${CMAKE_CURRENT_LIST_DIR}/stream_pool.cpp
    ${CMAKE_CURRENT_LIST_DIR}/verify_runner.cpp
    ${CMAKE_CURRENT_LIST_DIR}/control_server.cpp
    ${CMAKE_CURRENT_LIST_DIR}/node_report.cpp
    ${CMAKE_CURRENT_LIST_DIR}/node_status.cpp
    ${CMAKE_CURRENT_LIST_DIR}/watch_feed.cpp
    ${CMAKE_CURRENT_LIST_DIR}/hooks.cpp
    ${CMAKE_CURRENT_LIST_DIR}/control.cpp
    ${CMAKE_CURRENT_LIST_DIR}/service.cpp
    ${CMAKE_CURRENT_LIST_DIR}/history.cpp
    ${CMAKE_CURRENT_LIST_DIR}/heap_trim.cpp
    ${CMAKE_CURRENT_LIST_DIR}/metrics.cpp)
