// Which sanitizer instruments this test binary, for GCC and clang alike: GCC defines
// __SANITIZE_ADDRESS__ / __SANITIZE_THREAD__, clang answers __has_feature. Tests use it
// only to scale bounds that the instrumentation changes (memory, iterations), never to
// skip a check.
#pragma once

#if defined(__SANITIZE_ADDRESS__)
#define HASYNC_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HASYNC_TEST_ASAN 1
#endif
#endif

#if defined(__SANITIZE_THREAD__)
#define HASYNC_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define HASYNC_TEST_TSAN 1
#endif
#endif
