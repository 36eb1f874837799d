// SlackProvider: the `slack` provider, chat.postMessage on Slack's Web API.
#include "server/dispatch/providers/slack.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "nlohmann/json.hpp"
#include "server/dispatch/providers/adapter_util.h"

namespace campaigns::dispatch {

std::string SlackBody(const OutgoingMessage& m) {
  nlohmann::ordered_json j;
  j["channel"] = m.address;
  j["text"] = m.text;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

SendResult SlackResult(const HttpResponse& r, const std::string& bot_token) {
  SendResult out;
  if (NoAnswer(r, &out)) {
    out.error_desc = Redact(out.error_desc, {bot_token});
    return out;
  }
  const std::string http = std::to_string(r.status);
  if (r.status == 429) {
    out.status = SendStatus::kTransient;
    out.error_code = "ratelimited";
    out.error_desc = "Slack answered HTTP 429 (rate limited)";
    out.retry_after = r.retry_after;
    return out;
  }
  if (r.status >= 500) {
    out.status = SendStatus::kTransient;
    out.error_code = http;
    out.error_desc = absl::StrCat("Slack answered HTTP ", http);
    out.retry_after = r.retry_after;
    return out;
  }
  nlohmann::json body;
  const bool json = ParseJsonObject(r.body, &body);
  const auto ok = json ? body.find("ok") : body.end();
  if (!json || ok == body.end() || !ok->is_boolean()) {
    if (r.status >= 200 && r.status < 300) {
      return OutcomeUnknown("Slack", "its answer is not a Web API answer");
    }
    out.error_code = http;
    out.error_desc = absl::StrCat("Slack answered HTTP ", http);
    out.status = (r.status == 401 || r.status == 403) ? SendStatus::kUnusable
                                                      : SendStatus::kPermanent;
    return out;
  }
  if (ok->get<bool>()) {
    const std::string channel = JsonString(body, "channel");
    const std::string ts = JsonString(body, "ts");
    if (channel.empty() || ts.empty() || channel.size() + ts.size() > 255) {
      return OutcomeUnknown("Slack", "its answer has no channel and ts");
    }
    out.status = SendStatus::kAccepted;
    out.provider_message_id = absl::StrCat(channel, ":", ts);
    return out;
  }
  std::string error = Clip(JsonString(body, "error"), 100);
  if (error.empty()) error = http;
  out.error_code = error;
  out.error_desc =
      Redact(absl::StrCat("Slack refused the message: ", error), {bot_token});
  if (error == "ratelimited" || error == "rate_limited") {
    out.status = SendStatus::kTransient;
    out.retry_after = r.retry_after;
  } else if (error == "invalid_auth" || error == "not_authed" ||
             error == "account_inactive" || error == "token_revoked" ||
             error == "token_expired" || r.status == 401 || r.status == 403) {
    out.status = SendStatus::kUnusable;
    out.error_desc = absl::StrCat("Slack refused the bot token (", error, ")");
  } else {
    out.status = SendStatus::kPermanent;
  }
  return out;
}

SlackProvider::SlackProvider(SlackOptions options, HttpClient* http)
    : options_(std::move(options)),
      http_(http),
      lane_(http->NewLane(options_.max_in_flight)) {}

HttpRequest SlackProvider::Request(const OutgoingMessage& m) const {
  HttpRequest req;
  req.url = absl::StrCat(absl::StripSuffix(options_.base_url, "/"),
                         "/api/chat.postMessage");
  req.timeout = options_.timeout;
  req.headers = {"Content-Type: application/json; charset=utf-8",
                 absl::StrCat("Authorization: Bearer ", options_.bot_token)};
  req.body = SlackBody(m);
  return req;
}

void SlackProvider::Send(std::vector<OutgoingMessage> batch, SendDone done) {
  SendEach(
      http_, lane_, std::move(batch),
      [this](const OutgoingMessage& m) { return Request(m); },
      [token = options_.bot_token](const OutgoingMessage&,
                                   const HttpResponse& r) {
        return SlackResult(r, token);
      },
      std::move(done));
}

}  // namespace campaigns::dispatch
