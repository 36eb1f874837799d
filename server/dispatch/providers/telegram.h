// TelegramProvider: the `telegram` provider (PROVIDERS.md), the Telegram Bot
// API. Each message is one `POST {base_url}/bot{bot_token}/sendMessage` of
// JSON `{"chat_id", "text"}`; the provider message id is
// `{chat_id}:{result.message_id}` (message ids are unique per chat only).
// The request URL holds the bot token: it is never logged nor put in an
// error text.
//
//   TelegramOptions o;
//   o.name = "tg";
//   o.base_url = "https://api.telegram.org";
//   o.bot_token = token;            // secrets already resolved
//   o.webhook_secret = secret;      // setWebhook's secret_token
//   TelegramProvider p(o, http_client);
//
// Followed (checked with the `search` docs corpus):
// - core.telegram.org/bots/api "Making requests": every answer is a JSON
//   object with `ok`; on success `result`, else `error_code`,
//   `description` and optional `parameters` (ResponseParameters:
//   `retry_after` seconds, `migrate_to_chat_id`).
// - core.telegram.org/bots/api#sendmessage: `chat_id` is an Integer or a
//   String (@channelusername); the result is the sent Message.
// - core.telegram.org/bots/api#setwebhook: with `secret_token` set, every
//   update carries the header `X-Telegram-Bot-Api-Secret-Token`; the body
//   is a JSON Update (`message.text`, `message.chat.id`).
// - The error texts bots meet (403 "Forbidden: bot was blocked by the
//   user", 401 "Unauthorized", 429 "Too Many Requests: retry after N") as
//   collected in github.com/TelegramBotAPI/errors.
// Telegram has no delivery receipts: a sent message stays sent.
//
// Thread-safe.
#ifndef CAMPAIGND_SERVER_DISPATCH_PROVIDERS_TELEGRAM_H_
#define CAMPAIGND_SERVER_DISPATCH_PROVIDERS_TELEGRAM_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "server/dispatch/provider.h"
#include "server/dispatch/providers/http_client.h"

namespace campaigns::dispatch {

struct TelegramOptions {
  std::string name;            // the provider's name, for error texts
  std::string base_url;        // e.g. https://api.telegram.org
  std::string bot_token;       // secret: part of every request's URL
  std::string webhook_secret;  // secret: setWebhook's secret_token
  int max_in_flight = 32;
  absl::Duration timeout = absl::Seconds(10);
};

// The JSON body of `m`'s sendMessage: `chat_id` as an integer when the
// address is one (a chat id), else as the string (an @channelusername).
std::string TelegramBody(const OutgoingMessage& m);

// Maps the Bot API's answer for a message to `chat_id` to a send result
// (pure; never throws). Error texts never contain `bot_token`.
SendResult TelegramResult(const HttpResponse& r, const std::string& chat_id,
                          const std::string& bot_token = "");

class TelegramProvider : public Provider {
 public:
  // `http` must outlive the provider.
  TelegramProvider(TelegramOptions options, HttpClient* http);

  // Never blocks: one request per message goes to the HTTP client's lane.
  void Send(std::vector<OutgoingMessage> batch, SendDone done) override;

  // An Update POSTed with X-Telegram-Bot-Api-Secret-Token equal to
  // `webhook_secret` (UNAUTHENTICATED otherwise, and always when no secret
  // is configured). A `message` with `text` becomes an inbound text from
  // its chat id; other updates carry nothing.
  absl::StatusOr<WebhookEvents> ParseWebhook(
      const WebhookRequest& request) override;

 private:
  HttpRequest Request(const OutgoingMessage& m) const;

  const TelegramOptions options_;
  HttpClient* const http_;
  const std::shared_ptr<HttpClient::Lane> lane_;
};

}  // namespace campaigns::dispatch

#endif  // CAMPAIGND_SERVER_DISPATCH_PROVIDERS_TELEGRAM_H_
