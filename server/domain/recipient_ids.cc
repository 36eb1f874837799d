// Public recipient ids from storage sequence numbers.
#include "server/domain/recipient_ids.h"

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "server/domain/ids.h"

namespace campaigns {
namespace {

constexpr char kDigits[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
constexpr int kIdDigits = 11;  // 62^11 > 2^64

// SplitMix64's finaliser: a strong 64-bit mixer.
uint64_t Mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint32_t Round(uint32_t half, uint64_t key) {
  return static_cast<uint32_t>(Mix(half ^ key));
}

int DigitValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'Z') return c - 'A' + 10;
  if (c >= 'a' && c <= 'z') return c - 'a' + 36;
  return -1;
}

}  // namespace

absl::StatusOr<RecipientIdCodec> RecipientIdCodec::FromHexKey(
    absl::string_view hex_key) {
  if (hex_key.size() != 32) {
    return absl::InvalidArgumentError("recipient id key: want 32 hex digits");
  }
  for (char c : hex_key) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) {
      return absl::InvalidArgumentError("recipient id key: not hexadecimal");
    }
  }
  const std::string bytes = absl::HexStringToBytes(hex_key);
  uint64_t k0 = 0;
  uint64_t k1 = 0;
  for (int i = 0; i < 8; ++i) {
    k0 = (k0 << 8) | static_cast<uint8_t>(bytes[i]);
    k1 = (k1 << 8) | static_cast<uint8_t>(bytes[8 + i]);
  }
  std::array<uint64_t, kRounds> keys;
  for (int i = 0; i < kRounds; ++i) {
    keys[i] = Mix(k0 + static_cast<uint64_t>(i) * 0x9e3779b97f4a7c15ULL) ^
              Mix(k1 ^ static_cast<uint64_t>(i));
  }
  return RecipientIdCodec(keys);
}

uint64_t RecipientIdCodec::Permute(uint64_t x) const {
  uint32_t left = static_cast<uint32_t>(x >> 32);
  uint32_t right = static_cast<uint32_t>(x);
  for (int i = 0; i < kRounds; ++i) {
    const uint32_t next = left ^ Round(right, round_keys_[i]);
    left = right;
    right = next;
  }
  return (static_cast<uint64_t>(left) << 32) | right;
}

uint64_t RecipientIdCodec::Unpermute(uint64_t x) const {
  uint32_t left = static_cast<uint32_t>(x >> 32);
  uint32_t right = static_cast<uint32_t>(x);
  for (int i = kRounds - 1; i >= 0; --i) {
    const uint32_t prev = right ^ Round(left, round_keys_[i]);
    right = left;
    left = prev;
  }
  return (static_cast<uint64_t>(left) << 32) | right;
}

std::string RecipientIdCodec::Encode(int64_t seq) const {
  uint64_t v = Permute(static_cast<uint64_t>(seq));
  std::string out(kRecipientPrefix.size() + kIdDigits, '0');
  out.replace(0, kRecipientPrefix.size(), kRecipientPrefix.data(),
              kRecipientPrefix.size());
  for (int i = kIdDigits - 1; i >= 0; --i) {
    out[kRecipientPrefix.size() + i] = kDigits[v % 62];
    v /= 62;
  }
  return out;
}

std::optional<int64_t> RecipientIdCodec::Decode(absl::string_view id) const {
  if (id.size() != kRecipientPrefix.size() + kIdDigits ||
      !absl::StartsWith(id, kRecipientPrefix)) {
    return std::nullopt;
  }
  uint64_t v = 0;
  for (char c : id.substr(kRecipientPrefix.size())) {
    const int d = DigitValue(c);
    if (d < 0) return std::nullopt;
    if (v > (UINT64_MAX - d) / 62) return std::nullopt;  // overflow
    v = v * 62 + d;
  }
  const uint64_t seq = Unpermute(v);
  if (seq == 0 || seq > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
  return static_cast<int64_t>(seq);
}

}  // namespace campaigns
