// ProgressHub: what watchers see of a campaign, in the order of its stored
// versions whatever order the snapshots are published in.

#include "server/dispatch/progress.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "absl/time/time.h"
#include "server/domain/model.h"

namespace campaigns::dispatch {
namespace {

Campaign Snapshot(CampaignStatus status, int64_t queued, int64_t version) {
  Campaign c;
  c.id = "cmp_1";
  c.status = status;
  c.stats.total = 10;
  c.stats.queued = queued;
  c.stats.sent = 10 - queued;
  c.version = version;
  return c;
}

class ProgressHubTest : public ::testing::Test {
 protected:
  // Watches cmp_1, counting the wakes.
  void SetUp() override {
    subscription_ = hub_.Subscribe("cmp_1", [this] { ++wakes_; });
  }
  void TearDown() override { hub_.Unsubscribe("cmp_1", subscription_); }

  std::optional<Progress> Latest() { return hub_.Latest("cmp_1"); }

  ProgressHub hub_;
  uint64_t subscription_ = 0;
  int wakes_ = 0;
  const absl::Time now_ = absl::FromUnixSeconds(1700000000);
};

// Two re-reads that cross (the older one published last) leave the newer
// state: a final state is not replaced by an older "sending".
TEST_F(ProgressHubTest, AnOlderVersionDoesNotReplaceANewerOne) {
  hub_.Publish(Snapshot(CampaignStatus::kSending, 4, 7), now_);
  hub_.Publish(Snapshot(CampaignStatus::kCancelled, 0, 9), now_);
  ASSERT_EQ(wakes_, 2);
  hub_.Publish(Snapshot(CampaignStatus::kSending, 4, 8), now_);
  hub_.PublishIfChanged(Snapshot(CampaignStatus::kSending, 4, 7), now_);
  EXPECT_EQ(wakes_, 2);
  ASSERT_TRUE(Latest().has_value());
  EXPECT_EQ(Latest()->status, CampaignStatus::kCancelled);
  EXPECT_EQ(Latest()->stats.queued, 0);
  // The same version again (a write's answer, which carries the version it
  // read) is published: it may be newer.
  hub_.Publish(Snapshot(CampaignStatus::kCancelled, 0, 9), now_);
  EXPECT_EQ(wakes_, 3);
  hub_.Publish(Snapshot(CampaignStatus::kCompleted, 0, 10), now_);
  EXPECT_EQ(Latest()->status, CampaignStatus::kCompleted);
}

// A watcher's own read replaces a stale snapshot published earlier (e.g.
// after the campaign's state was forgotten); an older or equal one does
// not. It wakes nobody (the joining watcher reads Latest itself, holding
// its own lock meanwhile).
TEST_F(ProgressHubTest, PublishIfNewReplacesOnlyAnOlderVersion) {
  hub_.PublishIfNew(Snapshot(CampaignStatus::kSending, 4, 3), now_);
  EXPECT_EQ(Latest()->status, CampaignStatus::kSending);
  hub_.PublishIfNew(Snapshot(CampaignStatus::kSending, 2, 3), now_);
  EXPECT_EQ(Latest()->stats.queued, 4);
  hub_.PublishIfNew(Snapshot(CampaignStatus::kSending, 5, 2), now_);
  EXPECT_EQ(Latest()->stats.queued, 4);
  hub_.PublishIfNew(Snapshot(CampaignStatus::kCancelled, 0, 6), now_);
  EXPECT_EQ(Latest()->status, CampaignStatus::kCancelled);
  EXPECT_EQ(wakes_, 0);
}

// A final state a joining watcher's read put in silently (PublishIfNew) is
// announced to the watchers already there by the next publish, even one
// that is older (the final write's answer, which carries the version it
// read) or shows the same (a re-read): else they would wait forever.
TEST_F(ProgressHubTest, ASilentlyReplacedStateIsAnnouncedByTheNextPublish) {
  hub_.Publish(Snapshot(CampaignStatus::kSending, 4, 3), now_);
  ASSERT_EQ(wakes_, 1);
  hub_.PublishIfNew(Snapshot(CampaignStatus::kCompleted, 0, 5), now_);
  EXPECT_EQ(wakes_, 1);
  hub_.Publish(Snapshot(CampaignStatus::kCompleted, 0, 4), now_);
  EXPECT_EQ(wakes_, 2);
  EXPECT_EQ(Latest()->status, CampaignStatus::kCompleted);
  // Announced: an older one is dropped quietly again.
  hub_.Publish(Snapshot(CampaignStatus::kCompleted, 0, 4), now_);
  EXPECT_EQ(wakes_, 2);
  hub_.PublishIfNew(Snapshot(CampaignStatus::kCompleted, 0, 6), now_);
  const uint64_t shown = Latest()->version;
  hub_.PublishIfChanged(Snapshot(CampaignStatus::kCompleted, 0, 6), now_);
  EXPECT_EQ(wakes_, 3);
  // Woken, but with nothing new: a watcher that sent what the read put in
  // has no second message to send.
  EXPECT_EQ(Latest()->version, shown);
  hub_.PublishIfChanged(Snapshot(CampaignStatus::kCompleted, 0, 6), now_);
  EXPECT_EQ(wakes_, 3);
}

// Without versions (SQLite: always 0) every publish is taken, in the order
// made, as before.
TEST_F(ProgressHubTest, WithoutVersionsTheLastPublishIsShown) {
  hub_.Publish(Snapshot(CampaignStatus::kSending, 4, 0), now_);
  hub_.Publish(Snapshot(CampaignStatus::kSending, 2, 0), now_);
  EXPECT_EQ(Latest()->stats.queued, 2);
  hub_.PublishIfNew(Snapshot(CampaignStatus::kSending, 9, 0), now_);
  EXPECT_EQ(Latest()->stats.queued, 2);
}

}  // namespace
}  // namespace campaigns::dispatch
