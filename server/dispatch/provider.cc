// Provider: the default ParseWebhook, for providers that take no webhooks.
#include "server/dispatch/provider.h"

namespace campaigns::dispatch {

absl::StatusOr<WebhookEvents> Provider::ParseWebhook(const WebhookRequest&) {
  return absl::UnimplementedError("this provider takes no webhooks");
}

}  // namespace campaigns::dispatch
