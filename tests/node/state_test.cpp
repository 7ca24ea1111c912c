#include "engine/node/state.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

namespace hasync::engine {
namespace {

TEST(NodeState, SaveThenLoadRoundTrips) {
  char tmpl[] = "/tmp/hasync-state-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  NodeState s{0xdeadbeef, 7, NodeRole::kPrimary, 123456, 0, 0};
  ASSERT_TRUE(SaveNodeState(tmpl, s).ok());
  auto loaded = LoadNodeState(tmpl);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(*loaded, s);
  // The optional fields of a demoted node round-trip too.
  s.role = NodeRole::kStandby;
  s.rejoin_epoch = 6;
  s.last_failover_unix_ms = 1'800'000'000'000;
  ASSERT_TRUE(SaveNodeState(tmpl, s).ok());
  loaded = LoadNodeState(tmpl);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(*loaded, s);
  // And those of a node that handed over by switchover.
  s.rejoin_epoch = 0;
  s.handed_over = true;
  ASSERT_TRUE(SaveNodeState(tmpl, s).ok());
  loaded = LoadNodeState(tmpl);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(*loaded, s);
  struct stat st {};
  ASSERT_EQ(stat((std::string(tmpl) + "/state").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::filesystem::remove_all(tmpl);
}

TEST(NodeState, MissingFileIsNotFound) {
  EXPECT_EQ(LoadNodeState("/nonexistent-hasync-dir").status().code(), Code::kNotFound);
}

TEST(NodeState, MalformedLinesAreRejectedWithLineNumber) {
  auto r = DecodeNodeState("node_id=1\nepoch=x\nrole=primary\nlast_applied_seq=0\n", "state");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "state:2: epoch is not a number");
  EXPECT_FALSE(DecodeNodeState("node_id=1\nepoch=1\nrole=boss\nlast_applied_seq=0\n", "s").ok());
  EXPECT_FALSE(DecodeNodeState("node_id=1\nepoch=1\nrole=primary\n", "s").ok());  // missing key
  EXPECT_FALSE(DecodeNodeState("node_id=0\nepoch=1\nrole=primary\nlast_applied_seq=0\n", "s").ok());
  EXPECT_FALSE(
      DecodeNodeState("node_id=1\nepoch=1\nrole=primary\nlast_applied_seq=0\nx=1\n", "s").ok());
  EXPECT_FALSE(
      DecodeNodeState("node_id=1\nepoch=1\nrole=standby\nlast_applied_seq=0\nhanded_over=2\n", "s")
          .ok());
}

}  // namespace
}  // namespace hasync::engine
