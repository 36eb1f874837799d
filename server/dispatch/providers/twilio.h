// TwilioProvider: the `twilio` provider (PROVIDERS.md), Twilio's Programmable
// Messaging REST API. Each message is one form-encoded
// `POST {base_url}/2010-04-01/Accounts/{account_sid}/Messages.json` with
// `To`, `From` (or `MessagingServiceSid`), `Body` and, when `public_url` is
// set, `StatusCallback` = `{public_url}/webhooks/{name}`; HTTP basic auth
// with the account SID and auth token. WhatsApp messages carry the
// `whatsapp:` prefix on `To` and `From`. The answer's `sid` is the provider
// message id.
//
//   TwilioOptions o;
//   o.name = "twilio";
//   o.base_url = "https://api.twilio.com";
//   o.account_sid = "AC…";
//   o.auth_token = token;  // secret already resolved
//   o.public_url = "https://campaignd.example.com";
//   TwilioProvider p(o, http_client);
//
// Followed (checked with the `search` docs corpus):
// - Twilio, "Message resource" (Create a Message): the form parameters, the
//   201 answer's `sid`, and the StatusCallback's `MessageSid`,
//   `MessageStatus` (queued, sent, delivered, undelivered, failed, read, …)
//   and `ErrorCode`.
// - Twilio, "Errors" / API responses: `{"code", "message", "more_info",
//   "status"}`; 20003 authentication failed, 20429 too many requests,
//   21211 invalid 'To' number, 21610 the recipient replied STOP
//   (unsubscribed), 21614 'To' is not a mobile number.
// - Twilio, "Webhooks security": `X-Twilio-Signature` = base64 of
//   HMAC-SHA1, keyed with the auth token, over the full URL Twilio requested
//   followed by each POST parameter's name and value, sorted by name; the
//   documented example (auth token 12345, https://mycompany.com/myapp.php?
//   foo=1&bar=2) is a test vector in tests/dispatch/twilio_provider_test.cc.
//
// Thread-safe.
#ifndef CAMPAIGND_SERVER_DISPATCH_PROVIDERS_TWILIO_H_
#define CAMPAIGND_SERVER_DISPATCH_PROVIDERS_TWILIO_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "server/dispatch/provider.h"
#include "server/dispatch/providers/http_client.h"

namespace campaigns::dispatch {

struct TwilioOptions {
  std::string name;      // the provider's name: the webhook path's last part
  std::string base_url;  // e.g. https://api.twilio.com
  std::string account_sid;
  std::string auth_token;             // secret
  std::string messaging_service_sid;  // optional: sent instead of From
  std::string public_url;  // how Twilio reaches our listener ("" = none)
  int max_in_flight = 32;
  absl::Duration timeout = absl::Seconds(10);
};

// The form fields of `m`'s send request, in the order they are sent.
std::vector<std::pair<std::string, std::string>> TwilioFields(
    const TwilioOptions& o, const OutgoingMessage& m);

// Maps Twilio's answer to a send result (pure; never throws). Error texts
// never contain `auth_token`.
SendResult TwilioResult(const HttpResponse& r,
                        const std::string& auth_token = "");

// Twilio's X-Twilio-Signature for a request to `url` carrying the form
// `params`: base64(HMAC-SHA1(auth_token, url + sorted name+value pairs)).
std::string TwilioSignature(
    const std::string& auth_token, const std::string& url,
    std::vector<std::pair<std::string, std::string>> params);

class TwilioProvider : public Provider {
 public:
  // `http` must outlive the provider.
  TwilioProvider(TwilioOptions options, HttpClient* http);

  // Never blocks: one request per message goes to the HTTP client's lane.
  void Send(std::vector<OutgoingMessage> batch, SendDone done) override;

  // A form-encoded POST verified with X-Twilio-Signature over `public_url` +
  // the request's path (+ its query). Status callbacks (`MessageStatus`
  // delivered, read, failed, undelivered; others are skipped) become
  // receipts keyed by `MessageSid`; incoming messages (`From`, `Body`, no
  // `MessageStatus`) inbound texts, on whatsapp when `From` has the
  // `whatsapp:` prefix, else sms. A form with a name or value that is not
  // UTF-8 is INVALID_ARGUMENT.
  absl::StatusOr<WebhookEvents> ParseWebhook(
      const WebhookRequest& request) override;

 private:
  HttpRequest Request(const OutgoingMessage& m) const;

  const TwilioOptions options_;
  HttpClient* const http_;
  const std::shared_ptr<HttpClient::Lane> lane_;
};

}  // namespace campaigns::dispatch

#endif  // CAMPAIGND_SERVER_DISPATCH_PROVIDERS_TWILIO_H_
