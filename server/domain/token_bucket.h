// TokenBucket: a rate limit as a bucket of send permits, on explicit time.
//
// Tokens accrue at `rate` per second up to `capacity`; the bucket starts
// full. A caller that needs `n` tokens waits until the bucket holds them
// (Take returns 0 and ReadyAt says when), then takes them all at once. With
// rate r and a capacity B that divides r, no one-second window [t, t+1s)
// ever sees more than r tokens taken: takes are at least B/r apart.
//
//   TokenBucket bucket(/*rate=*/30, /*capacity=*/1, now);
//   if (bucket.Take(now, 1) == 0) timer.At(bucket.ReadyAt(1), retry);
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

  // The capacity that keeps every one-second window at or below `rate`
  // tokens while allowing batches: the largest divisor of `rate` that is at
  // most 1/100 of it (so 1 for rates below 200).
  static int64_t CapacityFor(int64_t rate) {
    int64_t best = 1;
    for (int64_t b = 1; b * 100 <= rate; ++b) {
      if (rate % b == 0) best = b;
    }
    return best;
  }

  // Takes `n` (1..capacity) tokens if the bucket holds them and returns n;
  // otherwise takes nothing and returns 0.
  int64_t Take(absl::Time now, int64_t n) {
    Refill(now);
    // A microsecond of slack absorbs the rounding of ReadyAt.
    if (tokens_ + rate_ * 1e-6 < static_cast<double>(n)) return 0;
    tokens_ = std::max(0.0, tokens_ - static_cast<double>(n));
    return n;
  }

  // When `n` tokens will be there (now or later).
  absl::Time ReadyAt(absl::Time now, int64_t n) {
    Refill(now);
    const double missing = static_cast<double>(n) - tokens_;
    if (missing <= 0) return now;
    return now + absl::Microseconds(
                     static_cast<int64_t>(missing / rate_ * 1e6 + 0.999));
  }

  double rate() const { return rate_; }
  int64_t capacity() const { return static_cast<int64_t>(capacity_); }

  // Changes the rate (e.g. a new campaign override) keeping the tokens.
  void SetRate(double rate, int64_t capacity, absl::Time now) {
    Refill(now);
    rate_ = rate;
    capacity_ = static_cast<double>(capacity);
    tokens_ = std::min(tokens_, capacity_);
  }

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
