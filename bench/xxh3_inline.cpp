// XXH3 compiled into the caller (XXH_INLINE_ALL) with the project's target flags: what
// base/hash.h did on every architecture before it moved to libxxhash's dispatch entry
// points on x86-64, and still does elsewhere.
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "bench/xxh3_builds.h"

#define HASYNC_XXH3_BUILD kXxh3Inline
#define HASYNC_XXH3_LABEL "inline"
#include "bench/xxh3_build_body.inc"
