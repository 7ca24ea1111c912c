// FsResolver: the real DirResolver. Directory handles become paths through
// open_by_handle_at(mount_fd, handle, O_PATH) and readlink of /proc/self/fd/N; paths
// become handles through name_to_handle_at. Needs CAP_DAC_READ_SEARCH (root).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "base/unique_fd.h"
#include "engine/watch/translator.h"

namespace hasync::engine::watch::internal {

class FsResolver final : public DirResolver {
 public:
  // `mount_fd` is an fd on the filesystem `fsid` (a root opened O_RDONLY; not O_PATH,
  // which open_by_handle_at refuses).
  void AddMount(uint64_t fsid, UniqueFd mount_fd);
  bool HasMount(uint64_t fsid) const;

  Result<std::string> PathOf(std::string_view key) override;
  Result<std::string> KeyOf(uint64_t fsid, const std::string& abs_path) override;
  Status ListDirs(uint64_t fsid, const std::string& abs_root, size_t max,
                  std::vector<std::pair<std::string, std::string>>* out) override;

 private:
  std::vector<std::pair<uint64_t, UniqueFd>> mounts_;
};

}  // namespace hasync::engine::watch::internal
