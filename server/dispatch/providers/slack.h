// SlackProvider: the `slack` provider (PROVIDERS.md), Slack's Web API. Each
// message is one `POST {base_url}/api/chat.postMessage` of JSON
// `{"channel", "text"}` with `Authorization: Bearer {bot_token}`; the
// provider message id is `{channel}:{ts}` from the answer (a message's ts is
// unique per channel only).
//
//   SlackOptions o;
//   o.name = "slack";
//   o.base_url = "https://slack.com";
//   o.bot_token = token;  // secret already resolved
//   SlackProvider p(o, http_client);
//
// Followed (checked with the `search` docs corpus):
// - api.slack.com/methods/chat.postMessage: JSON bodies with the token as a
//   Bearer header; the answer `{"ok": true, "channel", "ts", "message"}` or
//   `{"ok": false, "error": "<code>"}` (HTTP 200 either way).
// - Slack's common errors: `not_authed`, `invalid_auth`, `account_inactive`,
//   `token_revoked`, `token_expired` (the token is refused) and
//   `ratelimited`; docs.slack.dev "Rate limits": HTTP 429 with a
//   `Retry-After` header in seconds.
// Slack takes no webhooks here (ParseWebhook is UNIMPLEMENTED) and has no
// delivery receipts: a sent message stays sent.
//
// Thread-safe.
#ifndef CAMPAIGND_SERVER_DISPATCH_PROVIDERS_SLACK_H_
#define CAMPAIGND_SERVER_DISPATCH_PROVIDERS_SLACK_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "server/dispatch/provider.h"
#include "server/dispatch/providers/http_client.h"

namespace campaigns::dispatch {

struct SlackOptions {
  std::string name;       // the provider's name, for error texts
  std::string base_url;   // e.g. https://slack.com
  std::string bot_token;  // secret
  int max_in_flight = 32;
  absl::Duration timeout = absl::Seconds(10);
};

// The JSON body of `m`'s chat.postMessage.
std::string SlackBody(const OutgoingMessage& m);

// Maps Slack's answer to a send result (pure; never throws). Error texts
// never contain `bot_token`.
SendResult SlackResult(const HttpResponse& r,
                       const std::string& bot_token = "");

class SlackProvider : public Provider {
 public:
  // `http` must outlive the provider.
  SlackProvider(SlackOptions options, HttpClient* http);

  // Never blocks: one request per message goes to the HTTP client's lane.
  void Send(std::vector<OutgoingMessage> batch, SendDone done) override;

 private:
  HttpRequest Request(const OutgoingMessage& m) const;

  const SlackOptions options_;
  HttpClient* const http_;
  const std::shared_ptr<HttpClient::Lane> lane_;
};

}  // namespace campaigns::dispatch

#endif  // CAMPAIGND_SERVER_DISPATCH_PROVIDERS_SLACK_H_
