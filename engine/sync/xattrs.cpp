// Replicated xattrs; see xattrs.h for what is read and how it is hashed.
#include "engine/sync/xattrs.h"

#include <sys/xattr.h>

#include <algorithm>
#include <cerrno>

#include "base/hash.h"
#include "engine/apply/policy.h"
#include "wire/limits.h"

namespace hasync::engine {

namespace {
constexpr size_t kXattrListMax = 64 * 1024;  // flistxattr's buffer grows up to this
}  // namespace

Result<XattrSet> ReadXattrs(int fd) {
  XattrSet set;
  std::vector<char> list(4096);
  ssize_t n = 0;
  for (;;) {
    n = flistxattr(fd, list.data(), list.size());
    if (n >= 0) break;
    if (errno == ERANGE && list.size() < kXattrListMax) {
      list.resize(list.size() * 4);
      continue;
    }
    if (errno == ENOTSUP) return set;
    return ErrnoStatus(errno, "flistxattr");
  }
  for (ssize_t i = 0; i < n;) {
    std::string name(&list[static_cast<size_t>(i)]);
    i += static_cast<ssize_t>(name.size()) + 1;
    // Only what the standby's policy accepts (engine/apply/policy.h); anything else
    // would make every batch carrying it fail there.
    if (apply::CheckXattrName(name, false).ok()) set.names.push_back(std::move(name));
  }
  std::sort(set.names.begin(), set.names.end());
  XXH3_state_t st;
  XXH3_64bits_reset(&st);
  for (const std::string& name : set.names) {
    std::vector<std::byte> value(wire::kXattrValueMax);
    ssize_t len = fgetxattr(fd, name.c_str(), value.data(), value.size());
    if (len < 0) {
      if (errno == ENODATA) continue;
      return ErrnoStatus(errno, "fgetxattr " + name);
    }
    value.resize(static_cast<size_t>(len));
    XXH3_64bits_update(&st, name.data(), name.size() + 1);
    uint64_t vlen = value.size();
    XXH3_64bits_update(&st, &vlen, sizeof vlen);
    XXH3_64bits_update(&st, value.data(), value.size());
    set.values.push_back(std::move(value));
  }
  set.names.resize(set.values.size());
  set.hash = set.names.empty() ? 0 : XXH3_64bits_digest(&st);
  if (set.hash == 0 && !set.names.empty()) set.hash = 1;
  return set;
}

std::string JoinXattrNames(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& name : names) {
    if (out.size() + name.size() + 1 > wire::kManifestXattrNamesMax) return std::string();
    out += name;
    out += '\0';
  }
  return out;
}

std::vector<std::string> SplitXattrNames(std::string_view joined) {
  std::vector<std::string> names;
  while (!joined.empty()) {
    size_t nul = joined.find('\0');
    if (nul == std::string_view::npos) nul = joined.size();
    names.emplace_back(joined.substr(0, nul));
    joined.remove_prefix(std::min(joined.size(), nul + 1));
  }
  return names;
}

}  // namespace hasync::engine
