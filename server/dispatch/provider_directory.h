// ProviderDirectory: what the API may know of the configured providers —
// their names, types, channels and whether they can send — and nothing of
// their settings or secrets. The provider registry
// (server/dispatch/providers/registry.h) implements it.
//
//   std::optional<ProviderInfo> p = directory->Find("meta");
//   if (!p) ...;                              // not configured
//   if (!p->Serves(Channel::kSms)) ...;       // wrong channel for its type
//
// Implementations are thread-safe.
#ifndef CAMPAIGND_SERVER_DISPATCH_PROVIDER_DIRECTORY_H_
#define CAMPAIGND_SERVER_DISPATCH_PROVIDER_DIRECTORY_H_

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "server/domain/types.h"

namespace campaigns::dispatch {

enum class ProviderState {
  kOk,        // can send
  kUnusable,  // cannot send: `reason` says why
  // Too many transient failures in a row: its fallback sends until a probe
  // succeeds (`reason` says since when and why).
  kCircuitOpen,
};

// "ok", "unusable" or "circuit_open" (as ListProviders answers it).
inline absl::string_view ProviderStateName(ProviderState s) {
  switch (s) {
    case ProviderState::kOk:
      return "ok";
    case ProviderState::kUnusable:
      return "unusable";
    case ProviderState::kCircuitOpen:
      return "circuit_open";
  }
  return "unusable";
}

// A snapshot of one provider's public facts.
struct ProviderInfo {
  std::string name;
  std::string type;
  std::vector<Channel> channels;
  ProviderState state = ProviderState::kOk;
  std::string reason;    // "" when ok
  std::string fallback;  // the provider that sends when it cannot, or ""

  bool Serves(Channel c) const {
    return std::find(channels.begin(), channels.end(), c) != channels.end();
  }
};

class ProviderDirectory {
 public:
  virtual ~ProviderDirectory() = default;
  // The provider named `name`, nullopt if none is configured.
  virtual std::optional<ProviderInfo> Find(absl::string_view name) const = 0;
  // Every provider: the built-in simulator first, then the configured ones
  // in the config file's order.
  virtual std::vector<ProviderInfo> List() const = 0;
};

}  // namespace campaigns::dispatch

#endif  // CAMPAIGND_SERVER_DISPATCH_PROVIDER_DIRECTORY_H_
