// TokenBucket: a rate limit as a bucket of send permits, on explicit time.
//
// Tokens accrue at `rate` per second up to `capacity`; the bucket starts
// full. Two ways to take:
//   - Take(n): n tokens once the bucket holds them (a plain bucket; any
//     one-second window may then see up to capacity + rate).
//   - TakeChunk(n <= capacity): up to `capacity` messages once the bucket
//     is full, emptying it. Chunks are then at least capacity / rate apart,
//     so with a capacity that divides the rate no one-second window
//     [t, t+1s) ever sees more than `rate` messages.
//   - Drain(now): empty now. Handed over from another sender at `now`, the
//     bucket keeps the chunks of both at least capacity / rate apart.
//
//   TokenBucket bucket(/*rate=*/30, /*capacity=*/3, now);
//   if (!bucket.TakeChunk(now)) timer.At(bucket.ChunkReadyAt(now), retry);
//
// Not thread-safe: callers lock.
#ifndef CAMPAIGND_SERVER_DOMAIN_TOKEN_BUCKET_H_
#define CAMPAIGND_SERVER_DOMAIN_TOKEN_BUCKET_H_

#include <algorithm>
#include <cstdint>

#include "absl/time/time.h"

namespace campaigns {

class TokenBucket {
 public:
  // `rate` > 0 tokens per second, `capacity` >= 1.
  TokenBucket(double rate, int64_t capacity, absl::Time now)
      : rate_(rate),
        capacity_(static_cast<double>(capacity)),
        tokens_(static_cast<double>(capacity)),
        updated_(now) {}

  // The capacity for `rate`: the largest divisor of `rate` that is at most
  // a tenth of it (at least 1). Dividing the rate keeps every one-second
  // window at or below `rate`; taking a tenth of a second's worth at a time
  // (3 at 30/s, 8 at 80/s) means a timer that fires a little late costs
  // that lateness once per 100 ms, not once per message.
  static int64_t CapacityFor(int64_t rate) {
    int64_t best = 1;
    for (int64_t b = 1; b * 10 <= rate; ++b) {
      if (rate % b == 0) best = b;
    }
    return best;
  }

  // Takes `n` tokens if the bucket holds them and returns n; otherwise
  // takes nothing and returns 0.
  int64_t Take(absl::Time now, int64_t n) {
    if (ReadyAt(now, n) > now) return 0;
    tokens_ = std::max(0.0, tokens_ - static_cast<double>(n));
    return n;
  }

  // When `n` tokens will be there (now or later).
  absl::Time ReadyAt(absl::Time now, int64_t n) {
    Refill(now);
    const double missing = static_cast<double>(n) - tokens_;
    // A microsecond's worth of slack absorbs rounding.
    if (missing <= rate_ * 1e-6) return now;
    return now + absl::Microseconds(
                     static_cast<int64_t>(missing / rate_ * 1e6 + 0.999));
  }

  // Empties a full bucket and returns true (the caller may send up to
  // `capacity` messages); false when it is not full yet.
  bool TakeChunk(absl::Time now) {
    if (ChunkReadyAt(now) > now) return false;
    tokens_ = 0;
    return true;
  }

  // When the bucket will be full.
  absl::Time ChunkReadyAt(absl::Time now) { return ReadyAt(now, capacity()); }

  // Empties the bucket, as if a chunk was taken at `now` (e.g. by another
  // process that sent under the same limit until now): the next chunk is
  // capacity / rate later.
  void Drain(absl::Time now) {
    Refill(now);
    tokens_ = 0;
  }

  double rate() const { return rate_; }
  int64_t capacity() const { return static_cast<int64_t>(capacity_); }

 private:
  void Refill(absl::Time now) {
    if (now <= updated_) return;
    tokens_ = std::min(capacity_,
                       tokens_ + absl::ToDoubleSeconds(now - updated_) * rate_);
    updated_ = now;
  }

  double rate_;
  double capacity_;
  double tokens_;
  absl::Time updated_;
};

}  // namespace campaigns

#endif  // CAMPAIGND_SERVER_DOMAIN_TOKEN_BUCKET_H_
