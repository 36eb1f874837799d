// The provider adapters of this build, by type. Adding an adapter is one
// entry here, e.g.
//   {"webhook", [](const config::ProviderConfig& c, const ProviderEnv& env)
//                   -> absl::StatusOr<std::unique_ptr<Provider>> {
//      return WebhookProvider::Create(c, env);
//    }},
// Types without an entry are listed by the registry as unusable.
#include "absl/strings/str_cat.h"
#include "server/dispatch/providers/registry.h"
#include "server/dispatch/providers/signatures.h"
#include "server/dispatch/providers/slack.h"
#include "server/dispatch/providers/smpp.h"
#include "server/dispatch/providers/smtp.h"
#include "server/dispatch/providers/telegram.h"
#include "server/dispatch/providers/twilio.h"
#include "server/dispatch/providers/webhook.h"
#include "server/dispatch/providers/whatsapp_cloud.h"

namespace campaigns::dispatch {
namespace {

absl::Status NeedsHttp(const ProviderEnv& env) {
  if (env.http == nullptr) {
    return absl::FailedPreconditionError("no HTTP client to send through");
  }
  return absl::OkStatus();
}

// An adapter with what the config adds to it: `resend_unknown`, and
// whether its channel has delivery receipts at all.
class Configured final : public Provider {
 public:
  Configured(std::unique_ptr<Provider> inner, bool resend_unknown,
             bool receipts, int max_in_flight)
      : inner_(std::move(inner)),
        resend_unknown_(resend_unknown),
        receipts_(receipts),
        max_in_flight_(max_in_flight) {}
  void Send(std::vector<OutgoingMessage> batch, SendDone done) override {
    inner_->Send(std::move(batch), std::move(done));
  }
  bool HonoursIdempotencyKeys() const override {
    return inner_->HonoursIdempotencyKeys();
  }
  bool ResendsUnknown() const override { return resend_unknown_; }
  bool SendsReceipts() const override { return receipts_; }
  int MaxInFlight() const override { return max_in_flight_; }
  absl::StatusOr<WebhookEvents> ParseWebhook(
      const WebhookRequest& request) override {
    return inner_->ParseWebhook(request);
  }

 private:
  const std::unique_ptr<Provider> inner_;
  const bool resend_unknown_;
  const bool receipts_;
  const int max_in_flight_;
};

// `max_in_flight` < 0: the config's.
std::unique_ptr<Provider> Wrap(std::unique_ptr<Provider> p,
                               const config::ProviderConfig& c,
                               bool receipts = true, int max_in_flight = -1) {
  return std::make_unique<Configured>(
      std::move(p), c.resend_unknown, receipts,
      max_in_flight < 0 ? c.max_in_flight : max_in_flight);
}

absl::StatusOr<std::unique_ptr<Provider>> MakeWhatsAppCloud(
    const config::ProviderConfig& c, const ProviderEnv& env) {
  if (absl::Status s = NeedsHttp(env); !s.ok()) return s;
  WhatsAppCloudOptions o;
  o.name = c.name;
  o.base_url = c.Get("base_url");
  o.phone_number_id = c.Get("phone_number_id");
  o.access_token = c.GetSecret("access_token").Reveal();
  o.app_secret = c.GetSecret("app_secret").Reveal();
  o.verify_token = c.GetSecret("verify_token").Reveal();
  o.max_in_flight = c.max_in_flight;
  o.timeout = c.timeout;
  return Wrap(std::make_unique<WhatsAppCloudProvider>(std::move(o), env.http),
              c);
}

absl::StatusOr<std::unique_ptr<Provider>> MakeTwilio(
    const config::ProviderConfig& c, const ProviderEnv& env) {
  if (absl::Status s = NeedsHttp(env); !s.ok()) return s;
  TwilioOptions o;
  o.name = c.name;
  o.base_url = c.Get("base_url");
  o.account_sid = c.Get("account_sid");
  o.auth_token = c.GetSecret("auth_token").Reveal();
  o.messaging_service_sid = c.Get("messaging_service_sid");
  o.public_url = c.Get("public_url");
  o.max_in_flight = c.max_in_flight;
  o.timeout = c.timeout;
  return Wrap(std::make_unique<TwilioProvider>(std::move(o), env.http), c);
}

absl::StatusOr<std::unique_ptr<Provider>> MakeTelegram(
    const config::ProviderConfig& c, const ProviderEnv& env) {
  if (absl::Status s = NeedsHttp(env); !s.ok()) return s;
  TelegramOptions o;
  o.name = c.name;
  o.base_url = c.Get("base_url");
  o.bot_token = c.GetSecret("bot_token").Reveal();
  o.webhook_secret = c.GetSecret("webhook_secret").Reveal();
  o.max_in_flight = c.max_in_flight;
  o.timeout = c.timeout;
  // Telegram has no delivery receipts: sent is final.
  return Wrap(std::make_unique<TelegramProvider>(std::move(o), env.http), c,
              /*receipts=*/false);
}

absl::StatusOr<std::unique_ptr<Provider>> MakeSlack(
    const config::ProviderConfig& c, const ProviderEnv& env) {
  if (absl::Status s = NeedsHttp(env); !s.ok()) return s;
  SlackOptions o;
  o.name = c.name;
  o.base_url = c.Get("base_url");
  o.bot_token = c.GetSecret("bot_token").Reveal();
  o.max_in_flight = c.max_in_flight;
  o.timeout = c.timeout;
  // Slack has no delivery receipts: sent is final.
  return Wrap(std::make_unique<SlackProvider>(std::move(o), env.http), c,
              /*receipts=*/false);
}

absl::StatusOr<std::unique_ptr<Provider>> MakeWebhook(
    const config::ProviderConfig& c, const ProviderEnv& env) {
  if (absl::Status s = NeedsHttp(env); !s.ok()) return s;
  absl::StatusOr<std::string> key =
      StandardWebhookKey(c.GetSecret("secret").Reveal());
  if (!key.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("secret (", c.GetSecret("secret").source(),
                     "): ", key.status().message()));
  }
  WebhookOptions o;
  o.name = c.name;
  o.url = c.Get("url");
  o.key = *std::move(key);
  o.max_in_flight = c.max_in_flight;
  o.timeout = c.timeout;
  return Wrap(std::make_unique<WebhookProvider>(std::move(o), env.http), c);
}

absl::StatusOr<std::unique_ptr<Provider>> MakeSmpp(
    const config::ProviderConfig& c, const ProviderEnv& env) {
  if (env.timer == nullptr) {
    return absl::FailedPreconditionError("no timer for the SMPP session");
  }
  SmppOptions o;
  o.name = c.name;
  o.host = c.Get("host");
  o.port = c.GetInt("port") > 0 ? static_cast<int>(c.GetInt("port")) : 2775;
  o.system_id = c.Get("system_id");
  o.password = c.GetSecret("password").Reveal();
  o.system_type = c.Get("system_type");
  if (c.GetInt("window") > 0) o.window = static_cast<int>(c.GetInt("window"));
  if (c.GetDuration("enquire_link") > absl::ZeroDuration()) {
    o.enquire_link = c.GetDuration("enquire_link");
  }
  o.timeout = c.timeout;
  // SMPP 3.4's C-Octet limits (NUL excluded): refused at start rather than
  // at every bind.
  if (o.system_id.size() > 15) {
    return absl::InvalidArgumentError("system_id: at most 15 characters");
  }
  if (o.password.size() > 8) {
    return absl::InvalidArgumentError(
        absl::StrCat("password (", c.GetSecret("password").source(),
                     "): at most 8 characters in SMPP 3.4"));
  }
  if (o.system_type.size() > 12) {
    return absl::InvalidArgumentError("system_type: at most 12 characters");
  }
  const int window = o.window;
  absl::StatusOr<std::unique_ptr<SmppProvider>> p =
      SmppProvider::Create(std::move(o), env.timer, env.events);
  if (!p.ok()) return p.status();
  // The SMSC sends delivery receipts (registered_delivery=1). On the wire
  // at once: `window` submit_sm (the engine marks little more than that).
  return Wrap(*std::move(p), c, /*receipts=*/true, window);
}

absl::StatusOr<std::unique_ptr<Provider>> MakeSmtp(
    const config::ProviderConfig& c, const ProviderEnv& /*env*/) {
  SmtpOptions o;
  o.name = c.name;
  o.url = c.Get("url");
  o.username = c.Get("username");
  o.password = c.GetSecret("password").Reveal();
  o.from = c.Get("from");
  const std::string starttls = c.Get("starttls");
  o.starttls = starttls == "never" ? StartTls::kNever
               : starttls == "try" ? StartTls::kTry
                                   : StartTls::kRequired;
  o.unsubscribe_url = c.Get("unsubscribe_url");
  o.ca_file = c.Get("ca_file");
  o.max_in_flight = c.max_in_flight;
  o.timeout = c.timeout;
  absl::StatusOr<std::unique_ptr<SmtpProvider>> p =
      SmtpProvider::Create(std::move(o));
  if (!p.ok()) return p.status();
  // SMTP gives no delivery receipts: sent is final.
  return Wrap(*std::move(p), c, /*receipts=*/false);
}

}  // namespace

ProviderFactories BuiltInProviderFactories() {
  return {
      {"whatsapp_cloud", &MakeWhatsAppCloud},
      {"twilio", &MakeTwilio},
      {"telegram", &MakeTelegram},
      {"slack", &MakeSlack},
      {"webhook", &MakeWebhook},
      {"smpp", &MakeSmpp},
      {"smtp", &MakeSmtp},
  };
}

}  // namespace campaigns::dispatch
