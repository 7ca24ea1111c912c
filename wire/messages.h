// The messages of the hasync protocol, as plain value types.
//
// Contract: every struct here is one frame body. Each names its MessageType (kType), its
// wire name (kName) and whether it belongs to the change stream (kIsChange: the frame
// header's seq is the journal sequence number of the change, never 0; for every other
// message the header's seq is 0). A decoded message has passed ValidateMessage(): every
// path in it is safe (wire/path.h), every length is within wire/limits.h, every enum
// holds a defined value. The exact byte layout of each body is in docs/PROTOCOL.md.
//
// The structs own their bytes (std::string / std::vector) so a decoded frame outlives
// the receive buffer it came from.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/hash.h"
#include "base/status.h"
#include "wire/limits.h"

namespace hasync::wire {

// Frame types. The high byte groups them: 0x01 session, 0x02 liveness and roles,
// 0x03 changes, 0x04 batches, 0x05 resync. Values are never reused.
enum class MessageType : uint16_t {
  kChallenge = 0x0101,
  kResponse = 0x0102,
  kHello = 0x0103,
  kError = 0x0104,
  kPing = 0x0105,
  kPong = 0x0106,

  kLock = 0x0201,
  kPromoted = 0x0202,
  kDemoteRequest = 0x0203,
  kDemoted = 0x0204,

  kFileBegin = 0x0301,
  kExtent = 0x0302,
  kHole = 0x0303,
  kFileEnd = 0x0304,
  kFileAbort = 0x0305,
  kTruncate = 0x0306,
  kMkdir = 0x0307,
  kRmdir = 0x0308,
  kUnlink = 0x0309,
  kRename = 0x030A,
  kLink = 0x030B,
  kSymlink = 0x030C,
  kSetAttr = 0x030D,
  kSetXattr = 0x030E,
  kRemoveXattr = 0x030F,

  kCommit = 0x0401,
  kAck = 0x0402,
  kNack = 0x0403,

  kManifestRequest = 0x0501,
  kManifestEntries = 0x0502,
  kBlocksRequest = 0x0503,
  kBlocksReply = 0x0504,
  kResyncBegin = 0x0505,
  kResyncEnd = 0x0506,
};

enum class Role : uint8_t { kStandby = 1, kPrimary = 2 };
enum class StreamKind : uint8_t { kControl = 0, kData = 1 };

// Why a role changes; carried by PROMOTED, DEMOTE_REQUEST and DEMOTED.
enum class RoleChangeReason : uint8_t {
  kStalled = 1,      // the window saw only equal lock records
  kSilent = 2,       // the window saw no lock record
  kSwitchover = 3,   // planned `hasync switchover`
  kOperator = 4,     // an operator forced it
  kHigherEpoch = 5,  // the peer showed a higher epoch
};

// Why a connection (ERROR) or a batch (NACK) failed.
enum class ErrorCode : uint16_t {
  kProtocol = 1,      // a frame was malformed or out of order
  kVersion = 2,       // no common protocol version
  kAuth = 3,          // the peer failed authentication
  kStaleEpoch = 4,    // the frame's epoch is lower than ours
  kRoleConflict = 5,  // both nodes claim the same role
  kIo = 6,            // the receiver could not read or write its disk
  kNoSpace = 7,       // ENOSPC / EDQUOT on the receiver
  kHashMismatch = 8,  // content did not match its XXH3-128
  kUnsafePath = 9,    // a path resolved outside the root or through a symlink
  kBusy = 10,         // try again later
  kShutdown = 11,     // the sender is stopping
  kUnsupported = 12,  // a capability the receiver lacks
  kInternal = 13,
};

// Why the sender gave up on a file version it had begun.
enum class FileAbortReason : uint8_t { kChanged = 1, kVanished = 2, kReadError = 3 };

// Capability bits in HELLO. Unknown bits are ignored: the usable set is the intersection
// of both peers' bits, so a new capability never breaks an old peer.
inline constexpr uint64_t kCapDataStreams = uint64_t{1} << 0;  // extra data streams
inline constexpr uint64_t kCapSparse = uint64_t{1} << 1;       // HOLE frames
inline constexpr uint64_t kCapDelta = uint64_t{1} << 2;        // kFileDelta, BLOCKS_*
inline constexpr uint64_t kCapXattr = uint64_t{1} << 3;        // SETXATTR / REMOVEXATTR
inline constexpr uint64_t kCapKernelTls = uint64_t{1} << 4;    // kTLS record offload

using Nonce = std::array<std::byte, kNonceSize>;
using Mac = std::array<std::byte, kMacSize>;

// ---- Session --------------------------------------------------------------------------

// Plain mode only, first frame each side sends: a fresh random nonce.
struct Challenge {
  static constexpr MessageType kType = MessageType::kChallenge;
  static constexpr std::string_view kName = "CHALLENGE";
  static constexpr bool kIsChange = false;
  Nonce nonce{};
  friend bool operator==(const Challenge&, const Challenge&) = default;
};

// Plain mode only: HMAC-SHA256(sync key, PlainAuthInput(...)) (wire/handshake.h).
struct Response {
  static constexpr MessageType kType = MessageType::kResponse;
  static constexpr std::string_view kName = "RESPONSE";
  static constexpr bool kIsChange = false;
  Mac mac{};
  friend bool operator==(const Response&, const Response&) = default;
};

// Both sides send one HELLO once the channel is authenticated (TLS or plain PSK).
// The header's epoch is the sender's persisted epoch.
struct Hello {
  static constexpr MessageType kType = MessageType::kHello;
  static constexpr std::string_view kName = "HELLO";
  static constexpr bool kIsChange = false;
  uint16_t version_min = kProtocolVersion;
  uint16_t version_max = kProtocolVersion;
  Role role = Role::kStandby;
  StreamKind stream_kind = StreamKind::kControl;
  uint16_t stream_index = 0;  // 0 for control, 1..kDataStreamsMax for data streams
  uint64_t node_id = 0;       // nonzero, stable across restarts
  uint64_t session_id = 0;    // nonzero; data streams repeat their control stream's id
  uint64_t capabilities = 0;  // kCap* bits
  uint64_t last_applied_seq = 0;
  std::string node_name;  // 1..kNodeNameMax printable ASCII
  friend bool operator==(const Hello&, const Hello&) = default;
};

// Fatal: the sender closes the connection after it.
struct Error {
  static constexpr MessageType kType = MessageType::kError;
  static constexpr std::string_view kName = "ERROR";
  static constexpr bool kIsChange = false;
  ErrorCode code = ErrorCode::kProtocol;
  std::string message;  // 0..kErrorMessageMax bytes, no NUL
  friend bool operator==(const Error&, const Error&) = default;
};

struct Ping {
  static constexpr MessageType kType = MessageType::kPing;
  static constexpr std::string_view kName = "PING";
  static constexpr bool kIsChange = false;
  uint64_t token = 0;
  uint64_t send_ns = 0;  // sender's monotonic clock, echoed in PONG
  friend bool operator==(const Ping&, const Ping&) = default;
};

struct Pong {
  static constexpr MessageType kType = MessageType::kPong;
  static constexpr std::string_view kName = "PONG";
  static constexpr bool kIsChange = false;
  uint64_t token = 0;
  uint64_t send_ns = 0;
  friend bool operator==(const Pong&, const Pong&) = default;
};

// ---- Liveness and roles ---------------------------------------------------------------

// The lock record as lockwin/ encodes it; fingerprinted over exactly these bytes.
struct Lock {
  static constexpr MessageType kType = MessageType::kLock;
  static constexpr std::string_view kName = "LOCK";
  static constexpr bool kIsChange = false;
  std::vector<std::byte> record;  // 1..kLockRecordMax bytes
  friend bool operator==(const Lock&, const Lock&) = default;
};

// The sender became primary; the header's epoch is the new epoch.
struct Promoted {
  static constexpr MessageType kType = MessageType::kPromoted;
  static constexpr std::string_view kName = "PROMOTED";
  static constexpr bool kIsChange = false;
  RoleChangeReason reason = RoleChangeReason::kStalled;
  uint64_t node_id = 0;  // the new primary, nonzero
  friend bool operator==(const Promoted&, const Promoted&) = default;
};

// Standby to a stalled primary, or the switchover initiator: please demote.
struct DemoteRequest {
  static constexpr MessageType kType = MessageType::kDemoteRequest;
  static constexpr std::string_view kName = "DEMOTE_REQUEST";
  static constexpr bool kIsChange = false;
  RoleChangeReason reason = RoleChangeReason::kStalled;
  friend bool operator==(const DemoteRequest&, const DemoteRequest&) = default;
};

// The sender is no longer primary: on_demote ran (on_demote_ok says how it ended) and
// last_seq is the last change it sent, so the peer can check it holds it durably.
struct Demoted {
  static constexpr MessageType kType = MessageType::kDemoted;
  static constexpr std::string_view kName = "DEMOTED";
  static constexpr bool kIsChange = false;
  RoleChangeReason reason = RoleChangeReason::kStalled;
  bool on_demote_ok = false;
  uint64_t last_seq = 0;
  friend bool operator==(const Demoted&, const Demoted&) = default;
};

// ---- Changes (header seq = the change's journal sequence number) ---------------------

// FileBegin.flags
inline constexpr uint32_t kFileDelta = 1u << 0;   // unsent ranges keep the standby's bytes
inline constexpr uint32_t kFileSparse = 1u << 1;  // hint: the source file has holes
inline constexpr uint32_t kFileFlagsKnown = kFileDelta | kFileSparse;

// Opens a new version of a regular file. Its EXTENT and HOLE frames (on any stream)
// carry the same header seq; FILE_END closes it. Without kFileDelta the ranges no
// EXTENT covers read as zeros (holes).
struct FileBegin {
  static constexpr MessageType kType = MessageType::kFileBegin;
  static constexpr std::string_view kName = "FILE_BEGIN";
  static constexpr bool kIsChange = true;
  uint64_t size = 0;  // <= kFileSizeMax
  uint32_t mode = 0;  // permission bits, <= kModeMask
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t flags = 0;  // kFile* bits
  int64_t mtime_ns = 0;
  std::string path;
  friend bool operator==(const FileBegin&, const FileBegin&) = default;
};

// Bytes [offset, offset + data.size()) of the file version named by the header seq.
// file_size repeats FileBegin.size so each extent can be bounds-checked on its own.
struct Extent {
  static constexpr MessageType kType = MessageType::kExtent;
  static constexpr std::string_view kName = "EXTENT";
  static constexpr bool kIsChange = true;
  uint64_t file_size = 0;
  uint64_t offset = 0;
  std::vector<std::byte> data;  // 1..kExtentDataMax bytes
  friend bool operator==(const Extent&, const Extent&) = default;
};

// [offset, offset + length) of the file version is a hole (punched, reads as zeros).
struct Hole {
  static constexpr MessageType kType = MessageType::kHole;
  static constexpr std::string_view kName = "HOLE";
  static constexpr bool kIsChange = true;
  uint64_t file_size = 0;
  uint64_t offset = 0;
  uint64_t length = 0;  // >= 1
  friend bool operator==(const Hole&, const Hole&) = default;
};

// Closes a file version: the receiver holds it until it has seen range_count EXTENT +
// HOLE frames with data_bytes of extent data, then checks the content against hash.
// The hash travels last so the sender can hash while it streams.
struct FileEnd {
  static constexpr MessageType kType = MessageType::kFileEnd;
  static constexpr std::string_view kName = "FILE_END";
  static constexpr bool kIsChange = true;
  uint64_t size = 0;
  Hash128 hash;  // XXH3-128 of the whole file content
  uint32_t range_count = 0;
  uint64_t data_bytes = 0;  // <= size
  friend bool operator==(const FileEnd&, const FileEnd&) = default;
};

// The sender gave up this file version (it changed or vanished while being read); the
// receiver drops it. A new FILE_BEGIN follows if the file still exists.
struct FileAbort {
  static constexpr MessageType kType = MessageType::kFileAbort;
  static constexpr std::string_view kName = "FILE_ABORT";
  static constexpr bool kIsChange = true;
  FileAbortReason reason = FileAbortReason::kChanged;
  friend bool operator==(const FileAbort&, const FileAbort&) = default;
};

struct Truncate {
  static constexpr MessageType kType = MessageType::kTruncate;
  static constexpr std::string_view kName = "TRUNCATE";
  static constexpr bool kIsChange = true;
  uint64_t size = 0;
  std::string path;
  friend bool operator==(const Truncate&, const Truncate&) = default;
};

struct Mkdir {
  static constexpr MessageType kType = MessageType::kMkdir;
  static constexpr std::string_view kName = "MKDIR";
  static constexpr bool kIsChange = true;
  uint32_t mode = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::string path;
  friend bool operator==(const Mkdir&, const Mkdir&) = default;
};

struct Rmdir {
  static constexpr MessageType kType = MessageType::kRmdir;
  static constexpr std::string_view kName = "RMDIR";
  static constexpr bool kIsChange = true;
  std::string path;
  friend bool operator==(const Rmdir&, const Rmdir&) = default;
};

struct Unlink {
  static constexpr MessageType kType = MessageType::kUnlink;
  static constexpr std::string_view kName = "UNLINK";
  static constexpr bool kIsChange = true;
  std::string path;
  friend bool operator==(const Unlink&, const Unlink&) = default;
};

// Rename.flags, the renameat2(2) flags that replicate. At most one may be set.
inline constexpr uint32_t kRenameNoReplace = 1u << 0;
inline constexpr uint32_t kRenameExchange = 1u << 1;

struct Rename {
  static constexpr MessageType kType = MessageType::kRename;
  static constexpr std::string_view kName = "RENAME";
  static constexpr bool kIsChange = true;
  uint32_t flags = 0;
  std::string from;
  std::string to;
  friend bool operator==(const Rename&, const Rename&) = default;
};

// Hard link: new_path becomes another name of existing_path.
struct Link {
  static constexpr MessageType kType = MessageType::kLink;
  static constexpr std::string_view kName = "LINK";
  static constexpr bool kIsChange = true;
  std::string existing_path;
  std::string new_path;
  friend bool operator==(const Link&, const Link&) = default;
};

struct Symlink {
  static constexpr MessageType kType = MessageType::kSymlink;
  static constexpr std::string_view kName = "SYMLINK";
  static constexpr bool kIsChange = true;
  uint32_t uid = 0;
  uint32_t gid = 0;
  int64_t mtime_ns = 0;
  std::string path;
  std::string target;  // literal, 1..kSymlinkTargetMax bytes, no NUL; never resolved
  friend bool operator==(const Symlink&, const Symlink&) = default;
};

// SetAttr.mask: which fields apply. Fields outside the mask must be zero.
inline constexpr uint32_t kAttrMode = 1u << 0;
inline constexpr uint32_t kAttrOwner = 1u << 1;  // uid and gid
inline constexpr uint32_t kAttrMtime = 1u << 2;
inline constexpr uint32_t kAttrKnown = kAttrMode | kAttrOwner | kAttrMtime;

struct SetAttr {
  static constexpr MessageType kType = MessageType::kSetAttr;
  static constexpr std::string_view kName = "SETATTR";
  static constexpr bool kIsChange = true;
  uint32_t mask = 0;
  uint32_t mode = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  int64_t mtime_ns = 0;
  std::string path;
  friend bool operator==(const SetAttr&, const SetAttr&) = default;
};

struct SetXattr {
  static constexpr MessageType kType = MessageType::kSetXattr;
  static constexpr std::string_view kName = "SETXATTR";
  static constexpr bool kIsChange = true;
  std::string path;
  std::string name;              // 1..kXattrNameMax bytes, no NUL
  std::vector<std::byte> value;  // 0..kXattrValueMax bytes
  friend bool operator==(const SetXattr&, const SetXattr&) = default;
};

struct RemoveXattr {
  static constexpr MessageType kType = MessageType::kRemoveXattr;
  static constexpr std::string_view kName = "REMOVEXATTR";
  static constexpr bool kIsChange = true;
  std::string path;
  std::string name;
  friend bool operator==(const RemoveXattr&, const RemoveXattr&) = default;
};

// ---- Batches --------------------------------------------------------------------------

// Publish every change with seq <= last_seq not yet committed; change_count of them.
struct Commit {
  static constexpr MessageType kType = MessageType::kCommit;
  static constexpr std::string_view kName = "COMMIT";
  static constexpr bool kIsChange = false;
  uint64_t last_seq = 0;      // >= 1
  uint32_t change_count = 0;  // 1..kBatchChangesMax
  friend bool operator==(const Commit&, const Commit&) = default;
};

// Every change with seq <= seq is applied (durable: and fsynced).
struct Ack {
  static constexpr MessageType kType = MessageType::kAck;
  static constexpr std::string_view kName = "ACK";
  static constexpr bool kIsChange = false;
  uint64_t seq = 0;
  bool durable = false;
  friend bool operator==(const Ack&, const Ack&) = default;
};

// The batch ending at seq could not be made durable; the sender retries it later.
struct Nack {
  static constexpr MessageType kType = MessageType::kNack;
  static constexpr std::string_view kName = "NACK";
  static constexpr bool kIsChange = false;
  uint64_t seq = 0;
  ErrorCode code = ErrorCode::kIo;
  std::string message;  // 0..kErrorMessageMax bytes, no NUL
  friend bool operator==(const Nack&, const Nack&) = default;
};

// ---- Resync ---------------------------------------------------------------------------

// Asks the peer for its manifest of `root` (a relative path, or empty for everything).
struct ManifestRequest {
  static constexpr MessageType kType = MessageType::kManifestRequest;
  static constexpr std::string_view kName = "MANIFEST_REQUEST";
  static constexpr bool kIsChange = false;
  uint64_t request_id = 0;
  std::string root;
  friend bool operator==(const ManifestRequest&, const ManifestRequest&) = default;
};

enum class EntryKind : uint8_t { kFile = 1, kDirectory = 2, kSymlink = 3 };

struct ManifestEntry {
  EntryKind kind = EntryKind::kFile;
  uint32_t mode = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0;  // files: content size; symlinks: target length; directories: 0
  int64_t mtime_ns = 0;
  Hash128 hash;  // files: XXH3-128 of content; symlinks: of the target; directories: 0
  // XXH3-64 over the replicated xattrs (names sorted; name, NUL, u64 length, value each),
  // 0 when there are none; `xattr_names` lists those names, sorted, each ended by NUL.
  uint64_t xattr_hash = 0;
  // Files only: equal nonzero values mark names of one inode of the listing node (its
  // st_nlink > 1); 0 for a file with one link and for everything else. The values mean
  // nothing across nodes: only which names share one.
  uint64_t link_id = 0;
  std::string xattr_names = {};
  std::string path;
  friend bool operator==(const ManifestEntry&, const ManifestEntry&) = default;
};

inline constexpr uint8_t kManifestLast = 1u << 0;  // the last frame of this manifest

struct ManifestEntries {
  static constexpr MessageType kType = MessageType::kManifestEntries;
  static constexpr std::string_view kName = "MANIFEST_ENTRIES";
  static constexpr bool kIsChange = false;
  uint64_t request_id = 0;
  uint8_t flags = 0;                   // kManifestLast
  std::vector<ManifestEntry> entries;  // 0..kManifestEntriesMax
  friend bool operator==(const ManifestEntries&, const ManifestEntries&) = default;
};

// Asks for the block hashes of one file, at block_size granularity.
struct BlocksRequest {
  static constexpr MessageType kType = MessageType::kBlocksRequest;
  static constexpr std::string_view kName = "BLOCKS_REQUEST";
  static constexpr bool kIsChange = false;
  uint64_t request_id = 0;
  uint32_t block_size = kBlockSizeMin;
  std::string path;
  friend bool operator==(const BlocksRequest&, const BlocksRequest&) = default;
};

inline constexpr uint8_t kBlocksLast = 1u << 0;     // the last frame of this reply
inline constexpr uint8_t kBlocksMissing = 1u << 1;  // no such regular file
inline constexpr uint8_t kBlocksFlagsKnown = kBlocksLast | kBlocksMissing;

// Hashes of blocks [first_block, first_block + hashes.size()); the last block may be
// short. A file of N bytes has ceil(N / block_size) blocks.
struct BlocksReply {
  static constexpr MessageType kType = MessageType::kBlocksReply;
  static constexpr std::string_view kName = "BLOCKS_REPLY";
  static constexpr bool kIsChange = false;
  uint64_t request_id = 0;
  uint64_t file_size = 0;
  uint32_t block_size = kBlockSizeMin;
  uint64_t first_block = 0;
  uint8_t flags = 0;
  std::vector<Hash128> hashes;  // XXH3-128 per block, 0..kBlockHashesMax
  friend bool operator==(const BlocksReply&, const BlocksReply&) = default;
};

// Changes up to RESYNC_END are a resync: anything they replace or remove on the
// receiver goes to quarantine/<header epoch>/ instead of being lost.
struct ResyncBegin {
  static constexpr MessageType kType = MessageType::kResyncBegin;
  static constexpr std::string_view kName = "RESYNC_BEGIN";
  static constexpr bool kIsChange = false;
  friend bool operator==(const ResyncBegin&, const ResyncBegin&) = default;
};

// The receiver now mirrors the sender as of journal sequence last_seq.
struct ResyncEnd {
  static constexpr MessageType kType = MessageType::kResyncEnd;
  static constexpr std::string_view kName = "RESYNC_END";
  static constexpr bool kIsChange = false;
  uint64_t last_seq = 0;
  friend bool operator==(const ResyncEnd&, const ResyncEnd&) = default;
};

using Message = std::variant<Challenge, Response, Hello, Error, Ping, Pong, Lock, Promoted,
                             DemoteRequest, Demoted, FileBegin, Extent, Hole, FileEnd, FileAbort,
                             Truncate, Mkdir, Rmdir, Unlink, Rename, Link, Symlink, SetAttr,
                             SetXattr, RemoveXattr, Commit, Ack, Nack, ManifestRequest,
                             ManifestEntries, BlocksRequest, BlocksReply, ResyncBegin, ResyncEnd>;

MessageType TypeOf(const Message& message);
// "FILE_BEGIN"; "unknown" for a value no message has.
std::string_view MessageTypeName(MessageType type);
bool IsKnownMessageType(uint16_t type);
// True for the types whose frames carry a change sequence number in the header.
bool IsChangeType(MessageType type);

// The semantic checks every decoded message passes and every encoded message must pass:
// safe paths, lengths within limits, defined enum values, zero reserved fields.
// Returns the first violation found, e.g. "FILE_BEGIN: mode 0o170000 has bits outside
// kModeMask 0o7777".
Status ValidateMessage(const Message& message);

}  // namespace hasync::wire
