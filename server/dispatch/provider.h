// Provider: what sends messages for a sender (an adapter per service; the
// simulator until real adapters exist).
//
//   provider->Send(batch, [](std::vector<SendResult> results) {...});
//
// Send is asynchronous: `done` gets one result per message, in order, once,
// from any thread (possibly inline, before Send returns). A provider that
// honours idempotency keys answers a repeated key with the first answer and
// sends nothing again; the engine gives a message the same key on every
// attempt, so a resend after a crash is harmless.
//
// Implementations are thread-safe.
#ifndef CAMPAIGND_SERVER_DISPATCH_PROVIDER_H_
#define CAMPAIGND_SERVER_DISPATCH_PROVIDER_H_

#include <functional>
#include <string>
#include <vector>

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
};

struct SendResult {
  SendStatus status = SendStatus::kAccepted;
  std::string provider_message_id;
  std::string error_code;
  std::string error_desc;
  absl::Duration retry_after = absl::ZeroDuration();
};

using SendDone = std::function<void(std::vector<SendResult>)>;

class Provider {
 public:
  virtual ~Provider() = default;
  virtual void Send(std::vector<OutgoingMessage> batch, SendDone done) = 0;
};

// Where providers hand the delivery receipts they learn of: the same path
// DeliveryService's receipts take.
using ReceiptSink = std::function<void(const std::string& account_id,
                                       std::vector<ReceiptUpdate> receipts)>;

}  // namespace campaigns::dispatch

#endif  // CAMPAIGND_SERVER_DISPATCH_PROVIDER_H_
