# engine/net: the authenticated, framed connection and the random generator.
set(HASYNC_NET_SOURCES ${CMAKE_CURRENT_LIST_DIR}/connection.cpp
    ${CMAKE_CURRENT_LIST_DIR}/data_stream.cpp ${CMAKE_CURRENT_LIST_DIR}/rng.cpp)
