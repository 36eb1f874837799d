// WhatsAppCloudProvider: the `whatsapp_cloud` provider (PROVIDERS.md), Meta's
// WhatsApp Business Cloud API. Each message is one
// `POST {base_url}/{phone_number_id}/messages` with `Authorization: Bearer
// {access_token}`: a `template` message when the campaign names a template,
// else a `text` message. The answer's `messages[0].id` (`wamid.…`) is the
// provider message id.
//
//   WhatsAppCloudOptions o;
//   o.name = "meta";
//   o.base_url = "https://graph.facebook.com/v21.0";
//   o.phone_number_id = "106540352242922";
//   o.access_token = token;  // secrets already resolved
//   o.app_secret = app_secret;
//   o.verify_token = verify_token;
//   WhatsAppCloudProvider p(o, http_client);
//   p.Send(batch, done);  // returns at once; done runs on the HTTP thread
//
// Followed (checked with the `search` docs corpus):
// - Meta, "Send messages" / template messages: the request shape, template
//   `name`, `language.code`, `components[].parameters[]` of
//   `{"type": "text", "text": …}` and buttons' `sub_type`/`index`; the answer
//   `{"messaging_product", "contacts": […], "messages": [{"id": "wamid…"}]}`.
// - Meta, "WhatsApp error codes"
//   (developers.facebook.com/documentation/business-messaging/whatsapp/
//   support/error-codes): the Graph error object `{"error": {"message",
//   "type", "code", "error_subcode", "fbtrace_id"}}`; 4, 80007, 130429,
//   131056 are rate limits; 2 and 131016 a service that is temporarily
//   down; 190 an expired or revoked token; 0, 10 and 200–299 missing
//   permissions; 131050 a recipient who stopped marketing messages.
// - Meta, Webhooks "Getting started" / WhatsApp webhooks: the GET
//   verification request (`hub.mode=subscribe`, `hub.verify_token`, answer
//   `hub.challenge`), `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the
//   raw payload under the app secret>`, and the `messages` field's
//   `entry[].changes[].value` with `metadata`, `statuses[]` and `messages[]`.
//
// Thread-safe.
#ifndef CAMPAIGND_SERVER_DISPATCH_PROVIDERS_WHATSAPP_CLOUD_H_
#define CAMPAIGND_SERVER_DISPATCH_PROVIDERS_WHATSAPP_CLOUD_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "server/dispatch/provider.h"
#include "server/dispatch/providers/http_client.h"

namespace campaigns::dispatch {

struct WhatsAppCloudOptions {
  std::string name;      // the provider's name, for error texts
  std::string base_url;  // e.g. https://graph.facebook.com/v21.0
  std::string phone_number_id;
  std::string access_token;  // secret
  std::string app_secret;    // secret: signs the webhooks Meta sends
  std::string verify_token;  // secret: the GET subscription check
  int max_in_flight = 32;
  absl::Duration timeout = absl::Seconds(10);
};

// The JSON body of `m`'s send request: a template message when
// `m.template_name` is set, else a text message.
std::string WhatsAppCloudBody(const OutgoingMessage& m);

// Maps Meta's answer to a send result (pure; never throws). Error texts
// never contain `access_token`.
SendResult WhatsAppCloudResult(const HttpResponse& r,
                               const std::string& access_token = "");

// Meta's signature header for `body`: "sha256=" + hex HMAC-SHA256.
std::string WhatsAppCloudSignature(const std::string& app_secret,
                                   const std::string& body);

class WhatsAppCloudProvider : public Provider {
 public:
  // `http` must outlive the provider.
  WhatsAppCloudProvider(WhatsAppCloudOptions options, HttpClient* http);

  // Never blocks: one request per message goes to the HTTP client's lane.
  void Send(std::vector<OutgoingMessage> batch, SendDone done) override;

  // GET: Meta's subscription check; `answer` is `hub.challenge` when
  // `hub.mode` is subscribe and `hub.verify_token` matches (else
  // UNAUTHENTICATED). POST: verified with X-Hub-Signature-256 on the raw
  // body; `statuses` become receipts (delivered, read, failed; `sent` is
  // skipped) keyed by the wamid, text and button `messages` inbound texts.
  absl::StatusOr<WebhookEvents> ParseWebhook(
      const WebhookRequest& request) override;

 private:
  HttpRequest Request(const OutgoingMessage& m) const;

  const WhatsAppCloudOptions options_;
  HttpClient* const http_;
  const std::shared_ptr<HttpClient::Lane> lane_;
};

}  // namespace campaigns::dispatch

#endif  // CAMPAIGND_SERVER_DISPATCH_PROVIDERS_WHATSAPP_CLOUD_H_
