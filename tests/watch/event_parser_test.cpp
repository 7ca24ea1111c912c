#include "engine/watch/event_parser.h"

#include <gtest/gtest.h>
#include <sys/fanotify.h>

#include "tests/watch/fan_buffer.h"

namespace hasync::engine::watch {
namespace {

using testing::Event;
using testing::FidRecord;

constexpr uint64_t kFs = 0x1122334455667788ULL;

TEST(EventParser, DirFidAndNameAreDecoded) {
  std::string buf =
      Event(FAN_CREATE, FidRecord(FAN_EVENT_INFO_TYPE_DFID_NAME, kFs, 1,
                                  std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8), "job.123"));
  std::vector<RawEvent> out;
  ASSERT_TRUE(ParseEvents(buf, &out).ok());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].mask, FAN_CREATE);
  ASSERT_TRUE(out[0].has_dir);
  EXPECT_EQ(out[0].dir.fsid, kFs);
  EXPECT_EQ(out[0].dir.handle_type, 1);
  EXPECT_EQ(out[0].dir.handle.size(), 8u);
  EXPECT_EQ(out[0].name, "job.123");
  EXPECT_FALSE(out[0].has_new_dir);
  EXPECT_FALSE(out[0].has_object);
}

TEST(EventParser, RenameCarriesOldNewAndTarget) {
  std::string recs = FidRecord(FAN_EVENT_INFO_TYPE_OLD_DFID_NAME, kFs, 1, "olddir12", "a") +
                     FidRecord(FAN_EVENT_INFO_TYPE_NEW_DFID_NAME, kFs, 1, "newdir12", "b") +
                     FidRecord(FAN_EVENT_INFO_TYPE_FID, kFs, 1, "object12");
  std::vector<RawEvent> out;
  const std::string buf = Event(FAN_RENAME | FAN_ONDIR, recs);  // views point into it
  ASSERT_TRUE(ParseEvents(buf, &out).ok());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].dir.handle, "olddir12");
  EXPECT_EQ(out[0].name, "a");
  EXPECT_EQ(out[0].new_dir.handle, "newdir12");
  EXPECT_EQ(out[0].new_name, "b");
  EXPECT_EQ(out[0].object.handle, "object12");
}

TEST(EventParser, SeveralEventsInOneBuffer) {
  std::string buf = Event(FAN_CREATE, FidRecord(FAN_EVENT_INFO_TYPE_DFID_NAME, kFs, 1, "d", "x")) +
                    Event(FAN_DELETE, FidRecord(FAN_EVENT_INFO_TYPE_DFID_NAME, kFs, 1, "d", "y"));
  std::vector<RawEvent> out;
  ASSERT_TRUE(ParseEvents(buf, &out).ok());
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].name, "y");
}

TEST(EventParser, OverflowEventHasNoRecords) {
  std::vector<RawEvent> out;
  const std::string buf = Event(FAN_Q_OVERFLOW, "");
  ASSERT_TRUE(ParseEvents(buf, &out).ok());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].mask & FAN_Q_OVERFLOW);
}

TEST(EventParser, UnknownInfoTypeIsSkipped) {
  std::string pidfd;
  fanotify_event_info_header hdr{};
  hdr.info_type = FAN_EVENT_INFO_TYPE_PIDFD;
  hdr.len = 8;
  testing::Append(&pidfd, hdr);
  testing::Append(&pidfd, int32_t{7});
  std::string recs = pidfd + FidRecord(FAN_EVENT_INFO_TYPE_DFID_NAME, kFs, 1, "d", "x");
  std::vector<RawEvent> out;
  const std::string buf = Event(FAN_CREATE, recs);
  ASSERT_TRUE(ParseEvents(buf, &out).ok());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].name, "x");
}

TEST(EventParser, TruncatedMetadataIsRejectedWithReason) {
  std::string buf = Event(FAN_CREATE, FidRecord(FAN_EVENT_INFO_TYPE_DFID_NAME, kFs, 1, "d", "x"));
  std::string two = buf + buf.substr(0, 10);
  std::vector<RawEvent> out;
  Status s = ParseEvents(two, &out);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("metadata size"), std::string::npos) << s.ToString();
  EXPECT_EQ(out.size(), 1u) << "the complete event before the bad bytes is kept";
}

TEST(EventParser, EventLenPastBufferIsRejected) {
  std::string buf = Event(FAN_CREATE, FidRecord(FAN_EVENT_INFO_TYPE_DFID_NAME, kFs, 1, "d", "x"));
  buf.resize(buf.size() - 4);
  std::vector<RawEvent> out;
  Status s = ParseEvents(buf, &out);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("event_len"), std::string::npos) << s.ToString();
  EXPECT_TRUE(out.empty());
}

TEST(EventParser, WrongVersionIsRejected) {
  std::string buf = Event(FAN_CREATE, FidRecord(FAN_EVENT_INFO_TYPE_DFID_NAME, kFs, 1, "d", "x"));
  buf[4] = 2;  // vers
  std::vector<RawEvent> out;
  Status s = ParseEvents(buf, &out);
  EXPECT_NE(s.message().find("version"), std::string::npos) << s.ToString();
}

TEST(EventParser, HandleOverrunningRecordIsRejected) {
  std::string rec = FidRecord(FAN_EVENT_INFO_TYPE_DFID, kFs, 1, "12345678");
  uint32_t huge = 100;  // handle_bytes sits after header (4) and fsid (8)
  std::memcpy(rec.data() + 12, &huge, 4);
  std::vector<RawEvent> out;
  Status s = ParseEvents(Event(FAN_CREATE, rec), &out);
  EXPECT_NE(s.message().find("overruns"), std::string::npos) << s.ToString();
}

TEST(EventParser, NameWithoutNulIsRejected) {
  std::string rec = FidRecord(FAN_EVENT_INFO_TYPE_DFID_NAME, kFs, 1, "1234", "abc");
  // name "abc\0" fills exactly to the 4-byte boundary: overwrite the NUL.
  ASSERT_EQ(rec.back(), '\0');
  rec.back() = 'd';
  std::vector<RawEvent> out;
  Status s = ParseEvents(Event(FAN_CREATE, rec), &out);
  EXPECT_NE(s.message().find("NUL"), std::string::npos) << s.ToString();
}

TEST(EventParser, NameWithSlashOrDotDotIsRejected) {
  std::vector<RawEvent> out;
  Status s1 = ParseEvents(
      Event(FAN_CREATE, FidRecord(FAN_EVENT_INFO_TYPE_DFID_NAME, kFs, 1, "d", "a/b")), &out);
  EXPECT_NE(s1.message().find("'/'"), std::string::npos) << s1.ToString();
  Status s2 = ParseEvents(
      Event(FAN_CREATE, FidRecord(FAN_EVENT_INFO_TYPE_DFID_NAME, kFs, 1, "d", "..")), &out);
  EXPECT_NE(s2.message().find(".."), std::string::npos) << s2.ToString();
  EXPECT_TRUE(out.empty());
}

TEST(EventParser, InfoRecordLengthBelowHeaderIsRejected) {
  std::string rec = FidRecord(FAN_EVENT_INFO_TYPE_DFID_NAME, kFs, 1, "d", "x");
  uint16_t two = 2;
  std::memcpy(rec.data() + 2, &two, 2);
  std::vector<RawEvent> out;
  Status s = ParseEvents(Event(FAN_CREATE, rec), &out);
  EXPECT_NE(s.message().find("info record length"), std::string::npos) << s.ToString();
}

TEST(EventParser, EventWithoutFidIsRejected) {
  std::vector<RawEvent> out;
  Status s = ParseEvents(Event(FAN_CREATE, ""), &out);
  EXPECT_NE(s.message().find("no file id"), std::string::npos) << s.ToString();
}

TEST(EventParser, EventCarryingAnFdIsRejected) {
  std::string buf = Event(FAN_CREATE, FidRecord(FAN_EVENT_INFO_TYPE_DFID_NAME, kFs, 1, "d", "x"));
  int32_t fd = 5;
  std::memcpy(buf.data() + 16, &fd, 4);  // metadata.fd
  std::vector<RawEvent> out;
  Status s = ParseEvents(buf, &out);
  EXPECT_NE(s.message().find("carries fd"), std::string::npos) << s.ToString();
}

TEST(EventParser, EmptyBufferIsNoEvents) {
  std::vector<RawEvent> out;
  EXPECT_TRUE(ParseEvents("", &out).ok());
  EXPECT_TRUE(out.empty());
}

}  // namespace
}  // namespace hasync::engine::watch
