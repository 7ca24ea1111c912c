// Every limit of the hasync wire protocol, in one place.
//
// Contract: a decoder never accepts a length, count or value beyond one of these
// constants, and an encoder asserts it never produces one. The relationships between
// them (an extent fits in a frame, a full manifest frame fits in a frame, ...) are
// checked at compile time below, so changing one limit cannot silently break another.
// docs/PROTOCOL.md lists the same constants; keep the two in step.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>

namespace hasync::wire {

// ---- Frame ----------------------------------------------------------------------------

// "HSYN" as it appears on the wire (bytes 48 53 59 4E), read as a little-endian u32.
inline constexpr uint32_t kFrameMagic = 0x4E595348;
// The one protocol version this build speaks. HELLO carries a [min, max] range so a
// later build can keep speaking version 1 to an older peer.
inline constexpr uint16_t kProtocolVersion = 1;
// Fixed header: magic u32, version u16, type u16, flags u16, reserved u16, body length
// u32, epoch u64, seq u64.
inline constexpr size_t kFrameHeaderSize = 32;

// The largest data payload of one EXTENT frame. 1 MiB keeps per-frame overhead below
// 0.01 % for bulk transfer while bounding the receive buffer a peer can make us hold.
inline constexpr size_t kExtentDataMax = size_t{1} << 20;
// The largest body of any frame: one full extent plus headroom for its fixed fields.
inline constexpr size_t kFrameBodyMax = kExtentDataMax + 4096;
// The largest frame on the wire, header included.
inline constexpr size_t kFrameMax = kFrameHeaderSize + kFrameBodyMax;

// ---- Names and paths ------------------------------------------------------------------

// One path component (Linux NAME_MAX).
inline constexpr size_t kNameMax = 255;
// A whole relative path, without the terminating NUL (Linux PATH_MAX - 1).
inline constexpr size_t kPathMax = 4095;
// A symlink target is stored literally (it may be absolute or contain ".."), but it is
// bounded like a path and must be NUL-free.
inline constexpr size_t kSymlinkTargetMax = 4095;
// Linux XATTR_NAME_MAX and XATTR_SIZE_MAX.
inline constexpr size_t kXattrNameMax = 255;
inline constexpr size_t kXattrValueMax = 65536;

// ---- Files ----------------------------------------------------------------------------

// off_t is signed 64-bit: no file on Linux is larger.
inline constexpr uint64_t kFileSizeMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
// Permission bits only (rwx for u/g/o plus setuid, setgid, sticky); the file type is
// implied by the message.
inline constexpr uint32_t kModeMask = 07777;
// (uid_t)-1 means "leave unchanged" to chown(2), so it is never a valid owner.
inline constexpr uint32_t kInvalidId = 0xFFFFFFFF;

// ---- Session, liveness, batches -------------------------------------------------------

// The lock record's canonical bytes are owned by lockwin/; wire only bounds them.
inline constexpr size_t kLockRecordMax = 8192;
// A node's human name (e.g. "mu01") shown in `hasync status`.
inline constexpr size_t kNodeNameMax = 64;
// ERROR and NACK messages carry a sentence, not a log.
inline constexpr size_t kErrorMessageMax = 1024;
// CHALLENGE nonce and RESPONSE MAC (HMAC-SHA256) sizes for plain-mode authentication.
inline constexpr size_t kNonceSize = 32;
inline constexpr size_t kMacSize = 32;
// Parallel data streams beside the one control stream (DESIGN §5).
inline constexpr uint16_t kDataStreamsMax = 16;
// Changes one COMMIT may publish.
inline constexpr uint32_t kBatchChangesMax = 65536;

// ---- Resync ---------------------------------------------------------------------------

// Entries in one MANIFEST_ENTRIES frame; a longer manifest spans several frames.
inline constexpr size_t kManifestEntriesMax = 128;
// Block hashes in one BLOCKS_REPLY frame.
inline constexpr size_t kBlockHashesMax = 4096;
// Block size for block-hash manifests: a power of two in [4 KiB, 1 MiB].
inline constexpr uint32_t kBlockSizeMin = 4096;
inline constexpr uint32_t kBlockSizeMax = uint32_t{1} << 20;

// ---- Encoded sizes of fixed parts (checked against the codec in codec.cpp) ------------

// EXTENT body before its data: file_size u64, offset u64, length u32.
inline constexpr size_t kExtentPrefixSize = 20;
// A u16 length prefix in front of every path, name and short string.
inline constexpr size_t kStr16Prefix = 2;
// A u32 length prefix in front of every blob (extent data, lock record, xattr value).
inline constexpr size_t kBlob32Prefix = 4;
// MANIFEST_ENTRIES entry without its strings: kind u8, mode u32, uid u32, gid u32,
// size u64, mtime_ns i64, hash 16 bytes, xattr_hash u64, link_id u64, and the u16 length
// prefix of xattr_names (the path's prefix is counted apart, as kStr16Prefix).
inline constexpr size_t kManifestEntryFixedSize = 1 + 4 + 4 + 4 + 8 + 8 + 16 + 8 + 8 + 2;
// The xattr names of one manifest entry, NUL-terminated each: 2 KiB is 8 names of the
// longest length, far more than a scheduler spool carries. A file with more is listed
// without names (and with its hash), so only its extra names cannot be removed.
inline constexpr size_t kManifestXattrNamesMax = 2048;
// MANIFEST_ENTRIES body before the entries: request_id u64, flags u8, count u16.
inline constexpr size_t kManifestEntriesPrefixSize = 8 + 1 + 2;
// BLOCKS_REPLY body before the hashes: request_id u64, file_size u64, block_size u32,
// first_block u64, flags u8, count u32.
inline constexpr size_t kBlocksReplyPrefixSize = 8 + 8 + 4 + 8 + 1 + 4;
inline constexpr size_t kBlockHashSize = 16;

// ---- Relationships --------------------------------------------------------------------

static_assert(kFrameMax <= std::numeric_limits<uint32_t>::max(),
              "the header's u32 body length must be able to express every frame");
static_assert(kExtentPrefixSize + kExtentDataMax <= kFrameBodyMax,
              "a full extent must fit in one frame");
static_assert(kExtentDataMax <= std::numeric_limits<uint32_t>::max(),
              "extent length travels as u32");
static_assert(kBlob32Prefix + kLockRecordMax <= kFrameBodyMax, "a lock record fits in a frame");
static_assert(kStr16Prefix + kPathMax + kStr16Prefix + kXattrNameMax + kBlob32Prefix +
                      kXattrValueMax <=
                  kFrameBodyMax,
              "SETXATTR with the longest path, name and value fits in a frame");
static_assert(kManifestEntriesPrefixSize +
                      kManifestEntriesMax * (kManifestEntryFixedSize + kManifestXattrNamesMax +
                                             kStr16Prefix + kPathMax) <=
                  kFrameBodyMax,
              "a full manifest frame with every path and name list at its maximum fits in a frame");
static_assert(kManifestEntriesMax <= std::numeric_limits<uint16_t>::max(),
              "manifest entry count travels as u16");
static_assert(kBlocksReplyPrefixSize + kBlockHashesMax * kBlockHashSize <= kFrameBodyMax,
              "a full block-hash reply fits in a frame");
static_assert(kPathMax <= std::numeric_limits<uint16_t>::max() &&
                  kSymlinkTargetMax <= std::numeric_limits<uint16_t>::max() &&
                  kErrorMessageMax <= std::numeric_limits<uint16_t>::max(),
              "paths, targets and messages travel with a u16 length");
static_assert(kNameMax <= kPathMax, "a component is part of a path");
static_assert((kBlockSizeMin & (kBlockSizeMin - 1)) == 0 &&
                  (kBlockSizeMax & (kBlockSizeMax - 1)) == 0 && kBlockSizeMin <= kBlockSizeMax,
              "block sizes are powers of two");
static_assert(kBlockSizeMax <= kExtentDataMax, "one changed block fits in one extent");
static_assert(kFrameHeaderSize % 8 == 0, "the body starts 8-byte aligned in a receive buffer");

}  // namespace hasync::wire
