// Failover: a configured provider with a `fallback` (PROVIDERS.md), behind a
// circuit breaker that hands its messages to the fallback while it cannot
// send.
//
//   closed ──(circuit_failures transient answers in a row)──> open
//   any ────(an unusable answer: its credentials refused)───> unusable
//   open / unusable ──(circuit_probe passed: the next batch goes to the
//       provider as a probe)──> closed when the provider answered for a
//       message (accepted or refused it), else open / unusable again
//
// While open or unusable, every message goes to the fallback (which may be
// a Failover itself), except those of a channel the fallback cannot send:
// they stay with the provider. A message the provider answered `unusable` for
// was not sent, so it goes to the fallback at once instead of pausing the
// campaign. Transient answers go back to the engine unchanged: a timeout may
// have reached the vendor, and only the engine decides on a retry (it comes
// through the fallback once the circuit is open). Each result of a message
// the fallback took names it in SendResult::provider, so the recipient row
// records who sent it and its receipts match there. The provider's state
// (ok, circuit_open, unusable and why) is kept in the registry.
//
// A message is answered once: by the provider, or (when rerouted) by the
// fallback only, so no counter counts it twice.
//
// Thread-safe.
#ifndef CAMPAIGND_SERVER_DISPATCH_PROVIDERS_FAILOVER_H_
#define CAMPAIGND_SERVER_DISPATCH_PROVIDERS_FAILOVER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "server/dispatch/provider.h"
#include "server/dispatch/provider_directory.h"
#include "server/dispatch/timer.h"
#include "server/domain/mutex.h"

namespace campaigns::dispatch {

class ProviderRegistry;

struct FailoverOptions {
  std::string name;      // the provider's
  std::string fallback;  // the fallback's provider name
  int circuit_failures = 20;
  absl::Duration circuit_probe = absl::Seconds(30);
};

class Failover final : public Provider {
 public:
  // `registry` (where the fallback is looked up, and the provider's state
  // kept) must outlive this; `timer` may be null (then the system clock).
  Failover(std::unique_ptr<Provider> provider, FailoverOptions options,
           ProviderRegistry* registry, Timer* timer);
  // Ends the provider first: what it answers while it ends still finds
  // this object whole.
  ~Failover() override { provider_.reset(); }

  void Send(std::vector<OutgoingMessage> batch, SendDone done) override;
  // Marking and in-doubt handling must suit both ends: a message may go
  // either way.
  bool HonoursIdempotencyKeys() const override;
  bool ResendsUnknown() const override;
  bool SendsReceipts() const override;
  int MaxInFlight() const override { return provider_->MaxInFlight(); }
  absl::StatusOr<WebhookEvents> ParseWebhook(
      const WebhookRequest& request) override {
    return provider_->ParseWebhook(request);
  }

 private:
  enum class Circuit { kClosed, kOpen, kUnusable };
  // Where the next batch goes.
  enum class Route { kProvider, kProbe, kFallback };

  Route Choose() ABSL_LOCKS_EXCLUDED(mu_);
  // Learns from the provider's answers (a probe's when `probe`).
  void Learn(const std::vector<SendResult>& results, bool probe)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Hands `batch` to the fallback; its results name who took each message.
  void SendToFallback(std::vector<OutgoingMessage> batch, SendDone done);
  Provider* FallbackProvider() const;
  // Whether the fallback can send on `c` (a message it cannot stays with
  // the provider).
  bool FallbackServes(Channel c) const;
  absl::Time Now() const;
  // Reports the circuit's state to the registry (outside mu_).
  void Publish(Circuit circuit, const std::string& reason);

  std::unique_ptr<Provider> provider_;  // reset first (destructor)
  const FailoverOptions options_;
  ProviderRegistry* const registry_;
  Timer* const timer_;
  std::vector<Channel> fallback_channels_;  // fixed at construction

  Mutex mu_;
  Circuit circuit_ ABSL_GUARDED_BY(mu_) = Circuit::kClosed;
  int failures_ ABSL_GUARDED_BY(mu_) = 0;  // transient answers in a row
  absl::Time probe_at_ ABSL_GUARDED_BY(mu_);
  bool probing_ ABSL_GUARDED_BY(mu_) = false;
  std::string last_error_ ABSL_GUARDED_BY(mu_);
};

}  // namespace campaigns::dispatch

#endif  // CAMPAIGND_SERVER_DISPATCH_PROVIDERS_FAILOVER_H_
