// WebhookProvider: the generic `webhook` provider (PROVIDERS.md). Each
// message is one `POST {url}` of a JSON `message.send` event, signed per
// Standard Webhooks with the message's idempotency key as `webhook-id`, so
// the receiver can de-duplicate a resend after a crash.
//
//   WebhookOptions o;
//   o.name = "hooks";
//   o.url = "https://example.com/send";
//   o.key = *StandardWebhookKey("whsec_...");
//   auto p = WebhookProvider::Create(o, http_client);
//   p->Send(batch, done);   // returns at once; done runs on the HTTP thread
//
// Answers: 2xx accepted (the JSON answer's `message_id`, else the
// webhook-id); 429 and 5xx, timeouts and connection failures transient
// (Retry-After honoured); 401 and 403 unusable (credentials refused); other
// 4xx permanent with the status as error_code. Thread-safe.
#ifndef CAMPAIGND_SERVER_DISPATCH_PROVIDERS_WEBHOOK_H_
#define CAMPAIGND_SERVER_DISPATCH_PROVIDERS_WEBHOOK_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "server/dispatch/provider.h"
#include "server/dispatch/providers/http_client.h"

namespace campaigns::dispatch {

struct WebhookOptions {
  std::string name;  // the provider's name, for error texts
  std::string url;
  std::string key;  // the decoded key of the `whsec_` secret
  int max_in_flight = 32;
  absl::Duration timeout = absl::Seconds(10);
};

// The JSON body of `m`'s `message.send` event.
std::string WebhookBody(const OutgoingMessage& m);

// How far a webhook's timestamp may be from now (Standard Webhooks).
inline constexpr absl::Duration kWebhookTolerance = absl::Minutes(5);

// Maps an HTTP answer to a send result (`fallback_id`: the id of an
// accepted message whose answer names none).
SendResult WebhookResult(const HttpResponse& r, const std::string& fallback_id);

class WebhookProvider : public Provider {
 public:
  // `http` must outlive the provider.
  WebhookProvider(WebhookOptions options, HttpClient* http);

  // Never blocks: one request per message goes to the HTTP client's lane.
  void Send(std::vector<OutgoingMessage> batch, SendDone done) override;
  // A repeated key gets the first answer (the receiver de-duplicates on
  // webhook-id for the generic webhook).
  bool HonoursIdempotencyKeys() const override { return true; }

  // Receipts and inbound messages the receiver posts back, signed the same
  // way (webhook-id, webhook-timestamp within 5 minutes of now,
  // webhook-signature): one event object, or an array of them —
  //   {"type": "message.status", "message_id", "status":
  //    "delivered|read|failed", "error_code", "error_desc", "occurred_at"}
  //   {"type": "message.inbound", "from", "to", "channel", "text"}
  absl::StatusOr<WebhookEvents> ParseWebhook(
      const WebhookRequest& request) override;

 private:
  const WebhookOptions options_;
  HttpClient* const http_;
  const std::shared_ptr<HttpClient::Lane> lane_;
};

}  // namespace campaigns::dispatch

#endif  // CAMPAIGND_SERVER_DISPATCH_PROVIDERS_WEBHOOK_H_
