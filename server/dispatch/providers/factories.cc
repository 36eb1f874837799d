// The provider adapters of this build, by type. Adding an adapter is one
// entry here, e.g.
//   {"webhook", [](const config::ProviderConfig& c, const ProviderEnv& env)
//                   -> absl::StatusOr<std::unique_ptr<Provider>> {
//      return WebhookProvider::Create(c, env);
//    }},
// Types without an entry are listed by the registry as unusable.
#include "absl/strings/str_cat.h"
#include "server/dispatch/providers/registry.h"
#include "server/dispatch/providers/signatures.h"
#include "server/dispatch/providers/webhook.h"

namespace campaigns::dispatch {
namespace {

absl::Status NeedsHttp(const ProviderEnv& env) {
  if (env.http == nullptr) {
    return absl::FailedPreconditionError("no HTTP client to send through");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Provider>> MakeWebhook(
    const config::ProviderConfig& c, const ProviderEnv& env) {
  if (absl::Status s = NeedsHttp(env); !s.ok()) return s;
  absl::StatusOr<std::string> key =
      StandardWebhookKey(c.GetSecret("secret").Reveal());
  if (!key.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("secret (", c.GetSecret("secret").source(),
                     "): ", key.status().message()));
  }
  WebhookOptions o;
  o.name = c.name;
  o.url = c.Get("url");
  o.key = *std::move(key);
  o.max_in_flight = c.max_in_flight;
  o.timeout = c.timeout;
  return std::make_unique<WebhookProvider>(std::move(o), env.http);
}

}  // namespace

ProviderFactories BuiltInProviderFactories() {
  return {
      {"webhook", &MakeWebhook},
  };
}

}  // namespace campaigns::dispatch
