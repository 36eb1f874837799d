// The provider adapters of this build, by type. Adding an adapter is one
// entry here, e.g.
//   {"webhook", [](const config::ProviderConfig& c, const ProviderEnv& env)
//                   -> absl::StatusOr<std::unique_ptr<Provider>> {
//      return WebhookProvider::Create(c, env);
//    }},
// Types without an entry are listed by the registry as unusable.
#include "server/dispatch/providers/registry.h"

namespace campaigns::dispatch {

ProviderFactories BuiltInProviderFactories() { return {}; }

}  // namespace campaigns::dispatch
