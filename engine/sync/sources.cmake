# engine/sync: the primary's Sender and the standby's Receiver.
set(HASYNC_SYNC_SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/sender.cpp ${CMAKE_CURRENT_LIST_DIR}/sender_content.cpp
    ${CMAKE_CURRENT_LIST_DIR}/model.cpp ${CMAKE_CURRENT_LIST_DIR}/slot_pool.cpp
    ${CMAKE_CURRENT_LIST_DIR}/file_reader.cpp
    ${CMAKE_CURRENT_LIST_DIR}/receiver.cpp ${CMAKE_CURRENT_LIST_DIR}/verify.cpp
    ${CMAKE_CURRENT_LIST_DIR}/xattrs.cpp ${CMAKE_CURRENT_LIST_DIR}/committer.cpp)
