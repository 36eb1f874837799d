#include "server/api/key_limiter.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/domain/errors.h"

namespace campaigns::api {

absl::Status KeyRateLimiter::Admit(absl::string_view key, absl::Time now) {
  if (limit_.rate <= 0) return absl::OkStatus();
  const double burst = std::max(1, limit_.burst);
  double wait_s = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto [it, inserted] = buckets_.try_emplace(key);
    Bucket& b = it->second;
    if (inserted) {
      b.tokens = burst;
    } else if (now > b.last) {
      b.tokens = std::min(
          burst, b.tokens + absl::ToDoubleSeconds(now - b.last) * limit_.rate);
    }
    b.last = std::max(b.last, now);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return absl::OkStatus();
    }
    wait_s = (1 - b.tokens) / limit_.rate;
  }
  const absl::Duration retry_after =
      absl::Microseconds(std::ceil(wait_s * 1e6));
  return errors::RateLimited(
      absl::StrFormat("API key %s is over its limit of %g requests a second "
                      "(burst %d); retry after %s",
                      key, limit_.rate, limit_.burst,
                      absl::FormatDuration(retry_after)),
      retry_after);
}

}  // namespace campaigns::api
