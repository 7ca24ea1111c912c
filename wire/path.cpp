// Path, symlink target and xattr name validation (see wire/path.h for the contract).
#include "wire/path.h"

#include <cstdio>

#include "wire/limits.h"

namespace hasync::wire {

std::string Printable(std::string_view bytes, size_t max_bytes) {
  std::string out;
  size_t n = bytes.size() < max_bytes ? bytes.size() : max_bytes;
  out.reserve(n + 8);
  for (size_t i = 0; i < n; ++i) {
    auto c = static_cast<unsigned char>(bytes[i]);
    if (c >= 0x20 && c < 0x7F && c != '\\' && c != '\'') {
      out.push_back(static_cast<char>(c));
    } else {
      char hex[5];
      std::snprintf(hex, sizeof(hex), "\\x%02x", c);
      out += hex;
    }
  }
  if (bytes.size() > n) out += "...";
  return out;
}

Status ValidatePath(std::string_view path) {
  if (path.empty()) return InvalidArgument("path is empty");
  if (path.size() > kPathMax) {
    return OutOfRange("path length " + std::to_string(path.size()) + " > kPathMax " +
                      std::to_string(kPathMax));
  }
  if (path.front() == '/') return InvalidArgument("path '" + Printable(path) + "' is absolute");
  if (path.back() == '/') {
    return InvalidArgument("path '" + Printable(path) + "' ends with '/'");
  }
  // One pass: each component is [start, i) when a '/' or the end is reached.
  size_t start = 0;
  for (size_t i = 0; i <= path.size(); ++i) {
    if (i < path.size()) {
      char c = path[i];
      if (c == '\0') {
        return InvalidArgument("path '" + Printable(path) + "' contains NUL at byte " +
                               std::to_string(i));
      }
      if (c != '/') continue;
    }
    size_t len = i - start;
    if (len == 0) {
      return InvalidArgument("path '" + Printable(path) + "' has an empty component at byte " +
                             std::to_string(start));
    }
    if (len > kNameMax) {
      return OutOfRange("path component at byte " + std::to_string(start) + " has length " +
                        std::to_string(len) + " > kNameMax " + std::to_string(kNameMax));
    }
    if (path[start] == '.' && (len == 1 || (len == 2 && path[start + 1] == '.'))) {
      return InvalidArgument("path '" + Printable(path) + "' has a '" +
                             std::string(path.substr(start, len)) + "' component");
    }
    start = i + 1;
  }
  return Status::Ok();
}

Status ValidateSymlinkTarget(std::string_view target) {
  if (target.empty()) return InvalidArgument("symlink target is empty");
  if (target.size() > kSymlinkTargetMax) {
    return OutOfRange("symlink target length " + std::to_string(target.size()) +
                      " > kSymlinkTargetMax " + std::to_string(kSymlinkTargetMax));
  }
  if (size_t nul = target.find('\0'); nul != std::string_view::npos) {
    return InvalidArgument("symlink target contains NUL at byte " + std::to_string(nul));
  }
  return Status::Ok();
}

Status ValidateXattrName(std::string_view name) {
  if (name.empty()) return InvalidArgument("xattr name is empty");
  if (name.size() > kXattrNameMax) {
    return OutOfRange("xattr name length " + std::to_string(name.size()) + " > kXattrNameMax " +
                      std::to_string(kXattrNameMax));
  }
  if (size_t nul = name.find('\0'); nul != std::string_view::npos) {
    return InvalidArgument("xattr name contains NUL at byte " + std::to_string(nul));
  }
  return Status::Ok();
}

}  // namespace hasync::wire
