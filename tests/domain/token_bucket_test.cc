#include "server/domain/token_bucket.h"

#include <gtest/gtest.h>

#include <vector>

namespace campaigns {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1800000000);

TEST(TokenBucketTest, CapacityIsATenthOfASecondThatDividesTheRate) {
  EXPECT_EQ(TokenBucket::CapacityFor(1), 1);
  EXPECT_EQ(TokenBucket::CapacityFor(10), 1);
  EXPECT_EQ(TokenBucket::CapacityFor(30), 3);
  EXPECT_EQ(TokenBucket::CapacityFor(80), 8);
  EXPECT_EQ(TokenBucket::CapacityFor(97), 1);  // prime: one at a time
  EXPECT_EQ(TokenBucket::CapacityFor(10000), 1000);
}

TEST(TokenBucketTest, StartsFullThenRefillsAtTheRate) {
  TokenBucket b(10, 2, kT0);
  EXPECT_EQ(b.Take(kT0, 2), 2);
  EXPECT_EQ(b.Take(kT0, 1), 0);
  EXPECT_EQ(b.ReadyAt(kT0, 1), kT0 + absl::Milliseconds(100));
  EXPECT_EQ(b.Take(kT0 + absl::Milliseconds(100), 1), 1);
  // Never more than the capacity, however long it waited.
  EXPECT_EQ(b.Take(kT0 + absl::Hours(1), 2), 2);
  EXPECT_EQ(b.Take(kT0 + absl::Hours(1), 1), 0);
}

// Chunks taken as soon as allowed, but from timers that fire late by a
// varying amount: no one-second window ever holds more than the rate
// (a plain bucket would allow capacity + rate), and the achieved rate stays
// close to it.
TEST(TokenBucketTest, ChunksKeepEveryOneSecondWindowAtTheRate) {
  TokenBucket b(80, TokenBucket::CapacityFor(80), kT0);
  std::vector<absl::Time> sent;
  absl::Time now = kT0;
  for (int step = 0; now < kT0 + absl::Seconds(20); ++step) {
    if (b.TakeChunk(now)) {
      for (int i = 0; i < b.capacity(); ++i) sent.push_back(now);
    }
    now = b.ChunkReadyAt(now) + absl::Microseconds(97 * (step % 11));
  }
  size_t j = 0;
  for (size_t i = 0; i < sent.size(); ++i) {
    while (j < sent.size() && sent[j] < sent[i] + absl::Seconds(1)) ++j;
    ASSERT_LE(j - i, 80u) << "window at " << i;
  }
  const double rate = static_cast<double>(sent.size() - 8) /
                      absl::ToDoubleSeconds(sent.back() - sent.front());
  EXPECT_NEAR(rate, 80, 80 * 0.01);
}

TEST(TokenBucketTest, TakeChunkNeedsAFullBucket) {
  TokenBucket b(30, 3, kT0);
  EXPECT_TRUE(b.TakeChunk(kT0));
  EXPECT_FALSE(b.TakeChunk(kT0 + absl::Milliseconds(50)));
  EXPECT_EQ(b.ChunkReadyAt(kT0 + absl::Milliseconds(50)),
            kT0 + absl::Milliseconds(100));
  EXPECT_TRUE(b.TakeChunk(kT0 + absl::Milliseconds(100)));
}

// A bucket handed over from another sender that took its last chunk at
// `now`: its first chunk is a chunk's time later, never at once.
TEST(TokenBucketTest, ADrainedBucketWaitsAChunksTime) {
  TokenBucket b(10, 1, kT0);
  b.Drain(kT0 + absl::Seconds(5));  // full since long before: emptied
  EXPECT_FALSE(b.TakeChunk(kT0 + absl::Seconds(5)));
  EXPECT_EQ(b.ChunkReadyAt(kT0 + absl::Seconds(5)),
            kT0 + absl::Seconds(5) + absl::Milliseconds(100));
  EXPECT_TRUE(b.TakeChunk(kT0 + absl::Seconds(5) + absl::Milliseconds(100)));
}

}  // namespace
}  // namespace campaigns
