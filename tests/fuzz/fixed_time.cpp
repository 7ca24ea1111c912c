// Pins time() for the handshake fuzz target and its corpus generator: mbedTLS 2.28
// writes time(NULL) into the first four bytes of the ServerHello random, so without this
// a TLS transcript recorded today would no longer verify tomorrow (its Finished MACs
// cover that random). The executable's definition takes precedence over libc's for
// libmbedtls as well. Nothing else in these binaries reads the wall clock with time().
#include <ctime>

#include "tests/fuzz/handshake_input.h"

extern "C" time_t time(time_t* out) {
  time_t t = static_cast<time_t>(hasync::fuzz::kFixedTime);
  if (out != nullptr) *out = t;
  return t;
}
