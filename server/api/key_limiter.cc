// KeyLimiter: the per-API-key token buckets that refuse calls over limit.
#include "server/api/key_limiter.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "server/domain/errors.h"

namespace campaigns::api {

absl::Status KeyRateLimiter::Admit(absl::string_view key, absl::Time now) {
  if (limit_.rate <= 0) return absl::OkStatus();
  absl::Duration retry_after;
  {
    MutexLock lock(&mu_);
    TokenBucket& bucket =
        buckets_.try_emplace(key, limit_.rate, std::max(1, limit_.burst), now)
            .first->second;
    if (bucket.Take(now, 1) == 1) return absl::OkStatus();
    retry_after = bucket.ReadyAt(now, 1) - now;
  }
  return errors::RateLimited(
      absl::StrFormat("API key %s is over its limit of %g requests a second "
                      "(burst %d); retry after %s",
                      key, limit_.rate, limit_.burst,
                      absl::FormatDuration(retry_after)),
      retry_after);
}

}  // namespace campaigns::api
