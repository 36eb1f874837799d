// Signatures of the webhooks campaignd sends and receives: HMAC over the
// raw bytes, in the encodings each scheme prescribes.
//
//   std::string sig = StandardWebhookSignature(key, "msg_1", 1614265330, body);
//   // "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
//
// Pure functions; thread-safe.
#ifndef CAMPAIGND_SERVER_DISPATCH_PROVIDERS_SIGNATURES_H_
#define CAMPAIGND_SERVER_DISPATCH_PROVIDERS_SIGNATURES_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace campaigns::dispatch {

// Raw (binary) HMAC digests.
std::string HmacSha256(absl::string_view key, absl::string_view data);
std::string HmacSha1(absl::string_view key, absl::string_view data);

// Whether `a` and `b` are equal, in time that depends only on their sizes.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

// The key of a Standard Webhooks secret `whsec_<base64>` (the prefix is
// optional); INVALID_ARGUMENT when the rest is not base64 or is empty.
absl::StatusOr<std::string> StandardWebhookKey(absl::string_view secret);

// `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`.
std::string StandardWebhookSignature(absl::string_view key,
                                     absl::string_view id, int64_t timestamp,
                                     absl::string_view body);

// Whether the `webhook-signature` header (space-separated `v1,<sig>`
// entries; any may match) signs `body` under `key`.
bool VerifyStandardWebhook(absl::string_view key, absl::string_view id,
                           int64_t timestamp, absl::string_view body,
                           absl::string_view signature_header);

}  // namespace campaigns::dispatch

#endif  // CAMPAIGND_SERVER_DISPATCH_PROVIDERS_SIGNATURES_H_
