# The standby's apply layer (engine/apply): the lead include()s this into the engine
# library. Paths are absolute so the file works from any CMakeLists.txt.
set(HASYNC_APPLY_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/fs_ops.cpp
  ${CMAKE_CURRENT_LIST_DIR}/inplace.cpp
  ${CMAKE_CURRENT_LIST_DIR}/policy.cpp
  ${CMAKE_CURRENT_LIST_DIR}/quarantine.cpp
  ${CMAKE_CURRENT_LIST_DIR}/resolve.cpp
  ${CMAKE_CURRENT_LIST_DIR}/tree.cpp
  ${CMAKE_CURRENT_LIST_DIR}/uring_sync.cpp
)
# Links: hasync::base, hasync::iouring (uring_sync.cpp), fmt::fmt (messages).
