// engine/failover/controller.cpp as the simulator builds it: the same source, with its
// HASYNC_ASSERT (a transition missing from the table) recorded for the simulator to report
// as a failed invariant with the seed and trace, instead of aborting the whole test binary.
// base/assert.h is included first (#pragma once), so the controller's own include of it
// keeps this definition.
#include "base/assert.h"
#include "tests/sim/controller_assert.h"

#undef HASYNC_ASSERT
#define HASYNC_ASSERT(cond)                                                \
  do {                                                                     \
    if (__builtin_expect(!(cond), 0)) {                                    \
      ::hasync::sim::ControllerAssertFailed(#cond, __FILE__, __LINE__);    \
    }                                                                      \
  } while (0)

#include "engine/failover/controller.cpp"  // NOLINT(bugprone-suspicious-include)
