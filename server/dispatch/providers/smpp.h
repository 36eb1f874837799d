// The `smpp` provider (PROVIDERS.md): an SMPP 3.4 transceiver session to an
// SMSC, PDUs packed and unpacked with Debian's libsmpp34.
//
//   SmppOptions o;
//   o.name = "aggregator"; o.host = "smpp.example.com"; o.port = 2775;
//   o.system_id = "acme"; o.password = "…"; o.window = 10;
//   auto p = SmppProvider::Create(std::move(o), timer, events);
//   (*p)->Send(batch, done);   // one submit_sm per SMS part, in the window
//
// One TCP connection per provider, driven by an I/O thread of its own
// (poll on the socket and an eventfd that Send and timer callbacks wake it
// with). Every timed thing — the first connect, reconnect backoff, the
// enquire_link keep-alive, per-PDU timeouts — is a callback on the engine's
// Timer that posts work to that thread; nothing sleeps.
//
// Outcomes (PROVIDERS.md's table):
//   submit_sm_resp 0                 accepted, id = the first part's
//                                    message_id
//   ESME_RTHROTTLED, ESME_RMSGQFUL   transient, retry_after 1s
//   any other status                 permanent, error_code "0x0000000B"
//   no answer within `timeout`,      transient; nothing acknowledged is
//   connection lost                  ever submitted again
//   bind refused                     kUnusable "bind refused: 0x0000000D"
//                                    until a bind succeeds (retried with
//                                    backoff 0.5s doubling to 30s)
//   text not encodable as SMS        permanent, error_code "encoding"
//
// Long texts go as concatenated parts (UDH IEI 0x00, an 8-bit reference,
// esm_class 0x40); a message is accepted only when every part was. Its
// provider message id is the first part's; the ids of its other parts are
// kept in memory (at most kMaxPartIds, oldest forgotten first, and lost on
// restart) so that their receipts count for the message too. A part that
// fails after earlier ones were accepted fails the message with that
// outcome; a retry then sends every part again.
//
// Incoming deliver_sm: a delivery receipt (esm_class & 0x04) becomes a
// ReceiptUpdate, anything else an InboundText; both go to the events sink
// and deliver_sm_resp is answered only once the sink says they were
// committed (ESME_RSYSERR when not, so that the SMSC delivers them again).
// A receipt that overtakes its message's result (SMSCs send it right after
// submit_sm_resp, while the rest of the batch is still out) is held until
// the batch's `done` ran, so that the engine knows the id it names.
// A receipt that cannot be read is logged, counted and answered ESME_ROK
// (the SMSC sending it again would not make it readable); a deliver_sm
// that cannot be unpacked, ESME_RX_P_APPN. A PDU whose command_length is
// impossible ends the connection (the stream cannot be resynchronised).
#ifndef CAMPAIGND_SERVER_DISPATCH_PROVIDERS_SMPP_H_
#define CAMPAIGND_SERVER_DISPATCH_PROVIDERS_SMPP_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/dispatch/provider.h"
#include "server/dispatch/timer.h"

namespace campaigns::dispatch {

// Where an adapter that learns of receipts and inbound texts on its own
// connection (not through /webhooks) hands them: the same path as a
// verified webhook's (CampaignServer::DeliverWebhook). `done` runs once,
// from any thread, when they are committed (or failed to be).
using ProviderEventSink =
    std::function<void(const std::string& provider, WebhookEvents events,
                       std::function<void(absl::Status)> done)>;

struct SmppOptions {
  std::string name;  // the provider's name (logs, the events sink)
  std::string host;
  int port = 2775;
  std::string system_id;
  std::string password;  // secret: never logged
  std::string system_type;
  int window = 10;  // outstanding submit_sm at most
  absl::Duration enquire_link = absl::Seconds(30);
  absl::Duration timeout = absl::Seconds(10);  // per PDU
  absl::Duration reconnect_min = absl::Milliseconds(500);
  absl::Duration reconnect_max = absl::Seconds(30);
  absl::Duration throttled_retry_after = absl::Seconds(1);
};

// What the session has seen since it started (for tests and logs).
struct SmppStats {
  int64_t connects = 0;  // TCP connections made
  int64_t binds_ok = 0;
  int64_t binds_refused = 0;
  int64_t drops = 0;      // connections lost or dropped by us
  int64_t submits = 0;    // submit_sm written
  int64_t accepted = 0;   // submit_sm_resp 0
  int64_t transient = 0;  // parts answered or ended transiently
  int64_t permanent = 0;  // parts refused for good
  int64_t timeouts = 0;   // PDUs unanswered within `timeout`
  int64_t receipts = 0;   // readable delivery receipts
  int64_t inbound = 0;    // mobile-originated texts
  int64_t malformed_receipts = 0;
  int64_t bad_pdus = 0;           // wrong length, cannot be unpacked
  int64_t unknown_responses = 0;  // a response to no request of ours
  int64_t enquire_links_answered = 0;
  int64_t max_outstanding = 0;  // submit_sm outstanding at once, at most
};

// One SMS part's short_message and the coding they share.
struct SmsParts {
  uint8_t data_coding = 0;  // 0: GSM 7-bit default alphabet, 8: UCS-2
  // Each part's user data (without UDH): GSM-7 one septet a byte, with
  // 0x1B escapes; UCS-2 as UTF-16BE. One part when the text fits one SMS.
  std::vector<std::string> parts;
};

// `text` (UTF-8) split as sms_segments counts it (GSM-7 160/153, UCS-2
// 70/67, never splitting an escape or a surrogate pair). INVALID_ARGUMENT
// when it is not valid UTF-8 or takes more than 255 parts.
absl::StatusOr<SmsParts> EncodeSms(absl::string_view text);

// The UDH of part `n` (1-based) of `m` with 8-bit reference `ref`.
std::string ConcatUdh(uint8_t ref, int n, int m);

// The fields of a delivery receipt's text ("id:… sub:… dlvrd:… submit
// date:… done date:… stat:… err:… text:…"), keys case-insensitive.
struct SmppReceiptText {
  std::string id;
  std::string stat;  // upper case
  std::string err;
};
// INVALID_ARGUMENT when `id:` or `stat:` is missing.
absl::StatusOr<SmppReceiptText> ParseReceiptText(absl::string_view text);

// A receipt's stat as a recipient status: delivered, failed, or nullopt
// for a state that is not final (ACCEPTD, ENROUTE, UNKNOWN);
// INVALID_ARGUMENT for a stat SMPP does not define.
absl::StatusOr<std::optional<RecipientStatus>> ReceiptStatusOf(
    absl::string_view stat);

// "0x0000000B".
std::string SmppStatusCode(uint32_t status);

// Thread-safe: Send may be called from any thread; results and events are
// handed over from the provider's I/O thread. The destructor unbinds
// (waiting at most a second for unbind_resp), answers whatever is still
// pending as transient and joins the thread; `timer` must outlive it (its
// callbacks that fire later do nothing).
class SmppProvider final : public Provider {
 public:
  // Ids of other parts remembered for their receipts, at most.
  static constexpr size_t kMaxPartIds = 200000;

  // Starts the session (the first connect is a `timer` callback, due now).
  // INVALID_ARGUMENT for options that cannot work (empty host, window < 1).
  static absl::StatusOr<std::unique_ptr<SmppProvider>> Create(
      SmppOptions options, Timer* timer, ProviderEventSink events);
  ~SmppProvider() override;

  void Send(std::vector<OutgoingMessage> batch, SendDone done) override;
  int MaxInFlight() const override { return window_; }

  SmppStats Stats() const;

  class Session;

 private:
  SmppProvider(std::shared_ptr<Session> session, int window);

  const std::shared_ptr<Session> session_;
  const int window_;
  std::thread thread_;
};

}  // namespace campaigns::dispatch

#endif  // CAMPAIGND_SERVER_DISPATCH_PROVIDERS_SMPP_H_
