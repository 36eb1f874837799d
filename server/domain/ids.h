// Random identifiers and secret hashing.
//
//   std::string id = NewId("cmp_");        // "cmp_7fK2...": 22 base62 chars
//   std::string key = NewSecret("ck_");    // API key secret
//   std::string h = Sha256Hex(key);        // what the database stores
//
// All functions are thread-safe (OpenSSL's RAND_bytes).
#ifndef CAMPAIGND_SERVER_DOMAIN_IDS_H_
#define CAMPAIGND_SERVER_DOMAIN_IDS_H_

#include <string>

#include "absl/strings/string_view.h"

struct evp_md_ctx_st;

namespace campaigns {

// Id prefixes of API.md.
inline constexpr absl::string_view kCampaignPrefix = "cmp_";
inline constexpr absl::string_view kRecipientPrefix = "rcp_";
inline constexpr absl::string_view kTemplatePrefix = "tmpl_";
inline constexpr absl::string_view kSenderPrefix = "snd_";
inline constexpr absl::string_view kContactPrefix = "ct_";
inline constexpr absl::string_view kContactListPrefix = "cl_";
inline constexpr absl::string_view kApiKeyPrefix = "key_";
inline constexpr absl::string_view kAccountPrefix = "acct_";
inline constexpr absl::string_view kSecretPrefix = "ck_";

// `prefix` followed by `length` random URL-safe characters ([0-9A-Za-z]).
std::string NewId(absl::string_view prefix, int length = 22);

// A new API key secret: "ck_" and 40 random characters (~238 bits).
std::string NewSecret();

// Lowercase hex SHA-256 of `data`.
std::string Sha256Hex(absl::string_view data);

// SHA-256 over data given in pieces; Sha256Hex of their concatenation.
// Not thread-safe.
class Sha256Hasher {
 public:
  Sha256Hasher();
  ~Sha256Hasher();
  Sha256Hasher(const Sha256Hasher&) = delete;
  Sha256Hasher& operator=(const Sha256Hasher&) = delete;

  void Update(absl::string_view data);
  // Adds `data` preceded by its length, so that field boundaries count.
  void UpdateField(absl::string_view data);
  // The digest of everything so far; the hasher then starts afresh.
  std::string HexDigest();

 private:
  ::evp_md_ctx_st* ctx_;  // OpenSSL's EVP_MD_CTX
};

}  // namespace campaigns

#endif  // CAMPAIGND_SERVER_DOMAIN_IDS_H_
