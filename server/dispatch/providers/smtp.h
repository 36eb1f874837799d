// SmtpProvider: the `smtp` provider (PROVIDERS.md). Each email recipient
// is one SMTP transaction (MAIL FROM, RCPT TO, DATA) of one MIME message,
// sent through libcurl over SMTP, SMTP with STARTTLS, or SMTPS.
//
//   SmtpOptions o;
//   o.name = "relay";
//   o.url = "smtp://smtp.example.com:587";
//   o.username = "apikey";
//   o.password = "...";
//   o.from = "Acme <news@acme.com>";
//   auto p = SmtpProvider::Create(std::move(o));
//   (*p)->Send(batch, done);  // returns at once; done runs on its threads
//
// The provider owns up to `max_in_flight` connection threads, started as
// work needs them: at most that many transactions run at once, on at most
// that many connections, which are kept open and reused by later messages
// (no handshake per email). The rest wait in order. Each transaction must
// end within `timeout`.
//
// Answers: 250 after DATA accepted (the provider message id is the
// Message-ID we wrote, e.g. "<3f2a…@acme.com>"); 4xx, timeouts, refused or
// reset connections transient; 5xx permanent with the SMTP code as
// error_code and the server's text as error_desc, and 550/551/553 that say
// the mailbox does not exist (no enhanced code, or 5.1.x) also suppress the
// address as "bounce"; credentials refused (535, or no usable AUTH), a
// server without STARTTLS when it is required, or a certificate that does
// not verify make the provider unusable. An address that cannot be written
// in SMTP without SMTPUTF8 (non-ASCII, CR/LF, no domain) fails permanently
// as `invalid_address` without a transaction.
//
// Thread-safe.
#ifndef CAMPAIGND_SERVER_DISPATCH_PROVIDERS_SMTP_H_
#define CAMPAIGND_SERVER_DISPATCH_PROVIDERS_SMTP_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/dispatch/provider.h"

namespace campaigns::dispatch {

enum class StartTls { kRequired, kTry, kNever };

struct SmtpOptions {
  std::string name;  // the provider's name, for logs and error texts
  // smtp://host[:port][/ehlo-domain] or smtps://host[:port][/ehlo-domain];
  // without a path, EHLO names the domain of `from`.
  std::string url;
  std::string username;  // empty: no AUTH
  std::string password;
  // "news@acme.com" or "Acme <news@acme.com>" (the display name may be
  // UTF-8 and may be quoted).
  std::string from;
  StartTls starttls = StartTls::kRequired;
  // With "{recipient_id}" expanded: List-Unsubscribe and RFC 8058's
  // List-Unsubscribe-Post. Empty: neither header.
  std::string unsubscribe_url;
  // A PEM bundle of CAs to verify the server with instead of the system's
  // (a private CA); empty: the system's. Verification is always on.
  std::string ca_file;
  int max_in_flight = 32;
  absl::Duration timeout = absl::Seconds(10);
  // Close each connection after its message (benchmarks compare this with
  // reuse; production never sets it).
  bool forbid_reuse = false;
};

// `from` split into its display name (may be empty) and bare address.
// INVALID_ARGUMENT when no address can be read.
struct Mailbox {
  std::string display_name;
  std::string address;
};
absl::StatusOr<Mailbox> ParseMailbox(absl::string_view from);

// OK when `address` can be written in an SMTP envelope and a header
// without SMTPUTF8: printable ASCII, one '@' with a local part and a
// domain, no spaces, angle brackets or control characters. Otherwise
// INVALID_ARGUMENT saying why (without the address).
absl::Status CheckEmailAddress(absl::string_view address);

// `text` as an unstructured header value (RFC 5322 2.2.1): as is when it is
// printable ASCII without "=?"; otherwise RFC 2047 "B" encoded-words of
// UTF-8, each at most 75 characters, never splitting a character, joined by
// CRLF SP (folded lines). `used` is how many characters of the first line
// the header's name takes ("Subject: " = 9). Invalid UTF-8 is replaced by
// U+FFFD; CR and LF become spaces.
std::string EncodeHeaderText(absl::string_view text, size_t used = 0);

// The whole message (headers and body, CRLF line ends) for `m`, from
// `from`, with Message-ID `message_id` (with its angle brackets) and Date
// `date`. text/plain alone, or multipart/alternative with text/html when
// m.html is not empty; bodies base64 in lines of 76.
std::string BuildSmtpMessage(const OutgoingMessage& m, const Mailbox& from,
                             const std::string& message_id,
                             const std::string& unsubscribe_url,
                             absl::Time date);

// The result of an SMTP transaction: libcurl's CURLcode, the last SMTP
// reply code and its text. `secrets` are redacted from the text.
SendResult SmtpResult(int curl_code, int smtp_code,
                      absl::string_view reply_text,
                      absl::string_view curl_error,
                      const std::vector<absl::string_view>& secrets);

class SmtpProvider : public Provider {
 public:
  // INVALID_ARGUMENT for a bad `from`; INTERNAL
  // when libcurl cannot be set up.
  static absl::StatusOr<std::unique_ptr<SmtpProvider>> Create(
      SmtpOptions options);
  // Stops the threads: transactions on the wire are aborted and they and
  // the queued messages complete as transient (shutting_down).
  ~SmtpProvider() override;

  // Never blocks: the batch is queued and a connection thread woken. Messages
  // with an invalid address are answered without a transaction.
  void Send(std::vector<OutgoingMessage> batch, SendDone done) override;
  int MaxInFlight() const override;

 private:
  class Engine;
  explicit SmtpProvider(std::unique_ptr<Engine> engine);
  std::unique_ptr<Engine> engine_;
};

}  // namespace campaigns::dispatch

#endif  // CAMPAIGND_SERVER_DISPATCH_PROVIDERS_SMTP_H_
