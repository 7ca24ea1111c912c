// The log (engine/log.h): one line per event on stderr, `level=… event=… key=value…`,
// values quoted and escaped so that nothing a value holds (a path from the peer, a
// hook's output) can split a line or hide in it, and the level threshold.
#include "engine/log.h"

#include <fcntl.h>
#include <unistd.h>

#include <string>

#include <gtest/gtest.h>

namespace hasync::engine {
namespace {

// Runs `fn` with stderr sent to a pipe and returns what it wrote.
template <typename Fn>
std::string CaptureStderr(Fn fn) {
  int fds[2];
  EXPECT_EQ(pipe2(fds, O_CLOEXEC), 0);
  int saved = dup(STDERR_FILENO);
  dup2(fds[1], STDERR_FILENO);
  fn();
  dup2(saved, STDERR_FILENO);
  close(saved);
  close(fds[1]);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  return out;
}

class LogTest : public ::testing::Test {
 protected:
  void TearDown() override { SetLogLevel(Level::kInfo); }
};

TEST_F(LogTest, OneLinePerEventWithLevelEventAndFields) {
  std::string out = CaptureStderr([] {
    Log(Level::kWarn, "session_closed")
        .kv("peer", "10.0.0.2:7461")
        .kv("bytes", uint64_t{42})
        .kv("delta", int64_t{-3})
        .kv("ok", true)
        .kv("seconds", 1.5);
  });
  EXPECT_EQ(out,
            "level=warn event=session_closed peer=10.0.0.2:7461 bytes=42 delta=-3 ok=true "
            "seconds=1.500\n");
}

TEST_F(LogTest, ValuesThatWouldBreakTheLineAreQuotedAndEscaped) {
  std::string out = CaptureStderr([] {
    Log(Level::kError, "verify_difference")
        .kv("path", std::string("0/a b\nlevel=info event=fake\r\x1b[2J\x7f"))
        .kv("what", "say \"hi\" \\ x=y\t.")
        .kv("empty", "");
  });
  EXPECT_EQ(out,
            "level=error event=verify_difference path=\"0/a b\\nlevel=info event=fake\\x0d"
            "\\x1b[2J\\x7f\" what=\"say \\\"hi\\\" \\\\ x=y\\t.\" empty=\"\"\n");
  // Whatever the values, exactly one newline: at the end.
  EXPECT_EQ(out.find('\n'), out.size() - 1);
}

TEST_F(LogTest, TheLevelThresholdDropsLowerLevels) {
  SetLogLevel(Level::kWarn);
  EXPECT_FALSE(LogEnabled(Level::kInfo));
  EXPECT_TRUE(LogEnabled(Level::kError));
  std::string out = CaptureStderr([] {
    Log(Level::kDebug, "a");
    Log(Level::kInfo, "b").kv("k", "v");
    Log(Level::kWarn, "c");
    Log(Level::kError, "d");
  });
  EXPECT_EQ(out, "level=warn event=c\nlevel=error event=d\n");
}

}  // namespace
}  // namespace hasync::engine
