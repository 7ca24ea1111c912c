# engine/watch: the primary's fanotify watcher. Included by engine/CMakeLists.txt.
set(HASYNC_WATCH_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/event_parser.cpp
  ${CMAKE_CURRENT_LIST_DIR}/debouncer.cpp
  ${CMAKE_CURRENT_LIST_DIR}/handle_cache.cpp
  ${CMAKE_CURRENT_LIST_DIR}/translator.cpp
  ${CMAKE_CURRENT_LIST_DIR}/watcher.cpp
  ${CMAKE_CURRENT_LIST_DIR}/internal/fs_resolver.cpp
)
