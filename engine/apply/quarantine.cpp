// Quarantine of divergent files on rejoin; see quarantine.h for the layout and contract.
#include "engine/apply/quarantine.h"

#include <fcntl.h>
#include <linux/limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <cerrno>
#include <vector>

#include "engine/apply/policy.h"
#include "engine/apply/resolve.h"

namespace hasync::engine::apply {
namespace {

// mkdirat + confined open of one component; EEXIST is fine (an earlier quarantine).
// *created tells the caller the parent's entries changed.
Result<UniqueFd> MakeDir(int parent_fd, std::string_view name, std::string_view what,
                         bool* created) {
  std::string n(name);
  *created = false;
  if (::mkdirat(parent_fd, n.c_str(), 0700) == 0) {
    *created = true;
  } else if (errno != EEXIST) {
    return ErrnoStatus(errno, fmt::format("mkdir quarantine {}", what));
  }
  return OpenBeneath(parent_fd, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW,
                     fmt::format("quarantine {}", what));
}

}  // namespace

Result<Quarantine> Quarantine::Open(std::string_view state_dir, FsOps* fs) {
  if (state_dir.empty() || state_dir.front() != '/') {
    return InvalidArgument(fmt::format("state dir \"{}\" is not an absolute path", state_dir));
  }
  std::string path(state_dir);
  int raw = ::open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (raw < 0) return ErrnoStatus(errno, fmt::format("open state dir {}", path));
  UniqueFd state(raw);
  bool created = false;
  ASSIGN_OR_RETURN(UniqueFd dir, MakeDir(state.get(), kQuarantineDir, path, &created));
  FsOps* ops = fs != nullptr ? fs : &DefaultFsOps();
  if (created) {
    ASSIGN_OR_RETURN(UniqueFd state_rd,
                     OpenBeneath(state.get(), "", O_RDONLY | O_DIRECTORY, "state dir"));
    if (int err = ops->Fsync(state_rd.get()); err != 0) {
      return ErrnoStatus(err, fmt::format("fsync state dir {}", path));
    }
  }
  return Quarantine(std::move(dir), ops);
}

Status Quarantine::SyncDir(int fd, std::string_view what) {
  if (int err = fs_->Fsync(fd); err != 0) return ErrnoStatus(err, fmt::format("fsync {}", what));
  return Status::Ok();
}

Result<std::string> Quarantine::Keep(const Tree& tree, std::string_view path, uint64_t epoch) {
  ASSIGN_OR_RETURN(Parent src, OpenParent(tree.root_fd(), path));
  struct stat st {};
  if (::fstatat(src.fd.get(), src.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return ErrnoStatus(errno, fmt::format("quarantine {}", path));
  }
  RETURN_IF_ERROR(CheckFileType(st.st_mode, path));

  // quarantine/<epoch>/<dirs of path>/, created as needed. Directories whose entries
  // changed are fsynced at the end.
  std::vector<UniqueFd> changed;
  std::string epoch_name = fmt::format("{}", epoch);
  bool created = false;
  ASSIGN_OR_RETURN(UniqueFd dest, MakeDir(dir_.get(), epoch_name, epoch_name, &created));
  if (created) changed.emplace_back(::fcntl(dir_.get(), F_DUPFD_CLOEXEC, 0));
  std::string_view rest = SplitPath(path).dir;
  // One pass per directory component of a path shorter than PATH_MAX.
  for (size_t i = 0; !rest.empty() && i < PATH_MAX; ++i) {
    size_t slash = rest.find('/');
    std::string_view comp = rest.substr(0, slash);
    rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
    ASSIGN_OR_RETURN(UniqueFd next, MakeDir(dest.get(), comp, path, &created));
    if (created) changed.push_back(std::move(dest));
    dest = std::move(next);
  }

  // A file with other links keeps them: renamed, the quarantined name would share its
  // inode with a live name, and the next change through that name would change the
  // kept copy too. Such a file is copied, like one on another filesystem.
  const bool must_copy = S_ISREG(st.st_mode) && st.st_nlink > 1;
  std::string chosen;
  bool copied = false;
  for (int suffix = 0; suffix <= kMaxQuarantineSuffix && chosen.empty(); ++suffix) {
    std::string name = suffix == 0 ? src.name : fmt::format("{}.{}", src.name, suffix);
    if (!must_copy) {
      if (::renameat2(src.fd.get(), src.name.c_str(), dest.get(), name.c_str(), RENAME_NOREPLACE) ==
          0) {
        chosen = std::move(name);
        break;
      }
      if (errno == EEXIST) continue;
      if (errno != EXDEV) return ErrnoStatus(errno, fmt::format("quarantine {} (rename)", path));
    }
    // Another filesystem (or other links): copy, make the copy durable, then remove
    // the original name.
    if (S_ISDIR(st.st_mode)) {
      return Unimplemented(fmt::format(
          "quarantine {}: a directory cannot be moved to a state dir on another filesystem", path));
    }
    if (S_ISLNK(st.st_mode)) {
      std::vector<char> target(static_cast<size_t>(PATH_MAX) + 1);
      ssize_t n = ::readlinkat(src.fd.get(), src.name.c_str(), target.data(), PATH_MAX);
      if (n < 0) return ErrnoStatus(errno, fmt::format("readlink {}", path));
      target[static_cast<size_t>(n)] = '\0';
      if (::symlinkat(target.data(), dest.get(), name.c_str()) != 0) {
        if (errno == EEXIST) continue;
        return ErrnoStatus(errno, fmt::format("quarantine copy of symlink {}", path));
      }
    } else {
      ASSIGN_OR_RETURN(UniqueFd in,
                       OpenBeneath(src.fd.get(), src.name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK,
                                   fmt::format("quarantine source {}", path)));
      int raw = ::openat(dest.get(), name.c_str(),
                         O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (raw < 0) {
        if (errno == EEXIST) continue;
        return ErrnoStatus(errno, fmt::format("quarantine copy of {}", path));
      }
      UniqueFd out(raw);
      uint64_t bytes = 0;
      Status s =
          CopySparse(*fs_, in.get(), out.get(), static_cast<uint64_t>(st.st_size), path, &bytes);
      if (s.ok() && ::fchown(out.get(), st.st_uid, st.st_gid) != 0 && errno != EPERM) {
        s = ErrnoStatus(errno, fmt::format("fchown quarantine copy of {}", path));
      }
      if (s.ok() && ::fchmod(out.get(), st.st_mode & 07777) != 0) {
        s = ErrnoStatus(errno, fmt::format("fchmod quarantine copy of {}", path));
      }
      timespec ts[2] = {st.st_atim, st.st_mtim};
      if (s.ok() && ::futimens(out.get(), ts) != 0) {
        s = ErrnoStatus(errno, fmt::format("futimens quarantine copy of {}", path));
      }
      if (s.ok()) {
        if (int err = fs_->Fsync(out.get()); err != 0) {
          s = ErrnoStatus(err, fmt::format("fsync quarantine copy of {}", path));
        }
      }
      if (!s.ok()) {
        ::unlinkat(dest.get(), name.c_str(), 0);  // the original is untouched
        return s;
      }
    }
    RETURN_IF_ERROR(SyncDir(dest.get(), "quarantine directory"));
    if (::unlinkat(src.fd.get(), src.name.c_str(), 0) != 0) {
      return ErrnoStatus(errno, fmt::format("unlink {} after quarantine copy", path));
    }
    chosen = std::move(name);
    copied = true;
  }
  if (chosen.empty()) {
    return Status(Code::kResourceExhausted,
                  fmt::format("quarantine {}: {} copies already kept in epoch {}", path,
                              kMaxQuarantineSuffix, epoch));
  }
  if (!copied) RETURN_IF_ERROR(SyncDir(dest.get(), "quarantine directory"));
  for (const UniqueFd& fd : changed) RETURN_IF_ERROR(SyncDir(fd.get(), "quarantine directory"));
  RETURN_IF_ERROR(SyncDir(src.fd.get(), fmt::format("parent of {}", path)));
  ++count_;
  std::string_view dir = SplitPath(path).dir;
  return dir.empty() ? fmt::format("{}/{}/{}", kQuarantineDir, epoch, chosen)
                     : fmt::format("{}/{}/{}/{}", kQuarantineDir, epoch, dir, chosen);
}

}  // namespace hasync::engine::apply
