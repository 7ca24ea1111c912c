# engine/failover: the failover controller, a pure state machine (no I/O, no clock).
set(HASYNC_FAILOVER_SOURCES ${CMAKE_CURRENT_LIST_DIR}/controller.cpp)
