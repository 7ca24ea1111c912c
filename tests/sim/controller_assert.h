// The controller's assertions under the simulator (controller_under_sim.cpp): recorded per
// thread, read and cleared by the simulator after every Step.
#pragma once

#include <string>

namespace hasync::sim {

void ControllerAssertFailed(const char* cond, const char* file, int line);
// The first assertion since the last call, or "" if none.
std::string TakeControllerAssertion();

}  // namespace hasync::sim
