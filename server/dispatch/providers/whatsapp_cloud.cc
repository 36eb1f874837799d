// WhatsAppCloudProvider: the `whatsapp_cloud` provider, Meta's Cloud API.
#include "server/dispatch/providers/whatsapp_cloud.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "nlohmann/json.hpp"
#include "server/dispatch/providers/adapter_util.h"
#include "server/dispatch/providers/signatures.h"

namespace campaigns::dispatch {
namespace {

constexpr char kVendor[] = "WhatsApp Cloud API";

nlohmann::ordered_json Parameter(const TemplateParameter& p) {
  if (absl::EqualsIgnoreCase(p.type, "payload")) {
    return {{"type", "payload"}, {"payload", p.payload}};
  }
  return {{"type", "text"}, {"text", p.text}};
}

// The components Meta expects: each of the campaign's components that
// carries parameters (body, header, buttons), with those parameters
// rendered for this recipient. Components without parameters (a footer, a
// static header) are part of the approved template and are not sent.
nlohmann::ordered_json Components(const std::vector<TemplateComponent>& cs) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const TemplateComponent& c : cs) {
    if (c.parameters.empty()) continue;
    nlohmann::ordered_json j;
    j["type"] = absl::AsciiStrToLower(c.type);
    if (absl::EqualsIgnoreCase(c.type, "button")) {
      j["sub_type"] = c.sub_type;
      j["index"] = std::to_string(c.index);
    }
    nlohmann::ordered_json params = nlohmann::ordered_json::array();
    for (const TemplateParameter& p : c.parameters) {
      params.push_back(Parameter(p));
    }
    j["parameters"] = std::move(params);
    out.push_back(std::move(j));
  }
  return out;
}

bool IsIn(int64_t code, std::initializer_list<int64_t> codes) {
  for (int64_t c : codes) {
    if (c == code) return true;
  }
  return false;
}

}  // namespace

std::string WhatsAppCloudBody(const OutgoingMessage& m) {
  nlohmann::ordered_json j;
  j["messaging_product"] = "whatsapp";
  j["recipient_type"] = "individual";
  j["to"] = std::string(absl::StripPrefix(m.address, "+"));
  if (!m.template_name.empty()) {
    j["type"] = "template";
    nlohmann::ordered_json t;
    t["name"] = m.template_name;
    t["language"] = {{"code", m.template_language}};
    nlohmann::ordered_json components = Components(m.components);
    if (!components.empty()) t["components"] = std::move(components);
    j["template"] = std::move(t);
  } else {
    j["type"] = "text";
    j["text"] = {{"body", m.text}};
  }
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

SendResult WhatsAppCloudResult(const HttpResponse& r,
                               const std::string& access_token) {
  SendResult out;
  if (NoAnswer(r, &out)) {
    out.error_desc = Redact(out.error_desc, {access_token});
    return out;
  }
  nlohmann::json body;
  const bool json = ParseJsonObject(r.body, &body);
  if (r.status >= 200 && r.status < 300) {
    if (!json) return OutcomeUnknown(kVendor, "its answer is not JSON");
    const auto messages = body.find("messages");
    std::string id;
    if (messages != body.end() && messages->is_array() && !messages->empty()) {
      id = JsonString((*messages)[0], "id");
    }
    if (id.empty() || id.size() > 256) {
      return OutcomeUnknown(kVendor, "its answer has no messages[0].id");
    }
    out.status = SendStatus::kAccepted;
    out.provider_message_id = std::move(id);
    return out;
  }

  // An error: Meta's Graph error object when there is one.
  int64_t code = -1;
  std::string message;
  std::string trace;
  if (json) {
    const auto error = body.find("error");
    if (error != body.end() && error->is_object()) {
      if (!JsonInt(*error, "code", &code)) code = -1;
      message = JsonString(*error, "message");
      trace = JsonString(*error, "fbtrace_id");
    }
  }
  const std::string http = std::to_string(r.status);
  out.error_code = code >= 0 ? std::to_string(code) : http;
  out.error_desc =
      code >= 0
          ? absl::StrCat(
                kVendor, " error ", code, ": ", Clip(message), " (HTTP ", http,
                trace.empty() ? ""
                              : absl::StrCat(", fbtrace_id ", Clip(trace, 64)),
                ")")
          : absl::StrCat(kVendor, " answered HTTP ", http,
                         r.truncated ? " (answer truncated)" : "");
  out.error_desc = Redact(out.error_desc, {access_token});

  if (code == 190 || code == 0 || code == 10 || (code >= 200 && code <= 299) ||
      r.status == 401 || r.status == 403) {
    out.status = SendStatus::kUnusable;
    out.error_desc =
        absl::StrCat(code == 190 ? "the access token is expired or revoked: "
                                 : "the access token was refused: ",
                     out.error_desc);
    return out;
  }
  if (IsIn(code, {4, 80007, 130429, 131056, 2, 131016})) {
    out.status = SendStatus::kTransient;
    out.retry_after = r.retry_after;
    return out;
  }
  if (code == 131050) {
    out.status = SendStatus::kPermanent;
    out.suppress = "opt_out";
    return out;
  }
  if (IsIn(code, {131026, 131047, 100}) || (code >= 132000 && code <= 132999)) {
    out.status = SendStatus::kPermanent;
    return out;
  }
  if (r.status == 429 || r.status >= 500) {
    out.status = SendStatus::kTransient;
    out.retry_after = r.retry_after;
    return out;
  }
  out.status = SendStatus::kPermanent;
  return out;
}

std::string WhatsAppCloudSignature(const std::string& app_secret,
                                   const std::string& body) {
  return absl::StrCat("sha256=",
                      absl::BytesToHexString(HmacSha256(app_secret, body)));
}

WhatsAppCloudProvider::WhatsAppCloudProvider(WhatsAppCloudOptions options,
                                             HttpClient* http)
    : options_(std::move(options)),
      http_(http),
      lane_(http->NewLane(options_.max_in_flight)) {}

HttpRequest WhatsAppCloudProvider::Request(const OutgoingMessage& m) const {
  HttpRequest req;
  req.url = absl::StrCat(absl::StripSuffix(options_.base_url, "/"), "/",
                         options_.phone_number_id, "/messages");
  req.timeout = options_.timeout;
  req.headers = {"Content-Type: application/json",
                 absl::StrCat("Authorization: Bearer ", options_.access_token)};
  req.body = WhatsAppCloudBody(m);
  return req;
}

void WhatsAppCloudProvider::Send(std::vector<OutgoingMessage> batch,
                                 SendDone done) {
  SendEach(
      http_, lane_, std::move(batch),
      [this](const OutgoingMessage& m) { return Request(m); },
      [token = options_.access_token](const OutgoingMessage&,
                                      const HttpResponse& r) {
        return WhatsAppCloudResult(r, token);
      },
      std::move(done));
}

namespace {

// "+" and the digits of a WhatsApp number ("16505551234", "+1 650-555-1234").
std::string E164(const std::string& number) {
  std::string out = "+";
  for (char c : number) {
    if (absl::ascii_isdigit(static_cast<unsigned char>(c))) out.push_back(c);
  }
  return out.size() > 1 ? out : "";
}

absl::Status AddValue(const nlohmann::json& value, absl::Time now,
                      WebhookEvents* out) {
  if (!value.is_object()) {
    return absl::InvalidArgumentError("changes[].value: expected an object");
  }
  std::string display;
  if (auto md = value.find("metadata"); md != value.end() && md->is_object()) {
    display = E164(JsonString(*md, "display_phone_number"));
  }
  if (auto statuses = value.find("statuses"); statuses != value.end()) {
    if (!statuses->is_array()) {
      return absl::InvalidArgumentError("statuses: expected an array");
    }
    for (const nlohmann::json& s : *statuses) {
      const std::string id = JsonString(s, "id");
      const std::string status = JsonString(s, "status");
      if (id.empty() || status.empty()) {
        return absl::InvalidArgumentError("statuses[]: id and status required");
      }
      ReceiptUpdate u;
      u.provider_message_id = id;
      if (status == "delivered") {
        u.status = RecipientStatus::kDelivered;
      } else if (status == "read") {
        u.status = RecipientStatus::kRead;
      } else if (status == "failed") {
        u.status = RecipientStatus::kFailed;
      } else {
        continue;  // sent, deleted, warning, …: nothing to record
      }
      u.occurred_at = now;
      int64_t ts = 0;
      if (JsonInt(s, "timestamp", &ts))
        u.occurred_at = absl::FromUnixSeconds(ts);
      if (auto errors = s.find("errors");
          errors != s.end() && errors->is_array() && !errors->empty()) {
        const nlohmann::json& e = (*errors)[0];
        int64_t code = 0;
        if (JsonInt(e, "code", &code)) u.error_code = std::to_string(code);
        u.error_desc = JsonString(e, "title");
        if (u.error_desc.empty()) u.error_desc = JsonString(e, "message");
        u.error_desc = Clip(u.error_desc);
      }
      out->receipts.push_back(std::move(u));
    }
  }
  if (auto messages = value.find("messages"); messages != value.end()) {
    if (!messages->is_array()) {
      return absl::InvalidArgumentError("messages: expected an array");
    }
    for (const nlohmann::json& m : *messages) {
      if (!m.is_object()) {
        return absl::InvalidArgumentError("messages[]: expected objects");
      }
      InboundText t;
      t.channel = Channel::kWhatsapp;
      t.from = E164(JsonString(m, "from"));
      t.to = display;
      if (auto text = m.find("text"); text != m.end()) {
        t.text = JsonString(*text, "body");
      } else if (auto button = m.find("button"); button != m.end()) {
        t.text = JsonString(*button, "text");  // a quick-reply button
      } else {
        continue;  // media, reactions, …: no text to act on
      }
      if (t.from.empty()) {
        return absl::InvalidArgumentError("messages[].from: required");
      }
      out->inbound.push_back(std::move(t));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<WebhookEvents> WhatsAppCloudProvider::ParseWebhook(
    const WebhookRequest& request) {
  if (request.method == "GET") {
    auto get = [&](const char* name) -> std::string {
      auto it = request.query.find(name);
      return it == request.query.end() ? std::string() : it->second;
    };
    if (get("hub.mode") != "subscribe" || options_.verify_token.empty() ||
        !ConstantTimeEquals(get("hub.verify_token"), options_.verify_token)) {
      return absl::UnauthenticatedError(
          "hub.mode is not subscribe or hub.verify_token does not match");
    }
    WebhookEvents out;
    out.answer = get("hub.challenge");
    if (out.answer.empty()) {
      return absl::InvalidArgumentError("hub.challenge is missing");
    }
    return out;
  }
  if (request.method != "POST") {
    return absl::InvalidArgumentError("expected GET or POST");
  }
  const std::string sig =
      absl::AsciiStrToLower(HeaderOf(request, "x-hub-signature-256"));
  if (sig.empty()) {
    return absl::UnauthenticatedError("missing X-Hub-Signature-256");
  }
  if (options_.app_secret.empty() ||
      !ConstantTimeEquals(
          sig, WhatsAppCloudSignature(options_.app_secret, request.body))) {
    return absl::UnauthenticatedError("X-Hub-Signature-256 does not match");
  }
  nlohmann::json body;
  if (!ParseJsonObject(request.body, &body)) {
    return absl::InvalidArgumentError("the body is not a JSON object");
  }
  WebhookEvents out;
  auto entries = body.find("entry");
  if (entries == body.end() || !entries->is_array()) {
    return absl::InvalidArgumentError("entry: expected an array");
  }
  for (const nlohmann::json& entry : *entries) {
    if (!entry.is_object()) {
      return absl::InvalidArgumentError("entry[]: expected objects");
    }
    auto changes = entry.find("changes");
    if (changes == entry.end()) continue;
    if (!changes->is_array()) {
      return absl::InvalidArgumentError("entry[].changes: expected an array");
    }
    for (const nlohmann::json& change : *changes) {
      if (!change.is_object()) {
        return absl::InvalidArgumentError("changes[]: expected objects");
      }
      const std::string field = JsonString(change, "field");
      if (!field.empty() && field != "messages") continue;
      auto value = change.find("value");
      if (value == change.end()) continue;
      if (absl::Status s = AddValue(*value, request.now, &out); !s.ok()) {
        return s;
      }
    }
  }
  return out;
}

}  // namespace campaigns::dispatch
