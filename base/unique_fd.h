// UniqueFd: the move-only owner of one file descriptor.
//
// Contract: copy is deleted; a move leaves the source empty (-1); the destructor closes
// what it owns. release() hands the fd out without closing it. close(2) errors are
// ignored here because after close the fd is gone either way; code that must know
// whether written data reached the disk calls fsync first and checks that.
// (wire/ and lockwin/ never include this: they make no syscalls.)
#pragma once

#include <unistd.h>

#include <utility>

namespace hasync {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(std::exchange(other.fd_, -1));
    return *this;
  }
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  explicit operator bool() const { return valid(); }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace hasync
