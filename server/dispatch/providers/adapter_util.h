// What every vendor adapter (whatsapp_cloud, twilio, telegram, slack) shares:
// one HTTP request per message with the answers gathered back into the
// batch's order, the mapping of "no answer at all", form encoding, and
// keeping secrets out of error texts.
//
//   SendEach(http, lane, std::move(batch),
//            [&](const OutgoingMessage& m) { return BuildRequest(m); },
//            [](const OutgoingMessage& m, const HttpResponse& r) {
//              return MapAnswer(m, r);
//            },
//            std::move(done));
//
// Pure functions and a stateless fan-in; thread-safe.
#ifndef CAMPAIGND_SERVER_DISPATCH_PROVIDERS_ADAPTER_UTIL_H_
#define CAMPAIGND_SERVER_DISPATCH_PROVIDERS_ADAPTER_UTIL_H_

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"
#include "server/dispatch/provider.h"
#include "server/dispatch/providers/http_client.h"

namespace campaigns::dispatch {

// Sends one request per message of `batch` through `lane` and calls `done`
// once with one result per message, in the batch's order. `build` and `map`
// run on the caller's and the HTTP client's thread respectively and must
// not block. Never blocks.
void SendEach(
    HttpClient* http, const std::shared_ptr<HttpClient::Lane>& lane,
    std::vector<OutgoingMessage> batch,
    const std::function<HttpRequest(const OutgoingMessage&)>& build,
    std::function<SendResult(const OutgoingMessage&, const HttpResponse&)> map,
    SendDone done);

// When `r` carries no HTTP answer (timeout, refused or reset connection,
// TLS failure), sets `out` to the transient result for it and returns true.
bool NoAnswer(const HttpResponse& r, SendResult* out);

// The result for a 2xx answer whose message id cannot be read: the vendor
// probably took the message, so it is not retried (these vendors do not
// de-duplicate); it fails as `outcome_unknown`, as after a crash.
SendResult OutcomeUnknown(absl::string_view vendor, absl::string_view why);

// `text` with every non-empty secret replaced by "<redacted>".
std::string Redact(std::string text,
                   const std::vector<absl::string_view>& secrets);

// application/x-www-form-urlencoded (WHATWG URL "urlencoded serializer":
// space as '+', everything but ALPHA / DIGIT / "*-._" percent-encoded).
std::string FormEncode(
    const std::vector<std::pair<std::string, std::string>>& fields);

// Parses an application/x-www-form-urlencoded body ('+' is a space, %XX a
// byte) into its name/value pairs, in order. INVALID_ARGUMENT on a bad
// percent escape.
absl::StatusOr<std::vector<std::pair<std::string, std::string>>> FormDecode(
    absl::string_view body);

// A request header's value ("" when absent); `name` in lower case.
const std::string& HeaderOf(const WebhookRequest& r, const std::string& name);

// `body` parsed as a JSON object; false when it is not one (never throws).
bool ParseJsonObject(absl::string_view body, nlohmann::json* out);

// Member `key` of `obj` when it is a string, else "".
std::string JsonString(const nlohmann::json& obj, const char* key);

// Member `key` of `obj` as an integer (a JSON integer or a string of
// digits); false when absent or neither.
bool JsonInt(const nlohmann::json& obj, const char* key, int64_t* out);

// At most `max` bytes of a vendor's free text, for error descriptions.
std::string Clip(absl::string_view text, size_t max = 300);

}  // namespace campaigns::dispatch

#endif  // CAMPAIGND_SERVER_DISPATCH_PROVIDERS_ADAPTER_UTIL_H_
