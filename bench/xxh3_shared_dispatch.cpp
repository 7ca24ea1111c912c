// XXH3 from Debian's shared libxxhash through its x86 dispatch entry points.
// xxh_x86dispatch.h renames XXH3_64bits, XXH3_128bits and the update functions to their
// *_dispatch versions, which choose scalar, SSE2, AVX2 or AVX-512 code on the first call
// from what the CPU reports. The calls below read as in the other builds; only the header
// differs.
#define XXH_STATIC_LINKING_ONLY
#include <xxh_x86dispatch.h>

#include "bench/xxh3_builds.h"

#define HASYNC_XXH3_BUILD kXxh3SharedDispatch
#define HASYNC_XXH3_LABEL "shared_dispatch"
#include "bench/xxh3_build_body.inc"
