// Webhook signatures: HMAC over the raw bytes in each scheme's encoding.
#include "server/dispatch/providers/signatures.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace campaigns::dispatch {
namespace {

// A keyed HMAC context per digest and thread, made once: OpenSSL 3's
// one-shot HMAC() fetches the algorithm and allocates a context on every
// call, a large share of signing a small webhook body.
class HmacContext {
 public:
  explicit HmacContext(const char* digest) {
    static EVP_MAC* const mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    ctx_ = mac == nullptr ? nullptr : EVP_MAC_CTX_new(mac);
    if (ctx_ == nullptr) return;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(
                               "digest", const_cast<char*>(digest), 0),
                           OSSL_PARAM_construct_end()};
    if (EVP_MAC_CTX_set_params(ctx_, params) != 1) {
      EVP_MAC_CTX_free(ctx_);
      ctx_ = nullptr;
    }
  }
  ~HmacContext() { EVP_MAC_CTX_free(ctx_); }
  HmacContext(const HmacContext&) = delete;
  HmacContext& operator=(const HmacContext&) = delete;

  // The MAC of `data` under `key`; "" if OpenSSL failed (which a
  // comparison then never matches).
  std::string Mac(absl::string_view key, absl::string_view data) {
    unsigned char out[EVP_MAX_MD_SIZE];
    size_t len = 0;
    if (ctx_ == nullptr ||
        EVP_MAC_init(ctx_, reinterpret_cast<const unsigned char*>(key.data()),
                     key.size(), nullptr) != 1 ||
        EVP_MAC_update(ctx_,
                       reinterpret_cast<const unsigned char*>(data.data()),
                       data.size()) != 1 ||
        EVP_MAC_final(ctx_, out, &len, sizeof out) != 1) {
      return std::string();
    }
    return std::string(reinterpret_cast<char*>(out), len);
  }

 private:
  EVP_MAC_CTX* ctx_ = nullptr;
};

}  // namespace

std::string HmacSha256(absl::string_view key, absl::string_view data) {
  thread_local HmacContext ctx("SHA256");
  return ctx.Mac(key, data);
}

std::string HmacSha1(absl::string_view key, absl::string_view data) {
  thread_local HmacContext ctx("SHA1");
  return ctx.Mac(key, data);
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
