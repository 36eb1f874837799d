// TelegramProvider: the `telegram` provider, the Telegram Bot API.
#include "server/dispatch/providers/telegram.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "nlohmann/json.hpp"
#include "server/dispatch/providers/adapter_util.h"
#include "server/dispatch/providers/signatures.h"

namespace campaigns::dispatch {

std::string TelegramBody(const OutgoingMessage& m) {
  nlohmann::ordered_json j;
  int64_t chat_id = 0;
  if (absl::SimpleAtoi(m.address, &chat_id)) {
    j["chat_id"] = chat_id;
  } else {
    j["chat_id"] = m.address;
  }
  j["text"] = m.text;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

SendResult TelegramResult(const HttpResponse& r, const std::string& chat_id,
                          const std::string& bot_token) {
  SendResult out;
  if (NoAnswer(r, &out)) {
    out.error_desc = Redact(out.error_desc, {bot_token});
    return out;
  }
  nlohmann::json body;
  const bool json = ParseJsonObject(r.body, &body);
  const auto ok = json ? body.find("ok") : body.end();
  const bool is_ok =
      json && ok != body.end() && ok->is_boolean() && ok->get<bool>();
  if (r.status >= 200 && r.status < 300 && (!json || is_ok)) {
    if (!json) return OutcomeUnknown("Telegram", "its answer is not JSON");
    int64_t message_id = 0;
    const auto result = body.find("result");
    if (result == body.end() || !result->is_object() ||
        !JsonInt(*result, "message_id", &message_id)) {
      return OutcomeUnknown("Telegram", "its answer has no result.message_id");
    }
    out.status = SendStatus::kAccepted;
    out.provider_message_id = absl::StrCat(chat_id, ":", message_id);
    return out;
  }

  int64_t code = r.status;
  std::string description;
  absl::Duration retry_after = r.retry_after;
  if (json) {
    int64_t c = 0;
    if (JsonInt(body, "error_code", &c)) code = c;
    description = JsonString(body, "description");
    if (auto p = body.find("parameters"); p != body.end() && p->is_object()) {
      int64_t seconds = 0;
      if (JsonInt(*p, "retry_after", &seconds) && seconds > 0) {
        retry_after = absl::Seconds(seconds);
      }
    }
  }
  out.error_code = std::to_string(code);
  out.error_desc =
      Redact(absl::StrCat("Telegram error ", code, ": ",
                          description.empty() ? std::string("(no description)")
                                              : Clip(description),
                          r.truncated ? " (answer truncated)" : ""),
             {bot_token});
  if (code == 429 || code >= 500) {
    out.status = SendStatus::kTransient;
    out.retry_after = retry_after;
    return out;
  }
  if (code == 401 || code == 404) {
    // 401: the token is unknown or revoked; 404: the API has no such bot
    // (a malformed token). Nothing can be sent until it is fixed.
    out.status = SendStatus::kUnusable;
    out.error_desc =
        absl::StrCat("Telegram refused the bot token: ", out.error_desc);
    return out;
  }
  out.status = SendStatus::kPermanent;
  if (code == 403 && absl::StrContains(absl::AsciiStrToLower(description),
                                       "bot was blocked by the user")) {
    out.suppress = "opt_out";
  }
  return out;
}

TelegramProvider::TelegramProvider(TelegramOptions options, HttpClient* http)
    : options_(std::move(options)),
      http_(http),
      lane_(http->NewLane(options_.max_in_flight)) {}

HttpRequest TelegramProvider::Request(const OutgoingMessage& m) const {
  HttpRequest req;
  req.url = absl::StrCat(absl::StripSuffix(options_.base_url, "/"), "/bot",
                         options_.bot_token, "/sendMessage");
  req.timeout = options_.timeout;
  req.headers = {"Content-Type: application/json"};
  req.body = TelegramBody(m);
  return req;
}

void TelegramProvider::Send(std::vector<OutgoingMessage> batch, SendDone done) {
  SendEach(
      http_, lane_, std::move(batch),
      [this](const OutgoingMessage& m) { return Request(m); },
      [token = options_.bot_token](const OutgoingMessage& m,
                                   const HttpResponse& r) {
        return TelegramResult(r, m.address, token);
      },
      std::move(done));
}

absl::StatusOr<WebhookEvents> TelegramProvider::ParseWebhook(
    const WebhookRequest& request) {
  if (request.method != "POST") {
    return absl::InvalidArgumentError("expected POST");
  }
  const std::string& token =
      HeaderOf(request, "x-telegram-bot-api-secret-token");
  if (token.empty()) {
    return absl::UnauthenticatedError(
        "missing X-Telegram-Bot-Api-Secret-Token");
  }
  if (options_.webhook_secret.empty() ||
      !ConstantTimeEquals(token, options_.webhook_secret)) {
    return absl::UnauthenticatedError(
        "X-Telegram-Bot-Api-Secret-Token does not match");
  }
  nlohmann::json update;
  if (!ParseJsonObject(request.body, &update)) {
    return absl::InvalidArgumentError("the body is not a JSON Update object");
  }
  WebhookEvents out;
  auto message = update.find("message");
  if (message == update.end()) return out;  // edits, callbacks, …
  if (!message->is_object()) {
    return absl::InvalidArgumentError("message: expected an object");
  }
  auto text = message->find("text");
  if (text == message->end()) return out;  // a photo, a sticker, …
  if (!text->is_string()) {
    return absl::InvalidArgumentError("message.text: expected a string");
  }
  auto chat = message->find("chat");
  int64_t chat_id = 0;
  if (chat == message->end() || !chat->is_object() ||
      !JsonInt(*chat, "id", &chat_id)) {
    return absl::InvalidArgumentError("message.chat.id: required");
  }
  InboundText t;
  t.channel = Channel::kTelegram;
  t.from = std::to_string(chat_id);
  t.text = text->get<std::string>();
  out.inbound.push_back(std::move(t));
  return out;
}

}  // namespace campaigns::dispatch
