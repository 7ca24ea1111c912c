#include "engine/journal/journal.h"

#include <gtest/gtest.h>

namespace hasync::engine {
namespace {

std::vector<Change> TakeAll(Journal& j) {
  std::vector<Change> out;
  j.Take(out, 1'000'000);
  return out;
}

// Compact rendering so expectations read like the primary's history.
std::vector<std::string> Render(const std::vector<Change>& changes) {
  std::vector<std::string> out;
  for (const Change& c : changes) {
    std::string s(ChangeKindName(c.kind));
    s += ' ';
    if (c.kind == ChangeKind::kRename) s += c.from + "->";
    s += c.path;
    out.push_back(s);
  }
  return out;
}

using Lines = std::vector<std::string>;

TEST(Journal, RepeatedUpsertsOfOnePathCoalesce) {
  Journal j({}, 1);
  for (int i = 0; i < 100; ++i) j.Upsert(0, "log/slurmctld.log");
  EXPECT_EQ(Render(TakeAll(j)), (Lines{"upsert log/slurmctld.log"}));
  EXPECT_EQ(j.stats().coalesced, 99u);
  EXPECT_EQ(j.change_seq(), 100u);  // every change is progress, merged or not
}

TEST(Journal, SlurmStateSaveSequenceKeepsNamespaceOrder) {
  Journal j({}, 1);
  j.Upsert(0, "job_state.new");
  j.Remove(0, "job_state.old");
  j.Upsert(0, "job_state.old");  // link job_state job_state.old
  j.Remove(0, "job_state");
  j.Upsert(0, "job_state");  // link job_state.new job_state
  j.Remove(0, "job_state.new");
  EXPECT_EQ(Render(TakeAll(j)),
            (Lines{"upsert job_state.new", "remove job_state.old", "upsert job_state.old",
                   "remove job_state", "upsert job_state", "remove job_state.new"}));
}

TEST(Journal, UpsertAfterRemoveOfSamePathIsNotMergedBackwards) {
  Journal j({}, 1);
  j.Upsert(0, "a");
  j.Remove(0, "a");
  j.Upsert(0, "a");
  j.Upsert(0, "a");
  EXPECT_EQ(Render(TakeAll(j)), (Lines{"upsert a", "remove a", "upsert a"}));
}

TEST(Journal, PendingUpsertOfRenamedFileMovesBehindTheRename) {
  Journal j({}, 1);
  j.Upsert(0, "tmp/x");
  j.Upsert(0, "other");
  j.Rename(0, "tmp/x", "final/x", false);
  EXPECT_EQ(Render(TakeAll(j)), (Lines{"upsert other", "rename tmp/x->final/x", "upsert final/x"}));
  EXPECT_EQ(j.stats().rewritten, 1u);
}

TEST(Journal, PendingUpsertOfRenameTargetMovesBehindTheRename) {
  Journal j({}, 1);
  j.Upsert(0, "job.JB");  // the old object at the target name
  j.Rename(0, "job.JB.tmp", "job.JB", false);
  EXPECT_EQ(Render(TakeAll(j)), (Lines{"rename job.JB.tmp->job.JB", "upsert job.JB"}));
}

// The Upsert a rename moves behind it keeps the inode its event was about: taken after
// the rename, it must still lead the sender to that inode's other names (a write
// through `x`, then a file renamed over `x`, left the other names of the written inode
// stale). A name pending at both ends is queued once, with the replaced inode's object.
TEST(Journal, UpsertsMovedBehindARenameKeepTheirObjects) {
  Journal j({}, 1);
  j.Upsert(0, "x", "inode-I");
  j.Upsert(0, "x.new", "inode-J");
  j.Rename(0, "x.new", "x", false);
  std::vector<Change> out = TakeAll(j);
  ASSERT_EQ(Render(out), (Lines{"rename x.new->x", "upsert x"}));
  EXPECT_EQ(out[1].object, "inode-I");

  j.Upsert(0, "y.tmp", "inode-K");  // only the renamed file's own: kept
  j.Rename(0, "y.tmp", "y", false);
  out = TakeAll(j);
  ASSERT_EQ(Render(out), (Lines{"rename y.tmp->y", "upsert y"}));
  EXPECT_EQ(out[1].object, "inode-K");

  j.Upsert(0, "e/f", "inode-L");
  j.Upsert(0, "d/f", "inode-M");
  j.Upsert(0, "d/g", "inode-N");
  j.Rename(0, "d", "e", true);
  out = TakeAll(j);
  ASSERT_EQ(Render(out), (Lines{"rename d->e", "upsert e/f", "upsert e/g", "rescan e"}));
  EXPECT_EQ(out[1].object, "inode-L");
  EXPECT_EQ(out[2].object, "inode-N");
}

// One name can be two inodes' within one pending entry: a write through `x` after a
// file was renamed over it reports the written inode under `x`, and the kernel may merge
// that event into one queued earlier, ahead of the event of the file now at `x`
// (Convergence seed 10 under load). Every inode coalesced events were about is kept,
// the latest as `object`, the others oldest first, bounded; a rename carries both ends'.
TEST(Journal, CoalescedUpsertsKeepEveryInodeTheirEventsWereAbout) {
  using Keys = std::vector<std::string>;
  Journal j({}, 1);
  j.Upsert(0, "x", "inode-J");
  j.Upsert(0, "x");  // no handle: changes nothing
  j.Upsert(0, "x", "inode-X");
  std::vector<Change> out = TakeAll(j);
  ASSERT_EQ(Render(out), (Lines{"upsert x"}));
  EXPECT_EQ(out[0].object, "inode-X");
  EXPECT_EQ(out[0].other_objects, (Keys{"inode-J"}));
  EXPECT_EQ(j.bytes(), 0u);

  j.Upsert(0, "x", "inode-J");
  j.Upsert(0, "x", "inode-X");
  j.Upsert(0, "x", "inode-J");  // again the latest: each kept once
  out = TakeAll(j);
  EXPECT_EQ(out[0].object, "inode-J");
  EXPECT_EQ(out[0].other_objects, (Keys{"inode-X"}));

  for (int i = 0; i < 8; ++i) j.Upsert(0, "y", "o" + std::to_string(i));
  out = TakeAll(j);
  EXPECT_EQ(out[0].object, "o7");
  EXPECT_EQ(out[0].other_objects, (Keys{"o3", "o4", "o5", "o6"}));
  EXPECT_EQ(j.stats().objects_dropped, 3u);
  EXPECT_EQ(j.bytes(), 0u);

  // A requeued entry's objects are older than a pending event's: behind it, in order.
  j.Upsert(0, "z", "new");
  j.Requeue(0, "z", "old", {"oldest", "older"});
  out = TakeAll(j);
  EXPECT_EQ(out[0].object, "new");
  EXPECT_EQ(out[0].other_objects, (Keys{"oldest", "older", "old"}));

  // Both ends of a rename: the replaced file's latest is `object`; the others are its
  // older one and the renamed file's, which counts as the oldest.
  j.Upsert(0, "x", "inode-I");
  j.Upsert(0, "x", "inode-H");
  j.Upsert(0, "x.new", "inode-K");
  j.Rename(0, "x.new", "x", false);
  out = TakeAll(j);
  ASSERT_EQ(Render(out), (Lines{"rename x.new->x", "upsert x"}));
  EXPECT_EQ(out[1].object, "inode-H");
  EXPECT_EQ(out[1].other_objects, (Keys{"inode-K", "inode-I"}));
  EXPECT_EQ(j.bytes(), 0u);
}

// The objects count against max_bytes: a coalesced Upsert or a requeue whose objects
// pass it collapses the journal into a rescan, as a new entry would.
TEST(Journal, ObjectsPastTheByteLimitCollapseIntoARescan) {
  JournalLimits limits;
  limits.max_bytes = 64;
  Journal j(limits, 1);
  j.Upsert(0, "x", std::string(20, 'a'));
  j.Upsert(0, "x", std::string(20, 'b'));
  EXPECT_EQ(j.stats().overflows, 0u);
  j.Upsert(0, "x", std::string(30, 'c'));  // 1 + 20 + 20 + 30 bytes: past 64
  EXPECT_EQ(j.stats().overflows, 1u);
  EXPECT_EQ(Render(TakeAll(j)), (Lines{"rescan "}));
  EXPECT_EQ(j.bytes(), 0u);

  j.Upsert(0, "y", std::string(20, 'a'));
  j.Requeue(0, "y", std::string(20, 'b'), {std::string(30, 'c')});
  EXPECT_EQ(j.stats().overflows, 2u);
  EXPECT_EQ(Render(TakeAll(j)), (Lines{"rescan "}));
  EXPECT_EQ(j.bytes(), 0u);
}

// A read the sender aborted goes back with its entry's object, which is older than any
// event that arrived meanwhile: it fills a missing object, never replaces a newer one.
TEST(Journal, ARequeuedUpsertNeverReplacesANewerObject) {
  Journal j({}, 1);
  j.Upsert(0, "f", "newer");
  j.Requeue(0, "f", "older");
  std::vector<Change> out = TakeAll(j);
  ASSERT_EQ(Render(out), (Lines{"upsert f"}));
  EXPECT_EQ(out[0].object, "newer");

  j.Upsert(0, "f");
  j.Requeue(0, "f", "older");
  out = TakeAll(j);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].object, "older");

  j.Requeue(0, "f", "older");
  j.Upsert(0, "f", "newer");
  out = TakeAll(j);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].object, "newer");
}

// Pins a lost file seen under load in Replication.EveryKindOfChangeReplicates: `a/b/inside`
// written, then `a` renamed to `c/a-moved`; the watcher resolved `b`'s handle after the
// rename and reported the write as `c/a-moved/b/inside`, ahead of the rename. The
// journal dropped it as an Upsert of the rename's target, and the file never shipped.
TEST(Journal, AWriteReportedUnderTheRenamedDirectorysNewNameIsKept) {
  Journal j({}, 1);
  j.Upsert(0, "c/a-moved/b/inside");  // path resolved after the rename
  j.Rename(0, "a", "c/a-moved", true);
  EXPECT_EQ(Render(TakeAll(j)),
            (Lines{"rename a->c/a-moved", "upsert c/a-moved/b/inside", "rescan c/a-moved"}));
}

TEST(Journal, AnUpsertQueuedAgainAfterRenamesIsLookedAtUnderTheNewName) {
  Journal j({}, 1);
  j.Upsert(0, "d/job");
  ASSERT_EQ(TakeAll(j).size(), 1u);           // the sender took it, its read was aborted…
  j.Rename(0, "d/job", "d/job.done", false);  // …and meanwhile the file was renamed
  j.Rename(0, "d", "archive", true);          // and then its directory
  j.Upsert(0, "d/job");                       // the sender queues it again
  EXPECT_EQ(Render(TakeAll(j)),
            (Lines{"rename d/job->d/job.done", "rename d->archive", "upsert archive/job.done",
                   "rescan archive", "upsert d/job"}));
}

// Pins a stale file found by the random-workload test: the sender took the Upsert of
// d3/e0/f7 after the file had been renamed to d0/f5 on disk but before that Rename's
// event arrived, found nothing, and the Rename then moved the model's older content.
// A file Rename is now followed by an Upsert of its new name.
TEST(Journal, AFileRenameIsFollowedByAnUpsertOfTheNewName) {
  Journal j({}, 1);
  j.Rename(0, "d3/e0/f7", "d0/f5", false);
  EXPECT_EQ(Render(TakeAll(j)), (Lines{"rename d3/e0/f7->d0/f5", "upsert d0/f5"}));
}

TEST(Journal, DirectoryRenameRewritesEveryPendingUpsertBelowIt) {
  Journal j({}, 1);
  j.Upsert(0, "d");
  j.Upsert(0, "d/a");
  j.Upsert(0, "d/sub/b");
  j.Upsert(0, "dd/not-below");  // shares a prefix but is not inside d/
  j.Rename(0, "d", "e", true);
  EXPECT_EQ(Render(TakeAll(j)), (Lines{"upsert dd/not-below", "rename d->e", "upsert e",
                                       "upsert e/a", "upsert e/sub/b", "rescan e"}));
}

TEST(Journal, UpsertAfterTakeIsQueuedAgain) {
  Journal j({}, 1);
  j.Upsert(0, "a");
  EXPECT_EQ(TakeAll(j).size(), 1u);
  j.Upsert(0, "a");
  EXPECT_EQ(Render(TakeAll(j)), (Lines{"upsert a"}));
}

TEST(Journal, SamePathInDifferentRootsIsTwoEntries) {
  Journal j({}, 2);
  j.Upsert(0, "a");
  j.Upsert(1, "a");
  auto changes = TakeAll(j);
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[0].root, 0u);
  EXPECT_EQ(changes[1].root, 1u);
}

TEST(Journal, TooManyEntriesCollapseIntoOneRescanPerRoot) {
  Journal j({.max_entries = 8, .max_bytes = 1 << 20}, 2);
  for (int i = 0; i < 9; ++i) j.Remove(0, "f" + std::to_string(i));
  auto changes = TakeAll(j);
  EXPECT_EQ(Render(changes), (Lines{"rescan ", "rescan "}));
  EXPECT_EQ(changes[0].root, 0u);
  EXPECT_EQ(changes[1].root, 1u);
  EXPECT_EQ(j.stats().overflows, 1u);
}

TEST(Journal, TooManyBytesCollapseIntoRescan) {
  Journal j({.max_entries = 1000, .max_bytes = 100}, 1);
  j.Upsert(0, std::string(60, 'a'));
  EXPECT_EQ(j.stats().overflows, 0u);
  j.Upsert(0, std::string(60, 'b'));
  EXPECT_EQ(j.stats().overflows, 1u);
  EXPECT_EQ(Render(TakeAll(j)), (Lines{"rescan "}));
}

TEST(Journal, KilledEntriesCountTowardsTheEntryBound) {
  // Renames kill and re-append; the dead slots must not let the deque grow unbounded.
  Journal j({.max_entries = 16, .max_bytes = 1 << 20}, 1);
  j.Upsert(0, "a");
  for (int i = 0; i < 20; ++i) {
    j.Rename(0, i % 2 == 0 ? "a" : "b", i % 2 == 0 ? "b" : "a", false);
  }
  EXPECT_GE(j.stats().overflows, 1u);
  EXPECT_LE(j.size(), 16u);
}

TEST(Journal, TakeRespectsMaxAndKeepsTheRest) {
  Journal j({}, 1);
  for (int i = 0; i < 5; ++i) j.Remove(0, "f" + std::to_string(i));
  std::vector<Change> out;
  EXPECT_EQ(j.Take(out, 2), 2u);
  EXPECT_EQ(j.size(), 3u);
  EXPECT_EQ(out[1].path, "f1");
  EXPECT_EQ(out[0].seq, 1u);
  EXPECT_EQ(out[1].seq, 2u);
}

TEST(Journal, ByteAccountingReturnsToZero) {
  Journal j({}, 1);
  j.Upsert(0, "abc");
  j.Rename(0, "abc", "defg", false);
  j.Remove(0, "x");
  EXPECT_GT(j.bytes(), 0u);
  TakeAll(j);
  EXPECT_EQ(j.bytes(), 0u);
  EXPECT_TRUE(j.empty());
}

TEST(Journal, MentionsCountsEveryLiveEntryThatNamesAPath) {
  Journal j({}, 2);
  EXPECT_FALSE(j.Mentions(0, "X"));
  j.Remove(0, "X");
  j.Upsert(0, "X");
  j.Rename(0, "tmp", "Y", false);
  EXPECT_TRUE(j.Mentions(0, "X"));
  EXPECT_TRUE(j.Mentions(0, "tmp"));  // a rename names both ends
  EXPECT_TRUE(j.Mentions(0, "Y"));
  EXPECT_FALSE(j.Mentions(1, "X"));  // another root
  EXPECT_FALSE(j.Mentions(0, "X.old"));
  std::vector<Change> out;
  ASSERT_EQ(j.Take(out, 1), 1u);  // Remove X: the Upsert still names it
  EXPECT_TRUE(j.Mentions(0, "X"));
  ASSERT_EQ(j.Take(out, 2), 2u);
  EXPECT_FALSE(j.Mentions(0, "X"));
  EXPECT_FALSE(j.Mentions(0, "tmp"));
  EXPECT_TRUE(j.Mentions(0, "Y"));  // the Upsert of the new name after the rename
  ASSERT_EQ(j.Take(out, 1), 1u);
  EXPECT_FALSE(j.Mentions(0, "Y"));
}

TEST(Journal, MentionsForgetsUpsertsKilledByARename) {
  Journal j({}, 1);
  j.Upsert(0, "a");
  j.Rename(0, "a", "b", false);  // the Upsert of a moves behind the rename as b
  std::vector<Change> out;
  ASSERT_EQ(j.Take(out, 1), 1u);  // the rename
  EXPECT_FALSE(j.Mentions(0, "a"));
  EXPECT_TRUE(j.Mentions(0, "b"));
}

TEST(Journal, PendingRescanMentionsEverythingBelowIt) {
  Journal j({}, 1);
  j.Rescan(0, "spool/hash.3");
  EXPECT_TRUE(j.Mentions(0, "spool/hash.3/job.7"));
  EXPECT_TRUE(j.Mentions(0, "spool/hash.3"));
  EXPECT_FALSE(j.Mentions(0, "spool/hash.30"));
  EXPECT_FALSE(j.Mentions(0, "spool"));
  TakeAll(j);
  EXPECT_FALSE(j.Mentions(0, "spool/hash.3/job.7"));
}

TEST(Journal, OverflowMentionsEveryPathUntilTheRescansAreTaken) {
  JournalLimits limits;
  limits.max_entries = 4;
  Journal j(limits, 1);
  for (int i = 0; i < 10; ++i) j.Upsert(0, "f" + std::to_string(i));
  EXPECT_TRUE(j.Mentions(0, "anything/at/all"));
  TakeAll(j);
  EXPECT_FALSE(j.Mentions(0, "f1"));
}

}  // namespace
}  // namespace hasync::engine
