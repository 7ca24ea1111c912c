// In-place block patches under an undo record. See inplace.h for the contract and
// docs/APPLY.md ("In-place patching") for why a crash at any point leaves the old or the
// new content.
#include "engine/apply/inplace.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <fmt/format.h>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <set>

#include "engine/apply/policy.h"
#include "engine/apply/resolve.h"

namespace hasync::engine::apply {
namespace {

constexpr char kMagic[8] = {'H', 'A', 'S', 'Y', 'N', 'C', 'U', '1'};
constexpr char kEndMagic[8] = {'H', 'A', 'S', 'Y', 'N', 'C', 'U', 'E'};
constexpr uint32_t kVersion = 1;
constexpr size_t kIoChunk = size_t{1} << 20;

bool CloneUnsupportedErr(int err) {
  return err == EOPNOTSUPP || err == EXDEV || err == EINVAL || err == ENOTTY || err == ENOSYS ||
         err == EBADF;
}

// ---- encoding (host byte order: a record never leaves the host that wrote it) ----------

class Writer {
 public:
  template <typename T>
  void Put(T v) {
    const auto* p = reinterpret_cast<const std::byte*>(&v);
    out_.insert(out_.end(), p, p + sizeof(T));
  }
  void Bytes(const void* data, size_t n) {
    const auto* p = static_cast<const std::byte*>(data);
    out_.insert(out_.end(), p, p + n);
  }
  void Str(std::string_view s) {
    Put(static_cast<uint32_t>(s.size()));
    Bytes(s.data(), s.size());
  }
  std::vector<std::byte>& out() { return out_; }

 private:
  std::vector<std::byte> out_;
};

class Reader {
 public:
  explicit Reader(std::span<const std::byte> in) : in_(in) {}
  template <typename T>
  bool Get(T* v) {
    if (in_.size() - pos_ < sizeof(T)) return false;
    std::memcpy(v, in_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  bool Take(size_t n, std::span<const std::byte>* out) {
    if (in_.size() - pos_ < n) return false;
    *out = in_.subspan(pos_, n);
    pos_ += n;
    return true;
  }
  bool Str(std::string* s, size_t max) {
    uint32_t n = 0;
    std::span<const std::byte> b;
    if (!Get(&n) || n > max || !Take(n, &b)) return false;
    s->assign(reinterpret_cast<const char*>(b.data()), b.size());
    return true;
  }
  bool done() const { return pos_ == in_.size(); }

 private:
  std::span<const std::byte> in_;
  size_t pos_ = 0;
};

// Reads exactly [offset, offset + n) of fd into out.
Status ReadExact(int fd, uint64_t offset, std::byte* out, size_t n, std::string_view what) {
  size_t done = 0;
  // Each pass reads at least one byte or returns.
  while (done < n) {
    ssize_t got = ::pread(fd, out + done, n - done, static_cast<off_t>(offset + done));
    if (got < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, fmt::format("read {} at {}", what, offset + done));
    }
    if (got == 0) {
      return DataLoss(fmt::format("{} ends at {} before {}", what, offset + done, offset + n));
    }
    done += static_cast<size_t>(got);
  }
  return Status::Ok();
}

// The names of fd's xattrs that the policy lets hasync manage.
Result<std::vector<std::string>> AllowedXattrNames(int fd, bool allow_privileged,
                                                   std::string_view path) {
  std::vector<char> list(4096);
  ssize_t n = -1;
  // The list can grow between the two calls: a few attempts, then the error.
  for (int attempt = 0; attempt < 4; ++attempt) {
    n = ::flistxattr(fd, list.data(), list.size());
    if (n >= 0) break;
    if (errno == ENOTSUP) return std::vector<std::string>{};
    if (errno != ERANGE) return ErrnoStatus(errno, fmt::format("flistxattr {}", path));
    ssize_t need = ::flistxattr(fd, nullptr, 0);
    if (need < 0) return ErrnoStatus(errno, fmt::format("flistxattr {}", path));
    list.resize(static_cast<size_t>(need) + 256);
  }
  if (n < 0) return ErrnoStatus(ERANGE, fmt::format("flistxattr {}", path));
  std::vector<std::string> names;
  for (size_t i = 0; i < static_cast<size_t>(n);) {
    std::string name(list.data() + i);
    i += name.size() + 1;
    if (!name.empty() && CheckXattrName(name, allow_privileged).ok()) names.push_back(name);
  }
  return names;
}

// Makes fd's allowed xattrs exactly `want`: removes the others, sets these.
Status ReplaceXattrs(int fd, const std::vector<Xattr>& want, bool allow_privileged,
                     std::string_view path, bool set_values) {
  ASSIGN_OR_RETURN(std::vector<std::string> have, AllowedXattrNames(fd, allow_privileged, path));
  for (const std::string& name : have) {
    bool kept = std::any_of(want.begin(), want.end(), [&](const Xattr& x) { return x.name == name; });
    if (!kept && ::fremovexattr(fd, name.c_str()) != 0 && errno != ENODATA) {
      return ErrnoStatus(errno, fmt::format("fremovexattr {} on {}", name, path));
    }
  }
  if (!set_values) return Status::Ok();
  for (const Xattr& x : want) {
    if (::fsetxattr(fd, x.name.c_str(), x.value.data(), x.value.size(), 0) != 0) {
      return ErrnoStatus(errno, fmt::format("fsetxattr {} on {}", x.name, path));
    }
  }
  return Status::Ok();
}

Status CheckMetaXattrs(const std::vector<Xattr>& xattrs, bool allow_privileged,
                       std::string_view path) {
  if (xattrs.size() > kMaxXattrsPerFile) {
    return OutOfRange(fmt::format("{}: {} xattrs > kMaxXattrsPerFile {}", path, xattrs.size(),
                                  kMaxXattrsPerFile));
  }
  for (const Xattr& x : xattrs) {
    RETURN_IF_ERROR(CheckXattrName(x.name, allow_privileged).Annotate(path));
    if (x.value.size() > kMaxXattrValueBytes) {
      return OutOfRange(fmt::format("{}: xattr {} value of {} bytes > kMaxXattrValueBytes {}", path,
                                    x.name, x.value.size(), kMaxXattrValueBytes));
    }
  }
  return Status::Ok();
}

Status FsyncDir(FsOps& fs, int fd, std::string_view what) {
  int err = fs.Fsync(fd);
  if (err != 0) return ErrnoStatus(err, fmt::format("fsync {}", what));
  return Status::Ok();
}

Status MkdirDurable(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) == 0) {
    std::string parent = path.substr(0, path.rfind('/'));
    if (parent.empty()) parent = "/";
    int pfd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (pfd < 0) return ErrnoStatus(errno, fmt::format("open {}", parent));
    UniqueFd p(pfd);
    if (::fsync(p.get()) != 0) return ErrnoStatus(errno, fmt::format("fsync {}", parent));
    return Status::Ok();
  }
  if (errno == EEXIST) return Status::Ok();
  return ErrnoStatus(errno, fmt::format("mkdir {}", path));
}

}  // namespace

// ---- InPlacePatch -----------------------------------------------------------------------

void InPlacePatch::Put(uint64_t offset, std::span<const std::byte> data) {
  if (data.empty()) return;
  const uint64_t end = offset + data.size();
  // Trim or split every extent that overlaps [offset, end); the new bytes win.
  auto it = extents_.lower_bound(offset);
  if (it != extents_.begin()) {
    auto prev = std::prev(it);
    if (prev->first + prev->second.size() > offset) it = prev;
  }
  std::vector<std::pair<uint64_t, std::vector<std::byte>>> keep;
  // Each pass erases one extent; the loop ends at the first one starting past `end`.
  while (it != extents_.end() && it->first < end) {
    const uint64_t e_begin = it->first;
    const std::vector<std::byte>& bytes = it->second;
    const uint64_t e_end = e_begin + bytes.size();
    if (e_begin < offset) {
      keep.emplace_back(e_begin, std::vector<std::byte>(bytes.begin(),
                                                        bytes.begin() + static_cast<ptrdiff_t>(offset - e_begin)));
    }
    if (e_end > end) {
      keep.emplace_back(end, std::vector<std::byte>(bytes.begin() + static_cast<ptrdiff_t>(end - e_begin),
                                                    bytes.end()));
    }
    buffered_ -= bytes.size();
    it = extents_.erase(it);
  }
  for (auto& [off, bytes] : keep) {
    buffered_ += bytes.size();
    extents_.emplace(off, std::move(bytes));
  }
  buffered_ += data.size();
  extents_.emplace(offset, std::vector<std::byte>(data.begin(), data.end()));
}

uint64_t InPlacePatch::UndoBytes(uint64_t final_size) const {
  uint64_t n = 0;
  for (const auto& [off, bytes] : extents_) {
    if (off >= old_size_) break;
    n += std::min<uint64_t>(off + bytes.size(), old_size_) - off;
  }
  if (final_size < old_size_) n += old_size_ - final_size;
  return n;
}

Result<Hash128> InPlacePatch::HashResult(uint64_t final_size, std::vector<std::byte>& buf) const {
  buf.resize(kIoChunk);
  XXH3_state_t state;
  XXH3_128bits_reset(&state);
  uint64_t pos = 0;
  auto next = extents_.begin();
  // Each pass hashes at least one byte (an extent's bytes, the live file's or zeros).
  while (pos < final_size) {
    if (next != extents_.end() && next->first <= pos) {
      const uint64_t end = std::min<uint64_t>(next->first + next->second.size(), final_size);
      if (end > pos) {
        XXH3_128bits_update(&state, next->second.data() + (pos - next->first), end - pos);
        pos = end;
      }
      ++next;
      continue;
    }
    uint64_t until = next != extents_.end() ? std::min(next->first, final_size) : final_size;
    size_t n = static_cast<size_t>(std::min<uint64_t>(until - pos, buf.size()));
    if (pos >= old_size_) {
      std::fill(buf.begin(), buf.begin() + static_cast<ptrdiff_t>(n), std::byte{0});
    } else {
      n = static_cast<size_t>(std::min<uint64_t>(n, old_size_ - pos));
      RETURN_IF_ERROR(ReadExact(fd_.get(), pos, buf.data(), n, path_));
    }
    XXH3_128bits_update(&state, buf.data(), n);
    pos += n;
  }
  XXH128_hash_t h = XXH3_128bits_digest(&state);
  return Hash128{h.low64, h.high64};
}

Status InPlacePatch::WriteExtents(FsOps& fs, int dst_fd, std::string_view what) const {
  for (const auto& [off, bytes] : extents_) {
    int err = fs.Pwrite(dst_fd, bytes, off);
    if (err != 0) return ErrnoStatus(err, fmt::format("write {} at offset {}", what, off));
  }
  return Status::Ok();
}

// ---- the record ---------------------------------------------------------------------------

Result<UndoEntry> CaptureUndo(const InPlacePatch& patch, bool allow_privileged) {
  UndoEntry e;
  struct stat st {};
  if (::fstat(patch.fd(), &st) != 0) return ErrnoStatus(errno, fmt::format("fstat {}", patch.path()));
  if (st.st_dev != patch.dev() || st.st_ino != patch.ino() ||
      static_cast<uint64_t>(st.st_size) != patch.old_size()) {
    return Unavailable(fmt::format("{}: changed since its block patch began", patch.path()));
  }
  e.path = patch.path();
  e.dev = static_cast<uint64_t>(st.st_dev);
  e.ino = static_cast<uint64_t>(st.st_ino);
  e.old_size = patch.old_size();
  e.mode = static_cast<uint32_t>(st.st_mode & 07777);
  e.uid = st.st_uid;
  e.gid = st.st_gid;
  e.mtime_sec = static_cast<int64_t>(st.st_mtim.tv_sec);
  e.mtime_nsec = static_cast<int64_t>(st.st_mtim.tv_nsec);
  ASSIGN_OR_RETURN(std::vector<std::string> names,
                   AllowedXattrNames(patch.fd(), allow_privileged, patch.path()));
  for (const std::string& name : names) {
    std::string value(kMaxXattrValueBytes, '\0');
    ssize_t n = ::fgetxattr(patch.fd(), name.c_str(), value.data(), value.size());
    if (n < 0) {
      if (errno == ENODATA) continue;
      return ErrnoStatus(errno, fmt::format("fgetxattr {} of {}", name, patch.path()));
    }
    value.resize(static_cast<size_t>(n));
    e.xattrs.push_back(Xattr{name, std::move(value)});
  }
  e.new_size = patch.new_size;
  e.new_hash = patch.hash;
  auto save = [&](uint64_t begin, uint64_t end) -> Status {
    if (end <= begin) return Status::Ok();
    UndoRange r;
    r.offset = begin;
    r.bytes.resize(static_cast<size_t>(end - begin));
    RETURN_IF_ERROR(ReadExact(patch.fd(), begin, r.bytes.data(), r.bytes.size(), patch.path()));
    e.ranges.push_back(std::move(r));
    return Status::Ok();
  };
  for (const auto& [off, bytes] : patch.extents()) {
    if (off >= e.old_size) break;
    RETURN_IF_ERROR(save(off, std::min<uint64_t>(off + bytes.size(), e.old_size)));
  }
  if (patch.new_size < e.old_size) RETURN_IF_ERROR(save(patch.new_size, e.old_size));
  return e;
}

std::vector<std::byte> EncodeUndo(std::span<const UndoEntry> entries) {
  Writer w;
  w.Bytes(kMagic, sizeof kMagic);
  w.Put(kVersion);
  w.Put(static_cast<uint32_t>(entries.size()));
  for (const UndoEntry& e : entries) {
    w.Str(e.path);
    w.Put(e.dev);
    w.Put(e.ino);
    w.Put(e.old_size);
    w.Put(e.mode);
    w.Put(e.uid);
    w.Put(e.gid);
    w.Put(e.mtime_sec);
    w.Put(e.mtime_nsec);
    w.Put(static_cast<uint32_t>(e.xattrs.size()));
    for (const Xattr& x : e.xattrs) {
      w.Str(x.name);
      w.Str(x.value);
    }
    w.Put(e.new_size);
    w.Put(e.new_hash.low);
    w.Put(e.new_hash.high);
    w.Put(static_cast<uint32_t>(e.ranges.size()));
    for (const UndoRange& r : e.ranges) {
      w.Put(r.offset);
      w.Put(static_cast<uint64_t>(r.bytes.size()));
      w.Bytes(r.bytes.data(), r.bytes.size());
    }
  }
  Hash128 sum = Xxh3_128(w.out());
  w.Put(sum.low);
  w.Put(sum.high);
  w.Bytes(kEndMagic, sizeof kEndMagic);
  return std::move(w.out());
}

Result<std::vector<UndoEntry>> DecodeUndo(std::span<const std::byte> record) {
  constexpr size_t kTrailer = 16 + sizeof kEndMagic;
  auto torn = [](std::string_view why) { return DataLoss(fmt::format("torn undo record: {}", why)); };
  if (record.size() < sizeof kMagic + 8 + kTrailer) return torn("too short");
  if (std::memcmp(record.data(), kMagic, sizeof kMagic) != 0) return torn("bad magic");
  if (std::memcmp(record.data() + record.size() - sizeof kEndMagic, kEndMagic, sizeof kEndMagic) != 0) {
    return torn("no end mark");
  }
  std::span<const std::byte> body = record.subspan(0, record.size() - kTrailer);
  Hash128 want{};
  std::memcpy(&want.low, record.data() + body.size(), 8);
  std::memcpy(&want.high, record.data() + body.size() + 8, 8);
  if (Xxh3_128(body) != want) return torn("checksum mismatch");
  Reader r(body.subspan(sizeof kMagic));
  uint32_t version = 0, count = 0;
  if (!r.Get(&version) || version != kVersion) return torn("unknown version");
  if (!r.Get(&count) || count > kMaxBatchFiles) return torn("file count");
  std::vector<UndoEntry> out(count);
  for (UndoEntry& e : out) {
    uint32_t nx = 0, nr = 0;
    bool ok = r.Str(&e.path, 4096) && r.Get(&e.dev) && r.Get(&e.ino) && r.Get(&e.old_size) &&
              r.Get(&e.mode) && r.Get(&e.uid) && r.Get(&e.gid) && r.Get(&e.mtime_sec) &&
              r.Get(&e.mtime_nsec) && r.Get(&nx) && nx <= kMaxXattrsPerFile;
    if (!ok || e.path.empty() || e.path.front() == '/' ||
        e.path.find('\0') != std::string::npos) {
      return torn("file header");
    }
    e.xattrs.resize(nx);
    for (Xattr& x : e.xattrs) {
      if (!r.Str(&x.name, 255) || !r.Str(&x.value, kMaxXattrValueBytes)) return torn("xattr");
    }
    if (!r.Get(&e.new_size) || !r.Get(&e.new_hash.low) || !r.Get(&e.new_hash.high) ||
        !r.Get(&nr)) {
      return torn("file trailer");
    }
    for (uint32_t i = 0; i < nr; ++i) {
      UndoRange range;
      uint64_t len = 0;
      std::span<const std::byte> bytes;
      if (!r.Get(&range.offset) || !r.Get(&len) || len > record.size() ||
          range.offset + len > e.old_size || !r.Take(static_cast<size_t>(len), &bytes)) {
        return torn("range");
      }
      range.bytes.assign(bytes.begin(), bytes.end());
      e.ranges.push_back(std::move(range));
    }
  }
  if (!r.done()) return torn("trailing bytes");
  return out;
}

Result<std::string> WriteUndoRecord(FsOps& fs, int undo_dir_fd, std::span<const UndoEntry> entries) {
  std::vector<std::byte> record = EncodeUndo(entries);
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  const auto stamp = static_cast<uint64_t>(now.tv_sec) * 1'000'000'000u +
                     static_cast<uint64_t>(now.tv_nsec);
  // The name sorts by time so recovery can undo the newest first; O_EXCL, never reused.
  for (uint64_t bump = 0; bump < 16; ++bump) {
    std::string name = fmt::format("{}{:016x}", kUndoPrefix, stamp + bump);
    int fd = ::openat(undo_dir_fd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                      0600);
    if (fd < 0) {
      if (errno == EEXIST) continue;
      return ErrnoStatus(errno, fmt::format("create undo record {}", name));
    }
    UniqueFd f(fd);
    int err = fs.Pwrite(f.get(), record, 0);
    Status s = err != 0 ? ErrnoStatus(err, fmt::format("write undo record {}", name)) : Status::Ok();
    if (s.ok() && (err = fs.Fsync(f.get())) != 0) {
      s = ErrnoStatus(err, fmt::format("fsync undo record {}", name));
    }
    if (s.ok()) s = FsyncDir(fs, undo_dir_fd, "undo directory");
    if (!s.ok()) {
      // No live byte was written under it; a copy that survives is harmless (it holds
      // the current bytes) and the next commit or start-up removes it.
      ::unlinkat(undo_dir_fd, name.c_str(), 0);
      return s;
    }
    return name;
  }
  return Status(Code::kAlreadyExists, "create undo record: 16 names taken");
}

Status RemoveUndoRecord(FsOps& fs, int undo_dir_fd, const std::string& name) {
  if (::unlinkat(undo_dir_fd, name.c_str(), 0) != 0 && errno != ENOENT) {
    return ErrnoStatus(errno, fmt::format("remove undo record {}", name));
  }
  return FsyncDir(fs, undo_dir_fd, "undo directory");
}

Status ApplyInPlace(FsOps& fs, InPlacePatch& patch, bool allow_privileged, uint64_t* stripped) {
  const std::string what = fmt::format("{} in place", patch.path());
  RETURN_IF_ERROR(patch.WriteExtents(fs, patch.fd(), what));
  if (int err = fs.Ftruncate(patch.fd(), patch.new_size); err != 0) {
    return ErrnoStatus(err, fmt::format("ftruncate {} to {}", what, patch.new_size));
  }
  // The allowed xattrs not in the new set go first; ApplyMetaToFd sets the rest.
  RETURN_IF_ERROR(ReplaceXattrs(patch.fd(), patch.meta.xattrs, allow_privileged, patch.path(),
                                /*set_values=*/false));
  return ApplyMetaToFd(patch.fd(), patch.meta, /*is_dir=*/false, allow_privileged, patch.path(),
                       stripped);
}

Status RollBack(FsOps& fs, int root_fd, int fd, const UndoEntry& e, bool allow_privileged,
                bool* skipped) {
  *skipped = false;
  UniqueFd opened;
  if (fd < 0) {
    Result<Parent> parent = OpenParent(root_fd, e.path);
    if (!parent.ok() && parent.status().code() == Code::kNotFound) {
      *skipped = true;
      return Status::Ok();
    }
    RETURN_IF_ERROR(parent.status());
    Result<UniqueFd> f = OpenBeneath(parent->fd.get(), parent->name, O_RDWR | O_NOFOLLOW | O_NONBLOCK,
                                     fmt::format("roll back {}", e.path));
    if (!f.ok()) {
      if (f.status().code() == Code::kNotFound) {
        *skipped = true;
        return Status::Ok();
      }
      return f.status();
    }
    opened = std::move(f).value();
    fd = opened.get();
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) return ErrnoStatus(errno, fmt::format("fstat {}", e.path));
  if (!S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_dev) != e.dev ||
      static_cast<uint64_t>(st.st_ino) != e.ino) {
    *skipped = true;  // not the inode the record was made for
    return Status::Ok();
  }
  for (const UndoRange& r : e.ranges) {
    if (int err = fs.Pwrite(fd, r.bytes, r.offset); err != 0) {
      return ErrnoStatus(err, fmt::format("roll back {} at offset {}", e.path, r.offset));
    }
  }
  if (int err = fs.Ftruncate(fd, e.old_size); err != 0) {
    return ErrnoStatus(err, fmt::format("roll back size of {} to {}", e.path, e.old_size));
  }
  if (::fchown(fd, e.uid, e.gid) != 0) {
    return ErrnoStatus(errno, fmt::format("roll back owner of {}", e.path));
  }
  if (::fchmod(fd, static_cast<mode_t>(e.mode)) != 0) {
    return ErrnoStatus(errno, fmt::format("roll back mode of {}", e.path));
  }
  RETURN_IF_ERROR(ReplaceXattrs(fd, e.xattrs, allow_privileged, e.path, /*set_values=*/true));
  timespec ts[2] = {{0, UTIME_OMIT}, {static_cast<time_t>(e.mtime_sec), static_cast<long>(e.mtime_nsec)}};
  if (::futimens(fd, ts) != 0) return ErrnoStatus(errno, fmt::format("roll back mtime of {}", e.path));
  if (int err = fs.Fsync(fd); err != 0) {
    return ErrnoStatus(err, fmt::format("fsync rolled-back {}", e.path));
  }
  return Status::Ok();
}

Result<UndoReport> RecoverUndo(FsOps& fs, int root_fd, int undo_dir_fd, bool allow_privileged,
                               bool sync_dir) {
  UndoReport report;
  std::vector<std::string> names;
  {
    int dfd = ::openat(undo_dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return ErrnoStatus(errno, "open undo directory");
    std::unique_ptr<DIR, int (*)(DIR*)> d(::fdopendir(dfd), &::closedir);
    if (!d) {
      ::close(dfd);
      return ErrnoStatus(errno, "fdopendir undo directory");
    }
    for (;;) {
      errno = 0;
      dirent* ent = ::readdir(d.get());
      if (ent == nullptr) {
        if (errno != 0) return ErrnoStatus(errno, "readdir undo directory");
        break;
      }
      std::string_view name(ent->d_name);
      if (!name.starts_with(kUndoPrefix)) continue;
      if (names.size() >= kUndoMaxRecords) {
        return OutOfRange(fmt::format("undo directory holds more than kUndoMaxRecords {} records",
                                      kUndoMaxRecords));
      }
      names.emplace_back(name);
    }
  }
  std::sort(names.rbegin(), names.rend());  // newest first
  for (const std::string& name : names) {
    ++report.records;
    int fd = ::openat(undo_dir_fd, name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return ErrnoStatus(errno, fmt::format("open undo record {}", name));
    UniqueFd f(fd);
    struct stat st {};
    if (::fstat(f.get(), &st) != 0) return ErrnoStatus(errno, fmt::format("fstat undo record {}", name));
    if (!S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) > kUndoMaxRecordBytes) {
      return DataLoss(fmt::format(
          "undo record {} is not a regular file of at most {} bytes: not hasync's; move it "
          "away after checking the files it may name",
          name, kUndoMaxRecordBytes));
    }
    std::vector<std::byte> bytes(static_cast<size_t>(st.st_size));
    RETURN_IF_ERROR(ReadExact(f.get(), 0, bytes.data(), bytes.size(), "undo record " + name));
    Result<std::vector<UndoEntry>> entries = DecodeUndo(bytes);
    if (!entries.ok()) {
      // Torn: the crash came before the record was durable, so before any live write.
      ++report.torn;
    } else {
      for (const UndoEntry& e : *entries) {
        bool skipped = false;
        RETURN_IF_ERROR(RollBack(fs, root_fd, -1, e, allow_privileged, &skipped)
                            .Annotate(fmt::format("undo record {}", name)));
        ++(skipped ? report.skipped : report.rolled_back);
      }
    }
    if (::unlinkat(undo_dir_fd, name.c_str(), 0) != 0) {
      return ErrnoStatus(errno, fmt::format("remove undo record {}", name));
    }
  }
  // Only when something changed, or to make durable an earlier removal whose directory
  // fsync failed (sync_dir): a start with nothing to undo makes no sync at all.
  if (!names.empty() || sync_dir) RETURN_IF_ERROR(FsyncDir(fs, undo_dir_fd, "undo directory"));
  return report;
}

Result<UniqueFd> OpenUndoDir(std::string_view path) {
  std::string p(path);
  if (p.empty() || p.front() != '/') {
    return InvalidArgument(fmt::format("undo directory \"{}\" is not an absolute path", p));
  }
  size_t slash = p.rfind('/');
  if (slash > 0) RETURN_IF_ERROR(MkdirDurable(p.substr(0, slash)));
  RETURN_IF_ERROR(MkdirDurable(p));
  int fd = ::open(p.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return ErrnoStatus(errno, fmt::format("open undo directory {}", p));
  return UniqueFd(fd);
}

std::string UndoDirFor(std::string_view state_dir, std::string_view root) {
  Hash128 h = Xxh3_128(std::as_bytes(std::span<const char>(root.data(), root.size())));
  return fmt::format("{}/undo/{:016x}", state_dir, h.low);
}

// ---- Tree and Batch -------------------------------------------------------------------------

Result<UndoReport> Tree::RecoverUndo() {
  if (!undo_dir_) return UndoReport{};
  ASSIGN_OR_RETURN(UndoReport report,
                   apply::RecoverUndo(*fs_, root_.get(), undo_dir_.get(), options_.allow_privileged,
                                      /*sync_dir=*/undo_pending_));
  stats_.inplace_rollbacks += report.rolled_back;
  undo_pending_ = false;
  return report;
}

Batch::Batch(Tree& tree) : tree_(&tree) {
  // Before anything of this batch reads a base: a rollback changes the files it names.
  if (tree_->undo_pending_) {
    Result<UndoReport> r = tree_->RecoverUndo();
    if (!r.ok()) poisoned_ = r.status().Annotate("rolling back an earlier in-place patch");
  }
}

bool Batch::WantsInPlace(std::string_view path, std::shared_ptr<InPlacePatch>* patch) {
  Tree& t = *tree_;
  if (!t.undo_dir_) return false;
  if (t.reflink_ < 0) {
    // One probe per tree: can the root's filesystem share blocks? If it can, a block
    // patch clones in O(1) and in place would only add the undo record's cost.
    Result<TempFile> a = CreateTempFile(t.root_.get(), "reflink probe");
    Result<TempFile> b = CreateTempFile(t.root_.get(), "reflink probe");
    int err = EIO;
    if (a.ok() && b.ok()) {
      std::vector<std::byte> block(4096, std::byte{'p'});
      err = t.fs().Pwrite(a->fd.get(), block, 0);
      if (err == 0) err = t.fs().Clone(a->fd.get(), b->fd.get());
    }
    if (a.ok()) ::unlinkat(t.root_.get(), a->name.c_str(), 0);
    if (b.ok()) ::unlinkat(t.root_.get(), b->name.c_str(), 0);
    if (err == 0) t.reflink_ = 1;
    if (CloneUnsupportedErr(err)) t.reflink_ = 0;
  }
  if (t.reflink_ != 0) return false;
  Result<Parent> parent = OpenParent(t.root_.get(), path);
  if (!parent.ok()) return false;  // the temp path reports the error
  Result<UniqueFd> fd = OpenBeneath(parent->fd.get(), parent->name, O_RDWR | O_NOFOLLOW | O_NONBLOCK,
                                    fmt::format("in-place base {}", path));
  if (!fd.ok()) return false;
  struct stat st {};
  if (::fstat(fd->get(), &st) != 0) return false;
  // A hard-linked file is left to the temp path: an in-place write would change every
  // name of the inode, while the primary's patch was of this name only.
  if (!S_ISREG(st.st_mode) || st.st_nlink != 1 ||
      static_cast<uint64_t>(st.st_size) < t.options_.inplace_min_bytes) {
    return false;
  }
  *patch = std::make_shared<InPlacePatch>(std::string(path), std::move(fd).value(), st);
  return true;
}

Status Batch::FallBackToTemp(StagedFile& file) {
  std::shared_ptr<InPlacePatch> patch = std::move(file.inplace);
  inplace_bytes_ -= std::min(inplace_bytes_, patch->buffered());
  ++tree_->stats_.inplace_fallbacks;
  ASSIGN_OR_RETURN(TempFile temp, CreateTempFile(staging_dirs_[file.dir].get(), file.path));
  file.temp_name = std::move(temp.name);
  file.fd = std::move(temp.fd);
  file.in_order = false;  // the hash must cover the copied base: read back
  RETURN_IF_ERROR(CloneBase(file));
  RETURN_IF_ERROR(patch->WriteExtents(tree_->fs(), file.fd.get(), "temp of " + file.path));
  if (file.finished) {  // at commit: finish the temp as FinishFile would have
    file.finished = false;
    if (int err = tree_->fs().Ftruncate(file.fd.get(), patch->new_size); err != 0) {
      return ErrnoStatus(err, fmt::format("ftruncate temp of {} to {}", file.path, patch->new_size));
    }
    RETURN_IF_ERROR(VerifyHash(file, patch->new_size, patch->hash));
    uint64_t stripped = 0;  // counted into the shared StatCounter once
    Status meta = ApplyMetaToFd(file.fd.get(), patch->meta, false, tree_->options_.allow_privileged,
                                file.path, &stripped);
    tree_->stats_.setid_bits_stripped += stripped;
    RETURN_IF_ERROR(meta);
    file.finished = true;
  }
  return Status::Ok();
}

Status Batch::WriteInPlaceExtent(StagedFile& file, uint64_t offset, std::span<const std::byte> data) {
  InPlacePatch& patch = *file.inplace;
  patch.Put(offset, data);
  inplace_bytes_ += data.size();
  file.written_end = std::max(file.written_end, offset + data.size());
  tree_->stats_.bytes_written += data.size();
  const uint64_t undo = patch.UndoBytes(patch.old_size());
  if (inplace_bytes_ + undo > kInPlaceMaxBatchBytes || patch.extent_count() > kInPlaceMaxExtents ||
      undo > patch.old_size() / kInPlaceMaxUndoDivisor) {
    Status s = FallBackToTemp(file);
    if (!s.ok()) {
      RemoveTemp(file);
      return Poison(s);
    }
  }
  return Status::Ok();
}

Status Batch::FinishInPlace(StagedFile& file, uint64_t size, const FileMeta& meta, Hash128 expected) {
  InPlacePatch& patch = *file.inplace;
  if (size > kMaxFileBytes) {
    return OutOfRange(fmt::format("{}: size {} > kMaxFileBytes {}", file.path, size, kMaxFileBytes));
  }
  if (file.written_end > size) {
    return InvalidArgument(fmt::format("{}: extents reach offset {} beyond the final size {}",
                                       file.path, file.written_end, size));
  }
  // Refuse bad metadata now, before the live file could be touched at commit.
  RETURN_IF_ERROR(DecideMode(meta.mode, false, tree_->options_.allow_privileged).status());
  RETURN_IF_ERROR(CheckMetaXattrs(meta.xattrs, tree_->options_.allow_privileged, file.path));
  const uint64_t undo = patch.UndoBytes(size);
  if (inplace_bytes_ + undo > kInPlaceMaxBatchBytes ||
      undo > patch.old_size() / kInPlaceMaxUndoDivisor) {
    return FallBackToTemp(file);  // FinishFile goes on with the temp
  }
  ASSIGN_OR_RETURN(Hash128 got, patch.HashResult(size, hash_buf_));
  RETURN_IF_ERROR(CheckHash(file, got, expected));
  inplace_bytes_ += undo;
  patch.new_size = size;
  patch.meta = meta;
  patch.hash = expected;
  return Status::Ok();
}

Status Batch::BeginInPlaceCommit(std::vector<int>& fds, std::vector<std::string>& names) {
  std::vector<StagedFile*> inplace;
  for (StagedFile& file : files_) {
    if (file.inplace && !file.abandoned) inplace.push_back(&file);
  }
  if (inplace.empty()) return Status::Ok();
  if (tree_->undo_pending_) {  // the constructor's recovery failed: poisoned already
    return FailedPrecondition("an earlier in-place patch is still to be rolled back");
  }
  // A file that another operation of this batch names (renames, unlinks, links, replaces,
  // or changes a directory above it) goes through a temp: its undo record could not
  // find it by name after that operation, and a rename of the temp is ordered anyway.
  // Every path any operation names, counted (an in-place file's own publish once).
  std::map<std::string_view, size_t> named;
  for (const Op& op : ops_) {
    std::visit(
        [&](const auto& o) {
          using T = std::decay_t<decltype(o)>;
          if constexpr (std::is_same_v<T, OpPublish>) {
            if (!files_[o.id].abandoned) ++named[files_[o.id].path];
          } else if constexpr (std::is_same_v<T, OpRename>) {
            ++named[o.from];
            ++named[o.to];
          } else if constexpr (std::is_same_v<T, OpLink>) {
            ++named[o.existing];
            ++named[o.new_path];
          } else {
            ++named[o.path];
          }
        },
        op);
  }
  for (StagedFile* file : inplace) {
    bool conflict = false;
    std::string_view p = file->path;
    // The path itself (beyond its own publish), then each directory above it.
    for (bool self = true; !conflict; self = false) {
      auto it = named.find(p);
      conflict = it != named.end() && it->second > (self ? 1u : 0u);
      size_t slash = p.rfind('/');
      if (slash == std::string_view::npos) break;
      p = p.substr(0, slash);
    }
    if (conflict) {
      RETURN_IF_ERROR(FallBackToTemp(*file));
      fds.push_back(file->fd.get());
      names.push_back(fmt::format("temp of {}", file->path));
    }
  }
  std::erase_if(inplace, [](StagedFile* f) { return !f->inplace; });
  if (inplace.empty()) return Status::Ok();
  // The undo record: durable before the first live byte changes.
  std::vector<UndoEntry> entries;
  entries.reserve(inplace.size());
  for (StagedFile* file : inplace) {
    ASSIGN_OR_RETURN(UndoEntry e, CaptureUndo(*file->inplace, tree_->options_.allow_privileged));
    for (const UndoRange& r : e.ranges) tree_->stats_.undo_bytes += r.bytes.size();
    entries.push_back(std::move(e));
  }
  Result<std::string> record = WriteUndoRecord(tree_->fs(), tree_->undo_dir_.get(), entries);
  if (!record.ok()) {
    tree_->undo_pending_ = true;  // a surviving copy is removed before the next commit
    return record.status().Annotate("in-place patch not started");
  }
  undo_record_ = std::move(record).value();
  for (size_t i = 0; i < inplace.size(); ++i) {
    InPlacePatch& patch = *inplace[i]->inplace;
    patch.undo = std::move(entries[i]);
    patch.applied = true;  // from the first byte on, a failure rolls it back
    uint64_t stripped = 0;  // counted into the shared StatCounter once
    Status applied =
        ApplyInPlace(tree_->fs(), patch, tree_->options_.allow_privileged, &stripped);
    tree_->stats_.setid_bits_stripped += stripped;
    RETURN_IF_ERROR(applied);
    fds.push_back(patch.fd());
    names.push_back(fmt::format("{} (patched in place)", patch.path()));
    ++tree_->stats_.files_patched_in_place;
  }
  return Status::Ok();
}

Status Batch::EndInPlaceCommit(Status status) {
  if (undo_record_.empty()) return status;
  const std::string record = std::exchange(undo_record_, std::string());
  FsOps& fs = tree_->fs();
  if (status.ok()) {
    // Every change of the batch is durable: only now may the record go, and only after
    // it is gone may the batch be acknowledged.
    Status s = RemoveUndoRecord(fs, tree_->undo_dir_.get(), record);
    if (!s.ok()) {
      tree_->undo_pending_ = true;
      return s.Annotate("batch applied but not acknowledged");
    }
    return status;
  }
  bool all = true;
  for (StagedFile& file : files_) {
    if (!file.inplace || !file.inplace->applied) continue;
    bool skipped = false;
    Status s = RollBack(fs, tree_->root_.get(), file.inplace->fd(), file.inplace->undo,
                        tree_->options_.allow_privileged, &skipped);
    if (s.ok() && !skipped) ++tree_->stats_.inplace_rollbacks;
    all = all && s.ok();
  }
  if (!all || !RemoveUndoRecord(fs, tree_->undo_dir_.get(), record).ok()) {
    tree_->undo_pending_ = true;  // the next commit (or start-up) rolls back from the record
    return status.Annotate("in-place patches left to roll back from their undo record");
  }
  return status.Annotate("in-place patches rolled back");
}

}  // namespace hasync::engine::apply
