// XXH3 from Debian's shared libxxhash, through the ordinary (non-dispatching) entry
// points. XXH_STATIC_LINKING_ONLY exposes XXH3_state_t so the state can live on the
// stack, as it does in the engine.
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "bench/xxh3_builds.h"

#define HASYNC_XXH3_BUILD kXxh3Shared
#define HASYNC_XXH3_LABEL "shared"
#include "bench/xxh3_build_body.inc"
