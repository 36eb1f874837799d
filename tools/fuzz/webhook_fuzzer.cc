// libFuzzer target for the inbound webhooks of the provider adapters
// (server/dispatch/providers/): Standard Webhooks (webhook.cc, with
// signatures.cc), Twilio's form-encoded status callbacks and messages
// (twilio.cc) and Meta's WhatsApp Cloud JSON and subscription checks
// (whatsapp_cloud.cc). No network: ParseWebhook gets a WebhookRequest as the
// operator's HTTP listener would build it.
//
// Input: byte 0 picks the vendor, byte 1 holds flags; the rest is split at
// 0xFF bytes into fields (the last takes the rest, 0xFF and all):
//   byte 1 bit 0: sign the request correctly (so the payload parser is
//                 reached); else the signature header is a field
//          bit 1: GET instead of POST
//          bit 2: the timestamp (Standard Webhooks) is a field, else now
//   webhook:  [id] [timestamp] [signature] body
//   twilio:   [query, form-encoded] [signature] body
//   whatsapp: [hub.mode] [hub.verify_token] [hub.challenge] [signature] body
// (a bracketed field only where the flags ask for it).
//
// Whatever ParseWebhook accepts must be stored and shown in protos: every
// string of its receipts and inbound texts must be valid UTF-8 and every
// receipt's status final. (The answer is not checked: it goes back to the
// vendor byte for byte, as Meta's hub.challenge must.)
//
//   tools/fuzz/build.sh build-fuzz
//   build-fuzz/tools/fuzz/webhook_fuzzer -max_total_time=600
//   tests/fuzz/webhook_corpus
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/dispatch/providers/adapter_util.h"
#include "server/dispatch/providers/http_client.h"
#include "server/dispatch/providers/signatures.h"
#include "server/dispatch/providers/twilio.h"
#include "server/dispatch/providers/webhook.h"
#include "server/dispatch/providers/whatsapp_cloud.h"
#include "server/domain/utf8.h"

namespace campaigns::dispatch {
namespace {

constexpr char kToken[] = "twilio-auth-token";
constexpr char kPublicUrl[] = "https://campaignd.example.com";
constexpr char kAppSecret[] = "meta-app-secret";
constexpr char kVerifyToken[] = "meta-verify-token";
const absl::Time kNow = absl::FromUnixSeconds(1800000000);

// The adapters, made once: a provider holds an HTTP client lane (and the
// client a thread), none of which ParseWebhook uses.
struct Adapters {
  Adapters() {
    auto client = HttpClient::Create();
    if (!client.ok()) std::abort();
    http = *std::move(client);
    WebhookOptions w;
    w.name = "hooks";
    w.url = "http://127.0.0.1:1/send";
    w.key = "0123456789abcdef0123456789abcdef";
    webhook = std::make_unique<WebhookProvider>(w, http.get());
    TwilioOptions t;
    t.name = "twilio";
    t.base_url = "http://127.0.0.1:1";
    t.account_sid = "AC0123456789abcdef0123456789abcdef";
    t.auth_token = kToken;
    t.public_url = kPublicUrl;
    twilio = std::make_unique<TwilioProvider>(t, http.get());
    WhatsAppCloudOptions m;
    m.name = "meta";
    m.base_url = "http://127.0.0.1:1";
    m.phone_number_id = "106540352242922";
    m.access_token = "meta-access-token";
    m.app_secret = kAppSecret;
    m.verify_token = kVerifyToken;
    whatsapp = std::make_unique<WhatsAppCloudProvider>(m, http.get());
  }
  std::unique_ptr<HttpClient> http;
  std::unique_ptr<WebhookProvider> webhook;
  std::unique_ptr<TwilioProvider> twilio;
  std::unique_ptr<WhatsAppCloudProvider> whatsapp;
  std::string webhook_key = "0123456789abcdef0123456789abcdef";
};

Adapters& TheAdapters() {
  static Adapters* const adapters = new Adapters();
  return *adapters;
}

// Splits off the next field at 0xFF; the last call takes the rest.
class Fields {
 public:
  explicit Fields(absl::string_view rest) : rest_(rest) {}
  std::string Next() {
    const size_t at = rest_.find('\xff');
    std::string field(rest_.substr(0, at));
    rest_ = at == absl::string_view::npos ? absl::string_view()
                                          : rest_.substr(at + 1);
    return field;
  }
  std::string Rest() { return std::string(rest_); }

 private:
  absl::string_view rest_;
};

[[noreturn]] void Fail(const std::string& why) {
  std::fprintf(stderr, "webhook_fuzzer: %s\n", why.c_str());
  std::abort();
}

void CheckUtf8(absl::string_view what, absl::string_view text) {
  if (!IsValidUtf8(text)) Fail(absl::StrCat(what, " is not valid UTF-8"));
}

void CheckEvents(const WebhookEvents& events) {
  for (const ReceiptUpdate& r : events.receipts) {
    CheckUtf8("provider_message_id", r.provider_message_id);
    CheckUtf8("recipient_id", r.recipient_id);
    CheckUtf8("error_code", r.error_code);
    CheckUtf8("error_desc", r.error_desc);
    if (r.provider_message_id.empty() && r.recipient_id.empty()) {
      Fail("a receipt names no message");
    }
    if (r.status != RecipientStatus::kDelivered &&
        r.status != RecipientStatus::kRead &&
        r.status != RecipientStatus::kFailed) {
      Fail("a receipt's status is not final");
    }
  }
  for (const InboundText& t : events.inbound) {
    CheckUtf8("inbound from", t.from);
    CheckUtf8("inbound to", t.to);
    CheckUtf8("inbound text", t.text);
  }
}

}  // namespace
}  // namespace campaigns::dispatch

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace campaigns::dispatch;  // NOLINT: one function
  if (size < 2) return 0;
  Adapters& adapters = TheAdapters();
  const int vendor = data[0] % 3;
  const bool sign = (data[1] & 1) != 0;
  const bool get = (data[1] & 2) != 0;
  const bool own_timestamp = (data[1] & 4) != 0;
  Fields fields(
      absl::string_view(reinterpret_cast<const char*>(data) + 2, size - 2));
  WebhookRequest r;
  r.method = get ? "GET" : "POST";
  r.now = kNow;
  Provider* provider = nullptr;
  switch (vendor) {
    case 0: {
      r.path = "/webhooks/hooks";
      const std::string id = fields.Next();
      const std::string ts = own_timestamp
                                 ? fields.Next()
                                 : absl::StrCat(absl::ToUnixSeconds(kNow));
      std::string signature = sign ? "" : fields.Next();
      r.body = fields.Rest();
      int64_t t = 0;
      if (sign && absl::SimpleAtoi(ts, &t)) {
        signature =
            StandardWebhookSignature(adapters.webhook_key, id, t, r.body);
      }
      r.headers["webhook-id"] = id;
      r.headers["webhook-timestamp"] = ts;
      r.headers["webhook-signature"] = signature;
      provider = adapters.webhook.get();
      break;
    }
    case 1: {
      r.path = "/webhooks/twilio";
      auto query = FormDecode(fields.Next());
      if (query.ok()) {
        for (auto& [name, value] : *query) r.query.emplace(name, value);
      }
      std::string signature = sign ? "" : fields.Next();
      r.body = fields.Rest();
      r.headers["content-type"] = "application/x-www-form-urlencoded";
      if (sign) {
        std::string url = absl::StrCat(kPublicUrl, r.path);
        if (!r.query.empty()) {
          std::vector<std::pair<std::string, std::string>> q(r.query.begin(),
                                                             r.query.end());
          absl::StrAppend(&url, "?", FormEncode(q));
        }
        auto params = FormDecode(r.body);
        signature = TwilioSignature(
            kToken, url,
            params.ok() ? *params
                        : std::vector<std::pair<std::string, std::string>>());
      }
      r.headers["x-twilio-signature"] = signature;
      provider = adapters.twilio.get();
      break;
    }
    default: {
      r.path = "/webhooks/meta";
      if (get) {
        r.query["hub.mode"] = fields.Next();
        r.query["hub.verify_token"] = sign ? kVerifyToken : fields.Next();
        r.query["hub.challenge"] = fields.Next();
      }
      std::string signature = sign ? "" : fields.Next();
      r.body = fields.Rest();
      if (sign) signature = WhatsAppCloudSignature(kAppSecret, r.body);
      r.headers["x-hub-signature-256"] = signature;
      provider = adapters.whatsapp.get();
      break;
    }
  }
  absl::StatusOr<WebhookEvents> events = provider->ParseWebhook(r);
  if (events.ok()) {
    CheckEvents(*events);
  } else {
    CheckUtf8("the error message", events.status().message());
  }
  return 0;
}
