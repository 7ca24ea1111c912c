// The replicated extended attributes of one file or directory, read the same way by the
// primary's Sender (what to ship) and by both nodes' manifests (what each holds), so a
// hash from one side can be compared with a hash from the other.
//
// Only names the standby's policy accepts are read (engine/apply/policy.h,
// CheckXattrName: the user.* namespace and what it allows); the rest of a file's
// attributes are neither shipped nor compared.
// Hash: XXH3-64 over the names in ascending byte order, each as name, NUL, u64 value
// length (host order), value; 0 means "no replicated xattrs" (a real 0 becomes 1).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"

namespace hasync::engine {

struct XattrSet {
  std::vector<std::string> names;  // sorted, allowed namespaces only
  std::vector<std::vector<std::byte>> values;
  uint64_t hash = 0;
};

// Reads the replicated xattrs of an open file or directory. A filesystem without xattr
// support yields an empty set.
Result<XattrSet> ReadXattrs(int fd);

// The names as MANIFEST_ENTRIES carries them: each followed by NUL. Empty when they
// would not fit kManifestXattrNamesMax (the hash still travels; docs/PROTOCOL.md).
std::string JoinXattrNames(const std::vector<std::string>& names);
// The inverse; the wire layer has checked the format.
std::vector<std::string> SplitXattrNames(std::string_view joined);

}  // namespace hasync::engine
