// UniqueFd: the move-only owner of one file descriptor.
//
// Contract: copy is deleted, a move leaves the source empty (-1), the destructor closes.
// close() errors are ignored on purpose: every file whose contents matter is fsynced
// before it is closed, and after fsync a close error carries no information about the
// data (Linux always releases the descriptor). base/ has no fd owner yet; this one lives
// here until the lead promotes it.
#pragma once

#include <unistd.h>

#include <utility>

namespace hasync::engine::apply {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) Reset(std::exchange(other.fd_, -1));
    return *this;
  }
  ~UniqueFd() { Reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Gives up ownership without closing.
  int Release() { return std::exchange(fd_, -1); }
  // Closes the held descriptor (if any) and takes `fd`.
  void Reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace hasync::engine::apply
