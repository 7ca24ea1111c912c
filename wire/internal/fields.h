// The field list of every message body: the single description of its layout.
//
// Contract: Fields(io, m) visits m's fields in wire order with io being a Sizer, Writer
// (m const) or Reader (m mutable). docs/PROTOCOL.md documents these same lists byte by
// byte; a change here is a protocol change and needs a version bump.
#pragma once

#include <type_traits>

#include "wire/limits.h"
#include "wire/messages.h"

namespace hasync::wire::internal {

// M is T or const T: lets one list serve the encoder (const) and the decoder.
template <class M, class T>
concept Is = std::is_same_v<std::remove_const_t<M>, T>;

template <class IO, Is<Challenge> M>
void Fields(IO& io, M& m) {
  io.Bytes("nonce", m.nonce);
}

template <class IO, Is<Response> M>
void Fields(IO& io, M& m) {
  io.Bytes("mac", m.mac);
}

template <class IO, Is<Hello> M>
void Fields(IO& io, M& m) {
  io.Int("version_min", m.version_min);
  io.Int("version_max", m.version_max);
  io.Int("role", m.role);
  io.Int("stream_kind", m.stream_kind);
  io.Int("stream_index", m.stream_index);
  io.Int("node_id", m.node_id);
  io.Int("session_id", m.session_id);
  io.Int("capabilities", m.capabilities);
  io.Int("last_applied_seq", m.last_applied_seq);
  io.Str16("node_name", m.node_name, kNodeNameMax, "kNodeNameMax");
}

template <class IO, Is<Error> M>
void Fields(IO& io, M& m) {
  io.Int("code", m.code);
  io.Str16("message", m.message, kErrorMessageMax, "kErrorMessageMax");
}

template <class IO, class M>
requires Is<M, Ping> || Is<M, Pong>
void Fields(IO& io, M& m) {
  io.Int("token", m.token);
  io.Int("send_ns", m.send_ns);
}

template <class IO, Is<Lock> M>
void Fields(IO& io, M& m) {
  io.Blob32("record", m.record, kLockRecordMax, "kLockRecordMax");
}

template <class IO, Is<Promoted> M>
void Fields(IO& io, M& m) {
  io.Int("reason", m.reason);
  io.Int("node_id", m.node_id);
}

template <class IO, Is<DemoteRequest> M>
void Fields(IO& io, M& m) {
  io.Int("reason", m.reason);
}

template <class IO, Is<Demoted> M>
void Fields(IO& io, M& m) {
  io.Int("reason", m.reason);
  io.Bool("on_demote_ok", m.on_demote_ok);
  io.Int("last_seq", m.last_seq);
}

template <class IO, Is<FileBegin> M>
void Fields(IO& io, M& m) {
  io.Int("size", m.size);
  io.Int("mode", m.mode);
  io.Int("uid", m.uid);
  io.Int("gid", m.gid);
  io.Int("flags", m.flags);
  io.Int("mtime_ns", m.mtime_ns);
  io.Str16("path", m.path, kPathMax, "kPathMax");
}

// The data comes last and its fixed prefix is kExtentPrefixSize bytes, so a plain-mode
// receiver can read header + prefix and splice the data straight into a file.
template <class IO, Is<Extent> M>
void Fields(IO& io, M& m) {
  io.Int("file_size", m.file_size);
  io.Int("offset", m.offset);
  io.Blob32("data", m.data, kExtentDataMax, "kExtentDataMax");
}

template <class IO, Is<Hole> M>
void Fields(IO& io, M& m) {
  io.Int("file_size", m.file_size);
  io.Int("offset", m.offset);
  io.Int("length", m.length);
}

template <class IO, Is<FileEnd> M>
void Fields(IO& io, M& m) {
  io.Int("size", m.size);
  io.Hash("hash", m.hash);
  io.Int("range_count", m.range_count);
  io.Int("data_bytes", m.data_bytes);
}

template <class IO, Is<FileAbort> M>
void Fields(IO& io, M& m) {
  io.Int("reason", m.reason);
}

template <class IO, Is<Truncate> M>
void Fields(IO& io, M& m) {
  io.Int("size", m.size);
  io.Str16("path", m.path, kPathMax, "kPathMax");
}

template <class IO, Is<Mkdir> M>
void Fields(IO& io, M& m) {
  io.Int("mode", m.mode);
  io.Int("uid", m.uid);
  io.Int("gid", m.gid);
  io.Str16("path", m.path, kPathMax, "kPathMax");
}

template <class IO, class M>
requires Is<M, Rmdir> || Is<M, Unlink>
void Fields(IO& io, M& m) { io.Str16("path", m.path, kPathMax, "kPathMax"); }

template <class IO, Is<Rename> M>
void Fields(IO& io, M& m) {
  io.Int("flags", m.flags);
  io.Str16("from", m.from, kPathMax, "kPathMax");
  io.Str16("to", m.to, kPathMax, "kPathMax");
}

template <class IO, Is<Link> M>
void Fields(IO& io, M& m) {
  io.Str16("existing_path", m.existing_path, kPathMax, "kPathMax");
  io.Str16("new_path", m.new_path, kPathMax, "kPathMax");
}

template <class IO, Is<Symlink> M>
void Fields(IO& io, M& m) {
  io.Int("uid", m.uid);
  io.Int("gid", m.gid);
  io.Int("mtime_ns", m.mtime_ns);
  io.Str16("path", m.path, kPathMax, "kPathMax");
  io.Str16("target", m.target, kSymlinkTargetMax, "kSymlinkTargetMax");
}

template <class IO, Is<SetAttr> M>
void Fields(IO& io, M& m) {
  io.Int("mask", m.mask);
  io.Int("mode", m.mode);
  io.Int("uid", m.uid);
  io.Int("gid", m.gid);
  io.Int("mtime_ns", m.mtime_ns);
  io.Str16("path", m.path, kPathMax, "kPathMax");
}

template <class IO, Is<SetXattr> M>
void Fields(IO& io, M& m) {
  io.Str16("path", m.path, kPathMax, "kPathMax");
  io.Str16("name", m.name, kXattrNameMax, "kXattrNameMax");
  io.Blob32("value", m.value, kXattrValueMax, "kXattrValueMax");
}

template <class IO, Is<RemoveXattr> M>
void Fields(IO& io, M& m) {
  io.Str16("path", m.path, kPathMax, "kPathMax");
  io.Str16("name", m.name, kXattrNameMax, "kXattrNameMax");
}

template <class IO, Is<Commit> M>
void Fields(IO& io, M& m) {
  io.Int("last_seq", m.last_seq);
  io.Int("change_count", m.change_count);
}

template <class IO, Is<Ack> M>
void Fields(IO& io, M& m) {
  io.Int("seq", m.seq);
  io.Bool("durable", m.durable);
}

template <class IO, Is<Nack> M>
void Fields(IO& io, M& m) {
  io.Int("seq", m.seq);
  io.Int("code", m.code);
  io.Str16("message", m.message, kErrorMessageMax, "kErrorMessageMax");
}

template <class IO, Is<ManifestRequest> M>
void Fields(IO& io, M& m) {
  io.Int("request_id", m.request_id);
  io.Str16("root", m.root, kPathMax, "kPathMax");
}

template <class IO, Is<ManifestEntry> M>
void Fields(IO& io, M& m) {
  io.Int("kind", m.kind);
  io.Int("mode", m.mode);
  io.Int("uid", m.uid);
  io.Int("gid", m.gid);
  io.Int("size", m.size);
  io.Int("mtime_ns", m.mtime_ns);
  io.Hash("hash", m.hash);
  io.Int("xattr_hash", m.xattr_hash);
  io.Int("link_id", m.link_id);
  io.Str16("xattr_names", m.xattr_names, kManifestXattrNamesMax, "kManifestXattrNamesMax");
  io.Str16("path", m.path, kPathMax, "kPathMax");
}

template <class IO, Is<ManifestEntries> M>
void Fields(IO& io, M& m) {
  io.Int("request_id", m.request_id);
  io.Int("flags", m.flags);
  io.template Vector<uint16_t>("entries", m.entries, kManifestEntriesMax, "kManifestEntriesMax",
                               kManifestEntryFixedSize + kStr16Prefix,
                               [&io](auto& e) { Fields(io, e); });
}

template <class IO, Is<BlocksRequest> M>
void Fields(IO& io, M& m) {
  io.Int("request_id", m.request_id);
  io.Int("block_size", m.block_size);
  io.Str16("path", m.path, kPathMax, "kPathMax");
}

template <class IO, Is<BlocksReply> M>
void Fields(IO& io, M& m) {
  io.Int("request_id", m.request_id);
  io.Int("file_size", m.file_size);
  io.Int("block_size", m.block_size);
  io.Int("first_block", m.first_block);
  io.Int("flags", m.flags);
  io.template Vector<uint32_t>("hashes", m.hashes, kBlockHashesMax, "kBlockHashesMax",
                               kBlockHashSize, [&io](auto& h) { io.Hash("hash", h); });
}

template <class IO, Is<ResyncBegin> M>
void Fields(IO&, M&) {}

template <class IO, Is<ResyncEnd> M>
void Fields(IO& io, M& m) {
  io.Int("last_seq", m.last_seq);
}

}  // namespace hasync::wire::internal
