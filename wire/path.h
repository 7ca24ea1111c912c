// Validation of paths and names that arrive from the peer.
//
// Contract: a path that passes ValidatePath is relative to the replicated root and
// cannot name anything outside it by its spelling alone: no leading or trailing '/', no
// empty, "." or ".." component, no NUL, every component <= kNameMax bytes and the whole
// <= kPathMax bytes. Any other byte is allowed (spaces, UTF-8, control characters,
// leading dots): Linux file names are bytes, and the scheduler may use any of them.
// Symlinks inside the root are a separate danger; the applier handles them with
// openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), not here.
//
// The decoder runs these checks on every path, target and name it decodes, so no
// unchecked string ever leaves wire/.
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"

namespace hasync::wire {

// A relative path inside the replicated root (see the contract above).
Status ValidatePath(std::string_view path);

// A symlink target, stored literally: it may be absolute or contain "..", since it is
// never resolved by hasync. 1..kSymlinkTargetMax bytes, no NUL.
Status ValidateSymlinkTarget(std::string_view target);

// An extended attribute name: 1..kXattrNameMax bytes, no NUL. Which namespaces may be
// set is the applier's allowlist, not a wire rule.
Status ValidateXattrName(std::string_view name);

// Up to `max_bytes` of `bytes` with non-printable bytes as \xNN, for error messages that
// quote hostile input without passing it through raw.
std::string Printable(std::string_view bytes, size_t max_bytes = 64);

}  // namespace hasync::wire
