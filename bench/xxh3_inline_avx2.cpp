// XXH3 compiled inline in a unit built with -mavx2 (bench/CMakeLists.txt sets the flag on
// this file only). Nothing here may be called unless the CPU has AVX2: xxh3_bench.cpp
// registers this build only after __builtin_cpu_supports("avx2"). The unit includes no
// C++ library header, so it defines no inline function the linker could share with
// callers built for the baseline CPU.
#define XXH_INLINE_ALL
#include <xxhash.h>

#if XXH_VECTOR != XXH_AVX2
#error "xxHash did not select its AVX2 code: is -mavx2 set on this file?"
#endif

#include "bench/xxh3_builds.h"

#define HASYNC_XXH3_BUILD kXxh3InlineAvx2
#define HASYNC_XXH3_LABEL "inline_avx2"
#include "bench/xxh3_build_body.inc"
