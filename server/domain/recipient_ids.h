// Public recipient ids from storage sequence numbers.
//
//   RecipientIdCodec codec(key);             // key: 32 hex digits
//   std::string id = codec.Encode(42);       // "rcp_" + 11 base62 chars
//   std::optional<int64_t> seq = codec.Decode(id);   // 42
//
// A recipient is stored under a sequence number (storage order); its public
// id is that number run through a keyed 64-bit permutation (a balanced
// Feistel network) and written in fixed-width base62. Ids therefore look
// random and reveal neither the count nor the order of recipients, yet need
// no index of their own: decoding gives the row's key back. Decode refuses
// anything Encode cannot produce.
//
// Thread-safe: immutable after construction.
#ifndef CAMPAIGND_SERVER_DOMAIN_RECIPIENT_IDS_H_
#define CAMPAIGND_SERVER_DOMAIN_RECIPIENT_IDS_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace campaigns {

class RecipientIdCodec {
 public:
  // `hex_key`: 32 hexadecimal digits (128 bits).
  static absl::StatusOr<RecipientIdCodec> FromHexKey(absl::string_view hex_key);

  // `seq` > 0.
  std::string Encode(int64_t seq) const;
  // The seq of a well-formed id, or nullopt.
  std::optional<int64_t> Decode(absl::string_view id) const;

 private:
  static constexpr int kRounds = 6;
  explicit RecipientIdCodec(const std::array<uint64_t, kRounds>& round_keys)
      : round_keys_(round_keys) {}
  uint64_t Permute(uint64_t x) const;
  uint64_t Unpermute(uint64_t x) const;

  std::array<uint64_t, kRounds> round_keys_;
};

}  // namespace campaigns

#endif  // CAMPAIGND_SERVER_DOMAIN_RECIPIENT_IDS_H_
