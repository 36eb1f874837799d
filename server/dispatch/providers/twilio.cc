// TwilioProvider: the `twilio` provider, Twilio's Messaging REST API.
#include "server/dispatch/providers/twilio.h"

#include <algorithm>
#include <map>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "nlohmann/json.hpp"
#include "server/dispatch/providers/adapter_util.h"
#include "server/dispatch/providers/signatures.h"
#include "server/domain/utf8.h"

namespace campaigns::dispatch {
namespace {

constexpr char kWhatsAppPrefix[] = "whatsapp:";

std::string WithPrefix(const OutgoingMessage& m, const std::string& number) {
  if (m.channel != Channel::kWhatsapp ||
      absl::StartsWith(number, kWhatsAppPrefix)) {
    return number;
  }
  return absl::StrCat(kWhatsAppPrefix, number);
}

}  // namespace

std::vector<std::pair<std::string, std::string>> TwilioFields(
    const TwilioOptions& o, const OutgoingMessage& m) {
  std::vector<std::pair<std::string, std::string>> f;
  f.emplace_back("To", WithPrefix(m, m.address));
  if (!o.messaging_service_sid.empty()) {
    f.emplace_back("MessagingServiceSid", o.messaging_service_sid);
  } else {
    f.emplace_back("From", WithPrefix(m, m.sender_id));
  }
  f.emplace_back("Body", m.text);
  if (!o.public_url.empty()) {
    f.emplace_back("StatusCallback",
                   absl::StrCat(absl::StripSuffix(o.public_url, "/"),
                                "/webhooks/", o.name));
  }
  return f;
}

SendResult TwilioResult(const HttpResponse& r, const std::string& auth_token) {
  SendResult out;
  if (NoAnswer(r, &out)) {
    out.error_desc = Redact(out.error_desc, {auth_token});
    return out;
  }
  nlohmann::json body;
  const bool json = ParseJsonObject(r.body, &body);
  if (r.status >= 200 && r.status < 300) {
    if (!json) return OutcomeUnknown("Twilio", "its answer is not JSON");
    std::string sid = JsonString(body, "sid");
    if (sid.empty() || sid.size() > 256) {
      return OutcomeUnknown("Twilio", "its answer has no sid");
    }
    out.status = SendStatus::kAccepted;
    out.provider_message_id = std::move(sid);
    return out;
  }
  int64_t code = -1;
  std::string message;
  if (json) {
    if (!JsonInt(body, "code", &code)) code = -1;
    message = JsonString(body, "message");
  }
  const std::string http = std::to_string(r.status);
  out.error_code = code >= 0 ? std::to_string(code) : http;
  out.error_desc = code >= 0
                       ? absl::StrCat("Twilio error ", code, ": ",
                                      Clip(message), " (HTTP ", http, ")")
                       : absl::StrCat("Twilio answered HTTP ", http,
                                      r.truncated ? " (answer truncated)" : "");
  out.error_desc = Redact(out.error_desc, {auth_token});

  if (code == 20003 || r.status == 401 || r.status == 403) {
    out.status = SendStatus::kUnusable;
    out.error_desc = absl::StrCat(
        "Twilio refused the account SID and auth token: ", out.error_desc);
    return out;
  }
  if (code == 20429 || r.status == 429 || r.status >= 500) {
    out.status = SendStatus::kTransient;
    out.retry_after = r.retry_after;
    return out;
  }
  out.status = SendStatus::kPermanent;
  if (code == 21610) out.suppress = "opt_out";  // the recipient sent STOP
  return out;
}

std::string TwilioSignature(
    const std::string& auth_token, const std::string& url,
    std::vector<std::pair<std::string, std::string>> params) {
  std::sort(params.begin(), params.end());
  std::string data = url;
  for (const auto& [name, value] : params) absl::StrAppend(&data, name, value);
  return absl::Base64Escape(HmacSha1(auth_token, data));
}

TwilioProvider::TwilioProvider(TwilioOptions options, HttpClient* http)
    : options_(std::move(options)),
      http_(http),
      lane_(http->NewLane(options_.max_in_flight)) {}

HttpRequest TwilioProvider::Request(const OutgoingMessage& m) const {
  HttpRequest req;
  req.url = absl::StrCat(absl::StripSuffix(options_.base_url, "/"),
                         "/2010-04-01/Accounts/", options_.account_sid,
                         "/Messages.json");
  req.timeout = options_.timeout;
  req.headers = {"Content-Type: application/x-www-form-urlencoded",
                 "Accept: application/json"};
  req.basic_auth = absl::StrCat(options_.account_sid, ":", options_.auth_token);
  req.body = FormEncode(TwilioFields(options_, m));
  return req;
}

void TwilioProvider::Send(std::vector<OutgoingMessage> batch, SendDone done) {
  SendEach(
      http_, lane_, std::move(batch),
      [this](const OutgoingMessage& m) { return Request(m); },
      [token = options_.auth_token](const OutgoingMessage&,
                                    const HttpResponse& r) {
        return TwilioResult(r, token);
      },
      std::move(done));
}

absl::StatusOr<WebhookEvents> TwilioProvider::ParseWebhook(
    const WebhookRequest& request) {
  if (request.method != "POST") {
    return absl::InvalidArgumentError("expected POST");
  }
  const std::string& signature = HeaderOf(request, "x-twilio-signature");
  if (signature.empty()) {
    return absl::UnauthenticatedError("missing X-Twilio-Signature");
  }
  if (options_.public_url.empty() || options_.auth_token.empty()) {
    return absl::UnauthenticatedError(
        "public_url is not configured: Twilio's signature cannot be checked");
  }
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> params =
      FormDecode(request.body);
  if (!params.ok()) {
    // Not a form Twilio signed: its signature cannot match.
    return absl::UnauthenticatedError(
        "X-Twilio-Signature cannot be checked: the body is not a form");
  }
  // The URL Twilio requested. The listener hands the query decoded, so it
  // is re-encoded in name order (Twilio's own callbacks carry none).
  std::string url =
      absl::StrCat(absl::StripSuffix(options_.public_url, "/"), request.path);
  if (!request.query.empty()) {
    std::vector<std::pair<std::string, std::string>> q(request.query.begin(),
                                                       request.query.end());
    absl::StrAppend(&url, "?", FormEncode(q));
  }
  if (!ConstantTimeEquals(signature,
                          TwilioSignature(options_.auth_token, url, *params))) {
    return absl::UnauthenticatedError("X-Twilio-Signature does not match");
  }

  // Twilio sends UTF-8. What a form carries ends up in the store and in
  // protos (error descriptions, inbound texts, suppression notes), where
  // other bytes would break every answer that shows them.
  std::map<std::string, std::string> form;
  for (const auto& [name, value] : *params) {
    if (!IsValidUtf8(name) || !IsValidUtf8(value)) {
      return absl::InvalidArgumentError("the form is not valid UTF-8");
    }
    form.emplace(name, value);
  }
  auto get = [&form](const char* name) -> const std::string* {
    auto it = form.find(name);
    return it == form.end() ? nullptr : &it->second;
  };
  WebhookEvents out;
  if (const std::string* status = get("MessageStatus")) {
    const std::string* sid = get("MessageSid");
    if (sid == nullptr) sid = get("SmsSid");
    if (sid == nullptr || sid->empty()) {
      return absl::InvalidArgumentError("MessageSid: required");
    }
    ReceiptUpdate u;
    u.provider_message_id = *sid;
    u.occurred_at = request.now;
    if (*status == "delivered") {
      u.status = RecipientStatus::kDelivered;
    } else if (*status == "read") {
      u.status = RecipientStatus::kRead;
    } else if (*status == "failed" || *status == "undelivered") {
      u.status = RecipientStatus::kFailed;
      if (const std::string* code = get("ErrorCode")) u.error_code = *code;
      if (const std::string* msg = get("ErrorMessage")) {
        u.error_desc = Clip(*msg);
      }
      if (u.error_desc.empty()) u.error_desc = *status;
    } else {
      return out;  // queued, sending, sent, accepted, …: nothing final
    }
    out.receipts.push_back(std::move(u));
    return out;
  }
  const std::string* from = get("From");
  const std::string* text = get("Body");
  if (from == nullptr || from->empty() || text == nullptr) {
    return absl::InvalidArgumentError(
        "neither a status callback (MessageStatus) nor a message (From, Body)");
  }
  InboundText t;
  t.channel = Channel::kSms;
  absl::string_view f = *from;
  if (absl::ConsumePrefix(&f, kWhatsAppPrefix)) t.channel = Channel::kWhatsapp;
  t.from = std::string(f);
  if (const std::string* to = get("To")) {
    absl::string_view v = *to;
    absl::ConsumePrefix(&v, kWhatsAppPrefix);
    t.to = std::string(v);
  }
  t.text = *text;
  out.inbound.push_back(std::move(t));
  return out;
}

}  // namespace campaigns::dispatch
