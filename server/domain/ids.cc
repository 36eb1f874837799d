// Random identifiers and secret hashing.
#include "server/domain/ids.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstdlib>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace campaigns {

std::string NewId(absl::string_view prefix, int length) {
  static constexpr char kAlphabet[] =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::string out(prefix);
  out.reserve(prefix.size() + length);
  while (static_cast<int>(out.size() - prefix.size()) < length) {
    unsigned char buf[32];
    if (RAND_bytes(buf, sizeof(buf)) != 1) std::abort();  // no entropy: fatal
    for (unsigned char b : buf) {
      // 248 = 4 * 62: rejecting larger bytes keeps the distribution uniform.
      if (b >= 248) continue;
      out.push_back(kAlphabet[b % 62]);
      if (static_cast<int>(out.size() - prefix.size()) == length) break;
    }
  }
  return out;
}

std::string NewSecret() { return NewId(kSecretPrefix, 40); }

std::string Sha256Hex(absl::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(),
                 nullptr) != 1) {
    std::abort();
  }
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), len));
}

Sha256Hasher::Sha256Hasher() : ctx_(EVP_MD_CTX_new()) {
  if (ctx_ == nullptr || EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1) {
    std::abort();
  }
}

Sha256Hasher::~Sha256Hasher() { EVP_MD_CTX_free(ctx_); }

void Sha256Hasher::Update(absl::string_view data) {
  if (EVP_DigestUpdate(ctx_, data.data(), data.size()) != 1) std::abort();
}

void Sha256Hasher::UpdateField(absl::string_view data) {
  const std::string length = absl::StrCat(data.size(), ":");
  Update(length);
  Update(data);
}

std::string Sha256Hasher::HexDigest() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx_, digest, &len) != 1 ||
      EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1) {
    std::abort();
  }
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), len));
}

}  // namespace campaigns
