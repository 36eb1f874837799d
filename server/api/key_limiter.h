// Per-API-key request limits: one token bucket per key, refilled at `rate`
// requests a second up to `burst`. A call over its key's limit is refused
// with RESOURCE_EXHAUSTED / RATE_LIMIT_EXCEEDED carrying the wait until the
// key may call again (errors::RetryAfterOf); other keys are unaffected.
//
//   KeyRateLimiter limiter({/*rate=*/100, /*burst=*/200});
//   RETURN_IF_ERROR(limiter.Admit(principal.key_id, absl::Now()));
//
// Thread-safe.
#ifndef CAMPAIGND_SERVER_API_KEY_LIMITER_H_
#define CAMPAIGND_SERVER_API_KEY_LIMITER_H_

#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/domain/mutex.h"
#include "server/domain/token_bucket.h"

namespace campaigns::api {

struct KeyRateLimit {
  // Requests a second each key may make on average; <= 0 = no limit.
  double rate = 100;
  // The most a key may make at once after being idle (at least 1).
  int burst = 200;
};

class KeyRateLimiter {
 public:
  explicit KeyRateLimiter(KeyRateLimit limit) : limit_(limit) {}

  // Takes one request from `key`'s bucket at time `now`, or refuses.
  absl::Status Admit(absl::string_view key, absl::Time now);

 private:
  const KeyRateLimit limit_;
  Mutex mu_;
  absl::flat_hash_map<std::string, TokenBucket> buckets_ ABSL_GUARDED_BY(mu_);
};

}  // namespace campaigns::api

#endif  // CAMPAIGND_SERVER_API_KEY_LIMITER_H_
