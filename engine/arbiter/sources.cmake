# engine/arbiter: the etcd v3 client the arbiter speaks through (docs/FAILOVER.md "The arbiter").
set(HASYNC_ARBITER_SOURCES ${CMAKE_CURRENT_LIST_DIR}/etcd_client.cpp ${CMAKE_CURRENT_LIST_DIR}/arbiter.cpp)
