// Provider: what sends messages for a sender (an adapter per service; the
// simulator until real adapters exist).
//
//   provider->Send(batch, [](std::vector<SendResult> results) {...});
//
// Send is asynchronous and never blocks its caller: no network or disk I/O,
// no DNS lookup, no wait on a contended lock inside Send (the engine calls
// it from timer threads that everything else shares). `done` gets one
// result per message, in order, once, from any thread (possibly inline,
// before Send returns) and must not block either. A provider that
// honours idempotency keys answers a repeated key with the first answer and
// sends nothing again; the engine gives a message the same key on every
// attempt, so a resend after a crash is harmless.
//
// Implementations are thread-safe.
#ifndef CAMPAIGND_SERVER_DISPATCH_PROVIDER_H_
#define CAMPAIGND_SERVER_DISPATCH_PROVIDER_H_

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/domain/dispatch_store.h"
#include "server/domain/model.h"
#include "server/domain/types.h"

namespace campaigns::dispatch {

struct OutgoingMessage {
  std::string idempotency_key;  // campaign_id:recipient_id[:retry]
  std::string account_id;
  std::string campaign_id;
  std::string recipient_id;
  Channel channel = Channel::kUnspecified;
  std::string sender_id;  // the visible sender id
  std::string address;
  std::string text;  // rendered
  // Email: the rendered subject and HTML body (empty when none).
  std::string subject;
  std::string html;
  // The recipient's variables (the generic webhook passes them on).
  std::map<std::string, std::string> variables;
  // A template campaign's template, and its components rendered for this
  // recipient (WhatsApp template messages carry them).
  std::string template_name;
  std::string template_language;
  std::vector<TemplateComponent> components;
};

enum class SendStatus {
  kAccepted,   // taken for delivery: provider_message_id set
  kTransient,  // try again later (after retry_after, if set)
  kPermanent,  // will never be sent: error_code / error_desc say why
  // The provider refused its own credentials: nothing was sent, the
  // message stays queued and the campaign pauses (error_desc says why).
  kUnusable,
};

struct SendResult {
  SendStatus status = SendStatus::kAccepted;
  std::string provider_message_id;
  std::string error_code;
  std::string error_desc;
  absl::Duration retry_after = absl::ZeroDuration();
  // A permanent failure that also says the address must not be written to
  // again: the suppression reason to record for it ("opt_out" when the
  // recipient unsubscribed or blocked us, "bounce" when the address does
  // not exist), "" otherwise. The engine adds the suppression.
  std::string suppress;
  // The provider that answered for the message when it is not the one the
  // engine called (a fallback took it over), else "". The recipient row
  // records it, and its receipts are matched there.
  std::string provider;
  // Accepted before: the provider already had this idempotency key and
  // answered with the first message's id (counted apart in metrics).
  bool duplicate = false;
};

using SendDone = std::function<void(std::vector<SendResult>)>;

// A request a vendor made to /webhooks/{provider}, as received.
struct WebhookRequest {
  std::string method;  // POST; GET for subscription checks
  std::string path;    // without the query
  std::map<std::string, std::string> query;    // decoded
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;                            // raw bytes
  absl::Time now;
};

// An inbound message a webhook carried (STOP words become suppressions).
struct InboundText {
  Channel channel = Channel::kUnspecified;
  std::string from;  // the recipient who wrote
  std::string to;    // our sender id ("" when the vendor does not say)
  std::string text;
};

// What a verified webhook carries.
struct WebhookEvents {
  std::vector<ReceiptUpdate> receipts;
  std::vector<InboundText> inbound;
  // A body the vendor expects in the 200 answer (e.g. Meta's
  // hub.challenge); empty = a plain "ok".
  std::string answer;
};

class Provider {
 public:
  virtual ~Provider() = default;
  virtual void Send(std::vector<OutgoingMessage> batch, SendDone done) = 0;

  // Whether a repeated idempotency key is answered with the first answer
  // and sends nothing again (the simulator, the generic webhook). When not,
  // the engine marks messages durably before the call so that, after a
  // crash, one whose outcome was not recorded is never sent again silently.
  virtual bool HonoursIdempotencyKeys() const { return false; }
  // Whether such in-doubt messages are sent again anyway (the provider's
  // `resend_unknown = true`); otherwise they fail with outcome_unknown.
  virtual bool ResendsUnknown() const { return false; }
  // Whether the vendor reports delivery (receipts); when not (Telegram,
  // Slack), `sent` is final and a campaign completes once all is sent.
  virtual bool SendsReceipts() const { return true; }
  // How many messages the provider has on the wire at once (its
  // `max_in_flight`); 0 = no bound of its own. When messages are marked
  // before the call, the engine hands it little more than this, so that a
  // crash leaves few marked messages that never reached the vendor.
  virtual int MaxInFlight() const { return 0; }

  // Verifies a webhook this provider's vendor sent and returns what it
  // carries. UNAUTHENTICATED when its signature is missing, wrong or too
  // old (nothing may change), INVALID_ARGUMENT when the body is malformed,
  // UNIMPLEMENTED when the provider takes no webhooks. Never blocks.
  virtual absl::StatusOr<WebhookEvents> ParseWebhook(
      const WebhookRequest& request);
};

// Where providers hand the delivery receipts they learn of: the same path
// DeliveryService's receipts take. `committed` (may be null) runs once they
// are stored (or failed to be), from any thread.
using ReceiptSink = std::function<void(
    const std::string& account_id, std::vector<ReceiptUpdate> receipts,
    std::function<void(absl::Status)> committed)>;

}  // namespace campaigns::dispatch

#endif  // CAMPAIGND_SERVER_DISPATCH_PROVIDER_H_
