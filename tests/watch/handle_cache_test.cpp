#include "engine/watch/handle_cache.h"

#include <gtest/gtest.h>

namespace hasync::engine::watch {
namespace {

std::string K(std::string_view h) { return HandleCache::Key(7, 1, h); }

TEST(HandleCache, FindReturnsInsertedPath) {
  HandleCache c(4);
  c.Insert(K("a"), "/s/a", false);
  const HandleCache::Entry* e = c.Find(K("a"));
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->path, "/s/a");
  EXPECT_EQ(c.Find(K("b")), nullptr);
}

TEST(HandleCache, KeyDistinguishesFsidAndType) {
  EXPECT_NE(HandleCache::Key(1, 1, "h"), HandleCache::Key(2, 1, "h"));
  EXPECT_NE(HandleCache::Key(1, 1, "h"), HandleCache::Key(1, 2, "h"));
}

TEST(HandleCache, LeastRecentlyUsedIsEvicted) {
  HandleCache c(2);
  c.Insert(K("a"), "/a", false);
  c.Insert(K("b"), "/b", false);
  ASSERT_NE(c.Find(K("a")), nullptr);  // a is now the most recent
  c.Insert(K("c"), "/c", false);
  EXPECT_EQ(c.size(), 2u);
  EXPECT_EQ(c.evictions(), 1u);
  EXPECT_EQ(c.Find(K("b")), nullptr);
  EXPECT_NE(c.Find(K("a")), nullptr);
  EXPECT_NE(c.Find(K("c")), nullptr);
}

TEST(HandleCache, RenameRewritesExactSubtreeOnly) {
  HandleCache c(16);
  c.Insert(K("d"), "/s/d", false);
  c.Insert(K("e"), "/s/d/e", false);
  c.Insert(K("dx"), "/s/dx", false);  // shares the prefix text, not the directory
  HandleCache::RenameOutcome o = c.RenameSubtree("/s/d", "/s/n");
  EXPECT_EQ(o.rewritten, 2u);
  EXPECT_FALSE(o.speculative_under_new);
  EXPECT_EQ(c.Find(K("d"))->path, "/s/n");
  EXPECT_EQ(c.Find(K("e"))->path, "/s/n/e");
  EXPECT_EQ(c.Find(K("dx"))->path, "/s/dx");
}

TEST(HandleCache, SpeculativeEntryUnderNewNameIsDoubt) {
  HandleCache c(16);
  c.Insert(K("e"), "/s/n/e", true);  // resolved after the rename had already happened
  HandleCache::RenameOutcome o = c.RenameSubtree("/s/d", "/s/n");
  EXPECT_TRUE(o.speculative_under_new);
  EXPECT_EQ(c.Find(K("e")), nullptr) << "erased, so it is resolved again";
}

TEST(HandleCache, SettleMakesEarlierEntriesExact) {
  HandleCache c(16);
  c.Insert(K("e"), "/s/n/e", true);
  ASSERT_TRUE(c.IsSpeculative(*c.Find(K("e"))));
  c.Settle();
  EXPECT_FALSE(c.IsSpeculative(*c.Find(K("e"))));
  c.Insert(K("f"), "/s/f", true);
  EXPECT_TRUE(c.IsSpeculative(*c.Find(K("f"))));
  HandleCache::RenameOutcome o = c.RenameSubtree("/s/x", "/s/n");
  EXPECT_FALSE(o.speculative_under_new) << "a settled entry under the target is only stale";
}

TEST(HandleCache, SpeculativeEntryUnderOldNameIsDroppedNotRewritten) {
  HandleCache c(16);
  c.Insert(K("d2"), "/s/d", true);  // may be a new directory that took the old name
  HandleCache::RenameOutcome o = c.RenameSubtree("/s/d", "/s/n");
  EXPECT_EQ(o.dropped, 1u);
  EXPECT_EQ(c.Find(K("d2")), nullptr);
}

TEST(HandleCache, EraseSubtree) {
  HandleCache c(16);
  c.Insert(K("d"), "/s/d", false);
  c.Insert(K("e"), "/s/d/e", false);
  c.Insert(K("f"), "/s/f", false);
  EXPECT_EQ(c.EraseSubtree("/s/d"), 2u);
  EXPECT_EQ(c.size(), 1u);
}

TEST(HandleCache, IsAtOrUnder) {
  EXPECT_TRUE(HandleCache::IsAtOrUnder("/a/b", "/a"));
  EXPECT_TRUE(HandleCache::IsAtOrUnder("/a", "/a"));
  EXPECT_FALSE(HandleCache::IsAtOrUnder("/ab", "/a"));
  EXPECT_FALSE(HandleCache::IsAtOrUnder("/a", "/a/b"));
}

}  // namespace
}  // namespace hasync::engine::watch
