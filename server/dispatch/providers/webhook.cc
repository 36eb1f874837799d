// WebhookProvider: the generic `webhook` provider, signed JSON POSTs.
#include "server/dispatch/providers/webhook.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "nlohmann/json.hpp"
#include "server/dispatch/providers/adapter_util.h"
#include "server/dispatch/providers/signatures.h"
#include "server/domain/types.h"

namespace campaigns::dispatch {

std::string WebhookBody(const OutgoingMessage& m) {
  nlohmann::ordered_json j;
  j["type"] = "message.send";
  j["id"] = m.idempotency_key;
  j["account_id"] = m.account_id;
  j["campaign_id"] = m.campaign_id;
  j["recipient_id"] = m.recipient_id;
  j["channel"] = std::string(ChannelName(m.channel));
  j["from"] = m.sender_id;
  j["to"] = m.address;
  j["text"] = m.text;
  if (m.channel == Channel::kEmail) {
    j["subject"] = m.subject;
    if (!m.html.empty()) j["html"] = m.html;
  }
  if (!m.template_name.empty()) {
    nlohmann::ordered_json parameters = nlohmann::ordered_json::object();
    for (const TemplateComponent& c : m.components) {
      if (c.type != "body") continue;
      for (size_t i = 0; i < c.parameters.size(); ++i) {
        parameters[std::to_string(i + 1)] = c.parameters[i].text;
      }
    }
    j["template"] = {{"name", m.template_name},
                     {"language", m.template_language},
                     {"parameters", std::move(parameters)}};
  }
  j["variables"] = m.variables;
  // Invalid UTF-8 cannot come from the store, but never throw over it.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

SendResult WebhookResult(const HttpResponse& r,
                         const std::string& fallback_id) {
  SendResult out;
  if (NoAnswer(r, &out)) return out;
  const std::string code = std::to_string(r.status);
  if (r.status >= 200 && r.status < 300) {
    out.status = SendStatus::kAccepted;
    out.provider_message_id = fallback_id;
    const nlohmann::json body = nlohmann::json::parse(r.body, nullptr, false);
    if (!body.is_discarded() && body.is_object()) {
      auto it = body.find("message_id");
      if (it != body.end() && it->is_string() &&
          !it->get_ref<const std::string&>().empty() &&
          it->get_ref<const std::string&>().size() <= 256) {
        out.provider_message_id = it->get<std::string>();
      }
    }
    return out;
  }
  out.error_code = code;
  out.error_desc = absl::StrCat("the receiver answered HTTP ", code);
  if (r.status == 429 || r.status >= 500) {
    out.status = SendStatus::kTransient;
    out.retry_after = r.retry_after;
  } else if (r.status == 401 || r.status == 403) {
    out.status = SendStatus::kUnusable;
    out.error_desc =
        absl::StrCat("the receiver refused the signature (HTTP ", code, ")");
  } else {
    out.status = SendStatus::kPermanent;
  }
  return out;
}

WebhookProvider::WebhookProvider(WebhookOptions options, HttpClient* http)
    : options_(std::move(options)),
      http_(http),
      lane_(http->NewLane(options_.max_in_flight)) {}

void WebhookProvider::Send(std::vector<OutgoingMessage> batch, SendDone done) {
  // One timestamp for the batch: the receiver checks it is recent.
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  SendEach(
      http_, lane_, std::move(batch),
      [this, now](const OutgoingMessage& m) {
        HttpRequest req;
        req.url = options_.url;
        req.timeout = options_.timeout;
        req.body = WebhookBody(m);
        req.headers = {
            "Content-Type: application/json",
            absl::StrCat("webhook-id: ", m.idempotency_key),
            absl::StrCat("webhook-timestamp: ", now),
            absl::StrCat("webhook-signature: ",
                         StandardWebhookSignature(
                             options_.key, m.idempotency_key, now, req.body)),
        };
        return req;
      },
      [](const OutgoingMessage& m, const HttpResponse& r) {
        return WebhookResult(r, m.idempotency_key);
      },
      std::move(done));
}

namespace {

// A string member of an event, "" when absent; INVALID_ARGUMENT when it is
// there but not a string.
absl::StatusOr<std::string> StringField(const nlohmann::json& event,
                                        const char* name) {
  auto it = event.find(name);
  if (it == event.end() || it->is_null()) return std::string();
  if (!it->is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": expected a string"));
  }
  return it->get<std::string>();
}

absl::Status AddEvent(const nlohmann::json& event, absl::Time now,
                      WebhookEvents* out) {
  if (!event.is_object()) {
    return absl::InvalidArgumentError("each event must be a JSON object");
  }
  absl::StatusOr<std::string> type = StringField(event, "type");
  if (!type.ok()) return type.status();
  if (*type == "message.status") {
    ReceiptUpdate r;
    absl::StatusOr<std::string> id = StringField(event, "message_id");
    absl::StatusOr<std::string> status = StringField(event, "status");
    absl::StatusOr<std::string> code = StringField(event, "error_code");
    absl::StatusOr<std::string> desc = StringField(event, "error_desc");
    absl::StatusOr<std::string> at = StringField(event, "occurred_at");
    for (const auto* f : {&id, &status, &code, &desc, &at}) {
      if (!f->ok()) return f->status();
    }
    if (id->empty()) return absl::InvalidArgumentError("message_id: required");
    r.provider_message_id = *id;
    if (*status == "delivered") {
      r.status = RecipientStatus::kDelivered;
    } else if (*status == "read") {
      r.status = RecipientStatus::kRead;
    } else if (*status == "failed") {
      r.status = RecipientStatus::kFailed;
    } else {
      return absl::InvalidArgumentError(
          "status: expected delivered, read or failed");
    }
    r.error_code = *code;
    r.error_desc = *desc;
    r.occurred_at = now;
    if (!at->empty()) {
      std::string err;
      if (!absl::ParseTime(absl::RFC3339_full, *at, &r.occurred_at, &err)) {
        return absl::InvalidArgumentError(
            "occurred_at: expected an RFC 3339 time");
      }
    }
    out->receipts.push_back(std::move(r));
    return absl::OkStatus();
  }
  if (*type == "message.inbound") {
    InboundText m;
    absl::StatusOr<std::string> from = StringField(event, "from");
    absl::StatusOr<std::string> to = StringField(event, "to");
    absl::StatusOr<std::string> channel = StringField(event, "channel");
    absl::StatusOr<std::string> text = StringField(event, "text");
    for (const auto* f : {&from, &to, &channel, &text}) {
      if (!f->ok()) return f->status();
    }
    if (from->empty()) return absl::InvalidArgumentError("from: required");
    if (!ParseChannel(*channel, &m.channel) ||
        m.channel == Channel::kUnspecified) {
      return absl::InvalidArgumentError("channel: unknown channel");
    }
    m.from = *from;
    m.to = *to;
    m.text = *text;
    out->inbound.push_back(std::move(m));
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      "type: expected message.status or message.inbound");
}

}  // namespace

absl::StatusOr<WebhookEvents> WebhookProvider::ParseWebhook(
    const WebhookRequest& request) {
  if (request.method != "POST") {
    return absl::InvalidArgumentError("expected POST");
  }
  const std::string& id = HeaderOf(request, "webhook-id");
  const std::string& ts = HeaderOf(request, "webhook-timestamp");
  const std::string& sig = HeaderOf(request, "webhook-signature");
  int64_t timestamp = 0;
  if (id.empty() || sig.empty() || !absl::SimpleAtoi(ts, &timestamp)) {
    return absl::UnauthenticatedError(
        "missing webhook-id, webhook-timestamp or webhook-signature");
  }
  if (absl::AbsDuration(absl::FromUnixSeconds(timestamp) - request.now) >
      kWebhookTolerance) {
    return absl::UnauthenticatedError(
        "webhook-timestamp is more than 5 minutes from now");
  }
  if (!VerifyStandardWebhook(options_.key, id, timestamp, request.body, sig)) {
    return absl::UnauthenticatedError("webhook-signature does not match");
  }
  const nlohmann::json body =
      nlohmann::json::parse(request.body, nullptr, false);
  if (body.is_discarded()) {
    return absl::InvalidArgumentError("the body is not JSON");
  }
  WebhookEvents out;
  if (body.is_array()) {
    for (const nlohmann::json& e : body) {
      if (absl::Status s = AddEvent(e, request.now, &out); !s.ok()) return s;
    }
  } else if (absl::Status s = AddEvent(body, request.now, &out); !s.ok()) {
    return s;
  }
  return out;
}

}  // namespace campaigns::dispatch
