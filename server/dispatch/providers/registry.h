// ProviderRegistry: every provider campaignd can send through, by name,
// built at start from the config file's [[providers]] (server/config.h).
//
// The built-in `simulator` (all channels) is always there. Each configured
// provider is built by the factory of its type; a type this build has no
// adapter for is listed with state unusable, reason `type "X" is not
// available in this build`, and no Provider (the engine fails a campaign
// whose provider lookup returns null). Adding an adapter is one entry in
// BuiltInProviderFactories() (factories.cc). A provider with a `fallback`
// is wrapped in a Failover (failover.h): its circuit breaker.
//
//   ProviderEnv env{&timer, receipt_sink};
//   auto registry = ProviderRegistry::Create(simulator.get(), configs,
//                                            BuiltInProviderFactories(), env);
//   Provider* p = (*registry)->Lookup("meta");      // the engine's lookup
//   (*registry)->SetState("meta", ProviderState::kUnusable,
//                         "credentials refused (HTTP 401)");
//
// Thread-safe: the set of providers is fixed at creation; states change
// under a lock and readers get snapshots.
#ifndef CAMPAIGND_SERVER_DISPATCH_PROVIDERS_REGISTRY_H_
#define CAMPAIGND_SERVER_DISPATCH_PROVIDERS_REGISTRY_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "server/config.h"
#include "server/dispatch/provider.h"
#include "server/dispatch/provider_directory.h"
#include "server/dispatch/providers/http_client.h"
#include "server/dispatch/providers/smpp.h"
#include "server/dispatch/timer.h"
#include "server/domain/mutex.h"

namespace campaigns::dispatch {

class ProviderRegistry;

// What an adapter gets besides its config.
struct ProviderEnv {
  // The engine's timer (outlives the providers).
  Timer* timer = nullptr;
  // Where the adapter hands the receipts it learns of.
  ReceiptSink receipts;
  // The HTTP engine HTTP adapters send through (outlives the providers).
  HttpClient* http = nullptr;
  // Where adapters that hear from their vendor on a connection of their own
  // (SMPP's deliver_sm) hand receipts and inbound texts: the same path as
  // a verified webhook's. Null: they are refused (the vendor retries).
  ProviderEventSink events;
  // The registry being built: an adapter reports its own state here (e.g.
  // unusable when its credentials are refused). Set by Create.
  ProviderRegistry* registry = nullptr;
};

// Builds the adapter of one configured provider. An error stops the start
// (it must name the config key, never a secret's value).
using ProviderFactory = std::function<absl::StatusOr<std::unique_ptr<Provider>>(
    const config::ProviderConfig& config, const ProviderEnv& env)>;
// Factories by provider type (config::kProviderTypes).
using ProviderFactories = std::map<std::string, ProviderFactory>;

// The adapters this build has (not the simulator, which is built in).
ProviderFactories BuiltInProviderFactories();

// The name of the built-in simulator provider, the default of every sender.
inline constexpr char kSimulatorProvider[] = "simulator";

class ProviderRegistry final : public ProviderDirectory {
 public:
  // `simulator` (not owned, may be null in tests) must outlive the
  // registry. `configs` are validated already (config::Load*); a repeated
  // name or the name "simulator" is INVALID_ARGUMENT all the same.
  static absl::StatusOr<std::unique_ptr<ProviderRegistry>> Create(
      Provider* simulator, const std::vector<config::ProviderConfig>& configs,
      const ProviderFactories& factories, ProviderEnv env);

  // The adapter sending for provider `name`, whatever its state; null when
  // `name` is not configured, its type has no adapter in this build, or
  // after StopAdapters.
  Provider* Lookup(const std::string& name) const;

  // Ends every configured adapter: what they still have pending is
  // answered (transiently) and their connections close (an SMPP session
  // unbinds). From then on Lookup returns null. For the shutdown, once the
  // engine no longer calls providers and before the store closes (adapters
  // hand receipts to it). Idempotent.
  void StopAdapters();

  // Stops the adapters (StopAdapters) before anything they may call into.
  ~ProviderRegistry() override { StopAdapters(); }

  // Sets a provider's state and reason (reason "" when ok); NOT_FOUND for
  // an unknown name. The reason is shown to API callers: no secrets.
  absl::Status SetState(absl::string_view name, ProviderState state,
                        std::string reason);

  // `name` and every provider whose messages may go through it (whose
  // chain of fallbacks reaches it): whose senders an opt-out it received
  // concerns.
  std::vector<std::string> SendingThrough(const std::string& name) const;

  std::optional<ProviderInfo> Find(absl::string_view name) const override;
  std::vector<ProviderInfo> List() const override;

 private:
  struct Entry {
    std::string name;
    std::string type;
    std::vector<Channel> channels;
    std::string fallback;
    // null: no adapter; a Failover around it when it has a fallback.
    Provider* provider = nullptr;
    std::unique_ptr<Provider> owned;
  };
  struct State {
    ProviderState state = ProviderState::kOk;
    std::string reason;
  };
  ProviderRegistry() = default;
  ProviderInfo InfoOf(size_t i) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Fixed after Create.
  std::vector<Entry> entries_;  // `owned` is reset by StopAdapters
  std::atomic<bool> stopped_{false};
  absl::flat_hash_map<std::string, size_t> by_name_;
  mutable Mutex mu_;
  std::vector<State> states_ ABSL_GUARDED_BY(mu_);  // by entries_ index
};

}  // namespace campaigns::dispatch

#endif  // CAMPAIGND_SERVER_DISPATCH_PROVIDERS_REGISTRY_H_
