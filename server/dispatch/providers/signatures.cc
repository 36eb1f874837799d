#include "server/dispatch/providers/signatures.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace campaigns::dispatch {
namespace {

std::string Hmac(const EVP_MD* md, absl::string_view key,
                 absl::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(md, key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out,
       &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

}  // namespace

std::string HmacSha256(absl::string_view key, absl::string_view data) {
  return Hmac(EVP_sha256(), key, data);
}

std::string HmacSha1(absl::string_view key, absl::string_view data) {
  return Hmac(EVP_sha1(), key, data);
}

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  return a.size() == b.size() &&
         CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

absl::StatusOr<std::string> StandardWebhookKey(absl::string_view secret) {
  absl::ConsumePrefix(&secret, "whsec_");
  std::string key;
  if (secret.empty() || !absl::Base64Unescape(secret, &key) || key.empty()) {
    return absl::InvalidArgumentError(
        "must be whsec_ followed by a base64 key");
  }
  return key;
}

std::string StandardWebhookSignature(absl::string_view key,
                                     absl::string_view id, int64_t timestamp,
                                     absl::string_view body) {
  const std::string signed_content =
      absl::StrCat(id, ".", timestamp, ".", body);
  return absl::StrCat("v1,",
                      absl::Base64Escape(HmacSha256(key, signed_content)));
}

bool VerifyStandardWebhook(absl::string_view key, absl::string_view id,
                           int64_t timestamp, absl::string_view body,
                           absl::string_view signature_header) {
  const std::string expected =
      StandardWebhookSignature(key, id, timestamp, body);
  bool match = false;
  for (absl::string_view sig :
       absl::StrSplit(signature_header, ' ', absl::SkipEmpty())) {
    if (absl::StartsWith(sig, "v1,") && ConstantTimeEquals(sig, expected)) {
      match = true;
    }
  }
  return match;
}

}  // namespace campaigns::dispatch
