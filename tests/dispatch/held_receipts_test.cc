// HeldReceipts: what is held, for how long, how much, and when it is tried.
#include "server/dispatch/held_receipts.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace campaigns::dispatch {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

ReceiptUpdate Receipt(const std::string& id,
                      RecipientStatus status = RecipientStatus::kDelivered) {
  ReceiptUpdate r;
  r.provider_message_id = id;
  r.status = status;
  r.occurred_at = kT0;
  return r;
}

std::vector<std::string> Ids(const HeldReceipts::Batch& b) {
  std::vector<std::string> out;
  for (const ReceiptUpdate& r : b.receipts)
    out.push_back(r.provider_message_id);
  return out;
}

TEST(HeldReceiptsTest, TakesByScopeAndGivesUpAfterTheHold) {
  HeldReceipts held({.hold = absl::Minutes(10)});
  EXPECT_EQ(held.Hold("acc_1", "", {Receipt("a"), Receipt("b")}, kT0), 0);
  EXPECT_EQ(held.Hold("", "twilio", {Receipt("c")}, kT0 + absl::Minutes(5)), 0);
  EXPECT_EQ(held.size(), 3u);
  int64_t expired = -1;
  std::vector<HeldReceipts::Batch> batches =
      held.Take(kT0 + absl::Minutes(1), &expired);
  EXPECT_EQ(expired, 0);
  EXPECT_EQ(held.size(), 0u);
  ASSERT_EQ(batches.size(), 2u);
  const HeldReceipts::Batch& by_provider = batches[0];  // ("", "twilio")
  EXPECT_EQ(by_provider.provider, "twilio");
  EXPECT_EQ(by_provider.account_id, "");
  EXPECT_EQ(Ids(by_provider), std::vector<std::string>{"c"});
  const HeldReceipts::Batch& by_account = batches[1];
  EXPECT_EQ(by_account.account_id, "acc_1");
  EXPECT_EQ(Ids(by_account), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(by_account.until[0], kT0 + absl::Minutes(10));

  // What still matched nothing keeps its first deadline: "b" goes at
  // kT0 + 10 min, "c" five minutes later.
  EXPECT_EQ(held.Keep(by_account, {Receipt("b")}), 0);
  EXPECT_EQ(held.Keep(by_provider, {Receipt("c")}), 0);
  batches = held.Take(kT0 + absl::Minutes(10), &expired);
  EXPECT_EQ(expired, 1);
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(Ids(batches[0]), std::vector<std::string>{"c"});
  held.Keep(batches[0], batches[0].receipts);
  batches = held.Take(kT0 + absl::Minutes(15), &expired);
  EXPECT_EQ(expired, 1);
  EXPECT_TRUE(batches.empty());
}

TEST(HeldReceiptsTest, KeepsOnlyWhatTheBatchHeld) {
  HeldReceipts held;
  held.Hold("acc_1", "",
            {Receipt("a"), Receipt("a", RecipientStatus::kRead), Receipt("b")},
            kT0);
  int64_t expired = 0;
  std::vector<HeldReceipts::Batch> batches = held.Take(kT0, &expired);
  ASSERT_EQ(batches.size(), 1u);
  // The read of "a" and a receipt the batch never had.
  held.Keep(batches[0], {Receipt("a", RecipientStatus::kRead), Receipt("zzz")});
  batches = held.Take(kT0, &expired);
  ASSERT_EQ(batches.size(), 1u);
  ASSERT_EQ(batches[0].receipts.size(), 1u);
  EXPECT_EQ(batches[0].receipts[0].status, RecipientStatus::kRead);
}

TEST(HeldReceiptsTest, GivesUpTheOldestBeyondCapacityAndBatches) {
  HeldReceipts held({.capacity = 3});
  EXPECT_EQ(held.Hold("acc_1", "", {Receipt("a"), Receipt("b")}, kT0), 0);
  EXPECT_EQ(held.Hold("acc_1", "", {Receipt("c"), Receipt("d")}, kT0), 1);
  EXPECT_EQ(held.size(), 3u);
  int64_t expired = 0;
  std::vector<HeldReceipts::Batch> batches =
      held.Take(kT0, &expired, /*max_batch=*/2);
  ASSERT_EQ(batches.size(), 2u);
  EXPECT_EQ(Ids(batches[0]), (std::vector<std::string>{"b", "c"}));
  EXPECT_EQ(Ids(batches[1]), std::vector<std::string>{"d"});
}

TEST(HeldReceiptsTest, OneRetryAtATimeWithTheDelayDoubling) {
  HeldReceipts held(
      {.first_retry = absl::Seconds(1), .max_retry = absl::Seconds(4)});
  EXPECT_TRUE(held.Want(kT0 + absl::Seconds(1)));
  EXPECT_FALSE(held.Want(kT0 + absl::Seconds(2)));  // one as early is armed
  EXPECT_TRUE(held.Want(kT0 + absl::Milliseconds(500)));
  EXPECT_TRUE(held.Begin());
  EXPECT_FALSE(held.Begin());  // the superseded alarm, while it runs
  // Asked for while it runs: the next retry is no later than that.
  held.Hold("acc_1", "", {Receipt("a")}, kT0);
  EXPECT_FALSE(held.Want(kT0 + absl::Milliseconds(700)));
  std::optional<absl::Time> next = held.End(kT0 + absl::Milliseconds(600));
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(*next, kT0 + absl::Milliseconds(700));
  // Still held after each retry: 1 s, 2 s, 4 s, 4 s later.
  absl::Time now = *next;
  for (absl::Duration want :
       {absl::Seconds(2), absl::Seconds(4), absl::Seconds(4)}) {
    ASSERT_TRUE(held.Begin());
    next = held.End(now);
    ASSERT_TRUE(next.has_value());
    EXPECT_EQ(*next - now, want);
    now = *next;
  }
  // Nothing held: no retry, and the next hold starts at the first delay.
  ASSERT_TRUE(held.Begin());
  int64_t expired = 0;
  held.Take(now, &expired);
  EXPECT_FALSE(held.End(now).has_value());
  EXPECT_FALSE(held.Begin());  // nothing armed: a stray alarm runs nothing
  EXPECT_TRUE(held.Want(now + absl::Seconds(1)));
}

}  // namespace
}  // namespace campaigns::dispatch
