// One or more valid sample frames of every message type, shared by the codec tests, the
// benchmark and the fuzz seed-corpus generator. Values are chosen to exercise every
// field: non-zero, multi-byte, and at or near their limits where that is cheap.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "wire/frame.h"

namespace hasync::wire::testing {

inline std::vector<std::byte> Bytes(size_t n, uint8_t seed) {
  std::vector<std::byte> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<std::byte>((i * 131 + seed) & 0xFF);
  return out;
}

template <size_t N>
std::array<std::byte, N> Array(uint8_t seed) {
  std::array<std::byte, N> out{};
  for (size_t i = 0; i < N; ++i) out[i] = static_cast<std::byte>((i * 7 + seed) & 0xFF);
  return out;
}

inline Frame Control(Message m, uint64_t epoch = 7) { return Frame{epoch, 0, std::move(m)}; }
inline Frame Change(Message m, uint64_t seq = 42, uint64_t epoch = 7) {
  return Frame{epoch, seq, std::move(m)};
}

inline Frame SampleHello() {
  return Control(Hello{.version_min = 1,
                       .version_max = 1,
                       .role = Role::kPrimary,
                       .stream_kind = StreamKind::kControl,
                       .stream_index = 0,
                       .node_id = 0x0102030405060708,
                       .session_id = 0xDEADBEEFCAFEF00D,
                       .capabilities = kCapDataStreams | kCapSparse | kCapDelta | (1ull << 63),
                       .last_applied_seq = 123456789,
                       .node_name = "mu01"});
}

inline std::vector<Frame> SampleFrames() {
  std::vector<Frame> f;
  f.push_back(Control(Challenge{Array<kNonceSize>(1)}, 0));
  f.push_back(Control(Response{Array<kMacSize>(2)}, 0));
  f.push_back(SampleHello());
  f.push_back(Control(Hello{.role = Role::kStandby,
                            .stream_kind = StreamKind::kData,
                            .stream_index = kDataStreamsMax,
                            .node_id = 2,
                            .session_id = 9,
                            .node_name = "mu02.cluster.example"}));
  f.push_back(Control(Error{ErrorCode::kStaleEpoch, "epoch 3 < our epoch 4"}));
  f.push_back(Control(Ping{0x1122334455667788, 987654321}));
  f.push_back(Control(Pong{0x1122334455667788, 987654321}));
  f.push_back(Control(Lock{Bytes(120, 3)}));
  f.push_back(Control(Promoted{RoleChangeReason::kSilent, 2}, 8));
  f.push_back(Control(DemoteRequest{RoleChangeReason::kStalled}));
  f.push_back(Control(Demoted{RoleChangeReason::kSwitchover, true, 555}));
  f.push_back(Change(FileBegin{.size = 5000,
                               .mode = 0640,
                               .uid = 64030,
                               .gid = 64030,
                               .flags = kFileDelta,
                               .mtime_ns = 1732650000123456789,
                               .path = "jobs/hash.3/job.1234/script"}));
  f.push_back(Change(FileBegin{.size = 0, .mode = 04755, .mtime_ns = -5, .path = ".hidden"}));
  f.push_back(Change(Extent{5000, 4096, Bytes(904, 4)}));
  f.push_back(Change(Hole{1ull << 40, 4096, 1ull << 30}));
  f.push_back(Change(FileEnd{5000, Hash128{0xAAAA, 0xBBBB}, 3, 904}));
  f.push_back(Change(FileAbort{FileAbortReason::kVanished}));
  f.push_back(Change(Truncate{100, "slurmctld.log"}));
  f.push_back(Change(Mkdir{0755, 0, 0, "jobs/hash.4"}));
  f.push_back(Change(Rmdir{"jobs/hash.4/job.9"}));
  f.push_back(Change(Unlink{"job_state.old"}));
  f.push_back(Change(Rename{kRenameNoReplace, "job_state.new", "job_state"}));
  f.push_back(Change(Rename{kRenameExchange, "a", "b"}));
  f.push_back(Change(Link{"job_state", "job_state.old"}));
  f.push_back(Change(Symlink{1, 2, 3, "current", "/var/spool/slurm/../other"}));
  f.push_back(Change(SetAttr{kAttrMode | kAttrOwner | kAttrMtime, 0600, 10, 20, 30, "a/b"}));
  f.push_back(Change(SetAttr{kAttrMtime, 0, 0, 0, 99, "dir"}));
  f.push_back(Change(SetXattr{"a", "user.checksum", Bytes(17, 5)}));
  f.push_back(Change(SetXattr{"a", "user.empty", {}}));
  f.push_back(Change(RemoveXattr{"a", "security.selinux"}));
  f.push_back(Control(Commit{1000, 12}));
  f.push_back(Control(Ack{1000, true}));
  f.push_back(Control(Nack{1000, ErrorCode::kNoSpace, "fsync jobs/x: No space left on device"}));
  f.push_back(Control(ManifestRequest{77, ""}));
  f.push_back(Control(ManifestRequest{78, "jobs/hash.3"}));
  f.push_back(Control(ManifestEntries{
      77,
      kManifestLast,
      {ManifestEntry{EntryKind::kFile, 0600, 1, 2, 5000, 1234, Hash128{1, 2}, 0, 0, "",
                     "job_state"},
       ManifestEntry{EntryKind::kFile, 0600, 1, 2, 5000, 1234, Hash128{1, 2}, 99, 7,
                     std::string("user.a\0user.slurm\0", 18), "job_state.old"},
       ManifestEntry{EntryKind::kDirectory, 0755, 0, 0, 0, -1, Hash128{}, 5, 0,
                     std::string("user.d\0", 7), "jobs"},
       ManifestEntry{EntryKind::kSymlink, 0777, 0, 0, 7, 5, Hash128{3, 4}, 0, 0, "",
                     "current"}}}));
  f.push_back(Control(ManifestEntries{78, 0, {}}));
  f.push_back(Control(BlocksRequest{9, 65536, "slurmctld.log"}));
  f.push_back(Control(BlocksReply{
      9, 65536 * 3 + 1, 65536, 1, kBlocksLast, {Hash128{5, 6}, Hash128{7, 8}, Hash128{9, 10}}}));
  f.push_back(Control(BlocksReply{10, 0, 4096, 0, kBlocksLast | kBlocksMissing, {}}));
  f.push_back(Control(ResyncBegin{}, 9));
  f.push_back(Control(ResyncEnd{4242}, 9));
  return f;
}

}  // namespace hasync::wire::testing
